//! The right frontier of a growing tree (RFC 9162 §2.1.2): appends and the root without reading
//! anything.

use super::hasher::TreeHasher;
use super::tree_hash::{HashReader, TreeSize};
use super::Hash;

/// The right frontier ("compact range") of a growing tree: enough to append
/// and compute the root without reading anything.
///
/// It holds one hash per set bit of the size: the roots of the complete,
/// aligned subtrees that partition `[0, size)`, largest (leftmost) first.
/// This is the stack of RFC 9162 §2.1.2, kept between appends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// `nodes[j]` covers the `j`-th set bit of `size`, from the highest.
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> TreeSize {
        TreeSize(self.size)
    }

    /// Appends a leaf hash; returns every complete subtree node that became
    /// known, as `(level, index, hash)`, starting with
    /// `(0, leaf index, leaf_hash)`. The caller stores these so a
    /// [`HashReader`] can serve them.
    pub fn append<H: TreeHasher>(&mut self, h: &H, leaf_hash: Hash) -> Vec<(u8, u64, Hash)> {
        let mut out = Vec::with_capacity(1 + self.size.trailing_ones() as usize);
        self.append_with(h, leaf_hash, |level, index, hash| {
            out.push((level, index, *hash));
        });
        out
    }

    /// Like [`Frontier::append`], but hands each new node to `f` instead of
    /// collecting them, in the same order. Does not allocate unless the
    /// frontier itself has to grow.
    ///
    /// # Panics
    /// If the tree already has `u64::MAX` leaves.
    pub fn append_with<H: TreeHasher>(
        &mut self,
        h: &H,
        leaf_hash: Hash,
        mut f: impl FnMut(u8, u64, &Hash),
    ) {
        let size = self.size.checked_add(1).expect("tree size overflows u64");
        let mut index = self.size;
        let mut level = 0u8;
        let mut node = leaf_hash;
        f(level, index, &node);
        // Every trailing 1 bit of the old size is a complete left sibling
        // that merges with the new node.
        while index & 1 == 1 {
            let left = self.nodes.pop().expect("frontier has one node per set bit");
            node = h.hash_children(&left, &node);
            level += 1;
            index >>= 1;
            f(level, index, &node);
        }
        self.nodes.push(node);
        self.size = size;
    }

    /// The frontier's nodes as `(level, index, hash)`, largest (leftmost) first: the complete
    /// subtrees that partition `[0, size)`.
    pub fn subtrees(&self) -> impl Iterator<Item = (u8, u64, Hash)> + '_ {
        let mut start = 0u64;
        (0..64u8)
            .rev()
            .filter(|level| self.size & (1 << level) != 0)
            .zip(self.nodes.iter())
            .map(move |(level, hash)| {
                let node = (level, start >> level, *hash);
                start += 1 << level;
                node
            })
    }

    /// `MTH(D[0:size])`, folding the frontier from the right (RFC 9162
    /// §2.1.2).
    pub fn root<H: TreeHasher>(&self, h: &H) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        match nodes.next() {
            None => h.empty_root(),
            Some(last) => nodes.fold(*last, |acc, left| h.hash_children(left, &acc)),
        }
    }

    /// Rebuilds the frontier of a tree of `size` leaves from stored nodes
    /// (`popcount(size)` reads).
    pub fn load<R: HashReader>(r: &R, size: TreeSize) -> Result<Self, R::Error> {
        let size = size.0;
        let mut nodes = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size & (1 << level) != 0 {
                nodes.push(r.read_node(level, start >> level)?);
                start += 1 << level;
            }
        }
        Ok(Self { size, nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MemoryTree, Sha256Hasher};
    use super::*;

    /// Each frontier node is the stored node of the tree at its level and index.
    #[test]
    fn subtrees_are_the_trees_nodes() {
        let mut tree = MemoryTree::new(Sha256Hasher);
        for n in 0..70u32 {
            let f = tree.frontier().clone();
            let nodes: Vec<_> = f.subtrees().collect();
            assert_eq!(nodes.len(), n.count_ones() as usize);
            let mut covered = 0;
            for (level, index, hash) in nodes {
                assert_eq!(index << level, covered);
                assert_eq!(tree.read_node(level, index), Ok(hash));
                covered += 1 << level;
            }
            assert_eq!(covered, u64::from(n));
            tree.push(&n.to_le_bytes());
        }
    }
}
