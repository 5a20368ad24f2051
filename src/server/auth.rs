//! Who may read what: reader tokens (optionally limited to controllers), auditor tokens, and
//! requests signed by the person (docs/FORMAT.md §13: for this log and this server, fresh, not
//! dated before the server started, used once). Missing credentials get 401, wrong or
//! insufficient ones 403; a signed request's refusal names its reason in the error code.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap, StatusCode};

use super::error::ApiError;
use crate::core::hash::Hash;
use crate::core::request::{
    check_request, Freshness, RequestAuthError, Target, REQUEST_WINDOW_MS, SCHEME,
};

/// Tokens are kept as BLAKE3 hashes, so lookups do not compare secrets byte by byte.
/// A tokens file's readers: each line `TOKEN [controller,controller…]`, blank lines and lines
/// whose first non-blank character is `#` skipped. Every token passes [`check_token`]. The
/// error names the line (from 1).
#[allow(clippy::type_complexity)]
pub fn parse_tokens(text: &str) -> Result<Vec<(String, Option<HashSet<String>>)>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let token = parts.next().expect("non-empty");
        check_token(token).map_err(|e| (i + 1, e))?;
        let controllers = parts.next().map(|list| {
            list.split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        });
        if parts.next().is_some() {
            return Err((i + 1, "expected `TOKEN [controllers]`".into()));
        }
        out.push((token.to_string(), controllers));
    }
    Ok(out)
}

fn token_id(t: &str) -> Hash {
    *blake3::hash(t.as_bytes()).as_bytes()
}

/// Shortest token accepted (a token is a secret: guessable ones are refused).
pub const MIN_TOKEN: usize = 16;
/// Longest token accepted.
pub const MAX_TOKEN: usize = 256;

