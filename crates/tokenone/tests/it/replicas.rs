//! Several replicas of one installation sharing the database (and Redis on PostgreSQL).

use serde_json::json;
use tokenone_testkit::{both_backends, Backend, TestApp};

async fn chat(app: &TestApp, key: &str) -> u16 {
    app.client
        .post(app.url("/v1/openai-proxy/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Sessions, keys and secrets made on one replica work on the other; with Redis the rate-limit
/// bucket is shared, so the limit holds across replicas.
async fn replicas_share_state(a: TestApp) {
    let b = a.replica(|_| {}).await;
    let token = a.admin_token().await;
    let me = b.get("/api/auth/me", Some(&token)).await;
    me.assert_ok(200);
    let project = a.create_project(&token, "Shared").await;
    let (key, key_id) = a
        .create_key(
            &token,
            &project,
            json!({"name": "k", "mode": "dev", "rateLimitPerMinute": {"openai": 3}}),
        )
        .await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let app = if i % 2 == 0 { &a } else { &b };
        statuses.push(chat(app, &key).await);
    }
    if a.backend == Backend::Postgres {
        assert_eq!(statuses, vec![200, 200, 200, 429], "one bucket across replicas (Redis)");
    } else {
        // Without Redis each replica has its own bucket: nobody is refused yet.
        assert_eq!(statuses, vec![200, 200, 200, 200]);
    }
    // Revoked on A: refused on B (B's cache may hold the key for under a second).
    let r = a
        .delete(&format!("/api/tokenone/projects/{project}/keys/{key_id}"), Some(&token))
        .await;
    r.assert_ok(200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    loop {
        let s = chat(&b, &key).await;
        if s == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revocation not effective on the other replica within a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

both_backends!(replicas_share_state);
