//! The checks of one logged event against a verified checkpoint, of the link between two events
//! of one chain, and of the map's head for a key: the steps that consent proofs and histories
//! share (docs/FORMAT.md §8, checks 2-4, and §9), and the check of an opening against its entry
//! that an auditor makes for every entry.

use ed25519_dalek::VerifyingKey;

use crate::codec::DecodeError;
use crate::entry::{Entry, Opening};
use crate::event::{subject_key, SignedEvent};
use crate::hash::Hash;
use crate::map::{self, MapProof, MapProofError};
use crate::note::SignedCheckpoint;
use crate::reject::Reject;
use crate::rules::{check_expiry, ISSUED_AT_WINDOW_MS};
use crate::tlog::{self, Blake3Hasher, InclusionError, LeafIndex, TreeSize};

use super::ProvenEvent;

/// Why a logged event (with its opening) does not check out against a checkpoint, or against
/// its entry in an audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The entry bytes do not decode strictly.
    #[error("entry: {0}")]
    Entry(#[source] DecodeError),
    /// The entry's leaf hash is not included at its index under the checkpoint's root.
    #[error("inclusion: {0}")]
    Inclusion(#[from] InclusionError),
    /// The opening's SignedEvent bytes do not decode strictly.
    #[error("opening: {0}")]
    Opening(#[source] DecodeError),
    /// The opening does not open the entry's commitment.
    #[error("opening does not match the entry's commitment")]
    Commitment,
    /// The event breaks a rule an outsider can check (version, names, decision, key,
    /// signature, log, expiry).
    #[error("event: {0}")]
    Event(#[from] Reject),
    /// The entry's key is not the state key of the event it commits to.
    #[error("entry key is not the state key of its event")]
    StateKey,
    /// The event is for another (subject, controller, purpose) than the one asked about.
    #[error("event is for another subject, controller or purpose")]
    OtherKey,
    /// The entry was integrated after the checkpoint that is said to cover it.
    #[error("integrated_at {integrated_at} is after the checkpoint time {checkpoint_time}")]
    AfterCheckpoint {
        integrated_at: u64,
        checkpoint_time: u64,
    },
    /// The ledger's time and the signer's differ by more than the window (±5 minutes).
    #[error("integrated_at {integrated_at} is more than 5 minutes from issued_at {issued_at}")]
    IssuedAt { integrated_at: u64, issued_at: u64 },
}

/// Why `next` does not directly follow `prev` in one key's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("index {next} does not follow index {prev}")]
    Index { prev: u64, next: u64 },
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
    /// The map proof itself does not verify against the checkpoint's map root.
    #[error("{0}")]
    Proof(#[from] MapProofError),
    /// The key's latest entry is another one than the event given.
    #[error("the key's latest entry at the checkpoint is index {index}, not the event given")]
    OtherEntry { index: u64 },
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
    pub entry: Entry,
    pub leaf_hash: Hash,
    pub event: SignedEvent,
}

/// `integrated_at` is within [`ISSUED_AT_WINDOW_MS`] of the event's `issued_at`.
pub fn check_issued_at(entry: &Entry, event: &SignedEvent) -> Result<(), EventError> {
    if entry.integrated_at.abs_diff(event.event.issued_at) > ISSUED_AT_WINDOW_MS {
        return Err(EventError::IssuedAt {
            integrated_at: entry.integrated_at,
            issued_at: event.event.issued_at,
        });
    }
    Ok(())
}

/// Checks one logged event against a verified checkpoint: entry decoding, inclusion,
/// opening, signature, origin, state key and time window (docs/FORMAT.md check 2).
pub fn check_event(
    pe: &ProvenEvent,
    cp: &SignedCheckpoint,
    key: &Hash,
) -> Result<CheckedEvent, EventError> {
    let entry = Entry::decode(&pe.entry).map_err(EventError::Entry)?;
    let leaf_hash = entry.leaf_hash();
    let path: Vec<Hash> = pe.inclusion.iter().map(|h| h.0).collect();
    tlog::check_inclusion(
        &Blake3Hasher,
        LeafIndex(pe.index),
        TreeSize(cp.size),
        &leaf_hash,
        &path,
        &cp.root,
    )?;
    let event = SignedEvent::decode(&pe.opening.event).map_err(EventError::Opening)?;
    let opening = Opening {
        nonce: pe.opening.nonce,
        event,
    };
    if opening.commitment() != entry.commitment {
        return Err(EventError::Commitment);
    }
    let event = opening.event;
    event.check_self()?;
    event.check_log(&cp.origin)?;
    if entry.key != event.event.state_key() {
        return Err(EventError::StateKey);
    }
    if &entry.key != key {
        return Err(EventError::OtherKey);
    }
    if entry.integrated_at > cp.time {
        return Err(EventError::AfterCheckpoint {
            integrated_at: entry.integrated_at,
            checkpoint_time: cp.time,
        });
    }
    check_issued_at(&entry, &event)?;
    Ok(CheckedEvent {
        index: pe.index,
        entry,
        leaf_hash,
        event,
    })
}

/// `next` directly follows `prev` in one key's chain.
pub fn check_link(prev: &CheckedEvent, next: &CheckedEvent) -> Result<(), LinkError> {
    if next.index <= prev.index {
        return Err(LinkError::Index {
            prev: prev.index,
            next: next.index,
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

/// Checks that the map proof shows `key` present with exactly `ev` as its latest entry
/// (`ev` Some) or absent (`ev` None).
pub fn check_map_head(
    proof: Option<&MapProof>,
    cp: &SignedCheckpoint,
    key: &Hash,
    ev: Option<&CheckedEvent>,
) -> Result<(), MapHeadError> {
    let proof = proof.ok_or(MapHeadError::Missing)?;
    let got = map::check(&cp.map_root, key, proof)?;
    match (got, ev) {
        (None, None) => Ok(()),
        (Some(v), Some(e)) if v.index == e.index && v.leaf_hash == e.leaf_hash => Ok(()),
        (Some(v), Some(_)) => Err(MapHeadError::OtherEntry { index: v.index }),
        (Some(_), None) => Err(MapHeadError::Present),
        (None, Some(_)) => Err(MapHeadError::Absent),
    }
}

/// Checks one opening against its entry: commitment, key, strict signature, origin and the
/// issued_at window.
pub fn check_opening(e: &Entry, o: &Opening, origin: &str) -> Result<(), EventError> {
    check_opening_with(e, o, origin, &subject_key(&o.event.event.subject))
}

/// [`check_opening`] with the subject's key from [`subject_key`](crate::event::subject_key).
pub fn check_opening_with(
    e: &Entry,
    o: &Opening,
    origin: &str,
    key: &Result<VerifyingKey, Reject>,
) -> Result<(), EventError> {
    check_opening_given(e, o, origin, key, |k| o.event.signature_valid(k))
}

/// [`check_opening_with`], with the strict signature check answered by `signature_ok` (from
/// [`signatures_valid`](crate::event::signatures_valid), which checks many at once); asked only when the checks before it pass.
pub fn check_opening_given(
    e: &Entry,
    o: &Opening,
    origin: &str,
    key: &Result<VerifyingKey, Reject>,
    signature_ok: impl FnOnce(&VerifyingKey) -> bool,
) -> Result<(), EventError> {
    if o.commitment() != e.commitment {
        return Err(EventError::Commitment);
    }
    if o.event.event.state_key() != e.key {
        return Err(EventError::StateKey);
    }
    o.event.check_self_given(key, signature_ok)?;
    o.event.check_log(origin)?;
    check_expiry(&o.event)?;
    check_issued_at(e, &o.event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::DecodeError;
    use crate::event::ConsentEvent;
    use crate::testutil::{Log, ORIGIN, T0};
    use crate::tlog::InclusionError;

    #[test]
    fn a_logged_event_checks_out() {
        let (log, key) = Log::chain_of_two();
        let cp = log.checkpoint(T0 + 120_000);
        let a = check_event(&log.proven(0), &cp, &key).unwrap();
        let b = check_event(&log.proven(1), &cp, &key).unwrap();
        assert_eq!((a.index, b.index), (0, 1));
        check_link(&a, &b).unwrap();
        let head = log.map.prove(&key);
        check_map_head(Some(&head), &cp, &key, Some(&b)).unwrap();
    }

    #[test]
    fn event_errors() {
        let (mut log, key) = Log::chain_of_two();
        let cp = log.checkpoint(T0 + 120_000);
        let check = |pe: &ProvenEvent, cp: &SignedCheckpoint| check_event(pe, cp, &key);

        let mut pe = log.proven(0);
        pe.entry[0] = 2;
        assert_eq!(
            check(&pe, &cp).unwrap_err(),
            EventError::Entry(DecodeError::EntryVersion(2))
        );
        let mut pe = log.proven(0);
        pe.inclusion.clear();
        assert_eq!(
            check(&pe, &cp).unwrap_err(),
            EventError::Inclusion(InclusionError::WrongProofLength {
                expected: 1,
                got: 0
            })
        );
        let mut pe = log.proven(0);
        pe.opening.event.truncate(10);
        assert_eq!(
            check(&pe, &cp).unwrap_err(),
            EventError::Opening(DecodeError::SignedEventTooShort { len: 10 })
        );
        let mut pe = log.proven(0);
        pe.opening.nonce[0] ^= 1;
        assert_eq!(check(&pe, &cp).unwrap_err(), EventError::Commitment);
        assert_eq!(
            check_event(&log.proven(0), &cp, &[0; 32]).unwrap_err(),
            EventError::OtherKey
        );
        // The checkpoint is older than the entries it is said to cover.
        let early = log.checkpoint(T0);
        assert_eq!(
            check(&log.proven(0), &early).unwrap_err(),
            EventError::AfterCheckpoint {
                integrated_at: T0 + 250,
                checkpoint_time: T0
            }
        );

        // Entries that lie about their openings.
        let ev = log.event(None, true, T0);
        let opening = Opening {
            nonce: [9; 32],
            event: ev,
        };
        let mut wrong_key = opening.entry(T0 + 250);
        wrong_key.key = key;
        wrong_key.key[0] ^= 1;
        let i = log.append_entry(wrong_key, opening.clone());
        let late = opening.entry(T0 + 10 * 60_000);
        let j = log.append_entry(late, opening.clone());
        let other_log = ConsentEvent {
            log: "other.example/log".into(),
            ..log.event(None, true, T0).event
        }
        .sign(&log.person);
        let k = log.append(other_log);
        let cp = log.checkpoint(T0 + 3_600_000);
        assert_eq!(
            check_event(&log.proven(i), &cp, &wrong_key.key).unwrap_err(),
            EventError::StateKey
        );
        assert_eq!(
            check(&log.proven(j), &cp).unwrap_err(),
            EventError::IssuedAt {
                integrated_at: T0 + 600_000,
                issued_at: T0
            }
        );
        assert_eq!(
            check(&log.proven(k), &cp).unwrap_err(),
            EventError::Event(Reject::Log {
                got: "other.example/log".into(),
                want: ORIGIN.into()
            })
        );
    }

    #[test]
    fn link_errors() {
        let (log, key) = Log::chain_of_two();
        let cp = log.checkpoint(T0 + 120_000);
        let a = check_event(&log.proven(0), &cp, &key).unwrap();
        let b = check_event(&log.proven(1), &cp, &key).unwrap();
        assert_eq!(
            check_link(&b, &a),
            Err(LinkError::Index { prev: 1, next: 0 })
        );
        assert_eq!(
            check_link(&a, &a),
            Err(LinkError::Index { prev: 0, next: 0 })
        );
        let mut later = b.clone();
        later.index = 5;
        later.event.event.seq = 2;
        assert_eq!(
            check_link(&a, &later),
            Err(LinkError::Seq { prev: 0, next: 2 })
        );
        later.event.event.seq = 1;
        later.event.event.prev = Some([0; 32]);
        assert_eq!(check_link(&a, &later), Err(LinkError::Prev));
        assert_eq!(
            LinkError::Seq { prev: 0, next: 2 }.to_string(),
            "seq 2 does not follow seq 0"
        );
    }

    #[test]
    fn map_head_errors() {
        let (log, key) = Log::chain_of_two();
        let cp = log.checkpoint(T0 + 120_000);
        let a = check_event(&log.proven(0), &cp, &key).unwrap();
        let b = check_event(&log.proven(1), &cp, &key).unwrap();
        let head = log.map.prove(&key);
        let absent_key = [0; 32];
        let absent = log.map.prove(&absent_key);
        assert_eq!(
            check_map_head(None, &cp, &key, Some(&b)),
            Err(MapHeadError::Missing)
        );
        assert_eq!(
            check_map_head(Some(&head), &cp, &key, Some(&a)),
            Err(MapHeadError::OtherEntry { index: 1 })
        );
        assert_eq!(
            check_map_head(Some(&head), &cp, &key, None),
            Err(MapHeadError::Present)
        );
        assert_eq!(
            check_map_head(Some(&absent), &cp, &absent_key, Some(&b)),
            Err(MapHeadError::Absent)
        );
        check_map_head(Some(&absent), &cp, &absent_key, None).unwrap();
        let mut forged = head.clone();
        forged.leaf.as_mut().expect("present").index = 0;
        assert_eq!(
            check_map_head(Some(&forged), &cp, &key, Some(&a)),
            Err(MapHeadError::Proof(MapProofError::RootMismatch))
        );
        assert_eq!(
            MapHeadError::OtherEntry { index: 1 }.to_string(),
            "the key's latest entry at the checkpoint is index 1, not the event given"
        );
    }
}
