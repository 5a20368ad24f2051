//! The state map's keys on disk: the `MapLeaf` table holds every key's latest value, and
//! [`LeafSource`] serves it to a [`StateMap`](crate::core::map::StateMap) that keeps only its
//! upper levels in memory, as of any leaf index (rolling back values written later through
//! the key index).

use crate::core::hash::Hash;
use crate::core::map::{MapSource, MapValue};
use crate::store::{scan_prefix, Table, View};

use super::schema::{decode_key_index, decode_map_leaf, require_event};
use super::LedgerError;

/// Subtrees of the state map with at most this many keys are kept on disk, not in memory.
pub const MAP_BUCKET: usize = 16;

/// The map's keys as of tree size `as_of`, read from a store.
pub struct LeafSource<'a> {
    pub store: &'a dyn View,
    /// Values of entries at or past this index are rolled back to the key's previous entry
    /// (or the key is left out if it has none).
    pub as_of: u64,
    /// If set, keys greater than this are left out (while a map is rebuilt in key order).
    pub upto: Option<Hash>,
}

impl LeafSource<'_> {
    /// Every key's value in `start..end` (key order), as of `self.as_of`.
    pub fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<Vec<(Hash, MapValue)>, LedgerError> {
        let mut out = Vec::new();
        for r in self.store.scan(Table::MapValue, start, end) {
            let (k, v) = r?;
            let (key, value) = decode_map_leaf(&k, &v)?;
            if self.upto.is_some_and(|u| key > u) {
                break;
            }
            if let Some(v) = self.resolve(&key, value)? {
                out.push((key, v));
            }
        }
        Ok(out)
    }

    /// The value as of `self.as_of` of a key whose latest value is `latest`.
    pub fn resolve(&self, key: &Hash, latest: MapValue) -> Result<Option<MapValue>, LedgerError> {
        if latest.index < self.as_of {
            Ok(Some(latest))
        } else {
            self.previous(key)
        }
    }

    /// `key`'s value before `self.as_of`: its last entry below that index, if any.
    fn previous(&self, key: &Hash) -> Result<Option<MapValue>, LedgerError> {
        let mut last = None;
        for r in scan_prefix(self.store, Table::KeyIndex, key) {
            let (k, v) = r?;
            let head = decode_key_index(&k, &v)?;
            if head.index >= self.as_of {
                break;
            }
            last = Some(head.index);
        }
        let Some(index) = last else {
            return Ok(None);
        };
        Ok(Some(MapValue {
            index,
            leaf_hash: require_event(self.store, index)?.leaf_hash(),
        }))
    }
}

impl MapSource for LeafSource<'_> {
    type Error = Box<LedgerError>;

    fn load(&self, prefix: &Hash, bits: usize) -> Result<Vec<(Hash, MapValue)>, Box<LedgerError>> {
        let (lo, hi) = crate::core::map::prefix_bounds(prefix, bits);
        match hi {
            Some(hi) => self.range(&lo, Some(&hi)),
            None => self.range(&lo, None),
        }
        .map_err(Box::new)
    }
}
