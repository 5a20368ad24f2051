//! The ledger: appends events under the rules, keeps the Merkle log and the state map, signs
//! checkpoints and receipts, and builds proofs. It owns the log key and a [`Store`].
//!
//! Directory layout: `log.key` and `vrf.key` (0600), `log.pub`, `engine` (storage engine name)
//! and `db/`. The log (docs/FORMAT.md §3) starts with its genesis leaf; event leaves and map
//! leaves follow, and every stored checkpoint ends at a map leaf.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the [`Ledger`] type, its options and small accessors |
//! | `open.rs` | create, open, rebuild the state and check it against the latest checkpoint |
//! | `append.rs` | prechecks, the rules under the lock, one atomic batch per chunk |
//! | `fresh_keys.rs` | state keys computed for events not yet committed, so a triple is evaluated once |
//! | `receipts.rs` | receipts: one checkpoint signed per durable chunk, tlog-proofs under it |
//! | `checkpoint.rs` | appending map leaves, signing and storing checkpoints |
//! | `cosigned.rs` | witnesses' cosignatures on stored checkpoints |
//! | `schema.rs` | every table's key and value encoding |
//! | `error.rs` | [`LedgerError`] |
//! | `files.rs` | the directory's own files (`engine`, `log.key`, `log.pub`) |
//! | `testing.rs` | (tests only) ledgers on a manual clock, a store whose commits fail |

mod append;
pub mod checkpoint;
pub mod clock;
mod cosigned;
mod error;
mod files;
mod fresh_keys;
pub mod fsck;
pub mod leaves;
mod map_buckets;
pub mod migrate;
mod nodes;
mod open;
mod prove;
pub mod raw;
mod receipts;
pub mod schema;

#[cfg(test)]
mod testing;
mod verified_paths;

pub use append::{precheck, precheck_one, Prechecked};
pub use error::{Corrupt, CorruptKind, Invalid, Key, LedgerError};
pub use files::{compact, open_store, open_store_read_only, recorded_engine, DECLARED_POLICY_FILE};
pub use nodes::{CachedNodes, NodeError, StoreNodes, UpperNodes};
pub use open::{check_witness_policy, complete_witness_policy};
pub use prove::{ConsistencyProof, InclusionProof, ProofBatch};
pub use schema::node_key;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::core::hash::Hash;
use crate::core::leaf::{EventLeaf, GenesisLeaf, Leaf, MapLeaf};
use crate::core::map::StateMap;
use crate::core::note::SignedCheckpoint;
use crate::core::opening::Opening;
use crate::core::proof::ProvenLeaf;
use crate::core::receipt::Receipt;
use crate::core::reject::Reject;
use crate::core::rules::Head;
use crate::core::tlog::Frontier;
use crate::core::vrf::VrfSecretKey;
use crate::store::{Store, View};
use clock::{Clock, SystemClock};

/// Default storage cache (sled's own default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Default cap on the state map's nodes in memory (see [`Options::map_bytes`]).
pub const DEFAULT_MAP_BYTES: usize = 64 << 20;
/// Events committed per atomic batch and sync.
pub const CHUNK: usize = 4096;

/// How a ledger is opened or created, besides its directory: see [`Ledger::init_with`] and
/// [`Ledger::open_with`].
#[derive(Clone)]
pub struct Options {
    /// Where the ledger reads the time (default: the system clock).
    pub clock: Arc<dyn Clock>,
    /// The storage engine's cache.
    pub cache_bytes: u64,
    /// The most bytes the state map's upper levels may take in memory (default
    /// [`DEFAULT_MAP_BYTES`], 64 MiB): past it the map keeps larger subtrees on disk
    /// ([`StateMap::capped`]). Roots and proofs do not change; each proof and append then
    /// reads more keys from the store. 0: no cap.
    pub map_bytes: usize,
    /// The least time between two map leaves (default a second; at least a millisecond).
    pub map_leaf_interval_ms: u64,
    /// Open the store for reading only (reading commands: see [`Engine::open_read_only`]
    /// (crate::store::Engine::open_read_only)); appends and checkpoints then fail.
    pub read_only: bool,
    /// A c2sp.org/tlog-policy a new ledger declares in its genesis leaf (docs/FORMAT.md §3),
    /// without its `log` line: [`Ledger::init_with`] adds the line naming the key it generates
    /// ([`complete_witness_policy`]). Not used when a ledger is opened.
    pub witness_policy: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            clock: Arc::new(SystemClock),
            cache_bytes: DEFAULT_CACHE_BYTES,
            map_bytes: DEFAULT_MAP_BYTES,
            map_leaf_interval_ms: checkpoint::MAP_LEAF_INTERVAL_MS,
            read_only: false,
            witness_policy: None,
        }
    }
}

