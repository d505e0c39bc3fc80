//! Vendor wire formats for TokenOne: OpenAI, Anthropic and Gemini requests, replies and SSE
//! streams — read, translated between shapes, metered, imitated by the sandbox, and errors.

mod anthropic;
pub mod errors;
mod features;
mod gemini;
mod ir;
mod json;
mod openai;
pub mod sandbox;
mod sse;
mod stream;

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value};

pub use anthropic::DEFAULT_MAX_TOKENS as ANTHROPIC_DEFAULT_MAX_TOKENS;
pub use sse::{SseEvent, SseParser, MAX_EVENT_DATA_BYTES, MAX_LINE_BYTES};
pub use stream::{
    is_openai_usage_only, openai_include_usage_requested, parse_data, rewrite_model, StreamObserver, StreamTranslator,
};

use ir::{Conversation, Reply};

/// The three wire formats TokenOne speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Shape {
    pub const ALL: [Shape; 3] = [Shape::OpenAi, Shape::Anthropic, Shape::Gemini];

    pub fn as_str(self) -> &'static str {
        match self {
            Shape::OpenAi => "openai",
            Shape::Anthropic => "anthropic",
            Shape::Gemini => "gemini",
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not `openai`, `anthropic` or `gemini`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown API shape `{0}` (expected openai, anthropic or gemini)")]
pub struct UnknownShape(pub String);

impl FromStr for Shape {
    type Err = UnknownShape;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "openai" => Ok(Shape::OpenAi),
            "anthropic" => Ok(Shape::Anthropic),
            "gemini" => Ok(Shape::Gemini),
            other => Err(UnknownShape(other.to_owned())),
        }
    }
}

/// Model tokens of one call. `input_tokens` includes the cached ones (and Anthropic cache writes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Usage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
}

/// What smart routing reads from a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    pub tools: bool,
    pub images: bool,
    pub json_mode: bool,
    pub max_output_tokens: Option<u64>,
    /// Characters of all text: system prompt, every message (tool results and tool-call
    /// arguments included).
    pub text_chars: usize,
    /// Text parts of the last user message that has text, joined by newlines.
    pub last_user_text: String,
    pub system_text: String,
    /// Messages (contents), system prompt not counted.
    pub turns: usize,
    pub has_code: bool,
}

/// Why a request cannot be read or carried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// Not a plausible request (or reply) of its shape: the client gets 400.
    #[error("{0}")]
    Invalid(String),
    /// A feature the target shape cannot carry; the value names it (e.g. `image_url`).
    #[error("the delivering API cannot carry `{0}`")]
    Unsupported(&'static str),
}

/// ceil(chars / 4), at least 1.
pub fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

fn parse(shape: Shape, body: &Value) -> Result<Conversation, TranslateError> {
    match shape {
        Shape::OpenAi => openai::parse_request(body),
        Shape::Anthropic => anthropic::parse_request(body),
        Shape::Gemini => gemini::parse_request(body),
    }
}

/// Validates a request of `shape` and reads its routing features.
pub fn features(shape: Shape, body: &Value) -> Result<Features, TranslateError> {
    if shape != Shape::Gemini {
        match body.get("model") {
            Some(Value::String(m)) if !m.is_empty() => {}
            _ => return Err(TranslateError::Invalid("model: required, a string".into())),
        }
        if body.get("stream").is_some_and(|s| !s.is_boolean() && !s.is_null()) {
            return Err(TranslateError::Invalid("stream: must be a boolean".into()));
        }
    }
    Ok(features::from_conversation(&parse(shape, body)?))
}

/// The requested model (OpenAI, Anthropic); Gemini names it in the URL.
pub fn request_model(shape: Shape, body: &Value) -> Option<String> {
    match shape {
        Shape::Gemini => None,
        _ => body.get("model").and_then(Value::as_str).map(str::to_owned),
    }
}

/// Whether the request asks for a stream (OpenAI, Anthropic); Gemini decides by route.
pub fn request_stream(shape: Shape, body: &Value) -> bool {
    match shape {
        Shape::Gemini => false,
        _ => body.get("stream").and_then(Value::as_bool) == Some(true),
    }
}

