//! Commands a person runs: make a key, sign events, fetch and check their history.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::{
    fail, parse_log_key, parse_subject, print_json, read_input, usage, CmdResult, Failure, Triple,
};
use crate::core::event::{ConsentEvent, EventJson, EVENT_VERSION, KIND_DECISION, SIGNER_SUBJECT};
use crate::core::hash::{from_hex_array, to_hex};
use crate::core::history::{self, History};
use crate::keyfile;
use crate::ledger::{clock, Ledger};

pub fn keygen(out: &Path) -> CmdResult {
    let key = keyfile::generate();
    let pub_path = keyfile::write_person(out, &key).map_err(fail)?;
    eprintln!(
        "wrote secret key to {} (mode 0600) and public key to {}; your public key, the \
         subject of your events (`consentlog pubkey --key {}` prints it again):",
        out.display(),
        pub_path.display(),
        out.display()
    );
    println!("{}", to_hex(key.verifying_key().as_bytes()));
    Ok(())
}

/// `pubkey`: prints the public key of a person's secret key file.
pub fn pubkey(key: &Path) -> CmdResult {
    let key = keyfile::read_person(key, "pubkey").map_err(fail)?;
    println!("{}", to_hex(key.verifying_key().as_bytes()));
    Ok(())
}

/// Arguments of `sign`.
#[derive(Args, Debug)]
pub struct SignArgs {
    /// The person's secret key file (`consentlog keygen --out FILE`)
    #[arg(long)]
    pub key: PathBuf,
    /// The ledger's origin (or give --dir to use a local ledger's)
    #[arg(long, required_unless_present = "dir")]
    pub log: Option<String>,
    /// A local ledger directory, to take the origin from
    #[arg(long, env = "CONSENTLOG_DIR")]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub triple: Triple,
    /// Sign an opt-in (consent given)
    #[arg(long, conflicts_with = "opt_out", required_unless_present = "opt_out")]
    pub opt_in: bool,
    /// Sign an opt-out (consent withdrawn)
    #[arg(long)]
    pub opt_out: bool,
    /// Number of this event in the (key, controller, purpose) chain: 0 for the first, then +1
    #[arg(long)]
    pub seq: u64,
    /// Event hash of the previous event of the chain (required when --seq > 0; `consentlog
    /// verify-history` shows each event's hash)
    #[arg(long)]
    pub prev: Option<String>,
    /// The signer's time (ms since the epoch; default now)
    #[arg(long, value_parser = super::time::parse)]
    pub issued_at: Option<u64>,
    /// Opt-in only: consent lapses at this time (ms since the epoch)
    #[arg(long, value_parser = super::time::parse)]
    pub expires_at: Option<u64>,
    /// BLAKE3 of the notice text shown to the person (hex)
    #[arg(long)]
    pub notice: Option<String>,
}

pub fn sign(a: SignArgs) -> CmdResult {
    match (a.seq, &a.prev) {
        (0, Some(_)) => {
            return Err(usage(
                "--prev is only for --seq > 0: the first event of a chain (seq 0) has none",
            ))
        }
        (n, None) if n > 0 => {
            return Err(usage(format!(
                "--seq {n} needs --prev HASH, the event hash of this chain's event {}; \
                 `consentlog verify-history` shows each event's hash",
                n - 1
            )))
        }
        _ => {}
    }
    let key = keyfile::read_person(&a.key, "sign").map_err(fail)?;
    let log = match (a.log, a.dir) {
        (Some(l), _) => l,
        (None, Some(d)) => Ledger::open_read_only(&d)
            .map_err(fail)?
            .origin()
            .to_string(),
        (None, None) => return Err(usage("give --log ORIGIN or --dir D")),
    };
    let hex32 = |what: &str, s: &str| -> Result<[u8; 32], Failure> {
        from_hex_array(s).map_err(|e| fail(format!("--{what}: {e}")))
    };
    let ev = ConsentEvent {
        version: EVENT_VERSION,
        kind: KIND_DECISION,
        signer: SIGNER_SUBJECT,
        log,
        subject: key.verifying_key().to_bytes(),
        controller: a.triple.controller,
        purpose: a.triple.purpose,
        decision: a.opt_in as u8,
        seq: a.seq,
        prev: a.prev.as_deref().map(|p| hex32("prev", p)).transpose()?,
        issued_at: a.issued_at.unwrap_or_else(clock::now_ms),
        expires_at: a.expires_at,
        notice: a
            .notice
            .as_deref()
            .map(|n| hex32("notice", n))
            .transpose()?,
    };
    print_json(&EventJson::from(&ev.sign(&key)));
    Ok(())
}

pub fn history(dir: &Path, subject: &str) -> CmdResult {
    let subject = parse_subject(subject)?;
    let l = Ledger::open_read_only(dir).map_err(fail)?;
    // A local read never appends: the history is complete up to the newest map leaf.
    let snap = l.latest();
    let h = l.history_in(&snap, &subject).map_err(fail)?;
    eprintln!(
        "history as of the map leaf at {} (run `consentlog checkpoint` to append a newer one)",
        super::time::both(snap.map_leaf.time)
    );
    eprint!("{}", summary(&h));
    println!("{}", serde_json::to_string_pretty(&h).expect("json"));
    Ok(())
}

