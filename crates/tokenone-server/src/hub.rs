//! Live project events (workspace.md "Live events"): the server's [`EventSink`].
//!
//! `publish` only queues (never blocks, never fails the caller). One background writer takes
//! the queue in batches, stores the events with their per-project sequence (for `Last-Event-ID`
//! replay), then fans them out: to this process's watchers at once, and with Redis configured
//! to every other replica through pub/sub, whose subscriber hands them to its own watchers.
//! Presence heartbeats skip storage (they are live only and carry no `id:`).
//!
//! Each watcher reads a per-project broadcast ring: a watcher more than [`WATCHER_BUFFER`]
//! frames behind is disconnected (it reconnects with `Last-Event-ID`), so a slow client can
//! never hold anyone up.

use crate::door::{Door, Wait};
use crate::pubsub;
use bytes::Bytes;
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokenone_core::events::{kinds, Event, EventSink};
use tokenone_core::ids::ProjectId;
use tokenone_core::model::User;
use tokenone_core::services::projects::ProjectService;
use tokenone_core::time::{format_ms, now_ms};
use tokenone_core::workspace::WorkspaceRepo;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Events queued above which new proxy calls wait at the door ([`EventHub::admit`]): each call
/// publishes one `llm.call`, so a store that lags slows the calls down instead of the queue
/// growing (about 1 KiB an event: ~8 MiB).
const HIGH_WATER: i64 = 8_192;
/// Events waiting for the writer at most; beyond this, new ones are dropped (and counted). Only
/// events from outside the proxy (presence, workspace changes) can push the queue past the
/// high-water mark while calls wait at the door.
const QUEUE: usize = 16_384;
/// Events stored per transaction at most.
const BATCH: usize = 256;
/// How long the writer waits for more events before storing a batch.
const LINGER: Duration = Duration::from_millis(20);
/// Frames a watcher may fall behind before it is disconnected.
pub const WATCHER_BUFFER: usize = 256;
/// Events kept per project for replay (at least the last 1,000 are promised).
const KEEP: i64 = 10_000;
/// Replay page size.
const REPLAY_PAGE: i64 = 500;

/// One SSE frame ready to send, with its sequence number when it has one.
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: Option<i64>,
    pub bytes: Bytes,
}

enum Msg {
    Event(Box<Event>),
    Flush(oneshot::Sender<()>),
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    local: Mutex<HashMap<ProjectId, broadcast::Sender<Frame>>>,
    repo: Arc<dyn WorkspaceRepo>,
    cancel: CancellationToken,
    watchers: Gauge,
    dropped: Counter,
    /// Events queued and not yet stored (the `event_queue_depth` metric), and the calls waiting
    /// for it to fall.
    door: Door,
}

/// The event hub; cheap to clone.
#[derive(Clone)]
pub struct EventHub(Arc<Inner>);

/// Redis fan-out: the shared connection to publish on, the URL to subscribe with, the channel.
pub struct RedisFanout {
    pub conn: redis::aio::ConnectionManager,
    pub url: String,
    pub channel: String,
}

/// What crosses Redis: a batch of frames from one replica.
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    replica: String,
    frames: Vec<WireFrame>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WireFrame {
    project: ProjectId,
    seq: Option<i64>,
    text: String,
}

/// How a [`Wire`] message from `replica` starts (serde writes fields in declaration order).
fn wire_prefix(replica: &str) -> String {
    format!("{{\"replica\":{},", serde_json::Value::from(replica))
}

/// The SSE text of an event: `id:` (when stored), `event:`, `data:`.
fn sse_text(seq: Option<i64>, e: &Event) -> String {
    let mut s = String::with_capacity(256);
    if let Some(n) = seq {
        s.push_str(&format!("id: {n}\n"));
    }
    s.push_str(&format!("event: {}\ndata: {}\n\n", e.kind, e.frame()));
    s
}

