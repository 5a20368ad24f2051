//! `consentlog witness` (c2sp.org/tlog-witness), through real HTTP: every status code of the
//! specification, byte-exact bodies, cosignatures checked against c2sp.org/tlog-cosignature's
//! definitions, forks cosigned on at most one branch (also under concurrent requests), refused
//! requests changing nothing, and the state surviving a restart of the binary.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use consentlog::core::cosignature::{self, CosignatureVerifier};
use consentlog::core::vkey::{Vkey, TYPE_COSIGNATURE_V1};
use consentlog::ledger::clock::ManualClock;
use consentlog::tlog_witness::{Limits, DEFAULT_BODY_LIMIT};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use signed_note::{Note, VerifierList};

use crate::support::process::read_lines;
use crate::support::witness::{add_checkpoint_body, ledger_vkey, sign_note, TestLog, TestWitness};
use crate::support::{bin, run, s, Resp};

const ORIGIN: &str = "example.com/behind-the-sofa";

/// A log with `n` leaves and a witness for it.
fn setup(n: u64) -> (TestLog, TestWitness) {
    let mut log = TestLog::new(ORIGIN);
    log.append(n, "a");
    let w = TestWitness::start(&[log.vkey()]);
    (log, w)
}

/// Asserts a 200 whose body is one cosignature line by `w` on `note`; returns its timestamp.
#[track_caller]
fn cosigned(w: &TestWitness, r: &Resp, note: &str) -> u64 {
    r.expect(200);
    let line = &r.body;
    assert!(
        line.starts_with(&format!("\u{2014} {} ", w.name)) && line.ends_with('\n'),
        "{r:#?}"
    );
    assert_eq!(line.matches('\n').count(), 1, "one line: {r:#?}");
    // As the specification suggests: the response appended to the checkpoint is a note that
    // a note verifier configured with the witness key accepts.
    let joined = format!("{note}{line}");
    let note = Note::from_bytes(joined.as_bytes()).expect("note with the cosignature");
    let (ok, _) = note
        .verify(&VerifierList::new(vec![Box::new(w.verifier())]))
        .unwrap_or_else(|e| panic!("cosignature does not verify ({e}): {r:#?}"));
    assert_eq!(ok.len(), 1);
    cosignature::timestamp(ok[0].signature()).expect("timestamp")
}

/// Asserts a 409 with exactly `size\n` as `text/x.tlog.size`.
#[track_caller]
fn conflict(r: &Resp, size: u64) {
    r.expect(409);
    assert_eq!(r.header("content-type"), Some("text/x.tlog.size"), "{r:#?}");
    assert_eq!(r.body, format!("{size}\n"), "{r:#?}");
}

#[test]
fn first_checkpoint_then_growth_with_a_real_consistency_proof() {
    let (mut log, w) = setup(5);
    assert_eq!(w.latest(ORIGIN), None);
    let r = w.add_checkpoint(log.body_from(0).as_bytes());
    cosigned(&w, &r, &log.checkpoint());
    assert_eq!(w.latest(ORIGIN), Some((5, log.root_at(5))));
    // Growth: every size from 6 to 40, each from the one before, with a real proof.
    for new in 6..=40 {
        log.append(1, "a");
        let body = log.body(new - 1, new);
        cosigned(&w, &w.add_checkpoint(body.as_bytes()), &log.checkpoint());
    }
    // A jump with a longer proof, and the same checkpoint again (empty proof).
    log.append(1000, "a");
    cosigned(
        &w,
        &w.add_checkpoint(log.body_from(40).as_bytes()),
        &log.checkpoint(),
    );
    cosigned(
        &w,
        &w.add_checkpoint(log.body_from(1040).as_bytes()),
        &log.checkpoint(),
    );
    assert_eq!(w.latest(ORIGIN), Some((1040, log.root_at(1040))));
    // The stored note is the checkpoint with the log's signature and the cosignature.
    let rec = w.witness.latest(ORIGIN).unwrap().unwrap();
    assert!(rec.note.starts_with(&log.checkpoint()));
    assert_eq!(rec.note.matches('\u{2014}').count(), 2);
}

