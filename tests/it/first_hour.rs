//! A newcomer's first hour (issue 15), items 4 and the rest of 1 and 2, as a user meets them
//! through the binary and over HTTP: a server that says where its data is, where its page and
//! API document are, which roles are configured and how to stop it; a page at `GET /`; 401 and
//! 403 answers that name the header and the option; a ledger in use by another process
//! reported as such (both engines); nothing created before the port is bound; no colour codes
//! in a log file; reading commands that leave the ledger directory byte for byte as it was
//! (both engines); verdicts that name the question, the log and the checkpoint; times shown in
//! RFC 3339 beside milliseconds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::process::{read_banner, read_lines};
use crate::support::*;

const TOKEN: &str = "reader-token-0000000001";
const AUDITOR: &str = "auditor-token-000000001";

/// The hex of the root of a checkpoint note (its third line is the root in base64).
fn note_root_hex(note: &str) -> String {
    use base64::Engine;
    let b64 = note.lines().nth(2).expect("a note's root line");
    let root = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .expect("base64 root");
    consentlog::core::hash::to_hex(&root)
}

/// The size of a checkpoint note (its second line).
fn note_size(note: &str) -> u64 {
    note.lines()
        .nth(1)
        .expect("a note's size line")
        .trim()
        .parse()
        .expect("a size")
}

// -----------------------------------------------------------------------------------------
// serve explains itself
// -----------------------------------------------------------------------------------------

/// `serve` started in a directory with a relative `--dir`: it prints the data directory as an
/// absolute path, the URLs of its page and API document (both answer), each role (the issue's
/// words for a missing reader token), how to stop it; its log file has no colour codes.
#[test]
fn serve_says_where_its_data_page_and_api_are_who_may_do_what_and_how_to_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("server.log");
    let mut child = Command::new(bin())
        .current_dir(tmp.path())
        .args(["serve", "--dir", "my-ledger", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .expect("spawn serve");
    let (lines, rx, reader) = read_lines(child.stdout.take().unwrap());
    let banner = read_banner(&rx, Duration::from_secs(30));
    let out: Vec<String> = lines.lock().unwrap().clone();
    // The "serving" log line follows the banner.
    let stderr = poll(Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("serving").then_some(text)
    })
    .unwrap_or_else(|| std::fs::read_to_string(&log).unwrap_or_default());
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let banner = banner.unwrap_or_else(|| panic!("no banner: {out:?}\n{stderr}"));
    let line = |prefix: &str| -> String {
        out.iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in {out:#?}"))
            .to_string()
    };

    let dir = PathBuf::from(line("data directory: "));
    assert!(dir.is_absolute(), "{out:#?}");
    assert_eq!(
        dir.canonicalize().unwrap(),
        tmp.path().join("my-ledger").canonicalize().unwrap()
    );
    let page = line("page: ");
    let api = line("API document: ");
    assert_eq!(page, format!("{}/", banner.url));
    assert_eq!(api, format!("{}/v1/openapi.json", banner.url));
    assert!(
        out.iter().any(|l| l.contains(
            "no reader token: consent proofs are disabled; pass --reader-token or --tokens-file"
        )),
        "{out:#?}"
    );
    assert!(
        out.iter()
            .any(|l| l.contains("no auditor token") && l.contains("--auditor-token")),
        "{out:#?}"
    );
    assert!(
        out.iter()
            .any(|l| l.starts_with("writers: ") && l.contains("POST /v1/events")),
        "{out:#?}"
    );
    assert!(line("stop: ").contains("Ctrl-C or SIGTERM"), "{out:#?}");
    // Logging went to a file: plain text, no escape sequences.
    assert!(stderr.contains("serving"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a log file: {stderr:?}"
    );
}

/// The printed URLs answer (in-process, the same banner code), and configured tokens are
/// counted rather than shown.
#[test]
fn the_banner_counts_configured_tokens_and_its_urls_answer() {
    let srv = Server::in_process(&["--reader-token", TOKEN, "--auditor-token", AUDITOR]);
    let out = srv.stdout();
    let all = out.join("\n");
    assert!(all.contains("readers: 1 reader token(s)"), "{all}");
    assert!(all.contains("auditors: 1 auditor token(s)"), "{all}");
    assert!(
        !all.contains(TOKEN) && !all.contains(AUDITOR),
        "a token printed: {all}"
    );
    let agent = agent();
    for prefix in ["page: ", "API document: "] {
        let url = out
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?}: {all}"));
        let r = send(&agent, "GET", url, None, None);
        assert_eq!(r.status, 200, "{url}: {r:#?}");
    }
}

/// `GET /`: a small HTML page with the origin, the log key, the tree size, the newest
/// checkpoint, links to the API document and routes, and how to verify; no scripts, and no
/// one's personal data.
#[test]
fn the_page_shows_the_log_and_how_to_check_it_and_nothing_personal() {
    let srv = Server::in_process(&["--checkpoint-interval", "20"]);
    let o = srv.origin.clone();
    let mut alice = Person::on(CONTROLLER, PURPOSE);
    let receipt = srv.append(&alice.step(&o, true));
    let cp = srv.wait_covered(receipt.index + 1);
    let r = srv.get("/");
    r.expect(200);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/html"),
        "{r:#?}"
    );
    let page = &r.body;
    for want in [
        o.as_str(),
        srv.log_key_hex.as_str(),
        "tree size",
        "href=\"/v1/openapi.json\"",
        "href=\"/v1/checkpoint\"",
        "consentlog verify --log-key",
        "consentlog verify-receipt",
        "consent proofs</th><td>disabled",
        "--reader-token or --tokens-file",
    ] {
        assert!(page.contains(want), "the page lacks {want:?}:\n{page}");
    }
    // The newest checkpoint, as a signed note (whatever the heartbeat signed since).
    let newest = srv.checkpoint();
    assert!(newest.size >= cp.size);
    let shown = page.contains(&note_root_hex(&newest.note))
        || page.contains(&consentlog::core::hash::to_hex(&cp.root));
    assert!(shown, "no checkpoint root on the page:\n{page}");
    assert!(!page.to_lowercase().contains("<script"), "{page}");
    // Nothing of Alice: neither her key nor her names' event.
    assert!(!page.contains(&alice.hex()), "{page}");
    // Served to anyone; documented in the API document.
    let doc = srv.get("/v1/openapi.json").json();
    assert!(
        doc["paths"]["/"]["get"].is_object(),
        "GET / is not documented"
    );
}

