//! Connectors (connectors.md): the public catalogue, the OAuth round trip with PKCE against a mock
//! provider (and every refused callback), database connect against the real PostgreSQL and MySQL
//! of this machine and every refused form, list/revoke with roles, the vault (binding and
//! rotation), and the proof that planted secrets appear nowhere in plaintext.

use reqwest::header;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokenone_core::config::Config;
use tokenone_core::secret::Secret;
use tokenone_testkit::oauth::{MockOAuth, CLIENT_ID, CLIENT_SECRET};
use tokenone_testkit::{both_backends, pg_server_url, Answer, Backend, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Registers a tenant owner with a project: (token, user id, project id).
async fn owner_with_project(app: &TestApp, email: &str) -> (String, String, String) {
    let (token, user, _) = app.register(email).await;
    let pid = app.create_project(&token, "Connected").await;
    (token, user, pid)
}

/// The app again, with the github and gitlab OAuth apps pointed at `mock` (the given app is
/// stopped: its configuration cannot change).
async fn with_mock(app: TestApp, mock: &MockOAuth, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let backend = app.backend;
    app.stop().await;
    TestApp::spawn_with(backend, |c| {
        for ty in ["github", "gitlab"] {
            mock.configure(c.connectors.apps.get_mut(ty).expect("built-in app"));
        }
        tweak(c);
    })
    .await
}

async fn restart(app: TestApp, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let backend = app.backend;
    app.stop().await;
    TestApp::spawn_with(backend, tweak).await
}

async fn authorize(app: &TestApp, token: &str, ty: &str, pid: &str) -> Answer {
    app.post(
        &format!("/api/connectors/{ty}/authorize"),
        Some(token),
        json!({"projectId": pid}),
    )
    .await
}

/// Authorises and consents at the mock: the callback URL the browser is sent back to.
async fn consent(app: &TestApp, mock: &MockOAuth, token: &str, ty: &str, pid: &str) -> String {
    let a = authorize(app, token, ty, pid).await;
    let url = s(&a.assert_ok(200)["url"]).to_string();
    mock.consent(&url).await
}

/// GETs an absolute URL (the callback) with an optional bearer session and JSON `Accept`.
async fn follow(app: &TestApp, url: &str, bearer: Option<&str>, json: bool) -> Answer {
    let mut req = app.client.get(url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if json {
        req = req.header(header::ACCEPT, "application/json");
    }
    TestApp::answer(req.send().await.expect("callback")).await
}

async fn list(app: &TestApp, token: &str, pid: &str) -> Vec<Value> {
    let a = app.get(&format!("/api/connectors/{pid}"), Some(token)).await;
    a.assert_ok(200).as_array().expect("array").clone()
}

async fn stored_connectors(app: &TestApp) -> i64 {
    app.rows("SELECT COUNT(*) AS n FROM connectors").await[0]["n"]
        .as_i64()
        .expect("count")
}

/// The query parameters of a URL.
fn query(url: &str) -> std::collections::HashMap<String, String> {
    reqwest::Url::parse(url)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
}

const CONNECTOR_KEYS: [&str; 11] = [
    "id",
    "projectId",
    "type",
    "category",
    "name",
    "display",
    "status",
    "scopes",
    "createdAt",
    "createdBy",
    "lastUsedAt",
];

fn assert_connector_shape(c: &Value) {
    let obj = c.as_object().expect("object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    let mut want = CONNECTOR_KEYS.to_vec();
    want.sort();
    assert_eq!(keys, want, "{c}");
}

// ---------------------------------------------------------------------------------------------

async fn public_catalogue(app: TestApp) {
    let a = app.get("/api/connectors/_public/providers", None).await;
    let list = a.assert_ok(200).as_array().expect("array").clone();
    let want = [
        ("github", "git", "oauth2"),
        ("gitlab", "git", "oauth2"),
        ("bitbucket", "git", "oauth2"),
        ("jira", "issue", "oauth2"),
        ("linear", "issue", "oauth2"),
        ("notion", "docs", "oauth2"),
        ("confluence", "docs", "oauth2"),
        ("google-drive", "docs", "oauth2"),
        ("slack", "chat", "oauth2"),
        ("postgres", "database", "connection_string"),
        ("mysql", "database", "connection_string"),
    ];
    assert_eq!(list.len(), want.len(), "{list:?}");
    for (ty, category, auth) in want {
        let p = list
            .iter()
            .find(|p| p["type"] == ty)
            .unwrap_or_else(|| panic!("{ty} missing"));
        assert_eq!(p["category"], category, "{p}");
        assert_eq!(p["auth"], auth, "{p}");
        assert!(p["name"].as_str().is_some_and(|n| !n.is_empty()), "{p}");
        assert!(p["scopes"].is_array(), "{p}");
        assert_eq!(p["configured"], json!(auth == "connection_string"), "{p}");
    }
    let gh = list.iter().find(|p| p["type"] == "github").unwrap();
    assert_eq!(gh["scopes"], json!(["repo", "read:user"]));
    // An operator configures an OAuth app through the settings API: the catalogue says so.
    let admin = app.admin_token().await;
    for (k, v) in [
        ("connectors.slack.client_id", "slack-client"),
        ("connectors.slack.client_secret", "slack-secret-value"),
    ] {
        app.post("/api/admin/settings", Some(&admin), json!({"key": k, "value": v}))
            .await
            .assert_ok(200);
    }
    let list = app.get("/api/connectors/_public/providers", None).await;
    let slack = list
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "slack")
        .unwrap()
        .clone();
    assert_eq!(slack["configured"], json!(true), "{slack}");
    assert!(!list.text.contains("slack-secret-value"));
}

async fn oauth_flow_end_to_end(app: TestApp) {
    let mock = MockOAuth::start().await;
    let app = with_mock(app, &mock, |_| {}).await;
    let (token, user, pid) = owner_with_project(&app, "oauth@example.com").await;

    let a = authorize(&app, &token, "github", &pid).await;
    let d = a.assert_ok(200).clone();
    let url = s(&d["url"]).to_string();
    assert!(url.starts_with(&mock.authorize_url()), "{url}");
    let q = query(&url);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["redirect_uri"], app.url("/api/connectors/oauth/github/callback"));
    assert_eq!(q["scope"], "repo read:user");
    assert_eq!(q["state"], s(&d["state"]));
    assert!(q["state"].len() >= 22, "state of at least 128 bits");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    let expires = tokenone_core::time::parse_rfc3339(s(&d["expiresAt"])).expect("timestamp");
    let ttl = expires - tokenone_core::time::now_ms();
    assert!((595_000..=600_000).contains(&ttl), "10-minute state, got {ttl} ms");
    // Only the state's hash is stored, and no verifier in the clear.
    let states = app.rows("SELECT state_hash, provider FROM oauth_states").await;
    assert_eq!(states.len(), 1);
    assert_ne!(states[0]["state_hash"], json!(q["state"]));
    assert!(!a.text.contains("verifier"));

    // The browser consents at the provider and comes back.
    let back = mock.consent(&url).await;
    assert!(
        back.starts_with(&app.url("/api/connectors/oauth/github/callback?")),
        "{back}"
    );
    let done = follow(&app, &back, None, false).await;
    assert_eq!(done.status, 302, "{}", done.text);
    assert_eq!(
        done.header("location"),
        Some(
            app.url(&format!("/projects/{pid}/integrations?connected=github"))
                .as_str()
        )
    );
    assert_eq!(mock.token_counts(), (1, 1), "rejections: {:?}", mock.rejections());
    let conns = list(&app, &token, &pid).await;
    assert_eq!(conns.len(), 1, "{conns:?}");
    let c = &conns[0];
    assert_connector_shape(c);
    assert_eq!(c["type"], "github");
    assert_eq!(c["category"], "git");
    assert_eq!(c["name"], "GitHub");
    assert_eq!(c["status"], "active");
    assert_eq!(c["projectId"], json!(pid));
    assert_eq!(c["createdBy"], json!(user));
    assert_eq!(c["scopes"], json!(["repo", "read:user"]));
    assert_eq!(c["lastUsedAt"], Value::Null);
    assert!(app.rows("SELECT * FROM oauth_states").await.is_empty(), "state spent");
    let sealed = app
        .rows("SELECT COUNT(*) AS n FROM connectors WHERE sealed IS NOT NULL AND status = 'active'")
        .await;
    assert_eq!(sealed[0]["n"], 1);
    let audit = app
        .rows("SELECT actor_id, target FROM audit_log WHERE action = 'connector.connected'")
        .await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["actor_id"], json!(user));

    // The same round trip asking for JSON answers the envelope with the connector; a session of
    // the same user is fine.
    let back = consent(&app, &mock, &token, "gitlab", &pid).await;
    let done = follow(&app, &back, Some(&token), true).await;
    let c = done.assert_ok(200).clone();
    assert_connector_shape(&c);
    assert_eq!(c["type"], "gitlab");
    assert!(!done.text.contains(&mock.access_token()));
    assert_eq!(list(&app, &token, &pid).await.len(), 2);
    assert!(mock.rejections().is_empty(), "{:?}", mock.rejections());

    // The sealed token opens in its own row only: moved to another row, it does not.
    let ids: Vec<String> = conns
        .iter()
        .chain(std::iter::once(&c))
        .map(|c| s(&c["id"]).to_string())
        .collect();
    let mut cfg = Config::default();
    cfg.database.url = Secret::new(app.db_url.clone());
    cfg.database.max_connections = 2;
    cfg.vault.master_key = Secret::new(app.master_key.clone());
    cfg.storage.cold_dir = app.dir.path().join("cold").display().to_string();
    let state = tokenone_server::build_state(cfg).await.expect("state");
    let project = pid.parse().unwrap();
    let plain = state
        .connectors
        .open_credential(project, ids[0].parse().unwrap())
        .await
        .expect("opens in place");
    let token_json: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(token_json["access_token"], json!(mock.access_token()));
    app.exec(&format!(
        "UPDATE connectors SET sealed = (SELECT sealed FROM connectors WHERE id = '{}') WHERE id = '{}'",
        ids[0], ids[1]
    ))
    .await;
    assert!(state
        .connectors
        .open_credential(project, ids[1].parse().unwrap())
        .await
        .is_err());
}

