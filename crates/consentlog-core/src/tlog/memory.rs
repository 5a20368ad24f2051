//! A tree held in memory, for tests and offline tools.

use thiserror::Error;

use super::frontier::Frontier;
use super::hasher::TreeHasher;
use super::tree_hash::{HashReader, LeafIndex, TreeSize};
use super::Hash;

/// A node that a [`MemoryTree`] does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("tree node (level {level}, index {index}) is not stored")]
pub struct MissingNode {
    /// The requested level.
    pub level: u8,
    /// The requested index within the level.
    pub index: u64,
}

/// In-memory tree for tests and offline tools: stores every complete
/// subtree hash, so it serves any historical size through [`HashReader`].
#[derive(Clone, Debug, Default)]
pub struct MemoryTree<H> {
    hasher: H,
    /// `levels[l][i] = node(l, i)`, complete subtrees only.
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl<H: TreeHasher> MemoryTree<H> {
    /// An empty tree using `hasher`.
    pub fn new(hasher: H) -> Self {
        Self {
            hasher,
            levels: Vec::new(),
            frontier: Frontier::new(),
        }
    }

    /// The tree's hasher.
    pub fn hasher(&self) -> &H {
        &self.hasher
    }

    /// Appends an already hashed leaf; returns its index.
    pub fn push_leaf_hash(&mut self, leaf_hash: Hash) -> LeafIndex {
        let index = LeafIndex(self.frontier.size().0);
        let levels = &mut self.levels;
        self.frontier
            .append_with(&self.hasher, leaf_hash, |level, index, hash| {
                let level = usize::from(level);
                if levels.len() == level {
                    levels.push(Vec::new());
                }
                debug_assert_eq!(levels[level].len() as u64, index);
                levels[level].push(*hash);
            });
        index
    }

    /// Hashes `data` as a leaf and appends it; returns its index.
    pub fn push(&mut self, data: &[u8]) -> LeafIndex {
        let leaf_hash = self.hasher.hash_leaf(data);
        self.push_leaf_hash(leaf_hash)
    }

    /// Number of leaves.
    pub fn size(&self) -> TreeSize {
        self.frontier.size()
    }

    /// Root of the current tree.
    pub fn root(&self) -> Hash {
        self.frontier.root(&self.hasher)
    }

    /// Leaf hash at `index`, if present.
    pub fn leaf_hash(&self, index: LeafIndex) -> Option<Hash> {
        self.read_node(0, index.0).ok()
    }

    /// The current right frontier.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }
}

impl<H> HashReader for MemoryTree<H> {
    type Error = MissingNode;

    fn read_node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        self.levels
            .get(usize::from(level))
            .and_then(|nodes| nodes.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(MissingNode { level, index })
    }
}
