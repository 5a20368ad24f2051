//! What a proof shows about witnesses (docs/FORMAT.md §19): besides the newest checkpoint the
//! log signed (which its data is checked against, and freshness judged on), a proof may carry
//! the newest checkpoint that witnesses cosigned, with an RFC 6962 consistency proof from it
//! to the signed one. Under a c2sp.org/tlog-policy the cosigned one is what trust rests on:
//!
//! 1. the cosigned note meets the policy ([`Policy::check_note`]: a log signature by a log of
//!    the policy, every known signature line valid, no cosignature dated after the verifier's
//!    clock, the quorum met), and that log key is the proof's log key;
//! 2. it is for the proof's origin, no larger than the signed checkpoint, and consistent with
//!    it (for the same size: the same root);
//! 3. the map leaf the proof rests on is dated at most [`MAP_AFTER_COSIGNATURE_MS`] after the
//!    newest cosignature that counted: the part of the log no witness has seen yet is short;
//! 4. `map_replayed` says whether a replaying witness (one that recomputed every map root,
//!    `consentlog witness --replay`) is among the cosigners. A policy names its replaying
//!    witnesses by putting them in a group whose name starts with [`REPLAY_GROUP_PREFIX`].

use std::collections::BTreeSet;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::hash::HexHash;
use super::note::{self, SignedCheckpoint};
use super::policy::{Member, Policy, PolicyCheckError};
use super::tlog::{self, Sha256Hasher, TreeSize};

/// Longest time (ms) a proof's map leaf may be dated after the newest cosignature.
pub const MAP_AFTER_COSIGNATURE_MS: u64 = 60_000;
/// Groups whose name starts with this hold replaying witnesses.
pub const REPLAY_GROUP_PREFIX: &str = "replay";

/// The cosigned checkpoint a proof carries, as JSON:
/// `{"note": "<cosigned note>", "consistency": ["<hex>", …]}`, the consistency proof from the
/// cosigned tree to the proof's signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessedJson {
    pub note: String,
    pub consistency: Vec<HexHash>,
}

/// What the witnesses showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessVerdict {
    /// The cosigned tree size.
    pub size: u64,
    /// The witnesses whose cosignatures counted, by name, with their timestamps (s).
    pub cosigners: Vec<(String, u64)>,
    /// Whether a replaying witness is among them.
    pub map_replayed: bool,
}

/// Why a proof does not meet a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    #[error("the proof carries no cosigned checkpoint, and the policy requires witnesses")]
    Missing,
    #[error("cosigned checkpoint: {0}")]
    Policy(#[from] PolicyCheckError),
    #[error(
        "the cosigned checkpoint is signed by a log of the policy, but not by this proof's log key"
    )]
    OtherLog,
    #[error("cosigned checkpoint: {0}")]
    Note(String),
    #[error("the cosigned checkpoint is for origin {cosigned:?}, the proof for {signed:?}")]
    Origin { cosigned: String, signed: String },
    #[error("the cosigned checkpoint (size {cosigned}) is larger than the signed one ({signed})")]
    Larger { cosigned: u64, signed: u64 },
    #[error("the signed checkpoint is not consistent with the cosigned one: {0}")]
    Inconsistent(String),
    #[error(
        "not witnessed recently enough: the map leaf is dated {map_time} ms, more than \
         {MAP_AFTER_COSIGNATURE_MS} ms after the newest cosignature ({cosigned} s) of the \
         checkpoint that meets the policy, so the witnesses it requires have not seen the part \
         of the log this proof rests on (one of them may be down)"
    )]
    MapTooLate { map_time: u64, cosigned: u64 },
}

