//! The CLI as a client of `consentlog serve`: grant/revoke, prove and history over HTTP.

use std::path::Path;

use ed25519_dalek::SigningKey;

use super::{fail, parse_subject, CmdResult, Failure, Triple};
use crate::api::{ConsentQuery, HeadsQuery};
use crate::client::Client;
use crate::core::event::{ConsentEvent, EventJson};
use crate::core::proof::ConsentProof;
use crate::keyfile;
use crate::ledger::clock;

pub fn decide(
    url: &str,
    key: &SigningKey,
    log_key: &ed25519_dalek::VerifyingKey,
    t: &Triple,
    expires_at: Option<u64>,
    opt_in: bool,
) -> CmdResult {
    let c = Client::new(url, None);
    let log = c.origin().map_err(fail)?;
    let subject = key.verifying_key().to_bytes();
    let q = HeadsQuery {
        subject,
        controller: t.controller.clone(),
        purpose: t.purpose.clone(),
    };
    let head = c.heads(&q, Some(key)).map_err(fail)?;
    let head = head.seq.zip(head.event_hash);
    let ev = ConsentEvent::next(
        &log,
        subject,
        (&t.controller, &t.purpose),
        opt_in,
        head,
        clock::now_ms(),
        expires_at,
    )
    .sign(key);
    let appended = c.append(&EventJson::from(&ev)).map_err(fail)?;
    let checked = super::receipt::accept(log_key, &appended.receipt, &ev, None)?;
    println!(
        "{}",
        serde_json::to_string(&appended.receipt).expect("json")
    );
    eprint!("{}", super::receipt::describe(&checked, &ev, log_key));
    Ok(())
}

pub fn prove(
    url: &str,
    token: Option<String>,
    subject: &[u8; 32],
    t: &Triple,
    at: Option<u64>,
) -> Result<ConsentProof, Failure> {
    let q = ConsentQuery {
        subject: *subject,
        controller: t.controller.clone(),
        purpose: t.purpose.clone(),
        at,
    };
    Client::new(url, token).consent(&q).map_err(fail)
}

pub fn history(url: &str, key_file: &Path, subject: Option<&str>) -> CmdResult {
    let key = keyfile::read_person(key_file, "history").map_err(fail)?;
    let mine = key.verifying_key().to_bytes();
    if let Some(s) = subject {
        if parse_subject(s)? != mine {
            return Err(fail("--subject is not the public key of --key"));
        }
    }
    let h = Client::new(url, None).history(&key).map_err(fail)?;
    eprint!("{}", super::person::summary(&h));
    println!("{}", serde_json::to_string_pretty(&h).expect("json"));
    Ok(())
}
