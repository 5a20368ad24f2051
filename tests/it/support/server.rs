//! Helpers for tests/server.rs: run the real `consentlog serve` as a child process on an
//! ephemeral port in a temporary directory, talk HTTP to it with ureq, sign events and
//! requests for people, and check what the server answers with the library's verifiers.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use consentlog::core::event::{ConsentEvent, EventJson, SignedEvent, EVENT_VERSION};
use consentlog::core::hash::{from_hex_array, to_hex, Hash};
use consentlog::core::note::{self, SignedCheckpoint};
use consentlog::core::receipt::Receipt;
use consentlog::core::request::sign_request;
use consentlog::core::tlog::{check_inclusion, Blake3Hasher, LeafIndex, TreeSize};
use consentlog::ledger::clock;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::Value;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_consentlog")
}

/// Milliseconds since the epoch (the ledger's own clock source).
pub fn now_ms() -> u64 {
    clock::now_ms()
}

pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// `&Path` as `&str` for argument lists.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// 32 bytes from 64 hex digits, panicking with the input on failure.
#[track_caller]
pub fn h32(v: &str) -> Hash {
    from_hex_array::<32>(v).unwrap_or_else(|e| panic!("{v:?} is not 32 bytes of hex: {e}"))
}

/// A JSON string field as a 32-byte hash.
#[track_caller]
pub fn jh(v: &Value) -> Hash {
    h32(v.as_str().unwrap_or_else(|| panic!("not a string: {v}")))
}

/// An HTTP agent that reports every status as a response, not an error.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: String,
}

impl Resp {
    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:#?}"))
    }

    /// Panics with the whole answer unless the status is `status`.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status: {self:#?}");
        self
    }

    /// Asserts the answer is `status` with a JSON error body
    /// `{"error": {"code", "message"}}` (and nothing else); returns the code.
    #[track_caller]
    pub fn expect_error(&self, status: u16) -> String {
        self.expect(status);
        let ct = self.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "error content type {ct:?}: {self:#?}"
        );
        let v = self.json();
        let top: BTreeSet<&str> = v
            .as_object()
            .unwrap_or_else(|| panic!("error body is not an object: {self:#?}"))
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(top, BTreeSet::from(["error"]), "error body {self:#?}");
        let inner: BTreeSet<&str> = v["error"]
            .as_object()
            .unwrap_or_else(|| panic!("error is not an object: {self:#?}"))
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            inner,
            BTreeSet::from(["code", "message"]),
            "error body {self:#?}"
        );
        let code = v["error"]["code"].as_str().expect("code").to_string();
        let msg = v["error"]["message"].as_str().expect("message");
        assert!(
            !code.is_empty() && !msg.is_empty(),
            "empty error: {self:#?}"
        );
        code
    }

    /// `expect_error` and the code must be `code`.
    #[track_caller]
    pub fn expect_error_code(&self, status: u16, code: &str) {
        let got = self.expect_error(status);
        assert_eq!(got, code, "error code: {self:#?}");
    }
}

/// Sends one request; transport failures are returned as `Err`.
pub fn try_send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: Option<&[u8]>,
) -> Result<Resp, ureq::Error> {
    let mut b = ureq::http::Request::builder().method(method).uri(url);
    if let Some(a) = auth {
        b = b.header("Authorization", a);
    }
    let r = match body {
        None => agent.run(b.body(()).expect("request")),
        Some(body) => agent.run(
            b.header("Content-Type", "application/json")
                .body(body.to_vec())
                .expect("request"),
        ),
    };
    let mut r = r?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.body_mut().with_config().limit(1 << 30).read_to_string()?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// [`try_send`], panicking on a transport failure.
#[track_caller]
pub fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: Option<&[u8]>,
) -> Resp {
    try_send(agent, method, url, auth, body)
        .unwrap_or_else(|e| panic!("{method} {url}: transport error {e}"))
}

