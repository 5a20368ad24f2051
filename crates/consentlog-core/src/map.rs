//! The authenticated state map: a compressed binary sparse Merkle tree from a 32-byte key `K`
//! to `K`'s latest log entry, `(index, leaf_hash)`.
//!
//! # Construction
//!
//! * **Keys and paths.** The tree has depth 256 and is indexed by the bits of `K`, most
//!   significant bit of `K[0]` first: bit `i` of `K` is `(K[i / 8] >> (7 - i % 8)) & 1`, for
//!   `i` in `0..256`. At depth `i` (the root is at depth 0) bit `i` chooses the half a key
//!   falls into: 0 = left, 1 = right. The subtree at depth `d` on `K`'s path is the set of keys
//!   that share the first `d` bits of `K`.
//! * **Hashes** (BLAKE3, 32-byte output, `||` is concatenation):
//!   - `EMPTY` = 32 zero bytes: the hash of a subtree with no key;
//!   - `leaf(K, v)` = `BLAKE3(0x02 || K || u64_le(v.index) || v.leaf_hash)` (73 bytes in):
//!     the hash of a subtree that holds exactly one key `K`, **at whatever depth** that subtree
//!     sits (paths are compressed);
//!   - `node(L, R)` = `BLAKE3(0x03 || L || R)` (65 bytes in): the hash of a subtree that holds
//!     two or more keys, where `L` and `R` are the hashes of its left and right halves (either
//!     may be `EMPTY` when all its keys fall into one half).
//! * **Root.** The map root is the hash of the subtree at depth 0: `EMPTY` for the empty map,
//!   `leaf(K, v)` for a map holding one key. The root is a pure function of the set of
//!   `(key, value)` pairs: it does not depend on insertion order or batching.
//!
//! # Proofs
//!
//! A proof for `K` is the list `siblings` of hashes of the sibling subtrees along `K`'s path from
//! the root down: `siblings[i]` is the hash of the half at depth `i + 1` that `K` does **not**
//! fall into (so `siblings[0]` is the other half of the root). The list stops at the first depth
//! `d = siblings.len()` where `K`'s subtree is empty or holds exactly one key, and `leaf` is
//! `None` in the first case and the one `(key', value')` held there in the second: `key' == K`
//! proves membership with `value'`; `key' != K` (sharing the first `d` bits of `K`) proves
//! absence, as does `leaf = None`.
//!
//! [`check`] verifies a proof against a root: it requires `d <= 256`; if `leaf` is present, that
//! `key'` shares the first `d` bits of `K`; and that the last sibling (if `d > 0`) is not
//! `EMPTY`, since a canonical tree would have collapsed a one-key or empty subtree with an empty
//! sibling into its parent. It then sets `h = EMPTY` (no leaf) or `h = leaf(key', value')`, and
//! for `i = d - 1` down to `0` sets `h = node(h, siblings[i])` if bit `i` of `K` is 0, else
//! `h = node(siblings[i], h)`, and accepts iff `h == root`.
//!
//! # In memory
//!
//! [`StateMap`] stores the tree as a path-compressed (PATRICIA) trie: a leaf per key and a
//! branch per depth where two keys first differ, so there are `n - 1` branches for `n` keys. The
//! runs of single-child levels between a branch and its parent (which the hash construction above
//! still hashes, one `node(h, EMPTY)` or `node(EMPTY, h)` per level) are not stored: each branch
//! caches its hash as seen from its parent's slot, i.e. already folded up through that run.
//! Nodes are reference-counted and updated by path copying, so cloning a map is O(1) and a clone
//! keeps answering with the old root while the original changes.
//!
//! A map made with [`StateMap::with_buckets`] keeps only its upper levels: each subtree of at
//! most `bucket` keys is a stub holding its hash, the depth where its keys first differ, one of
//! its keys and its key count. Its keys are kept elsewhere (the ledger's store) and fetched
//! through a [`MapSource`] when an insert or a proof reaches the stub; they must hash to the
//! stub's hash, or the operation fails with [`MapError::Damaged`] and changes nothing. Roots and
//! proofs are exactly those of the map holding every key.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

pub use super::hash::{Hash, HexHash};

/// The hash of an empty subtree, and the root of the empty map: 32 zero bytes.
pub const EMPTY: Hash = [0; 32];

/// The depth of the tree: the number of bits in a key.
pub const MAP_DEPTH: usize = 256;

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
    #[serde(with = "super::hash::hex_array")]
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

/// Given the hash `h` of the subtree at depth `from` on `key`'s path, returns the hash of the
/// subtree at depth `to <= from` on the same path, when every level in between holds nothing
/// beside it (each level adds `node(h, EMPTY)` or `node(EMPTY, h)` by the bit of `key`).
fn lift(mut h: Hash, from: usize, to: usize, key: &Hash) -> Hash {
    for j in (to..from).rev() {
        h = if key_bit(key, j) == 0 {
            hash_node(&h, &EMPTY)
        } else {
            hash_node(&EMPTY, &h)
        };
    }
    h
}

// ---------------------------------------------------------------------------------------------
// The in-memory tree.

/// A stored key and its value (72 bytes).
#[derive(Clone)]
struct Leaf {
    key: Hash,
    value: MapValue,
}

/// A depth `bit` at which the keys below first differ (72 bytes).
#[derive(Clone)]
struct Branch {
    /// The hash of this subtree as seen from the parent's slot: the subtree at depth
    /// `parent.bit + 1` (depth 0 for the root), i.e. `node(left, right)` lifted through the
    /// unstored single-child levels `bit - 1` down to that depth.
    hash: Hash,
    /// Keys with bit `bit` = 0; its top depth is `bit + 1`.
    left: Child,
    /// Keys with bit `bit` = 1; its top depth is `bit + 1`.
    right: Child,
    /// The number of keys below (a map holds fewer than 2^32 keys).
    count: u32,
    /// All keys below share bits `0..bit` and some differ at bit `bit` (0..=255).
    bit: u8,
}