async fn oauth_refusals_store_nothing(app: TestApp) {
    let mock = MockOAuth::start().await;
    let app = with_mock(app, &mock, |_| {}).await;
    let (ann, _, pid) = owner_with_project(&app, "ann@example.com").await;
    let (bob, _, _) = app.register("bob@example.com").await;

    // The user refuses at the provider: redirected with the error, nothing stored, no exchange.
    mock.deny_next_authorize("access_denied");
    let back = consent(&app, &mock, &ann, "github", &pid).await;
    assert_eq!(query(&back)["error"], "access_denied");
    let done = follow(&app, &back, None, false).await;
    assert_eq!(done.status, 302, "{}", done.text);
    assert_eq!(
        done.header("location"),
        Some(
            app.url(&format!("/projects/{pid}/integrations?error=access_denied"))
                .as_str()
        )
    );
    mock.deny_next_authorize("access_denied");
    let back = consent(&app, &mock, &ann, "github", &pid).await;
    follow(&app, &back, None, true)
        .await
        .assert_error(400, "connector_authorization_failed");
    assert_eq!(mock.token_counts().0, 0);

    // The token endpoint fails: nothing stored.
    mock.fail_next_token(500, json!({"error": "server_error"}));
    let back = consent(&app, &mock, &ann, "github", &pid).await;
    let done = follow(&app, &back, None, false).await;
    assert_eq!(
        done.header("location"),
        Some(
            app.url(&format!("/projects/{pid}/integrations?error=exchange_failed"))
                .as_str()
        )
    );
    mock.fail_next_token(200, json!({"error": "bad_verification_code"}));
    let back = consent(&app, &mock, &ann, "github", &pid).await;
    follow(&app, &back, None, true)
        .await
        .assert_error(400, "connector_authorization_failed");
    assert_eq!(stored_connectors(&app).await, 0);

    // Unknown state.
    let back = consent(&app, &mock, &ann, "github", &pid).await;
    let mut forged = reqwest::Url::parse(&back).unwrap();
    let code = query(&back)["code"].clone();
    forged
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", "bm90LWEtc3RhdGUtd2UtaXNzdWVkLWV2ZXI");
    follow(&app, forged.as_str(), None, false)
        .await
        .assert_error(400, "invalid_state");
    // Missing state or code.
    let cb = app.url("/api/connectors/oauth/github/callback");
    follow(&app, &format!("{cb}?code=x"), None, false)
        .await
        .assert_error(400, "invalid_request");
    follow(&app, &format!("{cb}?state=x"), None, false)
        .await
        .assert_error(400, "invalid_request");
    // An unknown provider's callback.
    follow(
        &app,
        &app.url("/api/connectors/oauth/myspace/callback?code=x&state=y"),
        None,
        false,
    )
    .await
    .assert_error(404, "not_found");

    // Expired state (its expiry moved into the past).
    let back = consent(&app, &mock, &ann, "github", &pid).await;
    app.exec("UPDATE oauth_states SET expires_at = 1").await;
    follow(&app, &back, None, false)
        .await
        .assert_error(400, "invalid_state");

    // Cross-provider: a github state presented to the gitlab callback.
    let back = consent(&app, &mock, &ann, "github", &pid).await;
    let cross = back.replace("/oauth/github/", "/oauth/gitlab/");
    follow(&app, &cross, None, false)
        .await
        .assert_error(400, "invalid_state");
    // ... and it is spent: not usable on its own provider afterwards either.
    follow(&app, &back, None, false)
        .await
        .assert_error(400, "invalid_state");

    // Another user's session (bearer, then cookie) with ann's state.
    let back = consent(&app, &mock, &ann, "github", &pid).await;
    follow(&app, &back, Some(&bob), false)
        .await
        .assert_error(400, "invalid_state");
    let back = consent(&app, &mock, &ann, "github", &pid).await;
    let resp = app
        .client
        .get(&back)
        .header(header::COOKIE, format!("accessToken={bob}"))
        .send()
        .await
        .unwrap();
    TestApp::answer(resp).await.assert_error(400, "invalid_state");
    assert_eq!(stored_connectors(&app).await, 0, "no refusal stored anything");

    // Reused state: the first use connects, the replay is refused.
    let back = consent(&app, &mock, &ann, "github", &pid).await;
    assert_eq!(follow(&app, &back, None, false).await.status, 302);
    follow(&app, &back, None, false)
        .await
        .assert_error(400, "invalid_state");
    assert_eq!(stored_connectors(&app).await, 1);
    assert_eq!(list(&app, &ann, &pid).await.len(), 1);
    // The exchanges that did happen were all valid at the provider (PKCE, client, redirect).
    assert!(mock.rejections().is_empty(), "{:?}", mock.rejections());
}

