//! `witness`: run a plain c2sp.org/tlog-witness (`crate::tlog_witness`) for the logs given
//! with `--log`, any RFC 6962 log with Ed25519 checkpoint signatures; with `--replay URL`, a
//! replaying witness of the one consentlog log `--log` served at URL
//! (`crate::tlog_witness::replay`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::{fail, usage, CmdResult, Failure};
use crate::core::vkey::{Vkey, TYPE_ED25519};
use crate::keyfile;
use crate::ledger::clock::SystemClock;
use crate::tlog_witness::{self, Limits, Witness};

/// Arguments of `witness`.
#[derive(Args, Debug)]
pub struct WitnessArgs {
    /// The witness's state directory (created on first start): the latest checkpoint it
    /// cosigned per log, in DIR/witness.redb
    #[arg(long, required_unless_present = "print_vkey")]
    pub dir: Option<PathBuf>,
    /// The witness's secret key file (`consentlog keygen --out witness.key`; mode 0600; make
    /// one for this witness alone)
    #[arg(long)]
    pub key: PathBuf,
    /// The witness's name, its key name in cosignatures, e.g. witness.example.com/w1 (no
    /// spaces, no '+')
    #[arg(long)]
    pub name: String,
    /// Address and port to listen on
    #[arg(long, default_value = "127.0.0.1:7380")]
    pub listen: SocketAddr,
    /// A log to witness (repeatable): its C2SP vkey (`origin+keyid+base64`, an Ed25519 note
    /// key, type 0x01), or a file holding one; the vkey's name is the log's origin
    #[arg(
        long = "log",
        value_name = "VKEY",
        required_unless_present = "print_vkey"
    )]
    pub logs: Vec<String>,
    /// Be a replaying witness of the consentlog log served at URL (one --log): follow its
    /// public leaves, replay them, and cosign only up to the size replayed. Its key, name and
    /// --dir must be its own (a plain witness's state is refused)
    #[arg(long, value_name = "URL")]
    pub replay: Option<String>,
    /// With --replay: how often to look for new leaves (ms)
    #[arg(long, default_value_t = 1_000, value_name = "MS")]
    pub replay_interval: u64,
    /// Print the witness's vkey (for policies) and exit
    #[arg(long)]
    pub print_vkey: bool,
    /// Largest add-checkpoint body (bytes); larger ones get 413
    #[arg(long, default_value_t = tlog_witness::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// Per-request timeout (ms)
    #[arg(long, default_value_t = 30_000)]
    pub request_timeout: u64,
    /// Longest wait (ms) for a request's headers; a slower client is disconnected
    #[arg(long, default_value_t = 10_000)]
    pub header_timeout: u64,
    /// Most connections open at once; further ones wait to be accepted
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
}

/// A log's vkey given as text, or as a file holding one line.
pub fn log_vkey(arg: &str) -> Result<Vkey, Failure> {
    match Vkey::parse(arg, TYPE_ED25519) {
        Ok(v) => Ok(v),
        Err(e) if !Path::new(arg).is_file() => Err(fail(format!("--log {arg}: {e}"))),
        Err(_) => {
            let text =
                std::fs::read_to_string(arg).map_err(|e| fail(format!("--log {arg}: {e}")))?;
            let line = text.strip_suffix('\n').unwrap_or(&text);
            Vkey::parse(line.trim_end_matches('\r'), TYPE_ED25519)
                .map_err(|e| fail(format!("--log {arg}: {e}")))
        }
    }
}

pub fn witness(a: WitnessArgs) -> CmdResult {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let key = keyfile::read_person(&a.key, "witness").map_err(fail)?;
    if a.print_vkey {
        let v = Vkey::new(
            &a.name,
            crate::core::vkey::TYPE_COSIGNATURE_V1,
            key.verifying_key(),
        )
        .map_err(|e| usage(format!("--name: {e}")))?;
        println!("{}", v.to_text());
        return Ok(());
    }
    let logs = a
        .logs
        .iter()
        .map(|l| log_vkey(l))
        .collect::<Result<Vec<_>, _>>()?;
    let dir = a.dir.ok_or_else(|| usage("give --dir"))?;
    let opened = match &a.replay {
        None => Witness::open(&dir, key, &a.name, logs, Arc::new(SystemClock)),
        Some(url) => {
            let [log] = <[Vkey; 1]>::try_from(logs).map_err(|_| {
                usage("--replay follows one log: give exactly one --log (run one replaying witness per log)")
            })?;
            Witness::open_replaying(&dir, key, &a.name, log, url, Arc::new(SystemClock))
        }
    };
    let witness = opened.map_err(|e| match e {
        tlog_witness::OpenError::Name(_) => usage(e),
        _ => fail(e),
    })?;
    if let Some(r) = witness.replay() {
        eprintln!(
            "replaying {} from {} ({} leaves replayed so far)",
            r.origin(),
            r.url(),
            r.replayed()
        );
        if let Some(why) = r.refused() {
            eprintln!("NOT COSIGNING this log: {why}");
        }
        r.spawn(Duration::from_millis(a.replay_interval.max(1)));
    }
    let limits = Limits {
        body_limit: a.body_limit,
        request_timeout: Duration::from_millis(a.request_timeout.max(1)),
        header_timeout: Duration::from_millis(a.header_timeout.max(1)),
        max_connections: a.max_connections.max(1),
    };
    tlog_witness::serve(Arc::new(witness), a.listen, &dir, &limits).map_err(fail)
}
