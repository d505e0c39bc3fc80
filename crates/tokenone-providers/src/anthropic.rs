//! Anthropic Messages: parse and build requests and replies, usage (cache reads and writes
//! counted as input) and stop reasons.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::ir::{
    anthropic_tool_id, new_id, Args, Conversation, Image, JsonMode, Message, Part, Reply, Role, Stop, ToolCall,
    ToolChoice, ToolDef, ToolResult,
};
use crate::json::{count, count_param, get, invalid, number_param, str_at, string_list};
use crate::{TranslateError, Usage};

/// Anthropic requires `max_tokens`; this is used when the source request had no limit.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// What an Anthropic target gets in its system prompt for OpenAI/Gemini "JSON object" mode,
/// which Anthropic has no parameter for.
pub(crate) const JSON_OBJECT_INSTRUCTION: &str =
    "Respond with a single valid JSON object and nothing else: no prose, no code fences.";

fn image(source: &Value, conv: &mut Conversation) -> Part {
    conv.has_media = true;
    match str_at(source, "type") {
        Some("base64") => match (str_at(source, "media_type"), str_at(source, "data")) {
            (Some(m), Some(d)) => Part::Image(Image::Base64 {
                media_type: m.to_owned(),
                data: d.to_owned(),
            }),
            _ => Part::Unsupported("image_source"),
        },
        Some("url") => match str_at(source, "url") {
            Some(u) => Part::Image(Image::Url(u.to_owned())),
            None => Part::Unsupported("image_source"),
        },
        Some("file") => Part::Unsupported("file"),
        _ => Part::Unsupported("image_source"),
    }
}

fn block(
    b: &Value,
    at: &str,
    conv: &mut Conversation,
    names: &mut HashMap<String, String>,
) -> Result<Option<Part>, TranslateError> {
    let ty = str_at(b, "type").ok_or_else(|| invalid(format!("{at}: every content block needs a `type`")))?;
    Ok(Some(match ty {
        "text" => Part::Text(
            str_at(b, "text")
                .ok_or_else(|| invalid(format!("{at}: a text block needs `text`")))?
                .to_owned(),
        ),
        "image" => image(b.get("source").unwrap_or(&Value::Null), conv),
        "tool_use" => {
            let id = str_at(b, "id").ok_or_else(|| invalid(format!("{at}: a tool_use block needs an `id`")))?;
            let name = str_at(b, "name").ok_or_else(|| invalid(format!("{at}: a tool_use block needs a `name`")))?;
            names.insert(id.to_owned(), name.to_owned());
            Part::ToolCall(ToolCall {
                id: id.to_owned(),
                name: name.to_owned(),
                arguments: Args::from_value(b.get("input")),
            })
        }
        "tool_result" => {
            let id = str_at(b, "tool_use_id")
                .ok_or_else(|| invalid(format!("{at}: a tool_result block needs a `tool_use_id`")))?;
            let content = match get(b, "content") {
                None => Vec::new(),
                Some(Value::String(s)) => vec![Part::Text(s.clone())],
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|c| match str_at(c, "type") {
                        Some("text") => Part::Text(str_at(c, "text").unwrap_or_default().to_owned()),
                        Some("image") => image(c.get("source").unwrap_or(&Value::Null), conv),
                        _ => Part::Unsupported("tool_result_content"),
                    })
                    .collect(),
                Some(_) => return Err(invalid(format!("{at}: tool_result content must be a string or blocks"))),
            };
            Part::ToolResult(ToolResult {
                id: id.to_owned(),
                name: names.get(id).cloned(),
                content,
                is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
            })
        }
        // The model's own reasoning from an earlier turn: only Anthropic can take it back.
        "thinking" | "redacted_thinking" => return Ok(None),
        "document" => {
            conv.has_media = true;
            Part::Unsupported("document")
        }
        "search_result" => Part::Unsupported("search_result"),
        "server_tool_use"
        | "web_search_tool_result"
        | "web_fetch_tool_result"
        | "code_execution_tool_result"
        | "bash_code_execution_tool_result"
        | "text_editor_code_execution_tool_result"
        | "mcp_tool_use"
        | "mcp_tool_result"
        | "container_upload" => Part::Unsupported("server_tool"),
        _ => Part::Unsupported("content_block"),
    }))
}

