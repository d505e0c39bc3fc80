//! The proxy: keys, the three shapes, sandbox, forwarding, translation, failures, limits.

use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashSet;
use tokenone_core::config::Config;
use tokenone_core::secret::Secret;
use tokenone_testkit::mock::{Behaviour, MockUpstream, Recorded};
use tokenone_testkit::{both_backends, Answer, TestApp, Upstreams, UPSTREAM_KEY};

const OPENAI: &str = "/v1/openai-proxy/v1/chat/completions";
const ANTHROPIC: &str = "/v1/anthropic-proxy/v1/messages";
const MODELS: &str = "/v1/openai-proxy/v1/models";

/// An app whose providers point at mock vendors, a project, and a dev and a live key (plus a
/// sentinel dev key that [`Setup::calls`] uses to know the call log is settled).
struct Setup {
    app: TestApp,
    up: Upstreams,
    token: String,
    project: String,
    dev: String,
    live: String,
    live_id: String,
    sentinel: String,
    sentinel_id: String,
}

async fn setup(app: TestApp) -> Setup {
    setup_with(app, |_| {}).await
}

/// [`setup`] with a configuration tweak applied after the mocks are configured.
async fn setup_with(app: TestApp, tweak: impl FnOnce(&mut Config)) -> Setup {
    let backend = app.backend;
    app.stop().await;
    let up = Upstreams::start().await;
    let app = TestApp::spawn_with(backend, |c| {
        up.configure(c);
        tweak(c);
    })
    .await;
    let token = app.admin_token().await;
    app.fund(&token).await;
    // These tests are about delivery on the native path; routing has its own tests.
    app.router("off", 100).await;
    let project = app.create_project(&token, "Proxy").await;
    let (dev, _) = app
        .create_key(&token, &project, json!({"name": "dev", "mode": "dev"}))
        .await;
    let (live, live_id) = app
        .create_key(&token, &project, json!({"name": "live", "mode": "live"}))
        .await;
    let (sentinel, sentinel_id) = app
        .create_key(&token, &project, json!({"name": "sentinel", "mode": "dev"}))
        .await;
    Setup {
        app,
        up,
        token,
        project,
        dev,
        live,
        live_id,
        sentinel,
        sentinel_id,
    }
}

impl Setup {
    /// The call rows of every key but the sentinel, once everything recorded so far is written:
    /// waits for `n` rows, then makes one sandbox call with the sentinel key and waits for its row
    /// (the writer is first-in first-out, so no earlier record is still pending). Asserts there
    /// are exactly `n`.
    async fn calls(&self, n: usize) -> Vec<Value> {
        let sql = format!("SELECT * FROM calls WHERE key_id <> '{}' ORDER BY id", self.sentinel_id);
        let sentinel_sql = format!("SELECT id FROM calls WHERE key_id = '{}'", self.sentinel_id);
        self.app.wait_rows(&sql, n).await;
        let before = self.app.rows(&sentinel_sql).await.len();
        let a = send(
            &self.app,
            OPENAI,
            &self.sentinel,
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "sentinel"}]}),
        )
        .await;
        assert_eq!(a.status, 200, "sentinel call: {}", a.text);
        let after = self.app.wait_rows(&sentinel_sql, before + 1).await;
        assert_eq!(after.len(), before + 1, "the sentinel's row is written");
        let rows = self.app.rows(&sql).await;
        assert_eq!(rows.len(), n, "exactly {n} call rows: {rows:#?}");
        rows
    }

    /// Sends a `sh`-shaped request for `model` with `key` (Bearer).
    async fn ask(&self, sh: Sh, key: &str, model: &str, text: &str, stream: bool) -> Answer {
        send(&self.app, &sh.path(model, stream), key, sh.body(model, text, stream)).await
    }
}

async fn send(app: &TestApp, path: &str, key: &str, body: Value) -> Answer {
    let resp = app
        .client
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    TestApp::answer(resp).await
}

/// POSTs `body` as it is, with these headers (and a JSON content type).
async fn send_raw(app: &TestApp, path: &str, headers: &[(&str, &str)], body: impl Into<String>) -> Answer {
    let mut req = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    TestApp::answer(req.body(body.into()).send().await.expect("request")).await
}

fn keys_path(project: &str) -> String {
    format!("/api/tokenone/projects/{project}/keys")
}

/// The three client shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sh {
    OpenAi,
    Anthropic,
    Gemini,
}

const ALL: [Sh; 3] = [Sh::OpenAi, Sh::Anthropic, Sh::Gemini];

impl Sh {
    /// A model its own vendor (mock) serves.
    fn native_model(self) -> &'static str {
        match self {
            Sh::OpenAi => "gpt-4o-mini",
            Sh::Anthropic => "claude-sonnet-4",
            Sh::Gemini => "gemini-1.5-flash",
        }
    }

    fn path(self, model: &str, stream: bool) -> String {
        match self {
            Sh::OpenAi => OPENAI.into(),
            Sh::Anthropic => ANTHROPIC.into(),
            Sh::Gemini if stream => format!("/v1/gemini-proxy/v1beta/models/{model}:streamGenerateContent?alt=sse"),
            Sh::Gemini => format!("/v1/gemini-proxy/v1beta/models/{model}:generateContent"),
        }
    }

    fn body(self, model: &str, text: &str, stream: bool) -> Value {
        match self {
            Sh::OpenAi => json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}),
            Sh::Anthropic => json!({"model": model, "max_tokens": 256, "stream": stream,
                "messages": [{"role": "user", "content": text}]}),
            Sh::Gemini => json!({"contents": [{"role": "user", "parts": [{"text": text}]}]}),
        }
    }

    fn mock(self, up: &Upstreams) -> &MockUpstream {
        match self {
            Sh::OpenAi => &up.openai,
            Sh::Anthropic => &up.anthropic,
            Sh::Gemini => &up.gemini,
        }
    }

    /// The answer text of a non-streaming reply.
    fn text(self, v: &Value) -> String {
        match self {
            Sh::OpenAi => v["choices"][0]["message"]["content"].as_str().unwrap_or("").into(),
            Sh::Anthropic => v["content"]
                .as_array()
                .map(|c| c.iter().filter_map(|b| b["text"].as_str()).collect())
                .unwrap_or_default(),
            Sh::Gemini => gemini_parts_text(v),
        }
    }

    /// The answer text of an SSE stream.
    fn stream_text(self, sse_text: &str) -> String {
        sse_json(sse_text)
            .iter()
            .map(|v| match self {
                Sh::OpenAi => v["choices"][0]["delta"]["content"].as_str().unwrap_or("").to_string(),
                Sh::Anthropic if v["type"] == "content_block_delta" => {
                    v["delta"]["text"].as_str().unwrap_or("").to_string()
                }
                Sh::Anthropic => String::new(),
                Sh::Gemini => gemini_parts_text(v),
            })
            .collect()
    }
}

fn gemini_parts_text(v: &Value) -> String {
    v["candidates"][0]["content"]["parts"]
        .as_array()
        .map(|p| p.iter().filter_map(|x| x["text"].as_str()).collect())
        .unwrap_or_default()
}

/// The output tokens the mocks report for `text`.
fn mock_output_tokens(text: &str) -> i64 {
    text.chars().count() as i64 / 4 + 1
}

/// The situations of proxy.md's error table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Auth,
    Perm,
    Invalid,
    NotFound,
    TooLarge,
    Rate,
    Unconfigured,
    Upstream,
    Timeout,
}

/// HTTP status and native type (Gemini: `status`) of a situation, from proxy.md.
fn expected(sh: Sh, k: Kind) -> (u16, &'static str) {
    use Kind::*;
    let status = match k {
        Auth => 401,
        Perm => 403,
        Invalid => 400,
        NotFound => 404,
        TooLarge => 413,
        Rate => 429,
        Unconfigured => 503,
        Upstream => 502,
        Timeout => 504,
    };
    let ty = match (sh, k) {
        (Sh::OpenAi, Auth) => "authentication_error",
        (Sh::OpenAi, Perm) => "permission_error",
        (Sh::OpenAi, Invalid | NotFound | TooLarge) => "invalid_request_error",
        (Sh::OpenAi, Rate) => "rate_limit_error",
        (Sh::OpenAi, Unconfigured) => "service_unavailable",
        (Sh::OpenAi, Upstream) => "upstream_error",
        (Sh::OpenAi, Timeout) => "timeout",
        (Sh::Anthropic, Auth) => "authentication_error",
        (Sh::Anthropic, Perm) => "permission_error",
        (Sh::Anthropic, Invalid) => "invalid_request_error",
        (Sh::Anthropic, NotFound) => "not_found_error",
        (Sh::Anthropic, TooLarge) => "request_too_large",
        (Sh::Anthropic, Rate) => "rate_limit_error",
        (Sh::Anthropic, Unconfigured) => "overloaded_error",
        (Sh::Anthropic, Upstream | Timeout) => "api_error",
        (Sh::Gemini, Auth) => "UNAUTHENTICATED",
        (Sh::Gemini, Perm) => "PERMISSION_DENIED",
        (Sh::Gemini, Invalid | TooLarge) => "INVALID_ARGUMENT",
        (Sh::Gemini, NotFound) => "NOT_FOUND",
        (Sh::Gemini, Rate) => "RESOURCE_EXHAUSTED",
        (Sh::Gemini, Unconfigured | Upstream) => "UNAVAILABLE",
        (Sh::Gemini, Timeout) => "DEADLINE_EXCEEDED",
    };
    (status, ty)
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}

/// Asserts the native error of situation `k` in shape `sh`; returns its message.
#[track_caller]
fn assert_native(a: &Answer, sh: Sh, k: Kind) -> String {
    let (status, ty) = expected(sh, k);
    assert_eq!(a.status.as_u16(), status, "{sh:?} {k:?}: {}", a.text);
    let message = assert_error_shape(a, sh, status, ty);
    if sh == Sh::OpenAi {
        let code = &a.body["error"]["code"];
        match k {
            Kind::Auth => assert_eq!(code, "invalid_api_key", "{}", a.text),
            Kind::NotFound => assert_eq!(code, "model_not_found", "{}", a.text),
            _ => {}
        }
    }
    message
}

/// Asserts the exact native error body of `sh` with this status and type; returns its message.
#[track_caller]
fn assert_error_shape(a: &Answer, sh: Sh, status: u16, ty: &str) -> String {
    assert_error_shape_any(a, sh, status, Some(ty))
}

/// [`assert_error_shape`]; `ty: None` accepts any non-empty type.
#[track_caller]
fn assert_error_shape_any(a: &Answer, sh: Sh, status: u16, ty: Option<&str>) -> String {
    assert_eq!(a.status.as_u16(), status, "{sh:?}: {}", a.text);
    assert!(
        a.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{sh:?}: {:?}",
        a.headers
    );
    let b = &a.body;
    let e = &b["error"];
    match sh {
        Sh::OpenAi => {
            assert_eq!(sorted_keys(b), ["error"], "{}", a.text);
            assert_eq!(sorted_keys(e), ["code", "message", "param", "type"], "{}", a.text);
            assert_type(&e["type"], ty, a);
            assert!(e["param"].is_null(), "{}", a.text);
            assert!(e["code"].is_string(), "{}", a.text);
        }
        Sh::Anthropic => {
            assert_eq!(sorted_keys(b), ["error", "type"], "{}", a.text);
            assert_eq!(b["type"], "error", "{}", a.text);
            assert_eq!(sorted_keys(e), ["message", "type"], "{}", a.text);
            assert_type(&e["type"], ty, a);
        }
        Sh::Gemini => {
            assert_eq!(sorted_keys(b), ["error"], "{}", a.text);
            assert_eq!(sorted_keys(e), ["code", "message", "status"], "{}", a.text);
            assert_eq!(e["code"], status, "{}", a.text);
            assert_type(&e["status"], ty, a);
        }
    }
    let m = e["message"].as_str().unwrap_or_default();
    assert!(!m.is_empty(), "{sh:?}: a message: {}", a.text);
    m.to_string()
}

