//! The export file: every leaf (optionally with the openings of event leaves) and every
//! stored checkpoint of a ledger,
//! for auditors (docs/FORMAT.md, "Export"). Written and read as a stream; reading is strict:
//! any malformed, truncated or trailing byte is an error, never skipped.
//!
//! ```text
//! magic        "consentlog-export/v2\n"            (21 bytes)
//! origin       u64 length || UTF-8
//! log key      [32]
//! openings     u8 (0: none included, 1: included)
//! cp count     u64
//! checkpoints  count × ( u64 length || note text )        oldest first
//! leaf count   u64
//! leaves       count × ( u64 length || leaf bytes ||
//!                        if openings == 1 and the leaf is an event leaf: u8 present (0/1) ||
//!                        if present: nonce[32] || vrf proof[80] || u64 length ||
//!                        SignedEvent bytes )
//! ```
//! All integers little-endian. The file ends right after the last leaf. Checkpoints come
//! first so that a streaming auditor knows where to compare roots.

use std::io::{self, Read, Write};

use super::codec::DecodeError;
use super::event::SignedEvent;
use super::leaf::{Leaf, LeafError, MAX_POLICY};
use super::opening::Opening;
use super::vrf::{VrfProof, PROOF_LEN};

/// First bytes of an export.
pub const EXPORT_MAGIC: &[u8] = b"consentlog-export/v2\n";
/// Largest leaf accepted in an export (a genesis leaf with the longest policy).
pub const MAX_LEAF_LEN: u64 = (MAX_POLICY + 1024) as u64;
/// Largest SignedEvent accepted in an export.
pub const MAX_EVENT_LEN: u64 = 4096;
/// Largest checkpoint note accepted in an export.
pub const MAX_NOTE_LEN: u64 = super::note::MAX_NOTE as u64;

/// Why an export could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("export truncated while reading {0}")]
    Truncated(Part),
    #[error("malformed export: {0}")]
    Malformed(#[from] ExportFormatError),
}

/// A part of an export, as named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Magic,
    Origin,
    LogKey,
    Openings,
    CheckpointCount,
    Checkpoint(u64),
    LeafCount,
    Leaf(u64),
    LeafOpening(u64),
    LeafNonce(u64),
    LeafVrfProof(u64),
    LeafEvent(u64),
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::Magic => f.write_str("magic"),
            Part::Origin => f.write_str("origin"),
            Part::LogKey => f.write_str("log key"),
            Part::Openings => f.write_str("openings"),
            Part::CheckpointCount => f.write_str("checkpoint count"),
            Part::Checkpoint(i) => write!(f, "checkpoint {i}"),
            Part::LeafCount => f.write_str("leaf count"),
            Part::Leaf(i) => write!(f, "leaf {i}"),
            Part::LeafOpening(i) => write!(f, "leaf {i} opening"),
            Part::LeafNonce(i) => write!(f, "leaf {i} nonce"),
            Part::LeafVrfProof(i) => write!(f, "leaf {i} VRF proof"),
            Part::LeafEvent(i) => write!(f, "leaf {i} event"),
        }
    }
}

/// What is wrong with the bytes of an export ([`ExportError::Malformed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportFormatError {
    #[error("not a consentlog export (bad magic)")]
    BadMagic,
    #[error("{part} is not UTF-8")]
    NotUtf8 { part: Part },
    #[error("{part} flag is {value}, not 0 or 1")]
    Flag { part: Part, value: u8 },
    #[error("{part} length {len} exceeds {max}")]
    TooLong { part: Part, len: u64, max: u64 },
    #[error("{part}: {err}")]
    Decode {
        part: Part,
        #[source]
        err: DecodeError,
    },
    #[error("{part}: {err}")]
    Leaf {
        part: Part,
        #[source]
        err: LeafError,
    },
    #[error("trailing bytes after the last leaf")]
    TrailingBytes,
}

/// The header of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub origin: String,
    pub log_key: [u8; 32],
    pub openings: bool,
    pub checkpoints: Vec<String>,
    pub leaves: u64,
}

/// Writes an export in order: header (with the checkpoints), leaves.
pub struct Writer<W: Write> {
    w: W,
    openings: bool,
    left: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(mut w: W, h: &Header) -> io::Result<Self> {
        w.write_all(EXPORT_MAGIC)?;
        w.write_all(&(h.origin.len() as u64).to_le_bytes())?;
        w.write_all(h.origin.as_bytes())?;
        w.write_all(&h.log_key)?;
        w.write_all(&[h.openings as u8])?;
        w.write_all(&(h.checkpoints.len() as u64).to_le_bytes())?;
        for c in &h.checkpoints {
            w.write_all(&(c.len() as u64).to_le_bytes())?;
            w.write_all(c.as_bytes())?;
        }
        w.write_all(&h.leaves.to_le_bytes())?;
        Ok(Writer {
            w,
            openings: h.openings,
            left: h.leaves,
        })
    }

