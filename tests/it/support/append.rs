//! Shared helpers of tests/append_rules.rs, tests/time_invariant.rs and tests/durability.rs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use consentlog::core::event::{ConsentEvent, SignedEvent, EVENT_VERSION};
use consentlog::core::hash::{to_hex, Hash};
use consentlog::core::receipt::Receipt;
use consentlog::core::reject::Reject;
use consentlog::core::rules::Head;
use consentlog::ledger::{clock, Ledger, LedgerError, Outcome};
use consentlog::store::Table;
use ed25519_dalek::SigningKey;

pub const ORIGIN: &str = "test.example/log";
pub const CONTROLLER: &str = "example.com";
pub const PURPOSE: &str = "ai-training";
pub const MINUTE_MS: u64 = 60 * 1000;

/// Whether a ledger error is sled's "could not acquire lock" on its database file.
pub fn is_lock_error(e: &LedgerError) -> bool {
    e.to_string().contains("could not acquire lock")
}

/// Opens the ledger in `dir`, retrying for up to 5 s while sled's file lock from a ledger
/// dropped earlier in this process is still held (see `durability.rs`,
/// `init_and_reopen_in_one_process_do_not_fail_on_the_file_lock`).
pub fn open_ledger(dir: &Path) -> Ledger {
    let start = Instant::now();
    loop {
        match Ledger::open(dir) {
            Ok(l) => return l,
            Err(e) if is_lock_error(&e) && start.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("open ledger {}: {e}", dir.display()),
        }
    }
}

/// A fresh ledger in a temporary directory (the directory lives as long as the TempDir).
///
/// `Ledger::init` drops its store and reopens it; in a process that has used sled heavily the
/// reopen can fail on sled's file lock (a bug, demonstrated in `durability.rs`). The helper
/// then finishes the job the way init would have: open (retrying) and sign the empty
/// checkpoint, so the other tests are not at the mercy of that race.
pub fn new_ledger() -> (tempfile::TempDir, PathBuf, Ledger) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ledger");
    let ledger = match Ledger::init(&dir, ORIGIN, consentlog::ledger::default_engine()) {
        Ok(l) => l,
        Err(e) if is_lock_error(&e) && dir.join("engine").exists() => {
            let l = open_ledger(&dir);
            assert_eq!(l.size(), 0);
            assert!(l.checkpoints().unwrap().is_empty());
            l.checkpoint().expect("initial checkpoint");
            l
        }
        Err(e) => panic!("init ledger: {e}"),
    };
    (tmp, dir, ledger)
}

pub fn now_ms() -> u64 {
    clock::now_ms()
}

/// A person with a fresh key.
pub struct Person {
    pub key: SigningKey,
}

impl Person {
    pub fn new() -> Person {
        Person {
            key: consentlog::keyfile::generate(),
        }
    }

    pub fn subject(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// An unsigned opt-in for (CONTROLLER, PURPOSE) with seq 0, issued now.
    pub fn event(&self) -> ConsentEvent {
        ConsentEvent {
            version: EVENT_VERSION,
            log: ORIGIN.to_string(),
            subject: self.subject(),
            controller: CONTROLLER.to_string(),
            purpose: PURPOSE.to_string(),
            decision: 1,
            seq: 0,
            prev: None,
            issued_at: now_ms(),
            expires_at: None,
            notice: None,
        }
    }

    /// The event continuing `prev` (seq + 1, prev = its event hash, no expiry), issued now.
    pub fn next_event(&self, prev: &SignedEvent, decision: u8) -> ConsentEvent {
        ConsentEvent {
            seq: prev.event.seq + 1,
            prev: Some(prev.event_hash()),
            decision,
            issued_at: now_ms(),
            expires_at: None,
            ..prev.event.clone()
        }
    }

    pub fn sign(&self, ev: ConsentEvent) -> SignedEvent {
        ev.sign(&self.key)
    }

    /// Signed first event.
    pub fn first(&self) -> SignedEvent {
        self.sign(self.event())
    }

    /// Signed event continuing `prev`.
    pub fn next(&self, prev: &SignedEvent, decision: u8) -> SignedEvent {
        self.sign(self.next_event(prev, decision))
    }
}

/// Appends one event and returns its outcome.
pub fn append_one(l: &Ledger, ev: SignedEvent) -> Outcome {
    let mut out = l.append(vec![Ok(ev)]).expect("append (storage)");
    assert_eq!(out.len(), 1);
    out.remove(0)
}

/// Appends one event that must be accepted; returns its (checked) receipt.
pub fn accept(l: &Ledger, ev: SignedEvent) -> Receipt {
    match append_one(l, ev) {
        Outcome::Accepted(r) => {
            check_receipt(l, &r);
            r
        }
        other => panic!("expected Accepted, got {other:?}"),
    }
}

/// The receipt verifies under the log key and matches the stored entry.
pub fn check_receipt(l: &Ledger, r: &Receipt) {
    assert!(
        r.check(&l.public_key()),
        "receipt {r:?} does not verify under the log key"
    );
    let e = l
        .entry(r.index)
        .expect("read entry")
        .unwrap_or_else(|| panic!("receipt names entry {} which is not stored", r.index));
    assert_eq!(e.leaf_hash(), r.leaf_hash, "leaf hash of entry {}", r.index);
    assert_eq!(
        e.integrated_at, r.integrated_at,
        "integrated_at of entry {}",
        r.index
    );
}

/// A hash of everything stored except the checkpoint table (which the checks themselves add to).
pub fn store_fingerprint(l: &Ledger) -> String {
    let mut h = blake3::Hasher::new();
    for t in Table::ALL.into_iter().filter(|t| *t != Table::Checkpoint) {
        h.update(&[t as u8]);
        for r in l.store().scan(t, &[], None) {
            let (k, v) = r.expect("scan store");
            h.update(&(k.len() as u64).to_le_bytes());
            h.update(&k);
            h.update(&(v.len() as u64).to_le_bytes());
            h.update(&v);
        }
    }
    to_hex(h.finalize().as_bytes())
}

/// What must not change when an event is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub size: u64,
    pub head: Option<Head>,
    pub cp_size: u64,
    pub cp_root: Hash,
    pub cp_map_root: Hash,
    pub fingerprint: String,
}

