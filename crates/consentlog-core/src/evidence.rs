//! Evidence that a log lied: two checkpoints signed by the same key that cannot both be honest
//! (docs/FORMAT.md, "Evidence"). Anyone holding the log's public key can re-check it.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::hash::{hex_array, to_hex, HexHash};
use super::note::{self, SignedCheckpoint};
use super::tlog::{check_consistency, Sha256Hasher, TreeSize};

/// The `format` of an evidence file.
pub const EVIDENCE_FORMAT: &str = "consentlog-evidence/v2";

/// Why two checkpoints cannot both be honest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Two trees of the same size with different roots (a fork).
    SameSizeDifferentRoots,
    /// The larger tree does not extend the smaller: the consistency proof fails.
    Inconsistent,
}

/// A portable evidence file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub format: String,
    #[serde(with = "hex_array")]
    pub log_key: [u8; 32],
    pub kind: Kind,
    /// The smaller (or first, for equal sizes) checkpoint.
    pub first: String,
    pub second: String,
    /// For `inconsistent`: the consistency proof from first to second that was obtained.
    #[serde(deserialize_with = "Option::deserialize")]
    pub proof: Option<Vec<HexHash>>,
}

/// What comparing two checkpoints shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// One extends the other (or they are the same tree).
    Consistent,
    /// They cannot both be honest.
    Fork(Evidence),
    /// Sizes differ: a consistency proof from `old` to `new` is needed to decide.
    NeedProof { old: u64, new: u64 },
}

/// Why checkpoints or evidence could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("unknown evidence format {0:?}")]
    Format(String),
    #[error("{which} checkpoint: {err}")]
    Note {
        which: &'static str,
        err: note::NoteError,
    },
    #[error("the two checkpoints are for different origins")]
    Origins,
    #[error("the evidence does not show a lie: {0}")]
    NotEvidence(#[from] NotEvidence),
}

/// Why an evidence file, though well-formed, does not show a lie ([`EvidenceError::NotEvidence`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotEvidence {
    #[error("log key is not an Ed25519 key")]
    BadKey,
    /// An `inconsistent` evidence without the proof that fails.
    #[error("no consistency proof")]
    NoProof,
    /// The proof of an `inconsistent` evidence is a valid one.
    #[error("the consistency proof verifies")]
    ProofVerifies,
    /// The checkpoints do not show what the kind says (sizes or roots).
    #[error("the checkpoints do not show {0:?}")]
    KindNotShown(Kind),
}

fn open2(
    key: &VerifyingKey,
    a: &str,
    b: &str,
) -> Result<(SignedCheckpoint, SignedCheckpoint), EvidenceError> {
    let a = note::open(a, key).map_err(|err| EvidenceError::Note {
        which: "first",
        err,
    })?;
    let b = note::open(b, key).map_err(|err| EvidenceError::Note {
        which: "second",
        err,
    })?;
    if a.origin != b.origin {
        return Err(EvidenceError::Origins);
    }
    Ok((a, b))
}

fn evidence(
    key: &VerifyingKey,
    kind: Kind,
    a: &SignedCheckpoint,
    b: &SignedCheckpoint,
    proof: Option<Vec<HexHash>>,
) -> Evidence {
    Evidence {
        format: EVIDENCE_FORMAT.into(),
        log_key: key.to_bytes(),
        kind,
        first: a.note.clone(),
        second: b.note.clone(),
        proof,
    }
}

/// Compares two checkpoint notes signed by `key`; `proof` is a consistency proof from the
/// smaller to the larger tree, when one was obtained.
pub fn compare(
    key: &VerifyingKey,
    a: &str,
    b: &str,
    proof: Option<&[HexHash]>,
) -> Result<Comparison, EvidenceError> {
    let (a, b) = open2(key, a, b)?;
    let (old, new) = if a.size <= b.size { (a, b) } else { (b, a) };
    if old.size == new.size {
        return Ok(if old.root == new.root {
            Comparison::Consistent
        } else {
            Comparison::Fork(evidence(
                key,
                Kind::SameSizeDifferentRoots,
                &old,
                &new,
                None,
            ))
        });
    }
    let Some(path) = proof else {
        return Ok(Comparison::NeedProof {
            old: old.size,
            new: new.size,
        });
    };
    let hashes: Vec<_> = path.iter().map(|h| h.0).collect();
    match check_consistency(
        &Sha256Hasher,
        TreeSize(old.size),
        TreeSize(new.size),
        &old.root,
        &new.root,
        &hashes,
    ) {
        Ok(()) => Ok(Comparison::Consistent),
        Err(_) => Ok(Comparison::Fork(evidence(
            key,
            Kind::Inconsistent,
            &old,
            &new,
            Some(path.to_vec()),
        ))),
    }
}

