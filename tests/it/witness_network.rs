//! Issue 12 item 7: a log and its witness network end to end. A real `consentlog serve`
//! process asks two plain witnesses and one replaying witness (`consentlog::tlog_witness`,
//! served in the test process over real HTTP) under one c2sp.org/tlog-policy: both plain
//! witnesses AND the replaying one. The user's commands (`verify --policy`, `check-consistency`,
//! `verify-evidence`) are the real binary.
//!
//! - one plain witness down: appends go on, proofs still verify under the policy, and the
//!   witness comes back on its URL; the replaying witness down: new proofs (of events appended
//!   after it went down, once the log's map leaves are more than a minute younger than its
//!   last cosignature) are refused under the policy (exit 2, with the reason), old ones still
//!   verify;
//! - a forked log (two `serve` processes on copies of one ledger: one key, two histories) is
//!   cosigned on one branch only, by every witness, and a person shown the other branch gets
//!   conclusive evidence from `check-consistency` that `verify-evidence` accepts;
//! - a log that appends a lying map leaf ([`LyingLog`]) is cosigned by the plain witnesses,
//!   refused by the replaying one, and its checkpoint fails the policy;
//! - hostile add-checkpoint bodies against the replaying witness get the spec's status codes
//!   (a stale `old` and a bad proof before its "not replayed yet" answer) and change nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use consentlog::core::policy::Policy;
use consentlog::core::vkey::{Vkey, TYPE_COSIGNATURE_V1};
use consentlog::ledger::clock::{ManualClock, SystemClock};
use consentlog::tlog_witness::Limits;
use ed25519_dalek::SigningKey;
use serde_json::Value;

use crate::support::http::bearer;
use crate::support::process::{run, Server};
use crate::support::replay::LyingLog;
use crate::support::witness::{add_checkpoint_body, cosignature_times, TestLog, TestWitness};
use crate::support::witnessed_server::{copy_dir, init_ledger, verify_as_user, witness_metric};
use crate::support::{free_port, now_ms, wait_until, wall_past, Person};

const READER: &str = "witness-network-reader-01";
const ORIGIN: &str = "network.test/log";
const A: &str = "plain.test/a";
const B: &str = "plain.test/b";
const R: &str = "replaying.test/r";
/// Generous: a loaded 2-core machine runs several servers and builds at once.
const WAIT: Duration = Duration::from_secs(90);
/// How often the replaying witness looks for new leaves.
const FOLLOW: Duration = Duration::from_millis(100);

fn addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// A plain witness listening on `addr`, its state in `tmp/<name>`.
fn plain(tmp: &Path, addr: &str, name: &str, key: &SigningKey, log: &Vkey) -> TestWitness {
    TestWitness::start_on(
        addr,
        &tmp.join(name.replace('/', "_")),
        key.clone(),
        name,
        std::slice::from_ref(log),
        Arc::new(SystemClock),
        Limits::default(),
    )
}

/// The replaying witness `R` following the log served at `url`, listening on `addr`.
fn replaying(tmp: &Path, addr: &str, key: &SigningKey, log: &Vkey, url: &str) -> TestWitness {
    TestWitness::start_replaying_on(
        addr,
        &tmp.join("replaying"),
        key.clone(),
        R,
        log.clone(),
        url,
        Arc::new(SystemClock),
        FOLLOW,
    )
}

fn witness_vkey(name: &str, key: &SigningKey) -> String {
    Vkey::new(name, TYPE_COSIGNATURE_V1, key.verifying_key())
        .expect("witness vkey")
        .to_text()
}

/// The network's policy: the log, plain witnesses a and b and replaying witness r (with their
/// submission URLs when given), quorum: both plain ones and the replaying one. With
/// `plain_only`, the quorum is the plain group alone (what a verifier who trusts plain
/// witnesses would write).
fn policy_text(log: &Vkey, w: [(&str, &SigningKey, Option<&str>); 3], plain_only: bool) -> String {
    let mut t = format!("log {}\n", log.to_text());
    for (short, (name, key, url)) in ["a", "b", "r"].iter().zip(w) {
        t += &format!("witness {short} {}", witness_vkey(name, key));
        if let Some(u) = url {
            t += &format!(" {u}");
        }
        t.push('\n');
    }
    t += "group plain 2 a b\ngroup replaying 1 r\ngroup both all plain replaying\n";
    t += if plain_only {
        "quorum plain\n"
    } else {
        "quorum both\n"
    };
    t
}

