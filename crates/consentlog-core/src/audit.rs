//! Auditor replay: recompute every checkpoint's root and every map leaf's root from the leaves
//! alone, and check every rule that the leaves (and, where present, the openings) let an
//! outsider check (docs/FORMAT.md §10 and "Audit"): the genesis leaf first, each key's public
//! chain (`prev` = the key's head, `seq` = its seq + 1), the time invariant around map leaves,
//! and each opening against its leaf. Fed in chunks by whoever reads the ledger or an export;
//! I/O-free.

use std::collections::HashMap;

pub use crate::state_keys::StateKeys;

use ed25519_dalek::VerifyingKey;

use super::event::{signatures_valid, subject_keys, SignedEvent, SIGNATURE_CHUNK};
use super::hash::Hash;
use super::leaf::{EventLeaf, Leaf};
use super::map::source::MapSource;
use super::map::state_map::latest_per_key;
use super::map::{MapValue, StateMap};
use super::note::{self, SignedCheckpoint};
use super::opening::Opening;
pub use super::proof::logged_event::{check_opening, check_opening_given, opening_key};
use super::proof::EventError;
use super::reject::Reject;
use super::rules::{check_chain, Head};
use super::tlog::{Frontier, Sha256Hasher};
use super::vrf::{VrfError, VrfPublicKey};

/// One broken rule, with the leaf index where it applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub index: Option<u64>,
    pub problem: Problem,
}

impl Violation {
    /// A violation found outside the replay, by its caller ([`Problem::Other`]).
    pub fn other(index: Option<u64>, message: impl Into<String>) -> Self {
        Violation {
            index,
            problem: Problem::Other(message.into()),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "leaf {i}: {}", self.problem),
            None => write!(f, "{}", self.problem),
        }
    }
}

/// What a replay found wrong. Checkpoints are numbered from 0 in the order given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A checkpoint note does not open under the log key.
    #[error("checkpoint {n}: {err}")]
    Checkpoint {
        n: usize,
        #[source]
        err: note::NoteError,
    },
    #[error("checkpoint {n} is for origin {origin:?}, not {want:?}")]
    CheckpointOrigin {
        n: usize,
        origin: String,
        want: String,
    },
    /// A checkpoint is smaller than the one before it.
    #[error("checkpoint {n} (size {size}) goes back from the previous (size {prev_size})")]
    CheckpointGoesBack { n: usize, size: u64, prev_size: u64 },
    #[error("no checkpoints")]
    NoCheckpoints,
    /// The leaves up to a checkpoint's size do not hash to its root.
    #[error("checkpoint {n}: root at size {size} does not match the leaves")]
    LogRoot { n: usize, size: u64 },
    /// Leaf 0 is not a genesis leaf.
    #[error("the first leaf is a {kind} leaf, not the genesis leaf")]
    NoGenesis { kind: &'static str },
    /// A genesis leaf anywhere but at index 0.
    #[error("a genesis leaf after leaf 0")]
    GenesisNotFirst,
    #[error("the genesis leaf is for origin {got:?}, not {want:?}")]
    GenesisOrigin { got: String, want: String },
    #[error("the genesis leaf's VRF key is not a valid ristretto255 public key")]
    GenesisVrfKey,
    /// A map leaf's root is not the root of the map replayed from the event leaves before it
    /// (a stale, wrong or invented value for some key).
    #[error("map leaf root does not match the map replayed from the event leaves before it")]
    MapRoot,
    #[error(
        "map leaf time {} is in the future",
        crate::time::Both(*.time)
    )]
    MapInFuture { time: u64 },
    /// The time invariant: a leaf after a map leaf must be strictly later than it.
    #[error(
        "time {} is not after the time {} of the map leaf before it",
        crate::time::Both(*.time),
        crate::time::Both(*.map_time)
    )]
    NotAfterMap { time: u64, map_time: u64 },
    /// The time invariant: a map leaf must not be earlier than an event leaf before it.
    #[error(
        "map leaf time {} is before the integrated_at {} of an event before it",
        crate::time::Both(*.time),
        crate::time::Both(*.integrated_at)
    )]
    MapBeforeEvent { time: u64, integrated_at: u64 },
    #[error(
        "integrated_at {} is before the previous event leaf's {}",
        crate::time::Both(*.integrated_at),
        crate::time::Both(*.previous)
    )]
    TimeGoesBack { integrated_at: u64, previous: u64 },
    #[error(
        "time {} is before the genesis time {}",
        crate::time::Both(*.time),
        crate::time::Both(*.genesis_time)
    )]
    BeforeGenesis { time: u64, genesis_time: u64 },
    /// An event leaf does not continue its key's public chain: its `prev` is not the index of
    /// the key's latest event leaf, or its `seq` is not one more than that leaf's (two leaves
    /// naming the same `prev` are a fork).
    #[error(
        "event leaf names prev {got_prev:?} and seq {got_seq}; the key's chain expects prev \
         {want_prev:?} and seq {want_seq}"
    )]
    PublicChain {
        got_prev: Option<u64>,
        got_seq: u64,
        want_prev: Option<u64>,
        want_seq: u64,
    },
    /// The leaf's opening fails its checks.
    #[error("{0}")]
    Opening(#[from] EventError),
    /// The signed event does not continue the previous signed event of its key (seq, prev).
    #[error("chain: {0}")]
    Chain(#[source] Reject),
    #[error(
        "the latest checkpoint covers {covered} leaves but only {replayed} were replayed \
         (truncated?)"
    )]
    Truncated { covered: u64, replayed: u64 },
    #[error(
        "the latest checkpoint covers {covered} leaves; {uncovered} leaves after it are not \
         covered by any checkpoint"
    )]
    Uncovered { covered: u64, uncovered: u64 },
    /// [`MAX_VIOLATIONS`] were listed; the rest are not.
    #[error("too many violations; the rest are not listed")]
    TooMany,
    /// Found outside the replay by its caller (a ledger's stored structures, a server's
    /// answers), in the caller's words.
    #[error("{0}")]
    Other(String),
}

