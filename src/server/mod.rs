//! `consentlog serve`: the ledger over HTTP (axum on tokio) for training jobs, people and
//! auditors. One sequencer thread owns appends; a heartbeat thread signs checkpoints; handlers
//! read the ledger directly.

mod auth;
mod error;
mod heartbeat;
mod metrics;
mod routes;
mod sequencer;

pub use auth::Auth;
pub use sequencer::BatchConfig;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::core::hash::to_hex;
use crate::ledger::Ledger;

/// The OpenAPI 3 document of the routes below (tests check the two agree).
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route as (method, path), in the OpenAPI document's spelling.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/events"),
    ("post", "/v1/events/batch"),
    ("get", "/v1/heads"),
    ("get", "/v1/checkpoint"),
    ("get", "/v1/checkpoints"),
    ("get", "/v1/entries"),
    ("get", "/v1/proofs/inclusion"),
    ("get", "/v1/proofs/consistency"),
    ("get", "/v1/proofs/consent"),
    ("post", "/v1/proofs/consent"),
    ("get", "/v1/subjects/{subject}/history"),
    ("get", "/v1/export"),
    ("get", "/v1/openapi.json"),
    ("get", "/healthz"),
    ("get", "/metrics"),
];

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    pub origin: String,
    /// Storage engine of a newly created ledger.
    pub engine: String,
    pub batch: BatchConfig,
    pub checkpoint_interval: Duration,
    pub max_checkpoint_gap: Duration,
    pub request_timeout: Duration,
    pub body_limit: usize,
    pub cache_bytes: u64,
}

struct Inner {
    ledger: Arc<Ledger>,
    seq: sequencer::Sequencer,
    auth: Auth,
    metrics: Arc<metrics::Metrics>,
    covered: watch::Receiver<u64>,
}

/// Shared handler state.
#[derive(Clone)]
struct AppState(Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

fn router(state: AppState, cfg: &ServeConfig) -> Router {
    let timeout = cfg.request_timeout;
    Router::new()
        .route("/v1/events", post(routes::post_event))
        .route("/v1/events/batch", post(routes::post_batch))
        .route("/v1/heads", get(routes::get_heads))
        .route("/v1/checkpoint", get(routes::get_checkpoint))
        .route("/v1/checkpoints", get(routes::get_checkpoints))
        .route("/v1/entries", get(routes::get_entries))
        .route("/v1/proofs/inclusion", get(routes::get_inclusion))
        .route("/v1/proofs/consistency", get(routes::get_consistency))
        .route(
            "/v1/proofs/consent",
            get(routes::get_consent).post(routes::post_consent),
        )
        .route("/v1/subjects/{subject}/history", get(routes::get_history))
        .route("/v1/export", get(routes::get_export))
        .route("/v1/openapi.json", get(routes::openapi))
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::fallback)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(cfg.body_limit))
        .layer(axum::middleware::from_fn(move |req, next| {
            routes::with_timeout(timeout, req, next)
        }))
        .with_state(state)
}

/// Opens (or, if the directory holds no ledger, creates) the ledger and serves until SIGTERM
/// or Ctrl-C; then stops accepting, finishes and flushes the queue, signs a final checkpoint.
pub fn serve(cfg: ServeConfig, auth: Auth) -> Result<(), String> {
    let ledger = if cfg.dir.join("engine").exists() {
        // A log key others can read is a key others may have copied: refuse to serve with it.
        crate::keyfile::read(&cfg.dir.join("log.key"), true).map_err(|e| e.to_string())?;
        Ledger::open_with_cache(&cfg.dir, cfg.cache_bytes).map_err(|e| e.to_string())?
    } else {
        Ledger::init(&cfg.dir, &cfg.origin, &cfg.engine).map_err(|e| e.to_string())?
    };
    let ledger = Arc::new(ledger);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(run(ledger, cfg, auth))
}

async fn run(ledger: Arc<Ledger>, cfg: ServeConfig, auth: Auth) -> Result<(), String> {
    let signals = Signals::install()?;
    let cp = ledger.checkpoint().map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let metrics = Arc::new(metrics::Metrics::default());
    let (covered_tx, covered) = watch::channel(cp.size);
    let mut heartbeat = heartbeat::Heartbeat::start(
        ledger.clone(),
        cfg.checkpoint_interval,
        cfg.max_checkpoint_gap,
        covered_tx,
    );
    let state = AppState(Arc::new(Inner {
        ledger: ledger.clone(),
        seq: sequencer::Sequencer::start(ledger.clone(), cfg.batch, metrics.clone()),
        auth,
        metrics,
        covered,
    }));
    say(&format!("data directory: {}", cfg.dir.display()));
    say(&format!("origin: {}", ledger.origin()));
    say(&format!(
        "log public key: {}",
        to_hex(ledger.public_key().as_bytes())
    ));
    say(&format!("listening on http://{addr}"));
    tracing::info!(%addr, size = ledger.size(), "serving");
    let app = router(state.clone(), &cfg);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal(signals))
        .await;
    // No new requests: finish every queued append, then a final checkpoint.
    state.seq.close();
    heartbeat.stop();
    let cp = ledger.checkpoint().map_err(|e| e.to_string())?;
    say(&format!(
        "stopped: final checkpoint covers {} entries",
        cp.size
    ));
    served.map_err(|e| format!("server error: {e}"))
}

/// Prints a status line; a closed standard output (a supervisor that stopped reading) is not a
/// reason to fail.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Signal handlers, installed before the server says it is listening, so a SIGTERM that
/// arrives right after start-up is a graceful stop and not the default instant death.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let e = |e: std::io::Error| format!("cannot install signal handlers: {e}");
            Ok(Signals {
                term: signal(SignalKind::terminate()).map_err(e)?,
                int: signal(SignalKind::interrupt()).map_err(e)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }
}

async fn shutdown_signal(mut s: Signals) {
    #[cfg(unix)]
    tokio::select! {
        _ = s.term.recv() => {},
        _ = s.int.recv() => {},
    }
    #[cfg(not(unix))]
    {
        let _ = &mut s;
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}
