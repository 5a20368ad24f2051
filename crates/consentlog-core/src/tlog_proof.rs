//! C2SP tlog-proof (c2sp.org/tlog-proof@v1): an offline-verifiable proof that an entry is in
//! a log, the form of format-v2 receipts.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 opaque data>        (optional)
//! index <decimal>
//! <base64 hash>                     (zero or more: the RFC 6962 inclusion proof, leaf upwards)
//!
//! <the checkpoint, a signed note, verbatim>
//! ```
//!
//! This module only reads and writes the text; what the proof proves is checked by the caller
//! against the checkpoint's signature and the tree (the extra data is not authenticated).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::hash::Hash;

/// The first line.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Most inclusion-proof lines: a tree of 2^63 leaves has 63 levels.
pub const MAX_PATH: usize = 63;
/// Largest proof text we read.
pub const MAX_PROOF: usize = 64 * 1024;

/// A parsed tlog-proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque application data (consentlog receipts: the entry's opening and VRF proof).
    pub extra: Option<Vec<u8>>,
    /// The entry's zero-based index.
    pub index: u64,
    /// The inclusion proof, from the leaf's sibling up to the root's child.
    pub path: Vec<Hash>,
    /// The checkpoint note, byte for byte (origin, size and root lines, then signatures).
    pub checkpoint: String,
}

/// The text form of a tlog-proof made of these parts (see [`TlogProof::to_text`]), for callers
/// that hold the parts without a [`TlogProof`].
pub fn text(extra: Option<&[u8]>, index: u64, path: &[Hash], checkpoint: &str) -> String {
    let mut s = String::with_capacity(head_len(extra, path) + checkpoint.len());
    push_head(&mut s, extra, index, path, "\n");
    s.push_str(checkpoint);
    s
}

/// An upper bound on the length of the text before the checkpoint, each newline counted as
/// two bytes.
pub fn head_len(extra: Option<&[u8]>, path: &[Hash]) -> usize {
    let extra_len = extra.map_or(0, |e| 8 + e.len().div_ceil(3) * 4);
    64 + extra_len + path.len() * 46
}

/// Appends the text before the checkpoint (header, extra, index and path lines, the empty
/// line), each line ended with `newline`: `"\n"` for the text itself, `"\\n"` inside a JSON
/// string (no other character of these lines needs escaping there).
pub fn push_head(s: &mut String, extra: Option<&[u8]>, index: u64, path: &[Hash], newline: &str) {
    use std::fmt::Write;
    s.push_str(HEADER);
    s.push_str(newline);
    if let Some(extra) = extra {
        s.push_str("extra ");
        B64.encode_string(extra, s);
        s.push_str(newline);
    }
    write!(s, "index {index}").expect("writing to a String");
    s.push_str(newline);
    for h in path {
        B64.encode_string(h, s);
        s.push_str(newline);
    }
    s.push_str(newline);
}

/// Why a text is not a tlog-proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogProofError {
    #[error("tlog-proof larger than {MAX_PROOF} bytes")]
    TooLarge,
    #[error("tlog-proof does not start with the line {HEADER:?}")]
    Header,
    #[error("tlog-proof line {line}: {reason}")]
    Line { line: usize, reason: &'static str },
    #[error("tlog-proof has more than {MAX_PATH} inclusion-proof lines")]
    PathTooLong,
    #[error("tlog-proof has no checkpoint after its inclusion proof")]
    NoCheckpoint,
}

impl TlogProof {
    /// The text form.
    pub fn to_text(&self) -> String {
        text(
            self.extra.as_deref(),
            self.index,
            &self.path,
            &self.checkpoint,
        )
    }

    /// Strict parsing: canonical base64 and decimals, 32-byte hashes, at most 63 of them, and
    /// a non-empty checkpoint after the empty line.
    pub fn parse(text: &str) -> Result<Self, TlogProofError> {
        if text.len() > MAX_PROOF {
            return Err(TlogProofError::TooLarge);
        }
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or(TlogProofError::NoCheckpoint)?;
        if checkpoint.is_empty() {
            return Err(TlogProofError::NoCheckpoint);
        }
        let mut lines = head.split('\n').enumerate().map(|(i, l)| (i + 1, l));
        if lines.next().map(|(_, l)| l) != Some(HEADER) {
            return Err(TlogProofError::Header);
        }
        let (mut n, mut line) = lines.next().ok_or(TlogProofError::Line {
            line: 2,
            reason: "missing index line",
        })?;
        let mut extra = None;
        if let Some(b) = line.strip_prefix("extra ") {
            extra = Some(decode_b64(b).ok_or(TlogProofError::Line {
                line: n,
                reason: "extra is not canonical base64",
            })?);
            (n, line) = lines.next().ok_or(TlogProofError::Line {
                line: n + 1,
                reason: "missing index line",
            })?;
        }
        let index =
            line.strip_prefix("index ")
                .and_then(parse_decimal)
                .ok_or(TlogProofError::Line {
                    line: n,
                    reason: "expected `index <decimal without leading zeroes>`",
                })?;
        let mut path = Vec::new();
        for (n, line) in lines {
            if path.len() == MAX_PATH {
                return Err(TlogProofError::PathTooLong);
            }
            let h = decode_b64(line)
                .and_then(|b| Hash::try_from(b).ok())
                .ok_or(TlogProofError::Line {
                    line: n,
                    reason: "inclusion-proof line is not the canonical base64 of 32 bytes",
                })?;
            path.push(h);
        }
        Ok(TlogProof {
            extra,
            index,
            path,
            checkpoint: checkpoint.to_string(),
        })
    }
}

