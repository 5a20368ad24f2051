//! Ledgers in temporary directories on a manual clock, for the unit tests of this module.

use super::clock::ManualClock;
use super::*;
use crate::core::event::{ConsentEvent, SignedEvent};
use crate::store::{Engine, ScanIter, StoreError, Table, WriteBatch};

pub const ORIGIN: &str = "unit.example/log";
/// The manual clock's time at init.
pub const T0: u64 = 1_700_000_000_000;

pub struct TestLedger {
    pub ledger: Ledger,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
}

impl TestLedger {
    /// Options with this ledger's clock.
    pub fn opts(&self) -> Options {
        Options::default().clock(self.clock.clone())
    }

    /// Appends events that must all be accepted; their receipts.
    pub fn accept(&self, events: Vec<SignedEvent>) -> Vec<Receipt> {
        let out = self.ledger.append(events.into_iter().map(Ok).collect());
        out.expect("append")
            .into_iter()
            .map(|o| match o {
                Outcome::Accepted(r) => r,
                other => panic!("not accepted: {other:?}"),
            })
            .collect()
    }

    /// Makes every later commit fail (reads still work), as a full disk does.
    pub fn break_commits(&self) {
        let inner = self.ledger.store();
        *self.ledger.store.write().expect("store") = Arc::new(FailingCommits(inner));
    }
}

/// A new ledger on `engine` at [`T0`]. Tests that reopen a ledger use redb, which lets go
/// of its file lock as soon as it is dropped.
pub fn ledger_on(engine: Engine) -> TestLedger {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let opts = Options::default().clock(clock.clone());
    let ledger = Ledger::init_with(dir.path(), ORIGIN, engine, opts).expect("init");
    TestLedger { ledger, clock, dir }
}

/// A new ledger on sled at [`T0`].
pub fn ledger() -> TestLedger {
    ledger_on(Engine::Sled)
}

/// An opt-in of `key` for ("c.example", "p").
pub fn event(key: &SigningKey, seq: u64, prev: Option<Hash>, issued_at: u64) -> SignedEvent {
    ConsentEvent {
        seq,
        prev,
        ..ConsentEvent::next(
            ORIGIN,
            key.verifying_key().to_bytes(),
            ("c.example", "p"),
            true,
            None,
            issued_at,
            None,
        )
    }
    .sign(key)
}

/// First events of `n` new people, issued at `at`.
pub fn first_events(n: usize, at: u64) -> Vec<SignedEvent> {
    (0..n)
        .map(|_| event(&crate::keyfile::generate(), 0, None, at))
        .collect()
}

/// A store whose reads go to another and whose commits all fail.
struct FailingCommits(Arc<dyn Store>);

impl View for FailingCommits {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(table, key)
    }
    fn scan<'a>(&'a self, table: Table, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a> {
        self.0.scan(table, start, end)
    }
    fn last_with_prefix(
        &self,
        table: Table,
        prefix: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.0.last_with_prefix(table, prefix)
    }
}

impl Store for FailingCommits {
    fn view(&self) -> Result<Box<dyn View + '_>, StoreError> {
        self.0.view()
    }
    fn commit(&self, _: WriteBatch) -> Result<(), StoreError> {
        Err(StoreError::Engine("no space left on device (test)".into()))
    }
    fn engine(&self) -> &'static str {
        self.0.engine()
    }
    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.0.size_on_disk()
    }
}
