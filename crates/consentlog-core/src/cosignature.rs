//! Witness cosignatures, c2sp.org/tlog-cosignature `cosignature/v1` (Ed25519, signature type
//! 0x04): a statement by a witness that, as of its timestamp, the checkpoint is the largest
//! consistent tree head it has seen for the log.
//!
//! The signed message is `"cosignature/v1\n" || "time " || decimal(timestamp) || "\n" ||` the
//! checkpoint's note text (with its final newline, without signature lines). The signature line
//! carries `key id[4] || timestamp (u64 big-endian) || Ed25519 signature[64]`. Timestamps are
//! POSIX seconds and at most 2^63 - 1.

use ed25519_dalek::{Signature, Signer as _, SigningKey};

use super::vkey::{Vkey, VkeyError, TYPE_COSIGNATURE_V1};

/// Bytes of a cosignature after the key id: timestamp and Ed25519 signature.
pub const COSIGNATURE_LEN: usize = 8 + 64;

/// The message a v1 cosignature signs.
pub fn message(timestamp: u64, note_text: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    m.extend_from_slice(note_text);
    m
}

/// The timestamp of a cosignature's bytes (after the key id), if they have the right length
/// and a timestamp within range.
pub fn timestamp(sig: &[u8]) -> Option<u64> {
    if sig.len() != COSIGNATURE_LEN {
        return None;
    }
    let t = u64::from_be_bytes(sig[..8].try_into().expect("8 bytes"));
    (t <= i64::MAX as u64).then_some(t)
}

/// Checks cosignatures of one witness key, for [`signed_note::Note::verify`].
#[derive(Debug, Clone)]
pub struct CosignatureVerifier(Vkey);

impl CosignatureVerifier {
    pub fn new(vkey: Vkey) -> Result<Self, VkeyError> {
        if vkey.sig_type != TYPE_COSIGNATURE_V1 {
            return Err(VkeyError::Type {
                got: vkey.sig_type,
                want: TYPE_COSIGNATURE_V1,
            });
        }
        Ok(CosignatureVerifier(vkey))
    }

    /// From a vkey of type 0x04.
    pub fn parse(text: &str) -> Result<Self, VkeyError> {
        Self::new(Vkey::parse(text, TYPE_COSIGNATURE_V1)?)
    }

    pub fn vkey(&self) -> &Vkey {
        &self.0
    }
}

impl signed_note::Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn key_id(&self) -> u32 {
        self.0.key_id()
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Some(t) = timestamp(sig) else {
            return false;
        };
        let Ok(s) = Signature::from_slice(&sig[8..]) else {
            return false;
        };
        self.0.key.verify_strict(&message(t, msg), &s).is_ok()
    }
}

/// Signs cosignatures with one witness key at one timestamp, for
/// [`signed_note::Note::add_sigs`].
pub struct Cosigner<'a> {
    pub name: &'a str,
    pub key: &'a SigningKey,
    /// POSIX seconds; the caller reads the clock (the core does not).
    pub timestamp: u64,
}

impl signed_note::Signer for Cosigner<'_> {
    fn name(&self) -> &str {
        self.name
    }

    fn key_id(&self) -> u32 {
        super::vkey::key_id(
            self.name,
            TYPE_COSIGNATURE_V1,
            self.key.verifying_key().as_bytes(),
        )
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        if self.timestamp > i64::MAX as u64 {
            return Err(signature::Error::new());
        }
        let mut out = self.timestamp.to_be_bytes().to_vec();
        out.extend_from_slice(&self.key.sign(&message(self.timestamp, msg)).to_bytes());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vkey::{NoteVerifier, TYPE_ED25519};
    use signed_note::{Note, VerifierList};

    /// A checkpoint of the public CT log arche2025h1 (staging) as served with cosignatures of
    /// the public witness network, and the vkeys of the log and of the witness remora.n621.de.
    const REAL: &str = "arche2025h1.staging.ct.transparency.dev\n1432088532\nU7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n\n\
— arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=\n\
— arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=\n\
— transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==\n\
— witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==\n\
— remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==\n\
— witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==\n";
    const LOG: &str = "arche2025h1.staging.ct.transparency.dev+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f";
    const REMORA: &str = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2";

    #[test]
    fn a_real_witness_cosignature_verifies() {
        let remora = CosignatureVerifier::parse(REMORA).unwrap();
        assert_eq!(remora.vkey().to_text(), REMORA);
        let log = NoteVerifier::new(Vkey::parse(LOG, TYPE_ED25519).unwrap()).unwrap();
        let note = Note::from_bytes(REAL.as_bytes()).unwrap();
        for v in [
            Box::new(remora.clone()) as Box<dyn signed_note::Verifier>,
            Box::new(log),
        ] {
            let (ok, others) = note.verify(&VerifierList::new(vec![v])).unwrap();
            assert_eq!((ok.len(), others.len()), (1, 5));
        }
        let (ok, _) = note
            .verify(&VerifierList::new(vec![Box::new(remora.clone())]))
            .unwrap();
        assert_eq!(timestamp(ok[0].signature()), Some(0x6a12_2120));
        // The same cosignature over another tree size is refused.
        let clobbered = REAL.replace("\n1432088532\n", "\n42\n");
        let note = Note::from_bytes(clobbered.as_bytes()).unwrap();
        assert!(note
            .verify(&VerifierList::new(vec![Box::new(remora)]))
            .is_err());
    }

    #[test]
    fn sign_then_verify_and_every_bit_flip_fails() {
        let key = SigningKey::from_bytes(&[42; 32]);
        let cosigner = Cosigner {
            name: "witness.example/w1",
            key: &key,
            timestamp: 1_790_000_000,
        };
        let text = b"example.com/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let mut note = Note::new(text, &[]).unwrap();
        note.add_sigs(&[&cosigner]).unwrap();
        let vkey = Vkey::new(
            "witness.example/w1",
            TYPE_COSIGNATURE_V1,
            key.verifying_key(),
        )
        .unwrap();
        let verifier = CosignatureVerifier::new(vkey).unwrap();
        let sig = signed_note::Signer::sign(&cosigner, text).unwrap();
        assert!(signed_note::Verifier::verify(&verifier, text, &sig));
        assert_eq!(timestamp(&sig), Some(1_790_000_000));
        for bit in 0..sig.len() * 8 {
            let mut bad = sig.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !signed_note::Verifier::verify(&verifier, text, &bad),
                "bit {bit}"
            );
        }
        let list = VerifierList::new(vec![Box::new(verifier)]);
        assert!(note.verify(&list).is_ok());
        // The message layout of the spec.
        assert_eq!(
            message(1679315147, b"o\n1\nr\n"),
            b"cosignature/v1\ntime 1679315147\no\n1\nr\n"
        );
        assert_eq!(timestamp(&[0xff; COSIGNATURE_LEN]), None);
    }
}
