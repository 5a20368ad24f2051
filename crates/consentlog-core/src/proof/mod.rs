//! Consent proofs: offline evidence of the state of one (subject, controller, purpose) at a
//! time T, checkable with the log's public key alone (docs/FORMAT.md, "ConsentProof").
//!
//! [`check`] performs the verification of docs/FORMAT.md §"Verifying a consent proof" in
//! order; the first failing check is the reason given.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::event::{check_name, ConsentEvent, Decision};
use crate::hash::{hex_array, hex_bytes, to_hex, HexHash};
use crate::note::{self, NoteError, SignedCheckpoint};
use crate::opening::Opening;
use crate::text::NameError;
use crate::vrf::{StateKeyInput, VrfError, VrfProof, VrfPublicKey, PROOF_LEN};

pub mod anchor;
pub mod known;
pub mod logged_event;

pub use anchor::{check_anchor, Anchor, AnchorError, ProvenLeaf};
pub use known::Known;

pub use logged_event::{
    check_event, check_event_in, check_issued_at, check_link, check_map_head, CheckedEvent,
    EventError, LinkError, MapHeadError,
};

/// The `format` string of a consent proof.
pub const PROOF_FORMAT: &str = "consentlog-proof/v2";
/// How far past a verifier's own clock a question's `at` may be.
pub const FUTURE_WINDOW_MS: u64 = 5 * 60 * 1000;

/// Declares a strict JSON struct with the given leading fields, then the fields of every
/// consent proof in their order: `subject, controller, purpose, at, events, map, state` (a
/// [`ConsentProof`], and a proof line of a batch, which leaves out its first two fields).
macro_rules! consent_proof_struct {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            #[serde(with = "crate::hash::hex_array")]
            pub subject: [u8; 32],
            pub controller: String,
            pub purpose: String,
            /// The VRF proof that the state key is the one of (origin, subject, controller,
            /// purpose) (docs/FORMAT.md §17.1).
            #[serde(with = "crate::hash::hex_array")]
            pub vrf_proof: [u8; crate::vrf::PROOF_LEN],
            pub at: u64,
            pub events: Vec<crate::proof::ProvenEvent>,
            /// Required, as null when absent.
            #[serde(deserialize_with = "Option::deserialize")]
            pub map: Option<crate::map::MapProof>,
            pub state: String,
        }
    };
}
pub(crate) use consent_proof_struct;

consent_proof_struct! {
    /// A consent proof as JSON.
    pub struct ConsentProof {
        pub format: String,
        pub checkpoint: String,
        pub genesis: crate::proof::ProvenLeaf,
        pub map_leaf: crate::proof::ProvenLeaf,
        /// The newest checkpoint witnesses cosigned, when the log has one (§19).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub witnessed: Option<crate::witnessed::WitnessedJson>,
    }
}

/// One event leaf with its opening and inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenEvent {
    pub index: u64,
    #[serde(with = "hex_bytes")]
    pub leaf: Vec<u8>,
    pub opening: OpeningJson,
    pub inclusion: Vec<HexHash>,
}

/// An opening as JSON: the nonce and the exact SignedEvent bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpeningJson {
    #[serde(with = "hex_array")]
    pub nonce: [u8; 32],
    #[serde(with = "hex_bytes")]
    pub event: Vec<u8>,
}

impl From<&Opening> for OpeningJson {
    fn from(o: &Opening) -> Self {
        OpeningJson {
            nonce: o.nonce,
            event: o.event.as_bytes().to_vec(),
        }
    }
}

/// The state of a triple at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    OptedIn,
    Expired,
    OptedOut,
    NoRecord,
    /// Reserved for the erasure events of a later version; never produced by this one.
    Erased,
}

impl State {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            State::OptedIn => "opted_in",
            State::Expired => "expired",
            State::OptedOut => "opted_out",
            State::NoRecord => "no_record",
            State::Erased => "erased",
        }
    }

    /// Whether consent held: opted in, or with `default_allow` anything but an opt-out.
    pub fn held(self, default_allow: bool) -> bool {
        match self {
            State::OptedIn => true,
            State::OptedOut | State::Erased => false,
            State::Expired | State::NoRecord => default_allow,
        }
    }
}

