//! The state map's buckets as of one snapshot, each read from the store and built once and
//! kept for the proofs that follow.
//!
//! The ledger's map keeps its subtrees of at most [`MAP_BUCKET`](super::leaves::MAP_BUCKET)
//! keys on disk; every map proof reaches one, reads its keys (a range read, and a second look
//! at a key written since the snapshot) and rebuilds its hashes. A batch of proofs against one
//! snapshot reaches the same buckets again and again (at 1M entries and 50k keys, each of
//! about 3,000 buckets sixteen times), so the snapshot keeps each subtree the map built, up to
//! [`BUCKETS_CAP`] keys. The map uses a kept subtree only if it is the one its stub names
//! (same depth and hash: `core::map::MapSource::kept`).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::core::hash::Hash;
use crate::core::map::{prefix_bounds, Built, MapSource, MapValue};

/// Most keys kept in built buckets for one snapshot (about 4 MiB of memory per 10,000 keys);
/// past it, buckets are read and built each time.
pub const BUCKETS_CAP: usize = 100_000;

/// Buckets built for one snapshot, by their first key bits and the depth of their slot.
#[derive(Default)]
pub struct MapBuckets {
    inner: Mutex<Buckets>,
}

impl Clone for MapBuckets {
    /// The same snapshot's buckets, so far.
    fn clone(&self) -> Self {
        MapBuckets {
            inner: Mutex::new(self.inner.lock().expect("buckets").clone()),
        }
    }
}

#[derive(Clone, Default)]
struct Buckets {
    built: HashMap<(Hash, usize, usize), Built>,
    keys: usize,
}

impl MapBuckets {
    /// `src` with this snapshot's built buckets in front: it must answer as of this snapshot.
    pub fn source<S: MapSource>(&self, src: S) -> Cached<'_, S> {
        Cached { src, buckets: self }
    }
}

/// A [`MapSource`] that keeps what the map built from it, for its snapshot.
pub struct Cached<'a, S> {
    src: S,
    buckets: &'a MapBuckets,
}

impl<S: MapSource> MapSource for Cached<'_, S> {
    type Error = S::Error;

    fn load(&self, prefix: &Hash, bits: usize) -> Result<Vec<(Hash, MapValue)>, S::Error> {
        self.src.load(prefix, bits)
    }

    fn kept(&self, prefix: &Hash, bits: usize, top: usize) -> Option<Built> {
        let id = (prefix_bounds(prefix, bits).0, bits, top);
        self.buckets
            .inner
            .lock()
            .expect("buckets")
            .built
            .get(&id)
            .cloned()
    }

    fn keep(&self, prefix: &Hash, bits: usize, top: usize, built: &Built) {
        let id = (prefix_bounds(prefix, bits).0, bits, top);
        let mut b = self.buckets.inner.lock().expect("buckets");
        if b.keys + built.keys() <= BUCKETS_CAP && !b.built.contains_key(&id) {
            b.keys += built.keys();
            b.built.insert(id, built.clone());
        }
    }
}
