//! The OpenAPI 3.1 document, generated from the handlers' annotations and the body types, served
//! at `/api/v2/openapi.json`. A copy is checked in as `openapi.json`; a test fails when the two
//! drift (regenerate with `cargo run -- openapi > openapi.json`).

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    admin, apps, environment, error, health, introspect, jwks, metrics, profile, register, session,
    sessions, system,
};
use super::{AppState, SuccessBody};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tenure",
        description = "Forever sessions over the DreamFactory 2.x session API. Errors are \
            `{\"error\": {\"code\", \"context\", \"message\", \"status_code\"}}`; \
            `context.reason` names why a token or session was refused."
    ),
    paths(
        session::user_login,
        session::user_current,
        session::user_refresh,
        session::user_logout,
        session::admin_login,
        session::admin_current,
        session::admin_refresh,
        session::admin_logout,
        sessions::list,
        sessions::end,
        sessions::change_password,
        admin::list,
        admin::revoke_user,
        admin::revoke_one,
        admin::update_user,
        register::register,
        profile::user_profile,
        profile::user_update,
        profile::admin_profile,
        profile::admin_update,
        profile::user_update_put,
        profile::user_update_patch,
        profile::admin_update_put,
        profile::admin_update_patch,
        environment::environment,
        apps::list_apps,
        apps::create_apps,
        apps::get_app,
        apps::update_app,
        apps::delete_app,
        apps::list_roles,
        apps::create_roles,
        apps::get_role,
        apps::update_role,
        apps::delete_role,
        introspect::introspect,
        system::get_resource,
        system::post_resource,
        system::put_resource,
        system::patch_resource,
        system::delete_resource,
        system::get_record,
        system::post_record,
        system::put_record,
        system::patch_record,
        system::delete_record,
        jwks::jwks,
        health::live,
        health::ready,
        metrics::scrape,
        openapi,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail, SuccessBody)),
    modifiers(&TokenSources),
    tags(
        (name = "session", description = "DreamFactory's session API"),
        (name = "sessions", description = "The caller's own sessions and password"),
        (name = "profile", description = "DreamFactory's profile API"),
        (name = "admin", description = "System administrators only"),
        (name = "apps", description = "DreamFactory's apps (API keys) and roles; system administrators only"),
        (name = "keys", description = "Token verification for other services: the JWKS and introspection"),
        (name = "environment", description = "What clients and operators check"),
        (name = "system", description = "DreamFactory's system resources tenure does not serve"),
        (name = "health", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

/// The three places a session token may come from, in DreamFactory's order, and the two an
/// API key may.
struct TokenSources;

impl Modify for TokenSources {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_token_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
                "X-DreamFactory-Session-Token",
            ))),
        );
        components.add_security_scheme(
            "session_token_query",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("session_token"))),
        );
        // An app's API key, in DreamFactory's order: the query, then the header.
        components.add_security_scheme(
            "api_key_query",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("api_key"))),
        );
        components.add_security_scheme(
            "api_key_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-DreamFactory-API-Key"))),
        );
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v2/openapi.json", get(openapi))
}

/// This document.
#[utoipa::path(get, path = "/api/v2/openapi.json", tag = "health",
    summary = "The OpenAPI 3.1 document",
    responses((status = 200, description = "OpenAPI 3.1", body = Object)))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The document as pretty JSON, for `tenure openapi`.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
