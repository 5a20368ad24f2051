//! The tree's hash function (RFC 9162 §2.1.1): leaf = H(0x00 || data), node = H(0x01 || l || r),
//! empty = H(""). [`Sha256Hasher`] is RFC 6962 exactly: the log's hash (docs/FORMAT.md §4).
//! The tests also run the generic code with a BLAKE3 hasher, to show nothing assumes SHA-256.

use sha2::{Digest, Sha256};

use super::Hash;

/// Domain-separation prefix of leaf hashes (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of interior node hashes (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// Hash function of the tree (RFC 9162 §2.1.1): leaf = H(0x00 || data),
/// node = H(0x01 || l || r), empty = H("").
pub trait TreeHasher: Sync {
    /// `MTH({}) = HASH()`, the root of the tree with no leaves.
    fn empty_root(&self) -> Hash;
    /// `MTH({d}) = HASH(0x00 || d)`.
    fn hash_leaf(&self, data: &[u8]) -> Hash;
    /// `HASH(0x01 || left || right)`.
    fn hash_children(&self, left: &Hash, right: &Hash) -> Hash;
}

/// BLAKE3 with the RFC 9162 §2.1.1 domain-separation prefixes (tests only: a second hash
/// under the generic code).
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Blake3Hasher;

#[cfg(test)]
impl TreeHasher for Blake3Hasher {
    fn empty_root(&self) -> Hash {
        *blake3::hash(b"").as_bytes()
    }

    fn hash_leaf(&self, data: &[u8]) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&[LEAF_PREFIX]);
        h.update(data);
        *h.finalize().as_bytes()
    }

    fn hash_children(&self, left: &Hash, right: &Hash) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&[NODE_PREFIX]);
        h.update(left);
        h.update(right);
        *h.finalize().as_bytes()
    }
}

/// SHA-256 with the RFC 9162 §2.1.1 prefixes, i.e. RFC 6962 exactly: the log's tree hash.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sha256Hasher;

impl TreeHasher for Sha256Hasher {
    fn empty_root(&self) -> Hash {
        Sha256::digest(b"").into()
    }

    fn hash_leaf(&self, data: &[u8]) -> Hash {
        Sha256::new()
            .chain_update([LEAF_PREFIX])
            .chain_update(data)
            .finalize()
            .into()
    }

    fn hash_children(&self, left: &Hash, right: &Hash) -> Hash {
        Sha256::new()
            .chain_update([NODE_PREFIX])
            .chain_update(left)
            .chain_update(right)
            .finalize()
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn hashers_follow_rfc_definition() {
        let (l, r) = ([0x11u8; 32], [0x22u8; 32]);
        let data = b"consent";

        let s = Sha256Hasher;
        assert_eq!(s.empty_root(), hx(CT_ROOTS[0]));
        assert_eq!(s.empty_root(), sha256(&[]));
        assert_eq!(s.hash_leaf(data), sha256(&[&[0x00], data]));
        assert_eq!(s.hash_children(&l, &r), sha256(&[&[0x01], &l, &r]));
        assert_eq!(s.hash_leaf(b""), hx(CT_ROOTS[1]));
        assert_eq!(
            s.hash_leaf(&[0x00]),
            hx("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7")
        );

        let b = Blake3Hasher;
        assert_eq!(
            b.empty_root(),
            hx("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
        );
        assert_eq!(b.hash_leaf(data), blake3_concat(&[&[0x00], data]));
        assert_eq!(b.hash_children(&l, &r), blake3_concat(&[&[0x01], &l, &r]));

        // Domain separation: a node is not a leaf over the same bytes.
        let lr = [l, r].concat();
        assert_ne!(b.hash_leaf(&lr), b.hash_children(&l, &r));
        assert_ne!(s.hash_leaf(&lr), s.hash_children(&l, &r));
        // Order matters.
        assert_ne!(b.hash_children(&l, &r), b.hash_children(&r, &l));
    }
}
