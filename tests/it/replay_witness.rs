//! `consentlog witness --replay` (issue 12 item 4): a witness that cosigns a consentlog log only
//! up to the size it has replayed from the log's public leaves. An honest `serve` is replayed
//! and cosigned (a checkpoint beyond the replayed size first gets 503 with Retry-After); a log
//! that appends a lying map leaf is cosigned by a plain witness but refused by the replaying
//! one, which writes conclusive evidence; its state survives restarts, refusal included.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use consentlog::api::ConsistencyQuery;
use consentlog::core::hash::Hash;
use consentlog::core::vkey::Vkey;
use consentlog::ledger::clock::{Clock, ManualClock, SystemClock};
use consentlog::tlog_witness::Witness;
use signed_note::{Note, VerifierList};

use crate::support::replay::{HostileBundle, LyingLog};
use crate::support::witness::{add_checkpoint_body, ledger_vkey, TestWitness};
use crate::support::{free_port, now_ms, poll, run, Person, Server};

const NAME: &str = "replay.test/r1";
const INTERVAL: Duration = Duration::from_millis(50);

fn replaying(
    dir: &Path,
    key: &ed25519_dalek::SigningKey,
    log: &Vkey,
    url: &str,
    clock: Arc<dyn Clock>,
) -> TestWitness {
    TestWitness::start_replaying(dir, key.clone(), NAME, log.clone(), url, clock, INTERVAL)
}

/// Waits until `w` has replayed `size` leaves.
#[track_caller]
fn wait_replayed(w: &TestWitness, size: u64) {
    let r = w.witness.replay().expect("a replaying witness");
    poll(Duration::from_secs(30), || {
        (r.replayed() >= size).then_some(())
    })
    .unwrap_or_else(|| panic!("replayed {} of {size} leaves", r.replayed()));
}

/// The consistency proof between two sizes, from the server.
fn proof(srv: &Server, old: u64, new: u64) -> Vec<Hash> {
    if old == 0 || old == new {
        return Vec::new();
    }
    let c = consentlog::client::Client::new(&srv.url, None);
    let p = c
        .consistency(&ConsistencyQuery {
            old,
            new: Some(new),
        })
        .expect("consistency proof");
    p.path.iter().map(|h| h.0).collect()
}

/// Asserts that `line` is a valid cosignature by `w` of `note`.
#[track_caller]
fn assert_cosigns(w: &TestWitness, note: &str, line: &str) {
    let with = format!("{note}{line}");
    let n = Note::from_bytes(with.as_bytes()).expect("note");
    let list = VerifierList::new(vec![Box::new(w.verifier())]);
    let (ok, _) = n.verify(&list).expect("the cosignature verifies");
    assert_eq!(ok.len(), 1, "one cosignature by {}", w.name);
}