#[track_caller]
fn assert_type(v: &Value, ty: Option<&str>, a: &Answer) {
    match ty {
        Some(t) => assert_eq!(v, t, "{}", a.text),
        None => assert!(v.as_str().is_some_and(|t| !t.is_empty()), "{}", a.text),
    }
}

/// (event name, data) of each SSE event.
fn sse(text: &str) -> Vec<(Option<String>, String)> {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut name = None;
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            (name, data.join("\n"))
        })
        .collect()
}

/// The JSON data of each SSE event (`[DONE]` and the like left out).
fn sse_json(text: &str) -> Vec<Value> {
    sse(text)
        .into_iter()
        .filter_map(|(_, d)| serde_json::from_str(&d).ok())
        .collect()
}

/// Nothing the upstream received carries a TokenOne key, and no header but the proxy's own
/// (content type, accept, credential, vendor version) reached it.
#[track_caller]
fn assert_clean_upstream(reqs: &[Recorded], secrets: &[&str]) {
    const ALLOWED: [&str; 11] = [
        "host",
        "content-type",
        "content-length",
        "accept",
        "accept-encoding",
        "user-agent",
        "authorization",
        "x-api-key",
        "anthropic-version",
        "anthropic-beta",
        "x-goog-api-key",
    ];
    for r in reqs {
        for s in secrets {
            assert!(!r.path.contains(s), "key in the upstream path {}", r.path);
            assert!(!r.body.to_string().contains(s), "key in the upstream body");
        }
        for (name, v) in r.headers.iter() {
            let v = String::from_utf8_lossy(v.as_bytes());
            assert!(
                ALLOWED.contains(&name.as_str()),
                "unexpected upstream header {name}: {v}"
            );
            assert!(
                !v.contains("to_live_") && !v.contains("to_dev_"),
                "a TokenOne key reached the upstream in {name}"
            );
            for s in secrets {
                assert!(!v.contains(s), "a TokenOne key reached the upstream in {name}");
            }
        }
    }
}

