//! The router in-process (`tower::ServiceExt::oneshot`, no socket, no process), the generated
//! OpenAPI document against its snapshot and against real answers, and the accept loop's
//! header-read timeout and connection limit on a loopback socket.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use ed25519_dalek::SigningKey;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use super::*;
use crate::api::{paths, EntryPage, ErrorBody};
use crate::core::event::{ConsentEvent, EventJson};
use crate::core::request::{sign_request, Target};
use crate::ledger::clock::{self, Clock};

const ORIGIN: &str = "test.example/log";
const READER: &str = "reader-token-0001";
const AUDITOR: &str = "auditor-token-0001";

fn config(dir: &std::path::Path) -> ServeConfig {
    ServeConfig {
        dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("address"),
        origin: ORIGIN.to_string(),
        engine: crate::testing::engine_from_env().to_string(),
        batch: BatchConfig {
            max_events: 8192,
            max_wait_ms: 0,
            queue: 64,
        },
        checkpoint_interval: Duration::from_millis(20),
        max_checkpoint_gap: Duration::from_secs(60),
        request_timeout: Duration::from_secs(30),
        body_limit: 1 << 20,
        cache_bytes: crate::ledger::DEFAULT_CACHE_BYTES,
        map_bytes: crate::ledger::DEFAULT_MAP_BYTES,
        header_timeout: Duration::from_millis(300),
        max_connections: 1,
        public_url: None,
        replay_cache: DEFAULT_REPLAY_CACHE,
        witnesses: None,
        witness_interval: DEFAULT_WITNESS_INTERVAL,
        declare_policy: None,
    }
}

/// A new ledger in a temporary directory and the app serving it.
struct TestApp {
    app: Option<App>,
    ledger: Arc<Ledger>,
    cfg: ServeConfig,
    _dir: tempfile::TempDir,
}

impl TestApp {
    fn new() -> TestApp {
        Self::with(ORIGIN, |_| {}, None)
    }

    /// A new ledger of `origin`, served with `config` changed by `set`, on `clock` (else the
    /// system's).
    fn with(
        origin: &str,
        set: impl FnOnce(&mut ServeConfig),
        clock: Option<clock::ManualClock>,
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = config(dir.path());
        set(&mut cfg);
        let mut opts = crate::ledger::Options::default();
        if let Some(c) = clock {
            opts = opts.clock(c);
        }
        let engine = cfg.engine.parse().expect("engine");
        let ledger = Ledger::init_with(dir.path(), origin, engine, opts).expect("init");
        let ledger = Arc::new(ledger);
        let mut auth = Auth::default();
        auth.add_reader(READER, None);
        auth.add_auditor(AUDITOR);
        let app = App::new(ledger.clone(), &cfg, auth).expect("app");
        TestApp {
            app: Some(app),
            ledger,
            cfg,
            _dir: dir,
        }
    }

    fn router(&self) -> Router {
        self.app.as_ref().expect("running").router()
    }

    /// One request through the router: status and body.
    async fn call(
        &self,
        method: Method,
        uri: &str,
        auth: Option<&str>,
        body: &str,
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let req = req.body(Body::from(body.to_string())).expect("request");
        let resp = self.router().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, String::from_utf8(bytes.to_vec()).expect("UTF-8"))
    }

    async fn get(&self, uri: &str, auth: Option<&str>) -> (StatusCode, String) {
        self.call(Method::GET, uri, auth, "").await
    }

    async fn post(&self, uri: &str, body: &str) -> (StatusCode, String) {
        self.call(Method::POST, uri, Some(&format!("Bearer {READER}")), body)
            .await
    }

    /// A request signed by `key` for this app's log and audience at `time`, with a fresh nonce.
    fn sign(&self, key: &SigningKey, method: &str, path: &str, time: u64) -> String {
        let app = self.app.as_ref().expect("running");
        let target = Target::new(self.ledger.origin(), app.audience(), method, path, b"");
        sign_request(key, &target, time, &crate::keyfile::random32())
    }

    /// Waits until a checkpoint covers the whole tree.
    async fn covered(&self) {
        for _ in 0..500 {
            if self.ledger.latest().checkpoint.size == self.ledger.size() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no checkpoint covers the tree");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop();
        }
    }
}

