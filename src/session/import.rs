//! Moving in: users exported from DreamFactory, Django or another tenure, checked and folded as
//! registration checks and folds them, compared with the stored users, and written together.
//!
//! The rules:
//! - ids are kept; later users get ids after the highest.
//! - Emails (and usernames) are folded as tenure folds them; rows that collide after folding,
//!   or share an id, are all refused, none imported. An email or username that belongs to
//!   another stored user refuses the row (an import never moves one between users).
//! - A row for an existing id updates that user when anything differs; else it is unchanged,
//!   so importing the same file again changes nothing.
//! - Hashes are read for their format only, never verified (that is each login's work). One
//!   that no login can verify is stored as `!unusable:<reason>` and the user is listed: their
//!   login is disabled until an administrator sets a password.
//! - The hash a row brings is remembered as a digest (`users.imported_hash`): while the source
//!   still has that hash, a re-import leaves the user's hash alone (their first login has
//!   upgraded it to Argon2id, or they changed it here); a new hash at the source replaces it.
//!   A row without a hash (an export without `--with-hashes`) never changes a stored one.
//! - A user the import deactivates loses their sessions, as `set_user_active` does.

use std::collections::HashMap;

use serde::Serialize;
use sha2::Digest;

use super::{
    has_forbidden_chars, has_nul, looks_like_email, normalize_email, normalize_username, Reason,
    SessionError, SessionService, FORBIDDEN_CHARS_RULE, MAX_FIELD_CHARS,
};
use crate::clock::UnixTime;
use crate::config::LoginAttribute;
use crate::password;
use crate::store::{ImportedUser, StoredUser, User, UserImport};

/// A user as read from an export, before any rule is applied.
#[derive(Debug, Clone, Default)]
pub struct ImportRow {
    /// Where the row is in the file (its 1-based record number), for the report.
    pub record: usize,
    pub id: Option<i64>,
    pub email: Option<String>,
    pub username: Option<String>,
    /// The stored password hash; `None` when the export has none.
    pub password: Option<String>,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub is_active: bool,
    pub is_sys_admin: bool,
    pub created_at: Option<UnixTime>,
    pub last_login_at: Option<UnixTime>,
}

/// A row not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub record: usize,
    pub id: Option<i64>,
    pub email: Option<String>,
    pub reason: String,
}

/// An imported user whose hash no login can verify: an administrator sets their password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginDisabled {
    pub id: i64,
    pub email: String,
    pub reason: String,
}

/// What an import did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub dry_run: bool,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Rows not imported, by record number.
    pub refused: Vec<Refusal>,
    /// Imported users (created, updated or unchanged) whose login stays disabled.
    pub login_disabled: Vec<LoginDisabled>,
}

/// A row that passed the checks of its own, folded.
#[derive(Debug)]
struct Candidate {
    record: usize,
    id: i64,
    email: String,
    username: Option<String>,
    password: Option<String>,
    name: String,
    first_name: Option<String>,
    last_name: Option<String>,
    is_active: bool,
    is_sys_admin: bool,
    created_at: Option<UnixTime>,
    last_login_at: Option<UnixTime>,
}

