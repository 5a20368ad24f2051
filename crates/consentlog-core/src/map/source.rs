//! Where a map that keeps only its upper levels in memory finds the keys below its stubs, and
//! why loading them can fail.
//!
//! A map made with [`StateMap::with_buckets`](super::StateMap::with_buckets) keeps each subtree
//! of at most `bucket` keys as a stub (its hash, the depth where its keys first differ, one of
//! its keys and its key count). When an insert or a proof reaches a stub, its keys are fetched
//! through a [`MapSource`]; they must hash to the stub's hash, or the operation fails with
//! [`MapError::Damaged`] and changes nothing.

use super::node_hash::MapValue;
use super::Hash;
use crate::hash::to_hex;

/// Where a map that keeps only its upper levels in memory finds the keys below its stubs
/// (the ledger reads them from its store).
pub trait MapSource {
    /// Why keys could not be loaded (storage, decoding...); reported as [`MapError::Source`].
    type Error;

    /// Every key whose first `bits` bits are those of `prefix`, with its value: sorted by key,
    /// distinct, and as of the state the map describes.
    fn load(&self, prefix: &Hash, bits: usize) -> Result<Vec<(Hash, MapValue)>, Self::Error>;

    /// The subtree of the keys under the first `bits` bits of `prefix`, for a slot at depth
    /// `top`, as this source was given it by [`MapSource::keep`] (none by default). The map
    /// uses it only if it is the stub's (same depth and hash); otherwise it loads the keys.
    fn kept(&self, _prefix: &Hash, _bits: usize, _top: usize) -> Option<Built> {
        None
    }

    /// Offers a subtree the map built from keys this source loaded (checked against its stub),
    /// for [`MapSource::kept`]: a source that answers for one fixed state may keep it, so that
    /// many proofs against that state build each subtree once. Ignored by default.
    fn keep(&self, _prefix: &Hash, _bits: usize, _top: usize, _built: &Built) {}
}

/// A subtree the map built from a [`MapSource`]'s keys (opaque; cheap to clone: shared).
#[derive(Clone)]
pub struct Built(pub(super) super::trie::Child);

impl Built {
    /// How many keys it holds.
    pub fn keys(&self) -> usize {
        self.0.count() as usize
    }
}

impl<S: MapSource + ?Sized> MapSource for &S {
    type Error = S::Error;

    fn load(&self, prefix: &Hash, bits: usize) -> Result<Vec<(Hash, MapValue)>, Self::Error> {
        (**self).load(prefix, bits)
    }

    fn kept(&self, prefix: &Hash, bits: usize, top: usize) -> Option<Built> {
        (**self).kept(prefix, bits, top)
    }

    fn keep(&self, prefix: &Hash, bits: usize, top: usize, built: &Built) {
        (**self).keep(prefix, bits, top, built)
    }
}

/// The source of a map that holds every key in memory: it has no stubs, so it never asks.
pub struct InMemory;

/// What [`InMemory`] answers if it is asked all the same.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error("the map holds every key in memory and has nothing to load")]
pub struct NothingToLoad;

impl MapSource for InMemory {
    type Error = NothingToLoad;

    fn load(&self, _prefix: &Hash, _bits: usize) -> Result<Vec<(Hash, MapValue)>, NothingToLoad> {
        Err(NothingToLoad)
    }
}

/// Why an operation on a map that loads its lower levels failed. The map is unchanged. `E` is
/// the [`MapSource::Error`] of the source it loads from.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum MapError<E> {
    /// The source could not load the keys under a stub.
    #[error("cannot load map keys: {0}")]
    Source(E),
    /// The keys the source loaded are not those of the stub: wrong count, unsorted, off the
    /// stub's prefix, or hashing to another root.
    #[error(
        "stored map keys under the first {bits} bits of {} do not match the map \
         (damaged storage)",
        to_hex(.prefix)
    )]
    Damaged {
        /// One of the stub's keys: the loaded keys must share its first `bits` bits.
        prefix: Hash,
        /// The depth where the stub's keys first differ.
        bits: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(
            InMemory.load(&[0; 32], 3),
            Err(NothingToLoad),
            "an in-memory map has nothing to load"
        );
        let e: MapError<NothingToLoad> = MapError::Source(NothingToLoad);
        assert_eq!(
            e.to_string(),
            "cannot load map keys: the map holds every key in memory and has nothing to load"
        );
        let e: MapError<NothingToLoad> = MapError::Damaged {
            prefix: [0xab; 32],
            bits: 5,
        };
        assert_eq!(
            e.to_string(),
            format!(
                "stored map keys under the first 5 bits of {} do not match the map \
                 (damaged storage)",
                "ab".repeat(32)
            )
        );
    }
}
