//! Streaming: watching a same-shape SSE relay (usage, delivered text, end) and translating an
//! SSE stream from one vendor shape to another, event by event.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use crate::ir::{anthropic_tool_id, new_id, unix_now, Stop};
use crate::json::{field, str_at};
use crate::sse::SseEvent;
use crate::{anthropic, estimate_tokens, gemini, openai, Shape, Usage};

/// One vendor-neutral step of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Delta {
    /// The upstream began its reply.
    Start,
    Text(String),
    ToolStart {
        key: u64,
        id: String,
        name: String,
    },
    ToolArgs {
        key: u64,
        fragment: String,
    },
    ToolEnd {
        key: u64,
    },
    Stop(Stop, Option<String>),
    Error(String),
    /// The upstream's terminal event.
    Done,
}

/// Usage as reported so far by a stream, and whether the final figure has arrived.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UsageState {
    a_input: Option<u64>,
    a_cache_write: Option<u64>,
    a_cache_read: Option<u64>,
    input: Option<u64>,
    cached: Option<u64>,
    output: Option<u64>,
    complete: bool,
}

impl UsageState {
    fn set(&mut self, u: Usage) {
        self.input = Some(u.input_tokens);
        self.cached = Some(u.cached_input_tokens);
        self.output = Some(u.output_tokens);
    }

    fn observe_openai(&mut self, v: &Value) {
        if let Some(u) = openai::usage_from(v) {
            self.set(u);
            self.complete = true;
        }
    }

    /// Anthropic reports cumulative figures: input in `message_start` (and possibly again in
    /// `message_delta`), output in `message_delta`.
    fn observe_anthropic(&mut self, v: &Value, is_final: bool) {
        use crate::json::count;
        let input = count(v.get("input_tokens"));
        let write = count(v.get("cache_creation_input_tokens"));
        let read = count(v.get("cache_read_input_tokens"));
        let output = count(v.get("output_tokens"));
        self.a_input = input.or(self.a_input);
        self.a_cache_write = write.or(self.a_cache_write);
        self.a_cache_read = read.or(self.a_cache_read);
        if self.a_input.is_some() || self.a_cache_write.is_some() || self.a_cache_read.is_some() {
            let read = self.a_cache_read.unwrap_or(0);
            self.input = Some(
                self.a_input
                    .unwrap_or(0)
                    .saturating_add(self.a_cache_write.unwrap_or(0))
                    .saturating_add(read),
            );
            self.cached = Some(read);
        }
        if let Some(o) = output {
            self.output = Some(o);
            if is_final {
                self.complete = true;
            }
        }
    }

    fn observe_gemini(&mut self, v: &Value, is_final: bool) {
        if let Some(u) = gemini::usage_from(v) {
            self.set(u);
            if is_final {
                self.complete = true;
            }
        }
    }

    /// The best figures known so far (zeros for what is unknown).
    fn known(&self) -> Usage {
        Usage {
            input_tokens: self.input.unwrap_or(0),
            cached_input_tokens: self.cached.unwrap_or(0),
            output_tokens: self.output.unwrap_or(0),
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.complete.then(|| self.known())
    }
}

/// Turns upstream SSE events of one shape into [`Delta`]s, tracking usage and delivered text.
#[derive(Debug)]
struct Decoder {
    shape: Shape,
    usage: UsageState,
    chars: usize,
    started: bool,
    finished: bool,
    done_sent: bool,
    error: Option<String>,
    /// OpenAI tool-call indexes already announced.
    openai_tools: HashSet<u64>,
    /// Anthropic content-block indexes that are tool calls.
    anthropic_tools: HashSet<u64>,
    gemini_calls: u64,
    gemini_saw_call: bool,
}

impl Decoder {
    fn new(shape: Shape) -> Self {
        Decoder {
            shape,
            usage: UsageState::default(),
            chars: 0,
            started: false,
            finished: false,
            done_sent: false,
            error: None,
            openai_tools: HashSet::new(),
            anthropic_tools: HashSet::new(),
            gemini_calls: 0,
            gemini_saw_call: false,
        }
    }

