//! The replaying witness's rate and memory (issue 12 item 4): leaves replayed per second by the
//! real follower (`tlog_witness::replay::Replay`, what `consentlog witness --replay` runs)
//! from a real `serve` over loopback HTTP, beside the machine's signature ceiling measured in
//! the same run, and the follower's peak RSS.
//!
//! `cargo run --release --example replay_rate -- [SIZES] [--dir DIR]`
//!
//! SIZES is a comma-separated list of ledger sizes in events (default `100000`). The ledger is
//! built in DIR (default a temporary directory; it must not hold a ledger yet) by the library's own append, signed on all cores, 20
//! events per person, a map leaf and checkpoint every 10,000 events; it is served by
//! `server::serve_on` (as `consentlog serve`) on 127.0.0.1. At each size a fresh follower
//! process (this example run again with `--follow`) replays the whole log into its own
//! directory, and prints one line:
//!
//! `replay <leaves> leaves in <s> s: <leaves/s> leaves/s = <x>x the ceiling <c>/s; peak RSS <m> MiB`
//!
//! `replay_rate --follow URL LOG_KEY_HEX DIR LEAVES [ORIGIN]` is the follower alone: it
//! replays any consentlog log served at URL (ORIGIN: default this example's) into DIR until it
//! has replayed LEAVES leaves, and prints `<leaves> <seconds> <peak RSS MiB> <CPU seconds>`.
//!
//! The follower is a separate process so its peak RSS (VmHWM) is its own, not the server's;
//! `REPLAY_RATE_WRAP="perf record -g -o replay.perf --"` runs it under a profiler.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consentlog::core::event::{ConsentEvent, SignedEvent};
use consentlog::ledger::clock::SystemClock;
use consentlog::ledger::Ledger;
use consentlog::tlog_witness::replay::Replay;
use ed25519_dalek::SigningKey;
use rayon::prelude::*;

const ORIGIN: &str = "bench.example/replay";
const CONTROLLER: &str = "example.com";
const PURPOSE: &str = "cawg.ai_training";
/// Events per person, as in the benchmark's ledgers.
const PER_PERSON: u64 = 20;
/// Events appended between map leaves.
const SEGMENT: u64 = 10_000;

/// A person's latest event: its seq and hash.
type Head = Option<(u64, [u8; 32])>;

/// A person, their events signed (each with its index in the ledger), and their new head.
type Signed = (u64, Vec<(u64, SignedEvent)>, Head);

fn person(u: u64) -> SigningKey {
    let seed = blake3::derive_key("consentlog replay_rate person", &u.to_le_bytes());
    SigningKey::from_bytes(&seed)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// The peak resident set of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The CPU time this process has used (user + system), in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses): utime is the 14th field of
    // the line, stime the 15th, in clock ticks (100 a second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Strict verifications per second on all cores (as examples/signature_ceiling.rs), and per
/// CPU-second used (what one core does when the machine is shared).
fn measure_ceiling() -> (f64, f64) {
    let n = 30_000usize;
    let w = consentlog::testing::SignatureWorkload::new(n);
    w.check(4_096);
    let (t, cpu) = (Instant::now(), cpu_secs());
    assert_eq!(w.check(n), n);
    (
        n as f64 / t.elapsed().as_secs_f64(),
        n as f64 / (cpu_secs() - cpu),
    )
}

/// Events `from..to` of the ledger: event `i` is person `i % people`'s event number
/// `i / people`, where `people` = the final size / 20 (so each person's chain is in order).
fn events(from: u64, to: u64, people: u64, heads: &mut [Head]) -> Vec<SignedEvent> {
    let now = now_ms();
    // Each person's events in this range, in order, signed on all cores (one person's chain
    // on one thread).
    let mut by_person: Vec<Vec<u64>> = vec![Vec::new(); people as usize];
    for i in from..to {
        by_person[(i % people) as usize].push(i);
    }
    let chains: Vec<Signed> = by_person
        .into_par_iter()
        .enumerate()
        .filter(|(_, is)| !is.is_empty())
        .map(|(u, is)| {
            let key = person(u as u64);
            let mut head = heads[u];
            let mut out = Vec::with_capacity(is.len());
            for i in is {
                let opt_in = head.is_none() || i % 3 != 0;
                let ev = ConsentEvent::next(
                    ORIGIN,
                    key.verifying_key().to_bytes(),
                    (CONTROLLER, PURPOSE),
                    opt_in,
                    head,
                    now,
                    None,
                )
                .sign(&key);
                head = Some((ev.event.seq, ev.event_hash()));
                out.push((i, ev));
            }
            (u as u64, out, head)
        })
        .collect();
    let mut all = Vec::with_capacity((to - from) as usize);
    for (u, out, head) in chains {
        heads[u as usize] = head;
        all.extend(out);
    }
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, e)| e).collect()
}

