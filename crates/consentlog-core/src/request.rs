//! Signed requests: how a person proves to the server that a read of their own data is theirs
//! (docs/FORMAT.md, "Signed requests").
//!
//! Header: `Authorization: Consentlog-Ed25519 subject=<hex32>,time=<ms>,signature=<hex64>`,
//! signature by the subject's key over
//! `"consentlog/v1/request\n" || METHOD || "\n" || PATH_AND_QUERY || "\n" || subject hex || "\n" || time`.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::hash::{from_hex_array, to_hex};

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
    Malformed(String),
    #[error("request time {time} is more than 5 minutes from the server clock {now}")]
    Stale { time: u64, now: u64 },
    #[error("request signature does not verify")]
    BadSignature,
}

/// Checks an Authorization header value; returns the authenticated subject.
pub fn check_request(
    header: &str,
    method: &str,
    path: &str,
    now: u64,
) -> Result<[u8; 32], RequestAuthError> {
    let bad = |m: &str| RequestAuthError::Malformed(m.to_string());
    let rest = header
        .strip_prefix(SCHEME)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| bad("wrong scheme"))?;
    let (mut subject, mut time, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad("expected key=value"))?;
        let once = |taken: bool| {
            if taken {
                Err(bad(&format!("parameter {k:?} is given twice")))
            } else {
                Ok(())
            }
        };
        match k {
            "subject" => {
                once(subject.is_some())?;
                subject = Some(from_hex_array::<32>(v).map_err(|e| bad(&e.to_string()))?)
            }
            "time" => {
                once(time.is_some())?;
                let canonical = !v.is_empty()
                    && v.bytes().all(|b| b.is_ascii_digit())
                    && (v == "0" || !v.starts_with('0'));
                if !canonical {
                    return Err(bad("time is not a decimal number"));
                }
                time = Some(v.parse::<u64>().map_err(|_| bad("time is out of range"))?)
            }
            "signature" => {
                once(sig.is_some())?;
                sig = Some(from_hex_array::<64>(v).map_err(|e| bad(&e.to_string()))?)
            }
            other => return Err(bad(&format!("unknown parameter {other:?}"))),
        }
    }
    let (subject, time, sig) = match (subject, time, sig) {
        (Some(s), Some(t), Some(g)) => (s, t, g),
        _ => return Err(bad("subject, time and signature are all required")),
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
