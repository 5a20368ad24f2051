//! Inclusion proofs (RFC 9162 §2.1.3): [`prove_inclusion`] builds the audit path of a leaf
//! from stored hashes, [`check_inclusion`] verifies one with nothing but the hasher, the size
//! and the root (Go's sumdb `tlog.ProveRecord` / `tlog.CheckRecord`).

use thiserror::Error;

use super::hasher::TreeHasher;
use super::right_edge::RightEdge;
use super::tree_hash::{bit_len, split_point, subtree_hash, HashReader, LeafIndex, TreeSize};
use super::{Hash, ProveError};

/// Inclusion proof of leaf `index` in the tree of `size` leaves:
/// `PATH(index, D[size])` of RFC 9162 §2.1.3.1, in leaf-to-root order.
///
/// Needs `O(log size)` reads (at most one sibling is an incomplete
/// subtree).
pub fn prove_inclusion<H: TreeHasher, R: HashReader>(
    h: &H,
    r: &R,
    index: LeafIndex,
    size: TreeSize,
) -> Result<Vec<Hash>, ProveError<R::Error>> {
    let (m, n) = (index.0, size.0);
    if m >= n {
        return Err(ProveError::IndexOutOfRange { index: m, size: n });
    }
    let mut proof = Vec::with_capacity(inclusion_proof_len(m, n));
    inclusion_path(h, r, None, m, 0, n, &mut proof).map_err(ProveError::Read)?;
    Ok(proof)
}

/// Appends `PATH(m - start, D[start:end])` to `out`, taking the right halves on the tree's
/// right edge from `edge` when given.
pub(super) fn inclusion_path<H: TreeHasher, R: HashReader>(
    h: &H,
    r: &R,
    edge: Option<&RightEdge>,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), R::Error> {
    if end - start <= 1 {
        return Ok(());
    }
    let mid = start + split_point(end - start);
    if m < mid {
        inclusion_path(h, r, edge, m, start, mid, out)?;
        out.push(match edge.and_then(|e| e.get(mid, end)) {
            Some(hash) => hash,
            None => subtree_hash(h, r, mid, end)?,
        });
    } else {
        inclusion_path(h, r, edge, m, mid, end, out)?;
        out.push(subtree_hash(h, r, start, mid)?);
    }
    Ok(())
}

