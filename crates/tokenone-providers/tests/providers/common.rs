//! Shared fixtures (the same conversation and reply in each vendor shape) and stream validators.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tokenone_providers::{Shape, SseEvent, SseParser, Usage};

pub fn weather_schema() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
}

/// System prompt, a user turn, an assistant tool call, its result, a follow-up user turn, one tool,
/// `max_tokens` 300, temperature 0.5, stop ["END"].
pub fn conversation(shape: Shape, model: Option<&str>) -> Value {
    let mut v = match shape {
        Shape::OpenAi => json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "What's the weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "22C and sunny"},
                {"role": "user", "content": "Thanks! And in Rome?"}
            ],
            "max_tokens": 300,
            "temperature": 0.5,
            "stop": ["END"],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": weather_schema()}}],
            "tool_choice": "auto"
        }),
        Shape::Anthropic => json!({
            "model": "claude-sonnet-4",
            "system": "You are terse.",
            "messages": [
                {"role": "user", "content": "What's the weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "22C and sunny"},
                    {"type": "text", "text": "Thanks! And in Rome?"}
                ]}
            ],
            "max_tokens": 300,
            "temperature": 0.5,
            "stop_sequences": ["END"],
            "tools": [{"name": "get_weather", "description": "Current weather", "input_schema": weather_schema()}],
            "tool_choice": {"type": "auto"}
        }),
        Shape::Gemini => json!({
            "contents": [
                {"role": "user", "parts": [{"text": "What's the weather in Paris?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"content": "22C and sunny"}}},
                    {"text": "Thanks! And in Rome?"}
                ]}
            ],
            "systemInstruction": {"parts": [{"text": "You are terse."}]},
            "tools": [{"functionDeclarations": [{
                "name": "get_weather",
                "description": "Current weather",
                "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}
            }]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
            "generationConfig": {"maxOutputTokens": 300, "temperature": 0.5, "stopSequences": ["END"]}
        }),
    };
    if let (Some(m), Some(obj)) = (model, v.as_object_mut()) {
        if shape != Shape::Gemini {
            obj.insert("model".into(), m.into());
        }
    }
    v
}

/// Replaces tool-call ids (`id`, `tool_call_id`, `tool_use_id`) by `ID0`, `ID1`, ... in order of
/// first appearance, so translations that must synthesise ids compare exactly.
pub fn normalize_ids(v: &Value) -> Value {
    fn walk(v: &Value, seen: &mut BTreeMap<String, String>) -> Value {
        match v {
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| {
                        let x = match (k.as_str(), x) {
                            ("id" | "tool_call_id" | "tool_use_id", Value::String(s)) => {
                                let n = seen.len();
                                Value::String(seen.entry(s.clone()).or_insert_with(|| format!("ID{n}")).clone())
                            }
                            _ => walk(x, seen),
                        };
                        (k.clone(), x)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(|x| walk(x, seen)).collect()),
            other => other.clone(),
        }
    }
    walk(v, &mut BTreeMap::new())
}

/// A reply with text and one tool call (`get_weather` {"city":"Rome"}), stopped for tool use;
/// usage: 100 input of which 20 cached, 15 output.
pub fn tool_reply(shape: Shape) -> Value {
    match shape {
        Shape::OpenAi => json!({
            "id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 15, "total_tokens": 115, "prompt_tokens_details": {"cached_tokens": 20}}
        }),
        Shape::Anthropic => json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Rome"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 80, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 20, "output_tokens": 15}
        }),
        Shape::Gemini => json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "Let me check."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
            ]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 15, "totalTokenCount": 115, "cachedContentTokenCount": 20},
            "modelVersion": "gemini-1.5-pro-002"
        }),
    }
}

/// A text-only reply "Hi." with the given native stop/finish reason and usage 10/0/3.
pub fn text_reply(shape: Shape, reason: &str) -> Value {
    match shape {
        Shape::OpenAi => json!({
            "id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": reason}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
        }),
        Shape::Anthropic => json!({
            "id": "msg_x", "type": "message", "role": "assistant", "model": "claude-3-5-haiku",
            "content": [{"type": "text", "text": "Hi."}],
            "stop_reason": reason, "stop_sequence": if reason == "stop_sequence" { json!("END") } else { Value::Null },
            "usage": {"input_tokens": 10, "output_tokens": 3}
        }),
        Shape::Gemini => json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Hi."}]}, "finishReason": reason, "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 3, "totalTokenCount": 13}
        }),
    }
}

pub const SAMPLE_USAGE: Usage = Usage {
    input_tokens: 100,
    cached_input_tokens: 20,
    output_tokens: 15,
};

