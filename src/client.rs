//! A small blocking HTTP client of `consentlog serve` for the CLI's `--server` and `--url`
//! modes and the examples: one method per route, reading and writing the wire types of
//! [`crate::api`] (the ones the server's handlers use).

use std::sync::OnceLock;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::*;
use crate::core::event::EventJson;
use crate::core::hash::to_hex;
use crate::core::history::History;
use crate::core::note::MAX_NOTE;
use crate::core::proof::ConsentProof;
use crate::core::receipt::Receipt;
use crate::core::request::{normalize_audience, sign_request, Target};
use crate::ledger::clock;

/// The most bytes of an answer read, unless a route bounds its answers more tightly (pages of
/// entries and exports, histories, bulk answers: their size grows with what they list).
const ANSWER_LIMIT: usize = 1 << 30;

/// The most bytes of an inclusion or consistency proof: at most 128 hashes of 66 JSON bytes
/// and a few numbers, far under this.
pub const PROOF_LIMIT: usize = 64 << 10;

/// The most bytes of a person's heads answer: names bounded as events' are, and a hash.
pub const HEADS_LIMIT: usize = 64 << 10;

/// The most bytes of one consent proof: a checkpoint and a cosigned one (each at most
/// `MAX_NOTE`), leaf 0, at most two events with openings, a map proof of at most 256 hashes and
/// the inclusion and consistency paths, all far under this.
pub const CONSENT_LIMIT: usize = 4 << 20;

/// The most bytes of a page of checkpoints: at most `MAX_PAGE` notes of at most `MAX_NOTE` bytes,
/// each in JSON with its number (escaping at most doubles a note).
pub const CHECKPOINTS_LIMIT: usize = MAX_PAGE as usize * (2 * MAX_NOTE + 64);

/// A server base URL and optional bearer token.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
    /// The log's origin, read from its checkpoint when a request is first signed.
    origin: OnceLock<String>,
}

/// A failed request: transport error, a non-success status with the server's message, or an
/// answer that is not what the route promises.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        /// The error's code, when the body was the API's JSON error.
        code: Option<String>,
        message: String,
    },
    #[error("{url}: the server sent a malformed answer: {message}")]
    Malformed { url: String, message: String },
}

/// A failed read of `url`'s answer: one longer than `limit` is malformed, anything else a
/// transport error.
fn read_error(url: &str, e: ureq::Error, limit: usize) -> ClientError {
    match e {
        ureq::Error::BodyExceedsLimit(_) => ClientError::Malformed {
            url: url.to_string(),
            message: format!("the body is longer than {limit} bytes, the most it may be"),
        },
        e => ClientError::Transport {
            url: url.to_string(),
            message: e.to_string(),
        },
    }
}

impl ClientError {
    /// The HTTP status of a refused request.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// An accepted append: 201 (appended) or 200 (the identical event was already logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub status: u16,
    pub receipt: Receipt,
}