/// Re-checks an evidence file: both checkpoints are signed by its key, and they show what
/// its kind says. Returns a sentence describing the lie.
pub fn check(e: &Evidence) -> Result<String, EvidenceError> {
    if e.format != EVIDENCE_FORMAT {
        return Err(EvidenceError::Format(e.format.clone()));
    }
    let key = VerifyingKey::from_bytes(&e.log_key).map_err(|_| NotEvidence::BadKey)?;
    let (a, b) = open2(&key, &e.first, &e.second)?;
    let who = format!("log {:?} (key {})", a.origin, to_hex(&e.log_key));
    match e.kind {
        Kind::SameSizeDifferentRoots if a.size == b.size && a.root != b.root => Ok(format!(
            "{who} signed two different trees of size {}",
            a.size
        )),
        Kind::Inconsistent if a.size < b.size => {
            let path = e.proof.as_ref().ok_or(NotEvidence::NoProof)?;
            let hashes: Vec<_> = path.iter().map(|h| h.0).collect();
            match check_consistency(
                &Sha256Hasher,
                TreeSize(a.size),
                TreeSize(b.size),
                &a.root,
                &b.root,
                &hashes,
            ) {
                Err(err) => Ok(format!(
                    "{who} signed trees of sizes {} and {} whose consistency proof fails ({err})",
                    a.size, b.size
                )),
                Ok(()) => Err(NotEvidence::ProofVerifies.into()),
            }
        }
        k => Err(NotEvidence::KindNotShown(k).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Log, T0};
    use crate::tlog::prove_consistency;

    /// Two honest checkpoints of one log (sizes 3 and 5), the consistency proof between them,
    /// and the key.
    fn honest() -> (
        SignedCheckpoint,
        SignedCheckpoint,
        Vec<HexHash>,
        VerifyingKey,
    ) {
        let mut log = Log::new();
        let first = log.event(None, true, T0);
        let second = log.event(Some(&first), false, T0 + 60_000);
        log.append(first);
        let a = log.checkpoint(T0 + 1_000);
        log.append(second);
        let b = log.checkpoint(T0 + 61_000);
        let proof = prove_consistency(&Sha256Hasher, &log.tree, TreeSize(a.size), TreeSize(b.size))
            .unwrap();
        let proof = proof.into_iter().map(HexHash).collect();
        (a, b, proof, log.key.verifying_key())
    }

    #[test]
    fn not_evidence() {
        let (a, b, proof, key) = honest();
        let of = |kind, proof| evidence(&key, kind, &a, &b, proof);
        assert_eq!(
            check(&of(Kind::SameSizeDifferentRoots, None)),
            Err(NotEvidence::KindNotShown(Kind::SameSizeDifferentRoots).into())
        );
        assert_eq!(
            check(&of(Kind::Inconsistent, None)),
            Err(NotEvidence::NoProof.into())
        );
        assert_eq!(
            check(&of(Kind::Inconsistent, Some(proof.clone()))),
            Err(NotEvidence::ProofVerifies.into())
        );
        let lie = check(&of(Kind::Inconsistent, Some(vec![HexHash([0; 32])]))).unwrap();
        assert!(lie.contains("consistency proof fails"), "{lie}");
        assert_eq!(
            compare(&key, &a.note, &b.note, Some(&proof)),
            Ok(Comparison::Consistent)
        );
        // A 32-byte string that is not a point.
        let not_a_point = (0..=255u8)
            .map(|i| [i; 32])
            .find(|k| VerifyingKey::from_bytes(k).is_err())
            .expect("some byte strings are not points");
        let mut e = of(Kind::Inconsistent, None);
        e.log_key = not_a_point;
        assert_eq!(check(&e), Err(NotEvidence::BadKey.into()));
        let mut e = of(Kind::Inconsistent, None);
        e.format = "x".into();
        assert_eq!(check(&e), Err(EvidenceError::Format("x".into())));
        assert_eq!(
            EvidenceError::from(NotEvidence::KindNotShown(Kind::Inconsistent)).to_string(),
            "the evidence does not show a lie: the checkpoints do not show Inconsistent"
        );
    }
}