impl EventHub {
    /// Starts the writer and, with Redis, subscribes before returning, so events other replicas
    /// fire from now on reach this one.
    pub async fn start(repo: Arc<dyn WorkspaceRepo>, redis: Option<RedisFanout>, replica: String) -> EventHub {
        let (tx, rx) = mpsc::channel(QUEUE);
        let hub = EventHub(Arc::new(Inner {
            tx,
            local: Mutex::new(HashMap::new()),
            repo,
            cancel: CancellationToken::new(),
            watchers: Gauge::default(),
            dropped: Counter::default(),
            door: Door::new(HIGH_WATER),
        }));
        let (publisher, subscription) = match redis {
            Some(r) => {
                let sub = pubsub::subscribe(&r.url, &topic(&r.channel)).await;
                (Some((r.conn, r.channel.clone())), Some((r.url, r.channel, sub)))
            }
            None => (None, None),
        };
        tokio::spawn(hub.clone().write_loop(rx, publisher, replica.clone()));
        if let Some((url, channel, sub)) = subscription {
            tokio::spawn(hub.clone().listen(url, channel, sub, replica));
        }
        hub
    }

    /// Current SSE watchers (metric).
    pub fn watchers_gauge(&self) -> Gauge {
        self.0.watchers.clone()
    }

    /// Events dropped because the queue was full (metric).
    pub fn dropped_counter(&self) -> Counter {
        self.0.dropped.clone()
    }

    /// Events queued and not yet stored (metric).
    pub fn queue_depth(&self) -> Gauge {
        self.0.door.depth.clone()
    }

    /// Waits while more than [`HIGH_WATER`] events wait to be stored; `false` when the queue
    /// stayed that long until the call's deadline (`wait`: `door::ADMIT_WAIT` at all the doors
    /// together; the proxy answers 503). Free when the hub keeps up.
    pub(crate) async fn admit(&self, wait: &mut Wait) -> bool {
        self.0.door.admit(wait).await
    }

