//! Helpers shared by tests/proofs.rs and tests/history.rs: small ledgers in temporary
//! directories, people's keys, and signed events appended through the library.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use consentlog::core::event::{state_key, ConsentEvent, SignedEvent, EVENT_VERSION};
use consentlog::core::hash::Hash;
use consentlog::core::receipt::Receipt;
use consentlog::keyfile;
use consentlog::ledger::{clock, Ledger, LedgerError, Outcome};
use ed25519_dalek::SigningKey;
use tempfile::TempDir;

pub const ORIGIN: &str = "test.example/log";

/// A ledger in a temporary directory (the directory lives as long as the value).
pub struct TestLedger {
    pub ledger: Ledger,
    pub dir: TempDir,
}

impl std::ops::Deref for TestLedger {
    type Target = Ledger;
    fn deref(&self) -> &Ledger {
        &self.ledger
    }
}

pub fn new_ledger() -> TestLedger {
    new_ledger_with_origin(ORIGIN)
}

pub fn new_ledger_with_origin(origin: &str) -> TestLedger {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger");
    let ledger = match Ledger::init(&path, origin, consentlog::ledger::default_engine()) {
        Ok(l) => l,
        // `Ledger::init` drops its sled store and reopens it at once; sled may still hold its
        // file lock for a moment (see `init_never_fails_on_the_sled_lock` in tests/proofs.rs).
        // The directory is complete by then (the `engine` file is written before the reopen),
        // so finish what init would have done: open, and sign the first checkpoint.
        Err(e) if is_lock_error(&e) => {
            let l = reopen(&path);
            if l.checkpoints().expect("checkpoints").is_empty() {
                l.checkpoint().expect("first checkpoint");
            }
            l
        }
        Err(e) => panic!("init ledger: {e}"),
    };
    TestLedger { ledger, dir }
}

fn is_lock_error(e: &LedgerError) -> bool {
    e.to_string().contains("could not acquire lock")
}

/// `Ledger::open`, retried while sled's lock of a just-closed store is still held.
pub fn reopen(path: &Path) -> Ledger {
    let mut tries = 0;
    loop {
        match Ledger::open(path) {
            Ok(l) => return l,
            Err(e) if is_lock_error(&e) && tries < 200 => {
                tries += 1;
                sleep_ms(5);
            }
            Err(e) => panic!("open ledger: {e}"),
        }
    }
}

/// A person: their key and subject bytes.
pub struct Person {
    pub key: SigningKey,
}

impl Person {
    pub fn new() -> Person {
        Person {
            key: keyfile::generate(),
        }
    }
    pub fn subject(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
    pub fn state_key(&self, controller: &str, purpose: &str) -> Hash {
        state_key(&self.subject(), controller, purpose)
    }
}

/// What was appended: the signed event and its receipt.
#[derive(Debug, Clone)]
pub struct Appended {
    pub event: SignedEvent,
    pub receipt: Receipt,
}

impl Appended {
    pub fn integrated_at(&self) -> u64 {
        self.receipt.integrated_at
    }
}

/// Signs the next event of (person, controller, purpose) for `ledger` (seq and prev from the
/// ledger's head of that key).
pub fn next_event(
    ledger: &Ledger,
    who: &Person,
    controller: &str,
    purpose: &str,
    opt_in: bool,
    expires_at: Option<u64>,
) -> SignedEvent {
    let head = ledger
        .head(&who.state_key(controller, purpose))
        .expect("head");
    ConsentEvent {
        version: EVENT_VERSION,
        log: ledger.origin().to_string(),
        subject: who.subject(),
        controller: controller.into(),
        purpose: purpose.into(),
        decision: u8::from(opt_in),
        seq: head.map_or(0, |h| h.seq + 1),
        prev: head.map(|h| h.event_hash),
        issued_at: clock::now_ms(),
        expires_at,
        notice: None,
    }
    .sign(&who.key)
}

/// Appends one event, which must be accepted, then waits a little so that the next
/// append is integrated at a strictly later millisecond.
pub fn append(
    ledger: &Ledger,
    who: &Person,
    controller: &str,
    purpose: &str,
    opt_in: bool,
    expires_at: Option<u64>,
) -> Appended {
    let event = next_event(ledger, who, controller, purpose, opt_in, expires_at);
    let out = ledger.append(vec![Ok(event.clone())]).expect("append");
    let receipt = match &out[..] {
        [Outcome::Accepted(r)] => *r,
        other => panic!("event not accepted: {other:?}"),
    };
    assert!(receipt.check(&ledger.public_key()), "receipt signature");
    sleep_ms(3);
    Appended { event, receipt }
}

pub fn grant(ledger: &Ledger, who: &Person, controller: &str, purpose: &str) -> Appended {
    append(ledger, who, controller, purpose, true, None)
}

pub fn revoke(ledger: &Ledger, who: &Person, controller: &str, purpose: &str) -> Appended {
    append(ledger, who, controller, purpose, false, None)
}

pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Waits until the wall clock is strictly after `t` (proofs refuse a future `at`).
pub fn wait_past(t: u64) {
    while clock::now_ms() <= t {
        sleep_ms(1);
    }
}

/// Adds `n` unrelated people with one opt-in each, so that map proofs have several siblings
/// and inclusion paths several hashes.
pub fn add_noise(ledger: &Ledger, n: usize) {
    let events: Vec<_> = (0..n)
        .map(|i| {
            let p = Person::new();
            Ok(next_event(
                ledger,
                &p,
                "noise.example",
                &format!("purpose-{i}"),
                true,
                None,
            ))
        })
        .collect();
    let out = ledger.append(events).expect("append noise");
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted(_))));
    sleep_ms(3);
}