/// The state at `at` given the event in force then (None: no record).
pub fn state_at(in_force: Option<&ConsentEvent>, at: u64) -> State {
    match in_force {
        None => State::NoRecord,
        Some(e) => match e.decision() {
            Some(Decision::OptIn) => match e.expires_at {
                Some(x) if at >= x => State::Expired,
                _ => State::OptedIn,
            },
            _ => State::OptedOut,
        },
    }
}

/// The question a verifier wants answered; None fields are taken from the proof.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Question {
    pub subject: Option<[u8; 32]>,
    pub controller: Option<String>,
    pub purpose: Option<String>,
    pub at: Option<u64>,
    /// The verifier's own clock (ms): a question about more than 5 minutes after it is
    /// refused, since no honest log has a map leaf that late.
    pub now: Option<u64>,
}

/// Why a proof is invalid; each names the check of docs/FORMAT.md that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("unknown proof format {0:?}")]
    Format(String),
    #[error("proof answers a different question: {0}")]
    Question(#[from] QuestionError),
    #[error("bad {0}")]
    Name(#[from] NameError),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    #[error("{0}")]
    Anchor(#[from] AnchorError),
    #[error("state key: {0}")]
    Vrf(#[from] VrfError),
    #[error(
        "the asked time {} is before the log's genesis {}",
        crate::time::Both(*.at),
        crate::time::Both(*.genesis_time)
    )]
    BeforeGenesis { at: u64, genesis_time: u64 },
    #[error(
        "the map leaf's time {} is before the asked time {}",
        crate::time::Both(*.time),
        crate::time::Both(*.at)
    )]
    MapTooOld { time: u64, at: u64 },
    #[error(
        "the asked time {} is more than 5 minutes past this verifier's clock {}",
        crate::time::Both(*.at),
        crate::time::Both(*.now)
    )]
    Future { at: u64, now: u64 },
    #[error("a proof holds at most two events, this one has {0}")]
    TooManyEvents(usize),
    /// Event `pos` (0 or 1) of the proof fails its own checks.
    #[error("event {pos}: {reason}")]
    Event {
        pos: usize,
        #[source]
        reason: EventError,
    },
    #[error("events: {0}")]
    Chain(#[from] ChainError),
    #[error("map proof: {0}")]
    Map(#[from] MapHeadError),
    #[error("state field says {claimed:?} but the proof shows {actual:?}")]
    StateMismatch { claimed: String, actual: String },
}

/// How a proof answers another question than the one asked ([`ProofError::Question`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuestionError {
    #[error("subject is {}, expected {}", to_hex(.got), to_hex(.want))]
    Subject { want: [u8; 32], got: [u8; 32] },
    #[error("controller is {got}, expected {want}")]
    Controller { want: String, got: String },
    #[error("purpose is {got}, expected {want}")]
    Purpose { want: String, got: String },
    #[error("at is {got}, expected {want}")]
    At { want: u64, got: u64 },
    /// The checkpoint opened beforehand is not the proof's (bulk verification).
    #[error("checkpoint differs from the proof's")]
    Checkpoint,
}

/// Why the events of a proof do not fit together or with `at` ([`ProofError::Chain`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The second event does not directly follow the first.
    #[error("{0}")]
    Link(#[from] LinkError),
    /// The first event is after `at`, so the proof must hold only the key's first event.
    #[error(
        "no event is in force at `at`, so the proof must give only the key's first event \
         (seq 0)"
    )]
    NotFirst,
    /// The successor of the event in force was integrated at or before `at`.
    #[error(
        "the successor was integrated at {}, not after `at` {}",
        crate::time::Both(*.integrated_at),
        crate::time::Both(*.at)
    )]
    SuccessorNotAfter { integrated_at: u64, at: u64 },
}

/// The state key of `triple` under the log's VRF key (from the genesis leaf), checked with
/// `proof`.
pub fn state_key(
    anchor: &Anchor,
    triple: &StateKeyInput<'_>,
    proof: &[u8; PROOF_LEN],
) -> Result<crate::hash::Hash, VrfError> {
    VrfPublicKey::from_bytes(anchor.genesis.vrf_key)?.check_state_key(triple, &VrfProof(*proof))
}

/// What a valid proof shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub state: State,
    pub checkpoint: SignedCheckpoint,
    /// The map leaf the answer rests on (its index and time).
    pub map_index: u64,
    pub map_time: u64,
}

