//! consentlog: an append-only consent ledger with verifiable proofs.
//!
//! Layers, bottom up (docs/ARCHITECTURE.md): [`core`] (formats, hashing, proofs, verification;
//! no I/O), [`store`] (storage engines behind one trait), [`ledger`] (append rules, checkpoints,
//! proof building), and the `consentlog` binary's [`cli`].

pub mod api;
pub mod cli;
pub mod client;
pub use consentlog_core as core;
pub mod keyfile;
pub mod ledger;
pub mod listener;
pub mod server;
pub mod store;
#[doc(hidden)]
pub mod testing;
pub mod tlog_witness;
pub mod witness;
