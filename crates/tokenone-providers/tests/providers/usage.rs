//! Usage extraction from non-streaming replies, cached tokens included, garbage tolerated.

use serde_json::{json, Value};
use tokenone_providers::{usage_from_response, Shape, Usage};

fn u(input: u64, cached: u64, output: u64) -> Option<Usage> {
    Some(Usage {
        input_tokens: input,
        cached_input_tokens: cached,
        output_tokens: output,
    })
}

#[test]
fn usage_table() {
    let cases: Vec<(Shape, Value, Option<Usage>)> = vec![
        // OpenAI
        (
            Shape::OpenAi,
            json!({"usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}),
            u(12, 0, 5),
        ),
        (
            Shape::OpenAi,
            json!({"usage": {"prompt_tokens": 2000, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 1536}}}),
            u(2000, 1536, 50),
        ),
        (
            Shape::OpenAi,
            json!({"usage": {"prompt_tokens": -3, "completion_tokens": 5}}),
            u(0, 0, 5),
        ),
        (
            Shape::OpenAi,
            json!({"usage": {"prompt_tokens": "12", "completion_tokens": "x"}}),
            None,
        ),
        (
            Shape::OpenAi,
            json!({"usage": {"prompt_tokens": 1.5, "completion_tokens": 2.0}}),
            u(0, 0, 2),
        ),
        (Shape::OpenAi, json!({"usage": null}), None),
        (Shape::OpenAi, json!({}), None),
        (
            Shape::OpenAi,
            json!({"usage": {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 99}}}),
            u(10, 10, 1),
        ),
        // Anthropic: cache reads and writes are input too.
        (
            Shape::Anthropic,
            json!({"usage": {"input_tokens": 25, "output_tokens": 7}}),
            u(25, 0, 7),
        ),
        (
            Shape::Anthropic,
            json!({"usage": {"input_tokens": 10, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 1000, "output_tokens": 30}}),
            u(1210, 1000, 30),
        ),
        (
            Shape::Anthropic,
            json!({"usage": {"input_tokens": 10, "cache_creation_input_tokens": null, "cache_read_input_tokens": -5, "output_tokens": 30}}),
            u(10, 0, 30),
        ),
        (
            Shape::Anthropic,
            json!({"usage": {"input_tokens": "many", "output_tokens": [1]}}),
            None,
        ),
        (Shape::Anthropic, json!({"usage": "lots"}), None),
        // Gemini: promptTokenCount includes the cached part; thinking tokens are output.
        (
            Shape::Gemini,
            json!({"usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 40, "totalTokenCount": 340}}),
            u(300, 0, 40),
        ),
        (
            Shape::Gemini,
            json!({"usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 40, "cachedContentTokenCount": 256}}),
            u(300, 256, 40),
        ),
        (
            Shape::Gemini,
            json!({"usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 40, "thoughtsTokenCount": 60}}),
            u(300, 0, 100),
        ),
        (
            Shape::Gemini,
            json!({"usageMetadata": {"promptTokenCount": 8}}),
            u(8, 0, 0),
        ),
        (
            Shape::Gemini,
            json!({"usageMetadata": {"promptTokenCount": -8, "candidatesTokenCount": true}}),
            None,
        ),
        (Shape::Gemini, json!({"usageMetadata": {}}), None),
        (Shape::Gemini, json!({"usage": {"prompt_tokens": 5}}), None),
    ];
    for (shape, body, want) in cases {
        assert_eq!(usage_from_response(shape, &body), want, "{shape}: {body}");
    }
}

#[test]
fn estimate_tokens_rounds_up_with_a_floor_of_one() {
    use tokenone_providers::estimate_tokens;
    assert_eq!(estimate_tokens(0), 1);
    assert_eq!(estimate_tokens(1), 1);
    assert_eq!(estimate_tokens(4), 1);
    assert_eq!(estimate_tokens(5), 2);
    assert_eq!(estimate_tokens(400), 100);
    assert_eq!(estimate_tokens(401), 101);
}
