//! The sandbox provider: exact reply text and usage in each shape, streaming and not.

use serde_json::{json, Value};
use tokenone_providers::{sandbox, usage_from_response, Shape, TranslateError, Usage};

use crate::common::collect;

/// System "Be brief." (9 chars), an earlier exchange "Hi" / "Hello!" (2 + 6) and the last user
/// message "What is Rust?" (13): 30 characters of request text -> 8 input tokens.
fn request(shape: Shape, stream: bool, include_usage: bool) -> Value {
    match shape {
        Shape::OpenAi => {
            let mut v = json!({"model": "gpt-4o", "stream": stream, "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": [{"type": "text", "text": "What is Rust?"}]}
            ]});
            if include_usage {
                v["stream_options"] = json!({"include_usage": true});
            }
            v
        }
        Shape::Anthropic => json!({"model": "claude-sonnet-4", "max_tokens": 100, "stream": stream,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
            {"role": "user", "content": "What is Rust?"}
        ]}),
        Shape::Gemini => json!({
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello!"}]},
            {"role": "user", "parts": [{"text": "What is Rust?"}]}
        ]}),
    }
}

const REPLY: &str = "Sandbox reply from gpt-4o-mini: What is Rust?";
// 32 + 13 = 45 characters -> 12 output tokens.
const USAGE: Usage = Usage {
    input_tokens: 8,
    cached_input_tokens: 0,
    output_tokens: 12,
};

fn text_of(shape: Shape, v: &Value) -> String {
    match shape {
        Shape::OpenAi => v["choices"][0]["message"]["content"].as_str().unwrap().to_owned(),
        Shape::Anthropic => v["content"][0]["text"].as_str().unwrap().to_owned(),
        Shape::Gemini => v["candidates"][0]["content"]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned(),
    }
}

#[test]
fn non_streaming_reply_and_usage() {
    for shape in Shape::ALL {
        let (body, usage) = sandbox::respond(shape, &request(shape, false, false), "gpt-4o-mini").unwrap();
        assert_eq!(text_of(shape, &body), REPLY, "{shape}");
        assert_eq!(usage, USAGE, "{shape}");
        assert_eq!(
            usage_from_response(shape, &body),
            Some(USAGE),
            "{shape}: usage in the body"
        );
        match shape {
            Shape::OpenAi => {
                assert_eq!(body["model"], "gpt-4o-mini");
                assert_eq!(body["choices"][0]["finish_reason"], "stop");
                assert_eq!(body["object"], "chat.completion");
            }
            Shape::Anthropic => {
                assert_eq!(body["model"], "gpt-4o-mini");
                assert_eq!(body["stop_reason"], "end_turn");
                assert_eq!(body["type"], "message");
            }
            Shape::Gemini => {
                assert_eq!(body["modelVersion"], "gpt-4o-mini");
                assert_eq!(body["candidates"][0]["finishReason"], "STOP");
            }
        }
    }
}

#[test]
fn streaming_reply_and_usage() {
    for shape in Shape::ALL {
        let (events, usage) = sandbox::respond_stream(shape, &request(shape, true, true), "gpt-4o-mini").unwrap();
        assert_eq!(usage, USAGE);
        let c = collect(shape, &events, "gpt-4o-mini", true);
        assert_eq!(c.text, REPLY, "{shape}");
        assert!(c.text_deltas >= 5, "{shape}: several deltas, got {}", c.text_deltas);
        assert_eq!(c.usage, Some(USAGE), "{shape}");
        assert!(c.tools.is_empty());
        let stop = match shape {
            Shape::OpenAi => "stop",
            Shape::Anthropic => "end_turn",
            Shape::Gemini => "STOP",
        };
        assert_eq!(c.stop, stop);
    }
}

#[test]
fn openai_stream_has_a_usage_chunk_only_when_asked() {
    let (events, _) = sandbox::respond_stream(Shape::OpenAi, &request(Shape::OpenAi, true, false), "m").unwrap();
    let c = collect(Shape::OpenAi, &events, "m", false);
    assert_eq!(c.usage, None);
    assert_eq!(events.last().unwrap().data, "[DONE]");
}

#[test]
fn quotes_at_most_200_characters() {
    let long: String = "é".repeat(150) + &"x".repeat(150);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": long}]});
    let (v, usage) = sandbox::respond(Shape::OpenAi, &body, "claude-3-5-haiku").unwrap();
    let text = text_of(Shape::OpenAi, &v);
    let want = format!(
        "Sandbox reply from claude-3-5-haiku: {}{}",
        "é".repeat(150),
        "x".repeat(50)
    );
    assert_eq!(text, want);
    assert_eq!(usage.input_tokens, 75, "300 characters");
    assert_eq!(usage.output_tokens, (37 + 200_u64).div_ceil(4));
}

#[test]
fn tool_results_as_last_turn_quote_the_last_text_message() {
    let body = json!({"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "w", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "sunny"}]}
    ]});
    let (v, usage) = sandbox::respond(Shape::Anthropic, &body, "m").unwrap();
    assert_eq!(text_of(Shape::Anthropic, &v), "Sandbox reply from m: Weather?");
    // "Weather?" (8) + "{}" (2) + "sunny" (5) = 15 characters.
    assert_eq!(usage.input_tokens, 4);
}

#[test]
fn invalid_requests_are_refused() {
    assert!(matches!(
        sandbox::respond(Shape::Gemini, &json!({"contents": []}), "m"),
        Err(TranslateError::Invalid(_))
    ));
    assert!(matches!(
        sandbox::respond_stream(Shape::OpenAi, &json!({"model": "m"}), "m"),
        Err(TranslateError::Invalid(_))
    ));
}
