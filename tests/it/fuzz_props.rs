//! Bounded property-based versions of the cargo-fuzz targets in fuzz/ (see fuzz/README.md):
//! random bytes and text, and mutations of valid events, leaves (genesis, event, map), notes,
//! proofs and their anchors, histories, exports and request headers built from a real ledger
//! in this test. The properties are those of the fuzz targets (support/fuzz.rs): no panic;
//! strict decoders accept only what re-encodes identically; single-bit changes are refused or
//! decode to something else that does not verify; a mutated proof verifies with the original
//! state or not at all; `check_anchor` accepts only the log's own leaves; a mutated history or
//! note shows the original data or fails; a mutated export does not audit clean unless it
//! shows the original data.
//!
//! Case counts are small so the file runs in a few seconds in release; the fuzz targets run
//! the same checks for as long as one likes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::support::fuzz::*;
use crate::support::ledger::{append_signed, TestLedger};
use crate::support::Person;
use consentlog::core::event::{EventJson, SignedEvent};
use consentlog::core::export::{Header, Writer, EXPORT_MAGIC};
use consentlog::core::hash::to_hex;
use consentlog::core::leaf::Leaf;
use consentlog::core::proof::State;
use consentlog::ledger::Snapshot;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

const ORIGIN: &str = "fuzz.example/log";

/// Appends the next event of (key, controller, purpose); returns it and its integrated_at.
fn append(
    l: &TestLedger,
    key: &SigningKey,
    controller: &str,
    purpose: &str,
    opt_in: bool,
    expires_in: Option<u64>,
) -> (SignedEvent, u64) {
    let who = Person::with_key(key.clone(), controller, purpose);
    let head = l
        .head(&who.state_key(l, controller, purpose))
        .expect("head");
    let issued_at = l.now_ms();
    let ev = who
        .event()
        .log(ORIGIN)
        .opt_in(opt_in)
        .head(head)
        .issued_at(issued_at)
        .expires_at(expires_in.map(|d| issued_at + d))
        .notice(opt_in.then(|| *blake3::hash(b"notice").as_bytes()))
        .sign();
    let a = append_signed(l, ev);
    (a.event, a.receipt.leaf.integrated_at)
}

