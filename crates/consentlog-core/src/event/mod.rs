//! Consent events: what a person signs (docs/FORMAT.md, "ConsentEvent").
//!
//! `signature = Ed25519(subject, "consentlog/v2/event\n" || bytes(ConsentEvent))`,
//! `SignedEvent = bytes(ConsentEvent) || signature`, `event_hash = BLAKE3(bytes(SignedEvent))`.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError};
use crate::hash::Hash;
use crate::reject::Reject;
use crate::strict;
use crate::text;
pub use crate::text::NameError;
use crate::vrf::StateKeyInput;

pub mod json;
pub mod subject_key_cache;

pub use json::{count_batch, parse_batch, BatchError, EventJson};
pub use subject_key_cache::SubjectKeyCache;

/// Domain-separation prefix of an event signature.
pub const EVENT_DOMAIN: &[u8] = b"consentlog/v2/event\n";
/// The only event version.
pub const EVENT_VERSION: u8 = 2;
/// The only event kind so far: a decision (opt-in or opt-out). Other kinds (erasure, key
/// rotation) are reserved for later versions and refused.
pub const KIND_DECISION: u8 = 0;
/// The only signer so far: the subject. Other values (a controller acting for the subject)
/// are reserved for later versions and refused.
pub const SIGNER_SUBJECT: u8 = 0;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// A person's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    OptOut = 0,
    OptIn = 1,
}

impl Decision {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::OptIn => "opt-in",
            Decision::OptOut => "opt-out",
        }
    }
}

/// The signed content of one opt-in or opt-out (field order is the byte layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEvent {
    pub version: u8,
    /// What the event is: [`KIND_DECISION`] (reserved for erasure and key rotation).
    pub kind: u8,
    /// Who signed it: [`SIGNER_SUBJECT`] (reserved for controllers).
    pub signer: u8,
    pub log: String,
    pub subject: [u8; 32],
    pub controller: String,
    pub purpose: String,
    pub decision: u8,
    pub seq: u64,
    pub prev: Option<[u8; 32]>,
    pub issued_at: u64,
    pub expires_at: Option<u64>,
    pub notice: Option<[u8; 32]>,
}

impl ConsentEvent {
    /// The event that continues a (subject, controller, purpose) chain: seq 0 and no prev for
    /// the first, else seq + 1 and prev = the event hash of `head` (its seq and event hash).
    pub fn next(
        log: &str,
        subject: [u8; 32],
        (controller, purpose): (&str, &str),
        opt_in: bool,
        head: Option<(u64, Hash)>,
        issued_at: u64,
        expires_at: Option<u64>,
    ) -> ConsentEvent {
        ConsentEvent {
            version: EVENT_VERSION,
            kind: KIND_DECISION,
            signer: SIGNER_SUBJECT,
            log: log.to_string(),
            subject,
            controller: controller.to_string(),
            purpose: purpose.to_string(),
            decision: opt_in as u8,
            seq: head.map_or(0, |(seq, _)| seq + 1),
            prev: head.map(|(_, h)| h),
            issued_at,
            expires_at,
            notice: None,
        }
    }

    /// The decision, if the byte is a known one.
    pub fn decision(&self) -> Option<Decision> {
        match self.decision {
            0 => Some(Decision::OptOut),
            1 => Some(Decision::OptIn),
            _ => None,
        }
    }

    /// What this event's state key is computed from: (log, subject, controller, purpose)
    /// (docs/FORMAT.md §17.1; only the log's VRF key computes it).
    pub fn state_key_input(&self) -> StateKeyInput<'_> {
        StateKeyInput {
            origin: &self.log,
            subject: &self.subject,
            controller: &self.controller,
            purpose: &self.purpose,
        }
    }

    /// The canonical bytes of this event.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The message an Ed25519 signature covers.
    pub fn signing_message(&self) -> Vec<u8> {
        let mut m = EVENT_DOMAIN.to_vec();
        m.extend_from_slice(&self.to_bytes());
        m
    }

    /// Signs with the subject's key; the key must match `subject`.
    pub fn sign(self, key: &SigningKey) -> SignedEvent {
        assert_eq!(
            key.verifying_key().to_bytes(),
            self.subject,
            "signing key does not match the event's subject"
        );
        let signature = key.sign(&self.signing_message()).to_bytes();
        SignedEvent::from_parts(self, signature)
    }
}

/// An event with its signature and exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEvent {
    pub event: ConsentEvent,
    pub signature: [u8; SIGNATURE_LEN],
    bytes: Vec<u8>,
}

impl SignedEvent {
    /// Joins an event and a signature (not checked).
    pub fn from_parts(event: ConsentEvent, signature: [u8; SIGNATURE_LEN]) -> Self {
        let mut bytes = event.to_bytes();
        bytes.extend_from_slice(&signature);
        SignedEvent {
            event,
            signature,
            bytes,
        }
    }

