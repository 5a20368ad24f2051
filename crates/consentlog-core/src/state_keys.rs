//! The state keys a verifier has already checked: a VRF check costs about two signature checks,
//! and an audit or a batch of proofs meets the same triple many times.

use std::collections::HashMap;

use crate::hash::Hash;
use crate::vrf::{state_key, VrfError, VrfProof, VrfPublicKey};

/// Triples (VRF input and proof) whose VRF proof has been checked, with the answer, so that a
/// replay or a batch of proofs checks each once. At most [`StateKeys::MAX`] are remembered (by a hash of the input and
/// proof); beyond that, later chunks check theirs again.
#[derive(Default)]
pub struct StateKeys(std::sync::Mutex<HashMap<Hash, Result<Hash, VrfError>>>);

/// A VRF input and proof.
pub(crate) type Triple = (Vec<u8>, [u8; 80]);

impl StateKeys {
    /// Most answers remembered.
    pub const MAX: usize = 4_000_000;

    fn id((alpha, proof): &Triple) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&(alpha.len() as u64).to_le_bytes());
        h.update(alpha);
        h.update(proof);
        *h.finalize().as_bytes()
    }

    /// The answers known for `triples`, and the triples still to check.
    pub(crate) fn split(
        &self,
        triples: std::collections::HashSet<Triple>,
    ) -> (HashMap<Triple, Result<Hash, VrfError>>, Vec<Triple>) {
        let known = self.0.lock().expect("state keys");
        let (mut done, mut todo) = (HashMap::new(), Vec::new());
        for t in triples {
            match known.get(&Self::id(&t)) {
                Some(r) => {
                    done.insert(t, *r);
                }
                None => todo.push(t),
            }
        }
        (done, todo)
    }

    pub(crate) fn remember(&self, fresh: &HashMap<Triple, Result<Hash, VrfError>>) {
        let mut known = self.0.lock().expect("state keys");
        for (t, r) in fresh {
            if known.len() >= Self::MAX {
                break;
            }
            known.insert(Self::id(t), *r);
        }
    }
}

impl StateKeys {
    /// How many answers are remembered.
    pub fn len(&self) -> usize {
        self.0.lock().expect("state keys").len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state key `alpha` gives under `key`, proven by `proof`: the answer remembered, or
    /// checked now (outside the lock) and remembered.
    pub fn check(
        &self,
        key: &VrfPublicKey,
        alpha: &[u8],
        proof: &VrfProof,
    ) -> Result<Hash, VrfError> {
        self.check_lazy(|| Ok(*key), alpha, proof)
    }

    /// [`StateKeys::check`] with the VRF public key decoded by `key` only when the answer is
    /// not remembered (decoding the point costs a few microseconds; every remembered triple
    /// of one batch or replay shares one key). A failure to decode is not remembered.
    pub fn check_lazy(
        &self,
        key: impl FnOnce() -> Result<VrfPublicKey, VrfError>,
        alpha: &[u8],
        proof: &VrfProof,
    ) -> Result<Hash, VrfError> {
        let t: Triple = (alpha.to_vec(), proof.0);
        let id = Self::id(&t);
        if let Some(r) = self.0.lock().expect("state keys").get(&id) {
            return *r;
        }
        let r = key()?.check(alpha, proof).map(|beta| state_key(&beta));
        let mut known = self.0.lock().expect("state keys");
        if known.len() < Self::MAX {
            known.insert(id, r);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrf::VrfSecretKey;

    #[test]
    fn answers_are_remembered_and_wrong_proofs_refused() {
        let sk = VrfSecretKey::from_random(&[5; 64]);
        let pk = sk.public_key();
        let (proof, beta) = sk.prove(b"alpha");
        let keys = StateKeys::default();
        assert_eq!(keys.check(&pk, b"alpha", &proof), Ok(state_key(&beta)));
        assert_eq!(keys.check(&pk, b"alpha", &proof), Ok(state_key(&beta)));
        assert!(keys.check(&pk, b"other", &proof).is_err());
        let mut bad = proof;
        bad.0[0] ^= 1;
        assert!(keys.check(&pk, b"alpha", &bad).is_err());
    }
}
