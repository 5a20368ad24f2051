//! What the integration tests share, in one place:
//!
//! - here: the names every test uses (origin, controller, purpose), the one source of "now",
//!   the one polling helper ([`wait_until`]) and small conversions;
//! - [`people`]: [`Person`] (a key and the chain it is on) and [`Draft`], the event builder;
//! - [`ledger`]: [`TestLedger`] (a ledger in a temporary directory, with a manual clock when
//!   made through the library) and the append/observe helpers of the library-level tests;
//! - [`process`]: the real binary: [`run`] a command, [`Server`] / [`Proc`] for `serve`;
//! - [`http`]: requests to a server and what comes back ([`Resp`]);
//! - [`witness`]: a tlog-witness served in the test process ([`witness::TestWitness`]) and a
//!   real RFC 6962 log to feed it ([`witness::TestLog`]);
//! - [`replay`]: a consentlog log that lies on purpose ([`replay::LyingLog`]), for the
//!   replaying witness;
//! - [`crash`], [`faults`], [`fuzz`]: what only those tests need (`fuzz` is also compiled into
//!   the cargo-fuzz crate in fuzz/, through `#[path]`).

pub mod crash;
pub mod faults;
pub mod fuzz;
pub mod http;
pub mod ledger;
pub mod people;
pub mod process;
pub mod replay;
pub mod witness;
pub mod witnessed_server;

use std::path::Path;
use std::time::{Duration, Instant};

use consentlog::core::hash::{from_hex_array, Hash};
use serde_json::Value;

pub use http::{agent, bearer, event_json, metric, post_event, receipt, send, try_send, Resp};
pub use ledger::TestLedger;
pub use people::Person;
pub use process::{bin, run, run_env, run_stdin, wait_unlocked, Proc, Run, Server};

/// The origin of the tests' ledgers (unless a test names another).
pub const ORIGIN: &str = "test.example/log";
/// The controller and purpose a [`Person`] starts on.
pub const CONTROLLER: &str = "example.com";
pub const PURPOSE: &str = "ai-training";
pub const MINUTE_MS: u64 = 60 * 1000;
/// The index of the first event leaf of a new ledger: leaf 0 is the genesis leaf, leaf 1 the
/// map leaf `init` appends.
pub const FIRST: u64 = 2;

/// The keys of a receipt's JSON.
pub const RECEIPT_KEYS: &[&str] = &[
    "index",
    "leaf",
    "leaf_hash",
    "event_hash",
    "integrated_at",
    "seq",
    "tlog_proof",
];

/// Two receipts of one entry: the same index, leaf and opening (each may be under its own
/// checkpoint).
pub fn assert_same_entry(
    a: &consentlog::core::receipt::Receipt,
    b: &consentlog::core::receipt::Receipt,
) {
    assert_eq!(
        (a.index, a.leaf, &a.opening),
        (b.index, b.leaf, &b.opening),
        "receipts of different entries"
    );
}

/// The keys of an event's JSON line, in order.
pub const EVENT_JSON_KEYS: &[&str] = &[
    "version",
    "kind",
    "signer",
    "log",
    "subject",
    "controller",
    "purpose",
    "decision",
    "seq",
    "prev",
    "issued_at",
    "expires_at",
    "notice",
    "signature",
];

/// Milliseconds since the epoch on the system clock: the time of processes (a server, the
/// CLI) and of events built for them. A [`TestLedger`] has its own clock
/// ([`TestLedger::now_ms`]).
pub fn now_ms() -> u64 {
    consentlog::ledger::clock::now_ms()
}

/// Polls `f` (every 5 ms) until it gives `Some`, for at most `timeout`; `None` if the time
/// runs out. Every wait for a process, a server, a file lock or a checkpoint goes through here.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// [`poll`], panicking with `what` (evaluated then) when the time runs out.
#[track_caller]
pub fn wait_until<T, S: std::fmt::Display>(
    timeout: Duration,
    what: impl FnOnce() -> S,
    f: impl FnMut() -> Option<T>,
) -> T {
    match poll(timeout, f) {
        Some(v) => v,
        None => panic!("waited {timeout:?} in vain: {}", what()),
    }
}

/// Waits until the system clock is past `t`: the time of a server or CLI process, which
/// cannot be given a manual clock.
#[track_caller]
pub fn wall_past(t: u64) {
    wait_until(
        Duration::from_secs(60),
        || format!("the system clock to pass {t}"),
        || (now_ms() > t).then_some(()),
    )
}

/// A free port on 127.0.0.1 (bound, then released for whoever listens on it next): for a
/// listener whose URL must be known before it starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `&Path` as `&str` for argument lists.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// 32 bytes from 64 hex digits, panicking with the input on failure.
#[track_caller]
pub fn h32(v: &str) -> Hash {
    from_hex_array::<32>(v).unwrap_or_else(|e| panic!("{v:?} is not 32 bytes of hex: {e}"))
}

/// A JSON string field as a 32-byte hash.
#[track_caller]
pub fn jh(v: &Value) -> Hash {
    h32(v.as_str().unwrap_or_else(|| panic!("not a string: {v}")))
}

/// Is `s` `n` bytes of lowercase hex?
pub fn is_hex(s: &str, n: usize) -> bool {
    s.len() == 2 * n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The key set of a JSON object.
#[track_caller]
pub fn keys(v: &Value) -> std::collections::BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// Asserts that `v` is an object with exactly the keys `want`.
#[track_caller]
pub fn assert_keys(v: &Value, want: &[&str]) {
    let want: std::collections::BTreeSet<String> = want.iter().map(|k| k.to_string()).collect();
    assert_eq!(keys(v), want, "key set of {v}");
}
