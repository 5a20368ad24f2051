//! `serve`: run the HTTP server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{fail, CmdResult};
use crate::core::request::parse_audience;
use crate::server::check_token;
use crate::server::{self, Auth, BatchConfig, ServeConfig};

/// Arguments of `serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Ledger directory; created and initialised on first start
    #[arg(long, env = "CONSENTLOG_DIR", default_value = "consentlog-data")]
    pub dir: PathBuf,
    /// Address and port to listen on
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The URL people reach this server at, e.g. https://consent.example.com: the audience
    /// their signed requests must name (docs/FORMAT.md §13); default http://<listen address>
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Origin of a newly created ledger
    #[arg(long, default_value = "consentlog.local/log")]
    pub origin: String,
    /// Storage engine of a newly created ledger, sled or redb; an existing ledger is reopened
    /// with the engine that wrote it
    #[arg(long, env = "CONSENTLOG_ENGINE", default_value_t = crate::store::Engine::default())]
    pub backend: crate::store::Engine,
    /// Bearer token allowed to ask for consent proofs and heads (repeatable; a command line
    /// is visible to others in `ps`: prefer --tokens-file, or a comma-separated list in the
    /// environment)
    #[arg(
        long,
        env = "CONSENTLOG_READER_TOKENS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub reader_token: Vec<String>,
    /// File of reader tokens: lines `TOKEN [controller,controller…]`
    #[arg(long)]
    pub tokens_file: Option<PathBuf>,
    /// Bearer token allowed to export openings (repeatable; prefer a comma-separated list in
    /// the environment, out of `ps`)
    #[arg(
        long,
        env = "CONSENTLOG_AUDITOR_TOKENS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub auditor_token: Vec<String>,
    /// Most events per sequencer batch
    #[arg(long, default_value_t = 8192)]
    pub batch_max: usize,
    /// Longest wait, in ms, for more events to join a batch (0: none; under load, events
    /// that arrive during a commit form the next batch anyway)
    #[arg(long, default_value_t = 0)]
    pub batch_wait_ms: u64,
    /// Most submissions waiting for the sequencer; beyond it requests get 503
    #[arg(long, default_value_t = 4096)]
    pub queue: usize,
    /// Sign a checkpoint at most this often (ms) while the tree grows
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_interval: u64,
    /// Sign a checkpoint at least this often (ms) even when nothing changed
    #[arg(long, default_value_t = 60_000)]
    pub checkpoint_max_gap: u64,
    /// Per-request timeout (ms)
    #[arg(long, default_value_t = 30_000)]
    pub request_timeout: u64,
    /// Longest wait (ms) for a request's headers, on a new connection or between the requests
    /// of a kept-alive one; a client that is slower is disconnected
    #[arg(long, default_value_t = 10_000)]
    pub header_timeout: u64,
    /// Most connections open at once; further ones wait to be accepted
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
    /// Largest request body (bytes)
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub body_limit: usize,
    /// Storage cache (bytes)
    #[arg(long, default_value_t = crate::ledger::DEFAULT_CACHE_BYTES)]
    pub cache_bytes: u64,
    /// Most memory (bytes) for the state map's upper levels; past it larger subtrees are read
    /// from the store instead (proofs and roots do not change; 0: no cap)
    #[arg(long, default_value_t = crate::ledger::DEFAULT_MAP_BYTES)]
    pub map_bytes: usize,
    /// Most signed requests remembered at once (their nonces, each for 5 minutes); when full,
    /// further signed requests get 503 until the oldest expire
    #[arg(long, default_value_t = server::DEFAULT_REPLAY_CACHE)]
    pub replay_cache: usize,
    /// A c2sp.org/tlog-policy file naming this log and the witnesses to ask for cosignatures
    /// (their `witness` lines carry the submission URLs); see docs/WITNESSING.md
    #[arg(long, value_name = "FILE")]
    pub witness_policy: Option<PathBuf>,
    /// For a ledger this command creates: a c2sp.org/tlog-policy file (without a `log` line;
    /// the one naming the new key is added) that the log declares in its genesis leaf, so every
    /// verifier requires it (as `init --witness-policy`). An existing ledger must declare the
    /// same policy. Without --witness-policy, its witnesses with URLs are the ones asked
    #[arg(long, value_name = "FILE")]
    pub declare_witness_policy: Option<PathBuf>,
    /// Least time (ms) between two checkpoints sent to one witness: the rate declared to the
    /// witnesses' operators
    #[arg(long, default_value_t = server::DEFAULT_WITNESS_INTERVAL.as_millis() as u64)]
    pub witness_interval: u64,
}

pub fn serve(a: ServeArgs) -> CmdResult {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in a log file or a journal.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    let (cfg, auth) = config(a).map_err(fail)?;
    server::serve(cfg, auth).map_err(fail)
}

/// The server's settings and credentials from `serve`'s arguments (reads a tokens file).
pub fn config(a: ServeArgs) -> Result<(ServeConfig, Auth), String> {
    let mut auth = Auth::default();
    for t in &a.reader_token {
        check_token(t).map_err(|e| format!("--reader-token: {e}"))?;
        auth.add_reader(t, None);
    }
    for t in &a.auditor_token {
        check_token(t).map_err(|e| format!("--auditor-token: {e}"))?;
        auth.add_auditor(t);
    }
    if let Some(f) = &a.tokens_file {
        auth.load_tokens_file(f)?;
    }
    let public_url = a
        .public_url
        .as_deref()
        .map(parse_audience)
        .transpose()
        .map_err(|e| format!("--public-url: {e}"))?;
    let cfg = ServeConfig {
        dir: a.dir,
        listen: a.listen,
        origin: a.origin,
        engine: a.backend.to_string(),
        batch: BatchConfig {
            max_events: a.batch_max.max(1),
            max_wait_ms: a.batch_wait_ms,
            queue: a.queue.max(1),
        },
        checkpoint_interval: Duration::from_millis(a.checkpoint_interval.max(1)),
        max_checkpoint_gap: Duration::from_millis(a.checkpoint_max_gap.max(1)),
        request_timeout: Duration::from_millis(a.request_timeout.max(1)),
        body_limit: a.body_limit,
        header_timeout: Duration::from_millis(a.header_timeout.max(1)),
        max_connections: a.max_connections.max(1),
        cache_bytes: a.cache_bytes,
        map_bytes: a.map_bytes,
        public_url,
        replay_cache: a.replay_cache.max(1),
        witnesses: a
            .witness_policy
            .as_deref()
            .map(|f| witness_config(f, a.witness_interval))
            .transpose()?,
        witness_interval: Duration::from_millis(a.witness_interval.max(1)),
        declare_policy: a
            .declare_witness_policy
            .as_deref()
            .map(|f| {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| format!("--declare-witness-policy {}: {e}", f.display()))?;
                crate::ledger::check_witness_policy(&text)
                    .map_err(|e| format!("--declare-witness-policy {}: {e}", f.display()))?;
                Ok::<_, String>(text)
            })
            .transpose()?,
    };
    Ok((cfg, auth))
}

/// The witnesses to ask, from a policy file.
fn witness_config(
    file: &std::path::Path,
    interval_ms: u64,
) -> Result<server::WitnessConfig, String> {
    let bytes =
        std::fs::read(file).map_err(|e| format!("--witness-policy {}: {e}", file.display()))?;
    let policy = crate::core::policy::Policy::parse(&bytes)
        .map_err(|e| format!("--witness-policy {}: {e}", file.display()))?;
    Ok(server::WitnessConfig {
        policy,
        interval: Duration::from_millis(interval_ms.max(1)),
    })
}
