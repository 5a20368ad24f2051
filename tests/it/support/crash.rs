//! Helpers for tests/crash.rs: run the real `consentlog serve` on a ledger directory that
//! outlives it, kill it with SIGKILL or stop it with SIGTERM, and talk HTTP to it with ureq.
//! The HTTP calls, people and process plumbing come from tests/support_server/mod.rs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use super::server::{
    bin, event_json, h32, read_banner, read_lines, sleep_ms, try_send, wait_child, Banner, Person,
    Resp,
};

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

/// [`try_send`], panicking on a transport failure.
#[track_caller]
pub fn send(agent: &ureq::Agent, method: &str, url: &str, auth: Option<&str>) -> Resp {
    try_send(agent, method, url, auth, None)
        .unwrap_or_else(|e| panic!("{method} {url}: transport error {e}"))
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
        let (stdout, rx, reader) = read_lines(child.stdout.take().expect("stdout"));
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
        read_banner(&self.lines, timeout)
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
        let mut child = self.child.take().expect("process still owned");
        wait_child(&mut child, self.reader.take(), timeout, || self.stderr())
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
