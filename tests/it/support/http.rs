//! HTTP to a running server: an agent that reports every status, [`Resp`], and what the
//! answers hold (receipts, Prometheus samples, inclusion proofs).

use std::collections::BTreeSet;
use std::time::Duration;

use consentlog::core::event::{EventJson, SignedEvent};
use consentlog::core::hash::Hash;
use consentlog::core::receipt::Receipt;
use consentlog::core::tlog::{check_inclusion, LeafIndex, Sha256Hasher, TreeSize};
use serde_json::Value;

use super::jh;

/// An HTTP agent that reports every status as a response, not an error.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: String,
}

impl Resp {
    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:#?}"))
    }

    /// Panics with the whole answer unless the status is `status`.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status: {self:#?}");
        self
    }

    /// Asserts the answer is `status` with a JSON error body
    /// `{"error": {"code", "message"}}` (and nothing else); returns the code.
    #[track_caller]
    pub fn expect_error(&self, status: u16) -> String {
        self.expect(status);
        let ct = self.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "error content type {ct:?}: {self:#?}"
        );
        let v = self.json();
        let top: BTreeSet<&str> = v
            .as_object()
            .unwrap_or_else(|| panic!("error body is not an object: {self:#?}"))
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(top, BTreeSet::from(["error"]), "error body {self:#?}");
        let inner: BTreeSet<&str> = v["error"]
            .as_object()
            .unwrap_or_else(|| panic!("error is not an object: {self:#?}"))
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            inner,
            BTreeSet::from(["code", "message"]),
            "error body {self:#?}"
        );
        let code = v["error"]["code"].as_str().expect("code").to_string();
        let msg = v["error"]["message"].as_str().expect("message");
        assert!(
            !code.is_empty() && !msg.is_empty(),
            "empty error: {self:#?}"
        );
        code
    }

    /// `expect_error` and the code must be `code`.
    #[track_caller]
    pub fn expect_error_code(&self, status: u16, code: &str) {
        let got = self.expect_error(status);
        assert_eq!(got, code, "error code: {self:#?}");
    }
}

/// Sends one request; transport failures are returned as `Err`.
pub fn try_send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: Option<&[u8]>,
) -> Result<Resp, ureq::Error> {
    let mut b = ureq::http::Request::builder().method(method).uri(url);
    if let Some(a) = auth {
        b = b.header("Authorization", a);
    }
    let r = match body {
        None => agent.run(b.body(()).expect("request")),
        Some(body) => agent.run(
            b.header("Content-Type", "application/json")
                .body(body.to_vec())
                .expect("request"),
        ),
    };
    let mut r = r?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.body_mut().with_config().limit(1 << 30).read_to_string()?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// [`try_send`], panicking on a transport failure.
#[track_caller]
pub fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: Option<&[u8]>,
) -> Resp {
    try_send(agent, method, url, auth, body)
        .unwrap_or_else(|e| panic!("{method} {url}: transport error {e}"))
}

/// POSTs one signed event to the server at `url`.
#[track_caller]
pub fn post_event(agent: &ureq::Agent, url: &str, ev: &SignedEvent) -> Resp {
    let body = event_json(ev);
    send(
        agent,
        "POST",
        &format!("{url}/v1/events"),
        None,
        Some(body.as_bytes()),
    )
}

/// `Bearer <token>`.
pub fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// The value of an unlabelled (or exactly labelled) Prometheus sample, e.g.
/// `consentlog_tree_size` or `consentlog_rejections_total{rule="seq"}`.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.rsplit_once(' ')?;
        (n == name).then(|| v.parse::<f64>().ok()).flatten()
    })
}

/// The JSON line of a signed event.
pub fn event_json(ev: &SignedEvent) -> String {
    serde_json::to_string(&EventJson::from(ev)).expect("event json")
}

/// A receipt from its JSON.
#[track_caller]
pub fn receipt(v: &Value) -> Receipt {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not a receipt ({e}): {v}"))
}

/// Checks a `{"index","tree_size","leaf_hash","root","path"}` inclusion proof against a root.
#[track_caller]
pub fn check_inclusion_json(p: &Value, leaf: &Hash, size: u64, root: &Hash) {
    let path: Vec<Hash> = p["path"]
        .as_array()
        .unwrap_or_else(|| panic!("no path: {p}"))
        .iter()
        .map(jh)
        .collect();
    let index = p["index"].as_u64().expect("index");
    assert_eq!(p["tree_size"].as_u64(), Some(size), "tree size of {p}");
    assert_eq!(&jh(&p["leaf_hash"]), leaf, "leaf hash of {p}");
    assert_eq!(&jh(&p["root"]), root, "root of {p}");
    check_inclusion(
        &Sha256Hasher,
        LeafIndex(index),
        TreeSize(size),
        leaf,
        &path,
        root,
    )
    .unwrap_or_else(|e| panic!("inclusion proof does not verify ({e}): {p}"));
}
