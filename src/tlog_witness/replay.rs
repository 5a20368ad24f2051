//! The replaying witness's follower (`consentlog witness --replay URL --log VKEY`): it reads a
//! consentlog log's public leaves from the log server (`GET /v1/checkpoint`, and the
//! c2sp.org/tlog-tiles entry bundles of `GET /tile/entries/...`), replays them with the auditor of `core::audit` (the RFC 6962 tree, the
//! genesis leaf, every key's public `prev`/`seq` chain, the time invariant and every map
//! leaf's root), and records how far it got. [`Replay::gate`] is what the witness asks before
//! it cosigns: a checkpoint beyond the replayed size is "not yet" (503 with `Retry-After`, a
//! deviation from c2sp.org/tlog-witness, which has no such answer); one at or below it is
//! cosigned only if its root is the replayed tree's root at its size, and its size ends at a
//! map leaf (every consentlog checkpoint does).
//!
//! A map leaf whose time is ahead of the witness's clock is not replayed until the clock
//! reaches it (so it is not cosigned). On any broken rule, or leaves that do not hash to a
//! checkpoint the log signed, the witness stops cosigning the log for good (recorded in its
//! state, so a restart does not forget) and writes what it found to a file in its directory:
//! conclusive evidence (`core::evidence`, checked with `consentlog verify-evidence`) when the
//! rule broken is one of its kinds, found by `core::evidence_finder`, or, for a submitted
//! checkpoint that conflicts with a log-signed one of the same size the replay matched,
//! same_size_different_roots; otherwise a text report.
//!
//! Pages of entry bundles (40 bundles, 10,240 leaves, fewer past `PAGE_BYTES`) are fetched
//! (`FETCHERS` requests at a time), split, decoded and hashed on threads of their own, a page
//! or two ahead of the replay (examples/replay_rate.rs measures the rate). A bundle that does
//! not hold exactly the entries its path names, or is longer than any bundle of its width, is
//! refused with an error; nothing of its page is replayed, and the next round fetches it
//! again.
//!
//! State: `DIR/replay.redb` holds the replayed size, every leaf replayed (one row per entry
//! bundle, in the bundle's own encoding, so a restart replays from its own disk, not from the
//! log), the tree root at each size that ends at a map leaf,
//! the checkpoint notes the replay matched, the auditor's per-key state ([`Keys`]: each
//! key's latest event leaf as of the latest map leaf; rebuilt by each open), and the refusal if
//! any. Each page of leaves is committed durably in one transaction with the per-key state it
//! changed, after it was checked: the gate only ever sees checked sizes. In memory: the state
//! map (whole while it fits `MAP_CAP`, then its upper levels), the keys changed since the
//! latest map leaf, up to `KEYS_UNWRITTEN` keys' state not yet in `replay_keys` and as many
//! again read back from it, the tree's frontier and redb's cache, whatever the size of the log.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::replay_keys::{Keys, KEYS};
use super::AddError;
use crate::client::Client;
use crate::core::audit::{Auditor, Problem};
use crate::core::evidence_finder::Finder;
use crate::core::hash::{to_hex, Hash};
use crate::core::leaf::Leaf;
use crate::core::note::{self, SignedCheckpoint};
use crate::core::tlog::tile::{split_bundle, EntryTile, TileError, BUNDLE_WIDTH};
use crate::ledger::clock::Clock;

/// The replay database inside the witness directory.
pub const FILE: &str = "replay.redb";
/// `size` (u64 BE) / `refused` (text) / `url`.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("replay_meta");
/// Entry bundle index `N` → the leaves `N * 256 ..` replayed, as an entry bundle
/// (c2sp.org/tlog-tiles: each leaf a big-endian uint16 length, then its bytes, as served and
/// checked); full but for the last.
const BUNDLES: TableDefinition<u64, &[u8]> = TableDefinition::new("replay_bundles");
/// Before the bundles: leaf index → the leaf's bytes (moved into `BUNDLES` by the next open).
const LEGACY_LEAVES: TableDefinition<u64, &[u8]> = TableDefinition::new("replay_leaves");
/// Tree size that ends at a map leaf → the tree's root at that size.
const ROOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("replay_roots");
/// Tree size → the log-signed checkpoint note of that size whose root the replay matched.
const NOTES: TableDefinition<u64, &[u8]> = TableDefinition::new("replay_notes");
/// The most bytes of state map nodes the replay keeps in memory (the keys below its stubs are
/// read from `KEYS`).
const MAP_CAP: usize = 32 << 20;
const META_SIZE: &str = "size";
const META_REFUSED: &str = "refused";
const META_ORIGIN: &str = "origin";
/// Bundles read back per chunk when a restart replays its own disk (16,384 leaves).
const LOCAL_CHUNK: u64 = 64;

/// Why the replay state could not be opened or kept.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("replay state {path}: {detail}")]
    Engine { path: String, detail: String },
    #[error(
        "replay state {path} follows the log {found:?}, not {ours:?}: give each log its own \
         replaying witness --dir"
    )]
    OtherLog {
        path: String,
        found: String,
        ours: String,
    },
    #[error("replay state {path}: {detail} (damaged state)")]
    Damaged { path: String, detail: String },
}

