//! The caller's own sessions and password: `GET /api/v2/user/sessions`,
//! `DELETE /api/v2/user/sessions/{id}`, `POST /api/v2/user/password`.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiBody, SessionToken};
use super::session::df_datetime;
use super::{AppState, SuccessBody};
use crate::session::SessionError;
use crate::store::Session;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v2/user/sessions", get(list))
        .route("/api/v2/user/sessions/{id}", delete(end))
        .route("/api/v2/user/password", post(change_password))
}

/// One of the caller's sessions, as the device list shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionItem {
    id: Uuid,
    device: Option<String>,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: String,
    last_seen_at: String,
    forever: bool,
    current: bool,
    /// The app whose API key the login sent (null: none), and its name (null when it is gone).
    app_id: Option<i64>,
    app: Option<String>,
}

impl SessionItem {
    fn new(session: Session, current: Uuid, apps: &HashMap<i64, String>) -> Self {
        Self {
            app: session.app_id.and_then(|id| apps.get(&id).cloned()),
            app_id: session.app_id,
            current: session.id == current,
            id: session.id,
            device: session.device,
            user_agent: session.user_agent,
            ip: session.ip,
            created_at: df_datetime(session.created_at),
            last_seen_at: df_datetime(session.last_seen_at),
            forever: session.forever,
        }
    }
}

/// `{"resource": [...]}`, newest first (DreamFactory wraps lists in `resource`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionList {
    resource: Vec<SessionItem>,
}

#[utoipa::path(
    get,
    path = "/api/v2/user/sessions",
    operation_id = "list_my_sessions",
    tag = "sessions",
    summary = "The caller's live sessions, newest first",
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The sessions", body = SessionList),
        (status = 401, description = "No, an invalid, or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn list(
    State(state): State<AppState>,
    token: SessionToken,
) -> Result<Json<SessionList>, ApiError> {
    let (current, sessions) = state.service.my_sessions(token.0.as_deref()).await?;
    let apps = if sessions.iter().any(|s| s.app_id.is_some()) {
        state.service.app_names().await?
    } else {
        HashMap::new()
    };
    let items: Vec<SessionItem> = sessions
        .into_iter()
        .map(|s| SessionItem::new(s, current, &apps))
        .collect();
    Ok(Json(SessionList { resource: items }))
}

#[utoipa::path(
    delete,
    path = "/api/v2/user/sessions/{id}",
    operation_id = "end_my_session",
    tag = "sessions",
    summary = "End one of the caller's sessions",
    params(("id" = String, Path, description = "The session id")),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "Done", body = SuccessBody),
        (status = 401, description = "No, an invalid, or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 404, description = "Not a live session of the caller", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn end(
    State(state): State<AppState>,
    token: SessionToken,
    Path(id): Path<String>,
) -> Result<Json<SuccessBody>, ApiError> {
    // A malformed id names no session of the caller's: the same 404.
    let id = Uuid::parse_str(&id).map_err(|_| SessionError::SessionNotFound)?;
    state.service.end_my_session(token.0.as_deref(), id).await?;
    Ok(Json(SuccessBody::ok()))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PasswordBody {
    #[schema(value_type = String)]
    old_password: Option<SecretString>,
    #[schema(value_type = String)]
    new_password: Option<SecretString>,
}

#[utoipa::path(
    post,
    path = "/api/v2/user/password",
    tag = "sessions",
    summary = "Change the password; every other session ends",
    request_body = PasswordBody,
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "Done", body = SuccessBody),
        (status = 400, description = "Validation failed (old password wrong, new one too short)", body = ErrorBody),
        (status = 401, description = "No, an invalid, or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 422, description = "A JSON body of the wrong shape", body = ErrorBody),
        (status = 429, description = "Too many wrong old passwords", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
/// DreamFactory's password change: `{old_password, new_password}` → `{"success": true}`.
async fn change_password(
    State(state): State<AppState>,
    token: SessionToken,
    ApiBody(body): ApiBody<PasswordBody>,
) -> Result<Json<SuccessBody>, ApiError> {
    let ended = state
        .service
        .change_password(token.0.as_deref(), body.old_password, body.new_password)
        .await?;
    Ok(Json(SuccessBody::ended(ended)))
}
