//! `verify-inclusion` and `verify-consistency`: the auditor's checks of what `prove-inclusion`
//! and `prove-consistency` print (docs/FORMAT.md §4), against checkpoints signed by the log
//! key (the trusted roots), with the RFC 6962 checks of `consentlog_core::tlog`.

use std::path::PathBuf;

use clap::Args;

use super::{fail, parse_log_key, read_input, CmdResult, Failure};
use crate::core::hash::{from_hex_array, to_hex, Hash};
use crate::core::note::{self, SignedCheckpoint};
use crate::core::tlog::{self, LeafIndex, Sha256Hasher, TreeSize};
use crate::ledger::{ConsistencyProof, InclusionProof};

/// Exit code of an invalid proof (or a checkpoint that does not hold).
const INVALID: i32 = 2;

fn invalid(message: impl std::fmt::Display) -> Failure {
    Failure::new(INVALID, format!("INVALID: {message}"))
}

/// Arguments of `verify-inclusion`.
#[derive(Args, Debug)]
pub struct VerifyInclusionArgs {
    /// The log's public key: 64 hex digits or a file holding them (DIR/log.pub)
    #[arg(long)]
    pub log_key: String,
    /// A checkpoint note signed by the log (`consentlog checkpoint` prints one): the trusted
    /// root; the proof must be for its tree size
    #[arg(long, value_name = "NOTE")]
    pub checkpoint: PathBuf,
    /// The leaf hash you hold (`consentlog leaves` prints it, a receipt carries it): the proof
    /// must be about this leaf
    #[arg(long, value_name = "HEX")]
    pub leaf_hash: Option<String>,
    /// The proof from `prove-inclusion` (JSON), or - for standard input
    pub file: String,
}

/// Arguments of `verify-consistency`.
#[derive(Args, Debug)]
pub struct VerifyConsistencyArgs {
    /// The log's public key: 64 hex digits or a file holding them (DIR/log.pub)
    #[arg(long)]
    pub log_key: String,
    /// A checkpoint note signed by the log, for the old or the new size (repeat it for both):
    /// the proof's root at that size must be the checkpoint's
    #[arg(long, value_name = "NOTE", required = true)]
    pub checkpoint: Vec<PathBuf>,
    /// The proof from `prove-consistency` (JSON), or - for standard input
    pub file: String,
}

fn log_key(arg: &str) -> Result<ed25519_dalek::VerifyingKey, Failure> {
    parse_log_key(arg)
}

