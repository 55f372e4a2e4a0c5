//! Extractors that do the risky parsing once: the session token, the request body, the client.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::ApiError;
use crate::session::ClientInfo;

/// The session token, from (in DreamFactory's order) `Authorization: Bearer …`, the
/// `X-DreamFactory-Session-Token` header, or the `session_token` query parameter.
/// `None` when none is sent; an unreadable one is a 401.
#[derive(Debug, Clone)]
pub struct SessionToken(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for SessionToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        if let Some(value) = parts.headers.get(AUTHORIZATION) {
            let value = value
                .to_str()
                .map_err(|_| ApiError::invalid_token("Malformed token"))?;
            if let Some((scheme, token)) = value.split_once(' ') {
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
                    return Ok(Self(Some(token.trim().to_owned())));
                }
            }
        }
        if let Some(value) = parts.headers.get("x-dreamfactory-session-token") {
            let value = value
                .to_str()
                .map_err(|_| ApiError::invalid_token("Malformed token"))?;
            if !value.trim().is_empty() {
                return Ok(Self(Some(value.trim().to_owned())));
            }
        }
        let query = Query::parse(parts.uri.query())?;
        Ok(Self(query.get("session_token").map(str::to_owned)))
    }
}

/// The query string as name/value pairs; a malformed one is a 400.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        match query {
            None => Ok(Self::default()),
            Some(q) => serde_urlencoded::from_str(q)
                .map(Self)
                .map_err(|_| ApiError::bad_request("The query string is malformed.")),
        }
    }

    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// `true`, `1`, `yes` and `on` are true.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| {
            ["true", "1", "yes", "on"]
                .iter()
                .any(|t| v.eq_ignore_ascii_case(t))
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Self::parse(parts.uri.query())
    }
}

/// A request body in our error shape: JSON (whatever the content type says, as DreamFactory
/// is lenient), or a form when the content type is `application/x-www-form-urlencoded`. An
/// empty body is `{}`. Broken syntax is a 400, wrong types a 422, too large a 413.
pub struct ApiBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_form = is_form(req.headers());
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| ApiError::from_status(rejection.status()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return parse_json(b"{}");
        }
        if is_form && bytes.first() != Some(&b'{') {
            return serde_urlencoded::from_bytes(&bytes).map(Self).map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("The form body is invalid: {e}"),
                    serde_json::Value::Null,
                )
            });
        }
        parse_json(&bytes)
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<ApiBody<T>, ApiError> {
    // Every body is an object: serde would otherwise read a struct from a positional array.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The request body must be a JSON object.",
            serde_json::Value::Null,
        ));
    }
    serde_json::from_slice(bytes).map(ApiBody).map_err(|e| {
        use serde_json::error::Category;
        let status = match e.classify() {
            Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            Category::Syntax | Category::Eof | Category::Io => StatusCode::BAD_REQUEST,
        };
        ApiError::new(
            status,
            format!("The request body is not valid JSON for this endpoint: {e}"),
            serde_json::Value::Null,
        )
    })
}

/// Where the request came from: the device name (`X-Device-Model`, else the User-Agent), the
/// User-Agent and the peer address.
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let user_agent = header(USER_AGENT.as_str());
        let device = header("x-device-model").or_else(|| user_agent.clone());
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        Ok(Self(ClientInfo {
            device,
            user_agent,
            ip,
        }))
    }
}

/// Deserialises DreamFactory's loose booleans: `true`/`false`, numbers (non-zero is true),
/// and the strings `"true"`, `"1"`, `"yes"`, `"on"` (true) or `"false"`, `"0"`, `"no"`,
/// `"off"`, `""` (false). Unlike DreamFactory, the string `"false"` is false.
pub fn loose_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Loose {
        Bool(bool),
        Int(i64),
        Float(f64),
        Text(String),
    }
    use serde::de::Error;
    match Option::<Loose>::deserialize(deserializer)? {
        None => Ok(false),
        Some(Loose::Bool(b)) => Ok(b),
        Some(Loose::Int(n)) => Ok(n != 0),
        Some(Loose::Float(n)) => Ok(n != 0.0),
        Some(Loose::Text(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            _ => Err(D::Error::custom("expected a boolean")),
        },
    }
}