/// Observes `l` for the state key `key`, signing a new checkpoint to learn its roots.
pub fn observe(l: &Ledger, key: &Hash) -> Observed {
    let cp = l.checkpoint().expect("checkpoint");
    let latest = l.latest();
    assert_eq!(latest.checkpoint.root, cp.root);
    Observed {
        size: l.size(),
        head: l.head(key).expect("head"),
        cp_size: cp.size,
        cp_root: cp.root,
        cp_map_root: cp.map_root,
        fingerprint: store_fingerprint(l),
    }
}

/// Observes a reopened ledger without writing to it: its latest stored checkpoint.
pub fn observe_reopened(l: &Ledger, key: &Hash) -> Observed {
    let latest = l.latest();
    Observed {
        size: l.size(),
        head: l.head(key).expect("head"),
        cp_size: latest.checkpoint.size,
        cp_root: latest.checkpoint.root,
        cp_map_root: latest.checkpoint.map_root,
        fingerprint: store_fingerprint(l),
    }
}

/// Asserts that a rejected submission changed nothing, in memory (after a new checkpoint) and
/// on disk (after reopening the ledger). Returns the reopened ledger.
pub fn assert_unchanged(l: Ledger, dir: &Path, key: &Hash, before: &Observed) -> Ledger {
    let now = observe(&l, key);
    assert_eq!(&now, before, "a rejected event changed the ledger");
    drop(l);
    let l = open_ledger(dir);
    let reopened = observe_reopened(&l, key);
    assert_eq!(
        &reopened, before,
        "a rejected event changed the ledger on disk"
    );
    l
}

/// Submits `ev` (already parsed, or a parse error) to a ledger, expects a rejection with
/// `code` whose message contains every one of `words`, and checks nothing changed. Returns the
/// reopened ledger and the rejection.
pub fn expect_reject(
    l: Ledger,
    dir: &Path,
    key: &Hash,
    ev: Result<SignedEvent, Reject>,
    code: &str,
    words: &[&str],
) -> (Ledger, Reject) {
    let before = observe(&l, key);
    let out = l.append(vec![ev]).expect("append (storage)");
    assert_eq!(out.len(), 1);
    let r = match &out[0] {
        Outcome::Rejected(r) => r.clone(),
        other => panic!("expected a {code:?} rejection, got {other:?}"),
    };
    assert_eq!(r.code(), code, "wrong rule for rejection {r:?} ({r})");
    let msg = r.to_string();
    for w in words {
        assert!(
            msg.contains(w),
            "message {msg:?} of rule {code} does not mention {w:?}"
        );
    }
    let l = assert_unchanged(l, dir, key, &before);
    (l, r)
}

/// The small-order (weak) Ed25519 point encodings: identity, order 2, order 4 (two) and
/// the order-8 ones, canonical encodings only.
pub fn small_order_points() -> Vec<[u8; 32]> {
    let hexes = [
        // identity (0, 1)
        "0100000000000000000000000000000000000000000000000000000000000000",
        // order 2: (0, -1)
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        // order 4: (±sqrt(-1), 0)
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        // order 8
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    ];
    hexes
        .iter()
        .map(|h| consentlog::core::hash::from_hex_array(h).expect("hex"))
        .collect()
}
