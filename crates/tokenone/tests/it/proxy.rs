//! The proxy: keys, the three shapes, sandbox, forwarding, translation, failures, limits.

use serde_json::{json, Value};
use tokenone_testkit::mock::Behaviour;
use tokenone_testkit::{both_backends, TestApp, Upstreams, UPSTREAM_KEY};

/// An app whose providers point at mock vendors, a project, and a dev and a live key.
struct Setup {
    app: TestApp,
    up: Upstreams,
    token: String,
    project: String,
    dev: String,
    live: String,
}

async fn setup(app: TestApp) -> Setup {
    let backend = app.backend;
    app.stop().await;
    let up = Upstreams::start().await;
    let app = TestApp::spawn_with(backend, |c| up.configure(c)).await;
    let token = app.admin_token().await;
    let project = app.create_project(&token, "Proxy").await;
    let (dev, _) = app.create_key(&token, &project, json!({"name": "dev", "mode": "dev"})).await;
    let (live, _) = app.create_key(&token, &project, json!({"name": "live", "mode": "live"})).await;
    Setup { app, up, token, project, dev, live }
}

async fn send(app: &TestApp, path: &str, key: &str, body: Value) -> tokenone_testkit::Answer {
    let resp = app.client.post(app.url(path)).bearer_auth(key).json(&body).send().await.unwrap();
    TestApp::answer(resp).await
}

async fn sandbox_answers_in_each_shape(app: TestApp) {
    let s = setup(app).await;
    let a = send(&s.app, "/v1/openai-proxy/v1/chat/completions", &s.dev,
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello there"}]})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["choices"][0]["message"]["content"], "Sandbox reply from gpt-4o-mini: Hello there");
    assert_eq!(a.header("x-tokenone-model"), Some("gpt-4o-mini"));
    assert!(a.header("x-tokenone-overhead-ms").is_some());
    let a = send(&s.app, "/v1/anthropic-proxy/v1/messages", &s.dev,
        json!({"model": "claude-sonnet-4", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["content"][0]["text"], "Sandbox reply from claude-sonnet-4: Hi");
    let a = send(&s.app, "/v1/gemini-proxy/v1beta/models/gemini-1.5-flash:generateContent", &s.dev,
        json!({"contents": [{"role": "user", "parts": [{"text": "Yo"}]}]})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let rows = s.app.wait_rows("SELECT * FROM calls", 3).await;
    assert_eq!(rows.len(), 3);
    assert!(s.up.openai.requests().is_empty(), "dev calls never reach an upstream");
    let _ = (&s.token, &s.project, &s.live, UPSTREAM_KEY);
}

async fn live_openai_forwarding(app: TestApp) {
    let s = setup(app).await;
    let a = send(&s.app, "/v1/openai-proxy/v1/chat/completions", &s.live,
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}], "custom_field": 7})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["choices"][0]["message"]["content"], "Echo: ping");
    assert_eq!(a.body["x_vendor_extra"]["kept"], true);
    let reqs = s.up.openai.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body["custom_field"], 7);
    assert_eq!(reqs[0].headers["authorization"], format!("Bearer {UPSTREAM_KEY}"));
    let rows = s.app.wait_rows("SELECT * FROM calls", 1).await;
    assert_eq!(rows[0]["input_tokens"], 11);
}

async fn live_stream_and_cross_shape(app: TestApp) {
    let s = setup(app).await;
    let a = send(&s.app, "/v1/openai-proxy/v1/chat/completions", &s.live,
        json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "one two three"}]})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.text.contains("data: [DONE]"), "{}", a.text);
    assert!(!a.text.contains("\"usage\""), "usage chunk stripped when not asked: {}", a.text);
    let a = send(&s.app, "/v1/openai-proxy/v1/chat/completions", &s.live,
        json!({"model": "claude-sonnet-4", "messages": [{"role": "user", "content": "cross"}]})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["choices"][0]["message"]["content"], "Echo: cross", "{}", a.text);
    assert_eq!(s.up.anthropic.requests().len(), 1);
    s.up.openai.script(Behaviour::Status(500, json!({"error": {"message": "boom"}})));
    let a = send(&s.app, "/v1/openai-proxy/v1/chat/completions", &s.live,
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(a.status, 502, "{}", a.text);
    assert_eq!(a.body["error"]["type"], "upstream_error");
}

both_backends!(sandbox_answers_in_each_shape, live_openai_forwarding, live_stream_and_cross_shape);
