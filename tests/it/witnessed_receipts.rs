//! Witnessed receipts (`POST /v1/receipts/witnessed`, `consentlog witnessed-receipt`,
//! `verify-receipt --policy`) and logs that declare their witness policy in the genesis leaf
//! (`init --witness-policy`, `serve --declare-witness-policy`): real `consentlog serve`
//! processes, real witnesses over HTTP (served in the test process), the commands people run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use consentlog::core::receipt::Receipt;
use consentlog::core::vkey::{Vkey, TYPE_COSIGNATURE_V1, TYPE_ED25519};
use consentlog::ledger::clock::SystemClock;
use consentlog::tlog_witness::Limits;
use ed25519_dalek::SigningKey;

use crate::support::http::bearer;
use crate::support::people::Person;
use crate::support::process::{run, Run, Server};
use crate::support::wait_until;
use crate::support::witness::TestWitness;
use crate::support::witnessed_server::{cosigners, verify_as_user};

const READER: &str = "witnessed-receipts-reader-01";
const ORIGIN: &str = "receipts.test/log";

/// A witness named `name` with `key`, in its own directory under `tmp`, for `log`.
fn witness(tmp: &Path, name: &str, key: SigningKey, log: &Vkey) -> TestWitness {
    TestWitness::start_with(
        &tmp.join(name.replace('/', "_")),
        key,
        name,
        std::slice::from_ref(log),
        Arc::new(SystemClock),
        Limits::default(),
    )
}

fn cosigning_vkey(name: &str, key: &SigningKey) -> String {
    Vkey::new(name, TYPE_COSIGNATURE_V1, key.verifying_key())
        .unwrap()
        .to_text()
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn serve(dir: &Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--witness-interval",
        "100",
        "--checkpoint-interval",
        "50",
        "--reader-token",
        READER,
    ];
    args.extend_from_slice(extra);
    Server::start_in(dir, &args)
}

/// Waits until the newest cosigned checkpoint covers leaf `index` with `n` cosigners.
fn wait_cosigned(srv: &Server, index: u64, n: usize) {
    wait_until(
        Duration::from_secs(30),
        || format!("cosigned: {:?}", cosigners(srv, ORIGIN)),
        || cosigners(srv, ORIGIN).filter(|(size, names)| *size > index && names.len() >= n),
    );
}

fn proof(srv: &Server, who: &Person, file: &Path) -> PathBuf {
    let v = srv
        .get_auth(&who.consent_path(None), &bearer(READER))
        .expect(200)
        .body
        .clone();
    write(file, &v)
}

fn verify_receipt(srv: &Server, file: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["verify-receipt", "--log-key", &srv.log_key_hex];
    args.extend_from_slice(extra);
    args.push(p(file));
    run(&args)
}

