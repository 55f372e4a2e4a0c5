//! Rows as both backends read them, and their mapping into the store's values: written once.

use std::sync::Arc;

use uuid::Uuid;

use super::api::{Session, SessionWithUser, User};
use super::error::{StoreError, StoreResult};

/// The flat row of a session joined with its user, shared by both backends.
#[derive(sqlx::FromRow)]
pub(super) struct SessionUserRow {
    #[sqlx(flatten)]
    session: SessionRow,
    #[sqlx(flatten)]
    user: User,
}

impl TryFrom<SessionUserRow> for SessionWithUser {
    type Error = StoreError;

    fn try_from(row: SessionUserRow) -> Result<Self, StoreError> {
        Ok(Self {
            session: row.session.try_into()?,
            user: row.user,
        })
    }
}

/// A session row (aliased `s`), with the id as text.
#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    s_id: String,
    s_user_id: i64,
    s_forever: bool,
    s_gen: i64,
    s_rotated_at: i64,
    s_created_at: i64,
    s_last_seen_at: i64,
    s_refresh_until: Option<i64>,
    s_device: Option<String>,
    s_user_agent: Option<String>,
    s_ip: Option<String>,
    s_revoked_at: Option<i64>,
    s_revoke_reason: Option<String>,
    s_refresh_mode: Option<String>,
    s_app_id: Option<i64>,
    s_role_id: Option<i64>,
    s_role_name: Option<String>,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Self, StoreError> {
        let id = Uuid::parse_str(&row.s_id).map_err(|cause| StoreError::Corrupt {
            what: "a stored session id is not a UUID",
            cause: Arc::new(cause),
        })?;
        Ok(Session {
            id,
            user_id: row.s_user_id,
            forever: row.s_forever,
            gen: row.s_gen,
            rotated_at: row.s_rotated_at,
            created_at: row.s_created_at,
            last_seen_at: row.s_last_seen_at,
            refresh_until: row.s_refresh_until,
            device: row.s_device,
            user_agent: row.s_user_agent,
            ip: row.s_ip,
            revoked_at: row.s_revoked_at,
            revoke_reason: row.s_revoke_reason,
            refresh_mode: row.s_refresh_mode,
            app_id: row.s_app_id,
            role_id: row.s_role_id,
            role_name: row.s_role_name,
        })
    }
}

/// Maps every row of a statement.
pub(super) fn rows_into<R, T>(rows: Vec<R>) -> StoreResult<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
