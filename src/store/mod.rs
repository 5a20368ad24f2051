//! Storage: a small trait (ordered keys, atomic batch, durable commit) and its engines.
//!
//! The ledger sees only [`Store`]; an engine is chosen when a ledger is created and recorded in
//! its directory. Keys are grouped into [`Table`]s; within a table they are ordered bytewise.

mod redb_store;
mod sled_store;

pub use redb_store::RedbStore;
pub use sled_store::SledStore;

use std::path::Path;

/// A group of keys; each engine keeps tables apart (sled: a one-byte key prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Table {
    /// Ledger settings and counters (`origin`, `size`).
    Meta = 0,
    /// index (u64 BE) → leaf bytes (genesis, event or map leaf: docs/FORMAT.md §3).
    Leaf = 1,
    /// index (u64 BE) → Opening bytes (nonce || SignedEvent). Erasable.
    Opening = 2,
    /// level (u8, ≥ 1) || index (u64 BE) → hash of a complete subtree. Level 0 (leaf hashes)
    /// is not stored: it is the hash of the leaf.
    Node = 3,
    /// state key || seq (u64 BE) → index (u64 LE) || event hash: every event of a key in chain
    /// order. The last one is the key's head; a lookup by seq finds resubmissions.
    KeyIndex = 6,
    /// subject || state key → empty: every key of a person.
    SubjectIndex = 7,
    /// checkpoint number (u64 BE) → note text.
    Checkpoint = 8,
    /// state key → index (u64 LE) || leaf hash: every key's latest event leaf, the state
    /// map's values (the map keeps only its upper levels in memory).
    MapValue = 9,
    /// BLAKE3(alpha) → state key K || VRF proof[80]: the private index of the state keys of
    /// the triples seen (docs/FORMAT.md §17.1), so the VRF is evaluated once per triple.
    StateKey = 10,
    /// tree size (u64 BE) → the checkpoint note of that size with the witnesses' cosignature
    /// lines appended (c2sp.org/tlog-cosignature), as the witnesses returned them.
    Cosigned = 11,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 10] = [
        Table::Meta,
        Table::Leaf,
        Table::Opening,
        Table::Node,
        Table::KeyIndex,
        Table::SubjectIndex,
        Table::Checkpoint,
        Table::MapValue,
        Table::StateKey,
        Table::Cosigned,
    ];
}

/// A storage failure (I/O, corruption reported by the engine).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine error: {0}")]
    Engine(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    UnknownEngine(#[from] UnknownEngine),
    /// Another process holds the engine's lock on the ledger's database (a running
    /// `consentlog serve`, or another command).
    #[error(
        "the ledger in {path} is in use by another process (a running `consentlog serve`, or \
         another command): to read it while a server runs, ask the server (--server URL, or \
         --url URL for audit); to run an offline command on the directory (append, checkpoint, \
         fsck, compact, migrate …), stop the server first"
    )]
    InUse {
        /// The ledger directory (the database's parent).
        path: String,
    },
}

impl StoreError {
    /// [`StoreError::InUse`] for the database in `db` (a ledger's `db` directory).
    pub(crate) fn in_use(db: &Path) -> StoreError {
        StoreError::InUse {
            path: db.parent().unwrap_or(db).display().to_string(),
        }
    }
}

