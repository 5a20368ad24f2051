//! Prometheus metrics (prometheus-client, Prometheus text format 0.0.4): appends, rejections by
//! rule, batch sizes, latencies, tree size, checkpoint age.

use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::ledger::{clock, Ledger, Outcome};

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

const BATCH_BUCKETS: [f64; 8] = [1.0, 8.0, 64.0, 256.0, 1024.0, 4096.0, 8192.0, 16384.0];
const LATENCY_BUCKETS_S: [f64; 9] = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// The label of a rejection: the rule's stable code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rule {
    rule: &'static str,
}

/// The label of a witness's series: its name in the policy.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WitnessLabel {
    witness: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    appended: Counter,
    duplicates: Counter,
    storage_errors: Counter,
    overloaded: Counter,
    rejections: Family<Rule, Counter>,
    batch_sizes: Histogram,
    batch_seconds: Histogram,
    request_seconds: Histogram,
    tree_size: Gauge,
    checkpoint_size: Gauge,
    checkpoint_age: Gauge<f64, AtomicU64>,
    witness_cosigned_size: Family<WitnessLabel, Gauge>,
    witness_lag: Family<WitnessLabel, Gauge>,
    witness_cosignatures: Family<WitnessLabel, Counter>,
    witness_failures: Family<WitnessLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            appended: Counter::default(),
            duplicates: Counter::default(),
            storage_errors: Counter::default(),
            overloaded: Counter::default(),
            rejections: Family::default(),
            batch_sizes: Histogram::new(BATCH_BUCKETS),
            batch_seconds: Histogram::new(LATENCY_BUCKETS_S),
            request_seconds: Histogram::new(LATENCY_BUCKETS_S),
            tree_size: Gauge::default(),
            checkpoint_size: Gauge::default(),
            checkpoint_age: Gauge::default(),
            witness_cosigned_size: Family::default(),
            witness_lag: Family::default(),
            witness_cosignatures: Family::default(),
            witness_failures: Family::default(),
            registry: Registry::default(),
        };
        // Counters get their `_total` suffix from the encoder.
        let counters = [
            ("consentlog_appends", "Events appended", &m.appended),
            (
                "consentlog_duplicates",
                "Resubmitted events answered with their receipt",
                &m.duplicates,
            ),
            (
                "consentlog_storage_errors",
                "Append batches that failed in storage",
                &m.storage_errors,
            ),
            (
                "consentlog_overloaded",
                "Submissions refused because the queue was full",
                &m.overloaded,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "consentlog_rejections",
            "Events rejected, by rule",
            m.rejections.clone(),
        );
        let histograms = [
            (
                "consentlog_batch_events",
                "Events per sequencer batch",
                &m.batch_sizes,
            ),
            (
                "consentlog_batch_seconds",
                "Time to verify, write and sync one batch",
                &m.batch_seconds,
            ),
            (
                "consentlog_append_request_seconds",
                "Append request latency",
                &m.request_seconds,
            ),
        ];
        for (name, help, h) in histograms {
            registry.register(name, help, h.clone());
        }
        let gauges = [
            ("consentlog_tree_size", "Entries in the log", &m.tree_size),
            (
                "consentlog_checkpoint_size",
                "Entries covered by the latest checkpoint",
                &m.checkpoint_size,
            ),
        ];
        for (name, help, g) in gauges {
            registry.register(name, help, g.clone());
        }
        registry.register(
            "consentlog_checkpoint_age_seconds",
            "Age of the latest checkpoint",
            m.checkpoint_age.clone(),
        );
        registry.register(
            "consentlog_witness_cosigned_size",
            "Tree size of the newest checkpoint each witness cosigned",
            m.witness_cosigned_size.clone(),
        );
        registry.register(
            "consentlog_witness_lag_leaves",
            "Leaves between the newest checkpoint and the newest one each witness cosigned",
            m.witness_lag.clone(),
        );
        registry.register(
            "consentlog_witness_cosignatures",
            "Cosignatures stored, by witness",
            m.witness_cosignatures.clone(),
        );
        registry.register(
            "consentlog_witness_failures",
            "Submissions to a witness that ended without a cosignature",
            m.witness_failures.clone(),
        );
        Metrics { registry, ..m }
    }
}

fn label(witness: &str) -> WitnessLabel {
    WitnessLabel {
        witness: witness.to_string(),
    }
}

impl Metrics {
    pub fn observe_batch(&self, events: usize, took: Duration) {
        self.batch_sizes.observe(events as f64);
        self.batch_seconds.observe(took.as_secs_f64());
    }
    pub fn observe_append_request(&self, took: Duration) {
        self.request_seconds.observe(took.as_secs_f64());
    }
    pub fn count_outcomes(&self, outcomes: &[Outcome]) {
        for o in outcomes {
            match o {
                Outcome::Accepted(_) => self.appended.inc(),
                Outcome::Duplicate(_) => self.duplicates.inc(),
                Outcome::Rejected(r) => self
                    .rejections
                    .get_or_create(&Rule { rule: r.code() })
                    .inc(),
            };
        }
    }
    pub fn count_storage_error(&self) {
        self.storage_errors.inc();
    }
    pub fn count_overloaded(&self) {
        self.overloaded.inc();
    }

    /// A witness's cosignature was stored.
    pub fn witness_cosigned(&self, witness: &str) {
        self.witness_cosignatures
            .get_or_create(&label(witness))
            .inc();
    }
    /// A submission to a witness failed.
    pub fn witness_failed(&self, witness: &str) {
        self.witness_failures.get_or_create(&label(witness)).inc();
    }
    /// The newest size `witness` cosigned, and the newest checkpoint's.
    pub fn witness_progress(&self, witness: &str, cosigned: u64, newest: u64) {
        let l = label(witness);
        self.witness_cosigned_size
            .get_or_create(&l)
            .set(cosigned as i64);
        self.witness_lag
            .get_or_create(&l)
            .set(newest.saturating_sub(cosigned) as i64);
    }

    /// The Prometheus text exposition, with the ledger's gauges read now.
    pub fn render(&self, ledger: &Ledger) -> String {
        let snap = ledger.latest();
        self.tree_size.set(ledger.size() as i64);
        self.checkpoint_size.set(snap.checkpoint.size as i64);
        let age = clock::now_ms().saturating_sub(snap.map_leaf.time) as f64 / 1000.0;
        self.checkpoint_age.set(age);
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}
