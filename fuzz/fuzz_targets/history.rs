//! History JSON then history::check (mode 0), and structured mutations of the fixture's
//! history (mode 1): a mutated history shows the original chains or fails.
#![no_main]

use consentlog_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mode(data, 2) {
        (0, d) => check_history_json(&text(d), &loaded().key),
        (_, d) => check_history_mutation(loaded(), d),
    }
});
