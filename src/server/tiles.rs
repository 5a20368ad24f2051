//! The c2sp.org/tlog-tiles read API, so that any tlog-tiles client reads the log:
//!
//! - `GET /checkpoint`: the newest signed checkpoint, as `/v1/checkpoint` (not cached);
//! - `GET /tile/<L>/<N>[.p/<W>]`: hash tiles, 256 (or `W`) consecutive Merkle Tree Hashes of
//!   height `8·L` (docs/FORMAT.md, "Hash tiles"; `core::tlog::hash_tile`);
//! - `GET /tile/entries/<N>[.p/<W>]`: the log's public leaves (exactly as hashed into the tree,
//!   what `/v1/entries` gives in hex) in bundles of 256, each a big-endian uint16 length then
//!   the leaf's bytes (docs/FORMAT.md, "Entry bundles"; `core::tlog::tile`).
//!
//! Tiles and bundles are bounded as `/v1/entries` is, by the current tree: one that needs a
//! larger tree is 404; a path that is not the canonical spelling of one is 400. Their bytes
//! never change (a partial one names its width), so every answer may be cached for good.

use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::api::schema::{EntryBundleSchema, HashTileSchema};
use crate::api::{paths, ErrorBody};
use crate::core::tlog::tile::{self, EntryTile};
use crate::core::tlog::HashTile;
use crate::ledger::{LedgerError, StoreNodes};

/// Cache-Control of every tile and bundle: immutable.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The newest signed checkpoint (C2SP signed note) at the log's prefix, as c2sp.org/tlog-tiles
/// serves it: the note `/v1/checkpoint` gives, not to be cached
#[utoipa::path(
    get,
    path = paths::TLOG_CHECKPOINT,
    responses((status = 200, description = "The note", body = String, content_type = "text/plain"))
)]
pub async fn get_tlog_checkpoint(state: State<AppState>) -> Response {
    let mut r = super::routes::get_checkpoint(state).await;
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    r
}

/// A tile's or a bundle's answer: its bytes, cached for good.
fn immutable(body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, IMMUTABLE),
        ],
        body,
    )
        .into_response()
}

/// A hash tile (c2sp.org/tlog-tiles): the 256 Merkle Tree Hashes of height 8·L from the N·256-th,
/// or `.p/<W>` for the first W of a partial tile, 32 bytes each; level 0 holds leaf hashes
#[utoipa::path(
    get,
    path = paths::TILE_HASHES,
    params(
        ("level" = u8, Path, description = "L, from 0 to 63, in decimal without leading zeros"),
        ("tile" = String, Path,
            description = "<N>[.p/<W>]: N in zero-padded 3-digit elements, all but the last \
                           prefixed with x (1234067 is x001/x234/067); W from 1 to 255")),
    responses(
        (status = 200, description = "The tile", body = HashTileSchema,
            content_type = "application/octet-stream"),
        (status = 400, body = ErrorBody),
        (status = 404, description = "Past the tree", body = ErrorBody),
    )
)]
pub async fn get_hash_tile(State(st): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let rest = uri
        .path()
        .strip_prefix(paths::TILE_PREFIX)
        .unwrap_or_default();
    let t = HashTile::parse(rest).map_err(ApiError::bad_request)?;
    let size = st.ledger.size();
    match t.tree_size_needed() {
        Some(needed) if needed <= size => {}
        needed => {
            return Err(ApiError::not_found(format!(
                "hash tile {rest} needs a tree of {} leaves; this one has {size}",
                needed.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string())
            )))
        }
    }
    let ledger = st.ledger.clone();
    let body = super::routes::blocking(move || {
        let store = ledger.store();
        let view = store.view().map_err(LedgerError::from)?;
        t.read(&StoreNodes(&*view))
            .map_err(LedgerError::from)?
            .ok_or_else(|| ApiError::internal("hash tile", "a tile of no tree"))
    })
    .await?;
    Ok(immutable(body))
}

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
    Ok(immutable(body))
}
