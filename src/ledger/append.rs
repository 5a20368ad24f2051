//! Appending: the stateless checks on all cores ([`precheck`]), then, under the state lock,
//! the rules that need the ledger's state, one atomic batch and sync per chunk, and receipts
//! signed while the sync runs and handed out only after it.

use std::collections::HashMap;

use rayon::prelude::*;

use super::leaves::LeafSource;
use super::receipts::{ChunkNodes, LowNodes};
use super::schema::{self, index_key, node_key};
use super::{Ledger, LedgerError, Outcome, State, CHUNK};
use crate::core::event::{signatures_valid, SignedEvent, SubjectKeyCache, SIGNATURE_CHUNK};
use crate::core::hash::Hash;
use crate::core::leaf::EventLeaf;
use crate::core::map::{MapValue, StateMap};
use crate::core::opening::Opening;
use crate::core::receipt::Receipt;
use crate::core::reject::Reject;
use crate::core::rules::{self, Head};
use crate::core::tlog::{Frontier, RightEdge, Sha256Hasher, TreeSize};
use crate::core::vrf::{StateKeyInput, VrfProof};
use crate::keyfile;
use crate::store::{Table, View, WriteBatch};

/// Below this many events a chunk's receipts are signed on the calling thread: handing a few
/// signatures to other threads costs more in wake-ups than it saves.
const PARALLEL_MIN: usize = 64;

/// An event with its hash and the result of its stateless checks (signature, key, fields),
/// made by [`precheck`] on all cores, so that callers can check the next events while the
/// ledger commits the previous ones.
pub struct Prechecked {
    event: SignedEvent,
    hash: Hash,
    check: Result<(), Reject>,
    /// The state key of the event's triple and its VRF proof, once
    /// [`Ledger::resolve_keys`] found or computed them, and whether the index lacked them.
    state: Option<(Hash, VrfProof, bool)>,
}

/// The stateless checks of one event (strict signature verification and field checks), on
/// the calling thread. Depends on nothing but the event: the rules that need the ledger's
/// state run in [`Ledger::append_checked`].
pub fn precheck_one(event: SignedEvent) -> Prechecked {
    let hash = event.event_hash();
    let check = event.check_self();
    Prechecked {
        event,
        hash,
        check,
        state: None,
    }
}

/// The stateless checks of many events on all cores (see [`precheck_one`]), with the subjects'
/// keys from `cache` ([`Ledger::subject_keys`]).
pub fn precheck(
    events: Vec<Result<SignedEvent, Reject>>,
    cache: &SubjectKeyCache,
) -> Vec<Result<Prechecked, Reject>> {
    let keys = cache.keys_for(events.iter().flatten());
    events
        .into_par_iter()
        .chunks(SIGNATURE_CHUNK)
        .flat_map_iter(|chunk| {
            let signed: Vec<&SignedEvent> = chunk.iter().flatten().collect();
            let mut valid = signatures_valid(&signed, &keys).into_iter();
            let keys = &keys;
            chunk.into_iter().map(move |r| {
                r.map(|event| {
                    let ok = valid.next().expect("one answer per event");
                    let hash = event.event_hash();
                    let key = &keys[&event.event.subject];
                    let check = event.check_self_given(key, |_| ok);
                    Prechecked {
                        event,
                        hash,
                        check,
                        state: None,
                    }
                })
            })
        })
        .collect()
}

/// Where one submitted event's outcome comes from.
// Slots live for one chunk, one per event; boxing the outcome would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Slot {
    Done(Outcome),
    /// Existing event leaf index.
    Existing(u64),
    /// Position among this chunk's accepted event leaves.
    New(usize),
    /// A repeat, within this chunk, of the accepted event leaf at this position.
    Repeat(usize),
}

/// A chunk being applied under the state lock: its writes and what they change, kept apart
/// from the ledger's state until the batch is durable.
struct Chunk {
    /// The ledger's time for this chunk's event leaves.
    now: u64,
    /// Index of the chunk's first new leaf.
    base: u64,
    frontier: Frontier,
    batch: WriteBatch,
    /// Heads of keys changed in this chunk.
    heads: HashMap<Hash, Head>,
    /// Position of each accepted event by its hash.
    fresh: HashMap<Hash, usize>,
    /// Accepted event leaves with their leaf hashes.
    accepted: Vec<(EventLeaf, Hash)>,
    /// The openings of the accepted event leaves, in the same order.
    openings: Vec<Opening>,
    /// State keys of new triples written in this chunk (by index key).
    new_triples: std::collections::HashSet<Hash>,
    /// Node hashes written (level ≥ 1).
    new_nodes: Vec<(u8, u64, Hash)>,
    slots: Vec<Slot>,
}

