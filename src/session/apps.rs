//! DreamFactory's apps, API keys and roles: which frontend a request comes from (its API key),
//! which role a session holds (the user's role for the app, else the app's default), and their
//! administration (the admin API and the CLI). tenure keeps no service access rules: a role is
//! a name that sessions carry in the token's `role` claim, for other services to authorise on.
//!
//! A session remembers its app and the role resolved at login. A change that would alter what
//! a live session holds ends it, so no token ever carries a role its session no longer has:
//! deactivating or deleting an app (`app_disabled`), deactivating or deleting a role
//! (`role_disabled`), renaming a role, giving a user another role for an app, or giving an app
//! another default role (`role_changed`, only the sessions whose role that changes).

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use super::{has_nul, AdminGrant, Reason, SessionError, SessionService, MAX_FIELD_CHARS};
use crate::store::{
    App, AppChange, NewApp, NewRole, Role, RoleChange, StoreError, User, UserAppRole,
};

/// Longest accepted description.
const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Bytes of randomness in an API key (64 hex characters, as DreamFactory's).
const API_KEY_BYTES: usize = 32;

/// An app to create or a change to one, as the handler (or the CLI) parsed it. `None` is "not
/// sent"; for the nullable fields, `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct AppRequest {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
    pub role_id: Option<Option<i64>>,
    pub url: Option<Option<String>>,
}

/// A role to create or a change to one.
#[derive(Debug, Clone, Default)]
pub struct RoleRequest {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
}

/// An app as a DreamFactory launchpad lists it (the environment's `apps`): never its key.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LaunchpadApp {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub url: Option<String>,
    /// Always false: tenure keeps no default app per user.
    pub is_default: bool,
    /// DreamFactory's launchpad defaults.
    pub allow_fullscreen_toggle: bool,
    pub requires_fullscreen: bool,
    pub toggle_location: &'static str,
}

impl From<App> for LaunchpadApp {
    fn from(app: App) -> Self {
        Self {
            id: app.id,
            name: app.name,
            description: app.description,
            url: app.url,
            is_default: false,
            allow_fullscreen_toggle: true,
            requires_fullscreen: false,
            toggle_location: "top",
        }
    }
}

/// The SHA-256 of an API key, in hex: what keys are looked up by.
fn key_hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A new API key: 64 lowercase hex characters from the operating system's CSPRNG.
fn new_api_key() -> Result<String, SessionError> {
    let mut bytes = [0u8; API_KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(SessionError::Randomness)?;
    Ok(hex(&bytes))
}

/// Collects validation problems by field, DreamFactory's `Validation failed` context.
#[derive(Default)]
struct Problems(BTreeMap<&'static str, Vec<String>>);

impl Problems {
    fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.entry(field).or_default().push(message.into());
    }

    fn into_result(self) -> Result<(), SessionError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(SessionError::Validation(self.0))
        }
    }
}

/// A required name: trimmed, not blank, at most 255 characters, no NUL.
fn check_name(problems: &mut Problems, name: Option<&str>, required: bool) -> Option<String> {
    match name.map(str::trim) {
        None if required => problems.add("name", "The name field is required."),
        None => {}
        Some("") => problems.add("name", "The name field is required."),
        Some(n) if n.chars().count() > MAX_FIELD_CHARS || has_nul(Some(n)) => problems.add(
            "name",
            "The name may not be greater than 255 characters nor hold NUL.",
        ),
        Some(n) => return Some(n.to_owned()),
    }
    None
}

/// An optional text: blank clears it; too long or holding NUL is a problem.
fn check_text(
    problems: &mut Problems,
    field: &'static str,
    value: Option<Option<String>>,
    max: usize,
) -> Option<Option<String>> {
    let value = value?;
    let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if value
        .as_deref()
        .is_some_and(|v| v.chars().count() > max || v.contains('\0'))
    {
        problems.add(
            field,
            format!("The {field} may not be greater than {max} characters nor hold NUL."),
        );
    }
    Some(value)
}

/// A taken name, or a reference to a row that does not exist, as the validation error it is.
fn conflict(err: StoreError, reference: &'static str) -> SessionError {
    match err {
        StoreError::Conflict("apps_name_key" | "roles_name_key") => SessionError::Validation(
            BTreeMap::from([("name", vec!["The name has already been taken.".to_owned()])]),
        ),
        StoreError::Conflict("foreign_key") => SessionError::Validation(BTreeMap::from([(
            reference,
            vec![format!("The selected {reference} is invalid.")],
        )])),
        other => other.into(),
    }
}

