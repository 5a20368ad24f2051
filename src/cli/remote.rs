//! The CLI as a client of `consentlog serve`: grant/revoke, prove and history over HTTP.

use std::path::Path;

use ed25519_dalek::SigningKey;
use serde_json::Value;

use super::{fail, parse_subject, CmdResult, Failure, Triple};
use crate::client::Client;
use crate::core::event::{ConsentEvent, EventJson};
use crate::core::hash::{from_hex_array, to_hex};
use crate::core::proof::ConsentProof;
use crate::core::request::sign_request;
use crate::keyfile;
use crate::ledger::clock;

/// The origin named by a server's latest checkpoint.
pub fn origin(c: &Client) -> Result<String, Failure> {
    let note = c.get("/v1/checkpoint", None).map_err(fail)?;
    note.lines()
        .next()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .ok_or_else(|| fail("the server's checkpoint has no origin line"))
}

pub fn decide(
    url: &str,
    key: &SigningKey,
    t: &Triple,
    expires_at: Option<u64>,
    opt_in: bool,
) -> CmdResult {
    let c = Client::new(url, None);
    let log = origin(&c)?;
    let subject = key.verifying_key().to_bytes();
    let path = format!(
        "/v1/heads?subject={}&controller={}&purpose={}",
        to_hex(&subject),
        t.controller,
        t.purpose
    );
    let auth = sign_request(key, "GET", &path, clock::now_ms());
    let head: Value = serde_json::from_str(&c.get(&path, Some(&auth)).map_err(fail)?)
        .map_err(|e| fail(format!("bad heads answer: {e}")))?;
    let head = match (head["seq"].as_u64(), head["event_hash"].as_str()) {
        (Some(s), Some(h)) => Some((
            s,
            from_hex_array::<32>(h).map_err(|e| fail(format!("bad event_hash: {e}")))?,
        )),
        _ => None,
    };
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
    let body = serde_json::to_string(&EventJson::from(&ev)).expect("json");
    let receipt = c.post("/v1/events", &body).map_err(fail)?;
    println!("{}", receipt.trim_end());
    Ok(())
}

pub fn prove(
    url: &str,
    token: Option<String>,
    subject: &[u8; 32],
    t: &Triple,
    at: Option<u64>,
) -> Result<ConsentProof, Failure> {
    let c = Client::new(url, token);
    let mut path = format!(
        "/v1/proofs/consent?subject={}&controller={}&purpose={}",
        to_hex(subject),
        t.controller,
        t.purpose
    );
    if let Some(at) = at {
        path.push_str(&format!("&at={at}"));
    }
    let text = c.get(&path, None).map_err(fail)?;
    serde_json::from_str(&text).map_err(|e| fail(format!("the server sent no consent proof: {e}")))
}

pub fn history(url: &str, key_file: &Path, subject: Option<&str>) -> CmdResult {
    let key = keyfile::read(key_file, true).map_err(fail)?;
    let mine = key.verifying_key().to_bytes();
    if let Some(s) = subject {
        if parse_subject(s)? != mine {
            return Err(fail("--subject is not the public key of --key"));
        }
    }
    let c = Client::new(url, None);
    let path = format!("/v1/subjects/{}/history", to_hex(&mine));
    let auth = sign_request(&key, "GET", &path, clock::now_ms());
    let text = c.get(&path, Some(&auth)).map_err(fail)?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| fail(format!("the server sent no history: {e}")))?;
    println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    Ok(())
}
