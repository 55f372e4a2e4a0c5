//! `/api/v2/user/session` and `/api/v2/system/admin/session`: log in, look, refresh, log out.
//! Handlers only translate HTTP; the rules live in `SessionService`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::api_key::CallerApp;
use super::error::{ApiError, ErrorBody};
use super::extract::{loose_bool, ApiBody, Client, Query, SessionToken};
use super::refresh::{
    body_credential, clear_cookie, cookie_value, header_credential, requested_mode, set_cookie,
    with_cookie, RawBody, RefreshBody,
};
use super::{AppState, SuccessBody};
use crate::clock::UnixTime;
use crate::session::{
    Audience, Authenticated, LoginRequest, LogoutBy, LogoutScope, RefreshBy, RefreshMode,
};

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
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    /// Required unless DF_LOGIN_ATTRIBUTE=username.
    email: Option<String>,
    /// Required when DF_LOGIN_ATTRIBUTE=username.
    username: Option<String>,
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
    /// A forever session when DF_ALLOW_FOREVER_SESSIONS=true. Also accepts 1/0 and
    /// "true"/"false"/"1"/"0"/"yes"/"no"/"on"/"off".
    #[serde(default, deserialize_with = "loose_bool")]
    #[schema(value_type = Option<bool>)]
    remember_me: bool,
}

/// DreamFactory's session object (`Session::getPublicInfo`), in its key order.
#[derive(Serialize, utoipa::ToSchema)]
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
    /// The session's role, when the login sent an app's API key that gave one (the user's
    /// role for the app, else the app's default role); also the token's `role` claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role_id: Option<i64>,
    /// The refresh credential, for a session in body mode (`X-Tenure-Refresh: body`) only:
    /// present it to `PUT` in `X-Tenure-Refresh-Token` or as `{"refresh_token": …}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

