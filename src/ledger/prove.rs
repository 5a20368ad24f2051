//! Building proofs from stored data: consent proofs, histories, inclusion and consistency.

use crate::core::hash::{Hash, HexHash};
use crate::core::history::{Chain, History, HISTORY_FORMAT};
use crate::core::leaf::{EventLeaf, Leaf};
use crate::core::map::{self, MapProof};
use crate::core::opening::Opening;
use crate::core::proof::{
    state_at, ConsentProof, OpeningJson, ProvenEvent, ProvenLeaf, PROOF_FORMAT,
};
use crate::core::tlog::{self, LeafIndex, Sha256Hasher, TreeSize};
use crate::store::{scan_prefix, StoreError, Table, View};

use super::error::{CorruptKind, Invalid, Key};
use super::leaves::LeafSource;
use super::schema::{self, read_opening, require_event_bytes, require_leaf_bytes};
use super::{Ledger, LedgerError, NodeError, Snapshot};

/// The shared snapshot of a proof batch and a proof (or why not) per query.
pub type ProofBatch = (
    std::sync::Arc<Snapshot>,
    Vec<Result<ConsentProof, LedgerError>>,
);

/// Inclusion proof of one leaf (the CLI's JSON shape).
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

/// A proof of the tree that could not be built: a stored node failed, or (a caller's
/// mistake the ranges checked before should already have caught) a leaf or size out of range.
pub(super) fn prove_error(e: tlog::ProveError<NodeError>) -> LedgerError {
    match e {
        tlog::ProveError::Read(e) => LedgerError::Node(e),
        tlog::ProveError::IndexOutOfRange { index, size } => Invalid::Index {
            index,
            size,
            log_size: size,
        }
        .into(),
        tlog::ProveError::SizeOutOfRange { old, new } => Invalid::Range {
            old,
            new,
            log_size: new,
        }
        .into(),
    }
}

/// Damage found while checking what is about to be served.
fn mismatch(table: Table, key: Key, why: String) -> LedgerError {
    LedgerError::corrupt(table, key, CorruptKind::Mismatch(why))
}