/// (status, error_code) of each row, sorted: for comparing a set of failures.
fn outcomes(rows: &[Value]) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = rows
        .iter()
        .map(|r| {
            (
                r["status"].as_i64().expect("status"),
                r["error_code"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn outcome(n: usize, status: i64, code: &str) -> Vec<(i64, String)> {
    vec![(status, code.to_string()); n]
}

#[track_caller]
fn assert_usage_sane(r: &Value) {
    for c in ["input_tokens", "cached_input_tokens", "output_tokens"] {
        let v = r[c].as_i64().unwrap_or(-1);
        assert!(v >= 0, "{c} = {v} in {r}");
    }
    assert!(r["cached_input_tokens"].as_i64() <= r["input_tokens"].as_i64(), "{r}");
}

// ---------------------------------------------------------------------------------------------
// The seed's tests

async fn sandbox_answers_in_each_shape(app: TestApp) {
    let s = setup(app).await;
    let a = send(
        &s.app,
        "/v1/openai-proxy/v1/chat/completions",
        &s.dev,
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello there"}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.body["choices"][0]["message"]["content"],
        "Sandbox reply from gpt-4o-mini: Hello there"
    );
    assert_eq!(a.header("x-tokenone-model"), Some("gpt-4o-mini"));
    assert!(a.header("x-tokenone-overhead-ms").is_some());
    let a = send(
        &s.app,
        "/v1/anthropic-proxy/v1/messages",
        &s.dev,
        json!({"model": "claude-sonnet-4", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["content"][0]["text"], "Sandbox reply from claude-sonnet-4: Hi");
    let a = send(
        &s.app,
        "/v1/gemini-proxy/v1beta/models/gemini-1.5-flash:generateContent",
        &s.dev,
        json!({"contents": [{"role": "user", "parts": [{"text": "Yo"}]}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let rows = s.app.wait_rows("SELECT * FROM calls", 3).await;
    assert_eq!(rows.len(), 3);
    assert!(s.up.openai.requests().is_empty(), "dev calls never reach an upstream");
    let _ = (&s.token, &s.project, &s.live, UPSTREAM_KEY);
}

async fn live_openai_forwarding(app: TestApp) {
    let s = setup(app).await;
    let a = send(
        &s.app,
        "/v1/openai-proxy/v1/chat/completions",
        &s.live,
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}], "custom_field": 7}),
    )
    .await;
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
    let a = send(
        &s.app,
        "/v1/openai-proxy/v1/chat/completions",
        &s.live,
        json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "one two three"}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.text.contains("data: [DONE]"), "{}", a.text);
    assert!(
        !a.text.contains("\"usage\""),
        "usage chunk stripped when not asked: {}",
        a.text
    );
    let a = send(
        &s.app,
        "/v1/openai-proxy/v1/chat/completions",
        &s.live,
        json!({"model": "claude-sonnet-4", "messages": [{"role": "user", "content": "cross"}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["choices"][0]["message"]["content"], "Echo: cross", "{}", a.text);
    assert_eq!(s.up.anthropic.requests().len(), 1);
    s.up.openai
        .script(Behaviour::Status(500, json!({"error": {"message": "boom"}})));
    let a = send(
        &s.app,
        "/v1/openai-proxy/v1/chat/completions",
        &s.live,
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(a.status, 502, "{}", a.text);
    assert_eq!(a.body["error"]["type"], "upstream_error");
}

// ---------------------------------------------------------------------------------------------
// The keys API

const KEY_INFO: [&str; 14] = [
    "createdAt",
    "createdBy",
    "expiresAt",
    "id",
    "ipAllowlist",
    "lastUsedAt",
    "last4",
    "mode",
    "name",
    "prefix",
    "projectId",
    "rateLimitPerMinute",
    "revokedAt",
    "scopes",
];

#[track_caller]
fn assert_key_info(k: &Value) {
    let mut want: Vec<&str> = KEY_INFO.to_vec();
    want.sort();
    assert_eq!(sorted_keys(k), want, "{k}");
}

/// `to_live_`/`to_dev_` and 32 base62 characters; returns the random part.
#[track_caller]
fn assert_secret<'a>(secret: &'a str, prefix: &str) -> &'a str {
    let body = secret
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{secret} starts with {prefix}"));
    assert_eq!(body.len(), 32, "{secret}");
    assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()), "{secret}");
    body
}

async fn keys_create_shows_the_secret_once(app: TestApp) {
    let token = app.admin_token().await;
    let me = app.get("/api/auth/me", Some(&token)).await;
    let uid = me.assert_ok(200)["user"]["id"].as_str().expect("user id").to_string();
    let project = app.create_project(&token, "Keys").await;
    let path = keys_path(&project);

    let a = app
        .post(
            &path,
            Some(&token),
            json!({"name": "ci live", "mode": "live", "scopes": ["openai", "gemini"],
                   "rateLimitPerMinute": {"openai": 30}, "ipAllowlist": ["10.0.0.0/8", "192.168.1.7"],
                   "expiresAt": "2099-01-01T00:00:00.000Z"}),
        )
        .await;
    let d = a.assert_ok(201).clone();
    assert_eq!(sorted_keys(&d), ["key", "secret"], "{d}");
    let live = d["secret"].as_str().expect("secret").to_string();
    let live_body = assert_secret(&live, "to_live_").to_string();
    let k = &d["key"];
    assert_key_info(k);
    assert_eq!(k["projectId"], project.as_str());
    assert_eq!(k["name"], "ci live");
    assert_eq!(k["mode"], "live");
    assert_eq!(k["prefix"], &live[..12]);
    assert_eq!(k["last4"], &live[live.len() - 4..]);
    assert_eq!(k["scopes"], json!(["openai", "gemini"]));
    assert_eq!(k["rateLimitPerMinute"], json!({"openai": 30}));
    assert_eq!(k["ipAllowlist"], json!(["10.0.0.0/8", "192.168.1.7/32"]));
    assert_eq!(k["expiresAt"], "2099-01-01T00:00:00.000Z");
    assert_eq!(k["createdBy"], uid.as_str());
    assert!(k["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{k}");
    assert!(k["lastUsedAt"].is_null() && k["revokedAt"].is_null(), "{k}");
    let live_id = k["id"].as_str().expect("id").to_string();

    // Defaults: every scope, no overrides, any address, no expiry.
    let a = app
        .post(&path, Some(&token), json!({"name": "laptop", "mode": "dev"}))
        .await;
    let d = a.assert_ok(201).clone();
    let dev = d["secret"].as_str().expect("secret").to_string();
    let dev_body = assert_secret(&dev, "to_dev_").to_string();
    assert_key_info(&d["key"]);
    assert_eq!(d["key"]["prefix"], &dev[..12]);
    assert_eq!(d["key"]["last4"], &dev[dev.len() - 4..]);
    assert_eq!(d["key"]["mode"], "dev");
    assert_eq!(d["key"]["scopes"], json!(["openai", "anthropic", "gemini"]));
    assert_eq!(d["key"]["rateLimitPerMinute"], json!({}));
    assert_eq!(d["key"]["ipAllowlist"], json!([]));
    assert!(d["key"]["expiresAt"].is_null());
    assert_ne!(live_body, dev_body);

    // The list never shows a secret.
    let l = app.get(&path, Some(&token)).await;
    let list = l.assert_ok(200).as_array().expect("array").clone();
    assert_eq!(list.len(), 2);
    for k in &list {
        assert_key_info(k);
    }
    assert!(list.iter().any(|k| k["id"] == live_id.as_str()));
    for secret in [&live_body, &dev_body] {
        assert!(!l.text.contains(secret.as_str()), "the list shows a secret: {}", l.text);
    }

    // No plaintext secret at rest, in any table.
    let keys = app.rows("SELECT * FROM api_keys").await;
    assert_eq!(keys.len(), 2);
    for row in &keys {
        let h = row["key_hash"].as_str().expect("key_hash");
        assert!(h.len() >= 64 && h.bytes().all(|b| b.is_ascii_hexdigit()), "{h}");
    }
    for table in ["api_keys", "audit_log", "projects", "tenants", "users"] {
        let dump = Value::Array(app.rows(&format!("SELECT * FROM {table}")).await).to_string();
        for secret in [&live_body, &dev_body] {
            assert!(!dump.contains(secret.as_str()), "{table} stores a secret in clear");
        }
    }
}

async fn keys_validation(app: TestApp) {
    let token = app.admin_token().await;
    let project = app.create_project(&token, "Keys").await;
    let path = keys_path(&project);
    let long = "x".repeat(101);
    let bad = [
        json!({"name": "", "mode": "live"}),
        json!({"name": long, "mode": "live"}),
        json!({"mode": "live"}),
        json!({"name": "k"}),
        json!({"name": "k", "mode": "prod"}),
        json!({"name": "k", "mode": "live", "scopes": ["openai", "mistral"]}),
        json!({"name": "k", "mode": "live", "scopes": []}),
        json!({"name": "k", "mode": "live", "rateLimitPerMinute": {"openai": 0}}),
        json!({"name": "k", "mode": "live", "rateLimitPerMinute": {"anthropic": -5}}),
        json!({"name": "k", "mode": "live", "rateLimitPerMinute": {"mistral": 5}}),
        json!({"name": "k", "mode": "live", "ipAllowlist": ["10.0.0.0/33"]}),
        json!({"name": "k", "mode": "live", "ipAllowlist": ["not-an-address"]}),
        json!({"name": "k", "mode": "live", "expiresAt": "2001-01-01T00:00:00.000Z"}),
        json!({"name": "k", "mode": "live", "expiresAt": "tomorrow"}),
        json!({"name": "k", "mode": "live", "colour": "blue"}),
    ];
    for b in &bad {
        let a = app.post(&path, Some(&token), b.clone()).await;
        a.assert_error(400, "invalid_request");
        assert!(!a.text.contains("to_live_"), "{}", a.text);
    }
    assert!(
        app.rows("SELECT id FROM api_keys").await.is_empty(),
        "refused keys are not created"
    );
    // The boundaries are allowed.
    let name = "n".repeat(100);
    let a = app
        .post(
            &path,
            Some(&token),
            json!({"name": name, "mode": "live", "rateLimitPerMinute": {"openai": 1, "anthropic": 1000000},
                   "ipAllowlist": ["::1", "127.0.0.0/8"]}),
        )
        .await;
    let d = a.assert_ok(201);
    assert_eq!(d["key"]["name"], name.as_str());
    assert_eq!(d["key"]["ipAllowlist"], json!(["::1/128", "127.0.0.0/8"]));
}

async fn keys_revoke_takes_effect_at_once(app: TestApp) {
    let s = setup(app).await;
    let path = keys_path(&s.project);
    // Used first, so the proxy has the key cached when it is revoked.
    for sh in ALL {
        let a = s.ask(sh, &s.live, sh.native_model(), "before", false).await;
        assert_eq!(a.status, 200, "{sh:?}: {}", a.text);
    }
    // Its last use is recorded.
    let used = s
        .app
        .wait_rows(
            &format!(
                "SELECT id FROM api_keys WHERE id = '{}' AND last_used_at IS NOT NULL",
                s.live_id
            ),
            1,
        )
        .await;
    assert_eq!(used.len(), 1, "lastUsedAt is set after a call");

    let a = s.app.delete(&format!("{path}/{}", s.live_id), Some(&s.token)).await;
    let k = a.assert_ok(200).clone();
    assert_key_info(&k);
    assert_eq!(k["id"], s.live_id.as_str());
    let revoked_at = k["revokedAt"].as_str().expect("revokedAt").to_string();
    assert!(k["lastUsedAt"].is_string(), "{k}");
    for sh in ALL {
        let a = s.ask(sh, &s.live, sh.native_model(), "after", false).await;
        assert_native(&a, sh, Kind::Auth);
    }
    assert_eq!(
        s.up.openai.requests().len(),
        1,
        "a revoked key never reaches the upstream"
    );
    // Revoking again answers the key unchanged; the list shows it revoked.
    let a = s.app.delete(&format!("{path}/{}", s.live_id), Some(&s.token)).await;
    assert_eq!(a.assert_ok(200)["revokedAt"], revoked_at.as_str());
    let l = s.app.get(&path, Some(&s.token)).await;
    let list = l.assert_ok(200).as_array().expect("array").clone();
    let k = list.iter().find(|k| k["id"] == s.live_id.as_str()).expect("listed");
    assert_eq!(k["revokedAt"], revoked_at.as_str());
    // The other keys still work.
    let a = s.ask(Sh::OpenAi, &s.dev, "gpt-4o-mini", "still here", false).await;
    assert_eq!(a.status, 200, "{}", a.text);
    // Unknown key ids, and keys of another project, are 404.
    let a = s
        .app
        .delete(&format!("{path}/0190f0a0-0000-7000-8000-000000000000"), Some(&s.token))
        .await;
    a.assert_error(404, "not_found");
    let other = s.app.create_project(&s.token, "Other").await;
    let (other_key, other_id) = s
        .app
        .create_key(&s.token, &other, json!({"name": "o", "mode": "dev"}))
        .await;
    let a = s.app.delete(&format!("{path}/{other_id}"), Some(&s.token)).await;
    a.assert_error(404, "not_found");
    let a = s.ask(Sh::OpenAi, &other_key, "gpt-4o-mini", "other", false).await;
    assert_eq!(a.status, 200, "a refused revoke leaves the key working: {}", a.text);
}

/// Invites `email` to the project with `role` and accepts: returns (access token, user id).
async fn join(app: &TestApp, token: &str, project: &str, email: &str, role: &str) -> (String, String) {
    let a = app
        .post(
            &format!("/api/projects/{project}/members"),
            Some(token),
            json!({"email": email, "role": role}),
        )
        .await;
    let inv = a.assert_ok(201).clone();
    let url = inv["inviteUrl"].as_str().expect("invite url");
    let (_, rest) = url.split_once("token=").expect("token in the invite url");
    let invite = rest.split('&').next().unwrap_or_default();
    let a = app
        .post(
            "/api/invites/accept",
            None,
            json!({"token": invite, "name": "Joiner", "password": "joiner-password-1"}),
        )
        .await;
    let d = a.assert_ok(200);
    (
        d["tokens"]["accessToken"].as_str().expect("token").to_string(),
        d["user"]["id"].as_str().expect("id").to_string(),
    )
}

async fn keys_role_rules(app: TestApp) {
    let owner = app.admin_token().await;
    let project = app.create_project(&owner, "Roles").await;
    let path = keys_path(&project);
    let (_, owners_key) = app
        .create_key(&owner, &project, json!({"name": "owner's", "mode": "live"}))
        .await;
    let (dev, dev_uid) = join(&app, &owner, &project, "dev@example.com", "developer").await;
    let (viewer, _) = join(&app, &owner, &project, "viewer@example.com", "viewer").await;
    let (admin, _) = join(&app, &owner, &project, "padmin@example.com", "admin").await;

    // A developer creates and revokes their own keys, not someone else's.
    let a = app
        .post(&path, Some(&dev), json!({"name": "mine", "mode": "dev"}))
        .await;
    let mine = a.assert_ok(201)["key"].clone();
    assert_eq!(mine["createdBy"], dev_uid.as_str());
    let a = app.delete(&format!("{path}/{owners_key}"), Some(&dev)).await;
    a.assert_error(403, "forbidden");
    let a = app
        .delete(&format!("{path}/{}", mine["id"].as_str().unwrap()), Some(&dev))
        .await;
    assert!(a.assert_ok(200)["revokedAt"].is_string());
    let a = app.get(&path, Some(&dev)).await;
    a.assert_ok(200);

    // A viewer reads but neither creates nor revokes.
    let a = app
        .post(&path, Some(&viewer), json!({"name": "nope", "mode": "dev"}))
        .await;
    a.assert_error(403, "forbidden");
    let a = app.delete(&format!("{path}/{owners_key}"), Some(&viewer)).await;
    a.assert_error(403, "forbidden");
    let a = app.get(&path, Some(&viewer)).await;
    assert_eq!(a.assert_ok(200).as_array().map(Vec::len), Some(2));

    // A project admin and the owner revoke anyone's key.
    let a = app
        .post(&path, Some(&dev), json!({"name": "second", "mode": "dev"}))
        .await;
    let second = a.assert_ok(201)["key"]["id"].as_str().unwrap().to_string();
    let a = app.delete(&format!("{path}/{second}"), Some(&admin)).await;
    assert!(a.assert_ok(200)["revokedAt"].is_string());
    let a = app
        .post(&path, Some(&dev), json!({"name": "third", "mode": "dev"}))
        .await;
    let third = a.assert_ok(201)["key"]["id"].as_str().unwrap().to_string();
    let a = app.delete(&format!("{path}/{third}"), Some(&owner)).await;
    assert!(a.assert_ok(200)["revokedAt"].is_string());

    // Another tenant sees nothing.
    let (stranger, _, _) = app.register("stranger@example.com").await;
    app.get(&path, Some(&stranger)).await.assert_error(404, "not_found");
    app.post(&path, Some(&stranger), json!({"name": "x", "mode": "dev"}))
        .await
        .assert_error(404, "not_found");
    app.delete(&format!("{path}/{owners_key}"), Some(&stranger))
        .await
        .assert_error(404, "not_found");
    let list = app.get(&path, Some(&owner)).await;
    let list = list.assert_ok(200).as_array().expect("array").clone();
    let k = list
        .iter()
        .find(|k| k["id"] == owners_key.as_str())
        .expect("owner's key");
    assert!(k["revokedAt"].is_null(), "refused revokes change nothing: {k}");
    assert_eq!(list.len(), 4);
}

// ---------------------------------------------------------------------------------------------
// Authentication on the proxy

/// A way of presenting a key: what it is, the path, the headers and the body.
type Transport<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str);

async fn proxy_accepts_each_key_transport(app: TestApp) {
    let s = setup(app).await;
    let key = s.dev.as_str();
    let oa = Sh::OpenAi.body("gpt-4o-mini", "hi", false).to_string();
    let an = Sh::Anthropic.body("claude-sonnet-4", "hi", false).to_string();
    let ge = Sh::Gemini.body("gemini-1.5-flash", "hi", false).to_string();
    let bearer = format!("Bearer {key}");
    let gen = "/v1/gemini-proxy/v1beta/models/gemini-1.5-flash:generateContent";
    let b = bearer.as_str();
    let ok: Vec<Transport> = vec![
        ("openai bearer", OPENAI.into(), vec![("authorization", b)], oa.as_str()),
        ("openai x-api-key", OPENAI.into(), vec![("x-api-key", key)], oa.as_str()),
        (
            "anthropic bearer",
            ANTHROPIC.into(),
            vec![("authorization", b)],
            an.as_str(),
        ),
        (
            "anthropic x-api-key",
            ANTHROPIC.into(),
            vec![("x-api-key", key)],
            an.as_str(),
        ),
        ("gemini bearer", gen.into(), vec![("authorization", b)], ge.as_str()),
        ("gemini x-api-key", gen.into(), vec![("x-api-key", key)], ge.as_str()),
        (
            "gemini x-goog-api-key",
            gen.into(),
            vec![("x-goog-api-key", key)],
            ge.as_str(),
        ),
        ("gemini ?key=", format!("{gen}?key={key}"), vec![], ge.as_str()),
        (
            "gemini stream ?alt=sse&key=",
            format!("/v1/gemini-proxy/v1beta/models/gemini-1.5-flash:streamGenerateContent?alt=sse&key={key}"),
            vec![],
            ge.as_str(),
        ),
    ];
    for (what, path, headers, body) in &ok {
        let a = send_raw(&s.app, path, headers, body.to_string()).await;
        assert_eq!(a.status, 200, "{what}: {}", a.text);
        let text = if path.contains("streamGenerateContent") {
            Sh::Gemini.stream_text(&a.text)
        } else {
            a.text.clone()
        };
        assert!(text.contains("Sandbox reply from"), "{what}: {}", a.text);
    }
    // The Gemini-only transports are not keys on the other shapes.
    for (sh, path, body) in [(Sh::OpenAi, OPENAI, &oa), (Sh::Anthropic, ANTHROPIC, &an)] {
        let a = send_raw(&s.app, path, &[("x-goog-api-key", key)], body.to_string()).await;
        assert_native(&a, sh, Kind::Auth);
        let a = send_raw(&s.app, &format!("{path}?key={key}"), &[], body.to_string()).await;
        assert_native(&a, sh, Kind::Auth);
    }
    s.calls(ok.len()).await;
}

async fn proxy_refuses_bad_keys(app: TestApp) {
    let s = setup(app).await;
    // A revoked key (used once, so it is cached), and an expired one (never used before it
    // expired, so no cache entry predates the change).
    let (revoked, revoked_id) = s
        .app
        .create_key(&s.token, &s.project, json!({"name": "gone", "mode": "live"}))
        .await;
    let a = s.ask(Sh::Anthropic, &revoked, "claude-sonnet-4", "hi", false).await;
    assert_eq!(a.status, 200, "{}", a.text);
    s.app
        .delete(&format!("{}/{revoked_id}", keys_path(&s.project)), Some(&s.token))
        .await
        .assert_ok(200);
    let (expired, expired_id) = s
        .app
        .create_key(&s.token, &s.project, json!({"name": "old", "mode": "live"}))
        .await;
    s.app
        .exec(&format!("UPDATE api_keys SET expires_at = 1 WHERE id = '{expired_id}'"))
        .await;
    let unknown = format!("to_live_{}", "A".repeat(32));
    let unknown_dev = format!("to_dev_{}", "b".repeat(32));
    let truncated = s.live[..s.live.len() - 1].to_string();
    let before = s.up.anthropic.requests().len();
    for sh in ALL {
        let path = sh.path(sh.native_model(), false);
        let body = sh.body(sh.native_model(), "hi", false).to_string();
        let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
            ("missing", vec![]),
            ("unknown", vec![("authorization", format!("Bearer {unknown}"))]),
            ("unknown dev", vec![("x-api-key", unknown_dev.clone())]),
            ("garbage", vec![("authorization", "Bearer sk-garbage".into())]),
            ("truncated", vec![("authorization", format!("Bearer {truncated}"))]),
            ("empty bearer", vec![("authorization", "Bearer ".into())]),
            ("basic scheme", vec![("authorization", format!("Basic {}", s.live))]),
            ("revoked", vec![("authorization", format!("Bearer {revoked}"))]),
            ("expired", vec![("x-api-key", expired.clone())]),
        ];
        for (what, headers) in cases {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let a = send_raw(&s.app, &path, &h, body.clone()).await;
            assert_eq!(a.status, 401, "{sh:?} {what}: {}", a.text);
            assert_native(&a, sh, Kind::Auth);
        }
    }
    let a = send_raw(
        &s.app,
        &format!("{}?key={expired}", Sh::Gemini.path("gemini-1.5-flash", false)),
        &[],
        Sh::Gemini.body("", "hi", false).to_string(),
    )
    .await;
    assert_native(&a, Sh::Gemini, Kind::Auth);
    assert!(s.up.openai.requests().is_empty() && s.up.gemini.requests().is_empty());
    assert_eq!(s.up.anthropic.requests().len(), before);
}

async fn proxy_scope_and_ip_allowlist(app: TestApp) {
    let s = setup(app).await;
    let (openai_only, _) = s
        .app
        .create_key(
            &s.token,
            &s.project,
            json!({"name": "o", "mode": "dev", "scopes": ["openai"]}),
        )
        .await;
    let (elsewhere, _) = s
        .app
        .create_key(
            &s.token,
            &s.project,
            json!({"name": "e", "mode": "dev", "ipAllowlist": ["10.0.0.0/8", "::2"]}),
        )
        .await;
    let (loopback, _) = s
        .app
        .create_key(
            &s.token,
            &s.project,
            json!({"name": "l", "mode": "live", "ipAllowlist": ["127.0.0.0/8"]}),
        )
        .await;
    for sh in ALL {
        let a = s.ask(sh, &openai_only, sh.native_model(), "scoped", false).await;
        if sh == Sh::OpenAi {
            assert_eq!(a.status, 200, "{}", a.text);
        } else {
            assert_native(&a, sh, Kind::Perm);
        }
        let a = s.ask(sh, &elsewhere, sh.native_model(), "from here", false).await;
        assert_native(&a, sh, Kind::Perm);
        let a = s.ask(sh, &loopback, sh.native_model(), "loopback", false).await;
        assert_eq!(a.status, 200, "{sh:?}: {}", a.text);
        assert_eq!(sh.text(&a.body), "Echo: loopback");
    }
    let a = s
        .app
        .client
        .get(s.app.url(MODELS))
        .bearer_auth(&elsewhere)
        .send()
        .await
        .unwrap();
    assert_native(&TestApp::answer(a).await, Sh::OpenAi, Kind::Perm);
    // Refused calls never reached an upstream.
    for sh in ALL {
        assert_eq!(sh.mock(&s.up).requests().len(), 1, "{sh:?}");
    }
    s.calls(4).await;
}

// ---------------------------------------------------------------------------------------------
// Bad input

async fn proxy_rejects_bad_input(app: TestApp) {
    let s = setup(app).await;
    let key = [("authorization", format!("Bearer {}", s.live))];
    let h: Vec<(&str, &str)> = key.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let cases: Vec<(Sh, String, String, Kind)> = vec![
        (
            Sh::OpenAi,
            OPENAI.into(),
            "{\"model\": \"gpt-4o-mini\",".into(),
            Kind::Invalid,
        ),
        (Sh::OpenAi, OPENAI.into(), "[1, 2]".into(), Kind::Invalid),
        (
            Sh::OpenAi,
            OPENAI.into(),
            json!({"messages": msgs}).to_string(),
            Kind::Invalid,
        ),
        (
            Sh::OpenAi,
            OPENAI.into(),
            json!({"model": 5, "messages": msgs}).to_string(),
            Kind::Invalid,
        ),
        (
            Sh::OpenAi,
            OPENAI.into(),
            json!({"model": "gpt-4o-mini"}).to_string(),
            Kind::Invalid,
        ),
        (
            Sh::OpenAi,
            OPENAI.into(),
            json!({"model": "gpt-4o-mini", "max_tokens": 1_000_000_000u64, "messages": msgs}).to_string(),
            Kind::Invalid,
        ),
        (
            Sh::OpenAi,
            OPENAI.into(),
            json!({"model": "no-such-model", "messages": msgs}).to_string(),
            Kind::NotFound,
        ),
        (Sh::Anthropic, ANTHROPIC.into(), "not json".into(), Kind::Invalid),
        (Sh::Anthropic, ANTHROPIC.into(), "[]".into(), Kind::Invalid),
        (
            Sh::Anthropic,
            ANTHROPIC.into(),
            json!({"max_tokens": 10, "messages": msgs}).to_string(),
            Kind::Invalid,
        ),
        (
            Sh::Anthropic,
            ANTHROPIC.into(),
            json!({"model": "claude-sonnet-4", "max_tokens": 10}).to_string(),
            Kind::Invalid,
        ),
        (
            Sh::Anthropic,
            ANTHROPIC.into(),
            json!({"model": "claude-sonnet-4", "max_tokens": 1_000_000_000u64, "messages": msgs}).to_string(),
            Kind::Invalid,
        ),
        (
            Sh::Anthropic,
            ANTHROPIC.into(),
            json!({"model": "no-such-model", "max_tokens": 10, "messages": msgs}).to_string(),
            Kind::NotFound,
        ),
        (
            Sh::Gemini,
            Sh::Gemini.path("gemini-1.5-flash", false),
            "{\"contents\": [".into(),
            Kind::Invalid,
        ),
        (
            Sh::Gemini,
            Sh::Gemini.path("gemini-1.5-flash", false),
            "[{}]".into(),
            Kind::Invalid,
        ),
        (
            Sh::Gemini,
            Sh::Gemini.path("gemini-1.5-flash", false),
            "{}".into(),
            Kind::Invalid,
        ),
        (
            Sh::Gemini,
            Sh::Gemini.path("gemini-1.5-flash", false),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                   "generationConfig": {"maxOutputTokens": 1_000_000_000u64}})
            .to_string(),
            Kind::Invalid,
        ),
        (
            Sh::Gemini,
            Sh::Gemini.path("no-such-model", false),
            Sh::Gemini.body("", "hi", false).to_string(),
            Kind::NotFound,
        ),
        (
            Sh::Gemini,
            Sh::Gemini.path("no-such-model", true),
            Sh::Gemini.body("", "hi", false).to_string(),
            Kind::NotFound,
        ),
    ];
    for (sh, path, body, kind) in &cases {
        let a = send_raw(&s.app, path, &h, body.clone()).await;
        assert_native(&a, *sh, *kind);
    }
    // Unknown Gemini operations.
    for op in [
        "gemini-1.5-flash:countTokens",
        "gemini-1.5-flash",
        "gemini-1.5-flash:generateContentX",
    ] {
        let a = send_raw(
            &s.app,
            &format!("/v1/gemini-proxy/v1beta/models/{op}"),
            &h,
            Sh::Gemini.body("", "hi", false).to_string(),
        )
        .await;
        assert_native(&a, Sh::Gemini, Kind::NotFound);
    }
    for sh in ALL {
        assert!(sh.mock(&s.up).requests().is_empty(), "{sh:?}: nothing went upstream");
    }
    let rows = s.calls(cases.len()).await;
    let mut want = outcome(15, 400, "invalid_request");
    want.extend(outcome(4, 404, "model_not_found"));
    assert_eq!(outcomes(&rows), want);
}

async fn proxy_body_limit(app: TestApp) {
    let s = setup_with(app, |c| c.proxy.max_body_bytes = 1024).await;
    let big = "x".repeat(2000);
    for sh in ALL {
        let a = s.ask(sh, &s.live, sh.native_model(), &big, false).await;
        assert_native(&a, sh, Kind::TooLarge);
        let a = s.ask(sh, &s.live, sh.native_model(), "small", false).await;
        assert_eq!(a.status, 200, "{sh:?}: {}", a.text);
        assert_eq!(
            sh.mock(&s.up).requests().len(),
            1,
            "{sh:?}: only the small body went upstream"
        );
    }
    let rows = s.calls(6).await;
    let mut want = outcome(3, 200, "-");
    want.extend(outcome(3, 413, "payload_too_large"));
    assert_eq!(outcomes(&rows), want);
}

// ---------------------------------------------------------------------------------------------
// Rate limits

async fn proxy_rate_limits(app: TestApp) {
    let s = setup(app).await;
    let (k, _) = s
        .app
        .create_key(
            &s.token,
            &s.project,
            json!({"name": "slow", "mode": "live", "rateLimitPerMinute": {"openai": 2}}),
        )
        .await;
    for remaining in ["1", "0"] {
        let a = s.ask(Sh::OpenAi, &k, "gpt-4o-mini", "hi", false).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.header("x-ratelimit-limit"), Some("2"));
        assert_eq!(a.header("x-ratelimit-remaining"), Some(remaining));
    }
    let a = s.ask(Sh::OpenAi, &k, "gpt-4o-mini", "hi", false).await;
    assert_native(&a, Sh::OpenAi, Kind::Rate);
    let retry: u64 = a
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in whole seconds: {:?}", a.headers));
    assert!(retry >= 1, "{retry}");
    assert_eq!(a.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(a.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(s.up.openai.requests().len(), 2, "the refused call never went upstream");
    // The override is for the OpenAI shape only: the key's other shapes use the tenant default.
    for _ in 0..3 {
        let a = s.ask(Sh::Anthropic, &k, "claude-sonnet-4", "hi", false).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.header("x-ratelimit-limit"), Some("60"));
    }
    let a = s.ask(Sh::Gemini, &k, "gemini-1.5-flash", "hi", false).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-ratelimit-limit"), Some("60"));
    // Other keys of the tenant are not held back by this key's bucket.
    let a = s.ask(Sh::OpenAi, &s.live, "gpt-4o-mini", "hi", false).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-ratelimit-limit"), Some("120"));
    // The native 429 of the other shapes.
    let (k2, _) = s
        .app
        .create_key(
            &s.token,
            &s.project,
            json!({"name": "one", "mode": "dev", "rateLimitPerMinute": {"anthropic": 1, "gemini": 1}}),
        )
        .await;
    for sh in [Sh::Anthropic, Sh::Gemini] {
        let a = s.ask(sh, &k2, sh.native_model(), "hi", true).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.header("x-ratelimit-limit"), Some("1"));
        assert_eq!(a.header("x-ratelimit-remaining"), Some("0"));
        let a = s.ask(sh, &k2, sh.native_model(), "hi", true).await;
        assert_native(&a, sh, Kind::Rate);
        assert!(a
            .header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|r| r >= 1));
    }
    let rows = s.calls(12).await;
    let mut want = outcome(9, 200, "-");
    want.extend(outcome(3, 429, "rate_limited"));
    assert_eq!(outcomes(&rows), want);
}