impl Chunk {
    fn new(st: &State, now: u64, len: usize) -> Chunk {
        Chunk {
            now,
            base: st.frontier.size().0,
            frontier: st.frontier.clone(),
            batch: WriteBatch::new(),
            heads: HashMap::new(),
            fresh: HashMap::new(),
            accepted: Vec::new(),
            openings: Vec::new(),
            new_triples: std::collections::HashSet::new(),
            new_nodes: Vec::new(),
            slots: Vec::with_capacity(len),
        }
    }

    /// Writes an accepted event as the next event leaf: leaf, opening, node hashes, key index,
    /// (for a key's first event) subject index and (for a new triple) the state key index.
    /// `prev` is the key's head, if any.
    fn stage(
        &mut self,
        event: SignedEvent,
        hash: Hash,
        state: (Hash, VrfProof, bool),
        prev: Option<u64>,
    ) {
        let (key, vrf, new_triple) = state;
        let index = self.base + self.accepted.len() as u64;
        if new_triple {
            let k = schema::state_key_index_key(&event.event.state_key_input());
            if self.new_triples.insert(k) {
                self.batch
                    .put(Table::StateKey, k, schema::state_key_value(&key, &vrf));
            }
        }
        let opening = Opening {
            nonce: keyfile::random32(),
            vrf,
            event,
        };
        let entry = opening.leaf(self.now, key, prev);
        let entry_bytes = entry.to_bytes();
        let leaf = crate::core::leaf::leaf_hash(&entry_bytes);
        let (batch, new_nodes) = (&mut self.batch, &mut self.new_nodes);
        self.frontier
            .append_with(&Sha256Hasher, leaf, |level, i, node| {
                if level > 0 {
                    batch.put(Table::Node, node_key(level, i), *node);
                    new_nodes.push((level, i, *node));
                }
            });
        let ev = &opening.event.event;
        self.batch.put(Table::Leaf, index_key(index), entry_bytes);
        self.batch
            .put(Table::Opening, index_key(index), opening.to_bytes());
        let seq = ev.seq;
        self.batch.put(
            Table::KeyIndex,
            schema::key_index_key(&key, seq),
            schema::key_index_value(index, &hash),
        );
        if prev.is_none() {
            self.batch.put(
                Table::SubjectIndex,
                schema::subject_index_key(&ev.subject, &key),
                Vec::new(),
            );
        }
        self.heads.insert(
            key,
            Head {
                index,
                seq,
                event_hash: hash,
            },
        );
        self.fresh.insert(hash, self.accepted.len());
        self.slots.push(Slot::New(self.accepted.len()));
        self.accepted.push((entry, leaf));
        self.openings.push(opening);
    }

    /// The new map values of the accepted event leaves.
    fn map_updates(&self) -> Vec<(Hash, MapValue)> {
        self.accepted
            .iter()
            .enumerate()
            .map(|(i, (e, leaf))| {
                let value = MapValue {
                    index: self.base + i as u64,
                    leaf_hash: *leaf,
                };
                (e.key, value)
            })
            .collect()
    }
}

impl Ledger {
    /// Appends events in order, each accepted or rejected on its own (later events may
    /// continue the chains of earlier ones). Accepted events are committed in chunks of
    /// [`CHUNK`], each one atomic batch followed by a sync, before any receipt is made.
    /// On a storage error the events of the failed chunk and after it are not acknowledged.
    pub fn append(
        &self,
        events: Vec<Result<SignedEvent, Reject>>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        // The expensive, stateless checks and the state keys on all cores, outside the lock.
        self.append_checked(self.resolve_keys(precheck(events, &self.subject_keys))?)
    }

