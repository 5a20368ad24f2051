//! `audit`: an auditor's full replay of a ledger directory or an export file.

use std::io::{BufReader, IsTerminal};
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::consistency::Remember;
use super::{fail, parse_log_key, CmdResult, Failure};
use crate::core::audit::{Auditor, Report, Violation};
use crate::core::evidence_finder::Finder;
use crate::core::export::Reader;
use crate::core::leaf::Leaf;
use crate::core::opening::Opening;
use crate::ledger::{clock, raw::RawLedger};

/// Arguments of `audit`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("source").args(["dir", "file", "url"])))]
pub struct AuditArgs {
    /// The log's public key (hex or file); defaults to DIR/log.pub with --dir
    #[arg(long)]
    pub log_key: Option<String>,
    /// A ledger directory [default: $CONSENTLOG_DIR, else --url $CONSENTLOG_SERVER]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// An export file (`consentlog export`)
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// A consentlog server's base URL: replay it from its public endpoints
    #[arg(long)]
    pub url: Option<String>,
    /// Auditor token for --url: also fetch and check the openings (a command line is visible
    /// to others in `ps`: prefer --token-file or $CONSENTLOG_TOKEN)
    #[arg(long, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// File whose first line is the auditor token for --url (mode 0600)
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// With --url or --file: file remembering the last checkpoint seen per log key (default
    /// $CONSENTLOG_STATE or ~/.consentlog/checkpoints.json); a log or export whose newest
    /// checkpoint is older (smaller) than the one remembered is refused
    #[arg(long, conflicts_with = "dir")]
    pub state: Option<PathBuf>,
    /// With --url or --file: accept a newest checkpoint older (smaller) than the one
    /// remembered, with a warning, instead of refusing it
    #[arg(long, conflicts_with = "dir")]
    pub accept_older_view: bool,
    /// A checkpoint note signed by the log (a file, e.g. one a proof carried): the leaves must
    /// be its tree, and the first rule they break under it is written as conclusive evidence
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Where --checkpoint writes evidence
    #[arg(
        long,
        requires = "checkpoint",
        default_value = "consentlog-evidence.json"
    )]
    pub evidence_out: PathBuf,
    /// With --url: a c2sp.org/tlog-policy file; the log's newest cosigned checkpoint must meet
    /// it and be one of the checkpoints the replay recomputed (docs/WITNESSING.md)
    #[arg(long, value_name = "FILE", requires = "url")]
    pub policy: Option<PathBuf>,
}

/// Leaves replayed per parallel chunk.
const CHUNK: usize = 16384;

/// Leaves read together by one thread, within a chunk of a ledger directory.
const READ_PART: usize = 2048;

pub(super) fn bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} leaves {per_sec} eta {eta}")
            .expect("template"),
    );
    pb
}