/// A reader or auditor token is 16–256 characters of `[A-Za-z0-9._~+/=-]` (what random bytes
/// in base64 or hex look like); anything else is refused, naming the rule.
pub fn check_token(t: &str) -> Result<(), String> {
    if t.len() < MIN_TOKEN || t.len() > MAX_TOKEN {
        return Err(format!(
            "a token must be {MIN_TOKEN}-{MAX_TOKEN} characters, this one has {}",
            t.len()
        ));
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._~+/=-".contains(*c)))
    {
        return Err(format!(
            "a token may hold only A-Z a-z 0-9 . _ ~ + / = -, not {c:?}"
        ));
    }
    Ok(())
}

/// The server's credentials.
#[derive(Default, Clone)]
pub struct Auth {
    /// Reader token → the controllers it may ask about (None: all).
    readers: HashMap<Hash, Option<HashSet<String>>>,
    auditors: HashSet<Hash>,
}

impl Auth {
    pub fn add_reader(&mut self, token: &str, controllers: Option<HashSet<String>>) {
        self.readers.insert(token_id(token), controllers);
    }
    pub fn add_auditor(&mut self, token: &str) {
        self.auditors.insert(token_id(token));
    }

    /// How many reader tokens are configured.
    pub fn readers(&self) -> usize {
        self.readers.len()
    }

    /// How many auditor tokens are configured.
    pub fn auditors(&self) -> usize {
        self.auditors.len()
    }

    /// What `serve` says about each role at start: who may do what, and for a role with no
    /// token, what is disabled and which option enables it.
    pub fn roles(&self) -> Vec<String> {
        let readers = match self.readers.len() {
            0 => "readers: no reader token: consent proofs are disabled; pass --reader-token or \
                  --tokens-file"
                .to_string(),
            n => format!(
                "readers: {n} reader token(s): consent proofs and heads \
                 (Authorization: Bearer TOKEN)"
            ),
        };
        let auditors = match self.auditors.len() {
            0 => "auditors: no auditor token: exports with openings (/v1/export) are disabled; \
                  pass --auditor-token"
                .to_string(),
            n => format!("auditors: {n} auditor token(s): exports with openings (/v1/export)"),
        };
        vec![
            readers,
            auditors,
            "writers: no token needed: anyone may post events signed by the person they are \
             about (POST /v1/events)"
                .to_string(),
            "people: each may read their own history and heads with a request signed by their \
             key (consentlog history --server URL --key FILE)"
                .to_string(),
        ]
    }

    /// Loads a tokens file: lines `TOKEN [controller,controller…]`; a line whose first
    /// non-blank character is `#` is a comment (a `#` elsewhere is not special, and is refused
    /// in a token); a token with no controllers may ask about any. The file holds secrets: it
    /// is refused when group or others may read it.
    pub fn load_tokens_file(&mut self, path: &Path) -> Result<usize, String> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{}: tokens file is readable by group or others (mode {:o}); chmod 600 it",
                    path.display(),
                    mode & 0o777
                ));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let readers =
            parse_tokens(&text).map_err(|(line, e)| format!("{}:{line}: {e}", path.display()))?;
        let n = readers.len();
        for (token, controllers) in readers {
            self.add_reader(&token, controllers);
        }
        Ok(n)
    }

    fn authorization(headers: &HeaderMap, role: Role) -> Result<Option<&str>, ApiError> {
        match headers.get(header::AUTHORIZATION) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(Some)
                .map_err(|_| ApiError::forbidden(role.hint())),
        }
    }

    fn bearer(headers: &HeaderMap, role: Role) -> Result<Option<&str>, ApiError> {
        Ok(Self::authorization(headers, role)?.and_then(|v| v.strip_prefix("Bearer ")))
    }

    /// A reader token allowed to ask about `controller`.
    pub fn require_reader(&self, headers: &HeaderMap, controller: &str) -> Result<(), ApiError> {
        let role = Role::Reader;
        let token = match Self::authorization(headers, role)? {
            None => return Err(ApiError::unauthorized(role.hint())),
            Some(v) => v
                .strip_prefix("Bearer ")
                .ok_or_else(|| ApiError::forbidden(role.hint()))?,
        };
        match self.readers.get(&token_id(token)) {
            Some(None) => Ok(()),
            Some(Some(allowed)) if allowed.contains(controller) => Ok(()),
            Some(Some(_)) => Err(ApiError::forbidden(format!(
                "this reader token may not ask about controller {controller:?} (the operator \
                 limits it to some controllers in the --tokens-file)"
            ))),
            None => Err(ApiError::forbidden(role.hint())),
        }
    }

    /// Any valid reader token.
    pub fn require_any_reader(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let role = Role::Reader;
        let token = match Self::authorization(headers, role)? {
            None => return Err(ApiError::unauthorized(role.hint())),
            Some(v) => v
                .strip_prefix("Bearer ")
                .ok_or_else(|| ApiError::forbidden(role.hint()))?,
        };
        if self.readers.contains_key(&token_id(token)) {
            Ok(())
        } else {
            Err(ApiError::forbidden(role.hint()))
        }
    }

    /// An auditor token.
    pub fn require_auditor(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let role = Role::Auditor;
        match Self::bearer(headers, role)? {
            None if Self::authorization(headers, role)?.is_none() => {
                Err(ApiError::unauthorized(role.hint()))
            }
            Some(t) if self.auditors.contains(&token_id(t)) => Ok(()),
            _ => Err(ApiError::forbidden(role.hint())),
        }
    }

    /// A request signed by `subject` for this method, path (with query) and body, checked by
    /// `people` (fresh, for this log and audience, not seen before).
    pub fn require_subject(
        &self,
        people: &People,
        headers: &HeaderMap,
        target: (&str, &str, &[u8]),
        subject: &[u8; 32],
    ) -> Result<(), ApiError> {
        let role = Role::Subject;
        let v = Self::authorization(headers, role)?
            .ok_or_else(|| ApiError::unauthorized(role.hint()))?;
        if !v.starts_with(SCHEME) {
            return Err(ApiError::forbidden(role.hint()));
        }
        people.check(v, target, subject)
    }

    /// Either a reader token for `controller` or a request signed by `subject`.
    pub fn require_reader_or_subject(
        &self,
        people: &People,
        headers: &HeaderMap,
        controller: &str,
        target: (&str, &str, &[u8]),
        subject: &[u8; 32],
    ) -> Result<(), ApiError> {
        match Self::authorization(headers, Role::Reader)? {
            Some(v) if v.starts_with(SCHEME) => {
                self.require_subject(people, headers, target, subject)
            }
            _ => self.require_reader(headers, controller),
        }
    }
}