/// Each chain of a history and its events, for people: seq, decision, leaf index and event
/// hash (what `sign --prev` names), as the log shows them (`verify-history` checks them).
pub fn summary(h: &crate::core::history::History) -> String {
    use crate::core::event::SignedEvent;
    use crate::core::hash::to_hex;
    let mut out = String::new();
    if h.chains.is_empty() {
        out.push_str(&format!(
            "no record for subject {}: this log holds no event of this key (check the subject: \
             a person's public key, 64 hex digits or their .pub file)\n",
            to_hex(&h.subject)
        ));
    }
    for c in &h.chains {
        out.push_str(&format!("  {} / {}:\n", c.controller, c.purpose));
        for pe in &c.events {
            match SignedEvent::decode(&pe.opening.event) {
                Ok(ev) => out.push_str(&format!(
                    "    seq {} {} at leaf {}, event {}\n",
                    ev.event.seq,
                    ev.event.decision().map(|d| d.as_str()).unwrap_or("?"),
                    pe.index,
                    to_hex(&ev.event_hash())
                )),
                Err(e) => out.push_str(&format!("    leaf {}: not an event ({e})\n", pe.index)),
            }
        }
    }
    out
}

pub fn verify_history(
    log_key: &str,
    file: &str,
    subject: &str,
    expect: &[String],
    json: bool,
    policy: Option<&std::path::Path>,
) -> Result<String, Failure> {
    let policy = super::witnessed::load(policy)?;
    let expected: Vec<(String, String)> = expect
        .iter()
        .map(|e| {
            e.split_once(',')
                .map(|(c, p)| (c.to_string(), p.to_string()))
                .ok_or_else(|| Failure::new(2, format!("--expect {e:?}: use CONTROLLER,PURPOSE")))
        })
        .collect::<Result<_, _>>()?;
    let key = parse_log_key(log_key).map_err(|f| Failure::new(2, f.message))?;
    let subject = parse_subject(subject).map_err(|f| Failure::new(2, f.message))?;
    let text = read_input(file).map_err(|f| Failure::new(2, f.message))?;
    let h: History = crate::core::hash::json_object(&text)
        .map_err(|e| Failure::new(2, format!("{file}: not a history: {e}")))?;
    let checked = history::check(&h, &key, Some(&subject))
        .and_then(|c| history::check_expected(&c, &expected).map(|()| c))
        .map_err(|e| e.to_string())
        .and_then(|c| {
            let a = &c.anchor;
            let w = super::witnessed::check(
                policy.as_ref(),
                &a.genesis,
                &key,
                &a.checkpoint,
                a.map.time,
                h.witnessed.as_ref(),
            )?;
            Ok((c, w))
        });
    match checked {
        Ok((c, w)) => {
            let a = &c.anchor;
            if json {
                let chains: Vec<_> = c
                    .chains
                    .iter()
                    .map(|ch| {
                        let last = &ch.events[ch.events.len() - 1].event.event;
                        json!({"controller": ch.controller, "purpose": ch.purpose,
                               "events": ch.events.len(), "proven_complete": ch.proven,
                               "latest": if last.decision == 1 {"opt-in"} else {"opt-out"}})
                    })
                    .collect();
                print_json(&json!({"valid": true, "subject": to_hex(&h.subject),
                    "log": a.genesis.origin, "tree_size": a.checkpoint.size,
                    "checkpoint_root": to_hex(&a.checkpoint.root),
                    "map_leaf": a.map_index, "map_time": a.map.time, "chains": chains,
                    "witnessed": w.witnessed, "map_replayed": w.map_replayed}));
            } else {
                println!(
                    "{}history valid: {} chain(s) for subject {} in log {}, checkpoint of {} \
                     leaves with root {}, complete up to the map leaf at {}",
                    w.prefix(),
                    c.chains.len(),
                    to_hex(&h.subject),
                    a.genesis.origin,
                    a.checkpoint.size,
                    to_hex(&a.checkpoint.root),
                    super::time::both(a.map.time)
                );
                for ch in &c.chains {
                    println!(
                        "  {} / {}: {} event(s), complete from seq 0{}",
                        ch.controller,
                        ch.purpose,
                        ch.events.len(),
                        match ch.events.len() - ch.proven {
                            0 => String::new(),
                            n => format!(
                                "; the last {n} not yet proven complete (after the map leaf)"
                            ),
                        }
                    );
                    for e in &ch.events {
                        let ev = &e.event.event;
                        println!(
                            "    seq {} {} integrated at {} (leaf {}, event hash {})",
                            ev.seq,
                            if ev.decision == 1 {
                                "opt-in "
                            } else {
                                "opt-out"
                            },
                            super::time::both(e.leaf.integrated_at),
                            e.index,
                            to_hex(&e.event.event_hash())
                        );
                    }
                }
            }
            // Under a policy the checkpoint remembered (and compared with the last one seen)
            // is the cosigned one: the one trust rests on.
            Ok(match (&h.witnessed, w.witnessed) {
                (Some(cosigned), true) => cosigned.note.clone(),
                _ => h.checkpoint.clone(),
            })
        }
        Err(e) => {
            if json {
                print_json(&json!({"valid": false, "reason": e}));
            }
            Err(Failure::new(2, format!("history INVALID: {e}")))
        }
    }
}