pub fn audit(a: AuditArgs) -> CmdResult {
    let key_arg = match (&a.log_key, &a.dir) {
        (Some(k), _) => k.clone(),
        (None, Some(d)) => d.join("log.pub").display().to_string(),
        (None, None) => return Err(fail("--log-key is required with --file and --url")),
    };
    let key = parse_log_key(&key_arg)?;
    let now = clock::now_ms();
    let mut finder = match &a.checkpoint {
        None => None,
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| fail(format!("{}: {e}", p.display())))?;
            let cp = crate::core::note::open(&text, &key)
                .map_err(|e| fail(format!("--checkpoint {}: {e}", p.display())))?;
            Some(Finder::new(cp))
        }
    };
    let policy = super::witnessed::load(a.policy.as_deref())?;
    let report = if let Some(url) = &a.url {
        let (report, last, notes) =
            super::remote_audit::audit(url, a.token.clone(), &key, now, bar, finder.as_mut())?;
        if let (Some(p), true) = (&policy, report.ok()) {
            audit_witnesses(url, p, &key, &notes, now)?;
        }
        if report.ok() {
            let r = Remember {
                state: a.state.as_deref(),
                server: Some(url),
                accept_older: a.accept_older_view,
            };
            super::consistency::remember(r, &key, &last, false)?;
        }
        report
    } else if let Some(dir) = &a.dir {
        let raw = RawLedger::open(dir).map_err(fail)?;
        let notes = raw.checkpoints().map_err(fail)?;
        let mut auditor = Auditor::new(&key, &raw.origin, &notes, now);
        let size = raw.size;
        let pb = bar(size);
        let chunks = (0..size).step_by(CHUNK).map(|start| {
            // Read in parts on all cores: the engine's reads and decoding are otherwise the
            // one serial step before each chunk's checks.
            use rayon::prelude::*;
            let end = (start + CHUNK as u64).min(size);
            let parts: Vec<u64> = (start..end).step_by(READ_PART).collect();
            let parts: Result<Vec<_>, _> = parts
                .into_par_iter()
                .map(|s| raw.leaves(s, (s + READ_PART as u64).min(end)))
                .collect();
            parts.map(|p| p.concat()).map_err(fail)
        });
        replay(&mut auditor, feed(chunks, finder.as_mut()), |done| {
            pb.set_position(done)
        })?;
        pb.finish_and_clear();
        let mut report = auditor.finish();
        let extra = raw.leaves_beyond_size().map_err(fail)?;
        if extra > 0 {
            report.violations.push(Violation::other(
                Some(size),
                format!("{extra} leaves are stored at or past the recorded tree size {size}"),
            ));
        }
        report
    } else {
        let path = a.file.as_ref().expect("clap group");
        let f = std::fs::File::open(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        let mut r = Reader::new(BufReader::with_capacity(1 << 20, f)).map_err(fail)?;
        if r.header.log_key != key.to_bytes() {
            return Err(fail(
                "the export was made by a different log key than --log-key",
            ));
        }
        // The checkpoint remembered from an earlier audit (or history) is replayed with the
        // export's own when the export reaches it: its root recomputed from these leaves shows
        // that the export extends it. A smaller export is a stale view (refused below).
        let mut notes = r.header.checkpoints.clone();
        let newest = notes.last().cloned();
        let state = a.state.clone().or_else(crate::witness::default_path);
        let remembered = match &state {
            Some(p) => crate::witness::remembered(p, &key).map_err(fail)?,
            None => None,
        };
        let size = |n: &str| crate::core::note::open(n, &key).map(|c| c.size).ok();
        let (mut replayed, mut inserted) = (false, false);
        if let (Some(old), Some(new)) = (&remembered, &newest) {
            if let (Some(o), Some(n)) = (size(old), size(new)) {
                if notes.contains(old) {
                    // One of the export's own: replayed like the others.
                    replayed = true;
                } else if o <= n {
                    let at = notes.partition_point(|x| size(x).is_some_and(|s| s <= o));
                    notes.insert(at, old.clone());
                    (replayed, inserted) = (true, true);
                    println!(
                        "replaying the checkpoint remembered in {} ({o} leaves) with the \
                         export's (checkpoint {at} below)",
                        state.as_ref().expect("remembered").display()
                    );
                }
            }
        }
        let mut auditor = Auditor::new(&key, &r.header.origin.clone(), &notes, now);
        let pb = bar(r.header.leaves);
        let chunks = std::iter::from_fn(|| {
            let mut chunk: Vec<(Leaf, Option<Opening>)> = Vec::with_capacity(CHUNK);
            while chunk.len() < CHUNK {
                match r.next_leaf() {
                    Ok(Some(x)) => chunk.push(x),
                    Ok(None) => break,
                    Err(e) => return Some(Err(fail(e))),
                }
            }
            (!chunk.is_empty()).then_some(Ok(chunk))
        });
        replay(&mut auditor, feed(chunks, finder.as_mut()), |done| {
            pb.set_position(done)
        })?;
        pb.finish_and_clear();
        let mut report = auditor.finish();
        // Count the export's checkpoints only.
        report.checkpoints -= usize::from(inserted);
        if let (true, Some(newest)) = (report.ok(), &newest) {
            let r = Remember {
                state: a.state.as_deref(),
                server: None,
                accept_older: a.accept_older_view,
            };
            super::consistency::remember(r, &key, newest, replayed)?;
        }
        report
    };
    let printed = print_report(&report, "audit");
    match finder {
        None => printed,
        Some(f) => judge(f, &key, &a.evidence_out).and(printed),
    }
}

