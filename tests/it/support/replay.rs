//! For the replaying witness's tests: [`LyingLog`], a consentlog log built leaf by leaf from
//! `core` types (an RFC 6962 tree, checkpoints signed by its log key, a real state map for the
//! honest map leaves) and served over HTTP on the log server's public routes
//! (`GET /v1/checkpoint`, `GET /v1/entries`, same JSON, and the entry bundles of
//! `GET /tile/entries/...`), so that a test can make it append a
//! leaf no honest `consentlog serve` would: a map leaf whose root lies, out-of-order times; or
//! serve entry bundles that are not what their path names ([`HostileBundle`]).

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use consentlog::api::{EntryPage, EntryRow, PageQuery};
use consentlog::core::hash::Hash;
use consentlog::core::leaf::{EventLeaf, GenesisLeaf, Leaf, MapLeaf, LEAF_VERSION};
use consentlog::core::map::{MapValue, StateMap};
use consentlog::core::note::Checkpoint;
use consentlog::core::tlog::{MemoryTree, Sha256Hasher};
use consentlog::core::vkey::{Vkey, TYPE_ED25519};
use consentlog::core::vrf::VrfSecretKey;
use ed25519_dalek::SigningKey;

/// Most entries per page, as a server caps them.
const PAGE: u64 = consentlog::api::MAX_PAGE;

struct Inner {
    origin: String,
    key: SigningKey,
    leaves: Vec<Vec<u8>>,
    tree: MemoryTree<Sha256Hasher>,
    map: StateMap,
    heads: std::collections::HashMap<Hash, (u64, u64)>,
    time: u64,
    hostile: Option<HostileBundle>,
    /// Its checkpoint is followed by more bytes than any note can hold.
    oversized_note: bool,
}

/// How a [`LyingLog`] spoils the entry bundles it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostileBundle {
    /// The body cut one byte short (inside its last entry).
    Truncated,
    /// The last entry's length one more than the bytes left.
    LengthPastEnd,
    /// One entry more than the width.
    ExtraEntry,
    /// One entry fewer than the width.
    MissingEntry,
    /// The bundle followed by more bytes than any bundle of its width can hold.
    Oversized,
}

/// A log whose operator holds the log key and appends what it likes, served in the test
/// process until dropped.
pub struct LyingLog {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LyingLog {
    /// A log holding its genesis leaf, dated an hour ago, served on 127.0.0.1.
    pub fn start(origin: &str) -> LyingLog {
        let time = consentlog::ledger::clock::now_ms() - 3_600_000;
        let vrf = VrfSecretKey::from_random(&[0x31; 64]);
        let mut inner = Inner {
            origin: origin.to_string(),
            key: consentlog::keyfile::generate(),
            leaves: Vec::new(),
            tree: MemoryTree::new(Sha256Hasher),
            map: StateMap::new(),
            heads: Default::default(),
            time,
            hostile: None,
            oversized_note: false,
        };
        inner.push(Leaf::Genesis(GenesisLeaf {
            version: LEAF_VERSION,
            origin: origin.to_string(),
            vrf_key: vrf.public_key().to_bytes(),
            genesis_time: time,
            witness_policy: None,
        }));
        let inner = Arc::new(Mutex::new(inner));
        let app = Router::new()
            .route("/v1/checkpoint", get(checkpoint))
            .route("/v1/entries", get(entries))
            .route("/tile/entries/{*bundle}", get(bundle))
            .with_state(inner.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(l.local_addr().expect("addr")).expect("send");
                axum::serve(l, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("serve");
            })
        });
        let addr = rx.recv().expect("the lying log did not start");
        LyingLog {
            url: format!("http://{addr}"),
            inner,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The log's vkey (what a witness gets with `--log`).
    pub fn vkey(&self) -> Vkey {
        let i = self.inner.lock().unwrap();
        Vkey::new(&i.origin, TYPE_ED25519, i.key.verifying_key()).expect("vkey")
    }

    /// Appends `n` event leaves of fresh keys, then an honest map leaf; the new size.
    pub fn honest_batch(&self, n: usize) -> u64 {
        let mut i = self.inner.lock().unwrap();
        for _ in 0..n {
            let key: [u8; 32] = rand_bytes();
            i.event(key);
        }
        let root = i.map.root();
        i.map_leaf(root)
    }

    /// Appends a new event of a key seen before (so a stale map value is a lie that matters),
    /// then a map leaf whose root leaves that key at its previous event; the new size.
    pub fn lying_batch(&self) -> u64 {
        let mut i = self.inner.lock().unwrap();
        let (&key, _) = i.heads.iter().next().expect("a key logged before");
        let stale = i.map.root();
        i.event(key);
        i.map_leaf(stale)
    }

    /// A checkpoint of `size` and `root` signed with the log key, whatever the tree holds (a
    /// fork: another history of that size).
    pub fn sign(&self, size: u64, root: Hash) -> String {
        let i = self.inner.lock().unwrap();
        Checkpoint {
            origin: &i.origin,
            size,
            root,
        }
        .sign(&i.key)
    }

    /// Serves entry bundles spoiled as `h` from now on (None: honest ones again).
    pub fn hostile_bundles(&self, h: Option<HostileBundle>) {
        self.inner.lock().unwrap().hostile = h;
    }

    /// Serves its checkpoint followed by more bytes than any note can hold from now on
    /// (false: the note alone again).
    pub fn oversized_note(&self, on: bool) {
        self.inner.lock().unwrap().oversized_note = on;
    }

    /// The signed checkpoint of the whole tree.
    pub fn checkpoint(&self) -> String {
        self.inner.lock().unwrap().note()
    }

    pub fn size(&self) -> u64 {
        self.inner.lock().unwrap().leaves.len() as u64
    }

    /// The time (ms) of the newest leaf.
    pub fn time(&self) -> u64 {
        self.inner.lock().unwrap().time
    }

    /// Any note text signed with the log key (name = origin): for checkpoints no honest log
    /// would write.
    pub fn sign_text(&self, text: &str) -> String {
        let i = self.inner.lock().unwrap();
        super::witness::sign_note(&i.origin, &i.key, text)
    }

    /// The RFC 6962 consistency proof from `old` to `new` leaves.
    pub fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        let i = self.inner.lock().unwrap();
        consentlog::core::tlog::prove_consistency(
            &Sha256Hasher,
            &i.tree,
            consentlog::core::tlog::TreeSize(old),
            consentlog::core::tlog::TreeSize(new),
        )
        .expect("sizes of the tree")
    }
}