impl SessionInfo {
    pub fn new(auth: Authenticated, host: &str) -> Self {
        let refresh_token = auth
            .refresh
            .filter(|grant| grant.mode == RefreshMode::Body)
            .map(|grant| grant.credential);
        let user = auth.view.user;
        let session = auth.view.session;
        Self {
            refresh_token,
            role: session.role_name,
            role_id: session.role_id,
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
    let t = time::OffsetDateTime::from_unix_timestamp(at).unwrap_or_else(|_| {
        // Only a corrupt row holds a time outside years -9999..=9999; say so, and show the
        // nearest representable time rather than an empty string.
        tracing::warn!(unix_time = at, "a stored time is out of range");
        if at < 0 {
            time::PrimitiveDateTime::MIN.assume_utc()
        } else {
            time::PrimitiveDateTime::MAX.assume_utc()
        }
    });
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The answer to a login or refresh: the session, with the rotated cookie for a cookie-mode
/// session.
fn session_response(state: &AppState, audience: Audience, auth: Authenticated) -> Response {
    let cookie = auth
        .refresh
        .as_ref()
        .filter(|grant| grant.mode == RefreshMode::Cookie)
        .map(|grant| set_cookie(&state.config, audience, grant));
    let response = Json(SessionInfo::new(auth, &state.host)).into_response();
    match cookie {
        Some(cookie) => with_cookie(response, cookie),
        None => response,
    }
}

async fn login(
    state: AppState,
    audience: Audience,
    client: Client,
    app: CallerApp,
    headers: HeaderMap,
    body: LoginBody,
) -> Result<Response, ApiError> {
    let request = LoginRequest {
        email: body.email,
        username: body.username,
        password: body.password,
        remember_me: body.remember_me,
        client: client.0,
        refresh_mode: requested_mode(&headers)?,
        app: app.0,
    };
    let auth = state.service.login(request, audience).await?;
    Ok(session_response(&state, audience, auth))
}

async fn current(
    state: AppState,
    audience: Audience,
    token: SessionToken,
) -> Result<Json<SessionInfo>, ApiError> {
    let auth = state.service.current(token.0.as_deref(), audience).await?;
    Ok(Json(SessionInfo::new(auth, &state.host)))
}

/// A refresh presents, in this order: a credential in `X-Tenure-Refresh-Token`, one in the
/// body's `refresh_token`, the refresh cookie, or the access token (DreamFactory's flow). An
/// answer refusing the cookie clears it.
async fn refresh(
    state: AppState,
    audience: Audience,
    token: SessionToken,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, ApiError> {
    let body = body.0;
    let sent = match header_credential(&headers)? {
        Some(credential) => Some(credential),
        None => body_credential(&body)?,
    };
    let cookie = cookie_value(&state.config, &headers).filter(|_| sent.is_none());
    let by = match (&sent, &cookie) {
        (Some(credential), _) | (None, Some(credential)) => RefreshBy::Credential(credential),
        (None, None) => RefreshBy::Token(token.0.as_deref()),
    };
    match state.service.refresh(by, audience).await {
        Ok(auth) => Ok(session_response(&state, audience, auth)),
        Err(err) if cookie.is_some() => Ok(with_cookie(
            ApiError::from(err).into_response(),
            clear_cookie(&state.config, audience),
        )),
        Err(err) => Err(err.into()),
    }
}

/// `?scope=local|others|global` (default `local`, DreamFactory's behaviour). Presents the
/// access token when one is sent, else a credential in `X-Tenure-Refresh-Token`, else the
/// refresh cookie. Every answer clears the cookie, except a successful `scope=others`: the
/// caller's own session lives on, and so must its cookie.
async fn logout(
    state: AppState,
    audience: Audience,
    token: SessionToken,
    headers: HeaderMap,
    query: Query,
) -> Response {
    let clear = clear_cookie(&state.config, audience);
    let answer = async {
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
        let credential = match header_credential(&headers)? {
            Some(credential) => Some(credential),
            None => cookie_value(&state.config, &headers),
        };
        let by = match (token.0.as_deref(), &credential) {
            (Some(token), _) => LogoutBy::Token(Some(token)),
            (None, Some(credential)) => LogoutBy::Credential(credential),
            (None, None) => LogoutBy::Token(None),
        };
        let ended = state.service.logout(by, audience, scope).await?;
        // DreamFactory's exact answer for a plain logout; the wider scopes also say how many
        // ended.
        let body = Json(if scope == LogoutScope::Local {
            SuccessBody::ok()
        } else {
            SuccessBody::ended(ended)
        });
        Ok::<_, ApiError>((scope, body))
    };
    match answer.await {
        Ok((LogoutScope::Others, body)) => body.into_response(),
        Ok((_, body)) => with_cookie(body.into_response(), clear),
        Err(err) => with_cookie(err.into_response(), clear),
    }
}

// A login ignores any token sent with it, so the login handlers do not extract one.
#[utoipa::path(
    post,
    path = "/api/v2/user/session",
    tag = "session",
    summary = "Log in (remember_me: a forever session)",
    request_body = LoginBody,
    responses(
        (status = 200, description = "The session", body = SessionInfo),
        (status = 400, description = "A malformed request", body = ErrorBody),
        (status = 401, description = "Invalid credentials", body = ErrorBody),
        (status = 403, description = "`App is not active.` (the API key sent is an inactive app's) or `Role is not active.` (the role the app gives is inactive)", body = ErrorBody),
        (status = 409, description = "At a session cap (`MAX_SESSIONS_PER_USER`, `MAX_SESSIONS_PER_IP`, `MAX_SESSIONS`; `context.limit` names it) with SESSION_LIMIT_POLICY=reject", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB", body = ErrorBody),
        (status = 422, description = "A JSON body of the wrong shape", body = ErrorBody),
        (status = 429, description = "Too many failed logins; wait `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn user_login(
    State(state): State<AppState>,
    client: Client,
    app: CallerApp,
    headers: HeaderMap,
    ApiBody(body): ApiBody<LoginBody>,
) -> Result<Response, ApiError> {
    login(state, Audience::User, client, app, headers, body).await
}

#[utoipa::path(
    post,
    path = "/api/v2/system/admin/session",
    tag = "admin",
    summary = "Log in as a system administrator",
    request_body = LoginBody,
    responses(
        (status = 200, description = "The session", body = SessionInfo),
        (status = 400, description = "A malformed request", body = ErrorBody),
        (status = 401, description = "Invalid credentials", body = ErrorBody),
        (status = 403, description = "`App is not active.` (the API key sent is an inactive app's) or `Role is not active.` (the role the app gives is inactive)", body = ErrorBody),
        (status = 409, description = "At a session cap (`MAX_SESSIONS_PER_USER`, `MAX_SESSIONS_PER_IP`, `MAX_SESSIONS`; `context.limit` names it) with SESSION_LIMIT_POLICY=reject", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB", body = ErrorBody),
        (status = 422, description = "A JSON body of the wrong shape", body = ErrorBody),
        (status = 429, description = "Too many failed logins; wait `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn admin_login(
    State(state): State<AppState>,
    client: Client,
    app: CallerApp,
    headers: HeaderMap,
    ApiBody(body): ApiBody<LoginBody>,
) -> Result<Response, ApiError> {
    login(state, Audience::Admin, client, app, headers, body).await
}

#[utoipa::path(
    get,
    path = "/api/v2/user/session",
    tag = "session",
    summary = "The current session",
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The session", body = SessionInfo),
        (status = 401, description = "No, an invalid, or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn user_current(
    State(state): State<AppState>,
    token: SessionToken,
) -> Result<Json<SessionInfo>, ApiError> {
    current(state, Audience::User, token).await
}

#[utoipa::path(
    get,
    path = "/api/v2/system/admin/session",
    tag = "admin",
    summary = "An administrator's current session",
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The session", body = SessionInfo),
        (status = 401, description = "No, an invalid, or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn admin_current(
    State(state): State<AppState>,
    token: SessionToken,
) -> Result<Json<SessionInfo>, ApiError> {
    current(state, Audience::Admin, token).await
}

#[utoipa::path(
    put,
    path = "/api/v2/user/session",
    tag = "session",
    summary = "Refresh: an expired token of a live session, or its refresh credential, gets its successor",
    request_body(content = Option<RefreshBody>, description = "Optional: a body-mode refresh credential"),
    params(
        ("X-Tenure-Refresh-Token" = Option<String>, Header, description = "A body-mode refresh credential"),
    ),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The session", body = SessionInfo),
        (status = 400, description = "A `refresh_token` that is not a string, a malformed refresh credential header or query string", body = ErrorBody),
        (status = 401, description = "Refresh refused (`Token refresh failed. …`); `context.reason` says why", body = ErrorBody),
        (status = 403, description = "The API key sent is an inactive app's (`App is not active.`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn user_refresh(
    State(state): State<AppState>,
    token: SessionToken,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, ApiError> {
    refresh(state, Audience::User, token, headers, body).await
}

#[utoipa::path(
    put,
    path = "/api/v2/system/admin/session",
    tag = "admin",
    summary = "Refresh an administrator's token or refresh credential",
    request_body(content = Option<RefreshBody>, description = "Optional: a body-mode refresh credential"),
    params(
        ("X-Tenure-Refresh-Token" = Option<String>, Header, description = "A body-mode refresh credential"),
    ),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The session", body = SessionInfo),
        (status = 400, description = "A `refresh_token` that is not a string, a malformed refresh credential header or query string", body = ErrorBody),
        (status = 401, description = "Refresh refused (`Token refresh failed. …`); `context.reason` says why", body = ErrorBody),
        (status = 403, description = "The API key sent is an inactive app's (`App is not active.`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn admin_refresh(
    State(state): State<AppState>,
    token: SessionToken,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, ApiError> {
    refresh(state, Audience::Admin, token, headers, body).await
}

#[utoipa::path(
    delete,
    path = "/api/v2/user/session",
    tag = "session",
    summary = "Log out (this session, or others / all with `scope`)",
    params(("scope" = Option<String>, Query, description = "local (default), others or global")),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "Done", body = SuccessBody),
        (status = 400, description = "A malformed request", body = ErrorBody),
        (status = 401, description = "No, an invalid, or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn user_logout(
    State(state): State<AppState>,
    token: SessionToken,
    headers: HeaderMap,
    query: Query,
) -> Response {
    logout(state, Audience::User, token, headers, query).await
}

#[utoipa::path(
    delete,
    path = "/api/v2/system/admin/session",
    tag = "admin",
    summary = "Log out an administrator session",
    params(("scope" = Option<String>, Query, description = "local (default), others or global")),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "Done", body = SuccessBody),
        (status = 400, description = "A malformed request", body = ErrorBody),
        (status = 401, description = "No, an invalid, or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn admin_logout(
    State(state): State<AppState>,
    token: SessionToken,
    headers: HeaderMap,
    query: Query,
) -> Response {
    logout(state, Audience::Admin, token, headers, query).await
}
