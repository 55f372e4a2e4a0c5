//! DreamFactory's API key on the wire: read from the `api_key` query parameter, then the
//! `X-DreamFactory-API-Key` header (DreamFactory's order; its body field is not read). Every
//! `/api/v2` request but the environment's passes [`guard`], which has the session service
//! resolve the key once: an unknown key is ignored (as in DreamFactory), an inactive app's key
//! is refused (403 `App is not active.`), and with `REQUIRE_API_KEY=true` a missing or unknown
//! key is refused (DreamFactory's 400). Handlers read the key's app with [`CallerApp`].

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::Query;
use super::AppState;
use crate::store::App;

/// The header DreamFactory clients send the key in.
pub const API_KEY_HEADER: &str = "x-dreamfactory-api-key";

/// The one `/api/v2` path open without a key even with `REQUIRE_API_KEY=true` (DreamFactory's
/// clients read it before they know a key), where a key is also never an error.
const ENVIRONMENT: &str = "/api/v2/system/environment";

/// The key a request sends, if any: the first non-blank of the query's `api_key` and the
/// header.
pub fn sent_key(query: Option<&str>, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let query = Query::parse(query)?;
    if let Some(key) = query
        .get("api_key")
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        return Ok(Some(key.to_owned()));
    }
    // A header that is not text cannot be anyone's key: it is unknown, not missing.
    Ok(headers.get(API_KEY_HEADER).and_then(|value| {
        let text = value.to_str().unwrap_or("?").trim();
        (!text.is_empty()).then(|| text.to_owned())
    }))
}

/// The app whose active API key the request sent; none when it sent none or an unknown one.
#[derive(Debug, Clone, Default)]
pub struct CallerApp(pub Option<App>);

impl<S: Send + Sync> FromRequestParts<S> for CallerApp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<CallerApp>()
            .cloned()
            .unwrap_or_default())
    }
}

/// Resolves the key of every `/api/v2` request but the environment's, refusing what the
/// session service refuses; the app goes to the handlers as [`CallerApp`].
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if !path.starts_with("/api/v2/") || path == ENVIRONMENT {
        return next.run(request).await;
    }
    let key = match sent_key(request.uri().query(), request.headers()) {
        Ok(key) => key,
        Err(err) => return err.into_response(),
    };
    match state.service.require_api_key(key.as_deref()).await {
        Ok(app) => {
            request.extensions_mut().insert(CallerApp(app));
            next.run(request).await
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}
