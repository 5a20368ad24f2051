//! The HTTP handlers. Writes go through the sequencer; reads go to the ledger directly (on the
//! blocking pool when they do real work).

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::sequencer::SubmitError;
use super::AppState;
use crate::core::event::{check_name, state_key, EventJson, SignedEvent};
use crate::core::hash::{from_hex_array, to_hex};
use crate::core::proof::OpeningJson;
use crate::core::reject::Reject;
use crate::ledger::{clock, precheck, precheck_one, Outcome};

/// Most events in one batch request, and most queries in one bulk proof request.
pub const MAX_BATCH: usize = 10_000;
/// Most entries or checkpoints in one page.
pub const MAX_PAGE: u64 = 10_000;

fn future_at() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "`at` is in the future",
    )
}

/// Answers a request that took longer than the configured timeout.
pub async fn with_timeout(
    timeout: std::time::Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::unavailable("the request timed out").into_response(),
    }
}

/// A known path with a method it does not have.
pub async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

type Query = HashMap<String, String>;

fn parse_query(raw: Option<String>) -> Result<Query, ApiError> {
    let mut q = HashMap::new();
    for pair in raw
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v)
            .ok_or_else(|| ApiError::bad_request(format!("bad escape in query parameter {k}")))?;
        if q.insert(k.to_string(), v).is_some() {
            return Err(ApiError::bad_request(format!(
                "query parameter {k} given twice"
            )));
        }
    }
    Ok(q)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn q_u64(q: &Query, name: &str) -> Result<Option<u64>, ApiError> {
    q.get(name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "query parameter {name} must be a whole number, got {v:?}"
                ))
            })
        })
        .transpose()
}

fn q_u64_required(q: &Query, name: &str) -> Result<u64, ApiError> {
    q_u64(q, name)?
        .ok_or_else(|| ApiError::bad_request(format!("query parameter {name} is required")))
}

fn q_str<'a>(q: &'a Query, name: &str) -> Result<&'a str, ApiError> {
    q.get(name)
        .map(String::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("query parameter {name} is required")))
}

fn q_subject(q: &Query) -> Result<[u8; 32], ApiError> {
    from_hex_array(q_str(q, "subject")?).map_err(|e| ApiError::bad_request(format!("subject: {e}")))
}

fn q_name<'a>(q: &'a Query, name: &str) -> Result<&'a str, ApiError> {
    let v = q_str(q, name)?;
    check_name(name, v).map_err(ApiError::bad_request)?;
    Ok(v)
}

fn body_text(body: &Bytes) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|_| ApiError::bad_request("request body is not UTF-8"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::unavailable(format!("worker failed: {e}")))?
}

async fn submit(
    st: &AppState,
    events: Vec<Result<SignedEvent, Reject>>,
) -> Result<Vec<Outcome>, ApiError> {
    // Signatures are checked here, on every core, before the one writer sees the events.
    let checked = if events.len() == 1 {
        events.into_iter().map(|r| r.map(precheck_one)).collect()
    } else {
        blocking(move || Ok(precheck(events))).await?
    };
    let rx = st.seq.submit(checked).map_err(|e| match e {
        SubmitError::Full => {
            st.metrics.count_overloaded();
            ApiError::overloaded()
        }
        SubmitError::Closed => ApiError::unavailable("the server is shutting down"),
    })?;
    rx.await
        .map_err(|_| ApiError::unavailable("the sequencer stopped"))?
        .map_err(ApiError::unavailable)
}

/// `POST /v1/events`: one signed event (the CLI's JSON line).
pub async fn post_event(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let q = parse_query(raw)?;
    let wait = match q.get("wait").map(String::as_str) {
        None => false,
        Some("checkpoint") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "wait must be `checkpoint`, got {other:?}"
            )))
        }
    };
    let body = body.map_err(body_error)?;
    let ev = EventJson::parse(body_text(&body)?);
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
    if !wait {
        return Ok((status, Json(receipt)).into_response());
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
        Ok(json!({"receipt": receipt, "checkpoint": cp.note, "inclusion": inclusion}))
    })
    .await?;
    Ok((status, Json(body)).into_response())
}

fn body_error(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "request body is too large",
        )
    } else {
        ApiError::bad_request(e.body_text())
    }
}

