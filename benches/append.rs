//! The append pipeline with sled: `Ledger::append` of one 8192-event chunk of pre-signed
//! events into a fresh ledger (parallel strict checks, rules, one atomic batch + fdatasync,
//! map update, receipts).

mod common;

use consentlog::core::event::SignedEvent;
use consentlog::core::reject::Reject;
use consentlog::ledger::{clock, Ledger, Outcome, CHUNK};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("ledger");
    g.sample_size(10);
    g.throughput(Throughput::Elements(CHUNK as u64));
    let events = common::events(0, CHUNK as u64 / 20, CHUNK as u64, clock::now_ms());
    g.bench_function("append_chunk_8192", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let ledger = Ledger::init(
                    dir.path(),
                    common::LOG,
                    consentlog::testing::engine_from_env().as_str(),
                )
                .unwrap();
                let batch: Vec<Result<SignedEvent, Reject>> =
                    events.iter().cloned().map(Ok).collect();
                (dir, ledger, batch)
            },
            |(dir, ledger, batch)| {
                let out = ledger.append(batch).unwrap();
                // The ledger and its directory are dropped outside the measurement.
                (dir, ledger, out)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    // Outside the measurement: every event was accepted.
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::init(
        dir.path(),
        common::LOG,
        consentlog::testing::engine_from_env().as_str(),
    )
    .unwrap();
    let out = ledger.append(events.into_iter().map(Ok).collect()).unwrap();
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted(_))));
}

criterion_group!(benches, append);
criterion_main!(benches);
