//! Keys that cannot be swapped, and the command line's habits (issue 15, items 3 and 6),
//! through the real binary: typed key files, `pubkey`, mode checks, `sign`'s chain rule, help
//! on every option, `version`, `completions`, exit 64 for usage errors, the CONSENTLOG_*
//! environment fallbacks and token files, and what `append` says.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::*;

const CTL: &str = "example.com";
const PUR: &str = "ai-training";
const EX_USAGE: i32 = 64;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Runs the binary with `args`, no standard input, and `env` added to (or, for an empty value,
/// removed from) its environment.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(bin());
    c.args(args).stdin(Stdio::null());
    for var in ["CONSENTLOG_DIR", "CONSENTLOG_SERVER", "CONSENTLOG_TOKEN"] {
        c.env_remove(var);
    }
    for (k, v) in env {
        if v.is_empty() {
            c.env_remove(k);
        } else {
            c.env(k, v);
        }
    }
    let out = c.output().expect("run consentlog");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The number of leaves of a local ledger.
fn leaves(l: &TestLedger) -> usize {
    run(&["leaves", "--dir", l.d()]).ok().stdout.lines().count()
}

// ---------------------------------------------------------------------------------------------
// Item 3: keys that cannot be swapped.

#[test]
fn keygen_writes_a_typed_secret_and_public_file_and_pubkey_reads_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let k = tmp.path().join("alice.key");
    let p = tmp.path().join("alice.pub");
    let r = run(&["keygen", "--out", s(&k)]).ok();
    let pk = r.last_line().to_string();
    assert!(is_hex(&pk, 32), "{r:#?}");
    assert!(
        r.stderr.contains("alice.pub"),
        "names the public file: {r:#?}"
    );
    assert_eq!(mode(&k), 0o600);
    let secret = std::fs::read_to_string(&k).unwrap();
    let lines: Vec<&str> = secret.split('\n').collect();
    assert_eq!(lines.len(), 3, "{secret:?}");
    assert_eq!(lines[0], "consentlog secret key v1");
    assert!(is_hex(lines[1], 32) && lines[2].is_empty(), "{secret:?}");
    assert!(
        !r.all().contains(lines[1]),
        "the secret was printed: {r:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        format!("consentlog public key v1\n{pk}\n")
    );
    assert_eq!(mode(&p) & 0o600, 0o600);

    // `pubkey` prints the same key, and nothing secret.
    let r = run(&["pubkey", "--key", s(&k)]).ok();
    assert_eq!(r.stdout, format!("{pk}\n"));
    assert!(!r.all().contains(lines[1]));

    // Neither file is ever overwritten, and a half-existing pair writes nothing.
    let before = std::fs::read(&k).unwrap();
    run(&["keygen", "--out", s(&k)]).assert_fails_with("already exists");
    assert_eq!(std::fs::read(&k).unwrap(), before);
    let b = tmp.path().join("bob.key");
    std::fs::write(tmp.path().join("bob.pub"), "x\n").unwrap();
    run(&["keygen", "--out", s(&b)]).assert_fails_with("bob.pub already exists");
    assert!(!b.exists(), "no secret without its public file");
    // A secret key file may not be named .pub.
    run(&["keygen", "--out", s(&tmp.path().join("carol.pub"))]).assert_fails_with(".pub");
    // Without an extension, the public file is OUT.pub.
    let d = tmp.path().join("dave");
    run(&["keygen", "--out", s(&d)]).ok();
    assert!(tmp.path().join("dave.pub").exists());
}

