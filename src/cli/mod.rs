//! The `consentlog` command line: argument definitions and dispatch. Each command's work is
//! in its own file; they all sit on the ledger and the core.

mod audit;
mod batch;
mod consistency;
mod demo;
mod ledger_cmds;
mod loadgen;
mod person;
mod remote;
mod remote_audit;
mod serve;
mod time;
mod verify;

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use ed25519_dalek::VerifyingKey;

use crate::core::hash::from_hex_array;
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
        #[arg(long)]
        dir: PathBuf,
        /// The ledger's name, in every event and checkpoint
        #[arg(long, default_value = "consentlog.local/log")]
        origin: String,
        /// Storage engine, sled or redb, recorded in the directory
        #[arg(long, env = "CONSENTLOG_ENGINE", default_value_t = Engine::default())]
        backend: Engine,
    },
    /// Create a person's key file (mode 0600); prints the public key
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign one consent event and print it as a JSON line
    Sign(person::SignArgs),
    /// Sign and append an opt-in for the key's next seq; prints the receipt
    Grant(ledger_cmds::DecideArgs),
    /// Sign and append an opt-out for the key's next seq; prints the receipt
    Revoke(ledger_cmds::DecideArgs),
    /// Append NDJSON signed events (file or -); one receipt or error line per event
    Append {
        #[arg(long)]
        dir: PathBuf,
        /// NDJSON file of signed events, or - for standard input
        #[arg(default_value = "-")]
        file: String,
    },
    /// Sign a checkpoint of the current tree and map; prints the note
    Checkpoint {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Prove the consent state of (subject, controller, purpose) at a time
    Prove(verify::ProveArgs),
    /// Verify a consent proof offline: exit 0 held, 1 not held, 2 invalid
    Verify(verify::VerifyArgs),
    /// Inclusion proof of one entry
    ProveInclusion {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        index: u64,
        #[arg(long)]
        size: Option<u64>,
    },
    /// Consistency proof between two tree sizes
    ProveConsistency {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        old: u64,
        #[arg(long)]
        new: Option<u64>,
    },
    /// Public entries as NDJSON
    Leaves {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 0)]
        start: u64,
        #[arg(long)]
        end: Option<u64>,
    },
    /// All of a person's events with openings and proofs
    History {
        /// A local ledger directory
        #[arg(long, required_unless_present = "server", conflicts_with = "server")]
        dir: Option<PathBuf>,
        /// The person's public key (hex); with --server, taken from --key
        #[arg(long, required_unless_present = "server")]
        subject: Option<String>,
        /// A consentlog server's base URL (the request is signed with --key)
        #[arg(long, requires = "key")]
        server: Option<String>,
        /// The person's key file, to sign the request to --server
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Check a history: every chain complete, signed by the person, included
    VerifyHistory {
        #[arg(long)]
        log_key: String,
        /// History file, or - for standard input
        file: String,
        /// Whose history this must be: the person's public key (hex); a history about anyone
        /// else is refused
        #[arg(long)]
        subject: String,
        /// A `controller,purpose` pair the history must contain (repeatable): the log proves
        /// completeness per pair, so name every pair you have used
        #[arg(long, value_name = "CONTROLLER,PURPOSE")]
        expect: Vec<String>,
        #[arg(long)]
        json: bool,
        /// File remembering the last checkpoint seen per log key (default
        /// $CONSENTLOG_STATE or ~/.consentlog/checkpoints.json)
        #[arg(long)]
        state: Option<PathBuf>,
        /// The log's server, to prove that this checkpoint extends the last one seen
        #[arg(long)]
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
        #[arg(long)]
        log_key: String,
        /// First checkpoint note (file, or - for standard input)
        note_a: String,
        /// Second checkpoint note (file)
        note_b: String,
        /// Ask this server for the consistency proof
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
        file: String,
        /// For `inconsistent` evidence: ask the log whether it can give a valid proof
        #[arg(long)]
        server: Option<String>,
    },
    /// Check a ledger directory fully: replay, every checkpoint, and all stored derived data
    Fsck {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Give back the free space the storage engine holds in its file (redb; sled reclaims
    /// space itself). The ledger must not be open elsewhere.
    Compact {
        #[arg(long)]
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
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Leave the (personal) openings out
        #[arg(long)]
        no_openings: bool,
    },
    /// Generate signed events for fresh random people, as NDJSON
    Loadgen(loadgen::LoadgenArgs),
    /// A walkthrough: people grant and revoke, a training job proves, an auditor replays
    Demo,
    /// Serve the ledger over HTTP (creates it on first start)
    Serve(serve::ServeArgs),
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Init {
            dir,
            origin,
            backend,
        } => ledger_cmds::init(&dir, &origin, backend),
        Command::Keygen { out } => person::keygen(&out),
        Command::Sign(a) => person::sign(a),
        Command::Grant(a) => ledger_cmds::decide(a, true),
        Command::Revoke(a) => ledger_cmds::decide(a, false),
        Command::Append { dir, file } => ledger_cmds::append(&dir, &file),
        Command::Checkpoint { dir } => ledger_cmds::checkpoint(&dir),
        Command::Prove(a) => match &a.batch {
            Some(queries) => {
                let dir = a.dir.as_deref().expect("clap: --batch requires --dir");
                batch::prove(dir, queries, a.out.as_deref(), a.cache_bytes)
            }
            None => verify::prove(a),
        },
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
        Command::Leaves { dir, start, end } => ledger_cmds::leaves(&dir, start, end),
        Command::History {
            dir,
            subject,
            server,
            key,
        } => match (server, key) {
            (Some(url), Some(key)) => remote::history(&url, &key, subject.as_deref()),
            _ => person::history(
                &dir.expect("clap: --dir or --server"),
                &subject.expect("clap: --subject"),
            ),
        },
        Command::VerifyHistory {
            log_key,
            file,
            subject,
            expect,
            json,
            state,
            server,
            accept_older_view,
        } => {
            let note = person::verify_history(&log_key, &file, &subject, &expect, json)?;
            let key = parse_log_key(&log_key)?;
            let r = consistency::Remember {
                state: state.as_deref(),
                server: server.as_deref(),
                accept_older: accept_older_view,
            };
            consistency::remember(r, &key, &note, false)
        }
        Command::Audit(a) => audit::audit(a),
        Command::Fsck { dir } => audit::fsck(&dir),
        Command::Compact { dir } => ledger_cmds::compact(&dir),
        Command::Migrate { from, to, backend } => audit::migrate(&from, &to, backend),
        Command::CheckConsistency {
            log_key,
            note_a,
            note_b,
            server,
            dir,
            out,
        } => consistency::check_consistency(
            &log_key,
            &note_a,
            &note_b,
            server.as_deref(),
            dir.as_deref(),
            out.as_ref(),
        ),
        Command::VerifyEvidence { file, server } => {
            consistency::verify_evidence(&file, server.as_deref())
        }
        Command::Export {
            dir,
            out,
            no_openings,
        } => ledger_cmds::export(&dir, &out, !no_openings),
        Command::Loadgen(a) => loadgen::loadgen(a),
        Command::Demo => demo::demo(),
        Command::Serve(a) => serve::serve(a),
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
    let bytes: [u8; 32] =
        from_hex_array(text.trim()).map_err(|e| fail(format!("log key {arg}: {e}")))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| fail(format!("log key {arg}: not an Ed25519 key")))
}

/// A subject public key in hex.
pub fn parse_subject(s: &str) -> Result<[u8; 32], Failure> {
    from_hex_array(s).map_err(|e| fail(format!("subject: {e}")))
}

/// Prints a value as one JSON line.
pub fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string(v).expect("serializable"));
}
