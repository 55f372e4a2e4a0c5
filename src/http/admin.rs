//! Administration over HTTP: `GET/DELETE /api/v2/system/sessions`,
//! `DELETE /api/v2/system/sessions/{id}`, `PATCH /api/v2/system/user/{id}` (activation, and the
//! user's role per app). Every route needs an administrator's token.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::routing::{delete, get, patch};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{ApiError, ErrorBody};
use super::extract::{loose_bool_opt, ApiBody, Query, SessionToken};
use super::session::df_datetime;
use super::{AppState, SuccessBody};
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

#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminSessionItem {
    id: Uuid,
    user_id: i64,
    email: String,
    device: Option<String>,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: String,
    last_seen_at: String,
    forever: bool,
    /// The app whose API key the login sent (null: none), and its name (null when it is gone).
    app_id: Option<i64>,
    app: Option<String>,
    /// The role the session holds (its name), or null.
    role: Option<String>,
}

impl AdminSessionItem {
    fn new(view: SessionWithUser, apps: &HashMap<i64, String>) -> Self {
        let s = view.session;
        Self {
            app: s.app_id.and_then(|id| apps.get(&id).cloned()),
            app_id: s.app_id,
            role: s.role_name,
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

/// One page of the session listing.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminSessionPage {
    resource: Vec<AdminSessionItem>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v2/system/sessions",
    operation_id = "admin_list_sessions",
    tag = "admin",
    summary = "Live sessions of everyone, newest first, paginated",
    params(("user_id" = Option<i64>, Query), ("email" = Option<String>, Query), ("limit" = Option<u32>, Query, description = "1 to 500, default 50"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "A page of sessions", body = AdminSessionPage),
        (status = 400, description = "A malformed request", body = ErrorBody),
        (status = 401, description = "No, an invalid, or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
/// `?user_id=&email=&limit=&cursor=` → `{"resource": [...], "next_cursor": "…" | null}`.
async fn list(
    State(state): State<AppState>,
    token: SessionToken,
    query: Query,
) -> Result<Json<AdminSessionPage>, ApiError> {
    let grant = state.service.authorize_admin(token.0.as_deref()).await?;
    let user_id = query.param::<i64>("user_id")?;
    let limit = query.param::<u32>("limit")?.unwrap_or(DEFAULT_PAGE_SIZE);
    let after = query.get("cursor").map(decode_cursor).transpose()?;
    let page = state
        .service
        .admin_list_sessions(&grant, user_id, query.get("email"), after, limit)
        .await?;
    let apps = if page.sessions.iter().any(|v| v.session.app_id.is_some()) {
        state.service.app_names().await?
    } else {
        HashMap::new()
    };
    let items: Vec<AdminSessionItem> = page
        .sessions
        .into_iter()
        .map(|view| AdminSessionItem::new(view, &apps))
        .collect();
    Ok(Json(AdminSessionPage {
        resource: items,
        next_cursor: page.next.map(encode_cursor),
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v2/system/sessions",
    tag = "admin",
    summary = "Revoke every session of a user",
    params(("user_id" = i64, Query)),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "Done", body = SuccessBody),
        (status = 400, description = "A malformed request", body = ErrorBody),
        (status = 401, description = "No, an invalid, or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
/// `DELETE /api/v2/system/sessions?user_id=N`: every session of one user.
async fn revoke_user(
    State(state): State<AppState>,
    token: SessionToken,
    query: Query,
) -> Result<Json<SuccessBody>, ApiError> {
    let grant = state.service.authorize_admin(token.0.as_deref()).await?;
    let user_id = query
        .param::<i64>("user_id")?
        .ok_or_else(|| ApiError::bad_request("The user_id parameter is required."))?;
    let ended = state
        .service
        .admin_revoke_user_sessions(&grant, user_id)
        .await?;
    Ok(Json(SuccessBody::ended(ended)))
}

#[utoipa::path(
    delete,
    path = "/api/v2/system/sessions/{id}",
    tag = "admin",
    summary = "Revoke one session",
    params(("id" = String, Path)),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "Done", body = SuccessBody),
        (status = 401, description = "No, an invalid, or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 404, description = "No such live session", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn revoke_one(
    State(state): State<AppState>,
    token: SessionToken,
    Path(id): Path<String>,
) -> Result<Json<SuccessBody>, ApiError> {
    let grant = state.service.authorize_admin(token.0.as_deref()).await?;
    let id = Uuid::parse_str(&id).map_err(|_| SessionError::SessionNotFound)?;
    state.service.admin_revoke_session(&grant, id).await?;
    Ok(Json(SuccessBody::ok()))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct UserPatch {
    #[serde(default, deserialize_with = "loose_bool_opt")]
    #[schema(value_type = bool)]
    is_active: Option<bool>,
    /// DreamFactory's user-to-app-to-role records: the user's role for each app named (a
    /// `role_id` of null removes it, and the app's default role applies again). The user's
    /// sessions of those apps whose role this changes end (`role_changed`).
    user_to_app_to_role_by_user_id: Option<Vec<UserAppRoleItem>>,
}

/// One of a user's app roles.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserAppRoleItem {
    /// The user; ignored in a request (the path names the user).
    #[serde(default, skip_deserializing)]
    user_id: i64,
    app_id: i64,
    role_id: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserItem {
    id: i64,
    email: String,
    username: Option<String>,
    name: String,
    first_name: Option<String>,
    last_name: Option<String>,
    is_sys_admin: bool,
    is_active: bool,
    last_login_date: Option<String>,
    /// The user's role for each app that has one for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_to_app_to_role_by_user_id: Option<Vec<UserAppRoleItem>>,
}

impl From<User> for UserItem {
    fn from(u: User) -> Self {
        Self {
            user_to_app_to_role_by_user_id: None,
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

#[utoipa::path(
    patch,
    path = "/api/v2/system/user/{id}",
    tag = "admin",
    summary = "Deactivate (ending every session) or reactivate a user; set their role per app",
    request_body = UserPatch,
    params(("id" = i64, Path)),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The user", body = UserItem),
        (status = 400, description = "A malformed request", body = ErrorBody),
        (status = 401, description = "No, an invalid, or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 422, description = "A JSON body of the wrong shape", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
/// `{"is_active": false}` deactivates (ending every session at once); `true` reactivates.
/// `{"user_to_app_to_role_by_user_id": [{"app_id": …, "role_id": …}]}` sets the user's role
/// per app (null removes it).
async fn update_user(
    State(state): State<AppState>,
    token: SessionToken,
    Path(id): Path<String>,
    ApiBody(body): ApiBody<UserPatch>,
) -> Result<Json<UserItem>, ApiError> {
    let grant = state.service.authorize_admin(token.0.as_deref()).await?;
    let id: i64 = id.parse().map_err(|_| SessionError::UserNotFound)?;
    if body.is_active.is_none() && body.user_to_app_to_role_by_user_id.is_none() {
        return Err(ApiError::bad_request(
            "Nothing to change: send is_active or user_to_app_to_role_by_user_id.",
        ));
    }
    let roles = match body.user_to_app_to_role_by_user_id {
        Some(items) => {
            let assignments: Vec<(i64, Option<i64>)> =
                items.iter().map(|i| (i.app_id, i.role_id)).collect();
            Some(
                state
                    .service
                    .set_user_roles(&grant, id, &assignments)
                    .await?,
            )
        }
        None => None,
    };
    let user = match body.is_active {
        Some(active) => {
            state
                .service
                .admin_set_user_active(&grant, id, active)
                .await?
        }
        None => state
            .service
            .admin_user(&grant, id)
            .await?
            .ok_or(SessionError::UserNotFound)?,
    };
    let mut item = UserItem::from(user);
    item.user_to_app_to_role_by_user_id = roles.map(|roles| {
        roles
            .into_iter()
            .map(|r| UserAppRoleItem {
                user_id: r.user_id,
                app_id: r.app_id,
                role_id: Some(r.role_id),
            })
            .collect()
    });
    Ok(Json(item))
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
