//! The ledger directory's own files, beside the store in `db/`: `engine` (the storage engine's
//! name, written last: it marks the directory as a complete ledger), `log.key` and `vrf.key`
//! (mode 0600) and `log.pub`.

use std::fs;
use std::path::Path;

use ed25519_dalek::SigningKey;

use super::{LedgerError, DEFAULT_CACHE_BYTES};
use crate::core::hash::to_hex;
use crate::core::vrf::VrfSecretKey;
use crate::keyfile;
use crate::store::{Engine, Store, StoreError};

/// The engine recorded in the ledger directory `dir`.
pub fn recorded_engine(dir: &Path) -> Result<Engine, LedgerError> {
    let name = fs::read_to_string(dir.join("engine"))
        .map_err(|_| LedgerError::NotALedger(dir.to_path_buf()))?;
    Ok(name.trim().parse::<Engine>().map_err(StoreError::from)?)
}

/// Marks `dir` as a complete ledger on `engine` (the last step of creating one).
pub(crate) fn write_engine(dir: &Path, engine: Engine) -> Result<(), LedgerError> {
    write_durable(&dir.join("engine"), &format!("{engine}\n"))
}

/// Opens the store of the ledger in `dir` with the engine recorded there, without reading
/// anything else (for tools and tests that inspect or repair storage).
pub fn open_store(dir: &Path) -> Result<Box<dyn Store>, LedgerError> {
    Ok(recorded_engine(dir)?.open(&dir.join("db"), DEFAULT_CACHE_BYTES)?)
}

/// [`open_store`] for reading only (see [`Engine::open_read_only`]
/// (crate::store::Engine::open_read_only)).
pub fn open_store_read_only(dir: &Path) -> Result<Box<dyn Store>, LedgerError> {
    Ok(recorded_engine(dir)?.open_read_only(&dir.join("db"), DEFAULT_CACHE_BYTES)?)
}

/// Gives back the free space the engine of the ledger in `dir` holds in its file: `Some((bytes
/// before, bytes after))`, or `None` for an engine that reclaims space itself (sled). Fails
/// if the ledger is open elsewhere.
pub fn compact(dir: &Path) -> Result<Option<(u64, u64)>, LedgerError> {
    Ok(recorded_engine(dir)?.compact(&dir.join("db"))?)
}

/// Writes a small file atomically and durably: the text goes to a temporary file beside it,
/// which is synced and then renamed over `path`, and the directory is synced. A crash at any
/// point leaves either no file or the whole text, never an empty or partial one (the `engine`
/// marker is what makes a directory a ledger).
pub(crate) fn write_durable(path: &Path, text: &str) -> Result<(), LedgerError> {
    use std::io::Write;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut f = fs::File::create(&tmp).map_err(|e| LedgerError::io("cannot create", &tmp, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| LedgerError::io("cannot write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| LedgerError::io("cannot rename into place", path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Syncs a directory, so the files created in it survive a power loss.
fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LedgerError::io("cannot sync directory", dir, e))
}

/// The file `init` writes the witness policy a new ledger declares to (docs/FORMAT.md §3).
pub const DECLARED_POLICY_FILE: &str = "witness-policy.txt";

/// The text of `log.pub`: the log's public key in hex, one line.
pub(crate) fn log_pub_text(key: &SigningKey) -> String {
    format!("{}\n", to_hex(key.verifying_key().as_bytes()))
}

/// Writes the key files of a new ledger directory: `log.key` and `vrf.key` (mode 0600) and
/// `log.pub`.
pub(crate) fn write_log_keys(
    dir: &Path,
    key: &SigningKey,
    vrf: &VrfSecretKey,
) -> Result<(), LedgerError> {
    keyfile::write(&dir.join("log.key"), key)?;
    keyfile::write_secret(&dir.join("vrf.key"), &vrf.to_bytes())?;
    write_durable(&dir.join("log.pub"), &log_pub_text(key))
}

/// Reads the ledger's VRF secret key (`vrf.key`); refuses it when group or others can read it.
pub(crate) fn read_vrf_key(dir: &Path) -> Result<VrfSecretKey, LedgerError> {
    let path = dir.join("vrf.key");
    let bytes = keyfile::read_secret(&path, true)?;
    VrfSecretKey::from_bytes(bytes).map_err(|e| {
        LedgerError::io(
            "not a VRF secret key",
            &path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        )
    })
}

/// Removes the leftovers of an interrupted `init` from `dir` (which has no `engine` marker,
/// so nothing was served or acknowledged from them): the log key files and the store.
pub(crate) fn remove_leftovers(dir: &Path) -> Result<(), LedgerError> {
    for name in [
        "log.key",
        "vrf.key",
        "log.pub",
        "log.pub.tmp",
        "engine.tmp",
        DECLARED_POLICY_FILE,
    ] {
        let p = dir.join(name);
        if p.exists() {
            fs::remove_file(&p).map_err(|e| LedgerError::io("cannot remove", &p, e))?;
        }
    }
    let db = dir.join("db");
    if db.exists() {
        fs::remove_dir_all(&db).map_err(|e| LedgerError::io("cannot remove", &db, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_writes_replace_whole_files_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("engine");
        write_durable(&p, "sled\n").unwrap();
        write_durable(&p, "redb\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "redb\n");
        assert!(!dir.path().join("engine.tmp").exists());
    }

    #[test]
    fn leftovers_of_an_interrupted_init_include_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["log.key", "log.pub", "log.pub.tmp", "engine.tmp"] {
            fs::write(dir.path().join(name), "").unwrap();
        }
        fs::create_dir(dir.path().join("db")).unwrap();
        remove_leftovers(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
