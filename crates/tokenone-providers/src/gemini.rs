//! Gemini `generateContent`: parse and build requests and replies, usage metadata, finish
//! reasons, and conversion between JSON Schema and Gemini's OpenAPI-subset `Schema`.

use std::collections::{HashMap, VecDeque};

use serde_json::{json, Map, Value};

use crate::ir::{
    new_id, Args, Conversation, Image, JsonMode, Message, Part, Reply, Role, Stop, ToolCall, ToolChoice, ToolDef,
    ToolResult,
};
use crate::json::{count, count_param, field, invalid, number_param, str_at, string_list};
use crate::{TranslateError, Usage};

/// Keys of Gemini's `Schema` object that TokenOne carries over from JSON Schema.
const SCHEMA_KEYS: &[&str] = &[
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "required",
    "propertyOrdering",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "default",
    "example",
    "minProperties",
    "maxProperties",
];

/// JSON Schema -> Gemini `Schema` (upper-case types, `nullable`, unsupported keywords dropped).
pub(crate) fn to_gemini_schema(v: &Value) -> Result<Value, TranslateError> {
    let Some(obj) = v.as_object() else {
        return Ok(v.clone());
    };
    if obj.contains_key("$ref") {
        return Err(TranslateError::Unsupported("json_schema_ref"));
    }
    if obj.contains_key("allOf") {
        return Err(TranslateError::Unsupported("json_schema_all_of"));
    }
    let mut out = Map::new();
    for (k, val) in obj {
        match k.as_str() {
            "type" => match val {
                Value::String(t) => {
                    out.insert("type".into(), t.to_uppercase().into());
                }
                Value::Array(ts) => {
                    let names: Vec<&str> = ts.iter().filter_map(Value::as_str).collect();
                    let non_null: Vec<&str> = names.iter().copied().filter(|t| *t != "null").collect();
                    match non_null.as_slice() {
                        [one] => {
                            out.insert("type".into(), one.to_uppercase().into());
                        }
                        [] => {}
                        _ => return Err(TranslateError::Unsupported("json_schema_type_union")),
                    }
                    if names.contains(&"null") {
                        out.insert("nullable".into(), true.into());
                    }
                }
                _ => {}
            },
            "properties" => {
                let mut props = Map::new();
                if let Some(p) = val.as_object() {
                    for (name, s) in p {
                        props.insert(name.clone(), to_gemini_schema(s)?);
                    }
                }
                out.insert("properties".into(), Value::Object(props));
            }
            "items" => {
                out.insert("items".into(), to_gemini_schema(val)?);
            }
            "anyOf" | "oneOf" => {
                let list = val
                    .as_array()
                    .map(|a| a.iter().map(to_gemini_schema).collect::<Result<Vec<_>, _>>())
                    .transpose()?
                    .unwrap_or_default();
                out.insert("anyOf".into(), Value::Array(list));
            }
            "const" => {
                out.insert("enum".into(), json!([val]));
            }
            k if SCHEMA_KEYS.contains(&k) => {
                out.insert(k.to_owned(), val.clone());
            }
            _ => {}
        }
    }
    Ok(Value::Object(out))
}

/// Gemini `Schema` -> JSON Schema (lower-case types, `nullable` as a `null` type).
pub(crate) fn from_gemini_schema(v: &Value) -> Value {
    let Some(obj) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    let mut nullable = false;
    for (k, val) in obj {
        match k.as_str() {
            "type" => {
                if let Some(t) = val.as_str().filter(|t| *t != "TYPE_UNSPECIFIED") {
                    out.insert("type".into(), t.to_lowercase().into());
                }
            }
            "nullable" => nullable = val.as_bool() == Some(true),
            "properties" => {
                let props: Map<String, Value> = val
                    .as_object()
                    .map(|p| p.iter().map(|(n, s)| (n.clone(), from_gemini_schema(s))).collect())
                    .unwrap_or_default();
                out.insert("properties".into(), Value::Object(props));
            }
            "items" => {
                out.insert("items".into(), from_gemini_schema(val));
            }
            "anyOf" => {
                let list: Vec<Value> = val
                    .as_array()
                    .map(|a| a.iter().map(from_gemini_schema).collect())
                    .unwrap_or_default();
                out.insert("anyOf".into(), Value::Array(list));
            }
            "propertyOrdering" => {}
            "format" if val.as_str() == Some("enum") => {}
            _ => {
                out.insert(k.clone(), val.clone());
            }
        }
    }
    if nullable {
        if let Some(Value::String(t)) = out.get("type").cloned() {
            out.insert("type".into(), json!([t, "null"]));
        }
    }
    Value::Object(out)
}

