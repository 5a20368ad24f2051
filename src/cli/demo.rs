//! `demo`: a walkthrough of the three users' jobs in a temporary directory.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use super::{fail, time, CmdResult};
use crate::core::audit::Auditor;
use crate::core::event::{ConsentEvent, SignedEvent};
use crate::core::hash::to_hex;
use crate::core::history;
use crate::core::proof::{self, Question};
use crate::keyfile;
use crate::ledger::{clock, Ledger, Options, Outcome};
use crate::store::Engine;

const CONTROLLER: &str = "example.com";
const PURPOSE: &str = "cawg.ai_training";

fn decide(
    l: &Ledger,
    key: &ed25519_dalek::SigningKey,
    opt_in: bool,
) -> Result<crate::core::receipt::Receipt, super::Failure> {
    let subject = key.verifying_key().to_bytes();
    let head = l.head_of(&subject, CONTROLLER, PURPOSE).map_err(fail)?;
    let ev: SignedEvent = ConsentEvent::next(
        l.origin(),
        subject,
        (CONTROLLER, PURPOSE),
        opt_in,
        head.map(|h| (h.seq, h.event_hash)),
        clock::now_ms(),
        None,
    )
    .sign(key);
    match l.append(vec![Ok(ev)]).map_err(fail)?.remove(0) {
        Outcome::Accepted(r) | Outcome::Duplicate(r) => Ok(r),
        Outcome::Rejected(r) => Err(fail(r)),
    }
}

/// A path or word as a shell would need it: single-quoted unless plainly safe.
fn sh(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-,:=+@".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn p(path: &Path) -> String {
    sh(&path.display().to_string())
}

/// Prints the command line a newcomer would type for a step.
fn cmd(line: impl std::fmt::Display) {
    println!("   $ consentlog {line}");
}

