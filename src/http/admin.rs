//! Administration over HTTP: `GET/DELETE /api/v2/system/sessions`,
//! `DELETE /api/v2/system/sessions/{id}`, `PATCH /api/v2/system/user/{id}`. Every route needs
//! an administrator's token.

use axum::extract::{Path, State};
use axum::routing::{delete, get, patch};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{loose_bool_opt, ApiBody, Query, SessionToken};
use super::session::df_datetime;
use super::AppState;
use crate::clock::UnixTime;
use crate::session::SessionError;
use crate::store::{SessionWithUser, User};

/// Page size when the caller names none.
const DEFAULT_PAGE_SIZE: u32 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v2/system/sessions", get(list).delete(revoke_user))
        .route("/api/v2/system/sessions/{id}", delete(revoke_one))
        .route("/api/v2/system/user/{id}", patch(update_user))
}

#[derive(Serialize)]
struct AdminSessionItem {
    id: Uuid,
    user_id: i64,
    email: String,
    device: Option<String>,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: String,
    last_seen_at: String,
    forever: bool,
}

impl From<SessionWithUser> for AdminSessionItem {
    fn from(view: SessionWithUser) -> Self {
        let s = view.session;
        Self {
            id: s.id,
            user_id: s.user_id,
            email: view.user.email,
            device: s.device,
            user_agent: s.user_agent,
            ip: s.ip,
            created_at: df_datetime(s.created_at),
            last_seen_at: df_datetime(s.last_seen_at),
            forever: s.forever,
        }
    }
}

/// `?user_id=&email=&limit=&cursor=` → `{"resource": [...], "next_cursor": "…" | null}`.
async fn list(
    State(state): State<AppState>,
    token: SessionToken,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let grant = state.service.authorize_admin(token.0.as_deref()).await?;
    let user_id = query.param::<i64>("user_id")?;
    let limit = query.param::<u32>("limit")?.unwrap_or(DEFAULT_PAGE_SIZE);
    let after = query.get("cursor").map(decode_cursor).transpose()?;
    let page = state
        .service
        .admin_list_sessions(&grant, user_id, query.get("email"), after, limit)
        .await?;
    let items: Vec<AdminSessionItem> = page.sessions.into_iter().map(Into::into).collect();
    Ok(Json(json!({
        "resource": items,
        "next_cursor": page.next.map(encode_cursor),
    })))
}

/// `DELETE /api/v2/system/sessions?user_id=N`: every session of one user.
async fn revoke_user(
    State(state): State<AppState>,
    token: SessionToken,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let grant = state.service.authorize_admin(token.0.as_deref()).await?;
    let user_id = query
        .param::<i64>("user_id")?
        .ok_or_else(|| ApiError::bad_request("The user_id parameter is required."))?;
    let ended = state
        .service
        .admin_revoke_user_sessions(&grant, user_id)
        .await?;
    Ok(Json(json!({ "success": true, "ended": ended })))
}

async fn revoke_one(
    State(state): State<AppState>,
    token: SessionToken,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let grant = state.service.authorize_admin(token.0.as_deref()).await?;
    let id = Uuid::parse_str(&id).map_err(|_| SessionError::SessionNotFound)?;
    state.service.admin_revoke_session(&grant, id).await?;
    Ok(Json(json!({ "success": true })))
}

#[derive(Deserialize)]
struct UserPatch {
    #[serde(default, deserialize_with = "loose_bool_opt")]
    is_active: Option<bool>,
}

#[derive(Serialize)]
struct UserItem {
    id: i64,
    email: String,
    username: Option<String>,
    name: String,
    first_name: Option<String>,
    last_name: Option<String>,
    is_sys_admin: bool,
    is_active: bool,
    last_login_date: Option<String>,
}

impl From<User> for UserItem {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            username: u.username,
            name: u.name,
            first_name: u.first_name,
            last_name: u.last_name,
            is_sys_admin: u.is_sys_admin,
            is_active: u.is_active,
            last_login_date: u.last_login_at.map(df_datetime),
        }
    }
}

/// `{"is_active": false}` deactivates (ending every session at once); `true` reactivates.
async fn update_user(
    State(state): State<AppState>,
    token: SessionToken,
    Path(id): Path<String>,
    ApiBody(body): ApiBody<UserPatch>,
) -> Result<Json<UserItem>, ApiError> {
    let grant = state.service.authorize_admin(token.0.as_deref()).await?;
    let id: i64 = id.parse().map_err(|_| SessionError::UserNotFound)?;
    let active = body
        .is_active
        .ok_or_else(|| ApiError::bad_request("Nothing to change: send is_active."))?;
    let user = state
        .service
        .admin_set_user_active(&grant, id, active)
        .await?;
    Ok(Json(user.into()))
}

fn encode_cursor((created_at, id): (UnixTime, Uuid)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

fn decode_cursor(cursor: &str) -> Result<(UnixTime, Uuid), ApiError> {
    let bad = || ApiError::bad_request("The cursor is not valid.");
    let text = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(bad)?;
    let (at, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        at.parse().map_err(|_| bad())?,
        Uuid::parse_str(id).map_err(|_| bad())?,
    ))
}
