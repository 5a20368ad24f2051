//! The `consentlog` command line, through the real binary in temporary directories: every
//! command, its output shape (exact JSON key sets), exit codes, file modes and error messages.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use consentlog::core::event::EventJson;
use consentlog::core::hash::from_hex_array;
use consentlog::core::leaf::Leaf;
use consentlog::core::note;
use consentlog::core::receipt::Receipt;
use consentlog::core::tlog::{
    check_consistency, check_inclusion, LeafIndex, Sha256Hasher, TreeHasher, TreeSize,
};
use ed25519_dalek::VerifyingKey;
use serde_json::{json, Value};

const CTL: &str = "example.com";
const PUR: &str = "ai-training";

const VERIFY_KEYS: &[&str] = &[
    "valid",
    "held",
    "state",
    "reason",
    "subject",
    "controller",
    "purpose",
    "at",
    "log",
    "checkpoint_size",
    "checkpoint_root",
    "witnessed",
    "map_replayed",
];

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

fn vkey(hex: &str) -> VerifyingKey {
    VerifyingKey::from_bytes(&from_hex_array::<32>(hex).expect("hex key")).expect("ed25519 key")
}

fn hash(v: &Value) -> [u8; 32] {
    from_hex_array::<32>(v.as_str().expect("hex string")).expect("32-byte hex")
}

/// Checks a receipt's shape and its signature under the log key.
#[track_caller]
fn check_receipt(r: &Value, log_key: &str) -> u64 {
    assert_keys(r, RECEIPT_KEYS);
    assert!(is_hex(r["leaf_hash"].as_str().unwrap(), 32), "{r}");
    assert!(is_hex(r["event_hash"].as_str().unwrap(), 32), "{r}");
    assert!(
        r["tlog_proof"]
            .as_str()
            .unwrap()
            .starts_with("c2sp.org/tlog-proof@v1\n"),
        "{r}"
    );
    assert!(
        r["integrated_at"].as_u64().unwrap() > 1_600_000_000_000,
        "{r}"
    );
    let rc: Receipt = serde_json::from_value(r.clone()).expect("receipt JSON");
    assert!(
        rc.check(&vkey(log_key)).is_ok(),
        "receipt signature does not verify: {r}"
    );
    r["index"].as_u64().expect("index")
}

/// Opens a checkpoint note with the log key.
#[track_caller]
fn open_note(text: &str, log_key: &str) -> note::SignedCheckpoint {
    note::open(text, &vkey(log_key)).unwrap_or_else(|e| panic!("note {text:?}: {e}"))
}

fn verify_args<'a>(log_key: &'a str, proof: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["verify", "--any-question", "--log-key", log_key, proof];
    v.extend_from_slice(extra);
    v
}

/// `consentlog prove` on `l` for (subject, CTL, PUR) with `extra` arguments, as it ran.
fn prove_run(l: &TestLedger, subject: &str, extra: &[&str]) -> Run {
    let args = [
        "prove",
        "--dir",
        l.d(),
        "--subject",
        subject,
        "--controller",
        CTL,
        "--purpose",
        PUR,
    ];
    run(&[&args[..], extra].concat())
}

/// `prove` into a file; returns the file path.
/// How many event leaves the ledger holds (`consentlog leaves`, without the genesis and map
/// leaves).
fn events(l: &TestLedger) -> usize {
    run(&["leaves", "--dir", l.d()])
        .ok()
        .ndjson()
        .iter()
        .filter(|v| v["kind"] == "event")
        .count()
}

/// The position among the event leaves (0 for the first event) of leaf `index`, which must be
/// an event leaf.
fn event_no(l: &TestLedger, index: u64) -> usize {
    let all = run(&["leaves", "--dir", l.d()]).ok().ndjson();
    assert_eq!(all[index as usize]["kind"], "event", "leaf {index}");
    all[..index as usize]
        .iter()
        .filter(|v| v["kind"] == "event")
        .count()
}

/// `consentlog checkpoint` (a map leaf covering everything so far), then `prove` to a file.
fn prove_to(l: &TestLedger, name: &str, subject: &str, at: Option<u64>) -> std::path::PathBuf {
    l.note();
    let out = l.path(name);
    let at_s = at.map(|a| a.to_string());
    let mut extra = vec!["--out", s(&out)];
    if let Some(a) = &at_s {
        extra.extend_from_slice(&["--at", a]);
    }
    prove_run(l, subject, &extra).ok();
    out
}

// ---------------------------------------------------------------------------------------------
// init, keygen

#[test]
fn init_creates_key_files_and_refuses_an_existing_ledger() {
    let l = TestLedger::cli_with_origin("init.example/log");
    let key = l.dir.join("log.key");
    let pubf = l.dir.join("log.pub");
    assert_eq!(mode(&key), 0o600, "log.key mode");
    assert_eq!(
        std::fs::read_to_string(&pubf).unwrap().trim(),
        l.log_key,
        "log.pub holds the printed key"
    );
    // The secret key file is 64 lowercase hex digits and matches the public key.
    let sk = consentlog::keyfile::read(&key, true).expect("log.key readable");
    assert_eq!(hex::encode(sk.verifying_key().as_bytes()), l.log_key);

    let before = std::fs::read(&key).unwrap();
    let r = run(&["init", "--dir", l.d(), "--origin", "init.example/log"]);
    assert_ne!(r.code, 0, "init on an existing ledger must fail: {r:#?}");
    assert!(r.stderr.contains("already holds a ledger"), "{r:#?}");
    assert_eq!(std::fs::read(&key).unwrap(), before, "log.key untouched");
    // Also with another origin.
    let r = run(&["init", "--dir", l.d(), "--origin", "other.example/log"]);
    assert_ne!(r.code, 0, "{r:#?}");

    // The default origin, and a refused origin.
    let tmp = tempfile::tempdir().unwrap();
    let d2 = tmp.path().join("l2");
    let r = run(&["init", "--dir", s(&d2)]).ok();
    assert!(is_hex(r.last_line(), 32));
    let cp = run(&["checkpoint", "--dir", s(&d2)]).ok();
    assert!(cp.stdout.starts_with("consentlog.local/log\n"), "{cp:#?}");
    let d3 = tmp.path().join("l3");
    let r = run(&["init", "--dir", s(&d3), "--origin", "Bad Origin"]);
    r.assert_fails_with("origin");
}

#[test]
fn keygen_writes_mode_0600_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("alice.key");
    let r = run(&["keygen", "--out", s(&p)]).ok();
    let pk = r.last_line().to_string();
    assert!(is_hex(&pk, 32), "{r:#?}");
    assert_eq!(mode(&p), 0o600);
    let sk = consentlog::keyfile::read_person(&p, "test").unwrap();
    assert_eq!(hex::encode(sk.verifying_key().as_bytes()), pk);
    assert!(
        !r.stdout.contains(&hex::encode(sk.as_bytes())),
        "secret printed"
    );
    assert!(
        !r.stderr.contains(&hex::encode(sk.as_bytes())),
        "secret printed"
    );

    let before = std::fs::read(&p).unwrap();
    let r = run(&["keygen", "--out", s(&p)]);
    assert_ne!(r.code, 0, "keygen must refuse to overwrite: {r:#?}");
    assert_eq!(std::fs::read(&p).unwrap(), before, "key file untouched");

    // Two runs give two different keys.
    let q = tmp.path().join("bob.key");
    let pk2 = run(&["keygen", "--out", s(&q)])
        .ok()
        .last_line()
        .to_string();
    assert_ne!(pk, pk2);
}

// ---------------------------------------------------------------------------------------------
// sign, grant, revoke, append

