//! The soak client of scripts/soak.sh: steady, bounded load on a running `consentlog serve`
//! for a while, with the server's memory sampled over time. Uses the typed client
//! (`consentlog::client`), so the soak also exercises the API's wire types.
//!
//! THREADS posting threads send signed events made beforehand by `consentlog loadgen` (one
//! segment at a time, each person's chain in one thread, in order): single POSTs and, in
//! BATCH_PCT percent of the POSTs, NDJSON batches of BATCH events; 503s are retried after a
//! pause, and a cut request is resubmitted (an identical event is answered with its receipt).
//! One more thread reads, about once a second: the checkpoint, a consistency and an inclusion
//! proof, a page of entries, a consent proof and the metrics. Every REPORT seconds a line
//! gives the elapsed time, events, throughput, errors, reads and the server's RSS (VmRSS of
//! /proc/PID/status); at the end a summary, and the number of events logged in
//! WORK/events.count. Exit status 0 only if nothing failed.
//!
//! Settings come from the environment (scripts/soak.sh sets them): URL, PID, BIN (the
//! consentlog binary), ORIGIN, WORK (a scratch directory), TOKEN (a reader token), SECS,
//! THREADS, REPORT, BATCH, BATCH_PCT, SEGMENT, CHAIN, RATE (requests per second over all
//! threads, 0 = as fast as answered).
//!
//!   cargo run --release --example soak        # with the variables above set

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use consentlog::api::{ConsentQuery, ConsistencyQuery, InclusionQuery, PageQuery};
use consentlog::client::{Client, ClientError};
use consentlog::core::hash::from_hex_array;

/// Events are refused 5 minutes after loadgen signed them (the issued_at window): older
/// parts are dropped, and counted, rather than sent.
const MAX_AGE: Duration = Duration::from_secs(240);

fn env<T: std::str::FromStr>(name: &str) -> T {
    let v = std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    v.parse()
        .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value"))
}

struct Settings {
    url: String,
    pid: u32,
    bin: String,
    origin: String,
    work: String,
    token: String,
    secs: f64,
    threads: usize,
    report: f64,
    batch: usize,
    batch_pct: u64,
    segment: u64,
    users: u64,
    rate: f64,
}

impl Settings {
    fn from_env() -> Settings {
        let threads: usize = env::<usize>("THREADS").max(1);
        let chain = env::<u64>("CHAIN").max(1);
        let segment = env::<u64>("SEGMENT").max(chain * threads as u64);
        // A multiple of THREADS people, each with a chain of equal length.
        let t = threads as u64;
        let users = (segment / chain / t * t).max(t);
        Settings {
            url: env("URL"),
            pid: env("PID"),
            bin: env("BIN"),
            origin: env("ORIGIN"),
            work: env("WORK"),
            token: env("TOKEN"),
            secs: env("SECS"),
            threads,
            report: env("REPORT"),
            batch: env::<usize>("BATCH").max(1),
            batch_pct: env("BATCH_PCT"),
            segment: segment / users * users,
            users,
            rate: env("RATE"),
        }
    }
}

/// Counts shared by every thread.
#[derive(Default)]
struct Counts {
    events: AtomicU64,
    dup: AtomicU64,
    requests: AtomicU64,
    single: AtomicU64,
    batch: AtomicU64,
    rejected: AtomicU64,
    http_err: AtomicU64,
    transport: AtomicU64,
    overloaded: AtomicU64,
    stale: AtomicU64,
    reads: AtomicU64,
    read_err: AtomicU64,
    segments: AtomicU64,
}

impl Counts {
    fn errors(&self) -> u64 {
        [
            &self.http_err,
            &self.rejected,
            &self.transport,
            &self.read_err,
            &self.stale,
        ]
        .iter()
        .map(|c| c.load(Relaxed))
        .sum()
    }
}

/// A bounded queue of (made at, events) parts: loadgen runs only a little ahead.
struct Work {
    parts: Mutex<VecDeque<(Instant, Vec<String>)>>,
    changed: Condvar,
    cap: usize,
}

impl Work {
    /// Waits for room (or `done`); false if done.
    fn put(&self, part: (Instant, Vec<String>), done: &AtomicBool) -> bool {
        let mut q = self.parts.lock().expect("queue");
        while q.len() >= self.cap {
            if done.load(Relaxed) {
                return false;
            }
            q = self
                .changed
                .wait_timeout(q, Duration::from_millis(500))
                .expect("queue")
                .0;
        }
        q.push_back(part);
        self.changed.notify_all();
        true
    }

