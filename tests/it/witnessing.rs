//! The log asks witnesses for cosignatures (`serve --witness-policy`), proofs carry the
//! cosigned checkpoint, and verifiers with `--policy` require it: real `consentlog serve`
//! processes, real witnesses over HTTP (`consentlog::tlog_witness`, served in the test
//! process), real signatures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use consentlog::core::vkey::Vkey;
use consentlog::ledger::clock::SystemClock;
use consentlog::tlog_witness::Limits;

use crate::support::http::bearer;
use crate::support::people::Person;
use crate::support::process::{run, Server};
use crate::support::wait_until;
use crate::support::witness::TestWitness;
use crate::support::witnessed_server::{
    copy_dir, cosigners, init_ledger, verify_as_user, witness_metric,
};

const READER: &str = "witnessing-reader-token-01";
const ORIGIN: &str = "witnessed.test/log";

/// A witness named `name` with a fresh key and its own directory under `tmp`.
fn witness(tmp: &Path, name: &str, log: &Vkey) -> TestWitness {
    TestWitness::start_with(
        &tmp.join(name.replace('/', "_")),
        consentlog::keyfile::generate(),
        name,
        std::slice::from_ref(log),
        Arc::new(SystemClock),
        Limits::default(),
    )
}

/// A policy file: the log, witnesses a and b, both required.
fn policy(tmp: &Path, log: &Vkey, a: &TestWitness, b: &TestWitness) -> PathBuf {
    let text = format!(
        "log {}\nwitness a {} {}\nwitness b {} {}\ngroup both all a b\nquorum both\n",
        log.to_text(),
        a.vkey,
        a.url,
        b.vkey,
        b.url
    );
    let f = tmp.join("policy.txt");
    std::fs::write(&f, text).unwrap();
    f
}

fn serve(dir: &Path, policy: &Path) -> Server {
    Server::start_in(
        dir,
        &[
            "--witness-policy",
            policy.to_str().unwrap(),
            "--witness-interval",
            "100",
            "--checkpoint-interval",
            "50",
            "--reader-token",
            READER,
        ],
    )
}

