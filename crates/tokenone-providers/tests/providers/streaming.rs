//! Cross-shape stream translation and same-shape observation, fed with recorded-looking streams.

use serde_json::{json, Value};
use tokenone_providers::{
    is_openai_usage_only, parse_data, rewrite_model, Shape, SseEvent, SseParser, StreamObserver, StreamTranslator,
    Usage,
};

use crate::common::{collect, parse_all, recorded_stream, tool_stop, SAMPLE_USAGE};

fn translate(upstream: Shape, client: Shape, events: &[SseEvent]) -> (Vec<SseEvent>, StreamTranslator) {
    let mut t = StreamTranslator::new(upstream, client, "public-model");
    let mut out = Vec::new();
    for ev in events {
        out.extend(t.push(ev));
    }
    out.extend(t.finish());
    (out, t)
}

#[test]
fn text_and_tool_call_stream_in_every_direction() {
    for upstream in Shape::ALL {
        let events = parse_all(recorded_stream(upstream).as_bytes());
        for client in Shape::ALL.into_iter().filter(|c| *c != upstream) {
            let (out, t) = translate(upstream, client, &events);
            let c = collect(client, &out, "public-model", true);
            assert_eq!(c.text, "Hello wörld", "{upstream} -> {client}");
            assert_eq!(
                c.text_deltas, 2,
                "{upstream} -> {client}: each text delta relayed as one"
            );
            assert_eq!(c.tools.len(), 1, "{upstream} -> {client}");
            assert_eq!(c.tools[0].1, "get_weather");
            assert_eq!(c.tools[0].2, json!({"city": "Rome"}), "{upstream} -> {client}");
            assert_eq!(c.stop, tool_stop(client), "{upstream} -> {client}");
            assert_eq!(c.usage, Some(SAMPLE_USAGE), "{upstream} -> {client}");
            assert_eq!(t.usage(), Some(SAMPLE_USAGE), "{upstream} -> {client}");
            assert!(t.finished());
            // "Hello wörld" (11) + {"city":"Rome"} (15)
            assert_eq!(t.delivered_text_chars(), 26, "{upstream} -> {client}");
            // Nothing more after the closing events.
            let mut again = t;
            assert!(again.finish().is_empty());
        }
    }
}

#[test]
fn tool_ids_survive_openai_anthropic_streams() {
    let events = parse_all(recorded_stream(Shape::OpenAi).as_bytes());
    let (out, _) = translate(Shape::OpenAi, Shape::Anthropic, &events);
    let c = collect(Shape::Anthropic, &out, "public-model", true);
    assert_eq!(c.tools[0].0, "call_9");
    let events = parse_all(recorded_stream(Shape::Anthropic).as_bytes());
    let (out, _) = translate(Shape::Anthropic, Shape::OpenAi, &events);
    let c = collect(Shape::OpenAi, &out, "public-model", true);
    assert_eq!(c.tools[0].0, "toolu_9");
}

#[test]
fn text_deltas_are_emitted_immediately() {
    for upstream in Shape::ALL {
        let events = parse_all(recorded_stream(upstream).as_bytes());
        let first_text = events.iter().position(|e| e.data.contains("Hello")).unwrap();
        for client in Shape::ALL.into_iter().filter(|c| *c != upstream) {
            let mut t = StreamTranslator::new(upstream, client, "m");
            let mut so_far = Vec::new();
            for ev in &events[..first_text] {
                so_far.extend(t.push(ev));
            }
            assert!(!so_far.iter().any(|e| e.data.contains("Hello")));
            let now = t.push(&events[first_text]);
            assert!(
                now.iter().any(|e| e.data.contains("Hello")),
                "{upstream} -> {client}: the text delta is out right away: {now:?}"
            );
        }
    }
}

#[test]
fn openai_client_without_usage_chunk() {
    let events = parse_all(recorded_stream(Shape::Anthropic).as_bytes());
    let mut t = StreamTranslator::new(Shape::Anthropic, Shape::OpenAi, "m").with_openai_include_usage(false);
    let mut out = Vec::new();
    for ev in &events {
        out.extend(t.push(ev));
    }
    out.extend(t.finish());
    let c = collect(Shape::OpenAi, &out, "m", false);
    assert_eq!(c.text, "Hello wörld");
    assert_eq!(
        t.usage(),
        Some(SAMPLE_USAGE),
        "the proxy still meters the upstream usage"
    );
}

