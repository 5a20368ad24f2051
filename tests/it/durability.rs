//! Durability: an acknowledged append survives the process (dropped, or killed outright), and
//! the sync that makes it durable happens before the receipt is printed (watched with strace).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::ledger::*;
use crate::support::*;
use consentlog::core::event::{EventJson, SignedEvent};
use consentlog::core::hash::{from_hex_array, to_hex};
use consentlog::core::receipt::Receipt;
use consentlog::ledger::{Ledger, Outcome, CHUNK};
use ed25519_dalek::VerifyingKey;

const BIN: &str = env!("CARGO_BIN_EXE_consentlog");
const CHILD_ENV: &str = "CONSENTLOG_DURABILITY_CHILD_LEDGER";

/// Runs the consentlog binary; panics unless it succeeds; returns stdout.
fn run_bin(args: &[&str]) -> String {
    run(args).ok().stdout
}

/// A ledger created by the binary (so no lock of it lingers in this process), its log key,
/// and a person's key file made by `consentlog keygen`.
///
/// `consentlog init` itself sometimes fails under load with sled's "could not acquire lock"
/// (reported as the ledger being in use by another process)
/// (see `init_and_reopen_in_one_process_do_not_fail_on_the_file_lock`), leaving a ledger
/// without its first checkpoint; then the helper signs that checkpoint with
/// `consentlog checkpoint`, which is what init would have done.
fn bin_ledger(tmp: &Path) -> (PathBuf, VerifyingKey, PathBuf) {
    let dir = tmp.join("ledger");
    let d = dir.to_str().unwrap();
    // sled is the engine whose flush needs our extra fdatasync: these traces watch it.
    let out = run(&["init", "--dir", d, "--origin", ORIGIN, "--backend", "sled"]);
    if out.code != 0 {
        let err = &out.stderr;
        assert!(
            err.contains("in use by another process") && dir.join("engine").exists(),
            "consentlog init failed: {err}"
        );
        eprintln!("(consentlog init hit the sled lock bug; finishing with `checkpoint`)");
        run_bin(&["checkpoint", "--dir", d]);
    }
    let log_pub = std::fs::read_to_string(dir.join("log.pub")).expect("log.pub");
    if out.code == 0 {
        assert_eq!(out.stdout.trim(), log_pub.trim());
    }
    let log_key =
        VerifyingKey::from_bytes(&from_hex_array(log_pub.trim()).expect("log key hex")).unwrap();
    let key = tmp.join("person.key");
    run_bin(&["keygen", "--out", key.to_str().unwrap()]);
    (dir, log_key, key)
}

/// Checks that `receipt` is for `ev` in the ledger: same leaf hash and time, and the stored
/// opening holds exactly the event's bytes.
fn check_acknowledged(l: &Ledger, r: &Receipt, ev: &SignedEvent) {
    check_receipt(l, r);
    let o = l
        .opening(r.index)
        .unwrap()
        .unwrap_or_else(|| panic!("opening {} missing", r.index));
    assert_eq!(o.event.as_bytes(), ev.as_bytes(), "opening {}", r.index);
    let leaf = l.event_leaf(r.index).unwrap().expect("event leaf");
    assert_eq!(
        o.leaf(r.leaf.integrated_at, leaf.key, leaf.prev)
            .leaf_hash(),
        r.leaf.leaf_hash()
    );
}

// ---------------------------------------------------------------------------------------------
// (a) Acknowledged appends survive