pub(crate) fn parse_request(body: &Value) -> Result<Conversation, TranslateError> {
    if !body.is_object() {
        return Err(invalid("the request body must be a JSON object"));
    }
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(invalid("messages: must contain at least one message")),
        _ => return Err(invalid("messages: required, an array of messages")),
    };
    let mut conv = Conversation::default();
    match get(body, "system") {
        None => {}
        Some(Value::String(s)) => conv.system.push(s.clone()),
        Some(Value::Array(blocks)) => {
            for b in blocks {
                match (str_at(b, "type"), str_at(b, "text")) {
                    (Some("text"), Some(t)) => conv.system.push(t.to_owned()),
                    _ => return Err(invalid("system: only text blocks are allowed")),
                }
            }
        }
        Some(_) => return Err(invalid("system: must be a string or an array of text blocks")),
    }
    let mut names = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = match str_at(m, "role") {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some(other) => {
                return Err(invalid(format!(
                    "{at}.role: must be `user` or `assistant`, not `{other}`"
                )))
            }
            None => return Err(invalid(format!("{at}.role: required"))),
        };
        let parts = match m.get("content") {
            Some(Value::String(s)) => vec![Part::Text(s.clone())],
            Some(Value::Array(blocks)) => {
                let mut parts = Vec::new();
                for (j, b) in blocks.iter().enumerate() {
                    if let Some(p) = block(b, &format!("{at}.content[{j}]"), &mut conv, &mut names)? {
                        parts.push(p);
                    }
                }
                parts
            }
            _ => {
                return Err(invalid(format!(
                    "{at}.content: required, a string or an array of blocks"
                )))
            }
        };
        conv.messages.push(Message::new(role, parts));
    }

    match get(body, "tools") {
        None => {}
        Some(Value::Array(tools)) => {
            for (i, t) in tools.iter().enumerate() {
                if str_at(t, "type").is_some_and(|ty| ty != "custom") {
                    conv.unsupported.push("server_tool");
                    continue;
                }
                let name = str_at(t, "name").ok_or_else(|| invalid(format!("tools[{i}].name: required")))?;
                conv.tools.push(ToolDef {
                    name: name.to_owned(),
                    description: str_at(t, "description").map(str::to_owned),
                    parameters: get(t, "input_schema").cloned(),
                });
            }
        }
        Some(_) => return Err(invalid("tools: must be an array")),
    }
    if let Some(tc) = get(body, "tool_choice") {
        conv.tool_choice = match str_at(tc, "type") {
            Some("auto") => Some(ToolChoice::Auto),
            Some("any") => Some(ToolChoice::Required),
            Some("none") => Some(ToolChoice::None),
            Some("tool") => Some(ToolChoice::Named(
                str_at(tc, "name")
                    .ok_or_else(|| invalid("tool_choice.name: required"))?
                    .to_owned(),
            )),
            _ => return Err(invalid("tool_choice.type: must be auto, any, tool or none")),
        };
        if tc.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
            conv.parallel_tool_calls = Some(false);
        }
    }
    conv.max_tokens = count_param(body.get("max_tokens"), "max_tokens")?;
    conv.temperature = number_param(body.get("temperature"), "temperature")?;
    conv.top_p = number_param(body.get("top_p"), "top_p")?;
    conv.top_k = number_param(body.get("top_k"), "top_k")?;
    conv.stop = string_list(body.get("stop_sequences"), "stop_sequences")?;
    if let Some(of) = get(body, "output_format") {
        if str_at(of, "type") == Some("json_schema") {
            conv.json = JsonMode::Schema {
                name: "response".into(),
                schema: get(of, "schema").cloned().unwrap_or_else(|| json!({"type": "object"})),
                strict: Some(true),
            };
        } else {
            conv.unsupported.push("output_format");
        }
    }
    if get(body, "thinking").is_some_and(|t| str_at(t, "type") == Some("enabled")) {
        conv.unsupported.push("thinking");
    }
    if body
        .get("mcp_servers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        conv.unsupported.push("mcp_servers");
    }
    if get(body, "container").is_some() {
        conv.unsupported.push("container");
    }
    Ok(conv)
}

