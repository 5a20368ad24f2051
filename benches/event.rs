//! Consent events (consentlog::core::event): signing, the strict self-check, the JSON line
//! and the binary form.

mod common;

use consentlog::core::event::{EventJson, SignedEvent};
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
