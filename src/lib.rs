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
pub mod password;
pub mod session;
pub mod store;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use secrecy::ExposeSecret;

use clock::Clock;
use config::Config;
pub use http::{app, AppState};
use password::PasswordHasherPool;
use session::token::TokenKeys;
use session::{Policy, SessionService};
use store::{Store, StoreError};

/// The settings key of the HS256 secret generated on first start.
const GENERATED_SECRET_KEY: &str = "jwt_hs256_secret";

/// Opens the database, runs migrations, and loads or creates the signing secret.
pub async fn build_state(config: &Config, clock: Arc<dyn Clock>) -> Result<AppState, StoreError> {
    let store = connect_with_retries(config).await?;
    store.migrate().await?;
    let keys = signing_keys(config, store.as_ref()).await?;
    let service = SessionService::new(
        store,
        keys,
        clock,
        PasswordHasherPool::sized_to_cores(),
        Policy::from_config(config),
    );
    Ok(AppState {
        service: Arc::new(service),
        host: gethostname::gethostname().to_string_lossy().into(),
        started_at: Instant::now(),
        request_timeout: config.request_timeout,
        trusted_proxies: config.trusted_proxies.clone().into(),
        purge_interval: config.purge_interval,
        cors_allowed_origins: config.cors_allowed_origins.clone().into(),
        metrics_addr: config.metrics_addr,
        settings: Arc::new(config.public_settings()),
    })
}

/// Opens the database, waiting for it (with a clear log line per attempt) up to
/// `DATABASE_STARTUP_TIMEOUT`: in docker-compose or Kubernetes the database may start later.
async fn connect_with_retries(config: &Config) -> Result<Arc<dyn store::Store>, StoreError> {
    let url = config.database_url.expose_secret();
    let deadline = Instant::now() + config.database_startup_timeout;
    let mut delay = std::time::Duration::from_millis(250);
    loop {
        match store::connect(url, config.database_acquire_timeout).await {
            Ok(store) => return Ok(store),
            Err(StoreError::Unavailable(cause)) if Instant::now() + delay < deadline => {
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

/// `JWT_SECRET` when set; otherwise a random secret generated once and kept in the database,
/// so restarts and replicas agree.
async fn signing_keys(config: &Config, store: &dyn Store) -> Result<TokenKeys, StoreError> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(TokenKeys::hs256(secret.expose_secret().as_bytes()));
    }
    let mut candidate = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut candidate);
    let secret = store
        .setting_or_insert(GENERATED_SECRET_KEY, &URL_SAFE_NO_PAD.encode(candidate))
        .await?;
    Ok(TokenKeys::hs256(secret.as_bytes()))
}

/// Serves the app on `listener` until `shutdown` resolves, then drains in-flight requests.
/// The background purge runs alongside and stops with the server.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    http::metrics::handle();
    let purger = session::purge::spawn_purger(state.service.clone(), state.purge_interval);
    let metrics_server = match state.metrics_addr {
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
    let served = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    purger.abort();
    if let Some(server) = metrics_server {
        server.abort();
    }
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
