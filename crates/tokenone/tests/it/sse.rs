//! Live project events over real HTTP (workspace.md "Live events"): the `connected` frame,
//! heartbeats and presence, every event type with its payload, `Last-Event-ID` replay,
//! authentication before the stream starts, fan-out across replicas (Redis on PostgreSQL), and a
//! clean end at server shutdown.

use crate::workspace::{chat, join, path, wait_events, world, World};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes_stream::SseStream;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::{Duration, Instant};
use tokenone_core::secret::Secret;
use tokenone_testkit::{both_backends, Backend, TestApp};

const WAIT: Duration = Duration::from_secs(15);
const JWT_SECRET: &str = "sse-test-jwt-secret-0123456789abcdef";

mod bytes_stream {
    use futures::StreamExt;
    use serde_json::Value;
    use std::pin::Pin;
    use std::time::Duration;

    type Chunks = Pin<Box<dyn futures::Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

    /// One SSE block: its fields, or a comment.
    #[derive(Debug, Clone, Default)]
    pub struct Frame {
        pub id: Option<i64>,
        pub event: Option<String>,
        pub data: Option<Value>,
        pub comment: Option<String>,
    }

    impl Frame {
        pub fn is(&self, event: &str) -> bool {
            self.event.as_deref() == Some(event)
        }
        pub fn data(&self) -> &Value {
            self.data.as_ref().unwrap_or(&Value::Null)
        }
    }

    /// Reads an SSE response block by block.
    pub struct SseStream {
        chunks: Chunks,
        buf: String,
        pub ended: bool,
    }

    impl SseStream {
        pub fn new(resp: reqwest::Response) -> Self {
            SseStream {
                chunks: Box::pin(resp.bytes_stream().map(|r| r.map(|b| b.to_vec()))),
                buf: String::new(),
                ended: false,
            }
        }

        fn parse(block: &str) -> Frame {
            let mut f = Frame::default();
            for line in block.lines() {
                if let Some(c) = line.strip_prefix(':') {
                    f.comment = Some(c.trim().to_string());
                } else if let Some(v) = line.strip_prefix("id: ") {
                    f.id = Some(v.parse().unwrap_or_else(|_| panic!("non-numeric id {v}")));
                } else if let Some(v) = line.strip_prefix("event: ") {
                    f.event = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    f.data = Some(serde_json::from_str(v).unwrap_or_else(|e| panic!("data is not JSON ({e}): {v}")));
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            f
        }

        /// The next block, `None` when the stream ends or `wait` passes.
        pub async fn next(&mut self, wait: Duration) -> Option<Frame> {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                if let Some(at) = self.buf.find("\n\n") {
                    let block: String = self.buf.drain(..at + 2).collect();
                    return Some(Self::parse(block.trim_end_matches('\n')));
                }
                if self.ended {
                    return None;
                }
                match tokio::time::timeout_at(deadline, self.chunks.next()).await {
                    Err(_) => return None,
                    Ok(Some(Ok(b))) => self.buf.push_str(std::str::from_utf8(&b).expect("utf-8")),
                    Ok(_) => self.ended = true,
                }
            }
        }

        /// Reads until a block matches; panics with what was seen after `wait`.
        pub async fn until(&mut self, what: &str, wait: Duration, pred: impl Fn(&Frame) -> bool) -> Frame {
            let deadline = std::time::Instant::now() + wait;
            let mut seen = Vec::new();
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match self.next(left).await {
                    Some(f) if pred(&f) => return f,
                    Some(f) => seen.push(format!("{:?} {:?} {:?}", f.event, f.id, f.comment)),
                    None => panic!("no {what} within {wait:?} (ended: {}); saw {seen:?}", self.ended),
                }
            }
        }
    }
}

async fn open(app: &TestApp, pid: &str, token: &str, last_event_id: Option<&str>) -> SseStream {
    let mut req = app
        .client
        .get(app.url(&path(pid, "events")))
        .bearer_auth(token)
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let resp = req.send().await.expect("events");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    SseStream::new(resp)
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

#[track_caller]
fn assert_decimal(v: &Value, k: &str) {
    let s = str_of(v, k);
    assert!(
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
        "{k} = {s:?} is not a decimal string"
    );
}

/// The frame of a stored event: `{type, projectId, tenantId, actorUserId, at, payload}`.
#[track_caller]
fn assert_frame(f: &bytes_stream::Frame, kind: &str, pid: &str) {
    let d = f.data();
    let mut keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["actorUserId", "at", "payload", "projectId", "tenantId", "type"],
        "{d}"
    );
    assert_eq!(d["type"], kind);
    assert_eq!(d["projectId"], json!(pid));
    assert_eq!(str_of(d, "at").len(), 24, "{d}");
    assert!(str_of(d, "at").ends_with('Z'));
}

