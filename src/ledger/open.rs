//! Creating and opening a ledger: the store is read back into the in-memory state (the tree's
//! frontier, the state map's upper levels, the clock's floor), which is checked against the
//! latest checkpoint and the map leaf it ends with before anything is served; and the same
//! rebuild after a failed write.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ed25519_dalek::{SigningKey, VerifyingKey};

use super::error::{CorruptKind, Invalid, Key};
use super::files::{
    read_vrf_key, recorded_engine, remove_leftovers, write_durable, write_engine, write_log_keys,
    DECLARED_POLICY_FILE,
};
use super::leaves::{LeafSource, MAP_BUCKET};
use super::schema::{self, index_key};
use super::Ledger;
use super::{LedgerError, Options, Snapshot, State, StoreNodes, UpperNodes};
use crate::core::hash::Hash;
use crate::core::leaf::{GenesisLeaf, Leaf, MapLeaf, LEAF_VERSION};
use crate::core::map::{MapValue, StateMap};
use crate::core::note::{self, SignedCheckpoint};
use crate::core::policy::Policy;
use crate::core::tlog::{self, Frontier, Sha256Hasher, TreeSize};
use crate::core::vkey::{Vkey, TYPE_ED25519};
use crate::core::vrf::VrfSecretKey;
use crate::keyfile;
use crate::store::{Engine, Store, StoreError, Table, WriteBatch};

/// Leaves read per step while the map is rebuilt.
const LEAF_CHUNK: usize = 65536;

/// Checks a witness policy a new ledger is to declare, before its key exists: a
/// c2sp.org/tlog-policy with at least one witness and a quorum other than `none`, and no `log`
/// line (the log's key is generated with the ledger; [`complete_witness_policy`] names it).
pub fn check_witness_policy(text: &str) -> Result<Policy, String> {
    let p = Policy::parse(text.as_bytes()).map_err(|e| e.to_string())?;
    if !p.logs.is_empty() {
        return Err(
            "the policy has a `log` line, but this log's key does not exist yet: leave \
                    the `log` line out (init adds the one naming the key it generates)"
                .into(),
        );
    }
    if p.witnesses.is_empty() || p.quorum.is_none() {
        return Err(
            "the policy requires no witness (no `witness` line, or `quorum none`): \
                    declaring it would require nothing"
                .into(),
        );
    }
    Ok(p)
}

/// The policy a new ledger declares: `log <vkey>\n` (the log's C2SP vkey, `origin+key
/// id+base64(0x01 || key)`) followed by `text`, which [`check_witness_policy`] accepts.
pub fn complete_witness_policy(
    text: &str,
    origin: &str,
    key: &VerifyingKey,
) -> Result<String, String> {
    check_witness_policy(text)?;
    let vkey = Vkey::new(origin, TYPE_ED25519, *key).map_err(|e| e.to_string())?;
    let mut out = format!("log {}\n", vkey.to_text());
    out.push_str(text);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Policy::parse(out.as_bytes()).map_err(|e| e.to_string())?;
    if out.len() > crate::core::leaf::MAX_POLICY {
        return Err(format!(
            "the policy is {} bytes with its `log` line (at most {})",
            out.len(),
            crate::core::leaf::MAX_POLICY
        ));
    }
    Ok(out)
}