/// What a replaying witness knows of its log, in memory.
struct Progress {
    auditor: Auditor,
    /// The refusal, once the log was caught.
    refused: Option<String>,
}

/// One log followed and replayed.
pub struct Replay {
    origin: String,
    log_key: VerifyingKey,
    url: String,
    dir: PathBuf,
    db: Arc<Database>,
    /// The auditor's per-key state: written with each page.
    keys: Keys,
    clock: Arc<dyn Clock>,
    progress: Mutex<Progress>,
    stop: AtomicBool,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("origin", &self.origin)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// An error while following the log (the next round tries again).
type Round<T> = Result<T, String>;

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn auditor(log_key: &VerifyingKey, origin: &str, keys: &Keys) -> Auditor {
    // Checkpoints are checked here, one at a time, as they are fetched; map leaves in the
    // future are held back before the auditor sees them, so its own bound is not needed.
    Auditor::new(log_key, origin, &[], u64::MAX).with_key_store(Box::new(keys.clone()), MAP_CAP)
}

/// The violations of a replay that mean the log lied (the auditor complains that it was given
/// no checkpoint: this replay checks them itself).
fn lies(a: &Auditor) -> Vec<String> {
    a.violations()
        .iter()
        .filter(|v| !matches!(v.problem, Problem::NoCheckpoints))
        .map(|v| v.to_string())
        .collect()
}

/// Pages fetched ahead of the replay.
const PREFETCH: usize = 2;
/// Entry bundles in a page (a page is replayed, then stored in one transaction): 10,240
/// leaves.
const PAGE_BUNDLES: usize = 40;
/// Entry bundles of a page requested at once: each request waits for the log server, which
/// reads the bundle's leaves from its store, so one at a time leaves its cores idle.
const FETCHERS: usize = 4;
/// Bundle bytes after which a page takes no more bundles (the rest come in the next page). A
/// page of consentlog leaves is about 1 MiB; a hostile log's bundles may be up to 16 MiB each
/// (`EntryTile::max_body_len`), and this keeps a page of them to this plus the `FETCHERS`
/// bundles in flight.
const PAGE_BYTES: usize = 8 << 20;

/// An entry bundle as served (c2sp.org/tlog-tiles), checked to hold exactly its width of
/// entries: its body and where each entry lies in it.
struct Fetched {
    tile: EntryTile,
    body: Vec<u8>,
    spans: Vec<std::ops::Range<usize>>,
}

impl Fetched {
    fn new(tile: EntryTile, body: Vec<u8>) -> Result<Fetched, TileError> {
        let spans = split_bundle(&body, usize::from(tile.width))?;
        Ok(Fetched { tile, body, spans })
    }

    /// The bundle's first entry's index.
    fn first(&self) -> u64 {
        self.tile.index * BUNDLE_WIDTH
    }

    /// Entries `from..to` (positions in the bundle) as bundle bytes: each length and entry.
    fn encoded(&self, from: usize, to: usize) -> &[u8] {
        if from >= to {
            return &[];
        }
        &self.body[self.spans[from].start - 2..self.spans[to - 1].end]
    }
}

/// A page of leaves from `start`, in whole bundles (the first may begin before `start`: its
/// earlier entries were replayed before), each leaf strictly decoded (or why not) with its leaf
/// hash: done on the fetching thread, so the replay only replays.
struct Page {
    start: u64,
    bundles: Vec<Fetched>,
    decoded: Vec<Result<(Leaf, Hash), String>>,
}

impl Page {
    fn new(start: u64, bundles: Vec<Fetched>) -> Page {
        let mut page = Page {
            start,
            bundles,
            decoded: Vec::new(),
        };
        let decoded = page
            .leaves()
            .map(|b| {
                Leaf::decode(b)
                    .map(|l| (l, crate::core::leaf::leaf_hash(b)))
                    .map_err(|e| e.to_string())
            })
            .collect();
        page.decoded = decoded;
        page
    }

    /// The page's leaves, from `start`.
    fn leaves(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let start = self.start;
        self.bundles.iter().flat_map(move |f| {
            let skip = start.saturating_sub(f.first()) as usize;
            f.spans[skip.min(f.spans.len())..]
                .iter()
                .map(move |r| &f.body[r.clone()])
        })
    }

