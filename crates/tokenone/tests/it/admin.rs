//! Platform administration: settings, commercial levers, runtime status, tenants, the audit log
//! and the call-log export.

use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokenone_testkit::{both_backends, Answer, Backend, TestApp};

const OPENAI: &str = "/v1/openai-proxy/v1/chat/completions";
const SETTINGS: &str = "/api/admin/settings";
const LEVERS: &str = "/api/admin/commercial-levers";
const EXPORT: &str = "/api/admin/commercial-levers/llm-call-log/export";
const STATUS: &str = "/api/admin/runtime-config/status";
const LEVER_NAMES: [&str; 5] = [
    "token_usd_rate",
    "pass_back_ratio",
    "benchmark_ceilings",
    "upstream_markup_pct",
    "model_tier_map",
];
const EXPORT_COLUMNS: [&str; 25] = [
    "id",
    "at",
    "tenantId",
    "projectId",
    "keyId",
    "mode",
    "shape",
    "requestedModel",
    "requestedTier",
    "deliveredModel",
    "provider",
    "tier",
    "routed",
    "fallbackUsed",
    "inputTokens",
    "cachedInputTokens",
    "outputTokens",
    "usageEstimated",
    "burnTokens",
    "savingsTokens",
    "passBackTokens",
    "uncollectedTokens",
    "latencyMs",
    "status",
    "errorCode",
];
const TOKEN_FIELDS: [&str; 7] = [
    "inputTokens",
    "cachedInputTokens",
    "outputTokens",
    "burnTokens",
    "savingsTokens",
    "passBackTokens",
    "uncollectedTokens",
];

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A syntactically valid UUID (version 7 layout) for rows inserted directly; `n` keeps them
/// distinct and ordered.
fn uuid_n(prefix: u32, n: u64) -> String {
    format!("{prefix:08x}-0000-7000-8000-{n:012x}")
}

