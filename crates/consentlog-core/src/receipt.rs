//! Receipts: the log key's promise that an entry was durably appended at a time
//! (docs/FORMAT.md, "Receipt").
//!
//! `signature = Ed25519(log key, "consentlog/v1/receipt\n" || index u64 || leaf_hash || integrated_at u64)`.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::hash::{hex_array, Hash};

/// Domain-separation prefix of a receipt signature.
pub const RECEIPT_DOMAIN: &[u8] = b"consentlog/v1/receipt\n";

/// What a submitter gets back for an accepted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub index: u64,
    #[serde(with = "hex_array")]
    pub leaf_hash: Hash,
    pub integrated_at: u64,
    #[serde(with = "hex_array")]
    pub signature: [u8; 64],
}

/// The signed message of a receipt.
pub fn receipt_message(index: u64, leaf_hash: &Hash, integrated_at: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(RECEIPT_DOMAIN.len() + 48);
    m.extend_from_slice(RECEIPT_DOMAIN);
    m.extend_from_slice(&index.to_le_bytes());
    m.extend_from_slice(leaf_hash);
    m.extend_from_slice(&integrated_at.to_le_bytes());
    m
}

impl Receipt {
    /// Signs a receipt with the log key.
    pub fn sign(key: &SigningKey, index: u64, leaf_hash: Hash, integrated_at: u64) -> Self {
        let signature = key
            .sign(&receipt_message(index, &leaf_hash, integrated_at))
            .to_bytes();
        Receipt {
            index,
            leaf_hash,
            integrated_at,
            signature,
        }
    }

    /// Checks the signature strictly under the log key.
    pub fn check(&self, key: &VerifyingKey) -> bool {
        key.verify_strict(
            &receipt_message(self.index, &self.leaf_hash, self.integrated_at),
            &Signature::from_bytes(&self.signature),
        )
        .is_ok()
    }
}