    fn push(&mut self, out: &mut Vec<Delta>, d: Delta) {
        match &d {
            Delta::Text(t) => self.chars += t.chars().count(),
            Delta::ToolArgs { fragment, .. } => self.chars += fragment.chars().count(),
            Delta::Error(m) => self.error = Some(m.clone()),
            Delta::Done => self.done_sent = true,
            _ => {}
        }
        out.push(d);
    }

    fn start(&mut self, out: &mut Vec<Delta>) {
        if !self.started {
            self.started = true;
            self.push(out, Delta::Start);
        }
    }

    fn decode(&mut self, ev: &SseEvent, out: &mut Vec<Delta>) {
        let parsed = parse_data(ev);
        self.decode_parsed(ev, parsed.as_ref(), out);
    }

    /// [`Decoder::decode`] with the event's data already parsed ([`parse_data`]).
    fn decode_parsed(&mut self, ev: &SseEvent, v: Option<&Value>, out: &mut Vec<Delta>) {
        if self.done_sent {
            return;
        }
        match self.shape {
            Shape::OpenAi => self.decode_openai(ev, v, out),
            Shape::Anthropic => self.decode_anthropic(ev, v, out),
            Shape::Gemini => self.decode_gemini(v, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<Delta>) {
        if self.shape == Shape::Gemini && self.finished && !self.done_sent {
            self.push(out, Delta::Done);
        }
    }

    fn decode_openai(&mut self, ev: &SseEvent, v: Option<&Value>, out: &mut Vec<Delta>) {
        if ev.data.trim() == "[DONE]" {
            self.finished = true;
            self.push(out, Delta::Done);
            return;
        }
        let Some(v) = v else {
            return;
        };
        if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
            let msg = str_at(e, "message").unwrap_or("the upstream stream failed").to_owned();
            self.push(out, Delta::Error(msg));
            return;
        }
        self.start(out);
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.usage.observe_openai(u);
        }
        let Some(choice) = v.get("choices").and_then(Value::as_array).and_then(|c| {
            c.iter()
                .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        }) else {
            return;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        for key in ["content", "refusal"] {
            if let Some(t) = str_at(delta, key).filter(|t| !t.is_empty()) {
                self.push(out, Delta::Text(t.to_owned()));
            }
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for (pos, c) in calls.iter().enumerate() {
                let key = c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
                let f = c.get("function").unwrap_or(&Value::Null);
                if !self.openai_tools.contains(&key) {
                    self.openai_tools.insert(key);
                    let id = str_at(c, "id").map(str::to_owned).unwrap_or_else(|| new_id("call_"));
                    let name = str_at(f, "name").unwrap_or_default().to_owned();
                    self.push(out, Delta::ToolStart { key, id, name });
                }
                if let Some(a) = str_at(f, "arguments").filter(|a| !a.is_empty()) {
                    self.push(
                        out,
                        Delta::ToolArgs {
                            key,
                            fragment: a.to_owned(),
                        },
                    );
                }
            }
        }
        if let Some(r) = str_at(choice, "finish_reason") {
            self.push(out, Delta::Stop(Stop::from_openai(r), None));
        }
    }

    fn decode_anthropic(&mut self, ev: &SseEvent, v: Option<&Value>, out: &mut Vec<Delta>) {
        let Some(v) = v else {
            return;
        };
        let ty = str_at(v, "type").or(ev.event.as_deref()).unwrap_or_default();
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match ty {
            "message_start" => {
                if let Some(u) = v.pointer("/message/usage") {
                    self.usage.observe_anthropic(u, false);
                }
                self.start(out);
            }
            "content_block_start" => {
                self.start(out);
                let block = v.get("content_block").unwrap_or(&Value::Null);
                match str_at(block, "type") {
                    Some("text") => {
                        if let Some(t) = str_at(block, "text").filter(|t| !t.is_empty()) {
                            self.push(out, Delta::Text(t.to_owned()));
                        }
                    }
                    Some("tool_use") => {
                        self.anthropic_tools.insert(index);
                        let id = str_at(block, "id")
                            .map(str::to_owned)
                            .unwrap_or_else(|| new_id("toolu_"));
                        let name = str_at(block, "name").unwrap_or_default().to_owned();
                        self.push(out, Delta::ToolStart { key: index, id, name });
                        if let Some(input) = block.get("input").and_then(Value::as_object).filter(|o| !o.is_empty()) {
                            self.push(
                                out,
                                Delta::ToolArgs {
                                    key: index,
                                    fragment: Value::Object(input.clone()).to_string(),
                                },
                            );
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = v.get("delta").unwrap_or(&Value::Null);
                match str_at(delta, "type") {
                    Some("text_delta") => {
                        if let Some(t) = str_at(delta, "text").filter(|t| !t.is_empty()) {
                            self.push(out, Delta::Text(t.to_owned()));
                        }
                    }
                    Some("input_json_delta") if self.anthropic_tools.contains(&index) => {
                        if let Some(p) = str_at(delta, "partial_json").filter(|p| !p.is_empty()) {
                            self.push(
                                out,
                                Delta::ToolArgs {
                                    key: index,
                                    fragment: p.to_owned(),
                                },
                            );
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" if self.anthropic_tools.contains(&index) => {
                self.push(out, Delta::ToolEnd { key: index });
            }
            "message_delta" => {
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    self.usage.observe_anthropic(u, true);
                }
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    let seq = v
                        .pointer("/delta/stop_sequence")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    self.push(out, Delta::Stop(Stop::from_anthropic(r), seq));
                }
            }
            "message_stop" => {
                self.finished = true;
                self.push(out, Delta::Done);
            }
            "error" => {
                let msg = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream stream failed")
                    .to_owned();
                self.push(out, Delta::Error(msg));
            }
            _ => {}
        }
    }

    fn decode_gemini(&mut self, v: Option<&Value>, out: &mut Vec<Delta>) {
        let Some(v) = v else {
            return;
        };
        // A streamed array (no `alt=sse`) is not expected, but take its elements if it comes.
        let chunks: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for chunk in chunks {
            self.decode_gemini_chunk(chunk, out);
        }
    }

    fn decode_gemini_chunk(&mut self, v: &Value, out: &mut Vec<Delta>) {
        if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
            let msg = str_at(e, "message").unwrap_or("the upstream stream failed").to_owned();
            self.push(out, Delta::Error(msg));
            return;
        }
        self.start(out);
        let cand = v.get("candidates").and_then(Value::as_array).and_then(|c| c.first());
        let finish = cand.and_then(|c| str_at(c, "finishReason"));
        if let Some(meta) = v.get("usageMetadata").filter(|m| m.is_object()) {
            self.usage.observe_gemini(meta, finish.is_some() || self.finished);
        }
        if let Some(parts) = cand.and_then(|c| c.pointer("/content/parts")).and_then(Value::as_array) {
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    if p.get("thought").and_then(Value::as_bool) != Some(true) && !t.is_empty() {
                        self.push(out, Delta::Text(t.to_owned()));
                    }
                } else if let Some(fc) = field(p, "functionCall", "function_call") {
                    let key = self.gemini_calls;
                    self.gemini_calls += 1;
                    self.gemini_saw_call = true;
                    let id = str_at(fc, "id").map(str::to_owned).unwrap_or_else(|| new_id("call_"));
                    let name = str_at(fc, "name").unwrap_or_default().to_owned();
                    let args = match fc.get("args") {
                        Some(a @ Value::Object(_)) => a.to_string(),
                        _ => "{}".to_owned(),
                    };
                    self.push(out, Delta::ToolStart { key, id, name });
                    self.push(out, Delta::ToolArgs { key, fragment: args });
                    self.push(out, Delta::ToolEnd { key });
                }
            }
        }
        let blocked = cand.is_none() && v.pointer("/promptFeedback/blockReason").is_some();
        if let Some(r) = finish {
            let stop = Stop::from_gemini(r).with_tools(self.gemini_saw_call);
            self.push(out, Delta::Stop(stop, None));
        } else if blocked {
            self.push(out, Delta::Stop(Stop::ContentFilter, None));
        }
        if finish.is_some() || blocked {
            self.finished = true;
            // The closing chunk normally carries the usage; without it, wait for the stream end.
            if self.usage.complete {
                self.push(out, Delta::Done);
            }
        }
    }
}

/// A tool call whose arguments are being collected for a Gemini client (Gemini sends whole calls).
#[derive(Debug)]
struct PendingCall {
    key: u64,
    name: String,
    args: String,
}

/// Writes [`Delta`]s as SSE events of the client's shape.
#[derive(Debug)]
pub(crate) struct Encoder {
    shape: Shape,
    model: String,
    id: String,
    created: u64,
    include_usage: bool,
    started: bool,
    closed: bool,
    stop: Option<(Stop, Option<String>)>,
    saw_tool: bool,
    openai_tool_index: HashMap<u64, u64>,
    anthropic_next_block: u64,
    anthropic_open: Option<(u64, Option<u64>)>,
    anthropic_tool_block: HashMap<u64, u64>,
    gemini_pending: Vec<PendingCall>,
}

impl Encoder {
    pub(crate) fn new(shape: Shape, model: &str, include_usage: bool) -> Self {
        let id = match shape {
            Shape::OpenAi => new_id("chatcmpl-"),
            Shape::Anthropic => new_id("msg_"),
            Shape::Gemini => new_id(""),
        };
        Encoder {
            shape,
            model: model.to_owned(),
            id,
            created: unix_now(),
            include_usage,
            started: false,
            closed: false,
            stop: None,
            saw_tool: false,
            openai_tool_index: HashMap::new(),
            anthropic_next_block: 0,
            anthropic_open: None,
            anthropic_tool_block: HashMap::new(),
            gemini_pending: Vec::new(),
        }
    }

    pub(crate) fn encode(&mut self, d: Delta, usage: Usage, out: &mut Vec<SseEvent>) {
        if self.closed {
            return;
        }
        match d {
            Delta::Stop(s, seq) => self.stop = Some((s, seq)),
            Delta::Done => self.close(usage, out),
            Delta::Error(msg) => {
                self.error(&msg, out);
                self.closed = true;
            }
            other => match self.shape {
                Shape::OpenAi => self.openai(other, out),
                Shape::Anthropic => self.anthropic(other, usage, out),
                Shape::Gemini => self.gemini(other, out),
            },
        }
    }

    /// The closing events, once.
    pub(crate) fn close(&mut self, usage: Usage, out: &mut Vec<SseEvent>) {
        if self.closed {
            return;
        }
        self.closed = true;
        let (stop, seq) = self.stop.clone().unwrap_or((Stop::EndTurn, None));
        let stop = stop.with_tools(self.saw_tool);
        match self.shape {
            Shape::OpenAi => {
                self.openai_start(out);
                out.push(self.openai_chunk(json!({}), json!(stop.openai())));
                if self.include_usage {
                    out.push(SseEvent::data(
                        json!({
                            "id": self.id,
                            "object": "chat.completion.chunk",
                            "created": self.created,
                            "model": self.model,
                            "choices": [],
                            "usage": openai::usage_json(&usage),
                        })
                        .to_string(),
                    ));
                }
                out.push(SseEvent::data("[DONE]"));
            }
            Shape::Anthropic => {
                self.anthropic_start(usage, out);
                self.anthropic_close_block(out);
                let u = anthropic::usage_json(&usage);
                out.push(SseEvent::named(
                    "message_delta",
                    json!({
                        "type": "message_delta",
                        "delta": {
                            "stop_reason": stop.anthropic(),
                            "stop_sequence": if stop == Stop::Sequence { json!(seq) } else { Value::Null },
                        },
                        "usage": u,
                    })
                    .to_string(),
                ));
                out.push(SseEvent::named(
                    "message_stop",
                    json!({ "type": "message_stop" }).to_string(),
                ));
            }
            Shape::Gemini => {
                let mut parts: Vec<Value> = std::mem::take(&mut self.gemini_pending)
                    .into_iter()
                    .map(|c| json!({ "functionCall": { "name": c.name, "args": gemini::args_object(&c.args) } }))
                    .collect();
                if parts.is_empty() {
                    parts.push(json!({ "text": "" }));
                }
                let mut chunk = self.gemini_chunk(parts);
                // Invariant: `gemini_chunk` builds an object whose `candidates` holds one object,
                // so these index assignments cannot panic.
                chunk["candidates"][0]["finishReason"] = stop.gemini().into();
                chunk["usageMetadata"] = gemini::usage_json(&usage);
                out.push(SseEvent::data(chunk.to_string()));
            }
        }
    }

    fn error(&mut self, msg: &str, out: &mut Vec<SseEvent>) {
        let ev = match self.shape {
            Shape::OpenAi => SseEvent::data(
                json!({ "error": { "message": msg, "type": "upstream_error", "param": null, "code": "upstream_error" } })
                    .to_string(),
            ),
            Shape::Anthropic => SseEvent::named(
                "error",
                json!({ "type": "error", "error": { "type": "api_error", "message": msg } }).to_string(),
            ),
            Shape::Gemini => SseEvent::data(
                json!({ "error": { "code": 502, "message": msg, "status": "UNAVAILABLE" } }).to_string(),
            ),
        };
        out.push(ev);
    }

    // ---- OpenAI client ----

    fn openai_chunk(&self, delta: Value, finish_reason: Value) -> SseEvent {
        SseEvent::data(
            json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
            })
            .to_string(),
        )
    }

