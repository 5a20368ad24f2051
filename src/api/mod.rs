//! The HTTP API's wire types, defined once: the server's handlers answer with them, the Rust
//! client (`client.rs`, the CLI's `--server`/`--url` modes, the examples) reads them, and the
//! OpenAPI document (`GET /v1/openapi.json`) is generated from them.
//!
//! Signed events, receipts, consent proofs and histories are formats of the I/O-free core
//! (docs/FORMAT.md); inclusion and consistency proofs are the ledger's. They travel as they are;
//! [`schema`] describes them to OpenAPI.

pub mod schema;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::core::hash::{hex_array, hex_array_opt, hex_bytes};
use crate::core::proof::{ConsentProof, OpeningJson};
use crate::core::receipt::Receipt;

pub use crate::ledger::{ConsistencyProof, InclusionProof};
pub use schema::{EventSchema, ReceiptSchema};

/// The path of every route.
pub mod paths {
    pub const EVENTS: &str = "/v1/events";
    pub const EVENTS_BATCH: &str = "/v1/events/batch";
    pub const HEADS: &str = "/v1/heads";
    pub const CHECKPOINT: &str = "/v1/checkpoint";
    pub const CHECKPOINTS: &str = "/v1/checkpoints";
    pub const COSIGNED: &str = "/v1/checkpoint/cosigned";
    pub const WITNESSED_RECEIPT: &str = "/v1/receipts/witnessed";
    pub const ENTRIES: &str = "/v1/entries";
    /// c2sp.org/tlog-tiles entry bundles: `{bundle}` is `<N>[.p/<W>]` and spans path
    /// segments (the router matches it as `{*bundle}`).
    pub const TILE_ENTRIES: &str = "/tile/entries/{bundle}";
    /// What precedes `<N>[.p/<W>]` in an entry bundle's path.
    pub const TILE_ENTRIES_PREFIX: &str = "/tile/entries/";
    /// c2sp.org/tlog-tiles hash tiles: `{tile}` is `<N>[.p/<W>]` and spans path segments.
    pub const TILE_HASHES: &str = "/tile/{level}/{tile}";
    /// What precedes `<L>/<N>[.p/<W>]` in a hash tile's path.
    pub const TILE_PREFIX: &str = "/tile/";
    /// c2sp.org/tlog-tiles: the newest checkpoint, at the log's prefix.
    pub const TLOG_CHECKPOINT: &str = "/checkpoint";
    pub const INCLUSION: &str = "/v1/proofs/inclusion";
    pub const CONSISTENCY: &str = "/v1/proofs/consistency";
    pub const CONSENT: &str = "/v1/proofs/consent";
    pub const HISTORY: &str = "/v1/subjects/{subject}/history";
    pub const EXPORT: &str = "/v1/export";
    pub const OPENAPI: &str = "/v1/openapi.json";
    pub const PAGE: &str = "/";
    pub const HEALTHZ: &str = "/healthz";
    pub const METRICS: &str = "/metrics";

    /// The history path of one subject (hex).
    pub fn history(subject_hex: &str) -> String {
        HISTORY.replace("{subject}", subject_hex)
    }
}

/// Most events in one batch request, and most queries in one bulk proof request.
pub const MAX_BATCH: usize = 10_000;
/// Most entries or checkpoints in one page.
pub const MAX_PAGE: u64 = 10_000;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Every error answer, and an item of a batch or bulk answer that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A stable code (a rejected event's rule, or `bad_request`, `unauthorized`, `forbidden`,
/// `not_found`, `too_large`, `invalid`, `overloaded`, `unavailable`…) and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// Appends
// ---------------------------------------------------------------------------------------------

/// The query of `POST /v1/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AppendQuery {
    /// `checkpoint`: answer once a checkpoint covers the entry, with that checkpoint and an
    /// inclusion proof.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<Wait>,
}

/// What an append may wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    Checkpoint,
}

/// The answer to `POST /v1/events`: the receipt, or with `wait=checkpoint` the receipt with a
/// checkpoint that covers it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AppendAnswer {
    #[schema(value_type = ReceiptSchema)]
    Receipt(Box<Receipt>),
    Checkpointed(Box<CheckpointedReceipt>),
}

/// The answer to `POST /v1/events?wait=checkpoint`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointedReceipt {
    #[schema(value_type = ReceiptSchema)]
    pub receipt: Receipt,
    /// A signed checkpoint (C2SP signed note) covering the entry.
    pub checkpoint: String,
    /// The entry's inclusion in that checkpoint's tree.
    pub inclusion: InclusionProof,
}

