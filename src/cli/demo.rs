//! `demo`: a walkthrough of the three users' jobs in a temporary directory.

use std::thread::sleep;
use std::time::Duration;

use super::{fail, CmdResult};
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

pub fn demo() -> CmdResult {
    let tmp = std::env::temp_dir().join(format!("consentlog-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let dir = tmp.join("ledger");
    println!("== consentlog demo (working in {})\n", tmp.display());

    println!("1. The operator creates a ledger (embedded redb database, fresh log key).");
    let l = Ledger::init_with(
        &dir,
        "demo.example/consent",
        Engine::default(),
        Options::default(),
    )
    .map_err(fail)?;
    let log_key = l.public_key();
    println!(
        "   origin {:?}, log public key {}",
        l.origin(),
        to_hex(log_key.as_bytes())
    );

    println!("\n2. Two people make keys and decide about {CONTROLLER} / {PURPOSE}.");
    let alice = keyfile::generate();
    let bob = keyfile::generate();
    let r = decide(&l, &alice, true)?;
    println!(
        "   alice opts in  -> receipt: index {}, integrated at {}",
        r.index, r.leaf.integrated_at
    );
    let r = decide(&l, &bob, true)?;
    println!(
        "   bob opts in    -> receipt: index {}, integrated at {}",
        r.index, r.leaf.integrated_at
    );
    sleep(Duration::from_millis(20));
    let t = clock::now_ms();
    println!("   (a training job collects data at T = {t})");
    sleep(Duration::from_millis(20));
    let r = decide(&l, &bob, false)?;
    println!(
        "   bob opts out   -> receipt: index {}, integrated at {}",
        r.index, r.leaf.integrated_at
    );
    let cp = l.checkpoint_all().map_err(fail)?;
    let snap = l.latest();
    println!(
        "   the log appends a map leaf at {} and signs a checkpoint of {} leaves:\n",
        snap.map_leaf.time, cp.size
    );
    for line in cp.note.lines() {
        println!("     {line}");
    }

    println!("\n3. The training job asks for proofs and anyone verifies them offline.");
    for (name, who) in [("alice", &alice), ("bob", &bob)] {
        let subject = who.verifying_key().to_bytes();
        for (label, at) in [("at T ", t), ("now  ", snap.map_leaf.time)] {
            let p = l
                .prove_consent_in(&snap, &subject, CONTROLLER, PURPOSE, at)
                .map_err(fail)?;
            let v = proof::check(&p, &log_key, &Question::default()).map_err(fail)?;
            println!(
                "   {name:5} {label}: proof valid, state {:9} -> consent {}",
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
    let h = l
        .history_in(&snap, &bob.verifying_key().to_bytes())
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
    let _ = std::fs::remove_dir_all(&tmp);
    println!("\nDone. Try it yourself: see README.md.");
    if report.ok() {
        Ok(())
    } else {
        Err(fail("audit failed"))
    }
}
