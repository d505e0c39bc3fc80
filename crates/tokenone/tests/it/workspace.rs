//! The project lifecycle of workspace.md: stage and archive, cold storage, the encrypted export
//! (decrypted by the real CLI), the handoff document, and who may do what — on SQLite and on
//! PostgreSQL with Redis.

use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokenone_testkit::{both_backends, Answer, TestApp, Upstreams, UPSTREAM_KEY};

pub(crate) const PROJECTS: &str = "/api/tokenone/projects";
pub(crate) const CHAT: &str = "/v1/openai-proxy/v1/chat/completions";
/// A well-formed UUID (version 7) that names no object.
const NO_SUCH_ID: &str = "0190f0a0-0000-7000-8000-000000000000";
pub(crate) const PASSPHRASE: &str = "correct horse battery staple";

pub(crate) fn path(pid: &str, rest: &str) -> String {
    format!("{PROJECTS}/{pid}/{rest}")
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}"))
}

/// A tenant with a funded wallet, a project and a dev and a live key, on mock vendors.
pub(crate) struct World {
    pub app: TestApp,
    pub _up: Upstreams,
    pub token: String,
    pub user_id: String,
    pub project: String,
    pub dev: String,
    pub live: String,
}

pub(crate) async fn world(app: TestApp, tweak: impl FnOnce(&mut tokenone_core::config::Config)) -> World {
    let backend = app.backend;
    app.stop().await;
    let up = Upstreams::start().await;
    let app = TestApp::spawn_with(backend, |c| {
        up.configure(c);
        c.ratelimit.openai_per_minute = 100_000;
        tweak(c);
    })
    .await;
    let (token, user_id, _) = app.register("owner@workspace.test").await;
    app.fund(&token).await;
    // Native delivery keeps the figures simple; routing has its own tests.
    app.router("off", 100).await;
    let project = app.create_project(&token, "Checkout Bot").await;
    let (dev, _) = app
        .create_key(&token, &project, json!({"name": "sandbox key", "mode": "dev"}))
        .await;
    let (live, _) = app
        .create_key(&token, &project, json!({"name": "prod key", "mode": "live"}))
        .await;
    World {
        app,
        _up: up,
        token,
        user_id,
        project,
        dev,
        live,
    }
}

pub(crate) async fn chat(app: &TestApp, key: &str) -> Answer {
    let r = app
        .client
        .post(app.url(CHAT))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .expect("chat");
    TestApp::answer(r).await
}

