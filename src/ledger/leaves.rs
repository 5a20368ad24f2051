//! The state map's keys on disk: the `MapLeaf` table holds every key's latest value, and
//! [`LeafSource`] serves it to a [`StateMap`](crate::core::map::StateMap) that keeps only its
//! upper levels in memory, as of any tree size (rolling back values written later through
//! the key index).

use crate::core::entry::Entry;
use crate::core::hash::Hash;
use crate::core::map::{MapSource, MapValue};
use crate::store::{scan_prefix, StoreError, Table, View};

/// Subtrees of the state map with at most this many keys are kept on disk, not in memory.
pub const MAP_BUCKET: usize = 16;

/// `MapLeaf` value: index (u64 LE) || leaf hash.
pub fn leaf_value(v: &MapValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    out.extend_from_slice(&v.index.to_le_bytes());
    out.extend_from_slice(&v.leaf_hash);
    out
}

/// Decodes a `MapLeaf` pair.
pub fn decode_leaf(k: &[u8], v: &[u8]) -> Option<(Hash, MapValue)> {
    if v.len() != 40 {
        return None;
    }
    Some((
        k.try_into().ok()?,
        MapValue {
            index: u64::from_le_bytes(v[..8].try_into().ok()?),
            leaf_hash: v[8..].try_into().ok()?,
        },
    ))
}

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
    pub fn range(&self, start: &[u8], end: Option<&[u8]>) -> Result<Vec<(Hash, MapValue)>, String> {
        let mut out = Vec::new();
        for r in self.store.scan(Table::MapLeaf, start, end) {
            let (k, v) = r.map_err(|e| e.to_string())?;
            let (key, value) =
                decode_leaf(&k, &v).ok_or_else(|| format!("damaged map leaf {}", hex(&k)))?;
            if self.upto.is_some_and(|u| key > u) {
                break;
            }
            if let Some(v) = self.resolve(&key, value).map_err(|e| e.to_string())? {
                out.push((key, v));
            }
        }
        Ok(out)
    }

    /// The value as of `self.as_of` of a key whose latest value is `latest`.
    pub fn resolve(&self, key: &Hash, latest: MapValue) -> Result<Option<MapValue>, StoreError> {
        if latest.index < self.as_of {
            Ok(Some(latest))
        } else {
            self.previous(key)
        }
    }

    /// `key`'s value before `self.as_of`: its last entry below that index, if any.
    fn previous(&self, key: &Hash) -> Result<Option<MapValue>, StoreError> {
        let mut last = None;
        for r in scan_prefix(self.store, Table::KeyIndex, key) {
            let (_, v) = r?;
            let Some(index) = v.get(..8).and_then(|b| b.try_into().ok()) else {
                return Err(StoreError::Engine(format!(
                    "damaged key index of {}",
                    hex(key)
                )));
            };
            let index = u64::from_le_bytes(index);
            if index >= self.as_of {
                break;
            }
            last = Some(index);
        }
        let Some(index) = last else {
            return Ok(None);
        };
        let bytes = self
            .store
            .get(Table::Entry, &index.to_be_bytes())?
            .ok_or_else(|| StoreError::Engine(format!("entry {index} is missing")))?;
        let entry =
            Entry::decode(&bytes).map_err(|e| StoreError::Engine(format!("entry {index}: {e}")))?;
        Ok(Some(MapValue {
            index,
            leaf_hash: entry.leaf_hash(),
        }))
    }
}

impl MapSource for LeafSource<'_> {
    type Error = String;

    fn load(&self, prefix: &Hash, bits: usize) -> Result<Vec<(Hash, MapValue)>, String> {
        let (lo, hi) = prefix_bounds(prefix, bits);
        match hi {
            Some(hi) => self.range(&lo, Some(&hi)),
            None => self.range(&lo, None),
        }
    }
}

/// The key range of the keys sharing the first `bits` bits of `prefix`: from those bits
/// followed by zeros, up to (not including) the next such prefix (None: to the end).
fn prefix_bounds(prefix: &Hash, bits: usize) -> (Hash, Option<Hash>) {
    let mut lo = [0u8; 32];
    for (i, byte) in lo.iter_mut().enumerate() {
        let keep = bits.saturating_sub(i * 8).min(8);
        let mask = if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
        *byte = prefix[i] & mask;
    }
    if bits == 0 {
        return (lo, None);
    }
    // Add 1 at bit `bits - 1`, carrying.
    let mut hi = lo;
    let mut byte = (bits - 1) / 8;
    let mut add = 1u16 << (7 - (bits - 1) % 8);
    loop {
        let sum = hi[byte] as u16 + add;
        hi[byte] = sum as u8;
        if sum < 0x100 {
            return (lo, Some(hi));
        }
        if byte == 0 {
            return (lo, None);
        }
        add = 1;
        byte -= 1;
    }
}

fn hex(b: &[u8]) -> String {
    crate::core::hash::to_hex(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let mut p = [0u8; 32];
        p[0] = 0b1011_0110;
        p[1] = 0xff;
        let (lo, hi) = prefix_bounds(&p, 3);
        assert_eq!(lo[0], 0b1010_0000);
        assert_eq!(&lo[1..], &[0u8; 31]);
        assert_eq!(hi.unwrap()[0], 0b1100_0000);
        let (lo, hi) = prefix_bounds(&p, 16);
        assert_eq!((lo[0], lo[1]), (0b1011_0110, 0xff));
        let hi = hi.unwrap();
        assert_eq!((hi[0], hi[1]), (0b1011_0111, 0));
        assert_eq!(prefix_bounds(&p, 0), ([0u8; 32], None));
        assert_eq!(prefix_bounds(&[0xff; 32], 9).1, None);
        let (lo, hi) = prefix_bounds(&[0xab; 32], 256);
        assert_eq!(lo, [0xab; 32]);
        let mut want = [0xab; 32];
        want[31] = 0xac;
        assert_eq!(hi, Some(want));
    }
}
