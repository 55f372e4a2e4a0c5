//! HTTP in, HTTP out, no policy: the application state, the router, and the one stack of
//! layers every request passes through.

mod account;
mod admin;
pub mod api_key;
mod apps;
mod environment;
pub mod error;
pub mod extract;
mod health;
mod introspect;
mod jwks;
pub mod metrics;
pub mod openapi;
mod profile;
mod refresh;
mod register;
pub mod session;
mod sessions;
mod system;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::header::{
    self, CACHE_CONTROL, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, Method};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::config::Config;
use crate::session::SessionService;
use error::ApiError;

/// `{"success": true}`, DreamFactory's answer to a logout, plus what a wider action did.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SuccessBody {
    pub success: bool,
    /// How many sessions ended (logout scopes others/global, bulk revocations, password change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<u64>,
    /// Registration with `?login=true`: the new session's token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
}

impl SuccessBody {
    pub fn ok() -> Self {
        Self {
            success: true,
            ended: None,
            session_token: None,
        }
    }

    pub fn ended(count: u64) -> Self {
        Self {
            ended: Some(count),
            ..Self::ok()
        }
    }
}

/// Largest accepted request body.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<SessionService>,
    /// This server's host name, reported as `host` in session answers.
    pub host: Arc<str>,
    pub started_at: Instant,
    /// The configuration (request timeout, trusted proxies, CORS origins, metrics address…).
    pub config: Arc<Config>,
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let timeout = state.config.request_timeout;
    let cors = cors_layer(&state.config.cors_allowed_origins);
    let metrics_here = state.config.metrics_addr.is_none();
    Router::new()
        .merge(if metrics_here {
            metrics::router()
        } else {
            Router::new()
        })
        .merge(session::router())
        .merge(sessions::router())
        .merge(admin::router())
        .merge(register::router())
        .merge(profile::router())
        .merge(apps::router())
        .merge(introspect::router())
        .merge(system::router())
        .merge(environment::router())
        .merge(health::router())
        .merge(openapi::router())
        .merge(jwks::router())
        .merge(account::router())
        .fallback(|| async { ApiError::from_status(StatusCode::NOT_FOUND) })
        // A request carrying the refresh cookie passes the CSRF checks before any handler; a
        // refresh credential is taken only where a refresh or logout is.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refresh::csrf_guard,
        ))
        .layer(middleware::from_fn(refresh::credential_only_at_refresh))
        // The API key of every `/api/v2` call but the environment's: an inactive app's is
        // refused, and with REQUIRE_API_KEY a missing or unknown one.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            api_key::guard,
        ))
        .with_state(state)
        // Inner layers first, each in its own `layer` call, which turns its answers back into
        // plain responses for the next.
        // Bodies above the limit are refused (413) before they are read.
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT_BYTES))
        // A stuck request answers 503 instead of holding the client forever.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(
            // Outermost first.
            ServiceBuilder::new()
                // A request id for every request (kept from `X-Request-Id` when sent).
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                // One span per request: method, route template and request id. Never the
                // URI (a token may ride in the query) nor any header value.
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        // One line per request at INFO: status and latency, in the span above.
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                // Requests by route and status, and their latency.
                .layer(middleware::from_fn(metrics::record))
                // Token answers must never be cached (the JWKS sets its own policy); browsers
                // must not sniff types or frame us.
                .layer(SetResponseHeaderLayer::if_not_present(
                    CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    X_FRAME_OPTIONS,
                    HeaderValue::from_static("DENY"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ))
                // CORS headers only ever go to an allowed origin.
                .layer(middleware::from_fn(strip_cors_for_other_origins))
                // Browser frontends on the configured origins (none: no CORS headers).
                .option_layer(cors)
                // Anything below that answers an error without our JSON body gets it here
                // (unknown routes, wrong methods, oversized bodies, timeouts), inside the
                // header and CORS layers above so the replacement carries their headers too.
                .layer(middleware::from_fn(json_errors)),
        )
}

/// CORS for exactly the configured origins, with credentials (cookies are not used, but
/// frontends that send `credentials: "include"` must not break), the headers DreamFactory
/// clients send, and the ones they read.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-dreamfactory-session-token"),
                HeaderName::from_static("x-dreamfactory-api-key"),
                HeaderName::from_static("x-device-model"),
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static(refresh::CSRF_HEADER),
                HeaderName::from_static(refresh::REFRESH_MODE_HEADER),
                HeaderName::from_static(refresh::CREDENTIAL_HEADER),
            ])
            .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), route, request_id)
}

/// tower-http's CORS layer adds `Access-Control-Allow-Credentials` and the preflight headers
/// whatever the origin; a response that does not allow the origin gets none of them.
async fn strip_cors_for_other_origins(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        for name in [
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::ACCESS_CONTROL_MAX_AGE,
        ] {
            headers.remove(name);
        }
    }
    response
}

/// Gives framework-made error responses (unknown route, wrong method, body too large,
/// timeout) DreamFactory's error shape.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let mut replaced = ApiError::from_status(status).into_response();
        if let Some(allow) = response.headers().get(axum::http::header::ALLOW) {
            replaced
                .headers_mut()
                .insert(axum::http::header::ALLOW, allow.clone());
        }
        return replaced;
    }
    response
}
