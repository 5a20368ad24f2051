//! README.md's command blocks, run as written, in order, on fresh ledgers (issue 15 item 5).
//!
//! Every ```sh block of README.md is read; lines ending in `\` are joined to the next. Each
//! line that starts with `consentlog ` runs through `sh -c` (with the variables that lines
//! like `T=$(date …)` set before it) (so its redirections, `$(…)` and
//! `#` comments work as for a person), with the binary under test first on `PATH`, in a
//! temporary working directory, with `HOME` there too (the state and receipt files) and no
//! `CONSENTLOG_*` variables. Skipped, as not meant to be run here: empty lines, comment lines
//! (`# …`), `cargo …` lines (the build and the tests themselves) and `echo $?` (the exit code
//! is asserted instead).
//!
//! A block with a `consentlog serve` line is one HTTP session in a directory of its own: the
//! server runs in the background for the rest of the block, on a free port (`--listen
//! 127.0.0.1:0` is the one argument added), and the README's `http://127.0.0.1:8080` (the
//! default address) is replaced by the address it got. Every other block shares one
//! directory, in README order, as a person following the local sections would.
//!
//! Placeholders substituted, and only these (each is explained in the README beside its
//! block):
//! - `K`: the log public key (in the HTTP block, as `serve` prints it);
//! - `<hex>`: the person's public key (`consentlog pubkey --key me.key`);
//! - `<log public key>`: the contents of `ledger/log.pub`;
//! - `<ms since epoch>` and `<ms>`: a time T taken just before the block runs (its
//!   `checkpoint` then covers T).
//!
//! Every line must exit 0, except the training job's `verify`, which exits 1: the person of
//! the section before revoked, and the README says so.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::support::{bin, now_ms, Proc};

/// The README's shell blocks, continuation lines joined.
fn blocks(readme: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cur: Option<Vec<String>> = None;
    let mut pending = String::new();
    for line in readme.lines() {
        match (&mut cur, line.trim_end()) {
            (None, "```sh") => cur = Some(Vec::new()),
            (Some(_), "```") => out.push(cur.take().expect("in a block")),
            (Some(b), l) => match l.strip_suffix('\\') {
                Some(head) => pending.push_str(head),
                None => {
                    pending.push_str(l);
                    b.push(std::mem::take(&mut pending));
                }
            },
            (None, _) => {}
        }
    }
    assert!(cur.is_none(), "README.md has an unclosed ```sh block");
    out
}

fn skipped(line: &str) -> bool {
    let l = line.trim();
    l.is_empty() || l.starts_with('#') || l.starts_with("cargo ") || l.starts_with("echo $?")
}

/// A shell variable set by a README line (`T=$(date …)`): its name, if `line` is one.
fn assignment(line: &str) -> Option<&str> {
    let (name, _) = line.trim().split_once('=')?;
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')).then_some(name)
}

/// Runs `line` through `sh -c` in `cwd`, with the README's shell variables set so far.
fn sh(line: &str, cwd: &Path, vars: &[(String, String)]) -> super::support::Run {
    let bin_dir = Path::new(bin()).parent().expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(line)
        .current_dir(cwd)
        .env("PATH", path)
        .env("HOME", cwd.join("home"))
        .env("RUST_LOG", "warn")
        .envs(vars.iter().map(|(k, v)| (k, v)));
    for (k, _) in std::env::vars() {
        if k.starts_with("CONSENTLOG_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("run sh");
    super::support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Replaces the whole word `K`.
fn subst_k(line: &str, key: &str) -> String {
    line.split(' ')
        .map(|w| if w == "K" { key } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn readme_commands_run_as_written() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let blocks = blocks(&readme);
    assert!(blocks.len() >= 8, "README.md's sh blocks: {blocks:#?}");
    let local = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(local.path().join("home")).expect("home");
    let (mut ran, mut skips) = (0, Vec::new());
    for block in &blocks {
        let is_server = block
            .iter()
            .any(|l| l.trim().starts_with("consentlog serve"));
        let own = tempfile::tempdir().expect("tempdir");
        let cwd = if is_server { own.path() } else { local.path() };
        std::fs::create_dir_all(cwd.join("home")).expect("home");
        let t = now_ms();
        let mut server: Option<(Proc, String, String)> = None;
        let mut vars: Vec<(String, String)> = Vec::new();
        for raw in block {
            if let Some(name) = assignment(raw) {
                // A variable later lines use: evaluated as the shell would, then passed on. A
                // person takes more than a second between commands; a time in whole seconds
                // (`date +%…%SZ`) taken at once could fall before the log's genesis.
                std::thread::sleep(std::time::Duration::from_millis(1_100));
                let code = raw.split(" #").next().unwrap_or(raw).trim();
                let r = sh(&format!("{code}; printf %s \"${name}\""), cwd, &vars);
                assert_eq!(r.code, 0, "README line `{raw}`: {r:#?}");
                vars.push((name.to_string(), r.stdout));
                ran += 1;
                continue;
            }
            if skipped(raw) || !raw.trim().starts_with("consentlog ") {
                skips.push(raw.clone());
                continue;
            }
            let mut line = raw.trim().to_string();
            if let Some(rest) = line.strip_prefix("consentlog serve") {
                // The background server: the line's own arguments, on a free port.
                let args: Vec<&str> = rest
                    .split('#')
                    .next()
                    .expect("split")
                    .split_whitespace()
                    .collect();
                let dir = cwd.join("consentlog-data");
                let mut p = Proc::spawn(&dir, &cwd.join("server.log"), &args);
                let b = p
                    .wait_ready(Duration::from_secs(60))
                    .unwrap_or_else(|| panic!("`{raw}` did not start: {}", p.stderr()));
                assert_eq!(
                    std::fs::read_to_string(dir.join("log.pub"))
                        .expect("log.pub")
                        .trim(),
                    b.log_key_hex
                );
                server = Some((p, b.url, b.log_key_hex));
                ran += 1;
                continue;
            }
            if let Some((_, url, key)) = &server {
                line = subst_k(&line.replace("http://127.0.0.1:8080", url), key);
            }
            if line.contains('<') {
                let me = sh("consentlog pubkey --key me.key", cwd, &vars).ok();
                let log_pub = std::fs::read_to_string(cwd.join("ledger/log.pub")).expect("log.pub");
                line = line
                    .replace("<hex>", me.stdout.trim())
                    .replace("<log public key>", log_pub.trim())
                    .replace("<ms since epoch>", &t.to_string())
                    .replace("<ms>", &t.to_string());
            }
            let want = if raw.starts_with("consentlog verify --log-key <log public key>") {
                1
            } else {
                0
            };
            let r = sh(&line, cwd, &vars);
            assert_eq!(
                r.code, want,
                "README line `{raw}` (run as `{line}`) exited {}:\n{r:#?}",
                r.code
            );
            if want == 1 {
                assert!(r.all().contains("NOT held"), "{r:#?}");
            }
            ran += 1;
        }
        if let Some((mut p, _, _)) = server {
            assert!(p.term().success(), "the README's server: {}", p.stderr());
        }
    }
    eprintln!("ran {ran} README lines; skipped {skips:#?}");
    assert!(ran >= 30, "only {ran} README lines ran");
    for s in &skips {
        let s = s.trim();
        assert!(
            s.is_empty()
                || s.starts_with('#')
                || s.starts_with("cargo ")
                || s.starts_with("echo $?"),
            "a README line neither run nor meant to be skipped: {s:?}"
        );
    }
}
