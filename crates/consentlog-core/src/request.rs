//! Signed requests, format v2: how a person proves to a server that a read of their own data is
//! theirs, for that log, that server and that one request (docs/FORMAT.md §13).
//!
//! Header:
//! `Authorization: Consentlog-Ed25519 subject=<hex32>,time=<ms>,nonce=<hex32>,signature=<hex64>`,
//! the signature by the subject's key over [`request_message`]:
//!
//! ```text
//! "consentlog/v2/request\n" || string(origin) || string(audience) || string(method)
//!     || string(path_and_query) || BLAKE3(body)[32] || subject[32] || time u64 LE || nonce[32]
//! ```
//!
//! where `string(x)` is a u64 little-endian byte length, then the bytes. The origin (the log's)
//! and the audience (the server's public URL) are not in the header: the server puts in its own,
//! so a request made for another log or another server does not verify. Freshness (the time
//! within [`REQUEST_WINDOW_MS`] of the server's clock, not before the server started) is
//! checked here; single use (the nonce not seen before) needs memory and is the server's
//! (it answers [`RequestAuthError::Replayed`]). No clock and no randomness here: the caller
//! gives the time and the nonce.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::hash::{from_hex_array, to_hex, Hash, HexError};
use super::text::{parse_decimal, DecimalError};

/// Domain-separation prefix of a request signature (22 bytes, ending in a newline).
pub const REQUEST_DOMAIN: &[u8] = b"consentlog/v2/request\n";
/// Authorization scheme name.
pub const SCHEME: &str = "Consentlog-Ed25519";
/// Largest allowed distance between the request time and the server clock, either way.
pub const REQUEST_WINDOW_MS: u64 = 5 * 60 * 1000;
/// Bytes of a request nonce.
pub const NONCE_LEN: usize = 32;

/// What a request is for, as both sides know it without the header: the log's origin, the
/// server's public URL (the audience, normalised by [`normalize_audience`]), the method, the
/// path with its query, and the BLAKE3 hash of the body (of nothing, for a GET).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    pub origin: &'a str,
    pub audience: &'a str,
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub body_hash: Hash,
}

impl<'a> Target<'a> {
    /// The target of a request with `body` (empty for a GET).
    pub fn new(
        origin: &'a str,
        audience: &'a str,
        method: &'a str,
        path_and_query: &'a str,
        body: &[u8],
    ) -> Target<'a> {
        Target {
            origin,
            audience,
            method,
            path_and_query,
            body_hash: *blake3::hash(body).as_bytes(),
        }
    }
}

/// The parameters of an Authorization header: who signed, when, the nonce and the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedRequest {
    pub subject: [u8; 32],
    pub time: u64,
    pub nonce: [u8; NONCE_LEN],
    pub signature: [u8; 64],
}

impl SignedRequest {
    /// The header value, parameters in the canonical order.
    pub fn header(&self) -> String {
        format!(
            "{SCHEME} subject={},time={},nonce={},signature={}",
            to_hex(&self.subject),
            self.time,
            to_hex(&self.nonce),
            to_hex(&self.signature)
        )
    }