async fn stream_shows_connected_heartbeats_presence_and_every_event(app: TestApp) {
    let w = world(app, |c| c.sse.heartbeat_seconds = 1).await;
    let (app, pid, token) = (&w.app, w.project.as_str(), w.token.as_str());
    let tenant = app.tenant_of(token).await;
    let mut sse = open(app, pid, token, None).await;

    let first = sse.next(WAIT).await.expect("first frame");
    assert!(first.is("connected"), "{first:?}");
    assert_eq!(first.data()["projectId"], json!(pid));
    assert_eq!(str_of(first.data(), "at").len(), 24);
    assert_eq!(first.id, None);

    // Presence when the stream opens, then heartbeat comments (every second here) with presence.
    let p = sse
        .until("presence on open", WAIT, |f| f.is("presence.heartbeat"))
        .await;
    assert_frame(&p, "presence.heartbeat", pid);
    assert_eq!(p.data()["payload"], json!({"userId": w.user_id, "name": "owner"}));
    assert_eq!(p.data()["actorUserId"], json!(w.user_id));
    assert_eq!(p.id, None, "presence is live only");
    let hb = sse
        .until("a heartbeat", Duration::from_secs(5), |f| f.comment.is_some())
        .await;
    let ms = hb
        .comment
        .unwrap()
        .strip_prefix("heartbeat ")
        .expect("heartbeat comment")
        .to_string();
    let ms: i64 = ms.parse().expect("epoch ms");
    assert!(ms > 1_700_000_000_000, "{ms}");
    sse.until("presence with the heartbeat", Duration::from_secs(5), |f| {
        f.is("presence.heartbeat")
    })
    .await;

    // A sandbox call: `llm.call` with its figures as decimal strings.
    let a = chat(app, &w.dev).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let call_id = a.header("x-tokenone-call-id").unwrap().to_string();
    let f = sse.until("llm.call", WAIT, |f| f.is("llm.call")).await;
    assert_frame(&f, "llm.call", pid);
    assert_eq!(f.data()["tenantId"], json!(tenant));
    assert_eq!(f.data()["actorUserId"], Value::Null);
    let first_id = f.id.expect("stored events carry their sequence");
    let pl = &f.data()["payload"];
    let mut keys: Vec<&str> = pl.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "burnTokens",
            "callId",
            "deliveredModel",
            "inputTokens",
            "keyId",
            "latencyMs",
            "mode",
            "outputTokens",
            "passBackTokens",
            "provider",
            "requestedModel",
            "savingsTokens",
            "shape",
            "status",
            "tier"
        ]
    );
    assert_eq!(pl["callId"], json!(call_id));
    assert_eq!(
        (pl["mode"].clone(), pl["shape"].clone()),
        (json!("dev"), json!("openai"))
    );
    assert_eq!(pl["requestedModel"], "gpt-4o-mini");
    assert_eq!(pl["deliveredModel"], "gpt-4o-mini");
    assert_eq!(pl["status"], 200);
    assert!(pl["latencyMs"].is_i64());
    for k in [
        "inputTokens",
        "outputTokens",
        "burnTokens",
        "savingsTokens",
        "passBackTokens",
    ] {
        assert_decimal(pl, k);
    }
    assert_ne!(pl["outputTokens"], "0");

    // A live call is priced before it is published.
    assert_eq!(chat(app, &w.live).await.status, 200);
    let f = sse
        .until("live llm.call", WAIT, |f| {
            f.is("llm.call") && f.data()["payload"]["mode"] == "live"
        })
        .await;
    assert_ne!(f.data()["payload"]["burnTokens"], "0");
    assert!(f.id.unwrap() > first_id);

    // Stage, archive and membership events, with the acting user.
    app.call(Method::POST, &path(pid, "stage"), Some(token), None)
        .await
        .assert_ok(200);
    let f = sse.until("stage.changed", WAIT, |f| f.is("stage.changed")).await;
    assert_frame(&f, "stage.changed", pid);
    assert_eq!(f.data()["payload"], json!({"from": "build", "to": "live"}));
    assert_eq!(f.data()["actorUserId"], json!(w.user_id));
    app.post(&path(pid, "archive"), Some(token), json!({"archived": true}))
        .await
        .assert_ok(200);
    let f = sse.until("archive.changed", WAIT, |f| f.is("archive.changed")).await;
    assert_eq!(f.data()["payload"], json!({"archived": true}));
    let inv = app
        .post(
            &format!("/api/projects/{pid}/members"),
            Some(token),
            json!({"email": "new@workspace.test", "role": "developer"}),
        )
        .await;
    let member_id = str_of(inv.assert_ok(201), "id").to_string();
    let f = sse.until("member.invited", WAIT, |f| f.is("member.invited")).await;
    assert_eq!(
        f.data()["payload"],
        json!({"memberId": member_id, "email": "new@workspace.test", "role": "developer"})
    );
    app.delete(&format!("/api/projects/{pid}/members/{member_id}"), Some(token))
        .await
        .assert_ok(200);
    let f = sse.until("member.removed", WAIT, |f| f.is("member.removed")).await;
    assert_eq!(f.data()["payload"]["memberId"], json!(member_id));

    // Another user opening a stream shows up as present for everyone.
    let (viewer, _) = join(app, token, pid, "viewer@workspace.test", "viewer").await;
    let mut other = open(app, pid, &viewer, None).await;
    assert!(other.next(WAIT).await.unwrap().is("connected"));
    let f = sse
        .until("the viewer's presence", WAIT, |f| {
            f.is("presence.heartbeat") && f.data()["payload"]["name"] == "viewer"
        })
        .await;
    assert_ne!(f.data()["payload"]["userId"], json!(w.user_id));
}

