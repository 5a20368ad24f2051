//! Crash safety of `consentlog serve`: the real binary under concurrent appends (several
//! client threads with their own people: single events, some with `?wait=checkpoint`,
//! small batches, and now and then a batch larger than the ledger's commit chunk) is killed
//! with SIGKILL at random moments and restarted on the same directory, many times; now and
//! then the restarting server is killed again while it opens the ledger. After every
//! restart and at the end:
//!
//! - every receipt handed out before a kill names an entry that is still there, at the same
//!   index with the same leaf hash (and, at the end, the very event that was submitted);
//! - every event is logged exactly once: a client whose request died with the server sends
//!   the same event again and gets 201 (it was not durable) or 200 (it was: its receipt),
//!   never a conflict;
//! - every checkpoint signed after a restart is consistent with every one signed before it
//!   (consistency proofs from the server, checked with `tlog::check_consistency`, and every
//!   checkpoint's root recomputed from the final ledger);
//! - `consentlog audit --dir` is clean after a final graceful stop.
//!
//! The defaults keep `cargo test` short (20 kill cycles, 50–300 ms of load between kills).
//! Longer: `CONSENTLOG_CRASH_CYCLES=200 CONSENTLOG_CRASH_MS=2000 cargo test --release --test
//! it -- crash:: --nocapture` (scripts/crash.sh). CONSENTLOG_CRASH_SEED repeats a run's kill
//! timings and request mix (the server's own timing still varies).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::support::crash::*;
use crate::support::{bin, event_json, h32, try_send, Person, Proc};
use consentlog::core::event::SignedEvent;
use consentlog::core::hash::{from_hex, from_hex_array, to_hex, Hash};
use consentlog::core::leaf::Leaf;
use consentlog::core::note::{self, SignedCheckpoint};
use consentlog::core::receipt::Receipt;
use consentlog::core::tlog::{
    check_consistency, check_inclusion, LeafIndex, Sha256Hasher, TreeSize,
};
use consentlog::ledger::{Ledger, CHUNK};
use ed25519_dalek::VerifyingKey;
use serde_json::Value;

const CTL: &str = "example.com";
const READER: &str = "crash-reader-token";
const CLIENTS: usize = 4;
const PEOPLE_PER_CLIENT: usize = 3;

/// `serve` arguments for every run: frequent checkpoints, so kills land around them too.
const SERVE_ARGS: &[&str] = &[
    "--reader-token",
    READER,
    "--checkpoint-interval",
    "40",
    "--batch-wait-ms",
    "2",
];

// ---------------------------------------------------------------------------------------
// State shared by the driver and the client threads
// ---------------------------------------------------------------------------------------

/// The server clients should talk to: `url` is `None` while there is none.
struct Live {
    generation: u64,
    url: Option<String>,
}

/// A receipt a client got (kept by event hash), and the state key of its event.
#[derive(Clone)]
struct Got {
    receipt: Receipt,
    /// Server generation (run number) that answered.
    generation: u64,
}

#[derive(Default)]
struct Stats {
    single_posts: AtomicU64,
    batch_posts: AtomicU64,
    fresh_201: AtomicU64,
    /// Resubmissions after a request died: answered 201 (had not been durable)…
    resubmit_201: AtomicU64,
    /// …or 200 (had been durable; the client never saw its receipt).
    resubmit_200: AtomicU64,
    transport_errors: AtomicU64,
    unavailable_503: AtomicU64,
}

struct Shared {
    live: Mutex<Live>,
    changed: Condvar,
    stop: AtomicBool,
    log_key: OnceLock<VerifyingKey>,
    origin: OnceLock<String>,
    /// Event hash → receipt.
    receipts: Mutex<HashMap<Hash, Got>>,
    /// Checkpoint notes from `?wait=checkpoint` answers.
    waited: Mutex<Vec<String>>,
    /// Batches bigger than the ledger's commit chunk still to send.
    huge_left: AtomicI64,
    failures: Mutex<Vec<String>>,
    stats: Stats,
}