async fn authorize_rules(app: TestApp) {
    let mock = MockOAuth::start().await;
    let app = with_mock(app, &mock, |_| {}).await;
    let (ann, _, pid) = owner_with_project(&app, "ann@example.com").await;
    let (eve, _, _) = app.register("eve@example.com").await;
    authorize(&app, &ann, "myspace", &pid)
        .await
        .assert_error(404, "not_found");
    authorize(&app, &ann, "postgres", &pid)
        .await
        .assert_error(404, "not_found");
    authorize(&app, &ann, "slack", &pid)
        .await
        .assert_error(400, "connector_unconfigured");
    authorize(&app, &eve, "github", &pid)
        .await
        .assert_error(404, "not_found");
    authorize(&app, &ann, "github", "not-a-uuid")
        .await
        .assert_error(404, "not_found");
    let a = app
        .post("/api/connectors/github/authorize", None, json!({"projectId": pid}))
        .await;
    a.assert_error(401, "unauthenticated");
    app.post(
        "/api/connectors/github/authorize",
        Some(&ann),
        json!({"projectId": pid, "tenantId": "x"}),
    )
    .await
    .assert_error(400, "invalid_request");
    // A viewer may not start one; a developer may.
    let viewer = join(&app, &ann, &pid, "vic@example.com", "viewer").await;
    authorize(&app, &viewer, "github", &pid)
        .await
        .assert_error(403, "forbidden");
    let dev = join(&app, &ann, &pid, "dev@example.com", "developer").await;
    authorize(&app, &dev, "github", &pid).await.assert_ok(200);
}

