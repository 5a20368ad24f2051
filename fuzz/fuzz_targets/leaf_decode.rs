//! Leaf::decode (every kind, and the kind-specific decoders; SignedEvent::decode and
//! Opening::decode on the same bytes) on arbitrary bytes (mode 0), mutations of the fixture's
//! leaves and openings (mode 1), and single-bit changes of its leaves (mode 2).
#![no_main]

use consentlog_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mode(data, 3) {
        (0, d) => check_leaf_bytes(d),
        (1, d) => check_leaf_mutation(loaded(), d),
        (_, d) => check_leaf_bit_flip(loaded(), d),
    }
});