/// The keys of a, b and r.
fn keys() -> [SigningKey; 3] {
    std::array::from_fn(|_| consentlog::keyfile::generate())
}

/// `serve` on `dir` asking the policy's witnesses every 100 ms; map leaves as the log grows
/// (and, with `quiet`, none while it does not, so that its sizes are known).
fn serve(dir: &Path, policy: &Path, quiet: bool) -> Server {
    let mut args = vec![
        "--witness-policy",
        policy.to_str().unwrap(),
        "--witness-interval",
        "100",
        "--checkpoint-interval",
        "50",
        "--reader-token",
        READER,
    ];
    if quiet {
        args.extend(["--checkpoint-max-gap", "3600000"]);
    }
    Server::start_in(dir, &args)
}

/// The consent proof the server gives now for `p` (its newest state).
fn proof(srv: &Server, p: &Person) -> Value {
    srv.get_auth(&p.consent_path(None), &bearer(READER))
        .expect(200)
        .json()
}

/// The size of the cosigned checkpoint a proof carries, if any.
fn witnessed_size(proof: &Value) -> Option<u64> {
    proof["witnessed"]["note"]
        .as_str()?
        .lines()
        .nth(1)?
        .parse()
        .ok()
}

/// Waits for a proof for `p` whose cosigned checkpoint covers leaf `index`.
#[track_caller]
fn witnessed_proof(srv: &Server, p: &Person, index: u64) -> Value {
    wait_until(
        WAIT,
        || {
            format!(
                "a proof whose cosigned checkpoint covers leaf {index}; cosigned: {}",
                srv.get("/v1/checkpoint/cosigned").body
            )
        },
        || {
            let v = proof(srv, p);
            (witnessed_size(&v)? > index).then_some(v)
        },
    )
}

fn save(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, v.to_string()).unwrap();
    f
}

/// Waits until `witness`'s cosigned size, as the server sees it, is beyond leaf `index`.
#[track_caller]
fn wait_cosigned_beyond(srv: &Server, witness: &str, index: u64) {
    wait_until(
        WAIT,
        || format!("{witness} cosigning beyond leaf {index}"),
        || {
            (witness_metric(srv, "consentlog_witness_cosigned_size", witness) > index as f64)
                .then_some(())
        },
    );
}