/// Appends a map leaf (the server's heartbeat may just have appended one: then after the
/// interval).
fn map_leaf(ledger: &Ledger) -> consentlog::core::note::SignedCheckpoint {
    loop {
        match ledger.checkpoint() {
            Ok(cp) => return cp,
            Err(consentlog::ledger::LedgerError::Invalid(
                consentlog::ledger::Invalid::MapLeafTooSoon { retry_after_ms },
            )) => std::thread::sleep(Duration::from_millis(retry_after_ms)),
            Err(e) => panic!("map leaf: {e}"),
        }
    }
}

/// Grows `ledger` to `size` events (plus its genesis and map leaves).
fn grow(ledger: &Ledger, done: &mut u64, size: u64, people: u64, heads: &mut [Head]) {
    let t = Instant::now();
    let start = *done;
    while *done < size {
        let to = size.min(*done + SEGMENT);
        let evs = events(*done, to, people, heads);
        let out = ledger
            .append(evs.into_iter().map(Ok).collect())
            .expect("append");
        assert!(
            out.iter()
                .all(|o| matches!(o, consentlog::ledger::Outcome::Accepted(_))),
            "every event accepted"
        );
        map_leaf(ledger);
        *done = to;
    }
    if size > start {
        eprintln!(
            "built {} events in {:.1} s (ledger size {} leaves)",
            size - start,
            t.elapsed().as_secs_f64(),
            ledger.size()
        );
    }
}