#[test]
fn sign_prints_one_event_line_with_exact_keys() {
    let l = TestLedger::cli_with_origin("sign.example/log");
    let (k, pk) = l.person("alice");
    let issued = now_ms();
    let issued_s = issued.to_string();
    let notice = hex::encode([7u8; 32]);
    let r = run(&[
        "sign",
        "--key",
        s(&k),
        "--log",
        "sign.example/log",
        "--controller",
        CTL,
        "--purpose",
        PUR,
        "--opt-in",
        "--seq",
        "0",
        "--issued-at",
        &issued_s,
        "--expires-at",
        &(issued + 3_600_000).to_string(),
        "--notice",
        &notice,
    ])
    .ok();
    assert_eq!(r.stdout.lines().count(), 1, "one line: {r:#?}");
    let ev0 = r.json();
    assert_keys(&ev0, EVENT_JSON_KEYS);
    assert_eq!(ev0["version"], 2);
    assert_eq!(
        (&ev0["kind"], &ev0["signer"]),
        (&json!("decision"), &json!("subject"))
    );
    assert_eq!(ev0["log"], "sign.example/log");
    assert_eq!(ev0["subject"], pk.as_str());
    assert_eq!(ev0["controller"], CTL);
    assert_eq!(ev0["purpose"], PUR);
    assert_eq!(ev0["decision"], "opt-in");
    assert_eq!(ev0["seq"], 0);
    assert_eq!(ev0["prev"], Value::Null);
    assert_eq!(ev0["issued_at"], issued);
    assert_eq!(ev0["expires_at"], issued + 3_600_000);
    assert_eq!(ev0["notice"], notice.as_str());
    assert!(is_hex(ev0["signature"].as_str().unwrap(), 64));
    let line0 = r.stdout.trim().to_string();
    let signed0 = EventJson::parse(&line0).expect("sign output parses as an event");
    signed0.check_self().expect("signature verifies");

    // seq 1, opt-out, --dir instead of --log, prev = hash of seq 0, issued_at defaulting to now.
    let prev = hex::encode(signed0.event_hash());
    let r = run(&[
        "sign",
        "--key",
        s(&k),
        "--dir",
        l.d(),
        "--controller",
        CTL,
        "--purpose",
        PUR,
        "--opt-out",
        "--seq",
        "1",
        "--prev",
        &prev,
    ])
    .ok();
    let ev1 = r.json();
    assert_keys(&ev1, EVENT_JSON_KEYS);
    assert_eq!(
        ev1["log"], "sign.example/log",
        "--dir uses the ledger's origin"
    );
    assert_eq!(ev1["decision"], "opt-out");
    assert_eq!(ev1["prev"], prev.as_str());
    assert_eq!(ev1["expires_at"], Value::Null);
    assert_eq!(ev1["notice"], Value::Null);
    let t = ev1["issued_at"].as_u64().unwrap();
    assert!(t.abs_diff(now_ms()) < 60_000, "issued_at defaults to now");

    // Both are accepted by append, in order.
    let file = l.path("events.ndjson");
    std::fs::write(&file, format!("{line0}\n{}", r.stdout)).unwrap();
    let out = run(&["append", "--dir", l.d(), s(&file)]).ok().ndjson();
    assert_eq!(out.len(), 2);
    assert_eq!(event_no(&l, check_receipt(&out[0], &l.log_key)), 0);
    assert_eq!(event_no(&l, check_receipt(&out[1], &l.log_key)), 1);

    // Neither --opt-in nor --opt-out, or both: refused by the argument parser.
    let base = [
        "sign",
        "--key",
        s(&k),
        "--log",
        "x.example/log",
        "--controller",
        CTL,
        "--purpose",
        PUR,
        "--seq",
        "0",
    ];
    let r = run(&base);
    assert_ne!(r.code, 0, "{r:#?}");
    let mut both = base.to_vec();
    both.extend_from_slice(&["--opt-in", "--opt-out"]);
    assert_ne!(run(&both).code, 0);

    // Bad hex in --prev or --notice names the flag.
    let mut bad = base.to_vec();
    let upper_prev = "AB".repeat(32);
    bad.extend_from_slice(&["--opt-in", "--prev", &upper_prev]);
    let r = run(&bad);
    r.assert_fails_with("--prev");
    let mut bad = base.to_vec();
    bad.extend_from_slice(&["--opt-in", "--notice", "abcd"]);
    let r = run(&bad);
    r.assert_fails_with("--notice");

    // A key file readable by others is refused.
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut ok_args = base.to_vec();
    ok_args.push("--opt-in");
    let r = run(&ok_args);
    r.assert_fails_with("chmod 600");
}

#[test]
fn grant_and_revoke_print_signed_receipts() {
    let l = TestLedger::cli();
    let (alice, _) = l.person("alice");
    let (bob, _) = l.person("bob");
    let r0 = l.decide(&alice, true, CTL, PUR);
    assert_eq!(event_no(&l, check_receipt(&r0, &l.log_key)), 0);
    let r1 = l.decide(&bob, true, CTL, PUR);
    assert_eq!(event_no(&l, check_receipt(&r1, &l.log_key)), 1);
    let r2 = l.decide(&alice, false, CTL, PUR);
    assert_eq!(event_no(&l, check_receipt(&r2, &l.log_key)), 2);
    // Another purpose is another chain, starting at seq 0.
    let r3 = l.decide(&alice, true, CTL, "analytics");
    assert_eq!(event_no(&l, check_receipt(&r3, &l.log_key)), 3);
    let t: Vec<u64> = [&r0, &r1, &r2, &r3]
        .iter()
        .map(|r| r["integrated_at"].as_u64().unwrap())
        .collect();
    assert!(
        t.windows(2).all(|w| w[0] <= w[1]),
        "integrated_at never goes back: {t:?}"
    );

    // The receipt's leaf hash is the stored event leaf's.
    let leaves = run(&["leaves", "--dir", l.d()]).ok().ndjson();
    for r in [&r0, &r1, &r2, &r3] {
        let i = r["index"].as_u64().unwrap() as usize;
        assert_eq!(leaves[i]["leaf_hash"], r["leaf_hash"]);
    }

    // grant with --expires-at is fine, revoke with it is refused.
    let exp = (now_ms() + 3_600_000).to_string();
    let (carol, _) = l.person("carol");
    let r = l
        .decide_with(&carol, true, CTL, PUR, &["--expires-at", &exp])
        .ok();
    check_receipt(&r.json(), &l.log_key);
    let r = l.decide_with(&carol, false, CTL, PUR, &["--expires-at", &exp]);
    r.assert_fails_with("--expires-at");

    // A key file readable by others is refused before anything is written.
    std::fs::set_permissions(&carol, std::fs::Permissions::from_mode(0o640)).unwrap();
    let r = l.decide_with(&carol, false, CTL, PUR, &[]);
    r.assert_fails_with("chmod 600");
    assert_eq!(events(&l), 5);

    // Not a ledger.
    let r = run(&[
        "grant",
        "--dir",
        s(&l.path("nowhere")),
        "--key",
        s(&alice),
        "--controller",
        CTL,
        "--purpose",
        PUR,
    ]);
    r.assert_fails_with("not a consentlog ledger");
}

/// Signs one event with the CLI and returns its JSON line.
fn sign_line(k: &Path, log: &str, controller: &str, seq: u64, prev: Option<&str>) -> String {
    let seq_s = seq.to_string();
    let mut args = vec![
        "sign",
        "--key",
        s(k),
        "--log",
        log,
        "--controller",
        controller,
        "--purpose",
        PUR,
        "--opt-in",
        "--seq",
        &seq_s,
    ];
    if let Some(p) = prev {
        args.extend_from_slice(&["--prev", p]);
    }
    run(&args).ok().stdout.trim().to_string()
}

/// An event line `sign` refuses to make (its seq and prev disagree), signed through the
/// library with the key file's key, for the append rules to reject.
fn unlinked_line(k: &Path, log: &str, seq: u64, prev: Option<[u8; 32]>) -> String {
    let key = consentlog::keyfile::read_person(k, "test").expect("key file");
    let p = Person::with_key(key, CTL, PUR);
    event_json(&p.event().log(log).seq(seq).prev(prev).sign())
}

