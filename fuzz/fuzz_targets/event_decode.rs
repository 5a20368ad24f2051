//! SignedEvent::decode + check_self (and Opening::decode) on arbitrary bytes, EventJson::parse
//! on arbitrary text, and mutations of valid events. First byte: 0 bytes, 1 JSON, 2 mutation.
#![no_main]

use consentlog_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mode(data, 3) {
        (0, d) => check_event_bytes(d),
        (1, d) => check_event_json(&text(d), strict()),
        (_, d) => check_event_mutation(loaded(), d),
    }
});