/// The witnesses of `policy` that are replaying witnesses: members, directly or through
/// nested groups, of a group whose name starts with [`REPLAY_GROUP_PREFIX`].
pub fn replaying_witnesses(policy: &Policy) -> BTreeSet<usize> {
    fn collect(policy: &Policy, m: Member, out: &mut BTreeSet<usize>) {
        match m {
            Member::Witness(w) => {
                out.insert(w);
            }
            Member::Group(g) => {
                for &m in &policy.groups[g].members {
                    collect(policy, m, out);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    for (g, group) in policy.groups.iter().enumerate() {
        if group.name.starts_with(REPLAY_GROUP_PREFIX) {
            collect(policy, Member::Group(g), &mut out);
        }
    }
    out
}

/// Checks `witnessed` (the cosigned checkpoint a proof carries) under `policy` against the
/// proof's verified signed checkpoint `signed`, its log key and the time of its map leaf (ms),
/// at the verifier's clock `now` (POSIX seconds).
pub fn check_witnessed(
    policy: &Policy,
    log_key: &VerifyingKey,
    signed: &SignedCheckpoint,
    map_time: u64,
    witnessed: Option<&WitnessedJson>,
    now: u64,
) -> Result<WitnessVerdict, WitnessError> {
    let w = witnessed.ok_or(WitnessError::Missing)?;
    let (cosigned, verdict, newest) = check_cosigned(policy, log_key, &w.note, now)?;
    if cosigned.origin != signed.origin {
        return Err(WitnessError::Origin {
            cosigned: cosigned.origin,
            signed: signed.origin.clone(),
        });
    }
    if cosigned.size > signed.size {
        return Err(WitnessError::Larger {
            cosigned: cosigned.size,
            signed: signed.size,
        });
    }
    let path: Vec<_> = w.consistency.iter().map(|h| h.0).collect();
    tlog::check_consistency(
        &Sha256Hasher,
        TreeSize(cosigned.size),
        TreeSize(signed.size),
        &cosigned.root,
        &signed.root,
        &path,
    )
    .map_err(|e| WitnessError::Inconsistent(e.to_string()))?;
    if map_time
        > newest
            .saturating_mul(1000)
            .saturating_add(MAP_AFTER_COSIGNATURE_MS)
    {
        return Err(WitnessError::MapTooLate {
            map_time,
            cosigned: newest,
        });
    }
    Ok(verdict)
}

/// Checks that `cosigned_note` meets `policy` at the verifier's clock `now` (POSIX seconds)
/// and is signed by `log_key` as a log of the policy ([`Policy::check_note`]: a log signature,
/// every signature line by a known key valid, unknown lines ignored, no cosignature dated
/// after `now`, the quorum met). Returns the opened checkpoint, the verdict and the newest
/// counted cosignature's timestamp (s). Used for the cosigned checkpoint a proof carries
/// ([`check_witnessed`]) and for the checkpoint of a witnessed receipt (docs/FORMAT.md §7).
pub fn check_cosigned(
    policy: &Policy,
    log_key: &VerifyingKey,
    cosigned_note: &str,
    now: u64,
) -> Result<(SignedCheckpoint, WitnessVerdict, u64), WitnessError> {
    let checked = policy.check_note(cosigned_note.as_bytes(), now)?;
    if policy.logs[checked.log].vkey.key != *log_key {
        return Err(WitnessError::OtherLog);
    }
    let cosigned =
        note::open(cosigned_note, log_key).map_err(|e| WitnessError::Note(e.to_string()))?;
    let newest = checked.cosigned.iter().map(|&(_, t)| t).max().unwrap_or(0);
    let replaying = replaying_witnesses(policy);
    let verdict = WitnessVerdict {
        size: cosigned.size,
        map_replayed: checked.cosigned.iter().any(|(w, _)| replaying.contains(w)),
        cosigners: checked
            .cosigned
            .iter()
            .map(|&(w, t)| (policy.witnesses[w].name.clone(), t))
            .collect(),
    };
    Ok((cosigned, verdict, newest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosignature::Cosigner;
    use crate::testutil::{Log, ORIGIN, T0};
    use crate::vkey::{Vkey, TYPE_COSIGNATURE_V1, TYPE_ED25519};
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;
    use ed25519_dalek::SigningKey;
    use signed_note::Signer as _;

    struct Setup {
        log: Log,
        policy: Policy,
        witnesses: Vec<(String, SigningKey)>,
    }

    /// A log and a policy: witnesses a and b (a group of 2 of them) and replaying witness r,
    /// quorum: both groups.
    fn setup() -> Setup {
        let (log, _) = Log::chain_of_two();
        let witnesses: Vec<(String, SigningKey)> = ["w.example/a", "w.example/b", "w.example/r"]
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), SigningKey::from_bytes(&[40 + i as u8; 32])))
            .collect();
        let vk = |n: &str, k: &SigningKey, t| Vkey::new(n, t, k.verifying_key()).unwrap();
        let mut text = format!("log {}\n", vk(ORIGIN, &log.key, TYPE_ED25519).to_text());
        for (short, (n, k)) in ["a", "b", "r"].iter().zip(&witnesses) {
            text += &format!(
                "witness {short} {}\n",
                vk(n, k, TYPE_COSIGNATURE_V1).to_text()
            );
        }
        text += "group plain 2 a b\ngroup replaying 1 r\ngroup all-of all plain replaying\nquorum all-of\n";
        Setup {
            log,
            policy: Policy::parse(text.as_bytes()).unwrap(),
            witnesses,
        }
    }

    fn cosign(note: &str, who: &[(String, SigningKey)], t: u64) -> String {
        let text = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
        let mut out = note.to_string();
        for (name, key) in who {
            let c = Cosigner {
                name,
                key,
                timestamp: t,
            };
            let mut sig = c.key_id().to_be_bytes().to_vec();
            sig.extend(c.sign(text.text()).unwrap());
            out += &format!("\u{2014} {name} {}\n", B64.encode(sig));
        }
        out
    }

    fn consistency(log: &Log, old: u64, new: u64) -> Vec<HexHash> {
        tlog::prove_consistency(&Sha256Hasher, &log.tree, TreeSize(old), TreeSize(new))
            .unwrap()
            .into_iter()
            .map(HexHash)
            .collect()
    }

    #[test]
    fn a_cosigned_consistent_checkpoint_meets_the_policy() {
        let mut s = setup();
        let old = s.log.checkpoint(T0 + 60_000);
        let signed = s.log.checkpoint(T0 + 70_000);
        let t = (T0 + 61_000) / 1000;
        let w = WitnessedJson {
            note: cosign(&old.note, &s.witnesses, t),
            consistency: consistency(&s.log, old.size, signed.size),
        };
        let key = s.log.key.verifying_key();
        let v = check_witnessed(&s.policy, &key, &signed, T0 + 70_000, Some(&w), t).unwrap();
        assert_eq!(v.size, old.size);
        assert!(v.map_replayed);
        assert_eq!(v.cosigners.len(), 3);
        // Same size: no proof needed.
        let same = WitnessedJson {
            note: cosign(&signed.note, &s.witnesses, t),
            consistency: vec![],
        };
        check_witnessed(&s.policy, &key, &signed, T0 + 70_000, Some(&same), t).unwrap();

        let err = |w: &WitnessedJson, map_time, now| {
            check_witnessed(&s.policy, &key, &signed, map_time, Some(w), now).unwrap_err()
        };
        assert_eq!(
            check_witnessed(&s.policy, &key, &signed, T0, None, t),
            Err(WitnessError::Missing)
        );
        // Without the replaying witness: quorum not met.
        let plain = WitnessedJson {
            note: cosign(&old.note, &s.witnesses[..2], t),
            ..w.clone()
        };
        assert!(matches!(
            err(&plain, T0 + 70_000, t),
            WitnessError::Policy(PolicyCheckError::Quorum { .. })
        ));
        // Cosignatures from the future.
        assert!(matches!(
            err(&w, T0 + 70_000, t - 1),
            WitnessError::Policy(PolicyCheckError::FutureCosignature { .. })
        ));
        // A map leaf long after the witnesses looked.
        assert!(matches!(
            err(&w, t * 1000 + MAP_AFTER_COSIGNATURE_MS + 1, t),
            WitnessError::MapTooLate { .. }
        ));
        // A wrong consistency proof, every single-bit change of it.
        for i in 0..w.consistency.len() {
            for bit in 0..256 {
                let mut bad = w.clone();
                bad.consistency[i].0[bit / 8] ^= 1 << (bit % 8);
                assert!(matches!(
                    err(&bad, T0 + 70_000, t),
                    WitnessError::Inconsistent(_)
                ));
            }
        }
        // The signed checkpoint older than the cosigned one.
        let bigger = WitnessedJson {
            note: cosign(&signed.note, &s.witnesses, t),
            consistency: vec![],
        };
        assert!(matches!(
            check_witnessed(&s.policy, &key, &old, T0 + 60_000, Some(&bigger), t),
            Err(WitnessError::Larger { .. })
        ));
    }

    #[test]
    fn a_fork_cosigned_by_the_witnesses_does_not_vouch_for_the_other_branch() {
        let mut s = setup();
        let signed = s.log.checkpoint(T0 + 70_000);
        // Another tree of the same size under the same key.
        let forked = crate::note::Checkpoint {
            origin: &signed.origin,
            size: signed.size,
            root: [7; 32],
        }
        .sign(&s.log.key);
        let t = (T0 + 71_000) / 1000;
        let w = WitnessedJson {
            note: cosign(&forked, &s.witnesses, t),
            consistency: vec![],
        };
        let key = s.log.key.verifying_key();
        assert!(matches!(
            check_witnessed(&s.policy, &key, &signed, T0 + 70_000, Some(&w), t),
            Err(WitnessError::Inconsistent(_))
        ));
    }

    #[test]
    fn replaying_witnesses_are_the_members_of_replay_groups() {
        let s = setup();
        assert_eq!(replaying_witnesses(&s.policy), BTreeSet::from([2]));
    }
}
