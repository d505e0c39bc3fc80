//! Token buckets per tenant and shape (or per key with an override): capacity = the per-minute
//! figure, refill = figure / 60 per second, one token per request.
//!
//! With Redis the bucket is one atomic script on Redis's clock, shared by every replica. To keep
//! Redis off the per-call path for large limits, a replica takes tokens from that script in
//! batches and hands them out from memory:
//! - the batch is `limit / 1000` tokens, at least 1 and at most [`MAX_BATCH`]. Below 2,000 a
//!   minute the batch is 1, so every call is decided by Redis itself, exactly as before;
//! - the next batch is fetched in the background when fewer than half a batch is left, one fetch
//!   per bucket at a time, so calls rarely wait for Redis;
//! - held tokens are good for [`HOLD`]; older ones go back to Redis with the next take (a bucket
//!   that falls idle lets them lapse, which only refuses earlier, never admits more).
//!
//! The fleet therefore never admits more than the bucket allows: every token handed out was
//! taken from Redis first. What batching costs is the other direction: a replica holds at most
//! 1.5 batches (0.15 % of the limit), which the other replicas cannot see. A refusal from Redis
//! carries its retry time and is remembered locally until then, so a flood of refused calls
//! does not reach Redis either.
//!
//! Without Redis, or while Redis is unreachable, an in-process bucket decides (logged and counted,
//! never a 500). After a Redis error the replica stays local for [`DOWN_FOR`] before trying again,
//! so an outage costs one timeout, not one per call.

use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Whole seconds, at least 1, when refused.
    pub retry_after_secs: u64,
}

impl Decision {
    fn allowed(limit: u32, remaining: u32) -> Self {
        Decision {
            allowed: true,
            limit,
            remaining,
            retry_after_secs: 0,
        }
    }

    fn refused(limit: u32, retry_after: Duration) -> Self {
        Decision {
            allowed: false,
            limit,
            remaining: 0,
            retry_after_secs: retry_after.as_millis().div_ceil(1000).max(1) as u64,
        }
    }
}

/// The most tokens one Redis take asks for.
const MAX_BATCH: u32 = 256;
/// How long tokens taken from Redis may be handed out before they go back.
const HOLD: Duration = Duration::from_secs(1);
/// After a Redis error, checks are decided locally this long before Redis is tried again.
const DOWN_FOR: Duration = Duration::from_millis(500);
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// Tokens one Redis take asks for at this limit: `limit / 1000`, clamped to `1..=MAX_BATCH`.
fn batch_size(per_minute: u32) -> u32 {
    (per_minute / 1000).clamp(1, MAX_BATCH)
}

/// Above this many entries, idle ones are swept (at most once per [`SWEEP_EVERY`]).
const MAX_LOCAL_BUCKETS: usize = 100_000;
/// An entry untouched this long carries no information: a bucket has refilled completely (a full
/// refill takes 60 s at any capacity), and held tokens have long expired.
const IDLE_FULL: Duration = Duration::from_secs(60);
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Per-bucket entries with the instant each was last touched; idle ones are swept when there are
/// too many.
struct IdleMap<V> {
    map: HashMap<String, (V, Instant)>,
    last_swept: Instant,
}

impl<V> IdleMap<V> {
    fn new() -> Self {
        IdleMap {
            map: HashMap::new(),
            last_swept: Instant::now(),
        }
    }

    /// The entry for `key` (made by `make` when missing) and when it was touched before `now`
    /// (`now` for a new entry). Sweeps first.
    fn touch(&mut self, key: &str, now: Instant, make: impl FnOnce() -> V) -> (&mut V, Instant) {
        self.sweep(now);
        if !self.map.contains_key(key) {
            self.map.insert(key.to_string(), (make(), now));
        }
        // Invariant: the key was inserted just above when it was missing.
        let (v, touched) = self.map.get_mut(key).expect("entry present");
        let before = std::mem::replace(touched, now);
        (v, before)
    }