    /// The next part, or None after half a second without one.
    fn take(&self) -> Option<(Instant, Vec<String>)> {
        let mut q = self.parts.lock().expect("queue");
        if q.is_empty() {
            q = self
                .changed
                .wait_timeout(q, Duration::from_millis(500))
                .expect("queue")
                .0;
        }
        let part = q.pop_front();
        self.changed.notify_all();
        part
    }
}

struct Shared {
    s: Settings,
    c: Counts,
    done: AtomicBool,
    work: Work,
    /// Some subjects that were logged, for consent proof reads.
    subjects: Mutex<Vec<String>>,
    first_errors: Mutex<Vec<String>>,
    /// The next free request slot when RATE limits requests.
    next_slot: Mutex<Instant>,
}

impl Shared {
    fn note_error(&self, m: String) {
        let mut e = self.first_errors.lock().expect("errors");
        if e.len() < 20 {
            e.push(m);
        }
    }

    fn pace(&self) {
        if self.s.rate <= 0.0 {
            return;
        }
        let wait = {
            let mut next = self.next_slot.lock().expect("pace");
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + Duration::from_secs_f64(1.0 / self.s.rate);
            slot - now
        };
        std::thread::sleep(wait);
    }
}

/// A cheap per-thread random number generator (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Signed events by loadgen, a segment at a time, each split among the posting threads so
/// that every person's chain stays in one thread, in order.
fn producer(sh: &Shared) {
    let s = &sh.s;
    let mut n = 0;
    while !sh.done.load(Relaxed) {
        let path = format!("{}/segment-{n}.ndjson", s.work);
        let out = std::process::Command::new(&s.bin)
            .args(["loadgen", "--events", &s.segment.to_string()])
            .args([
                "--users",
                &s.users.to_string(),
                "--log",
                &s.origin,
                "--out",
                &path,
            ])
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
                sh.note_error(format!("loadgen failed: {why}"));
                sh.done.store(true, Relaxed);
                return;
            }
            Err(e) => {
                sh.note_error(format!("loadgen failed: {e}"));
                sh.done.store(true, Relaxed);
                return;
            }
        }
        let text = std::fs::read_to_string(&path).expect("the segment loadgen wrote");
        let _ = std::fs::remove_file(&path);
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let made = Instant::now();
        n += 1;
        sh.c.segments.fetch_add(1, Relaxed);
        // Line i is person i % USERS; USERS % THREADS == 0, so i % THREADS picks a set of
        // people.
        for t in 0..s.threads {
            let part = lines
                .iter()
                .skip(t)
                .step_by(s.threads)
                .map(|l| l.to_string());
            if !sh.work.put((made, part.collect()), &sh.done) {
                return;
            }
        }
    }
}

/// Whether a receipt's status counts as newly logged: 201, or 200 for a resubmission after
/// a cut request (the first attempt may have been logged).
fn logged(status: u16, attempt: u32) -> bool {
    status == 201 || (status == 200 && attempt > 0)
}