/// Where the demo works: a kept directory (refused unless new or empty), or a temporary one
/// removed at the end.
fn workdir(keep: Option<&Path>) -> Result<PathBuf, super::Failure> {
    let Some(dir) = keep else {
        let tmp = std::env::temp_dir().join(format!("consentlog-demo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| fail(format!("{}: {e}", tmp.display())))?;
        return Ok(tmp);
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(super::usage(format!(
                    "--keep {}: not empty; give a new or empty directory",
                    dir.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(dir)
            .map_err(|e| fail(format!("--keep {}: {e}", dir.display())))?,
        Err(e) => return Err(fail(format!("--keep {}: {e}", dir.display()))),
    }
    Ok(dir.to_path_buf())
}

pub fn demo(keep: Option<&Path>) -> CmdResult {
    let work = workdir(keep)?;
    let result = run(&work, keep.is_some());
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn run(work: &Path, kept: bool) -> CmdResult {
    let dir = work.join("ledger");
    let log_pub = dir.join("log.pub");
    println!(
        "== consentlog demo, working in {}{}",
        work.display(),
        if kept {
            " (kept)"
        } else {
            " (removed at the end; `demo --keep DIR` keeps it)"
        }
    );
    println!("   Each step shows the command that does the same by hand.\n");

    println!("1. The operator creates a ledger (embedded database, fresh log key).");
    let origin = "demo.example/consent";
    cmd(format!("init --dir {} --origin {origin}", p(&dir)));
    let l = Ledger::init_with(&dir, origin, Engine::default(), Options::default()).map_err(fail)?;
    let log_key = l.public_key();
    println!(
        "   origin {:?}, log public key {} (also in {})",
        l.origin(),
        to_hex(log_key.as_bytes()),
        log_pub.display()
    );

    println!("\n2. Two people make keys and decide about {CONTROLLER} / {PURPOSE}.");
    let mut people = Vec::new();
    for name in ["alice", "bob"] {
        let key = keyfile::generate();
        let path = work.join(format!("{name}.key"));
        keyfile::write_person(&path, &key).map_err(fail)?;
        cmd(format!("keygen --out {}", p(&path)));
        people.push((name, key, path));
    }
    let decide_cmd = |verb: &str, key: &Path| {
        cmd(format!(
            "{verb} --dir {} --key {} --controller {CONTROLLER} --purpose {PURPOSE}",
            p(&dir),
            p(key)
        ))
    };
    for (name, key, path) in &people {
        decide_cmd("grant", path);
        let r = decide(&l, key, true)?;
        println!(
            "   {name:5} opts in  -> receipt: index {}, integrated at {}",
            r.index,
            time::both(r.leaf.integrated_at)
        );
    }
    sleep(Duration::from_millis(20));
    let t = clock::now_ms();
    println!("   (a training job collects data at T = {})", time::both(t));
    sleep(Duration::from_millis(20));
    let (_, bob, bob_path) = &people[1];
    decide_cmd("revoke", bob_path);
    let r = decide(&l, bob, false)?;
    println!(
        "   bob opts out   -> receipt: index {}, integrated at {}",
        r.index,
        time::both(r.leaf.integrated_at)
    );
    cmd(format!("checkpoint --dir {}", p(&dir)));
    let cp = l.checkpoint_all().map_err(fail)?;
    let snap = l.latest();
    println!(
        "   the log appends a map leaf at {} and signs a checkpoint of {} leaves:\n",
        time::both(snap.map_leaf.time),
        cp.size
    );
    for line in cp.note.lines() {
        println!("{}", format!("     {line}").trim_end());
    }
    let cp_path = work.join("checkpoint.note");
    std::fs::write(&cp_path, &cp.note).map_err(fail)?;

    println!("\n3. The training job asks for proofs and anyone verifies them offline.");
    for (name, who, key_path) in &people {
        let subject = who.verifying_key().to_bytes();
        let pub_path = keyfile::public_path(key_path);
        for (label, at) in [("T", t), ("now", snap.map_leaf.time)] {
            let out = work.join(format!("{name}-{label}.proof.json"));
            let triple = format!("--controller {CONTROLLER} --purpose {PURPOSE} --at {at}");
            cmd(format!(
                "prove --dir {} --subject {} {triple} --out {}",
                p(&dir),
                p(&pub_path),
                p(&out)
            ));
            let pr = l
                .prove_consent_in(&snap, &subject, CONTROLLER, PURPOSE, at)
                .map_err(fail)?;
            std::fs::write(
                &out,
                serde_json::to_string_pretty(&pr).expect("json") + "\n",
            )
            .map_err(fail)?;
            cmd(format!(
                "verify --log-key {} {} --subject {} {triple}",
                p(&log_pub),
                p(&out),
                p(&pub_path)
            ));
            let q = Question {
                subject: Some(subject),
                controller: Some(CONTROLLER.into()),
                purpose: Some(PURPOSE.into()),
                at: Some(at),
                now: Some(clock::now_ms()),
            };
            let v = proof::check(&pr, &log_key, &q).map_err(fail)?;
            println!(
                "   {name:5} at {label:3}: proof valid, state {:9} -> consent {}",
                v.state.as_str(),
                if v.state.held(false) {
                    "HELD"
                } else {
                    "NOT held"
                }
            );
        }
    }

    println!("\n4. Bob fetches his own history and checks nothing was hidden or forged.");
    let bob_pub = keyfile::public_path(bob_path);
    let hist_path = work.join("bob-history.json");
    cmd(format!(
        "history --dir {} --subject {} > {}",
        p(&dir),
        p(&bob_pub),
        p(&hist_path)
    ));
    cmd(format!(
        "verify-history --log-key {} {} --subject {} --expect {CONTROLLER},{PURPOSE}",
        p(&log_pub),
        p(&hist_path),
        p(&bob_pub)
    ));
    let h = l
        .history_in(&snap, &bob.verifying_key().to_bytes())
        .map_err(fail)?;
    std::fs::write(
        &hist_path,
        serde_json::to_string_pretty(&h).expect("json") + "\n",
    )
    .map_err(fail)?;
    let c = history::check(&h, &log_key, None).map_err(fail)?;
    for ch in &c.chains {
        println!(
            "   {} / {}: {} events, complete from seq 0, all signed by bob and included",
            ch.controller,
            ch.purpose,
            ch.events.len()
        );
    }

    println!(
        "\n5. An auditor replays the whole ledger and recomputes every checkpoint and map leaf."
    );
    cmd(format!("audit --dir {}", p(&dir)));
    let notes = l.checkpoints().map_err(fail)?;
    let mut a = Auditor::new(&log_key, l.origin(), &notes, clock::now_ms());
    a.push_chunk(l.read_range(0, l.size(), true).map_err(fail)?);
    let report = a.finish();
    println!(
        "   {} leaves, {} checkpoints, {} openings checked: {}",
        report.leaves,
        report.checkpoints,
        report.openings_checked,
        if report.ok() {
            "audit OK"
        } else {
            "audit FAILED"
        }
    );
    for v in &report.violations {
        println!("   VIOLATION {v}");
    }
    drop(l);

    println!("\nDone. Three commands to try next:");
    if kept {
        let me = work.join("me.key");
        cmd(format!("keygen --out {}", p(&me)));
        cmd(format!(
            "grant --dir {} --key {} --controller {CONTROLLER} --purpose {PURPOSE}",
            p(&dir),
            p(&me)
        ));
        cmd(format!(
            "serve --dir {} --reader-token demo-reader-token-1",
            p(&dir)
        ));
        println!(
            "   (the ledger, keys, proofs, history and checkpoint are in {}; with the server \
             running, README.md's \"Over HTTP\" goes on with --log-key {})",
            work.display(),
            p(&log_pub)
        );
    } else {
        cmd("demo --keep consentlog-demo      # the same, keeping its ledger and key files");
        cmd("init --dir ledger                # a ledger of your own");
        cmd("keygen --out me.key              # a key of your own");
        println!("   (README.md has the rest)");
    }
    if report.ok() {
        Ok(())
    } else {
        Err(fail("audit failed"))
    }
}
