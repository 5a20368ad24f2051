//! The state map (consentlog::core::map): single inserts, batch inserts, proofs and checks.

mod common;

use std::hint::black_box;

use common::Cycle;
use consentlog::core::hash::Hash;
use consentlog::core::map::{check, common_prefix_len, MapProof, MapSource, MapValue, StateMap};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

/// Keys of the map the single inserts go into.
const SMALL: u64 = 100_000;
/// Keys of the map the batches go into.
const LARGE: u64 = 1_000_000;
/// Keys per batch.
const BATCH: u64 = 10_000;

/// Key `i`: a state key is a BLAKE3 output, so uniformly spread.
fn key(i: u64) -> Hash {
    *blake3::hash(&i.to_le_bytes()).as_bytes()
}

fn value(i: u64) -> MapValue {
    MapValue {
        index: i,
        leaf_hash: *blake3::hash(&(!i).to_le_bytes()).as_bytes(),
    }
}

fn items(range: std::ops::Range<u64>) -> Vec<(Hash, MapValue)> {
    range.map(|i| (key(i), value(i))).collect()
}

fn map_of(n: u64) -> StateMap {
    let mut m = StateMap::new();
    for chunk in items(0..n).chunks(65536) {
        m.insert_batch(chunk);
    }
    m
}

fn insert(c: &mut Criterion) {
    let mut g = c.benchmark_group("map/insert");
    let base = map_of(SMALL);
    // Each iteration inserts into a snapshot (a pointer copy) of the 100k map, so its size
    // stays fixed; the path copies are dropped outside the measurement.
    let mut fresh = SMALL;
    g.bench_function(BenchmarkId::new("new_key", "100k"), |b| {
        b.iter_batched_ref(
            || {
                fresh += 1;
                (base.clone(), key(fresh), value(fresh))
            },
            |(m, k, v)| m.insert(*k, *v),
            BatchSize::SmallInput,
        )
    });
    let mut pick = Cycle::new(SMALL);
    g.bench_function(BenchmarkId::new("update_key", "100k"), |b| {
        b.iter_batched_ref(
            || {
                let i = pick.pick();
                (base.clone(), key(i), value(i + SMALL))
            },
            |(m, k, v)| m.insert(*k, *v),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn insert_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("map/insert_batch");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BATCH));
    let base = map_of(LARGE);
    let mut round = 0;
    g.bench_function(BenchmarkId::new("10k_new_keys", "1M"), |b| {
        b.iter_batched(
            || {
                round += 1;
                let start = LARGE + round * BATCH;
                (base.clone(), items(start..start + BATCH))
            },
            |(mut m, batch)| {
                m.insert_batch(&batch);
                m
            },
            BatchSize::LargeInput,
        )
    });
    // Half new keys, half updates of existing ones (a ledger chunk continues chains too).
    g.bench_function(BenchmarkId::new("10k_half_updates", "1M"), |b| {
        b.iter_batched(
            || {
                round += 1;
                let start = LARGE + round * BATCH;
                let mut batch = items(start..start + BATCH / 2);
                let mut pick = Cycle::new(LARGE);
                for _ in 0..BATCH / 2 {
                    let i = (pick.pick() + round) % LARGE;
                    batch.push((key(i), value(start + i)));
                }
                (base.clone(), batch)
            },
            |(mut m, batch)| {
                m.insert_batch(&batch);
                m
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn prove_check(c: &mut Criterion) {
    let mut g = c.benchmark_group("map");
    let m = map_of(LARGE);
    let root = m.root();
    let mut pick = Cycle::new(LARGE);
    g.bench_function(BenchmarkId::new("prove_present", "1M"), |b| {
        b.iter(|| m.prove(&key(pick.pick())))
    });
    let mut absent = LARGE;
    g.bench_function(BenchmarkId::new("prove_absent", "1M"), |b| {
        b.iter(|| {
            absent += 1;
            m.prove(&key(absent))
        })
    });
    let proofs: Vec<(Hash, MapProof)> = (0..256)
        .map(|_| {
            let k = key(pick.pick());
            (k, m.prove(&k))
        })
        .collect();
    let mut k = 0;
    g.bench_function(BenchmarkId::new("check_present", "1M"), |b| {
        b.iter(|| {
            k = (k + 1) % proofs.len();
            let (key, proof) = &proofs[k];
            black_box(check(&root, key, proof).unwrap())
        })
    });
    g.finish();
}

/// The keys, sorted: the source a bucketed map loads its buckets from (in memory, so this
/// measures the map's own work: finding the bucket, rebuilding it, checking it against its stub).
struct Sorted<'a>(&'a [(Hash, MapValue)]);

impl MapSource for Sorted<'_> {
    type Error = std::convert::Infallible;

    fn load(
        &self,
        prefix: &Hash,
        bits: usize,
    ) -> Result<Vec<(Hash, MapValue)>, std::convert::Infallible> {
        let start = self
            .0
            .partition_point(|(k, _)| k < prefix && common_prefix_len(k, prefix) < bits);
        Ok(self.0[start..]
            .iter()
            .take_while(|(k, _)| common_prefix_len(k, prefix) >= bits)
            .copied()
            .collect())
    }
}

/// Proofs from a map keeping only its upper levels in memory, at bucket sizes 16 (the ledger's
/// start), 64 (where the 64 MiB default cap brings a 5M-key map) and 256: a capped map
/// doubles its bucket size, and each proof loads and hashes about that many keys.
fn prove_bucketed(c: &mut Criterion) {
    let mut g = c.benchmark_group("map/prove_from");
    let mut all = items(0..LARGE);
    all.sort_unstable_by_key(|item| item.0);
    let src = Sorted(&all);
    for bucket in [16, 64, 256] {
        let mut m = StateMap::with_buckets(bucket);
        let mut done = 0;
        for chunk in all.chunks(65536) {
            m.insert_batch_from(chunk, &Sorted(&all[..done])).unwrap();
            done += chunk.len();
        }
        let mut pick = Cycle::new(LARGE);
        g.bench_function(
            BenchmarkId::new(format!("present_bucket{bucket}"), "1M"),
            |b| b.iter(|| m.prove_from(&key(pick.pick()), &src).unwrap()),
        );
    }
    g.finish();
}

criterion_group!(benches, insert, insert_batch, prove_check, prove_bucketed);
criterion_main!(benches);