/// Who a route is for, to name in a 401 or 403 what it needs.
#[derive(Debug, Clone, Copy)]
enum Role {
    Reader,
    Auditor,
    Subject,
}

impl Role {
    /// What the route needs: the header to send and the option that configures it.
    fn hint(self) -> &'static str {
        match self {
            Role::Reader => {
                "this route needs a reader token: send `Authorization: Bearer TOKEN`; the \
                 operator configures one with --reader-token or --tokens-file (a person may \
                 instead sign the request: `Authorization: Consentlog-Ed25519 …`, where the \
                 route allows it)"
            }
            Role::Auditor => {
                "this route needs an auditor token: send `Authorization: Bearer TOKEN`; the \
                 operator configures one with --auditor-token"
            }
            Role::Subject => {
                "this route needs a request signed by the person it is about: send \
                 `Authorization: Consentlog-Ed25519 subject=…,time=…,nonce=…,signature=…` \
                 (docs/FORMAT.md §13; `consentlog history --server URL --key FILE` signs it)"
            }
        }
    }
}

/// Most (subject, nonce) pairs the replay cache holds unless configured otherwise
/// (`serve --replay-cache`): about 55 MB when full, and room for 870 signed requests a second
/// sustained over the 5-minute window.
pub const DEFAULT_REPLAY_CACHE: usize = 262_144;

/// What a person's signed request is checked against (docs/FORMAT.md §13): this server's log
/// origin and public URL (the audience), the time it started, and the nonces it has taken.
pub struct People {
    origin: String,
    audience: String,
    started: u64,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    seen: Mutex<ReplayCache>,
}

impl People {
    /// Requests for `origin` and `audience`, on `clock`, taken from when the clock says now
    /// (the server's start), remembering at most `capacity` nonces.
    pub fn new(
        origin: &str,
        audience: &str,
        clock: Arc<dyn Fn() -> u64 + Send + Sync>,
        capacity: usize,
    ) -> People {
        People {
            origin: origin.to_string(),
            audience: audience.to_string(),
            started: clock(),
            clock,
            seen: Mutex::new(ReplayCache::new(capacity)),
        }
    }

    /// The audience requests must be signed for.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// When the server started: requests dated earlier are refused.
    pub fn started(&self) -> u64 {
        self.started
    }

    /// Checks a `Consentlog-Ed25519` header for (method, path and query, body) and `subject`;
    /// on success its nonce is spent.
    pub fn check(
        &self,
        header: &str,
        (method, path_and_query, body): (&str, &str, &[u8]),
        subject: &[u8; 32],
    ) -> Result<(), ApiError> {
        let target = Target::new(&self.origin, &self.audience, method, path_and_query, body);
        let now = (self.clock)();
        let fresh = Freshness {
            now,
            not_before: self.started,
        };
        let r = check_request(header, &target, fresh).map_err(|e| self.refusal(e))?;
        if r.subject != *subject {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the request is signed by another subject than the one whose data it asks for",
            ));
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(&r.subject, &r.nonce, r.time, now)
            .map_err(|e| match e {
                Spent::Refused(e) => self.refusal(e),
                Spent::Full { retry_after_ms } => {
                    let mut e = ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "overloaded",
                        "too many signed requests within 5 minutes (the replay cache is full); \
                         retry later",
                    );
                    e.retry_after = Some(retry_after_ms.div_ceil(1000).max(1));
                    e
                }
            })
    }

    fn refusal(&self, e: RequestAuthError) -> ApiError {
        let code = match e {
            RequestAuthError::Malformed(_) => "malformed_request",
            RequestAuthError::Stale { .. } => "stale_request",
            RequestAuthError::BeforeStart { .. } => "request_before_start",
            RequestAuthError::BadSignature => "bad_signature",
            RequestAuthError::Replayed => "replayed_request",
        };
        let message = match e {
            RequestAuthError::BadSignature => format!(
                "the request signature does not verify for this log and audience (origin {}, \
                 audience {}), method, path, body, time and nonce",
                self.origin, self.audience
            ),
            e => e.to_string(),
        };
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }
}