/// The answer to `POST /v1/events/batch`: one result per event, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchResults {
    pub results: Vec<BatchResult>,
}

/// One event's result: its status (201 appended, 200 already logged, 4xx refused) and either
/// its receipt or the error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchResult {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ReceiptSchema>)]
    pub receipt: Option<Receipt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

// ---------------------------------------------------------------------------------------------
// Heads
// ---------------------------------------------------------------------------------------------

/// One (subject, controller, purpose), as a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HeadsQuery {
    /// The person's public key (hex).
    #[serde(with = "hex_array")]
    #[param(value_type = String)]
    pub subject: [u8; 32],
    pub controller: String,
    pub purpose: String,
}

/// A key's current head: what the next event must name (`seq` + 1, `prev` = `event_hash`);
/// null fields when the key has no event yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadResponse {
    #[serde(with = "hex_array")]
    #[schema(value_type = String)]
    pub subject: [u8; 32],
    pub controller: String,
    pub purpose: String,
    pub seq: Option<u64>,
    #[serde(with = "hex_array_opt")]
    #[schema(value_type = Option<String>)]
    pub event_hash: Option<[u8; 32]>,
    /// The head's entry index.
    pub index: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Checkpoints, entries, log proofs
// ---------------------------------------------------------------------------------------------

/// Checkpoints numbered `from` (default 0) up to `to` (exclusive; at most 10,000 at once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckpointsQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
}

/// Stored checkpoints, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointList {
    pub checkpoints: Vec<NumberedCheckpoint>,
}

/// A checkpoint (C2SP signed note) and its number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberedCheckpoint {
    pub number: u64,
    pub note: String,
}

/// Entries `start` (default 0) up to `end` (exclusive; default the tree size; at most 10,000
/// at once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<u64>,
}

/// A page of public entries: `end` is where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryPage {
    pub start: u64,
    pub end: u64,
    pub entries: Vec<EntryRow>,
}

/// A public entry (docs/FORMAT.md, "Entry") and its leaf hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryRow {
    pub index: u64,
    #[serde(with = "hex_bytes")]
    #[schema(value_type = String)]
    pub entry: Vec<u8>,
    #[serde(with = "hex_array")]
    #[schema(value_type = String)]
    pub leaf_hash: [u8; 32],
}

/// A page of entries with their openings, for auditors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportPage {
    pub start: u64,
    pub end: u64,
    pub entries: Vec<ExportRow>,
}

/// An entry and its opening (null if the ledger holds none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRow {
    pub index: u64,
    #[serde(with = "hex_bytes")]
    #[schema(value_type = String)]
    pub entry: Vec<u8>,
    #[schema(value_type = Option<schema::OpeningSchema>)]
    pub opening: Option<OpeningJson>,
    /// The VRF proof of the event's state key (docs/FORMAT.md §17.1), with the opening.
    #[serde(with = "crate::core::hash::hex_array_opt")]
    #[schema(value_type = Option<String>)]
    pub vrf_proof: Option<[u8; crate::core::vrf::PROOF_LEN]>,
}

/// The inclusion proof of entry `index` in the tree of `size` entries (default: the current
/// tree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    pub index: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The consistency proof from the tree of `old` entries to that of `new` (default: the
/// current tree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    pub old: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Consent proofs
// ---------------------------------------------------------------------------------------------

/// The state of one (subject, controller, purpose) at `at` (ms since the epoch; default now;
/// a future `at` is refused). The query of `GET /v1/proofs/consent` and an item of
/// `POST /v1/proofs/consent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsentQuery {
    /// The person's public key (hex).
    #[serde(with = "hex_array")]
    #[schema(value_type = String)]
    #[param(value_type = String)]
    pub subject: [u8; 32],
    pub controller: String,
    pub purpose: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
}

/// Many consent queries at once (at most 10,000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkConsentRequest {
    pub queries: Vec<ConsentQuery>,
}

/// One proof per query, in order, all against one shared checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkConsentResponse {
    /// The shared checkpoint (C2SP signed note).
    pub checkpoint: String,
    pub proofs: Vec<ProofOrError>,
}

/// A consent proof, or why this query could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ProofOrError {
    #[schema(value_type = schema::ConsentProofSchema)]
    Proof(Box<ConsentProof>),
    Error(ErrorBody),
}