fn fetch(srv: &Server, receipt: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "witnessed-receipt",
        "--server",
        &srv.url,
        "--log-key",
        &srv.log_key_hex,
        p(receipt),
        "--out",
        p(out),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn a_receipt_is_witnessed_once_the_quorum_cosigns_a_checkpoint_that_covers_it() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = t.join("ledger");
    run(&["init", "--dir", p(&dir), "--origin", ORIGIN]).ok();
    let log = {
        let l = consentlog::ledger::Ledger::open(&dir).unwrap();
        Vkey::new(ORIGIN, TYPE_ED25519, l.public_key()).unwrap()
    };
    let kb = consentlog::keyfile::generate();
    let a = witness(t, "witness.test/a", consentlog::keyfile::generate(), &log);
    let b = witness(t, "witness.test/b", kb.clone(), &log);
    let both = write(
        &t.join("both.txt"),
        &format!(
            "log {}\nwitness a {} {}\nwitness b {} {}\ngroup both all a b\nquorum both\n",
            log.to_text(),
            a.vkey,
            a.url,
            b.vkey,
            b.url
        ),
    );
    let srv = serve(&dir, &["--witness-policy", p(&both)]);
    let mut alice = Person::new();
    let fresh = srv.append(&alice.step(&srv.origin, true));
    let fresh_file = write(
        &t.join("fresh.json"),
        &serde_json::to_string(&fresh).unwrap(),
    );

    // The receipt append hands out: valid, and says whom it trusts; no policy meets it.
    let out = verify_receipt(&srv, &fresh_file, &[]).ok();
    assert!(
        out.stdout
            .starts_with("UNWITNESSED: the operator is trusted: valid receipt: leaf"),
        "{out:#?}"
    );
    verify_receipt(&srv, &fresh_file, &["--policy", p(&both)])
        .expect_code(2)
        .assert_fails_with("quorum");

    // Once both witnesses cosigned a checkpoint covering it, the server hands out the
    // receipt of the same entry under that cosigned note.
    wait_cosigned(&srv, fresh.index, 2);
    let witnessed = t.join("witnessed.json");
    let got = fetch(
        &srv,
        &fresh_file,
        &witnessed,
        &["--wait", "30", "--policy", p(&both)],
    )
    .ok();
    assert!(got.stdout.starts_with("witnessed by "), "{got:#?}");
    let w: Receipt = serde_json::from_str(&std::fs::read_to_string(&witnessed).unwrap()).unwrap();
    assert_eq!(
        (w.index, w.leaf, &w.opening),
        (fresh.index, fresh.leaf, &fresh.opening)
    );
    assert!(
        w.anchor
            .checkpoint
            .matches("\n\u{2014} witness.test/")
            .count()
            == 2
    );
    let ok = verify_receipt(&srv, &witnessed, &["--policy", p(&both)]).ok();
    assert!(
        ok.stdout.starts_with("witnessed by a, b at size ")
            || ok.stdout.starts_with("witnessed by b, a at size "),
        "{ok:#?}"
    );
    assert!(ok.stdout.contains("valid receipt: leaf"), "{ok:#?}");
    // The tlog-proof text alone verifies the same way.
    let text = write(&t.join("witnessed.tlog-proof"), &w.to_text());
    assert!(w.to_text().starts_with("c2sp.org/tlog-proof@v1\nextra "));
    verify_receipt(&srv, &text, &["--policy", p(&both)]).ok();
    // Without a policy it is still a valid receipt, of an operator trusted alone.
    let plain = verify_receipt(&srv, &witnessed, &[]).ok();
    assert!(plain.stdout.starts_with("UNWITNESSED"), "{plain:#?}");

    // A policy that knows only witness a: b's line is an unknown line, ignored.
    let only_a = write(
        &t.join("only-a.txt"),
        &format!("log {}\nwitness a {}\nquorum a\n", log.to_text(), a.vkey),
    );
    let out = verify_receipt(&srv, &witnessed, &["--policy", p(&only_a)]).ok();
    assert!(out.stdout.starts_with("witnessed by a at size"), "{out:#?}");
    // One cosignature line removed: the quorum of both is not met (exit 2).
    let note = &w.anchor.checkpoint;
    let b_line = note
        .split_inclusive('\n')
        .find(|l| l.starts_with("\u{2014} witness.test/b "))
        .unwrap();
    let mut short = w.clone();
    short.anchor = Arc::new(consentlog::core::receipt::ReceiptAnchor {
        checkpoint: note.replace(b_line, ""),
        ..(*w.anchor).clone()
    });
    let short_file = write(
        &t.join("short.json"),
        &serde_json::to_string(&short).unwrap(),
    );
    verify_receipt(&srv, &short_file, &["--policy", p(&both)])
        .expect_code(2)
        .assert_fails_with("quorum");
    // A cosignature line whose signature was changed: refused, not ignored.
    let mut bad = w.clone();
    let mut bad_line = b_line.to_string();
    let last = bad_line.len() - 3;
    let c = if &bad_line[last..last + 1] == "A" {
        "B"
    } else {
        "A"
    };
    bad_line.replace_range(last..last + 1, c);
    bad.anchor = Arc::new(consentlog::core::receipt::ReceiptAnchor {
        checkpoint: note.replace(b_line, &bad_line),
        ..(*w.anchor).clone()
    });
    let bad_file = write(&t.join("bad.json"), &serde_json::to_string(&bad).unwrap());
    verify_receipt(&srv, &bad_file, &["--policy", p(&both)]).expect_code(2);
    // b's cosignature dated an hour after the verifier's clock: refused.
    let future = {
        use base64::Engine as _;
        use signed_note::Signer as _;
        let body = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let c = consentlog::core::cosignature::Cosigner {
            name: "witness.test/b",
            key: &kb,
            timestamp: now + 3600,
        };
        let mut sig = c.key_id().to_be_bytes().to_vec();
        sig.extend(c.sign(body.text()).unwrap());
        let line = format!(
            "\u{2014} witness.test/b {}\n",
            base64::engine::general_purpose::STANDARD.encode(sig)
        );
        let mut r = w.clone();
        r.anchor = Arc::new(consentlog::core::receipt::ReceiptAnchor {
            checkpoint: note.replace(b_line, &line),
            ..(*w.anchor).clone()
        });
        write(&t.join("future.json"), &serde_json::to_string(&r).unwrap())
    };
    verify_receipt(&srv, &future, &["--policy", p(&both)])
        .expect_code(2)
        .assert_fails_with("after the verifier's clock");
    // Another log's policy (the log line names another key): refused.
    let other = Vkey::new(
        ORIGIN,
        TYPE_ED25519,
        consentlog::keyfile::generate().verifying_key(),
    )
    .unwrap();
    let other_policy = write(
        &t.join("other.txt"),
        &format!("log {}\nwitness a {}\nquorum a\n", other.to_text(), a.vkey),
    );
    verify_receipt(&srv, &witnessed, &["--policy", p(&other_policy)]).expect_code(2);

    // The route hands out nothing its caller did not hold: a receipt whose opening differs
    // from the stored one (another nonce) is unknown (404), and the answer is a receipt.
    let mut forged = fresh.clone();
    forged.opening.nonce[0] ^= 1;
    srv.post(
        "/v1/receipts/witnessed",
        &serde_json::to_string(&forged).unwrap(),
    )
    .expect_error_code(404, "unknown_receipt");
    // One naming leaf 1, the log's first map leaf: unknown too, not reported as damage.
    let mut moved = fresh.clone();
    moved.index = 1;
    srv.post("/v1/receipts/witnessed", &moved.to_text())
        .expect_error_code(404, "unknown_receipt");
    srv.post("/v1/receipts/witnessed", "hello")
        .expect_error_code(400, "bad_request");
    let direct = srv
        .post("/v1/receipts/witnessed", &fresh.to_text())
        .expect(200)
        .json();
    assert_eq!(direct["index"], fresh.index);

    // A newer entry is not covered until the witnesses cosign again; witnessed-receipt
    // without --wait says so (exit 1), with --wait it waits for it.
    let later = srv.append(&alice.step(&srv.origin, false));
    let later_file = write(
        &t.join("later.json"),
        &serde_json::to_string(&later).unwrap(),
    );
    let r = srv.post(
        "/v1/receipts/witnessed",
        &serde_json::to_string(&later).unwrap(),
    );
    if r.status == 404 {
        r.expect_error_code(404, "not_cosigned");
    }
    let later_w = t.join("later-witnessed.json");
    fetch(
        &srv,
        &later_file,
        &later_w,
        &["--wait", "30", "--policy", p(&both)],
    )
    .ok();
    verify_receipt(&srv, &later_w, &["--policy", p(&both)]).ok();
}

