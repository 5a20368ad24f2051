//! The layering the compiler cannot see: consentlog-core stays free of I/O and of the server's
//! crates, so browsers (wasm32), Python and auditors can embed it (docs/ARCHITECTURE.md).

use std::path::Path;
use std::process::Command;

/// Crates that must never be in consentlog-core's dependency tree.
const FORBIDDEN: &[&str] = &[
    "sled",
    "redb",
    "tokio",
    "axum",
    "hyper",
    "tower",
    "clap",
    "ureq",
    "getrandom",
    "rand",
    "rayon",
    "tracing",
    "indicatif",
];

#[test]
fn core_depends_on_no_server_crate() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "consentlog-core",
            "--no-default-features",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).expect("utf-8");
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"blake3"),
        "unexpected cargo tree output: {tree}"
    );
    for bad in FORBIDDEN {
        assert!(
            !names.contains(bad),
            "consentlog-core depends on {bad}:\n{tree}"
        );
    }
}

/// Paths into the operating system that the core's source must not name.
const OS_PATHS: &[&str] = &[
    "std::fs",
    "std::net",
    "std::env",
    "std::thread",
    "std::process",
    "SystemTime",
    "Instant::now",
    "crate::store",
    "crate::ledger",
];

#[test]
fn core_source_touches_no_os_api() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/consentlog-core/src");
    let mut seen = 0;
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read core source") {
            let path = e.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read file");
            seen += 1;
            for bad in OS_PATHS {
                assert!(
                    !text.contains(bad),
                    "{} names {bad}: the core does no I/O",
                    path.display()
                );
            }
        }
    }
    assert!(seen > 10, "found only {seen} core files");
}
