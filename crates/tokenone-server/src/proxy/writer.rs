//! The call-log writer: call records are queued by the proxy and written in batches (group
//! commit) off the request path. Nothing is dropped: a failed batch is retried, and shutdown
//! flushes the queue.
//!
//! The queue is bounded by admission, not by dropping: while more than [`HIGH_WATER`] calls wait
//! to be written, new proxy calls wait at the door ([`CallWriter::admit`]) until a batch is
//! written, and after `door::ADMIT_WAIT` they are turned away with a 503 that moved nothing.
//! Queuing itself never blocks (a call's record is queued from `Drop` too), so the queue holds
//! at most the high-water mark plus the calls already in flight.

use crate::door::{Door, Wait};
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokenone_core::keys::KeyId;
use tokenone_core::model::{CallRecord, Settled};
use tokenone_core::repo::Store;
use tokio::sync::{mpsc, oneshot, Mutex};

const BATCH: usize = 512;
/// Queued calls above which new proxy calls wait for the writer (about 1.7 KiB each: ~7 MiB).
const HIGH_WATER: i64 = 4_096;
/// How long the writer waits for more calls after the first of a batch ("a few milliseconds",
/// operations.md). At 1,000 calls/s a batch then holds about five calls: one transaction, not five.
const GROUP_COMMIT: std::time::Duration = std::time::Duration::from_millis(5);
/// A key's `lastUsedAt` is written at most once per this many milliseconds (the first use after a
/// quiet second is written at once): a busy key costs one UPDATE a second, not one per batch.
const TOUCH_EVERY_MS: i64 = 1_000;

enum Msg {
    Call(Box<Settled>),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct CallWriter {
    tx: mpsc::UnboundedSender<Msg>,
    door: Arc<Door>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl CallWriter {
    /// Starts the writer; `ledger_key` signs the ledger entries of settled calls.
    pub fn start(store: Arc<dyn Store>, ledger_key: Vec<u8>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let door = Arc::new(Door::new(HIGH_WATER));
        let task = tokio::spawn(run(store, rx, door.clone(), Arc::new(ledger_key)));
        CallWriter {
            tx,
            door,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Calls queued and not yet written (the `settlement_queue_depth` metric).
    pub fn queue_depth(&self) -> Gauge {
        self.door.depth.clone()
    }

    /// Waits while the writer is more than [`HIGH_WATER`] calls behind; `false` when it stayed
    /// behind until the call's deadline (`wait`: `door::ADMIT_WAIT` at all the doors together; the
    /// caller answers 503). Free when the writer keeps up.
    pub(crate) async fn admit(&self, wait: &mut Wait) -> bool {
        self.door.admit(wait).await
    }

    /// Queues a call that moved no money. Never blocks; callable from `Drop`.
    pub fn record(&self, call: CallRecord) {
        self.settle(Settled {
            record: call,
            money: None,
        });
    }

    /// Queues a settled call (record and money). Never blocks; callable from `Drop`.
    pub fn settle(&self, settled: Settled) {
        self.door.depth.inc();
        if self.tx.send(Msg::Call(Box::new(settled))).is_err() {
            self.door.depth.dec();
            tracing::error!("call writer stopped; a call record could not be queued");
        }
    }

    /// Waits until everything queued before this call is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Flushes and stops the writer (server shutdown).
    pub async fn shutdown(&self) {
        self.flush().await;
        if let Some(t) = self.task.lock().await.take() {
            t.abort();
        }
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Msg>, door: Arc<Door>, key: Arc<Vec<u8>>) {
    let mut batch: Vec<Settled> = Vec::with_capacity(BATCH);
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    let mut touched: HashMap<KeyId, i64> = HashMap::new();
    while let Some(first) = rx.recv().await {
        // Group commit: give the batch a moment to fill, so a busy gateway writes many calls per
        // transaction instead of one.
        tokio::time::sleep(GROUP_COMMIT).await;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Call(c) => batch.push(*c),
                Msg::Flush(w) => waiters.push(w),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        write(&store, &mut batch, &door, &key, &mut touched).await;
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

async fn write(
    store: &Arc<dyn Store>,
    batch: &mut Vec<Settled>,
    door: &Door,
    key: &[u8],
    touched: &mut HashMap<KeyId, i64>,
) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(50);
    loop {
        match store.settle_calls(batch, key).await {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = %e, rows = batch.len(), "writing call records failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    let mut used: HashMap<KeyId, i64> = HashMap::new();
    for c in batch.iter().map(|s| &s.record) {
        if let Ok(id) = c.key_id.parse::<KeyId>() {
            let e = used.entry(id).or_insert(c.at);
            *e = (*e).max(c.at);
        }
    }
    let used: Vec<(KeyId, i64)> = used
        .into_iter()
        .filter(|(id, at)| touched.get(id).is_none_or(|last| *at >= last + TOUCH_EVERY_MS))
        .collect();
    if !used.is_empty() {
        match store.touch_keys(&used).await {
            Ok(()) => {
                if touched.len() > 10_000 {
                    // Forget keys quiet for a minute; they are written at once when used again.
                    let newest = used.iter().map(|(_, at)| *at).max().unwrap_or_default();
                    touched.retain(|_, at| *at > newest - 60_000);
                }
                touched.extend(used);
            }
            Err(e) => tracing::warn!(error = %e, "updating keys' last use failed"),
        }
    }
    door.written(batch.len());
    batch.clear();
}