    /// Leaves from `start`, copied (for the evidence finder).
    fn to_vecs(&self) -> Vec<Vec<u8>> {
        self.leaves().map(<[u8]>::to_vec).collect()
    }
}

/// The bundles that hold the leaves `at..` of a tree of `end` leaves, at most
/// `PAGE_BUNDLES` of them and no more once they hold `PAGE_BYTES`, fetched `FETCHERS` at a
/// time (each on its own connection; the log server answers them on its own threads), each
/// read up to the longest body its width allows and checked to hold exactly its width of
/// entries: a bundle too long, cut short, with a length past its end, or with more or fewer
/// entries is refused (nothing is replayed from this page; the first such bundle is the one
/// named). The bundles, and the index of the first leaf after them.
fn fetch_page(client: &Client, at: u64, end: u64) -> Round<(Vec<Fetched>, u64)> {
    let mut tiles = Vec::new();
    let mut next = at;
    while next < end && tiles.len() < PAGE_BUNDLES {
        let tile = EntryTile::containing(next, end);
        next = tile.index * BUNDLE_WIDTH + u64::from(tile.width);
        tiles.push(tile);
    }
    let fetch = |tile: &EntryTile| -> Round<Fetched> {
        let body = client
            .entry_bundle(tile)
            .map_err(|e| format!("entry bundle {}: {e}", tile.path()))?;
        Fetched::new(*tile, body).map_err(|e| {
            format!(
                "the log sent a bad entry bundle {} (entries {}..): {e}",
                tile.path(),
                tile.index * BUNDLE_WIDTH
            )
        })
    };
    // Fetcher w fetches bundles w, w + FETCHERS, ... until the page holds `PAGE_BYTES`; the
    // results go back in order.
    let mut slots: Vec<Option<Round<Fetched>>> = (0..tiles.len()).map(|_| None).collect();
    let held = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..FETCHERS.min(tiles.len()))
            .map(|w| {
                let (tiles, fetch, held) = (&tiles, &fetch, &held);
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for (n, t) in tiles.iter().enumerate().skip(w).step_by(FETCHERS) {
                        // The first bundle always: a page holds at least one.
                        if n > 0 && held.load(Ordering::Relaxed) >= PAGE_BYTES {
                            break;
                        }
                        let r = fetch(t);
                        if let Ok(f) = &r {
                            held.fetch_add(f.body.len(), Ordering::Relaxed);
                        }
                        out.push((n, r));
                    }
                    out
                })
            })
            .collect();
        for worker in workers {
            for (n, r) in worker.join().expect("a bundle fetcher panicked") {
                slots[n] = Some(r);
            }
        }
    });
    let bundles = leading(slots)?;
    let last = bundles.last().expect("the first bundle is always fetched");
    let next = last.first() + u64::from(last.tile.width);
    Ok((bundles, next))
}

/// The results up to the first slot left empty, or the first error among them.
fn leading<T>(slots: Vec<Option<Round<T>>>) -> Round<Vec<T>> {
    slots.into_iter().map_while(|s| s).collect()
}