// ---------------------------------------------------------------------------------------------
// Forwarding

#[track_caller]
fn assert_overhead(a: &Answer) {
    let v = a.header("x-tokenone-overhead-ms").expect("x-tokenone-overhead-ms");
    let (int, frac) = v.split_once('.').unwrap_or_else(|| panic!("decimal: {v}"));
    assert!(
        !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.len() == 3
            && frac.bytes().all(|b| b.is_ascii_digit()),
        "three decimals: {v}"
    );
}

async fn forwarding_openai_same_shape(app: TestApp) {
    let s = setup(app).await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}], "temperature": 0.25,
        "x_unknown": {"nested": [1, "two", null]}, "logit_bias": {"50256": -100}, "user": "u-1", "seed": 7});
    let bearer = format!("Bearer {}", s.live);
    let a = send_raw(
        &s.app,
        OPENAI,
        &[
            ("authorization", &bearer),
            ("x-request-id", "trace-abc.123"),
            ("x-custom-client", "do-not-forward"),
            ("cookie", "session=secret"),
            ("user-agent", "client-sdk/1.0"),
            ("openai-organization", "org-client"),
        ],
        body.to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["choices"][0]["message"]["content"], "Echo: ping");
    assert_eq!(a.body["model"], "gpt-4o-mini");
    assert_eq!(
        a.body["x_vendor_extra"]["kept"], true,
        "unknown response fields are kept"
    );
    assert_eq!(a.body["usage"]["prompt_tokens"], 11);
    // Response headers.
    assert_eq!(a.header("x-request-id"), Some("trace-abc.123"));
    assert_eq!(a.header("x-tokenone-provider"), Some("openai"));
    assert_eq!(a.header("x-tokenone-model"), Some("gpt-4o-mini"));
    assert_eq!(a.header("x-tokenone-tier"), Some("cheap"));
    assert_eq!(a.header("x-ratelimit-limit"), Some("120"));
    assert_eq!(a.header("x-ratelimit-remaining"), Some("119"));
    assert_overhead(&a);
    let call_id = a.header("x-tokenone-call-id").expect("call id").to_string();
    // What the upstream got: the client's body unchanged, the configured credential only.
    let reqs = s.up.openai.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(reqs[0].body, body, "forwarded unchanged");
    assert_eq!(reqs[0].headers["authorization"], format!("Bearer {UPSTREAM_KEY}"));
    assert_eq!(reqs[0].headers["content-type"], "application/json");
    for h in ["x-custom-client", "cookie", "openai-organization", "x-request-id"] {
        assert!(reqs[0].headers.get(h).is_none(), "{h} was forwarded");
    }
    assert_ne!(
        reqs[0].headers.get("user-agent").and_then(|v| v.to_str().ok()),
        Some("client-sdk/1.0")
    );
    assert_clean_upstream(&reqs, &[&s.live]);
    // A generated request id when the client sent none.
    let a = s.ask(Sh::OpenAi, &s.live, "gpt-4o-mini", "again", false).await;
    assert!(a.header("x-request-id").is_some_and(|v| !v.is_empty()));
    let second = a.header("x-tokenone-call-id").expect("call id").to_string();
    assert_ne!(second, call_id);
    // The call record.
    let rows = s.calls(2).await;
    let r = rows
        .iter()
        .find(|r| r["id"] == call_id.as_str())
        .expect("the call-id names the row");
    assert_eq!(r["status"], 200);
    assert!(r["error_code"].is_null(), "{r}");
    assert_eq!(r["input_tokens"], 11);
    assert_eq!(r["output_tokens"], mock_output_tokens("Echo: ping"));
    assert_eq!(r["cached_input_tokens"], 0);
    assert_eq!(r["usage_estimated"], 0);
    assert_eq!(r["stream"], 0);
    assert_eq!(r["shape"], "openai");
    assert_eq!(r["mode"], "live");
    assert_eq!(r["key_id"], s.live_id.as_str());
    assert_eq!(r["project_id"], s.project.as_str());
    assert_eq!(r["provider"], "openai");
    assert_eq!(r["requested_model"], "gpt-4o-mini");
    assert_eq!(r["delivered_model"], "gpt-4o-mini");
    assert!(rows.iter().any(|r| r["id"] == second.as_str()));
}