/// Opens a checkpoint note under the log key; a note that does not verify is an invalid
/// input (exit 2).
fn checkpoint(
    path: &std::path::Path,
    key: &ed25519_dalek::VerifyingKey,
) -> Result<SignedCheckpoint, Failure> {
    let text =
        std::fs::read_to_string(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    note::open(&text, key).map_err(|e| {
        invalid(format!(
            "checkpoint {}: {e} (is it this log's, unmodified?)",
            path.display()
        ))
    })
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, what: &str) -> Result<T, Failure> {
    let text = read_input(file)?;
    serde_json::from_str(&text).map_err(|e| {
        invalid(format!(
            "{file} is not a {what} proof (docs/FORMAT.md §4): {e}"
        ))
    })
}

fn hashes(v: &[crate::core::hash::HexHash]) -> Vec<Hash> {
    v.iter().map(|h| h.0).collect()
}

pub fn verify_inclusion(a: VerifyInclusionArgs) -> CmdResult {
    let key = log_key(&a.log_key)?;
    let cp = checkpoint(&a.checkpoint, &key)?;
    let p: InclusionProof = parse(&a.file, "inclusion")?;
    if p.tree_size != cp.size {
        return Err(invalid(format!(
            "the proof is for a tree of {} leaves, the checkpoint of {}: ask for \
             `consentlog prove-inclusion --index {} --size {}`",
            p.tree_size, cp.size, p.index, cp.size
        )));
    }
    if p.root.0 != cp.root {
        return Err(invalid(format!(
            "the proof's root {} is not the checkpoint's root {} at size {}",
            to_hex(&p.root.0),
            to_hex(&cp.root),
            cp.size
        )));
    }
    if let Some(want) = &a.leaf_hash {
        let want: Hash =
            from_hex_array(want.trim()).map_err(|e| super::usage(format!("--leaf-hash: {e}")))?;
        if want != p.leaf_hash.0 {
            return Err(invalid(format!(
                "the proof is about leaf hash {}, not {}",
                to_hex(&p.leaf_hash.0),
                to_hex(&want)
            )));
        }
    }
    tlog::check_inclusion(
        &Sha256Hasher,
        LeafIndex(p.index),
        TreeSize(p.tree_size),
        &p.leaf_hash.0,
        &hashes(&p.path),
        &cp.root,
    )
    .map_err(|e| invalid(format!("inclusion proof (RFC 6962 §2.1.1): {e}")))?;
    println!(
        "valid inclusion proof: leaf {} (leaf hash {}{}) is in the tree of {} leaves",
        p.index,
        to_hex(&p.leaf_hash.0),
        if a.leaf_hash.is_some() {
            ", as given"
        } else {
            ", taken from the proof: pass --leaf-hash to name yours"
        },
        p.tree_size
    );
    println!(
        "  root {} signed by log {:?} (key {}) in checkpoint {}",
        to_hex(&cp.root),
        cp.origin,
        to_hex(key.as_bytes()),
        a.checkpoint.display()
    );
    Ok(())
}

pub fn verify_consistency(a: VerifyConsistencyArgs) -> CmdResult {
    let key = log_key(&a.log_key)?;
    let notes = a
        .checkpoint
        .iter()
        .map(|p| Ok((p, checkpoint(p, &key)?)))
        .collect::<Result<Vec<_>, Failure>>()?;
    let p: ConsistencyProof = parse(&a.file, "consistency")?;
    let (mut old_by, mut new_by) = (None, None);
    for (path, cp) in &notes {
        let mut used = false;
        for (size, root, by, side) in [
            (p.old_size, &p.old_root, &mut old_by, "old"),
            (p.new_size, &p.new_root, &mut new_by, "new"),
        ] {
            if cp.size != size {
                continue;
            }
            if cp.root != root.0 {
                return Err(invalid(format!(
                    "the proof's {side} root {} is not the root {} that checkpoint {} signs \
                     at size {size}",
                    to_hex(&root.0),
                    to_hex(&cp.root),
                    path.display()
                )));
            }
            *by = Some(*path);
            used = true;
        }
        if !used {
            return Err(invalid(format!(
                "checkpoint {} is of size {}, the proof goes from {} to {}: ask for \
                 `consentlog prove-consistency --old {} --new {}`",
                path.display(),
                cp.size,
                p.old_size,
                p.new_size,
                if cp.size < p.new_size {
                    cp.size
                } else {
                    p.old_size
                },
                if cp.size < p.new_size {
                    p.new_size
                } else {
                    cp.size
                }
            )));
        }
    }
    tlog::check_consistency(
        &Sha256Hasher,
        TreeSize(p.old_size),
        TreeSize(p.new_size),
        &p.old_root.0,
        &p.new_root.0,
        &hashes(&p.path),
    )
    .map_err(|e| invalid(format!("consistency proof (RFC 6962 §2.1.2): {e}")))?;
    let origin = &notes[0].1.origin;
    println!(
        "valid consistency proof: the tree of {} leaves is a prefix of the tree of {} leaves \
         (log {origin:?}, key {})",
        p.old_size,
        p.new_size,
        to_hex(key.as_bytes())
    );
    for (side, size, root, by) in [
        ("old", p.old_size, &p.old_root, old_by),
        ("new", p.new_size, &p.new_root, new_by),
    ] {
        match by {
            Some(path) => println!(
                "  {side} root {} at size {size}: signed, checkpoint {}",
                to_hex(&root.0),
                path.display()
            ),
            None => println!(
                "  {side} root {} at size {size}: taken from the proof, NOT signed (give its \
                 checkpoint with another --checkpoint)",
                to_hex(&root.0)
            ),
        }
    }
    Ok(())
}
