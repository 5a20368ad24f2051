//! Auditor replay: recompute every checkpoint from the entries alone and check every rule that
//! the entries (and, where present, the openings) let an outsider check (docs/FORMAT.md,
//! "Audit"). Fed in chunks by whoever reads the ledger or an export; I/O-free.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;

use super::entry::{Entry, Opening};
use super::event::{signatures_valid, subject_keys, SignedEvent, SIGNATURE_CHUNK};
use super::hash::Hash;
use super::map::{MapValue, StateMap};
use super::note::{self, SignedCheckpoint};
pub use super::proof::logged_event::{check_opening, check_opening_given, check_opening_with};
use super::proof::EventError;
use super::rules::{check_chain, Head};
use super::tlog::{Blake3Hasher, Frontier};

/// One broken rule, with the entry index where it applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub index: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "entry {i}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

/// The outcome of a replay.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub entries: u64,
    pub checkpoints: usize,
    pub openings_checked: u64,
    pub openings_missing: u64,
    pub violations: Vec<Violation>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// An entry, its leaf hash, and its opening with the event hash and the opening's checks.
type CheckedEntry = (Entry, Hash, Option<(Opening, Hash, Result<(), EventError>)>);

/// Entries checked on their own (commitments, signatures, fields): the part of a replay that
/// needs no state, made by [`Auditor::check_chunk`] on all cores, possibly while the auditor
/// replays the chunk before.
pub struct CheckedChunk(Vec<CheckedEntry>);

impl CheckedChunk {
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the chunk holds no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A chain head known to the auditor; `None` after an erased opening.
type AuditHead = Option<Head>;

/// Streaming replay state.
pub struct Auditor {
    origin: String,
    checkpoints: Vec<SignedCheckpoint>,
    /// Next checkpoint (by position) whose size has not been reached.
    next_cp: usize,
    frontier: Frontier,
    map: StateMap,
    pending: Vec<(Hash, MapValue)>,
    last_time: u64,
    heads: HashMap<Hash, AuditHead>,
    report: Report,
}

/// Most violations kept in a report (the count beyond is summarised).
pub const MAX_VIOLATIONS: usize = 1000;

impl Auditor {
    /// Starts a replay: verifies every checkpoint note under `log_key` and their order.
    /// `now` bounds checkpoint times (none may be in the future).
    pub fn new(log_key: &VerifyingKey, origin: &str, notes: &[String], now: u64) -> Self {
        let mut report = Report::default();
        let mut checkpoints = Vec::new();
        for (n, text) in notes.iter().enumerate() {
            match note::open(text, log_key) {
                Err(e) => report.violations.push(Violation {
                    index: None,
                    message: format!("checkpoint {n}: {e}"),
                }),
                Ok(cp) => {
                    if cp.origin != origin {
                        report.violations.push(Violation {
                            index: None,
                            message: format!(
                                "checkpoint {n} is for origin {:?}, not {origin:?}",
                                cp.origin
                            ),
                        });
                    }
                    if cp.time > now {
                        report.violations.push(Violation {
                            index: None,
                            message: format!("checkpoint {n} time {} is in the future", cp.time),
                        });
                    }
                    if let Some(prev) = checkpoints.last() {
                        let prev: &SignedCheckpoint = prev;
                        if cp.size < prev.size || cp.time < prev.time {
                            report.violations.push(Violation {
                                index: None,
                                message: format!(
                                    "checkpoint {n} (size {}, time {}) goes back from the previous \
                                     (size {}, time {})",
                                    cp.size, cp.time, prev.size, prev.time
                                ),
                            });
                        }
                    }
                    checkpoints.push(cp);
                }
            }
        }
        if notes.is_empty() {
            report.violations.push(Violation {
                index: None,
                message: "no checkpoints".into(),
            });
        }
        report.checkpoints = checkpoints.len();
        let mut a = Auditor {
            origin: origin.to_string(),
            checkpoints,
            next_cp: 0,
            frontier: Frontier::new(),
            map: StateMap::new(),
            pending: Vec::new(),
            last_time: 0,
            heads: HashMap::new(),
            report,
        };
        a.check_reached_checkpoints();
        a
    }

    fn violation(&mut self, index: Option<u64>, message: String) {
        if self.report.violations.len() < MAX_VIOLATIONS {
            self.report.violations.push(Violation { index, message });
        } else if self.report.violations.len() == MAX_VIOLATIONS {
            self.report.violations.push(Violation {
                index: None,
                message: "too many violations; the rest are not listed".into(),
            });
        }
    }

    /// Compares roots at every checkpoint whose size the replay has reached.
    fn check_reached_checkpoints(&mut self) {
        let size = self.frontier.size().0;
        while self.next_cp < self.checkpoints.len() && self.checkpoints[self.next_cp].size <= size {
            let n = self.next_cp;
            self.next_cp += 1;
            let cp = self.checkpoints[n].clone();
            if cp.size < size {
                // Only reachable when sizes go backwards, which `new` already reported.
                continue;
            }
            if !self.pending.is_empty() {
                self.map.insert_batch(&self.pending);
                self.pending.clear();
            }
            if self.frontier.root(&Blake3Hasher) != cp.root {
                self.violation(
                    None,
                    format!("checkpoint {n}: log root at size {size} does not match"),
                );
            }
            if self.map.root() != cp.map_root {
                self.violation(
                    None,
                    format!("checkpoint {n}: map root at size {size} does not match"),
                );
            }
        }
    }

