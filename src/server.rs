//! The accept loop: what keeps slow clients and connection floods from taking the service down.
//!
//! `axum::serve` reads request headers without a deadline and accepts connections until the
//! process runs out of file descriptors, after which the database pool and the health probes
//! fail too. So tenure serves connections itself, with hyper:
//!
//! - **Header read timeout** (`HEADER_READ_TIMEOUT`): a connection whose request headers have
//!   not all arrived that long after it started waiting for them is closed. hyper starts the
//!   clock whenever a connection waits for a request head, so this is also the idle keep-alive
//!   timeout.
//! - **Connection cap** (`MAX_CONNECTIONS`): at the cap, tenure stops accepting (new
//!   connections wait in the kernel's backlog) instead of failing on `EMFILE`, so descriptors
//!   stay for the database and the probes.
//! - **Open-file limit**: at start the soft limit is raised to the hard limit (as Go's runtime
//!   does), and the limits are logged.
//!
//! Shutdown is graceful: on the signal the loop stops accepting and waits for the requests in
//! flight.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Descriptors kept back from the connection cap: the database pool (16), the listeners, the
/// log and SQLite's files, and room to spare.
const RESERVED_DESCRIPTORS: u64 = 64;
/// How long to pause accepting after an accept error (such as `EMFILE`) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Raises the soft open-file limit to the hard limit and logs both; answers the soft limit
/// now in force.
pub fn raise_open_file_limit() -> u64 {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE).ok();
    let raised = rlimit::increase_nofile_limit(u64::MAX);
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
    match raised {
        Ok(_) => tracing::info!(
            soft_before = before.map(|(s, _)| s),
            soft,
            hard,
            "open-file limit"
        ),
        Err(err) => tracing::warn!(%err, soft, hard, "could not raise the open-file limit"),
    }
    soft
}

/// The connection cap: `MAX_CONNECTIONS`, or with `0` the open-file limit less the reserve.
pub fn connection_cap(configured: usize, open_file_limit: u64) -> usize {
    if configured > 0 {
        return configured;
    }
    let cap = open_file_limit.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    tracing::info!(
        max_connections,
        header_read_timeout_ms = header_read_timeout.as_millis() as u64,
        "accepting connections"
    );
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "accept failed; pausing");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // What handlers read as the client's address (`ConnectInfo`), as `axum::serve` gives.
        let service = router.clone().map_request(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that sends garbage or goes away is its own problem, not the server's.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