impl Options {
    /// These options with `clock` (a [`ManualClock`](clock::ManualClock), say).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Options {
        self.clock = Arc::new(clock);
        self
    }

    /// These options with map leaves at least `ms` apart (at least 1).
    pub fn map_leaf_interval_ms(mut self, ms: u64) -> Options {
        self.map_leaf_interval_ms = ms.max(1);
        self
    }

    /// These options with a witness policy for a new ledger to declare (its text without the
    /// `log` line; see [`Options::witness_policy`]).
    pub fn witness_policy(mut self, text: impl Into<String>) -> Options {
        self.witness_policy = Some(text.into());
        self
    }

    /// These options for reading only: the store is opened read-only where the engine allows.
    pub fn read_only(mut self) -> Options {
        self.read_only = true;
        self
    }

    /// These options with a storage cache of `bytes`.
    pub fn cache_bytes(mut self, bytes: u64) -> Options {
        self.cache_bytes = bytes;
        self
    }

    /// These options with the state map's upper levels capped at `bytes` in memory
    /// ([`Options::map_bytes`]).
    pub fn map_bytes(mut self, bytes: usize) -> Options {
        self.map_bytes = bytes;
        self
    }
}

/// What happened to one submitted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Newly appended; the receipt is for a durable entry.
    Accepted(Receipt),
    /// Identical to an event already logged; its existing receipt.
    Duplicate(Receipt),
    /// Refused by a rule; nothing was written.
    Rejected(Reject),
}

/// The latest stored checkpoint, the map leaf it ends with and the state map as of that map
/// leaf, so proofs can be answered while appends go on.
#[derive(Clone)]
pub struct Snapshot {
    pub checkpoint: SignedCheckpoint,
    /// Index of the map leaf (the checkpoint's last leaf).
    pub map_index: u64,
    pub map_leaf: MapLeaf,
    /// The state map over every event leaf before the map leaf.
    pub map: StateMap,
    /// How many checkpoints are durable and may be listed: numbers `0..published`. A
    /// checkpoint being written is stored (and, on sled, readable) a moment before its sync
    /// returns; it is counted here only after, so no reader sees one a crash could take back.
    pub published: u64,
    /// The genesis leaf and the map leaf proven under the checkpoint (every proof against
    /// this snapshot carries the same two), computed by the first proof that needs them.
    pub anchor: std::sync::OnceLock<(ProvenLeaf, ProvenLeaf)>,
    /// The checkpoint tree's right edge (every inclusion path against this snapshot shares
    /// it), read by the first proof that needs it and checked against the checkpoint's root.
    pub edge: std::sync::OnceLock<crate::core::tlog::RightEdge>,
    /// The state map's buckets as of this snapshot, read by the proofs that needed them.
    pub buckets: map_buckets::MapBuckets,
    /// Inclusion paths already checked against this snapshot's checkpoint.
    pub verified: verified_paths::VerifiedPaths,
}

/// The in-memory state, changed only after a commit succeeds.
#[derive(Clone)]
struct State {
    frontier: Frontier,
    map: StateMap,
    /// Latest integrated_at or map leaf time handed out.
    last_time: u64,
    /// Time of the latest map leaf; leaves after it are strictly later.
    last_map_time: u64,
    /// Number of checkpoints stored.
    cp_count: u64,
}

