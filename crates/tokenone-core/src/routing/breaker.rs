//! Circuit breakers per delivery path: five consecutive failures open a path for 30 s; then one
//! trial call decides (success closes, failure re-opens). In memory, per replica; time injected.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub failure_threshold: u32,
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

/// One path's breaker. No entry at all means closed with no failures.
#[derive(Debug, Clone, Copy, Default)]
struct Breaker {
    /// Consecutive failures while closed.
    failures: u32,
    /// Set while open or half-open: open before this instant, half-open from it on.
    open_until: Option<Instant>,
    /// When the half-open trial call was sent, while its outcome is unknown.
    trial_since: Option<Instant>,
}

/// Where a breaker stands at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

impl Breaker {
    fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }
}

/// The breakers of every path, keyed by path id. The proxy's protocol: plan with
/// `eligible = !is_open(path, now)`; call [`Breakers::record_attempt`] for the path it sends the
/// call on; then [`Breakers::record_success`] or, for a retryable failure,
/// [`Breakers::record_failure`].
#[derive(Debug, Default)]
pub struct Breakers {
    policy: BreakerPolicy,
    paths: Mutex<HashMap<String, Breaker>>,
}

impl Breakers {
    pub fn new(policy: BreakerPolicy) -> Self {
        Breakers {
            policy,
            paths: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Breaker>> {
        // A panic while holding the lock leaves a plain map of counters behind; it is still the
        // best knowledge there is, so a poisoned lock is used as is.
        self.paths.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether calls must avoid the path now: open, or half-open with its one trial in flight.
    /// A trial whose outcome was never recorded (a cancelled call) stops blocking after the open
    /// period, so a lost trial cannot keep a path out forever. Reads only.
    pub fn is_open(&self, path_id: &str, now: Instant) -> bool {
        let paths = self.lock();
        let Some(b) = paths.get(path_id) else {
            return false;
        };
        match b.state(now) {
            BreakerState::Open => true,
            BreakerState::HalfOpen => b.trial_since.is_some_and(|t| now < t + self.policy.open_for),
            BreakerState::Closed => false,
        }
    }

    /// A call is being sent on the path; in half-open that call is the one trial.
    pub fn record_attempt(&self, path_id: &str, now: Instant) {
        let mut paths = self.lock();
        if let Some(b) = paths.get_mut(path_id) {
            let trial_live = b.trial_since.is_some_and(|t| now < t + self.policy.open_for);
            if b.state(now) == BreakerState::HalfOpen && !trial_live {
                b.trial_since = Some(now);
            }
        }
    }

    /// The path answered. Closes a half-open breaker and clears the failure count. A success
    /// reported while open comes from a call sent before the breaker opened and changes nothing.
    pub fn record_success(&self, path_id: &str, now: Instant) {
        let mut paths = self.lock();
        if paths.get(path_id).is_some_and(|b| b.state(now) != BreakerState::Open) {
            paths.remove(path_id);
        }
    }

    /// The path failed (a retryable failure). The threshold-th consecutive failure opens it; a
    /// failed trial re-opens it. Failures reported while open are late and change nothing.
    pub fn record_failure(&self, path_id: &str, now: Instant) {
        let mut paths = self.lock();
        let b = paths.entry(path_id.to_string()).or_default();
        match b.state(now) {
            BreakerState::Open => {}
            BreakerState::HalfOpen => self.open(b, now),
            BreakerState::Closed => {
                b.failures += 1;
                if b.failures >= self.policy.failure_threshold {
                    self.open(b, now);
                }
            }
        }
    }

    fn open(&self, b: &mut Breaker, now: Instant) {
        b.open_until = Some(now + self.policy.open_for);
        b.trial_since = None;
        b.failures = 0;
    }

    /// `closed`, `open` or `half_open`.
    pub fn state(&self, path_id: &str, now: Instant) -> &'static str {
        self.lock()
            .get(path_id)
            .map_or(BreakerState::Closed, |b| b.state(now))
            .as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "fireworks:llama-3.1-8b-instruct";

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn five_consecutive_failures_open_for_thirty_seconds() {
        let b = Breakers::default();
        let t0 = Instant::now();
        for i in 0..4 {
            b.record_failure(P, secs(t0, i));
            assert_eq!(b.state(P, secs(t0, i)), "closed");
            assert!(!b.is_open(P, secs(t0, i)));
        }
        b.record_failure(P, secs(t0, 4));
        assert_eq!(b.state(P, secs(t0, 4)), "open");
        assert!(b.is_open(P, secs(t0, 4)));
        assert!(b.is_open(P, secs(t0, 33)));
        // 30 s after opening: half-open, the trial may go.
        assert_eq!(b.state(P, secs(t0, 34)), "half_open");
        assert!(!b.is_open(P, secs(t0, 34)));
        // Other paths are unaffected.
        assert_eq!(b.state("openai:gpt-4o", secs(t0, 4)), "closed");
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breakers::default();
        let t0 = Instant::now();
        for i in 0..4 {
            b.record_failure(P, secs(t0, i));
        }
        b.record_success(P, secs(t0, 4));
        for i in 5..9 {
            b.record_failure(P, secs(t0, i));
        }
        assert_eq!(b.state(P, secs(t0, 9)), "closed");
        b.record_failure(P, secs(t0, 10));
        assert_eq!(b.state(P, secs(t0, 10)), "open");
    }

    fn opened_at(t0: Instant) -> Breakers {
        let b = Breakers::default();
        for _ in 0..5 {
            b.record_failure(P, t0);
        }
        b
    }

    #[test]
    fn half_open_allows_one_trial() {
        let t0 = Instant::now();
        let b = opened_at(t0);
        let t = secs(t0, 30);
        assert!(!b.is_open(P, t));
        b.record_attempt(P, t);
        // The trial is in flight: no second call.
        assert!(b.is_open(P, secs(t0, 31)));
        assert_eq!(b.state(P, secs(t0, 31)), "half_open");
        // A second attempt does not restart the trial clock.
        b.record_attempt(P, secs(t0, 45));
        assert!(!b.is_open(P, secs(t0, 60)), "a lost trial stops blocking after 30 s");
    }

    #[test]
    fn trial_success_closes() {
        let t0 = Instant::now();
        let b = opened_at(t0);
        b.record_attempt(P, secs(t0, 31));
        b.record_success(P, secs(t0, 32));
        assert_eq!(b.state(P, secs(t0, 32)), "closed");
        assert!(!b.is_open(P, secs(t0, 32)));
        // Closed afresh: it takes five new failures to open again.
        for i in 0..4 {
            b.record_failure(P, secs(t0, 33 + i));
        }
        assert_eq!(b.state(P, secs(t0, 40)), "closed");
    }

    #[test]
    fn trial_failure_reopens_for_another_thirty_seconds() {
        let t0 = Instant::now();
        let b = opened_at(t0);
        b.record_attempt(P, secs(t0, 31));
        b.record_failure(P, secs(t0, 35));
        assert_eq!(b.state(P, secs(t0, 35)), "open");
        assert!(b.is_open(P, secs(t0, 64)));
        assert_eq!(b.state(P, secs(t0, 65)), "half_open");
        assert!(!b.is_open(P, secs(t0, 65)));
    }

    #[test]
    fn late_outcomes_while_open_change_nothing() {
        let t0 = Instant::now();
        let b = opened_at(t0);
        b.record_success(P, secs(t0, 1));
        assert_eq!(b.state(P, secs(t0, 1)), "open");
        b.record_failure(P, secs(t0, 29));
        // Still opens up at 30 s, not 59 s.
        assert_eq!(b.state(P, secs(t0, 30)), "half_open");
    }

    #[test]
    fn policy_is_configurable() {
        let b = Breakers::new(BreakerPolicy {
            failure_threshold: 2,
            open_for: Duration::from_secs(5),
        });
        let t0 = Instant::now();
        b.record_failure(P, t0);
        b.record_failure(P, t0);
        assert_eq!(b.state(P, secs(t0, 4)), "open");
        assert_eq!(b.state(P, secs(t0, 5)), "half_open");
    }

    #[test]
    fn shared_across_threads() {
        let b = std::sync::Arc::new(Breakers::default());
        let t0 = Instant::now();
        let handles: Vec<_> = (0..5)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || b.record_failure(P, t0))
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(b.state(P, t0), "open");
    }
}