// -----------------------------------------------------------------------------------------
// 401 and 403 name what is missing
// -----------------------------------------------------------------------------------------

#[track_caller]
fn refusal(r: &Resp, status: u16, code: &str, needles: &[&str]) {
    r.expect_error_code(status, code);
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for n in needles {
        assert!(message.contains(n), "{n:?} not in {message:?}");
    }
}

#[test]
fn refusals_name_the_header_and_the_option_that_is_missing() {
    let srv = Server::in_process(&["--reader-token", TOKEN, "--auditor-token", AUDITOR]);
    let p = Person::on(CONTROLLER, PURPOSE);
    let consent = p.consent_path(None);
    let reader = [
        "this route needs a reader token",
        "Authorization: Bearer",
        "--reader-token or --tokens-file",
    ];
    refusal(&srv.get(&consent), 401, "unauthorized", &reader);
    refusal(
        &srv.get_auth(&consent, &bearer("not-a-token-of-this-server")),
        403,
        "forbidden",
        &reader,
    );
    refusal(
        &srv.get_auth(&consent, "Basic dXNlcjpwYXNz"),
        403,
        "forbidden",
        &reader,
    );
    refusal(
        &srv.post("/v1/proofs/consent", r#"{"queries":[]}"#),
        401,
        "unauthorized",
        &reader,
    );
    // A reader token is not an auditor token.
    let auditor = [
        "this route needs an auditor token",
        "Authorization: Bearer",
        "--auditor-token",
    ];
    refusal(&srv.get("/v1/export"), 401, "unauthorized", &auditor);
    refusal(
        &srv.get_auth("/v1/export", &bearer(TOKEN)),
        403,
        "forbidden",
        &auditor,
    );
    // A person's history needs the person's signature.
    let history = format!("/v1/subjects/{}/history", p.hex());
    let signed = ["signed by the person", "Consentlog-Ed25519"];
    refusal(&srv.get(&history), 401, "unauthorized", &signed);
    refusal(
        &srv.get_auth(&history, &bearer(TOKEN)),
        403,
        "forbidden",
        &signed,
    );
    // With the right token the same request is answered.
    srv.get_auth(&consent, &bearer(TOKEN)).expect(200);
}

// -----------------------------------------------------------------------------------------
// A ledger in use; a busy port
// -----------------------------------------------------------------------------------------

/// `init --backend ENGINE` in a fresh temporary directory; (tmp, ledger dir, log key).
fn init_on(engine: &str) -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let r = run(&[
        "init",
        "--dir",
        s(&dir),
        "--origin",
        ORIGIN,
        "--backend",
        engine,
    ])
    .ok();
    let key = r.last_line().trim().to_string();
    (tmp, dir, key)
}