/// `POST /v1/events/batch`: NDJSON or a JSON array of signed events, one result per event.
pub async fn post_batch(
    State(st): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = body.map_err(body_error)?;
    let text = body_text(&body)?;
    let events = crate::core::event::parse_batch(text).map_err(ApiError::bad_request)?;
    if events.len() > MAX_BATCH {
        return Err(too_many(events.len()));
    }
    if events.is_empty() {
        return Err(ApiError::bad_request("the batch holds no events"));
    }
    let outcomes = submit(&st, events).await?;
    st.metrics.observe_append_request(started.elapsed());
    let results: Vec<Value> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Accepted(r) => json!({"status": 201, "receipt": r}),
            Outcome::Duplicate(r) => json!({"status": 200, "receipt": r}),
            Outcome::Rejected(r) => {
                let e = ApiError::from(r);
                let mut v = e.body();
                v["status"] = json!(e.status.as_u16());
                v
            }
        })
        .collect();
    Ok(Json(json!({ "results": results })).into_response())
}

fn too_many(n: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("{n} items in one request; at most {MAX_BATCH}"),
    )
}

/// `GET /v1/heads`: a key's current seq and event hash, for signing the next event.
pub async fn get_heads(
    State(st): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = parse_query(raw)?;
    let subject = q_subject(&q)?;
    let controller = q_name(&q, "controller")?.to_string();
    let purpose = q_name(&q, "purpose")?.to_string();
    st.auth.require_reader_or_subject(
        &headers,
        &controller,
        "GET",
        &path_and_query(&uri),
        &subject,
    )?;
    let head = st
        .ledger
        .head(&state_key(&subject, &controller, &purpose))?;
    Ok(Json(json!({
        "subject": to_hex(&subject), "controller": controller, "purpose": purpose,
        "seq": head.map(|h| h.seq), "event_hash": head.map(|h| to_hex(&h.event_hash)),
        "index": head.map(|h| h.index),
    }))
    .into_response())
}

fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string())
}

/// `GET /v1/checkpoint`: the latest signed note.
pub async fn get_checkpoint(State(st): State<AppState>) -> Response {
    let note = st.ledger.latest().checkpoint.note.clone();
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response()
}

/// `GET /v1/checkpoints?from=&to=`: stored checkpoints by number.
pub async fn get_checkpoints(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = parse_query(raw)?;
    let from = q_u64(&q, "from")?.unwrap_or(0);
    let to = q_u64(&q, "to")?
        .unwrap_or(u64::MAX)
        .min(from.saturating_add(MAX_PAGE));
    let ledger = st.ledger.clone();
    let list = blocking(move || Ok(ledger.checkpoint_range(from, to)?)).await?;
    let items: Vec<Value> = list
        .into_iter()
        .map(|(n, note)| json!({"number": n, "note": note}))
        .collect();
    Ok(Json(json!({ "checkpoints": items })).into_response())
}

fn page(q: &Query, size: u64) -> Result<(u64, u64), ApiError> {
    let start = q_u64(q, "start")?.unwrap_or(0);
    let end = q_u64(q, "end")?.unwrap_or(size);
    if start > end {
        return Err(ApiError::bad_request(format!(
            "start {start} is after end {end}"
        )));
    }
    Ok((start, end.min(size).min(start.saturating_add(MAX_PAGE))))
}

/// `GET /v1/entries?start=&end=`: public entries, no openings.
pub async fn get_entries(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = parse_query(raw)?;
    let (start, end) = page(&q, st.ledger.size())?;
    let ledger = st.ledger.clone();
    let rows = blocking(move || Ok(ledger.read_range(start, end, false)?)).await?;
    let items: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, (e, _))| json!({"index": start + i as u64, "entry": to_hex(&e.to_bytes()), "leaf_hash": to_hex(&e.leaf_hash())}))
        .collect();
    Ok(
        Json(json!({"start": start, "end": start + items.len() as u64, "entries": items}))
            .into_response(),
    )
}

/// `GET /v1/export?start=&end=`: entries with openings, for auditors.
pub async fn get_export(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    st.auth.require_auditor(&headers)?;
    let q = parse_query(raw)?;
    let (start, end) = page(&q, st.ledger.size())?;
    let ledger = st.ledger.clone();
    let rows = blocking(move || Ok(ledger.read_range(start, end, true)?)).await?;
    let items: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, (e, o))| {
            json!({"index": start + i as u64, "entry": to_hex(&e.to_bytes()),
                   "opening": o.as_ref().map(OpeningJson::from)})
        })
        .collect();
    Ok(
        Json(json!({"start": start, "end": start + items.len() as u64, "entries": items}))
            .into_response(),
    )
}