fn check_question(p: &ConsentProof, q: &Question) -> Result<(), QuestionError> {
    if let Some(want) = q.subject.filter(|s| *s != p.subject) {
        return Err(QuestionError::Subject {
            want,
            got: p.subject,
        });
    }
    if let Some(c) = q.controller.as_ref().filter(|c| **c != p.controller) {
        return Err(QuestionError::Controller {
            want: c.clone(),
            got: p.controller.clone(),
        });
    }
    if let Some(pp) = q.purpose.as_ref().filter(|pp| **pp != p.purpose) {
        return Err(QuestionError::Purpose {
            want: pp.clone(),
            got: p.purpose.clone(),
        });
    }
    if let Some(want) = q.at.filter(|at| *at != p.at) {
        return Err(QuestionError::At { want, got: p.at });
    }
    Ok(())
}

/// Verifies `p` under the log key and returns the state it shows, in the order of
/// docs/FORMAT.md §8 "Verifying a consent proof".
pub fn check(
    p: &ConsentProof,
    log_key: &VerifyingKey,
    q: &Question,
) -> Result<Verdict, ProofError> {
    if p.format != PROOF_FORMAT {
        return Err(ProofError::Format(p.format.clone()));
    }
    check_question(p, q)?;
    let cp = note::open(&p.checkpoint, log_key)?;
    let anchor = check_anchor(cp, &p.genesis, &p.map_leaf)?;
    check_with_anchor(p, &anchor, q)
}

/// [`check`] with the checkpoint, genesis and map leaf already checked (bulk verification
/// checks a shared anchor once); `p` must carry exactly that anchor.
pub fn check_with_anchor(
    p: &ConsentProof,
    anchor: &Anchor,
    q: &Question,
) -> Result<Verdict, ProofError> {
    check_with_anchor_in(p, anchor, q, None)
}

/// [`check_with_anchor`], with what the calls sharing `known` have in common checked once: the
/// VRF proof of each triple (a batch of proofs often asks about one triple at several times),
/// each subject's key and the log's VRF key.
pub fn check_with_anchor_keys(
    p: &ConsentProof,
    anchor: &Anchor,
    q: &Question,
    known: &Known,
) -> Result<Verdict, ProofError> {
    check_with_anchor_in(p, anchor, q, Some(known))
}

