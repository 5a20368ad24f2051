//! The machine's signature ceiling: strict Ed25519 verifications of signed events per second on
//! all cores, with the ledger's own bulk checker (`signatures_valid`, 64 at a time, as appends
//! and audits use it). scripts/bench.sh measures it first and prints every figure beside it as a
//! ratio, since shared machines vary from day to day.
//!
//! `cargo run --release --example signature_ceiling [EVENTS]` prints one line:
//! `ceiling <verifications/s> on <cores> cores`.

use consentlog::testing::SignatureWorkload;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("EVENTS: a number"))
        .unwrap_or(50_000);
    let w = SignatureWorkload::new(n);
    // Warm up, then time the checks alone.
    w.check(4_096);
    let t = std::time::Instant::now();
    let ok = w.check(n);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(ok, n, "every signature is valid");
    println!(
        "ceiling {:.0} on {} cores",
        n as f64 / secs,
        rayon::current_num_threads()
    );
}