impl SessionService {
    /// Imports `rows` (with the refusals the reader already made), or on a dry run only says
    /// what the import would do. One transaction: all of it is written, or none.
    pub async fn import_users(
        &self,
        rows: Vec<ImportRow>,
        refused: Vec<Refusal>,
        dry_run: bool,
    ) -> Result<ImportReport, SessionError> {
        let now = self.clock.now();
        let mut report = ImportReport {
            dry_run,
            refused,
            ..ImportReport::default()
        };
        let mut candidates = Vec::with_capacity(rows.len());
        for row in rows {
            match self.check_row(row) {
                Ok(candidate) => candidates.push(candidate),
                Err(refusal) => report.refused.push(refusal),
            }
        }
        let candidates = refuse_collisions(candidates, &mut report.refused);

        let stored = self.store.all_users().await?;
        let by_id: HashMap<i64, &StoredUser> = stored.iter().map(|s| (s.user.id, s)).collect();
        let by_email: HashMap<&str, i64> = stored
            .iter()
            .map(|s| (s.user.email.as_str(), s.user.id))
            .collect();
        let by_username: HashMap<&str, i64> = stored
            .iter()
            .filter_map(|s| Some((s.user.username.as_deref()?, s.user.id)))
            .collect();

        let mut import = UserImport {
            users: Vec::new(),
            deactivated: Vec::new(),
            now,
            reason: Reason::UserInactive.as_str(),
        };
        for c in candidates {
            let taken = |owner: Option<&i64>, what: &str, value: &str| {
                owner.filter(|&&owner| owner != c.id).map(|owner| Refusal {
                    record: c.record,
                    id: Some(c.id),
                    email: Some(c.email.clone()),
                    reason: format!("the {what} {value} belongs to user {owner}"),
                })
            };
            let conflict = taken(by_email.get(c.email.as_str()), "email", &c.email).or_else(|| {
                let username = c.username.as_deref()?;
                taken(by_username.get(username), "username", username)
            });
            if let Some(refusal) = conflict {
                report.refused.push(refusal);
                continue;
            }
            let existing = by_id.get(&c.id).copied();
            let target = target_user(&c, existing, now);
            if let Some(reason) = target.password_hash.strip_prefix(password::UNUSABLE_PREFIX) {
                report.login_disabled.push(LoginDisabled {
                    id: target.id,
                    email: target.email.clone(),
                    reason: reason.to_owned(),
                });
            }
            match existing {
                None => {
                    report.created += 1;
                    import.users.push(target);
                }
                Some(stored) if as_imported(stored) == target => report.unchanged += 1,
                Some(stored) => {
                    if stored.user.is_active && !target.is_active {
                        import.deactivated.push(target.id);
                    }
                    report.updated += 1;
                    import.users.push(target);
                }
            }
        }
        report.refused.sort_by_key(|r| r.record);

        if !dry_run && !import.users.is_empty() {
            self.store.import_users(&import).await?;
            tracing::info!(
                created = report.created,
                updated = report.updated,
                unchanged = report.unchanged,
                refused = report.refused.len(),
                "users imported"
            );
        }
        Ok(report)
    }

    /// Every user, by id, for `tenure user export`.
    pub async fn export_users(&self) -> Result<Vec<User>, SessionError> {
        Ok(self
            .store
            .all_users()
            .await?
            .into_iter()
            .map(|s| s.user)
            .collect())
    }

    /// The checks a row passes on its own: those of registration, and an id.
    fn check_row(&self, row: ImportRow) -> Result<Candidate, Refusal> {
        let email = row
            .email
            .as_deref()
            .map(normalize_email)
            .unwrap_or_default();
        let refuse = |reason: String| Refusal {
            record: row.record,
            id: row.id,
            email: (!email.is_empty()).then(|| email.clone()),
            reason,
        };
        let id = match row.id {
            None => return Err(refuse("no id".into())),
            Some(id) if id < 1 => return Err(refuse(format!("the id {id} is not positive"))),
            Some(id) => id,
        };
        if email.is_empty() {
            return Err(refuse("no email".into()));
        }
        if has_forbidden_chars(&email) {
            return Err(refuse(format!("the email {FORBIDDEN_CHARS_RULE}")));
        }
        if !looks_like_email(&email) {
            return Err(refuse(format!("{email} is not a valid email address")));
        }
        let username = row
            .username
            .as_deref()
            .map(normalize_username)
            .filter(|u| !u.is_empty());
        if let Some(u) = &username {
            if u.chars().count() > MAX_FIELD_CHARS || u.contains(char::is_whitespace) {
                return Err(refuse(
                    "the username contains spaces or exceeds 255 characters".into(),
                ));
            }
            if has_forbidden_chars(u) {
                return Err(refuse(format!("the username {FORBIDDEN_CHARS_RULE}")));
            }
        }
        if self.config.login_attribute == LoginAttribute::Username && username.is_none() {
            return Err(refuse("no username (DF_LOGIN_ATTRIBUTE=username)".into()));
        }
        let clean = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let first_name = clean(row.first_name);
        let last_name = clean(row.last_name);
        // The display name registration would make when there is none.
        let name = super::users::display_name(
            clean(row.name),
            first_name.as_deref(),
            last_name.as_deref(),
            &email,
        );
        for (field, value) in [
            ("name", Some(name.as_str())),
            ("first_name", first_name.as_deref()),
            ("last_name", last_name.as_deref()),
        ] {
            if value.is_some_and(|v| v.chars().count() > MAX_FIELD_CHARS) {
                return Err(refuse(format!("the {field} exceeds 255 characters")));
            }
            if has_nul(value) {
                return Err(refuse(format!("the {field} contains a NUL character")));
            }
        }
        if has_nul(row.password.as_deref()) {
            return Err(refuse("the password hash contains a NUL character".into()));
        }
        Ok(Candidate {
            record: row.record,
            id,
            email,
            username,
            password: row.password.filter(|p| !p.is_empty()),
            name,
            first_name,
            last_name,
            is_active: row.is_active,
            is_sys_admin: row.is_sys_admin,
            created_at: row.created_at,
            last_login_at: row.last_login_at,
        })
    }
}

