//! Request translation in all six directions (and same-shape forwarding).

use serde_json::{json, Value};
use tokenone_providers::{translate_request, Shape, TranslateError};

use crate::common::{conversation, normalize_ids};

/// The conversation fixture translated from every shape into every shape equals the target's own
/// fixture: system prompt, multi-turn history, tool definition, tool call and result, max tokens,
/// temperature and stop sequences all survive.
#[test]
fn conversation_translates_exactly_in_every_direction() {
    for from in Shape::ALL {
        for to in Shape::ALL {
            let got = translate_request(from, to, &conversation(from, None), "M", false)
                .unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
            let want = conversation(to, Some("M"));
            assert_eq!(
                normalize_ids(&got),
                normalize_ids(&want),
                "{from} -> {to}\n got: {got:#}\nwant: {want:#}"
            );
        }
    }
}

#[test]
fn ids_stay_paired_when_gemini_has_none() {
    for to in [Shape::OpenAi, Shape::Anthropic] {
        let got = translate_request(Shape::Gemini, to, &conversation(Shape::Gemini, None), "M", false).unwrap();
        let s = got.to_string();
        assert!(s.contains("\"call_0\""), "{to}: synthesised id in {s}");
        assert_eq!(
            s.matches("call_0").count(),
            2,
            "the call and its result share the id: {s}"
        );
    }
}

#[test]
fn targets_get_their_own_required_fields() {
    let mut openai = conversation(Shape::OpenAi, None);
    openai.as_object_mut().unwrap().remove("max_tokens");
    // Anthropic requires max_tokens: 4096 when the source had none.
    let a = translate_request(Shape::OpenAi, Shape::Anthropic, &openai, "claude-3-5-haiku", true).unwrap();
    assert_eq!(a["max_tokens"], 4096);
    assert_eq!(a["stream"], true);
    assert_eq!(a["model"], "claude-3-5-haiku");
    // OpenAI stream: include_usage is requested.
    let o = translate_request(
        Shape::Anthropic,
        Shape::OpenAi,
        &conversation(Shape::Anthropic, None),
        "gpt-4o",
        true,
    )
    .unwrap();
    assert_eq!(o["stream"], true);
    assert_eq!(o["stream_options"], json!({"include_usage": true}));
    // Gemini: no model, no stream flag in the body.
    let g = translate_request(Shape::OpenAi, Shape::Gemini, &openai, "gemini-1.5-pro", true).unwrap();
    assert!(g.get("model").is_none());
    assert!(g.get("stream").is_none());
    // Reasoning models take max_completion_tokens.
    let o1 = translate_request(
        Shape::Anthropic,
        Shape::OpenAi,
        &conversation(Shape::Anthropic, None),
        "o1",
        false,
    )
    .unwrap();
    assert_eq!(o1["max_completion_tokens"], 300);
    assert!(o1.get("max_tokens").is_none());
}

#[test]
fn same_shape_forwarding_keeps_unknown_fields() {
    let mut body = conversation(Shape::OpenAi, None);
    body["user"] = json!("u-1");
    body["seed"] = json!(7);
    let out = translate_request(Shape::OpenAi, Shape::OpenAi, &body, "accounts/fireworks/models/x", true).unwrap();
    assert_eq!(out["user"], "u-1");
    assert_eq!(out["seed"], 7);
    assert_eq!(out["model"], "accounts/fireworks/models/x");
    assert_eq!(out["stream_options"]["include_usage"], true);
    let g = conversation(Shape::Gemini, None);
    assert_eq!(
        translate_request(Shape::Gemini, Shape::Gemini, &g, "x", false).unwrap(),
        g
    );
}

fn openai_image(url: &str) -> Value {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": url, "detail": "low"}}
    ]}]})
}

