//! C2SP verifier keys (c2sp.org/signed-note, "vkeys"): `<name>+<key id as 8 hex
//! digits>+<base64(signature type || public key)>`, the one-line form in which logs and
//! witnesses publish their keys, and the [`signed_note::Verifier`]s they stand for.
//!
//! Types read here: `0x01` Ed25519 note signatures (a log's checkpoints) and `0x04` timestamped
//! Ed25519 cosignatures (c2sp.org/tlog-cosignature; [`super::cosignature`]). The key id must be
//! `SHA-256(name || "\n" || type || key)[:4]`; anything else is refused. Ed25519 signatures are
//! checked with `verify_strict` (canonical S, no small-order key or R), as everywhere in
//! consentlog.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type of Ed25519 note signatures.
pub const TYPE_ED25519: u8 = 0x01;
/// Signature type of tlog-cosignature/v1 Ed25519 cosignatures.
pub const TYPE_COSIGNATURE_V1: u8 = 0x04;

/// Why a verifier key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VkeyError {
    #[error("verifier key is not `name+keyid+base64`")]
    Layout,
    #[error("verifier key name {0:?} is empty or holds a space or '+'")]
    Name(String),
    #[error("verifier key id is not 8 lowercase hex digits")]
    KeyIdSyntax,
    #[error("verifier key material is not canonical base64")]
    Base64,
    #[error("verifier key has signature type {got:#04x}, expected {want:#04x}")]
    Type { got: u8, want: u8 },
    #[error("verifier key material has {0} bytes, expected 33 (type and Ed25519 key)")]
    Length(usize),
    #[error("verifier key is not a valid Ed25519 public key, or is of small order")]
    Key,
    #[error("verifier key id {got:08x} is not the id of its name and key ({want:08x})")]
    KeyId { got: u32, want: u32 },
}

/// `SHA-256(name || "\n" || type || key)[:4]` as a big-endian integer.
pub fn key_id(name: &str, sig_type: u8, key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([sig_type]);
    h.update(key);
    u32::from_be_bytes(h.finalize()[..4].try_into().expect("4 bytes"))
}

/// Key names: non-empty, no Unicode space, no `+` (c2sp.org/signed-note).
pub fn name_ok(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(char::is_whitespace) && !name.contains('+')
}

/// An Ed25519 key of a given signature type with its name, as a vkey names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vkey {
    pub name: String,
    pub sig_type: u8,
    pub key: VerifyingKey,
}

impl Vkey {
    pub fn new(name: &str, sig_type: u8, key: VerifyingKey) -> Result<Self, VkeyError> {
        if !name_ok(name) {
            return Err(VkeyError::Name(name.into()));
        }
        Ok(Vkey {
            name: name.into(),
            sig_type,
            key,
        })
    }

    pub fn key_id(&self) -> u32 {
        key_id(&self.name, self.sig_type, self.key.as_bytes())
    }

    /// Parses `name+id+base64(type || key)` of type `want`, strictly.
    pub fn parse(text: &str, want: u8) -> Result<Self, VkeyError> {
        let (name, rest) = text.split_once('+').ok_or(VkeyError::Layout)?;
        let (id, b64) = rest.split_once('+').ok_or(VkeyError::Layout)?;
        if !name_ok(name) {
            return Err(VkeyError::Name(name.into()));
        }
        if id.len() != 8 || !id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(VkeyError::KeyIdSyntax);
        }
        let got = u32::from_str_radix(id, 16).map_err(|_| VkeyError::KeyIdSyntax)?;
        let raw = B64.decode(b64).map_err(|_| VkeyError::Base64)?;
        if B64.encode(&raw) != b64 {
            return Err(VkeyError::Base64);
        }
        if raw.first() != Some(&want) {
            return Err(VkeyError::Type {
                got: raw.first().copied().unwrap_or(0),
                want,
            });
        }
        let key: [u8; 32] = raw[1..]
            .try_into()
            .map_err(|_| VkeyError::Length(raw.len()))?;
        let vk = VerifyingKey::from_bytes(&key).map_err(|_| VkeyError::Key)?;
        if vk.is_weak() {
            return Err(VkeyError::Key);
        }
        let v = Vkey {
            name: name.into(),
            sig_type: want,
            key: vk,
        };
        let want_id = v.key_id();
        if got != want_id {
            return Err(VkeyError::KeyId { got, want: want_id });
        }
        Ok(v)
    }

    /// The one-line form.
    pub fn to_text(&self) -> String {
        let mut raw = vec![self.sig_type];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id(), B64.encode(raw))
    }
}