async fn put(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> Answer {
    app.call(Method::PUT, path, token, Some(body)).await
}

async fn set(app: &TestApp, token: &str, key: &str, value: Value) -> Answer {
    app.post(SETTINGS, Some(token), json!({"key": key, "value": value}))
        .await
}

/// The settings list as a map key -> setting.
async fn settings(app: &TestApp, token: &str) -> serde_json::Map<String, Value> {
    let a = app.get(SETTINGS, Some(token)).await;
    a.assert_ok(200)
        .as_array()
        .expect("array")
        .iter()
        .map(|s| (s["key"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

/// A sandbox call with a dev key; returns the answer.
async fn sandbox(app: &TestApp, key: &str, model: &str) -> Answer {
    let resp = app
        .client
        .post(app.url(OPENAI))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    TestApp::answer(resp).await
}

/// The admin's token, a project of the admin's tenant and a dev key on it.
async fn admin_with_key(app: &TestApp) -> (String, String, String, String) {
    let token = app.admin_token().await;
    let project = app.create_project(&token, "Admin project").await;
    let (key, key_id) = app
        .create_key(&token, &project, json!({"name": "dev", "mode": "dev"}))
        .await;
    (token, project, key, key_id)
}

/// Polls `check` until it holds; fails after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn sealed_hex_sql(app: &TestApp) -> &'static str {
    match app.backend {
        Backend::Sqlite => "SELECT key, value, hex(sealed) AS sealed_hex FROM settings",
        Backend::Postgres => "SELECT key, value, encode(sealed, 'hex') AS sealed_hex FROM settings",
    }
}

/// Every admin route refuses anonymous callers (401) and tenant users (403), and a refused
/// change changes nothing.
async fn admin_routes_need_a_platform_admin(app: TestApp) {
    let (user, _, _) = app.register("tenant-user@example.com").await;
    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, SETTINGS, None),
        (
            Method::POST,
            SETTINGS,
            Some(json!({"key": "auth.signup_enabled", "value": false})),
        ),
        (Method::DELETE, "/api/admin/settings/auth.signup_enabled", None),
        (Method::GET, LEVERS, None),
        (Method::GET, "/api/admin/commercial-levers/pass_back_ratio", None),
        (
            Method::PUT,
            "/api/admin/commercial-levers/pass_back_ratio",
            Some(json!({"value": "0.1", "reason": "sneaky change"})),
        ),
        (
            Method::GET,
            "/api/admin/commercial-levers/pass_back_ratio/history",
            None,
        ),
        (Method::GET, EXPORT, None),
        (Method::GET, STATUS, None),
        (Method::GET, "/api/admin/tenants", None),
        (Method::GET, "/api/admin/audit-log", None),
    ];
    for (method, path, body) in routes {
        let a = app.call(method.clone(), path, None, body.clone()).await;
        a.assert_error(401, "unauthenticated");
        let a = app.call(method.clone(), path, Some(&user), body).await;
        a.assert_error(403, "forbidden");
    }
    let token = app.admin_token().await;
    let lever = app
        .get("/api/admin/commercial-levers/pass_back_ratio", Some(&token))
        .await;
    assert_eq!(lever.assert_ok(200)["value"], "0.6");
    assert!(app.rows("SELECT * FROM settings").await.is_empty());
    assert!(app.rows("SELECT * FROM lever_history").await.is_empty());
    // Registering still works: the refused setting did not apply.
    app.register("second-user@example.com").await;
}

/// The settings list: every registered key with its metadata; unknown keys and wrong types are
/// 400 and change nothing.
async fn settings_list_and_validation(app: TestApp) {
    let token = app.admin_token().await;
    let list = app.get(SETTINGS, Some(&token)).await;
    let items = list.assert_ok(200).as_array().unwrap().clone();
    let keys: HashSet<&str> = items.iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), items.len(), "keys are unique");
    let mut expected = vec![
        "auth.signup_enabled".to_string(),
        "auth.access_ttl_seconds".into(),
        "auth.refresh_ttl_seconds".into(),
        "wallet.reserve_default_output_tokens".into(),
        "wallet.reservation_ttl_seconds".into(),
        "routing.catalogue".into(),
        "proxy.max_body_bytes".into(),
        "proxy.connect_timeout_ms".into(),
        "proxy.first_byte_timeout_ms".into(),
        "proxy.idle_timeout_ms".into(),
        "sse.heartbeat_seconds".into(),
        "connectors.allow_private_networks".into(),
        "connectors.oauth_state_ttl_seconds".into(),
        "server.public_url".into(),
        "server.cors_origins".into(),
    ];
    for p in ["openai", "anthropic", "gemini", "fireworks", "openrouter"] {
        expected.push(format!("providers.{p}.base_url"));
        expected.push(format!("providers.{p}.api_key"));
    }
    for s in ["openai", "anthropic", "gemini"] {
        expected.push(format!("ratelimit.{s}_per_minute"));
    }
    for t in [
        "github",
        "gitlab",
        "bitbucket",
        "jira",
        "linear",
        "notion",
        "confluence",
        "google-drive",
        "slack",
    ] {
        for f in ["client_id", "client_secret", "authorize_url", "token_url", "scopes"] {
            expected.push(format!("connectors.{t}.{f}"));
        }
    }
    for f in ["host", "port", "username", "password", "from"] {
        expected.push(format!("smtp.{f}"));
    }
    for k in &expected {
        assert!(keys.contains(k.as_str()), "{k} missing from the settings");
    }
    assert_eq!(items.len(), expected.len(), "unexpected keys: {keys:?}");
    let secrets: HashSet<&str> = items
        .iter()
        .filter(|s| s["secret"] == true)
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert!(secrets.contains("providers.openai.api_key"));
    assert!(secrets.contains("connectors.github.client_secret"));
    assert!(secrets.contains("smtp.password"));
    assert_eq!(secrets.len(), 15, "{secrets:?}");
    for s in &items {
        let obj = s.as_object().unwrap();
        let fields: HashSet<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            HashSet::from([
                "key",
                "value",
                "secret",
                "isDefault",
                "description",
                "updatedAt",
                "updatedBy"
            ]),
            "{s}"
        );
        assert_eq!(s["isDefault"], true, "{s}");
        assert!(s["updatedAt"].is_null() && s["updatedBy"].is_null(), "{s}");
        assert!(!s["description"].as_str().unwrap().is_empty(), "{s}");
        if s["secret"] == true {
            assert!(s["value"].is_null(), "an unset secret reads null: {s}");
        }
    }
    let by_key = |k: &str| items.iter().find(|s| s["key"] == k).unwrap().clone();
    assert_eq!(by_key("ratelimit.openai_per_minute")["value"], 120);
    assert_eq!(by_key("auth.signup_enabled")["value"], true);
    assert_eq!(
        by_key("providers.openai.base_url")["value"],
        "https://api.openai.com/v1"
    );
    assert_eq!(by_key("routing.catalogue")["value"].as_array().unwrap().len(), 15);
    assert_eq!(
        by_key("connectors.github.token_url")["value"],
        "https://github.com/login/oauth/access_token"
    );

    // Refused: unknown keys, wrong types, values out of range, an invalid catalogue, bad bodies.
    let mut cat = by_key("routing.catalogue")["value"].clone();
    cat[1]["id"] = cat[0]["id"].clone();
    let bad = [
        json!({"key": "server.bind", "value": "0.0.0.0:1"}),
        json!({"key": "database.url", "value": "sqlite://x.db"}),
        json!({"key": "nope.nothing", "value": 1}),
        json!({"key": "ratelimit.openai_per_minute", "value": "lots"}),
        json!({"key": "ratelimit.openai_per_minute", "value": 1.5}),
        json!({"key": "ratelimit.openai_per_minute", "value": 0}),
        json!({"key": "ratelimit.openai_per_minute", "value": -3}),
        json!({"key": "auth.signup_enabled", "value": "maybe"}),
        json!({"key": "auth.signup_enabled", "value": null}),
        json!({"key": "providers.openai.base_url", "value": 42}),
        json!({"key": "providers.openai.base_url", "value": "ftp://example.com"}),
        json!({"key": "providers.openai.api_key", "value": ["sk-x"]}),
        json!({"key": "server.cors_origins", "value": "https://a.example"}),
        json!({"key": "routing.catalogue", "value": cat}),
        json!({"key": "routing.catalogue", "value": [{"id": "x"}]}),
        json!({"key": "smtp.port", "value": 70000}),
        json!({"key": "auth.signup_enabled"}),
        json!({"key": "auth.signup_enabled", "value": false, "extra": 1}),
    ];
    for body in bad {
        let a = app.post(SETTINGS, Some(&token), body.clone()).await;
        a.assert_error(400, "invalid_request");
        assert!(!a.text.contains("sk-x"), "{}", a.text);
    }
    let a = app.delete("/api/admin/settings/server.bind", Some(&token)).await;
    a.assert_error(400, "invalid_request");
    assert!(app.rows("SELECT * FROM settings").await.is_empty(), "nothing stored");
    assert!(
        app.rows("SELECT * FROM audit_log WHERE action LIKE 'settings.%'")
            .await
            .is_empty(),
        "nothing audited"
    );
    let after = app.get(SETTINGS, Some(&token)).await;
    assert_eq!(after.assert_ok(200), list.data(), "the list is unchanged");

    // Accepted: a number as a decimal string is stored as a number; the catalogue round-trips.
    let a = set(&app, &token, "ratelimit.gemini_per_minute", json!("90")).await;
    let d = a.assert_ok(200);
    assert_eq!(d["key"], "ratelimit.gemini_per_minute");
    assert_eq!(d["value"], 90);
    assert_eq!(d["isDefault"], false);
    assert_eq!(d["secret"], false);
    assert!(d["updatedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(d["updatedBy"]["email"], tokenone_testkit::ADMIN_EMAIL);
    let mut cat = by_key("routing.catalogue")["value"].clone();
    cat[0]["enabled"] = json!(false);
    let a = set(&app, &token, "routing.catalogue", cat.clone()).await;
    assert_eq!(a.assert_ok(200)["value"], cat);
    let a = set(&app, &token, "server.cors_origins", json!(["https://console.example"])).await;
    assert_eq!(a.assert_ok(200)["value"], json!(["https://console.example"]));
    let now = settings(&app, &token).await;
    assert_eq!(now["ratelimit.gemini_per_minute"]["value"], 90);
    assert_eq!(now["routing.catalogue"]["value"], cat);
    assert_eq!(now["routing.catalogue"]["isDefault"], false);
    assert_eq!(now["ratelimit.openai_per_minute"]["isDefault"], true);
}

/// A secret setting is sealed at rest, masked in every answer and in the audit log, and its
/// plaintext appears nowhere in the database.
async fn secret_settings_are_sealed_and_masked(app: TestApp) {
    let token = app.admin_token().await;
    let plaintext = "sk-live-PlainTextCredential-9WXYZ";
    let a = set(&app, &token, "providers.openai.api_key", json!(plaintext)).await;
    assert!(!a.text.contains(plaintext), "{}", a.text);
    let d = a.assert_ok(200);
    assert_eq!(d["value"], "••••WXYZ");
    assert_eq!(d["secret"], true);
    assert_eq!(d["isDefault"], false);
    let list = app.get(SETTINGS, Some(&token)).await;
    assert!(!list.text.contains(plaintext));
    let s = settings(&app, &token).await;
    assert_eq!(s["providers.openai.api_key"]["value"], "••••WXYZ");

    // At rest: only the sealed form, which does not contain the plaintext either.
    let rows = app.rows(sealed_hex_sql(&app)).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["key"], "providers.openai.api_key");
    assert!(
        rows[0]["value"].is_null(),
        "a secret has no plaintext value column: {}",
        rows[0]
    );
    let sealed = rows[0]["sealed_hex"].as_str().expect("sealed").to_ascii_lowercase();
    assert!(sealed.len() > 2 * plaintext.len());
    let plain_hex: String = plaintext.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!sealed.contains(&plain_hex));
    for table in ["settings", "audit_log", "server_secrets", "levers", "lever_history"] {
        for row in app.rows(&format!("SELECT * FROM {table}")).await {
            assert!(!row.to_string().contains(plaintext), "{table}: {row}");
            assert!(!row.to_string().contains("PlainTextCredential"), "{table}: {row}");
        }
    }
    let audit = app
        .rows("SELECT * FROM audit_log WHERE action = 'settings.update'")
        .await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["target"], "setting:providers.openai.api_key");
    assert_eq!(audit[0]["new_value"], "\"••••WXYZ\"");
    assert_eq!(audit[0]["old_value"], "null");
    let log = app.get("/api/admin/audit-log", Some(&token)).await;
    assert!(!log.text.contains(plaintext));

    // The provider counts as configured now; the status shows no secret.
    let st = app.get(STATUS, Some(&token)).await;
    assert!(!st.text.contains(plaintext));
    let openai = st.assert_ok(200)["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "openai")
        .unwrap()
        .clone();
    assert_eq!(openai["configured"], true);

    // Changing it keeps it sealed; a row copied to another key does not open there.
    let a = set(&app, &token, "providers.openai.api_key", json!("sk-second-value-ABCD")).await;
    assert_eq!(a.assert_ok(200)["value"], "••••ABCD");
    let audit = app
        .rows("SELECT * FROM audit_log WHERE action = 'settings.update' ORDER BY id")
        .await;
    assert_eq!(audit[1]["old_value"], "\"••••WXYZ\"");
    assert_eq!(audit[1]["new_value"], "\"••••ABCD\"");

    // Reset: unset again, masked as null.
    let a = app
        .delete("/api/admin/settings/providers.openai.api_key", Some(&token))
        .await;
    let d = a.assert_ok(200);
    assert!(d["value"].is_null());
    assert_eq!(d["isDefault"], true);
    assert!(app.rows("SELECT * FROM settings").await.is_empty());
    let reset = app
        .rows("SELECT * FROM audit_log WHERE action = 'settings.reset'")
        .await;
    assert_eq!(reset.len(), 1);
    assert_eq!(reset[0]["old_value"], "\"••••ABCD\"");
    assert_eq!(reset[0]["new_value"], "null");
}