/// `audit --url --policy`: the log's newest cosigned checkpoint meets the policy and is one
/// of the checkpoints the replay just recomputed (`notes`, each checked against the leaves).
fn audit_witnesses(
    url: &str,
    policy: &crate::core::policy::Policy,
    key: &ed25519_dalek::VerifyingKey,
    notes: &[String],
    now: u64,
) -> CmdResult {
    let invalid = |m: String| Failure::new(2, m);
    let text = crate::client::Client::new(url, None)
        .cosigned()
        .map_err(|e| {
            invalid(format!(
                "--policy: no cosigned checkpoint from the log: {e}"
            ))
        })?;
    let w = policy
        .check_note(text.as_bytes(), now / 1000)
        .map_err(|e| invalid(format!("--policy: the log's cosigned checkpoint: {e}")))?;
    if policy.logs[w.log].vkey.key != *key {
        return Err(invalid(
            "--policy: the cosigned checkpoint is signed by another log of the policy".into(),
        ));
    }
    let cp = crate::core::note::open(&text, key)
        .map_err(|e| invalid(format!("--policy: the cosigned checkpoint: {e}")))?;
    let stored = notes
        .iter()
        .filter_map(|n| crate::core::note::open(n, key).ok())
        .find(|s| s.size == cp.size);
    match stored {
        Some(s) if s.root == cp.root => {}
        Some(_) => {
            return Err(invalid(format!(
                "THE LOG LIED: the witnesses cosigned a tree of {} leaves whose root is not the                  one of the log's own checkpoint of that size (a fork)",
                cp.size
            )))
        }
        None => {
            return Err(invalid(format!(
                "--policy: the cosigned checkpoint ({} leaves) is not one of the log's stored                  checkpoints, so the replay did not recompute it",
                cp.size
            )))
        }
    }
    let replaying = crate::core::witnessed::replaying_witnesses(policy);
    let names: Vec<&str> = w
        .cosigned
        .iter()
        .map(|&(i, _)| policy.witnesses[i].name.as_str())
        .collect();
    println!(
        "witnessed: the checkpoint of {} leaves, recomputed by this replay, is cosigned by {}          (map_replayed: {})",
        cp.size,
        names.join(", "),
        if w.cosigned.iter().any(|(i, _)| replaying.contains(i)) {
            "yes"
        } else {
            "no"
        }
    );
    Ok(())
}

/// Hands each leaf of `chunks` to `finder` too, as it goes by.
fn feed<'a>(
    chunks: impl Iterator<Item = Result<Vec<(Leaf, Option<Opening>)>, Failure>> + Send + 'a,
    mut finder: Option<&'a mut Finder>,
) -> impl Iterator<Item = Result<Vec<(Leaf, Option<Opening>)>, Failure>> + Send + 'a {
    chunks.inspect(move |c| {
        if let (Some(f), Ok(c)) = (finder.as_deref_mut(), c) {
            for (l, _) in c {
                f.push(l.to_bytes());
            }
        }
    })
}

/// `audit --checkpoint`: the evidence of the first rule the checkpoint's leaves break, written
/// to `out` and checked again as anyone would check it (exit 2), or why there is none.
fn judge(f: Finder, key: &ed25519_dalek::VerifyingKey, out: &std::path::Path) -> CmdResult {
    let size = f.size();
    match f.finish(key) {
        Err(e) => Err(fail(format!(
            "the leaves read are not the tree of --checkpoint ({size} leaves): {e}"
        ))),
        Ok(None) => {
            println!("no rule is broken under the checkpoint of {size} leaves given");
            Ok(())
        }
        Ok(Some(e)) => {
            let why = crate::core::evidence::check(&e).map_err(|x| {
                fail(format!(
                    "internal error: evidence found does not check: {x}"
                ))
            })?;
            super::consistency::write_evidence(&e, Some(out))?;
            Err(Failure::new(
                2,
                format!(
                    "THE LOG LIED: {why} ({}); conclusive evidence written to {} (check it with \
                     `consentlog verify-evidence {}`)",
                    e.claim.kind(),
                    out.display(),
                    out.display()
                ),
            ))
        }
    }
}

