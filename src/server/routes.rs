//! The HTTP handlers, each with its OpenAPI description (`#[utoipa::path]`): the router and the
//! document are both built from these (`super::api_router`). Writes go through the sequencer;
//! reads go to the ledger directly (on the blocking pool when they do real work).

use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::ApiError;
use super::extract::{Body, Query, Subject};
use super::sequencer::SubmitError;
use super::AppState;
use crate::api::schema::{ConsentProofSchema, HistorySchema};
use crate::api::*;
use crate::core::event::{check_name, EventJson, SignedEvent};
use crate::core::history::History;
use crate::core::leaf::Leaf;
use crate::core::opening::Opening;
use crate::core::proof::{ConsentProof, OpeningJson};
use crate::core::reject::Reject;
use crate::ledger::{
    clock, precheck, precheck_one, Invalid, Ledger, LedgerError, Outcome, Snapshot,
};
use std::sync::Arc;

fn future_at() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "`at` is in the future",
    )
}

/// Answers a request that took longer than the configured timeout (`tower::timeout`'s error).
pub async fn timed_out(_: axum::BoxError) -> ApiError {
    ApiError::unavailable("the request timed out")
}

/// A known path with a method it does not have.
pub async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Any other path.
pub async fn fallback(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

fn check_names(controller: &str, purpose: &str) -> Result<(), ApiError> {
    check_name("controller", controller).map_err(ApiError::bad_request)?;
    check_name("purpose", purpose).map_err(ApiError::bad_request)
}

/// The snapshot a proof at `at` is answered from: the latest if its map leaf is not older
/// than `at`. Without `at` ("now"), the latest if nothing was appended after its map leaf (the
/// state at its time is then the state now). Otherwise a map leaf is appended; while the last
/// one is under a second old this waits for it (at most 2 s in all, or for a newer one the
/// heartbeat appends), then answers 503 with Retry-After. Runs on the blocking pool.
fn snapshot(ledger: &Ledger, at: Option<u64>) -> Result<Arc<Snapshot>, ApiError> {
    let want = match at {
        Some(at) => at,
        None if ledger.size() > ledger.latest().checkpoint.size => ledger.now_ms(),
        None => 0,
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match ledger.snapshot_for(want) {
            Err(LedgerError::Invalid(Invalid::MapLeafTooSoon { retry_after_ms }))
                if Instant::now() + std::time::Duration::from_millis(retry_after_ms) < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(retry_after_ms.max(1)));
            }
            other => return Ok(other?),
        }
    }
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("worker failed", e))?
}

async fn submit(
    st: &AppState,
    events: Vec<Result<SignedEvent, Reject>>,
) -> Result<Vec<Outcome>, ApiError> {
    // Signatures are checked and state keys found (or, for a new triple, computed with the
    // VRF) here, on every core, before the one writer sees the events.
    let ledger = st.ledger.clone();
    let checked = blocking(move || {
        let checked = if events.len() == 1 {
            events.into_iter().map(|r| r.map(precheck_one)).collect()
        } else {
            precheck(events, ledger.subject_keys())
        };
        Ok(ledger.resolve_keys(checked)?)
    })
    .await?;
    let rx = st.seq.submit(checked).map_err(|e| match e {
        SubmitError::Full => {
            st.metrics.count_overloaded();
            ApiError::overloaded()
        }
        SubmitError::Closed => ApiError::unavailable("the server is shutting down"),
    })?;
    rx.await
        .map_err(|_| ApiError::unavailable("the sequencer stopped"))?
        .map_err(|_| ApiError::storage_failure())
}