#[test]
fn a_key_of_the_wrong_kind_is_refused_by_name() {
    let l = TestLedger::cli_with_origin("keys.example/log");
    let (k, pk) = l.person("bob");
    let pubf = k.with_extension("pub");
    let before = leaves(&l);
    let g = ["--controller", CTL, "--purpose", PUR];

    // A public key file where a secret key file is needed.
    for cmd in ["grant", "revoke"] {
        let mut args = vec![cmd, "--dir", l.d(), "--key", s(&pubf)];
        args.extend(g);
        let r = run(&args);
        r.assert_fails_with(&format!(
            "bob.pub is a public key; {cmd} needs a secret key file"
        ));
        assert!(r.stderr.contains("keygen --out"), "{r:#?}");
    }
    let mut args = vec!["sign", "--key", s(&pubf), "--log", "keys.example/log"];
    args.extend(g);
    args.extend(["--opt-in", "--seq", "0"]);
    run(&args).assert_fails_with("bob.pub is a public key; sign needs a secret key file");
    run(&["pubkey", "--key", s(&pubf)])
        .assert_fails_with("bob.pub is a public key; pubkey needs a secret key file");
    run(&[
        "history",
        "--server",
        "http://127.0.0.1:9",
        "--key",
        s(&pubf),
    ])
    .assert_fails_with("bob.pub is a public key; history needs a secret key file");

    // The ledger's own bare-hex key files, and an old-style bare key: refused, named.
    let bare = l.path("old.key");
    std::fs::write(&bare, format!("{}\n", hex::encode([7u8; 32]))).unwrap();
    chmod(&bare, 0o600);
    for f in [
        bare.as_path(),
        &l.dir.join("log.key"),
        &l.dir.join("log.pub"),
    ] {
        let mut args = vec!["grant", "--dir", l.d(), "--key", s(f)];
        args.extend(g);
        let r = run(&args);
        r.assert_fails_with("bare 64-hex-digit key");
        assert!(r.stderr.contains("grant needs a secret key file"), "{r:#?}");
    }
    assert_eq!(leaves(&l), before, "nothing was appended");

    // A secret key file where a public key is needed is refused without showing it.
    let secret_hex = std::fs::read_to_string(&k)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let mut args = vec!["prove", "--dir", l.d(), "--subject", s(&k)];
    args.extend(g);
    let r = run(&args);
    r.assert_fails_with("bob.key is a secret key; --subject needs a public key file");
    assert!(!r.all().contains(&secret_hex));
    let r = run(&["verify", "--any-question", "--log-key", s(&k), s(&k)]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("a person's secret key file, not a log's public key"),
        "{r:#?}"
    );
    assert!(!r.all().contains(&secret_hex));
    let r = run(&["verify", "--any-question", "--log-key", s(&pubf), s(&k)]);
    assert!(r.stderr.contains("a person's public key file"), "{r:#?}");

    // The public key file is a subject: `prove --subject bob.pub` asks about bob.
    l.decide(&k, true, CTL, PUR);
    run(&["checkpoint", "--dir", l.d()]).ok();
    let mut args = vec!["prove", "--dir", l.d(), "--subject", s(&pubf)];
    args.extend(g);
    let proof = run(&args).ok().json();
    assert_eq!(proof["subject"], pk.as_str());
    assert_eq!(proof["state"], "opted_in");

    // Other files: refused as not a key file, naming the expected first line.
    let junk = l.path("junk.key");
    std::fs::write(&junk, "hello\nworld\n").unwrap();
    chmod(&junk, 0o600);
    run(&["pubkey", "--key", s(&junk)]).assert_fails_with("consentlog secret key v1");
    // A damaged secret key file (uppercase hex, trailing garbage) is refused.
    let text = std::fs::read_to_string(&k).unwrap();
    for bad in [
        text.to_uppercase()
            .replace("CONSENTLOG SECRET KEY V1", "consentlog secret key v1"),
        format!("{text}more\n"),
        text.trim_end().to_string(),
    ] {
        std::fs::write(&junk, &bad).unwrap();
        run(&["pubkey", "--key", s(&junk)]).assert_fails_with("not a consentlog key file");
    }
}

#[test]
fn every_command_reading_a_secret_key_checks_its_mode() {
    let l = TestLedger::cli_with_origin("modes.example/log");
    let (k, _) = l.person("carol");
    let g = ["--controller", CTL, "--purpose", PUR];
    for m in [0o640, 0o604, 0o660] {
        chmod(&k, m);
        let runs = [
            run(&["pubkey", "--key", s(&k)]),
            run(&[&["grant", "--dir", l.d(), "--key", s(&k)][..], &g].concat()),
            run(&[&["revoke", "--dir", l.d(), "--key", s(&k)][..], &g].concat()),
            run(&[
                &[
                    "sign",
                    "--key",
                    s(&k),
                    "--log",
                    "x.example/log",
                    "--opt-in",
                    "--seq",
                    "0",
                ][..],
                &g,
            ]
            .concat()),
            run(&["history", "--server", "http://127.0.0.1:9", "--key", s(&k)]),
        ];
        for r in runs {
            r.assert_fails_with("chmod 600");
            assert!(r.stderr.contains("readable by group or others"), "{r:#?}");
        }
    }
    chmod(&k, 0o600);
    run(&["pubkey", "--key", s(&k)]).ok();
    // The public file may be world-readable.
    run(&[
        &[
            "prove",
            "--dir",
            l.d(),
            "--subject",
            s(&k.with_extension("pub")),
        ][..],
        &g,
    ]
    .concat())
    .ok();
}