fn rand_bytes() -> [u8; 32] {
    consentlog::keyfile::generate().to_bytes()
}

impl Inner {
    fn push(&mut self, leaf: Leaf) {
        let b = leaf.to_bytes();
        self.tree.push(&b);
        self.leaves.push(b);
    }

    fn event(&mut self, key: Hash) {
        self.time += 1_000;
        let index = self.leaves.len() as u64;
        let (prev, seq) = match self.heads.get(&key) {
            None => (None, 0),
            Some(&(i, s)) => (Some(i), s + 1),
        };
        let e = EventLeaf {
            version: LEAF_VERSION,
            integrated_at: self.time,
            key,
            prev,
            seq,
            commitment: rand_bytes(),
        };
        self.heads.insert(key, (index, seq));
        let leaf = Leaf::Event(e);
        self.map.insert(
            key,
            MapValue {
                index,
                leaf_hash: leaf.leaf_hash(),
            },
        );
        self.push(leaf);
    }

    fn map_leaf(&mut self, map_root: Hash) -> u64 {
        self.time += 1_000;
        self.push(Leaf::Map(MapLeaf {
            version: LEAF_VERSION,
            time: self.time,
            map_root,
        }));
        self.leaves.len() as u64
    }

    fn note(&self) -> String {
        Checkpoint {
            origin: &self.origin,
            size: self.leaves.len() as u64,
            root: self.tree.root(),
        }
        .sign(&self.key)
    }
}

async fn checkpoint(State(i): State<Arc<Mutex<Inner>>>) -> String {
    let i = i.lock().unwrap();
    let mut note = i.note();
    if i.oversized_note {
        note.push_str(&"\n".repeat(consentlog::core::note::MAX_NOTE));
    }
    note
}

async fn entries(
    State(i): State<Arc<Mutex<Inner>>>,
    Query(q): Query<PageQuery>,
) -> Json<EntryPage> {
    let i = i.lock().unwrap();
    let size = i.leaves.len() as u64;
    let start = q.start.unwrap_or(0).min(size);
    let end = q.end.unwrap_or(size).min(size).min(start + PAGE);
    let entries = (start..end)
        .map(|k| {
            let entry = i.leaves[k as usize].clone();
            EntryRow {
                index: k,
                leaf_hash: consentlog::core::leaf::leaf_hash(&entry),
                entry,
            }
        })
        .collect();
    Json(EntryPage {
        start,
        end,
        entries,
    })
}

async fn bundle(
    State(i): State<Arc<Mutex<Inner>>>,
    uri: axum::http::Uri,
) -> Result<Vec<u8>, axum::http::StatusCode> {
    use consentlog::core::tlog::tile::{encode_bundle, push_entry, EntryTile};
    let i = i.lock().unwrap();
    let rest = uri
        .path()
        .strip_prefix("/tile/entries/")
        .unwrap_or_default();
    let t = EntryTile::parse(rest).map_err(|_| axum::http::StatusCode::BAD_REQUEST)?;
    let r = t.entries().expect("in range");
    if r.end > i.leaves.len() as u64 {
        return Err(axum::http::StatusCode::NOT_FOUND);
    }
    let leaves = &i.leaves[r.start as usize..r.end as usize];
    let mut body = encode_bundle(leaves.iter().map(Vec::as_slice)).expect("short leaves");
    match i.hostile {
        None => {}
        Some(HostileBundle::Truncated) => {
            body.pop();
        }
        Some(HostileBundle::LengthPastEnd) => {
            let last = leaves.last().expect("an entry");
            let at = body.len() - last.len() - 2;
            body[at..at + 2].copy_from_slice(&(last.len() as u16 + 1).to_be_bytes());
        }
        Some(HostileBundle::ExtraEntry) => {
            push_entry(&mut body, leaves.last().expect("an entry")).expect("short");
        }
        Some(HostileBundle::MissingEntry) => {
            let last = leaves.last().expect("an entry");
            body.truncate(body.len() - last.len() - 2);
        }
        Some(HostileBundle::Oversized) => {
            body.resize(t.max_body_len() + 1, 0);
        }
    }
    Ok(body)
}

impl Drop for LyingLog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