/// Length of `PATH(index, D[size])` for `index < size`: the depth of the
/// leaf. `inner` levels lie below the point where the leaf's path and the
/// right edge of the tree diverge; `border` are left siblings above it.
pub(super) fn inclusion_proof_len(index: u64, size: u64) -> usize {
    debug_assert!(index < size);
    let inner = bit_len(index ^ (size - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Why an inclusion proof was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum InclusionError {
    /// The tree of that size has no such leaf (includes `size == 0`).
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// The proof has the wrong number of hashes for this index and size.
    #[error("inclusion proof has {got} hashes, expected {expected} for this index and tree size")]
    WrongProofLength {
        /// The length a proof for this index and size must have.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// The leaf hash and proof hash up to a different root.
    #[error("inclusion proof does not lead to the expected root")]
    RootMismatch,
}

/// Verifies that `leaf_hash` is leaf `index` of the tree of `size` leaves
/// with root `root`, using the algorithm of RFC 9162 §2.1.3.2.
///
/// The proof's length is checked first, so every malformed proof is
/// rejected with [`InclusionError::WrongProofLength`] before any hashing.
pub fn check_inclusion<H: TreeHasher>(
    h: &H,
    index: LeafIndex,
    size: TreeSize,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), InclusionError> {
    let (index, size) = (index.0, size.0);
    if index >= size {
        return Err(InclusionError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(InclusionError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    // RFC 9162 §2.1.3.2, steps 2-5.
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if sn == 0 {
            // Unreachable after the length check; kept as in the RFC.
            return Err(InclusionError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = h.hash_children(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = h.hash_children(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(InclusionError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if r != *root {
        return Err(InclusionError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{tree_hash, Blake3Hasher, MemoryTree, Sha256Hasher};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc6962_inclusion_vectors() {
        let (t, lh) = ct_tree();
        let h = Sha256Hasher;
        let cases: &[(u64, u64, &[&str])] = &[
            (0, 1, &[]),
            (
                0,
                2,
                &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
            ),
            (
                1,
                2,
                &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for &(index, size, want) in cases {
            let want = hxs(want);
            let r = prefix(&t, size);
            let got = prove_inclusion(&h, &r, LeafIndex(index), TreeSize(size)).unwrap();
            assert_eq!(got, want, "PATH({index}, D[{size}])");
            assert_eq!(ref_path(&h, index as usize, &lh[..size as usize]), want);
            let root = hx(CT_ROOTS[size as usize]);
            check_inclusion(
                &h,
                LeafIndex(index),
                TreeSize(size),
                &lh[index as usize],
                &want,
                &root,
            )
            .unwrap();
        }
    }

    const REJECT: u64 = 33;

    fn rejects_inclusion<H: TreeHasher + Copy>(h: H) {
        let lh = leaves(&h, 2 * REJECT + 2);
        let tree = memory_tree(h, &lh);
        let roots: Vec<Hash> = (0..lh.len()).map(|n| ref_mth(&h, &lh[..n])).collect();
        let junk = [0xa5u8; 32];

        for size in 1..=REJECT {
            let root = roots[size as usize];
            let proofs: Vec<Vec<Hash>> = (0..size)
                .map(|i| prove_inclusion(&h, &tree, LeafIndex(i), TreeSize(size)).unwrap())
                .collect();
            for index in 0..size {
                let leaf = &lh[index as usize];
                let proof = &proofs[index as usize];
                let check = |i: u64, s: u64, leaf: &Hash, p: &[Hash], root: &Hash| {
                    check_inclusion(&h, LeafIndex(i), TreeSize(s), leaf, p, root)
                };
                check(index, size, leaf, proof, &root).unwrap();

                // Every bit of every proof hash, of the leaf and of the root.
                for k in 0..proof.len() {
                    let mut p = proof.clone();
                    for x in flips(&proof[k]) {
                        p[k] = x;
                        assert_eq!(
                            check(index, size, leaf, &p, &root),
                            Err(InclusionError::RootMismatch)
                        );
                    }
                }
                for x in flips(leaf) {
                    assert_eq!(
                        check(index, size, &x, proof, &root),
                        Err(InclusionError::RootMismatch)
                    );
                }
                for x in flips(&root) {
                    assert_eq!(
                        check(index, size, leaf, proof, &x),
                        Err(InclusionError::RootMismatch)
                    );
                }

                // Wrong index: leaves are distinct, so never valid.
                for j in (0..size + 2).filter(|&j| j != index) {
                    let res = check(j, size, leaf, proof, &root);
                    assert!(res.is_err(), "leaf {index} accepted at {j} in {size}");
                    if j >= size {
                        assert_eq!(res, Err(InclusionError::IndexOutOfRange { index: j, size }));
                    }
                }

                // Wrong size, with the root of that size: valid only if the
                // proof happens to be that size's proof (never, here).
                for s in (index + 1..=2 * REJECT + 1).filter(|&s| s != size) {
                    let res = check(index, s, leaf, proof, &roots[s as usize]);
                    let same = *proof == ref_path(&h, index as usize, &lh[..s as usize]);
                    assert_eq!(
                        res.is_ok(),
                        same,
                        "proof ({index}, {size}) checked as size {s}"
                    );
                    assert!(res.is_err());
                }
                // Doubled and halved size with the genuine root.
                assert!(check(index, size * 2, leaf, proof, &root).is_err());
                assert!(check(index, size / 2, leaf, proof, &root).is_err());

                // Wrong lengths.
                let wrong_len = |p: Vec<Hash>| {
                    assert_eq!(
                        check(index, size, leaf, &p, &root),
                        Err(InclusionError::WrongProofLength {
                            expected: proof.len(),
                            got: p.len()
                        })
                    );
                };
                if !proof.is_empty() {
                    wrong_len(proof[..proof.len() - 1].to_vec());
                    wrong_len(proof[1..].to_vec());
                }
                for extra in [junk, root, *leaf] {
                    let mut p = proof.clone();
                    p.push(extra);
                    wrong_len(p);
                    let mut p = vec![extra];
                    p.extend_from_slice(proof);
                    wrong_len(p);
                }
            }
        }
        // Nothing is in the empty tree.
        assert_eq!(
            check_inclusion(&h, LeafIndex(0), TreeSize(0), &lh[0], &[], &h.empty_root()),
            Err(InclusionError::IndexOutOfRange { index: 0, size: 0 })
        );
    }

    #[test]
    fn rejects_bad_inclusion_blake3() {
        rejects_inclusion(Blake3Hasher);
    }

    #[test]
    fn rejects_bad_inclusion_sha256() {
        rejects_inclusion(Sha256Hasher);
    }

    /// With identical leaves, a proof may be valid at several positions:
    /// this is the "unless the leaves are identical" case.
    #[test]
    fn identical_leaves_share_proofs() {
        let h = Blake3Hasher;
        let leaf = h.hash_leaf(b"same");
        let tree = memory_tree(h, &[leaf; 16]);
        let p0 = prove_inclusion(&h, &tree, LeafIndex(0), TreeSize(16)).unwrap();
        for j in 0..16 {
            check_inclusion(&h, LeafIndex(j), TreeSize(16), &leaf, &p0, &tree.root()).unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn inclusion_roundtrip(
            (size, index) in (1..=BIG).prop_flat_map(|n| (Just(n), 0..n))
        ) {
            let h = Blake3Hasher;
            let (tree, lh) = big_tree();
            let n = size as usize;
            let r = prefix(tree, size);
            let root = tree_hash(&h, &r, TreeSize(size)).unwrap();
            prop_assert_eq!(root, ref_mth(&h, &lh[..n]));
            r.reads.set(0);
            let proof = prove_inclusion(&h, &r, LeafIndex(index), TreeSize(size)).unwrap();
            let bits = u64::from(bit_len(size));
            prop_assert!(r.reads.get() <= 2 * bits, "{} reads", r.reads.get());
            prop_assert_eq!(&proof, &ref_path(&h, index as usize, &lh[..n]));
            check_inclusion(&h, LeafIndex(index), TreeSize(size), &lh[index as usize], &proof, &root).unwrap();
            // Every other position in the same tree rejects it (distinct leaves).
            for j in [0, index.wrapping_sub(1), index + 1, index ^ 1, size - 1] {
                if j != index && j < size {
                    prop_assert!(check_inclusion(&h, LeafIndex(j), TreeSize(size), &lh[index as usize], &proof, &root).is_err());
                }
            }
        }

        /// leaf i and their proofs coincide; in particular never for j != i
        /// with a different leaf. Leaves come from a tiny alphabet so that
        /// repeats are common.
        #[test]
        fn proof_binds_position(
            data in (1u8..=3).prop_flat_map(|a| prop::collection::vec(0..a, 1..400)),
            i in any::<prop::sample::Index>(),
            j in any::<prop::sample::Index>(),
        ) {
            let h = Blake3Hasher;
            let mut tree = MemoryTree::new(h);
            for d in &data {
                tree.push(&[*d]);
            }
            let size = tree.size();
            let (i, j) = (i.index(data.len()) as u64, j.index(data.len()) as u64);
            let leaf_i = tree.leaf_hash(LeafIndex(i)).unwrap();
            let leaf_j = tree.leaf_hash(LeafIndex(j)).unwrap();
            let pi = prove_inclusion(&h, &tree, LeafIndex(i), size).unwrap();
            let pj = prove_inclusion(&h, &tree, LeafIndex(j), size).unwrap();
            let ok = check_inclusion(&h, LeafIndex(j), size, &leaf_i, &pi, &tree.root()).is_ok();
            prop_assert_eq!(ok, leaf_i == leaf_j && pi == pj);
            if ok && i != j {
                prop_assert_eq!(data[i as usize], data[j as usize]);
            }
        }
    }
}