/// Builds the fixture from a real ledger: two people, chains with every kind of state, some
/// noise, map leaves and checkpoints (the ledger's first, one after two events, the last),
/// proofs under the last checkpoint and under an older one, a history, and an export with
/// openings.
fn build_fixture() -> Fixture {
    let l = TestLedger::with_origin(ORIGIN);
    let alice = SigningKey::from_bytes(&[7; 32]);
    let bob = SigningKey::from_bytes(&[9; 32]);
    let (ai, tr) = ("example.com", "ai-training");
    let genesis_time = l.genesis().genesis_time;
    // Room between the genesis and the first event, for a question before it.
    l.advance(10);
    let (_, t0) = append(&l, &alice, ai, tr, true, None);
    let (_, t1) = append(&l, &alice, ai, tr, false, None);
    l.checkpoint();
    let older_snap = l.latest();
    let older: &Snapshot = &older_snap;
    l.advance(3);
    let (_, _t2) = append(&l, &alice, ai, tr, true, None);
    append(&l, &alice, ai, "ads", true, Some(1));
    append(&l, &alice, "other.org", "analytics", false, None);
    append(&l, &bob, ai, tr, true, None);
    for i in 0..4u8 {
        let noise = SigningKey::from_bytes(&[100 + i; 32]);
        append(&l, &noise, "noise.example", &format!("p-{i}"), true, None);
    }
    let cp = l.checkpoint();
    let last_snap = l.latest();
    let snap: &Snapshot = &last_snap;
    assert_eq!(snap.checkpoint.note, cp.note);
    assert!(older.map_index < snap.map_index);
    let now = snap.map_leaf.time;
    let then = older.map_leaf.time;

    let a = alice.verifying_key().to_bytes();
    let b = bob.verifying_key().to_bytes();
    type Case<'a> = (
        &'a str,
        [u8; 32],
        &'a str,
        &'a str,
        u64,
        State,
        &'a Snapshot,
    );
    let cases: Vec<Case> = vec![
        (
            "in_force_with_successor",
            a,
            ai,
            tr,
            t0,
            State::OptedIn,
            snap,
        ),
        (
            "opted_out_with_successor",
            a,
            ai,
            tr,
            t1,
            State::OptedOut,
            snap,
        ),
        ("opted_in_latest", a, ai, tr, now, State::OptedIn, snap),
        ("before_first", a, ai, tr, t0 - 1, State::NoRecord, snap),
        ("at_genesis", a, ai, tr, genesis_time, State::NoRecord, snap),
        ("expired", a, ai, "ads", now, State::Expired, snap),
        (
            "opted_out_single",
            a,
            "other.org",
            "analytics",
            now,
            State::OptedOut,
            snap,
        ),
        (
            "absent",
            a,
            "nobody.example",
            "x",
            now,
            State::NoRecord,
            snap,
        ),
        ("other_subject", b, ai, tr, now, State::OptedIn, snap),
        // Under the older checkpoint and map leaf: the head there, and a key absent there
        // that has events later.
        ("older_map_leaf", a, ai, tr, then, State::OptedOut, older),
        (
            "absent_at_older_map_leaf",
            a,
            ai,
            "ads",
            then,
            State::NoRecord,
            older,
        ),
    ];
    let proofs = cases
        .into_iter()
        .map(|(name, s, c, p, at, want, snap)| {
            let proof = l.prove_consent_in(snap, &s, c, p, at).expect("prove");
            assert_eq!(proof.state, want.as_str(), "fixture case {name}");
            ProofCase {
                name: name.into(),
                proof,
            }
        })
        .collect();
    let history = l.history_in(snap, &a).expect("history");

    let (mut events, mut event_json, mut leaves, mut openings) = (vec![], vec![], vec![], vec![]);
    let mut items = vec![];
    for i in 0..cp.size {
        let leaf = l.leaf(i).expect("leaf").expect("leaf");
        leaves.push(to_hex(&leaf.to_bytes()));
        let opening = match leaf {
            Leaf::Event(_) => {
                let o = l.opening(i).expect("opening").expect("opening");
                events.push(to_hex(o.event.as_bytes()));
                event_json.push(serde_json::to_string(&EventJson::from(&o.event)).expect("json"));
                openings.push(to_hex(&o.to_bytes()));
                Some(o)
            }
            _ => None,
        };
        items.push((leaf, opening));
    }
    let notes = l.checkpoints().expect("checkpoints");
    assert_eq!(notes.last(), Some(&cp.note));
    let header = Header {
        origin: ORIGIN.into(),
        log_key: l.public_key().to_bytes(),
        openings: true,
        checkpoints: notes.clone(),
        leaves: cp.size,
    };
    let mut w = Writer::new(Vec::new(), &header).expect("export");
    let mut event_no = 0;
    for (leaf, o) in &items {
        // One erased opening (the second event's), as after an erasure request.
        let erased = o.is_some() && {
            event_no += 1;
            event_no == 2
        };
        let o = o.as_ref().filter(|_| !erased);
        w.leaf(&leaf.to_bytes(), o).expect("export");
    }
    let export = w.finish().expect("export");

    let request = RequestCase::sign(&alice, ORIGIN, now);
    let log_key = to_hex(&l.public_key().to_bytes());
    drop(l);
    Fixture {
        origin: ORIGIN.into(),
        log_key,
        notes,
        events,
        event_json,
        leaves,
        openings,
        proofs,
        history,
        export: to_hex(&export),
        request,
    }
}

/// The fixture of a ledger built in this run (the properties use it, so they test today's
/// proof building as well as today's verification).
fn fresh() -> &'static Loaded {
    static L: OnceLock<Loaded> = OnceLock::new();
    L.get_or_init(|| Loaded::from_fixture(build_fixture()))
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn witness() -> &'static WitnessFixture {
    static W: OnceLock<WitnessFixture> = OnceLock::new();
    W.get_or_init(|| WitnessFixture::new(fresh()))
}

/// The witnessing fixtures are genuine (so the properties on their mutations are not vacuous):
/// each add-checkpoint body parses and re-encodes, each answer is kept, each `witnessed` JSON
/// meets the policy; and every single-bit change of an answer or of a cosigned note is refused.
#[test]
fn witness_fixtures_are_genuine_and_every_single_bit_change_is_refused() {
    use consentlog::core::add_checkpoint::check_response;
    use consentlog::core::witnessed::{check_witnessed, WitnessedJson};
    let l = fresh();
    let w = witness();
    let signed = l.checkpoints.last().unwrap();
    let n = l.notes.len();
    assert!(n >= 2, "the fixture has several checkpoints");
    for i in 0..n {
        let body = fixture_add_checkpoint(l, i.checked_sub(1), i);
        consentlog::tlog_witness::request::parse(&body).expect("a genuine body parses");
        check_add_checkpoint_body(&body);
        let kept = check_response(&l.notes[i], w.answers[i].as_bytes(), &w.verifier())
            .expect("the genuine answer is kept");
        assert_eq!(kept.len(), 1);
        let j: WitnessedJson = serde_json::from_str(&fixture_witnessed(l, w, i)).unwrap();
        let v = check_witnessed(
            &w.policy,
            &l.key,
            signed,
            WitnessFixture::TIME * 1000,
            Some(&j),
            WitnessFixture::TIME + 10,
        )
        .expect("the genuine cosigned checkpoint meets the policy");
        assert_eq!(v.size, l.checkpoints[i].size);
    }
    let answer = w.answers[n - 1].as_bytes();
    for bit in 0..answer.len() * 8 {
        let flipped = flip(answer, bit);
        assert!(
            check_response(&l.notes[n - 1], &flipped, &w.verifier()).is_err(),
            "bit {bit} of the answer"
        );
    }
    let cosigned = w.cosigned[n - 1].as_bytes();
    for bit in 0..cosigned.len() * 8 {
        let j = WitnessedJson {
            note: String::from_utf8_lossy(&flip(cosigned, bit)).into_owned(),
            consistency: Vec::new(),
        };
        let r = check_witnessed(
            &w.policy,
            &l.key,
            signed,
            WitnessFixture::TIME * 1000,
            Some(&j),
            WitnessFixture::TIME + 10,
        );
        assert!(r.is_err(), "bit {bit} of the cosigned note");
    }
}

