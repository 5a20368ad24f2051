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

/// The signature ceiling's workload (scripts/bench.sh, examples/signature_ceiling.rs and
/// examples/replay_rate.rs measure every rate against it): `n` signed decision events of 1,000
/// people, as in the benchmark's ledgers, checked strictly with the ledger's own bulk checker
/// (`signatures_valid`, [`SIGNATURE_CHUNK`](crate::core::event::SIGNATURE_CHUNK) at a time, on
/// all cores), as appends and audits check them.
pub struct SignatureWorkload {
    events: Vec<crate::core::event::SignedEvent>,
    keys: std::collections::HashMap<
        [u8; 32],
        Result<ed25519_dalek::VerifyingKey, crate::core::reject::Reject>,
    >,
}

impl SignatureWorkload {
    /// `n` events, signed on all cores, and their subjects' keys decoded (not timed).
    pub fn new(n: usize) -> SignatureWorkload {
        use crate::core::event::{subject_keys, ConsentEvent};
        use rayon::prelude::*;
        let people: Vec<_> = (0..1_000u64)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&i.to_le_bytes());
                seed[8] = 0x5c;
                ed25519_dalek::SigningKey::from_bytes(&seed)
            })
            .collect();
        let events: Vec<_> = (0..n)
            .into_par_iter()
            .map(|i| {
                let key = &people[i % people.len()];
                ConsentEvent::next(
                    "bench.example/log",
                    key.verifying_key().to_bytes(),
                    ("example.com", "cawg.ai_training"),
                    true,
                    None,
                    1_767_225_600_000 + i as u64,
                    None,
                )
                .sign(key)
            })
            .collect();
        let keys = subject_keys(events.iter());
        SignatureWorkload { events, keys }
    }

    /// How many events it holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Checks the first `n` events (all of them if fewer) and returns how many are valid.
    pub fn check(&self, n: usize) -> usize {
        use crate::core::event::{signatures_valid, SIGNATURE_CHUNK};
        use rayon::prelude::*;
        self.events[..n.min(self.events.len())]
            .par_chunks(SIGNATURE_CHUNK)
            .map(|c| {
                let refs: Vec<_> = c.iter().collect();
                signatures_valid(&refs, &self.keys)
                    .iter()
                    .filter(|ok| **ok)
                    .count()
            })
            .sum()
    }
}
