//! Resource faults: a full disk or a read-only data directory gives the caller a clear error,
//! loses nothing acknowledged, and the running server recovers (reopening its store) once
//! space or write access returns. Uses a small tmpfs (the tests run as root, as CI does).

use std::path::{Path, PathBuf};
use std::process::Command;

mod support_server;
use support_server::Server;

use consentlog::core::event::{ConsentEvent, EventJson, EVENT_VERSION};
use consentlog::core::receipt::Receipt;
use consentlog::keyfile;
use consentlog::ledger::{clock, Ledger};

const BIN: &str = env!("CARGO_BIN_EXE_consentlog");
const ORIGIN: &str = "faults.example/log";

struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs needs root (CI runs as root)");
        Mount(at.to_path_buf())
    }
    fn remount(&self, opts: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {opts}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn serve(dir: &Path, engine: &str) -> Server {
    Server::start_in(
        dir,
        &[
            "--origin",
            ORIGIN,
            "--backend",
            engine,
            "--cache-bytes",
            "1048576",
        ],
    )
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Posts `n` fresh opt-ins (one new person each); returns the receipts of those acknowledged
/// and the statuses of those refused.
fn post_many(url: &str, n: usize) -> (Vec<Receipt>, Vec<(u16, String)>) {
    let a = agent();
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..n {
        let key = keyfile::generate();
        let ev = ConsentEvent {
            version: EVENT_VERSION,
            log: ORIGIN.into(),
            subject: key.verifying_key().to_bytes(),
            // Long names make each event large, so the small disk fills sooner.
            controller: "x".repeat(128),
            purpose: "y".repeat(128),
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

fn faults(engine: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = Mount::tmpfs(&tmp.path().join("m"), "3m");
    let dir = mnt.0.join("ledger");
    let srv = serve(&dir, engine);

    // Fill the disk: appends start failing with a clear error, not a crash.
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..40 {
        let (ok, no) = post_many(&srv.url, 200);
        acked.extend(ok);
        if !no.is_empty() {
            refused = no;
            break;
        }
    }
    assert!(!refused.is_empty(), "the 3 MiB disk never filled");
    let (status, body) = &refused[0];
    assert_eq!(*status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(v["error"]["message"].is_string(), "{body}");
    assert!(
        !acked.is_empty(),
        "nothing was appended before the disk filled"
    );

    // Space returns: the same server process appends again.
    mnt.remount("size=256m");
    let (ok, no) = post_many(&srv.url, 20);
    assert!(no.is_empty(), "still refused after space returned: {no:?}");
    acked.extend(ok);

    // Stop gracefully (a final checkpoint).
    let mut srv = srv;
    assert!(srv.stop().success(), "{}", srv.stderr());
    drop(srv);

    // A read-only data directory: the server refuses to start with a clear error.
    mnt.remount("ro");
    let out = Command::new(BIN)
        .args([
            "serve",
            "--dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "served from a read-only directory");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error:"), "{err}");
    mnt.remount("rw");
    let srv = serve(&dir, engine);
    let (ok, no) = post_many(&srv.url, 10);
    assert!(
        no.is_empty(),
        "refused after the disk became writable: {no:?}"
    );
    acked.extend(ok);

    // Nothing acknowledged was lost, and the ledger audits clean.
    let mut srv = srv;
    assert!(srv.stop().success(), "{}", srv.stderr());
    drop(srv);
    let l = Ledger::open(&dir).unwrap();
    for r in &acked {
        let e = l
            .entry(r.index)
            .unwrap()
            .expect("acknowledged entry present");
        assert_eq!(e.leaf_hash(), r.leaf_hash, "entry {}", r.index);
    }
    l.checkpoint().unwrap();
    drop(l);
    let out = Command::new(BIN)
        .args(["audit", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn full_and_read_only_disks_lose_nothing_and_the_server_recovers_sled() {
    faults("sled");
}

#[test]
fn full_and_read_only_disks_lose_nothing_and_the_server_recovers_redb() {
    faults("redb");
}