#[test]
fn an_honest_log_is_replayed_then_cosigned_and_a_restart_resumes_from_disk() {
    let srv = Server::in_process(&["--checkpoint-interval", "50"]);
    let vkey = ledger_vkey(&srv.origin, &srv.log_key);
    let mut p = Person::new();
    for _ in 0..3 {
        srv.append(&p.step(&srv.origin, true));
    }
    let events = srv.events();
    let cp = srv.wait_covered(events + 1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replaying");
    let key = consentlog::keyfile::generate();
    // A clock far behind the log's: every map leaf is ahead of it, so nothing past the first
    // map leaf is replayed and nothing of the log is cosigned.
    let clock = ManualClock::new(1_000);
    let w = replaying(&dir, &key, &vkey, &srv.url, Arc::new(clock.clone()));
    std::thread::sleep(INTERVAL * 6);
    let r = w.witness.replay().unwrap();
    assert!(
        r.replayed() < cp.size,
        "held back before a map leaf ahead of the clock"
    );
    let body = add_checkpoint_body(0, &[], &cp.note);
    let resp = w.add_checkpoint(body.as_bytes());
    resp.expect(503);
    assert_eq!(resp.header("retry-after"), Some("1"), "{resp:#?}");
    assert!(resp.body.contains("not replayed yet"), "{}", resp.body);
    assert_eq!(w.latest(&srv.origin), None, "nothing cosigned");

    // The clock reaches the log's time: the witness replays and cosigns.
    clock.set(now_ms() + 1_000);
    wait_replayed(&w, cp.size);
    let resp = w.add_checkpoint(body.as_bytes());
    resp.expect(200);
    assert_cosigns(&w, &cp.note, &resp.body);

    // The log grows; the next checkpoint is cosigned with a consistency proof from the first.
    for _ in 0..2 {
        srv.append(&p.step(&srv.origin, false));
    }
    let cp2 = srv.wait_covered(cp.size + 2);
    wait_replayed(&w, cp2.size);
    let body2 = add_checkpoint_body(cp.size, &proof(&srv, cp.size, cp2.size), &cp2.note);
    let resp = w.add_checkpoint(body2.as_bytes());
    resp.expect(200);
    assert_cosigns(&w, &cp2.note, &resp.body);
    let replayed = r.replayed();
    drop(w);

    // Restart with the log gone: the state comes from the witness's own disk.
    let gone = "http://127.0.0.1:9";
    let w = replaying(&dir, &key, &vkey, gone, Arc::new(SystemClock));
    assert_eq!(w.witness.replay().unwrap().replayed(), replayed);
    let again = add_checkpoint_body(cp2.size, &[], &cp2.note);
    let resp = w.add_checkpoint(again.as_bytes());
    resp.expect(200);
    assert_cosigns(&w, &cp2.note, &resp.body);
}

#[test]
fn a_lying_map_leaf_is_refused_with_evidence_while_a_plain_witness_cosigns_it() {
    let log = LyingLog::start("lying.test/log");
    let vkey = log.vkey();
    log.honest_batch(3);
    let honest = log.checkpoint();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replaying");
    let key = consentlog::keyfile::generate();
    let w = replaying(&dir, &key, &vkey, &log.url, Arc::new(SystemClock));
    let plain = TestWitness::start(std::slice::from_ref(&vkey));
    wait_replayed(&w, log.size());
    let body = add_checkpoint_body(0, &[], &honest);
    assert_cosigns(
        &w,
        &honest,
        &w.add_checkpoint(body.as_bytes()).expect(200).body,
    );
    plain.add_checkpoint(body.as_bytes()).expect(200);

    // The operator appends a map leaf whose root leaves a key at its previous event.
    let old = log.size();
    log.lying_batch();
    let lie = log.checkpoint();
    let r = w.witness.replay().unwrap();
    poll(Duration::from_secs(30), || r.refused()).expect("the replaying witness catches the lie");
    // The plain witness checks only consistency: it cosigns the lie.
    let proof = tree_proof(&log, old);
    let body = add_checkpoint_body(old, &proof, &lie);
    plain.add_checkpoint(body.as_bytes()).expect(200);
    let resp = w.add_checkpoint(body.as_bytes());
    resp.expect(409);
    assert!(resp.body.contains("no longer cosigns"), "{}", resp.body);
    // Even the honest checkpoint is no longer cosigned.
    let resp = w.add_checkpoint(add_checkpoint_body(old, &[], &honest).as_bytes());
    resp.expect(409);

    // Conclusive evidence, checkable by anyone with the log key.
    let ev = dir.join("evidence-map_root_mismatch.json");
    assert!(
        ev.is_file(),
        "evidence in {}: {:?}",
        dir.display(),
        std::fs::read_dir(&dir).unwrap().collect::<Vec<_>>()
    );
    let out = run(&["verify-evidence", ev.to_str().unwrap()]);
    out.assert_code(0);

    // The refusal survives a restart.
    drop(w);
    let w = replaying(&dir, &key, &vkey, &log.url, Arc::new(SystemClock));
    assert!(w.witness.replay().unwrap().refused().is_some());
    w.add_checkpoint(body.as_bytes()).expect(409);
}

/// A log that signs two checkpoints of one size (a fork): the replaying witness, which matched
/// the first while following the log, refuses the second when it is submitted, stops cosigning
/// the log and writes conclusive evidence (same_size_different_roots) that
/// `consentlog verify-evidence` accepts. A conflicting checkpoint of a size the follower never
/// fetched a note of is refused too, with a text report (no evidence kind shows it without the
/// leaves).
#[test]
fn a_forked_checkpoint_is_refused_with_evidence() {
    let log = LyingLog::start("forked.test/log");
    let vkey = log.vkey();
    log.honest_batch(3);
    let honest = log.checkpoint();
    let size = log.size();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replaying");
    let key = consentlog::keyfile::generate();
    let w = replaying(&dir, &key, &vkey, &log.url, Arc::new(SystemClock));
    wait_replayed(&w, size);
    let body = add_checkpoint_body(0, &[], &honest);
    assert_cosigns(
        &w,
        &honest,
        &w.add_checkpoint(body.as_bytes()).expect(200).body,
    );

    // The same size, another root, signed by the log's key.
    let forked = log.sign(size, [7; 32]);
    let resp = w.add_checkpoint(add_checkpoint_body(size, &[], &forked).as_bytes());
    resp.expect(409);
    assert!(resp.body.contains("no longer cosigns"), "{}", resp.body);
    let ev = dir.join("evidence-same_size_different_roots.json");
    assert!(
        ev.is_file(),
        "evidence in {}: {:?}",
        dir.display(),
        std::fs::read_dir(&dir).unwrap().collect::<Vec<_>>()
    );
    let out = run(&["verify-evidence", ev.to_str().unwrap()]);
    out.assert_code(0);
    assert!(!dir.join("refusal.txt").exists());
    // Nothing of the log is cosigned any more, the honest checkpoint included.
    w.add_checkpoint(body.as_bytes()).expect(409);
    drop(w);

    // A conflicting checkpoint at a size where the follower holds no note (a map leaf inside
    // the tree, not the end of a checkpoint it fetched): refused, with a text report.
    let log = LyingLog::start("forked2.test/log");
    let vkey = log.vkey();
    let first = log.honest_batch(2);
    log.honest_batch(2);
    let dir = tmp.path().join("replaying2");
    let w = replaying(&dir, &key, &vkey, &log.url, Arc::new(SystemClock));
    wait_replayed(&w, log.size());
    let forked = log.sign(first, [9; 32]);
    let resp = w.add_checkpoint(add_checkpoint_body(first, &[], &forked).as_bytes());
    resp.expect(409);
    let report = std::fs::read_to_string(dir.join("refusal.txt")).expect("a text report");
    assert!(
        report.contains("whose root is not that of the leaves"),
        "{report}"
    );
    assert!(report.contains(&forked), "{report}");
    assert!(w.witness.replay().unwrap().refused().is_some());
}

/// The consistency proof of the lying log from `old` to its size, computed from its leaves
/// as anyone holding them would.
fn tree_proof(log: &LyingLog, old: u64) -> Vec<Hash> {
    let client = consentlog::client::Client::new(&log.url, None);
    let mut tree = consentlog::core::tlog::MemoryTree::new(consentlog::core::tlog::Sha256Hasher);
    let size = log.size();
    let mut next = 0;
    while next < size {
        let page = client
            .entries(&consentlog::api::PageQuery {
                start: Some(next),
                end: Some(size),
            })
            .unwrap();
        for row in page.entries {
            tree.push(&row.entry);
        }
        next = page.end;
    }
    consentlog::core::tlog::prove_consistency(
        &consentlog::core::tlog::Sha256Hasher,
        &tree,
        consentlog::core::tlog::TreeSize(old),
        tree.size(),
    )
    .unwrap()
}

#[test]
fn a_state_keeps_its_role() {
    let log = LyingLog::start("roles.test/log");
    let vkey = log.vkey();
    let tmp = tempfile::tempdir().unwrap();
    let key = consentlog::keyfile::generate();
    // A plain witness's state is refused in replay mode.
    let plain = tmp.path().join("plain");
    drop(
        Witness::open(
            &plain,
            key.clone(),
            NAME,
            vec![vkey.clone()],
            Arc::new(SystemClock),
        )
        .unwrap(),
    );
    let e = Witness::open_replaying(
        &plain,
        key.clone(),
        NAME,
        vkey.clone(),
        &log.url,
        Arc::new(SystemClock),
    )
    .unwrap_err();
    assert!(e.to_string().contains("plain witness"), "{e}");
    // And a replaying witness's in plain mode.
    let rep = tmp.path().join("replaying");
    drop(
        Witness::open_replaying(
            &rep,
            key.clone(),
            NAME,
            vkey.clone(),
            &log.url,
            Arc::new(SystemClock),
        )
        .unwrap(),
    );
    let e = Witness::open(&rep, key, NAME, vec![vkey], Arc::new(SystemClock)).unwrap_err();
    assert!(e.to_string().contains("replaying witness"), "{e}");
}

#[test]
fn the_cli_follows_one_log() {
    let tmp = tempfile::tempdir().unwrap();
    let keyf = tmp.path().join("w.key");
    run(&["keygen", "--out", keyf.to_str().unwrap()]).ok();
    let a = LyingLog::start("a.test/log");
    let b = LyingLog::start("b.test/log");
    let r = run(&[
        "witness",
        "--replay",
        &a.url,
        "--log",
        &a.vkey().to_text(),
        "--log",
        &b.vkey().to_text(),
        "--dir",
        tmp.path().join("w").to_str().unwrap(),
        "--key",
        keyf.to_str().unwrap(),
        "--name",
        NAME,
    ]);
    r.assert_code(64);
    r.assert_fails_with("exactly one --log");
}

/// `consentlog witness --replay` as a process, killed when dropped.
struct ReplayingProc(std::process::Child);

impl Drop for ReplayingProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_gets_the_replaying_witness_cosignature_and_verify_says_map_replayed() {
    use consentlog::core::vkey::{Vkey, TYPE_COSIGNATURE_V1, TYPE_ED25519};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let origin = "replayed.test/log";
    run(&["init", "--dir", dir.to_str().unwrap(), "--origin", origin]).ok();
    let log_key = consentlog::ledger::Ledger::open(&dir)
        .expect("open the new ledger")
        .public_key();
    let log = Vkey::new(origin, TYPE_ED25519, log_key).unwrap();
    let keyf = tmp.path().join("r.key");
    run(&["keygen", "--out", keyf.to_str().unwrap()]).ok();
    let key = consentlog::keyfile::read_person(&keyf, "witness").unwrap();
    let wv = Vkey::new(NAME, TYPE_COSIGNATURE_V1, key.verifying_key()).unwrap();
    let port = free_port();
    let wurl = format!("http://127.0.0.1:{port}");
    let policy = tmp.path().join("policy.txt");
    std::fs::write(
        &policy,
        format!(
            "log {}\nwitness r {} {wurl}\ngroup replaying 1 r\nquorum replaying\n",
            log.to_text(),
            wv.to_text()
        ),
    )
    .unwrap();
    let reader = "replay-witness-reader-token-01";
    let srv = Server::start_in(
        &dir,
        &[
            "--witness-policy",
            policy.to_str().unwrap(),
            "--witness-interval",
            "100",
            "--checkpoint-interval",
            "50",
            "--reader-token",
            reader,
        ],
    );
    let wdir = tmp.path().join("replaying");
    let _w = ReplayingProc(
        std::process::Command::new(crate::support::bin())
            .args([
                "witness",
                "--replay",
                &srv.url,
                "--log",
                &log.to_text(),
                "--dir",
                wdir.to_str().unwrap(),
                "--key",
                keyf.to_str().unwrap(),
                "--name",
                NAME,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--replay-interval",
                "100",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn the replaying witness"),
    );
    let mut p = Person::new();
    srv.append(&p.step(&srv.origin, true));
    let proof = poll(Duration::from_secs(60), || {
        let v = srv
            .get_auth(&p.consent_path(None), &crate::support::bearer(reader))
            .expect(200)
            .json();
        v.get("witnessed").is_some().then_some(v)
    })
    .expect("a proof carrying a checkpoint cosigned by the replaying witness");
    let file = tmp.path().join("proof.json");
    std::fs::write(&file, proof.to_string()).unwrap();
    let out = run(&[
        "verify",
        "--log-key",
        &srv.log_key_hex,
        "--subject",
        &p.hex(),
        "--controller",
        &p.controller,
        "--purpose",
        &p.purpose,
        "--any-question",
        "--policy",
        policy.to_str().unwrap(),
        file.to_str().unwrap(),
    ])
    .ok();
    assert!(out.stdout.contains("map_replayed: yes"), "{out:#?}");
}

/// The follower of `log` (what `witness --replay` runs) with its state in `dir`, on the system
/// clock, driven round by round by the test.
fn open_replay(dir: &Path, log: &LyingLog) -> consentlog::tlog_witness::replay::Replay {
    let vkey = log.vkey();
    consentlog::tlog_witness::replay::Replay::open(
        dir,
        &vkey.name,
        vkey.key,
        &log.url,
        Arc::new(SystemClock),
    )
    .expect("open")
}

/// An entry bundle that is not what its path names (cut short, a length past its end, an
/// entry more or fewer than its width, longer than any bundle of its width, which is not read
/// past that length) is refused with an error naming it: nothing of it is replayed or stored,
/// and the log is not taken for a liar (the next round fetches it again). So is a checkpoint
/// longer than any note.
#[test]
fn a_hostile_entry_bundle_is_refused_and_changes_nothing() {
    let log = LyingLog::start("replay.test/hostile");
    log.honest_batch(300);
    let size = log.honest_batch(20);
    assert!(size > 256, "{size}");
    let dir = tempfile::tempdir().unwrap();
    let open = || open_replay(dir.path(), &log);
    let client = consentlog::client::Client::new(&log.url, None);
    let r = open();
    for h in [
        HostileBundle::Truncated,
        HostileBundle::LengthPastEnd,
        HostileBundle::ExtraEntry,
        HostileBundle::MissingEntry,
        HostileBundle::Oversized,
    ] {
        log.hostile_bundles(Some(h));
        let e = r.round(&client).expect_err("a hostile bundle is refused");
        let named = match h {
            // 256 entries of at most 65,535 bytes, each after its 2-byte length.
            HostileBundle::Oversized => {
                e.contains("entry bundle tile/entries/000")
                    && e.contains("the body is longer than 16777472 bytes")
            }
            _ => e.contains("the log sent a bad entry bundle tile/entries/000"),
        };
        assert!(named, "{h:?}: {e}");
        assert_eq!(r.replayed(), 0, "{h:?}");
        assert_eq!(r.refused(), None, "{h:?}");
    }
    // A checkpoint longer than any note is refused as such, unread past that length.
    log.hostile_bundles(None);
    log.oversized_note(true);
    let e = r.round(&client).expect_err("an oversized note is refused");
    assert!(
        e.starts_with("checkpoint: ") && e.contains("the body is longer than 16384 bytes"),
        "{e}"
    );
    assert_eq!(r.replayed(), 0);
    assert_eq!(r.refused(), None);
    log.oversized_note(false);
    drop(r);
    // Nothing was stored either: a reopened state has replayed nothing, and then the honest
    // bundles replay the whole log.
    let r = open();
    assert_eq!(r.replayed(), 0);
    log.hostile_bundles(None);
    assert_eq!(r.round(&client), Ok(true));
    assert_eq!(r.replayed(), size);
    assert_eq!(r.refused(), None);
    drop(r);
    // A restart replays the bundles it stored (one partial), then follows the log's growth.
    let r = open();
    assert_eq!(r.replayed(), size);
    let grown = log.honest_batch(600);
    assert_eq!(r.round(&client), Ok(true));
    assert_eq!(r.replayed(), grown);
    drop(r);
    assert_eq!(open().replayed(), grown);
}

/// A lie early in a log longer than one page (10,240 leaves) is caught in the first page; the
/// evidence then needs every leaf of the checkpoint followed, so the rest is read from the
/// log's entry bundles (each capped at the longest its width allows, as the replay reads
/// them). The evidence is conclusive, and `consentlog verify-evidence` accepts it.
#[test]
fn a_lie_early_in_a_long_log_gives_evidence_from_the_bundles_after_it() {
    let log = LyingLog::start("replay.test/long");
    log.honest_batch(3);
    let lie = log.lying_batch();
    let size = log.honest_batch(12_000);
    assert!(size > 10_240 + lie, "{size}");
    let dir = tempfile::tempdir().unwrap();
    let open = || open_replay(dir.path(), &log);
    let r = open();
    let client = consentlog::client::Client::new(&log.url, None);
    let _ = r.round(&client);
    let why = r.refused().expect("the lie is caught");
    assert!(why.contains("evidence-map_root_mismatch.json"), "{why}");
    let ev = dir.path().join("evidence-map_root_mismatch.json");
    let out = run(&["verify-evidence", ev.to_str().unwrap()]);
    out.assert_code(0);
    let text = std::fs::read_to_string(&ev).unwrap();
    // Under the checkpoint followed, the whole log's: its leaves past the first page were read.
    assert!(
        text.contains(&format!("\\n{size}\\n")),
        "the evidence is not under the checkpoint of {size}: {text}"
    );
    // Nothing of the page holding the lie was stored, and the refusal was.
    drop(r);
    let r = open();
    assert_eq!(r.replayed(), 0);
    assert!(r.refused().is_some());
}
