//! State keys (consentlog::core::vrf): what the log pays once per new triple (a VRF proof,
//! its output derived from the proof) and what a verifier pays once per triple (a check).
//! Compare with `event/check_self`, one strict signature check.

use consentlog::core::vrf::{StateKeyInput, VrfSecretKey};
use criterion::{criterion_group, criterion_main, Criterion};

fn vrf(c: &mut Criterion) {
    let mut g = c.benchmark_group("vrf");
    let sk = VrfSecretKey::from_random(&[7; 64]);
    let pk = sk.public_key();
    let subject = [9u8; 32];
    let triple = StateKeyInput {
        origin: "bench.example/log",
        subject: &subject,
        controller: "example.com",
        purpose: "cawg.ai_training",
    };
    let (_, proof) = sk.prove_state_key(&triple);
    g.bench_function("prove_state_key", |b| {
        b.iter(|| sk.prove_state_key(&triple))
    });
    g.bench_function("check_state_key", |b| {
        b.iter(|| pk.check_state_key(&triple, &proof).unwrap())
    });
    g.finish();
}

criterion_group!(benches, vrf);
criterion_main!(benches);