    /// Writes the next leaf (its exact bytes); `opening` is written only for an event leaf
    /// of an export with openings.
    pub fn leaf(&mut self, leaf: &[u8], opening: Option<&Opening>) -> io::Result<()> {
        assert!(self.left > 0, "more leaves than the header announced");
        self.left -= 1;
        self.w.write_all(&(leaf.len() as u64).to_le_bytes())?;
        self.w.write_all(leaf)?;
        let is_event = leaf.first() == Some(&(super::leaf::LeafKind::Event as u8));
        if self.openings && is_event {
            match opening {
                None => self.w.write_all(&[0])?,
                Some(o) => {
                    self.w.write_all(&[1])?;
                    self.w.write_all(&o.nonce)?;
                    self.w.write_all(&o.vrf.0)?;
                    let b = o.event.as_bytes();
                    self.w.write_all(&(b.len() as u64).to_le_bytes())?;
                    self.w.write_all(b)?;
                }
            }
        }
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        assert_eq!(self.left, 0, "fewer leaves than the header announced");
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Reads an export strictly, as a stream.
pub struct Reader<R: Read> {
    r: R,
    pub header: Header,
    read: u64,
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8], part: Part) -> Result<(), ExportError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ExportError::Truncated(part),
        _ => ExportError::Io(e),
    })
}

fn read_u64<R: Read>(r: &mut R, part: Part) -> Result<u64, ExportError> {
    let mut b = [0u8; 8];
    read_exact(r, &mut b, part)?;
    Ok(u64::from_le_bytes(b))
}

fn read_flag<R: Read>(r: &mut R, part: Part) -> Result<bool, ExportError> {
    let mut b = [0u8; 1];
    read_exact(r, &mut b, part)?;
    match b[0] {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(ExportFormatError::Flag { part, value }.into()),
    }
}

fn read_bytes<R: Read>(r: &mut R, max: u64, part: Part) -> Result<Vec<u8>, ExportError> {
    let len = read_u64(r, part)?;
    if len > max {
        return Err(ExportFormatError::TooLong { part, len, max }.into());
    }
    let mut v = vec![0u8; len as usize];
    read_exact(r, &mut v, part)?;
    Ok(v)
}

