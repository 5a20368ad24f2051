//! Openings: the private half of an event leaf (docs/FORMAT.md, "Openings").
//!
//! An event leaf shows that some pseudonymous state key changed, and when; the opening
//! `(nonce, SignedEvent)` shows who and what, and is stored apart so it can be erased. The
//! leaf's `commitment` binds the two.

use super::codec::DecodeError;
use super::event::SignedEvent;
use super::hash::Hash;
use super::leaf::{EventLeaf, LEAF_VERSION};

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

/// The private half of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    pub nonce: [u8; 32],
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

    /// Storage form: `nonce[32] || bytes(SignedEvent)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(32 + self.event.as_bytes().len());
        v.extend_from_slice(&self.nonce);
        v.extend_from_slice(self.event.as_bytes());
        v
    }

    /// Parses the storage form strictly.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < 32 {
            return Err(DecodeError::OpeningTooShort { len: bytes.len() });
        }
        Ok(Opening {
            nonce: bytes[..32].try_into().expect("32 bytes"),
            event: SignedEvent::decode(&bytes[32..])?,
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
            event: log.event(None, true, T0),
        };
        let leaf = opening.leaf(T0, [9; 32], None);
        assert_eq!(leaf.commitment, opening.commitment());
        assert_eq!(leaf.seq, 0);
        assert_eq!(Opening::decode(&opening.to_bytes()), Ok(opening.clone()));
        assert_eq!(
            Opening::decode(&[0; 31]),
            Err(DecodeError::OpeningTooShort { len: 31 })
        );
        assert_eq!(
            Opening::decode(&opening.to_bytes()[..40]),
            Err(DecodeError::SignedEventTooShort { len: 8 })
        );
    }
}