/// Checks Ed25519 note signatures (type 0x01) strictly, for [`signed_note::Note::verify`].
#[derive(Debug, Clone)]
pub struct NoteVerifier(Vkey);

impl NoteVerifier {
    pub fn new(vkey: Vkey) -> Result<Self, VkeyError> {
        if vkey.sig_type != TYPE_ED25519 {
            return Err(VkeyError::Type {
                got: vkey.sig_type,
                want: TYPE_ED25519,
            });
        }
        Ok(NoteVerifier(vkey))
    }

    pub fn vkey(&self) -> &Vkey {
        &self.0
    }
}

impl signed_note::Verifier for NoteVerifier {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn key_id(&self) -> u32 {
        self.0.key_id()
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(sig) else {
            return false;
        };
        self.0.key.verify_strict(msg, &sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signed_note::{Note, VerifierList};

    /// golang.org/x/mod sumdb/note's test key and signed note (note_test.go).
    const PETER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn go_note_vector() {
        let v = Vkey::parse(PETER, TYPE_ED25519).unwrap();
        assert_eq!(v.name, "PeterNeumann");
        assert_eq!(v.key_id(), 0xc74f20a3);
        assert_eq!(v.to_text(), PETER);
        let list = VerifierList::new(vec![Box::new(NoteVerifier::new(v).unwrap())]);
        let note = Note::from_bytes(PETER_NOTE.as_bytes()).unwrap();
        let (ok, _) = note.verify(&list).unwrap();
        assert_eq!(ok.len(), 1);
        let bad = PETER_NOTE.replace("cryptography", "cryptographY");
        assert!(Note::from_bytes(bad.as_bytes())
            .unwrap()
            .verify(&list)
            .is_err());
    }

    #[test]
    fn malformed_vkeys_are_refused() {
        let cases = [
            ("PeterNeumann", VkeyError::Layout),
            ("PeterNeumann+c74f20a3", VkeyError::Layout),
            (
                "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                VkeyError::Name(String::new()),
            ),
            (
                "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                VkeyError::KeyIdSyntax,
            ),
            (
                "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                VkeyError::KeyIdSyntax,
            ),
            (
                "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
                VkeyError::Base64,
            ),
            (
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                VkeyError::KeyId {
                    got: 0xc74f20a4,
                    want: 0xc74f20a3,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Vkey::parse(text, TYPE_ED25519), Err(want), "{text}");
        }
        assert!(matches!(
            Vkey::parse(PETER, TYPE_COSIGNATURE_V1),
            Err(VkeyError::Type { got: 1, want: 4 })
        ));
        // Every single-character change of a good vkey is refused (or names another valid key
        // whose id then fails), never accepted as the same key.
        let good = Vkey::parse(PETER, TYPE_ED25519).unwrap();
        for i in 0..PETER.len() {
            for c in ['0', 'a', 'A', '+', '/', ' '] {
                let mut t = PETER.to_string();
                if t.as_bytes()[i] == c as u8 {
                    continue;
                }
                t.replace_range(i..i + 1, &c.to_string());
                if let Ok(v) = Vkey::parse(&t, TYPE_ED25519) {
                    assert_ne!(v, good, "{t}");
                }
            }
        }
    }
}
