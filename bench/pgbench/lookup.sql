-- tenure's session check (src/store/postgres/lookup.rs; the columns are select_joined! in src/store/sql.rs): a key lookup of the
-- session joined with its user, on a random seeded session. (The last-seen write that follows
-- at most once per LAST_SEEN_RESOLUTION per session is not part of the check.)
\set n random(1, :sessions)
SELECT s.id::text AS s_id, s.user_id AS s_user_id, s.forever AS s_forever, s.gen AS s_gen,
    s.rotated_at AS s_rotated_at, s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at,
    s.refresh_until AS s_refresh_until, s.device AS s_device, s.user_agent AS s_user_agent,
    s.ip AS s_ip, s.revoked_at AS s_revoked_at, s.revoke_reason AS s_revoke_reason,
    u.id, u.email, u.username, u.password_hash, u.name, u.first_name, u.last_name,
    u.is_sys_admin, u.is_active, u.created_at, u.last_login_at, u.password_changed_at
FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = md5('bench' || :n)::uuid;
