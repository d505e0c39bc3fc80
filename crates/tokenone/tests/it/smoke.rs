//! End-to-end walk through the first steps of the README.

use serde_json::json;
use tokenone_testkit::{both_backends, TestApp};

async fn first_steps(app: TestApp) {
    let h = app.get("/healthz", None).await;
    assert_eq!(h.status, 200);
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = app.admin_token().await;
    let me = app.get("/api/auth/me", Some(&token)).await;
    let d = me.assert_ok(200);
    assert_eq!(d["user"]["platformAdmin"], json!(true));
    let pid = app.create_project(&token, "First").await;
    let p = app.get(&format!("/api/tokenone/projects/{pid}"), Some(&token)).await;
    assert_eq!(p.assert_ok(200)["stage"], "build");
    let inv = app
        .post(
            &format!("/api/projects/{pid}/members"),
            Some(&token),
            json!({"email": "new@example.com", "role": "developer"}),
        )
        .await;
    let d = inv.assert_ok(201);
    assert_eq!(d["status"], "invited");
    assert!(d["inviteUrl"].as_str().unwrap().contains("token="));
    let m = app.get("/metrics", None).await;
    assert!(m.text.contains("tokenone_http_requests_total"), "{}", m.text);
    for name in [
        "tokenone_http_request_duration_seconds",
        "tokenone_gateway_overhead_seconds",
        "tokenone_rate_limited_total",
        "tokenone_settlement_queue_depth",
        "tokenone_event_queue_depth",
        "tokenone_wallet_holds_total",
        "tokenone_wallet_settlements_total",
        "tokenone_db_pool_connections",
    ] {
        assert!(m.text.contains(name), "{name} missing from /metrics");
    }
    assert!(
        !m.text.contains("tokenone_db_pool_connections 0\n"),
        "the pool gauge is set"
    );
}

/// CORS: nothing allowed by default; listed origins are.
async fn cors_is_opt_in(app: TestApp) {
    let preflight = |app: &TestApp, origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/auth/login"))
            .header("origin", origin.to_string())
            .header("access-control-request-method", "POST")
            .send()
    };
    let r = preflight(&app, "https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let backend = app.backend;
    app.stop().await;
    let app = TestApp::spawn_with(backend, |c| {
        c.server.cors_origins = vec!["https://console.example".into()]
    })
    .await;
    let r = preflight(&app, "https://console.example").await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "https://console.example");
    let r = preflight(&app, "https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

both_backends!(first_steps, cors_is_opt_in);
