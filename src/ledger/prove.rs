//! Building proofs from stored data: consent proofs, histories, inclusion and consistency.

use crate::core::entry::{Entry, Opening};
use crate::core::event::state_key;
use crate::core::hash::{to_hex, Hash, HexHash};
use crate::core::history::{Chain, History, HISTORY_FORMAT};
use crate::core::map::{self, MapProof};
use crate::core::proof::{state_at, ConsentProof, OpeningJson, ProvenEvent, PROOF_FORMAT};
use crate::core::tlog::{self, Blake3Hasher, LeafIndex, TreeSize};
use crate::store::{scan_prefix, StoreError, Table, View};

use super::leaves::LeafSource;
use super::{entry_in, opening_in, Ledger, LedgerError, Snapshot};

/// The shared snapshot of a proof batch and a proof (or why not) per query.
pub type ProofBatch = (
    std::sync::Arc<Snapshot>,
    Vec<Result<ConsentProof, LedgerError>>,
);

/// Inclusion proof of one entry (the CLI's JSON shape).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    pub index: u64,
    pub tree_size: u64,
    pub leaf_hash: HexHash,
    pub root: HexHash,
    pub path: Vec<HexHash>,
}

/// Consistency proof between two tree sizes (the CLI's JSON shape).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    pub old_root: HexHash,
    pub new_root: HexHash,
    pub path: Vec<HexHash>,
}

fn hexes(v: Vec<Hash>) -> Vec<HexHash> {
    v.into_iter().map(HexHash).collect()
}

