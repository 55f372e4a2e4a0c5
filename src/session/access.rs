//! Using a session: the current session, logout (with scopes), and the caller's own sessions.

use uuid::Uuid;

use super::token::{self, Claims};
use super::{short, Audience, Authenticated, Reason, SessionError, SessionService};
use crate::clock::Seconds;
use crate::store::{Session, SessionWithUser, Touch};

/// Which sessions a logout ends (Supabase's scopes; `Local` is DreamFactory's behaviour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogoutScope {
    /// The caller's session.
    #[default]
    Local,
    /// Every other session of the user; the caller's stays.
    Others,
    /// Every session of the user, the caller's included.
    Global,
}

/// What a logout presents.
#[derive(Debug, Clone, Copy)]
pub enum LogoutBy<'a> {
    /// The access token (expired or not), if any.
    Token(Option<&'a str>),
    /// The session's refresh credential (body or cookie mode).
    Credential(&'a str),
}

impl SessionService {
    /// The caller's current session, for GET. Expired and terminated tokens are refused.
    /// Marks the session seen (at most one write per `LAST_SEEN_RESOLUTION`).
    pub async fn current(
        &self,
        token: Option<&str>,
        audience: Audience,
    ) -> Result<Authenticated, SessionError> {
        let token = token.ok_or(SessionError::NoSession)?;
        let (claims, view) = self.authenticate(token, false).await?;
        if audience == Audience::Admin && !view.user.is_sys_admin {
            return Err(SessionError::NotAdmin);
        }
        Ok(Authenticated {
            token: token.to_owned(),
            claims,
            view,
            refresh: None,
        })
    }

    /// The caller if a token was sent, for endpoints open to everyone that say more to
    /// authenticated callers. A token that was sent must be good.
    pub async fn optional_caller(
        &self,
        token: Option<&str>,
    ) -> Result<Option<Authenticated>, SessionError> {
        match token {
            None => Ok(None),
            some => self.current(some, Audience::User).await.map(Some),
        }
    }

    /// Logs out: the session ends at once (with `Others`, every other session of the user; with
    /// `Global`, all of them). An expired token of a live session is accepted. Without a token
    /// there is nothing to end, and the answer is success (as DreamFactory). Answers how many
    /// sessions ended.
    pub async fn logout(
        &self,
        by: LogoutBy<'_>,
        audience: Audience,
        scope: LogoutScope,
    ) -> Result<u64, SessionError> {
        let view = match by {
            LogoutBy::Token(None) => return Ok(0),
            LogoutBy::Token(Some(token)) => self.authenticate(token, true).await?.1,
            LogoutBy::Credential(credential) => self.authenticate_credential(credential).await?,
        };
        if audience == Audience::Admin && !view.user.is_sys_admin {
            return Err(SessionError::NotAdmin);
        }
        // The session as it stands: a token or credential one generation behind, within the
        // grace, ends it too (a logout racing another tab's refresh).
        let (sid, user_id, gen) = (view.session.id, view.user.id, view.session.gen);
        let now = self.clock.now();
        let reason = Reason::LoggedOut.as_str();
        let ended = match scope {
            LogoutScope::Local => u64::from(
                self.store
                    .revoke_session(sid, Some(gen), now, reason)
                    .await?,
            ),
            LogoutScope::Others => {
                self.store
                    .revoke_user_sessions(user_id, Some(sid), now, reason)
                    .await?
            }
            LogoutScope::Global => {
                self.store
                    .revoke_user_sessions(user_id, None, now, reason)
                    .await?
            }
        };
        if scope == LogoutScope::Local && ended == 0 {
            // Rotated or revoked between the read and the write.
            return Err(SessionError::Terminated(Reason::Rotated));
        }
        tracing::info!(
            user_id,
            session = %short(sid),
            scope = ?scope,
            ended,
            "logout"
        );
        Ok(ended)
    }

    /// The caller's live sessions, newest first, and which one is the caller's.
    pub async fn my_sessions(
        &self,
        token: Option<&str>,
    ) -> Result<(Uuid, Vec<Session>), SessionError> {
        let me = self.current(token, Audience::User).await?;
        let now = self.clock.now();
        let sessions = self
            .store
            .user_sessions(me.view.user.id, &self.liveness(now))
            .await?;
        Ok((me.claims.sid, sessions))
    }

    /// Ends one of the caller's own live sessions. Any other id, including another user's
    /// session, is "not found": nothing about other users is revealed.
    pub async fn end_my_session(&self, token: Option<&str>, id: Uuid) -> Result<(), SessionError> {
        let me = self.current(token, Audience::User).await?;
        let now = self.clock.now();
        let ended = self
            .store
            .revoke_user_session(
                id,
                me.view.user.id,
                &self.liveness(now),
                Reason::LoggedOut.as_str(),
            )
            .await?;
        if !ended {
            return Err(SessionError::SessionNotFound);
        }
        tracing::info!(user_id = me.view.user.id, session = %short(id), "session ended by its user");
        Ok(())
    }

    /// Checks a token against its session. `allow_expired` is for logout, which may end a
    /// live session with an expired token, or with the token its successor replaced within the
    /// grace. A good, unexpired token marks its session seen.
    pub(super) async fn authenticate(
        &self,
        token: &str,
        allow_expired: bool,
    ) -> Result<(Claims, SessionWithUser), SessionError> {
        self.authenticate_with(token, allow_expired, true).await
    }

    /// [`Self::authenticate`]; `touch` says whether a good token marks its session seen (not
    /// when another service asks about it: introspection is not use).
    pub(super) async fn authenticate_with(
        &self,
        token: &str,
        allow_expired: bool,
        touch: bool,
    ) -> Result<(Claims, SessionWithUser), SessionError> {
        let now = self.clock.now();
        let claims = self
            .keys
            .verify(token, now, self.config.jwt_leeway.seconds())
            .await
            .map_err(SessionError::InvalidToken)?;
        // A signed token (forgeries do not count): a request that must not wait behind
        // password hashing.
        self.hasher.note_request();
        let expired = claims.is_expired(now);
        let idle_cutoff = self.idle_cutoff(now);
        let touch = (touch && !expired).then_some(Touch {
            gen: claims.gen,
            now,
            older_than: now - self.last_seen_resolution(),
            idle_cutoff,
        });
        let Some(view) = self
            .store
            .session_with_user(claims.sid, touch.as_ref())
            .await?
        else {
            // Purged: long expired, or revoked long ago.
            return Err(if expired && !allow_expired {
                SessionError::Expired
            } else {
                SessionError::Terminated(Reason::Revoked)
            });
        };
        if view.user.id != claims.user_id {
            return Err(SessionError::InvalidToken(token::TokenDefect::UserMismatch));
        }
        // A terminated session says so even when the token has also expired: the client
        // must log in again, not try a refresh.
        if view.session.revoked_at.is_some() {
            return Err(SessionError::Terminated(Reason::from_revoke_reason(
                view.session.revoke_reason.as_deref(),
            )));
        }
        if view.session.gen != claims.gen
            && !(allow_expired && self.within_grace(claims.gen, &view.session, now))
        {
            return Err(SessionError::Terminated(Reason::Rotated));
        }
        if !view.user.is_active {
            return Err(SessionError::UserInactive);
        }
        // Idle-expired is over, even while its last token has not expired (an idle TTL shorter
        // than the token's): it neither refreshes nor answers.
        if idle_cutoff.is_some_and(|cutoff| view.session.last_seen_at < cutoff) {
            return Err(SessionError::Terminated(Reason::IdleTimeout));
        }
        if expired && !allow_expired {
            return Err(SessionError::Expired);
        }
        Ok((claims, view))
    }

    /// Checks a refresh credential against its session, for logout: the session must be live,
    /// at the credential's generation or one past it within the grace.
    async fn authenticate_credential(
        &self,
        credential: &str,
    ) -> Result<SessionWithUser, SessionError> {
        let (sid, gen) = self.verify_credential(credential)?;
        self.hasher.note_request();
        let now = self.clock.now();
        let Some(view) = self.store.session_with_user(sid, None).await? else {
            return Err(SessionError::Terminated(Reason::Revoked));
        };
        if view.session.refresh_mode.is_none() {
            return Err(SessionError::InvalidToken(token::TokenDefect::BadSignature));
        }
        if view.session.revoked_at.is_some() {
            return Err(SessionError::Terminated(Reason::from_revoke_reason(
                view.session.revoke_reason.as_deref(),
            )));
        }
        if view.session.gen != gen && !self.within_grace(gen, &view.session, now) {
            return Err(SessionError::Terminated(Reason::Rotated));
        }
        if !view.user.is_active {
            return Err(SessionError::UserInactive);
        }
        Ok(view)
    }
}