#[test]
fn two_plain_witnesses_and_a_replaying_one_under_one_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = t.join("ledger");
    let log = init_ledger(&dir, ORIGIN);
    let [ka, kb, kr] = keys();
    let (a_addr, b_addr, r_addr) = (addr(), addr(), addr());
    let url = |a: &str| format!("http://{a}");
    let (ua, ub, ur) = (url(&a_addr), url(&b_addr), url(&r_addr));
    let policy = t.join("policy.txt");
    std::fs::write(
        &policy,
        policy_text(
            &log,
            [
                (A, &ka, Some(&ua)),
                (B, &kb, Some(&ub)),
                (R, &kr, Some(&ur)),
            ],
            false,
        ),
    )
    .unwrap();
    let pol = policy.to_str().unwrap();
    let a = plain(t, &a_addr, A, &ka, &log);
    let b = plain(t, &b_addr, B, &kb, &log);
    let srv = serve(&dir, &policy, false);
    // The replaying witness follows the log's public leaves.
    let r = replaying(t, &r_addr, &kr, &log, &srv.url);
    assert_eq!(r.vkey, witness_vkey(R, &kr));

    // All up: the three cosign, proofs carry it, `verify --policy` says map_replayed.
    let mut p = Person::new();
    let first = srv.append(&p.step(&srv.origin, true));
    let p0 = witnessed_proof(&srv, &p, first.index);
    let p0f = save(t, "p0.json", &p0);
    let ok = verify_as_user(&srv, &p, &p0f, &["--policy", pol]).ok();
    assert!(
        ok.stdout.lines().any(|l| l.starts_with("witnessed by "))
            && ok.stdout.contains("(map_replayed: yes)"),
        "{ok:#?}"
    );
    for name in ["a", "b", "r"] {
        assert!(
            ok.stdout.contains(name),
            "{name} among the cosigners: {ok:#?}"
        );
    }
    let json = verify_as_user(&srv, &p, &p0f, &["--policy", pol, "--json"])
        .ok()
        .json();
    assert_eq!(
        (json["witnessed"].as_bool(), json["map_replayed"].as_bool()),
        (Some(true), Some(true))
    );

    // Plain witness b goes down: appends go on, a and r keep cosigning, b's failures count.
    let b_dir = b.stop();
    let mut last = first.clone();
    for _ in 0..3 {
        srv.append(&p.step(&srv.origin, false));
        last = srv.append(&p.step(&srv.origin, true));
    }
    wait_cosigned_beyond(&srv, "a", last.index);
    wait_cosigned_beyond(&srv, "r", last.index);
    wait_until(
        WAIT,
        || "b's failures counted",
        || (witness_metric(&srv, "consentlog_witness_failures_total", "b") >= 1.0).then_some(()),
    );
    // A proof made now carries the last checkpoint all three cosigned (not the newer ones a
    // and r cosigned without b), and still verifies: the log is a few seconds ahead of it.
    let p1 = proof(&srv, &p);
    let held = witnessed_size(&p1).expect("p1 carries a cosigned checkpoint");
    assert!(held <= last.index, "cosigned at {held} without b");
    let p1f = save(t, "p1.json", &p1);
    verify_as_user(&srv, &p, &p1f, &["--policy", pol]).ok();

    // b comes back on its URL with its state: the quorum is met again, beyond those appends.
    let b = TestWitness::start_on(
        &b_addr,
        &b_dir,
        kb.clone(),
        B,
        std::slice::from_ref(&log),
        Arc::new(SystemClock),
        Limits::default(),
    );
    let p2 = witnessed_proof(&srv, &p, last.index);
    let p2f = save(t, "p2.json", &p2);
    let ok = verify_as_user(&srv, &p, &p2f, &["--policy", pol]).ok();
    assert!(ok.stdout.contains("(map_replayed: yes)"), "{ok:#?}");

    // The replaying witness goes down. a and b cosign what is appended after it, but no
    // checkpoint meets the policy any more: proofs carry the last one r cosigned.
    drop(r);
    let after = srv.append(&p.step(&srv.origin, false));
    wait_cosigned_beyond(&srv, "a", after.index);
    wait_cosigned_beyond(&srv, "b", after.index);
    let frozen = proof(&srv, &p);
    let held = witnessed_size(&frozen).expect("a cosigned checkpoint");
    assert!(held <= after.index, "cosigned at {held} without r");
    // Until a minute has passed, such proofs still count: the log is seconds ahead of the
    // last checkpoint the policy's witnesses cosigned.
    let frozen_f = save(t, "frozen.json", &frozen);
    // (The opt-out is proven: a valid proof of consent not held, exit 1.)
    let valid = verify_as_user(&srv, &p, &frozen_f, &["--policy", pol]);
    valid.assert_code(1);
    assert!(valid.stdout.contains("witnessed by "), "{valid:#?}");
    let note = frozen["witnessed"]["note"].as_str().unwrap();
    let times = cosignature_times(note);
    assert!(times.iter().any(|(n, _)| n == R), "{note}");
    let newest = times.iter().map(|&(_, t)| t).max().unwrap();
    // Verifiers accept a log up to a minute younger than its newest cosignature: past that
    // minute (on the system clock, the server's), an event is appended and proven.
    wall_past(newest * 1000 + consentlog::core::witnessed::MAP_AFTER_COSIGNATURE_MS);
    let late = srv.append(&p.step(&srv.origin, true));
    srv.wait_covered(late.index + 1);
    let p3 = proof(&srv, &p);
    assert_eq!(
        witnessed_size(&p3),
        Some(held),
        "still the checkpoint r cosigned"
    );
    let p3f = save(t, "p3.json", &p3);
    let refused = verify_as_user(&srv, &p, &p3f, &["--policy", pol]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("not witnessed recently enough")
            && refused.stderr.contains("ms after the newest cosignature"),
        "{refused:#?}"
    );
    let json = verify_as_user(&srv, &p, &p3f, &["--policy", pol, "--json"]);
    json.assert_code(2);
    let v = json.json();
    assert_eq!(v["valid"], false, "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("after the newest cosignature"),
        "{v}"
    );
    // The proof itself is sound: without a policy it verifies, trusting the operator.
    let plain_run = verify_as_user(&srv, &p, &p3f, &[]).ok();
    assert!(
        plain_run
            .stdout
            .lines()
            .any(|l| l.starts_with("UNWITNESSED: the operator is trusted")),
        "{plain_run:#?}"
    );
    // Proofs cosigned while r was up still verify under the policy.
    for f in [&p0f, &p2f] {
        let ok = verify_as_user(&srv, &p, f, &["--policy", pol]).ok();
        assert!(ok.stdout.contains("(map_replayed: yes)"), "{ok:#?}");
    }
    drop((a, b));
}

