//! Signed checkpoints as C2SP signed notes (c2sp.org/signed-note, c2sp.org/tlog-checkpoint).
//!
//! The body is exactly a c2sp.org/tlog-checkpoint with no extension lines: origin, tree size,
//! base64 RFC 6962 root. The map root and the time live in map leaves inside the log
//! (docs/FORMAT.md §4), where the checkpoint covers them. The signed message is the whole body including its final newline. After a blank line
//! come signature lines `— <origin> <base64(key id[4] || Ed25519 signature[64])>`, with
//! key id = SHA-256(origin || "\n" || 0x01 || public key)[..4].

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::hash::Hash;
use super::text::{self, parse_decimal, DecimalError, NameError};

/// Signature-type byte of Ed25519 in signed-note key ids.
pub const ED25519_ALG: u8 = 0x01;
/// Largest note we parse.
pub const MAX_NOTE: usize = 16 * 1024;
/// Most signature lines we look through.
pub const MAX_SIGNATURES: usize = 100;

/// A checkpoint's body: what the log commits to at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint<'a> {
    pub origin: &'a str,
    pub size: u64,
    pub root: Hash,
}

/// An owned checkpoint, as parsed from a verified note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// The full note text, byte for byte.
    pub note: String,
}

/// Why a note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note is larger than {MAX_NOTE} bytes")]
    TooLarge,
    #[error("malformed note: {0}")]
    Malformed(#[from] NoteSyntaxError),
    #[error("malformed checkpoint body: {0}")]
    Body(#[from] BodyError),
    #[error("note carries no signature by {origin:?} with key id {key_id}")]
    NoSignature { origin: String, key_id: String },
    #[error("checkpoint signature does not verify under the log key")]
    BadSignature,
    #[error("checkpoint is for origin {got:?}, expected {want:?}")]
    WrongOrigin { got: String, want: String },
}

/// What is wrong with the note around the checkpoint body ([`NoteError::Malformed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteSyntaxError {
    #[error("no blank line after the body")]
    NoBlankLine,
    #[error("note does not end with a newline")]
    NoFinalNewline,
    /// None, or more than [`MAX_SIGNATURES`].
    #[error("bad number of signature lines")]
    SignatureCount,
    /// Not `— <name> <base64>`.
    #[error("bad signature line {0:?}")]
    SignatureLine(String),
    #[error("signature is not base64")]
    SignatureBase64,
    /// Fewer than the 4 bytes of a key id and one byte of signature.
    #[error("signature too short")]
    SignatureTooShort,
    /// The key id matches, but the rest is not 64 bytes.
    #[error("Ed25519 signature is not 64 bytes")]
    SignatureLength,
}

/// A field of the checkpoint body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyField {
    TreeSize,
    Root,
}

impl std::fmt::Display for BodyField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BodyField::TreeSize => "tree size",
            BodyField::Root => "root hash",
        })
    }
}

/// What is wrong with a checkpoint body ([`NoteError::Body`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body does not end with a newline")]
    NoFinalNewline,
    /// A consentlog checkpoint has no extension lines.
    #[error("expected 3 lines (origin, size, root), got {0}")]
    LineCount(usize),
    #[error("{0}")]
    Origin(#[from] NameError),
    /// Not canonical decimal digits (no sign, no leading zero).
    #[error("{field} {text:?} is not a decimal number")]
    NotDecimal { field: BodyField, text: String },
    #[error("{field} {text:?} is out of range")]
    OutOfRange { field: BodyField, text: String },
    /// The base64 decoder's message.
    #[error("{field} is not base64: {reason}")]
    NotBase64 { field: BodyField, reason: String },
    #[error("{field} is not canonical base64")]
    NonCanonicalBase64 { field: BodyField },
    #[error("{field} is not 32 bytes")]
    NotHash { field: BodyField },
}