    /// Strictly decodes `bytes(ConsentEvent) || signature[64]`; checks nothing else.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < SIGNATURE_LEN {
            return Err(DecodeError::SignedEventTooShort { len: bytes.len() });
        }
        let (body, sig) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
        let event: ConsentEvent = codec::decode(body)?;
        Ok(SignedEvent {
            event,
            signature: sig.try_into().expect("64 bytes"),
            bytes: bytes.to_vec(),
        })
    }

    /// The exact bytes `bytes(ConsentEvent) || signature`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `BLAKE3(bytes(SignedEvent))`.
    pub fn event_hash(&self) -> Hash {
        *blake3::hash(&self.bytes).as_bytes()
    }

    /// The checks that need no ledger state, in the order of docs/FORMAT.md "Append rules"
    /// (version, controller, purpose, decision, weak key, signature) except `log`, which the
    /// caller compares with its origin first via [`SignedEvent::check_log`].
    pub fn check_self(&self) -> Result<(), Reject> {
        self.check_self_with(&subject_key(&self.event.subject))
    }

    /// [`SignedEvent::check_self`] with the subject's key already decompressed and checked
    /// ([`subject_key`], or [`subject_keys`] for many events).
    pub fn check_self_with(&self, key: &Result<VerifyingKey, Reject>) -> Result<(), Reject> {
        self.check_self_given(key, |k| self.signature_valid(k))
    }

    /// [`SignedEvent::check_self_with`], with the strict signature check answered by
    /// `signature_ok` (for example from [`signatures_valid`], which checks many at once). It is
    /// asked only once every other check has passed, so the first failing rule is reported.
    pub fn check_self_given(
        &self,
        key: &Result<VerifyingKey, Reject>,
        signature_ok: impl FnOnce(&VerifyingKey) -> bool,
    ) -> Result<(), Reject> {
        let e = &self.event;
        if e.version != EVENT_VERSION {
            return Err(Reject::Version(e.version));
        }
        if e.kind != KIND_DECISION {
            return Err(Reject::Kind(e.kind));
        }
        if e.signer != SIGNER_SUBJECT {
            return Err(Reject::Signer(e.signer));
        }
        check_name("controller", &e.controller).map_err(Reject::Controller)?;
        check_name("purpose", &e.purpose).map_err(Reject::Purpose)?;
        if e.decision().is_none() {
            return Err(Reject::Decision(e.decision));
        }
        let key = key.as_ref().map_err(Clone::clone)?;
        if signature_ok(key) {
            Ok(())
        } else {
            Err(Reject::Signature)
        }
    }

    /// `verify_strict` of the signature under `key`, over `EVENT_DOMAIN || bytes(ConsentEvent)`
    /// ([`strict::check`]: the same answer, without decoding `R`).
    pub fn signature_valid(&self, key: &VerifyingKey) -> bool {
        strict::check(&self.signed(key))
    }

    /// The signature as one item for [`strict::check_all`].
    fn signed<'a>(&'a self, key: &'a VerifyingKey) -> strict::Signed<'a> {
        strict::Signed {
            key,
            domain: EVENT_DOMAIN,
            body: &self.bytes[..self.bytes.len() - SIGNATURE_LEN],
            signature: &self.signature,
        }
    }

    /// The event names the ledger `origin`.
    pub fn check_log(&self, origin: &str) -> Result<(), Reject> {
        if self.event.log != origin {
            return Err(Reject::Log {
                got: self.event.log.clone(),
                want: origin.to_string(),
            });
        }
        Ok(())
    }
}

/// A subject's public key, decompressed, refused if it is not a valid point
/// ([`Reject::BadKey`]) or has small order ([`Reject::WeakKey`]).
pub fn subject_key(subject: &[u8; 32]) -> Result<VerifyingKey, Reject> {
    let key = VerifyingKey::from_bytes(subject).map_err(|_| Reject::BadKey)?;
    if key.is_weak() {
        return Err(Reject::WeakKey);
    }
    // Only the canonical encoding (y < p): a point with a second encoding would be a second
    // subject, and so a second state key, for the same key.
    if key.to_edwards().compress().as_bytes() != subject {
        return Err(Reject::BadKey);
    }
    Ok(key)
}

/// The keys of the subjects of `events`, each decompressed once, on all cores (a person's
/// events share a key, and decompressing is a good part of checking a signature).
pub fn subject_keys<'a>(
    events: impl Iterator<Item = &'a SignedEvent>,
) -> HashMap<[u8; 32], Result<VerifyingKey, Reject>> {
    let subjects: HashSet<[u8; 32]> = events.map(|e| e.event.subject).collect();
    crate::par::map_each(subjects, subject_key)
}