/// Settings take effect on the next request, and DELETE restores the default.
async fn settings_take_effect_and_reset(app: TestApp) {
    let (token, _, key, _) = admin_with_key(&app).await;
    let a = sandbox(&app, &key, "gpt-4o-mini").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("x-ratelimit-limit"), Some("120"));

    set(&app, &token, "ratelimit.openai_per_minute", json!(7))
        .await
        .assert_ok(200);
    let a = sandbox(&app, &key, "gpt-4o-mini").await;
    assert_eq!(a.header("x-ratelimit-limit"), Some("7"), "{:?}", a.headers);
    let st = app.get(STATUS, Some(&token)).await;
    let st = st.assert_ok(200);
    assert_eq!(st["rateLimits"]["openai"], 7);
    assert_eq!(st["settingsOverridden"], json!(["ratelimit.openai_per_minute"]));

    set(&app, &token, "auth.signup_enabled", json!(false))
        .await
        .assert_ok(200);
    let r = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "late@example.com", "password": "password-123", "name": "Late"}),
        )
        .await;
    r.assert_error(403, "forbidden");

    let a = app
        .delete("/api/admin/settings/auth.signup_enabled", Some(&token))
        .await;
    let d = a.assert_ok(200);
    assert_eq!(d["value"], true);
    assert_eq!(d["isDefault"], true);
    app.register("late@example.com").await;

    let a = app
        .delete("/api/admin/settings/ratelimit.openai_per_minute", Some(&token))
        .await;
    assert_eq!(a.assert_ok(200)["value"], 120);
    let a = sandbox(&app, &key, "gpt-4o-mini").await;
    assert_eq!(a.header("x-ratelimit-limit"), Some("120"));
    let st = app.get(STATUS, Some(&token)).await;
    assert_eq!(st.assert_ok(200)["settingsOverridden"], json!([]));
    // Resetting what is not set changes nothing and audits nothing.
    let before = app.rows("SELECT * FROM audit_log").await.len();
    let a = app
        .delete("/api/admin/settings/ratelimit.openai_per_minute", Some(&token))
        .await;
    assert_eq!(a.assert_ok(200)["isDefault"], true);
    assert_eq!(app.rows("SELECT * FROM audit_log").await.len(), before);
    let actions: Vec<String> = app
        .rows("SELECT action FROM audit_log WHERE action LIKE 'settings.%' ORDER BY id")
        .await
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        actions,
        ["settings.update", "settings.update", "settings.reset", "settings.reset"]
    );
}

