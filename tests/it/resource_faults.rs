//! Resource faults: a full disk or a read-only data directory gives the caller a clear error,
//! loses nothing acknowledged, and the running server recovers (reopening its store) once
//! space or write access returns. Uses a small tmpfs (the tests run as root, as CI does).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::faults;
use crate::support::{run, s, Server};

use consentlog::core::receipt::Receipt;

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

/// Posts `n` fresh opt-ins with long names, so the small disk fills sooner.
fn post_many(url: &str, n: usize) -> (Vec<Receipt>, Vec<(u16, String)>) {
    faults::post_many(url, ORIGIN, &"x".repeat(128), &"y".repeat(128), n)
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
    // A code and a message for the client; the cause (the engine's error text, the files it
    // names) goes to the server's log only.
    assert_eq!(v["error"]["code"], "unavailable", "{body}");
    for leak in [
        s(&dir),
        "os error",
        "No space",
        "ledger data",
        "redb",
        "sled",
        "io error",
    ] {
        assert!(!body.contains(leak), "{leak:?} in {body}");
    }
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
    let out = run(&["serve", "--dir", s(&dir), "--listen", "127.0.0.1:0"]);
    assert_ne!(out.code, 0, "served from a read-only directory");
    let err = &out.stderr;
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
    faults::stop_then_assert_kept(srv, &dir, &acked);
}

#[test]
fn full_and_read_only_disks_lose_nothing_and_the_server_recovers_sled() {
    faults("sled");
}

#[test]
fn full_and_read_only_disks_lose_nothing_and_the_server_recovers_redb() {
    faults("redb");
}