async fn anthropic(app: &TestApp, key: &str) -> Answer {
    let r = app
        .client
        .post(app.url("/v1/anthropic-proxy/v1/messages"))
        .header("x-api-key", key)
        .json(&json!({"model": "claude-3-5-haiku", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("anthropic");
    TestApp::answer(r).await
}

/// Refused by the proxy with 403 in OpenAI's own shape.
#[track_caller]
fn assert_native_403(a: &Answer, why: &str) {
    assert_eq!(a.status, 403, "{}", a.text);
    assert_eq!(a.body["error"]["type"], "permission_error", "{}", a.text);
    assert!(s(&a.body["error"]["message"]).contains(why), "{}", a.text);
    assert!(
        a.body.get("success").is_none(),
        "native shape, not the envelope: {}",
        a.text
    );
}

fn invite_token(url: &str) -> String {
    let (_, rest) = url.split_once("token=").unwrap_or_else(|| panic!("no token in {url}"));
    rest.split('&').next().unwrap_or_default().to_string()
}

/// A user of the owner's tenant (tenant role `member`) with `role` on the project, by invite
/// and acceptance; returns (access token, member id).
pub(crate) async fn join(app: &TestApp, owner: &str, pid: &str, email: &str, role: &str) -> (String, String) {
    let inv = app
        .post(
            &format!("/api/projects/{pid}/members"),
            Some(owner),
            json!({"email": email, "role": role}),
        )
        .await;
    let inv = inv.assert_ok(201).clone();
    let a = app
        .post(
            "/api/invites/accept",
            None,
            json!({"token": invite_token(s(&inv["inviteUrl"])), "name": role, "password": "joiner-password-1"}),
        )
        .await;
    let token = s(&a.assert_ok(200)["tokens"]["accessToken"]).to_string();
    (token, s(&inv["id"]).to_string())
}

/// Waits until the call writer has stored `n` calls of the project.
pub(crate) async fn wait_calls(app: &TestApp, pid: &str, n: usize) {
    let rows = app
        .wait_rows(&format!("SELECT id FROM calls WHERE project_id = '{pid}'"), n)
        .await;
    assert_eq!(rows.len(), n, "calls stored");
}

pub(crate) async fn wait_events(app: &TestApp, pid: &str, n: usize) -> Vec<Value> {
    let rows = app
        .wait_rows(
            &format!("SELECT seq, type, payload FROM project_events WHERE project_id = '{pid}' ORDER BY seq"),
            n,
        )
        .await;
    assert!(rows.len() >= n, "events stored: {rows:?}");
    rows
}

async fn post_empty(app: &TestApp, path: &str, token: &str) -> Answer {
    app.call(Method::POST, path, Some(token), None).await
}

/// The lifecycle routes an admin may use and a developer or viewer may not.
fn admin_routes(pid: &str) -> Vec<(String, Option<Value>)> {
    vec![
        (path(pid, "stage"), None),
        (path(pid, "stage"), Some(json!({"stage": "live"}))),
        (path(pid, "archive"), None),
        (path(pid, "archive"), Some(json!({"archived": true}))),
        (path(pid, "cold/move"), None),
        (path(pid, "cold/restore"), None),
        (path(pid, "export"), Some(json!({"passphrase": PASSPHRASE}))),
    ]
}

async fn roles_and_visibility(app: TestApp) {
    let w = world(app, |_| {}).await;
    let app = &w.app;
    let pid = &w.project;
    let (viewer, _) = join(app, &w.token, pid, "viewer@workspace.test", "viewer").await;
    let (developer, _) = join(app, &w.token, pid, "dev@workspace.test", "developer").await;
    for (who, token) in [("viewer", &viewer), ("developer", &developer)] {
        for (route, body) in admin_routes(pid) {
            let a = app.call(Method::POST, &route, Some(token), body).await;
            a.assert_error(403, "forbidden");
            assert!(a.text.contains("admin"), "{who} on {route}: {}", a.text);
        }
        // Reading is for everyone on the project.
        let h = app.get(&path(pid, "handoff"), Some(token)).await;
        assert_eq!(h.status, 200, "{who}: {}", h.text);
        let e = app
            .client
            .get(app.url(&path(pid, "events")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(e.status(), 200, "{who} on events");
        assert_eq!(e.headers()["content-type"], "text/event-stream");
        drop(e);
    }
    // Nothing changed through all those refusals.
    let p = app.get(&format!("{PROJECTS}/{pid}"), Some(&w.token)).await;
    let p = p.assert_ok(200);
    assert_eq!(
        (p["stage"].clone(), p["archived"].clone()),
        (json!("build"), json!(false))
    );
    assert_eq!(p["storageTier"], "hot");

    // Another tenant, a project that does not exist, a malformed id: 404 everywhere.
    let (stranger, _, _) = app.register("stranger@elsewhere.test").await;
    let mut everything = admin_routes(pid)
        .into_iter()
        .map(|(r, b)| (Method::POST, r, b))
        .collect::<Vec<_>>();
    everything.push((Method::GET, path(pid, "handoff"), None));
    everything.push((Method::GET, path(pid, "events"), None));
    for (m, route, body) in &everything {
        app.call(m.clone(), route, Some(&stranger), body.clone())
            .await
            .assert_error(404, "not_found");
        for other in [NO_SUCH_ID, "not-a-uuid"] {
            let r = route.replace(pid.as_str(), other);
            app.call(m.clone(), &r, Some(&w.token), body.clone())
                .await
                .assert_error(404, "not_found");
        }
        app.call(m.clone(), route, None, body.clone())
            .await
            .assert_error(401, "unauthenticated");
    }
}

async fn stage_and_archive(app: TestApp) {
    let w = world(app, |_| {}).await;
    let (app, pid, token) = (&w.app, &w.project, &w.token);
    let stage = |a: &Answer| a.assert_ok(200)["stage"].clone();
    // No body flips; a body sets; the same stage again changes nothing.
    assert_eq!(stage(&post_empty(app, &path(pid, "stage"), token).await), "live");
    assert_eq!(stage(&post_empty(app, &path(pid, "stage"), token).await), "build");
    let set = app
        .post(&path(pid, "stage"), Some(token), json!({"stage": "live"}))
        .await;
    assert_eq!(stage(&set), "live");
    assert_eq!(set.data()["myRole"], "owner");
    let again = app
        .post(&path(pid, "stage"), Some(token), json!({"stage": "live"}))
        .await;
    assert_eq!(stage(&again), "live");
    for bad in [
        json!({"stage": "prod"}),
        json!({"stage": "live", "x": 1}),
        json!({"stage": 1}),
        json!([]),
    ] {
        app.post(&path(pid, "stage"), Some(token), bad)
            .await
            .assert_error(400, "invalid_request");
    }
    let not_json = app
        .client
        .post(app.url(&path(pid, "stage")))
        .bearer_auth(token)
        .header("content-type", "text/plain")
        .body("live")
        .send()
        .await
        .unwrap();
    TestApp::answer(not_json).await.assert_error(400, "invalid_request");

    // Archive: toggled, then set; archived projects leave the default list but stay readable.
    let a = post_empty(app, &path(pid, "archive"), token).await;
    assert_eq!(a.assert_ok(200)["archived"], true);
    let list = app.get(PROJECTS, Some(token)).await;
    assert!(!list
        .assert_ok(200)
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == json!(pid)));
    let all = app.get(&format!("{PROJECTS}?includeArchived=true"), Some(token)).await;
    let found = all
        .assert_ok(200)
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == json!(pid))
        .cloned();
    assert_eq!(found.expect("listed with includeArchived")["archived"], true);
    app.get(&format!("{PROJECTS}/{pid}"), Some(token)).await.assert_ok(200);
    // A rename does not undo the archive (updates are column-specific).
    let renamed = app
        .patch(
            &format!("{PROJECTS}/{pid}"),
            Some(token),
            json!({"name": "Checkout Bot 2"}),
        )
        .await;
    assert_eq!(renamed.assert_ok(200)["archived"], true);
    let p = app.get(&format!("{PROJECTS}/{pid}"), Some(token)).await;
    assert_eq!(
        (
            p.data()["archived"].clone(),
            p.data()["stage"].clone(),
            p.data()["name"].clone()
        ),
        (json!(true), json!("live"), json!("Checkout Bot 2"))
    );
    let back = app
        .post(&path(pid, "archive"), Some(token), json!({"archived": false}))
        .await;
    assert_eq!(back.assert_ok(200)["archived"], false);
    let list = app.get(PROJECTS, Some(token)).await;
    assert!(list
        .assert_ok(200)
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == json!(pid)));
    app.post(&path(pid, "archive"), Some(token), json!({"archived": "yes"}))
        .await
        .assert_error(400, "invalid_request");

    // Audited (changes only) and published.
    let audit = app
        .rows(&format!(
            "SELECT action, old_value, new_value FROM audit_log WHERE target = 'project:{pid}' AND action LIKE 'project.%' ORDER BY id"
        ))
        .await;
    let actions: Vec<&str> = audit.iter().map(|r| s(&r["action"])).collect();
    assert_eq!(
        actions,
        [
            "project.created",
            "project.stage_changed",
            "project.stage_changed",
            "project.stage_changed",
            "project.archived",
            "project.updated",
            "project.unarchived"
        ]
    );
    assert_eq!(audit[1]["old_value"], r#"{"stage":"build"}"#);
    assert_eq!(audit[1]["new_value"], r#"{"stage":"live"}"#);
    let events = wait_events(app, pid, 5).await;
    let kinds: Vec<(i64, &str)> = events
        .iter()
        .map(|e| (e["seq"].as_i64().unwrap(), s(&e["type"])))
        .collect();
    assert_eq!(
        kinds,
        [
            (1, "stage.changed"),
            (2, "stage.changed"),
            (3, "stage.changed"),
            (4, "archive.changed"),
            (5, "archive.changed")
        ]
    );
    let first: Value = serde_json::from_str(s(&events[0]["payload"])).unwrap();
    assert_eq!(first, json!({"from": "build", "to": "live"}));
    let last: Value = serde_json::from_str(s(&events[4]["payload"])).unwrap();
    assert_eq!(last, json!({"archived": false}));
}

async fn proxy_refuses_archived_and_cold_projects(app: TestApp) {
    let w = world(app, |_| {}).await;
    let (app, pid, token) = (&w.app, &w.project, &w.token);
    let dev_key = app
        .create_key(token, pid, json!({"name": "dev", "mode": "dev"}))
        .await
        .0;
    assert_eq!(chat(app, &dev_key).await.status, 200);
    // A second replica warms its key cache now; it must follow within a second.
    let b = app.replica(|_| {}).await;
    assert_eq!(chat(&b, &dev_key).await.status, 200);

    post_empty(app, &path(pid, "archive"), token).await.assert_ok(200);
    // This replica refuses at once (its cache was cleared).
    assert_native_403(&chat(app, &dev_key).await, "archived");
    assert_native_403(&chat(app, &w.live).await, "archived");
    let an = anthropic(app, &dev_key).await;
    assert_eq!(an.status, 403, "{}", an.text);
    assert_eq!(an.body["type"], "error");
    assert_eq!(an.body["error"]["type"], "permission_error");
    let deadline = Instant::now() + Duration::from_millis(1500);
    loop {
        let r = chat(&b, &dev_key).await;
        if r.status == 403 {
            assert_native_403(&r, "archived");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other replica still serves an archived project"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    post_empty(app, &path(pid, "archive"), token).await.assert_ok(200);
    assert_eq!(chat(app, &dev_key).await.status, 200);

    post_empty(app, &path(pid, "cold/move"), token).await.assert_ok(200);
    assert_native_403(&chat(app, &dev_key).await, "cold storage");
    post_empty(app, &path(pid, "cold/restore"), token).await.assert_ok(200);
    assert_eq!(chat(app, &dev_key).await.status, 200);
    b.stop().await;
}

fn sha256_file(p: &Path) -> String {
    let bytes = std::fs::read(p).unwrap();
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

async fn summary(app: &TestApp, token: &str, pid: &str, mode: &str) -> Value {
    let a = app
        .get(
            &format!("/api/tokenone/summary?projectId={pid}&mode={mode}"),
            Some(token),
        )
        .await;
    a.assert_ok(200).clone()
}

struct Snapshot {
    calls: Vec<Value>,
    events: Vec<Value>,
    live: Value,
    dev: Value,
    balance: Value,
    ledger: Vec<Value>,
}

async fn snapshot(w: &World) -> Snapshot {
    let (app, pid) = (&w.app, &w.project);
    Snapshot {
        calls: app
            .rows(&format!("SELECT * FROM calls WHERE project_id = '{pid}' ORDER BY id"))
            .await,
        events: app
            .rows(&format!(
                "SELECT * FROM project_events WHERE project_id = '{pid}' ORDER BY id"
            ))
            .await,
        live: summary(app, &w.token, pid, "live").await,
        dev: summary(app, &w.token, pid, "dev").await,
        balance: app
            .get("/api/wallet/balance", Some(&w.token))
            .await
            .assert_ok(200)
            .clone(),
        ledger: app.rows("SELECT * FROM ledger_entries ORDER BY id").await,
    }
}

fn archive_file(app: &TestApp, rel: &str) -> PathBuf {
    app.dir.path().join("cold").join(rel)
}

async fn cold_storage_round_trip_is_exact(app: TestApp) {
    let w = world(app, |_| {}).await;
    let (app, pid, token) = (&w.app, &w.project, &w.token);
    for _ in 0..3 {
        assert_eq!(chat(app, &w.live).await.status, 200);
        assert_eq!(chat(app, &w.dev).await.status, 200);
    }
    post_empty(app, &path(pid, "stage"), token).await.assert_ok(200);
    post_empty(app, &path(pid, "stage"), token).await.assert_ok(200);
    wait_calls(app, pid, 6).await;
    // Two stage changes and six `llm.call`s.
    wait_events(app, pid, 8).await;
    let before = snapshot(&w).await;
    assert_eq!(before.calls.len(), 6);
    assert_eq!(before.events.len(), 8);
    assert!(before.live["burnTokens"] != "0", "{}", before.live);
    assert!(!before.ledger.is_empty());

    let moved = post_empty(app, &path(pid, "cold/move"), token).await;
    assert_eq!(moved.assert_ok(200)["storageTier"], "cold");
    assert_eq!(
        app.get(&format!("{PROJECTS}/{pid}"), Some(token)).await.data()["storageTier"],
        "cold"
    );
    // Out of the hot tables, into one recorded archive file.
    assert!(app
        .rows(&format!("SELECT id FROM calls WHERE project_id = '{pid}'"))
        .await
        .is_empty());
    assert!(app
        .rows(&format!("SELECT id FROM project_events WHERE project_id = '{pid}'"))
        .await
        .is_empty());
    let rec = app
        .rows(&format!("SELECT * FROM cold_archives WHERE project_id = '{pid}'"))
        .await;
    assert_eq!(rec.len(), 1);
    let rec = &rec[0];
    assert_eq!(
        (rec["call_rows"].clone(), rec["event_rows"].clone()),
        (json!(6), json!(8))
    );
    assert_eq!(rec["restored_at"], Value::Null);
    let file = archive_file(app, s(&rec["path"]));
    let bytes = std::fs::read(&file).expect("archive file in the blob directory");
    assert_eq!(&bytes[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame");
    assert_eq!(bytes.len() as i64, rec["bytes"].as_i64().unwrap());
    assert_eq!(sha256_file(&file), s(&rec["sha256"]));

    // Roll-ups, wallet and ledger are untouched: summaries stay right.
    let cold = snapshot(&w).await;
    assert_eq!(cold.live, before.live);
    assert_eq!(cold.dev, before.dev);
    assert_eq!(cold.balance, before.balance);
    assert_eq!(cold.ledger, before.ledger);

    // History routes say 409 with a clear message; so do a second move and the proxy (403).
    for (m, route, body) in [
        (Method::GET, format!("{PROJECTS}/{pid}/recent-upstream-picks"), None),
        (Method::GET, path(pid, "handoff"), None),
        (
            Method::POST,
            path(pid, "export"),
            Some(json!({"passphrase": PASSPHRASE})),
        ),
        (Method::POST, path(pid, "cold/move"), None),
    ] {
        let a = app.call(m, &route, Some(token), body).await;
        a.assert_error(409, "conflict");
        assert!(s(&a.body["error"]).contains("cold storage"), "{route}: {}", a.text);
    }
    assert_native_403(&chat(app, &w.dev).await, "cold storage");

    let restored = post_empty(app, &path(pid, "cold/restore"), token).await;
    assert_eq!(restored.assert_ok(200)["storageTier"], "hot");
    let after = snapshot(&w).await;
    assert_eq!(after.calls, before.calls, "every call row back, bit for bit");
    assert_eq!(after.events, before.events, "every event row back, bit for bit");
    assert_eq!(after.live, before.live);
    assert_eq!(after.dev, before.dev);
    assert_eq!(after.balance, before.balance);
    assert_eq!(after.ledger, before.ledger);
    let picks = app
        .get(&format!("{PROJECTS}/{pid}/recent-upstream-picks"), Some(token))
        .await;
    assert_eq!(picks.assert_ok(200).as_array().unwrap().len(), 6);
    post_empty(app, &path(pid, "cold/restore"), token)
        .await
        .assert_error(409, "conflict");
    let rec = app
        .rows(&format!(
            "SELECT restored_at FROM cold_archives WHERE project_id = '{pid}'"
        ))
        .await;
    assert!(rec[0]["restored_at"].as_i64().is_some());
    assert!(!file.exists(), "a restored archive is removed");
    let audit = app
        .rows(&format!(
            "SELECT action FROM audit_log WHERE target = 'project:{pid}' AND action LIKE 'project.cold%' ORDER BY id"
        ))
        .await;
    assert_eq!(
        audit,
        [
            json!({"action": "project.cold_moved"}),
            json!({"action": "project.cold_restored"})
        ]
    );

    // New events keep their sequence going; the project can go cold again.
    post_empty(app, &path(pid, "stage"), token).await.assert_ok(200);
    let events = wait_events(app, pid, 9).await;
    assert_eq!(events.last().unwrap()["seq"], 9);
    post_empty(app, &path(pid, "cold/move"), token).await.assert_ok(200);
    post_empty(app, &path(pid, "cold/restore"), token).await.assert_ok(200);
    let again = snapshot(&w).await;
    assert_eq!(again.calls, before.calls);
}

async fn corrupt_archive_is_refused_with_nothing_changed(app: TestApp) {
    let w = world(app, |_| {}).await;
    let (app, pid, token) = (&w.app, &w.project, &w.token);
    for _ in 0..4 {
        assert_eq!(chat(app, &w.dev).await.status, 200);
    }
    wait_calls(app, pid, 4).await;
    wait_events(app, pid, 4).await;
    let before = snapshot(&w).await;
    post_empty(app, &path(pid, "cold/move"), token).await.assert_ok(200);
    let rec = app
        .rows(&format!("SELECT path FROM cold_archives WHERE project_id = '{pid}'"))
        .await;
    let file = archive_file(app, s(&rec[0]["path"]));
    let good = std::fs::read(&file).unwrap();

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let mut appended = good.clone();
    appended.extend_from_slice(b"junk");
    let damaged: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("flipped byte", Some(flipped)),
        ("truncated", Some(good[..good.len() - 7].to_vec())),
        ("appended", Some(appended)),
        ("empty", Some(Vec::new())),
        ("missing", None),
    ];
    for (what, content) in damaged {
        match &content {
            Some(c) => std::fs::write(&file, c).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
        let a = post_empty(app, &path(pid, "cold/restore"), token).await;
        a.assert_error(409, "conflict");
        assert!(
            s(&a.body["error"]).contains("nothing was restored"),
            "{what}: {}",
            a.text
        );
        // Nothing changed: still cold, no row back, the archive not marked.
        let p = app.get(&format!("{PROJECTS}/{pid}"), Some(token)).await;
        assert_eq!(p.data()["storageTier"], "cold", "{what}");
        assert!(app
            .rows(&format!("SELECT id FROM calls WHERE project_id = '{pid}'"))
            .await
            .is_empty());
        assert!(app
            .rows(&format!("SELECT id FROM project_events WHERE project_id = '{pid}'"))
            .await
            .is_empty());
        let r = app
            .rows(&format!(
                "SELECT restored_at FROM cold_archives WHERE project_id = '{pid}'"
            ))
            .await;
        assert_eq!(r[0]["restored_at"], Value::Null, "{what}");
    }
    // The intact file restores everything.
    std::fs::write(&file, &good).unwrap();
    post_empty(app, &path(pid, "cold/restore"), token).await.assert_ok(200);
    let after = snapshot(&w).await;
    assert_eq!(after.calls, before.calls);
    assert_eq!(after.events, before.events);
    assert_eq!(after.dev, before.dev);
}

/// Runs the real `tokenone export decrypt`.
fn decrypt(file: &Path, out: &Path, passphrase: Option<&str>) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tokenone"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TOKENONE_") || k == "DATABASE_URL" || k == "REDIS_URL" {
            c.env_remove(k);
        }
    }
    if let Some(p) = passphrase {
        c.env("TOKENONE_EXPORT_PASSPHRASE", p);
    }
    c.arg("export").arg("decrypt").arg(file).arg("--out").arg(out);
    c.stdin(std::process::Stdio::null()).output().expect("run tokenone")
}

/// Offsets and lengths of the chunks of a `.t1x` file (after its 40-byte header).
fn chunks(file: &[u8]) -> Vec<(usize, usize)> {
    let mut at = 40;
    let mut out = Vec::new();
    while at + 4 <= file.len() {
        let len = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
        out.push((at, 4 + len));
        at += 4 + len;
    }
    out
}

async fn export_round_trips_through_the_cli(app: TestApp) {
    let w = world(app, |_| {}).await;
    let (app, pid, token) = (&w.app, &w.project, &w.token);
    let (viewer, _) = join(app, token, pid, "viewer@workspace.test", "viewer").await;
    // Enough calls for a bundle of several 64 KiB chunks.
    for batch in 0..6 {
        let calls: Vec<_> = (0..20).map(|_| chat(app, &w.dev)).collect();
        for a in futures::future::join_all(calls).await {
            assert_eq!(a.status, 200, "batch {batch}: {}", a.text);
        }
    }
    for _ in 0..2 {
        assert_eq!(chat(app, &w.live).await.status, 200);
    }
    wait_calls(app, pid, 122).await;

    // Bad requests first.
    for bad in [
        json!({"passphrase": "short"}),
        json!({"passphrase": "elevenchars"}),
        json!({}),
        json!({"passphrase": PASSPHRASE, "extra": 1}),
        json!({"passphrase": 123456789012345u64}),
    ] {
        app.post(&path(pid, "export"), Some(token), bad)
            .await
            .assert_error(400, "invalid_request");
    }
    app.post(&path(pid, "export"), Some(&viewer), json!({"passphrase": PASSPHRASE}))
        .await
        .assert_error(403, "forbidden");

    let resp = app
        .client
        .post(app.url(&path(pid, "export")))
        .bearer_auth(token)
        .json(&json!({"passphrase": PASSPHRASE}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    let cd = resp.headers()["content-disposition"].to_str().unwrap().to_string();
    let name = cd
        .strip_prefix("attachment; filename=\"")
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{cd}"))
        .to_string();
    let today = chrono_today();
    assert_eq!(name, format!("tokenone-export-checkout-bot-{today}.t1x"));
    let sealed = resp.bytes().await.unwrap().to_vec();
    assert_eq!(&sealed[..3], b"T1X");
    assert_eq!(sealed[3], 1, "format version");
    assert!(chunks(&sealed).len() >= 2, "several chunks");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(&name);
    std::fs::write(&file, &sealed).unwrap();
    let out = dir.path().join("out");
    let o = decrypt(&file, &out, Some(PASSPHRASE));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let written: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(written, vec![out.join(name.replace(".t1x", ".json"))]);
    let plain = std::fs::read_to_string(&written[0]).unwrap();
    let bundle: Value = serde_json::from_str(&plain).expect("the bundle is JSON");

    assert_eq!(bundle["format"], "tokenone-export");
    assert_eq!(bundle["project"]["id"], json!(pid));
    assert_eq!(bundle["project"]["name"], "Checkout Bot");
    let emails: Vec<&str> = bundle["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| s(&m["email"]))
        .collect();
    assert_eq!(emails, ["owner@workspace.test", "viewer@workspace.test"]);
    let keys = bundle["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for k in keys {
        assert!(s(&k["prefix"]).len() == 12 && s(&k["last4"]).len() == 4, "{k}");
    }
    assert!(bundle["connectors"].is_array());
    let calls = bundle["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 122);
    let call_ids: std::collections::HashSet<&str> = calls.iter().map(|c| s(&c["id"])).collect();
    assert_eq!(calls.iter().filter(|c| c["mode"] == "live").count(), 2);
    let ledger = bundle["ledger"].as_array().unwrap();
    assert!(!ledger.is_empty(), "the live calls' postings");
    assert!(ledger.iter().all(|e| call_ids.contains(s(&e["callId"]))));
    assert!(!bundle["picks"].as_array().unwrap().is_empty());
    assert!(s(&bundle["handoff"]).contains("## Proxy endpoints"));

    // No secret anywhere.
    let hashes = app.rows("SELECT key_hash FROM api_keys").await;
    let mut secrets: Vec<String> = vec![
        w.dev.clone(),
        w.live.clone(),
        UPSTREAM_KEY.into(),
        "joiner-password-1".into(),
    ];
    secrets.extend(hashes.iter().map(|h| s(&h["key_hash"]).to_string()));
    for secret in &secrets {
        assert!(!plain.contains(secret.as_str()), "a secret leaked into the export");
    }
    for word in ["$argon2", "password", "key_hash", "keyHash", "sealed"] {
        assert!(!plain.contains(word), "{word} in the export");
    }

    // A wrong passphrase, a flipped byte, a truncated or a reordered file: refused, nothing written.
    let c = chunks(&sealed);
    let mut flipped = sealed.clone();
    flipped[c[1].0 + 100] ^= 0x20;
    let mut header_flipped = sealed.clone();
    header_flipped[20] ^= 0x01;
    let mut reordered = sealed[..40].to_vec();
    for i in [1, 0] {
        reordered.extend_from_slice(&sealed[c[i].0..c[i].0 + c[i].1]);
    }
    reordered.extend_from_slice(&sealed[c[1].0 + c[1].1..]);
    let cut_at_boundary = sealed[..c[c.len() - 1].0].to_vec();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("wrong passphrase", sealed.clone(), "correct horse battery stapler"),
        ("flipped byte", flipped, PASSPHRASE),
        ("flipped header byte", header_flipped, PASSPHRASE),
        ("truncated mid-chunk", sealed[..sealed.len() - 100].to_vec(), PASSPHRASE),
        ("truncated at a chunk boundary", cut_at_boundary, PASSPHRASE),
        ("reordered", reordered, PASSPHRASE),
    ];
    for (what, bytes, pass) in cases {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("bad.t1x");
        std::fs::write(&f, &bytes).unwrap();
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let o = decrypt(&f, &out, Some(pass));
        assert!(!o.status.success(), "{what} was accepted");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("nothing was written"),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "{what} wrote something");
    }
    // Without a passphrase (no terminal to prompt on) it refuses too.
    let d = tempfile::tempdir().unwrap();
    let o = decrypt(&file, d.path(), None);
    assert!(!o.status.success());
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);

    let audit = app
        .rows(&format!(
            "SELECT action FROM audit_log WHERE target = 'project:{pid}' AND action = 'project.exported'"
        ))
        .await;
    assert_eq!(audit.len(), 1, "audited once: refused attempts are not exports");
}

/// Today's date (UTC) as `YYYY-MM-DD`, from the system clock.
fn chrono_today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let days = secs.div_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{:02}-{:02}", if m <= 2 { y + 1 } else { y }, m, d)
}

const SECTIONS: [&str; 10] = [
    "## Description",
    "## Status",
    "## Members and roles",
    "## API keys",
    "## Connectors",
    "## Models (last 30 days)",
    "## Burn, savings and pass-back (last 30 days)",
    "## Proxy endpoints",
    "## Recent upstream picks",
    "## Notes",
];

async fn handoff_has_every_section_and_no_secret(app: TestApp) {
    let w = world(app, |_| {}).await;
    let (app, pid, token) = (&w.app, &w.project, &w.token);
    app.patch(
        &format!("{PROJECTS}/{pid}"),
        Some(token),
        json!({"description": "Answers shoppers.\n## not a section", "tags": ["eu", "shop"]}),
    )
    .await
    .assert_ok(200);
    let (viewer, _) = join(app, token, pid, "viewer@workspace.test", "viewer").await;
    for _ in 0..2 {
        assert_eq!(chat(app, &w.live).await.status, 200);
    }
    assert_eq!(chat(app, &w.dev).await.status, 200);
    wait_calls(app, pid, 3).await;

    let h = app.get(&path(pid, "handoff"), Some(&viewer)).await;
    assert_eq!(h.status, 200, "{}", h.text);
    assert_eq!(h.header("content-type"), Some("text/markdown; charset=utf-8"));
    let md = &h.text;
    assert!(md.starts_with("# Project handoff: Checkout Bot\n"), "{md}");
    let mut at = 0;
    for heading in SECTIONS {
        let found = md[at..]
            .find(&format!("\n{heading}\n"))
            .unwrap_or_else(|| panic!("{heading} missing or out of order:\n{md}"));
        at += found + 1;
    }
    assert_eq!(md.matches("\n## ").count(), SECTIONS.len(), "{md}");
    assert!(md.contains("> ## not a section"));
    assert!(
        md.contains("| Stage | build |") && md.contains("| Archived | no |") && md.contains("| Storage tier | hot |")
    );
    assert!(md.contains("| owner@workspace.test | owner | active |"), "{md}");
    assert!(md.contains("| viewer@workspace.test | viewer | active |"), "{md}");
    // Keys: name, mode, prefix and last four; never the secret.
    for (name, mode, secret) in [("sandbox key", "dev", &w.dev), ("prod key", "live", &w.live)] {
        let row = format!(
            "| {name} | {mode} | `{}` | `{}` | active |",
            &secret[..12],
            &secret[secret.len() - 4..]
        );
        assert!(md.contains(&row), "{row} missing:\n{md}");
        assert!(!md.contains(secret.as_str()), "a key secret leaked");
    }
    assert!(!md.contains(UPSTREAM_KEY));
    // Real figures: the same as the summary of the roll-ups.
    assert!(md.contains("| live | gpt-4o-mini | gpt-4o-mini | 2 |"), "{md}");
    assert!(md.contains("| dev | gpt-4o-mini | gpt-4o-mini | 1 |"), "{md}");
    let live = summary(app, token, pid, "live").await;
    let figures = format!(
        "| live | 2 | {} | {} | {} | {} | {} | {} |",
        s(&live["inputTokens"]),
        s(&live["outputTokens"]),
        s(&live["burnTokens"]),
        s(&live["savingsTokens"]),
        s(&live["passBackTokens"]),
        s(&live["netTokens"])
    );
    assert!(md.contains(&figures), "{figures} missing:\n{md}");
    assert!(
        md.contains(&format!("| burn | 2 | {} |", s(&live["burnTokens"]))),
        "{md}"
    );
    // This installation's three base URLs, with a curl example each.
    for base in ["/v1/openai-proxy/v1", "/v1/anthropic-proxy", "/v1/gemini-proxy"] {
        assert!(md.contains(&format!("`{}{base}`", app.base)), "{base}:\n{md}");
    }
    assert!(md.contains(&format!("curl {}/v1/openai-proxy/v1/chat/completions", app.base)));
    assert!(md.contains(&format!("curl {}/v1/anthropic-proxy/v1/messages", app.base)));
    assert!(md.contains(&format!("curl \"{}/v1/gemini-proxy/v1beta/models/", app.base)));
    let picks = md.split("## Recent upstream picks").nth(1).unwrap();
    assert_eq!(
        picks.matches("| gpt-4o-mini | gpt-4o-mini | openai | cheap |").count(),
        3,
        "{md}"
    );
}

both_backends!(
    roles_and_visibility,
    stage_and_archive,
    proxy_refuses_archived_and_cold_projects,
    cold_storage_round_trip_is_exact,
    corrupt_archive_is_refused_with_nothing_changed,
    export_round_trips_through_the_cli,
    handoff_has_every_section_and_no_secret,
);
