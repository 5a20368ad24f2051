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

/// Each byte's two lowercase hex digits.
const PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = [DIGITS[b >> 4], DIGITS[b & 0x0f]];
        b += 1;
    }
    t
};

/// Writes the lowercase hex of `bytes` into `out`, which is twice as long.
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), 2 * bytes.len());
    for (b, o) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        o.copy_from_slice(&PAIRS[*b as usize]);
    }
}

/// Appends the lowercase hex of `bytes` to `out`.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(2 * bytes.len());
    for b in bytes {
        let [hi, lo] = PAIRS[*b as usize];
        out.push(hi as char);
        out.push(lo as char);
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    hex_into(bytes, &mut out);
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// Serializes `bytes` as a string of lowercase hex digits, on the stack up to 512 bytes (proofs
/// carry dozens of hashes and encoded leaves and events, each a heap allocation otherwise).
fn serialize_hex<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 1024];
    if bytes.len() > buf.len() / 2 {
        return s.serialize_str(&to_hex(bytes));
    }
    let out = &mut buf[..2 * bytes.len()];
    hex_into(bytes, out);
    s.serialize_str(std::str::from_utf8(out).expect("hex digits are ASCII"))
}

/// The value of each byte as a lowercase hex digit, or [`NOT_HEX`].
const NIBBLES: [u8; 256] = {
    let mut t = [NOT_HEX; 256];
    let mut c = 0;
    while c < 10 {
        t[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        t[b'a' as usize + c] = 10 + c as u8;
        c += 1;
    }
    t
};
const NOT_HEX: u8 = 0xff;

/// The value of one lowercase hex digit.
fn nibble(c: u8) -> Option<u8> {
    let v = NIBBLES[c as usize];
    (v != NOT_HEX).then_some(v)
}

/// Decodes lowercase hex `s` (even length, `2 * out.len()` digits) into `out` in one pass.
fn decode_into(s: &str, out: &mut [u8]) -> Result<(), HexError> {
    let b = s.as_bytes();
    debug_assert_eq!(b.len(), 2 * out.len());
    // Table lookups without a branch per digit; the first bad digit is found only on error.
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let (h, l) = (NIBBLES[pair[0] as usize], NIBBLES[pair[1] as usize]);
        bad |= h | l;
        *o = h << 4 | (l & 0x0f);
    }
    if bad & 0xf0 == 0 {
        return Ok(());
    }
    let at = b[..2 * out.len()]
        .iter()
        .position(|c| nibble(*c).is_none())
        .expect("a byte that is not a digit");
    // Every byte before it is an ASCII digit, so it starts a character.
    Err(HexError::BadChar(bad_char(s, at)))
}

/// The character at byte `at` of `s`, which follows only ASCII digits.
fn bad_char(s: &str, at: usize) -> char {
    s[at..]
        .chars()
        .next()
        .expect("a character at a digit boundary")
}

/// Decodes lowercase hex of any even length.
pub fn from_hex(s: &str) -> Result<Vec<u8>, HexError> {
    if s.len() % 2 != 0 {
        return Err(HexError::OddLength(s.len()));
    }
    let mut out = vec![0u8; s.len() / 2];
    decode_into(s, &mut out)?;
    Ok(out)
}

/// Decodes lowercase hex of exactly `N` bytes.
pub fn from_hex_array<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    if s.len() % 2 != 0 {
        return Err(HexError::OddLength(s.len()));
    }
    if s.len() != 2 * N {
        // The same error as for a decoded value of the wrong length, after the same checks.
        if let Some(c) = s.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
            return Err(HexError::BadChar(c));
        }
        return Err(HexError::WrongLength {
            expected: N,
            got: s.len() / 2,
        });
    }
    let mut out = [0u8; N];
    decode_into(s, &mut out)?;
    Ok(out)
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
        serialize_hex(&self.0, s)
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
        serialize_hex(v, s)
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
        serialize_hex(v, s)
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

    /// Hex out, on the stack or not, is the `hex` crate's lowercase hex, for every byte value
    /// and on both sides of the stack buffer's 512 bytes.
    #[test]
    fn hex_encoding_agrees_with_the_hex_crate() {
        #[derive(serde::Serialize)]
        struct B<'a> {
            #[serde(with = "hex_bytes")]
            b: &'a [u8],
        }
        let all: Vec<u8> = (0..=255u8).cycle().take(1500).collect();
        for n in [0, 1, 2, 31, 32, 33, 255, 256, 511, 512, 513, 1024, 1500] {
            let bytes = &all[all.len() - n..];
            let want = hex::encode(bytes);
            assert_eq!(to_hex(bytes), want, "{n} bytes");
            let json = serde_json::to_string(&B { b: bytes }).unwrap();
            assert_eq!(json, format!(r#"{{"b":"{want}"}}"#), "{n} bytes");
        }
        let h: Hash = core::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(
            serde_json::to_string(&HexHash(h)).unwrap(),
            format!("\"{}\"", hex::encode(h))
        );
    }

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
        assert_eq!(from_hex("0\u{e9}0"), Err(HexError::BadChar('\u{e9}')));
        assert_eq!(
            from_hex_array::<1>("\u{e9}"),
            Err(HexError::BadChar('\u{e9}'))
        );
    }

    /// The decoder as first written (validate every character, then `hex::decode`): the
    /// one-pass decoder must give the same answer, value or error, for every string.
    fn reference(s: &str) -> Result<Vec<u8>, HexError> {
        if s.len() % 2 != 0 {
            return Err(HexError::OddLength(s.len()));
        }
        if let Some(c) = s.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
            return Err(HexError::BadChar(c));
        }
        Ok(hex::decode(s).expect("validated hex"))
    }

    fn reference_array<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
        reference(s)?
            .try_into()
            .map_err(|v: Vec<u8>| HexError::WrongLength {
                expected: N,
                got: v.len(),
            })
    }

    /// Every character below U+0800 (all one- and two-byte UTF-8), in either place of a pair.
    #[test]
    fn every_character_is_classified_like_the_reference() {
        for c in (0u32..0x800).filter_map(char::from_u32) {
            let forms = [
                format!("{c}"),
                format!("0{c}"),
                format!("{c}0"),
                format!("{c}{c}"),
                format!("00{c}0"),
            ];
            for s in forms {
                if s.len() % 2 == 0 {
                    assert_eq!(from_hex(&s), reference(&s), "{s:?}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn one_pass_hex_agrees_with_the_reference(s in "[0-9a-fA-F\u{e9}g]{0,70}") {
            proptest::prop_assert_eq!(from_hex(&s), reference(&s));
            proptest::prop_assert_eq!(from_hex_array::<32>(&s), reference_array::<32>(&s));
            proptest::prop_assert_eq!(from_hex_array::<2>(&s), reference_array::<2>(&s));
        }

        #[test]
        fn one_pass_hex_decodes_every_valid_value(v in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let s = to_hex(&v);
            proptest::prop_assert_eq!(from_hex(&s), Ok(v.clone()));
        }
    }
}