impl Ledger {
    /// Root of the tree of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        if size > self.size() {
            let log_size = self.size();
            return Err(Invalid::TreeSize { size, log_size }.into());
        }
        let store = self.store();
        Ok(tlog::tree_hash(
            &Sha256Hasher,
            &self.nodes(&*store),
            TreeSize(size),
        )?)
    }

    /// Inclusion proof of leaf `index` in the tree of `size` leaves (default: current).
    pub fn prove_inclusion(
        &self,
        index: u64,
        size: Option<u64>,
    ) -> Result<InclusionProof, LedgerError> {
        let size = size.unwrap_or_else(|| self.size());
        if index >= size || size > self.size() {
            let log_size = self.size();
            return Err(Invalid::Index {
                index,
                size,
                log_size,
            }
            .into());
        }
        let store = self.store();
        let nodes = self.nodes(&*store);
        let path = tlog::prove_inclusion(&Sha256Hasher, &nodes, LeafIndex(index), TreeSize(size))
            .map_err(prove_error)?;
        let leaf = crate::core::leaf::leaf_hash(&require_leaf_bytes(&*store, index)?);
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
            let log_size = self.size();
            return Err(Invalid::Range { old, new, log_size }.into());
        }
        let store = self.store();
        let nodes = self.nodes(&*store);
        let path = tlog::prove_consistency(&Sha256Hasher, &nodes, TreeSize(old), TreeSize(new))
            .map_err(prove_error)?;
        Ok(ConsistencyProof {
            old_size: old,
            new_size: new,
            old_root: HexHash(self.root_at(old)?),
            new_root: HexHash(self.root_at(new)?),
            path: hexes(path),
        })
    }

    /// A state-map proof for `key` at the snapshot's map leaf, checked against its map root
    /// before it is served (the map's lower levels come from storage).
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
            as_of: snap.map_index,
            upto: None,
        };
        let proof = snap.map.prove_from(key, &snap.buckets.source(&src))?;
        map::check(&snap.map_leaf.map_root, key, &proof).map_err(|e| {
            mismatch(
                Table::MapValue,
                Key::State(*key),
                format!("state map proof: {e}"),
            )
        })?;
        Ok(proof)
    }

    /// Leaf `index` with its inclusion proof in the tree of `cp`, the path checked against
    /// the checkpoint's root before it is served.
    fn proven_leaf(
        &self,
        r: &dyn View,
        index: u64,
        snap: &Snapshot,
    ) -> Result<ProvenLeaf, LedgerError> {
        let leaf = require_leaf_bytes(r, index)?;
        let inclusion = self.checked_path(r, index, &crate::core::leaf::leaf_hash(&leaf), snap)?;
        Ok(ProvenLeaf {
            index,
            leaf,
            inclusion,
        })
    }

    /// The genesis leaf and the snapshot's map leaf, proven under its checkpoint (what a
    /// proof batch's header carries).
    pub fn anchor(&self, snap: &Snapshot) -> Result<(ProvenLeaf, ProvenLeaf), LedgerError> {
        let store = self.store();
        let view = store.view()?;
        self.anchor_leaves(&*view, snap)
    }

    /// [`Ledger::anchor`], reading through `r`.
    fn anchor_leaves(
        &self,
        r: &dyn View,
        snap: &Snapshot,
    ) -> Result<(ProvenLeaf, ProvenLeaf), LedgerError> {
        if let Some(a) = snap.anchor.get() {
            return Ok(a.clone());
        }
        let a = (
            self.proven_leaf(r, 0, snap)?,
            self.proven_leaf(r, snap.map_index, snap)?,
        );
        Ok(snap.anchor.get_or_init(|| a).clone())
    }

    /// The inclusion path of leaf `index` (whose hash is `leaf_hash`) under the snapshot's
    /// checkpoint, checked against its root, so damaged storage is reported as such instead of
    /// being handed out.
    fn checked_path(
        &self,
        r: &dyn View,
        index: u64,
        leaf_hash: &Hash,
        snap: &Snapshot,
    ) -> Result<Vec<HexHash>, LedgerError> {
        let cp = &snap.checkpoint;
        let damaged = |e: String| mismatch(Table::Leaf, Key::Index(index), e);
        let edge = match snap.edge.get() {
            Some(edge) => edge,
            None => {
                let edge = tlog::RightEdge::new(&Sha256Hasher, &self.nodes(r), TreeSize(cp.size))
                    .map_err(|e| damaged(format!("the tree's right edge: {e}")))?;
                if edge.root() != Some(cp.root) {
                    return Err(damaged(format!(
                        "stored nodes do not lead to the root of checkpoint {}",
                        cp.size
                    )));
                }
                snap.edge.get_or_init(|| edge)
            }
        };
        let path = edge
            .prove_inclusion(&Sha256Hasher, &self.nodes(r), LeafIndex(index))
            .map_err(|e| damaged(format!("inclusion proof: {e}")))?;
        snap.verified
            .check(
                &Sha256Hasher,
                LeafIndex(index),
                TreeSize(cp.size),
                leaf_hash,
                &path,
                &cp.root,
            )
            .map_err(|e| damaged(format!("stored data does not match checkpoint root: {e}")))?;
        Ok(hexes(path))
    }

    /// One event leaf (`leaf` is leaf `index`, already read, and `bytes` its stored bytes)
    /// with its opening and inclusion proof under the snapshot's checkpoint. Before anything
    /// is served, the inclusion path is checked against the checkpoint root and the opening
    /// against the leaf's commitment (hashing only), so damaged storage is reported as such
    /// instead of being handed out as a proof.
    /// Returns the opening too, decoded.
    fn proven_event(
        &self,
        r: &dyn View,
        index: u64,
        leaf: &EventLeaf,
        bytes: Vec<u8>,
        snap: &Snapshot,
    ) -> Result<(ProvenEvent, Opening), LedgerError> {
        let opening = read_opening(r, index)?.ok_or(Invalid::Erased { index })?;
        let inclusion = self.checked_path(r, index, &crate::core::leaf::leaf_hash(&bytes), snap)?;
        if opening.commitment() != leaf.commitment {
            return Err(mismatch(
                Table::Opening,
                Key::Index(index),
                format!("does not match the commitment of leaf {index}"),
            ));
        }
        let proven = ProvenEvent {
            index,
            leaf: bytes,
            opening: OpeningJson::from(&opening),
            inclusion,
        };
        Ok((proven, opening))
    }

    /// The latest snapshot if its map leaf is not older than `at`; else a new map leaf is
    /// appended first (at most one a second: sooner, [`Invalid::MapLeafTooSoon`]). A future
    /// `at` is refused.
    pub fn snapshot_for(&self, at: u64) -> Result<std::sync::Arc<Snapshot>, LedgerError> {
        let snap = self.latest();
        if snap.map_leaf.time >= at && !snap.checkpoint.note.is_empty() {
            return Ok(snap);
        }
        let now = self.now_ms();
        if at > now {
            return Err(Invalid::FutureAt { at, now }.into());
        }
        self.checkpoint()?;
        Ok(self.latest())
    }

    /// A consent proof for (subject, controller, purpose) at `at` (default now), appending a
    /// map leaf first when the newest is older than `at`; refuses a future `at`.
    pub fn prove_consent(
        &self,
        subject: &[u8; 32],
        controller: &str,
        purpose: &str,
        at: Option<u64>,
    ) -> Result<ConsentProof, LedgerError> {
        let now = self.now_ms();
        let at = not_future(at, now)?;
        let snap = self.snapshot_for(at)?;
        self.prove_consent_in(&snap, subject, controller, purpose, at)
    }

    /// A consent proof against a given snapshot (`at` must not be after its map leaf).
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
        crate::core::event::check_name("controller", controller).map_err(Invalid::Name)?;
        crate::core::event::check_name("purpose", purpose).map_err(Invalid::Name)?;
        let cp = &snap.checkpoint;
        let time = snap.map_leaf.time;
        if at > time {
            return Err(Invalid::AfterMapLeaf { at, time }.into());
        }
        let genesis_time = self.genesis().genesis_time;
        if at < genesis_time {
            return Err(Invalid::BeforeGenesis { at, genesis_time }.into());
        }
        let input = crate::core::vrf::StateKeyInput {
            origin: self.origin(),
            subject,
            controller,
            purpose,
        };
        let (key, vrf, _) = self.state_key_or_prove_in(r, &input)?;
        let (chain, latest) = KeyChain::before(r, &key, snap.map_index)?;
        let mut read = ChainReads::new(&chain, r, latest);
        // `lo`: how many of the key's event leaves were integrated at or before `at`.
        // integrated_at never decreases along the log. The common questions (consent now, or
        // before the key's first event) read one or two entries; others search in O(log k).
        let n = chain.len as usize;
        let lo = if n == 0 {
            0
        } else if read.get(n - 1)?.1.integrated_at <= at {
            n
        } else if read.get(0)?.1.integrated_at > at {
            0
        } else {
            // entry 0 is at or before `at`, entry n - 1 after it.
            let (mut lo, mut hi) = (1usize, n - 1);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if read.get(mid)?.1.integrated_at <= at {
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
            let (i, e, b) = read.take(p)?;
            let (pe, opening) = self.proven_event(r, i, &e, b, snap)?;
            in_force_event = Some(opening.event.event);
            events.push(pe);
        }
        if let Some(p) = next {
            let (i, e, b) = read.take(p)?;
            events.push(self.proven_event(r, i, &e, b, snap)?.0);
        }
        let map = if next.is_some() {
            None
        } else {
            Some(self.prove_key_with(r, snap, &key)?)
        };
        let (genesis, map_leaf) = self.anchor_leaves(r, snap)?;
        Ok(ConsentProof {
            format: PROOF_FORMAT.into(),
            checkpoint: cp.note.clone(),
            genesis,
            map_leaf,
            witnessed: self.witnessed_for(snap)?,
            subject: *subject,
            controller: controller.into(),
            purpose: purpose.into(),
            vrf_proof: vrf.0,
            at,
            events,
            map,
            state: state_at(in_force_event.as_ref(), at).as_str().into(),
        })
    }

    /// All of a person's events, up to a fresh map leaf.
    pub fn history(&self, subject: &[u8; 32]) -> Result<History, LedgerError> {
        let snap = self.snapshot_for(self.now_ms())?;
        self.history_in(&snap, subject)
    }

    /// All of a person's events up to the snapshot's map leaf.
    pub fn history_in(&self, snap: &Snapshot, subject: &[u8; 32]) -> Result<History, LedgerError> {
        let cp = &snap.checkpoint;
        let store = self.store();
        let r = &*store.view()?;
        let mut chains = Vec::new();
        for kv in scan_prefix(r, Table::SubjectIndex, subject) {
            let (k, _) = kv?;
            let (_, key) = schema::decode_subject_index_key(&k)?;
            let indices = key_indices(r, &key, snap.map_index)?;
            let mut events = Vec::with_capacity(indices.len());
            let mut first = None;
            for &i in &indices {
                let (entry, bytes) = require_event_bytes(r, i)?;
                let (pe, opening) = self.proven_event(r, i, &entry, bytes, snap)?;
                first.get_or_insert((opening.event.event, opening.vrf));
                events.push(pe);
            }
            let Some((first, vrf)) = first else {
                continue;
            };
            chains.push(Chain {
                controller: first.controller,
                purpose: first.purpose,
                vrf_proof: vrf.0,
                events,
                map: self.prove_key_with(r, snap, &key)?,
            });
        }
        let (genesis, map_leaf) = self.anchor_leaves(r, snap)?;
        Ok(History {
            format: HISTORY_FORMAT.into(),
            checkpoint: cp.note.clone(),
            genesis,
            map_leaf,
            witnessed: self.witnessed_for(snap)?,
            subject: *subject,
            chains,
        })
    }
}

