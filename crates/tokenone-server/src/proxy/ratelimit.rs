//! Token buckets per tenant and shape (or per key with an override): capacity = the per-minute
//! figure, refill = figure / 60 per second, one token per request. With Redis the bucket is one
//! atomic script on Redis's clock, shared by every replica; without Redis, or while Redis is
//! unreachable, an in-process bucket decides (logged and counted, never a 500).

use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Whole seconds, at least 1, when refused.
    pub retry_after_secs: u64,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Above this many local buckets, idle ones are swept (at most once per [`SWEEP_EVERY`]).
const MAX_LOCAL_BUCKETS: usize = 100_000;
/// A bucket untouched this long has refilled completely (a full refill takes 60 s at any
/// capacity), so it carries no information.
const IDLE_FULL: Duration = Duration::from_secs(60);
const SWEEP_EVERY: Duration = Duration::from_secs(1);

struct LocalBuckets {
    map: HashMap<String, Bucket>,
    last_swept: Instant,
}

impl LocalBuckets {
    /// Drops the buckets idle long enough to be full, when there are too many and the last sweep
    /// was at least [`SWEEP_EVERY`] ago (so a map of mostly active buckets is not scanned on
    /// every check).
    fn sweep(&mut self, now: Instant) {
        if self.map.len() > MAX_LOCAL_BUCKETS && now.saturating_duration_since(self.last_swept) >= SWEEP_EVERY {
            self.map
                .retain(|_, b| now.saturating_duration_since(b.updated) < IDLE_FULL);
            self.last_swept = now;
        }
    }
}

const SCRIPT: &str = r#"
local cap = tonumber(ARGV[1])
local rate = cap / 60000.0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or cap
local ts = tonumber(b[2]) or now
if now > ts then tokens = math.min(cap, tokens + (now - ts) * rate) end
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate) + 1000)
return {allowed, math.floor(tokens), retry}
"#;

pub struct RateLimiter {
    local: Mutex<LocalBuckets>,
    redis: Option<redis::aio::ConnectionManager>,
    script: redis::Script,
    pub fallbacks: Counter,
    last_fallback_log: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(redis: Option<redis::aio::ConnectionManager>) -> Self {
        RateLimiter {
            local: Mutex::new(LocalBuckets {
                map: HashMap::new(),
                last_swept: Instant::now(),
            }),
            redis,
            script: redis::Script::new(SCRIPT),
            fallbacks: Counter::default(),
            last_fallback_log: Mutex::new(None),
        }
    }

    pub async fn check(&self, bucket: &str, per_minute: u32) -> Decision {
        let per_minute = per_minute.max(1);
        if let Some(conn) = &self.redis {
            let mut conn = conn.clone();
            let key = format!("tokenone:rl:{bucket}:{per_minute}");
            let res: redis::RedisResult<(i64, i64, i64)> = tokio::time::timeout(
                Duration::from_millis(250),
                self.script.key(&key).arg(per_minute).invoke_async(&mut conn),
            )
            .await
            .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::IoError, "timeout"))));
            match res {
                Ok((allowed, remaining, retry_ms)) => {
                    return Decision {
                        allowed: allowed == 1,
                        limit: per_minute,
                        remaining: remaining.max(0) as u32,
                        retry_after_secs: ((retry_ms.max(0) as u64).div_ceil(1000)).max(1),
                    };
                }
                Err(e) => self.note_fallback(&e),
            }
        }
        self.check_local(bucket, per_minute, Instant::now())
    }

    fn note_fallback(&self, e: &redis::RedisError) {
        self.fallbacks.inc();
        let mut last = self.last_fallback_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            tracing::warn!(error = %e, "redis unreachable for rate limiting; using the local bucket");
            *last = Some(Instant::now());
        }
    }

    fn check_local(&self, bucket: &str, per_minute: u32, now: Instant) -> Decision {
        let cap = per_minute as f64;
        let rate = cap / 60.0;
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        local.sweep(now);
        let key = format!("{bucket}:{per_minute}");
        let b = local.map.entry(key).or_insert(Bucket {
            tokens: cap,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(cap);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Decision {
                allowed: true,
                limit: per_minute,
                remaining: b.tokens.floor() as u32,
                retry_after_secs: 0,
            }
        } else {
            let secs = ((1.0 - b.tokens) / rate).ceil().max(1.0) as u64;
            Decision {
                allowed: false,
                limit: per_minute,
                remaining: 0,
                retry_after_secs: secs,
            }
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
}
