//! Receipts through the commands people run: `verify-receipt` on what `grant` prints, and
//! `grant`/`revoke` refusing the receipt of a log that forked (docs/FORMAT.md §7).

use std::path::Path;

use crate::support::*;
use consentlog::core::event::EventJson;
use consentlog::core::receipt::Receipt;

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    s(path).to_string()
}

#[test]
fn verify_receipt_checks_what_grant_prints() {
    let l = TestLedger::cli();
    let (alice, alice_pk) = l.person("alice");
    let (bob, _) = l.person("bob");
    let v = l.decide(&alice, true, CONTROLLER, PURPOSE);
    let r: Receipt = serde_json::from_value(v.clone()).unwrap();
    let json = write(&l.path("r.json"), &v.to_string());
    let text = write(&l.path("r.tlog-proof"), v["tlog_proof"].as_str().unwrap());
    assert!(std::fs::read_to_string(&text)
        .unwrap()
        .starts_with("c2sp.org/tlog-proof@v1\nextra "));
    let event = write(
        &l.path("event.json"),
        &serde_json::to_string(&EventJson::from(&r.opening.event)).unwrap(),
    );
    for f in [&json, &text] {
        let out = run(&["verify-receipt", "--log-key", &l.log_key, f]).ok();
        for needle in [
            format!("valid receipt: leaf {FIRST} of log \"{ORIGIN}\""),
            format!("subject {alice_pk} opt-in for controller \"{CONTROLLER}\""),
            v["event_hash"].as_str().unwrap().to_string(),
        ] {
            assert!(out.stdout.contains(&needle), "{needle} not in {out:#?}");
        }
        let out = run(&[
            "verify-receipt",
            "--log-key",
            &l.log_key,
            f,
            "--event",
            &event,
        ])
        .ok();
        assert!(out.stdout.contains("the receipt of the event given"));
    }

    // Bob's event is not the one this receipt is for.
    let vb = l.decide(&bob, true, CONTROLLER, PURPOSE);
    let rb: Receipt = serde_json::from_value(vb).unwrap();
    let bobs = write(
        &l.path("bob-event.json"),
        &serde_json::to_string(&EventJson::from(&rb.opening.event)).unwrap(),
    );
    run(&[
        "verify-receipt",
        "--log-key",
        &l.log_key,
        &text,
        "--event",
        &bobs,
    ])
    .expect_code(2)
    .assert_fails_with("another event");
    // Another log key.
    let other = "11".repeat(32);
    let r = run(&["verify-receipt", "--log-key", &other, &text]);
    r.assert_code(2);
    // Not a receipt at all, and a receipt with its fields disagreeing with its text.
    let junk = write(&l.path("junk"), "hello\n");
    run(&["verify-receipt", "--log-key", &l.log_key, &junk]).assert_fails_with("not a receipt");
    let mut lying = v.clone();
    lying["index"] = serde_json::json!(FIRST + 1);
    let lying = write(&l.path("lying.json"), &lying.to_string());
    run(&["verify-receipt", "--log-key", &l.log_key, &lying]).assert_fails_with("disagree");
    // Any changed character of the text (a sample across it) is refused with exit 2.
    let original = std::fs::read_to_string(&text).unwrap();
    let bytes = original.as_bytes();
    for i in (0..bytes.len()).step_by(bytes.len() / 40) {
        let mut b = bytes.to_vec();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        let Ok(t) = String::from_utf8(b) else {
            continue;
        };
        let f = write(&l.path("changed"), &t);
        let out = run(&["verify-receipt", "--log-key", &l.log_key, &f]);
        assert_eq!(out.code, 2, "byte {i} changed and accepted: {out:#?}");
    }
}

/// The operator keeps two copies of the ledger with the same keys and shows each request a
/// different one. Alice's opt-in is in one; her opt-out goes to the other, where it becomes
/// the first event of her chain at the same index. Her receipt there is valid on its own;
/// `revoke` catches the fork against the receipt it holds, and says so.
#[test]
fn revoke_refuses_the_receipt_of_a_forked_log() {
    let l = TestLedger::cli();
    let fork = l.path("fork");
    let cp = std::process::Command::new("cp")
        .args(["-a", l.d(), s(&fork)])
        .status()
        .unwrap();
    assert!(cp.success());
    let (alice, _) = l.person("alice");
    let v = l.decide(&alice, true, CONTROLLER, PURPOSE);
    assert_eq!(v["index"].as_u64(), Some(FIRST));
    let r = run(&[
        "revoke",
        "--dir",
        s(&fork),
        "--key",
        s(&alice),
        "--controller",
        CONTROLLER,
        "--purpose",
        PURPOSE,
    ]);
    r.expect_code(2).assert_fails_with("forked");
    // On the honest copy the revoke chains to the opt-in and is accepted.
    let v = l.decide(&alice, false, CONTROLLER, PURPOSE);
    assert_eq!(v["seq"].as_u64(), Some(1));
}
