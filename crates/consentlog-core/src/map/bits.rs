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

/// The key range of the keys sharing the first `bits` bits of `prefix`: from those bits
/// followed by zeros, up to (not including) the next such prefix (None: to the end).
pub fn prefix_bounds(prefix: &Hash, bits: usize) -> (Hash, Option<Hash>) {
    let mut lo = [0u8; 32];
    for (i, byte) in lo.iter_mut().enumerate() {
        let keep = bits.saturating_sub(i * 8).min(8);
        let mask = if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
        *byte = prefix[i] & mask;
    }
    if bits == 0 {
        return (lo, None);
    }
    // Add 1 at bit `bits - 1`, carrying; past the last key: None.
    let mut hi = lo;
    let mut byte = (bits - 1) / 8;
    let mut add = 1u16 << (7 - (bits - 1) % 8);
    loop {
        let sum = hi[byte] as u16 + add;
        hi[byte] = sum as u8;
        if sum < 256 {
            return (lo, Some(hi));
        }
        if byte == 0 {
            return (lo, None);
        }
        byte -= 1;
        add = 1;
    }
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

    #[test]
    fn prefix_bounds_cover_the_prefix() {
        let mut p = [0u8; 32];
        p[0] = 0b1010_1111;
        let (lo, hi) = prefix_bounds(&p, 4);
        assert_eq!((lo[0], hi.map(|h| h[0])), (0b1010_0000, Some(0b1011_0000)));
        assert_eq!(prefix_bounds(&[0xff; 32], 8).1, None);
        assert_eq!(prefix_bounds(&p, 0), ([0; 32], None));
    }

    #[test]
    fn prefix_bounds_at_byte_edges() {
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
