//! Prometheus text metrics: appends, rejections by rule, batch sizes, latencies, tree size,
//! checkpoint age.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::ledger::{clock, Ledger, Outcome};

const BATCH_BUCKETS: [u64; 8] = [1, 8, 64, 256, 1024, 4096, 8192, 16384];
const LATENCY_BUCKETS_MS: [u64; 9] = [1, 2, 5, 10, 25, 50, 100, 250, 1000];

/// A cumulative histogram.
struct Histogram {
    bounds: &'static [u64],
    counts: Vec<AtomicU64>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [u64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
    fn observe(&self, v: u64) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if v <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
    fn render(&self, out: &mut String, name: &str, help: &str, scale: f64) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {}",
                *b as f64 * scale,
                c.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum.load(Ordering::Relaxed) as f64 * scale
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The server's counters.
pub struct Metrics {
    appended: AtomicU64,
    duplicates: AtomicU64,
    storage_errors: AtomicU64,
    overloaded: AtomicU64,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
    batch_sizes: Histogram,
    batch_ms: Histogram,
    request_ms: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            appended: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            storage_errors: AtomicU64::new(0),
            overloaded: AtomicU64::new(0),
            rejections: Mutex::new(BTreeMap::new()),
            batch_sizes: Histogram::new(&BATCH_BUCKETS),
            batch_ms: Histogram::new(&LATENCY_BUCKETS_MS),
            request_ms: Histogram::new(&LATENCY_BUCKETS_MS),
        }
    }
}

impl Metrics {
    pub fn observe_batch(&self, events: usize, took: Duration) {
        self.batch_sizes.observe(events as u64);
        self.batch_ms.observe(took.as_millis() as u64);
    }
    pub fn observe_append_request(&self, took: Duration) {
        self.request_ms.observe(took.as_millis() as u64);
    }
    pub fn count_outcomes(&self, outcomes: &[Outcome]) {
        let mut rej = self.rejections.lock().expect("metrics");
        for o in outcomes {
            match o {
                Outcome::Accepted(_) => {
                    self.appended.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Duplicate(_) => {
                    self.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Rejected(r) => *rej.entry(r.code()).or_insert(0) += 1,
            }
        }
    }
    pub fn count_storage_error(&self) {
        self.storage_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn count_overloaded(&self) {
        self.overloaded.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, ledger: &Ledger) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "consentlog_appends_total",
            "Events appended.",
            self.appended.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "consentlog_duplicates_total",
            "Resubmitted events answered with their receipt.",
            self.duplicates.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "consentlog_storage_errors_total",
            "Append batches that failed in storage.",
            self.storage_errors.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "consentlog_overloaded_total",
            "Submissions refused because the queue was full.",
            self.overloaded.load(Ordering::Relaxed),
        );
        let _ = writeln!(out, "# HELP consentlog_rejections_total Events rejected, by rule.\n# TYPE consentlog_rejections_total counter");
        for (rule, n) in self.rejections.lock().expect("metrics").iter() {
            let _ = writeln!(out, "consentlog_rejections_total{{rule=\"{rule}\"}} {n}");
        }
        self.batch_sizes.render(
            &mut out,
            "consentlog_batch_events",
            "Events per sequencer batch.",
            1.0,
        );
        self.batch_ms.render(
            &mut out,
            "consentlog_batch_seconds",
            "Time to verify, write and sync one batch.",
            0.001,
        );
        self.request_ms.render(
            &mut out,
            "consentlog_append_request_seconds",
            "Append request latency.",
            0.001,
        );
        let snap = ledger.latest();
        let _ = writeln!(out, "# HELP consentlog_tree_size Entries in the log.\n# TYPE consentlog_tree_size gauge\nconsentlog_tree_size {}", ledger.size());
        let _ = writeln!(out, "# HELP consentlog_checkpoint_size Entries covered by the latest checkpoint.\n# TYPE consentlog_checkpoint_size gauge\nconsentlog_checkpoint_size {}", snap.checkpoint.size);
        let age = clock::now_ms().saturating_sub(snap.checkpoint.time) as f64 / 1000.0;
        let _ = writeln!(out, "# HELP consentlog_checkpoint_age_seconds Age of the latest checkpoint.\n# TYPE consentlog_checkpoint_age_seconds gauge\nconsentlog_checkpoint_age_seconds {age}");
        out
    }
}
