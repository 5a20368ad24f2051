//! `loadgen`: signed events for fresh random people, for tests and benchmarks.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::Args;
use rayon::prelude::*;

use super::{fail, CmdResult};
use crate::core::event::{ConsentEvent, EventJson, SignedEvent};
use crate::keyfile;
use crate::ledger::clock;

/// Arguments of `loadgen`.
#[derive(Args, Debug)]
pub struct LoadgenArgs {
    /// Events in total
    #[arg(long)]
    pub events: u64,
    /// Number of people (fresh random keys on every run)
    #[arg(long, default_value_t = 1000)]
    pub users: u64,
    /// Who processes the data, in every event
    #[arg(long, default_value = "example.com")]
    pub controller: String,
    /// What for, in every event
    #[arg(long, default_value = "cawg.ai_training")]
    pub purpose: String,
    /// The ledger's origin
    #[arg(long, default_value = "consentlog.local/log")]
    pub log: String,
    /// The NDJSON file to write (for `consentlog append`)
    #[arg(long)]
    pub out: PathBuf,
}

/// One person's chain of `n` events: seq 0.., each linked to the previous, decisions mixed.
pub fn chain(log: &str, controller: &str, purpose: &str, n: u64, now: u64) -> Vec<SignedEvent> {
    let key = keyfile::generate();
    let subject = key.verifying_key().to_bytes();
    let mut coin = u64::from_le_bytes(keyfile::random32()[..8].try_into().expect("8 bytes")) | 1;
    let mut head = None;
    let mut out = Vec::with_capacity(n as usize);
    for seq in 0..n {
        // xorshift: a cheap mix of opt-ins and opt-outs, opt-in first more often.
        coin ^= coin << 13;
        coin ^= coin >> 7;
        coin ^= coin << 17;
        let opt_in = seq == 0 || coin % 3 != 0;
        let ev = ConsentEvent::next(log, subject, (controller, purpose), opt_in, head, now, None)
            .sign(&key);
        head = Some((seq, ev.event_hash()));
        out.push(ev);
    }
    out
}

pub fn loadgen(a: LoadgenArgs) -> CmdResult {
    if a.users == 0 {
        return Err(fail("--users must be at least 1"));
    }
    crate::core::event::check_name("controller", &a.controller).map_err(fail)?;
    crate::core::event::check_name("purpose", &a.purpose).map_err(fail)?;
    let users = a.users.min(a.events.max(1));
    let now = clock::now_ms();
    let chains: Vec<Vec<SignedEvent>> = (0..users)
        .into_par_iter()
        .map(|u| {
            let n = a.events / users + u64::from(u < a.events % users);
            chain(&a.log, &a.controller, &a.purpose, n, now)
        })
        .collect();
    let f = std::fs::File::create(&a.out).map_err(|e| fail(format!("{}: {e}", a.out.display())))?;
    let mut w = BufWriter::new(f);
    // Interleave people round by round, so each chain stays in order.
    let rounds = chains.iter().map(Vec::len).max().unwrap_or(0);
    for r in 0..rounds {
        for c in &chains {
            if let Some(ev) = c.get(r) {
                serde_json::to_writer(&mut w, &EventJson::from(ev)).map_err(fail)?;
                w.write_all(b"\n").map_err(fail)?;
            }
        }
    }
    w.flush().map_err(fail)?;
    eprintln!(
        "wrote {} events for {users} people to {}",
        a.events,
        a.out.display()
    );
    Ok(())
}
