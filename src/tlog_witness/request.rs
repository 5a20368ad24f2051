//! The body of a c2sp.org/tlog-witness `add-checkpoint` request, parsed strictly:
//!
//! ```text
//! old <size>\n            canonical decimal: no sign, no leading zero (unless 0)
//! <base64 hash>\n         zero to 63 consistency proof lines, each one 32-byte hash
//! \n                      an empty line
//! <checkpoint note>       a signed note (c2sp.org/signed-note, c2sp.org/tlog-checkpoint)
//! ```
//!
//! Anything else (a missing or non-canonical old size, a proof line that is not exactly one
//! canonical base64 hash, 64 or more proof lines, no empty line) is a malformed request: the
//! witness answers 400 without looking at its state.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::core::hash::Hash;
use crate::core::text::parse_decimal;

/// Most consistency proof lines a client may send (tlog-witness: "MUST NOT send more than 63").
pub const MAX_PROOF_LINES: usize = 63;

/// A parsed add-checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint<'a> {
    /// The size the client believes the witness last cosigned.
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size, leaf to root.
    pub proof: Vec<Hash>,
    /// The checkpoint note, byte for byte (not parsed here).
    pub note: &'a [u8],
}

/// Why a body is malformed (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the body does not begin with an old size line `old N` ending in a newline")]
    NoOldLine,
    #[error("old size {0:?} is not a canonical decimal (digits only, no leading zero) below 2^64")]
    OldSize(String),
    #[error("consistency proof line {line} is not one base64-encoded 32-byte hash")]
    ProofLine { line: usize },
    #[error("more than {MAX_PROOF_LINES} consistency proof lines")]
    TooManyProofLines,
    #[error("no empty line between the consistency proof and the checkpoint")]
    NoEmptyLine,
}

/// The next newline-terminated line of `rest` and what follows it; `None` if no newline is left.
fn line(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = rest.iter().position(|&b| b == b'\n')?;
    Some((&rest[..at], &rest[at + 1..]))
}

/// Parses an add-checkpoint body; the note after the empty line is returned unparsed.
pub fn parse(body: &[u8]) -> Result<AddCheckpoint<'_>, RequestError> {
    let (first, mut rest) = line(body).ok_or(RequestError::NoOldLine)?;
    let digits = first.strip_prefix(b"old ").ok_or(RequestError::NoOldLine)?;
    let digits = std::str::from_utf8(digits)
        .map_err(|_| RequestError::OldSize(String::from_utf8_lossy(digits).into_owned()))?;
    let old = parse_decimal(digits).map_err(|_| RequestError::OldSize(digits.to_string()))?;
    let mut proof = Vec::new();
    loop {
        let (l, after) = line(rest).ok_or(RequestError::NoEmptyLine)?;
        rest = after;
        if l.is_empty() {
            break;
        }
        if proof.len() == MAX_PROOF_LINES {
            return Err(RequestError::TooManyProofLines);
        }
        proof.push(hash_line(l).ok_or(RequestError::ProofLine {
            line: proof.len() + 1,
        })?);
    }
    Ok(AddCheckpoint {
        old,
        proof,
        note: rest,
    })
}

/// One canonical standard-base64 encoding of 32 bytes (44 characters with padding).
fn hash_line(l: &[u8]) -> Option<Hash> {
    let v = B64.decode(l).ok()?;
    if B64.encode(&v).as_bytes() != l {
        return None;
    }
    v.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=";

    #[test]
    fn the_spec_example_parses() {
        let body = "old 20852014\n\
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n\
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\
\n\
example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\
— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
        let r = parse(body.as_bytes()).unwrap();
        assert_eq!(r.old, 20852014);
        assert_eq!(r.proof.len(), 4);
        assert_eq!(B64.encode(r.proof[0]), H);
        assert!(r
            .note
            .starts_with(b"example.com/behind-the-sofa\n20852163\n"));
    }

    #[test]
    fn malformed_bodies() {
        let ok = format!("old 5\n{H}\n\nnote");
        assert!(parse(ok.as_bytes()).is_ok());
        assert_eq!(parse(b"old 0\n\n").unwrap().note, b"");
        let cases: Vec<(String, RequestError)> = vec![
            ("".into(), RequestError::NoOldLine),
            ("old 0".into(), RequestError::NoOldLine),
            ("Old 0\n\n".into(), RequestError::NoOldLine),
            ("old  0\n\n".into(), RequestError::OldSize(" 0".into())),
            ("old 01\n\n".into(), RequestError::OldSize("01".into())),
            ("old +1\n\n".into(), RequestError::OldSize("+1".into())),
            ("old -1\n\n".into(), RequestError::OldSize("-1".into())),
            ("old 1 \n\n".into(), RequestError::OldSize("1 ".into())),
            ("old \n\n".into(), RequestError::OldSize("".into())),
            (
                "old 18446744073709551616\n\n".into(),
                RequestError::OldSize("18446744073709551616".into()),
            ),
            ("old 0\r\n\n".into(), RequestError::OldSize("0\r".into())),
            ("old 0\n".into(), RequestError::NoEmptyLine),
            (format!("old 1\n{H}\n"), RequestError::NoEmptyLine),
            (format!("old 1\n{H}"), RequestError::NoEmptyLine),
            (
                format!("old 1\n{H} \n\n"),
                RequestError::ProofLine { line: 1 },
            ),
            (
                format!("old 1\n{H}\nAAAA\n\n"),
                RequestError::ProofLine { line: 2 },
            ),
            (
                // Non-canonical base64: the last character carries stray low bits.
                "old 1\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkax=\n\n".into(),
                RequestError::ProofLine { line: 1 },
            ),
            (
                format!("old 1\n{}\n\n", &H[..43]),
                RequestError::ProofLine { line: 1 },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(parse(body.as_bytes()), Err(want), "{body:?}");
        }
        assert_eq!(
            parse(b"old \xff\n\n"),
            Err(RequestError::OldSize("\u{fffd}".into()))
        );
        let lines = |n: usize| format!("old 1\n{}\nnote", format!("{H}\n").repeat(n));
        assert_eq!(parse(lines(63).as_bytes()).unwrap().proof.len(), 63);
        assert_eq!(
            parse(lines(64).as_bytes()),
            Err(RequestError::TooManyProofLines)
        );
        assert_eq!(
            parse(lines(10_000).as_bytes()),
            Err(RequestError::TooManyProofLines)
        );
    }
}
