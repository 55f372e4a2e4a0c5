//! Users: creation (CLI and open registration), password changes, the caller's own profile
//! (DreamFactory's `…/profile`), and the operator's user administration
//! (`tenure user list|set-password|activate|deactivate|delete`).

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};

use super::login::ThrottleKeys;
use super::{
    has_forbidden_chars, has_nul, looks_like_email, normalize_email, normalize_username, short,
    AdminGrant, Audience, Authenticated, ClientInfo, Reason, RegisterRequest, SessionError,
    SessionService, FORBIDDEN_CHARS_RULE, MAX_FIELD_CHARS, MAX_PASSWORD_CHARS,
};
use crate::config::LoginAttribute;
use crate::store::{NewUser, ProfileChange, StoreError, User, UserSummary};

/// Longest accepted phone number (DreamFactory's column holds 32 characters).
const MAX_PHONE_CHARS: usize = 32;

/// A change to the caller's profile, as the handler parsed it. `None` is "not sent" and
/// changes nothing; an empty (or all-blank) value clears `first_name`, `last_name` and
/// `phone`.
#[derive(Debug, Default)]
pub struct ProfileRequest {
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    /// A new address needs `old_password`; the current one (in any spelling that folds to
    /// it) changes nothing and needs none.
    pub email: Option<String>,
    /// Accepted only when it is the current username: usernames do not change here.
    pub username: Option<String>,
    /// The current password.
    pub old_password: Option<SecretString>,
}

