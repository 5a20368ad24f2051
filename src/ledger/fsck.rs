//! `fsck`: the full offline check of a ledger directory. It replays everything as an auditor
//! does (every leaf, opening and checkpoint) and also checks the data the ledger derives and
//! stores for speed: Merkle node hashes, the per-key index, the per-subject index, the state
//! map's stored values and the recorded size. Each problem is named with where it is.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::VerifyingKey;

use super::raw::RawLedger;
use super::schema::{self, node_key};
use super::LedgerError;
use crate::core::audit::{Auditor, Report, Violation};
use crate::core::hash::{to_hex, Hash};
use crate::core::leaf::Leaf;
use crate::core::map::MapValue;
use crate::core::rules::Head;
use crate::core::tlog::{Frontier, Sha256Hasher};
use crate::store::Table;

/// Leaves checked per chunk.
const CHUNK: u64 = 16384;

/// Runs the full check; `progress` is told how many leaves are done.
pub fn fsck(
    raw: &RawLedger,
    log_key: &VerifyingKey,
    now: u64,
    mut progress: impl FnMut(u64),
) -> Result<Report, LedgerError> {
    let notes = raw.checkpoints()?;
    let mut auditor = Auditor::new(log_key, &raw.origin, &notes, now);
    let mut extra: Vec<Violation> = Vec::new();
    let mut bad = |index: Option<u64>, message: String| {
        if extra.len() < 1000 {
            extra.push(Violation::other(index, message));
        }
    };
    let store = raw.store.as_ref();
    let mut frontier = Frontier::new();
    let mut keys_seen: HashSet<(Hash, u64)> = HashSet::new();
    let mut latest: HashMap<Hash, MapValue> = HashMap::new();
    let mut start = 0;
    while start < raw.size {
        let end = (start + CHUNK).min(raw.size);
        let chunk = raw.leaves(start, end)?;
        for (i, (leaf, o)) in chunk.iter().enumerate() {
            let index = start + i as u64;
            let leaf_hash = leaf.leaf_hash();
            if let Leaf::Event(e) = leaf {
                latest.insert(e.key, MapValue { index, leaf_hash });
            }
            // Stored node hashes must be the ones the tree gives.
            let mut node_errors = Vec::new();
            frontier.append_with(&Sha256Hasher, leaf_hash, |level, at, hash| {
                if level == 0 {
                    return;
                }
                match store.get(Table::Node, &node_key(level, at)) {
                    Ok(Some(v)) if v.as_slice() == hash.as_slice() => {}
                    Ok(Some(_)) => node_errors.push(format!(
                        "stored Merkle node (level {level}, index {at}) is wrong"
                    )),
                    Ok(None) => node_errors.push(format!(
                        "stored Merkle node (level {level}, index {at}) is missing"
                    )),
                    Err(err) => node_errors.push(format!("reading node: {err}")),
                }
            });
            for m in node_errors {
                bad(Some(index), m);
            }
            // The key index and subject index must name this leaf's event.
            if let (Leaf::Event(e), Some(o)) = (leaf, o) {
                let seq = o.event.event.seq;
                let k = schema::key_index_key(&e.key, seq);
                let want_v = schema::key_index_value(index, &o.event.event_hash());
                match store.get(Table::KeyIndex, &k)? {
                    Some(v) if v == want_v => {}
                    Some(_) => bad(
                        Some(index),
                        format!("key index of seq {seq} names another leaf or event"),
                    ),
                    None => bad(Some(index), format!("key index of seq {seq} is missing")),
                }
                keys_seen.insert((e.key, seq));
                // The private index gives this triple this key.
                let input = o.event.event.state_key_input();
                let k = schema::state_key_index_key(&input);
                match store.get(Table::StateKey, &k)? {
                    Some(v) => match schema::decode_state_key(&k, &v) {
                        Ok((key, _)) if key == e.key => {}
                        _ => bad(Some(index), "state key index names another key".into()),
                    },
                    None => bad(Some(index), "state key index is missing this triple".into()),
                }
                let s = schema::subject_index_key(&o.event.event.subject, &e.key);
                if store.get(Table::SubjectIndex, &s)?.is_none() {
                    bad(Some(index), "subject index is missing this key".into());
                }
            }
        }
        auditor.push_chunk(chunk);
        progress(end);
        start = end;
    }
    // Nothing stored beyond the recorded size, and no key-index record naming a bad leaf.
    let beyond = raw.leaves_beyond_size()?;
    if beyond > 0 {
        bad(
            Some(raw.size),
            format!("{beyond} leaves are stored at or past the recorded tree size"),
        );
    }
    for r in store.scan(Table::KeyIndex, &[], None) {
        let (k, v) = r?;
        let Ok((key, seq)) = schema::decode_key_index_key(&k) else {
            bad(None, format!("malformed key index record {}", to_hex(&k)));
            continue;
        };
        let Ok(Head { index, .. }) = schema::decode_key_index(&k, &v) else {
            bad(None, format!("malformed key index record {}", to_hex(&k)));
            continue;
        };
        if index >= raw.size {
            bad(
                None,
                format!("key index record names leaf {index} past the tree size"),
            );
        } else if !keys_seen.contains(&(key, seq)) {
            // Event leaves without openings (erased) cannot be cross-checked beyond their key
            // and seq.
            match raw.leaves(index, index + 1)?.first() {
                Some((Leaf::Event(e), None)) if e.key == key && e.seq == seq => {}
                _ => bad(
                    Some(index),
                    format!("key index record (seq {seq}) does not match leaf {index}"),
                ),
            }
        }
    }
    // The state map's stored values must be every key's latest event leaf, and nothing else.
    for r in store.scan(Table::MapValue, &[], None) {
        let (k, v) = r?;
        let Ok((key, value)) = schema::decode_map_leaf(&k, &v) else {
            bad(None, format!("malformed map value record {}", to_hex(&k)));
            continue;
        };
        match latest.remove(&key) {
            Some(want) if want == value => {}
            Some(want) => bad(
                Some(want.index),
                format!(
                    "map value of key {} (leaf {}) does not match the key's latest event leaf",
                    to_hex(&key),
                    value.index
                ),
            ),
            None => bad(
                None,
                format!("map value of key {} names no logged key", to_hex(&key)),
            ),
        }
    }
    for (key, want) in latest {
        bad(
            Some(want.index),
            format!("map value of key {} is missing", to_hex(&key)),
        );
    }
    let mut report = auditor.finish();
    report.violations.extend(extra);
    Ok(report)
}