/// An open ledger.
pub struct Ledger {
    dir: PathBuf,
    /// The store; replaced by a freshly opened one after a storage failure.
    store: RwLock<Arc<dyn Store>>,
    /// Set when a write failed: the next write reopens the store and rebuilds the state.
    needs_recovery: AtomicBool,
    cache_bytes: u64,
    /// The cap on the state map's nodes in memory ([`Options::map_bytes`]).
    map_bytes: usize,
    origin: String,
    genesis: GenesisLeaf,
    key: SigningKey,
    public: VerifyingKey,
    /// The VRF key of the state keys (its public half is in the genesis leaf).
    vrf: VrfSecretKey,
    state: Mutex<State>,
    latest: RwLock<Arc<Snapshot>>,
    /// The tree's upper node hashes, in memory.
    upper: UpperNodes,
    /// Where the time comes from.
    clock: Arc<dyn Clock>,
    /// The least time between two map leaves.
    map_leaf_interval_ms: u64,
    /// State keys computed for events not yet committed (bounded).
    fresh_keys: fresh_keys::FreshKeys,
    /// Subjects' keys decompressed by earlier appends (bounded).
    subject_keys: crate::core::event::SubjectKeyCache,
    /// The receipt checkpoint signed last, with the tree size it is for.
    receipt_anchor: Mutex<Option<(u64, Arc<crate::core::receipt::ReceiptAnchor>)>>,
    /// Held while a checkpoint's cosignatures are read, merged and written back.
    cosign: Mutex<()>,
    /// Sizes of the largest cosigned checkpoint and of the largest one that met the policy
    /// (`None`: not read yet), and the last `witnessed_for` answer, by (signed size,
    /// cosigned size).
    cosigned_sizes: Mutex<Option<cosigned::Sizes>>,
    witnessed_last: Mutex<Option<(u64, u64, crate::core::witnessed::WitnessedJson)>>,
}

impl Ledger {
    /// Subjects' keys already decompressed, for [`precheck`].
    pub fn subject_keys(&self) -> &crate::core::event::SubjectKeyCache {
        &self.subject_keys
    }
    pub fn origin(&self) -> &str {
        &self.origin
    }
    /// The log's genesis leaf (leaf 0).
    pub fn genesis(&self) -> &GenesisLeaf {
        &self.genesis
    }
    pub fn public_key(&self) -> VerifyingKey {
        self.public
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Milliseconds since the Unix epoch, from the ledger's clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
    /// The current store.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.read().expect("store").clone()
    }

    /// Node hashes of the tree: the upper levels from memory, the rest from `store`.
    pub fn nodes<'a>(&'a self, store: &'a dyn View) -> CachedNodes<'a> {
        CachedNodes {
            store,
            upper: &self.upper,
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.state.lock().expect("state").frontier.size().0
    }

    /// The tree size, the tree's root and the live state map's root (over every event leaf)
    /// as they are now in memory, read together; nothing is written.
    pub fn live_roots(&self) -> (u64, Hash, Hash) {
        let st = self.state.lock().expect("state");
        (
            st.frontier.size().0,
            st.frontier.root(&crate::core::tlog::Sha256Hasher),
            st.map.root(),
        )
    }

    /// The latest stored checkpoint, its map leaf and the map as of it.
    pub fn latest(&self) -> Arc<Snapshot> {
        self.latest.read().expect("latest").clone()
    }

    /// The current head of a state key.
    pub fn head(&self, key: &Hash) -> Result<Option<Head>, LedgerError> {
        schema::read_head(&*self.store(), key)
    }

    /// The current head of (subject, controller, purpose) in this log, if it has an event.
    pub fn head_of(
        &self,
        subject: &[u8; 32],
        controller: &str,
        purpose: &str,
    ) -> Result<Option<Head>, LedgerError> {
        match self.state_key(subject, controller, purpose)? {
            None => Ok(None),
            Some((key, _)) => self.head(&key),
        }
    }

    /// The event of `key` with `seq`, if logged.
    pub fn event_at_seq(&self, key: &Hash, seq: u64) -> Result<Option<Head>, LedgerError> {
        schema::read_event_at_seq(&*self.store(), key, seq)
    }

    /// The leaf at `index`.
    pub fn leaf(&self, index: u64) -> Result<Option<Leaf>, LedgerError> {
        schema::read_leaf(&*self.store(), index)
    }

    /// The event leaf at `index` (an error if it is another kind).
    pub fn event_leaf(&self, index: u64) -> Result<Option<EventLeaf>, LedgerError> {
        let store = self.store();
        match schema::read_leaf(&*store, index)? {
            None => Ok(None),
            Some(_) => schema::require_event(&*store, index).map(Some),
        }
    }

    /// The opening of `index`, if it was not erased.
    pub fn opening(&self, index: u64) -> Result<Option<Opening>, LedgerError> {
        schema::read_opening(&*self.store(), index)
    }

    /// Every stored checkpoint note, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<String>, LedgerError> {
        raw::checkpoint_notes(&*self.store())
    }
}
