//! Stored Merkle node hashes, read through the core's [`HashReader`].

use crate::core::hash::Hash;
use crate::core::leaf::{leaf_hash, Leaf};
use crate::core::tlog::HashReader;
use crate::store::{StoreError, Table, View};

use super::schema::{decode_node, index_key, node_key};

/// Reads node hashes from a store.
pub struct StoreNodes<'a>(pub &'a dyn View);

/// A node the tree needs but the store lacks or holds damaged.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored Merkle node (level {level}, index {index}) is missing or damaged")]
    Missing { level: u8, index: u64 },
}

impl HashReader for StoreNodes<'_> {
    type Error = NodeError;
    fn read_node(&self, level: u8, index: u64) -> Result<Hash, NodeError> {
        if level == 0 {
            let v = self.0.get(Table::Leaf, &index_key(index))?;
            return v
                .filter(|v| Leaf::decode(v).is_ok())
                .map(|v| leaf_hash(&v))
                .ok_or(NodeError::Missing { level, index });
        }
        let v = self.0.get(Table::Node, &node_key(level, index))?;
        v.and_then(|v| decode_node(&v))
            .ok_or(NodeError::Missing { level, index })
    }
}

/// The lowest level whose node hashes are also kept in memory.
pub const UPPER_LEVEL: u8 = 4;

/// Node hashes of the levels at and above [`UPPER_LEVEL`], in memory: every proof passes
/// through them, and they are few (about four bytes per entry in all). Nodes never change once
/// written, so the cache only grows, in index order, after each commit.
#[derive(Default)]
pub struct UpperNodes {
    /// `levels[l - UPPER_LEVEL][i]` is node (l, i).
    levels: std::sync::RwLock<Vec<Vec<Hash>>>,
}

impl UpperNodes {
    /// Reads the upper nodes of a tree of `size` leaves from the store.
    pub fn load(store: &dyn View, size: u64) -> Result<UpperNodes, NodeError> {
        let mut levels = Vec::new();
        for level in UPPER_LEVEL..64 {
            let count = size >> level;
            if count == 0 {
                break;
            }
            let mut hashes = Vec::with_capacity(count as usize);
            let end = node_key(level, count);
            for r in store.scan(Table::Node, &node_key(level, 0), Some(&end)) {
                let (k, v) = r?;
                let index = hashes.len() as u64;
                let hash: Hash = decode_node(&v)
                    .filter(|_| k == node_key(level, index))
                    .ok_or(NodeError::Missing { level, index })?;
                hashes.push(hash);
            }
            if hashes.len() as u64 != count {
                return Err(NodeError::Missing {
                    level,
                    index: hashes.len() as u64,
                });
            }
            levels.push(hashes);
        }
        Ok(UpperNodes {
            levels: std::sync::RwLock::new(levels),
        })
    }

    /// Records newly stored nodes (any level; those below [`UPPER_LEVEL`] are ignored), in the
    /// order they were made.
    pub fn extend(&self, nodes: &[(u8, u64, Hash)]) {
        let mut levels = self.levels.write().expect("upper nodes");
        for &(level, index, hash) in nodes {
            if level < UPPER_LEVEL {
                continue;
            }
            let l = (level - UPPER_LEVEL) as usize;
            if levels.len() <= l {
                levels.resize(l + 1, Vec::new());
            }
            if levels[l].len() as u64 == index {
                levels[l].push(hash);
            }
        }
    }

    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        let levels = self.levels.read().expect("upper nodes");
        levels
            .get((level - UPPER_LEVEL) as usize)?
            .get(index as usize)
            .copied()
    }
}

/// Node hashes from memory for the upper levels, from the store below them.
pub struct CachedNodes<'a> {
    pub store: &'a dyn View,
    pub upper: &'a UpperNodes,
}

impl HashReader for CachedNodes<'_> {
    type Error = NodeError;
    fn read_node(&self, level: u8, index: u64) -> Result<Hash, NodeError> {
        if level >= UPPER_LEVEL {
            if let Some(h) = self.upper.get(level, index) {
                return Ok(h);
            }
        }
        StoreNodes(self.store).read_node(level, index)
    }
}
