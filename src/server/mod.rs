//! `consentlog serve`: the ledger over HTTP (axum on tokio) for training jobs, people and
//! auditors. One sequencer thread owns appends; a heartbeat thread signs checkpoints; handlers
//! read the ledger directly.

mod auth;
mod error;
mod extract;
mod heartbeat;
mod metrics;
mod routes;
mod sequencer;
#[cfg(test)]
mod tests;
mod tiles;
mod witnessing;

pub use auth::{check_token, parse_tokens, Auth, DEFAULT_REPLAY_CACHE};
pub use sequencer::BatchConfig;
pub use witnessing::{WitnessConfig, DEFAULT_INTERVAL as DEFAULT_WITNESS_INTERVAL};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::sync::watch;
use tower::ServiceBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::hash::to_hex;
use crate::ledger::Ledger;
use crate::listener::{accept, say, Signals};

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
    /// The most bytes of the state map's upper levels kept in memory
    /// ([`Options::map_bytes`](crate::ledger::Options::map_bytes)).
    pub map_bytes: usize,
    /// Longest wait for a request's headers, on a new connection or between the requests of
    /// a kept-alive one (hyper's header-read timeout): a client that sends nothing, or half a
    /// request head, is disconnected after it.
    pub header_timeout: Duration,
    /// Most connections open at once; beyond it new connections wait in the listen backlog.
    pub max_connections: usize,
    /// The server's public URL, normalised (`core::request::parse_audience`): the audience
    /// people sign their requests for. None: `http://` and the address it listens on.
    pub public_url: Option<String>,
    /// Most (subject, nonce) pairs of signed requests remembered; beyond it, signed requests
    /// get 503 until the oldest expire.
    pub replay_cache: usize,
    /// The witnesses to ask for cosignatures (`--witness-policy`), if any. None: those of
    /// the policy the ledger declares in its genesis leaf, if it declares one.
    pub witnesses: Option<WitnessConfig>,
    /// Least time between two submissions to one witness, when the witnesses are those of the
    /// ledger's declared policy.
    pub witness_interval: Duration,
    /// A witness policy (without its `log` line) for a ledger `serve` creates to declare
    /// (`--declare-witness-policy`); an existing ledger must declare the same one.
    pub declare_policy: Option<String>,
}

impl ServeConfig {
    /// The audience of signed requests when listening on `addr`: the public URL, or
    /// `http://addr`.
    pub fn audience(&self, addr: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
    }
}

struct Inner {
    ledger: Arc<Ledger>,
    seq: sequencer::Sequencer,
    auth: Auth,
    /// Signed requests: this log's origin and audience, the start time, the nonces taken.
    people: auth::People,
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

/// The document's title, security schemes and the schemas no route names directly.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "consentlog",
        version = "1",
        description = "Append-only consent ledger with verifiable proofs. Formats: docs/FORMAT.md."
    ),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let bearer = |description: &str| {
            let mut h = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
            h.description = Some(description.to_string());
            SecurityScheme::Http(h)
        };
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "readerToken",
            bearer("--reader-token or a tokens file; may be limited to controllers"),
        );
        c.add_security_scheme("auditorToken", bearer("--auditor-token"));
        c.add_security_scheme(
            "signedRequest",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "Consentlog-Ed25519 subject=<hex>,time=<ms>,nonce=<hex>,signature=<hex>, signed \
                 for this log's origin and the server's public URL, at most 5 minutes off its \
                 clock, not before it started, each nonce once (docs/FORMAT.md §13)",
            ))),
        );
    }
}