impl Ledger {
    /// Creates a ledger in `dir` (which must not hold one): its keys, the genesis leaf and
    /// the first map leaf with its signed checkpoint. `engine` names the storage engine
    /// (`sled`, `redb`).
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
        note::check_origin(origin).map_err(LedgerError::Origin)?;
        if dir.join("engine").exists() {
            return Err(LedgerError::Exists(dir.to_path_buf()));
        }
        if let Some(text) = &opts.witness_policy {
            check_witness_policy(text).map_err(Invalid::WitnessPolicy)?;
        }
        fs::create_dir_all(dir).map_err(|e| LedgerError::io("cannot create", dir, e))?;
        // No `engine` marker: any files here are the leftovers of an init that was
        // interrupted (the marker is written last). Start over.
        remove_leftovers(dir)?;
        let key = keyfile::generate();
        let vrf = VrfSecretKey::from_random(&keyfile::random64());
        write_log_keys(dir, &key, &vrf)?;
        let witness_policy = opts
            .witness_policy
            .as_deref()
            .map(|text| complete_witness_policy(text, origin, &key.verifying_key()))
            .transpose()
            .map_err(Invalid::WitnessPolicy)?;
        let genesis = Leaf::Genesis(GenesisLeaf {
            version: LEAF_VERSION,
            origin: origin.to_string(),
            vrf_key: vrf.public_key().to_bytes(),
            genesis_time: opts.clock.now_ms(),
            witness_policy,
        });
        if let Err(e) = Leaf::decode(&genesis.to_bytes()) {
            return Err(
                Invalid::WitnessPolicy(format!("the genesis leaf would not decode: {e}")).into(),
            );
        }
        let store = engine.open(&dir.join("db"), opts.cache_bytes)?;
        let mut b = WriteBatch::new();
        b.put(Table::Meta, schema::ORIGIN, origin.as_bytes());
        b.put(Table::Meta, schema::FORMAT, schema::FORMAT_VERSION);
        b.put(Table::Leaf, index_key(0), genesis.to_bytes());
        b.put(Table::Meta, schema::SIZE, schema::size_value(1));
        store.commit(b)?;
        if let Leaf::Genesis(GenesisLeaf {
            witness_policy: Some(p),
            ..
        }) = &genesis
        {
            // The policy as declared, for the operator to publish and to serve with.
            write_durable(&dir.join(DECLARED_POLICY_FILE), p)?;
        }
        let ledger = Ledger::from_store(dir, store, key, vrf, opts)?;
        ledger.checkpoint()?;
        // The engine file marks the directory as a complete ledger: written last.
        write_engine(dir, engine)?;
        Ok(ledger)
    }

    /// Opens the ledger in `dir`, rebuilds the in-memory state and checks it against the
    /// latest checkpoint.
    pub fn open(dir: &Path) -> Result<Ledger, LedgerError> {
        Self::open_with(dir, Options::default())
    }

    /// [`Ledger::open`] for a reading command: the store is opened read-only where the engine
    /// allows it (redb; sled has no such mode), so reading never writes the ledger's data.
    pub fn open_read_only(dir: &Path) -> Result<Ledger, LedgerError> {
        Self::open_with(dir, Options::default().read_only())
    }

    /// [`Ledger::open`] with an explicit storage cache size.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Ledger, LedgerError> {
        Self::open_with(dir, Options::default().cache_bytes(cache_bytes))
    }

    /// [`Ledger::open`] with options (a clock, a cache size).
    pub fn open_with(dir: &Path, opts: Options) -> Result<Ledger, LedgerError> {
        let engine = recorded_engine(dir)?;
        // A secret key others can read is a key others may have copied: refuse it, naming the
        // file and `chmod 600` (every command that opens a ledger comes through here).
        let key = keyfile::read(&dir.join("log.key"), true)?;
        let store = if opts.read_only {
            engine.open_read_only(&dir.join("db"), opts.cache_bytes)?
        } else {
            engine.open(&dir.join("db"), opts.cache_bytes)?
        };
        if store.get(Table::Meta, schema::FORMAT)?.as_deref() != Some(schema::FORMAT_VERSION) {
            return Err(Invalid::FormatV1(dir.to_path_buf()).into());
        }
        let vrf = read_vrf_key(dir)?;
        Self::from_store(dir, store, key, vrf, opts)
    }

    /// Rebuilds the in-memory state from `store` and checks it against the latest checkpoint.
    fn from_store(
        dir: &Path,
        store: Box<dyn Store>,
        key: SigningKey,
        vrf: VrfSecretKey,
        opts: Options,
    ) -> Result<Ledger, LedgerError> {
        let public = key.verifying_key();
        // The map and the tree's upper levels are each read from a table of their own: side by
        // side, on two threads (a large ledger opens in about half the time).
        let (_, size) = schema::read_origin_and_size(store.as_ref())?;
        let (loaded, upper) = rayon::join(
            || load(store.as_ref(), &public, opts.map_bytes),
            || UpperNodes::load(store.as_ref(), size),
        );
        let (origin, state, latest) = loaded?;
        let upper = upper?;
        debug_assert_eq!(size, state.frontier.size().0);
        let genesis = match schema::require_leaf(store.as_ref(), 0)? {
            Leaf::Genesis(g) => g,
            other => {
                return Err(LedgerError::corrupt(
                    Table::Leaf,
                    Key::Index(0),
                    CorruptKind::Mismatch(format!("a {} leaf, not genesis", other.kind().as_str())),
                ))
            }
        };
        if genesis.origin != origin || genesis.vrf_key != vrf.public_key().to_bytes() {
            return Err(LedgerError::corrupt(
                Table::Leaf,
                Key::Index(0),
                CorruptKind::Mismatch(
                    "the genesis leaf does not name this ledger's origin and VRF key".into(),
                ),
            ));
        }
        Ok(Ledger {
            dir: dir.to_path_buf(),
            store: RwLock::new(Arc::from(store)),
            needs_recovery: AtomicBool::new(false),
            cache_bytes: opts.cache_bytes,
            map_bytes: opts.map_bytes,
            origin,
            genesis,
            key,
            public,
            vrf,
            state: Mutex::new(state),
            latest: RwLock::new(Arc::new(latest)),
            upper,
            clock: opts.clock,
            map_leaf_interval_ms: opts.map_leaf_interval_ms.max(1),
            receipt_anchor: Mutex::new(None),
            cosign: Mutex::new(()),
            cosigned_sizes: Mutex::new(None),
            witnessed_last: Mutex::new(None),
            fresh_keys: Default::default(),
            subject_keys: Default::default(),
        })
    }

    /// After a failed write (a full disk, a read-only directory): reopens the store, which
    /// some engines require (sled keeps an I/O error set until reopened), and rebuilds the
    /// in-memory state from what is durable. The caller holds the state lock. Nothing
    /// acknowledged is lost: acknowledged data was durable before its receipt was made.
    pub(super) fn recover(&self, st: &mut State) -> Result<(), LedgerError> {
        if !self.needs_recovery.load(Ordering::SeqCst) {
            return Ok(());
        }
        let engine = recorded_engine(&self.dir)?;
        // Let go of the old handle first so the engine's file lock can be taken again.
        *self.store.write().expect("store") = Arc::new(crate::store::Closed);
        let fresh = engine.open(&self.dir.join("db"), self.cache_bytes)?;
        let (_, state, latest) = load(fresh.as_ref(), &self.public, self.map_bytes)?;
        *st = state;
        *self.latest.write().expect("latest") = Arc::new(latest);
        *self.store.write().expect("store") = Arc::from(fresh);
        self.needs_recovery.store(false, Ordering::SeqCst);
        tracing::info!("storage reopened after a failed write");
        Ok(())
    }

    /// Commits a batch durably; on failure marks the store for recovery before the next write.
    pub(super) fn commit(&self, batch: WriteBatch) -> Result<(), LedgerError> {
        self.store().commit(batch).map_err(|e| {
            self.needs_recovery.store(true, Ordering::SeqCst);
            LedgerError::from(e)
        })
    }
}

