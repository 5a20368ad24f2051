//! The append rules (docs/FORMAT.md, "Append rules") and the reasons an event is refused.
//!
//! The order of checks is part of the contract: the first rule that fails is the one reported.

use super::event::{Decision, SignedEvent};
use super::hash::{to_hex, Hash};
use super::reject::{ExpiryError, Reject};

/// Largest allowed distance between an event's `issued_at` and the ledger's clock (±5 min).
pub const ISSUED_AT_WINDOW_MS: u64 = 5 * 60 * 1000;

/// The latest event of one state key, which the next event must continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub index: u64,
    pub seq: u64,
    pub event_hash: Hash,
}

/// Checks `ev` against every append rule except duplicate detection, which the ledger does
/// first by event hash. `head` is the key's current head, `now` the ledger's clock.
pub fn check_append(
    ev: &SignedEvent,
    origin: &str,
    head: Option<&Head>,
    now: u64,
) -> Result<(), Reject> {
    check_append_checked(ev, origin, head, now, ev.check_self())
}

/// [`check_append`] with the result of `ev.check_self()` computed beforehand (the signature
/// check is the expensive part, done on all cores before the sequential rules).
pub fn check_append_checked(
    ev: &SignedEvent,
    origin: &str,
    head: Option<&Head>,
    now: u64,
    self_check: Result<(), Reject>,
) -> Result<(), Reject> {
    let e = &ev.event;
    if e.version != super::event::EVENT_VERSION {
        return Err(Reject::Version(e.version));
    }
    ev.check_log(origin)?;
    self_check?;
    check_chain(ev, head)?;
    if e.issued_at.abs_diff(now) > ISSUED_AT_WINDOW_MS {
        return Err(Reject::IssuedAt {
            issued_at: e.issued_at,
            now,
        });
    }
    check_expiry(ev)
}

/// seq and prev continue `head` (seq 0 and no prev when there is none).
pub fn check_chain(ev: &SignedEvent, head: Option<&Head>) -> Result<(), Reject> {
    let e = &ev.event;
    let expected = head.map_or(0, |h| h.seq + 1);
    if e.seq != expected {
        return Err(Reject::Seq {
            expected,
            got: e.seq,
        });
    }
    let want = head.map(|h| h.event_hash);
    if e.prev != want {
        let show = |p: Option<Hash>| p.map_or("none".to_string(), |h| to_hex(&h));
        return Err(Reject::Prev {
            expected: show(want),
            got: show(e.prev),
        });
    }
    Ok(())
}

/// expires_at only on an opt-in, and after issued_at.
pub fn check_expiry(ev: &SignedEvent) -> Result<(), Reject> {
    let e = &ev.event;
    match (e.expires_at, e.decision()) {
        (Some(_), Some(Decision::OptOut)) => Err(ExpiryError::OnOptOut.into()),
        (Some(x), _) if x <= e.issued_at => Err(ExpiryError::NotAfterIssued {
            expires_at: x,
            issued_at: e.issued_at,
        }
        .into()),
        _ => Ok(()),
    }
}
