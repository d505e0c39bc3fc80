//! TokenOne's HTTP layer: the REST control plane under `/api`, operational endpoints, and
//! `serve(config, listener, shutdown)`, the one launch function both the binary and the tests use.

mod door;
pub mod dto;
pub mod error;
pub mod extract;
pub mod hub;
pub mod metrics;
pub mod middleware;
pub mod proxy;
mod pubsub;
pub mod routes;
pub mod runtime;
pub mod state;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use state::{AppState, Inner};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokenone_core::config::Config;
use tokenone_core::economics::Levers;
use tokenone_core::repo::Store;
use tokenone_core::services::identity::IdentityService;
use tokenone_core::services::keys::KeyService;
use tokenone_core::services::live::LiveConfig;
use tokenone_core::services::projects::ProjectService;
use tokenone_core::services::secrets::server_secret;
use tokenone_core::services::wallet::WalletService;
use tokenone_core::tokens::JwtKeys;
use tokenone_core::vault::{MasterKey, Vault};
use tokenone_store::SqlStore;

/// The master key: configured, or read from (or generated into) the key file.
pub fn load_master_key(cfg: &Config) -> anyhow::Result<MasterKey> {
    if !cfg.vault.master_key.is_empty() {
        return MasterKey::from_base64(cfg.vault.master_key.expose()).context("TOKENONE_MASTER_KEY");
    }
    let path = master_key_path(cfg);
    let (key, created) =
        MasterKey::load_or_create(&path).with_context(|| format!("master key file {}", path.display()))?;
    if created {
        tracing::warn!(path = %path.display(), "no master key configured: generated one (mode 0600). Back it up; without it stored secrets cannot be opened");
    }
    Ok(key)
}

/// Where the master key file is: `vault.master_key_file`, else `tokenone.key` in the data
/// directory.
pub fn master_key_path(cfg: &Config) -> PathBuf {
    if cfg.vault.master_key_file.is_empty() {
        cfg.data_dir().join("tokenone.key")
    } else {
        PathBuf::from(&cfg.vault.master_key_file)
    }
}

/// The vault: the master key, plus the keys that still open records during a rotation
/// (`vault.previous_master_keys`, and `<key file>.previous` when the key comes from a file, whose
/// changes the vault then follows).
pub fn load_vault(cfg: &Config) -> anyhow::Result<Vault> {
    let mut vault = Vault::new(load_master_key(cfg)?);
    for k in &cfg.vault.previous_master_keys {
        vault = vault.with_older(MasterKey::from_base64(k.expose()).context("vault.previous_master_keys")?);
    }
    if cfg.vault.master_key.is_empty() {
        let path = master_key_path(cfg);
        vault = vault
            .with_key_file(&path)
            .with_context(|| format!("previous master keys beside {}", path.display()))?;
    }
    Ok(vault)
}