/// Append one signed event (the CLI's JSON line)
#[utoipa::path(
    post,
    path = paths::EVENTS,
    params(AppendQuery),
    request_body(content = EventSchema, content_type = "application/json"),
    responses(
        (status = 201, description = "Appended", body = AppendAnswer),
        (status = 200, description = "The identical event was already logged", body = AppendAnswer),
        (status = 400, description = "Malformed event or query", body = ErrorBody),
        (status = 409, description = "seq or prev conflicts with the key's head", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 422, description = "An append rule refused the event", body = ErrorBody),
        (status = 503, description = "Overloaded, timed out or shutting down (Retry-After)", body = ErrorBody),
    )
)]
pub async fn post_event(
    State(st): State<AppState>,
    Query(q): Query<AppendQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let ev = EventJson::parse(body.text()?);
    if let Err(r) = &ev {
        st.metrics.count_outcomes(&[Outcome::Rejected(r.clone())]);
    }
    let ev = ev.map_err(|r| ApiError::from(&r))?;
    let outcome = submit(&st, vec![Ok(ev)]).await?.remove(0);
    st.metrics.observe_append_request(started.elapsed());
    let (status, receipt) = match outcome {
        Outcome::Accepted(r) => (StatusCode::CREATED, r),
        Outcome::Duplicate(r) => (StatusCode::OK, r),
        Outcome::Rejected(r) => return Err(ApiError::from(&r)),
    };
    if q.wait != Some(Wait::Checkpoint) {
        return Ok((status, Json(AppendAnswer::Receipt(Box::new(receipt)))).into_response());
    }
    let mut covered = st.covered.clone();
    covered
        .wait_for(|size| *size > receipt.index)
        .await
        .map_err(|_| ApiError::unavailable("the server is shutting down"))?;
    let ledger = st.ledger.clone();
    let body = blocking(move || {
        let cp = ledger.latest().checkpoint.clone();
        let inclusion = ledger.prove_inclusion(receipt.index, Some(cp.size))?;
        Ok(AppendAnswer::Checkpointed(Box::new(CheckpointedReceipt {
            receipt,
            checkpoint: cp.note,
            inclusion,
        })))
    })
    .await?;
    Ok((status, Json(body)).into_response())
}

/// Append up to 10,000 signed events (NDJSON or a JSON array); one result per event, in order
#[utoipa::path(
    post,
    path = paths::EVENTS_BATCH,
    request_body(
        description = "NDJSON (one event per line) or a JSON array of events",
        content(
            (String = "application/x-ndjson"),
            (Vec<EventSchema> = "application/json"),
        )
    ),
    responses(
        (status = 200, body = BatchResults),
        (status = 400, description = "No events, or not a JSON array", body = ErrorBody),
        (status = 413, description = "Body over the limit or over 10,000 events", body = ErrorBody),
        (status = 503, description = "Overloaded, timed out or shutting down (Retry-After)", body = ErrorBody),
    )
)]
pub async fn post_batch(
    State(st): State<AppState>,
    body: Body,
) -> Result<Json<BatchResults>, ApiError> {
    let started = Instant::now();
    let text = body.text()?;
    // Counted before any event is parsed: an oversized batch costs nothing but the count.
    let n = crate::core::event::count_batch(text).map_err(ApiError::bad_request)?;
    if n > MAX_BATCH {
        return Err(too_many(n));
    }
    let events = crate::core::event::parse_batch(text).map_err(ApiError::bad_request)?;
    if events.is_empty() {
        return Err(ApiError::bad_request("the batch holds no events"));
    }
    let outcomes = submit(&st, events).await?;
    st.metrics.observe_append_request(started.elapsed());
    let results = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Accepted(r) | Outcome::Duplicate(r) => BatchResult {
                status: if matches!(o, Outcome::Accepted(_)) {
                    201
                } else {
                    200
                },
                receipt: Some(r.clone()),
                error: None,
            },
            Outcome::Rejected(r) => {
                let e = ApiError::from(r);
                BatchResult {
                    status: e.status.as_u16(),
                    receipt: None,
                    error: Some(e.detail()),
                }
            }
        })
        .collect();
    Ok(Json(BatchResults { results }))
}

fn too_many(n: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("{n} items in one request; at most {MAX_BATCH}"),
    )
}

/// A key's current seq and event hash, for signing the next event
#[utoipa::path(
    get,
    path = paths::HEADS,
    params(HeadsQuery),
    responses(
        (status = 200, body = HeadResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Wrong credentials; a signed request's code names why", body = ErrorBody),
        (status = 503, description = "Too many signed requests within 5 minutes (Retry-After)", body = ErrorBody),
    ),
    security(("readerToken" = []), ("signedRequest" = []))
)]
pub async fn get_heads(
    State(st): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HeadsQuery>,
) -> Result<Json<HeadResponse>, ApiError> {
    check_names(&q.controller, &q.purpose)?;
    st.auth.require_reader_or_subject(
        &st.people,
        &headers,
        &q.controller,
        ("GET", &path_and_query(&uri), b""),
        &q.subject,
    )?;
    let head = st.ledger.head_of(&q.subject, &q.controller, &q.purpose)?;
    Ok(Json(HeadResponse {
        subject: q.subject,
        controller: q.controller,
        purpose: q.purpose,
        seq: head.map(|h| h.seq),
        event_hash: head.map(|h| h.event_hash),
        index: head.map(|h| h.index),
    }))
}

fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string())
}

/// The latest signed checkpoint (C2SP signed note)
#[utoipa::path(
    get,
    path = paths::CHECKPOINT,
    responses((status = 200, description = "The note", body = String, content_type = "text/plain"))
)]
pub async fn get_checkpoint(State(st): State<AppState>) -> Response {
    let note = st.ledger.latest().checkpoint.note.clone();
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response()
}

/// The newest checkpoint the witnesses cosigned: the log's note with every cosignature line
/// stored for it (c2sp.org/tlog-cosignature); 404 while no witness has cosigned one
#[utoipa::path(
    get,
    path = paths::COSIGNED,
    responses(
        (status = 200, description = "The cosigned note", body = String, content_type = "text/plain"),
        (status = 404, body = ErrorBody)
    )
)]
pub async fn get_cosigned(State(st): State<AppState>) -> Result<Response, ApiError> {
    let ledger = st.ledger.clone();
    match blocking(move || Ok(ledger.latest_cosigned()?)).await? {
        Some((_, note)) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_cosigned",
            "no checkpoint of this log has been cosigned by a witness yet",
        )),
    }
}

/// The witnessed receipt of an entry: given any receipt of it (its JSON or tlog-proof text),
/// the receipt of the same entry under the newest checkpoint the witnesses cosigned that covers
/// it (docs/FORMAT.md §7); 404 `not_cosigned` until one does
#[utoipa::path(
    post,
    path = paths::WITNESSED_RECEIPT,
    request_body(
        description = "A receipt of the entry: the JSON grant, revoke, append and POST /v1/events \
                       hand out, or its tlog-proof text",
        content(
            (ReceiptSchema = "application/json"),
            (String = "text/plain"),
        )
    ),
    responses(
        (status = 200, body = ReceiptSchema),
        (status = 400, description = "Not a receipt", body = ErrorBody),
        (status = 404, description = "`unknown_receipt`: not this log's entry and opening; \
                                      `not_cosigned`: no cosigned checkpoint covers it yet", body = ErrorBody),
    )
)]
pub async fn post_witnessed_receipt(
    State(st): State<AppState>,
    body: Body,
) -> Result<Json<crate::core::receipt::Receipt>, ApiError> {
    let text = body.text()?;
    use crate::core::receipt::Receipt;
    let given = if text.trim_start().starts_with('{') {
        crate::core::hash::json_object::<Receipt>(text).map_err(|e| e.to_string())
    } else {
        Receipt::parse(text).map_err(|e| e.to_string())
    }
    .map_err(|e| ApiError::bad_request(format!("not a receipt: {e}")))?;
    let ledger = st.ledger.clone();
    let r = blocking(move || Ok(ledger.witnessed_receipt(&given)?)).await?;
    Ok(Json(r))
}

/// Stored checkpoints by number
#[utoipa::path(
    get,
    path = paths::CHECKPOINTS,
    params(CheckpointsQuery),
    responses((status = 200, body = CheckpointList), (status = 400, body = ErrorBody))
)]
pub async fn get_checkpoints(
    State(st): State<AppState>,
    Query(q): Query<CheckpointsQuery>,
) -> Result<Json<CheckpointList>, ApiError> {
    let from = q.from.unwrap_or(0);
    let to = q.to.unwrap_or(u64::MAX).min(from.saturating_add(MAX_PAGE));
    let ledger = st.ledger.clone();
    let list = blocking(move || Ok(ledger.checkpoint_range(from, to)?)).await?;
    let checkpoints = list
        .into_iter()
        .map(|(number, note)| NumberedCheckpoint { number, note })
        .collect();
    Ok(Json(CheckpointList { checkpoints }))
}

/// The entries a page asks for, within the tree of `size` entries.
fn page(q: &PageQuery, size: u64) -> Result<(u64, u64), ApiError> {
    let start = q.start.unwrap_or(0);
    let end = q.end.unwrap_or(size);
    if start > end {
        return Err(ApiError::bad_request(format!(
            "start {start} is after end {end}"
        )));
    }
    Ok((start, end.min(size).min(start.saturating_add(MAX_PAGE))))
}

