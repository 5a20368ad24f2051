//! Read-only access to a ledger directory without rebuilding or trusting its state, for the
//! auditor: entries, openings and checkpoints exactly as stored.

use std::path::Path;

use crate::core::entry::{Entry, Opening};
use crate::store::{Store, Table};

use super::LedgerError;

/// A ledger's store opened for reading.
pub struct RawLedger {
    pub store: Box<dyn Store>,
    pub origin: String,
    /// The recorded tree size.
    pub size: u64,
}

impl RawLedger {
    pub fn open(dir: &Path) -> Result<RawLedger, LedgerError> {
        Self::from_store(super::open_store(dir)?)
    }

    /// A store already open, read the same way.
    pub fn from_store(store: Box<dyn Store>) -> Result<RawLedger, LedgerError> {
        let origin = store
            .get(Table::Meta, b"origin")?
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(|| LedgerError::Corrupt("no origin recorded".into()))?;
        let size = store
            .get(Table::Meta, b"size")?
            .and_then(|v| Some(u64::from_le_bytes(v.try_into().ok()?)))
            .ok_or_else(|| LedgerError::Corrupt("no tree size recorded".into()))?;
        Ok(RawLedger {
            store,
            origin,
            size,
        })
    }

    /// Entries stored at or past the recorded size (there should be none).
    pub fn entries_beyond_size(&self) -> Result<u64, LedgerError> {
        let mut n = 0;
        for r in self
            .store
            .scan(Table::Entry, &self.size.to_be_bytes(), None)
        {
            r?;
            n += 1;
        }
        Ok(n)
    }

    /// Every stored checkpoint note, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<String>, LedgerError> {
        self.store
            .scan(Table::Checkpoint, &[], None)
            .map(|r| {
                let (_, v) = r?;
                String::from_utf8(v)
                    .map_err(|_| LedgerError::Corrupt("checkpoint is not UTF-8".into()))
            })
            .collect()
    }

    /// Entries `start..end` with their openings (None where erased).
    #[allow(clippy::type_complexity)]
    pub fn entries(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<(Entry, Option<Opening>)>, LedgerError> {
        read_range(self.store.as_ref(), start, end, true)
    }
}

/// Entries `start..end` in order, with their openings when `openings` (None where erased). A
/// missing or undecodable entry or opening is an error naming its index.
#[allow(clippy::type_complexity)]
pub fn read_range(
    store: &dyn Store,
    start: u64,
    end: u64,
    openings: bool,
) -> Result<Vec<(Entry, Option<Opening>)>, LedgerError> {
    let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
    let mut expect = start;
    let mut ops = if openings {
        Some(
            store
                .scan(
                    Table::Opening,
                    &start.to_be_bytes(),
                    Some(&end.to_be_bytes()),
                )
                .peekable(),
        )
    } else {
        None
    };
    for r in store.scan(Table::Entry, &start.to_be_bytes(), Some(&end.to_be_bytes())) {
        let (k, v) = r?;
        if k != expect.to_be_bytes() {
            return Err(LedgerError::Corrupt(format!("entry {expect} is missing")));
        }
        let e = Entry::decode(&v)
            .map_err(|err| LedgerError::Corrupt(format!("entry {expect}: {err}")))?;
        let mut opening = None;
        if let Some(ops) = ops.as_mut() {
            if matches!(ops.peek(), Some(Ok((ok, _))) if *ok == k) {
                let (_, ov) = ops.next().expect("peeked")?;
                opening = Some(
                    Opening::decode(&ov)
                        .map_err(|err| LedgerError::Corrupt(format!("opening {expect}: {err}")))?,
                );
            }
        }
        out.push((e, opening));
        expect += 1;
    }
    if start < end && expect != end {
        return Err(LedgerError::Corrupt(format!("entry {expect} is missing")));
    }
    Ok(out)
}
