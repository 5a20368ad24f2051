//! The bodies the server parses: NDJSON event lines, JSON arrays of events, the bulk proof
//! request, and Authorization headers (mode 0, arbitrary text); mutated valid JSON lines
//! (mode 1); mutated valid signed-request headers (mode 2).
#![no_main]

use consentlog_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mode(data, 3) {
        (0, d) => check_http_body(&text(d), strict(), Some(loaded())),
        (1, d) => check_event_json_mutation(loaded(), d, strict()),
        (_, d) => check_header_mutation(loaded(), d),
    }
});
