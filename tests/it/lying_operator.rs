//! A lying operator: a log that shows different histories to different people (a fork made
//! with the same log key) is caught by check-consistency, by a person's remembered checkpoint
//! in verify-history, and by a remembered checkpoint in a remote audit; the evidence is
//! portable and re-checkable by anyone.
//!
//! Both branches start from one `init` (genesis and a map leaf, checkpoint of size 2); the
//! person's event is leaf 2 on each, and `consentlog checkpoint` appends a map leaf (leaf 3)
//! and signs the checkpoint of size 4.

use std::path::{Path, PathBuf};

use crate::support::witnessed_server::copy_dir;
use crate::support::{run, run_env, s, Server};

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
    // From another device (its own receipts file): the person's CLI would otherwise catch the
    // fork at once, as tests/it/receipts.rs shows.
    let mut args = vec!["revoke", "--dir", s(&b)];
    args.extend(g);
    let device = root.join("other-device").join("checkpoints.json");
    assert_eq!(run_env(&args, &[("CONSENTLOG_STATE", &device)]).code, 0);
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

/// `check-consistency --log-key KEY A B EXTRA…`.
fn check_consistency(key: &str, a: &str, b: &str, extra: &[&str]) -> crate::support::Run {
    let mut args = vec!["check-consistency", "--log-key", key, a, b];
    args.extend(extra);
    run(&args)
}

fn checkpoint(dir: &Path, out: &Path) {
    let o = run(&["checkpoint", "--dir", s(dir)]);
    assert_eq!(o.code, 0, "{}", o.all());
    std::fs::write(out, &o.stdout).unwrap();
}

impl Fork {
    /// The person grants `purpose` to example.com on B, from the other device (its own
    /// remembered checkpoints, so its CLI does not catch the fork first).
    fn grant_on_b(&self, purpose: &str) {
        let args = [
            "grant",
            "--dir",
            s(&self.b),
            "--key",
            s(&self.person),
            "--controller",
            "example.com",
            "--purpose",
            purpose,
        ];
        let device = self.root.join("other-device").join("checkpoints.json");
        assert_eq!(run_env(&args, &[("CONSENTLOG_STATE", &device)]).code, 0);
    }
}

#[test]
fn a_fork_is_caught_and_the_evidence_rechecks() {
    let f = fork();
    let (n1, n2, n3) = (f.root.join("n1"), f.root.join("n2"), f.root.join("n3"));
    checkpoint(&f.a, &n1);
    checkpoint(&f.b, &n2);
    // Same size (genesis, init's map leaf, the event, the new map leaf), different roots.
    let ev = f.root.join("ev.json");
    let o = check_consistency(&f.key, s(&n1), s(&n2), &["--out", s(&ev)]);
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
    let o = check_consistency(&f.key, s(&n1), s(&n3), &["--dir", s(&f.a)]);
    assert_eq!(o.code, 0, "{}", o.all());
    let ev2 = f.root.join("ev2.json");
    let o = check_consistency(
        &f.key,
        s(&n2),
        s(&n3),
        &["--dir", s(&f.a), "--out", s(&ev2)],
    );
    // Branches of two sizes: A's own consistency proof from size 4 starts from A's root of 4
    // leaves (4 is a power of two: the root comes from A, as its inclusion proof at size 4),
    // and leads to A's signed root of 6. B signed another root for 4 leaves: conclusive.
    assert_eq!(o.code, 1, "{}", o.all());
    assert!(o.all().contains("THE LOG LIED"), "{}", o.all());
    let o = run(&["verify-evidence", s(&ev2)]);
    assert_eq!(o.code, 0, "{}", o.all());
    assert!(o.all().contains("(not_a_prefix)"), "{}", o.all());
    // The same from a server of branch A.
    let srv = Server::start_in(&f.a, &[]);
    let ev3 = f.root.join("ev3.json");
    let o = check_consistency(
        &f.key,
        s(&n3),
        s(&n2),
        &["--server", &srv.url, "--out", s(&ev3)],
    );
    assert_eq!(o.code, 1, "{}", o.all());
    assert_eq!(run(&["verify-evidence", s(&ev3)]).code, 0);
    drop(srv);
    // B grows twice (sizes 6, then 8); A's 6 is not a power of two, so B's proof from 6 to 8
    // shows by itself the root B has for its first 6 leaves, which is not A's.
    let (n5, n6) = (f.root.join("n5"), f.root.join("n6"));
    for (purpose, note) in [("ads", &n5), ("cawg.data_mining", &n6)] {
        f.grant_on_b(purpose);
        checkpoint(&f.b, note);
    }
    let ev4 = f.root.join("ev4.json");
    let o = check_consistency(
        &f.key,
        s(&n3),
        s(&n6),
        &["--dir", s(&f.b), "--out", s(&ev4)],
    );
    assert_eq!(o.code, 1, "{}", o.all());
    assert!(o.all().contains("THE LOG LIED"), "{}", o.all());
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ev4).unwrap()).unwrap();
    assert_eq!(e["claim"]["kind"], "not_a_prefix");
    assert!(
        run(&["verify-evidence", s(&ev4)])
            .stdout
            .contains("6 leaves"),
        "the lie names the smaller size"
    );
    // B's own earlier views extend to its later one.
    let o = check_consistency(&f.key, s(&n5), s(&n6), &["--dir", s(&f.b)]);
    assert_eq!(o.code, 0, "{}", o.all());

    // Without a way to get a proof, differing sizes are undecided, not passed.
    let o = check_consistency(&f.key, s(&n2), s(&n3), &[]);
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
    let o = check_consistency(&f.key, s(&n1), s(&n4), &[]);
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

    // B grows (size 6) and its history reaches the person, with B's server to prove that it
    // extends what was remembered (A's 4 leaves). 4 is a power of two: B's proof starts from
    // B's own root of 4 leaves, which the server gives, and that is not A's.
    f.grant_on_b("ads");
    checkpoint(&f.b, &f.root.join("n3"));
    let h3 = f.root.join("h3.json");
    let o = run(&["history", "--dir", s(&f.b), "--subject", &f.subject]);
    std::fs::write(&h3, &o.stdout).unwrap();
    std::fs::remove_file(&ev).unwrap();
    let srv = Server::start_in(&f.b, &[]);
    let o = run(&[
        "verify-history",
        "--log-key",
        &f.key,
        s(&h3),
        "--subject",
        &f.subject,
        "--state",
        s(&state),
        "--server",
        &srv.url,
    ]);
    assert_eq!(o.code, 2, "{}", o.all());
    assert!(o.all().contains("THE LOG LIED"), "{}", o.all());
    assert!(o.all().contains("not_a_prefix"), "{}", o.all());
    let o = run(&["verify-evidence", s(&ev)]);
    assert_eq!(o.code, 0, "{}", o.all());
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

