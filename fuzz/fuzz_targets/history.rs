//! History JSON then history::check (mode 0); structured mutations of the fixture's history
//! (mode 1): a mutated history shows the original chains, complete up to its map leaf, or
//! fails; single-bit changes of its JSON (mode 2): refused.
#![no_main]

use consentlog_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mode(data, 3) {
        (0, d) => check_history_json(&text(d), &loaded().key),
        (1, d) => check_history_mutation(loaded(), d),
        (_, d) => check_history_bit_flip(loaded(), d),
    }
});