/// Re-signs an access token of this app (whose JWT secret the test set) with `exp` in the past.
fn expired(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    claims["iat"] = json!(now - 4000);
    claims["exp"] = json!(now - 3600);
    let input = format!("{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(JWT_SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

async fn stream_authenticates_before_it_starts(app: TestApp) {
    let w = world(app, |c| c.auth.jwt_secret = Secret::new(JWT_SECRET)).await;
    let (app, pid) = (&w.app, w.project.as_str());
    let url = app.url(&path(pid, "events"));
    let json_401 = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 401);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let a = TestApp::answer(r).await;
        a.assert_error(401, "unauthenticated");
    };
    json_401(app.client.get(&url).send().await.unwrap()).await;
    json_401(app.client.get(&url).bearer_auth("not-a-jwt").send().await.unwrap()).await;
    let stale = expired(&w.token);
    json_401(app.client.get(&url).bearer_auth(&stale).send().await.unwrap()).await;
    json_401(
        app.client
            .get(&url)
            .header("cookie", format!("accessToken={stale}"))
            .send()
            .await
            .unwrap(),
    )
    .await;

    // Browsers' EventSource sends the session cookie: that works (no CSRF token on a GET).
    let login = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "owner@workspace.test", "password": "password-123"}),
        )
        .await;
    let cookie = login.cookie("accessToken").expect("accessToken cookie");
    let resp = app
        .client
        .get(&url)
        .header("cookie", format!("accessToken={cookie}"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut sse = SseStream::new(resp);
    assert!(sse.next(WAIT).await.unwrap().is("connected"));

    // Another tenant's user: 404, the project's existence is not confirmed.
    let (stranger, _, _) = app.register("stranger@elsewhere.test").await;
    let a = app.get(&path(pid, "events"), Some(&stranger)).await;
    a.assert_error(404, "not_found");
}

async fn last_event_id_replays_what_was_missed(app: TestApp) {
    let w = world(app, |_| {}).await;
    let (app, pid, token) = (&w.app, w.project.as_str(), w.token.as_str());
    let tenant = app.tenant_of(token).await;
    // 1,200 stored events, as if the project had been busy.
    app.exec(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200)
         INSERT INTO project_events (id, project_id, seq, tenant_id, type, actor_user_id, at, payload)
         SELECT 'seed-' || i, '{pid}', i, '{tenant}', 'stage.changed', NULL, 1700000000000 + i,
                '{{\"from\":\"build\",\"to\":\"live\"}}' FROM n"
    ))
    .await;
    app.exec(&format!(
        "INSERT INTO project_event_counters (project_id, seq) VALUES ('{pid}', 1200)"
    ))
    .await;

    // Resuming after 100: the 1,100 missed events, in order, before anything live.
    let mut sse = open(app, pid, token, Some("100")).await;
    assert!(sse.next(WAIT).await.unwrap().is("connected"));
    let mut expect = 101;
    while expect <= 1200 {
        let f = sse.next(WAIT).await.expect("replayed event");
        if f.id.is_none() {
            // Presence is live only and may interleave; it has no id.
            assert!(f.is("presence.heartbeat"), "{f:?}");
            continue;
        }
        assert_eq!(f.id, Some(expect));
        assert_frame(&f, "stage.changed", pid);
        assert_eq!(f.data()["payload"], json!({"from": "build", "to": "live"}));
        expect += 1;
    }
    // Then live ones, numbered on.
    app.call(Method::POST, &path(pid, "stage"), Some(token), None)
        .await
        .assert_ok(200);
    let f = sse.until("the live event", WAIT, |f| f.id.is_some()).await;
    assert_eq!(f.id, Some(1201));
    assert_eq!(f.data()["payload"], json!({"from": "build", "to": "live"}));

    // Up to date: nothing replayed. No header: nothing replayed either.
    for header in [Some("1201"), None, Some("not-a-number")] {
        let mut s = open(app, pid, token, header).await;
        assert!(s.next(WAIT).await.unwrap().is("connected"));
        app.call(Method::POST, &path(pid, "stage"), Some(token), None)
            .await
            .assert_ok(200);
        let f = s.until("the next live event", WAIT, |f| f.id.is_some()).await;
        assert!(f.id.unwrap() > 1201, "{header:?} replayed {f:?}");
    }
}

