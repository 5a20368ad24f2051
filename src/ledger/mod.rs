//! The ledger: appends events under the rules, keeps the Merkle log and the state map, signs
//! checkpoints and receipts, and builds proofs. It owns the log key and a [`Store`].
//!
//! Directory layout: `log.key` (0600), `log.pub`, `engine` (storage engine name) and `db/`.

pub mod clock;
pub mod fsck;
pub mod leaves;
pub mod migrate;
mod nodes;
mod prove;
pub mod raw;

pub use nodes::{node_key, CachedNodes, NodeError, StoreNodes, UpperNodes};

use leaves::{decode_leaf, leaf_value, LeafSource, MAP_BUCKET};

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rayon::prelude::*;

use crate::core::entry::{Entry, Opening};
use crate::core::event::{signatures_valid, subject_keys, SignedEvent, SIGNATURE_CHUNK};
use crate::core::hash::{to_hex, Hash};
use crate::core::map::{MapError, MapValue, StateMap};
use crate::core::note::{self, Checkpoint, SignedCheckpoint};
use crate::core::receipt::Receipt;
use crate::core::reject::Reject;
use crate::core::rules::{self, Head};
use crate::core::tlog::{self, Blake3Hasher, Frontier, TreeSize};
use crate::keyfile;
use crate::store::{self, Engine, Store, StoreError, Table, View, WriteBatch};
use clock::{Clock, SystemClock};

/// The name of the storage engine the test suite runs on: `$CONSENTLOG_ENGINE`, else sled.
///
/// A shim kept while the tests move to [`crate::testing::engine_from_env`]: the ledger itself
/// reads no environment (the CLI reads `$CONSENTLOG_ENGINE` through clap).
#[doc(hidden)]
pub fn default_engine() -> &'static str {
    crate::testing::engine_from_env().as_str()
}

/// The engine recorded in the ledger directory `dir`.
pub fn recorded_engine(dir: &Path) -> Result<Engine, LedgerError> {
    let name = fs::read_to_string(dir.join("engine"))
        .map_err(|_| LedgerError::NotALedger(dir.display().to_string()))?;
    Ok(name.trim().parse::<Engine>().map_err(StoreError::from)?)
}

/// Opens the store of the ledger in `dir` with the engine recorded there, without reading
/// anything else (for tools and tests that inspect or repair storage).
pub fn open_store(dir: &Path) -> Result<Box<dyn Store>, LedgerError> {
    Ok(recorded_engine(dir)?.open(&dir.join("db"), DEFAULT_CACHE_BYTES)?)
}

/// Gives back the free space the engine of the ledger in `dir` holds in its file: `Some((bytes
/// before, bytes after))`, or `None` for an engine that reclaims space itself (sled). Fails
/// if the ledger is open elsewhere.
pub fn compact(dir: &Path) -> Result<Option<(u64, u64)>, LedgerError> {
    Ok(recorded_engine(dir)?.compact(&dir.join("db"))?)
}

/// How a ledger is opened or created, besides its directory: see [`Ledger::init_with`] and
/// [`Ledger::open_with`].
#[derive(Clone)]
pub struct Options {
    /// Where the ledger reads the time (default: the system clock).
    pub clock: Arc<dyn Clock>,
    /// The storage engine's cache.
    pub cache_bytes: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            clock: Arc::new(SystemClock),
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

impl Options {
    /// These options with `clock` (a [`ManualClock`](clock::ManualClock), say).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Options {
        self.clock = Arc::new(clock);
        self
    }

    /// These options with a storage cache of `bytes`.
    pub fn cache_bytes(mut self, bytes: u64) -> Options {
        self.cache_bytes = bytes;
        self
    }
}

/// Default storage cache (sled's own default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Events committed per atomic batch and sync.
pub const CHUNK: usize = 4096;

/// Below this many events a chunk's receipts are signed on the calling thread: handing a few
/// signatures to other threads costs more in wake-ups than it saves.
const PARALLEL_MIN: usize = 64;

/// A ledger-level failure (not a rejected event: those are [`Reject`]).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Map(#[from] MapError<String>),
    #[error(transparent)]
    Key(#[from] keyfile::KeyFileError),
    #[error("{0}")]
    Io(String),
    #[error("{0} is not a consentlog ledger (no `engine` file); run `consentlog init --dir {0}`")]
    NotALedger(String),
    #[error("{0} already holds a ledger")]
    Exists(String),
    #[error("bad origin: {0}")]
    Origin(String),
    #[error("ledger data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
}

/// An event with its hash and the result of its stateless checks (signature, key, fields),
/// made by [`precheck`] on all cores, so that callers can check the next events while the
/// ledger commits the previous ones.
pub struct Prechecked {
    event: SignedEvent,
    hash: Hash,
    check: Result<(), Reject>,
}