/// `SHA-256(name || "\n" || 0x01 || key)[..4]`.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_ALG]);
    h.update(key.as_bytes());
    h.finalize()[..4].try_into().expect("4 bytes")
}

/// Origins (and so key names) are 1–255 bytes of `[a-z0-9._:/-]`.
pub fn check_origin(origin: &str) -> Result<(), NameError> {
    text::check_name_len("origin", origin, MAX_ORIGIN)
}

/// The longest origin, in bytes.
pub const MAX_ORIGIN: usize = 255;

impl Checkpoint<'_> {
    /// The body text, ending in a newline: the bytes the log key signs.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Signs the body and returns the full note text.
    pub fn sign(&self, key: &SigningKey) -> String {
        let body = self.body();
        let sig = key.sign(body.as_bytes()).to_bytes();
        let mut blob = key_id(self.origin, &key.verifying_key()).to_vec();
        blob.extend_from_slice(&sig);
        format!("{body}\n\u{2014} {} {}\n", self.origin, B64.encode(blob))
    }
}

fn parse_u64(s: &str, field: BodyField) -> Result<u64, BodyError> {
    let text = s.to_string();
    parse_decimal(s).map_err(|e| match e {
        DecimalError::NotDecimal => BodyError::NotDecimal { field, text },
        DecimalError::OutOfRange => BodyError::OutOfRange { field, text },
    })
}

fn parse_b64_hash(s: &str, field: BodyField) -> Result<Hash, BodyError> {
    let v = B64.decode(s).map_err(|e| BodyError::NotBase64 {
        field,
        reason: e.to_string(),
    })?;
    if B64.encode(&v) != s {
        return Err(BodyError::NonCanonicalBase64 { field });
    }
    v.try_into().map_err(|_| BodyError::NotHash { field })
}

/// Splits a note into body (with final newline) and signature lines.
fn split(note: &str) -> Result<(&str, Vec<&str>), NoteError> {
    if note.len() > MAX_NOTE {
        return Err(NoteError::TooLarge);
    }
    let at = note.find("\n\n").ok_or(NoteSyntaxError::NoBlankLine)?;
    let (body, rest) = (&note[..at + 1], &note[at + 2..]);
    if !rest.ends_with('\n') {
        return Err(NoteSyntaxError::NoFinalNewline.into());
    }
    let sigs: Vec<&str> = rest[..rest.len() - 1].split('\n').collect();
    if sigs.is_empty() || sigs.len() > MAX_SIGNATURES {
        return Err(NoteSyntaxError::SignatureCount.into());
    }
    Ok((body, sigs))
}

/// Parses a checkpoint body strictly (exactly three lines in this order).
pub fn parse_body(body: &str) -> Result<Checkpoint<'_>, NoteError> {
    Ok(parse_body_lines(body)?)
}

fn parse_body_lines(body: &str) -> Result<Checkpoint<'_>, BodyError> {
    let lines: Vec<&str> = body
        .strip_suffix('\n')
        .ok_or(BodyError::NoFinalNewline)?
        .split('\n')
        .collect();
    let [origin, size, root] = lines[..] else {
        return Err(BodyError::LineCount(lines.len()));
    };
    check_origin(origin)?;
    Ok(Checkpoint {
        origin,
        size: parse_u64(size, BodyField::TreeSize)?,
        root: parse_b64_hash(root, BodyField::Root)?,
    })
}

