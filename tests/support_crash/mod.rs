//! Helpers for tests/crash.rs: run the real `consentlog serve` on a ledger directory that
//! outlives it, kill it with SIGKILL or stop it with SIGTERM, and talk HTTP to it with ureq.
//! (Partly copied from tests/support_server/mod.rs, which tests/crash.rs does not use, so
//! that the crash tests do not depend on changes made there.)
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use consentlog::core::event::{ConsentEvent, EventJson, SignedEvent, EVENT_VERSION};
use consentlog::core::hash::{from_hex_array, Hash};
use consentlog::ledger::clock;
use ed25519_dalek::{SigningKey, VerifyingKey};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_consentlog")
}

pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// An environment variable as a number, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

/// 32 bytes from 64 hex digits.
#[track_caller]
pub fn h32(v: &str) -> Hash {
    from_hex_array::<32>(v).unwrap_or_else(|e| panic!("{v:?} is not 32 bytes of hex: {e}"))
}

/// A small, seedable pseudo-random generator (xorshift64*), so a failing run can be
/// repeated with CONSENTLOG_CRASH_SEED.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
}

/// An HTTP agent that reports every status as a response, with short timeouts (a killed
/// server must show up as a transport error quickly).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(2)))
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: String,
}

impl Resp {
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:#?}"))
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status: {self:#?}");
        self
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
    let body = r.body_mut().with_config().limit(1 << 30).read_to_string()?;
    Ok(Resp { status, body })
}

/// [`try_send`], panicking on a transport failure.
#[track_caller]
pub fn send(agent: &ureq::Agent, method: &str, url: &str, auth: Option<&str>) -> Resp {
    try_send(agent, method, url, auth, None)
        .unwrap_or_else(|e| panic!("{method} {url}: transport error {e}"))
}

/// What the server printed before it listened.
pub struct Banner {
    pub url: String,
    pub log_key: VerifyingKey,
    pub origin: String,
}

/// A `consentlog serve` process on a ledger directory that outlives it; killed (SIGKILL)
/// and reaped when dropped.
pub struct Proc {
    child: Option<Child>,
    pub pid: u32,
    pub dir: PathBuf,
    log_path: PathBuf,
    stdout: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
    reader: Option<JoinHandle<()>>,
}

impl Proc {
    /// Spawns `serve --dir dir --listen 127.0.0.1:0 extra…`; stderr goes to `log_path`
    /// (appended, so the logs of every run stay together).
    pub fn spawn(dir: &Path, log_path: &Path, extra: &[&str]) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("server log");
        let mut child = Command::new(bin())
            .arg("serve")
            .arg("--dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn consentlog serve");
        let pid = child.id();
        let out = child.stdout.take().expect("stdout");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let s2 = stdout.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                s2.lock().expect("stdout").push(line.clone());
                let _ = tx.send(line);
            }
        });
        Proc {
            child: Some(child),
            pid,
            dir: dir.to_path_buf(),
            log_path: log_path.to_path_buf(),
            stdout,
            lines: rx,
            reader: Some(reader),
        }
    }

    /// Waits for the banner (up to `timeout`); `None` if the process exited first or the
    /// time ran out.
    pub fn wait_ready(&mut self, timeout: Duration) -> Option<Banner> {
        let (mut url, mut key, mut origin) = (None, None, None);
        let deadline = Instant::now() + timeout;
        while url.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(k) = line.strip_prefix("log public key: ") {
                        key = Some(k.trim().to_string());
                    } else if let Some(o) = line.strip_prefix("origin: ") {
                        origin = Some(o.trim().to_string());
                    } else if let Some(u) = line.strip_prefix("listening on ") {
                        url = Some(u.trim().to_string());
                    }
                }
                Err(_) => return None,
            }
        }
        let key = key.expect("the server printed no log public key");
        Some(Banner {
            url: url.expect("url"),
            log_key: VerifyingKey::from_bytes(&h32(&key)).expect("log key"),
            origin: origin.expect("the server printed no origin"),
        })
    }

    /// Lines printed on standard output so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout").clone()
    }

    /// Every server's standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill {sig} {} failed", self.pid);
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) -> ExitStatus {
        self.signal("-KILL");
        self.wait_exit(Duration::from_secs(30))
    }

    /// SIGTERM and wait for the exit.
    pub fn term(&mut self) -> ExitStatus {
        self.signal("-TERM");
        self.wait_exit(Duration::from_secs(60))
    }

    /// Waits for the process to exit, then for its stdout to close.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("process still owned");
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
                    self.stderr()
                );
            }
            sleep_ms(5);
        };
        self.child = None;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }
}

impl Drop for Proc {
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

/// The JSON line of a signed event.
pub fn event_json(ev: &SignedEvent) -> String {
    serde_json::to_string(&EventJson::from(ev)).expect("event json")
}

/// One person's consent chain for one (controller, purpose).
pub struct Person {
    pub key: SigningKey,
    pub subject: [u8; 32],
    pub controller: String,
    pub purpose: String,
    /// Next seq to sign.
    pub seq: u64,
    /// Hash of the latest event signed (the next event's `prev`).
    pub prev: Option<Hash>,
}

impl Person {
    pub fn new(controller: &str, purpose: &str) -> Person {
        let key = consentlog::keyfile::generate();
        Person {
            subject: key.verifying_key().to_bytes(),
            key,
            controller: controller.to_string(),
            purpose: purpose.to_string(),
            seq: 0,
            prev: None,
        }
    }

    /// The next event, signed; the chain moves on.
    pub fn next(&mut self, log: &str, opt_in: bool) -> SignedEvent {
        let ev = ConsentEvent {
            version: EVENT_VERSION,
            log: log.to_string(),
            subject: self.subject,
            controller: self.controller.clone(),
            purpose: self.purpose.clone(),
            decision: opt_in as u8,
            seq: self.seq,
            prev: self.prev,
            issued_at: clock::now_ms(),
            expires_at: None,
            notice: None,
        }
        .sign(&self.key);
        self.seq += 1;
        self.prev = Some(ev.event_hash());
        ev
    }

    /// `/v1/heads?...` for this chain.
    pub fn heads_path(&self) -> String {
        format!(
            "/v1/heads?subject={}&controller={}&purpose={}",
            consentlog::core::hash::to_hex(&self.subject),
            self.controller,
            self.purpose
        )
    }
}