    /// Finds the state key and VRF proof of each well-signed event's triple in the private
    /// index, or computes them (the VRF is evaluated once per triple: the index keeps them),
    /// on all cores and outside the state lock. Events that failed their checks, or name
    /// another log, are left for the rules to refuse.
    pub fn resolve_keys(
        &self,
        checked: Vec<Result<Prechecked, Reject>>,
    ) -> Result<Vec<Result<Prechecked, Reject>>, LedgerError> {
        // After a failed write the store is reopened under the lock first: leave the keys to
        // the append then (as for any key that cannot be read now).
        if self
            .needs_recovery
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(checked);
        }
        // Each distinct triple once (a file or batch holds many events of one triple).
        let wanted = |r: &Result<Prechecked, Reject>| match r {
            Ok(p) if p.check.is_ok() && p.event.event.log == self.origin => Some(
                schema::state_key_index_key(&p.event.event.state_key_input()),
            ),
            _ => None,
        };
        let ids: Vec<Option<Hash>> = checked.par_iter().map(wanted).collect();
        let mut first: HashMap<Hash, usize> = HashMap::new();
        for (i, id) in ids.iter().enumerate() {
            if let Some(id) = id {
                first.entry(*id).or_insert(i);
            }
        }
        let store = self.store();
        let answers: HashMap<Hash, (Hash, VrfProof, bool)> = first
            .into_par_iter()
            // A read transaction per piece of work, not per triple.
            .map_init(
                || store.view().ok(),
                |view, (id, i)| {
                    let p = checked[i].as_ref().ok()?;
                    let input = p.event.event.state_key_input();
                    match view {
                        Some(v) => self.state_key_or_prove_in(&**v, &input),
                        None => self.state_key_or_prove_input(&input),
                    }
                    .ok()
                    .map(|a| (id, a))
                },
            )
            .flatten()
            .collect();
        Ok(checked
            .into_iter()
            .zip(ids)
            .map(|(r, id)| match (r, id) {
                (Ok(mut p), Some(id)) => {
                    p.state = answers.get(&id).copied();
                    Ok(p)
                }
                (other, _) => other,
            })
            .collect())
    }

    /// The state key of a triple of this log and its VRF proof: from the private index, or
    /// computed (then `.2` is true; nothing is stored here).
    pub(crate) fn state_key_or_prove_input(
        &self,
        input: &StateKeyInput<'_>,
    ) -> Result<(Hash, VrfProof, bool), LedgerError> {
        self.state_key_or_prove_in(&*self.store(), input)
    }

    /// [`Ledger::state_key_or_prove_input`], reading the index through `r`.
    pub(crate) fn state_key_or_prove_in(
        &self,
        r: &dyn crate::store::View,
        input: &StateKeyInput<'_>,
    ) -> Result<(Hash, VrfProof, bool), LedgerError> {
        let k = schema::state_key_index_key(input);
        if let Some(v) = r.get(Table::StateKey, &k)? {
            let (key, proof) = schema::decode_state_key(&k, &v)?;
            return Ok((key, proof, false));
        }
        // Computed a moment ago for an event not yet committed (the next chunk is resolved
        // while the previous one commits): the same answer, the VRF being deterministic.
        if let Some((key, proof)) = self.fresh_keys.get(&k) {
            return Ok((key, proof, true));
        }
        let (key, proof) = self.vrf.prove_state_key(input);
        self.fresh_keys.put(k, (key, proof));
        Ok((key, proof, true))
    }

    /// The state key of (subject, controller, purpose) and its VRF proof, if the triple has
    /// an event in this log.
    pub fn state_key(
        &self,
        subject: &[u8; 32],
        controller: &str,
        purpose: &str,
    ) -> Result<Option<(Hash, VrfProof)>, LedgerError> {
        let input = StateKeyInput {
            origin: &self.origin,
            subject,
            controller,
            purpose,
        };
        let k = schema::state_key_index_key(&input);
        match self.store().get(Table::StateKey, &k)? {
            None => Ok(None),
            Some(v) => schema::decode_state_key(&k, &v).map(Some),
        }
    }

    /// The state key of (subject, controller, purpose) and its VRF proof, computed when the
    /// triple has no event yet (for a proof of "no record"; not stored).
    pub fn state_key_or_prove(
        &self,
        subject: &[u8; 32],
        controller: &str,
        purpose: &str,
    ) -> Result<(Hash, VrfProof), LedgerError> {
        let input = StateKeyInput {
            origin: &self.origin,
            subject,
            controller,
            purpose,
        };
        self.state_key_or_prove_input(&input)
            .map(|(k, p, _)| (k, p))
    }

    /// [`Ledger::append`] of events already through [`precheck`].
    pub fn append_checked(
        &self,
        checked: Vec<Result<Prechecked, Reject>>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        let mut out = Vec::with_capacity(checked.len());
        let mut checked = checked;
        while !checked.is_empty() {
            let rest = checked.split_off(checked.len().min(CHUNK));
            out.extend(self.append_chunk(checked)?);
            checked = rest;
        }
        Ok(out)
    }

    /// One chunk: the rules under the lock, one atomic batch, then the outcomes.
    fn append_chunk(
        &self,
        checked: Vec<Result<Prechecked, Reject>>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        let mut st = self.state.lock().expect("state");
        self.recover(&mut st)?;
        let now = self.clock.after(st.last_map_time).max(st.last_time);
        let mut chunk = Chunk::new(&st, now, checked.len());
        let store = self.store();
        // One read transaction for the chunk's reads: the state as of its start (what the
        // chunk changes is in `chunk`).
        let view = store.view()?;
        for c in checked {
            self.place(&*view, &mut chunk, c)?;
        }
        let before = if chunk.accepted.is_empty() {
            None
        } else {
            let map = self.stage_map(&*view, &st, &mut chunk)?;
            drop(view);
            self.commit(std::mem::take(&mut chunk.batch))?;
            // Durable: now the in-memory state may change.
            self.upper.extend(&chunk.new_nodes);
            st.map = map;
            st.last_time = now;
            Some(std::mem::replace(
                &mut st.frontier,
                std::mem::take(&mut chunk.frontier),
            ))
        };
        let tree = (st.frontier.size().0, st.frontier.root(&Sha256Hasher));
        drop(st);
        self.outcomes(chunk, before, tree)
    }

    /// Decides one event of a chunk: refused, a resubmission of a logged or of an earlier
    /// event of the chunk, or accepted (and staged).
    fn place(
        &self,
        view: &dyn View,
        chunk: &mut Chunk,
        c: Result<Prechecked, Reject>,
    ) -> Result<(), LedgerError> {
        let Prechecked {
            event,
            hash,
            check,
            state,
        } = match c {
            Err(r) => {
                chunk.slots.push(Slot::Done(Outcome::Rejected(r)));
                return Ok(());
            }
            Ok(p) => p,
        };
        if let Some(&pos) = chunk.fresh.get(&hash) {
            chunk.slots.push(Slot::Repeat(pos));
            return Ok(());
        }
        let state = match state {
            Some(s) => s,
            // Refused before its key matters (signature, fields, another log): no VRF for it.
            None if check.is_err() || event.event.log != self.origin => {
                let r = rules::check_append_checked(&event, &self.origin, None, chunk.now, check)
                    .expect_err("a failed check or another log is refused");
                chunk.slots.push(Slot::Done(Outcome::Rejected(r)));
                return Ok(());
            }
            None => self.state_key_or_prove_in(view, &event.event.state_key_input())?,
        };
        let key = state.0;
        let head = match chunk.heads.get(&key) {
            Some(h) => Some(*h),
            None => schema::read_head(view, &key)?,
        };
        // A resubmission: an event with this seq is already logged with these bytes.
        if head.is_some_and(|hd| event.event.seq <= hd.seq) {
            if let Some(old) = schema::read_event_at_seq(view, &key, event.event.seq)? {
                if old.event_hash == hash {
                    chunk.slots.push(Slot::Existing(old.index));
                    return Ok(());
                }
            }
        }
        let verdict =
            rules::check_append_checked(&event, &self.origin, head.as_ref(), chunk.now, check);
        match verdict {
            Err(r) => chunk.slots.push(Slot::Done(Outcome::Rejected(r))),
            Ok(()) => chunk.stage(event, hash, state, head.map(|h| h.index)),
        }
        Ok(())
    }

    /// The map after the chunk (from the stored leaves as they are before it), with the
    /// chunk's new size and map leaves added to its batch.
    fn stage_map(
        &self,
        view: &dyn View,
        st: &State,
        chunk: &mut Chunk,
    ) -> Result<StateMap, LedgerError> {
        let size = chunk.base + chunk.accepted.len() as u64;
        chunk
            .batch
            .put(Table::Meta, schema::SIZE, schema::size_value(size));
        let updates = chunk.map_updates();
        let mut map = st.map.clone();
        let src = LeafSource {
            store: view,
            as_of: chunk.base,
            upto: None,
        };
        map.insert_batch_from(&updates, &src)?;
        for (key, value) in &updates {
            chunk
                .batch
                .put(Table::MapValue, *key, schema::map_leaf_value(value));
        }
        Ok(map)
    }

    /// The outcome of each event of a durable chunk, in order. Receipts are under one
    /// checkpoint of `tree` (size, root), the tree just after the chunk, signed here; `before`
    /// is the frontier before the chunk's first leaf, if it appended any.
    fn outcomes(
        &self,
        chunk: Chunk,
        before: Option<Frontier>,
        tree: (u64, Hash),
    ) -> Result<Vec<Outcome>, LedgerError> {
        let Chunk {
            base,
            accepted,
            openings,
            new_nodes,
            slots,
            ..
        } = chunk;
        if slots.iter().all(|s| matches!(s, Slot::Done(_))) {
            return Ok(slots
                .into_iter()
                .map(|s| match s {
                    Slot::Done(o) => o,
                    _ => unreachable!("all refused"),
                })
                .collect());
        }
        let low = match &before {
            Some(f) => LowNodes::new(f, base, accepted.iter().map(|a| a.1), &new_nodes),
            None => LowNodes::none(),
        };
        let (size, root) = tree;
        let store = self.store();
        let nodes = ChunkNodes {
            low: &low,
            rest: self.nodes(&*store),
        };
        // The tree's right edge, hashed once for all the chunk's paths (if its nodes do not
        // lead to the root, each path is computed on its own, as without it).
        let edge = RightEdge::new(&Sha256Hasher, &nodes, TreeSize(size))
            .ok()
            .filter(|e| e.root() == Some(root));
        let edge = edge.as_ref();
        let anchor = self.receipt_anchor(size, root, &nodes, edge)?;
        let make = |(pos, ((leaf, _), opening)): (usize, (&(EventLeaf, Hash), Opening))| {
            let store = self.store();
            let nodes = ChunkNodes {
                low: &low,
                rest: self.nodes(&*store),
            };
            self.receipt_in(
                &anchor,
                size,
                &nodes,
                edge,
                base + pos as u64,
                *leaf,
                opening,
            )
        };
        let receipts: Vec<Receipt> = if accepted.len() < PARALLEL_MIN {
            accepted
                .iter()
                .zip(openings)
                .enumerate()
                .map(make)
                .collect::<Result<_, _>>()?
        } else {
            accepted
                .par_iter()
                .zip(openings)
                .enumerate()
                .map(make)
                .collect::<Result<_, _>>()?
        };
        let outcome = |s: Slot| {
            Ok(match s {
                Slot::Done(o) => o,
                Slot::New(pos) => Outcome::Accepted(receipts[pos].clone()),
                Slot::Repeat(pos) => Outcome::Duplicate(receipts[pos].clone()),
                Slot::Existing(idx) => Outcome::Duplicate(self.stored_receipt(&anchor, size, idx)?),
            })
        };
        slots.into_iter().map(outcome).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event, first_events, ledger, ledger_on, T0};
    use super::*;
    use crate::core::rules::ISSUED_AT_WINDOW_MS;
    use crate::store::Engine;

    #[test]
    fn issued_at_is_checked_against_the_injected_clock() {
        let t = ledger();
        let l = &t.ledger;
        let key = keyfile::generate();
        // The ledger's time for the next append: just after init's checkpoint at T0.
        let now = T0 + 1;
        for issued_at in [now - ISSUED_AT_WINDOW_MS - 1, now + ISSUED_AT_WINDOW_MS + 1] {
            let out = l.append(vec![Ok(event(&key, 0, None, issued_at))]).unwrap();
            assert!(
                matches!(&out[0], Outcome::Rejected(Reject::IssuedAt { now: n, .. }) if *n == now),
                "{out:?}"
            );
        }
        // At the window's edge it is accepted, and integrated at the ledger's time.
        let first = event(&key, 0, None, now - ISSUED_AT_WINDOW_MS);
        let r = t.accept(vec![first.clone()]);
        assert_eq!(r[0].leaf.integrated_at, now);
        // An hour later (no sleeping), the same issued_at is out of the window.
        t.clock.advance(3_600_000);
        let late = event(&key, 1, Some(first.event_hash()), T0);
        let out = l.append(vec![Ok(late)]).unwrap();
        assert!(matches!(out[0], Outcome::Rejected(Reject::IssuedAt { .. })));
        // Event leaves are integrated strictly after the latest map leaf, even on a stopped
        // clock.
        l.checkpoint().unwrap();
        let time = l.latest().map_leaf.time;
        let next = event(&key, 1, Some(first.event_hash()), time);
        assert_eq!(t.accept(vec![next])[0].leaf.integrated_at, time + 1);
    }

    #[test]
    fn resubmissions_get_the_first_receipt() {
        let t = ledger();
        let ev = first_events(1, T0).remove(0);
        // Twice in one chunk: one entry, the same receipt twice.
        let out = t
            .ledger
            .append(vec![Ok(ev.clone()), Ok(ev.clone())])
            .unwrap();
        let (Outcome::Accepted(a), Outcome::Duplicate(b)) = (&out[0], &out[1]) else {
            panic!("{out:?}")
        };
        assert_eq!(a, b);
        // Again later: read back from the log.
        let out = t.ledger.append(vec![Ok(ev)]).unwrap();
        assert_eq!(out, vec![Outcome::Duplicate(a.clone())]);
        // Genesis, the first map leaf, the event.
        assert_eq!(t.ledger.size(), 3);
    }

    #[test]
    fn a_chunk_writes_every_table_it_owns() {
        let t = ledger();
        let key = keyfile::generate();
        let first = event(&key, 0, None, T0);
        let second = event(&key, 1, Some(first.event_hash()), T0);
        t.accept(vec![first.clone(), second.clone()]);
        let l = &t.ledger;
        let skey = l
            .state_key(&first.event.subject, "c.example", "p")
            .unwrap()
            .unwrap()
            .0;
        let head = l.head(&skey).unwrap().unwrap();
        assert_eq!((head.index, head.seq), (3, 1));
        assert_eq!(head.event_hash, second.event_hash());
        assert_eq!(l.event_at_seq(&skey, 0).unwrap().unwrap().index, 2);
        // The second event leaf names the first as its prev, publicly.
        let leaf = l.event_leaf(3).unwrap().unwrap();
        assert_eq!((leaf.prev, leaf.seq, leaf.key), (Some(2), 1, skey));
        let store = l.store();
        let subject = schema::subject_index_key(&first.event.subject, &skey);
        assert!(store.get(Table::SubjectIndex, &subject).unwrap().is_some());
        let leaf = store.get(Table::MapValue, &skey).unwrap().unwrap();
        let (_, value) = schema::decode_map_leaf(&skey, &leaf).unwrap();
        assert_eq!(value.index, 3);
        let size = store.get(Table::Meta, schema::SIZE).unwrap().unwrap();
        assert_eq!(schema::decode_size(&size).unwrap(), 4);
        assert_eq!(l.opening(3).unwrap().unwrap().event, second);
    }

    #[test]
    fn a_failed_append_leaves_the_state_unchanged_and_recovers() {
        let t = ledger_on(Engine::Redb);
        t.accept(first_events(3, T0));
        let l = &t.ledger;
        t.clock.advance(1_000);
        let cp = l.checkpoint().unwrap();
        let root = l.root_at(6).unwrap();
        t.break_commits();
        let err = l.append(first_events(100, T0).into_iter().map(Ok).collect());
        assert!(matches!(err, Err(LedgerError::Store(_))), "{:?}", err.err());
        assert_eq!(l.size(), 6);
        assert_eq!(l.root_at(6).unwrap(), root);
        assert_eq!(l.latest().checkpoint, cp);
        let st = l.state.lock().unwrap();
        assert_eq!(st.map.root(), l.latest().map_leaf.map_root);
        drop(st);
        // The next write reopens the store and goes on from what is durable.
        assert_eq!(t.accept(first_events(2, T0)).len(), 2);
        assert_eq!(l.size(), 8);
        assert_eq!(l.root_at(6).unwrap(), root);
    }
}
