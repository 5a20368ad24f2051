//! HTTP append load: posts signed events one per request (`POST /v1/events`) from N
//! connections and prints `events_per_s p50_ms p99_ms errors` on one line (used by
//! scripts/bench.sh, row (b)). Each person's events go to one connection, in file order, so
//! their chains arrive in order.
//!
//!   cargo run --release --example http_load -- URL EVENTS.ndjson [CONNECTIONS]
//!
//! One thread runs every connection (an event loop on tokio, raw HTTP/1.1 with keep-alive),
//! so that the load generator takes as little as possible of the CPU it shares with the server
//! on the benchmark machine.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use consentlog::client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: http_load URL EVENTS.ndjson [CONNECTIONS]");
        std::process::exit(2);
    }
    let url = args[1].trim_end_matches('/').to_string();
    let conns: usize = args.get(3).map_or(64, |n| n.parse().expect("CONNECTIONS"));
    let Some(addr) = url.strip_prefix("http://").map(str::to_string) else {
        eprintln!("URL must be http://HOST:PORT");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&args[2]).expect("events file");
    let mut buckets: Vec<Vec<String>> = vec![Vec::new(); conns];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("event JSON");
        let mut h = DefaultHasher::new();
        v["subject"].as_str().expect("subject").hash(&mut h);
        buckets[(h.finish() % conns as u64) as usize].push(line.to_string());
    }
    wait_for(&url);
    // All connections on one thread: an event loop, like wrk, so that the client takes as
    // little as possible of the cores it shares with the server.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let (wall, mut lat, errors) = rt.block_on(async move {
        let mut streams = Vec::with_capacity(conns);
        for _ in 0..conns {
            let s = TcpStream::connect(&addr).await.expect("connect");
            s.set_nodelay(true).expect("nodelay");
            streams.push(s);
        }
        let t0 = Instant::now();
        let tasks: Vec<_> = buckets
            .into_iter()
            .zip(streams)
            .map(|(bucket, s)| tokio::spawn(connection(s, addr.clone(), bucket)))
            .collect();
        let mut lat = Vec::new();
        let mut errors = Vec::new();
        for t in tasks {
            let (l, e) = t.await.expect("connection task");
            lat.extend(l);
            errors.extend(e);
        }
        (t0.elapsed().as_secs_f64(), lat, errors)
    });
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

/// Posts each event of `bucket` in turn on one keep-alive HTTP/1.1 connection; the latency
/// of each, and an error for each answer that is not 2xx.
async fn connection(
    mut s: TcpStream,
    host: String,
    bucket: Vec<String>,
) -> (Vec<Duration>, Vec<String>) {
    let mut lat = Vec::with_capacity(bucket.len());
    let mut errors = Vec::new();
    let mut buf = Vec::with_capacity(4096);
    for body in &bucket {
        let req = format!(
            "POST /v1/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let t = Instant::now();
        let answer = async {
            s.write_all(req.as_bytes()).await?;
            read_response(&mut s, &mut buf).await
        }
        .await;
        lat.push(t.elapsed());
        match answer {
            Ok((status, _)) if (200..300).contains(&status) => {}
            Ok((status, body)) => errors.push(format!("HTTP {status}: {body}")),
            Err(e) => {
                errors.push(e.to_string());
                break;
            }
        }
    }
    (lat, errors)
}

/// Reads one HTTP/1.1 response with a Content-Length body: its status and body.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(u16, String)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("head not UTF-8"))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or_else(|| bad("no content-length"))?;
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed in the body"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
    Ok((status, body))
}

/// Waits up to a minute for the server's health check.
fn wait_for(url: &str) {
    if !Client::new(url, None).wait_until_healthy(Duration::from_secs(60)) {
        eprintln!("server did not come up at {url}");
        std::process::exit(1);
    }
}
