//! Stored Merkle node hashes, read through the core's [`HashReader`].

use crate::core::entry::Entry;
use crate::core::hash::Hash;
use crate::core::tlog::HashReader;
use crate::store::{Store, StoreError, Table};

/// Key of a complete subtree's hash: level, then index big-endian.
pub fn node_key(level: u8, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = level;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Reads node hashes from a store.
pub struct StoreNodes<'a>(pub &'a dyn Store);

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
            let v = self.0.get(Table::Entry, &index.to_be_bytes())?;
            return v
                .and_then(|v| Entry::decode(&v).ok())
                .map(|e| e.leaf_hash())
                .ok_or(NodeError::Missing { level, index });
        }
        let v = self.0.get(Table::Node, &node_key(level, index))?;
        v.and_then(|v| v.try_into().ok())
            .ok_or(NodeError::Missing { level, index })
    }
}
