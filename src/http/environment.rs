//! `GET /api/v2/system/environment`: what clients and operators check. Open to everyone;
//! `platform` only for an authenticated caller, with more for an administrator; `apps` as a
//! DreamFactory launchpad lists them, never an API key. Never a secret.
//! An expired token reads as anonymous (DreamFactory answers 401), so DreamFactory's clients,
//! which read this on start-up outside their refresh logic, keep a forever session on reload.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::{ApiError, ErrorBody};
use super::extract::SessionToken;
use super::AppState;
use crate::config::Choice;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v2/system/environment", get(environment))
}

#[utoipa::path(
    get,
    path = "/api/v2/system/environment",
    tag = "environment",
    summary = "What clients and operators check; `apps` as a launchpad lists them (active apps with a default role, plus a user's own, every active one for an administrator; never a key); `platform` only for a valid token, more for an administrator; an expired token reads as anonymous",
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "OK (also for an expired token of a live session, as for an anonymous caller)", body = Object),
        (status = 401, description = "An invalid token; `context.reason` says why", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn environment(
    State(state): State<AppState>,
    token: SessionToken,
) -> Result<Json<Value>, ApiError> {
    // No token is fine, and so is an expired one; a bad or terminated one is refused.
    let caller = state.service.environment_caller(token.0.as_deref()).await?;
    let config = &state.config;
    let payload = json!({ "email": "string", "password": "string", "remember_me": "bool" });
    let mut body = json!({
        "authentication": {
            "admin": { "path": "system/admin/session", "verb": "POST", "payload": payload },
            "user": { "path": "user/session", "verb": "POST", "payload": payload },
            "oauth": [],
            "adldap": [],
            "saml": [],
            "allow_open_registration": config.allow_open_registration,
            "open_reg_email_service_id": null,
            "allow_forever_sessions": config.allow_forever_sessions,
            "login_attribute": config.login_attribute.as_str(),
            "jwt_ttl_seconds": config.jwt_ttl.as_secs(),
            "jwt_refresh_ttl_seconds": config.jwt_refresh_ttl.as_secs(),
            "refresh_reuse_grace_seconds": config.refresh_reuse_grace.as_secs(),
            "session_idle_ttl_seconds": config.session_idle_ttl.map(|d| d.as_secs()),
        },
        "apps": state.service.launchpad_apps(caller.as_ref().map(|c| &c.view.user)).await?,
    });
    if let Some(caller) = caller {
        let mut platform = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "is_hosted": false,
            "license": "OPEN SOURCE",
        });
        if caller.view.user.is_sys_admin {
            platform["git_revision"] = json!(env!("TENURE_GIT_REVISION"));
            platform["db_driver"] = json!(state.service.store().backend());
            platform["key_algorithm"] = json!(config.jwt_algorithm.name());
            platform["uptime_seconds"] = json!(state.started_at.elapsed().as_secs());
            platform["host"] = json!(state.host);
            // Effective settings, durations in seconds, secrets masked.
            platform["settings"] = config.public_settings();
        }
        body["platform"] = platform;
    }
    Ok(Json(body))
}
