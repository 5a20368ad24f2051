//! `migrate`: copies a ledger into a new directory on another storage engine (sled to redb,
//! say), with the same log key, so that an operator can move a ledger without changing
//! anything anyone can see: the same entries, openings, checkpoints and proofs.
//!
//! Every table is copied key for key, in batches, each committed durably. The copy is then
//! checked in full (`fsck`: the whole replay and every piece of stored derived data) and only
//! then marked as a ledger by writing its `engine` file, as `init` does last. An interrupted
//! or failed migration leaves a directory without that marker, which nothing opens as a
//! ledger; delete it and start again.

use std::fs;
use std::path::Path;

use super::error::Invalid;
use super::files::{log_pub_text, open_store_read_only, write_engine, write_log_keys};
use super::fsck::fsck;
use super::raw::RawLedger;
use super::{LedgerError, DEFAULT_CACHE_BYTES};
use crate::core::audit::Report;
use crate::keyfile;
use crate::store::{Engine, Table, WriteBatch};

/// Records per committed batch of the copy.
const BATCH: usize = 16384;

/// What a migration did.
pub struct Migrated {
    /// Entries in the copied log.
    pub entries: u64,
    /// Records copied, over all tables.
    pub records: u64,
    /// The full check of the copy (clean when the migration succeeded).
    pub report: Report,
}

/// Copies the ledger in `from` to a new ledger in `to` on `engine`. `to` must not exist or
/// be empty. The source must not be open elsewhere (the engines lock their files).
/// `progress` is told how many records have been copied, then how many entries checked.
pub fn migrate(
    from: &Path,
    to: &Path,
    engine: Engine,
    now: u64,
    mut progress: impl FnMut(&str, u64),
) -> Result<Migrated, LedgerError> {
    let src = RawLedger::from_store(open_store_read_only(from)?)?;
    let key = keyfile::read(&from.join("log.key"), true)?;
    let vrf = super::files::read_vrf_key(from)?;
    let public = fs::read_to_string(from.join("log.pub"))
        .map_err(|e| LedgerError::io("cannot read", &from.join("log.pub"), e))?;
    if public.trim() != log_pub_text(&key).trim() {
        return Err(LedgerError::KeyMismatch(from.to_path_buf()));
    }
    if to.exists() {
        let mut items = fs::read_dir(to).map_err(|e| LedgerError::io("cannot read", to, e))?;
        if items.next().is_some() {
            return Err(Invalid::NotEmpty(to.to_path_buf()).into());
        }
    }
    fs::create_dir_all(to).map_err(|e| LedgerError::io("cannot create", to, e))?;
    write_log_keys(to, &key, &vrf)?;

    let dst = engine.open(&to.join("db"), DEFAULT_CACHE_BYTES)?;
    let mut records = 0u64;
    for table in Table::ALL {
        let mut batch = WriteBatch::new();
        for r in src.store.scan(table, &[], None) {
            let (k, v) = r?;
            batch.put(table, k, v);
            if batch.len() == BATCH {
                records += batch.len() as u64;
                dst.commit(std::mem::take(&mut batch))?;
                progress("copied records", records);
            }
        }
        records += batch.len() as u64;
        if !batch.is_empty() {
            dst.commit(batch)?;
        }
        progress("copied records", records);
    }
    drop(src);

    let copy = RawLedger::from_store(dst)?;
    let entries = copy.size;
    let report = fsck(&copy, &key.verifying_key(), now, |n| {
        progress("checked entries", n)
    })?;
    drop(copy);
    if report.ok() {
        // The marker that makes the directory a ledger: written last, as by `init`.
        write_engine(to, engine)?;
    }
    Ok(Migrated {
        entries,
        records,
        report,
    })
}