#[test]
fn acknowledged_appends_survive_dropping_and_reopening_the_ledger() {
    let (_tmp, dir, l) = new_ledger();
    let log_key = l.public_key();
    let p = Person::new();
    let mut acked: Vec<(Receipt, SignedEvent)> = Vec::new();
    // Single appends along one chain.
    let mut head = p.first();
    acked.push((accept(&l, head.clone()), head.clone()));
    for i in 0..4 {
        let ev = p.next(&head, i % 2);
        acked.push((accept(&l, ev.clone()), ev.clone()));
        head = ev;
    }
    // A batch with a rejected event in the middle.
    let people: Vec<Person> = (0..20).map(|_| Person::new()).collect();
    let mut batch: Vec<SignedEvent> = people.iter().map(|q| q.first()).collect();
    batch.insert(10, p.first()); // seq conflict
    let out = l.append(batch.iter().cloned().map(Ok).collect()).unwrap();
    for (o, ev) in out.iter().zip(&batch) {
        match o {
            Outcome::Accepted(r) => acked.push((r.clone(), ev.clone())),
            Outcome::Rejected(r) => assert_eq!(r.code(), "seq"),
            Outcome::Duplicate(r) => panic!("unexpected duplicate {r:?}"),
        }
    }
    let size = l.size();
    assert_eq!(size, FIRST + acked.len() as u64);
    // No checkpoint after the appends: the entries must survive on their own.
    drop(l);

    let l = open_ledger(&dir);
    assert_eq!(l.public_key(), log_key);
    assert_eq!(l.size(), size);
    for (r, ev) in &acked {
        assert!(r.check(&log_key).is_ok());
        check_acknowledged(&l, r, ev);
        // And a resubmission gets the identical receipt back.
        match append_one(&l, ev.clone()) {
            Outcome::Duplicate(d) => assert_same_entry(&d, r),
            other => panic!("expected Duplicate after reopen, got {other:?}"),
        }
    }
    let h = l.head(&key_of(&l, &head.event)).unwrap().unwrap();
    assert_eq!((h.seq, h.event_hash), (4, head.event_hash()));
    // The chain continues where it was left.
    let r = accept(&l, p.next(&head, 1));
    assert_eq!(r.index, size);
}

/// Not a test on its own: the body of the child process of
/// `acknowledged_appends_survive_the_process_being_killed`. Without the environment variable
/// it does nothing.
#[test]
fn child_process_appends_then_waits_to_be_killed() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let l = open_ledger(Path::new(&dir));
    let mut stdout = std::io::stdout();
    let mut ack = |r: &Receipt, ev: &SignedEvent| {
        let line = format!(
            "ACK\t{}\t{}",
            serde_json::to_string(r).unwrap(),
            serde_json::to_string(&EventJson::from(ev)).unwrap()
        );
        writeln!(stdout, "{line}").unwrap();
        stdout.flush().unwrap();
    };
    let p = Person::new();
    let mut head = p.first();
    ack(&accept(&l, head.clone()), &head);
    for i in 0..3 {
        let ev = p.next(&head, i % 2);
        ack(&accept(&l, ev.clone()), &ev);
        head = ev;
    }
    let batch: Vec<SignedEvent> = (0..CHUNK + 5).map(|_| Person::new().first()).collect();
    let out = l.append(batch.iter().cloned().map(Ok).collect()).unwrap();
    for (o, ev) in out.iter().zip(&batch) {
        match o {
            Outcome::Accepted(r) => ack(r, ev),
            other => panic!("{other:?}"),
        }
    }
    let ev = p.next(&head, 1);
    ack(&accept(&l, ev.clone()), &ev);
    writeln!(stdout, "DONE").unwrap();
    stdout.flush().unwrap();
    // Wait to be killed: no destructor, no final flush of sled's runs after the receipts.
    std::thread::sleep(Duration::from_secs(120));
    std::process::abort();
}