#[test]
fn a_consentlog_ledger_is_witnessed() {
    use crate::support::ledger::add_noise;
    let l = crate::support::TestLedger::new();
    let w = TestWitness::start(&[ledger_vkey(&l.origin, &l.public_key())]);
    let cp1 = l.checkpoint();
    let r = w.add_checkpoint(add_checkpoint_body(0, &[], &cp1.note).as_bytes());
    cosigned(&w, &r, &cp1.note);
    add_noise(&l, 5);
    let cp2 = l.checkpoint();
    assert!(cp2.size > cp1.size);
    let proof = l.prove_consistency(cp1.size, Some(cp2.size)).unwrap();
    let path: Vec<[u8; 32]> = proof.path.iter().map(|h| h.0).collect();
    let r = w.add_checkpoint(add_checkpoint_body(cp1.size, &path, &cp2.note).as_bytes());
    cosigned(&w, &r, &cp2.note);
    assert_eq!(w.latest(&l.origin), Some((cp2.size, cp2.root)));
}

#[test]
fn an_empty_log_and_extension_lines_and_any_origin() {
    let mut log = TestLog::new("Example.COM/Log_2026~\u{fc}");
    log.extensions = vec!["extension line one".into(), "x".into()];
    let w = TestWitness::start(&[log.vkey()]);
    // Size 0 with a root that is not the empty tree's: the same size as the witness's (0),
    // another root.
    let wrong = log.sign_text(&format!("{}\n0\n{}\n", log.origin, B64.encode([7u8; 32])));
    let r = w.add_checkpoint(add_checkpoint_body(0, &[], &wrong).as_bytes());
    r.expect(409);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(w.latest(&log.origin), None);
    // Size 0, root of the empty tree.
    cosigned(
        &w,
        &w.add_checkpoint(log.body_from(0).as_bytes()),
        &log.checkpoint(),
    );
    log.append(3, "a");
    cosigned(
        &w,
        &w.add_checkpoint(log.body_from(0).as_bytes()),
        &log.checkpoint(),
    );
    assert_eq!(w.latest(&log.origin), Some((3, log.root_at(3))));
}

#[test]
fn conflict_409_carries_the_witness_size_byte_exact() {
    let (log, w) = setup(5);
    // Never cosigned: the size is 0.
    conflict(&w.add_checkpoint(log.body(4, 5).as_bytes()), 0);
    cosigned(
        &w,
        &w.add_checkpoint(log.body(0, 5).as_bytes()),
        &log.checkpoint(),
    );
    conflict(&w.add_checkpoint(log.body(0, 5).as_bytes()), 5);
    conflict(&w.add_checkpoint(log.body(3, 5).as_bytes()), 5);
    conflict(&w.add_checkpoint(log.body(3, 4).as_bytes()), 5);
    // The exact wire bytes: status line, content type, body.
    let r = w.add_checkpoint(log.body(1, 5).as_bytes());
    assert_eq!(r.body.as_bytes(), b"5\n");
    assert_eq!(r.header("content-length"), Some("2"));
    assert_eq!(w.latest(ORIGIN), Some((5, log.root_at(5))));
}

#[test]
fn unknown_origin_404_bad_signature_403() {
    let (log, w) = setup(5);
    // A log the witness was not given.
    let mut other = TestLog::new("example.com/other-log");
    other.append(5, "a");
    w.add_checkpoint(other.body_from(0).as_bytes()).expect(404);
    // The configured origin signed by another key: 403.
    let mut impostor = TestLog::new(ORIGIN);
    impostor.append(5, "a");
    w.add_checkpoint(impostor.body_from(0).as_bytes())
        .expect(403);
    // The right key, but the body changed after signing: 403.
    let note = log.checkpoint().replace("\n5\n", "\n6\n");
    w.add_checkpoint(add_checkpoint_body(0, &[], &note).as_bytes())
        .expect(403);
    // Only signatures by unknown keys (the right origin as text, another key name): 403.
    let note = sign_note(
        "someone.else/key",
        &consentlog::keyfile::generate(),
        &log.body_at(5),
    );
    w.add_checkpoint(add_checkpoint_body(0, &[], &note).as_bytes())
        .expect(403);
    // The log's own signature beside an unknown one is enough; the unknown one is ignored.
    let both = format!(
        "{}{}",
        log.checkpoint(),
        sign_note(
            "someone.else/key",
            &consentlog::keyfile::generate(),
            &log.body_at(5)
        )
        .split_once("\n\n")
        .unwrap()
        .1
    );
    assert_eq!(w.latest(ORIGIN), None, "refusals change nothing");
    cosigned(
        &w,
        &w.add_checkpoint(add_checkpoint_body(0, &[], &both).as_bytes()),
        &both,
    );
}