/// Connects the store (running migrations), opens the vault, and builds the services.
pub async fn build_state(cfg: Config) -> anyhow::Result<AppState> {
    let store = SqlStore::connect(cfg.database.url.expose(), cfg.database.max_connections)
        .await
        .context("connecting to the database")?;
    let store = Arc::new(store);
    let workspace_repo: Arc<dyn tokenone_core::workspace::WorkspaceRepo> = store.clone();
    let store: Arc<dyn Store> = store;
    let vault = load_vault(&cfg)?;
    // From here on `cfg` is the effective configuration: file and environment, then stored settings.
    let admin = tokenone_core::services::admin::AdminService::new(store.clone(), vault.clone(), cfg.clone());
    let (cfg, stored_levers): (Config, Levers) = runtime::initial(&admin).await;
    let jwt_secret = if cfg.auth.jwt_secret.is_empty() {
        server_secret(store.as_ref(), &vault, "jwt").await?
    } else {
        cfg.auth.jwt_secret.expose().as_bytes().to_vec()
    };
    let pepper = server_secret(store.as_ref(), &vault, "api_key_pepper").await?;
    let redis = connect_redis(&cfg).await;
    let http = proxy::upstream::client(&cfg);
    let live_cfg_catalogue = cfg.routing.catalogue.clone();
    let replica_id = uuid::Uuid::new_v4().to_string();
    let live = LiveConfig::new(cfg);
    let identity = IdentityService::new(store.clone(), JwtKeys::new(&jwt_secret), live.clone());
    let projects = ProjectService::new(store.clone(), live.clone());
    let keys = KeyService::new(store.clone(), pepper);
    let connectors = tokenone_core::services::connectors::ConnectorService::new(
        store.clone(),
        vault.clone(),
        live.clone(),
        projects.clone(),
        Arc::new(routes::connectors::HttpTokenExchange(http.clone())),
        Arc::new(tokenone_store::SqlxProbe),
    );
    let summary = tokenone_core::services::summary::SummaryService::new(store.clone(), projects.clone());
    let router_service = tokenone_core::services::router::RouterService::new(store.clone());
    let router_now = match router_service.current().await {
        Ok((mode, pct, _)) => (mode, pct),
        Err(e) => {
            tracing::error!(error = %e, "router state unreadable at start; routing on at 100%");
            (tokenone_core::routing::RouterMode::On, 100)
        }
    };
    let wallet = WalletService::new(store.clone(), replica_id.clone(), live.clone());
    let rate_limiter = proxy::ratelimit::RateLimiter::new(redis.clone());
    let ledger_key = server_secret(store.as_ref(), &vault, "ledger").await?;
    let ledger = tokenone_core::services::ledger::LedgerService::new(store.clone(), ledger_key.clone());
    let writer = proxy::writer::CallWriter::start(store.clone(), ledger_key);
    // Project events fan out on a Redis channel of this installation only (replicas share the
    // database, hence this secret; other installations on the same Redis do not hear them).
    let installation = server_secret(store.as_ref(), &vault, "installation").await?;
    let channel = format!(
        "tokenone:events:{}",
        &tokenone_core::tokens::sha256_hex(&tokenone_core::tokens::hex(&installation))[..16]
    );
    let fanout = redis.clone().map(|conn| hub::RedisFanout {
        conn,
        url: live.get().redis.url.expose().to_string(),
        channel,
    });
    let hub = hub::EventHub::start(workspace_repo.clone(), fanout, replica_id.clone()).await;
    let events: Arc<dyn tokenone_core::events::EventSink> = Arc::new(hub.clone());
    let workspace = tokenone_core::services::workspace::WorkspaceService::new(
        store.clone(),
        workspace_repo,
        live.clone(),
        events.clone(),
    );
    let mut metrics = metrics::Metrics::new();
    metrics.register_extra(
        "settlement_queue_depth",
        "Call records waiting to be written",
        writer.queue_depth(),
    );
    metrics.register_extra(
        "ratelimit_redis_fallbacks",
        "Rate-limit checks decided locally because Redis was unreachable",
        rate_limiter.fallbacks.clone(),
    );
    metrics.register_extra(
        "ratelimit_redis_takes",
        "Token takes sent to Redis; each serves up to a batch of rate-limit checks",
        rate_limiter.redis_takes(),
    );
    metrics.register_extra("sse_watchers", "Open SSE event streams", hub.watchers_gauge());
    metrics.register_extra(
        "event_queue_depth",
        "Project events waiting to be stored",
        hub.queue_depth(),
    );
    metrics.register_extra(
        "events_dropped",
        "Project events dropped because the event queue was full",
        hub.dropped_counter(),
    );
    let routing = state::RoutingTable {
        catalogue: live_cfg_catalogue,
    };
    Ok(AppState(Arc::new(Inner {
        cfg: live,
        store,
        vault,
        identity,
        projects,
        keys,
        key_cache: proxy::keycache::KeyCache::default(),
        rate_limiter,
        writer,
        http,
        routing: std::sync::RwLock::new(Arc::new(routing)),
        redis,
        wallet,
        ledger,
        summary,
        levers: std::sync::RwLock::new(Arc::new(stored_levers)),
        tasks: tokio_util::task::TaskTracker::new(),
        router: std::sync::RwLock::new(router_now),
        router_service,
        events,
        hub,
        workspace,
        shutdown: tokio_util::sync::CancellationToken::new(),
        breakers: tokenone_core::routing::Breakers::new(tokenone_core::routing::BreakerPolicy::default()),
        metrics,
        started_at: tokenone_core::time::now_ms(),
        replica_id,
        admin,
        runtime: runtime::Runtime::default(),
        connectors,
    })))
}

