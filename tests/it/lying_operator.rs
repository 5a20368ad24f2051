//! A lying operator: a log that shows different histories to different people (a fork made
//! with the same log key) is caught by check-consistency, by a person's remembered checkpoint
//! in verify-history, and by a remembered checkpoint in a remote audit; the evidence is
//! portable and re-checkable by anyone.
//!
//! Both branches start from one `init` (genesis and a map leaf, checkpoint of size 2); the
//! person's event is leaf 2 on each, and `consentlog checkpoint` appends a map leaf (leaf 3)
//! and signs the checkpoint of size 4.

use std::path::{Path, PathBuf};

use crate::support::{run, s, Server};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

struct Fork {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    a: PathBuf,
    b: PathBuf,
    key: String,
    person: PathBuf,
    subject: String,
}

/// Two ledgers with one log key (and one genesis leaf) and one person, who opted in on A and
/// out on B; neither checkpointed since.
fn fork() -> Fork {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let a = root.join("a");
    let b = root.join("b");
    assert_eq!(
        run(&["init", "--dir", s(&a), "--origin", "fork.example/log"]).code,
        0
    );
    copy_dir(&a, &b);
    let key = std::fs::read_to_string(a.join("log.pub"))
        .unwrap()
        .trim()
        .to_string();
    let person = root.join("me.key");
    let out = run(&["keygen", "--out", s(&person)]);
    let subject = out.stdout.trim().to_string();
    let g = [
        "--key",
        s(&person),
        "--controller",
        "example.com",
        "--purpose",
        "ai-training",
    ];
    let mut args = vec!["grant", "--dir", s(&a)];
    args.extend(g);
    assert_eq!(run(&args).code, 0);
    let mut args = vec!["revoke", "--dir", s(&b)];
    args.extend(g);
    assert_eq!(run(&args).code, 0);
    Fork {
        _tmp: tmp,
        root,
        a,
        b,
        key,
        person,
        subject,
    }
}

fn checkpoint(dir: &Path, out: &Path) {
    let o = run(&["checkpoint", "--dir", s(dir)]);
    assert_eq!(o.code, 0, "{}", o.all());
    std::fs::write(out, &o.stdout).unwrap();
}

#[test]
fn a_fork_is_caught_and_the_evidence_rechecks() {
    let f = fork();
    let (n1, n2, n3) = (f.root.join("n1"), f.root.join("n2"), f.root.join("n3"));
    checkpoint(&f.a, &n1);
    checkpoint(&f.b, &n2);
    // Same size (genesis, init's map leaf, the event, the new map leaf), different roots.
    let ev = f.root.join("ev.json");
    let o = run(&[
        "check-consistency",
        "--log-key",
        &f.key,
        s(&n1),
        s(&n2),
        "--out",
        s(&ev),
    ]);
    assert_eq!(o.code, 1, "{}", o.all());
    assert!(o.all().contains("THE LOG LIED"), "{}", o.all());
    let o = run(&["verify-evidence", s(&ev)]);
    assert_eq!(o.code, 0, "{}", o.all());
    assert!(
        o.all().contains("two different trees of size 4"),
        "{}",
        o.all()
    );

    // A grows: it extends its own past, not B's.
    let g = [
        "--key",
        s(&f.person),
        "--controller",
        "example.com",
        "--purpose",
        "ads",
    ];
    let mut args = vec!["grant", "--dir", s(&f.a)];
    args.extend(g);
    assert_eq!(run(&args).code, 0);
    checkpoint(&f.a, &n3);
    let o = run(&[
        "check-consistency",
        "--log-key",
        &f.key,
        s(&n1),
        s(&n3),
        "--dir",
        s(&f.a),
    ]);
    assert_eq!(o.code, 0, "{}", o.all());
    let ev2 = f.root.join("ev2.json");
    let o = run(&[
        "check-consistency",
        "--log-key",
        &f.key,
        s(&n2),
        s(&n3),
        "--dir",
        s(&f.a),
        "--out",
        s(&ev2),
    ]);
    // A's proof cannot show that A's tree extends B's: not proven. That is no evidence by
    // itself (anyone can send a bad proof), so no evidence file is written.
    assert_eq!(o.code, 1, "{}", o.all());
    assert!(o.all().contains("NOT PROVEN"), "{}", o.all());
    assert!(!ev2.exists());

    // Without a way to get a proof, differing sizes are undecided, not passed.
    let o = run(&["check-consistency", "--log-key", &f.key, s(&n2), s(&n3)]);
    assert_eq!(o.code, 2, "{}", o.all());

    // Evidence that does not show a lie is refused.
    let mut e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ev).unwrap()).unwrap();
    assert_eq!(e["claim"]["kind"], "same_size_different_roots");
    e["claim"]["second"] = e["claim"]["first"].clone();
    let bad = f.root.join("bad.json");
    std::fs::write(&bad, e.to_string()).unwrap();
    let o = run(&["verify-evidence", s(&bad)]);
    assert_eq!(o.code, 1, "{}", o.all());
    // v1's kinds (a failed consistency proof; checkpoint times) are gone: such a file is no
    // evidence at all.
    for kind in ["inconsistent", "time_reversal"] {
        let mut e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&ev).unwrap()).unwrap();
        e["claim"]["kind"] = kind.into();
        std::fs::write(&bad, e.to_string()).unwrap();
        let o = run(&["verify-evidence", s(&bad)]);
        assert_eq!(o.code, 2, "{}", o.all());
        assert!(o.all().contains("not an evidence file"), "{}", o.all());
    }
    // Notes signed by another key are not evidence against this log.
    let other = f.root.join("other");
    run(&["init", "--dir", s(&other), "--origin", "fork.example/log"]);
    let n4 = f.root.join("n4");
    checkpoint(&other, &n4);
    let o = run(&["check-consistency", "--log-key", &f.key, s(&n1), s(&n4)]);
    assert_eq!(o.code, 2, "{}", o.all());
}

