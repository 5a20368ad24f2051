//! Ledgers in temporary directories ([`TestLedger`]) and what the library-level tests do with
//! them: append and check receipts, observe everything stored, expect a rejection that
//! changes nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use consentlog::core::event::SignedEvent;
use consentlog::core::hash::{to_hex, Hash};
use consentlog::core::history::History;
use consentlog::core::note::SignedCheckpoint;
use consentlog::core::proof::ConsentProof;
use consentlog::core::receipt::Receipt;
use consentlog::core::reject::Reject;
use consentlog::core::rules::Head;
use consentlog::ledger::clock::ManualClock;
use consentlog::ledger::{Ledger, LedgerError, Options, Outcome};
use consentlog::store::Table;
use consentlog::testing::engine_from_env;
use tempfile::TempDir;

use super::people::Person;
use super::process::{run, wait_unlocked, Run};
use super::{is_hex, poll, s, ORIGIN};

/// A ledger in a temporary directory (`tmp/ledger`; the directory lives as long as the value).
///
/// Made through the library ([`TestLedger::new`]) it is open, reads the time from a
/// [`ManualClock`] that starts at the system's time and moves only when the test says so
/// ([`TestLedger::advance`], [`TestLedger::wait_past`]), and derefs to the [`Ledger`]. Made
/// by `consentlog init` ([`TestLedger::cli`]) it stays closed for the binary to use.
pub struct TestLedger {
    pub tmp: TempDir,
    /// The ledger directory.
    pub dir: PathBuf,
    pub origin: String,
    /// The log public key, hex.
    pub log_key: String,
    /// The ledger's clock (unused by [`TestLedger::on_system_clock`] and
    /// [`TestLedger::cli`]).
    pub clock: ManualClock,
    /// The cap on the state map's nodes in memory it is opened with ([`Options::map_bytes`]).
    pub map_bytes: usize,
    ledger: Option<Ledger>,
}

impl std::ops::Deref for TestLedger {
    type Target = Ledger;
    fn deref(&self) -> &Ledger {
        self.ledger
            .as_ref()
            .expect("the ledger is closed (made by the CLI, or closed by the test)")
    }
}

impl Default for TestLedger {
    fn default() -> Self {
        TestLedger::new()
    }
}

impl TestLedger {
    /// A fresh ledger for ORIGIN, made and opened through the library.
    pub fn new() -> TestLedger {
        TestLedger::with_origin(ORIGIN)
    }

    /// A fresh ledger for `origin`, made and opened through the library.
    ///
    /// `Ledger::init` drops its sled store and reopens it; sled may still hold its file lock
    /// for a moment (see `init_never_fails_on_the_sled_lock` in proofs.rs). The directory is
    /// complete by then (the `engine` file is written before the reopen), so this finishes
    /// what init would have done: open (retrying) and sign the first checkpoint.
    pub fn with_origin(origin: &str) -> TestLedger {
        let clock = ManualClock::at_system_time();
        Self::init(origin, Options::default().clock(clock.clone()), clock)
    }

    /// A fresh ledger for ORIGIN whose state map keeps at most `bytes` in memory, opened so
    /// again by [`TestLedger::reopen`].
    pub fn with_map_bytes(bytes: usize) -> TestLedger {
        let clock = ManualClock::at_system_time();
        let opts = Options::default().clock(clock.clone()).map_bytes(bytes);
        Self::init(ORIGIN, opts, clock)
    }

    /// A fresh ledger for ORIGIN on the system clock (for tests of the real clock).
    pub fn on_system_clock() -> TestLedger {
        Self::init(ORIGIN, Options::default(), ManualClock::new(0))
    }

    fn init(origin: &str, opts: Options, clock: ManualClock) -> TestLedger {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("ledger");
        let map_bytes = opts.map_bytes;
        let ledger = init_ledger(&dir, origin, opts);
        TestLedger {
            map_bytes,
            log_key: to_hex(ledger.public_key().as_bytes()),
            ledger: Some(ledger),
            tmp,
            dir,
            origin: origin.to_string(),
            clock,
        }
    }

