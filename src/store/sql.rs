//! The SQL both backends run, written once.
//!
//! Both dialects take `$1`-style placeholders (SQLite reads `$N` as parameter N), the same
//! `CAST` syntax, `TRUE`, `RETURNING` and `ON CONFLICT`, so every statement that does not need a
//! PostgreSQL array or `SKIP LOCKED` is the same text on both. Fragments are macros that expand
//! to string literals, so each statement is one `&'static str` assembled at compile time.
//!
//! [`impl_store!`] writes the [`Store`](super::Store) implementation once for both backends:
//! the statements and their binds live here; what differs per backend (how a session is read,
//! how a refresh rotates, how the failure counters of several keys are read, how an id is bound
//! and how an error is classified) is a method or a function each backend provides.

/// The session columns, aliased for `SessionUserRow` (`row.rs`), the id as text on both
/// backends.
macro_rules! session_columns {
    () => {
        "CAST(s.id AS TEXT) AS s_id, s.user_id AS s_user_id, s.forever AS s_forever, \
         s.gen AS s_gen, s.rotated_at AS s_rotated_at, s.created_at AS s_created_at, \
         s.last_seen_at AS s_last_seen_at, s.refresh_until AS s_refresh_until, \
         s.device AS s_device, s.user_agent AS s_user_agent, s.ip AS s_ip, \
         s.revoked_at AS s_revoked_at, s.revoke_reason AS s_revoke_reason, \
         s.refresh_mode AS s_refresh_mode, s.app_id AS s_app_id, s.role_id AS s_role_id, \
         s.role_name AS s_role_name"
    };
}

/// The app columns, as [`App`](super::App) reads them (never the key's hash).
macro_rules! app_columns {
    () => {
        "id, name, description, is_active, role_id, url, api_key, created_at"
    };
}

/// **The role rule**, the one place it is written: the id of the role a session of user
/// `$user` through app `$app` holds. None for a system administrator (administrators need no
/// role); else the user's role for the app (`user_app_roles`), else the app's default role
/// (DreamFactory's `Session::setSessionData`). The login resolves it into the new session, and
/// every change that could alter it ends the live sessions whose stored role no longer equals
/// it.
macro_rules! resolved_role_id {
    ($user:literal, $app:literal) => {
        concat!(
            "(SELECT CASE WHEN x.is_sys_admin THEN NULL ELSE COALESCE(\
             (SELECT m.role_id FROM user_app_roles m WHERE m.user_id = x.id AND m.app_id = ",
            $app,
            "), (SELECT a.role_id FROM apps a WHERE a.id = ",
            $app,
            ")) END FROM users x WHERE x.id = ",
            $user,
            ")"
        )
    };
}

/// Revokes every unrevoked session whose `$column` is `$1`: `$2` now, `$3` the reason (a
/// deactivated user, app or role, a reset password).
macro_rules! revoke_all_by {
    ($column:literal) => {
        concat!(
            "UPDATE sessions SET revoked_at = $2, revoke_reason = $3 WHERE ",
            $column,
            " = $1 AND revoked_at IS NULL"
        )
    };
}

/// Revokes the live sessions of app `$1` (only user `$4`'s when it is not null) whose stored
/// role is no longer the one [`resolved_role_id!`] gives: `$2` now, `$3` the reason.
macro_rules! revoke_changed_roles {
    () => {
        concat!(
            "UPDATE sessions SET revoked_at = $2, revoke_reason = $3 WHERE app_id = $1 \
             AND revoked_at IS NULL AND ($4 IS NULL OR user_id = $4) AND role_id IS DISTINCT FROM ",
            resolved_role_id!("sessions.user_id", "sessions.app_id")
        )
    };
}

