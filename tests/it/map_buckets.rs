//! The state map that keeps only its upper levels in memory (`StateMap::with_buckets`) must
//! agree with the map holding every key: same roots, same proofs, same answers, for every
//! bucket size, through inserts, snapshots and damaged sources; and a ledger's map leaves (whose
//! map loads its buckets from storage) carry the root of the full map replayed from the event
//! leaves before them, with the same proofs, for old map leaves and after reopening too.

use std::cell::Cell;
use std::collections::BTreeMap;

use consentlog::core::leaf::Leaf;
use consentlog::core::map::{self, Hash, MapError, MapSource, MapValue, StateMap};
use consentlog::ledger::{Ledger, Snapshot};
use proptest::prelude::*;

use crate::support::ledger::{add_noise, grant, revoke, TestLedger};
use crate::support::Person;

/// A source backed by a BTreeMap: the keys of the bucketed map, as they are.
struct Model {
    keys: BTreeMap<Hash, MapValue>,
    loads: Cell<usize>,
}

impl MapSource for Model {
    type Error = String;

    fn load(&self, prefix: &Hash, bits: usize) -> Result<Vec<(Hash, MapValue)>, String> {
        self.loads.set(self.loads.get() + 1);
        Ok(self
            .keys
            .iter()
            .filter(|(k, _)| map::common_prefix_len(k, prefix) >= bits)
            .map(|(k, v)| (*k, *v))
            .collect())
    }
}

fn b3(b: &[u8]) -> Hash {
    *blake3::hash(b).as_bytes()
}

fn value(i: u64) -> MapValue {
    MapValue {
        index: i,
        leaf_hash: b3(&i.to_be_bytes()),
    }
}

fn flip(key: &Hash, bit: usize) -> Hash {
    let mut k = *key;
    k[bit / 8] ^= 0x80 >> (bit % 8);
    k
}

/// Applies `batches` to a full map and to a bucketed one, checking they agree after each.
fn run(bucket: usize, batches: &[Vec<(Hash, MapValue)>], probes: &[Hash]) {
    run_capped(bucket, 0, batches, probes)
}

/// [`run`] with the bucketed map capped at `cap` bytes in memory (0: no cap); it must stay
/// within its cap after each batch.
fn run_capped(bucket: usize, cap: usize, batches: &[Vec<(Hash, MapValue)>], probes: &[Hash]) {
    let mut full = StateMap::new();
    let mut part = StateMap::with_buckets(bucket).capped(cap);
    let mut model = Model {
        keys: BTreeMap::new(),
        loads: Cell::new(0),
    };
    for batch in batches {
        part.insert_batch_from(batch, &model).expect("insert");
        full.insert_batch(batch);
        for (k, v) in batch {
            model.keys.insert(*k, *v);
        }
        assert_eq!(part.root(), full.root());
        assert_eq!(part.len(), full.len());
        if cap >= 128 {
            assert!(part.bytes_in_memory() <= cap, "over the cap");
        }
        let keys: Vec<Hash> = model.keys.keys().copied().collect();
        for k in keys.iter().chain(probes) {
            let p = part.prove_from(k, &model).expect("prove");
            assert_eq!(p, full.prove(k));
            assert_eq!(
                part.get_from(k, &model).expect("get"),
                model.keys.get(k).copied()
            );
        }
    }
}

fn keys(n: u64, salt: u64) -> Vec<(Hash, MapValue)> {
    (0..n)
        .map(|i| {
            (
                b3(&[salt.to_le_bytes(), i.to_le_bytes()].concat()),
                value(i),
            )
        })
        .collect()
}

#[test]
fn small_maps_every_bucket() {
    for bucket in [2, 3, 4, 5, 8, 16] {
        for n in 1..40u64 {
            // One key at a time, then all at once, then overwrites.
            let items = keys(n, n);
            let singles: Vec<_> = items.iter().map(|i| vec![*i]).collect();
            run(bucket, &singles, &[b3(b"absent"), flip(&items[0].0, 255)]);
            let over: Vec<_> = items.iter().map(|(k, _)| (*k, value(99))).collect();
            run(bucket, &[items.clone(), over], &[flip(&items[0].0, 3)]);
        }
    }
}

#[test]
fn near_keys_and_long_prefixes() {
    let base = b3(b"base");
    let items: Vec<_> = [255, 254, 200, 100, 9, 8, 1, 0]
        .iter()
        .enumerate()
        .map(|(i, &bit)| (flip(&base, bit), value(i as u64)))
        .chain(std::iter::once((base, value(50))))
        .collect();
    for bucket in [2, 3, 4, 16] {
        let singles: Vec<_> = items.iter().map(|i| vec![*i]).collect();
        run(bucket, &singles, &[flip(&base, 128), flip(&base, 253)]);
        run(bucket, std::slice::from_ref(&items), &[flip(&base, 128)]);
    }
}

