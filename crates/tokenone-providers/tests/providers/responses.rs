//! Non-streaming reply translation in all six directions.

use serde_json::{json, Value};
use tokenone_providers::{translate_response, usage_from_response, Shape, TranslateError, Usage};

use crate::common::{text_reply, tool_reply, tool_stop, SAMPLE_USAGE};

/// (text, [(name, args)], native stop) of a reply in its own shape, checking its envelope.
fn read(shape: Shape, v: &Value, model: &str) -> (String, Vec<(String, Value)>, String) {
    match shape {
        Shape::OpenAi => {
            assert_eq!(v["object"], "chat.completion");
            assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
            assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
            assert_eq!(v["model"], model);
            let choice = &v["choices"][0];
            let msg = &choice["message"];
            assert_eq!(msg["role"], "assistant");
            let tools = msg["tool_calls"]
                .as_array()
                .map(|calls| {
                    calls
                        .iter()
                        .map(|c| {
                            assert_eq!(c["type"], "function");
                            assert!(!c["id"].as_str().unwrap().is_empty());
                            let args: Value =
                                serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap();
                            (c["function"]["name"].as_str().unwrap().to_owned(), args)
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                msg["content"].as_str().unwrap_or_default().to_owned(),
                tools,
                choice["finish_reason"].as_str().unwrap().to_owned(),
            )
        }
        Shape::Anthropic => {
            assert_eq!(v["type"], "message");
            assert_eq!(v["role"], "assistant");
            assert!(v["id"].as_str().unwrap().starts_with("msg_"));
            assert_eq!(v["model"], model);
            let mut text = String::new();
            let mut tools = Vec::new();
            for b in v["content"].as_array().unwrap() {
                match b["type"].as_str().unwrap() {
                    "text" => text.push_str(b["text"].as_str().unwrap()),
                    "tool_use" => {
                        assert!(!b["id"].as_str().unwrap().is_empty());
                        tools.push((b["name"].as_str().unwrap().to_owned(), b["input"].clone()))
                    }
                    other => panic!("{other}"),
                }
            }
            (text, tools, v["stop_reason"].as_str().unwrap().to_owned())
        }
        Shape::Gemini => {
            assert_eq!(v["modelVersion"], model);
            let cand = &v["candidates"][0];
            assert_eq!(cand["content"]["role"], "model");
            let mut text = String::new();
            let mut tools = Vec::new();
            for p in cand["content"]["parts"].as_array().unwrap() {
                if let Some(t) = p["text"].as_str() {
                    text.push_str(t);
                } else {
                    let fc = &p["functionCall"];
                    tools.push((fc["name"].as_str().unwrap().to_owned(), fc["args"].clone()));
                }
            }
            (text, tools, cand["finishReason"].as_str().unwrap().to_owned())
        }
    }
}

#[test]
fn tool_reply_translates_in_every_direction() {
    for upstream in Shape::ALL {
        for client in Shape::ALL.into_iter().filter(|c| *c != upstream) {
            let out = translate_response(upstream, client, &tool_reply(upstream), "public-model")
                .unwrap_or_else(|e| panic!("{upstream} -> {client}: {e}"));
            let (text, tools, stop) = read(client, &out, "public-model");
            assert_eq!(text, "Let me check.", "{upstream} -> {client}");
            assert_eq!(
                tools,
                vec![("get_weather".to_owned(), json!({"city": "Rome"}))],
                "{upstream} -> {client}"
            );
            assert_eq!(stop, tool_stop(client), "{upstream} -> {client}");
            assert_eq!(
                usage_from_response(client, &out),
                Some(SAMPLE_USAGE),
                "{upstream} -> {client}: {out}"
            );
        }
    }
}

#[test]
fn usage_lands_in_each_clients_own_fields() {
    let o = translate_response(Shape::Anthropic, Shape::OpenAi, &tool_reply(Shape::Anthropic), "m").unwrap();
    assert_eq!(
        o["usage"],
        json!({"prompt_tokens": 100, "completion_tokens": 15, "total_tokens": 115, "prompt_tokens_details": {"cached_tokens": 20}})
    );
    let a = translate_response(Shape::Gemini, Shape::Anthropic, &tool_reply(Shape::Gemini), "m").unwrap();
    assert_eq!(
        a["usage"],
        json!({"input_tokens": 80, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 20, "output_tokens": 15})
    );
    let g = translate_response(Shape::OpenAi, Shape::Gemini, &tool_reply(Shape::OpenAi), "m").unwrap();
    assert_eq!(
        g["usageMetadata"],
        json!({"promptTokenCount": 100, "candidatesTokenCount": 15, "totalTokenCount": 115, "cachedContentTokenCount": 20})
    );
}

#[test]
fn tool_call_ids_survive_between_openai_and_anthropic() {
    let a = translate_response(Shape::OpenAi, Shape::Anthropic, &tool_reply(Shape::OpenAi), "m").unwrap();
    assert_eq!(a["content"][1]["id"], "call_9");
    let o = translate_response(Shape::Anthropic, Shape::OpenAi, &tool_reply(Shape::Anthropic), "m").unwrap();
    assert_eq!(o["choices"][0]["message"]["tool_calls"][0]["id"], "toolu_9");
    assert_eq!(
        o["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Rome\"}"
    );
}

#[test]
fn stop_reasons_map() {
    // (upstream shape, native reason, expected openai, anthropic, gemini)
    let table = [
        (Shape::OpenAi, "stop", "stop", "end_turn", "STOP"),
        (Shape::OpenAi, "length", "length", "max_tokens", "MAX_TOKENS"),
        (Shape::OpenAi, "content_filter", "content_filter", "refusal", "SAFETY"),
        (Shape::Anthropic, "end_turn", "stop", "end_turn", "STOP"),
        (Shape::Anthropic, "max_tokens", "length", "max_tokens", "MAX_TOKENS"),
        (Shape::Anthropic, "stop_sequence", "stop", "stop_sequence", "STOP"),
        (Shape::Anthropic, "refusal", "content_filter", "refusal", "SAFETY"),
        (Shape::Gemini, "STOP", "stop", "end_turn", "STOP"),
        (Shape::Gemini, "MAX_TOKENS", "length", "max_tokens", "MAX_TOKENS"),
        (Shape::Gemini, "SAFETY", "content_filter", "refusal", "SAFETY"),
        (Shape::Gemini, "RECITATION", "content_filter", "refusal", "SAFETY"),
    ];
    for (upstream, reason, openai, anthropic, gemini) in table {
        for (client, want) in [
            (Shape::OpenAi, openai),
            (Shape::Anthropic, anthropic),
            (Shape::Gemini, gemini),
        ] {
            if client == upstream {
                continue;
            }
            let out = translate_response(upstream, client, &text_reply(upstream, reason), "m").unwrap();
            let (text, tools, stop) = read(client, &out, "m");
            assert_eq!(stop, want, "{upstream} {reason} -> {client}");
            assert_eq!(text, "Hi.");
            assert!(tools.is_empty());
            assert_eq!(
                usage_from_response(client, &out),
                Some(Usage {
                    input_tokens: 10,
                    cached_input_tokens: 0,
                    output_tokens: 3
                })
            );
        }
    }
    // An Anthropic client learns which stop sequence matched only from Anthropic.
    let a = translate_response(
        Shape::Anthropic,
        Shape::Anthropic,
        &text_reply(Shape::Anthropic, "stop_sequence"),
        "m",
    )
    .unwrap();
    assert_eq!(a["stop_sequence"], "END");
}

#[test]
fn same_shape_reply_only_renames_the_model() {
    for shape in Shape::ALL {
        let body = tool_reply(shape);
        let out = translate_response(shape, shape, &body, "public").unwrap();
        let mut want = body.clone();
        match shape {
            Shape::Gemini => want["modelVersion"] = json!("public"),
            _ => want["model"] = json!("public"),
        }
        assert_eq!(out, want, "{shape}");
    }
}

#[test]
fn blocked_gemini_prompt_and_empty_openai_content() {
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}});
    let o = translate_response(Shape::Gemini, Shape::OpenAi, &blocked, "m").unwrap();
    assert_eq!(o["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(o["choices"][0]["message"]["content"], "");
    assert_eq!(o["usage"]["prompt_tokens"], 7);
    let a = translate_response(Shape::Gemini, Shape::Anthropic, &blocked, "m").unwrap();
    assert_eq!(a["stop_reason"], "refusal");
    assert_eq!(a["content"], json!([]));
}

#[test]
fn unreadable_replies_are_invalid() {
    for (shape, body) in [
        (Shape::OpenAi, json!({"id": "x"})),
        (
            Shape::Anthropic,
            json!({"type": "error", "error": {"type": "api_error", "message": "x"}}),
        ),
        (Shape::Gemini, json!({"foo": 1})),
    ] {
        for client in Shape::ALL.into_iter().filter(|c| *c != shape) {
            assert!(matches!(
                translate_response(shape, client, &body, "m"),
                Err(TranslateError::Invalid(_))
            ));
        }
    }
}

#[test]
fn response_text_chars_counts_text_and_arguments() {
    for shape in Shape::ALL {
        // "Let me check." (13) + {"city":"Rome"} (15)
        assert_eq!(
            tokenone_providers::response_text_chars(shape, &tool_reply(shape)),
            28,
            "{shape}"
        );
    }
}