/// The advisory lock key of one session cap (`scope` `ip` with the address, or `total`): the
/// first 8 bytes of a SHA-256, so distinct caps practically never share a lock.
pub(super) fn cap_lock_key(scope: &str, value: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("tenure:session-cap:{scope}:{value}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// The user columns, for a user aliased `u`.
macro_rules! user_columns {
    () => {
        "u.id, u.email, u.username, u.password_hash, u.name, u.first_name, u.last_name, \
         u.is_sys_admin, u.is_active, u.created_at, u.last_login_at, u.password_changed_at, \
         u.phone"
    };
}

/// A session (aliased `s`) joined with its user (aliased `u`), read from `$from`.
macro_rules! select_joined {
    ($from:literal, $filter:literal) => {
        concat!(
            "SELECT ",
            session_columns!(),
            ", ",
            user_columns!(),
            " FROM ",
            $from,
            " ",
            $filter
        )
    };
}

/// The condition a live session meets, for a session table aliased `s`, with the placeholders
/// of `now` and `idle_cutoff`.
macro_rules! live {
    ($now:literal, $idle_cutoff:literal) => {
        concat!(
            "s.revoked_at IS NULL AND (s.refresh_until IS NULL OR s.refresh_until >= ",
            $now,
            ") AND (",
            $idle_cutoff,
            " IS NULL OR s.last_seen_at >= ",
            $idle_cutoff,
            ")"
        )
    };
}

/// **The refresh rule**, the one place it is written: a session row of table `sessions`
/// rotates only if it is still at the presented `gen`, not revoked, inside its refresh window,
/// seen since the idle cutoff (when there is one), its user is active (and an administrator,
/// for the admin endpoint), and it is presented the way it refreshes: by its refresh credential
/// when it has a refresh mode, by its access token when not. Every rotation statement (SQLite's, PostgreSQL's one
/// row and batch forms) is `WHERE <id matches> AND refresh_rule!(…)`, and
/// `bench/pgbench/refresh.sql` copies it.
macro_rules! refresh_rule {
    (
        $gen:literal,
        $now:literal,
        $idle_cutoff:literal,
        $require_admin:literal,
        $by_credential:literal
    ) => {
        concat!(
            "sessions.gen = ",
            $gen,
            " AND sessions.revoked_at IS NULL \
             AND (sessions.refresh_until IS NULL OR sessions.refresh_until >= ",
            $now,
            ") AND (",
            $idle_cutoff,
            " IS NULL OR sessions.last_seen_at >= ",
            $idle_cutoff,
            ") AND EXISTS (SELECT 1 FROM users x WHERE x.id = sessions.user_id \
             AND x.is_active AND (x.is_sys_admin OR NOT ",
            $require_admin,
            ")) AND (sessions.refresh_mode IS NOT NULL) = ",
            $by_credential
        )
    };
}

/// The rotation's assignment, with the placeholder of `now`.
macro_rules! rotate_set {
    ($now:literal) => {
        concat!(
            "UPDATE sessions SET gen = sessions.gen + 1, rotated_at = ",
            $now,
            ", last_seen_at = ",
            $now
        )
    };
}

/// The rotation of one session: `$1` id, `$2` gen, `$3` now, `$4` idle cutoff, `$5` admin only,
/// `$6` by credential.
macro_rules! rotate_one {
    () => {
        concat!(
            rotate_set!("$3"),
            " WHERE sessions.id = $1 AND ",
            refresh_rule!("$2", "$3", "$4", "$5", "$6")
        )
    };
}

/// Users an import writes per statement: 13 values each, inside both backends' bound-parameter
/// limits (SQLite 32 766, PostgreSQL 65 535).
pub(super) const IMPORT_BATCH: usize = 1_000;

/// Runs a store method's body and, when it fails because its connection broke before any
/// answer, runs it once more: the store has then been told (`connection_broke`) to test the
/// connections it hands out, so the second run gets a fresh one. Safe for every statement
/// here: nothing of a statement whose connection broke took effect, and a rotation is
/// conditional on `gen` (a repeated one falls into the grace).
macro_rules! retry_broken {
    ($store:expr, $body:block) => {{
        let first: StoreResult<_> = async $body.await;
        match first {
            Err(err) if err.is_broken_connection() => {
                $store.connection_broke();
                async $body.await
            }
            other => other,
        }
    }};
}

/// The [`Store`](super::Store) implementation both backends share. `$store` must have a `pool`
/// field (where reads run), the inherent methods `write` (runs a write's statements on a
/// connection of its own: PostgreSQL's pool, SQLite's writer task; the closure owns what it
/// binds, so it can move to another task), `find_session`, `rotate`, `failures` and
/// `connection_broke`, the
/// associated functions `advance_user_ids` and `lock_cap` (a transaction-long lock on a session
/// cap's key), and its module a type `Db` (the sqlx database); `$id` binds a
/// session id as the backend stores it; `$map_error` classifies a sqlx error; `$skip_locked` is
/// what the purge's row selection adds (PostgreSQL lets replicas purge side by side);
/// `$for_share` what a read adds to share-lock its rows until the commit (SQLite's single
/// writer needs nothing).
macro_rules! impl_store {
    (
        $store:ty,
        name: $name:literal,
        migrations: $migrations:literal,
        id: $id:path,
        map_error: $map_error:path,
        skip_locked: $skip_locked:literal,
        for_share: $for_share:literal $(,)?
    ) => {
        const _: () = {
        use sqlx::Connection as _;
        use uuid::Uuid;
        use $crate::clock::UnixTime;
        use $crate::store::api::*;
        use $crate::store::error::{StoreError, StoreResult};
        use $crate::store::row::{rows_into, SessionRow, SessionUserRow};

        #[async_trait::async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $name
            }

            async fn migrate(&self) -> StoreResult<()> {
                // On PostgreSQL sqlx takes an advisory lock, so replicas starting together
                // migrate once.
                Ok(sqlx::migrate!($migrations).run(&self.pool).await?)
            }

            async fn ready(&self) -> StoreResult<bool> {
                retry_broken!(self, {
                    let known = sqlx::migrate!($migrations).migrations.len() as i64;
                    let applied: i64 =
                        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                            .fetch_one(&self.pool)
                            .await
                            .map_err($map_error)?;
                    Ok(applied >= known)
                })
            }

            fn pool_stats(&self) -> (u32, u32) {
                (self.pool.size(), self.pool.num_idle() as u32)
            }

            async fn create_user(&self, user: &NewUser) -> StoreResult<User> {
                let user = user.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        sqlx::query_as(
                            "INSERT INTO users (email, username, password_hash, name, first_name, \
                             last_name, is_sys_admin, is_active, created_at, password_changed_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8, $8) RETURNING *",
                        )
                        .bind(&user.email)
                        .bind(&user.username)
                        .bind(&user.password_hash)
                        .bind(&user.name)
                        .bind(&user.first_name)
                        .bind(&user.last_name)
                        .bind(user.is_sys_admin)
                        .bind(user.created_at)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err($map_error)
                    })
                })
                .await
            }

            async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
                retry_broken!(self, {
                    sqlx::query_as("SELECT * FROM users WHERE email = $1")
                        .bind(email)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($map_error)
                })
            }

            async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
                retry_broken!(self, {
                    sqlx::query_as("SELECT * FROM users WHERE username = $1")
                        .bind(username)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($map_error)
                })
            }

            async fn create_session(
                &self,
                new: &NewSession,
                limit: &SessionLimit,
                live: &Liveness,
            ) -> StoreResult<SessionWithUser> {
                let (new, limit, live) = (new.clone(), *limit, *live);
                self.write(move |conn| {
                    Box::pin(async move {
                        let mut tx = conn.begin().await.map_err($map_error)?;
                        // Recording the login writes the user's row first: PostgreSQL takes its row
                        // lock, SQLite its write lock, so concurrent logins of one user are serialised
                        // here and the count below cannot go stale before the insert.
                        // The same statement stores the upgraded hash, if any.
                        let recorded = sqlx::query(
                            "UPDATE users SET last_login_at = $1, \
                             password_hash = COALESCE($4, password_hash) WHERE id = $2 AND is_active \
                             AND ($3 IS NULL OR password_hash = $3)",
                        )
                        .bind(new.created_at)
                        .bind(new.user_id)
                        .bind(&new.verified_hash)
                        .bind(&new.upgraded_hash)
                        .execute(&mut *tx)
                        .await
                        .map_err($map_error)?;
                        if recorded.rows_affected() != 1 {
                            return Err(StoreError::UserChanged);
                        }
                        // The app must still be active, and the role it gives must be: both rows stay
                        // share-locked until the commit, so a deactivation waits for this login and
                        // then ends its session with the others.
                        let (role_id, role_name) = match new.app_id {
                            None => (None, None),
                            Some(app_id) => {
                                let active: Option<bool> = sqlx::query_scalar(concat!(
                                    "SELECT is_active FROM apps WHERE id = $1 ",
                                    $for_share
                                ))
                                .bind(app_id)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err($map_error)?;
                                if active != Some(true) {
                                    return Err(StoreError::AppInactive);
                                }
                                let role: Option<(i64, String, bool)> = sqlx::query_as(concat!(
                                    "SELECT r.id, r.name, r.is_active FROM roles r WHERE r.id = ",
                                    resolved_role_id!("$1", "$2"),
                                    " ",
                                    $for_share
                                ))
                                .bind(new.user_id)
                                .bind(app_id)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err($map_error)?;
                                match role {
                                    Some((_, _, false)) => return Err(StoreError::RoleInactive),
                                    Some((id, name, true)) => (Some(id), Some(name)),
                                    None => (None, None),
                                }
                            }
                        };
                        // The wider caps' locks, taken before any session row is locked (and always
                        // in this order), so logins waiting on each other cannot deadlock.
                        let per_ip = limit.per_ip.zip(new.ip.as_deref());
                        if let Some((_, ip)) = per_ip {
                            Self::lock_cap(&mut *tx, $crate::store::sql::cap_lock_key("ip", ip)).await?;
                        }
                        if limit.total.is_some() {
                            Self::lock_cap(&mut *tx, $crate::store::sql::cap_lock_key("total", "")).await?;
                        }
                        let count: i64 = sqlx::query_scalar(concat!(
                            "SELECT count(*) FROM sessions s WHERE s.user_id = $1 AND ",
                            live!("$2", "$3")
                        ))
                        .bind(new.user_id)
                        .bind(live.now)
                        .bind(live.idle_cutoff)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err($map_error)?;
                        let excess = count + 1 - i64::from(limit.max);
                        if excess > 0 {
                            if limit.reject {
                                return Err(StoreError::LimitReached);
                            }
                            sqlx::query(concat!(
                                "UPDATE sessions SET revoked_at = $2, revoke_reason = $5 WHERE id IN \
                                 (SELECT s.id FROM sessions s WHERE s.user_id = $1 AND ",
                                live!("$2", "$3"),
                                " ORDER BY s.last_seen_at, s.created_at LIMIT $4)"
                            ))
                            .bind(new.user_id)
                            .bind(live.now)
                            .bind(live.idle_cutoff)
                            .bind(excess)
                            .bind(limit.evict_reason)
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        }
                        if let Some((cap, ip)) = per_ip {
                            let count: i64 = sqlx::query_scalar(concat!(
                                "SELECT count(*) FROM sessions s WHERE s.ip = $1 AND ",
                                live!("$2", "$3")
                            ))
                            .bind(ip)
                            .bind(live.now)
                            .bind(live.idle_cutoff)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err($map_error)?;
                            let excess = count + 1 - i64::from(cap.max);
                            if excess > 0 {
                                if limit.reject {
                                    return Err(StoreError::IpLimitReached);
                                }
                                sqlx::query(concat!(
                                    "UPDATE sessions SET revoked_at = $2, revoke_reason = $5 WHERE id IN \
                                     (SELECT s.id FROM sessions s WHERE s.ip = $1 AND ",
                                    live!("$2", "$3"),
                                    " ORDER BY s.last_seen_at, s.created_at LIMIT $4)"
                                ))
                                .bind(ip)
                                .bind(live.now)
                                .bind(live.idle_cutoff)
                                .bind(excess)
                                .bind(cap.evict_reason)
                                .execute(&mut *tx)
                                .await
                                .map_err($map_error)?;
                            }
                        }
                        if let Some(cap) = limit.total {
                            let count: i64 = sqlx::query_scalar(concat!(
                                "SELECT count(*) FROM sessions s WHERE ",
                                live!("$1", "$2")
                            ))
                            .bind(live.now)
                            .bind(live.idle_cutoff)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err($map_error)?;
                            let excess = count + 1 - i64::from(cap.max);
                            if excess > 0 {
                                if limit.reject {
                                    return Err(StoreError::TotalLimitReached);
                                }
                                sqlx::query(concat!(
                                    "UPDATE sessions SET revoked_at = $1, revoke_reason = $4 WHERE id IN \
                                     (SELECT s.id FROM sessions s WHERE ",
                                    live!("$1", "$2"),
                                    " ORDER BY s.last_seen_at, s.created_at LIMIT $3)"
                                ))
                                .bind(live.now)
                                .bind(live.idle_cutoff)
                                .bind(excess)
                                .bind(cap.evict_reason)
                                .execute(&mut *tx)
                                .await
                                .map_err($map_error)?;
                            }
                        }
                        sqlx::query(
                            "INSERT INTO sessions (id, user_id, forever, gen, rotated_at, created_at, \
                             last_seen_at, refresh_until, device, user_agent, ip, refresh_mode, \
                             app_id, role_id, role_name) \
                             VALUES ($1, $2, $3, 0, $4, $4, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                        )
                        .bind($id(new.id))
                        .bind(new.user_id)
                        .bind(new.forever)
                        .bind(new.created_at)
                        .bind(new.refresh_until)
                        .bind(&new.device)
                        .bind(&new.user_agent)
                        .bind(&new.ip)
                        .bind(&new.refresh_mode)
                        .bind(new.app_id)
                        .bind(role_id)
                        .bind(&role_name)
                        .execute(&mut *tx)
                        .await
                        .map_err($map_error)?;
                        let row: SessionUserRow = sqlx::query_as(select_joined!(
                            "sessions s JOIN users u ON u.id = s.user_id",
                            "WHERE s.id = $1"
                        ))
                        .bind($id(new.id))
                        .fetch_one(&mut *tx)
                        .await
                        .map_err($map_error)?;
                        tx.commit().await.map_err($map_error)?;
                        row.try_into()
                    })
                })
                .await
            }

            async fn session_with_user(
                &self,
                id: Uuid,
                touch: Option<&Touch>,
            ) -> StoreResult<Option<SessionWithUser>> {
                let view = retry_broken!(self, { self.find_session(id).await })?;
                // The last-seen write, at most once per LAST_SEEN_RESOLUTION, only when due.
                if let (Some(&t), Some(v)) = (touch, &view) {
                    if t.is_due(&v.session) {
                        self.write(move |conn| {
                            Box::pin(async move {
                                sqlx::query(
                                    "UPDATE sessions SET last_seen_at = $2 WHERE id = $1 \
                                     AND gen = $3 AND revoked_at IS NULL AND last_seen_at < $4 \
                                     AND ($5 IS NULL OR last_seen_at >= $5)",
                                )
                                .bind($id(id))
                                .bind(t.now)
                                .bind(t.gen)
                                .bind(t.older_than)
                                .bind(t.idle_cutoff)
                                .execute(&mut *conn)
                                .await
                                .map_err($map_error)?;
                                Ok(())
                            })
                        })
                        .await?;
                    }
                }
                Ok(view)
            }

            async fn user_sessions(
                &self,
                user_id: i64,
                live: &Liveness,
            ) -> StoreResult<Vec<Session>> {
                retry_broken!(self, {
                    let rows: Vec<SessionRow> = sqlx::query_as(concat!(
                        "SELECT ",
                        session_columns!(),
                        " FROM sessions s WHERE s.user_id = $1 AND ",
                        live!("$2", "$3"),
                        " ORDER BY s.created_at DESC, s.id DESC"
                    ))
                    .bind(user_id)
                    .bind(live.now)
                    .bind(live.idle_cutoff)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($map_error)?;
                    rows_into(rows)
                })
            }

            async fn revoke_user_session(
                &self,
                id: Uuid,
                user_id: i64,
                live: &Liveness,
                reason: &str,
            ) -> StoreResult<bool> {
                let (live, reason) = (*live, reason.to_owned());
                self.write(move |conn| {
                    Box::pin(async move {
                        let result = sqlx::query(concat!(
                            "UPDATE sessions SET revoked_at = $3, revoke_reason = $5 WHERE id IN \
                             (SELECT s.id FROM sessions s WHERE s.id = $1 AND s.user_id = $2 AND ",
                            live!("$3", "$4"),
                            ")"
                        ))
                        .bind($id(id))
                        .bind(user_id)
                        .bind(live.now)
                        .bind(live.idle_cutoff)
                        .bind(reason)
                        .execute(&mut *conn)
                        .await
                        .map_err($map_error)?;
                        Ok(result.rows_affected() == 1)
                    })
                })
                .await
            }

            async fn revoke_user_sessions(
                &self,
                user_id: i64,
                except: Option<Uuid>,
                now: UnixTime,
                reason: &str,
            ) -> StoreResult<u64> {
                let reason = reason.to_owned();
                self.write(move |conn| {
                    Box::pin(async move {
                        let result = sqlx::query(
                            "UPDATE sessions SET revoked_at = $3, revoke_reason = $4 \
                             WHERE user_id = $1 AND revoked_at IS NULL AND ($2 IS NULL OR id <> $2)",
                        )
                        .bind(user_id)
                        .bind(except.map($id))
                        .bind(now)
                        .bind(reason)
                        .execute(&mut *conn)
                        .await
                        .map_err($map_error)?;
                        Ok(result.rows_affected())
                    })
                })
                .await
            }

            async fn count_live_sessions(&self, live: &Liveness) -> StoreResult<i64> {
                retry_broken!(self, {
                    sqlx::query_scalar(concat!(
                        "SELECT count(*) FROM sessions s WHERE ",
                        live!("$1", "$2")
                    ))
                    .bind(live.now)
                    .bind(live.idle_cutoff)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($map_error)
                })
            }

            async fn list_sessions(
                &self,
                f: &SessionFilter,
            ) -> StoreResult<Vec<SessionWithUser>> {
                retry_broken!(self, {
                    let (after_at, after_id) = f
                        .after
                        .map_or((None, None), |(at, id)| (Some(at), Some($id(id))));
                    let rows: Vec<SessionUserRow> = sqlx::query_as(concat!(
                        select_joined!("sessions s JOIN users u ON u.id = s.user_id", "WHERE "),
                        live!("$1", "$2"),
                        " AND ($3 IS NULL OR s.user_id = $3) AND ($4 IS NULL OR u.email = $4) \
                         AND ($5 IS NULL OR s.created_at < $5 OR (s.created_at = $5 AND s.id < $6)) \
                         ORDER BY s.created_at DESC, s.id DESC LIMIT $7"
                    ))
                    .bind(f.live.now)
                    .bind(f.live.idle_cutoff)
                    .bind(f.user_id)
                    .bind(&f.email)
                    .bind(after_at)
                    .bind(after_id)
                    .bind(i64::from(f.limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($map_error)?;
                    rows_into(rows)
                })
            }

            async fn set_user_active(
                &self,
                user_id: i64,
                active: bool,
                now: UnixTime,
                reason: &str,
            ) -> StoreResult<Option<User>> {
                let reason = reason.to_owned();
                self.write(move |conn| {
                    Box::pin(async move {
                        let mut tx = conn.begin().await.map_err($map_error)?;
                        let user: Option<User> =
                            sqlx::query_as("UPDATE users SET is_active = $2 WHERE id = $1 RETURNING *")
                                .bind(user_id)
                                .bind(active)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err($map_error)?;
                        if user.is_some() && !active {
                            sqlx::query(
                                revoke_all_by!("user_id"),
                            )
                            .bind(user_id)
                            .bind(now)
                            .bind(reason)
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        }
                        tx.commit().await.map_err($map_error)?;
                        Ok(user)
                    })
                })
                .await
            }

            async fn change_password(
                &self,
                user_id: i64,
                password_hash: &str,
                keep: Uuid,
                now: UnixTime,
                reason: &str,
            ) -> StoreResult<u64> {
                let (password_hash, reason) = (password_hash.to_owned(), reason.to_owned());
                self.write(move |conn| {
                    Box::pin(async move {
                        let mut tx = conn.begin().await.map_err($map_error)?;
                        sqlx::query(
                            "UPDATE users SET password_hash = $2, password_changed_at = $3 WHERE id = $1",
                        )
                        .bind(user_id)
                        .bind(password_hash)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err($map_error)?;
                        let revoked = sqlx::query(
                            "UPDATE sessions SET revoked_at = $3, revoke_reason = $4 \
                             WHERE user_id = $1 AND revoked_at IS NULL AND id <> $2",
                        )
                        .bind(user_id)
                        .bind($id(keep))
                        .bind(now)
                        .bind(reason)
                        .execute(&mut *tx)
                        .await
                        .map_err($map_error)?;
                        tx.commit().await.map_err($map_error)?;
                        Ok(revoked.rows_affected())
                    })
                })
                .await
            }

            async fn login_failures(&self, keys: &[String]) -> StoreResult<Vec<LoginFailures>> {
                retry_broken!(self, {
                    self.failures(keys).await
                })
            }

            async fn record_login_failure(
                &self,
                key: &str,
                now: UnixTime,
                window_cutoff: UnixTime,
            ) -> StoreResult<()> {
                let key = key.to_owned();
                self.write(move |conn| {
                    Box::pin(async move {
                        sqlx::query(
                            "INSERT INTO login_failures (key, failures, window_start, last_failure_at) \
                             VALUES ($1, 1, $2, $2) ON CONFLICT (key) DO UPDATE SET \
                             failures = CASE WHEN login_failures.window_start < $3 THEN 1 \
                                             ELSE login_failures.failures + 1 END, \
                             window_start = CASE WHEN login_failures.window_start < $3 THEN $2 \
                                                 ELSE login_failures.window_start END, \
                             last_failure_at = $2",
                        )
                        .bind(key)
                        .bind(now)
                        .bind(window_cutoff)
                        .execute(&mut *conn)
                        .await
                        .map_err($map_error)?;
                        Ok(())
                    })
                })
                .await
            }

            async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
                let key = key.to_owned();
                self.write(move |conn| {
                    Box::pin(async move {
                        sqlx::query("DELETE FROM login_failures WHERE key = $1")
                            .bind(key)
                            .execute(&mut *conn)
                            .await
                            .map_err($map_error)?;
                        Ok(())
                    })
                })
                .await
            }

            async fn purge(&self, p: &Purge) -> StoreResult<u64> {
                let p = *p;
                self.write(move |conn| {
                    Box::pin(async move {
                        // Each statement deletes at most one batch, its own short transaction, so
                        // requests interleave between them.
                        let batch = i64::from(p.batch);
                        let mut deleted = 0;
                        // Ordinary sessions past their refresh window whose last token has expired.
                        deleted += sqlx::query(concat!(
                            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
                             WHERE revoked_at IS NULL AND refresh_until < $1 AND rotated_at < $2 \
                             LIMIT $3 ",
                            $skip_locked,
                            ")"
                        ))
                        .bind(p.now)
                        .bind(p.tokens_expired_before)
                        .bind(batch)
                        .execute(&mut *conn)
                        .await
                        .map_err($map_error)?
                        .rows_affected();
                        // Idle-expired sessions whose last token has expired.
                        if let Some(idle_cutoff) = p.idle_cutoff {
                            deleted += sqlx::query(concat!(
                                "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
                                 WHERE revoked_at IS NULL AND last_seen_at < $1 AND rotated_at < $2 \
                                 LIMIT $3 ",
                                $skip_locked,
                                ")"
                            ))
                            .bind(idle_cutoff)
                            .bind(p.tokens_expired_before)
                            .bind(batch)
                            .execute(&mut *conn)
                            .await
                            .map_err($map_error)?
                            .rows_affected();
                        }
                        // Revoked sessions past the retention.
                        deleted += sqlx::query(concat!(
                            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
                             WHERE revoked_at < $1 LIMIT $2 ",
                            $skip_locked,
                            ")"
                        ))
                        .bind(p.revoked_before)
                        .bind(batch)
                        .execute(&mut *conn)
                        .await
                        .map_err($map_error)?
                        .rows_affected();
                        // Failure counters that no longer throttle anyone.
                        deleted += sqlx::query(concat!(
                            "DELETE FROM login_failures WHERE key IN (SELECT key FROM login_failures \
                             WHERE last_failure_at < $1 LIMIT $2 ",
                            $skip_locked,
                            ")"
                        ))
                        .bind(p.failures_before)
                        .bind(batch)
                        .execute(&mut *conn)
                        .await
                        .map_err($map_error)?
                        .rows_affected();
                        Ok(deleted)
                    })
                })
                .await
            }

            async fn rotate_session(&self, r: &Rotation) -> StoreResult<Option<SessionWithUser>> {
                retry_broken!(self, {
                    self.rotate(r).await
                })
            }

            async fn revoke_session(
                &self,
                id: Uuid,
                gen: Option<i64>,
                now: UnixTime,
                reason: &str,
            ) -> StoreResult<bool> {
                let reason = reason.to_owned();
                self.write(move |conn| {
                    Box::pin(async move {
                        let result = sqlx::query(
                            "UPDATE sessions SET revoked_at = $2, revoke_reason = $3 \
                             WHERE id = $1 AND revoked_at IS NULL AND ($4 IS NULL OR gen = $4)",
                        )
                        .bind($id(id))
                        .bind(now)
                        .bind(reason)
                        .bind(gen)
                        .execute(&mut *conn)
                        .await
                        .map_err($map_error)?;
                        Ok(result.rows_affected() == 1)
                    })
                })
                .await
            }

            async fn signing_keys(&self) -> StoreResult<Vec<KeyRow>> {
                retry_broken!(self, {
                    sqlx::query_as("SELECT * FROM signing_keys ORDER BY activates_at, kid")
                        .fetch_all(&self.pool)
                        .await
                        .map_err($map_error)
                })
            }

            async fn insert_signing_key(&self, key: &KeyRow) -> StoreResult<bool> {
                let key = key.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        let result = sqlx::query(
                            "INSERT INTO signing_keys \
                             (kid, algorithm, secret, public_key, created_at, activates_at) \
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kid) DO NOTHING",
                        )
                        .bind(&key.kid)
                        .bind(&key.algorithm)
                        .bind(&key.secret)
                        .bind(&key.public_key)
                        .bind(key.created_at)
                        .bind(key.activates_at)
                        .execute(&mut *conn)
                        .await
                        .map_err($map_error)?;
                        Ok(result.rows_affected() == 1)
                    })
                })
                .await
            }

            async fn update_signing_key_secret(&self, kid: &str, secret: &str) -> StoreResult<()> {
                let (kid, secret) = (kid.to_owned(), secret.to_owned());
                self.write(move |conn| {
                    Box::pin(async move {
                        sqlx::query("UPDATE signing_keys SET secret = $2 WHERE kid = $1")
                            .bind(kid)
                            .bind(secret)
                            .execute(&mut *conn)
                            .await
                            .map_err($map_error)?;
                        Ok(())
                    })
                })
                .await
            }

            async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
                retry_broken!(self, {
                    sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($map_error)
                })
            }

            async fn delete_setting(&self, key: &str) -> StoreResult<()> {
                let key = key.to_owned();
                self.write(move |conn| {
                    Box::pin(async move {
                        sqlx::query("DELETE FROM settings WHERE key = $1")
                            .bind(key)
                            .execute(&mut *conn)
                            .await
                            .map_err($map_error)?;
                        Ok(())
                    })
                })
                .await
            }

            async fn setting_or_insert(&self, key: &str, value: &str) -> StoreResult<String> {
                let (key, value) = (key.to_owned(), value.to_owned());
                self.write(move |conn| {
                    Box::pin(async move {
                        sqlx::query(
                            "INSERT INTO settings (key, value) VALUES ($1, $2) \
                             ON CONFLICT (key) DO NOTHING",
                        )
                        .bind(&key)
                        .bind(value)
                        .execute(&mut *conn)
                        .await
                        .map_err($map_error)?;
                        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                            .bind(key)
                            .fetch_one(&mut *conn)
                            .await
                            .map_err($map_error)
                    })
                })
                .await
            }

            async fn update_profile(
                &self,
                user_id: i64,
                c: &ProfileChange,
            ) -> StoreResult<Option<User>> {
                let c = c.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        // Each nullable column has a "write it" flag, so a value of NULL can clear it;
                        // columns the change does not name keep what a concurrent update wrote. The
                        // email condition makes a password change that commits first win.
                        sqlx::query_as(
                            "UPDATE users SET name = COALESCE($2, name), \
                             first_name = CASE WHEN $3 THEN $4 ELSE first_name END, \
                             last_name = CASE WHEN $5 THEN $6 ELSE last_name END, \
                             phone = CASE WHEN $7 THEN $8 ELSE phone END, \
                             email = COALESCE($9, email) \
                             WHERE id = $1 AND ($9 IS NULL OR password_hash = $10) RETURNING *",
                        )
                        .bind(user_id)
                        .bind(&c.name)
                        .bind(c.first_name.is_some())
                        .bind(c.first_name.as_ref().and_then(Option::as_deref))
                        .bind(c.last_name.is_some())
                        .bind(c.last_name.as_ref().and_then(Option::as_deref))
                        .bind(c.phone.is_some())
                        .bind(c.phone.as_ref().and_then(Option::as_deref))
                        .bind(&c.email)
                        .bind(&c.verified_hash)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err($map_error)
                    })
                })
                .await
            }

            async fn all_users(&self) -> StoreResult<Vec<StoredUser>> {
                retry_broken!(self, {
                    sqlx::query_as("SELECT * FROM users ORDER BY id")
                        .fetch_all(&self.pool)
                        .await
                        .map_err($map_error)
                })
            }

            async fn import_users(&self, import: &UserImport) -> StoreResult<()> {
                let import = import.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        let mut tx = conn.begin().await.map_err($map_error)?;
                        for batch in import.users.chunks($crate::store::sql::IMPORT_BATCH) {
                            // The one statement whose text is assembled at run time: fixed fragments
                            // and a placeholder per value (QueryBuilder binds every value), one row
                            // group per user, so 100 000 users are a hundred statements.
                            let mut upsert = sqlx::QueryBuilder::<Db>::new(
                                "INSERT INTO users (id, email, username, password_hash, name, \
                                 first_name, last_name, is_sys_admin, is_active, created_at, \
                                 last_login_at, password_changed_at, imported_hash) ",
                            );
                            upsert.push_values(batch, |mut row, u| {
                                row.push_bind(u.id)
                                    .push_bind(u.email.clone())
                                    .push_bind(u.username.clone())
                                    .push_bind(u.password_hash.clone())
                                    .push_bind(u.name.clone())
                                    .push_bind(u.first_name.clone())
                                    .push_bind(u.last_name.clone())
                                    .push_bind(u.is_sys_admin)
                                    .push_bind(u.is_active)
                                    .push_bind(u.created_at)
                                    .push_bind(u.last_login_at)
                                    .push_bind(u.password_changed_at)
                                    .push_bind(u.imported_hash.clone());
                            });
                            upsert.push(
                                " ON CONFLICT (id) DO UPDATE SET email = excluded.email, \
                                 username = excluded.username, password_hash = excluded.password_hash, \
                                 name = excluded.name, first_name = excluded.first_name, \
                                 last_name = excluded.last_name, is_sys_admin = excluded.is_sys_admin, \
                                 is_active = excluded.is_active, \
                                 password_changed_at = excluded.password_changed_at, \
                                 imported_hash = excluded.imported_hash",
                            );
                            upsert
                                .build()
                                .execute(&mut *tx)
                                .await
                                .map_err($map_error)?;
                        }
                        for user_id in &import.deactivated {
                            sqlx::query(
                                revoke_all_by!("user_id"),
                            )
                            .bind(user_id)
                            .bind(import.now)
                            .bind(import.reason)
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        }
                        if let Some(highest) = import.users.iter().map(|u| u.id).max() {
                            Self::advance_user_ids(&mut tx, highest).await?;
                        }
                        tx.commit().await.map_err($map_error)
                    })
                })
                .await
            }

            // Apps, API keys and roles.

            async fn create_app(&self, app: &NewApp) -> StoreResult<App> {
                let app = app.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        sqlx::query_as(concat!(
                            "INSERT INTO apps (name, description, is_active, role_id, url, api_key, \
                             api_key_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                             RETURNING ",
                            app_columns!()
                        ))
                        .bind(&app.name)
                        .bind(&app.description)
                        .bind(app.is_active)
                        .bind(app.role_id)
                        .bind(&app.url)
                        .bind(&app.api_key)
                        .bind(&app.api_key_hash)
                        .bind(app.created_at)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err($map_error)
                    })
                })
                .await
            }

            async fn apps(&self) -> StoreResult<Vec<App>> {
                sqlx::query_as(concat!("SELECT ", app_columns!(), " FROM apps ORDER BY id"))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($map_error)
            }

            async fn app(&self, id: i64) -> StoreResult<Option<App>> {
                sqlx::query_as(concat!("SELECT ", app_columns!(), " FROM apps WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($map_error)
            }

            async fn app_by_name(&self, name: &str) -> StoreResult<Option<App>> {
                sqlx::query_as(concat!("SELECT ", app_columns!(), " FROM apps WHERE name = $1"))
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($map_error)
            }

            async fn app_by_key_hash(&self, api_key_hash: &str) -> StoreResult<Option<App>> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    app_columns!(),
                    " FROM apps WHERE api_key_hash = $1"
                ))
                .bind(api_key_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err($map_error)
            }

            async fn update_app(
                &self,
                id: i64,
                c: &AppChange,
                now: UnixTime,
            ) -> StoreResult<Option<App>> {
                let c = c.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        let mut tx = conn.begin().await.map_err($map_error)?;
                        // The row lock this takes makes logins through the app that are still
                        // checking it commit first; the revocations below then see their sessions.
                        let app: Option<App> = sqlx::query_as(concat!(
                            "UPDATE apps SET name = COALESCE($2, name), \
                             description = CASE WHEN $3 THEN $4 ELSE description END, \
                             is_active = COALESCE($5, is_active), \
                             role_id = CASE WHEN $6 THEN $7 ELSE role_id END, \
                             url = CASE WHEN $8 THEN $9 ELSE url END, \
                             api_key = COALESCE($10, api_key), \
                             api_key_hash = COALESCE($11, api_key_hash) \
                             WHERE id = $1 RETURNING ",
                            app_columns!()
                        ))
                        .bind(id)
                        .bind(&c.name)
                        .bind(c.description.is_some())
                        .bind(c.description.as_ref().and_then(Option::as_deref))
                        .bind(c.is_active)
                        .bind(c.role_id.is_some())
                        .bind(c.role_id.flatten())
                        .bind(c.url.is_some())
                        .bind(c.url.as_ref().and_then(Option::as_deref))
                        .bind(c.api_key.as_ref().map(|(key, _)| key.as_str()))
                        .bind(c.api_key.as_ref().map(|(_, hash)| hash.as_str()))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err($map_error)?;
                        let Some(app) = app else {
                            return Ok(None);
                        };
                        if !app.is_active {
                            sqlx::query(
                                revoke_all_by!("app_id"),
                            )
                            .bind(id)
                            .bind(now)
                            .bind(c.disabled_reason)
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        } else if c.role_id.is_some() {
                            sqlx::query(revoke_changed_roles!())
                                .bind(id)
                                .bind(now)
                                .bind(c.role_changed_reason)
                                .bind(None::<i64>)
                                .execute(&mut *tx)
                                .await
                                .map_err($map_error)?;
                        }
                        tx.commit().await.map_err($map_error)?;
                        Ok(Some(app))
                    })
                })
                .await
            }

            async fn delete_app(&self, id: i64, now: UnixTime, reason: &str) -> StoreResult<bool> {
                let reason = reason.to_owned();
                self.write(move |conn| {
                    Box::pin(async move {
                        let mut tx = conn.begin().await.map_err($map_error)?;
                        // Locks the row first (see `update_app`), then ends the sessions it had.
                        let found = sqlx::query("UPDATE apps SET is_active = FALSE WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        if found.rows_affected() != 1 {
                            return Ok(false);
                        }
                        sqlx::query(
                            revoke_all_by!("app_id"),
                        )
                        .bind(id)
                        .bind(now)
                        .bind(reason)
                        .execute(&mut *tx)
                        .await
                        .map_err($map_error)?;
                        sqlx::query("DELETE FROM apps WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        tx.commit().await.map_err($map_error)?;
                        Ok(true)
                    })
                })
                .await
            }

            async fn create_role(&self, role: &NewRole) -> StoreResult<Role> {
                let role = role.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        sqlx::query_as(
                            "INSERT INTO roles (name, description, is_active, created_at) \
                             VALUES ($1, $2, $3, $4) RETURNING *",
                        )
                        .bind(&role.name)
                        .bind(&role.description)
                        .bind(role.is_active)
                        .bind(role.created_at)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err($map_error)
                    })
                })
                .await
            }

            async fn roles(&self) -> StoreResult<Vec<Role>> {
                sqlx::query_as("SELECT * FROM roles ORDER BY id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err($map_error)
            }

            async fn role(&self, id: i64) -> StoreResult<Option<Role>> {
                sqlx::query_as("SELECT * FROM roles WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($map_error)
            }

            async fn role_by_name(&self, name: &str) -> StoreResult<Option<Role>> {
                sqlx::query_as("SELECT * FROM roles WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($map_error)
            }

            async fn update_role(
                &self,
                id: i64,
                c: &RoleChange,
                now: UnixTime,
            ) -> StoreResult<Option<Role>> {
                let c = c.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        let mut tx = conn.begin().await.map_err($map_error)?;
                        // A write that changes nothing takes the row's lock first: logins holding the
                        // role commit before it, and the name read next is the one they stored.
                        sqlx::query("UPDATE roles SET is_active = is_active WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        let before: Option<Role> = sqlx::query_as("SELECT * FROM roles WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        let Some(before) = before else {
                            return Ok(None);
                        };
                        let role: Role = sqlx::query_as(
                            "UPDATE roles SET name = COALESCE($2, name), \
                             description = CASE WHEN $3 THEN $4 ELSE description END, \
                             is_active = COALESCE($5, is_active) WHERE id = $1 RETURNING *",
                        )
                        .bind(id)
                        .bind(&c.name)
                        .bind(c.description.is_some())
                        .bind(c.description.as_ref().and_then(Option::as_deref))
                        .bind(c.is_active)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err($map_error)?;
                        let reason = if !role.is_active {
                            Some(c.disabled_reason)
                        } else if role.name != before.name {
                            Some(c.renamed_reason)
                        } else {
                            None
                        };
                        if let Some(reason) = reason {
                            sqlx::query(
                                revoke_all_by!("role_id"),
                            )
                            .bind(id)
                            .bind(now)
                            .bind(reason)
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        }
                        tx.commit().await.map_err($map_error)?;
                        Ok(Some(role))
                    })
                })
                .await
            }

            async fn delete_role(&self, id: i64, now: UnixTime, reason: &str) -> StoreResult<bool> {
                let reason = reason.to_owned();
                self.write(move |conn| {
                    Box::pin(async move {
                        let mut tx = conn.begin().await.map_err($map_error)?;
                        let found = sqlx::query("UPDATE roles SET is_active = FALSE WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        if found.rows_affected() != 1 {
                            return Ok(false);
                        }
                        sqlx::query(
                            revoke_all_by!("role_id"),
                        )
                        .bind(id)
                        .bind(now)
                        .bind(reason)
                        .execute(&mut *tx)
                        .await
                        .map_err($map_error)?;
                        // Apps lose it as their default, users their assignments of it (the schema's
                        // ON DELETE rules).
                        sqlx::query("DELETE FROM roles WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        tx.commit().await.map_err($map_error)?;
                        Ok(true)
                    })
                })
                .await
            }

            async fn set_user_app_roles(
                &self,
                user_id: i64,
                assignments: &[(i64, Option<i64>)],
                now: UnixTime,
                reason: &str,
            ) -> StoreResult<Option<Vec<UserAppRole>>> {
                let (assignments, reason) = (assignments.to_vec(), reason.to_owned());
                self.write(move |conn| {
                    Box::pin(async move {
                        let mut tx = conn.begin().await.map_err($map_error)?;
                        // A write to the user's row takes the lock every login of the user takes
                        // first: a login still resolving its role commits before this, and the
                        // revocation below then sees its session.
                        let found = sqlx::query("UPDATE users SET is_active = is_active WHERE id = $1")
                            .bind(user_id)
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        if found.rows_affected() != 1 {
                            return Ok(None);
                        }
                        for (app_id, role_id) in assignments {
                            match role_id {
                                Some(role_id) => sqlx::query(
                                    "INSERT INTO user_app_roles (user_id, app_id, role_id) \
                                     VALUES ($1, $2, $3) ON CONFLICT (user_id, app_id) \
                                     DO UPDATE SET role_id = excluded.role_id",
                                )
                                .bind(user_id)
                                .bind(app_id)
                                .bind(role_id),
                                None => sqlx::query(
                                    "DELETE FROM user_app_roles WHERE user_id = $1 AND app_id = $2",
                                )
                                .bind(user_id)
                                .bind(app_id),
                            }
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                            sqlx::query(revoke_changed_roles!())
                                .bind(app_id)
                                .bind(now)
                                .bind(&reason)
                                .bind(Some(user_id))
                                .execute(&mut *tx)
                                .await
                                .map_err($map_error)?;
                        }
                        let assigned: Vec<UserAppRole> = sqlx::query_as(
                            "SELECT user_id, app_id, role_id FROM user_app_roles WHERE user_id = $1 \
                             ORDER BY app_id",
                        )
                        .bind(user_id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err($map_error)?;
                        tx.commit().await.map_err($map_error)?;
                        Ok(Some(assigned))
                    })
                })
                .await
            }

            async fn user_app_roles(&self, user_id: i64) -> StoreResult<Vec<UserAppRole>> {
                sqlx::query_as(
                    "SELECT user_id, app_id, role_id FROM user_app_roles WHERE user_id = $1 \
                     ORDER BY app_id",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err($map_error)
            }

            async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
                sqlx::query_as("SELECT * FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($map_error)
            }

            // User administration (the `tenure user` commands).

            async fn list_users(
                &self,
                email: Option<&str>,
                live: &Liveness,
            ) -> StoreResult<Vec<UserSummary>> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    user_columns!(),
                    ", (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND ",
                    live!("$1", "$2"),
                    ") AS live_sessions FROM users u WHERE ($3 IS NULL OR u.email = $3) \
                     ORDER BY u.id"
                ))
                .bind(live.now)
                .bind(live.idle_cutoff)
                .bind(email)
                .fetch_all(&self.pool)
                .await
                .map_err($map_error)
            }

            async fn has_users(&self) -> StoreResult<bool> {
                let found: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM (SELECT 1 FROM users LIMIT 1) t")
                        .fetch_one(&self.pool)
                        .await
                        .map_err($map_error)?;
                Ok(found > 0)
            }

            async fn reset_password(
                &self,
                user_id: i64,
                password_hash: &str,
                now: UnixTime,
                reason: &str,
            ) -> StoreResult<Option<u64>> {
                let (password_hash, reason) = (password_hash.to_owned(), reason.to_owned());
                self.write(move |conn| {
                    Box::pin(async move {
                        let mut tx = conn.begin().await.map_err($map_error)?;
                        let updated = sqlx::query(
                            "UPDATE users SET password_hash = $2, password_changed_at = $3 WHERE id = $1",
                        )
                        .bind(user_id)
                        .bind(password_hash)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err($map_error)?;
                        if updated.rows_affected() != 1 {
                            return Ok(None);
                        }
                        let revoked = sqlx::query(
                            revoke_all_by!("user_id"),
                        )
                        .bind(user_id)
                        .bind(now)
                        .bind(reason)
                        .execute(&mut *tx)
                        .await
                        .map_err($map_error)?;
                        tx.commit().await.map_err($map_error)?;
                        Ok(Some(revoked.rows_affected()))
                    })
                })
                .await
            }

            async fn delete_user(&self, user_id: i64) -> StoreResult<Option<u64>> {
                self.write(move |conn| {
                    Box::pin(async move {
                        let mut tx = conn.begin().await.map_err($map_error)?;
                        // Writing the user's row first takes its row lock (PostgreSQL) or the write
                        // lock (SQLite): a login, whose transaction writes the same row first, waits
                        // and then finds no user. The sessions go explicitly, not only by the foreign
                        // key's ON DELETE CASCADE, so the count below is the set that is deleted.
                        let locked = sqlx::query("UPDATE users SET is_active = FALSE WHERE id = $1")
                            .bind(user_id)
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        if locked.rows_affected() != 1 {
                            return Ok(None);
                        }
                        let unrevoked: i64 = sqlx::query_scalar(
                            "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
                        )
                        .bind(user_id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err($map_error)?;
                        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                            .bind(user_id)
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        sqlx::query("DELETE FROM users WHERE id = $1")
                            .bind(user_id)
                            .execute(&mut *tx)
                            .await
                            .map_err($map_error)?;
                        tx.commit().await.map_err($map_error)?;
                        Ok(Some(unrevoked as u64))
                    })
                })
                .await
            }
        }
        };
    };
}
