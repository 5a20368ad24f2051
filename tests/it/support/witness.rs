//! Witnesses for tests: [`TestWitness`], a `consentlog::tlog_witness` witness served in the
//! test process on 127.0.0.1:0 (its URL is the submission prefix: POST `{url}/add-checkpoint`,
//! its vkey the line a policy names), and [`TestLog`], a real RFC 6962 SHA-256 log in memory
//! (any origin) whose checkpoints are signed notes and whose consistency proofs come from
//! `core::tlog`, to feed it. [`add_checkpoint_body`] writes the request body of
//! c2sp.org/tlog-witness.
//!
//! For the log side: `TestWitness::start(&[log_vkey])`, then give `w.url` and `w.vkey` to the
//! log (a consentlog ledger's vkey is `consentlog::core::vkey::Vkey::new(origin, TYPE_ED25519,
//! log public key)`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use consentlog::core::cosignature::CosignatureVerifier;
use consentlog::core::hash::Hash;
use consentlog::core::tlog::{prove_consistency, tree_hash, MemoryTree, Sha256Hasher, TreeSize};
use consentlog::core::vkey::{key_id, Vkey, TYPE_ED25519};
use consentlog::ledger::clock::{Clock, SystemClock};
use consentlog::tlog_witness::{self, Limits, Witness};
use ed25519_dalek::SigningKey;
use signed_note::{Note, StandardSigner};

use super::http::{agent, send, Resp};

/// The name test witnesses cosign as (unless given another).
pub const WITNESS_NAME: &str = "witness.test/w1";

/// A witness served in the test process, stopped gracefully (and waited for) when dropped.
pub struct TestWitness {
    /// `http://127.0.0.1:PORT`, the submission prefix.
    pub url: String,
    /// The witness's vkey (`name+keyid+base64`, type 0x04).
    pub vkey: String,
    pub name: String,
    /// The witness itself (its state can be read while it serves).
    pub witness: Arc<Witness>,
    /// Its state directory.
    pub dir: PathBuf,
    pub agent: ureq::Agent,
    _tmp: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
    /// A replaying witness's follower thread.
    follower: Option<JoinHandle<()>>,
}

impl TestWitness {
    /// A new witness (fresh key, [`WITNESS_NAME`], a temporary directory, the system clock)
    /// for the logs `logs`.
    pub fn start(logs: &[Vkey]) -> TestWitness {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("witness");
        let mut w = Self::start_with(
            &dir,
            consentlog::keyfile::generate(),
            WITNESS_NAME,
            logs,
            Arc::new(SystemClock),
            Limits::default(),
        );
        w._tmp = Some(tmp);
        w
    }

