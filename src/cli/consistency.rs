//! `check-consistency` and `verify-evidence`: catching a log that shows different histories
//! to different people.

use std::path::{Path, PathBuf};

use super::{fail, parse_log_key, read_input, CmdResult, Failure};
use crate::api::{ConsistencyQuery, InclusionQuery};
use crate::client::Client;
use crate::core::evidence::{self, compare, Comparison, Evidence};
use crate::core::hash::{Hash, HexHash};
use crate::ledger::Ledger;
use crate::witness::{self, Proven, Seen};

/// A consistency proof from `--server` or `--dir`, if either is given.
pub fn fetch_proof(
    server: Option<&str>,
    dir: Option<&Path>,
    old: u64,
    new: u64,
) -> Result<Option<Vec<HexHash>>, Failure> {
    if let Some(url) = server {
        let q = ConsistencyQuery {
            old,
            new: Some(new),
        };
        let p = Client::new(url, None).consistency(&q).map_err(fail)?;
        return Ok(Some(p.path));
    }
    if let Some(dir) = dir {
        let p = Ledger::open_read_only(dir)
            .map_err(fail)?
            .prove_consistency(old, Some(new))
            .map_err(fail)?;
        return Ok(Some(p.path));
    }
    Ok(None)
}

/// The root the log gives for its first `size` leaves (the root of its inclusion proof at that
/// size), from `--server` or `--dir`. Nothing is trusted: [`evidence::not_a_prefix`] holds only
/// if the log's consistency proof leads from this root to its signed larger tree.
fn prefix_root(server: Option<&str>, dir: Option<&Path>, size: u64) -> Option<Hash> {
    if size == 0 {
        return None;
    }
    if let Some(url) = server {
        let q = InclusionQuery {
            index: size - 1,
            size: Some(size),
        };
        return Client::new(url, None).inclusion(&q).ok().map(|p| p.root.0);
    }
    let dir = dir?;
    Ledger::open_read_only(dir).ok()?.root_at(size).ok()
}

pub(super) fn write_evidence(e: &Evidence, out: Option<&Path>) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(e).expect("json") + "\n";
    match out {
        Some(p) => std::fs::write(p, text).map_err(|err| fail(format!("{}: {err}", p.display()))),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

pub fn check_consistency(
    log_key: &str,
    a: &str,
    b: &str,
    server: Option<&str>,
    dir: Option<&Path>,
    out: Option<&PathBuf>,
) -> CmdResult {
    let err2 = |f: Failure| Failure::new(2, f.message);
    let key = parse_log_key(log_key).map_err(err2)?;
    let na = read_input(a).map_err(err2)?;
    let nb = read_input(b).map_err(err2)?;
    let first = compare(&key, &na, &nb, None).map_err(|e| Failure::new(2, e))?;
    let result = match first {
        Comparison::NeedProof { old, new } => match fetch_proof(server, dir, old, new).map_err(err2)? {
            None => {
                return Err(Failure::new(
                    2,
                    format!(
                        "the trees have sizes {old} and {new}: give --server URL or --dir D to get a consistency proof"
                    ),
                ))
            }
            Some(p) => match compare(&key, &na, &nb, Some(&p)).map_err(|e| Failure::new(2, e))? {
                // A smaller size that is a power of two: the proof starts from the root of
                // that many leaves, so ask the log for it (a wrong one proves nothing).
                Comparison::Unproven { old, new } => prefix_root(server, dir, old)
                    .and_then(|root| {
                        evidence::not_a_prefix(&key, &na, &nb, root, p.clone())
                            .or_else(|| evidence::not_a_prefix(&key, &nb, &na, root, p.clone()))
                    })
                    .map_or(Comparison::Unproven { old, new }, |e| Comparison::Fork(Box::new(e))),
                other => other,
            },
        },
        other => other,
    };
    match result {
        Comparison::Consistent => {
            println!("consistent: one checkpoint extends the other");
            Ok(())
        }
        Comparison::Fork(e) => {
            write_evidence(&e, out.map(PathBuf::as_path))?;
            let why = evidence::check(&e).map_err(|x| Failure::new(2, x))?;
            Err(Failure::new(1, format!("THE LOG LIED: {why}")))
        }
        Comparison::Unproven { old, new } => Err(Failure::new(
            1,
            format!(
                "NOT PROVEN: the log's consistency proof from size {old} to {new} does not \
                 verify. That is not evidence of a lie by itself (no evidence file is written), \
                 but the log has not shown that the larger tree extends the smaller"
            ),
        )),
        Comparison::NeedProof { .. } => unreachable!("a proof was supplied"),
    }
}

pub fn verify_evidence(file: &str, server: Option<&str>) -> CmdResult {
    let text = read_input(file).map_err(|f| Failure::new(2, f.message))?;
    let e: Evidence = crate::core::hash::json_object(&text)
        .map_err(|x| Failure::new(2, format!("{file}: not an evidence file: {x}")))?;
    // Evidence is conclusive by itself: nothing is asked of the log.
    let _ = server;
    let why =
        evidence::check(&e).map_err(|x| Failure::new(1, format!("evidence does not hold: {x}")))?;
    println!("evidence holds: {} ({})", why, e.claim.kind());
    Ok(())
}

/// What a command that remembers checkpoints is told about the one it was shown.
pub struct Remember<'a> {
    /// `--state`, else the default state file.
    pub state: Option<&'a Path>,
    /// A server to ask for a consistency proof.
    pub server: Option<&'a str>,
    /// `--accept-older-view`: a checkpoint smaller than the one remembered is accepted (with a
    /// warning) instead of refused.
    pub accept_older: bool,
}

