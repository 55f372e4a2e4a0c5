//! Refresh: the atomic rotation, the grace for racers, and reuse detection.

use super::token::Claims;
use super::{short, Audience, Authenticated, Reason, SessionError, SessionService};
use crate::clock::{Seconds, UnixTime};
use crate::store::{Rotation, SessionWithUser};

/// How many times a refresh retries when the row changed between its rotation attempt and
/// the read that explains the failure (another replica rotated, then the state moved on).
const ROTATION_ATTEMPTS: usize = 3;

enum Verdict {
    Retry,
    Grace,
    Reuse,
    Refuse(SessionError),
}

/// What a refresh presents.
#[derive(Debug, Clone, Copy)]
pub enum RefreshBy<'a> {
    /// The access token (possibly expired): DreamFactory's flow, for sessions without a refresh
    /// mode.
    Token(Option<&'a str>),
    /// The session's refresh credential (body or cookie mode).
    Credential(&'a str),
}

/// The session and generation a refresh presents, however it was presented.
#[derive(Debug, Clone, Copy)]
struct Presented {
    sid: uuid::Uuid,
    gen: i64,
    /// The token's user; a credential names only its session.
    user_id: Option<i64>,
    by_credential: bool,
}

impl From<&Claims> for Presented {
    fn from(claims: &Claims) -> Self {
        Self {
            sid: claims.sid,
            gen: claims.gen,
            user_id: Some(claims.user_id),
            by_credential: false,
        }
    }
}

impl SessionService {
    /// Refreshes: the (possibly expired) token of a live session, or its refresh credential,
    /// gets its successor. Counts the outcome, and the reason of a refusal (`token_reuse` among
    /// them).
    pub async fn refresh(
        &self,
        by: RefreshBy<'_>,
        audience: Audience,
    ) -> Result<Authenticated, SessionError> {
        let result = self.attempt_refresh(by, audience).await;
        let (outcome, reason) = match &result {
            Ok(_) => ("success", ""),
            Err(SessionError::RefreshRefused { reason, .. }) => ("refused", reason.as_str()),
            Err(SessionError::NotAdmin) => ("refused", Reason::NotAdmin.as_str()),
            Err(_) => ("error", ""),
        };
        metrics::counter!("tenure_refreshes_total", "outcome" => outcome, "reason" => reason)
            .increment(1);
        result
    }

    /// The `(sid, gen)` a refresh credential stands for, or the refusal of a credential that is
    /// not one of ours.
    pub(super) fn verify_credential(
        &self,
        credential: &str,
    ) -> Result<(uuid::Uuid, i64), SessionError> {
        self.keys
            .verify_refresh_credential(credential)
            .ok_or(SessionError::refresh(
                Reason::InvalidToken,
                "The refresh credential is not valid.",
            ))
    }

    async fn attempt_refresh(
        &self,
        by: RefreshBy<'_>,
        audience: Audience,
    ) -> Result<Authenticated, SessionError> {
        let now = self.clock.now();
        let presented = match by {
            RefreshBy::Token(token) => {
                let token = token.ok_or(SessionError::refresh(
                    Reason::MissingToken,
                    "No session token was supplied.",
                ))?;
                // No bound on `iat`/`nbf` in the future here: a token we signed whose times are
                // ahead of this clock comes from a clock stepped back (or a replica further
                // ahead than `JWT_LEEWAY`), and refusing it would log its user out. The rotation
                // decides by `gen`, not by time, and the successor is dated by this clock.
                let claims =
                    self.keys
                        .verify(token, now, UnixTime::MAX)
                        .await
                        .map_err(|defect| SessionError::RefreshRefused {
                            reason: Reason::InvalidToken,
                            detail: defect.as_str(),
                        })?;
                Presented::from(&claims)
            }
            RefreshBy::Credential(credential) => {
                let (sid, gen) = self.verify_credential(credential)?;
                Presented {
                    sid,
                    gen,
                    user_id: None,
                    by_credential: true,
                }
            }
        };
        // A signed token or a genuine credential: a request that must not wait behind password
        // hashing.
        self.hasher.note_request();
        let rotation = Rotation {
            session_id: presented.sid,
            expected_gen: presented.gen,
            now,
            idle_cutoff: self.idle_cutoff(now),
            require_admin: audience == Audience::Admin,
            by_credential: presented.by_credential,
        };
        for _ in 0..ROTATION_ATTEMPTS {
            if let Some(view) = self.store.rotate_session(&rotation).await? {
                tracing::debug!(session = %short(view.session.id), gen = view.session.gen, "refresh");
                return self.issue(view);
            }
            // The rotation's conditions failed: read the row once to tell the caller why.
            let Some(view) = self.store.session_with_user(presented.sid, None).await? else {
                return Err(SessionError::refresh(
                    Reason::Revoked,
                    "The token has been blacklisted",
                ));
            };
            match self.explain_failed_rotation(&presented, &view, now, audience) {
                Verdict::Retry => continue,
                Verdict::Grace => {
                    tracing::debug!(session = %short(view.session.id), "refresh within grace");
                    return self.issue(view);
                }
                Verdict::Reuse => return Err(self.revoke_for_reuse(&presented, now).await?),
                Verdict::Refuse(err) => return Err(err),
            }
        }
        Err(SessionError::Contended)
    }

    /// Why the atomic rotation did not happen, read from the row as it is now.
    fn explain_failed_rotation(
        &self,
        claims: &Presented,
        view: &SessionWithUser,
        now: UnixTime,
        audience: Audience,
    ) -> Verdict {
        let (session, user) = (&view.session, &view.user);
        if claims.user_id.is_some_and(|id| id != user.id) {
            return Verdict::Refuse(SessionError::refresh(
                Reason::InvalidToken,
                "User verification failed.",
            ));
        }
        if session.revoked_at.is_some() {
            return Verdict::Refuse(SessionError::refresh(
                Reason::from_revoke_reason(session.revoke_reason.as_deref()),
                "The token has been blacklisted",
            ));
        }
        if !user.is_active {
            return Verdict::Refuse(SessionError::refresh(
                Reason::UserInactive,
                "User is not active.",
            ));
        }
        if audience == Audience::Admin && !user.is_sys_admin {
            return Verdict::Refuse(SessionError::NotAdmin);
        }
        // A session with a refresh credential refreshes only with it: a leaked access token
        // cannot mint new ones. (Checked before the generation: a stale access token is then
        // refused, not taken for a replay.)
        match (session.refresh_mode.is_some(), claims.by_credential) {
            (true, false) => {
                return Verdict::Refuse(SessionError::refresh(
                    Reason::RefreshCredentialRequired,
                    "This session refreshes only with its refresh credential.",
                ))
            }
            (false, true) => {
                return Verdict::Refuse(SessionError::refresh(
                    Reason::InvalidToken,
                    "The refresh credential is not valid.",
                ))
            }
            _ => {}
        }
        if claims.gen > session.gen {
            return Verdict::Refuse(SessionError::refresh(
                Reason::InvalidToken,
                "The token does not belong to this session.",
            ));
        }
        if claims.gen < session.gen {
            return if self.within_grace(claims.gen, session, now) {
                Verdict::Grace
            } else {
                Verdict::Reuse
            };
        }
        if session.refresh_until.is_some_and(|until| until < now) {
            return Verdict::Refuse(SessionError::refresh(
                Reason::RefreshWindowClosed,
                "Token has expired and can no longer be refreshed",
            ));
        }
        if self
            .config
            .session_idle_ttl
            .is_some_and(|ttl| session.last_seen_at < now - ttl.seconds())
        {
            return Verdict::Refuse(SessionError::refresh(
                Reason::IdleTimeout,
                "Session has been idle too long and can no longer be refreshed",
            ));
        }
        Verdict::Retry
    }

    /// Two parties hold the session: end it, count it, log it.
    async fn revoke_for_reuse(
        &self,
        claims: &Presented,
        now: UnixTime,
    ) -> Result<SessionError, SessionError> {
        self.store
            .revoke_session(claims.sid, None, now, Reason::TokenReuse.as_str())
            .await?;
        tracing::warn!(
            user_id = claims.user_id,
            session = %short(claims.sid),
            presented_gen = claims.gen,
            by_credential = claims.by_credential,
            reason = "token_reuse",
            "replaced token presented again: session revoked"
        );
        Ok(SessionError::refresh(
            Reason::TokenReuse,
            "The token has been blacklisted",
        ))
    }
}