    /// Drops the entries idle for [`IDLE_FULL`], when there are too many and the last sweep was
    /// at least [`SWEEP_EVERY`] ago (so a map of mostly active entries is not scanned on every
    /// check).
    fn sweep(&mut self, now: Instant) {
        if self.map.len() > MAX_LOCAL_BUCKETS && now.saturating_duration_since(self.last_swept) >= SWEEP_EVERY {
            self.map
                .retain(|_, (_, touched)| now.saturating_duration_since(*touched) < IDLE_FULL);
            self.last_swept = now;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes up to ARGV[2] whole tokens after giving back ARGV[3] unused ones; returns
/// `{taken, tokens left (floor), ms until one token when none was taken}`.
const SCRIPT: &str = r#"
local cap = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local refund = tonumber(ARGV[3])
local rate = cap / 60000.0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or cap
local ts = tonumber(b[2]) or now
if now > ts then tokens = math.min(cap, tokens + (now - ts) * rate) end
tokens = math.min(cap, tokens + refund)
local taken = math.min(want, math.floor(tokens))
local retry = 0
if taken >= 1 then
  tokens = tokens - taken
else
  taken = 0
  retry = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate) + 1000)
return {taken, math.floor(tokens), retry}
"#;

/// What this replica holds of one shared bucket.
#[derive(Default)]
struct Grant {
    /// Tokens taken from Redis and not yet handed out.
    held: u32,
    /// Until when `held` may be handed out.
    until: Option<Instant>,
    /// Expired held tokens, to give back with the next take.
    refund: u32,
    /// What Redis had left after the last take.
    shared_remaining: u32,
    /// Redis refused; it will have a token again at this instant.
    refused_until: Option<Instant>,
    /// A take for this bucket is in flight.
    fetching: bool,
}

impl Grant {
    fn refusal(&self, now: Instant, limit: u32) -> Option<Decision> {
        self.refused_until
            .filter(|u| now < *u)
            .map(|u| Decision::refused(limit, u - now))
    }
}

#[derive(Default)]
struct Slot {
    grant: Mutex<Grant>,
    /// Woken when a take lands.
    landed: Notify,
}

struct Take {
    taken: u32,
    remaining: u32,
    retry: Duration,
}

/// The Redis side: the connection, the script, and what this replica holds per bucket.
struct Remote {
    conn: redis::aio::ConnectionManager,
    script: redis::Script,
    hold: Duration,
    down_for: Duration,
    slots: Mutex<IdleMap<Arc<Slot>>>,
    down_until: Mutex<Option<Instant>>,
    /// How long a take may take before Redis counts as unreachable ([`REDIS_TIMEOUT`]).
    timeout: Duration,
    last_fallback_log: Mutex<Option<Instant>>,
    takes: Counter,
}

impl Remote {
    fn slot(&self, key: &str, now: Instant) -> Arc<Slot> {
        lock(&self.slots).touch(key, now, Default::default).0.clone()
    }

    fn is_down(&self, now: Instant) -> bool {
        lock(&self.down_until).is_some_and(|u| now < u)
    }

    fn failed(&self, e: &redis::RedisError, now: Instant) {
        *lock(&self.down_until) = Some(now + self.down_for);
        let mut last = lock(&self.last_fallback_log);
        if last.is_none_or(|t| now.saturating_duration_since(t) > Duration::from_secs(10)) {
            tracing::warn!(error = %e, "redis unreachable for rate limiting; using the local bucket");
            *last = Some(now);
        }
    }

