//! Consent events (consentlog::core::event): signing, the strict self-check, the JSON line
//! and the binary form.

mod common;

use consentlog::core::event::{signatures_valid, subject_keys, EventJson, SignedEvent};
use criterion::{criterion_group, criterion_main, Criterion};

fn event(c: &mut Criterion) {
    let mut g = c.benchmark_group("event");
    // A person's second event: it has `prev`, like most events in a ledger.
    let ev = common::chain(7, 2, 1_700_000_000_000).pop().unwrap();
    let key = common::person(7);
    let json = serde_json::to_string(&EventJson::from(&ev)).unwrap();
    let bytes = ev.as_bytes().to_vec();

    g.bench_function("sign", |b| b.iter(|| ev.event.clone().sign(&key)));
    g.bench_function("check_self", |b| b.iter(|| ev.check_self().unwrap()));
    // The bulk path (append and audit): 64 events of 64 people, their keys decompressed
    // beforehand as the callers do once per chunk; the figure is for all 64.
    let many: Vec<SignedEvent> = (0..64)
        .map(|p| common::chain(p, 1, 1_700_000_000_000).pop().unwrap())
        .collect();
    let refs: Vec<&SignedEvent> = many.iter().collect();
    let keys = subject_keys(many.iter());
    g.bench_function("signatures_valid_64", |b| {
        b.iter(|| assert!(signatures_valid(&refs, &keys).iter().all(|&ok| ok)))
    });
    g.bench_function("verify_strict_64", |b| {
        b.iter(|| {
            for e in &many {
                let key = keys[&e.event.subject].as_ref().unwrap();
                let mut msg = consentlog::core::event::EVENT_DOMAIN.to_vec();
                msg.extend_from_slice(&e.as_bytes()[..e.as_bytes().len() - 64]);
                let sig = ed25519_dalek::Signature::from_bytes(&e.signature);
                key.verify_strict(&msg, &sig).unwrap();
            }
        })
    });
    g.bench_function("event_hash", |b| b.iter(|| ev.event_hash()));
    g.bench_function("json_parse", |b| {
        b.iter(|| EventJson::parse(&json).unwrap())
    });
    g.bench_function("json_write", |b| {
        b.iter(|| serde_json::to_string(&EventJson::from(&ev)).unwrap())
    });
    g.bench_function("decode", |b| {
        b.iter(|| SignedEvent::decode(&bytes).unwrap())
    });
    g.finish();
}

criterion_group!(benches, event);
criterion_main!(benches);
