//! `GET /health/live` (the process answers; no I/O) and `GET /health/ready` (the database
//! answers within a short timeout and every migration is applied). Probes for Docker and
//! Kubernetes.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;

/// A readiness probe never waits longer than this for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

#[utoipa::path(get, path = "/health/live", tag = "health", summary = "Liveness (no I/O)",
    responses((status = 200, description = "OK", body = Object)))]
async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/health/ready", tag = "health",
    summary = "Readiness: the database answers and migrations are applied",
    responses((status = 200, description = "OK", body = Object), (status = 503, description = "What is wrong", body = Object)))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = state.service.store();
    let database = match tokio::time::timeout(READY_TIMEOUT, store.ready()).await {
        Ok(Ok(true)) => "ok",
        Ok(Ok(false)) => "migrations pending",
        Ok(Err(_)) => "unreachable",
        Err(_) => "timed out",
    };
    let status = if database == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "unavailable" },
        "checks": { "database": database, "backend": store.backend() },
    });
    (status, Json(body))
}