/// A realistic upstream stream (text "Hello wörld", then a `get_weather` call with
/// {"city":"Rome"}, usage 100/20/15) as raw SSE bytes.
pub fn recorded_stream(shape: Shape) -> String {
    let mut s = String::new();
    match shape {
        Shape::OpenAi => {
            let head = r#""id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1""#;
            let chunk = |choices: &str| format!("data: {{{head},\"choices\":{choices}}}\n\n");
            s += &chunk(
                r#"[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]"#,
            );
            s += &chunk(r#"[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]"#);
            s += &chunk(r#"[{"index":0,"delta":{"content":" wörld"},"logprobs":null,"finish_reason":null}]"#);
            s += &chunk(
                r#"[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_9","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]"#,
            );
            s += &chunk(
                r#"[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]},"logprobs":null,"finish_reason":null}]"#,
            );
            s += &chunk(
                r#"[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Rome\"}"}}]},"logprobs":null,"finish_reason":null}]"#,
            );
            s += &chunk(r#"[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]"#);
            s += &format!("data: {{{head},\"choices\":[],\"usage\":{{\"prompt_tokens\":100,\"completion_tokens\":15,\"total_tokens\":115,\"prompt_tokens_details\":{{\"cached_tokens\":20}}}}}}\n\n");
            s += "data: [DONE]\n\n";
        }
        Shape::Anthropic => {
            let ev = |name: &str, data: &str| format!("event: {name}\ndata: {data}\n\n");
            s += &ev(
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":80,"cache_creation_input_tokens":0,"cache_read_input_tokens":20,"output_tokens":1}}}"#,
            );
            s += &ev(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            );
            s += &ev("ping", r#"{"type": "ping"}"#);
            s += &ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
            );
            s += &ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" wörld"}}"#,
            );
            s += &ev("content_block_stop", r#"{"type":"content_block_stop","index":0}"#);
            s += &ev(
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_9","name":"get_weather","input":{}}}"#,
            );
            s += &ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            );
            s += &ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"ci"}}"#,
            );
            s += &ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ty\":\"Rome\"}"}}"#,
            );
            s += &ev("content_block_stop", r#"{"type":"content_block_stop","index":1}"#);
            s += &ev(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":15}}"#,
            );
            s += &ev("message_stop", r#"{"type":"message_stop"}"#);
        }
        Shape::Gemini => {
            s += "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 100,\"totalTokenCount\": 100,\"cachedContentTokenCount\": 20},\"modelVersion\": \"gemini-1.5-pro-002\",\"responseId\": \"r1\"}\r\n\r\n";
            s += "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" wörld\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 100,\"candidatesTokenCount\": 4,\"totalTokenCount\": 104,\"cachedContentTokenCount\": 20},\"modelVersion\": \"gemini-1.5-pro-002\",\"responseId\": \"r1\"}\r\n\r\n";
            s += "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"get_weather\",\"args\": {\"city\": \"Rome\"}}}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 100,\"candidatesTokenCount\": 15,\"totalTokenCount\": 115,\"cachedContentTokenCount\": 20},\"modelVersion\": \"gemini-1.5-pro-002\",\"responseId\": \"r1\"}\r\n\r\n";
        }
    }
    s
}

pub fn parse_all(bytes: &[u8]) -> Vec<SseEvent> {
    let mut p = SseParser::new();
    let mut out = p.push(bytes);
    out.extend(p.finish());
    out
}

/// What a client accumulated from a stream of its own shape.
#[derive(Debug, Default, PartialEq)]
pub struct Collected {
    pub text: String,
    /// (id, name, arguments as JSON)
    pub tools: Vec<(String, String, Value)>,
    pub stop: String,
    pub usage: Option<Usage>,
    pub text_deltas: usize,
}

fn data_json(ev: &SseEvent) -> Value {
    serde_json::from_str(&ev.data).unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", ev.data))
}

