//! Every table's key and value encoding, as encode/decode pairs (the tables themselves are
//! [`Table`]). Decoding is strict: a key or value of the wrong length or form is
//! [`Corrupt`](super::Corrupt), naming the table, the key and what was wrong.
//!
//! | table | key | value |
//! |---|---|---|
//! | `Meta` | a name ([`ORIGIN`], [`SIZE`], [`FORMAT`]) | origin UTF-8; size u64 LE; `2` |
//! | `Leaf` | index u64 BE | [`Leaf`] bytes |
//! | `Opening` | index u64 BE | [`Opening`] bytes (erasable) |
//! | `Node` | level u8 (≥ 1) ‖ index u64 BE | hash |
//! | `KeyIndex` | state key ‖ seq u64 BE | index u64 LE ‖ event hash |
//! | `SubjectIndex` | subject ‖ state key | empty |
//! | `Checkpoint` | number u64 BE | note text, UTF-8 |
//! | `MapValue` | state key | index u64 LE ‖ leaf hash |
//! | `StateKey` | BLAKE3(alpha) | state key ‖ VRF proof[80] |

use crate::core::hash::Hash;
use crate::core::leaf::{EventLeaf, Leaf, MapLeaf};
use crate::core::map::MapValue;
use crate::core::opening::Opening;
use crate::core::rules::Head;
use crate::core::vrf::{StateKeyInput, VrfProof, PROOF_LEN};
use crate::store::{Table, View};

use super::error::{CorruptKind, Key, LedgerError};

/// `Meta`: the log's origin.
pub const ORIGIN: &[u8] = b"origin";
/// `Meta`: the number of entries.
pub const SIZE: &[u8] = b"size";
/// Meta key: the largest tree size whose cosigned checkpoint met the witness policy the
/// server runs with (u64 BE), what proofs carry (`Ledger::witnessed_for`).
pub const WITNESSED: &[u8] = b"witnessed";
/// `Meta`: the format version of the ledger's leaves, [`FORMAT_VERSION`] (a ledger without
/// it was written by format v1, which this version does not read).
pub const FORMAT: &[u8] = b"format";
/// The value of [`FORMAT`].
pub const FORMAT_VERSION: &[u8] = b"2";
fn malformed(table: Table, key: Key, why: impl Into<String>) -> LedgerError {
    LedgerError::corrupt(table, key, CorruptKind::Malformed(why.into()))
}

/// `N` bytes, or why not.
fn exact<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
    b.try_into()
        .map_err(|_| format!("{} bytes where {N} belong", b.len()))
}

fn u64_be(b: &[u8]) -> Result<u64, String> {
    exact::<8>(b).map(u64::from_be_bytes)
}

fn u64_le(b: &[u8]) -> Result<u64, String> {
    exact::<8>(b).map(u64::from_le_bytes)
}

/// index (u64 LE) ‖ hash: the values of `KeyIndex` and `MapLeaf`.
fn index_hash(index: u64, hash: &Hash) -> [u8; 40] {
    let mut v = [0u8; 40];
    v[..8].copy_from_slice(&index.to_le_bytes());
    v[8..].copy_from_slice(hash);
    v
}

fn decode_index_hash(v: &[u8]) -> Result<(u64, Hash), String> {
    let v = exact::<40>(v)?;
    Ok((u64_le(&v[..8])?, exact(&v[8..])?))
}

// ---- Meta ----

/// `Meta` value of [`SIZE`].
pub fn size_value(size: u64) -> [u8; 8] {
    size.to_le_bytes()
}

/// Decodes the `Meta` value of [`SIZE`].
pub fn decode_size(v: &[u8]) -> Result<u64, LedgerError> {
    u64_le(v).map_err(|e| malformed(Table::Meta, Key::Meta("size"), e))
}