#[track_caller]
fn assert_in_use(r: &Run, dir: &Path) {
    assert_eq!(r.code, 1, "{r:#?}");
    for needle in [
        "in use by another process",
        "--server URL",
        "stop the server",
    ] {
        assert!(r.stderr.contains(needle), "{needle:?} not said: {r:#?}");
    }
    assert!(
        r.stderr.contains(s(dir)),
        "the directory is not named: {r:#?}"
    );
    assert!(!r.stderr.contains("could not acquire lock"), "{r:#?}");
}

/// With `serve` running on a ledger, a second process's reading and writing commands on the
/// directory are told it is in use, and what to do instead; once the server stops they work.
#[test]
fn a_ledger_in_use_by_a_server_is_reported_as_such_on_both_engines() {
    for engine in ["sled", "redb"] {
        let (_tmp, dir, _key) = init_on(engine);
        let (_ptmp, pk) = {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().join("me.key");
            let r = run(&["keygen", "--out", s(&p)]).ok();
            let pk = r.last_line().trim().to_string();
            (t, pk)
        };
        let mut srv = Server::start_in(&dir, &[]);
        let r = run(&["history", "--dir", s(&dir), "--subject", &pk]);
        assert_in_use(&r, &dir);
        let r = run_stdin(&["append", "--dir", s(&dir)], "");
        assert_in_use(&r, &dir);
        let r = run(&["fsck", "--dir", s(&dir)]);
        assert_in_use(&r, &dir);
        srv.stop();
        wait_unlocked(&dir);
        run(&["history", "--dir", s(&dir), "--subject", &pk]).ok();
    }
}

/// `serve` on a port another socket holds fails, naming the address, and leaves no ledger
/// directory or key behind.
#[test]
fn serve_on_a_busy_port_creates_nothing() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new-ledger");
    let r = run(&["serve", "--dir", s(&dir), "--listen", &addr]);
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(
        r.stderr.contains(&format!("cannot listen on {addr}")),
        "{r:#?}"
    );
    assert!(
        !dir.exists(),
        "serve created {} before binding",
        dir.display()
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    drop(busy);
}

// -----------------------------------------------------------------------------------------
// Reading commands never write
// -----------------------------------------------------------------------------------------