/// Invites `email` with `role` and accepts: the new member's token.
async fn join(app: &TestApp, inviter: &str, pid: &str, email: &str, role: &str) -> String {
    let inv = app
        .post(
            &format!("/api/projects/{pid}/members"),
            Some(inviter),
            json!({"email": email, "role": role}),
        )
        .await;
    let url = s(&inv.assert_ok(201)["inviteUrl"]).to_string();
    let token = url
        .split("token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let a = app
        .post(
            "/api/invites/accept",
            None,
            json!({"token": token, "name": "Joiner", "password": "joiner-password-1"}),
        )
        .await;
    s(&a.assert_ok(200)["tokens"]["accessToken"]).to_string()
}

/// `postgres://postgres:<password>@127.0.0.1:5432/test` from the test server's URL.
fn pg_test_url(password: &str) -> String {
    let mut u = reqwest::Url::parse(&format!("{}/test", pg_server_url())).expect("pg url");
    u.set_password(Some(password)).expect("password");
    u.to_string()
}

async fn connect_db(app: &TestApp, token: &str, pid: &str, name: &str, conn: &str, test: bool) -> Answer {
    app.post(
        "/api/connectors/database/connect",
        Some(token),
        json!({"projectId": pid, "name": name, "connectionString": conn, "test": test}),
    )
    .await
}

async fn database_connect_real_servers(app: TestApp) {
    let app = restart(app, |c| c.connectors.allow_private_networks = true).await;
    let (ann, user, pid) = owner_with_project(&app, "ann@example.com").await;
    let conn = pg_test_url("pg-password-1");
    let a = connect_db(&app, &ann, &pid, "Sales DB", &conn, true).await;
    let c = a.assert_ok(201).clone();
    assert_connector_shape(&c);
    assert_eq!(c["type"], "postgres");
    assert_eq!(c["category"], "database");
    assert_eq!(c["name"], "Sales DB");
    assert_eq!(c["status"], "active");
    assert_eq!(c["scopes"], json!([]));
    assert_eq!(c["createdBy"], json!(user));
    let u = reqwest::Url::parse(&conn).unwrap();
    let want = format!(
        "postgres://{}@{}:{}/test",
        u.username(),
        u.host_str().unwrap(),
        u.port().unwrap_or(5432)
    );
    assert_eq!(c["display"], json!(want));
    assert!(!a.text.contains("pg-password-1"));

    // MariaDB on this machine, through the MySQL driver.
    let a = connect_db(&app, &ann, &pid, "Shop", "mysql://root@127.0.0.1:3306/test", true).await;
    let m = a.assert_ok(201);
    assert_eq!(m["type"], "mysql");
    assert_eq!(m["display"], "mysql://root@127.0.0.1:3306/test");

    // Failed tests are 400 with one generic message, whatever went wrong.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut messages = Vec::new();
    for bad in [
        format!("postgres://postgres:pw@127.0.0.1:{closed}/test"),
        format!("{}/no_such_database_here", pg_server_url()),
        "postgres://no_such_role@127.0.0.1:5432/test".to_string(),
        "mysql://root:wrong-password@127.0.0.1:3306/test".to_string(),
        "mysql://root@127.0.0.1:5432/test".to_string(),
    ] {
        let a = connect_db(&app, &ann, &pid, "Bad", &bad, true).await;
        a.assert_error(400, "connector_test_failed");
        messages.push(a.body["error"].clone());
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "generic message: {messages:?}");
    // Without `test`, nothing connects: the same closed port is stored.
    connect_db(
        &app,
        &ann,
        &pid,
        "Later",
        &format!("postgres://app@127.0.0.1:{closed}/x"),
        false,
    )
    .await
    .assert_ok(201);
    assert_eq!(list(&app, &ann, &pid).await.len(), 3);
}

/// Every refused form of a connection string and what it answers (all before connecting).
const REFUSED: &[(&str, &str)] = &[
    // Schemes and shape.
    ("http://u@db.example.com/x", "invalid_request"),
    ("sqlite:///var/lib/db.sqlite", "invalid_request"),
    ("file:///etc/passwd", "invalid_request"),
    ("jdbc:postgresql://db.example.com/x", "invalid_request"),
    ("postgres://:pw@db.example.com/x", "invalid_request"),
    ("postgres://u@db.example.com:0/x", "invalid_request"),
    // Parameters that read local files or sockets.
    ("postgres://u@8.8.8.8/x?sslrootcert=/etc/passwd", "connector_refused"),
    ("postgres://u@8.8.8.8/x?sslcert=/tmp/c.pem", "connector_refused"),
    ("postgres://u@8.8.8.8/x?sslkey=/tmp/k.pem", "connector_refused"),
    ("postgres://u@8.8.8.8/x?sslcrl=/tmp/crl.pem", "connector_refused"),
    ("postgres://u@8.8.8.8/x?passfile=/root/.pgpass", "connector_refused"),
    ("postgres://u@8.8.8.8/x?service=prod", "connector_refused"),
    ("postgres://u@8.8.8.8/x?servicefile=x", "connector_refused"),
    ("postgres://u@8.8.8.8/x?host=/var/run/postgresql", "connector_refused"),
    ("postgres://u@8.8.8.8/x?host=127.0.0.1", "connector_refused"),
    ("postgres://u@8.8.8.8/x?hostaddr=127.0.0.1", "connector_refused"),
    ("postgres://u@8.8.8.8/x?SSLROOTCERT=x", "connector_refused"),
    ("postgres://u@8.8.8.8/x?ssl%72ootcert=x", "connector_refused"),
    (
        "postgres://u@8.8.8.8/x?application_name=/etc/passwd",
        "connector_refused",
    ),
    ("postgres://u@%2Fvar%2Frun%2Fpostgresql/x", "connector_refused"),
    ("postgres://u@/x", "connector_refused"),
    ("mysql://u@8.8.8.8/x?local_infile=1", "connector_refused"),
    ("mysql://u@8.8.8.8/x?allowLoadLocalInfile=true", "connector_refused"),
    ("mysql://u@8.8.8.8/x?allowLoadLocalInfileInPath=/", "connector_refused"),
    (
        "mysql://u@8.8.8.8/x?socket=/run/mysqld/mysqld.sock",
        "connector_refused",
    ),
    ("mariadb://u@8.8.8.8/x?ssl-ca=/etc/ssl/ca.pem", "connector_refused"),
    // Loopback, private, link-local, metadata, unspecified, multicast — in every spelling.
    ("postgres://u@127.0.0.1/x", "connector_refused"),
    ("postgres://u@127.1/x", "connector_refused"),
    ("postgres://u@2130706433/x", "connector_refused"),
    ("postgres://u@0x7f000001/x", "connector_refused"),
    ("postgres://u@0177.0.0.1/x", "connector_refused"),
    ("postgres://u@localhost/x", "connector_refused"),
    ("postgres://u@LocalHost./x", "connector_refused"),
    ("postgres://u@db.localhost/x", "connector_refused"),
    ("postgres://u@[::1]/x", "connector_refused"),
    ("postgres://u@[::ffff:127.0.0.1]/x", "connector_refused"),
    ("postgres://u@[::ffff:7f00:1]/x", "connector_refused"),
    ("postgres://u@10.0.0.5/x", "connector_refused"),
    ("postgres://u@172.16.3.4/x", "connector_refused"),
    ("postgres://u@192.168.1.10/x", "connector_refused"),
    ("postgres://u@100.64.0.1/x", "connector_refused"),
    ("postgres://u@169.254.10.10/x", "connector_refused"),
    ("postgres://u@169.254.169.254/x", "connector_refused"),
    ("postgres://u@[fd00:ec2::254]/x", "connector_refused"),
    ("postgres://u@[fe80::1]/x", "connector_refused"),
    ("postgres://u@[fd12:3456::1]/x", "connector_refused"),
    ("postgres://u@[::ffff:10.1.2.3]/x", "connector_refused"),
    ("postgres://u@0.0.0.0/x", "connector_refused"),
    ("postgres://u@[::]/x", "connector_refused"),
    ("postgres://u@224.0.0.1/x", "connector_refused"),
    ("postgres://u@255.255.255.255/x", "connector_refused"),
    ("mysql://u@127.0.0.1:3306/x", "connector_refused"),
];

async fn database_refusals(app: TestApp) {
    let (ann, _, pid) = owner_with_project(&app, "ann@example.com").await;
    for (conn, code) in REFUSED {
        for test in [false, true] {
            let a = connect_db(&app, &ann, &pid, "Refused", conn, test).await;
            assert_eq!(a.status, 400, "{conn}: {}", a.text);
            assert_eq!(a.body["code"], json!(code), "{conn}: {}", a.text);
        }
    }
    // DNS names are resolved and every address checked: the machine's own names resolve to
    // loopback through /etc/hosts.
    for name in local_names().await {
        let a = connect_db(&app, &ann, &pid, "Refused", &format!("postgres://u@{name}/x"), false).await;
        a.assert_error(400, "connector_refused");
    }
    // A name that does not resolve is refused too (it cannot be checked).
    connect_db(&app, &ann, &pid, "x", "postgres://u@no-such-host.invalid/x", false)
        .await
        .assert_error(400, "invalid_request");
    // Names and lengths.
    connect_db(&app, &ann, &pid, "", "postgres://u@8.8.8.8/x", false)
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(stored_connectors(&app).await, 0);
    // A public address is accepted without a test.
    let a = connect_db(
        &app,
        &ann,
        &pid,
        "Public",
        "postgresql://app:pw@8.8.8.8:6543/sales",
        false,
    )
    .await;
    assert_eq!(a.assert_ok(201)["display"], "postgresql://app@8.8.8.8:6543/sales");
}

/// Host names of this machine that resolve only to loopback addresses.
async fn local_names() -> Vec<String> {
    let mut out = Vec::new();
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    for name in [hostname.trim(), "ip6-localhost", "ip6-loopback"] {
        if name.is_empty() || name == "localhost" {
            continue;
        }
        if let Ok(addrs) = tokio::net::lookup_host((name, 5432)).await {
            let addrs: Vec<_> = addrs.collect();
            if !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()) {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// With private networks allowed, file and socket parameters are still refused, and nothing
/// connects: a listener on the target port sees no connection.
async fn file_params_refused_before_connecting(app: TestApp) {
    let app = restart(app, |c| c.connectors.allow_private_networks = true).await;
    let (ann, _, pid) = owner_with_project(&app, "ann@example.com").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(Mutex::new(0usize));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            *counter.lock().unwrap() += 1;
        }
    });
    for param in [
        "sslrootcert=/etc/passwd",
        "sslcert=/etc/passwd",
        "sslkey=/etc/passwd",
        "passfile=/etc/passwd",
        "host=/var/run/postgresql",
        "service=x",
    ] {
        let a = connect_db(
            &app,
            &ann,
            &pid,
            "x",
            &format!("postgres://u:p@127.0.0.1:{port}/db?{param}"),
            true,
        )
        .await;
        a.assert_error(400, "connector_refused");
    }
    for param in ["local_infile=1", "allowLoadLocalInfile=true", "socket=/tmp/x.sock"] {
        let a = connect_db(
            &app,
            &ann,
            &pid,
            "x",
            &format!("mysql://u:p@127.0.0.1:{port}/db?{param}"),
            true,
        )
        .await;
        a.assert_error(400, "connector_refused");
    }
    // Metadata addresses stay refused even here.
    connect_db(&app, &ann, &pid, "x", "postgres://u@169.254.169.254/x", false)
        .await
        .assert_error(400, "connector_refused");
    assert_eq!(*accepted.lock().unwrap(), 0, "a refused form was connected to");
    // The control: an allowed form does connect (and fails the test generically).
    connect_db(
        &app,
        &ann,
        &pid,
        "x",
        &format!("postgres://u:p@127.0.0.1:{port}/db"),
        true,
    )
    .await
    .assert_error(400, "connector_test_failed");
    assert!(*accepted.lock().unwrap() >= 1);
    task.abort();
}

async fn list_revoke_and_roles(app: TestApp) {
    let app = restart(app, |c| c.connectors.allow_private_networks = true).await;
    let (ann, _, pid) = owner_with_project(&app, "ann@example.com").await;
    let (eve, _, _) = app.register("eve@example.com").await;
    let viewer = join(&app, &ann, &pid, "vic@example.com", "viewer").await;
    let dev = join(&app, &ann, &pid, "dev@example.com", "developer").await;
    let conn = "postgres://app:hunter2-pw@127.0.0.1:5432/sales";
    // Viewers may list, not connect or revoke; developers may do all three.
    connect_db(&app, &viewer, &pid, "Sales", conn, false)
        .await
        .assert_error(403, "forbidden");
    let a = connect_db(&app, &dev, &pid, "Sales", conn, false).await;
    let id = s(&a.assert_ok(201)["id"]).to_string();
    connect_db(&app, &ann, &pid, "Other", conn, false).await.assert_ok(201);
    let seen = list(&app, &viewer, &pid).await;
    assert_eq!(seen.len(), 2);
    for c in &seen {
        assert_connector_shape(c);
        assert_eq!(c["display"], "postgres://app@127.0.0.1:5432/sales");
    }
    let listed = app.get(&format!("/api/connectors/{pid}"), Some(&viewer)).await;
    assert!(!listed.text.contains("hunter2"), "{}", listed.text);
    // Other tenants and non-members: 404, never 403.
    app.get(&format!("/api/connectors/{pid}"), Some(&eve))
        .await
        .assert_error(404, "not_found");
    app.delete(&format!("/api/connectors/{pid}/{id}"), Some(&eve))
        .await
        .assert_error(404, "not_found");
    connect_db(&app, &eve, &pid, "Mine", conn, false)
        .await
        .assert_error(404, "not_found");
    app.get(&format!("/api/connectors/{pid}"), None)
        .await
        .assert_error(401, "unauthenticated");
    app.delete(&format!("/api/connectors/{pid}/{id}"), Some(&viewer))
        .await
        .assert_error(403, "forbidden");
    app.delete(&format!("/api/connectors/{pid}/not-an-id"), Some(&dev))
        .await
        .assert_error(404, "not_found");
    app.delete(&format!("/api/connectors/{pid}/{}", uuid_v7_like()), Some(&dev))
        .await
        .assert_error(404, "not_found");

    // Revoke: the connector comes back revoked, its ciphertext gone, the list shorter.
    let a = app.delete(&format!("/api/connectors/{pid}/{id}"), Some(&dev)).await;
    let c = a.assert_ok(200).clone();
    assert_connector_shape(&c);
    assert_eq!(c["status"], "revoked");
    let row = app
        .rows(&format!("SELECT status, revoked_at FROM connectors WHERE id = '{id}'"))
        .await;
    assert_eq!(row[0]["status"], "revoked");
    assert!(row[0]["revoked_at"].is_i64());
    let left = app
        .rows(&format!(
            "SELECT COUNT(*) AS n FROM connectors WHERE id = '{id}' AND sealed IS NOT NULL"
        ))
        .await;
    assert_eq!(left[0]["n"], 0, "ciphertext destroyed");
    assert_eq!(list(&app, &viewer, &pid).await.len(), 1);
    // Revoking again answers the same, and audits once.
    let again = app.delete(&format!("/api/connectors/{pid}/{id}"), Some(&ann)).await;
    assert_eq!(again.assert_ok(200)["status"], "revoked");
    let audit = app
        .rows("SELECT action FROM audit_log WHERE action LIKE 'connector.%' ORDER BY id")
        .await;
    let actions: Vec<&str> = audit.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["connector.connected", "connector.connected", "connector.revoked"]
    );
}