/// Why a nonce could not be spent.
#[derive(Debug, PartialEq, Eq)]
pub enum Spent {
    /// Seen before ([`RequestAuthError::Replayed`]), or stale by the cache's clock.
    Refused(RequestAuthError),
    /// The cache holds `capacity` live pairs; the oldest expires in `retry_after_ms`.
    Full { retry_after_ms: u64 },
}

/// A (subject, nonce) pair.
type Pair = ([u8; 32], [u8; 32]);

/// The (subject, nonce) pairs of the signed requests taken, each kept until its request is
/// stale (`time + REQUEST_WINDOW_MS`), at most `capacity` of them. When full of live pairs it
/// refuses new ones rather than forget a live one (which could then be replayed). Its clock
/// never goes back: it keeps the latest `now` it was given, so a pair it let go of stays
/// refused as stale even if the server's clock is set back.
pub struct ReplayCache {
    capacity: usize,
    seen: HashSet<Pair>,
    /// Expiry times, soonest first.
    expiry: BinaryHeap<Reverse<(u64, Pair)>>,
    now: u64,
}

impl ReplayCache {
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            capacity: capacity.max(1),
            seen: HashSet::new(),
            expiry: BinaryHeap::new(),
            now: 0,
        }
    }

    /// Pairs held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Spends `nonce` of `subject` for a request dated `time`, at `now`.
    pub fn insert(
        &mut self,
        subject: &[u8; 32],
        nonce: &[u8; 32],
        time: u64,
        now: u64,
    ) -> Result<(), Spent> {
        self.now = self.now.max(now);
        while let Some(Reverse((t, pair))) = self.expiry.peek() {
            if *t >= self.now {
                break;
            }
            self.seen.remove(pair);
            self.expiry.pop();
        }
        let expires = time.saturating_add(REQUEST_WINDOW_MS);
        if expires < self.now {
            return Err(Spent::Refused(RequestAuthError::Stale {
                time,
                now: self.now,
            }));
        }
        let pair = (*subject, *nonce);
        if self.seen.contains(&pair) {
            return Err(Spent::Refused(RequestAuthError::Replayed));
        }
        if self.seen.len() >= self.capacity {
            let soonest = self.expiry.peek().map_or(0, |Reverse((t, _))| *t);
            return Err(Spent::Full {
                retry_after_ms: soonest.saturating_sub(self.now).saturating_add(1),
            });
        }
        self.seen.insert(pair);
        self.expiry.push(Reverse((expires, pair)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_767_225_600_000;

    fn tokens(text: &str, mode: u32) -> Result<Auth, String> {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("tokens");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut a = Auth::default();
        a.load_tokens_file(&p).map(|_| a)
    }

    /// Issue 13, item 2: a `#` inside a token no longer cuts it short (which let the short
    /// prefix in without its controller restriction); only whole-line comments are comments;
    /// tokens must be long and plain; the file must be private.
    #[test]
    fn tokens_files_are_strict() {
        let a = tokens(
            "# readers\n  # indented comment\nabcdefghijklmnop example.com\n\n",
            0o600,
        )
        .unwrap();
        assert_eq!(a.readers.len(), 1);
        let e = tokens("abc#defghijklmnopqrs example.com\n", 0o600)
            .err()
            .unwrap();
        assert!(
            e.contains(":1: a token may hold only") && e.contains("'#'"),
            "{e}"
        );
        let e = tokens("ok-token-0000000001\nshort\n", 0o600).err().unwrap();
        assert!(
            e.contains(":2: a token must be 16-256 characters, this one has 5"),
            "{e}"
        );
        let e = tokens("abcdefghijklmnop\n", 0o644).err().unwrap();
        assert!(
            e.contains("readable by group or others") && e.contains("chmod 600"),
            "{e}"
        );
        assert!(check_token(&"x".repeat(257)).is_err());
        assert!(check_token("AZaz09._~+/=-xyzw").is_ok());
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever a tokens file holds: no panic; every token read is a whole field of a
            /// non-comment line and passes `check_token` (so holds no `#`); a comment line
            /// never yields one.
            #[test]
            fn tokens_files_yield_only_whole_checked_tokens(
                text in "([ #a-zA-Z0-9._~+/=,:-]{0,40}\n){0,6}",
            ) {
                if let Ok(readers) = parse_tokens(&text) {
                    for (t, _) in &readers {
                        prop_assert!(check_token(t).is_ok());
                        prop_assert!(!t.contains('#'));
                        let whole_field = text.lines().any(|l| {
                            let l = l.trim();
                            !l.starts_with('#') && l.split_whitespace().next() == Some(t.as_str())
                        });
                        prop_assert!(whole_field, "token {} is no line's first field", t);
                    }
                    let lines = text.lines().filter(|l| {
                        let l = l.trim();
                        !l.is_empty() && !l.starts_with('#')
                    });
                    prop_assert_eq!(readers.len(), lines.count());
                }
            }

            /// A well-formed line is read back exactly.
            #[test]
            fn well_formed_lines_round_trip(
                token in "[A-Za-z0-9._~+/=-]{16,64}",
                controllers in proptest::collection::btree_set("[a-z0-9.]{1,12}", 0..4),
            ) {
                let line = if controllers.is_empty() {
                    token.clone()
                } else {
                    format!("{token} {}", controllers.iter().cloned().collect::<Vec<_>>().join(","))
                };
                let got = parse_tokens(&format!("# readers\n{line}\n")).unwrap();
                prop_assert_eq!(got.len(), 1);
                prop_assert_eq!(&got[0].0, &token);
                let want: Option<HashSet<String>> =
                    (!controllers.is_empty()).then(|| controllers.into_iter().collect());
                prop_assert_eq!(&got[0].1, &want);
            }
        }
    }

    #[test]
    fn a_nonce_is_spent_once_per_subject_until_its_request_is_stale() {
        let mut c = ReplayCache::new(10);
        let (a, b) = ([1; 32], [2; 32]);
        assert_eq!(c.insert(&a, &[9; 32], T, T), Ok(()));
        assert_eq!(
            c.insert(&a, &[9; 32], T, T + 1),
            Err(Spent::Refused(RequestAuthError::Replayed))
        );
        // Another subject may use the same nonce; the same subject another one.
        assert_eq!(c.insert(&b, &[9; 32], T, T + 1), Ok(()));
        assert_eq!(c.insert(&a, &[8; 32], T, T + 1), Ok(()));
        assert_eq!(c.len(), 3);
        // Kept while the request is fresh...
        assert_eq!(
            c.insert(&a, &[9; 32], T, T + REQUEST_WINDOW_MS),
            Err(Spent::Refused(RequestAuthError::Replayed))
        );
        // ...and let go of once it is stale (then it is refused as stale).
        let later = T + REQUEST_WINDOW_MS + 1;
        assert_eq!(
            c.insert(&a, &[9; 32], T, later),
            Err(Spent::Refused(RequestAuthError::Stale {
                time: T,
                now: later
            }))
        );
        assert!(c.is_empty());
        // A clock set back does not bring a forgotten pair back to life.
        assert_eq!(
            c.insert(&a, &[9; 32], T, T),
            Err(Spent::Refused(RequestAuthError::Stale {
                time: T,
                now: later
            }))
        );
    }

    #[test]
    fn a_full_cache_refuses_new_pairs_and_keeps_the_live_ones() {
        let mut c = ReplayCache::new(3);
        for i in 0..3u8 {
            assert_eq!(
                c.insert(&[i; 32], &[0; 32], T + u64::from(i) * 1000, T),
                Ok(())
            );
        }
        assert_eq!(
            c.insert(&[7; 32], &[0; 32], T, T + 500),
            Err(Spent::Full {
                retry_after_ms: REQUEST_WINDOW_MS - 500 + 1
            })
        );
        // The live pairs are still refused, not forgotten.
        assert_eq!(
            c.insert(&[1; 32], &[0; 32], T + 1000, T + 500),
            Err(Spent::Refused(RequestAuthError::Replayed))
        );
        // Once the oldest expires there is room again.
        let t = T + REQUEST_WINDOW_MS + 1;
        assert_eq!(c.insert(&[7; 32], &[0; 32], t, t), Ok(()));
        assert_eq!(c.len(), 3);
    }
}
