//! Logging in, with login throttling shared by every replica through the database.

use secrecy::ExposeSecret;

use super::{
    has_forbidden_chars, normalize_email, normalize_username, short, Audience, Authenticated,
    LoginRequest, SessionError, SessionService, MAX_FIELD_CHARS,
};
use crate::clock::{Seconds, UnixTime};
use crate::config::LoginAttribute;
use crate::store::{LoginFailures, User};

/// The exponent of the backoff stops growing here (the delay is capped long before).
const MAX_BACKOFF_DOUBLINGS: i64 = 30;

/// The throttling counters a login attempt counts against.
pub(super) struct ThrottleKeys {
    /// `account:<login>`, when the login can be stored (no NUL, not over-long).
    account: Option<String>,
    /// `ip:<address>`, when the client address is known.
    ip: Option<String>,
}

impl ThrottleKeys {
    pub(super) fn new(login: &str, ip: Option<&str>) -> Self {
        let storable = !login.contains('\0') && login.chars().count() <= MAX_FIELD_CHARS;
        Self {
            account: storable.then(|| format!("account:{login}")),
            ip: ip.map(|ip| format!("ip:{ip}")),
        }
    }

    fn all(&self) -> Vec<String> {
        self.account.iter().chain(self.ip.iter()).cloned().collect()
    }
}