#[test]
fn sign_refuses_a_seq_without_prev_and_a_prev_without_seq() {
    let l = TestLedger::cli_with_origin("sign.example/log");
    let (k, _) = l.person("dan");
    let base = [
        "sign",
        "--key",
        s(&k),
        "--log",
        "sign.example/log",
        "--controller",
        CTL,
        "--purpose",
        PUR,
        "--opt-in",
    ];
    let r = run(&[&base[..], &["--seq", "1"]].concat()).expect_code(EX_USAGE);
    assert!(r.stderr.contains("--seq 1 needs --prev"), "{r:#?}");
    assert!(r.stdout.is_empty(), "nothing signed: {r:#?}");
    let h = hex::encode([1u8; 32]);
    let r = run(&[&base[..], &["--seq", "0", "--prev", &h]].concat()).expect_code(EX_USAGE);
    assert!(r.stderr.contains("--prev is only for --seq > 0"), "{r:#?}");
    run(&[&base[..], &["--seq", "0"]].concat()).ok();
    run(&[&base[..], &["--seq", "1", "--prev", &h]].concat()).ok();
}

// ---------------------------------------------------------------------------------------------
// Item 6: help and habits.

/// Every subcommand has an about and every argument (but clap's own --help/--version) help.
#[test]
fn every_subcommand_and_option_has_help() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            let p = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                missing.push(p.clone());
            }
            walk(sub, &p, missing);
        }
    }
    let cmd = consentlog::cli::Cli::command();
    cmd.clone().debug_assert();
    let mut missing = Vec::new();
    walk(&cmd, "consentlog", &mut missing);
    assert!(missing.is_empty(), "without help text: {missing:#?}");
    assert!(cmd.get_subcommands().count() > 25);

    // And through the binary: help exits 0 on standard output.
    let r = run(&["--help"]).ok();
    for sub in ["pubkey", "version", "completions", "keygen"] {
        assert!(r.stdout.contains(sub), "{sub}: {r:#?}");
    }
    let r = run(&["append", "--help"]).ok();
    assert!(
        r.stdout.contains("consentlog sign"),
        "where events come from: {r:#?}"
    );
    assert!(r.stdout.contains("CONSENTLOG_DIR"), "{r:#?}");
}

#[test]
fn version_and_completions() {
    let want = format!("consentlog {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(run(&["version"]).ok().stdout, want);
    assert_eq!(run(&["--version"]).ok().stdout, want);
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef consentlog"),
        ("fish", "complete -c consentlog"),
    ] {
        let r = run(&["completions", shell]).ok();
        assert!(r.stdout.contains(marker), "{shell}: {}", r.stdout);
        assert!(r.stdout.contains("pubkey"), "{shell} knows the subcommands");
    }
    run(&["completions", "tcsh"]).expect_code(EX_USAGE);
}

#[test]
fn usage_errors_exit_64_not_2() {
    let l = TestLedger::cli_with_origin("usage.example/log");
    for args in [
        &["checkpoint", "--dri", l.d()][..],
        &["frobnicate"],
        &[],
        &["prove", "--dir", l.d()],
        &["prove-inclusion", "--dir", l.d(), "--index", "x"],
        &[
            "verify",
            "--any-question",
            "--log-key",
            "k",
            "p.json",
            "--nope",
        ],
        &[
            "grant",
            "--dir",
            l.d(),
            "--server",
            "http://x",
            "--key",
            "k",
            "--controller",
            CTL,
            "--purpose",
            PUR,
        ],
    ] {
        let r = run_env(args, &[]);
        assert_eq!(r.code, EX_USAGE, "{args:?}: {r:#?}");
        assert!(r.stdout.is_empty(), "{r:#?}");
        assert!(!r.stderr.is_empty(), "{r:#?}");
    }
    // Neither --dir nor --server (nor their variables): a usage error naming all four.
    let (k, _) = l.person("erin");
    let r = run_env(
        &[
            "grant",
            "--key",
            s(&k),
            "--controller",
            CTL,
            "--purpose",
            PUR,
        ],
        &[],
    )
    .expect_code(EX_USAGE);
    for w in ["--dir", "--server", "CONSENTLOG_DIR", "CONSENTLOG_SERVER"] {
        assert!(r.stderr.contains(w), "{w}: {r:#?}");
    }
    // A token for a local ledger is a usage error too.
    let r = run_env(
        &[
            "prove",
            "--dir",
            l.d(),
            "--subject",
            &hex::encode([1u8; 32]),
            "--controller",
            CTL,
            "--purpose",
            PUR,
            "--token",
            "abcdefghijklmnop",
        ],
        &[],
    );
    assert_eq!(r.code, EX_USAGE, "{r:#?}");
}

