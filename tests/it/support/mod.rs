//! Helpers shared by the integration tests.

pub mod append;
pub mod cli;
pub mod crash;
pub mod faults;
pub mod fuzz;
pub mod proofs;
pub mod server;