    /// The message this request's signature must be over, for `target`.
    pub fn message(&self, target: &Target) -> Vec<u8> {
        request_message(target, &self.subject, self.time, &self.nonce)
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

/// The signed message (docs/FORMAT.md §13).
pub fn request_message(
    target: &Target,
    subject: &[u8; 32],
    time: u64,
    nonce: &[u8; NONCE_LEN],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(
        REQUEST_DOMAIN.len()
            + 4 * 8
            + target.origin.len()
            + target.audience.len()
            + target.method.len()
            + target.path_and_query.len()
            + 32
            + 32
            + 8
            + NONCE_LEN,
    );
    m.extend_from_slice(REQUEST_DOMAIN);
    put_string(&mut m, target.origin.as_bytes());
    put_string(&mut m, target.audience.as_bytes());
    put_string(&mut m, target.method.as_bytes());
    put_string(&mut m, target.path_and_query.as_bytes());
    m.extend_from_slice(&target.body_hash);
    m.extend_from_slice(subject);
    m.extend_from_slice(&time.to_le_bytes());
    m.extend_from_slice(nonce);
    m
}

/// The request `key` signs for `target` at `time` with `nonce` (which the caller draws at
/// random, fresh for every request).
pub fn sign(
    key: &SigningKey,
    target: &Target,
    time: u64,
    nonce: &[u8; NONCE_LEN],
) -> SignedRequest {
    let subject = key.verifying_key().to_bytes();
    let sig = key.sign(&request_message(target, &subject, time, nonce));
    SignedRequest {
        subject,
        time,
        nonce: *nonce,
        signature: sig.to_bytes(),
    }
}

/// The Authorization header value of [`sign`].
pub fn sign_request(
    key: &SigningKey,
    target: &Target,
    time: u64,
    nonce: &[u8; NONCE_LEN],
) -> String {
    sign(key, target, time, nonce).header()
}

/// The server's clock as a request is checked: `now`, and the earliest request time it takes
/// (when it started: it remembers no nonce from before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub now: u64,
    pub not_before: u64,
}

/// Why a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestAuthError {
    #[error("malformed {SCHEME} authorization: {0}")]
    Malformed(#[from] AuthSyntaxError),
    #[error(
        "request time {} is more than 5 minutes from the server clock {}",
        crate::time::Both(*.time),
        crate::time::Both(*.now)
    )]
    Stale { time: u64, now: u64 },
    #[error(
        "request time {} is before the server started ({}); it keeps no record of \
         the requests it saw before, so it takes none signed before it started: sign a new one",
        crate::time::Both(*.time),
        crate::time::Both(*.started)
    )]
    BeforeStart { time: u64, started: u64 },
    #[error(
        "request signature does not verify for this log and audience (the origin and public URL \
         of the server it was sent to), method, path, body, time and nonce"
    )]
    BadSignature,
    /// Given by the server, which remembers the nonces of the requests it took.
    #[error("this request was already used: its nonce was seen within the last 5 minutes")]
    Replayed,
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
    /// `subject`, `nonce` or `signature` is not lowercase hex of the right length.
    #[error("{parameter}: {err}")]
    Hex {
        parameter: &'static str,
        #[source]
        err: HexError,
    },
    #[error("time is not a decimal number")]
    TimeNotDecimal,
    #[error("time is out of range")]
    TimeOutOfRange,
    /// A required parameter is absent (a v1 header lacks the nonce).
    #[error("parameter {0} is missing (subject, time, nonce and signature are all required)")]
    Missing(&'static str),
}

/// Parses an Authorization header value (parameters in any order, each exactly once).
pub fn parse_authorization(header: &str) -> Result<SignedRequest, AuthSyntaxError> {
    let rest = header
        .strip_prefix(SCHEME)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(AuthSyntaxError::WrongScheme)?;
    let (mut subject, mut time, mut nonce, mut sig) = (None, None, None, None);
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
            "nonce" => {
                once(nonce.is_some())?;
                nonce = Some(from_hex_array::<NONCE_LEN>(v).map_err(hex("nonce"))?)
            }
            "signature" => {
                once(sig.is_some())?;
                sig = Some(from_hex_array::<64>(v).map_err(hex("signature"))?)
            }
            other => return Err(AuthSyntaxError::UnknownParameter(other.to_string())),
        }
    }
    Ok(SignedRequest {
        subject: subject.ok_or(AuthSyntaxError::Missing("subject"))?,
        time: time.ok_or(AuthSyntaxError::Missing("time"))?,
        nonce: nonce.ok_or(AuthSyntaxError::Missing("nonce"))?,
        signature: sig.ok_or(AuthSyntaxError::Missing("signature"))?,
    })
}