/// Verifies `note` with the log key and returns its checkpoint. The note must carry a
/// signature line named by its own origin with the key's id; other signatures (witnesses)
/// are ignored.
pub fn open(note: &str, key: &VerifyingKey) -> Result<SignedCheckpoint, NoteError> {
    let (body, sigs) = split(note)?;
    let cp = parse_body(body)?;
    let id = key_id(cp.origin, key);
    let mut found = false;
    for line in sigs {
        let (name, b64) = line
            .strip_prefix("\u{2014} ")
            .and_then(|rest| rest.split_once(' '))
            .ok_or_else(|| NoteSyntaxError::SignatureLine(line.to_string()))?;
        let blob = B64
            .decode(b64)
            .map_err(|_| NoteSyntaxError::SignatureBase64)?;
        if blob.len() < 5 {
            return Err(NoteSyntaxError::SignatureTooShort.into());
        }
        if name != cp.origin || blob[..4] != id {
            continue;
        }
        let sig: [u8; 64] = blob[4..]
            .try_into()
            .map_err(|_| NoteSyntaxError::SignatureLength)?;
        key.verify_strict(body.as_bytes(), &Signature::from_bytes(&sig))
            .map_err(|_| NoteError::BadSignature)?;
        found = true;
    }
    if !found {
        return Err(NoteError::NoSignature {
            origin: cp.origin.to_string(),
            key_id: hex::encode(id),
        });
    }
    Ok(SignedCheckpoint {
        origin: cp.origin.to_string(),
        size: cp.size,
        root: cp.root,
        note: note.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[0x42; 32])
    }

    fn note() -> String {
        Checkpoint {
            origin: "test.example/log",
            size: 2,
            root: [1; 32],
        }
        .sign(&key())
    }

    fn open_err(text: &str) -> NoteError {
        open(text, &key().verifying_key()).expect_err(text)
    }

    #[test]
    fn opens_what_it_signs() {
        let cp = open(&note(), &key().verifying_key()).unwrap();
        assert_eq!((cp.size, cp.root), (2, [1; 32]));
        assert_eq!(
            cp.note.split_once("\n\n").unwrap().0,
            format!("test.example/log\n2\n{}", B64.encode([1u8; 32]))
        );
    }

    #[test]
    fn syntax_errors() {
        let good = note();
        let (body, sig) = good.split_once("\n\n").unwrap();
        let sig = sig.trim_end();
        let blob = sig.rsplit_once(' ').unwrap().1;
        let with_sig = |line: &str| format!("{body}\n\n{line}\n");
        for (text, want) in [
            ("no blank line\n".to_string(), NoteSyntaxError::NoBlankLine),
            (good.trim_end().to_string(), NoteSyntaxError::NoFinalNewline),
            (
                format!("{body}\n\n\n"),
                NoteSyntaxError::SignatureLine(String::new()),
            ),
            (
                with_sig(&"— x AAAA\n".repeat(MAX_SIGNATURES + 1)),
                NoteSyntaxError::SignatureCount,
            ),
            (
                with_sig("- test.example/log x"),
                NoteSyntaxError::SignatureLine("- test.example/log x".into()),
            ),
            (
                with_sig("— test.example/log !!"),
                NoteSyntaxError::SignatureBase64,
            ),
            (
                with_sig("— test.example/log AAAA"),
                NoteSyntaxError::SignatureTooShort,
            ),
            (
                with_sig(&format!(
                    "— test.example/log {}",
                    B64.encode(&B64.decode(blob).unwrap()[..40])
                )),
                NoteSyntaxError::SignatureLength,
            ),
        ] {
            assert_eq!(open_err(&text), NoteError::Malformed(want), "{text:?}");
        }
        assert_eq!(
            NoteError::Malformed(NoteSyntaxError::SignatureLine("x".into())).to_string(),
            "malformed note: bad signature line \"x\""
        );
    }

    #[test]
    fn body_errors() {
        let root = B64.encode([1u8; 32]);
        let body = |size: &str, root: &str| format!("test.example/log\n{size}\n{root}\n");
        for (text, want) in [
            ("test.example/log".to_string(), BodyError::NoFinalNewline),
            ("a\nb\n".to_string(), BodyError::LineCount(2)),
            // An extension line (a v1 checkpoint had two) is refused.
            (
                format!("{}map {root}\n", body("1", &root)),
                BodyError::LineCount(4),
            ),
            (
                body("01", &root),
                BodyError::NotDecimal {
                    field: BodyField::TreeSize,
                    text: "01".into(),
                },
            ),
            (
                body("99999999999999999999", &root),
                BodyError::OutOfRange {
                    field: BodyField::TreeSize,
                    text: "99999999999999999999".into(),
                },
            ),
            (
                body("1", "!"),
                BodyError::NotBase64 {
                    field: BodyField::Root,
                    reason: B64.decode("!").unwrap_err().to_string(),
                },
            ),
            (
                body("1", "AAAA"),
                BodyError::NotHash {
                    field: BodyField::Root,
                },
            ),
        ] {
            assert_eq!(parse_body(&text), Err(NoteError::Body(want)), "{text:?}");
        }
        assert_eq!(
            parse_body(&format!("Test\n1\n{root}\n")),
            Err(NoteError::Body(BodyError::Origin(NameError::Character {
                what: "origin".into(),
                c: 'T'
            })))
        );
        // Not reachable with the strict base64 engine, which refuses non-canonical input
        // itself; checked all the same in case the engine's configuration changes.
        assert_eq!(
            BodyError::NonCanonicalBase64 {
                field: BodyField::Root
            }
            .to_string(),
            "root hash is not canonical base64"
        );
        assert_eq!(
            NoteError::Body(BodyError::NotDecimal {
                field: BodyField::TreeSize,
                text: "01".into()
            })
            .to_string(),
            "malformed checkpoint body: tree size \"01\" is not a decimal number"
        );
    }

    /// An independent implementation of c2sp.org/signed-note (the `signed_note` crate) opens
    /// our notes with the log's vkey, and ours opens its.
    #[test]
    fn signed_note_crate_agrees() {
        use crate::vkey::{NoteVerifier, Vkey, TYPE_ED25519};
        let name = "test.example/log";
        let vkey = Vkey::new(name, TYPE_ED25519, key().verifying_key()).unwrap();
        let verifiers = signed_note::VerifierList::new(vec![Box::new(
            NoteVerifier::new(vkey.clone()).unwrap(),
        )]);
        let ours = signed_note::Note::from_bytes(note().as_bytes()).unwrap();
        assert_eq!(ours.verify(&verifiers).unwrap().0.len(), 1);
        // Signed by the crate's own signer, opened by ours.
        let mut raw = vec![TYPE_ED25519];
        raw.extend_from_slice(&[0x42; 32]);
        let skey = format!(
            "PRIVATE+KEY+{name}+{:08x}+{}",
            vkey.key_id(),
            B64.encode(raw)
        );
        let signer = signed_note::StandardSigner::new(&skey).unwrap();
        let body = Checkpoint {
            origin: name,
            size: 7,
            root: [9; 32],
        }
        .body();
        let mut theirs = signed_note::Note::new(body.as_bytes(), &[]).unwrap();
        theirs.add_sigs(&[&signer]).unwrap();
        let text = String::from_utf8(theirs.to_bytes()).unwrap();
        let cp = open(&text, &key().verifying_key()).unwrap();
        assert_eq!((cp.size, cp.root), (7, [9; 32]));
    }

    #[test]
    fn signature_errors() {
        let good = note();
        let other = SigningKey::from_bytes(&[0x43; 32]).verifying_key();
        assert!(matches!(
            open(&good, &other),
            Err(NoteError::NoSignature { .. })
        ));
        // The key id of the right key in front of another key's signature.
        let forged = Checkpoint {
            origin: "test.example/log",
            size: 3,
            root: [1; 32],
        }
        .sign(&key());
        let (body, _) = forged.split_once("\n\n").unwrap();
        let (_, sig) = good.split_once("\n\n").unwrap();
        assert_eq!(
            open_err(&format!("{body}\n\n{sig}")),
            NoteError::BadSignature
        );
        assert_eq!(open_err(&"x".repeat(MAX_NOTE + 1)), NoteError::TooLarge);
    }
}