    fn openai_start(&mut self, out: &mut Vec<SseEvent>) {
        if !self.started {
            self.started = true;
            out.push(self.openai_chunk(json!({ "role": "assistant", "content": "" }), Value::Null));
        }
    }

    fn openai(&mut self, d: Delta, out: &mut Vec<SseEvent>) {
        self.openai_start(out);
        match d {
            Delta::Text(t) => out.push(self.openai_chunk(json!({ "content": t }), Value::Null)),
            Delta::ToolStart { key, id, name } => {
                self.saw_tool = true;
                let index = self.openai_tool_index.len() as u64;
                self.openai_tool_index.insert(key, index);
                out.push(self.openai_chunk(
                    json!({ "tool_calls": [{
                        "index": index, "id": id, "type": "function",
                        "function": { "name": name, "arguments": "" },
                    }] }),
                    Value::Null,
                ));
            }
            Delta::ToolArgs { key, fragment } => {
                if let Some(index) = self.openai_tool_index.get(&key).copied() {
                    out.push(self.openai_chunk(
                        json!({ "tool_calls": [{ "index": index, "function": { "arguments": fragment } }] }),
                        Value::Null,
                    ));
                }
            }
            _ => {}
        }
    }

    // ---- Anthropic client ----

    fn anthropic_start(&mut self, usage: Usage, out: &mut Vec<SseEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        let mut u = anthropic::usage_json(&usage);
        u["output_tokens"] = 0.into();
        out.push(SseEvent::named(
            "message_start",
            json!({
                "type": "message_start",
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": u,
                },
            })
            .to_string(),
        ));
    }