#[test]
fn a_forked_log_is_cosigned_on_one_branch_and_the_other_gives_evidence() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = t.join("ledger");
    let log = init_ledger(&dir, ORIGIN);
    // One key and genesis, two histories: a copy of the ledger before either grows.
    let fork = t.join("fork");
    copy_dir(&dir, &fork);
    let [ka, kb, kr] = keys();
    let a = plain(t, "127.0.0.1:0", A, &ka, &log);
    let b = plain(t, "127.0.0.1:0", B, &kb, &log);
    let r_addr = addr();
    let policy = t.join("policy.txt");
    let ur = format!("http://{r_addr}");
    std::fs::write(
        &policy,
        policy_text(
            &log,
            [
                (A, &ka, Some(&a.url)),
                (B, &kb, Some(&b.url)),
                (R, &kr, Some(&ur)),
            ],
            false,
        ),
    )
    .unwrap();
    let pol = policy.to_str().unwrap();
    let main = serve(&dir, &policy, true);
    let r = replaying(t, &r_addr, &kr, &log, &main.url);

    // Branch one: one event, one map leaf: size 4, cosigned by all three.
    let mut p = Person::new();
    let e = main.append(&p.step(ORIGIN, true));
    let size = e.index + 2;
    let cp = main.wait_covered(size);
    assert_eq!(cp.size, size, "one map leaf after the event");
    let cosigned = wait_until(
        WAIT,
        || format!("all three cosign size {size}"),
        || {
            let r = main.get("/v1/checkpoint/cosigned");
            let names: Vec<String> = cosignature_times(&r.body)
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            (r.status == 200
                && r.body.lines().nth(1) == Some(&size.to_string())
                && names.len() == 3)
                .then(|| r.body.clone())
        },
    );

    // Branch two: the same log key, another event at the same index.
    let other = serve(&fork, &policy, true);
    let mut q = Person::new();
    let f = other.append(&q.step(ORIGIN, true));
    assert_eq!(f.index, e.index);
    let fcp = other.wait_covered(size);
    assert_eq!(fcp.size, size);
    assert_ne!(fcp.root, cp.root, "two histories");
    // Every witness refuses it (409: another root for the size it cosigned).
    for w in ["a", "b", "r"] {
        wait_until(
            WAIT,
            || format!("{w} refusing the other branch"),
            || {
                (witness_metric(&other, "consentlog_witness_failures_total", w) >= 1.0)
                    .then_some(())
            },
        );
    }
    // It grows: the plain witnesses refuse it again (a proof from the cosigned tree to it
    // cannot exist: 422); two more failures each mean a round that began after it grew. (The
    // replaying witness, which follows the first branch, answers "not replayed yet": a size
    // it never replayed is never cosigned.)
    let f2 = other.append(&q.step(ORIGIN, false));
    other.wait_covered(f2.index + 2);
    for w in ["a", "b"] {
        let seen = witness_metric(&other, "consentlog_witness_failures_total", w);
        wait_until(
            WAIT,
            || format!("{w} refusing the grown branch"),
            || {
                (witness_metric(&other, "consentlog_witness_failures_total", w) >= seen + 2.0)
                    .then_some(())
            },
        );
    }
    assert_eq!(
        other.get("/v1/checkpoint/cosigned").status,
        404,
        "the other branch has no cosigned checkpoint"
    );
    for w in [&a, &b, &r] {
        assert_eq!(
            w.latest(ORIGIN),
            Some((cp.size, cp.root)),
            "{} cosigned only the first branch",
            w.name
        );
    }
    assert_eq!(
        witness_metric(&other, "consentlog_witness_cosignatures_total", "a")
            + witness_metric(&other, "consentlog_witness_cosignatures_total", "b")
            + witness_metric(&other, "consentlog_witness_cosignatures_total", "r"),
        0.0
    );

    // A person shown the other branch: its proof fails the policy.
    let shown = proof(&other, &q);
    let shown_f = save(t, "shown.json", &shown);
    let refused = verify_as_user(&other, &q, &shown_f, &["--policy", pol]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("no cosigned checkpoint"),
        "{refused:#?}"
    );
    // With the cosigned checkpoint of the first branch and the signed one of the second at
    // the same size, `check-consistency` writes conclusive evidence.
    let na = t.join("cosigned.note");
    std::fs::write(&na, &cosigned).unwrap();
    let nb = t.join("shown.note");
    std::fs::write(&nb, &fcp.note).unwrap();
    let ev = t.join("fork-evidence.json");
    let out = run(&[
        "check-consistency",
        "--log-key",
        &main.log_key_hex,
        na.to_str().unwrap(),
        nb.to_str().unwrap(),
        "--out",
        ev.to_str().unwrap(),
    ]);
    out.assert_code(1);
    assert!(out.stderr.contains("THE LOG LIED"), "{out:#?}");
    let checked = run(&["verify-evidence", ev.to_str().unwrap()]).ok();
    assert!(
        checked.stdout.contains("same_size_different_roots"),
        "{checked:#?}"
    );
}

