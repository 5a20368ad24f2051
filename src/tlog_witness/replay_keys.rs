//! The replaying witness's per-key state ([`Keys`], the auditor's `KeyStore`): each key's
//! latest event leaf as of the latest map leaf replayed, in memory while it fits and in the
//! replay database's `replay_keys` table beyond.
//!
//! `replay_keys` is rebuilt by each open (the leaves are the state; the keys are derived from
//! them), so what it holds need not be durable, only complete once read. What the auditor
//! puts stays in memory, unwritten, until more than [`KEYS_UNWRITTEN`] keys are; then the page
//! being stored writes them all to `replay_keys` in its transaction, and once that commits
//! memory starts over. Reads see every put at once. Memory does not grow with the number of
//! keys.
//!
//! The replay asks for a key's head once per event leaf and puts each key changed at each map
//! leaf, so both are one hash-map operation per key. The state map's loads (only once the map
//! no longer fits in memory) ask for ranges of keys: from the first range on, the unwritten
//! entries are also kept in sorted runs for them, merged as they grow so that there are few.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, TableDefinition};

use crate::core::audit::{KeyStore, StoredKey};
use crate::core::hash::Hash;

/// State key → its latest event leaf as of the latest map leaf replayed (index and seq as u64
/// BE, then the leaf hash).
pub(super) const KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("replay_keys");

/// The most keys [`Keys`] keeps in memory and not in `KEYS` (about 9 MiB, and 7 MiB more in
/// the sorted runs once the map asks for ranges) before the next page writes them.
pub(super) const KEYS_UNWRITTEN: usize = 100_000;
// [`Keys`] keeps at most twice as many in memory for heads, the unwritten ones included, so
// that emptying it of what was read from `KEYS` frees at least half.

fn encode(v: &StoredKey) -> [u8; 48] {
    let mut out = [0u8; 48];
    out[..8].copy_from_slice(&v.index.to_be_bytes());
    out[8..16].copy_from_slice(&v.seq.to_be_bytes());
    out[16..].copy_from_slice(&v.leaf_hash);
    out
}

fn decode(k: &[u8], v: &[u8]) -> Result<(Hash, StoredKey), String> {
    let key: Hash = k
        .try_into()
        .map_err(|_| "a replay key of the wrong length (damaged state)".to_string())?;
    if v.len() != 48 {
        return Err("a replay key entry of the wrong length (damaged state)".into());
    }
    let n = |r: std::ops::Range<usize>| u64::from_be_bytes(v[r].try_into().expect("8 bytes"));
    Ok((
        key,
        StoredKey {
            index: n(0..8),
            seq: n(8..16),
            leaf_hash: v[16..].try_into().expect("32 bytes"),
        },
    ))
}

/// A key's entry in memory.
#[derive(Clone, Copy)]
struct Slot {
    entry: StoredKey,
    /// Put and not yet in `KEYS` (else read from `KEYS`).
    unwritten: bool,
}

/// Entries sorted by key, each key once.
type Run = Vec<(Hash, StoredKey)>;

/// The two runs as one: `newer`'s entry wins where both hold a key.
fn merge(older: Run, newer: Run) -> Run {
    let mut out = Vec::with_capacity(older.len() + newer.len());
    let mut a = older.into_iter().peekable();
    let mut b = newer.into_iter().peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                std::cmp::Ordering::Less => a.next(),
                std::cmp::Ordering::Greater => b.next(),
                std::cmp::Ordering::Equal => {
                    a.next();
                    b.next()
                }
            },
        };
        out.extend(next);
    }
    out
}

/// The replay's per-key state (see the module's documentation). Clones share it: the
/// auditor reads and puts, the replay writes and commits.
#[derive(Clone)]
pub(super) struct Keys(Arc<Mutex<Inner>>);

struct Inner {
    db: Arc<Database>,
    /// Every key put and not yet in `KEYS` (its latest entry), and entries read from `KEYS`
    /// lately: what reads look in first.
    mem: HashMap<Hash, Slot>,
    /// How many entries of `mem` are unwritten.
    unwritten: usize,
    /// The unwritten entries again, sorted, for ranges: runs from the oldest to the newest (a
    /// later run's entry replaces an earlier one's), each at most half its predecessor's
    /// length once merged, so at most about log2 of their count. None until the first range:
    /// a replay whose map fits in memory asks for none, and keeps no sorted copy.
    runs: Option<Vec<Run>>,
    /// The page being written also writes every unwritten entry to `KEYS`.
    flushing: bool,
    /// At most about this many unwritten (`KEYS_UNWRITTEN`; `mem`: twice as many).
    limit: usize,
    /// A read snapshot of `KEYS` as last committed (None: open one).
    reader: Option<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>,
}

impl Inner {
    /// Runs `f` on the committed table.
    fn read<T>(
        &mut self,
        f: impl FnOnce(&redb::ReadOnlyTable<&'static [u8], &'static [u8]>) -> Result<T, String>,
    ) -> Result<T, String> {
        if self.reader.is_none() {
            let t = self.db.begin_read().map_err(|e| e.to_string())?;
            self.reader = Some(t.open_table(KEYS).map_err(|e| e.to_string())?);
        }
        f(self.reader.as_ref().expect("opened"))
    }

