//! Merkle tree log in the shape of RFC 9162 §2.1 (Certificate Transparency 2.0).
//!
//! The tree over entries `D[0..n)` is the RFC's Merkle Tree Hash (MTH): the
//! left subtree always holds the largest power of two strictly smaller than
//! `n` leaves, so every left subtree is *complete* and *aligned*. That makes
//! the log storable as a flat table of complete subtree hashes,
//! `node(level, i) = MTH(D[i << level .. (i + 1) << level))`, which never
//! changes once written. Everything else (roots of any historical size,
//! inclusion and consistency proofs) is computed from that table in
//! `O(log n)` reads through [`HashReader`].
//!
//! Layout follows Go's `golang.org/x/mod/sumdb/tlog` and the `ct-merkle`
//! crate: `prove_*` builds a proof from stored hashes, `check_*` verifies one
//! with nothing but the hasher, the sizes and the roots.
//!
//! The hash function is pluggable through [`TreeHasher`]: the log uses
//! [`Sha256Hasher`], RFC 6962 exactly, checked against Certificate
//! Transparency's published vectors and an independent implementation; the
//! tests also run everything with BLAKE3, so nothing assumes one hash.
//!
//! | file | owns |
//! |---|---|
//! | [`hasher`] | [`TreeHasher`]: leaf, node and empty hashes (RFC 9162 §2.1.1) |
//! | [`tree_hash`] | [`LeafIndex`], [`TreeSize`], [`HashReader`], `MTH` of any range |
//! | [`inclusion`] | [`prove_inclusion`] / [`check_inclusion`] (RFC 9162 §2.1.3) |
//! | [`consistency`] | [`prove_consistency`] / [`check_consistency`] (RFC 9162 §2.1.4) |
//! | [`frontier`] | [`Frontier`], the compact range of a growing tree (RFC 9162 §2.1.2) |
//! | [`memory`] | [`MemoryTree`], every complete subtree in memory |
//! | [`right_edge`] | [`RightEdge`]: one size's incomplete right-edge subtrees, for many paths |
//! | [`tile`] | [`EntryTile`]: c2sp.org/tlog-tiles entry bundles, their paths and bodies |
//! | [`hash_tile`] | [`HashTile`]: c2sp.org/tlog-tiles hash tiles, their paths and bodies |

use thiserror::Error;

pub mod consistency;
pub mod frontier;
pub mod hash_tile;
pub mod hasher;
pub mod inclusion;
pub mod memory;
pub mod right_edge;
pub mod tile;
pub mod tree_hash;

#[cfg(test)]
mod testutil;

/// A tree hash: leaf hash, interior node hash or root.
pub use super::hash::Hash;
pub use consistency::{check_consistency, implied_roots, prove_consistency, ConsistencyError};
pub use frontier::Frontier;
pub use hash_tile::HashTile;
#[cfg(test)]
pub use hasher::Blake3Hasher;
pub use hasher::{Sha256Hasher, TreeHasher};
pub use inclusion::{check_inclusion, prove_inclusion, InclusionError};
pub use memory::{MemoryTree, MissingNode};
pub use right_edge::RightEdge;
pub use tile::{EntryTile, TileError};
pub use tree_hash::{subtree_hash, tree_hash, HashReader, LeafIndex, TreeSize};

/// Why a proof could not be built.
#[derive(Debug, Error)]
pub enum ProveError<E> {
    /// Inclusion asked for a leaf the tree of that size does not have.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The requested leaf.
        index: u64,
        /// The tree size the proof was asked for.
        size: u64,
    },
    /// Consistency asked from a larger tree to a smaller one.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizeOutOfRange {
        /// The requested old size.
        old: u64,
        /// The requested new size.
        new: u64,
    },
    /// The [`HashReader`] failed (for example, the node is not stored yet).
    #[error("reading a stored tree node failed")]
    Read(#[source] E),
}

#[cfg(test)]
mod tests {
    use super::inclusion::inclusion_proof_len;
    use super::testutil::*;
    use super::*;
    use std::collections::BTreeMap;

    // ---------------------------------------------------------------------
    // 2. Exhaustive agreement with the reference on small trees.
    // ---------------------------------------------------------------------

    const SMALL: u64 = 64;