    /// A witness on `dir` (which outlives it) with everything given.
    pub fn start_with(
        dir: &Path,
        key: SigningKey,
        name: &str,
        logs: &[Vkey],
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> TestWitness {
        Self::start_on("127.0.0.1:0", dir, key, name, logs, clock, limits)
    }

    /// [`TestWitness::start_with`] listening on `addr` (`127.0.0.1:PORT`): a witness whose
    /// URL a policy names before it starts, or one that comes back on its old URL.
    pub fn start_on(
        addr: &str,
        dir: &Path,
        key: SigningKey,
        name: &str,
        logs: &[Vkey],
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> TestWitness {
        let witness = Arc::new(
            Witness::open(dir, key, name, logs.to_vec(), clock)
                .unwrap_or_else(|e| panic!("open witness: {e}")),
        );
        Self::serve(witness, dir, name, limits, addr)
    }

    /// A replaying witness (`consentlog witness --replay url`) of the consentlog log `log`
    /// served at `url`, on `dir`, following it every `interval`.
    pub fn start_replaying(
        dir: &Path,
        key: SigningKey,
        name: &str,
        log: Vkey,
        url: &str,
        clock: Arc<dyn Clock>,
        interval: std::time::Duration,
    ) -> TestWitness {
        Self::start_replaying_on("127.0.0.1:0", dir, key, name, log, url, clock, interval)
    }

    /// [`TestWitness::start_replaying`] listening on `addr` (`127.0.0.1:PORT`): the log that
    /// asks it for cosignatures needs its URL in its policy before the witness can follow
    /// the log's URL.
    #[allow(clippy::too_many_arguments)]
    pub fn start_replaying_on(
        addr: &str,
        dir: &Path,
        key: SigningKey,
        name: &str,
        log: Vkey,
        url: &str,
        clock: Arc<dyn Clock>,
        interval: std::time::Duration,
    ) -> TestWitness {
        let witness = Arc::new(
            Witness::open_replaying(dir, key, name, log, url, clock)
                .unwrap_or_else(|e| panic!("open replaying witness: {e}")),
        );
        let follower = witness.replay().expect("a replay").spawn(interval);
        let mut w = Self::serve(witness, dir, name, Limits::default(), addr);
        w.follower = Some(follower);
        w
    }

    fn serve(
        witness: Arc<Witness>,
        dir: &Path,
        name: &str,
        limits: Limits,
        addr: &str,
    ) -> TestWitness {
        let addr = addr.to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel::<String>();
        let w = witness.clone();
        let d = dir.to_path_buf();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&addr)
                    .await
                    .map_err(|e| format!("bind {addr}: {e}"))?;
                let shutdown = async {
                    let _ = stopped.await;
                };
                let say = move |line: &str| {
                    if let Some(u) = line.strip_prefix("listening on ") {
                        let _ = ready_tx.send(u.to_string());
                    }
                };
                tlog_witness::serve_on(w, listener, &d, &limits, shutdown, say).await
            })
        });
        let url = match ready.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(url) => url,
            Err(e) if thread.is_finished() => panic!(
                "the witness did not start ({e}): {:?}",
                thread.join().map_err(|_| "panicked")
            ),
            Err(e) => panic!("the witness did not start: {e}"),
        };
        TestWitness {
            url,
            vkey: witness.vkey().to_text(),
            name: name.to_string(),
            witness,
            dir: dir.to_path_buf(),
            agent: agent(),
            _tmp: None,
            stop: Some(stop),
            thread: Some(thread),
            follower: None,
        }
    }

    /// POSTs an add-checkpoint body.
    pub fn add_checkpoint(&self, body: &[u8]) -> Resp {
        send(
            &self.agent,
            "POST",
            &format!("{}/add-checkpoint", self.url),
            None,
            Some(body),
        )
    }

    /// The verifier of this witness's cosignatures.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier::parse(&self.vkey).expect("witness vkey")
    }

    /// The latest cosigned (size, root) for `origin`, if any.
    pub fn latest(&self, origin: &str) -> Option<(u64, Hash)> {
        self.witness
            .latest(origin)
            .expect("witness state")
            .map(|r| (r.checkpoint.size, r.checkpoint.root))
    }

    /// Stops serving (requests in flight finish) and waits; the state stays in `dir`.
    pub fn stop(mut self) -> PathBuf {
        self.shut_down();
        self.dir.clone()
    }

    fn shut_down(&mut self) {
        if let Some(f) = self.follower.take() {
            if let Some(r) = self.witness.replay() {
                r.stop();
            }
            let _ = f.join();
        }
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let r = t.join();
            if !std::thread::panicking() {
                assert!(matches!(r, Ok(Ok(()))), "the witness ended badly: {r:?}");
            }
        }
    }
}

impl Drop for TestWitness {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The vkey of a consentlog ledger's log key (type 0x01, name = origin): what a witness is
/// given with `--log` for it.
pub fn ledger_vkey(origin: &str, log_key: &ed25519_dalek::VerifyingKey) -> Vkey {
    Vkey::new(origin, TYPE_ED25519, *log_key).expect("ledger vkey")
}

/// The cosignature lines (`cosignature/v1`) of a note: each signer's name and timestamp
/// (POSIX seconds), in the note's order. Log signature lines (64-byte signatures) are skipped.
pub fn cosignature_times(note: &str) -> Vec<(String, u64)> {
    note.lines()
        .filter_map(|l| l.strip_prefix("\u{2014} "))
        .filter_map(|l| {
            let (name, sig) = l.split_once(' ')?;
            let raw = B64.decode(sig).ok()?;
            // key id (4) || timestamp (8, big-endian) || Ed25519 signature (64)
            (raw.len() == 76).then(|| {
                let t = u64::from_be_bytes(raw[4..12].try_into().expect("8 bytes"));
                (name.to_string(), t)
            })
        })
        .collect()
}

/// The body of a tlog-witness add-checkpoint request.
pub fn add_checkpoint_body(old: u64, proof: &[Hash], note: &str) -> String {
    let mut b = format!("old {old}\n");
    for h in proof {
        b.push_str(&B64.encode(h));
        b.push('\n');
    }
    b.push('\n');
    b.push_str(note);
    b
}

/// A real RFC 6962 SHA-256 log in memory: leaves, its key, signed checkpoints of any size it
/// has reached and consistency proofs between them. Notes are signed with the `signed_note`
/// crate's own Ed25519 signer (not consentlog's), with the key name = origin.
#[derive(Clone)]
pub struct TestLog {
    pub origin: String,
    key: SigningKey,
    tree: MemoryTree<Sha256Hasher>,
    leaves: Vec<Vec<u8>>,
    /// Extra body lines after the root (c2sp.org/tlog-checkpoint extension lines).
    pub extensions: Vec<String>,
}

impl TestLog {
    /// A new empty log with a fresh key.
    pub fn new(origin: &str) -> TestLog {
        Self::with_key(origin, consentlog::keyfile::generate())
    }