#[test]
fn base64_images_translate_everywhere() {
    let from_openai = openai_image("data:image/png;base64,iVBORw0KGgo=");
    let a = translate_request(Shape::OpenAi, Shape::Anthropic, &from_openai, "m", false).unwrap();
    assert_eq!(
        a["messages"][0]["content"],
        json!([
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
        ])
    );
    let g = translate_request(Shape::OpenAi, Shape::Gemini, &from_openai, "m", false).unwrap();
    assert_eq!(
        g["contents"][0]["parts"],
        json!([{"text": "What is this?"}, {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}])
    );
    // And back from both.
    for (shape, body) in [(Shape::Anthropic, &a), (Shape::Gemini, &g)] {
        let o = translate_request(shape, Shape::OpenAi, body, "gpt-4o", false).unwrap();
        assert_eq!(
            o["messages"][0]["content"],
            json!([
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]),
            "{shape}"
        );
    }
    let ag = translate_request(Shape::Anthropic, Shape::Gemini, &a, "m", false).unwrap();
    assert_eq!(ag["contents"], g["contents"]);
    let ga = translate_request(Shape::Gemini, Shape::Anthropic, &g, "m", false).unwrap();
    assert_eq!(ga["messages"], a["messages"]);
}

#[test]
fn images_a_target_cannot_carry_are_unsupported() {
    let remote = openai_image("https://example.com/cat.png");
    // Anthropic takes URL sources...
    let a = translate_request(Shape::OpenAi, Shape::Anthropic, &remote, "m", false).unwrap();
    assert_eq!(
        a["messages"][0]["content"][1],
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}})
    );
    // ...Gemini cannot fetch a remote URL.
    assert_eq!(
        translate_request(Shape::OpenAi, Shape::Gemini, &remote, "m", false),
        Err(TranslateError::Unsupported("image_url"))
    );
    assert_eq!(
        translate_request(Shape::Anthropic, Shape::Gemini, &a, "m", false),
        Err(TranslateError::Unsupported("image_url"))
    );
    let file = json!({"contents": [{"role": "user", "parts": [
        {"text": "see"}, {"fileData": {"mimeType": "image/png", "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}}
    ]}]});
    for to in [Shape::OpenAi, Shape::Anthropic] {
        assert_eq!(
            translate_request(Shape::Gemini, to, &file, "m", false),
            Err(TranslateError::Unsupported("file_data"))
        );
    }
    let audio = json!({"contents": [{"parts": [{"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}}]}]});
    assert_eq!(
        translate_request(Shape::Gemini, Shape::OpenAi, &audio, "m", false),
        Err(TranslateError::Unsupported("inline_data"))
    );
    // An image inside an Anthropic tool result has no OpenAI or Gemini form.
    let img_result = json!({"model": "c", "max_tokens": 10, "messages": [
        {"role": "user", "content": "draw"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}
        ]}]}
    ]});
    for to in [Shape::OpenAi, Shape::Gemini] {
        assert_eq!(
            translate_request(Shape::Anthropic, to, &img_result, "m", false),
            Err(TranslateError::Unsupported("image_in_tool_result"))
        );
    }
}

#[test]
fn features_only_the_source_can_carry_are_unsupported() {
    let cases: Vec<(Shape, Value, &str)> = vec![
        (
            Shape::OpenAi,
            json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
            "n",
        ),
        (
            Shape::OpenAi,
            json!({"model": "m", "logprobs": true, "messages": [{"role": "user", "content": "hi"}]}),
            "logprobs",
        ),
        (
            Shape::OpenAi,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}]}),
            "audio",
        ),
        (
            Shape::OpenAi,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "custom", "custom": {"name": "x"}}]}),
            "tool_type",
        ),
        (
            Shape::Anthropic,
            json!({"model": "m", "max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1024}, "messages": [{"role": "user", "content": "hi"}]}),
            "thinking",
        ),
        (
            Shape::Anthropic,
            json!({"model": "m", "max_tokens": 20, "tools": [{"type": "web_search_20250305", "name": "web_search"}], "messages": [{"role": "user", "content": "hi"}]}),
            "server_tool",
        ),
        (
            Shape::Anthropic,
            json!({"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "AA"}}]}]}),
            "document",
        ),
        (
            Shape::Gemini,
            json!({"cachedContent": "cachedContents/abc", "contents": [{"parts": [{"text": "hi"}]}]}),
            "cached_content",
        ),
        (
            Shape::Gemini,
            json!({"tools": [{"googleSearch": {}}], "contents": [{"parts": [{"text": "hi"}]}]}),
            "gemini_builtin_tool",
        ),
        (
            Shape::Gemini,
            json!({"generationConfig": {"candidateCount": 3}, "contents": [{"parts": [{"text": "hi"}]}]}),
            "candidate_count",
        ),
    ];
    for (from, body, feature) in cases {
        for to in Shape::ALL.into_iter().filter(|t| *t != from) {
            assert_eq!(
                translate_request(from, to, &body, "m", false),
                Err(TranslateError::Unsupported(feature)),
                "{from} -> {to}: {body}"
            );
        }
    }
}

#[test]
fn json_mode_where_expressible() {
    let obj = json!({"model": "m", "response_format": {"type": "json_object"}, "messages": [
        {"role": "system", "content": "Reply in JSON."}, {"role": "user", "content": "hi"}
    ]});
    let g = translate_request(Shape::OpenAi, Shape::Gemini, &obj, "m", false).unwrap();
    assert_eq!(g["generationConfig"]["responseMimeType"], "application/json");
    let a = translate_request(Shape::OpenAi, Shape::Anthropic, &obj, "m", false).unwrap();
    let system = a["system"].as_str().unwrap();
    assert!(system.starts_with("Reply in JSON.\n\n"), "{system}");
    assert!(system.contains("single valid JSON object"), "{system}");

    let schema = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "city", "strict": true, "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": false}}
    }});
    assert_eq!(
        translate_request(Shape::OpenAi, Shape::Anthropic, &schema, "m", false),
        Err(TranslateError::Unsupported("json_schema"))
    );
    let g = translate_request(Shape::OpenAi, Shape::Gemini, &schema, "m", false).unwrap();
    assert_eq!(
        g["generationConfig"],
        json!({
            "responseMimeType": "application/json",
            "responseSchema": {"type": "OBJECT", "properties": {"name": {"type": "STRING"}}, "required": ["name"]}
        })
    );
    // Gemini JSON mode back to OpenAI.
    let o = translate_request(Shape::Gemini, Shape::OpenAi, &g, "gpt-4o", false).unwrap();
    assert_eq!(
        o["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "response", "schema": {
            "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]
        }}})
    );
    let plain = json!({"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"responseMimeType": "application/json"}});
    let o = translate_request(Shape::Gemini, Shape::OpenAi, &plain, "gpt-4o", false).unwrap();
    assert_eq!(o["response_format"], json!({"type": "json_object"}));
}

#[test]
fn tool_choice_maps_between_vendors() {
    let base = |choice: Value| {
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
               "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}],
               "tool_choice": choice, "parallel_tool_calls": false})
    };
    let cases = [
        (
            json!("required"),
            json!({"type": "any", "disable_parallel_tool_use": true}),
            json!({"mode": "ANY"}),
        ),
        (json!("none"), json!({"type": "none"}), json!({"mode": "NONE"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true}),
            json!({"mode": "ANY", "allowedFunctionNames": ["f"]}),
        ),
    ];
    for (openai, anthropic, gemini) in cases {
        let body = base(openai.clone());
        let a = translate_request(Shape::OpenAi, Shape::Anthropic, &body, "m", false).unwrap();
        assert_eq!(a["tool_choice"], anthropic, "{openai}");
        let g = translate_request(Shape::OpenAi, Shape::Gemini, &body, "m", false).unwrap();
        assert_eq!(g["toolConfig"]["functionCallingConfig"], gemini, "{openai}");
        let back = translate_request(Shape::Gemini, Shape::OpenAi, &g, "m", false).unwrap();
        assert_eq!(back["tool_choice"], openai, "{openai} round trip via gemini");
    }
}