    fn anthropic_close_block(&mut self, out: &mut Vec<SseEvent>) {
        if let Some((index, _)) = self.anthropic_open.take() {
            out.push(SseEvent::named(
                "content_block_stop",
                json!({ "type": "content_block_stop", "index": index }).to_string(),
            ));
        }
    }

    fn anthropic_open_block(&mut self, block: Value, tool: Option<u64>, out: &mut Vec<SseEvent>) -> u64 {
        self.anthropic_close_block(out);
        let index = self.anthropic_next_block;
        self.anthropic_next_block += 1;
        self.anthropic_open = Some((index, tool));
        out.push(SseEvent::named(
            "content_block_start",
            json!({ "type": "content_block_start", "index": index, "content_block": block }).to_string(),
        ));
        index
    }

    fn anthropic(&mut self, d: Delta, usage: Usage, out: &mut Vec<SseEvent>) {
        self.anthropic_start(usage, out);
        match d {
            Delta::Text(t) => {
                let index = match self.anthropic_open {
                    Some((i, None)) => i,
                    _ => self.anthropic_open_block(json!({ "type": "text", "text": "" }), None, out),
                };
                out.push(SseEvent::named(
                    "content_block_delta",
                    json!({
                        "type": "content_block_delta",
                        "index": index,
                        "delta": { "type": "text_delta", "text": t },
                    })
                    .to_string(),
                ));
            }
            Delta::ToolStart { key, id, name } => {
                self.saw_tool = true;
                let block = json!({ "type": "tool_use", "id": anthropic_tool_id(&id), "name": name, "input": {} });
                let index = self.anthropic_open_block(block, Some(key), out);
                self.anthropic_tool_block.insert(key, index);
            }
            Delta::ToolArgs { key, fragment } => {
                if let Some(index) = self.anthropic_tool_block.get(&key).copied() {
                    out.push(SseEvent::named(
                        "content_block_delta",
                        json!({
                            "type": "content_block_delta",
                            "index": index,
                            "delta": { "type": "input_json_delta", "partial_json": fragment },
                        })
                        .to_string(),
                    ));
                }
            }
            Delta::ToolEnd { key } => {
                if matches!(self.anthropic_open, Some((_, Some(k))) if k == key) {
                    self.anthropic_close_block(out);
                }
            }
            _ => {}
        }
    }