#[test]
fn witnesses_cosign_proofs_carry_it_and_a_down_witness_blocks_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let log = init_ledger(&dir, ORIGIN);
    let a = witness(tmp.path(), "witness.test/a", &log);
    let b = witness(tmp.path(), "witness.test/b", &log);
    let policy = policy(tmp.path(), &log, &a, &b);
    let srv = serve(&dir, &policy);
    let mut p = Person::new();
    let first = srv.append(&p.step(&srv.origin, true));

    // Both witnesses cosign a checkpoint that covers the opt-in.
    wait_until(
        Duration::from_secs(30),
        || format!("cosigned: {:?}", cosigners(&srv, ORIGIN)),
        || cosigners(&srv, ORIGIN).filter(|(size, names)| *size > first.index && names.len() == 2),
    );
    assert!(witness_metric(&srv, "consentlog_witness_cosigned_size", "a") > first.index as f64);

    // A proof carries the cosigned checkpoint; under the policy it is witnessed.
    let proof = wait_until(
        Duration::from_secs(30),
        || "a proof carrying a cosigned checkpoint",
        || {
            let v = srv
                .get_auth(&p.consent_path(None), &bearer(READER))
                .expect(200)
                .json();
            v.get("witnessed").is_some().then_some(v)
        },
    );
    let file = tmp.path().join("proof.json");
    std::fs::write(&file, proof.to_string()).unwrap();
    let policy_arg = policy.to_str().unwrap();
    let ok = verify_as_user(&srv, &p, &file, &["--policy", policy_arg]).ok();
    assert!(
        ok.stdout.contains("witnessed by a, b") || ok.stdout.contains("witnessed by b, a"),
        "{ok:#?}"
    );
    let json = verify_as_user(&srv, &p, &file, &["--policy", policy_arg, "--json"])
        .ok()
        .json();
    assert_eq!(json["witnessed"], true);
    assert_eq!(json["map_replayed"], false);
    // No policy: the verdict says whom it trusts.
    let plain = verify_as_user(&srv, &p, &file, &[]).ok();
    assert!(
        plain
            .stdout
            .contains("UNWITNESSED: the operator is trusted"),
        "{plain:#?}"
    );
    // The proof without its cosigned checkpoint: invalid under the policy (exit 2).
    let mut bare = proof.clone();
    bare.as_object_mut().unwrap().remove("witnessed");
    let bare_file = tmp.path().join("bare.json");
    std::fs::write(&bare_file, bare.to_string()).unwrap();
    verify_as_user(&srv, &p, &bare_file, &["--policy", policy_arg])
        .assert_fails_with("no cosigned checkpoint");
    // The person's history carries it too; under the policy, the checkpoint remembered for
    // the next stale-view check is the cosigned one.
    let path = format!("/v1/subjects/{}/history", p.hex());
    let h = srv
        .get_auth(&path, &p.sign_request(&srv.request_to(), "GET", &path))
        .expect(200)
        .body
        .clone();
    let hf = tmp.path().join("history.json");
    std::fs::write(&hf, &h).unwrap();
    let state = tmp.path().join("seen.json");
    let vh = run(&[
        "verify-history",
        "--log-key",
        &srv.log_key_hex,
        hf.to_str().unwrap(),
        "--subject",
        &p.hex(),
        "--policy",
        policy_arg,
        "--state",
        state.to_str().unwrap(),
    ])
    .ok();
    assert!(vh.stdout.starts_with("witnessed by "), "{vh:#?}");
    let remembered = std::fs::read_to_string(&state).unwrap();
    assert!(remembered.contains("witness.test/a"), "{remembered}");
    // A policy that requires a witness that never cosigned: refused.
    let other = witness(tmp.path(), "witness.test/c", &log);
    let strict = tmp.path().join("strict.txt");
    std::fs::write(
        &strict,
        format!(
            "log {}\nwitness a {}\nwitness c {}\ngroup both all a c\nquorum both\n",
            log.to_text(),
            a.vkey,
            other.vkey
        ),
    )
    .unwrap();
    verify_as_user(&srv, &p, &file, &["--policy", strict.to_str().unwrap()])
        .assert_fails_with("quorum not met");

    // The auditor replays the log and finds the cosigned checkpoint among those it recomputed.
    let audit = |policy: &str| {
        run(&[
            "audit",
            "--url",
            &srv.url,
            "--log-key",
            &srv.log_key_hex,
            "--policy",
            policy,
            "--state",
            tmp.path().join("audit-seen.json").to_str().unwrap(),
        ])
    };
    let r = audit(policy_arg).ok();
    assert!(r.stdout.contains("witnessed: the checkpoint of"), "{r:#?}");
    audit(strict.to_str().unwrap()).assert_fails_with("quorum not met");

    // Witness b goes down: appends go on, a keeps cosigning, b's failures are counted.
    drop(b);
    let mut last = first;
    for _ in 0..5 {
        srv.append(&p.step(&srv.origin, false));
        last = srv.append(&p.step(&srv.origin, true));
    }
    wait_until(
        Duration::from_secs(30),
        || "b's failures counted and a cosigning beyond b",
        || {
            let failures = witness_metric(&srv, "consentlog_witness_failures_total", "b");
            let a_size = witness_metric(&srv, "consentlog_witness_cosigned_size", "a");
            (failures >= 1.0 && a_size > last.index as f64).then_some(())
        },
    );
    let (_, names) = cosigners(&srv, ORIGIN).unwrap();
    assert_eq!(names, vec!["witness.test/a".to_string()]);
    // The proof witnessed earlier still verifies under the policy.
    verify_as_user(&srv, &p, &file, &["--policy", policy_arg]).ok();
}

#[test]
fn a_forked_log_gets_no_cosignature_for_its_second_branch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let log = init_ledger(&dir, ORIGIN);
    // The same key and genesis, copied before either history grows.
    let fork = tmp.path().join("fork");
    copy_dir(&dir, &fork);
    let a = witness(tmp.path(), "witness.test/a", &log);
    let b = witness(tmp.path(), "witness.test/b", &log);
    let policy = policy(tmp.path(), &log, &a, &b);
    let srv = serve(&dir, &policy);
    let mut p = Person::new();
    let r = srv.append(&p.step(ORIGIN, true));
    wait_until(
        Duration::from_secs(30),
        || format!("cosigned: {:?}", cosigners(&srv, ORIGIN)),
        || cosigners(&srv, ORIGIN).filter(|(size, n)| *size > r.index && n.len() == 2),
    );
    // The other branch: other events under the same key.
    let forked = serve(&fork, &policy);
    for _ in 0..3 {
        forked.append(&Person::new().step(ORIGIN, true));
    }
    wait_until(
        Duration::from_secs(30),
        || "the fork's submissions refused by both witnesses",
        || {
            let fa = witness_metric(&forked, "consentlog_witness_failures_total", "a");
            let fb = witness_metric(&forked, "consentlog_witness_failures_total", "b");
            (fa >= 2.0 && fb >= 2.0).then_some(())
        },
    );
    assert_eq!(cosigners(&forked, ORIGIN), None, "a fork was cosigned");
    assert_eq!(
        forked.get("/v1/checkpoint/cosigned").status,
        404,
        "the fork has no cosigned checkpoint"
    );
}
