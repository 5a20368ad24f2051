//! note::open with the fixture's log key and note::parse_body on arbitrary text (mode 0),
//! mutations of the fixture's signed notes (mode 1), and single-bit changes of them (mode 2).
#![no_main]

use consentlog_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mode(data, 3) {
        (0, d) => check_note_text(&text(d), &loaded().key),
        (1, d) => check_note_mutation(loaded(), d),
        (_, d) => check_note_bit_flip(loaded(), d),
    }
});
