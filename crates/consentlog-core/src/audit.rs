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
use super::reject::Reject;
use super::rules::{check_chain, Head};
use super::tlog::{Blake3Hasher, Frontier};

/// One broken rule, with the entry index where it applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub index: Option<u64>,
    pub problem: Problem,
}

impl Violation {
    /// A violation found outside the replay, by its caller ([`Problem::Other`]).
    pub fn other(index: Option<u64>, message: impl Into<String>) -> Self {
        Violation {
            index,
            problem: Problem::Other(message.into()),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "entry {i}: {}", self.problem),
            None => write!(f, "{}", self.problem),
        }
    }
}

/// What a replay found wrong. Checkpoints are numbered from 0 in the order given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A checkpoint note does not open under the log key.
    #[error("checkpoint {n}: {err}")]
    Checkpoint {
        n: usize,
        #[source]
        err: note::NoteError,
    },
    #[error("checkpoint {n} is for origin {origin:?}, not {want:?}")]
    CheckpointOrigin {
        n: usize,
        origin: String,
        want: String,
    },
    #[error("checkpoint {n} time {time} is in the future")]
    CheckpointInFuture { n: usize, time: u64 },
    /// A checkpoint is smaller or earlier than the one before it.
    #[error(
        "checkpoint {n} (size {size}, time {time}) goes back from the previous \
         (size {prev_size}, time {prev_time})"
    )]
    CheckpointGoesBack {
        n: usize,
        size: u64,
        time: u64,
        prev_size: u64,
        prev_time: u64,
    },
    #[error("no checkpoints")]
    NoCheckpoints,
    /// The entries up to a checkpoint's size do not hash to its log root.
    #[error("checkpoint {n}: log root at size {size} does not match")]
    LogRoot { n: usize, size: u64 },
    /// The entries up to a checkpoint's size do not give its map root.
    #[error("checkpoint {n}: map root at size {size} does not match")]
    MapRoot { n: usize, size: u64 },
    #[error("integrated_at {integrated_at} is before the previous entry's {previous}")]
    TimeGoesBack { integrated_at: u64, previous: u64 },
    #[error(
        "integrated_at {integrated_at} is not after the time {checkpoint_time} of a checkpoint \
         that does not cover it"
    )]
    BeforeUncoveringCheckpoint {
        integrated_at: u64,
        checkpoint_time: u64,
    },
    #[error(
        "integrated_at {integrated_at} is after the time {checkpoint_time} of a checkpoint \
         covering it"
    )]
    AfterCoveringCheckpoint {
        integrated_at: u64,
        checkpoint_time: u64,
    },
    /// The entry's opening fails its checks.
    #[error("{0}")]
    Opening(#[from] EventError),
    /// The event does not continue its key's chain (seq, prev).
    #[error("chain: {0}")]
    Chain(#[source] Reject),
    #[error(
        "the latest checkpoint covers {covered} entries but only {replayed} were replayed \
         (truncated?)"
    )]
    Truncated { covered: u64, replayed: u64 },
    #[error(
        "the latest checkpoint covers {covered} entries; {uncovered} entries after it are not \
         covered by any checkpoint"
    )]
    Uncovered { covered: u64, uncovered: u64 },
    /// [`MAX_VIOLATIONS`] were listed; the rest are not.
    #[error("too many violations; the rest are not listed")]
    TooMany,
    /// Found outside the replay by its caller (a ledger's stored structures, a server's
    /// answers), in the caller's words.
    #[error("{0}")]
    Other(String),
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
        let mut found = |problem| {
            report.violations.push(Violation {
                index: None,
                problem,
            })
        };
        for (n, text) in notes.iter().enumerate() {
            match note::open(text, log_key) {
                Err(err) => found(Problem::Checkpoint { n, err }),
                Ok(cp) => {
                    if cp.origin != origin {
                        found(Problem::CheckpointOrigin {
                            n,
                            origin: cp.origin.clone(),
                            want: origin.to_string(),
                        });
                    }
                    if cp.time > now {
                        found(Problem::CheckpointInFuture { n, time: cp.time });
                    }
                    if let Some(prev) = checkpoints.last() {
                        let prev: &SignedCheckpoint = prev;
                        if cp.size < prev.size || cp.time < prev.time {
                            found(Problem::CheckpointGoesBack {
                                n,
                                size: cp.size,
                                time: cp.time,
                                prev_size: prev.size,
                                prev_time: prev.time,
                            });
                        }
                    }
                    checkpoints.push(cp);
                }
            }
        }
        if notes.is_empty() {
            found(Problem::NoCheckpoints);
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

    fn violation(&mut self, index: Option<u64>, problem: Problem) {
        if self.report.violations.len() < MAX_VIOLATIONS {
            self.report.violations.push(Violation { index, problem });
        } else if self.report.violations.len() == MAX_VIOLATIONS {
            self.report.violations.push(Violation {
                index: None,
                problem: Problem::TooMany,
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
                self.violation(None, Problem::LogRoot { n, size });
            }
            if self.map.root() != cp.map_root {
                self.violation(None, Problem::MapRoot { n, size });
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
            let integrated_at = e.integrated_at;
            if integrated_at < self.last_time {
                let previous = self.last_time;
                self.violation(
                    Some(i),
                    Problem::TimeGoesBack {
                        integrated_at,
                        previous,
                    },
                );
            }
            self.last_time = self.last_time.max(integrated_at);
            let (lo, hi) = self.bounds();
            if let Some(checkpoint_time) = lo.filter(|lo| integrated_at <= *lo) {
                self.violation(
                    Some(i),
                    Problem::BeforeUncoveringCheckpoint {
                        integrated_at,
                        checkpoint_time,
                    },
                );
            }
            if let Some(checkpoint_time) = hi.filter(|hi| integrated_at > *hi) {
                self.violation(
                    Some(i),
                    Problem::AfterCoveringCheckpoint {
                        integrated_at,
                        checkpoint_time,
                    },
                );
            }
            match o {
                None => {
                    self.report.openings_missing += 1;
                    self.heads.insert(e.key, None);
                }
                Some((o, event_hash, r)) => {
                    self.report.openings_checked += 1;
                    if let Err(err) = r {
                        self.violation(Some(i), Problem::Opening(err));
                    }
                    // After an erased opening the chain cannot be checked across the gap.
                    let head = self.heads.get(&e.key);
                    if !matches!(head, Some(None)) {
                        if let Err(r) = check_chain(&o.event, head.and_then(Option::as_ref)) {
                            self.violation(Some(i), Problem::Chain(r));
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
                let problem = Problem::Truncated {
                    covered: last.size,
                    replayed: size,
                };
                self.violation(None, problem);
            }
            Some(last) => {
                let problem = Problem::Uncovered {
                    covered: last.size,
                    uncovered: size - last.size,
                };
                self.violation(None, problem);
            }
            None => {}
        }
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::{Checkpoint, NoteError};
    use crate::testutil::{Log, ORIGIN, T0};

    const NOW: u64 = T0 + 3_600_000;

    fn chunk(log: &Log, openings: bool) -> Vec<(Entry, Option<Opening>)> {
        let opening = |o: &Opening| openings.then(|| o.clone());
        log.entries.iter().map(|(e, o)| (*e, opening(o))).collect()
    }

    /// The problems a replay of `log`'s entries against `notes` finds.
    fn problems(log: &Log, notes: &[String], openings: bool) -> Vec<Problem> {
        let mut a = Auditor::new(&log.key.verifying_key(), ORIGIN, notes, NOW);
        a.push_chunk(chunk(log, openings));
        a.finish()
            .violations
            .into_iter()
            .map(|v| v.problem)
            .collect()
    }

    fn note(log: &Log, size: u64, root: Hash, map_root: Hash, time: u64) -> String {
        let cp = Checkpoint {
            origin: ORIGIN,
            size,
            root,
            map_root,
            time,
        };
        cp.sign(&log.key)
    }

    #[test]
    fn checkpoint_problems() {
        let (log, _) = Log::chain_of_two();
        let whole = log.checkpoint(T0 + 120_000).note;
        assert_eq!(problems(&log, std::slice::from_ref(&whole), true), []);
        assert_eq!(problems(&log, &[], true), [Problem::NoCheckpoints]);
        assert!(matches!(
            &problems(&log, &["x".into(), whole.clone()], true)[..],
            [Problem::Checkpoint {
                n: 0,
                err: NoteError::Malformed(_)
            }]
        ));
        let mut a = Auditor::new(
            &log.key.verifying_key(),
            "other",
            std::slice::from_ref(&whole),
            T0,
        );
        a.push_chunk(chunk(&log, false));
        let found: Vec<_> = a
            .finish()
            .violations
            .into_iter()
            .map(|v| v.problem)
            .collect();
        assert_eq!(
            found,
            [
                Problem::CheckpointOrigin {
                    n: 0,
                    origin: ORIGIN.into(),
                    want: "other".into()
                },
                Problem::CheckpointInFuture {
                    n: 0,
                    time: T0 + 120_000
                }
            ]
        );
        let (root, map_root) = (log.tree.root(), log.map.root());
        let earlier = note(&log, 1, root, map_root, T0 + 1_000);
        assert!(problems(&log, &[whole.clone(), earlier], true).contains(
            &Problem::CheckpointGoesBack {
                n: 1,
                size: 1,
                time: T0 + 1_000,
                prev_size: 2,
                prev_time: T0 + 120_000
            }
        ));
        let bad_log = note(&log, 2, [0; 32], map_root, T0 + 120_000);
        assert_eq!(
            problems(&log, &[bad_log], true),
            [Problem::LogRoot { n: 0, size: 2 }]
        );
        let bad_map = note(&log, 2, root, [0; 32], T0 + 120_000);
        assert_eq!(
            problems(&log, &[bad_map], true),
            [Problem::MapRoot { n: 0, size: 2 }]
        );
        let mut first = Log::new();
        first.append(log.entries[0].1.event.clone());
        assert_eq!(
            problems(&first, std::slice::from_ref(&whole), true),
            [Problem::Truncated {
                covered: 2,
                replayed: 1
            }]
        );
        let one = first.checkpoint(T0 + 1_000).note;
        assert_eq!(
            problems(&log, &[one], false),
            [Problem::Uncovered {
                covered: 1,
                uncovered: 1
            }]
        );
    }

    #[test]
    fn entry_problems() {
        // Times: the second entry is integrated before the first.
        let mut log = Log::new();
        let ev = log.event(None, true, T0);
        let o = Opening {
            nonce: [1; 32],
            event: ev,
        };
        log.append_entry(o.entry(T0 + 500), o.clone());
        log.append_entry(o.entry(T0 + 250), o.clone());
        let cp = log.checkpoint(T0 + 1_000).note;
        let found = problems(&log, std::slice::from_ref(&cp), false);
        assert_eq!(
            found,
            [Problem::TimeGoesBack {
                integrated_at: T0 + 250,
                previous: T0 + 500
            }]
        );
        let v = Violation {
            index: Some(1),
            problem: found[0].clone(),
        };
        assert_eq!(
            v.to_string(),
            format!(
                "entry 1: integrated_at {} is before the previous entry's {}",
                T0 + 250,
                T0 + 500
            )
        );
        // The same event twice: its second entry repeats seq 0 (a chain problem).
        let found = problems(&log, &[cp], true);
        assert!(found.contains(&Problem::Chain(Reject::Seq {
            expected: 1,
            got: 0
        })));

        // Entries outside the time bounds of the checkpoints around them.
        let mut log = Log::new();
        log.append_entry(o.entry(T0 + 250), o.clone());
        let c1 = log.checkpoint(T0 + 100).note;
        log.append_entry(o.entry(T0 + 50), o.clone());
        let c2 = log.checkpoint(T0 + 1_000).note;
        let found = problems(&log, &[c1, c2], false);
        assert!(found.contains(&Problem::AfterCoveringCheckpoint {
            integrated_at: T0 + 250,
            checkpoint_time: T0 + 100
        }));
        assert!(found.contains(&Problem::BeforeUncoveringCheckpoint {
            integrated_at: T0 + 50,
            checkpoint_time: T0 + 100
        }));

        // An opening that does not open its entry.
        let mut log = Log::new();
        let mut wrong = o.clone();
        wrong.nonce = [2; 32];
        log.append_entry(o.entry(T0 + 250), wrong);
        let cp = log.checkpoint(T0 + 1_000).note;
        assert_eq!(
            problems(&log, &[cp], true),
            [Problem::Opening(EventError::Commitment)]
        );
        assert_eq!(
            Violation::other(None, "stored elsewhere").to_string(),
            "stored elsewhere"
        );
    }

    #[test]
    fn too_many_problems() {
        let mut log = Log::new();
        let o = Opening {
            nonce: [1; 32],
            event: log.event(None, true, T0),
        };
        let n = MAX_VIOLATIONS as u64 + 5;
        for i in 0..n {
            log.append_entry(o.entry(T0 + n - i), o.clone());
        }
        let cp = log.checkpoint(T0 + n).note;
        let found = problems(&log, &[cp], false);
        assert_eq!(found.len(), MAX_VIOLATIONS + 1);
        assert_eq!(found.last(), Some(&Problem::TooMany));
    }
}