impl Shared {
    fn publish(&self, url: Option<String>) {
        let mut l = self.live.lock().unwrap();
        l.generation += 1;
        l.url = url;
        self.changed.notify_all();
    }

    fn fail(&self, msg: String) {
        eprintln!("FAILURE: {msg}");
        self.failures.lock().unwrap().push(msg);
    }

    /// The current server, waiting up to `wait` for one (or for a newer one than `after`).
    fn current(&self, after: Option<u64>, wait: Duration) -> (u64, Option<String>) {
        let l = self.live.lock().unwrap();
        let (l, _) = self
            .changed
            .wait_timeout_while(l, wait, |l| {
                l.url.is_none() || after.is_some_and(|g| l.generation <= g)
            })
            .unwrap();
        (l.generation, l.url.clone())
    }
}

// ---------------------------------------------------------------------------------------
// Client threads
// ---------------------------------------------------------------------------------------

/// One request's events; `uncertain` once a submission of it got no answer.
struct Request {
    events: Vec<SignedEvent>,
    kind: Kind,
    uncertain: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `POST /v1/events`.
    Single,
    /// `POST /v1/events?wait=checkpoint`: receipt, checkpoint and inclusion proof.
    SingleWait,
    /// `POST /v1/events/batch`.
    Batch,
}