/// Checks an OpenAI chat-completion stream the way the OpenAI SDK consumes it.
pub fn collect_openai(events: &[SseEvent], model: &str, expect_usage_chunk: bool) -> Collected {
    let mut c = Collected::default();
    let (last, body) = events.split_last().expect("an empty stream");
    assert_eq!(last.data, "[DONE]", "an OpenAI stream ends with [DONE]");
    assert!(events.iter().all(|e| e.event.is_none()), "OpenAI events are unnamed");
    let mut args: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
    let mut finish_seen = false;
    let mut usage_seen = false;
    let mut id = None;
    for (i, ev) in body.iter().enumerate() {
        let v = data_json(ev);
        assert_eq!(v["object"], "chat.completion.chunk");
        assert_eq!(v["model"], model);
        let this_id = v["id"].as_str().expect("chunk id").to_owned();
        assert!(this_id.starts_with("chatcmpl-"), "{this_id}");
        assert_eq!(id.get_or_insert(this_id.clone()), &this_id, "one id per stream");
        let choices = v["choices"].as_array().expect("choices");
        if choices.is_empty() {
            assert!(finish_seen, "usage chunk comes after the finish chunk");
            assert!(!usage_seen);
            usage_seen = true;
            let u = &v["usage"];
            c.usage = Some(Usage {
                input_tokens: u["prompt_tokens"].as_u64().unwrap(),
                cached_input_tokens: u["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0),
                output_tokens: u["completion_tokens"].as_u64().unwrap(),
            });
            assert_eq!(
                u["total_tokens"].as_u64().unwrap(),
                u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
            );
            continue;
        }
        assert!(!finish_seen, "no content after the finish chunk");
        let ch = &choices[0];
        assert_eq!(ch["index"], 0);
        let delta = &ch["delta"];
        if i == 0 {
            assert_eq!(delta["role"], "assistant", "the first chunk names the role");
        }
        if let Some(t) = delta["content"].as_str() {
            if !t.is_empty() {
                c.text_deltas += 1;
            }
            c.text.push_str(t);
        }
        if let Some(calls) = delta["tool_calls"].as_array() {
            for tc in calls {
                let idx = tc["index"].as_u64().expect("tool call index");
                match args.get_mut(&idx) {
                    None => {
                        assert_eq!(idx as usize, args.len(), "tool indexes are dense");
                        let id = tc["id"].as_str().expect("first tool delta has an id").to_owned();
                        assert_eq!(tc["type"], "function");
                        let name = tc["function"]["name"]
                            .as_str()
                            .expect("first tool delta has a name")
                            .to_owned();
                        let a = tc["function"]["arguments"].as_str().unwrap_or("").to_owned();
                        args.insert(idx, (id, name, a));
                    }
                    Some(entry) => {
                        assert!(tc.get("id").is_none(), "later tool deltas carry no id");
                        entry
                            .2
                            .push_str(tc["function"]["arguments"].as_str().expect("arguments fragment"));
                    }
                }
            }
        }
        if let Some(r) = ch["finish_reason"].as_str() {
            finish_seen = true;
            c.stop = r.to_owned();
        }
    }
    assert!(finish_seen, "a finish_reason was sent");
    assert_eq!(usage_seen, expect_usage_chunk, "usage chunk presence");
    c.tools = args
        .into_values()
        .map(|(id, name, a)| (id, name, serde_json::from_str(&a).expect("arguments are JSON")))
        .collect();
    c
}

/// Checks an Anthropic Messages stream: event order, block indexes, names matching types.
pub fn collect_anthropic(events: &[SseEvent], model: &str) -> Collected {
    let mut c = Collected::default();
    let mut open: Option<(u64, String)> = None;
    let mut next_index = 0;
    let mut tools: Vec<(String, String, String)> = Vec::new();
    let mut input = None;
    let mut phase = 0; // 0 before message_start, 1 content, 2 after message_delta, 3 after message_stop
    for ev in events {
        let v = data_json(ev);
        let ty = v["type"].as_str().expect("type").to_owned();
        if ty != "ping" {
            assert_eq!(ev.event.as_deref(), Some(ty.as_str()), "event name matches type");
        }
        match ty.as_str() {
            "message_start" => {
                assert_eq!(phase, 0, "message_start comes first, once");
                phase = 1;
                let m = &v["message"];
                assert_eq!(m["type"], "message");
                assert_eq!(m["role"], "assistant");
                assert_eq!(m["model"], model);
                assert!(m["id"].as_str().unwrap().starts_with("msg_"));
                assert_eq!(m["content"], json!([]));
                input = Some((
                    m["usage"]["input_tokens"].as_u64().unwrap(),
                    m["usage"]["cache_read_input_tokens"].as_u64().unwrap_or(0),
                ));
            }
            "content_block_start" => {
                assert_eq!(phase, 1);
                assert!(open.is_none(), "the previous block was stopped");
                let idx = v["index"].as_u64().unwrap();
                assert_eq!(idx, next_index, "block indexes count up from 0");
                next_index += 1;
                let b = &v["content_block"];
                let kind = b["type"].as_str().unwrap().to_owned();
                match kind.as_str() {
                    "text" => assert_eq!(b["text"], ""),
                    "tool_use" => {
                        assert_eq!(b["input"], json!({}));
                        let id = b["id"].as_str().unwrap();
                        assert!(
                            id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                            "{id}"
                        );
                        tools.push((id.to_owned(), b["name"].as_str().unwrap().to_owned(), String::new()));
                    }
                    other => panic!("unexpected block type {other}"),
                }
                open = Some((idx, kind));
            }
            "content_block_delta" => {
                let (idx, kind) = open.clone().expect("a delta inside an open block");
                assert_eq!(v["index"].as_u64().unwrap(), idx);
                let d = &v["delta"];
                match (kind.as_str(), d["type"].as_str().unwrap()) {
                    ("text", "text_delta") => {
                        c.text_deltas += 1;
                        c.text.push_str(d["text"].as_str().unwrap());
                    }
                    ("tool_use", "input_json_delta") => tools
                        .last_mut()
                        .unwrap()
                        .2
                        .push_str(d["partial_json"].as_str().unwrap()),
                    other => panic!("delta {other:?} does not fit its block"),
                }
            }
            "content_block_stop" => {
                let (idx, _) = open.take().expect("stop of an open block");
                assert_eq!(v["index"].as_u64().unwrap(), idx);
            }
            "message_delta" => {
                assert_eq!(phase, 1);
                assert!(open.is_none(), "blocks are stopped before message_delta");
                phase = 2;
                c.stop = v["delta"]["stop_reason"].as_str().unwrap().to_owned();
                let out = v["usage"]["output_tokens"].as_u64().unwrap();
                let (mut inp, mut cached) = input.unwrap();
                if let Some(i) = v["usage"]["input_tokens"].as_u64() {
                    inp = i;
                }
                if let Some(r) = v["usage"]["cache_read_input_tokens"].as_u64() {
                    cached = r;
                }
                c.usage = Some(Usage {
                    input_tokens: inp + cached,
                    cached_input_tokens: cached,
                    output_tokens: out,
                });
            }
            "message_stop" => {
                assert_eq!(phase, 2, "message_stop follows message_delta");
                phase = 3;
            }
            "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    assert_eq!(phase, 3, "the stream ended with message_stop");
    c.tools = tools
        .into_iter()
        .map(|(id, name, a)| (id, name, serde_json::from_str(&a).expect("input JSON")))
        .collect();
    c
}

/// Checks a Gemini streamGenerateContent (alt=sse) stream.
pub fn collect_gemini(events: &[SseEvent], model: &str) -> Collected {
    let mut c = Collected::default();
    let n = events.len();
    assert!(n > 0);
    for (i, ev) in events.iter().enumerate() {
        assert!(ev.event.is_none(), "Gemini events are unnamed");
        let v = data_json(ev);
        assert_eq!(v["modelVersion"], model);
        let cand = &v["candidates"][0];
        assert_eq!(cand["content"]["role"], "model");
        let last = i + 1 == n;
        assert_eq!(
            cand.get("finishReason").is_some(),
            last,
            "only the last chunk has finishReason"
        );
        for p in cand["content"]["parts"].as_array().expect("parts") {
            if let Some(t) = p["text"].as_str() {
                if !t.is_empty() {
                    c.text_deltas += 1;
                }
                c.text.push_str(t);
            } else if let Some(fc) = p.get("functionCall") {
                assert!(fc["args"].is_object(), "args is an object");
                c.tools.push((
                    String::new(),
                    fc["name"].as_str().unwrap().to_owned(),
                    fc["args"].clone(),
                ));
            } else {
                panic!("unexpected part {p}");
            }
        }
        if last {
            c.stop = cand["finishReason"].as_str().unwrap().to_owned();
            let u = &v["usageMetadata"];
            c.usage = Some(Usage {
                input_tokens: u["promptTokenCount"].as_u64().unwrap(),
                cached_input_tokens: u["cachedContentTokenCount"].as_u64().unwrap_or(0),
                output_tokens: u["candidatesTokenCount"].as_u64().unwrap(),
            });
            assert_eq!(
                u["totalTokenCount"].as_u64().unwrap(),
                c.usage.unwrap().input_tokens + c.usage.unwrap().output_tokens
            );
        } else {
            assert!(v.get("usageMetadata").is_none() || v["usageMetadata"].is_object());
        }
    }
    c
}

pub fn collect(shape: Shape, events: &[SseEvent], model: &str, openai_usage_chunk: bool) -> Collected {
    match shape {
        Shape::OpenAi => collect_openai(events, model, openai_usage_chunk),
        Shape::Anthropic => collect_anthropic(events, model),
        Shape::Gemini => collect_gemini(events, model),
    }
}

/// The native tool-use stop reason of each client shape.
pub fn tool_stop(shape: Shape) -> &'static str {
    match shape {
        Shape::OpenAi => "tool_calls",
        Shape::Anthropic => "tool_use",
        Shape::Gemini => "STOP",
    }
}