/// A person's next signed event line.
fn event(key: &SigningKey, head: Option<(u64, [u8; 32])>, opt_in: bool) -> (String, [u8; 32]) {
    let ev = ConsentEvent::next(
        ORIGIN,
        key.verifying_key().to_bytes(),
        ("example.com", "ai-training"),
        opt_in,
        head,
        clock::now_ms(),
        None,
    )
    .sign(key);
    (
        serde_json::to_string(&EventJson::from(&ev)).expect("json"),
        ev.event_hash(),
    )
}

#[track_caller]
fn error_code(status: StatusCode, body: &str, want: (u16, &str)) {
    let e: ErrorBody = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!((status.as_u16(), e.error.code.as_str()), want, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_answers_in_process() {
    let t = TestApp::new();
    assert_eq!(
        t.get("/healthz", None).await,
        (StatusCode::OK, "ok\n".to_string())
    );
    let key = crate::keyfile::generate();
    let (line, _) = event(&key, None, true);
    let (s, body) = t.post("/v1/events", &line).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let r: crate::core::receipt::Receipt = serde_json::from_str(&body).expect("receipt");
    assert!(r.check(&t.ledger.public_key()).is_ok());
    let (s, again) = t.post("/v1/events", &line).await;
    assert_eq!((s, again), (StatusCode::OK, body));

    // Queries: serde refuses unknown, repeated and malformed parameters with the API's 400.
    for bad in [
        "/v1/entries?start=1&start=2",
        "/v1/entries?begin=1",
        "/v1/entries?start=abc",
        "/v1/entries?end=-1",
        "/v1/proofs/inclusion",
        "/v1/proofs/inclusion?index=18446744073709551616",
        "/v1/proofs/consistency?old=1&new=",
        "/v1/checkpoints?from=1&from=1",
    ] {
        let (s, body) = t.get(bad, None).await;
        error_code(s, &body, (400, "bad_request"));
    }
    let (s, body) = t.post("/v1/events?wait=forever", &line).await;
    error_code(s, &body, (400, "bad_request"));
    // Escapes are decoded: %31 is 1.
    let (s, body) = t.get("/v1/entries?start=%30&end=%31", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let page: EntryPage = serde_json::from_str(&body).expect("page");
    assert_eq!((page.start, page.end, page.entries.len()), (0, 1, 1));
    // Credentials are checked before the query of an export.
    let (s, body) = t.get("/v1/export?start=x", None).await;
    error_code(s, &body, (401, "unauthorized"));
    let (s, body) = t.get("/v1/nothing", None).await;
    error_code(s, &body, (404, "not_found"));
    let (s, body) = t.call(Method::DELETE, "/v1/events", None, "").await;
    error_code(s, &body, (405, "method_not_allowed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_timeout_is_a_json_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.request_timeout = Duration::from_millis(100);
    cfg.checkpoint_interval = Duration::from_secs(30);
    let ledger = Arc::new(Ledger::init(dir.path(), ORIGIN, &cfg.engine).expect("init"));
    let app = App::new(ledger, &cfg, Auth::default()).expect("app");
    let key = crate::keyfile::generate();
    let (line, _) = event(&key, None, true);
    let req = Request::post("/v1/events?wait=checkpoint")
        .body(Body::from(line))
        .expect("request");
    let resp = app.router().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let e: ErrorBody = serde_json::from_slice(&body).expect("error body");
    assert_eq!(e.error.code, "unavailable");
    app.stop();
}

// ---------------------------------------------------------------------------------------------
// The OpenAPI document
// ---------------------------------------------------------------------------------------------

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/openapi.json");

/// The generated document is the checked-in one, byte for byte. After a deliberate change to
/// the API, `UPDATE_SNAPSHOTS=1 cargo test --lib openapi` rewrites it; review the diff.
#[test]
fn the_openapi_document_matches_its_snapshot() {
    let now = openapi_json();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(SNAPSHOT, now).expect("write the snapshot");
        return;
    }
    let then = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    assert!(
        then == now,
        "the OpenAPI document changed; if that is intended, run \
         UPDATE_SNAPSHOTS=1 cargo test --lib openapi and commit {SNAPSHOT}"
    );
}

/// Checks `v` against `schema` (resolving `$ref`s in `doc`): types, required fields, and no
/// field the schema does not name. Returns why not.
fn conforms(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return conforms(doc, &doc["components"]["schemas"][name], v, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = schema[key].as_array() {
            return alts
                .iter()
                .find(|s| conforms(doc, s, v, at).is_ok())
                .map(drop)
                .ok_or_else(|| format!("{at}: {v} matches no alternative of {schema}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let number = kind == "integer" && types.contains(&"number");
    if !types.is_empty() && !types.contains(&kind) && !number {
        return Err(format!("{at}: {v} is not of type {types:?}"));
    }
    if let (Some(items), Value::Array(xs)) = (schema.get("items"), v) {
        for (i, x) in xs.iter().enumerate() {
            conforms(doc, items, x, &format!("{at}[{i}]"))?;
        }
    }
    if let Value::Object(fields) = v {
        let props = schema["properties"].as_object();
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap_or_default();
            if !fields.contains_key(r) {
                return Err(format!("{at}: required field {r} is missing"));
            }
        }
        if let Some(props) = props {
            for (k, x) in fields {
                let s = props
                    .get(k)
                    .ok_or_else(|| format!("{at}: field {k} is not in the schema"))?;
                conforms(doc, s, x, &format!("{at}.{k}"))?;
            }
        }
    }
    Ok(())
}

/// The schema of a route's answer with `status`.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let r = &doc["paths"][path][method]["responses"][status.to_string()];
    &r["content"]["application/json"]["schema"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_conform_to_the_generated_document() {
    let doc: Value = serde_json::from_str(openapi_json()).expect("JSON");
    let t = TestApp::new();
    let key = crate::keyfile::generate();
    let subject = crate::core::hash::to_hex(key.verifying_key().as_bytes());
    let (first, h0) = event(&key, None, true);
    let (second, _) = event(&key, Some((0, h0)), false);
    let batch = format!("{first}\n{second}\n{{\"bogus\": 1}}\n");
    let reader = format!("Bearer {READER}");
    let auditor = format!("Bearer {AUDITOR}");
    let history = paths::history(&subject);
    let signed = t.sign(&key, "GET", &history, clock::now_ms());
    let consent =
        format!("/v1/proofs/consent?subject={subject}&controller=example.com&purpose=ai-training");
    let heads = format!("/v1/heads?subject={subject}&controller=example.com&purpose=ai-training");
    let bulk = format!(
        "{{\"queries\": [{{\"subject\": \"{subject}\", \"controller\": \"example.com\", \
         \"purpose\": \"ai-training\"}}, {{\"subject\": \"{subject}\", \"controller\": \"Bad!\", \
         \"purpose\": \"ai-training\"}}]}}"
    );

    let (s, body) = t.post("/v1/events/batch", &batch).await;
    let mut answers = vec![("post", "/v1/events/batch", s, body)];
    t.covered().await;
    let (third, _) = event(&crate::keyfile::generate(), None, true);
    let (s, body) = t.post("/v1/events?wait=checkpoint", &third).await;
    answers.push(("post", "/v1/events", s, body));
    let (s, body) = t.post("/v1/events", "{").await;
    answers.push(("post", "/v1/events", s, body));
    for (path, uri, auth) in [
        ("/v1/heads", heads.as_str(), Some(reader.as_str())),
        ("/v1/checkpoints", "/v1/checkpoints", None),
        ("/v1/entries", "/v1/entries", None),
        ("/v1/export", "/v1/export", Some(auditor.as_str())),
        ("/v1/proofs/inclusion", "/v1/proofs/inclusion?index=1", None),
        (
            "/v1/proofs/consistency",
            "/v1/proofs/consistency?old=1",
            None,
        ),
        (
            "/v1/proofs/consent",
            consent.as_str(),
            Some(reader.as_str()),
        ),
        (paths::HISTORY, history.as_str(), Some(signed.as_str())),
        (
            "/v1/proofs/inclusion",
            "/v1/proofs/inclusion?index=99",
            None,
        ),
    ] {
        let (s, body) = t.get(uri, auth).await;
        answers.push(("get", path, s, body));
    }
    let (s, body) = t.post("/v1/proofs/consent", &bulk).await;
    answers.push(("post", "/v1/proofs/consent", s, body));

    for (method, path, status, body) in answers {
        let schema = response_schema(&doc, method, path, status.as_u16());
        assert!(
            schema.is_object(),
            "{method} {path}: no schema for {status}"
        );
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        conforms(&doc, schema, &v, &format!("{method} {path} {status}"))
            .unwrap_or_else(|e| panic!("{e}\n{body}"));
    }
}

/// Damaged storage met while answering: a 503 with a code and a fixed message for the client;
/// what was wrong (table, key, files, the engine's own text) goes to the server's log only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_answers_a_code_and_a_message_without_internal_details() {
    use crate::core::hash::to_hex;
    use crate::store::{Table, WriteBatch};
    let t = TestApp::new();
    let key = crate::keyfile::generate();
    let subject = to_hex(key.verifying_key().as_bytes());
    let (line, _) = event(&key, None, true);
    let (s, body) = t.post("/v1/events", &line).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    t.covered().await;
    let snap = t.ledger.latest();
    // Leaf 0 is the genesis leaf, leaf 1 init's map leaf, leaf 2 the event: its state key
    // must not be named either.
    let state_key = t
        .ledger
        .event_leaf(2)
        .expect("read")
        .expect("event leaf")
        .key;
    // The event's stored leaf disappears under the running server.
    let mut b = WriteBatch::new();
    b.delete(Table::Leaf, crate::ledger::schema::index_key(2).to_vec());
    t.ledger.store().commit(b).expect("commit");

    let reader = format!("Bearer {READER}");
    let consent = format!(
        "/v1/proofs/consent?subject={subject}&controller=example.com&purpose=ai-training&at={}",
        snap.map_leaf.time
    );
    let bulk = format!(
        "{{\"queries\": [{{\"subject\": \"{subject}\", \"controller\": \"example.com\", \
         \"purpose\": \"ai-training\", \"at\": {}}}]}}",
        snap.map_leaf.time
    );
    let (s, one) = t.get(&consent, Some(&reader)).await;
    error_code(s, &one, (503, "unavailable"));
    // In bulk, the failed query's item (or the whole answer) says the same.
    let (s, many) = t.post("/v1/proofs/consent", &bulk).await;
    if s == StatusCode::OK {
        let v: Value = serde_json::from_str(&many).expect("JSON");
        assert_eq!(v["proofs"][0]["error"]["code"], "unavailable", "{many}");
    } else {
        error_code(s, &many, (503, "unavailable"));
    }
    let dir = t.cfg.dir.display().to_string();
    let hex_key = to_hex(&state_key);
    for body in [&one, &many] {
        let e: Value = serde_json::from_str(body).expect("JSON");
        let message = e["error"]["message"]
            .as_str()
            .or(e["proofs"][0]["error"]["message"].as_str())
            .expect("a message");
        assert!(message.contains("retry later"), "{body}");
        for leak in [
            dir.as_str(),
            "corrupt",
            "damaged",
            "leaf 2",
            "missing",
            &hex_key,
        ] {
            assert!(!body.contains(leak), "{leak:?} in {body}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Entry bundles (c2sp.org/tlog-tiles)
// ---------------------------------------------------------------------------------------------

/// `GET uri` through the router: status, headers and the body's bytes.
async fn get_bytes(t: &TestApp, uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let req = Request::builder()
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let resp = t.router().oneshot(req).await.expect("infallible");
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, headers, bytes.to_vec())
}

impl TestApp {
    /// Appends 300 people's first events (a tree of two entry bundles, the second partial) and
    /// waits until a checkpoint covers them.
    async fn log_300_people(&self) {
        let lines: Vec<String> = (0..300)
            .map(|_| event(&crate::keyfile::generate(), None, true).0)
            .collect();
        let (s, body) = self.post("/v1/events/batch", &lines.join("\n")).await;
        assert!(s.is_success(), "{s} {body}");
        self.covered().await;
    }
}

/// A full bundle and every partial width up to the tree are the leaves `/v1/entries` serves,
/// each as a uint16 length and its bytes, immutable; past the tree is 404; a path that is not
/// a bundle's canonical spelling is 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_bundles_are_the_leaves_in_tlog_tiles_form() {
    use crate::core::tlog::tile::encode_bundle;
    let t = TestApp::new();
    t.log_300_people().await;
    let size = t.ledger.size();
    assert!((257..512).contains(&size), "{size}");
    let (s, body) = t.get(&format!("/v1/entries?end={size}"), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let page: EntryPage = serde_json::from_str(&body).expect("page");
    let leaves: Vec<&[u8]> = page.entries.iter().map(|r| r.entry.as_slice()).collect();
    assert_eq!(leaves.len() as u64, size);

    let (s, h, body) = get_bytes(&t, "/tile/entries/000").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(h["cache-control"], tiles::IMMUTABLE);
    assert_eq!(body, encode_bundle(leaves[..256].iter().copied()).unwrap());
    let partial = size as usize - 256;
    for w in [1, partial] {
        let (s, h, body) = get_bytes(&t, &format!("/tile/entries/001.p/{w}")).await;
        assert_eq!(s, StatusCode::OK, "width {w}");
        assert_eq!(h["cache-control"], tiles::IMMUTABLE);
        let want = encode_bundle(leaves[256..256 + w].iter().copied()).unwrap();
        assert_eq!(body, want, "width {w}");
    }
    // The genesis leaf alone.
    let (s, _, body) = get_bytes(&t, "/tile/entries/000.p/1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        usize::from(u16::from_be_bytes([body[0], body[1]])),
        leaves[0].len()
    );
    assert_eq!(&body[2..], leaves[0]);

    for past in [
        "/tile/entries/001".to_string(),
        format!("/tile/entries/001.p/{}", partial + 1),
        "/tile/entries/002.p/1".into(),
        "/tile/entries/x001/000".into(),
    ] {
        let (s, _, body) = get_bytes(&t, &past).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{past}");
        let e: ErrorBody = serde_json::from_slice(&body).expect("error body");
        assert_eq!(e.error.code, "not_found", "{past}");
    }
    for bad in [
        "/tile/entries/0",
        "/tile/entries/00",
        "/tile/entries/0000",
        "/tile/entries/x000/000",
        "/tile/entries/x001",
        "/tile/entries/001/",
        "/tile/entries/000.p/0",
        "/tile/entries/000.p/256",
        "/tile/entries/000.p/01",
        "/tile/entries/000.p/",
        "/tile/entries/%30%30%30",
        "/tile/entries/x018/x446/x744/x073/x709/x551/615",
    ] {
        let (s, _, body) = get_bytes(&t, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        let e: ErrorBody = serde_json::from_slice(&body).expect("error body");
        assert_eq!(e.error.code, "bad_request", "{bad}");
    }
    let (s, _) = t.post("/tile/entries/000", "").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}

/// The tlog-tiles read API: `/checkpoint` is the newest signed note (not cached), and every
/// hash tile the checkpoint's tree has is the tree's hashes at height 8·L (immutable), so that an
/// independent tlog-tiles client (the `tlog_tiles` crate's `TileHashReader`, a port of Go's
/// sumdb/tlog, which checks the tiles against the checkpoint's root) computes the root and
/// inclusion proofs that verify. A tile the tree does not hold yet is 404; a path that is not a
/// tile's canonical spelling is 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_tiles_let_a_tlog_tiles_client_read_the_log() {
    use crate::core::tlog::{HashTile, MemoryTree, Sha256Hasher};
    use std::collections::HashMap;
    use tlog_tiles as go;

    let t = TestApp::new();
    t.log_300_people().await;

    let (s, h, note) = get_bytes(&t, "/checkpoint").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    let note = String::from_utf8(note).expect("a note is text");
    let (_, v1) = t.get("/v1/checkpoint", None).await;
    assert_eq!(note, v1);
    let cp = crate::core::note::open(&note, &t.ledger.public_key()).expect("a signed checkpoint");
    let size = cp.size;
    assert!((257..512).contains(&size), "{size}");

    // The tree, from the leaves `/v1/entries` serves.
    let (_, body) = t.get(&format!("/v1/entries?end={size}"), None).await;
    let page: EntryPage = serde_json::from_str(&body).expect("page");
    let mut tree = MemoryTree::new(Sha256Hasher);
    for row in &page.entries {
        tree.push(&row.entry);
    }

    // Every tile of the tree: level 0 full, level 0 partial, level 1 partial of width 1.
    let mut served = HashMap::new();
    let tiles = go::Tile::new_tiles(8, 0, size);
    assert_eq!(tiles.len(), 3, "{tiles:?}");
    for gt in &tiles {
        let ours = HashTile {
            level: gt.level(),
            index: gt.level_index(),
            width: gt.width() as u16,
        };
        let path = format!("/{}", ours.path());
        assert_eq!(
            path,
            format!("/{}", gt.path().replacen("tile/8/", "tile/", 1))
        );
        let (s, h, body) = get_bytes(&t, &path).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert_eq!(h["content-type"], "application/octet-stream");
        assert_eq!(h["cache-control"], tiles::IMMUTABLE);
        assert_eq!(body, ours.read(&tree).unwrap().unwrap(), "{path}");
        served.insert(*gt, body);
    }

    struct Served(HashMap<go::Tile, Vec<u8>>);
    impl go::TileReader for Served {
        fn height(&self) -> u8 {
            8
        }
        fn read_tiles(&self, tiles: &[go::Tile]) -> Result<Vec<Vec<u8>>, go::Error> {
            tiles
                .iter()
                .map(|t| self.0.get(t).cloned().ok_or(go::Error::IndexesNotInTree))
                .collect()
        }
        fn save_tiles(&self, _: &[go::Tile], _: &[Vec<u8>]) {}
    }
    let served = Served(served);
    let root = go::Hash(cp.root);
    let reader = go::TileHashReader::new(size, root, &served);
    assert_eq!(
        go::tree_hash(size, &reader).expect("the root from the tiles"),
        root
    );
    for i in [0, 1, 255, 256, size - 1] {
        let proof = go::prove_record(size, i, &reader).expect("a proof from the tiles");
        let leaf = go::record_hash(&page.entries[i as usize].entry);
        go::check_record(&proof, size, root, i, leaf).expect("the proof verifies");
    }

    let partial = size - 256;
    for past in [
        format!("/tile/0/001.p/{}", partial + 1),
        "/tile/0/001".into(),
        "/tile/0/002.p/1".into(),
        "/tile/1/000.p/2".into(),
        "/tile/1/000".into(),
        "/tile/2/000.p/1".into(),
        "/tile/7/000.p/1".into(),
        "/tile/8/000.p/1".into(),
        "/tile/63/x018/x446/x744/x073/x709/x551/615".into(),
    ] {
        let (s, _, body) = get_bytes(&t, &past).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{past}");
        let e: ErrorBody = serde_json::from_slice(&body).expect("error body");
        assert_eq!(e.error.code, "not_found", "{past}");
    }
    for bad in [
        "/tile/00/000",
        "/tile/01/000",
        "/tile/64/000",
        "/tile/a/000",
        "/tile/-1/000",
        "/tile/0/0",
        "/tile/0/0000",
        "/tile/0/x000/001",
        "/tile/0/000/",
        "/tile/0/000.p/0",
        "/tile/0/000.p/256",
        "/tile/0/000.p/01",
        "/tile/%30/000",
    ] {
        let (s, _, body) = get_bytes(&t, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        let e: ErrorBody = serde_json::from_slice(&body).expect("error body");
        assert_eq!(e.error.code, "bad_request", "{bad}");
    }
    let (s, _) = t.post("/tile/0/000", "").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, _) = t.post("/checkpoint", "").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    // Entry bundles are still theirs: `entries` is not a level.
    let (s, _, _) = get_bytes(&t, "/tile/entries/000").await;
    assert_eq!(s, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// The accept loop: header-read timeout and connection limit
// ---------------------------------------------------------------------------------------------

/// Serves `t` on a loopback port until the returned sender is dropped or sent to.
async fn listen(t: &TestApp) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (router, cfg) = (t.router(), t.cfg.clone());
    tokio::spawn(async move {
        accept(
            listener,
            router,
            cfg.header_timeout,
            cfg.max_connections,
            async {
                let _ = stopped.await;
            },
        )
        .await;
    });
    (addr, stop)
}

/// Reads until the peer closes; `None` if it is still open after `limit`.
async fn closed_within(s: &mut tokio::net::TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    tokio::time::timeout(limit, async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|()| got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_head_is_cut_off_after_the_header_timeout() {
    let t = TestApp::new();
    let (addr, _stop) = listen(&t).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let started = std::time::Instant::now();
    // The timeout is 300 ms; without one the connection would stay open.
    closed_within(&mut s, Duration::from_secs(5))
        .await
        .expect("the connection is still open 5 s later");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let t = TestApp::new(); // max_connections: 1
    let (addr, _stop) = listen(&t).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut first = tokio::net::TcpStream::connect(addr).await.expect("connect");
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 256];
    let n = first.read(&mut buf).await.expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    // The first connection is kept alive: a second one is not served meanwhile.
    let mut second = tokio::net::TcpStream::connect(addr).await.expect("connect");
    second.write_all(request).await.expect("write");
    let early = tokio::time::timeout(Duration::from_millis(150), second.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond the connection limit");
    // Once the first closes (here by the header timeout, as it sends nothing more), the second
    // is served.
    let answer = closed_within(&mut second, Duration::from_secs(5))
        .await
        .expect("the second connection was never served");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}

// ---------------------------------------------------------------------------------------------
// Signed requests: bound to the log and the server, fresh, not before the start, used once
// ---------------------------------------------------------------------------------------------

/// A person's history path and a request for it signed for `origin` and `audience`.
fn signed_history(key: &SigningKey, origin: &str, audience: &str, time: u64) -> (String, String) {
    let path = paths::history(&crate::core::hash::to_hex(key.verifying_key().as_bytes()));
    let target = Target::new(origin, audience, "GET", &path, b"");
    let header = sign_request(key, &target, time, &crate::keyfile::random32());
    (path, header)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_is_refused_by_another_log_and_by_another_audience() {
    let a = TestApp::with(
        ORIGIN,
        |c| c.public_url = Some("https://a.example".into()),
        None,
    );
    let other_log = TestApp::with(
        "other.example/log",
        |c| c.public_url = Some("https://a.example".into()),
        None,
    );
    let other_server = TestApp::with(
        ORIGIN,
        |c| c.public_url = Some("https://b.example".into()),
        None,
    );
    let key = crate::keyfile::generate();
    let (path, header) = signed_history(&key, ORIGIN, "https://a.example", clock::now_ms());
    // Never seen by the others, so only the binding can refuse it there.
    for (t, what) in [
        (&other_log, "another log"),
        (&other_server, "another audience"),
    ] {
        let (s, body) = t.get(&path, Some(&header)).await;
        error_code(s, &body, (403, "bad_signature"));
        assert!(
            body.contains("does not verify for this log and audience"),
            "{what}: {body}"
        );
        assert!(
            body.contains(t.app.as_ref().unwrap().audience()),
            "{what}: {body}"
        );
    }
    let (s, body) = a.get(&path, Some(&header)).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // The default audience is http:// and the listen address.
    let d = TestApp::new();
    assert_eq!(d.app.as_ref().unwrap().audience(), "http://127.0.0.1:0");
    let (path, header) = signed_history(&key, ORIGIN, "http://127.0.0.1:0/", clock::now_ms());
    let (s, body) = d.get(&path, Some(&header)).await;
    error_code(s, &body, (403, "bad_signature")); // signers normalise; the server does not
    let (path, header) = signed_history(&key, ORIGIN, "http://127.0.0.1:0", clock::now_ms());
    assert_eq!(d.get(&path, Some(&header)).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_is_taken_once() {
    let t = TestApp::new();
    let key = crate::keyfile::generate();
    let subject = crate::core::hash::to_hex(key.verifying_key().as_bytes());
    let path = paths::history(&subject);
    let header = t.sign(&key, "GET", &path, clock::now_ms());
    assert_eq!(t.get(&path, Some(&header)).await.0, StatusCode::OK);
    let (s, body) = t.get(&path, Some(&header)).await;
    error_code(s, &body, (403, "replayed_request"));
    let (s, body) = t.get(&path, Some(&header)).await;
    error_code(s, &body, (403, "replayed_request"));
    // A new nonce is a new request.
    let again = t.sign(&key, "GET", &path, clock::now_ms());
    assert_eq!(t.get(&path, Some(&again)).await.0, StatusCode::OK);

    // Heads too, whether or not a reader token would also do.
    let heads = format!("/v1/heads?subject={subject}&controller=example.com&purpose=ai-training");
    let header = t.sign(&key, "GET", &heads, clock::now_ms());
    assert_eq!(t.get(&heads, Some(&header)).await.0, StatusCode::OK);
    let (s, body) = t.get(&heads, Some(&header)).await;
    error_code(s, &body, (403, "replayed_request"));

    // Signed by someone else (validly, for their own subject): refused, and their nonce is
    // not spent on it.
    let mallory = crate::keyfile::generate();
    let header = t.sign(&mallory, "GET", &path, clock::now_ms());
    let (s, body) = t.get(&path, Some(&header)).await;
    error_code(s, &body, (403, "forbidden"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_requests_and_requests_from_before_the_start_are_refused() {
    const T0: u64 = 1_767_225_600_000;
    const WINDOW: u64 = crate::core::request::REQUEST_WINDOW_MS;
    let c = clock::ManualClock::new(T0);
    let t = TestApp::with(ORIGIN, |_| {}, Some(c.clone()));
    assert_eq!(t.app.as_ref().unwrap().started(), T0);
    let key = crate::keyfile::generate();
    let path = paths::history(&crate::core::hash::to_hex(key.verifying_key().as_bytes()));

    // Signed a moment before the server started (a request it could have taken before a
    // restart, and no longer remembers): refused, though fresh.
    let before = t.sign(&key, "GET", &path, T0 - 1);
    let (s, body) = t.get(&path, Some(&before)).await;
    error_code(s, &body, (403, "request_before_start"));
    c.advance(60_000);
    let (s, body) = t.get(&path, Some(&before)).await;
    error_code(s, &body, (403, "request_before_start"));

    // More than 5 minutes off the clock, either way.
    let now = c.advance(2 * WINDOW);
    for time in [now - WINDOW - 1, now + WINDOW + 1] {
        let h = t.sign(&key, "GET", &path, time);
        let (s, body) = t.get(&path, Some(&h)).await;
        error_code(s, &body, (403, "stale_request"));
        assert!(
            body.contains("more than 5 minutes from the server clock"),
            "{body}"
        );
    }
    // At the edges of the window: taken.
    for time in [now - WINDOW, now + WINDOW] {
        let h = t.sign(&key, "GET", &path, time);
        let (s, body) = t.get(&path, Some(&h)).await;
        assert_eq!(s, StatusCode::OK, "{time}: {body}");
    }
    // A request taken once, then the clock moves past its window: stale, not replayed.
    let h = t.sign(&key, "GET", &path, now);
    assert_eq!(t.get(&path, Some(&h)).await.0, StatusCode::OK);
    c.advance(WINDOW + 1);
    let (s, body) = t.get(&path, Some(&h)).await;
    error_code(s, &body, (403, "stale_request"));
    // A request at the new time lets the cache forget the old nonce; with the clock then set
    // back, the old request is still refused (stale by the cache's clock, which never goes
    // back).
    let later = t.sign(&key, "GET", &path, c.now_ms());
    assert_eq!(t.get(&path, Some(&later)).await.0, StatusCode::OK);
    c.set(now);
    let (s, body) = t.get(&path, Some(&h)).await;
    error_code(s, &body, (403, "stale_request"));
    // A header without a nonce (format v1) is malformed.
    let v1 = format!(
        "Consentlog-Ed25519 subject={},time={now},signature={}",
        crate::core::hash::to_hex(key.verifying_key().as_bytes()),
        "00".repeat(64)
    );
    let (s, body) = t.get(&path, Some(&v1)).await;
    error_code(s, &body, (403, "malformed_request"));
    assert!(body.contains("nonce is missing"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_replay_cache_refuses_with_503_until_its_oldest_request_expires() {
    const T0: u64 = 1_767_225_600_000;
    const WINDOW: u64 = crate::core::request::REQUEST_WINDOW_MS;
    let c = clock::ManualClock::new(T0);
    let t = TestApp::with(ORIGIN, |cfg| cfg.replay_cache = 2, Some(c.clone()));
    let key = crate::keyfile::generate();
    let path = paths::history(&crate::core::hash::to_hex(key.verifying_key().as_bytes()));
    let first = t.sign(&key, "GET", &path, T0);
    assert_eq!(t.get(&path, Some(&first)).await.0, StatusCode::OK);
    let h = t.sign(&key, "GET", &path, T0 + 1000);
    assert_eq!(t.get(&path, Some(&h)).await.0, StatusCode::OK);
    let h = t.sign(&key, "GET", &path, T0 + 1000);
    let req = Request::get(path.as_str())
        .header("authorization", &h)
        .body(Body::empty())
        .expect("request");
    let resp = t.router().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        resp.headers()["retry-after"].to_str().unwrap(),
        (WINDOW / 1000 + 1).to_string()
    );
    // The live ones are not forgotten to make room.
    let (s, body) = t.get(&path, Some(&first)).await;
    error_code(s, &body, (403, "replayed_request"));
    // Once the first expires, there is room.
    c.advance(WINDOW + 1);
    let h = t.sign(&key, "GET", &path, c.now_ms());
    let (s, body) = t.get(&path, Some(&h)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}
