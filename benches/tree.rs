//! The RFC 9162 Merkle log (consentlog::core::tlog): appends to the frontier, and inclusion
//! and consistency proofs built from and checked against an in-memory tree.

mod common;

use std::hint::black_box;

use common::Cycle;
use consentlog::core::hash::Hash;
use consentlog::core::tlog::{
    check_consistency, check_inclusion, prove_consistency, prove_inclusion, tree_hash, Frontier,
    LeafIndex, MemoryTree, Sha256Hasher, TreeHasher, TreeSize,
};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

/// Tree sizes of the proof benches: 2^16 and 2^20 leaves.
const SIZES: [u32; 2] = [16, 20];
/// Leaves per measured append batch.
const APPEND: u64 = 1024;

fn leaf(i: u64) -> Hash {
    Sha256Hasher.hash_leaf(&i.to_le_bytes())
}

fn tree(leaves: u64) -> MemoryTree<Sha256Hasher> {
    let mut t = MemoryTree::new(Sha256Hasher);
    for i in 0..leaves {
        t.push_leaf_hash(leaf(i));
    }
    t
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("tlog/append");
    g.throughput(Throughput::Elements(APPEND));
    let leaves: Vec<Hash> = (0..APPEND).map(leaf).collect();
    for bits in SIZES {
        // A frontier of 2^bits leaves; each sample appends APPEND more to a copy of it.
        let mut base = Frontier::new();
        for i in 0..1u64 << bits {
            base.append_with(&Sha256Hasher, leaf(i), |_, _, _| {});
        }
        g.bench_function(BenchmarkId::new("append_with", format!("2^{bits}")), |b| {
            b.iter_batched_ref(
                || base.clone(),
                |f| {
                    for l in &leaves {
                        f.append_with(&Sha256Hasher, *l, |level, index, hash| {
                            black_box((level, index, hash));
                        });
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn proofs(c: &mut Criterion) {
    let h = Sha256Hasher;
    let mut g = c.benchmark_group("tlog");
    for bits in SIZES {
        let n = 1u64 << bits;
        let t = tree(n);
        let size = TreeSize(n);
        let root = t.root();
        let label = format!("2^{bits}");

        let mut pick = Cycle::new(n);
        g.bench_function(BenchmarkId::new("prove_inclusion", &label), |b| {
            b.iter(|| prove_inclusion(&h, &t, LeafIndex(pick.pick()), size).unwrap())
        });
        let mut pick = Cycle::new(n - 1);
        g.bench_function(BenchmarkId::new("prove_consistency", &label), |b| {
            b.iter(|| prove_consistency(&h, &t, TreeSize(1 + pick.pick()), size).unwrap())
        });

        // 256 precomputed proofs, checked in turn.
        let mut pick = Cycle::new(n);
        let inclusions: Vec<(u64, Vec<Hash>)> = (0..256)
            .map(|_| {
                let i = pick.pick();
                (i, prove_inclusion(&h, &t, LeafIndex(i), size).unwrap())
            })
            .collect();
        let mut k = 0;
        g.bench_function(BenchmarkId::new("check_inclusion", &label), |b| {
            b.iter(|| {
                k = (k + 1) % inclusions.len();
                let (i, proof) = &inclusions[k];
                check_inclusion(&h, LeafIndex(*i), size, &leaf(*i), proof, &root).unwrap()
            })
        });
        let mut pick = Cycle::new(n - 1);
        let consistencies: Vec<(TreeSize, Hash, Vec<Hash>)> = (0..256)
            .map(|_| {
                let old = TreeSize(1 + pick.pick());
                let old_root = tree_hash(&h, &t, old).unwrap();
                (old, old_root, prove_consistency(&h, &t, old, size).unwrap())
            })
            .collect();
        let mut k = 0;
        g.bench_function(BenchmarkId::new("check_consistency", &label), |b| {
            b.iter(|| {
                k = (k + 1) % consistencies.len();
                let (old, old_root, proof) = &consistencies[k];
                check_consistency(&h, *old, size, old_root, &root, proof).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, append, proofs);
criterion_main!(benches);