/// A ledger whose state map is capped far below what it needs at bucket 16: its map leaves
/// carry the full map's roots, its proofs are the full map's, before and after reopening.
#[test]
fn capped_ledger_map_agrees_with_the_full_map() {
    let cap = 4 << 10;
    let mut l = TestLedger::with_map_bytes(cap);
    let people: Vec<Person> = (0..30).map(|_| Person::new()).collect();
    let mut snaps = Vec::new();
    for round in 0..4 {
        add_noise(&l, 150);
        for p in people.iter().skip(round * 5).take(15) {
            if round % 2 == 0 {
                grant(&l, p, "shop.example", "newsletter");
            } else {
                revoke(&l, p, "shop.example", "newsletter");
            }
        }
        l.checkpoint();
        snaps.push(l.latest());
    }
    let last = snaps.last().unwrap();
    assert!(last.map.bucket() > 16, "bucket {}", last.map.bucket());
    assert!(last.map.bytes_in_memory() <= cap);
    let (_, all_keys) = replay(&l, l.size());
    for snap in &snaps {
        agrees_at(&l, snap, &all_keys);
    }
    l.reopen();
    let snap = l.latest();
    assert_eq!(snap.checkpoint, last.checkpoint);
    assert!(snap.map.bytes_in_memory() <= cap);
    agrees_at(&l, &snap, &all_keys);
    // Appends after the reopen go on from the capped map.
    add_noise(&l, 50);
    l.checkpoint();
    agrees_at(&l, &l.latest(), &all_keys);
}

#[test]
fn larger_map_loads_only_touched_buckets() {
    let items = keys(5_000, 7);
    let mut part = StateMap::with_buckets(16);
    let mut full = StateMap::new();
    let mut model = Model {
        keys: BTreeMap::new(),
        loads: Cell::new(0),
    };
    for chunk in items.chunks(1_000) {
        part.insert_batch_from(chunk, &model).unwrap();
        full.insert_batch(chunk);
        model.keys.extend(chunk.iter().copied());
    }
    assert_eq!(part.root(), full.root());
    // Memory holds about two nodes per bucket of keys, the full map two per key.
    assert_eq!(full.nodes_in_memory(), 2 * 5_000 - 1);
    let held = part.nodes_in_memory();
    assert!(held < 5_000 * 2 / 4, "{held} nodes in memory");
    // A proof loads at most one bucket.
    model.loads.set(0);
    let p = part.prove_from(&items[17].0, &model).unwrap();
    assert!(model.loads.get() <= 1);
    assert_eq!(
        map::check(&part.root(), &items[17].0, &p),
        Ok(Some(items[17].1))
    );
    // Ten updates load at most ten buckets.
    model.loads.set(0);
    let ups: Vec<_> = items[..10].iter().map(|(k, _)| (*k, value(7))).collect();
    part.insert_batch_from(&ups, &model).unwrap();
    full.insert_batch(&ups);
    assert!(model.loads.get() <= 10, "{} loads", model.loads.get());
    assert_eq!(part.root(), full.root());
}

#[test]
fn snapshots_keep_their_root() {
    let items = keys(600, 3);
    let mut part = StateMap::with_buckets(4);
    let mut model = Model {
        keys: BTreeMap::new(),
        loads: Cell::new(0),
    };
    part.insert_batch_from(&items[..300], &model).unwrap();
    model.keys.extend(items[..300].iter().copied());
    let snap = part.clone();
    let old_model = Model {
        keys: model.keys.clone(),
        loads: Cell::new(0),
    };
    part.insert_batch_from(&items[300..], &model).unwrap();
    let mut full = StateMap::new();
    full.insert_batch(&items[..300]);
    assert_eq!(snap.root(), full.root());
    for (k, v) in &items[..300] {
        let p = snap.prove_from(k, &old_model).unwrap();
        assert_eq!(map::check(&snap.root(), k, &p), Ok(Some(*v)));
    }
}