    fn exhaustive<H: TreeHasher + Copy>(h: H) {
        let lh = leaves(&h, SMALL);
        let mut tree = MemoryTree::new(h);
        let mut frontier = Frontier::new();
        // Every node ever reported by append, with its count.
        let mut emitted: BTreeMap<(u8, u64), (Hash, u32)> = BTreeMap::new();

        for size in 0..=SMALL {
            let n = size as usize;
            let want = ref_mth(&h, &lh[..n]);

            // The tree grown so far, and a historical view of the full one.
            assert_eq!(tree.size(), TreeSize(size));
            assert_eq!(tree.root(), want, "MemoryTree root({size})");
            assert_eq!(frontier.root(&h), want, "Frontier root({size})");
            assert_eq!(&frontier, tree.frontier());
            assert_eq!(Frontier::load(&tree, TreeSize(size)).unwrap(), frontier);
            assert_eq!(frontier.size(), TreeSize(size));

            // The set of reported nodes is exactly the complete subtrees.
            let mut expect = BTreeMap::new();
            for level in 0..7u8 {
                for index in 0..(size >> level) {
                    let lo = (index << level) as usize;
                    let hi = ((index + 1) << level) as usize;
                    expect.insert((level, index), (ref_mth(&h, &lh[lo..hi]), 1));
                }
            }
            assert_eq!(emitted, expect, "nodes reported after {size} appends");

            if size < SMALL {
                let mut via_with = Vec::new();
                let mut f2 = frontier.clone();
                f2.append_with(&h, lh[n], |l, i, x| via_with.push((l, i, *x)));
                let nodes = frontier.append(&h, lh[n]);
                assert_eq!(nodes, via_with);
                assert_eq!(f2, frontier);
                assert_eq!(nodes[0], (0, size, lh[n]));
                for (l, i, x) in nodes {
                    emitted.entry((l, i)).or_insert((x, 0)).1 += 1;
                }
                assert_eq!(tree.push_leaf_hash(lh[n]), LeafIndex(size));
            }
        }
        assert_eq!(tree.leaf_hash(LeafIndex(SMALL - 1)), Some(lh[63]));
        assert_eq!(tree.leaf_hash(LeafIndex(SMALL)), None);

        // Roots and inclusion at every historical size.
        for size in 0..=SMALL {
            let n = size as usize;
            let r = prefix(&tree, size);
            let root = tree_hash(&h, &r, TreeSize(size)).unwrap();
            assert_eq!(r.reads.get(), u64::from(size.count_ones()));
            assert_eq!(root, ref_mth(&h, &lh[..n]));
            for index in 0..size {
                let proof = prove_inclusion(&h, &r, LeafIndex(index), TreeSize(size)).unwrap();
                assert_eq!(
                    proof,
                    ref_path(&h, index as usize, &lh[..n]),
                    "PATH({index}, {size})"
                );
                check_inclusion(
                    &h,
                    LeafIndex(index),
                    TreeSize(size),
                    &lh[index as usize],
                    &proof,
                    &root,
                )
                .unwrap();
            }
        }

        // Consistency between every pair of sizes.
        let roots: Vec<Hash> = (0..=SMALL as usize)
            .map(|n| ref_mth(&h, &lh[..n]))
            .collect();
        for new in 0..=SMALL {
            let r = prefix(&tree, new);
            for old in 0..=new {
                let proof = prove_consistency(&h, &r, TreeSize(old), TreeSize(new)).unwrap();
                assert_eq!(
                    proof,
                    ref_proof(&h, old as usize, &lh[..new as usize]),
                    "PROOF({old}, {new})"
                );
                check_consistency(
                    &h,
                    TreeSize(old),
                    TreeSize(new),
                    &roots[old as usize],
                    &roots[new as usize],
                    &proof,
                )
                .unwrap();
            }
        }

        // subtree_hash on every range, aligned or not.
        for start in 0..=SMALL {
            for end in start..=SMALL {
                let r = prefix(&tree, end);
                let got = subtree_hash(&h, &r, start, end).unwrap();
                assert_eq!(
                    got,
                    ref_mth(&h, &lh[start as usize..end as usize]),
                    "[{start}, {end})"
                );
                let n = end - start;
                if n > 0 && start & ((1 << (63 - n.leading_zeros())) - 1) == 0 {
                    assert_eq!(
                        r.reads.get(),
                        u64::from(n.count_ones()),
                        "reads for [{start}, {end})"
                    );
                }
            }
        }
    }

    #[test]
    fn exhaustive_small_trees_blake3() {
        exhaustive(Blake3Hasher);
    }

    #[test]
    fn exhaustive_small_trees_sha256() {
        exhaustive(Sha256Hasher);
    }

    #[test]
    fn prove_errors() {
        let h = Blake3Hasher;
        let tree = memory_tree(h, &leaves(&h, 5));
        assert!(matches!(
            prove_inclusion(&h, &tree, LeafIndex(5), TreeSize(5)),
            Err(ProveError::IndexOutOfRange { index: 5, size: 5 })
        ));
        assert!(matches!(
            prove_inclusion(&h, &tree, LeafIndex(0), TreeSize(0)),
            Err(ProveError::IndexOutOfRange { index: 0, size: 0 })
        ));
        assert!(matches!(
            prove_consistency(&h, &tree, TreeSize(4), TreeSize(3)),
            Err(ProveError::SizeOutOfRange { old: 4, new: 3 })
        ));
        // Beyond what is stored: the reader's error comes through.
        assert!(matches!(
            prove_inclusion(&h, &tree, LeafIndex(0), TreeSize(8)),
            Err(ProveError::Read(MissingNode { level: 2, index: 1 }))
        ));
        assert!(matches!(
            prove_consistency(&h, &tree, TreeSize(2), TreeSize(6)),
            Err(ProveError::Read(MissingNode { .. }))
        ));
        assert_eq!(
            tree_hash(&h, &tree, TreeSize(6)),
            Err(MissingNode { level: 1, index: 2 })
        );
        assert_eq!(
            Frontier::load(&tree, TreeSize(8)),
            Err(MissingNode { level: 3, index: 0 })
        );
        // Trivial proofs need no reads at all.
        let r = prefix(&tree, 0);
        assert!(prove_consistency(&h, &r, TreeSize(0), TreeSize(5))
            .unwrap()
            .is_empty());
        assert!(prove_consistency(&h, &r, TreeSize(5), TreeSize(5))
            .unwrap()
            .is_empty());
        assert_eq!(r.reads.get(), 0);
    }

