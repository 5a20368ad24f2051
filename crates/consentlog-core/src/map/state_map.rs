//! [`StateMap`]: the state map as a value, with insert, get and prove. Its nodes are those of
//! the private `trie` module.

use std::fmt;

use super::bits::{common_prefix_len, key_bit};
use super::node_hash::{lift, MapValue, EMPTY};
use super::proof::{MapLeaf, MapProof};
use super::source::{InMemory, MapError, MapSource};
use super::trie::{
    build, compact, expand, heap_bytes_of, merge_in_memory, merge_into, rep_on_path, Child, Cx,
    MAX_BYTES_PER_KEY,
};
use super::{Hash, HexHash};

/// Sorts `items` by key and keeps each key's last item in input order (the sort is stable):
/// the changes a batch makes, as [`StateMap::insert_batch`] applies them.
pub fn latest_per_key(items: &mut Vec<(Hash, MapValue)>) {
    items.sort_by_key(|item| item.0);
    items.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            *earlier = *later;
        }
        same
    });
}

/// The state map. Cheap to clone (persistent: `Arc`-shared nodes with path copying), so a
/// snapshot taken at a checkpoint can keep answering proofs while the live map changes.
///
/// A map made with [`StateMap::new`] holds every key in memory: one 72-byte leaf and (for two
/// or more keys) one 72-byte branch per key, each in its own `Arc` allocation (88 bytes, 96
/// with the allocator's header), so about 192 bytes per key; nodes shared with a clone are
/// counted once. A map made with [`StateMap::with_buckets`]`(b)` keeps only the subtrees of
/// more than `b` keys in memory: each subtree of 2..=`b` keys is a 104-byte stub (its hash, its
/// depth, one of its keys and its key count), and the keys below are loaded from a
/// [`MapSource`] when a proof or an insert reaches them. Memory is then about `2 × 104 / b`…
/// `2 × 96 / b` bytes per key in steady state (measured in docs/PERFORMANCE.md).
///
/// Such a map can also be [`capped`](StateMap::capped): its nodes in memory then never take
/// more than the cap after an insert. When an insert could take them past it, they are counted
/// exactly, and if they are over seven eighths of the cap the bucket size is doubled (and
/// again, until they are not): every branch of at most the new bucket size becomes a stub,
/// which loads nothing. Roots and proofs do not depend on the bucket size; a proof then loads
/// more keys from the source (about as many as the bucket size).
#[derive(Clone, Default)]
pub struct StateMap {
    root: Option<Child>,
    root_hash: Hash,
    len: usize,
    bucket: usize,
    /// The most heap bytes of nodes held after an insert (0: no cap).
    cap: usize,
    /// The heap bytes of the nodes held when they were last counted.
    counted: usize,
    /// The keys added since they were last counted (each adds at most
    /// [`MAX_BYTES_PER_KEY`]).
    added_since: usize,
}

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMap")
            .field("len", &self.len)
            .field("bucket", &self.bucket)
            .field("cap", &self.cap)
            .field("root", &HexHash(self.root_hash))
            .finish()
    }
}

impl StateMap {
    /// The empty map (root `EMPTY`), holding every key in memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// The empty map, keeping subtrees of at most `bucket` keys (at least 2) out of memory.
    pub fn with_buckets(bucket: usize) -> Self {
        assert!(bucket >= 2, "a bucket holds at least two keys");
        StateMap {
            bucket,
            ..Self::default()
        }
    }

    /// This map, keeping its nodes in memory within `cap_bytes` (as estimated by
    /// [`StateMap::bytes_in_memory`]) after every insert, by doubling its bucket size as often
    /// as needed (see [`StateMap`]). A batch may pass the cap while it is merged, by at most
    /// [`StateMap::MAX_BYTES_PER_KEY`] per key it adds. A cap of 0 is no cap.
    ///
    /// # Panics
    /// On a map holding every key in memory (made with [`StateMap::new`]): only a map with
    /// buckets can move keys out of memory.
    pub fn capped(mut self, cap_bytes: usize) -> Self {
        assert!(self.bucket >= 2, "only a map with buckets can be capped");
        self.cap = cap_bytes;
        self.fit(true);
        self
    }

    /// The empty map, holding every key in memory until its nodes pass seven eighths of
    /// `cap_bytes` (nonzero); from then on as [`StateMap::capped`] with buckets of 2 keys,
    /// doubled as often as needed. Keys are loaded from a source only once some are out of
    /// memory, so a map that stays small never loads any. Roots and proofs are those of every
    /// other map of the same keys.
    pub fn in_memory_until(cap_bytes: usize) -> Self {
        assert!(cap_bytes > 0, "a cap of some bytes");
        StateMap {
            cap: cap_bytes,
            ..Self::default()
        }
    }