/// A Gemini `functionResponse.response` as tool-result text (and back, see `response_object`).
fn response_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::Object(o)) if o.len() == 1 => match o.iter().next() {
            Some((k, Value::String(s))) if k == "content" || k == "output" || k == "result" => s.clone(),
            _ => Value::Object(o.clone()).to_string(),
        },
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Tool-result text as a Gemini `functionResponse.response` object.
fn response_object(text: &str, is_error: bool) -> Value {
    if !is_error {
        if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(text) {
            return v;
        }
    }
    if is_error {
        json!({ "error": text })
    } else {
        json!({ "content": text })
    }
}

fn parse_part(
    p: &Value,
    at: &str,
    conv: &mut Conversation,
    pending: &mut HashMap<String, VecDeque<String>>,
    next_call: &mut usize,
) -> Result<Option<Part>, TranslateError> {
    if let Some(t) = p.get("text").and_then(Value::as_str) {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            return Ok(None);
        }
        return Ok(Some(Part::Text(t.to_owned())));
    }
    if let Some(d) = field(p, "inlineData", "inline_data") {
        conv.has_media = true;
        let mime = field(d, "mimeType", "mime_type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let data = str_at(d, "data").unwrap_or_default();
        return Ok(Some(if mime.starts_with("image/") {
            Part::Image(Image::Base64 {
                media_type: mime.to_owned(),
                data: data.to_owned(),
            })
        } else {
            Part::Unsupported("inline_data")
        }));
    }
    if let Some(d) = field(p, "fileData", "file_data") {
        conv.has_media = true;
        let mime = field(d, "mimeType", "mime_type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let uri = field(d, "fileUri", "file_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{at}: fileData needs a fileUri")))?;
        return Ok(Some(Part::Image(Image::FileUri {
            media_type: mime.to_owned(),
            uri: uri.to_owned(),
        })));
    }
    if let Some(fc) = field(p, "functionCall", "function_call") {
        let name = str_at(fc, "name").ok_or_else(|| invalid(format!("{at}: functionCall needs a name")))?;
        let id = match str_at(fc, "id") {
            Some(id) => id.to_owned(),
            None => {
                let id = format!("call_{}", *next_call);
                *next_call += 1;
                id
            }
        };
        pending.entry(name.to_owned()).or_default().push_back(id.clone());
        return Ok(Some(Part::ToolCall(ToolCall {
            id,
            name: name.to_owned(),
            arguments: Args::from_value(fc.get("args")),
        })));
    }
    if let Some(fr) = field(p, "functionResponse", "function_response") {
        let name = str_at(fr, "name").ok_or_else(|| invalid(format!("{at}: functionResponse needs a name")))?;
        let queued = pending.get_mut(name).and_then(VecDeque::pop_front);
        let id = match (str_at(fr, "id"), queued) {
            (Some(id), _) => id.to_owned(),
            (None, Some(id)) => id,
            (None, None) => {
                let id = format!("call_{}", *next_call);
                *next_call += 1;
                id
            }
        };
        return Ok(Some(Part::ToolResult(ToolResult {
            id,
            name: Some(name.to_owned()),
            content: vec![Part::Text(response_text(fr.get("response")))],
            is_error: false,
        })));
    }
    if field(p, "executableCode", "executable_code").is_some()
        || field(p, "codeExecutionResult", "code_execution_result").is_some()
    {
        return Ok(Some(Part::Unsupported("code_execution")));
    }
    if p.get("thoughtSignature").is_some() || p.get("thought_signature").is_some() {
        return Ok(None);
    }
    Ok(Some(Part::Unsupported("content_part")))
}

fn system_texts(v: &Value) -> Result<Vec<String>, TranslateError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Object(_) => Ok(v
            .get("parts")
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .filter_map(|p| str_at(p, "text").map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()),
        _ => Err(invalid("systemInstruction: must be a Content object")),
    }
}

