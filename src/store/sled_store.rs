//! The sled engine (0.34.7): one tree, tables as a one-byte key prefix, so a batch spanning
//! tables is one atomic `apply_batch`.
//!
//! Durability: sled's `flush()` on Linux ends in `sync_file_range`, which neither flushes the
//! drive's write cache nor the file's metadata (sled issue #1452). After each flush we
//! `fdatasync` sled's log file ourselves, so a commit returns only once its data is on disk.
//! docs/ARCHITECTURE.md shows how to watch the sync calls with strace.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{ScanIter, Store, StoreError, Table, View, WriteBatch};

/// A ledger store in a sled database.
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    dir: PathBuf,
    /// sled's log file, opened once, synced after every flush.
    log_file: Mutex<File>,
}

fn engine_err(e: sled::Error) -> StoreError {
    StoreError::Engine(format!("sled: {e}"))
}

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn prefixed(table: Table, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(table as u8);
    k.extend_from_slice(key);
    k
}

impl SledStore {
    /// Opens (or creates) the database in `dir` with an explicit page cache size.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::LowSpace)
            .flush_every_ms(None);
        // sled releases its file lock a moment after the last handle of a previous opener is
        // dropped (its background threads hold it); wait briefly rather than fail.
        let mut tries = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e))
                    if tries < 100
                        && (e.kind() == std::io::ErrorKind::WouldBlock
                            || e.to_string().contains("could not acquire lock")) =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.to_string().contains("could not acquire lock") =>
                {
                    return Err(StoreError::in_use(dir))
                }
                Err(e) => return Err(engine_err(e)),
            }
        };
        let tree = db.open_tree("consentlog").map_err(engine_err)?;
        let log_path = dir.join("db");
        let log_file = File::options()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| io_err(&log_path, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, e))?;
        Ok(SledStore {
            db,
            tree,
            dir: dir.to_path_buf(),
            log_file: Mutex::new(log_file),
        })
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(engine_err)?;
        let f = self.log_file.lock().expect("log file lock");
        f.sync_data().map_err(|e| io_err(&self.dir.join("db"), e))
    }
}

impl View for SledStore {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree
            .get(prefixed(table, key))
            .map_err(engine_err)?
            .map(|v| v.to_vec()))
    }

    fn scan<'a>(&'a self, table: Table, start: &[u8], end: Option<&[u8]>) -> ScanIter<'a> {
        let lo = prefixed(table, start);
        let hi = match end {
            Some(end) => prefixed(table, end),
            None => vec![table as u8 + 1],
        };
        Box::new(self.tree.range(lo..hi).map(|r| {
            r.map(|(k, v)| (k[1..].to_vec(), v.to_vec()))
                .map_err(engine_err)
        }))
    }

    fn last_with_prefix(
        &self,
        table: Table,
        prefix: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        match self.tree.scan_prefix(prefixed(table, prefix)).next_back() {
            None => Ok(None),
            Some(r) => {
                let (k, v) = r.map_err(engine_err)?;
                Ok(Some((k[1..].to_vec(), v.to_vec())))
            }
        }
    }
}

impl Store for SledStore {
    fn view(&self) -> Result<Box<dyn View + '_>, StoreError> {
        Ok(Box::new(self))
    }

    fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for (table, key, value) in batch.ops {
            let k = prefixed(table, &key);
            match value {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.tree.apply_batch(b).map_err(engine_err)?;
        self.sync()
    }

    fn engine(&self) -> &'static str {
        "sled"
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(engine_err)
    }
}
