//! What a client remembers between runs: the last checkpoint it saw per log key, so that a
//! log showing it a tree that does not extend the one it saw before is caught
//! (`verify-history` and `audit --url` use it). A small JSON file, replaced atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use crate::core::evidence::{self, compare, Comparison, Evidence};
use crate::core::hash::{to_hex, HexHash};

/// The default state file: `$CONSENTLOG_STATE`, else `$HOME/.consentlog/checkpoints.json`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CONSENTLOG_STATE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".consentlog").join("checkpoints.json"))
}

/// What comparing a new checkpoint with the remembered one gave. `seen` is the size of the
/// checkpoint remembered, `shown` the size of the one shown now.
#[derive(Debug)]
pub enum Seen {
    /// First checkpoint seen for this key, or it extends (or equals) the last one: remembered.
    Extends,
    /// Larger than the one remembered, and no consistency proof could be had: not checked, not
    /// remembered.
    Unchecked { seen: u64, shown: u64 },
    /// The log's consistency proof between the two does not verify: not evidence, but the log
    /// has not shown that it did not fork.
    Unproven { seen: u64, shown: u64 },
    /// Smaller than the checkpoint remembered: a stale view (whatever happened after it is not
    /// shown), or a truncated prefix. `proven` if it was also shown to be a prefix of the one
    /// remembered. The remembered one is kept.
    Stale { seen: u64, shown: u64, proven: bool },
    /// The log showed a tree that does not extend the one seen before.
    Fork(Box<Evidence>),
}

/// How the caller can show that one of two checkpoints extends the other.
pub enum Proven {
    /// A consistency proof from the smaller tree to the larger, from the log, and the root
    /// the log gives for its first (smaller size) leaves when that size is a power of two (the
    /// proof then starts from that root: see `evidence::not_a_prefix`).
    Path {
        proof: Vec<HexHash>,
        prefix_root: Option<crate::core::hash::Hash>,
    },
    /// The caller recomputed the smaller tree's root from the very leaves under the larger
    /// checkpoint (an audit of an export, replaying both), and it matched.
    Replayed,
}

/// The checkpoint remembered for `key` in the state file at `path`, if any.
pub fn remembered(path: &Path, key: &VerifyingKey) -> Result<Option<String>, String> {
    Ok(load(path)?.remove(&to_hex(key.as_bytes())))
}

fn load(path: &Path) -> Result<BTreeMap<String, String>, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .map_err(|e| format!("state file {} is damaged: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("state file {}: {e}", path.display())),
    }
}

fn save(path: &Path, map: &BTreeMap<String, String>) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_string_pretty(map).expect("json"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("state file {}: {e}", path.display()))
}

/// Compares `note` with the last checkpoint remembered for `key`, and remembers `note` when
/// it extends it. `prove(smaller, larger)` shows consistency when sizes differ, if it can.
pub fn check_and_remember(
    path: &Path,
    key: &VerifyingKey,
    note: &str,
    prove: impl FnOnce(u64, u64) -> Option<Proven>,
) -> Result<Seen, String> {
    let mut map = load(path)?;
    let id = to_hex(key.as_bytes());
    let size = |n: &str| crate::core::note::open(n, key).map(|c| c.size).unwrap_or(0);
    let shown = size(note);
    let seen = match map.get(&id) {
        None => Seen::Extends,
        Some(old) => {
            let seen = size(old);
            // Consistent (one extends the other): the view is stale if it is the smaller one.
            let consistent = |proven| {
                if shown < seen {
                    Seen::Stale {
                        seen,
                        shown,
                        proven,
                    }
                } else {
                    Seen::Extends
                }
            };
            match compare(key, old, note, None).map_err(|e| e.to_string())? {
                Comparison::Consistent => consistent(true),
                Comparison::Fork(e) => Seen::Fork(e),
                Comparison::Unproven { .. } => Seen::Unproven { seen, shown },
                Comparison::NeedProof { old: o, new: n } => match prove(o, n) {
                    None if shown < seen => Seen::Stale {
                        seen,
                        shown,
                        proven: false,
                    },
                    None => Seen::Unchecked { seen, shown },
                    Some(Proven::Replayed) => consistent(true),
                    Some(Proven::Path { proof, prefix_root }) => {
                        match compare(key, old, note, Some(&proof)).map_err(|e| e.to_string())? {
                            Comparison::Fork(e) => Seen::Fork(e),
                            Comparison::Unproven { .. } => {
                                let (small, large) = if seen < shown {
                                    (old.as_str(), note)
                                } else {
                                    (note, old.as_str())
                                };
                                match prefix_root.and_then(|r| {
                                    evidence::not_a_prefix(key, small, large, r, proof.clone())
                                }) {
                                    Some(e) => Seen::Fork(Box::new(e)),
                                    None => Seen::Unproven { seen, shown },
                                }
                            }
                            _ => consistent(true),
                        }
                    }
                },
            }
        }
    };
    // Remember the larger of the two trees (never step back to a smaller one).
    if matches!(seen, Seen::Extends) {
        map.insert(id, note.to_string());
        save(path, &map)?;
    }
    Ok(seen)
}

/// The receipts file beside the state file (`receipts.json`): the last receipt held per log
/// key and state key, so `grant`/`revoke` can check that the log chained a new event to the
/// previous one they were given a receipt for.
pub fn receipts_path(state: Option<&Path>) -> Option<PathBuf> {
    state
        .map(Path::to_path_buf)
        .or_else(default_path)
        .map(|p| p.with_file_name("receipts.json"))
}

