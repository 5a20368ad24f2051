//! ConsentProof JSON then proof::check with the fixture's log key (mode 0), and structured
//! mutations of the fixture's valid proofs (mode 1): a mutated proof never verifies with
//! another state for the same question.
#![no_main]

use consentlog_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mode(data, 2) {
        (0, d) => check_proof_json(&text(d), &loaded().key),
        (_, d) => check_proof_mutation(loaded(), d),
    }
});
