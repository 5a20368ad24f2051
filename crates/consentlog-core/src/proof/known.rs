//! What a verifier of many proofs of one log checks or decodes once for all of them.

use std::sync::OnceLock;

use crate::event::SubjectKeyCache;
use crate::state_keys::StateKeys;
use crate::vrf::{VrfError, VrfPublicKey};

/// Shared by the checks of a batch of proofs ([`super::check_with_anchor_keys`]): each
/// triple's VRF proof is checked once, each subject's key and the log's VRF key decompressed
/// once. Every answer is keyed by everything it depends on, so proofs of other logs checked
/// with the same `Known` get their own answers.
#[derive(Default)]
pub struct Known {
    pub state_keys: StateKeys,
    pub subjects: SubjectKeyCache,
    /// The first VRF public key decoded, with its bytes.
    vrf_key: OnceLock<([u8; 32], VrfPublicKey)>,
}

impl std::fmt::Debug for Known {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Known")
            .field("state_keys", &self.state_keys.len())
            .field("subjects", &self.subjects.len())
            .finish()
    }
}

impl Known {
    /// `VrfPublicKey::from_bytes(bytes)`, decoded once for the first key asked about.
    pub fn vrf_key(&self, bytes: [u8; 32]) -> Result<VrfPublicKey, VrfError> {
        if let Some((b, key)) = self.vrf_key.get() {
            if *b == bytes {
                return Ok(*key);
            }
        }
        let key = VrfPublicKey::from_bytes(bytes)?;
        let _ = self.vrf_key.set((bytes, key));
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrf::VrfSecretKey;

    #[test]
    fn each_vrf_key_decodes_as_itself() {
        let known = Known::default();
        let a = VrfSecretKey::from_random(&[1; 64]).public_key();
        let b = VrfSecretKey::from_random(&[2; 64]).public_key();
        for _ in 0..2 {
            for k in [a, b] {
                assert_eq!(
                    known.vrf_key(k.to_bytes()).unwrap().to_bytes(),
                    k.to_bytes()
                );
            }
        }
        assert_eq!(known.vrf_key([0xff; 32]).err(), Some(VrfError::PublicKey));
    }
}
