//! The body of a checkpoint as c2sp.org/tlog-checkpoint defines it, for any RFC 6962 log (not
//! only consentlog's, whose checkpoints `core::note` reads more narrowly): at least three
//! non-empty lines, origin, tree size (canonical decimal), root hash (base64 of a 32-byte
//! SHA-256 RFC 6962 root), then optional non-empty extension lines. The extension lines are
//! signed and cosigned with the rest but mean nothing to a witness.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::core::hash::Hash;
use crate::core::text::parse_decimal;

/// What a witness reads of a checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Why a checkpoint body is malformed (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("the checkpoint body is not UTF-8 text ending in a newline")]
    Text,
    #[error("the checkpoint body has fewer than three lines (origin, tree size, root hash)")]
    TooFewLines,
    #[error("the checkpoint's origin line is empty")]
    EmptyOrigin,
    #[error("the checkpoint's tree size {0:?} is not a canonical decimal below 2^64")]
    Size(String),
    #[error("the checkpoint's root hash is not one base64-encoded 32-byte hash")]
    Root,
    #[error("the checkpoint has an empty extension line")]
    EmptyExtension,
}

/// Parses a checkpoint body (the note text, with its final newline).
pub fn parse(text: &[u8]) -> Result<Checkpoint, CheckpointError> {
    let text = std::str::from_utf8(text).map_err(|_| CheckpointError::Text)?;
    let text = text.strip_suffix('\n').ok_or(CheckpointError::Text)?;
    let lines: Vec<&str> = text.split('\n').collect();
    let [origin, size, root, extensions @ ..] = lines.as_slice() else {
        return Err(CheckpointError::TooFewLines);
    };
    if origin.is_empty() {
        return Err(CheckpointError::EmptyOrigin);
    }
    let size = parse_decimal(size).map_err(|_| CheckpointError::Size(size.to_string()))?;
    let raw = B64.decode(root).map_err(|_| CheckpointError::Root)?;
    if B64.encode(&raw) != *root {
        return Err(CheckpointError::Root);
    }
    let root: Hash = raw.try_into().map_err(|_| CheckpointError::Root)?;
    if extensions.iter().any(|l| l.is_empty()) {
        return Err(CheckpointError::EmptyExtension);
    }
    Ok(Checkpoint {
        origin: origin.to_string(),
        size,
        root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";

    #[test]
    fn bodies() {
        let cp =
            parse(format!("example.com/behind-the-sofa\n20852163\n{ROOT}\n").as_bytes()).unwrap();
        assert_eq!(cp.origin, "example.com/behind-the-sofa");
        assert_eq!(cp.size, 20852163);
        assert_eq!(B64.encode(cp.root), ROOT);
        // Extension lines are allowed (and signed), any origin text too.
        assert!(parse(format!("Some Log\n0\n{ROOT}\next one\next two\n").as_bytes()).is_ok());
        let bad = [
            (format!("o\n1\n{ROOT}"), CheckpointError::Text),
            ("o\n1\n".to_string(), CheckpointError::TooFewLines),
            (format!("\n1\n{ROOT}\n"), CheckpointError::EmptyOrigin),
            (
                format!("o\n01\n{ROOT}\n"),
                CheckpointError::Size("01".into()),
            ),
            (
                format!("o\n+1\n{ROOT}\n"),
                CheckpointError::Size("+1".into()),
            ),
            (format!("o\n\n{ROOT}\n"), CheckpointError::Size("".into())),
            ("o\n1\nAAAA\n".to_string(), CheckpointError::Root),
            (format!("o\n1\n{ROOT} \n"), CheckpointError::Root),
            (format!("o\n1\n{ROOT}\n\n"), CheckpointError::EmptyExtension),
        ];
        for (body, want) in bad {
            assert_eq!(parse(body.as_bytes()), Err(want), "{body:?}");
        }
        assert_eq!(parse(b"o\n1\n\xff\n"), Err(CheckpointError::Text));
    }
}
