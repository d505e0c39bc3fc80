//! OpenAI Chat Completions: parse and build requests and replies, usage and finish reasons.
//! Also used for Fireworks and OpenRouter, which speak the same format.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::ir::{
    image_from_url, new_id, unix_now, Args, Conversation, Image, JsonMode, Message, Part, Reply, Role, Stop, ToolCall,
    ToolChoice, ToolDef, ToolResult,
};
use crate::json::{count, count_param, get, invalid, number_param, str_at, string_list};
use crate::{TranslateError, Usage};

/// Text of a `content` that may only hold text: a string, text parts, or null.
fn plain_text(content: Option<&Value>, at: &str) -> Result<String, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for p in parts {
                match str_at(p, "type") {
                    Some("text") | Some("refusal") => {
                        let key = if str_at(p, "type") == Some("text") {
                            "text"
                        } else {
                            "refusal"
                        };
                        out.push(
                            str_at(p, key).ok_or_else(|| invalid(format!("{at}.content: a text part needs `text`")))?,
                        );
                    }
                    _ => return Err(invalid(format!("{at}.content: only text parts are allowed here"))),
                }
            }
            Ok(out.join("\n"))
        }
        Some(_) => Err(invalid(format!("{at}.content: must be a string or an array of parts"))),
    }
}

fn user_parts(content: Option<&Value>, at: &str, conv: &mut Conversation) -> Result<Vec<Part>, TranslateError> {
    match content {
        Some(Value::String(s)) => Ok(vec![Part::Text(s.clone())]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for p in parts {
                let ty =
                    str_at(p, "type").ok_or_else(|| invalid(format!("{at}.content: every part needs a `type`")))?;
                match ty {
                    "text" => out.push(Part::Text(
                        str_at(p, "text")
                            .ok_or_else(|| invalid(format!("{at}.content: a text part needs `text`")))?
                            .to_owned(),
                    )),
                    "image_url" => {
                        conv.has_media = true;
                        let url = p
                            .get("image_url")
                            .and_then(|i| i.as_str().or_else(|| str_at(i, "url")))
                            .ok_or_else(|| invalid(format!("{at}.content: an image part needs `image_url.url`")))?;
                        let image = image_from_url(url).ok_or_else(|| {
                            invalid(format!("{at}.content: image URLs must be http(s) or base64 data URLs"))
                        })?;
                        out.push(Part::Image(image));
                    }
                    "input_audio" => {
                        conv.has_media = true;
                        out.push(Part::Unsupported("audio"));
                    }
                    "file" => {
                        conv.has_media = true;
                        out.push(Part::Unsupported("file"));
                    }
                    _ => out.push(Part::Unsupported("content_part")),
                }
            }
            Ok(out)
        }
        _ => Err(invalid(format!(
            "{at}.content: required, a string or an array of parts"
        ))),
    }
}

fn assistant_parts(m: &Value, at: &str, names: &mut HashMap<String, String>) -> Result<Vec<Part>, TranslateError> {
    let mut parts = Vec::new();
    let text = plain_text(m.get("content"), at)?;
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    match get(m, "tool_calls") {
        None => {}
        Some(Value::Array(calls)) => {
            for c in calls {
                let f = c.get("function").unwrap_or(&Value::Null);
                let id =
                    str_at(c, "id").ok_or_else(|| invalid(format!("{at}.tool_calls: every call needs an `id`")))?;
                let name = str_at(f, "name")
                    .ok_or_else(|| invalid(format!("{at}.tool_calls: every call needs `function.name`")))?;
                if str_at(c, "type").is_some_and(|t| t != "function") {
                    parts.push(Part::Unsupported("tool_type"));
                    continue;
                }
                names.insert(id.to_owned(), name.to_owned());
                let arguments = match f.get("arguments") {
                    Some(Value::String(s)) => Args::from_text(s),
                    other => Args::from_value(other),
                };
                parts.push(Part::ToolCall(ToolCall {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    arguments,
                }));
            }
        }
        Some(_) => return Err(invalid(format!("{at}.tool_calls: must be an array"))),
    }
    if get(m, "function_call").is_some() {
        parts.push(Part::Unsupported("functions"));
    }
    Ok(parts)
}

