//! The one writer: gathers appends from any number of connections into batches (up to a size
//! or a few milliseconds), hands each batch to the ledger (one atomic write and one sync per
//! chunk), and only then answers. The queue is bounded: when it is full, callers are told so
//! at once instead of it growing without bound.
//!
//! Submissions arrive with their signatures already checked (by the request handlers, on all
//! cores), so this thread does only what must be serial: the rules that read the ledger's
//! state, the commit and its sync. While it commits, the next submissions queue up and form
//! the next batch (group commit).

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::metrics::Metrics;
use crate::core::reject::Reject;
use crate::ledger::{Ledger, Outcome, Prechecked};

/// The answer to one submission: an outcome per event, or a storage failure (nothing in the
/// failed chunk was acknowledged).
pub type Answer = Result<Vec<Outcome>, StorageFailure>;

/// A batch's commit failed; the cause is in the server's log, not in the answer (it may name
/// files and carry the storage engine's own error text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageFailure;

struct Job {
    events: Vec<Result<Prechecked, Reject>>,
    reply: oneshot::Sender<Answer>,
}

/// Batching settings.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Most events per batch.
    pub max_events: usize,
    /// Longest wait for more submissions after the first, in milliseconds.
    pub max_wait_ms: u64,
    /// Most submissions waiting in the queue.
    pub queue: usize,
}

/// Handle to the sequencer thread.
pub struct Sequencer {
    tx: Mutex<Option<SyncSender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Why a submission was not queued.
#[derive(Debug)]
pub enum SubmitError {
    /// The queue is full.
    Full,
    /// The sequencer is shutting down.
    Closed,
}

impl Sequencer {
    pub fn start(ledger: Arc<Ledger>, cfg: BatchConfig, metrics: Arc<Metrics>) -> Sequencer {
        let (tx, rx) = sync_channel(cfg.queue.max(1));
        let thread = std::thread::Builder::new()
            .name("sequencer".into())
            .spawn(move || run(ledger, cfg, rx, metrics))
            .expect("spawn sequencer");
        Sequencer {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Queues events; the receiver yields their outcomes once durable.
    pub fn submit(
        &self,
        events: Vec<Result<Prechecked, Reject>>,
    ) -> Result<oneshot::Receiver<Answer>, SubmitError> {
        let (reply, rx) = oneshot::channel();
        let guard = self.tx.lock().expect("sequencer");
        let tx = guard.as_ref().ok_or(SubmitError::Closed)?;
        match tx.try_send(Job { events, reply }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(SubmitError::Full),
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::Closed),
        }
    }

    /// Stops taking submissions, finishes every queued one, and waits for the thread.
    pub fn close(&self) {
        self.tx.lock().expect("sequencer").take();
        if let Some(t) = self.thread.lock().expect("sequencer").take() {
            let _ = t.join();
        }
    }
}

fn run(ledger: Arc<Ledger>, cfg: BatchConfig, rx: Receiver<Job>, metrics: Arc<Metrics>) {
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + Duration::from_millis(cfg.max_wait_ms);
        let mut n = first.events.len();
        let mut jobs = vec![first];
        while n < cfg.max_events {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(j) => {
                    n += j.events.len();
                    jobs.push(j);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let mut all = Vec::with_capacity(n);
        let mut sizes = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        for j in jobs {
            sizes.push(j.events.len());
            all.extend(j.events);
            replies.push(j.reply);
        }
        let t = Instant::now();
        let result = ledger.append_checked(all);
        metrics.observe_batch(n, t.elapsed());
        match result {
            Ok(outcomes) => {
                metrics.count_outcomes(&outcomes);
                let mut it = outcomes.into_iter();
                for (size, reply) in sizes.into_iter().zip(replies) {
                    let part: Vec<Outcome> = it.by_ref().take(size).collect();
                    let _ = reply.send(Ok(part));
                }
            }
            Err(e) => {
                tracing::error!("append failed: {e}");
                metrics.count_storage_error();
                for reply in replies {
                    let _ = reply.send(Err(StorageFailure));
                }
            }
        }
    }
}