/// Every file under `dir`: relative path → (size, BLAKE3 of its content).
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, String)> {
    fn walk(root: &Path, at: &Path, out: &mut BTreeMap<String, (u64, String)>) {
        for e in std::fs::read_dir(at).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(
                    rel,
                    (
                        bytes.len() as u64,
                        blake3::hash(&bytes).to_hex().to_string(),
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// On each engine: a ledger with events and a checkpoint, then every command that only reads
/// it (`history --dir`, `prove`, `prove --batch`, `prove-inclusion`, `prove-consistency`,
/// `leaves`, `export`, `audit --dir`, `fsck`, `check-consistency --dir`, `sign --dir`), each
/// checked to leave the directory's files as they were: names, sizes, contents.
#[test]
fn reading_commands_leave_the_ledger_directory_as_it_was_on_both_engines() {
    for engine in ["sled", "redb"] {
        let (tmp, dir, key) = init_on(engine);
        let t = |name: &str| tmp.path().join(name);
        let me = t("me.key");
        let pk = run(&["keygen", "--out", s(&me)])
            .ok()
            .last_line()
            .trim()
            .to_string();
        for (cmd, purpose) in [("grant", PURPOSE), ("revoke", "ads")] {
            run(&[
                cmd,
                "--dir",
                s(&dir),
                "--key",
                s(&me),
                "--controller",
                CONTROLLER,
                "--purpose",
                purpose,
            ])
            .ok();
        }
        let note = run(&["checkpoint", "--dir", s(&dir)]).ok().stdout;
        std::fs::write(t("note"), &note).unwrap();
        std::fs::write(
            t("queries.ndjson"),
            format!(
                "{{\"subject\":\"{pk}\",\"controller\":\"{CONTROLLER}\",\"purpose\":\"{PURPOSE}\"}}\n"
            ),
        )
        .unwrap();
        wait_unlocked(&dir);
        let d = s(&dir).to_string();
        if engine == "sled" {
            // sled has no read-only mode. Its first opener after a writer may write its
            // snapshot file (db/snap.*: sled's own index of its log, rebuilt from db/db); the
            // ledger's data (db/db), its keys and its marker are left as they were. After that
            // catch-up, reading changes nothing at all (below).
            let first = snapshot(&dir);
            run(&["leaves", "--dir", &d]).ok();
            wait_unlocked(&dir);
            let caught_up = snapshot(&dir);
            let not_snap = |m: &BTreeMap<String, (u64, String)>| {
                m.iter()
                    .filter(|(k, _)| !k.starts_with("db/snap."))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<BTreeMap<_, _>>()
            };
            assert_eq!(
                not_snap(&first),
                not_snap(&caught_up),
                "sled: more than its snapshot"
            );
        }
        let before = snapshot(&dir);
        let commands: Vec<Vec<String>> = [
            vec!["history", "--dir", &d, "--subject", &pk],
            vec![
                "prove",
                "--dir",
                &d,
                "--subject",
                &pk,
                "--controller",
                CONTROLLER,
                "--purpose",
                PURPOSE,
            ],
            vec!["prove", "--dir", &d, "--batch", s(&t("queries.ndjson"))],
            vec!["prove-inclusion", "--dir", &d, "--index", "2"],
            vec!["prove-consistency", "--dir", &d, "--old", "2"],
            vec!["leaves", "--dir", &d],
            vec!["export", "--dir", &d, "--out", s(&t("export"))],
            vec!["audit", "--dir", &d],
            vec!["fsck", "--dir", &d],
            vec![
                "check-consistency",
                "--log-key",
                &key,
                s(&t("note")),
                s(&t("note")),
                "--dir",
                &d,
            ],
            vec![
                "sign",
                "--dir",
                &d,
                "--key",
                s(&me),
                "--controller",
                CONTROLLER,
                "--purpose",
                "news",
                "--opt-in",
                "--seq",
                "0",
            ],
        ]
        .iter()
        .map(|c| c.iter().map(|a| a.to_string()).collect())
        .collect();
        for c in &commands {
            let r = run(c);
            assert_eq!(r.code, 0, "{engine}: {c:?}: {r:#?}");
            wait_unlocked(&dir);
            let after = snapshot(&dir);
            assert_eq!(
                before,
                after,
                "{engine}: `{}` changed the ledger directory",
                c.join(" ")
            );
        }
    }
}

// -----------------------------------------------------------------------------------------
// Verdicts name their question; times for people
// -----------------------------------------------------------------------------------------

/// A ledger made through the CLI with Alice's grant and a checkpoint; (ledger, Alice's key
/// file, her public key, the grant's receipt JSON, the checkpoint note).
fn alice_ledger() -> (TestLedger, PathBuf, String, Value, String) {
    let l = TestLedger::cli();
    let (key, pk) = l.person("alice");
    let receipt = l.decide(&key, true, CONTROLLER, PURPOSE);
    let note = l.note();
    (l, key, pk, receipt, note)
}

/// An RFC 3339 time to the millisecond beside its milliseconds: `…T…Z (digits)`.
fn has_time_pair(text: &str) -> bool {
    text.split("Z (").skip(1).any(|rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.len() >= 12 && rest[digits.len()..].starts_with(')')
    })
}

#[test]
fn verify_receipt_and_verify_history_name_who_what_when_log_and_checkpoint() {
    let (l, _key, pk, receipt, note) = alice_ledger();
    let root = note_root_hex(&note);
    let size = note_size(&note);
    // The receipt was made under an earlier checkpoint: its own size and root are named.
    let rf = l.path("receipt.json");
    std::fs::write(&rf, receipt.to_string()).unwrap();
    let r = run(&["verify-receipt", "--log-key", &l.log_key, s(&rf)]).ok();
    for part in [
        pk.as_str(),
        CONTROLLER,
        PURPOSE,
        ORIGIN,
        "leaves with root ",
    ] {
        assert!(r.stdout.contains(part), "{part:?} missing: {r:#?}");
    }
    assert!(has_time_pair(&r.stdout), "no RFC 3339 (ms) time: {r:#?}");

    let hist = run(&["history", "--dir", l.d(), "--subject", &pk])
        .ok()
        .stdout;
    let hf = l.path("history.json");
    std::fs::write(&hf, hist).unwrap();
    let r = run(&[
        "verify-history",
        "--log-key",
        &l.log_key,
        "--subject",
        &pk,
        "--state",
        s(&l.path("state.json")),
        s(&hf),
    ])
    .ok();
    for part in [
        pk.as_str(),
        CONTROLLER,
        PURPOSE,
        ORIGIN,
        &format!("checkpoint of {size} leaves with root {root}"),
    ] {
        assert!(r.stdout.contains(part), "{part:?} missing: {r:#?}");
    }
    assert!(has_time_pair(&r.stdout), "no RFC 3339 (ms) time: {r:#?}");
}

#[test]
fn verify_batch_names_who_what_when_log_and_checkpoint_on_every_line() {
    let (l, _key, pk, _receipt, note) = alice_ledger();
    let root = note_root_hex(&note);
    let queries = l.path("queries.ndjson");
    std::fs::write(
        &queries,
        format!(
            "{{\"id\":\"a\",\"subject\":\"{pk}\",\"controller\":\"{CONTROLLER}\",\"purpose\":\"{PURPOSE}\"}}\n"
        ),
    )
    .unwrap();
    let proofs = l.path("proofs.ndjson");
    run(&[
        "prove",
        "--dir",
        l.d(),
        "--batch",
        s(&queries),
        "--out",
        s(&proofs),
    ])
    .ok();
    let r = run(&["verify", "--batch", s(&proofs), "--log-key", &l.log_key]).ok();
    let lines = r.ndjson();
    assert_eq!(lines.len(), 1, "{r:#?}");
    let v = &lines[0];
    assert_eq!(v["subject"], pk.as_str());
    assert_eq!(v["controller"], CONTROLLER);
    assert_eq!(v["purpose"], PURPOSE);
    let at = v["at"].as_u64().expect("at in ms");
    assert_eq!(
        v["at_rfc3339"],
        consentlog::ledger::clock::rfc3339(at).as_str()
    );
    assert_eq!(v["log"], ORIGIN);
    assert_eq!(v["checkpoint_size"], note_size(&note));
    assert_eq!(v["checkpoint_root"], root.as_str());
    assert!(
        r.stderr.contains(&format!(
            "log {ORIGIN}, checkpoint of {} leaves with root {root}",
            note_size(&note)
        )),
        "{r:#?}"
    );
    assert!(has_time_pair(&r.stderr), "{r:#?}");
}

#[test]
fn times_are_shown_in_rfc3339_beside_ms_and_unknown_subjects_say_no_record() {
    let (l, _key, pk, _receipt, _note) = alice_ledger();
    // Before the log's genesis: refused, both times readable.
    let r = run(&[
        "prove",
        "--dir",
        l.d(),
        "--subject",
        &pk,
        "--controller",
        CONTROLLER,
        "--purpose",
        PURPOSE,
        "--at",
        "2000-01-01",
    ]);
    r.assert_fails_with("2000-01-01T00:00:00.000Z (946684800000) is before the log's genesis");
    assert!(
        has_time_pair(r.stderr.split("genesis").nth(1).unwrap_or("")),
        "the genesis time is not shown in RFC 3339: {r:#?}"
    );
    // In the future: refused, both times readable.
    let r = run(&[
        "prove",
        "--dir",
        l.d(),
        "--subject",
        &pk,
        "--controller",
        CONTROLLER,
        "--purpose",
        PURPOSE,
        "--at",
        "2999-01-01",
    ]);
    r.assert_fails_with("2999-01-01T00:00:00.000Z (");
    assert!(r.stderr.contains("is in the future (now "), "{r:#?}");
    // A subject the log has never seen: "no record for" it, named.
    let stranger = Person::on(CONTROLLER, PURPOSE).hex();
    let r = run(&["history", "--dir", l.d(), "--subject", &stranger]).ok();
    assert!(
        r.stderr
            .contains(&format!("no record for subject {stranger}")),
        "{r:#?}"
    );
    // A known subject's history does not say so.
    let r = run(&["history", "--dir", l.d(), "--subject", &pk]).ok();
    assert!(!r.stderr.contains("no record for"), "{r:#?}");
}
