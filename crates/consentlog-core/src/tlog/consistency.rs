//! Consistency proofs (RFC 9162 §2.1.4): [`prove_consistency`] builds the proof that a tree is
//! a prefix of a later one from stored hashes, [`check_consistency`] verifies one with nothing
//! but the hasher, the sizes and the roots (Go's sumdb `tlog.ProveTree` / `tlog.CheckTree`).

use thiserror::Error;

use super::hasher::TreeHasher;
use super::tree_hash::{bit_len, split_point, subtree_hash, HashReader, TreeSize};
use super::{Hash, ProveError};

/// Consistency proof between the tree of `old` leaves and the tree of `new`
/// leaves: `PROOF(old, D[new])` of RFC 9162 §2.1.4.1, in leaf-to-root order.
///
/// Empty when `old == 0` or `old == new`. Needs `O(log new)` reads.
pub fn prove_consistency<H: TreeHasher, R: HashReader>(
    h: &H,
    r: &R,
    old: TreeSize,
    new: TreeSize,
) -> Result<Vec<Hash>, ProveError<R::Error>> {
    let (m, n) = (old.0, new.0);
    if m > n {
        return Err(ProveError::SizeOutOfRange { old: m, new: n });
    }
    if m == 0 || m == n {
        return Ok(Vec::new());
    }
    let mut proof = Vec::with_capacity(consistency_proof_len(m, n));
    subproof(h, r, m, 0, n, true, &mut proof).map_err(ProveError::Read)?;
    Ok(proof)
}

/// Appends `SUBPROOF(m - start, D[start:end], b)` (RFC 9162 §2.1.4.1) to
/// `out`. Requires `start < m <= end`.
fn subproof<H: TreeHasher, R: HashReader>(
    h: &H,
    r: &R,
    m: u64,
    start: u64,
    end: u64,
    b: bool,
    out: &mut Vec<Hash>,
) -> Result<(), R::Error> {
    if m == end {
        if !b {
            out.push(subtree_hash(h, r, start, end)?);
        }
        return Ok(());
    }
    let mid = start + split_point(end - start);
    if m <= mid {
        subproof(h, r, m, start, mid, b, out)?;
        out.push(subtree_hash(h, r, mid, end)?);
    } else {
        subproof(h, r, m, mid, end, false, out)?;
        out.push(subtree_hash(h, r, start, mid)?);
    }
    Ok(())
}

