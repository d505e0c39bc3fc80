//! Smart routing end to end: the pick, hints, shadow mode, fallback, circuit breakers, the
//! switch, cross-shape routed delivery — on both backends.

use serde_json::{json, Value};
use tokenone_testkit::mock::Behaviour;
use tokenone_testkit::{both_backends, TestApp, Upstreams};

struct World {
    app: TestApp,
    up: Upstreams,
    token: String,
    project: String,
    live: String,
}

async fn world(app: TestApp) -> World {
    let backend = app.backend;
    app.stop().await;
    let up = Upstreams::start().await;
    let app = TestApp::spawn_with(backend, |c| up.configure(c)).await;
    let (token, _, _) = app.register("router@example.com").await;
    app.fund(&token).await;
    let project = app.create_project(&token, "Routing").await;
    let (live, _) = app
        .create_key(&token, &project, json!({"name": "live", "mode": "live"}))
        .await;
    World {
        app,
        up,
        token,
        project,
        live,
    }
}

async fn openai(w: &World, body: Value, headers: &[(&str, &str)]) -> tokenone_testkit::Answer {
    let mut r = w
        .app
        .client
        .post(w.app.url("/v1/openai-proxy/v1/chat/completions"))
        .bearer_auth(&w.live)
        .json(&body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    TestApp::answer(r.send().await.unwrap()).await
}

fn short(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello to the team."}]})
}

async fn call_row(w: &World, a: &tokenone_testkit::Answer) -> Value {
    let id = a.header("x-tokenone-call-id").expect("call id").to_string();
    let rows = w
        .app
        .wait_rows(&format!("SELECT * FROM calls WHERE id = '{id}'"), 1)
        .await;
    rows.into_iter().next().expect("call row")
}

/// A short plain request for a balanced model goes to the cheapest cheap path, and the client
/// still gets an OpenAI answer; the savings are credited back.
async fn short_request_is_routed_down(app: TestApp) {
    let w = world(app).await;
    let a = openai(&w, short("claude-sonnet-4"), &[]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-tokenone-provider"), Some("openrouter"));
    assert_eq!(a.header("x-tokenone-model"), Some("llama-3.1-8b-instruct"));
    assert_eq!(a.header("x-tokenone-tier"), Some("cheap"));
    assert_eq!(a.body["model"], "llama-3.1-8b-instruct");
    let sent = w.up.openai.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].body["model"], "meta-llama/llama-3.1-8b-instruct",
        "the provider's own model id"
    );
    assert!(w.up.anthropic.requests().is_empty());
    let c = call_row(&w, &a).await;
    assert_eq!(c["routed"], 1);
    assert_eq!(c["requested_tier"], "balanced");
    assert_eq!(c["needed_tier"], "cheap");
    assert!(
        c["reasons"].as_str().unwrap().contains("short_prompt"),
        "{}",
        c["reasons"]
    );
    assert!(c["savings_tokens"].as_i64().unwrap() > 0);
    assert!(c["pass_back_tokens"].as_i64().unwrap() > 0);
    let picks = w
        .app
        .get(
            &format!("/api/tokenone/projects/{}/recent-upstream-picks", w.project),
            Some(&w.token),
        )
        .await;
    let p = &picks.assert_ok(200)[0];
    assert_eq!(
        (p["routed"].as_bool(), p["deliveredModel"].as_str()),
        (Some(true), Some("llama-3.1-8b-instruct"))
    );
    assert_eq!(p["requestedModel"], "claude-sonnet-4");
}