/// Writes applied together or not at all.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub(crate) ops: Vec<(Table, Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn put(&mut self, table: Table, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((table, key.into(), Some(value.into())));
    }
    pub fn delete(&mut self, table: Table, key: impl Into<Vec<u8>>) {
        self.ops.push((table, key.into(), None));
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Key/value pairs of a scan, keys without their table prefix.
pub type ScanIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + 'a>;

/// Reads of a store: the store itself, or a [`Store::view`] of it.
pub trait View {
    /// The value of `key` in `table`.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Pairs with `start <= key < end` in key order (`end` None: to the table's end).
    fn scan<'a>(&'a self, table: Table, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a>;
    /// The pair with the greatest key starting with `prefix`.
    #[allow(clippy::type_complexity)]
    fn last_with_prefix(
        &self,
        table: Table,
        prefix: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError>;
}

impl<T: View + ?Sized> View for &T {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(table, key)
    }
    fn scan<'a>(&'a self, table: Table, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a> {
        (**self).scan(table, start, end)
    }
    fn last_with_prefix(
        &self,
        table: Table,
        prefix: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        (**self).last_with_prefix(table, prefix)
    }
}

/// What the ledger needs of a storage engine.
pub trait Store: View + Send + Sync {
    /// A view for many reads in a row, such as one proof or one round of a proof batch: on
    /// redb one read transaction (a snapshot, instead of one transaction per read); on sled,
    /// which has no snapshots, the store itself. A view sees every commit that returned before
    /// it was taken; hold it briefly (on redb it keeps the pages of its snapshot from reuse).
    fn view(&self) -> Result<Box<dyn View + '_>, StoreError>;
    /// Applies `batch` atomically and returns only once it is durable on disk.
    fn commit(&self, batch: WriteBatch) -> Result<(), StoreError>;
    /// Engine name as recorded in the ledger directory.
    fn engine(&self) -> &'static str;
    /// Bytes the engine uses on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;
    /// Another handle on this store's database, for reading only, with a cache of its own of
    /// `cache_bytes`; it sees what this one sees as long as nothing is written. Threads that
    /// read a great deal at once (`prove --batch`) each take one, and share no cache and no
    /// cache lock: on redb two threads reading through one handle spent about a tenth of
    /// their time on the page cache's locks and counters. `None` where the engine has no such
    /// handles (sled: one handle per database and process), or where this handle may write (a
    /// second one could not open beside it); callers then share this one.
    fn another_reader(&self, _cache_bytes: u64) -> Result<Option<Box<dyn Store>>, StoreError> {
        Ok(None)
    }
}

/// Pairs of `table` whose key starts with `prefix`.
pub fn scan_prefix<'a>(store: &'a dyn View, table: Table, prefix: &[u8]) -> ScanIter<'a> {
    match prefix_end(prefix) {
        Some(end) => store.scan(table, prefix, Some(&end)),
        None => store.scan(table, prefix, None),
    }
}

/// The smallest key greater than every key starting with `prefix` (None if there is none).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A storage engine this build knows. Recorded by name in a ledger's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Engine {
    /// sled 0.34: supported for existing ledgers and by choice (`--backend sled`); its memory
    /// grows with every key it has written (docs/SECURITY.md).
    Sled,
    /// redb 4.x, the default: faster, smaller, and its memory stays within its cache.
    #[default]
    Redb,
}

impl Engine {
    /// Every engine.
    pub const ALL: [Engine; 2] = [Engine::Sled, Engine::Redb];

    /// The engine's name, as recorded in a ledger directory and given to `--backend`.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sled => "sled",
            Engine::Redb => "redb",
        }
    }

    /// Opens this engine's store in `dir`.
    pub fn open(self, dir: &Path, cache_bytes: u64) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            Engine::Sled => Box::new(SledStore::open(dir, cache_bytes)?),
            Engine::Redb => Box::new(RedbStore::open(dir, cache_bytes)?),
        })
    }

    /// Opens this engine's existing store in `dir` for reading only, for the commands that
    /// only read. redb opens its file read-only: no commit, no repair (a database that was not
    /// shut down cleanly needs a repair, which writes: it is then opened as by
    /// [`Engine::open`], with a warning). sled has no read-only mode and is opened as by
    /// [`Engine::open`]: the first opener after a writer may write sled's snapshot file
    /// (`db/snap.*`, sled's own index of its log, rebuilt from it); its log `db/db`, which holds
    /// the ledger's data, is not written. Commits to a read-only store fail.
    pub fn open_read_only(
        self,
        dir: &Path,
        cache_bytes: u64,
    ) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            Engine::Sled => Box::new(SledStore::open(dir, cache_bytes)?),
            Engine::Redb => Box::new(RedbStore::open_read_only(dir, cache_bytes)?),
        })
    }

    /// Gives back free space in this engine's files in `dir` (see
    /// [`crate::ledger::compact`]): `None` for an engine that reclaims space itself.
    pub fn compact(self, dir: &Path) -> Result<Option<(u64, u64)>, StoreError> {
        match self {
            Engine::Redb => RedbStore::compact(dir).map(Some),
            Engine::Sled => Ok(None),
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an engine this build knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown storage engine {0:?}")]
pub struct UnknownEngine(pub String);

impl std::str::FromStr for Engine {
    type Err = UnknownEngine;
    fn from_str(s: &str) -> Result<Engine, UnknownEngine> {
        Engine::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownEngine(s.to_string()))
    }
}

/// Gives back free space in the files of the engine named `engine` in `dir` (see
/// [`crate::ledger::compact`]).
pub fn compact(engine: &str, dir: &Path) -> Result<Option<(u64, u64)>, StoreError> {
    engine.parse::<Engine>()?.compact(dir)
}

/// The names of the engines this build knows.
pub const ENGINES: &[&str] = &["sled", "redb"];

/// Opens the engine named `engine` in `dir`.
pub fn open(engine: &str, dir: &Path, cache_bytes: u64) -> Result<Box<dyn Store>, StoreError> {
    engine.parse::<Engine>()?.open(dir, cache_bytes)
}

/// A store that refuses everything: stands in while a failed store is being reopened.
pub struct Closed;

impl View for Closed {
    fn get(&self, _: Table, _: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Err(StoreError::Engine("storage is being reopened".into()))
    }
    fn scan<'a>(&'a self, _: Table, _: &[u8], _: Option<&[u8]>) -> ScanIter<'a> {
        Box::new(std::iter::once(Err(StoreError::Engine(
            "storage is being reopened".into(),
        ))))
    }
    fn last_with_prefix(
        &self,
        _: Table,
        _: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        Err(StoreError::Engine("storage is being reopened".into()))
    }
}

