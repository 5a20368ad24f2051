//! Support for the test suite and benchmarks: the suite runs once per storage engine, chosen
//! by `$CONSENTLOG_ENGINE`. Not for the library's own use: the ledger reads no environment.

use crate::store::Engine;

/// The engine named by `$CONSENTLOG_ENGINE` (`sled` or `redb`), else sled. An unknown name
/// panics, so that a misspelt variable does not quietly run the suite on the default engine.
pub fn engine_from_env() -> Engine {
    match std::env::var("CONSENTLOG_ENGINE") {
        Ok(name) if !name.is_empty() => name
            .parse()
            .unwrap_or_else(|e| panic!("$CONSENTLOG_ENGINE: {e}")),
        _ => Engine::default(),
    }
}