/// Every route, from the handlers' `#[utoipa::path]` descriptions: the router and the OpenAPI
/// document are two views of this one list, so neither can name a route the other lacks.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::post_event))
        .routes(routes!(routes::post_batch))
        .routes(routes!(routes::get_heads))
        .routes(routes!(routes::get_checkpoint))
        .routes(routes!(routes::get_checkpoints))
        .routes(routes!(routes::get_cosigned))
        .routes(routes!(routes::post_witnessed_receipt))
        .routes(routes!(routes::get_entries))
        .routes(routes!(tiles::get_tlog_checkpoint))
        .routes_spanning(routes!(tiles::get_hash_tile))
        .routes_spanning(routes!(tiles::get_entry_bundle))
        .routes(routes!(routes::get_inclusion))
        .routes(routes!(routes::get_consistency))
        .routes(routes!(routes::get_consent, routes::post_consent))
        .routes(routes!(routes::get_history))
        .routes(routes!(routes::get_export))
        .routes(routes!(routes::home))
        .routes(routes!(routes::openapi))
        .routes(routes!(routes::healthz))
        .routes(routes!(routes::metrics))
}

/// A route whose last path parameter spans path segments (an entry bundle's `x001/234`):
/// documented as `{name}` (OpenAPI has no other spelling), routed as axum's `{*name}`.
trait RoutesSpanning {
    fn routes_spanning(self, r: utoipa_axum::router::UtoipaMethodRouter<AppState>) -> Self;
}

impl RoutesSpanning for OpenApiRouter<AppState> {
    fn routes_spanning(
        self,
        (schemas, paths, method_router): utoipa_axum::router::UtoipaMethodRouter<AppState>,
    ) -> Self {
        let mut out = self;
        for (path, item) in paths.paths {
            let at = path.rfind('{').expect("a path parameter");
            let routed = format!("{}{{*{}", &path[..at], &path[at + 1..]);
            out = out.route(&routed, method_router.clone());
            out.get_openapi_mut().paths.paths.insert(path, item);
        }
        out.get_openapi_mut()
            .components
            .get_or_insert_with(Default::default)
            .schemas
            .extend(schemas);
        out
    }
}

/// The OpenAPI document of every route (served at `GET /v1/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}

/// [`openapi`] as the JSON text that is served.
pub fn openapi_json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut s = openapi().to_pretty_json().expect("the document is JSON");
        s.push('\n');
        s
    });
    &JSON
}

/// The ledger served over HTTP, without a listener: the router and the threads behind it (the
/// sequencer and the checkpoint heartbeat). `serve` puts it on a socket; tests can call the
/// router in-process (`tower::ServiceExt::oneshot`). [`App::stop`] finishes the queue.
pub struct App {
    state: AppState,
    heartbeat: heartbeat::Heartbeat,
    witnessing: Option<witnessing::Witnessing>,
    router: Router,
}

impl App {
    /// Starts the sequencer and the heartbeat for `ledger` with `cfg`'s batching, checkpoint,
    /// timeout, body and signed-request settings (its directory is not used here; the listen
    /// address only as the default audience, [`ServeConfig::audience`]). Signed requests are
    /// taken from now on, on the ledger's clock.
    pub fn new(ledger: Arc<Ledger>, cfg: &ServeConfig, auth: Auth) -> Result<App, String> {
        let witnesses = match &cfg.witnesses {
            Some(w) => Some(w.clone()),
            None => declared_witnesses(&ledger, cfg.witness_interval)?,
        };
        if let Some(w) = &witnesses {
            w.check_for(&ledger)?;
        }
        let cp = ledger.checkpoint_all().map_err(|e| e.to_string())?;
        let metrics = Arc::new(metrics::Metrics::default());
        let witnessing = witnesses
            .as_ref()
            .map(|w| witnessing::Witnessing::start(ledger.clone(), w, metrics.clone()));
        let (covered_tx, covered) = watch::channel(cp.size);
        let heartbeat = heartbeat::Heartbeat::start(
            ledger.clone(),
            cfg.checkpoint_interval,
            cfg.max_checkpoint_gap,
            covered_tx,
        );
        let clock = {
            let l = ledger.clone();
            Arc::new(move || l.now_ms())
        };
        let people = auth::People::new(
            ledger.origin(),
            &cfg.audience(cfg.listen),
            clock,
            cfg.replay_cache,
        );
        let state = AppState(Arc::new(Inner {
            ledger: ledger.clone(),
            seq: sequencer::Sequencer::start(ledger, cfg.batch, metrics.clone()),
            auth,
            people,
            metrics,
            covered,
        }));
        let (routes, _) = api_router().split_for_parts();
        let router = routes
            .fallback(routes::fallback)
            .method_not_allowed_fallback(routes::method_not_allowed)
            .layer(DefaultBodyLimit::max(cfg.body_limit))
            .layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(routes::timed_out))
                    .timeout(cfg.request_timeout),
            )
            .with_state(state.clone());
        Ok(App {
            state,
            heartbeat,
            witnessing,
            router,
        })
    }

    /// The audience signed requests must name (the public URL).
    pub fn audience(&self) -> &str {
        self.state.people.audience()
    }

    /// When the app started, on the ledger's clock: signed requests dated earlier are refused.
    pub fn started(&self) -> u64 {
        self.state.people.started()
    }

    /// The router (cheap to clone).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Stops taking appends, finishes every queued one, stops the heartbeat and stops asking
    /// witnesses.
    pub fn stop(mut self) {
        self.state.seq.close();
        self.heartbeat.stop();
        if let Some(mut w) = self.witnessing.take() {
            w.stop();
        }
    }
}

