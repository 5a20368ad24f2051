//! The checks of one logged event against a verified [`Anchor`], of the link between two events
//! of one chain, and of the map's head for a key: the steps that consent proofs and histories
//! share (docs/FORMAT.md §8 and §9), and the check of an opening against its event leaf that an
//! auditor makes for every one.

use ed25519_dalek::VerifyingKey;

use crate::codec::DecodeError;
use crate::event::{subject_key, SignedEvent, SubjectKeyCache};
use crate::hash::Hash;
use crate::leaf::{EventLeaf, Leaf, LeafError};
use crate::map::{self, MapProof, MapProofError};
use crate::opening::{commitment, Opening};
use crate::reject::Reject;
use crate::rules::{check_expiry, ISSUED_AT_WINDOW_MS};
use crate::tlog::InclusionError;
use crate::vrf::{StateKeyInput, VrfError, VrfPublicKey};

use super::anchor::{check_inclusion_of, Anchor};
use super::ProvenEvent;

/// Why a logged event (with its opening) does not check out against a checkpoint, or against
/// its event leaf in an audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The leaf bytes are not an event leaf.
    #[error("leaf: {0}")]
    Leaf(#[source] LeafError),
    /// The leaf is not included at its index under the checkpoint's root.
    #[error("inclusion: {0}")]
    Inclusion(#[from] InclusionError),
    /// The opening's SignedEvent bytes do not decode strictly.
    #[error("opening: {0}")]
    Opening(#[source] DecodeError),
    /// The opening does not open the leaf's commitment.
    #[error("opening does not match the leaf's commitment")]
    Commitment,
    /// The event breaks a rule an outsider can check (version, kind, names, decision, key,
    /// signature, log, expiry).
    #[error("event: {0}")]
    Event(#[from] Reject),
    /// The leaf's key is not the state key of the event it commits to.
    #[error("leaf key is not the state key of its event")]
    StateKey,
    /// The VRF proof of the event's state key does not verify.
    #[error("state key: {0}")]
    Vrf(#[from] VrfError),
    /// The event is for another (subject, controller, purpose) than the one asked about.
    #[error("event is for another subject, controller or purpose")]
    OtherKey,
    /// The leaf's seq is not the seq the person signed.
    #[error("leaf seq {leaf} differs from the signed event's seq {event}")]
    Seq { leaf: u64, event: u64 },
    /// The ledger's time and the signer's differ by more than the window (±5 minutes).
    #[error(
        "integrated_at {} is more than 5 minutes from issued_at {}",
        crate::time::Both(*.integrated_at),
        crate::time::Both(*.issued_at)
    )]
    IssuedAt { integrated_at: u64, issued_at: u64 },
}

/// Why `next` does not directly follow `prev` in one key's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("index {next} does not follow index {prev}")]
    Index { prev: u64, next: u64 },
    #[error("leaf {next} names {named:?} as its prev, not leaf {prev}")]
    PrevIndex {
        prev: u64,
        next: u64,
        named: Option<u64>,
    },
    #[error("seq {next} does not follow seq {prev}")]
    Seq { prev: u64, next: u64 },
    #[error("prev is not the event hash of the previous event")]
    Prev,
}

/// Why a map proof does not show what a proof or history needs about the key's head.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapHeadError {
    /// A map proof is required here and there is none.
    #[error("missing map proof")]
    Missing,
    /// A map proof is given where none belongs.
    #[error("unexpected map proof")]
    Unexpected,
    /// The map proof itself does not verify against the map leaf's root.
    #[error("{0}")]
    Proof(#[from] MapProofError),
    /// The key's latest event leaf is another one than the event given.
    #[error("the key's latest event at the map leaf is index {index}, not the event given")]
    OtherEntry { index: u64 },
    /// The event given comes after the map leaf, which cannot cover it.
    #[error("event {index} comes after the map leaf {map}, which cannot cover it")]
    AfterMap { index: u64, map: u64 },
    /// The key is present, but the proof should show it absent.
    #[error("the key is present in the map, not absent")]
    Present,
    /// The key is absent, but the proof should show the event given.
    #[error("the key is absent from the map")]
    Absent,
}

/// An event of a proof or history after its own checks passed.
#[derive(Debug, Clone)]
pub struct CheckedEvent {
    pub index: u64,
    pub leaf: EventLeaf,
    pub leaf_hash: Hash,
    pub event: SignedEvent,
}

/// `integrated_at` is within [`ISSUED_AT_WINDOW_MS`] of the event's `issued_at`.
pub fn check_issued_at(leaf: &EventLeaf, event: &SignedEvent) -> Result<(), EventError> {
    if leaf.integrated_at.abs_diff(event.event.issued_at) > ISSUED_AT_WINDOW_MS {
        return Err(EventError::IssuedAt {
            integrated_at: leaf.integrated_at,
            issued_at: event.event.issued_at,
        });
    }
    Ok(())
}

/// Checks one logged event against a verified anchor: leaf decoding, inclusion, opening,
/// signature, origin, triple, state key, seq and time window (docs/FORMAT.md §8, step 4).
/// `key` is the state key of `triple`, already checked with its VRF proof.
pub fn check_event(
    pe: &ProvenEvent,
    a: &Anchor,
    key: &Hash,
    triple: &StateKeyInput<'_>,
) -> Result<CheckedEvent, EventError> {
    check_event_in(pe, a, key, triple, None)
}

/// [`check_event`], with the subject's key from `subjects` when given (a batch of proofs
/// meets a person's key in many of them).
pub fn check_event_in(
    pe: &ProvenEvent,
    a: &Anchor,
    key: &Hash,
    triple: &StateKeyInput<'_>,
    subjects: Option<&SubjectKeyCache>,
) -> Result<CheckedEvent, EventError> {
    let leaf = Leaf::decode_event(&pe.leaf).map_err(EventError::Leaf)?;
    let leaf_hash = leaf.leaf_hash();
    check_inclusion_of(&leaf_hash, pe.index, &pe.inclusion, &a.checkpoint)?;
    let event = SignedEvent::decode(&pe.opening.event).map_err(EventError::Opening)?;
    if commitment(&pe.opening.nonce, event.as_bytes()) != leaf.commitment {
        return Err(EventError::Commitment);
    }
    match subjects {
        Some(cache) => event.check_self_with(&cache.get(&event.event.subject))?,
        None => event.check_self()?,
    }
    event.check_log(&a.genesis.origin)?;
    if event.event.state_key_input() != *triple {
        return Err(EventError::OtherKey);
    }
    if &leaf.key != key {
        return Err(EventError::StateKey);
    }
    check_seq(&leaf, &event)?;
    check_issued_at(&leaf, &event)?;
    Ok(CheckedEvent {
        index: pe.index,
        leaf,
        leaf_hash,
        event,
    })
}

/// The leaf's seq is the signed event's.
fn check_seq(leaf: &EventLeaf, event: &SignedEvent) -> Result<(), EventError> {
    if leaf.seq != event.event.seq {
        return Err(EventError::Seq {
            leaf: leaf.seq,
            event: event.event.seq,
        });
    }
    Ok(())
}

/// `next` directly follows `prev` in one key's chain: its leaf names `prev`'s index, its seq
/// is one more, and the person's `prev` is `prev`'s event hash.
pub fn check_link(prev: &CheckedEvent, next: &CheckedEvent) -> Result<(), LinkError> {
    if next.index <= prev.index {
        return Err(LinkError::Index {
            prev: prev.index,
            next: next.index,
        });
    }
    if next.leaf.prev != Some(prev.index) {
        return Err(LinkError::PrevIndex {
            prev: prev.index,
            next: next.index,
            named: next.leaf.prev,
        });
    }
    let (p, n) = (&prev.event.event, &next.event.event);
    if n.seq != p.seq + 1 {
        return Err(LinkError::Seq {
            prev: p.seq,
            next: n.seq,
        });
    }
    if n.prev != Some(prev.event.event_hash()) {
        return Err(LinkError::Prev);
    }
    Ok(())
}

/// Checks that the map proof at the anchor's map leaf shows `key` present with exactly `ev`
/// (which must come before the map leaf) as its latest event (`ev` Some), or absent (`ev`
/// None).
pub fn check_map_head(
    proof: Option<&MapProof>,
    a: &Anchor,
    key: &Hash,
    ev: Option<&CheckedEvent>,
) -> Result<(), MapHeadError> {
    let proof = proof.ok_or(MapHeadError::Missing)?;
    let got = map::check(&a.map.map_root, key, proof)?;
    match (got, ev) {
        (None, None) => Ok(()),
        (Some(v), Some(e)) if v.index == e.index && v.leaf_hash == e.leaf_hash => {
            if e.index >= a.map_index {
                return Err(MapHeadError::AfterMap {
                    index: e.index,
                    map: a.map_index,
                });
            }
            Ok(())
        }
        (Some(v), Some(_)) => Err(MapHeadError::OtherEntry { index: v.index }),
        (Some(_), None) => Err(MapHeadError::Present),
        (None, Some(_)) => Err(MapHeadError::Absent),
    }
}

/// The state key of `o`'s triple, checked with its VRF proof under `vrf_key`.
pub fn opening_key(o: &Opening, vrf_key: &VrfPublicKey) -> Result<Hash, VrfError> {
    vrf_key.check_state_key(&o.event.event.state_key_input(), &o.vrf)
}

/// Checks one opening against its event leaf: commitment, state key (VRF proof), strict
/// signature, origin, seq and the issued_at window.
pub fn check_opening(
    e: &EventLeaf,
    o: &Opening,
    origin: &str,
    vrf_key: &VrfPublicKey,
) -> Result<(), EventError> {
    let state_key = opening_key(o, vrf_key);
    check_opening_given(
        e,
        o,
        origin,
        &state_key,
        &subject_key(&o.event.event.subject),
        |k| o.event.signature_valid(k),
    )
}

/// [`check_opening`] with the state key of the opening's triple already checked (an auditor
/// checks each triple's VRF proof once), the subject's key from
/// [`subject_key`](crate::event::subject_key), and the strict signature check answered by
/// `signature_ok` (from [`signatures_valid`](crate::event::signatures_valid), which checks
/// many at once); asked only when the checks before it pass.
pub fn check_opening_given(
    e: &EventLeaf,
    o: &Opening,
    origin: &str,
    state_key: &Result<Hash, VrfError>,
    key: &Result<VerifyingKey, Reject>,
    signature_ok: impl FnOnce(&VerifyingKey) -> bool,
) -> Result<(), EventError> {
    if o.commitment() != e.commitment {
        return Err(EventError::Commitment);
    }
    match state_key {
        Err(err) => return Err(EventError::Vrf(*err)),
        Ok(k) if *k != e.key => return Err(EventError::StateKey),
        Ok(_) => {}
    }
    o.event.check_self_given(key, signature_ok)?;
    o.event.check_log(origin)?;
    check_expiry(&o.event)?;
    check_seq(e, &o.event)?;
    check_issued_at(e, &o.event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ConsentEvent;
    use crate::testutil::{Log, ORIGIN, T0};
    use crate::tlog::InclusionError;

    /// The person's triple of the test log.
    fn input(subject: &[u8; 32]) -> StateKeyInput<'_> {
        StateKeyInput {
            origin: ORIGIN,
            subject,
            controller: "example.com",
            purpose: "ai-training",
        }
    }

    #[test]
    fn a_logged_event_checks_out() {
        let (mut log, key) = Log::chain_of_two();
        log.checkpoint(T0 + 120_000);
        let a = log.anchor();
        let subject = log.person.verifying_key().to_bytes();
        let tr = input(&subject);
        let first = check_event(&log.proven(1), &a, &key, &tr).unwrap();
        let second = check_event(&log.proven(2), &a, &key, &tr).unwrap();
        assert_eq!((first.index, second.index), (1, 2));
        check_link(&first, &second).unwrap();
        let head = log.map.prove(&key);
        check_map_head(Some(&head), &a, &key, Some(&second)).unwrap();
    }

    #[test]
    fn event_errors() {
        let (mut log, key) = Log::chain_of_two();
        log.checkpoint(T0 + 120_000);
        let a = log.anchor();
        let subject = log.person.verifying_key().to_bytes();
        let tr = input(&subject);
        let check = |pe: &ProvenEvent| check_event(pe, &a, &key, &tr);

        let mut pe = log.proven(1);
        pe.leaf[1] = 1;
        assert_eq!(
            check(&pe).unwrap_err(),
            EventError::Leaf(LeafError::Version {
                kind: "event",
                version: 1
            })
        );
        let mut pe = log.proven(1);
        pe.leaf = log.proven_leaf(0).leaf;
        assert_eq!(
            check(&pe).unwrap_err(),
            EventError::Leaf(LeafError::WrongKind {
                want: "event",
                got: "genesis"
            })
        );
        let mut pe = log.proven(1);
        pe.inclusion.clear();
        assert_eq!(
            check(&pe).unwrap_err(),
            EventError::Inclusion(InclusionError::WrongProofLength {
                expected: 2,
                got: 0
            })
        );
        let mut pe = log.proven(1);
        pe.opening.event.truncate(10);
        assert_eq!(
            check(&pe).unwrap_err(),
            EventError::Opening(DecodeError::SignedEventTooShort { len: 10 })
        );
        let mut pe = log.proven(1);
        pe.opening.nonce[0] ^= 1;
        assert_eq!(check(&pe).unwrap_err(), EventError::Commitment);
        assert_eq!(
            check_event(&log.proven(1), &a, &[0; 32], &tr).unwrap_err(),
            EventError::StateKey
        );
        let other = StateKeyInput {
            purpose: "ads",
            ..tr
        };
        assert_eq!(
            check_event(&log.proven(1), &a, &key, &other).unwrap_err(),
            EventError::OtherKey
        );

        // Leaves that lie about their openings.
        let (mut log, key) = Log::chain_of_two();
        let ev = log.event(None, true, T0);
        let opening = log.opening([9; 32], ev);
        let mut wrong_key = opening.leaf(T0 + 250, key, None);
        wrong_key.key[0] ^= 1;
        let i = log.append_leaf(wrong_key, opening.clone());
        let late = opening.leaf(T0 + 10 * 60_000, [3; 32], None);
        let late = EventLeaf { key, ..late };
        let j = log.append_leaf(late, opening.clone());
        let mut wrong_seq = opening.leaf(T0 + 250, key, Some(1));
        wrong_seq.seq = 1;
        let s = log.append_leaf(wrong_seq, opening.clone());
        let other_log = ConsentEvent {
            log: "other.example/log".into(),
            controller: "other.example".into(),
            ..log.event(None, true, T0).event
        }
        .sign(&log.person);
        let k = log.append(other_log);
        log.checkpoint(T0 + 3_600_000);
        let a = log.anchor();
        let subject = log.person.verifying_key().to_bytes();
        let tr = input(&subject);
        let check = |pe: &ProvenEvent| check_event(pe, &a, &key, &tr);
        assert_eq!(
            check_event(&log.proven(i), &a, &key, &tr).unwrap_err(),
            EventError::StateKey
        );
        assert_eq!(
            check(&log.proven(j)).unwrap_err(),
            EventError::IssuedAt {
                integrated_at: T0 + 600_000,
                issued_at: T0
            }
        );
        assert_eq!(
            check(&log.proven(s)).unwrap_err(),
            EventError::Seq { leaf: 1, event: 0 }
        );
        assert_eq!(
            check(&log.proven(k)).unwrap_err(),
            EventError::Event(Reject::Log {
                got: "other.example/log".into(),
                want: ORIGIN.into()
            })
        );
    }

    #[test]
    fn link_errors() {
        let (mut log, key) = Log::chain_of_two();
        log.checkpoint(T0 + 120_000);
        let anchor = log.anchor();
        let subject = log.person.verifying_key().to_bytes();
        let tr = input(&subject);
        let a = check_event(&log.proven(1), &anchor, &key, &tr).unwrap();
        let b = check_event(&log.proven(2), &anchor, &key, &tr).unwrap();
        assert_eq!(
            check_link(&b, &a),
            Err(LinkError::Index { prev: 2, next: 1 })
        );
        assert_eq!(
            check_link(&a, &a),
            Err(LinkError::Index { prev: 1, next: 1 })
        );
        let mut later = b.clone();
        later.index = 5;
        // Indices need not be adjacent: the leaf's prev says which one came before.
        check_link(&a, &later).unwrap();
        later.event.event.seq = 2;
        assert_eq!(
            check_link(&a, &later),
            Err(LinkError::Seq { prev: 0, next: 2 })
        );
        later.event.event.seq = 1;
        later.event.event.prev = Some([0; 32]);
        assert_eq!(check_link(&a, &later), Err(LinkError::Prev));
        let mut skipped = b.clone();
        skipped.leaf.prev = Some(0);
        assert_eq!(
            check_link(&a, &skipped),
            Err(LinkError::PrevIndex {
                prev: 1,
                next: 2,
                named: Some(0)
            })
        );
        assert_eq!(
            LinkError::Seq { prev: 0, next: 2 }.to_string(),
            "seq 2 does not follow seq 0"
        );
    }

    #[test]
    fn map_head_errors() {
        let (mut log, key) = Log::chain_of_two();
        log.checkpoint(T0 + 120_000);
        let anchor = log.anchor();
        let subject = log.person.verifying_key().to_bytes();
        let tr = input(&subject);
        let a = check_event(&log.proven(1), &anchor, &key, &tr).unwrap();
        let b = check_event(&log.proven(2), &anchor, &key, &tr).unwrap();
        let head = log.map.prove(&key);
        let absent_key = [0; 32];
        let absent = log.map.prove(&absent_key);
        assert_eq!(
            check_map_head(None, &anchor, &key, Some(&b)),
            Err(MapHeadError::Missing)
        );
        assert_eq!(
            check_map_head(Some(&head), &anchor, &key, Some(&a)),
            Err(MapHeadError::OtherEntry { index: 2 })
        );
        assert_eq!(
            check_map_head(Some(&head), &anchor, &key, None),
            Err(MapHeadError::Present)
        );
        assert_eq!(
            check_map_head(Some(&absent), &anchor, &absent_key, Some(&b)),
            Err(MapHeadError::Absent)
        );
        check_map_head(Some(&absent), &anchor, &absent_key, None).unwrap();
        let mut forged = head.clone();
        forged.leaf.as_mut().expect("present").index = 1;
        assert_eq!(
            check_map_head(Some(&forged), &anchor, &key, Some(&a)),
            Err(MapHeadError::Proof(MapProofError::RootMismatch))
        );
        // A map leaf that claims to cover an event after it.
        let early = Anchor {
            map_index: 2,
            ..anchor.clone()
        };
        assert_eq!(
            check_map_head(Some(&head), &early, &key, Some(&b)),
            Err(MapHeadError::AfterMap { index: 2, map: 2 })
        );
        assert_eq!(
            MapHeadError::OtherEntry { index: 1 }.to_string(),
            "the key's latest event at the map leaf is index 1, not the event given"
        );
    }
}
