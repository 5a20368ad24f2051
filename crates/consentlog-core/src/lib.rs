//! The I/O-free core: formats, hashing, Merkle and map proofs, and verification.
//!
//! Nothing here touches a disk, a clock or a network; the storage, ledger, server and CLI
//! layers sit on top of it. A verifier needs only this module and a public key.

pub mod add_checkpoint;
pub mod audit;
pub mod codec;
pub mod cosignature;
pub mod event;
pub mod evidence;
pub mod evidence_finder;
pub mod export;
pub mod hash;
pub mod history;
pub mod leaf;
pub mod map;
pub mod note;
pub mod opening;
pub mod par;
pub mod policy;
pub mod proof;
pub mod proof_batch;
pub mod receipt;
pub mod reject;
pub mod request;
pub mod rules;
pub mod state_keys;
pub mod strict;
pub mod text;
pub mod time;
pub mod tlog;
pub mod tlog_proof;
pub mod vkey;
pub mod vrf;
pub mod witnessed;

#[cfg(test)]
mod testutil;
