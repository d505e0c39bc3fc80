//! Admission for a background writer's queue: the proxy's calls wait at the door while the queue
//! is above its high-water mark, instead of the queue growing without bound or dropping what it
//! holds. The call writer and the event hub each keep one (each proxy call queues one call
//! record and one `llm.call` event).

use prometheus_client::metrics::gauge::Gauge;
use std::pin::pin;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a call waits at the doors, all of them together, before it gets a 503 that moved
/// nothing.
pub(crate) const ADMIT_WAIT: Duration = Duration::from_secs(10);

/// One call's wait at the doors: the first shut door it meets sets the deadline, so a call that
/// meets several shut doors still waits at most `ADMIT_WAIT` in all (not that much at each). A
/// call that finds every door open never reads the clock.
#[derive(Default)]
pub(crate) struct Wait {
    deadline: Option<Instant>,
}

impl Wait {
    fn deadline(&mut self) -> Instant {
        *self.deadline.get_or_insert_with(|| Instant::now() + ADMIT_WAIT)
    }
}

/// The queue depth and the calls waiting for it to fall: raised when an item is queued, lowered
/// after each written batch.
pub(crate) struct Door {
    pub(crate) depth: Gauge,
    high_water: i64,
    /// Woken after every written batch.
    room: Notify,
}

impl Door {
    pub(crate) fn new(high_water: i64) -> Self {
        Door {
            depth: Gauge::default(),
            high_water,
            room: Notify::new(),
        }
    }

    /// Waits while the queue is above the high-water mark; `false` when it stayed above it until
    /// the call's deadline. Free (one atomic read) when the queue is below it.
    pub(crate) async fn admit(&self, wait: &mut Wait) -> bool {
        if self.depth.get() <= self.high_water {
            return true;
        }
        let waited = tokio::time::timeout_at(wait.deadline(), async {
            loop {
                let mut room = pin!(self.room.notified());
                // Registered before the depth is read again, so a batch written in between
                // cannot be missed.
                room.as_mut().enable();
                if self.depth.get() <= self.high_water {
                    return;
                }
                room.await;
            }
        });
        waited.await.is_ok()
    }

    /// `n` queued items are written: lowers the depth and wakes the waiting calls.
    pub(crate) fn written(&self, n: usize) {
        self.depth.dec_by(n as i64);
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn the_door_is_open_up_to_the_high_water_mark() {
        let door = Door::new(3);
        door.depth.set(3);
        assert!(door.admit(&mut Wait::default()).await);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_wait_for_a_written_batch_above_the_mark() {
        let door = Arc::new(Door::new(3));
        door.depth.set(5);
        let waiting = tokio::spawn({
            let door = door.clone();
            async move { door.admit(&mut Wait::default()).await }
        });
        tokio::task::yield_now().await;
        // A batch that leaves the queue above the mark keeps the door shut.
        door.written(1);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        door.written(1);
        assert!(waiting.await.unwrap(), "admitted once the queue fell to the mark");
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_that_stays_behind_turns_calls_away() {
        let door = Door::new(3);
        door.depth.set(4);
        // Paused time: the 10 s pass at once, without sleeping.
        assert!(!door.admit(&mut Wait::default()).await);
    }

    #[tokio::test(start_paused = true)]
    async fn two_shut_doors_keep_a_call_for_one_wait_in_all() {
        let (first, second) = (Arc::new(Door::new(3)), Door::new(3));
        first.depth.set(4);
        second.depth.set(4);
        let started = Instant::now();
        // The first door opens after 6 s; the second never does.
        tokio::spawn({
            let first = first.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(6)).await;
                first.written(1);
            }
        });
        let mut wait = Wait::default();
        assert!(first.admit(&mut wait).await);
        assert_eq!(started.elapsed(), Duration::from_secs(6));
        assert!(!second.admit(&mut wait).await);
        assert_eq!(started.elapsed(), ADMIT_WAIT, "10 s in all, not 6 + 10");
    }
}
