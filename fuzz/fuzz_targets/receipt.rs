//! Receipt::parse and Receipt::check (docs/FORMAT.md §7) on arbitrary text (mode 0) and on
//! mutations of the fixture's receipts, as text or in their extra bytes (mode 1).
#![no_main]

use consentlog_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mode(data, 2) {
        (0, d) => check_receipt_text(loaded(), &text(d)),
        (_, d) => check_receipt_mutation(loaded(), d),
    }
});
