//! c2sp.org/tlog-tiles entry bundles: `GET /tile/entries/<N>[.p/<W>]`, the log's public leaves
//! (exactly as hashed into the tree, what `/v1/entries` gives in hex) in bundles of 256, each
//! a big-endian uint16 length then the leaf's bytes (docs/FORMAT.md, "Entry bundles";
//! `core::tlog::tile`). Bounded as `/v1/entries` is, by the current tree: a bundle past it is
//! 404; a path that is not the canonical spelling of a bundle is 400. A bundle's bytes never
//! change (a partial one names its width), so every answer may be cached for good.

use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::api::schema::EntryBundleSchema;
use crate::api::{paths, ErrorBody};
use crate::core::tlog::tile::{self, EntryTile};

/// Cache-Control of every bundle: immutable.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// An entry bundle (c2sp.org/tlog-tiles): 256 leaves, or `.p/<W>` for the first W of a
/// partial bundle; each leaf a big-endian uint16 length, then its bytes
#[utoipa::path(
    get,
    path = paths::TILE_ENTRIES,
    params(("bundle" = String, Path,
        description = "<N>[.p/<W>]: N in zero-padded 3-digit elements, all but the last \
                       prefixed with x (1234067 is x001/x234/067); W from 1 to 255")),
    responses(
        (status = 200, description = "The bundle", body = EntryBundleSchema,
            content_type = "application/octet-stream"),
        (status = 400, body = ErrorBody),
        (status = 404, description = "Past the tree", body = ErrorBody),
    )
)]
pub async fn get_entry_bundle(State(st): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let rest = uri
        .path()
        .strip_prefix(paths::TILE_ENTRIES_PREFIX)
        .unwrap_or_default();
    let t = EntryTile::parse(rest).map_err(ApiError::bad_request)?;
    let range = t.entries().expect("parse checks the range");
    let size = st.ledger.size();
    if range.end > size {
        return Err(ApiError::not_found(format!(
            "entry bundle {rest} ends at {}, past the tree's {size} leaves",
            range.end
        )));
    }
    let ledger = st.ledger.clone();
    let body = super::routes::blocking(move || {
        let mut body = Vec::with_capacity(t.width as usize * 256);
        let store = ledger.store();
        let mut too_long = None;
        crate::ledger::raw::read_leaf_bytes(&*store, range.start, range.end, |leaf| {
            if let Err(e) = tile::push_entry(&mut body, leaf) {
                too_long.get_or_insert(e);
            }
            Ok(())
        })?;
        match too_long {
            Some(e) => Err(ApiError::internal("entry bundle", e)),
            None => Ok(body),
        }
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, IMMUTABLE),
        ],
        body,
    )
        .into_response())
}