fn image_block(img: &Image) -> Result<Value, TranslateError> {
    match img {
        Image::Base64 { media_type, data } => Ok(json!({
            "type": "image",
            "source": { "type": "base64", "media_type": media_type, "data": data },
        })),
        Image::Url(u) => Ok(json!({ "type": "image", "source": { "type": "url", "url": u } })),
        Image::FileUri { .. } => Err(TranslateError::Unsupported("file_data")),
    }
}

fn tool_use_json(c: &ToolCall, lossless: bool) -> Result<Value, TranslateError> {
    let input = if lossless {
        c.arguments.to_object_lossless()
    } else {
        c.arguments.to_object()?
    };
    Ok(json!({ "type": "tool_use", "id": anthropic_tool_id(&c.id), "name": c.name, "input": input }))
}

pub(crate) fn build_request(conv: &Conversation, model: &str, stream: bool) -> Result<Value, TranslateError> {
    conv.check_supported()?;
    let mut messages: Vec<(Role, Vec<Value>)> = Vec::new();
    for m in &conv.messages {
        let mut blocks = Vec::new();
        for p in &m.parts {
            match (p, m.role) {
                (Part::Text(t), _) => {
                    if !t.is_empty() {
                        blocks.push(json!({ "type": "text", "text": t }));
                    }
                }
                (Part::Image(img), Role::User) => blocks.push(image_block(img)?),
                (Part::Image(_), Role::Assistant) => return Err(TranslateError::Unsupported("assistant_image")),
                (Part::ToolCall(c), Role::Assistant) => blocks.push(tool_use_json(c, false)?),
                (Part::ToolCall(_), Role::User) => return Err(invalid("a user message cannot contain a tool call")),
                (Part::ToolResult(r), Role::User) => {
                    let mut content = Vec::new();
                    for c in &r.content {
                        match c {
                            Part::Text(t) if !t.is_empty() => content.push(json!({ "type": "text", "text": t })),
                            Part::Text(_) => {}
                            Part::Image(img) => content.push(image_block(img)?),
                            Part::Unsupported(f) => return Err(TranslateError::Unsupported(f)),
                            _ => return Err(invalid("a tool result holds text and images only")),
                        }
                    }
                    let mut b = Map::new();
                    b.insert("type".into(), "tool_result".into());
                    b.insert("tool_use_id".into(), anthropic_tool_id(&r.id).into());
                    // Text-only results travel as a plain string, the form most clients send.
                    let all_text = content.iter().all(|c| c["type"] == "text");
                    let content = if all_text {
                        Value::String(r.text())
                    } else {
                        Value::Array(content)
                    };
                    b.insert("content".into(), content);
                    if r.is_error {
                        b.insert("is_error".into(), true.into());
                    }
                    blocks.push(Value::Object(b));
                }
                (Part::ToolResult(_), Role::Assistant) => {
                    return Err(invalid("an assistant message cannot contain a tool result"))
                }
                (Part::Unsupported(f), _) => return Err(TranslateError::Unsupported(f)),
            }
        }
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some((role, prev)) if *role == m.role => prev.extend(blocks),
            _ => messages.push((m.role, blocks)),
        }
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(role, mut blocks)| {
            // Tool results must open the user turn that answers the tool calls.
            blocks.sort_by_key(|b| b["type"] != "tool_result");
            // A lone text block travels as a plain string, the form most clients send.
            let content = match blocks.as_slice() {
                [one] if one["type"] == "text" => one["text"].clone(),
                _ => Value::Array(blocks),
            };
            json!({
                "role": if role == Role::User { "user" } else { "assistant" },
                "content": content,
            })
        })
        .collect();

    let mut out = Map::new();
    out.insert("model".into(), model.into());
    let mut system = conv.system.join("\n\n");
    match &conv.json {
        JsonMode::Off => {}
        JsonMode::Object => {
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str(JSON_OBJECT_INSTRUCTION);
        }
        JsonMode::Schema { .. } => return Err(TranslateError::Unsupported("json_schema")),
    }
    if !system.is_empty() {
        out.insert("system".into(), system.into());
    }
    out.insert("messages".into(), Value::Array(messages));
    out.insert(
        "max_tokens".into(),
        conv.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).into(),
    );
    if let Some(t) = &conv.temperature {
        // Anthropic's range is 0..=1 where OpenAI and Gemini allow up to 2.
        let t = match t.as_f64() {
            Some(f) if f > 1.0 => json!(1.0),
            _ => t.clone(),
        };
        out.insert("temperature".into(), t);
    }
    if let Some(p) = &conv.top_p {
        out.insert("top_p".into(), p.clone());
    }
    if let Some(k) = &conv.top_k {
        out.insert("top_k".into(), k.clone());
    }
    if !conv.stop.is_empty() {
        out.insert("stop_sequences".into(), json!(conv.stop));
    }
    if !conv.tools.is_empty() {
        let tools: Vec<Value> = conv
            .tools
            .iter()
            .map(|t| {
                let mut o = Map::new();
                o.insert("name".into(), t.name.clone().into());
                if let Some(d) = &t.description {
                    o.insert("description".into(), d.clone().into());
                }
                o.insert(
                    "input_schema".into(),
                    t.parameters
                        .clone()
                        .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
                );
                Value::Object(o)
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
        let mut choice = match &conv.tool_choice {
            None => None,
            Some(ToolChoice::Auto) => Some(json!({ "type": "auto" })),
            Some(ToolChoice::None) => Some(json!({ "type": "none" })),
            Some(ToolChoice::Required) => Some(json!({ "type": "any" })),
            Some(ToolChoice::Named(n)) => Some(json!({ "type": "tool", "name": n })),
        };
        if conv.parallel_tool_calls == Some(false) {
            let c = choice.get_or_insert_with(|| json!({ "type": "auto" }));
            if c["type"] != "none" {
                c["disable_parallel_tool_use"] = true.into();
            }
        }
        if let Some(c) = choice {
            out.insert("tool_choice".into(), c);
        }
    }
    if stream {
        out.insert("stream".into(), true.into());
    }
    Ok(Value::Object(out))
}

/// Anthropic's `input_tokens` excludes cache reads and writes; TokenOne's input includes both.
pub(crate) fn usage_from(u: &Value) -> Option<Usage> {
    let input = count(u.get("input_tokens"));
    let output = count(u.get("output_tokens"));
    if input.is_none() && output.is_none() {
        return None;
    }
    let write = count(u.get("cache_creation_input_tokens")).unwrap_or(0);
    let read = count(u.get("cache_read_input_tokens")).unwrap_or(0);
    Some(Usage {
        input_tokens: input.unwrap_or(0).saturating_add(write).saturating_add(read),
        cached_input_tokens: read,
        output_tokens: output.unwrap_or(0),
    })
}

pub(crate) fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens.saturating_sub(u.cached_input_tokens),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": u.cached_input_tokens,
        "output_tokens": u.output_tokens,
    })
}