/// A subtree of two or more keys that is not held in memory (104 bytes). Its keys are in the
/// map's [`MapSource`], which is asked for them when a proof or an insert reaches the stub; the
/// keys it returns must hash to `hash`, or the source is damaged ([`MapError::Damaged`]).
#[derive(Clone)]
struct Stub {
    /// `node(left, right)` at depth `bit`.
    own: Hash,
    /// As [`Branch::hash`]: `own` lifted to the parent's slot.
    hash: Hash,
    /// One of the keys below; they all share its first `bit` bits.
    rep: Hash,
    count: u32,
    /// As [`Branch::bit`].
    bit: u8,
}

/// A non-empty subtree (16 bytes).
#[derive(Clone)]
enum Child {
    Leaf(Arc<Leaf>),
    Branch(Arc<Branch>),
    Stub(Arc<Stub>),
}

impl Child {
    /// The subtree's hash at its top depth (the depth of the slot that holds it).
    fn hash(&self) -> Hash {
        match self {
            Child::Leaf(l) => hash_leaf(&l.key, &l.value),
            Child::Branch(b) => b.hash,
            Child::Stub(s) => s.hash,
        }
    }

    /// The number of keys in the subtree.
    fn count(&self) -> u32 {
        match self {
            Child::Leaf(_) => 1,
            Child::Branch(b) => b.count,
            Child::Stub(s) => s.count,
        }
    }

    fn new_leaf(key: Hash, value: MapValue) -> Child {
        Child::Leaf(Arc::new(Leaf { key, value }))
    }
}

impl Branch {
    /// `node(left, right)`: the hash of this subtree at depth `bit`.
    fn own_hash(&self) -> Hash {
        hash_node(&self.left.hash(), &self.right.hash())
    }

    fn child(&self, side: u8) -> &Child {
        if side == 0 {
            &self.left
        } else {
            &self.right
        }
    }

    fn child_mut(&mut self, side: u8) -> &mut Child {
        if side == 0 {
            &mut self.left
        } else {
            &mut self.right
        }
    }
}

/// Where a map that keeps only its upper levels in memory finds the keys below its stubs
/// (the ledger reads them from its store).
pub trait MapSource {
    /// Every key whose first `bits` bits are those of `prefix`, with its value: sorted by key,
    /// distinct, and as of the state the map describes.
    fn load(&self, prefix: &Hash, bits: usize) -> Result<Vec<(Hash, MapValue)>, String>;
}

/// The source of a map that holds every key in memory: it has no stubs, so it never asks.
pub struct InMemory;

impl MapSource for InMemory {
    fn load(&self, _prefix: &Hash, _bits: usize) -> Result<Vec<(Hash, MapValue)>, String> {
        Err("the map holds every key in memory and has nothing to load".into())
    }
}

/// Why an operation on a map that loads its lower levels failed. The map is unchanged.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum MapError {
    #[error("cannot load map keys: {0}")]
    Source(String),
    #[error(
        "stored map keys under the first {bits} bits of {prefix} do not match the map \
         (damaged storage)"
    )]
    Damaged { prefix: String, bits: usize },
}

/// Tuning of a map that keeps only its upper levels in memory, and where it loads the rest.
struct Cx<'a> {
    /// Subtrees of at most this many keys (and at least two) become stubs; 0: none do.
    bucket: usize,
    src: &'a dyn MapSource,
}

/// Follows `key`'s bits at each branch down to a leaf or stub (without checking the skipped
/// bits), as in a PATRICIA lookup, and returns a key stored there: some key under `c`, and `key`
/// itself if `key` is present and held in memory.
fn rep_on_path<'a>(mut c: &'a Child, key: &Hash) -> &'a Hash {
    loop {
        match c {
            Child::Leaf(l) => return &l.key,
            Child::Stub(s) => return &s.rep,
            Child::Branch(b) => c = b.child(key_bit(key, b.bit as usize)),
        }
    }
}

/// The hash, seen from a slot at depth `top`, of the subtree holding `items` (sorted by key,
/// distinct, non-empty, all sharing their first `top` bits). Allocates nothing.
fn hash_items(items: &[(Hash, MapValue)], top: usize) -> Hash {
    if items.len() == 1 {
        return hash_leaf(&items[0].0, &items[0].1);
    }
    let first = &items[0].0;
    let bit = common_prefix_len(first, &items[items.len() - 1].0);
    lift(own_hash_items(items, bit), bit, top, first)
}

/// `node(left, right)` at depth `bit` for `items`, which first differ at bit `bit`.
fn own_hash_items(items: &[(Hash, MapValue)], bit: usize) -> Hash {
    let mid = items.partition_point(|(k, _)| key_bit(k, bit) == 0);
    hash_node(
        &hash_items(&items[..mid], bit + 1),
        &hash_items(&items[mid..], bit + 1),
    )
}

/// Builds the subtree for `items` (sorted by key, distinct, non-empty, all sharing their first
/// `top` bits), whose slot is at depth `top`. Subtrees of at most `bucket` keys become stubs
/// (`bucket` 0: none).
fn build(items: &[(Hash, MapValue)], top: usize, bucket: usize) -> Child {
    if items.len() == 1 {
        return Child::new_leaf(items[0].0, items[0].1);
    }
    let first = &items[0].0;
    let bit = common_prefix_len(first, &items[items.len() - 1].0);
    debug_assert!(top <= bit && bit < MAP_DEPTH);
    let count = u32::try_from(items.len()).expect("a map holds fewer than 2^32 keys");
    if items.len() <= bucket {
        let own = own_hash_items(items, bit);
        return Child::Stub(Arc::new(Stub {
            own,
            hash: lift(own, bit, top, first),
            rep: *first,
            count,
            bit: bit as u8,
        }));
    }
    let mid = items.partition_point(|(k, _)| key_bit(k, bit) == 0);
    let left = build(&items[..mid], bit + 1, bucket);
    let right = build(&items[mid..], bit + 1, bucket);
    let own = hash_node(&left.hash(), &right.hash());
    Child::Branch(Arc::new(Branch {
        hash: lift(own, bit, top, first),
        left,
        right,
        count,
        bit: bit as u8,
    }))
}

