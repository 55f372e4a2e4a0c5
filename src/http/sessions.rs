//! The caller's own sessions and password: `GET /api/v2/user/sessions`,
//! `DELETE /api/v2/user/sessions/{id}`, `POST /api/v2/user/password`.

use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{ApiBody, SessionToken};
use super::session::df_datetime;
use super::AppState;
use crate::session::SessionError;
use crate::store::Session;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v2/user/sessions", get(list))
        .route("/api/v2/user/sessions/{id}", delete(end))
        .route("/api/v2/user/password", post(change_password))
}

/// One of the caller's sessions, as the device list shows it.
#[derive(Serialize)]
struct SessionItem {
    id: Uuid,
    device: Option<String>,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: String,
    last_seen_at: String,
    forever: bool,
    current: bool,
}

impl SessionItem {
    fn new(session: Session, current: Uuid) -> Self {
        Self {
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
async fn list(State(state): State<AppState>, token: SessionToken) -> Result<Json<Value>, ApiError> {
    let (current, sessions) = state.service.my_sessions(token.0.as_deref()).await?;
    let items: Vec<SessionItem> = sessions
        .into_iter()
        .map(|s| SessionItem::new(s, current))
        .collect();
    Ok(Json(json!({ "resource": items })))
}

async fn end(
    State(state): State<AppState>,
    token: SessionToken,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    // A malformed id names no session of the caller's: the same 404.
    let id = Uuid::parse_str(&id).map_err(|_| SessionError::SessionNotFound)?;
    state.service.end_my_session(token.0.as_deref(), id).await?;
    Ok(Json(json!({ "success": true })))
}

#[derive(Deserialize)]
struct PasswordBody {
    old_password: Option<SecretString>,
    new_password: Option<SecretString>,
}

/// DreamFactory's password change: `{old_password, new_password}` → `{"success": true}`.
async fn change_password(
    State(state): State<AppState>,
    token: SessionToken,
    ApiBody(body): ApiBody<PasswordBody>,
) -> Result<Json<Value>, ApiError> {
    let ended = state
        .service
        .change_password(token.0.as_deref(), body.old_password, body.new_password)
        .await?;
    Ok(Json(json!({ "success": true, "ended": ended })))
}