/// Entries `start..end` (with openings if asked), read on the blocking pool, one row each;
/// and where the next page starts.
async fn rows<R: Send + 'static>(
    st: &AppState,
    start: u64,
    end: u64,
    openings: bool,
    row: fn(u64, &Leaf, Option<&Opening>) -> R,
) -> Result<(u64, Vec<R>), ApiError> {
    let ledger = st.ledger.clone();
    let read = blocking(move || Ok(ledger.read_range(start, end, openings)?)).await?;
    let out: Vec<R> = read
        .iter()
        .zip(start..)
        .map(|((e, o), index)| row(index, e, o.as_ref()))
        .collect();
    Ok((start + out.len() as u64, out))
}

/// Public entries (no openings), at most 10,000 per page
#[utoipa::path(
    get,
    path = paths::ENTRIES,
    params(PageQuery),
    responses((status = 200, body = EntryPage), (status = 400, body = ErrorBody))
)]
pub async fn get_entries(
    State(st): State<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Json<EntryPage>, ApiError> {
    let (start, end) = page(&q, st.ledger.size())?;
    let (end, entries) = rows(&st, start, end, false, |index, e, _| EntryRow {
        index,
        entry: e.to_bytes(),
        leaf_hash: e.leaf_hash(),
    })
    .await?;
    Ok(Json(EntryPage {
        start,
        end,
        entries,
    }))
}

/// Entries with openings, for auditors
#[utoipa::path(
    get,
    path = paths::EXPORT,
    params(PageQuery),
    responses(
        (status = 200, body = ExportPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("auditorToken" = []))
)]
pub async fn get_export(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, ApiError>,
) -> Result<Json<ExportPage>, ApiError> {
    // Credentials first: a stranger learns nothing, not even how the query was wrong.
    st.auth.require_auditor(&headers)?;
    let (start, end) = page(&q?.0, st.ledger.size())?;
    let (end, entries) = rows(&st, start, end, true, |index, e, o| ExportRow {
        index,
        entry: e.to_bytes(),
        opening: o.map(OpeningJson::from),
        vrf_proof: o.map(|o| o.vrf.0),
    })
    .await?;
    Ok(Json(ExportPage {
        start,
        end,
        entries,
    }))
}

/// RFC 9162 inclusion proof
#[utoipa::path(
    get,
    path = paths::INCLUSION,
    params(InclusionQuery),
    responses(
        (status = 200, body = InclusionProof),
        (status = 400, body = ErrorBody),
        (status = 422, description = "Not in the tree", body = ErrorBody),
    )
)]
pub async fn get_inclusion(
    State(st): State<AppState>,
    Query(q): Query<InclusionQuery>,
) -> Result<Json<InclusionProof>, ApiError> {
    let ledger = st.ledger.clone();
    let p = blocking(move || Ok(ledger.prove_inclusion(q.index, q.size)?)).await?;
    Ok(Json(p))
}

/// RFC 9162 consistency proof
#[utoipa::path(
    get,
    path = paths::CONSISTENCY,
    params(ConsistencyQuery),
    responses(
        (status = 200, body = ConsistencyProof),
        (status = 400, body = ErrorBody),
        (status = 422, description = "Sizes out of range", body = ErrorBody),
    )
)]
pub async fn get_consistency(
    State(st): State<AppState>,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    let ledger = st.ledger.clone();
    let p = blocking(move || Ok(ledger.prove_consistency(q.old, q.new)?)).await?;
    Ok(Json(p))
}

/// A consent proof (docs/FORMAT.md §8)
#[utoipa::path(
    get,
    path = paths::CONSENT,
    params(ConsentQuery),
    responses(
        (status = 200, body = ConsentProofSchema),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, description = "`at` is in the future", body = ErrorBody),
    ),
    security(("readerToken" = []))
)]
pub async fn get_consent(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ConsentQuery>,
) -> Result<Json<ConsentProof>, ApiError> {
    check_names(&q.controller, &q.purpose)?;
    st.auth.require_reader(&headers, &q.controller)?;
    let ledger = st.ledger.clone();
    let p = blocking(move || {
        if q.at.is_some_and(|at| at > clock::now_ms()) {
            return Err(future_at());
        }
        let snap = snapshot(&ledger, q.at)?;
        let at = q.at.unwrap_or(snap.map_leaf.time);
        Ok(ledger.prove_consent_in(&snap, &q.subject, &q.controller, &q.purpose, at)?)
    })
    .await?;
    Ok(Json(p))
}

