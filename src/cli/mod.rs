//! The `consentlog` command line: argument definitions and dispatch. Each command's work is
//! in its own file; they all sit on the ledger and the core.

mod audit;
mod batch;
mod consistency;
mod demo;
mod ledger_cmds;
mod loadgen;
mod person;
mod receipt;
mod remote;
mod remote_audit;
mod serve;
mod time;
mod tlog_verify;
mod verify;
mod witness;
mod witnessed;

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use ed25519_dalek::VerifyingKey;

use crate::core::hash::from_hex_array;
use crate::keyfile;
use crate::store::Engine;

pub use serve::{config as serve_config, ServeArgs};

/// Exit code and message of a failed command.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl std::fmt::Display) -> Self {
        Failure {
            code,
            message: message.to_string(),
        }
    }
}

/// Turns any displayable error into exit code 1.
pub fn fail<E: std::fmt::Display>(e: E) -> Failure {
    Failure::new(1, e)
}

pub type CmdResult = Result<(), Failure>;

#[derive(Parser, Debug)]
#[command(
    name = "consentlog",
    version,
    about = "Append-only consent ledger with verifiable proofs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Which consent question a command is about.
#[derive(Args, Debug, Clone)]
pub struct Triple {
    /// Who processes the data, e.g. example.com ([a-z0-9._:/-], 1-128 bytes)
    #[arg(long)]
    pub controller: String,
    /// What for, e.g. ai-training ([a-z0-9._:/-], 1-128 bytes)
    #[arg(long)]
    pub purpose: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a ledger: database, log key (log.key, mode 0600) and log.pub; prints the log key
    Init {
        /// The new ledger's directory
        #[arg(long, env = ENV_DIR)]
        dir: PathBuf,
        /// The ledger's name, in every event and checkpoint
        #[arg(long, default_value = "consentlog.local/log")]
        origin: String,
        /// Storage engine, sled or redb, recorded in the directory
        #[arg(long, env = "CONSENTLOG_ENGINE", default_value_t = Engine::default())]
        backend: Engine,
        /// A c2sp.org/tlog-policy file the log declares in its genesis leaf, so every verifier
        /// requires its witnesses: its `witness`, `group` and `quorum` lines, without a `log`
        /// line (init adds the one naming the key it generates, and writes the whole policy to
        /// DIR/witness-policy.txt); docs/WITNESSING.md
        #[arg(long, value_name = "FILE")]
        witness_policy: Option<PathBuf>,
    },
    /// Create a person's key: OUT (secret, mode 0600) and OUT with .pub; prints the public key
    Keygen {
        /// The secret key file to create, e.g. me.key (the public key goes to me.pub)
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key (64 hex digits, the subject of your events) of a secret key file
    Pubkey {
        /// A person's secret key file (`consentlog keygen --out FILE`)
        #[arg(long)]
        key: PathBuf,
    },
    /// Sign one consent event and print it as a JSON line (for `append` or POST /v1/events)
    Sign(person::SignArgs),
    /// Sign and append an opt-in for the key's next seq; prints the receipt
    Grant(ledger_cmds::DecideArgs),
    /// Sign and append an opt-out for the key's next seq; prints the receipt
    Revoke(ledger_cmds::DecideArgs),
    /// Append signed events (NDJSON lines from `consentlog sign` or `loadgen`); one receipt or
    /// error line per event
    Append {
        /// The ledger directory
        #[arg(long, env = ENV_DIR)]
        dir: PathBuf,
        /// NDJSON file of signed events, or - for standard input
        #[arg(default_value = "-")]
        file: String,
    },
    /// Sign a checkpoint of the current tree and map; prints the note
    Checkpoint {
        /// The ledger directory
        #[arg(long, env = ENV_DIR)]
        dir: PathBuf,
    },
    /// Prove the consent state of (subject, controller, purpose) at a time
    Prove(verify::ProveArgs),
    /// Verify a consent proof offline: exit 0 held, 1 not held, 2 invalid
    Verify(verify::VerifyArgs),
    /// Inclusion proof of one entry
    ProveInclusion {
        /// The ledger directory
        #[arg(long, env = ENV_DIR)]
        dir: PathBuf,
        /// The leaf's index
        #[arg(long)]
        index: u64,
        /// The tree size to prove against (default: the current size)
        #[arg(long)]
        size: Option<u64>,
    },
    /// Consistency proof between two tree sizes
    ProveConsistency {
        /// The ledger directory
        #[arg(long, env = ENV_DIR)]
        dir: PathBuf,
        /// The older tree size
        #[arg(long)]
        old: u64,
        /// The newer tree size (default: the current size)
        #[arg(long)]
        new: Option<u64>,
    },
    /// Check an inclusion proof (from prove-inclusion) against a signed checkpoint: exit 0
    /// valid, 2 invalid
    VerifyInclusion(tlog_verify::VerifyInclusionArgs),
    /// Check a consistency proof (from prove-consistency) against signed checkpoints: exit 0
    /// valid, 2 invalid
    VerifyConsistency(tlog_verify::VerifyConsistencyArgs),
    /// Public entries as NDJSON
    Leaves {
        /// The ledger directory
        #[arg(long, env = ENV_DIR)]
        dir: PathBuf,
        /// First leaf index
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Index after the last leaf (default: the tree size)
        #[arg(long)]
        end: Option<u64>,
    },
    /// All of a person's events with openings and proofs
    History {
        /// A local ledger directory [default: $CONSENTLOG_DIR, else $CONSENTLOG_SERVER]
        #[arg(long, conflicts_with = "server")]
        dir: Option<PathBuf>,
        /// The person's public key (hex, or a .pub file); with --server, taken from --key
        #[arg(long)]
        subject: Option<String>,
        /// A consentlog server's base URL (the request is signed with --key)
        #[arg(long)]
        server: Option<String>,
        /// The person's secret key file, to sign the request to --server
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Check a history: every chain complete, signed by the person, included
    VerifyHistory {
        /// The log's public key: 64 hex digits or a file holding them
        #[arg(long)]
        log_key: String,
        /// History file, or - for standard input
        file: String,
        /// Whose history this must be: the person's public key (hex, or a .pub file); a history
        /// about anyone else is refused
        #[arg(long)]
        subject: String,
        /// A `controller,purpose` pair the history must contain (repeatable): the log proves
        /// completeness per pair, so name every pair you have used
        #[arg(long, value_name = "CONTROLLER,PURPOSE")]
        expect: Vec<String>,
        /// Print the verdict as one JSON object
        #[arg(long)]
        json: bool,
        /// A c2sp.org/tlog-policy file the history's cosigned checkpoint must meet
        /// (docs/WITNESSING.md)
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// File remembering the last checkpoint seen per log key (default
        /// $CONSENTLOG_STATE or ~/.consentlog/checkpoints.json)
        #[arg(long)]
        state: Option<PathBuf>,
        /// The log's server, to prove that this checkpoint extends the last one seen
        #[arg(long, env = ENV_SERVER)]
        server: Option<String>,
        /// Accept a history under a checkpoint older (smaller) than the one remembered, with a
        /// warning; without it such a stale view is refused (exit 2)
        #[arg(long)]
        accept_older_view: bool,
    },
    /// Replay the whole ledger (or an export) and recompute every checkpoint
    Audit(audit::AuditArgs),
    /// Check that two checkpoints of one log are consistent, or write evidence that they are not
    CheckConsistency {
        /// The log's public key: 64 hex digits or a file holding them
        #[arg(long)]
        log_key: String,
        /// First checkpoint note (file, or - for standard input)
        note_a: String,
        /// Second checkpoint note (file)
        note_b: String,
        /// Ask this server for the consistency proof (with neither --server nor --dir:
        /// $CONSENTLOG_DIR, else $CONSENTLOG_SERVER)
        #[arg(long)]
        server: Option<String>,
        /// Or compute it from this ledger directory
        #[arg(long, conflicts_with = "server")]
        dir: Option<PathBuf>,
        /// Write the evidence here (default: standard output)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Re-check an evidence file from check-consistency: exit 0 if it shows the log lied
    VerifyEvidence {
        /// The evidence file, or - for standard input
        file: String,
        /// For `inconsistent` evidence: ask the log whether it can give a valid proof
        #[arg(long, env = ENV_SERVER)]
        server: Option<String>,
    },
    /// Check a ledger directory fully: replay, every checkpoint, and all stored derived data
    Fsck {
        /// The ledger directory
        #[arg(long, env = ENV_DIR)]
        dir: PathBuf,
    },
    /// Give back the free space the storage engine holds in its file (redb; sled reclaims
    /// space itself). The ledger must not be open elsewhere.
    Compact {
        /// The ledger directory
        #[arg(long, env = ENV_DIR)]
        dir: PathBuf,
    },
    /// Copy a ledger to a new directory on another storage engine, same log key; the copy is
    /// checked in full (as `fsck`) before it is marked as a ledger. The source must not be open
    /// elsewhere.
    Migrate {
        /// The ledger to copy
        #[arg(long)]
        from: PathBuf,
        /// A new (or empty) directory for the copy
        #[arg(long)]
        to: PathBuf,
        /// Storage engine of the copy, sled or redb
        #[arg(long)]
        backend: Engine,
    },
    /// Write every entry, opening and checkpoint to a file, for auditors
    Export {
        /// The ledger directory
        #[arg(long, env = ENV_DIR)]
        dir: PathBuf,
        /// The export file to write (mode 0600: openings are personal data)
        #[arg(long)]
        out: PathBuf,
        /// Leave the (personal) openings out
        #[arg(long)]
        no_openings: bool,
    },
    /// Check a receipt (a C2SP tlog-proof) offline: exit 0 valid, 2 invalid
    VerifyReceipt(receipt::VerifyReceiptArgs),
    /// Fetch the witnessed receipt of an entry: the receipt of the same entry under the newest
    /// checkpoint the witnesses cosigned (for verify-receipt --policy)
    WitnessedReceipt(receipt::WitnessedReceiptArgs),
    /// Generate signed events for fresh random people, as NDJSON
    Loadgen(loadgen::LoadgenArgs),
    /// A walkthrough: people grant and revoke, a training job proves, an auditor replays;
    /// prints the command behind each step
    Demo {
        /// Keep the ledger and key files in this new (or empty) directory, to continue from
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
    /// Serve the ledger over HTTP (creates it on first start)
    Serve(serve::ServeArgs),
    /// Run a C2SP tlog-witness: cosign checkpoints of the logs given with --log
    Witness(witness::WitnessArgs),
    /// Print consentlog's version
    Version,
    /// Print a shell completion script, e.g. `consentlog completions bash >
    /// ~/.local/share/bash-completion/completions/consentlog`
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Init {
            dir,
            origin,
            backend,
            witness_policy,
        } => ledger_cmds::init(&dir, &origin, backend, witness_policy.as_deref()),
        Command::Keygen { out } => person::keygen(&out),
        Command::Pubkey { key } => person::pubkey(&key),
        Command::Sign(a) => person::sign(a),
        Command::Grant(mut a) => {
            place(&mut a.dir, &mut a.server)?;
            ledger_cmds::decide(a, true)
        }
        Command::Revoke(mut a) => {
            place(&mut a.dir, &mut a.server)?;
            ledger_cmds::decide(a, false)
        }
        Command::Append { dir, file } => ledger_cmds::append(&dir, &file),
        Command::Checkpoint { dir } => ledger_cmds::checkpoint(&dir),
        Command::Prove(mut a) => {
            place(&mut a.dir, &mut a.server)?;
            a.token = token(a.token.take(), a.token_file.as_deref(), a.server.is_some())?;
            match &a.batch {
                Some(queries) => {
                    let dir = a
                        .dir
                        .as_deref()
                        .ok_or_else(|| usage("--batch reads a local ledger: give --dir"))?;
                    batch::prove(dir, queries, a.out.as_deref(), a.cache_bytes)
                }
                None => verify::prove(a),
            }
        }
        Command::Verify(a) => match &a.batch {
            Some(proofs) => batch::verify(&verify::log_key(&a)?, proofs, &a),
            None => verify::verify(a),
        },
        Command::ProveInclusion { dir, index, size } => {
            ledger_cmds::prove_inclusion(&dir, index, size)
        }
        Command::ProveConsistency { dir, old, new } => {
            ledger_cmds::prove_consistency(&dir, old, new)
        }
        Command::VerifyInclusion(a) => tlog_verify::verify_inclusion(a),
        Command::VerifyConsistency(a) => tlog_verify::verify_consistency(a),
        Command::Leaves { dir, start, end } => ledger_cmds::leaves(&dir, start, end),
        Command::History {
            mut dir,
            subject,
            mut server,
            key,
        } => {
            place(&mut dir, &mut server)?;
            match (server, dir) {
                (Some(url), _) => {
                    let key = key.ok_or_else(|| {
                        usage("history --server needs --key, your secret key file, to sign the request")
                    })?;
                    remote::history(&url, &key, subject.as_deref())
                }
                (None, Some(dir)) => person::history(
                    &dir,
                    &subject.ok_or_else(|| usage("history --dir needs --subject"))?,
                ),
                (None, None) => unreachable!("place gives --dir or --server"),
            }
        }
        Command::VerifyHistory {
            log_key,
            file,
            subject,
            expect,
            json,
            policy,
            state,
            server,
            accept_older_view,
        } => {
            let note = person::verify_history(
                &log_key,
                &file,
                &subject,
                &expect,
                json,
                policy.as_deref(),
            )?;
            let key = parse_log_key(&log_key)?;
            let r = consistency::Remember {
                state: state.as_deref(),
                server: server.as_deref(),
                accept_older: accept_older_view,
            };
            consistency::remember(r, &key, &note, false)
        }
        Command::Audit(mut a) => {
            if a.dir.is_none() && a.file.is_none() && a.url.is_none() {
                place(&mut a.dir, &mut a.url)
                    .map_err(|_| usage("give --dir DIR, --file EXPORT or --url URL"))?;
            }
            a.token = token(a.token.take(), a.token_file.as_deref(), a.url.is_some())?;
            if a.url.is_none() && a.file.is_none() && a.state.is_some() {
                return Err(usage("--state is for --url and --file"));
            }
            audit::audit(a)
        }
        Command::Fsck { dir } => audit::fsck(&dir),
        Command::Compact { dir } => ledger_cmds::compact(&dir),
        Command::Migrate { from, to, backend } => audit::migrate(&from, &to, backend),
        Command::CheckConsistency {
            log_key,
            note_a,
            note_b,
            mut server,
            mut dir,
            out,
        } => {
            from_env(&mut dir, &mut server);
            consistency::check_consistency(
                &log_key,
                &note_a,
                &note_b,
                server.as_deref(),
                dir.as_deref(),
                out.as_ref(),
            )
        }
        Command::VerifyEvidence { file, server } => {
            consistency::verify_evidence(&file, server.as_deref())
        }
        Command::Export {
            dir,
            out,
            no_openings,
        } => ledger_cmds::export(&dir, &out, !no_openings),
        Command::VerifyReceipt(a) => receipt::verify_receipt(a),
        Command::WitnessedReceipt(a) => receipt::witnessed_receipt(a),
        Command::Loadgen(a) => loadgen::loadgen(a),
        Command::Demo { keep } => demo::demo(keep.as_deref()),
        Command::Serve(a) => serve::serve(a),
        Command::Witness(a) => witness::witness(a),
        Command::Version => {
            println!("consentlog {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "consentlog",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// Where `--dir` options fall back to.
pub const ENV_DIR: &str = "CONSENTLOG_DIR";
/// Where `--server` (and `audit --url`) options fall back to.
pub const ENV_SERVER: &str = "CONSENTLOG_SERVER";
/// Where `--token` options fall back to (after `--token-file`).
pub const ENV_TOKEN: &str = "CONSENTLOG_TOKEN";

/// Exit code of a usage error (sysexits.h EX_USAGE), told apart from an invalid proof (2).
pub const EX_USAGE: i32 = 64;

/// A usage error: exit code [`EX_USAGE`].
pub fn usage(message: impl std::fmt::Display) -> Failure {
    Failure::new(EX_USAGE, message)
}

/// An environment variable, if set and not empty.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// With neither `--dir` nor `--server` given, takes `$CONSENTLOG_DIR`, else
/// `$CONSENTLOG_SERVER`. (Not clap's `env`: a value from the environment would then conflict
/// with the other option given on the command line.)
fn from_env(dir: &mut Option<PathBuf>, server: &mut Option<String>) {
    if dir.is_none() && server.is_none() {
        match env_var(ENV_DIR) {
            Some(d) => *dir = Some(d.into()),
            None => *server = env_var(ENV_SERVER),
        }
    }
}

/// As [`from_env`], for a command that needs one of the two.
fn place(dir: &mut Option<PathBuf>, server: &mut Option<String>) -> CmdResult {
    from_env(dir, server);
    if dir.is_none() && server.is_none() {
        return Err(usage(format!(
            "give --dir DIR (a local ledger) or --server URL, or set {ENV_DIR} or {ENV_SERVER}"
        )));
    }
    Ok(())
}

/// The bearer token for a server: `--token`, else the first line of `--token-file` (which must
/// not be readable by group or others), else `$CONSENTLOG_TOKEN`. Without a server (`remote`
/// false) an explicit token is a usage error and the environment is not read.
fn token(
    token: Option<String>,
    file: Option<&Path>,
    remote: bool,
) -> Result<Option<String>, Failure> {
    if !remote {
        if token.is_some() || file.is_some() {
            return Err(usage(
                "--token and --token-file are for a server (--server, or --url for audit)",
            ));
        }
        return Ok(None);
    }
    if token.is_some() {
        return Ok(token);
    }
    let Some(f) = file else {
        return Ok(env_var(ENV_TOKEN));
    };
    let io = |e: std::io::Error| fail(format!("--token-file {}: {e}", f.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(fail(format!(
                "--token-file {}: readable by group or others (mode {:o}); chmod 600 it",
                f.display(),
                mode & 0o777
            )));
        }
    }
    let text = std::fs::read_to_string(f).map_err(io)?;
    match text.lines().next().map(str::trim) {
        Some(t) if !t.is_empty() => Ok(Some(t.to_string())),
        _ => Err(fail(format!("--token-file {}: empty", f.display()))),
    }
}

/// Reads a file, or standard input for `-`.
pub fn read_input(file: &str) -> Result<String, Failure> {
    let mut s = String::new();
    if file == "-" {
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| fail(format!("reading standard input: {e}")))?;
    } else {
        s = std::fs::read_to_string(file).map_err(|e| fail(format!("{file}: {e}")))?;
    }
    Ok(s)
}

/// A log public key given as 64 hex digits or as a file holding them.
pub fn parse_log_key(arg: &str) -> Result<VerifyingKey, Failure> {
    let text = if arg.len() == 64 && !Path::new(arg).exists() {
        arg.to_string()
    } else {
        std::fs::read_to_string(arg)
            .map_err(|e| fail(format!("log key {arg}: not 64 hex digits, and {e}")))?
    };
    for (line, kind) in [
        (keyfile::PUBLIC_KEY_LINE, "public"),
        (keyfile::SECRET_KEY_LINE, "secret"),
    ] {
        if text.starts_with(line) {
            return Err(fail(format!(
                "log key {arg}: a person's {kind} key file, not a log's public key (a ledger \
                 keeps its own in DIR/log.pub)"
            )));
        }
    }
    let bytes: [u8; 32] =
        from_hex_array(text.trim()).map_err(|e| fail(format!("log key {arg}: {e}")))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| fail(format!("log key {arg}: not an Ed25519 key")))
}

/// A subject public key: 64 hex digits, or a person's public key file (`keygen` writes one
/// beside the secret key); a secret key file is refused by name.
pub fn parse_subject(s: &str) -> Result<[u8; 32], Failure> {
    match from_hex_array(s) {
        Ok(b) => Ok(b),
        Err(_) if Path::new(s).is_file() => keyfile::read_public(Path::new(s), "--subject")
            .map(|k| k.to_bytes())
            .map_err(fail),
        Err(e) => Err(fail(format!("subject: {e}"))),
    }
}

/// Prints a value as one JSON line.
pub fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string(v).expect("serializable"));
}