/// Writes the seed corpora of the targets added after the fixture (`receipt`, `config_files`,
/// `witness_bodies`) from the stored fixture, without touching it: `CONSENTLOG_WRITE_SEEDS=1
/// cargo test --release --test it -- --ignored fuzz_props::write_seeds_of_later_targets`.
/// `regenerate_fuzz_fixtures` calls it too.
#[test]
#[ignore = "writes fuzz/seeds of the later targets; run by hand"]
fn write_seeds_of_later_targets() {
    if std::env::var("CONSENTLOG_WRITE_SEEDS").as_deref() != Ok("1") {
        eprintln!("set CONSENTLOG_WRITE_SEEDS=1 to write fuzz/seeds");
        return;
    }
    write_later_seeds(&Loaded::stored());
}

fn write_later_seeds(l: &Loaded) {
    let seeds = fuzz_dir().join("seeds");
    let write = |target: &str, name: &str, mode: u8, data: &[u8]| {
        let d = seeds.join(target);
        std::fs::create_dir_all(&d).expect("mkdir");
        let mut v = vec![mode];
        v.extend_from_slice(data);
        std::fs::write(d.join(name), v).expect("write seed");
    };
    // receipt: each genuine receipt's text (mode 0).
    for r in fixture_receipts(l) {
        write(
            "receipt",
            &format!("receipt-{}", r.index),
            0,
            r.to_text().as_bytes(),
        );
    }
    // config_files: a tokens file (mode 0), policy files (mode 1), evidence of every kind built
    // from the fixture's signed checkpoints and proven leaves (mode 2; they are well formed and
    // included, so the checker goes past parsing and inclusion).
    let tokens = "# readers: token, then the controllers it may read (none: all)
        reader-token-0123456789abcdef
        audit-token-ABCDEFGHIJKLMNOP example.com training.example
";
    write("config_files", "tokens", 0, tokens.as_bytes());
    let w = WitnessFixture::new(l);
    let log =
        consentlog::core::vkey::Vkey::new(&l.origin, consentlog::core::vkey::TYPE_ED25519, l.key)
            .unwrap();
    let policy = format!(
        "log {} https://log.example/\nwitness w {} https://w.example/\nwitness x {}\n\
         group plain 1 w x\ngroup replay-w 1 w\ngroup all-of all plain replay-w\nquorum all-of\n",
        log.to_text(),
        w.vkey.to_text(),
        w.vkey.to_text().replace("fuzz", "other"),
    );
    write("config_files", "policy", 1, policy.as_bytes());
    write(
        "config_files",
        "policy-none",
        1,
        format!("log {}\nquorum none\n", log.to_text()).as_bytes(),
    );
    let (_, p, _) = l
        .proofs
        .iter()
        .find(|(_, p, _)| p.map.is_some())
        .expect("a proof with a map proof");
    let proven = |i: usize| {
        let r = &fixture_receipts(l);
        let tree_leaf = |i: usize| -> serde_json::Value {
            match r.iter().find(|r| r.index == i as u64) {
                Some(r) => serde_json::json!({
                    "index": i,
                    "leaf": to_hex(&l.leaves[i]),
                    "inclusion": r.inclusion.iter().map(|h| to_hex(h)).collect::<Vec<_>>(),
                }),
                None => serde_json::to_value(&p.map_leaf).unwrap(),
            }
        };
        tree_leaf(i)
    };
    let events: Vec<usize> = fixture_receipts(l)
        .iter()
        .map(|r| r.index as usize)
        .collect();
    let cp = l.note.clone();
    let first = l.notes[0].clone();
    let map = serde_json::to_value(&p.map).unwrap();
    let map_leaf = serde_json::to_value(&p.map_leaf).unwrap();
    let claims = [
        serde_json::json!({"kind": "same_size_different_roots", "first": first, "second": cp}),
        serde_json::json!({"kind": "different_leaves", "first": first, "second": cp,
            "first_leaf": proven(events[0]), "second_leaf": proven(events[1])}),
        serde_json::json!({"kind": "not_a_prefix", "first": first, "second": cp,
            "prefix_root": to_hex(&[7u8; 32]), "consistency": []}),
        serde_json::json!({"kind": "stale_map_value", "checkpoint": cp,
            "event": proven(events[0]), "map_leaf": map_leaf, "map": map}),
        serde_json::json!({"kind": "wrong_map_value", "checkpoint": cp, "map_leaf": map_leaf,
            "key": to_hex(&[7u8; 32]), "map": map, "named": proven(events[0])}),
        serde_json::json!({"kind": "time_violation", "checkpoint": cp,
            "earlier": proven(events[1]), "later": proven(events[0])}),
        serde_json::json!({"kind": "chain_fork", "checkpoint": cp,
            "first": proven(events[0]), "second": proven(events[1])}),
        serde_json::json!({"kind": "map_root_mismatch", "checkpoint": cp,
            "leaves": l.leaves.iter().take(events[1] + 1).map(|b| to_hex(b)).collect::<Vec<_>>(),
            "consistency": []}),
    ];
    for c in claims {
        let kind = c["kind"].as_str().unwrap().to_string();
        let e = serde_json::json!({
            "format": consentlog::core::evidence::EVIDENCE_FORMAT,
            "log_key": to_hex(l.key.as_bytes()),
            "claim": c,
        });
        let text = serde_json::to_string_pretty(&e).unwrap();
        assert!(
            serde_json::from_str::<consentlog::core::evidence::Evidence>(&text).is_ok(),
            "the {kind} seed parses"
        );
        write(
            "config_files",
            &format!("evidence-{kind}"),
            2,
            text.as_bytes(),
        );
    }
    // witness_bodies: add-checkpoint bodies (mode 0), a 409 size (mode 2), answers (mode 3,
    // after the note's index), `witnessed` JSON (mode 5).
    for i in 0..l.notes.len() {
        let body = fixture_add_checkpoint(l, i.checked_sub(1), i);
        write("witness_bodies", &format!("add-checkpoint-{i}"), 0, &body);
        let mut answer = vec![i as u8];
        answer.extend_from_slice(w.answers[i].as_bytes());
        write("witness_bodies", &format!("answer-{i}"), 3, &answer);
        write(
            "witness_bodies",
            &format!("witnessed-{i}"),
            5,
            fixture_witnessed(l, &w, i).as_bytes(),
        );
    }
    write("witness_bodies", "size", 2, b"1234\n");
}