pub(crate) fn parse_request(body: &Value) -> Result<Conversation, TranslateError> {
    if !body.is_object() {
        return Err(invalid("the request body must be a JSON object"));
    }
    let contents = match body.get("contents") {
        Some(Value::Array(c)) if !c.is_empty() => c,
        Some(Value::Array(_)) => return Err(invalid("contents: must contain at least one content")),
        _ => return Err(invalid("contents: required, an array of contents")),
    };
    let mut conv = Conversation::default();
    if let Some(si) = field(body, "systemInstruction", "system_instruction") {
        conv.system = system_texts(si)?;
    }
    let mut pending: HashMap<String, VecDeque<String>> = HashMap::new();
    let mut next_call = 0usize;
    for (i, c) in contents.iter().enumerate() {
        let at = format!("contents[{i}]");
        let role = match str_at(c, "role") {
            None | Some("user") | Some("function") | Some("") => Role::User,
            Some("model") => Role::Assistant,
            Some(other) => return Err(invalid(format!("{at}.role: must be `user` or `model`, not `{other}`"))),
        };
        let parts = c
            .get("parts")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(format!("{at}.parts: required, an array of parts")))?;
        let mut out = Vec::new();
        for (j, p) in parts.iter().enumerate() {
            if let Some(part) = parse_part(p, &format!("{at}.parts[{j}]"), &mut conv, &mut pending, &mut next_call)? {
                out.push(part);
            }
        }
        conv.messages.push(Message::new(role, out));
    }

    if let Some(tools) = body.get("tools").filter(|t| !t.is_null()) {
        let tools = tools.as_array().ok_or_else(|| invalid("tools: must be an array"))?;
        for t in tools {
            let Some(obj) = t.as_object() else {
                return Err(invalid("tools: every tool must be an object"));
            };
            for (k, v) in obj {
                if k != "functionDeclarations" && k != "function_declarations" {
                    conv.unsupported.push("gemini_builtin_tool");
                    continue;
                }
                for (i, f) in v.as_array().into_iter().flatten().enumerate() {
                    let name = str_at(f, "name")
                        .ok_or_else(|| invalid(format!("functionDeclarations[{i}].name: required")))?;
                    let parameters = match (
                        field(f, "parametersJsonSchema", "parameters_json_schema"),
                        f.get("parameters").filter(|p| !p.is_null()),
                    ) {
                        (Some(js), _) => Some(js.clone()),
                        (None, Some(s)) => Some(from_gemini_schema(s)),
                        (None, None) => None,
                    };
                    conv.tools.push(ToolDef {
                        name: name.to_owned(),
                        description: str_at(f, "description").map(str::to_owned),
                        parameters,
                    });
                }
            }
        }
    }
    if let Some(fcc) = field(body, "toolConfig", "tool_config")
        .and_then(|tc| field(tc, "functionCallingConfig", "function_calling_config"))
    {
        let allowed: Vec<String> = field(fcc, "allowedFunctionNames", "allowed_function_names")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        conv.tool_choice = match str_at(fcc, "mode") {
            Some("ANY") => match allowed.as_slice() {
                [] => Some(ToolChoice::Required),
                [one] => Some(ToolChoice::Named(one.clone())),
                _ => {
                    conv.unsupported.push("allowed_function_names");
                    None
                }
            },
            Some("NONE") => Some(ToolChoice::None),
            Some("AUTO") | None | Some("MODE_UNSPECIFIED") => Some(ToolChoice::Auto),
            Some(_) => {
                conv.unsupported.push("function_calling_mode");
                None
            }
        };
    }
    if let Some(gc) = field(body, "generationConfig", "generation_config") {
        conv.max_tokens = count_param(field(gc, "maxOutputTokens", "max_output_tokens"), "maxOutputTokens")?;
        conv.temperature = number_param(gc.get("temperature"), "temperature")?;
        conv.top_p = number_param(field(gc, "topP", "top_p"), "topP")?;
        conv.top_k = number_param(field(gc, "topK", "top_k"), "topK")?;
        conv.stop = string_list(field(gc, "stopSequences", "stop_sequences"), "stopSequences")?;
        let schema = field(gc, "responseJsonSchema", "response_json_schema")
            .cloned()
            .or_else(|| field(gc, "responseSchema", "response_schema").map(from_gemini_schema));
        conv.json = match (
            field(gc, "responseMimeType", "response_mime_type").and_then(Value::as_str),
            schema,
        ) {
            (Some("application/json"), Some(schema)) => JsonMode::Schema {
                name: "response".into(),
                schema,
                strict: None,
            },
            (Some("application/json"), None) => JsonMode::Object,
            (None | Some("text/plain"), _) => JsonMode::Off,
            (Some(_), _) => {
                conv.unsupported.push("response_mime_type");
                JsonMode::Off
            }
        };
        if count(field(gc, "candidateCount", "candidate_count")).is_some_and(|n| n > 1) {
            conv.unsupported.push("candidate_count");
        }
        if field(gc, "responseModalities", "response_modalities")
            .and_then(Value::as_array)
            .is_some_and(|m| {
                m.iter()
                    .any(|x| x.as_str().is_some_and(|s| !s.eq_ignore_ascii_case("text")))
            })
        {
            conv.unsupported.push("response_modalities");
        }
    }
    if field(body, "cachedContent", "cached_content").is_some() {
        conv.unsupported.push("cached_content");
    }
    Ok(conv)
}