fn check_with_anchor_in(
    p: &ConsentProof,
    anchor: &Anchor,
    q: &Question,
    known: Option<&Known>,
) -> Result<Verdict, ProofError> {
    if p.format != PROOF_FORMAT {
        return Err(ProofError::Format(p.format.clone()));
    }
    check_question(p, q)?;
    check_name("controller", &p.controller)?;
    check_name("purpose", &p.purpose)?;
    if anchor.checkpoint.note != p.checkpoint
        || p.map_leaf.index != anchor.map_index
        || p.map_leaf.leaf != anchor.map.to_bytes()
        || p.genesis.leaf != anchor.genesis.to_bytes()
    {
        return Err(QuestionError::Checkpoint.into());
    }
    let at = p.at;
    if at < anchor.genesis.genesis_time {
        return Err(ProofError::BeforeGenesis {
            at,
            genesis_time: anchor.genesis.genesis_time,
        });
    }
    if anchor.map.time < at {
        return Err(ProofError::MapTooOld {
            time: anchor.map.time,
            at,
        });
    }
    if let Some(now) = q
        .now
        .filter(|now| at > now.saturating_add(FUTURE_WINDOW_MS))
    {
        return Err(ProofError::Future { at, now });
    }
    if p.events.len() > 2 {
        return Err(ProofError::TooManyEvents(p.events.len()));
    }
    let triple = StateKeyInput {
        origin: &anchor.genesis.origin,
        subject: &p.subject,
        controller: &p.controller,
        purpose: &p.purpose,
    };
    let key = match known {
        None => state_key(anchor, &triple, &p.vrf_proof)?,
        Some(k) => k.state_keys.check_lazy(
            || k.vrf_key(anchor.genesis.vrf_key),
            &triple.alpha(),
            &VrfProof(p.vrf_proof),
        )?,
    };
    let mut evs = Vec::with_capacity(p.events.len());
    for (pos, pe) in p.events.iter().enumerate() {
        let ev = check_event_in(pe, anchor, &key, &triple, known.map(|k| &k.subjects))
            .map_err(|reason| ProofError::Event { pos, reason })?;
        evs.push(ev);
    }
    if let [a, b] = &evs[..] {
        check_link(a, b).map_err(ChainError::Link)?;
    }
    let in_force = match &evs[..] {
        // (c) K absent from the map at m, which covers every event up to t_m >= at.
        [] => {
            check_map_head(p.map.as_ref(), anchor, &key, None)?;
            None
        }
        // (d) K's first event came after `at`.
        [first, ..] if first.leaf.integrated_at > at => {
            if evs.len() != 1 || first.leaf.seq != 0 {
                return Err(ChainError::NotFirst.into());
            }
            if p.map.is_some() {
                return Err(MapHeadError::Unexpected.into());
            }
            None
        }
        // (b) the map at m shows this event as K's latest.
        [first] => {
            check_map_head(p.map.as_ref(), anchor, &key, Some(first))?;
            Some(first)
        }
        // (a) its direct successor came after `at`.
        [first, second] => {
            if second.leaf.integrated_at <= at {
                return Err(ChainError::SuccessorNotAfter {
                    integrated_at: second.leaf.integrated_at,
                    at,
                }
                .into());
            }
            if p.map.is_some() {
                return Err(MapHeadError::Unexpected.into());
            }
            Some(first)
        }
        _ => unreachable!("at most two events"),
    };
    let state = state_at(in_force.map(|e| &e.event.event), at);
    if p.state != state.as_str() {
        return Err(ProofError::StateMismatch {
            claimed: p.state.clone(),
            actual: state.as_str().into(),
        });
    }
    Ok(Verdict {
        state,
        checkpoint: anchor.checkpoint.clone(),
        map_index: anchor.map_index,
        map_time: anchor.map.time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::MapProof;
    use crate::testutil::{Log, T0};

    /// A proof of the chain (opt-in at T0, opt-out a minute later) at `at`, valid when `at` is
    /// between the two, with the log key.
    fn fixture() -> (ConsentProof, VerifyingKey) {
        let (mut log, _) = Log::chain_of_two();
        let cp = log.checkpoint(T0 + 120_000);
        let p = ConsentProof {
            format: PROOF_FORMAT.into(),
            checkpoint: cp.note,
            genesis: log.proven_leaf(0),
            map_leaf: log.proven_leaf(log.last_map()),
            witnessed: None,
            subject: log.person.verifying_key().to_bytes(),
            controller: "example.com".into(),
            purpose: "ai-training".into(),
            vrf_proof: log.person_key().1 .0,
            at: T0 + 1_000,
            events: vec![log.proven(1), log.proven(2)],
            map: None,
            state: "opted_in".into(),
        };
        (p, log.key.verifying_key())
    }

    fn err(p: &ConsentProof, key: &VerifyingKey, q: &Question) -> ProofError {
        check(p, key, q).expect_err("invalid")
    }

    #[test]
    fn proof_errors() {
        let (p, key) = fixture();
        let none = Question::default();
        assert_eq!(check(&p, &key, &none).unwrap().state, State::OptedIn);

        let q = Question {
            subject: Some([1; 32]),
            ..Question::default()
        };
        assert_eq!(
            err(&p, &key, &q),
            ProofError::Question(QuestionError::Subject {
                want: [1; 32],
                got: p.subject
            })
        );
        for (q, want) in [
            (
                Question {
                    controller: Some("c".into()),
                    ..Question::default()
                },
                QuestionError::Controller {
                    want: "c".into(),
                    got: "example.com".into(),
                },
            ),
            (
                Question {
                    purpose: Some("p".into()),
                    ..Question::default()
                },
                QuestionError::Purpose {
                    want: "p".into(),
                    got: "ai-training".into(),
                },
            ),
            (
                Question {
                    at: Some(5),
                    ..Question::default()
                },
                QuestionError::At {
                    want: 5,
                    got: T0 + 1_000,
                },
            ),
        ] {
            assert_eq!(err(&p, &key, &q), ProofError::Question(want));
        }
        assert_eq!(
            QuestionError::At { want: 5, got: 6 }.to_string(),
            "at is 6, expected 5"
        );
        let cp = note::open(&p.checkpoint, &key).unwrap();
        let anchor = check_anchor(cp, &p.genesis, &p.map_leaf).unwrap();
        let mut other = p.clone();
        other.checkpoint.push('\n');
        assert_eq!(
            check_with_anchor(&other, &anchor, &none).unwrap_err(),
            ProofError::Question(QuestionError::Checkpoint)
        );
        let mut other = p.clone();
        other.map_leaf.index -= 1;
        assert_eq!(
            check_with_anchor(&other, &anchor, &none).unwrap_err(),
            ProofError::Question(QuestionError::Checkpoint)
        );

        let mut bad = p.clone();
        bad.format = "x".into();
        assert_eq!(err(&bad, &key, &none), ProofError::Format("x".into()));
        let mut bad = p.clone();
        bad.purpose = "Ads".into();
        assert!(matches!(
            err(&bad, &key, &none),
            ProofError::Name(NameError::Character { c: 'A', .. })
        ));
        let mut bad = p.clone();
        bad.checkpoint.clear();
        assert!(matches!(
            err(&bad, &key, &none),
            ProofError::Checkpoint(NoteError::Malformed(_))
        ));
        let mut bad = p.clone();
        bad.at = T0 + 200_000;
        assert_eq!(
            err(&bad, &key, &none),
            ProofError::MapTooOld {
                time: T0 + 120_000,
                at: T0 + 200_000
            }
        );
        let mut bad = p.clone();
        bad.at = T0 - 120_000;
        assert_eq!(
            err(&bad, &key, &none),
            ProofError::BeforeGenesis {
                at: T0 - 120_000,
                genesis_time: T0 - 60_000
            }
        );
        let late = Question {
            now: Some(T0 + 1_000 - FUTURE_WINDOW_MS - 1),
            ..Question::default()
        };
        assert_eq!(
            err(&p, &key, &late),
            ProofError::Future {
                at: T0 + 1_000,
                now: T0 + 1_000 - FUTURE_WINDOW_MS - 1
            }
        );
        let on_time = Question {
            now: Some(T0 + 1_000 - FUTURE_WINDOW_MS),
            ..Question::default()
        };
        check(&p, &key, &on_time).unwrap();
        let mut bad = p.clone();
        bad.map_leaf = bad.genesis.clone();
        assert!(matches!(
            err(&bad, &key, &none),
            ProofError::Anchor(AnchorError::Map(_))
        ));
        let mut bad = p.clone();
        bad.events.push(bad.events[0].clone());
        assert_eq!(err(&bad, &key, &none), ProofError::TooManyEvents(3));
        let mut bad = p.clone();
        bad.events[1].opening.nonce[0] ^= 1;
        assert_eq!(
            err(&bad, &key, &none),
            ProofError::Event {
                pos: 1,
                reason: EventError::Commitment
            }
        );
        let mut bad = p.clone();
        bad.events.swap(0, 1);
        assert_eq!(
            err(&bad, &key, &none),
            ProofError::Chain(ChainError::Link(LinkError::Index { prev: 2, next: 1 }))
        );
        let mut bad = p.clone();
        bad.at = T0;
        assert_eq!(
            err(&bad, &key, &none),
            ProofError::Chain(ChainError::NotFirst)
        );
        let mut bad = p.clone();
        bad.at = T0 + 100_000;
        assert_eq!(
            err(&bad, &key, &none),
            ProofError::Chain(ChainError::SuccessorNotAfter {
                integrated_at: T0 + 60_250,
                at: T0 + 100_000
            })
        );
        let mut bad = p.clone();
        bad.map = Some(MapProof {
            leaf: None,
            siblings: vec![],
        });
        assert_eq!(
            err(&bad, &key, &none),
            ProofError::Map(MapHeadError::Unexpected)
        );
        let mut bad = p.clone();
        bad.events.truncate(1);
        assert_eq!(
            err(&bad, &key, &none),
            ProofError::Map(MapHeadError::Missing)
        );
        let mut bad = p.clone();
        bad.state = "opted_out".into();
        assert_eq!(
            err(&bad, &key, &none),
            ProofError::StateMismatch {
                claimed: "opted_out".into(),
                actual: "opted_in".into()
            }
        );
        // The texts the CLI prints stay as they were.
        assert_eq!(
            ProofError::Map(MapHeadError::Unexpected).to_string(),
            "map proof: unexpected map proof"
        );
        assert_eq!(
            ProofError::Chain(ChainError::NotFirst).to_string(),
            "events: no event is in force at `at`, so the proof must give only the key's \
             first event (seq 0)"
        );
    }
}