/// The outcome of a replay.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Leaves replayed, of every kind.
    pub leaves: u64,
    pub events: u64,
    pub map_leaves: u64,
    pub checkpoints: usize,
    pub openings_checked: u64,
    pub openings_missing: u64,
    pub violations: Vec<Violation>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// An event leaf's opening with the event hash and the opening's checks.
type CheckedOpening = (Opening, Hash, Result<(), EventError>);

/// A leaf, its leaf hash, and for an event leaf its checked opening if given.
type CheckedLeaf = (Leaf, Hash, Option<CheckedOpening>);

/// Leaves checked on their own (commitments, signatures, fields): the part of a replay that
/// needs no state, made by [`Auditor::check_chunk`] on all cores, possibly while the auditor
/// replays the chunk before.
pub struct CheckedChunk(Vec<CheckedLeaf>);

impl CheckedChunk {
    /// The number of leaves.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the chunk holds no leaf.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a replay keeps per key in a [`KeyStore`]: the key's latest event leaf as of the
/// latest map leaf (its index, its `seq` and its leaf hash: the public head and the map value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredKey {
    pub index: u64,
    pub seq: u64,
    pub leaf_hash: Hash,
}

/// Where an auditor keeps what it knows per key outside memory (a replaying witness: its own
/// database), so that its memory does not grow with the log: every key's public head and the
/// state map's keys below the map's stubs. The auditor reads it and hands it what changed at
/// each map leaf ([`KeyStore::put`]); the store decides when that reaches its disk (reads must
/// see every put at once). The core does no I/O: the caller brings the store.
pub trait KeyStore: Send {
    /// The key's entry, as last put.
    fn get(&self, key: &Hash) -> Result<Option<StoredKey>, String>;
    /// Every entry with a key in `lo..hi` (`hi` None: to the end), sorted by key.
    fn range(&self, lo: &Hash, hi: Option<&Hash>) -> Result<Vec<(Hash, StoredKey)>, String>;
    /// Records the entries of the keys that changed, as of a map leaf: sorted by key, each
    /// key once.
    fn put(&mut self, entries: Vec<(Hash, StoredKey)>) -> Result<(), String>;
}

/// A [`KeyStore`] as the source of the state map's keys below its stubs.
struct KeySource<'a>(&'a dyn KeyStore);

impl MapSource for KeySource<'_> {
    type Error = String;

    fn load(&self, prefix: &Hash, bits: usize) -> Result<Vec<(Hash, MapValue)>, String> {
        let (lo, hi) = crate::map::prefix_bounds(prefix, bits);
        Ok(self
            .0
            .range(&lo, hi.as_ref())?
            .into_iter()
            .map(|(k, v)| {
                let value = MapValue {
                    index: v.index,
                    leaf_hash: v.leaf_hash,
                };
                (k, value)
            })
            .collect())
    }
}

/// A key's latest event leaf in the public chain.
#[derive(Clone, Copy)]
struct PublicHead {
    index: u64,
    seq: u64,
}

/// Streaming replay state.
pub struct Auditor {
    origin: String,
    now: u64,
    checkpoints: Vec<SignedCheckpoint>,
    /// Next checkpoint (by position) whose size has not been reached.
    next_cp: usize,
    frontier: Frontier,
    map: StateMap,
    pending: Vec<(Hash, MapValue)>,
    genesis_time: u64,
    /// The VRF key the genesis leaf names.
    vrf_key: Option<VrfPublicKey>,
    /// The state keys checked so far (each triple's VRF proof once per replay).
    state_keys: std::sync::Arc<StateKeys>,
    /// Latest event leaf time.
    last_time: u64,
    /// Time of the latest map leaf.
    last_map_time: Option<u64>,
    /// Every key's public chain head (with a [`KeyStore`]: of the keys changed since the
    /// latest map leaf; the others are in the store).
    heads: HashMap<Hash, PublicHead>,
    /// Where the per-key state lives outside memory, if anywhere.
    keys: Option<Box<dyn KeyStore>>,
    /// The store failed: the replay stopped at the leaf it was replaying.
    storage_error: Option<String>,
    /// Every key's latest signed event (seq, event hash), for keys whose latest event leaf
    /// came with its opening; absent for a key with a public head: its opening was erased.
    signed: HashMap<Hash, Head>,
    report: Report,
}