impl Store for Closed {
    fn view(&self) -> Result<Box<dyn View + '_>, StoreError> {
        Ok(Box::new(Closed))
    }
    fn commit(&self, _: WriteBatch) -> Result<(), StoreError> {
        Err(StoreError::Engine("storage is being reopened".into()))
    }
    fn engine(&self) -> &'static str {
        "closed"
    }
    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(it: ScanIter<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
        it.map(|r| r.expect("scan")).collect()
    }

    /// A view reads what the store reads, and sees every commit made before it was taken.
    #[test]
    fn engine_names_round_trip() {
        for e in Engine::ALL {
            assert_eq!(e.as_str().parse::<Engine>(), Ok(e));
            assert_eq!(e.to_string(), e.as_str());
        }
        assert_eq!(ENGINES, Engine::ALL.map(Engine::as_str));
        assert_eq!(
            "lmdb".parse::<Engine>().unwrap_err().to_string(),
            "unknown storage engine \"lmdb\""
        );
        assert_eq!(Engine::default(), Engine::Redb);
    }

    #[test]
    fn views_read_what_the_store_reads() {
        for engine in ENGINES {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = open(engine, dir.path(), 1 << 20).expect("open");
            let mut b = WriteBatch::new();
            for i in 0u8..10 {
                b.put(Table::KeyIndex, vec![1, i], vec![i; 3]);
                b.put(Table::Leaf, vec![i], vec![i]);
            }
            store.commit(b).expect("commit");
            let view = store.view().expect("view");
            for t in [Table::KeyIndex, Table::Leaf, Table::Opening] {
                assert_eq!(
                    pairs(view.scan(t, &[], None)),
                    pairs(store.scan(t, &[], None)),
                    "{engine}: scan of {t:?}"
                );
            }
            assert_eq!(view.get(Table::Leaf, &[4]).expect("get"), Some(vec![4]));
            assert_eq!(view.get(Table::Opening, &[4]).expect("get"), None);
            assert_eq!(
                view.last_with_prefix(Table::KeyIndex, &[1]).expect("last"),
                Some((vec![1, 9], vec![9; 3])),
                "{engine}"
            );
            assert_eq!(
                pairs(scan_prefix(&*view, Table::KeyIndex, &[1]))[3..5],
                [(vec![1, 3], vec![3; 3]), (vec![1, 4], vec![4; 3])],
                "{engine}"
            );
            drop(view);
            // A later view sees a later commit.
            let mut b = WriteBatch::new();
            b.delete(Table::Leaf, vec![4]);
            store.commit(b).expect("commit");
            let view = store.view().expect("view");
            assert_eq!(view.get(Table::Leaf, &[4]).expect("get"), None, "{engine}");
        }
    }

    /// Another reader exists only beside a read-only handle (on redb), and reads what it reads;
    /// beside a handle that may write there is none, and nothing changes.
    #[test]
    fn other_readers_read_the_same() {
        for engine in Engine::ALL {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = engine.open(dir.path(), 1 << 20).expect("open");
            let mut b = WriteBatch::new();
            for i in 0u8..200 {
                b.put(Table::Node, vec![i], vec![i; 32]);
            }
            store.commit(b).expect("commit");
            assert!(
                store.another_reader(1 << 20).expect("reader").is_none(),
                "{engine}"
            );
            drop(store);
            let store = engine.open_read_only(dir.path(), 1 << 20).expect("open");
            let Some(other) = store.another_reader(1 << 20).expect("reader") else {
                assert_eq!(engine, Engine::Sled, "only sled has no other readers");
                continue;
            };
            assert_eq!(
                pairs(other.view().expect("view").scan(Table::Node, &[], None)),
                pairs(store.scan(Table::Node, &[], None)),
            );
            assert!(
                other.commit(WriteBatch::new()).is_err(),
                "another reader never writes"
            );
        }
    }
}
