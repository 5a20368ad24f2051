//! 32-byte hashes and the strict lowercase hex used everywhere in JSON.
//!
//! Parsers here reject uppercase digits, odd lengths and wrong lengths, so a value has exactly
//! one textual form (docs/FORMAT.md, "Conventions").

use std::fmt;

/// A BLAKE3 (or, in tests, SHA-256) digest.
pub type Hash = [u8; 32];

/// Why a hex string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("hex has odd length {0}")]
    OddLength(usize),
    #[error("hex has invalid character {0:?} (only 0-9 and a-f are allowed)")]
    BadChar(char),
    #[error("hex decodes to {got} bytes, expected {expected}")]
    WrongLength { expected: usize, got: usize },
}

/// Why a JSON object was refused by [`json_object`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The positional array form of a struct, which serde accepts and our formats do not.
    #[error("expected a JSON object, got an array")]
    Array,
    /// serde_json's message: syntax, a missing, unknown or repeated field, a bad value...
    #[error("{0}")]
    Parse(String),
}

/// Parses a JSON object strictly: serde would also accept the positional array form of a
/// struct, which our formats do not allow.
pub fn json_object<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, JsonError> {
    if text.trim_start().starts_with('[') {
        return Err(JsonError::Array);
    }
    serde_json::from_str(text).map_err(|e| JsonError::Parse(e.to_string()))
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 0x0f) as usize]);
    }
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// Decodes lowercase hex of any even length.
pub fn from_hex(s: &str) -> Result<Vec<u8>, HexError> {
    if s.len() % 2 != 0 {
        return Err(HexError::OddLength(s.len()));
    }
    // One pass over the bytes with a table (replaying witnesses decode every leaf of a log
    // from hex); on a bad digit, the first bad character is found again for the error.
    let mut out = Vec::with_capacity(s.len() / 2);
    let mut bad = false;
    for pair in s.as_bytes().chunks_exact(2) {
        let (hi, lo) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
        bad |= (hi | lo) > 0x0f;
        out.push((hi << 4) | (lo & 0x0f));
    }
    if bad {
        let c = s
            .chars()
            .find(|c| !matches!(c, '0'..='9' | 'a'..='f'))
            .expect("a bad digit");
        return Err(HexError::BadChar(c));
    }
    Ok(out)
}

/// The value of each lowercase hex digit; 0xff for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Decodes lowercase hex of exactly `N` bytes.
pub fn from_hex_array<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let v = from_hex(s)?;
    v.try_into().map_err(|v: Vec<u8>| HexError::WrongLength {
        expected: N,
        got: v.len(),
    })
}

/// A hash that (de)serializes as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HexHash(pub Hash);

impl fmt::Debug for HexHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl serde::Serialize for HexHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // On the stack: proofs carry dozens of hashes each.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[(b >> 4) as usize];
            out[2 * i + 1] = DIGITS[(b & 0x0f) as usize];
        }
        s.serialize_str(std::str::from_utf8(&out).expect("hex digits are ASCII"))
    }
}

impl<'de> serde::Deserialize<'de> for HexHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hex_array::deserialize(d).map(HexHash)
    }
}

impl From<Hash> for HexHash {
    fn from(h: Hash) -> Self {
        HexHash(h)
    }
}

impl From<HexHash> for Hash {
    fn from(h: HexHash) -> Self {
        h.0
    }
}

/// Visits a string of lowercase hex for exactly `N` bytes.
struct ArrayVisitor<const N: usize>;

impl<const N: usize> serde::de::Visitor<'_> for ArrayVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{N} bytes as {} lowercase hex digits", 2 * N)
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<[u8; N], E> {
        from_hex_array(s).map_err(E::custom)
    }
}

/// Serde adapters for hex fields (`#[serde(with = "crate::hash::hex_bytes")]`).
pub mod hex_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(v))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        // From the borrowed string where the input allows (no copy of every entry's text).
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string of lowercase hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Vec<u8>, E> {
                from_hex(s).map_err(E::custom)
            }
        }
        d.deserialize_str(Bytes)
    }
}

/// Serde adapter for fixed-size byte arrays as hex.
pub mod hex_array {
    use super::*;

    pub fn serialize<S: serde::Serializer, const N: usize>(
        v: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(v))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        d.deserialize_str(ArrayVisitor::<N>)
    }
}

/// Serde adapter for optional fixed-size byte arrays as hex or null.
pub mod hex_array_opt {
    use super::*;

    pub fn serialize<S: serde::Serializer, const N: usize>(
        v: &Option<[u8; N]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&to_hex(v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<Option<[u8; N]>, D::Error> {
        let s = <Option<String> as serde::Deserialize>::deserialize(d)?;
        s.map(|s| from_hex_array(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decoding_is_strict() {
        assert_eq!(from_hex("00ff7a"), Ok(vec![0, 255, 0x7a]));
        assert_eq!(from_hex(""), Ok(vec![]));
        assert_eq!(from_hex("abc"), Err(HexError::OddLength(3)));
        assert_eq!(from_hex("0A"), Err(HexError::BadChar('A')));
        assert_eq!(from_hex("00g0"), Err(HexError::BadChar('g')));
        assert_eq!(from_hex("0é0"), Err(HexError::BadChar('é')));
        for b in 0..=255u8 {
            assert_eq!(from_hex(&to_hex(&[b])), Ok(vec![b]));
        }
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct B {
            #[serde(with = "hex_bytes")]
            b: Vec<u8>,
        }
        let b: B = serde_json::from_str(r#"{"b":"0a1b"}"#).unwrap();
        assert_eq!(b.b, [0x0a, 0x1b]);
        let b: B = serde_json::from_str(r#"{"b":"0\u0061"}"#).unwrap();
        assert_eq!(b.b, [0x0a], "escaped strings are decoded too");
        assert!(serde_json::from_str::<B>(r#"{"b":"0A"}"#).is_err());
    }

    #[test]
    fn json_objects_only() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct P {
            a: u8,
        }
        assert_eq!(json_object::<P>(r#"{"a":1}"#), Ok(P { a: 1 }));
        assert_eq!(json_object::<P>("[1]"), Err(JsonError::Array));
        assert!(matches!(
            json_object::<P>("{}"),
            Err(JsonError::Parse(m)) if m.contains("missing field `a`")
        ));
    }

    #[test]
    fn hex_is_strict() {
        assert_eq!(from_hex("00ff").unwrap(), vec![0, 255]);
        assert_eq!(from_hex("00FF"), Err(HexError::BadChar('F')));
        assert_eq!(from_hex("0"), Err(HexError::OddLength(1)));
        assert_eq!(from_hex("0g"), Err(HexError::BadChar('g')));
        assert_eq!(
            from_hex_array::<2>("00"),
            Err(HexError::WrongLength {
                expected: 2,
                got: 1
            })
        );
    }
}
