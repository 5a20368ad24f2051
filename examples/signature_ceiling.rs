//! The machine's signature ceiling: strict Ed25519 verifications of signed events per second on
//! all cores, with the ledger's own bulk checker (`signatures_valid`, 64 at a time, as appends
//! and audits use it). scripts/bench.sh measures it first and prints every figure beside it as a
//! ratio, since shared machines vary from day to day.
//!
//! `cargo run --release --example signature_ceiling [EVENTS]` prints one line:
//! `ceiling <verifications/s> on <cores> cores`.

use consentlog::core::event::{signatures_valid, subject_keys, ConsentEvent, SIGNATURE_CHUNK};
use rayon::prelude::*;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("EVENTS: a number"))
        .unwrap_or(50_000);
    // 1,000 people, as in the benchmark's ledgers (20 events per person and more).
    let people: Vec<_> = (0..1_000)
        .map(|_| consentlog::keyfile::generate())
        .collect();
    let events: Vec<_> = (0..n)
        .into_par_iter()
        .map(|i| {
            let key = &people[i % people.len()];
            ConsentEvent::next(
                "bench.example/log",
                key.verifying_key().to_bytes(),
                ("example.com", "cawg.ai_training"),
                true,
                None,
                1_767_225_600_000 + i as u64,
                None,
            )
            .sign(key)
        })
        .collect();
    let keys = subject_keys(events.iter());
    // Warm up, then time the checks alone.
    let check = |evs: &[consentlog::core::event::SignedEvent]| -> usize {
        evs.par_chunks(SIGNATURE_CHUNK)
            .map(|c| {
                let refs: Vec<_> = c.iter().collect();
                signatures_valid(&refs, &keys)
                    .iter()
                    .filter(|ok| **ok)
                    .count()
            })
            .sum()
    };
    check(&events[..n.min(4_096)]);
    let t = std::time::Instant::now();
    let ok = check(&events);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(ok, n, "every signature is valid");
    println!(
        "ceiling {:.0} on {} cores",
        n as f64 / secs,
        rayon::current_num_threads()
    );
}