/// Loads the keys below `stub` (whose slot is at depth `top`) and rebuilds its subtree in
/// memory, without stubs. The loaded keys must reproduce the stub's count and its hash.
fn expand(stub: &Stub, top: usize, src: &dyn MapSource) -> Result<Child, MapError> {
    let bits = stub.bit as usize;
    let items = src.load(&stub.rep, bits).map_err(MapError::Source)?;
    let damaged = || MapError::Damaged {
        prefix: super::hash::to_hex(&stub.rep),
        bits,
    };
    let sorted = items.windows(2).all(|w| w[0].0 < w[1].0);
    let on_prefix = items
        .iter()
        .all(|(k, _)| common_prefix_len(k, &stub.rep) >= bits);
    if items.len() != stub.count as usize || !sorted || !on_prefix {
        return Err(damaged());
    }
    // Compared at the stub's own depth: its cached `hash` may be for a slot it has since
    // moved out of (a split above it, during the merge that asks for this load).
    let built = build(&items, top, 0);
    match &built {
        Child::Branch(b) if b.bit == stub.bit && b.own_hash() == stub.own => Ok(built),
        _ => Err(damaged()),
    }
}

/// Recomputes the cached hash of the subtree in `slot` for a slot at depth `top`; `rep` is any
/// key stored under `slot`.
fn retop(slot: &mut Child, top: usize, rep: &Hash) {
    match slot {
        Child::Leaf(_) => {}
        Child::Branch(b) => {
            let b = Arc::make_mut(b);
            b.hash = lift(b.own_hash(), b.bit as usize, top, rep);
        }
        Child::Stub(s) => {
            let s = Arc::make_mut(s);
            s.hash = lift(s.own, s.bit as usize, top, rep);
        }
    }
}

/// Turns the branch in `slot` into a stub if it holds at most `bucket` keys; `rep` is a key
/// under `slot`.
fn settle(slot: &mut Child, bucket: usize, rep: &Hash) {
    if let Child::Branch(b) = slot {
        if b.count as usize <= bucket {
            *slot = Child::Stub(Arc::new(Stub {
                own: b.own_hash(),
                hash: b.hash,
                rep: *rep,
                count: b.count,
                bit: b.bit,
            }));
        }
    }
}

/// Turns every branch of at most `bucket` keys in the subtree in `slot` into a stub (walks
/// only the branches of more keys).
fn compact(slot: &mut Child, bucket: usize) {
    if let Child::Branch(b) = slot {
        if b.count as usize <= bucket {
            let rep = *rep_on_path(slot, &EMPTY);
            settle(slot, bucket, &rep);
        } else {
            let b = Arc::make_mut(b);
            compact(&mut b.left, bucket);
            compact(&mut b.right, bucket);
        }
    }
}

/// Merges `items` (sorted by key, distinct, non-empty) into the subtree in `slot`, whose depth is
/// `top`; every item shares its first `top` bits with every key under `slot`. `rep`, if known,
/// is some key stored under `slot`. Items replace the values of keys already present. Nodes that
/// are shared with a clone are copied, not changed. Stubs the items fall into are loaded from
/// the source. Returns the number of keys added.
fn merge_into(
    slot: &mut Child,
    top: usize,
    items: &[(Hash, MapValue)],
    rep: Option<Hash>,
    cx: &Cx,
) -> Result<usize, MapError> {
    let first = items[0].0;
    let items_prefix = if items.len() == 1 {
        MAP_DEPTH
    } else {
        common_prefix_len(&first, &items[items.len() - 1].0)
    };
    let added = match slot {
        Child::Leaf(leaf) => {
            let split_at = items_prefix.min(common_prefix_len(&leaf.key, &first));
            if split_at == MAP_DEPTH {
                // One item, with this leaf's key: replace the value.
                Arc::make_mut(leaf).value = items[0].1;
                return Ok(0);
            }
            let rep = leaf.key;
            split(slot, top, split_at, items, rep, cx)?
        }
        Child::Stub(s) => {
            let bit = s.bit as usize;
            let rep = s.rep;
            let split_at = bit.min(items_prefix).min(common_prefix_len(&rep, &first));
            if split_at < bit {
                split(slot, top, split_at, items, rep, cx)?
            } else {
                // The items fall into the stub: load it, merge as into a branch, then turn
                // its parts of at most `bucket` keys back into stubs.
                let stub = s.clone();
                *slot = expand(&stub, top, cx.src)?;
                let whole = Cx {
                    bucket: 0,
                    src: cx.src,
                };
                let added = merge_into(slot, top, items, Some(rep), &whole)?;
                compact(slot, cx.bucket);
                added
            }
        }
        Child::Branch(br) => {
            let bit = br.bit as usize;
            // The keys under `slot` share bits `0..bit`; the items share `0..top` with them.
            // If `bit > top`, bits `top..bit` must be compared using some key under `slot`.
            let (split_at, rep) = if bit > top {
                let rep = rep.unwrap_or_else(|| *rep_on_path(slot, &first));
                let s = bit.min(items_prefix).min(common_prefix_len(&rep, &first));
                (s, Some(rep))
            } else {
                (bit, rep)
            };
            if split_at < bit {
                let rep = rep.expect("rep known when bit > top");
                split(slot, top, split_at, items, rep, cx)?
            } else {
                let Child::Branch(br) = slot else {
                    unreachable!()
                };
                let br = Arc::make_mut(br);
                let mid = items.partition_point(|(k, _)| key_bit(k, bit) == 0);
                let mut added = 0;
                if mid > 0 {
                    let rep = rep.filter(|r| key_bit(r, bit) == 0);
                    added += merge_into(&mut br.left, bit + 1, &items[..mid], rep, cx)?;
                }
                if mid < items.len() {
                    let rep = rep.filter(|r| key_bit(r, bit) == 1);
                    added += merge_into(&mut br.right, bit + 1, &items[mid..], rep, cx)?;
                }
                br.count = br.left.count().saturating_add(br.right.count());
                br.hash = lift(br.own_hash(), bit, top, &first);
                added
            }
        }
    };
    settle(slot, cx.bucket, &first);
    Ok(added)
}