#[test]
fn acknowledged_appends_survive_the_process_being_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, log_key, _key) = bin_ledger(tmp.path());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durability::child_process_appends_then_waits_to_be_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child test process");
    let mut acked: Vec<(Receipt, SignedEvent)> = Vec::new();
    let mut done = false;
    let started = Instant::now();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // (libtest may print "test NAME ... " before the first line of the child.)
        if line.ends_with("DONE") {
            done = true;
            break;
        }
        if let Some(rest) = line.find("ACK\t").map(|at| &line[at + 4..]) {
            let (r, ev) = rest.split_once('\t').expect("receipt and event");
            let r: Receipt = serde_json::from_str(r).unwrap();
            let ev = EventJson::parse(ev).unwrap();
            acked.push((r, ev));
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "child too slow"
        );
    }
    // SIGKILL right after the last acknowledgement.
    child.kill().expect("kill child");
    let status = child.wait().unwrap();
    assert!(done, "child did not finish its appends ({status})");
    assert!(
        !status.success(),
        "the child was killed, not finished: {status}"
    );
    assert_eq!(acked.len(), CHUNK + 5 + 5);

    let l = open_ledger(&dir);
    assert_eq!(l.public_key(), log_key);
    assert_eq!(
        l.size(),
        FIRST + acked.len() as u64,
        "every acknowledged entry is there"
    );
    for (r, ev) in &acked {
        assert!(r.check(&log_key).is_ok(), "receipt {} checks", r.index);
        check_acknowledged(&l, r, ev);
    }
    // The survivor is consistent: checkpoint and audit it.
    l.checkpoint_waiting().unwrap();
    drop(l);
    let raw = retry_lock(|| consentlog::ledger::raw::RawLedger::open(&dir));
    let notes = raw.checkpoints().unwrap();
    let mut a = consentlog::core::audit::Auditor::new(&log_key, &raw.origin, &notes, now_ms());
    a.push_chunk(raw.leaves(0, raw.size).unwrap());
    let report = a.finish();
    assert!(report.ok(), "{:?}", report.violations);
}