#[test]
fn a_person_who_saw_one_branch_catches_the_other() {
    let f = fork();
    // A local history is complete up to the newest map leaf: each branch appends one after
    // the person's event.
    checkpoint(&f.a, &f.root.join("n1"));
    checkpoint(&f.b, &f.root.join("n2"));
    let state = f.root.join("seen.json");
    let (h1, h2) = (f.root.join("h1.json"), f.root.join("h2.json"));
    let o = run(&["history", "--dir", s(&f.a), "--subject", &f.subject]);
    std::fs::write(&h1, &o.stdout).unwrap();
    let o = run(&["history", "--dir", s(&f.b), "--subject", &f.subject]);
    std::fs::write(&h2, &o.stdout).unwrap();
    for h in [&h1, &h2] {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(h).unwrap()).unwrap();
        assert_eq!(v["chains"].as_array().map(Vec::len), Some(1), "{v}");
    }
    let verify = |h: &Path| {
        run(&[
            "verify-history",
            "--log-key",
            &f.key,
            s(h),
            "--subject",
            &f.subject,
            "--state",
            s(&state),
        ])
    };
    let o = verify(&h1);
    assert_eq!(o.code, 0, "{}", o.all());
    assert!(state.exists());
    // Each history is valid on its own; together they show the fork.
    let o = verify(&h2);
    assert_eq!(o.code, 2, "{}", o.all());
    assert!(o.all().contains("THE LOG LIED"), "{}", o.all());
    let ev = state.with_extension("evidence.json");
    let o = run(&["verify-evidence", s(&ev)]);
    assert_eq!(o.code, 0, "{}", o.all());
    // The first branch still verifies against what was remembered.
    assert_eq!(verify(&h1).code, 0);
}

#[test]
fn a_remote_auditor_who_saw_one_branch_catches_the_other() {
    let f = fork();
    let state = f.root.join("auditor.json");
    let audit = |url: &str| {
        run(&[
            "audit",
            "--url",
            url,
            "--log-key",
            &f.key,
            "--state",
            s(&state),
        ])
    };
    {
        let srv = Server::start_in(&f.a, &[]);
        let o = audit(&srv.url);
        assert_eq!(o.code, 0, "{}", o.all());
    }
    let srv = Server::start_in(&f.b, &[]);
    let o = audit(&srv.url);
    assert_ne!(o.code, 0, "{}", o.all());
    assert!(o.all().contains("THE LOG LIED"), "{}", o.all());
}