/// A view older than the checkpoint remembered (a history under an older checkpoint: the
/// opt-in shown after the opt-out was seen; an export or a server showing a prefix of the log)
/// is refused by `verify-history`, `audit --file` and `audit --url`, naming both sizes, unless
/// `--accept-older-view` is given; the remembered checkpoint stays. A newer view replaces it,
/// once shown to extend it.
#[test]
fn older_views_than_the_remembered_checkpoint_are_refused_unless_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dir = root.join("l");
    run(&["init", "--dir", s(&dir), "--origin", "stale.example/log"]).ok();
    let key = std::fs::read_to_string(dir.join("log.pub"))
        .unwrap()
        .trim()
        .to_string();
    let person = root.join("me.key");
    let subject = run(&["keygen", "--out", s(&person)])
        .ok()
        .stdout
        .trim()
        .to_string();
    let decide = |cmd: &str| {
        run(&[
            cmd,
            "--dir",
            s(&dir),
            "--key",
            s(&person),
            "--controller",
            "example.com",
            "--purpose",
            "ai-training",
        ])
        .ok();
        run(&["checkpoint", "--dir", s(&dir)]).ok();
    };
    let snapshot = |name: &str| {
        let h = root.join(format!("{name}.history.json"));
        let out = run(&["history", "--dir", s(&dir), "--subject", &subject]).ok();
        std::fs::write(&h, &out.stdout).unwrap();
        let e = root.join(format!("{name}.export"));
        run(&["export", "--dir", s(&dir), "--out", s(&e)]).ok();
        (h, e)
    };
    // Old: genesis, init's map leaf, the opt-in, a map leaf (4 leaves). New: then the opt-out
    // and a map leaf (6).
    decide("grant");
    let (old_history, old_export) = snapshot("old");
    let old_dir = root.join("old");
    copy_dir(&dir, &old_dir);
    decide("revoke");
    let (new_history, new_export) = snapshot("new");
    let refused = |r: &crate::support::Run| {
        assert_eq!(r.code, 2, "{}", r.all());
        let err = &r.stderr;
        assert!(
            err.contains("STALE VIEW: this checkpoint (4 leaves) is older than the one remembered")
                && err.contains("(6 leaves)")
                && err.contains("--accept-older-view"),
            "{err}"
        );
    };
    let accepted = |r: &crate::support::Run| {
        assert_eq!(r.code, 0, "{}", r.all());
        assert!(r.stderr.contains("warning: STALE VIEW"), "{}", r.stderr);
        assert!(
            r.stderr.contains("accepted (--accept-older-view)"),
            "{}",
            r.stderr
        );
    };

    // verify-history, offline.
    let state = root.join("person.json");
    let vh = |h: &Path, extra: &[&str]| {
        let base = [
            "verify-history",
            "--log-key",
            &key,
            "--subject",
            &subject,
            "--state",
            s(&state),
            s(h),
        ];
        run(&[&base[..], extra].concat())
    };
    vh(&new_history, &[]).ok();
    let remembered = std::fs::read_to_string(&state).unwrap();
    let r = vh(&old_history, &[]);
    refused(&r);
    assert!(
        r.stderr.contains("not shown to be a prefix"),
        "{}",
        r.stderr
    );
    accepted(&vh(&old_history, &["--accept-older-view"]));
    assert_eq!(std::fs::read_to_string(&state).unwrap(), remembered);

    // verify-history with the log's server: the old view is shown to be a prefix, and is
    // still refused unless accepted.
    let srv = Server::start_in(&dir, &[]);
    let r = vh(&old_history, &["--server", &srv.url]);
    refused(&r);
    assert!(
        !r.stderr.contains("not shown to be a prefix"),
        "{}",
        r.stderr
    );
    accepted(&vh(
        &old_history,
        &["--server", &srv.url, "--accept-older-view"],
    ));
    assert_eq!(std::fs::read_to_string(&state).unwrap(), remembered);
    // Older first, then newer: without a server it is not checked (the sizes in their
    // order), with one it extends and is remembered.
    std::fs::remove_file(&state).unwrap();
    vh(&old_history, &[]).ok();
    let r = vh(&new_history, &[]).ok();
    assert!(
        r.stderr
            .contains("the last checkpoint seen had 4 leaves, this one 6"),
        "{}",
        r.stderr
    );
    vh(&new_history, &["--server", &srv.url]).ok();
    assert_eq!(std::fs::read_to_string(&state).unwrap(), remembered);

    // audit --file: an older export is a truncated prefix; a newer one is replayed together
    // with the remembered checkpoint.
    let astate = root.join("auditor.json");
    let af = |f: &Path, extra: &[&str]| {
        let base = [
            "audit",
            "--file",
            s(f),
            "--log-key",
            &key,
            "--state",
            s(&astate),
        ];
        run(&[&base[..], extra].concat())
    };
    af(&old_export, &[]).ok();
    let first = std::fs::read_to_string(&astate).unwrap();
    // The newer export holds the remembered checkpoint among its own: replayed, it shows the
    // export extends it, and the newer one is remembered.
    af(&new_export, &[]).ok();
    assert_ne!(std::fs::read_to_string(&astate).unwrap(), first);
    refused(&af(&old_export, &[]));
    accepted(&af(&old_export, &["--accept-older-view"]));
    af(&new_export, &[]).ok();

    // audit --url: a server showing the older ledger.
    let ustate = root.join("remote.json");
    let au = |url: &str, extra: &[&str]| {
        let base = [
            "audit",
            "--url",
            url,
            "--log-key",
            &key,
            "--state",
            s(&ustate),
        ];
        run(&[&base[..], extra].concat())
    };
    au(&srv.url, &[]).ok();
    drop(srv);
    let old = Server::start_in(&old_dir, &[]);
    refused(&au(&old.url, &[]));
    accepted(&au(&old.url, &["--accept-older-view"]));
}

