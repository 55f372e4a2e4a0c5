//! Administration: listing and revoking anyone's sessions, deactivating users. Reached by an
//! administrator's token over HTTP, or by the operator through the CLI.

use uuid::Uuid;

use super::{short, Audience, Reason, SessionError, SessionService};
use crate::clock::UnixTime;
use crate::store::{SessionFilter, SessionWithUser, User};

/// Largest page of the session listing.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Proof that the caller may administer sessions: an administrator's live session, or the
/// operator at the command line (who holds the database anyway).
#[derive(Debug, Clone)]
pub struct AdminGrant {
    /// The administrator's user id; `None` for the operator.
    pub(super) actor: Option<i64>,
}

impl AdminGrant {
    /// The operator running `tenure` commands.
    pub fn operator() -> Self {
        Self { actor: None }
    }
}

/// One page of sessions, newest first, and where the next page starts.
#[derive(Debug, Clone)]
pub struct SessionPage {
    pub sessions: Vec<SessionWithUser>,
    pub next: Option<(UnixTime, Uuid)>,
}

impl SessionService {
    /// The grant of the administrator whose token this is; 401 for anyone else.
    pub async fn authorize_admin(&self, token: Option<&str>) -> Result<AdminGrant, SessionError> {
        let me = self.current(token, Audience::Admin).await?;
        Ok(AdminGrant {
            actor: Some(me.view.user.id),
        })
    }

    /// Live sessions, newest first, filtered by user id or email, from `after` on.
    pub async fn admin_list_sessions(
        &self,
        _grant: &AdminGrant,
        user_id: Option<i64>,
        email: Option<&str>,
        after: Option<(UnixTime, Uuid)>,
        limit: u32,
    ) -> Result<SessionPage, SessionError> {
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let filter = SessionFilter {
            user_id,
            email: email.map(super::normalize_email),
            after,
            // One more than asked tells whether a next page exists.
            limit: limit + 1,
            live: self.liveness(self.clock.now()),
        };
        let mut sessions = self.store.list_sessions(&filter).await?;
        let next = if sessions.len() > limit as usize {
            sessions.truncate(limit as usize);
            sessions
                .last()
                .map(|last| (last.session.created_at, last.session.id))
        } else {
            None
        };
        Ok(SessionPage { sessions, next })
    }

    /// Revokes one session; 404 when there is no such live session.
    pub async fn admin_revoke_session(
        &self,
        grant: &AdminGrant,
        id: Uuid,
    ) -> Result<(), SessionError> {
        let now = self.clock.now();
        if !self
            .store
            .revoke_session(id, None, now, Reason::Revoked.as_str())
            .await?
        {
            return Err(SessionError::SessionNotFound);
        }
        tracing::info!(actor = ?grant.actor, session = %short(id), reason = "revoked", "session revoked");
        Ok(())
    }

    /// Revokes every session of a user; answers how many.
    pub async fn admin_revoke_user_sessions(
        &self,
        grant: &AdminGrant,
        user_id: i64,
    ) -> Result<u64, SessionError> {
        let now = self.clock.now();
        let ended = self
            .store
            .revoke_user_sessions(user_id, None, now, Reason::Revoked.as_str())
            .await?;
        tracing::info!(actor = ?grant.actor, user_id, ended, reason = "revoked", "user sessions revoked");
        Ok(ended)
    }

    /// Activates or deactivates a user. Deactivation ends all of the user's sessions at once
    /// and blocks logins until reactivation.
    pub async fn admin_set_user_active(
        &self,
        grant: &AdminGrant,
        user_id: i64,
        active: bool,
    ) -> Result<User, SessionError> {
        let now = self.clock.now();
        let user = self
            .store
            .set_user_active(user_id, active, now, Reason::UserInactive.as_str())
            .await?
            .ok_or(SessionError::UserNotFound)?;
        tracing::info!(actor = ?grant.actor, user_id, active, "user activation changed");
        Ok(user)
    }

    /// A user by id.
    pub async fn admin_user(
        &self,
        _grant: &AdminGrant,
        user_id: i64,
    ) -> Result<Option<User>, SessionError> {
        Ok(self.store.user_by_id(user_id).await?)
    }

    /// How many sessions are live right now (for the metrics gauge).
    pub async fn count_live_sessions(&self) -> Result<i64, SessionError> {
        Ok(self
            .store
            .count_live_sessions(&self.liveness(self.clock.now()))
            .await?)
    }

    /// A user by id or email, for the CLI.
    pub async fn find_user(&self, email: &str) -> Result<Option<User>, SessionError> {
        Ok(self
            .store
            .user_by_email(&super::normalize_email(email))
            .await?)
    }
}