/// Replays `chunks` into `auditor`: a reader thread reads the next chunk and checks its
/// leaves on all cores while the auditor replays the current one. Stops at the first read
/// error.
fn replay(
    auditor: &mut Auditor,
    chunks: impl Iterator<Item = Result<Vec<(Leaf, Option<Opening>)>, Failure>> + Send,
    mut progress: impl FnMut(u64),
) -> CmdResult {
    let origin = auditor.origin().to_string();
    // One checked chunk waits while another is replayed.
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::scope(|scope| {
        let mut vrf_key = auditor.vrf_key();
        let known = auditor.state_keys();
        let reader = scope.spawn(move || -> CmdResult {
            for chunk in chunks {
                let chunk = chunk?;
                // The VRF key of the state keys is named by the genesis leaf, leaf 0.
                if let (None, Some((Leaf::Genesis(g), _))) = (vrf_key, chunk.first()) {
                    vrf_key = crate::core::vrf::VrfPublicKey::from_bytes(g.vrf_key).ok();
                }
                if tx
                    .send(Auditor::check_chunk(&origin, vrf_key, &known, chunk))
                    .is_err()
                {
                    break;
                }
            }
            Ok(())
        });
        let mut done = 0;
        for checked in rx {
            done += checked.len() as u64;
            auditor.push_checked(checked);
            progress(done);
        }
        reader.join().expect("reader thread")
    })
}

fn print_report(r: &Report, what: &str) -> CmdResult {
    println!(
        "audited {} leaves ({} events, {} map leaves) against {} checkpoints; {} openings \
         checked, {} not available",
        r.leaves, r.events, r.map_leaves, r.checkpoints, r.openings_checked, r.openings_missing
    );
    for v in &r.violations {
        println!("VIOLATION {v}");
    }
    if r.ok() {
        println!("{what} OK: every checkpoint and map leaf recomputed, every rule holds");
        Ok(())
    } else {
        Err(Failure::new(
            1,
            format!("{what} FAILED: {} violation(s)", r.violations.len()),
        ))
    }
}

/// `fsck --dir D`: the full replay plus every stored derived structure.
pub fn fsck(dir: &std::path::Path) -> CmdResult {
    let key = parse_log_key(&dir.join("log.pub").display().to_string())?;
    let raw = RawLedger::open(dir).map_err(fail)?;
    let pb = bar(raw.size);
    let report = crate::ledger::fsck::fsck(&raw, &key, clock::now_ms(), |n| pb.set_position(n))
        .map_err(|e| fail(format!("fsck stopped: {e}")))?;
    pb.finish_and_clear();
    print_report(&report, "fsck")
}

/// `migrate`: copy a ledger to another engine, check the copy in full, report.
pub fn migrate(
    from: &std::path::Path,
    to: &std::path::Path,
    engine: crate::store::Engine,
) -> CmdResult {
    let pb = if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new_spinner();
        pb.set_style(ProgressStyle::with_template("{msg} {pos} {per_sec}").expect("template"));
        pb
    } else {
        ProgressBar::hidden()
    };
    let m = crate::ledger::migrate::migrate(from, to, engine, clock::now_ms(), |what, n| {
        pb.set_message(what.to_string());
        pb.set_position(n);
    })
    .map_err(|e| fail(format!("migrate stopped: {e}")))?;
    pb.finish_and_clear();
    if let Err(f) = print_report(&m.report, "fsck of the copy") {
        return Err(Failure::new(
            f.code,
            format!(
                "{}; the copy in {} is not marked as a ledger",
                f.message,
                to.display()
            ),
        ));
    }
    println!(
        "migrated {} leaves ({} records) to {} on {engine}; the copy passed fsck",
        m.entries,
        m.records,
        to.display()
    );
    Ok(())
}