/// The stored fixture still verifies with today's code, and covers every state, every kind of
/// leaf and two anchors.
#[test]
fn stored_fixture_verifies() {
    let l = Loaded::stored();
    check_coverage(&l);
    let x = read_export(&l.export).expect("export reads");
    check_export_bytes(&l.export, Some(&x));
}

fn check_coverage(l: &Loaded) {
    for s in [
        State::OptedIn,
        State::Expired,
        State::OptedOut,
        State::NoRecord,
    ] {
        assert!(l.proofs.iter().any(|(_, _, st)| *st == s), "no {s:?} case");
    }
    assert!(l.proofs.iter().any(|(_, p, _)| p.events.len() == 2));
    assert!(l.proofs.iter().any(|(_, p, _)| p.events.is_empty()));
    assert!(
        l.pool.anchors.len() >= 2,
        "proofs under two checkpoints and map leaves"
    );
    let kinds: Vec<u8> = l.leaves.iter().map(|b| b[0]).collect();
    for k in [0u8, 1, 2] {
        assert!(kinds.contains(&k), "no leaf of kind {k}");
    }
    assert!(
        l.leaves.iter().any(|b| matches!(
            Leaf::decode(b),
            Ok(Leaf::Event(e)) if e.prev.is_some()
        )),
        "no event leaf with a prev"
    );
    let x = read_export(&l.export).expect("export reads");
    assert_eq!(x.items.len(), l.leaves.len());
    assert!(x
        .items
        .iter()
        .any(|(l, o)| o.is_none() && matches!(l, Leaf::Event(_))));
}

/// A fresh fixture verifies too (Loaded::from_fixture checks every part), and covers as much.
#[test]
fn fresh_fixture_verifies() {
    let l = fresh();
    assert_eq!(l.proofs.len(), l.fixture.proofs.len());
    check_coverage(l);
}

/// Every single-bit change of every leaf of the fixture is refused or decodes to another leaf.
#[test]
fn leaf_every_single_bit_change() {
    let l = fresh();
    for b in &l.leaves {
        for bit in 0..b.len() * 8 {
            check_leaf_flip(b, bit);
        }
    }
}