pub(crate) fn parse_request(body: &Value) -> Result<Conversation, TranslateError> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid("the request body must be a JSON object"))?;
    let messages = match obj.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(invalid("messages: must contain at least one message")),
        _ => return Err(invalid("messages: required, an array of messages")),
    };
    let mut conv = Conversation::default();
    let mut names: HashMap<String, String> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = str_at(m, "role").ok_or_else(|| invalid(format!("{at}.role: required")))?;
        match role {
            "system" | "developer" => conv.system.push(plain_text(m.get("content"), &at)?),
            "user" => {
                let parts = user_parts(m.get("content"), &at, &mut conv)?;
                conv.messages.push(Message::new(Role::User, parts));
            }
            "assistant" => {
                let parts = assistant_parts(m, &at, &mut names)?;
                conv.messages.push(Message::new(Role::Assistant, parts));
            }
            "tool" => {
                let id = str_at(m, "tool_call_id").ok_or_else(|| invalid(format!("{at}.tool_call_id: required")))?;
                let text = plain_text(m.get("content"), &at)?;
                conv.messages.push(Message::new(
                    Role::User,
                    vec![Part::ToolResult(ToolResult {
                        id: id.to_owned(),
                        name: names.get(id).cloned(),
                        content: vec![Part::Text(text)],
                        is_error: false,
                    })],
                ));
            }
            "function" => conv
                .messages
                .push(Message::new(Role::User, vec![Part::Unsupported("functions")])),
            other => return Err(invalid(format!("{at}.role: unknown role `{other}`"))),
        }
    }

    match get(body, "tools") {
        None => {}
        Some(Value::Array(tools)) => {
            for (i, t) in tools.iter().enumerate() {
                if str_at(t, "type") != Some("function") {
                    conv.unsupported.push("tool_type");
                    continue;
                }
                let f = t.get("function").unwrap_or(&Value::Null);
                let name = str_at(f, "name").ok_or_else(|| invalid(format!("tools[{i}].function.name: required")))?;
                conv.tools.push(ToolDef {
                    name: name.to_owned(),
                    description: str_at(f, "description").map(str::to_owned),
                    parameters: get(f, "parameters").cloned(),
                });
            }
        }
        Some(_) => return Err(invalid("tools: must be an array")),
    }
    if get(body, "functions").is_some() || get(body, "function_call").is_some() {
        conv.unsupported.push("functions");
    }
    conv.tool_choice = match get(body, "tool_choice") {
        None => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(ToolChoice::Auto),
            "none" => Some(ToolChoice::None),
            "required" => Some(ToolChoice::Required),
            _ => return Err(invalid("tool_choice: must be none, auto, required or a named function")),
        },
        Some(v) => match (str_at(v, "type"), v.pointer("/function/name").and_then(Value::as_str)) {
            (Some("function"), Some(name)) => Some(ToolChoice::Named(name.to_owned())),
            _ => {
                conv.unsupported.push("tool_choice");
                None
            }
        },
    };
    conv.parallel_tool_calls = body.get("parallel_tool_calls").and_then(Value::as_bool);
    conv.max_tokens = match count_param(body.get("max_completion_tokens"), "max_completion_tokens")? {
        Some(n) => Some(n),
        None => count_param(body.get("max_tokens"), "max_tokens")?,
    };
    conv.temperature = number_param(body.get("temperature"), "temperature")?;
    conv.top_p = number_param(body.get("top_p"), "top_p")?;
    conv.stop = string_list(body.get("stop"), "stop")?;
    conv.json = match get(body, "response_format") {
        None => JsonMode::Off,
        Some(rf) => match str_at(rf, "type") {
            Some("text") => JsonMode::Off,
            Some("json_object") => JsonMode::Object,
            Some("json_schema") => {
                let js = rf.get("json_schema").unwrap_or(&Value::Null);
                JsonMode::Schema {
                    name: str_at(js, "name").unwrap_or("response").to_owned(),
                    schema: get(js, "schema").cloned().unwrap_or_else(|| json!({"type": "object"})),
                    strict: js.get("strict").and_then(Value::as_bool),
                }
            }
            _ => {
                conv.unsupported.push("response_format");
                JsonMode::Off
            }
        },
    };
    if count(body.get("n")).is_some_and(|n| n > 1) {
        conv.unsupported.push("n");
    }
    if body.get("logprobs").and_then(Value::as_bool) == Some(true) {
        conv.unsupported.push("logprobs");
    }
    if body
        .get("modalities")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|x| x.as_str() == Some("audio")))
    {
        conv.unsupported.push("audio_output");
    }
    if get(body, "web_search_options").is_some() {
        conv.unsupported.push("web_search");
    }
    if body
        .get("logit_bias")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        conv.unsupported.push("logit_bias");
    }
    Ok(conv)
}

