//! Entry::decode and Opening::decode (and SignedEvent::decode) on arbitrary bytes.
#![no_main]

use consentlog_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_entry_bytes(data);
});