/// The fixture's receipts check; every single-bit change of one is refused or, where it only
/// touches what is not signed (none of it here), still names the same entry.
#[test]
fn receipt_every_single_bit_change() {
    let l = fresh();
    let receipts = fixture_receipts(l);
    assert!(receipts.len() >= 2);
    for r in &receipts {
        r.check(&l.key).expect("a fixture receipt checks");
        check_receipt_text(l, &r.to_text());
    }
    let text = receipts[1].to_text();
    for bit in 0..text.len() * 8 {
        if let Ok(t) = String::from_utf8(flip(text.as_bytes(), bit)) {
            check_receipt_text(l, &t);
            if let Ok(r) = consentlog::core::receipt::Receipt::parse(&t) {
                assert!(r.check(&l.key).is_err(), "bit {bit} changed, still checks");
            }
        }
    }
}

/// Every single-bit change of every checkpoint note of the fixture is refused.
#[test]
fn checkpoint_every_single_bit_change() {
    let l = fresh();
    for (i, n) in l.notes.iter().enumerate() {
        for bit in 0..n.len() * 8 {
            check_note_flip(l, i, bit);
        }
    }
}

/// Writes fuzz/fixtures/ledger.json and the seed corpora under fuzz/seeds/ (replacing them).
/// Run by hand after a format change: `CONSENTLOG_REGENERATE_FUZZ_FIXTURES=1 cargo test
/// --release --test it -- --ignored fuzz_props::regenerate` (without the variable it does
/// nothing, so that `--include-ignored` never rewrites the fixture by accident).
#[test]
#[ignore = "writes fuzz/fixtures and fuzz/seeds; run by hand after a format change"]
fn regenerate_fuzz_fixtures() {
    if std::env::var("CONSENTLOG_REGENERATE_FUZZ_FIXTURES").as_deref() != Ok("1") {
        eprintln!("set CONSENTLOG_REGENERATE_FUZZ_FIXTURES=1 to rewrite fuzz/fixtures");
        return;
    }
    let f = build_fixture();
    let l = Loaded::from_fixture(f.clone());
    let fixtures = fuzz_dir().join("fixtures");
    std::fs::create_dir_all(&fixtures).expect("mkdir");
    let text = serde_json::to_string_pretty(&f).expect("json") + "\n";
    std::fs::write(fixtures.join("ledger.json"), text).expect("write fixture");

    let seeds = fuzz_dir().join("seeds");
    if seeds.exists() {
        std::fs::remove_dir_all(&seeds).expect("remove old seeds");
    }
    let write = |target: &str, name: &str, mode: Option<u8>, data: &[u8]| {
        let d = seeds.join(target);
        std::fs::create_dir_all(&d).expect("mkdir");
        let mut v = mode.map(|m| vec![m]).unwrap_or_default();
        v.extend_from_slice(data);
        std::fs::write(d.join(name), v).expect("write seed");
    };
    for (i, e) in l.events.iter().enumerate() {
        write("event_decode", &format!("event-{i}"), Some(0), e);
        write(
            "event_decode",
            &format!("json-{i}"),
            Some(1),
            f.event_json[i].as_bytes(),
        );
    }
    for (i, b) in l.leaves.iter().enumerate() {
        let kind = match Leaf::decode(b).expect("leaf") {
            Leaf::Genesis(_) => "genesis",
            Leaf::Event(_) => "event",
            Leaf::Map(_) => "map",
        };
        write("leaf_decode", &format!("leaf-{i}-{kind}"), Some(0), b);
    }
    for (i, o) in l.openings.iter().enumerate() {
        write("leaf_decode", &format!("opening-{i}"), Some(0), o);
    }
    for (i, n) in l.notes.iter().enumerate() {
        write("checkpoint", &format!("note-{i}"), Some(0), n.as_bytes());
        let body = n.split_once("\n\n").expect("body").0.to_string() + "\n";
        write("checkpoint", &format!("body-{i}"), Some(0), body.as_bytes());
    }
    for (name, p, _) in &l.proofs {
        let j = serde_json::to_string(p).expect("json");
        write("consent_proof", name, Some(0), j.as_bytes());
    }
    let j = serde_json::to_string(&l.history).expect("json");
    write("history", "history", Some(0), j.as_bytes());
    write("export", "export", Some(0), &l.export);
    write_later_seeds(&l);
    let ndjson = f.event_json.join("\n") + "\n";
    write("http_bodies", "ndjson", Some(0), ndjson.as_bytes());
    let array = format!("[{}]", f.event_json.join(","));
    write("http_bodies", "array", Some(0), array.as_bytes());
    let bulk = serde_json::to_string(&BulkRequest {
        queries: l
            .proofs
            .iter()
            .map(|(_, p, _)| BulkQuery {
                subject: p.subject,
                controller: p.controller.clone(),
                purpose: p.purpose.clone(),
                at: Some(p.at),
            })
            .collect(),
    })
    .expect("json");
    write("http_bodies", "bulk", Some(0), bulk.as_bytes());
    write(
        "http_bodies",
        "header",
        Some(0),
        f.request.header.as_bytes(),
    );
}

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Mutation choices: the bytes that drive the mutator.
fn choices() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..96)
}

