//! `GET /.well-known/jwks.json`: the public keys any service needs to verify session tokens.

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys",
    summary = "Public signing keys (Ed25519) as a JWK set",
    responses((status = 200, description = "A JWK set; cacheable for JWKS_CACHE_TTL", body = Object))
)]
/// Every Ed25519 key that is about to sign, signs, or signed a token that may still be live.
/// Cacheable for `JWKS_CACHE_TTL`: a new key is published at least that long before it signs.
async fn jwks(State(state): State<AppState>) -> Response {
    let keys = state.service.keys();
    let body = keys.jwks(state.service.now());
    let mut response = Json(body).into_response();
    let cache = format!("public, max-age={}", keys.jwks_cache_ttl());
    if let Ok(value) = HeaderValue::from_str(&cache) {
        response.headers_mut().insert(CACHE_CONTROL, value);
    }
    response
}