/// The wallet balance's USD equivalent (at the `token_usd_rate` lever) as `app` computes it.
async fn usd(app: &TestApp, token: &str) -> String {
    let bal = app.get("/api/wallet/balance", Some(token)).await;
    bal.assert_ok(200)["usdEquivalent"].as_str().unwrap().to_string()
}

/// A change made on one replica reaches another within about a second: settings and levers.
async fn changes_reach_other_replicas(a: TestApp) {
    let b = a.replica(|_| {}).await;
    let (token, _, key, _) = admin_with_key(&a).await;
    let tenant = a.tenant_of(&token).await;
    a.topup(&tenant, 1_000_000).await;
    // Both replicas have loaded the defaults.
    assert_eq!(
        sandbox(&b, &key, "gpt-4o-mini").await.header("x-ratelimit-limit"),
        Some("120")
    );

    set(&a, &token, "ratelimit.openai_per_minute", json!(9))
        .await
        .assert_ok(200);
    let took = eventually(Duration::from_millis(1500), "setting on replica B", || async {
        sandbox(&b, &key, "gpt-4o-mini").await.header("x-ratelimit-limit") == Some("9")
    })
    .await;
    eprintln!("setting reached replica B after {took:?}");

    assert_eq!(usd(&b, &token).await, "1");
    let r = put(
        &a,
        "/api/admin/commercial-levers/token_usd_rate",
        Some(&token),
        json!({"value": {"topupUsdPerToken": "0.000003", "costBasisUsdPerToken": "0.000001"}, "reason": "price change"}),
    )
    .await;
    r.assert_ok(200);
    // The replica that made the change applies it at once.
    assert_eq!(usd(&a, &token).await, "3");
    let took = eventually(Duration::from_millis(1500), "lever on replica B", || async {
        usd(&b, &token).await == "3"
    })
    .await;
    eprintln!("lever reached replica B after {took:?}");

    a.delete("/api/admin/settings/ratelimit.openai_per_minute", Some(&token))
        .await
        .assert_ok(200);
    eventually(Duration::from_millis(1500), "reset on replica B", || async {
        sandbox(&b, &key, "gpt-4o-mini").await.header("x-ratelimit-limit") == Some("120")
    })
    .await;
    // A replica started later loads the stored values at start.
    set(&a, &token, "ratelimit.openai_per_minute", json!(11))
        .await
        .assert_ok(200);
    let c = a.replica(|_| {}).await;
    assert_eq!(
        sandbox(&c, &key, "gpt-4o-mini").await.header("x-ratelimit-limit"),
        Some("11")
    );
    assert_eq!(usd(&c, &token).await, "3");
}

