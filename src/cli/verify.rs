//! `prove` (a training job asks the ledger) and `verify` (anyone checks, offline).

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::{
    fail, parse_log_key, parse_subject, read_input, witnessed, CmdResult, Failure, Triple,
};
use crate::core::hash::to_hex;
use crate::core::proof::{self, ConsentProof, Question};
use crate::ledger::Ledger;

/// Arguments of `prove`.
#[derive(Args, Debug)]
pub struct ProveArgs {
    /// A local ledger directory [default: $CONSENTLOG_DIR, else $CONSENTLOG_SERVER]
    #[arg(long, conflicts_with = "server")]
    pub dir: Option<PathBuf>,
    /// A consentlog server's base URL
    #[arg(long)]
    pub server: Option<String>,
    /// Reader token for --server (a command line is visible to others in `ps`: prefer
    /// --token-file or $CONSENTLOG_TOKEN)
    #[arg(long, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// File whose first line is the reader token for --server (mode 0600)
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The person's public key (hex, or their .pub file)
    #[arg(long, required_unless_present = "batch")]
    pub subject: Option<String>,
    /// Who processes the data, e.g. example.com
    #[arg(long, required_unless_present = "batch")]
    pub controller: Option<String>,
    /// What for, e.g. ai-training
    #[arg(long, required_unless_present = "batch")]
    pub purpose: Option<String>,
    /// The time to prove (ms since the epoch); default: with --dir the newest map leaf's
    /// time, with --server now
    #[arg(long, value_parser = super::time::parse)]
    pub at: Option<u64>,
    /// NDJSON queries {"subject","controller","purpose"[,"at"]}: one proof batch against one
    /// shared checkpoint (docs/FORMAT.md, "Proof batches")
    #[arg(long, conflicts_with_all = ["subject", "controller", "purpose", "at", "server"])]
    pub batch: Option<PathBuf>,
    /// Write the proof here instead of standard output
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Storage cache for --batch (bytes): a batch reads all over the ledger, and on redb a
    /// larger cache is faster (1M entries: 64 MiB 48k proofs/s, 256 MiB 56k/s)
    #[arg(long, default_value_t = 256 * 1024 * 1024, requires = "batch")]
    pub cache_bytes: u64,
}

