//! export::Reader (then export::Writer and the auditor) over arbitrary bytes (mode 0),
//! structured mutations of the fixture's export (mode 1), and single-bit changes of it
//! (mode 2): never a clean audit.
#![no_main]

use consentlog_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mode(data, 3) {
        (0, d) => check_export_bytes(d, Some(original_export())),
        (1, d) => check_export_mutation(loaded(), d),
        (_, d) => check_export_bit_flip(loaded(), d),
    }
});
