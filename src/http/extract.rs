//! Extractors that do the risky parsing once: the session token, the request body, the client.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::ApiError;
use super::AppState;
use crate::config::parse_loose_bool;
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

    /// The value of `name` parsed as `T`; a 400 naming the parameter when it does not parse.
    pub fn param<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(format!("The {name} parameter is not valid."))
                })
            })
            .transpose()
    }

    /// `true`, `1`, `yes` and `on` are true ([`parse_loose_bool`]); anything else is false.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).and_then(parse_loose_bool) == Some(true)
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
        parse_body(&bytes, is_form).map(Self)
    }
}

/// Reads a body as [`ApiBody`] does (public so the fuzz targets reach it).
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8], is_form: bool) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return parse_json(b"{}").map(|ApiBody(body)| body);
    }
    if is_form && bytes.first() != Some(&b'{') {
        return serde_urlencoded::from_bytes(bytes).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("The form body is invalid: {e}"),
                serde_json::Value::Null,
            )
        });
    }
    parse_json(bytes).map(|ApiBody(body)| body)
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

/// Where the request came from: the `X-Device-Model` header, the User-Agent and the client
/// address. The address is the socket peer's, unless the peer is one of `TRUSTED_PROXIES`:
/// then it is the nearest `X-Forwarded-For` hop that is not a trusted proxy.
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let ip = peer.map(|peer| client_ip(peer, &parts.headers, &state.config.trusted_proxies));
        Ok(Self(ClientInfo {
            device: header("x-device-model"),
            user_agent: header(USER_AGENT.as_str()),
            ip: ip.map(|ip| ip.to_string()),
        }))
    }
}

fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut nearest = peer;
    // Walk from the nearest hop outwards; stop at the first one we do not trust.
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => nearest = ip,
            Ok(ip) => return ip,
            Err(_) => return nearest,
        }
    }
    nearest
}

/// [`loose_bool`] for an optional field: absent or null stays `None`.
pub fn loose_bool_opt<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => loose_bool(v).map(Some).map_err(serde::de::Error::custom),
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
        Some(Loose::Text(s)) if s.trim().is_empty() => Ok(false),
        Some(Loose::Text(s)) => {
            parse_loose_bool(&s).ok_or_else(|| D::Error::custom("expected a boolean"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let headers = forwarded("203.0.113.9, 10.0.0.7");
        assert_eq!(
            client_ip(proxy, &headers, &trusted).to_string(),
            "203.0.113.9"
        );
        // An untrusted peer's header is ignored.
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_ip(stranger, &headers, &trusted), stranger);
        // A spoofed leftmost entry does not win over the nearest untrusted hop.
        let headers = forwarded("1.1.1.1, 203.0.113.9");
        assert_eq!(
            client_ip(proxy, &headers, &trusted).to_string(),
            "203.0.113.9"
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }
}
