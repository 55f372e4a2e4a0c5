//! `POST /api/v2/user/register`: open registration, when `DF_ALLOW_OPEN_REGISTRATION=true`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{ApiBody, Client, Query};
use super::AppState;
use crate::session::RegisterRequest;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v2/user/register", post(register))
}

#[derive(Deserialize)]
struct RegisterBody {
    email: Option<String>,
    username: Option<String>,
    /// DreamFactory also accepts the password as `new_password`.
    #[serde(alias = "new_password")]
    password: Option<SecretString>,
    password_confirmation: Option<SecretString>,
    name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

/// `{"success": true}`, plus `session_token` with `?login=true`.
async fn register(
    State(state): State<AppState>,
    query: Query,
    client: Client,
    ApiBody(body): ApiBody<RegisterBody>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(match session {
        Some(auth) => json!({ "success": true, "session_token": auth.token }),
        None => json!({ "success": true }),
    }))
}
