//! Token introspection (RFC 7662) for other services: whether a session token is good right
//! now, asked of the database, so a logout, revocation or rotation anywhere is seen at once
//! (no JWKS cache, no waiting out the token's lifetime).

use super::{Audience, SessionError, SessionService};
use crate::store::App;

/// What introspection tells about a token: everything for a good one, nothing but
/// `active: false` for anything else (never why). The fields besides `active` are present
/// exactly when it is true; `role`, `role_id`, `app` and `app_id` are then null when the session
/// has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The user id as a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    /// The session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub sid: Option<uuid::Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forever: Option<bool>,
    /// The session's role (its name).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub role: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub role_id: Option<Option<i64>>,
    /// The name of the app whose API key the login sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub app: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub app_id: Option<Option<i64>>,
}

impl Introspection {
    fn inactive() -> Self {
        Self::default()
    }
}

impl SessionService {
    /// Introspects `token` for a caller authenticated by an active app's API key (`app`) or an
    /// administrator's session token (`caller`); anyone else is refused. A token is active when
    /// it is ours, unexpired, of a live session and not replaced by a refresh (a replaced token
    /// is inactive even within the grace, which only refreshes and logouts get). Introspection
    /// does not count as use of the session. Only an outage is an error; every other way a
    /// token can be bad is `active: false`.
    pub async fn introspect(
        &self,
        app: Option<&App>,
        caller: Option<&str>,
        token: Option<&str>,
    ) -> Result<Introspection, SessionError> {
        if app.is_none() {
            match caller {
                None => return Err(SessionError::IntrospectionUnauthorized),
                Some(caller) => {
                    self.current(Some(caller), Audience::Admin).await?;
                }
            }
        }
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Introspection::inactive());
        };
        let (claims, view) = match self.authenticate_with(token, false, false).await {
            Ok(found) => found,
            Err(err @ (SessionError::Unavailable(_) | SessionError::Store(_))) => return Err(err),
            Err(_) => return Ok(Introspection::inactive()),
        };
        let app_name = match view.session.app_id {
            Some(id) => self.store.app(id).await?.map(|a| a.name),
            None => None,
        };
        Ok(Introspection {
            active: true,
            iss: Some(claims.iss),
            sub: Some(claims.sub),
            user_id: Some(claims.user_id),
            sid: Some(claims.sid),
            jti: Some(claims.jti),
            iat: Some(claims.iat),
            exp: Some(claims.exp),
            forever: Some(claims.forever),
            role: Some(view.session.role_name),
            role_id: Some(view.session.role_id),
            app: Some(app_name),
            app_id: Some(view.session.app_id),
        })
    }
}