proptest! {
    #![proptest_config(cfg(1024))]

    // event_decode: SignedEvent::decode + check_self, Opening::decode, on random bytes.
    #[test]
    fn event_decode_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        check_event_bytes(&data);
    }

    // event_decode: mutations of valid SignedEvents.
    #[test]
    fn event_decode_mutated_events(data in choices()) {
        check_event_mutation(fresh(), &data);
    }

    // event_decode: EventJson::parse on random text.
    #[test]
    fn event_json_random_text(text in "\\PC{0,200}") {
        check_event_json(&text, false);
    }

    // event_decode / http_bodies: mutations of valid JSON lines, through every body parser.
    #[test]
    fn event_json_mutated_lines(data in choices()) {
        check_event_json_mutation(fresh(), &data, false);
    }

    // leaf_decode: Leaf::decode (and the kind decoders, SignedEvent and Opening::decode) on
    // random bytes, on random bodies after each kind and version byte, and on mutated leaves
    // and openings.
    #[test]
    fn leaf_decode_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..160)) {
        check_leaf_bytes(&data);
    }

    #[test]
    fn leaf_decode_random_bodies(
        kind in 0u8..4,
        body in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut b = vec![kind, consentlog::core::leaf::LEAF_VERSION];
        b.extend_from_slice(&body);
        check_leaf_bytes(&b);
    }

    #[test]
    fn leaf_decode_mutated(data in choices()) {
        check_leaf_mutation(fresh(), &data);
    }

    // evidence: an evidence file's JSON, then evidence::check, on random text: no panic, and
    // what parses writes back to an equal value.
    #[test]
    fn evidence_random_text(text in "\\{\"format\":\"consentlog-evidence/v2\",\"log_key\":\"[0-9a-f]{64}\",\"claim\":\\{\"kind\":\"(same_size_different_roots|chain_fork|time_violation|map_root_mismatch)\"[ -~]{0,120}\\}\\}") {
        check_evidence_text(&text);
    }

    // config_files: tokens files and tlog-policy files.
    #[test]
    fn tokens_file_random_text(text in "([ #a-zA-Z0-9._~+/=,:-]{0,40}\n){0,6}") {
        check_tokens_text(&text);
    }

    #[test]
    fn policy_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        check_policy_bytes(&data);
    }

    #[test]
    fn policy_random_lines(text in "((log|witness|group|quorum) [ -~]{0,60}\n){0,6}") {
        check_policy_bytes(text.as_bytes());
    }

    // receipt: Receipt::parse and check on random text and on mutated fixture receipts.
    #[test]
    fn receipt_random_text(text in "(c2sp.org/tlog-proof@v1\n)?(extra [A-Za-z0-9+/=]{0,40}\n)?(index [0-9]{1,2}\n)?\\PC{0,120}") {
        check_receipt_text(fresh(), &text);
    }

    #[test]
    fn receipt_mutated(data in choices()) {
        check_receipt_mutation(fresh(), &data);
    }

    // witness_bodies: add-checkpoint bodies, 409 sizes, witnesses' answers, `witnessed` JSON.
    #[test]
    fn add_checkpoint_random_bodies(text in "(old [0-9]{1,3}\n)?([A-Za-z0-9+/=]{0,46}\n){0,3}\n?\\PC{0,80}") {
        check_add_checkpoint_body(text.as_bytes());
    }

    #[test]
    fn add_checkpoint_mutated(data in choices()) {
        check_add_checkpoint_mutation(fresh(), &data);
    }

    #[test]
    fn size_bodies(data in proptest::collection::vec(any::<u8>(), 0..24)) {
        check_size_body(&data);
    }

    #[test]
    fn witness_answers_mutated(data in choices()) {
        check_witness_answer_mutation(fresh(), witness(), &data);
    }

    #[test]
    fn witnessed_mutated(data in choices()) {
        check_witnessed_mutation(fresh(), witness(), &data);
    }

    // checkpoint: note::open and parse_body on random text and on mutated valid notes.
    #[test]
    fn checkpoint_random_text(text in "\\PC{0,200}") {
        check_note_text(&text, &fresh().key);
    }

    #[test]
    fn checkpoint_mutated_notes(data in choices()) {
        check_note_mutation(fresh(), &data);
    }

    // consent_proof: mutated valid proofs never verify with a different state.
    #[test]
    fn consent_proof_mutated(data in choices()) {
        check_proof_mutation(fresh(), &data);
    }

    // consent_proof: byte mutations of a valid proof's JSON text.
    #[test]
    fn consent_proof_mutated_json(data in choices()) {
        let l = fresh();
        let mut c = Choices::new(&data);
        let (_, p, _) = &l.proofs[c.below(l.proofs.len())];
        let mut b = serde_json::to_vec(p).expect("json");
        for _ in 0..1 + c.below(3) {
            mutate_bytes(&mut c, &mut b, &l.pool);
        }
        check_proof_json(&String::from_utf8_lossy(&b), &l.key);
    }

    // consent_proof: check_anchor with mutated genesis and map leaves (and checkpoints).
    #[test]
    fn consent_proof_mutated_anchor(data in choices()) {
        check_anchor_mutation(fresh(), &data);
    }

    // consent_proof: single-bit changes of a valid proof's JSON.
    #[test]
    fn consent_proof_bit_flips(i in any::<usize>(), bit in any::<usize>()) {
        let l = fresh();
        check_proof_flip(l, i % l.proofs.len(), bit);
    }

    // history: mutated valid histories show the original chains or fail.
    #[test]
    fn history_mutated(data in choices()) {
        check_history_mutation(fresh(), &data);
    }

    // history: single-bit changes of the valid history's JSON.
    #[test]
    fn history_bit_flips(bit in any::<usize>()) {
        check_history_flip(fresh(), bit);
    }

    // export: random bytes after a valid magic, and structured mutations of a valid export.
    #[test]
    fn export_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut b = EXPORT_MAGIC.to_vec();
        b.extend_from_slice(&data);
        check_export_bytes(&b, None);
        check_export_bytes(&data, None);
    }

    #[test]
    fn export_mutated(data in choices()) {
        check_export_mutation(fresh(), &data);
    }

    // export: single-bit changes of the valid export never audit clean.
    #[test]
    fn export_bit_flips(bit in any::<usize>()) {
        check_export_flip(fresh(), bit);
    }

    // http_bodies: random text through every body parser; mutated Authorization headers.
    #[test]
    fn http_bodies_random_text(text in "\\PC{0,200}") {
        check_http_body(&text, false, Some(fresh()));
    }

    #[test]
    fn http_headers_mutated(data in choices()) {
        check_header_mutation(fresh(), &data);
    }
}