    /// The sender to this process's live watchers of `project`; `None` when nobody watches it.
    fn watchers(&self, project: ProjectId) -> Option<broadcast::Sender<Frame>> {
        let map = self.0.local.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&project).filter(|tx| tx.receiver_count() > 0).cloned()
    }

    /// Subscribes to `project`'s live frames (before reading the replay, so nothing falls
    /// between the two).
    pub fn watch(&self, project: ProjectId) -> Watch {
        let mut map = self.0.local.lock().unwrap_or_else(|p| p.into_inner());
        let rx = map
            .entry(project)
            .or_insert_with(|| broadcast::channel(WATCHER_BUFFER).0)
            .subscribe();
        self.0.watchers.inc();
        Watch {
            hub: self.clone(),
            project,
            rx,
        }
    }

    /// Stops the Redis subscriber and writes what is queued (server shutdown).
    pub async fn shutdown(&self) {
        self.0.cancel.cancel();
        let (tx, rx) = oneshot::channel();
        let flushed = async {
            if self.0.tx.send(Msg::Flush(tx)).await.is_ok() {
                let _ = rx.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), flushed).await.is_err() {
            tracing::warn!("event writer did not flush within 5 s at shutdown");
        }
    }

    /// Waits until every event published before this call is stored and delivered.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.0.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn write_loop(
        self,
        mut rx: mpsc::Receiver<Msg>,
        publisher: Option<(redis::aio::ConnectionManager, String)>,
        replica: String,
    ) {
        let mut pruned_at: HashMap<ProjectId, i64> = HashMap::new();
        let mut batch: Vec<Event> = Vec::with_capacity(BATCH);
        let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
        while let Some(first) = rx.recv().await {
            // Group commit: gather what arrives within LINGER (or a full batch), so a burst of
            // calls costs one transaction, not one each. A flush request ends the wait.
            let deadline = tokio::time::Instant::now() + LINGER;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Event(e) => batch.push(*e),
                    Msg::Flush(w) => waiters.push(w),
                }
                if batch.len() >= BATCH {
                    break;
                }
                next = match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(_) if !waiters.is_empty() => None,
                    Err(_) => tokio::time::timeout_at(deadline, rx.recv()).await.ok().flatten(),
                };
            }
            // Usually every event is stored (presence is the ephemeral kind): no copy then.
            let mut seqs = if batch.iter().any(|e| e.is_ephemeral()) {
                let stored: Vec<Event> = batch.iter().filter(|e| !e.is_ephemeral()).cloned().collect();
                self.store_with_retry(&stored).await
            } else {
                self.store_with_retry(&batch).await
            }
            .into_iter();
            let taken = batch.len();
            let mut frames = Vec::with_capacity(batch.len());
            for e in batch.drain(..) {
                let seq = if e.is_ephemeral() { None } else { seqs.next().flatten() };
                if let Some(s) = seq {
                    let last = pruned_at.entry(e.project_id).or_insert(s);
                    if s - *last >= 1000 {
                        *last = s;
                        if let Err(err) = self.0.repo.prune_events(e.project_id, KEEP).await {
                            tracing::warn!(error = %err, "pruning old events failed");
                        }
                    }
                }
                // Nobody to send it to (no watcher here, no other replica): the frame is not built,
                // which was ~2.5 % of the gateway's CPU at saturation. A watcher that subscribes just
                // after this check still gets the event: it subscribes before reading the replay,
                // and the event is already stored.
                let local = self.watchers(e.project_id);
                if publisher.is_none() && local.is_none() {
                    continue;
                }
                let text = sse_text(seq, &e);
                if publisher.is_some() {
                    frames.push(WireFrame {
                        project: e.project_id,
                        seq,
                        text: text.clone(),
                    });
                }
                if let Some(tx) = local {
                    // A watcher gone since the lookup is fine: nobody watches.
                    let _ = tx.send(Frame {
                        seq,
                        bytes: Bytes::from(text),
                    });
                }
            }
            if let (Some((conn, channel)), false) = (&publisher, frames.is_empty()) {
                let wire = Wire {
                    replica: replica.clone(),
                    frames,
                };
                match serde_json::to_string(&wire) {
                    Ok(payload) => pubsub::publish(conn.clone(), &topic(channel), payload).await,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot encode events for Redis; other replicas miss them live")
                    }
                }
            }
            self.0.door.written(taken);
            for w in waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    /// Stores events; on repeated failure they still go out live, without a sequence number.
    async fn store_with_retry(&self, events: &[Event]) -> Vec<Option<i64>> {
        if events.is_empty() {
            return Vec::new();
        }
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=4 {
            match self.0.repo.append_events(events).await {
                Ok(seqs) => return seqs.into_iter().map(Some).collect(),
                Err(e) if attempt < 4 => {
                    tracing::warn!(error = %e, attempt, "storing events failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
                Err(e) => {
                    tracing::error!(error = %e, events = events.len(), "storing events failed; delivering them live only")
                }
            }
        }
        vec![None; events.len()]
    }

    async fn listen(self, url: String, channel: String, mut sub: Option<redis::aio::PubSubStream>, replica: String) {
        let mut backoff = Duration::from_millis(200);
        let own_prefix = wire_prefix(&replica);
        loop {
            let Some(stream) = sub.as_mut() else {
                tokio::select! {
                    _ = self.0.cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                sub = pubsub::subscribe(&url, &topic(&channel)).await;
                continue;
            };
            let msg = tokio::select! {
                _ = self.0.cancel.cancelled() => return,
                m = stream.next() => m,
            };
            let Some(msg) = msg else {
                tracing::warn!("event subscription closed; resubscribing");
                sub = None;
                continue;
            };
            backoff = Duration::from_millis(200);
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            // This replica's own messages come back too; they start with its id (the first
            // field), so they are skipped without parsing.
            if payload.starts_with(&own_prefix) {
                continue;
            }
            let Ok(wire) = serde_json::from_str::<Wire>(&payload) else {
                tracing::warn!("ignoring a malformed event message from Redis");
                continue;
            };
            if wire.replica == replica {
                continue;
            }
            for f in wire.frames {
                if let Some(tx) = self.watchers(f.project) {
                    // A watcher gone since the lookup is fine: nobody watches.
                    let _ = tx.send(Frame {
                        seq: f.seq,
                        bytes: Bytes::from(f.text),
                    });
                }
            }
        }
    }

    /// A project's stored events after `after`, as SSE text, and the last sequence in it.
    async fn replay_page(
        &self,
        project: ProjectId,
        after: i64,
    ) -> tokenone_core::Result<(Vec<u8>, Option<i64>, usize)> {
        let page = self.0.repo.events_after(project, after, REPLAY_PAGE).await?;
        let mut out = Vec::new();
        for e in &page {
            out.extend_from_slice(sse_text(Some(e.seq), &e.event).as_bytes());
        }
        Ok((out, page.last().map(|e| e.seq), page.len()))
    }

    /// The SSE stream of one watcher: `connected`, the replay after `last_event_id`, then live
    /// frames and heartbeats until the client leaves, falls behind, loses access, or the server
    /// shuts down (`shutdown`).
    pub fn stream(
        &self,
        watcher: Watcher,
        last_event_id: Option<i64>,
        heartbeat: Duration,
        shutdown: CancellationToken,
    ) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
        let project = watcher.access_project;
        let watch = self.watch(project);
        self.presence(&watcher);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let state = StreamState {
            hub: self.clone(),
            watch,
            watcher,
            phase: Phase::Connected,
            after: last_event_id.unwrap_or(0),
            replay: last_event_id.is_some(),
            replayed_up_to: 0,
            tick,
            shutdown,
        };
        futures::stream::unfold(state, |mut s| async move {
            let bytes = s.next_frame().await?;
            Some((Ok(bytes), s))
        })
    }

    /// `presence.heartbeat` of a watcher, to everyone watching the project.
    fn presence(&self, w: &Watcher) {
        self.publish(Event::now(
            w.access_project,
            w.user.tenant_id,
            Some(w.user.id),
            kinds::PRESENCE_HEARTBEAT,
            json!({"userId": w.user.id, "name": w.user.name}),
        ));
    }
}

impl EventSink for EventHub {
    fn publish(&self, event: Event) {
        // Counted before it is queued, so the writer never lowers the depth below zero.
        self.0.door.depth.inc();
        match self.0.tx.try_send(Msg::Event(Box::new(event))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.0.door.depth.dec();
                self.0.dropped.inc();
                tracing::warn!("event queue full; an event was dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.0.door.depth.dec();
            }
        }
    }
}

/// The topic of project events on `channel`.
fn topic(channel: &str) -> pubsub::Topic<'_> {
    pubsub::Topic {
        channel,
        carries: "project events",
        unsubscribed: "this replica sees only its own events",
        unpublished: "other replicas miss them live",
    }
}