/// Most violations kept in a report (the count beyond is summarised).
pub const MAX_VIOLATIONS: usize = 1000;

impl Auditor {
    /// Starts a replay: verifies every checkpoint note under `log_key` and their order.
    /// `now` bounds map leaf times (none may be in the future).
    pub fn new(log_key: &VerifyingKey, origin: &str, notes: &[String], now: u64) -> Self {
        let mut report = Report::default();
        let mut checkpoints = Vec::new();
        let mut found = |problem| {
            report.violations.push(Violation {
                index: None,
                problem,
            })
        };
        for (n, text) in notes.iter().enumerate() {
            match note::open(text, log_key) {
                Err(err) => found(Problem::Checkpoint { n, err }),
                Ok(cp) => {
                    if cp.origin != origin {
                        found(Problem::CheckpointOrigin {
                            n,
                            origin: cp.origin.clone(),
                            want: origin.to_string(),
                        });
                    }
                    if let Some(prev) = checkpoints.last() {
                        let prev: &SignedCheckpoint = prev;
                        if cp.size < prev.size {
                            found(Problem::CheckpointGoesBack {
                                n,
                                size: cp.size,
                                prev_size: prev.size,
                            });
                        }
                    }
                    checkpoints.push(cp);
                }
            }
        }
        if notes.is_empty() {
            found(Problem::NoCheckpoints);
        }
        report.checkpoints = checkpoints.len();
        let mut a = Auditor {
            origin: origin.to_string(),
            now,
            checkpoints,
            next_cp: 0,
            frontier: Frontier::new(),
            map: StateMap::new(),
            pending: Vec::new(),
            genesis_time: 0,
            vrf_key: None,
            state_keys: Default::default(),
            last_time: 0,
            last_map_time: None,
            heads: HashMap::new(),
            keys: None,
            storage_error: None,
            signed: HashMap::new(),
            report,
        };
        a.check_reached_checkpoints();
        a
    }

    /// This replay, keeping its per-key state in `store` (which must be empty) instead of
    /// memory, and the state map's nodes in memory within `map_cap` bytes (the keys below its
    /// stubs are read back from the store): memory no longer grows with the number of keys,
    /// except for the keys changed since the latest map leaf. Before any leaf is pushed.
    pub fn with_key_store(mut self, store: Box<dyn KeyStore>, map_cap: usize) -> Self {
        assert_eq!(self.size(), 0, "a key store is given before any leaf");
        self.keys = Some(store);
        // Every key in memory while the map's nodes fit the cap (no stub to load back and
        // re-hash), then subtrees of two keys and more out of it.
        self.map = StateMap::in_memory_until(map_cap);
        self
    }

    /// Why the key store failed, if it did: the replay stopped (see [`Auditor::size`]), and
    /// its violations may be incomplete.
    pub fn storage_error(&self) -> Option<&str> {
        self.storage_error.as_deref()
    }

    /// The key's public head: changed since the latest map leaf, or in the store.
    fn head_of(&mut self, key: &Hash) -> Option<PublicHead> {
        if let Some(h) = self.heads.get(key) {
            return Some(*h);
        }
        let store = self.keys.as_ref()?;
        match store.get(key) {
            Ok(v) => v.map(|v| PublicHead {
                index: v.index,
                seq: v.seq,
            }),
            Err(e) => {
                self.storage_error.get_or_insert(e);
                None
            }
        }
    }

