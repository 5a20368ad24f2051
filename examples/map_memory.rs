//! Memory and proof time of the state map that keeps only its upper levels in memory, with and
//! without a cap on them (`StateMap::capped`, the ledger's `Options::map_bytes`).
//!
//!   cargo run --release --example map_memory -- 5000000 64
//!
//! Arguments: keys (N), the cap in MiB (0: no cap), and optionally the bucket size (16, the
//! ledger's). Makes N random 32-byte keys (BLAKE3 outputs, like state keys), sorts them, then
//! builds the map in key order in chunks of 65,536 (as a ledger rebuilds it when it opens),
//! loading its buckets from the sorted keys in memory; then updates 100,000 random keys (in
//! batches of 1,000, each loading the buckets it falls into), and proves 100,000 random
//! present keys and 100,000 absent ones, each loaded bucket checked against its stub. Prints
//! the map's own count of its bytes in memory (`StateMap::bytes_in_memory`), the RSS growth
//! over the sorted keys, the final bucket size and the time per proof.

use std::time::Instant;

use consentlog::core::hash::Hash;
use consentlog::core::map::{check, common_prefix_len, MapSource, MapValue, StateMap};

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |kb| kb as f64 / 1024.0)
}

fn key(i: u64) -> Hash {
    *blake3::hash(&i.to_le_bytes()).as_bytes()
}

fn value(i: u64) -> MapValue {
    MapValue {
        index: i,
        leaf_hash: *blake3::hash(&(!i).to_le_bytes()).as_bytes(),
    }
}

/// The keys, sorted, of which the first `upto` are in the map.
struct Sorted<'a> {
    items: &'a [(Hash, MapValue)],
}

impl MapSource for Sorted<'_> {
    type Error = std::convert::Infallible;

    fn load(
        &self,
        prefix: &Hash,
        bits: usize,
    ) -> Result<Vec<(Hash, MapValue)>, std::convert::Infallible> {
        // The keys sharing `bits` bits with `prefix` are a run of the sorted keys.
        let start = self
            .items
            .partition_point(|(k, _)| k < prefix && common_prefix_len(k, prefix) < bits);
        Ok(self.items[start..]
            .iter()
            .take_while(|(k, _)| common_prefix_len(k, prefix) >= bits)
            .copied()
            .collect())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let cap_mib: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let bucket: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(16);
    let mut items: Vec<(Hash, MapValue)> = (0..n).map(|i| (key(i), value(i))).collect();
    items.sort_unstable_by_key(|item| item.0);
    let base = rss_mib();
    let t = Instant::now();
    let mut map = StateMap::with_buckets(bucket).capped(cap_mib << 20);
    let mut done = 0;
    for chunk in items.chunks(65_536) {
        let src = Sorted {
            items: &items[..done],
        };
        map.insert_batch_from(chunk, &src).expect("insert");
        done += chunk.len();
    }
    let build = t.elapsed();
    // Updates of random keys: each loads the buckets it falls into.
    let t = Instant::now();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..100u64 {
        let batch: Vec<_> = (0..1_000)
            .map(|_| {
                let i = next() % n;
                (key(i), value(i + n * (round + 1)))
            })
            .collect();
        let src = Sorted { items: &items };
        map.insert_batch_from(&batch, &src).expect("update");
        // The source must keep describing the map: put the new values in.
        for (k, v) in batch {
            let at = items.binary_search_by_key(&k, |item| item.0).unwrap();
            items[at].1 = v;
        }
    }
    let src = Sorted { items: &items };
    let updates = t.elapsed();
    let held = map.bytes_in_memory();
    let rss = rss_mib() - base;
    let root = map.root();
    let queries: Vec<u64> = (0..100_000).map(|_| next() % n).collect();
    let t = Instant::now();
    for &i in &queries {
        let k = key(i);
        let p = map.prove_from(&k, &src).expect("prove");
        std::hint::black_box(&p);
    }
    let present = t.elapsed() / queries.len() as u32;
    let t = Instant::now();
    for &i in &queries {
        let k = key(i + n * 1_000);
        let p = map.prove_from(&k, &src).expect("prove");
        std::hint::black_box(&p);
    }
    let absent = t.elapsed() / queries.len() as u32;
    // Spot checks: the proofs verify against the root.
    for &i in queries.iter().take(1_000) {
        let k = key(i);
        let p = map.prove_from(&k, &src).expect("prove");
        assert!(check(&root, &k, &p).expect("valid").is_some());
    }
    println!(
        "keys {n}  cap {cap_mib} MiB  bucket {} (from {bucket})  map bytes {:.1} MiB ({:.1} B/key)  \
         RSS +{rss:.1} MiB ({:.1} B/key)  build {:.2} s  100k updates {:.2} s  \
         prove present {:.1} us  absent {:.1} us",
        map.bucket(),
        held as f64 / (1 << 20) as f64,
        held as f64 / n as f64,
        rss * (1 << 20) as f64 / n as f64,
        build.as_secs_f64(),
        updates.as_secs_f64(),
        present.as_secs_f64() * 1e6,
        absent.as_secs_f64() * 1e6,
    );
}
