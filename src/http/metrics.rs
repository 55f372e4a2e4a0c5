//! `GET /metrics`: Prometheus text. Counters and histograms are recorded where things happen
//! (the request middleware here, logins and refreshes in the session service, hashing in the
//! password pool); gauges of state (live sessions, pool connections) are read at scrape time.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;

/// Latency buckets in seconds, from a cached GET to an Argon2-bound login under load.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often recorded histogram samples are folded into their buckets and summaries.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process-wide recorder (the `metrics` facade has one per process by design).
///
/// The recorder keeps every histogram sample until it is folded in, which happens on a scrape
/// or on upkeep. `install_recorder` starts no upkeep, so without it a server nobody scrapes
/// grows by every request's samples (the soak in RELIABILITY.md found ~4 MiB a minute at
/// 5k requests/s). A small thread runs the upkeep.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()?;
            let upkeep = handle.clone();
            let started = std::thread::Builder::new()
                .name("tenure-metrics".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                });
            if let Err(err) = started {
                tracing::warn!(error = %err, "metrics upkeep thread did not start");
            }
            Some(handle)
        })
        .as_ref()
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

#[utoipa::path(get, path = "/metrics", tag = "health", summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
async fn scrape(State(state): State<AppState>) -> Response {
    let store = state.service.store();
    if let Ok(live) = state.service.count_live_sessions().await {
        metrics::gauge!("tenure_active_sessions").set(live as f64);
    }
    let (open, idle) = store.pool_stats();
    metrics::gauge!("tenure_db_pool_connections", "state" => "in_use")
        .set(f64::from(open.saturating_sub(idle)));
    metrics::gauge!("tenure_db_pool_connections", "state" => "idle").set(f64::from(idle));
    let text = handle().map(PrometheusHandle::render).unwrap_or_default();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// Counts every request by route template and status, and times it.
pub async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("tenure_http_requests_total",
        "method" => method.clone(), "route" => route.clone(), "status" => status)
    .increment(1);
    metrics::histogram!("tenure_http_request_duration_seconds",
        "method" => method, "route" => route)
    .record(started.elapsed().as_secs_f64());
    response
}
