//! The real `consentlog` binary: one command run to its end ([`run`], [`Run`]), or `serve`
//! as a child process ([`Server`], started on a fresh or given ledger and waited for;
//! [`Proc`], on a directory that outlives it, for killing and restarting), with the plumbing
//! they share (standard output read on a thread, the banner, waiting for the exit).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use consentlog::core::event::SignedEvent;
use consentlog::core::note::{self, SignedCheckpoint};
use consentlog::core::receipt::Receipt;
use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use super::http::{agent, metric, post_event, receipt, send, Resp};
use super::people::RequestTo;
use super::{h32, poll, s, wait_until};

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

    /// Panics with the whole run unless it failed with `needle` in its standard error.
    #[track_caller]
    pub fn assert_fails_with(&self, needle: &str) {
        assert_ne!(self.code, 0, "{self:#?}");
        assert!(self.stderr.contains(needle), "{self:#?}");
    }

    /// Panics with the whole run unless the exit code is `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
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

/// Runs the binary with `args` and the environment variables `env` added.
pub fn run_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &Path)]) -> Run {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    finish(cmd.output().expect("run consentlog"))
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

/// A `consentlog serve` child: its standard output read on a thread (every line kept, and
/// sent on a channel as it comes), standard error appended to a log file. Killed (SIGKILL)
/// and reaped when dropped.
struct Serve {
    child: Option<Child>,
    pid: u32,
    log_path: PathBuf,
    stdout: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
    reader: Option<JoinHandle<()>>,
}

impl Serve {
    /// Spawns `serve --dir dir --listen 127.0.0.1:0 extra…` in `cwd`.
    fn spawn(dir: &Path, log_path: &Path, cwd: Option<&Path>, extra: &[&str]) -> Serve {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("server log");
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("--dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd.spawn().expect("spawn consentlog serve");
        let pid = child.id();
        let (stdout, lines, reader) = read_lines(child.stdout.take().expect("stdout"));
        Serve {
            child: Some(child),
            pid,
            log_path: log_path.to_path_buf(),
            stdout,
            lines,
            reader: Some(reader),
        }
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout").clone()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends `sig` (through `kill`, as libc is not a dependency).
    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill {sig} {} failed", self.pid);
    }

    /// Waits for the process to exit (at most `timeout`), then for its stdout to close; after
    /// `timeout`, kills it and panics with its standard error.
    #[track_caller]
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("process still owned");
        let status = poll(timeout, || child.try_wait().expect("try_wait"));
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }
}

impl Drop for Serve {
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

/// `serve`'s own code on a thread of the test process: the arguments parsed by the binary's
/// parser, the ledger opened and served by the functions `consentlog serve` runs
/// (`server::open`, `server::serve_on`: the same router, sequencer, heartbeat and accept loop)
/// on a runtime of its own, over real loopback HTTP; the banner lines kept and sent on a
/// channel as `serve` prints them. No signal handlers (the test process keeps its own). Stopped
/// gracefully when dropped, as SIGTERM would stop it, and waited for.
struct InProc {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
}

impl InProc {
    /// Runs what `consentlog serve --dir dir --listen 127.0.0.1:0 extra…` runs.
    fn spawn(dir: &Path, extra: &[&str]) -> InProc {
        use clap::Parser;
        use consentlog::cli::{serve_config, Cli, Command};
        use consentlog::server;
        let mut args = vec![
            "consentlog",
            "serve",
            "--dir",
            s(dir),
            "--listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let Command::Serve(serve_args) = cli.command else {
            unreachable!("parsed as serve")
        };
        let (cfg, auth) = serve_config(serve_args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel::<String>();
        let kept = stdout.clone();
        let say = move |line: &str| {
            kept.lock().expect("stdout lines").push(line.to_string());
            let _ = tx.send(line.to_string());
        };
        let thread = std::thread::spawn(move || {
            let ledger = server::open(&cfg)?;
            server::runtime()?.block_on(async {
                let listener = tokio::net::TcpListener::bind(cfg.listen)
                    .await
                    .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
                let shutdown = async {
                    let _ = stopped.await;
                };
                server::serve_on(ledger, listener, &cfg, auth, shutdown, say).await
            })
        });
        InProc {
            stop: Some(stop),
            thread: Some(thread),
            stdout,
            lines,
        }
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout").clone()
    }

    /// Stops the server (no-op if stopped) and gives how its thread ended.
    fn shut_down(&mut self) -> String {
        drop(self.stop.take());
        match self.thread.take().map(JoinHandle::join) {
            None => "already stopped".into(),
            Some(Ok(Ok(()))) => "stopped".into(),
            Some(Ok(Err(e))) => format!("failed: {e}"),
            Some(Err(_)) => "panicked".into(),
        }
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        let ended = self.shut_down();
        if !std::thread::panicking() {
            assert_eq!(ended, "stopped", "the in-process server");
        }
    }
}

/// Where a [`Server`] runs.
enum Host {
    /// A `consentlog serve` child process.
    Process(Serve),
    /// The same code on a thread of the test process.
    InProcess(InProc),
}

impl Host {
    /// Its standard output lines, as they come.
    fn lines(&self) -> &mpsc::Receiver<String> {
        match self {
            Host::Process(p) => &p.lines,
            Host::InProcess(p) => &p.lines,
        }
    }

    /// What a server that gave no banner did.
    fn not_started(&mut self) -> String {
        match self {
            Host::Process(p) => format!("stdout {:?}; stderr:\n{}", p.stdout(), p.stderr()),
            Host::InProcess(p) => format!("in-process: {}; stdout {:?}", p.shut_down(), p.stdout()),
        }
    }
}

/// A running `consentlog serve` on its own ephemeral port, started and waited for: a child
/// process ([`Server::start`]), killed (and reaped) when dropped, or the same server code in
/// the test process ([`Server::in_process`]), stopped gracefully when dropped.
pub struct Server {
    host: Host,
    /// The ledger directory.
    pub dir: PathBuf,
    /// The temporary directory holding the server log and any other files (and `dir`, for
    /// [`Server::start`]).
    pub tmp: PathBuf,
    _tmp: tempfile::TempDir,
    pub url: String,
    pub log_key: VerifyingKey,
    pub log_key_hex: String,
    pub origin: String,
    /// Its public URL, the audience of signed requests (by default `url`).
    pub public_url: String,
    pub agent: ureq::Agent,
}

impl Server {
    /// The server's process id (none for [`Server::in_process`]).
    pub fn pid(&self) -> Option<u32> {
        match &self.host {
            Host::Process(p) => Some(p.pid),
            Host::InProcess(_) => None,
        }
    }

    /// Starts a server on a fresh ledger with extra `serve` arguments.
    pub fn start(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("ledger");
        Self::spawn(tmp, dir, extra)
    }

    /// Starts a server on an existing ledger directory (logs go to a fresh temporary one).
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        Self::spawn(
            tempfile::tempdir().expect("tempdir"),
            dir.to_path_buf(),
            extra,
        )
    }

    /// Starts `serve`'s code on a fresh ledger in the test process (see [`InProc`]), with
    /// extra `serve` arguments; for the tests about requests and answers, where the process is
    /// not the point. It has no process to signal, exit status or standard error.
    pub fn in_process(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("ledger");
        Self::started(Host::InProcess(InProc::spawn(&dir, extra)), tmp, dir)
    }

    fn spawn(tmp: tempfile::TempDir, dir: PathBuf, extra: &[&str]) -> Server {
        let log = tmp.path().join("server.log");
        let proc = Serve::spawn(&dir, &log, Some(tmp.path()), extra);
        Self::started(Host::Process(proc), tmp, dir)
    }

    /// Waits for `host`'s banner; panics with what it did if it gives none.
    fn started(mut host: Host, tmp: tempfile::TempDir, dir: PathBuf) -> Server {
        let Some(banner) = read_banner(host.lines(), Duration::from_secs(30)) else {
            panic!("the server did not start; {}", host.not_started());
        };
        let tmp_path = tmp.path().to_path_buf();
        Server {
            host,
            dir,
            tmp: tmp_path,
            _tmp: tmp,
            url: banner.url,
            log_key: banner.log_key,
            log_key_hex: banner.log_key_hex,
            origin: banner.origin,
            public_url: banner.public_url,
            agent: agent(),
        }
    }

    /// Where a person's signed request to this server goes: its log's origin and its public
    /// URL.
    pub fn request_to(&self) -> RequestTo {
        RequestTo {
            origin: self.origin.clone(),
            audience: self.public_url.clone(),
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
        post_event(&self.agent, &self.url, ev)
    }

    /// Posts an event that must be accepted (201); returns its checked receipt.
    #[track_caller]
    pub fn append(&self, ev: &SignedEvent) -> Receipt {
        let r = self.post_event(ev);
        r.expect(201);
        let rc = receipt(&r.json());
        assert!(rc.check(&self.log_key).is_ok(), "receipt signature: {r:#?}");
        rc
    }

    /// The server's tree size (from /metrics, which reads the ledger itself).
    #[track_caller]
    /// Events this server appended (`consentlog_appends_total`): unlike the tree size, not
    /// moved by the map leaves the heartbeat appends.
    pub fn events(&self) -> u64 {
        metric(
            &self.get("/metrics").expect(200).body,
            "consentlog_appends_total",
        )
        .expect("consentlog_appends_total") as u64
    }

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
        let mut latest = 0;
        let got = poll(Duration::from_secs(20), || {
            let cp = self.checkpoint();
            latest = cp.size;
            (cp.size >= size).then_some(cp)
        });
        got.unwrap_or_else(|| panic!("no checkpoint covers {size} entries (latest {latest})"))
    }

    /// Lines the server printed on standard output so far (in-process: gave as its banner).
    pub fn stdout(&self) -> Vec<String> {
        match &self.host {
            Host::Process(p) => p.stdout(),
            Host::InProcess(p) => p.stdout(),
        }
    }

    /// The server's standard error so far (in-process: none of its own).
    pub fn stderr(&self) -> String {
        match &self.host {
            Host::Process(p) => p.stderr(),
            Host::InProcess(_) => String::new(),
        }
    }

    /// The child process; panics for an in-process server (the test wants a process).
    #[track_caller]
    fn process(&mut self) -> &mut Serve {
        match &mut self.host {
            Host::Process(p) => p,
            Host::InProcess(_) => panic!("an in-process server has no process: use Server::start"),
        }
    }

    /// Sends SIGTERM.
    #[track_caller]
    pub fn sigterm(&self) {
        match &self.host {
            Host::Process(p) => p.signal("-TERM"),
            Host::InProcess(_) => panic!("an in-process server has no process: use Server::start"),
        }
    }

    /// Waits for the process to exit (at most `timeout`), then for its stdout to close.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.process().wait_exit(timeout)
    }

    /// SIGTERM and wait for a clean exit.
    #[track_caller]
    pub fn stop(&mut self) -> ExitStatus {
        self.sigterm();
        self.wait_exit(Duration::from_secs(30))
    }
}

/// A `consentlog serve` process on a ledger directory that outlives it, not waited for at
/// start (it may be killed while it opens the ledger); killed (SIGKILL) and reaped when
/// dropped.
pub struct Proc {
    proc: Serve,
}

impl Proc {
    /// Spawns `serve --dir dir --listen 127.0.0.1:0 extra…`; stderr goes to `log_path`
    /// (appended, so the logs of every run stay together).
    pub fn spawn(dir: &Path, log_path: &Path, extra: &[&str]) -> Proc {
        Proc {
            proc: Serve::spawn(dir, log_path, None, extra),
        }
    }

    /// Waits for the banner (up to `timeout`); `None` if the process exited first or the
    /// time ran out.
    pub fn wait_ready(&mut self, timeout: Duration) -> Option<Banner> {
        read_banner(&self.proc.lines, timeout)
    }

    /// Lines printed on standard output so far.
    pub fn stdout(&self) -> Vec<String> {
        self.proc.stdout()
    }

    /// Every server's standard error so far.
    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) -> ExitStatus {
        self.proc.signal("-KILL");
        self.wait_exit(Duration::from_secs(30))
    }

    /// SIGTERM and wait for the exit.
    pub fn term(&mut self) -> ExitStatus {
        self.proc.signal("-TERM");
        self.wait_exit(Duration::from_secs(60))
    }

    /// Waits for the process to exit, then for its stdout to close.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.proc.wait_exit(timeout)
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
    /// The audience of signed requests (`public URL:`).
    pub public_url: String,
}