/// Reads the origin, rebuilds the frontier, map and time floor from `store`, and checks them
/// against the latest checkpoint and the map leaf it ends with.
fn load(
    store: &dyn Store,
    public: &VerifyingKey,
    map_bytes: usize,
) -> Result<(String, State, Snapshot), LedgerError> {
    let (origin, size) = schema::read_origin_and_size(store)?;
    let last_cp = latest_checkpoint(store, public)?;
    let frontier = Frontier::load(&StoreNodes(store), TreeSize(size))?;
    let last_time = last_leaf_time(store, size)?;
    // The map leaf the latest checkpoint ends with (none while `init` signs the first).
    let (map_index, map_leaf) = match &last_cp {
        Some((n, cp)) => {
            check_checkpoint_fits(*n, cp, &origin, size)?;
            let m = cp.size.checked_sub(1).ok_or_else(|| {
                LedgerError::corrupt(
                    Table::Checkpoint,
                    Key::Index(*n),
                    CorruptKind::Mismatch("a checkpoint of the empty tree".into()),
                )
            })?;
            (m, schema::require_map(store, m)?)
        }
        None => (
            0,
            MapLeaf {
                version: LEAF_VERSION,
                time: 0,
                map_root: StateMap::new().root(),
            },
        ),
    };
    // The map as of the map leaf, from the stored values; then the event leaves after it.
    let (mut map, tail) = map_from_leaves(store, map_index, map_bytes)?;
    let snapshot_map = map.clone();
    check_tail(store, map_index, size, &tail)?;
    let src = LeafSource {
        store,
        as_of: map_index,
        upto: None,
    };
    map.insert_batch_from(&tail, &src)?;
    if let Some((n, cp)) = &last_cp {
        check_roots(store, *n, cp, &map_leaf, &snapshot_map)?;
    }
    if frontier.root(&Sha256Hasher)
        != tlog::tree_hash(&Sha256Hasher, &StoreNodes(store), TreeSize(size))?
    {
        return Err(LedgerError::corrupt(
            Table::Node,
            Key::Whole,
            CorruptKind::Mismatch("frontier does not match stored nodes".into()),
        ));
    }
    let cp_count = last_cp.as_ref().map_or(0, |(n, _)| n + 1);
    let latest = Snapshot {
        checkpoint: last_cp
            .map(|(_, c)| c)
            .unwrap_or_else(|| placeholder_checkpoint(&origin)),
        map_index,
        map_leaf,
        map: snapshot_map,
        anchor: Default::default(),
        edge: Default::default(),
        buckets: Default::default(),
        verified: Default::default(),
        published: cp_count,
    };
    let state = State {
        frontier,
        map,
        last_time: last_time.max(map_leaf.time),
        last_map_time: map_leaf.time,
        cp_count,
    };
    Ok((origin, state, latest))
}