#[test]
fn sampling_parameters_map() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                      "temperature": 1.5, "top_p": 0.9, "stop": "STOP"});
    let a = translate_request(Shape::OpenAi, Shape::Anthropic, &body, "m", false).unwrap();
    assert_eq!(a["temperature"], 1.0, "Anthropic's temperature tops out at 1");
    assert_eq!(a["top_p"], 0.9);
    assert_eq!(a["stop_sequences"], json!(["STOP"]));
    let g = translate_request(Shape::OpenAi, Shape::Gemini, &body, "m", false).unwrap();
    assert_eq!(
        g["generationConfig"],
        json!({"temperature": 1.5, "topP": 0.9, "stopSequences": ["STOP"]})
    );
    let anth = json!({"model": "m", "max_tokens": 5, "top_k": 40, "messages": [{"role": "user", "content": "hi"}]});
    let g = translate_request(Shape::Anthropic, Shape::Gemini, &anth, "m", false).unwrap();
    assert_eq!(g["generationConfig"], json!({"maxOutputTokens": 5, "topK": 40}));
}

#[test]
fn openai_system_and_developer_messages_join_the_system_prompt() {
    let body = json!({"model": "m", "messages": [
        {"role": "developer", "content": "Rule one."},
        {"role": "system", "content": [{"type": "text", "text": "Rule two."}]},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]});
    let a = translate_request(Shape::OpenAi, Shape::Anthropic, &body, "m", false).unwrap();
    assert_eq!(a["system"], "Rule one.\n\nRule two.");
    assert_eq!(
        a["messages"],
        json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
        ])
    );
    let g = translate_request(Shape::OpenAi, Shape::Gemini, &body, "m", false).unwrap();
    assert_eq!(
        g["systemInstruction"],
        json!({"parts": [{"text": "Rule one.\n\nRule two."}]})
    );
    assert_eq!(g["contents"][1], json!({"role": "model", "parts": [{"text": "hello"}]}));
}