proptest! {
    #![proptest_config(cfg(256))]

    // Larger, structured JSON for the body parsers: arrays of mutated events and bulk requests.
    #[test]
    fn http_bodies_arrays_and_bulk(data in choices()) {
        let l = fresh();
        let mut c = Choices::new(&data);
        let n = c.below(4);
        let lines: Vec<String> = (0..n)
            .map(|_| {
                let mut b = c.pick(&l.fixture.event_json).cloned().unwrap_or_default().into_bytes();
                if c.below(2) == 0 {
                    mutate_bytes(&mut c, &mut b, &l.pool);
                }
                String::from_utf8_lossy(&b).into_owned()
            })
            .collect();
        check_http_body(&format!("[{}]", lines.join(",")), false, Some(l));
        let bulk = format!(
            "{{\"queries\":[{{\"subject\":\"{}\",\"controller\":\"{}\",\"purpose\":\"x\",\"at\":{}}}]}}",
            l.request.subject,
            c.name(&l.pool),
            c.number(&l.pool),
        );
        let mut b = bulk.into_bytes();
        mutate_bytes(&mut c, &mut b, &l.pool);
        check_http_body(&String::from_utf8_lossy(&b), false, Some(l));
    }
}

// ------------------------------------------------------------------------------------------
// Regression tests for the bugs the fuzzing found (see fuzz/README.md, "Findings"). Each is
// ignored while the bug is open; the fuzz targets tolerate them unless
// CONSENTLOG_FUZZ_STRICT=1.

/// A valid JSON line with one field given twice: first a wrong value, then the signed one.
fn duplicated_field_line(l: &Loaded) -> String {
    let line = &l.fixture.event_json[0];
    line.replacen('{', "{\"seq\":999,", 1)
}

#[test]
fn regression_json_array_accepts_duplicate_fields() {
    let l = fresh();
    let line = duplicated_field_line(l);
    let direct = EventJson::parse(&line);
    let via_array = parse_array_item(&line);
    assert!(direct.is_err(), "NDJSON refuses the repeated field");
    assert!(
        via_array.is_err(),
        "the JSON-array batch accepted an event object with a repeated field (seq {:?})",
        via_array.map(|e| e.event.seq)
    );
}

/// The http_bodies target's minimized crash in strict mode (fuzz/regressions/http_bodies/,
/// after its mode byte): the second line repeats `signature`, first with bad hex. Found on a
/// format-v1 event; the stored input now holds a format-v2 event of the fixture with the same
/// repeated field, so that the line is refused for the repeat and nothing else.
const FUZZ_DUPLICATE_SIGNATURE: &[u8] =
    include_bytes!("../../fuzz/regressions/http_bodies/duplicate-field-in-array");