    #[test]
    fn error_messages_name_the_problem() {
        let s = InclusionError::WrongProofLength {
            expected: 3,
            got: 4,
        }
        .to_string();
        assert!(
            s.contains("inclusion proof") && s.contains('3') && s.contains('4'),
            "{s}"
        );
        let s = InclusionError::IndexOutOfRange { index: 7, size: 5 }.to_string();
        assert!(s.contains("index 7") && s.contains("size 5"), "{s}");
        assert!(InclusionError::RootMismatch.to_string().contains("root"));
        let s = ConsistencyError::WrongProofLength {
            old: 2,
            new: 9,
            expected: 3,
            got: 1,
        }
        .to_string();
        assert!(
            s.contains("consistency proof") && s.contains("2 -> 9") && s.contains("expected 3"),
            "{s}"
        );
        let s = ConsistencyError::OldSizeTooLarge { old: 9, new: 2 }.to_string();
        assert!(
            s.contains("old tree size 9") && s.contains("new tree size 2"),
            "{s}"
        );
        assert!(ConsistencyError::OldSizeZeroNonEmptyProof { got: 2 }
            .to_string()
            .contains("must be empty"));
        assert!(ConsistencyError::SameSizeRootMismatch { size: 4 }
            .to_string()
            .contains("different roots"));
        assert!(ConsistencyError::OldRootMismatch
            .to_string()
            .contains("old root"));
        assert!(ConsistencyError::NewRootMismatch
            .to_string()
            .contains("new root"));
        let e: ProveError<MissingNode> = ProveError::Read(MissingNode { level: 1, index: 2 });
        assert!(e.to_string().contains("read"));
        let src = std::error::Error::source(&e).unwrap().to_string();
        assert!(src.contains("level 1") && src.contains("index 2"), "{src}");
        let e: ProveError<MissingNode> = ProveError::IndexOutOfRange { index: 3, size: 3 };
        assert!(e.to_string().contains("leaf index 3"));
    }

    /// Sizes near 2^64 on a tree of identical leaves: no overflow, and the
    /// prover only reads nodes that exist in the requested tree.
    #[test]
    fn huge_trees() {
        let h = Blake3Hasher;
        let big = Uniform::new(&h, u64::MAX);
        let leaf = big.levels[0];
        for size in [
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
            (1 << 63) + 1,
            (1 << 63) - 1,
            0xdead_beef_cafe,
        ] {
            let r = Uniform {
                levels: big.levels.clone(),
                size,
            };
            let root = tree_hash(&h, &r, TreeSize(size)).unwrap();
            assert_eq!(Frontier::load(&r, TreeSize(size)).unwrap().root(&h), root);
            for index in [0, 1, size / 2, size - 2, size - 1] {
                let p = prove_inclusion(&h, &r, LeafIndex(index), TreeSize(size)).unwrap();
                assert_eq!(p.len(), inclusion_proof_len(index, size));
                check_inclusion(&h, LeafIndex(index), TreeSize(size), &leaf, &p, &root).unwrap();
            }
            for old in [1, 2, 3, size / 3, size - 1, size] {
                let ro = tree_hash(&h, &r, TreeSize(old)).unwrap();
                let p = prove_consistency(&h, &r, TreeSize(old), TreeSize(size)).unwrap();
                check_consistency(&h, TreeSize(old), TreeSize(size), &ro, &root, &p).unwrap();
            }
        }
        // Length arithmetic at the extremes (shift by 64 must not panic).
        assert_eq!(
            check_inclusion(&h, LeafIndex(0), TreeSize(u64::MAX), &leaf, &[], &leaf),
            Err(InclusionError::WrongProofLength {
                expected: 64,
                got: 0
            })
        );
        assert_eq!(
            check_inclusion(
                &h,
                LeafIndex(u64::MAX - 1),
                TreeSize(u64::MAX),
                &leaf,
                &[],
                &leaf
            ),
            Err(InclusionError::WrongProofLength {
                expected: 63,
                got: 0
            })
        );
    }
}