pub(crate) fn parse_response(body: &Value) -> Result<Reply, TranslateError> {
    let content = body
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("the Anthropic reply has no content"))?;
    let mut parts = Vec::new();
    for b in content {
        match str_at(b, "type") {
            Some("text") => {
                if let Some(t) = str_at(b, "text").filter(|t| !t.is_empty()) {
                    parts.push(Part::Text(t.to_owned()));
                }
            }
            Some("tool_use") => parts.push(Part::ToolCall(ToolCall {
                id: str_at(b, "id").map(str::to_owned).unwrap_or_else(|| new_id("toolu_")),
                name: str_at(b, "name").unwrap_or_default().to_owned(),
                arguments: Args::from_value(b.get("input")),
            })),
            _ => {}
        }
    }
    Ok(Reply {
        parts,
        stop: str_at(body, "stop_reason")
            .map(Stop::from_anthropic)
            .unwrap_or(Stop::EndTurn),
        stop_sequence: str_at(body, "stop_sequence").map(str::to_owned),
        usage: body.get("usage").and_then(usage_from),
    })
}

pub(crate) fn build_response(reply: &Reply, model: &str) -> Value {
    let mut content = Vec::new();
    for p in &reply.parts {
        match p {
            Part::Text(t) => content.push(json!({ "type": "text", "text": t })),
            Part::ToolCall(c) => {
                if let Ok(b) = tool_use_json(c, true) {
                    content.push(b);
                }
            }
            _ => {}
        }
    }
    let stop = reply.stop_for_client();
    json!({
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop.anthropic(),
        "stop_sequence": if stop == Stop::Sequence { json!(reply.stop_sequence) } else { Value::Null },
        "usage": usage_json(&reply.usage.unwrap_or_default()),
    })
}