/// The five levers: shape, defaults, validation, normalisation, history and audit.
async fn levers_validation_history_and_audit(app: TestApp) {
    let token = app.admin_token().await;
    let list = app.get(LEVERS, Some(&token)).await;
    let items = list.assert_ok(200).as_array().unwrap().clone();
    let names: Vec<&str> = items.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, LEVER_NAMES);
    for l in &items {
        let fields: HashSet<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            HashSet::from(["name", "value", "description", "updatedAt", "updatedBy"])
        );
        assert!(l["updatedAt"].is_null() && l["updatedBy"].is_null());
        assert!(!l["description"].as_str().unwrap().is_empty());
    }
    assert_eq!(items[1]["value"], "0.6");
    assert_eq!(
        items[0]["value"],
        json!({"topupUsdPerToken": "0.000001", "costBasisUsdPerToken": "0.000001"})
    );
    assert_eq!(items[3]["value"], "0.1");
    assert_eq!(items[4]["value"]["gpt-4o-mini*"], "cheap");
    let one = app
        .get("/api/admin/commercial-levers/benchmark_ceilings", Some(&token))
        .await;
    assert_eq!(one.assert_ok(200)["value"]["heavy"]["output"], "75");

    // Unknown lever: 404 everywhere.
    app.get("/api/admin/commercial-levers/nope", Some(&token))
        .await
        .assert_error(404, "not_found");
    put(
        &app,
        "/api/admin/commercial-levers/nope",
        Some(&token),
        json!({"value": "1", "reason": "because"}),
    )
    .await
    .assert_error(404, "not_found");
    app.get("/api/admin/commercial-levers/nope/history", Some(&token))
        .await
        .assert_error(404, "not_found");

    // Invalid values and reasons: 400, nothing changes.
    let path = "/api/admin/commercial-levers/pass_back_ratio";
    for body in [
        json!({"value": 1.5, "reason": "too generous"}),
        json!({"value": "1.5", "reason": "too generous"}),
        json!({"value": -0.1, "reason": "negative"}),
        json!({"value": "abc", "reason": "not a number"}),
        json!({"value": "0.5", "reason": "ok"}),
        json!({"value": "0.5", "reason": "   ab   "}),
        json!({"value": "0.5", "reason": ""}),
        json!({"value": "0.5"}),
        json!({"reason": "no value"}),
        json!({"value": "0.5", "reason": "extra", "by": "me"}),
    ] {
        put(&app, path, Some(&token), body.clone())
            .await
            .assert_error(400, "invalid_request");
    }
    put(
        &app,
        "/api/admin/commercial-levers/model_tier_map",
        Some(&token),
        json!({"value": {"gpt-4o": "premium"}, "reason": "bad tier"}),
    )
    .await
    .assert_error(400, "invalid_request");
    put(
        &app,
        "/api/admin/commercial-levers/token_usd_rate",
        Some(&token),
        json!({"value": {"topupUsdPerToken": "0", "costBasisUsdPerToken": "1"}, "reason": "free"}),
    )
    .await
    .assert_error(400, "invalid_request");
    assert!(app.rows("SELECT * FROM lever_history").await.is_empty());
    assert!(app.rows("SELECT * FROM levers").await.is_empty());
    let v0 = app.get(STATUS, Some(&token)).await.assert_ok(200)["leversVersion"]
        .as_i64()
        .unwrap();

    // Valid: numbers accepted as JSON numbers, returned as decimal strings.
    let a = put(
        &app,
        path,
        Some(&token),
        json!({"value": 0.5, "reason": "  first cut  "}),
    )
    .await;
    let d = a.assert_ok(200);
    assert_eq!(d["name"], "pass_back_ratio");
    assert_eq!(d["value"], "0.5");
    assert!(d["updatedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(d["updatedBy"]["email"], tokenone_testkit::ADMIN_EMAIL);
    let a = put(
        &app,
        path,
        Some(&token),
        json!({"value": "0.450", "reason": "second cut"}),
    )
    .await;
    assert_eq!(a.assert_ok(200)["value"], "0.45");
    let a = put(
        &app,
        "/api/admin/commercial-levers/benchmark_ceilings",
        Some(&token),
        json!({"value": {"heavy": {"input": 15, "output": 75.5}, "balanced": {"input": "3", "output": 15},
                         "cheap": {"input": 0.8, "output": "4.0"}}, "reason": "ceilings"}),
    )
    .await;
    assert_eq!(
        a.assert_ok(200)["value"],
        json!({"heavy": {"input": "15", "output": "75.5"}, "balanced": {"input": "3", "output": "15"},
               "cheap": {"input": "0.8", "output": "4"}})
    );
    let v1 = app.get(STATUS, Some(&token)).await.assert_ok(200)["leversVersion"]
        .as_i64()
        .unwrap();
    assert_eq!(v1, v0 + 3, "every change bumps the levers version");
    let stored = app
        .rows("SELECT value FROM levers WHERE name = 'pass_back_ratio'")
        .await;
    assert_eq!(stored[0]["value"], "\"0.45\"", "stored normalised");
    let got = app.get(path, Some(&token)).await;
    assert_eq!(got.assert_ok(200)["value"], "0.45");

    // History, newest first, with the actor; paginated.
    let me = app.get("/api/auth/me", Some(&token)).await;
    let my_id = me.assert_ok(200)["user"]["id"].clone();
    let h = app.get(&format!("{path}/history"), Some(&token)).await;
    let page = h.assert_ok(200);
    assert!(page["nextCursor"].is_null());
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["newValue"], "0.45");
    assert_eq!(items[0]["oldValue"], "0.5");
    assert_eq!(items[0]["reason"], "second cut");
    assert_eq!(items[1]["newValue"], "0.5");
    assert_eq!(items[1]["oldValue"], "0.6", "the default it replaced");
    assert_eq!(items[1]["reason"], "first cut", "trimmed");
    for it in items {
        assert_eq!(it["actor"]["id"], my_id);
        assert_eq!(it["actor"]["email"], tokenone_testkit::ADMIN_EMAIL);
        assert!(it["at"].as_str().unwrap().ends_with('Z'));
        let fields: HashSet<&str> = it.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(fields, HashSet::from(["at", "actor", "oldValue", "newValue", "reason"]));
    }
    let p1 = app.get(&format!("{path}/history?limit=1"), Some(&token)).await;
    let p1 = p1.assert_ok(200);
    assert_eq!(p1["items"].as_array().unwrap().len(), 1);
    assert_eq!(p1["items"][0]["newValue"], "0.45");
    let cursor = p1["nextCursor"].as_str().expect("more pages");
    let p2 = app
        .get(&format!("{path}/history?limit=1&cursor={cursor}"), Some(&token))
        .await;
    let p2 = p2.assert_ok(200);
    assert_eq!(p2["items"][0]["newValue"], "0.5");
    assert!(p2["nextCursor"].is_null());
    app.get(&format!("{path}/history?limit=0"), Some(&token))
        .await
        .assert_error(400, "invalid_request");
    app.get(&format!("{path}/history?cursor=zzz"), Some(&token))
        .await
        .assert_error(400, "invalid_request");

    // Audit rows: old value, new value, reason and actor.
    let audit = app
        .rows("SELECT * FROM audit_log WHERE action = 'lever.update' ORDER BY id")
        .await;
    assert_eq!(audit.len(), 3);
    assert_eq!(audit[0]["target"], "lever:pass_back_ratio");
    assert_eq!(audit[0]["old_value"], "\"0.6\"");
    assert_eq!(audit[0]["new_value"], "\"0.5\"");
    assert_eq!(audit[0]["reason"], "first cut");
    assert_eq!(audit[0]["actor_email"], tokenone_testkit::ADMIN_EMAIL);
    assert_eq!(audit[1]["old_value"], "\"0.5\"");
    assert_eq!(audit[2]["target"], "lever:benchmark_ceilings");
}

