//! DreamFactory's system resources that tenure does not serve (`lookup`, `service`, `cors`,
//! `config`, …, and anything else under `/api/v2/system/` that no other module routes, and
//! the methods tenure does not serve on `app` and `role`). They answer as df-core's `AccessCheck` does, never 404: DreamFactory's admin
//! interface reads `GET /api/v2/system/lookup` on every page load and replaces the page with
//! an error on a 403 or 404, while it ignores a 400. Past the check (an administrator),
//! `lookup` is an empty list and everything else a 400 saying tenure does not serve it.

use axum::extract::{RawPathParams, State};
use axum::http::{Method, StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use super::api_key::CallerApp;
use super::error::{ApiError, ErrorBody};
use super::extract::SessionToken;
use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/system/{resource}",
            get(get_resource)
                .post(post_resource)
                .put(put_resource)
                .patch(patch_resource)
                .delete(delete_resource),
        )
        .route(
            "/api/v2/system/{resource}/{id}",
            get(get_record)
                .post(post_record)
                .put(put_record)
                .patch(patch_record)
                .delete(delete_record),
        )
}

/// The resources of DreamFactory's `system` service. An administrator asking for one gets
/// "not currently supported"; for any other name, DreamFactory's "not found".
const DREAMFACTORY_RESOURCES: &[&str] = &[
    "admin",
    "app",
    "app_group",
    "cache",
    "config",
    "constant",
    "cors",
    "custom",
    "email_template",
    "environment",
    "event",
    "event_script",
    "import",
    "limit",
    "limit_cache",
    "lookup",
    "package",
    "role",
    "script_type",
    "service",
    "service_report",
    "service_type",
    "user",
];

/// `{"resource": []}`: DreamFactory's list wrapper, empty.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EmptyList {
    /// Always empty: tenure keeps no lookups.
    resource: Vec<Value>,
}

/// The answer to a method tenure does not serve on a system resource it serves others on
/// (`PUT /api/v2/system/app`, `POST /api/v2/system/role/3`, …): the same as for the resources
/// it does not serve at all.
pub async fn unserved_method(
    State(state): State<AppState>,
    method: Method,
    token: SessionToken,
    app: CallerApp,
    uri: Uri,
) -> Result<Json<EmptyList>, ApiError> {
    let rest = uri.path().trim_start_matches("/api/v2/system/");
    let (resource, id) = match rest.split_once('/') {
        Some((resource, id)) => (resource, Some(id)),
        None => (rest, None),
    };
    answer(state, method, token, app, resource, id).await
}

async fn answer(
    state: AppState,
    method: Method,
    token: SessionToken,
    app: CallerApp,
    resource: &str,
    id: Option<&str>,
) -> Result<Json<EmptyList>, ApiError> {
    state
        .service
        .system_administrator(token.0.as_deref(), app.0.is_some())
        .await?;
    let reading = method == Method::GET || method == Method::HEAD;
    match (resource, id) {
        ("lookup", None) if reading => return Ok(Json(EmptyList { resource: vec![] })),
        // tenure keeps no lookups, so none has this id.
        ("lookup", Some(id)) if reading => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Record with identifier '{id}' not found."),
                Value::Null,
            ))
        }
        _ => {}
    }
    let path = match id {
        Some(id) => format!("{resource}/{id}"),
        None => resource.to_owned(),
    };
    if !DREAMFACTORY_RESOURCES.contains(&resource) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Resource '{path}' not found for service 'system'."),
            Value::Null,
        ));
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        format!(
            "{method} requests for resource '{path}' are not currently supported by the \
             'system' service."
        ),
        Value::Null,
    ))
}

/// One documented operation per method and path, each answering through [`answer`].
macro_rules! unserved {
    ($(
        $name:ident: $method:ident $path:tt,
        params($($params:tt)*),
        responses($($responses:tt)*);
    )+) => {$(
        #[utoipa::path(
            $method,
            path = $path,
            tag = "system",
            summary = "A DreamFactory system resource tenure does not serve: DreamFactory's access check",
            params($($params)*),
            security(
                (),
                ("bearer" = []),
                ("session_token_header" = []),
                ("session_token_query" = [])
            ),
            responses(
                $($responses)*
                (status = 400, description = "df-core's AccessCheck: no session token and no API key, a non-administrator without an API key, or an API key without a session token; for an administrator, a resource tenure does not serve", body = ErrorBody),
                (status = 401, description = "An invalid or an expired token; `context.reason` says which", body = ErrorBody),
                (status = 403, description = "`Role not found.` for a non-administrator with an API key, or the session was terminated or the user deactivated", body = ErrorBody),
                (status = 404, description = "An administrator asked for something DreamFactory's system service does not have either", body = ErrorBody),
                (status = 503, description = "The database is unreachable; retry after `Retry-After`", body = ErrorBody)
            )
        )]
        async fn $name(
            State(state): State<AppState>,
            method: Method,
            token: SessionToken,
            app: CallerApp,
            // Not `Path`: utoipa reads `Path`'s type for the parameters, documented above.
            params: RawPathParams,
        ) -> Result<Json<EmptyList>, ApiError> {
            let param = |name| params.iter().find(|(key, _)| *key == name).map(|(_, v)| v);
            let resource = param("resource").unwrap_or_default();
            answer(state, method, token, app, resource, param("id")).await
        }
    )+};
}

unserved! {
    get_resource: get "/api/v2/system/{resource}",
        params(("resource" = String, Path, description = "`lookup`, `service`, `role`, …")),
        responses((status = 200, description = "An administrator's `lookup`: tenure keeps no lookups", body = EmptyList),);
    post_resource: post "/api/v2/system/{resource}",
        params(("resource" = String, Path, description = "`lookup`, `service`, `role`, …")),
        responses();
    put_resource: put "/api/v2/system/{resource}",
        params(("resource" = String, Path, description = "`lookup`, `service`, `role`, …")),
        responses();
    patch_resource: patch "/api/v2/system/{resource}",
        params(("resource" = String, Path, description = "`lookup`, `service`, `role`, …")),
        responses();
    delete_resource: delete "/api/v2/system/{resource}",
        params(("resource" = String, Path, description = "`lookup`, `service`, `role`, …")),
        responses();
    get_record: get "/api/v2/system/{resource}/{id}",
        params(
            ("resource" = String, Path, description = "`lookup`, `service`, `role`, …"),
            ("id" = String, Path, description = "A record of it")
        ),
        responses();
    post_record: post "/api/v2/system/{resource}/{id}",
        params(
            ("resource" = String, Path, description = "`lookup`, `service`, `role`, …"),
            ("id" = String, Path, description = "A record of it")
        ),
        responses();
    put_record: put "/api/v2/system/{resource}/{id}",
        params(
            ("resource" = String, Path, description = "`lookup`, `service`, `role`, …"),
            ("id" = String, Path, description = "A record of it")
        ),
        responses();
    patch_record: patch "/api/v2/system/{resource}/{id}",
        params(
            ("resource" = String, Path, description = "`lookup`, `service`, `role`, …"),
            ("id" = String, Path, description = "A record of it")
        ),
        responses();
    delete_record: delete "/api/v2/system/{resource}/{id}",
        params(
            ("resource" = String, Path, description = "`lookup`, `service`, `role`, …"),
            ("id" = String, Path, description = "A record of it")
        ),
        responses();
}
