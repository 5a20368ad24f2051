//! Inclusion paths already checked against one snapshot's root, remembered by the subtree they
//! leave: the next path from a leaf of the same subtree is checked by hashing only up to it.
//!
//! Before a proof is served, each inclusion path in it is checked against the checkpoint's
//! root (RFC 9162 §2.1.3.2: one hash per level, about twenty at 1M leaves), so damaged storage
//! is reported instead of handed out. All leaves of one complete, aligned subtree of
//! 2^[`LEVEL`] leaves share the path's upper part (its hashes from level [`LEVEL`] up). Once a
//! path through a subtree has been checked, its subtree hash and upper part are kept; a later
//! path through the same subtree hashes its leaf up to the subtree (`LEVEL` hashes) and is
//! accepted if that hash and its upper part are those already checked: the check is a function
//! of exactly these, so it would give the same answer. Anything else is checked in full.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::core::hash::Hash;
use crate::core::tlog::{check_inclusion, InclusionError, LeafIndex, TreeHasher, TreeSize};

/// Height of the subtrees paths are remembered by (256 leaves).
pub const LEVEL: u32 = 8;

/// Most subtrees remembered (about 16M leaves' worth; about 1 KiB each at most).
pub const CAP: usize = 1 << 16;

/// Paths checked against one tree size and root, by subtree.
#[derive(Default)]
pub struct VerifiedPaths {
    /// Subtree index (leaf index >> LEVEL) → its hash and the path's hashes above it.
    by_subtree: Mutex<HashMap<u64, (Hash, Vec<Hash>)>>,
}

impl Clone for VerifiedPaths {
    /// The same snapshot's checked paths, so far.
    fn clone(&self) -> Self {
        VerifiedPaths {
            by_subtree: Mutex::new(self.by_subtree.lock().expect("paths").clone()),
        }
    }
}

impl VerifiedPaths {
    /// [`check_inclusion`] of `path` for leaf `index` with hash `leaf_hash` in the tree of
    /// `size` leaves and root `root`, which must be the same for every call on one
    /// `VerifiedPaths` (one snapshot's checkpoint).
    pub fn check<H: TreeHasher>(
        &self,
        h: &H,
        index: LeafIndex,
        size: TreeSize,
        leaf_hash: &Hash,
        path: &[Hash],
        root: &Hash,
    ) -> Result<(), InclusionError> {
        let subtree = index.0 >> LEVEL;
        let complete = (subtree + 1)
            .checked_shl(LEVEL)
            .is_some_and(|end| end <= size.0);
        if !complete || path.len() < LEVEL as usize {
            return check_inclusion(h, index, size, leaf_hash, path, root);
        }
        let (lower, upper) = path.split_at(LEVEL as usize);
        // Inside a complete, aligned subtree bit i of the index says on which side the i-th
        // sibling lies (RFC 9162 §2.1.3.2 with `fn` never equal to `sn` below the subtree).
        let mut r = *leaf_hash;
        for (i, p) in lower.iter().enumerate() {
            r = if (index.0 >> i) & 1 == 1 {
                h.hash_children(p, &r)
            } else {
                h.hash_children(&r, p)
            };
        }
        if let Some((hash, above)) = self.by_subtree.lock().expect("paths").get(&subtree) {
            if *hash == r && above == upper {
                return Ok(());
            }
        }
        check_inclusion(h, index, size, leaf_hash, path, root)?;
        let mut m = self.by_subtree.lock().expect("paths");
        if m.len() < CAP {
            m.insert(subtree, (r, upper.to_vec()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::tlog::{prove_inclusion, MemoryTree, Sha256Hasher};

    fn tree(n: u64) -> MemoryTree<Sha256Hasher> {
        let mut t = MemoryTree::new(Sha256Hasher);
        for i in 0..n {
            t.push(&i.to_le_bytes());
        }
        t
    }

    /// Every path of a tree with complete and incomplete subtrees passes, checked in any
    /// order; every single-bit change to a path, a leaf hash or the root is refused, before
    /// and after its subtree was remembered.
    #[test]
    fn accepts_what_check_inclusion_accepts_and_nothing_else() {
        let h = Sha256Hasher;
        let n = 3 * (1 << LEVEL) + 37;
        let t = tree(n);
        let (size, root) = (TreeSize(n), t.root());
        let v = VerifiedPaths::default();
        let leaf = |i: u64| h.hash_leaf(&i.to_le_bytes());
        for round in 0..2 {
            for i in (0..n).step_by(29).chain([0, 255, 256, 767, 768, n - 1]) {
                let path = prove_inclusion(&h, &t, LeafIndex(i), size).unwrap();
                v.check(&h, LeafIndex(i), size, &leaf(i), &path, &root)
                    .unwrap_or_else(|e| panic!("leaf {i}, round {round}: {e}"));
                for j in 0..path.len() {
                    for bit in [0, 77, 255] {
                        let mut bad = path.clone();
                        bad[j][bit / 8] ^= 1 << (bit % 8);
                        assert!(v
                            .check(&h, LeafIndex(i), size, &leaf(i), &bad, &root)
                            .is_err());
                    }
                }
                let mut bad_leaf = leaf(i);
                bad_leaf[5] ^= 4;
                assert!(v
                    .check(&h, LeafIndex(i), size, &bad_leaf, &path, &root)
                    .is_err());
                let other = (i + 1) % n;
                assert!(
                    v.check(&h, LeafIndex(other), size, &leaf(i), &path, &root)
                        .is_err()
                        || leaf(i) == leaf(other),
                    "leaf {i}'s path at {other}"
                );
                let mut short = path.clone();
                short.pop();
                assert!(v
                    .check(&h, LeafIndex(i), size, &leaf(i), &short, &root)
                    .is_err());
            }
        }
        assert_eq!(
            v.by_subtree.lock().unwrap().len(),
            3,
            "the three complete subtrees"
        );
    }
}
