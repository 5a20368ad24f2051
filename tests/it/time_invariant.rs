//! The ledger's clock under concurrency: appends from several threads while another appends
//! map leaves (and their checkpoints) in a loop. Leaf times never decrease; a map leaf's time
//! is at or after every leaf before it and strictly before every leaf after it; every stored
//! checkpoint ends at a map leaf; no time is in the future; and an auditor's replay of the
//! stored ledger is clean.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::ledger::*;
use crate::support::*;
use consentlog::core::audit::{Auditor, Report};
use consentlog::core::event::SignedEvent;
use consentlog::core::leaf::Leaf;
use consentlog::core::note::{self, SignedCheckpoint};
use consentlog::core::receipt::Receipt;
use consentlog::ledger::raw::RawLedger;
use consentlog::ledger::{Invalid, Ledger, LedgerError, Options, Outcome, CHUNK};
use ed25519_dalek::VerifyingKey;

/// Every leaf, in index order.
fn leaves(l: &Ledger) -> Vec<Leaf> {
    (0..l.size())
        .map(|i| {
            l.leaf(i)
                .unwrap()
                .unwrap_or_else(|| panic!("leaf {i} missing"))
        })
        .collect()
}

/// Every stored checkpoint, opened under the log key.
fn stored_checkpoints(l: &Ledger) -> Vec<SignedCheckpoint> {
    l.checkpoints()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(n, text)| {
            let cp = note::open(text, &l.public_key())
                .unwrap_or_else(|e| panic!("checkpoint {n} does not open: {e}"));
            assert_eq!(cp.origin, ORIGIN);
            cp
        })
        .collect()
}

/// The time invariants over all leaves and checkpoints of `l`; the leaves' times.
fn check_time_invariants(l: &Ledger) -> (Vec<u64>, Vec<SignedCheckpoint>) {
    let leaves = leaves(l);
    let times: Vec<u64> = leaves.iter().map(Leaf::time).collect();
    let cps = stored_checkpoints(l);
    let now = now_ms();
    assert!(matches!(leaves[0], Leaf::Genesis(_)), "leaf 0 is genesis");
    for (i, w) in times.windows(2).enumerate() {
        assert!(
            w[0] <= w[1],
            "time decreases from leaf {i} ({}) to leaf {} ({})",
            w[0],
            i + 1,
            w[1]
        );
    }
    if let Some(last) = times.last() {
        assert!(
            *last <= now,
            "leaf time {last} is in the future (now {now})"
        );
    }
    let mut last_map: Option<(usize, u64)> = None;
    for (i, leaf) in leaves.iter().enumerate() {
        if let Some((m, t)) = last_map {
            assert!(
                leaf.time() > t,
                "leaf {i} at {} is not after the map leaf {m} at {t}",
                leaf.time()
            );
        }
        if let Leaf::Map(m) = leaf {
            last_map = Some((i, m.time));
        }
    }
    for (n, cp) in cps.iter().enumerate() {
        assert!(
            cp.size <= times.len() as u64 && cp.size >= 2,
            "checkpoint {n} covers more than the log, or less than genesis and a map leaf"
        );
        assert!(
            matches!(leaves[cp.size as usize - 1], Leaf::Map(_)),
            "checkpoint {n} does not end at a map leaf"
        );
        if n > 0 {
            assert!(
                cp.size > cps[n - 1].size,
                "checkpoint {n} (size {}) does not grow from {}",
                cp.size,
                cps[n - 1].size
            );
        }
        assert_eq!(
            l.root_at(cp.size).unwrap(),
            cp.root,
            "checkpoint {n} root does not match the stored tree at size {}",
            cp.size
        );
    }
    (times, cps)
}

/// Replays the stored ledger with the auditor, like `consentlog demo` does.
fn audit(dir: &Path, log_key: &VerifyingKey) -> Report {
    let raw = retry_lock(|| RawLedger::open(dir));
    let notes = raw.checkpoints().unwrap();
    let mut a = Auditor::new(log_key, &raw.origin, &notes, now_ms());
    // In a few chunks, as the CLI feeds it.
    let mut start = 0;
    while start < raw.size {
        let end = (start + 1000).min(raw.size);
        a.push_chunk(raw.leaves(start, end).unwrap());
        start = end;
    }
    a.finish()
}

