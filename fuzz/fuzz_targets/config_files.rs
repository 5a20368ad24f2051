//! The parsers of files people hand the tools: a server's tokens file (mode 0), a C2SP
//! tlog-policy file (mode 1) and an evidence file's JSON, then its check (mode 2).
#![no_main]

use consentlog_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mode(data, 3) {
        (0, d) => check_tokens_text(&text(d)),
        (1, d) => check_policy_bytes(d),
        (_, d) => check_evidence_text(&text(d)),
    }
});
