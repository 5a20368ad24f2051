//! Finding conclusive evidence in a log's public leaves (docs/FORMAT.md §16): an auditor holding
//! a signed checkpoint feeds the leaves of its tree in order ([`Finder::push`]); at the end
//! ([`Finder::finish`]) the first broken rule found becomes an [`Evidence`] file that anyone can
//! check with the log key alone (`evidence::check`): two event leaves of one key with the same
//! `prev` (`chain_fork`), two leaves out of time order around a map leaf (`time_violation`), or
//! a map leaf whose root is not the replayed map (`map_root_mismatch`).
//!
//! The leaves are held in memory until the end (the evidence of a map root needs every leaf up
//! to that map leaf), so this is for one checkpoint's tree at a time.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;

use crate::evidence::{of_claim, Claim, Evidence};
use crate::hash::{Hash, HexHash};
use crate::leaf::Leaf;
use crate::map::{MapValue, StateMap};
use crate::note::SignedCheckpoint;
use crate::proof::ProvenLeaf;
use crate::tlog::{prove_consistency, prove_inclusion, LeafIndex, MemoryTree, Sha256Hasher};

/// What was found first, by leaf index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    ChainFork { first: u64, second: u64 },
    TimeViolation { earlier: u64, later: u64 },
    MapRoot { map: u64 },
}

/// Why the leaves fed cannot be judged against the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FinderError {
    #[error("{got} leaves were given, the checkpoint has {want}")]
    Count { got: u64, want: u64 },
    #[error("the leaves given are not the checkpoint's: their root differs")]
    Root,
}

/// Replays leaves for evidence against one signed checkpoint.
pub struct Finder {
    checkpoint: SignedCheckpoint,
    leaves: Vec<Vec<u8>>,
    tree: MemoryTree<Sha256Hasher>,
    map: StateMap,
    /// The first event leaf seen per (key, prev).
    followers: HashMap<(Hash, Option<u64>), u64>,
    /// The latest map leaf: (index, time).
    last_map: Option<(u64, u64)>,
    /// The event leaf with the greatest `integrated_at` so far: (index, time).
    latest_event: Option<(u64, u64)>,
    found: Option<Found>,
}

impl Finder {
    /// A finder for the tree of `checkpoint` (already opened under the log key).
    pub fn new(checkpoint: SignedCheckpoint) -> Self {
        Finder {
            checkpoint,
            leaves: Vec::new(),
            tree: MemoryTree::new(Sha256Hasher),
            map: StateMap::new(),
            followers: HashMap::new(),
            last_map: None,
            latest_event: None,
            found: None,
        }
    }

    /// How many leaves the checkpoint's tree has (leaves pushed past it are ignored).
    pub fn size(&self) -> u64 {
        self.checkpoint.size
    }

    /// The next leaf, in log order. Leaves that do not decode are kept for the tree but break
    /// no rule here (the audit reports them).
    pub fn push(&mut self, bytes: Vec<u8>) {
        let index = self.leaves.len() as u64;
        if index >= self.checkpoint.size {
            return;
        }
        self.tree.push(&bytes);
        if self.found.is_none() {
            self.found = self.judge(index, &bytes);
        }
        self.leaves.push(bytes);
    }

    fn judge(&mut self, index: u64, bytes: &[u8]) -> Option<Found> {
        let leaf = Leaf::decode(bytes).ok()?;
        if let (Some((m, t)), false) = (self.last_map, matches!(leaf, Leaf::Genesis(_))) {
            if leaf.time() <= t {
                return Some(Found::TimeViolation {
                    earlier: m,
                    later: index,
                });
            }
        }
        match leaf {
            Leaf::Genesis(_) => None,
            Leaf::Event(e) => {
                if let Some(first) = self.followers.insert((e.key, e.prev), index) {
                    return Some(Found::ChainFork {
                        first,
                        second: index,
                    });
                }
                self.map.insert(
                    e.key,
                    MapValue {
                        index,
                        leaf_hash: e.leaf_hash(),
                    },
                );
                if self.latest_event.is_none_or(|(_, t)| e.integrated_at > t) {
                    self.latest_event = Some((index, e.integrated_at));
                }
                None
            }
            Leaf::Map(m) => {
                if let Some((ev, t)) = self.latest_event.filter(|(_, t)| *t > m.time) {
                    let _ = t;
                    return Some(Found::TimeViolation {
                        earlier: ev,
                        later: index,
                    });
                }
                self.last_map = Some((index, m.time));
                (self.map.root() != m.map_root).then_some(Found::MapRoot { map: index })
            }
        }
    }

