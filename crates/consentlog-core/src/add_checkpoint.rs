//! The log's side of c2sp.org/tlog-witness `add-checkpoint`: the request body a log sends a
//! witness, and the two answers it reads back (the witness's size on 409 Conflict, the
//! cosignature lines on 200).
//!
//! The request body is `old <size>\n`, then at most [`MAX_PROOF_LINES`] lines of one base64
//! hash each (the RFC 6962 §2.1.2 consistency proof from the old size, empty when the old size
//! is zero), an empty line, and the checkpoint note with its signature lines. A 409 answer has
//! `Content-Type:` [`SIZE_CONTENT_TYPE`] and the body `<size>\n`, in decimal without leading
//! zeroes. A 200 answer is one or more signature lines (`— <name> <base64>\n`): the client
//! ignores lines by keys it does not know and must not keep one that does not verify.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::cosignature::{self, CosignatureVerifier};
use super::hash::Hash;

/// Most consistency proof lines a request may carry (the specification's limit).
pub const MAX_PROOF_LINES: usize = 63;
/// The `Content-Type` of a 409 answer.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// The request path below a witness's submission prefix.
pub const PATH: &str = "/add-checkpoint";
/// Largest answer body read (a 200 answer carries a few signature lines).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Why a request could not be built or an answer was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddCheckpointError {
    #[error("a consistency proof of {0} hashes is longer than the {MAX_PROOF_LINES} lines a request may carry")]
    ProofTooLong(usize),
    #[error("a consistency proof from size 0 must be empty")]
    ProofFromZero,
    #[error("the checkpoint note does not end with a newline")]
    NoteUnterminated,
    #[error("the witness's size answer is not a decimal tree size followed by a newline")]
    BadSize,
    #[error("the witness's answer is larger than {MAX_RESPONSE_BYTES} bytes")]
    ResponseTooLarge,
    #[error("the witness's answer line {line} is not a signature line (— <name> <base64>)")]
    BadLine { line: usize },
    #[error("the cosignature by {name} on line {line} does not verify")]
    BadCosignature { name: String, line: usize },
    #[error("the witness's answer holds no cosignature by {name}")]
    NoCosignature { name: String },
    #[error("the checkpoint note is not a signed note: {0}")]
    Note(String),
}

/// The body of an `add-checkpoint` request: `old`, the consistency proof from `old` to the
/// note's size, and the note (text and signature lines, ending with a newline).
pub fn encode_request(old: u64, proof: &[Hash], note: &str) -> Result<Vec<u8>, AddCheckpointError> {
    if proof.len() > MAX_PROOF_LINES {
        return Err(AddCheckpointError::ProofTooLong(proof.len()));
    }
    if old == 0 && !proof.is_empty() {
        return Err(AddCheckpointError::ProofFromZero);
    }
    if !note.ends_with('\n') {
        return Err(AddCheckpointError::NoteUnterminated);
    }
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&B64.encode(h));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    Ok(body.into_bytes())
}

/// The witness's tree size from a 409 answer's body: a decimal with no leading zeroes (`0`
/// for zero) and a final newline, nothing else.
pub fn parse_size(body: &[u8]) -> Result<u64, AddCheckpointError> {
    let digits = body
        .strip_suffix(b"\n")
        .ok_or(AddCheckpointError::BadSize)?;
    let canonical = match digits {
        [] => false,
        [b'0'] => true,
        [first, rest @ ..] => {
            (b'1'..=b'9').contains(first) && rest.iter().all(|b| b.is_ascii_digit())
        }
    };
    if !canonical {
        return Err(AddCheckpointError::BadSize);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(AddCheckpointError::BadSize)
}

/// One cosignature kept from a 200 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The signature line, with its final newline, ready to append to the note.
    pub line: String,
    /// The cosignature's timestamp (POSIX seconds).
    pub timestamp: u64,
}