#[test]
fn init_and_reopen_in_one_process_do_not_fail_on_the_file_lock() {
    // Load sled's shared thread pool with a large append, as a server would.
    {
        let (_tmp, _dir, l) = new_ledger();
        let batch: Vec<_> = (0..CHUNK + 3).map(|_| Ok(Person::new().first())).collect();
        l.append(batch).unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for i in 0..30 {
        let dir = tmp.path().join(format!("l{i}"));
        match Ledger::init(
            &dir,
            ORIGIN,
            consentlog::testing::engine_from_env().as_str(),
        ) {
            Err(e) => failures.push(format!("init #{i}: {e}")),
            Ok(l) => {
                accept(&l, Person::new().first());
                drop(l);
                if let Err(e) = Ledger::open(&dir) {
                    failures.push(format!("reopen #{i}: {e}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 30 failed: {failures:#?}",
        failures.len()
    );
}

// ---------------------------------------------------------------------------------------------
// (b) The sync happens before the receipt is printed

/// One system call from an `strace -f -y` log.
#[derive(Debug, Clone)]
struct Call {
    name: String,
    /// First argument as printed (with -y: `3</path/to/file>`).
    first_arg: String,
    /// The whole text of the call (start line and, if split, the resumed line).
    text: String,
    /// Line numbers where the call started and where it returned.
    start: usize,
    end: usize,
    /// Return value, if it returned.
    ret: Option<i64>,
}

impl Call {
    /// The file of the first argument (`-y` output), if shown.
    fn path(&self) -> Option<&str> {
        let a = self.first_arg.find('<')?;
        let b = self.first_arg.rfind('>')?;
        (b > a).then(|| &self.first_arg[a + 1..b])
    }
    fn fd(&self) -> Option<i64> {
        let end = self
            .first_arg
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(self.first_arg.len());
        self.first_arg[..end].parse().ok()
    }
}

fn parse_ret(s: &str) -> Option<i64> {
    // strace pads short calls: `fsync(6</dir>)  = 0`.
    let at = s.rfind(')')?;
    let rest = s[at + 1..].trim_start().strip_prefix('=')?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Parses `strace -f` output (lines `PID call(...) = ret`, split calls marked
/// `<unfinished ...>` / `<... name resumed>`).
fn parse_strace(log: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut open: Vec<(String, usize)> = Vec::new(); // (pid, index in calls)
    for (n, raw) in log.lines().enumerate() {
        let (pid, rest) = match raw.split_once(char::is_whitespace) {
            Some((p, r)) if p.chars().all(|c| c.is_ascii_digit()) => {
                (p.to_string(), r.trim_start())
            }
            _ => (String::new(), raw),
        };
        if rest.starts_with("+++") || rest.starts_with("---") || rest.is_empty() {
            continue;
        }
        if let Some(r) = rest.strip_prefix("<... ") {
            let name = r.split_whitespace().next().unwrap_or("").to_string();
            if let Some(k) = open
                .iter()
                .position(|(p, i)| *p == pid && calls[*i].name == name)
            {
                let (_, i) = open.remove(k);
                calls[i].end = n;
                calls[i].ret = parse_ret(rest);
                calls[i].text.push_str(rest);
            }
            continue;
        }
        let Some(paren) = rest.find('(') else {
            continue;
        };
        let name = rest[..paren].to_string();
        let args = &rest[paren + 1..];
        let first_arg = args.split([',', ')', ' ']).next().unwrap_or("").to_string();
        let unfinished = rest.trim_end().ends_with("<unfinished ...>");
        calls.push(Call {
            name,
            first_arg,
            text: rest.to_string(),
            start: n,
            end: if unfinished { usize::MAX } else { n },
            ret: if unfinished { None } else { parse_ret(rest) },
        });
        if unfinished {
            open.push((pid, calls.len() - 1));
        }
    }
    calls
}

/// Checks that, before the first write of a receipt (identified by `needle`) to standard
/// output, the sled log file `log_path` was fsynced/fdatasynced after its last write or
/// sync_file_range. Returns a description of the ordering found.
fn check_sync_before_receipt(
    calls: &[Call],
    log_path: &str,
    needle: &str,
) -> Result<String, String> {
    let w = calls
        .iter()
        .find(|c| c.name == "write" && c.fd() == Some(1) && c.text.contains(needle))
        .ok_or_else(|| format!("no write of the receipt ({needle}) to fd 1 in the trace"))?;
    let on_log = |c: &&Call| c.path() == Some(log_path);
    let data: Vec<&Call> = calls
        .iter()
        .filter(on_log)
        .filter(|c| {
            matches!(
                c.name.as_str(),
                "pwrite64" | "pwritev" | "pwritev2" | "write" | "writev" | "sync_file_range"
            )
        })
        .filter(|c| c.start < w.start)
        .collect();
    let last_data = data
        .iter()
        .max_by_key(|c| c.end)
        .ok_or_else(|| format!("no write or sync_file_range on {log_path} before the receipt"))?;
    if last_data.end >= w.start {
        return Err(format!(
            "{} on the log file still running when the receipt was written",
            last_data.name
        ));
    }
    let last_range = data
        .iter()
        .filter(|c| c.name == "sync_file_range")
        .max_by_key(|c| c.end);
    let sync = calls
        .iter()
        .filter(on_log)
        .filter(|c| matches!(c.name.as_str(), "fsync" | "fdatasync"))
        .find(|c| c.start > last_data.end && c.end < w.start && c.ret == Some(0))
        .ok_or_else(|| {
            format!(
                "no successful fsync/fdatasync of {log_path} between its last {} (line {}) and \
                 the receipt write (line {})",
                last_data.name,
                last_data.end + 1,
                w.start + 1
            )
        })?;
    Ok(format!(
        "last {} line {}, last sync_file_range line {:?}, {} line {}-{}, receipt write line {}",
        last_data.name,
        last_data.end + 1,
        last_range.map(|c| c.end + 1),
        sync.name,
        sync.start + 1,
        sync.end + 1,
        w.start + 1
    ))
}

/// strace, or a failure telling to install it.
fn require_strace() -> &'static str {
    match Command::new("strace").arg("-V").output() {
        Ok(o) if o.status.success() => "strace",
        Ok(o) => panic!(
            "strace -V failed ({}): {}; install a working strace (apt-get install strace)",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "strace is not installed ({e}): install strace (e.g. `apt-get install strace`) to run \
             this test; CI installs it"
        ),
    }
}

/// Runs `consentlog ARGS` under strace; returns (stdout, trace text).
fn traced(tmp: &Path, args: &[&str], stdin: Option<&str>) -> (String, String) {
    let strace = require_strace();
    let trace = tmp.join(format!("trace-{}.txt", args[0]));
    let mut cmd = Command::new(strace);
    cmd.args(["-f", "-y", "-s", "65536", "-e"])
        .arg("trace=fsync,fdatasync,sync_file_range,write,writev,pwrite64,pwritev,pwritev2")
        .arg("-o")
        .arg(&trace)
        .arg(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("spawn strace");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "strace consentlog {args:?} failed ({}): {stderr}",
        out.status
    );
    let text = std::fs::read_to_string(&trace).expect("strace output file");
    (String::from_utf8(out.stdout).unwrap(), text)
}

fn sled_log_path(dir: &Path) -> String {
    std::fs::canonicalize(dir.join("db").join("db"))
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn grant_fdatasyncs_after_the_last_sync_file_range_before_printing_its_receipt() {
    require_strace();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, log_key, key) = bin_ledger(tmp.path());
    let (stdout, trace) = traced(
        tmp.path(),
        &[
            "grant",
            "--dir",
            dir.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--controller",
            CONTROLLER,
            "--purpose",
            PURPOSE,
        ],
        None,
    );
    let r: Receipt = serde_json::from_str(stdout.trim()).expect("a receipt on stdout");
    assert!(r.check(&log_key).is_ok());
    assert_eq!(r.index, FIRST);
    let calls = parse_strace(&trace);
    assert!(
        calls.iter().any(|c| c.name == "sync_file_range"),
        "sled's flush is expected to use sync_file_range (the reason for the extra fdatasync)"
    );
    let log_path = sled_log_path(&dir);
    match check_sync_before_receipt(&calls, &log_path, &to_hex(&r.leaf.leaf_hash())) {
        Ok(how) => eprintln!("grant: {how}"),
        Err(e) => panic!("{e}\n--- trace ---\n{trace}"),
    }
    // The receipt is durable: the entry is there after the process exited.
    let l = open_ledger(&dir);
    check_receipt(&l, &r);
}

#[test]
fn append_of_several_chunks_syncs_before_printing_receipts() {
    require_strace();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, log_key, _key) = bin_ledger(tmp.path());
    let n = CHUNK + 20;
    let mut input = String::new();
    for _ in 0..n {
        let ev = Person::new().first();
        input.push_str(&serde_json::to_string(&EventJson::from(&ev)).unwrap());
        input.push('\n');
    }
    let (stdout, trace) = traced(
        tmp.path(),
        &["append", "--dir", dir.to_str().unwrap(), "-"],
        Some(&input),
    );
    let receipts: Vec<Receipt> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("receipt line"))
        .collect();
    assert_eq!(receipts.len(), n);
    assert!(receipts.iter().all(|r| r.check(&log_key).is_ok()));
    let calls = parse_strace(&trace);
    let log_path = sled_log_path(&dir);
    // The first receipt written is the first in the output.
    match check_sync_before_receipt(&calls, &log_path, &to_hex(&receipts[0].leaf.leaf_hash())) {
        Ok(how) => eprintln!("append: {how}"),
        Err(e) => panic!("{e}"),
    }
    // Each chunk was committed with its own sync: at least two fdatasyncs of the log file
    // before the first receipt.
    let first_receipt = calls
        .iter()
        .find(|c| c.name == "write" && c.fd() == Some(1))
        .unwrap()
        .start;
    let syncs = calls
        .iter()
        .filter(|c| {
            matches!(c.name.as_str(), "fsync" | "fdatasync")
                && c.path() == Some(log_path.as_str())
                && c.end < first_receipt
        })
        .count();
    assert!(syncs >= 2, "{syncs} syncs of the log file for two chunks");
    let l = open_ledger(&dir);
    // Genesis, init's map leaf, the events, and the map leaf `append` ends with.
    assert_eq!(l.size(), FIRST + n as u64 + 1);
    check_receipt(&l, &receipts[n - 1]);
}

#[test]
fn init_syncs_its_files_and_directory_before_printing_the_log_key() {
    let strace = require_strace();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let trace = tmp.path().join("trace-init.txt");
    let out = Command::new(strace)
        .args([
            "-f",
            "-y",
            "-s",
            "65536",
            "-e",
            "trace=fsync,fdatasync,openat,write,rename,renameat,renameat2",
            "-o",
        ])
        .arg(&trace)
        .arg(BIN)
        .args(["init", "--dir", dir.to_str().unwrap(), "--origin", ORIGIN])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log_key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let calls = parse_strace(&std::fs::read_to_string(&trace).unwrap());
    let w = calls
        .iter()
        .find(|c| c.name == "write" && c.fd() == Some(1) && c.text.contains(&log_key))
        .expect("the log key written to stdout")
        .start;
    let dir = std::fs::canonicalize(&dir).unwrap();
    let synced = |path: &Path| {
        let p = path.to_str().unwrap();
        calls
            .iter()
            .filter(|c| matches!(c.name.as_str(), "fsync" | "fdatasync"))
            .filter(|c| c.path() == Some(p) && c.ret == Some(0) && c.end < w)
            .map(|c| c.start)
            .max()
    };
    // A small file is written either in place or through `NAME.tmp` renamed over `NAME`: the
    // content sync may be on either path, and the file exists under its name once it is
    // created in place or renamed into place.
    let created = |name: &str| {
        calls
            .iter()
            .filter(|c| {
                (c.name == "openat"
                    && c.text.contains("O_CREAT")
                    && (c.text.contains(&format!("/{name}\""))
                        || c.text.contains(&format!("/{name}.tmp\""))))
                    || (c.name.starts_with("rename") && c.text.contains(&format!("/{name}\"")))
            })
            .map(|c| c.end)
            .max()
            .unwrap_or_else(|| panic!("{name} is not created"))
    };
    let mut missing = Vec::new();
    for name in ["log.key", "log.pub", "engine"] {
        if synced(&dir.join(name))
            .or_else(|| synced(&dir.join(format!("{name}.tmp"))))
            .is_none()
        {
            missing.push(format!(
                "{name} is not fsynced before the log key is printed"
            ));
        }
    }
    let last_created = ["log.key", "log.pub", "engine"]
        .iter()
        .map(|n| created(n))
        .max()
        .unwrap();
    match synced(&dir) {
        Some(at) if at > last_created => {}
        _ => missing.push(format!(
            "the ledger directory {} is not fsynced after its files were created",
            dir.display()
        )),
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn strace_order_check_is_not_vacuous() {
    let p = "/x/l/db/db";
    let good = format!(
        "10 pwrite64(3<{p}>, \"abc\", 3, 0) = 3\n\
         11 sync_file_range(3<{p}>, 0, 3, SYNC_FILE_RANGE_WRITE) = 0\n\
         10 fdatasync(4<{p}> <unfinished ...>\n\
         11 write(2</dev/null>, \"x\", 1) = 1\n\
         10 <... fdatasync resumed>) = 0\n\
         10 write(1</dev/pts/0>, \"{{\\\"leaf_hash\\\":\\\"abcd\\\"}}\\n\", 20) = 20\n\
         10 fsync(3<{p}>) = 0\n"
    );
    assert!(check_sync_before_receipt(&parse_strace(&good), p, "abcd").is_ok());
    // No sync after the last sync_file_range.
    let bad = format!(
        "10 fdatasync(4<{p}>) = 0\n\
         11 sync_file_range(3<{p}>, 0, 3, SYNC_FILE_RANGE_WRITE) = 0\n\
         10 write(1</dev/pts/0>, \"abcd\", 4) = 4\n\
         10 fsync(3<{p}>) = 0\n"
    );
    assert!(check_sync_before_receipt(&parse_strace(&bad), p, "abcd").is_err());
    // The sync still running when the receipt is written.
    let racing = format!(
        "11 sync_file_range(3<{p}>, 0, 3, SYNC_FILE_RANGE_WRITE) = 0\n\
         12 fdatasync(4<{p}> <unfinished ...>\n\
         10 write(1</dev/pts/0>, \"abcd\", 4) = 4\n\
         12 <... fdatasync resumed>) = 0\n"
    );
    assert!(check_sync_before_receipt(&parse_strace(&racing), p, "abcd").is_err());
    // A failed sync, or a sync of another file, does not count.
    let failed = format!(
        "11 pwrite64(3<{p}>, \"abc\", 3, 0) = 3\n\
         10 fdatasync(4<{p}>) = -1 EIO (Input/output error)\n\
         10 fsync(5</x/l/db/snap.1>) = 0\n\
         10 write(1</dev/pts/0>, \"abcd\", 4) = 4\n"
    );
    assert!(check_sync_before_receipt(&parse_strace(&failed), p, "abcd").is_err());
}