/// `Bearer <token>`.
pub fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// A running `consentlog serve`; killed (and reaped) when dropped.
pub struct Server {
    child: Option<Child>,
    pub pid: u32,
    /// The ledger directory.
    pub dir: PathBuf,
    /// The temporary directory holding `dir`, the server log and any other files.
    pub tmp: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub url: String,
    pub log_key: VerifyingKey,
    pub log_key_hex: String,
    pub origin: String,
    stdout: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    pub agent: ureq::Agent,
}

impl Server {
    /// Starts a server on a fresh ledger with extra `serve` arguments.
    pub fn start(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("ledger");
        Self::spawn(tmp.path().to_path_buf(), Some(tmp), dir, extra)
    }

    /// Starts a server on an existing ledger directory (logs go to a fresh temporary one).
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        Self::spawn(
            tmp.path().to_path_buf(),
            Some(tmp),
            dir.to_path_buf(),
            extra,
        )
    }

    fn spawn(
        tmp_path: PathBuf,
        tmp: Option<tempfile::TempDir>,
        dir: PathBuf,
        extra: &[&str],
    ) -> Server {
        let log = std::fs::File::create(tmp_path.join("server.log")).expect("server log");
        let mut child = Command::new(bin())
            .arg("serve")
            .arg("--dir")
            .arg(&dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(&tmp_path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn consentlog serve");
        let pid = child.id();
        let (lines, rx, reader) = read_lines(child.stdout.take().expect("stdout"));
        let Some(banner) = read_banner(&rx, Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(tmp_path.join("server.log")).unwrap_or_default();
            panic!(
                "the server did not start; stdout {:?}; stderr:\n{log}",
                lines.lock().expect("lines")
            );
        };
        Server {
            child: Some(child),
            pid,
            dir,
            tmp: tmp_path,
            _tmp: tmp,
            url: banner.url,
            log_key: banner.log_key,
            log_key_hex: banner.log_key_hex,
            origin: banner.origin,
            stdout: lines,
            reader: Some(reader),
            agent: agent(),
        }
    }

    /// The full URL of `path`.
    pub fn u(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn get(&self, path: &str) -> Resp {
        send(&self.agent, "GET", &self.u(path), None, None)
    }

    pub fn get_auth(&self, path: &str, auth: &str) -> Resp {
        send(&self.agent, "GET", &self.u(path), Some(auth), None)
    }

    pub fn post(&self, path: &str, body: &str) -> Resp {
        send(
            &self.agent,
            "POST",
            &self.u(path),
            None,
            Some(body.as_bytes()),
        )
    }

    pub fn post_auth(&self, path: &str, body: &str, auth: &str) -> Resp {
        send(
            &self.agent,
            "POST",
            &self.u(path),
            Some(auth),
            Some(body.as_bytes()),
        )
    }

    /// POSTs one signed event.
    pub fn post_event(&self, ev: &SignedEvent) -> Resp {
        self.post("/v1/events", &event_json(ev))
    }

    /// Posts an event that must be accepted (201); returns its checked receipt.
    #[track_caller]
    pub fn append(&self, ev: &SignedEvent) -> Receipt {
        let r = self.post_event(ev);
        r.expect(201);
        let rc = receipt(&r.json());
        assert!(rc.check(&self.log_key), "receipt signature: {r:#?}");
        rc
    }

    /// The server's tree size (from /metrics, which reads the ledger itself).
    #[track_caller]
    pub fn tree_size(&self) -> u64 {
        metric(
            &self.get("/metrics").expect(200).body,
            "consentlog_tree_size",
        )
        .expect("consentlog_tree_size") as u64
    }

    /// The latest checkpoint, opened under the log key.
    #[track_caller]
    pub fn checkpoint(&self) -> SignedCheckpoint {
        let r = self.get("/v1/checkpoint");
        r.expect(200);
        note::open(&r.body, &self.log_key).unwrap_or_else(|e| panic!("checkpoint: {e}: {r:#?}"))
    }

    /// Waits until the latest checkpoint covers `size` entries.
    #[track_caller]
    pub fn wait_covered(&self, size: u64) -> SignedCheckpoint {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let cp = self.checkpoint();
            if cp.size >= size {
                return cp;
            }
            assert!(
                Instant::now() < deadline,
                "no checkpoint covers {size} entries (latest {})",
                cp.size
            );
            sleep_ms(20);
        }
    }

    /// Lines the server printed on standard output so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout").clone()
    }

    /// The server's standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.tmp.join("server.log")).unwrap_or_default()
    }

    /// Sends SIGTERM (through `kill`, as libc is not a dependency).
    pub fn sigterm(&self) {
        let st = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -TERM {} failed", self.pid);
    }

    /// Waits for the process to exit (at most `timeout`), then for its stdout to close.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("server still owned");
        wait_child(&mut child, self.reader.take(), timeout, || self.stderr())
    }

    /// SIGTERM and wait for a clean exit.
    #[track_caller]
    pub fn stop(&mut self) -> ExitStatus {
        self.sigterm();
        self.wait_exit(Duration::from_secs(30))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Reads a child's standard output on a thread: every line kept, and each also sent on the
/// channel as it comes.
#[allow(clippy::type_complexity)]
pub fn read_lines(
    out: ChildStdout,
) -> (
    Arc<Mutex<Vec<String>>>,
    mpsc::Receiver<String>,
    JoinHandle<()>,
) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<String>();
    let kept = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            kept.lock().expect("stdout lines").push(line.clone());
            let _ = tx.send(line);
        }
    });
    (lines, rx, reader)
}