#[test]
fn a_log_that_declares_a_policy_needs_its_quorum_in_every_proof_and_receipt() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (ka, kb) = (
        consentlog::keyfile::generate(),
        consentlog::keyfile::generate(),
    );
    let (na, nb) = ("witness.test/a", "witness.test/b");
    let declared = format!(
        "# the witnesses this log promises\nwitness a {}\nwitness b {}\ngroup both all a b\nquorum both\n",
        cosigning_vkey(na, &ka),
        cosigning_vkey(nb, &kb)
    );
    let declared_file = write(&t.join("declared.txt"), &declared);

    // init refuses what it cannot declare, and creates nothing.
    for (text, why) in [
        (
            format!("log {}\n{declared}", "x.test/log+01234567+AQ=="),
            "--witness-policy",
        ),
        (
            format!(
                "log {}\n{declared}",
                Vkey::new(ORIGIN, TYPE_ED25519, ka.verifying_key())
                    .unwrap()
                    .to_text()
            ),
            "`log` line",
        ),
        ("quorum none\n".to_string(), "requires no witness"),
    ] {
        let f = write(&t.join("refused.txt"), &text);
        let d = t.join("refused");
        let r = run(&[
            "init",
            "--dir",
            p(&d),
            "--origin",
            ORIGIN,
            "--witness-policy",
            p(&f),
        ]);
        r.assert_fails_with(why);
        assert!(!d.join("engine").exists());
    }

    let dir = t.join("ledger");
    run(&[
        "init",
        "--dir",
        p(&dir),
        "--origin",
        ORIGIN,
        "--witness-policy",
        p(&declared_file),
    ])
    .ok();
    let l = consentlog::ledger::Ledger::open(&dir).unwrap();
    let log = Vkey::new(ORIGIN, TYPE_ED25519, l.public_key()).unwrap();
    drop(l);
    // The declared policy: the log line init added, then the file as given.
    let written = std::fs::read_to_string(dir.join("witness-policy.txt")).unwrap();
    assert_eq!(written, format!("log {}\n{declared}", log.to_text()));

    // The witnesses; the server first knows only a's URL (b is not asked).
    let a = witness(t, na, ka, &log);
    let b = witness(t, nb, kb, &log);
    let asking = |urls: &[(&str, &str)]| {
        let mut text = written.clone();
        for (short, url) in urls {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("witness {short} ")))
                .unwrap()
                .to_string();
            text = text.replace(&line, &format!("{line} {url}"));
        }
        text
    };
    let only_a = write(&t.join("asking-a.txt"), &asking(&[("a", &a.url)]));
    let mut srv = serve(&dir, &["--witness-policy", p(&only_a)]);
    let mut alice = Person::new();
    let fresh = srv.append(&alice.step(&srv.origin, true));
    let fresh_file = write(
        &t.join("fresh.json"),
        &serde_json::to_string(&fresh).unwrap(),
    );
    // A fresh receipt does not meet the declared policy: invalid without any --policy.
    verify_receipt(&srv, &fresh_file, &[])
        .expect_code(2)
        .assert_fails_with("the log's declared policy");

    // Cosigned by a alone: proofs carry it, and verify (no --policy) refuses them.
    wait_cosigned(&srv, fresh.index, 1);
    let p1 = proof(&srv, &alice, &t.join("proof-1.json"));
    let refused = verify_as_user(&srv, &alice, &p1, &[]).expect_code(2);
    refused.assert_fails_with("the log's declared policy");
    refused.assert_fails_with("quorum");
    // witnessed-receipt refuses to write a receipt the declared policy refuses.
    let w1 = t.join("w1.json");
    fetch(&srv, &fresh_file, &w1, &[])
        .expect_code(2)
        .assert_fails_with("declared policy");
    assert!(!w1.exists());
    srv.stop();

    // Now both are asked: once both cosigned, the same commands accept.
    let both = write(
        &t.join("asking-both.txt"),
        &asking(&[("a", &a.url), ("b", &b.url)]),
    );
    let srv = serve(&dir, &["--witness-policy", p(&both)]);
    wait_cosigned(&srv, fresh.index, 2);
    let p2 = wait_until(
        Duration::from_secs(30),
        || "a proof under the quorum",
        || {
            let f = proof(&srv, &alice, &t.join("proof-2.json"));
            (verify_as_user(&srv, &alice, &f, &[]).code == 0).then_some(f)
        },
    );
    let ok = verify_as_user(&srv, &alice, &p2, &[]).ok();
    assert!(ok.stdout.contains("\nwitnessed by "), "{ok:#?}");
    let w2 = t.join("w2.json");
    fetch(&srv, &fresh_file, &w2, &["--wait", "30"]).ok();
    let ok = verify_receipt(&srv, &w2, &[]).ok();
    assert!(ok.stdout.starts_with("witnessed by "), "{ok:#?}");
    // The fresh receipt stays invalid under the declared policy.
    verify_receipt(&srv, &fresh_file, &[]).expect_code(2);
}

