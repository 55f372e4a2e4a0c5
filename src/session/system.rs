//! DreamFactory's `system` service as tenure answers it: who reads the environment, and
//! df-core's `AccessCheck` for the system resources tenure does not serve.

use super::{AdminGrant, Audience, Authenticated, SessionError, SessionService};

/// Why df-core's `AccessCheck` refuses a request for a resource the caller has no role for,
/// in the order it checks. tenure keeps no service access rules, so only administrators get
/// past it to the system resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessRefusal {
    /// Neither a session token nor an API key was sent.
    NoCredentials,
    /// A non-administrator's token, without an API key.
    NoApiKey,
    /// An API key, without a session token.
    NoSessionToken,
    /// A non-administrator's token and an API key: no role grants access.
    RoleNotFound,
    /// `REQUIRE_API_KEY`: a key was sent, but no app has it (answered as a missing key).
    UnknownApiKey,
}

impl AccessRefusal {
    /// The `context.reason` of the answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoCredentials => "no_credentials",
            Self::NoApiKey => "api_key_required",
            Self::NoSessionToken => "session_token_required",
            Self::RoleNotFound => "role_not_found",
            Self::UnknownApiKey => "api_key_unknown",
        }
    }
}

impl SessionService {
    /// The caller of `GET /api/v2/system/environment`, which is open to everyone. A bad token
    /// and a terminated session get their errors, as in DreamFactory; but an expired token of
    /// a session that is otherwise good reads as no token (DreamFactory answers 401), so a
    /// client that reads the environment on start-up keeps its stored session and refreshes
    /// on its next call instead of logging its user out.
    pub async fn environment_caller(
        &self,
        token: Option<&str>,
    ) -> Result<Option<Authenticated>, SessionError> {
        match self.optional_caller(token).await {
            Err(SessionError::Expired) => Ok(None),
            other => other,
        }
    }

    /// df-core's `AccessCheck` for a system resource no role grants: token errors first (as
    /// everywhere), then the refusals of [`AccessRefusal`] in its order. `api_key` says whether
    /// the request sent an active app's key (an unknown key is no key, as in DreamFactory; an
    /// inactive app's was refused before). Answers the administrator who may go on.
    pub async fn system_administrator(
        &self,
        token: Option<&str>,
        api_key: bool,
    ) -> Result<Authenticated, SessionError> {
        let refusal = match token {
            None if api_key => AccessRefusal::NoSessionToken,
            None => AccessRefusal::NoCredentials,
            Some(_) => {
                let caller = self.current(token, Audience::User).await?;
                if caller.view.user.is_sys_admin {
                    return Ok(caller);
                }
                if api_key {
                    AccessRefusal::RoleNotFound
                } else {
                    AccessRefusal::NoApiKey
                }
            }
        };
        Err(SessionError::AccessRefused(refusal))
    }
}

impl SessionService {
    /// [`Self::system_administrator`] as a grant to administer apps and roles, which are
    /// DreamFactory system resources and so are refused as df-core's `AccessCheck` refuses.
    pub async fn system_grant(
        &self,
        token: Option<&str>,
        api_key: bool,
    ) -> Result<AdminGrant, SessionError> {
        let admin = self.system_administrator(token, api_key).await?;
        Ok(AdminGrant {
            actor: Some(admin.view.user.id),
        })
    }
}
