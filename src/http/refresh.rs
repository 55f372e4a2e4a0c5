//! Refresh credentials on the wire (`X-Tenure-Refresh: body|cookie` at login): where a
//! credential is read from, the HttpOnly refresh cookie, and the two guards every request
//! passes: a credential sent anywhere but the session endpoints is refused (400
//! `refresh_token_not_allowed_here`), and a request carrying the cookie must pass the CSRF
//! checks (403 `csrf`). The rules of the credential itself live in the session service.

use axum::extract::{Request, State};
use axum::http::header::{COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use serde_json::json;

use super::error::ApiError;
use super::AppState;
use crate::config::Config;
use crate::session::{Audience, RefreshGrant, RefreshMode};

/// The login header that asks for a refresh credential.
pub const REFRESH_MODE_HEADER: &str = "x-tenure-refresh";
/// The header a body-mode credential is presented in.
pub const CREDENTIAL_HEADER: &str = "x-tenure-refresh-token";
/// The header every request carrying the refresh cookie must send (any value): a cross-site
/// form cannot send it, and cross-origin JavaScript needs a CORS preflight to.
pub const CSRF_HEADER: &str = "x-requested-with";

const USER_SESSION: &str = "/api/v2/user/session";
const ADMIN_SESSION: &str = "/api/v2/system/admin/session";

/// The refresh mode a login asks for: none without the header, 400 for an unknown value.
pub fn requested_mode(headers: &HeaderMap) -> Result<Option<RefreshMode>, ApiError> {
    let Some(value) = headers.get(REFRESH_MODE_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| RefreshMode::parse(v.trim()))
        .map(Some)
        .ok_or_else(|| ApiError::bad_request("X-Tenure-Refresh must be `body` or `cookie`."))
}

/// The cookie's name: `__Secure-` + `REFRESH_COOKIE_NAME`, without the prefix when
/// `COOKIE_SECURE=false`.
pub fn cookie_name(config: &Config) -> String {
    if config.cookie_secure {
        format!("__Secure-{}", config.refresh_cookie_name)
    } else {
        config.refresh_cookie_name.clone()
    }
}

/// The path the cookie is scoped to: the session endpoint of the login's audience.
fn cookie_path(audience: Audience) -> &'static str {
    match audience {
        Audience::User => USER_SESSION,
        Audience::Admin => ADMIN_SESSION,
    }
}

fn build_cookie(config: &Config, audience: Audience, value: String, max_age: i64) -> HeaderValue {
    let cookie = Cookie::build((cookie_name(config), value))
        .path(cookie_path(audience))
        .http_only(true)
        .secure(config.cookie_secure)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    // Names are validated at start-up and values are base64url, dots and digits.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` for a granted cookie-mode credential.
pub fn set_cookie(config: &Config, audience: Audience, grant: &RefreshGrant) -> HeaderValue {
    build_cookie(config, audience, grant.credential.clone(), grant.max_age)
}

/// `Set-Cookie` that removes the cookie: same name, path and attributes, `Max-Age=0`.
pub fn clear_cookie(config: &Config, audience: Audience) -> HeaderValue {
    build_cookie(config, audience, String::new(), 0)
}

/// The refresh cookie's value, when the request carries it.
pub fn cookie_value(config: &Config, headers: &HeaderMap) -> Option<String> {
    let name = cookie_name(config);
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// The body-mode credential from its header, when sent.
pub fn header_credential(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get(CREDENTIAL_HEADER) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|v| Some(v.trim().to_owned()).filter(|v| !v.is_empty()))
            .map_err(|_| ApiError::bad_request("The refresh credential is malformed.")),
    }
}

/// The body-mode credential from a JSON body's `refresh_token`, when sent. A body that is not
/// a JSON object is ignored (DreamFactory's refresh takes no body); a `refresh_token` that is
/// not a string is a 400.
pub fn body_credential(body: &[u8]) -> Result<Option<String>, ApiError> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) else {
        return Ok(None);
    };
    match fields.get("refresh_token") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(
            "refresh_token must be the string the login answered.",
        )),
    }
}

fn is_session_route(path: &str) -> bool {
    path == USER_SESSION || path == ADMIN_SESSION
}

/// Refuses a refresh credential sent anywhere but `PUT`/`DELETE` on the session endpoints
/// (drf-jwt-devices' rule): a credential in a URL or on another route is a mistake that would
/// leak it into logs and caches.
pub async fn credential_only_at_refresh(request: Request, next: Next) -> Response {
    let at_refresh = is_session_route(request.uri().path())
        && matches!(*request.method(), Method::PUT | Method::DELETE);
    let in_header = request.headers().contains_key(CREDENTIAL_HEADER);
    let in_query = request.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.split('=').next() == Some("refresh_token"))
    });
    if in_query || (in_header && !at_refresh) {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "A refresh credential is accepted only by PUT or DELETE on the session endpoint, \
             in the X-Tenure-Refresh-Token header or the body.",
            json!({ "reason": "refresh_token_not_allowed_here" }),
        )
        .into_response();
    }
    next.run(request).await
}

/// The CSRF checks of every request that carries the refresh cookie: it must send
/// `X-Requested-With`; a `Sec-Fetch-Site` other than `same-origin` or `same-site`, or an
/// `Origin` that is neither this service's nor one of `CORS_ALLOWED_ORIGINS`, is refused.
/// A refused request changes nothing: it never reaches a handler.
pub async fn csrf_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if cookie_value(&state.config, headers).is_some() {
        if let Err(why) = csrf_check(&state.config, headers) {
            tracing::warn!(why, "request with the refresh cookie refused (CSRF)");
            return ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Request refused: {why}."),
                json!({ "reason": "csrf" }),
            )
            .into_response();
        }
    }
    next.run(request).await
}

fn csrf_check(config: &Config, headers: &HeaderMap) -> Result<(), &'static str> {
    if !headers.contains_key(CSRF_HEADER) {
        return Err("a request carrying the refresh cookie must send X-Requested-With");
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin" | "same-site")) {
            return Err("the request comes from another site");
        }
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin
            .to_str()
            .map_err(|_| "the Origin header is malformed")?;
        let own = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| origin_host(origin) == Some(host));
        if !own && !config.cors_allowed_origins.iter().any(|o| o == origin) {
            return Err("the request comes from an origin that is not allowed");
        }
    }
    Ok(())
}

/// `host[:port]` of an origin (`scheme://host[:port]`).
fn origin_host(origin: &str) -> Option<&str> {
    origin.split_once("://").map(|(_, host)| host)
}

/// A request body read as bytes whatever it is (a refresh takes an optional JSON body).
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(request, state)
            .await
            .map(Self)
            .map_err(|_| ApiError::from_status(StatusCode::PAYLOAD_TOO_LARGE))
    }
}

/// The optional body of a refresh, as documented (read leniently by [`body_credential`]).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the OpenAPI document's description of the body, never built
pub struct RefreshBody {
    /// A body-mode refresh credential (the login's `refresh_token`).
    pub refresh_token: Option<String>,
}

/// Adds `Set-Cookie` to a response.
pub fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().append(SET_COOKIE, cookie);
    response
}