/// What `serve` prints before it listens.
pub struct Banner {
    pub url: String,
    pub log_key: VerifyingKey,
    pub log_key_hex: String,
    pub origin: String,
}

/// Reads `serve`'s banner from its output lines; `None` if they end, or `timeout` passes,
/// before the "listening on" line.
pub fn read_banner(lines: &mpsc::Receiver<String>, timeout: Duration) -> Option<Banner> {
    let (mut url, mut key, mut origin) = (None, None, None);
    let deadline = Instant::now() + timeout;
    while url.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).ok()?;
        if let Some(k) = line.strip_prefix("log public key: ") {
            key = Some(k.trim().to_string());
        } else if let Some(o) = line.strip_prefix("origin: ") {
            origin = Some(o.trim().to_string());
        } else if let Some(u) = line.strip_prefix("listening on ") {
            url = Some(u.trim().to_string());
        }
    }
    let log_key_hex = key.expect("the server printed no log public key");
    Some(Banner {
        url: url.expect("url"),
        log_key: VerifyingKey::from_bytes(&h32(&log_key_hex)).expect("log key"),
        log_key_hex,
        origin: origin.expect("the server printed no origin"),
    })
}

/// Waits for `child` to exit, then for its output `reader` to finish; after `timeout`, kills
/// it and panics with `stderr()`.
#[track_caller]
pub fn wait_child(
    child: &mut Child,
    reader: Option<JoinHandle<()>>,
    timeout: Duration,
    stderr: impl Fn() -> String,
) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server did not exit within {timeout:?}; stderr:\n{}",
                stderr()
            );
        }
        sleep_ms(5);
    };
    if let Some(r) = reader {
        let _ = r.join();
    }
    status
}

/// The value of an unlabelled (or exactly labelled) Prometheus sample, e.g.
/// `consentlog_tree_size` or `consentlog_rejections_total{rule="seq"}`.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.rsplit_once(' ')?;
        (n == name).then(|| v.parse::<f64>().ok()).flatten()
    })
}

/// The JSON line of a signed event.
pub fn event_json(ev: &SignedEvent) -> String {
    serde_json::to_string(&EventJson::from(ev)).expect("event json")
}

/// A receipt from its JSON.
#[track_caller]
pub fn receipt(v: &Value) -> Receipt {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not a receipt ({e}): {v}"))
}