#[test]
fn append_reports_one_line_per_event_in_order() {
    let l = TestLedger::cli();
    let (a, _) = l.person("a");
    let (b, _) = l.person("b");
    let a0 = sign_line(&a, &l.origin, CTL, 0, None);
    let a0h = hex::encode(EventJson::parse(&a0).unwrap().event_hash());
    let a1 = sign_line(&a, &l.origin, CTL, 1, Some(&a0h));
    let b0 = sign_line(&b, &l.origin, CTL, 0, None);

    // From standard input (default and explicit -), blank lines ignored.
    let input = format!("{a0}\n\n{b0}\n");
    let out = run_stdin(&["append", "--dir", l.d()], &input).ok().ndjson();
    assert_eq!(out.len(), 2);
    assert_eq!(event_no(&l, check_receipt(&out[0], &l.log_key)), 0);
    assert_eq!(event_no(&l, check_receipt(&out[1], &l.log_key)), 1);

    // A resubmission gets its original receipt; the new event is appended after.
    let out = run_stdin(&["append", "--dir", l.d(), "-"], &format!("{a0}\n{a1}\n"))
        .ok()
        .ndjson();
    assert_eq!(out.len(), 2);
    assert_eq!(
        event_no(&l, check_receipt(&out[0], &l.log_key)),
        0,
        "duplicate: original index"
    );
    assert_eq!(event_no(&l, check_receipt(&out[1], &l.log_key)), 2);
    assert_eq!(events(&l), 3);

    // The same new event twice in one batch: one entry, the same receipt twice, exit 0.
    let c = l.person("c").0;
    let c0 = sign_line(&c, &l.origin, CTL, 0, None);
    let out = run_stdin(&["append", "--dir", l.d()], &format!("{c0}\n{c0}\n"))
        .ok()
        .ndjson();
    assert_eq!(out.len(), 2);
    assert_eq!(event_no(&l, check_receipt(&out[0], &l.log_key)), 3);
    assert_eq!(out[0], out[1]);
    assert_eq!(events(&l), 4);

    // Rejections name the rule, in position, and the exit code is non-zero.
    let wrong_log = unlinked_line(&b, "other.example/log", 1, None);
    let bad_ctl = sign_line(&b, &l.origin, "Example.com", 0, None);
    let gap = sign_line(&b, &l.origin, CTL, 5, Some(&a0h));
    let mut forged: Value = serde_json::from_str(&b0).unwrap();
    forged["seq"] = 1.into();
    forged["prev"] = hex::encode(EventJson::parse(&b0).unwrap().event_hash()).into();
    let mut bad_decision: Value = serde_json::from_str(&b0).unwrap();
    bad_decision["decision"] = "maybe".into();
    let file = l.path("mixed.ndjson");
    std::fs::write(
        &file,
        format!("{wrong_log}\n{bad_ctl}\n{gap}\n{forged}\n{bad_decision}\n"),
    )
    .unwrap();
    let r = run(&["append", "--dir", l.d(), s(&file)]);
    assert_ne!(r.code, 0, "{r:#?}");
    let out = r.ndjson();
    let rules: Vec<&str> = out
        .iter()
        .map(|v| {
            assert_keys(v, &["error", "rule"]);
            v["rule"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        rules,
        ["log", "controller", "seq", "signature", "decision"],
        "{r:#?}"
    );
    assert!(out[0]["error"]
        .as_str()
        .unwrap()
        .contains("other.example/log"));
    assert!(
        out[1]["error"].as_str().unwrap().contains("'E'"),
        "{}",
        out[1]
    );
    assert!(r.stderr.contains("5 of 5 events rejected"), "{r:#?}");
    assert_eq!(events(&l), 4, "nothing written");

    // A missing input file.
    let r = run(&["append", "--dir", l.d(), s(&l.path("missing.ndjson"))]);
    assert_ne!(r.code, 0);
}

#[test]
fn append_rejects_time_and_chain_rule_breaks_by_name() {
    let l = TestLedger::cli();
    let (a, _) = l.person("a");
    let sign = |extra: &[&str]| -> String {
        let mut args = vec![
            "sign",
            "--key",
            s(&a),
            "--dir",
            l.d(),
            "--controller",
            CTL,
            "--purpose",
            PUR,
        ];
        args.extend_from_slice(extra);
        run(&args).ok().stdout.trim().to_string()
    };
    let now = now_ms();
    let stale = (now - 10 * 60 * 1000).to_string();
    let ahead = (now + 10 * 60 * 1000).to_string();
    let now_s = now.to_string();
    let cases = [
        (
            sign(&["--opt-in", "--seq", "0", "--issued-at", &stale]),
            "issued_at",
        ),
        (
            sign(&["--opt-in", "--seq", "0", "--issued-at", &ahead]),
            "issued_at",
        ),
        (
            sign(&[
                "--opt-in",
                "--seq",
                "0",
                "--issued-at",
                &now_s,
                "--expires-at",
                &now_s,
            ]),
            "expires_at",
        ),
        (
            sign(&[
                "--opt-out",
                "--seq",
                "0",
                "--expires-at",
                &(now + 60_000).to_string(),
            ]),
            "expires_at",
        ),
        (unlinked_line(&a, &l.origin, 1, None), "seq"),
        (unlinked_line(&a, &l.origin, 0, Some([0; 32])), "prev"),
    ];
    for (line, rule) in &cases {
        let r = run_stdin(&["append", "--dir", l.d()], &format!("{line}\n"));
        assert_ne!(r.code, 0, "{rule}: {r:#?}");
        let out = r.ndjson();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["rule"], *rule, "{r:#?}");
    }
    assert_eq!(events(&l), 0);
    // After a good seq 0, a seq 1 with the wrong prev names prev.
    let g = sign(&["--opt-in", "--seq", "0"]);
    run_stdin(&["append", "--dir", l.d()], &g).ok();
    let bad = sign(&["--opt-out", "--seq", "1", "--prev", &"11".repeat(32)]);
    let r = run_stdin(&["append", "--dir", l.d()], &bad);
    assert_eq!(r.ndjson()[0]["rule"], "prev", "{r:#?}");
}

#[test]
fn append_garbage_line_gives_error_line_and_writes_nothing_for_it() {
    let l = TestLedger::cli();
    let (a, _) = l.person("a");
    let size = events;

    for garbage in [
        "this is not json",
        "{\"version\":1}",
        "[1,2,3]",
        "{\"unknown\":true}",
        "\u{0}\u{1}",
    ] {
        let r = run_stdin(&["append", "--dir", l.d()], &format!("{garbage}\n"));
        assert_ne!(r.code, 0, "{garbage:?}: {r:#?}");
        let out = r.ndjson();
        assert_eq!(out.len(), 1, "{r:#?}");
        assert_keys(&out[0], &["error", "rule"]);
        assert_eq!(out[0]["rule"], "malformed", "{r:#?}");
        assert_eq!(size(&l), 0, "nothing written for {garbage:?}");
    }

    // An event line with an unknown extra key is malformed too (strict JSON).
    let a0 = sign_line(&a, &l.origin, CTL, 0, None);
    let mut extra: Value = serde_json::from_str(&a0).unwrap();
    extra["extra"] = 1.into();
    let r = run_stdin(&["append", "--dir", l.d()], &format!("{extra}\n"));
    assert_ne!(r.code, 0);
    assert_eq!(r.ndjson()[0]["rule"], "malformed");
    assert_eq!(size(&l), 0);

    // Garbage among good lines: the error line sits in the garbage's position and exit is
    // non-zero; the good events around it are each accepted on their own.
    let b = l.person("b").0;
    let b0 = sign_line(&b, &l.origin, CTL, 0, None);
    let r = run_stdin(
        &["append", "--dir", l.d()],
        &format!("{a0}\nnot json at all\n{b0}\n"),
    );
    assert_ne!(r.code, 0, "{r:#?}");
    let out = r.ndjson();
    assert_eq!(out.len(), 3);
    check_receipt(&out[0], &l.log_key);
    assert_eq!(out[1]["rule"], "malformed");
    check_receipt(&out[2], &l.log_key);
    assert_eq!(size(&l), 2);
}

// ---------------------------------------------------------------------------------------------
// checkpoint, prove, verify

#[test]
fn checkpoint_prints_a_signed_note() {
    let l = TestLedger::cli_with_origin("note.example/log");
    let (a, _) = l.person("a");
    l.decide(&a, true, CTL, PUR);
    l.decide(&a, false, CTL, PUR);
    let before = now_ms();
    let text = l.note();
    // A plain c2sp.org/tlog-checkpoint: origin, size, root; no extension lines.
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.len(), 6, "{text:?}");
    assert_eq!(lines[0], "note.example/log");
    // Genesis, the first map leaf, two events, the new map leaf.
    assert_eq!(lines[1], "5");
    assert_eq!(B64.decode(lines[2]).unwrap().len(), 32, "{text:?}");
    assert_eq!(lines[3], "");
    let sig = lines[4]
        .strip_prefix("\u{2014} note.example/log ")
        .expect("signature line");
    assert_eq!(B64.decode(sig).unwrap().len(), 4 + 64);
    assert_eq!(lines[5], "", "note ends with a newline");

    let cp = open_note(&text, &l.log_key);
    assert_eq!(cp.size, 5);
    // The root matches the leaves, and the last leaf is the map leaf with the time.
    let all = run(&["leaves", "--dir", l.d()]).ok().ndjson();
    let leaves: Vec<[u8; 32]> = all.iter().map(|v| hash(&v["leaf_hash"])).collect();
    let h = Sha256Hasher;
    let root = h.hash_children(
        &h.hash_children(
            &h.hash_children(&leaves[0], &leaves[1]),
            &h.hash_children(&leaves[2], &leaves[3]),
        ),
        &leaves[4],
    );
    assert_eq!(cp.root, root);
    assert_eq!(all[4]["kind"], "map");
    let Leaf::Map(m) =
        Leaf::decode(&hex::decode(all[4]["leaf"].as_str().unwrap()).unwrap()).unwrap()
    else {
        panic!("not a map leaf")
    };
    assert!(
        m.time + 5 >= before && m.time <= now_ms() + 5,
        "{} vs {before}",
        m.time
    );
    // Another key does not open it.
    let other = consentlog::keyfile::generate().verifying_key();
    assert!(note::open(&text, &other).is_err());

    // A later checkpoint appends another map leaf (at least a second later) and verifies.
    let cp2 = open_note(&l.note(), &l.log_key);
    assert_eq!(cp2.size, 6);

    let r = run(&["checkpoint", "--dir", s(&l.path("none"))]);
    assert_ne!(r.code, 0);
}