async fn forwarding_names_the_public_model(app: TestApp) {
    let s = setup(app).await;
    let public = "llama-3.1-405b-instruct";
    let upstream = "accounts/fireworks/models/llama-v3p1-405b-instruct";
    let body = json!({"model": public, "messages": [{"role": "user", "content": "big"}], "x_unknown": true});
    let a = send(&s.app, OPENAI, &s.live, body.clone()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["model"], public, "{}", a.text);
    assert_eq!(a.header("x-tokenone-provider"), Some("fireworks"));
    assert_eq!(a.header("x-tokenone-model"), Some(public));
    assert_eq!(a.header("x-tokenone-tier"), Some("heavy"));
    let reqs = s.up.openai.requests();
    let mut want = body.clone();
    want["model"] = json!(upstream);
    assert_eq!(reqs[0].body, want, "only the model is renamed");
    // Streaming: every chunk names the public model.
    let mut body = body;
    body["stream"] = json!(true);
    let a = send(&s.app, OPENAI, &s.live, body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let chunks = sse_json(&a.text);
    assert!(!chunks.is_empty(), "{}", a.text);
    for c in &chunks {
        assert_eq!(c["model"], public, "{c}");
    }
    assert!(!a.text.contains(upstream), "{}", a.text);
    assert_eq!(Sh::OpenAi.stream_text(&a.text), "Echo: big");
    // Gemini: the mock's modelVersion is replaced by the public model.
    let a = s.ask(Sh::Gemini, &s.live, "gemini-1.5-flash", "gem", false).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["modelVersion"], "gemini-1.5-flash", "{}", a.text);
    let a = s.ask(Sh::Gemini, &s.live, "gemini-1.5-flash", "gem stream", true).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(!a.text.contains("gemini-mock-001"), "{}", a.text);
    for c in sse_json(&a.text) {
        assert_eq!(c["modelVersion"], "gemini-1.5-flash", "{c}");
    }
    // Anthropic.
    let a = s.ask(Sh::Anthropic, &s.live, "claude-sonnet-4", "ant", true).await;
    let start = sse_json(&a.text)
        .into_iter()
        .find(|v| v["type"] == "message_start")
        .expect("message_start");
    assert_eq!(start["message"]["model"], "claude-sonnet-4");
    s.calls(5).await;
}

async fn forwarding_anthropic_headers(app: TestApp) {
    let s = setup(app).await;
    let body = json!({"model": "claude-sonnet-4", "max_tokens": 50, "metadata": {"user_id": "u-9"}, "x_unknown": [1],
        "system": "be brief", "messages": [{"role": "user", "content": "hi"}]});
    let a = send_raw(&s.app, ANTHROPIC, &[("x-api-key", &s.live)], body.to_string()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["type"], "message");
    assert_eq!(a.body["model"], "claude-sonnet-4");
    assert_eq!(a.body["content"][0]["text"], "Echo: hi");
    assert_eq!(a.body["usage"]["input_tokens"], 11);
    assert_eq!(a.header("x-tokenone-provider"), Some("anthropic"));
    assert_eq!(a.header("x-tokenone-tier"), Some("balanced"));
    assert_overhead(&a);
    let a = send_raw(
        &s.app,
        ANTHROPIC,
        &[
            ("authorization", &format!("Bearer {}", s.live)),
            ("anthropic-version", "2023-01-01"),
            ("anthropic-beta", "tools-2024-04-04"),
        ],
        body.to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let reqs = s.up.anthropic.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.path, "/v1/messages");
        assert_eq!(r.body, body, "forwarded unchanged");
        assert_eq!(r.headers["x-api-key"], UPSTREAM_KEY);
        assert!(r.headers.get("authorization").is_none(), "{:?}", r.headers);
    }
    assert_eq!(reqs[0].headers["anthropic-version"], "2023-06-01");
    assert!(reqs[0].headers.get("anthropic-beta").is_none());
    assert_eq!(reqs[1].headers["anthropic-version"], "2023-01-01");
    assert_eq!(reqs[1].headers["anthropic-beta"], "tools-2024-04-04");
    assert_clean_upstream(&reqs, &[&s.live]);
    let rows = s.calls(2).await;
    for r in &rows {
        assert_eq!(
            (r["status"].as_i64(), r["input_tokens"].as_i64()),
            (Some(200), Some(11))
        );
        assert_eq!(r["output_tokens"], mock_output_tokens("Echo: hi"));
        assert_eq!(r["shape"], "anthropic");
    }
}

async fn forwarding_gemini_paths_and_key(app: TestApp) {
    let s = setup(app).await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "one two"}]}],
        "generationConfig": {"temperature": 0.1, "maxOutputTokens": 64}, "x_unknown": {"a": 1}});
    let cases = [
        (
            "v1beta",
            false,
            format!(
                "/v1/gemini-proxy/v1beta/models/gemini-1.5-flash:generateContent?key={}",
                s.live
            ),
        ),
        (
            "v1beta",
            true,
            "/v1/gemini-proxy/v1beta/models/gemini-1.5-flash:streamGenerateContent?alt=sse".to_string(),
        ),
        (
            "v1",
            false,
            "/v1/gemini-proxy/v1/models/gemini-1.5-flash:generateContent".to_string(),
        ),
        (
            "v1",
            true,
            format!(
                "/v1/gemini-proxy/v1/models/gemini-1.5-flash:streamGenerateContent?alt=sse&key={}",
                s.live
            ),
        ),
    ];
    for (version, stream, path) in &cases {
        // The key in `?key=` where the path has one, else in `x-goog-api-key`.
        let header = [("x-goog-api-key", s.live.as_str())];
        let headers: &[(&str, &str)] = if path.contains("key=") { &[] } else { &header };
        let a = send_raw(&s.app, path, headers, body.to_string()).await;
        assert_eq!(a.status, 200, "{version} stream={stream}: {}", a.text);
        assert_eq!(a.header("x-tokenone-provider"), Some("gemini"));
        assert_eq!(a.header("x-tokenone-model"), Some("gemini-1.5-flash"));
        if *stream {
            assert!(a
                .header("content-type")
                .is_some_and(|c| c.starts_with("text/event-stream")));
            assert_eq!(Sh::Gemini.stream_text(&a.text), "Echo: one two", "{}", a.text);
            let chunks = sse_json(&a.text);
            let last = chunks.last().expect("chunks");
            assert_eq!(last["usageMetadata"]["promptTokenCount"], 11, "{}", a.text);
        } else {
            assert_eq!(Sh::Gemini.text(&a.body), "Echo: one two", "{}", a.text);
            assert_eq!(a.body["usageMetadata"]["promptTokenCount"], 11);
            assert_overhead(&a);
        }
    }
    let reqs = s.up.gemini.requests();
    assert_eq!(reqs.len(), 4);
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1beta/models/gemini-1.5-flash:generateContent",
            "/v1beta/models/gemini-1.5-flash:streamGenerateContent?alt=sse",
            "/v1beta/models/gemini-1.5-flash:generateContent",
            "/v1beta/models/gemini-1.5-flash:streamGenerateContent?alt=sse",
        ]
    );
    for r in &reqs {
        assert_eq!(r.body, body, "forwarded unchanged");
        assert_eq!(r.headers["x-goog-api-key"], UPSTREAM_KEY);
    }
    assert_clean_upstream(&reqs, &[&s.live]);
    let rows = s.calls(4).await;
    for r in &rows {
        assert_eq!(r["status"], 200);
        assert_eq!(r["usage_estimated"], 0, "{r}");
        assert_eq!(r["input_tokens"], 11);
        assert_eq!(r["output_tokens"], mock_output_tokens("Echo: one two"));
    }
    assert_eq!(rows.iter().filter(|r| r["stream"] == 1).count(), 2);
}

