//! Shared code of the fuzz targets: the properties and mutator of tests/it/support/fuzz.rs
//! (the same file `cargo test` runs as tests/it/fuzz_props.rs), and the stored fixture, loaded
//! once per process.

use std::sync::OnceLock;

#[path = "../../tests/it/support/fuzz.rs"]
pub mod support;

pub use support::*;

/// The fixture of fuzz/fixtures/ledger.json, decoded and verified once.
pub fn loaded() -> &'static Loaded {
    static L: OnceLock<Loaded> = OnceLock::new();
    L.get_or_init(Loaded::stored)
}

/// The fully read fixture export, for comparisons.
pub fn original_export() -> &'static ReadExport {
    static X: OnceLock<ReadExport> = OnceLock::new();
    X.get_or_init(|| read_export(&loaded().export).expect("fixture export"))
}

/// `CONSENTLOG_FUZZ_STRICT=1` makes the already reported bugs (support::KNOWN) fail too.
pub fn strict() -> bool {
    static S: OnceLock<bool> = OnceLock::new();
    *S.get_or_init(|| std::env::var("CONSENTLOG_FUZZ_STRICT").is_ok_and(|v| v == "1"))
}

/// Splits off the mode byte: `(mode, rest)`.
pub fn mode(data: &[u8], modes: u8) -> (u8, &[u8]) {
    match data.split_first() {
        Some((m, rest)) => (m % modes, rest),
        None => (0, data),
    }
}

/// Arbitrary bytes as text (invalid UTF-8 replaced).
pub fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}
