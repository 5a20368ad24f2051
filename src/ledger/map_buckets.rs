//! The state map's buckets as of one snapshot, each read from the store once and kept for the
//! proofs that follow.
//!
//! The ledger's map keeps its subtrees of at most [`MAP_BUCKET`](super::leaves::MAP_BUCKET)
//! keys on disk; every map proof loads one (a range read of its keys, and a second look at a
//! key written since the snapshot). A batch of proofs against one snapshot asks for the same
//! buckets again and again (at 1M entries and 50k keys, each of about 3,000 buckets sixteen
//! times), so a snapshot keeps what it loaded, up to [`BUCKETS_CAP`] bytes. What the map does
//! with a bucket is unchanged: it still checks the keys against the bucket's count and hash
//! before it uses them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::core::hash::Hash;
use crate::core::map::{prefix_bounds, MapSource, MapValue};

/// Most bytes of keys and values a snapshot keeps (past it, buckets are read each time).
pub const BUCKETS_CAP: usize = 32 << 20;

type Keys = Arc<Vec<(Hash, MapValue)>>;

/// Buckets loaded for one snapshot, by their first key bits.
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
    by_prefix: HashMap<(Hash, usize), Keys>,
    bytes: usize,
}

impl MapBuckets {
    /// `src` with this cache in front: it must answer as of this cache's snapshot.
    pub fn source<'a, S: MapSource>(&'a self, src: S) -> Cached<'a, S> {
        Cached { src, buckets: self }
    }
}

/// A [`MapSource`] that asks its inner source only for buckets its snapshot has not seen.
pub struct Cached<'a, S> {
    src: S,
    buckets: &'a MapBuckets,
}

impl<S: MapSource> MapSource for Cached<'_, S> {
    type Error = S::Error;

    fn load(&self, prefix: &Hash, bits: usize) -> Result<Vec<(Hash, MapValue)>, S::Error> {
        let id = (prefix_bounds(prefix, bits).0, bits);
        if let Some(keys) = self
            .buckets
            .inner
            .lock()
            .expect("buckets")
            .by_prefix
            .get(&id)
        {
            return Ok(keys.to_vec());
        }
        let keys = self.src.load(prefix, bits)?;
        let size = keys.len() * std::mem::size_of::<(Hash, MapValue)>() + 64;
        let mut b = self.buckets.inner.lock().expect("buckets");
        if b.bytes + size <= BUCKETS_CAP && !b.by_prefix.contains_key(&id) {
            b.bytes += size;
            b.by_prefix.insert(id, Arc::new(keys.clone()));
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Counts loads and answers every key under the prefix from a fixed list.
    struct Counting<'a> {
        keys: &'a [(Hash, MapValue)],
        loads: &'a Cell<usize>,
    }

    impl MapSource for Counting<'_> {
        type Error = ();
        fn load(&self, prefix: &Hash, bits: usize) -> Result<Vec<(Hash, MapValue)>, ()> {
            self.loads.set(self.loads.get() + 1);
            let (lo, hi) = prefix_bounds(prefix, bits);
            Ok(self
                .keys
                .iter()
                .filter(|(k, _)| *k >= lo && hi.is_none_or(|h| *k < h))
                .copied()
                .collect())
        }
    }

    fn value(i: u64) -> MapValue {
        MapValue {
            index: i,
            leaf_hash: [i as u8; 32],
        }
    }

    /// A bucket is read once, whichever of its keys names it; other buckets are read apart.
    #[test]
    fn a_bucket_is_read_once() {
        let keys = [
            ([0x10; 32], value(1)),
            ([0x1f; 32], value(2)),
            ([0x80; 32], value(3)),
        ];
        let loads = Cell::new(0);
        let cache = MapBuckets::default();
        let src = cache.source(Counting {
            keys: &keys,
            loads: &loads,
        });
        let low = src.load(&[0x10; 32], 1).unwrap();
        assert_eq!(low, keys[..2].to_vec());
        assert_eq!(src.load(&[0x1f; 32], 1).unwrap(), low);
        assert_eq!(loads.get(), 1);
        assert_eq!(src.load(&[0x80; 32], 1).unwrap(), keys[2..].to_vec());
        assert_eq!(src.load(&[0x10; 32], 4).unwrap(), keys[..2].to_vec());
        assert_eq!(
            loads.get(),
            3,
            "other prefixes and depths are other buckets"
        );
    }
}
