//! DreamFactory's profile API: `GET/POST /api/v2/user/profile` and the same at
//! `/api/v2/system/admin/profile` for administrators (`PUT` and `PATCH` are `POST`, as in
//! DreamFactory). Token errors are the session routes' (an expired token gets 401 "Token has
//! expired: …", on which DreamFactory clients refresh).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiBody, SessionToken};
use super::{AppState, SuccessBody};
use crate::session::{Audience, ProfileRequest};
use crate::store::User;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/user/profile",
            get(user_profile)
                .post(user_update)
                .put(user_update_put)
                .patch(user_update_patch),
        )
        .route(
            "/api/v2/system/admin/profile",
            get(admin_profile)
                .post(admin_update)
                .put(admin_update_put)
                .patch(admin_update_patch),
        )
}

/// DreamFactory's profile (df-system `UserProfileResource`), in its key order. What tenure
/// does not keep is null (`security_question`, `default_app_id`) or `""` (`oauth_provider`,
/// `adldap`), as DreamFactory answers for a user without them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Profile {
    username: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    /// The display name.
    name: String,
    email: String,
    phone: Option<String>,
    /// Always null: tenure has no security questions.
    security_question: Option<String>,
    /// Always null: tenure keeps no default app per user.
    default_app_id: Option<i64>,
    /// Always `""`: tenure has no OAuth logins.
    oauth_provider: String,
    /// Always `""`: tenure has no LDAP logins.
    adldap: String,
}

impl From<User> for Profile {
    fn from(user: User) -> Self {
        Self {
            username: user.username,
            first_name: user.first_name,
            last_name: user.last_name,
            name: user.name,
            email: user.email,
            phone: user.phone,
            security_question: None,
            default_app_id: None,
            oauth_provider: String::new(),
            adldap: String::new(),
        }
    }
}

/// A profile change. Absent or null fields change nothing; `""` clears `first_name`,
/// `last_name` or `phone`. DreamFactory's other fields (`security_question`,
/// `security_answer`, `default_app_id`) are accepted and ignored.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ProfileBody {
    first_name: Option<String>,
    last_name: Option<String>,
    /// The display name; may not be empty.
    name: Option<String>,
    phone: Option<String>,
    /// A new address needs `old_password`. Folded as at registration.
    email: Option<String>,
    /// Accepted when it is the current username (usernames do not change here).
    username: Option<String>,
    /// The current password, required to change the email. Also accepted as
    /// `current_password`.
    #[serde(alias = "current_password")]
    #[schema(value_type = Option<String>)]
    old_password: Option<SecretString>,
}

impl From<ProfileBody> for ProfileRequest {
    fn from(body: ProfileBody) -> Self {
        Self {
            name: body.name,
            first_name: body.first_name,
            last_name: body.last_name,
            phone: body.phone,
            email: body.email,
            username: body.username,
            old_password: body.old_password,
        }
    }
}

/// Reads the body as DreamFactory does: an empty object is "No data supplied for operation.";
/// fields of the wrong type are a 422, as for every other body.
fn profile_body(raw: Map<String, Value>) -> Result<ProfileBody, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_request("No data supplied for operation."));
    }
    serde_json::from_value(Value::Object(raw)).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("The request body is not valid JSON for this endpoint: {e}"),
            Value::Null,
        )
    })
}

async fn show(
    state: AppState,
    audience: Audience,
    token: SessionToken,
) -> Result<Json<Profile>, ApiError> {
    let user = state.service.profile(token.0.as_deref(), audience).await?;
    Ok(Json(user.into()))
}

async fn update(
    state: AppState,
    audience: Audience,
    token: SessionToken,
    body: Result<ApiBody<Map<String, Value>>, ApiError>,
) -> Result<Json<SuccessBody>, ApiError> {
    let body = match body.and_then(|ApiBody(raw)| profile_body(raw)) {
        Ok(body) => body,
        Err(bad_body) => {
            // Token errors come first, as DreamFactory's AccessCheck raises them before the
            // resource reads the body: a client with an expired token learns to refresh.
            state.service.profile(token.0.as_deref(), audience).await?;
            return Err(bad_body);
        }
    };
    state
        .service
        .update_profile(token.0.as_deref(), audience, body.into())
        .await?;
    Ok(Json(SuccessBody::ok()))
}