/// Redis when configured and reachable. Unreachable at start: the replica runs on its local
/// rate-limit buckets (logged), rather than refusing to start.
async fn connect_redis(cfg: &Config) -> Option<redis::aio::ConnectionManager> {
    let url = cfg.redis.url.expose();
    if url.is_empty() {
        return None;
    }
    let client = match redis::Client::open(url) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid REDIS_URL; running without Redis");
            return None;
        }
    };
    match tokio::time::timeout(Duration::from_secs(3), redis::aio::ConnectionManager::new(client)).await {
        Ok(Ok(m)) => Some(m),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "Redis unreachable at start; running on local state");
            None
        }
        Err(_) => {
            tracing::error!("Redis did not answer at start; running on local state");
            None
        }
    }
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let (api, openapi) = routes::api().split_for_parts();
    let openapi = Arc::new(openapi);
    let body_limit = state.cfg.get().server.api_max_body_bytes as usize;
    let api = api
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = openapi.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .layer(DefaultBodyLimit::max(body_limit));
    Router::new()
        .route("/healthz", get(routes::ops::healthz))
        .route("/readyz", get(routes::ops::readyz))
        .route("/metrics", get(routes::ops::metrics))
        .merge(api)
        .merge(proxy::router())
        .fallback(middleware::not_found)
        .layer(cors(state.cfg.clone()))
        .layer(axum::middleware::from_fn(middleware::envelope_405))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::observe))
        .with_state(state)
}

/// CORS: no origin is allowed unless listed in `server.cors_origins` (read live, so the setting
/// applies without a restart).
fn cors(cfg: LiveConfig) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            let allowed = cfg.get();
            origin
                .to_str()
                .is_ok_and(|o| allowed.server.cors_origins.iter().any(|a| a == o))
        }))
        .allow_credentials(true)
        .allow_methods([
            http::Method::GET,
            http::Method::POST,
            http::Method::PATCH,
            http::Method::PUT,
            http::Method::DELETE,
        ])
        .allow_headers([
            http::header::AUTHORIZATION,
            http::header::CONTENT_TYPE,
            http::HeaderName::from_static("x-csrf-token"),
            http::HeaderName::from_static("x-request-id"),
        ])
}

/// Bootstraps the platform admin on an empty database, printing a generated password once.
pub async fn bootstrap(state: &AppState) -> anyhow::Result<()> {
    if let Some((email, generated)) = state.identity.bootstrap_admin().await? {
        match generated {
            Some(password) => eprintln!(
                "\n  TokenOne: created the platform admin.\n    email:    {email}\n    password: {password}\n  (shown once; set TOKENONE_ADMIN_PASSWORD to choose it)\n"
            ),
            None => eprintln!("TokenOne: created the platform admin {email}"),
        }
    }
    Ok(())
}

/// Runs the server on `listener` until `shutdown` completes, then drains in-flight requests for
/// up to `server.shutdown_grace_seconds`.
pub async fn serve(
    cfg: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = build_state(cfg).await?;
    bootstrap(&state).await?;
    serve_state(state, listener, shutdown).await
}

/// Serves an already built state (lets callers inspect the state first).
pub async fn serve_state(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let cfg = state.cfg.get();
    let header_timeout = Duration::from_millis(cfg.server.header_read_timeout_ms.max(1));
    let grace = Duration::from_secs(cfg.server.shutdown_grace_seconds);
    let router = app(state.clone());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let background = tokio::spawn(background(state.clone()));
    let sync = tokio::spawn(runtime::sync(state.clone()));
    tracing::info!(addr = %listener.local_addr()?, backend = state.store.backend(), "TokenOne listening");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let svc = connection_service(router.clone(), peer);
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    // Streams that would never end by themselves (SSE) end now, so draining can finish.
    state.shutdown.cancel();
    tracing::info!("shutting down: draining connections");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
    background.abort();
    sync.abort();
    // In-flight settlements first, then the last batch, then the unused leases.
    state.tasks.close();
    state.tasks.wait().await;
    state.writer.shutdown().await;
    state.hub.shutdown().await;
    state.wallet.return_all().await;
    Ok(())
}

/// Periodic wallet upkeep: idle leases go back every second, leases are renewed, and expired
/// leases of dead replicas are swept.
async fn background(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        state.wallet.return_idle(Duration::from_secs(5)).await;
        let ttl = state.cfg.get().wallet.reservation_ttl_seconds.max(3);
        if n.is_multiple_of(ttl / 3) {
            if let Err(e) = state.wallet.renew().await {
                tracing::warn!(error = %e, "renewing wallet leases failed");
            }
        }
        if n.is_multiple_of(30.min(ttl)) {
            match state.wallet.sweep().await {
                Ok(0) => {}
                Ok(t) => tracing::warn!(tokens = t, "released expired wallet leases of a stopped replica"),
                Err(e) => tracing::warn!(error = %e, "sweeping wallet leases failed"),
            }
        }
    }
}

fn connection_service(
    router: Router,
    peer: SocketAddr,
) -> hyper_util::service::TowerToHyperService<
    impl tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future = impl Send,
        > + Clone,
> {
    use tower::ServiceExt;
    let svc = router.map_request(move |mut req: http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        req.map(axum::body::Body::new)
    });
    hyper_util::service::TowerToHyperService::new(svc)
}