/// The last receipt held for one state key of one log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Held {
    pub index: u64,
    pub seq: u64,
    pub leaf_hash: HexHash,
}

/// Why a new receipt does not continue the one held for its state key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error(
        "the log chained this event (seq {seq}) after leaf {named:?}, but the previous receipt \
         held for this consent is leaf {held} (seq {held_seq}): the log hid or reordered an event"
    )]
    Prev {
        seq: u64,
        named: Option<u64>,
        held: u64,
        held_seq: u64,
    },
    #[error(
        "the log gave this event seq {seq} at leaf {index}, but a receipt for seq {held_seq} at \
         leaf {held} is already held: the log reused a seq"
    )]
    Seq {
        seq: u64,
        index: u64,
        held: u64,
        held_seq: u64,
    },
    #[error(
        "the log showed two different leaves at index {index}: this receipt's and the one held \
         from before (seq {held_seq}): the log forked"
    )]
    Fork { index: u64, held_seq: u64 },
    #[error("receipts file: {0}")]
    File(String),
}

type HeldMap = BTreeMap<String, BTreeMap<String, Held>>;

/// Checks a verified receipt (`index`, its leaf hash, `seq`, the leaf's `prev`, for state key
/// `key` of the log `log`) against the receipt held for that state key, then holds it. Another
/// leaf at the held index is a fork. A receipt for the next
/// seq must name the held one's index as its prev; one for a later seq (another device's
/// decisions came between) cannot be checked and is held; the same receipt again is fine.
pub fn check_and_hold_receipt(
    path: &Path,
    log: &VerifyingKey,
    key: &[u8; 32],
    index: u64,
    leaf_hash: &[u8; 32],
    seq: u64,
    prev: Option<u64>,
) -> Result<(), ChainError> {
    let file_err = |p: &Path, e: std::io::Error| ChainError::File(format!("{}: {e}", p.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    }
    // One reader-writer at a time (several grant/revoke processes may run at once).
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| file_err(&lock_path, e))?;
    lock.lock().map_err(|e| file_err(&lock_path, e))?;
    let mut map: HeldMap = match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .map_err(|e| ChainError::File(format!("{} is damaged: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HeldMap::new(),
        Err(e) => return Err(ChainError::File(format!("{}: {e}", path.display()))),
    };
    let per_log = map.entry(to_hex(log.as_bytes())).or_default();
    let k = to_hex(key);
    if let Some(h) = per_log.get(&k).copied() {
        if h.index == index {
            if h.seq == seq && h.leaf_hash.0 == *leaf_hash {
                return Ok(());
            }
            return Err(ChainError::Fork {
                index,
                held_seq: h.seq,
            });
        }
        if seq <= h.seq || index <= h.index {
            return Err(ChainError::Seq {
                seq,
                index,
                held: h.index,
                held_seq: h.seq,
            });
        }
        if seq == h.seq + 1 && prev != Some(h.index) {
            return Err(ChainError::Prev {
                seq,
                named: prev,
                held: h.index,
                held_seq: h.seq,
            });
        }
    }
    per_log.insert(
        k,
        Held {
            index,
            seq,
            leaf_hash: HexHash(*leaf_hash),
        },
    );
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_string_pretty(&map).expect("json"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| ChainError::File(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_receipts_catch_a_broken_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("receipts.json");
        let log = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        let (k, other) = ([7; 32], [8; 32]);
        let hold = |key: &[u8; 32], index, leaf: u8, seq, prev| {
            check_and_hold_receipt(&path, &log, key, index, &[leaf; 32], seq, prev)
        };
        // seq 0 at leaf 2, then seq 1 chained to it: fine; the same receipt again: fine.
        hold(&k, 2, 2, 0, None).unwrap();
        hold(&k, 5, 5, 1, Some(2)).unwrap();
        hold(&k, 5, 5, 1, Some(2)).unwrap();
        // seq 2 chained to another leaf than the held one.
        let e = hold(&k, 9, 9, 2, Some(4)).unwrap_err();
        assert!(matches!(e, ChainError::Prev { held: 5, .. }), "{e}");
        // Another leaf at the held index: a fork.
        let e = hold(&k, 5, 6, 1, Some(2)).unwrap_err();
        assert!(matches!(e, ChainError::Fork { index: 5, .. }), "{e}");
        // A seq the log already used.
        let e = hold(&k, 7, 7, 1, Some(2)).unwrap_err();
        assert!(matches!(e, ChainError::Seq { held: 5, .. }), "{e}");
        // A later seq (decisions from elsewhere came between) cannot be checked, and is held.
        hold(&k, 12, 12, 4, Some(11)).unwrap();
        let e = hold(&k, 13, 13, 5, Some(10)).unwrap_err();
        assert!(matches!(e, ChainError::Prev { held: 12, .. }), "{e}");
        // Another state key is its own chain; another log key too.
        hold(&other, 3, 3, 0, None).unwrap();
        let log2 = ed25519_dalek::SigningKey::from_bytes(&[2; 32]).verifying_key();
        check_and_hold_receipt(&path, &log2, &k, 2, &[1; 32], 0, None).unwrap();
    }
}