/// Checks an Authorization header value for `target` at `clock`: well formed, fresh, dated
/// no earlier than `clock.not_before`, signed by its subject (strictly, not by a weak key).
/// Returns the request; the caller still checks that its subject is the one whose data is
/// asked for, and that its nonce is new.
pub fn check_request(
    header: &str,
    target: &Target,
    clock: Freshness,
) -> Result<SignedRequest, RequestAuthError> {
    let r = parse_authorization(header)?;
    if r.time.abs_diff(clock.now) > REQUEST_WINDOW_MS {
        return Err(RequestAuthError::Stale {
            time: r.time,
            now: clock.now,
        });
    }
    if r.time < clock.not_before {
        return Err(RequestAuthError::BeforeStart {
            time: r.time,
            started: clock.not_before,
        });
    }
    let key = VerifyingKey::from_bytes(&r.subject).map_err(|_| RequestAuthError::BadSignature)?;
    if key.is_weak() {
        return Err(RequestAuthError::BadSignature);
    }
    key.verify_strict(&r.message(target), &Signature::from_bytes(&r.signature))
        .map_err(|_| RequestAuthError::BadSignature)?;
    Ok(r)
}

/// Why a public URL cannot be an audience.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudienceError {
    #[error("the public URL must start with http:// or https://")]
    Scheme,
    #[error("the public URL has no host")]
    NoHost,
    #[error("the public URL must not have a query or fragment")]
    QueryOrFragment,
    #[error("the public URL must not contain spaces or control characters")]
    Character,
}

/// A server's public URL as an audience: scheme and host lowercased, trailing slashes removed
/// (`HTTPS://Consent.Example.com/` is `https://consent.example.com`); a path prefix is kept as
/// it is. The client signs with its server URL normalised the same way.
pub fn normalize_audience(url: &str) -> String {
    let url = url.trim_end_matches('/');
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            format!(
                "{}://{}{path}",
                scheme.to_ascii_lowercase(),
                authority.to_ascii_lowercase()
            )
        }
        None => url.to_string(),
    }
}