    /// Time bounds for the next entry: strictly after `lo` (the latest checkpoint that does
    /// not cover it) and at most `hi` (the earliest checkpoint that does).
    fn bounds(&self) -> (Option<u64>, Option<u64>) {
        let lo = self
            .next_cp
            .checked_sub(1)
            .map(|n| self.checkpoints[n].time);
        let hi = self.checkpoints.get(self.next_cp).map(|c| c.time);
        (lo, hi)
    }

    /// The origin the replay expects.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The per-entry checks that need no state, on all cores, for a log of `origin`.
    pub fn check_chunk(origin: &str, chunk: Vec<(Entry, Option<Opening>)>) -> CheckedChunk {
        let keys = subject_keys(
            chunk
                .iter()
                .filter_map(|(_, o)| o.as_ref().map(|o| &o.event)),
        );
        CheckedChunk(crate::par::map_parts(chunk, SIGNATURE_CHUNK, |part| {
            let signed: Vec<&SignedEvent> = part
                .iter()
                .filter_map(|(_, o)| Some(&o.as_ref()?.event))
                .collect();
            let mut valid = signatures_valid(&signed, &keys).into_iter();
            let keys = &keys;
            part.into_iter()
                .map(move |(e, o)| {
                    let leaf = e.leaf_hash();
                    let o = o.map(|o| {
                        let ok = valid.next().expect("one answer per opening");
                        let key = &keys[&o.event.event.subject];
                        let r = check_opening_given(&e, &o, origin, key, |_| ok);
                        let h = o.event.event_hash();
                        (o, h, r)
                    });
                    (e, leaf, o)
                })
                .collect()
        }))
    }

    /// Replays the next entries in order.
    pub fn push_chunk(&mut self, chunk: Vec<(Entry, Option<Opening>)>) {
        let checked = Self::check_chunk(&self.origin, chunk);
        self.push_checked(checked);
    }

    /// Replays the next entries in order, already through [`Auditor::check_chunk`] for this
    /// replay's origin.
    pub fn push_checked(&mut self, checked: CheckedChunk) {
        for (e, leaf, o) in checked.0 {
            let i = self.frontier.size().0;
            if e.integrated_at < self.last_time {
                self.violation(
                    Some(i),
                    format!(
                        "integrated_at {} is before the previous entry's {}",
                        e.integrated_at, self.last_time
                    ),
                );
            }
            self.last_time = self.last_time.max(e.integrated_at);
            let (lo, hi) = self.bounds();
            if let Some(lo) = lo.filter(|lo| e.integrated_at <= *lo) {
                self.violation(
                    Some(i),
                    format!(
                        "integrated_at {} is not after the time {lo} of a checkpoint that \
                         does not cover it",
                        e.integrated_at
                    ),
                );
            }
            if let Some(hi) = hi.filter(|hi| e.integrated_at > *hi) {
                self.violation(
                    Some(i),
                    format!(
                        "integrated_at {} is after the time {hi} of a checkpoint covering it",
                        e.integrated_at
                    ),
                );
            }
            match o {
                None => {
                    self.report.openings_missing += 1;
                    self.heads.insert(e.key, None);
                }
                Some((o, event_hash, r)) => {
                    self.report.openings_checked += 1;
                    if let Err(e) = r {
                        self.violation(Some(i), e.to_string());
                    }
                    match self.heads.get(&e.key) {
                        // After an erased opening the chain cannot be checked across the gap.
                        Some(None) => {}
                        Some(Some(h)) => {
                            if let Err(r) = check_chain(&o.event, Some(h)) {
                                self.violation(Some(i), format!("chain: {r}"));
                            }
                        }
                        None => {
                            if let Err(r) = check_chain(&o.event, None) {
                                self.violation(Some(i), format!("chain: {r}"));
                            }
                        }
                    }
                    self.heads.insert(
                        e.key,
                        Some(Head {
                            index: i,
                            seq: o.event.event.seq,
                            event_hash,
                        }),
                    );
                }
            }
            self.frontier.append_with(&Blake3Hasher, leaf, |_, _, _| {});
            self.pending.push((
                e.key,
                MapValue {
                    index: i,
                    leaf_hash: leaf,
                },
            ));
            self.report.entries += 1;
            self.check_reached_checkpoints();
        }
    }

    /// Ends the replay: the last checkpoint must cover every entry.
    pub fn finish(mut self) -> Report {
        let size = self.frontier.size().0;
        match self.checkpoints.last() {
            Some(last) if last.size == size => {}
            Some(last) if last.size > size => {
                let m = format!(
                    "the latest checkpoint covers {} entries but only {size} were replayed \
                     (truncated?)",
                    last.size
                );
                self.violation(None, m);
            }
            Some(last) => {
                let m = format!(
                    "the latest checkpoint covers {} entries; {} entries after it are not \
                     covered by any checkpoint",
                    last.size,
                    size - last.size
                );
                self.violation(None, m);
            }
            None => {}
        }
        self.report
    }
}
