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

/// The lowest level whose node hashes are also kept in memory. Level 3 rather than 4: an
/// inclusion path then reads three nodes from the store, not four, for twice the hashes in
/// memory (`prove --batch` at 1M entries: about 6% less CPU; the open reads 125k more rows,
/// about 40 ms). Level 2 gained nothing more: its longer open ate the saving.
pub const UPPER_LEVEL: u8 = 3;

/// Most bytes of node hashes [`UpperNodes`] keeps (about 8M entries' worth at eight bytes per
/// entry); beyond it the lowest levels kept are dropped, and read from the store again.
pub const UPPER_NODES_CAP: usize = 64 << 20;

/// Node hashes of the levels at and above [`UPPER_LEVEL`], in memory: every proof passes
/// through them, and they are few (about eight bytes per entry in all). Nodes never change once
/// written, so the cache only grows, in index order, after each commit, up to a cap: when the
/// hashes kept pass it, the lowest level kept is dropped (halving the memory), and its nodes
/// are read from the store like those below [`UPPER_LEVEL`].
pub struct UpperNodes {
    inner: std::sync::RwLock<Upper>,
    cap: usize,
}

struct Upper {
    /// The lowest level kept (≥ [`UPPER_LEVEL`]).
    lowest: u8,
    /// `levels[l - UPPER_LEVEL][i]` is node (l, i); empty below `lowest`.
    levels: Vec<Vec<Hash>>,
}

impl Default for UpperNodes {
    fn default() -> Self {
        UpperNodes::empty(UPPER_NODES_CAP)
    }
}

impl Upper {
    fn bytes(&self) -> usize {
        self.levels.iter().map(|l| l.len() * 32).sum()
    }

    /// Drops the lowest levels kept until the hashes fit in `cap`.
    fn fit(&mut self, cap: usize) {
        while self.bytes() > cap {
            let l = (self.lowest - UPPER_LEVEL) as usize;
            if l >= self.levels.len() {
                break;
            }
            self.levels[l] = Vec::new();
            self.lowest += 1;
        }
    }
}

impl UpperNodes {
    fn empty(cap: usize) -> Self {
        UpperNodes {
            inner: std::sync::RwLock::new(Upper {
                lowest: UPPER_LEVEL,
                levels: Vec::new(),
            }),
            cap,
        }
    }

    /// Reads the upper nodes of a tree of `size` leaves from the store.
    pub fn load(store: &dyn View, size: u64) -> Result<UpperNodes, NodeError> {
        Self::load_capped(store, size, UPPER_NODES_CAP)
    }

    /// [`UpperNodes::load`] keeping at most `cap` bytes of hashes: only the levels from the
    /// lowest one at which they fit.
    pub fn load_capped(store: &dyn View, size: u64, cap: usize) -> Result<UpperNodes, NodeError> {
        let fits = |from: u8| (from..64).map(|l| (size >> l) as usize * 32).sum::<usize>() <= cap;
        let lowest = (UPPER_LEVEL..64).find(|l| fits(*l)).unwrap_or(63);
        let mut levels = vec![Vec::new(); (lowest - UPPER_LEVEL) as usize];
        for level in lowest..64 {
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
            inner: std::sync::RwLock::new(Upper { lowest, levels }),
            cap,
        })
    }

    /// Records newly stored nodes (any level; those below the lowest level kept are ignored),
    /// in the order they were made.
    pub fn extend(&self, nodes: &[(u8, u64, Hash)]) {
        let mut u = self.inner.write().expect("upper nodes");
        for &(level, index, hash) in nodes {
            if level < u.lowest {
                continue;
            }
            let l = (level - UPPER_LEVEL) as usize;
            if u.levels.len() <= l {
                u.levels.resize(l + 1, Vec::new());
            }
            if u.levels[l].len() as u64 == index {
                u.levels[l].push(hash);
            }
        }
        u.fit(self.cap);
    }

    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        let u = self.inner.read().expect("upper nodes");
        if level < u.lowest {
            return None;
        }
        u.levels
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::tlog::{Frontier, Sha256Hasher};

    /// Past its cap the cache drops its lowest levels, keeps what it still answers right, and
    /// stays under the cap.
    #[test]
    fn the_cache_stays_under_its_cap() {
        let cap = 64 * 32; // 64 hashes
        let u = UpperNodes::empty(cap);
        let mut f = Frontier::new();
        let mut all = std::collections::HashMap::new();
        for i in 0..4096u64 {
            let nodes = f.append(&Sha256Hasher, [i as u8; 32]);
            u.extend(&nodes);
            for (l, ix, h) in nodes {
                all.insert((l, ix), h);
            }
            assert!(u.inner.read().unwrap().bytes() <= cap);
        }
        let lowest = u.inner.read().unwrap().lowest;
        assert!(lowest > UPPER_LEVEL, "levels were dropped");
        for ((l, ix), h) in &all {
            match u.get(*l, *ix) {
                Some(got) => assert_eq!(got, *h, "node ({l}, {ix})"),
                None => assert!(*l < lowest || *l < UPPER_LEVEL, "node ({l}, {ix}) lost"),
            }
        }
    }
}
