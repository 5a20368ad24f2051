//! Consent proofs against a real sled ledger of ~50k entries: building one
//! (`Ledger::prove_consent_in` against a fixed snapshot), its JSON, and checking it
//! (`core::proof::check`).

mod common;

use common::Cycle;
use consentlog::core::hash::json_object;
use consentlog::core::proof::{check, ConsentProof, Question};
use consentlog::ledger::{clock, Ledger};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const EVENTS: u64 = 50_000;
/// 20 events per person, as `scripts/bench.sh` runs `loadgen --users N/20`.
const USERS: u64 = EVENTS / 20;

fn proof(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::init(
        dir.path(),
        common::LOG,
        consentlog::testing::engine_from_env().as_str(),
    )
    .unwrap();
    let events = common::events(0, USERS, EVENTS, clock::now_ms());
    for o in ledger.append(events.into_iter().map(Ok).collect()).unwrap() {
        assert!(
            matches!(o, consentlog::ledger::Outcome::Accepted(_)),
            "{o:?}"
        );
    }
    ledger.checkpoint().unwrap();
    let snap = ledger.latest();
    let key = ledger.public_key();
    let subjects: Vec<[u8; 32]> = (0..USERS)
        .map(|u| common::person(u).verifying_key().to_bytes())
        .collect();
    let prove = |u: u64, at: u64| {
        ledger
            .prove_consent_in(
                &snap,
                &subjects[u as usize],
                common::CONTROLLER,
                common::PURPOSE,
                at,
            )
            .unwrap()
    };
    // "latest": at the checkpoint, so the last event is in force (one event + a map proof).
    // "past": at the first chunk's time, so an event with its successor (two events, no map).
    let latest = snap.map_leaf.time;
    let past = ledger.event_leaf(2).unwrap().unwrap().integrated_at;
    let shape = |p: &ConsentProof| format!("{} event(s), map {}", p.events.len(), p.map.is_some());
    eprintln!(
        "proof bench: {EVENTS} entries; latest proof: {}; past proof: {}",
        shape(&prove(0, latest)),
        shape(&prove(0, past))
    );

    let mut g = c.benchmark_group("proof");
    for (name, at) in [("latest", latest), ("past", past)] {
        let mut pick = Cycle::new(USERS);
        g.bench_function(BenchmarkId::new("prove_consent_in", name), |b| {
            b.iter(|| prove(pick.pick(), at))
        });
    }
    let p = prove(1, latest);
    let text = serde_json::to_string(&p).unwrap();
    eprintln!(
        "proof bench: a latest proof is {} bytes of JSON",
        text.len()
    );
    g.bench_function("to_json", |b| b.iter(|| serde_json::to_string(&p).unwrap()));
    g.bench_function("from_json", |b| {
        b.iter(|| json_object::<ConsentProof>(&text).unwrap())
    });
    for (name, at) in [("latest", latest), ("past", past)] {
        let proofs: Vec<ConsentProof> = (0..64).map(|u| prove(u, at)).collect();
        let mut k = 0;
        g.bench_function(BenchmarkId::new("check", name), |b| {
            b.iter(|| {
                k = (k + 1) % proofs.len();
                check(&proofs[k], &key, &Question::default()).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, proof);
criterion_main!(benches);
