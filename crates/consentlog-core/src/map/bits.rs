//! The bits of a key that choose its path through the map (docs/FORMAT.md §5, "Key bits").
//!
//! Bit `i` of `K` is `(K[i / 8] >> (7 - i % 8)) & 1`, for `i` in `0..256`: the most significant
//! bit of `K[0]` first. At depth `i`, bit `i` chooses a half: 0 is the left, 1 the right.

use super::Hash;

/// The depth of the tree: the number of bits in a key.
pub const MAP_DEPTH: usize = 256;

/// Bit `i` of `key` (0 = left, 1 = right): `(key[i / 8] >> (7 - i % 8)) & 1`.
#[inline]
pub fn key_bit(key: &Hash, i: usize) -> u8 {
    (key[i / 8] >> (7 - i % 8)) & 1
}

/// The number of leading bits `a` and `b` share (256 if they are equal).
#[inline]
pub fn common_prefix_len(a: &Hash, b: &Hash) -> usize {
    for i in 0..32 {
        let x = a[i] ^ b[i];
        if x != 0 {
            return i * 8 + x.leading_zeros() as usize;
        }
    }
    MAP_DEPTH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_follow_the_format() {
        let mut k = [0u8; 32];
        k[0] = 0b1010_0000;
        k[31] = 1;
        let bits: Vec<u8> = (0..8).map(|i| key_bit(&k, i)).collect();
        assert_eq!(bits, [1, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(key_bit(&k, 255), 1);
        assert_eq!(key_bit(&k, 254), 0);
    }

    #[test]
    fn shared_prefixes() {
        let a = [0u8; 32];
        assert_eq!(common_prefix_len(&a, &a), MAP_DEPTH);
        for bit in [0, 1, 7, 8, 100, 255] {
            let mut b = a;
            b[bit / 8] ^= 0x80 >> (bit % 8);
            assert_eq!(common_prefix_len(&a, &b), bit);
            assert_eq!(common_prefix_len(&b, &a), bit);
        }
    }
}