    pub fn with_key(origin: &str, key: SigningKey) -> TestLog {
        TestLog {
            origin: origin.to_string(),
            key,
            tree: MemoryTree::new(Sha256Hasher),
            leaves: Vec::new(),
            extensions: Vec::new(),
        }
    }

    /// The log's vkey (type 0x01, name = origin).
    pub fn vkey(&self) -> Vkey {
        Vkey::new(&self.origin, TYPE_ED25519, self.key.verifying_key()).expect("vkey")
    }

    /// Appends `n` leaves tagged `tag` (so two logs given other tags diverge).
    pub fn append(&mut self, n: u64, tag: &str) -> &mut Self {
        for _ in 0..n {
            let data = format!("{} {tag} leaf {}", self.origin, self.leaves.len()).into_bytes();
            self.tree.push(&data);
            self.leaves.push(data);
        }
        self
    }

    /// The same log (same key and origin) cut back to its first `size` leaves: append to it
    /// with another tag to fork.
    pub fn prefix(&self, size: u64) -> TestLog {
        let mut l = TestLog::with_key(&self.origin, self.key.clone());
        for d in &self.leaves[..size as usize] {
            l.tree.push(d);
            l.leaves.push(d.clone());
        }
        l
    }

    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Hash {
        tree_hash(&Sha256Hasher, &self.tree, TreeSize(size)).expect("root")
    }

    /// The checkpoint body of size `size`.
    pub fn body_at(&self, size: u64) -> String {
        let mut b = format!(
            "{}\n{size}\n{}\n",
            self.origin,
            B64.encode(self.root_at(size))
        );
        for e in &self.extensions {
            b.push_str(e);
            b.push('\n');
        }
        b
    }

    /// Signs any note text with the log key (name = origin).
    pub fn sign_text(&self, text: &str) -> String {
        sign_note(&self.origin, &self.key, text)
    }

    /// The signed checkpoint note of size `size`.
    pub fn checkpoint_at(&self, size: u64) -> String {
        self.sign_text(&self.body_at(size))
    }

    /// The signed checkpoint note of the current size.
    pub fn checkpoint(&self) -> String {
        self.checkpoint_at(self.size())
    }

    /// The consistency proof from `old` to `new` leaves.
    pub fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        prove_consistency(&Sha256Hasher, &self.tree, TreeSize(old), TreeSize(new)).expect("proof")
    }

    /// The add-checkpoint body from `old` to `new` leaves.
    pub fn body(&self, old: u64, new: u64) -> String {
        add_checkpoint_body(old, &self.proof(old, new), &self.checkpoint_at(new))
    }

    /// The add-checkpoint body from `old` to the current size.
    pub fn body_from(&self, old: u64) -> String {
        self.body(old, self.size())
    }
}

/// `text` signed as a note by `key` under the key name `name` (Ed25519, type 0x01), with the
/// `signed_note` crate's signer.
pub fn sign_note(name: &str, key: &SigningKey, text: &str) -> String {
    let id = key_id(name, TYPE_ED25519, key.verifying_key().as_bytes());
    let mut raw = vec![TYPE_ED25519];
    raw.extend_from_slice(key.as_bytes());
    let skey = format!("PRIVATE+KEY+{name}+{id:08x}+{}", B64.encode(raw));
    let signer = StandardSigner::new(&skey).expect("signer key");
    let mut note = Note::new(text.as_bytes(), &[]).expect("note text");
    note.add_sigs(&[&signer]).expect("sign");
    String::from_utf8(note.to_bytes()).expect("utf-8")
}
