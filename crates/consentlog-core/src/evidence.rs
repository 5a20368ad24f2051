//! Evidence that a log lied (docs/FORMAT.md §16): conclusive by itself, checkable by anyone with
//! the log's public key. Either two checkpoints that cannot both be honest, or one signed
//! checkpoint with public leaves, each proven included under it, that break a rule every
//! honest log keeps. A failed consistency proof alone is not evidence (anyone can send a bad
//! proof); a leaf that differs between two checkpoints is.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::hash::{hex_array, to_hex, Hash, HexHash};
use super::leaf::{Leaf, LeafError};
use super::map::{self, MapProof, MapValue, StateMap};
use super::note::{self, SignedCheckpoint};
use super::proof::ProvenLeaf;
use super::tlog::{check_consistency, implied_roots, MemoryTree, Sha256Hasher, TreeSize};

/// The `format` of an evidence file.
pub const EVIDENCE_FORMAT: &str = "consentlog-evidence/v2";

/// A portable evidence file: the log's key and what it signed that cannot be honest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub format: String,
    #[serde(with = "hex_array")]
    pub log_key: [u8; 32],
    pub claim: Claim,
}

/// What the evidence shows. Every leaf is proven included under the checkpoint it is given
/// with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Claim {
    /// Two checkpoints of the same size with different roots (a fork).
    SameSizeDifferentRoots { first: String, second: String },
    /// Two checkpoints whose trees hold different leaves at the same index (so the larger does
    /// not extend the smaller).
    DifferentLeaves {
        first: String,
        second: String,
        first_leaf: ProvenLeaf,
        second_leaf: ProvenLeaf,
    },
    /// A smaller tree (`first`) and a larger one (`second`) where the log's own consistency
    /// proof between them leads to `second`'s root from another root of the first
    /// `first.size` leaves than `first`'s: the larger tree does not extend the smaller. (A
    /// consistency proof commits to both roots; a second pair leading to one new root would
    /// be a SHA-256 collision.)
    NotAPrefix {
        first: String,
        second: String,
        /// The root of `second`'s first `first.size` leaves, as the proof shows it.
        #[serde(with = "hex_array")]
        prefix_root: Hash,
        consistency: Vec<HexHash>,
    },
    /// An event leaf of key K before a map leaf whose map gives K an older index (or none).
    StaleMapValue {
        checkpoint: String,
        event: ProvenLeaf,
        map_leaf: ProvenLeaf,
        map: MapProof,
    },
    /// A map leaf whose map gives K a value that is not an event leaf of K before it: an index
    /// at or after the map leaf, or one whose leaf (`named`, proven) is another.
    WrongMapValue {
        checkpoint: String,
        map_leaf: ProvenLeaf,
        #[serde(with = "hex_array")]
        key: Hash,
        map: MapProof,
        /// The leaf at the index the map gives (null when that index is not before the map
        /// leaf, which shows the lie by itself).
        #[serde(deserialize_with = "Option::deserialize")]
        named: Option<ProvenLeaf>,
    },
    /// Two leaves out of time order around a map leaf: a leaf after a map leaf at or before its
    /// time, or an event leaf before a map leaf and later than it.
    TimeViolation {
        checkpoint: String,
        earlier: ProvenLeaf,
        later: ProvenLeaf,
    },
    /// Two event leaves of one key naming the same `prev` (a fork of the key's chain: a
    /// re-logged event, or a hidden one).
    ChainFork {
        checkpoint: String,
        first: ProvenLeaf,
        second: ProvenLeaf,
    },
    /// A map leaf whose root is not the map replayed from the event leaves before it: every
    /// leaf up to the map leaf, and a consistency proof from them to the checkpoint.
    MapRootMismatch {
        checkpoint: String,
        #[serde(with = "hex_list")]
        leaves: Vec<Vec<u8>>,
        consistency: Vec<HexHash>,
    },
}

impl Claim {
    /// The kind's name, as in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Claim::SameSizeDifferentRoots { .. } => "same_size_different_roots",
            Claim::DifferentLeaves { .. } => "different_leaves",
            Claim::NotAPrefix { .. } => "not_a_prefix",
            Claim::StaleMapValue { .. } => "stale_map_value",
            Claim::WrongMapValue { .. } => "wrong_map_value",
            Claim::TimeViolation { .. } => "time_violation",
            Claim::ChainFork { .. } => "chain_fork",
            Claim::MapRootMismatch { .. } => "map_root_mismatch",
        }
    }
}

mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| crate::hash::from_hex(t).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// What comparing two checkpoints shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// One extends the other (or they are the same tree).
    Consistent,
    /// They cannot both be honest.
    Fork(Box<Evidence>),
    /// Sizes differ: a consistency proof from `old` to `new` is needed to decide.
    NeedProof { old: u64, new: u64 },
    /// The consistency proof given does not verify, and shows nothing conclusive either (see
    /// [`not_a_prefix`]): that is not evidence (anyone can send a bad proof), but the log has
    /// not shown that `new` extends `old`.
    Unproven { old: u64, new: u64 },
}

/// Why checkpoints or evidence could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("unknown evidence format {0:?}")]
    Format(String),
    #[error("{which} checkpoint: {err}")]
    Note {
        which: &'static str,
        err: note::NoteError,
    },
    #[error("the two checkpoints are for different origins")]
    Origins,
    #[error("the evidence does not show a lie: {0}")]
    NotEvidence(#[from] NotEvidence),
}

/// Why an evidence file, though well-formed, does not show a lie
/// ([`EvidenceError::NotEvidence`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotEvidence {
    #[error("log key is not an Ed25519 key")]
    BadKey,
    /// A leaf the evidence rests on is not included where it says.
    #[error("{what} is not included under its checkpoint: {reason}")]
    NotIncluded { what: &'static str, reason: String },
    /// A leaf is not of the kind the claim needs, or does not decode.
    #[error("{what}: {reason}")]
    Leaf { what: &'static str, reason: String },
    /// The map proof does not verify against the map leaf's root.
    #[error("map proof: {0}")]
    MapProof(String),
    /// The consistency proof does not lead from the roots it is given with to the second
    /// checkpoint's root.
    #[error("consistency proof: {0}")]
    Consistency(String),
    /// Everything verifies, and it is what an honest log would sign.
    #[error("{0}")]
    Honest(String),
}

fn open(
    key: &VerifyingKey,
    text: &str,
    which: &'static str,
) -> Result<SignedCheckpoint, EvidenceError> {
    note::open(text, key).map_err(|err| EvidenceError::Note { which, err })
}

fn open2(
    key: &VerifyingKey,
    a: &str,
    b: &str,
) -> Result<(SignedCheckpoint, SignedCheckpoint), EvidenceError> {
    let (a, b) = (open(key, a, "first")?, open(key, b, "second")?);
    if a.origin != b.origin {
        return Err(EvidenceError::Origins);
    }
    Ok((a, b))
}

fn evidence(key: &VerifyingKey, claim: Claim) -> Evidence {
    Evidence {
        format: EVIDENCE_FORMAT.into(),
        log_key: key.to_bytes(),
        claim,
    }
}

/// Compares two checkpoint notes signed by `key`; `proof` is a consistency proof from the
/// smaller to the larger tree, when one was obtained.
pub fn compare(
    key: &VerifyingKey,
    a: &str,
    b: &str,
    proof: Option<&[HexHash]>,
) -> Result<Comparison, EvidenceError> {
    let (a, b) = open2(key, a, b)?;
    let (old, new) = if a.size <= b.size { (a, b) } else { (b, a) };
    if old.size == new.size {
        return Ok(if old.root == new.root {
            Comparison::Consistent
        } else {
            Comparison::Fork(Box::new(evidence(
                key,
                Claim::SameSizeDifferentRoots {
                    first: old.note,
                    second: new.note,
                },
            )))
        });
    }
    let (o, n) = (old.size, new.size);
    let Some(path) = proof else {
        return Ok(Comparison::NeedProof { old: o, new: n });
    };
    let hashes: Vec<_> = path.iter().map(|h| h.0).collect();
    let ok = check_consistency(
        &Sha256Hasher,
        TreeSize(o),
        TreeSize(n),
        &old.root,
        &new.root,
        &hashes,
    );
    Ok(match ok {
        Ok(()) => Comparison::Consistent,
        Err(_) => match implied_roots(&Sha256Hasher, TreeSize(o), TreeSize(n), &hashes) {
            Some((prefix_root, _)) => {
                match not_a_prefix(key, &old.note, &new.note, prefix_root, path.to_vec()) {
                    Some(e) => Comparison::Fork(Box::new(e)),
                    None => Comparison::Unproven { old: o, new: n },
                }
            }
            None => Comparison::Unproven { old: o, new: n },
        },
    })
}

/// `not_a_prefix` evidence from a smaller and a larger checkpoint (`first`, `second`), the
/// root of the larger tree's first `first.size` leaves as the log shows it (`prefix_root`: for
/// a size that is not a power of two, [`implied_roots`] of the proof; for a power of two the
/// proof starts from that root, so it must come from the log otherwise, for example the root
/// of an inclusion proof at that size) and the log's consistency proof from that size to the
/// larger one; `None` unless it holds ([`check`]).
pub fn not_a_prefix(
    key: &VerifyingKey,
    first: &str,
    second: &str,
    prefix_root: Hash,
    consistency: Vec<HexHash>,
) -> Option<Evidence> {
    let e = evidence(
        key,
        Claim::NotAPrefix {
            first: first.into(),
            second: second.into(),
            prefix_root,
            consistency,
        },
    );
    check(&e).is_ok().then_some(e)
}

/// Evidence from two checkpoints and one leaf index proven under each with different leaves.
pub fn different_leaves(
    key: &VerifyingKey,
    first: &str,
    second: &str,
    first_leaf: ProvenLeaf,
    second_leaf: ProvenLeaf,
) -> Evidence {
    evidence(
        key,
        Claim::DifferentLeaves {
            first: first.into(),
            second: second.into(),
            first_leaf,
            second_leaf,
        },
    )
}

/// Evidence under one checkpoint (`claim` must be one of the single-checkpoint kinds).
pub fn of_claim(key: &VerifyingKey, claim: Claim) -> Evidence {
    evidence(key, claim)
}

/// The leaf's hash if it is included under `cp`, else why not.
fn included(
    what: &'static str,
    l: &ProvenLeaf,
    cp: &SignedCheckpoint,
) -> Result<Leaf, NotEvidence> {
    l.check_inclusion(cp)
        .map_err(|e| NotEvidence::NotIncluded {
            what,
            reason: e.to_string(),
        })?;
    Leaf::decode(&l.leaf).map_err(|e: LeafError| NotEvidence::Leaf {
        what,
        reason: e.to_string(),
    })
}

fn not_kind(what: &'static str, want: &str, got: &Leaf) -> NotEvidence {
    NotEvidence::Leaf {
        what,
        reason: format!("a {} leaf, not {want}", got.kind().as_str()),
    }
}

/// Re-checks an evidence file: every checkpoint is signed by its key, every leaf is included
/// where it says, and together they show what the claim says. Returns a sentence describing
/// the lie.
pub fn check(e: &Evidence) -> Result<String, EvidenceError> {
    if e.format != EVIDENCE_FORMAT {
        return Err(EvidenceError::Format(e.format.clone()));
    }
    let key = VerifyingKey::from_bytes(&e.log_key).map_err(|_| NotEvidence::BadKey)?;
    let honest = |why: String| Err(EvidenceError::from(NotEvidence::Honest(why)));
    match &e.claim {
        Claim::SameSizeDifferentRoots { first, second } => {
            let (a, b) = open2(&key, first, second)?;
            if a.size == b.size && a.root != b.root {
                Ok(format!(
                    "{} signed two different trees of size {}",
                    who(&a, &e.log_key),
                    a.size
                ))
            } else {
                honest("the checkpoints are not two different trees of one size".into())
            }
        }
        Claim::DifferentLeaves {
            first,
            second,
            first_leaf,
            second_leaf,
        } => {
            let (a, b) = open2(&key, first, second)?;
            included("first leaf", first_leaf, &a)?;
            included("second leaf", second_leaf, &b)?;
            if first_leaf.index == second_leaf.index && first_leaf.leaf != second_leaf.leaf {
                Ok(format!(
                    "{} signed trees of sizes {} and {} with different leaves at index {}",
                    who(&a, &e.log_key),
                    a.size,
                    b.size,
                    first_leaf.index
                ))
            } else {
                honest("the leaves are at different indices, or the same".into())
            }
        }
        Claim::NotAPrefix {
            first,
            second,
            prefix_root,
            consistency,
        } => {
            let (a, b) = open2(&key, first, second)?;
            if a.size >= b.size {
                return honest(format!(
                    "the first checkpoint ({} leaves) is not the smaller tree ({} leaves)",
                    a.size, b.size
                ));
            }
            let path: Vec<Hash> = consistency.iter().map(|h| h.0).collect();
            check_consistency(
                &Sha256Hasher,
                TreeSize(a.size),
                TreeSize(b.size),
                prefix_root,
                &b.root,
                &path,
            )
            .map_err(|e| NotEvidence::Consistency(e.to_string()))?;
            if *prefix_root == a.root {
                return honest("the larger tree extends the smaller".into());
            }
            Ok(format!(
                "{} signed a tree of {} leaves with root {} and one of {} leaves whose first {} \
                 leaves have root {}: the larger does not extend the smaller",
                who(&a, &e.log_key),
                a.size,
                to_hex(&a.root),
                b.size,
                a.size,
                to_hex(prefix_root)
            ))
        }
        Claim::StaleMapValue {
            checkpoint,
            event,
            map_leaf,
            map,
        } => {
            let cp = open(&key, checkpoint, "the")?;
            let ev = match included("event leaf", event, &cp)? {
                Leaf::Event(ev) => ev,
                other => return Err(not_kind("event leaf", "an event leaf", &other).into()),
            };
            let m = map_leaf_of(map_leaf, &cp)?;
            if event.index >= map_leaf.index {
                return honest("the event leaf is not before the map leaf".into());
            }
            let got =
                map::check(&m, &ev.key, map).map_err(|e| NotEvidence::MapProof(e.to_string()))?;
            match got {
                Some(v) if v.index >= event.index => {
                    honest("the map gives the key this event leaf or a later one".into())
                }
                got => Ok(format!(
                    "{}: the map leaf {} gives key {} {} although event leaf {} of that key \
                     comes before it",
                    who(&cp, &e.log_key),
                    map_leaf.index,
                    to_hex(&ev.key),
                    match got {
                        Some(v) => format!("the older index {}", v.index),
                        None => "no value".into(),
                    },
                    event.index
                )),
            }
        }
        Claim::WrongMapValue {
            checkpoint,
            map_leaf,
            key: k,
            map,
            named,
        } => {
            let cp = open(&key, checkpoint, "the")?;
            let m = map_leaf_of(map_leaf, &cp)?;
            let v = map::check(&m, k, map)
                .map_err(|e| NotEvidence::MapProof(e.to_string()))?
                .ok_or_else(|| NotEvidence::Honest("the map gives the key no value".into()))?;
            let lie = |what: String| {
                Ok(format!(
                    "{}: the map leaf {} gives key {} the value (index {}, leaf hash {}), {what}",
                    who(&cp, &e.log_key),
                    map_leaf.index,
                    to_hex(k),
                    v.index,
                    to_hex(&v.leaf_hash)
                ))
            };
            if v.index >= map_leaf.index {
                return lie("an index not before the map leaf".into());
            }
            let Some(n) = named else {
                return honest("no leaf at the index the map gives".into());
            };
            if n.index != v.index {
                return honest("the leaf given is not at the index the map gives".into());
            }
            let leaf = included("named leaf", n, &cp)?;
            match leaf {
                Leaf::Event(ev) if ev.key == *k && ev.leaf_hash() == v.leaf_hash => {
                    honest("the leaf at that index is the key's event leaf".into())
                }
                Leaf::Event(ev) if ev.key != *k => lie("but that leaf is another key's".into()),
                Leaf::Event(_) => lie("but that leaf has another hash".into()),
                other => lie(format!("but that leaf is a {} leaf", other.kind().as_str())),
            }
        }
        Claim::TimeViolation {
            checkpoint,
            earlier,
            later,
        } => {
            let cp = open(&key, checkpoint, "the")?;
            let (a, b) = (
                included("earlier leaf", earlier, &cp)?,
                included("later leaf", later, &cp)?,
            );
            if earlier.index >= later.index {
                return honest("the earlier leaf is not before the later one".into());
            }
            let violated = match (&a, &b) {
                (Leaf::Map(m), b) => b.time() <= m.time,
                (Leaf::Event(ev), Leaf::Map(m)) => ev.integrated_at > m.time,
                (Leaf::Genesis(g), b) => b.time() < g.genesis_time,
                _ => false,
            };
            if violated {
                Ok(format!(
                    "{}: leaf {} ({}, time {}) and leaf {} ({}, time {}) are out of time order",
                    who(&cp, &e.log_key),
                    earlier.index,
                    a.kind().as_str(),
                    a.time(),
                    later.index,
                    b.kind().as_str(),
                    b.time()
                ))
            } else {
                honest("the two leaves are in time order".into())
            }
        }
        Claim::ChainFork {
            checkpoint,
            first,
            second,
        } => {
            let cp = open(&key, checkpoint, "the")?;
            let a = included("first leaf", first, &cp)?;
            let b = included("second leaf", second, &cp)?;
            let (x, y) = match (&a, &b) {
                (Leaf::Event(x), Leaf::Event(y)) => (x, y),
                (Leaf::Event(_), other) | (other, _) => {
                    return Err(not_kind("leaf", "an event leaf", other).into())
                }
            };
            if first.index != second.index && x.key == y.key && x.prev == y.prev {
                Ok(format!(
                    "{}: event leaves {} and {} of key {} both follow {}",
                    who(&cp, &e.log_key),
                    first.index,
                    second.index,
                    to_hex(&x.key),
                    match x.prev {
                        Some(p) => format!("leaf {p}"),
                        None => "nothing (both claim to be the key's first)".into(),
                    }
                ))
            } else {
                honest("the leaves are not two of one key with the same prev".into())
            }
        }
        Claim::MapRootMismatch {
            checkpoint,
            leaves,
            consistency,
        } => {
            let cp = open(&key, checkpoint, "the")?;
            let Some(last) = leaves.last() else {
                return honest("no leaves".into());
            };
            let m = Leaf::decode_map(last).map_err(|e| NotEvidence::Leaf {
                what: "last leaf",
                reason: e.to_string(),
            })?;
            let n = leaves.len() as u64;
            let mut tree = MemoryTree::new(Sha256Hasher);
            let mut map = StateMap::new();
            let mut values = Vec::new();
            for (i, bytes) in leaves.iter().enumerate() {
                tree.push(bytes);
                if let Ok(Leaf::Event(ev)) = Leaf::decode(bytes) {
                    values.push((
                        ev.key,
                        MapValue {
                            index: i as u64,
                            leaf_hash: ev.leaf_hash(),
                        },
                    ));
                }
            }
            map.insert_batch(&values);
            let path: Vec<Hash> = consistency.iter().map(|h| h.0).collect();
            let proven = if n == cp.size {
                tree.root() == cp.root && path.is_empty()
            } else {
                check_consistency(
                    &Sha256Hasher,
                    TreeSize(n),
                    TreeSize(cp.size),
                    &tree.root(),
                    &cp.root,
                    &path,
                )
                .is_ok()
            };
            if !proven {
                return Err(NotEvidence::NotIncluded {
                    what: "the leaves",
                    reason: "they are not the first leaves of the checkpoint's tree".into(),
                }
                .into());
            }
            if map.root() == m.map_root {
                honest("the map leaf's root is the replayed map's".into())
            } else {
                Ok(format!(
                    "{}: the map leaf {} does not have the root of the map of the {} leaves \
                     before it",
                    who(&cp, &e.log_key),
                    n - 1,
                    n - 1
                ))
            }
        }
    }
}

/// The map root of `l`, a map leaf included under `cp`.
fn map_leaf_of(l: &ProvenLeaf, cp: &SignedCheckpoint) -> Result<Hash, NotEvidence> {
    match included("map leaf", l, cp)? {
        Leaf::Map(m) => Ok(m.map_root),
        other => Err(not_kind("map leaf", "a map leaf", &other)),
    }
}

fn who(cp: &SignedCheckpoint, key: &[u8; 32]) -> String {
    format!("log {:?} (key {})", cp.origin, to_hex(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaf::{EventLeaf, MapLeaf, LEAF_VERSION};
    use crate::opening::Opening;
    use crate::testutil::{Log, T0};
    use crate::tlog::prove_consistency;

    fn key(log: &Log) -> VerifyingKey {
        log.key.verifying_key()
    }

    fn not_evidence(e: &Evidence) -> bool {
        matches!(check(e), Err(EvidenceError::NotEvidence(_)))
    }

    /// Every single-bit change of every leaf byte makes the evidence not hold.
    fn flips_refused(e: &Evidence, leaves: impl Fn(&mut Claim) -> Vec<&mut Vec<u8>>) {
        let n = {
            let mut c = e.claim.clone();
            leaves(&mut c).iter().map(|l| l.len()).collect::<Vec<_>>()
        };
        for (which, len) in n.into_iter().enumerate() {
            for bit in 0..len * 8 {
                let mut bad = e.clone();
                let mut ls = leaves(&mut bad.claim);
                ls[which][bit / 8] ^= 1 << (bit % 8);
                drop(ls);
                assert!(check(&bad).is_err(), "leaf {which} bit {bit} still holds");
            }
        }
    }

    #[test]
    fn two_checkpoints() {
        let (mut a, _) = Log::chain_of_two();
        let cp_a = a.checkpoint(T0 + 120_000);
        // Same key, same size, another leaf at index 2.
        let mut b = Log::new();
        let first = a.openings[&1].event.clone();
        b.append(first.clone());
        b.append(b.event(Some(&first), true, T0 + 60_000));
        let cp_b = b.checkpoint(T0 + 120_000);
        let k = key(&a);
        let Comparison::Fork(e) = compare(&k, &cp_a.note, &cp_b.note, None).unwrap() else {
            panic!("a fork")
        };
        assert!(check(&e).unwrap().contains("two different trees of size 4"));
        // The same index proven under each.
        let d = different_leaves(
            &k,
            &cp_a.note,
            &cp_b.note,
            a.proven_leaf(2),
            b.proven_leaf(2),
        );
        assert!(check(&d).unwrap().contains("different leaves at index 2"));
        let same = different_leaves(
            &k,
            &cp_a.note,
            &cp_b.note,
            a.proven_leaf(1),
            b.proven_leaf(1),
        );
        assert!(not_evidence(&same));
        flips_refused(&d, |c| match c {
            Claim::DifferentLeaves {
                first_leaf,
                second_leaf,
                ..
            } => vec![&mut first_leaf.leaf, &mut second_leaf.leaf],
            _ => unreachable!(),
        });

        // Honest growth: a valid proof is consistent; a bad one is not evidence, only unproven.
        let small = a.sign();
        a.append(a.event(None, true, T0 + 200_000));
        let big = a.checkpoint(T0 + 300_000);
        assert_eq!(
            compare(&k, &small.note, &big.note, None).unwrap(),
            Comparison::NeedProof {
                old: small.size,
                new: big.size
            }
        );
        let p: Vec<HexHash> = prove_consistency(
            &Sha256Hasher,
            &a.tree,
            TreeSize(small.size),
            TreeSize(big.size),
        )
        .unwrap()
        .into_iter()
        .map(HexHash)
        .collect();
        assert_eq!(
            compare(&k, &small.note, &big.note, Some(&p)).unwrap(),
            Comparison::Consistent
        );
        assert_eq!(
            compare(&k, &small.note, &big.note, Some(&[HexHash([0; 32])])).unwrap(),
            Comparison::Unproven {
                old: small.size,
                new: big.size
            }
        );
    }

    /// A fork of two sizes: a larger tree that does not extend a smaller one. The log's own
    /// consistency proof between them shows it: by itself when the smaller size is not a
    /// power of two, with the larger tree's root at that size when it is.
    #[test]
    fn a_larger_tree_that_does_not_extend_the_smaller() {
        let (a, _) = Log::chain_of_two();
        let small = a.sign();
        assert_eq!(small.size, 3);
        // The same key and first event; another second event, and one more.
        let first = a.openings[&1].event.clone();
        let mut b = Log::new();
        b.append(first.clone());
        let other = b.event(Some(&first), true, T0 + 60_000);
        b.append(other.clone());
        b.append(b.event(Some(&other), false, T0 + 90_000));
        let big = b.checkpoint(T0 + 120_000);
        assert_eq!(big.size, 5);
        let k = key(&a);
        let proof = |old: u64| -> Vec<HexHash> {
            prove_consistency(&Sha256Hasher, &b.tree, TreeSize(old), TreeSize(big.size))
                .unwrap()
                .into_iter()
                .map(HexHash)
                .collect()
        };
        let path = proof(3);
        for (x, y) in [(&small, &big), (&big, &small)] {
            let Comparison::Fork(e) = compare(&k, &x.note, &y.note, Some(&path)).unwrap() else {
                panic!("a fork")
            };
            assert_eq!(e.claim.kind(), "not_a_prefix");
            assert!(check(&e).unwrap().contains("does not extend the smaller"));
        }
        let Comparison::Fork(e) = compare(&k, &small.note, &big.note, Some(&path)).unwrap() else {
            unreachable!()
        };
        // Every single-bit change of the file is refused, or decodes to the same evidence.
        let json = serde_json::to_string(&*e).unwrap().into_bytes();
        for bit in 0..json.len() * 8 {
            let mut bad = json.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let Ok(text) = std::str::from_utf8(&bad) else {
                continue;
            };
            if let Ok(x) = serde_json::from_str::<Evidence>(text) {
                assert!(x == *e || check(&x).is_err(), "bit {bit} still holds");
            }
        }
        // The claimed root must be the one the proof leads from, and not the smaller's.
        assert_eq!(
            not_a_prefix(&k, &small.note, &big.note, a.tree.root(), path.clone()),
            None
        );
        assert_eq!(
            not_a_prefix(&k, &big.note, &small.note, [1; 32], path.clone()),
            None
        );
        // Size 4 is a power of two: the proof starts from the root, which the log gives.
        let mut a4 = a;
        let small4 = a4.checkpoint(T0 + 120_000);
        assert_eq!(small4.size, 4);
        let path4 = proof(4);
        assert_eq!(
            compare(&k, &small4.note, &big.note, Some(&path4)).unwrap(),
            Comparison::Unproven { old: 4, new: 5 }
        );
        let root4 = crate::tlog::tree_hash::tree_hash(&Sha256Hasher, &b.tree, TreeSize(4)).unwrap();
        let e4 = not_a_prefix(&k, &small4.note, &big.note, root4, path4.clone()).expect("holds");
        assert!(check(&e4)
            .unwrap()
            .contains("whose first 4 leaves have root"));
        assert_eq!(
            not_a_prefix(&k, &small4.note, &big.note, a4.tree.root(), path4),
            None
        );
    }

    /// The map-root lie of issue 11 (attack 1): a map leaf that still shows the opt-in after
    /// the opt-out. Shown three ways: the stale value, the replay, and (for a value naming a
    /// map leaf) the wrong value.
    #[test]
    fn map_lies() {
        let (mut log, k) = Log::chain_of_two();
        let first = match &log.leaves[1] {
            Leaf::Event(e) => *e,
            _ => unreachable!(),
        };
        let mut stale = StateMap::new();
        stale.insert(
            k,
            MapValue {
                index: 1,
                leaf_hash: first.leaf_hash(),
            },
        );
        log.push(Leaf::Map(MapLeaf {
            version: LEAF_VERSION,
            time: T0 + 120_000,
            map_root: stale.root(),
        }));
        let cp = log.sign();
        let lk = key(&log);
        let e = of_claim(
            &lk,
            Claim::StaleMapValue {
                checkpoint: cp.note.clone(),
                event: log.proven_leaf(2),
                map_leaf: log.proven_leaf(3),
                map: stale.prove(&k),
            },
        );
        assert!(check(&e).unwrap().contains("the older index 1"), "{e:?}");
        // The first event is not after the stale value: no lie shown.
        let mut honest = e.clone();
        if let Claim::StaleMapValue { event, .. } = &mut honest.claim {
            *event = log.proven_leaf(1);
        }
        assert!(not_evidence(&honest));
        flips_refused(&e, |c| match c {
            Claim::StaleMapValue {
                event, map_leaf, ..
            } => {
                vec![&mut event.leaf, &mut map_leaf.leaf]
            }
            _ => unreachable!(),
        });

        let leaves: Vec<Vec<u8>> = log.leaves.iter().map(Leaf::to_bytes).collect();
        let r = of_claim(
            &lk,
            Claim::MapRootMismatch {
                checkpoint: cp.note.clone(),
                leaves: leaves.clone(),
                consistency: vec![],
            },
        );
        assert!(
            check(&r).unwrap().contains("does not have the root"),
            "{r:?}"
        );
        // Up to the honest first map leaf of another log it holds no lie.
        let (mut honest_log, _) = Log::chain_of_two();
        let hcp = honest_log.checkpoint(T0 + 120_000);
        let ok = of_claim(
            &key(&honest_log),
            Claim::MapRootMismatch {
                checkpoint: hcp.note,
                leaves: honest_log.leaves.iter().map(Leaf::to_bytes).collect(),
                consistency: vec![],
            },
        );
        assert!(not_evidence(&ok));
        // A prefix with its consistency proof to a later checkpoint.
        log.append(log.event(None, false, T0 + 130_000));
        let later = log.sign();
        let path = prove_consistency(&Sha256Hasher, &log.tree, TreeSize(4), TreeSize(later.size))
            .unwrap()
            .into_iter()
            .map(HexHash)
            .collect();
        let r2 = of_claim(
            &lk,
            Claim::MapRootMismatch {
                checkpoint: later.note.clone(),
                leaves: leaves.clone(),
                consistency: path,
            },
        );
        assert!(check(&r2).is_ok());
        let mut cut = r2.clone();
        if let Claim::MapRootMismatch { consistency, .. } = &mut cut.claim {
            consistency.pop();
        }
        assert!(not_evidence(&cut));

        // A value naming a map leaf (index 3 is the map leaf itself: not before it).
        let mut bogus = StateMap::new();
        bogus.insert(
            k,
            MapValue {
                index: 1,
                leaf_hash: [7; 32],
            },
        );
        let mut log2 = Log::new();
        let ev = log.openings[&1].event.clone();
        log2.append(ev);
        log2.push(Leaf::Map(MapLeaf {
            version: LEAF_VERSION,
            time: T0 + 1_000,
            map_root: bogus.root(),
        }));
        let cp2 = log2.sign();
        let w = of_claim(
            &key(&log2),
            Claim::WrongMapValue {
                checkpoint: cp2.note.clone(),
                map_leaf: log2.proven_leaf(2),
                key: k,
                map: bogus.prove(&k),
                named: Some(log2.proven_leaf(1)),
            },
        );
        assert!(check(&w).unwrap().contains("another hash"), "{w:?}");
    }

    /// The re-logged opt-out of issue 11 (attack 2): a second leaf naming the same prev.
    #[test]
    fn chain_fork_and_time_violation() {
        let (mut log, k) = Log::chain_of_two();
        let copy = Opening {
            nonce: [9; 32],
            ..log.openings[&2].clone()
        };
        let forked = EventLeaf {
            integrated_at: T0 + 60_400,
            ..copy.leaf(T0 + 60_400, k, Some(1))
        };
        log.append_leaf(forked, copy);
        let cp = log.checkpoint(T0 + 120_000);
        let lk = key(&log);
        let e = of_claim(
            &lk,
            Claim::ChainFork {
                checkpoint: cp.note.clone(),
                first: log.proven_leaf(2),
                second: log.proven_leaf(3),
            },
        );
        assert!(check(&e).unwrap().contains("both follow leaf 1"), "{e:?}");
        let mut same = e.clone();
        if let Claim::ChainFork { second, .. } = &mut same.claim {
            *second = log.proven_leaf(2);
        }
        assert!(not_evidence(&same));
        let mut linked = e.clone();
        if let Claim::ChainFork { first, second, .. } = &mut linked.claim {
            *first = log.proven_leaf(1);
            *second = log.proven_leaf(2);
        }
        assert!(not_evidence(&linked));

        // A leaf after a map leaf, not later than it.
        let o = log.openings[&1].clone();
        log.append_leaf(o.leaf(T0 + 120_000, [5; 32], None), o);
        let cp = log.sign();
        let t = of_claim(
            &lk,
            Claim::TimeViolation {
                checkpoint: cp.note.clone(),
                earlier: log.proven_leaf(4),
                later: log.proven_leaf(5),
            },
        );
        assert!(check(&t).unwrap().contains("out of time order"), "{t:?}");
        let fine = of_claim(
            &lk,
            Claim::TimeViolation {
                checkpoint: cp.note,
                earlier: log.proven_leaf(1),
                later: log.proven_leaf(4),
            },
        );
        assert!(not_evidence(&fine));
    }

    #[test]
    fn envelope_errors() {
        let (mut log, _) = Log::chain_of_two();
        let cp = log.checkpoint(T0 + 120_000);
        let e = of_claim(
            &key(&log),
            Claim::SameSizeDifferentRoots {
                first: cp.note.clone(),
                second: cp.note.clone(),
            },
        );
        assert!(not_evidence(&e));
        let mut bad = e.clone();
        bad.format = "consentlog-evidence/v1".into();
        assert_eq!(
            check(&bad),
            Err(EvidenceError::Format("consentlog-evidence/v1".into()))
        );
        let not_a_point = (0..=255u8)
            .map(|i| [i; 32])
            .find(|k| VerifyingKey::from_bytes(k).is_err())
            .expect("some byte strings are not points");
        let mut bad = e.clone();
        bad.log_key = not_a_point;
        assert_eq!(check(&bad), Err(NotEvidence::BadKey.into()));
        // JSON: the claim is tagged by kind, and strict.
        let json = serde_json::to_string(&e).unwrap();
        assert!(
            json.contains(r#""kind":"same_size_different_roots""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Evidence>(&json).unwrap(), e);
        let extra = json.replacen(r#""kind""#, r#""x":1,"kind""#, 1);
        assert!(serde_json::from_str::<Evidence>(&extra).is_err());
        assert_eq!(e.claim.kind(), "same_size_different_roots");
    }
}
