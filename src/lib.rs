//! consentlog: an append-only consent ledger with verifiable proofs.
//!
//! See docs/ARCHITECTURE.md for the layering and docs/FORMAT.md for every byte.

pub mod core;