#[test]
fn bad_consistency_proofs_get_422_and_change_nothing() {
    let (mut log, w) = setup(5);
    cosigned(
        &w,
        &w.add_checkpoint(log.body_from(0).as_bytes()),
        &log.checkpoint(),
    );
    log.append(7, "a");
    let good = log.proof(5, 12);
    let note = log.checkpoint();
    let mut flipped = good.clone();
    flipped[1][7] ^= 1;
    let cases: Vec<Vec<[u8; 32]>> = vec![
        flipped,
        good[1..].to_vec(),
        [good.clone(), vec![good[0]]].concat(),
        vec![],
        log.proof(4, 12),
    ];
    for proof in cases {
        let r = w.add_checkpoint(add_checkpoint_body(5, &proof, &note).as_bytes());
        r.expect(422);
        assert_eq!(w.latest(ORIGIN), Some((5, log.root_at(5))));
    }
    // From 0 the proof must be empty.
    let (log0, w0) = setup(3);
    w0.add_checkpoint(add_checkpoint_body(0, &[log0.root_at(1)], &log0.checkpoint()).as_bytes())
        .expect(422);
    assert_eq!(w0.latest(ORIGIN), None);
    // Between equal sizes too.
    cosigned(
        &w,
        &w.add_checkpoint(add_checkpoint_body(5, &good, &note).as_bytes()),
        &note,
    );
    w.add_checkpoint(add_checkpoint_body(12, &[good[0]], &note).as_bytes())
        .expect(422);
    assert_eq!(w.latest(ORIGIN), Some((12, log.root_at(12))));
}

#[test]
fn malformed_bodies_get_400_and_change_nothing() {
    let (mut log, w) = setup(5);
    cosigned(
        &w,
        &w.add_checkpoint(log.body_from(0).as_bytes()),
        &log.checkpoint(),
    );
    log.append(3, "a");
    let valid = log.body_from(5);
    // Every truncation of a valid body.
    for cut in 0..valid.len() {
        if !valid.is_char_boundary(cut) {
            continue;
        }
        let r = w.add_checkpoint(&valid.as_bytes()[..cut]);
        assert_eq!(r.status, 400, "cut at {cut}: {r:#?}");
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    }
    let proof = log.proof(5, 8);
    let note = log.checkpoint();
    let lines: String = proof
        .iter()
        .map(|h| format!("{}\n", B64.encode(h)))
        .collect();
    let bad = [
        format!("old 05\n{lines}\n{note}"),
        format!("old +5\n{lines}\n{note}"),
        format!("old 5 \n{lines}\n{note}"),
        format!("old  5\n{lines}\n{note}"),
        format!("old 0x5\n{lines}\n{note}"),
        format!("OLD 5\n{lines}\n{note}"),
        format!("old 5\r\n{lines}\n{note}"),
        format!("{lines}\n{note}"),
        format!("old 5\n{lines}{note}"),
        format!("old 5\n{}\n{note}", lines.replace('=', "")),
        format!("old 5\n{lines}\n{}", note.replace("\n8\n", "\n08\n")),
        // 64 proof lines, and many more.
        add_checkpoint_body(5, &[proof[0]; 64], &note),
        add_checkpoint_body(5, &vec![proof[0]; 10_000], &note),
        // old larger than the checkpoint's size.
        add_checkpoint_body(9, &[], &note),
        add_checkpoint_body(u64::MAX, &[], &note),
        format!("old 5\n{lines}\n{note}garbage\n"),
        format!("old 5\n{lines}\n{note}").replace('\u{2014}', "-"),
    ];
    for body in &bad {
        let r = w.add_checkpoint(body.as_bytes());
        assert_eq!(r.status, 400, "{body:?}: {r:#?}");
        assert_eq!(w.latest(ORIGIN), Some((5, log.root_at(5))), "{body:?}");
    }
    // A checkpoint body with a non-canonical size, validly signed: still 400.
    let text = log.body_at(8).replace("\n8\n", "\n08\n");
    w.add_checkpoint(add_checkpoint_body(5, &proof, &log.sign_text(&text)).as_bytes())
        .expect(400);
    // 63 proof lines are parsed (and then refused as a wrong proof, 422).
    let sixty_three = add_checkpoint_body(5, &vec![proof[0]; 63], &note);
    w.add_checkpoint(sixty_three.as_bytes()).expect(422);
    // Another method or path.
    assert_eq!(
        crate::support::send(
            &w.agent,
            "GET",
            &format!("{}/add-checkpoint", w.url),
            None,
            None
        )
        .status,
        405
    );
    let r = crate::support::send(
        &w.agent,
        "POST",
        &format!("{}/v1/add-checkpoint", w.url),
        None,
        Some(valid.as_bytes()),
    );
    assert_eq!((r.status, r.body.as_str()), (404, ""));
    // After all that, the valid request still works.
    cosigned(&w, &w.add_checkpoint(valid.as_bytes()), &note);
}