#[test]
fn parallel_tool_results_group_into_one_turn() {
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "weather in Paris and Rome"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "c2", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Rome\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "20C"},
        {"role": "tool", "tool_call_id": "c2", "content": "25C"}
    ]});
    let a = translate_request(Shape::OpenAi, Shape::Anthropic, &body, "m", false).unwrap();
    assert_eq!(
        a["messages"][2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": "20C"},
            {"type": "tool_result", "tool_use_id": "c2", "content": "25C"}
        ]})
    );
    assert_eq!(
        a["messages"][1]["content"][0],
        json!({"type": "text", "text": "Checking."})
    );
    let g = translate_request(Shape::OpenAi, Shape::Gemini, &body, "m", false).unwrap();
    assert_eq!(
        g["contents"][2],
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "w", "response": {"content": "20C"}}},
            {"functionResponse": {"name": "w", "response": {"content": "25C"}}}
        ]})
    );
    // Gemini -> OpenAI pairs same-named responses with calls in order.
    let o = translate_request(Shape::Gemini, Shape::OpenAi, &g, "m", false).unwrap();
    assert_eq!(o["messages"][1]["tool_calls"][0]["id"], "call_0");
    assert_eq!(o["messages"][1]["tool_calls"][1]["id"], "call_1");
    assert_eq!(
        o["messages"][2],
        json!({"role": "tool", "tool_call_id": "call_0", "content": "20C"})
    );
    assert_eq!(
        o["messages"][3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "25C"})
    );
}

#[test]
fn invalid_requests_are_invalid() {
    let cases = [
        (Shape::OpenAi, json!({"model": "m"})),
        (Shape::OpenAi, json!({"model": "m", "messages": []})),
        (
            Shape::OpenAi,
            json!({"model": "m", "messages": [{"content": "no role"}]}),
        ),
        (
            Shape::OpenAi,
            json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}),
        ),
        (
            Shape::OpenAi,
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
        ),
        (
            Shape::OpenAi,
            json!({"model": "m", "max_tokens": -1, "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            Shape::Anthropic,
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}),
        ),
        (
            Shape::Anthropic,
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user"}]}),
        ),
        (Shape::Gemini, json!({"contents": []})),
        (Shape::Gemini, json!({"contents": [{"role": "user"}]})),
        (Shape::Gemini, json!([1, 2])),
    ];
    for (shape, body) in cases {
        for to in Shape::ALL {
            assert!(
                matches!(
                    translate_request(shape, to, &body, "m", false),
                    Err(TranslateError::Invalid(_))
                ),
                "{shape} -> {to}: {body}"
            );
        }
    }
}