#[test]
fn serve_declares_a_policy_for_a_ledger_it_creates_and_keeps_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let kw = consentlog::keyfile::generate();
    let declared = format!(
        "witness w {}\nquorum w\n",
        cosigning_vkey("witness.test/w", &kw)
    );
    let f = write(&t.join("declared.txt"), &declared);
    let dir = t.join("ledger");
    let mut srv = serve(&dir, &["--declare-witness-policy", p(&f)]);
    let written = std::fs::read_to_string(dir.join("witness-policy.txt")).unwrap();
    assert!(
        written.starts_with(&format!("log {ORIGIN_DEFAULT}+")),
        "{written}"
    );
    assert!(written.ends_with(&declared));
    let mut alice = Person::new();
    let r = srv.append(&alice.step(&srv.origin, true));
    let rf = write(&t.join("r.json"), &serde_json::to_string(&r).unwrap());
    verify_receipt(&srv, &rf, &[])
        .expect_code(2)
        .assert_fails_with("the log's declared policy");
    // Its witness has no URL and no --witness-policy names one: nobody cosigns, and
    // witnessed-receipt says so (exit 1, not an invalid receipt).
    fetch(&srv, &rf, &t.join("w.json"), &[])
        .expect_code(1)
        .assert_fails_with("no cosigned checkpoint covers leaf");
    srv.stop();
    // The declaring ledger replays and checks in full.
    run(&["fsck", "--dir", p(&dir)]).ok();
    run(&["audit", "--dir", p(&dir)]).ok();
    // The same command line starts it again; another policy is refused.
    let mut srv = serve(&dir, &["--declare-witness-policy", p(&f)]);
    srv.stop();
    let other = write(&t.join("other.txt"), "witness w2 x\nquorum w2\n");
    let r = run(&[
        "serve",
        "--dir",
        p(&dir),
        "--listen",
        "127.0.0.1:0",
        "--declare-witness-policy",
        p(&other),
    ]);
    assert_ne!(r.code, 0, "{r:#?}");
    let other = write(
        &t.join("other2.txt"),
        &format!(
            "witness w {}\nquorum w\n",
            cosigning_vkey("witness.test/other", &consentlog::keyfile::generate())
        ),
    );
    run(&[
        "serve",
        "--dir",
        p(&dir),
        "--listen",
        "127.0.0.1:0",
        "--declare-witness-policy",
        p(&other),
    ])
    .assert_fails_with("fixed when it is created");
}

const ORIGIN_DEFAULT: &str = "consentlog.local/log";