/// The stateless checks of one event (strict signature verification and field checks), on
/// the calling thread. Depends on nothing but the event: the rules that need the ledger's
/// state run in [`Ledger::append_checked`].
pub fn precheck_one(event: SignedEvent) -> Prechecked {
    let hash = event.event_hash();
    let check = event.check_self();
    Prechecked { event, hash, check }
}

/// The stateless checks of many events on all cores (see [`precheck_one`]).
pub fn precheck(events: Vec<Result<SignedEvent, Reject>>) -> Vec<Result<Prechecked, Reject>> {
    let keys = subject_keys(events.iter().flatten());
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
                    Prechecked { event, hash, check }
                })
            })
        })
        .collect()
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

/// The latest checkpoint and the state map as of it, so proofs can be answered while appends
/// go on.
#[derive(Clone)]
pub struct Snapshot {
    pub checkpoint: SignedCheckpoint,
    pub map: StateMap,
    /// How many checkpoints are durable and may be listed: numbers `0..published`. A
    /// checkpoint being written is stored (and, on sled, readable) a moment before its sync
    /// returns; it is counted here only after, so no reader sees one a crash could take back.
    pub published: u64,
}

struct State {
    frontier: Frontier,
    map: StateMap,
    /// Latest integrated_at or checkpoint time handed out.
    last_time: u64,
    /// Time of the latest checkpoint; entries after it are integrated strictly later.
    last_cp_time: u64,
    /// Number of checkpoints stored.
    cp_count: u64,
}

