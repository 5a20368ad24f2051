//! Ed25519 key files: one line of lowercase hex (the 32-byte secret seed), created with mode
//! 0600. Secret keys are never printed or logged.

use std::fs;
use std::io::Write;
use std::path::Path;

use ed25519_dalek::SigningKey;

use crate::core::hash::{from_hex_array, to_hex};

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a consentlog key file (expected 64 lowercase hex digits)")]
    Format { path: String },
    #[error(
        "{path}: secret key file is readable by group or others (mode {mode:o}); chmod 600 it"
    )]
    Permissions { path: String, mode: u32 },
}

/// A fresh key from the operating system's random source.
pub fn generate() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("operating system randomness");
    SigningKey::from_bytes(&seed)
}

/// 32 random bytes (commitment nonces).
pub fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("operating system randomness");
    b
}

/// 64 random bytes (a VRF secret key is reduced from them).
pub fn random64() -> [u8; 64] {
    let mut b = [0u8; 64];
    getrandom::fill(&mut b).expect("operating system randomness");
    b
}

/// Writes `key` to a new file at `path` with mode 0600; refuses to overwrite.
pub fn write(path: &Path, key: &SigningKey) -> Result<(), KeyFileError> {
    write_secret(path, key.as_bytes())
}

/// Writes 32 secret bytes as one line of hex to a new file at `path` with mode 0600;
/// refuses to overwrite.
pub fn write_secret(path: &Path, secret: &[u8; 32]) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(io)?;
    let mut line = to_hex(secret);
    line.push('\n');
    f.write_all(line.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Reads a key file. With `strict_mode`, refuses a file readable by group or others.
pub fn read(path: &Path, strict_mode: bool) -> Result<SigningKey, KeyFileError> {
    read_secret(path, strict_mode).map(|seed| SigningKey::from_bytes(&seed))
}

/// Reads the 32 secret bytes of a key file. With `strict_mode`, refuses a file readable by
/// group or others.
pub fn read_secret(path: &Path, strict_mode: bool) -> Result<[u8; 32], KeyFileError> {
    let p = path.display().to_string();
    let text = fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: p.clone(),
        source,
    })?;
    #[cfg(unix)]
    if strict_mode {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|source| KeyFileError::Io {
                path: p.clone(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions {
                path: p,
                mode: mode & 0o777,
            });
        }
    }
    from_hex_array(text.trim_end_matches('\n')).map_err(|_| KeyFileError::Format { path: p })
}