fn image_url(img: &Image) -> Result<String, TranslateError> {
    match img {
        Image::Base64 { media_type, data } => Ok(format!("data:{media_type};base64,{data}")),
        Image::Url(u) => Ok(u.clone()),
        Image::FileUri { .. } => Err(TranslateError::Unsupported("file_data")),
    }
}

/// Reasoning models take `max_completion_tokens` and refuse `max_tokens`.
fn uses_max_completion_tokens(model: &str) -> bool {
    let m = model.rsplit('/').next().unwrap_or(model);
    ["o1", "o3", "o4", "gpt-5"].iter().any(|p| m.starts_with(p))
}

pub(crate) fn tool_call_json(c: &ToolCall) -> Value {
    json!({
        "id": c.id,
        "type": "function",
        "function": { "name": c.name, "arguments": c.arguments.to_text() },
    })
}

pub(crate) fn build_request(conv: &Conversation, model: &str, stream: bool) -> Result<Value, TranslateError> {
    conv.check_supported()?;
    let mut messages = Vec::new();
    if !conv.system.is_empty() {
        messages.push(json!({ "role": "system", "content": conv.system.join("\n\n") }));
    }
    for m in &conv.messages {
        match m.role {
            Role::User => {
                let mut content = Vec::new();
                for p in &m.parts {
                    match p {
                        Part::ToolResult(r) => messages.push(json!({
                            "role": "tool",
                            "tool_call_id": r.id,
                            "content": r.text_only()?,
                        })),
                        Part::Text(t) => content.push(json!({ "type": "text", "text": t })),
                        Part::Image(img) => {
                            content.push(json!({ "type": "image_url", "image_url": { "url": image_url(img)? } }))
                        }
                        Part::ToolCall(_) => return Err(invalid("a user message cannot contain a tool call")),
                        Part::Unsupported(f) => return Err(TranslateError::Unsupported(f)),
                    }
                }
                if !content.is_empty() {
                    let all_text = content.iter().all(|c| c["type"] == "text");
                    let content = if all_text {
                        Value::String(
                            content
                                .iter()
                                .filter_map(|c| c["text"].as_str())
                                .collect::<Vec<_>>()
                                .join("\n"),
                        )
                    } else {
                        Value::Array(content)
                    };
                    messages.push(json!({ "role": "user", "content": content }));
                }
            }
            Role::Assistant => {
                let mut text = Vec::new();
                let mut calls = Vec::new();
                for p in &m.parts {
                    match p {
                        Part::Text(t) => text.push(t.as_str()),
                        Part::ToolCall(c) => calls.push(tool_call_json(c)),
                        Part::Image(_) => return Err(TranslateError::Unsupported("assistant_image")),
                        Part::ToolResult(_) => {
                            return Err(invalid("an assistant message cannot contain a tool result"))
                        }
                        Part::Unsupported(f) => return Err(TranslateError::Unsupported(f)),
                    }
                }
                let text = text.join("\n");
                let mut msg = Map::new();
                msg.insert("role".into(), "assistant".into());
                if calls.is_empty() {
                    msg.insert("content".into(), Value::String(text));
                } else {
                    msg.insert(
                        "content".into(),
                        if text.is_empty() {
                            Value::Null
                        } else {
                            Value::String(text)
                        },
                    );
                    msg.insert("tool_calls".into(), Value::Array(calls));
                }
                messages.push(Value::Object(msg));
            }
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), model.into());
    out.insert("messages".into(), Value::Array(messages));
    if let Some(n) = conv.max_tokens {
        let key = if uses_max_completion_tokens(model) {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        out.insert(key.into(), n.into());
    }
    if let Some(t) = &conv.temperature {
        out.insert("temperature".into(), t.clone());
    }
    if let Some(p) = &conv.top_p {
        out.insert("top_p".into(), p.clone());
    }
    if !conv.stop.is_empty() {
        out.insert("stop".into(), json!(conv.stop));
    }
    if !conv.tools.is_empty() {
        let tools: Vec<Value> = conv
            .tools
            .iter()
            .map(|t| {
                let mut f = Map::new();
                f.insert("name".into(), t.name.clone().into());
                if let Some(d) = &t.description {
                    f.insert("description".into(), d.clone().into());
                }
                f.insert(
                    "parameters".into(),
                    t.parameters
                        .clone()
                        .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
                );
                json!({ "type": "function", "function": f })
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &conv.tool_choice {
            let v = match choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Named(n) => json!({ "type": "function", "function": { "name": n } }),
            };
            out.insert("tool_choice".into(), v);
        }
        if let Some(p) = conv.parallel_tool_calls {
            out.insert("parallel_tool_calls".into(), p.into());
        }
    }
    match &conv.json {
        JsonMode::Off => {}
        JsonMode::Object => {
            out.insert("response_format".into(), json!({ "type": "json_object" }));
        }
        JsonMode::Schema { name, schema, strict } => {
            let mut js = Map::new();
            js.insert("name".into(), name.clone().into());
            js.insert("schema".into(), schema.clone());
            if let Some(s) = strict {
                js.insert("strict".into(), (*s).into());
            }
            out.insert(
                "response_format".into(),
                json!({ "type": "json_schema", "json_schema": js }),
            );
        }
    }
    if stream {
        out.insert("stream".into(), true.into());
        out.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    Ok(Value::Object(out))
}

pub(crate) fn usage_from(u: &Value) -> Option<Usage> {
    let input = count(u.get("prompt_tokens"));
    let output = count(u.get("completion_tokens"));
    if input.is_none() && output.is_none() {
        return None;
    }
    let input = input.unwrap_or(0);
    let cached = count(u.pointer("/prompt_tokens_details/cached_tokens"))
        .unwrap_or(0)
        .min(input);
    Some(Usage {
        input_tokens: input,
        cached_input_tokens: cached,
        output_tokens: output.unwrap_or(0),
    })
}

pub(crate) fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens.saturating_add(u.output_tokens),
        "prompt_tokens_details": { "cached_tokens": u.cached_input_tokens },
    })
}

