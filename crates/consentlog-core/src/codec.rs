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
    // Into a buffer on the stack, then one allocation of the exact size (bincode's own
    // `encode_to_vec` grows a vector from empty, reallocating as it goes).
    let mut buf = [0u8; 1024];
    match bincode::serde::encode_into_slice(value, &mut buf, CONFIG) {
        Ok(n) => buf[..n].to_vec(),
        Err(_) => {
            bincode::serde::encode_to_vec(value, CONFIG).expect("encoding a well-formed value")
        }
    }
}

/// Decodes `bytes` strictly: all consumed, and re-encoding reproduces them.
pub fn decode<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(bytes, CONFIG)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    if !encodes_to(&value, bytes) {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

/// Whether `value` encodes to exactly `bytes`: re-encoded into a buffer of `bytes`' length (on
/// the stack up to 512 bytes, as every leaf and most events are), so an encoding that is
/// longer fails to fit and one that is shorter leaves bytes unwritten; neither matches.
fn encodes_to<T: Serialize>(value: &T, bytes: &[u8]) -> bool {
    let mut stack = [0u8; 512];
    let mut heap = Vec::new();
    let buf = if bytes.len() <= stack.len() {
        &mut stack[..bytes.len()]
    } else {
        heap.resize(bytes.len(), 0);
        &mut heap[..]
    };
    matches!(
        bincode::serde::encode_into_slice(value, buf, CONFIG),
        Ok(n) if n == bytes.len() && *buf == *bytes
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Deserializer, Serialize};

    /// A string whose decoding changes it by `f`: the re-encoding then differs from the input.
    #[derive(Debug, PartialEq, Serialize)]
    struct Changed<const F: u8>(String);

    impl<'de, const F: u8> Deserialize<'de> for Changed<F> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let s = String::deserialize(d)?;
            Ok(Changed(match F {
                0 => s,                           // unchanged
                1 => s.to_lowercase(),            // same length, other bytes
                2 => s.chars().skip(1).collect(), // shorter
                _ => format!("{s}x"),             // longer
            }))
        }
    }

    /// Decoding accepts exactly the bytes its value encodes to, short or long (past the
    /// 512-byte stack buffer), and names trailing bytes and changed re-encodings.
    #[test]
    fn decoding_is_canonical() {
        for len in [1, 3, 100, 503, 504, 505, 600, 2000] {
            let bytes = encode(&"A".repeat(len));
            assert_eq!(decode::<Changed<0>>(&bytes), Ok(Changed("A".repeat(len))));
            assert_eq!(decode::<Changed<1>>(&bytes), Err(DecodeError::NonCanonical));
            assert_eq!(decode::<Changed<2>>(&bytes), Err(DecodeError::NonCanonical));
            assert_eq!(decode::<Changed<3>>(&bytes), Err(DecodeError::NonCanonical));
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(
                decode::<Changed<0>>(&longer),
                Err(DecodeError::TrailingBytes(1))
            );
        }
        assert!(matches!(
            decode::<Changed<0>>(&[5, 0, 0, 0, 0, 0, 0, 0, b'a']),
            Err(DecodeError::Malformed(_))
        ));
    }
}
