//! Building proofs from stored data: consent proofs, histories, inclusion and consistency.

use crate::core::event::state_key;
use crate::core::hash::{to_hex, Hash, HexHash};
use crate::core::history::{Chain, History, HISTORY_FORMAT};
use crate::core::map::{self, MapProof};
use crate::core::proof::{state_at, ConsentProof, OpeningJson, ProvenEvent, PROOF_FORMAT};
use crate::core::tlog::{self, Blake3Hasher, LeafIndex, TreeSize};
use crate::store::{scan_prefix, Table};

use super::leaves::LeafSource;
use super::{clock, Ledger, LedgerError, Snapshot};

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

    /// Indices of the entries of `key` below `size`, in log order.
    fn key_indices(&self, key: &Hash, size: u64) -> Result<Vec<u64>, LedgerError> {
        let mut out = Vec::new();
        for r in scan_prefix(&*self.store(), Table::KeyIndex, key) {
            let (_, v) = r?;
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

    /// A state-map proof for `key` under the snapshot's checkpoint, checked against its map
    /// root before it is served (the map's lower levels come from storage).
    pub fn prove_key(&self, snap: &Snapshot, key: &Hash) -> Result<MapProof, LedgerError> {
        let store = self.store();
        let src = LeafSource {
            store: store.as_ref(),
            as_of: snap.checkpoint.size,
            upto: None,
        };
        let proof = snap.map.prove_from(key, &src)?;
        map::check(&snap.checkpoint.map_root, key, &proof).map_err(|e| {
            LedgerError::Corrupt(format!("state map proof of {}: {e}", to_hex(key)))
        })?;
        Ok(proof)
    }

    /// One event with its opening and inclusion proof in the tree of `cp`. Before anything is
    /// served, the inclusion path is checked against the checkpoint root and the opening
    /// against the entry's commitment (hashing only), so damaged storage is reported as such
    /// instead of being handed out as a proof.
    fn proven_event(
        &self,
        index: u64,
        cp: &crate::core::note::SignedCheckpoint,
    ) -> Result<ProvenEvent, LedgerError> {
        let entry = self
            .entry(index)?
            .ok_or_else(|| LedgerError::Corrupt(format!("entry {index} is missing")))?;
        let opening = self.opening(index)?.ok_or_else(|| {
            LedgerError::Invalid(format!("the opening of entry {index} was erased"))
        })?;
        let store = self.store();
        let path = tlog::prove_inclusion(
            &Blake3Hasher,
            &self.nodes(&*store),
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
        Ok(ProvenEvent {
            index,
            entry: entry.to_bytes().to_vec(),
            opening: OpeningJson::from(&opening),
            inclusion: hexes(path),
        })
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
        let now = clock::now_ms();
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
        crate::core::event::check_name("controller", controller).map_err(LedgerError::Invalid)?;
        crate::core::event::check_name("purpose", purpose).map_err(LedgerError::Invalid)?;
        let cp = &snap.checkpoint;
        if at > cp.time {
            return Err(LedgerError::Invalid(format!(
                "`at` {at} is after the checkpoint time {}",
                cp.time
            )));
        }
        let key = state_key(subject, controller, purpose);
        let indices = self.key_indices(&key, cp.size)?;
        // The last entry integrated at or before `at`, and its successor: integrated_at never
        // decreases along the log, so a binary search reads O(log k) of the key's k entries.
        let (mut lo, mut hi) = (0usize, indices.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let i = indices[mid];
            let e = self
                .entry(i)?
                .ok_or_else(|| LedgerError::Corrupt(format!("entry {i} is missing")))?;
            if e.integrated_at <= at {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        // `lo` entries were integrated at or before `at`.
        let in_force = lo.checked_sub(1);
        let next = (lo < indices.len()).then_some(lo);
        let mut events = Vec::new();
        let mut in_force_event = None;
        if let Some(p) = in_force {
            let pe = self.proven_event(indices[p], cp)?;
            in_force_event = Some(
                crate::core::event::SignedEvent::decode(&pe.opening.event)
                    .map_err(|e| LedgerError::Corrupt(e.to_string()))?
                    .event,
            );
            events.push(pe);
        }
        if let Some(n) = next {
            events.push(self.proven_event(indices[n], cp)?);
        }
        let map = if next.is_some() {
            None
        } else {
            Some(self.prove_key(snap, &key)?)
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
        let snap = self.snapshot_for(clock::now_ms())?;
        self.history_in(&snap, subject)
    }

    /// All of a person's events under the snapshot's checkpoint.
    pub fn history_in(&self, snap: &Snapshot, subject: &[u8; 32]) -> Result<History, LedgerError> {
        let cp = &snap.checkpoint;
        let mut chains = Vec::new();
        for r in scan_prefix(&*self.store(), Table::SubjectIndex, subject) {
            let (k, _) = r?;
            let key: Hash = k[32..]
                .try_into()
                .map_err(|_| LedgerError::Corrupt("bad subject index".into()))?;
            let indices = self.key_indices(&key, cp.size)?;
            let mut events = Vec::with_capacity(indices.len());
            for &i in &indices {
                events.push(self.proven_event(i, cp)?);
            }
            let Some(first) = events.first() else {
                continue;
            };
            let ev = crate::core::event::SignedEvent::decode(&first.opening.event)
                .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
            chains.push(Chain {
                controller: ev.event.controller.clone(),
                purpose: ev.event.purpose.clone(),
                events,
                map: self.prove_key(snap, &key)?,
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
        let now = clock::now_ms();
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
        queries
            .par_iter()
            .map(|q| {
                let at = q.at.unwrap_or(now);
                if at > now {
                    return Err(LedgerError::Invalid(format!(
                        "`at` {at} is in the future (now {now})"
                    )));
                }
                self.prove_consent_in(snap, &q.subject, &q.controller, &q.purpose, at)
            })
            .collect()
    }
}