fn function_call_json(c: &ToolCall, lossless: bool) -> Result<Value, TranslateError> {
    let args = if lossless {
        c.arguments.to_object_lossless()
    } else {
        c.arguments.to_object()?
    };
    Ok(json!({ "functionCall": { "name": c.name, "args": args } }))
}

pub(crate) fn build_request(conv: &Conversation) -> Result<Value, TranslateError> {
    conv.check_supported()?;
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut contents: Vec<(Role, Vec<Value>)> = Vec::new();
    for m in &conv.messages {
        let mut parts = Vec::new();
        for p in &m.parts {
            match p {
                Part::Text(t) => {
                    if !t.is_empty() {
                        parts.push(json!({ "text": t }));
                    }
                }
                Part::Image(Image::Base64 { media_type, data }) => {
                    parts.push(json!({ "inlineData": { "mimeType": media_type, "data": data } }))
                }
                Part::Image(Image::FileUri { media_type, uri }) => {
                    parts.push(json!({ "fileData": { "mimeType": media_type, "fileUri": uri } }))
                }
                Part::Image(Image::Url(_)) => return Err(TranslateError::Unsupported("image_url")),
                Part::ToolCall(c) => {
                    names.insert(&c.id, &c.name);
                    parts.push(function_call_json(c, false)?);
                }
                Part::ToolResult(r) => {
                    let name = r
                        .name
                        .as_deref()
                        .or_else(|| names.get(r.id.as_str()).copied())
                        .ok_or_else(|| invalid(format!("tool result `{}` answers no known tool call", r.id)))?;
                    let text = r.text_only()?;
                    parts.push(json!({
                        "functionResponse": { "name": name, "response": response_object(&text, r.is_error) }
                    }));
                }
                Part::Unsupported(f) => return Err(TranslateError::Unsupported(f)),
            }
        }
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((role, prev)) if *role == m.role => prev.extend(parts),
            _ => contents.push((m.role, parts)),
        }
    }
    let contents: Vec<Value> = contents
        .into_iter()
        .map(|(role, parts)| json!({ "role": if role == Role::User { "user" } else { "model" }, "parts": parts }))
        .collect();

    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !conv.system.is_empty() {
        out.insert(
            "systemInstruction".into(),
            json!({ "parts": [{ "text": conv.system.join("\n\n") }] }),
        );
    }
    if !conv.tools.is_empty() {
        let mut decls = Vec::new();
        for t in &conv.tools {
            let mut d = Map::new();
            d.insert("name".into(), t.name.clone().into());
            if let Some(desc) = &t.description {
                d.insert("description".into(), desc.clone().into());
            }
            if let Some(p) = &t.parameters {
                // Gemini refuses an OBJECT schema without properties; a function without
                // parameters simply has none.
                let empty = p.get("properties").and_then(Value::as_object).is_none_or(Map::is_empty);
                if !empty {
                    d.insert("parameters".into(), to_gemini_schema(p)?);
                }
            }
            decls.push(Value::Object(d));
        }
        out.insert("tools".into(), json!([{ "functionDeclarations": decls }]));
        if let Some(choice) = &conv.tool_choice {
            let fcc = match choice {
                ToolChoice::Auto => json!({ "mode": "AUTO" }),
                ToolChoice::None => json!({ "mode": "NONE" }),
                ToolChoice::Required => json!({ "mode": "ANY" }),
                ToolChoice::Named(n) => json!({ "mode": "ANY", "allowedFunctionNames": [n] }),
            };
            out.insert("toolConfig".into(), json!({ "functionCallingConfig": fcc }));
        }
    }
    let mut gc = Map::new();
    if let Some(n) = conv.max_tokens {
        gc.insert("maxOutputTokens".into(), n.into());
    }
    if let Some(t) = &conv.temperature {
        gc.insert("temperature".into(), t.clone());
    }
    if let Some(p) = &conv.top_p {
        gc.insert("topP".into(), p.clone());
    }
    if let Some(k) = &conv.top_k {
        gc.insert("topK".into(), k.clone());
    }
    if !conv.stop.is_empty() {
        gc.insert("stopSequences".into(), json!(conv.stop));
    }
    match &conv.json {
        JsonMode::Off => {}
        JsonMode::Object => {
            gc.insert("responseMimeType".into(), "application/json".into());
        }
        JsonMode::Schema { schema, .. } => {
            gc.insert("responseMimeType".into(), "application/json".into());
            gc.insert("responseSchema".into(), to_gemini_schema(schema)?);
        }
    }
    if !gc.is_empty() {
        out.insert("generationConfig".into(), Value::Object(gc));
    }
    Ok(Value::Object(out))
}

