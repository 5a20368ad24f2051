//! Ed25519 key files.
//!
//! A **person's** keys live in two files whose first line names their kind (docs/FORMAT.md
//! §18), so one can never be taken for the other:
//!
//! * the secret key file, mode 0600: `consentlog secret key v1\n` then the 32-byte seed as 64
//!   lowercase hex digits and `\n`;
//! * the public key file: `consentlog public key v1\n` then the public key (the subject of the
//!   person's events) as 64 lowercase hex digits and `\n`.
//!
//! The **ledger's** own secrets (`log.key`, `vrf.key`) are one bare line of hex, mode 0600
//! ([`write`], [`read`], [`write_secret`], [`read_secret`]); no person-facing command accepts
//! them. Secret keys are never printed or logged.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::core::hash::{from_hex_array, to_hex};

/// First line of a person's secret key file.
pub const SECRET_KEY_LINE: &str = "consentlog secret key v1";
/// First line of a person's public key file.
pub const PUBLIC_KEY_LINE: &str = "consentlog public key v1";

/// What a file given as a key turned out to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A person's secret key file (`consentlog secret key v1`).
    Secret,
    /// A person's public key file (`consentlog public key v1`).
    Public,
    /// One bare line of 64 hex digits: a ledger's `log.key`, `vrf.key` or `log.pub`, or a
    /// person's key file from before key files named their kind.
    Bare,
    /// A C2SP verifier key (`name+keyid+base64`): a log's or a witness's public key.
    Vkey,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Secret => "secret key",
            Kind::Public => "public key",
            Kind::Bare => "bare 64-hex-digit key with no line naming its kind (a ledger's log.key, vrf.key or log.pub, or a key file from before key files named their kind)",
            Kind::Vkey => "C2SP verifier key (a log's or a witness's public key)",
        })
    }
}

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a consentlog key file ({detail})")]
    Format { path: String, detail: String },
    /// A key file of another kind than the command needs.
    #[error("{path} is a {found}; {command} needs a {wanted} file{hint}")]
    WrongKind {
        path: String,
        found: Kind,
        wanted: Kind,
        command: String,
        hint: &'static str,
    },
    #[error(
        "{path}: secret key file is readable by group or others (mode {mode:o}); chmod 600 it"
    )]
    Permissions { path: String, mode: u32 },
    #[error("{path} already exists; a key file is never overwritten")]
    Exists { path: String },
    #[error("{path}: a secret key file must not end in .pub (keygen writes the public key there)")]
    PubName { path: String },
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

// ---------------------------------------------------------------------------------------------
// A person's key files.

/// The exact bytes of a person's secret key file for `key`.
pub fn secret_file_text(key: &SigningKey) -> String {
    format!("{SECRET_KEY_LINE}\n{}\n", to_hex(key.as_bytes()))
}

/// The exact bytes of a person's public key file for `key`.
pub fn public_file_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_KEY_LINE}\n{}\n", to_hex(key.as_bytes()))
}

/// Where `keygen --out OUT` writes the public key: OUT with its extension replaced by `pub`.
pub fn public_path(out: &Path) -> PathBuf {
    out.with_extension("pub")
}

/// Writes a new person's key: the secret key file at `out` (mode 0600) and the public key file
/// beside it ([`public_path`]). Refuses to overwrite either; writes neither if one exists.
/// Returns the public key file's path.
pub fn write_person(out: &Path, key: &SigningKey) -> Result<PathBuf, KeyFileError> {
    let p = out.display().to_string();
    if out.extension().is_some_and(|e| e == "pub") {
        return Err(KeyFileError::PubName { path: p });
    }
    let pub_path = public_path(out);
    for path in [out, pub_path.as_path()] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(KeyFileError::Exists {
                path: path.display().to_string(),
            });
        }
    }
    create(out, 0o600, secret_file_text(key).as_bytes())?;
    if let Err(e) = create(
        &pub_path,
        0o644,
        public_file_text(&key.verifying_key()).as_bytes(),
    ) {
        let _ = fs::remove_file(out);
        return Err(e);
    }
    Ok(pub_path)
}

/// Reads a person's secret key file for `command` (named in errors). Refuses a file of another
/// kind by name, and a file readable by group or others.
pub fn read_person(path: &Path, command: &str) -> Result<SigningKey, KeyFileError> {
    let (kind, text) = read_kind(path)?;
    if kind != Kind::Secret {
        return Err(KeyFileError::WrongKind {
            path: path.display().to_string(),
            found: kind,
            wanted: Kind::Secret,
            command: command.to_string(),
            hint: " (make one with `consentlog keygen --out FILE`)",
        });
    }
    check_mode(path)?;
    body(path, &text, SECRET_KEY_LINE).map(|seed| SigningKey::from_bytes(&seed))
}