fn read_text<R: Read>(r: &mut R, max: u64, part: Part) -> Result<String, ExportError> {
    String::from_utf8(read_bytes(r, max, part)?)
        .map_err(|_| ExportFormatError::NotUtf8 { part }.into())
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header.
    pub fn new(mut r: R) -> Result<Self, ExportError> {
        let mut magic = [0u8; EXPORT_MAGIC.len()];
        read_exact(&mut r, &mut magic, Part::Magic)?;
        if magic != EXPORT_MAGIC {
            return Err(ExportFormatError::BadMagic.into());
        }
        let origin = read_text(&mut r, 255, Part::Origin)?;
        let mut log_key = [0u8; 32];
        read_exact(&mut r, &mut log_key, Part::LogKey)?;
        let openings = read_flag(&mut r, Part::Openings)?;
        let n = read_u64(&mut r, Part::CheckpointCount)?;
        let mut checkpoints = Vec::new();
        for i in 0..n {
            checkpoints.push(read_text(&mut r, MAX_NOTE_LEN, Part::Checkpoint(i))?);
        }
        let leaves = read_u64(&mut r, Part::LeafCount)?;
        Ok(Reader {
            r,
            header: Header {
                origin,
                log_key,
                openings,
                checkpoints,
                leaves,
            },
            read: 0,
        })
    }

    /// The next leaf and, for an event leaf, its opening (None when not included or erased);
    /// None after the last leaf, once the stream is checked to end there.
    #[allow(clippy::type_complexity)]
    pub fn next_leaf(&mut self) -> Result<Option<(Leaf, Option<Opening>)>, ExportError> {
        if self.read == self.header.leaves {
            let mut extra = [0u8; 1];
            if self.r.read(&mut extra)? != 0 {
                return Err(ExportFormatError::TrailingBytes.into());
            }
            return Ok(None);
        }
        let i = self.read;
        let decode = |part, err| ExportFormatError::Decode { part, err };
        let b = read_bytes(&mut self.r, MAX_LEAF_LEN, Part::Leaf(i))?;
        let leaf = Leaf::decode(&b).map_err(|err| ExportFormatError::Leaf {
            part: Part::Leaf(i),
            err,
        })?;
        let mut opening = None;
        if self.header.openings
            && matches!(leaf, Leaf::Event(_))
            && read_flag(&mut self.r, Part::LeafOpening(i))?
        {
            let mut nonce = [0u8; 32];
            read_exact(&mut self.r, &mut nonce, Part::LeafNonce(i))?;
            let mut vrf = [0u8; PROOF_LEN];
            read_exact(&mut self.r, &mut vrf, Part::LeafVrfProof(i))?;
            let ev = read_bytes(&mut self.r, MAX_EVENT_LEN, Part::LeafEvent(i))?;
            let event = SignedEvent::decode(&ev).map_err(|err| decode(Part::LeafEvent(i), err))?;
            opening = Some(Opening {
                nonce,
                vrf: VrfProof(vrf),
                event,
            });
        }
        self.read += 1;
        Ok(Some((leaf, opening)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Log, T0};

    /// An export of the genesis leaf and two event leaves, the first with its opening.
    fn export() -> Vec<u8> {
        let log = Log::new();
        let opening = log.opening([1; 32], log.event(None, true, T0));
        let h = Header {
            origin: "test.example/log".into(),
            log_key: [2; 32],
            openings: true,
            checkpoints: vec!["cp".into()],
            leaves: 3,
        };
        let mut w = Writer::new(Vec::new(), &h).unwrap();
        w.leaf(&log.leaves[0].to_bytes(), None).unwrap();
        w.leaf(&opening.leaf(T0, [5; 32], None).to_bytes(), Some(&opening))
            .unwrap();
        w.leaf(&opening.leaf(T0 + 1, [5; 32], None).to_bytes(), None)
            .unwrap();
        w.finish().unwrap()
    }

    fn read_all(b: &[u8]) -> Result<usize, ExportError> {
        let mut r = Reader::new(b)?;
        let mut n = 0;
        while r.next_leaf()?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    fn malformed(b: &[u8]) -> ExportFormatError {
        match read_all(b) {
            Err(ExportError::Malformed(e)) => e,
            other => panic!("not malformed: {other:?}"),
        }
    }

    #[test]
    fn reads_what_it_writes() {
        assert_eq!(read_all(&export()).unwrap(), 3);
    }

    #[test]
    fn errors_name_the_part() {
        let b = export();
        let origin_at = EXPORT_MAGIC.len();
        let key_at = origin_at + 8 + 16;
        let flag_at = key_at + 32;
        let cp_at = flag_at + 1 + 8;
        let leaves_at = cp_at + 8 + 2 + 8;
        let genesis_len = Log::new().leaves[0].to_bytes().len();
        let entries_at = leaves_at + 8 + genesis_len;
        let opening_at = entries_at + 8 + (1 + 1 + 8 + 32 + 1 + 8 + 32);
        let event_at = opening_at + 1 + 32 + 80;

        assert!(matches!(
            read_all(&b[..3]),
            Err(ExportError::Truncated(Part::Magic))
        ));
        assert!(matches!(
            read_all(&b[..event_at + 3]),
            Err(ExportError::Truncated(Part::LeafEvent(1)))
        ));
        assert_eq!(
            ExportError::Truncated(Part::LeafNonce(3)).to_string(),
            "export truncated while reading leaf 3 nonce"
        );
        let mut x = b.clone();
        x[0] = b'X';
        assert_eq!(malformed(&x), ExportFormatError::BadMagic);
        let mut x = b.clone();
        x[origin_at + 8] = 0xff;
        assert_eq!(
            malformed(&x),
            ExportFormatError::NotUtf8 { part: Part::Origin }
        );
        let mut x = b.clone();
        x[cp_at + 8] = 0xff;
        assert_eq!(
            malformed(&x),
            ExportFormatError::NotUtf8 {
                part: Part::Checkpoint(0)
            }
        );
        let mut x = b.clone();
        x[flag_at] = 2;
        assert_eq!(
            malformed(&x),
            ExportFormatError::Flag {
                part: Part::Openings,
                value: 2
            }
        );
        let mut x = b.clone();
        x[origin_at..origin_at + 8].copy_from_slice(&256u64.to_le_bytes());
        assert_eq!(
            malformed(&x),
            ExportFormatError::TooLong {
                part: Part::Origin,
                len: 256,
                max: 255
            }
        );
        let mut x = b.clone();
        x[entries_at + 8 + 1] = 1;
        assert_eq!(
            malformed(&x),
            ExportFormatError::Leaf {
                part: Part::Leaf(1),
                err: LeafError::Version {
                    kind: "event",
                    version: 1
                }
            }
        );
        let mut x = b.clone();
        x[event_at..event_at + 8].copy_from_slice(&3u64.to_le_bytes());
        x.drain(event_at + 8 + 3..event_at + 8 + 3 + 64);
        let e = malformed(&x);
        assert!(
            matches!(
                e,
                ExportFormatError::Decode {
                    part: Part::LeafEvent(1),
                    err: DecodeError::SignedEventTooShort { len: 3 }
                }
            ),
            "{e}"
        );
        let mut x = b.clone();
        x.push(0);
        assert_eq!(malformed(&x), ExportFormatError::TrailingBytes);
        assert_eq!(
            ExportFormatError::Flag {
                part: Part::LeafOpening(1),
                value: 7
            }
            .to_string(),
            "leaf 1 opening flag is 7, not 0 or 1"
        );
    }
}