/// An open ledger.
pub struct Ledger {
    dir: PathBuf,
    /// The store; replaced by a freshly opened one after a storage failure.
    store: RwLock<Arc<dyn Store>>,
    /// Set when a write failed: the next write reopens the store and rebuilds the state.
    needs_recovery: std::sync::atomic::AtomicBool,
    cache_bytes: u64,
    origin: String,
    key: SigningKey,
    public: VerifyingKey,
    state: Mutex<State>,
    latest: RwLock<Arc<Snapshot>>,
    /// The tree's upper node hashes, in memory.
    upper: UpperNodes,
    /// Where the time comes from.
    clock: Arc<dyn Clock>,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> LedgerError {
    LedgerError::Io(format!("{what} {}: {e}", path.display()))
}

fn be(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

/// Entry `index` as read through `r`.
pub(crate) fn entry_in(r: &dyn View, index: u64) -> Result<Option<Entry>, LedgerError> {
    match r.get(Table::Entry, &be(index))? {
        None => Ok(None),
        Some(v) => Entry::decode(&v)
            .map(Some)
            .map_err(|e| LedgerError::Corrupt(format!("entry {index}: {e}"))),
    }
}

/// The opening of `index` as read through `r`, if it was not erased.
pub(crate) fn opening_in(r: &dyn View, index: u64) -> Result<Option<Opening>, LedgerError> {
    match r.get(Table::Opening, &be(index))? {
        None => Ok(None),
        Some(v) => Opening::decode(&v)
            .map(Some)
            .map_err(|e| LedgerError::Corrupt(format!("opening {index}: {e}"))),
    }
}

fn u64_le(v: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(v.try_into().ok()?))
}

/// Writes a small file and syncs it and its directory before returning.
fn write_durable(path: &Path, text: &str) -> Result<(), LedgerError> {
    use std::io::Write;
    let mut f = fs::File::create(path).map_err(|e| io_err("cannot create", path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err("cannot write", path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// The text of `log.pub`: the log's public key in hex, one line.
fn log_pub_text(key: &SigningKey) -> String {
    format!("{}\n", to_hex(key.verifying_key().as_bytes()))
}

/// Writes the log key files of a new ledger directory: `log.key` (mode 0600) and `log.pub`.
fn write_log_keys(dir: &Path, key: &SigningKey) -> Result<(), LedgerError> {
    keyfile::write(&dir.join("log.key"), key)?;
    write_durable(&dir.join("log.pub"), &log_pub_text(key))
}

/// Syncs a directory, so the files created in it survive a power loss.
fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot sync directory", dir, e))
}

/// `KeyIndex` key of a key's event with `seq`.
fn key_index_key(key: &Hash, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(40);
    k.extend_from_slice(key);
    k.extend_from_slice(&be(seq));
    k
}

/// `KeyIndex` value: index (u64 LE) || event hash.
fn key_index_value(index: u64, event_hash: &Hash) -> Vec<u8> {
    let mut v = Vec::with_capacity(40);
    v.extend_from_slice(&index.to_le_bytes());
    v.extend_from_slice(event_hash);
    v
}

/// Decodes a `KeyIndex` pair into a head.
fn decode_key_index(k: &[u8], v: &[u8]) -> Option<Head> {
    if k.len() != 40 || v.len() != 40 {
        return None;
    }
    Some(Head {
        seq: u64::from_be_bytes(k[32..].try_into().ok()?),
        index: u64_le(&v[..8])?,
        event_hash: v[8..].try_into().ok()?,
    })
}

impl Ledger {
    /// Creates a ledger in `dir` (which must not hold one) and signs the empty checkpoint.
    /// `engine` names the storage engine (`sled`, `redb`).
    pub fn init(dir: &Path, origin: &str, engine: &str) -> Result<Ledger, LedgerError> {
        let engine = engine.parse::<Engine>().map_err(StoreError::from)?;
        Self::init_with(dir, origin, engine, Options::default())
    }

    /// [`Ledger::init`] on `engine` with options (a clock, a cache size).
    pub fn init_with(
        dir: &Path,
        origin: &str,
        engine: Engine,
        opts: Options,
    ) -> Result<Ledger, LedgerError> {
        note::check_origin(origin).map_err(|e| LedgerError::Origin(e.to_string()))?;
        if dir.join("engine").exists() {
            return Err(LedgerError::Exists(dir.display().to_string()));
        }
        fs::create_dir_all(dir).map_err(|e| io_err("cannot create", dir, e))?;
        // No `engine` marker: any files here are the leftovers of an init that was
        // interrupted (the marker is written last). Nothing was served or acknowledged from
        // them, so start over.
        for name in ["log.key", "log.pub"] {
            let p = dir.join(name);
            if p.exists() {
                fs::remove_file(&p).map_err(|e| io_err("cannot remove", &p, e))?;
            }
        }
        let db = dir.join("db");
        if db.exists() {
            fs::remove_dir_all(&db).map_err(|e| io_err("cannot remove", &db, e))?;
        }
        let key = keyfile::generate();
        write_log_keys(dir, &key)?;
        let store = engine.open(&dir.join("db"), opts.cache_bytes)?;
        let mut b = WriteBatch::new();
        b.put(Table::Meta, b"origin".to_vec(), origin.as_bytes().to_vec());
        b.put(Table::Meta, b"size".to_vec(), 0u64.to_le_bytes().to_vec());
        b.put(Table::Meta, MAP_LEAVES.to_vec(), b"1".to_vec());
        store.commit(b)?;
        let ledger = Ledger::from_store(dir, store, key, opts)?;
        ledger.checkpoint()?;
        // The engine file marks the directory as a complete ledger: written last.
        write_durable(&dir.join("engine"), &format!("{engine}\n"))?;
        Ok(ledger)
    }

    /// Opens the ledger in `dir`, rebuilds the in-memory state and checks it against the
    /// latest checkpoint.
    pub fn open(dir: &Path) -> Result<Ledger, LedgerError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// [`Ledger::open`] with an explicit storage cache size.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Ledger, LedgerError> {
        Self::open_with(dir, Options::default().cache_bytes(cache_bytes))
    }

    /// [`Ledger::open`] with options (a clock, a cache size).
    pub fn open_with(dir: &Path, opts: Options) -> Result<Ledger, LedgerError> {
        let engine = recorded_engine(dir)?;
        let key = keyfile::read(&dir.join("log.key"), false)?;
        let store = engine.open(&dir.join("db"), opts.cache_bytes)?;
        Self::from_store(dir, store, key, opts)
    }

    /// Rebuilds the in-memory state from `store` and checks it against the latest checkpoint.
    fn from_store(
        dir: &Path,
        store: Box<dyn Store>,
        key: SigningKey,
        opts: Options,
    ) -> Result<Ledger, LedgerError> {
        let public = key.verifying_key();
        let (origin, state, latest) = Self::load(store.as_ref(), &public)?;
        let upper = UpperNodes::load(store.as_ref(), state.frontier.size().0)?;
        Ok(Ledger {
            dir: dir.to_path_buf(),
            store: RwLock::new(Arc::from(store)),
            needs_recovery: std::sync::atomic::AtomicBool::new(false),
            cache_bytes: opts.cache_bytes,
            origin,
            key,
            public,
            state: Mutex::new(state),
            latest: RwLock::new(Arc::new(latest)),
            upper,
            clock: opts.clock,
        })
    }

    /// Reads the origin, rebuilds the frontier, map and clock from `store`, and checks them
    /// against the latest checkpoint.
    fn load(
        store: &dyn Store,
        public: &VerifyingKey,
    ) -> Result<(String, State, Snapshot), LedgerError> {
        let origin = store
            .get(Table::Meta, b"origin")?
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(|| LedgerError::Corrupt("no origin recorded".into()))?;
        let size = store
            .get(Table::Meta, b"size")?
            .and_then(|v| u64_le(&v))
            .ok_or_else(|| LedgerError::Corrupt("no tree size recorded".into()))?;

        // The latest checkpoint, verified under our own key.
        let mut last_cp: Option<(u64, SignedCheckpoint)> = None;
        if let Some(r) = store.scan(Table::Checkpoint, &[], None).last() {
            let (k, v) = r?;
            let n = u64::from_be_bytes(
                k.try_into()
                    .map_err(|_| LedgerError::Corrupt("bad checkpoint key".into()))?,
            );
            let text = String::from_utf8(v)
                .map_err(|_| LedgerError::Corrupt(format!("checkpoint {n} is not UTF-8")))?;
            let cp = note::open(&text, public)
                .map_err(|e| LedgerError::Corrupt(format!("checkpoint {n}: {e}")))?;
            last_cp = Some((n, cp));
        }

        let frontier = Frontier::load(&StoreNodes(store), TreeSize(size))?;
        // The entries are 0..size: the last one is there and nothing is past it (`fsck`
        // checks every one). Integration times never decrease, so the last is the latest.
        let mut last_time = 0;
        if size > 0 {
            let v = store.get(Table::Entry, &be(size - 1))?.ok_or_else(|| {
                LedgerError::Corrupt(format!(
                    "entry {} is missing but the tree size is {size}",
                    size - 1
                ))
            })?;
            let e = Entry::decode(&v)
                .map_err(|err| LedgerError::Corrupt(format!("entry {}: {err}", size - 1)))?;
            last_time = e.integrated_at;
        }
        if let Some(r) = store.scan(Table::Entry, &be(size), None).next() {
            let (k, _) = r?;
            return Err(LedgerError::Corrupt(format!(
                "an entry is stored past the tree size {size} (key {})",
                to_hex(&k)
            )));
        }
        if store.get(Table::Meta, MAP_LEAVES)?.is_none() {
            write_map_leaves(store, size)?;
        }
        let cp_size = last_cp.as_ref().map_or(0, |(_, c)| c.size);
        if cp_size > size {
            return Err(LedgerError::Corrupt(format!(
                "latest checkpoint covers {cp_size} entries but only {size} are stored"
            )));
        }
        // The map as of the latest checkpoint, from its leaves; then the entries after it.
        let (mut map, tail) = map_from_leaves(store, cp_size)?;
        let cp_map_root = map.root();
        let snapshot_map = map.clone();
        // The entries after the checkpoint: every key's latest value among them must be its
        // stored leaf. Applied to the map as one batch.
        let mut latest: HashMap<Hash, MapValue> = HashMap::new();
        let mut count = 0u64;
        for r in store.scan(Table::Entry, &be(cp_size), Some(&be(size))) {
            let (k, v) = r?;
            let i = cp_size + count;
            if k != be(i) {
                return Err(LedgerError::Corrupt(format!(
                    "entry {i} is missing (found key {})",
                    to_hex(&k)
                )));
            }
            let e = Entry::decode(&v)
                .map_err(|err| LedgerError::Corrupt(format!("entry {i}: {err}")))?;
            latest.insert(
                e.key,
                MapValue {
                    index: i,
                    leaf_hash: e.leaf_hash(),
                },
            );
            count += 1;
        }
        if count != size - cp_size {
            return Err(LedgerError::Corrupt(format!(
                "entries {}..{size} are not all stored",
                cp_size + count
            )));
        }
        let matches =
            tail.len() == latest.len() && tail.iter().all(|(k, v)| latest.get(k) == Some(v));
        if !matches {
            return Err(LedgerError::Corrupt(format!(
                "stored map leaves do not match the {} entries after the latest checkpoint",
                size - cp_size
            )));
        }
        let src = LeafSource {
            store,
            as_of: cp_size,
            upto: None,
        };
        map.insert_batch_from(&tail, &src)?;

        let (cp_count, last_cp_time, snapshot_map) = match &last_cp {
            Some((n, cp)) => {
                if cp.origin != origin {
                    return Err(LedgerError::Corrupt(format!(
                        "latest checkpoint is for origin {:?}, ledger is {origin:?}",
                        cp.origin
                    )));
                }
                let root = tlog::tree_hash(&Blake3Hasher, &StoreNodes(store), TreeSize(cp.size))?;
                if root != cp.root {
                    return Err(LedgerError::Corrupt(format!(
                        "stored log root at size {} does not match the latest checkpoint",
                        cp.size
                    )));
                }
                if cp_map_root != cp.map_root {
                    return Err(LedgerError::Corrupt(format!(
                        "stored map root at size {} does not match the latest checkpoint",
                        cp.size
                    )));
                }
                (n + 1, cp.time, snapshot_map)
            }
            None => (0, 0, snapshot_map),
        };
        if frontier.root(&Blake3Hasher)
            != tlog::tree_hash(&Blake3Hasher, &StoreNodes(store), TreeSize(size))?
        {
            return Err(LedgerError::Corrupt(
                "frontier does not match stored nodes".into(),
            ));
        }
        let placeholder = SignedCheckpoint {
            origin: origin.clone(),
            size: 0,
            root: [0; 32],
            map_root: [0; 32],
            time: 0,
            note: String::new(),
        };
        let latest = Snapshot {
            checkpoint: last_cp.map(|(_, c)| c).unwrap_or(placeholder),
            map: snapshot_map,
            published: cp_count,
        };
        Ok((
            origin,
            State {
                frontier,
                map,
                last_time: last_time.max(last_cp_time),
                last_cp_time,
                cp_count,
            },
            latest,
        ))
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }
    pub fn public_key(&self) -> VerifyingKey {
        self.public
    }
    /// Milliseconds since the Unix epoch, from the ledger's clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
    pub fn dir(&self) -> &Path {
        &self.dir
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

    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.state.lock().expect("state").frontier.size().0
    }

    /// The latest checkpoint and the map as of it.
    pub fn latest(&self) -> Arc<Snapshot> {
        self.latest.read().expect("latest").clone()
    }

    /// The current head of a state key.
    pub fn head(&self, key: &Hash) -> Result<Option<Head>, LedgerError> {
        match self.store().last_with_prefix(Table::KeyIndex, key)? {
            None => Ok(None),
            Some((k, v)) => decode_key_index(&k, &v)
                .map(Some)
                .ok_or_else(|| LedgerError::Corrupt(format!("head of {} is damaged", to_hex(key)))),
        }
    }

    /// The event of `key` with `seq`, if logged.
    pub fn event_at_seq(&self, key: &Hash, seq: u64) -> Result<Option<Head>, LedgerError> {
        let k = key_index_key(key, seq);
        match self.store().get(Table::KeyIndex, &k)? {
            None => Ok(None),
            Some(v) => decode_key_index(&k, &v).map(Some).ok_or_else(|| {
                LedgerError::Corrupt(format!("key index of {} is damaged", to_hex(key)))
            }),
        }
    }

    /// The entry at `index`.
    pub fn entry(&self, index: u64) -> Result<Option<Entry>, LedgerError> {
        entry_in(&*self.store(), index)
    }

    /// The opening of `index`, if it was not erased.
    pub fn opening(&self, index: u64) -> Result<Option<Opening>, LedgerError> {
        opening_in(&*self.store(), index)
    }

    /// Every stored checkpoint note, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<String>, LedgerError> {
        self.store()
            .scan(Table::Checkpoint, &[], None)
            .map(|r| {
                let (_, v) = r?;
                String::from_utf8(v)
                    .map_err(|_| LedgerError::Corrupt("checkpoint is not UTF-8".into()))
            })
            .collect()
    }

    /// Commits a batch durably; on failure marks the store for recovery before the next write.
    fn commit(&self, batch: WriteBatch) -> Result<(), LedgerError> {
        self.store().commit(batch).map_err(|e| {
            self.needs_recovery
                .store(true, std::sync::atomic::Ordering::SeqCst);
            LedgerError::from(e)
        })
    }

    /// After a failed write (a full disk, a read-only directory): reopens the store, which
    /// some engines require (sled keeps an I/O error set until reopened), and rebuilds the
    /// in-memory state from what is durable. The caller holds the state lock. Nothing
    /// acknowledged is lost: acknowledged data was durable before its receipt was made.
    fn recover(&self, st: &mut State) -> Result<(), LedgerError> {
        use std::sync::atomic::Ordering;
        if !self.needs_recovery.load(Ordering::SeqCst) {
            return Ok(());
        }
        let engine = recorded_engine(&self.dir)?;
        // Let go of the old handle first so the engine's file lock can be taken again.
        *self.store.write().expect("store") = Arc::new(store::Closed);
        let fresh = engine.open(&self.dir.join("db"), self.cache_bytes)?;
        let (_, state, latest) = Self::load(fresh.as_ref(), &self.public)?;
        *st = state;
        *self.latest.write().expect("latest") = Arc::new(latest);
        *self.store.write().expect("store") = Arc::from(fresh);
        self.needs_recovery.store(false, Ordering::SeqCst);
        tracing::info!("storage reopened after a failed write");
        Ok(())
    }

    fn receipt(&self, index: u64, e: &Entry) -> Receipt {
        Receipt::sign(&self.key, index, e.leaf_hash(), e.integrated_at)
    }

    /// Appends events in order, each accepted or rejected on its own (later events may
    /// continue the chains of earlier ones). Accepted events are committed in chunks of
    /// [`CHUNK`], each one atomic batch followed by a sync, before any receipt is made.
    /// On a storage error the events of the failed chunk and after it are not acknowledged.
    pub fn append(
        &self,
        events: Vec<Result<SignedEvent, Reject>>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        // The expensive, stateless checks on all cores, outside the lock.
        self.append_checked(precheck(events))
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

    fn append_chunk(
        &self,
        checked: Vec<Result<Prechecked, Reject>>,
    ) -> Result<Vec<Outcome>, LedgerError> {
        enum Slot {
            Done(Outcome),
            /// Existing entry index.
            Existing(u64),
            /// Position among this chunk's accepted entries.
            New(usize),
            /// A repeat, within this chunk, of the accepted entry at this position.
            Repeat(usize),
        }
        let mut st = self.state.lock().expect("state");
        self.recover(&mut st)?;
        let now = self.clock.after(st.last_cp_time).max(st.last_time);
        let base = st.frontier.size().0;
        let mut frontier = st.frontier.clone();
        let mut batch = WriteBatch::new();
        let mut heads: HashMap<Hash, Head> = HashMap::new();
        let mut fresh: HashMap<Hash, usize> = HashMap::new();
        let mut accepted: Vec<(Entry, Hash)> = Vec::new();
        let mut new_nodes: Vec<(u8, u64, Hash)> = Vec::new();
        let mut slots = Vec::with_capacity(checked.len());
        for c in checked {
            let (ev, h, self_check) = match c {
                Err(r) => {
                    slots.push(Slot::Done(Outcome::Rejected(r)));
                    continue;
                }
                Ok(p) => (p.event, p.hash, p.check),
            };
            if let Some(&pos) = fresh.get(&h) {
                slots.push(Slot::Repeat(pos));
                continue;
            }
            let key = ev.event.state_key();
            let head = match heads.get(&key) {
                Some(h) => Some(*h),
                None => self.head(&key)?,
            };
            // A resubmission: an event with this seq is already logged with these bytes.
            if head.is_some_and(|hd| ev.event.seq <= hd.seq) {
                if let Some(old) = self.event_at_seq(&key, ev.event.seq)? {
                    if old.event_hash == h {
                        slots.push(Slot::Existing(old.index));
                        continue;
                    }
                }
            }
            if let Err(r) =
                rules::check_append_checked(&ev, &self.origin, head.as_ref(), now, self_check)
            {
                slots.push(Slot::Done(Outcome::Rejected(r)));
                continue;
            }
            let index = base + accepted.len() as u64;
            let opening = Opening {
                nonce: keyfile::random32(),
                event: ev,
            };
            let entry = opening.entry(now);
            let leaf = entry.leaf_hash();
            frontier.append_with(&Blake3Hasher, leaf, |level, i, hash| {
                if level > 0 {
                    batch.put(Table::Node, node_key(level, i).to_vec(), hash.to_vec());
                    new_nodes.push((level, i, *hash));
                }
            });
            batch.put(Table::Entry, be(index).to_vec(), entry.to_bytes().to_vec());
            batch.put(Table::Opening, be(index).to_vec(), opening.to_bytes());
            let seq = opening.event.event.seq;
            let new_head = Head {
                index,
                seq,
                event_hash: h,
            };
            batch.put(
                Table::KeyIndex,
                key_index_key(&key, seq),
                key_index_value(index, &h),
            );
            if head.is_none() {
                let mut si = opening.event.event.subject.to_vec();
                si.extend_from_slice(&key);
                batch.put(Table::SubjectIndex, si, Vec::new());
            }
            heads.insert(key, new_head);
            fresh.insert(h, accepted.len());
            slots.push(Slot::New(accepted.len()));
            accepted.push((entry, leaf));
        }
        let mut receipts = Vec::new();
        if !accepted.is_empty() {
            let size = base + accepted.len() as u64;
            batch.put(Table::Meta, b"size".to_vec(), size.to_le_bytes().to_vec());
            let updates: Vec<(Hash, MapValue)> = accepted
                .iter()
                .enumerate()
                .map(|(i, (e, leaf))| {
                    (
                        e.key,
                        MapValue {
                            index: base + i as u64,
                            leaf_hash: *leaf,
                        },
                    )
                })
                .collect();
            // The new map, from the stored leaves as they are before this batch.
            let mut map = st.map.clone();
            let store = self.store();
            let src = LeafSource {
                store: store.as_ref(),
                as_of: base,
                upto: None,
            };
            map.insert_batch_from(&updates, &src)?;
            for (key, value) in &updates {
                batch.put(Table::MapLeaf, key.to_vec(), leaf_value(value));
            }
            // Receipts are signed while the batch is written and synced (signing costs as much
            // as verifying); none is handed out unless the commit succeeds.
            let sign = |pos: usize, e: &Entry| self.receipt(base + pos as u64, e);
            let (committed, signed) = if accepted.len() < PARALLEL_MIN {
                // A few receipts: signed here, before the commit, rather than handed to other
                // threads and waited for (the server's batches are mostly this small).
                let signed: Vec<Receipt> = accepted
                    .iter()
                    .enumerate()
                    .map(|(p, (e, _))| sign(p, e))
                    .collect();
                (self.commit(batch), signed)
            } else {
                rayon::join(
                    || self.commit(batch),
                    || {
                        accepted
                            .par_iter()
                            .enumerate()
                            .map(|(p, (e, _))| sign(p, e))
                            .collect::<Vec<Receipt>>()
                    },
                )
            };
            committed?;
            self.upper.extend(&new_nodes);
            receipts = signed;
            st.map = map;
            st.frontier = frontier;
            st.last_time = now;
        }
        drop(st);

        // Durable: hand out the receipts.
        let outcome = |s: Slot| {
            Ok(match s {
                Slot::Done(o) => o,
                Slot::New(pos) => Outcome::Accepted(receipts[pos]),
                Slot::Repeat(pos) => Outcome::Duplicate(receipts[pos]),
                Slot::Existing(idx) => {
                    let e = self
                        .entry(idx)?
                        .ok_or_else(|| LedgerError::Corrupt(format!("entry {idx} is missing")))?;
                    Outcome::Duplicate(self.receipt(idx, &e))
                }
            })
        };
        if slots.len() < PARALLEL_MIN {
            slots.into_iter().map(outcome).collect()
        } else {
            slots.into_par_iter().map(outcome).collect()
        }
    }

    /// Signs and stores a checkpoint of the current tree and map (also when nothing changed,
    /// with a new time). Only durable data is covered: appends commit before they update the
    /// in-memory state this reads.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, LedgerError> {
        let mut st = self.state.lock().expect("state");
        self.recover(&mut st)?;
        let time = self.clock.now_ms().max(st.last_time).max(st.last_cp_time);
        let size = st.frontier.size().0;
        let body = Checkpoint {
            origin: &self.origin,
            size,
            root: st.frontier.root(&Blake3Hasher),
            map_root: st.map.root(),
            time,
        };
        let text = body.sign(&self.key);
        let mut b = WriteBatch::new();
        b.put(
            Table::Checkpoint,
            be(st.cp_count).to_vec(),
            text.clone().into_bytes(),
        );
        self.commit(b)?;
        st.cp_count += 1;
        st.last_cp_time = time;
        st.last_time = time;
        let cp = SignedCheckpoint {
            origin: self.origin.clone(),
            size,
            root: body.root,
            map_root: body.map_root,
            time,
            note: text,
        };
        *self.latest.write().expect("latest") = Arc::new(Snapshot {
            checkpoint: cp.clone(),
            map: st.map.clone(),
            published: st.cp_count,
        });
        Ok(cp)
    }
}

/// `Meta` key marking a ledger whose `MapLeaf` table is written (ledgers made before it existed
/// get it on their first open).
const MAP_LEAVES: &[u8] = b"map_leaves";

/// The state map as of tree size `as_of`, rebuilt from the stored leaves in key order, keeping
/// only its upper levels in memory; and the leaves written at or after `as_of` (key order).
#[allow(clippy::type_complexity)]
fn map_from_leaves(
    store: &dyn Store,
    as_of: u64,
) -> Result<(StateMap, Vec<(Hash, MapValue)>), LedgerError> {
    let mut map = StateMap::with_buckets(MAP_BUCKET);
    let mut tail = Vec::new();
    let rollback = LeafSource {
        store,
        as_of,
        upto: None,
    };
    let mut scan = store.scan(Table::MapLeaf, &[], None);
    let mut done: Option<Hash> = None;
    loop {
        let mut chunk = Vec::with_capacity(65536);
        let mut last = None;
        for r in scan.by_ref().take(65536) {
            let (k, v) = r?;
            let (key, value) = decode_leaf(&k, &v)
                .ok_or_else(|| LedgerError::Corrupt(format!("damaged map leaf {}", to_hex(&k))))?;
            last = Some(key);
            if value.index >= as_of {
                tail.push((key, value));
            }
            if let Some(v) = rollback.resolve(&key, value)? {
                chunk.push((key, v));
            }
        }
        let Some(last) = last else {
            return Ok((map, tail));
        };
        // The map so far holds the keys up to `done`: its stubs load only those.
        let src = LeafSource {
            store,
            as_of,
            upto: done,
        };
        map.insert_batch_from(&chunk, &src)?;
        done = Some(last);
    }
}

/// Writes the `MapLeaf` table of a ledger made before it existed: every key's latest entry
/// (a full replay, once), then the marker.
fn write_map_leaves(store: &dyn Store, size: u64) -> Result<(), LedgerError> {
    let mut latest: HashMap<Hash, MapValue> = HashMap::new();
    for r in store.scan(Table::Entry, &[], Some(&be(size))) {
        let (k, v) = r?;
        let i = u64::from_be_bytes(
            k.try_into()
                .map_err(|_| LedgerError::Corrupt("bad entry key".into()))?,
        );
        let e =
            Entry::decode(&v).map_err(|err| LedgerError::Corrupt(format!("entry {i}: {err}")))?;
        latest.insert(
            e.key,
            MapValue {
                index: i,
                leaf_hash: e.leaf_hash(),
            },
        );
    }
    let mut batch = WriteBatch::new();
    for (key, value) in latest {
        batch.put(Table::MapLeaf, key.to_vec(), leaf_value(&value));
        if batch.len() >= 65536 {
            store.commit(std::mem::take(&mut batch))?;
        }
    }
    batch.put(Table::Meta, MAP_LEAVES.to_vec(), b"1".to_vec());
    store.commit(batch)?;
    Ok(())
}

#[cfg(test)]
mod clock_tests {
    use super::clock::ManualClock;
    use super::*;
    use crate::core::event::{ConsentEvent, EVENT_VERSION};
    use crate::core::rules::ISSUED_AT_WINDOW_MS;

    const ORIGIN: &str = "unit.example/log";
    const T0: u64 = 1_700_000_000_000;

    fn event(key: &SigningKey, seq: u64, prev: Option<Hash>, issued_at: u64) -> SignedEvent {
        ConsentEvent {
            version: EVENT_VERSION,
            log: ORIGIN.into(),
            subject: key.verifying_key().to_bytes(),
            controller: "c.example".into(),
            purpose: "p".into(),
            decision: 1,
            seq,
            prev,
            issued_at,
            expires_at: None,
            notice: None,
        }
        .sign(key)
    }

    #[test]
    fn the_ledger_reads_time_from_an_injected_clock() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let opts = Options::default().clock(clock.clone());
        let l = Ledger::init_with(tmp.path(), ORIGIN, Engine::default(), opts).unwrap();
        // init's checkpoint is at the clock's time.
        assert_eq!(l.latest().checkpoint.time, T0);
        let key = keyfile::generate();
        // The ledger's time for the next append: just after init's checkpoint.
        let now = T0 + 1;
        // issued_at outside the 5-minute window around the manual clock is refused.
        for issued_at in [now - ISSUED_AT_WINDOW_MS - 1, now + ISSUED_AT_WINDOW_MS + 1] {
            let out = l.append(vec![Ok(event(&key, 0, None, issued_at))]).unwrap();
            assert!(
                matches!(&out[0], Outcome::Rejected(Reject::IssuedAt { now: n, .. }) if *n == now),
                "{out:?}"
            );
        }
        // At the window's edge it is accepted.
        let first = event(&key, 0, None, now - ISSUED_AT_WINDOW_MS);
        let Outcome::Accepted(r) = &l.append(vec![Ok(first.clone())]).unwrap()[0] else {
            panic!("not accepted")
        };
        assert_eq!(r.integrated_at, now);
        // An hour later (no sleeping), the same issued_at is out of the window.
        clock.advance(3_600_000);
        let second = event(&key, 1, Some(first.event_hash()), T0);
        let out = l.append(vec![Ok(second)]).unwrap();
        assert!(matches!(out[0], Outcome::Rejected(Reject::IssuedAt { .. })));
        let cp = l.checkpoint().unwrap();
        assert_eq!(cp.time, T0 + 3_600_000);
        // A clock set back does not take the ledger's times back.
        clock.set(T0);
        assert_eq!(l.checkpoint().unwrap().time, T0 + 3_600_000);
        let third = event(&key, 1, Some(first.event_hash()), T0 + 3_600_000);
        let Outcome::Accepted(r) = &l.append(vec![Ok(third)]).unwrap()[0] else {
            panic!("not accepted")
        };
        assert_eq!(r.integrated_at, T0 + 3_600_001);
        // Proofs default to the ledger's time: a future `at` is measured against it.
        assert!(l
            .prove_consent(
                &key.verifying_key().to_bytes(),
                "c.example",
                "p",
                Some(T0 + 10)
            )
            .is_err());
    }
}