/// Decodes the `Meta` value of [`ORIGIN`].
pub fn decode_origin(v: Vec<u8>) -> Result<String, LedgerError> {
    String::from_utf8(v)
        .map_err(|_| LedgerError::corrupt(Table::Meta, Key::Meta("origin"), CorruptKind::NotUtf8))
}

/// The recorded origin and tree size.
pub fn read_origin_and_size(r: &dyn View) -> Result<(String, u64), LedgerError> {
    let origin = r
        .get(Table::Meta, ORIGIN)?
        .ok_or_else(|| LedgerError::missing(Table::Meta, Key::Meta("origin")))?;
    let size = r
        .get(Table::Meta, SIZE)?
        .ok_or_else(|| LedgerError::missing(Table::Meta, Key::Meta("size")))?;
    Ok((decode_origin(origin)?, decode_size(&size)?))
}

// ---- Leaf, Opening, Checkpoint: numbered records ----

/// Key of leaf, opening or checkpoint number `i`.
pub fn index_key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

/// Decodes a key of `table` made by [`index_key`].
pub fn decode_index_key(table: Table, k: &[u8]) -> Result<u64, LedgerError> {
    u64_be(k).map_err(|e| malformed(table, Key::Raw(k.to_vec()), e))
}

/// Decodes leaf `index`.
pub fn decode_leaf(index: u64, v: &[u8]) -> Result<Leaf, LedgerError> {
    Leaf::decode(v).map_err(|e| malformed(Table::Leaf, Key::Index(index), e.to_string()))
}

/// Decodes leaf `index`, which must be an event leaf.
pub fn decode_event(index: u64, v: &[u8]) -> Result<EventLeaf, LedgerError> {
    Leaf::decode_event(v).map_err(|e| malformed(Table::Leaf, Key::Index(index), e.to_string()))
}

/// Decodes leaf `index`, which must be a map leaf.
pub fn decode_map(index: u64, v: &[u8]) -> Result<MapLeaf, LedgerError> {
    Leaf::decode_map(v).map_err(|e| malformed(Table::Leaf, Key::Index(index), e.to_string()))
}

/// Decodes the opening of leaf `index`.
pub fn decode_opening(index: u64, v: &[u8]) -> Result<Opening, LedgerError> {
    Opening::decode(v).map_err(|e| malformed(Table::Opening, Key::Index(index), e.to_string()))
}

/// Decodes the note text of checkpoint `n`.
pub fn decode_checkpoint(n: u64, v: Vec<u8>) -> Result<String, LedgerError> {
    String::from_utf8(v)
        .map_err(|_| LedgerError::corrupt(Table::Checkpoint, Key::Index(n), CorruptKind::NotUtf8))
}

/// Decodes the cosigned note of tree size `size`.
pub fn decode_cosigned(size: u64, v: Vec<u8>) -> Result<String, LedgerError> {
    String::from_utf8(v)
        .map_err(|_| LedgerError::corrupt(Table::Cosigned, Key::Index(size), CorruptKind::NotUtf8))
}

/// Decodes a `Checkpoint` pair: its number and note text.
pub fn decode_checkpoint_pair(k: &[u8], v: Vec<u8>) -> Result<(u64, String), LedgerError> {
    let n = decode_index_key(Table::Checkpoint, k)?;
    Ok((n, decode_checkpoint(n, v)?))
}

/// A state key's head (its latest event in the key index), read through `r`.
pub fn read_head(r: &dyn View, key: &Hash) -> Result<Option<Head>, LedgerError> {
    match r.last_with_prefix(Table::KeyIndex, key)? {
        None => Ok(None),
        Some((k, v)) => decode_key_index(&k, &v).map(Some),
    }
}

/// A state key's event with `seq`, if logged, read through `r`.
pub fn read_event_at_seq(r: &dyn View, key: &Hash, seq: u64) -> Result<Option<Head>, LedgerError> {
    let k = key_index_key(key, seq);
    match r.get(Table::KeyIndex, &k)? {
        None => Ok(None),
        Some(v) => decode_key_index(&k, &v).map(Some),
    }
}

