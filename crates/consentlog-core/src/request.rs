//! Signed requests: how a person proves to the server that a read of their own data is theirs
//! (docs/FORMAT.md, "Signed requests").
//!
//! Header: `Authorization: Consentlog-Ed25519 subject=<hex32>,time=<ms>,signature=<hex64>`,
//! signature by the subject's key over
//! `"consentlog/v1/request\n" || METHOD || "\n" || PATH_AND_QUERY || "\n" || subject hex || "\n" || time`.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::hash::{from_hex_array, to_hex, HexError};
use super::text::{parse_decimal, DecimalError};

/// Domain-separation prefix of a request signature.
pub const REQUEST_DOMAIN: &str = "consentlog/v1/request\n";
/// Authorization scheme name.
pub const SCHEME: &str = "Consentlog-Ed25519";
/// Largest allowed distance between the request time and the server clock.
pub const REQUEST_WINDOW_MS: u64 = 5 * 60 * 1000;

/// The signed message.
pub fn request_message(method: &str, path: &str, subject: &[u8; 32], time: u64) -> String {
    format!(
        "{REQUEST_DOMAIN}{method}\n{path}\n{}\n{time}",
        to_hex(subject)
    )
}

/// The Authorization header value for a request.
pub fn sign_request(key: &SigningKey, method: &str, path: &str, time: u64) -> String {
    let subject = key.verifying_key().to_bytes();
    let sig = key.sign(request_message(method, path, &subject, time).as_bytes());
    format!(
        "{SCHEME} subject={},time={time},signature={}",
        to_hex(&subject),
        to_hex(&sig.to_bytes())
    )
}

/// Why a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestAuthError {
    #[error("malformed {SCHEME} authorization: {0}")]
    Malformed(#[from] AuthSyntaxError),
    #[error("request time {time} is more than 5 minutes from the server clock {now}")]
    Stale { time: u64, now: u64 },
    #[error("request signature does not verify")]
    BadSignature,
}

/// What is wrong with the text of an Authorization header ([`RequestAuthError::Malformed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthSyntaxError {
    #[error("wrong scheme")]
    WrongScheme,
    #[error("expected key=value")]
    NotKeyValue,
    #[error("parameter {0:?} is given twice")]
    Repeated(String),
    #[error("unknown parameter {0:?}")]
    UnknownParameter(String),
    /// `subject` or `signature` is not lowercase hex of the right length.
    #[error("{err}")]
    Hex {
        parameter: &'static str,
        #[source]
        err: HexError,
    },
    #[error("time is not a decimal number")]
    TimeNotDecimal,
    #[error("time is out of range")]
    TimeOutOfRange,
    #[error("subject, time and signature are all required")]
    Missing,
}

/// Checks an Authorization header value; returns the authenticated subject.
pub fn check_request(
    header: &str,
    method: &str,
    path: &str,
    now: u64,
) -> Result<[u8; 32], RequestAuthError> {
    let rest = header
        .strip_prefix(SCHEME)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(AuthSyntaxError::WrongScheme)?;
    let (mut subject, mut time, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.split_once('=').ok_or(AuthSyntaxError::NotKeyValue)?;
        let once = |taken: bool| {
            if taken {
                Err(AuthSyntaxError::Repeated(k.to_string()))
            } else {
                Ok(())
            }
        };
        let hex = |parameter| move |err| AuthSyntaxError::Hex { parameter, err };
        match k {
            "subject" => {
                once(subject.is_some())?;
                subject = Some(from_hex_array::<32>(v).map_err(hex("subject"))?)
            }
            "time" => {
                once(time.is_some())?;
                time = Some(parse_decimal(v).map_err(|e| match e {
                    DecimalError::NotDecimal => AuthSyntaxError::TimeNotDecimal,
                    DecimalError::OutOfRange => AuthSyntaxError::TimeOutOfRange,
                })?)
            }
            "signature" => {
                once(sig.is_some())?;
                sig = Some(from_hex_array::<64>(v).map_err(hex("signature"))?)
            }
            other => return Err(AuthSyntaxError::UnknownParameter(other.to_string()).into()),
        }
    }
    let (subject, time, sig) = match (subject, time, sig) {
        (Some(s), Some(t), Some(g)) => (s, t, g),
        _ => return Err(AuthSyntaxError::Missing.into()),
    };
    if time.abs_diff(now) > REQUEST_WINDOW_MS {
        return Err(RequestAuthError::Stale { time, now });
    }
    let key = VerifyingKey::from_bytes(&subject).map_err(|_| RequestAuthError::BadSignature)?;
    if key.is_weak() {
        return Err(RequestAuthError::BadSignature);
    }
    key.verify_strict(
        request_message(method, path, &subject, time).as_bytes(),
        &Signature::from_bytes(&sig),
    )
    .map_err(|_| RequestAuthError::BadSignature)?;
    Ok(subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600_000;

    fn err(header: &str) -> RequestAuthError {
        check_request(header, "GET", "/v1/heads", NOW).expect_err(header)
    }

    #[test]
    fn syntax_errors() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let good = sign_request(&key, "GET", "/v1/heads", NOW);
        assert_eq!(
            check_request(&good, "GET", "/v1/heads", NOW),
            Ok(key.verifying_key().to_bytes())
        );
        let params = good.strip_prefix("Consentlog-Ed25519 ").unwrap();
        let subject = params.split(',').next().unwrap();
        for (header, want) in [
            (format!("Bearer {params}"), AuthSyntaxError::WrongScheme),
            (format!("{SCHEME} {params},x"), AuthSyntaxError::NotKeyValue),
            (
                format!("{SCHEME} {params},{subject}"),
                AuthSyntaxError::Repeated("subject".into()),
            ),
            (
                format!("{SCHEME} {params},x=1"),
                AuthSyntaxError::UnknownParameter("x".into()),
            ),
            (format!("{SCHEME} {subject}"), AuthSyntaxError::Missing),
            (
                format!("{SCHEME} subject=AB"),
                AuthSyntaxError::Hex {
                    parameter: "subject",
                    err: HexError::BadChar('A'),
                },
            ),
            (
                format!("{SCHEME} signature=00"),
                AuthSyntaxError::Hex {
                    parameter: "signature",
                    err: HexError::WrongLength {
                        expected: 64,
                        got: 1,
                    },
                },
            ),
            (format!("{SCHEME} time=01"), AuthSyntaxError::TimeNotDecimal),
            (
                format!("{SCHEME} time=99999999999999999999"),
                AuthSyntaxError::TimeOutOfRange,
            ),
        ] {
            assert_eq!(err(&header), RequestAuthError::Malformed(want), "{header}");
        }
        assert_eq!(
            err(&format!("{SCHEME} subject=AB")).to_string(),
            "malformed Consentlog-Ed25519 authorization: hex has invalid character 'A' \
             (only 0-9 and a-f are allowed)"
        );
        let stale = sign_request(&key, "GET", "/v1/heads", NOW - REQUEST_WINDOW_MS - 1);
        assert!(matches!(err(&stale), RequestAuthError::Stale { .. }));
        let other = sign_request(&key, "GET", "/v1/other", NOW);
        assert_eq!(err(&other), RequestAuthError::BadSignature);
    }
}