fn uuid_v7_like() -> String {
    "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into()
}

// ---------------------------------------------------------------------------------------------
// The vault: rotation while serving.

fn key_id_sql(backend: Backend, table: &str, col: &str) -> String {
    match backend {
        Backend::Sqlite => {
            format!("SELECT lower(hex(substr({col}, 2, 8))) AS kid FROM {table} WHERE {col} IS NOT NULL")
        }
        Backend::Postgres => {
            format!("SELECT encode(substring({col} from 2 for 8), 'hex') AS kid FROM {table} WHERE {col} IS NOT NULL")
        }
    }
}

async fn key_ids(app: &TestApp) -> Vec<String> {
    let mut out = Vec::new();
    for (t, c) in [
        ("connectors", "sealed"),
        ("oauth_states", "sealed_verifier"),
        ("settings", "sealed"),
        ("server_secrets", "sealed"),
    ] {
        for r in app.rows(&key_id_sql(app.backend, t, c)).await {
            out.push(s(&r["kid"]).to_string());
        }
    }
    out
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tokenone"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TOKENONE_") || k == "DATABASE_URL" || k == "REDIS_URL" {
            c.env_remove(k);
        }
    }
    c
}

async fn vault_rotate_while_serving(app: TestApp) {
    let mock = MockOAuth::start().await;
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("tokenone.key");
    let kf = key_file.display().to_string();
    let app = with_mock(app, &mock, |c| {
        c.vault.master_key = Secret::default();
        c.vault.master_key_file = kf.clone();
        c.connectors.allow_private_networks = true;
    })
    .await;
    assert!(app.master_key.is_empty());
    let k1 = tokenone_core::vault::MasterKey::from_base64(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let admin = app.admin_token().await;
    app.post(
        "/api/admin/settings",
        Some(&admin),
        json!({"key": "providers.openai.api_key", "value": "sk-rotate-me-1234"}),
    )
    .await
    .assert_ok(200);
    let (ann, _, pid) = owner_with_project(&app, "ann@example.com").await;
    connect_db(&app, &ann, &pid, "DB", "postgres://app:pw@127.0.0.1:5432/x", false)
        .await
        .assert_ok(201);
    let pending = consent(&app, &mock, &ann, "github", &pid).await;
    let before = key_ids(&app).await;
    assert!(before.len() >= 5, "{before:?}");
    assert!(before.iter().all(|k| *k == k1.id_hex()), "{before:?}");

    // Rotate with the server running. (The key file's path goes in the configuration file:
    // `TOKENONE_VAULT__MASTER_KEY_FILE` would be the `_FILE` form of the key itself.)
    let toml = keys.path().join("tokenone.toml");
    std::fs::write(&toml, format!("[vault]\nmaster_key_file = {:?}\n", kf)).unwrap();
    let out = bin()
        .args(["vault", "rotate", "--config"])
        .arg(&toml)
        .env("DATABASE_URL", &app.db_url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let new_id = s(&report["keyId"]).to_string();
    assert_ne!(new_id, k1.id_hex());
    assert_eq!(report["previousKeyId"], json!(k1.id_hex()));
    assert_eq!(report["rewrapped"], json!(before.len()));
    let k2 = tokenone_core::vault::MasterKey::from_base64(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    assert_eq!(k2.id_hex(), new_id);
    let previous = keys.path().join("tokenone.key.previous");
    assert_eq!(std::fs::read_to_string(&previous).unwrap().trim(), k1.to_base64());
    #[cfg(unix)]
    for p in [&key_file, &previous] {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let after = key_ids(&app).await;
    assert_eq!(after.len(), before.len());
    assert!(after.iter().all(|k| *k == new_id), "{after:?}");

    // The running server keeps serving: it opens records under the new key (following the key
    // file), completes the round trip begun before the rotation, and seals under the new key.
    let settings = app.get("/api/admin/settings", Some(&admin)).await;
    let key = settings
        .assert_ok(200)
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["key"] == "providers.openai.api_key")
        .unwrap()
        .clone();
    assert_eq!(key["value"], "••••1234");
    assert_eq!(follow(&app, &pending, None, false).await.status, 302);
    connect_db(&app, &ann, &pid, "DB2", "postgres://app:pw@127.0.0.1:5432/y", false)
        .await
        .assert_ok(201);
    assert_eq!(list(&app, &ann, &pid).await.len(), 3);
    assert!(key_ids(&app).await.iter().all(|k| *k == new_id));

    // A fresh server on the new key file opens everything.
    let db = app.db_url.clone();
    let fresh = TestApp::spawn_with(app.backend, |c| {
        c.database.url = Secret::new(db);
        c.vault.master_key = Secret::default();
        c.vault.master_key_file = kf.clone();
    })
    .await;
    let t = fresh.login("ann@example.com", "password-123").await;
    assert_eq!(list(&fresh, &t, &pid).await.len(), 3);

    // With the key in the environment the command cannot install a key by itself.
    let out = bin()
        .args(["vault", "rotate"])
        .env("DATABASE_URL", &app.db_url)
        .env("TOKENONE_MASTER_KEY", k2.to_base64())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--new-key-file"));
    // ... and with a wrong key it changes nothing.
    let k3_file = keys.path().join("k3");
    std::fs::write(&k3_file, tokenone_core::vault::MasterKey::generate().to_base64()).unwrap();
    let out = bin()
        .args(["vault", "rotate"])
        .env("DATABASE_URL", &app.db_url)
        .env(
            "TOKENONE_MASTER_KEY",
            tokenone_core::vault::MasterKey::generate().to_base64(),
        )
        .arg("--new-key-file")
        .arg(&k3_file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing changed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fresh.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Secrets stay secret.

/// The real binary serving `app`'s database, its stdout and stderr captured.
struct Served {
    child: Option<std::process::Child>,
    base: String,
    /// Where the server believes it is (`http://127.0.0.1:0`, from its bind address).
    public_url: String,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Served {
    fn start(app: &TestApp) -> Served {
        let mut child = bin()
            .arg("serve")
            .current_dir(app.dir.path())
            .env("DATABASE_URL", &app.db_url)
            .env("TOKENONE_MASTER_KEY", &app.master_key)
            .env("TOKENONE_BIND", "127.0.0.1:0")
            .env("TOKENONE_LOG", "debug")
            .env("TOKENONE_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("TOKENONE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("TOKENONE_CONNECTORS__ALLOW_PRIVATE_NETWORKS", "true")
            .env(
                "TOKENONE_STORAGE__COLD_DIR",
                app.dir.path().join("cold-served").display().to_string(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("TokenOne listening") {
                    let addr = line
                        .split("addr=")
                        .nth(1)
                        .and_then(|s| s.split_whitespace().next())
                        .map(str::to_string);
                    let _ = tx.send(addr);
                }
                let mut o = out.lock().unwrap();
                o.extend_from_slice(line.as_bytes());
                o.push(b'\n');
            }
        });
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut o = out.lock().unwrap();
                o.extend_from_slice(line.as_bytes());
                o.push(b'\n');
            }
        });
        let mut served = Served {
            child: Some(child),
            base: String::new(),
            public_url: "http://127.0.0.1:0".into(),
            output,
        };
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server started")
            .expect("address logged");
        served.base = format!("http://{addr}");
        served
    }

    /// SIGTERM, and wait for the exit (all logs flushed).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Calls on the served binary, every answer kept.
struct Recorder {
    client: reqwest::Client,
    base: String,
    transcript: Vec<u8>,
}

impl Recorder {
    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let a = TestApp::answer(req.send().await.expect("request")).await;
        for (k, v) in &a.headers {
            self.transcript.extend_from_slice(k.as_str().as_bytes());
            self.transcript.extend_from_slice(v.as_bytes());
        }
        self.transcript.extend_from_slice(a.text.as_bytes());
        self.transcript.push(b'\n');
        a
    }
    async fn call(&mut self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }
    async fn post(&mut self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(reqwest::Method::POST, path, token, Some(body)).await
    }
    async fn get(&mut self, path: &str, token: Option<&str>) -> Answer {
        self.call(reqwest::Method::GET, path, token, None).await
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn secrets_never_in_plaintext(app: TestApp) {
    let mock = MockOAuth::start().await;
    let nonce = tokenone_core::tokens::random_base62(32);
    let oauth_token = format!("gho_PLANTED_oauth_access_{}", &nonce[..12]);
    let oauth_refresh = format!("ghr_PLANTED_oauth_refresh_{}", &nonce[..12]);
    let db_password = format!("PLANTED-db-password-{}", &nonce[12..24]);
    let api_key = format!("sk-PLANTED-provider-key-{}", &nonce[20..32]);
    mock.set_tokens(&oauth_token, &oauth_refresh);
    let secrets = [
        oauth_token.as_str(),
        oauth_refresh.as_str(),
        db_password.as_str(),
        api_key.as_str(),
        CLIENT_SECRET,
    ];

    let mut served = Served::start(&app);
    let mut r = Recorder {
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: served.base.clone(),
        transcript: Vec::new(),
    };
    // The operator sets a provider API key and configures the GitHub app, all through settings.
    let login = r
        .post(
            "/api/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    let admin = s(&login.assert_ok(200)["tokens"]["accessToken"]).to_string();
    for (k, v) in [
        ("providers.openai.api_key", api_key.clone()),
        ("connectors.github.client_id", CLIENT_ID.to_string()),
        ("connectors.github.client_secret", CLIENT_SECRET.to_string()),
        ("connectors.github.authorize_url", mock.authorize_url()),
        ("connectors.github.token_url", mock.token_url()),
    ] {
        r.post("/api/admin/settings", Some(&admin), json!({"key": k, "value": v}))
            .await
            .assert_ok(200);
    }
    r.get("/api/admin/settings", Some(&admin)).await.assert_ok(200);
    r.get("/api/admin/runtime-config/status", Some(&admin)).await;
    r.get("/api/admin/audit-log", Some(&admin)).await;

    // A user connects GitHub (twice: redirect and JSON) and a database with a password.
    let reg = r
        .post(
            "/api/auth/register",
            None,
            json!({"email": "planter@example.com", "password": "password-123", "name": "Planter"}),
        )
        .await;
    let token = s(&reg.assert_ok(201)["tokens"]["accessToken"]).to_string();
    let p = r
        .post("/api/tokenone/projects", Some(&token), json!({"name": "Secrets"}))
        .await;
    let pid = s(&p.assert_ok(201)["id"]).to_string();
    for json_mode in [false, true] {
        let a = r
            .post(
                "/api/connectors/github/authorize",
                Some(&token),
                json!({"projectId": pid}),
            )
            .await;
        let url = s(&a.assert_ok(200)["url"]).to_string();
        let back = mock.consent(&url).await.replace(&served.public_url, &served.base);
        let mut req = r.client.get(&back);
        if json_mode {
            req = req.header(header::ACCEPT, "application/json");
        }
        let done = r.send(req).await;
        assert!(done.status == 302 || done.status == 200, "{}", done.text);
    }
    assert_eq!(mock.token_counts(), (2, 2), "{:?}", mock.rejections());
    let conn = pg_test_url(&db_password);
    let a = r
        .post(
            "/api/connectors/database/connect",
            Some(&token),
            json!({"projectId": pid, "name": "Warehouse", "connectionString": conn, "test": true}),
        )
        .await;
    let db_id = s(&a.assert_ok(201)["id"]).to_string();
    // Refused and failing forms carrying the password do not echo it either.
    for bad in [
        format!("{conn}?sslrootcert=/etc/passwd"),
        conn.replace(":5432/", ":1/"),
        conn.replace("postgres://", "ftp://"),
    ] {
        let a = r
            .post(
                "/api/connectors/database/connect",
                Some(&token),
                json!({"projectId": pid, "name": "Bad", "connectionString": bad, "test": true}),
            )
            .await;
        assert_eq!(a.status, 400, "{}", a.text);
    }
    let listed = r.get(&format!("/api/connectors/{pid}"), Some(&token)).await;
    assert_eq!(listed.assert_ok(200).as_array().unwrap().len(), 3);
    let first = s(&listed.data()[0]["id"]).to_string();
    r.call(
        reqwest::Method::DELETE,
        &format!("/api/connectors/{pid}/{first}"),
        Some(&token),
        None,
    )
    .await
    .assert_ok(200);
    r.get(&format!("/api/tokenone/projects/{pid}"), Some(&token)).await;

    // The export, if this build has one.
    let passphrase = "export-passphrase-long-enough";
    let ex = r
        .post(
            &format!("/api/tokenone/projects/{pid}/export"),
            Some(&token),
            json!({"passphrase": passphrase}),
        )
        .await;
    let export_note = if ex.status == 404 && ex.body["error"] == "no such route" {
        "no export route in this build".to_string()
    } else {
        assert_eq!(ex.status, 200, "{}", ex.text);
        let raw = r
            .client
            .post(format!("{}/api/tokenone/projects/{pid}/export", served.base))
            .bearer_auth(&token)
            .json(&json!({"passphrase": passphrase}))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        for secret in secrets {
            assert!(!contains(&raw, secret), "{secret} in the encrypted export");
        }
        let file = app.dir.path().join("export.t1x");
        std::fs::write(&file, &raw).unwrap();
        let out_dir = app.dir.path().join("export-out");
        let out = bin()
            .args(["export", "decrypt"])
            .arg(&file)
            .arg("--out")
            .arg(&out_dir)
            .env("TOKENONE_EXPORT_PASSPHRASE", passphrase)
            .output()
            .unwrap();
        if out.status.success() {
            let mut plain = out.stdout.clone();
            for e in std::fs::read_dir(&out_dir).into_iter().flatten().flatten() {
                plain.extend(std::fs::read(e.path()).unwrap_or_default());
            }
            assert!(
                contains(&plain, &db_id) || contains(&plain, "Warehouse"),
                "the export holds the connectors"
            );
            for secret in secrets {
                assert!(!contains(&plain, secret), "{secret} in the decrypted export");
            }
            "export decrypted and scanned".to_string()
        } else {
            format!(
                "export scanned encrypted only: decrypting failed ({})",
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
            )
        }
    };
    eprintln!("secrets test: {export_note}");

    served.stop();
    let logs = served.output.lock().unwrap().clone();
    assert!(contains(&logs, "TokenOne listening"), "the log was captured");
    let db = app.dump_database().await;
    assert!(contains(&db, &db_id), "the dump covers the connectors");
    let mut raw_files = Vec::new();
    if app.backend == Backend::Sqlite {
        for f in ["tokenone.db", "tokenone.db-wal", "tokenone.db-shm"] {
            raw_files.extend(std::fs::read(app.dir.path().join(f)).unwrap_or_default());
        }
        assert!(contains(&raw_files, &db_id));
    }
    for secret in secrets {
        assert!(!contains(&r.transcript, secret), "{secret} in an API answer");
        assert!(!contains(&logs, secret), "{secret} in the server log");
        assert!(!contains(&db, secret), "{secret} in the database");
        assert!(!contains(&db, &hex(secret.as_bytes())), "{secret} in a bytea column");
        assert!(!contains(&raw_files, secret), "{secret} in the SQLite files");
    }
    // The credentials are there, sealed: the server can still open them.
    let mut cfg = Config::default();
    cfg.database.url = Secret::new(app.db_url.clone());
    cfg.database.max_connections = 2;
    cfg.vault.master_key = Secret::new(app.master_key.clone());
    cfg.storage.cold_dir = app.dir.path().join("cold").display().to_string();
    let state = tokenone_server::build_state(cfg).await.expect("state");
    let plain = state
        .connectors
        .open_credential(pid.parse().unwrap(), db_id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&plain), conn);
}

both_backends!(
    public_catalogue,
    oauth_flow_end_to_end,
    oauth_refusals_store_nothing,
    authorize_rules,
    database_connect_real_servers,
    database_refusals,
    file_params_refused_before_connecting,
    list_revoke_and_roles,
    vault_rotate_while_serving,
    secrets_never_in_plaintext,
);