/// Gemini's `promptTokenCount` includes cached content; thinking tokens are billed as output.
pub(crate) fn usage_from(m: &Value) -> Option<Usage> {
    let prompt = count(m.get("promptTokenCount"));
    let candidates = count(m.get("candidatesTokenCount"));
    if prompt.is_none() && candidates.is_none() {
        return None;
    }
    let input = prompt.unwrap_or(0);
    let thoughts = count(m.get("thoughtsTokenCount")).unwrap_or(0);
    Some(Usage {
        input_tokens: input,
        cached_input_tokens: count(m.get("cachedContentTokenCount")).unwrap_or(0).min(input),
        output_tokens: candidates.unwrap_or(0).saturating_add(thoughts),
    })
}

pub(crate) fn usage_json(u: &Usage) -> Value {
    let mut m = json!({
        "promptTokenCount": u.input_tokens,
        "candidatesTokenCount": u.output_tokens,
        "totalTokenCount": u.input_tokens.saturating_add(u.output_tokens),
    });
    if u.cached_input_tokens > 0 {
        m["cachedContentTokenCount"] = u.cached_input_tokens.into();
    }
    m
}

pub(crate) fn parse_response(body: &Value) -> Result<Reply, TranslateError> {
    let usage = body.get("usageMetadata").and_then(usage_from);
    let Some(cand) = body.get("candidates").and_then(Value::as_array).and_then(|c| c.first()) else {
        if body.get("promptFeedback").is_some() {
            // The prompt itself was blocked.
            return Ok(Reply {
                parts: Vec::new(),
                stop: Stop::ContentFilter,
                stop_sequence: None,
                usage,
            });
        }
        return Err(invalid("the Gemini reply has no candidates"));
    };
    let mut parts = Vec::new();
    let empty = Vec::new();
    let raw_parts = cand
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for p in raw_parts {
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            if p.get("thought").and_then(Value::as_bool) != Some(true) && !t.is_empty() {
                parts.push(Part::Text(t.to_owned()));
            }
        } else if let Some(fc) = field(p, "functionCall", "function_call") {
            parts.push(Part::ToolCall(ToolCall {
                id: str_at(fc, "id").map(str::to_owned).unwrap_or_else(|| new_id("call_")),
                name: str_at(fc, "name").unwrap_or_default().to_owned(),
                arguments: Args::from_value(fc.get("args")),
            }));
        }
    }
    Ok(Reply {
        parts,
        stop: str_at(cand, "finishReason")
            .map(Stop::from_gemini)
            .unwrap_or(Stop::EndTurn),
        stop_sequence: None,
        usage,
    })
}