impl Replay {
    /// Opens (or creates) `dir/replay.redb` for the log `origin` (key `log_key`) served at
    /// `url`, and replays the leaves it holds (from its own disk).
    pub fn open(
        dir: &Path,
        origin: &str,
        log_key: VerifyingKey,
        url: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Replay, ReplayError> {
        let path = dir.join(FILE);
        let engine = |e: &dyn std::fmt::Display| ReplayError::Engine {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        let damaged = |detail: String| ReplayError::Damaged {
            path: path.display().to_string(),
            detail,
        };
        std::fs::create_dir_all(dir).map_err(|x| engine(&x))?;
        let db = Arc::new(
            redb::Builder::new()
                // Small: the follower writes bundles it rarely reads back, and reads keys
                // mostly from its own memory. At 10M leaves (500,000 keys) its peak RSS was
                // 285 MiB with 64 MiB here, 237 MiB with 16 MiB, at the same rate.
                .set_cache_size(16 << 20)
                .create(&path)
                .map_err(|x| engine(&x))?,
        );
        let keys = Keys::new(db.clone());
        let (size, refused) = {
            let mut w = db.begin_write().map_err(|x| engine(&x))?;
            w.set_durability(Durability::Immediate)
                .map_err(|x| engine(&x))?;
            let out = {
                let mut meta = w.open_table(META).map_err(|x| engine(&x))?;
                let found = meta
                    .get(META_ORIGIN)
                    .map_err(|x| engine(&x))?
                    .map(|v| String::from_utf8_lossy(v.value()).into_owned());
                match found {
                    Some(f) if f != origin => {
                        return Err(ReplayError::OtherLog {
                            path: path.display().to_string(),
                            found: f,
                            ours: origin.to_string(),
                        })
                    }
                    Some(_) => {}
                    None => {
                        meta.insert(META_ORIGIN, origin.as_bytes())
                            .map_err(|x| engine(&x))?;
                    }
                }
                let size = match meta.get(META_SIZE).map_err(|x| engine(&x))? {
                    None => 0,
                    Some(v) => u64::from_be_bytes(
                        v.value()
                            .try_into()
                            .map_err(|_| damaged("replayed size".into()))?,
                    ),
                };
                let refused = meta
                    .get(META_REFUSED)
                    .map_err(|x| engine(&x))?
                    .map(|v| String::from_utf8_lossy(v.value()).into_owned());
                w.open_table(BUNDLES).map_err(|x| engine(&x))?;
                migrate_leaves(&w, size).map_err(|x| engine(&x))?;
                w.open_table(ROOTS).map_err(|x| engine(&x))?;
                w.open_table(NOTES).map_err(|x| engine(&x))?;
                // The per-key state is rebuilt by the replay below.
                w.delete_table(KEYS).map_err(|x| engine(&x))?;
                w.open_table(KEYS).map_err(|x| engine(&x))?;
                (size, refused)
            };
            w.commit().map_err(|x| engine(&x))?;
            out
        };
        let mut a = auditor(&log_key, origin, &keys);
        if refused.is_none() {
            // Replay what was already checked, from this witness's own disk.
            let r = db.begin_read().map_err(|x| engine(&x))?;
            let bundles = r.open_table(BUNDLES).map_err(|x| engine(&x))?;
            let mut next = 0;
            while next < size {
                let first = next / BUNDLE_WIDTH;
                let last = (size - 1) / BUNDLE_WIDTH;
                let end_bundle = last.min(first + LOCAL_CHUNK - 1);
                let mut chunk = Vec::with_capacity((LOCAL_CHUNK * BUNDLE_WIDTH) as usize);
                for item in bundles.range(first..=end_bundle).map_err(|x| engine(&x))? {
                    let (n, v) = item.map_err(|x| engine(&x))?;
                    if n.value() != next / BUNDLE_WIDTH {
                        return Err(damaged(format!("leaf {next} missing")));
                    }
                    let tile = EntryTile::containing(next, size);
                    let f = Fetched::new(tile, v.value().to_vec())
                        .map_err(|e| damaged(format!("entry bundle {}: {e}", tile.index)))?;
                    for r in &f.spans {
                        let b = &f.body[r.clone()];
                        let leaf =
                            Leaf::decode(b).map_err(|e| damaged(format!("leaf {next}: {e}")))?;
                        chunk.push((leaf, crate::core::leaf::leaf_hash(b)));
                        next += 1;
                    }
                }
                if next <= end_bundle * BUNDLE_WIDTH {
                    return Err(damaged(format!("leaf {next} missing")));
                }
                a.push_public(chunk);
                if let Some(e) = a.storage_error() {
                    return Err(engine(&e));
                }
                // The keys put so far, to the disk (not synced: an interrupted open starts
                // the rebuild over).
                let mut w = db.begin_write().map_err(|x| engine(&x))?;
                w.set_durability(Durability::None).map_err(|x| engine(&x))?;
                keys.write(&w).map_err(|x| engine(&x))?;
                w.commit().map_err(|x| engine(&x))?;
                keys.committed();
            }
            let lied = lies(&a);
            if let Some(first) = lied.first() {
                return Err(damaged(format!("stored leaves break a rule: {first}")));
            }
            let roots = r.open_table(ROOTS).map_err(|x| engine(&x))?;
            if size > 0 {
                if let Some(last) = roots.last().map_err(|x| engine(&x))? {
                    // The last map-leaf size is at most `size`; the replay must pass through it
                    // with the same root, which is checked by recomputing it here only when it
                    // is the replayed size itself.
                    if last.0.value() == size && last.1.value() != a.root() {
                        return Err(damaged("stored root differs from the replay".into()));
                    }
                }
            }
        }
        Ok(Replay {
            origin: origin.to_string(),
            log_key,
            url: url.trim_end_matches('/').to_string(),
            dir: dir.to_path_buf(),
            db,
            keys,
            clock,
            progress: Mutex::new(Progress {
                auditor: a,
                refused,
            }),
            stop: AtomicBool::new(false),
        })
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The log server followed.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many leaves have been replayed and checked.
    pub fn replayed(&self) -> u64 {
        self.progress.lock().expect("replay lock").auditor.size()
    }

    /// Why the log is no longer cosigned, if it was caught.
    pub fn refused(&self) -> Option<String> {
        self.progress.lock().expect("replay lock").refused.clone()
    }

    /// The root of the replayed tree at `size`, if `size` ends at a map leaf replayed.
    pub fn root_at(&self, size: u64) -> Result<Option<Hash>, String> {
        let r = self.db.begin_read().map_err(|e| e.to_string())?;
        let t = r.open_table(ROOTS).map_err(|e| e.to_string())?;
        let v = t.get(size).map_err(|e| e.to_string())?;
        Ok(v.and_then(|v| v.value().try_into().ok()))
    }

    /// The log-signed checkpoint note of `size` the replay matched, if the follower fetched one
    /// of that size; or else the smallest one larger.
    fn note_at_or_after(&self, size: u64) -> Result<Option<(u64, String)>, String> {
        let r = self.db.begin_read().map_err(|e| e.to_string())?;
        let t = r.open_table(NOTES).map_err(|e| e.to_string())?;
        let mut it = t.range(size..).map_err(|e| e.to_string())?;
        match it.next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(|e| e.to_string())?;
                Ok(Some((
                    k.value(),
                    String::from_utf8_lossy(v.value()).into_owned(),
                )))
            }
        }
    }

    /// Remembers `cp`, whose root the replay matched at its size.
    fn keep_note(&self, cp: &SignedCheckpoint) -> Round<()> {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        let mut w = self.db.begin_write().map_err(|x| e(&x))?;
        w.set_durability(Durability::Immediate).map_err(|x| e(&x))?;
        {
            let mut t = w.open_table(NOTES).map_err(|x| e(&x))?;
            t.insert(cp.size, cp.note.as_bytes()).map_err(|x| e(&x))?;
        }
        w.commit().map_err(|x| e(&x))
    }

    /// A log-signed checkpoint (`note`, of `size`) whose root is not the replayed tree's at
    /// its size: the log signed two trees. With a log-signed note of the same size whose root
    /// the replay matched, that is conclusive evidence (same_size_different_roots); with only a
    /// larger one, the witness knows it (the leaves it replayed hash to that one's root, and
    /// to another root at `size`), but no evidence kind shows it without the leaves: a text
    /// report. Either way the log is no longer cosigned.
    fn conflicting(&self, size: u64, note: &str, replayed: &Hash) {
        let held = match self.note_at_or_after(size) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("replay state: {e}");
                None
            }
        };
        let why = format!(
            "the log signed a checkpoint of size {size} whose root is not that of the leaves \
             it served (replayed root {} at that size)",
            to_hex(replayed)
        );
        match held {
            Some((s, held)) if s == size => {
                let found = crate::core::evidence::compare(&self.log_key, &held, note, None);
                match found {
                    Ok(crate::core::evidence::Comparison::Fork(e))
                        if crate::core::evidence::check(&e).is_ok() =>
                    {
                        self.caught_with(&why, Some(*e), None, None, &[note]);
                    }
                    other => {
                        tracing::warn!("replay: no conclusive evidence from the notes: {other:?}");
                        self.caught_with(&why, None, None, None, &[&held, note]);
                    }
                }
            }
            Some((_, held)) => self.caught_with(&why, None, None, None, &[&held, note]),
            None => self.caught_with(&why, None, None, None, &[note]),
        }
    }

    /// Whether the witness may cosign the checkpoint `note` of `size` and `root` of `origin`
    /// (its log signature already verified). One that conflicts with the replayed tree is
    /// refused, and the log with it (see `Replay::conflicting`).
    pub fn gate(&self, origin: &str, size: u64, root: &Hash, note: &str) -> Result<(), AddError> {
        if origin != self.origin {
            return Ok(());
        }
        let (replayed, refused) = {
            let p = self.progress.lock().expect("replay lock");
            (p.auditor.size(), p.refused.clone())
        };
        if let Some(why) = refused {
            return Err(AddError::LogCaught(why));
        }
        if size > replayed {
            return Err(AddError::NotReplayed { size, replayed });
        }
        let at = self.root_at(size).map_err(|e| {
            tracing::error!("replay state: {e}");
            AddError::Storage("a storage failure, logged on the witness; retry later".into())
        })?;
        match at {
            Some(r) if r == *root => Ok(()),
            Some(r) => {
                self.conflicting(size, note, &r);
                Err(AddError::LogCaught(self.refused().unwrap_or_default()))
            }
            None => Err(AddError::NotReplayedRoot {
                size,
                detail: "no map leaf ends the log at this size".into(),
            }),
        }
    }

    /// Asks [`Replay::follow`] to return (within one round).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Follows the log until [`Replay::stop`]: a round every `interval` (at once again when a
    /// round made progress).
    pub fn follow(&self, interval: Duration) {
        let client = Client::new(&self.url, None);
        while !self.stop.load(Ordering::SeqCst) {
            let progressed = match self.round(&client) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(log = %self.origin, url = %self.url, "replay: {e}");
                    false
                }
            };
            if !progressed {
                let mut slept = Duration::ZERO;
                while slept < interval && !self.stop.load(Ordering::SeqCst) {
                    let step = Duration::from_millis(50).min(interval - slept);
                    std::thread::sleep(step);
                    slept += step;
                }
            }
        }
    }

    /// Spawns [`Replay::follow`] on a thread of its own.
    pub fn spawn(self: &Arc<Self>, interval: Duration) -> std::thread::JoinHandle<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("replay".into())
            .spawn(move || me.follow(interval))
            .expect("spawn the replay thread")
    }

    /// One round: fetch the newest checkpoint and replay up to it. Whether leaves were
    /// replayed.
    pub fn round(&self, client: &Client) -> Round<bool> {
        if self.refused().is_some() {
            return Ok(false);
        }
        let text = client
            .checkpoint()
            .map_err(|e| format!("checkpoint: {e}"))?;
        let cp = note::open(&text, &self.log_key)
            .map_err(|e| format!("the log's checkpoint does not open under its key: {e}"))?;
        if cp.origin != self.origin {
            return Err(format!(
                "the log's checkpoint is for origin {:?}",
                cp.origin
            ));
        }
        let start = self.replayed();
        if cp.size < start {
            return Err(format!(
                "the log's newest checkpoint (size {}) is smaller than the replayed size {start}",
                cp.size
            ));
        }
        // Pages are fetched (and their leaves decoded) on threads of their own, at most
        // `PREFETCH` ahead, while this one replays and stores the page before: the log server
        // works on the next page while the witness checks this one.
        let mut next = start;
        std::thread::scope(|scope| -> Round<()> {
            // Two threads: one waits for the server, bundle after bundle; the other decodes
            // and hashes the leaves of the page before.
            let (fetched_tx, fetched_rx) =
                std::sync::mpsc::sync_channel::<Round<(u64, Vec<Fetched>)>>(1);
            let (tx, rx) = std::sync::mpsc::sync_channel::<Round<(u64, Page)>>(PREFETCH);
            let url = &self.url;
            let stop = &self.stop;
            let end = cp.size;
            scope.spawn(move || {
                let client = Client::new(url, None);
                let mut at = start;
                while at < end && !stop.load(Ordering::SeqCst) {
                    let page = fetch_page(&client, at, end);
                    let failed = page.is_err();
                    let sent = page.map(|(bundles, next)| {
                        let from = at;
                        at = next;
                        (from, bundles)
                    });
                    if fetched_tx.send(sent).is_err() || failed {
                        return;
                    }
                }
            });
            scope.spawn(move || {
                for fetched in fetched_rx {
                    let failed = fetched.is_err();
                    let page = fetched.map(|(at, bundles)| (at, Page::new(at, bundles)));
                    if tx.send(page).is_err() || failed {
                        return;
                    }
                }
            });
            for page in rx {
                let (at, page) = page?;
                debug_assert_eq!(at, next);
                if self.stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                match self.replay_page(&cp, next, page)? {
                    Some(end) => next = end,
                    // Held back: a map leaf ahead of the clock.
                    None => return Ok(()),
                }
                if self.refused().is_some() {
                    return Ok(());
                }
            }
            Ok(())
        })?;
        if self.refused().is_none() && next == cp.size {
            let root = self.progress.lock().expect("replay lock").auditor.root();
            if root == cp.root {
                self.keep_note(&cp)?;
            } else if matches!(self.note_at_or_after(cp.size), Ok(Some((s, _))) if s == cp.size) {
                // A note of this size matched the replay before: the log signed two roots.
                self.conflicting(cp.size, &cp.note, &root);
            } else {
                self.caught(
                    &format!(
                        "the leaves served do not hash to the signed checkpoint of size {} \
                         (replayed root {}, signed root {})",
                        cp.size,
                        to_hex(&root),
                        to_hex(&cp.root)
                    ),
                    Some(&cp),
                    None,
                );
            }
        }
        Ok(self.replayed() > start)
    }

    /// Replays the leaves of `page`, starting at `start`, all covered by `cp`, and stores them;
    /// the new replayed size, or None if it stopped before a map leaf ahead of the clock
    /// (what came before it was replayed).
    fn replay_page(&self, cp: &SignedCheckpoint, start: u64, mut page: Page) -> Round<Option<u64>> {
        debug_assert_eq!(start, page.start);
        let now = self.clock.now_ms();
        let decoded = std::mem::take(&mut page.decoded);
        let mut leaves = Vec::with_capacity(decoded.len());
        let mut held = false;
        for (k, d) in decoded.into_iter().enumerate() {
            let i = start + k as u64;
            match d {
                Ok((Leaf::Map(m), _)) if m.time > now => {
                    tracing::info!(
                        log = %self.origin,
                        "replay: map leaf {i} is dated {} ms ahead of this witness's clock; \
                         held back until the clock reaches it",
                        m.time - now
                    );
                    held = true;
                    break;
                }
                Ok(l) => leaves.push(l),
                Err(e) => {
                    self.caught(
                        &format!("leaf {i} does not decode: {e}"),
                        Some(cp),
                        Some((start, &page.to_vecs())),
                    );
                    return Ok(Some(start));
                }
            }
        }
        let count = leaves.len();
        // Chunks ending at each map leaf, so the root at every map leaf is known.
        let mut roots = Vec::new();
        let mut p = self.progress.lock().expect("replay lock");
        let mut chunk = Vec::new();
        let mut i = start;
        for (leaf, hash) in leaves {
            let is_map = matches!(leaf, Leaf::Map(_));
            chunk.push((leaf, hash));
            i += 1;
            if is_map {
                p.auditor.push_public(std::mem::take(&mut chunk));
                roots.push((i, p.auditor.root()));
            }
        }
        if !chunk.is_empty() {
            p.auditor.push_public(chunk);
        }
        if let Some(e) = p.auditor.storage_error() {
            // The in-memory replay is now unreliable: rebuilt from the disk on the next open.
            let e = format!("replay state could not be read: {e}");
            p.refused = Some(e.clone());
            return Err(e);
        }
        let lied = lies(&p.auditor);
        if !lied.is_empty() {
            drop(p);
            self.caught(&lied.join("; "), Some(cp), Some((start, &page.to_vecs())));
            return Ok(Some(start));
        }
        let end = p.auditor.size();
        // Stored while the lock is held, so the gate sees a size only once it is on disk.
        debug_assert_eq!(end, start + count as u64);
        let stored = self.store(&page, end, &roots);
        if let Err(e) = stored {
            // The in-memory replay is ahead of the disk: rebuild it from the disk on the next
            // open; until then, stop here.
            p.refused = Some(format!("replay state could not be written: {e}"));
            return Err(format!("store: {e}"));
        }
        drop(p);
        Ok((!held).then_some(end))
    }

    /// Stores the leaves of `page` up to `end` (into its bundles' rows), the roots at the map
    /// leaves among them, the per-key state and the new size, in one durable transaction.
    fn store(&self, page: &Page, end: u64, roots: &[(u64, Hash)]) -> Round<()> {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        let mut w = self.db.begin_write().map_err(|x| e(&x))?;
        w.set_durability(Durability::Immediate).map_err(|x| e(&x))?;
        {
            let mut t = w.open_table(BUNDLES).map_err(|x| e(&x))?;
            for f in &page.bundles {
                // Entries of this bundle stored before, and replayed now.
                let from = page.start.saturating_sub(f.first()) as usize;
                let to = (end.saturating_sub(f.first()) as usize).min(f.spans.len());
                if to <= from {
                    continue;
                }
                let new = f.encoded(from, to);
                if from == 0 {
                    t.insert(f.tile.index, new).map_err(|x| e(&x))?;
                } else {
                    // A partial bundle grown: what was stored (and replayed), then the rest.
                    let mut row = match t.get(f.tile.index).map_err(|x| e(&x))? {
                        Some(v) => v.value().to_vec(),
                        None => return Err(format!("entry bundle {} missing", f.tile.index)),
                    };
                    row.extend_from_slice(new);
                    t.insert(f.tile.index, row.as_slice()).map_err(|x| e(&x))?;
                }
            }
            let mut t = w.open_table(ROOTS).map_err(|x| e(&x))?;
            for (size, root) in roots {
                t.insert(*size, root.as_slice()).map_err(|x| e(&x))?;
            }
            let mut t = w.open_table(META).map_err(|x| e(&x))?;
            t.insert(META_SIZE, be(end).as_slice()).map_err(|x| e(&x))?;
        }
        self.keys.write(&w)?;
        w.commit().map_err(|x| e(&x))?;
        self.keys.committed();
        Ok(())
    }

    /// The log broke a rule: stop cosigning it for good and write what was found.
    /// `fresh` holds leaves fetched but not stored (from their index), for the evidence.
    fn caught(&self, why: &str, cp: Option<&SignedCheckpoint>, fresh: Option<(u64, &[Vec<u8>])>) {
        self.caught_with(why, None, cp, fresh, &[]);
    }

    /// [`Replay::caught`], with the evidence if it is already known, and the log-signed notes
    /// the text report (if no evidence is found) quotes.
    fn caught_with(
        &self,
        why: &str,
        evidence: Option<crate::core::evidence::Evidence>,
        cp: Option<&SignedCheckpoint>,
        fresh: Option<(u64, &[Vec<u8>])>,
        notes: &[&str],
    ) {
        let path = self.write_evidence(why, evidence, cp, fresh, notes);
        let reason = match &path {
            Ok(p) => format!("{why} (written to {})", p.display()),
            Err(e) => format!("{why} (the evidence could not be written: {e})"),
        };
        tracing::error!(
            log = %self.origin,
            evidence = %path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            "THE LOG LIED; no longer cosigning it: {why}"
        );
        let stored = (|| -> Result<(), String> {
            let e = |x: &dyn std::fmt::Display| x.to_string();
            let mut w = self.db.begin_write().map_err(|x| e(&x))?;
            w.set_durability(Durability::Immediate).map_err(|x| e(&x))?;
            {
                let mut t = w.open_table(META).map_err(|x| e(&x))?;
                t.insert(META_REFUSED, reason.as_bytes())
                    .map_err(|x| e(&x))?;
            }
            w.commit().map_err(|x| e(&x))
        })();
        if let Err(e) = stored {
            tracing::error!("replay state: the refusal could not be stored: {e}");
        }
        self.progress.lock().expect("replay lock").refused = Some(reason);
    }

    /// Writes conclusive evidence (`evidence`, or what the finder makes from the leaves under
    /// `cp`) or, where there is none, a text report quoting `cp` and `notes`; the file's path.
    fn write_evidence(
        &self,
        why: &str,
        evidence: Option<crate::core::evidence::Evidence>,
        cp: Option<&SignedCheckpoint>,
        fresh: Option<(u64, &[Vec<u8>])>,
        notes: &[&str],
    ) -> Result<PathBuf, String> {
        let found = evidence.or_else(|| {
            cp.and_then(|cp| match self.find(cp, fresh) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("replay: no conclusive evidence: {e}");
                    None
                }
            })
        });
        if let Some(e) = found {
            let path = self.dir.join(format!("evidence-{}.json", e.claim.kind()));
            let text = serde_json::to_string_pretty(&e).expect("json") + "\n";
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok(path);
        }
        let path = self.dir.join("refusal.txt");
        let mut text = format!("log {}: {why}\n", self.origin);
        if let Some(cp) = cp {
            text.push_str("\nthe log's signed checkpoint:\n\n");
            text.push_str(&cp.note);
        }
        for note in notes {
            text.push_str("\na checkpoint the log signed:\n\n");
            text.push_str(note);
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// Every leaf of `cp`'s tree (stored, fresh, then fetched) through the evidence finder.
    fn find(
        &self,
        cp: &SignedCheckpoint,
        fresh: Option<(u64, &[Vec<u8>])>,
    ) -> Result<Option<crate::core::evidence::Evidence>, String> {
        let mut f = Finder::new(cp.clone());
        let mut next = 0u64;
        let stored_end = fresh.map_or(u64::MAX, |(s, _)| s).min(cp.size);
        {
            let r = self.db.begin_read().map_err(|e| e.to_string())?;
            let t = r.open_table(BUNDLES).map_err(|e| e.to_string())?;
            let size = match r
                .open_table(META)
                .map_err(|e| e.to_string())?
                .get(META_SIZE)
                .map_err(|e| e.to_string())?
            {
                Some(v) => u64::from_be_bytes(v.value().try_into().map_err(|_| "replayed size")?),
                None => 0,
            };
            let stored = size.min(stored_end);
            for item in t.iter().map_err(|e| e.to_string())? {
                if next >= stored {
                    break;
                }
                let (n, v) = item.map_err(|e| e.to_string())?;
                let tile = EntryTile::containing(n.value() * BUNDLE_WIDTH, size);
                let b = Fetched::new(tile, v.value().to_vec()).map_err(|e| e.to_string())?;
                for r in b.spans.iter().take((stored - next) as usize) {
                    f.push(b.body[r.clone()].to_vec());
                    next += 1;
                }
            }
        }
        if let Some((s, leaves)) = fresh {
            if s == next {
                for b in leaves.iter().take((cp.size - next) as usize) {
                    f.push(b.clone());
                    next += 1;
                }
            }
        }
        // The rest from the log, in entry bundles of `cp`'s tree: each read only up to the
        // longest its width allows, as the replay reads them.
        let client = Client::new(&self.url, None);
        while next < cp.size {
            let tile = EntryTile::containing(next, cp.size);
            let body = client.entry_bundle(&tile).map_err(|e| e.to_string())?;
            let b = Fetched::new(tile, body)
                .map_err(|e| format!("entry bundle {}: {e}", tile.path()))?;
            for r in &b.spans[(next - b.first()) as usize..] {
                f.push(b.body[r.clone()].to_vec());
                next += 1;
            }
        }
        let e = f.finish(&self.log_key).map_err(|e| e.to_string())?;
        match e {
            Some(e) => {
                crate::core::evidence::check(&e)
                    .map_err(|x| format!("the evidence found does not check: {x}"))?;
                Ok(Some(e))
            }
            None => Ok(None),
        }
    }
}