    // ---- Gemini client ----

    fn gemini_chunk(&self, parts: Vec<Value>) -> Value {
        json!({
            "candidates": [{ "content": { "role": "model", "parts": parts }, "index": 0 }],
            "modelVersion": self.model,
            "responseId": self.id,
        })
    }

    fn gemini_flush(&mut self, only: Option<u64>, out: &mut Vec<SseEvent>) {
        let (ready, keep): (Vec<PendingCall>, Vec<PendingCall>) = std::mem::take(&mut self.gemini_pending)
            .into_iter()
            .partition(|c| only.is_none_or(|k| k == c.key));
        self.gemini_pending = keep;
        if ready.is_empty() {
            return;
        }
        let parts: Vec<Value> = ready
            .into_iter()
            .map(|c| json!({ "functionCall": { "name": c.name, "args": gemini::args_object(&c.args) } }))
            .collect();
        out.push(SseEvent::data(self.gemini_chunk(parts).to_string()));
    }

    fn gemini(&mut self, d: Delta, out: &mut Vec<SseEvent>) {
        self.started = true;
        match d {
            Delta::Text(t) => {
                self.gemini_flush(None, out);
                out.push(SseEvent::data(
                    self.gemini_chunk(vec![json!({ "text": t })]).to_string(),
                ));
            }
            Delta::ToolStart { key, name, .. } => {
                self.saw_tool = true;
                self.gemini_flush(None, out);
                self.gemini_pending.push(PendingCall {
                    key,
                    name,
                    args: String::new(),
                });
            }
            Delta::ToolArgs { key, fragment } => {
                if let Some(c) = self.gemini_pending.iter_mut().find(|c| c.key == key) {
                    c.args.push_str(&fragment);
                }
            }
            Delta::ToolEnd { key } => self.gemini_flush(Some(key), out),
            _ => {}
        }
    }
}

