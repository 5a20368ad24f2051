//! Shared helpers of the benches: deterministic people and loadgen-style event chains.
//!
//! `consentlog loadgen`'s `chain` lives in the binary's private `cli::loadgen` module, so the
//! benches build the same shape of events here: each person a chain seq 0.., linked by
//! `prev`, opt-in first, then a mix; people interleaved round by round.

#![allow(dead_code)] // each bench uses a part of this module

use consentlog::core::event::{
    ConsentEvent, SignedEvent, EVENT_VERSION, KIND_DECISION, SIGNER_SUBJECT,
};
use ed25519_dalek::SigningKey;
use rayon::prelude::*;

pub const LOG: &str = "bench.example/log";
pub const CONTROLLER: &str = "example.com";
pub const PURPOSE: &str = "ai-training";

/// The key of person `u` (deterministic, so runs are comparable).
pub fn person(u: u64) -> SigningKey {
    let seed = blake3::derive_key("consentlog bench person", &u.to_le_bytes());
    SigningKey::from_bytes(&seed)
}

/// Person `u`'s chain of `n` signed events, as `consentlog loadgen` makes them.
pub fn chain(u: u64, n: u64, now: u64) -> Vec<SignedEvent> {
    let key = person(u);
    let subject = key.verifying_key().to_bytes();
    let mut coin = u.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut prev = None;
    let mut out = Vec::with_capacity(n as usize);
    for seq in 0..n {
        coin ^= coin << 13;
        coin ^= coin >> 7;
        coin ^= coin << 17;
        let ev = ConsentEvent {
            version: EVENT_VERSION,
            kind: KIND_DECISION,
            signer: SIGNER_SUBJECT,
            log: LOG.to_string(),
            subject,
            controller: CONTROLLER.to_string(),
            purpose: PURPOSE.to_string(),
            decision: u8::from(seq == 0 || !coin.is_multiple_of(3)),
            seq,
            prev,
            issued_at: now,
            expires_at: None,
            notice: None,
        }
        .sign(&key);
        prev = Some(ev.event_hash());
        out.push(ev);
    }
    out
}

/// `events` events for `users` people (people `first..first + users`), interleaved round by
/// round so every chain stays in order.
pub fn events(first: u64, users: u64, events: u64, now: u64) -> Vec<SignedEvent> {
    let chains: Vec<Vec<SignedEvent>> = (0..users)
        .into_par_iter()
        .map(|u| {
            chain(
                first + u,
                events / users + u64::from(u < events % users),
                now,
            )
        })
        .collect();
    let rounds = chains.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(events as usize);
    for r in 0..rounds {
        out.extend(chains.iter().filter_map(|c| c.get(r).cloned()));
    }
    out
}

/// A cheap deterministic sequence of indices in `0..n` (a Weyl sequence), to vary the inputs
/// from one iteration to the next without a random number generator.
pub struct Cycle {
    next: u64,
    n: u64,
}

impl Cycle {
    pub fn new(n: u64) -> Self {
        Cycle { next: 0, n }
    }
    pub fn pick(&mut self) -> u64 {
        self.next = self.next.wrapping_add(0x9E37_79B9_7F4A_7C15);
        (self.next >> 11) % self.n
    }
}