/// Refuses every row that shares its id, folded email or folded username with another row;
/// answers the rest.
fn refuse_collisions(candidates: Vec<Candidate>, refused: &mut Vec<Refusal>) -> Vec<Candidate> {
    let mut reasons: Vec<Option<String>> = vec![None; candidates.len()];
    let mut mark = |keys: Vec<Option<String>>, what: &str| {
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, key) in keys.into_iter().enumerate() {
            if let Some(key) = key {
                groups.entry(key).or_default().push(i);
            }
        }
        for (key, members) in groups.into_iter().filter(|(_, m)| m.len() > 1) {
            let records: Vec<String> = members
                .iter()
                .map(|&i| candidates[i].record.to_string())
                .collect();
            for &i in &members {
                reasons[i].get_or_insert_with(|| {
                    format!(
                        "the {what} {key} is on records {} (none of them imported)",
                        records.join(", ")
                    )
                });
            }
        }
    };
    mark(
        candidates.iter().map(|c| Some(c.id.to_string())).collect(),
        "id",
    );
    mark(
        candidates.iter().map(|c| Some(c.email.clone())).collect(),
        "email",
    );
    mark(
        candidates.iter().map(|c| c.username.clone()).collect(),
        "username",
    );
    candidates
        .into_iter()
        .zip(reasons)
        .filter_map(|(c, reason)| match reason {
            None => Some(c),
            Some(reason) => {
                refused.push(Refusal {
                    record: c.record,
                    id: Some(c.id),
                    email: Some(c.email),
                    reason,
                });
                None
            }
        })
        .collect()
}

/// The row as it is to be stored, over the stored user of its id if there is one.
fn target_user(c: &Candidate, existing: Option<&StoredUser>, now: UnixTime) -> ImportedUser {
    let brought = c.password.as_deref().map(|hash| {
        let stored = match password::inspect(hash) {
            Ok(_) => hash.to_owned(),
            Err(why) => password::unusable(&why.0),
        };
        (stored, digest(hash))
    });
    let (password_hash, imported_hash, password_changed_at) = match (existing, brought) {
        (None, None) => (
            password::unusable("no password hash in the export"),
            None,
            now,
        ),
        (None, Some((hash, digest))) => (hash, Some(digest), now),
        // No hash in the row: the stored one stays.
        (Some(e), None) => (
            e.user.password_hash.clone(),
            e.imported_hash.clone(),
            e.user.password_changed_at,
        ),
        // The hash the last import brought, or the very hash stored: nothing to change (the
        // stored one may be its upgrade, or a password changed here since).
        (Some(e), Some((hash, digest)))
            if e.imported_hash.as_deref() == Some(digest.as_str())
                || e.user.password_hash == hash =>
        {
            (
                e.user.password_hash.clone(),
                e.imported_hash.clone(),
                e.user.password_changed_at,
            )
        }
        (Some(_), Some((hash, digest))) => (hash, Some(digest), now),
    };
    ImportedUser {
        id: c.id,
        email: c.email.clone(),
        username: c.username.clone(),
        password_hash,
        name: c.name.clone(),
        first_name: c.first_name.clone(),
        last_name: c.last_name.clone(),
        is_sys_admin: c.is_sys_admin,
        is_active: c.is_active,
        // Only an insert writes these: an update keeps the stored ones.
        created_at: existing.map_or(c.created_at.unwrap_or(now), |e| e.user.created_at),
        last_login_at: existing.map_or(c.last_login_at, |e| e.user.last_login_at),
        password_changed_at,
        imported_hash,
    }
}

/// A stored user in the shape an import writes, to compare with the row.
fn as_imported(s: &StoredUser) -> ImportedUser {
    let u = &s.user;
    ImportedUser {
        id: u.id,
        email: u.email.clone(),
        username: u.username.clone(),
        password_hash: u.password_hash.clone(),
        name: u.name.clone(),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        is_sys_admin: u.is_sys_admin,
        is_active: u.is_active,
        created_at: u.created_at,
        last_login_at: u.last_login_at,
        password_changed_at: u.password_changed_at,
        imported_hash: s.imported_hash.clone(),
    }
}

/// What `users.imported_hash` records of a hash: its SHA-256, never the hash.
fn digest(hash: &str) -> String {
    let sum = sha2::Sha256::digest(hash.as_bytes());
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
