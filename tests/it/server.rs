//! `consentlog serve` over real HTTP: every endpoint, authentication, error statuses and
//! bodies, overload, concurrency, graceful shutdown, remote audit and the CLI as a client.
//! Each test starts its own server on an ephemeral port in a temporary directory; the
//! `Server` guard stops it when the test ends, however it ends.
//!
//! Where the process is not the point, the server runs in-process (`Server::in_process`):
//! `serve`'s own argument parsing, ledger opening and accept loop on a thread of the test
//! process, on a real ledger on disk, over loopback. Two tests keep a `consentlog serve` child
//! (`Server::start`), because they are about the process:
//! - `concurrent_clients_get_distinct_contiguous_receipts_and_the_log_audits`: ends with
//!   SIGTERM, asserts the exit status, then audits the directory the exited process left;
//! - `sigterm_while_clients_append_exits_0_and_keeps_every_receipt`: SIGTERM under load, exit
//!   code 0, the "stopped" line on standard output, then a restart on the same directory.
//!
//! The CLI tests here (remote audit, grant/revoke/prove/history over HTTP) still run the
//! binary as the client.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use crate::support::http::check_inclusion_json;
use crate::support::*;
use consentlog::core::event::SignedEvent;
use consentlog::core::hash::{from_hex, to_hex};
use consentlog::core::history::{self, History};
use consentlog::core::leaf::Leaf;
use consentlog::core::note;
use consentlog::core::opening::commitment;
use consentlog::core::proof::{self, ConsentProof, Question, State};
use consentlog::core::receipt::Receipt;
use consentlog::core::tlog::{check_consistency, Sha256Hasher, TreeHasher, TreeSize};
use consentlog::ledger::Ledger;
use serde_json::{json, Value};

const CTL: &str = "example.com";
const PUR: &str = "ai-training";
const READER: &str = "reader-secret-0001";
const AUDITOR: &str = "auditor-secret-1";
/// A reader token the tokens files below limit to some controllers.
const LIMITED: &str = "limited-reader-2";

/// A tokens file in its own temporary directory (kept alive by the returned guard).
fn tokens_file(text: &str) -> (tempfile::TempDir, String) {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("tokens.txt");
    std::fs::write(&p, text).expect("write tokens file");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let s = s(&p).to_string();
    (d, s)
}

/// `ev` with one bit of its signature flipped.
fn bad_signature(ev: &SignedEvent) -> SignedEvent {
    let mut sig = ev.signature;
    sig[10] ^= 1;
    SignedEvent::from_parts(ev.event.clone(), sig)
}

/// Parses and verifies a consent proof under the server's key; returns its state.
#[track_caller]
fn check_proof(srv: &Server, v: &Value, q: &Question) -> (ConsentProof, State) {
    let p: ConsentProof =
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not a proof ({e}): {v}"));
    let verdict =
        proof::check(&p, &srv.log_key, q).unwrap_or_else(|e| panic!("invalid proof ({e}): {v}"));
    (p, verdict.state)
}

/// The state a consent proof from the server shows for `p`'s chain at `at` (checked).
#[track_caller]
fn proven_state(srv: &Server, p: &Person, at: Option<u64>, auth: &str) -> State {
    let v = srv.get_auth(&p.consent_path(at), auth).expect(200).json();
    check_proof(srv, &v, &question(p, at)).1
}

fn question(p: &Person, at: Option<u64>) -> Question {
    Question {
        subject: Some(p.subject),
        controller: Some(p.controller.clone()),
        purpose: Some(p.purpose.clone()),
        at,
        now: Some(now_ms()),
    }
}

// ---------------------------------------------------------------------------------------
// POST /v1/events, POST /v1/events/batch
// ---------------------------------------------------------------------------------------