/// Compares `note` with the last checkpoint seen for this log (state file) and remembers it.
/// Fails loudly on a fork, and on a view older (smaller) than the one remembered unless
/// `accept_older`; warns when it is larger and no proof could be had. `replayed`: the caller
/// has recomputed the remembered checkpoint from the leaves under `note` (so it is consistent
/// if `note` is not smaller).
pub fn remember(
    r: Remember<'_>,
    key: &ed25519_dalek::VerifyingKey,
    note: &str,
    replayed: bool,
) -> CmdResult {
    let Some(path) = r
        .state
        .map(Path::to_path_buf)
        .or_else(witness::default_path)
    else {
        return Ok(());
    };
    let server = r.server;
    let seen = witness::check_and_remember(&path, key, note, |o, n| {
        if let Some(p) = fetch_proof(server, None, o, n).ok().flatten() {
            let prefix_root = if o.is_power_of_two() {
                prefix_root(server, None, o)
            } else {
                None
            };
            return Some(Proven::Path {
                proof: p,
                prefix_root,
            });
        }
        replayed.then_some(Proven::Replayed)
    })
    .map_err(fail)?;
    match seen {
        Seen::Extends => Ok(()),
        Seen::Unchecked { seen, shown } => {
            eprintln!(
                "warning: the last checkpoint seen had {seen} leaves, this one {shown}; give \
                 --server to check that it extends it (not remembered until then)"
            );
            Ok(())
        }
        Seen::Unproven { seen, shown } => Err(Failure::new(
            2,
            format!(
                "NOT PROVEN: the log's consistency proof between the checkpoint seen before \
                 ({seen} leaves) and this one ({shown}) does not verify; not trusting this view"
            ),
        )),
        Seen::Stale {
            seen,
            shown,
            proven,
        } => {
            let msg = format!(
                "STALE VIEW: this checkpoint ({shown} leaves) is older than the one remembered \
                 in {} ({seen} leaves): whatever was appended after it is not shown{}",
                path.display(),
                if proven {
                    ""
                } else {
                    ", and it was not shown to be a prefix of the one remembered"
                }
            );
            if r.accept_older {
                eprintln!("warning: {msg}; accepted (--accept-older-view)");
                Ok(())
            } else {
                Err(Failure::new(
                    2,
                    format!(
                        "{msg}. Refused: to accept an older view knowingly, pass \
                         --accept-older-view"
                    ),
                ))
            }
        }
        Seen::Fork(e) => {
            let ev = path.with_extension("evidence.json");
            let _ = write_evidence(&e, Some(&ev));
            Err(Failure::new(
                2,
                format!(
                    "THE LOG LIED: this checkpoint does not extend the one seen before ({}); evidence written to {}",
                    e.claim.kind(),
                    ev.display()
                ),
            ))
        }
    }
}
