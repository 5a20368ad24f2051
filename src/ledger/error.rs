//! [`LedgerError`]: what can go wrong below the append rules (a refused event is a
//! [`Reject`](crate::core::reject::Reject), not an error). Damaged storage is [`Corrupt`],
//! naming the table, the key and what was wrong; a request the ledger cannot answer is
//! [`Invalid`]; both carry typed details a caller can match.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::core::hash::{to_hex, Hash};
use crate::core::map::MapError;
use crate::keyfile::KeyFileError;
use crate::store::{StoreError, Table};

use super::clock::both;
use super::nodes::NodeError;

/// A ledger-level failure.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Map(#[from] MapError<Box<LedgerError>>),
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// A file of the ledger directory (not the store) could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done: "cannot create", "cannot write", ...
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a consentlog ledger (no `engine` file); run `consentlog init --dir {}`", .0.display(), .0.display())]
    NotALedger(PathBuf),
    #[error("{} already holds a ledger", .0.display())]
    Exists(PathBuf),
    #[error("bad origin: {0}")]
    Origin(crate::core::text::NameError),
    #[error("ledger data is corrupt: {0}")]
    Corrupt(#[from] Corrupt),
    /// `log.key` and `log.pub` of the ledger in this directory name different keys.
    #[error("ledger data is corrupt: log.key and log.pub of {} do not match", .0.display())]
    KeyMismatch(PathBuf),
    /// The request cannot be answered (the caller's mistake, not the ledger's).
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

impl LedgerError {
    /// An I/O failure on a file of the ledger directory.
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> LedgerError {
        LedgerError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Damage in `table` at `key`.
    pub(crate) fn corrupt(table: Table, key: Key, what: CorruptKind) -> LedgerError {
        LedgerError::Corrupt(Corrupt { table, key, what })
    }

    /// `table`'s `key` is missing.
    pub(crate) fn missing(table: Table, key: Key) -> LedgerError {
        Self::corrupt(table, key, CorruptKind::Missing)
    }

    /// Whether another process holds the ledger's database ([`StoreError::InUse`]).
    pub fn is_in_use(&self) -> bool {
        matches!(self, LedgerError::Store(StoreError::InUse { .. }))
    }

    /// The damage, if this is damaged storage.
    pub fn as_corrupt(&self) -> Option<&Corrupt> {
        match self {
            LedgerError::Corrupt(c) => Some(c),
            _ => None,
        }
    }
}

/// Damaged or inconsistent stored data: where, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt {
    pub table: Table,
    pub key: Key,
    pub what: CorruptKind,
}

/// A key of a table, decoded where it could be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// The table as a whole (a count, an order, a root over many records).
    Whole,
    /// A named `Meta` record.
    Meta(&'static str),
    /// A numbered record: an entry, an opening, a checkpoint.
    Index(u64),
    /// A stored Merkle node.
    Node { level: u8, index: u64 },
    /// A state key: its map leaf, or its key index as a whole (its head).
    State(Hash),
    /// One record of the key index.
    Seq { key: Hash, seq: u64 },
    /// One record of the subject index.
    Subject { subject: [u8; 32], key: Hash },
    /// A key that does not decode, as stored.
    Raw(Vec<u8>),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Whole => Ok(()),
            Key::Meta(name) => write!(f, "`{name}`"),
            Key::Index(i) => write!(f, "{i}"),
            Key::Node { level, index } => write!(f, "(level {level}, index {index})"),
            Key::State(key) => write!(f, "of key {}", to_hex(key)),
            Key::Seq { key, seq } => write!(f, "of key {} seq {seq}", to_hex(key)),
            Key::Subject { subject, key } => {
                write!(f, "of subject {} key {}", to_hex(subject), to_hex(key))
            }
            Key::Raw(k) => write!(f, "key {}", to_hex(k)),
        }
    }
}

/// What was wrong with a stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorruptKind {
    /// It should be there and is not.
    Missing,
    /// Its key or value does not decode.
    Malformed(String),
    /// A text record is not UTF-8.
    NotUtf8,
    /// A record is stored past the recorded tree size.
    PastSize { size: u64 },
    /// It decodes but disagrees with what it must match (a checkpoint, a commitment, other
    /// records).
    Mismatch(String),
}