    async fn take(&self, key: &str, per_minute: u32, want: u32, refund: u32) -> redis::RedisResult<Take> {
        self.takes.inc();
        let mut conn = self.conn.clone();
        let mut invocation = self.script.key(key);
        invocation.arg(per_minute).arg(want).arg(refund);
        let call = invocation.invoke_async::<(i64, i64, i64)>(&mut conn);
        let (taken, remaining, retry_ms) = tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::IoError, "timeout"))))?;
        Ok(Take {
            taken: taken.clamp(0, want as i64) as u32,
            remaining: remaining.clamp(0, u32::MAX as i64) as u32,
            retry: Duration::from_millis(retry_ms.max(0) as u64),
        })
    }

    /// The shared bucket's decision, or `None` when Redis is unreachable (the caller decides
    /// locally).
    async fn check(self: &Arc<Self>, bucket: &str, per_minute: u32) -> Option<Decision> {
        let key = format!("tokenone:rl:{bucket}:{per_minute}");
        let now = Instant::now();
        let slot = self.slot(&key, now);
        let batch = batch_size(per_minute);
        if batch == 1 {
            return self.check_exact(&slot, &key, per_minute, now).await;
        }
        // Set after waiting for a take: the tokens it brought are for this call even if they
        // expired meanwhile (otherwise a short hold could give back and take forever).
        let mut waited = false;
        loop {
            let mut landed = pin!(slot.landed.notified());
            {
                let now = Instant::now();
                let mut g = lock(&slot.grant);
                if !waited && g.held > 0 && g.until.is_some_and(|u| now >= u) {
                    g.refund += std::mem::take(&mut g.held);
                }
                if g.held > 0 {
                    g.held -= 1;
                    if g.held < batch / 2 && !g.fetching && !self.is_down(now) {
                        self.spawn_take(&slot, &mut g, key.clone(), per_minute, batch);
                    }
                    return Some(Decision::allowed(per_minute, g.shared_remaining.saturating_add(g.held)));
                }
                if let Some(d) = g.refusal(now, per_minute) {
                    return Some(d);
                }
                if self.is_down(now) {
                    return None;
                }
                if !g.fetching {
                    self.spawn_take(&slot, &mut g, key.clone(), per_minute, batch);
                }
                // Registered while the grant is locked, so the take cannot land unseen.
                landed.as_mut().enable();
            }
            landed.await;
            waited = true;
        }
    }

    /// Limits below 2,000 a minute: every call is one take of one token, as exact as Redis.
    async fn check_exact(&self, slot: &Slot, key: &str, per_minute: u32, now: Instant) -> Option<Decision> {
        if let Some(d) = lock(&slot.grant).refusal(now, per_minute) {
            return Some(d);
        }
        if self.is_down(now) {
            return None;
        }
        match self.take(key, per_minute, 1, 0).await {
            Ok(t) if t.taken == 1 => Some(Decision::allowed(per_minute, t.remaining)),
            Ok(t) => {
                lock(&slot.grant).refused_until = Some(Instant::now() + t.retry);
                Some(Decision::refused(per_minute, t.retry))
            }
            Err(e) => {
                self.failed(&e, Instant::now());
                None
            }
        }
    }

    /// Starts a take of `batch` tokens (giving back the expired ones) in a task of its own, so a
    /// caller that goes away cannot leave the bucket marked as fetching.
    fn spawn_take(self: &Arc<Self>, slot: &Arc<Slot>, g: &mut Grant, key: String, per_minute: u32, batch: u32) {
        g.fetching = true;
        let refund = std::mem::take(&mut g.refund);
        let (me, slot) = (self.clone(), slot.clone());
        tokio::spawn(async move {
            let res = me.take(&key, per_minute, batch, refund).await;
            let now = Instant::now();
            {
                let mut g = lock(&slot.grant);
                g.fetching = false;
                match res {
                    Ok(t) if t.taken > 0 => {
                        g.held += t.taken;
                        g.until = Some(now + me.hold);
                        g.shared_remaining = t.remaining;
                        g.refused_until = None;
                    }
                    Ok(t) => {
                        g.shared_remaining = 0;
                        g.refused_until = Some(now + t.retry);
                    }
                    // The given-back tokens may or may not have reached Redis; they are dropped,
                    // which can only refuse early.
                    Err(e) => me.failed(&e, now),
                }
            }
            slot.landed.notify_waiters();
        });
    }
}

pub struct RateLimiter {
    local: Mutex<IdleMap<f64>>,
    remote: Option<Arc<Remote>>,
    /// Checks decided locally because Redis was unreachable.
    pub fallbacks: Counter,
}

impl RateLimiter {
    pub fn new(redis: Option<redis::aio::ConnectionManager>) -> Self {
        Self::tuned(redis, HOLD, DOWN_FOR, REDIS_TIMEOUT)
    }

    fn tuned(
        redis: Option<redis::aio::ConnectionManager>,
        hold: Duration,
        down_for: Duration,
        timeout: Duration,
    ) -> Self {
        RateLimiter {
            local: Mutex::new(IdleMap::new()),
            remote: redis.map(|conn| {
                Arc::new(Remote {
                    conn,
                    script: redis::Script::new(SCRIPT),
                    hold,
                    down_for,
                    timeout,
                    slots: Mutex::new(IdleMap::new()),
                    down_until: Mutex::new(None),
                    last_fallback_log: Mutex::new(None),
                    takes: Counter::default(),
                })
            }),
            fallbacks: Counter::default(),
        }
    }

    /// Takes sent to Redis, each serving up to one batch of checks (0 without Redis).
    pub fn redis_takes(&self) -> Counter {
        self.remote.as_ref().map(|r| r.takes.clone()).unwrap_or_default()
    }

    pub async fn check(&self, bucket: &str, per_minute: u32) -> Decision {
        let per_minute = per_minute.max(1);
        if let Some(remote) = &self.remote {
            match remote.check(bucket, per_minute).await {
                Some(d) => return d,
                None => {
                    self.fallbacks.inc();
                }
            }
        }
        self.check_local(bucket, per_minute, Instant::now())
    }

