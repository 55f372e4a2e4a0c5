//! DreamFactory's apps and roles, the system resources tenure serves:
//! `GET/POST /api/v2/system/app`, `GET/PATCH/DELETE /api/v2/system/app/{id}` (`?regenerate=true`
//! issues a new API key), `GET/POST /api/v2/system/role`, `GET/PATCH/DELETE
//! /api/v2/system/role/{id}`. Lists are `{"resource": […]}`; creates take one record or
//! `{"resource": […]}` and answer `{"resource": [{"id": …}]}`. Callers are checked as
//! df-core's `AccessCheck` checks them (only administrators get through); other methods on
//! these paths answer as the system resources tenure does not serve.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Deserializer, Serialize};

use super::api_key::CallerApp;
use super::error::{ApiError, ErrorBody};
use super::extract::{loose_bool_opt, ApiBody, Query, SessionToken};
use super::session::df_datetime;
use super::system::unserved_method;
use super::AppState;
use crate::session::{AdminGrant, AppRequest, RoleRequest, SessionError};
use crate::store::{App, Role};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/system/app",
            get(list_apps).post(create_apps).fallback(unserved_method),
        )
        .route(
            "/api/v2/system/app/{id}",
            get(get_app)
                .patch(update_app)
                .delete(delete_app)
                .fallback(unserved_method),
        )
        .route(
            "/api/v2/system/role",
            get(list_roles).post(create_roles).fallback(unserved_method),
        )
        .route(
            "/api/v2/system/role/{id}",
            get(get_role)
                .patch(update_role)
                .delete(delete_role)
                .fallback(unserved_method),
        )
}

/// An app record, with DreamFactory's fields.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AppRecord {
    id: i64,
    name: String,
    description: Option<String>,
    is_active: bool,
    /// The app's default role: users without a role of their own for the app get it.
    role_id: Option<i64>,
    url: Option<String>,
    /// 64 lowercase hex characters; send it as `X-DreamFactory-API-Key` or `?api_key=`.
    api_key: String,
    created_date: String,
}