/// How tables are named in messages.
pub fn table_name(t: Table) -> &'static str {
    match t {
        Table::Meta => "meta",
        Table::Leaf => "leaf",
        Table::Opening => "opening",
        Table::Node => "stored Merkle node",
        Table::KeyIndex => "key index",
        Table::SubjectIndex => "subject index",
        Table::Checkpoint => "checkpoint",
        Table::MapValue => "map value",
        Table::StateKey => "state key index",
        Table::Cosigned => "cosigned checkpoint",
    }
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(table_name(self.table))?;
        if self.key != Key::Whole {
            write!(f, " {}", self.key)?;
        }
        match &self.what {
            CorruptKind::Missing => f.write_str(" is missing"),
            CorruptKind::Malformed(why) | CorruptKind::Mismatch(why) => write!(f, ": {why}"),
            CorruptKind::NotUtf8 => f.write_str(" is not UTF-8"),
            CorruptKind::PastSize { size } => {
                write!(f, " is stored past the tree size {size}")
            }
        }
    }
}

impl std::error::Error for Corrupt {}

/// A request the ledger refuses to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("tree size {size} is larger than the log ({log_size})")]
    TreeSize { size: u64, log_size: u64 },
    #[error("index {index} is not in a tree of size {size} (log size {log_size})")]
    Index {
        index: u64,
        size: u64,
        log_size: u64,
    },
    #[error("need old <= new <= log size, got old {old}, new {new}, log size {log_size}")]
    Range { old: u64, new: u64, log_size: u64 },
    #[error("`at` {} is in the future (now {})", both(*.at), both(*.now))]
    FutureAt { at: u64, now: u64 },
    #[error(
        "`at` {} is after the newest map leaf ({}); run `consentlog checkpoint` to append one",
        both(*.at),
        both(*.time)
    )]
    AfterMapLeaf { at: u64, time: u64 },
    #[error(
        "`at` {} is before the log's genesis ({}): nothing was recorded then",
        both(*.at),
        both(*.genesis_time)
    )]
    BeforeGenesis { at: u64, genesis_time: u64 },
    /// Map leaves are at least a second apart.
    #[error("the previous map leaf is less than a second old; retry in {retry_after_ms} ms")]
    MapLeafTooSoon { retry_after_ms: u64 },
    #[error(
        "{} holds a format v1 ledger; this version reads format v2 only (no conversion: \
         create a new ledger)",
        .0.display()
    )]
    FormatV1(PathBuf),
    #[error("checkpoint of size {size} is not one this log signed and stored")]
    NotOurCheckpoint { size: u64 },
    #[error("not a cosignature line: {0:?}")]
    CosignatureLine(String),
    #[error("the opening of leaf {index} was erased")]
    Erased { index: u64 },
    /// A witness policy a new ledger cannot declare.
    #[error("witness policy: {0}")]
    WitnessPolicy(String),
    /// A receipt given to be witnessed is not one of this log's leaves and openings.
    #[error("leaf {index} of this log is not the receipt's event (or its opening was erased)")]
    NotOurReceipt { index: u64 },
    /// No cosigned checkpoint covers the leaf yet.
    #[error(
        "no cosigned checkpoint covers leaf {index} yet (the largest cosigned is {}); retry once \
         the witnesses have cosigned a newer one",
        .cosigned.map_or("none".to_string(), |s| format!("of size {s}"))
    )]
    NotCosigned { index: u64, cosigned: Option<u64> },
    /// A controller or purpose that no event can name.
    #[error("{0}")]
    Name(#[from] crate::core::text::NameError),
    #[error("{} is not empty: migrate writes a new directory", .0.display())]
    NotEmpty(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_names_table_key_and_what() {
        let e = LedgerError::corrupt(
            Table::Leaf,
            Key::Index(4),
            CorruptKind::Malformed("bad".into()),
        );
        assert_eq!(e.to_string(), "ledger data is corrupt: leaf 4: bad");
        let c = e.as_corrupt().expect("corrupt");
        assert_eq!((c.table, &c.key), (Table::Leaf, &Key::Index(4)));
        assert_eq!(
            LedgerError::missing(Table::Node, Key::Node { level: 3, index: 0 }).to_string(),
            "ledger data is corrupt: stored Merkle node (level 3, index 0) is missing"
        );
        assert_eq!(
            LedgerError::corrupt(Table::Checkpoint, Key::Index(2), CorruptKind::NotUtf8)
                .to_string(),
            "ledger data is corrupt: checkpoint 2 is not UTF-8"
        );
        assert_eq!(
            LedgerError::missing(Table::Meta, Key::Meta("origin")).to_string(),
            "ledger data is corrupt: meta `origin` is missing"
        );
        assert_eq!(
            LedgerError::corrupt(Table::Leaf, Key::Whole, CorruptKind::Mismatch("x".into()))
                .to_string(),
            "ledger data is corrupt: leaf: x"
        );
    }
}