/// Stands for the latest checkpoint of a ledger that has none yet (while `init` signs the
/// first): size 0, no note.
fn placeholder_checkpoint(origin: &str) -> SignedCheckpoint {
    SignedCheckpoint {
        origin: origin.to_string(),
        size: 0,
        root: [0; 32],
        note: String::new(),
    }
}

/// The latest checkpoint and its number, verified under our own key.
fn latest_checkpoint(
    store: &dyn Store,
    public: &VerifyingKey,
) -> Result<Option<(u64, SignedCheckpoint)>, LedgerError> {
    let Some(r) = store.scan(Table::Checkpoint, &[], None).last() else {
        return Ok(None);
    };
    let (k, v) = r?;
    let (n, text) = schema::decode_checkpoint_pair(&k, v)?;
    let cp = note::open(&text, public).map_err(|e| {
        LedgerError::corrupt(
            Table::Checkpoint,
            Key::Index(n),
            CorruptKind::Malformed(e.to_string()),
        )
    })?;
    Ok(Some((n, cp)))
}

/// The time of the last leaf (0 if none), after checking that the leaves end at `size`: the
/// last one is there and nothing is past it (`fsck` checks every one). Leaf times never
/// decrease, so the last is the latest.
fn last_leaf_time(store: &dyn Store, size: u64) -> Result<u64, LedgerError> {
    if let Some(r) = store.scan(Table::Leaf, &index_key(size), None).next() {
        let (k, _) = r?;
        let key = match schema::decode_index_key(Table::Leaf, &k) {
            Ok(i) => Key::Index(i),
            Err(_) => Key::Raw(k),
        };
        return Err(LedgerError::corrupt(
            Table::Leaf,
            key,
            CorruptKind::PastSize { size },
        ));
    }
    match size.checked_sub(1) {
        None => Ok(0),
        Some(last) => Ok(schema::require_leaf(store, last)?.time()),
    }
}

/// The latest checkpoint (number `n`) is for this origin and covers no more than is stored.
fn check_checkpoint_fits(
    n: u64,
    cp: &SignedCheckpoint,
    origin: &str,
    size: u64,
) -> Result<(), LedgerError> {
    let mismatch = |why: String| {
        LedgerError::corrupt(Table::Checkpoint, Key::Index(n), CorruptKind::Mismatch(why))
    };
    if cp.origin != origin {
        return Err(mismatch(format!(
            "latest checkpoint is for origin {:?}, ledger is {origin:?}",
            cp.origin
        )));
    }
    if cp.size > size {
        return Err(mismatch(format!(
            "latest checkpoint covers {} leaves but only {size} are stored",
            cp.size
        )));
    }
    Ok(())
}

/// The stored tree has the latest checkpoint's root (number `n`), and the map as of its map
/// leaf has that leaf's root.
fn check_roots(
    store: &dyn Store,
    n: u64,
    cp: &SignedCheckpoint,
    map_leaf: &MapLeaf,
    map: &StateMap,
) -> Result<(), LedgerError> {
    let mismatch = |what: &str| {
        LedgerError::corrupt(
            Table::Checkpoint,
            Key::Index(n),
            CorruptKind::Mismatch(format!(
                "stored {what} at size {} does not match the latest checkpoint",
                cp.size
            )),
        )
    };
    let root = tlog::tree_hash(&Sha256Hasher, &StoreNodes(store), TreeSize(cp.size))?;
    if root != cp.root {
        return Err(mismatch("tree root"));
    }
    if map.root() != map_leaf.map_root {
        return Err(mismatch("map (its map leaf's root)"));
    }
    Ok(())
}