/// A watcher's live subscription; unsubscribes when dropped.
pub struct Watch {
    hub: EventHub,
    project: ProjectId,
    rx: broadcast::Receiver<Frame>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.hub.0.watchers.dec();
        let mut map = self.hub.0.local.lock().unwrap_or_else(|p| p.into_inner());
        // This receiver is still alive here: it is the last one when the count is 1.
        if map.get(&self.project).is_some_and(|tx| tx.receiver_count() <= 1) {
            map.remove(&self.project);
        }
    }
}

/// Who watches: the user (for presence) and how to re-check their access on each heartbeat.
pub struct Watcher {
    pub user: User,
    pub access_project: ProjectId,
    pub projects: ProjectService,
}

enum Phase {
    Connected,
    Replay,
    Live,
}

struct StreamState {
    hub: EventHub,
    watch: Watch,
    watcher: Watcher,
    phase: Phase,
    after: i64,
    replay: bool,
    /// The highest sequence sent by the replay: live copies of those are skipped.
    replayed_up_to: i64,
    tick: tokio::time::Interval,
    shutdown: CancellationToken,
}

impl StreamState {
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            match self.phase {
                Phase::Connected => {
                    self.phase = if self.replay { Phase::Replay } else { Phase::Live };
                    let data: Value = json!({"projectId": self.watcher.access_project, "at": format_ms(now_ms())});
                    return Some(Bytes::from(format!("event: connected\ndata: {data}\n\n")));
                }
                Phase::Replay => {
                    let page = tokio::select! {
                        _ = self.shutdown.cancelled() => return None,
                        p = self.hub.replay_page(self.watcher.access_project, self.after) => p,
                    };
                    match page {
                        Ok((bytes, Some(last), n)) => {
                            self.after = last;
                            self.replayed_up_to = last;
                            if (n as i64) < REPLAY_PAGE {
                                self.phase = Phase::Live;
                            }
                            return Some(Bytes::from(bytes));
                        }
                        Ok(_) => self.phase = Phase::Live,
                        Err(e) => {
                            tracing::warn!(error = %e, "event replay failed; continuing live");
                            self.phase = Phase::Live;
                        }
                    }
                }
                Phase::Live => {
                    tokio::select! {
                        // Shutdown first: a busy stream must not keep the server draining.
                        biased;
                        _ = self.shutdown.cancelled() => return None,
                        _ = self.tick.tick() => {
                            // A member removed meanwhile stops receiving.
                            if let Err(tokenone_core::Error::NotFound(_)) =
                                self.watcher.projects.access(&self.watcher.user, self.watcher.access_project).await
                            {
                                return None;
                            }
                            self.hub.presence(&self.watcher);
                            return Some(Bytes::from(format!(": heartbeat {}\n\n", now_ms())));
                        }
                        r = self.watch.rx.recv() => match r {
                            Ok(f) if f.seq.is_some_and(|s| s <= self.replayed_up_to) => continue,
                            Ok(f) => return Some(f.bytes),
                            Err(broadcast::error::RecvError::Lagged(n)) => {
                                tracing::info!(missed = n, "an SSE watcher fell too far behind; disconnecting it");
                                return None;
                            }
                            Err(broadcast::error::RecvError::Closed) => return None,
                        },
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokenone_core::ids::{TenantId, UserId};
    use tokenone_core::roles::TenantRole;
    use tokenone_core::services::live::LiveConfig;
    use tokenone_store::SqlStore;

    #[test]
    fn own_messages_are_recognised_by_their_prefix() {
        for replica in ["r-1", "a\"quoted\\id"] {
            let text = serde_json::to_string(&Wire {
                replica: replica.to_string(),
                frames: vec![],
            })
            .expect("serializes");
            assert!(text.starts_with(&wire_prefix(replica)), "{text}");
            assert!(!text.starts_with(&wire_prefix("r-2")), "{text}");
        }
        // A replica whose id extends another's is not mistaken for it.
        let other = serde_json::to_string(&Wire {
            replica: "r-10".into(),
            frames: vec![],
        })
        .expect("serializes");
        assert!(!other.starts_with(&wire_prefix("r-1")));
    }

    async fn store() -> (Arc<SqlStore>, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("tokenone-hub-{}.db", uuid::Uuid::new_v4()));
        let s = SqlStore::connect(&format!("sqlite://{}", path.display()), 2)
            .await
            .expect("sqlite");
        (Arc::new(s), path)
    }

    fn cleanup(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }

    fn event(p: ProjectId, t: TenantId, i: usize) -> Event {
        Event::now(p, t, None, kinds::STAGE_CHANGED, json!({"i": i}))
    }

    fn user(t: TenantId) -> User {
        User {
            id: UserId::new(),
            tenant_id: t,
            email: "w@example.com".into(),
            name: "W".into(),
            password_hash: String::new(),
            tenant_role: TenantRole::Owner,
            platform_admin: false,
            created_at: 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_watchers_are_cut_off_and_publishing_never_waits() {
        let (store, path) = store().await;
        let hub = EventHub::start(store.clone(), None, "r1".into()).await;
        let (p, t) = (ProjectId::new(), TenantId::new());
        let mut slow = hub.watch(p);
        let mut fast = hub.watch(p);
        let mut got = Vec::new();
        for round in 0..3 {
            let started = std::time::Instant::now();
            for i in 0..200 {
                hub.publish(event(p, t, round * 200 + i));
            }
            // Queuing only: no database write or delivery on the caller's path.
            assert!(started.elapsed() < Duration::from_secs(1));
            hub.flush().await;
            for _ in 0..200 {
                got.push(
                    fast.rx
                        .recv()
                        .await
                        .expect("a watcher that keeps up gets everything")
                        .seq,
                );
            }
        }
        let want: Vec<Option<i64>> = (1..=600).map(Some).collect();
        assert_eq!(got, want, "sequence numbers in order, none missing");
        assert!(matches!(
            slow.rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
        let stored = store.events_after(p, 0, 10_000).await.unwrap();
        assert_eq!(stored.len(), 600);
        assert_eq!(stored[599].seq, 600);
        assert_eq!(stored[0].event.payload, json!({"i": 0}));
        // Nobody watching: the project's ring is gone.
        drop((slow, fast));
        assert!(hub.0.local.lock().unwrap().is_empty());
        assert_eq!(hub.watchers_gauge().get(), 0);
        cleanup(&path);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_queue_depth_counts_events_until_they_are_stored() {
        let (store, path) = store().await;
        let hub = EventHub::start(store.clone(), None, "r1".into()).await;
        let (p, t) = (ProjectId::new(), TenantId::new());
        let depth = hub.queue_depth();
        for i in 0..500 {
            hub.publish(event(p, t, i));
        }
        assert!((0..=500).contains(&depth.get()), "{}", depth.get());
        hub.flush().await;
        // Every event counted once going in and once stored: the door is open again.
        assert_eq!(depth.get(), 0);
        assert!(hub.admit(&mut Wait::default()).await);
        assert_eq!(store.events_after(p, 0, 10_000).await.unwrap().len(), 500);
        hub.shutdown().await;
        cleanup(&path);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_end_when_behind_or_at_shutdown() {
        let (store, path) = store().await;
        let hub = EventHub::start(store.clone(), None, "r1".into()).await;
        let (p, t) = (ProjectId::new(), TenantId::new());
        let projects = ProjectService::new(store.clone(), LiveConfig::new(Default::default()));
        let watcher = || Watcher {
            user: user(t),
            access_project: p,
            projects: projects.clone(),
        };
        let shutdown = CancellationToken::new();
        let hour = Duration::from_secs(3600);
        let mut behind = Box::pin(hub.stream(watcher(), None, hour, shutdown.clone()));
        let mut idle = Box::pin(hub.stream(watcher(), None, hour, shutdown.clone()));
        for s in [&mut behind, &mut idle] {
            let first = s.next().await.unwrap().unwrap();
            assert!(first.starts_with(b"event: connected\n"));
        }
        for i in 0..3 * WATCHER_BUFFER {
            hub.publish(event(p, t, i));
        }
        hub.flush().await;
        // The watcher that read nothing is disconnected after what its buffer still held.
        let mut read = 0;
        while behind.next().await.is_some() {
            read += 1;
        }
        assert!(read <= WATCHER_BUFFER, "{read}");
        // A stream ends at shutdown, at once, whatever it still has to send.
        shutdown.cancel();
        let end = tokio::time::timeout(Duration::from_secs(5), idle.next()).await;
        assert!(matches!(end, Ok(None)), "the stream ends at shutdown");
        hub.shutdown().await;
        cleanup(&path);
    }
}
