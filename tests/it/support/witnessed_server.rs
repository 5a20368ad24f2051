//! A `consentlog serve` under witnessing, as the tests look at it: its newest cosigned
//! checkpoint, its witness metrics, a ledger made with `consentlog init` (and copied, for a
//! fork), and proofs checked with `consentlog verify` as a user runs it.

use std::path::Path;

use consentlog::core::vkey::{Vkey, TYPE_ED25519};

use super::people::Person;
use super::process::{run, Run, Server};

/// A new ledger in `dir` (`consentlog init --origin origin`) and its vkey, as a policy names it.
pub fn init_ledger(dir: &Path, origin: &str) -> Vkey {
    run(&["init", "--dir", dir.to_str().unwrap(), "--origin", origin]).ok();
    let l = consentlog::ledger::Ledger::open(dir).expect("open the new ledger");
    Vkey::new(origin, TYPE_ED25519, l.public_key()).expect("vkey")
}

/// Copies the directory `from` (a ledger, say) to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// The size and the cosigners (witness names, the log's own line left out) of the server's
/// newest cosigned checkpoint, from `GET /v1/checkpoint/cosigned`.
pub fn cosigners(srv: &Server, origin: &str) -> Option<(u64, Vec<String>)> {
    let r = srv.get("/v1/checkpoint/cosigned");
    if r.status != 200 {
        return None;
    }
    let size: u64 = r.body.lines().nth(1)?.parse().ok()?;
    let names = r
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("\u{2014} "))
        .map(|l| l.split(' ').next().unwrap_or("").to_string())
        .filter(|n| n != origin)
        .collect();
    Some((size, names))
}

/// The server's metric `name` for one witness (0 when absent).
pub fn witness_metric(srv: &Server, name: &str, witness: &str) -> f64 {
    let text = srv.get("/metrics").expect(200).body.clone();
    let prefix = format!("{name}{{witness=\"{witness}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `consentlog verify` of the proof in `file` for `p`'s triple (at the proof's own time:
/// `--any-question`), with `extra` arguments, as a user runs it.
pub fn verify_as_user(srv: &Server, p: &Person, file: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "verify".to_string(),
        "--log-key".into(),
        srv.log_key_hex.clone(),
        "--subject".into(),
        p.hex(),
        "--controller".into(),
        p.controller.clone(),
        "--purpose".into(),
        p.purpose.clone(),
        "--any-question".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(file.to_str().unwrap().into());
    run(&args)
}
