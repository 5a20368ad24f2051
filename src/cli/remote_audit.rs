//! `audit --url`: replay a live server from its public endpoints (and its openings, with an
//! auditor token), with the same checks as a local audit plus a consistency proof between every
//! two successive checkpoints of different sizes.

use ed25519_dalek::VerifyingKey;
use indicatif::ProgressBar;

use super::{fail, Failure};
use crate::api::{CheckpointsQuery, ConsistencyQuery, PageQuery};
use crate::client::Client;
use crate::core::audit::{Auditor, Report, Violation};
use crate::core::event::SignedEvent;
use crate::core::leaf::Leaf;
use crate::core::note;
use crate::core::opening::Opening;
use crate::core::proof::OpeningJson;
use crate::core::tlog::{check_consistency, Sha256Hasher, TreeSize};
use crate::core::vrf::VrfProof;

fn bad(what: &str, e: impl std::fmt::Display) -> Failure {
    fail(format!("the server sent a malformed {what}: {e}"))
}

/// An export row's opening and the VRF proof beside it.
type RowOpening = (OpeningJson, Option<[u8; 80]>);

/// One page of entries, from `/v1/entries` or (with openings) `/v1/export`.
struct Page {
    start: u64,
    end: u64,
    rows: Vec<(u64, Vec<u8>, Option<RowOpening>)>,
}

fn fetch_page(c: &Client, openings: bool, q: &PageQuery) -> Result<Page, Failure> {
    if openings {
        let p = c.export(q).map_err(fail)?;
        let rows = p
            .entries
            .into_iter()
            .map(|r| (r.index, r.entry, r.opening.map(|o| (o, r.vrf_proof))));
        Ok(Page {
            start: p.start,
            end: p.end,
            rows: rows.collect(),
        })
    } else {
        let p = c.entries(q).map_err(fail)?;
        let rows = p.entries.into_iter().map(|r| (r.index, r.entry, None));
        Ok(Page {
            start: p.start,
            end: p.end,
            rows: rows.collect(),
        })
    }
}

/// Replays the server at `url`.
pub fn audit(
    url: &str,
    token: Option<String>,
    key: &VerifyingKey,
    now: u64,
    bar: fn(u64) -> ProgressBar,
    mut finder: Option<&mut crate::core::evidence_finder::Finder>,
) -> Result<(Report, String, Vec<String>), Failure> {
    let c = Client::new(url, token.clone());
    // Every checkpoint, oldest first.
    let mut notes = Vec::new();
    let mut from = 0u64;
    loop {
        let page = c
            .checkpoints(&CheckpointsQuery {
                from: Some(from),
                to: None,
            })
            .map_err(fail)?;
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
            let proof = c
                .consistency(&ConsistencyQuery {
                    old: p.size,
                    new: Some(cp.size),
                })
                .map_err(fail)?;
            let path: Vec<_> = proof.path.iter().map(|h| h.0).collect();
            let ok = proof.old_size == p.size
                && proof.new_size == cp.size
                && check_consistency(
                    &Sha256Hasher,
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

    // Leaves up to the last checkpoint, with openings when we hold an auditor token.
    let openings = token.is_some();
    let pb = bar(size);
    let mut next = 0u64;
    while next < size {
        let q = PageQuery {
            start: Some(next),
            end: Some(size),
        };
        let page = fetch_page(&c, openings, &q)?;
        if page.start != next || page.end <= next || page.rows.len() as u64 != page.end - next {
            return Err(fail(format!("the server sent a bad leaf page at {next}")));
        }
        let mut chunk: Vec<(Leaf, Option<Opening>)> = Vec::with_capacity(page.rows.len());
        for (i, (row_index, bytes, opening)) in page.rows.into_iter().enumerate() {
            let index = next + i as u64;
            if row_index != index {
                return Err(fail(format!("leaf page out of order at {index}")));
            }
            let e = Leaf::decode(&bytes).map_err(|e| bad(&format!("leaf {index}"), e))?;
            if let Some(f) = finder.as_deref_mut() {
                f.push(bytes.clone());
            }
            let o = match opening {
                None => None,
                Some((o, vrf)) => Some(Opening {
                    nonce: o.nonce,
                    vrf: VrfProof(
                        vrf.ok_or_else(|| bad(&format!("opening {index}"), "no VRF proof"))?,
                    ),
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
    Ok((report, last_note, notes))
}