/// Watches a same-shape relay: usage, delivered characters, and whether the stream ended properly.
#[derive(Debug)]
pub struct StreamObserver {
    decoder: Decoder,
    scratch: Vec<Delta>,
}

impl StreamObserver {
    pub fn new(shape: Shape) -> Self {
        StreamObserver {
            decoder: Decoder::new(shape),
            scratch: Vec::new(),
        }
    }

    /// Reads an upstream event, given with its data parsed ([`parse_data`]): the relay parses
    /// each event once for this, the usage-only check and the model rewrite.
    pub fn observe(&mut self, ev: &SseEvent, data: Option<&Value>) {
        self.decoder.decode_parsed(ev, data, &mut self.scratch);
        self.scratch.clear();
    }

    /// The upstream's final usage; `None` until it arrived (OpenAI usage chunk, Anthropic
    /// `message_delta`, Gemini `usageMetadata` on the finishing chunk).
    pub fn usage(&self) -> Option<Usage> {
        self.decoder.usage.usage()
    }

    /// Characters of text and tool-call arguments delivered so far.
    pub fn delivered_text_chars(&self) -> usize {
        self.decoder.chars
    }

    /// The terminal event was seen (OpenAI `[DONE]`, Anthropic `message_stop`, Gemini a
    /// candidate with `finishReason`).
    pub fn finished(&self) -> bool {
        self.decoder.finished
    }

    /// The message of an error event the upstream sent mid-stream, if any.
    pub fn upstream_error(&self) -> Option<&str> {
        self.decoder.error.as_deref()
    }
}

/// Translates an upstream SSE stream into the client's shape, event by event.
#[derive(Debug)]
pub struct StreamTranslator {
    decoder: Decoder,
    encoder: Encoder,
}