impl Ledger {
    /// Root of the tree of the first `size` entries.
    pub fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        if size > self.size() {
            return Err(LedgerError::Invalid(format!(
                "tree size {size} is larger than the log ({})",
                self.size()
            )));
        }
        let store = self.store();
        Ok(tlog::tree_hash(
            &Blake3Hasher,
            &self.nodes(&*store),
            TreeSize(size),
        )?)
    }

    /// Inclusion proof of entry `index` in the tree of `size` entries (default: current).
    pub fn prove_inclusion(
        &self,
        index: u64,
        size: Option<u64>,
    ) -> Result<InclusionProof, LedgerError> {
        let size = size.unwrap_or_else(|| self.size());
        if index >= size || size > self.size() {
            return Err(LedgerError::Invalid(format!(
                "index {index} is not in a tree of size {size} (log size {})",
                self.size()
            )));
        }
        let store = self.store();
        let nodes = self.nodes(&*store);
        let path = tlog::prove_inclusion(&Blake3Hasher, &nodes, LeafIndex(index), TreeSize(size))
            .map_err(|e| LedgerError::Invalid(e.to_string()))?;
        let leaf = self
            .entry(index)?
            .ok_or_else(|| LedgerError::Corrupt(format!("entry {index} is missing")))?
            .leaf_hash();
        Ok(InclusionProof {
            index,
            tree_size: size,
            leaf_hash: HexHash(leaf),
            root: HexHash(self.root_at(size)?),
            path: hexes(path),
        })
    }

    /// Consistency proof from `old` to `new` (default: current size).
    pub fn prove_consistency(
        &self,
        old: u64,
        new: Option<u64>,
    ) -> Result<ConsistencyProof, LedgerError> {
        let new = new.unwrap_or_else(|| self.size());
        if old > new || new > self.size() {
            return Err(LedgerError::Invalid(format!(
                "need old <= new <= log size, got old {old}, new {new}, log size {}",
                self.size()
            )));
        }
        let store = self.store();
        let nodes = self.nodes(&*store);
        let path = tlog::prove_consistency(&Blake3Hasher, &nodes, TreeSize(old), TreeSize(new))
            .map_err(|e| LedgerError::Invalid(e.to_string()))?;
        Ok(ConsistencyProof {
            old_size: old,
            new_size: new,
            old_root: HexHash(self.root_at(old)?),
            new_root: HexHash(self.root_at(new)?),
            path: hexes(path),
        })
    }

    /// A state-map proof for `key` under the snapshot's checkpoint, checked against its map
    /// root before it is served (the map's lower levels come from storage).
    pub fn prove_key(&self, snap: &Snapshot, key: &Hash) -> Result<MapProof, LedgerError> {
        let store = self.store();
        let view = store.view()?;
        self.prove_key_with(&*view, snap, key)
    }

    fn prove_key_with(
        &self,
        r: &dyn View,
        snap: &Snapshot,
        key: &Hash,
    ) -> Result<MapProof, LedgerError> {
        let src = LeafSource {
            store: r,
            as_of: snap.checkpoint.size,
            upto: None,
        };
        let proof = snap.map.prove_from(key, &src)?;
        map::check(&snap.checkpoint.map_root, key, &proof).map_err(|e| {
            LedgerError::Corrupt(format!("state map proof of {}: {e}", to_hex(key)))
        })?;
        Ok(proof)
    }

    /// One event (`entry` is entry `index`, already read) with its opening and inclusion
    /// proof in the tree of `cp`. Before anything is served, the inclusion path is checked
    /// against the checkpoint root and the opening against the entry's commitment (hashing
    /// only), so damaged storage is reported as such instead of being handed out as a proof.
    /// Returns the opening too, decoded.
    fn proven_event(
        &self,
        r: &dyn View,
        index: u64,
        entry: &Entry,
        cp: &crate::core::note::SignedCheckpoint,
    ) -> Result<(ProvenEvent, Opening), LedgerError> {
        let opening = opening_in(r, index)?.ok_or_else(|| {
            LedgerError::Invalid(format!("the opening of entry {index} was erased"))
        })?;
        let path = tlog::prove_inclusion(
            &Blake3Hasher,
            &self.nodes(r),
            LeafIndex(index),
            TreeSize(cp.size),
        )
        .map_err(|e| LedgerError::Corrupt(format!("inclusion proof of entry {index}: {e}")))?;
        tlog::check_inclusion(
            &Blake3Hasher,
            LeafIndex(index),
            TreeSize(cp.size),
            &entry.leaf_hash(),
            &path,
            &cp.root,
        )
        .map_err(|e| {
            LedgerError::Corrupt(format!(
                "stored data for entry {index} does not match checkpoint root: {e}"
            ))
        })?;
        if opening.commitment() != entry.commitment {
            return Err(LedgerError::Corrupt(format!(
                "the stored opening of entry {index} does not match its commitment"
            )));
        }
        let proven = ProvenEvent {
            index,
            entry: entry.to_bytes().to_vec(),
            opening: OpeningJson::from(&opening),
            inclusion: hexes(path),
        };
        Ok((proven, opening))
    }

    /// A checkpoint snapshot that covers the whole tree and is not older than `at`, signing
    /// a fresh checkpoint when the latest does not.
    pub fn snapshot_for(&self, at: u64) -> Result<std::sync::Arc<Snapshot>, LedgerError> {
        let snap = self.latest();
        if snap.checkpoint.time >= at
            && snap.checkpoint.size == self.size()
            && !snap.checkpoint.note.is_empty()
        {
            return Ok(snap);
        }
        self.checkpoint()?;
        Ok(self.latest())
    }

    /// A consent proof for (subject, controller, purpose) at `at` (default now), against a
    /// checkpoint covering the whole tree; refuses a future `at`.
    pub fn prove_consent(
        &self,
        subject: &[u8; 32],
        controller: &str,
        purpose: &str,
        at: Option<u64>,
    ) -> Result<ConsentProof, LedgerError> {
        let now = self.now_ms();
        let at = at.unwrap_or(now);
        if at > now {
            return Err(LedgerError::Invalid(format!(
                "`at` {at} is in the future (now {now})"
            )));
        }
        let snap = self.snapshot_for(at)?;
        self.prove_consent_in(&snap, subject, controller, purpose, at)
    }

    /// A consent proof against a given snapshot (`at` must not be after its checkpoint).
    pub fn prove_consent_in(
        &self,
        snap: &Snapshot,
        subject: &[u8; 32],
        controller: &str,
        purpose: &str,
        at: u64,
    ) -> Result<ConsentProof, LedgerError> {
        let store = self.store();
        let view = store.view()?;
        self.prove_consent_with(&*view, snap, subject, controller, purpose, at)
    }

    /// [`Ledger::prove_consent_in`], reading through `r`.
    fn prove_consent_with(
        &self,
        r: &dyn View,
        snap: &Snapshot,
        subject: &[u8; 32],
        controller: &str,
        purpose: &str,
        at: u64,
    ) -> Result<ConsentProof, LedgerError> {
        let invalid = |e: crate::core::event::NameError| LedgerError::Invalid(e.to_string());
        crate::core::event::check_name("controller", controller).map_err(invalid)?;
        crate::core::event::check_name("purpose", purpose).map_err(invalid)?;
        let cp = &snap.checkpoint;
        if at > cp.time {
            return Err(LedgerError::Invalid(format!(
                "`at` {at} is after the checkpoint time {}",
                cp.time
            )));
        }
        let key = state_key(subject, controller, purpose);
        let indices = key_indices(r, &key, cp.size)?;
        // Entries read while searching, kept for the proofs.
        let mut read: Vec<(usize, Entry)> = Vec::with_capacity(8);
        let mut entry = |pos: usize| -> Result<Entry, LedgerError> {
            if let Some((_, e)) = read.iter().find(|(p, _)| *p == pos) {
                return Ok(*e);
            }
            let i = indices[pos];
            let e = entry_in(r, i)?
                .ok_or_else(|| LedgerError::Corrupt(format!("entry {i} is missing")))?;
            read.push((pos, e));
            Ok(e)
        };
        // `lo`: how many of the key's entries were integrated at or before `at`.
        // integrated_at never decreases along the log. The common questions (consent now, or
        // before the key's first event) read one or two entries; others search in O(log k).
        let n = indices.len();
        let lo = if n == 0 {
            0
        } else if entry(n - 1)?.integrated_at <= at {
            n
        } else if entry(0)?.integrated_at > at {
            0
        } else {
            // entry 0 is at or before `at`, entry n - 1 after it.
            let (mut lo, mut hi) = (1usize, n - 1);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if entry(mid)?.integrated_at <= at {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        let in_force = lo.checked_sub(1);
        let next = (lo < n).then_some(lo);
        let mut events = Vec::new();
        let mut in_force_event = None;
        if let Some(p) = in_force {
            let (pe, opening) = self.proven_event(r, indices[p], &entry(p)?, cp)?;
            in_force_event = Some(opening.event.event);
            events.push(pe);
        }
        if let Some(p) = next {
            events.push(self.proven_event(r, indices[p], &entry(p)?, cp)?.0);
        }
        let map = if next.is_some() {
            None
        } else {
            Some(self.prove_key_with(r, snap, &key)?)
        };
        Ok(ConsentProof {
            format: PROOF_FORMAT.into(),
            checkpoint: cp.note.clone(),
            subject: *subject,
            controller: controller.into(),
            purpose: purpose.into(),
            at,
            events,
            map,
            state: state_at(in_force_event.as_ref(), at).as_str().into(),
        })
    }

    /// All of a person's events under a fresh checkpoint.
    pub fn history(&self, subject: &[u8; 32]) -> Result<History, LedgerError> {
        let snap = self.snapshot_for(self.now_ms())?;
        self.history_in(&snap, subject)
    }

    /// All of a person's events under the snapshot's checkpoint.
    pub fn history_in(&self, snap: &Snapshot, subject: &[u8; 32]) -> Result<History, LedgerError> {
        let cp = &snap.checkpoint;
        let store = self.store();
        let r = &*store.view()?;
        let mut chains = Vec::new();
        for kv in scan_prefix(r, Table::SubjectIndex, subject) {
            let (k, _) = kv?;
            let key: Hash = k[32..]
                .try_into()
                .map_err(|_| LedgerError::Corrupt("bad subject index".into()))?;
            let indices = key_indices(r, &key, cp.size)?;
            let mut events = Vec::with_capacity(indices.len());
            let mut first = None;
            for &i in &indices {
                let entry = entry_in(r, i)?
                    .ok_or_else(|| LedgerError::Corrupt(format!("entry {i} is missing")))?;
                let (pe, opening) = self.proven_event(r, i, &entry, cp)?;
                first.get_or_insert(opening.event.event);
                events.push(pe);
            }
            let Some(first) = first else {
                continue;
            };
            chains.push(Chain {
                controller: first.controller,
                purpose: first.purpose,
                events,
                map: self.prove_key_with(r, snap, &key)?,
            });
        }
        Ok(History {
            format: HISTORY_FORMAT.into(),
            checkpoint: cp.note.clone(),
            subject: *subject,
            chains,
        })
    }
}

impl Ledger {
    /// Entries `start..end` (clamped to the log) with openings when asked.
    #[allow(clippy::type_complexity)]
    pub fn read_range(
        &self,
        start: u64,
        end: u64,
        openings: bool,
    ) -> Result<
        Vec<(
            crate::core::entry::Entry,
            Option<crate::core::entry::Opening>,
        )>,
        LedgerError,
    > {
        let end = end.min(self.size());
        if start >= end {
            return Ok(Vec::new());
        }
        super::raw::read_range(&*self.store(), start, end, openings)
    }

    /// Stored checkpoint notes numbered `from..to` (clamped), oldest first, with numbers.
    pub fn checkpoint_range(&self, from: u64, to: u64) -> Result<Vec<(u64, String)>, LedgerError> {
        let mut out = Vec::new();
        // Only durable checkpoints (see `Snapshot::published`).
        let to = to.min(self.latest().published);
        if from >= to {
            return Ok(out);
        }
        for r in self.store().scan(
            Table::Checkpoint,
            &from.to_be_bytes(),
            Some(&to.to_be_bytes()),
        ) {
            let (k, v) = r?;
            let n = u64::from_be_bytes(
                k.try_into()
                    .map_err(|_| LedgerError::Corrupt("bad checkpoint key".into()))?,
            );
            let text = String::from_utf8(v)
                .map_err(|_| LedgerError::Corrupt(format!("checkpoint {n} is not UTF-8")))?;
            out.push((n, text));
        }
        Ok(out)
    }
}

impl Ledger {
    /// Proofs for many queries against one shared checkpoint, built on all cores. `at`
    /// defaults to now; a future `at` fails that query only.
    pub fn prove_batch(
        &self,
        queries: &[crate::core::proof_batch::BatchQuery],
    ) -> Result<ProofBatch, LedgerError> {
        let now = self.now_ms();
        let snap = self.snapshot_for(now)?;
        let proofs = self.prove_batch_in(&snap, now, queries);
        Ok((snap, proofs))
    }

    /// [`Ledger::prove_batch`] against a given snapshot (from [`Ledger::snapshot_for`]`(now)`).
    pub fn prove_batch_in(
        &self,
        snap: &Snapshot,
        now: u64,
        queries: &[crate::core::proof_batch::BatchQuery],
    ) -> Vec<Result<ConsentProof, LedgerError>> {
        use rayon::prelude::*;
        let store = self.store();
        queries
            .par_iter()
            .map_init(
                || store.view(),
                |view, q| self.prove_query_with(view, snap, now, q),
            )
            .collect()
    }

    /// One query of a proof batch, read through `view` (from [`Store::view`], taken once per
    /// run of queries on a thread); `at` defaults to `now`, and a future `at` is refused.
    pub fn prove_query_with(
        &self,
        view: &Result<Box<dyn View + '_>, StoreError>,
        snap: &Snapshot,
        now: u64,
        q: &crate::core::proof_batch::BatchQuery,
    ) -> Result<ConsentProof, LedgerError> {
        let at = q.at.unwrap_or(now);
        if at > now {
            return Err(LedgerError::Invalid(format!(
                "`at` {at} is in the future (now {now})"
            )));
        }
        let r = view
            .as_deref()
            .map_err(|e| LedgerError::Store(StoreError::Engine(e.to_string())))?;
        self.prove_consent_with(r, snap, &q.subject, &q.controller, &q.purpose, at)
    }
}

/// Indices of the entries of `key` below `size`, in log order.
fn key_indices(r: &dyn View, key: &Hash, size: u64) -> Result<Vec<u64>, LedgerError> {
    let mut out = Vec::new();
    for kv in scan_prefix(r, Table::KeyIndex, key) {
        let (_, v) = kv?;
        let i = u64::from_le_bytes(
            v.get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| LedgerError::Corrupt("bad key index".into()))?,
        );
        if i < size {
            out.push(i);
        }
    }
    Ok(out)
}
