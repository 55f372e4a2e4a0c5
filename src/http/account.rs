//! The account page at `/account`: sign in with the refresh cookie, see and end your sessions,
//! change your password. Plain HTML, CSS and JavaScript from `account/`, embedded in the binary
//! (no build step, no framework) and served under a Content-Security-Policy that allows only
//! this origin's script, style, images and fetches: no inline script or style, no framing, no
//! form posts (the page's forms are submitted by its script).
//!
//! Not API: these routes are left out of the OpenAPI document.

use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::AppState;

const INDEX_HTML: &str = include_str!("account/index.html");
const ACCOUNT_CSS: &str = include_str!("account/account.css");
const ACCOUNT_JS: &str = include_str!("account/account.js");
const ICON_SVG: &str = include_str!("account/icon.svg");

/// Everything the page may load comes from this origin; nothing may frame it, post a form from
/// it, or change its base URL.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; \
    frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(page))
        .route("/account/account.css", get(stylesheet))
        .route("/account/account.js", get(script))
        .route("/account/icon.svg", get(icon))
}

/// One embedded file with its type and the page's policy. `Cache-Control: no-store` comes from
/// the app's layers, so a new release is never mixed with an old cached script.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (
                HeaderName::from_static("content-security-policy"),
                CONTENT_SECURITY_POLICY,
            ),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                "same-origin",
            ),
        ],
        body,
    )
}

async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn stylesheet() -> impl IntoResponse {
    asset("text/css; charset=utf-8", ACCOUNT_CSS)
}

async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", ACCOUNT_JS)
}

async fn icon() -> impl IntoResponse {
    asset("image/svg+xml", ICON_SVG)
}