impl StreamTranslator {
    pub fn new(upstream: Shape, client: Shape, public_model: &str) -> Self {
        StreamTranslator {
            decoder: Decoder::new(upstream),
            encoder: Encoder::new(client, public_model, true),
        }
    }

    /// For an OpenAI client: whether to send the usage-only chunk (default: yes). Pass whether
    /// the client asked `stream_options.include_usage`.
    pub fn with_openai_include_usage(mut self, include: bool) -> Self {
        self.encoder.include_usage = include;
        self
    }

    /// Client-shape events for one upstream event.
    pub fn push(&mut self, ev: &SseEvent) -> Vec<SseEvent> {
        let mut deltas = Vec::new();
        self.decoder.decode(ev, &mut deltas);
        self.encode(deltas)
    }

    /// Closing events when the upstream stream ended (nothing if they were already sent).
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut deltas = Vec::new();
        self.decoder.finish(&mut deltas);
        let mut out = self.encode(deltas);
        let usage = self.client_usage();
        self.encoder.close(usage, &mut out);
        out
    }

    /// The upstream's final usage; `None` until it arrived.
    pub fn usage(&self) -> Option<Usage> {
        self.decoder.usage.usage()
    }

    /// Characters of text and tool-call arguments delivered so far.
    pub fn delivered_text_chars(&self) -> usize {
        self.decoder.chars
    }

    /// The upstream's terminal event was seen.
    pub fn finished(&self) -> bool {
        self.decoder.finished
    }

    /// The message of an error event the upstream sent mid-stream, if any.
    pub fn upstream_error(&self) -> Option<&str> {
        self.decoder.error.as_deref()
    }

    /// What the client is told: the upstream's figures, with output estimated from the
    /// delivered text when the upstream never reported it.
    fn client_usage(&self) -> Usage {
        let known = self.decoder.usage.known();
        if self.decoder.usage.complete || self.decoder.chars == 0 {
            return known;
        }
        Usage {
            output_tokens: known.output_tokens.max(estimate_tokens(self.decoder.chars)),
            ..known
        }
    }

    fn encode(&mut self, deltas: Vec<Delta>) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for d in deltas {
            let usage = self.client_usage();
            self.encoder.encode(d, usage, &mut out);
        }
        out
    }
}

/// The JSON of an event's data; `None` when it is not JSON (OpenAI's `[DONE]`).
pub fn parse_data(ev: &SseEvent) -> Option<Value> {
    serde_json::from_str(&ev.data).ok()
}

/// Whether the parsed data of an OpenAI chunk carries only usage (`choices` empty): the chunk
/// the proxy strips when the client did not ask for it.
pub fn is_openai_usage_only(v: &Value) -> bool {
    let no_choices = match v.get("choices") {
        None | Some(Value::Null) => true,
        Some(Value::Array(c)) => c.is_empty(),
        _ => false,
    };
    no_choices && v.get("usage").is_some_and(Value::is_object)
}

/// The event with the model it names replaced by `model` (OpenAI `model`, Anthropic
/// `message_start.message.model`, Gemini `modelVersion`), given with its data parsed
/// ([`parse_data`]). Other events, and events already naming `model`, come back unchanged,
/// without being encoded again.
pub fn rewrite_model(shape: Shape, ev: SseEvent, data: Option<Value>, model: &str) -> SseEvent {
    let Some(mut v) = data else {
        return ev;
    };
    let target: Option<&mut Map<String, Value>> = match shape {
        Shape::Anthropic if v.get("message").is_some() => v.get_mut("message").and_then(Value::as_object_mut),
        _ => v.as_object_mut(),
    };
    let key = if shape == Shape::Gemini {
        "modelVersion"
    } else {
        "model"
    };
    match target {
        Some(obj) if obj.get(key).is_some_and(|m| m.as_str() != Some(model)) => {
            obj.insert(key.to_owned(), Value::String(model.to_owned()));
        }
        _ => return ev,
    }
    SseEvent {
        data: v.to_string(),
        ..ev
    }
}

/// Whether an OpenAI request asked for the usage chunk in its stream.
pub fn openai_include_usage_requested(body: &Value) -> bool {
    body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true)
}
