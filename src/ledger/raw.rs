//! Read-only access to a ledger directory without rebuilding or trusting its state, for the
//! auditor: leaves, openings and checkpoints exactly as stored.

use std::path::Path;

use crate::core::leaf::Leaf;
use crate::core::opening::Opening;
use crate::store::{Store, Table, View};

use super::error::Key;
use super::schema::{self, index_key};
use super::LedgerError;

/// A ledger's store opened for reading.
pub struct RawLedger {
    pub store: Box<dyn Store>,
    pub origin: String,
    /// The recorded tree size.
    pub size: u64,
}

impl RawLedger {
    /// Opens the ledger in `dir` for reading only (see [`super::open_store_read_only`]).
    pub fn open(dir: &Path) -> Result<RawLedger, LedgerError> {
        Self::from_store(super::open_store_read_only(dir)?)
    }

    /// A store already open, read the same way.
    pub fn from_store(store: Box<dyn Store>) -> Result<RawLedger, LedgerError> {
        let (origin, size) = schema::read_origin_and_size(store.as_ref())?;
        Ok(RawLedger {
            store,
            origin,
            size,
        })
    }

    /// Leaves stored at or past the recorded size (there should be none).
    pub fn leaves_beyond_size(&self) -> Result<u64, LedgerError> {
        let mut n = 0;
        for r in self.store.scan(Table::Leaf, &index_key(self.size), None) {
            r?;
            n += 1;
        }
        Ok(n)
    }

    /// Every stored checkpoint note, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<String>, LedgerError> {
        checkpoint_notes(self.store.as_ref())
    }

    /// Leaves `start..end` with the openings of event leaves (None where erased).
    #[allow(clippy::type_complexity)]
    pub fn leaves(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<(Leaf, Option<Opening>)>, LedgerError> {
        read_range(self.store.as_ref(), start, end, true)
    }
}

/// Every stored checkpoint note read through `r`, oldest first.
pub fn checkpoint_notes(r: &dyn View) -> Result<Vec<String>, LedgerError> {
    checkpoint_range(r, 0, None)
        .map(|notes| notes.map(|(_, text)| text))
        .collect()
}

/// The stored checkpoints numbered `from..to` (`to` None: all after `from`) with their
/// numbers, oldest first.
pub fn checkpoint_range(
    r: &dyn View,
    from: u64,
    to: Option<u64>,
) -> impl Iterator<Item = Result<(u64, String), LedgerError>> + '_ {
    let end = to.map(index_key);
    r.scan(
        Table::Checkpoint,
        &index_key(from),
        end.as_ref().map(|e| &e[..]),
    )
    .map(|kv| {
        let (k, v) = kv?;
        schema::decode_checkpoint_pair(&k, v)
    })
}

/// Leaves `start..end` in order, with the openings of event leaves when `openings` (None
/// where erased). A missing or undecodable leaf or opening is an error naming its index.
#[allow(clippy::type_complexity)]
pub fn read_range(
    store: &dyn Store,
    start: u64,
    end: u64,
    openings: bool,
) -> Result<Vec<(Leaf, Option<Opening>)>, LedgerError> {
    let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
    let mut expect = start;
    let (from, to) = (index_key(start), index_key(end));
    let mut ops = openings.then(|| store.scan(Table::Opening, &from, Some(&to)).peekable());
    for r in store.scan(Table::Leaf, &from, Some(&to)) {
        let (k, v) = r?;
        if k != index_key(expect) {
            return Err(LedgerError::missing(Table::Leaf, Key::Index(expect)));
        }
        let e = schema::decode_leaf(expect, &v)?;
        let mut opening = None;
        if let Some(ops) = ops.as_mut() {
            if matches!(ops.peek(), Some(Ok((ok, _))) if *ok == k) {
                let (_, ov) = ops.next().expect("peeked")?;
                opening = Some(schema::decode_opening(expect, &ov)?);
            }
        }
        out.push((e, opening));
        expect += 1;
    }
    if start < end && expect != end {
        return Err(LedgerError::missing(Table::Leaf, Key::Index(expect)));
    }
    Ok(out)
}

/// Leaves `start..end` exactly as stored (the bytes hashed into the tree, not decoded), each
/// given to `each` in order. A missing leaf is an error naming its index.
pub fn read_leaf_bytes(
    store: &dyn Store,
    start: u64,
    end: u64,
    mut each: impl FnMut(&[u8]) -> Result<(), LedgerError>,
) -> Result<(), LedgerError> {
    let mut expect = start;
    let (from, to) = (index_key(start), index_key(end));
    for r in store.scan(Table::Leaf, &from, Some(&to)) {
        let (k, v) = r?;
        if k != index_key(expect) {
            return Err(LedgerError::missing(Table::Leaf, Key::Index(expect)));
        }
        each(&v)?;
        expect += 1;
    }
    if start < end && expect != end {
        return Err(LedgerError::missing(Table::Leaf, Key::Index(expect)));
    }
    Ok(())
}
