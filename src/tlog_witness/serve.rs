//! The witness on a socket: HTTP/1.1 with keep-alive, the same connection settings as the
//! log server (`server::serve_on`): hyper's header-read timeout, a bound on connections open
//! at once, a per-request timeout and a body limit; SIGTERM or Ctrl-C stop it gracefully
//! (no new connections, requests in flight finish; every cosignature handed out was already
//! stored).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

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
    accept(listener, router_with(witness, limits), limits, shutdown).await;
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async {
        let signals = Signals::install()?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        serve_on(witness, listener, dir, limits, signals.wait(), say).await
    })
}

/// Serves HTTP/1.1 connections on `listener` until `shutdown`, then waits for the requests in
/// flight (idle connections are closed at once).
async fn accept(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: &Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let conn = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Prints a status line; a closed standard output is not a reason to fail.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// SIGTERM and SIGINT handlers, installed before the banner, so a SIGTERM right after start-up
/// is a graceful stop.
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

    async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
    }
}