    /// The pending map values into the map (and, with a key store, the changed keys into it).
    fn apply_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // Sorted by key, each key's latest value, as the map and the store take them.
        let mut distinct = std::mem::take(&mut self.pending);
        latest_per_key(&mut distinct);
        match &mut self.keys {
            None => self.map.insert_batch(&distinct),
            Some(store) => {
                let inserted = self
                    .map
                    .insert_batch_from(&distinct, &KeySource(&**store))
                    .map_err(|e| e.to_string());
                let put = inserted.and_then(|()| {
                    let heads = &self.heads;
                    let entries = distinct
                        .iter()
                        .map(|(k, v)| {
                            let seq = heads.get(k).map_or(0, |h| h.seq);
                            let entry = StoredKey {
                                index: v.index,
                                seq,
                                leaf_hash: v.leaf_hash,
                            };
                            (*k, entry)
                        })
                        .collect();
                    store.put(entries)
                });
                match put {
                    Ok(()) => self.heads.clear(),
                    Err(e) => {
                        self.storage_error.get_or_insert(e);
                    }
                }
            }
        }
        distinct.clear();
        self.pending = distinct;
    }

    fn violation(&mut self, index: Option<u64>, problem: Problem) {
        if self.report.violations.len() < MAX_VIOLATIONS {
            self.report.violations.push(Violation { index, problem });
        } else if self.report.violations.len() == MAX_VIOLATIONS {
            self.report.violations.push(Violation {
                index: None,
                problem: Problem::TooMany,
            });
        }
    }

    /// Compares roots at every checkpoint whose size the replay has reached.
    fn check_reached_checkpoints(&mut self) {
        let size = self.frontier.size().0;
        while self.next_cp < self.checkpoints.len() && self.checkpoints[self.next_cp].size <= size {
            let n = self.next_cp;
            self.next_cp += 1;
            let cp = &self.checkpoints[n];
            if cp.size < size {
                // Only reachable when sizes go backwards, which `new` already reported.
                continue;
            }
            if self.frontier.root(&Sha256Hasher) != cp.root {
                self.violation(None, Problem::LogRoot { n, size });
            }
        }
    }

    /// How many leaves have been replayed.
    pub fn size(&self) -> u64 {
        self.frontier.size().0
    }

    /// The RFC 6962 root of the leaves replayed so far.
    pub fn root(&self) -> Hash {
        self.frontier.root(&Sha256Hasher)
    }

    /// The violations found so far (a replay that follows a live log looks after each chunk;
    /// [`Auditor::finish`] adds the end-of-log checks).
    pub fn violations(&self) -> &[Violation] {
        &self.report.violations
    }

    /// The origin the replay expects.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The log's VRF key, once the replay has seen the genesis leaf.
    pub fn vrf_key(&self) -> Option<VrfPublicKey> {
        self.vrf_key
    }

    /// The state keys this replay has checked, shared with whoever checks its chunks.
    pub fn state_keys(&self) -> std::sync::Arc<StateKeys> {
        self.state_keys.clone()
    }

    /// The per-leaf checks that need no state, on all cores, for a log of `origin` whose VRF
    /// key is `vrf_key` (None: the chunk starts with the genesis leaf, which names it). Each
    /// triple's VRF proof is checked once per replay: `known` remembers the answers.
    pub fn check_chunk(
        origin: &str,
        vrf_key: Option<VrfPublicKey>,
        known: &StateKeys,
        chunk: Vec<(Leaf, Option<Opening>)>,
    ) -> CheckedChunk {
        let vrf_key = vrf_key.or_else(|| match chunk.first() {
            Some((Leaf::Genesis(g), _)) => VrfPublicKey::from_bytes(g.vrf_key).ok(),
            _ => None,
        });
        let keys = subject_keys(
            chunk
                .iter()
                .filter_map(|(_, o)| o.as_ref().map(|o| &o.event)),
        );
        // The state key of each triple (with its proof): from `known`, or checked once here.
        let triples: std::collections::HashSet<(Vec<u8>, [u8; 80])> = chunk
            .iter()
            .filter_map(|(_, o)| {
                let o = o.as_ref()?;
                Some((o.event.event.state_key_input().alpha(), o.vrf.0))
            })
            .collect();
        let (mut state_keys, todo) = known.split(triples);
        let fresh: HashMap<(Vec<u8>, [u8; 80]), Result<Hash, VrfError>> =
            crate::par::map_each(todo, |(alpha, proof)| match &vrf_key {
                None => Err(VrfError::PublicKey),
                Some(k) => k
                    .check(alpha, &crate::vrf::VrfProof(*proof))
                    .map(|beta| crate::vrf::state_key(&beta)),
            });
        known.remember(&fresh);
        state_keys.extend(fresh);
        let state_keys = &state_keys;
        CheckedChunk(crate::par::map_parts(chunk, SIGNATURE_CHUNK, |part| {
            let signed: Vec<&SignedEvent> = part
                .iter()
                .filter_map(|(_, o)| Some(&o.as_ref()?.event))
                .collect();
            let mut valid = signatures_valid(&signed, &keys).into_iter();
            let keys = &keys;
            part.into_iter()
                .map(move |(leaf, o)| {
                    let hash = leaf.leaf_hash();
                    let o = o.map(|o| {
                        let ok = valid.next().expect("one answer per opening");
                        let key = &keys[&o.event.event.subject];
                        let triple = (o.event.event.state_key_input().alpha(), o.vrf.0);
                        let state_key = &state_keys[&triple];
                        let r = match &leaf {
                            Leaf::Event(e) => {
                                check_opening_given(e, &o, origin, state_key, key, |_| ok)
                            }
                            _ => Err(EventError::Leaf(crate::leaf::LeafError::WrongKind {
                                want: "event",
                                got: leaf.kind().as_str(),
                            })),
                        };
                        let h = o.event.event_hash();
                        (o, h, r)
                    });
                    (leaf, hash, o)
                })
                .collect()
        }))
    }

    /// Replays the next leaves in order.
    pub fn push_chunk(&mut self, chunk: Vec<(Leaf, Option<Opening>)>) {
        let checked = Self::check_chunk(&self.origin, self.vrf_key, &self.state_keys, chunk);
        self.push_checked(checked);
    }

    /// Replays the next leaves in order, public leaves only (no openings), each with its leaf
    /// hash: that of the bytes it was strictly decoded from (a replaying witness hashes them as
    /// it fetches them). The same replay as [`Auditor::push_chunk`] without openings.
    pub fn push_public(&mut self, leaves: Vec<(Leaf, Hash)>) {
        for (leaf, hash) in leaves {
            if self.storage_error.is_some() {
                return;
            }
            self.push_leaf(leaf, hash, None);
        }
    }

    /// Replays the next leaves in order, already through [`Auditor::check_chunk`] for this
    /// replay's origin.
    pub fn push_checked(&mut self, checked: CheckedChunk) {
        for (leaf, hash, o) in checked.0 {
            if self.storage_error.is_some() {
                return;
            }
            self.push_leaf(leaf, hash, o);
        }
    }

    /// Replays the next leaf (the key store has not failed).
    fn push_leaf(&mut self, leaf: Leaf, hash: Hash, o: Option<CheckedOpening>) {
        let i = self.frontier.size().0;
        match (i, &leaf) {
            (0, Leaf::Genesis(g)) => {
                if g.origin != self.origin {
                    let problem = Problem::GenesisOrigin {
                        got: g.origin.clone(),
                        want: self.origin.clone(),
                    };
                    self.violation(Some(0), problem);
                }
                self.genesis_time = g.genesis_time;
                self.vrf_key = VrfPublicKey::from_bytes(g.vrf_key).ok();
                if self.vrf_key.is_none() {
                    self.violation(Some(0), Problem::GenesisVrfKey);
                }
            }
            (0, other) => {
                let kind = other.kind().as_str();
                self.violation(Some(0), Problem::NoGenesis { kind });
            }
            (_, Leaf::Genesis(_)) => self.violation(Some(i), Problem::GenesisNotFirst),
            (_, Leaf::Event(e)) => self.replay_event(i, e, hash, o),
            (_, Leaf::Map(m)) => {
                self.report.map_leaves += 1;
                self.check_time(i, m.time);
                if m.time < self.last_time {
                    let problem = Problem::MapBeforeEvent {
                        time: m.time,
                        integrated_at: self.last_time,
                    };
                    self.violation(Some(i), problem);
                }
                if m.time > self.now {
                    self.violation(Some(i), Problem::MapInFuture { time: m.time });
                }
                self.last_map_time = Some(m.time);
                self.apply_pending();
                if self.storage_error.is_some() {
                    return;
                }
                if self.map.root() != m.map_root {
                    self.violation(Some(i), Problem::MapRoot);
                }
            }
        }
        self.frontier.append_with(&Sha256Hasher, hash, |_, _, _| {});
        self.report.leaves += 1;
        self.check_reached_checkpoints();
    }

    /// The time rules every leaf after genesis obeys: not before genesis, and strictly after
    /// the latest map leaf.
    fn check_time(&mut self, i: u64, time: u64) {
        if time < self.genesis_time {
            let genesis_time = self.genesis_time;
            self.violation(Some(i), Problem::BeforeGenesis { time, genesis_time });
        }
        if let Some(map_time) = self.last_map_time.filter(|t| time <= *t) {
            self.violation(Some(i), Problem::NotAfterMap { time, map_time });
        }
    }

    fn replay_event(&mut self, i: u64, e: &EventLeaf, hash: Hash, o: Option<CheckedOpening>) {
        self.report.events += 1;
        self.check_time(i, e.integrated_at);
        if e.integrated_at < self.last_time {
            let previous = self.last_time;
            let problem = Problem::TimeGoesBack {
                integrated_at: e.integrated_at,
                previous,
            };
            self.violation(Some(i), problem);
        }
        self.last_time = self.last_time.max(e.integrated_at);
        let head = self.head_of(&e.key);
        let (want_prev, want_seq) = match head {
            None => (None, 0),
            Some(h) => (Some(h.index), h.seq + 1),
        };
        if e.prev != want_prev || e.seq != want_seq {
            let problem = Problem::PublicChain {
                got_prev: e.prev,
                got_seq: e.seq,
                want_prev,
                want_seq,
            };
            self.violation(Some(i), problem);
        }
        self.heads.insert(
            e.key,
            PublicHead {
                index: i,
                seq: e.seq,
            },
        );
        match o {
            None => {
                // The key's latest opening is missing: no signed head (a key with a public
                // head and no signed one is one whose latest opening was erased). Nothing is
                // kept per key for a replay of public leaves only.
                self.report.openings_missing += 1;
                self.signed.remove(&e.key);
            }
            Some((o, event_hash, r)) => {
                self.report.openings_checked += 1;
                if let Err(err) = r {
                    self.violation(Some(i), Problem::Opening(err));
                }
                // After an erased opening the person's prev hash cannot be checked across the
                // gap (the public chain above still is).
                let before = self.signed.get(&e.key);
                let erased = before.is_none() && head.is_some();
                if !erased {
                    if let Err(r) = check_chain(&o.event, before) {
                        self.violation(Some(i), Problem::Chain(r));
                    }
                }
                let signed = Head {
                    index: i,
                    seq: o.event.event.seq,
                    event_hash,
                };
                self.signed.insert(e.key, signed);
            }
        }
        self.pending.push((
            e.key,
            MapValue {
                index: i,
                leaf_hash: hash,
            },
        ));
    }

    /// Ends the replay: the last checkpoint must cover every leaf.
    pub fn finish(mut self) -> Report {
        let size = self.frontier.size().0;
        match self.checkpoints.last() {
            Some(last) if last.size == size => {}
            Some(last) if last.size > size => {
                let problem = Problem::Truncated {
                    covered: last.size,
                    replayed: size,
                };
                self.violation(None, problem);
            }
            Some(last) => {
                let problem = Problem::Uncovered {
                    covered: last.size,
                    uncovered: size - last.size,
                };
                self.violation(None, problem);
            }
            None => {}
        }
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaf::{MapLeaf, LEAF_VERSION};
    use crate::note::{Checkpoint, NoteError};
    use crate::testutil::{Log, ORIGIN, T0};

    const NOW: u64 = T0 + 3_600_000;

    fn chunk(log: &Log, openings: bool) -> Vec<(Leaf, Option<Opening>)> {
        log.leaves
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let o = log.openings.get(&(i as u64)).filter(|_| openings).cloned();
                (l.clone(), o)
            })
            .collect()
    }

    /// The problems a replay of `log`'s leaves against `notes` finds.
    fn problems(log: &Log, notes: &[String], openings: bool) -> Vec<Problem> {
        let mut a = Auditor::new(&log.key.verifying_key(), ORIGIN, notes, NOW);
        a.push_chunk(chunk(log, openings));
        a.finish()
            .violations
            .into_iter()
            .map(|v| v.problem)
            .collect()
    }

    fn note(log: &Log, size: u64, root: Hash) -> String {
        Checkpoint {
            origin: ORIGIN,
            size,
            root,
        }
        .sign(&log.key)
    }

    fn map_leaf(time: u64, map_root: Hash) -> Leaf {
        Leaf::Map(MapLeaf {
            version: LEAF_VERSION,
            time,
            map_root,
        })
    }

    #[test]
    fn checkpoint_problems() {
        let (mut log, _) = Log::chain_of_two();
        let whole = log.checkpoint(T0 + 120_000).note;
        assert_eq!(problems(&log, std::slice::from_ref(&whole), true), []);
        assert_eq!(problems(&log, &[], true), [Problem::NoCheckpoints]);
        assert!(matches!(
            &problems(&log, &["x".into(), whole.clone()], true)[..],
            [Problem::Checkpoint {
                n: 0,
                err: NoteError::Malformed(_)
            }]
        ));
        let mut a = Auditor::new(
            &log.key.verifying_key(),
            "other",
            std::slice::from_ref(&whole),
            NOW,
        );
        a.push_chunk(chunk(&log, false));
        let found: Vec<_> = a
            .finish()
            .violations
            .into_iter()
            .map(|v| v.problem)
            .collect();
        assert_eq!(
            found,
            [
                Problem::CheckpointOrigin {
                    n: 0,
                    origin: ORIGIN.into(),
                    want: "other".into()
                },
                Problem::GenesisOrigin {
                    got: ORIGIN.into(),
                    want: "other".into()
                },
            ]
        );
        let earlier = note(
            &log,
            1,
            crate::tlog::tree_hash(&Sha256Hasher, &log.tree, crate::tlog::TreeSize(1)).unwrap(),
        );
        assert!(problems(&log, &[whole.clone(), earlier], true).contains(
            &Problem::CheckpointGoesBack {
                n: 1,
                size: 1,
                prev_size: 4
            }
        ));
        let bad_root = note(&log, 4, [0; 32]);
        assert_eq!(
            problems(&log, &[bad_root], true),
            [Problem::LogRoot { n: 0, size: 4 }]
        );
        let mut first = Log::new();
        first.append(log.openings[&1].event.clone());
        assert_eq!(
            problems(&first, std::slice::from_ref(&whole), true),
            [Problem::Truncated {
                covered: 4,
                replayed: 2
            }]
        );
        let two = first.sign().note;
        assert_eq!(
            problems(&log, &[two], false),
            [Problem::Uncovered {
                covered: 2,
                uncovered: 2
            }]
        );
    }

    /// The map-root lie: a map leaf that still shows the opt-in as the key's latest after the
    /// opt-out (issue 11, attack 1) is found by the replay, under a checkpoint the log signed.
    #[test]
    fn a_lying_map_leaf_is_found() {
        let (mut log, key) = Log::chain_of_two();
        let mut stale = StateMap::new();
        let first = match &log.leaves[1] {
            Leaf::Event(e) => *e,
            _ => unreachable!(),
        };
        stale.insert(
            key,
            MapValue {
                index: 1,
                leaf_hash: first.leaf_hash(),
            },
        );
        log.push(map_leaf(T0 + 120_000, stale.root()));
        let cp = log.sign().note;
        let found = problems(&log, std::slice::from_ref(&cp), false);
        assert_eq!(found, [Problem::MapRoot]);
        let mut a = Auditor::new(&log.key.verifying_key(), ORIGIN, &[cp], NOW);
        a.push_chunk(chunk(&log, false));
        assert_eq!(
            a.finish().violations[0].to_string(),
            format!("leaf 3: {}", Problem::MapRoot)
        );
    }

    #[test]
    fn leaf_problems() {
        // Times: the second event leaf is integrated before the first (another key, so the
        // chain is fine).
        let mut log = Log::new();
        let ev = log.event(None, true, T0);
        let o = log.opening([1; 32], ev);
        let k = log.key_of(&o.event).0;
        log.append_leaf(o.leaf(T0 + 500, k, None), o.clone());
        log.append_leaf(o.leaf(T0 + 250, [1; 32], None), o.clone());
        let cp = log.checkpoint(T0 + 1_000).note;
        let found = problems(&log, std::slice::from_ref(&cp), false);
        assert_eq!(
            found,
            [Problem::TimeGoesBack {
                integrated_at: T0 + 250,
                previous: T0 + 500
            }]
        );
        let v = Violation {
            index: Some(2),
            problem: found[0].clone(),
        };
        assert_eq!(
            v.to_string(),
            format!(
                "leaf 2: integrated_at {} is before the previous event leaf's {}",
                crate::time::Both(T0 + 250),
                crate::time::Both(T0 + 500)
            )
        );

        // The re-logged opt-out (issue 11, attack 2): a second leaf for a key that names the
        // same prev as one before it forks the public chain, openings or not.
        let (mut log, key) = Log::chain_of_two();
        let copy = log.openings[&2].clone();
        let forked = copy.leaf(T0 + 60_400, key, Some(1));
        log.append_leaf(forked, copy);
        let cp = log.checkpoint(T0 + 120_000).note;
        for openings in [false, true] {
            let found = problems(&log, std::slice::from_ref(&cp), openings);
            assert!(
                found.contains(&Problem::PublicChain {
                    got_prev: Some(1),
                    got_seq: 1,
                    want_prev: Some(2),
                    want_seq: 2
                }),
                "{found:?}"
            );
        }

        // Leaves out of time order around a map leaf, and a map leaf before an event it
        // covers.
        let mut log = Log::new();
        let ev = log.event(None, true, T0);
        log.append(ev.clone());
        log.checkpoint(T0 + 100);
        let late = log.event(Some(&ev), false, T0 + 50);
        let o2 = log.opening([3; 32], late);
        let leaf = log.leaf_for(&o2, T0 + 50);
        log.append_leaf(leaf, o2);
        log.checkpoint(T0 + 100);
        let cp = log.sign().note;
        let found = problems(&log, &[cp], true);
        assert!(found.contains(&Problem::MapBeforeEvent {
            time: T0 + 100,
            integrated_at: T0 + 250
        }));
        assert!(found.contains(&Problem::NotAfterMap {
            time: T0 + 50,
            map_time: T0 + 100
        }));
        assert!(found.contains(&Problem::NotAfterMap {
            time: T0 + 100,
            map_time: T0 + 100
        }));

        // An opening that does not open its leaf; a genesis leaf out of place; a map leaf in
        // the future.
        let mut log = Log::new();
        let mut wrong = o.clone();
        wrong.nonce = [2; 32];
        log.append_leaf(o.leaf(T0 + 250, k, None), wrong);
        let g = log.leaves[0].clone();
        log.push(g);
        log.checkpoint(NOW + 1);
        let cp = log.sign().note;
        let found = problems(&log, &[cp], true);
        assert_eq!(
            found,
            [
                Problem::Opening(EventError::Commitment),
                Problem::GenesisNotFirst,
                Problem::MapInFuture { time: NOW + 1 }
            ]
        );
        assert_eq!(
            Violation::other(None, "stored elsewhere").to_string(),
            "stored elsewhere"
        );
        let mut log = Log::new();
        log.leaves.clear();
        log.tree = crate::tlog::MemoryTree::new(Sha256Hasher);
        log.push(map_leaf(T0, StateMap::new().root()));
        let cp = log.sign().note;
        assert_eq!(
            problems(&log, &[cp], true),
            [Problem::NoGenesis { kind: "map" }]
        );
    }

    /// Each triple's VRF proof is checked once per replay, however many chunks its events
    /// are in.
    #[test]
    fn each_triples_vrf_proof_is_checked_once_per_replay() {
        let (mut log, _) = Log::chain_of_two();
        let cp = log.checkpoint(T0 + 120_000).note;
        let mut a = Auditor::new(&log.key.verifying_key(), ORIGIN, &[cp], NOW);
        let all = chunk(&log, true);
        for leaf in all {
            a.push_chunk(vec![leaf]);
        }
        assert_eq!(a.state_keys().len(), 1);
        let r = a.finish();
        assert!(r.ok(), "{:?}", r.violations);
        assert_eq!(r.openings_checked, 2);
    }

    /// A [`KeyStore`] in a sorted map, counting its puts.
    #[derive(Default)]
    struct SortedKeys(std::collections::BTreeMap<Hash, StoredKey>, usize);

    impl KeyStore for SortedKeys {
        fn get(&self, key: &Hash) -> Result<Option<StoredKey>, String> {
            Ok(self.0.get(key).copied())
        }
        fn range(&self, lo: &Hash, hi: Option<&Hash>) -> Result<Vec<(Hash, StoredKey)>, String> {
            let r: Vec<_> = match hi {
                Some(hi) => self.0.range(*lo..*hi).map(|(k, v)| (*k, *v)).collect(),
                None => self.0.range(*lo..).map(|(k, v)| (*k, *v)).collect(),
            };
            Ok(r)
        }
        fn put(&mut self, entries: Vec<(Hash, StoredKey)>) -> Result<(), String> {
            self.1 += entries.len();
            self.0.extend(entries);
            Ok(())
        }
    }

    /// A store that fails every read.
    struct Broken;

    impl KeyStore for Broken {
        fn get(&self, _: &Hash) -> Result<Option<StoredKey>, String> {
            Err("disk gone".into())
        }
        fn range(&self, _: &Hash, _: Option<&Hash>) -> Result<Vec<(Hash, StoredKey)>, String> {
            Err("disk gone".into())
        }
        fn put(&mut self, _: Vec<(Hash, StoredKey)>) -> Result<(), String> {
            Err("disk gone".into())
        }
    }

    /// With its per-key state in a key store (and a map whose keys live there), a public
    /// replay finds the same problems as in memory: none in an honest log, the lying map leaf
    /// and the forked chain in the others; a failing store stops the replay and says so.
    #[test]
    fn a_replay_with_a_key_store_finds_what_one_in_memory_finds() {
        let public = |log: &Log| -> Vec<(Leaf, Hash)> {
            log.leaves
                .iter()
                .map(|l| (l.clone(), l.leaf_hash()))
                .collect()
        };
        // Caps of 1 MiB (every key stays in memory) and of 200 bytes (keys are moved out of
        // memory at once and read back from the store).
        let run_capped = |log: &Log, cp: &str, store: Option<Box<dyn KeyStore>>, cap: usize| {
            let mut a = Auditor::new(&log.key.verifying_key(), ORIGIN, &[cp.to_string()], NOW);
            if let Some(s) = store {
                a = a.with_key_store(s, cap);
            }
            for leaf in public(log) {
                a.push_public(vec![leaf]);
            }
            let err = a.storage_error().map(String::from);
            let root = a.root();
            let problems: Vec<Problem> = a
                .finish()
                .violations
                .into_iter()
                .map(|v| v.problem)
                .collect();
            (problems, err, root)
        };
        let run = |log: &Log, cp: &str, store: Option<Box<dyn KeyStore>>| {
            let small = store.is_some().then(|| {
                let r = run_capped(log, cp, Some(Box::new(SortedKeys::default())), 200);
                (r.0, r.1)
            });
            let r = run_capped(log, cp, store, 1 << 20);
            if let Some(small) = small.filter(|_| r.1.is_none()) {
                assert_eq!(small, (r.0.clone(), None), "a small cap finds the same");
            }
            r
        };
        // Many keys, two map leaves, chains across them.
        let mut log = Log::new();
        let mut heads = Vec::new();
        for k in 0..40u8 {
            let ev = log.event(None, true, T0 + k as u64);
            let o = log.opening([k; 32], ev);
            let key = log.key_of(&o.event).0;
            let mut key = key;
            key[0] = k.wrapping_mul(37);
            log.append_leaf(o.leaf(T0 + 100, key, None), o.clone());
            heads.push((key, log.leaves.len() as u64 - 1, o));
        }
        log.checkpoint(T0 + 1_000);
        for (key, prev, o) in heads.iter().take(25) {
            let mut leaf = o.leaf(T0 + 2_000, *key, Some(*prev));
            leaf.seq = 1;
            log.append_leaf(leaf, o.clone());
        }
        log.checkpoint(T0 + 3_000);
        let cp = log.sign().note;
        let (mem, _, root) = run(&log, &cp, None);
        assert_eq!(mem, []);
        let (stored, err, root2) = run(&log, &cp, Some(Box::new(SortedKeys::default())));
        assert_eq!((stored, err, root2), (mem, None, root));

        // The lying map leaf and the fork.
        let (mut lying, key) = Log::chain_of_two();
        let mut stale = StateMap::new();
        let first = match &lying.leaves[1] {
            Leaf::Event(e) => *e,
            _ => unreachable!(),
        };
        let value = MapValue {
            index: 1,
            leaf_hash: first.leaf_hash(),
        };
        stale.insert(key, value);
        lying.push(map_leaf(T0 + 120_000, stale.root()));
        let copy = lying.openings[&2].clone();
        lying.append_leaf(copy.leaf(T0 + 120_400, key, Some(1)), copy);
        let cp = lying.sign().note;
        let (mem, _, _) = run(&lying, &cp, None);
        assert!(mem.contains(&Problem::MapRoot), "{mem:?}");
        let (stored, err, _) = run(&lying, &cp, Some(Box::new(SortedKeys::default())));
        assert_eq!((stored, err), (mem, None));

        let (_, err, _) = run(&log, &log.sign().note, Some(Box::new(Broken)));
        assert_eq!(err.as_deref(), Some("disk gone"));
    }

    #[test]
    fn too_many_problems() {
        let mut log = Log::new();
        let o = log.opening([1; 32], log.event(None, true, T0));
        let n = MAX_VIOLATIONS as u64 + 5;
        for i in 0..n {
            let mut key = [0; 32];
            key[..8].copy_from_slice(&i.to_le_bytes());
            log.append_leaf(o.leaf(T0 + n - i, key, None), o.clone());
        }
        let cp = log.checkpoint(T0 + n).note;
        let found = problems(&log, &[cp], false);
        assert_eq!(found.len(), MAX_VIOLATIONS + 1);
        assert_eq!(found.last(), Some(&Problem::TooMany));
    }
}
