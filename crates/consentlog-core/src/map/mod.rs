//! The authenticated state map: a compressed binary sparse Merkle tree from a 32-byte key `K`
//! to `K`'s latest log entry, `(index, leaf_hash)` (docs/FORMAT.md §5).
//!
//! One concept per file, so that a verifier needs only [`proof`] and what it stands on:
//!
//! | file | owns |
//! |---|---|
//! | [`bits`] | the key bits that choose a path, and shared prefixes |
//! | [`node_hash`] | the value type and the leaf, node and empty hashes |
//! | [`proof`] | proofs of a key's value or absence, and [`check`] (verifiers need only this) |
//! | [`source`] | [`MapSource`], where a map that keeps only its upper levels finds the rest |
//! | `trie` | the persistent path-compressed trie in memory (private) |
//! | [`state_map`] | [`StateMap`]: insert, get and [`StateMap::prove`] |
//!
//! # Construction
//!
//! * **Keys and paths.** The tree has depth 256 and is indexed by the bits of `K`, most
//!   significant bit of `K[0]` first ([`key_bit`]). At depth `i` (the root is at depth 0) bit
//!   `i` chooses the half a key falls into: 0 = left, 1 = right. The subtree at depth `d` on
//!   `K`'s path is the set of keys that share the first `d` bits of `K`.
//! * **Hashes** ([`node_hash`]): `EMPTY` for a subtree with no key, `leaf(K, v)` for a subtree
//!   that holds exactly one key `K`, **at whatever depth** that subtree sits (paths are
//!   compressed), and `node(L, R)` for a subtree of two or more keys.
//! * **Root.** The map root is the hash of the subtree at depth 0: `EMPTY` for the empty map,
//!   `leaf(K, v)` for a map holding one key. The root is a pure function of the set of
//!   `(key, value)` pairs: it does not depend on insertion order or batching.
//!
//! Proofs are `prove`d by [`StateMap::prove`] and `check`ed by [`check`], as the
//! prove/check pairs of [`crate::tlog`].

pub mod bits;
pub mod node_hash;
pub mod proof;
pub mod source;
pub mod state_map;
mod trie;

#[cfg(test)]
mod testutil;

pub use super::hash::{Hash, HexHash};
pub use bits::{common_prefix_len, key_bit, prefix_bounds, MAP_DEPTH};
pub use node_hash::{hash_leaf, hash_node, MapValue, EMPTY, LEAF_TAG, NODE_TAG};
pub use proof::{check, MapLeaf, MapProof, MapProofError};
pub use source::{Built, InMemory, MapError, MapSource, NothingToLoad};
pub use state_map::StateMap;
