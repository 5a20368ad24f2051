//! The witness over HTTP: `POST /add-checkpoint` (nest the router under a path to give the
//! witness a submission prefix), answered as the table in [`super`] says. Refusals carry a
//! one-line `text/plain` explanation, except 409, whose body is exactly the witness's size
//! and a newline with `Content-Type: text/x.tlog.size`. The body limit, the per-request
//! timeout and the other connection settings are those of [`super::serve::Limits`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tower::ServiceBuilder;

use super::serve::Limits;
use super::{AddError, Witness};

/// Largest add-checkpoint body taken by default (larger ones get 413): far above any real
/// request (63 proof lines are under 3 KiB; a note with 100 Ed25519 signature lines about
/// 15 KiB), far below what would cost a witness memory.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// The content type of a 409's body (c2sp.org/tlog-witness).
pub const TLOG_SIZE: &str = "text/x.tlog.size";

/// The router with the default [`Limits`].
pub fn router(witness: Arc<Witness>) -> Router {
    router_with(witness, &Limits::default())
}

/// The router with `limits`' body limit and request timeout (the connection settings are the
/// listener's, [`super::serve_on`]).
pub fn router_with(witness: Arc<Witness>, limits: &Limits) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(DefaultBodyLimit::max(limits.body_limit))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(timed_out))
                .timeout(limits.request_timeout),
        )
        .with_state(witness)
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn timed_out(_: axum::BoxError) -> Response {
    let mut r = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "the request timed out\n".into(),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    let answer = tokio::task::spawn_blocking(move || w.add_checkpoint(&body)).await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("add-checkpoint worker: {e}");
            Err(AddError::Storage("the request's worker failed".into()))
        }
    };
    match answer {
        Ok(lines) => text(StatusCode::OK, lines),
        Err(e) => refusal(&e),
    }
}

/// The HTTP answer of a refusal.
pub fn refusal(e: &AddError) -> Response {
    let status = StatusCode::from_u16(e.status()).expect("a valid status");
    match e {
        AddError::BadProof(_) | AddError::RootConflict { .. } => {
            tracing::warn!("refused a validly signed checkpoint: {e}")
        }
        _ => tracing::debug!("refused: {e}"),
    }
    if let Some(size) = e.conflict_size() {
        return (
            status,
            [(header::CONTENT_TYPE, TLOG_SIZE)],
            format!("{size}\n"),
        )
            .into_response();
    }
    let mut r = text(status, format!("{e}\n"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    r
}
