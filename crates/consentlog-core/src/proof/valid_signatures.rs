//! Signed events whose signatures a verifier of many proofs has checked together.
//!
//! A batch of proofs shows about one signed event each. Checked one by one, every signature
//! pays its own field inversion; [`ValidSignatures::check_all`] checks a whole round of them
//! with [`crate::event::signatures_valid`] (`core::strict`: exactly `verify_strict`'s answer
//! for each, one inversion per part) and remembers which events carry a valid one, so the
//! proofs' own checks ([`super::logged_event::check_event_in`]) need not check them again.
//!
//! An event is remembered by the BLAKE3 hash of its whole encoding (`bytes(SignedEvent)`:
//! the subject's key, the signed body and the signature), so the answer is looked up only for
//! those exact bytes. Only valid signatures are remembered: an event that is not remembered is
//! checked on its own, as without this.

use std::collections::HashSet;
use std::sync::RwLock;

use crate::event::{signatures_valid, SignedEvent, SubjectKeyCache, SIGNATURE_CHUNK};
use crate::hash::Hash;

/// Most events remembered; past it, the memory starts again empty (a batch is checked in
/// rounds, each checked just before its proofs).
pub const CAPACITY: usize = 1 << 18;

const DOMAIN: &str = "consentlog valid signature memo v1";

/// Signed events known to carry a valid strict signature by their subject's key.
#[derive(Default)]
pub struct ValidSignatures(RwLock<HashSet<Hash>>);

impl std::fmt::Debug for ValidSignatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ValidSignatures").field(&self.len()).finish()
    }
}

fn id(event: &SignedEvent) -> Hash {
    *blake3::Hasher::new_derive_key(DOMAIN)
        .update(event.as_bytes())
        .finalize()
        .as_bytes()
}

impl ValidSignatures {
    /// Checks the signatures of `events` together, on all cores in parts of
    /// [`SIGNATURE_CHUNK`], with the subjects' keys from `keys`, and remembers the events whose
    /// signature is valid.
    pub fn check_all(&self, events: Vec<SignedEvent>, keys: &SubjectKeyCache) {
        let subject_keys = keys.keys_for(events.iter());
        let valid: Vec<Option<Hash>> = crate::par::map_parts(events, SIGNATURE_CHUNK, |part| {
            let refs: Vec<&SignedEvent> = part.iter().collect();
            signatures_valid(&refs, &subject_keys)
                .into_iter()
                .zip(&part)
                .map(|(ok, e)| ok.then(|| id(e)))
                .collect()
        });
        let mut set = self.0.write().expect("valid signatures");
        let fresh = valid.iter().flatten().count();
        if set.len() + fresh > CAPACITY {
            set.clear();
        }
        set.extend(valid.into_iter().flatten().take(CAPACITY));
    }

    /// Whether `event`'s signature was found valid by [`ValidSignatures::check_all`].
    pub fn contains(&self, event: &SignedEvent) -> bool {
        self.0
            .read()
            .expect("valid signatures")
            .contains(&id(event))
    }

    /// Events remembered.
    pub fn len(&self) -> usize {
        self.0.read().expect("valid signatures").len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Log, T0};

    #[test]
    fn only_valid_signatures_are_remembered() {
        let log = Log::new();
        let good = log.event(None, true, T0);
        let other = log.event(None, false, T0 + 1);
        // The same event with one bit of its signature changed.
        let mut bytes = good.as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let bad = SignedEvent::decode(&bytes).unwrap();
        assert!(!bad.signature_valid(&crate::event::subject_key(&good.event.subject).unwrap()));
        let memo = ValidSignatures::default();
        let keys = SubjectKeyCache::default();
        memo.check_all(vec![good.clone(), bad.clone()], &keys);
        assert!(memo.contains(&good));
        assert!(!memo.contains(&bad));
        assert!(!memo.contains(&other));
        assert_eq!(memo.len(), 1);
        // As many answers as checked one by one, in parts larger than one.
        let many: Vec<SignedEvent> = (0..3 * SIGNATURE_CHUNK as u64 + 5)
            .map(|i| log.event(None, i % 2 == 0, T0 + i))
            .collect();
        memo.check_all(many.clone(), &keys);
        assert!(many.iter().all(|e| memo.contains(e)));
    }
}