/// `x-tokenone-route: pin` delivers exactly what was asked; `x-tokenone-min-tier` raises the
/// floor; a bad hint is 400 in the client's shape.
async fn hints_pin_and_min_tier(app: TestApp) {
    let w = world(app).await;
    let a = openai(&w, short("claude-sonnet-4"), &[("x-tokenone-route", "pin")]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-tokenone-provider"), Some("anthropic"));
    assert_eq!(
        w.up.anthropic.requests().len(),
        1,
        "delivered natively, translated to Anthropic"
    );
    assert_eq!(call_row(&w, &a).await["routed"], 0);
    let a = openai(&w, short("claude-sonnet-4"), &[("x-tokenone-min-tier", "balanced")]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-tokenone-tier"), Some("balanced"));
    let a = openai(&w, short("claude-sonnet-4"), &[("x-tokenone-min-tier", "legendary")]).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["error"]["type"], "invalid_request_error");
    // Never above the requested tier: a cheap model stays cheap whatever the floor.
    let a = openai(&w, short("gpt-4o-mini"), &[("x-tokenone-min-tier", "heavy")]).await;
    assert_eq!(a.header("x-tokenone-tier"), Some("cheap"));
}

/// A request that needs its tier is not routed down: reasoning cues keep a heavy model heavy.
async fn demanding_request_keeps_its_tier(app: TestApp) {
    let w = world(app).await;
    let body = json!({"model": "claude-opus-4", "messages": [{"role": "user",
        "content": "Prove step by step that the square root of 2 is irrational, then derive a bound on the error of its continued-fraction approximations."}]});
    let a = openai(&w, body, &[]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-tokenone-tier"), Some("heavy"));
    let c = call_row(&w, &a).await;
    assert_eq!(c["needed_tier"], "heavy");
}

/// Shadow mode plans and records the pick but delivers natively; the status counts what
/// routing would have saved.
async fn shadow_mode_records_the_pick(app: TestApp) {
    let w = world(app).await;
    w.app.router("shadow", 100).await;
    let a = openai(&w, short("claude-sonnet-4"), &[]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-tokenone-provider"), Some("anthropic"), "delivered natively");
    let c = call_row(&w, &a).await;
    assert_eq!(c["routed"], 0);
    assert_eq!(c["shadow_pick"], "openrouter:llama-3.1-8b-instruct");
    assert!(c["shadow_savings_tokens"].as_i64().unwrap() > 0);
    let admin = w.app.admin_token().await;
    let s = w.app.get("/api/admin/smart-router-flip/status", Some(&admin)).await;
    let d = s.assert_ok(200);
    assert_eq!(d["mode"], "shadow");
    assert_eq!(d["last24h"]["shadowCalls"], "1");
    assert_ne!(d["last24h"]["shadowSavingsTokens"], "0");
    // Off: native, no pick recorded.
    w.app.router("off", 100).await;
    let a = openai(&w, short("claude-sonnet-4"), &[]).await;
    let c = call_row(&w, &a).await;
    assert_eq!((c["routed"].as_i64(), c["shadow_pick"].is_null()), (Some(0), true));
    // Rollout 0: on, but no call selected.
    w.app.router("on", 0).await;
    let a = openai(&w, short("claude-sonnet-4"), &[]).await;
    assert_eq!(a.header("x-tokenone-provider"), Some("anthropic"));
}

/// A retryable failure of the primary before any byte goes to the fallback, one rung up; five
/// consecutive failures open the primary's breaker, so the next plan leaves it out.
async fn fallback_and_circuit_breaker(app: TestApp) {
    let w = world(app).await;
    // The cheap primary (openrouter, on the OpenAI mock) fails; the balanced fallback
    // (fireworks, also on the OpenAI mock) answers.
    w.up.openai
        .script(Behaviour::Status(503, json!({"error": {"message": "overloaded"}})));
    let a = openai(&w, short("claude-sonnet-4"), &[]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-tokenone-tier"), Some("balanced"));
    let c = call_row(&w, &a).await;
    assert_eq!(c["fallback_used"], 1);
    assert_eq!(c["tier"], "balanced");
    // Four more failures of the primary: its breaker opens after five in a row.
    for _ in 0..4 {
        w.up.openai
            .script(Behaviour::Status(500, json!({"error": {"message": "down"}})));
        w.up.openai.script(Behaviour::Reply("fallback".into()));
        let a = openai(&w, short("claude-sonnet-4"), &[]).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let a = openai(&w, short("claude-sonnet-4"), &[]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    // The next cheapest cheap path: the same model on fireworks (0.2 / 0.2 per M).
    assert_eq!(
        a.header("x-tokenone-provider"),
        Some("fireworks"),
        "the open breaker keeps openrouter out"
    );
    assert_eq!(a.header("x-tokenone-model"), Some("llama-3.1-8b-instruct"));
    assert_eq!(call_row(&w, &a).await["fallback_used"], 0);
    // A client fault (400) is relayed, not retried.
    w.up.openai
        .script(Behaviour::Status(400, json!({"error": {"message": "bad field"}})));
    let a = openai(&w, short("claude-sonnet-4"), &[]).await;
    assert_eq!(a.status, 400, "{}", a.text);
}

/// Routed delivery across shapes, streaming: an Anthropic client asking for claude-sonnet-4
/// gets Anthropic events from an OpenAI-format path.
async fn routed_stream_is_translated(app: TestApp) {
    let w = world(app).await;
    let r = w
        .app
        .client
        .post(w.app.url("/v1/anthropic-proxy/v1/messages"))
        .header("x-api-key", &w.live)
        .json(&json!({"model": "claude-sonnet-4", "max_tokens": 200, "stream": true,
            "messages": [{"role": "user", "content": "Say hello to the team."}]}))
        .send()
        .await
        .unwrap();
    let a = TestApp::answer(r).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-tokenone-provider"), Some("openrouter"));
    assert!(a.text.contains("event: message_start"), "{}", a.text);
    assert!(a.text.contains("event: message_stop"), "{}", a.text);
    let text: String = a
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "Echo: Say hello to the team.");
    let c = call_row(&w, &a).await;
    assert_eq!(c["routed"], 1);
    assert!(c["output_tokens"].as_i64().unwrap() > 0);
}

/// The switch: validation, audit, and effect on another replica within a second.
async fn switch_is_validated_audited_and_shared(app: TestApp) {
    let w = world(app).await;
    let admin = w.app.admin_token().await;
    for bad in [
        json!({"mode": "sideways", "reason": "because"}),
        json!({"mode": "on", "rolloutPct": 101, "reason": "because"}),
        json!({"mode": "on", "reason": "no"}),
        json!({"mode": "on", "reason": "because", "extra": 1}),
    ] {
        w.app
            .post("/api/admin/smart-router-flip", Some(&admin), bad)
            .await
            .assert_error(400, "invalid_request");
    }
    w.app
        .post(
            "/api/admin/smart-router-flip",
            Some(&w.token),
            json!({"mode": "off", "reason": "not mine"}),
        )
        .await
        .assert_error(403, "forbidden");
    let b = w.app.replica(|c| w.up.configure(c)).await;
    let r = w
        .app
        .post(
            "/api/admin/smart-router-flip",
            Some(&admin),
            json!({"mode": "off", "rolloutPct": 50, "reason": "maintenance"}),
        )
        .await;
    let d = r.assert_ok(200);
    assert_eq!(
        (d["mode"].as_str(), d["rolloutPct"].as_i64(), d["reason"].as_str()),
        (Some("off"), Some(50), Some("maintenance"))
    );
    let audit = w
        .app
        .rows("SELECT action, reason FROM audit_log WHERE action = 'router.flip'")
        .await;
    assert_eq!(audit.len(), 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(2500);
    loop {
        let r = b
            .client
            .post(b.url("/v1/openai-proxy/v1/chat/completions"))
            .bearer_auth(&w.live)
            .json(&short("claude-sonnet-4"))
            .send()
            .await
            .unwrap();
        let provider = r
            .headers()
            .get("x-tokenone-provider")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if provider.as_deref() == Some("anthropic") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the flip did not reach the other replica"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

both_backends!(
    short_request_is_routed_down,
    hints_pin_and_min_tier,
    demanding_request_keeps_its_tier,
    shadow_mode_records_the_pick,
    fallback_and_circuit_breaker,
    routed_stream_is_translated,
    switch_is_validated_audited_and_shared,
);