/// Up to 10,000 consent proofs against one shared checkpoint
#[utoipa::path(
    post,
    path = paths::CONSENT,
    request_body(content = BulkConsentRequest, content_type = "application/json"),
    responses(
        (status = 200, body = BulkConsentResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "An `at` is in the future", body = ErrorBody),
    ),
    security(("readerToken" = []))
)]
pub async fn post_consent(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BulkConsentResponse>, ApiError> {
    let req: BulkConsentRequest = serde_json::from_slice(&body.0)
        .map_err(|e| ApiError::bad_request(format!("body must be {{\"queries\": [...]}}: {e}")))?;
    if req.queries.len() > MAX_BATCH {
        return Err(too_many(req.queries.len()));
    }
    st.auth.require_any_reader(&headers)?;
    for qu in &req.queries {
        st.auth.require_reader(&headers, &qu.controller)?;
    }
    let ledger = st.ledger.clone();
    let out = blocking(move || {
        let now = clock::now_ms();
        if req
            .queries
            .iter()
            .any(|qu| qu.at.is_some_and(|at| at > now))
        {
            return Err(future_at());
        }
        // One map leaf for all: not older than any query's `at`, and covering every event
        // when a query asks about now.
        let latest_at = req.queries.iter().filter_map(|qu| qu.at).max().unwrap_or(0);
        let grew = ledger.size() > ledger.latest().checkpoint.size;
        let now_asked = req.queries.iter().any(|qu| qu.at.is_none()) && grew;
        let want = if now_asked {
            latest_at.max(ledger.now_ms())
        } else {
            latest_at
        };
        let snap = snapshot(&ledger, Some(want))?;
        // Queries without `at` are answered as of the shared map leaf's time.
        let now = snap.map_leaf.time;
        let proofs = req
            .queries
            .iter()
            .map(|qu| {
                let at = qu.at.unwrap_or(now);
                match ledger.prove_consent_in(&snap, &qu.subject, &qu.controller, &qu.purpose, at) {
                    Ok(p) => ProofOrError::Proof(Box::new(p)),
                    Err(e) => ProofOrError::Error(ApiError::from(e).body()),
                }
            })
            .collect();
        Ok(BulkConsentResponse {
            checkpoint: snap.checkpoint.note.clone(),
            proofs,
        })
    })
    .await?;
    Ok(Json(out))
}

/// A person's own history (docs/FORMAT.md §9); the request signed by the person
#[utoipa::path(
    get,
    path = paths::HISTORY,
    params(("subject" = String, Path, description = "The person's public key (hex)")),
    responses(
        (status = 200, body = HistorySchema),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Wrong credentials; the code names why", body = ErrorBody),
        (status = 503, description = "Too many signed requests within 5 minutes (Retry-After)", body = ErrorBody),
    ),
    security(("signedRequest" = []))
)]
pub async fn get_history(
    State(st): State<AppState>,
    Subject(subject): Subject,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<History>, ApiError> {
    st.auth.require_subject(
        &st.people,
        &headers,
        ("GET", &path_and_query(&uri), b""),
        &subject,
    )?;
    let ledger = st.ledger.clone();
    let h = blocking(move || {
        let snap = snapshot(&ledger, None)?;
        Ok(ledger.history_in(&snap, &subject)?)
    })
    .await?;
    Ok(Json(h))
}

/// Liveness
#[utoipa::path(
    get,
    path = paths::HEALTHZ,
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain"))
)]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Prometheus metrics (text format 0.0.4)
#[utoipa::path(
    get,
    path = paths::METRICS,
    responses((status = 200, body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
        st.metrics.render(&st.ledger),
    )
        .into_response()
}

/// This document
#[utoipa::path(
    get,
    path = paths::OPENAPI,
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json"))
)]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi_json(),
    )
        .into_response()
}

