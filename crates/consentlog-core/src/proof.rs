//! Consent proofs: offline evidence of the state of one (subject, controller, purpose) at a
//! time T, checkable with the log's public key alone (docs/FORMAT.md, "ConsentProof").
//!
//! [`check`] performs the verification of docs/FORMAT.md §"Verifying a consent proof" in
//! order; the first failing check is the reason given.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::entry::{Entry, Opening};
use super::event::{check_name, state_key, ConsentEvent, Decision, SignedEvent};
use super::hash::{hex_array, hex_bytes, to_hex, Hash, HexHash};
use super::map::{self, MapProof};
use super::note::{self, NoteError, SignedCheckpoint};
use super::rules::ISSUED_AT_WINDOW_MS;
use super::tlog::{self, Blake3Hasher, LeafIndex, TreeSize};

/// The `format` string of a consent proof.
pub const PROOF_FORMAT: &str = "consentlog-proof/v1";

/// A consent proof as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentProof {
    pub format: String,
    pub checkpoint: String,
    #[serde(with = "hex_array")]
    pub subject: [u8; 32],
    pub controller: String,
    pub purpose: String,
    pub at: u64,
    pub events: Vec<ProvenEvent>,
    /// Required, as null when absent.
    #[serde(deserialize_with = "Option::deserialize")]
    pub map: Option<MapProof>,
    pub state: String,
}

/// One logged event with its opening and inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenEvent {
    pub index: u64,
    #[serde(with = "hex_bytes")]
    pub entry: Vec<u8>,
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
}

impl State {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            State::OptedIn => "opted_in",
            State::Expired => "expired",
            State::OptedOut => "opted_out",
            State::NoRecord => "no_record",
        }
    }

    /// Whether consent held: opted in, or with `default_allow` anything but an opt-out.
    pub fn held(self, default_allow: bool) -> bool {
        match self {
            State::OptedIn => true,
            State::OptedOut => false,
            _ => default_allow,
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
}

/// Why a proof is invalid; each names the check of docs/FORMAT.md that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("unknown proof format {0:?}")]
    Format(String),
    #[error("proof answers a different question: {0}")]
    Question(String),
    #[error("bad {0}")]
    Name(String),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    #[error("checkpoint time {time} is before the asked time {at}")]
    CheckpointTooOld { time: u64, at: u64 },
    #[error("a proof holds at most two events, this one has {0}")]
    TooManyEvents(usize),
    #[error("event {pos}: {reason}")]
    Event { pos: usize, reason: String },
    #[error("events: {0}")]
    Chain(String),
    #[error("map proof: {0}")]
    Map(String),
    #[error("state field says {claimed:?} but the proof shows {actual:?}")]
    StateMismatch { claimed: String, actual: String },
}

/// What a valid proof shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub state: State,
    pub checkpoint: SignedCheckpoint,
}

/// An event of a proof or history after its own checks passed.
#[derive(Debug, Clone)]
pub struct CheckedEvent {
    pub index: u64,
    pub entry: Entry,
    pub leaf_hash: Hash,
    pub event: SignedEvent,
}

/// Checks one logged event against a verified checkpoint: entry decoding, inclusion,
/// opening, signature, origin, state key and time window (docs/FORMAT.md check 2).
pub fn check_event(
    pe: &ProvenEvent,
    cp: &SignedCheckpoint,
    key: &Hash,
) -> Result<CheckedEvent, String> {
    let entry = Entry::decode(&pe.entry).map_err(|e| format!("entry: {e}"))?;
    let leaf_hash = entry.leaf_hash();
    let path: Vec<Hash> = pe.inclusion.iter().map(|h| h.0).collect();
    tlog::check_inclusion(
        &Blake3Hasher,
        LeafIndex(pe.index),
        TreeSize(cp.size),
        &leaf_hash,
        &path,
        &cp.root,
    )
    .map_err(|e| format!("inclusion: {e}"))?;
    let event = SignedEvent::decode(&pe.opening.event).map_err(|e| format!("opening: {e}"))?;
    let opening = Opening {
        nonce: pe.opening.nonce,
        event,
    };
    if opening.commitment() != entry.commitment {
        return Err("opening does not match the entry's commitment".into());
    }
    let event = opening.event;
    event.check_self().map_err(|e| format!("event: {e}"))?;
    event
        .check_log(&cp.origin)
        .map_err(|e| format!("event: {e}"))?;
    if entry.key != event.event.state_key() {
        return Err("entry key is not the state key of the event".into());
    }
    if &entry.key != key {
        return Err("event is for another subject, controller or purpose".into());
    }
    if entry.integrated_at > cp.time {
        return Err(format!(
            "integrated_at {} is after the checkpoint time {}",
            entry.integrated_at, cp.time
        ));
    }
    if entry.integrated_at.abs_diff(event.event.issued_at) > ISSUED_AT_WINDOW_MS {
        return Err(format!(
            "integrated_at {} is more than 5 minutes from issued_at {}",
            entry.integrated_at, event.event.issued_at
        ));
    }
    Ok(CheckedEvent {
        index: pe.index,
        entry,
        leaf_hash,
        event,
    })
}