/// Length of `PROOF(old, D[new])` for `0 < old < new`.
fn consistency_proof_len(old: u64, new: u64) -> usize {
    debug_assert!(0 < old && old < new);
    // The path of leaf old-1 in the new tree, minus the levels below the
    // complete subtree of the old tree that contains it (its hash is sent
    // instead, or is the old root itself when old is a power of two).
    let index = old - 1;
    let inner = bit_len(index ^ (new - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    let shift = old.trailing_zeros();
    let seed = u32::from(!old.is_power_of_two());
    (inner - shift + border + seed) as usize
}

/// Why a consistency proof was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConsistencyError {
    /// A tree cannot be consistent with a smaller later version.
    #[error("old tree size {old} is larger than new tree size {new}")]
    OldSizeTooLarge {
        /// The claimed old size.
        old: u64,
        /// The claimed new size.
        new: u64,
    },
    /// The empty tree is a prefix of every tree; its proof must be empty.
    #[error("old tree size is 0, so the consistency proof must be empty, but it has {got} hashes")]
    OldSizeZeroNonEmptyProof {
        /// The length received.
        got: usize,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error(
        "consistency proof has {got} hashes, expected {expected} for tree sizes {old} -> {new}"
    )]
    WrongProofLength {
        /// The claimed old size.
        old: u64,
        /// The claimed new size.
        new: u64,
        /// The length a proof for these sizes must have.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// Two roots of the same tree size differ: the log forked.
    #[error("old and new trees both have size {size} but different roots")]
    SameSizeRootMismatch {
        /// The common tree size.
        size: u64,
    },
    /// The proof does not hash up to the given old root (for `old == 0`:
    /// the old root is not the empty root).
    #[error("consistency proof does not lead to the old root")]
    OldRootMismatch,
    /// The proof does not hash up to the given new root (for `new == 0`:
    /// the new root is not the empty root).
    #[error("consistency proof does not lead to the new root")]
    NewRootMismatch,
}

/// Verifies that the tree of `old` leaves with root `old_root` is a prefix
/// of the tree of `new` leaves with root `new_root`, using the algorithm of
/// RFC 9162 §2.1.4.2.
///
/// Edge cases, which RFC 9162 leaves to the caller:
/// - `old > new`: [`ConsistencyError::OldSizeTooLarge`].
/// - `old == 0`: the proof must be empty and `old_root` must be the empty
///   root; the empty tree is a prefix of any tree, so `new_root` is not
///   constrained (unless `new == 0` too, when it must be the empty root).
/// - `old == new`: the proof must be empty and the roots equal.
///
/// Otherwise the proof length is checked before any hashing.
pub fn check_consistency<H: TreeHasher>(
    h: &H,
    old: TreeSize,
    new: TreeSize,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ConsistencyError> {
    let (old, new) = (old.0, new.0);
    if old > new {
        return Err(ConsistencyError::OldSizeTooLarge { old, new });
    }
    if old == 0 {
        if !proof.is_empty() {
            return Err(ConsistencyError::OldSizeZeroNonEmptyProof { got: proof.len() });
        }
        let empty = h.empty_root();
        if *old_root != empty {
            return Err(ConsistencyError::OldRootMismatch);
        }
        if new == 0 && *new_root != empty {
            return Err(ConsistencyError::NewRootMismatch);
        }
        return Ok(());
    }
    let expected = if old == new {
        0
    } else {
        consistency_proof_len(old, new)
    };
    if proof.len() != expected {
        return Err(ConsistencyError::WrongProofLength {
            old,
            new,
            expected,
            got: proof.len(),
        });
    }
    if old == new {
        if old_root != new_root {
            return Err(ConsistencyError::SameSizeRootMismatch { size: old });
        }
        return Ok(());
    }

    // RFC 9162 §2.1.4.2. Step 1 (empty proof) is covered by the length
    // check; step 2 (prepend old_root when old is a power of two) is done
    // by seeding with it instead of copying the proof.
    let (seed, rest) = if old.is_power_of_two() {
        (old_root, proof)
    } else {
        (&proof[0], &proof[1..])
    };
    let wrong_length = ConsistencyError::WrongProofLength {
        old,
        new,
        expected,
        got: proof.len(),
    };
    let (fr, sr) = roots(h, old, new, seed, rest).ok_or(wrong_length)?;
    if fr != *old_root {
        return Err(ConsistencyError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ConsistencyError::NewRootMismatch);
    }
    Ok(())
}

/// Steps 3–7 of RFC 9162 §2.1.4.2 for `0 < old < new`: the old and new roots (`fr`, `sr`) a
/// consistency proof leads to from its first node `seed` (the old root itself when `old` is a
/// power of two, else the proof's first hash) and the rest of the proof; `None` when the proof
/// has the wrong number of hashes.
fn roots<H: TreeHasher>(
    h: &H,
    old: u64,
    new: u64,
    seed: &Hash,
    rest: &[Hash],
) -> Option<(Hash, Hash)> {
    // Steps 3-4.
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    let (mut fr, mut sr) = (*seed, *seed);
    // Step 6.
    for c in rest {
        if sn == 0 {
            return None;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = h.hash_children(c, &fr);
            sr = h.hash_children(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = h.hash_children(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 7.
    (sn == 0).then_some((fr, sr))
}

/// The root of the first `old` leaves that a consistency proof from `old` to `new` shows, with
/// the root of all `new` leaves it leads to: `(old root, new root)`. Whoever made the proof
/// committed to both, so a proof that leads to a signed `new` root and to an old root other
/// than the one signed for `old` shows that the two signed trees cannot both be honest
/// (docs/FORMAT.md §16, `not_a_prefix`).
///
/// Only when `0 < old < new`, `old` is not a power of two (then the proof starts at the old
/// root itself and shows nothing about it) and the proof has the length RFC 9162 gives;
/// otherwise `None`.
pub fn implied_roots<H: TreeHasher>(
    h: &H,
    old: TreeSize,
    new: TreeSize,
    proof: &[Hash],
) -> Option<(Hash, Hash)> {
    let (old, new) = (old.0, new.0);
    if old == 0 || old >= new || old.is_power_of_two() {
        return None;
    }
    if proof.len() != consistency_proof_len(old, new) {
        return None;
    }
    roots(h, old, new, &proof[0], &proof[1..])
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Blake3Hasher, Frontier, Sha256Hasher};
    use super::*;
    use proptest::prelude::*;

    const REJECT: u64 = 33;

    #[test]
    fn rfc6962_consistency_vectors() {
        let (t, lh) = ct_tree();
        let h = Sha256Hasher;
        let cases: &[(u64, u64, &[&str])] = &[
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for &(old, new, want) in cases {
            let want = hxs(want);
            let r = prefix(&t, new);
            let got = prove_consistency(&h, &r, TreeSize(old), TreeSize(new)).unwrap();
            assert_eq!(got, want, "PROOF({old}, D[{new}])");
            assert_eq!(ref_proof(&h, old as usize, &lh[..new as usize]), want);
            check_consistency(
                &h,
                TreeSize(old),
                TreeSize(new),
                &hx(CT_ROOTS[old as usize]),
                &hx(CT_ROOTS[new as usize]),
                &want,
            )
            .unwrap();
        }
    }

    /// A proof from the reference PROOF shows the reference roots of both sizes whenever the
    /// old size is not a power of two, for every pair of sizes up to 40, and of a forked tree
    /// (another leaf before `old`) the forked roots: what `not_a_prefix` evidence rests on.
    #[test]
    fn implied_roots_are_the_roots_the_proof_commits_to() {
        let h = Sha256Hasher;
        let leaves: Vec<Hash> = (0u8..40).map(|i| h.hash_leaf(&[i])).collect();
        for new in 1..=40usize {
            for old in 1..new {
                let proof = ref_proof(&h, old, &leaves[..new]);
                let got = implied_roots(&h, TreeSize(old as u64), TreeSize(new as u64), &proof);
                if old.is_power_of_two() {
                    assert_eq!(got, None, "({old}, {new})");
                    continue;
                }
                let want = (ref_mth(&h, &leaves[..old]), ref_mth(&h, &leaves[..new]));
                assert_eq!(got, Some(want), "({old}, {new})");
                let mut forked = leaves[..new].to_vec();
                forked[old - 1] = h.hash_leaf(b"another");
                let proof = ref_proof(&h, old, &forked);
                let got = implied_roots(&h, TreeSize(old as u64), TreeSize(new as u64), &proof);
                assert_eq!(
                    got,
                    Some((ref_mth(&h, &forked[..old]), ref_mth(&h, &forked))),
                    "forked ({old}, {new})"
                );
                // A hash more or fewer shows nothing.
                let mut longer = proof.clone();
                longer.push([0; 32]);
                assert_eq!(
                    implied_roots(&h, TreeSize(old as u64), TreeSize(new as u64), &longer),
                    None
                );
                assert_eq!(
                    implied_roots(
                        &h,
                        TreeSize(old as u64),
                        TreeSize(new as u64),
                        &proof[..proof.len() - 1]
                    ),
                    None
                );
            }
        }
        assert_eq!(implied_roots(&h, TreeSize(0), TreeSize(3), &[]), None);
        assert_eq!(implied_roots(&h, TreeSize(3), TreeSize(3), &[]), None);
        assert_eq!(implied_roots(&h, TreeSize(5), TreeSize(3), &[]), None);
    }

    fn rejects_consistency<H: TreeHasher + Copy>(h: H, max: u64) {
        let lh = leaves(&h, max + 1);
        let tree = memory_tree(h, &lh);
        let roots: Vec<Hash> = (0..=lh.len()).map(|n| ref_mth(&h, &lh[..n])).collect();
        let junk = [0x5au8; 32];
        let check = |o: u64, n: u64, ro: &Hash, rn: &Hash, p: &[Hash]| {
            check_consistency(&h, TreeSize(o), TreeSize(n), ro, rn, p)
        };
        let proof_of =
            |o: u64, n: u64| prove_consistency(&h, &tree, TreeSize(o), TreeSize(n)).unwrap();

        for new in 0..=max {
            let rn = roots[new as usize];
            for old in 0..=new {
                let ro = roots[old as usize];
                let proof = proof_of(old, new);
                check(old, new, &ro, &rn, &proof).unwrap();

                for k in 0..proof.len() {
                    let mut p = proof.clone();
                    for x in flips(&proof[k]) {
                        p[k] = x;
                        assert!(
                            check(old, new, &ro, &rn, &p).is_err(),
                            "flip in proof[{k}] ({old}, {new})"
                        );
                    }
                }
                for x in flips(&ro) {
                    assert!(
                        check(old, new, &x, &rn, &proof).is_err(),
                        "old root flip ({old}, {new})"
                    );
                }
                for x in flips(&rn) {
                    let res = check(old, new, &ro, &x, &proof);
                    if old == 0 && new > 0 {
                        // The empty tree is a prefix of anything.
                        assert_eq!(res, Ok(()));
                    } else {
                        assert!(res.is_err(), "new root flip ({old}, {new})");
                    }
                }

                if old < new {
                    // Swapped sizes, swapped roots.
                    assert_eq!(
                        check(new, old, &rn, &ro, &proof),
                        Err(ConsistencyError::OldSizeTooLarge { old: new, new: old })
                    );
                    assert!(check(old, new, &rn, &ro, &proof).is_err());
                }

                // Other sizes with their genuine roots: valid iff the proof
                // is also that pair's proof (e.g. both empty).
                for o2 in (0..=new).filter(|&o2| o2 != old) {
                    let res = check(o2, new, &roots[o2 as usize], &rn, &proof);
                    assert_eq!(
                        res.is_ok(),
                        proof == proof_of(o2, new),
                        "({old}, {new}) as ({o2}, {new})"
                    );
                }
                for n2 in (old..=max).filter(|&n2| n2 != new) {
                    let res = check(old, n2, &ro, &roots[n2 as usize], &proof);
                    assert_eq!(
                        res.is_ok(),
                        proof == proof_of(old, n2),
                        "({old}, {new}) as ({old}, {n2})"
                    );
                }

                // Wrong lengths.
                let wrong_len = |p: Vec<Hash>| {
                    let want = if old == 0 {
                        ConsistencyError::OldSizeZeroNonEmptyProof { got: p.len() }
                    } else {
                        ConsistencyError::WrongProofLength {
                            old,
                            new,
                            expected: proof.len(),
                            got: p.len(),
                        }
                    };
                    assert_eq!(check(old, new, &ro, &rn, &p), Err(want));
                };
                if !proof.is_empty() {
                    wrong_len(proof[..proof.len() - 1].to_vec());
                    wrong_len(proof[1..].to_vec());
                    wrong_len(Vec::new());
                }
                for extra in [junk, ro, rn] {
                    let mut p = proof.clone();
                    p.push(extra);
                    wrong_len(p);
                    let mut p = vec![extra];
                    p.extend_from_slice(&proof);
                    wrong_len(p);
                }
            }
        }
    }

    #[test]
    fn rejects_bad_consistency_blake3() {
        rejects_consistency(Blake3Hasher, REJECT);
    }

    #[test]
    fn rejects_bad_consistency_sha256() {
        rejects_consistency(Sha256Hasher, REJECT);
    }

    #[test]
    fn consistency_edge_cases() {
        let h = Blake3Hasher;
        let e = h.empty_root();
        let x = h.hash_leaf(b"x");
        let y = h.hash_leaf(b"y");
        let c = |o: u64, n: u64, ro: &Hash, rn: &Hash, p: &[Hash]| {
            check_consistency(&h, TreeSize(o), TreeSize(n), ro, rn, p)
        };
        // old == 0.
        assert_eq!(c(0, 0, &e, &e, &[]), Ok(()));
        assert_eq!(c(0, 0, &x, &e, &[]), Err(ConsistencyError::OldRootMismatch));
        assert_eq!(c(0, 0, &e, &x, &[]), Err(ConsistencyError::NewRootMismatch));
        assert_eq!(c(0, 5, &e, &x, &[]), Ok(()));
        assert_eq!(c(0, 5, &x, &x, &[]), Err(ConsistencyError::OldRootMismatch));
        assert_eq!(
            c(0, 5, &e, &x, &[e]),
            Err(ConsistencyError::OldSizeZeroNonEmptyProof { got: 1 })
        );
        assert_eq!(
            c(0, 0, &e, &e, &[e]),
            Err(ConsistencyError::OldSizeZeroNonEmptyProof { got: 1 })
        );
        // old == new.
        assert_eq!(c(3, 3, &x, &x, &[]), Ok(()));
        assert_eq!(
            c(3, 3, &x, &y, &[]),
            Err(ConsistencyError::SameSizeRootMismatch { size: 3 })
        );
        assert_eq!(
            c(3, 3, &x, &x, &[x]),
            Err(ConsistencyError::WrongProofLength {
                old: 3,
                new: 3,
                expected: 0,
                got: 1
            })
        );
        // old > new.
        assert_eq!(
            c(4, 3, &x, &x, &[]),
            Err(ConsistencyError::OldSizeTooLarge { old: 4, new: 3 })
        );
        assert_eq!(
            c(1, 0, &x, &e, &[]),
            Err(ConsistencyError::OldSizeTooLarge { old: 1, new: 0 })
        );
        // 0 < old < new needs a proof.
        assert_eq!(
            c(1, 2, &x, &y, &[]),
            Err(ConsistencyError::WrongProofLength {
                old: 1,
                new: 2,
                expected: 1,
                got: 0
            })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn consistency_roundtrip(
            (new, old) in (0..=BIG).prop_flat_map(|n| (Just(n), 0..=n))
        ) {
            let h = Blake3Hasher;
            let (tree, lh) = big_tree();
            let r = prefix(tree, new);
            let proof = prove_consistency(&h, &r, TreeSize(old), TreeSize(new)).unwrap();
            let bits = u64::from(bit_len(new));
            prop_assert!(r.reads.get() <= 2 * bits + 1, "{} reads", r.reads.get());
            prop_assert_eq!(&proof, &ref_proof(&h, old as usize, &lh[..new as usize]));
            let ro = ref_mth(&h, &lh[..old as usize]);
            let rn = ref_mth(&h, &lh[..new as usize]);
            check_consistency(&h, TreeSize(old), TreeSize(new), &ro, &rn, &proof).unwrap();
            if old > 0 && old < new {
                prop_assert!(check_consistency(&h, TreeSize(old), TreeSize(new), &rn, &ro, &proof).is_err());
                let mut bad = proof.clone();
                let last = bad.len() - 1;
                bad[last][0] ^= 1;
                prop_assert!(check_consistency(&h, TreeSize(old), TreeSize(new), &ro, &rn, &bad).is_err());
            }
            // The frontier rebuilt at `old`, grown to `new`, has the new root.
            let mut f = Frontier::load(tree, TreeSize(old)).unwrap();
            prop_assert_eq!(f.root(&h), ro);
            for l in &lh[old as usize..new as usize] {
                f.append(&h, *l);
            }
            prop_assert_eq!(f.root(&h), rn);
        }

    }
}
