//! What a client remembers between runs: the last checkpoint it saw per log key, so that a
//! log showing it a tree that does not extend the one it saw before is caught
//! (`verify-history` and `audit --url` use it). A small JSON file, replaced atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use crate::core::evidence::{compare, Comparison, Evidence};
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
    /// A consistency proof from the smaller tree to the larger, from the log.
    Path(Vec<HexHash>),
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
                    Some(Proven::Path(p)) => {
                        match compare(key, old, note, Some(&p)).map_err(|e| e.to_string())? {
                            Comparison::Fork(e) => Seen::Fork(e),
                            Comparison::Unproven { .. } => Seen::Unproven { seen, shown },
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