#[test]
fn oversized_bodies_get_413() {
    let mut log = TestLog::new(ORIGIN);
    log.append(5, "a");
    let tmp = tempfile::tempdir().unwrap();
    let limits = Limits {
        body_limit: 4096,
        ..Limits::default()
    };
    let w = TestWitness::start_with(
        &tmp.path().join("w"),
        consentlog::keyfile::generate(),
        "witness.test/small",
        &[log.vkey()],
        Arc::new(consentlog::ledger::clock::SystemClock),
        limits,
    );
    // A valid request padded with unknown signature lines past the limit.
    let pad = sign_note(
        "pad.example/key",
        &consentlog::keyfile::generate(),
        &log.body_at(5),
    );
    let pad_line = pad.split_once("\n\n").unwrap().1;
    let mut note = log.checkpoint();
    while note.len() < 5000 {
        note.push_str(pad_line);
    }
    w.add_checkpoint(add_checkpoint_body(0, &[], &note).as_bytes())
        .expect(413);
    assert_eq!(w.latest(ORIGIN), None);
    w.add_checkpoint(&vec![b'x'; 4097]).expect(413);
    // Just under it passes.
    let mut note = log.checkpoint();
    while note.len() + pad_line.len() < 4000 {
        note.push_str(pad_line);
    }
    cosigned(
        &w,
        &w.add_checkpoint(add_checkpoint_body(0, &[], &note).as_bytes()),
        &note,
    );
    assert_eq!(DEFAULT_BODY_LIMIT, 1 << 20);
}

