//! Map leaves and their checkpoints on a heartbeat: whenever the tree grew, at most every
//! `interval` (and never within a second of another), and at least every `max_gap` even when
//! nothing changed, so "still held at T" can be proven for a recent T.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::ledger::{Invalid, Ledger, LedgerError};

/// Handle to the heartbeat thread.
pub struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts the thread; `covered` is told the tree size of every new latest checkpoint.
    pub fn start(
        ledger: Arc<Ledger>,
        interval: Duration,
        max_gap: Duration,
        covered: watch::Sender<u64>,
    ) -> Heartbeat {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                let tick = Duration::from_millis(20).min(interval);
                let mut last = Instant::now();
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    let latest = ledger.latest();
                    let grew = ledger.size() > latest.checkpoint.size;
                    let age = last.elapsed();
                    if (grew && age >= interval) || age >= max_gap {
                        match ledger.checkpoint() {
                            Ok(_) => last = Instant::now(),
                            // Another map leaf (asked for by a proof) under a second ago.
                            Err(LedgerError::Invalid(Invalid::MapLeafTooSoon { .. })) => {}
                            Err(e) => tracing::error!("heartbeat checkpoint failed: {e}"),
                        }
                    }
                    let size = ledger.latest().checkpoint.size;
                    covered.send_if_modified(|v| {
                        let changed = *v != size;
                        *v = size;
                        changed
                    });
                }
            })
            .expect("spawn heartbeat");
        Heartbeat {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