/// The first, bad, `signature` field of that input.
const BAD_SIGNATURE_FIELD: &str = "\"signature\":\"c21ae7c70e48ac1\",";

#[test]
fn regression_fuzz_duplicate_signature_field() {
    let text = std::str::from_utf8(&FUZZ_DUPLICATE_SIGNATURE[1..]).expect("utf-8");
    let line = text.lines().nth(1).expect("second line");
    assert!(EventJson::parse(line).is_err(), "NDJSON refuses it");
    assert!(
        parse_array_item(line).is_err(),
        "the JSON-array form of the same object is accepted"
    );
    // Without the repeat it is a valid event, read the same both ways.
    assert!(line.contains(BAD_SIGNATURE_FIELD));
    let once = line.replacen(BAD_SIGNATURE_FIELD, "", 1);
    let ev = EventJson::parse(&once).expect("the line without the repeated field parses");
    assert_eq!(parse_array_item(&once), Ok(ev));
}

/// A JSON event whose `log` makes its binary form larger than codec::MAX_ENCODED.
fn oversized_event_json(l: &Loaded) -> String {
    let se = EventJson::parse(&l.fixture.event_json[0]).expect("fixture line");
    let mut j = EventJson::from(&se);
    j.log = "l".repeat(consentlog::core::codec::MAX_ENCODED);
    serde_json::to_string(&j).expect("json")
}

#[test]
fn regression_event_json_over_the_binary_limit() {
    let text = oversized_event_json(fresh());
    let se = EventJson::parse(&text);
    if let Ok(se) = se {
        let back = SignedEvent::decode(se.as_bytes());
        assert!(
            back.as_ref() == Ok(&se),
            "EventJson::parse accepted a {}-byte event its binary decoder refuses: {:?}",
            se.as_bytes().len(),
            back.err()
        );
    }
}

#[test]
fn regression_request_header_is_not_strict() {
    let l = fresh();
    let (h, r) = (&l.request.header, &l.request);
    let rest = h.split_once(' ').expect("scheme").1;
    let other = "00".repeat(32);
    let variants = [
        format!("Consentlog-Ed25519 subject={other},{rest}"),
        format!("Consentlog-Ed25519 time=1,{rest}"),
        format!("Consentlog-Ed25519 nonce={other},{rest}"),
        h.replacen("time=", "time=+", 1),
        h.replacen("time=", "time=0", 1),
    ];
    for v in variants {
        assert!(
            consentlog::core::request::check_request(&v, &r.target(), r.freshness()).is_err(),
            "a non-canonical header was accepted: {v}"
        );
    }
}

proptest! {
    #![proptest_config(cfg(256))]

    /// A request signed for one target (log, audience, method, path, body) and time verifies
    /// for that one only: any other origin, audience, method, path or body, or a changed
    /// time or nonce, is refused.
    #[test]
    fn a_signed_request_verifies_for_its_own_target_only(
        origin in "[a-z0-9./]{1,24}",
        audience in "https?://[a-z0-9.:]{1,24}",
        method in "GET|POST|PUT",
        path in "/[ -~]{0,40}",
        body in proptest::collection::vec(any::<u8>(), 0..64),
        time in 0u64..u64::MAX / 2,
        nonce in any::<[u8; 32]>(),
        which in 0usize..7,
        change in any::<[u8; 32]>(),
    ) {
        use consentlog::core::request::{check_request, sign, Freshness, Target};
        let key = SigningKey::from_bytes(&[7; 32]);
        let t = Target::new(&origin, &audience, &method, &path, &body);
        let r = sign(&key, &t, time, &nonce);
        let fresh = Freshness { now: time, not_before: time };
        prop_assert_eq!(check_request(&r.header(), &t, fresh), Ok(r));
        let tail = to_hex(&change[..4]);
        let (o, a, m, p) = (
            format!("{origin}{tail}"),
            format!("{audience}{tail}"),
            format!("{method}X"),
            format!("{path}{tail}"),
        );
        let mut b = body.clone();
        b.push(change[0]);
        let mut r2 = r;
        let mut target = t;
        match which {
            0 => target.origin = &o,
            1 => target.audience = &a,
            2 => target.method = &m,
            3 => target.path_and_query = &p,
            4 => target = Target::new(&origin, &audience, &method, &path, &b),
            5 => r2.time ^= 1 + u64::from(change[0] % 16),
            _ => r2.nonce[usize::from(change[0] % 32)] ^= 1 | change[1],
        }
        let fresh = Freshness { now: r2.time, not_before: r2.time };
        prop_assert!(check_request(&r2.header(), &target, fresh).is_err());
    }
}