/// The union of the keys under `slot` and `items` first differs at bit `split_at`, and the keys
/// under `slot` all share more than `split_at` bits (`rep` is one of them). Puts a new branch at
/// `split_at` into `slot`, with the old subtree (merged with the items on its side) on one side
/// and a subtree built from the remaining items on the other. Returns the number of keys added.
fn split(
    slot: &mut Child,
    top: usize,
    split_at: usize,
    items: &[(Hash, MapValue)],
    rep: Hash,
    cx: &Cx,
) -> Result<usize, MapError> {
    debug_assert!(top <= split_at && split_at < MAP_DEPTH);
    let side = key_bit(&rep, split_at);
    let mid = items.partition_point(|(k, _)| key_bit(k, split_at) == 0);
    let (same, other) = if side == 0 {
        (&items[..mid], &items[mid..])
    } else {
        (&items[mid..], &items[..mid])
    };
    debug_assert!(!other.is_empty());
    let fresh = build(other, split_at + 1, cx.bucket);
    // Clone the old subtree's pointer, then overwrite the slot, so the old subtree is referenced
    // once again (and can still be updated in place if nothing else shares it).
    let old = slot.clone();
    let (left, right) = if side == 0 {
        (old, fresh)
    } else {
        (fresh, old)
    };
    *slot = Child::Branch(Arc::new(Branch {
        hash: EMPTY,
        left,
        right,
        count: 0,
        bit: split_at as u8,
    }));
    let Child::Branch(nb) = slot else {
        unreachable!()
    };
    let nb = Arc::get_mut(nb).expect("a new branch is not shared");
    let moved = nb.child_mut(side);
    let mut added = other.len();
    if same.is_empty() {
        retop(moved, split_at + 1, &rep);
    } else {
        added += merge_into(moved, split_at + 1, same, Some(rep), cx)?;
    }
    nb.count = nb.left.count().saturating_add(nb.right.count());
    nb.hash = lift(nb.own_hash(), split_at, top, &items[0].0);
    Ok(added)
}

// ---------------------------------------------------------------------------------------------
// The map.

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
#[derive(Clone, Default)]
pub struct StateMap {
    root: Option<Child>,
    root_hash: Hash,
    len: usize,
    bucket: usize,
}

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMap")
            .field("len", &self.len)
            .field("bucket", &self.bucket)
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
    pub fn get_from(&self, key: &Hash, src: &dyn MapSource) -> Result<Option<MapValue>, MapError> {
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
    pub fn insert_batch_from(
        &mut self,
        items: &[(Hash, MapValue)],
        src: &dyn MapSource,
    ) -> Result<(), MapError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut sorted = items.to_vec();
        sorted.sort_by_key(|item| item.0); // stable: equal keys stay in input order
        let mut distinct: Vec<(Hash, MapValue)> = Vec::with_capacity(sorted.len());
        for item in sorted {
            match distinct.last_mut() {
                Some(last) if last.0 == item.0 => *last = item,
                _ => distinct.push(item),
            }
        }
        let cx = Cx {
            bucket: self.bucket,
            src,
        };
        let before = self.root.clone();
        let result = match &mut self.root {
            None => {
                self.root = Some(build(&distinct, 0, cx.bucket));
                Ok(distinct.len())
            }
            Some(root) => merge_into(root, 0, &distinct, None, &cx),
        };
        match result {
            Ok(added) => {
                self.len += added;
                self.root_hash = self.root.as_ref().map_or(EMPTY, Child::hash);
                Ok(())
            }
            Err(e) => {
                self.root = before;
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
    pub fn prove_from(&self, key: &Hash, src: &dyn MapSource) -> Result<MapProof, MapError> {
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

// ---------------------------------------------------------------------------------------------
// Proofs.

/// The one key stored in the subtree where a proof stops, with its value.
///
/// JSON: `{"key": "<hex>", "index": 5, "leaf_hash": "<hex>"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapLeaf {
    #[serde(with = "super::hash::hex_array")]
    pub key: Hash,
    pub index: u64,
    #[serde(with = "super::hash::hex_array")]
    pub leaf_hash: Hash,
}

impl MapLeaf {
    pub fn new(key: Hash, value: MapValue) -> Self {
        MapLeaf {
            key,
            index: value.index,
            leaf_hash: value.leaf_hash,
        }
    }

    pub fn value(&self) -> MapValue {
        MapValue {
            index: self.index,
            leaf_hash: self.leaf_hash,
        }
    }
}

/// A proof of a key's value or absence (see the module documentation).
///
/// JSON: `{"leaf": null | {"key": .., "index": .., "leaf_hash": ..}, "siblings": ["<hex>", ..]}`;
/// both fields are required and no other field is accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapProof {
    /// The one key in the subtree where the proof stops, or `None` if that subtree is empty.
    #[serde(deserialize_with = "Option::deserialize")]
    pub leaf: Option<MapLeaf>,
    /// Hashes of the sibling subtrees along the key's path, from the root's other half down.
    pub siblings: Vec<HexHash>,
}

impl MapProof {
    /// The depth at which the proof stops (`siblings.len()`).
    pub fn depth(&self) -> usize {
        self.siblings.len()
    }
}

/// Why a map proof was refused.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum MapProofError {
    #[error("map proof has {depth} siblings, more than the tree depth 256")]
    TooDeep { depth: usize },
    #[error(
        "map proof leaf key shares only {shared} leading bits with the key, \
         but the proof stops at depth {depth}"
    )]
    LeafOffPath { depth: usize, shared: usize },
    #[error(
        "map proof is not canonical: its last sibling (depth {depth}) is empty, so the \
         subtree above would have been collapsed"
    )]
    NonCanonical { depth: usize },
    #[error("map proof does not lead to the map root")]
    RootMismatch,
}