/// Text for HTML: `&`, `<`, `>` and quotes escaped.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// This log, for people
///
/// What this log is (origin, public key, size, newest checkpoint), where its API is, and how
/// to check what it hands out. Public data only: no subject, no event.
#[utoipa::path(
    get,
    path = paths::PAGE,
    responses((status = 200, description = "This log, for people (HTML, no scripts)", body = String, content_type = "text/html"))
)]
pub async fn home(State(st): State<AppState>) -> Response {
    let l = &st.ledger;
    let latest = l.latest();
    let cp = &latest.checkpoint;
    let key = crate::core::hash::to_hex(l.public_key().as_bytes());
    let e = |s: &str| html_escape(s);
    let proofs = if st.auth.readers() > 0 {
        "enabled (reader token)"
    } else {
        "disabled: the operator has configured no reader token (--reader-token or --tokens-file)"
    };
    let exports = if st.auth.auditors() > 0 {
        "enabled (auditor token)"
    } else {
        "disabled: the operator has configured no auditor token (--auditor-token)"
    };
    let route = |method: &str, path: &str, what: &str| {
        let link = if method == "GET" && !path.contains('{') && !path.contains('?') {
            format!("<a href=\"{p}\"><code>{p}</code></a>", p = e(path))
        } else {
            format!("<code>{}</code>", e(path))
        };
        format!("<li><code>{method}</code> {link}: {}</li>\n", e(what))
    };
    let routes = [
        route(
            "GET",
            paths::OPENAPI,
            "the API document (OpenAPI 3.1): every route",
        ),
        route("GET", paths::CHECKPOINT, "the newest signed checkpoint"),
        route(
            "GET",
            "/tile/{L}/{N}, /tile/entries/{N}",
            "the tree's hashes and the entries as c2sp.org/tlog-tiles (with /checkpoint)",
        ),
        route(
            "GET",
            "/v1/checkpoints?from=0",
            "signed checkpoints, oldest first",
        ),
        route(
            "GET",
            "/v1/entries?start=0&end=N",
            "public entries (leaves)",
        ),
        route(
            "POST",
            paths::EVENTS,
            "append an event signed by the person it is about",
        ),
        route(
            "GET",
            "/v1/proofs/consent?subject=…&controller=…&purpose=…&at=…",
            "a consent proof (reader token)",
        ),
        route(
            "GET",
            "/v1/subjects/{subject}/history",
            "a person's own history (signed by the person)",
        ),
        route(
            "POST",
            paths::WITNESSED_RECEIPT,
            "the witnessed receipt of an entry (send any receipt of it)",
        ),
        route(
            "GET",
            "/v1/proofs/inclusion?index=I&size=N",
            "inclusion proof of an entry",
        ),
        route(
            "GET",
            "/v1/proofs/consistency?old=M&new=N",
            "consistency proof between two sizes",
        ),
        route("GET", paths::HEALTHZ, "liveness"),
        route("GET", paths::METRICS, "Prometheus metrics"),
    ]
    .concat();
    let body = format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>consentlog: {origin}</title></head>
<body>
<h1>consentlog: {origin}</h1>
<p>An append-only consent ledger: people sign their consent decisions, the log appends them
and signs checkpoints, and anyone can check what it hands out with its public key.</p>
<table>
<tr><th align="left">origin</th><td><code>{origin}</code></td></tr>
<tr><th align="left">log public key</th><td><code>{key}</code></td></tr>
<tr><th align="left">tree size</th><td>{size} leaves</td></tr>
<tr><th align="left">newest checkpoint</th><td>{cp_size} leaves, root <code>{root}</code>, map leaf at {map_time}</td></tr>
<tr><th align="left">consent proofs</th><td>{proofs}</td></tr>
<tr><th align="left">exports with openings</th><td>{exports}</td></tr>
</table>
<h2>Newest checkpoint (signed note)</h2>
<pre>{note}</pre>
<h2>Routes</h2>
<ul>
{routes}</ul>
<h2>How to verify</h2>
<p>Keep the log public key above (or <code>log.pub</code> from the operator) and check
everything offline with it:</p>
<ul>
<li>a consent proof: <code>consentlog verify --log-key {key} --subject S --controller C --purpose P --at T proof.json</code></li>
<li>a receipt: <code>consentlog verify-receipt --log-key {key} receipt.json</code> (under witnesses: <code>consentlog witnessed-receipt --server {url} --log-key {key} receipt.json --out witnessed.json</code>, then <code>verify-receipt --policy policy.txt witnessed.json</code>)</li>
<li>a person's history: <code>consentlog verify-history --log-key {key} --subject me.pub history.json</code></li>
<li>the whole log: <code>consentlog audit --url {url} --log-key {key}</code></li>
</ul>
</body>
</html>
"#,
        origin = e(l.origin()),
        key = key,
        size = l.size(),
        cp_size = cp.size,
        root = crate::core::hash::to_hex(&cp.root),
        map_time = e(&clock::both(latest.map_leaf.time)),
        note = e(&cp.note),
        url = e(st.people.audience()),
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}