/// Moves the leaves of a replay state from before the bundles (one row each, `LEGACY_LEAVES`)
/// into `BUNDLES`, in `w`; nothing if there are none.
fn migrate_leaves(w: &redb::WriteTransaction, size: u64) -> Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let mut bundles = w.open_table(BUNDLES).map_err(|x| e(&x))?;
    {
        let legacy = w.open_table(LEGACY_LEAVES).map_err(|x| e(&x))?;
        let mut row = Vec::new();
        let mut next = 0u64;
        for item in legacy.range(0..size).map_err(|x| e(&x))? {
            let (i, v) = item.map_err(|x| e(&x))?;
            if i.value() != next {
                return Err(format!("leaf {next} missing (damaged state)"));
            }
            crate::core::tlog::tile::push_entry(&mut row, v.value()).map_err(|x| e(&x))?;
            next += 1;
            if next.is_multiple_of(BUNDLE_WIDTH) || next == size {
                bundles
                    .insert((next - 1) / BUNDLE_WIDTH, row.as_slice())
                    .map_err(|x| e(&x))?;
                row.clear();
            }
        }
    }
    w.delete_table(LEGACY_LEAVES).map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

    /// A page keeps the bundles before the first one not fetched (the page was full), and
    /// names the first bad one among those only: a later one is fetched again next round.
    #[test]
    fn a_page_is_its_leading_bundles() {
        let ok = |n: u32| Some(Ok(n));
        let bad = |m: &str| Some(Err(m.to_string()));
        assert_eq!(leading(vec![ok(0), ok(1), ok(2)]), Ok(vec![0, 1, 2]));
        assert_eq!(leading(vec![ok(0), ok(1), None, ok(3)]), Ok(vec![0, 1]));
        assert_eq!(leading(vec![ok(0), None, bad("later")]), Ok(vec![0]));
        assert_eq!(
            leading(vec![ok(0), bad("first"), bad("second"), None]),
            Err("first".into())
        );
        assert_eq!(leading::<u32>(vec![None, ok(1)]), Ok(vec![]));
    }

    fn db(dir: &Path) -> Arc<Database> {
        Arc::new(Database::create(dir.join(FILE)).expect("db"))
    }

    /// A state of one row per leaf is moved into bundles of 256: full ones, then the rest.
    #[test]
    fn leaves_move_into_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        let leaves: Vec<Vec<u8>> = (0..300u32)
            .map(|i| i.to_be_bytes().repeat(1 + i as usize % 5))
            .collect();
        let w = db.begin_write().unwrap();
        {
            let mut t = w.open_table(LEGACY_LEAVES).unwrap();
            for (i, b) in leaves.iter().enumerate() {
                t.insert(i as u64, b.as_slice()).unwrap();
            }
        }
        migrate_leaves(&w, leaves.len() as u64).unwrap();
        w.commit().unwrap();
        let r = db.begin_read().unwrap();
        let t = r.open_table(BUNDLES).unwrap();
        let mut got = Vec::new();
        for (n, width) in [(0u64, 256usize), (1, 44)] {
            let row = t.get(n).unwrap().expect("a bundle row");
            for s in split_bundle(row.value(), width).unwrap() {
                got.push(row.value()[s].to_vec());
            }
        }
        assert_eq!(got, leaves);
        assert_eq!(t.len().unwrap(), 2);
        assert!(
            r.open_table(LEGACY_LEAVES).is_err(),
            "the old table is gone"
        );
    }
}