/// Whether each event's signature is valid under `verify_strict` with its subject's key from
/// `keys` ([`subject_keys`]), checked together ([`strict::check_all`]: the same answers, one
/// field inversion for all). `false` where the subject's key was refused.
pub fn signatures_valid(
    events: &[&SignedEvent],
    keys: &HashMap<[u8; 32], Result<VerifyingKey, Reject>>,
) -> Vec<bool> {
    let mut items = Vec::with_capacity(events.len());
    let mut at = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        if let Some(Ok(key)) = keys.get(&e.event.subject) {
            items.push(e.signed(key));
            at.push(i);
        }
    }
    let mut out = vec![false; events.len()];
    for (ok, i) in strict::check_all(&items).into_iter().zip(at) {
        out[i] = ok;
    }
    out
}

/// How many signatures [`signatures_valid`] is given at a time by the bulk checks: enough to
/// make the shared inversion cost nothing, few enough to spread over the cores.
pub const SIGNATURE_CHUNK: usize = 64;

/// Maximum length of a controller or purpose.
pub const MAX_NAME: usize = 128;

/// Controller and purpose: 1–128 bytes of `[a-z0-9._:/-]`; `what` names the field.
pub fn check_name(what: &str, s: &str) -> Result<(), NameError> {
    text::check_name_len(what, s, MAX_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reject::ExpiryError;
    use crate::rules::check_expiry;
    use crate::testutil::{Log, T0};

    #[test]
    fn a_subject_must_be_its_keys_canonical_encoding() {
        // y = p + k for small k (p = 2^255 - 19) encodes the point of y = k a second time.
        let mut refused = 0;
        for k in 0u8..19 {
            for sign in [0u8, 0x80] {
                let mut b = [0xffu8; 32];
                b[0] = 0xed + k;
                b[31] = 0x7f | sign;
                let Ok(key) = VerifyingKey::from_bytes(&b) else {
                    continue;
                };
                if key.is_weak() {
                    assert_eq!(subject_key(&b), Err(Reject::WeakKey));
                    continue;
                }
                assert_ne!(key.to_edwards().compress().as_bytes(), &b);
                assert_eq!(subject_key(&b), Err(Reject::BadKey), "{b:?}");
                refused += 1;
            }
        }
        assert!(refused > 0, "no non-canonical key of large order was tried");
        // A real key is its own canonical encoding.
        let log = Log::new();
        let ev = log.event(None, true, T0);
        assert!(subject_key(&ev.event.subject).is_ok());
    }

    #[test]
    fn name_and_expiry_errors() {
        let log = Log::new();
        let ev = ConsentEvent {
            controller: String::new(),
            ..log.event(None, true, T0).event
        }
        .sign(&log.person);
        assert_eq!(
            ev.check_self(),
            Err(Reject::Controller(NameError::Length {
                what: "controller".into(),
                len: 0,
                max: MAX_NAME
            }))
        );
        let ev = ConsentEvent {
            purpose: "Ads".into(),
            ..log.event(None, true, T0).event
        }
        .sign(&log.person);
        let r = ev.check_self().unwrap_err();
        assert_eq!(
            r,
            Reject::Purpose(NameError::Character {
                what: "purpose".into(),
                c: 'A'
            })
        );
        assert_eq!(
            r.to_string(),
            "bad purpose: purpose has character 'A' outside [a-z0-9._:/-]"
        );

        let expiring = |opt_in, expires_at| {
            ConsentEvent {
                expires_at: Some(expires_at),
                ..log.event(None, opt_in, T0).event
            }
            .sign(&log.person)
        };
        assert_eq!(check_expiry(&expiring(true, T0 + 1)), Ok(()));
        assert_eq!(
            check_expiry(&expiring(false, T0 + 1)),
            Err(Reject::ExpiresAt(ExpiryError::OnOptOut))
        );
        let r = check_expiry(&expiring(true, T0)).unwrap_err();
        assert_eq!(
            r,
            Reject::ExpiresAt(ExpiryError::NotAfterIssued {
                expires_at: T0,
                issued_at: T0
            })
        );
        assert_eq!(
            r.to_string(),
            format!(
                "expires_at: expires_at {} is not after issued_at {}",
                crate::time::Both(T0),
                crate::time::Both(T0)
            )
        );
    }

    #[test]
    fn decode_errors() {
        let log = Log::new();
        let ev = log.event(None, true, T0);
        assert_eq!(
            SignedEvent::decode(&ev.as_bytes()[..63]),
            Err(DecodeError::SignedEventTooShort { len: 63 })
        );
        assert_eq!(
            DecodeError::SignedEventTooShort { len: 63 }.to_string(),
            "malformed encoding: signed event of 63 bytes is shorter than a signature"
        );
        let mut b = ev.as_bytes().to_vec();
        b.insert(0, 1);
        assert!(matches!(
            SignedEvent::decode(&b),
            Err(DecodeError::Malformed(_) | DecodeError::TrailingBytes(_))
        ));
    }
}
