//! Helpers shared by tests/cli.rs and tests/audit.rs: run the real `consentlog` binary in
//! temporary directories and look at what it prints.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_consentlog")
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the whole run unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        self.expect_code(0)
    }

    /// The last non-empty line of standard output.
    #[track_caller]
    pub fn last_line(&self) -> &str {
        self.stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("no output: {self:#?}"))
    }

    /// Standard output parsed as one JSON value.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    /// Standard output parsed as NDJSON.
    #[track_caller]
    pub fn ndjson(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("line {l:?} is not JSON ({e}): {self:#?}"))
            })
            .collect()
    }

    /// Standard output and standard error together (for looking for a message).
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

fn finish(out: std::process::Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the binary with `args` and no standard input.
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run consentlog");
    finish(out)
}

/// Runs the binary with `args`, feeding `input` on standard input.
pub fn run_stdin<S: AsRef<std::ffi::OsStr>>(args: &[S], input: &str) -> Run {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn consentlog");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_string();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("wait consentlog");
    feeder.join().expect("stdin feeder");
    finish(out)
}

/// `&Path` as `&str` for argument lists.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The key set of a JSON object.
#[track_caller]
pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// Asserts that `v` is an object with exactly the keys `want`.
#[track_caller]
pub fn assert_keys(v: &Value, want: &[&str]) {
    let want: BTreeSet<String> = want.iter().map(|k| k.to_string()).collect();
    assert_eq!(keys(v), want, "key set of {v}");
}

/// Is `s` `n` bytes of lowercase hex?
pub fn is_hex(s: &str, n: usize) -> bool {
    s.len() == 2 * n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

pub fn sleep_ms(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

/// A fresh ledger made by `consentlog init` in a temporary directory.
pub struct TestLedger {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    /// Public key hex printed by init.
    pub log_key: String,
    pub origin: String,
}

impl TestLedger {
    pub fn new() -> Self {
        Self::with_origin("test.example/log")
    }

    pub fn with_origin(origin: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("ledger");
        let r = run(&["init", "--dir", s(&dir), "--origin", origin]).ok();
        let log_key = r.last_line().trim().to_string();
        assert!(
            is_hex(&log_key, 32),
            "init's last line is not a key: {r:#?}"
        );
        TestLedger {
            tmp,
            dir,
            log_key,
            origin: origin.to_string(),
        }
    }

    /// A path inside the temporary directory (not inside the ledger).
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn d(&self) -> &str {
        s(&self.dir)
    }

    /// Makes a person's key file; returns (path, public key hex).
    pub fn person(&self, name: &str) -> (PathBuf, String) {
        let p = self.path(&format!("{name}.key"));
        let r = run(&["keygen", "--out", s(&p)]).ok();
        let pk = r.last_line().trim().to_string();
        assert!(is_hex(&pk, 32), "keygen's last line is not a key: {r:#?}");
        (p, pk)
    }

    /// `grant` or `revoke` for example.com / ai-training; returns the receipt.
    pub fn decide(&self, key: &Path, opt_in: bool, controller: &str, purpose: &str) -> Value {
        let cmd = if opt_in { "grant" } else { "revoke" };
        run(&[
            cmd,
            "--dir",
            self.d(),
            "--key",
            s(key),
            "--controller",
            controller,
            "--purpose",
            purpose,
        ])
        .ok()
        .json()
    }

    /// `checkpoint`; returns the note text.
    pub fn checkpoint(&self) -> String {
        run(&["checkpoint", "--dir", self.d()]).ok().stdout
    }
}

// flock(2), which sled's lock (fs2) uses; declared here as the crate has no libc dependency.
extern "C" {
    fn flock(fd: std::os::raw::c_int, operation: std::os::raw::c_int) -> std::os::raw::c_int;
}
const LOCK_EX: std::os::raw::c_int = 2;
const LOCK_NB: std::os::raw::c_int = 4;
const LOCK_UN: std::os::raw::c_int = 8;

/// Waits until no one holds sled's lock on the ledger in `dir` (`dir/db/db`).
///
/// sled 0.34 releases its file lock only when its background threads let go of the database,
/// a moment after the last handle is dropped; a test that drops a ledger or store and then
/// runs the binary (or opens the store again) waits here first.
pub fn wait_unlocked(dir: &Path) {
    use std::os::unix::io::AsRawFd;
    let path = dir.join("db").join("db");
    if !path.exists() {
        // Another engine (redb) holds no lock between processes.
        return;
    }
    let start = std::time::Instant::now();
    loop {
        let f = std::fs::File::open(&path).expect("sled db file");
        // SAFETY: flock on a descriptor that `f` owns for the duration of the calls.
        if unsafe { flock(f.as_raw_fd(), LOCK_EX | LOCK_NB) } == 0 {
            unsafe { flock(f.as_raw_fd(), LOCK_UN) };
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{} stays locked",
            path.display()
        );
        sleep_ms(5);
    }
}