/// Leaf `index` as read through `r`.
pub fn read_leaf(r: &dyn View, index: u64) -> Result<Option<Leaf>, LedgerError> {
    match r.get(Table::Leaf, &index_key(index))? {
        None => Ok(None),
        Some(v) => decode_leaf(index, &v).map(Some),
    }
}

/// The bytes of leaf `index`, which must be there.
pub fn require_leaf_bytes(r: &dyn View, index: u64) -> Result<Vec<u8>, LedgerError> {
    r.get(Table::Leaf, &index_key(index))?
        .ok_or_else(|| LedgerError::missing(Table::Leaf, Key::Index(index)))
}

/// Leaf `index`, which must be there.
pub fn require_leaf(r: &dyn View, index: u64) -> Result<Leaf, LedgerError> {
    decode_leaf(index, &require_leaf_bytes(r, index)?)
}

/// Event leaf `index`, which must be there.
pub fn require_event(r: &dyn View, index: u64) -> Result<EventLeaf, LedgerError> {
    decode_event(index, &require_leaf_bytes(r, index)?)
}

/// Event leaf `index`, which must be there, with its bytes as stored (which are its
/// encoding: decoding refuses any other).
pub fn require_event_bytes(r: &dyn View, index: u64) -> Result<(EventLeaf, Vec<u8>), LedgerError> {
    let bytes = require_leaf_bytes(r, index)?;
    Ok((decode_event(index, &bytes)?, bytes))
}

/// Map leaf `index`, which must be there.
pub fn require_map(r: &dyn View, index: u64) -> Result<MapLeaf, LedgerError> {
    decode_map(index, &require_leaf_bytes(r, index)?)
}

/// The opening of `index` as read through `r`, if it was not erased.
pub fn read_opening(r: &dyn View, index: u64) -> Result<Option<Opening>, LedgerError> {
    match r.get(Table::Opening, &index_key(index))? {
        None => Ok(None),
        Some(v) => decode_opening(index, &v).map(Some),
    }
}

// ---- Node ----