impl From<App> for AppRecord {
    fn from(app: App) -> Self {
        Self {
            id: app.id,
            name: app.name,
            description: app.description,
            is_active: app.is_active,
            role_id: app.role_id,
            url: app.url,
            api_key: app.api_key,
            created_date: df_datetime(app.created_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AppList {
    resource: Vec<AppRecord>,
}

/// A role record.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RoleRecord {
    id: i64,
    name: String,
    description: Option<String>,
    is_active: bool,
    created_date: String,
}

impl From<Role> for RoleRecord {
    fn from(role: Role) -> Self {
        Self {
            id: role.id,
            name: role.name,
            description: role.description,
            is_active: role.is_active,
            created_date: df_datetime(role.created_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RoleList {
    resource: Vec<RoleRecord>,
}

/// `{"id": …}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RecordId {
    id: i64,
}

/// `{"resource": [{"id": …}, …]}`: what a create answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedIds {
    resource: Vec<RecordId>,
}

/// Absent stays `None`; `null` is `Some(None)` (clears); a value is `Some(Some(v))`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// An app to create, or a change to one (absent fields change nothing; `null` clears
/// `description`, `role_id` and `url`). DreamFactory's other fields (`id`, `api_key`, `type`,
/// …) are ignored: the key changes only with `?regenerate=true`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct AppBody {
    /// Required to create; unique.
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    /// Default true; false ends every session of the app.
    #[serde(default, deserialize_with = "loose_bool_opt")]
    #[schema(value_type = Option<bool>)]
    is_active: Option<bool>,
    /// The app's default role; a change ends the sessions whose role it changes.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    role_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    url: Option<Option<String>>,
}

impl From<AppBody> for AppRequest {
    fn from(body: AppBody) -> Self {
        Self {
            name: body.name,
            description: body.description,
            is_active: body.is_active,
            role_id: body.role_id,
            url: body.url,
        }
    }
}

/// A role to create, or a change to one.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RoleBody {
    /// Required to create; unique. A rename ends the sessions holding the role (their tokens
    /// carry the old name).
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    /// Default true; false ends every session holding the role, and refuses logins that
    /// would get it (403 `Role is not active.`).
    #[serde(default, deserialize_with = "loose_bool_opt")]
    #[schema(value_type = Option<bool>)]
    is_active: Option<bool>,
}

impl From<RoleBody> for RoleRequest {
    fn from(body: RoleBody) -> Self {
        Self {
            name: body.name,
            description: body.description,
            is_active: body.is_active,
        }
    }
}

/// One record, or DreamFactory's `{"resource": [records]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Records<T> {
    Wrapped { resource: Vec<T> },
    One(T),
}

impl<T> Records<T> {
    fn into_vec(self) -> Result<Vec<T>, ApiError> {
        match self {
            Self::Wrapped { resource } if resource.is_empty() => {
                Err(ApiError::bad_request("No record(s) detected in request."))
            }
            Self::Wrapped { resource } => Ok(resource),
            Self::One(record) => Ok(vec![record]),
        }
    }
}

/// A record id from the path; anything that is not one names no record.
fn record_id(id: &str, missing: fn(String) -> SessionError) -> Result<i64, SessionError> {
    id.parse().map_err(|_| missing(id.to_owned()))
}

async fn grant(
    state: &AppState,
    token: &SessionToken,
    app: &CallerApp,
) -> Result<AdminGrant, ApiError> {
    Ok(state
        .service
        .system_grant(token.0.as_deref(), app.0.is_some())
        .await?)
}

#[utoipa::path(
    get,
    path = "/api/v2/system/app",
    tag = "apps",
    summary = "Every app, with its API key",
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The apps, by id", body = AppList),
        (status = 400, description = "df-core's AccessCheck: no credentials, or a non-administrator without an API key, or an API key without a session token", body = ErrorBody),
        (status = 401, description = "An invalid or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "`Role not found.` for a non-administrator with an API key, an inactive app's key, or the session was terminated", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn list_apps(
    State(state): State<AppState>,
    token: SessionToken,
    app: CallerApp,
) -> Result<Json<AppList>, ApiError> {
    let grant = grant(&state, &token, &app).await?;
    let apps = state.service.list_apps(&grant).await?;
    Ok(Json(AppList {
        resource: apps.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v2/system/app",
    tag = "apps",
    summary = "Create apps, each with a new API key",
    request_body(content = AppBody, description = "One app, or `{\"resource\": [apps]}`"),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The new apps' ids, in order", body = CreatedIds),
        (status = 400, description = "`Validation failed` (a missing or taken name, an unknown role; `context` names the fields), or df-core's AccessCheck refusals", body = ErrorBody),
        (status = 401, description = "An invalid or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "`Role not found.` for a non-administrator with an API key, an inactive app's key, or the session was terminated", body = ErrorBody),
        (status = 422, description = "A body of the wrong shape", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn create_apps(
    State(state): State<AppState>,
    token: SessionToken,
    app: CallerApp,
    ApiBody(body): ApiBody<Records<AppBody>>,
) -> Result<Json<CreatedIds>, ApiError> {
    let grant = grant(&state, &token, &app).await?;
    let mut created = Vec::new();
    for record in body.into_vec()? {
        let app = state.service.create_app(&grant, record.into()).await?;
        created.push(RecordId { id: app.id });
    }
    Ok(Json(CreatedIds { resource: created }))
}

#[utoipa::path(
    get,
    path = "/api/v2/system/app/{id}",
    tag = "apps",
    summary = "One app, with its API key",
    params(("id" = i64, Path)),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The app", body = AppRecord),
        (status = 400, description = "df-core's AccessCheck refusals", body = ErrorBody),
        (status = 401, description = "An invalid or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "`Role not found.` for a non-administrator with an API key, an inactive app's key, or the session was terminated", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn get_app(
    State(state): State<AppState>,
    token: SessionToken,
    app: CallerApp,
    Path(id): Path<String>,
) -> Result<Json<AppRecord>, ApiError> {
    let grant = grant(&state, &token, &app).await?;
    let id = record_id(&id, SessionError::AppNotFound)?;
    Ok(Json(state.service.get_app(&grant, id).await?.into()))
}

#[utoipa::path(
    patch,
    path = "/api/v2/system/app/{id}",
    tag = "apps",
    summary = "Change an app; deactivation ends its sessions; `regenerate=true` issues a new API key (the old one stops at once)",
    request_body = AppBody,
    params(
        ("id" = i64, Path),
        ("regenerate" = Option<bool>, Query, description = "true: a new API key")
    ),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The app as changed", body = AppRecord),
        (status = 400, description = "`Validation failed` (`context` names the fields), or df-core's AccessCheck refusals", body = ErrorBody),
        (status = 401, description = "An invalid or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "`Role not found.` for a non-administrator with an API key, an inactive app's key, or the session was terminated", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 422, description = "A body of the wrong shape", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn update_app(
    State(state): State<AppState>,
    token: SessionToken,
    app: CallerApp,
    query: Query,
    Path(id): Path<String>,
    ApiBody(body): ApiBody<AppBody>,
) -> Result<Json<AppRecord>, ApiError> {
    let grant = grant(&state, &token, &app).await?;
    let id = record_id(&id, SessionError::AppNotFound)?;
    let regenerate = query.flag("regenerate");
    let app = state
        .service
        .update_app(&grant, id, body.into(), regenerate)
        .await?;
    Ok(Json(app.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v2/system/app/{id}",
    tag = "apps",
    summary = "Delete an app, ending its sessions",
    params(("id" = i64, Path)),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "Deleted", body = RecordId),
        (status = 400, description = "df-core's AccessCheck refusals", body = ErrorBody),
        (status = 401, description = "An invalid or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "`Role not found.` for a non-administrator with an API key, an inactive app's key, or the session was terminated", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn delete_app(
    State(state): State<AppState>,
    token: SessionToken,
    app: CallerApp,
    Path(id): Path<String>,
) -> Result<Json<RecordId>, ApiError> {
    let grant = grant(&state, &token, &app).await?;
    let id = record_id(&id, SessionError::AppNotFound)?;
    state.service.delete_app(&grant, id).await?;
    Ok(Json(RecordId { id }))
}

#[utoipa::path(
    get,
    path = "/api/v2/system/role",
    tag = "apps",
    summary = "Every role",
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The roles, by id", body = RoleList),
        (status = 400, description = "df-core's AccessCheck refusals", body = ErrorBody),
        (status = 401, description = "An invalid or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "`Role not found.` for a non-administrator with an API key, an inactive app's key, or the session was terminated", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn list_roles(
    State(state): State<AppState>,
    token: SessionToken,
    app: CallerApp,
) -> Result<Json<RoleList>, ApiError> {
    let grant = grant(&state, &token, &app).await?;
    let roles = state.service.list_roles(&grant).await?;
    Ok(Json(RoleList {
        resource: roles.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v2/system/role",
    tag = "apps",
    summary = "Create roles",
    request_body(content = RoleBody, description = "One role, or `{\"resource\": [roles]}`"),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The new roles' ids, in order", body = CreatedIds),
        (status = 400, description = "`Validation failed` (a missing or taken name), or df-core's AccessCheck refusals", body = ErrorBody),
        (status = 401, description = "An invalid or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "`Role not found.` for a non-administrator with an API key, an inactive app's key, or the session was terminated", body = ErrorBody),
        (status = 422, description = "A body of the wrong shape", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn create_roles(
    State(state): State<AppState>,
    token: SessionToken,
    app: CallerApp,
    ApiBody(body): ApiBody<Records<RoleBody>>,
) -> Result<Json<CreatedIds>, ApiError> {
    let grant = grant(&state, &token, &app).await?;
    let mut created = Vec::new();
    for record in body.into_vec()? {
        let role = state.service.create_role(&grant, record.into()).await?;
        created.push(RecordId { id: role.id });
    }
    Ok(Json(CreatedIds { resource: created }))
}

#[utoipa::path(
    get,
    path = "/api/v2/system/role/{id}",
    tag = "apps",
    summary = "One role",
    params(("id" = i64, Path)),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The role", body = RoleRecord),
        (status = 400, description = "df-core's AccessCheck refusals", body = ErrorBody),
        (status = 401, description = "An invalid or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "`Role not found.` for a non-administrator with an API key, an inactive app's key, or the session was terminated", body = ErrorBody),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn get_role(
    State(state): State<AppState>,
    token: SessionToken,
    app: CallerApp,
    Path(id): Path<String>,
) -> Result<Json<RoleRecord>, ApiError> {
    let grant = grant(&state, &token, &app).await?;
    let id = record_id(&id, SessionError::RoleNotFound)?;
    Ok(Json(state.service.get_role(&grant, id).await?.into()))
}

#[utoipa::path(
    patch,
    path = "/api/v2/system/role/{id}",
    tag = "apps",
    summary = "Change a role; deactivating or renaming it ends the sessions holding it",
    request_body = RoleBody,
    params(("id" = i64, Path)),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "The role as changed", body = RoleRecord),
        (status = 400, description = "`Validation failed` (`context` names the fields), or df-core's AccessCheck refusals", body = ErrorBody),
        (status = 401, description = "An invalid or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "`Role not found.` for a non-administrator with an API key, an inactive app's key, or the session was terminated", body = ErrorBody),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 422, description = "A body of the wrong shape", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn update_role(
    State(state): State<AppState>,
    token: SessionToken,
    app: CallerApp,
    Path(id): Path<String>,
    ApiBody(body): ApiBody<RoleBody>,
) -> Result<Json<RoleRecord>, ApiError> {
    let grant = grant(&state, &token, &app).await?;
    let id = record_id(&id, SessionError::RoleNotFound)?;
    let role = state.service.update_role(&grant, id, body.into()).await?;
    Ok(Json(role.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v2/system/role/{id}",
    tag = "apps",
    summary = "Delete a role, ending the sessions holding it",
    params(("id" = i64, Path)),
    security(("bearer" = []), ("session_token_header" = []), ("session_token_query" = [])),
    responses(
        (status = 200, description = "Deleted", body = RecordId),
        (status = 400, description = "df-core's AccessCheck refusals", body = ErrorBody),
        (status = 401, description = "An invalid or an expired token; `context.reason` says which", body = ErrorBody),
        (status = 403, description = "`Role not found.` for a non-administrator with an API key, an inactive app's key, or the session was terminated", body = ErrorBody),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
    )
)]
async fn delete_role(
    State(state): State<AppState>,
    token: SessionToken,
    app: CallerApp,
    Path(id): Path<String>,
) -> Result<Json<RecordId>, ApiError> {
    let grant = grant(&state, &token, &app).await?;
    let id = record_id(&id, SessionError::RoleNotFound)?;
    state.service.delete_role(&grant, id).await?;
    Ok(Json(RecordId { id }))
}