/// Replaces the request's `model` (no-op for Gemini).
pub fn set_model(shape: Shape, body: &mut Value, model: &str) {
    if shape != Shape::Gemini {
        if let Some(obj) = body.as_object_mut() {
            obj.insert("model".into(), Value::String(model.to_owned()));
        }
    }
}

/// Names `model` in a same-shape non-streaming reply (`model`, or Gemini's `modelVersion` when present).
pub fn set_response_model(shape: Shape, body: &mut Value, model: &str) {
    let key = if shape == Shape::Gemini {
        "modelVersion"
    } else {
        "model"
    };
    if let Some(obj) = body.as_object_mut() {
        if shape != Shape::Gemini || obj.contains_key(key) {
            obj.insert(key.into(), Value::String(model.to_owned()));
        }
    }
}

/// Asks an OpenAI stream for its usage chunk. Returns true when the client had not asked for it
/// (so the proxy must strip that chunk).
pub fn ensure_openai_stream_usage(body: &mut Value) -> bool {
    if openai_include_usage_requested(body) {
        return false;
    }
    let Some(obj) = body.as_object_mut() else {
        return false;
    };
    let opts = obj.entry("stream_options").or_insert_with(|| json!({}));
    if !opts.is_object() {
        *opts = json!({});
    }
    // Invariant: `opts` was just made an object, so indexing cannot panic.
    opts["include_usage"] = Value::Bool(true);
    true
}

/// A request of shape `from` as a request of shape `to` for `upstream_model`. Same shape: the
/// body unchanged except `model` (and an OpenAI stream's `include_usage`).
pub fn translate_request(
    from: Shape,
    to: Shape,
    body: &Value,
    upstream_model: &str,
    stream: bool,
) -> Result<Value, TranslateError> {
    if from == to {
        parse(from, body)?;
        let mut out = body.clone();
        set_model(to, &mut out, upstream_model);
        if to == Shape::OpenAi && stream {
            ensure_openai_stream_usage(&mut out);
        }
        return Ok(out);
    }
    let conv = parse(from, body)?;
    match to {
        Shape::OpenAi => openai::build_request(&conv, upstream_model, stream),
        Shape::Anthropic => anthropic::build_request(&conv, upstream_model, stream),
        Shape::Gemini => gemini::build_request(&conv),
    }
}

fn parse_response(shape: Shape, body: &Value) -> Result<Reply, TranslateError> {
    match shape {
        Shape::OpenAi => openai::parse_response(body),
        Shape::Anthropic => anthropic::parse_response(body),
        Shape::Gemini => gemini::parse_response(body),
    }
}

pub(crate) fn build_response(shape: Shape, reply: &Reply, model: &str) -> Value {
    match shape {
        Shape::OpenAi => openai::build_response(reply, model),
        Shape::Anthropic => anthropic::build_response(reply, model),
        Shape::Gemini => gemini::build_response(reply, model),
    }
}

/// A non-streaming reply of shape `upstream` as the client's shape, naming `public_model`.
pub fn translate_response(
    upstream: Shape,
    client: Shape,
    body: &Value,
    public_model: &str,
) -> Result<Value, TranslateError> {
    if upstream == client {
        let mut out = body.clone();
        set_response_model(client, &mut out, public_model);
        return Ok(out);
    }
    let reply = parse_response(upstream, body)?;
    Ok(build_response(client, &reply, public_model))
}

/// Usage of a non-streaming reply; garbage or missing figures give `None` (or 0 for a part).
pub fn usage_from_response(shape: Shape, body: &Value) -> Option<Usage> {
    match shape {
        Shape::OpenAi => body.get("usage").and_then(openai::usage_from),
        Shape::Anthropic => body.get("usage").and_then(anthropic::usage_from),
        Shape::Gemini => body.get("usageMetadata").and_then(gemini::usage_from),
    }
}

/// Characters of text and tool-call arguments in a non-streaming reply (0 if unreadable); for
/// estimating output usage when the upstream reported none.
pub fn response_text_chars(shape: Shape, body: &Value) -> usize {
    parse_response(shape, body).map(|r| r.chars()).unwrap_or(0)
}
