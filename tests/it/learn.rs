//! Learn by doing (issue 15 item 5): `demo` shows its commands and keeps its directory when
//! asked; `verify-inclusion` and `verify-consistency` check the auditor's proofs.

use std::path::Path;

use super::support::{run, run_env, s, Run};

/// Runs one demo command line (as printed after `$ consentlog `) with the binary, its state
/// file in `state`.
fn run_line(line: &str, state: &Path) -> Run {
    let args: Vec<&str> = line.split_whitespace().collect();
    run_env(&args, &[("CONSENTLOG_STATE", state)])
}

#[test]
fn demo_prints_its_commands_and_they_work_on_the_kept_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let keep = tmp.path().join("demo");
    let r = run(&["demo", "--keep", s(&keep)]).ok();
    let cmds: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("$ consentlog "))
        .collect();
    for verb in [
        "init",
        "keygen",
        "grant",
        "revoke",
        "checkpoint",
        "prove",
        "verify",
        "history",
        "verify-history",
        "audit",
    ] {
        assert!(
            cmds.iter().any(|c| c.split(' ').next() == Some(verb)),
            "no `{verb}` command shown: {r:#?}"
        );
    }
    let done = r.stdout.split("Three commands to try next:").nth(1);
    let next: Vec<&str> = done
        .unwrap_or_else(|| panic!("no next commands: {r:#?}"))
        .lines()
        .filter_map(|l| l.trim().strip_prefix("$ consentlog "))
        .collect();
    assert_eq!(next.len(), 3, "{r:#?}");
    assert!(next.iter().all(|c| c.contains(s(&keep))), "{next:?}");
    // Everything the demo made is kept, and its read-only commands give what it said.
    for f in [
        "ledger/log.pub",
        "alice.key",
        "alice.pub",
        "bob.key",
        "bob-history.json",
    ] {
        assert!(keep.join(f).exists(), "{f} not kept");
    }
    for c in &cmds {
        let verb = c.split(' ').next().expect("verb");
        if matches!(verb, "verify" | "verify-history" | "audit") {
            let r = run_line(c, &tmp.path().join("state.json"));
            let want = if c.contains("bob-now") { 1 } else { 0 };
            assert_eq!(r.code, want, "`{c}`: {r:#?}");
        }
    }
    // The next commands run as shown (the server is left out: it would not end).
    for c in &next[..2] {
        run_line(c, &tmp.path().join("state.json")).ok();
    }
    // A non-empty directory is refused, as a usage error.
    let again = run(&["demo", "--keep", s(&keep)]);
    again.assert_code(64);
    assert!(again.stderr.contains("not empty"), "{again:#?}");
}

#[test]
fn demo_without_keep_removes_its_directory_and_suggests_keep() {
    let r = run(&["demo"]).ok();
    let work = r
        .stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("== consentlog demo, working in "))
        .and_then(|l| l.split(" (").next())
        .unwrap_or_else(|| panic!("{r:#?}"))
        .to_string();
    assert!(!Path::new(&work).exists(), "{work} left behind");
    assert!(r.stdout.contains("$ consentlog demo --keep"), "{r:#?}");
    assert!(r.stdout.contains("$ consentlog init --dir"), "{r:#?}");
}

/// A small ledger with checkpoints at two sizes: (tmp, dir, old note, new note).
fn ledger_with_two_checkpoints() -> (tempfile::TempDir, String, String, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ledger");
    run(&["init", "--dir", s(&dir)]).ok();
    let key = tmp.path().join("me.key");
    run(&["keygen", "--out", s(&key)]).ok();
    let grant = |verb: &str| {
        run(&[
            verb,
            "--dir",
            s(&dir),
            "--key",
            s(&key),
            "--controller",
            "example.com",
            "--purpose",
            "ai-training",
        ])
        .ok();
    };
    grant("grant");
    let old = tmp.path().join("old.note");
    std::fs::write(&old, run(&["checkpoint", "--dir", s(&dir)]).ok().stdout).expect("old");
    grant("revoke");
    grant("grant");
    let new = tmp.path().join("new.note");
    std::fs::write(&new, run(&["checkpoint", "--dir", s(&dir)]).ok().stdout).expect("new");
    let (d, o, n) = (
        s(&dir).to_string(),
        s(&old).to_string(),
        s(&new).to_string(),
    );
    (tmp, d, o, n)
}