// ---------------------------------------------------------------------------------------------
// Streaming

async fn streaming_openai_usage_chunk(app: TestApp) {
    let s = setup(app).await;
    let text = "one two three";
    // Not asked: the proxy asks for usage upstream and strips the usage-only chunk.
    let plain = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": text}]});
    let a = send(&s.app, OPENAI, &s.live, plain.clone()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream")));
    assert!(a.header("x-tokenone-call-id").is_some() && a.header("x-ratelimit-limit").is_some());
    assert_eq!(a.header("x-tokenone-model"), Some("gpt-4o-mini"));
    let events = sse(&a.text);
    assert_eq!(events.last().map(|e| e.1.as_str()), Some("[DONE]"), "{}", a.text);
    let chunks = sse_json(&a.text);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "{}", a.text);
    assert!(chunks
        .iter()
        .all(|c| c["choices"].as_array().is_some_and(|ch| !ch.is_empty())));
    assert_eq!(Sh::OpenAi.stream_text(&a.text), format!("Echo: {text}"));
    let reqs = s.up.openai.requests();
    assert_eq!(reqs[0].body["stream_options"]["include_usage"], true);
    let mut want = plain.clone();
    want["stream_options"] = json!({"include_usage": true});
    assert_eq!(reqs[0].body, want);
    // Asked: the usage-only chunk reaches the client, and the body goes up unchanged.
    let mut asked = plain;
    asked["stream_options"] = json!({"include_usage": true});
    let a = send(&s.app, OPENAI, &s.live, asked.clone()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let chunks = sse_json(&a.text);
    let usage: Vec<&Value> = chunks
        .iter()
        .filter(|c| c.get("usage").is_some_and(Value::is_object))
        .collect();
    assert_eq!(usage.len(), 1, "{}", a.text);
    assert_eq!(usage[0]["usage"]["prompt_tokens"], 11);
    assert_eq!(usage[0]["model"], "gpt-4o-mini");
    assert_eq!(sse(&a.text).last().map(|e| e.1.clone()), Some("[DONE]".to_string()));
    assert_eq!(s.up.openai.requests()[1].body, asked);
    let rows = s.calls(2).await;
    for r in &rows {
        assert_eq!(r["stream"], 1);
        assert_eq!(r["status"], 200);
        assert!(r["error_code"].is_null(), "{r}");
        assert_eq!(r["usage_estimated"], 0);
        assert_eq!(r["input_tokens"], 11);
        assert_eq!(r["output_tokens"], mock_output_tokens(&format!("Echo: {text}")));
    }
}

async fn streaming_anthropic_events(app: TestApp) {
    let s = setup(app).await;
    let a = s
        .ask(Sh::Anthropic, &s.live, "claude-sonnet-4", "alpha beta", true)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream")));
    let events = sse(&a.text);
    let names: Vec<&str> = events.iter().map(|e| e.0.as_deref().unwrap_or("")).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{}", a.text);
    assert_eq!(names.last(), Some(&"message_stop"), "{}", a.text);
    for n in [
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
    ] {
        assert!(names.contains(&n), "{n}: {}", a.text);
    }
    for (name, data) in &events {
        let v: Value = serde_json::from_str(data).unwrap_or_else(|_| panic!("JSON data: {data}"));
        assert_eq!(
            v["type"],
            name.as_deref().unwrap_or(""),
            "the event name matches its type"
        );
    }
    assert_eq!(Sh::Anthropic.stream_text(&a.text), "Echo: alpha beta");
    let delta = sse_json(&a.text)
        .into_iter()
        .find(|v| v["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(delta["usage"]["output_tokens"], mock_output_tokens("Echo: alpha beta"));
    let rows = s.calls(1).await;
    assert_eq!(rows[0]["stream"], 1);
    assert_eq!(rows[0]["usage_estimated"], 0);
    assert_eq!(rows[0]["input_tokens"], 11);
    assert_eq!(rows[0]["output_tokens"], mock_output_tokens("Echo: alpha beta"));
    assert!(rows[0]["error_code"].is_null());
}

// ---------------------------------------------------------------------------------------------
// Cross-shape delivery

async fn cross_shape_anthropic_client_openai_upstream(app: TestApp) {
    let s = setup(app).await;
    let a = s.ask(Sh::Anthropic, &s.live, "gpt-4o", "hello", false).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["type"], "message", "{}", a.text);
    assert_eq!(a.body["role"], "assistant");
    assert_eq!(a.body["model"], "gpt-4o");
    assert_eq!(a.body["content"], json!([{"type": "text", "text": "Echo: hello"}]));
    assert_eq!(a.body["stop_reason"], "end_turn");
    assert_eq!(a.body["usage"]["input_tokens"], 11);
    assert_eq!(a.body["usage"]["output_tokens"], mock_output_tokens("Echo: hello"));
    assert_eq!(a.header("x-tokenone-provider"), Some("openai"));
    assert_eq!(a.header("x-tokenone-model"), Some("gpt-4o"));
    assert_overhead(&a);
    assert!(s.up.anthropic.requests().is_empty());
    let reqs = s.up.openai.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body["model"], "gpt-4o");
    assert_eq!(reqs[0].headers["authorization"], format!("Bearer {UPSTREAM_KEY}"));
    // Streaming.
    let a = s.ask(Sh::Anthropic, &s.live, "gpt-4o", "stream me", true).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let names: Vec<String> = sse(&a.text).into_iter().filter_map(|e| e.0).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"), "{}", a.text);
    assert_eq!(names.last().map(String::as_str), Some("message_stop"), "{}", a.text);
    assert_eq!(Sh::Anthropic.stream_text(&a.text), "Echo: stream me");
    let events = sse_json(&a.text);
    let start = events.iter().find(|v| v["type"] == "message_start").expect("start");
    assert_eq!(start["message"]["model"], "gpt-4o");
    let delta = events.iter().find(|v| v["type"] == "message_delta").expect("delta");
    assert_eq!(delta["usage"]["output_tokens"], mock_output_tokens("Echo: stream me"));
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    let up = &s.up.openai.requests()[1];
    assert_eq!(up.body["stream"], true);
    assert_eq!(
        up.body["stream_options"]["include_usage"], true,
        "the proxy needs the usage"
    );
    assert_clean_upstream(&s.up.openai.requests(), &[&s.live]);
    let rows = s.calls(2).await;
    for r in &rows {
        assert_eq!(r["status"], 200);
        assert_eq!(r["shape"], "anthropic");
        assert_eq!(r["provider"], "openai");
        assert_eq!(r["usage_estimated"], 0, "{r}");
        assert_eq!(r["input_tokens"], 11);
    }
}

async fn cross_shape_gemini_client_anthropic_upstream(app: TestApp) {
    let s = setup(app).await;
    let a = s.ask(Sh::Gemini, &s.live, "claude-sonnet-4", "hello", false).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(Sh::Gemini.text(&a.body), "Echo: hello", "{}", a.text);
    assert_eq!(a.body["candidates"][0]["finishReason"], "STOP", "{}", a.text);
    assert_eq!(a.body["usageMetadata"]["promptTokenCount"], 11, "{}", a.text);
    assert_eq!(
        a.body["usageMetadata"]["candidatesTokenCount"],
        mock_output_tokens("Echo: hello")
    );
    if let Some(m) = a.body.get("modelVersion") {
        assert_eq!(m, "claude-sonnet-4");
    }
    assert_eq!(a.header("x-tokenone-provider"), Some("anthropic"));
    let reqs = s.up.anthropic.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body["model"], "claude-sonnet-4");
    assert!(
        reqs[0].body["max_tokens"].as_u64().is_some_and(|m| m > 0),
        "Anthropic needs max_tokens"
    );
    assert_eq!(reqs[0].headers["anthropic-version"], "2023-06-01");
    assert!(s.up.gemini.requests().is_empty());
    // Streaming, on both paths.
    for path in [
        "/v1/gemini-proxy/v1beta/models/claude-sonnet-4:streamGenerateContent?alt=sse",
        "/v1/gemini-proxy/v1/models/claude-sonnet-4:streamGenerateContent?alt=sse",
    ] {
        let a = send(&s.app, path, &s.live, Sh::Gemini.body("", "stream me", true)).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(Sh::Gemini.stream_text(&a.text), "Echo: stream me", "{}", a.text);
        let chunks = sse_json(&a.text);
        let last = chunks.last().expect("chunks");
        assert_eq!(last["usageMetadata"]["promptTokenCount"], 11, "{}", a.text);
        assert_eq!(
            last["usageMetadata"]["candidatesTokenCount"],
            mock_output_tokens("Echo: stream me"),
            "{}",
            a.text
        );
        assert!(
            chunks.iter().any(|c| c["candidates"][0]["finishReason"] == "STOP"),
            "{}",
            a.text
        );
    }
    let up = s.up.anthropic.requests();
    assert_eq!(up.len(), 3);
    assert_eq!(up[1].body["stream"], true);
    assert_clean_upstream(&up, &[&s.live]);
    let rows = s.calls(3).await;
    for r in &rows {
        assert_eq!(r["status"], 200);
        assert_eq!(r["shape"], "gemini");
        assert_eq!(r["provider"], "anthropic");
        assert_eq!(r["usage_estimated"], 0, "{r}");
        assert_eq!(r["input_tokens"], 11);
    }
}

async fn cross_shape_openai_stream_usage_chunk(app: TestApp) {
    let s = setup(app).await;
    let plain = json!({"model": "claude-sonnet-4", "stream": true, "messages": [{"role": "user", "content": "xy"}]});
    let a = send(&s.app, OPENAI, &s.live, plain.clone()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(Sh::OpenAi.stream_text(&a.text), "Echo: xy", "{}", a.text);
    assert_eq!(
        sse(&a.text).last().map(|e| e.1.clone()),
        Some("[DONE]".to_string()),
        "{}",
        a.text
    );
    let chunks = sse_json(&a.text);
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none_or(Value::is_null)),
        "no usage chunk when the client did not ask: {}",
        a.text
    );
    for c in &chunks {
        assert_eq!(c["model"], "claude-sonnet-4", "{c}");
    }
    let mut asked = plain;
    asked["stream_options"] = json!({"include_usage": true});
    let a = send(&s.app, OPENAI, &s.live, asked).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let chunks = sse_json(&a.text);
    let usage: Vec<&Value> = chunks
        .iter()
        .filter(|c| c.get("usage").is_some_and(Value::is_object))
        .collect();
    assert!(!usage.is_empty(), "{}", a.text);
    let last = usage.last().unwrap();
    assert_eq!(last["usage"]["prompt_tokens"], 11, "{}", a.text);
    assert_eq!(last["usage"]["completion_tokens"], mock_output_tokens("Echo: xy"));
    let rows = s.calls(2).await;
    for r in &rows {
        assert_eq!(r["usage_estimated"], 0, "{r}");
        assert_eq!(r["input_tokens"], 11);
    }
}

// ---------------------------------------------------------------------------------------------
// Upstream failures