/// Checks a `{"index","tree_size","leaf_hash","root","path"}` inclusion proof against a root.
#[track_caller]
pub fn check_inclusion_json(p: &Value, leaf: &Hash, size: u64, root: &Hash) {
    let path: Vec<Hash> = p["path"]
        .as_array()
        .unwrap_or_else(|| panic!("no path: {p}"))
        .iter()
        .map(jh)
        .collect();
    let index = p["index"].as_u64().expect("index");
    assert_eq!(p["tree_size"].as_u64(), Some(size), "tree size of {p}");
    assert_eq!(&jh(&p["leaf_hash"]), leaf, "leaf hash of {p}");
    assert_eq!(&jh(&p["root"]), root, "root of {p}");
    check_inclusion(
        &Blake3Hasher,
        LeafIndex(index),
        TreeSize(size),
        leaf,
        &path,
        root,
    )
    .unwrap_or_else(|e| panic!("inclusion proof does not verify ({e}): {p}"));
}

/// One person's consent chain for one (controller, purpose).
pub struct Person {
    pub key: SigningKey,
    pub subject: [u8; 32],
    pub controller: String,
    pub purpose: String,
    pub seq: u64,
    pub prev: Option<Hash>,
}

impl Person {
    pub fn new(controller: &str, purpose: &str) -> Person {
        Self::with_key(consentlog::keyfile::generate(), controller, purpose)
    }

    pub fn with_key(key: SigningKey, controller: &str, purpose: &str) -> Person {
        Person {
            subject: key.verifying_key().to_bytes(),
            key,
            controller: controller.to_string(),
            purpose: purpose.to_string(),
            seq: 0,
            prev: None,
        }
    }

    /// The same key, another (controller, purpose), a fresh chain.
    pub fn other(&self, controller: &str, purpose: &str) -> Person {
        Self::with_key(self.key.clone(), controller, purpose)
    }

    pub fn hex(&self) -> String {
        to_hex(&self.subject)
    }

    /// An unsigned event continuing the chain.
    pub fn event(&self, log: &str, opt_in: bool) -> ConsentEvent {
        ConsentEvent {
            version: EVENT_VERSION,
            log: log.to_string(),
            subject: self.subject,
            controller: self.controller.clone(),
            purpose: self.purpose.clone(),
            decision: opt_in as u8,
            seq: self.seq,
            prev: self.prev,
            issued_at: now_ms(),
            expires_at: None,
            notice: None,
        }
    }

    /// The next event, signed, without moving the chain on.
    pub fn make(&self, log: &str, opt_in: bool) -> SignedEvent {
        self.event(log, opt_in).sign(&self.key)
    }

    /// Moves the chain on past `ev` (once it is logged).
    pub fn commit(&mut self, ev: &SignedEvent) {
        self.seq = ev.event.seq + 1;
        self.prev = Some(ev.event_hash());
    }

    /// The next event, signed; the chain moves on.
    pub fn next(&mut self, log: &str, opt_in: bool) -> SignedEvent {
        let ev = self.make(log, opt_in);
        self.commit(&ev);
        ev
    }

    /// An Authorization header for a request signed by this person, at `time`.
    pub fn sign_request_at(&self, method: &str, path: &str, time: u64) -> String {
        sign_request(&self.key, method, path, time)
    }

    /// An Authorization header for a request signed by this person, now.
    pub fn sign_request(&self, method: &str, path: &str) -> String {
        self.sign_request_at(method, path, now_ms())
    }

    /// `/v1/heads?...` for this chain.
    pub fn heads_path(&self) -> String {
        format!(
            "/v1/heads?subject={}&controller={}&purpose={}",
            self.hex(),
            self.controller,
            self.purpose
        )
    }

    /// `/v1/proofs/consent?...` for this chain, optionally at a time.
    pub fn consent_path(&self, at: Option<u64>) -> String {
        let mut p = format!(
            "/v1/proofs/consent?subject={}&controller={}&purpose={}",
            self.hex(),
            self.controller,
            self.purpose
        );
        if let Some(at) = at {
            p.push_str(&format!("&at={at}"));
        }
        p
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }
}

/// Runs the binary with `args` (a client command) and no standard input.
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run consentlog");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