/// The leaves `map_index..size` (from the latest checkpoint's map leaf on) are all stored,
/// are event leaves after it, and every key's latest value among them is its stored map
/// value: `tail`, the values written at or after `map_index`.
fn check_tail(
    store: &dyn Store,
    map_index: u64,
    size: u64,
    tail: &[(Hash, MapValue)],
) -> Result<(), LedgerError> {
    let mut latest: HashMap<Hash, MapValue> = HashMap::new();
    let mut next = map_index;
    for r in store.scan(Table::Leaf, &index_key(map_index), Some(&index_key(size))) {
        let (k, v) = r?;
        if k != index_key(next) {
            break;
        }
        match schema::decode_leaf(next, &v)? {
            Leaf::Event(e) => {
                latest.insert(
                    e.key,
                    MapValue {
                        index: next,
                        leaf_hash: e.leaf_hash(),
                    },
                );
            }
            Leaf::Map(_) if next == map_index => {}
            Leaf::Genesis(_) if next == 0 => {}
            other => {
                return Err(LedgerError::corrupt(
                    Table::Leaf,
                    Key::Index(next),
                    CorruptKind::Mismatch(format!(
                        "a {} leaf after the latest checkpoint",
                        other.kind().as_str()
                    )),
                ))
            }
        }
        next += 1;
    }
    if next != size {
        return Err(LedgerError::missing(Table::Leaf, Key::Index(next)));
    }
    let matches = tail.len() == latest.len() && tail.iter().all(|(k, v)| latest.get(k) == Some(v));
    if !matches {
        return Err(LedgerError::corrupt(
            Table::MapValue,
            Key::Whole,
            CorruptKind::Mismatch(format!(
                "stored map values do not match the {} leaves after the latest checkpoint",
                size - map_index
            )),
        ));
    }
    Ok(())
}

