//! The incomplete subtrees on the right edge of one tree size, hashed once for many inclusion
//! proofs in that tree.
//!
//! An inclusion path (RFC 9162 §2.1.3.1) in a tree of `n` leaves splits `D[0:n]` at `k`, the
//! largest power of two below `n`, and recurses into one half; the other half's hash joins the
//! path. A left half is always complete and aligned: one stored node. A right half `D[k:n]` is
//! complete only when `n - k` is a power of two; otherwise its hash is recomputed from
//! `popcount(n - k)` stored nodes, and so again at every level where the path goes left of the
//! edge. These right halves are the same for every leaf of the tree: at most `log2(n)` of them,
//! `D[k_j:n]` for the split points `0 = k_0 < k_1 < ...` along the right edge. A [`RightEdge`]
//! holds their hashes, so a batch of proofs in one tree reads and hashes them once, not once
//! per proof. The paths it gives are those of [`prove_inclusion`](super::prove_inclusion),
//! hash for hash.

use super::hasher::TreeHasher;
use super::inclusion::{inclusion_path, inclusion_proof_len};
use super::tree_hash::{split_point, subtree_hash, HashReader, LeafIndex, TreeSize};
use super::{Hash, ProveError};

/// The hashes of `D[k_j:n]` for every split point `k_j` on the right edge of the tree of
/// `n` leaves (`k_0 = 0`: the first is the tree's root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RightEdge {
    size: TreeSize,
    /// `(k_j, MTH(D[k_j:n]))`, `k_j` increasing.
    subtrees: Vec<(u64, Hash)>,
}

impl RightEdge {
    /// Reads and hashes the right edge of the tree of `size` leaves: `popcount(size)` reads and
    /// as many hashes, the same as one root. `size` 0 has no edge (and no leaf to prove).
    pub fn new<H: TreeHasher, R: HashReader>(
        h: &H,
        r: &R,
        size: TreeSize,
    ) -> Result<RightEdge, R::Error> {
        let n = size.0;
        // Split points along the edge: D[k:n] splits at k + split_point(n - k) until one
        // leaf, or a complete subtree, is left (which no path splits further on this edge).
        let mut starts = Vec::new();
        let mut k = 0;
        while n - k >= 1 {
            starts.push(k);
            let rest = n - k;
            if rest.is_power_of_two() {
                break;
            }
            k += split_point(rest);
        }
        let mut subtrees = vec![(0, [0u8; 32]); starts.len()];
        // From the smallest up: D[k_j:n] = node(D[k_j:k_{j+1}], D[k_{j+1}:n]), the left one
        // complete and aligned (one stored node).
        let mut above: Option<Hash> = None;
        for (j, &start) in starts.iter().enumerate().rev() {
            let hash = match (above, starts.get(j + 1)) {
                (Some(right), Some(&next)) => {
                    h.hash_children(&subtree_hash(h, r, start, next)?, &right)
                }
                _ => subtree_hash(h, r, start, n)?,
            };
            subtrees[j] = (start, hash);
            above = Some(hash);
        }
        Ok(RightEdge { size, subtrees })
    }

    /// The tree size this edge belongs to.
    pub fn size(&self) -> TreeSize {
        self.size
    }

    /// The tree's root, `MTH(D[0:n])` (`None` for the empty tree).
    pub fn root(&self) -> Option<Hash> {
        self.subtrees.first().map(|(_, h)| *h)
    }

    /// `MTH(D[start:end])` if it is one of the edge's subtrees.
    pub(super) fn get(&self, start: u64, end: u64) -> Option<Hash> {
        if end != self.size.0 {
            return None;
        }
        self.subtrees
            .binary_search_by_key(&start, |(k, _)| *k)
            .ok()
            .map(|j| self.subtrees[j].1)
    }

