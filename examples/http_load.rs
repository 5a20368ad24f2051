//! HTTP append load: posts signed events one per request (`POST /v1/events`) from N
//! connections and prints `events_per_s p50_ms p99_ms errors` on one line (used by
//! scripts/bench.sh, row (b)). Each person's events go to one connection, in file order, so
//! their chains arrive in order.
//!
//!   cargo run --release --example http_load -- URL EVENTS.ndjson [CONNECTIONS]
//!
//! A Rust client, so that the load generator takes as little as possible of the CPU it shares
//! with the server on the benchmark machine.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use consentlog::client::Client;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: http_load URL EVENTS.ndjson [CONNECTIONS]");
        std::process::exit(2);
    }
    let url = args[1].trim_end_matches('/').to_string();
    let conns: usize = args.get(3).map_or(64, |n| n.parse().expect("CONNECTIONS"));
    let text = std::fs::read_to_string(&args[2]).expect("events file");
    let mut buckets: Vec<Vec<String>> = vec![Vec::new(); conns];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("event JSON");
        let mut h = DefaultHasher::new();
        v["subject"].as_str().expect("subject").hash(&mut h);
        buckets[(h.finish() % conns as u64) as usize].push(line.to_string());
    }
    wait_for(&url);
    let start = Arc::new(Barrier::new(conns + 1));
    let workers: Vec<_> = buckets
        .into_iter()
        .map(|bucket| {
            let start = start.clone();
            let client = Client::new(&url, None);
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(bucket.len());
                let mut errors = Vec::new();
                start.wait();
                for body in &bucket {
                    let t = Instant::now();
                    let r = client.post("/v1/events", body);
                    lat.push(t.elapsed());
                    if let Err(e) = r {
                        errors.push(e.to_string());
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    let mut lat = Vec::new();
    let mut errors = Vec::new();
    for w in workers {
        let (l, e) = w.join().expect("worker");
        lat.extend(l);
        errors.extend(e);
    }
    let wall = t0.elapsed().as_secs_f64();
    if let Some(first) = errors.first() {
        eprintln!("first error: {first}");
    }
    lat.sort();
    let pct = |p: f64| {
        let i = ((p * lat.len() as f64) as usize).min(lat.len().saturating_sub(1));
        lat.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{:.0} {:.2} {:.2} {}",
        (lat.len() - errors.len()) as f64 / wall,
        pct(0.50),
        pct(0.99),
        errors.len()
    );
}

/// Waits up to a minute for the server's health check.
fn wait_for(url: &str) {
    let c = Client::new(url, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.get("/healthz", None).is_err() {
        if Instant::now() > deadline {
            eprintln!("server did not come up at {url}");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