pub(crate) fn build_response(reply: &Reply, model: &str) -> Value {
    let mut parts = Vec::new();
    for p in &reply.parts {
        match p {
            Part::Text(t) => parts.push(json!({ "text": t })),
            Part::ToolCall(c) => {
                if let Ok(v) = function_call_json(c, true) {
                    parts.push(v);
                }
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        parts.push(json!({ "text": "" }));
    }
    let mut out = json!({
        "candidates": [{
            "content": { "role": "model", "parts": parts },
            "finishReason": reply.stop_for_client().gemini(),
            "index": 0,
        }],
        "modelVersion": model,
        "responseId": new_id(""),
    });
    if let Some(u) = &reply.usage {
        out["usageMetadata"] = usage_json(u);
    }
    out
}

/// A streamed function call's arguments (collected text) as a Gemini `args` object.
pub(crate) fn args_object(text: &str) -> Value {
    Args::from_text(text).to_object_lossless()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_schema_round_trips_through_gemini_schema() {
        let js = json!({
            "type": "object",
            "$schema": "http://json-schema.org/draft-07/schema#",
            "additionalProperties": false,
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "days": {"type": ["integer", "null"]},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}
            },
            "required": ["city"]
        });
        let g = to_gemini_schema(&js).unwrap();
        assert_eq!(
            g,
            json!({
                "type": "OBJECT",
                "properties": {
                    "city": {"type": "STRING", "description": "City name"},
                    "days": {"type": "INTEGER", "nullable": true},
                    "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}}
                },
                "required": ["city"]
            })
        );
        let back = from_gemini_schema(&g);
        assert_eq!(back["properties"]["days"]["type"], json!(["integer", "null"]));
        assert_eq!(back["properties"]["tags"]["items"]["type"], "string");
        assert_eq!(back["type"], "object");
    }

    #[test]
    fn refs_and_unions_are_unsupported() {
        assert_eq!(
            to_gemini_schema(&json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}})),
            Err(TranslateError::Unsupported("json_schema_ref"))
        );
        assert_eq!(
            to_gemini_schema(&json!({"type": ["string", "integer"]})),
            Err(TranslateError::Unsupported("json_schema_type_union"))
        );
    }

    #[test]
    fn function_response_text_round_trips() {
        assert_eq!(response_text(Some(&json!({"content": "22C"}))), "22C");
        assert_eq!(response_object("22C", false), json!({"content": "22C"}));
        assert_eq!(response_object("{\"t\":22}", false), json!({"t": 22}));
        assert_eq!(response_text(Some(&json!({"t": 22}))), "{\"t\":22}");
        assert_eq!(response_object("boom", true), json!({"error": "boom"}));
    }
}