/// Makes `n` sandbox calls and waits until their rows are written.
async fn make_calls(app: &TestApp, key: &str, key_id: &str, n: usize) {
    for _ in 0..n {
        let a = sandbox(app, key, "gpt-4o-mini").await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let rows = app
        .wait_rows(&format!("SELECT id FROM calls WHERE key_id = '{key_id}'"), n)
        .await;
    assert_eq!(rows.len(), n);
}

/// A minimal RFC 4180 reader for the test: quoted fields, doubled quotes, CRLF records.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {
                chars.next();
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && row.is_empty(),
        "CSV ends with a full record"
    );
    rows
}

/// The CSV export: header, attachment name, quoting, formula escaping, integers.
async fn export_csv_quotes_and_escapes(app: TestApp) {
    let (token, project, key, key_id) = admin_with_key(&app).await;
    let tenant = app.tenant_of(&token).await;
    make_calls(&app, &key, &key_id, 2).await;
    let hostile = uuid_n(0xffff_fff0, 1);
    app.exec(&format!(
        "INSERT INTO calls (id, at, tenant_id, project_id, key_id, mode, shape, requested_model, delivered_model,
         input_tokens, output_tokens, burn_tokens, status, error_code)
         VALUES ('{hostile}', {}, '{tenant}', '{project}', '{key_id}', 'dev', 'openai', '=cmd|'' /C calc''!A0',
         '+evil, \"quoted\"', 9007199254740993, 5, 12, 502, '@risk\nline')",
        now_ms() + 1000
    ))
    .await;

    let resp = app
        .client
        .get(app.url(&format!("{EXPORT}?format=csv")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let a = TestApp::answer(resp).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.header("content-type").unwrap().starts_with("text/csv"));
    let disposition = a.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"tokenone-call-log-") && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    assert!(a.text.contains("\r\n"));
    let rows = parse_csv(&a.text);
    assert_eq!(rows[0], EXPORT_COLUMNS);
    assert_eq!(rows.len(), 4, "header and three calls: {}", a.text);
    for r in &rows {
        assert_eq!(r.len(), 25, "{r:?}");
    }
    let col = |name: &str| EXPORT_COLUMNS.iter().position(|c| *c == name).unwrap();
    let first = &rows[1];
    assert_eq!(first[col("id")], hostile, "newest first");
    assert_eq!(first[col("requestedModel")], "'=cmd|' /C calc'!A0");
    assert_eq!(first[col("deliveredModel")], "'+evil, \"quoted\"");
    assert_eq!(first[col("errorCode")], "'@risk\nline");
    assert_eq!(first[col("inputTokens")], "9007199254740993", "exact integers");
    assert_eq!(first[col("burnTokens")], "12");
    assert_eq!(first[col("status")], "502");
    assert_eq!(first[col("routed")], "false");
    assert_eq!(first[col("requestedTier")], "");
    // The raw text has the quoting of RFC 4180.
    assert!(a.text.contains(",\"'+evil, \"\"quoted\"\"\","), "{}", a.text);
    assert!(a.text.contains(",\"'@risk\nline\"\r\n"), "{}", a.text);
    for r in &rows[2..] {
        assert_eq!(r[col("requestedModel")], "gpt-4o-mini");
        assert_eq!(r[col("mode")], "dev");
        assert_eq!(r[col("tenantId")], tenant);
        assert!(r[col("at")].ends_with('Z'));
        for f in TOKEN_FIELDS {
            r[col(f)]
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{f}: {:?}", r[col(f)]));
        }
    }
    assert!(rows[2][col("at")] >= rows[3][col("at")]);
    // The export itself is audited.
    let audit = app
        .rows("SELECT * FROM audit_log WHERE action = 'calllog.export'")
        .await;
    assert_eq!(audit.len(), 1);
    assert!(audit[0]["new_value"].as_str().unwrap().contains("\"csv\""));
}

/// The JSON export: envelope, fields, token figures as strings, order, filters, validation.
async fn export_json_filters_and_validation(app: TestApp) {
    let (token, _, key, key_id) = admin_with_key(&app).await;
    let tenant = app.tenant_of(&token).await;
    make_calls(&app, &key, &key_id, 3).await;
    let (other, _, other_tenant) = app.register("other-tenant@example.com").await;
    let other_project = app.create_project(&other, "Other").await;
    let (other_key, other_key_id) = app
        .create_key(&other, &other_project, json!({"name": "dev", "mode": "dev"}))
        .await;
    make_calls(&app, &other_key, &other_key_id, 2).await;
    // An old call, outside a short window.
    app.exec(&format!(
        "INSERT INTO calls (id, at, tenant_id, project_id, key_id, mode, shape, requested_model, status)
         VALUES ('{}', {}, '{tenant}', 'p', '{key_id}', 'live', 'openai', 'old-model', 200)",
        uuid_n(1, 1),
        now_ms() - 3 * 86_400_000
    ))
    .await;

    let a = app.get(EXPORT, Some(&token)).await;
    assert_eq!(a.header("content-type"), Some("application/json"));
    let data = a.assert_ok(200).as_array().unwrap().clone();
    assert_eq!(data.len(), 6);
    for row in &data {
        let fields: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = EXPORT_COLUMNS.to_vec();
        let mut got = fields.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        for f in TOKEN_FIELDS {
            let s = row[f].as_str().unwrap_or_else(|| panic!("{f} is not a string: {row}"));
            s.parse::<u64>().unwrap();
        }
        assert!(row["latencyMs"].is_i64() && row["status"].is_i64(), "{row}");
        assert!(row["routed"].is_boolean() && row["usageEstimated"].is_boolean());
    }
    let ats: Vec<&str> = data.iter().map(|r| r["at"].as_str().unwrap()).collect();
    let mut sorted = ats.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ats, sorted, "newest first");
    assert_eq!(data[5]["requestedModel"], "old-model");

    let count = |q: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            let a = app.get(&format!("{EXPORT}?{q}"), Some(&token)).await;
            a.assert_ok(200).as_array().unwrap().clone()
        }
    };
    assert_eq!(count("days=1").await.len(), 5);
    assert_eq!(count("days=365&limit=2").await.len(), 2);
    assert_eq!(count("limit=1").await[0]["id"], data[0]["id"]);
    assert_eq!(count("mode=live").await.len(), 1);
    assert_eq!(count("mode=dev").await.len(), 5);
    assert_eq!(count("mode=all&format=json&tenant=all").await.len(), 6);
    let only_other = app.get(&format!("{EXPORT}?tenant={other_tenant}"), Some(&token)).await;
    let only_other = only_other.assert_ok(200).as_array().unwrap().clone();
    assert_eq!(only_other.len(), 2);
    assert!(only_other.iter().all(|r| r["tenantId"] == other_tenant.as_str()));
    let mine = app
        .get(&format!("{EXPORT}?tenant={tenant}&mode=dev"), Some(&token))
        .await;
    assert_eq!(mine.assert_ok(200).as_array().unwrap().len(), 3);
    app.get(
        &format!("{EXPORT}?tenant=00000000-0000-7000-8000-000000000000"),
        Some(&token),
    )
    .await
    .assert_error(404, "not_found");

    for q in [
        "days=0",
        "days=366",
        "days=-1",
        "days=abc",
        "limit=0",
        "limit=100001",
        "limit=x",
        "tenant=nope",
        "format=xml",
        "format=CSV",
        "mode=test",
        "colour=blue",
    ] {
        app.get(&format!("{EXPORT}?{q}"), Some(&token))
            .await
            .assert_error(400, "invalid_request");
    }
    assert_eq!(count("days=365&limit=100000").await.len(), 6);
}