impl Ledger {
    /// Leaves `start..end` (clamped to the log) with the openings of event leaves when
    /// asked.
    #[allow(clippy::type_complexity)]
    pub fn read_range(
        &self,
        start: u64,
        end: u64,
        openings: bool,
    ) -> Result<Vec<(Leaf, Option<Opening>)>, LedgerError> {
        let end = end.min(self.size());
        if start >= end {
            return Ok(Vec::new());
        }
        super::raw::read_range(&*self.store(), start, end, openings)
    }

    /// Stored checkpoint notes numbered `from..to` (clamped), oldest first, with numbers.
    pub fn checkpoint_range(&self, from: u64, to: u64) -> Result<Vec<(u64, String)>, LedgerError> {
        // Only durable checkpoints (see `Snapshot::published`).
        let to = to.min(self.latest().published);
        if from >= to {
            return Ok(Vec::new());
        }
        let store = self.store();
        let notes = super::raw::checkpoint_range(&*store, from, Some(to)).collect();
        notes
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
    /// run of queries on a thread); `at` defaults to the map leaf's time, an `at` after `now`
    /// is refused, and so is one after the map leaf.
    pub fn prove_query_with(
        &self,
        view: &Result<Box<dyn View + '_>, StoreError>,
        snap: &Snapshot,
        now: u64,
        q: &crate::core::proof_batch::BatchQuery,
    ) -> Result<ConsentProof, LedgerError> {
        let at = not_future(q.at, now)?.min(q.at.unwrap_or(snap.map_leaf.time));
        let r = view
            .as_deref()
            .map_err(|e| LedgerError::Store(StoreError::Engine(e.to_string())))?;
        self.prove_consent_with(r, snap, &q.subject, &q.controller, &q.purpose, at)
    }
}

/// `at`, or `now` if none; a future `at` is refused.
fn not_future(at: Option<u64>, now: u64) -> Result<u64, LedgerError> {
    match at {
        Some(at) if at > now => Err(Invalid::FutureAt { at, now }.into()),
        at => Ok(at.unwrap_or(now)),
    }
}

/// A key's event leaves below a tree size, read by seq (`KeyIndex` is keyed by key ‖ seq):
/// a proof reads the two or three it needs, not the whole chain.
struct KeyChain {
    key: Hash,
    /// How many of the key's event leaves lie below the size: seqs `0..len`.
    len: u64,
    /// The key's last entry (seq, index), read to find `len`: the one a proof of consent
    /// now needs, not read twice.
    last: Option<(u64, u64)>,
}

/// A chain entry read on the way: (position = seq, index, leaf, its stored bytes).
type ChainEntry = (usize, u64, EventLeaf, Vec<u8>);

impl KeyChain {
    /// The chain of `key` below `size`. Its length comes from the key's latest event leaf
    /// (the map's stored value names it: one read, where the key index would need a range
    /// read from its end); when that leaf lies at or past `size` (appends since the
    /// snapshot), by binary search over seqs (indices grow with seq). Returns the latest
    /// leaf too when it lies below `size`: the chain's last entry.
    fn before(
        r: &dyn View,
        key: &Hash,
        size: u64,
    ) -> Result<(KeyChain, Option<ChainEntry>), LedgerError> {
        let mut chain = KeyChain {
            key: *key,
            len: 0,
            last: None,
        };
        let Some(v) = r.get(Table::MapValue, key)? else {
            return Ok((chain, None));
        };
        let (_, latest) = schema::decode_map_leaf(key, &v)?;
        let (leaf, bytes) = require_event_bytes(r, latest.index)?;
        if leaf.key != *key {
            return Err(mismatch(
                Table::MapValue,
                Key::State(*key),
                format!("names leaf {}, an event of another key", latest.index),
            ));
        }
        chain.last = Some((leaf.seq, latest.index));
        if latest.index < size {
            chain.len = leaf.seq + 1;
            let pos = usize::try_from(leaf.seq).expect("a chain fits in memory");
            return Ok((chain, Some((pos, latest.index, leaf, bytes))));
        }
        // The first seq whose index is at or past `size`.
        let (mut lo, mut hi) = (0u64, leaf.seq);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if chain.index(r, mid)? < size {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        chain.len = lo;
        Ok((chain, None))
    }

    /// The leaf index of the event with `seq`.
    fn index(&self, r: &dyn View, seq: u64) -> Result<u64, LedgerError> {
        if let Some((last_seq, index)) = self.last {
            if last_seq == seq {
                return Ok(index);
            }
        }
        let k = schema::key_index_key(&self.key, seq);
        let v = r.get(Table::KeyIndex, &k)?.ok_or_else(|| {
            LedgerError::corrupt(
                Table::KeyIndex,
                Key::Seq { key: self.key, seq },
                CorruptKind::Missing,
            )
        })?;
        Ok(schema::decode_key_index(&k, &v)?.index)
    }
}

/// Event leaves of a [`KeyChain`] read while a proof searches it (by position in the chain,
/// with their indices and stored bytes), kept for the proof.
struct ChainReads<'a> {
    chain: &'a KeyChain,
    r: &'a dyn View,
    read: Vec<ChainEntry>,
}

impl<'a> ChainReads<'a> {
    /// Reads of `chain` through `r`, starting with `known` (the chain's last entry, when
    /// [`KeyChain::before`] read it).
    fn new(chain: &'a KeyChain, r: &'a dyn View, known: Option<ChainEntry>) -> Self {
        let mut read = Vec::with_capacity(8);
        read.extend(known);
        ChainReads { chain, r, read }
    }