    fn proven(&self, index: u64) -> ProvenLeaf {
        let path = prove_inclusion(
            &Sha256Hasher,
            &self.tree,
            LeafIndex(index),
            self.tree.size(),
        )
        .expect("a leaf of the tree");
        ProvenLeaf {
            index,
            leaf: self.leaves[index as usize].clone(),
            inclusion: path.into_iter().map(HexHash).collect(),
        }
    }

    /// After the checkpoint's every leaf: the evidence of the first rule broken, if any. The
    /// leaves must be exactly the checkpoint's tree.
    pub fn finish(self, key: &VerifyingKey) -> Result<Option<Evidence>, FinderError> {
        let (got, want) = (self.leaves.len() as u64, self.checkpoint.size);
        if got != want {
            return Err(FinderError::Count { got, want });
        }
        if self.tree.root() != self.checkpoint.root {
            return Err(FinderError::Root);
        }
        let note = self.checkpoint.note.clone();
        let claim = match self.found {
            None => return Ok(None),
            Some(Found::ChainFork { first, second }) => Claim::ChainFork {
                checkpoint: note,
                first: self.proven(first),
                second: self.proven(second),
            },
            Some(Found::TimeViolation { earlier, later }) => Claim::TimeViolation {
                checkpoint: note,
                earlier: self.proven(earlier),
                later: self.proven(later),
            },
            Some(Found::MapRoot { map }) => {
                let n = map + 1;
                let consistency = if n == want {
                    Vec::new()
                } else {
                    prove_consistency(
                        &Sha256Hasher,
                        &self.tree,
                        crate::tlog::TreeSize(n),
                        self.tree.size(),
                    )
                    .expect("sizes of the tree")
                };
                let mut leaves = self.leaves;
                leaves.truncate(n as usize);
                Claim::MapRootMismatch {
                    checkpoint: note,
                    leaves,
                    consistency: consistency.into_iter().map(HexHash).collect(),
                }
            }
        };
        Ok(Some(of_claim(key, claim)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::check;
    use crate::leaf::{MapLeaf, LEAF_VERSION};
    use crate::testutil::{Log, T0};

    fn find(log: &Log) -> Result<Option<Evidence>, FinderError> {
        let mut f = Finder::new(log.sign());
        for l in &log.leaves {
            f.push(l.to_bytes());
        }
        f.finish(&log.public())
    }

    #[test]
    fn an_honest_log_gives_no_evidence() {
        let (mut log, _) = Log::chain_of_two();
        log.checkpoint(T0 + 120_000);
        assert_eq!(find(&log), Ok(None));
        // Leaves of another tree are refused, not judged.
        let mut f = Finder::new(log.sign());
        for l in log.leaves.iter().rev() {
            f.push(l.to_bytes());
        }
        assert_eq!(f.finish(&log.public()), Err(FinderError::Root));
        let f = Finder::new(log.sign());
        assert!(matches!(
            f.finish(&log.public()),
            Err(FinderError::Count { got: 0, .. })
        ));
    }

    #[test]
    fn a_re_logged_event_is_a_chain_fork() {
        let (mut log, _) = Log::chain_of_two();
        // The opt-out (leaf 2) logged again, also after leaf 1.
        let opening = log.openings[&2].clone();
        let mut copy = log.leaf_for(&opening, T0 + 60_500);
        copy.prev = Some(1);
        copy.seq = 1;
        log.append_leaf(copy, opening);
        log.checkpoint(T0 + 120_000);
        let e = find(&log).unwrap().expect("evidence");
        assert_eq!(e.claim.kind(), "chain_fork");
        check(&e).expect("conclusive");
    }

    #[test]
    fn a_map_leaf_out_of_time_is_a_time_violation() {
        let (mut log, _) = Log::chain_of_two();
        // A map leaf dated before the opt-out it covers.
        log.checkpoint(T0 + 1_000);
        let e = find(&log).unwrap().expect("evidence");
        assert_eq!(e.claim.kind(), "time_violation");
        check(&e).expect("conclusive");
    }

    #[test]
    fn a_stale_map_root_is_a_map_root_mismatch() {
        let (mut log, key) = Log::chain_of_two();
        log.checkpoint(T0 + 120_000);
        // A second map leaf whose root leaves the key at its opt-in (leaf 1).
        let mut stale = StateMap::new();
        stale.insert(
            key,
            MapValue {
                index: 1,
                leaf_hash: log.leaves[1].leaf_hash(),
            },
        );
        log.push(Leaf::Map(MapLeaf {
            version: LEAF_VERSION,
            time: T0 + 180_000,
            map_root: stale.root(),
        }));
        let e = find(&log).unwrap().expect("evidence");
        assert_eq!(e.claim.kind(), "map_root_mismatch");
        check(&e).expect("conclusive");
    }
}