#[test]
fn verify_exit_codes_and_json() {
    let l = TestLedger::cli();
    let (alice, apk) = l.person("alice");
    let (bob, bpk) = l.person("bob");
    let (_carol, cpk) = l.person("carol");
    l.decide(&alice, true, CTL, PUR);
    l.decide(&bob, true, CTL, PUR);
    l.decide(&bob, false, CTL, PUR);
    let pa = prove_to(&l, "alice.json", &apk, None);
    let pb = prove_to(&l, "bob.json", &bpk, None);
    let pc = prove_to(&l, "carol.json", &cpk, None);
    let (pa_s, pb_s, pc_s) = (s(&pa), s(&pb), s(&pc));
    let k = l.log_key.as_str();

    // 0 held, 1 not held.
    let r = run(&verify_args(k, pa_s, &[])).ok();
    assert!(r.stdout.contains("HELD"), "{r:#?}");
    run(&verify_args(k, pb_s, &[])).expect_code(1);
    run(&verify_args(k, pb_s, &["--default-allow"])).expect_code(1);
    run(&verify_args(k, pc_s, &[])).expect_code(1);
    run(&verify_args(k, pc_s, &["--default-allow"])).ok();

    // --json: exact keys, for each state.
    for (p, held, state, subj) in [
        (pa_s, true, "opted_in", &apk),
        (pb_s, false, "opted_out", &bpk),
        (pc_s, false, "no_record", &cpk),
    ] {
        let r = run(&verify_args(k, p, &["--json"]));
        assert_eq!(r.code, if held { 0 } else { 1 }, "{r:#?}");
        let v = r.json();
        assert_keys(&v, VERIFY_KEYS);
        assert_eq!(v["valid"], true);
        assert_eq!(v["held"], held);
        assert_eq!(v["state"], state);
        assert_eq!(v["reason"], Value::Null);
        assert_eq!(v["subject"], subj.as_str());
        assert_eq!(v["controller"], CTL);
        assert_eq!(v["purpose"], PUR);
        assert!(v["at"].as_u64().is_some());
    }

    // The matching question is still valid; the log key also from a file.
    let proof: Value = serde_json::from_str(&std::fs::read_to_string(&pa).unwrap()).unwrap();
    let at = proof["at"].as_u64().unwrap().to_string();
    run(&verify_args(
        k,
        pa_s,
        &[
            "--subject",
            &apk,
            "--controller",
            CTL,
            "--purpose",
            PUR,
            "--at",
            &at,
        ],
    ))
    .ok();
    let pubf = l.dir.join("log.pub");
    run(&["verify", "--any-question", "--log-key", s(&pubf), pa_s]).ok();

    // 2: a different question.
    let other_at = (proof["at"].as_u64().unwrap() - 1).to_string();
    for extra in [
        vec!["--subject", bpk.as_str()],
        vec!["--controller", "other.example"],
        vec!["--purpose", "analytics"],
        vec!["--at", other_at.as_str()],
    ] {
        let mut e = extra.clone();
        e.push("--json");
        let r = run(&verify_args(k, pa_s, &e)).expect_code(2);
        let v = r.json();
        assert_keys(&v, VERIFY_KEYS);
        assert_eq!(v["valid"], false);
        assert_eq!(v["held"], false);
        assert!(
            v["reason"].as_str().unwrap().contains("different question"),
            "{v}"
        );
    }

    // 2: a wrong log key, as hex and as a file; a bad key argument.
    let other = hex::encode(consentlog::keyfile::generate().verifying_key().as_bytes());
    run(&verify_args(&other, pa_s, &[])).expect_code(2);
    let of = l.path("other.pub");
    std::fs::write(&of, format!("{other}\n")).unwrap();
    run(&["verify", "--any-question", "--log-key", s(&of), pa_s]).expect_code(2);
    run(&verify_args("zz", pa_s, &[])).expect_code(2);
    run(&verify_args(&l.log_key.to_uppercase(), pa_s, &[])).expect_code(2);

    // 2: unreadable, missing, garbage, empty, truncated proof files.
    run(&verify_args(k, s(&l.path("missing.json")), &[])).expect_code(2);
    run(&verify_args(k, s(l.tmp.path()), &[])).expect_code(2);
    let garbage = l.path("garbage.json");
    std::fs::write(&garbage, "hello, I am not a proof\n").unwrap();
    let r = run(&verify_args(k, s(&garbage), &["--json"])).expect_code(2);
    assert_keys(&r.json(), VERIFY_KEYS);
    std::fs::write(&garbage, "").unwrap();
    run(&verify_args(k, s(&garbage), &[])).expect_code(2);
    let text = std::fs::read_to_string(&pa).unwrap();
    std::fs::write(&garbage, &text[..text.len() / 2]).unwrap();
    run(&verify_args(k, s(&garbage), &[])).expect_code(2);
    std::fs::write(&garbage, [0xffu8, 0xfe, 0x00, 0x80]).unwrap();
    run(&verify_args(k, s(&garbage), &[])).expect_code(2);
    // Standard input.
    let r = run_stdin(&["verify", "--any-question", "--log-key", k, "-"], &text);
    assert_eq!(r.code, 0, "{r:#?}");
    let r = run_stdin(&["verify", "--any-question", "--log-key", k, "-"], "nope");
    assert_eq!(r.code, 2, "{r:#?}");

    // 2: tampered proofs.
    let bob_proof: Value = serde_json::from_str(&std::fs::read_to_string(&pb).unwrap()).unwrap();
    let tampered = l.path("tampered.json");
    let check_tampered = |v: &Value, what: &str| {
        std::fs::write(&tampered, serde_json::to_string_pretty(v).unwrap()).unwrap();
        let r = run(&verify_args(k, s(&tampered), &[]));
        assert_eq!(r.code, 2, "{what}: {r:#?}");
    };
    let mut v = bob_proof.clone();
    v["state"] = "opted_in".into();
    check_tampered(&v, "state claimed opted_in");
    let mut v = bob_proof.clone();
    v["subject"] = apk.clone().into();
    check_tampered(&v, "subject swapped");
    let mut v = bob_proof.clone();
    v["at"] = (v["at"].as_u64().unwrap() + 3_600_000).into();
    check_tampered(&v, "at after the checkpoint");
    let mut v = bob_proof.clone();
    v["events"] = Value::Array(vec![]);
    check_tampered(&v, "events dropped");
    let mut v = bob_proof.clone();
    v["checkpoint"] = v["checkpoint"]
        .as_str()
        .unwrap()
        .replacen("\n", "\n1", 1)
        .into();
    check_tampered(&v, "checkpoint size changed");
    let mut v = bob_proof.clone();
    v["format"] = "consentlog-proof/v1".into();
    check_tampered(&v, "format v1");
    let mut v = bob_proof.clone();
    v["extra"] = 1.into();
    check_tampered(&v, "unknown field");
    // Alice's proof with Bob's opted-out event spliced in.
    let mut v: Value = proof.clone();
    v["events"] = bob_proof["events"].clone();
    check_tampered(&v, "events from another subject");
}

#[test]
fn historical_consent_at_t_and_now() {
    let l = TestLedger::cli();
    let (bob, bpk) = l.person("bob");
    let before = now_ms() - 1;
    let g = l.decide(&bob, true, CTL, PUR);
    // T: a millisecond after the grant, the revocation integrated after T.
    let t = g["integrated_at"].as_u64().unwrap() + 1;
    wall_past(t);
    let r = l.decide(&bob, false, CTL, PUR);
    let tg = g["integrated_at"].as_u64().unwrap();
    let tr = r["integrated_at"].as_u64().unwrap();
    assert!(tg <= t && t < tr, "grant {tg}, T {t}, revoke {tr}");

    let at_t = prove_to(&l, "at_t.json", &bpk, Some(t));
    let now = prove_to(&l, "now.json", &bpk, None);
    let early = prove_to(&l, "early.json", &bpk, Some(before));
    let k = l.log_key.as_str();
    let ts = t.to_string();

    // At T consent held (and the proof is about T), now it does not.
    let r = run(&verify_args(k, s(&at_t), &["--json", "--at", &ts])).ok();
    let v = r.json();
    assert_eq!(
        (v["state"].as_str(), v["at"].as_u64()),
        (Some("opted_in"), Some(t))
    );
    let r = run(&verify_args(k, s(&now), &["--json"])).expect_code(1);
    let v = r.json();
    assert_eq!(v["state"], "opted_out");
    assert!(v["at"].as_u64().unwrap() >= tr);
    // Before the grant: no record.
    let r = run(&verify_args(k, s(&early), &["--json"])).expect_code(1);
    assert_eq!(r.json()["state"], "no_record");
    run(&verify_args(k, s(&early), &["--default-allow"])).ok();

    // The proof at T carries the grant and its successor (the revoke), no map proof.
    let p: Value = serde_json::from_str(&std::fs::read_to_string(&at_t).unwrap()).unwrap();
    assert_eq!(p["events"].as_array().unwrap().len(), 2);
    assert_eq!(p["map"], Value::Null);
    assert_eq!(event_no(&l, p["events"][0]["index"].as_u64().unwrap()), 0);
    assert_eq!(event_no(&l, p["events"][1]["index"].as_u64().unwrap()), 1);
    // The proof at T cannot be passed off as a proof at another time.
    run(&verify_args(k, s(&at_t), &["--at", &(t + 1).to_string()])).expect_code(2);

    // Proving exactly at the revoke's integration time: opted out.
    let at_r = prove_to(&l, "at_r.json", &bpk, Some(tr));
    run(&verify_args(k, s(&at_r), &[])).expect_code(1);
    let at_r1 = prove_to(&l, "at_r1.json", &bpk, Some(tr - 1));
    run(&verify_args(k, s(&at_r1), &[])).ok();
}