impl SessionService {
    /// Logs in with the configured login attribute and a password; counts the outcome.
    pub async fn login(
        &self,
        request: LoginRequest,
        audience: Audience,
    ) -> Result<Authenticated, SessionError> {
        let result = self.attempt_login(request, audience).await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(SessionError::InvalidCredentials) => "invalid_credentials",
            Err(SessionError::Throttled { .. }) => "throttled",
            Err(SessionError::SessionLimit(..)) => "session_limit",
            Err(SessionError::AppInactive | SessionError::RoleInactive) => "inactive_app_or_role",
            Err(SessionError::MissingField(_)) => "bad_request",
            Err(_) => "error",
        };
        metrics::counter!("tenure_logins_total", "outcome" => outcome).increment(1);
        result
    }

    async fn attempt_login(
        &self,
        request: LoginRequest,
        audience: Audience,
    ) -> Result<Authenticated, SessionError> {
        let identifier = match self.config.login_attribute {
            LoginAttribute::Email => request.email.as_deref().map(normalize_email),
            LoginAttribute::Username => request.username.as_deref().map(normalize_username),
        }
        .filter(|v| !v.is_empty())
        .ok_or(SessionError::MissingField(
            self.config.login_attribute.as_str(),
        ))?;
        let password = request
            .password
            .filter(|p| !p.expose_secret().is_empty())
            .ok_or(SessionError::MissingField("password"))?;

        let now = self.clock.now();
        let keys = ThrottleKeys::new(&identifier, request.client.ip.as_deref());
        // A throttled attempt is answered before any Argon2 work.
        let failures = self.check_throttle(&keys, now).await?;

        let user = self.login_user(&identifier).await?;
        // Unknown users verify against a dummy hash: the same work, the same answer. A matched
        // hash in another form than tenure's current one (an imported user's first login) comes
        // back with its Argon2id replacement, stored by the statement that records the login.
        let verified = self
            .hasher
            .verify_for_login(
                password.clone(),
                user.as_ref().map(|u| u.password_hash.clone()),
            )
            .await?;
        let user = match user {
            Some(user) if verified.matched && user.is_active => user,
            _ => {
                tracing::info!(outcome = "invalid_credentials", "login failed");
                self.record_failure(&keys, now).await?;
                return Err(SessionError::InvalidCredentials);
            }
        };
        // A success clears the account's failures (not the address's), when it has any: most
        // logins have none, and skip the write.
        if let Some(account) = keys.account.as_ref().filter(|a| failures.contains(a)) {
            self.store.clear_login_failures(account).await?;
        }
        if audience == Audience::Admin && !user.is_sys_admin {
            return Err(SessionError::InvalidCredentials);
        }

        let forever = request.remember_me && self.config.allow_forever_sessions;
        let upgraded = verified.upgraded.is_some();
        if upgraded {
            tracing::info!(
                user_id = user.id,
                "imported password hash upgraded to Argon2id"
            );
        }
        let started = self
            .start_session(
                &user,
                forever,
                request.client.clone(),
                request.refresh_mode,
                verified.upgraded,
                request.app.as_ref(),
            )
            .await;
        let view = match started {
            // Two first logins of one imported user at once: the other stored its upgrade first,
            // so this one's check of the hash it verified failed. Verify once more, against what
            // is stored now (a password changed meanwhile fails here as it should).
            Err(SessionError::InvalidCredentials) if upgraded => {
                let user = self.login_user(&identifier).await?;
                let stored = user.as_ref().map(|u| u.password_hash.clone());
                let again = self.hasher.verify_for_login(password, stored).await?;
                match user {
                    Some(user)
                        if again.matched
                            && user.is_active
                            && (audience == Audience::User || user.is_sys_admin) =>
                    {
                        self.start_session(
                            &user,
                            forever,
                            request.client,
                            request.refresh_mode,
                            again.upgraded,
                            request.app.as_ref(),
                        )
                        .await?
                    }
                    _ => return Err(SessionError::InvalidCredentials),
                }
            }
            other => other?,
        };
        tracing::info!(
            user_id = view.user.id,
            session = %short(view.session.id),
            forever,
            app_id = view.session.app_id,
            role_id = view.session.role_id,
            "login"
        );
        self.issue(view)
    }

    /// The user a login names, by the configured attribute.
    ///
    /// Identifiers that registration refuses cannot name a user: over-long ones, and those
    /// holding a control character (NUL, which no database text column can hold, among them) or
    /// an invisible one (zero-width, bidi override…). They get the unknown-user answer, after
    /// the same password work, so a refused email is indistinguishable from a wrong password.
    async fn login_user(&self, identifier: &str) -> Result<Option<User>, SessionError> {
        if identifier.chars().count() > MAX_FIELD_CHARS || has_forbidden_chars(identifier) {
            return Ok(None);
        }
        Ok(match self.config.login_attribute {
            LoginAttribute::Email => self.store.user_by_email(identifier).await?,
            LoginAttribute::Username => self.store.user_by_username(identifier).await?,
        })
    }

    /// Refuses the attempt (429) while the account's or the address's counter is in backoff;
    /// otherwise answers which of the keys have failures counted.
    pub(super) async fn check_throttle(
        &self,
        keys: &ThrottleKeys,
        now: UnixTime,
    ) -> Result<Vec<String>, SessionError> {
        let rows = self.store.login_failures(&keys.all()).await?;
        let wait = rows
            .iter()
            .filter_map(|row| self.backoff_remaining(row, now))
            .max();
        match wait {
            Some(retry_after) => {
                tracing::info!(outcome = "throttled", retry_after, "login throttled");
                Err(SessionError::Throttled { retry_after })
            }
            None => Ok(rows.into_iter().map(|row| row.key).collect()),
        }
    }

    /// Counts one failed attempt against every key.
    pub(super) async fn record_failure(
        &self,
        keys: &ThrottleKeys,
        now: UnixTime,
    ) -> Result<(), SessionError> {
        let window_cutoff = now - self.config.login_failure_window.seconds();
        for key in keys.all() {
            self.store
                .record_login_failure(&key, now, window_cutoff)
                .await?;
        }
        Ok(())
    }

    /// Seconds left in the backoff of one counter: none below the threshold; from it on, the
    /// base delay doubling with each further failure, up to the cap. Never permanent.
    fn backoff_remaining(&self, row: &LoginFailures, now: UnixTime) -> Option<i64> {
        let threshold = if row.key.starts_with("ip:") {
            i64::from(self.config.login_max_failures_per_ip)
        } else {
            i64::from(self.config.login_max_failures)
        };
        if row.failures < threshold {
            return None;
        }
        let doublings = (row.failures - threshold).min(MAX_BACKOFF_DOUBLINGS);
        let delay = self
            .config
            .login_backoff_base
            .seconds()
            .saturating_mul(1_i64 << doublings)
            .min(self.config.login_backoff_max.seconds());
        let remaining = row.last_failure_at + delay - now;
        (remaining > 0).then_some(remaining)
    }
}