/// A ledger on the system clock whose map leaves may be a millisecond apart.
fn fast_ledger() -> (tempfile::TempDir, std::path::PathBuf, Ledger) {
    let (tmp, dir, l) = TestLedger::on_system_clock().into_parts();
    drop(l);
    let l = retry_lock(|| Ledger::open_with(&dir, Options::default().map_leaf_interval_ms(1)));
    (tmp, dir, l)
}

/// A map leaf now, or None if the last one is not a millisecond old yet.
fn map_leaf(l: &Ledger) -> Option<SignedCheckpoint> {
    match l.checkpoint() {
        Ok(cp) => Some(cp),
        Err(LedgerError::Invalid(Invalid::MapLeafTooSoon { .. })) => None,
        Err(e) => panic!("checkpoint: {e}"),
    }
}

/// One appender's people and their latest events.
struct Appender {
    people: Vec<Person>,
    heads: Vec<Option<SignedEvent>>,
    receipts: Vec<Receipt>,
}

impl Appender {
    fn new(n: usize) -> Self {
        Appender {
            people: (0..n).map(|_| Person::new()).collect(),
            heads: vec![None; n],
            receipts: Vec::new(),
        }
    }

    /// The next event of person `i` (alternating decisions).
    fn next_of(&self, i: usize) -> SignedEvent {
        let p = &self.people[i];
        match &self.heads[i] {
            None => p.first(),
            Some(h) => p.next(h, 1 - h.event.decision),
        }
    }

    fn submit(&mut self, l: &Ledger, who: &[usize]) {
        let evs: Vec<SignedEvent> = who.iter().map(|&i| self.next_of(i)).collect();
        let out = l.append(evs.iter().cloned().map(Ok).collect()).unwrap();
        for ((&i, ev), o) in who.iter().zip(evs).zip(out) {
            match o {
                Outcome::Accepted(r) => {
                    self.receipts.push(r);
                    self.heads[i] = Some(ev);
                }
                other => panic!("appender's event for person {i} not accepted: {other:?}"),
            }
        }
    }
}