impl SessionService {
    /// The app an API key names: none without a key or for an unknown key (DreamFactory ignores
    /// those); `AppInactive` for an inactive app's key. The key is looked up by its SHA-256,
    /// then compared with the stored key in constant time.
    pub async fn resolve_api_key(&self, key: Option<&str>) -> Result<Option<App>, SessionError> {
        let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) else {
            return Ok(None);
        };
        // No stored key is longer; anything else needs no hashing to be unknown.
        if key.len() != 2 * API_KEY_BYTES {
            return Ok(None);
        }
        let Some(app) = self.store.app_by_key_hash(&key_hash(key)).await? else {
            return Ok(None);
        };
        if !constant_time_eq(app.api_key.as_bytes(), key.as_bytes()) {
            return Ok(None);
        }
        if !app.is_active {
            return Err(SessionError::AppInactive);
        }
        Ok(Some(app))
    }

    /// `REQUIRE_API_KEY`: with it on, a request without a key, or with a key no app has, is
    /// refused with DreamFactory's 400. Answers the key's app ([`Self::resolve_api_key`]).
    pub async fn require_api_key(&self, key: Option<&str>) -> Result<Option<App>, SessionError> {
        let app = self.resolve_api_key(key).await?;
        if self.config.require_api_key && app.is_none() {
            let sent = key.is_some_and(|k| !k.trim().is_empty());
            return Err(SessionError::AccessRefused(if sent {
                super::AccessRefusal::UnknownApiKey
            } else {
                super::AccessRefusal::NoApiKey
            }));
        }
        Ok(app)
    }

    /// Every app, by id.
    pub async fn list_apps(&self, _grant: &AdminGrant) -> Result<Vec<App>, SessionError> {
        Ok(self.store.apps().await?)
    }

    pub async fn get_app(&self, _grant: &AdminGrant, id: i64) -> Result<App, SessionError> {
        self.store
            .app(id)
            .await?
            .ok_or_else(|| SessionError::AppNotFound(id.to_string()))
    }

    /// Creates an app with a new API key (active unless `is_active: false`).
    pub async fn create_app(
        &self,
        grant: &AdminGrant,
        request: AppRequest,
    ) -> Result<App, SessionError> {
        let mut problems = Problems::default();
        let name = check_name(&mut problems, request.name.as_deref(), true);
        let description = check_text(
            &mut problems,
            "description",
            request.description,
            MAX_DESCRIPTION_CHARS,
        );
        let url = check_text(&mut problems, "url", request.url, MAX_FIELD_CHARS);
        let role_id = request.role_id.flatten();
        self.check_role_exists(&mut problems, role_id).await?;
        problems.into_result()?;
        let api_key = new_api_key()?;
        let app = self
            .store
            .create_app(&NewApp {
                name: name.unwrap_or_default(),
                description: description.flatten(),
                is_active: request.is_active.unwrap_or(true),
                role_id,
                url: url.flatten(),
                api_key_hash: key_hash(&api_key),
                api_key,
                created_at: self.clock.now(),
            })
            .await
            .map_err(|e| conflict(e, "role_id"))?;
        tracing::info!(actor = ?grant.actor, app_id = app.id, "app created");
        Ok(app)
    }

    /// Changes an app; `regenerate` gives it a new API key (the old one stops working when
    /// this commits). Deactivation ends the app's sessions; a new default role ends those whose
    /// role it changes.
    pub async fn update_app(
        &self,
        grant: &AdminGrant,
        id: i64,
        request: AppRequest,
        regenerate: bool,
    ) -> Result<App, SessionError> {
        let mut problems = Problems::default();
        let name = check_name(&mut problems, request.name.as_deref(), false);
        let description = check_text(
            &mut problems,
            "description",
            request.description,
            MAX_DESCRIPTION_CHARS,
        );
        let url = check_text(&mut problems, "url", request.url, MAX_FIELD_CHARS);
        self.check_role_exists(&mut problems, request.role_id.flatten())
            .await?;
        problems.into_result()?;
        let api_key = if regenerate {
            let key = new_api_key()?;
            let hash = key_hash(&key);
            Some((key, hash))
        } else {
            None
        };
        let change = AppChange {
            name,
            description,
            is_active: request.is_active,
            role_id: request.role_id,
            url,
            api_key,
            disabled_reason: Reason::AppDisabled.as_str(),
            role_changed_reason: Reason::RoleChanged.as_str(),
        };
        let app = self
            .store
            .update_app(id, &change, self.clock.now())
            .await
            .map_err(|e| conflict(e, "role_id"))?
            .ok_or_else(|| SessionError::AppNotFound(id.to_string()))?;
        tracing::info!(
            actor = ?grant.actor,
            app_id = id,
            active = app.is_active,
            regenerated = regenerate,
            "app changed"
        );
        Ok(app)
    }

    /// Deletes an app, ending its sessions.
    pub async fn delete_app(&self, grant: &AdminGrant, id: i64) -> Result<(), SessionError> {
        let now = self.clock.now();
        if !self
            .store
            .delete_app(id, now, Reason::AppDisabled.as_str())
            .await?
        {
            return Err(SessionError::AppNotFound(id.to_string()));
        }
        tracing::info!(actor = ?grant.actor, app_id = id, "app deleted");
        Ok(())
    }

    async fn check_role_exists(
        &self,
        problems: &mut Problems,
        role_id: Option<i64>,
    ) -> Result<(), SessionError> {
        if let Some(id) = role_id {
            if self.store.role(id).await?.is_none() {
                problems.add("role_id", "The selected role_id is invalid.");
            }
        }
        Ok(())
    }

    pub async fn list_roles(&self, _grant: &AdminGrant) -> Result<Vec<Role>, SessionError> {
        Ok(self.store.roles().await?)
    }

    pub async fn get_role(&self, _grant: &AdminGrant, id: i64) -> Result<Role, SessionError> {
        self.store
            .role(id)
            .await?
            .ok_or_else(|| SessionError::RoleNotFound(id.to_string()))
    }

    pub async fn create_role(
        &self,
        grant: &AdminGrant,
        request: RoleRequest,
    ) -> Result<Role, SessionError> {
        let mut problems = Problems::default();
        let name = check_name(&mut problems, request.name.as_deref(), true);
        let description = check_text(
            &mut problems,
            "description",
            request.description,
            MAX_DESCRIPTION_CHARS,
        );
        problems.into_result()?;
        let role = self
            .store
            .create_role(&NewRole {
                name: name.unwrap_or_default(),
                description: description.flatten(),
                is_active: request.is_active.unwrap_or(true),
                created_at: self.clock.now(),
            })
            .await
            .map_err(|e| conflict(e, "id"))?;
        tracing::info!(actor = ?grant.actor, role_id = role.id, "role created");
        Ok(role)
    }

    /// Changes a role. Deactivating or renaming it ends the sessions holding it.
    pub async fn update_role(
        &self,
        grant: &AdminGrant,
        id: i64,
        request: RoleRequest,
    ) -> Result<Role, SessionError> {
        let mut problems = Problems::default();
        let name = check_name(&mut problems, request.name.as_deref(), false);
        let description = check_text(
            &mut problems,
            "description",
            request.description,
            MAX_DESCRIPTION_CHARS,
        );
        problems.into_result()?;
        let change = RoleChange {
            name,
            description,
            is_active: request.is_active,
            disabled_reason: Reason::RoleDisabled.as_str(),
            renamed_reason: Reason::RoleChanged.as_str(),
        };
        let role = self
            .store
            .update_role(id, &change, self.clock.now())
            .await
            .map_err(|e| conflict(e, "id"))?
            .ok_or_else(|| SessionError::RoleNotFound(id.to_string()))?;
        tracing::info!(actor = ?grant.actor, role_id = id, active = role.is_active, "role changed");
        Ok(role)
    }

    /// Deletes a role, ending the sessions holding it.
    pub async fn delete_role(&self, grant: &AdminGrant, id: i64) -> Result<(), SessionError> {
        let now = self.clock.now();
        if !self
            .store
            .delete_role(id, now, Reason::RoleDisabled.as_str())
            .await?
        {
            return Err(SessionError::RoleNotFound(id.to_string()));
        }
        tracing::info!(actor = ?grant.actor, role_id = id, "role deleted");
        Ok(())
    }

    /// Sets (a role) or removes (none) a user's role for each app, DreamFactory's
    /// `user_to_app_to_role_by_user_id`; the user's sessions of those apps whose role that
    /// changes end. Answers the user's assignments.
    pub async fn set_user_roles(
        &self,
        grant: &AdminGrant,
        user_id: i64,
        assignments: &[(i64, Option<i64>)],
    ) -> Result<Vec<UserAppRole>, SessionError> {
        let now = self.clock.now();
        let assigned = self
            .store
            .set_user_app_roles(user_id, assignments, now, Reason::RoleChanged.as_str())
            .await
            .map_err(|e| conflict(e, "user_to_app_to_role_by_user_id"))?
            .ok_or(SessionError::UserNotFound)?;
        tracing::info!(actor = ?grant.actor, user_id, changed = assignments.len(), "user roles changed");
        Ok(assigned)
    }

    /// A user's role for each app that has one for them.
    pub async fn user_roles(&self, user_id: i64) -> Result<Vec<UserAppRole>, SessionError> {
        Ok(self.store.user_app_roles(user_id).await?)
    }

    /// The apps a DreamFactory launchpad shows `caller` (as the environment does): for anyone,
    /// the active apps with a default role; for a user, also the active apps they have a role
    /// for; for an administrator, every active app.
    pub async fn launchpad_apps(
        &self,
        caller: Option<&User>,
    ) -> Result<Vec<LaunchpadApp>, SessionError> {
        let apps = self.store.apps().await?;
        let mine: Vec<i64> = match caller {
            Some(user) if !user.is_sys_admin => self
                .store
                .user_app_roles(user.id)
                .await?
                .into_iter()
                .map(|r| r.app_id)
                .collect(),
            _ => Vec::new(),
        };
        let admin = caller.is_some_and(|u| u.is_sys_admin);
        Ok(apps
            .into_iter()
            .filter(|a| a.is_active && (admin || a.role_id.is_some() || mine.contains(&a.id)))
            .map(LaunchpadApp::from)
            .collect())
    }

    /// Every app's name by id, for listings that show a session's app.
    pub async fn app_names(&self) -> Result<HashMap<i64, String>, SessionError> {
        Ok(self
            .store
            .apps()
            .await?
            .into_iter()
            .map(|a| (a.id, a.name))
            .collect())
    }

    /// An app by name (the CLI names apps).
    pub async fn find_app(&self, name: &str) -> Result<Option<App>, SessionError> {
        Ok(self.store.app_by_name(name.trim()).await?)
    }

    /// A role by name (the CLI names roles).
    pub async fn find_role(&self, name: &str) -> Result<Option<Role>, SessionError> {
        Ok(self.store.role_by_name(name.trim()).await?)
    }

    /// `tenure app create --name N [--role R]`: the app, with its new key. An unknown role
    /// name is a validation error on `role`.
    pub async fn operator_create_app(
        &self,
        name: &str,
        role: Option<&str>,
    ) -> Result<App, SessionError> {
        let role_id = match role {
            None => None,
            Some(role) => Some(
                self.find_role(role)
                    .await?
                    .ok_or_else(|| {
                        SessionError::Validation(BTreeMap::from([(
                            "role",
                            vec![format!("There is no role named {:?}.", role.trim())],
                        )]))
                    })?
                    .id,
            ),
        };
        let request = AppRequest {
            name: Some(name.to_owned()),
            role_id: Some(role_id),
            ..AppRequest::default()
        };
        self.create_app(&AdminGrant::operator(), request).await
    }

    /// `tenure app activate|deactivate N`: deactivation ends the app's sessions.
    pub async fn operator_set_app_active(
        &self,
        name: &str,
        active: bool,
    ) -> Result<App, SessionError> {
        let app = self
            .find_app(name)
            .await?
            .ok_or_else(|| SessionError::AppNotFound(name.to_owned()))?;
        let request = AppRequest {
            is_active: Some(active),
            ..AppRequest::default()
        };
        self.update_app(&AdminGrant::operator(), app.id, request, false)
            .await
    }

    /// `tenure role create --name N`.
    pub async fn operator_create_role(&self, name: &str) -> Result<Role, SessionError> {
        let request = RoleRequest {
            name: Some(name.to_owned()),
            ..RoleRequest::default()
        };
        self.create_role(&AdminGrant::operator(), request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_64_lowercase_hex_and_differ() {
        let a = new_api_key().unwrap();
        let b = new_api_key().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')), "{a}");
        assert_ne!(a, b);
        assert_eq!(key_hash(&a).len(), 64);
        assert_ne!(key_hash(&a), a);
    }

    #[test]
    fn keys_compare_equal_only_when_equal() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
