//! The map's value type and its three hashes (docs/FORMAT.md §5, "Hashes"), BLAKE3 with a
//! 32-byte output, `||` concatenation:
//!
//! - `EMPTY` = 32 zero bytes: the hash of a subtree with no key;
//! - `leaf(K, v)` = `BLAKE3(0x02 || K || u64_le(v.index) || v.leaf_hash)` (73 bytes in): the
//!   hash of a subtree that holds exactly one key `K`, at whatever depth that subtree sits;
//! - `node(L, R)` = `BLAKE3(0x03 || L || R)` (65 bytes in): the hash of a subtree that holds
//!   two or more keys, where `L` and `R` are the hashes of its halves (either may be `EMPTY`
//!   when all its keys fall into one half).

use serde::{Deserialize, Serialize};

use super::bits::key_bit;
use super::Hash;

/// The hash of an empty subtree, and the root of the empty map: 32 zero bytes.
pub const EMPTY: Hash = [0; 32];

/// Domain-separation byte of a leaf hash.
pub const LEAF_TAG: u8 = 0x02;

/// Domain-separation byte of an inner-node hash.
pub const NODE_TAG: u8 = 0x03;

/// What the map stores for a key: the key's latest log entry.
///
/// JSON: `{"index": 5, "leaf_hash": "<64 lowercase hex digits>"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapValue {
    /// Index of the entry in the log.
    pub index: u64,
    /// The entry's log leaf hash.
    #[serde(with = "crate::hash::hex_array")]
    pub leaf_hash: Hash,
}

/// `BLAKE3(0x02 || key || u64_le(value.index) || value.leaf_hash)`.
pub fn hash_leaf(key: &Hash, value: &MapValue) -> Hash {
    let mut buf = [0u8; 1 + 32 + 8 + 32];
    buf[0] = LEAF_TAG;
    buf[1..33].copy_from_slice(key);
    buf[33..41].copy_from_slice(&value.index.to_le_bytes());
    buf[41..73].copy_from_slice(&value.leaf_hash);
    *blake3::hash(&buf).as_bytes()
}

/// `BLAKE3(0x03 || left || right)`.
pub fn hash_node(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 1 + 32 + 32];
    buf[0] = NODE_TAG;
    buf[1..33].copy_from_slice(left);
    buf[33..65].copy_from_slice(right);
    *blake3::hash(&buf).as_bytes()
}

/// `node(h, sibling)` if bit `i` of `key` is 0, else `node(sibling, h)`: the hash one level up
/// from `h`, the subtree at depth `i + 1` on `key`'s path, next to `sibling`.
#[inline]
pub fn hash_up(h: &Hash, sibling: &Hash, key: &Hash, i: usize) -> Hash {
    if key_bit(key, i) == 0 {
        hash_node(h, sibling)
    } else {
        hash_node(sibling, h)
    }
}

/// Given the hash `h` of the subtree at depth `from` on `key`'s path, returns the hash of the
/// subtree at depth `to <= from` on the same path, when every level in between holds nothing
/// beside it (each level adds `node(h, EMPTY)` or `node(EMPTY, h)` by the bit of `key`).
pub(super) fn lift(mut h: Hash, from: usize, to: usize, key: &Hash) -> Hash {
    for j in (to..from).rev() {
        h = hash_up(&h, &EMPTY, key, j);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{k, kat_value, naive_leaf, naive_node};
    use super::*;

    #[test]
    fn hashes_follow_the_format() {
        let (a, b) = (k("a"), k("b"));
        let v = kat_value(7);
        assert_eq!(hash_leaf(&a, &v), naive_leaf(&a, &v));
        assert_eq!(hash_node(&a, &b), naive_node(&a, &b));
        assert_ne!(hash_node(&a, &b), hash_node(&b, &a));
        // `leaf(k1, v1)`, the one-key root of docs/FORMAT.md §5.
        assert_eq!(
            hex::encode(hash_leaf(&k("k1"), &kat_value(1))),
            "94069b2761d76784241449a64f4b45b96ba82dd3749a75152f7bd558a08c9225"
        );
    }

    #[test]
    fn lift_adds_one_empty_sibling_per_level() {
        let h = k("h");
        let mut key = [0u8; 32];
        key[0] = 0b0100_0000; // bits 0, 1 = 0, 1
        assert_eq!(lift(h, 2, 2, &key), h);
        let up1 = hash_node(&EMPTY, &h); // bit 1 is 1: h is the right half
        assert_eq!(lift(h, 2, 1, &key), up1);
        assert_eq!(lift(h, 2, 0, &key), hash_node(&up1, &EMPTY));
        assert_eq!(hash_up(&h, &up1, &key, 1), hash_node(&up1, &h));
    }
}