/// `path` with `q` as its query string (none if `q` has no field set).
pub fn with_query<Q: Serialize>(path: &str, q: &Q) -> String {
    let query = serde_urlencoded::to_string(q).expect("query types serialize");
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
            origin: OnceLock::new(),
        }
    }

    /// The audience of the requests this client signs: its server URL, normalised
    /// (docs/FORMAT.md §13). The server must have been given it as its public URL.
    pub fn audience(&self) -> String {
        normalize_audience(&self.base)
    }

    /// The log's origin: the first line of its latest checkpoint (`GET /v1/checkpoint`), read
    /// once. It is what requests are signed for, not something trusted: a server that named
    /// another log's origin would only get requests that its own log's server refuses.
    pub fn origin(&self) -> Result<String, ClientError> {
        if let Some(o) = self.origin.get() {
            return Ok(o.clone());
        }
        let note = self.checkpoint()?;
        let origin = note
            .lines()
            .next()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| ClientError::Malformed {
                url: format!("{}{}", self.base, paths::CHECKPOINT),
                message: "the checkpoint has no origin line".into(),
            })?;
        Ok(self.origin.get_or_init(|| origin.to_string()).clone())
    }

    /// An Authorization header for `method` `path` (with query) and `body`, signed by `key`
    /// for this server's log and URL, now, with a fresh random nonce.
    pub fn sign(
        &self,
        key: &SigningKey,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<String, ClientError> {
        let origin = self.origin()?;
        let audience = self.audience();
        let target = Target::new(&origin, &audience, method, path, body);
        let nonce = crate::keyfile::random32();
        Ok(sign_request(key, &target, clock::now_ms(), &nonce))
    }

    /// GET `path` (with query); `auth` overrides the bearer token's Authorization header.
    pub fn get(&self, path: &str, auth: Option<&str>) -> Result<String, ClientError> {
        self.get_at_most(path, auth, ANSWER_LIMIT)
    }

    /// [`Client::get`], reading at most `limit` bytes of the answer: a longer one is refused
    /// as malformed, unread past the limit.
    fn get_at_most(
        &self,
        path: &str,
        auth: Option<&str>,
        limit: usize,
    ) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        if let Some(a) = self.authorization(auth) {
            req = req.header("Authorization", &a);
        }
        Self::finish(&url, req.call(), limit).map(|(_, text)| text)
    }

    /// GET `path` for its body's bytes (a binary answer, e.g. an entry bundle), reading at
    /// most `limit` bytes of it: a longer body is refused as malformed, unread past the limit.
    pub fn get_bytes(&self, path: &str, limit: usize) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}{path}", self.base);
        let transport = |e| read_error(&url, e, limit);
        let mut resp = self.agent.get(&url).call().map_err(transport)?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(limit as u64)
            .read_to_vec()
            .map_err(transport)?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        let text = String::from_utf8_lossy(&bytes);
        let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(e) => (Some(e.error.code), e.error.message),
            Err(_) => (None, text.into_owned()),
        };
        Err(ClientError::Status {
            url,
            status,
            code,
            message,
        })
    }

    /// POST `body` (JSON) to `path`.
    pub fn post(&self, path: &str, body: &str) -> Result<String, ClientError> {
        self.post_with_status(path, body).map(|(_, text)| text)
    }

    fn post_with_status(&self, path: &str, body: &str) -> Result<(u16, String), ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json");
        if let Some(a) = self.authorization(None) {
            req = req.header("Authorization", &a);
        }
        Self::finish(&url, req.send(body), ANSWER_LIMIT)
    }

    fn authorization(&self, auth: Option<&str>) -> Option<String> {
        auth.map(str::to_string)
            .or_else(|| self.token.as_ref().map(|t| format!("Bearer {t}")))
    }

    fn finish(
        url: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        limit: usize,
    ) -> Result<(u16, String), ClientError> {
        let transport = |e| read_error(url, e, limit);
        let mut resp = r.map_err(transport)?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(limit as u64)
            .read_to_string()
            .map_err(transport)?;
        if (200..300).contains(&status) {
            return Ok((status, text));
        }
        let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(e) => (Some(e.error.code), e.error.message),
            Err(_) => (None, text),
        };
        Err(ClientError::Status {
            url: url.to_string(),
            status,
            code,
            message,
        })
    }

    fn json<T: DeserializeOwned>(&self, path: &str, text: &str) -> Result<T, ClientError> {
        serde_json::from_str(text).map_err(|e| ClientError::Malformed {
            url: format!("{}{path}", self.base),
            message: e.to_string(),
        })
    }

    fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        auth: Option<&str>,
    ) -> Result<T, ClientError> {
        self.get_json_at_most(path, auth, ANSWER_LIMIT)
    }

    /// [`Client::get_json`], reading at most `limit` bytes of the answer.
    fn get_json_at_most<T: DeserializeOwned>(
        &self,
        path: &str,
        auth: Option<&str>,
        limit: usize,
    ) -> Result<T, ClientError> {
        let text = self.get_at_most(path, auth, limit)?;
        self.json(path, &text)
    }

    /// `POST /v1/events`: one signed event.
    pub fn append(&self, ev: &EventJson) -> Result<Appended, ClientError> {
        let body = serde_json::to_string(ev).expect("json");
        self.append_line(&body)
    }

    /// `POST /v1/events`: one event as its JSON line, sent as it is.
    pub fn append_line(&self, line: &str) -> Result<Appended, ClientError> {
        let (status, text) = self.post_with_status(paths::EVENTS, line)?;
        let receipt = self.json(paths::EVENTS, &text)?;
        Ok(Appended { status, receipt })
    }

    /// `POST /v1/events/batch`: NDJSON or a JSON array of events.
    pub fn append_batch(&self, body: &str) -> Result<BatchResults, ClientError> {
        let text = self.post(paths::EVENTS_BATCH, body)?;
        self.json(paths::EVENTS_BATCH, &text)
    }

    /// `GET /v1/heads`, with the bearer token or, given `key`, a request signed by the person
    /// (which first reads the log's origin, [`Client::origin`]).
    pub fn heads(
        &self,
        q: &HeadsQuery,
        key: Option<&SigningKey>,
    ) -> Result<HeadResponse, ClientError> {
        let path = with_query(paths::HEADS, q);
        let auth = key.map(|k| self.sign(k, "GET", &path, b"")).transpose()?;
        self.get_json_at_most(&path, auth.as_deref(), HEADS_LIMIT)
    }

    /// `GET /v1/checkpoint`: the latest signed note (read up to the longest note,
    /// `note::MAX_NOTE` bytes).
    pub fn checkpoint(&self) -> Result<String, ClientError> {
        self.get_at_most(paths::CHECKPOINT, None, MAX_NOTE)
    }

    /// `GET /v1/checkpoint/cosigned`: the newest cosigned note (read up to the longest note).
    pub fn cosigned(&self) -> Result<String, ClientError> {
        self.get_at_most(paths::COSIGNED, None, MAX_NOTE)
    }

    /// `GET /v1/checkpoints` (read up to [`CHECKPOINTS_LIMIT`]).
    pub fn checkpoints(&self, q: &CheckpointsQuery) -> Result<CheckpointList, ClientError> {
        self.get_json_at_most(&with_query(paths::CHECKPOINTS, q), None, CHECKPOINTS_LIMIT)
    }

    /// `GET /tile/entries/<N>[.p/<W>]`: an entry bundle's body, as served (not yet split:
    /// `core::tlog::tile::split_bundle`), read up to the longest a bundle of its width can be
    /// (`EntryTile::max_body_len`): a longer one is refused, unread past that.
    pub fn entry_bundle(
        &self,
        tile: &crate::core::tlog::EntryTile,
    ) -> Result<Vec<u8>, ClientError> {
        self.get_bytes(&format!("/{}", tile.path()), tile.max_body_len())
    }

    /// `GET /v1/entries`.
    pub fn entries(&self, q: &PageQuery) -> Result<EntryPage, ClientError> {
        self.get_json(&with_query(paths::ENTRIES, q), None)
    }

    /// `GET /v1/export` (the bearer token must be an auditor's).
    pub fn export(&self, q: &PageQuery) -> Result<ExportPage, ClientError> {
        self.get_json(&with_query(paths::EXPORT, q), None)
    }

    /// `GET /v1/proofs/inclusion` (read up to [`PROOF_LIMIT`]).
    pub fn inclusion(&self, q: &InclusionQuery) -> Result<InclusionProof, ClientError> {
        self.get_json_at_most(&with_query(paths::INCLUSION, q), None, PROOF_LIMIT)
    }

    /// `GET /v1/proofs/consistency` (read up to [`PROOF_LIMIT`]).
    pub fn consistency(&self, q: &ConsistencyQuery) -> Result<ConsistencyProof, ClientError> {
        self.get_json_at_most(&with_query(paths::CONSISTENCY, q), None, PROOF_LIMIT)
    }

    /// `GET /v1/proofs/consent` (the bearer token must be a reader's; read up to
    /// [`CONSENT_LIMIT`]).
    pub fn consent(&self, q: &ConsentQuery) -> Result<ConsentProof, ClientError> {
        self.get_json_at_most(&with_query(paths::CONSENT, q), None, CONSENT_LIMIT)
    }

    /// `POST /v1/proofs/consent`.
    pub fn consent_bulk(
        &self,
        req: &BulkConsentRequest,
    ) -> Result<BulkConsentResponse, ClientError> {
        let text = self.post(paths::CONSENT, &serde_json::to_string(req).expect("json"))?;
        self.json(paths::CONSENT, &text)
    }

    /// `GET /v1/subjects/{subject}/history`, signed by the person's `key` (which first reads
    /// the log's origin, [`Client::origin`]).
    pub fn history(&self, key: &SigningKey) -> Result<History, ClientError> {
        let path = paths::history(&to_hex(key.verifying_key().as_bytes()));
        let auth = self.sign(key, "GET", &path, b"")?;
        self.get_json(&path, Some(&auth))
    }

    /// `GET /metrics`: Prometheus text.
    pub fn metrics(&self) -> Result<String, ClientError> {
        self.get(paths::METRICS, None)
    }

    /// `GET /healthz`.
    pub fn healthz(&self) -> Result<(), ClientError> {
        self.get(paths::HEALTHZ, None).map(drop)
    }

    /// Asks `/healthz` every 100 ms until it answers; false if it did not within `limit`.
    pub fn wait_until_healthy(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while self.healthz().is_err() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use super::*;

    /// Answers each request on a loopback port with `200` and a JSON body of `len(path)` bytes:
    /// `start` (an honest answer, or nothing), then spaces, written as they are read, until the
    /// test ends; the base URL.
    fn answering(start: &'static [u8], len: impl Fn(&str) -> usize + Send + 'static) -> String {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", l.local_addr().expect("address"));
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut r = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                r.read_line(&mut line).expect("request line");
                let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {}
                let len = len(&path);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\
                     Connection: close\r\n\r\n"
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(start);
                let spaces = [b' '; 1 << 16];
                let mut left = len - start.len();
                while left > 0 {
                    let n = left.min(spaces.len());
                    if conn.write_all(&spaces[..n]).is_err() {
                        break;
                    }
                    left -= n;
                }
            }
        });
        url
    }

    /// An honest inclusion proof's JSON.
    const INCLUSION: &[u8] = b"{\"index\":1,\"tree_size\":2,\"leaf_hash\":\"\
        0000000000000000000000000000000000000000000000000000000000000000\",\"root\":\"\
        0000000000000000000000000000000000000000000000000000000000000000\",\"path\":[\"\
        0000000000000000000000000000000000000000000000000000000000000000\"]}";

    /// A lying server cannot make a proof's reader take more than a proof can be: an answer one
    /// byte over [`PROOF_LIMIT`] is refused as malformed, naming the limit, unread past it; one
    /// of exactly the limit is read. So for consistency proofs, checkpoint pages and consent
    /// proofs, each at its own limit.
    #[test]
    fn answers_longer_than_their_route_allows_are_refused() {
        let over = answering(b"", |path| {
            1 + if path.starts_with(paths::INCLUSION) || path.starts_with(paths::CONSISTENCY) {
                PROOF_LIMIT
            } else if path.starts_with(paths::CHECKPOINTS) {
                CHECKPOINTS_LIMIT
            } else {
                CONSENT_LIMIT
            }
        });
        let c = Client::new(&over, None);
        let refused = |r: Result<(), ClientError>, limit: usize| match r {
            Err(ClientError::Malformed { message, .. }) => {
                assert!(
                    message.contains(&format!("longer than {limit} bytes")),
                    "{message}"
                )
            }
            other => panic!("not refused as too long: {other:?}"),
        };
        let q = InclusionQuery {
            index: 1,
            size: Some(2),
        };
        refused(c.inclusion(&q).map(drop), PROOF_LIMIT);
        let q = ConsistencyQuery {
            old: 1,
            new: Some(2),
        };
        refused(c.consistency(&q).map(drop), PROOF_LIMIT);
        let q = CheckpointsQuery {
            from: Some(0),
            to: None,
        };
        refused(c.checkpoints(&q).map(drop), CHECKPOINTS_LIMIT);
        let q = ConsentQuery {
            subject: [0; 32],
            controller: "c".into(),
            purpose: "p".into(),
            at: None,
        };
        refused(c.consent(&q).map(drop), CONSENT_LIMIT);

        let exact = answering(INCLUSION, |_| PROOF_LIMIT);
        let q = InclusionQuery {
            index: 1,
            size: Some(2),
        };
        let p = Client::new(&exact, None)
            .inclusion(&q)
            .expect("a proof of the limit's length");
        assert_eq!((p.index, p.tree_size, p.path.len()), (1, 2, 1));
    }
}
