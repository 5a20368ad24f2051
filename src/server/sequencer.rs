//! The one writer: gathers appends from any number of connections into batches (up to a size
//! or a few milliseconds), hands each batch to the ledger (one atomic write and one sync per
//! chunk), and only then answers. The queue is bounded: when it is full, callers are told so
//! at once instead of it growing without bound.
//!
//! Two threads form a pipeline: one gathers a batch and checks its signatures on all cores
//! while the other commits the batch before it, so the cores are not idle during a sync.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::metrics::Metrics;
use crate::core::event::SignedEvent;
use crate::core::rules::Reject;
use crate::ledger::{precheck, Ledger, Outcome, Prechecked};

/// The answer to one submission: an outcome per event, or a storage failure (nothing in the
/// failed chunk was acknowledged).
pub type Answer = Result<Vec<Outcome>, String>;

struct Job {
    events: Vec<Result<SignedEvent, Reject>>,
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

/// Handle to the sequencer threads.
pub struct Sequencer {
    tx: Mutex<Option<SyncSender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A gathered, prechecked batch on its way to the committing thread.
struct Checked {
    events: Vec<Result<Prechecked, Reject>>,
    sizes: Vec<usize>,
    replies: Vec<oneshot::Sender<Answer>>,
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
        // One checked batch waits while another commits.
        let (ctx, crx) = sync_channel(1);
        let gather = std::thread::Builder::new()
            .name("sequencer-check".into())
            .spawn(move || gather(cfg, rx, ctx))
            .expect("spawn sequencer");
        let commit = std::thread::Builder::new()
            .name("sequencer".into())
            .spawn(move || commit(ledger, crx, metrics))
            .expect("spawn sequencer");
        Sequencer {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(vec![gather, commit]),
        }
    }

    /// Queues events; the receiver yields their outcomes once durable.
    pub fn submit(
        &self,
        events: Vec<Result<SignedEvent, Reject>>,
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

    /// Stops taking submissions, finishes every queued one, and waits for the threads.
    pub fn close(&self) {
        self.tx.lock().expect("sequencer").take();
        for t in self.threads.lock().expect("sequencer").drain(..) {
            let _ = t.join();
        }
    }
}

/// Gathers submissions into batches and checks their signatures, then passes them on.
fn gather(cfg: BatchConfig, rx: Receiver<Job>, out: SyncSender<Checked>) {
    while let Ok(first) = rx.recv() {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(cfg.max_wait_ms);
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
        let checked = Checked {
            events: precheck(all),
            sizes,
            replies,
        };
        if out.send(checked).is_err() {
            return;
        }
    }
}

/// Commits checked batches in order and answers each submission.
fn commit(ledger: Arc<Ledger>, rx: Receiver<Checked>, metrics: Arc<Metrics>) {
    while let Ok(Checked {
        events,
        sizes,
        replies,
    }) = rx.recv()
    {
        let n = events.len();
        let t = Instant::now();
        let result = ledger.append_checked(events);
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
                    let _ = reply.send(Err(format!("storage failure: {e}")));
                }
            }
        }
    }
}