    fn check_local(&self, bucket: &str, per_minute: u32, now: Instant) -> Decision {
        let cap = per_minute as f64;
        let rate = cap / 60.0;
        let mut local = lock(&self.local);
        let (tokens, updated) = local.touch(&format!("{bucket}:{per_minute}"), now, || cap);
        let elapsed = now.saturating_duration_since(updated).as_secs_f64();
        *tokens = (*tokens + elapsed * rate).min(cap);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Decision::allowed(per_minute, tokens.floor() as u32)
        } else {
            Decision::refused(per_minute, Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_bucket_refills_at_rate() {
        let rl = RateLimiter::new(None);
        let t0 = Instant::now();
        for i in 0..3 {
            let d = rl.check_local("t:openai", 3, t0);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 2 - i);
        }
        let d = rl.check_local("t:openai", 3, t0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, 20, "one token per 20 s at 3/min");
        // Another bucket is independent.
        assert!(rl.check_local("u:openai", 3, t0).allowed);
        // 20 s later one token is back.
        let d = rl.check_local("t:openai", 3, t0 + Duration::from_secs(20));
        assert!(d.allowed);
        assert!(!rl.check_local("t:openai", 3, t0 + Duration::from_secs(20)).allowed);
    }

    #[test]
    fn idle_buckets_are_swept_and_active_ones_kept() {
        let rl = RateLimiter::new(None);
        let t0 = Instant::now();
        // Past the bound: the idle buckets were last touched at t0.
        for i in 0..=MAX_LOCAL_BUCKETS {
            rl.check_local(&format!("idle{i}:openai"), 10, t0);
        }
        // An active bucket, drained to empty at t0 + 30 s.
        let active = t0 + Duration::from_secs(30);
        for _ in 0..10 {
            assert!(rl.check_local("busy:openai", 10, active).allowed);
        }
        assert!(!rl.check_local("busy:openai", 10, active).allowed);
        // 60 s after t0 the idle buckets are full and dropped; the active one (30 s idle) stays.
        let later = t0 + IDLE_FULL;
        let d = rl.check_local("other:openai", 10, later);
        assert!(d.allowed);
        {
            let local = rl.local.lock().unwrap();
            assert_eq!(local.map.len(), 2, "only the active and the new bucket remain");
            assert!(local.map.contains_key("busy:openai:10"));
            assert!(local.map.contains_key("other:openai:10"));
        }
        // The active bucket kept its state: 30 s at 10/min refilled 5 tokens, not a full 10.
        let d = rl.check_local("busy:openai", 10, later);
        assert!(d.allowed);
        assert_eq!(d.remaining, 4);
    }

    #[test]
    fn sweeps_at_most_once_per_interval() {
        let rl = RateLimiter::new(None);
        let t0 = Instant::now();
        for i in 0..=MAX_LOCAL_BUCKETS {
            rl.check_local(&format!("b{i}:openai"), 10, t0);
        }
        // First sweep at t0 + 60 s empties the map but for the new bucket.
        let t1 = t0 + IDLE_FULL;
        rl.check_local("x:openai", 10, t1);
        assert_eq!(rl.local.lock().unwrap().map.len(), 1);
        // Refill past the bound within the same second: no sweep yet, even though these are idle
        // enough by the next instant.
        for i in 0..=MAX_LOCAL_BUCKETS {
            rl.check_local(&format!("c{i}:openai"), 10, t0);
        }
        let len = rl.local.lock().unwrap().map.len();
        rl.check_local("y:openai", 10, t1 + Duration::from_millis(500));
        assert_eq!(
            rl.local.lock().unwrap().map.len(),
            len + 1,
            "no sweep within the interval"
        );
        rl.check_local("z:openai", 10, t1 + SWEEP_EVERY);
        assert_eq!(
            rl.local.lock().unwrap().map.len(),
            3,
            "x, y, z and none of the idle ones"
        );
    }

    // ---- The shared bucket, against the real Redis the integration tests use. ----

    use std::sync::atomic::{AtomicBool, Ordering};

    fn redis_url() -> String {
        std::env::var("TOKENONE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    async fn redis_at(url: &str) -> redis::aio::ConnectionManager {
        let client = redis::Client::open(url).expect("redis url");
        redis::aio::ConnectionManager::new(client)
            .await
            .expect("these tests need Redis at TOKENONE_TEST_REDIS_URL (default 127.0.0.1:6379)")
    }

    /// A limiter whose takes are given ample time: on a loaded machine a take that times out is
    /// a fallback the test did not mean (and it may still land in Redis afterwards).
    fn patient(conn: redis::aio::ConnectionManager, hold: Duration, down_for: Duration) -> RateLimiter {
        RateLimiter::tuned(Some(conn), hold, down_for, Duration::from_secs(10))
    }

    async fn replicas(n: usize) -> Vec<Arc<RateLimiter>> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(Arc::new(patient(redis_at(&redis_url()).await, HOLD, DOWN_FOR)));
        }
        out
    }

