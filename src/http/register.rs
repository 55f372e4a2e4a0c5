//! `POST /api/v2/user/register`: open registration, when `DF_ALLOW_OPEN_REGISTRATION=true`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiBody, Client, Query};
use super::{AppState, SuccessBody};
use crate::session::RegisterRequest;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v2/user/register", post(register))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RegisterBody {
    email: Option<String>,
    username: Option<String>,
    /// DreamFactory also accepts the password as `new_password`.
    /// Also accepted as `new_password`.
    #[serde(alias = "new_password")]
    #[schema(value_type = String)]
    password: Option<SecretString>,
    #[schema(value_type = Option<String>)]
    password_confirmation: Option<SecretString>,
    name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v2/user/register",
    tag = "session",
    summary = "Open registration (DF_ALLOW_OPEN_REGISTRATION=true)",
    request_body = RegisterBody,
    params(("login" = Option<bool>, Query, description = "also start an ordinary session")),
    responses(
        (status = 200, description = "Done", body = SuccessBody),
        (status = 400, description = "Validation failed", body = ErrorBody),
        (status = 403, description = "Open registration is off", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB", body = ErrorBody),
        (status = 422, description = "A JSON body of the wrong shape", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
/// `{"success": true}`, plus `session_token` with `?login=true`.
async fn register(
    State(state): State<AppState>,
    query: Query,
    client: Client,
    ApiBody(body): ApiBody<RegisterBody>,
) -> Result<Json<SuccessBody>, ApiError> {
    let request = RegisterRequest {
        email: body.email,
        username: body.username,
        password: body.password,
        password_confirmation: body.password_confirmation,
        name: body.name,
        first_name: body.first_name,
        last_name: body.last_name,
        is_sys_admin: false,
    };
    let session = state
        .service
        .register(request, query.flag("login"), client.0)
        .await?;
    Ok(Json(SuccessBody {
        session_token: session.map(|auth| auth.token),
        ..SuccessBody::ok()
    }))
}