fn size_of(note: &str) -> String {
    std::fs::read_to_string(note)
        .expect("note")
        .lines()
        .nth(1)
        .expect("size line")
        .to_string()
}

/// Every single-bit change of `text` at the byte offsets `at` (one bit per byte, cycling).
fn flips(text: &str, at: impl Iterator<Item = usize>) -> Vec<String> {
    at.enumerate()
        .filter_map(|(k, i)| {
            let mut b = text.as_bytes().to_vec();
            b[i] ^= 1 << (k % 7);
            String::from_utf8(b).ok().filter(|t| t != text)
        })
        .collect()
}

/// Byte offsets of the hex digits and decimal numbers in a JSON proof.
fn value_bytes(text: &str) -> Vec<usize> {
    text.char_indices()
        .filter(|(_, c)| c.is_ascii_hexdigit())
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn verify_inclusion_accepts_the_proof_and_rejects_every_bit_flip() {
    let (tmp, dir, old, _new) = ledger_with_two_checkpoints();
    let key = format!("{dir}/log.pub");
    let size = size_of(&old);
    let proof = run(&[
        "prove-inclusion",
        "--dir",
        &dir,
        "--index",
        "2",
        "--size",
        &size,
    ])
    .ok()
    .stdout;
    let pf = tmp.path().join("inclusion.json");
    std::fs::write(&pf, &proof).expect("proof");
    let ok = run(&[
        "verify-inclusion",
        "--log-key",
        &key,
        "--checkpoint",
        &old,
        s(&pf),
    ])
    .ok();
    assert!(
        ok.stdout.contains("valid inclusion proof: leaf 2"),
        "{ok:#?}"
    );
    assert!(
        ok.stdout.contains(&format!("tree of {size} leaves")),
        "{ok:#?}"
    );
    // The leaf hash one holds is checked when given.
    let leaf: serde_json::Value = serde_json::from_str(&proof).expect("json");
    let lh = leaf["leaf_hash"].as_str().expect("leaf_hash");
    run(&[
        "verify-inclusion",
        "--log-key",
        &key,
        "--checkpoint",
        &old,
        "--leaf-hash",
        lh,
        s(&pf),
    ])
    .ok();
    let other = format!("{}{}", &lh[..63], if lh.ends_with('0') { "1" } else { "0" });
    run(&[
        "verify-inclusion",
        "--log-key",
        &key,
        "--checkpoint",
        &old,
        "--leaf-hash",
        &other,
        s(&pf),
    ])
    .assert_code(2);
    // Every single-bit change of the proof's values is refused with exit 2.
    let bad = flips(&proof, value_bytes(&proof).into_iter());
    assert!(bad.len() > 100, "{} flips", bad.len());
    for b in &bad {
        std::fs::write(&pf, b).expect("flip");
        let r = run(&[
            "verify-inclusion",
            "--log-key",
            &key,
            "--checkpoint",
            &old,
            s(&pf),
        ]);
        assert_eq!(r.code, 2, "accepted a changed proof {b}: {r:#?}");
    }
    // And so is a changed checkpoint (its root or size line), and another log's key.
    std::fs::write(&pf, &proof).expect("proof");
    let note = std::fs::read_to_string(&old).expect("note");
    let body_end = note.find("\n\n").expect("body");
    let nf = tmp.path().join("changed.note");
    for b in flips(
        &note,
        note.char_indices().take(body_end).map(|(i, _)| i).skip(5),
    ) {
        std::fs::write(&nf, &b).expect("flip");
        let r = run(&[
            "verify-inclusion",
            "--log-key",
            &key,
            "--checkpoint",
            s(&nf),
            s(&pf),
        ]);
        assert_eq!(r.code, 2, "accepted a changed checkpoint {b}: {r:#?}");
    }
    let other_key = "11".repeat(32);
    let r = run(&[
        "verify-inclusion",
        "--log-key",
        &other_key,
        "--checkpoint",
        &old,
        s(&pf),
    ]);
    assert_ne!(r.code, 0, "{r:#?}");
    // A proof for another size names the command that gives the right one.
    let cur = run(&["prove-inclusion", "--dir", &dir, "--index", "2"])
        .ok()
        .stdout;
    std::fs::write(&pf, cur).expect("proof");
    let r = run(&[
        "verify-inclusion",
        "--log-key",
        &key,
        "--checkpoint",
        &old,
        s(&pf),
    ]);
    r.assert_code(2);
    assert!(r.stderr.contains(&format!("--size {size}")), "{r:#?}");
    // No checkpoint: a usage error.
    run(&["verify-inclusion", "--log-key", &key, s(&pf)]).assert_code(64);
}

#[test]
fn verify_consistency_accepts_the_proof_and_rejects_every_bit_flip() {
    let (tmp, dir, old, new) = ledger_with_two_checkpoints();
    let key = format!("{dir}/log.pub");
    let (o, n) = (size_of(&old), size_of(&new));
    let proof = run(&["prove-consistency", "--dir", &dir, "--old", &o, "--new", &n])
        .ok()
        .stdout;
    let pf = tmp.path().join("consistency.json");
    std::fs::write(&pf, &proof).expect("proof");
    let args = |p: &str| {
        run(&[
            "verify-consistency",
            "--log-key",
            &key,
            "--checkpoint",
            &old,
            "--checkpoint",
            &new,
            p,
        ])
    };
    let ok = args(s(&pf)).ok();
    assert!(
        ok.stdout.contains(&format!(
            "tree of {o} leaves is a prefix of the tree of {n} leaves"
        )),
        "{ok:#?}"
    );
    assert_eq!(
        ok.stdout.matches(": signed, checkpoint").count(),
        2,
        "{ok:#?}"
    );
    // With the old checkpoint only, the new root is reported as not signed.
    let half = run(&[
        "verify-consistency",
        "--log-key",
        &key,
        "--checkpoint",
        &old,
        s(&pf),
    ])
    .ok();
    assert!(half.stdout.contains("NOT signed"), "{half:#?}");
    let bad = flips(&proof, value_bytes(&proof).into_iter());
    assert!(bad.len() > 100, "{} flips", bad.len());
    for b in &bad {
        std::fs::write(&pf, b).expect("flip");
        let r = args(s(&pf));
        assert_eq!(r.code, 2, "accepted a changed proof {b}: {r:#?}");
    }
    // A proof between other sizes than the checkpoints' is refused, naming the right one.
    let other = run(&[
        "prove-consistency",
        "--dir",
        &dir,
        "--old",
        "1",
        "--new",
        &n,
    ])
    .ok()
    .stdout;
    std::fs::write(&pf, other).expect("proof");
    let r = args(s(&pf));
    r.assert_code(2);
    assert!(r.stderr.contains(&format!("--old {o}")), "{r:#?}");
    run(&["verify-consistency", "--log-key", &key, s(&pf)]).assert_code(64);
}

#[test]
fn proofs_past_the_log_name_its_size() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ledger");
    run(&["init", "--dir", s(&dir)]).ok();
    let r = run(&["prove-consistency", "--dir", s(&dir), "--old", "100"]);
    r.assert_code(1);
    assert!(
        r.stderr
            .contains("--old 100 is larger than the tree of 2 leaves")
            && r.stderr.contains("at most 2"),
        "{r:#?}"
    );
    let r = run(&["prove-inclusion", "--dir", s(&dir), "--index", "5"]);
    r.assert_code(1);
    assert!(r.stderr.contains("the log has 2 leaves"), "{r:#?}");
}
