//! `POST /api/v2/system/introspect`: token introspection (RFC 7662) for other services that
//! must see a logout at once. Form-encoded (or JSON) `token=…`; the caller authenticates with
//! an active app's API key or an administrator's session token. The rules live in the session
//! service.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::api_key::CallerApp;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiBody, SessionToken};
use super::AppState;
use crate::session::Introspection;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v2/system/introspect", post(introspect))
}

/// RFC 7662's request.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct IntrospectBody {
    /// The session token to introspect.
    token: Option<String>,
    /// Accepted and ignored: tenure has one kind of token.
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v2/system/introspect",
    tag = "keys",
    summary = "Token introspection (RFC 7662): whether a session token is good right now, seen from the database",
    request_body(content = IntrospectBody, content_type = "application/x-www-form-urlencoded"),
    security(("api_key_query" = []), ("api_key_header" = []), ("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "`{\"active\": true, …}` for a good token (unexpired, its session live, not replaced by a refresh); `{\"active\": false}` for anything else, never saying why", body = Introspection),
        (status = 400, description = "A body that is not JSON or a form, or a malformed query string", body = ErrorBody),
        (status = 401, description = "Neither an active app's API key nor an administrator's token (`introspection_unauthorized`), or the caller's own token is invalid, expired or not an administrator's", body = ErrorBody),
        (status = 403, description = "An inactive app's API key, or the caller's session was terminated", body = ErrorBody),
        (status = 422, description = "A body of the wrong shape", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn introspect(
    State(state): State<AppState>,
    app: CallerApp,
    caller: SessionToken,
    ApiBody(body): ApiBody<IntrospectBody>,
) -> Result<Json<Introspection>, ApiError> {
    let answer = state
        .service
        .introspect(app.0.as_ref(), caller.0.as_deref(), body.token.as_deref())
        .await?;
    Ok(Json(answer))
}
