//! A person's history: every event of theirs with openings and proofs, so they can check
//! that nothing was hidden, reordered or forged (docs/FORMAT.md, "History").

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::event::{check_name, state_key};
use super::hash::{hex_array, to_hex};
use super::map::MapProof;
use super::note::{self, SignedCheckpoint};
use super::proof::{
    check_event, check_link, check_map_head, CheckedEvent, EventError, LinkError, MapHeadError,
    ProvenEvent,
};
use super::text::NameError;

/// The `format` string of a history.
pub const HISTORY_FORMAT: &str = "consentlog-history/v1";

/// A person's events under one checkpoint, grouped by (controller, purpose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    pub format: String,
    pub checkpoint: String,
    #[serde(with = "hex_array")]
    pub subject: [u8; 32],
    pub chains: Vec<Chain>,
}

/// All events of one (subject, controller, purpose), seq 0 first, and the map proof that the
/// last is the key's latest entry at the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    pub controller: String,
    pub purpose: String,
    pub events: Vec<ProvenEvent>,
    pub map: MapProof,
}

/// What a valid history shows.
#[derive(Debug, Clone)]
pub struct CheckedHistory {
    pub checkpoint: SignedCheckpoint,
    /// Per chain: controller, purpose, its events.
    pub chains: Vec<(String, String, Vec<CheckedEvent>)>,
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
        if !h.chains.iter().any(|(hc, hp, _)| hc == c && hp == p) {
            return Err(HistoryError::Missing {
                controller: c.clone(),
                purpose: p.clone(),
            });
        }
    }
    Ok(())
}

/// Checks every chain: complete from seq 0 to the map's head, signed by the subject, included
/// in the checkpoint, linked by prev hashes.
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
        let key = state_key(&h.subject, &c.controller, &c.purpose);
        if !seen.insert(key) {
            return Err(HistoryError::Repeated(n));
        }
        let mut evs: Vec<CheckedEvent> = Vec::with_capacity(c.events.len());
        for (i, pe) in c.events.iter().enumerate() {
            let ev = check_event(pe, &cp, &key)
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
        check_map_head(Some(&c.map), &cp, &key, evs.last()).map_err(|e| fail(e.into()))?;
        chains.push((c.controller.clone(), c.purpose.clone(), evs));
    }
    Ok(CheckedHistory {
        checkpoint: cp,
        chains,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::LinkError;
    use crate::reject::Reject;
    use crate::testutil::{Log, T0};

    fn fixture() -> (History, VerifyingKey) {
        let (log, key) = Log::chain_of_two();
        let h = History {
            format: HISTORY_FORMAT.into(),
            checkpoint: log.checkpoint(T0 + 120_000).note,
            subject: log.person.verifying_key().to_bytes(),
            chains: vec![Chain {
                controller: "example.com".into(),
                purpose: "ai-training".into(),
                events: vec![log.proven(0), log.proven(1)],
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
        assert_eq!(checked.chains[0].2.len(), 2);
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
                err: LinkError::Index { prev: 1, next: 0 }
            }
        );
        let mut bad = h.clone();
        bad.chains[0].events.clear();
        assert_eq!(chain_err(&bad, &key), ChainError::Empty);
        let mut bad = h.clone();
        bad.chains[0].events.pop();
        assert_eq!(
            chain_err(&bad, &key),
            ChainError::Map(MapHeadError::OtherEntry { index: 1 })
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
}