/// `next` directly follows `prev` in one key's chain.
pub fn check_link(prev: &CheckedEvent, next: &CheckedEvent) -> Result<(), String> {
    if next.index <= prev.index {
        return Err(format!(
            "index {} does not follow index {}",
            next.index, prev.index
        ));
    }
    if next.event.event.seq != prev.event.event.seq + 1 {
        return Err(format!(
            "seq {} does not follow seq {}",
            next.event.event.seq, prev.event.event.seq
        ));
    }
    if next.event.event.prev != Some(prev.event.event_hash()) {
        return Err("prev is not the event hash of the previous event".into());
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
) -> Result<(), String> {
    let proof = proof.ok_or("missing map proof")?;
    let got = map::check(&cp.map_root, key, proof).map_err(|e| e.to_string())?;
    match (got, ev) {
        (None, None) => Ok(()),
        (Some(v), Some(e)) if v.index == e.index && v.leaf_hash == e.leaf_hash => Ok(()),
        (Some(v), Some(_)) => Err(format!(
            "the key's latest entry at the checkpoint is index {}, not the event given",
            v.index
        )),
        (Some(_), None) => Err("the key is present in the map, not absent".into()),
        (None, Some(_)) => Err("the key is absent from the map".into()),
    }
}

fn check_question(p: &ConsentProof, q: &Question) -> Result<(), ProofError> {
    let differ = |what: &str, want: String, got: String| {
        Err(ProofError::Question(format!(
            "{what} is {got}, expected {want}"
        )))
    };
    if let Some(s) = q.subject.filter(|s| *s != p.subject) {
        return differ("subject", to_hex(&s), to_hex(&p.subject));
    }
    if let Some(c) = q.controller.as_ref().filter(|c| **c != p.controller) {
        return differ("controller", c.clone(), p.controller.clone());
    }
    if let Some(pp) = q.purpose.as_ref().filter(|pp| **pp != p.purpose) {
        return differ("purpose", pp.clone(), p.purpose.clone());
    }
    if let Some(at) = q.at.filter(|at| *at != p.at) {
        return differ("at", at.to_string(), p.at.to_string());
    }
    Ok(())
}

/// Verifies `p` under the log key and returns the state it shows.
pub fn check(
    p: &ConsentProof,
    log_key: &VerifyingKey,
    q: &Question,
) -> Result<Verdict, ProofError> {
    let cp = note::open(&p.checkpoint, log_key)?;
    check_with_checkpoint(p, cp, q)
}

/// [`check`] for a checkpoint already opened with the log key (bulk verification opens a
/// shared checkpoint once); `cp.note` must be `p.checkpoint`.
pub fn check_with_checkpoint(
    p: &ConsentProof,
    cp: SignedCheckpoint,
    q: &Question,
) -> Result<Verdict, ProofError> {
    if p.format != PROOF_FORMAT {
        return Err(ProofError::Format(p.format.clone()));
    }
    check_question(p, q)?;
    check_name("controller", &p.controller).map_err(ProofError::Name)?;
    check_name("purpose", &p.purpose).map_err(ProofError::Name)?;
    if cp.note != p.checkpoint {
        return Err(ProofError::Question(
            "checkpoint differs from the proof's".into(),
        ));
    }
    if cp.time < p.at {
        return Err(ProofError::CheckpointTooOld {
            time: cp.time,
            at: p.at,
        });
    }
    if p.events.len() > 2 {
        return Err(ProofError::TooManyEvents(p.events.len()));
    }
    let key = state_key(&p.subject, &p.controller, &p.purpose);
    let mut evs = Vec::with_capacity(p.events.len());
    for (pos, pe) in p.events.iter().enumerate() {
        let ev = check_event(pe, &cp, &key).map_err(|reason| ProofError::Event { pos, reason })?;
        evs.push(ev);
    }
    if let [a, b] = &evs[..] {
        check_link(a, b).map_err(ProofError::Chain)?;
    }
    let at = p.at;
    let in_force = match &evs[..] {
        [] => {
            check_map_head(p.map.as_ref(), &cp, &key, None).map_err(ProofError::Map)?;
            None
        }
        [first, ..] if first.entry.integrated_at > at => {
            if evs.len() != 1 || first.event.event.seq != 0 {
                return Err(ProofError::Chain(
                    "no event is in force at `at`, so the proof must give only the key's \
                     first event (seq 0)"
                        .into(),
                ));
            }
            if p.map.is_some() {
                return Err(ProofError::Map("unexpected map proof".into()));
            }
            None
        }
        [first] => {
            check_map_head(p.map.as_ref(), &cp, &key, Some(first)).map_err(ProofError::Map)?;
            Some(first)
        }
        [first, second] => {
            if second.entry.integrated_at <= at {
                return Err(ProofError::Chain(format!(
                    "the successor was integrated at {}, not after `at` {at}",
                    second.entry.integrated_at
                )));
            }
            if p.map.is_some() {
                return Err(ProofError::Map("unexpected map proof".into()));
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
        checkpoint: cp,
    })
}