#[test]
fn a_lying_map_leaf_is_cosigned_by_plain_witnesses_only_and_fails_the_policy() {
    let log = LyingLog::start("lying.network.test/log");
    let vkey = log.vkey();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let [ka, kb, kr] = keys();
    let a = plain(t, "127.0.0.1:0", A, &ka, &vkey);
    let b = plain(t, "127.0.0.1:0", B, &kb, &vkey);
    let r = replaying(t, "127.0.0.1:0", &kr, &vkey, &log.url);
    let ws = [(A, &ka, None), (B, &kb, None), (R, &kr, None)];
    let policy = Policy::parse(policy_text(&vkey, ws, false).as_bytes()).unwrap();
    let plain_policy = Policy::parse(policy_text(&vkey, ws, true).as_bytes()).unwrap();
    let now = || now_ms() / 1000;
    let replay = r.witness.replay().unwrap().clone();

    // An honest batch: the three cosign it and it meets the policy.
    log.honest_batch(3);
    let honest = log.checkpoint();
    let size = log.size();
    wait_until(
        WAIT,
        || "the honest batch replayed",
        || (replay.replayed() >= size).then_some(()),
    );
    let body = add_checkpoint_body(0, &[], &honest);
    let mut note = honest.clone();
    for w in [&a, &b, &r] {
        note += &w.add_checkpoint(body.as_bytes()).expect(200).body;
    }
    let v = policy
        .check_note(note.as_bytes(), now())
        .expect("meets the policy");
    assert_eq!(v.cosigned.len(), 3);

    // The operator appends a map leaf that lies. The plain witnesses see a consistent tree
    // and cosign; the replaying one replays it, catches the lie and refuses.
    log.lying_batch();
    let lie = log.checkpoint();
    let body = add_checkpoint_body(size, &log.proof(size, log.size()), &lie);
    let mut note = lie.clone();
    for w in [&a, &b] {
        note += &w.add_checkpoint(body.as_bytes()).expect(200).body;
    }
    wait_until(WAIT, || "the lie caught", || replay.refused());
    let resp = r.add_checkpoint(body.as_bytes());
    resp.expect(409);
    assert!(resp.body.contains("no longer cosigns"), "{}", resp.body);
    assert_eq!(r.latest(&vkey.name).map(|(s, _)| s), Some(size));
    // Plain witnesses alone would vouch for it; the policy that requires the replaying
    // witness does not.
    plain_policy
        .check_note(note.as_bytes(), now())
        .expect("the plain quorum is met");
    let e = policy.check_note(note.as_bytes(), now()).unwrap_err();
    assert!(e.to_string().contains("quorum not met"), "{e}");
    // As a proof would carry it: the cosigned checkpoint is the lie itself.
    let signed = consentlog::core::note::open(&lie, &vkey.key).unwrap();
    let carried = consentlog::core::witnessed::WitnessedJson {
        note: note.clone(),
        consistency: Vec::new(),
    };
    let e = consentlog::core::witnessed::check_witnessed(
        &policy,
        &vkey.key,
        &signed,
        log.time(),
        Some(&carried),
        now(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("quorum not met"), "{e}");
    // And the replaying witness's evidence convicts the log.
    let ev = r.dir.join("evidence-map_root_mismatch.json");
    run(&["verify-evidence", ev.to_str().unwrap()]).ok();
}

#[test]
fn hostile_bodies_against_the_replaying_witness_get_the_spec_codes_and_change_nothing() {
    let log = LyingLog::start("hostile.network.test/log");
    let vkey = log.vkey();
    let origin = vkey.name.clone();
    log.honest_batch(2);
    // The witness's clock at the log's newest leaf: what is appended next is ahead of it.
    let clock = ManualClock::new(log.time());
    let tmp = tempfile::tempdir().unwrap();
    let key = consentlog::keyfile::generate();
    let r = TestWitness::start_replaying(
        &tmp.path().join("replaying"),
        key,
        R,
        vkey.clone(),
        &log.url,
        Arc::new(clock.clone()),
        FOLLOW,
    );
    let replay = r.witness.replay().unwrap().clone();
    let old = log.size();
    wait_until(
        WAIT,
        || "the first batch replayed",
        || (replay.replayed() >= old).then_some(()),
    );
    r.add_checkpoint(add_checkpoint_body(0, &[], &log.checkpoint()).as_bytes())
        .expect(200);
    let before = r.latest(&origin).expect("cosigned");

    // The next batch's map leaf is ahead of the witness's clock: not replayed yet.
    log.honest_batch(2);
    let new = log.size();
    let good = add_checkpoint_body(old, &log.proof(old, new), &log.checkpoint());
    let resp = r.add_checkpoint(good.as_bytes());
    resp.expect(503);
    assert_eq!(resp.header("retry-after"), Some("1"));
    // It replays the events before that map leaf, then holds.
    wait_until(
        WAIT,
        || "the events before the map leaf replayed",
        || (replay.replayed() >= new - 1).then_some(()),
    );
    let replayed = replay.replayed();
    assert_eq!(replayed, new - 1, "held at the map leaf");

    // Hostile bodies: each gets its code from the checks before the gate, never 503 or 200.
    let proof = log.proof(old, new);
    let note = log.checkpoint();
    let mut hostile: Vec<(String, Vec<u8>, u16)> = Vec::new();
    let mut add = |what: &str, body: Vec<u8>, status: u16| {
        hostile.push((what.to_string(), body, status));
    };
    add("huge", vec![b'x'; Limits::default().body_limit + 1], 413);
    let mut huge_note = good.clone().into_bytes();
    huge_note.resize(Limits::default().body_limit + 1, b'\n');
    add("huge: a good body padded", huge_note, 413);
    // Truncated anywhere before the signature: malformed.
    let sig_start = good.rfind('\u{2014}').unwrap();
    let blank = good.find("\n\n").unwrap();
    for cut in [
        0,
        3,
        good.find('\n').unwrap(),
        good.find('\n').unwrap() + 10,
        blank,
        blank + 1,
        blank + 5,
        sig_start - 1,
        sig_start,
        good.len() - 1,
    ] {
        add(
            &format!("truncated at {cut}"),
            good.as_bytes()[..cut].to_vec(),
            400,
        );
    }
    for n in [64, 65, 1000] {
        add(
            &format!("{n} proof lines"),
            add_checkpoint_body(old, &vec![[7u8; 32]; n], &note).into_bytes(),
            400,
        );
    }
    for bad in [
        "01",
        "+4",
        "-0",
        " 4",
        "4 ",
        "0x4",
        "4.0",
        "",
        "18446744073709551616",
    ] {
        let body = good.replacen(&format!("old {old}\n"), &format!("old {bad}\n"), 1);
        add(&format!("old {bad:?}"), body.into_bytes(), 400);
    }
    // A non-canonical size in a checkpoint the log really signed.
    let root_line = note.lines().nth(2).unwrap();
    for bad in [format!("0{new}"), format!("+{new}"), format!("{new}.0")] {
        let signed = log.sign_text(&format!("{origin}\n{bad}\n{root_line}\n"));
        add(
            &format!("checkpoint size {bad:?}"),
            add_checkpoint_body(old, &proof, &signed).into_bytes(),
            400,
        );
    }
    add(
        "a proof line that is not a hash",
        good.replacen(&B64.encode(proof[0]), &B64.encode([7u8; 31]), 1)
            .into_bytes(),
        400,
    );
    // Wrong origin: another log's checkpoint, and this log's key under another name.
    let mut stranger = TestLog::new("stranger.test/log");
    stranger.append(5, "x");
    add("another log", stranger.body_from(0).into_bytes(), 404);
    let renamed = log.sign_text(&format!("elsewhere.test/log\n{new}\n{root_line}\n"));
    add(
        "this log's key, another origin",
        add_checkpoint_body(old, &proof, &renamed).into_bytes(),
        404,
    );
    // Validly framed, but not this log's signature: 403.
    let forged = crate::support::witness::sign_note(
        &origin,
        &consentlog::keyfile::generate(),
        &format!("{origin}\n{new}\n{root_line}\n"),
    );
    add(
        "signed by another key",
        add_checkpoint_body(old, &proof, &forged).into_bytes(),
        403,
    );
    add(
        "old larger than the checkpoint",
        add_checkpoint_body(new + 1, &[], &note).into_bytes(),
        400,
    );
    let check = |what: &str, body: &[u8], status: u16| {
        let resp = r.add_checkpoint(body);
        assert_eq!(resp.status, status, "{what}: {resp:#?}");
        assert_eq!(r.latest(&origin), Some(before), "{what} changed the state");
        assert_eq!(
            replay.refused(),
            None,
            "{what} made the witness refuse the log"
        );
        resp
    };
    for (what, body, status) in &hostile {
        check(what, body, *status);
    }
    assert_eq!(replay.replayed(), replayed, "the replay did not move");
    // Not replayed yet is said only of a checkpoint that passes every other check: a stale
    // `old` gets 409 with the witness's size and a proof that does not verify 422 at once,
    // so that a forked branch larger than the replay is refused, not told to come back.
    let resp = check(
        "old 1, not yet replayed",
        add_checkpoint_body(1, &[], &note).as_bytes(),
        409,
    );
    assert_eq!(resp.body, format!("{old}\n"));
    let wrong = add_checkpoint_body(old, &vec![[7u8; 32]; proof.len()], &note);
    check("a wrong proof, not yet replayed", wrong.as_bytes(), 422);
    r.add_checkpoint(good.as_bytes()).expect(503);
    assert_eq!(replay.replayed(), replayed, "the replay did not move");

    // Once replayed, the same bodies get the same answers, and the checks behind the gate
    // answer too: a proof that does not verify (422), an old size other than the one
    // cosigned (409 with the witness's size).
    clock.set(now_ms());
    wait_until(
        WAIT,
        || "the second batch replayed",
        || (replay.replayed() >= new).then_some(()),
    );
    for (what, body, status) in &hostile {
        check(what, body, *status);
    }
    let wrong = add_checkpoint_body(old, &vec![[7u8; 32]; proof.len()], &note);
    check("a wrong proof", wrong.as_bytes(), 422);
    let short = add_checkpoint_body(old, &proof[1..], &note);
    check("a proof missing a line", short.as_bytes(), 422);
    let sixty_three = add_checkpoint_body(old, &vec![[7u8; 32]; 63], &note);
    check("63 proof lines", sixty_three.as_bytes(), 422);
    let resp = check("old 1", add_checkpoint_body(1, &[], &note).as_bytes(), 409);
    assert_eq!(resp.body, format!("{old}\n"));
    assert_eq!(resp.header("content-type"), Some("text/x.tlog.size"));

    // The good body, once replayed, is cosigned as if nothing had happened.
    let line = r.add_checkpoint(good.as_bytes()).expect(200).body.clone();
    let with = format!("{note}{line}");
    let n = signed_note::Note::from_bytes(with.as_bytes()).unwrap();
    let list = signed_note::VerifierList::new(vec![Box::new(r.verifier())]);
    let (ok, _) = n.verify(&list).expect("the cosignature verifies");
    assert_eq!(ok.len(), 1);
    assert_eq!(r.latest(&origin).map(|(s, _)| s), Some(new));
}
