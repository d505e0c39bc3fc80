//! A replica killed with SIGKILL in the middle of live traffic: no call is charged twice, the
//! ledger verifies, balances equal their postings, and the dead replica's holds are released by
//! the survivor's sweeper.

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokenone_testkit::{both_backends, Backend, TestApp, Upstreams, UPSTREAM_KEY};

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real binary as a second replica of `app`; returns it and its address.
fn spawn_replica(app: &TestApp, up: &Upstreams) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenone"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TOKENONE_") || k == "DATABASE_URL" || k == "REDIS_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.arg("serve")
        .current_dir(app.dir.path())
        .env("DATABASE_URL", &app.db_url)
        .env("TOKENONE_MASTER_KEY", &app.master_key)
        .env("TOKENONE_BIND", "127.0.0.1:0")
        .env("TOKENONE_LOG", "info")
        .env("TOKENONE_WALLET__RESERVATION_TTL_SECONDS", "3")
        .env("TOKENONE_RATELIMIT__OPENAI_PER_MINUTE", "100000")
        .env("TOKENONE_PROVIDERS__OPENAI__BASE_URL", &up.openai.base_url)
        .env("TOKENONE_PROVIDERS__OPENAI__API_KEY", UPSTREAM_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if app.backend == Backend::Postgres {
        cmd.env("REDIS_URL", tokenone_testkit::redis_url());
    }
    let mut child = cmd.spawn().expect("spawn tokenone");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("TokenOne listening") {
                if let Some(addr) = line.split("addr=").nth(1).and_then(|s| s.split_whitespace().next()) {
                    let _ = tx.send(addr.to_string());
                }
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("replica started");
    (Child(child), addr)
}

async fn sigkill_mid_load_loses_nothing(app: TestApp) {
    let backend = app.backend;
    app.stop().await;
    let up = Upstreams::start().await;
    let a = TestApp::spawn_with(backend, |c| {
        up.configure(c);
        c.wallet.reservation_ttl_seconds = 3;
        c.ratelimit.openai_per_minute = 100_000;
    })
    .await;
    let (token, _, tenant) = a.register("crash@example.com").await;
    a.router("off", 100).await;
    a.topup(&tenant, 10_000_000).await;
    let project = a.create_project(&token, "Crash").await;
    let (key, _) = a
        .create_key(&token, &project, json!({"name": "live", "mode": "live"}))
        .await;
    let (mut child, addr) = spawn_replica(&a, &up);
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]});
    // Some calls complete on the replica first.
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let r = client
            .post(format!("http://{addr}/v1/openai-proxy/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Their settlements are written by the replica's batching writer; wait for them so the
    // check below can tell a lost settlement from one still queued.
    let settled = a
        .wait_rows("SELECT id FROM ledger_entries WHERE kind = 'burn'", 5)
        .await;
    assert_eq!(settled.len(), 5, "the replica settled its completed calls");
    // Then hold twenty in flight upstream and kill the replica under them.
    up.openai.close_gate();
    let inflight: Vec<_> = (0..20)
        .map(|_| {
            let (client, addr, key, body) = (client.clone(), addr.clone(), key.clone(), body.clone());
            tokio::spawn(async move {
                client
                    .post(format!("http://{addr}/v1/openai-proxy/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while up.openai.requests().len() < 25 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.openai.requests().len(), 25, "twenty calls in flight");
    let leased_before = a
        .rows(&format!(
            "SELECT leased_tokens FROM wallets WHERE tenant_id = '{tenant}'"
        ))
        .await;
    assert!(
        leased_before[0]["leased_tokens"].as_i64().unwrap() > 0,
        "the replica holds a lease"
    );
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    up.openai.open_gate();
    // The clients of the killed replica saw their connections drop.
    for h in inflight {
        let _ = h.await;
    }
    // The survivor's sweeper releases the dead replica's lease once it expires.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let leased = a
            .rows(&format!(
                "SELECT leased_tokens FROM wallets WHERE tenant_id = '{tenant}'"
            ))
            .await;
        if leased[0]["leased_tokens"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead replica's holds were never voided: {leased:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // No call charged twice; every charge belongs to a recorded call.
    let burns = a.rows("SELECT call_id FROM ledger_entries WHERE kind = 'burn'").await;
    let mut ids: Vec<String> = burns
        .iter()
        .map(|r| r["call_id"].as_str().unwrap().to_string())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "a call was charged twice");
    for id in &ids {
        let rows = a.rows(&format!("SELECT id FROM calls WHERE id = '{id}'")).await;
        assert_eq!(rows.len(), 1, "a charge without a call record");
    }
    assert!(n >= 5, "the completed calls were settled: {n}");
    let admin = a.admin_token().await;
    let v = a.get("/api/admin/ledger/verify", Some(&admin)).await;
    assert_eq!(v.assert_ok(200)["ok"], true, "{}", v.text);
    // The command-line check agrees.
    let out = Command::new(env!("CARGO_BIN_EXE_tokenone"))
        .args(["ledger", "verify"])
        .env("DATABASE_URL", &a.db_url)
        .env("TOKENONE_MASTER_KEY", &a.master_key)
        .env_remove("TOKENONE_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"ok\":true"));
}

both_backends!(sigkill_mid_load_loses_nothing);
