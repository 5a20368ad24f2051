//! JSON errors: `{"error": {"code", "message"}}` with a fitting status.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::{ErrorBody, ErrorDetail};
use crate::core::reject::Reject;
use crate::ledger::{Invalid, LedgerError};

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.to_string(),
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn not_found(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// No credentials; `needs` names what the route needs (the header, and the option that
    /// configures it).
    pub fn unauthorized(needs: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("credentials required: {needs}"),
        )
    }
    /// Credentials that do not allow the request; `needs` names what would.
    pub fn forbidden(needs: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("these credentials do not allow this request: {needs}"),
        )
    }
    pub fn overloaded() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the append queue is full; retry later",
        );
        e.retry_after = Some(1);
        e
    }
    pub fn unavailable(message: impl std::fmt::Display) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.retry_after = Some(1);
        e
    }
    /// A failure inside the server (storage, a worker): the details (which may name files
    /// and carry internal error text) go to the log, the client gets a code and a fixed
    /// message.
    pub fn internal(what: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!("{what}: {detail}");
        Self::unavailable(
            "the server could not complete this request (a storage failure, logged on the \
             server); retry later",
        )
    }
    /// An append that failed in storage: nothing of it was acknowledged (the sequencer has
    /// logged the cause).
    pub fn storage_failure() -> Self {
        Self::unavailable(
            "storage failure on the server (logged there): nothing of this request was \
             acknowledged; retry later",
        )
    }
    /// The code and message, for per-item results in batches.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code.clone(),
            message: self.message.clone(),
        }
    }
    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.detail(),
        }
    }
}

/// The status a rejected event gets: 400 malformed, 409 chain conflicts, 422 other rules.
pub fn reject_status(r: &Reject) -> StatusCode {
    match r {
        Reject::Malformed(_) => StatusCode::BAD_REQUEST,
        r if r.is_conflict() => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl From<&Reject> for ApiError {
    fn from(r: &Reject) -> Self {
        ApiError::new(reject_status(r), r.code(), r)
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Invalid(Invalid::MapLeafTooSoon { retry_after_ms }) => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "map_leaf_pending",
                    "no map leaf covers that time yet; retry shortly",
                );
                e.retry_after = Some(retry_after_ms.div_ceil(1000).max(1));
                e
            }
            LedgerError::Invalid(m @ Invalid::NotOurReceipt { .. }) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_receipt", m)
            }
            LedgerError::Invalid(m @ Invalid::NotCosigned { .. }) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_cosigned", m)
            }
            // These two name directories and are the operator's, not a request's.
            LedgerError::Invalid(m @ (Invalid::FormatV1(_) | Invalid::NotEmpty(_))) => {
                ApiError::internal("ledger error", m)
            }
            LedgerError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
            }
            other => ApiError::internal("ledger error", other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, s.to_string().parse().expect("digits"));
        }
        r
    }
}
