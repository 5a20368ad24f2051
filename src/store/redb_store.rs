//! The redb engine (4.x): one table, tables as a one-byte key prefix (as in the sled engine).
//! Every commit is a redb write transaction with `Durability::Immediate`, which fsyncs before
//! `commit` returns.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, TableDefinition};

use super::{ScanIter, Store, StoreError, Table, View, WriteBatch};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("consentlog");

/// A ledger store in a redb database file.
pub struct RedbStore {
    db: Db,
    path: PathBuf,
}

/// The database, opened for writing or (for reading commands) read-only.
enum Db {
    ReadWrite(Database),
    ReadOnly(redb::ReadOnlyDatabase),
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(format!("redb: {e}"))
}

/// An error opening the database in `dir`: another process holding it is
/// [`StoreError::InUse`].
fn open_err(dir: &Path, e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::in_use(dir),
        e => err(e),
    }
}

fn prefixed(table: Table, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(table as u8);
    k.extend_from_slice(key);
    k
}

impl RedbStore {
    /// Opens (or creates) `dir/ledger.redb` with an explicit cache size.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("ledger.redb");
        let db = Database::builder()
            .set_cache_size(cache_bytes as usize)
            .create(&path)
            .map_err(|e| open_err(dir, e))?;
        let w = db.begin_write().map_err(err)?;
        w.open_table(TABLE).map_err(err)?;
        w.commit().map_err(err)?;
        Ok(RedbStore {
            db: Db::ReadWrite(db),
            path,
        })
    }

    /// Opens the existing `dir/ledger.redb` without writing to it: no commit, no repair.
    /// A database that was not shut down cleanly needs a repair, which writes: it is then
    /// opened as by [`RedbStore::open`] (the only case where a reading command writes).
    pub fn open_read_only(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let path = dir.join("ledger.redb");
        match Database::builder()
            .set_cache_size(cache_bytes as usize)
            .open_read_only(&path)
        {
            Ok(db) => Ok(RedbStore {
                db: Db::ReadOnly(db),
                path,
            }),
            Err(redb::DatabaseError::RepairAborted) => {
                tracing::warn!(
                    "{}: not shut down cleanly; opening it for writing to repair it",
                    path.display()
                );
                Self::open(dir, cache_bytes)
            }
            Err(e) => Err(open_err(dir, e)),
        }
    }
}

impl RedbStore {
    /// Compacts `dir/ledger.redb` until nothing more moves; returns its size before and after.
    pub fn compact(dir: &Path) -> Result<(u64, u64), StoreError> {
        let path = dir.join("ledger.redb");
        let size = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.len())
                .map_err(|source| StoreError::Io {
                    path: p.display().to_string(),
                    source,
                })
        };
        let before = size(&path)?;
        let mut db = Database::open(&path).map_err(|e| open_err(dir, e))?;
        while db.compact().map_err(err)? {}
        drop(db);
        Ok((before, size(&path)?))
    }
}

/// Pairs of `table` with `start <= key < end`; the iterator keeps its transaction alive.
fn range(
    t: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    table: Table,
    start: &[u8],
    end: Option<&[u8]>,
) -> ScanIter<'static> {
    let lo = prefixed(table, start);
    let hi = match end {
        Some(end) => prefixed(table, end),
        None => vec![table as u8 + 1],
    };
    match t.range::<&[u8]>(lo.as_slice()..hi.as_slice()) {
        Err(e) => Box::new(std::iter::once(Err(err(e)))),
        Ok(range) => Box::new(range.map(|r| {
            r.map(|(k, v)| (k.value()[1..].to_vec(), v.value().to_vec()))
                .map_err(err)
        })),
    }
}

/// One read transaction's view of the table.
struct RedbView {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl View for RedbView {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let k = prefixed(table, key);
        Ok(self
            .table
            .get(k.as_slice())
            .map_err(err)?
            .map(|v| v.value().to_vec()))
    }

    fn scan<'a>(&'a self, table: Table, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a> {
        range(&self.table, table, start, end)
    }

    fn last_with_prefix(
        &self,
        table: Table,
        prefix: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        let lo = prefixed(table, prefix);
        let mut range = match super::prefix_end(&lo) {
            Some(hi) => self.table.range::<&[u8]>(lo.as_slice()..hi.as_slice()),
            None => self.table.range::<&[u8]>(lo.as_slice()..),
        }
        .map_err(err)?;
        match range.next_back() {
            None => Ok(None),
            Some(x) => {
                let (k, v) = x.map_err(err)?;
                Ok(Some((k.value()[1..].to_vec(), v.value().to_vec())))
            }
        }
    }
}

impl RedbStore {
    fn begin(&self) -> Result<RedbView, StoreError> {
        let r = match &self.db {
            Db::ReadWrite(db) => db.begin_read(),
            Db::ReadOnly(db) => db.begin_read(),
        }
        .map_err(err)?;
        Ok(RedbView {
            table: r.open_table(TABLE).map_err(err)?,
        })
    }
}

/// Outside a view, every read is its own read transaction.
impl View for RedbStore {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.begin()?.get(table, key)
    }

    fn scan<'a>(&'a self, table: Table, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a> {
        match self.begin() {
            Ok(view) => range(&view.table, table, start, end),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn last_with_prefix(
        &self,
        table: Table,
        prefix: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.begin()?.last_with_prefix(table, prefix)
    }
}

impl Store for RedbStore {
    fn view(&self) -> Result<Box<dyn View + '_>, StoreError> {
        Ok(Box::new(self.begin()?))
    }

    fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let Db::ReadWrite(db) = &self.db else {
            return Err(StoreError::Engine(
                "redb: the ledger was opened read-only (by a reading command)".into(),
            ));
        };
        let mut ops = batch.ops;
        // In key order (a stable sort: the later of two writes of one key still wins): each
        // insert then descends into the pages the previous one just copied.
        ops.sort_by(|a, b| (a.0 as u8, &a.1).cmp(&(b.0 as u8, &b.1)));
        let w = db.begin_write().map_err(err)?;
        {
            let mut t = w.open_table(TABLE).map_err(err)?;
            let mut k = Vec::with_capacity(64);
            for (table, key, value) in ops {
                k.clear();
                k.push(table as u8);
                k.extend_from_slice(&key);
                match value {
                    Some(v) => {
                        t.insert(k.as_slice(), v.as_slice()).map_err(err)?;
                    }
                    None => {
                        t.remove(k.as_slice()).map_err(err)?;
                    }
                }
            }
        }
        w.commit().map_err(err)
    }

    fn engine(&self) -> &'static str {
        "redb"
    }

    fn another_reader(&self, cache_bytes: u64) -> Result<Option<Box<dyn Store>>, StoreError> {
        // Only beside a read-only handle: no writer can then be open, in this process or
        // another, so both handles read the same committed state.
        if !matches!(self.db, Db::ReadOnly(_)) {
            return Ok(None);
        }
        let db = Database::builder()
            .set_cache_size(cache_bytes as usize)
            .open_read_only(&self.path)
            .map_err(err)?;
        Ok(Some(Box::new(RedbStore {
            db: Db::ReadOnly(db),
            path: self.path.clone(),
        })))
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        std::fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(|source| StoreError::Io {
                path: self.path.display().to_string(),
                source,
            })
    }
}
