//! A person's history: every event of theirs with openings and proofs, so they can check
//! that nothing was hidden, reordered or forged (docs/FORMAT.md, "History").

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::event::check_name;
use super::hash::{hex_array, to_hex};
use super::map::MapProof;
use super::note;
use super::proof::{
    check_anchor, check_event, check_link, check_map_head, Anchor, AnchorError, CheckedEvent,
    EventError, LinkError, MapHeadError, ProvenEvent, ProvenLeaf,
};
use super::text::NameError;
use super::vrf::{StateKeyInput, VrfError, PROOF_LEN};

/// The `format` string of a history.
pub const HISTORY_FORMAT: &str = "consentlog-history/v2";

/// A person's events under one checkpoint, grouped by (controller, purpose), complete up to
/// one map leaf: events after it are shown, checked, and reported as not yet proven complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    pub format: String,
    pub checkpoint: String,
    pub genesis: ProvenLeaf,
    pub map_leaf: ProvenLeaf,
    /// The newest checkpoint witnesses cosigned, when the log has one (§19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witnessed: Option<crate::witnessed::WitnessedJson>,
    #[serde(with = "hex_array")]
    pub subject: [u8; 32],
    pub chains: Vec<Chain>,
}

/// All events of one (subject, controller, purpose), seq 0 first, and the map proof that the
/// last one before the map leaf is the key's latest there (or, when every event is after it,
/// that the key is absent there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    pub controller: String,
    pub purpose: String,
    /// The VRF proof of the chain's state key (docs/FORMAT.md §17.1).
    #[serde(with = "hex_array")]
    pub vrf_proof: [u8; PROOF_LEN],
    pub events: Vec<ProvenEvent>,
    pub map: MapProof,
}

/// What a valid history shows.
#[derive(Debug, Clone)]
pub struct CheckedHistory {
    pub anchor: Anchor,
    pub chains: Vec<CheckedChain>,
}

/// One checked chain of a history.
#[derive(Debug, Clone)]
pub struct CheckedChain {
    pub controller: String,
    pub purpose: String,
    pub events: Vec<CheckedEvent>,
    /// How many of `events` come before the map leaf, where the map proves the chain complete;
    /// the rest are logged but not yet proven to be all.
    pub proven: usize,
}

/// Why a history is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("unknown history format {0:?}")]
    Format(String),
    #[error("history is for subject {got}, expected {want}")]
    Subject { got: String, want: String },
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] note::NoteError),
    #[error("{0}")]
    Anchor(#[from] AnchorError),
    #[error("chain {chain} ({controller}/{purpose}): {reason}")]
    Chain {
        chain: usize,
        controller: String,
        purpose: String,
        #[source]
        reason: ChainError,
    },
    #[error("chain {0} repeats an earlier (controller, purpose)")]
    Repeated(usize),
    #[error("the history has no chain for {controller}/{purpose}, which the person expects")]
    Missing { controller: String, purpose: String },
}