/// The follower process: replays the log at `url` into `dir` until it reached `target`.
fn follow(url: &str, log_key_hex: &str, dir: &Path, target: u64, origin: &str) {
    let key: [u8; 32] = hex::decode(log_key_hex)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key).expect("log key");
    let replay = Replay::open(dir, origin, key, url, Arc::new(SystemClock)).expect("open");
    let client = consentlog::client::Client::new(url, None);
    let (t, cpu) = (Instant::now(), cpu_secs());
    while replay.replayed() < target {
        match replay.round(&client) {
            Ok(true) => {}
            Ok(false) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("replay round: {e}"),
        }
        assert_eq!(replay.refused(), None, "the honest log was refused");
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} {secs:.3} {:.1} {:.3}",
        replay.replayed(),
        peak_rss_mib(),
        cpu_secs() - cpu
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--follow") {
        follow(
            &args[2],
            &args[3],
            Path::new(&args[4]),
            args[5].parse().expect("target"),
            args.get(6).map_or(ORIGIN, String::as_str),
        );
        return;
    }
    let mut sizes = vec![100_000u64];
    let mut dir: Option<PathBuf> = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--dir" {
            dir = Some(PathBuf::from(it.next().expect("--dir DIR")));
        } else {
            sizes = a
                .split(',')
                .map(|s| s.parse().expect("SIZES: numbers separated by commas"))
                .collect();
        }
    }
    sizes.sort_unstable();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = dir.unwrap_or_else(|| tmp.path().join("ledger"));
    let cores = rayon::current_num_threads() as f64;
    let (ceiling, per_cpu) = measure_ceiling();
    println!(
        "ceiling {ceiling:.0} strict verifications/s on {cores} cores ({per_cpu:.0} per \
         CPU-second); target 20x = {:.0} leaves/s",
        20.0 * ceiling
    );

    // The ledger, grown to each size in turn and served all along.
    use clap::Parser;
    use consentlog::cli::{serve_config, Cli, Command};
    let max = *sizes.last().expect("a size");
    let people = (max / PER_PERSON).max(1);
    let d = dir.to_str().expect("utf-8 dir");
    let argv = [
        "consentlog",
        "serve",
        "--dir",
        d,
        "--listen",
        "127.0.0.1:0",
        "--origin",
        ORIGIN,
    ];
    let Command::Serve(serve_args) = Cli::try_parse_from(argv).expect("serve args").command else {
        unreachable!("parsed as serve")
    };
    let (cfg, auth) = serve_config(serve_args).expect("serve config");
    assert!(
        !dir.join("engine").exists(),
        "{d} must not hold a ledger yet"
    );
    let ledger = consentlog::server::open(&cfg).expect("open the ledger");
    let mut done = 0;
    let mut heads: Vec<Head> = vec![None; people as usize];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let served = ledger.clone();
    let server = std::thread::spawn(move || {
        consentlog::server::runtime()
            .expect("runtime")
            .block_on(async {
                let listener = tokio::net::TcpListener::bind(cfg.listen)
                    .await
                    .expect("bind");
                url_tx
                    .send(format!("http://{}", listener.local_addr().expect("addr")))
                    .expect("send url");
                let shutdown = async {
                    let _ = stopped.await;
                };
                consentlog::server::serve_on(served, listener, &cfg, auth, shutdown, |_| {}).await
            })
    });
    let url = url_rx.recv().expect("the server's URL");
    let log_key = hex::encode(ledger.public_key().as_bytes());
    for size in sizes {
        grow(&ledger, &mut done, size, people, &mut heads);
        let cp = map_leaf(&ledger);
        let fdir = tempfile::tempdir().expect("tempdir");
        // $REPLAY_RATE_WRAP, if set, runs the follower under a profiler (for example
        // `perf record -g -o replay.perf --`).
        let wrap = std::env::var("REPLAY_RATE_WRAP").unwrap_or_default();
        let mut argv: Vec<String> = wrap.split_whitespace().map(String::from).collect();
        argv.push(std::env::current_exe().expect("exe").display().to_string());
        let (ceiling_before, _) = measure_ceiling();
        let served_cpu = cpu_secs();
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .args(["--follow", &url, &log_key])
            .arg(fdir.path())
            .arg(cp.size.to_string())
            .output()
            .expect("the follower");
        assert!(
            out.status.success(),
            "follower: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // This process only served during the replay: its CPU time is the server's.
        let served_cpu = cpu_secs() - served_cpu;
        let (ceiling_after, per_cpu) = measure_ceiling();
        let ceiling = (ceiling_before + ceiling_after) / 2.0;
        let line = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = line.split_whitespace().collect();
        let (leaves, secs, rss, follower_cpu): (f64, f64, f64, f64) = (
            f[0].parse().expect("leaves"),
            f[1].parse().expect("secs"),
            f[2].parse().expect("rss"),
            f[3].parse().expect("cpu"),
        );
        let rate = leaves / secs;
        println!(
            "replay {leaves} leaves in {secs:.2} s: {rate:.0} leaves/s = {:.2}x the ceiling \
             {ceiling:.0}/s (measured just before and after); peak RSS {rss:.1} MiB",
            rate / ceiling
        );
        // On a shared machine the wall-clock figures depend on what else runs: per CPU-second,
        // the follower's rate on one core against the ceiling of all cores.
        let cpu_rate = leaves / follower_cpu;
        println!(
            "  CPU per leaf: follower {:.2} us, server {:.2} us; the follower alone on one \
             core: {cpu_rate:.0} leaves/s = {:.2}x the ceiling of {cores} uncontended cores \
             ({:.0}/s)",
            follower_cpu / leaves * 1e6,
            served_cpu / leaves * 1e6,
            cpu_rate / (per_cpu * cores),
            per_cpu * cores
        );
    }
    let _ = stop.send(());
    server.join().expect("server thread").expect("served");
}