#[utoipa::path(
    get,
    path = "/api/v2/user/profile",
    tag = "profile",
    summary = "The caller's profile (DreamFactory's fields)",
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 401, description = "No, an invalid, or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn user_profile(
    State(state): State<AppState>,
    token: SessionToken,
) -> Result<Json<Profile>, ApiError> {
    show(state, Audience::User, token).await
}

#[utoipa::path(
    get,
    path = "/api/v2/system/admin/profile",
    tag = "admin",
    summary = "An administrator's profile",
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 401, description = "No, an invalid, or an expired token, or not an administrator; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn admin_profile(
    State(state): State<AppState>,
    token: SessionToken,
) -> Result<Json<Profile>, ApiError> {
    show(state, Audience::Admin, token).await
}

#[utoipa::path(
    post,
    path = "/api/v2/user/profile",
    tag = "profile",
    summary = "Update the caller's profile (the email only with the current password)",
    request_body = ProfileBody,
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "Done", body = SuccessBody),
        (status = 400, description = "No data supplied, validation failed, the email is taken, or the current password is wrong", body = ErrorBody),
        (status = 401, description = "No, an invalid, or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB", body = ErrorBody),
        (status = 422, description = "A JSON body of the wrong shape", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn user_update(
    State(state): State<AppState>,
    token: SessionToken,
    body: Result<ApiBody<Map<String, Value>>, ApiError>,
) -> Result<Json<SuccessBody>, ApiError> {
    update(state, Audience::User, token, body).await
}

#[utoipa::path(
    post,
    path = "/api/v2/system/admin/profile",
    tag = "admin",
    summary = "Update an administrator's profile",
    request_body = ProfileBody,
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "Done", body = SuccessBody),
        (status = 400, description = "No data supplied, validation failed, the email is taken, or the current password is wrong", body = ErrorBody),
        (status = 401, description = "No, an invalid, or an expired token, or not an administrator; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB", body = ErrorBody),
        (status = 422, description = "A JSON body of the wrong shape", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn admin_update(
    State(state): State<AppState>,
    token: SessionToken,
    body: Result<ApiBody<Map<String, Value>>, ApiError>,
) -> Result<Json<SuccessBody>, ApiError> {
    update(state, Audience::Admin, token, body).await
}

/// DreamFactory's aliases of `POST`, documented once each.
macro_rules! update_alias {
    ($($name:ident: $method:ident $path:tt, $tag:tt, $audience:ident;)+) => {$(
        #[utoipa::path(
            $method,
            path = $path,
            tag = $tag,
            summary = "The same as POST (DreamFactory's alias)",
            request_body = ProfileBody,
            security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
            responses(
                (status = 200, description = "Done", body = SuccessBody),
                (status = 400, description = "No data supplied, validation failed, the email is taken, or the current password is wrong", body = ErrorBody),
                (status = 401, description = "No, an invalid, or an expired token (or, at the admin path, not an administrator); `context.reason` says which", body = ErrorBody),
                (status = 403, description = "The session was terminated (logged out, replaced by a refresh, revoked) or the user deactivated", body = ErrorBody),
                (status = 413, description = "A body over 64 KiB", body = ErrorBody),
                (status = 422, description = "A JSON body of the wrong shape", body = ErrorBody),
                (status = 429, description = "Too many wrong passwords", body = ErrorBody),
                (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
            )
        )]
        async fn $name(
            State(state): State<AppState>,
            token: SessionToken,
            body: Result<ApiBody<Map<String, Value>>, ApiError>,
        ) -> Result<Json<SuccessBody>, ApiError> {
            update(state, Audience::$audience, token, body).await
        }
    )+};
}

update_alias! {
    user_update_put: put "/api/v2/user/profile", "profile", User;
    user_update_patch: patch "/api/v2/user/profile", "profile", User;
    admin_update_put: put "/api/v2/system/admin/profile", "admin", Admin;
    admin_update_patch: patch "/api/v2/system/admin/profile", "admin", Admin;
}