#[test]
fn cut_stream_is_closed_validly_and_reports_no_usage() {
    for upstream in Shape::ALL {
        let events = parse_all(recorded_stream(upstream).as_bytes());
        let upto = events.iter().position(|e| e.data.contains("wörld")).unwrap() + 1;
        for client in Shape::ALL.into_iter().filter(|c| *c != upstream) {
            let (out, t) = translate(upstream, client, &events[..upto]);
            let c = collect(client, &out, "public-model", true);
            assert_eq!(c.text, "Hello wörld", "{upstream} -> {client}");
            assert!(c.tools.is_empty());
            assert_eq!(t.usage(), None, "{upstream} -> {client}: no final usage arrived");
            assert!(!t.finished());
            assert_eq!(t.delivered_text_chars(), 11);
            // The client is told the larger of the reported partial output and an estimate from
            // the delivered text, ceil(11 / 4) = 3 (Gemini had reported 4 so far).
            let want = if upstream == Shape::Gemini { 4 } else { 3 };
            assert_eq!(c.usage.unwrap().output_tokens, want, "{upstream} -> {client}");
        }
    }
}

#[test]
fn upstream_error_mid_stream_reaches_the_client_in_its_shape() {
    let upstreams = [
        (
            Shape::Anthropic,
            SseEvent::named(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
        ),
        (
            Shape::OpenAi,
            SseEvent::data(r#"{"error":{"message":"Overloaded","type":"server_error"}}"#),
        ),
        (
            Shape::Gemini,
            SseEvent::data(r#"{"error":{"code":503,"message":"Overloaded","status":"UNAVAILABLE"}}"#),
        ),
    ];
    for (upstream, err) in upstreams {
        for client in Shape::ALL.into_iter().filter(|c| *c != upstream) {
            let mut t = StreamTranslator::new(upstream, client, "m");
            let out = t.push(&err);
            let last = out.last().expect("an error event");
            let v: Value = serde_json::from_str(&last.data).unwrap();
            match client {
                Shape::OpenAi => assert_eq!(v["error"]["message"], "Overloaded"),
                Shape::Anthropic => {
                    assert_eq!(last.event.as_deref(), Some("error"));
                    assert_eq!(v["type"], "error");
                    assert_eq!(v["error"]["message"], "Overloaded");
                }
                Shape::Gemini => assert_eq!(v["error"]["status"], "UNAVAILABLE"),
            }
            assert_eq!(t.upstream_error(), Some("Overloaded"));
            assert!(t.finish().is_empty(), "nothing after the error");
        }
    }
}

#[test]
fn gemini_text_only_stream_to_anthropic_has_input_usage_at_start() {
    let raw = concat!(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"}}],\"usageMetadata\":{\"promptTokenCount\":9,\"totalTokenCount\":9}}\n\n",
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" there\"}],\"role\":\"model\"},\"finishReason\":\"MAX_TOKENS\"}],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":2,\"totalTokenCount\":11}}\n\n",
    );
    let (out, t) = translate(Shape::Gemini, Shape::Anthropic, &parse_all(raw.as_bytes()));
    let start: Value = serde_json::from_str(&out[0].data).unwrap();
    assert_eq!(start["message"]["usage"]["input_tokens"], 9);
    let c = collect(Shape::Anthropic, &out, "public-model", true);
    assert_eq!(c.text, "Hi there");
    assert_eq!(c.stop, "max_tokens");
    assert_eq!(
        c.usage,
        Some(Usage {
            input_tokens: 9,
            cached_input_tokens: 0,
            output_tokens: 2
        })
    );
    assert_eq!(t.usage(), c.usage);
}

/// How the relay reads an event: its data parsed once.
fn observe(o: &mut StreamObserver, ev: &SseEvent) {
    o.observe(ev, parse_data(ev).as_ref());
}

/// Whether `ev` is OpenAI's usage-only chunk, as the relay decides it.
fn usage_only(ev: &SseEvent) -> bool {
    parse_data(ev).is_some_and(|v| is_openai_usage_only(&v))
}

#[test]
fn observer_follows_same_shape_streams() {
    for shape in Shape::ALL {
        let raw = recorded_stream(shape);
        let mut o = StreamObserver::new(shape);
        let mut parser = SseParser::new();
        for ev in parser.push(raw.as_bytes()).into_iter().chain(parser.finish()) {
            assert!(!o.finished(), "{shape}: nothing after the terminal event");
            observe(&mut o, &ev);
        }
        assert!(o.finished(), "{shape}");
        assert_eq!(o.usage(), Some(SAMPLE_USAGE), "{shape}");
        assert_eq!(o.delivered_text_chars(), 26, "{shape}");
        assert_eq!(o.upstream_error(), None);
    }
}

#[test]
fn observer_without_final_usage() {
    for shape in Shape::ALL {
        let events = parse_all(recorded_stream(shape).as_bytes());
        let upto = events.iter().position(|e| e.data.contains("wörld")).unwrap() + 1;
        let mut o = StreamObserver::new(shape);
        for ev in &events[..upto] {
            observe(&mut o, ev);
        }
        assert_eq!(o.usage(), None, "{shape}");
        assert!(!o.finished());
        assert_eq!(o.delivered_text_chars(), 11);
    }
}

#[test]
fn anthropic_usage_from_message_start_and_delta_with_cache_writes() {
    let mut o = StreamObserver::new(Shape::Anthropic);
    observe(
        &mut o,
        &SseEvent::named(
            "message_start",
            r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"c","content":[],"usage":{"input_tokens":10,"cache_creation_input_tokens":30,"cache_read_input_tokens":50,"output_tokens":1}}}"#,
        ),
    );
    assert_eq!(o.usage(), None, "output is not final before message_delta");
    observe(
        &mut o,
        &SseEvent::named(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":42}}"#,
        ),
    );
    assert_eq!(
        o.usage(),
        Some(Usage {
            input_tokens: 90,
            cached_input_tokens: 50,
            output_tokens: 42
        })
    );
    observe(&mut o, &SseEvent::named("message_stop", r#"{"type":"message_stop"}"#));
    assert!(o.finished());
}

#[test]
fn openai_usage_only_chunk_is_recognised() {
    let events = parse_all(recorded_stream(Shape::OpenAi).as_bytes());
    let flags: Vec<bool> = events.iter().map(usage_only).collect();
    assert_eq!(flags.iter().filter(|f| **f).count(), 1);
    assert!(flags[flags.len() - 2], "the chunk before [DONE]");
    assert!(!usage_only(&SseEvent::data(
        r#"{"choices":[{"index":0,"delta":{}}],"usage":{"prompt_tokens":1}}"#
    )));
    assert!(!usage_only(&SseEvent::data(r#"{"choices":[],"usage":null}"#)));
    assert!(!usage_only(&SseEvent::data("[DONE]")));
    assert!(!usage_only(&SseEvent::data("not json")));
}

#[test]
fn rewrite_model_names_the_delivered_model() {
    for shape in Shape::ALL {
        let events = parse_all(recorded_stream(shape).as_bytes());
        let mut renamed = 0;
        for ev in &events {
            let out = rewrite_model(shape, ev.clone(), parse_data(ev), "public-model");
            // Naming the model it already names changes nothing.
            assert_eq!(rewrite_model(shape, out.clone(), parse_data(&out), "public-model"), out);
            assert_eq!(out.event, ev.event);
            let (Ok(before), Ok(after)) = (
                serde_json::from_str::<Value>(&ev.data),
                serde_json::from_str::<Value>(&out.data),
            ) else {
                assert_eq!(out.data, ev.data, "non-JSON data is untouched");
                continue;
            };
            let path = match shape {
                Shape::OpenAi => "/model",
                Shape::Anthropic => "/message/model",
                Shape::Gemini => "/modelVersion",
            };
            match before.pointer(path) {
                Some(_) => {
                    assert_eq!(after.pointer(path), Some(&json!("public-model")), "{shape}");
                    renamed += 1;
                    let mut b = before.clone();
                    *b.pointer_mut(path).unwrap() = json!("public-model");
                    assert_eq!(after, b, "{shape}: only the model changes");
                }
                None => assert_eq!(out, *ev, "{shape}: events without a model are untouched"),
            }
        }
        let expected = match shape {
            Shape::OpenAi => 8,
            Shape::Anthropic => 1,
            Shape::Gemini => 3,
        };
        assert_eq!(renamed, expected, "{shape}");
    }
}

#[test]
fn parallel_tool_calls_stream_as_separate_calls() {
    let head = r#""id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o""#;
    let chunk = |delta: &str, finish: &str| {
        format!("data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n")
    };
    let mut raw = String::new();
    raw += &chunk(r#"{"role":"assistant","content":null}"#, "null");
    raw += &chunk(
        r#"{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"w","arguments":"{\"city\":"}}]}"#,
        "null",
    );
    raw += &chunk(
        r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}"#,
        "null",
    );
    raw += &chunk(
        r#"{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"w","arguments":""}}]}"#,
        "null",
    );
    raw += &chunk(
        r#"{"tool_calls":[{"index":1,"function":{"arguments":"{\"city\":\"Rome\"}"}}]}"#,
        "null",
    );
    raw += &chunk("{}", "\"tool_calls\"");
    raw += &format!(
        "data: {{{head},\"choices\":[],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":9}}}}\n\ndata: [DONE]\n\n"
    );
    let events = parse_all(raw.as_bytes());
    for client in [Shape::Anthropic, Shape::Gemini] {
        let (out, t) = translate(Shape::OpenAi, client, &events);
        let c = collect(client, &out, "public-model", true);
        let calls: Vec<(String, Value)> = c.tools.iter().map(|(_, n, a)| (n.clone(), a.clone())).collect();
        assert_eq!(
            calls,
            vec![
                ("w".to_owned(), json!({"city": "Paris"})),
                ("w".to_owned(), json!({"city": "Rome"}))
            ],
            "{client}"
        );
        assert_eq!(c.text, "");
        assert_eq!(c.stop, tool_stop(client));
        assert_eq!(
            t.usage(),
            Some(Usage {
                input_tokens: 5,
                cached_input_tokens: 0,
                output_tokens: 9
            })
        );
    }
}
