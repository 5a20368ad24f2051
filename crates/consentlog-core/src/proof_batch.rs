//! Bulk consent proofs: one shared checkpoint, then one proof per line (docs/FORMAT.md,
//! "Proof batches"). Each line becomes an ordinary [`ConsentProof`] when the header's
//! checkpoint is put back, so every proof can still be checked on its own.

use serde::{Deserialize, Serialize};

use super::hash::hex_array;
use super::proof::{consent_proof_struct, ConsentProof, ProvenLeaf, PROOF_FORMAT};

/// The `format` of a proof batch's first line.
pub const BATCH_FORMAT: &str = "consentlog-proof-batch/v2";

/// First line of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchHeader {
    pub format: String,
    pub checkpoint: String,
    pub genesis: ProvenLeaf,
    pub map_leaf: ProvenLeaf,
    /// The newest checkpoint witnesses cosigned, when the log has one (§19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witnessed: Option<crate::witnessed::WitnessedJson>,
}

consent_proof_struct! {
    /// A proof line: a ConsentProof without `format`, `checkpoint`, `genesis` and
    /// `map_leaf`, and with the `id` of the query it answers.
    pub struct BatchProof {
        /// The query's `id` (its own, or its line number in the query file): what ties this
        /// line, and `verify --batch`'s verdict on it, back to the question asked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub id: Option<String>,
    }
}

/// A query line of `prove --batch`: `{"subject","controller","purpose"}` and optionally `"at"`
/// and `"id"` (any string, echoed in the answer line; default: the line number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchQuery {
    #[serde(with = "hex_array")]
    pub subject: [u8; 32],
    pub controller: String,
    pub purpose: String,
    #[serde(default)]
    pub at: Option<u64>,
    #[serde(default)]
    pub id: Option<String>,
}

/// The `id` of a batch line: the string `"id"` field of a JSON object, if it has one. Used to
/// name lines that are not proofs (a failed query, a damaged line).
pub fn line_id(line: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        id: Option<String>,
    }
    serde_json::from_str::<Id>(line).ok().and_then(|i| i.id)
}

impl BatchProof {
    /// Splits a proof into its batch line (the checkpoint goes to the header).
    pub fn from_proof(p: ConsentProof) -> BatchProof {
        BatchProof {
            id: None,
            subject: p.subject,
            controller: p.controller,
            purpose: p.purpose,
            vrf_proof: p.vrf_proof,
            at: p.at,
            events: p.events,
            map: p.map,
            state: p.state,
        }
    }

    /// The stand-alone proof, with the batch's checkpoint.
    pub fn into_proof(self, header: &BatchHeader) -> ConsentProof {
        ConsentProof {
            format: PROOF_FORMAT.into(),
            checkpoint: header.checkpoint.clone(),
            genesis: header.genesis.clone(),
            map_leaf: header.map_leaf.clone(),
            witnessed: header.witnessed.clone(),
            subject: self.subject,
            controller: self.controller,
            purpose: self.purpose,
            vrf_proof: self.vrf_proof,
            at: self.at,
            events: self.events,
            map: self.map,
            state: self.state,
        }
    }
}