/// Standard base64 with padding, refusing encodings that do not round-trip.
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let b = B64.decode(s).ok()?;
    (B64.encode(&b) == s).then_some(b)
}

/// ASCII decimal without sign or leading zeroes (`0` alone is zero).
pub fn parse_decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKPOINT: &str = "example.com/consent\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— example.com/consent AAAA\n";

    fn sample() -> TlogProof {
        TlogProof {
            extra: Some(b"opening and VRF proof".to_vec()),
            index: 3,
            path: vec![[1; 32], [2; 32], [3; 32]],
            checkpoint: CHECKPOINT.into(),
        }
    }

    #[test]
    fn text_layout_and_round_trip() {
        let p = sample();
        let t = p.to_text();
        assert!(t.starts_with(
            "c2sp.org/tlog-proof@v1\nextra b3BlbmluZyBhbmQgVlJGIHByb29m\nindex 3\nAQEB"
        ));
        assert!(t.ends_with(&format!("\n\n{CHECKPOINT}")));
        assert_eq!(TlogProof::parse(&t), Ok(p));
        let bare = TlogProof {
            extra: None,
            path: vec![],
            index: 0,
            ..sample()
        };
        assert_eq!(bare.to_text(), format!("{HEADER}\nindex 0\n\n{CHECKPOINT}"));
        assert_eq!(TlogProof::parse(&bare.to_text()), Ok(bare));
    }

    #[test]
    fn refusals() {
        let good = sample().to_text();
        let cases: Vec<(String, &str)> = vec![
            (good.replacen(HEADER, "c2sp.org/tlog-proof@v2", 1), "header"),
            (good.replacen("index 3", "index 03", 1), "leading zero"),
            (good.replacen("index 3", "index +3", 1), "sign"),
            (good.replacen("index 3", "index", 1), "no number"),
            (good.replacen("index 3", "index  3", 1), "two spaces"),
            (good.replacen("extra b3Blb", "extra !3Blb", 1), "bad extra"),
            (good.replacen("AQEB", "AQE", 1), "short hash"),
            (
                good.replacen(&format!("\n\n{CHECKPOINT}"), "\n\n", 1),
                "no checkpoint",
            ),
            (
                good.replacen(&format!("\n\n{CHECKPOINT}"), "\n", 1),
                "no empty line",
            ),
            (good.replacen("index 3\n", "", 1), "no index"),
            ("x".repeat(MAX_PROOF + 1), "too large"),
        ];
        for (text, why) in cases {
            assert!(TlogProof::parse(&text).is_err(), "accepted: {why}");
        }
        let long = TlogProof {
            path: vec![[0; 32]; MAX_PATH + 1],
            ..sample()
        };
        assert_eq!(
            TlogProof::parse(&long.to_text()),
            Err(TlogProofError::PathTooLong)
        );
        let max = TlogProof {
            path: vec![[0; 32]; MAX_PATH],
            ..sample()
        };
        assert_eq!(TlogProof::parse(&max.to_text()), Ok(max));
    }

    #[test]
    fn non_canonical_base64_is_refused() {
        // The last character of 32 bytes in base64 carries two padding bits, which must be zero.
        let mut h = B64.encode([1u8; 32]);
        assert_eq!(&h[42..], "E=");
        h.replace_range(42..43, "F");
        assert_eq!(decode_b64(&h), None);
        assert_eq!(decode_b64(h.trim_end_matches('=')), None);
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("00"), None);
        assert_eq!(parse_decimal("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal("18446744073709551616"), None);
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Proofs round-trip through their text.
            #[test]
            fn round_trip(
                extra in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..100)),
                index in any::<u64>(),
                path in proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_PATH),
                checkpoint in "[a-z./]{1,20}\n[0-9]{1,5}\n[A-Za-z0-9+/]{43}=\n\n— [a-z.]{1,10} [A-Za-z0-9+/]{10}==\n",
            ) {
                let p = TlogProof { extra, index, path, checkpoint };
                prop_assert_eq!(TlogProof::parse(&p.to_text()), Ok(p));
            }

            /// Whatever parses writes back to exactly its text.
            #[test]
            fn arbitrary_text(text in "(c2sp.org/tlog-proof@v1\n)?(extra [A-Za-z0-9+/=]{0,8}\n)?(index [0-9]{1,3}\n)?([A-Za-z0-9+/=]{0,44}\n){0,3}\n?[ -~\n]{0,30}") {
                if let Ok(p) = TlogProof::parse(&text) {
                    prop_assert_eq!(p.to_text(), text);
                }
            }
        }
    }
}