/// The export streams in pages: many rows, ties on `at` across page boundaries, exact limits.
async fn export_pages_through_many_rows(app: TestApp) {
    let (token, project, _, key_id) = admin_with_key(&app).await;
    let tenant = app.tenant_of(&token).await;
    let base = now_ms() - 60_000;
    let n: u64 = 1_234;
    let values: Vec<String> = (0..n)
        .map(|i| {
            // Three calls share each timestamp, so pages end inside a tie.
            let at = base + (i / 3) as i64;
            format!(
                "('{}', {at}, '{tenant}', '{project}', '{key_id}', 'dev', 'openai', 'm-{i}', {i}, 200)",
                uuid_n(2, i)
            )
        })
        .collect();
    app.exec(&format!(
        "INSERT INTO calls (id, at, tenant_id, project_id, key_id, mode, shape, requested_model, input_tokens, status)
         VALUES {}",
        values.join(", ")
    ))
    .await;
    let expected: Vec<String> = (0..n).rev().map(|i| uuid_n(2, i)).collect();

    let a = app.get(&format!("{EXPORT}?limit=100000"), Some(&token)).await;
    let data = a.assert_ok(200).as_array().unwrap().clone();
    let ids: Vec<&str> = data.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, expected, "every row once, newest first, ties by id");
    assert_eq!(data[0]["inputTokens"], (n - 1).to_string());

    for limit in [1usize, 499, 500, 501, 1000, 1233] {
        let a = app.get(&format!("{EXPORT}?limit={limit}"), Some(&token)).await;
        let data = a.assert_ok(200).as_array().unwrap().clone();
        let ids: Vec<&str> = data.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, expected[..limit], "limit {limit}");
    }
    let resp = app
        .client
        .get(app.url(&format!("{EXPORT}?format=csv&limit=100000")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    let rows = parse_csv(&text);
    assert_eq!(rows.len() as u64, n + 1);
    let csv_ids: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(csv_ids, expected);
}

/// The audit log: shape, newest first, cursor pagination, action filter, validation.
async fn audit_log_pages_and_filters(app: TestApp) {
    let token = app.admin_token().await;
    for v in [10, 11, 12] {
        set(&app, &token, "ratelimit.anthropic_per_minute", json!(v))
            .await
            .assert_ok(200);
    }
    put(
        &app,
        "/api/admin/commercial-levers/upstream_markup_pct",
        Some(&token),
        json!({"value": 0.25, "reason": "new markup"}),
    )
    .await
    .assert_ok(200);
    let resp = app
        .client
        .delete(app.url("/api/admin/settings/ratelimit.anthropic_per_minute"))
        .bearer_auth(&token)
        .header("x-request-id", "audit-test-request-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let all = app.get("/api/admin/audit-log?limit=200", Some(&token)).await;
    let all = all.assert_ok(200);
    assert!(all["nextCursor"].is_null());
    let items = all["items"].as_array().unwrap().clone();
    let ours: Vec<&str> = items
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .filter(|a| a.starts_with("settings.") || a.starts_with("lever."))
        .collect();
    assert_eq!(
        ours,
        [
            "settings.reset",
            "lever.update",
            "settings.update",
            "settings.update",
            "settings.update"
        ],
        "newest first"
    );
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted);
    let newest = &items[0];
    let fields: HashSet<&str> = newest.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        HashSet::from([
            "id",
            "at",
            "actor",
            "action",
            "target",
            "oldValue",
            "newValue",
            "reason",
            "requestId"
        ])
    );
    assert_eq!(newest["action"], "settings.reset");
    assert_eq!(newest["target"], "setting:ratelimit.anthropic_per_minute");
    assert_eq!(newest["oldValue"], 12);
    assert_eq!(newest["newValue"], 60);
    assert_eq!(newest["requestId"], "audit-test-request-1");
    assert_eq!(newest["actor"]["email"], tokenone_testkit::ADMIN_EMAIL);
    assert!(newest["at"].as_str().unwrap().ends_with('Z'));
    let lever = &items[1];
    assert_eq!(lever["reason"], "new markup");
    assert_eq!(lever["oldValue"], "0.1");
    assert_eq!(lever["newValue"], "0.25");

    // Pages of two chain through nextCursor to the same list.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/admin/audit-log?limit=2&cursor={c}"),
            None => "/api/admin/audit-log?limit=2".to_string(),
        };
        let page = app.get(&path, Some(&token)).await;
        let page = page.assert_ok(200).clone();
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= 2);
        paged.extend(got.iter().map(|i| i["id"].as_str().unwrap().to_string()));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(paged.len() <= items.len(), "pagination does not end");
    }
    assert_eq!(paged, ids);

    let f = app
        .get("/api/admin/audit-log?action=settings.update&limit=2", Some(&token))
        .await;
    let f = f.assert_ok(200);
    let got = f["items"].as_array().unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|i| i["action"] == "settings.update"));
    assert_eq!(got[0]["newValue"], 12);
    let c = f["nextCursor"].as_str().unwrap();
    let f2 = app
        .get(
            &format!("/api/admin/audit-log?action=settings.update&limit=2&cursor={c}"),
            Some(&token),
        )
        .await;
    let f2 = f2.assert_ok(200);
    assert_eq!(f2["items"].as_array().unwrap().len(), 1);
    assert_eq!(f2["items"][0]["newValue"], 10);
    assert_eq!(f2["items"][0]["oldValue"], 60);
    assert!(f2["nextCursor"].is_null());
    let none = app.get("/api/admin/audit-log?action=nothing.ever", Some(&token)).await;
    assert_eq!(none.assert_ok(200)["items"], json!([]));

    for q in ["limit=0", "limit=201", "cursor=not-an-id", "limit=x", "other=1"] {
        app.get(&format!("/api/admin/audit-log?{q}"), Some(&token))
            .await
            .assert_error(400, "invalid_request");
    }
}

