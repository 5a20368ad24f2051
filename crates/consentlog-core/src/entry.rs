//! Entries: the public Merkle leaves, and the private openings that explain them
//! (docs/FORMAT.md, "Entry" and "Opening").
//!
//! An entry shows that some pseudonymous state key changed, and when; the opening
//! `(nonce, SignedEvent)` shows who and what, and is stored apart so it can be erased.

use serde::{Deserialize, Serialize};

use super::codec::{self, DecodeError};
use super::event::SignedEvent;
use super::hash::Hash;

/// The only entry version.
pub const ENTRY_VERSION: u8 = 1;
/// Encoded size of an entry: version, integrated_at, key, commitment.
pub const ENTRY_LEN: usize = 1 + 8 + 32 + 32;
/// Context string of the commitment key.
pub const COMMITMENT_CONTEXT: &str = "consentlog v1 event commitment";

/// One public leaf of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub version: u8,
    pub integrated_at: u64,
    pub key: [u8; 32],
    pub commitment: [u8; 32],
}

impl Entry {
    /// The canonical 73 bytes.
    pub fn to_bytes(&self) -> [u8; ENTRY_LEN] {
        let mut b = [0u8; ENTRY_LEN];
        b[0] = self.version;
        b[1..9].copy_from_slice(&self.integrated_at.to_le_bytes());
        b[9..41].copy_from_slice(&self.key);
        b[41..73].copy_from_slice(&self.commitment);
        debug_assert_eq!(codec::encode(self), b);
        b
    }

    /// Strict decoding; refuses unknown versions.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let e: Entry = codec::decode(bytes)?;
        if e.version != ENTRY_VERSION {
            return Err(DecodeError::EntryVersion(e.version));
        }
        Ok(e)
    }

    /// RFC 9162 leaf hash: `BLAKE3(0x00 || bytes(Entry))`.
    pub fn leaf_hash(&self) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&[0]);
        h.update(&self.to_bytes());
        *h.finalize().as_bytes()
    }
}

/// `keyed_hash(derive_key("consentlog v1 event commitment", ""), nonce || bytes(SignedEvent))`.
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

    /// The entry that commits to this opening at `integrated_at`.
    pub fn entry(&self, integrated_at: u64) -> Entry {
        Entry {
            version: ENTRY_VERSION,
            integrated_at,
            key: self.event.event.state_key(),
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
        let entry = opening.entry(T0);
        assert_eq!(Entry::decode(&entry.to_bytes()), Ok(entry));
        let mut b = entry.to_bytes();
        b[0] = 2;
        assert_eq!(Entry::decode(&b), Err(DecodeError::EntryVersion(2)));
        assert_eq!(
            DecodeError::EntryVersion(2).to_string(),
            "malformed encoding: unsupported entry version 2"
        );
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