    /// [`prove_inclusion`](super::prove_inclusion) of leaf `index` in this edge's tree, the
    /// edge's subtrees taken from here instead of recomputed.
    pub fn prove_inclusion<H: TreeHasher, R: HashReader>(
        &self,
        h: &H,
        r: &R,
        index: LeafIndex,
    ) -> Result<Vec<Hash>, ProveError<R::Error>> {
        let (m, n) = (index.0, self.size.0);
        if m >= n {
            return Err(ProveError::IndexOutOfRange { index: m, size: n });
        }
        let mut proof = Vec::with_capacity(inclusion_proof_len(m, n));
        inclusion_path(h, r, Some(self), m, 0, n, &mut proof).map_err(ProveError::Read)?;
        Ok(proof)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{prove_inclusion, tree_hash, Blake3Hasher, Sha256Hasher};
    use super::*;

    /// For every tree of up to 130 leaves: the edge's root is the tree's, every path it gives
    /// is `prove_inclusion`'s, and building it reads `popcount(n)` nodes, as one root does.
    #[test]
    fn edge_paths_are_the_plain_paths() {
        let h = Blake3Hasher;
        let (tree, lh) = big_tree();
        for n in 1..=130u64 {
            let r = prefix(tree, n);
            r.reads.set(0);
            let edge = RightEdge::new(&h, &r, TreeSize(n)).unwrap();
            assert_eq!(
                r.reads.get(),
                u64::from(n.count_ones()),
                "reads for size {n}"
            );
            assert_eq!(
                edge.root(),
                Some(ref_mth(&h, &lh[..n as usize])),
                "root {n}"
            );
            assert_eq!(edge.size(), TreeSize(n));
            for m in 0..n {
                let want = prove_inclusion(&h, &r, LeafIndex(m), TreeSize(n)).unwrap();
                let got = edge.prove_inclusion(&h, &r, LeafIndex(m)).unwrap();
                assert_eq!(got, want, "leaf {m} of {n}");
                assert_eq!(got, ref_path(&h, m as usize, &lh[..n as usize]));
            }
            assert!(matches!(
                edge.prove_inclusion(&h, &r, LeafIndex(n)),
                Err(ProveError::IndexOutOfRange { .. })
            ));
        }
    }

    /// A path through the edge reads no edge node again: one stored node per hash of the path
    /// that is not an edge subtree, where the plain path reads each edge subtree's pieces.
    #[test]
    fn edge_paths_read_only_complete_siblings() {
        let h = Blake3Hasher;
        let (tree, _) = big_tree();
        let n = 1000;
        let r = prefix(tree, n);
        let edge = RightEdge::new(&h, &r, TreeSize(n)).unwrap();
        for m in [0, 1, 511, 512, 767, 768, 999] {
            r.reads.set(0);
            let p = edge.prove_inclusion(&h, &r, LeafIndex(m)).unwrap();
            let from_edge = p
                .iter()
                .filter(|x| edge.subtrees.iter().any(|(_, e)| e == *x));
            assert_eq!(
                r.reads.get() + from_edge.count() as u64,
                p.len() as u64,
                "leaf {m}"
            );
            r.reads.set(0);
            prove_inclusion(&h, &r, LeafIndex(m), TreeSize(n)).unwrap();
            assert!(r.reads.get() >= p.len() as u64, "leaf {m}");
        }
    }

    /// The empty tree has no edge and no leaf; RFC 6962's vectors agree.
    #[test]
    fn empty_and_known_answers() {
        let (t, lh) = ct_tree();
        let h = Sha256Hasher;
        let empty = RightEdge::new(&h, &t, TreeSize(0)).unwrap();
        assert_eq!(empty.root(), None);
        assert!(empty.prove_inclusion(&h, &t, LeafIndex(0)).is_err());
        for n in 1..=lh.len() as u64 {
            let edge = RightEdge::new(&h, &t, TreeSize(n)).unwrap();
            assert_eq!(edge.root(), Some(tree_hash(&h, &t, TreeSize(n)).unwrap()));
        }
    }
}
