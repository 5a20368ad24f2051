//! `check-consistency` and `verify-evidence`: catching a log that shows different histories
//! to different people.

use std::path::{Path, PathBuf};

use super::{fail, parse_log_key, read_input, CmdResult, Failure};
use crate::api::ConsistencyQuery;
use crate::client::Client;
use crate::core::evidence::{self, compare, Comparison, Evidence, Kind};
use crate::core::hash::HexHash;
use crate::ledger::Ledger;
use crate::witness::{self, Seen};

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
        let p = Ledger::open(dir)
            .map_err(fail)?
            .prove_consistency(old, Some(new))
            .map_err(fail)?;
        return Ok(Some(p.path));
    }
    Ok(None)
}

fn write_evidence(e: &Evidence, out: Option<&Path>) -> Result<(), Failure> {
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
            Some(p) => compare(&key, &na, &nb, Some(&p)).map_err(|e| Failure::new(2, e))?,
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
        Comparison::NeedProof { .. } => unreachable!("a proof was supplied"),
    }
}

pub fn verify_evidence(file: &str, server: Option<&str>) -> CmdResult {
    let text = read_input(file).map_err(|f| Failure::new(2, f.message))?;
    let e: Evidence = crate::core::hash::json_object(&text)
        .map_err(|x| Failure::new(2, format!("{file}: not an evidence file: {x}")))?;
    let why =
        evidence::check(&e).map_err(|x| Failure::new(1, format!("evidence does not hold: {x}")))?;
    if e.kind == Kind::Inconsistent {
        // A failing proof shows a lie only if the log cannot produce a good one: ask it.
        if let Some(url) = server {
            let key = ed25519_dalek::VerifyingKey::from_bytes(&e.log_key)
                .map_err(|_| Failure::new(2, "bad log key"))?;
            let (a, b) = (
                crate::core::note::open(&e.first, &key).map_err(|x| Failure::new(2, x))?,
                crate::core::note::open(&e.second, &key).map_err(|x| Failure::new(2, x))?,
            );
            if let Some(p) = fetch_proof(Some(url), None, a.size, b.size)? {
                if let Ok(Comparison::Consistent) = compare(&key, &e.first, &e.second, Some(&p)) {
                    return Err(Failure::new(
                        1,
                        "evidence does not hold: the log now gives a valid consistency proof",
                    ));
                }
            }
        } else {
            eprintln!(
                "note: an `inconsistent` evidence shows a failing proof; it is conclusive when \
                 the log cannot give a valid one (check with --server URL)"
            );
        }
    }
    println!("evidence holds: {why}");
    Ok(())
}

/// Compares `note` with the last checkpoint seen for this log (state file) and remembers it.
/// Fails loudly on a fork; warns when sizes differ and no proof could be had.
pub fn remember(
    state: Option<&Path>,
    key: &ed25519_dalek::VerifyingKey,
    note: &str,
    server: Option<&str>,
) -> CmdResult {
    let Some(path) = state.map(Path::to_path_buf).or_else(witness::default_path) else {
        return Ok(());
    };
    let seen = witness::check_and_remember(&path, key, note, |o, n| {
        fetch_proof(server, None, o, n).ok().flatten()
    })
    .map_err(fail)?;
    match seen {
        Seen::Extends => Ok(()),
        Seen::Unchecked { old, new } => {
            eprintln!(
                "warning: last checkpoint seen had {old} entries, this one {new}; give --server to check that it extends it"
            );
            Ok(())
        }
        Seen::Fork(e) => {
            let ev = path.with_extension("evidence.json");
            let _ = write_evidence(&e, Some(&ev));
            Err(Failure::new(
                2,
                format!(
                    "THE LOG LIED: this checkpoint does not extend the one seen before ({:?}); evidence written to {}",
                    e.kind,
                    ev.display()
                ),
            ))
        }
    }
}
