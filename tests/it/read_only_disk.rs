//! A data directory that turns read-only while the server runs (the file system remounts
//! itself read-only after an I/O error, as ext4 does with `errors=remount-ro`): appends get a
//! clear 503, nothing acknowledged is lost, and after the operator repairs the file system the
//! server starts again with every acknowledged event in place and a clean audit.
//!
//! Uses a loop-mounted ext4 image and the kernel's `trigger_fs_error` switch, so it needs root
//! and loop devices (CI runs as root); where the machine has no loop devices it says so and
//! does nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::faults;
use crate::support::Server;

use consentlog::core::receipt::Receipt;

const ORIGIN: &str = "readonly.example/log";

/// An ext4 file system in an image file, loop-mounted with `errors=remount-ro`.
struct Ext4 {
    image: PathBuf,
    at: PathBuf,
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Ext4 {
    fn new(dir: &Path) -> Ext4 {
        let image = dir.join("disk.img");
        let at = dir.join("mnt");
        std::fs::create_dir_all(&at).unwrap();
        std::fs::File::create(&image)
            .unwrap()
            .set_len(256 << 20)
            .unwrap();
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
        let fs = Ext4 { image, at };
        fs.mount();
        fs
    }

    fn mount(&self) {
        run(Command::new("mount")
            .args(["-o", "loop,errors=remount-ro"])
            .arg(&self.image)
            .arg(&self.at));
    }

    /// Reports an error in the file system: ext4 remounts it read-only at once, with files
    /// still open for writing.
    fn fail(&self) {
        let out = run(Command::new("findmnt")
            .args(["-n", "-o", "SOURCE"])
            .arg(&self.at));
        let source = String::from_utf8(out.stdout).unwrap();
        let dev = Path::new(source.trim()).file_name().unwrap().to_owned();
        let switch = Path::new("/sys/fs/ext4").join(dev).join("trigger_fs_error");
        std::fs::write(&switch, "1").unwrap();
        let out = run(Command::new("findmnt")
            .args(["-n", "-o", "OPTIONS"])
            .arg(&self.at));
        let opts = String::from_utf8(out.stdout).unwrap();
        assert!(
            opts.contains("emergency_ro") || opts.starts_with("ro"),
            "{opts}"
        );
    }

    /// What an operator does: unmount, check and mount again.
    fn repair(&self) {
        run(Command::new("umount").arg(&self.at));
        // e2fsck exits 1 when it fixed something (here: the recorded error), 0 when clean.
        let st = Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(&self.image)
            .output()
            .unwrap();
        assert!(matches!(st.status.code(), Some(0 | 1)), "{st:?}");
        self.mount();
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

fn serve(dir: &Path, engine: &str) -> Server {
    Server::start_in(dir, &["--origin", ORIGIN, "--backend", engine])
}

fn post_many(url: &str, n: usize) -> (Vec<Receipt>, Vec<(u16, String)>) {
    faults::post_many(url, ORIGIN, "shop.example", "ai-training", n)
}

fn turns_read_only(engine: &str) {
    if !Path::new("/dev/loop-control").exists() {
        eprintln!("no loop devices on this machine: the read-only disk test cannot run here");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fs = Ext4::new(tmp.path());
    let dir = fs.at.join("ledger");
    let srv = serve(&dir, engine);
    let (mut acked, no) = post_many(&srv.url, 30);
    assert!(no.is_empty(), "{no:?}");

    // The file system turns read-only under the running server: every append is refused
    // with a clear error, none is acknowledged.
    fs.fail();
    let (ok, no) = post_many(&srv.url, 5);
    assert!(ok.is_empty(), "acknowledged on a read-only disk: {ok:?}");
    assert_eq!(no.len(), 5);
    for (status, body) in &no {
        assert_eq!(*status, 503, "{body}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("storage"), "{body}");
    }
    // The server stops when asked (its final checkpoint cannot be written).
    let mut srv = srv;
    srv.stop();
    drop(srv);

    // Repaired: everything acknowledged is there, the server takes appends again, and the
    // ledger audits clean.
    fs.repair();
    let srv = serve(&dir, engine);
    let (ok, no) = post_many(&srv.url, 5);
    assert!(no.is_empty(), "refused after the repair: {no:?}");
    acked.extend(ok);
    faults::stop_then_assert_kept(srv, &dir, &acked);
}

#[test]
fn a_disk_turning_read_only_under_the_server_loses_nothing_sled() {
    turns_read_only("sled");
}

#[test]
fn a_disk_turning_read_only_under_the_server_loses_nothing_redb() {
    turns_read_only("redb");
}
