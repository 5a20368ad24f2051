//! Shared by the resource-fault tests: posting fresh opt-ins to a server, and checking that
//! every acknowledged event survived and the ledger audits clean.

use std::path::Path;
use std::process::Command;

use consentlog::core::event::{ConsentEvent, EventJson, EVENT_VERSION};
use consentlog::core::receipt::Receipt;
use consentlog::keyfile;
use consentlog::ledger::{clock, Ledger};

/// Posts `n` fresh opt-ins (one new person each) for `log` with these names; returns the
/// receipts of those acknowledged and the statuses and bodies of those refused.
pub fn post_many(
    url: &str,
    log: &str,
    controller: &str,
    purpose: &str,
    n: usize,
) -> (Vec<Receipt>, Vec<(u16, String)>) {
    let a: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..n {
        let key = keyfile::generate();
        let ev = ConsentEvent {
            version: EVENT_VERSION,
            log: log.into(),
            subject: key.verifying_key().to_bytes(),
            controller: controller.into(),
            purpose: purpose.into(),
            decision: 1,
            seq: 0,
            prev: None,
            issued_at: clock::now_ms(),
            expires_at: None,
            notice: None,
        }
        .sign(&key);
        let body = serde_json::to_string(&EventJson::from(&ev)).unwrap();
        let mut r = a
            .post(&format!("{url}/v1/events"))
            .header("Content-Type", "application/json")
            .send(&body)
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        if status == 201 {
            ok.push(serde_json::from_str(&text).unwrap());
        } else {
            refused.push((status, text));
        }
    }
    (ok, refused)
}

/// Stops `srv` (it must exit cleanly), then [`assert_kept_and_audits_clean`].
pub fn stop_then_assert_kept(
    mut srv: super::server::Server,
    bin: &str,
    dir: &Path,
    acked: &[Receipt],
) {
    assert!(srv.stop().success(), "{}", srv.stderr());
    drop(srv);
    assert_kept_and_audits_clean(bin, dir, acked);
}

/// Every acknowledged entry is stored at its index with its leaf hash, and `consentlog audit`
/// (the binary `bin`) passes on the ledger in `dir` after a checkpoint covering it.
pub fn assert_kept_and_audits_clean(bin: &str, dir: &Path, acked: &[Receipt]) {
    let l = Ledger::open(dir).unwrap();
    for r in acked {
        let e = l
            .entry(r.index)
            .unwrap()
            .expect("acknowledged entry present");
        assert_eq!(e.leaf_hash(), r.leaf_hash, "entry {}", r.index);
    }
    if l.latest().checkpoint.size < l.size() {
        l.checkpoint().unwrap();
    }
    drop(l);
    let out = Command::new(bin)
        .args(["audit", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