async fn upstream_5xx_is_502(app: TestApp) {
    let s = setup(app).await;
    for sh in ALL {
        for stream in [false, true] {
            sh.mock(&s.up)
                .script(Behaviour::Status(500, json!({"error": {"message": "internal boom"}})));
            let a = s.ask(sh, &s.live, sh.native_model(), "x", stream).await;
            let m = assert_native(&a, sh, Kind::Upstream);
            assert!(
                !m.contains("internal boom"),
                "an upstream fault is not relayed verbatim: {m}"
            );
        }
    }
    // Cross-shape: the client's shape.
    s.up.openai
        .script(Behaviour::Status(503, json!({"error": {"message": "overloaded"}})));
    let a = s.ask(Sh::Anthropic, &s.live, "gpt-4o", "x", false).await;
    assert_native(&a, Sh::Anthropic, Kind::Upstream);
    // The gateway's own credential refused, or the vendor's limit hit: not the client's fault
    // (its key is fine, and the gateway's rate limit did not refuse it).
    for status in [401, 429] {
        s.up.gemini.script(Behaviour::Status(
            status,
            json!({"error": {"code": status, "message": "API key not valid", "status": "UNAUTHENTICATED"}}),
        ));
        let a = s.ask(Sh::Gemini, &s.live, "gemini-1.5-flash", "x", false).await;
        let m = assert_native(&a, Sh::Gemini, Kind::Upstream);
        assert!(!m.contains("API key not valid"), "{m}");
    }
    let rows = s.calls(9).await;
    assert_eq!(outcomes(&rows), outcome(9, 502, "upstream_error"));
    for r in &rows {
        assert_usage_sane(r);
    }
}

/// An upstream that cannot be reached is a failed upstream, in the client's shape.
async fn upstream_unreachable_is_502(app: TestApp) {
    // Port 1 on the loopback: the connection is refused at once.
    let s = setup_with(app, |c| c.providers.openai.base_url = "http://127.0.0.1:1/v1".into()).await;
    for (sh, stream) in [(Sh::OpenAi, false), (Sh::OpenAi, true), (Sh::Anthropic, false)] {
        let model = if sh == Sh::OpenAi { "gpt-4o-mini" } else { "gpt-4o" };
        let a = s.ask(sh, &s.live, model, "x", stream).await;
        assert_native(&a, sh, Kind::Upstream);
    }
    assert!(s.up.openai.requests().is_empty());
    let rows = s.calls(3).await;
    assert_eq!(outcomes(&rows), outcome(3, 502, "upstream_error"));
}

/// A 200 answer without usage figures: the call is metered from the text, marked estimated.
async fn upstream_answer_without_usage_is_estimated(app: TestApp) {
    let s = setup(app).await;
    let answer = json!({"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "twelve chars"}, "finish_reason": "stop"}]});
    let prompt = "seventeen chars!!";
    s.up.openai.script(Behaviour::Status(200, answer.clone()));
    let a = s.ask(Sh::OpenAi, &s.live, "gpt-4o-mini", prompt, false).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(Sh::OpenAi.text(&a.body), "twelve chars");
    s.up.openai.script(Behaviour::Status(200, answer));
    let a = s.ask(Sh::Anthropic, &s.live, "gpt-4o", prompt, false).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(Sh::Anthropic.text(&a.body), "twelve chars");
    let rows = s.calls(2).await;
    for r in &rows {
        assert_eq!(r["status"], 200, "{r}");
        assert!(r["error_code"].is_null(), "{r}");
        assert_eq!(r["usage_estimated"], 1, "{r}");
        // ceil(17 / 4) and ceil(12 / 4).
        assert_eq!(r["input_tokens"], estimate_tokens(prompt), "{r}");
        assert_eq!(r["output_tokens"], estimate_tokens("twelve chars"), "{r}");
    }
}

async fn upstream_client_errors_are_relayed(app: TestApp) {
    let s = setup(app).await;
    let message = "temperature: must be between 0 and 2";
    for sh in ALL {
        let err = match sh {
            Sh::OpenAi => {
                json!({"error": {"message": message, "type": "invalid_request_error", "param": "temperature", "code": null}})
            }
            Sh::Anthropic => json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}}),
            Sh::Gemini => json!({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}),
        };
        sh.mock(&s.up).script(Behaviour::Status(400, err));
        let a = s.ask(sh, &s.live, sh.native_model(), "x", false).await;
        let m = assert_native(&a, sh, Kind::Invalid);
        assert_eq!(m, message);
    }
    // Cross-shape: an OpenAI upstream's 400 in the Gemini client's shape, and in Anthropic's.
    s.up.openai.script(Behaviour::Status(
        400,
        json!({"error": {"message": message, "type": "invalid_request_error"}}),
    ));
    let a = s.ask(Sh::Gemini, &s.live, "gpt-4o", "x", false).await;
    assert_eq!(assert_native(&a, Sh::Gemini, Kind::Invalid), message);
    s.up.anthropic.script(Behaviour::Status(
        400,
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}}),
    ));
    let a = s.ask(Sh::OpenAi, &s.live, "claude-sonnet-4", "x", true).await;
    assert_eq!(assert_native(&a, Sh::OpenAi, Kind::Invalid), message);
    // A 404 from the upstream keeps its status.
    s.up.openai.script(Behaviour::Status(
        404,
        json!({"error": {"message": "The model does not exist"}}),
    ));
    let a = s.ask(Sh::OpenAi, &s.live, "gpt-4o", "x", false).await;
    assert_eq!(
        assert_error_shape(&a, Sh::OpenAi, 404, "invalid_request_error"),
        "The model does not exist"
    );
    let rows = s.calls(6).await;
    let mut want = outcome(5, 400, "upstream_client_error");
    want.extend(outcome(1, 404, "upstream_client_error"));
    assert_eq!(outcomes(&rows), want);
}

async fn upstream_first_byte_timeout_is_504(app: TestApp) {
    let s = setup_with(app, |c| c.proxy.first_byte_timeout_ms = 300).await;
    for sh in ALL {
        for stream in [false, true] {
            sh.mock(&s.up).script(Behaviour::Stall);
            let a = s.ask(sh, &s.live, sh.native_model(), "x", stream).await;
            assert_native(&a, sh, Kind::Timeout);
        }
        assert_eq!(sh.mock(&s.up).requests().len(), 2);
    }
    // The mocks answer normally again.
    let a = s.ask(Sh::OpenAi, &s.live, "gpt-4o-mini", "fine", false).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let rows = s.calls(7).await;
    let mut want = outcome(1, 200, "-");
    want.extend(outcome(6, 504, "upstream_timeout"));
    assert_eq!(outcomes(&rows), want);
}

async fn upstream_redirect_and_garbage_are_502(app: TestApp) {
    let s = setup(app).await;
    for sh in ALL {
        sh.mock(&s.up).script(Behaviour::Redirect);
        let a = s.ask(sh, &s.live, sh.native_model(), "x", false).await;
        let m = assert_native(&a, sh, Kind::Upstream);
        assert!(!m.contains("127.0.0.1:1"), "{m}");
        assert_eq!(
            sh.mock(&s.up).requests().len(),
            1,
            "{sh:?}: one request, the redirect not followed"
        );
        sh.mock(&s.up).script(Behaviour::Garbage);
        let a = s.ask(sh, &s.live, sh.native_model(), "x", false).await;
        let m = assert_native(&a, sh, Kind::Upstream);
        assert!(!m.contains("oops"), "{m}");
        // Asked for a stream, answered with something that is not one.
        sh.mock(&s.up).script(Behaviour::Garbage);
        let a = s.ask(sh, &s.live, sh.native_model(), "x", true).await;
        let m = assert_native(&a, sh, Kind::Upstream);
        assert!(!m.contains("oops"), "{m}");
    }
    let rows = s.calls(9).await;
    let mut want = outcome(6, 502, "upstream_bad_response");
    // upstream_redirect: the proxy saw the 302 itself (following it would have failed to connect).
    want.extend(outcome(3, 502, "upstream_redirect"));
    assert_eq!(outcomes(&rows), want);
}

async fn upstream_cut_mid_stream(app: TestApp) {
    let s = setup(app).await;
    let cases = [
        (Sh::OpenAi, "gpt-4o-mini"),
        (Sh::Anthropic, "claude-sonnet-4"),
        (Sh::Gemini, "gemini-1.5-flash"),
        (Sh::Anthropic, "gpt-4o"),
        (Sh::OpenAi, "gemini-1.5-flash"),
    ];
    let mut ids = Vec::new();
    for (sh, model) in cases {
        let mock = match model {
            "gpt-4o-mini" | "gpt-4o" => &s.up.openai,
            "claude-sonnet-4" => &s.up.anthropic,
            _ => &s.up.gemini,
        };
        mock.script(Behaviour::CutAfter(3));
        let a = s.ask(sh, &s.live, model, "cut me", true).await;
        assert_eq!(a.status, 200, "{sh:?} {model}: {}", a.text);
        let delivered = sh.stream_text(&a.text);
        assert!(
            delivered.len() <= 6 && "a b c ".starts_with(&delivered),
            "{sh:?} {model}: {}",
            a.text
        );
        ids.push((
            a.header("x-tokenone-call-id").expect("call id").to_string(),
            estimate_tokens(&delivered),
        ));
    }
    // A non-streaming answer cut short is a failed upstream.
    s.up.gemini.script(Behaviour::CutAfter(3));
    let a = s.ask(Sh::Gemini, &s.live, "gemini-1.5-flash", "cut me", false).await;
    assert_native(&a, Sh::Gemini, Kind::Upstream);
    let rows = s.calls(cases.len() + 1).await;
    let r = rows.iter().find(|r| r["status"] == 502).expect("the 502 row");
    assert_eq!(r["error_code"], "upstream_cut", "{r}");
    for (id, output) in &ids {
        let r = rows.iter().find(|r| r["id"] == id.as_str()).expect("row");
        assert_eq!(r["error_code"], "upstream_cut", "{r}");
        assert_eq!(r["status"], 200, "the client got a 200 and a stream: {r}");
        assert_eq!(r["usage_estimated"], 1, "{r}");
        assert_eq!(r["stream"], 1, "{r}");
        // Estimated: the prompt "cut me" (6 characters) and the text the client got.
        assert_eq!(r["input_tokens"], 2, "{r}");
        assert_eq!(r["output_tokens"], *output, "{r}");
        assert_eq!(r["cached_input_tokens"], 0, "{r}");
    }
}

/// ceil(characters / 4), at least 1: the proxy's usage estimate.
fn estimate_tokens(text: &str) -> i64 {
    (text.chars().count() as i64 + 3).div_euclid(4).max(1)
}

async fn upstream_idle_mid_stream(app: TestApp) {
    let s = setup_with(app, |c| c.proxy.idle_timeout_ms = 300).await;
    let mut ids = Vec::new();
    for sh in ALL {
        sh.mock(&s.up).script(Behaviour::StallAfter(3));
        let a = s.ask(sh, &s.live, sh.native_model(), "stall", true).await;
        assert_eq!(a.status, 200, "{sh:?}: {}", a.text);
        assert!(!a.text.is_empty(), "{sh:?}: the first events were delivered");
        let delivered = sh.stream_text(&a.text);
        ids.push((
            a.header("x-tokenone-call-id").expect("call id").to_string(),
            estimate_tokens(&delivered),
        ));
    }
    // A healthy stream is not cut by the short idle timeout.
    let a = s.ask(Sh::OpenAi, &s.live, "gpt-4o-mini", "a b c d e f", true).await;
    assert_eq!(Sh::OpenAi.stream_text(&a.text), "Echo: a b c d e f");
    // A non-streaming answer whose body stops arriving is a timeout.
    s.up.anthropic.script(Behaviour::StallAfter(3));
    let a = s.ask(Sh::Anthropic, &s.live, "claude-sonnet-4", "stall", false).await;
    assert_native(&a, Sh::Anthropic, Kind::Timeout);
    let rows = s.calls(5).await;
    let r = rows.iter().find(|r| r["status"] == 504).expect("the 504 row");
    assert_eq!(r["error_code"], "upstream_timeout", "{r}");
    for (id, output) in &ids {
        let r = rows.iter().find(|r| r["id"] == id.as_str()).expect("row");
        assert_eq!(r["error_code"], "upstream_idle_timeout", "{r}");
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["usage_estimated"], 1, "{r}");
        // Estimated: the prompt "stall" (5 characters) and the text the client got.
        assert_eq!(r["input_tokens"], 2, "{r}");
        assert_eq!(r["output_tokens"], *output, "{r}");
    }
}

