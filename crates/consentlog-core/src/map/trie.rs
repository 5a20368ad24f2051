//! The state map in memory: a persistent path-compressed (PATRICIA) trie.
//!
//! A leaf per key and a branch per depth where two keys first differ, so there are `n - 1`
//! branches for `n` keys. The runs of single-child levels between a branch and its parent
//! (which the hash construction still hashes, one `node(h, EMPTY)` or `node(EMPTY, h)` per
//! level) are not stored: each branch caches its hash as seen from its parent's slot, i.e.
//! already folded up through that run ([`lift`]). Nodes are reference-counted and updated by
//! path copying, so cloning a map is O(1) and a clone keeps answering with the old root while
//! the original changes.
//!
//! A subtree of at most `bucket` keys may be a [`Stub`] instead: its hash, the depth where its
//! keys first differ, one of its keys and its key count. Its keys are loaded from a
//! [`MapSource`] when an insert or a proof reaches it ([`expand`]).

use std::sync::Arc;

use super::bits::{common_prefix_len, key_bit, MAP_DEPTH};
use super::node_hash::{hash_leaf, hash_node, lift, MapValue, EMPTY};
use super::source::{Built, MapError, MapSource};
use super::Hash;

/// A stored key and its value (72 bytes).
#[derive(Clone)]
pub(super) struct Leaf {
    pub(super) key: Hash,
    pub(super) value: MapValue,
}

/// A depth `bit` at which the keys below first differ (72 bytes).
#[derive(Clone)]
pub(super) struct Branch {
    /// The hash of this subtree as seen from the parent's slot: the subtree at depth
    /// `parent.bit + 1` (depth 0 for the root), i.e. `node(left, right)` lifted through the
    /// unstored single-child levels `bit - 1` down to that depth.
    pub(super) hash: Hash,
    /// Keys with bit `bit` = 0; its top depth is `bit + 1`.
    pub(super) left: Child,
    /// Keys with bit `bit` = 1; its top depth is `bit + 1`.
    pub(super) right: Child,
    /// The number of keys below (a map holds fewer than 2^32 keys).
    pub(super) count: u32,
    /// All keys below share bits `0..bit` and some differ at bit `bit` (0..=255).
    pub(super) bit: u8,
}

/// A subtree of two or more keys that is not held in memory (104 bytes). Its keys are in the
/// map's [`MapSource`], which is asked for them when a proof or an insert reaches the stub; the
/// keys it returns must hash to `hash`, or the source is damaged ([`MapError::Damaged`]).
#[derive(Clone)]
pub(super) struct Stub {
    /// `node(left, right)` at depth `bit`.
    pub(super) own: Hash,
    /// As [`Branch::hash`]: `own` lifted to the parent's slot.
    pub(super) hash: Hash,
    /// One of the keys below; they all share its first `bit` bits.
    pub(super) rep: Hash,
    pub(super) count: u32,
    /// As [`Branch::bit`].
    pub(super) bit: u8,
}

/// A non-empty subtree (16 bytes).
#[derive(Clone)]
pub(super) enum Child {
    Leaf(Arc<Leaf>),
    Branch(Arc<Branch>),
    Stub(Arc<Stub>),
}

impl Child {
    /// The subtree's hash at its top depth (the depth of the slot that holds it).
    pub(super) fn hash(&self) -> Hash {
        match self {
            Child::Leaf(l) => hash_leaf(&l.key, &l.value),
            Child::Branch(b) => b.hash,
            Child::Stub(s) => s.hash,
        }
    }

