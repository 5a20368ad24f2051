//! Resident memory of the storage engines as keys are added, in key order or in random order.
//!
//! The ledger's index tables (`KeyIndex`, `SubjectIndex`, `MapLeaf`) are keyed by hashes, so
//! every new person or purpose inserts keys at random places. This measures what that costs
//! each engine, outside the ledger: N keys of V-byte values, in batches (1,000 keys by default), each
//! batch committed and synced, then RSS (VmRSS), after dropping the database, and after reopening.
//!
//!   cargo run --release --example engine_memory -- sled 500000 40 random
//!   cargo run --release --example engine_memory -- redb 500000 40 random
//!
//! Arguments: engine (sled | redb), keys, value bytes, order (sequential | random), and
//! optionally the engine's cache in MiB (64, the ledger's default) and the keys per batch
//! (1,000).
//! The database is made in a fresh temporary directory and removed at the end.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("t");

fn rss_mib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// Key `i`: the index big-endian, or a xorshift of it (random order, no repeats).
fn key(i: u64, random: bool) -> [u8; 8] {
    if !random {
        return i.to_be_bytes();
    }
    // A bijection on u64 (xorshift-multiply), so keys never repeat.
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)).to_be_bytes()
}

fn sled_run(dir: &Path, n: u64, value: &[u8], random: bool, cache: u64, batch: u64) -> u64 {
    let open = || {
        sled::Config::new()
            .path(dir)
            .cache_capacity(cache)
            .flush_every_ms(None)
            .open()
            .expect("sled open")
    };
    let db = open();
    let mut i = 0;
    while i < n {
        let mut b = sled::Batch::default();
        for _ in 0..batch.min(n - i) {
            b.insert(&key(i, random)[..], value);
            i += 1;
        }
        db.apply_batch(b).expect("sled batch");
        db.flush().expect("sled flush");
        progress(i, n, batch);
    }
    let disk = db.size_on_disk().expect("size");
    drop(db);
    println!("after drop: rss {} MiB", rss_mib());
    let db = open();
    println!("reopened ({} keys): rss {} MiB", db.len(), rss_mib());
    disk
}

fn redb_run(dir: &Path, n: u64, value: &[u8], random: bool, cache: u64, batch: u64) -> u64 {
    let path = dir.join("db.redb");
    let open = || {
        redb::Database::builder()
            .set_cache_size(cache as usize)
            .create(&path)
            .expect("redb open")
    };
    let db = open();
    let mut i = 0;
    while i < n {
        let w = db.begin_write().expect("begin");
        {
            let mut t = w.open_table(TABLE).expect("table");
            for _ in 0..batch.min(n - i) {
                t.insert(&key(i, random)[..], value).expect("insert");
                i += 1;
            }
        }
        w.commit().expect("commit");
        progress(i, n, batch);
    }
    drop(db);
    println!("after drop: rss {} MiB", rss_mib());
    let db = open();
    let len = db
        .begin_read()
        .map(|r| r.open_table(TABLE).expect("table").len().expect("len"))
        .expect("read");
    println!("reopened ({len} keys): rss {} MiB", rss_mib());
    std::fs::metadata(&path).map_or(0, |m| m.len())
}

/// Prints RSS each time `i` keys pass another fifth of `n` (the batch ended at `i`).
fn progress(i: u64, n: u64, batch: u64) {
    let step = (n / 5).max(1);
    if (i - batch.min(i)) / step != i / step || i == n {
        println!("{i} keys: rss {} MiB", rss_mib());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: engine_memory sled|redb KEYS VALUE_BYTES sequential|random [CACHE_MIB (64) [BATCH (1000)]]";
    let (engine, n, size, order, cache, batch) = match args.as_slice() {
        [e, n, s, o] => (e, n, s, o, "64", "1000"),
        [e, n, s, o, c] => (e, n, s, o, c.as_str(), "1000"),
        [e, n, s, o, c, b] => (e, n, s, o, c.as_str(), b.as_str()),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let Ok(cache) = cache.parse::<u64>().map(|mib| mib << 20) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let (Ok(n), Ok(size), Ok(batch @ 1..)) = (
        n.parse::<u64>(),
        size.parse::<usize>(),
        batch.parse::<u64>(),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let random = match order.as_str() {
        "random" => true,
        "sequential" => false,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let dir = std::env::temp_dir().join(format!("engine-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let value = vec![7u8; size];
    println!(
        "{engine}: {n} keys, {size}-byte values, {order} order, cache {} MiB, batches of {batch}; \
         start rss {} MiB",
        cache >> 20,
        rss_mib()
    );
    let disk = match engine.as_str() {
        "sled" => sled_run(&dir, n, &value, random, cache, batch),
        "redb" => redb_run(&dir, n, &value, random, cache, batch),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    println!("on disk: {} MiB", disk >> 20);
    std::fs::remove_dir_all(&dir).ok();
}
