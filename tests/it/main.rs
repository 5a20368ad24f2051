//! The integration tests, one binary (`cargo test --test it`; one file with
//! `cargo test --test it -- crash::`). Each module is one former test binary; `support` holds
//! what they share.

mod support;

mod append_rules;
mod audit;
mod cli;
mod cli_keys;
mod crash;
mod durability;
mod first_hour;
mod fuzz_props;
mod history;
mod hostile;
mod integrity;
mod layers;
mod learn;
mod lying_operator;
mod map_buckets;
mod privacy;
mod proofs;
mod read_only_disk;
mod readme;
mod receipts;
mod replay_witness;
mod resource_faults;
mod server;
mod time_invariant;
mod vectors;
mod witness_network;
mod witness_server;
mod witnessed_receipts;
mod witnessing;