/// Binds the address, then opens (or, if the directory holds no ledger, creates) the ledger
/// and serves until SIGTERM or Ctrl-C; then stops accepting, finishes and flushes the queue,
/// signs a final checkpoint. Nothing is created before the address is bound: a busy port
/// leaves no new ledger directory or key behind.
pub fn serve(cfg: ServeConfig, auth: Auth) -> Result<(), String> {
    runtime()?.block_on(async {
        let signals = Signals::install()?;
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
        let ledger = open(&cfg)?;
        serve_on(ledger, listener, &cfg, auth, signals.wait(), say).await
    })
}

/// The witnesses of the policy `ledger` declares in its genesis leaf, to ask when `serve` is
/// given no `--witness-policy`: None if it declares none, or none of its witnesses has a URL
/// (said in the log: proofs will not meet the declared policy until witnesses cosign).
fn declared_witnesses(
    ledger: &Ledger,
    interval: Duration,
) -> Result<Option<WitnessConfig>, String> {
    let Some(text) = &ledger.genesis().witness_policy else {
        return Ok(None);
    };
    let policy = crate::core::policy::Policy::parse(text.as_bytes())
        .map_err(|e| format!("the witness policy in the genesis leaf: {e}"))?;
    if !policy.witnesses.iter().any(|w| w.url.is_some()) {
        tracing::warn!(
            "the log declares a witness policy, but none of its witnesses has a submission URL \
             and no --witness-policy names one: no witness is asked, and proofs will not meet \
             the declared policy"
        );
        return Ok(None);
    }
    tracing::info!("asking the witnesses of the log's declared policy");
    Ok(Some(WitnessConfig { policy, interval }))
}