#[test]
fn damaged_source_is_named_and_changes_nothing() {
    let items = keys(200, 11);
    let mut part = StateMap::with_buckets(8);
    let mut model = Model {
        keys: BTreeMap::new(),
        loads: Cell::new(0),
    };
    part.insert_batch_from(&items, &model).unwrap();
    model.keys.extend(items.iter().copied());
    let root = part.root();
    // A changed value, a dropped key and an extra key are each caught.
    let target = items[5].0;
    let mut cases = Vec::new();
    let mut changed = model.keys.clone();
    changed.insert(target, value(12345));
    cases.push(changed);
    let mut dropped = model.keys.clone();
    dropped.remove(&target);
    cases.push(dropped);
    let mut extra = model.keys.clone();
    extra.insert(flip(&target, 255), value(1));
    cases.push(extra);
    for keys in cases {
        let bad = Model {
            keys,
            loads: Cell::new(0),
        };
        let e = part.prove_from(&target, &bad).unwrap_err();
        assert!(matches!(e, MapError::Damaged { .. }), "{e}");
        let mut copy = part.clone();
        let e = copy
            .insert_batch_from(&[(target, value(1))], &bad)
            .unwrap_err();
        assert!(matches!(e, MapError::Damaged { .. }), "{e}");
        assert_eq!(copy.root(), root);
        assert_eq!(copy.len(), 200);
    }
}

/// The full map over the event leaves of `l` before leaf `end`, replayed from the leaves.
fn replay(l: &Ledger, end: u64) -> (StateMap, Vec<Hash>) {
    let mut full = StateMap::new();
    let mut keys = Vec::new();
    for i in 0..end {
        if let Leaf::Event(e) = l.leaf(i).unwrap().unwrap() {
            full.insert(
                e.key,
                MapValue {
                    index: i,
                    leaf_hash: e.leaf_hash(),
                },
            );
            keys.push(e.key);
        }
    }
    (full, keys)
}

/// `snap`'s map agrees with the full map replayed up to its map leaf: the map leaf's root, and
/// the ledger's proof (its buckets loaded from storage, as of the map leaf) of every key, of
/// keys written only later, and of absent keys.
fn agrees_at(l: &Ledger, snap: &Snapshot, later: &[Hash]) {
    let (full, keys) = replay(l, snap.map_index);
    assert_eq!(
        full.root(),
        snap.map_leaf.map_root,
        "map leaf {}",
        snap.map_index
    );
    assert_eq!(snap.map.root(), snap.map_leaf.map_root);
    assert!(matches!(
        l.leaf(snap.map_index).unwrap(),
        Some(Leaf::Map(m)) if m == snap.map_leaf
    ));
    let absent = [b3(b"absent"), flip(&keys[0], 255), flip(&keys[0], 9)];
    for k in keys.iter().chain(later).chain(&absent) {
        let p = l.prove_key(snap, k).unwrap();
        assert_eq!(p, full.prove(k), "map leaf {}", snap.map_index);
        assert_eq!(
            map::check(&snap.map_leaf.map_root, k, &p).unwrap(),
            full.get(k)
        );
    }
}

#[test]
fn ledger_map_leaves_agree_with_the_full_map() {
    let mut l = TestLedger::new();
    let people: Vec<Person> = (0..40).map(|_| Person::new()).collect();
    let mut snaps = Vec::new();
    let mut written = Vec::new();
    for round in 0..4 {
        add_noise(&l, 60);
        for p in people.iter().skip(round * 7).take(20) {
            if round % 2 == 0 {
                grant(&l, p, "shop.example", "newsletter");
            } else {
                revoke(&l, p, "shop.example", "newsletter");
            }
            written.push(p.state_key(&l, "shop.example", "newsletter"));
        }
        l.checkpoint();
        snaps.push(l.latest());
    }
    // Keys written after the first map leaves: their proofs there roll back to the value
    // before (or to absence).
    let (_, all_keys) = replay(&l, l.size());
    for snap in &snaps {
        agrees_at(&l, snap, &all_keys);
    }
    // Reopened: the latest map is rebuilt from storage and agrees too.
    l.reopen();
    let snap = l.latest();
    assert_eq!(snap.checkpoint, snaps.last().unwrap().checkpoint);
    agrees_at(&l, &snap, &written);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random batches of fresh keys, overwrites and near keys, on random bucket sizes.
    #[test]
    fn agrees_with_full_map(
        bucket in 2usize..20,
        cap in 0usize..6_000,
        batches in prop::collection::vec(
            prop::collection::vec((any::<[u8; 32]>(), 0usize..4, 0usize..256, any::<u64>()), 1..30),
            1..6,
        ),
    ) {
        let mut seen: Vec<Hash> = Vec::new();
        let mut out = Vec::new();
        for batch in batches {
            let mut b = Vec::new();
            for (fresh, kind, bit, v) in batch {
                let k = match (kind, seen.len()) {
                    (_, 0) | (0, _) | (1, _) => fresh,
                    (2, n) => seen[(v as usize) % n],
                    (_, n) => flip(&seen[(v as usize) % n], bit),
                };
                seen.push(k);
                b.push((k, value(v)));
            }
            out.push(b);
        }
        let probes: Vec<Hash> = seen.iter().take(5).map(|k| flip(k, 200)).collect();
        run(bucket, &out, &probes);
        run_capped(bucket, cap, &out, &probes);
    }
}