/// Appends until told to stop, each request single or batch, chains of its own people only.
/// A request that gets no answer (the server died) is sent again, unchanged, to the next
/// server until it is answered. Returns the people with their chains as the client knows them.
fn client(id: usize, sh: Arc<Shared>, seed: u64) -> Vec<Person> {
    let mut rng = Rng::new(seed);
    let mut people: Vec<Person> = (0..PEOPLE_PER_CLIENT)
        .map(|i| Person::on(CTL, &format!("purpose-{id}-{i}")))
        .collect();
    let origin = sh.origin.get().expect("origin").clone();
    let key = *sh.log_key.get().expect("log key");
    let agent = agent();
    let mut pending: Option<Request> = None;
    let mut last_gen = None;
    loop {
        if pending.is_none() && sh.stop.load(Ordering::SeqCst) {
            break;
        }
        let (generation, url) = sh.current(last_gen, Duration::from_millis(100));
        last_gen = None;
        let Some(url) = url else { continue };
        let req = match pending.take() {
            Some(r) => r,
            None if rng.chance(3, 10) => {
                // Now and then (client 0, a few times a run) a batch bigger than the ledger's
                // commit chunk, so a kill can fall between its chunks' commits.
                let huge = id == 0
                    && sh.huge_left.load(Ordering::SeqCst) > 0
                    && rng.chance(1, 40)
                    && sh.huge_left.fetch_sub(1, Ordering::SeqCst) > 0;
                let n = if huge {
                    rng.range((CHUNK as u64 + 1).min(10_000), 10_000)
                } else {
                    rng.range(2, 6)
                };
                let events = (0..n)
                    .map(|_| {
                        let p = rng.range(0, people.len() as u64 - 1) as usize;
                        let opt_in = rng.chance(2, 3);
                        people[p].step(&origin, opt_in)
                    })
                    .collect();
                Request {
                    events,
                    kind: Kind::Batch,
                    uncertain: false,
                }
            }
            None => {
                let p = rng.range(0, people.len() as u64 - 1) as usize;
                let opt_in = rng.chance(2, 3);
                let kind = if rng.chance(1, 10) {
                    Kind::SingleWait
                } else {
                    Kind::Single
                };
                Request {
                    events: vec![people[p].step(&origin, opt_in)],
                    kind,
                    uncertain: false,
                }
            }
        };
        let (path, body) = match req.kind {
            Kind::Batch => {
                sh.stats.batch_posts.fetch_add(1, Ordering::Relaxed);
                let lines: Vec<String> = req.events.iter().map(event_json).collect();
                ("/v1/events/batch", lines.join("\n"))
            }
            Kind::Single => {
                sh.stats.single_posts.fetch_add(1, Ordering::Relaxed);
                ("/v1/events", event_json(&req.events[0]))
            }
            Kind::SingleWait => {
                sh.stats.single_posts.fetch_add(1, Ordering::Relaxed);
                ("/v1/events?wait=checkpoint", event_json(&req.events[0]))
            }
        };
        let resp = match try_send(
            &agent,
            "POST",
            &format!("{url}{path}"),
            None,
            Some(body.as_bytes()),
        ) {
            Ok(r) => r,
            Err(_) => {
                // The server died with the request (or before it): it may or may not have
                // been made durable. Send the same events again to the next server.
                sh.stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                pending = Some(Request {
                    uncertain: true,
                    ..req
                });
                last_gen = Some(generation);
                continue;
            }
        };
        if resp.status == 503 {
            sh.stats.unavailable_503.fetch_add(1, Ordering::Relaxed);
            pending = Some(Request {
                uncertain: true,
                ..req
            });
            sleep_ms(5);
            continue;
        }
        // One (status, body) per event.
        let results: Vec<(u16, Value)> = if req.kind == Kind::Batch {
            if resp.status != 200 {
                sh.fail(format!(
                    "client {id}: batch answered {} (uncertain {}): {}",
                    resp.status, req.uncertain, resp.body
                ));
                break;
            }
            let v: Value = match serde_json::from_str(&resp.body) {
                Ok(v) => v,
                Err(e) => {
                    sh.fail(format!("client {id}: batch answer is not JSON ({e})"));
                    break;
                }
            };
            let rs = v["results"].as_array().cloned().unwrap_or_default();
            if rs.len() != req.events.len() {
                sh.fail(format!(
                    "client {id}: {} results for {} events: {v}",
                    rs.len(),
                    req.events.len()
                ));
                break;
            }
            rs.into_iter()
                .map(|x| {
                    let st = x["status"].as_u64().unwrap_or(0) as u16;
                    let rc = if st < 300 { x["receipt"].clone() } else { x };
                    (st, rc)
                })
                .collect()
        } else {
            let v = serde_json::from_str(&resp.body).unwrap_or(Value::Null);
            if req.kind == Kind::SingleWait && resp.status < 300 {
                if let Err(e) = check_waited(&v, &key) {
                    sh.fail(format!("client {id}: ?wait=checkpoint answer: {e}: {v}"));
                    break;
                }
                let note = v["checkpoint"].as_str().unwrap_or_default().to_string();
                sh.waited.lock().unwrap().push(note);
                vec![(resp.status, v["receipt"].clone())]
            } else {
                vec![(resp.status, v)]
            }
        };
        let mut ok = true;
        for (ev, (st, v)) in req.events.iter().zip(results) {
            let acceptable = st == 201 || (st == 200 && req.uncertain);
            if !acceptable {
                sh.fail(format!(
                    "client {id}: event seq {} of subject {} answered {st} (a resubmission \
                     after a kill: {}): {v}",
                    ev.event.seq,
                    to_hex(&ev.event.subject),
                    req.uncertain
                ));
                ok = false;
                continue;
            }
            let rc: Receipt = match serde_json::from_value(v.clone()) {
                Ok(rc) => rc,
                Err(e) => {
                    sh.fail(format!("client {id}: not a receipt ({e}): {v}"));
                    ok = false;
                    continue;
                }
            };
            if rc.check(&key).is_err() {
                sh.fail(format!("client {id}: bad receipt signature: {v}"));
                ok = false;
            }
            let counter = match (req.uncertain, st) {
                (false, _) => &sh.stats.fresh_201,
                (true, 201) => &sh.stats.resubmit_201,
                (true, _) => &sh.stats.resubmit_200,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let got = Got {
                receipt: rc.clone(),
                generation,
            };
            let mut map = sh.receipts.lock().unwrap();
            if let Some(old) = map.insert(ev.event_hash(), got) {
                // The same leaf each time (each answer has its own checkpoint).
                if (old.receipt.index, old.receipt.leaf) != (rc.index, rc.leaf) {
                    sh.fail(format!(
                        "client {id}: event seq {} got two receipts: index {} then {}",
                        ev.event.seq, old.receipt.index, rc.index
                    ));
                    ok = false;
                }
            }
        }
        if !ok {
            // A chain broke: going on would only repeat the failure.
            break;
        }
    }
    people
}

/// Checks a `?wait=checkpoint` answer: the checkpoint opens under the log key, covers the
/// receipt's entry, and the inclusion proof leads from its leaf to the checkpoint's root.
fn check_waited(v: &Value, key: &VerifyingKey) -> Result<(), String> {
    let rc: Receipt = serde_json::from_value(v["receipt"].clone()).map_err(|e| e.to_string())?;
    let cp = note::open(v["checkpoint"].as_str().unwrap_or_default(), key)
        .map_err(|e| format!("checkpoint: {e}"))?;
    if cp.size <= rc.index {
        return Err(format!(
            "checkpoint of {} does not cover {}",
            cp.size, rc.index
        ));
    }
    let p = &v["inclusion"];
    let hex32 = |x: &Value| -> Result<Hash, String> {
        from_hex_array::<32>(x.as_str().unwrap_or_default()).map_err(|e| e.to_string())
    };
    let path: Vec<Hash> = p["path"]
        .as_array()
        .ok_or("no path")?
        .iter()
        .map(hex32)
        .collect::<Result<_, _>>()?;
    if p["index"].as_u64() != Some(rc.index)
        || p["tree_size"].as_u64() != Some(cp.size)
        || hex32(&p["leaf_hash"])? != rc.leaf.leaf_hash()
        || hex32(&p["root"])? != cp.root
    {
        return Err("inclusion proof is for another leaf or tree".into());
    }
    check_inclusion(
        &Sha256Hasher,
        LeafIndex(rc.index),
        TreeSize(cp.size),
        &rc.leaf.leaf_hash(),
        &path,
        &cp.root,
    )
    .map_err(|e| format!("inclusion proof does not verify: {e}"))
}

// ---------------------------------------------------------------------------------------
// Driver-side checks
// ---------------------------------------------------------------------------------------

/// Checkpoints seen over HTTP, by note text.
#[derive(Default)]
struct Notes {
    /// From `GET /v1/checkpoint` (the latest, published only once stored).
    latest: BTreeMap<String, SignedCheckpoint>,
    /// From `GET /v1/checkpoints` (every stored one), with their numbers.
    listed: BTreeMap<String, (u64, SignedCheckpoint)>,
}

/// Moves the checkpoints clients got from `?wait=checkpoint` answers (published only once
/// stored, like `GET /v1/checkpoint`) into `notes`.
fn take_waited(sh: &Shared, key: &VerifyingKey, notes: &mut Notes) {
    for text in sh.waited.lock().unwrap().drain(..) {
        let c = open_note(&text, key);
        notes.latest.insert(text, c);
    }
}

#[track_caller]
fn open_note(text: &str, key: &VerifyingKey) -> SignedCheckpoint {
    note::open(text, key).unwrap_or_else(|e| panic!("checkpoint does not open ({e}):\n{text}"))
}

fn get_json(agent: &ureq::Agent, url: &str, auth: Option<&str>) -> Value {
    send(agent, "GET", url, auth).expect(200).json()
}

/// The latest checkpoint.
fn latest_checkpoint(agent: &ureq::Agent, base: &str, key: &VerifyingKey) -> SignedCheckpoint {
    let r = send(agent, "GET", &format!("{base}/v1/checkpoint"), None);
    r.expect(200);
    open_note(&r.body, key)
}

/// Every stored checkpoint note, numbered.
fn all_checkpoints(agent: &ureq::Agent, base: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    loop {
        let from = out.len() as u64;
        let v = get_json(agent, &format!("{base}/v1/checkpoints?from={from}"), None);
        let items = v["checkpoints"].as_array().expect("checkpoints").clone();
        if items.is_empty() {
            return out;
        }
        for it in items {
            let n = it["number"].as_u64().expect("number");
            assert_eq!(n, out.len() as u64, "checkpoint numbers have a gap: {it}");
            out.push((n, it["note"].as_str().expect("note").to_string()));
        }
    }
}

/// The leaf hashes of entries `start..end` (fewer if the log is shorter), from
/// `GET /v1/entries`.
fn leaves(agent: &ureq::Agent, base: &str, start: u64, end: u64) -> Vec<Hash> {
    let mut out = Vec::new();
    loop {
        let from = start + out.len() as u64;
        if from >= end {
            return out;
        }
        let v = get_json(
            agent,
            &format!("{base}/v1/entries?start={from}&end={end}"),
            None,
        );
        let items = v["entries"].as_array().expect("entries").clone();
        if items.is_empty() {
            return out;
        }
        for it in items {
            assert_eq!(it["index"].as_u64(), Some(start + out.len() as u64), "{it}");
            let bytes = from_hex(it["entry"].as_str().expect("entry")).expect("hex");
            let e = Leaf::decode(&bytes).expect("leaf decodes");
            let leaf = h32(it["leaf_hash"].as_str().expect("leaf_hash"));
            assert_eq!(e.leaf_hash(), leaf, "leaf hash of {it}");
            out.push(leaf);
        }
    }
}

/// Checks the server's consistency proof from `old` to `new` with the library's verifier.
#[track_caller]
fn check_consistency_http(
    agent: &ureq::Agent,
    base: &str,
    old: &SignedCheckpoint,
    new: &SignedCheckpoint,
) {
    let v = get_json(
        agent,
        &format!(
            "{base}/v1/proofs/consistency?old={}&new={}",
            old.size, new.size
        ),
        None,
    );
    assert_eq!(
        h32(v["old_root"].as_str().unwrap()),
        old.root,
        "the tree of {} leaves now has another root than the checkpoint said: {v}",
        old.size
    );
    assert_eq!(h32(v["new_root"].as_str().unwrap()), new.root, "{v}");
    let path: Vec<Hash> = v["path"]
        .as_array()
        .expect("path")
        .iter()
        .map(|x| h32(x.as_str().unwrap()))
        .collect();
    check_consistency(
        &Sha256Hasher,
        TreeSize(old.size),
        TreeSize(new.size),
        &old.root,
        &new.root,
        &path,
    )
    .unwrap_or_else(|e| {
        panic!(
            "checkpoint of size {} is not consistent with the earlier one of size {} ({e})",
            new.size, old.size
        )
    });
}

/// Up to this log size every receipt is checked against the log after every restart; beyond
/// it (long runs) those above the largest earlier checkpoint and a sample of the others are,
/// the rest being covered by the consistency proof and the final check of the whole ledger.
const FULL_CHECK_MAX: u64 = 50_000;

/// What is checked right after every restart, before clients are let in again: receipts and
/// checkpoints from before the kill against what the new server serves.
fn check_after_restart(
    agent: &ureq::Agent,
    base: &str,
    key: &VerifyingKey,
    before: &HashMap<Hash, Got>,
    notes: &mut Notes,
    rng: &mut Rng,
) {
    // Checkpoints: the stored ones now, and consistency with every one seen before.
    let listed = all_checkpoints(agent, base);
    let texts: HashMap<&str, u64> = listed.iter().map(|(n, t)| (t.as_str(), *n)).collect();
    for text in notes.latest.keys() {
        assert!(
            texts.contains_key(text.as_str()),
            "a checkpoint served as the latest before a kill is no longer stored:\n{text}"
        );
    }
    for (text, (n, _)) in &notes.listed {
        // Only durable checkpoints are listed, so a kill cannot take one back.
        assert!(
            texts.contains_key(text.as_str()),
            "checkpoint {n}, listed before a kill, is gone after the restart:\n{text}"
        );
    }
    let newest = latest_checkpoint(agent, base, key);
    let mut prior: Vec<&SignedCheckpoint> = notes
        .latest
        .values()
        .chain(notes.listed.values().map(|(_, c)| c))
        .collect();
    prior.sort_by_key(|c| c.size);
    let anchor = prior.last().map_or(0, |c| c.size);
    if let Some(biggest) = prior.last() {
        check_consistency_http(agent, base, biggest, &newest);
    }
    if !prior.is_empty() {
        let pick = prior[rng.range(0, prior.len() as u64 - 1) as usize];
        check_consistency_http(agent, base, pick, &newest);
    }
    for (n, text) in listed {
        if let std::collections::btree_map::Entry::Vacant(v) = notes.listed.entry(text) {
            let c = open_note(v.key(), key);
            v.insert((n, c));
        }
    }
    notes.latest.insert(newest.note.clone(), newest);

    // Every receipt handed out before the kill: same index, same leaf hash.
    let size = before
        .values()
        .map(|g| g.receipt.index + 1)
        .max()
        .unwrap_or(0);
    let mut ranges = vec![];
    if size <= FULL_CHECK_MAX {
        ranges.push((0, size));
    } else {
        ranges.push((anchor.min(size), size));
        for _ in 0..3 {
            let s = rng.range(0, anchor.saturating_sub(1000));
            ranges.push((s, s + 1000));
        }
    }
    for (start, end) in ranges {
        let got = leaves(agent, base, start, end);
        for (h, g) in before {
            let i = g.receipt.index;
            if i < start || i >= end {
                continue;
            }
            let there = got.get((i - start) as usize);
            assert!(
                there == Some(&g.receipt.leaf.leaf_hash()),
                "receipt for event {} (index {i}, given by run {}) is not in the log after a \
                 restart: log size {}, leaf there {:?}",
                to_hex(h),
                g.generation,
                start + got.len() as u64,
                there.map(|l| to_hex(l))
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[test]
fn sigkill_under_concurrent_appends_loses_no_receipt_and_keeps_checkpoints_consistent() {
    let cycles = env_u64("CONSENTLOG_CRASH_CYCLES", 20);
    let max_ms = env_u64("CONSENTLOG_CRASH_MS", 300).max(10);
    let min_ms = (max_ms / 6).max(5);
    let seed = env_u64(
        "CONSENTLOG_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    eprintln!(
        "crash test: {cycles} kill cycles, {min_ms}-{max_ms} ms of load between kills, \
         CONSENTLOG_CRASH_SEED={seed}"
    );
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ledger");
    let log = tmp.path().join("server.log");
    let agent = agent();

    let sh = Arc::new(Shared {
        live: Mutex::new(Live {
            generation: 0,
            url: None,
        }),
        changed: Condvar::new(),
        stop: AtomicBool::new(false),
        log_key: OnceLock::new(),
        origin: OnceLock::new(),
        receipts: Mutex::new(HashMap::new()),
        waited: Mutex::new(Vec::new()),
        huge_left: AtomicI64::new((cycles / 8).max(2) as i64),
        failures: Mutex::new(Vec::new()),
        stats: Stats::default(),
    });

    // The first run creates the ledger (a kill during creation is the other test's subject).
    let mut srv = Proc::spawn(&dir, &log, SERVE_ARGS);
    let banner = srv
        .wait_ready(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the first server did not start:\n{}", srv.stderr()));
    let key = banner.log_key;
    sh.log_key.set(key).unwrap();
    sh.origin.set(banner.origin.clone()).unwrap();
    let mut notes = Notes::default();
    notes.latest.insert(
        latest_checkpoint(&agent, &banner.url, &key).note.clone(),
        latest_checkpoint(&agent, &banner.url, &key),
    );
    let mut url = banner.url;
    sh.publish(Some(url.clone()));

    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let sh = sh.clone();
            let s = rng.next();
            std::thread::spawn(move || client(i, sh, s))
        })
        .collect();

    let mut startup_kills = 0u64;
    let mut restart_ms = Vec::new();
    for cycle in 0..cycles {
        // Load for a random while, watching the latest checkpoint.
        let run = Duration::from_millis(rng.range(min_ms, max_ms));
        let until = Instant::now() + run;
        while Instant::now() < until {
            if let Ok(r) = try_send(&agent, "GET", &format!("{url}/v1/checkpoint"), None, None) {
                if r.status == 200 {
                    let c = open_note(&r.body, &key);
                    notes.latest.insert(c.note.clone(), c);
                }
            }
            sleep_ms(
                rng.range(5, 30)
                    .min(until.saturating_duration_since(Instant::now()).as_millis() as u64),
            );
        }
        let status = srv.kill9();
        assert!(!status.success(), "killed server exited {status}");
        sh.publish(None);
        assert!(
            sh.failures.lock().unwrap().is_empty(),
            "client failures: {:#?}",
            sh.failures.lock().unwrap()
        );
        take_waited(&sh, &key, &mut notes);

        // Sometimes kill the next server again while it starts (opens, recovers, signs its
        // first checkpoint).
        if rng.chance(1, 4) {
            let mut p = Proc::spawn(&dir, &log, SERVE_ARGS);
            sleep_ms(rng.range(0, 40));
            p.kill9();
            startup_kills += 1;
        }

        let t = Instant::now();
        srv = Proc::spawn(&dir, &log, SERVE_ARGS);
        let banner = srv.wait_ready(Duration::from_secs(60)).unwrap_or_else(|| {
            panic!(
                "cycle {cycle}: the server did not restart after a kill; stderr of every \
                 run:\n{}",
                srv.stderr()
            )
        });
        restart_ms.push(t.elapsed().as_millis() as u64);
        assert_eq!(banner.log_key, key, "the log key changed");
        url = banner.url;
        check_after_restart(
            &agent,
            &url,
            &key,
            // Locked while checked: no server answers clients until it is published.
            &sh.receipts.lock().unwrap(),
            &mut notes,
            &mut rng,
        );
        sh.publish(Some(url.clone()));
    }

    // Let the clients settle every request still in doubt, then stop them.
    sleep_ms(rng.range(min_ms, max_ms));
    sh.stop.store(true, Ordering::SeqCst);
    let people: Vec<Person> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client thread"))
        .collect();
    let failures = sh.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "client failures: {failures:#?}");

    // Heads as a reader sees them: each chain ends where its client thinks it does.
    let auth = format!("Bearer {READER}");
    for p in &people {
        let v = get_json(&agent, &format!("{url}{}", p.heads_path()), Some(&auth));
        let want_seq = p.seq.checked_sub(1);
        assert_eq!(v["seq"].as_u64(), want_seq, "head of a chain: {v}");
        assert_eq!(
            v["event_hash"].as_str().map(h32),
            p.prev,
            "head event of a chain: {v}"
        );
    }
    take_waited(&sh, &key, &mut notes);
    check_after_restart(
        &agent,
        &url,
        &key,
        &sh.receipts.lock().unwrap(),
        &mut notes,
        &mut rng,
    );

    // A graceful stop signs a final checkpoint over everything.
    let status = srv.term();
    assert!(
        status.success(),
        "SIGTERM exit {status}; stderr:\n{}",
        srv.stderr()
    );
    let out = srv.stdout();
    let receipts = sh.receipts.lock().unwrap().clone();
    let n = receipts.len() as u64;
    let covered: u64 = out
        .iter()
        .find_map(|l| {
            l.strip_prefix("stopped: final checkpoint covers ")?
                .strip_suffix(" leaves")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no final checkpoint line in {out:?}"));
    drop(srv);

    // The ledger itself.
    {
        let ledger = Ledger::open(&dir).expect("the ledger opens after the last stop");
        assert_eq!(
            ledger.size(),
            covered,
            "the final checkpoint covers the log"
        );
        let events = (0..ledger.size())
            .filter(|&i| matches!(ledger.leaf(i).unwrap(), Some(Leaf::Event(_))))
            .count() as u64;
        assert_eq!(
            events, n,
            "the log holds exactly the events that got receipts, each once"
        );
        for (h, g) in &receipts {
            let i = g.receipt.index;
            let e = ledger.event_leaf(i).unwrap().expect("event leaf");
            assert_eq!(
                e.leaf_hash(),
                g.receipt.leaf.leaf_hash(),
                "leaf hash at {i}"
            );
            assert_eq!(e.integrated_at, g.receipt.leaf.integrated_at, "time at {i}");
            let o = ledger.opening(i).unwrap().expect("opening");
            let ev = &o.event.event;
            let key = ledger.state_key(&ev.subject, &ev.controller, &ev.purpose);
            assert_eq!(Some(e.key), key.unwrap().map(|k| k.0), "state key at {i}");
            assert_eq!(&o.event.event_hash(), h, "event at {i}");
        }
        for p in &people {
            let head = ledger
                .head_of(&p.subject, &p.controller, &p.purpose)
                .unwrap();
            assert_eq!(head.map(|h| h.seq), p.seq.checked_sub(1));
            assert_eq!(head.map(|h| h.event_hash), p.prev);
        }
        // Every checkpoint ever stored or seen is a checkpoint of a prefix of this one log,
        // so each is consistent with every other.
        let stored: Vec<SignedCheckpoint> = ledger
            .checkpoints()
            .unwrap()
            .iter()
            .map(|t| open_note(t, &key))
            .collect();
        for w in stored.windows(2) {
            assert!(
                w[1].size >= w[0].size,
                "checkpoints go backwards: size {} then {}",
                w[0].size,
                w[1].size
            );
        }
        assert_eq!(
            stored.last().unwrap().size,
            ledger.size(),
            "final checkpoint size"
        );
        let seen = notes
            .latest
            .values()
            .chain(notes.listed.values().map(|(_, c)| c));
        for c in stored.iter().chain(seen) {
            assert_eq!(
                ledger.root_at(c.size).unwrap(),
                c.root,
                "checkpoint of size {} is not a prefix of the final log",
                c.size
            );
        }
        eprintln!(
            "{} checkpoints stored, {} distinct ones seen over HTTP",
            stored.len(),
            notes
                .latest
                .keys()
                .chain(notes.listed.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
    }

    // And the auditor agrees.
    let audit = std::process::Command::new(bin())
        .args(["audit", "--dir"])
        .arg(&dir)
        .output()
        .expect("run consentlog audit");
    assert!(
        audit.status.success(),
        "audit failed ({}):\n{}\n{}",
        audit.status,
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );

    let st = &sh.stats;
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    restart_ms.sort_unstable();
    eprintln!(
        "crash test done in {:.1} s: {cycles} kills under load (+{startup_kills} during \
         startup), {n} entries; posts: {} single, {} batch; receipts: {} fresh 201, {} \
         resubmitted 201, {} resubmitted 200; {} batches over {CHUNK} events; {} requests \
         cut by a kill, {} answered 503; \
         restart median {} ms, max {} ms",
        started.elapsed().as_secs_f64(),
        l(&st.single_posts),
        l(&st.batch_posts),
        l(&st.fresh_201),
        l(&st.resubmit_201),
        l(&st.resubmit_200),
        (cycles / 8).max(2) as i64 - sh.huge_left.load(Ordering::SeqCst).max(0),
        l(&st.transport_errors),
        l(&st.unavailable_503),
        restart_ms[restart_ms.len() / 2],
        restart_ms.last().unwrap(),
    );
    assert!(n > 0, "no event was appended");
    assert!(
        l(&st.transport_errors) > 0,
        "no kill cut a request short: the test did not test much"
    );
}

/// A kill while `serve` creates a new ledger (the first start on an empty directory) must
/// leave a directory that the next `serve` starts on: it either finishes the creation or
/// starts over (nothing was ever served or acknowledged from it).
#[test]
fn a_kill_while_the_first_start_creates_the_ledger_leaves_a_startable_directory() {
    let attempts = env_u64("CONSENTLOG_CRASH_INIT_ATTEMPTS", 12);
    for a in 0..attempts {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("ledger");
        let log = tmp.path().join("server.log");
        let mut p = Proc::spawn(&dir, &log, &[]);
        // Spread the kills over the creation (a few ms to a few tens of ms).
        sleep_ms(2 + a * 3);
        p.kill9();
        let left: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let mut p = Proc::spawn(&dir, &log, &[]);
        let ready = p.wait_ready(Duration::from_secs(30));
        assert!(
            ready.is_some(),
            "after a kill {} ms into the first start (left behind: {left:?}), serve does \
             not start:\n{}",
            2 + a * 3,
            p.stderr()
        );
        assert!(p.term().success(), "stop:\n{}", p.stderr());
    }
}