    /// The number of keys in the subtree.
    pub(super) fn count(&self) -> u32 {
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
    pub(super) fn own_hash(&self) -> Hash {
        hash_node(&self.left.hash(), &self.right.hash())
    }

    pub(super) fn child(&self, side: u8) -> &Child {
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

/// Tuning of a map that keeps only its upper levels in memory, and where it loads the rest.
pub(super) struct Cx<'a, S: ?Sized> {
    /// Subtrees of at most this many keys (and at least two) become stubs; 0: none do.
    pub(super) bucket: usize,
    pub(super) src: &'a S,
}

/// Follows `key`'s bits at each branch down to a leaf or stub (without checking the skipped
/// bits), as in a PATRICIA lookup, and returns a key stored there: some key under `c`, and `key`
/// itself if `key` is present and held in memory.
pub(super) fn rep_on_path<'a>(mut c: &'a Child, key: &Hash) -> &'a Hash {
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
pub(super) fn build(items: &[(Hash, MapValue)], top: usize, bucket: usize) -> Child {
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
pub(super) fn expand<S: MapSource + ?Sized>(
    stub: &Stub,
    top: usize,
    src: &S,
) -> Result<Child, MapError<S::Error>> {
    let bits = stub.bit as usize;
    if let Some(Built(kept)) = src.kept(&stub.rep, bits, top) {
        if matches!(&kept, Child::Branch(b) if b.bit == stub.bit && b.own_hash() == stub.own) {
            return Ok(kept);
        }
    }
    let items = src.load(&stub.rep, bits).map_err(MapError::Source)?;
    let damaged = || MapError::Damaged {
        prefix: stub.rep,
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
        Child::Branch(b) if b.bit == stub.bit && b.own_hash() == stub.own => {
            src.keep(&stub.rep, bits, top, &Built(built.clone()));
            Ok(built)
        }
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
/// only the branches of more keys). Loads nothing: a stub needs only the branch's hashes.
pub(super) fn compact(slot: &mut Child, bucket: usize) {
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
pub(super) fn merge_into<S: MapSource + ?Sized>(
    slot: &mut Child,
    top: usize,
    items: &[(Hash, MapValue)],
    rep: Option<Hash>,
    cx: &Cx<S>,
) -> Result<usize, MapError<S::Error>> {
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

/// Items at or above which [`merge_in_memory`] merges a branch's two sides on two threads
/// (when each side gets at least a quarter of them): about a millisecond of hashing.
const PARALLEL_ITEMS: usize = 1024;

/// [`merge_into`] for a subtree with no stubs (a map that never had any): the same nodes and
/// hashes, with a branch's two sides merged on two threads when both get many items. The
/// path hashes of a large batch are most of what a map leaf costs a replay.
pub(super) fn merge_in_memory(
    slot: &mut Child,
    top: usize,
    items: &[(Hash, MapValue)],
    rep: Option<Hash>,
) -> usize {
    let first = items[0].0;
    if items.len() >= PARALLEL_ITEMS {
        if let Child::Branch(br) = slot {
            let bit = br.bit as usize;
            // As in `merge_into`: with `bit > top`, bits `top..bit` are compared with a key
            // below; the items then fall into this branch's two sides (no new branch above
            // it) when they and that key agree on them.
            let rep = if bit > top {
                Some(rep.unwrap_or_else(|| *rep_on_path(slot, &first)))
            } else {
                rep
            };
            let items_prefix = common_prefix_len(&first, &items[items.len() - 1].0);
            let inside = bit <= top
                || (items_prefix >= bit
                    && rep.is_some_and(|r| common_prefix_len(&r, &first) >= bit));
            if inside {
                let Child::Branch(br) = slot else {
                    unreachable!()
                };
                let br = Arc::make_mut(br);
                let mid = items.partition_point(|(k, _)| key_bit(k, bit) == 0);
                let (left, right) = (&mut br.left, &mut br.right);
                let (l_items, r_items) = items.split_at(mid);
                let l_rep = rep.filter(|r| key_bit(r, bit) == 0);
                let r_rep = rep.filter(|r| key_bit(r, bit) == 1);
                let mut merge_left = || match l_items.is_empty() {
                    true => 0,
                    false => merge_in_memory(left, bit + 1, l_items, l_rep),
                };
                let mut merge_right = || match r_items.is_empty() {
                    true => 0,
                    false => merge_in_memory(right, bit + 1, r_items, r_rep),
                };
                let quarter = items.len() / 4;
                let added = if l_items.len() >= quarter && r_items.len() >= quarter {
                    let (a, b) = crate::par::join(merge_left, merge_right);
                    a + b
                } else {
                    merge_left() + merge_right()
                };
                br.count = br.left.count().saturating_add(br.right.count());
                br.hash = lift(br.own_hash(), bit, top, &first);
                return added;
            }
        }
    }
    let cx = Cx {
        bucket: 0,
        src: &super::source::InMemory,
    };
    merge_into(slot, top, items, rep, &cx).expect("a subtree with no stubs loads nothing")
}

/// The union of the keys under `slot` and `items` first differs at bit `split_at`, and the keys
/// under `slot` all share more than `split_at` bits (`rep` is one of them). Puts a new branch at
/// `split_at` into `slot`, with the old subtree (merged with the items on its side) on one side
/// and a subtree built from the remaining items on the other. Returns the number of keys added.
fn split<S: MapSource + ?Sized>(
    slot: &mut Child,
    top: usize,
    split_at: usize,
    items: &[(Hash, MapValue)],
    rep: Hash,
    cx: &Cx<S>,
) -> Result<usize, MapError<S::Error>> {
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

/// The bytes a node of `size` bytes takes in an `Arc` on the heap: the two reference counts,
/// then the allocator's 8-byte header, rounded up to 16 bytes (glibc malloc; at least 32).
const fn heap_bytes(size: usize) -> usize {
    let chunk = (size + 16 + 8 + 15) & !15;
    if chunk < 32 {
        32
    } else {
        chunk
    }
}

/// The heap bytes of a [`Leaf`] (96).
pub(super) const LEAF_BYTES: usize = heap_bytes(std::mem::size_of::<Leaf>());
/// The heap bytes of a [`Branch`] (96).
pub(super) const BRANCH_BYTES: usize = heap_bytes(std::mem::size_of::<Branch>());
/// The heap bytes of a [`Stub`] (128).
pub(super) const STUB_BYTES: usize = heap_bytes(std::mem::size_of::<Stub>());

/// The most heap bytes one added key can add to a subtree whose branches of at most `bucket`
/// keys are all stubs (as [`build`], [`merge_into`] and [`compact`] leave them; that shape
/// depends only on the keys, so a batch adds at most this per key too). A new key either
/// splits off a leaf or stub (which stays or becomes a stub: at most `STUB - LEAF` more), or
/// adds a branch of more than `bucket` keys over an old subtree (a branch and a leaf more), or
/// takes a stub of `bucket` keys to `bucket + 1` (the stub becomes a branch over two nodes of
/// at most a stub each); key counts fall strictly down a path, so only one of these happens.
pub(super) const MAX_BYTES_PER_KEY: usize = 2 * STUB_BYTES;

/// The heap bytes of the nodes of the subtree in `c` (nodes shared with a clone counted
/// here too). Walks every node held in memory.
pub(super) fn heap_bytes_of(c: &Child) -> usize {
    match c {
        Child::Leaf(_) => LEAF_BYTES,
        Child::Stub(_) => STUB_BYTES,
        Child::Branch(b) => BRANCH_BYTES + heap_bytes_of(&b.left) + heap_bytes_of(&b.right),
    }
}

#[cfg(test)]
mod tests {
    use super::super::StateMap;
    use super::*;

    #[test]
    fn node_sizes() {
        // The memory estimate in StateMap's documentation rests on these.
        assert_eq!(std::mem::size_of::<Leaf>(), 72);
        assert_eq!(std::mem::size_of::<Branch>(), 72);
        assert_eq!(std::mem::size_of::<Child>(), 16);
        assert_eq!(std::mem::size_of::<Option<Child>>(), 16);
        assert_eq!(std::mem::size_of::<Stub>(), 104);
        assert_eq!((LEAF_BYTES, BRANCH_BYTES, STUB_BYTES), (96, 96, 128));
        assert!(LEAF_BYTES.max(BRANCH_BYTES) <= STUB_BYTES);
        // Snapshots may be handed to other threads.
        fn send_sync<T: Send + Sync>() {}
        send_sync::<StateMap>();
    }
}