async fn upstream_negative_usage(app: TestApp) {
    let s = setup(app).await;
    for sh in ALL {
        for stream in [false, true] {
            sh.mock(&s.up).script(Behaviour::NegativeUsage);
            let a = s.ask(sh, &s.live, sh.native_model(), "x", stream).await;
            assert_eq!(a.status, 200, "{sh:?}: {}", a.text);
            let text = if stream {
                sh.stream_text(&a.text)
            } else {
                sh.text(&a.body)
            };
            assert_eq!(text, "negative");
        }
    }
    let a = s.ask(Sh::OpenAi, &s.live, "gpt-4o-mini", "still alive", false).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let rows = s.calls(7).await;
    for r in &rows {
        assert_eq!(r["status"], 200, "{r}");
        assert_usage_sane(r);
    }
}

async fn upstream_byte_by_byte_utf8(app: TestApp) {
    let s = setup(app).await;
    let text = "héllo wörld 日本";
    for sh in ALL {
        sh.mock(&s.up).script(Behaviour::ByteByByte(text.into()));
        let a = s.ask(sh, &s.live, sh.native_model(), "x", true).await;
        assert_eq!(a.status, 200, "{sh:?}: {}", a.text);
        assert_eq!(sh.stream_text(&a.text), text, "{sh:?}: {}", a.text);
        assert!(!a.text.contains('\u{FFFD}'), "{sh:?}: {}", a.text);
    }
    // Translated too.
    s.up.openai.script(Behaviour::ByteByByte(text.into()));
    let a = s.ask(Sh::Anthropic, &s.live, "gpt-4o", "x", true).await;
    assert_eq!(Sh::Anthropic.stream_text(&a.text), text, "{}", a.text);
    let rows = s.calls(4).await;
    for r in &rows {
        assert!(r["error_code"].is_null(), "{r}");
        assert_eq!(r["usage_estimated"], 0, "{r}");
        assert_eq!(r["output_tokens"], mock_output_tokens(text), "{r}");
    }
}

async fn unconfigured_provider_is_503(app: TestApp) {
    let s = setup_with(app, |c| c.providers.gemini.api_key = Secret::default()).await;
    for (sh, stream) in [
        (Sh::Gemini, false),
        (Sh::Gemini, true),
        (Sh::OpenAi, false),
        (Sh::Anthropic, true),
    ] {
        let a = s.ask(sh, &s.live, "gemini-1.5-flash", "x", stream).await;
        assert_native(&a, sh, Kind::Unconfigured);
    }
    // The sandbox needs no vendor account.
    let a = s.ask(Sh::Gemini, &s.dev, "gemini-1.5-flash", "x", false).await;
    assert_eq!(a.status, 200, "{}", a.text);
    for (shape, configured) in [("openai", true), ("anthropic", true), ("gemini", false)] {
        let a = s.app.get(&format!("/v1/{shape}-proxy/health"), None).await;
        assert_eq!(a.body["upstreamConfigured"], configured, "{shape}: {}", a.text);
    }
    assert!(s.up.gemini.requests().is_empty());
    let rows = s.calls(5).await;
    let mut want = outcome(1, 200, "-");
    want.extend(outcome(4, 503, "upstream_unconfigured"));
    assert_eq!(outcomes(&rows), want);
}

async fn client_disconnect_mid_stream(app: TestApp) {
    let s = setup(app).await;
    for sh in ALL {
        // The upstream sends three events and then keeps the connection open.
        sh.mock(&s.up).script(Behaviour::StallAfter(3));
        let resp = s
            .app
            .client
            .post(s.app.url(&sh.path(sh.native_model(), true)))
            .bearer_auth(&s.live)
            .json(&sh.body(sh.native_model(), "bye", true))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        let id = resp.headers()["x-tokenone-call-id"].to_str().unwrap().to_string();
        let mut body = resp.bytes_stream();
        let first = body.next().await.expect("a first chunk").expect("chunk");
        assert!(!first.is_empty());
        drop(body);
        let rows = s
            .app
            .wait_rows(&format!("SELECT * FROM calls WHERE id = '{id}'"), 1)
            .await;
        assert_eq!(rows.len(), 1, "{sh:?}: recorded once the client left");
        assert_eq!(rows[0]["error_code"], "client_disconnected", "{sh:?}: {}", rows[0]);
        assert_eq!(rows[0]["usage_estimated"], 1);
        assert_eq!(rows[0]["stream"], 1);
        assert_usage_sane(&rows[0]);
    }
    let rows = s.calls(3).await;
    assert_eq!(outcomes(&rows), outcome(3, 200, "client_disconnected"));
}

/// A client that gives up while the upstream has not answered yet: the call is still recorded,
/// once.
async fn client_gives_up_before_the_answer(app: TestApp) {
    let s = setup(app).await;
    s.up.openai.script(Behaviour::Stall);
    let gave_up = s
        .app
        .client
        .post(s.app.url(OPENAI))
        .bearer_auth(&s.live)
        .json(&Sh::OpenAi.body("gpt-4o-mini", "wait", false))
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    let rows = s
        .app
        .wait_rows(&format!("SELECT * FROM calls WHERE key_id = '{}'", s.live_id), 1)
        .await;
    assert_eq!(rows.len(), 1, "recorded although the client left");
    assert_eq!(rows[0]["error_code"], "client_disconnected", "{}", rows[0]);
    assert_eq!(rows[0]["status"], 499, "{}", rows[0]);
    s.calls(1).await;
}

/// Unknown proxy routes and wrong methods answer in the shape's own error format too.
async fn proxy_unknown_routes_answer_natively(app: TestApp) {
    let s = setup(app).await;
    let cases = [
        (Sh::OpenAi, "/v1/openai-proxy/v1/embeddings"),
        (Sh::OpenAi, "/v1/openai-proxy/v1/completions"),
        (Sh::Anthropic, "/v1/anthropic-proxy/v1/complete"),
        (Sh::Anthropic, "/v1/anthropic-proxy/v1/messages/count_tokens"),
        (Sh::Gemini, "/v1/gemini-proxy/v1beta/tunedModels"),
        (
            Sh::Gemini,
            "/v1/gemini-proxy/v1beta/models/gemini-1.5-flash/extra:generateContent",
        ),
    ];
    for (sh, path) in cases {
        let a = send(&s.app, path, &s.live, sh.body(sh.native_model(), "x", false)).await;
        let (_, ty) = expected(sh, Kind::NotFound);
        assert_error_shape(&a, sh, 404, ty);
    }
    let wrong_method = [
        (Sh::OpenAi, OPENAI.to_string()),
        (Sh::Anthropic, ANTHROPIC.to_string()),
        (Sh::Gemini, Sh::Gemini.path("gemini-1.5-flash", false)),
    ];
    for (sh, path) in wrong_method {
        let a = s.app.get(&path, Some(&s.live)).await;
        assert_error_shape_any(&a, sh, 405, None);
    }
    for sh in ALL {
        assert!(sh.mock(&s.up).requests().is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Health, models, exactly-once

async fn health_and_models(app: TestApp) {
    // Without any provider configured.
    for shape in ["openai", "anthropic", "gemini"] {
        let a = app.get(&format!("/v1/{shape}-proxy/health"), None).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(
            a.body,
            json!({"status": "ok", "provider": shape, "upstreamConfigured": false})
        );
    }
    let s = setup(app).await;
    for shape in ["openai", "anthropic", "gemini"] {
        let a = s.app.get(&format!("/v1/{shape}-proxy/health"), None).await;
        assert_eq!(
            a.body,
            json!({"status": "ok", "provider": shape, "upstreamConfigured": true})
        );
    }
    let a = s.app.get(MODELS, None).await;
    assert_native(&a, Sh::OpenAi, Kind::Auth);
    let a = s.app.get(MODELS, Some("to_live_nope")).await;
    assert_native(&a, Sh::OpenAi, Kind::Auth);
    for key in [&s.dev, &s.live] {
        let a = s.app.get(MODELS, Some(key)).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(sorted_keys(&a.body), ["data", "object"]);
        assert_eq!(a.body["object"], "list");
        let data = a.body["data"].as_array().expect("data");
        let mut ids = HashSet::new();
        for m in data {
            assert_eq!(sorted_keys(m), ["created", "id", "object", "owned_by"], "{m}");
            assert_eq!(m["object"], "model");
            assert!(m["created"].is_u64() && m["owned_by"].is_string(), "{m}");
            assert!(ids.insert(m["id"].as_str().expect("id").to_string()), "duplicate {m}");
        }
        for id in [
            "gpt-4o",
            "gpt-4o-mini",
            "claude-sonnet-4",
            "gemini-1.5-flash",
            "llama-3.1-405b-instruct",
        ] {
            assert!(ids.contains(id), "{id} listed: {}", a.text);
        }
    }
    let (anthropic_only, _) = s
        .app
        .create_key(
            &s.token,
            &s.project,
            json!({"name": "a", "mode": "dev", "scopes": ["anthropic"]}),
        )
        .await;
    let a = s.app.get(MODELS, Some(&anthropic_only)).await;
    assert_native(&a, Sh::OpenAi, Kind::Perm);
}

async fn exactly_once_under_concurrency(app: TestApp) {
    let s = setup(app).await;
    let n = 20;
    let calls = (0..n).map(|i| {
        let (sh, key, stream) = match i % 5 {
            0 => (Sh::OpenAi, &s.live, false),
            1 => (Sh::OpenAi, &s.live, true),
            2 => (Sh::Anthropic, &s.live, i % 2 == 0),
            3 => (Sh::Gemini, &s.live, true),
            _ => (Sh::Gemini, &s.dev, false),
        };
        s.ask(sh, key, sh.native_model(), "together", stream)
    });
    let answers = futures::future::join_all(calls).await;
    let mut ids = HashSet::new();
    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.text);
        assert!(ids.insert(a.header("x-tokenone-call-id").expect("call id").to_string()));
    }
    let rows = s.calls(n).await;
    let row_ids: HashSet<String> = rows.iter().map(|r| r["id"].as_str().expect("id").to_string()).collect();
    assert_eq!(row_ids.len(), n, "distinct ids");
    assert_eq!(row_ids, ids, "one row per answered call");
    assert_eq!(outcomes(&rows), outcome(n, 200, "-"));
}

both_backends!(
    sandbox_answers_in_each_shape,
    live_openai_forwarding,
    live_stream_and_cross_shape,
    keys_create_shows_the_secret_once,
    keys_validation,
    keys_revoke_takes_effect_at_once,
    keys_role_rules,
    proxy_accepts_each_key_transport,
    proxy_refuses_bad_keys,
    proxy_scope_and_ip_allowlist,
    proxy_rejects_bad_input,
    proxy_unknown_routes_answer_natively,
    proxy_body_limit,
    proxy_rate_limits,
    forwarding_openai_same_shape,
    forwarding_names_the_public_model,
    forwarding_anthropic_headers,
    forwarding_gemini_paths_and_key,
    streaming_openai_usage_chunk,
    streaming_anthropic_events,
    cross_shape_anthropic_client_openai_upstream,
    cross_shape_gemini_client_anthropic_upstream,
    cross_shape_openai_stream_usage_chunk,
    upstream_5xx_is_502,
    upstream_unreachable_is_502,
    upstream_answer_without_usage_is_estimated,
    upstream_client_errors_are_relayed,
    upstream_first_byte_timeout_is_504,
    upstream_redirect_and_garbage_are_502,
    upstream_cut_mid_stream,
    upstream_idle_mid_stream,
    upstream_negative_usage,
    upstream_byte_by_byte_utf8,
    unconfigured_provider_is_503,
    client_disconnect_mid_stream,
    client_gives_up_before_the_answer,
    health_and_models,
    exactly_once_under_concurrency,
);