#[test]
fn consentlog_dir_stands_in_for_dir_and_an_explicit_option_wins() {
    let l = TestLedger::cli_with_origin("env.example/log");
    let other = TestLedger::cli_with_origin("other.example/log");
    let (k, pk) = l.person("fay");
    let env = [("CONSENTLOG_DIR", l.d())];
    let g = ["--controller", CTL, "--purpose", PUR];
    run_env(&[&["grant", "--key", s(&k)][..], &g].concat(), &env).ok();
    let cp = run_env(&["checkpoint"], &env).ok();
    assert!(cp.stdout.starts_with("env.example/log\n"), "{cp:#?}");
    let p = run_env(&[&["prove", "--subject", &pk][..], &g].concat(), &env)
        .ok()
        .json();
    assert_eq!(p["state"], "opted_in");
    let h = run_env(&["history", "--subject", &pk], &env).ok().json();
    assert_eq!(h["subject"], pk.as_str());
    // `sign` without --log takes the origin from the ledger of CONSENTLOG_DIR.
    let r = run_env(
        &[&["sign", "--key", s(&k), "--opt-out", "--seq", "0"][..], &g].concat(),
        &env,
    )
    .ok();
    assert!(r.stdout.contains("\"log\":\"env.example/log\""), "{r:#?}");
    // --dir on the command line wins over the variable.
    let cp = run_env(&["checkpoint", "--dir", other.d()], &env).ok();
    assert!(cp.stdout.starts_with("other.example/log\n"), "{cp:#?}");
    // And --server given with CONSENTLOG_DIR set is no conflict: the server is asked.
    let r = run_env(
        &[
            &[
                "grant",
                "--key",
                s(&k),
                "--server",
                "http://127.0.0.1:9",
                "--log-key",
                &"11".repeat(32),
            ][..],
            &g,
        ]
        .concat(),
        &env,
    );
    assert_ne!(r.code, 0);
    assert_ne!(r.code, EX_USAGE, "not a usage error: {r:#?}");
    assert!(!r.stderr.contains("cannot be used with"), "{r:#?}");
}

#[test]
fn consentlog_server_and_token_files_keep_tokens_out_of_the_command_line() {
    const TOKEN: &str = "reader-token-0123456789abcdef";
    let srv = Server::start(&["--reader-token", TOKEN]);
    let k = srv.tmp.join("gus.key");
    let pk = run(&["keygen", "--out", s(&k)])
        .ok()
        .last_line()
        .to_string();
    let env = [("CONSENTLOG_SERVER", srv.url.as_str())];
    let g = ["--controller", CTL, "--purpose", PUR];
    let log_key = ["--log-key", srv.log_key_hex.as_str()];
    run_env(
        &[&["grant", "--key", s(&k)][..], &log_key, &g].concat(),
        &env,
    )
    .ok();
    let h = run_env(&["history", "--key", s(&k)], &env).ok().json();
    assert_eq!(h["subject"], pk.as_str());
    let q = [&["prove", "--subject", &pk][..], &g].concat();

    // No token: the server refuses.
    assert_ne!(run_env(&q, &env).code, 0);
    // The token from CONSENTLOG_TOKEN.
    let p = run_env(&q, &[env[0], ("CONSENTLOG_TOKEN", TOKEN)])
        .ok()
        .json();
    assert_eq!(p["subject"], pk.as_str());
    // The token from a file, which must be private.
    let tf = srv.tmp.join("token");
    std::fs::write(&tf, format!("{TOKEN}\n")).unwrap();
    chmod(&tf, 0o644);
    let with_file = [&q[..], &["--token-file", s(&tf)]].concat();
    run_env(&with_file, &env).assert_fails_with("chmod 600");
    chmod(&tf, 0o600);
    let p = run_env(&with_file, &env).ok().json();
    assert_eq!(p["state"], "opted_in");
    // --server on the command line wins over the variable.
    let r = run_env(&with_file, &[("CONSENTLOG_SERVER", "http://127.0.0.1:9")]);
    assert_ne!(r.code, 0, "{r:#?}");
    let r = run_env(
        &[&with_file[..], &["--server", &srv.url]].concat(),
        &[("CONSENTLOG_SERVER", "http://127.0.0.1:9")],
    );
    assert_eq!(r.code, 0, "{r:#?}");
}

