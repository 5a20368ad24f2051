//! The one binary encoding of everything that is signed or hashed.
//!
//! bincode 2.0.1 with `standard().with_little_endian().with_fixed_int_encoding()` and a size
//! limit: integers are fixed-width little-endian, a string or byte vector is a u64 length then
//! its bytes, an `Option` is a u8 0/1 then the value, a `[u8; N]` is N raw bytes. docs/FORMAT.md
//! restates this without reference to bincode, with test vectors, so an upgrade of the crate
//! cannot silently change what a signature covers.
//!
//! Decoding is strict: every byte must be consumed and re-encoding must give the same bytes.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use serde::{de::DeserializeOwned, Serialize};

/// Largest encoded object we accept (an event is well under 1 KiB).
pub const MAX_ENCODED: usize = 4096;

type Config = Configuration<LittleEndian, Fixint, Limit<MAX_ENCODED>>;

const CONFIG: Config = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding()
    .with_limit::<MAX_ENCODED>();

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// bincode's message: a bad tag, a bad length, the input ends early...
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// Fewer bytes than the 64 of a signature.
    #[error("malformed encoding: signed event of {len} bytes is shorter than a signature")]
    SignedEventTooShort {
        /// The length received.
        len: usize,
    },
    /// Fewer bytes than the 32 of a nonce and the 80 of a VRF proof.
    #[error("malformed encoding: opening shorter than its nonce and VRF proof")]
    OpeningTooShort {
        /// The length received.
        len: usize,
    },
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
    #[error("non-canonical encoding (re-encoding differs)")]
    NonCanonical,
}

/// Encodes `value` in the canonical layout.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, CONFIG).expect("encoding a well-formed value")
}

/// Decodes `bytes` strictly: all consumed, and re-encoding reproduces them.
pub fn decode<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(bytes, CONFIG)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    if encode(&value) != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}
