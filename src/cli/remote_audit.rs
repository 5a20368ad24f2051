//! `audit --url`: replay a live server from its public endpoints (and its openings, with an
//! auditor token), with the same checks as a local audit plus a consistency proof between every
//! two successive checkpoints of different sizes.

use ed25519_dalek::VerifyingKey;
use indicatif::ProgressBar;
use serde::Deserialize;

use super::{fail, Failure};
use crate::client::Client;
use crate::core::audit::{Auditor, Report, Violation};
use crate::core::entry::{Entry, Opening};
use crate::core::event::SignedEvent;
use crate::core::hash::{from_hex, HexHash};
use crate::core::note;
use crate::core::proof::OpeningJson;
use crate::core::tlog::{check_consistency, Blake3Hasher, TreeSize};

#[derive(Deserialize)]
struct Checkpoints {
    checkpoints: Vec<Numbered>,
}

#[derive(Deserialize)]
struct Numbered {
    number: u64,
    note: String,
}

#[derive(Deserialize)]
struct Page {
    start: u64,
    end: u64,
    entries: Vec<Row>,
}

#[derive(Deserialize)]
struct Row {
    index: u64,
    entry: String,
    #[serde(default)]
    opening: Option<OpeningJson>,
}

#[derive(Deserialize)]
struct Consistency {
    old_size: u64,
    new_size: u64,
    path: Vec<HexHash>,
}

fn bad(what: &str, e: impl std::fmt::Display) -> Failure {
    fail(format!("the server sent a malformed {what}: {e}"))
}

/// Replays the server at `url`.
pub fn audit(
    url: &str,
    token: Option<String>,
    key: &VerifyingKey,
    now: u64,
    bar: fn(u64) -> ProgressBar,
) -> Result<(Report, String), Failure> {
    let c = Client::new(url, token.clone());
    // Every checkpoint, oldest first.
    let mut notes = Vec::new();
    let mut from = 0u64;
    loop {
        let text = c
            .get(&format!("/v1/checkpoints?from={from}"), None)
            .map_err(fail)?;
        let page: Checkpoints =
            serde_json::from_str(&text).map_err(|e| bad("checkpoint list", e))?;
        if page.checkpoints.is_empty() {
            break;
        }
        for n in page.checkpoints {
            if n.number != notes.len() as u64 {
                return Err(fail(format!(
                    "checkpoint numbers skip from {} to {}",
                    notes.len(),
                    n.number
                )));
            }
            notes.push(n.note);
        }
        from = notes.len() as u64;
    }
    let opened: Vec<_> = notes.iter().map(|n| note::open(n, key).ok()).collect();
    let last = opened
        .iter()
        .rev()
        .flatten()
        .next()
        .ok_or_else(|| fail("the server has no checkpoint signed by this log key"))?;
    let origin = last.origin.clone();
    let size = last.size;
    let last_note = last.note.clone();
    let mut auditor = Auditor::new(key, &origin, &notes, now);
    let mut extra = Vec::new();

    // Consistency between successive checkpoints of different sizes, as the server proves it.
    let mut prev: Option<&note::SignedCheckpoint> = None;
    for cp in opened.iter().flatten() {
        if let Some(p) = prev.filter(|p| p.size != cp.size) {
            let text = c
                .get(
                    &format!("/v1/proofs/consistency?old={}&new={}", p.size, cp.size),
                    None,
                )
                .map_err(fail)?;
            let proof: Consistency =
                serde_json::from_str(&text).map_err(|e| bad("consistency proof", e))?;
            let path: Vec<_> = proof.path.iter().map(|h| h.0).collect();
            let ok = proof.old_size == p.size
                && proof.new_size == cp.size
                && check_consistency(
                    &Blake3Hasher,
                    TreeSize(p.size),
                    TreeSize(cp.size),
                    &p.root,
                    &cp.root,
                    &path,
                )
                .is_ok();
            if !ok {
                extra.push(Violation::other(
                    None,
                    format!(
                        "checkpoints of sizes {} and {} are not consistent (bad consistency proof)",
                        p.size, cp.size
                    ),
                ));
            }
        }
        prev = Some(cp);
    }

    // Entries up to the last checkpoint, with openings when we hold an auditor token.
    let endpoint = if token.is_some() {
        "/v1/export"
    } else {
        "/v1/entries"
    };
    let pb = bar(size);
    let mut next = 0u64;
    while next < size {
        let text = c
            .get(&format!("{endpoint}?start={next}&end={size}"), None)
            .map_err(fail)?;
        let page: Page = serde_json::from_str(&text).map_err(|e| bad("entry page", e))?;
        if page.start != next || page.end <= next || page.entries.len() as u64 != page.end - next {
            return Err(fail(format!("the server sent a bad entry page at {next}")));
        }
        let mut chunk: Vec<(Entry, Option<Opening>)> = Vec::with_capacity(page.entries.len());
        for (i, row) in page.entries.into_iter().enumerate() {
            let index = next + i as u64;
            if row.index != index {
                return Err(fail(format!("entry page out of order at {index}")));
            }
            let bytes = from_hex(&row.entry).map_err(|e| bad("entry", e))?;
            let e = Entry::decode(&bytes).map_err(|e| bad(&format!("entry {index}"), e))?;
            let o = match row.opening {
                None => None,
                Some(o) => Some(Opening {
                    nonce: o.nonce,
                    event: SignedEvent::decode(&o.event)
                        .map_err(|e| bad(&format!("opening {index}"), e))?,
                }),
            };
            chunk.push((e, o));
        }
        next = page.end;
        auditor.push_chunk(chunk);
        pb.set_position(next);
    }
    pb.finish_and_clear();
    let mut report = auditor.finish();
    report.violations.extend(extra);
    Ok((report, last_note))
}
