//! Hostile traffic against a real server (issue 13): many readers forcing map leaves, and a
//! mix of oversized bodies, half-sent headers, idle connections and invalid signatures at
//! volume while honest appends go on. Honest appends succeed, nothing is written for the
//! hostile requests, and the server's memory stays under a stated bound.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

const READER: &str = "reader-token-for-hostile-tests";

/// How many checkpoints (each ends at its own map leaf) the server lists.
fn checkpoints(srv: &Server) -> usize {
    let v = srv.get("/v1/checkpoints?from=0").expect(200).json();
    v["checkpoints"].as_array().expect("checkpoints").len()
}

/// The server process's resident memory (kB), from /proc.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Readers asking, all at once and again and again, for proofs about "now" cannot make the log
/// append more than one map leaf (and sign one checkpoint) a second: each waits for the next
/// one (at most 2 s) or is told to retry.
#[test]
fn many_readers_asking_about_now_append_at_most_one_map_leaf_a_second() {
    let srv = Server::start(&["--reader-token", READER]);
    let mut p = Person::new();
    srv.append(&p.step(&srv.origin, true));
    let before = checkpoints(&srv);
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let statuses: Vec<Vec<u16>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (url, p, stop) = (srv.url.clone(), &p, stop.clone());
                s.spawn(move || {
                    let (ag, auth) = (agent(), bearer(READER));
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let path = p.consent_path(Some(now_ms()));
                        let r = send(&ag, "GET", &format!("{url}{path}"), Some(&auth), None);
                        if r.status == 503 {
                            assert!(r.header("retry-after").is_some(), "{r:#?}");
                        }
                        seen.push(r.status);
                    }
                    seen
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(3_000));
        stop.store(true, Ordering::Relaxed);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let statuses: Vec<u16> = statuses.concat();
    let added = checkpoints(&srv) - before;
    assert!(statuses.len() >= 32, "{} requests", statuses.len());
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200));
    // One a second at most, plus one for the partial second at each end.
    let bound = elapsed.ceil() as usize + 1;
    eprintln!(
        "{} proof requests about now in {elapsed:.1} s: {added} map leaves",
        statuses.len()
    );
    assert!(
        added <= bound,
        "{} requests in {elapsed:.1} s added {added} map leaves (at most {bound})",
        statuses.len()
    );
}

/// Oversized batch bodies, header bytes sent slowly and never finished, idle connections and
/// events with bad signatures, all at once, while one client appends honestly. Every honest
/// append is acknowledged; nothing of the hostile traffic is written; the server's resident
/// memory stays under 256 MiB.
#[test]
fn hostile_traffic_writes_nothing_and_honest_appends_go_on() {
    const HONEST: usize = 150;
    const RSS_BOUND_KB: u64 = 256 * 1024;
    let srv = Server::start(&["--header-timeout", "2000", "--max-connections", "64"]);
    let pid = srv.pid().expect("a server process");
    let addr = srv.url.trim_start_matches("http://").to_string();
    let stop = Arc::new(AtomicBool::new(false));
    // Hostile requests answered: oversized, half-sent heads opened, bad signatures.
    let counts: [AtomicUsize; 3] = Default::default();
    let counts = &counts;
    let mut peak = rss_kb(pid);
    let start_events = srv.events();
    let honest_ok = std::thread::scope(|s| {
        // 2 MiB of `x\n` per batch request: refused by count before anything is parsed.
        for _ in 0..2 {
            let (url, stop) = (format!("{}/v1/events/batch", srv.url), stop.clone());
            s.spawn(move || {
                let (ag, body) = (agent(), "x\n".repeat(1 << 20));
                while !stop.load(Ordering::Relaxed) {
                    // The server may answer and close before the whole body is sent.
                    if let Ok(r) = try_send(&ag, "POST", &url, None, Some(body.as_bytes())) {
                        assert!(r.status == 413 || r.status == 503, "{r:#?}");
                    }
                    counts[0].fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Slow and unfinished request heads, and idle connections.
        {
            let (addr, stop) = (addr.clone(), stop.clone());
            s.spawn(move || {
                let mut open = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut c) = TcpStream::connect(&addr) {
                        let _ = c.write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-");
                        open.push(c);
                        counts[1].fetch_add(1, Ordering::Relaxed);
                    }
                    if open.len() > 40 {
                        open.remove(0);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        // Events with a wrong signature, at volume.
        for _ in 0..2 {
            let (url, origin, stop) = (srv.url.clone(), srv.origin.clone(), stop.clone());
            s.spawn(move || {
                let ag = agent();
                let p = Person::new();
                let ev = p.make(&origin, true);
                let mut line = event_json(&ev);
                let sig = consentlog::core::hash::to_hex(&ev.signature);
                let mut bad = sig.clone();
                bad.replace_range(0..2, if &sig[0..2] == "00" { "01" } else { "00" });
                line = line.replace(&sig, &bad);
                let batch = vec![line.clone(); 500].join("\n");
                while !stop.load(Ordering::Relaxed) {
                    counts[2].fetch_add(501, Ordering::Relaxed);
                    let one = format!("{url}/v1/events");
                    let r = send(&ag, "POST", &one, None, Some(line.as_bytes()));
                    assert!(r.status == 422 || r.status == 503, "{r:#?}");
                    let many = format!("{url}/v1/events/batch");
                    let r = send(&ag, "POST", &many, None, Some(batch.as_bytes()));
                    assert!(r.status == 200 || r.status == 503, "{r:#?}");
                    if r.status == 200 {
                        let v = r.json();
                        assert!(v["results"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .all(|x| x["status"] == 422));
                    }
                }
            });
        }
        // The honest client, and the memory sampler, once the hostile traffic is under way.
        while counts.iter().any(|c| c.load(Ordering::Relaxed) < 2) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut ok = 0;
        for i in 0..HONEST {
            let mut p = Person::new();
            let r = srv.post_event(&p.step(&srv.origin, i % 2 == 0));
            if r.status == 201 {
                ok += 1;
            }
            peak = peak.max(rss_kb(pid));
        }
        stop.store(true, Ordering::Relaxed);
        ok
    });
    assert_eq!(honest_ok, HONEST, "every honest append is acknowledged");
    assert_eq!(
        srv.events() - start_events,
        HONEST as u64,
        "nothing else was written"
    );
    peak = peak.max(rss_kb(pid));
    assert!(
        peak < RSS_BOUND_KB,
        "server RSS peaked at {peak} kB (bound {RSS_BOUND_KB} kB)"
    );
    let [big, heads, bad] = counts.each_ref().map(|c| c.load(Ordering::Relaxed));
    eprintln!(
        "hostile traffic: {big} oversized batches, {heads} half-sent heads, {bad} events with \
         bad signatures; server RSS peak {} MiB",
        peak / 1024
    );
    assert!(
        big >= 4 && heads >= 20 && bad >= 2_000,
        "too little hostile traffic"
    );
    run(&["audit", "--url", &srv.url, "--log-key", &srv.log_key_hex]).ok();
}