/// `prove` for one question (`--batch` is [`super::batch::prove`]).
pub fn prove(a: ProveArgs) -> CmdResult {
    let subject = parse_subject(a.subject.as_deref().expect("clap: --subject"))?;
    let triple = Triple {
        controller: a.controller.clone().expect("clap: --controller"),
        purpose: a.purpose.clone().expect("clap: --purpose"),
    };
    let p = match &a.server {
        Some(url) => super::remote::prove(url, a.token.clone(), &subject, &triple, a.at)?,
        None => {
            // A local read never appends: it answers as of the newest map leaf.
            let l = Ledger::open_read_only(a.dir.as_deref().expect("clap: --dir or --server"))
                .map_err(fail)?;
            let now = crate::ledger::clock::now_ms();
            if let Some(at) = a.at.filter(|at| *at > now) {
                return Err(fail(format!(
                    "--at {} is in the future (now {})",
                    super::time::both(at),
                    super::time::both(now)
                )));
            }
            let snap = l.latest();
            let at = a.at.unwrap_or(snap.map_leaf.time);
            eprintln!(
                "answering as of the map leaf at {}",
                super::time::both(snap.map_leaf.time)
            );
            l.prove_consent_in(&snap, &subject, &triple.controller, &triple.purpose, at)
                .map_err(fail)?
        }
    };
    if p.state == proof::State::NoRecord.as_str() {
        eprintln!("{}", no_record(&p));
    }
    let text = serde_json::to_string_pretty(&p).expect("json") + "\n";
    match a.out {
        Some(path) => {
            std::fs::write(&path, text).map_err(|e| fail(format!("{}: {e}", path.display())))?;
            eprintln!(
                "proof of state {} at {} written to {}",
                p.state,
                super::time::both(p.at),
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Arguments of `verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The log's public key: 64 hex digits or a file holding them
    #[arg(long)]
    pub log_key: String,
    /// The proof file, or - for standard input
    #[arg(required_unless_present = "batch")]
    pub proof: Option<String>,
    /// A proof batch (`prove --batch`): one JSON line per proof as --json prints it, with the
    /// query's "id" and the proof's "line"; exit 0 if every proof is valid and consent held
    /// in each, 1 if all are valid and consent is not held in some, 2 if any is invalid
    #[arg(long, conflicts_with = "proof")]
    pub batch: Option<String>,
    /// Refuse a proof about another subject (hex, or their .pub file)
    #[arg(long)]
    pub subject: Option<String>,
    /// Refuse a proof about another controller
    #[arg(long)]
    pub controller: Option<String>,
    /// Refuse a proof about another purpose
    #[arg(long)]
    pub purpose: Option<String>,
    /// Refuse a proof about another time (RFC 3339, a date, or ms since the epoch)
    #[arg(long, value_parser = super::time::parse)]
    pub at: Option<u64>,
    /// Accept a proof without asking the full question (--subject, --controller, --purpose,
    /// --at): the parts not given are not checked, and the verdict line says which question
    /// the proof answered
    #[arg(long)]
    pub any_question: bool,
    /// Opt-out regime: consent holds unless the person opted out
    #[arg(long)]
    pub default_allow: bool,
    /// Print {"valid","held","state","reason","subject","controller","purpose","at","log",
    /// "checkpoint_size","checkpoint_root","witnessed","map_replayed"}
    #[arg(long)]
    pub json: bool,
    /// A c2sp.org/tlog-policy file: the proof counts only if the checkpoint witnesses
    /// cosigned meets it (docs/WITNESSING.md); without one (and without a policy declared by
    /// the log) the verdict says the operator is trusted
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

/// The question given by `verify`'s flags.
pub fn question(a: &VerifyArgs) -> Result<Question, Failure> {
    Ok(Question {
        subject: a.subject.as_deref().map(parse_subject).transpose()?,
        controller: a.controller.clone(),
        purpose: a.purpose.clone(),
        at: a.at,
        now: Some(crate::ledger::clock::now_ms()),
    })
}

/// The `--json` verdict line of one proof.
pub fn verdict_json(a: &VerifyArgs, r: &Result<Checked, String>) -> serde_json::Value {
    match r {
        Ok((p, v, w)) => json!({"valid": true, "held": v.state.held(a.default_allow),
            "state": v.state.as_str(), "reason": null, "subject": to_hex(&p.subject),
            "controller": p.controller, "purpose": p.purpose, "at": p.at,
            "log": v.checkpoint.origin, "checkpoint_size": v.checkpoint.size,
            "checkpoint_root": to_hex(&v.checkpoint.root),
            "witnessed": w.witnessed, "map_replayed": w.map_replayed}),
        Err(reason) => json!({"valid": false, "held": false, "state": null, "reason": reason,
            "subject": a.subject, "controller": a.controller, "purpose": a.purpose, "at": a.at,
            "log": null, "checkpoint_size": null, "checkpoint_root": null,
            "witnessed": false, "map_replayed": false}),
    }
}

/// A proof that checked out: the proof, its verdict, and what the witnesses showed.
pub type Checked = (ConsentProof, proof::Verdict, witnessed::Witnessing);

/// The witnesses' part of a valid proof's check (`--policy`, a declared policy).
pub fn check_witnesses(
    policy: Option<&crate::core::policy::Policy>,
    key: &ed25519_dalek::VerifyingKey,
    p: &ConsentProof,
    v: &proof::Verdict,
) -> Result<witnessed::Witnessing, String> {
    let genesis = crate::core::leaf::Leaf::decode_genesis(&p.genesis.leaf)
        .map_err(|e| format!("genesis leaf: {e}"))?;
    witnessed::check(
        policy,
        &genesis,
        key,
        &v.checkpoint,
        v.map_time,
        p.witnessed.as_ref(),
    )
}

/// What a `no_record` answer means, naming the question asked.
fn no_record(p: &ConsentProof) -> String {
    format!(
        "no record for (subject {}, controller {}, purpose {}) at {}: nothing was decided for \
         this question; check the subject, controller and purpose",
        to_hex(&p.subject),
        p.controller,
        p.purpose,
        super::time::both(p.at)
    )
}

/// The parts of the question `verify` was not given, as option names.
fn unasked(a: &VerifyArgs) -> Vec<&'static str> {
    [
        ("--subject", a.subject.is_none()),
        ("--controller", a.controller.is_none()),
        ("--purpose", a.purpose.is_none()),
        ("--at", a.at.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, gone)| gone.then_some(name))
    .collect()
}

/// The log key given to `verify`; a key that cannot be read makes every proof invalid (exit 2).
pub fn log_key(a: &VerifyArgs) -> Result<ed25519_dalek::VerifyingKey, Failure> {
    parse_log_key(&a.log_key).map_err(|f| Failure::new(2, f.message))
}

/// `verify` of one proof (`--batch` is [`super::batch::verify`]).
pub fn verify(a: VerifyArgs) -> CmdResult {
    let invalid = |msg: String| Failure::new(2, msg);
    let missing = unasked(&a);
    if !missing.is_empty() && !a.any_question {
        return Err(super::usage(format!(
            "verify: which question? missing {}: a proof answers one (subject, controller, \
             purpose, at) and verify checks it is yours; pass them, or --any-question to accept \
             whatever the proof is about",
            missing.join(", ")
        )));
    }
    let key = log_key(&a)?;
    let policy = witnessed::load(a.policy.as_deref())?;
    let q = question(&a).map_err(|f| invalid(f.message))?;
    let text =
        read_input(a.proof.as_deref().expect("clap: PROOF")).map_err(|f| invalid(f.message))?;
    let parsed: Result<ConsentProof, String> =
        crate::core::hash::json_object(&text).map_err(|e| format!("not a consent proof: {e}"));
    let result = parsed.and_then(|p| {
        let v = proof::check(&p, &key, &q).map_err(|e| e.to_string())?;
        let w = check_witnesses(policy.as_ref(), &key, &p, &v)?;
        Ok((p, v, w))
    });
    if a.json {
        super::print_json(&verdict_json(&a, &result));
    }
    match result {
        Ok((p, v, w)) => {
            let held = v.state.held(a.default_allow);
            if !a.json {
                if !missing.is_empty() {
                    println!(
                        "--any-question: not checked against {}; the proof answers the question \
                         below",
                        missing.join(", ")
                    );
                }
                println!(
                    "{}valid proof: consent {} at {} for subject {}, {} / {} (state {}; log {}, \
                     checkpoint of {} leaves with root {}, map leaf at {})",
                    w.prefix(),
                    if held { "HELD" } else { "NOT held" },
                    super::time::both(p.at),
                    to_hex(&p.subject),
                    p.controller,
                    p.purpose,
                    v.state.as_str(),
                    v.checkpoint.origin,
                    v.checkpoint.size,
                    to_hex(&v.checkpoint.root),
                    super::time::both(v.map_time)
                );
            }
            if !a.json && v.state == proof::State::NoRecord {
                println!("{}", no_record(&p));
            }
            if held {
                Ok(())
            } else {
                Err(Failure::new(1, "consent did not hold"))
            }
        }
        Err(reason) => Err(invalid(format!("proof INVALID: {reason}"))),
    }
}
