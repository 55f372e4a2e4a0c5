//! `/api/v2/user/session` and `/api/v2/system/admin/session`: log in, look, refresh, log out.
//! Handlers only translate HTTP; the rules live in `SessionService`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{loose_bool, ApiBody, Client, Query, SessionToken};
use super::AppState;
use crate::clock::UnixTime;
use crate::session::{Audience, Authenticated, LoginRequest, LogoutScope};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/user/session",
            post(user_login)
                .get(user_current)
                .put(user_refresh)
                .delete(user_logout),
        )
        .route(
            "/api/v2/system/admin/session",
            post(admin_login)
                .get(admin_current)
                .put(admin_refresh)
                .delete(admin_logout),
        )
}

/// The login body. Every field is optional here so that a missing one gets DreamFactory's
/// 400 "Login request is missing required …" rather than a parse error.
#[derive(Deserialize)]
struct LoginBody {
    email: Option<String>,
    username: Option<String>,
    password: Option<SecretString>,
    #[serde(default, deserialize_with = "loose_bool")]
    remember_me: bool,
}

/// DreamFactory's session object (`Session::getPublicInfo`), in its key order.
#[derive(Serialize)]
pub struct SessionInfo {
    session_token: String,
    /// The same value as `session_token` (DreamFactory keeps it for 1.x clients).
    session_id: String,
    id: i64,
    name: String,
    first_name: Option<String>,
    last_name: Option<String>,
    email: String,
    is_sys_admin: bool,
    last_login_date: Option<String>,
    host: String,
    /// The token's real expiry (DreamFactory prints now + TTL).
    token_expiry_date: String,
}

impl SessionInfo {
    pub fn new(auth: Authenticated, host: &str) -> Self {
        let user = auth.view.user;
        Self {
            session_id: auth.token.clone(),
            session_token: auth.token,
            id: user.id,
            name: user.name,
            first_name: user.first_name,
            last_name: user.last_name,
            email: user.email,
            is_sys_admin: user.is_sys_admin,
            last_login_date: user.last_login_at.map(df_datetime),
            host: host.to_owned(),
            token_expiry_date: df_datetime(auth.claims.exp),
        }
    }
}

/// DreamFactory's `Y-m-d H:i:s`, in UTC.
pub fn df_datetime(at: UnixTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

async fn login(
    state: AppState,
    audience: Audience,
    client: Client,
    body: LoginBody,
) -> Result<Json<SessionInfo>, ApiError> {
    let request = LoginRequest {
        email: body.email,
        username: body.username,
        password: body.password,
        remember_me: body.remember_me,
        client: client.0,
    };
    let auth = state.service.login(request, audience).await?;
    Ok(Json(SessionInfo::new(auth, &state.host)))
}

async fn current(
    state: AppState,
    audience: Audience,
    token: SessionToken,
) -> Result<Json<SessionInfo>, ApiError> {
    let auth = state.service.current(token.0.as_deref(), audience).await?;
    Ok(Json(SessionInfo::new(auth, &state.host)))
}

async fn refresh(
    state: AppState,
    audience: Audience,
    token: SessionToken,
) -> Result<Json<SessionInfo>, ApiError> {
    let auth = state.service.refresh(token.0.as_deref(), audience).await?;
    Ok(Json(SessionInfo::new(auth, &state.host)))
}

/// `?scope=local|others|global` (default `local`, DreamFactory's behaviour).
async fn logout(
    state: AppState,
    audience: Audience,
    token: SessionToken,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let scope = match query.get("scope") {
        None | Some("local") => LogoutScope::Local,
        Some("others") => LogoutScope::Others,
        Some("global") => LogoutScope::Global,
        Some(_) => {
            return Err(ApiError::bad_request(
                "The scope must be local, others or global.",
            ))
        }
    };
    let ended = state
        .service
        .logout(token.0.as_deref(), audience, scope)
        .await?;
    // DreamFactory's exact answer for a plain logout; the wider scopes also say how many ended.
    Ok(Json(if scope == LogoutScope::Local {
        json!({ "success": true })
    } else {
        json!({ "success": true, "ended": ended })
    }))
}

// A login ignores any token sent with it, so the login handlers do not extract one.
async fn user_login(
    State(state): State<AppState>,
    client: Client,
    ApiBody(body): ApiBody<LoginBody>,
) -> Result<Json<SessionInfo>, ApiError> {
    login(state, Audience::User, client, body).await
}

async fn admin_login(
    State(state): State<AppState>,
    client: Client,
    ApiBody(body): ApiBody<LoginBody>,
) -> Result<Json<SessionInfo>, ApiError> {
    login(state, Audience::Admin, client, body).await
}

async fn user_current(
    State(state): State<AppState>,
    token: SessionToken,
) -> Result<Json<SessionInfo>, ApiError> {
    current(state, Audience::User, token).await
}

async fn admin_current(
    State(state): State<AppState>,
    token: SessionToken,
) -> Result<Json<SessionInfo>, ApiError> {
    current(state, Audience::Admin, token).await
}

async fn user_refresh(
    State(state): State<AppState>,
    token: SessionToken,
) -> Result<Json<SessionInfo>, ApiError> {
    refresh(state, Audience::User, token).await
}

async fn admin_refresh(
    State(state): State<AppState>,
    token: SessionToken,
) -> Result<Json<SessionInfo>, ApiError> {
    refresh(state, Audience::Admin, token).await
}

async fn user_logout(
    State(state): State<AppState>,
    token: SessionToken,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    logout(state, Audience::User, token, query).await
}

async fn admin_logout(
    State(state): State<AppState>,
    token: SessionToken,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    logout(state, Audience::Admin, token, query).await
}