    /// The most heap bytes one added key can add to the nodes in memory (256).
    pub const MAX_BYTES_PER_KEY: usize = MAX_BYTES_PER_KEY;

    /// Subtrees of at most this many keys are kept out of memory (0: none are). A capped map
    /// doubles it as it grows.
    pub fn bucket(&self) -> usize {
        self.bucket
    }

    /// The cap on the bytes of the nodes in memory (0: none).
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The heap bytes of the nodes held in memory: 96 per leaf and branch, 128 per stub (the
    /// node, its `Arc` counts and the allocator's header; shared nodes counted once per path).
    /// Walks every node: O(nodes).
    pub fn bytes_in_memory(&self) -> usize {
        self.root.as_ref().map_or(0, heap_bytes_of)
    }

    /// After keys were added (or if `recount`): if the nodes in memory may have passed the
    /// cap, counts them and, if they are over seven eighths of it, doubles the bucket size
    /// until they are not (or the whole map is one stub). Loads nothing.
    fn fit(&mut self, recount: bool) {
        if self.cap == 0 {
            return;
        }
        let bound = self
            .counted
            .saturating_add(self.added_since.saturating_mul(MAX_BYTES_PER_KEY));
        if bound <= self.cap && !recount {
            return;
        }
        self.counted = self.bytes_in_memory();
        self.added_since = 0;
        while self.counted > self.cap / 8 * 7 {
            let Some(root) = self.root.as_mut() else {
                break;
            };
            if !matches!(root, Child::Branch(_)) {
                break;
            }
            // A map holding every key (bucket 0) starts at buckets of two keys.
            self.bucket = self.bucket.max(1).saturating_mul(2);
            compact(root, self.bucket);
            self.counted = self.bytes_in_memory();
        }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map holds no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value stored for `key`, for a map holding every key in memory.
    ///
    /// # Panics
    /// On a map made with [`StateMap::with_buckets`]; use [`StateMap::get_from`].
    pub fn get(&self, key: &Hash) -> Option<MapValue> {
        self.get_from(key, &InMemory).expect(IN_MEMORY_ONLY)
    }

    /// The value stored for `key`, loading keys from `src` where needed.
    pub fn get_from<S: MapSource + ?Sized>(
        &self,
        key: &Hash,
        src: &S,
    ) -> Result<Option<MapValue>, MapError<S::Error>> {
        let proof = self.prove_from(key, src)?;
        Ok(proof.leaf.filter(|l| l.key == *key).map(|l| l.value()))
    }

    /// Inserts `key` or replaces its value, for a map holding every key in memory. Hashes
    /// O(depth of `key`'s path) nodes.
    ///
    /// # Panics
    /// On a map made with [`StateMap::with_buckets`]; use [`StateMap::insert_batch_from`].
    pub fn insert(&mut self, key: Hash, value: MapValue) {
        self.insert_batch(&[(key, value)]);
    }

    /// Same result as inserting `items` in order (the last value wins for equal keys), but
    /// sorts them by key and merges them in one pass, hashing each touched branch once. For a
    /// map holding every key in memory.
    ///
    /// # Panics
    /// On a map made with [`StateMap::with_buckets`]; use [`StateMap::insert_batch_from`].
    pub fn insert_batch(&mut self, items: &[(Hash, MapValue)]) {
        self.insert_batch_from(items, &InMemory)
            .expect(IN_MEMORY_ONLY)
    }

    /// [`StateMap::insert_batch`], loading the stubs the items fall into from `src`, which must
    /// describe this map's keys before the insert. On an error the map is unchanged.
    pub fn insert_batch_from<S: MapSource + ?Sized>(
        &mut self,
        items: &[(Hash, MapValue)],
        src: &S,
    ) -> Result<(), MapError<S::Error>> {
        if items.is_empty() {
            return Ok(());
        }
        let copy;
        let distinct: &[(Hash, MapValue)] = if items.windows(2).all(|w| w[0].0 < w[1].0) {
            items // already sorted, each key once (as an auditor hands them)
        } else {
            let mut sorted = items.to_vec();
            latest_per_key(&mut sorted);
            copy = sorted;
            &copy
        };
        let cx = Cx {
            bucket: self.bucket,
            src,
        };
        // Kept to undo a merge that fails (a stub's keys could not be loaded). A map that
        // has never had stubs (bucket 0) cannot fail, and not holding a second reference
        // lets the merge change its nodes in place instead of copying every path it touches.
        let before = (self.bucket > 0).then(|| self.root.clone());
        let result = match &mut self.root {
            None => {
                self.root = Some(build(distinct, 0, cx.bucket));
                Ok(distinct.len())
            }
            // A map that never had stubs loads nothing: its large batches hash on two threads.
            Some(root) if self.bucket == 0 => Ok(merge_in_memory(root, 0, distinct, None)),
            Some(root) => merge_into(root, 0, distinct, None, &cx),
        };
        match result {
            Ok(added) => {
                self.len += added;
                self.added_since += added;
                self.root_hash = self.root.as_ref().map_or(EMPTY, Child::hash);
                self.fit(false);
                Ok(())
            }
            Err(e) => {
                self.root = before.expect("only a map with stubs fails");
                Err(e)
            }
        }
    }

    /// The number of nodes held in memory (leaves, branches and stubs; shared nodes counted
    /// once per path), for measuring memory. Walks every node: O(nodes).
    pub fn nodes_in_memory(&self) -> usize {
        fn walk(c: &Child) -> usize {
            match c {
                Child::Leaf(_) | Child::Stub(_) => 1,
                Child::Branch(b) => 1 + walk(&b.left) + walk(&b.right),
            }
        }
        self.root.as_ref().map_or(0, walk)
    }

    /// The map root (cached; O(1)).
    pub fn root(&self) -> Hash {
        self.root_hash
    }

    /// A proof of `key`'s value, or of its absence, against [`StateMap::root`], for a map
    /// holding every key in memory.
    ///
    /// # Panics
    /// On a map made with [`StateMap::with_buckets`]; use [`StateMap::prove_from`].
    pub fn prove(&self, key: &Hash) -> MapProof {
        self.prove_from(key, &InMemory).expect(IN_MEMORY_ONLY)
    }

    /// [`StateMap::prove`], loading the stub on `key`'s path (if any) from `src`, which must
    /// describe this map's keys; the loaded keys are checked against the stub's hash.
    pub fn prove_from<S: MapSource + ?Sized>(
        &self,
        key: &Hash,
        src: &S,
    ) -> Result<MapProof, MapError<S::Error>> {
        let mut siblings = Vec::new();
        let Some(root) = self.root.as_ref() else {
            return Ok(MapProof {
                leaf: None,
                siblings,
            });
        };
        let mut cur = root.clone();
        let mut top = 0;
        loop {
            // The subtree in `cur` sits in a slot at depth `top` on `key`'s path.
            let (bit, own_or_rep) = match &cur {
                Child::Leaf(l) => {
                    return Ok(MapProof {
                        leaf: Some(MapLeaf::new(l.key, l.value)),
                        siblings,
                    });
                }
                Child::Branch(b) => (b.bit as usize, None),
                Child::Stub(s) => (s.bit as usize, Some((s.own, s.rep))),
            };
            // The keys below share bits `0..bit`. If `key` leaves them at a depth
            // `shared < bit`, it is absent: the sibling there is this subtree seen from
            // depth `shared + 1`, and `key`'s half is empty.
            if bit > top {
                let (own, rep) = match (&cur, own_or_rep) {
                    (_, Some(x)) => x,
                    (Child::Branch(b), None) => (b.own_hash(), *rep_on_path(&cur, key)),
                    _ => unreachable!(),
                };
                let shared = common_prefix_len(key, &rep);
                if shared < bit {
                    siblings.resize(shared, HexHash(EMPTY));
                    siblings.push(HexHash(lift(own, bit, shared + 1, &rep)));
                    return Ok(MapProof {
                        leaf: None,
                        siblings,
                    });
                }
            }
            let next = match &cur {
                Child::Stub(s) => expand(s, top, src)?,
                Child::Branch(b) => {
                    siblings.resize(bit, HexHash(EMPTY));
                    let side = key_bit(key, bit);
                    siblings.push(HexHash(b.child(1 - side).hash()));
                    top = bit + 1;
                    b.child(side).clone()
                }
                Child::Leaf(_) => unreachable!(),
            };
            cur = next;
        }
    }
}

const IN_MEMORY_ONLY: &str = "a map holding every key in memory never loads from a source";

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::super::testutil::*;
    use super::super::trie::STUB_BYTES;
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    // --- 1. Property tests against a BTreeMap model. ---

    #[derive(Clone, Debug)]
    enum Op {
        /// A fresh random key.
        Fresh([u8; 32]),
        /// Overwrite an earlier key (by index modulo the keys so far).
        Overwrite(usize),
        /// An earlier key with one bit flipped (often a late bit: a long shared prefix).
        Near(usize, usize),
    }

    fn op() -> impl Strategy<Value = (Op, u64)> {
        let op = prop_oneof![
            3 => any::<[u8; 32]>().prop_map(Op::Fresh),
            1 => any::<usize>().prop_map(Op::Overwrite),
            2 => (any::<usize>(), prop_oneof![200usize..256, 0usize..256])
                .prop_map(|(i, b)| Op::Near(i, b)),
        ];
        (op, any::<u64>())
    }

    /// Turns ops into the (key, value) sequence they insert.
    fn realize(ops: &[(Op, u64)]) -> Vec<(Hash, MapValue)> {
        let mut keys: Vec<Hash> = Vec::new();
        let mut out = Vec::new();
        for (op, i) in ops {
            let key = match op {
                Op::Fresh(k) => *k,
                Op::Overwrite(j) if !keys.is_empty() => keys[j % keys.len()],
                Op::Near(j, b) if !keys.is_empty() => flip(&keys[j % keys.len()], *b),
                Op::Overwrite(j) | Op::Near(j, _) => b3(&j.to_le_bytes()),
            };
            keys.push(key);
            out.push((key, value(*i)));
        }
        out
    }

    /// A deterministic shuffle.
    fn shuffled<T: Clone>(v: &[T], mut seed: u64) -> Vec<T> {
        let mut v = v.to_vec();
        for i in (1..v.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            v.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn agrees_with_model(
            ops in prop::collection::vec(op(), 1..48),
            random_absent in prop::collection::vec(any::<[u8; 32]>(), 0..4),
            late_bits in prop::collection::vec(0usize..256, 1..4),
            seed in 1u64..,
            cut in any::<usize>(),
        ) {
            let items = realize(&ops);
            let mut model = BTreeMap::new();
            let mut m = StateMap::new();
            for (key, v) in &items {
                m.insert(*key, *v);
                model.insert(*key, *v);
            }
            // Absent keys: random, and present keys with one bit flipped (long shared prefixes).
            let mut absent = random_absent.clone();
            for key in model.keys() {
                absent.push(flip(key, 255));
                for &b in &late_bits {
                    absent.push(flip(key, b));
                }
            }
            assert_agrees(&m, &model, &absent);

            // The root does not depend on insertion order.
            let finals: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(map_of(&shuffled(&finals, seed)).root(), m.root());
            let reversed: Vec<_> = finals.iter().rev().copied().collect();
            prop_assert_eq!(map_of(&reversed).root(), m.root());

            // A batch gives the same map as inserting in order (later wins), whole or split,
            // and into an empty or a non-empty map.
            let mut batched = StateMap::new();
            batched.insert_batch(&items);
            prop_assert_eq!(batched.root(), m.root());
            assert_agrees(&batched, &model, &absent);
            let cut = cut % (items.len() + 1);
            let mut mixed = map_of(&items[..cut]);
            mixed.insert_batch(&items[cut..]);
            assert_agrees(&mixed, &model, &absent);
            let mut chunked = StateMap::new();
            for chunk in items.chunks(1 + cut % 5) {
                chunked.insert_batch(chunk);
            }
            assert_agrees(&chunked, &model, &absent);
            // Proofs are canonical: the same whichever way the map was built.
            for key in model.keys().chain(&absent) {
                prop_assert_eq!(batched.prove(key), m.prove(key));
                prop_assert_eq!(mixed.prove(key), m.prove(key));
            }

            // A snapshot taken part-way keeps its root and proofs while the original changes.
            let mut live = map_of(&items[..cut]);
            let snap = live.clone();
            let snap_model: BTreeMap<_, _> = items[..cut].iter().copied().collect();
            let snap_proofs: Vec<_> = model.keys().map(|k| snap.prove(k)).collect();
            if cut & 1 == 0 {
                live.insert_batch(&items[cut..]);
            } else {
                for (key, v) in &items[cut..] {
                    live.insert(*key, *v);
                }
            }
            prop_assert_eq!(live.root(), m.root());
            assert_agrees(&snap, &snap_model, &absent);
            for (key, proof) in model.keys().zip(&snap_proofs) {
                prop_assert_eq!(&snap.prove(key), proof);
            }
        }
    }

    /// A source that cannot load: every operation that reaches a stub fails and changes
    /// nothing.
    #[test]
    fn source_errors_come_through() {
        struct Broken;
        impl MapSource for Broken {
            type Error = &'static str;
            fn load(&self, _: &Hash, _: usize) -> Result<Vec<(Hash, MapValue)>, &'static str> {
                Err("disk on fire")
            }
        }
        let items: Vec<_> = (0..20u64)
            .map(|i| (b3(&i.to_le_bytes()), value(i)))
            .collect();
        let mut m = StateMap::with_buckets(4);
        m.insert_batch_from(&items, &Broken).unwrap();
        let root = m.root();
        assert_eq!(
            m.prove_from(&items[0].0, &Broken),
            Err(MapError::Source("disk on fire"))
        );
        assert_eq!(
            m.insert_batch_from(&[(items[0].0, value(99))], &Broken),
            Err(MapError::Source("disk on fire"))
        );
        assert_eq!(m.root(), root);
        assert_eq!(m.len(), 20);
        assert_eq!(
            MapError::Source("disk on fire").to_string(),
            "cannot load map keys: disk on fire"
        );
    }

    /// A source that keeps what the map builds: each bucket is loaded once for any number of
    /// proofs, which are those of a source that keeps nothing; a kept subtree that is not the
    /// stub's (another map's, another depth) is never used.
    #[test]
    fn kept_subtrees_are_reused_only_for_their_own_stub() {
        use super::super::{prefix_bounds, Built};
        use std::cell::{Cell, RefCell};
        use std::collections::HashMap;
        struct Keeping {
            keys: Keys,
            loads: Cell<usize>,
            kept: RefCell<HashMap<(Hash, usize, usize), Built>>,
            /// Hands out this subtree for every question instead of what was kept.
            liar: Option<Built>,
        }
        impl MapSource for Keeping {
            type Error = std::convert::Infallible;
            fn load(
                &self,
                prefix: &Hash,
                bits: usize,
            ) -> Result<Vec<(Hash, MapValue)>, Self::Error> {
                self.loads.set(self.loads.get() + 1);
                self.keys.load(prefix, bits)
            }
            fn kept(&self, prefix: &Hash, bits: usize, top: usize) -> Option<Built> {
                let id = (prefix_bounds(prefix, bits).0, bits, top);
                self.liar
                    .clone()
                    .or_else(|| self.kept.borrow().get(&id).cloned())
            }
            fn keep(&self, prefix: &Hash, bits: usize, top: usize, built: &Built) {
                let id = (prefix_bounds(prefix, bits).0, bits, top);
                self.kept.borrow_mut().insert(id, built.clone());
            }
        }
        let items: Vec<_> = (0..400u64)
            .map(|i| (b3(&i.to_le_bytes()), value(i)))
            .collect();
        let keys = || Keys(items.iter().copied().collect());
        let mut m = StateMap::with_buckets(8);
        m.insert_batch_from(&items, &keys()).unwrap();
        let plain = keys();
        let src = Keeping {
            keys: keys(),
            loads: Cell::new(0),
            kept: Default::default(),
            liar: None,
        };
        for round in 0..3 {
            for (key, v) in &items {
                let p = m.prove_from(key, &src).unwrap();
                assert_eq!(p, m.prove_from(key, &plain).unwrap(), "round {round}");
                assert_eq!(check(&m.root(), key, &p), Ok(Some(*v)));
            }
            let absent = flip(&items[0].0, 200);
            assert_eq!(
                check(&m.root(), &absent, &m.prove_from(&absent, &src).unwrap()),
                Ok(None)
            );
        }
        let buckets = src.kept.borrow().len();
        assert!(buckets > 20, "{buckets} buckets");
        assert_eq!(src.loads.get(), buckets, "each bucket loaded once");
        // Every stub handed another stub's subtree loads its own keys, and proves the same.
        let liar = Keeping {
            keys: keys(),
            loads: Cell::new(0),
            kept: Default::default(),
            liar: src.kept.borrow().values().next().cloned(),
        };
        for (key, v) in &items {
            let p = m.prove_from(key, &liar).unwrap();
            assert_eq!(check(&m.root(), key, &p), Ok(Some(*v)));
        }
        assert!(
            liar.loads.get() >= items.len() - 8,
            "the wrong subtree was not used"
        );
    }

    /// Keys whose paths share up to 255 bits: chains of single-child levels everywhere.
    #[test]
    fn long_shared_prefixes() {
        let zero = [0u8; 32];
        let mut items = vec![(zero, value(0)), (flip(&zero, 255), value(1))];
        for b in [0, 1, 7, 8, 100, 200, 254] {
            items.push((flip(&zero, b), value(b as u64 + 2)));
        }
        items.push(([0xff; 32], value(300)));
        items.push((flip(&[0xff; 32], 255), value(301)));
        let mut model = BTreeMap::new();
        let mut m = StateMap::new();
        for (i, (key, v)) in items.iter().enumerate() {
            m.insert(*key, *v);
            model.insert(*key, *v);
            let absent: Vec<_> = (0..256).map(|b| flip(&items[i].0, b)).collect();
            assert_agrees(&m, &model, &absent);
        }
        assert_eq!(m.prove(&zero).depth(), 256);
        assert_eq!(m.prove(&flip(&zero, 254)).depth(), 255);
        let mut batched = StateMap::new();
        batched.insert_batch(&shuffled(&items, 7));
        assert_eq!(batched.root(), m.root());
    }

    /// Larger maps: sequential, batched, and batched into an existing map with overwrites.
    #[test]
    fn larger_maps() {
        let items: Vec<_> = (0..20_000u64)
            .map(|i| (b3(&i.to_le_bytes()), value(i)))
            .collect();
        let (first, second) = items.split_at(12_000);
        let mut seq = map_of(first);
        let mut batched = StateMap::new();
        batched.insert_batch(first);
        assert_eq!(seq.root(), batched.root());
        // The second half, plus overwrites of every 7th key of the first and near keys.
        let mut more = second.to_vec();
        for (i, (key, _)) in first.iter().enumerate().step_by(7) {
            more.push((*key, value(1_000_000 + i as u64)));
            more.push((flip(key, 200 + i % 56), value(2_000_000 + i as u64)));
        }
        for (key, v) in &more {
            seq.insert(*key, *v);
        }
        batched.insert_batch(&more);
        let model: BTreeMap<_, _> = items.iter().chain(&more).copied().collect();
        assert_eq!(seq.root(), model_root(&model));
        assert_eq!(batched.root(), seq.root());
        assert_eq!(batched.len(), model.len());
        for (key, v) in model.iter().step_by(97) {
            assert_eq!(check(&seq.root(), key, &batched.prove(key)), Ok(Some(*v)));
            let near = flip(key, 255);
            assert_eq!(check(&seq.root(), &near, &seq.prove(&near)), Ok(None));
        }
    }

    /// Batches large enough to be merged on two threads (`trie::merge_in_memory`) give the
    /// map that inserting their keys one by one gives: keys that fall on both sides of the
    /// existing branches, keys that split above a branch (the map's keys all share a first
    /// byte, half the batch does not), overwrites, and a batch all on one side.
    #[test]
    fn large_batches_match_one_by_one() {
        let key = |first: u8, i: u64| {
            let mut k = b3(&i.to_le_bytes());
            k[0] = first;
            k
        };
        let existing: Vec<_> = (0..6_000u64).map(|i| (key(0x00, i), value(i))).collect();
        let batches: [Vec<(Hash, MapValue)>; 3] = [
            // Half below the existing keys' shared byte, half a new subtree beside it.
            (6_000..10_000u64)
                .map(|i| (key(if i % 2 == 0 { 0x00 } else { 0xff }, i), value(i)))
                .collect(),
            // Overwrites of every third existing key, and keys one bit away from them.
            existing
                .iter()
                .step_by(3)
                .flat_map(|(k, _)| [(*k, value(7)), (flip(k, 255), value(8))])
                .collect(),
            // All under one side of the root.
            (20_000..23_000u64)
                .map(|i| (key(0x80, i), value(i)))
                .collect(),
        ];
        let mut one_by_one = map_of(&existing);
        let mut batched = StateMap::new();
        batched.insert_batch(&existing);
        let mut model: BTreeMap<_, _> = existing.iter().copied().collect();
        for batch in &batches {
            assert!(batch.len() >= 2_000);
            for (k, v) in batch {
                one_by_one.insert(*k, *v);
                model.insert(*k, *v);
            }
            batched.insert_batch(batch);
            assert_eq!(batched.root(), one_by_one.root());
            assert_eq!(batched.root(), model_root(&model));
            assert_eq!(batched.len(), model.len());
        }
        for (k, v) in model.iter().step_by(101) {
            assert_eq!(batched.prove(k), one_by_one.prove(k));
            assert_eq!(check(&batched.root(), k, &batched.prove(k)), Ok(Some(*v)));
        }
    }

    // --- 2. A cap on the nodes in memory. ---

    /// A source holding the map's keys as they are.
    struct Keys(BTreeMap<Hash, MapValue>);

    impl MapSource for Keys {
        type Error = std::convert::Infallible;
        fn load(
            &self,
            prefix: &Hash,
            bits: usize,
        ) -> Result<Vec<(Hash, MapValue)>, std::convert::Infallible> {
            Ok(self
                .0
                .iter()
                .filter(|(k, _)| common_prefix_len(k, prefix) >= bits)
                .map(|(k, v)| (*k, *v))
                .collect())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// A capped map, whatever its cap, gives the roots and proofs of the map holding every
        /// key, and stays within its cap after every batch.
        #[test]
        fn capped_agrees_with_full_map(
            ops in prop::collection::vec(op(), 1..160),
            cuts in prop::collection::vec(any::<usize>(), 0..6),
            bucket in 2usize..9,
            cap in prop_oneof![0usize..2_000, 2_000usize..20_000],
        ) {
            let items = realize(&ops);
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (items.len() + 1)).collect();
            bounds.push(0);
            bounds.push(items.len());
            bounds.sort_unstable();
            let mut full = StateMap::new();
            let mut capped = StateMap::with_buckets(bucket).capped(cap);
            let mut src = Keys(BTreeMap::new());
            for w in bounds.windows(2) {
                let batch = &items[w[0]..w[1]];
                capped.insert_batch_from(batch, &src).unwrap();
                full.insert_batch(batch);
                src.0.extend(batch.iter().copied());
                prop_assert_eq!(capped.root(), full.root());
                prop_assert_eq!(capped.len(), full.len());
                let held = capped.bytes_in_memory();
                if cap >= STUB_BYTES {
                    prop_assert!(held <= cap, "{} bytes held, cap {}", held, cap);
                }
                prop_assert!(capped.bucket() >= bucket);
                for (key, _) in batch.iter().take(8) {
                    for q in [*key, flip(key, 255), flip(key, 100)] {
                        prop_assert_eq!(capped.prove_from(&q, &src).unwrap(), full.prove(&q));
                    }
                }
            }
            for key in src.0.keys() {
                prop_assert_eq!(capped.prove_from(key, &src).unwrap(), full.prove(key));
                prop_assert_eq!(capped.get_from(key, &src).unwrap(), full.get(key));
            }
        }
    }

    /// A map capped below what its upper levels take at bucket 16 doubles its bucket size as it
    /// grows, stays under its cap, and answers as the full map does; a snapshot taken before a
    /// doubling keeps its root and proofs.
    #[test]
    fn cap_doubles_the_bucket_size() {
        let items: Vec<_> = (0..60_000u64)
            .map(|i| (b3(&i.to_le_bytes()), value(i)))
            .collect();
        let cap = 64 << 10;
        let mut capped = StateMap::with_buckets(16).capped(cap);
        let mut uncapped = StateMap::with_buckets(16);
        let mut full = StateMap::new();
        let mut src = Keys(BTreeMap::new());
        let mut snap = None;
        for (i, chunk) in items.chunks(1_000).enumerate() {
            capped.insert_batch_from(chunk, &src).unwrap();
            uncapped.insert_batch_from(chunk, &src).unwrap();
            full.insert_batch(chunk);
            src.0.extend(chunk.iter().copied());
            assert!(capped.bytes_in_memory() <= cap);
            assert_eq!(capped.root(), full.root());
            if i == 4 {
                snap = Some((capped.clone(), src.0.clone(), full.clone()));
            }
        }
        // 60k keys at about 20 bytes each would be about 1.2 MB at bucket 16.
        assert!(uncapped.bytes_in_memory() > 10 * cap);
        assert!(capped.bucket() >= 256, "bucket {}", capped.bucket());
        assert_eq!(uncapped.bucket(), 16);
        for (key, _) in items.iter().step_by(101) {
            let p = capped.prove_from(key, &src).unwrap();
            assert_eq!(p, full.prove(key));
            assert_eq!(p, uncapped.prove_from(key, &src).unwrap());
            assert_eq!(check(&capped.root(), key, &p), Ok(full.get(key)));
            let near = flip(key, 255);
            assert_eq!(capped.prove_from(&near, &src).unwrap(), full.prove(&near));
        }
        let (snap, old, old_full) = snap.unwrap();
        let old = Keys(old);
        assert_eq!(snap.root(), old_full.root());
        for (key, _) in items.iter().step_by(997) {
            assert_eq!(snap.prove_from(key, &old).unwrap(), old_full.prove(key));
        }
        // Capping an existing map fits it at once; a cap smaller than one node leaves the whole
        // map as one stub.
        let refit = uncapped.clone().capped(cap);
        assert!(refit.bytes_in_memory() <= cap);
        assert_eq!(refit.root(), full.root());
        let tiny = uncapped.clone().capped(1);
        assert_eq!(tiny.nodes_in_memory(), 1);
        assert!(tiny.bucket() >= tiny.len());
        assert_eq!(
            tiny.prove_from(&items[7].0, &src).unwrap(),
            full.prove(&items[7].0)
        );
        // Overwrites add no node: they leave the bucket size as it is.
        let over: Vec<_> = items[..5_000].iter().map(|(k, _)| (*k, value(1))).collect();
        let bucket = capped.bucket();
        capped.insert_batch_from(&over, &src).unwrap();
        full.insert_batch(&over);
        assert_eq!(capped.bucket(), bucket);
        assert_eq!(capped.root(), full.root());
    }

    /// A map in memory until a cap holds every key (and loads none) while under it, then
    /// moves subtrees out as a capped map does; its roots and proofs are the full map's.
    #[test]
    fn in_memory_until_the_cap_then_capped() {
        let items: Vec<_> = (0..20_000u64)
            .map(|i| (b3(&i.to_le_bytes()), value(i)))
            .collect();
        let cap = 1 << 20;
        let mut m = StateMap::in_memory_until(cap);
        let mut full = StateMap::new();
        let mut src = Keys(BTreeMap::new());
        for chunk in items.chunks(500) {
            // Loads nothing while no subtree is out of memory: an empty source will do.
            let from = if m.bucket() == 0 {
                Keys(BTreeMap::new())
            } else {
                Keys(src.0.clone())
            };
            m.insert_batch_from(chunk, &from).unwrap();
            full.insert_batch(chunk);
            src.0.extend(chunk.iter().copied());
            assert!(m.bytes_in_memory() <= cap);
            assert_eq!(m.root(), full.root());
        }
        // 20k keys at about 192 bytes each are over 1 MiB: the map moved subtrees out.
        assert!(m.bucket() >= 2, "bucket {}", m.bucket());
        for (key, _) in items.iter().step_by(97) {
            assert_eq!(m.prove_from(key, &src).unwrap(), full.prove(key));
        }
        let small = StateMap::in_memory_until(cap);
        assert_eq!(small.bucket(), 0);
    }

    #[test]
    #[should_panic(expected = "only a map with buckets can be capped")]
    fn a_full_map_cannot_be_capped() {
        let _ = StateMap::new().capped(1 << 20);
    }

    // --- 3. Snapshots. ---

    #[test]
    fn snapshot_is_unaffected_by_later_inserts() {
        let items: Vec<_> = (0..2_000u64)
            .map(|i| (b3(&i.to_le_bytes()), value(i)))
            .collect();
        let mut live = map_of(&items[..1_000]);
        let snap = live.clone();
        let root = snap.root();
        let queries: Vec<Hash> = items
            .iter()
            .step_by(13)
            .flat_map(|(key, _)| [*key, flip(key, 255), flip(key, 3)])
            .collect();
        let before: Vec<_> = queries
            .iter()
            .map(|q| (snap.get(q), snap.prove(q)))
            .collect();
        // Change the live map every way: new keys, overwrites, near keys, one by one and batched.
        for (key, v) in &items[1_000..1_500] {
            live.insert(*key, *v);
        }
        for (key, _) in items[..1_000].iter().step_by(3) {
            live.insert(*key, value(9_999));
            live.insert(flip(key, 255), value(8_888));
        }
        live.insert_batch(&items[1_500..]);
        let overwrites: Vec<_> = items[..1_000].iter().map(|(k, _)| (*k, value(7))).collect();
        live.insert_batch(&overwrites);
        assert_ne!(live.root(), root);
        assert_eq!(snap.root(), root);
        assert_eq!(snap.len(), 1_000);
        for (q, (got, proof)) in queries.iter().zip(&before) {
            assert_eq!(&snap.get(q), got);
            assert_eq!(&snap.prove(q), proof);
            assert_eq!(check(&root, q, proof), Ok(*got));
        }
        let model: BTreeMap<_, _> = items
            .iter()
            .chain(&overwrites)
            .copied()
            .chain(
                items[..1_000]
                    .iter()
                    .step_by(3)
                    .map(|(k, _)| (flip(k, 255), value(8_888))),
            )
            .collect();
        assert_eq!(live.root(), model_root(&model));
    }
}