#[test]
fn append_says_it_reads_standard_input_counts_duplicates_and_draws_no_progress_off_a_terminal() {
    let l = TestLedger::cli_with_origin("append.example/log");
    let (k, _) = l.person("hal");
    let ev = run(&[
        "sign",
        "--key",
        s(&k),
        "--log",
        "append.example/log",
        "--controller",
        CTL,
        "--purpose",
        PUR,
        "--opt-in",
        "--seq",
        "0",
    ])
    .ok()
    .stdout;
    let r = run_stdin(&["append", "--dir", l.d()], &ev).ok();
    assert!(
        r.stderr
            .contains("reading signed events from standard input"),
        "{r:#?}"
    );
    assert!(
        r.stderr.contains("1 of 1 events appended; 0 duplicate"),
        "{r:#?}"
    );
    assert!(!r.stderr.contains('\u{1b}'), "no terminal codes: {r:#?}");
    let f = l.path("ev.ndjson");
    std::fs::write(&f, format!("{ev}{ev}")).unwrap();
    let r = run(&["append", "--dir", l.d(), s(&f)]).ok();
    assert!(!r.stderr.contains("standard input"), "{r:#?}");
    assert!(r.stderr.contains("event 1: a duplicate"), "{r:#?}");
    assert!(r.stderr.contains("event 2: a duplicate"), "{r:#?}");
    assert!(
        r.stderr.contains("0 of 2 events appended; 2 duplicate(s)"),
        "{r:#?}"
    );
    assert_eq!(r.ndjson().len(), 2, "a receipt line for each: {r:#?}");
    assert!(!r.stderr.contains('\u{1b}'), "{r:#?}");
}

/// On a terminal (a pseudo-terminal from util-linux `script`, when installed), `append` draws
/// its progress on standard error; the receipts on standard output are unchanged.
#[test]
fn append_shows_progress_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to make a terminal");
        return;
    }
    let l = TestLedger::cli_with_origin("tty.example/log");
    let f = l.path("ev.ndjson");
    run(&[
        "loadgen",
        "--log",
        "tty.example/log",
        "--users",
        "20",
        "--events",
        "3000",
        "--out",
        s(&f),
    ])
    .ok();
    let out = l.path("receipts.ndjson");
    let cmd = format!(
        "'{}' append --dir '{}' '{}' > '{}'",
        bin(),
        l.d(),
        s(&f),
        s(&out)
    );
    let r = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let tty = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{tty}");
    assert!(
        tty.contains("events appended in"),
        "no progress drawn: {tty:?}"
    );
    assert!(tty.contains("3000 of 3000 events appended"), "{tty:?}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 3000);
}

/// `serve` reads its tokens from the environment (comma-separated), and its help never shows
/// them.
#[test]
fn serve_reads_tokens_from_the_environment_and_help_hides_them() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("ledger");
    let secret = "auditor-secret-0123456789";
    let r = run_env(
        &["serve", "--help"],
        &[
            ("CONSENTLOG_AUDITOR_TOKENS", secret),
            ("CONSENTLOG_READER_TOKENS", secret),
        ],
    )
    .ok();
    assert!(r.stdout.contains("CONSENTLOG_READER_TOKENS"), "{r:#?}");
    assert!(!r.stdout.contains(secret), "a token in the help: {r:#?}");
    // A bad token in the list is refused before anything starts, naming the option.
    let r = run_env(
        &["serve", "--dir", s(&d), "--listen", "127.0.0.1:0"],
        &[("CONSENTLOG_READER_TOKENS", &format!("{secret},short"))],
    );
    r.assert_fails_with("--reader-token");
    assert!(!r.stderr.contains(secret), "{r:#?}");
}
