//! tenure: a standalone session service with forever sessions, speaking the DreamFactory 2.x
//! session API.
//!
//! The flow is the module tree: `http` (router, handlers, extractors) calls `session` (the
//! policy), which calls `store` (SQLite or PostgreSQL). [`build_state`] wires them from a
//! [`Config`]; [`serve`] runs the app on a bound listener until a shutdown future resolves, so
//! tests and production start the same code.

pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod import;
pub mod password;
pub mod server;
pub mod session;
pub mod store;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use secrecy::ExposeSecret;

use clock::Clock;
use config::Config;
pub use http::{app, AppState};
use password::PasswordHasherPool;
use session::keys::{KeyError, KeyRing};
use session::SessionService;
use store::StoreError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// Opens the database, runs migrations, and loads (or creates) the signing keys.
pub async fn build_state(config: &Config, clock: Arc<dyn Clock>) -> Result<AppState, StartError> {
    let store = connect_with_retries(config).await?;
    store.migrate().await?;
    let config = Arc::new(config.clone());
    let keys = KeyRing::load(store.clone(), config.clone(), clock.now()).await?;
    let service = SessionService::new(
        store,
        Arc::new(keys),
        clock,
        PasswordHasherPool::sized_to_cores(),
        config.clone(),
    );
    Ok(AppState {
        service: Arc::new(service),
        host: gethostname::gethostname().to_string_lossy().into(),
        started_at: Instant::now(),
        config,
    })
}

/// Opens the database, waiting for it (with a clear log line per attempt) up to
/// `DATABASE_STARTUP_TIMEOUT`: in docker-compose or Kubernetes the database may start later.
async fn connect_with_retries(config: &Config) -> Result<Arc<dyn store::Store>, StoreError> {
    let url = config.database_url.expose_secret();
    let deadline = Instant::now() + config.database_startup_timeout;
    let mut delay = std::time::Duration::from_millis(250);
    loop {
        match store::connect(
            url,
            config.database_acquire_timeout,
            config.sqlite_synchronous,
        )
        .await
        {
            Ok(store) => return Ok(store),
            Err(cause) if cause.is_unavailable() && Instant::now() + delay < deadline => {
                tracing::warn!(
                    database = %config::redact_url(url),
                    %cause,
                    retry_in_ms = delay.as_millis() as u64,
                    "waiting for the database"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            Err(err) => return Err(err),
        }
    }
}

/// How often every replica re-reads the signing keys: well inside `JWKS_CACHE_TTL`, so each one
/// knows a new key long before it starts signing.
fn key_reload_interval(jwks_cache_ttl: i64) -> std::time::Duration {
    std::time::Duration::from_secs((jwks_cache_ttl / 4).clamp(1, 60) as u64)
}

/// Serves the app on `listener` until `shutdown` resolves, then drains in-flight requests.
/// The background purge runs alongside and stops with the server.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    http::metrics::handle();
    if !state.config.cookie_secure {
        tracing::warn!(
            "COOKIE_SECURE=false: the refresh cookie is sent over plain http; \
             for local development only"
        );
    }
    let purger = session::purge::spawn_purger(state.service.clone(), state.config.purge_interval);
    let metrics_server = match state.config.metrics_addr {
        None => None,
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "metrics listening");
            let router = http::metrics::router().with_state(state.clone());
            Some(tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            }))
        }
    };
    let keys = state.service.keys().clone();
    let refresher = session::keys::spawn_key_refresher(
        keys.clone(),
        state.service.clock().clone(),
        key_reload_interval(keys.jwks_cache_ttl()),
    );
    let open_files = server::raise_open_file_limit();
    let max_connections = server::connection_cap(state.config.max_connections, open_files);
    let header_read_timeout = state.config.header_read_timeout;
    let served = server::serve(
        listener,
        app(state),
        header_read_timeout,
        max_connections,
        shutdown,
    )
    .await;
    purger.abort();
    if let Some(server) = metrics_server {
        server.abort();
    }
    refresher.abort();
    served
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, draining");
}
