//! Proofs of a key's value or absence, and [`check`], their verification (docs/FORMAT.md §5,
//! "Proofs"). A verifier needs only this file, [`node_hash`](super::node_hash) and
//! [`bits`](super::bits).
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

use serde::{Deserialize, Serialize};

use super::bits::{common_prefix_len, MAP_DEPTH};
use super::node_hash::{hash_leaf, hash_up, MapValue, EMPTY};
use super::{Hash, HexHash};

/// The one key stored in the subtree where a proof stops, with its value.
///
/// JSON: `{"key": "<hex>", "index": 5, "leaf_hash": "<hex>"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapLeaf {
    #[serde(with = "crate::hash::hex_array")]
    pub key: Hash,
    pub index: u64,
    #[serde(with = "crate::hash::hex_array")]
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
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
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
        h = hash_up(&h, &sibling.0, key, i);
    }
    if h != *root {
        return Err(MapProofError::RootMismatch);
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::super::bits::key_bit;
    use super::super::node_hash::hash_node;
    use super::super::testutil::*;
    use super::super::StateMap;
    use super::*;
    use std::collections::BTreeMap;

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