/// `audit --file` replays the checkpoint it remembers with an export's own: an export of
/// another branch, which does not hold it, fails the audit at that checkpoint.
#[test]
fn an_auditor_of_exports_who_saw_one_branch_catches_the_other() {
    let f = fork();
    checkpoint(&f.a, &f.root.join("n1"));
    checkpoint(&f.b, &f.root.join("n2"));
    let state = f.root.join("auditor.json");
    let audit = |dir: &Path| {
        let e = dir.with_extension("export");
        run(&["export", "--dir", s(dir), "--out", s(&e)]).ok();
        run(&[
            "audit",
            "--file",
            s(&e),
            "--log-key",
            &f.key,
            "--state",
            s(&state),
        ])
    };
    let o = audit(&f.a);
    assert_eq!(o.code, 0, "{}", o.all());
    let remembered = std::fs::read_to_string(&state).unwrap();
    let o = audit(&f.b);
    assert_ne!(o.code, 0, "{}", o.all());
    assert!(
        o.stdout.contains("replaying the checkpoint remembered")
            && o.stdout
                .contains("VIOLATION checkpoint 2: root at size 4 does not match")
            && o.stderr.contains("audit FAILED"),
        "{}",
        o.all()
    );
    assert_eq!(std::fs::read_to_string(&state).unwrap(), remembered);
}