/// Posts one event or a batch; retries a 503 or a cut request (resubmission is idempotent).
fn post(sh: &Shared, c: &Client, lines: &[String]) {
    let batch = lines.len() > 1;
    let what = if batch { "POST batch" } else { "POST event" };
    let body = lines.join("\n");
    let counts = &sh.c;
    let kind = if batch { &counts.batch } else { &counts.single };
    for attempt in 0..5 {
        sh.pace();
        let answer = if batch {
            c.append_batch(&body).map(|r| {
                let statuses: Vec<u16> = r.results.iter().map(|x| x.status).collect();
                (None, statuses, r.results.into_iter().find_map(|x| x.error))
            })
        } else {
            c.append_line(&body)
                .map(|a| (Some(a.status), vec![a.status], None))
        };
        let (single, statuses, first_error) = match answer {
            Err(ClientError::Transport { message, .. }) => {
                counts.transport.fetch_add(1, Relaxed);
                sh.note_error(format!("{what}: {message}"));
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            Err(e) if e.status() == Some(503) => {
                counts.requests.fetch_add(1, Relaxed);
                kind.fetch_add(1, Relaxed);
                counts.overloaded.fetch_add(1, Relaxed);
                std::thread::sleep(Duration::from_millis(50 * u64::from(attempt + 1)));
                continue;
            }
            Err(e) => {
                counts.requests.fetch_add(1, Relaxed);
                kind.fetch_add(1, Relaxed);
                counts.http_err.fetch_add(1, Relaxed);
                sh.note_error(format!("{what}: {e}"));
                return;
            }
            Ok(a) => a,
        };
        counts.requests.fetch_add(1, Relaxed);
        kind.fetch_add(1, Relaxed);
        let ok = statuses.iter().filter(|&&s| logged(s, attempt)).count() as u64;
        let dup = statuses
            .iter()
            .filter(|&&s| s == 200 && attempt > 0)
            .count() as u64;
        counts.events.fetch_add(ok, Relaxed);
        counts.dup.fetch_add(dup, Relaxed);
        let bad = statuses.len() as u64 - ok;
        if bad > 0 {
            if single.is_some() {
                counts.http_err.fetch_add(1, Relaxed);
            } else {
                counts.rejected.fetch_add(bad, Relaxed);
            }
            sh.note_error(format!(
                "{what}: {bad} refused, statuses {statuses:?}, first error {first_error:?}"
            ));
        }
        return;
    }
    counts.http_err.fetch_add(1, Relaxed);
    sh.note_error(format!("{what}: gave up after 5 attempts"));
}

fn poster(sh: &Shared, i: u64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i + 1));
    let c = Client::new(&sh.s.url, None);
    while !sh.done.load(Relaxed) {
        let Some((made, part)) = sh.work.take() else {
            continue;
        };
        if made.elapsed() > MAX_AGE {
            sh.c.stale.fetch_add(part.len() as u64, Relaxed);
            continue;
        }
        if let Some(subject) = part.first().and_then(|l| subject_of(l)) {
            let mut subjects = sh.subjects.lock().expect("subjects");
            if subjects.len() < 1000 {
                subjects.push(subject);
            }
        }
        let mut k = 0;
        while k < part.len() && !sh.done.load(Relaxed) {
            let n = if rng.below(100) < sh.s.batch_pct {
                sh.s.batch
            } else {
                1
            };
            let end = (k + n).min(part.len());
            post(sh, &c, &part[k..end]);
            k = end;
        }
    }
}

fn subject_of(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v["subject"].as_str().map(str::to_string)
}

