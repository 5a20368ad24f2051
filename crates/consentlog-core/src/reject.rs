//! Why an event is refused: one variant per append rule (docs/FORMAT.md, "Append rules"),
//! each with a stable code for metrics and JSON errors.

use super::hash::JsonError;
use super::text::NameError;

/// Why an event was refused. `code()` is a stable machine-readable rule name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("malformed event: {0}")]
    Malformed(#[from] MalformedEvent),
    #[error("unsupported event version {0} (only 2 is known; format v1 is not accepted)")]
    Version(u8),
    #[error("event kind {0} is reserved (only 0, a decision, is known)")]
    Kind(u8),
    #[error("event kind {0:?} is not \"decision\" (other kinds are reserved)")]
    KindName(String),
    #[error("event signer {0} is reserved (only 0, the subject, is known)")]
    Signer(u8),
    #[error("event signer {0:?} is not \"subject\" (other signers are reserved)")]
    SignerName(String),
    #[error("event is for log {got:?}, this ledger is {want:?}")]
    Log { got: String, want: String },
    #[error("bad controller: {0}")]
    Controller(#[source] NameError),
    #[error("bad purpose: {0}")]
    Purpose(#[source] NameError),
    #[error("decision byte {0} is neither 1 (opt-in) nor 0 (opt-out)")]
    Decision(u8),
    #[error("decision {0:?} is neither \"opt-in\" nor \"opt-out\"")]
    DecisionName(String),
    #[error("subject is not a valid Ed25519 public key")]
    BadKey,
    #[error("subject is a weak (small-order) Ed25519 public key")]
    WeakKey,
    #[error("signature does not verify (strict Ed25519) under the subject key")]
    Signature,
    #[error("seq {got} does not continue the key's head (expected {expected})")]
    Seq { expected: u64, got: u64 },
    #[error("prev {got} is not the event hash of the key's head ({expected})")]
    Prev { expected: String, got: String },
    #[error(
        "issued_at {} is more than 5 minutes from the ledger clock {}",
        crate::time::Both(*.issued_at),
        crate::time::Both(*.now)
    )]
    IssuedAt { issued_at: u64, now: u64 },
    #[error("expires_at: {0}")]
    ExpiresAt(#[from] ExpiryError),
}

/// Why the text of an event could not be read as an event ([`Reject::Malformed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedEvent {
    /// The JSON line is not an event object (the parser's message).
    #[error("{0}")]
    Json(#[from] JsonError),
    /// An element of a JSON array batch is not an object.
    #[error("expected a JSON object")]
    NotObject,
    /// The event's binary form would exceed the decoder's limit.
    #[error("event is larger than {max} bytes")]
    TooLarge {
        /// The limit, [`crate::codec::MAX_ENCODED`].
        max: usize,
    },
}

/// Why an event's `expires_at` was refused ([`Reject::ExpiresAt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExpiryError {
    /// An opt-out cannot expire.
    #[error("expires_at is only allowed on an opt-in")]
    OnOptOut,
    /// An opt-in must expire after it was issued.
    #[error(
        "expires_at {} is not after issued_at {}",
        crate::time::Both(*.expires_at),
        crate::time::Both(*.issued_at)
    )]
    NotAfterIssued {
        /// The event's `expires_at`.
        expires_at: u64,
        /// The event's `issued_at`.
        issued_at: u64,
    },
}

impl Reject {
    /// Stable rule name, used in metrics and JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            Reject::Malformed(_) => "malformed",
            Reject::Version(_) => "version",
            Reject::Kind(_) | Reject::KindName(_) => "kind",
            Reject::Signer(_) | Reject::SignerName(_) => "signer",
            Reject::Log { .. } => "log",
            Reject::Controller(_) => "controller",
            Reject::Purpose(_) => "purpose",
            Reject::Decision(_) | Reject::DecisionName(_) => "decision",
            Reject::BadKey | Reject::WeakKey => "weak_key",
            Reject::Signature => "signature",
            Reject::Seq { .. } => "seq",
            Reject::Prev { .. } => "prev",
            Reject::IssuedAt { .. } => "issued_at",
            Reject::ExpiresAt(_) => "expires_at",
        }
    }

    /// A conflict with ledger state (the event may have been valid against another head).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Reject::Seq { .. } | Reject::Prev { .. })
    }
}