#[test]
fn concurrent_appends_and_checkpoints_keep_time_order() {
    let (_tmp, dir, l) = fast_ledger();
    let log_key = l.public_key();
    let l = Arc::new(l);
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let checkpointer = {
        let l = l.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut cps = Vec::new();
            let mut n = 0u64;
            while !done.load(Ordering::SeqCst) {
                let Some(cp) = map_leaf(&l) else {
                    continue;
                };
                // The published snapshot is the checkpoint just signed (or a later one).
                let latest = l.latest();
                assert!(latest.checkpoint.size >= cp.size);
                cps.push(cp);
                n += 1;
                // Vary the pace: back to back, or a little later.
                if !n.is_multiple_of(3) {
                    std::thread::sleep(Duration::from_micros(300 * (n % 5)));
                }
            }
            cps
        })
    };

    const THREADS: usize = 3;
    const ROUNDS: usize = 40;
    let appenders: Vec<_> = (0..THREADS)
        .map(|t| {
            let l = l.clone();
            std::thread::spawn(move || {
                let mut a = Appender::new(6);
                for round in 0..ROUNDS {
                    match (round + t) % 4 {
                        // One event.
                        0 | 1 => a.submit(&l, &[round % 6]),
                        // A batch of several people.
                        2 => a.submit(&l, &[0, 2, 4]),
                        // A batch where one person's chain continues within it.
                        _ => {
                            let i = (round / 4) % 6;
                            let first = a.next_of(i);
                            let second = a.people[i].next(&first, 1 - first.event.decision);
                            let out = l.append(vec![Ok(first), Ok(second.clone())]).unwrap();
                            for o in out {
                                match o {
                                    Outcome::Accepted(r) => a.receipts.push(r),
                                    other => panic!("{other:?}"),
                                }
                            }
                            a.heads[i] = Some(second);
                        }
                    }
                }
                a.receipts
            })
        })
        .collect();

    // One large batch spanning two chunks while checkpoints are being signed.
    let big = {
        let l = l.clone();
        std::thread::spawn(move || {
            let batch: Vec<_> = (0..CHUNK + 50).map(|_| Ok(Person::new().first())).collect();
            let out = l.append(batch).unwrap();
            out.into_iter()
                .map(|o| match o {
                    Outcome::Accepted(r) => r,
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        })
    };

    let mut receipts: Vec<Receipt> = Vec::new();
    for h in appenders {
        receipts.extend(h.join().unwrap());
    }
    receipts.extend(big.join().unwrap());
    done.store(true, Ordering::SeqCst);
    let returned = checkpointer.join().unwrap();
    let last = l.checkpoint_waiting().unwrap();
    assert_eq!(last.size, l.size());
    eprintln!(
        "{} leaves, {} checkpoints in {:?}",
        l.size(),
        returned.len() + 1,
        started.elapsed()
    );
    assert!(
        returned.len() >= 3,
        "the checkpointer ran: {}",
        returned.len()
    );
    let (times, cps) = check_time_invariants(&l);
    // Every leaf is genesis, a map leaf (one per stored checkpoint) or an acknowledged event.
    assert_eq!(receipts.len() + cps.len() + 1, l.size() as usize);
    // Checkpoints interleaved with entries (some cover part of the log only).
    assert!(
        cps.iter().any(|c| c.size > 0 && c.size < l.size()),
        "no checkpoint fell between appends"
    );
    // The checkpoints handed out are the ones stored, in order.
    let stored: Vec<&str> = cps.iter().map(|c| c.note.as_str()).collect();
    let mut pos = 0;
    for cp in returned.iter().chain(std::iter::once(&last)) {
        let at = stored[pos..]
            .iter()
            .position(|s| *s == cp.note)
            .expect("a returned checkpoint is stored, in order");
        pos += at + 1;
    }
    assert_eq!(
        stored.len(),
        returned.len() + 2,
        "init's checkpoint + loop + last"
    );
    // Receipts: unique indices, matching the stored event leaves.
    let mut by_index = HashMap::new();
    for r in &receipts {
        assert!(
            by_index.insert(r.index, r.clone()).is_none(),
            "index {} twice",
            r.index
        );
        assert!(r.check(&log_key).is_ok());
        assert_eq!(times[r.index as usize], r.leaf.integrated_at);
        assert_eq!(
            l.event_leaf(r.index).unwrap().unwrap().leaf_hash(),
            r.leaf.leaf_hash()
        );
    }

    let l = Arc::try_unwrap(l).ok().expect("all threads are done");
    let size = l.size();
    drop(l);
    let report = audit(&dir, &log_key);
    assert!(report.ok(), "audit violations: {:?}", report.violations);
    assert_eq!(report.leaves, size);
    assert_eq!(report.events, receipts.len() as u64);
    assert_eq!(report.openings_checked, receipts.len() as u64);
    assert_eq!(report.checkpoints, cps.len());
}

#[test]
fn leaves_after_a_map_leaf_are_strictly_later_also_across_reopen() {
    let (_tmp, dir, mut l) = fast_ledger();
    let log_key = l.public_key();
    let p = Person::new();
    let mut head: Option<SignedEvent> = None;
    for round in 0..12 {
        // A map leaf, then append at once: the event leaf must be integrated strictly after
        // the map leaf's time even within the same wall-clock millisecond.
        l.checkpoint_waiting().unwrap();
        let t = l.latest().map_leaf.time;
        let ev = match &head {
            None => p.first(),
            Some(h) => p.next(h, round as u8 % 2),
        };
        let r = accept(&l, ev.clone());
        head = Some(ev);
        assert!(
            r.leaf.integrated_at > t,
            "round {round}: event integrated at {} is not after the map leaf's time {t}",
            r.leaf.integrated_at,
        );
        // Two map leaves in a row: the second is later than both.
        l.checkpoint_waiting().unwrap();
        let t2 = l.latest().map_leaf.time;
        assert!(t2 >= r.leaf.integrated_at && t2 > t);
        if round % 3 == 2 {
            // The clock's floor comes back from disk.
            drop(l);
            l = retry_lock(|| Ledger::open_with(&dir, Options::default().map_leaf_interval_ms(1)));
            assert_eq!(l.latest().map_leaf.time, t2);
            let ev = p.next(head.as_ref().unwrap(), 1);
            let r = accept(&l, ev.clone());
            head = Some(ev);
            assert!(
                r.leaf.integrated_at > t2,
                "after reopen: event integrated at {} is not after the map leaf's time {t2}",
                r.leaf.integrated_at,
            );
        }
    }
    l.checkpoint_waiting().unwrap();
    check_time_invariants(&l);
    drop(l);
    let report = audit(&dir, &log_key);
    assert!(report.ok(), "audit violations: {:?}", report.violations);
}
