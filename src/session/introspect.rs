//! Token introspection (RFC 7662) for other services: whether a session token is good right
//! now, asked of the database, so a logout, revocation or rotation anywhere is seen at once
//! (no JWKS cache, no waiting out the token's lifetime).

use super::{Audience, SessionError, SessionService};
use crate::store::App;

/// What introspection tells about a token: everything for a good one, nothing but
/// `active: false` for anything else (never why).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten)]
    pub details: Option<IntrospectedToken>,
}

/// The claims of a good token and what its session holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct IntrospectedToken {
    pub iss: String,
    /// The user id as a string.
    pub sub: String,
    pub user_id: i64,
    /// The session id.
    #[schema(value_type = String)]
    pub sid: uuid::Uuid,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub forever: bool,
    /// The session's role (name), or null.
    pub role: Option<String>,
    pub role_id: Option<i64>,
    /// The name of the app whose API key the login sent, or null.
    pub app: Option<String>,
    pub app_id: Option<i64>,
}

impl Introspection {
    fn inactive() -> Self {
        Self {
            active: false,
            details: None,
        }
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
            details: Some(IntrospectedToken {
                iss: claims.iss,
                sub: claims.sub,
                user_id: claims.user_id,
                sid: claims.sid,
                jti: claims.jti,
                iat: claims.iat,
                exp: claims.exp,
                forever: claims.forever,
                role: view.session.role_name,
                role_id: view.session.role_id,
                app: app_name,
                app_id: view.session.app_id,
            }),
        })
    }
}