/// `GET /v1/proofs/inclusion?index=&size=`.
pub async fn get_inclusion(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = parse_query(raw)?;
    let index = q_u64_required(&q, "index")?;
    let size = q_u64(&q, "size")?;
    let ledger = st.ledger.clone();
    let p = blocking(move || Ok(ledger.prove_inclusion(index, size)?)).await?;
    Ok(Json(p).into_response())
}

/// `GET /v1/proofs/consistency?old=&new=`.
pub async fn get_consistency(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = parse_query(raw)?;
    let old = q_u64_required(&q, "old")?;
    let new = q_u64(&q, "new")?;
    let ledger = st.ledger.clone();
    let p = blocking(move || Ok(ledger.prove_consistency(old, new)?)).await?;
    Ok(Json(p).into_response())
}

/// `GET /v1/proofs/consent?subject=&controller=&purpose=&at=`.
pub async fn get_consent(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = parse_query(raw)?;
    let subject = q_subject(&q)?;
    let controller = q_name(&q, "controller")?.to_string();
    let purpose = q_name(&q, "purpose")?.to_string();
    let at = q_u64(&q, "at")?;
    st.auth.require_reader(&headers, &controller)?;
    let ledger = st.ledger.clone();
    let p = blocking(move || {
        let now = clock::now_ms();
        if at.is_some_and(|at| at > now) {
            return Err(future_at());
        }
        // Without `at`, the latest checkpoint answers if it covers the whole tree: the state
        // at its time is the state now (later entries are integrated after it), so a read
        // signs a checkpoint only when the log grew since the last one.
        let snap = ledger.snapshot_for(at.unwrap_or(0))?;
        let at = at.unwrap_or(snap.checkpoint.time);
        Ok(ledger.prove_consent_in(&snap, &subject, &controller, &purpose, at)?)
    })
    .await?;
    Ok(Json(p).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkQuery {
    #[serde(with = "crate::core::hash::hex_array")]
    subject: [u8; 32],
    controller: String,
    purpose: String,
    at: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkRequest {
    queries: Vec<BulkQuery>,
}

/// `POST /v1/proofs/consent`: many queries against one shared checkpoint.
pub async fn post_consent(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let req: BulkRequest = serde_json::from_slice(&body)
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
        let latest_at = req.queries.iter().filter_map(|qu| qu.at).max().unwrap_or(0);
        let snap = ledger.snapshot_for(latest_at)?;
        // Queries without `at` are answered as of the shared checkpoint's time.
        let now = snap.checkpoint.time;
        let proofs: Vec<Value> = req
            .queries
            .iter()
            .map(|qu| {
                match ledger.prove_consent_in(
                    &snap,
                    &qu.subject,
                    &qu.controller,
                    &qu.purpose,
                    qu.at.unwrap_or(now),
                ) {
                    Ok(p) => serde_json::to_value(p).expect("json"),
                    Err(e) => ApiError::from(e).body(),
                }
            })
            .collect();
        Ok(json!({"checkpoint": snap.checkpoint.note, "proofs": proofs}))
    })
    .await?;
    Ok(Json(out).into_response())
}

/// `GET /v1/subjects/{subject}/history`: only the person, by a signed request.
pub async fn get_history(
    State(st): State<AppState>,
    Path(subject): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let subject: [u8; 32] =
        from_hex_array(&subject).map_err(|e| ApiError::bad_request(format!("subject: {e}")))?;
    st.auth
        .require_subject(&headers, "GET", &path_and_query(&uri), &subject)?;
    let ledger = st.ledger.clone();
    let h = blocking(move || {
        let snap = ledger.snapshot_for(0)?;
        Ok(ledger.history_in(&snap, &subject)?)
    })
    .await?;
    Ok(Json(h).into_response())
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /metrics`.
pub async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(&st.ledger),
    )
        .into_response()
}

/// `GET /v1/openapi.json`.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI).into_response()
}

/// Any other path.
pub async fn fallback(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}