/// Tenants with their user, project and balance figures.
async fn tenants_list_figures(app: TestApp) {
    let token = app.admin_token().await;
    let (alice, _, alice_tenant) = app.register("alice@example.com").await;
    let (_, _, bob_tenant) = app.register("bob@example.com").await;
    app.create_project(&alice, "One").await;
    app.create_project(&alice, "Two").await;
    app.topup(&alice_tenant, 5_000).await;
    let a = app.get("/api/admin/tenants", Some(&token)).await;
    let list = a.assert_ok(200).as_array().unwrap().clone();
    assert_eq!(list.len(), 3, "the admin's tenant and two more");
    let find = |id: &str| list.iter().find(|t| t["id"] == id).unwrap().clone();
    let alice_row = find(&alice_tenant);
    let fields: HashSet<&str> = alice_row.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        HashSet::from(["id", "name", "createdAt", "users", "projects", "balanceTokens"])
    );
    assert_eq!(alice_row["users"], 1);
    assert_eq!(alice_row["projects"], 2);
    assert_eq!(alice_row["balanceTokens"], "5000");
    assert!(alice_row["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(!alice_row["name"].as_str().unwrap().is_empty());
    let bob_row = find(&bob_tenant);
    assert_eq!(bob_row["users"], 1);
    assert_eq!(bob_row["projects"], 0);
    assert_eq!(bob_row["balanceTokens"], "0");
}

/// The runtime status has exactly the documented shape and no secrets.
async fn runtime_status_shape(app: TestApp) {
    let token = app.admin_token().await;
    let a = app.get(STATUS, Some(&token)).await;
    let st = a.assert_ok(200).clone();
    let fields: HashSet<&str> = st.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        HashSet::from([
            "version",
            "startedAt",
            "uptimeSeconds",
            "replicaId",
            "database",
            "redis",
            "providers",
            "router",
            "leversVersion",
            "rateLimits",
            "settingsOverridden"
        ])
    );
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));
    assert!(st["startedAt"].as_str().unwrap().ends_with('Z'));
    assert!(st["uptimeSeconds"].as_i64().unwrap() >= 0);
    assert!(!st["replicaId"].as_str().unwrap().is_empty());
    let backend = match app.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(st["database"], json!({"backend": backend, "ok": true}));
    let with_redis = app.backend == Backend::Postgres;
    assert_eq!(st["redis"], json!({"configured": with_redis, "ok": with_redis}));
    let providers = st["providers"].as_array().unwrap();
    let names: Vec<&str> = providers.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["openai", "anthropic", "gemini", "fireworks", "openrouter"]);
    for p in providers {
        let fields: HashSet<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(fields, HashSet::from(["name", "configured", "baseUrl", "circuit"]));
        assert_eq!(p["circuit"], "closed");
        assert_eq!(p["configured"], false, "no API keys in the test configuration");
    }
    assert_eq!(providers[0]["baseUrl"], "https://api.openai.com/v1");
    assert_eq!(st["router"], json!({"mode": "on", "rolloutPct": 100}));
    assert!(st["leversVersion"].is_i64());
    assert_eq!(st["rateLimits"], json!({"anthropic": 60, "openai": 120, "gemini": 60}));
    assert_eq!(st["settingsOverridden"], json!([]));

    set(
        &app,
        &token,
        "providers.gemini.base_url",
        json!("http://127.0.0.1:9/v1beta"),
    )
    .await
    .assert_ok(200);
    set(&app, &token, "providers.gemini.api_key", json!("gm-secret-value-7777"))
        .await
        .assert_ok(200);
    let a = app.get(STATUS, Some(&token)).await;
    assert!(!a.text.contains("gm-secret-value-7777"));
    let st = a.assert_ok(200);
    let gemini = &st["providers"][2];
    assert_eq!(gemini["baseUrl"], "http://127.0.0.1:9/v1beta");
    assert_eq!(gemini["configured"], true);
    assert_eq!(
        st["settingsOverridden"],
        json!(["providers.gemini.api_key", "providers.gemini.base_url"])
    );
}

both_backends!(
    admin_routes_need_a_platform_admin,
    settings_list_and_validation,
    secret_settings_are_sealed_and_masked,
    settings_take_effect_and_reset,
    changes_reach_other_replicas,
    levers_validation_history_and_audit,
    export_csv_quotes_and_escapes,
    export_json_filters_and_validation,
    export_pages_through_many_rows,
    audit_log_pages_and_filters,
    tenants_list_figures,
    runtime_status_shape,
);