    /// A fresh ledger for ORIGIN made by `consentlog init`, closed.
    pub fn cli() -> TestLedger {
        TestLedger::cli_with_origin(ORIGIN)
    }

    /// A fresh ledger for `origin` made by `consentlog init`, closed.
    pub fn cli_with_origin(origin: &str) -> TestLedger {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("ledger");
        let r = run(&["init", "--dir", s(&dir), "--origin", origin]).ok();
        let log_key = r.last_line().trim().to_string();
        assert!(
            is_hex(&log_key, 32),
            "init's last line is not a key: {r:#?}"
        );
        TestLedger {
            tmp,
            dir,
            log_key,
            origin: origin.to_string(),
            clock: ManualClock::at_system_time(),
            map_bytes: consentlog::ledger::DEFAULT_MAP_BYTES,
            ledger: None,
        }
    }

    /// The temporary directory, the ledger's directory and the open ledger, for tests that
    /// close and reopen it themselves.
    pub fn into_parts(mut self) -> (TempDir, PathBuf, Ledger) {
        let l = self.ledger.take().expect("an open ledger");
        (self.tmp, self.dir, l)
    }

    /// Closes the ledger and waits until its store is free for another process.
    pub fn close(&mut self) {
        drop(self.ledger.take());
        wait_unlocked(&self.dir);
    }

    /// Closes the ledger and opens it again (with the same clock).
    pub fn reopen(&mut self) {
        drop(self.ledger.take());
        self.ledger = Some(open_with(
            &self.dir,
            Options::default()
                .clock(self.clock.clone())
                .map_bytes(self.map_bytes),
        ));
    }

    /// Appends a map leaf and its checkpoint (`Ledger::checkpoint`), first moving the manual
    /// clock a second on so that the one-a-second rule for map leaves holds (on the system
    /// clock, waits instead).
    pub fn checkpoint(&self) -> SignedCheckpoint {
        if consentlog::ledger::clock::Clock::now_ms(&self.clock) > 0 {
            self.clock.advance(1_000);
        }
        self.ledger().checkpoint_waiting().expect("checkpoint")
    }

    /// A consent proof at `at` (default: the newest map leaf's time), appending a map leaf
    /// first (through [`TestLedger::checkpoint`]) when the newest is older than `at` or
    /// leaves events out; what the server does, on the manual clock.
    pub fn prove_consent(
        &self,
        subject: &[u8; 32],
        controller: &str,
        purpose: &str,
        at: Option<u64>,
    ) -> Result<ConsentProof, LedgerError> {
        let latest = self.latest();
        let stale = match at {
            Some(at) => at > latest.map_leaf.time,
            None => self.size() > latest.checkpoint.size,
        };
        if stale {
            self.checkpoint();
        }
        let snap = self.latest();
        let at = at.unwrap_or(snap.map_leaf.time);
        self.ledger()
            .prove_consent_in(&snap, subject, controller, purpose, at)
    }

    /// A person's history up to a map leaf that covers every event (appended first if
    /// needed, as the server does).
    pub fn history(&self, subject: &[u8; 32]) -> Result<History, LedgerError> {
        if self.size() > self.latest().checkpoint.size {
            self.checkpoint();
        }
        self.ledger().history_in(&self.latest(), subject)
    }

    fn ledger(&self) -> &Ledger {
        self
    }

    /// Moves the ledger's clock forward by `ms`; returns the new time.
    pub fn advance(&self, ms: u64) -> u64 {
        self.clock.advance(ms)
    }

    /// Moves the ledger's clock past `t` (proofs refuse an `at` in the ledger's future).
    pub fn wait_past(&self, t: u64) {
        if self.now_ms() <= t {
            self.clock.set(t + 1);
        }
    }

    /// A path inside the temporary directory (not inside the ledger).
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// The ledger directory as an argument.
    pub fn d(&self) -> &str {
        s(&self.dir)
    }

    /// Makes a person's key file with `consentlog keygen`; returns (path, public key hex).
    pub fn person(&self, name: &str) -> (PathBuf, String) {
        let p = self.path(&format!("{name}.key"));
        let r = run(&["keygen", "--out", s(&p)]).ok();
        let pk = r.last_line().trim().to_string();
        assert!(is_hex(&pk, 32), "keygen's last line is not a key: {r:#?}");
        (p, pk)
    }