pub(crate) fn parse_response(body: &Value) -> Result<Reply, TranslateError> {
    let choice = body
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| invalid("the OpenAI reply has no choices"))?;
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut parts = Vec::new();
    let text = plain_text(msg.get("content"), "choices[0].message").unwrap_or_default();
    if !text.is_empty() {
        parts.push(Part::Text(text));
    } else if let Some(r) = str_at(msg, "refusal").filter(|r| !r.is_empty()) {
        parts.push(Part::Text(r.to_owned()));
    }
    if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
        for c in calls {
            let f = c.get("function").unwrap_or(&Value::Null);
            let arguments = match f.get("arguments") {
                Some(Value::String(s)) => Args::from_text(s),
                other => Args::from_value(other),
            };
            parts.push(Part::ToolCall(ToolCall {
                id: str_at(c, "id").map(str::to_owned).unwrap_or_else(|| new_id("call_")),
                name: str_at(f, "name").unwrap_or_default().to_owned(),
                arguments,
            }));
        }
    }
    let stop = str_at(choice, "finish_reason")
        .map(Stop::from_openai)
        .unwrap_or(Stop::EndTurn);
    Ok(Reply {
        parts,
        stop,
        stop_sequence: None,
        usage: body.get("usage").and_then(usage_from),
    })
}

pub(crate) fn build_response(reply: &Reply, model: &str) -> Value {
    let text = reply.text();
    let calls: Vec<Value> = reply.tool_calls().map(tool_call_json).collect();
    let mut msg = Map::new();
    msg.insert("role".into(), "assistant".into());
    msg.insert(
        "content".into(),
        if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            Value::String(text)
        },
    );
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    msg.insert("refusal".into(), Value::Null);
    let mut out = json!({
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": msg,
            "logprobs": null,
            "finish_reason": reply.stop_for_client().openai(),
        }],
    });
    if let Some(u) = &reply.usage {
        out["usage"] = usage_json(u);
    }
    out
}
