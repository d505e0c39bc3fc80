//! The wallet and the ledger end to end: reservations, settlement, 402s, top-ups, verification,
//! summaries — on SQLite and on PostgreSQL with Redis, one replica and two.

use futures::future::join_all;
use serde_json::{json, Value};
use tokenone_testkit::mock::Behaviour;
use tokenone_testkit::{both_backends, TestApp, Upstreams};

struct World {
    app: TestApp,
    up: Upstreams,
    token: String,
    tenant: String,
    project: String,
    live: String,
}

/// An app on mock vendors with an unfunded tenant, a project and a live key.
async fn world(app: TestApp, tweak: impl FnOnce(&mut tokenone_core::config::Config)) -> World {
    let backend = app.backend;
    app.stop().await;
    let up = Upstreams::start().await;
    let app = TestApp::spawn_with(backend, |c| {
        up.configure(c);
        c.ratelimit.openai_per_minute = 100_000;
        tweak(c);
    })
    .await;
    let (token, _, tenant) = app.register("payer@example.com").await;
    app.router("off", 100).await;
    let project = app.create_project(&token, "Billing").await;
    let (live, _) = app
        .create_key(&token, &project, json!({"name": "live", "mode": "live"}))
        .await;
    World {
        app,
        up,
        token,
        tenant,
        project,
        live,
    }
}

fn chat_body(max_tokens: u64) -> Value {
    json!({"model": "gpt-4o-mini", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]})
}