/// [`normalize_audience`] of a URL a server is configured with, refused unless it is an
/// `http://` or `https://` URL with a host and no query or fragment.
pub fn parse_audience(url: &str) -> Result<String, AudienceError> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AudienceError::Character);
    }
    let lower = url.to_ascii_lowercase();
    if !lower.starts_with("https://") && !lower.starts_with("http://") {
        return Err(AudienceError::Scheme);
    }
    let a = normalize_audience(url);
    let rest = a.split_once("://").map_or("", |(_, rest)| rest);
    if rest.contains(['?', '#']) {
        return Err(AudienceError::QueryOrFragment);
    }
    if rest.split('/').next().unwrap_or("").is_empty() {
        return Err(AudienceError::NoHost);
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600_000;
    const ORIGIN: &str = "example.org/consent";
    const AUDIENCE: &str = "https://consent.example.org";
    const NONCE: [u8; 32] = [0x5a; 32];

    fn at(now: u64) -> Freshness {
        Freshness { now, not_before: 0 }
    }

    fn heads() -> Target<'static> {
        Target::new(ORIGIN, AUDIENCE, "GET", "/v1/heads", b"")
    }

    fn err(header: &str) -> RequestAuthError {
        check_request(header, &heads(), at(NOW)).expect_err(header)
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    #[test]
    fn a_signed_request_checks_and_round_trips() {
        let key = key();
        let good = sign_request(&key, &heads(), NOW, &NONCE);
        let r = check_request(&good, &heads(), at(NOW)).expect("valid");
        assert_eq!(r.subject, key.verifying_key().to_bytes());
        assert_eq!((r.time, r.nonce), (NOW, NONCE));
        assert_eq!(r.header(), good);
        assert_eq!(parse_authorization(&good), Ok(r));
        // Any order of the parameters.
        let params: Vec<&str> = good
            .strip_prefix("Consentlog-Ed25519 ")
            .unwrap()
            .split(',')
            .collect();
        let reversed = format!(
            "{SCHEME} {}",
            params.iter().rev().cloned().collect::<Vec<_>>().join(",")
        );
        assert_eq!(check_request(&reversed, &heads(), at(NOW)), Ok(r));
    }

    #[test]
    fn syntax_errors() {
        let good = sign_request(&key(), &heads(), NOW, &NONCE);
        let params = good.strip_prefix("Consentlog-Ed25519 ").unwrap();
        let subject = params.split(',').next().unwrap();
        let without = |name: &str| {
            let kept: Vec<&str> = params
                .split(',')
                .filter(|p| !p.starts_with(&format!("{name}=")))
                .collect();
            format!("{SCHEME} {}", kept.join(","))
        };
        for (header, want) in [
            (format!("Bearer {params}"), AuthSyntaxError::WrongScheme),
            (format!("{SCHEME}{params}"), AuthSyntaxError::WrongScheme),
            (format!("{SCHEME} {params},x"), AuthSyntaxError::NotKeyValue),
            (
                format!("{SCHEME} {params},{subject}"),
                AuthSyntaxError::Repeated("subject".into()),
            ),
            (
                format!("{SCHEME} {params},nonce={}", "00".repeat(32)),
                AuthSyntaxError::Repeated("nonce".into()),
            ),
            (
                format!("{SCHEME} {params},x=1"),
                AuthSyntaxError::UnknownParameter("x".into()),
            ),
            (without("subject"), AuthSyntaxError::Missing("subject")),
            (without("time"), AuthSyntaxError::Missing("time")),
            (without("nonce"), AuthSyntaxError::Missing("nonce")),
            (without("signature"), AuthSyntaxError::Missing("signature")),
            (
                format!("{SCHEME} subject=AB"),
                AuthSyntaxError::Hex {
                    parameter: "subject",
                    err: HexError::BadChar('A'),
                },
            ),
            (
                format!("{SCHEME} nonce=0011"),
                AuthSyntaxError::Hex {
                    parameter: "nonce",
                    err: HexError::WrongLength {
                        expected: 32,
                        got: 2,
                    },
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
            (format!("{SCHEME} time=+1"), AuthSyntaxError::TimeNotDecimal),
            (
                format!("{SCHEME} time=99999999999999999999"),
                AuthSyntaxError::TimeOutOfRange,
            ),
        ] {
            assert_eq!(err(&header), RequestAuthError::Malformed(want), "{header}");
        }
        assert_eq!(
            err(&format!("{SCHEME} subject=AB")).to_string(),
            "malformed Consentlog-Ed25519 authorization: subject: hex has invalid character 'A' \
             (only 0-9 and a-f are allowed)"
        );
        // A v1 header (no nonce) names what it lacks.
        let v1 = format!(
            "{SCHEME} subject={},time={NOW},signature={}",
            "00".repeat(32),
            "00".repeat(64)
        );
        assert_eq!(
            err(&v1).to_string(),
            "malformed Consentlog-Ed25519 authorization: parameter nonce is missing \
             (subject, time, nonce and signature are all required)"
        );
    }

    #[test]
    fn stale_and_before_start_requests_are_refused() {
        let key = key();
        for time in [NOW - REQUEST_WINDOW_MS - 1, NOW + REQUEST_WINDOW_MS + 1] {
            let h = sign_request(&key, &heads(), time, &NONCE);
            assert_eq!(err(&h), RequestAuthError::Stale { time, now: NOW });
        }
        for time in [NOW - REQUEST_WINDOW_MS, NOW + REQUEST_WINDOW_MS] {
            let h = sign_request(&key, &heads(), time, &NONCE);
            assert!(check_request(&h, &heads(), at(NOW)).is_ok(), "{time}");
        }
        // Signed a moment before the server started: fresh, but refused.
        let h = sign_request(&key, &heads(), NOW - 1, &NONCE);
        let started = Freshness {
            now: NOW,
            not_before: NOW,
        };
        assert_eq!(
            check_request(&h, &heads(), started),
            Err(RequestAuthError::BeforeStart {
                time: NOW - 1,
                started: NOW
            })
        );
        let h = sign_request(&key, &heads(), NOW, &NONCE);
        assert!(check_request(&h, &heads(), started).is_ok());
    }

    #[test]
    fn the_signature_binds_every_field_of_the_target() {
        let key = key();
        let body = br#"{"queries": []}"#;
        let t = Target::new(ORIGIN, AUDIENCE, "POST", "/v1/x?a=1", body);
        let h = sign_request(&key, &t, NOW, &NONCE);
        assert!(check_request(&h, &t, at(NOW)).is_ok());
        let others = [
            Target {
                origin: "example.org/other",
                ..t
            },
            Target {
                audience: "https://other.example.org",
                ..t
            },
            Target {
                audience: "http://consent.example.org",
                ..t
            },
            Target { method: "GET", ..t },
            Target {
                path_and_query: "/v1/x?a=2",
                ..t
            },
            Target {
                path_and_query: "/v1/x",
                ..t
            },
            Target::new(ORIGIN, AUDIENCE, "POST", "/v1/x?a=1", br#"{"queries":[]}"#),
            Target::new(ORIGIN, AUDIENCE, "POST", "/v1/x?a=1", b""),
        ];
        for other in others {
            assert_eq!(
                check_request(&h, &other, at(NOW)),
                Err(RequestAuthError::BadSignature),
                "{other:?}"
            );
        }
        assert_eq!(t.body_hash, *blake3::hash(body).as_bytes());
        assert_eq!(heads().body_hash, *blake3::hash(b"").as_bytes());
        // Fields run together differently are different messages (the lengths are signed).
        let a = Target::new("ab", "c", "GET", "/", b"");
        let b = Target::new("a", "bc", "GET", "/", b"");
        assert_ne!(
            request_message(&a, &[1; 32], NOW, &NONCE),
            request_message(&b, &[1; 32], NOW, &NONCE)
        );
    }

    #[test]
    fn every_single_bit_change_of_subject_time_nonce_or_signature_is_refused() {
        let key = key();
        let good = sign(&key, &heads(), NOW, &NONCE);
        let check = |r: &SignedRequest, now: u64| check_request(&r.header(), &heads(), at(now));
        assert!(check(&good, NOW).is_ok());
        let mut n = 0;
        for bit in 0..64 * 8 {
            let mut r = good;
            r.signature[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                check(&r, NOW),
                Err(RequestAuthError::BadSignature),
                "signature bit {bit}"
            );
            n += 1;
        }
        for bit in 0..NONCE_LEN * 8 {
            let mut r = good;
            r.nonce[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                check(&r, NOW),
                Err(RequestAuthError::BadSignature),
                "nonce bit {bit}"
            );
            n += 1;
        }
        for bit in 0..32 * 8 {
            let mut r = good;
            r.subject[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                check(&r, NOW),
                Err(RequestAuthError::BadSignature),
                "subject bit {bit}"
            );
            n += 1;
        }
        for bit in 0..64 {
            let mut r = good;
            r.time ^= 1 << bit;
            // Refused at the server's time; and at the changed time too (where it is fresh,
            // so the signature is what refuses it).
            assert!(check(&r, NOW).is_err(), "time bit {bit}");
            assert_eq!(
                check(&r, r.time),
                Err(RequestAuthError::BadSignature),
                "time bit {bit}"
            );
            n += 1;
        }
        assert_eq!(n, 512 + 256 + 256 + 64);
    }

    #[test]
    fn weak_and_invalid_subject_keys_are_refused() {
        let good = sign(&key(), &heads(), NOW, &NONCE);
        // The identity point (small order) and a y that is not on the curve.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        for subject in [identity, off_curve] {
            let r = SignedRequest { subject, ..good };
            assert_eq!(
                check_request(&r.header(), &heads(), at(NOW)),
                Err(RequestAuthError::BadSignature)
            );
        }
    }

    #[test]
    fn audiences_are_normalised_and_checked() {
        for (url, want) in [
            ("https://consent.example.com", "https://consent.example.com"),
            (
                "https://consent.example.com/",
                "https://consent.example.com",
            ),
            (
                "HTTPS://Consent.Example.COM//",
                "https://consent.example.com",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            (
                "https://example.com/Consent/",
                "https://example.com/Consent",
            ),
        ] {
            assert_eq!(normalize_audience(url), want, "{url}");
            assert_eq!(parse_audience(url).as_deref(), Ok(want), "{url}");
        }
        for (url, want) in [
            ("consent.example.com", AudienceError::Scheme),
            ("ftp://consent.example.com", AudienceError::Scheme),
            ("https://", AudienceError::NoHost),
            ("https:///x", AudienceError::NoHost),
            ("https://x.example?a=1", AudienceError::QueryOrFragment),
            ("https://x.example/#top", AudienceError::QueryOrFragment),
            ("https://x.example/a b", AudienceError::Character),
            ("https://x.example\n", AudienceError::Character),
        ] {
            assert_eq!(parse_audience(url), Err(want), "{url}");
        }
    }

    /// The inputs and outputs of the test vector of docs/FORMAT.md §13, in its order.
    fn request_vector() -> (Vec<(&'static str, String)>, SignedRequest, Vec<u8>, u64) {
        let seed: [u8; 32] = core::array::from_fn(|i| i as u8);
        let key = SigningKey::from_bytes(&seed);
        let nonce: [u8; 32] = core::array::from_fn(|i| 0xa0 + i as u8);
        let time = 1_767_225_600_000;
        let origin = "example.org/consent";
        let audience = "https://consent.example.org";
        let subject = to_hex(key.verifying_key().as_bytes());
        let path = format!("/v1/subjects/{subject}/history");
        let t = Target::new(origin, audience, "GET", &path, b"");
        let r = sign(&key, &t, time, &nonce);
        let message = r.message(&t);
        let v = vec![
            ("subject_seed", to_hex(&seed)),
            ("subject", subject.clone()),
            ("origin", origin.to_string()),
            ("audience", audience.to_string()),
            ("method", "GET".to_string()),
            ("path_and_query", path.clone()),
            ("body_hash", to_hex(&t.body_hash)),
            ("time", time.to_string()),
            ("nonce", to_hex(&nonce)),
            ("message", to_hex(&message)),
            ("signature", to_hex(&r.signature)),
            ("header", r.header()),
        ];
        (v, r, message, time)
    }

    /// The test vector of docs/FORMAT.md §13 (its ```request-vectors block), recomputed: the
    /// same names in the same order with the same values.
    #[test]
    fn format_md_request_vector_matches_the_code() {
        let doc = include_str!("../../../docs/FORMAT.md");
        let block = doc
            .split("```request-vectors\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("FORMAT.md §13 has a ```request-vectors block");
        let documented: Vec<(&str, &str)> = block
            .lines()
            .filter_map(|l| l.split_once(" = "))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let (computed, r, message, time) = request_vector();
        assert_eq!(
            documented.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            computed.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            "the names of FORMAT.md's request vector"
        );
        for ((_, dv), (ck, cv)) in documented.iter().zip(&computed) {
            assert_eq!(dv, cv, "request vector {ck} differs from FORMAT.md");
        }
        // The message is the layout the document spells out, and the vector verifies.
        assert_eq!(&message[..22], b"consentlog/v2/request\n");
        assert_eq!(
            message.len(),
            22 + 8 * 4 + 19 + 27 + 3 + 85 + 32 + 32 + 8 + 32
        );
        let path = &computed[5].1;
        let t = Target::new(&computed[2].1, &computed[3].1, "GET", path, b"");
        let fresh = Freshness {
            now: time,
            not_before: time,
        };
        assert_eq!(check_request(&r.header(), &t, fresh), Ok(r));
    }

    /// Prints the vector in FORMAT.md's form:
    /// `cargo test -p consentlog-core request -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn print_request_vector() {
        for (k, v) in request_vector().0 {
            println!("{k} = {v}");
        }
    }
}