#[test]
fn a_fork_is_cosigned_on_at_most_one_branch() {
    // Same key, same origin, two histories that agree on 4 leaves.
    let mut a = TestLog::new(ORIGIN);
    a.append(4, "common");
    let mut b = a.prefix(4);
    a.append(4, "a");
    b.append(4, "b");
    assert_ne!(a.root_at(8), b.root_at(8));
    let w = TestWitness::start(&[a.vkey()]);
    cosigned(
        &w,
        &w.add_checkpoint(a.body(0, 4).as_bytes()),
        &a.checkpoint_at(4),
    );
    cosigned(
        &w,
        &w.add_checkpoint(a.body(4, 8).as_bytes()),
        &a.checkpoint_at(8),
    );
    // The other branch at the same size: 409 (same size, other root), as plain text: a
    // text/x.tlog.size body would invite the log to re-send from 8, forever.
    let r = w.add_checkpoint(b.body(8, 8).as_bytes());
    r.expect(409);
    assert!(
        r.header("content-type").unwrap().starts_with("text/plain"),
        "{r:#?}"
    );
    assert!(r.body.contains("another root"), "{r:#?}");
    // Larger on the other branch, with B's own (valid for B) proof from 8: 422.
    b.append(4, "b");
    w.add_checkpoint(b.body(8, 12).as_bytes()).expect(422);
    // B's proof from 4 (the common prefix): 409, the witness is at 8.
    conflict(&w.add_checkpoint(b.body(4, 12).as_bytes()), 8);
    // A smaller checkpoint of either branch: old must be 8, larger than its size: 400.
    w.add_checkpoint(b.body(6, 6).replace("old 6", "old 8").as_bytes())
        .expect(400);
    assert_eq!(w.latest(ORIGIN), Some((8, a.root_at(8))));
    // A goes on.
    a.append(4, "a");
    cosigned(
        &w,
        &w.add_checkpoint(a.body(8, 12).as_bytes()),
        &a.checkpoint_at(12),
    );

    // Under concurrency: many forks of fresh logs, both branches sent at once from old 0;
    // exactly one is cosigned each time, and the state is that one.
    let logs: Vec<(TestLog, TestLog)> = (0..8)
        .map(|i| {
            let mut x = TestLog::new(&format!("fork.example/{i}"));
            x.append(3, "common");
            let mut y = x.prefix(3);
            x.append(5, "x");
            y.append(5, "y");
            (x, y)
        })
        .collect();
    let vkeys: Vec<Vkey> = logs.iter().map(|(x, _)| x.vkey()).collect();
    let w = Arc::new(TestWitness::start(&vkeys));
    for (x, y) in &logs {
        let bodies = [
            x.body(0, 8),
            y.body(0, 8),
            x.body(0, 6),
            y.body(0, 5),
            x.body(0, 8),
        ];
        let handles: Vec<_> = bodies
            .iter()
            .cloned()
            .map(|body| {
                let w = w.clone();
                std::thread::spawn(move || w.add_checkpoint(body.as_bytes()))
            })
            .collect();
        let answers: Vec<Resp> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let ok: Vec<usize> = (0..answers.len())
            .filter(|&i| answers[i].status == 200)
            .collect();
        assert_eq!(ok.len(), 1, "{answers:#?}");
        for a in &answers {
            assert!(a.status == 200 || a.status == 409, "{a:#?}");
        }
        let (size, root) = w.latest(&x.origin).unwrap();
        let winner = if ok[0].is_multiple_of(2) { x } else { y };
        assert_eq!(
            (size, root),
            (winner.size().min(size), winner.root_at(size))
        );
        // The other branch never gets a cosignature from here on.
        let loser = if ok[0].is_multiple_of(2) { y } else { x };
        let r = w.add_checkpoint(loser.body(size, 8).as_bytes());
        assert!(r.status == 409 || r.status == 422, "{r:#?}");
    }
}

