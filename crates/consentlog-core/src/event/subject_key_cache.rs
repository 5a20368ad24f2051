//! Subjects' keys already decompressed. Decompressing a point costs about a tenth of a
//! signature check, and appends, audits and batches of proofs meet a person's key again and
//! again: the chunks of an append file, the proofs of one dataset.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use ed25519_dalek::VerifyingKey;

use super::{subject_key, SignedEvent};
use crate::reject::Reject;

/// What [`subject_key`] answers, keyed by the subject: a decoded key, or why it is refused.
pub type SubjectKeys = HashMap<[u8; 32], Result<VerifyingKey, Reject>>;

/// The answers of [`subject_key`] remembered, at most [`SubjectKeyCache::MAX`] of them (when
/// full, all are forgotten at once and remembering starts again: about 16 MiB at most). The
/// answers are the function's own, so a cached and an uncached check agree on every input.
#[derive(Default)]
pub struct SubjectKeyCache(Mutex<SubjectKeys>);

impl std::fmt::Debug for SubjectKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectKeyCache")
            .field("len", &self.len())
            .finish()
    }
}

impl SubjectKeyCache {
    /// Most answers remembered.
    pub const MAX: usize = 65_536;

    fn lock(&self) -> MutexGuard<'_, SubjectKeys> {
        // A panic elsewhere while the lock was held leaves only complete answers behind.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, fresh: impl IntoIterator<Item = ([u8; 32], Result<VerifyingKey, Reject>)>) {
        let mut known = self.lock();
        for (subject, answer) in fresh {
            if known.len() >= Self::MAX {
                known.clear();
            }
            known.insert(subject, answer);
        }
    }

    /// How many answers are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`subject_key`] of `subject`: remembered, or computed now and remembered.
    pub fn get(&self, subject: &[u8; 32]) -> Result<VerifyingKey, Reject> {
        if let Some(answer) = self.lock().get(subject) {
            return answer.clone();
        }
        let answer = subject_key(subject);
        self.remember([(*subject, answer.clone())]);
        answer
    }

    /// [`super::subject_keys`] of `events`: the keys remembered, and the others decompressed
    /// on all cores, then remembered.
    pub fn keys_for<'a>(&self, events: impl Iterator<Item = &'a SignedEvent>) -> SubjectKeys {
        let subjects: HashSet<[u8; 32]> = events.map(|e| e.event.subject).collect();
        let mut found = SubjectKeys::with_capacity(subjects.len());
        let mut missing = Vec::new();
        {
            let known = self.lock();
            for s in subjects {
                match known.get(&s) {
                    Some(answer) => {
                        found.insert(s, answer.clone());
                    }
                    None => missing.push(s),
                }
            }
        }
        let fresh: SubjectKeys = crate::par::map_each(missing, subject_key);
        self.remember(fresh.iter().map(|(s, a)| (*s, a.clone())));
        found.extend(fresh);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn answers_are_subject_key_s_own_remembered_or_not() {
        let cache = SubjectKeyCache::default();
        let good = SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes();
        // The identity point: a valid encoding of a small-order (weak) key.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        // Not a point at all: the first y = 2, 3, … with no x.
        let bad = (2u8..)
            .map(|y| {
                let mut s = [0u8; 32];
                s[0] = y;
                s
            })
            .find(|s| subject_key(s) == Err(Reject::BadKey))
            .expect("about half of all y have no x");
        for _ in 0..2 {
            for s in [&good, &weak, &bad] {
                assert_eq!(cache.get(s), subject_key(s));
            }
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&weak), Err(Reject::WeakKey));
        assert_eq!(cache.get(&bad), Err(Reject::BadKey));
    }

    #[test]
    fn a_full_cache_starts_again() {
        let cache = SubjectKeyCache::default();
        let subjects: Vec<[u8; 32]> = (0..=SubjectKeyCache::MAX as u32)
            .map(|i| {
                let mut s = [0u8; 32];
                s[..4].copy_from_slice(&i.to_le_bytes());
                s
            })
            .collect();
        cache.remember(subjects.iter().map(|s| (*s, Err(Reject::BadKey))));
        assert_eq!(cache.len(), 1);
    }
}