/// The state map as of leaf `as_of`, rebuilt from the stored values in key order, keeping
/// only its upper levels in memory, within `map_bytes`; and the values written at or after
/// `as_of` (key order).
#[allow(clippy::type_complexity)]
fn map_from_leaves(
    store: &dyn Store,
    as_of: u64,
    map_bytes: usize,
) -> Result<(StateMap, Vec<(Hash, MapValue)>), LedgerError> {
    let mut map = StateMap::with_buckets(MAP_BUCKET).capped(map_bytes);
    let mut tail = Vec::new();
    let rollback = LeafSource {
        store,
        as_of,
        upto: None,
    };
    let mut scan = store.scan(Table::MapValue, &[], None);
    let mut done: Option<Hash> = None;
    loop {
        let mut chunk = Vec::with_capacity(LEAF_CHUNK);
        let mut last = None;
        for r in scan.by_ref().take(LEAF_CHUNK) {
            let (k, v) = r?;
            let (key, value) = schema::decode_map_leaf(&k, &v)?;
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

#[cfg(test)]
mod tests {
    use super::super::testing::{first_events, ledger_on, ORIGIN, T0};
    use super::super::Corrupt;
    use super::*;

    fn corrupt(e: LedgerError) -> Corrupt {
        e.as_corrupt()
            .cloned()
            .unwrap_or_else(|| panic!("not Corrupt: {e}"))
    }

    /// A ledger of genesis, a map leaf, 3 events, a map leaf (leaf 5) and 2 more events,
    /// closed; its directory.
    fn closed_ledger() -> tempfile::TempDir {
        let t = ledger_on(Engine::Redb);
        t.accept(first_events(3, T0));
        t.clock.advance(1_000);
        t.ledger.checkpoint().unwrap();
        t.accept(first_events(2, T0));
        t.dir
    }

    #[test]
    fn open_rebuilds_the_state_as_it_was() {
        let t = ledger_on(Engine::Redb);
        t.accept(first_events(3, T0));
        t.clock.advance(1_000);
        let cp = t.ledger.checkpoint().unwrap();
        let map_leaf = t.ledger.latest().map_leaf;
        t.accept(first_events(2, T0));
        let (size, root, map_root) = {
            let st = t.ledger.state.lock().unwrap();
            (
                st.frontier.size().0,
                st.frontier.root(&Sha256Hasher),
                st.map.root(),
            )
        };
        let opts = t.opts();
        let dir = t.dir;
        drop(t.ledger);
        let l = Ledger::open_with(dir.path(), opts).unwrap();
        assert_eq!(l.origin(), ORIGIN);
        assert_eq!(l.size(), size);
        let st = l.state.lock().unwrap();
        assert_eq!(st.frontier.root(&Sha256Hasher), root);
        assert_eq!(st.map.root(), map_root);
        assert_eq!((st.cp_count, st.last_map_time), (2, map_leaf.time));
        assert_eq!(st.last_time, map_leaf.time + 1);
        drop(st);
        let latest = l.latest();
        assert_eq!(latest.checkpoint, cp);
        assert_eq!((latest.map_index, latest.map_leaf), (5, map_leaf));
        assert_eq!(latest.map.root(), map_leaf.map_root);
    }

    #[test]
    fn init_refuses_a_ledger_and_open_refuses_a_directory_without_one() {
        let dir = closed_ledger();
        assert!(matches!(
            Ledger::init(dir.path(), ORIGIN, "redb"),
            Err(LedgerError::Exists(_))
        ));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            Ledger::open(empty.path()),
            Err(LedgerError::NotALedger(p)) if p == empty.path()
        ));
        assert!(matches!(
            Ledger::init(&empty.path().join("l"), ORIGIN, "lmdb"),
            Err(LedgerError::Store(StoreError::UnknownEngine(_)))
        ));
        assert!(matches!(
            Ledger::init(&empty.path().join("l"), "", "redb"),
            Err(LedgerError::Origin(_))
        ));
    }

    /// Changes one stored record of the closed ledger in `dir`.
    fn tamper(dir: &Path, table: Table, key: &[u8], value: Option<Vec<u8>>) {
        let store = super::super::open_store(dir).unwrap();
        let mut b = WriteBatch::new();
        match value {
            Some(v) => b.put(table, key, v),
            None => b.delete(table, key),
        }
        store.commit(b).unwrap();
    }

    #[test]
    fn open_names_what_does_not_match() {
        // A recorded size short of the leaves: a leaf past it.
        let dir = closed_ledger();
        tamper(
            dir.path(),
            Table::Meta,
            schema::SIZE,
            Some(schema::size_value(6).to_vec()),
        );
        let c = corrupt(Ledger::open(dir.path()).err().unwrap());
        assert_eq!(
            (c.table, c.key, c.what),
            (
                Table::Leaf,
                Key::Index(6),
                CorruptKind::PastSize { size: 6 }
            )
        );

        // A leaf after the checkpoint missing.
        let dir = closed_ledger();
        tamper(dir.path(), Table::Leaf, &index_key(6), None);
        let c = corrupt(Ledger::open(dir.path()).err().unwrap());
        assert_eq!(
            (c.table, c.key, c.what),
            (Table::Leaf, Key::Index(6), CorruptKind::Missing)
        );

        // A v1 ledger (no format marker) is refused by name.
        let dir = closed_ledger();
        tamper(dir.path(), Table::Meta, schema::FORMAT, None);
        assert!(matches!(
            Ledger::open(dir.path()),
            Err(LedgerError::Invalid(Invalid::FormatV1(_)))
        ));

        // A map value changed: the root of the latest map leaf no longer matches.
        let dir = closed_ledger();
        let leaf = {
            let s = super::super::open_store(dir.path()).unwrap();
            let (k, v) = s.scan(Table::MapValue, &[], None).next().unwrap().unwrap();
            let (key, mut value) = schema::decode_map_leaf(&k, &v).unwrap();
            value.leaf_hash[0] ^= 1;
            (key, value)
        };
        tamper(
            dir.path(),
            Table::MapValue,
            &leaf.0,
            Some(schema::map_leaf_value(&leaf.1).to_vec()),
        );
        let e = Ledger::open(dir.path()).err().unwrap();
        let c = corrupt(e);
        assert!(
            matches!(c.table, Table::Checkpoint | Table::MapValue),
            "{c}"
        );

        // The origin.
        let dir = closed_ledger();
        tamper(
            dir.path(),
            Table::Meta,
            schema::ORIGIN,
            Some(b"other.example/log".to_vec()),
        );
        let c = corrupt(Ledger::open(dir.path()).err().unwrap());
        assert_eq!((c.table, &c.key), (Table::Checkpoint, &Key::Index(1)));
        assert!(c.to_string().contains("origin"), "{c}");

        // The latest checkpoint's note, unreadable.
        let dir = closed_ledger();
        tamper(
            dir.path(),
            Table::Checkpoint,
            &index_key(1),
            Some(vec![0xff]),
        );
        let c = corrupt(Ledger::open(dir.path()).err().unwrap());
        assert_eq!(
            (c.table, c.key, c.what),
            (Table::Checkpoint, Key::Index(1), CorruptKind::NotUtf8)
        );
    }
}