#[test]
fn prove_refuses_a_future_time_and_prints_to_stdout() {
    let l = TestLedger::cli();
    let (a, apk) = l.person("a");
    l.decide(&a, true, CTL, PUR);
    let future = (now_ms() + 3_600_000).to_string();
    let r = prove_run(&l, &apk, &["--at", &future]);
    r.assert_fails_with("future");
    assert!(r.stdout.is_empty(), "{r:#?}");

    // A time after the newest map leaf is refused, naming the command that appends one.
    let now = now_ms().to_string();
    let r = prove_run(&l, &apk, &["--at", &now]);
    r.assert_fails_with("consentlog checkpoint");
    l.note();
    // Without --out the proof goes to stdout, with exactly the proof keys.
    let r = prove_run(&l, &apk, &[]).ok();
    let v = r.json();
    assert_keys(
        &v,
        &[
            "format",
            "checkpoint",
            "genesis",
            "map_leaf",
            "subject",
            "vrf_proof",
            "controller",
            "purpose",
            "at",
            "events",
            "map",
            "state",
        ],
    );
    assert_eq!(v["format"], "consentlog-proof/v2");
    assert_eq!(v["state"], "opted_in");
    let f = l.path("p.json");
    std::fs::write(&f, &r.stdout).unwrap();
    run(&verify_args(&l.log_key, s(&f), &[])).ok();
}

#[test]
fn expired_opt_in_is_not_held() {
    let l = TestLedger::cli();
    let (a, apk) = l.person("a");
    let exp = now_ms() + 1500;
    let r = l
        .decide_with(&a, true, CTL, PUR, &["--expires-at", &exp.to_string()])
        .ok();
    let ti = r.json()["integrated_at"].as_u64().unwrap();
    let before = prove_to(&l, "before.json", &apk, Some(ti));
    wall_past(exp + 5);
    let after = prove_to(&l, "after.json", &apk, None);
    let k = l.log_key.as_str();
    assert_eq!(
        run(&verify_args(k, s(&before), &["--json"])).ok().json()["state"],
        "opted_in"
    );
    let r = run(&verify_args(k, s(&after), &["--json"])).expect_code(1);
    assert_eq!(r.json()["state"], "expired");
    // An expired opt-in is not an opt-out: held under --default-allow.
    run(&verify_args(k, s(&after), &["--default-allow"])).ok();
    let at_exp = prove_to(&l, "at_exp.json", &apk, Some(exp));
    run(&verify_args(k, s(&at_exp), &[])).expect_code(1);
}

// ---------------------------------------------------------------------------------------------
// prove-inclusion, prove-consistency, leaves

#[test]
fn inclusion_and_consistency_proofs_match_checkpoints() {
    let l = TestLedger::cli();
    let people: Vec<_> = (0..4).map(|i| l.person(&format!("p{i}")).0).collect();
    // Checkpoints at several sizes, each ending with its map leaf: 3, 5, 8, 12, 14.
    let mut roots = std::collections::BTreeMap::new();
    let cp0 = open_note(&l.note(), &l.log_key);
    assert_eq!(cp0.size, 3);
    roots.insert(cp0.size, cp0.root);
    let (mut n, mut size) = (0u64, cp0.size);
    for batch in [1usize, 2, 3, 1] {
        for _ in 0..batch {
            let who = &people[n as usize % people.len()];
            let opt_in = n < 4 || n % 2 == 1;
            l.decide(who, opt_in, CTL, PUR);
            n += 1;
        }
        let cp = open_note(&l.note(), &l.log_key);
        assert_eq!(cp.size, size + batch as u64 + 1);
        size = cp.size;
        roots.insert(size, cp.root);
    }
    let leaves = run(&["leaves", "--dir", l.d()]).ok().ndjson();
    assert_eq!(leaves.len() as u64, size);
    let h = Sha256Hasher;

    for (&sz, root) in &roots {
        for i in 0..sz {
            let r = run(&[
                "prove-inclusion",
                "--dir",
                l.d(),
                "--index",
                &i.to_string(),
                "--size",
                &sz.to_string(),
            ])
            .ok();
            let v = r.json();
            assert_keys(&v, &["index", "tree_size", "leaf_hash", "root", "path"]);
            assert_eq!(
                (v["index"].as_u64(), v["tree_size"].as_u64()),
                (Some(i), Some(sz))
            );
            assert_eq!(
                hash(&v["root"]),
                *root,
                "inclusion root = checkpoint root at {sz}"
            );
            assert_eq!(v["leaf_hash"], leaves[i as usize]["leaf_hash"]);
            let path: Vec<[u8; 32]> = v["path"].as_array().unwrap().iter().map(hash).collect();
            check_inclusion(
                &h,
                LeafIndex(i),
                TreeSize(sz),
                &hash(&v["leaf_hash"]),
                &path,
                root,
            )
            .unwrap_or_else(|e| panic!("inclusion {i} in {sz}: {e:?}"));
        }
    }
    // Default size is the current size.
    let v = run(&["prove-inclusion", "--dir", l.d(), "--index", "0"])
        .ok()
        .json();
    assert_eq!(v["tree_size"].as_u64(), Some(size));
    // Out of range.
    for (i, sz) in [(size, None), (3, Some(3)), (0, Some(size + 1))] {
        let mut a = vec!["prove-inclusion".to_string(), "--dir".into(), l.d().into()];
        a.extend(["--index".to_string(), i.to_string()]);
        if let Some(sz) = sz {
            a.extend(["--size".to_string(), sz.to_string()]);
        }
        let r = run(&a);
        assert_ne!(r.code, 0, "{a:?}: {r:#?}");
    }

    for (&old, old_root) in &roots {
        for (&new, new_root) in roots.range(old..) {
            let r = run(&[
                "prove-consistency",
                "--dir",
                l.d(),
                "--old",
                &old.to_string(),
                "--new",
                &new.to_string(),
            ])
            .ok();
            let v = r.json();
            assert_keys(
                &v,
                &["old_size", "new_size", "old_root", "new_root", "path"],
            );
            assert_eq!(
                (v["old_size"].as_u64(), v["new_size"].as_u64()),
                (Some(old), Some(new))
            );
            assert_eq!(hash(&v["old_root"]), *old_root);
            assert_eq!(hash(&v["new_root"]), *new_root);
            let path: Vec<[u8; 32]> = v["path"].as_array().unwrap().iter().map(hash).collect();
            check_consistency(&h, TreeSize(old), TreeSize(new), old_root, new_root, &path)
                .unwrap_or_else(|e| panic!("consistency {old} -> {new}: {e:?}"));
        }
    }
    let v = run(&["prove-consistency", "--dir", l.d(), "--old", "1"])
        .ok()
        .json();
    assert_eq!(v["new_size"].as_u64(), Some(size));
    let r = run(&[
        "prove-consistency",
        "--dir",
        l.d(),
        "--old",
        "3",
        "--new",
        "2",
    ]);
    assert_ne!(r.code, 0);
    let r = run(&[
        "prove-consistency",
        "--dir",
        l.d(),
        "--old",
        "1",
        "--new",
        &(size + 1).to_string(),
    ]);
    assert_ne!(r.code, 0);
}