    /// `consentlog grant` or `revoke`, which must succeed; returns the receipt.
    pub fn decide(
        &self,
        key: &Path,
        opt_in: bool,
        controller: &str,
        purpose: &str,
    ) -> serde_json::Value {
        self.decide_with(key, opt_in, controller, purpose, &[])
            .ok()
            .json()
    }

    /// `consentlog grant` or `revoke` on this ledger with `extra` arguments, as it ran.
    pub fn decide_with(
        &self,
        key: &Path,
        opt_in: bool,
        controller: &str,
        purpose: &str,
        extra: &[&str],
    ) -> Run {
        let cmd = if opt_in { "grant" } else { "revoke" };
        let args = [
            cmd,
            "--dir",
            self.d(),
            "--key",
            s(key),
            "--controller",
            controller,
            "--purpose",
            purpose,
        ];
        run(&[&args[..], extra].concat())
    }

    /// `consentlog checkpoint`; returns the note text.
    pub fn note(&self) -> String {
        run(&["checkpoint", "--dir", self.d()]).ok().stdout
    }
}

/// A fresh ledger for ORIGIN (see [`TestLedger::new`]), as its parts.
pub fn new_ledger() -> (TempDir, PathBuf, Ledger) {
    TestLedger::new().into_parts()
}

/// `Ledger::init_with` on the engine `$CONSENTLOG_ENGINE` names. Should sled still hold its
/// file lock for a moment once the directory is complete, opens it instead (retrying) and
/// signs the first checkpoint if init could not.
pub fn init_ledger(dir: &Path, origin: &str, opts: Options) -> Ledger {
    match Ledger::init_with(dir, origin, engine_from_env(), opts.clone()) {
        Ok(l) => l,
        Err(e) if is_lock_error(&e) && dir.join("engine").exists() => {
            let l = open_with(dir, opts);
            if l.checkpoints().expect("checkpoints").is_empty() {
                l.checkpoint().expect("first checkpoint");
            }
            l
        }
        Err(e) => panic!("init ledger: {e}"),
    }
}

/// Whether a ledger error is the engine's lock on its database held elsewhere (sled's
/// "could not acquire lock", reported as [`LedgerError::is_in_use`]).
pub fn is_lock_error(e: &LedgerError) -> bool {
    e.is_in_use()
}

/// Opens the ledger in `dir` on the system clock, retrying for up to 5 s while sled's file
/// lock from a ledger dropped earlier in this process is still held (see durability.rs,
/// `init_and_reopen_in_one_process_do_not_fail_on_the_file_lock`).
pub fn open_ledger(dir: &Path) -> Ledger {
    open_with(dir, Options::default())
}

/// [`open_ledger`] with options.
pub fn open_with(dir: &Path, opts: Options) -> Ledger {
    retry_lock(|| Ledger::open_with(dir, opts.clone()))
}

/// Retries `f` for up to 5 s while it fails on sled's lock of a store just closed in this
/// process; panics on any other error.
#[track_caller]
pub fn retry_lock<T>(mut f: impl FnMut() -> Result<T, LedgerError>) -> T {
    let mut last = String::new();
    let got = poll(Duration::from_secs(5), || match f() {
        Ok(v) => Some(v),
        Err(e) if is_lock_error(&e) => {
            last = e.to_string();
            None
        }
        Err(e) => panic!("{e}"),
    });
    got.unwrap_or_else(|| panic!("sled's lock stays held: {last}"))
}

// ---------------------------------------------------------------------------------------------
// Appending.

/// What was appended: the signed event and its receipt.
#[derive(Debug, Clone)]
pub struct Appended {
    pub event: SignedEvent,
    pub receipt: Receipt,
}

impl Appended {
    pub fn integrated_at(&self) -> u64 {
        self.receipt.leaf.integrated_at
    }
}

