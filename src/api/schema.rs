//! OpenAPI descriptions of the formats the API carries but does not define: signed events,
//! receipts, openings, consent proofs and histories (the I/O-free core's, which does not depend
//! on utoipa) and inclusion and consistency proofs (the ledger's). These structs are never
//! built; each describes its type's JSON field for field, and the server's tests check real
//! answers against the generated document, so the two cannot drift apart.

use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::ledger::{ConsistencyProof, InclusionProof};

/// A signed consent event, the JSON line of `consentlog sign` (docs/FORMAT.md, "Event").
/// Every field is required; absent optional values are null.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Event)]
pub struct EventSchema {
    /// 2.
    version: u8,
    /// `decision` (other kinds are reserved).
    kind: String,
    /// `subject` (other signers are reserved).
    signer: String,
    log: String,
    /// The person's public key (hex).
    subject: String,
    controller: String,
    purpose: String,
    /// `opt_in` or `opt_out`.
    decision: String,
    seq: u64,
    /// The previous event's hash (hex); null for seq 0.
    prev: Option<String>,
    issued_at: u64,
    expires_at: Option<u64>,
    notice: Option<String>,
    /// Ed25519 signature by the subject (hex).
    signature: String,
}

/// Proof that an event is in the log (docs/FORMAT.md §12): `tlog_proof` is a C2SP tlog-proof
/// (c2sp.org/tlog-proof@v1) under a checkpoint signed once the event was durable; the other
/// fields repeat what it holds, for convenience.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Receipt)]
pub struct ReceiptSchema {
    /// The event leaf's index.
    index: u64,
    /// The event leaf (hex).
    leaf: String,
    /// Its RFC 6962 leaf hash (hex).
    leaf_hash: String,
    /// The signed event's hash (hex): what `sign --prev` of the next event names.
    event_hash: String,
    /// The ledger's time when the event was appended (ms).
    integrated_at: u64,
    seq: u64,
    /// The receipt itself, checked by `consentlog verify-receipt`.
    tlog_proof: String,
}

/// An opening: the commitment's nonce and the exact signed event bytes (hex).
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Opening)]
pub struct OpeningSchema {
    nonce: String,
    event: String,
}

/// A leaf of the log (hex) with its index and RFC 6962 inclusion path.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = ProvenLeaf)]
pub struct ProvenLeafSchema {
    index: u64,
    leaf: String,
    inclusion: Vec<String>,
}

/// An event leaf with its opening and inclusion path.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = ProvenEvent)]
pub struct ProvenEventSchema {
    index: u64,
    leaf: String,
    opening: OpeningSchema,
    inclusion: Vec<String>,
}

/// A state-map proof: the leaf where the key's path stops (null if that subtree is empty)
/// and the sibling hashes along the path.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = MapProof)]
pub struct MapProofSchema {
    #[schema(value_type = Option<Object>)]
    leaf: Option<()>,
    siblings: Vec<String>,
}

/// A consent proof (docs/FORMAT.md, "ConsentProof"), checkable with the log key alone.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = ConsentProof)]
pub struct ConsentProofSchema {
    format: String,
    checkpoint: String,
    genesis: ProvenLeafSchema,
    map_leaf: ProvenLeafSchema,
    subject: String,
    controller: String,
    purpose: String,
    /// The VRF proof of the state key (hex, 80 bytes).
    vrf_proof: String,
    at: u64,
    events: Vec<ProvenEventSchema>,
    map: Option<MapProofSchema>,
    /// `opted_in`, `opted_out`, `expired` or `no_record`.
    state: String,
}

/// One (controller, purpose) chain of a history.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = Chain)]
pub struct ChainSchema {
    controller: String,
    purpose: String,
    /// The VRF proof of the chain's state key (hex, 80 bytes).
    vrf_proof: String,
    events: Vec<ProvenEventSchema>,
    map: MapProofSchema,
}

/// A person's history (docs/FORMAT.md, "History").
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = History)]
pub struct HistorySchema {
    format: String,
    checkpoint: String,
    genesis: ProvenLeafSchema,
    map_leaf: ProvenLeafSchema,
    subject: String,
    chains: Vec<ChainSchema>,
}

/// An RFC 9162 inclusion proof (hashes in hex).
#[allow(dead_code)]
#[derive(ToSchema)]
struct InclusionProofSchema {
    index: u64,
    tree_size: u64,
    leaf_hash: String,
    root: String,
    path: Vec<String>,
}

/// An RFC 9162 consistency proof (hashes in hex).
#[allow(dead_code)]
#[derive(ToSchema)]
struct ConsistencyProofSchema {
    old_size: u64,
    new_size: u64,
    old_root: String,
    new_root: String,
    path: Vec<String>,
}

impl PartialSchema for InclusionProof {
    fn schema() -> RefOr<Schema> {
        InclusionProofSchema::schema()
    }
}

impl ToSchema for InclusionProof {}

impl PartialSchema for ConsistencyProof {
    fn schema() -> RefOr<Schema> {
        ConsistencyProofSchema::schema()
    }
}

impl ToSchema for ConsistencyProof {}

/// An entry bundle (c2sp.org/tlog-tiles; docs/FORMAT.md §14): for each leaf, its length as a
/// big-endian u16, then its bytes.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = EntryBundle, value_type = String, format = Binary)]
pub struct EntryBundleSchema(Vec<u8>);

/// A hash tile's body (c2sp.org/tlog-tiles; docs/FORMAT.md §14): its hashes concatenated,
/// 32 bytes each.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = HashTile, value_type = String, format = Binary)]
pub struct HashTileSchema(Vec<u8>);