/// Verifies `proof` for `key` against `root`: `Ok(Some(value))` if `key` is present with
/// `value`, `Ok(None)` if `key` is absent.
pub fn check(root: &Hash, key: &Hash, proof: &MapProof) -> Result<Option<MapValue>, MapProofError> {
    let depth = proof.siblings.len();
    if depth > MAP_DEPTH {
        return Err(MapProofError::TooDeep { depth });
    }
    let (mut h, answer) = match &proof.leaf {
        None => (EMPTY, None),
        Some(leaf) => {
            let shared = common_prefix_len(&leaf.key, key);
            if shared < depth {
                return Err(MapProofError::LeafOffPath { depth, shared });
            }
            let value = leaf.value();
            (
                hash_leaf(&leaf.key, &value),
                (leaf.key == *key).then_some(value),
            )
        }
    };
    if proof.siblings.last() == Some(&HexHash(EMPTY)) {
        return Err(MapProofError::NonCanonical { depth });
    }
    for (i, sibling) in proof.siblings.iter().enumerate().rev() {
        h = if key_bit(key, i) == 0 {
            hash_node(&h, &sibling.0)
        } else {
            hash_node(&sibling.0, &h)
        };
    }
    if h != *root {
        return Err(MapProofError::RootMismatch);
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn b3(s: &[u8]) -> Hash {
        *blake3::hash(s).as_bytes()
    }

    fn k(s: &str) -> Hash {
        b3(s.as_bytes())
    }

    /// The values of the known-answer vectors: index `i`, leaf_hash BLAKE3("v<i>").
    fn kat_value(i: u64) -> MapValue {
        MapValue {
            index: i,
            leaf_hash: b3(format!("v{i}").as_bytes()),
        }
    }

    fn value(i: u64) -> MapValue {
        MapValue {
            index: i,
            leaf_hash: b3(&i.to_le_bytes()),
        }
    }

    fn flip(key: &Hash, bit: usize) -> Hash {
        let mut k = *key;
        k[bit / 8] ^= 0x80 >> (bit % 8);
        k
    }

    // --- An independent reference, written from the specification only. ---

    fn naive_bit(key: &Hash, i: usize) -> bool {
        key[i / 8] & (0x80 >> (i % 8)) != 0
    }

    fn naive_leaf(key: &Hash, v: &MapValue) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&[2]);
        h.update(key);
        h.update(&v.index.to_le_bytes());
        h.update(&v.leaf_hash);
        *h.finalize().as_bytes()
    }

    fn naive_node(l: &Hash, r: &Hash) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&[3]);
        h.update(l);
        h.update(r);
        *h.finalize().as_bytes()
    }

    /// Root of the subtree at `depth` holding `items` (sorted by key, distinct).
    fn naive_root(items: &[(Hash, MapValue)], depth: usize) -> Hash {
        match items {
            [] => [0; 32],
            [(k, v)] => naive_leaf(k, v),
            _ => {
                assert!(depth < 256);
                let left: Vec<_> = items
                    .iter()
                    .filter(|(k, _)| !naive_bit(k, depth))
                    .copied()
                    .collect();
                let right: Vec<_> = items
                    .iter()
                    .filter(|(k, _)| naive_bit(k, depth))
                    .copied()
                    .collect();
                naive_node(
                    &naive_root(&left, depth + 1),
                    &naive_root(&right, depth + 1),
                )
            }
        }
    }

    fn model_root(model: &BTreeMap<Hash, MapValue>) -> Hash {
        let items: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
        naive_root(&items, 0)
    }

    /// The depth where a proof for `key` must stop: the first depth at which at most one stored
    /// key shares `key`'s prefix.
    fn naive_proof_depth(model: &BTreeMap<Hash, MapValue>, key: &Hash) -> usize {
        let mut shared: Vec<usize> = model
            .keys()
            .map(|k| {
                (0..256)
                    .take_while(|&i| naive_bit(k, i) == naive_bit(key, i))
                    .count()
            })
            .collect();
        shared.sort_unstable_by(|a, b| b.cmp(a));
        if shared.len() <= 1 {
            0
        } else {
            shared[1] + 1
        }
    }

    fn map_of(items: &[(Hash, MapValue)]) -> StateMap {
        let mut m = StateMap::new();
        for (k, v) in items {
            m.insert(*k, *v);
        }
        m
    }

    /// Checks everything the map says against `model`, for the present keys and `absent`.
    fn assert_agrees(m: &StateMap, model: &BTreeMap<Hash, MapValue>, absent: &[Hash]) {
        assert_eq!(m.len(), model.len());
        assert_eq!(m.is_empty(), model.is_empty());
        let root = m.root();
        assert_eq!(root, model_root(model));
        for (key, v) in model {
            assert_eq!(m.get(key), Some(*v));
            let proof = m.prove(key);
            assert_eq!(proof.depth(), naive_proof_depth(model, key));
            assert_eq!(proof.leaf, Some(MapLeaf::new(*key, *v)));
            assert_eq!(check(&root, key, &proof), Ok(Some(*v)));
        }
        for key in absent {
            if model.contains_key(key) {
                continue;
            }
            assert_eq!(m.get(key), None);
            let proof = m.prove(key);
            assert_eq!(proof.depth(), naive_proof_depth(model, key));
            assert_eq!(check(&root, key, &proof), Ok(None));
        }
    }

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

    // --- 2. Snapshots. ---

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

    // --- 3. Rejection of altered proofs. ---

    fn rejection_maps() -> Vec<Vec<(Hash, MapValue)>> {
        let zero = [0u8; 32];
        vec![
            vec![(k("k1"), kat_value(1))],
            (1..=3)
                .map(|i| (k(&format!("k{i}")), kat_value(i)))
                .collect(),
            (0..40u64)
                .map(|i| (b3(&i.to_le_bytes()), value(i)))
                .collect(),
            vec![
                (zero, value(0)),
                (flip(&zero, 19), value(1)),
                (flip(&zero, 30), value(2)),
                (flip(&flip(&zero, 30), 31), value(3)),
                (k("x"), value(4)),
            ],
        ]
    }

    fn assert_rejected(root: &Hash, key: &Hash, proof: &MapProof, what: &str) {
        assert!(
            check(root, key, proof).is_err(),
            "{what} accepted: {:?}",
            check(root, key, proof)
        );
    }

    #[test]
    fn altered_proofs_are_rejected() {
        let mut accepted_for_other_key = 0;
        for items in rejection_maps() {
            let m = map_of(&items);
            let model: BTreeMap<_, _> = items.iter().copied().collect();
            let root = m.root();
            let mut queries: Vec<Hash> = model.keys().take(12).copied().collect();
            for q in model.keys().take(4) {
                queries.extend([flip(q, 255), flip(q, 25), flip(q, 1)]);
            }
            queries.extend((0..4).map(|i| k(&format!("absent {i}"))));
            for key in &queries {
                let proof = m.prove(key);
                let truth = model.get(key).copied();
                assert_eq!(check(&root, key, &proof), Ok(truth));

                for bit in 0..256 {
                    assert_eq!(
                        check(&flip(&root, bit), key, &proof),
                        Err(MapProofError::RootMismatch)
                    );
                }
                for i in 0..proof.siblings.len() {
                    for bit in 0..256 {
                        let mut p = proof.clone();
                        p.siblings[i] = HexHash(flip(&p.siblings[i].0, bit));
                        assert_rejected(&root, key, &p, "sibling bit flip");
                    }
                    let mut p = proof.clone();
                    p.siblings.remove(i);
                    assert_rejected(&root, key, &p, "removed sibling");
                }
                for i in 0..=proof.siblings.len() {
                    for extra in [EMPTY, k("extra"), root] {
                        let mut p = proof.clone();
                        p.siblings.insert(i, HexHash(extra));
                        assert_rejected(&root, key, &p, "added sibling");
                    }
                }
                match proof.leaf {
                    Some(leaf) => {
                        for bit in 0..256 {
                            let mut p = proof.clone();
                            p.leaf = Some(MapLeaf {
                                key: flip(&leaf.key, bit),
                                ..leaf
                            });
                            assert_rejected(&root, key, &p, "leaf key bit flip");
                            let mut p = proof.clone();
                            p.leaf = Some(MapLeaf {
                                leaf_hash: flip(&leaf.leaf_hash, bit),
                                ..leaf
                            });
                            assert_rejected(&root, key, &p, "leaf hash bit flip");
                        }
                        for bit in 0..64 {
                            let mut p = proof.clone();
                            p.leaf = Some(MapLeaf {
                                index: leaf.index ^ (1 << bit),
                                ..leaf
                            });
                            assert_rejected(&root, key, &p, "leaf index bit flip");
                        }
                        let p = MapProof {
                            leaf: None,
                            ..proof.clone()
                        };
                        assert_rejected(&root, key, &p, "leaf replaced by None");
                    }
                    None => {
                        for (k2, v2) in &model {
                            let p = MapProof {
                                leaf: Some(MapLeaf::new(*k2, *v2)),
                                ..proof.clone()
                            };
                            assert_rejected(&root, key, &p, "None replaced by a leaf");
                        }
                    }
                }
                // The proof for `key`, checked for another key: refused, or the truth for it.
                for other in &queries {
                    if other == key {
                        continue;
                    }
                    match check(&root, other, &proof) {
                        Err(_) => {}
                        Ok(answer) => {
                            assert_eq!(answer, model.get(other).copied());
                            accepted_for_other_key += 1;
                        }
                    }
                }
            }
        }
        // Keys sharing a proof's path up to its depth do reuse it (as absent).
        assert!(accepted_for_other_key > 0);
    }

    #[test]
    fn error_variants() {
        let items: Vec<_> = (1..=3)
            .map(|i| (k(&format!("k{i}")), kat_value(i)))
            .collect();
        let m = map_of(&items);
        let root = m.root();
        let k1 = k("k1");
        let proof = m.prove(&k1);
        assert!(proof.depth() >= 2);

        let mut deep = proof.clone();
        deep.siblings = vec![HexHash(k("s")); 257];
        assert_eq!(
            check(&root, &k1, &deep),
            Err(MapProofError::TooDeep { depth: 257 })
        );
        // A key that leaves k1's path at bit 0: k1's leaf is not on its path.
        let off = flip(&k1, 0);
        assert_eq!(
            check(&root, &off, &proof),
            Err(MapProofError::LeafOffPath {
                depth: proof.depth(),
                shared: 0
            })
        );
        // Pushing a leaf one level down behind an EMPTY sibling.
        let mut longer = proof.clone();
        longer.siblings.push(HexHash(EMPTY));
        assert_eq!(
            check(&root, &k1, &longer),
            Err(MapProofError::NonCanonical {
                depth: proof.depth() + 1
            })
        );
        // The same shape for a one-key map, with the root the non-canonical tree would have.
        let single_leaf = hash_leaf(&k1, &kat_value(1));
        let fake_root = if key_bit(&k1, 0) == 0 {
            hash_node(&single_leaf, &EMPTY)
        } else {
            hash_node(&EMPTY, &single_leaf)
        };
        let fake = MapProof {
            leaf: Some(MapLeaf::new(k1, kat_value(1))),
            siblings: vec![HexHash(EMPTY)],
        };
        assert_eq!(
            check(&fake_root, &k1, &fake),
            Err(MapProofError::NonCanonical { depth: 1 })
        );
        assert_eq!(check(&EMPTY, &k1, &proof), Err(MapProofError::RootMismatch));
        // The empty map.
        let empty = StateMap::new();
        assert!(empty.is_empty());
        assert_eq!(empty.get(&k1), None);
        let p = empty.prove(&k1);
        assert_eq!(
            p,
            MapProof {
                leaf: None,
                siblings: vec![]
            }
        );
        assert_eq!(check(&EMPTY, &k1, &p), Ok(None));
        assert_eq!(check(&root, &k1, &p), Err(MapProofError::RootMismatch));
        // A one-key map: the root is the leaf hash and the proof has no sibling.
        let one = map_of(&items[..1]);
        assert_eq!(one.root(), single_leaf);
        assert_eq!(one.prove(&k1).depth(), 0);
        assert_eq!(
            check(&one.root(), &k1, &one.prove(&k1)),
            Ok(Some(kat_value(1)))
        );
        let k2 = k("k2");
        assert_eq!(check(&one.root(), &k2, &one.prove(&k2)), Ok(None));
    }

    // --- 4. Known-answer vectors (also in FORMAT-map.md). ---

    const ROOT_EMPTY: &str = "0000000000000000000000000000000000000000000000000000000000000000";
    const ROOT_K1: &str = "94069b2761d76784241449a64f4b45b96ba82dd3749a75152f7bd558a08c9225";
    const ROOT_K1_K2: &str = "99a8e60b32579a6a380b11c62e74a05d82287b1c183683d8a0fcfbfe3ddbd9cd";
    const ROOT_K1_K2_K3: &str = "d3e0c2b548f0c6f78a996b62eb56f7f3c7c794bddb0a4ba1e6440c005a73351c";

    const PROOF_K1: &str = r#"{"leaf":{"key":"ffb4332755be52674d663ce9586917c9c525bc9a2868563a0ab79e9eddbe86ce","index":1,"leaf_hash":"2a84887509a92ed4c5f4f4acb4aec1232da18970cef84558c77fe0f78336fb82"},"siblings":["0000000000000000000000000000000000000000000000000000000000000000","91db3429e105aa9a7b642a2dc47f69933444cebcb458038e8ca328ea252302b3","0000000000000000000000000000000000000000000000000000000000000000","23eea269e439ff918b3ebd7b187809af79e9cbc199d31f8dce8b90fde3ba5432"]}"#;
    const PROOF_K13: &str = r#"{"leaf":{"key":"8c381c8ea23313b8ad367f1fc5710363f4f40ed1587fa2c38ad19c92b8ead553","index":2,"leaf_hash":"a32d57bd283850e7341c48c7a1aba245654d189aa5711cc3b44965af9cfe3b06"},"siblings":["0000000000000000000000000000000000000000000000000000000000000000","7bef5ccb438462287738279607b585303303e7b3cb6e21313805e293230543ad"]}"#;
    const PROOF_K4: &str = r#"{"leaf":null,"siblings":["0000000000000000000000000000000000000000000000000000000000000000","91db3429e105aa9a7b642a2dc47f69933444cebcb458038e8ca328ea252302b3","f833a90c85e68953111d99d0ba8fdec2db61fdc45057fb7aa9bfb35a8577e8db"]}"#;

    const CHAIN_ROOT: &str = "4f57bdbc16f0afbdc723e901aba0fc3560de84e7013ca42fff09edfa8912e051";
    const PROOF_CHAIN_A: &str = r#"{"leaf":{"key":"0000000000000000000000000000000000000000000000000000000000000000","index":10,"leaf_hash":"37b83d7b092680fcf88d1b36d0820e67700fa0d8651e2d8cb14e71ac189dea01"},"siblings":["0000000000000000000000000000000000000000000000000000000000000000","0000000000000000000000000000000000000000000000000000000000000000","0000000000000000000000000000000000000000000000000000000000000000","f9e17b9c1cc801d02e8b62553b27ef4f5d547d6c3880617d86b659ac03bd0835"]}"#;
    const PROOF_CHAIN_C: &str = r#"{"leaf":null,"siblings":["0000000000000000000000000000000000000000000000000000000000000000","0000000000000000000000000000000000000000000000000000000000000000","dd5caf1f729c4f8fd915faef6afcdcb35836ebaa02eec6f14dcc744377b8dda0"]}"#;

    fn kat_map(n: u64) -> StateMap {
        let mut m = StateMap::new();
        for i in 1..=n {
            m.insert(k(&format!("k{i}")), kat_value(i));
        }
        m
    }

    fn chain_keys() -> (Hash, Hash, Hash) {
        let mut b = [0u8; 32];
        b[0] = 0x10;
        let mut c = [0u8; 32];
        c[0] = 0x20;
        ([0u8; 32], b, c)
    }

    #[test]
    fn known_answers() {
        assert_eq!(
            hex::encode(k("k1")),
            "ffb4332755be52674d663ce9586917c9c525bc9a2868563a0ab79e9eddbe86ce"
        );
        assert_eq!(
            hex::encode(kat_value(1).leaf_hash),
            "2a84887509a92ed4c5f4f4acb4aec1232da18970cef84558c77fe0f78336fb82"
        );
        for (name, want) in [
            (
                "k2",
                "8c381c8ea23313b8ad367f1fc5710363f4f40ed1587fa2c38ad19c92b8ead553",
            ),
            (
                "k3",
                "e548a4f00c01e9886ca0937656401a82b50113a9b67f66abc8476f3ce9d8b72e",
            ),
            (
                "k4",
                "c5423d86021dae00241f33e5a0f7c68ea6011e7074acf057ca5f9863b7511892",
            ),
            (
                "k13",
                "aa9de3a3e71896e4e8b366fd49ec9f8cceb0f23af51547823f5ec71b5019297a",
            ),
        ] {
            assert_eq!(hex::encode(k(name)), want, "{name}");
        }
        for (i, want) in [
            (
                2,
                "a32d57bd283850e7341c48c7a1aba245654d189aa5711cc3b44965af9cfe3b06",
            ),
            (
                3,
                "7332d427166eb20e82305be34965bcbebf3cbd8fe4980066f61bdc8fe1f7d489",
            ),
            (
                10,
                "37b83d7b092680fcf88d1b36d0820e67700fa0d8651e2d8cb14e71ac189dea01",
            ),
        ] {
            assert_eq!(hex::encode(kat_value(i).leaf_hash), want, "v{i}");
        }
        // The siblings that FORMAT-map.md names.
        let leaf1 = hash_leaf(&k("k1"), &kat_value(1));
        let leaf2 = hash_leaf(&k("k2"), &kat_value(2));
        let leaf3 = hash_leaf(&k("k3"), &kat_value(3));
        assert_eq!(
            hex::encode(leaf2),
            "91db3429e105aa9a7b642a2dc47f69933444cebcb458038e8ca328ea252302b3"
        );
        assert_eq!(
            hex::encode(leaf3),
            "23eea269e439ff918b3ebd7b187809af79e9cbc199d31f8dce8b90fde3ba5432"
        );
        assert_eq!(
            hex::encode(hash_node(&leaf3, &leaf1)),
            "f833a90c85e68953111d99d0ba8fdec2db61fdc45057fb7aa9bfb35a8577e8db"
        );
        let roots = [ROOT_EMPTY, ROOT_K1, ROOT_K1_K2, ROOT_K1_K2_K3];
        for (n, want) in roots.iter().enumerate() {
            let m = kat_map(n as u64);
            assert_eq!(hex::encode(m.root()), *want, "root of {n} keys");
            let model: BTreeMap<_, _> = (1..=n as u64)
                .map(|i| (k(&format!("k{i}")), kat_value(i)))
                .collect();
            assert_eq!(m.root(), model_root(&model));
        }
        // A one-key root is that key's leaf hash.
        assert_eq!(hex::encode(hash_leaf(&k("k1"), &kat_value(1))), ROOT_K1);

        let m = kat_map(3);
        let root = m.root();
        for (query, json, want) in [
            ("k1", PROOF_K1, Some(kat_value(1))),
            ("k13", PROOF_K13, None),
            ("k4", PROOF_K4, None),
        ] {
            let proof = m.prove(&k(query));
            assert_eq!(
                serde_json::to_string(&proof).unwrap(),
                json,
                "proof for {query}"
            );
            let parsed: MapProof = serde_json::from_str(json).unwrap();
            assert_eq!(parsed, proof);
            assert_eq!(check(&root, &k(query), &parsed), Ok(want));
        }
        // k13 is absent, proven by k2's leaf sharing its first bits.
        let parsed: MapProof = serde_json::from_str(PROOF_K13).unwrap();
        assert_eq!(parsed.leaf.map(|l| l.key), Some(k("k2")));

        let (a, b, c) = chain_keys();
        let mut m = StateMap::new();
        m.insert(a, kat_value(10));
        m.insert(b, kat_value(11));
        assert_eq!(hex::encode(m.root()), CHAIN_ROOT);
        let leaf_a = hash_leaf(&a, &kat_value(10));
        let leaf_b = hash_leaf(&b, &kat_value(11));
        let at3 = hash_node(&leaf_a, &leaf_b);
        let by_hand = hash_node(&hash_node(&hash_node(&at3, &EMPTY), &EMPTY), &EMPTY);
        assert_eq!(m.root(), by_hand);
        for (query, json, want) in [
            (a, PROOF_CHAIN_A, Some(kat_value(10))),
            (c, PROOF_CHAIN_C, None),
        ] {
            let proof = m.prove(&query);
            assert_eq!(serde_json::to_string(&proof).unwrap(), json);
            assert_eq!(check(&m.root(), &query, &proof), Ok(want));
        }
        assert_eq!(m.prove(&a).siblings[3], HexHash(leaf_b));
        assert_eq!(m.prove(&c).siblings[2], HexHash(at3));
    }

    // --- JSON. ---

    #[test]
    fn json_shapes() {
        let v = kat_value(5);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"index":5,"leaf_hash":"{}"}}"#,
                hex::encode(v.leaf_hash)
            )
        );
        assert_eq!(serde_json::from_str::<MapValue>(&json).unwrap(), v);
        let value: serde_json::Value = serde_json::from_str(PROOF_K1).unwrap();
        assert_eq!(
            serde_json::from_value::<MapProof>(value).unwrap(),
            serde_json::from_str::<MapProof>(PROOF_K1).unwrap()
        );
    }

    fn parse_err(json: &str) -> String {
        serde_json::from_str::<MapProof>(json)
            .expect_err(json)
            .to_string()
    }

    #[test]
    fn json_is_strict() {
        let h = "ab".repeat(32);
        let good =
            format!(r#"{{"leaf":{{"key":"{h}","index":1,"leaf_hash":"{h}"}},"siblings":["{h}"]}}"#);
        serde_json::from_str::<MapProof>(&good).unwrap();
        let upper = "AB".repeat(32);
        assert!(parse_err(&good.replacen(&h, &upper, 1)).contains("invalid character 'A'"));
        assert!(
            parse_err(&good.replace(&format!("[\"{h}\"]"), &format!("[\"{upper}\"]")))
                .contains("invalid character")
        );
        assert!(parse_err(&good.replacen(&h, &h[1..], 1)).contains("odd length 63"));
        assert!(parse_err(&good.replacen(&h, &h[2..], 1)).contains("31 bytes, expected 32"));
        assert!(parse_err(&good.replacen(&h, &format!("{h}00"), 1)).contains("33 bytes"));
        assert!(parse_err(&good.replacen(&h, "0x", 1)).contains("invalid character 'x'"));
        assert!(
            parse_err(&good.replace("\"index\":1", "\"index\":1,\"extra\":0"))
                .contains("unknown field")
        );
        assert!(
            parse_err(&good.replace("\"siblings\"", "\"extra\":0,\"siblings\""))
                .contains("unknown field")
        );
        assert!(parse_err(&format!(r#"{{"siblings":["{h}"]}}"#)).contains("missing field `leaf`"));
        assert!(parse_err(r#"{"leaf":null}"#).contains("missing field `siblings`"));
        assert!(parse_err(r#"{"leaf":null,"siblings":[5]}"#).contains("hex"));
        serde_json::from_str::<MapProof>(r#"{"leaf":null,"siblings":[]}"#).unwrap();
        assert!(serde_json::from_str::<MapValue>(&format!(
            r#"{{"index":1,"leaf_hash":"{h}","key":"{h}"}}"#
        ))
        .is_err());
    }

    #[test]
    fn node_sizes() {
        // The memory estimate in StateMap's documentation rests on these.
        assert_eq!(std::mem::size_of::<Leaf>(), 72);
        assert_eq!(std::mem::size_of::<Branch>(), 72);
        assert_eq!(std::mem::size_of::<Child>(), 16);
        assert_eq!(std::mem::size_of::<Option<Child>>(), 16);
        // Snapshots may be handed to other threads.
        fn send_sync<T: Send + Sync>() {}
        send_sync::<StateMap>();
    }

    /// Prints the vectors of FORMAT-map.md (`cargo test -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn print_vectors() {
        let m = kat_map(3);
        for i in 1..=3 {
            println!("k{i} = {}", hex::encode(k(&format!("k{i}"))));
            println!("v{i} = {}", hex::encode(kat_value(i).leaf_hash));
            println!("root of k1..k{i} = {}", hex::encode(kat_map(i).root()));
        }
        for q in ["k1", "k13", "k4"] {
            println!("{q} = {}", hex::encode(k(q)));
            println!(
                "proof {q}: {}",
                serde_json::to_string(&m.prove(&k(q))).unwrap()
            );
        }
        let (a, b, c) = chain_keys();
        let mut m = StateMap::new();
        m.insert(a, kat_value(10));
        m.insert(b, kat_value(11));
        println!("chain root {}", hex::encode(m.root()));
        println!("proof A: {}", serde_json::to_string(&m.prove(&a)).unwrap());
        println!("proof C: {}", serde_json::to_string(&m.prove(&c)).unwrap());
    }
}