/// The state key of `ev`'s (subject, controller, purpose) in `l` (computed with the log's VRF
/// key; an event for another log gets the key it would have here).
pub fn key_of(l: &Ledger, ev: &consentlog::core::event::ConsentEvent) -> Hash {
    l.state_key_or_prove(&ev.subject, &ev.controller, &ev.purpose)
        .expect("state key")
        .0
}

/// Signs the next event of (person, controller, purpose) for `ledger` (seq and prev from the
/// ledger's head of that key), issued at the ledger's time.
pub fn next_event(
    ledger: &Ledger,
    who: &Person,
    controller: &str,
    purpose: &str,
    opt_in: bool,
    expires_at: Option<u64>,
) -> SignedEvent {
    let head = ledger
        .head(&who.state_key(ledger, controller, purpose))
        .expect("head");
    who.event()
        .log(ledger.origin())
        .controller(controller)
        .purpose(purpose)
        .opt_in(opt_in)
        .head(head)
        .issued_at(ledger.now_ms())
        .expires_at(expires_at)
        .sign()
}

/// Appends one event, which must be accepted, then moves the ledger's clock on a few
/// milliseconds so that the next append is integrated at a strictly later time.
pub fn append(
    ledger: &TestLedger,
    who: &Person,
    controller: &str,
    purpose: &str,
    opt_in: bool,
    expires_at: Option<u64>,
) -> Appended {
    append_signed(
        ledger,
        next_event(ledger, who, controller, purpose, opt_in, expires_at),
    )
}

/// Appends `event`, which must be accepted, then moves the ledger's clock on a few
/// milliseconds so that the next append is integrated at a strictly later time.
pub fn append_signed(ledger: &TestLedger, event: SignedEvent) -> Appended {
    let out = ledger.append(vec![Ok(event.clone())]).expect("append");
    let receipt = match &out[..] {
        [Outcome::Accepted(r)] => r.clone(),
        other => panic!("event not accepted: {other:?}"),
    };
    assert!(
        receipt.check(&ledger.public_key()).is_ok(),
        "receipt signature"
    );
    ledger.advance(3);
    Appended { event, receipt }
}

pub fn grant(ledger: &TestLedger, who: &Person, controller: &str, purpose: &str) -> Appended {
    append(ledger, who, controller, purpose, true, None)
}

pub fn revoke(ledger: &TestLedger, who: &Person, controller: &str, purpose: &str) -> Appended {
    append(ledger, who, controller, purpose, false, None)
}

/// Adds `n` unrelated people with one opt-in each, so that map proofs have several siblings
/// and inclusion paths several hashes.
pub fn add_noise(ledger: &TestLedger, n: usize) {
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
    ledger.advance(3);
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

/// The receipt verifies under the log key and matches the stored event leaf.
pub fn check_receipt(l: &Ledger, r: &Receipt) {
    assert!(
        r.check(&l.public_key()).is_ok(),
        "receipt {r:?} does not verify under the log key"
    );
    let e = l
        .event_leaf(r.index)
        .expect("read leaf")
        .unwrap_or_else(|| panic!("receipt names leaf {} which is not stored", r.index));
    assert_eq!(
        e.leaf_hash(),
        r.leaf.leaf_hash(),
        "leaf hash of leaf {}",
        r.index
    );
    assert_eq!(
        e.integrated_at, r.leaf.integrated_at,
        "integrated_at of leaf {}",
        r.index
    );
}

// ---------------------------------------------------------------------------------------------
// Observing that nothing changed.

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
    pub root: Hash,
    pub map_root: Hash,
    pub cp_size: u64,
    pub fingerprint: String,
}

/// Observes `l` for the state key `key`: sizes, roots and everything stored, without writing.
pub fn observe(l: &Ledger, key: &Hash) -> Observed {
    let (size, root, map_root) = l.live_roots();
    Observed {
        size,
        head: l.head(key).expect("head"),
        root,
        map_root,
        cp_size: l.latest().checkpoint.size,
        fingerprint: store_fingerprint(l),
    }
}

/// Observes a reopened ledger the same way.
pub fn observe_reopened(l: &Ledger, key: &Hash) -> Observed {
    observe(l, key)
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