/// Proof and read traffic, about once a second each.
fn reader(sh: &Shared) {
    let c = Client::new(&sh.s.url, Some(sh.s.token.clone()));
    let mut rng = Rng(99);
    let mut old = 0u64;
    let read = |what: &str, r: Result<(), ClientError>| {
        sh.c.reads.fetch_add(1, Relaxed);
        if let Err(e) = r {
            sh.c.read_err.fetch_add(1, Relaxed);
            sh.note_error(format!("GET {what}: {e}"));
        }
    };
    while !sh.done.load(Relaxed) {
        let note = c.checkpoint();
        let size = note
            .as_ref()
            .ok()
            .and_then(|n| n.lines().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        read("checkpoint", note.map(drop));
        if size > 0 {
            let q = ConsistencyQuery {
                old,
                new: Some(size),
            };
            read("consistency", c.consistency(&q).map(drop));
            let q = InclusionQuery {
                index: rng.below(size),
                size: Some(size),
            };
            read("inclusion", c.inclusion(&q).map(drop));
            let start = rng.below(size);
            let q = PageQuery {
                start: Some(start),
                end: Some(start + 20),
            };
            read("entries", c.entries(&q).map(drop));
            old = size;
        }
        let subject = {
            let subjects = sh.subjects.lock().expect("subjects");
            let n = subjects.len() as u64;
            (n > 0).then(|| subjects[rng.below(n) as usize].clone())
        };
        if let Some(subject) = subject.and_then(|s| from_hex_array(&s).ok()) {
            let q = ConsentQuery {
                subject,
                controller: "example.com".into(),
                purpose: "cawg.ai_training".into(),
                at: None,
            };
            // A proof about now may wait for a map leaf (at most one a second): the server
            // answers 503 with Retry-After when none came within 2 s; retry as told.
            let mut r = c.consent(&q).map(drop);
            for _ in 0..3 {
                if !matches!(&r, Err(e) if e.status() == Some(503)) {
                    break;
                }
                sh.c.overloaded.fetch_add(1, Relaxed);
                std::thread::sleep(std::time::Duration::from_secs(1));
                r = c.consent(&q).map(drop);
            }
            read("consent", r);
        }
        read("metrics", c.metrics().map(drop));
        let pause = Instant::now() + Duration::from_secs(1);
        while !sh.done.load(Relaxed) && Instant::now() < pause {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The server's resident memory in KiB, if it is still running.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let s = Settings::from_env();
    if !Client::new(&s.url, None).wait_until_healthy(Duration::from_secs(60)) {
        eprintln!("the server did not come up at {}", s.url);
        std::process::exit(1);
    }
    let (secs, report, pid) = (s.secs, s.report, s.pid);
    let sh = Arc::new(Shared {
        work: Work {
            parts: Mutex::new(VecDeque::new()),
            changed: Condvar::new(),
            cap: s.threads * 2,
        },
        s,
        c: Counts::default(),
        done: AtomicBool::new(false),
        subjects: Mutex::new(Vec::new()),
        first_errors: Mutex::new(Vec::new()),
        next_slot: Mutex::new(Instant::now()),
    });
    let spawn = |f: Box<dyn FnOnce(&Shared) + Send>| {
        let sh = sh.clone();
        std::thread::spawn(move || f(&sh))
    };
    let producer = spawn(Box::new(producer));
    let mut workers: Vec<_> = (0..sh.s.threads as u64)
        .map(|i| spawn(Box::new(move |sh: &Shared| poster(sh, i))))
        .collect();
    workers.push(spawn(Box::new(reader)));

    let start = Instant::now();
    let mut rss: Vec<u64> = rss_kb(pid).into_iter().collect();
    println!(
        "{:>8} {:>10} {:>8} {:>7} {:>7} {:>7} {:>8}",
        "elapsed", "events", "ev/s", "req/s", "errors", "reads", "RSS MiB"
    );
    let (mut last_t, mut last_ev, mut last_req) = (start, 0u64, 0u64);
    loop {
        let left = secs - start.elapsed().as_secs_f64();
        if left <= 0.0 {
            break;
        }
        std::thread::sleep(Duration::from_secs_f64(report.min(left)));
        let now = Instant::now();
        let r = rss_kb(pid);
        rss.extend(r);
        let (ev, req) = (sh.c.events.load(Relaxed), sh.c.requests.load(Relaxed));
        let dt = (now - last_t).as_secs_f64();
        println!(
            "{:7.0}s {ev:>10} {:8.0} {:7.0} {:>7} {:>7} {:8.1}",
            (now - start).as_secs_f64(),
            (ev - last_ev) as f64 / dt,
            (req - last_req) as f64 / dt,
            sh.c.errors(),
            sh.c.reads.load(Relaxed),
            r.unwrap_or(0) as f64 / 1024.0
        );
        (last_t, last_ev, last_req) = (now, ev, req);
        if r.is_none() {
            println!("the server is gone");
            break;
        }
    }
    sh.done.store(true, Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let _ = producer.join();
    let elapsed = start.elapsed().as_secs_f64();
    let c = &sh.c;
    let n = |a: &AtomicU64| a.load(Relaxed);
    println!("== summary");
    println!("   duration         {elapsed:.0} s");
    println!(
        "   events logged    {} ({:.0}/s; {} confirmed by a resubmission)",
        n(&c.events),
        n(&c.events) as f64 / elapsed,
        n(&c.dup)
    );
    println!(
        "   requests         {} ({} single, {} batch; {} loadgen segments)",
        n(&c.requests),
        n(&c.single),
        n(&c.batch),
        n(&c.segments)
    );
    println!(
        "   errors           {} (http {}, refused events {}, transport {}, reads {}, stale events {}); overloaded 503s retried {}",
        c.errors(),
        n(&c.http_err),
        n(&c.rejected),
        n(&c.transport),
        n(&c.read_err),
        n(&c.stale),
        n(&c.overloaded)
    );
    println!("   reads            {}", n(&c.reads));
    if let (Some(first), Some(last), Some(max)) = (rss.first(), rss.last(), rss.iter().max()) {
        let mib = |k: &u64| *k as f64 / 1024.0;
        println!(
            "   server RSS MiB   first {:.1}, last {:.1}, max {:.1}",
            mib(first),
            mib(last),
            mib(max)
        );
        // The growth over the second half of the run, for the flat-memory check.
        let half = &rss[rss.len() / 2..];
        if let (Some(a), Some(b)) = (half.first(), half.last()) {
            println!(
                "   RSS second half  {:.1} -> {:.1} MiB ({:+.1})",
                mib(a),
                mib(b),
                mib(b) - mib(a)
            );
        }
    }
    for e in sh.first_errors.lock().expect("errors").iter() {
        println!("   error: {e}");
    }
    let count = format!("{}/events.count", sh.s.work);
    std::fs::write(&count, format!("{}\n", n(&c.events))).expect("events.count");
    std::process::exit(i32::from(c.errors() > 0));
}
