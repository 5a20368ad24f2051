//! Test helpers of the map's unit tests: keys, values, and an independent reference written
//! from the specification only.

use std::collections::BTreeMap;

use super::{check, Hash, MapLeaf, MapValue, StateMap};

pub(super) fn b3(s: &[u8]) -> Hash {
    *blake3::hash(s).as_bytes()
}

pub(super) fn k(s: &str) -> Hash {
    b3(s.as_bytes())
}

/// The values of the known-answer vectors: index `i`, leaf_hash BLAKE3("v<i>").
pub(super) fn kat_value(i: u64) -> MapValue {
    MapValue {
        index: i,
        leaf_hash: b3(format!("v{i}").as_bytes()),
    }
}

pub(super) fn value(i: u64) -> MapValue {
    MapValue {
        index: i,
        leaf_hash: b3(&i.to_le_bytes()),
    }
}

pub(super) fn flip(key: &Hash, bit: usize) -> Hash {
    let mut k = *key;
    k[bit / 8] ^= 0x80 >> (bit % 8);
    k
}

// --- An independent reference, written from the specification only. ---

pub(super) fn naive_bit(key: &Hash, i: usize) -> bool {
    key[i / 8] & (0x80 >> (i % 8)) != 0
}

pub(super) fn naive_leaf(key: &Hash, v: &MapValue) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[2]);
    h.update(key);
    h.update(&v.index.to_le_bytes());
    h.update(&v.leaf_hash);
    *h.finalize().as_bytes()
}

pub(super) fn naive_node(l: &Hash, r: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[3]);
    h.update(l);
    h.update(r);
    *h.finalize().as_bytes()
}

/// Root of the subtree at `depth` holding `items` (sorted by key, distinct).
pub(super) fn naive_root(items: &[(Hash, MapValue)], depth: usize) -> Hash {
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

pub(super) fn model_root(model: &BTreeMap<Hash, MapValue>) -> Hash {
    let items: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
    naive_root(&items, 0)
}

/// The depth where a proof for `key` must stop: the first depth at which at most one stored
/// key shares `key`'s prefix.
pub(super) fn naive_proof_depth(model: &BTreeMap<Hash, MapValue>, key: &Hash) -> usize {
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

pub(super) fn map_of(items: &[(Hash, MapValue)]) -> StateMap {
    let mut m = StateMap::new();
    for (k, v) in items {
        m.insert(*k, *v);
    }
    m
}

/// Checks everything the map says against `model`, for the present keys and `absent`.
pub(super) fn assert_agrees(m: &StateMap, model: &BTreeMap<Hash, MapValue>, absent: &[Hash]) {
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