#[test]
fn post_event_gives_201_receipt_then_200_same_receipt_and_waits_for_a_checkpoint() {
    let srv = Server::in_process(&["--checkpoint-interval", "30"]);
    let mut p = Person::on(CTL, PUR);
    let ev = p.step(&srv.origin, true);

    let r1 = srv.post_event(&ev);
    r1.expect(201);
    assert!(
        r1.header("content-type")
            .unwrap_or("")
            .starts_with("application/json"),
        "{r1:#?}"
    );
    let v1 = r1.json();
    assert_keys(&v1, RECEIPT_KEYS);
    let rc1 = receipt(&v1);
    assert!(rc1.check(&srv.log_key).is_ok(), "receipt signature");
    assert_eq!(rc1.index, FIRST);

    // An identical resubmission: 200 and the very same receipt; nothing appended.
    let r2 = srv.post_event(&ev);
    r2.expect(200);
    assert_eq!(receipt(&r2.json()), rc1);
    assert_eq!(srv.events(), 1);

    // The receipt names the logged entry.
    let page = srv.get("/v1/entries?start=2&end=3").expect(200).json();
    let row = &page["entries"][0];
    let entry = Leaf::decode_event(&from_hex(row["entry"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(entry.leaf_hash(), rc1.leaf.leaf_hash());
    assert_eq!(jh(&row["leaf_hash"]), rc1.leaf.leaf_hash());
    assert_eq!(entry.integrated_at, rc1.leaf.integrated_at);
    // The key is the log's VRF output: nothing public gives it for this person's triple.
    assert_ne!(entry.key, [0; 32]);

    // ?wait=checkpoint: receipt, a checkpoint covering it and an inclusion proof against it.
    let ev2 = p.step(&srv.origin, false);
    let r = srv.post("/v1/events?wait=checkpoint", &event_json(&ev2));
    r.expect(201);
    let v = r.json();
    assert_keys(&v, &["receipt", "checkpoint", "inclusion"]);
    let rc = receipt(&v["receipt"]);
    assert!(rc.check(&srv.log_key).is_ok());
    assert!(rc.index > rc1.index);
    let cp = note::open(v["checkpoint"].as_str().expect("note"), &srv.log_key)
        .expect("the checkpoint opens under the log key");
    assert!(
        cp.size > rc.index,
        "checkpoint of {} covers the event",
        cp.size
    );
    assert_eq!(cp.origin, srv.origin);

    assert_eq!(v["inclusion"]["index"].as_u64(), Some(rc.index));
    check_inclusion_json(&v["inclusion"], &rc.leaf.leaf_hash(), cp.size, &cp.root);

    // The same again with ?wait=checkpoint: 200, same receipt, still verifies.
    let r = srv.post("/v1/events?wait=checkpoint", &event_json(&ev2));
    r.expect(200);
    let v = r.json();
    assert_same_entry(&receipt(&v["receipt"]), &rc);
    let cp = note::open(v["checkpoint"].as_str().unwrap(), &srv.log_key).unwrap();
    check_inclusion_json(&v["inclusion"], &rc.leaf.leaf_hash(), cp.size, &cp.root);

    // Any other wait value is refused before anything is appended.
    let ev3 = p.make(&srv.origin, true);
    srv.post("/v1/events?wait=forever", &event_json(&ev3))
        .expect_error_code(400, "bad_request");
    assert_eq!(srv.events(), 2);
}

#[test]
fn batch_accepts_ndjson_and_json_arrays_with_one_result_per_event_in_order() {
    let srv = Server::in_process(&[]);
    let o = srv.origin.clone();
    let mut a = Person::on(CTL, PUR);
    let mut b = Person::on(CTL, "analytics");
    let a0 = a.step(&o, true);
    let a1 = a.step(&o, false); // continues a0 within the same batch
    let b_bad = bad_signature(&b.make(&o, true));
    let b0 = b.step(&o, true);
    let mut c = a.other(CTL, "ads");
    c.seq = 5; // no head yet: a seq conflict
    let c_conflict = c.make(&o, true);
    let body = [
        event_json(&a0),
        event_json(&a1),
        event_json(&b_bad),
        event_json(&b0),
        event_json(&a0), // repeated within the batch: its receipt, 200
        event_json(&c_conflict),
        "{\"not\": \"an event\"}".to_string(),
        String::new(), // blank lines are skipped
    ]
    .join("\n");
    let r = srv.post("/v1/events/batch", &body);
    r.expect(200);
    let v = r.json();
    assert_keys(&v, &["results"]);
    let res = v["results"].as_array().expect("results");
    let statuses: Vec<u64> = res.iter().map(|x| x["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [201, 201, 422, 201, 200, 409, 400], "{v}");
    let mut receipts = Vec::new();
    for (i, x) in res.iter().enumerate() {
        if statuses[i] < 300 {
            assert_keys(x, &["status", "receipt"]);
            let rc = receipt(&x["receipt"]);
            assert!(rc.check(&srv.log_key).is_ok(), "receipt {i}");
            receipts.push(rc);
        } else {
            assert_keys(x, &["status", "error"]);
            assert_keys(&x["error"], &["code", "message"]);
        }
    }
    let codes: Vec<&str> = [2, 5, 6]
        .iter()
        .map(|&i| res[i]["error"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["signature", "seq", "malformed"]);
    let idx: Vec<u64> = receipts.iter().map(|r| r.index).collect();
    assert_eq!(
        idx,
        [FIRST, FIRST + 1, FIRST + 2, FIRST],
        "receipts in order, the repeat gets the first's index"
    );
    assert_same_entry(&receipts[3], &receipts[0]);
    assert_eq!(srv.events(), 3, "rejected events changed nothing");

    // A JSON array: the chains go on from the heads the NDJSON batch left.
    let a2 = a.step(&o, true);
    let b1 = b.step(&o, false);
    let arr = format!(
        "[{},{},{},{{\"bogus\":1}},{}]",
        event_json(&a2),
        event_json(&b1),
        event_json(&a2),
        event_json(&a1)
    );
    let v = srv.post("/v1/events/batch", &arr).expect(200).json();
    let res = v["results"].as_array().unwrap();
    let statuses: Vec<u64> = res.iter().map(|x| x["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [201, 201, 200, 400, 200], "{v}");
    let rcs: Vec<Receipt> = [0, 1, 2, 4]
        .iter()
        .map(|&i| receipt(&res[i]["receipt"]))
        .collect();
    // a2 and b1 new (after the first batch and any map leaf since), the repeat of a2 its
    // receipt, a1 its receipt from the first batch.
    let (i0, i1) = (rcs[0].index, rcs[1].index);
    assert!(i0 > FIRST + 2 && i1 == i0 + 1, "{rcs:?}");
    assert_eq!((rcs[2].index, rcs[3].index), (i0, FIRST + 1));
    assert_same_entry(&rcs[3], &receipts[1]);
    assert!(rcs.iter().all(|r| r.check(&srv.log_key).is_ok()));
    assert_eq!(srv.events(), 5);

    // Nothing to append, or not a JSON array.
    srv.post("/v1/events/batch", "")
        .expect_error_code(400, "bad_request");
    srv.post("/v1/events/batch", "\n\n")
        .expect_error_code(400, "bad_request");
    srv.post("/v1/events/batch", "[]")
        .expect_error_code(400, "bad_request");
    srv.post("/v1/events/batch", "[{]")
        .expect_error_code(400, "bad_request");
    assert_eq!(srv.events(), 5);
}

#[test]
fn identical_event_twice_in_one_sequencer_batch_is_a_duplicate() {
    // Repeats inside one ledger batch are duplicates too (docs/FORMAT.md §10 rule 1, §14): 200,
    // and counted once. A 300 ms gathering window puts concurrent submissions into one batch.
    let srv = Server::in_process(&["--batch-wait-ms", "300"]);
    let o = srv.origin.clone();
    let mut p = Person::on(CTL, PUR);
    let e0 = p.step(&o, true);
    let body = format!("{}\n{}\n", event_json(&e0), event_json(&e0));
    let v = srv.post("/v1/events/batch", &body).expect(200).json();
    let st: Vec<u64> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_u64().unwrap())
        .collect();
    // Two identical single POSTs at once: the same gathering window.
    let e1 = p.step(&o, false);
    let line = event_json(&e1);
    let url = srv.u("/v1/events");
    let both: Vec<u16> = (0..2)
        .map(|_| {
            let (line, url) = (line.clone(), url.clone());
            std::thread::spawn(move || {
                send(&agent(), "POST", &url, None, Some(line.as_bytes())).status
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let m = srv.get("/metrics").body;
    let appended = metric(&m, "consentlog_appends_total");
    let size = srv.events();
    assert_eq!(size, 2, "each event is logged once");
    let mut both = both;
    both.sort_unstable();
    assert_eq!(
        (st, both, appended),
        (vec![201, 200], vec![200, 201], Some(2.0)),
        "(statuses in the batch, statuses of the two POSTs, appends_total) for 2 entries"
    );
}

#[test]
fn batch_of_10000_is_accepted_and_10001_is_413_in_both_forms() {
    let srv = Server::in_process(&[]);
    let o = srv.origin.clone();
    // 100 people, 101 events each: chains continue within the batch.
    let mut people: Vec<Person> = (0..100).map(|_| Person::on(CTL, PUR)).collect();
    let mut events = Vec::with_capacity(10_100);
    for round in 0..101 {
        for p in people.iter_mut() {
            events.push(event_json(&p.step(&o, round % 2 == 0)));
        }
    }
    let over = &events[..10_001];
    let r = srv.post("/v1/events/batch", &over.join("\n"));
    r.expect_error_code(413, "too_large");
    let r = srv.post("/v1/events/batch", &format!("[{}]", over.join(",")));
    r.expect_error_code(413, "too_large");
    assert_eq!(srv.events(), 0, "a refused batch appends nothing");

    let ok = &events[..10_000];
    let v = srv
        .post("/v1/events/batch", &ok.join("\n"))
        .expect(200)
        .json();
    let res = v["results"].as_array().unwrap();
    assert_eq!(res.len(), 10_000);
    // In order; a map leaf may fall between two chunks of the batch.
    let mut last = FIRST - 1;
    for (i, x) in res.iter().enumerate() {
        assert_eq!(x["status"].as_u64(), Some(201), "result {i}: {x}");
        let index = x["receipt"]["index"].as_u64().unwrap();
        assert!(index > last, "result {i}: index {index} after {last}");
        last = index;
    }
    assert_eq!(res[0]["receipt"]["index"].as_u64(), Some(FIRST));
    // Spot-check receipt signatures (each is a log-key signature).
    for i in [0, 1, 4_999, 8_191, 8_192, 9_999] {
        assert!(
            receipt(&res[i]["receipt"]).check(&srv.log_key).is_ok(),
            "receipt {i}"
        );
    }
    assert_eq!(srv.events(), 10_000);
}

// ---------------------------------------------------------------------------------------
// GET /v1/heads
// ---------------------------------------------------------------------------------------

#[test]
fn heads_answer_reader_tokens_and_the_persons_signed_requests_only() {
    let (_t, tf) = tokens_file(&format!(
        "# limited readers\n{LIMITED} partner.org,other.org\n"
    ));
    let srv = Server::in_process(&["--reader-token", READER, "--tokens-file", &tf]);
    let mut p = Person::on(CTL, PUR);
    let path = p.heads_path();
    let rd = bearer(READER);

    // No event yet: nulls.
    let v = srv.get_auth(&path, &rd).expect(200).json();
    assert_keys(
        &v,
        &[
            "subject",
            "controller",
            "purpose",
            "seq",
            "event_hash",
            "index",
        ],
    );
    assert_eq!(v["subject"].as_str(), Some(p.hex().as_str()));
    assert_eq!(v["controller"].as_str(), Some(CTL));
    assert_eq!(v["purpose"].as_str(), Some(PUR));
    assert!(v["seq"].is_null() && v["event_hash"].is_null() && v["index"].is_null());

    let mut other = Person::on(CTL, PUR);
    srv.append(&other.step(&srv.origin, true));
    let e0 = p.step(&srv.origin, true);
    srv.append(&e0);
    let e1 = p.step(&srv.origin, false);
    let rc1 = srv.append(&e1);

    let v = srv.get_auth(&path, &rd).expect(200).json();
    assert_eq!(v["seq"].as_u64(), Some(1));
    assert_eq!(
        v["event_hash"].as_str(),
        Some(to_hex(&e1.event_hash()).as_str())
    );
    assert_eq!(v["index"].as_u64(), Some(rc1.index));

    // The person's own signed request.
    let v2 = srv
        .get_auth(&path, &p.sign_request(&srv.request_to(), "GET", &path))
        .expect(200)
        .json();
    assert_eq!(v2, v);

    // No credentials: 401. Wrong ones: 403.
    srv.get(&path).expect_error_code(401, "unauthorized");
    srv.get_auth(&path, &bearer("not-a-token"))
        .expect_error_code(403, "forbidden");
    srv.get_auth(&path, "Basic cmVhZGVyOnNlY3JldA==")
        .expect_error_code(403, "forbidden");
    // Signed by someone else, or signed for another path, or stale, or used twice.
    srv.get_auth(&path, &other.sign_request(&srv.request_to(), "GET", &path))
        .expect_error_code(403, "forbidden");
    let other_path = p.other(CTL, "ads").heads_path();
    srv.get_auth(
        &path,
        &p.sign_request(&srv.request_to(), "GET", &other_path),
    )
    .expect_error_code(403, "bad_signature");
    srv.get_auth(&path, &p.sign_request(&srv.request_to(), "POST", &path))
        .expect_error_code(403, "bad_signature");
    srv.get_auth(
        &path,
        &p.sign_request_at(&srv.request_to(), "GET", &path, now_ms() - 10 * 60 * 1000),
    )
    .expect_error_code(403, "stale_request");
    let once = p.sign_request(&srv.request_to(), "GET", &path);
    srv.get_auth(&path, &once).expect(200);
    srv.get_auth(&path, &once)
        .expect_error_code(403, "replayed_request");
    // A token limited to other controllers.
    srv.get_auth(&path, &bearer(LIMITED))
        .expect_error_code(403, "forbidden");
    let q = p.other("partner.org", PUR);
    let v = srv
        .get_auth(&q.heads_path(), &bearer(LIMITED))
        .expect(200)
        .json();
    assert!(v["seq"].is_null());

    // Bad query values.
    let bad = format!("/v1/heads?subject=zz&controller={CTL}&purpose={PUR}");
    srv.get_auth(&bad, &rd)
        .expect_error_code(400, "bad_request");
    let bad = format!(
        "/v1/heads?subject={}&controller=Bad!&purpose={PUR}",
        p.hex()
    );
    srv.get_auth(&bad, &rd)
        .expect_error_code(400, "bad_request");
    let bad = format!("/v1/heads?subject={}&purpose={PUR}", p.hex());
    srv.get_auth(&bad, &rd)
        .expect_error_code(400, "bad_request");
}

// ---------------------------------------------------------------------------------------
// GET /v1/checkpoint, /v1/checkpoints, /v1/entries, /v1/proofs/inclusion, /consistency
// ---------------------------------------------------------------------------------------

#[test]
fn checkpoints_entries_and_log_proofs_verify() {
    let srv = Server::in_process(&["--checkpoint-interval", "20"]);
    let o = srv.origin.clone();
    let mut people: Vec<Person> = (0..3).map(|_| Person::on(CTL, PUR)).collect();
    let mut receipts = Vec::new();
    for i in 0..5 {
        receipts.push(srv.append(&people[i % 3].step(&o, i % 2 == 0)));
    }
    // A checkpoint covers the first five events; it ends at a map leaf after them.
    let cp_a = srv.wait_covered(receipts[4].index + 1);
    for i in 5..11 {
        receipts.push(srv.append(&people[i % 3].step(&o, i % 2 == 0)));
    }
    let cp_b = srv.wait_covered(receipts[10].index + 1);
    let (a, b) = (cp_a.size, cp_b.size);
    assert!(a > receipts[4].index && b > receipts[10].index && b > a);

    // GET /v1/checkpoint: a text note under the log key.
    let r = srv.get("/v1/checkpoint");
    r.expect(200);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain"),
        "{r:#?}"
    );
    let latest = note::open(&r.body, &srv.log_key).expect("opens under the log key");
    assert_eq!(latest.origin, o);
    assert!(latest.size >= b);
    assert!(note::open(&r.body, &consentlog::keyfile::generate().verifying_key()).is_err());

    // GET /v1/checkpoints: numbered from 0, each opens, sizes never go back, and each ends
    // with a map leaf.
    let v = srv
        .get("/v1/checkpoints?from=0&to=100000")
        .expect(200)
        .json();
    assert_keys(&v, &["checkpoints"]);
    let list = v["checkpoints"].as_array().unwrap();
    assert!(list.len() >= 3, "init's, and two covering the events: {v}");
    let mut last: Option<note::SignedCheckpoint> = None;
    for (n, item) in list.iter().enumerate() {
        assert_keys(item, &["number", "note"]);
        assert_eq!(item["number"].as_u64(), Some(n as u64));
        let cp = note::open(item["note"].as_str().unwrap(), &srv.log_key).unwrap();
        if let Some(l) = &last {
            assert!(cp.size >= l.size, "checkpoint {n}");
        }
        let leaf = srv
            .get(&format!(
                "/v1/entries?start={}&end={}",
                cp.size - 1,
                cp.size
            ))
            .expect(200)
            .json();
        let bytes = from_hex(leaf["entries"][0]["entry"].as_str().unwrap()).unwrap();
        assert!(
            matches!(Leaf::decode(&bytes), Ok(Leaf::Map(_))),
            "checkpoint {n} ends at a map leaf"
        );
        last = Some(cp);
    }
    // init's: the genesis leaf and the first map leaf.
    assert_eq!(
        note::open(list[0]["note"].as_str().unwrap(), &srv.log_key)
            .unwrap()
            .size,
        FIRST
    );
    let notes: Vec<&str> = list.iter().map(|i| i["note"].as_str().unwrap()).collect();
    assert!(notes.contains(&cp_a.note.as_str()) && notes.contains(&cp_b.note.as_str()));
    let v = srv.get("/v1/checkpoints?from=1&to=2").expect(200).json();
    let one = v["checkpoints"].as_array().unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0], list[1]);
    let v = srv.get("/v1/checkpoints?from=2").expect(200).json();
    assert_eq!(v["checkpoints"].as_array().unwrap()[..], list[2..]);
    let v = srv.get("/v1/checkpoints?from=100000").expect(200).json();
    assert!(v["checkpoints"].as_array().unwrap().is_empty());

    // GET /v1/entries: every leaf, its hash SHA-256(0x00 || leaf); the event leaves match the
    // receipts.
    let v = srv
        .get(&format!("/v1/entries?start=0&end={b}"))
        .expect(200)
        .json();
    assert_keys(&v, &["start", "end", "entries"]);
    assert_eq!((v["start"].as_u64(), v["end"].as_u64()), (Some(0), Some(b)));
    let rows = v["entries"].as_array().unwrap();
    assert_eq!(rows.len() as u64, b);
    for (i, row) in rows.iter().enumerate() {
        assert_keys(row, &["index", "entry", "leaf_hash"]);
        assert_eq!(row["index"].as_u64(), Some(i as u64));
        let bytes = from_hex(row["entry"].as_str().unwrap()).unwrap();
        let leaf = Leaf::decode(&bytes).unwrap();
        assert_eq!(leaf.leaf_hash(), jh(&row["leaf_hash"]));
        assert_eq!(Sha256Hasher.hash_leaf(&bytes), jh(&row["leaf_hash"]));
        match (i, leaf) {
            (0, Leaf::Genesis(g)) => assert_eq!(g.origin, o),
            (_, Leaf::Map(_)) => {}
            (i, Leaf::Event(e)) => {
                let rc = receipts
                    .iter()
                    .find(|r| r.index == i as u64)
                    .unwrap_or_else(|| panic!("event leaf {i} has no receipt"));
                assert_eq!(e.leaf_hash(), rc.leaf.leaf_hash(), "leaf {i}");
                assert_eq!(e.integrated_at, rc.leaf.integrated_at);
            }
            (i, other) => panic!("leaf {i}: {other:?}"),
        }
    }
    let v = srv.get("/v1/entries?start=3&end=5").expect(200).json();
    assert_eq!(v["entries"].as_array().unwrap()[..], rows[3..5]);
    let v = srv.get("/v1/entries?start=9&end=100000").expect(200).json();
    assert_eq!(v["start"].as_u64(), Some(9));
    assert!(v["end"].as_u64().unwrap() >= b);

    // Inclusion proofs of every event leaf against both checkpoints' roots.
    for cp in [&cp_a, &cp_b] {
        let n = cp.size;
        for rc in receipts.iter().filter(|r| r.index < n) {
            let i = rc.index;
            let p = srv
                .get(&format!("/v1/proofs/inclusion?index={i}&size={n}"))
                .expect(200)
                .json();
            assert_keys(&p, &["index", "tree_size", "leaf_hash", "root", "path"]);
            check_inclusion_json(&p, &rc.leaf.leaf_hash(), n, &cp.root);
        }
    }

    // Consistency between the two checkpoints, and to itself.
    for (old, old_root) in [(a, cp_a.root), (b, cp_b.root)] {
        let p = srv
            .get(&format!("/v1/proofs/consistency?old={old}&new={b}"))
            .expect(200)
            .json();
        assert_keys(
            &p,
            &["old_size", "new_size", "old_root", "new_root", "path"],
        );
        assert_eq!(jh(&p["old_root"]), old_root);
        assert_eq!(jh(&p["new_root"]), cp_b.root);
        let path: Vec<_> = p["path"].as_array().unwrap().iter().map(jh).collect();
        check_consistency(
            &Sha256Hasher,
            TreeSize(old),
            TreeSize(b),
            &old_root,
            &cp_b.root,
            &path,
        )
        .unwrap_or_else(|e| panic!("consistency {old}->{b}: {e}: {p}"));
    }

    // Bad numbers: 400. Out of range: 422.
    for bad in [
        "/v1/entries?start=abc",
        "/v1/entries?start=-1",
        "/v1/entries?end=1.5",
        "/v1/entries?start=5&end=3",
        "/v1/checkpoints?from=x",
        "/v1/checkpoints?to=-2",
        "/v1/proofs/inclusion",
        "/v1/proofs/inclusion?index=1e3",
        "/v1/proofs/inclusion?index=1&size=big",
        "/v1/proofs/consistency",
        "/v1/proofs/consistency?old=0x1",
        "/v1/proofs/consistency?old=1&new=",
        "/v1/entries?start=1&start=2",
    ] {
        srv.get(bad).expect_error_code(400, "bad_request");
    }
    for bad in [
        "/v1/proofs/inclusion?index=100000",
        "/v1/proofs/inclusion?index=2&size=100000",
        "/v1/proofs/consistency?old=6&new=5",
        "/v1/proofs/consistency?old=1&new=100000",
    ] {
        srv.get(bad).expect_error_code(422, "invalid");
    }
}

// ---------------------------------------------------------------------------------------
// GET and POST /v1/proofs/consent
// ---------------------------------------------------------------------------------------

#[test]
fn consent_proofs_verify_and_need_a_reader_token_for_the_controller() {
    let (_t, tf) = tokens_file(&format!("{LIMITED} {CTL},partner.org\n"));
    let srv = Server::in_process(&[
        "--reader-token",
        READER,
        "--tokens-file",
        &tf,
        "--checkpoint-interval",
        "50",
    ]);
    let o = srv.origin.clone();
    let rd = bearer(READER);
    let mut p = Person::on(CTL, PUR);
    // t0 before the grant, t1 after it (the server's clock is the system's).
    let t0 = now_ms();
    wall_past(t0);
    srv.append(&p.step(&o, true));
    let t1 = now_ms();
    wall_past(t1);

    // Now: opted in; before the grant: no record.
    let v = srv.get_auth(&p.consent_path(None), &rd).expect(200).json();
    let (pr, st) = check_proof(&srv, &v, &question(&p, None));
    assert_eq!(st, State::OptedIn);
    assert_eq!(pr.state, "opted_in");
    assert_eq!(proven_state(&srv, &p, Some(t0), &rd), State::NoRecord);

    // Credentials.
    srv.get(&p.consent_path(None))
        .expect_error_code(401, "unauthorized");
    srv.get_auth(&p.consent_path(None), &bearer("nope"))
        .expect_error_code(403, "forbidden");
    srv.get_auth(
        &p.consent_path(None),
        &p.sign_request(&srv.request_to(), "GET", &p.consent_path(None)),
    )
    .expect_error_code(403, "forbidden");
    // A token limited to example.com and partner.org.
    let v = srv
        .get_auth(&p.consent_path(None), &bearer(LIMITED))
        .expect(200)
        .json();
    assert_eq!(check_proof(&srv, &v, &question(&p, None)).1, State::OptedIn);
    let partner = p.other("partner.org", PUR);
    let v = srv
        .get_auth(&partner.consent_path(None), &bearer(LIMITED))
        .expect(200)
        .json();
    assert_eq!(
        check_proof(&srv, &v, &question(&partner, None)).1,
        State::NoRecord
    );
    let other = p.other("other.org", PUR);
    srv.get_auth(&other.consent_path(None), &bearer(LIMITED))
        .expect_error_code(403, "forbidden");
    let v = srv
        .get_auth(&other.consent_path(None), &rd)
        .expect(200)
        .json();
    assert_eq!(
        check_proof(&srv, &v, &question(&other, None)).1,
        State::NoRecord
    );

    // A future `at` is refused.
    srv.get_auth(&p.consent_path(Some(now_ms() + 60_000)), &rd)
        .expect_error_code(422, "invalid");
    // Bad parameters.
    srv.get_auth(&p.consent_path(None).replace(CTL, "Example.COM"), &rd)
        .expect_error_code(400, "bad_request");
    srv.get_auth(&format!("{}&at=soon", p.consent_path(None)), &rd)
        .expect_error_code(400, "bad_request");

    // Revoke: now opted out, while at t1 it was held.
    srv.append(&p.step(&o, false));
    assert_eq!(proven_state(&srv, &p, None, &rd), State::OptedOut);
    assert_eq!(proven_state(&srv, &p, Some(t1), &rd), State::OptedIn);

    // POST: many queries, one shared checkpoint, every proof verifies.
    let mut crowd: Vec<Person> = (0..12).map(|_| Person::on(CTL, PUR)).collect();
    let mut want = Vec::new();
    for (i, c) in crowd.iter_mut().enumerate() {
        if i % 3 != 2 {
            srv.append(&c.step(&o, true));
        }
        if i % 3 == 1 {
            srv.append(&c.step(&o, false));
        }
        want.push(match i % 3 {
            0 => State::OptedIn,
            1 => State::OptedOut,
            _ => State::NoRecord,
        });
    }
    let mut queries: Vec<Value> = crowd
        .iter()
        .map(|c| json!({"subject": c.hex(), "controller": CTL, "purpose": PUR}))
        .collect();
    queries.push(json!({"subject": p.hex(), "controller": CTL, "purpose": PUR, "at": t1}));
    want.push(State::OptedIn);
    queries.push(json!({"subject": p.hex(), "controller": CTL, "purpose": PUR, "at": t0}));
    want.push(State::NoRecord);
    queries.push(json!({"subject": partner.hex(), "controller": "partner.org", "purpose": PUR}));
    want.push(State::NoRecord);
    let body = json!({ "queries": queries }).to_string();
    for token in [READER, LIMITED] {
        let v = srv
            .post_auth("/v1/proofs/consent", &body, &bearer(token))
            .expect(200)
            .json();
        assert_keys(&v, &["checkpoint", "proofs"]);
        let shared = v["checkpoint"].as_str().unwrap();
        let cp = note::open(shared, &srv.log_key).expect("shared checkpoint");
        assert_eq!(cp.size, srv.tree_size());
        let proofs = v["proofs"].as_array().unwrap();
        assert_eq!(proofs.len(), queries.len());
        for (i, (pv, q)) in proofs.iter().zip(&queries).enumerate() {
            let qq = Question {
                subject: Some(jh(&q["subject"])),
                controller: Some(q["controller"].as_str().unwrap().to_string()),
                purpose: Some(PUR.to_string()),
                at: q["at"].as_u64(),
                now: None,
            };
            let (pr, st) = check_proof(&srv, pv, &qq);
            assert_eq!(
                pr.checkpoint, shared,
                "proof {i} uses the shared checkpoint"
            );
            assert_eq!(st, want[i], "proof {i}");
        }
    }
    // A query that cannot be answered gets an error item; the others still get proofs.
    let b3 = json!({"queries": [
        {"subject": p.hex(), "controller": "Bad!", "purpose": PUR},
        {"subject": p.hex(), "controller": CTL, "purpose": PUR},
    ]})
    .to_string();
    let v = srv
        .post_auth("/v1/proofs/consent", &b3, &rd)
        .expect(200)
        .json();
    let proofs = v["proofs"].as_array().unwrap();
    assert_eq!(proofs.len(), 2);
    assert_keys(&proofs[0], &["error"]);
    assert_keys(&proofs[0]["error"], &["code", "message"]);
    let (pr, st) = check_proof(&srv, &proofs[1], &question(&p, None));
    assert_eq!(st, State::OptedOut);
    assert_eq!(pr.checkpoint, v["checkpoint"].as_str().unwrap());

    // One query for a controller the token may not ask about: 403 for the whole request.
    let mut q2 = queries.clone();
    q2.push(json!({"subject": other.hex(), "controller": "other.org", "purpose": PUR}));
    let b2 = json!({ "queries": q2 }).to_string();
    srv.post_auth("/v1/proofs/consent", &b2, &bearer(LIMITED))
        .expect_error_code(403, "forbidden");
    srv.post("/v1/proofs/consent", &b2)
        .expect_error_code(401, "unauthorized");
    srv.post_auth("/v1/proofs/consent", &b2, &bearer("nope"))
        .expect_error_code(403, "forbidden");
    // A future `at`, a bad body.
    let fut = json!({"queries": [{"subject": p.hex(), "controller": CTL, "purpose": PUR,
                                  "at": now_ms() + 60_000}]})
    .to_string();
    srv.post_auth("/v1/proofs/consent", &fut, &rd)
        .expect_error_code(422, "invalid");
    for bad in [
        "{",
        "[]",
        "{\"queries\": [{\"subject\": \"zz\", \"controller\": \"a\", \"purpose\": \"b\"}]}",
        "{\"queries\": [], \"extra\": 1}",
    ] {
        srv.post_auth("/v1/proofs/consent", bad, &rd)
            .expect_error_code(400, "bad_request");
    }
}

#[test]
fn bulk_consent_with_no_queries_still_needs_credentials() {
    let srv = Server::in_process(&["--reader-token", READER]);
    let before = srv.get("/v1/checkpoints?from=0").expect(200).json()["checkpoints"]
        .as_array()
        .unwrap()
        .len();
    let r = srv.post("/v1/proofs/consent", "{\"queries\": []}");
    let after = srv.get("/v1/checkpoints?from=0").expect(200).json()["checkpoints"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        after, before,
        "an unauthenticated request stored a checkpoint"
    );
    r.expect_error_code(401, "unauthorized");
}

// ---------------------------------------------------------------------------------------
// GET /v1/subjects/{subject}/history, GET /v1/export
// ---------------------------------------------------------------------------------------

#[test]
fn history_is_only_for_the_persons_own_signed_request_and_verifies() {
    let srv = Server::in_process(&["--reader-token", READER, "--auditor-token", AUDITOR]);
    let o = srv.origin.clone();
    let mut alice = Person::on(CTL, PUR);
    let mut alice2 = alice.other(CTL, "analytics");
    let mut bob = Person::on(CTL, PUR);
    srv.append(&alice.step(&o, true));
    srv.append(&bob.step(&o, true));
    srv.append(&alice2.step(&o, true));
    srv.append(&alice.step(&o, false));
    srv.append(&alice.step(&o, true));

    let path = format!("/v1/subjects/{}/history", alice.hex());
    let v = srv
        .get_auth(&path, &alice.sign_request(&srv.request_to(), "GET", &path))
        .expect(200)
        .json();
    let h: History = serde_json::from_value(v.clone()).expect("a history");
    let checked = history::check(&h, &srv.log_key, Some(&alice.subject))
        .unwrap_or_else(|e| panic!("history does not verify: {e}"));
    let mut chains: Vec<(String, usize)> = checked
        .chains
        .iter()
        .map(|c| (c.purpose.clone(), c.events.len()))
        .collect();
    chains.sort();
    assert_eq!(
        chains,
        [("ai-training".to_string(), 3), ("analytics".to_string(), 1)]
    );
    // Covers every leaf: the server appended a map leaf for the history.
    assert_eq!(checked.anchor.checkpoint.size, srv.tree_size());
    assert_eq!(checked.anchor.map_index + 1, srv.tree_size());

    // Not signed: 401; signed by someone else, for another path, stale, or a token: 403.
    srv.get(&path).expect_error_code(401, "unauthorized");
    srv.get_auth(&path, &bob.sign_request(&srv.request_to(), "GET", &path))
        .expect_error_code(403, "forbidden");
    let bob_path = format!("/v1/subjects/{}/history", bob.hex());
    srv.get_auth(
        &path,
        &alice.sign_request(&srv.request_to(), "GET", &bob_path),
    )
    .expect_error_code(403, "bad_signature");
    srv.get_auth(
        &bob_path,
        &alice.sign_request(&srv.request_to(), "GET", &bob_path),
    )
    .expect_error_code(403, "forbidden");
    for skew in [-(10 * 60 * 1000i64), 10 * 60 * 1000] {
        let t = (now_ms() as i64 + skew) as u64;
        srv.get_auth(
            &path,
            &alice.sign_request_at(&srv.request_to(), "GET", &path, t),
        )
        .expect_error_code(403, "stale_request");
    }
    srv.get_auth(&path, &bearer(READER))
        .expect_error_code(403, "forbidden");
    srv.get_auth(&path, &bearer(AUDITOR))
        .expect_error_code(403, "forbidden");
    let mut garbled = alice.sign_request(&srv.request_to(), "GET", &path);
    garbled.truncate(garbled.len() - 2);
    srv.get_auth(&path, &garbled)
        .expect_error_code(403, "malformed_request");

    // Bob's own history holds only his chain; someone with no events gets an empty one.
    let v = srv
        .get_auth(
            &bob_path,
            &bob.sign_request(&srv.request_to(), "GET", &bob_path),
        )
        .expect(200)
        .json();
    let h: History = serde_json::from_value(v).unwrap();
    let c = history::check(&h, &srv.log_key, Some(&bob.subject)).unwrap();
    assert_eq!(c.chains.len(), 1);
    let carol = Person::on(CTL, PUR);
    let carol_path = format!("/v1/subjects/{}/history", carol.hex());
    let v = srv
        .get_auth(
            &carol_path,
            &carol.sign_request(&srv.request_to(), "GET", &carol_path),
        )
        .expect(200)
        .json();
    let h: History = serde_json::from_value(v).unwrap();
    assert!(history::check(&h, &srv.log_key, Some(&carol.subject))
        .unwrap()
        .chains
        .is_empty());

    // A subject that is not 32 bytes of hex.
    srv.get_auth(
        "/v1/subjects/xyz/history",
        &alice.sign_request(&srv.request_to(), "GET", "/v1/subjects/xyz/history"),
    )
    .expect_error_code(400, "bad_request");
}

// ---------------------------------------------------------------------------------------
// Signed requests: bound to one log and one server, used once, not across a restart
// ---------------------------------------------------------------------------------------

const PUBLIC_URL: &str = "https://consent.example.com";

#[test]
fn a_signed_request_is_refused_by_other_servers_and_the_second_time() {
    let a = Server::in_process(&["--origin", "a.example/log", "--public-url", PUBLIC_URL]);
    assert_eq!(a.public_url, PUBLIC_URL);
    // Another log behind the same public URL; the same log behind other URLs (the default
    // one: http:// and the listen address; and another configured one).
    let other_log = Server::in_process(&["--origin", "b.example/log", "--public-url", PUBLIC_URL]);
    let other_url = Server::in_process(&["--origin", "a.example/log"]);
    assert_eq!(other_url.public_url, other_url.url);
    let other_url2 = Server::in_process(&[
        "--origin",
        "a.example/log",
        "--public-url",
        "HTTPS://Consent.Example.com:8443/",
    ]);
    assert_eq!(other_url2.public_url, "https://consent.example.com:8443");

    let alice = Person::on(CTL, PUR);
    let path = format!("/v1/subjects/{}/history", alice.hex());
    let signed = alice.sign_request(&a.request_to(), "GET", &path);
    // Sent to the others first, so that only the binding can refuse it there.
    for srv in [&other_log, &other_url, &other_url2] {
        let r = srv.get_auth(&path, &signed);
        r.expect_error_code(403, "bad_signature");
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            message.contains("does not verify for this log and audience")
                && message.contains(&srv.origin)
                && message.contains(&srv.public_url),
            "{message}"
        );
    }
    a.get_auth(&path, &signed).expect(200);
    // The same request again, to the server it was made for.
    a.get_auth(&path, &signed)
        .expect_error_code(403, "replayed_request");
    // And the other way: a request the default-URL server took is no good at `a`.
    let there = alice.sign_request(&other_url.request_to(), "GET", &path);
    other_url.get_auth(&path, &there).expect(200);
    a.get_auth(&path, &there)
        .expect_error_code(403, "bad_signature");

    // The CLI signs for the URL it is given: a server reached at an address other than its
    // public URL refuses, naming the audience it wants.
    let key_file = a.tmp.join("alice.key");
    run(&["keygen", "--out", s(&key_file)]).ok();
    let r = run(&["history", "--server", &other_url.url, "--key", s(&key_file)]);
    r.assert_code(0);
    let r = run(&["history", "--server", &a.url, "--key", s(&key_file)]);
    r.assert_fails_with(
        "HTTP 403: the request signature does not verify for this log and audience",
    );
    assert!(r.stderr.contains(PUBLIC_URL), "{r:#?}");
}

#[test]
fn a_request_taken_before_a_restart_is_refused_after_it() {
    let mut srv = Server::start(&["--public-url", PUBLIC_URL]);
    let alice = Person::on(CTL, PUR);
    let path = format!("/v1/subjects/{}/history", alice.hex());
    let used = alice.sign_request(&srv.request_to(), "GET", &path);
    srv.get_auth(&path, &used).expect(200);
    let unused = alice.sign_request(&srv.request_to(), "GET", &path);
    assert!(srv.stop().success());
    let again = Server::start_in(&srv.dir, &["--public-url", PUBLIC_URL]);
    assert_eq!(again.request_to(), srv.request_to());
    // Both are still within 5 minutes, and the new process has no memory of the nonces.
    for h in [&used, &unused] {
        let r = again.get_auth(&path, h);
        r.expect_error_code(403, "request_before_start");
        assert!(r.body.contains("before the server started"), "{r:#?}");
    }
    let fresh = alice.sign_request(&again.request_to(), "GET", &path);
    again.get_auth(&path, &fresh).expect(200);
}

#[test]
fn serve_refuses_a_public_url_that_cannot_be_an_audience() {
    let dir = tempfile::tempdir().unwrap();
    for (url, why) in [
        ("consent.example.com", "must start with http:// or https://"),
        (
            "https://consent.example.com/?x=1",
            "must not have a query or fragment",
        ),
        ("https://", "has no host"),
    ] {
        let r = run(&[
            "serve",
            "--dir",
            s(&dir.path().join("ledger")),
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            url,
        ]);
        r.assert_fails_with(&format!("--public-url: the public URL {why}"));
    }
}

#[test]
fn export_gives_openings_to_auditor_tokens_only() {
    let srv = Server::in_process(&["--reader-token", READER, "--auditor-token", AUDITOR]);
    let o = srv.origin.clone();
    let mut p = Person::on(CTL, PUR);
    let evs: Vec<SignedEvent> = (0..4).map(|i| p.step(&o, i % 2 == 0)).collect();
    for e in &evs {
        srv.append(e);
    }
    let v = srv
        .get_auth("/v1/export", &bearer(AUDITOR))
        .expect(200)
        .json();
    assert_keys(&v, &["start", "end", "entries"]);
    let rows = v["entries"].as_array().unwrap();
    assert_eq!(v["start"].as_u64(), Some(0));
    assert_eq!(v["end"].as_u64(), Some(rows.len() as u64));
    // Every leaf; the event leaves with their openings, in the order appended.
    let mut seen = 0;
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["index"].as_u64(), Some(i as u64));
        let leaf = Leaf::decode(&from_hex(row["entry"].as_str().unwrap()).unwrap()).unwrap();
        let Leaf::Event(e) = leaf else {
            assert_keys(row, &["index", "entry", "opening", "vrf_proof"]);
            assert_eq!(row["opening"], Value::Null, "leaf {i}");
            continue;
        };
        assert_keys(row, &["index", "entry", "opening", "vrf_proof"]);
        assert_keys(&row["opening"], &["nonce", "event"]);
        let nonce = jh(&row["opening"]["nonce"]);
        let bytes = from_hex(row["opening"]["event"].as_str().unwrap()).unwrap();
        assert_eq!(commitment(&nonce, &bytes), e.commitment, "opening {i}");
        assert_eq!(bytes, evs[seen].as_bytes(), "the event as signed");
        seen += 1;
    }
    assert_eq!(seen, 4);
    let v = srv
        .get_auth("/v1/export?start=1&end=3", &bearer(AUDITOR))
        .expect(200)
        .json();
    assert_eq!(v["entries"].as_array().unwrap()[..], rows[1..3]);

    srv.get("/v1/export").expect_error_code(401, "unauthorized");
    srv.get_auth("/v1/export", &bearer(READER))
        .expect_error_code(403, "forbidden");
    srv.get_auth("/v1/export", &bearer("wrong"))
        .expect_error_code(403, "forbidden");
    let path = "/v1/export";
    srv.get_auth(path, &p.sign_request(&srv.request_to(), "GET", path))
        .expect_error_code(403, "forbidden");
}

// ---------------------------------------------------------------------------------------
// OpenAPI, /healthz, /metrics
// ---------------------------------------------------------------------------------------

#[test]
fn openapi_lists_exactly_the_routes_and_every_route_is_live() {
    let srv = Server::in_process(&[]);
    let r = srv.get("/v1/openapi.json");
    r.expect(200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/json"));
    assert_eq!(r.body, consentlog::server::openapi_json());
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3."));
    const METHODS: [&str; 4] = ["get", "post", "put", "delete"];
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "post", "put", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    assert_eq!(documented.len(), 21, "{documented:?}");

    // Every documented route is served, and a documented path has no other method: the
    // router serves exactly the documented routes (both are built from one list).
    let subject = Person::on(CTL, PUR).hex();
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let url = srv.u(&path.replace("{subject}", &subject));
        for method in METHODS {
            let m = method.to_uppercase();
            let body = (m == "POST" || m == "PUT").then_some(&b"{}"[..]);
            let r = send(&srv.agent, &m, &url, None, body);
            if documented.contains(&(method.to_string(), path.clone())) {
                // The route's own 404 (nothing cosigned yet) names itself.
                let own_404 = r.status == 404 && r.body.contains("not_cosigned");
                assert!(
                    own_404 || (r.status != 404 && r.status != 405),
                    "{m} {path} is not served: {r:#?}"
                );
            } else {
                assert_eq!(
                    r.status, 405,
                    "{m} {path} is served but not documented: {r:#?}"
                );
            }
        }
    }

    let r = srv.get("/healthz");
    r.expect(200);
    assert_eq!(r.body, "ok\n");
}

#[test]
fn metrics_count_appends_duplicates_rejections_and_tree_size() {
    let srv = Server::in_process(&[]);
    let o = srv.origin.clone();
    let mut p = Person::on(CTL, PUR);
    let e0 = p.step(&o, true);
    srv.append(&e0);
    srv.post_event(&e0).expect(200);
    let mut q = Person::on(CTL, PUR);
    q.seq = 3;
    srv.post_event(&q.make(&o, true))
        .expect_error_code(409, "seq");
    srv.post("/v1/events", "{")
        .expect_error_code(400, "malformed");
    srv.post_event(&bad_signature(&p.make(&o, false)))
        .expect_error_code(422, "signature");
    srv.append(&p.step(&o, false));

    let r = srv.get("/metrics");
    r.expect(200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));
    let m = &r.body;
    assert!(m.contains("# TYPE consentlog_appends_total counter"), "{m}");
    assert_eq!(metric(m, "consentlog_appends_total"), Some(2.0), "{m}");
    assert_eq!(metric(m, "consentlog_duplicates_total"), Some(1.0), "{m}");
    for rule in ["seq", "malformed", "signature"] {
        let name = format!("consentlog_rejections_total{{rule=\"{rule}\"}}");
        assert_eq!(metric(m, &name), Some(1.0), "{name} in {m}");
    }
    // The genesis leaf, the first map leaf, two events (and any map leaf since).
    assert!(
        metric(m, "consentlog_tree_size").unwrap() >= (FIRST + 2) as f64,
        "{m}"
    );
    assert!(metric(m, "consentlog_checkpoint_size").is_some(), "{m}");
    assert!(
        metric(m, "consentlog_batch_events_count").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
}

// ---------------------------------------------------------------------------------------
// Error statuses
// ---------------------------------------------------------------------------------------

#[test]
fn every_error_status_has_a_json_body_and_a_rejected_event_changes_nothing() {
    let srv = Server::in_process(&[
        "--reader-token",
        READER,
        "--auditor-token",
        AUDITOR,
        "--body-limit",
        "2048",
    ]);
    let o = srv.origin.clone();
    let mut p = Person::on(CTL, PUR);
    let e0 = p.step(&o, true);
    let rc0 = srv.append(&e0);
    let heads_before = srv
        .get_auth(&p.heads_path(), &bearer(READER))
        .expect(200)
        .body
        .clone();
    let entries_before = srv.get("/v1/entries").expect(200).body.clone();
    let unchanged = |what: &str| {
        assert_eq!(srv.events(), 1, "after {what}");
        assert_eq!(
            srv.get_auth(&p.heads_path(), &bearer(READER)).body,
            heads_before,
            "heads after {what}"
        );
        assert_eq!(
            srv.get("/v1/entries").body,
            entries_before,
            "entries after {what}"
        );
    };

    // 400: malformed JSON, bad hex, unknown fields, bad decision, bad query numbers.
    let good: Value = serde_json::from_str(&event_json(&p.make(&o, false))).unwrap();
    let with = |k: &str, v: Value| {
        let mut x = good.clone();
        x[k] = v;
        x.to_string()
    };
    for (what, body) in [
        ("truncated JSON", "{\"version\":1,".to_string()),
        ("not JSON", "hello".to_string()),
        ("empty body", String::new()),
        ("bad hex subject", with("subject", json!("zz".repeat(32)))),
        (
            "uppercase hex",
            with("subject", json!(p.hex().to_uppercase())),
        ),
        ("short signature", with("signature", json!("ab"))),
        ("odd hex prev", with("prev", json!("abc"))),
        ("unknown field", with("extra", json!(1))),
        ("seq as string", with("seq", json!("1"))),
    ] {
        let r = srv.post("/v1/events", &body);
        assert_eq!(r.expect_error(400), "malformed", "{what}: {r:#?}");
        unchanged(what);
    }
    srv.get("/v1/entries?start=one")
        .expect_error_code(400, "bad_request");
    srv.get("/v1/proofs/inclusion?index=18446744073709551616")
        .expect_error_code(400, "bad_request");

    // 401 and 403.
    srv.get(&p.consent_path(None))
        .expect_error_code(401, "unauthorized");
    srv.get_auth("/v1/export", &bearer(READER))
        .expect_error_code(403, "forbidden");

    // 404: unknown paths, any method.
    srv.get("/v1/nothing-here")
        .expect_error_code(404, "not_found");
    srv.post("/v2/events", "{}")
        .expect_error_code(404, "not_found");
    srv.get("/v1").expect_error_code(404, "not_found");

    // 409: seq and prev conflicts.
    let mut skip = Person::with_key(p.key.clone(), CTL, PUR);
    skip.seq = 2;
    skip.prev = Some(e0.event_hash());
    srv.post_event(&skip.make(&o, false))
        .expect_error_code(409, "seq");
    unchanged("a seq gap");
    let mut again = Person::with_key(p.key.clone(), CTL, PUR);
    again.seq = 0;
    srv.post_event(&again.make(&o, false))
        .expect_error_code(409, "seq");
    unchanged("a second seq 0");
    let mut wrong_prev = Person::with_key(p.key.clone(), CTL, PUR);
    wrong_prev.seq = 1;
    wrong_prev.prev = Some([7u8; 32]);
    srv.post_event(&wrong_prev.make(&o, false))
        .expect_error_code(409, "prev");
    unchanged("a wrong prev");

    // 413: bodies over --body-limit, batches over 10,000 events.
    let big = format!("{}{}", event_json(&p.make(&o, false)), " ".repeat(4096));
    srv.post("/v1/events", &big)
        .expect_error_code(413, "too_large");
    srv.post("/v1/events/batch", &big)
        .expect_error_code(413, "too_large");
    srv.post_auth("/v1/proofs/consent", &big, &bearer(READER))
        .expect_error_code(413, "too_large");
    unchanged("oversized bodies");
    // More than 10,000 lines are refused by count, before any is parsed (10,001 signed events:
    // batch_of_10000_is_accepted_and_10001_is_413_in_both_forms). These 20 KB are over this
    // server's body limit, so on a second server with the default limit.
    let many = "x\n".repeat(10_001);
    let srv2 = Server::in_process(&[]);
    srv2.post("/v1/events/batch", &many)
        .expect_error_code(413, "too_large");
    assert_eq!(srv2.events(), 0);

    // 422: wrong log, bad signature, issued_at far off, expiry on an opt-out, bad names.
    let opt_out = p.event().log("someone-else.org/log").opt_in(false);
    srv.post_event(&opt_out.clone().sign())
        .expect_error_code(422, "log");
    srv.post_event(&bad_signature(&p.make(&o, false)))
        .expect_error_code(422, "signature");
    let opt_out = opt_out.log(&o);
    srv.post_event(&opt_out.clone().issued_at(now_ms() - 60 * 60 * 1000).sign())
        .expect_error_code(422, "issued_at");
    let expiring = opt_out
        .issued_at(now_ms())
        .expires_at(Some(now_ms() + 1000));
    srv.post_event(&expiring.sign())
        .expect_error_code(422, "expires_at");
    srv.post_event(&p.event().log(&o).controller("Example.com").sign())
        .expect_error_code(422, "controller");
    srv.post_event(&p.event().log(&o).version(1).sign())
        .expect_error_code(422, "version");
    let spelled: Value = serde_json::from_str(&event_json(&p.make(&o, true))).unwrap();
    let mut spelled = spelled;
    spelled["decision"] = json!("maybe");
    srv.post("/v1/events", &spelled.to_string())
        .expect_error_code(422, "decision");
    unchanged("422 rejections");
    srv.get_auth(&p.consent_path(Some(now_ms() + 3_600_000)), &bearer(READER))
        .expect_error_code(422, "invalid");

    // And the chain still goes on from the one accepted event.
    let rc1 = srv.append(&p.step(&o, false));
    assert_eq!(rc1.index, rc0.index + 1);
}

#[test]
fn wrong_method_answers_405_with_a_json_error() {
    let srv = Server::in_process(&[]);
    let r = send(&srv.agent, "GET", &srv.u("/v1/events"), None, None);
    r.expect_error(405);
    let r = send(&srv.agent, "DELETE", &srv.u("/v1/checkpoint"), None, None);
    r.expect_error(405);
}

#[test]
fn request_timeout_answers_a_json_error() {
    // No checkpoint for 10 s, so ?wait=checkpoint outlives the 300 ms request timeout.
    let srv = Server::in_process(&[
        "--request-timeout",
        "300",
        "--checkpoint-interval",
        "10000",
        "--checkpoint-max-gap",
        "10000",
    ]);
    let mut p = Person::on(CTL, PUR);
    let ev = p.step(&srv.origin, true);
    let r = srv.post("/v1/events?wait=checkpoint", &event_json(&ev));
    assert!(r.header("retry-after").is_some(), "{r:#?}");
    r.expect_error(503);
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_appends_nothing() {
    let srv = Server::in_process(&["--queue", "1", "--batch-wait-ms", "200", "--batch-max", "1"]);
    let origin = srv.origin.clone();
    let url = srv.url.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let first_503: Arc<Mutex<Option<Resp>>> = Arc::new(Mutex::new(None));
    let deadline = Instant::now() + Duration::from_secs(15);
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (stop, accepted, first_503) = (stop.clone(), accepted.clone(), first_503.clone());
            let (origin, url) = (origin.clone(), url.clone());
            std::thread::spawn(move || {
                let a = agent();
                let mut p = Person::on(CTL, PUR);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let ev = p.make(&origin, true);
                    let r = post_event(&a, &url, &ev);
                    match r.status {
                        201 => {
                            p.commit(&ev);
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        503 => {
                            stop.store(true, Ordering::Relaxed);
                            first_503.lock().unwrap().get_or_insert(r);
                        }
                        _ => panic!("unexpected answer {r:#?}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let r = first_503
        .lock()
        .unwrap()
        .take()
        .expect("no request got 503 within 15 s");
    r.expect_error_code(503, "overloaded");
    let ra: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!(ra >= 1);
    // Refused submissions appended nothing: the tree holds exactly the 201s.
    assert_eq!(srv.events(), accepted.load(Ordering::Relaxed) as u64);
    let m = srv.get("/metrics").body;
    assert!(
        metric(&m, "consentlog_overloaded_total").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
}

// ---------------------------------------------------------------------------------------
// Concurrency, graceful shutdown, remote audit
// ---------------------------------------------------------------------------------------

#[test]
fn concurrent_clients_get_distinct_contiguous_receipts_and_the_log_audits() {
    const CLIENTS: usize = 32;
    const PER_CLIENT: usize = 500;
    const PEOPLE: usize = 5;
    let mut srv = Server::start(&["--checkpoint-interval", "250"]);
    let (origin, url, log_key) = (srv.origin.clone(), srv.url.clone(), srv.log_key);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (origin, url, barrier) = (origin.clone(), url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let a = agent();
                let target = format!("{url}/v1/events");
                let mut people: Vec<Person> = (0..PEOPLE).map(|_| Person::on(CTL, PUR)).collect();
                let mut out = Vec::with_capacity(PER_CLIENT);
                barrier.wait();
                for i in 0..PER_CLIENT {
                    let p = &mut people[i % PEOPLE];
                    let ev = p.make(&origin, (i / PEOPLE).is_multiple_of(2));
                    let body = event_json(&ev);
                    let r = send(&a, "POST", &target, None, Some(body.as_bytes()));
                    assert_eq!(r.status, 201, "event {i}: {r:#?}");
                    let rc = receipt(&r.json());
                    assert!(rc.check(&log_key).is_ok(), "receipt signature of event {i}");
                    p.commit(&ev);
                    out.push(rc);
                }
                out
            })
        })
        .collect();
    let receipts: Vec<Receipt> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect();
    let took = started.elapsed();
    eprintln!(
        "{} single-event POSTs from {CLIENTS} clients took {took:?} ({:.0}/s)",
        receipts.len(),
        receipts.len() as f64 / took.as_secs_f64()
    );
    let total = (CLIENTS * PER_CLIENT) as u64;
    assert_eq!(receipts.len() as u64, total);
    let distinct: HashSet<(u64, [u8; 32])> = receipts
        .iter()
        .map(|r| (r.index, r.leaf.leaf_hash()))
        .collect();
    assert_eq!(distinct.len() as u64, total, "receipts are distinct");
    let mut idx: Vec<u64> = receipts.iter().map(|r| r.index).collect();
    idx.sort_unstable();
    idx.dedup();
    assert_eq!(idx.len() as u64, total, "indices are distinct");
    assert!(
        idx[0] >= FIRST,
        "events come after the genesis and first map leaf"
    );
    assert_eq!(srv.events(), total);

    // The public leaves match the receipts: every event leaf has one, and the others are the
    // genesis and map leaves.
    let by_index: HashMap<u64, [u8; 32]> = receipts
        .iter()
        .map(|r| (r.index, r.leaf.leaf_hash()))
        .collect();
    let last = *idx.last().unwrap();
    let (mut next, mut events) = (0, 0u64);
    while next <= last {
        let v = srv
            .get(&format!("/v1/entries?start={next}&end={}", last + 1))
            .expect(200)
            .json();
        let rows = v["entries"].as_array().unwrap();
        assert!(!rows.is_empty() && rows.len() <= 10_000);
        for row in rows {
            let i = row["index"].as_u64().unwrap();
            let bytes = from_hex(row["entry"].as_str().unwrap()).unwrap();
            match Leaf::decode(&bytes).unwrap() {
                Leaf::Event(_) => {
                    assert_eq!(jh(&row["leaf_hash"]), by_index[&i], "leaf {i}");
                    events += 1;
                }
                other => assert!(!by_index.contains_key(&i), "leaf {i} is {other:?}"),
            }
        }
        next = v["end"].as_u64().unwrap();
    }
    assert_eq!(events, total);

    // A remote audit of the live server, then a local one of the stopped server's directory.
    srv.wait_covered(last + 1);
    let t = Instant::now();
    let r = run(&["audit", "--url", &url, "--log-key", &srv.log_key_hex]);
    r.assert_code(0);
    assert!(r.stdout.contains(&format!("({total} events,")), "{r:#?}");
    eprintln!("remote audit of {total} entries took {:?}", t.elapsed());
    assert!(srv.stop().success(), "exit status; stderr {}", srv.stderr());
    let dir = srv.dir.clone();
    let r = run(&["audit", "--dir", s(&dir), "--log-key", &srv.log_key_hex]);
    r.assert_code(0);
    assert!(r.stdout.contains("audit OK"), "{r:#?}");
}

#[test]
fn sigterm_while_clients_append_exits_0_and_keeps_every_receipt() {
    let mut srv = Server::start(&["--checkpoint-interval", "50"]);
    let (origin, url, log_key) = (srv.origin.clone(), srv.url.clone(), srv.log_key);
    let count = Arc::new(AtomicUsize::new(0));
    let odd = Arc::new(Mutex::new(Vec::<String>::new()));
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let (origin, url, count, odd) =
                (origin.clone(), url.clone(), count.clone(), odd.clone());
            std::thread::spawn(move || {
                let a = agent();
                // Two of the clients wait for checkpoints.
                let target = if n < 2 {
                    format!("{url}/v1/events?wait=checkpoint")
                } else {
                    format!("{url}/v1/events")
                };
                let mut p = Person::on(CTL, PUR);
                let mut got = Vec::new();
                loop {
                    let ev = p.make(&origin, got.len() % 2 == 0);
                    let body = event_json(&ev);
                    match try_send(&a, "POST", &target, None, Some(body.as_bytes())) {
                        Ok(r) if r.status == 201 => {
                            let v = r.json();
                            let rc = receipt(if n < 2 { &v["receipt"] } else { &v });
                            assert!(rc.check(&log_key).is_ok());
                            p.commit(&ev);
                            got.push(rc);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        // Refused while shutting down: fine, and the end of this client.
                        Ok(r) if r.status == 503 => {
                            assert!(r.header("retry-after").is_some(), "{r:#?}");
                            break;
                        }
                        Ok(r) => {
                            odd.lock().unwrap().push(format!("{r:#?}"));
                            break;
                        }
                        Err(_) => break, // the server stopped listening
                    }
                }
                got
            })
        })
        .collect();
    // Let the clients get going, then stop the server under load.
    poll(Duration::from_secs(10), || {
        (count.load(Ordering::Relaxed) >= 1500).then_some(())
    });
    let at_term = count.load(Ordering::Relaxed);
    srv.sigterm();
    let status = srv.wait_exit(Duration::from_secs(30));
    let receipts: Vec<Receipt> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect();
    assert!(
        odd.lock().unwrap().is_empty(),
        "unexpected answers: {:?}",
        odd.lock().unwrap()
    );
    assert!(at_term > 0, "no client got a receipt before SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status:?}; stderr:\n{}",
        srv.stderr()
    );

    // Reopen: every receipt handed out is there, and the final checkpoint covers all.
    let l = Ledger::open(&srv.dir).expect("reopen the ledger");
    let size = l.size();
    assert!(size >= receipts.len() as u64);
    let mut seen = HashSet::new();
    for rc in &receipts {
        assert!(seen.insert(rc.index), "index {} handed out twice", rc.index);
        let e = l
            .event_leaf(rc.index)
            .unwrap()
            .unwrap_or_else(|| panic!("leaf {} is missing after shutdown", rc.index));
        assert_eq!(e.leaf_hash(), rc.leaf.leaf_hash(), "entry {}", rc.index);
        assert_eq!(e.integrated_at, rc.leaf.integrated_at, "entry {}", rc.index);
    }
    let notes = l.checkpoints().unwrap();
    let last = note::open(notes.last().unwrap(), &srv.log_key).unwrap();
    assert_eq!(last.size, size, "the final checkpoint covers every entry");
    assert_eq!(l.latest().checkpoint.size, size);
    let out = srv.stdout();
    assert!(
        out.iter()
            .any(|l| l == &format!("stopped: final checkpoint covers {size} leaves")),
        "{out:?}"
    );
    eprintln!(
        "shutdown: {} receipts ({} before SIGTERM), {size} entries",
        receipts.len(),
        at_term
    );
    drop(l);
    let r = run(&["audit", "--dir", s(&srv.dir), "--log-key", &srv.log_key_hex]);
    r.assert_code(0);

    // A restart serves the same log, and appends go on after it.
    let again = Server::start_in(&srv.dir, &[]);
    assert_eq!(again.log_key_hex, srv.log_key_hex);
    assert_eq!(again.tree_size(), size);
    assert_eq!(again.checkpoint().size, size);
    let mut p = Person::on(CTL, PUR);
    assert_eq!(again.append(&p.step(&origin, true)).index, size);
}

#[test]
fn remote_audit_of_a_live_server_with_and_without_an_auditor_token() {
    let srv = Server::in_process(&[
        "--reader-token",
        READER,
        "--auditor-token",
        AUDITOR,
        "--checkpoint-interval",
        "20",
    ]);
    let o = srv.origin.clone();
    let mut people: Vec<Person> = (0..6).map(|_| Person::on(CTL, PUR)).collect();
    let mut lines = Vec::new();
    for round in 0..5 {
        for p in people.iter_mut() {
            lines.push(event_json(&p.step(&o, round % 2 == 0)));
        }
    }
    let v = srv
        .post("/v1/events/batch", &lines.join("\n"))
        .expect(200)
        .json();
    assert!(v["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["status"] == 201));
    let mut last = 0;
    for x in v["results"].as_array().unwrap() {
        last = last.max(x["receipt"]["index"].as_u64().unwrap());
    }
    srv.wait_covered(last + 1);
    for p in people.iter_mut() {
        last = srv.append(&p.step(&o, true)).index;
    }
    srv.wait_covered(last + 1);

    // `consentlog audit --url` of this server, with this log key and `extra` arguments.
    let audit = |key: &str, extra: &[&str]| {
        run(&[&["audit", "--url", &srv.url, "--log-key", key][..], extra].concat())
    };
    let key = &srv.log_key_hex;
    let r = audit(key, &[]);
    r.assert_code(0);
    assert!(r.stdout.contains("(36 events,"), "{r:#?}");
    assert!(r.stdout.contains("0 openings checked"), "{r:#?}");
    assert!(r.stdout.contains("audit OK"), "{r:#?}");

    let r = audit(key, &["--token", AUDITOR]);
    r.assert_code(0);
    assert!(r.stdout.contains("(36 events,"), "{r:#?}");
    assert!(r.stdout.contains("36 openings checked"), "{r:#?}");

    // Another log key, or a reader token where an auditor token is needed: failure.
    let wrong = to_hex(consentlog::keyfile::generate().verifying_key().as_bytes());
    let r = audit(&wrong, &[]);
    assert_ne!(r.code, 0, "{r:#?}");
    let r = audit(key, &["--token", READER]);
    r.assert_fails_with("403");
}

// ---------------------------------------------------------------------------------------
// The CLI as a client
// ---------------------------------------------------------------------------------------

#[test]
fn cli_grants_revokes_proves_and_reads_history_over_http() {
    let srv = Server::in_process(&["--reader-token", READER, "--checkpoint-interval", "50"]);
    let key_file = srv.tmp.join("alice.key");
    let r = run(&["keygen", "--out", s(&key_file)]);
    r.assert_code(0);
    let subject = r.stdout.trim().to_string();
    assert_eq!(subject.len(), 64, "{r:#?}");
    let base = ["--controller", CTL, "--purpose", PUR];

    let r = run(&[
        &[
            "grant",
            "--server",
            &srv.url,
            "--log-key",
            &srv.log_key_hex,
            "--key",
            s(&key_file),
        ][..],
        &base[..],
    ]
    .concat());
    r.assert_code(0);
    let grant = receipt(&serde_json::from_str(r.stdout.trim()).expect("receipt JSON"));
    assert!(grant.check(&srv.log_key).is_ok());
    assert!(grant.index >= FIRST);
    // T: a millisecond after the grant, the revocation integrated after T.
    let t = grant.leaf.integrated_at + 1;
    wall_past(t);
    let r = run(&[
        &[
            "revoke",
            "--server",
            &srv.url,
            "--log-key",
            &srv.log_key_hex,
            "--key",
            s(&key_file),
        ][..],
        &base[..],
    ]
    .concat());
    r.assert_code(0);
    let revoke = receipt(&serde_json::from_str(r.stdout.trim()).unwrap());
    assert!(revoke.check(&srv.log_key).is_ok());
    assert!(revoke.index > grant.index);
    assert!(grant.leaf.integrated_at <= t && t < revoke.leaf.integrated_at);

    let at_t = srv.tmp.join("at-t.json");
    let now = srv.tmp.join("now.json");
    let ts = t.to_string();
    let prove = |out: &std::path::Path, at: Option<&str>| {
        let mut args = vec![
            "prove",
            "--server",
            &srv.url,
            "--token",
            READER,
            "--subject",
            &subject,
        ];
        args.extend(base);
        if let Some(at) = at {
            args.extend(["--at", at]);
        }
        args.extend(["--out", s(out)]);
        run(&args)
    };
    prove(&at_t, Some(&ts)).expect_code(0);
    prove(&now, None).expect_code(0);
    let key = &srv.log_key_hex;
    run(&["verify", "--any-question", "--log-key", key, s(&at_t)]).expect_code(0);
    run(&[
        "verify",
        "--log-key",
        key,
        "--subject",
        &subject,
        "--controller",
        CTL,
        "--purpose",
        PUR,
        "--at",
        &ts,
        s(&at_t),
    ])
    .expect_code(0);
    run(&["verify", "--any-question", "--log-key", key, s(&now)]).expect_code(1);
    // The proof files are what the server answered: they verify in-process too.
    let p: ConsentProof = serde_json::from_str(&std::fs::read_to_string(&at_t).unwrap()).unwrap();
    assert_eq!(
        proof::check(&p, &srv.log_key, &Question::default())
            .unwrap()
            .state,
        State::OptedIn
    );
    // Without the reader token the server refuses.
    let r = run(&[
        &["prove", "--server", &srv.url, "--subject", &subject][..],
        &base[..],
    ]
    .concat());
    r.assert_code(1);
    assert!(r.stderr.contains("401"), "{r:#?}");

    // History through a signed request, then verify-history.
    let r = run(&["history", "--server", &srv.url, "--key", s(&key_file)]);
    r.assert_code(0);
    let hist = srv.tmp.join("history.json");
    std::fs::write(&hist, &r.stdout).unwrap();
    run(&[
        "verify-history",
        "--log-key",
        key,
        "--subject",
        &subject,
        s(&hist),
    ])
    .expect_code(0);
    let h: History = serde_json::from_str(&r.stdout).unwrap();
    let c = history::check(&h, &srv.log_key, Some(&h32(&subject))).unwrap();
    assert_eq!(c.chains.len(), 1);
    assert_eq!(c.chains[0].events.len(), 2);
}

/// Issue 13, item 2, through `consentlog serve`: short or odd tokens and a tokens file that
/// others may read are refused before anything is served, naming the rule.
#[test]
fn serve_refuses_weak_tokens_and_a_readable_tokens_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    let r = run(&["serve", "--dir", s(&dir), "--reader-token", "TRAINING"]);
    r.assert_fails_with("--reader-token: a token must be 16-256 characters");
    let (_t, tf) = tokens_file("abc#defghijklmnopqrs example.com\n");
    let r = run(&["serve", "--dir", s(&dir), "--tokens-file", &tf]);
    r.assert_fails_with("a token may hold only");
    let (_t, tf) = tokens_file("abcdefghijklmnopqrs example.com\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = run(&["serve", "--dir", s(&dir), "--tokens-file", &tf]);
    r.assert_fails_with("chmod 600");
}