#[test]
fn concurrent_growth_never_rolls_back() {
    // Requests of many sizes, all from old 0, at once: exactly one wins; then requests
    // from the winner's size to many larger sizes, at once: exactly one wins again, and the
    // stored size never goes down (tlog-witness's race).
    let mut log = TestLog::new(ORIGIN);
    log.append(64, "a");
    let w = Arc::new(TestWitness::start(&[log.vkey()]));
    let run = |bodies: Vec<String>| -> Vec<u16> {
        let hs: Vec<_> = bodies
            .into_iter()
            .map(|b| {
                let w = w.clone();
                std::thread::spawn(move || w.add_checkpoint(b.as_bytes()).status)
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    };
    let first = run((1..=16).map(|n| log.body(0, n)).collect());
    assert_eq!(first.iter().filter(|&&s| s == 200).count(), 1, "{first:?}");
    let (size, _) = w.latest(ORIGIN).unwrap();
    let second = run((size + 1..=64).map(|n| log.body(size, n)).collect());
    assert_eq!(
        second.iter().filter(|&&s| s == 200).count(),
        1,
        "{second:?}"
    );
    let (after, root) = w.latest(ORIGIN).unwrap();
    assert!(after > size);
    assert_eq!(root, log.root_at(after));
}

#[test]
fn cosignatures_match_the_tlog_cosignature_definitions() {
    let mut log = TestLog::new(ORIGIN);
    log.append(20852, "a");
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_679_315_147_999);
    let key = consentlog::keyfile::generate();
    let pubkey: VerifyingKey = key.verifying_key();
    let w = TestWitness::start_with(
        &tmp.path().join("w"),
        key.clone(),
        "witness.example.com/w1",
        &[log.vkey()],
        Arc::new(clock.clone()),
        Limits::default(),
    );
    let r = w.add_checkpoint(log.body_from(0).as_bytes());
    let t = cosigned(&w, &r, &log.checkpoint());
    // The timestamp is the clock's time in whole POSIX seconds.
    assert_eq!(t, 1_679_315_147);
    // By hand, from the specification's text: the line is `— <name> base64(key id ||
    // timestamp u64 big-endian || Ed25519 signature)`, the key id SHA-256(name || "\n" ||
    // 0x04 || key)[:4], the message "cosignature/v1\ntime <t>\n" || checkpoint body.
    let b64 = r.body.trim_end().rsplit_once(' ').unwrap().1;
    let raw = B64.decode(b64).unwrap();
    assert_eq!(raw.len(), 4 + 8 + 64);
    let mut h = Sha256::new();
    h.update(b"witness.example.com/w1\n");
    h.update([0x04]);
    h.update(pubkey.as_bytes());
    assert_eq!(&raw[..4], &h.finalize()[..4]);
    assert_eq!(raw[4..12], 1_679_315_147u64.to_be_bytes());
    let message = format!("cosignature/v1\ntime 1679315147\n{}", log.body_at(20852));
    let sig = Signature::from_slice(&raw[12..]).unwrap();
    pubkey.verify_strict(message.as_bytes(), &sig).unwrap();
    // The vkey the witness publishes is type 0x04 with the same id.
    let v = Vkey::parse(&w.vkey, TYPE_COSIGNATURE_V1).unwrap();
    assert_eq!(v.key_id().to_be_bytes(), raw[..4]);
    assert!(CosignatureVerifier::parse(&w.vkey).is_ok());

    // The specification's examples: the message layout, and the cosignature line of
    // witness.example.com/w1 in tlog-cosignature, whose timestamp is the example's time.
    let spec_body =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    assert_eq!(
        cosignature::message(1679315147, spec_body.as_bytes()),
        format!("cosignature/v1\ntime 1679315147\n{spec_body}").into_bytes()
    );
    let spec_line = "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==";
    let spec_raw = B64.decode(spec_line).unwrap();
    assert_eq!(spec_raw.len(), 4 + cosignature::COSIGNATURE_LEN);
    assert_eq!(cosignature::timestamp(&spec_raw[4..]), Some(1_679_315_147));

    // A clock stepped back never makes a later cosignature earlier.
    clock.set(1_000_000_000_000);
    let r = w.add_checkpoint(log.body_from(20852).as_bytes());
    assert_eq!(cosigned(&w, &r, &log.checkpoint()), 1_679_315_147);
    clock.set(1_800_000_000_000);
    let r = w.add_checkpoint(log.body_from(20852).as_bytes());
    assert_eq!(cosigned(&w, &r, &log.checkpoint()), 1_800_000_000);
}

#[test]
fn state_survives_reopening_and_belongs_to_one_witness() {
    let mut log = TestLog::new(ORIGIN);
    log.append(9, "a");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("w");
    let key = consentlog::keyfile::generate();
    let clock = Arc::new(consentlog::ledger::clock::SystemClock);
    let w = TestWitness::start_with(
        &dir,
        key.clone(),
        "w.test/a",
        &[log.vkey()],
        clock.clone(),
        Limits::default(),
    );
    cosigned(
        &w,
        &w.add_checkpoint(log.body_from(0).as_bytes()),
        &log.checkpoint(),
    );
    w.stop();
    let w = TestWitness::start_with(
        &dir,
        key.clone(),
        "w.test/a",
        &[log.vkey()],
        clock.clone(),
        Limits::default(),
    );
    conflict(&w.add_checkpoint(log.body_from(0).as_bytes()), 9);
    w.stop();
    // Another key or another name on the same state is refused.
    for (k, name) in [
        (consentlog::keyfile::generate(), "w.test/a"),
        (key, "w.test/b"),
    ] {
        let e =
            consentlog::tlog_witness::Witness::open(&dir, k, name, vec![log.vkey()], clock.clone())
                .unwrap_err()
                .to_string();
        assert!(e.contains("belongs to the witness"), "{e}");
    }
}

/// A `consentlog witness` child process: its banner read, killed when dropped.
struct WitnessProc {
    child: std::process::Child,
    url: String,
    vkey: String,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl WitnessProc {
    fn spawn(args: &[&str]) -> WitnessProc {
        let mut child = std::process::Command::new(bin())
            .arg("witness")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn consentlog witness");
        let (lines, rx, _reader) = read_lines(child.stdout.take().unwrap());
        let (mut url, mut vkey) = (None, None);
        while url.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no banner: {:?}", lines.lock().unwrap()));
            if let Some(v) = line.strip_prefix("witness vkey (put it in policies): ") {
                vkey = Some(v.to_string());
            } else if let Some(u) = line.strip_prefix("listening on ") {
                url = Some(u.to_string());
            }
        }
        WitnessProc {
            child,
            url: url.unwrap(),
            vkey: vkey.expect("vkey line"),
            lines,
        }
    }

    fn post(&self, body: &str) -> Resp {
        crate::support::send(
            &crate::support::agent(),
            "POST",
            &format!("{}/add-checkpoint", self.url),
            None,
            Some(body.as_bytes()),
        )
    }

    fn sigterm_and_wait(mut self) {
        let st = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let status = crate::support::wait_until(
            Duration::from_secs(30),
            || "the witness to exit",
            || self.child.try_wait().unwrap(),
        );
        assert!(status.success(), "{status:?}");
        assert!(self.lines.lock().unwrap().iter().any(|l| l == "stopped"));
    }
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_binary_keeps_its_state_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("witness.key");
    run(&["keygen", "--out", s(&key)]).ok();
    let mut log = TestLog::new(ORIGIN);
    log.append(5, "a");
    // The log's vkey once as text, and a second log's from a file.
    let mut other = TestLog::new("other.example/log");
    other.append(2, "a");
    let vkey_file = tmp.path().join("other.vkey");
    std::fs::write(&vkey_file, format!("{}\n", other.vkey().to_text())).unwrap();
    let dir = tmp.path().join("state");
    let log_vkey = log.vkey().to_text();
    let args = [
        "--dir",
        s(&dir),
        "--key",
        s(&key),
        "--name",
        "witness.test/proc",
        "--listen",
        "127.0.0.1:0",
        "--log",
        &log_vkey,
        "--log",
        s(&vkey_file),
    ];
    let printed = run(&[
        "witness",
        "--key",
        s(&key),
        "--name",
        "witness.test/proc",
        "--print-vkey",
    ])
    .ok();
    let p = WitnessProc::spawn(&args);
    assert_eq!(printed.stdout.trim_end(), p.vkey);
    let verifier = CosignatureVerifier::parse(&p.vkey).unwrap();
    let r = p.post(&log.body_from(0));
    r.expect(200);
    let joined = format!("{}{}", log.checkpoint(), r.body);
    Note::from_bytes(joined.as_bytes())
        .unwrap()
        .verify(&VerifierList::new(vec![Box::new(verifier)]))
        .unwrap();
    p.post(&other.body_from(0)).expect(200);
    p.sigterm_and_wait();

    let p = WitnessProc::spawn(&args);
    conflict(&p.post(&log.body_from(0)), 5);
    conflict(&p.post(&other.body_from(0)), 2);
    log.append(3, "a");
    p.post(&log.body_from(5)).expect(200);
    drop(p); // SIGKILL: what was answered 200 was already on disk.
    let p = WitnessProc::spawn(&args);
    conflict(&p.post(&log.body_from(0)), 8);
    drop(p);

    // Key files: a public key file, and a secret key readable by others, are refused.
    let pub_file = tmp.path().join("witness.pub");
    let r = run(&[
        &["witness", "--key", s(&pub_file)][..],
        &args[..2],
        &args[4..],
    ]
    .concat());
    r.assert_fails_with("public key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = run(&[&["witness"][..], &args[..]].concat());
    r.assert_fails_with("chmod 600");
    // A log key of the wrong type (a witness vkey) is refused by name.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = run(&[
        "witness",
        "--dir",
        s(&dir),
        "--key",
        s(&key),
        "--name",
        "witness.test/proc",
        "--log",
        &p_vkey_text(),
    ]);
    r.assert_fails_with("signature type 0x04, expected 0x01");
}

/// Some type-0x04 vkey (a witness key where a log key belongs).
fn p_vkey_text() -> String {
    Vkey::new(
        "w.example",
        TYPE_COSIGNATURE_V1,
        consentlog::keyfile::generate().verifying_key(),
    )
    .unwrap()
    .to_text()
}
