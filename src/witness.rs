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

/// What comparing a new checkpoint with the remembered one gave.
#[derive(Debug)]
pub enum Seen {
    /// First checkpoint seen for this key, or it extends (or equals) the last one.
    Extends,
    /// Sizes differ and no consistency proof could be had: not checked.
    Unchecked { old: u64, new: u64 },
    /// The log's consistency proof between the two does not verify: not evidence, but the log
    /// has not shown that it did not fork.
    Unproven { old: u64, new: u64 },
    /// Consistent, but older than the checkpoint remembered: a stale view (whatever happened
    /// after it is not shown). The remembered one is kept.
    Stale { seen: u64, shown: u64 },
    /// The log showed a tree that does not extend the one seen before.
    Fork(Box<Evidence>),
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
/// it extends it. `prove(old, new)` fetches a consistency proof when sizes differ.
pub fn check_and_remember(
    path: &Path,
    key: &VerifyingKey,
    note: &str,
    prove: impl FnOnce(u64, u64) -> Option<Vec<HexHash>>,
) -> Result<Seen, String> {
    let mut map = load(path)?;
    let id = to_hex(key.as_bytes());
    let seen = match map.get(&id) {
        None => Seen::Extends,
        Some(old) => match compare(key, old, note, None).map_err(|e| e.to_string())? {
            Comparison::Consistent => Seen::Extends,
            Comparison::Fork(e) => Seen::Fork(e),
            Comparison::Unproven { old: o, new: n } => Seen::Unproven { old: o, new: n },
            Comparison::NeedProof { old: o, new: n } => match prove(o, n) {
                None => Seen::Unchecked { old: o, new: n },
                Some(p) => match compare(key, old, note, Some(&p)).map_err(|e| e.to_string())? {
                    Comparison::Fork(e) => Seen::Fork(e),
                    Comparison::Unproven { old: o, new: n } => Seen::Unproven { old: o, new: n },
                    _ => Seen::Extends,
                },
            },
        },
    };
    let size = |n: &str| crate::core::note::open(n, key).map(|c| c.size).unwrap_or(0);
    let seen = match (seen, map.get(&id)) {
        (Seen::Extends, Some(old)) if size(note) < size(old) => Seen::Stale {
            seen: size(old),
            shown: size(note),
        },
        (seen, _) => seen,
    };
    // Remember the larger of the two trees (never step back to a smaller one).
    let newer = match map.get(&id) {
        None => true,
        Some(old) => size(note) >= size(old),
    };
    if matches!(seen, Seen::Extends) && newer {
        map.insert(id, note.to_string());
        save(path, &map)?;
    }
    Ok(seen)
}