/// Key of a complete subtree's hash: level, then index big-endian.
pub fn node_key(level: u8, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = level;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Decodes a `Node` key into (level, index).
pub fn decode_node_key(k: &[u8]) -> Result<(u8, u64), LedgerError> {
    let k = exact::<9>(k).map_err(|e| malformed(Table::Node, Key::Raw(k.to_vec()), e))?;
    Ok((
        k[0],
        u64::from_be_bytes(k[1..].try_into().expect("8 bytes")),
    ))
}

/// Decodes a `Node` value; `None` if it is not a hash.
pub fn decode_node(v: &[u8]) -> Option<Hash> {
    v.try_into().ok()
}

// ---- KeyIndex ----

/// `KeyIndex` key of a key's event with `seq`.
pub fn key_index_key(key: &Hash, seq: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(key);
    k[32..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Decodes a `KeyIndex` key into (state key, seq).
pub fn decode_key_index_key(k: &[u8]) -> Result<(Hash, u64), LedgerError> {
    let bad = |e: String| malformed(Table::KeyIndex, Key::Raw(k.to_vec()), e);
    let k40 = exact::<40>(k).map_err(bad)?;
    Ok((
        exact(&k40[..32]).map_err(bad)?,
        u64_be(&k40[32..]).map_err(bad)?,
    ))
}

/// `KeyIndex` value: index (u64 LE) ‖ event hash.
pub fn key_index_value(index: u64, event_hash: &Hash) -> [u8; 40] {
    index_hash(index, event_hash)
}

/// Decodes a `KeyIndex` pair into the head it names.
pub fn decode_key_index(k: &[u8], v: &[u8]) -> Result<Head, LedgerError> {
    let (key, seq) = decode_key_index_key(k)?;
    let (index, event_hash) =
        decode_index_hash(v).map_err(|e| malformed(Table::KeyIndex, Key::Seq { key, seq }, e))?;
    Ok(Head {
        index,
        seq,
        event_hash,
    })
}

// ---- SubjectIndex ----

/// `SubjectIndex` key: subject ‖ state key (the value is empty).
pub fn subject_index_key(subject: &[u8; 32], key: &Hash) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(subject);
    k[32..].copy_from_slice(key);
    k
}

/// Decodes a `SubjectIndex` key into (subject, state key).
pub fn decode_subject_index_key(k: &[u8]) -> Result<([u8; 32], Hash), LedgerError> {
    let bad = |e: String| malformed(Table::SubjectIndex, Key::Raw(k.to_vec()), e);
    let k64 = exact::<64>(k).map_err(bad)?;
    Ok((
        exact(&k64[..32]).map_err(bad)?,
        exact(&k64[32..]).map_err(bad)?,
    ))
}

// ---- MapLeaf ----

/// `MapLeaf` value: index (u64 LE) ‖ leaf hash. The key is the state key itself.
pub fn map_leaf_value(v: &MapValue) -> [u8; 40] {
    index_hash(v.index, &v.leaf_hash)
}

/// Decodes a `MapLeaf` pair.
pub fn decode_map_leaf(k: &[u8], v: &[u8]) -> Result<(Hash, MapValue), LedgerError> {
    let key: Hash = exact(k).map_err(|e| malformed(Table::MapValue, Key::Raw(k.to_vec()), e))?;
    let (index, leaf_hash) =
        decode_index_hash(v).map_err(|e| malformed(Table::MapValue, Key::State(key), e))?;
    Ok((key, MapValue { index, leaf_hash }))
}

// ---- StateKey ----

/// `StateKey` key of a triple: BLAKE3 of its VRF input `alpha` (docs/FORMAT.md §17.1).
pub fn state_key_index_key(triple: &StateKeyInput<'_>) -> Hash {
    *blake3::hash(&triple.alpha()).as_bytes()
}

/// `StateKey` value: state key ‖ VRF proof.
pub fn state_key_value(key: &Hash, proof: &VrfProof) -> [u8; 32 + PROOF_LEN] {
    let mut v = [0u8; 32 + PROOF_LEN];
    v[..32].copy_from_slice(key);
    v[32..].copy_from_slice(&proof.0);
    v
}

/// Decodes a `StateKey` value.
pub fn decode_state_key(k: &[u8], v: &[u8]) -> Result<(Hash, VrfProof), LedgerError> {
    let v = exact::<{ 32 + PROOF_LEN }>(v)
        .map_err(|e| malformed(Table::StateKey, Key::Raw(k.to_vec()), e))?;
    Ok((
        v[..32].try_into().expect("32 bytes"),
        VrfProof(v[32..].try_into().expect("80 bytes")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::error::Corrupt;

    fn corrupt(e: LedgerError) -> Corrupt {
        e.as_corrupt().cloned().expect("a Corrupt error")
    }

    #[test]
    fn meta_round_trips_and_refuses() {
        assert_eq!(decode_size(&size_value(7)).unwrap(), 7);
        assert_eq!(
            decode_origin(b"o.example/log".to_vec()).unwrap(),
            "o.example/log"
        );
        let c = corrupt(decode_size(&[1, 2, 3]).unwrap_err());
        assert_eq!((c.table, c.key), (Table::Meta, Key::Meta("size")));
        assert!(matches!(c.what, CorruptKind::Malformed(_)));
        let c = corrupt(decode_origin(vec![0xff, 0xfe]).unwrap_err());
        assert_eq!(c.what, CorruptKind::NotUtf8);
    }

    #[test]
    fn numbered_keys_round_trip_in_order() {
        for i in [0, 1, 255, 256, u64::MAX] {
            assert_eq!(decode_index_key(Table::Leaf, &index_key(i)).unwrap(), i);
        }
        // Big-endian: byte order is number order, so scans run in log order.
        assert!(index_key(255) < index_key(256));
        let c = corrupt(decode_index_key(Table::Checkpoint, &[0; 7]).unwrap_err());
        assert_eq!((c.table, c.key), (Table::Checkpoint, Key::Raw(vec![0; 7])));
        let c = corrupt(decode_checkpoint_pair(&index_key(3), vec![0xc0]).unwrap_err());
        assert_eq!((c.key, c.what), (Key::Index(3), CorruptKind::NotUtf8));
        assert_eq!(
            decode_checkpoint_pair(&index_key(3), b"note".to_vec()).unwrap(),
            (3, "note".to_string())
        );
    }

    #[test]
    fn damaged_leaves_and_openings_are_named() {
        let c = corrupt(decode_leaf(4, &[1, 2, 3]).unwrap_err());
        assert_eq!((c.table, c.key), (Table::Leaf, Key::Index(4)));
        assert!(matches!(c.what, CorruptKind::Malformed(_)));
        let c = corrupt(decode_opening(5, &[9; 10]).unwrap_err());
        assert_eq!((c.table, c.key), (Table::Opening, Key::Index(5)));
    }

    #[test]
    fn node_keys_round_trip() {
        for (level, index) in [(1u8, 0u64), (3, 7), (63, u64::MAX)] {
            assert_eq!(
                decode_node_key(&node_key(level, index)).unwrap(),
                (level, index)
            );
        }
        assert!(node_key(1, 255) < node_key(1, 256));
        assert!(node_key(1, u64::MAX) < node_key(2, 0));
        assert!(decode_node_key(&[1; 8]).is_err());
        assert_eq!(decode_node(&[7; 32]), Some([7; 32]));
        assert_eq!(decode_node(&[7; 31]), None);
    }

    #[test]
    fn key_index_round_trips_and_refuses() {
        let key = [3u8; 32];
        let head = Head {
            index: 9,
            seq: 2,
            event_hash: [5; 32],
        };
        let k = key_index_key(&key, head.seq);
        let v = key_index_value(head.index, &head.event_hash);
        assert_eq!(decode_key_index_key(&k).unwrap(), (key, 2));
        let got = decode_key_index(&k, &v).unwrap();
        assert_eq!((got.index, got.seq, got.event_hash), (9, 2, [5; 32]));
        // A key's events in seq order.
        assert!(key_index_key(&key, 255) < key_index_key(&key, 256));
        let c = corrupt(decode_key_index(&k[..39], &v).unwrap_err());
        assert_eq!(c.key, Key::Raw(k[..39].to_vec()));
        let c = corrupt(decode_key_index(&k, &v[..39]).unwrap_err());
        assert_eq!(
            (c.table, c.key),
            (Table::KeyIndex, Key::Seq { key, seq: 2 })
        );
    }

    #[test]
    fn subject_index_round_trips_and_refuses() {
        let k = subject_index_key(&[1; 32], &[2; 32]);
        assert_eq!(decode_subject_index_key(&k).unwrap(), ([1; 32], [2; 32]));
        assert_eq!(&k[..32], &[1; 32], "a subject's keys share its prefix");
        let c = corrupt(decode_subject_index_key(&k[..40]).unwrap_err());
        assert_eq!(c.table, Table::SubjectIndex);
    }

    #[test]
    fn map_leaves_round_trip_and_refuse() {
        let value = MapValue {
            index: 42,
            leaf_hash: [8; 32],
        };
        let v = map_leaf_value(&value);
        assert_eq!(decode_map_leaf(&[6; 32], &v).unwrap(), ([6; 32], value));
        let c = corrupt(decode_map_leaf(&[6; 32], &v[..20]).unwrap_err());
        assert_eq!((c.table, c.key), (Table::MapValue, Key::State([6; 32])));
        let c = corrupt(decode_map_leaf(&[6; 31], &v).unwrap_err());
        assert_eq!(c.key, Key::Raw(vec![6; 31]));
    }
}
