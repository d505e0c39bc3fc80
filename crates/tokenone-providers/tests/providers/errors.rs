//! Native error bodies: every kind in every shape, exactly as proxy.md tabulates them.

use serde_json::json;
use tokenone_providers::errors::{self, ErrorKind};
use tokenone_providers::Shape;

#[test]
fn every_kind_in_every_shape() {
    // kind, status, openai type, openai code, anthropic type, gemini status
    let table = [
        (
            ErrorKind::Authentication,
            401,
            "authentication_error",
            "invalid_api_key",
            "authentication_error",
            "UNAUTHENTICATED",
        ),
        (
            ErrorKind::Permission,
            403,
            "permission_error",
            "permission_denied",
            "permission_error",
            "PERMISSION_DENIED",
        ),
        (
            ErrorKind::InvalidRequest,
            400,
            "invalid_request_error",
            "invalid_request",
            "invalid_request_error",
            "INVALID_ARGUMENT",
        ),
        (
            ErrorKind::NotFound,
            404,
            "invalid_request_error",
            "model_not_found",
            "not_found_error",
            "NOT_FOUND",
        ),
        (
            ErrorKind::InsufficientFunds,
            402,
            "insufficient_quota",
            "insufficient_quota",
            "billing_error",
            "RESOURCE_EXHAUSTED",
        ),
        (
            ErrorKind::PayloadTooLarge,
            413,
            "invalid_request_error",
            "request_too_large",
            "request_too_large",
            "INVALID_ARGUMENT",
        ),
        (
            ErrorKind::RateLimited,
            429,
            "rate_limit_error",
            "rate_limit_exceeded",
            "rate_limit_error",
            "RESOURCE_EXHAUSTED",
        ),
        (
            ErrorKind::Unavailable,
            503,
            "service_unavailable",
            "service_unavailable",
            "overloaded_error",
            "UNAVAILABLE",
        ),
        (
            ErrorKind::UpstreamFailed,
            502,
            "upstream_error",
            "upstream_error",
            "api_error",
            "UNAVAILABLE",
        ),
        (
            ErrorKind::Timeout,
            504,
            "timeout",
            "timeout",
            "api_error",
            "DEADLINE_EXCEEDED",
        ),
    ];
    assert_eq!(table.len(), ErrorKind::ALL.len());
    for (kind, status, oa_type, oa_code, an_type, g_status) in table {
        assert_eq!(errors::status(kind), status, "{kind:?}");
        assert_eq!(
            errors::body(Shape::OpenAi, kind, "boom"),
            json!({"error": {"message": "boom", "type": oa_type, "param": null, "code": oa_code}}),
            "{kind:?}"
        );
        assert_eq!(
            errors::body(Shape::Anthropic, kind, "boom"),
            json!({"type": "error", "error": {"type": an_type, "message": "boom"}}),
            "{kind:?}"
        );
        assert_eq!(
            errors::body(Shape::Gemini, kind, "boom"),
            json!({"error": {"code": status, "message": "boom", "status": g_status}}),
            "{kind:?}"
        );
    }
}

#[test]
fn relayed_statuses() {
    assert_eq!(
        errors::body_with_status(Shape::OpenAi, 422, "bad temperature"),
        json!({"error": {"message": "bad temperature", "type": "invalid_request_error", "param": null, "code": "invalid_request"}})
    );
    assert_eq!(
        errors::body_with_status(Shape::Gemini, 400, "bad"),
        json!({"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}})
    );
    assert_eq!(
        errors::body_with_status(Shape::Gemini, 404, "no such model"),
        json!({"error": {"code": 404, "message": "no such model", "status": "NOT_FOUND"}})
    );
    assert_eq!(
        errors::body_with_status(Shape::Anthropic, 413, "too big"),
        json!({"type": "error", "error": {"type": "request_too_large", "message": "too big"}})
    );
    assert_eq!(
        errors::body_with_status(Shape::OpenAi, 404, "gone")["error"]["code"],
        "not_found"
    );
    assert_eq!(
        errors::body_with_status(Shape::Anthropic, 409, "x")["error"]["type"],
        "invalid_request_error"
    );
}

#[test]
fn upstream_messages_are_found_in_any_shape() {
    for body in [
        json!({"error": {"message": "m", "type": "t"}}),
        json!({"type": "error", "error": {"type": "t", "message": "m"}}),
        json!({"error": {"code": 400, "message": "m", "status": "INVALID_ARGUMENT"}}),
        json!({"message": "m"}),
    ] {
        assert_eq!(errors::upstream_message(&body).as_deref(), Some("m"), "{body}");
    }
    assert_eq!(errors::upstream_message(&json!({"nothing": 1})), None);
}
