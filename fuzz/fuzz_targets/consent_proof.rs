//! ConsentProof JSON then proof::check with the fixture's log key (mode 0); structured
//! mutations of the fixture's valid proofs (mode 1): a mutated proof never verifies with
//! another state for the same question; proof::check_anchor with mutated genesis and map
//! leaves (mode 2): it accepts only the log's own leaves; single-bit changes of a valid
//! proof's JSON (mode 3): refused.
#![no_main]

use consentlog_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mode(data, 4) {
        (0, d) => check_proof_json(&text(d), &loaded().key),
        (1, d) => check_proof_mutation(loaded(), d),
        (2, d) => check_anchor_mutation(loaded(), d),
        (_, d) => check_proof_bit_flip(loaded(), d),
    }
});