async fn events_cross_replicas(a: TestApp) {
    let w: World = world(a, |_| {}).await;
    let (app, pid, token) = (&w.app, w.project.as_str(), w.token.as_str());
    let b = app.replica(|_| {}).await;
    let mut on_b = open(&b, pid, token, None).await;
    assert!(on_b.next(WAIT).await.unwrap().is("connected"));

    // Fired on A: a stage change and a proxy call.
    app.call(Method::POST, &path(pid, "stage"), Some(token), None)
        .await
        .assert_ok(200);
    assert_eq!(chat(app, &w.dev).await.status, 200);
    let stored = wait_events(app, pid, 2).await;
    let last = stored.last().unwrap()["seq"].as_i64().unwrap();
    if app.backend == Backend::Postgres {
        // With Redis, B's watcher sees A's events live.
        let f = on_b
            .until("A's stage.changed on B", WAIT, |f| f.is("stage.changed"))
            .await;
        assert_eq!(f.data()["payload"], json!({"from": "build", "to": "live"}));
        let f = on_b.until("A's llm.call on B", WAIT, |f| f.is("llm.call")).await;
        assert_eq!(f.id, Some(last));
        // And A's watcher sees B's.
        let mut on_a = open(app, pid, token, None).await;
        assert!(on_a.next(WAIT).await.unwrap().is("connected"));
        b.call(Method::POST, &path(pid, "stage"), Some(token), None)
            .await
            .assert_ok(200);
        let f = on_a
            .until("B's stage.changed on A", WAIT, |f| f.is("stage.changed"))
            .await;
        assert_eq!(f.data()["payload"], json!({"from": "live", "to": "build"}));
    }
    // Without Redis delivery is single-process, but the history is shared: a watcher on B
    // resuming with Last-Event-ID gets A's events.
    let mut resumed = open(&b, pid, token, Some("0")).await;
    assert!(resumed.next(WAIT).await.unwrap().is("connected"));
    let f = resumed
        .until("A's events replayed on B", WAIT, |f| f.id == Some(last))
        .await;
    assert!(f.is("llm.call"));

    // Sequence numbers stay unique and gapless when both replicas store events at once.
    let before = wait_events(app, pid, 0).await.len();
    let members = format!("/api/projects/{pid}/members");
    let invites: Vec<_> = (0..12)
        .map(|i| {
            let target = if i % 2 == 0 { app } else { &b };
            target.post(
                &members,
                Some(token),
                json!({"email": format!("m{i}@workspace.test"), "role": "viewer"}),
            )
        })
        .collect();
    for r in futures::future::join_all(invites).await {
        r.assert_ok(201);
    }
    let all = wait_events(app, pid, before + 12).await;
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "gapless, no duplicates"
    );
    b.stop().await;
}

async fn streams_end_when_the_server_shuts_down(app: TestApp) {
    let w = world(app, |_| {}).await;
    let pid = w.project.clone();
    let mut sse = open(&w.app, &pid, &w.token, None).await;
    assert!(sse.next(WAIT).await.unwrap().is("connected"));
    let started = Instant::now();
    let stopping = tokio::spawn(w.app.stop());
    // The stream ends (no waiting out the 30 s drain grace period).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sse.ended {
        assert!(Instant::now() < deadline, "the stream did not end at shutdown");
        let _ = sse.next(Duration::from_millis(200)).await;
    }
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the server stopped")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
}

both_backends!(
    stream_shows_connected_heartbeats_presence_and_every_event,
    stream_authenticates_before_it_starts,
    last_event_id_replays_what_was_missed,
    events_cross_replicas,
    streams_end_when_the_server_shuts_down,
);
