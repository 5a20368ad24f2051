//! Receipts on the command line: `verify-receipt`, and the check `grant` and `revoke` make of
//! the receipt they are handed before they report success.

use std::path::{Path, PathBuf};

use clap::Args;
use ed25519_dalek::VerifyingKey;

use super::time::both;
use super::{fail, parse_log_key, read_input, witnessed, CmdResult, Failure};
use crate::client::{Client, ClientError};
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
    /// A c2sp.org/tlog-policy file the receipt's checkpoint must meet: a witnessed receipt
    /// (`consentlog witnessed-receipt`; docs/WITNESSING.md)
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

/// Arguments of `witnessed-receipt`.
#[derive(Args, Debug)]
pub struct WitnessedReceiptArgs {
    /// The log's server (base URL)
    #[arg(long, env = "CONSENTLOG_SERVER")]
    pub server: String,
    /// The log's public key: 64 hex digits, or a file holding them (log.pub); the answer is
    /// checked under it before it is written
    #[arg(long, env = "CONSENTLOG_LOG_KEY")]
    pub log_key: String,
    /// A receipt of the entry (as grant, revoke or append print it, or its tlog-proof text;
    /// "-": standard input)
    pub receipt: String,
    /// Write the witnessed receipt (JSON) here (default: standard output)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep asking, once a second, for up to this many seconds while no cosigned checkpoint
    /// covers the entry yet (default: ask once)
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub wait: u64,
    /// A c2sp.org/tlog-policy file the witnessed receipt must meet (as verify-receipt --policy)
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
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
    let policy = witnessed::load(a.policy.as_deref())?;
    let w = witnessed::check_note(
        policy.as_ref(),
        &checked.genesis,
        &key,
        &r.anchor.checkpoint,
    )
    .map_err(|e| Failure::new(2, format!("INVALID receipt: {e}")))?;
    print!(
        "{}{}",
        w.prefix(),
        describe(&checked, &r.opening.event, &key)
    );
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

/// `witnessed-receipt`: asks the server for the receipt of the same entry under the newest
/// cosigned checkpoint that covers it (`POST /v1/receipts/witnessed`), checks it (the entry
/// and opening are the given receipt's, byte for byte; the receipt checks under the log key;
/// its checkpoint meets `--policy` and the log's declared policy, if any) and writes it.
/// Exit 0 written, 1 none yet (or the server failed), 2 the answer or the given receipt does
/// not check.
pub fn witnessed_receipt(a: WitnessedReceiptArgs) -> CmdResult {
    let key = parse_log_key(&a.log_key)?;
    let given = parse(&read_input(&a.receipt)?, &a.receipt)?;
    given
        .check(&key)
        .map_err(|e| Failure::new(2, format!("{}: INVALID receipt: {e}", a.receipt)))?;
    let policy = witnessed::load(a.policy.as_deref())?;
    let client = Client::new(&a.server, None);
    let body = serde_json::to_string(&given).expect("json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(a.wait);
    let path = crate::api::paths::WITNESSED_RECEIPT;
    let text = loop {
        match client.post(path, &body) {
            Ok(t) => break t,
            Err(ClientError::Status {
                status: 404,
                code: Some(code),
                ..
            }) if code == "not_cosigned" && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            Err(e) => return Err(fail(e)),
        }
    };
    let r = crate::core::hash::json_object::<Receipt>(&text)
        .map_err(|e| Failure::new(2, format!("the server's answer is not a receipt: {e}")))?;
    if r.index != given.index || r.leaf != given.leaf {
        return Err(Failure::new(
            2,
            "INVALID witnessed receipt: it is for another entry than the receipt given",
        ));
    }
    let checked = r
        .check_for(&key, &given.opening.event)
        .map_err(|e| Failure::new(2, format!("INVALID witnessed receipt: {e}")))?;
    if r.opening != given.opening {
        return Err(Failure::new(
            2,
            "INVALID witnessed receipt: its opening differs from the receipt given",
        ));
    }
    let w = witnessed::check_note(
        policy.as_ref(),
        &checked.genesis,
        &key,
        &r.anchor.checkpoint,
    )
    .map_err(|e| Failure::new(2, format!("INVALID witnessed receipt: {e}")))?;
    let json = serde_json::to_string(&r).expect("json") + "\n";
    match &a.out {
        Some(f) => std::fs::write(f, &json).map_err(|e| fail(format!("{}: {e}", f.display())))?,
        None => print!("{json}"),
    }
    let msg = format!(
        "{}{}",
        w.prefix(),
        describe(&checked, &r.opening.event, &key)
    );
    if a.out.is_some() {
        print!("{msg}");
    } else {
        eprint!("{msg}");
    }
    Ok(())
}
