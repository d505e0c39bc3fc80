//! Errors in each vendor's native shape, with the HTTP status and type table of proxy.md.

use serde_json::{json, Value};

use crate::Shape;

/// The situations the proxy answers with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Authentication,
    Permission,
    InvalidRequest,
    NotFound,
    InsufficientFunds,
    PayloadTooLarge,
    RateLimited,
    /// 503: no configured upstream can serve the call, the upstream itself is overloaded, or the
    /// gateway is too far behind on writing call records or events to take more.
    Unavailable,
    UpstreamFailed,
    Timeout,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Authentication,
        ErrorKind::Permission,
        ErrorKind::InvalidRequest,
        ErrorKind::NotFound,
        ErrorKind::InsufficientFunds,
        ErrorKind::PayloadTooLarge,
        ErrorKind::RateLimited,
        ErrorKind::Unavailable,
        ErrorKind::UpstreamFailed,
        ErrorKind::Timeout,
    ];
}

/// The HTTP status of a kind.
pub fn status(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::Authentication => 401,
        ErrorKind::Permission => 403,
        ErrorKind::InvalidRequest => 400,
        ErrorKind::NotFound => 404,
        ErrorKind::InsufficientFunds => 402,
        ErrorKind::PayloadTooLarge => 413,
        ErrorKind::RateLimited => 429,
        ErrorKind::Unavailable => 503,
        ErrorKind::UpstreamFailed => 502,
        ErrorKind::Timeout => 504,
    }
}

/// OpenAI `type` and `code`.
fn openai_type_code(kind: ErrorKind) -> (&'static str, &'static str) {
    match kind {
        ErrorKind::Authentication => ("authentication_error", "invalid_api_key"),
        ErrorKind::Permission => ("permission_error", "permission_denied"),
        ErrorKind::InvalidRequest => ("invalid_request_error", "invalid_request"),
        ErrorKind::NotFound => ("invalid_request_error", "model_not_found"),
        ErrorKind::InsufficientFunds => ("insufficient_quota", "insufficient_quota"),
        ErrorKind::PayloadTooLarge => ("invalid_request_error", "request_too_large"),
        ErrorKind::RateLimited => ("rate_limit_error", "rate_limit_exceeded"),
        ErrorKind::Unavailable => ("service_unavailable", "service_unavailable"),
        ErrorKind::UpstreamFailed => ("upstream_error", "upstream_error"),
        ErrorKind::Timeout => ("timeout", "timeout"),
    }
}

fn anthropic_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::InsufficientFunds => "billing_error",
        ErrorKind::PayloadTooLarge => "request_too_large",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Unavailable => "overloaded_error",
        ErrorKind::UpstreamFailed | ErrorKind::Timeout => "api_error",
    }
}

fn gemini_status(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Authentication => "UNAUTHENTICATED",
        ErrorKind::Permission => "PERMISSION_DENIED",
        ErrorKind::InvalidRequest | ErrorKind::PayloadTooLarge => "INVALID_ARGUMENT",
        ErrorKind::NotFound => "NOT_FOUND",
        ErrorKind::InsufficientFunds | ErrorKind::RateLimited => "RESOURCE_EXHAUSTED",
        ErrorKind::Unavailable | ErrorKind::UpstreamFailed => "UNAVAILABLE",
        ErrorKind::Timeout => "DEADLINE_EXCEEDED",
    }
}

fn render(shape: Shape, kind: ErrorKind, status: u16, message: &str) -> Value {
    match shape {
        Shape::OpenAi => {
            let (ty, code) = openai_type_code(kind);
            json!({ "error": { "message": message, "type": ty, "param": null, "code": code } })
        }
        Shape::Anthropic => json!({ "type": "error", "error": { "type": anthropic_type(kind), "message": message } }),
        Shape::Gemini => json!({ "error": { "code": status, "message": message, "status": gemini_status(kind) } }),
    }
}

/// The error body of `kind` in `shape`.
pub fn body(shape: Shape, kind: ErrorKind, message: &str) -> Value {
    render(shape, kind, status(kind), message)
}

/// The kind that best describes an HTTP status (for relaying an upstream error).
pub fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::Authentication,
        403 => ErrorKind::Permission,
        404 => ErrorKind::NotFound,
        402 => ErrorKind::InsufficientFunds,
        413 => ErrorKind::PayloadTooLarge,
        429 => ErrorKind::RateLimited,
        503 | 529 => ErrorKind::Unavailable,
        504 => ErrorKind::Timeout,
        500..=599 => ErrorKind::UpstreamFailed,
        _ => ErrorKind::InvalidRequest,
    }
}

/// An error body in `shape` for an arbitrary status, e.g. an upstream's 4xx relayed to the client.
/// A relayed 404 is a generic `not_found` (not `model_not_found`) in OpenAI's `code`.
pub fn body_with_status(shape: Shape, status: u16, message: &str) -> Value {
    let kind = kind_for_status(status);
    let mut v = render(shape, kind, status, message);
    if shape == Shape::OpenAi {
        let code = match status {
            404 => Some("not_found"),
            500..=599 if kind == ErrorKind::UpstreamFailed && status != 502 => Some("server_error"),
            _ => None,
        };
        if let Some(code) = code {
            // Invariant: `render` built `{"error": {...}}` for OpenAI, so indexing cannot panic.
            v["error"]["code"] = code.into();
            if code == "server_error" {
                v["error"]["type"] = "server_error".into();
            }
        }
    }
    v
}

/// The human message of an error body in any vendor shape, if it has one.
pub fn upstream_message(body: &Value) -> Option<String> {
    body.pointer("/error/message")
        .or_else(|| body.get("message"))
        .or_else(|| body.get("error").filter(|e| e.is_string()))
        .and_then(Value::as_str)
        .map(str::to_owned)
}