/// Why one chain of a history is invalid ([`HistoryError::Chain`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The controller or purpose is not a valid name.
    #[error("{0}")]
    Name(#[from] NameError),
    /// The VRF proof of the chain's state key does not verify.
    #[error("state key: {0}")]
    Vrf(#[from] VrfError),
    /// Event `event` fails its own checks.
    #[error("event {event}: {err}")]
    Event {
        event: usize,
        #[source]
        err: EventError,
    },
    /// Event `event` does not directly follow the one before it.
    #[error("event {event}: {err}")]
    Link {
        event: usize,
        #[source]
        err: LinkError,
    },
    #[error("the first event does not have seq 0")]
    FirstSeq,
    #[error("chain has no events")]
    Empty,
    /// The map proof does not show the last event as the key's latest entry.
    #[error("map proof: {0}")]
    Map(#[from] MapHeadError),
}

/// The log cannot show which (controller, purpose) pairs a person has events under without
/// publicly linking their state keys, so a history proves completeness per pair. A person names
/// the pairs they know they used; each must be present.
pub fn check_expected(
    h: &CheckedHistory,
    expected: &[(String, String)],
) -> Result<(), HistoryError> {
    for (c, p) in expected {
        if !h
            .chains
            .iter()
            .any(|ch| &ch.controller == c && &ch.purpose == p)
        {
            return Err(HistoryError::Missing {
                controller: c.clone(),
                purpose: p.clone(),
            });
        }
    }
    Ok(())
}

/// Checks every chain: complete from seq 0 to the map's head at the map leaf, signed by the
/// subject, included in the checkpoint, linked by leaf indices and prev hashes.
pub fn check(
    h: &History,
    log_key: &VerifyingKey,
    subject: Option<&[u8; 32]>,
) -> Result<CheckedHistory, HistoryError> {
    if h.format != HISTORY_FORMAT {
        return Err(HistoryError::Format(h.format.clone()));
    }
    if let Some(s) = subject.filter(|s| **s != h.subject) {
        return Err(HistoryError::Subject {
            got: to_hex(&h.subject),
            want: to_hex(s),
        });
    }
    let cp = note::open(&h.checkpoint, log_key)?;
    let anchor = check_anchor(cp, &h.genesis, &h.map_leaf)?;
    let mut seen = std::collections::HashSet::new();
    let mut chains = Vec::with_capacity(h.chains.len());
    for (n, c) in h.chains.iter().enumerate() {
        let fail = |reason: ChainError| HistoryError::Chain {
            chain: n,
            controller: c.controller.clone(),
            purpose: c.purpose.clone(),
            reason,
        };
        check_name("controller", &c.controller).map_err(|e| fail(e.into()))?;
        check_name("purpose", &c.purpose).map_err(|e| fail(e.into()))?;
        let triple = StateKeyInput {
            origin: &anchor.genesis.origin,
            subject: &h.subject,
            controller: &c.controller,
            purpose: &c.purpose,
        };
        let key =
            crate::proof::state_key(&anchor, &triple, &c.vrf_proof).map_err(|e| fail(e.into()))?;
        if !seen.insert(key) {
            return Err(HistoryError::Repeated(n));
        }
        let mut evs: Vec<CheckedEvent> = Vec::with_capacity(c.events.len());
        for (i, pe) in c.events.iter().enumerate() {
            let ev = check_event(pe, &anchor, &key, &triple)
                .map_err(|err| fail(ChainError::Event { event: i, err }))?;
            match evs.last() {
                None if ev.event.event.seq != 0 => return Err(fail(ChainError::FirstSeq)),
                None => {}
                Some(prev) => {
                    check_link(prev, &ev).map_err(|err| fail(ChainError::Link { event: i, err }))?
                }
            }
            evs.push(ev);
        }
        if evs.is_empty() {
            return Err(fail(ChainError::Empty));
        }
        let proven = evs.partition_point(|e| e.index < anchor.map_index);
        let head = proven.checked_sub(1).map(|i| &evs[i]);
        check_map_head(Some(&c.map), &anchor, &key, head).map_err(|e| fail(e.into()))?;
        chains.push(CheckedChain {
            controller: c.controller.clone(),
            purpose: c.purpose.clone(),
            events: evs,
            proven,
        });
    }
    Ok(CheckedHistory { anchor, chains })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::LinkError;
    use crate::reject::Reject;
    use crate::testutil::{Log, T0};

    fn fixture() -> (History, VerifyingKey) {
        let (mut log, key) = Log::chain_of_two();
        let h = History {
            format: HISTORY_FORMAT.into(),
            checkpoint: log.checkpoint(T0 + 120_000).note,
            genesis: log.proven_leaf(0),
            map_leaf: log.proven_leaf(log.last_map()),
            witnessed: None,
            subject: log.person.verifying_key().to_bytes(),
            chains: vec![Chain {
                controller: "example.com".into(),
                purpose: "ai-training".into(),
                vrf_proof: log.person_key().1 .0,
                events: vec![log.proven(1), log.proven(2)],
                map: log.map.prove(&key),
            }],
        };
        (h, log.key.verifying_key())
    }

    fn chain_err(h: &History, key: &VerifyingKey) -> ChainError {
        match check(h, key, None) {
            Err(HistoryError::Chain {
                chain: 0, reason, ..
            }) => reason,
            other => panic!("not a chain error: {other:?}"),
        }
    }

    #[test]
    fn history_errors() {
        let (h, key) = fixture();
        let checked = check(&h, &key, Some(&h.subject)).unwrap();
        assert_eq!(checked.chains[0].events.len(), 2);
        assert_eq!(checked.chains[0].proven, 2);
        let pair = |c: &str, p: &str| vec![(c.to_string(), p.to_string())];
        check_expected(&checked, &pair("example.com", "ai-training")).unwrap();
        assert_eq!(
            check_expected(&checked, &pair("example.com", "ads")).unwrap_err(),
            HistoryError::Missing {
                controller: "example.com".into(),
                purpose: "ads".into()
            }
        );
        assert!(matches!(
            check(&h, &key, Some(&[0; 32])),
            Err(HistoryError::Subject { .. })
        ));
        let mut bad = h.clone();
        bad.format = "x".into();
        assert_eq!(
            check(&bad, &key, None).unwrap_err(),
            HistoryError::Format("x".into())
        );
        let mut bad = h.clone();
        bad.chains.push(bad.chains[0].clone());
        assert_eq!(
            check(&bad, &key, None).unwrap_err(),
            HistoryError::Repeated(1)
        );

        let mut bad = h.clone();
        bad.chains[0].purpose = "Ads".into();
        assert!(matches!(chain_err(&bad, &key), ChainError::Name(_)));
        let mut bad = h.clone();
        bad.chains[0].events[1].opening.nonce[0] ^= 1;
        assert_eq!(
            chain_err(&bad, &key),
            ChainError::Event {
                event: 1,
                err: EventError::Commitment
            }
        );
        let mut bad = h.clone();
        bad.chains[0].events.swap(0, 1);
        assert_eq!(chain_err(&bad, &key), ChainError::FirstSeq);
        let mut bad = h.clone();
        let first = bad.chains[0].events[0].clone();
        bad.chains[0].events.push(first);
        assert_eq!(
            chain_err(&bad, &key),
            ChainError::Link {
                event: 2,
                err: LinkError::Index { prev: 2, next: 1 }
            }
        );
        let mut bad = h.clone();
        bad.chains[0].events.clear();
        assert_eq!(chain_err(&bad, &key), ChainError::Empty);
        let mut bad = h.clone();
        bad.chains[0].events.pop();
        assert_eq!(
            chain_err(&bad, &key),
            ChainError::Map(MapHeadError::OtherEntry { index: 2 })
        );
        let e = HistoryError::Chain {
            chain: 0,
            controller: "c".into(),
            purpose: "p".into(),
            reason: ChainError::Event {
                event: 1,
                err: EventError::Event(Reject::Signature),
            },
        };
        assert_eq!(
            e.to_string(),
            "chain 0 (c/p): event 1: event: signature does not verify (strict Ed25519) under \
             the subject key"
        );
    }

    /// Events after the map leaf are checked and reported as not yet proven; the map proof is
    /// about the last event before it.
    #[test]
    fn events_after_the_map_leaf_are_pending() {
        let (mut log, key) = Log::chain_of_two();
        let first = log.openings[&1].event.clone();
        log.checkpoint(T0 + 30_000);
        let map = log.map.prove(&key);
        let second_index = 2;
        // Rebuild: the map leaf at 3 came after both events here, so make a log where it
        // comes between them.
        let mut log2 = Log::new();
        log2.append(first.clone());
        log2.checkpoint(T0 + 30_000);
        let map2 = log2.map.prove(&key);
        let second = log.openings[&second_index].event.clone();
        log2.append(second);
        let h = History {
            format: HISTORY_FORMAT.into(),
            checkpoint: log2.sign().note,
            genesis: log2.proven_leaf(0),
            map_leaf: log2.proven_leaf(2),
            witnessed: None,
            subject: log2.person.verifying_key().to_bytes(),
            chains: vec![Chain {
                controller: "example.com".into(),
                purpose: "ai-training".into(),
                vrf_proof: log2.person_key().1 .0,
                events: vec![log2.proven(1), log2.proven(3)],
                map: map2,
            }],
        };
        let checked = check(&h, &log2.key.verifying_key(), None).unwrap();
        assert_eq!(
            (checked.chains[0].events.len(), checked.chains[0].proven),
            (2, 1)
        );
        // A map proof of the head after the map leaf does not fit.
        let mut bad = h.clone();
        bad.chains[0].map = map;
        assert!(matches!(
            chain_err(&bad, &log2.key.verifying_key()),
            ChainError::Map(_)
        ));
    }
}
