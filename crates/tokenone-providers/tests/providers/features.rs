//! Request features for routing, and the small request helpers.

use serde_json::json;
use tokenone_providers::{
    ensure_openai_stream_usage, features, request_model, request_stream, set_model, Features, Shape, TranslateError,
};

use crate::common::conversation;

#[test]
fn conversation_features_agree_across_shapes() {
    // "You are terse." 14 + "What's the weather in Paris?" 28 + {"city":"Paris"} 16
    // + "22C and sunny" 13 + "Thanks! And in Rome?" 20 = 91
    let want = Features {
        tools: true,
        images: false,
        json_mode: false,
        max_output_tokens: Some(300),
        text_chars: 91,
        last_user_text: "Thanks! And in Rome?".into(),
        system_text: "You are terse.".into(),
        turns: 0,
        has_code: false,
    };
    for (shape, turns) in [(Shape::OpenAi, 4), (Shape::Anthropic, 3), (Shape::Gemini, 3)] {
        let f = features(shape, &conversation(shape, None)).unwrap();
        assert_eq!(f, Features { turns, ..want.clone() }, "{shape}");
    }
}

#[test]
fn images_json_code_and_limits() {
    let f = features(
        Shape::OpenAi,
        &json!({"model": "gpt-4o", "max_completion_tokens": 50, "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Explain:\n```\nfn main() {}\n```"},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
        ]}]}),
    )
    .unwrap();
    assert!(f.images && f.json_mode && f.has_code && !f.tools);
    assert_eq!(f.max_output_tokens, Some(50));
    let g = features(
        Shape::Gemini,
        &json!({"contents": [{"parts": [{"inlineData": {"mimeType": "image/jpeg", "data": "AA"}}, {"text": "what?"}]}],
                "generationConfig": {"responseMimeType": "application/json", "maxOutputTokens": 9}}),
    )
    .unwrap();
    assert!(g.images && g.json_mode);
    assert_eq!(g.max_output_tokens, Some(9));
    assert_eq!(g.last_user_text, "what?");
    let a = features(
        Shape::Anthropic,
        &json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
        ]}]}),
    )
    .unwrap();
    assert!(a.images);
    assert_eq!(a.text_chars, 0);
}

#[test]
fn features_validate() {
    for (shape, body) in [
        (Shape::OpenAi, json!({"messages": [{"role": "user", "content": "x"}]})),
        (
            Shape::OpenAi,
            json!({"model": 5, "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            Shape::OpenAi,
            json!({"model": "m", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}),
        ),
        (Shape::Anthropic, json!({"model": "m", "max_tokens": 5})),
        (
            Shape::Anthropic,
            json!({"model": "m", "max_tokens": "five", "messages": [{"role": "user", "content": "x"}]}),
        ),
        (Shape::Gemini, json!({"contents": "hello"})),
        (
            Shape::Gemini,
            json!({"contents": [{"role": "robot", "parts": [{"text": "x"}]}]}),
        ),
    ] {
        assert!(
            matches!(features(shape, &body), Err(TranslateError::Invalid(_))),
            "{shape}: {body}"
        );
    }
}

#[test]
fn model_stream_and_options() {
    let mut body = json!({"model": "gpt-4o", "stream": true, "messages": []});
    assert_eq!(request_model(Shape::OpenAi, &body).as_deref(), Some("gpt-4o"));
    assert!(request_stream(Shape::OpenAi, &body));
    assert!(!request_stream(Shape::Anthropic, &json!({"stream": "true"})));
    assert_eq!(request_model(Shape::Gemini, &json!({"model": "x"})), None);
    assert!(!request_stream(Shape::Gemini, &json!({"stream": true})));
    set_model(Shape::OpenAi, &mut body, "gpt-4o-mini");
    assert_eq!(body["model"], "gpt-4o-mini");
    let mut g = json!({"contents": []});
    set_model(Shape::Gemini, &mut g, "x");
    assert_eq!(g, json!({"contents": []}));

    assert!(ensure_openai_stream_usage(&mut body), "the client had not asked");
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert!(!ensure_openai_stream_usage(&mut body), "now it is asked");
    let mut partial = json!({"stream_options": {"include_usage": false, "other": 1}});
    assert!(ensure_openai_stream_usage(&mut partial));
    assert_eq!(partial["stream_options"], json!({"include_usage": true, "other": 1}));
}

#[test]
fn shape_names() {
    for s in Shape::ALL {
        assert_eq!(s.as_str().parse::<Shape>(), Ok(s));
        assert_eq!(s.to_string(), s.as_str());
    }
    assert_eq!(Shape::OpenAi.as_str(), "openai");
    assert!("OpenAI".parse::<Shape>().is_err());
}