    fn fresh_bucket() -> String {
        format!("test:{}:openai", uuid::Uuid::new_v4())
    }

    /// `calls` concurrent checks spread over the replicas; how many were allowed.
    async fn allowed(replicas: &[Arc<RateLimiter>], bucket: &str, per_minute: u32, calls: usize) -> usize {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..calls {
            let (rl, b) = (replicas[i % replicas.len()].clone(), bucket.to_string());
            set.spawn(async move { rl.check(&b, per_minute).await.allowed });
        }
        let mut n = 0;
        while let Some(r) = set.join_next().await {
            n += usize::from(r.unwrap());
        }
        n
    }

    fn takes(replicas: &[Arc<RateLimiter>]) -> u64 {
        replicas.iter().map(|r| r.redis_takes().get()).sum()
    }

    #[test]
    fn batch_sizes() {
        assert_eq!(batch_size(1), 1);
        assert_eq!(batch_size(1_999), 1, "below 2,000 a minute every call asks Redis");
        assert_eq!(batch_size(2_000), 2);
        assert_eq!(batch_size(60_000), 60);
        assert_eq!(batch_size(10_000_000), MAX_BATCH);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_limits_are_exact_across_replicas() {
        let rs = replicas(2).await;
        let bucket = fresh_bucket();
        assert_eq!(allowed(&rs, &bucket, 5, 40).await, 5, "one shared bucket of 5");
        // Both replicas were refused by Redis and remember it until a token is due: 5 a minute
        // is one token every 12 s.
        let before = takes(&rs);
        for r in &rs {
            let d = r.check(&bucket, 5).await;
            assert!(!d.allowed);
            assert_eq!(d.retry_after_secs, 12);
            assert_eq!((d.limit, d.remaining), (5, 0));
        }
        assert_eq!(takes(&rs), before, "a remembered refusal does not ask Redis again");
        assert_eq!(rs[0].fallbacks.get() + rs[1].fallbacks.get(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batched_limits_never_admit_more_than_the_bucket() {
        let rs = replicas(2).await;
        let bucket = fresh_bucket();
        let per_minute = 20_000; // batches of 20
        let started = Instant::now();
        let n = allowed(&rs, &bucket, per_minute, 25_000).await;
        // What the bucket could have refilled while the checks ran, rounded up generously.
        let refill = (started.elapsed().as_secs_f64() * per_minute as f64 / 60.0).ceil() as usize + 1;
        assert!(
            n <= 20_000 + refill,
            "{n} allowed; the bucket holds 20,000 plus {refill} refilled"
        );
        // Held tokens are handed out before a refusal, so nothing is stranded at the end.
        assert!(n >= 20_000, "{n} allowed out of a full bucket of 20,000");
        let t = takes(&rs);
        assert!(t < 2_500, "{t} Redis takes for 25,000 checks in batches of 20");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn remaining_counts_what_redis_and_the_replica_hold() {
        let rs = replicas(1).await;
        let bucket = fresh_bucket();
        let d = rs[0].check(&bucket, 100_000).await; // batches of 100
        assert!(d.allowed);
        assert_eq!(d.limit, 100_000);
        // 100,000 less the batch in Redis, plus 99 still held here.
        assert!((99_999..=100_000).contains(&d.remaining), "{d:?}");
        let d2 = rs[0].check(&bucket, 100_000).await;
        assert_eq!(d2.remaining, d.remaining - 1, "one fewer held; no new take yet");
        assert_eq!(rs[0].redis_takes().get(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_held_tokens_go_back_to_redis() {
        let rl = patient(redis_at(&redis_url()).await, Duration::ZERO, DOWN_FOR);
        let bucket = fresh_bucket();
        // Batches of 2: the first check takes 2 and holds 1; with a zero hold that one has
        // expired by the second check, which gives it back and takes 2 again.
        assert!(rl.check(&bucket, 2_000).await.allowed);
        assert!(rl.check(&bucket, 2_000).await.allowed);
        let mut conn = redis_at(&redis_url()).await;
        let tokens: f64 = redis::cmd("HGET")
            .arg(format!("tokenone:rl:{bucket}:2000"))
            .arg("tokens")
            .query_async(&mut conn)
            .await
            .unwrap();
        // 2,000 - 2 + 1 - 2, plus a little refill (33 a second); without the give-back 1,996.
        assert!((1_997.0..1_997.9).contains(&tokens), "{tokens}");
        assert_eq!(rl.redis_takes().get(), 2);
    }

    /// A TCP relay to Redis that can be cut: open connections are dropped and new ones refused.
    struct Relay {
        addr: String,
        up: Arc<AtomicBool>,
        cut: Arc<Notify>,
        /// Connections still relaying.
        live: tokio::sync::watch::Sender<usize>,
    }

    impl Relay {
        async fn start() -> Relay {
            let target = redis_url()
                .trim_start_matches("redis://")
                .trim_end_matches('/')
                .to_string();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = format!("redis://{}", listener.local_addr().unwrap());
            let (up, cut) = (Arc::new(AtomicBool::new(true)), Arc::new(Notify::new()));
            let live = tokio::sync::watch::Sender::new(0usize);
            let (up2, cut2, live2) = (up.clone(), cut.clone(), live.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    live2.send_modify(|n| *n += 1);
                    let (target, up, cut, live) = (target.clone(), up2.clone(), cut2.clone(), live2.clone());
                    tokio::spawn(async move {
                        // Listening for the cut before looking at `up`: either this sees the relay
                        // down (and drops the connection), or the cut comes after and is heard.
                        let cut = cut.notified();
                        if up.load(Ordering::SeqCst) {
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                                // The cut first: once it is signalled not one more byte is relayed.
                                tokio::select! {
                                    biased;
                                    _ = cut => {}
                                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                }
                            }
                        }
                        live.send_modify(|n| *n -= 1);
                    });
                }
            });
            Relay { addr, up, cut, live }
        }

        /// Refuses new connections and returns once every open one is closed, so no command sent
        /// afterwards can reach Redis (one that raced the cut could have been run there while
        /// its caller saw an error).
        async fn cut(&self) {
            self.up.store(false, Ordering::SeqCst);
            self.cut.notify_waiters();
            self.live.subscribe().wait_for(|n| *n == 0).await.unwrap();
        }

        fn restore(&self) {
            self.up.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_outage_falls_back_to_the_local_bucket_once_per_window() {
        let relay = Relay::start().await;
        let rl = patient(redis_at(&relay.addr).await, HOLD, DOWN_FOR);
        let bucket = fresh_bucket();
        for _ in 0..2 {
            assert!(rl.check(&bucket, 3).await.allowed);
        }
        assert_eq!(rl.redis_takes().get(), 2);

        relay.cut().await;
        // The local bucket (full, it has not been used) decides; the first check found Redis
        // gone, the others do not try it again within the window.
        for i in 0..3 {
            assert!(rl.check(&bucket, 3).await.allowed, "local check {i}");
        }
        assert!(
            !rl.check(&bucket, 3).await.allowed,
            "the local bucket of 3 is empty too"
        );
        assert_eq!(rl.fallbacks.get(), 4, "every check decided locally is counted");
        assert_eq!(rl.redis_takes().get(), 3, "one attempt at Redis for the whole window");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_decides_again_once_it_is_back() {
        let relay = Relay::start().await;
        let rl = patient(redis_at(&relay.addr).await, HOLD, Duration::ZERO);
        let bucket = fresh_bucket();
        assert!(rl.check(&bucket, 3).await.allowed);
        relay.cut().await;
        assert!(rl.check(&bucket, 3).await.allowed);
        assert_eq!(rl.fallbacks.get(), 1);
        relay.restore();
        // The connection manager reconnects in the background; within a few seconds Redis
        // decides again (2 tokens left there, so allowed without a fallback).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let before = rl.fallbacks.get();
            let d = rl.check(&bucket, 3).await;
            if rl.fallbacks.get() == before {
                assert!(d.allowed);
                assert_eq!(d.remaining, 1, "Redis's bucket: 3 less the two it granted");
                break;
            }
            assert!(Instant::now() < deadline, "Redis never came back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
