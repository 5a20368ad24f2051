//! The witness on a socket: HTTP/1.1 with keep-alive, the same connection settings as the
//! log server (`server::serve_on`): hyper's header-read timeout, a bound on connections open
//! at once, a per-request timeout and a body limit; SIGTERM or Ctrl-C stop it gracefully
//! (no new connections, requests in flight finish; every cosignature handed out was already
//! stored).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::listener::{accept, runtime, say, Signals};

use super::routes::{router_with, DEFAULT_BODY_LIMIT};
use super::Witness;

/// Connection and request limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body; larger ones get 413.
    pub body_limit: usize,
    /// Longest a request may take; then 503.
    pub request_timeout: Duration,
    /// Longest wait for a request's headers (new or kept-alive connection).
    pub header_timeout: Duration,
    /// Most connections open at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            max_connections: 512,
        }
    }
}

/// Serves `witness` on `listener` until `shutdown`: gives the banner lines (name, vkey, logs,
/// state directory, `listening on http://…`, how to stop) to `say`, then accepts connections;
/// after `shutdown`, waits for the requests in flight.
pub async fn serve_on(
    witness: Arc<Witness>,
    listener: tokio::net::TcpListener,
    dir: &std::path::Path,
    limits: &Limits,
    shutdown: impl std::future::Future<Output = ()>,
    say: impl Fn(&str),
) -> Result<(), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    say(&format!("witness name: {}", witness.name()));
    say(&format!(
        "witness vkey (put it in policies): {}",
        witness.vkey().to_text()
    ));
    for origin in witness.origins() {
        say(&format!("witnessing log: {origin}"));
    }
    if let Some(r) = witness.replay() {
        say(&format!(
            "replaying witness: cosigns {} only up to the size replayed from {}",
            r.origin(),
            r.url()
        ));
    }
    say(&format!(
        "state: {}",
        dir.join(super::state::FILE).display()
    ));
    say(&format!(
        "submission prefix: http://{addr} (POST http://{addr}/add-checkpoint)"
    ));
    say(&format!("listening on http://{addr}"));
    say("stop with Ctrl-C or SIGTERM");
    tracing::info!(%addr, "witness serving");
    accept(
        listener,
        router_with(witness, limits),
        limits.header_timeout,
        limits.max_connections,
        shutdown,
    )
    .await;
    say("stopped");
    Ok(())
}

/// What `consentlog witness` runs once the witness is open: binds `listen`, prints the banner
/// on standard output and serves until SIGTERM or Ctrl-C (handlers installed before the
/// banner).
pub fn serve(
    witness: Arc<Witness>,
    listen: SocketAddr,
    dir: &std::path::Path,
    limits: &Limits,
) -> Result<(), String> {
    runtime()?.block_on(async {
        let signals = Signals::install()?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        serve_on(witness, listener, dir, limits, signals.wait(), say).await
    })
}