    fn slot(&mut self, pos: usize) -> Result<usize, LedgerError> {
        if let Some(at) = self.read.iter().position(|(p, ..)| *p == pos) {
            return Ok(at);
        }
        let i = self.chain.index(self.r, pos as u64)?;
        let (e, b) = require_event_bytes(self.r, i)?;
        self.read.push((pos, i, e, b));
        Ok(self.read.len() - 1)
    }

    /// The index and leaf of the chain's event at `pos`.
    fn get(&mut self, pos: usize) -> Result<(u64, EventLeaf), LedgerError> {
        let at = self.slot(pos)?;
        Ok((self.read[at].1, self.read[at].2))
    }

    /// [`ChainReads::get`] with the leaf's bytes, handed over.
    fn take(&mut self, pos: usize) -> Result<(u64, EventLeaf, Vec<u8>), LedgerError> {
        let at = self.slot(pos)?;
        let (_, i, e, b) = &mut self.read[at];
        Ok((*i, *e, std::mem::take(b)))
    }
}

/// Indices of the event leaves of `key` below `size`, in log order.
fn key_indices(r: &dyn View, key: &Hash, size: u64) -> Result<Vec<u64>, LedgerError> {
    let mut out = Vec::new();
    for kv in scan_prefix(r, Table::KeyIndex, key) {
        let (k, v) = kv?;
        let head = schema::decode_key_index(&k, &v)?;
        if head.index < size {
            out.push(head.index);
        }
    }
    Ok(out)
}
