//! Receipts on the command line: `verify-receipt`, and the check `grant` and `revoke` make of
//! the receipt they are handed before they report success.

use std::path::{Path, PathBuf};

use clap::Args;
use ed25519_dalek::VerifyingKey;

use super::time::both;
use super::{parse_log_key, read_input, CmdResult, Failure};
use crate::core::event::{EventJson, SignedEvent};
use crate::core::hash::to_hex;
use crate::core::receipt::{CheckedReceipt, Receipt};
use crate::witness;

/// Arguments of `verify-receipt`.
#[derive(Args, Debug)]
pub struct VerifyReceiptArgs {
    /// The log's public key: 64 hex digits, or a file holding them (log.pub)
    #[arg(long, env = "CONSENTLOG_LOG_KEY")]
    pub log_key: String,
    /// The receipt: its tlog-proof text, or the JSON that grant, revoke and append print ("-":
    /// standard input)
    pub receipt: String,
    /// The signed event (a JSON line, as `sign` prints it) the receipt must be for
    #[arg(long)]
    pub event: Option<PathBuf>,
}

/// Reads a receipt from its tlog-proof text or its JSON.
pub fn parse(text: &str, what: &str) -> Result<Receipt, Failure> {
    let r = if text.trim_start().starts_with('{') {
        crate::core::hash::json_object::<Receipt>(text).map_err(|e| e.to_string())
    } else {
        Receipt::parse(text).map_err(|e| e.to_string())
    };
    r.map_err(|e| Failure::new(2, format!("{what}: not a receipt: {e}")))
}

/// `verify-receipt`: exit 0 when the receipt proves its event is in the log, 2 when not.
pub fn verify_receipt(a: VerifyReceiptArgs) -> CmdResult {
    let key = parse_log_key(&a.log_key)?;
    let r = parse(&read_input(&a.receipt)?, &a.receipt)?;
    let checked = match &a.event {
        None => r.check(&key),
        Some(file) => {
            let line = std::fs::read_to_string(file)
                .map_err(|e| Failure::new(1, format!("{}: {e}", file.display())))?;
            let ev = EventJson::parse(line.trim()).map_err(|e| {
                Failure::new(2, format!("{}: not a signed event: {e}", file.display()))
            })?;
            r.check_for(&key, &ev)
        }
    }
    .map_err(|e| Failure::new(2, format!("INVALID receipt: {e}")))?;
    print!("{}", describe(&checked, &r.opening.event, &key));
    if a.event.is_some() {
        println!("  it is the receipt of the event given (byte for byte)");
    }
    Ok(())
}

/// What a checked receipt shows, for people.
pub fn describe(c: &CheckedReceipt, ev: &SignedEvent, key: &VerifyingKey) -> String {
    let e = &ev.event;
    let decision = e.decision().map(|d| d.as_str()).unwrap_or("?");
    format!(
        "valid receipt: leaf {} of log {:?}, integrated at {}\n  \
         event {}: subject {} {decision} for controller {:?}, purpose {:?} (seq {})\n  \
         under a checkpoint of {} leaves with root {}, signed by log key {}\n",
        c.index,
        c.checkpoint.origin,
        both(c.leaf.integrated_at),
        to_hex(&c.event_hash),
        to_hex(&e.subject),
        e.controller,
        e.purpose,
        e.seq,
        c.checkpoint.size,
        to_hex(&c.checkpoint.root),
        to_hex(key.as_bytes()),
    )
}

/// Checks the receipt `grant` or `revoke` was handed for `ev` under the log key, and that the
/// log chained `ev` after the previous receipt held for the same consent (the receipts file
/// beside the state file); then holds it. A receipt that fails is an error (exit 2): the
/// event's place in the log is not shown.
pub fn accept(
    key: &VerifyingKey,
    r: &Receipt,
    ev: &SignedEvent,
    state: Option<&Path>,
) -> Result<CheckedReceipt, Failure> {
    let c = r.check_for(key, ev).map_err(|e| {
        Failure::new(
            2,
            format!("the log's receipt does not check ({e}): the event is not shown to be logged"),
        )
    })?;
    if let Some(path) = witness::receipts_path(state) {
        let held = witness::check_and_hold_receipt(
            &path,
            key,
            &c.leaf.key,
            c.index,
            &c.leaf_hash,
            c.leaf.seq,
            c.leaf.prev,
        );
        match held {
            Ok(()) => {}
            // The receipt itself checked; only the comparison with the last one is lost.
            Err(e @ witness::ChainError::File(_)) => {
                eprintln!("warning: {e}; the chain of receipts was not checked");
            }
            Err(e) => return Err(Failure::new(2, e)),
        }
    }
    Ok(c)
}