/// Reads `serve`'s banner from its output lines; `None` if they end, or `timeout` passes,
/// before the "listening on" line.
pub fn read_banner(lines: &mpsc::Receiver<String>, timeout: Duration) -> Option<Banner> {
    let (mut url, mut key, mut origin, mut public_url) = (None, None, None, None);
    let deadline = std::time::Instant::now() + timeout;
    while url.is_none() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines.recv_timeout(left).ok()?;
        if let Some(k) = line.strip_prefix("log public key: ") {
            key = Some(k.trim().to_string());
        } else if let Some(o) = line.strip_prefix("origin: ") {
            origin = Some(o.trim().to_string());
        } else if let Some(u) = line.strip_prefix("public URL: ") {
            public_url = Some(u.trim().to_string());
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
        public_url: public_url.expect("the server printed no public URL"),
    })
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
    wait_until(
        Duration::from_secs(20),
        || format!("{} stays locked", path.display()),
        || {
            let f = std::fs::File::open(&path).expect("sled db file");
            // SAFETY: flock on a descriptor that `f` owns for the duration of the calls.
            (unsafe { flock(f.as_raw_fd(), LOCK_EX | LOCK_NB) } == 0).then(|| {
                unsafe { flock(f.as_raw_fd(), LOCK_UN) };
            })
        },
    )
}
