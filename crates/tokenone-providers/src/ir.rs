//! The shape-neutral model of a chat request and of a reply that every cross-shape translation
//! goes through: parse the source shape into it, build the target shape from it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::{TranslateError, Usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Image {
    /// Inline bytes (an OpenAI data URL, an Anthropic base64 source, a Gemini `inlineData`).
    Base64 { media_type: String, data: String },
    /// A remote `http(s)` URL.
    Url(String),
    /// A Gemini `fileData` reference (Files API / GCS URI), meaningful only to Gemini.
    FileUri { media_type: String, uri: String },
}

/// Tool-call arguments as the source carried them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Args {
    /// A JSON object.
    Json(Value),
    /// Text that is not a JSON object (OpenAI sends arguments as a string the model wrote).
    Raw(String),
}

impl Args {
    pub(crate) fn from_text(s: &str) -> Args {
        if s.trim().is_empty() {
            return Args::Json(Value::Object(Map::new()));
        }
        match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Args::Json(v),
            _ => Args::Raw(s.to_owned()),
        }
    }

    pub(crate) fn from_value(v: Option<&Value>) -> Args {
        match v {
            Some(v @ Value::Object(_)) => Args::Json(v.clone()),
            Some(Value::String(s)) => Args::from_text(s),
            None | Some(Value::Null) => Args::Json(Value::Object(Map::new())),
            Some(other) => Args::Raw(other.to_string()),
        }
    }

    pub(crate) fn to_text(&self) -> String {
        match self {
            Args::Json(v) => v.to_string(),
            Args::Raw(s) => s.clone(),
        }
    }

    /// For requests: arguments that are not an object cannot be carried by Anthropic or Gemini.
    pub(crate) fn to_object(&self) -> Result<Value, TranslateError> {
        match self {
            Args::Json(v) => Ok(v.clone()),
            Args::Raw(_) => Err(TranslateError::Invalid(
                "tool call arguments must be a JSON object".into(),
            )),
        }
    }

    /// For replies: never fails; text that is not an object is kept under `arguments`.
    pub(crate) fn to_object_lossless(&self) -> Value {
        match self {
            Args::Json(v) => v.clone(),
            Args::Raw(s) => json!({ "arguments": s }),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Args,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolResult {
    pub id: String,
    /// The called function's name when known (Gemini needs it).
    pub name: Option<String>,
    /// Text and image parts.
    pub content: Vec<Part>,
    pub is_error: bool,
}

impl ToolResult {
    pub(crate) fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The text of a result whose target carries only text.
    pub(crate) fn text_only(&self) -> Result<String, TranslateError> {
        for p in &self.content {
            match p {
                Part::Image(_) => return Err(TranslateError::Unsupported("image_in_tool_result")),
                Part::Unsupported(f) => return Err(TranslateError::Unsupported(f)),
                _ => {}
            }
        }
        Ok(self.text())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Text(String),
    Image(Image),
    ToolCall(ToolCall),
    ToolResult(ToolResult),
    /// Content only its source shape can carry; translating it fails with this feature name.
    Unsupported(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

impl Message {
    pub(crate) fn new(role: Role, parts: Vec<Part>) -> Self {
        Message { role, parts }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolDef {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ToolChoice {
    Auto,
    None,
    Required,
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum JsonMode {
    #[default]
    Off,
    Object,
    Schema {
        name: String,
        schema: Value,
        strict: Option<bool>,
    },
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Conversation {
    pub system: Vec<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolDef>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<Value>,
    pub top_p: Option<Value>,
    pub top_k: Option<Value>,
    pub stop: Vec<String>,
    pub json: JsonMode,
    /// Images or other media anywhere in the request.
    pub has_media: bool,
    /// Request-level features no other shape can carry.
    pub unsupported: Vec<&'static str>,
}

impl Conversation {
    /// Fails with the first feature that only the source shape can carry.
    pub(crate) fn check_supported(&self) -> Result<(), TranslateError> {
        if let Some(f) = self.unsupported.first() {
            return Err(TranslateError::Unsupported(f));
        }
        for m in &self.messages {
            for p in &m.parts {
                match p {
                    Part::Unsupported(f) => return Err(TranslateError::Unsupported(f)),
                    Part::ToolResult(r) => {
                        if let Some(f) = r.content.iter().find_map(|c| match c {
                            Part::Unsupported(f) => Some(*f),
                            _ => None,
                        }) {
                            return Err(TranslateError::Unsupported(f));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    pub(crate) fn has_tool_traffic(&self) -> bool {
        self.messages
            .iter()
            .flat_map(|m| m.parts.iter())
            .any(|p| matches!(p, Part::ToolCall(_) | Part::ToolResult(_)))
    }
}

/// Why the model stopped, in vendor-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    EndTurn,
    MaxTokens,
    ToolUse,
    Sequence,
    ContentFilter,
}

impl Stop {
    pub(crate) fn from_openai(s: &str) -> Stop {
        match s {
            "length" => Stop::MaxTokens,
            "tool_calls" | "function_call" => Stop::ToolUse,
            "content_filter" => Stop::ContentFilter,
            _ => Stop::EndTurn,
        }
    }
    pub(crate) fn openai(self) -> &'static str {
        match self {
            Stop::EndTurn | Stop::Sequence => "stop",
            Stop::MaxTokens => "length",
            Stop::ToolUse => "tool_calls",
            Stop::ContentFilter => "content_filter",
        }
    }
    pub(crate) fn from_anthropic(s: &str) -> Stop {
        match s {
            "max_tokens" | "model_context_window_exceeded" => Stop::MaxTokens,
            "tool_use" => Stop::ToolUse,
            "stop_sequence" => Stop::Sequence,
            "refusal" => Stop::ContentFilter,
            _ => Stop::EndTurn,
        }
    }
    pub(crate) fn anthropic(self) -> &'static str {
        match self {
            Stop::EndTurn => "end_turn",
            Stop::MaxTokens => "max_tokens",
            Stop::ToolUse => "tool_use",
            Stop::Sequence => "stop_sequence",
            Stop::ContentFilter => "refusal",
        }
    }
    pub(crate) fn from_gemini(s: &str) -> Stop {
        match s {
            "MAX_TOKENS" => Stop::MaxTokens,
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
                Stop::ContentFilter
            }
            _ => Stop::EndTurn,
        }
    }
    pub(crate) fn gemini(self) -> &'static str {
        match self {
            Stop::EndTurn | Stop::Sequence | Stop::ToolUse => "STOP",
            Stop::MaxTokens => "MAX_TOKENS",
            Stop::ContentFilter => "SAFETY",
        }
    }
    /// A turn that ended "normally" but made tool calls is a tool-use stop for every vendor.
    pub(crate) fn with_tools(self, saw_tool_call: bool) -> Stop {
        if saw_tool_call && matches!(self, Stop::EndTurn) {
            Stop::ToolUse
        } else {
            self
        }
    }
}

/// A non-streaming model reply, vendor-neutral: text and tool-call parts, the stop, usage.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub parts: Vec<Part>,
    pub stop: Stop,
    pub stop_sequence: Option<String>,
    pub usage: Option<Usage>,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }
    pub(crate) fn tool_calls(&self) -> impl Iterator<Item = &ToolCall> {
        self.parts.iter().filter_map(|p| match p {
            Part::ToolCall(c) => Some(c),
            _ => None,
        })
    }
    pub(crate) fn stop_for_client(&self) -> Stop {
        self.stop.with_tools(self.tool_calls().next().is_some())
    }
}

/// Parses an OpenAI-style image URL: a base64 `data:` URL or a remote `http(s)` URL.
pub(crate) fn image_from_url(url: &str) -> Option<Image> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',')?;
        let media_type = meta.strip_suffix(";base64")?;
        return Some(Image::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        });
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Some(Image::Url(url.to_owned()));
    }
    None
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A fresh identifier `prefix` + 24 hex digits, unique within the process (not a secret).
pub(crate) fn new_id(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let a = mix(nanos ^ n.rotate_left(32));
    let b = mix(a ^ n);
    format!("{prefix}{a:016x}{:08x}", b as u32)
}

/// Seconds since the Unix epoch (OpenAI's `created`).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Anthropic tool ids must match `^[a-zA-Z0-9_-]+$`.
pub(crate) fn anthropic_tool_id(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "toolu_0".into()
    } else {
        s
    }
}

impl Reply {
    /// Characters of text and tool-call arguments in the reply.
    pub(crate) fn chars(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.chars().count(),
                Part::ToolCall(c) => c.arguments.to_text().chars().count(),
                _ => 0,
            })
            .sum()
    }
}