impl SessionService {
    /// Creates a user (open registration and the CLI).
    pub async fn create_user(&self, request: RegisterRequest) -> Result<User, SessionError> {
        let mut errors: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        let email = request
            .email
            .as_deref()
            .map(normalize_email)
            .unwrap_or_default();
        if let Some(problem) = email_problem(&email) {
            errors.entry("email").or_default().push(problem);
        }
        let username = request
            .username
            .as_deref()
            .map(normalize_username)
            .filter(|u| !u.is_empty());
        if username
            .as_deref()
            .is_some_and(|u| u.chars().count() > MAX_FIELD_CHARS || u.contains(char::is_whitespace))
        {
            errors
                .entry("username")
                .or_default()
                .push("The username may not contain spaces or exceed 255 characters.".into());
        }
        if username.as_deref().is_some_and(has_forbidden_chars) {
            errors
                .entry("username")
                .or_default()
                .push(format!("The username {FORBIDDEN_CHARS_RULE}."));
        }
        if self.config.login_attribute == LoginAttribute::Username && username.is_none() {
            errors
                .entry("username")
                .or_default()
                .push("The username field is required.".into());
        }
        if let Some(problem) = self.password_problem(request.password.as_ref()) {
            errors.entry("password").or_default().push(problem);
        }
        if let (Some(p), Some(c)) = (&request.password, &request.password_confirmation) {
            if p.expose_secret() != c.expose_secret() {
                errors
                    .entry("password")
                    .or_default()
                    .push("The password confirmation does not match.".into());
            }
        }
        let clean = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let first_name = clean(request.first_name);
        let last_name = clean(request.last_name);
        let name = display_name(
            clean(request.name),
            first_name.as_deref(),
            last_name.as_deref(),
            &email,
        );
        for (field, value) in [
            ("name", Some(&name)),
            ("first_name", first_name.as_ref()),
            ("last_name", last_name.as_ref()),
        ] {
            if value.is_some_and(|v| v.chars().count() > MAX_FIELD_CHARS) {
                errors.entry(field).or_default().push(format!(
                    "The {field} may not be greater than 255 characters."
                ));
            }
        }
        // (A NUL in the username is refused above, with the other control characters.)
        for (field, value) in [
            ("name", Some(name.as_str())),
            ("first_name", first_name.as_deref()),
            ("last_name", last_name.as_deref()),
        ] {
            if has_nul(value) {
                errors
                    .entry(field)
                    .or_default()
                    .push(format!("The {field} may not contain NUL characters."));
            }
        }
        let Some(password) = request.password.filter(|_| errors.is_empty()) else {
            return Err(SessionError::Validation(errors));
        };

        let password_hash = self.hasher.hash(password).await?;
        let new = NewUser {
            email,
            username,
            password_hash,
            name,
            first_name,
            last_name,
            is_sys_admin: request.is_sys_admin,
            created_at: self.clock.now(),
        };
        match self.store.create_user(&new).await {
            Ok(user) => {
                tracing::info!(user_id = user.id, admin = user.is_sys_admin, "user created");
                Ok(user)
            }
            Err(StoreError::Conflict(constraint)) => {
                let field = if constraint == "users_username_key" {
                    "username"
                } else {
                    "email"
                };
                Err(SessionError::Validation(BTreeMap::from([(
                    field,
                    vec![format!("The {field} has already been taken.")],
                )])))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Open registration: creates the user and, when asked, an ordinary session.
    pub async fn register(
        &self,
        request: RegisterRequest,
        login: bool,
        client: ClientInfo,
    ) -> Result<Option<Authenticated>, SessionError> {
        if !self.config.allow_open_registration {
            return Err(SessionError::RegistrationDisabled);
        }
        let user = self
            .create_user(RegisterRequest {
                is_sys_admin: false,
                ..request
            })
            .await?;
        if !login {
            return Ok(None);
        }
        let view = self
            .start_session(&user, false, client, None, None, None)
            .await?;
        self.issue(view).map(Some)
    }

    /// Changes the caller's password (DreamFactory's `POST /user/password`): the old password
    /// must match, the new one must pass the policy; every other session of the user ends, the
    /// caller's stays. Wrong old passwords count against the account's login throttle.
    /// Answers how many sessions ended.
    pub async fn change_password(
        &self,
        token: Option<&str>,
        old_password: Option<SecretString>,
        new_password: Option<SecretString>,
    ) -> Result<u64, SessionError> {
        let me = self.current(token, Audience::User).await?;
        let mut errors: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        if old_password
            .as_ref()
            .is_none_or(|p| p.expose_secret().is_empty())
        {
            errors
                .entry("old_password")
                .or_default()
                .push("The old_password field is required.".into());
        }
        if let Some(problem) = self.password_problem(new_password.as_ref()) {
            errors.entry("new_password").or_default().push(problem);
        }
        let (Some(old_password), Some(new_password)) = (old_password, new_password) else {
            return Err(SessionError::Validation(errors));
        };
        if !errors.is_empty() {
            return Err(SessionError::Validation(errors));
        }

        let now = self.clock.now();
        let keys = ThrottleKeys::new(&me.view.user.email, None);
        self.check_throttle(&keys, now).await?;
        let matched = self
            .hasher
            .verify(old_password, Some(me.view.user.password_hash.clone()))
            .await?;
        if !matched {
            self.record_failure(&keys, now).await?;
            return Err(SessionError::WrongPassword);
        }
        let hash = self.hasher.hash(new_password).await?;
        let ended = self
            .store
            .change_password(
                me.view.user.id,
                &hash,
                me.claims.sid,
                now,
                Reason::PasswordChanged.as_str(),
            )
            .await?;
        tracing::info!(
            user_id = me.view.user.id,
            session = %short(me.claims.sid),
            ended,
            "password changed"
        );
        Ok(ended)
    }

    /// Users by id with their live sessions counted; only the one with `email` when given.
    pub async fn list_users(
        &self,
        _grant: &AdminGrant,
        email: Option<&str>,
    ) -> Result<Vec<UserSummary>, SessionError> {
        let email = email.map(normalize_email);
        let live = self.liveness(self.clock.now());
        Ok(self.store.list_users(email.as_deref(), &live).await?)
    }

    /// Whether any user exists (a server without one says how to create the first).
    pub async fn has_users(&self) -> Result<bool, SessionError> {
        Ok(self.store.has_users().await?)
    }

    /// Sets a user's password without the old one (the operator's reset). The password policy
    /// applies; every session of the user ends (reason `password_changed`), since the operator
    /// has no session of theirs to keep. Answers the user and how many sessions ended. The
    /// login throttle is left as it is: a reset does not excuse the failures that preceded it.
    pub async fn admin_set_password(
        &self,
        grant: &AdminGrant,
        email: &str,
        password: SecretString,
    ) -> Result<(User, u64), SessionError> {
        if let Some(problem) = self.password_problem(Some(&password)) {
            return Err(SessionError::Validation(BTreeMap::from([(
                "password",
                vec![problem],
            )])));
        }
        let user = self
            .find_user(email)
            .await?
            .ok_or(SessionError::UserNotFound)?;
        let hash = self.hasher.hash(password).await?;
        let now = self.clock.now();
        let ended = self
            .store
            .reset_password(user.id, &hash, now, Reason::PasswordChanged.as_str())
            .await?
            .ok_or(SessionError::UserNotFound)?;
        tracing::info!(actor = ?grant, user_id = user.id, ended, "password reset");
        Ok((user, ended))
    }

    /// Deletes a user and all of their sessions (their tokens then answer 403, as revoked).
    /// Answers the user as it was and how many of their sessions were not revoked yet.
    pub async fn admin_delete_user(
        &self,
        grant: &AdminGrant,
        email: &str,
    ) -> Result<(User, u64), SessionError> {
        let user = self
            .find_user(email)
            .await?
            .ok_or(SessionError::UserNotFound)?;
        let ended = self
            .store
            .delete_user(user.id)
            .await?
            .ok_or(SessionError::UserNotFound)?;
        tracing::info!(actor = ?grant, user_id = user.id, ended, "user deleted");
        Ok((user, ended))
    }

    /// The caller's own user, for DreamFactory's `GET …/profile`. Token errors are those of
    /// `GET …/session`; `Audience::Admin` accepts only administrators.
    pub async fn profile(
        &self,
        token: Option<&str>,
        audience: Audience,
    ) -> Result<User, SessionError> {
        Ok(self.current(token, audience).await?.view.user)
    }

    /// Updates the caller's profile (DreamFactory's `POST …/profile`): `name`, `first_name`,
    /// `last_name` and `phone`; the email only with the current password, folded and checked
    /// as registration does. Nothing is written unless every field is valid. A wrong password
    /// counts against the account's login throttle and gets the password change's answer.
    /// Sessions are untouched: tokens name the user by id, not by email.
    pub async fn update_profile(
        &self,
        token: Option<&str>,
        audience: Audience,
        request: ProfileRequest,
    ) -> Result<User, SessionError> {
        let me = self.current(token, audience).await?.view.user;
        let mut errors: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        let mut change = ProfileChange::default();

        if let Some(name) = request.name.as_deref().map(str::trim) {
            if name.is_empty() {
                errors
                    .entry("name")
                    .or_default()
                    .push("The name field may not be empty.".into());
            } else if let Some(problem) = name_problem("name", name) {
                errors.entry("name").or_default().push(problem);
            } else {
                change.name = Some(name.to_owned());
            }
        }
        for (field, value, slot) in [
            ("first_name", &request.first_name, &mut change.first_name),
            ("last_name", &request.last_name, &mut change.last_name),
        ] {
            if let Some(value) = value.as_deref().map(str::trim) {
                match name_problem(field, value) {
                    Some(problem) => errors.entry(field).or_default().push(problem),
                    None => *slot = Some((!value.is_empty()).then(|| value.to_owned())),
                }
            }
        }
        if let Some(phone) = request.phone.as_deref().map(str::trim) {
            if phone.chars().count() > MAX_PHONE_CHARS {
                errors.entry("phone").or_default().push(format!(
                    "The phone may not be greater than {MAX_PHONE_CHARS} characters."
                ));
            } else if has_forbidden_chars(phone) {
                errors
                    .entry("phone")
                    .or_default()
                    .push(format!("The phone {FORBIDDEN_CHARS_RULE}."));
            } else {
                change.phone = Some((!phone.is_empty()).then(|| phone.to_owned()));
            }
        }
        if let Some(username) = request.username.as_deref() {
            let username = normalize_username(username);
            let requested = (!username.is_empty()).then_some(username);
            if requested != me.username {
                errors
                    .entry("username")
                    .or_default()
                    .push("The username cannot be changed.".into());
            }
        }
        let new_email = request
            .email
            .as_deref()
            .map(normalize_email)
            .filter(|email| *email != me.email);
        if let Some(email) = &new_email {
            if let Some(problem) = email_problem(email) {
                errors.entry("email").or_default().push(problem);
            }
        }
        let old_password = request
            .old_password
            .filter(|p| !p.expose_secret().is_empty());
        if new_email.is_some() && old_password.is_none() {
            errors
                .entry("old_password")
                .or_default()
                .push("The old_password field is required to change the email.".into());
        }
        if !errors.is_empty() {
            return Err(SessionError::Validation(errors));
        }

        if let (Some(email), Some(old_password)) = (new_email, old_password) {
            let now = self.clock.now();
            let keys = ThrottleKeys::new(&me.email, None);
            self.check_throttle(&keys, now).await?;
            let matched = self
                .hasher
                .verify(old_password, Some(me.password_hash.clone()))
                .await?;
            if !matched {
                self.record_failure(&keys, now).await?;
                return Err(SessionError::WrongPassword);
            }
            change.email = Some(email);
            change.verified_hash = Some(me.password_hash.clone());
        }
        let email_changed = change.email.is_some();
        match self.store.update_profile(me.id, &change).await {
            Ok(Some(user)) => {
                tracing::info!(user_id = user.id, email_changed, "profile updated");
                Ok(user)
            }
            // The password changed between the check and the write: the one given is no
            // longer the password.
            Ok(None) if email_changed => Err(SessionError::WrongPassword),
            Ok(None) => Err(SessionError::UserNotFound),
            Err(StoreError::Conflict("users_email_key")) => Err(SessionError::Validation(
                BTreeMap::from([("email", vec!["The email has already been taken.".into()])]),
            )),
            Err(other) => Err(other.into()),
        }
    }

    /// What is wrong with a proposed password, if anything (`PASSWORD_MIN_LENGTH`).
    fn password_problem(&self, password: Option<&SecretString>) -> Option<String> {
        let length = password.map_or(0, |p| p.expose_secret().chars().count());
        if length < self.config.password_min_length {
            Some(format!(
                "The password must be at least {} characters.",
                self.config.password_min_length
            ))
        } else if length > MAX_PASSWORD_CHARS {
            Some(format!(
                "The password may not be greater than {MAX_PASSWORD_CHARS} characters."
            ))
        } else {
            None
        }
    }
}

/// What registration and a profile change say about a (normalised) email, if anything.
fn email_problem(email: &str) -> Option<String> {
    if email.is_empty() {
        Some("The email field is required.".into())
    } else if has_forbidden_chars(email) {
        Some(format!("The email {FORBIDDEN_CHARS_RULE}."))
    } else if !looks_like_email(email) {
        Some("The email must be a valid email address.".into())
    } else {
        None
    }
}

/// What a profile change says about a (trimmed) name field, if anything: registration's
/// rules (at most 255 characters, no NUL).
fn name_problem(field: &str, value: &str) -> Option<String> {
    if value.chars().count() > MAX_FIELD_CHARS {
        Some(format!(
            "The {field} may not be greater than 255 characters."
        ))
    } else if has_nul(Some(value)) {
        Some(format!("The {field} may not contain NUL characters."))
    } else {
        None
    }
}

/// The display name of a new user: the one given, else first and last name joined, else the
/// email's local part (registration and import both make it so).
pub(super) fn display_name(
    name: Option<String>,
    first_name: Option<&str>,
    last_name: Option<&str>,
    email: &str,
) -> String {
    name.or_else(|| {
        let joined = [first_name, last_name]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        (!joined.is_empty()).then_some(joined)
    })
    .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned())
}