/// The ledger `serve` serves: `cfg.dir`'s, opened with its cache; or, if the directory holds
/// no ledger, a new one with `cfg`'s origin, engine and declared witness policy. Refuses a log
/// key others can read, and a declared policy that differs from the existing ledger's.
pub fn open(cfg: &ServeConfig) -> Result<Arc<Ledger>, String> {
    let ledger = if cfg.dir.join("engine").exists() {
        // A log key others can read is a key others may have copied: refuse to serve with it.
        crate::keyfile::read(&cfg.dir.join("log.key"), true).map_err(|e| e.to_string())?;
        let opts = crate::ledger::Options::default()
            .cache_bytes(cfg.cache_bytes)
            .map_bytes(cfg.map_bytes);
        let l = Ledger::open_with(&cfg.dir, opts).map_err(|e| e.to_string())?;
        if let Some(text) = &cfg.declare_policy {
            let want = crate::ledger::complete_witness_policy(text, l.origin(), &l.public_key())
                .map_err(|e| format!("--declare-witness-policy: {e}"))?;
            if l.genesis().witness_policy.as_deref() != Some(want.as_str()) {
                return Err(format!(
                    "--declare-witness-policy: the ledger in {} exists and declares {}; a log's \
                     declared policy is fixed when it is created (its genesis leaf)",
                    cfg.dir.display(),
                    if l.genesis().witness_policy.is_some() {
                        "another policy"
                    } else {
                        "none"
                    }
                ));
            }
        }
        l
    } else {
        let engine = cfg
            .engine
            .parse::<crate::store::Engine>()
            .map_err(|e| e.to_string())?;
        let mut opts = crate::ledger::Options::default()
            .cache_bytes(cfg.cache_bytes)
            .map_bytes(cfg.map_bytes);
        if let Some(text) = &cfg.declare_policy {
            opts = opts.witness_policy(text.clone());
        }
        Ledger::init_with(&cfg.dir, &cfg.origin, engine, opts).map_err(|e| e.to_string())?
    };
    Ok(Arc::new(ledger))
}

pub use crate::listener::runtime;

/// Serves `ledger` on `listener` until `shutdown` (what `serve` does once the ledger is open
/// and the socket bound): starts the [`App`] (the audience of signed requests is `cfg`'s
/// public URL, or `http://` and the bound address), gives the banner lines (the absolute data
/// directory, origin, log public key, public URL, the URLs of the page and the API document,
/// each role and what it may do or which option enables it, how to stop, and last
/// `listening on http://…`) to `say`, runs the accept loop;
/// after `shutdown`, finishes every queued append, signs a final checkpoint and says so.
/// `serve` passes SIGTERM or Ctrl-C and standard output; tests run it in-process with their
/// own.
pub async fn serve_on(
    ledger: Arc<Ledger>,
    listener: tokio::net::TcpListener,
    cfg: &ServeConfig,
    auth: Auth,
    shutdown: impl std::future::Future<Output = ()>,
    say: impl Fn(&str),
) -> Result<(), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if cfg.public_url.is_none() && addr.ip().is_unspecified() {
        tracing::warn!(
            %addr,
            "listening on an unspecified address without --public-url: people's signed \
             requests must be signed for http://{addr}"
        );
    }
    let cfg = ServeConfig {
        public_url: Some(cfg.audience(addr)),
        ..cfg.clone()
    };
    let cfg = &cfg;
    let roles = auth.roles();
    let app = App::new(ledger.clone(), cfg, auth)?;
    let dir = std::path::absolute(&cfg.dir).unwrap_or_else(|_| cfg.dir.clone());
    say(&format!("data directory: {}", dir.display()));
    say(&format!("origin: {}", ledger.origin()));
    say(&format!(
        "log public key: {}",
        to_hex(ledger.public_key().as_bytes())
    ));
    say(&format!("public URL: {}", app.audience()));
    let base = app.audience().trim_end_matches('/').to_string();
    say(&format!("page: {base}{}", crate::api::paths::PAGE));
    say(&format!(
        "API document: {base}{}",
        crate::api::paths::OPENAPI
    ));
    for line in roles {
        say(&line);
    }
    say("stop: Ctrl-C or SIGTERM (queued appends are finished and a final checkpoint signed)");
    say(&format!("listening on http://{addr}"));
    tracing::info!(%addr, size = ledger.size(), "serving");
    accept(
        listener,
        app.router(),
        cfg.header_timeout,
        cfg.max_connections,
        shutdown,
    )
    .await;
    // No new requests: finish every queued append, then a final checkpoint.
    app.stop();
    let cp = ledger.checkpoint_all().map_err(|e| e.to_string())?;
    say(&format!(
        "stopped: final checkpoint covers {} leaves",
        cp.size
    ));
    Ok(())
}