/// Reads a person's public key file for `command` (named in errors); refuses a secret key
/// file by name (without reading the secret further).
pub fn read_public(path: &Path, command: &str) -> Result<VerifyingKey, KeyFileError> {
    let (kind, text) = read_kind(path)?;
    if kind != Kind::Public {
        return Err(KeyFileError::WrongKind {
            path: path.display().to_string(),
            found: kind,
            wanted: Kind::Public,
            command: command.to_string(),
            hint: " or 64 hex digits (`consentlog pubkey --key FILE` prints a secret key's)",
        });
    }
    let bytes = body(path, &text, PUBLIC_KEY_LINE)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyFileError::Format {
        path: path.display().to_string(),
        detail: "not an Ed25519 public key".into(),
    })
}

/// Reads a file and tells which kind of key file it is; any other content is a format error.
fn read_kind(path: &Path) -> Result<(Kind, String), KeyFileError> {
    let p = path.display().to_string();
    let bytes = fs::read(path).map_err(|source| KeyFileError::Io {
        path: p.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| KeyFileError::Format {
        path: p.clone(),
        detail: "not UTF-8 text".into(),
    })?;
    let first = text.lines().next().unwrap_or("").trim();
    let kind = if first == SECRET_KEY_LINE {
        Kind::Secret
    } else if first == PUBLIC_KEY_LINE {
        Kind::Public
    } else if text.lines().count() == 1
        && first.len() == 64
        && first.bytes().all(|b| b.is_ascii_hexdigit())
    {
        Kind::Bare
    } else if text.lines().count() == 1 && first.split('+').count() == 3 {
        Kind::Vkey
    } else {
        return Err(KeyFileError::Format {
            path: p,
            detail: format!(
                "the first line must be `{SECRET_KEY_LINE}` or `{PUBLIC_KEY_LINE}`; \
                 make a key with `consentlog keygen --out FILE`"
            ),
        });
    };
    Ok((kind, text))
}

/// The 32 bytes after the first line, which must be exactly `line\n<64 lowercase hex>\n`.
fn body(path: &Path, text: &str, line: &str) -> Result<[u8; 32], KeyFileError> {
    let format = |detail: String| KeyFileError::Format {
        path: path.display().to_string(),
        detail,
    };
    let rest = text
        .strip_prefix(line)
        .and_then(|r| r.strip_prefix('\n'))
        .ok_or_else(|| format(format!("the first line must be exactly `{line}`")))?;
    let hex = rest
        .strip_suffix('\n')
        .filter(|h| !h.contains('\n'))
        .ok_or_else(|| {
            format(
                "expected one line of 64 lowercase hex digits after the first, ending in a newline"
                    .into(),
            )
        })?;
    from_hex_array(hex).map_err(|e| format(format!("second line: {e}")))
}

/// Refuses a secret key file that group or others may read.
fn check_mode(path: &Path) -> Result<(), KeyFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|source| KeyFileError::Io {
                path: path.display().to_string(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions {
                path: path.display().to_string(),
                mode: mode & 0o777,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates a new file with `mode` and `bytes`, synced; refuses to overwrite.
fn create(path: &Path, mode: u32, bytes: &[u8]) -> Result<(), KeyFileError> {
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists {
                path: path.display().to_string(),
            }
        } else {
            KeyFileError::Io {
                path: path.display().to_string(),
                source,
            }
        }
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

// ---------------------------------------------------------------------------------------------
// The ledger's own key files (log.key, vrf.key): one bare line of hex.

/// Writes `key` to a new file at `path` with mode 0600; refuses to overwrite.
pub fn write(path: &Path, key: &SigningKey) -> Result<(), KeyFileError> {
    write_secret(path, key.as_bytes())
}

/// Writes 32 secret bytes as one line of hex to a new file at `path` with mode 0600;
/// refuses to overwrite.
pub fn write_secret(path: &Path, secret: &[u8; 32]) -> Result<(), KeyFileError> {
    let mut line = to_hex(secret);
    line.push('\n');
    create(path, 0o600, line.as_bytes())
}

/// Reads a ledger key file. With `strict_mode`, refuses a file readable by group or others.
pub fn read(path: &Path, strict_mode: bool) -> Result<SigningKey, KeyFileError> {
    read_secret(path, strict_mode).map(|seed| SigningKey::from_bytes(&seed))
}

/// Reads the 32 secret bytes of a ledger key file. With `strict_mode`, refuses a file readable
/// by group or others.
pub fn read_secret(path: &Path, strict_mode: bool) -> Result<[u8; 32], KeyFileError> {
    let p = path.display().to_string();
    let text = fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: p.clone(),
        source,
    })?;
    if strict_mode {
        check_mode(path)?;
    }
    from_hex_array(text.trim_end_matches('\n')).map_err(|_| KeyFileError::Format {
        path: p,
        detail: "expected 64 lowercase hex digits".into(),
    })
}
