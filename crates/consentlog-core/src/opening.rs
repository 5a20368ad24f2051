//! Openings: the private half of an event leaf (docs/FORMAT.md, "Openings").
//!
//! An event leaf shows that some pseudonymous state key changed, and when; the opening
//! `(nonce, VRF proof, SignedEvent)` shows who and what, and is stored apart so it can be
//! erased. The leaf's `commitment` binds the event; the VRF proof shows that the leaf's key is
//! the state key of the event's (log, subject, controller, purpose).

use super::codec::DecodeError;
use super::event::SignedEvent;
use super::hash::Hash;
use super::leaf::{EventLeaf, LEAF_VERSION};
use super::vrf::{VrfProof, PROOF_LEN};

/// Bytes before the SignedEvent in the storage form: the nonce and the VRF proof.
pub const OPENING_HEAD: usize = 32 + PROOF_LEN;

/// Context string of the commitment key.
pub const COMMITMENT_CONTEXT: &str = "consentlog v2 event commitment";

/// `keyed_hash(derive_key("consentlog v2 event commitment", ""), nonce || bytes(SignedEvent))`.
pub fn commitment(nonce: &[u8; 32], signed_event: &[u8]) -> Hash {
    let key = blake3::derive_key(COMMITMENT_CONTEXT, b"");
    let mut h = blake3::Hasher::new_keyed(&key);
    h.update(nonce);
    h.update(signed_event);
    *h.finalize().as_bytes()
}

/// The private half of an event leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    pub nonce: [u8; 32],
    /// The VRF proof of the event's state key (the same for every event of its triple).
    pub vrf: VrfProof,
    pub event: SignedEvent,
}

impl Opening {
    /// The commitment this opening opens.
    pub fn commitment(&self) -> Hash {
        commitment(&self.nonce, self.event.as_bytes())
    }

    /// The event leaf that commits to this opening: appended at `integrated_at` under state
    /// key `key`, after `K`'s event leaf `prev` (none for `K`'s first), with the event's seq.
    pub fn leaf(&self, integrated_at: u64, key: Hash, prev: Option<u64>) -> EventLeaf {
        EventLeaf {
            version: LEAF_VERSION,
            integrated_at,
            key,
            prev,
            seq: self.event.event.seq,
            commitment: self.commitment(),
        }
    }

    /// Storage form: `nonce[32] || vrf_proof[80] || bytes(SignedEvent)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(OPENING_HEAD + self.event.as_bytes().len());
        v.extend_from_slice(&self.nonce);
        v.extend_from_slice(&self.vrf.0);
        v.extend_from_slice(self.event.as_bytes());
        v
    }

    /// Parses the storage form strictly.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < OPENING_HEAD {
            return Err(DecodeError::OpeningTooShort { len: bytes.len() });
        }
        Ok(Opening {
            nonce: bytes[..32].try_into().expect("32 bytes"),
            vrf: VrfProof(bytes[32..OPENING_HEAD].try_into().expect("80 bytes")),
            event: SignedEvent::decode(&bytes[OPENING_HEAD..])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Log, T0};

    #[test]
    fn decode_errors() {
        let log = Log::new();
        let opening = Opening {
            nonce: [1; 32],
            vrf: VrfProof([2; PROOF_LEN]),
            event: log.event(None, true, T0),
        };
        let leaf = opening.leaf(T0, [9; 32], None);
        assert_eq!(leaf.commitment, opening.commitment());
        assert_eq!(leaf.seq, 0);
        assert_eq!(Opening::decode(&opening.to_bytes()), Ok(opening.clone()));
        assert_eq!(
            Opening::decode(&[0; 111]),
            Err(DecodeError::OpeningTooShort { len: 111 })
        );
        assert_eq!(
            Opening::decode(&opening.to_bytes()[..120]),
            Err(DecodeError::SignedEventTooShort { len: 8 })
        );
    }
}