/// The cosignatures by `witness` on `note` in a 200 answer's `body`. Lines by other keys are
/// ignored (as the specification requires); a line by `witness` that does not verify, a line
/// that is not a signature line, or no line by `witness` at all is an error.
pub fn check_response(
    note: &str,
    body: &[u8],
    witness: &CosignatureVerifier,
) -> Result<Vec<Cosigned>, AddCheckpointError> {
    use signed_note::Verifier as _;
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(AddCheckpointError::ResponseTooLarge);
    }
    let parsed = signed_note::Note::from_bytes(note.as_bytes())
        .map_err(|e| AddCheckpointError::Note(e.to_string()))?;
    let text = parsed.text();
    let body = std::str::from_utf8(body).map_err(|_| AddCheckpointError::BadLine { line: 1 })?;
    let Some(body) = body.strip_suffix('\n') else {
        return Err(AddCheckpointError::BadLine { line: 1 });
    };
    let mut kept = Vec::new();
    for (i, line) in body.split('\n').enumerate() {
        let bad = AddCheckpointError::BadLine { line: i + 1 };
        let rest = line.strip_prefix("\u{2014} ").ok_or(bad.clone())?;
        let (name, sig) = rest.split_once(' ').ok_or(bad.clone())?;
        let sig = B64.decode(sig).map_err(|_| bad.clone())?;
        if name.is_empty() || sig.len() < 4 {
            return Err(bad);
        }
        let id = u32::from_be_bytes(sig[..4].try_into().expect("4 bytes"));
        if name != witness.name() || id != witness.key_id() {
            continue;
        }
        if !witness.verify(text, &sig[4..]) {
            return Err(AddCheckpointError::BadCosignature {
                name: name.to_string(),
                line: i + 1,
            });
        }
        let timestamp = cosignature::timestamp(&sig[4..]).expect("a verified cosignature");
        kept.push(Cosigned {
            line: format!("{line}\n"),
            timestamp,
        });
    }
    if kept.is_empty() {
        return Err(AddCheckpointError::NoCosignature {
            name: witness.name().to_string(),
        });
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosignature::Cosigner;
    use crate::note::Checkpoint;
    use crate::vkey::{Vkey, TYPE_COSIGNATURE_V1};
    use ed25519_dalek::SigningKey;
    use signed_note::Signer as _;

    fn note() -> String {
        let key = SigningKey::from_bytes(&[7; 32]);
        Checkpoint {
            origin: "example.com/log",
            size: 5,
            root: [9; 32],
        }
        .sign(&key)
    }

    fn witness() -> (SigningKey, CosignatureVerifier) {
        let key = SigningKey::from_bytes(&[3; 32]);
        let vkey = Vkey::new(
            "witness.example/w1",
            TYPE_COSIGNATURE_V1,
            key.verifying_key(),
        )
        .unwrap();
        (key, CosignatureVerifier::new(vkey).unwrap())
    }

    fn line(name: &str, key: &SigningKey, t: u64, text: &[u8]) -> String {
        let c = Cosigner {
            name,
            key,
            timestamp: t,
        };
        let mut sig = c.key_id().to_be_bytes().to_vec();
        sig.extend(c.sign(text).unwrap());
        format!("\u{2014} {name} {}\n", B64.encode(sig))
    }

    fn text(note: &str) -> Vec<u8> {
        signed_note::Note::from_bytes(note.as_bytes())
            .unwrap()
            .text()
            .to_vec()
    }

    #[test]
    fn the_request_body_is_the_specifications() {
        let n = note();
        let body = encode_request(3, &[[0; 32], [0xff; 32]], &n).unwrap();
        let want = format!(
            "old 3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\
             //////////////////////////////////////////8=\n\n{n}"
        );
        assert_eq!(String::from_utf8(body).unwrap(), want);
        assert_eq!(
            encode_request(0, &[], &n).unwrap(),
            format!("old 0\n\n{n}").into_bytes()
        );
        assert_eq!(
            encode_request(0, &[[0; 32]], &n),
            Err(AddCheckpointError::ProofFromZero)
        );
        assert_eq!(
            encode_request(1, &[[0; 32]; 64], &n),
            Err(AddCheckpointError::ProofTooLong(64))
        );
        assert!(encode_request(1, &[[0; 32]; 63], &n).is_ok());
        assert_eq!(
            encode_request(1, &[], n.trim_end()),
            Err(AddCheckpointError::NoteUnterminated)
        );
    }

    #[test]
    fn size_answers_are_canonical_decimals_with_a_newline() {
        assert_eq!(parse_size(b"0\n"), Ok(0));
        assert_eq!(parse_size(b"20852014\n"), Ok(20_852_014));
        assert_eq!(parse_size(b"18446744073709551615\n"), Ok(u64::MAX));
        for bad in [
            &b""[..],
            b"\n",
            b"12",
            b"012\n",
            b"00\n",
            b"+1\n",
            b"-1\n",
            b" 1\n",
            b"1 \n",
            b"1\n\n",
            b"1\r\n",
            b"18446744073709551616\n",
        ] {
            assert_eq!(parse_size(bad), Err(AddCheckpointError::BadSize), "{bad:?}");
        }
    }

    #[test]
    fn answers_keep_the_witnesss_verified_cosignatures_and_ignore_others() {
        let n = note();
        let t = text(&n);
        let (key, w) = witness();
        let other = SigningKey::from_bytes(&[4; 32]);
        let mine = line("witness.example/w1", &key, 1_700_000_000, &t);
        let theirs = line("witness.example/w2", &other, 1_700_000_000, &t);
        let body = format!("{theirs}{mine}");
        let kept = check_response(&n, body.as_bytes(), &w).unwrap();
        assert_eq!(
            kept,
            vec![Cosigned {
                line: mine.clone(),
                timestamp: 1_700_000_000
            }]
        );
        // The kept line, appended to the note, makes a note the witness's key verifies.
        let cosigned = format!("{n}{mine}");
        let parsed = signed_note::Note::from_bytes(cosigned.as_bytes()).unwrap();
        let list = signed_note::VerifierList::new(vec![Box::new(w.clone())]);
        assert_eq!(parsed.verify(&list).unwrap().0.len(), 1);
        // Only other keys: nothing kept.
        assert_eq!(
            check_response(&n, theirs.as_bytes(), &w),
            Err(AddCheckpointError::NoCosignature {
                name: "witness.example/w1".into()
            })
        );
        // A cosignature of another checkpoint by the witness's key.
        let wrong = line(
            "witness.example/w1",
            &key,
            1_700_000_000,
            b"other\n1\nAA==\n",
        );
        assert!(matches!(
            check_response(&n, wrong.as_bytes(), &w),
            Err(AddCheckpointError::BadCosignature { line: 1, .. })
        ));
        // Not signature lines.
        for bad in [
            "",
            "\n",
            "- witness.example/w1 AAAA\n",
            "\u{2014} w1\n",
            "x",
        ] {
            assert!(
                matches!(
                    check_response(&n, bad.as_bytes(), &w),
                    Err(AddCheckpointError::BadLine { .. })
                ),
                "{bad:?}"
            );
        }
        let huge = mine.repeat(MAX_RESPONSE_BYTES / mine.len() + 1);
        assert_eq!(
            check_response(&n, huge.as_bytes(), &w),
            Err(AddCheckpointError::ResponseTooLarge)
        );
    }

    #[test]
    fn every_single_bit_change_of_a_cosignature_is_refused() {
        let n = note();
        let (key, w) = witness();
        let good = line("witness.example/w1", &key, 1_700_000_000, &text(&n));
        let b64 = good.trim_end().rsplit(' ').next().unwrap();
        let sig = B64.decode(b64).unwrap();
        for bit in 0..sig.len() * 8 {
            let mut s = sig.clone();
            s[bit / 8] ^= 1 << (bit % 8);
            let l = format!("\u{2014} witness.example/w1 {}\n", B64.encode(&s));
            assert!(check_response(&n, l.as_bytes(), &w).is_err(), "bit {bit}");
        }
    }
}