async fn chat(app: &TestApp, key: &str, body: &Value) -> tokenone_testkit::Answer {
    let r = app
        .client
        .post(app.url("/v1/openai-proxy/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    TestApp::answer(r).await
}

async fn balance(app: &TestApp, token: &str) -> (u64, u64) {
    let b = app.get("/api/wallet/balance", Some(token)).await;
    let d = b.assert_ok(200);
    (
        d["balanceTokens"].as_str().unwrap().parse().unwrap(),
        d["reservedTokens"].as_str().unwrap().parse().unwrap(),
    )
}

async fn verify(app: &TestApp) -> Value {
    let admin = app.admin_token().await;
    let v = app.get("/api/admin/ledger/verify", Some(&admin)).await;
    v.assert_ok(200).clone()
}

/// gpt-4o-mini is cheap: the reservation for a 2-character prompt and max_tokens 1000 is
/// ceil((1 * 0.8 + 1000 * 4) / 1e6 / 0.000001) = 4001 tokens.
const RESERVATION: u64 = 4001;

async fn unfunded_wallet_refuses_with_402(app: TestApp) {
    let w = world(app, |_| {}).await;
    let a = chat(&w.app, &w.live, &chat_body(1000)).await;
    assert_eq!(a.status, 402, "{}", a.text);
    assert_eq!(a.body["error"]["type"], "insufficient_quota");
    assert!(
        w.up.openai.requests().is_empty(),
        "nothing goes upstream before the reservation"
    );
    let rows = w
        .app
        .wait_rows("SELECT status, error_code, burn_tokens FROM calls", 1)
        .await;
    assert_eq!(rows[0]["status"], 402);
    assert_eq!(rows[0]["error_code"], "insufficient_funds");
    // Anthropic and Gemini shapes say it their way.
    let a = w
        .app
        .client
        .post(w.app.url("/v1/anthropic-proxy/v1/messages"))
        .header("x-api-key", &w.live)
        .json(&json!({"model": "claude-3-5-haiku", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    let a = TestApp::answer(a).await;
    assert_eq!(
        (a.status.as_u16(), a.body["error"]["type"].as_str()),
        (402, Some("billing_error"))
    );
}

/// A delivered call moves the balance by exactly -(burn - uncollected) + passBack, the ledger
/// has its postings, verification passes and the summary agrees with the call log.
async fn settlement_matches_the_formulas(app: TestApp) {
    let w = world(app, |_| {}).await;
    w.app.topup(&w.tenant, 1_000_000).await;
    let a = chat(
        &w.app,
        &w.live,
        &json!({"model": "claude-sonnet-4", "messages": [{"role": "user", "content": "hello"}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let call_id = a.header("x-tokenone-call-id").unwrap().to_string();
    let rows = w
        .app
        .wait_rows(&format!("SELECT * FROM calls WHERE id = '{call_id}'"), 1)
        .await;
    let c = &rows[0];
    let (inp, out) = (
        c["input_tokens"].as_i64().unwrap(),
        c["output_tokens"].as_i64().unwrap(),
    );
    assert!(inp > 0 && out > 0);
    // Native delivery on anthropic:claude-sonnet-4 (3 / 15 USD per M) with the default markup
    // 0.1 against the balanced ceiling (3 / 15): upstream = 1.1 x baseline, so burn is the
    // upstream cost and nothing is saved.
    let upstream_micro = (inp * 3 + out * 15) as f64 * 1.1; // only to bound the exact figure
    let burn = c["burn_tokens"].as_i64().unwrap();
    assert!(
        (burn as f64 - upstream_micro).abs() <= 1.0,
        "burn {burn} vs {upstream_micro}"
    );
    assert_eq!(c["savings_tokens"], 0);
    assert_eq!(c["pass_back_tokens"], 0);
    // Wait until the writer has posted, then check every figure.
    let entries = w
        .app
        .wait_rows(
            &format!("SELECT kind, amount_tokens FROM ledger_entries WHERE call_id = '{call_id}'"),
            1,
        )
        .await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["kind"], "burn");
    assert_eq!(entries[0]["amount_tokens"].as_i64().unwrap(), burn);
    let (bal, _) = balance(&w.app, &w.token).await;
    assert_eq!(bal, 1_000_000 - burn as u64);
    let v = verify(&w.app).await;
    assert_eq!(v["ok"], true, "{v}");
    // The summary is read from the roll-ups and agrees with the call log.
    let s = w.app.get("/api/tokenone/summary?days=1", Some(&w.token)).await;
    let d = s.assert_ok(200);
    assert_eq!(d["calls"], "1");
    assert_eq!(d["burnTokens"], burn.to_string());
    assert_eq!(d["byModel"][0]["requestedModel"], "claude-sonnet-4");
    assert_eq!(d["byModel"][0]["deliveredModel"], "claude-sonnet-4");
    let picks = w
        .app
        .get(
            &format!("/api/tokenone/projects/{}/recent-upstream-picks", w.project),
            Some(&w.token),
        )
        .await;
    let p = picks.assert_ok(200);
    assert_eq!(p[0]["callId"], call_id.as_str());
    assert_eq!(p[0]["provider"], "anthropic");
    // The ledger page shows the top-up and the burn, newest first, amounts as strings.
    let l = w.app.get("/api/wallet/ledger?limit=1", Some(&w.token)).await;
    let page = l.assert_ok(200);
    assert_eq!(page["items"][0]["kind"], "burn");
    let next = page["nextCursor"].as_str().unwrap();
    let l2 = w
        .app
        .get(&format!("/api/wallet/ledger?limit=1&cursor={next}"), Some(&w.token))
        .await;
    assert_eq!(l2.assert_ok(200)["items"][0]["kind"], "topup");
    assert_eq!(l2.data()["items"][0]["amountTokens"], "1000000");
}

/// 50 concurrent calls against a wallet that covers exactly 5: 5 delivered, 45 refused with
/// 402, and the final balance equals the ledger.
async fn fifty_calls_five_funded(app: TestApp) {
    let w = world(app, |_| {}).await;
    w.app.topup(&w.tenant, RESERVATION * 5).await;
    run_fifty(&w, &[&w.app]).await;
}

/// The same with two replicas sharing the database (and Redis on PostgreSQL).
async fn fifty_calls_five_funded_two_replicas(app: TestApp) {
    let w = world(app, |_| {}).await;
    let b = w.app.replica(|c| w.up.configure(c)).await;
    w.app.topup(&w.tenant, RESERVATION * 5).await;
    run_fifty(&w, &[&w.app, &b]).await;
}

async fn run_fifty(w: &World, apps: &[&TestApp]) {
    w.up.openai.close_gate();
    let body = chat_body(1000);
    let calls = (0..50).map(|i| {
        let app = apps[i % apps.len()];
        let body = body.clone();
        let key = w.live.clone();
        async move { chat(app, &key, &body).await }
    });
    let all = futures::future::join_all(calls);
    let release = async {
        // Hold the funded calls in flight until every other call has been refused.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let refused = w.app.rows("SELECT id FROM calls WHERE status = 402").await.len();
            if refused >= 45 || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        w.up.openai.open_gate();
    };
    let (answers, ()) = tokio::join!(all, release);
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let refused = answers.iter().filter(|a| a.status == 402).count();
    assert_eq!(
        (ok, refused),
        (5, 45),
        "{:?}",
        answers.iter().map(|a| a.status.as_u16()).collect::<Vec<_>>()
    );
    assert_eq!(w.up.openai.requests().len(), 5, "only funded calls went upstream");
    w.app
        .wait_rows("SELECT id FROM ledger_entries WHERE kind = 'burn'", 5)
        .await;
    let v = verify(&w.app).await;
    assert_eq!(v["ok"], true, "{v}");
    let (bal, _) = balance(&w.app, &w.token).await;
    let rows = w
        .app
        .rows("SELECT burn_tokens, pass_back_tokens, uncollected_tokens FROM calls")
        .await;
    let moved: i64 = rows
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_i64().unwrap();
            n("pass_back_tokens") - (n("burn_tokens") - n("uncollected_tokens"))
        })
        .sum();
    assert!(
        rows.iter().any(|r| r["pass_back_tokens"].as_i64().unwrap() > 0),
        "gpt-4o-mini under the cheap ceiling saves"
    );
    assert_eq!(
        bal as i64,
        (RESERVATION * 5) as i64 + moved,
        "balance = funds - (burn - uncollected) + pass-back"
    );
}

/// A failed upstream debits nothing and posts nothing.
async fn upstream_failure_debits_nothing(app: TestApp) {
    let w = world(app, |_| {}).await;
    w.app.topup(&w.tenant, 100_000).await;
    w.up.openai
        .script(Behaviour::Status(500, json!({"error": {"message": "down"}})));
    let a = chat(&w.app, &w.live, &chat_body(100)).await;
    assert_eq!(a.status, 502);
    let rows = w.app.wait_rows("SELECT burn_tokens, status FROM calls", 1).await;
    assert_eq!(rows[0]["burn_tokens"], 0);
    assert!(w
        .app
        .rows("SELECT id FROM ledger_entries WHERE kind <> 'topup'")
        .await
        .is_empty());
    assert_eq!(balance(&w.app, &w.token).await.0, 100_000);
}

/// A stream the client cuts after a few chunks is settled once, for what was delivered.
async fn client_cut_stream_settles_once(app: TestApp) {
    let w = world(app, |_| {}).await;
    w.app.topup(&w.tenant, 1_000_000).await;
    w.up.openai.script(Behaviour::StallAfter(3));
    let mut body = chat_body(100);
    body["stream"] = json!(true);
    let resp = w
        .app
        .client
        .post(w.app.url("/v1/openai-proxy/v1/chat/completions"))
        .bearer_auth(&w.live)
        .json(&body)
        .send()
        .await
        .unwrap();
    let call_id = resp.headers()["x-tokenone-call-id"].to_str().unwrap().to_string();
    let mut stream = resp.bytes_stream();
    use futures::StreamExt;
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(stream);
    let rows = w
        .app
        .wait_rows(&format!("SELECT * FROM calls WHERE id = '{call_id}'"), 1)
        .await;
    assert_eq!(rows[0]["error_code"], "client_disconnected");
    assert_eq!(rows[0]["usage_estimated"], 1);
    assert!(rows[0]["burn_tokens"].as_i64().unwrap() > 0);
    let burns = w
        .app
        .wait_rows(
            &format!("SELECT id FROM ledger_entries WHERE call_id = '{call_id}' AND kind = 'burn'"),
            1,
        )
        .await;
    assert_eq!(burns.len(), 1);
    assert_eq!(verify(&w.app).await["ok"], true);
}

/// Top-ups: exactly one of usd/tokens, idempotent replays, 409 on another body, one credit for
/// concurrent duplicates, platform admin only.
async fn topups_are_idempotent(app: TestApp) {
    let (token, _, tenant) = app.register("t@example.com").await;
    let admin = app.admin_token().await;
    let url = format!("/api/admin/wallets/{tenant}/topup");
    let body = json!({"usd": "10.00", "reason": "first funds", "idempotencyKey": "k-1"});
    let first = app.post(&url, Some(&admin), body.clone()).await;
    let d = first.assert_ok(200).clone();
    assert_eq!(d["creditedTokens"], "10000000", "10 USD at 0.000001 USD per token");
    let replay = app.post(&url, Some(&admin), body.clone()).await;
    assert_eq!(
        replay.assert_ok(200),
        &d,
        "the same key and body replay the first answer"
    );
    let other = app
        .post(
            &url,
            Some(&admin),
            json!({"usd": "11.00", "reason": "first funds", "idempotencyKey": "k-1"}),
        )
        .await;
    other.assert_error(409, "conflict");
    let dupes = (0..8).map(|_| {
        app.post(
            &url,
            Some(&admin),
            json!({"tokens": "5", "reason": "dupes", "idempotencyKey": "k-2"}),
        )
    });
    let answers = join_all(dupes).await;
    assert!(
        answers.iter().all(|a| a.status == 200),
        "{:?}",
        answers.iter().map(|a| a.text.clone()).collect::<Vec<_>>()
    );
    assert_eq!(
        balance(&app, &token).await.0,
        10_000_005,
        "one credit for eight concurrent duplicates"
    );
    for bad in [
        json!({"reason": "none", "idempotencyKey": "k-3"}),
        json!({"usd": "1", "tokens": "1", "reason": "both", "idempotencyKey": "k-3"}),
        json!({"tokens": "-5", "reason": "neg", "idempotencyKey": "k-3"}),
        json!({"tokens": "0", "reason": "zero", "idempotencyKey": "k-3"}),
        json!({"usd": "abc", "reason": "bad", "idempotencyKey": "k-3"}),
        json!({"tokens": "5", "reason": "x", "idempotencyKey": "k-3"}),
        json!({"tokens": "5", "reason": "ok reason", "idempotencyKey": "k-3", "balance": "9"}),
    ] {
        app.post(&url, Some(&admin), bad)
            .await
            .assert_error(400, "invalid_request");
    }
    app.post(
        &url,
        Some(&token),
        json!({"tokens": "5", "reason": "self", "idempotencyKey": "k-4"}),
    )
    .await
    .assert_error(403, "forbidden");
    app.post(
        "/api/admin/wallets/00000000-0000-7000-8000-000000000000/topup",
        Some(&admin),
        json!({"tokens": "5", "reason": "ghost", "idempotencyKey": "k-5"}),
    )
    .await
    .assert_error(404, "not_found");
    assert_eq!(
        balance(&app, &token).await.0,
        10_000_005,
        "refused top-ups changed nothing"
    );
    // Members of the tenant cannot read its ledger; owners can.
    app.get("/api/wallet/ledger", Some(&token)).await.assert_ok(200);
    let project = app.create_project(&token, "Team").await;
    let invite = app
        .post(
            &format!("/api/projects/{project}/members"),
            Some(&token),
            json!({"email": "m@example.com", "role": "admin"}),
        )
        .await;
    let url = invite.assert_ok(201)["inviteUrl"].as_str().unwrap().to_string();
    let invite_token = url.split("token=").nth(1).unwrap();
    let accepted = app
        .post(
            "/api/invites/accept",
            None,
            json!({"token": invite_token, "name": "Member", "password": "password-123"}),
        )
        .await;
    let member = accepted.assert_ok(200)["tokens"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    app.get("/api/wallet/ledger", Some(&member))
        .await
        .assert_error(403, "forbidden");
    app.get("/api/wallet/balance", Some(&member)).await.assert_ok(200);
}

/// Verification detects an edited, a removed and a reordered row.
async fn verify_detects_tampering(app: TestApp) {
    let (_, _, tenant) = app.register("v@example.com").await;
    for _ in 0..3 {
        app.topup(&tenant, 100).await;
    }
    assert_eq!(verify(&app).await["ok"], true);
    let sqlite = app.backend == tokenone_testkit::Backend::Sqlite;
    let (off, on) = if sqlite {
        ("DROP TRIGGER ledger_entries_no_update", "SELECT 1")
    } else {
        (
            "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_change",
            "ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_no_change",
        )
    };
    // The database itself refuses edits while the trigger is on.
    let refused = {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&app.db_url).await.unwrap();
        sqlx::query("UPDATE ledger_entries SET amount_tokens = 1")
            .execute(&mut c)
            .await
            .is_err()
    };
    assert!(refused, "ledger rows are append-only in the database");
    app.exec(off).await;
    app.exec(&format!(
        "UPDATE ledger_entries SET amount_tokens = 101 WHERE tenant_id = '{tenant}' AND seq = 2"
    ))
    .await;
    let v = verify(&app).await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["firstBad"]["seq"], 2);
    assert_eq!(v["firstBad"]["tenantId"], tenant.as_str());
    app.exec(&format!(
        "UPDATE ledger_entries SET amount_tokens = 100 WHERE tenant_id = '{tenant}' AND seq = 2"
    ))
    .await;
    assert_eq!(verify(&app).await["ok"], true, "restored");
    // Reordered: swap the seq of rows 2 and 3.
    app.exec(&format!(
        "UPDATE ledger_entries SET seq = 99 WHERE tenant_id = '{tenant}' AND seq = 2"
    ))
    .await;
    app.exec(&format!(
        "UPDATE ledger_entries SET seq = 2 WHERE tenant_id = '{tenant}' AND seq = 3"
    ))
    .await;
    app.exec(&format!(
        "UPDATE ledger_entries SET seq = 3 WHERE tenant_id = '{tenant}' AND seq = 99"
    ))
    .await;
    assert_eq!(verify(&app).await["ok"], false);
    app.exec(&format!(
        "UPDATE ledger_entries SET seq = 99 WHERE tenant_id = '{tenant}' AND seq = 2"
    ))
    .await;
    app.exec(&format!(
        "UPDATE ledger_entries SET seq = 2 WHERE tenant_id = '{tenant}' AND seq = 3"
    ))
    .await;
    app.exec(&format!(
        "UPDATE ledger_entries SET seq = 3 WHERE tenant_id = '{tenant}' AND seq = 99"
    ))
    .await;
    assert_eq!(verify(&app).await["ok"], true, "restored");
    if sqlite {
        app.exec("DROP TRIGGER ledger_entries_no_delete").await;
    }
    app.exec(&format!(
        "DELETE FROM ledger_entries WHERE tenant_id = '{tenant}' AND seq = 2"
    ))
    .await;
    let v = verify(&app).await;
    assert_eq!(v["ok"], false);
    assert_eq!(
        v["firstBad"]["seq"], 3,
        "the row after the gap is where the chain breaks"
    );
    app.exec(on).await;
}

/// A batch the call writer sends again (its commit went through but the answer was lost) posts
/// nothing twice: the calls already written are skipped with their money, the new ones are
/// posted, and the balance still equals the ledger.
async fn a_batch_written_again_posts_nothing_twice(app: TestApp) {
    use std::sync::Arc;
    use tokenone_core::model::{CallRecord, Settled};
    use tokenone_core::repo::CallRepo;
    use tokenone_core::services::{live::LiveConfig, secrets::server_secret, wallet::WalletService};
    use tokenone_core::vault::{MasterKey, Vault};

    let (token, _, tenant) = app.register("again@example.com").await;
    app.topup(&tenant, 1_000_000).await;
    let store = Arc::new(tokenone_store::SqlStore::connect(&app.db_url, 2).await.unwrap());
    let vault = Vault::new(MasterKey::from_base64(&app.master_key).unwrap());
    let key = server_secret(store.as_ref(), &vault, "ledger").await.unwrap();
    let wallet = WalletService::new(
        store.clone(),
        "test-writer".into(),
        LiveConfig::new(tokenone_core::config::Config::default()),
    );
    let t = tenant.parse().unwrap();
    let mut settled = Vec::new();
    for burn in [1_000u64, 2_000, 3_000] {
        let hold = wallet.reserve(t, 4_000).await.unwrap();
        let money = wallet.settle(hold, burn, 100).await;
        let record = CallRecord {
            id: uuid::Uuid::now_v7(),
            at: tokenone_core::time::now_ms(),
            tenant_id: tenant.clone(),
            project_id: uuid::Uuid::now_v7().to_string(),
            key_id: uuid::Uuid::now_v7().to_string(),
            mode: "live".into(),
            shape: "openai".into(),
            requested_model: "gpt-4o-mini".into(),
            delivered_model: Some("gpt-4o-mini".into()),
            burn_tokens: burn as i64,
            pass_back_tokens: 100,
            status: 200,
            ..Default::default()
        };
        settled.push(Settled {
            record,
            money: Some(money),
        });
    }
    store.settle_calls(&settled[..2], &key).await.unwrap();
    // Written again, with a third call: only the third is new.
    store.settle_calls(&settled, &key).await.unwrap();
    store.settle_calls(&settled, &key).await.unwrap();
    let calls = app
        .rows(&format!("SELECT COUNT(*) AS n FROM calls WHERE tenant_id = '{tenant}'"))
        .await;
    assert_eq!(calls[0]["n"], 3);
    // Per call: a burn and a pass-back entry; plus the top-up.
    let ledger = app
        .rows(&format!(
            "SELECT COUNT(*) AS n FROM ledger_entries WHERE tenant_id = '{tenant}'"
        ))
        .await;
    assert_eq!(ledger[0]["n"], 7);
    wallet.return_idle(std::time::Duration::ZERO).await;
    let (balance, _) = balance(&app, &token).await;
    assert_eq!(balance, 1_000_000 - 6_000 + 300);
    assert_eq!(verify(&app).await["ok"], true);
    store.close().await;
}

both_backends!(
    unfunded_wallet_refuses_with_402,
    settlement_matches_the_formulas,
    fifty_calls_five_funded,
    fifty_calls_five_funded_two_replicas,
    upstream_failure_debits_nothing,
    client_cut_stream_settles_once,
    topups_are_idempotent,
    verify_detects_tampering,
    a_batch_written_again_posts_nothing_twice,
);