    /// Every unwritten entry, sorted by key.
    fn unwritten_sorted(&self) -> Run {
        let mut all: Run = self
            .mem
            .iter()
            .filter(|(_, s)| s.unwritten)
            .map(|(k, s)| (*k, s.entry))
            .collect();
        all.sort_unstable_by_key(|e| e.0);
        all
    }

    /// The sorted runs of unwritten entries, made at the first call.
    fn runs(&mut self) -> &[Run] {
        if self.runs.is_none() {
            self.runs = Some(vec![self.unwritten_sorted()]);
        }
        self.runs.as_deref().expect("made")
    }
}

/// A new run of unwritten entries after `runs`, merged with the runs before it while they
/// are not at least twice as long.
fn push_run(runs: &mut Vec<Run>, mut run: Run) {
    while let Some(last) = runs.last() {
        if last.len() > 2 * run.len() {
            break;
        }
        let older = runs.pop().expect("a last run");
        run = merge(older, run);
    }
    runs.push(run);
}

impl Keys {
    pub(super) fn new(db: Arc<Database>) -> Keys {
        Self::with_limit(db, KEYS_UNWRITTEN)
    }

    pub(super) fn with_limit(db: Arc<Database>, limit: usize) -> Keys {
        Keys(Arc::new(Mutex::new(Inner {
            db,
            mem: HashMap::new(),
            unwritten: 0,
            runs: None,
            flushing: false,
            limit,
            reader: None,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().expect("replay keys")
    }

    /// With the page in `w`: writes every unwritten entry to `KEYS` once there are more than
    /// the limit (else nothing); [`Keys::committed`] once `w` is committed.
    pub(super) fn write(&self, w: &redb::WriteTransaction) -> Result<(), String> {
        let mut k = self.lock();
        k.flushing = k.unwritten > k.limit;
        if !k.flushing {
            return Ok(());
        }
        let mut t = w.open_table(KEYS).map_err(|e| e.to_string())?;
        for (key, v) in &k.unwritten_sorted() {
            t.insert(key.as_slice(), encode(v).as_slice())
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The page's transaction committed: if it wrote the unwritten entries, memory starts
    /// over (reads now find them in `KEYS`).
    pub(super) fn committed(&self) {
        let mut k = self.lock();
        if k.flushing {
            k.flushing = false;
            k.mem = HashMap::new();
            // Ranges go on (the map has stubs): none are unwritten now.
            if k.runs.is_some() {
                k.runs = Some(Vec::new());
            }
            k.unwritten = 0;
            k.reader = None;
        }
    }

    /// How many entries are unwritten, and how many are in memory in all.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let k = self.lock();
        (k.unwritten, k.mem.len())
    }
}

impl KeyStore for Keys {
    fn get(&self, key: &Hash) -> Result<Option<StoredKey>, String> {
        let mut k = self.lock();
        if let Some(s) = k.mem.get(key) {
            return Ok(Some(s.entry));
        }
        let found = k.read(
            |t| match t.get(key.as_slice()).map_err(|e| e.to_string())? {
                None => Ok(None),
                Some(v) => decode(key, v.value()).map(|(_, v)| Some(v)),
            },
        )?;
        if let Some(entry) = found {
            // Only entries read from `KEYS` can go: when they are at least half.
            if k.mem.len() >= 2 * k.limit && k.mem.len() >= 2 * k.unwritten {
                k.mem.retain(|_, s| s.unwritten);
            }
            let slot = Slot {
                entry,
                unwritten: false,
            };
            k.mem.insert(*key, slot);
        }
        Ok(found)
    }

    fn range(&self, lo: &Hash, hi: Option<&Hash>) -> Result<Vec<(Hash, StoredKey)>, String> {
        let mut k = self.lock();
        let mut out = std::collections::BTreeMap::new();
        k.read(|t| {
            let items = match hi {
                Some(hi) => t.range(lo.as_slice()..hi.as_slice()),
                None => t.range(lo.as_slice()..),
            }
            .map_err(|e| e.to_string())?;
            for item in items {
                let (k, v) = item.map_err(|e| e.to_string())?;
                let (k, v) = decode(k.value(), v.value())?;
                out.insert(k, v);
            }
            Ok(())
        })?;
        for run in k.runs() {
            let from = run.partition_point(|(k, _)| k < lo);
            let to = hi.map_or(run.len(), |hi| run.partition_point(|(k, _)| k < hi));
            out.extend(run[from..to.max(from)].iter().copied());
        }
        Ok(out.into_iter().collect())
    }

    fn put(&mut self, entries: Vec<(Hash, StoredKey)>) -> Result<(), String> {
        debug_assert!(
            entries.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, each key once"
        );
        let mut guard = self.lock();
        let k = &mut *guard;
        for (key, entry) in &entries {
            let slot = Slot {
                entry: *entry,
                unwritten: true,
            };
            if !k.mem.insert(*key, slot).is_some_and(|s| s.unwritten) {
                k.unwritten += 1;
            }
        }
        if let Some(runs) = &mut k.runs {
            push_run(runs, entries);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

    fn db(dir: &std::path::Path) -> Arc<Database> {
        Arc::new(Database::create(dir.join("keys.redb")).expect("db"))
    }

    fn entry(n: u64) -> StoredKey {
        StoredKey {
            index: n,
            seq: n / 2,
            leaf_hash: [n as u8; 32],
        }
    }

    /// One page: its puts, then written and committed as the replay's `store` does.
    fn page(keys: &mut Keys, db: &Database, puts: &[(u8, u64)]) {
        keys.put(puts.iter().map(|(k, n)| ([*k; 32], entry(*n))).collect())
            .unwrap();
        let w = db.begin_write().unwrap();
        keys.write(&w).unwrap();
        w.commit().unwrap();
        keys.committed();
    }

    /// Reads see every put at once, whether it is in memory or written to `KEYS` (which
    /// happens once more than the limit are unwritten), and ranges merge them, newest first.
    #[test]
    fn keys_in_memory_and_written_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        let mut keys = Keys::with_limit(db.clone(), 3);
        let w = db.begin_write().unwrap();
        w.open_table(KEYS).unwrap();
        w.commit().unwrap();
        let mut want = std::collections::BTreeMap::new();
        let rounds: [&[(u8, u64)]; 6] = [
            &[(1, 10), (2, 11)],
            &[(3, 12)],
            &[(1, 19), (4, 14)],
            &[(2, 16), (5, 15)],
            &[(6, 17)],
            &[(0, 20), (3, 21), (7, 22)],
        ];
        for (r, puts) in rounds.iter().enumerate() {
            keys.put(puts.iter().map(|(k, n)| ([*k; 32], entry(*n))).collect())
                .unwrap();
            for (k, n) in puts.iter() {
                want.insert([*k; 32], entry(*n));
            }
            let check = |keys: &Keys| {
                for k in 0..9u8 {
                    assert_eq!(keys.get(&[k; 32]).unwrap(), want.get(&[k; 32]).copied());
                }
                let all: Vec<_> = want.iter().map(|(k, v)| (*k, *v)).collect();
                assert_eq!(keys.range(&[0; 32], None).unwrap(), all, "round {r}");
                let some: Vec<_> = want
                    .range([2; 32]..[5; 32])
                    .map(|(k, v)| (*k, *v))
                    .collect();
                assert_eq!(keys.range(&[2; 32], Some(&[5; 32])).unwrap(), some);
                assert_eq!(keys.range(&[5; 32], Some(&[2; 32])).unwrap(), vec![]);
            };
            check(&keys);
            let w = db.begin_write().unwrap();
            keys.write(&w).unwrap();
            w.commit().unwrap();
            keys.committed();
            check(&keys);
        }
        // More than 3 were unwritten at some page: they were all written; the rest is not yet.
        let r = db.begin_read().unwrap();
        let t = r.open_table(KEYS).unwrap();
        assert!(t.len().unwrap() >= 4);
        let (unwritten, in_memory) = keys.counts();
        assert!(unwritten <= 3);
        assert!(in_memory <= 9);
        page(&mut keys, &db, &[(8, 18)]);
        assert_eq!(keys.get(&[8; 32]).unwrap(), Some(entry(18)));
    }

    /// However the puts fall into runs, a range is what one sorted map of every put gives.
    #[test]
    fn runs_merge_to_the_latest_entries() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        let w = db.begin_write().unwrap();
        w.open_table(KEYS).unwrap();
        w.commit().unwrap();
        let mut keys = Keys::with_limit(db, 1 << 20);
        let mut want = std::collections::BTreeMap::new();
        let mut x = 7u64;
        for round in 0..200u64 {
            let n = 1 + (round * 37) % 23;
            // As the auditor puts them: sorted, each key once (its latest entry).
            let puts: std::collections::BTreeMap<Hash, StoredKey> = (0..n)
                .map(|i| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ([(x >> 58) as u8; 32], entry(round * 100 + i))
                })
                .collect();
            want.extend(puts.iter().map(|(k, v)| (*k, *v)));
            keys.put(puts.into_iter().collect()).unwrap();
            if round == 50 {
                // The first range sorts what was put so far; puts after it are kept sorted.
                keys.range(&[0; 32], Some(&[0; 32])).unwrap();
            }
            let runs = keys.lock().runs.as_ref().map_or(0, Vec::len);
            assert!(runs <= 12, "{runs} runs after {round} puts");
        }
        let all: Vec<_> = want.into_iter().collect();
        assert_eq!(keys.range(&[0; 32], None).unwrap(), all);
        for (k, v) in &all {
            assert_eq!(keys.get(k).unwrap(), Some(*v));
        }
    }
}
