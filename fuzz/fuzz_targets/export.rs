//! export::Reader (then export::Writer and the auditor) over arbitrary bytes (mode 0), and
//! structured mutations of the fixture's export (mode 1).
#![no_main]

use consentlog_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mode(data, 2) {
        (0, d) => check_export_bytes(d, Some(original_export())),
        (_, d) => check_export_mutation(loaded(), d),
    }
});