#[test]
fn leaves_lists_entries_as_ndjson() {
    let l = TestLedger::cli();
    let (a, apk) = l.person("a");
    let (b, _) = l.person("b");
    let receipts = [
        l.decide(&a, true, CTL, PUR),
        l.decide(&b, true, CTL, PUR),
        l.decide(&a, false, CTL, PUR),
        l.decide(&b, true, CTL, "analytics"),
    ];
    let all = run(&["leaves", "--dir", l.d()]).ok().ndjson();
    // Genesis, the first map leaf, the four events.
    assert_eq!(all.len(), 6);
    let subject = from_hex_array::<32>(&apk).unwrap();
    for (i, v) in all.iter().enumerate() {
        assert_keys(v, &["index", "kind", "leaf", "leaf_hash"]);
        assert_eq!(v["index"].as_u64(), Some(i as u64));
        let bytes = hex::decode(v["leaf"].as_str().unwrap()).unwrap();
        let e = Leaf::decode(&bytes).expect("leaf decodes");
        assert_eq!(v["kind"], e.kind().as_str());
        assert_eq!(hash(&v["leaf_hash"]), e.leaf_hash());
        assert_eq!(hash(&v["leaf_hash"]), Sha256Hasher.hash_leaf(&bytes));
        match (i, e) {
            (0, Leaf::Genesis(g)) => assert_eq!(g.origin, l.origin),
            (1, Leaf::Map(_)) => {}
            (i, Leaf::Event(e)) if i >= 2 => {
                assert_eq!(v["leaf_hash"], receipts[i - 2]["leaf_hash"]);
                assert_eq!(
                    Some(e.integrated_at),
                    receipts[i - 2]["integrated_at"].as_u64()
                );
            }
            (i, e) => panic!("leaf {i} is {e:?}"),
        }
    }
    // The public leaves do not show who: only the state key.
    let k = consentlog::ledger::Ledger::open(&l.dir)
        .unwrap()
        .state_key(&subject, CTL, PUR)
        .unwrap()
        .unwrap()
        .0;
    let e0 = Leaf::decode_event(&hex::decode(all[2]["leaf"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(e0.key, k);
    assert!(!all[2]["leaf"].as_str().unwrap().contains(&apk));

    let part = run(&["leaves", "--dir", l.d(), "--start", "1", "--end", "3"])
        .ok()
        .ndjson();
    assert_eq!(part, all[1..3].to_vec());
    let tail = run(&["leaves", "--dir", l.d(), "--start", "2"])
        .ok()
        .ndjson();
    assert_eq!(tail, all[2..].to_vec());
    let clipped = run(&["leaves", "--dir", l.d(), "--end", "100"])
        .ok()
        .ndjson();
    assert_eq!(clipped, all);
    let none = run(&["leaves", "--dir", l.d(), "--start", "6"]).ok();
    assert!(none.stdout.is_empty());
}

// ---------------------------------------------------------------------------------------------
// history, verify-history

#[test]
fn history_and_verify_history() {
    let l = TestLedger::cli();
    let (a, apk) = l.person("alice");
    let (b, bpk) = l.person("bob");
    l.decide(&a, true, CTL, PUR);
    l.decide(&b, true, CTL, PUR);
    l.decide(&a, false, CTL, PUR);
    l.decide(&a, true, CTL, PUR);
    l.decide(&a, true, "other.org", "ads");
    // A local read answers as of the newest map leaf: before `consentlog checkpoint` the
    // events are not in the history yet.
    let r = run(&["history", "--dir", l.d(), "--subject", &apk]).ok();
    assert!(r.json()["chains"].as_array().unwrap().is_empty(), "{r:#?}");
    assert!(r.stderr.contains("consentlog checkpoint"), "{r:#?}");
    l.note();
    let r = run(&["history", "--dir", l.d(), "--subject", &apk]).ok();
    let h = r.json();
    assert_keys(
        &h,
        &[
            "format",
            "checkpoint",
            "genesis",
            "map_leaf",
            "subject",
            "chains",
        ],
    );
    assert_eq!(h["subject"], apk.as_str());
    let chains = h["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 2);
    let mut sizes: Vec<usize> = chains
        .iter()
        .map(|c| {
            assert_keys(c, &["controller", "purpose", "vrf_proof", "events", "map"]);
            c["events"].as_array().unwrap().len()
        })
        .collect();
    sizes.sort();
    assert_eq!(sizes, [1, 3]);
    // For people, on standard error: each chain's events with their hashes (what `sign --prev`
    // names).
    assert!(r.stderr.contains("seq 0 opt-in at leaf"), "{r:#?}");
    assert!(
        r.stderr.contains(&format!(
            "event {}",
            h["chains"][0]["events"][0]["opening"]["event"]
                .as_str()
                .map(|b| hex::encode(
                    consentlog::core::event::SignedEvent::decode(&hex::decode(b).unwrap())
                        .unwrap()
                        .event_hash()
                ))
                .unwrap()
        )),
        "{r:#?}"
    );
    let hf = l.path("alice.history.json");
    std::fs::write(&hf, &r.stdout).unwrap();
    let k = l.log_key.as_str();

    // Whose history it must be is not optional: without --subject, anyone's would pass (a
    // usage error, 64).
    let r = run(&["verify-history", "--log-key", k, s(&hf)]).expect_code(64);
    assert!(r.stderr.contains("--subject"), "{r:#?}");
    let r = run(&["verify-history", "--log-key", k, s(&hf), "--subject", &apk]).ok();
    assert!(r.stdout.contains("history valid: 2 chain(s)"), "{r:#?}");
    let v = run(&[
        "verify-history",
        "--log-key",
        k,
        s(&hf),
        "--subject",
        &apk,
        "--json",
    ])
    .ok()
    .json();
    assert_keys(
        &v,
        &[
            "valid",
            "subject",
            "log",
            "tree_size",
            "checkpoint_root",
            "map_leaf",
            "map_time",
            "chains",
            "witnessed",
            "map_replayed",
        ],
    );
    assert_eq!(v["valid"], true);
    // Genesis, init's map leaf, five events, the map leaf of `consentlog checkpoint`.
    assert_eq!(v["tree_size"], 8);
    assert_eq!(v["map_leaf"], 7);
    run(&["verify-history", "--log-key", k, s(&hf), "--subject", &apk]).ok();
    let text = std::fs::read_to_string(&hf).unwrap();
    let r = run_stdin(
        &["verify-history", "--log-key", k, "--subject", &apk, "-"],
        &text,
    );
    assert_eq!(r.code, 0, "{r:#?}");

    // Non-zero: someone else's subject, wrong key, unreadable, garbage, tampered.
    run(&["verify-history", "--log-key", k, s(&hf), "--subject", &bpk]).expect_code(2);
    let other = hex::encode(consentlog::keyfile::generate().verifying_key().as_bytes());
    run(&[
        "verify-history",
        "--log-key",
        &other,
        s(&hf),
        "--subject",
        &apk,
    ])
    .expect_code(2);
    let missing = l.path("missing");
    run(&[
        "verify-history",
        "--log-key",
        k,
        s(&missing),
        "--subject",
        &apk,
    ])
    .expect_code(2);
    let bad = l.path("bad.json");
    std::fs::write(&bad, "garbage").unwrap();
    run(&["verify-history", "--log-key", k, s(&bad), "--subject", &apk]).expect_code(2);

    let mut tampers: Vec<(String, Value)> = Vec::new();
    let chain3 = chains
        .iter()
        .position(|c| c["events"].as_array().unwrap().len() == 3)
        .unwrap();
    let mut t = h.clone();
    t["chains"][chain3]["events"]
        .as_array_mut()
        .unwrap()
        .remove(1);
    tampers.push(("an event removed from the middle".into(), t));
    let mut t = h.clone();
    t["chains"][chain3]["events"].as_array_mut().unwrap().pop();
    tampers.push(("the latest event removed".into(), t));
    let mut t = h.clone();
    t["chains"][chain3]["events"]
        .as_array_mut()
        .unwrap()
        .swap(0, 1);
    tampers.push(("events reordered".into(), t));
    let mut t = h.clone();
    let ev = t["chains"][chain3]["events"][0]["opening"]["event"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bytes = hex::decode(&ev).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    t["chains"][chain3]["events"][0]["opening"]["event"] = hex::encode(bytes).into();
    tampers.push(("a signature byte flipped".into(), t));
    let mut t = h.clone();
    t["chains"][chain3]["controller"] = "evil.example".into();
    tampers.push(("controller renamed".into(), t));
    let mut t = h.clone();
    t["subject"] = bpk.clone().into();
    tampers.push(("subject swapped".into(), t));
    let mut t = h.clone();
    let other_chain = t["chains"][1 - chain3].clone();
    t["chains"].as_array_mut().unwrap().push(other_chain);
    tampers.push(("a chain repeated".into(), t));
    for (what, t) in tampers {
        std::fs::write(&bad, serde_json::to_string(&t).unwrap()).unwrap();
        let r = run(&[
            "verify-history",
            "--log-key",
            k,
            s(&bad),
            "--subject",
            &apk,
            "--json",
        ]);
        assert_eq!(r.code, 2, "{what}: {r:#?}");
        let v = r.json();
        assert_eq!(v["valid"], false, "{what}");
        assert!(v["reason"].as_str().is_some(), "{what}");
    }
    // Bad subject argument.
    let r = run(&["history", "--dir", l.d(), "--subject", "xyz"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("subject"), "{r:#?}");
}

#[test]
fn verify_history_refuses_a_history_with_a_chain_left_out() {
    let l = TestLedger::cli();
    let (a, apk) = l.person("alice");
    l.decide(&a, true, CTL, PUR);
    l.decide(&a, true, "other.org", "ads");
    l.note();
    let h = run(&["history", "--dir", l.d(), "--subject", &apk])
        .ok()
        .json();
    assert_eq!(h["chains"].as_array().unwrap().len(), 2);
    let mut t = h.clone();
    t["chains"].as_array_mut().unwrap().pop();
    let f = l.path("hidden.json");
    std::fs::write(&f, serde_json::to_string(&t).unwrap()).unwrap();
    // The log proves completeness per (controller, purpose): the person names the pairs they
    // used, and a history that leaves one out fails.
    let expect = [
        "--expect",
        "example.com,ai-training",
        "--expect",
        "other.org,ads",
    ];
    let full = l.path("full.json");
    std::fs::write(&full, serde_json::to_string(&h).unwrap()).unwrap();
    let mut args = vec![
        "verify-history",
        "--log-key",
        &l.log_key,
        "--subject",
        &apk,
        s(&full),
    ];
    args.extend(expect);
    run(&args).ok();
    let mut args = vec![
        "verify-history",
        "--log-key",
        &l.log_key,
        "--subject",
        &apk,
        s(&f),
    ];
    args.extend(expect);
    let r = run(&args);
    assert_ne!(r.code, 0, "a history hiding a chain verifies: {r:#?}");
    assert!(r.stderr.contains("has no chain for"), "{r:#?}");
}

// ---------------------------------------------------------------------------------------------
// audit, export

#[test]
fn audit_and_export() {
    let l = TestLedger::cli();
    let (a, _) = l.person("a");
    let (b, _) = l.person("b");
    l.decide(&a, true, CTL, PUR);
    l.note();
    l.decide(&b, true, CTL, PUR);
    l.decide(&a, false, CTL, PUR);
    l.note();
    l.decide(&b, false, CTL, PUR);

    // Entries after the last checkpoint: a dir audit fails and says so.
    let r = run(&["audit", "--dir", l.d()]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stdout.contains("not covered by any checkpoint"), "{r:#?}");

    // An export ends at the latest stored checkpoint (a local read never appends): without a
    // new one it leaves the last event out; after `consentlog checkpoint` it has every leaf.
    let ex = l.path("export.bin");
    run(&["export", "--dir", l.d(), "--out", s(&ex)]).ok();
    let r = run(&["audit", "--log-key", &l.log_key, "--file", s(&ex)]).ok();
    assert!(
        r.stdout
            .contains("audited 7 leaves (3 events, 3 map leaves) against 3 checkpoints"),
        "{r:#?}"
    );
    l.note();
    run(&["export", "--dir", l.d(), "--out", s(&ex)]).ok();
    let r = run(&["audit", "--log-key", &l.log_key, "--file", s(&ex)]).ok();
    assert!(
        r.stdout
            .contains("audited 9 leaves (4 events, 4 map leaves) against 4 checkpoints"),
        "{r:#?}"
    );
    assert!(
        r.stdout.contains("4 openings checked, 0 not available"),
        "{r:#?}"
    );
    assert!(r.stdout.contains("audit OK"), "{r:#?}");
    // And now the dir audit is clean too, with --log-key as hex, as a file, or defaulted.
    run(&["audit", "--dir", l.d()]).ok();
    run(&["audit", "--dir", l.d(), "--log-key", &l.log_key]).ok();
    run(&[
        "audit",
        "--dir",
        l.d(),
        "--log-key",
        s(&l.dir.join("log.pub")),
    ])
    .ok();

    let ex2 = l.path("export-no-openings.bin");
    run(&["export", "--dir", l.d(), "--out", s(&ex2), "--no-openings"]).ok();
    let r = run(&["audit", "--log-key", &l.log_key, "--file", s(&ex2)]).ok();
    assert!(
        r.stdout.contains("0 openings checked, 4 not available"),
        "{r:#?}"
    );
    assert!(std::fs::metadata(&ex2).unwrap().len() < std::fs::metadata(&ex).unwrap().len());

    // Wrong key, missing arguments, missing files.
    let other = hex::encode(consentlog::keyfile::generate().verifying_key().as_bytes());
    let r = run(&["audit", "--log-key", &other, "--file", s(&ex)]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("different log key"), "{r:#?}");
    let r = run(&["audit", "--log-key", &other, "--dir", l.d()]);
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(r.stdout.contains("VIOLATION"), "{r:#?}");
    assert_ne!(run(&["audit", "--file", s(&ex)]).code, 0);
    assert_ne!(run(&["audit", "--log-key", &l.log_key]).code, 0);
    assert_ne!(
        run(&[
            "audit",
            "--log-key",
            &l.log_key,
            "--dir",
            l.d(),
            "--file",
            s(&ex)
        ])
        .code,
        0
    );
    assert_ne!(
        run(&[
            "audit",
            "--log-key",
            &l.log_key,
            "--file",
            s(&l.path("nope"))
        ])
        .code,
        0
    );
    assert_ne!(run(&["audit", "--dir", s(&l.path("nope"))]).code, 0);
    let garbage = l.path("garbage.bin");
    std::fs::write(&garbage, b"consentlog-export/v0\nrest").unwrap();
    assert_ne!(
        run(&["audit", "--log-key", &l.log_key, "--file", s(&garbage)]).code,
        0
    );
    // Export into a directory that does not exist.
    let r = run(&[
        "export",
        "--dir",
        l.d(),
        "--out",
        s(&l.path("no/such/dir/x.bin")),
    ]);
    assert_ne!(r.code, 0);
}

// ---------------------------------------------------------------------------------------------
// loadgen, demo

#[test]
fn loadgen_files_append_fully_into_one_ledger() {
    let l = TestLedger::cli_with_origin("load.example/log");
    let f1 = l.path("load1.ndjson");
    let f2 = l.path("load2.ndjson");
    run(&[
        "loadgen",
        "--events",
        "300",
        "--users",
        "40",
        "--log",
        "load.example/log",
        "--out",
        s(&f1),
    ])
    .ok();
    run(&[
        "loadgen",
        "--events",
        "150",
        "--users",
        "200",
        "--log",
        "load.example/log",
        "--out",
        s(&f2),
    ])
    .ok();
    let lines1 = std::fs::read_to_string(&f1).unwrap();
    assert_eq!(lines1.lines().count(), 300);
    let mut subjects = std::collections::HashSet::new();
    for line in lines1.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_keys(&v, EVENT_JSON_KEYS);
        assert_eq!(v["log"], "load.example/log");
        subjects.insert(v["subject"].as_str().unwrap().to_string());
    }
    assert_eq!(subjects.len(), 40);
    assert_eq!(std::fs::read_to_string(&f2).unwrap().lines().count(), 150);

    let out1 = run(&["append", "--dir", l.d(), s(&f1)]).ok().ndjson();
    assert_eq!(out1.len(), 300);
    for (i, r) in out1.iter().enumerate() {
        assert_keys(r, RECEIPT_KEYS);
        assert_eq!(r["index"].as_u64(), Some(FIRST + i as u64));
    }
    let out2 = run(&["append", "--dir", l.d(), s(&f2)]).ok().ndjson();
    assert_eq!(out2.len(), 150);
    // After the first file's events, the map leaf `append` ended with.
    for (i, r) in out2.iter().enumerate() {
        assert_eq!(r["index"].as_u64(), Some(FIRST + 301 + i as u64), "{r}");
    }
    check_receipt(&out2[149], &l.log_key);
    l.note();
    run(&["audit", "--dir", l.d()]).ok();

    // A loadgen file for another origin is refused event by event.
    let f3 = l.path("load3.ndjson");
    run(&["loadgen", "--events", "3", "--out", s(&f3)]).ok();
    let r = run(&["append", "--dir", l.d(), s(&f3)]);
    assert_ne!(r.code, 0);
    assert!(r.ndjson().iter().all(|v| v["rule"] == "log"), "{r:#?}");
    // Bad arguments.
    let f4 = l.path("load4.ndjson");
    assert_ne!(
        run(&["loadgen", "--events", "3", "--users", "0", "--out", s(&f4)]).code,
        0
    );
    let r = run(&[
        "loadgen",
        "--events",
        "3",
        "--controller",
        "Bad",
        "--out",
        s(&f4),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("controller"), "{r:#?}");
}

#[test]
fn demo_runs_and_prints_its_steps() {
    let r = run(&["demo"]).ok();
    for step in ["1. ", "2. ", "3. ", "4. ", "5. ", "audit OK", "Done."] {
        assert!(r.stdout.contains(step), "missing {step:?}: {r:#?}");
    }
    assert!(
        r.stdout.contains("HELD") && r.stdout.contains("NOT held"),
        "{r:#?}"
    );
    assert!(!r.stdout.contains("VIOLATION"), "{r:#?}");
}

// ---------------------------------------------------------------------------------------------
// bad input

#[test]
fn bad_input_errors_name_what_is_wrong() {
    let l = TestLedger::cli();
    let (a, apk) = l.person("a");
    l.decide(&a, true, CTL, PUR);
    let prove = |subject: &str, controller: &str, purpose: &str| {
        run(&[
            "prove",
            "--dir",
            l.d(),
            "--subject",
            subject,
            "--controller",
            controller,
            "--purpose",
            purpose,
        ])
    };
    // Subject: not hex, uppercase hex, wrong length, odd length.
    let upper = apk.to_uppercase();
    let cases = [
        ("z".repeat(64), "invalid character 'z'"),
        (upper.clone(), "invalid character"),
        (apk[..62].to_string(), "expected 32"),
        (apk[..63].to_string(), "odd length"),
        (format!("0x{}", &apk[2..]), "invalid character 'x'"),
    ];
    for (subject, msg) in &cases {
        let r = prove(subject, CTL, PUR);
        assert_ne!(r.code, 0, "{subject}: {r:#?}");
        assert!(r.stderr.contains("subject"), "{subject}: {r:#?}");
        assert!(r.stderr.contains(msg), "{subject}: want {msg:?}: {r:#?}");
        let r = run(&["history", "--dir", l.d(), "--subject", subject]);
        assert_ne!(r.code, 0, "{r:#?}");
        assert!(
            r.stderr.contains("subject") && r.stderr.contains(msg),
            "{r:#?}"
        );
    }
    // verify --subject with bad hex: invalid (2), naming the subject.
    let pf = prove_to(&l, "p.json", &apk, None);
    let r = run(&verify_args(&l.log_key, s(&pf), &["--subject", &upper]));
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stderr.contains("subject"), "{r:#?}");

    // Controller and purpose with uppercase letters or other characters.
    let r = prove(&apk, "Example.com", PUR);
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(
        r.stderr.contains("controller") && r.stderr.contains("'E'"),
        "{r:#?}"
    );
    let r = prove(&apk, CTL, "AI training");
    r.assert_fails_with("purpose");
    let r = prove(&apk, "", PUR);
    assert_ne!(r.code, 0, "{r:#?}");
    let r = prove(&apk, &"a".repeat(129), PUR);
    r.assert_fails_with("controller");
    // grant with an uppercase controller: rejected with the rule, nothing written.
    let r = l.decide_with(&a, true, "EXAMPLE.COM", PUR, &[]);
    assert_ne!(r.code, 0, "{r:#?}");
    let v = r.json();
    assert_keys(&v, &["error", "rule"]);
    assert_eq!(v["rule"], "controller");
    assert!(v["error"].as_str().unwrap().contains("'E'"), "{v}");
    assert_eq!(events(&l), 1);
    let r = l.decide_with(&a, false, CTL, "Ads", &[]);
    assert_eq!(r.json()["rule"], "purpose", "{r:#?}");
    // verify with an uppercase --controller is another question: invalid.
    let r = run(&verify_args(
        &l.log_key,
        s(&pf),
        &["--controller", "Example.com"],
    ));
    assert_eq!(r.code, 2, "{r:#?}");

    // A bad key file.
    let kf = l.path("bad.key");
    std::fs::write(&kf, "not a key\n").unwrap();
    std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = l.decide_with(&kf, true, CTL, PUR, &[]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not a consentlog key file"), "{r:#?}");
}

#[test]
fn compact_gives_back_free_space_and_keeps_the_ledger_intact() {
    for engine in ["redb", "sled"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ledger");
        let origin = "compact.example/log";
        run(&[
            "init",
            "--dir",
            s(&dir),
            "--origin",
            origin,
            "--backend",
            engine,
        ])
        .ok();
        let ev = tmp.path().join("ev.ndjson");
        run(&[
            "loadgen",
            "--events",
            "3000",
            "--users",
            "150",
            "--log",
            origin,
            "--out",
            s(&ev),
        ])
        .ok();
        run(&["append", "--dir", s(&dir), s(&ev)]).ok();
        run(&["checkpoint", "--dir", s(&dir)]).ok();
        let r = run(&["compact", "--dir", s(&dir)]).ok();
        if engine == "redb" {
            let line = r.stdout.trim();
            let sizes: Vec<u64> = line
                .trim_start_matches("compacted: ")
                .trim_end_matches(" bytes")
                .split(" -> ")
                .map(|n| n.parse().unwrap())
                .collect();
            assert!(sizes[1] <= sizes[0], "{line}");
            // Refused while the ledger is open elsewhere.
            let l = consentlog::ledger::Ledger::open(&dir).unwrap();
            let r = run(&["compact", "--dir", s(&dir)]);
            assert_ne!(r.code, 0, "{r:?}");
            assert!(r.stderr.contains("error"), "{r:?}");
            drop(l);
        } else {
            assert!(r.stdout.contains("nothing to do"), "{r:?}");
        }
        let a = run(&["audit", "--dir", s(&dir)]).ok();
        assert!(a.stdout.contains("audit OK"), "{a:?}");
        assert!(a.stdout.contains("(3000 events,"), "{a:?}");
    }
    let r = run(&["compact", "--dir", "/nonexistent/ledger"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not a consentlog ledger"), "{r:?}");
}

/// Issue 15 item 1: `verify` asks for the full question, or says it answered the proof's own.
#[test]
fn verify_needs_the_full_question() {
    let l = TestLedger::cli();
    let (alice, apk) = l.person("alice");
    let g = l.decide(&alice, true, CTL, PUR);
    let t = g["integrated_at"].as_u64().unwrap() + 1;
    wall_past(t);
    let pf = prove_to(&l, "alice.json", &apk, Some(t));
    let k = l.log_key.as_str();
    let ts = t.to_string();
    // Nothing asked: a usage error naming every missing part.
    let r = run(&["verify", "--log-key", k, s(&pf)]);
    r.assert_code(64);
    for part in ["--subject", "--controller", "--purpose", "--at"] {
        assert!(r.stderr.contains(part), "{part}: {r:#?}");
    }
    // Part asked: names only what is missing.
    let r = run(&[
        "verify",
        "--log-key",
        k,
        "--subject",
        &apk,
        "--controller",
        CTL,
        s(&pf),
    ]);
    r.assert_code(64);
    assert!(
        r.stderr.contains("--purpose") && r.stderr.contains("--at"),
        "{r:#?}"
    );
    assert!(!r.stderr.contains("--subject,"), "{r:#?}");
    // The full question, the time as RFC 3339: held, and the verdict names it.
    let at_rfc = jiff::Timestamp::from_millisecond(t as i64)
        .unwrap()
        .to_string();
    let full = |at: &str| {
        run(&[
            "verify",
            "--log-key",
            k,
            "--subject",
            &apk,
            "--controller",
            CTL,
            "--purpose",
            PUR,
            "--at",
            at,
            s(&pf),
        ])
    };
    let r = full(&at_rfc).ok();
    for part in [apk.as_str(), CTL, PUR, ts.as_str(), "checkpoint of"] {
        assert!(r.stdout.contains(part), "{part}: {r:#?}");
    }
    full(&ts).ok();
    // Seconds are refused as such; garbage is a usage error.
    let r = full(&(t / 1000).to_string());
    r.assert_code(64);
    assert!(r.stderr.contains("looks like seconds"), "{r:#?}");
    full("yesterday").assert_code(64);
    // --any-question: accepted, saying what was not checked.
    let r = run(&["verify", "--any-question", "--log-key", k, s(&pf)]).ok();
    assert!(r.stdout.contains("not checked against --subject"), "{r:#?}");
    assert!(r.stdout.contains(&apk), "{r:#?}");
}

/// Issue 15 item 2: `prove --at` takes a date or RFC 3339 time, and refuses seconds.
#[test]
fn prove_at_takes_rfc3339_and_refuses_seconds() {
    let l = TestLedger::cli();
    let (alice, apk) = l.person("alice");
    let g = l.decide(&alice, true, CTL, PUR);
    let t = g["integrated_at"].as_u64().unwrap() + 1;
    wall_past(t);
    l.note();
    let rfc = jiff::Timestamp::from_millisecond(t as i64)
        .unwrap()
        .to_string();
    let r = prove_run(&l, &apk, &["--at", &rfc]).ok();
    assert_eq!(r.json()["at"].as_u64(), Some(t), "{r:#?}");
    let r = prove_run(&l, &apk, &["--at", &(t / 1000).to_string()]);
    r.assert_code(64);
    assert!(r.stderr.contains("looks like seconds"), "{r:#?}");
}

/// Issue 15 item 2: a misspelled controller says "no record for (…)" with what was asked.
#[test]
fn no_record_names_the_question() {
    let l = TestLedger::cli();
    let (alice, apk) = l.person("alice");
    l.decide(&alice, true, CTL, PUR);
    l.note();
    let out = l.path("typo.json");
    let r = run(&[
        "prove",
        "--dir",
        l.d(),
        "--subject",
        &apk,
        "--controller",
        "exmaple.com",
        "--purpose",
        PUR,
        "--out",
        s(&out),
    ])
    .ok();
    let want = format!("no record for (subject {apk}, controller exmaple.com, purpose {PUR})");
    assert!(r.stderr.contains(&want), "{r:#?}");
    let r = run(&["verify", "--any-question", "--log-key", &l.log_key, s(&out)]);
    r.assert_code(1);
    assert!(r.stdout.contains(&want), "{r:#?}");
}
