-- tenure's refresh statement for one session (src/store/postgres/rotation.rs, ROTATE_ONE; the rule itself is refresh_rule! in src/store/sql.rs), on a
-- random seeded session. The one difference: pgbench cannot know each row's gen, so
-- `gen = $2` is left out.
\set n random(1, :sessions)
WITH s AS (UPDATE sessions SET gen = gen + 1, rotated_at = :now, last_seen_at = :now
   WHERE id = md5('bench' || :n)::uuid AND revoked_at IS NULL
     AND (refresh_until IS NULL OR refresh_until >= :now)
     AND (NULL::BIGINT IS NULL OR last_seen_at >= 0)
     AND EXISTS (SELECT 1 FROM users x WHERE x.id = sessions.user_id
                 AND x.is_active AND (x.is_sys_admin OR NOT false))
   RETURNING *)
SELECT s.id::text AS s_id, s.user_id AS s_user_id, s.forever AS s_forever, s.gen AS s_gen,
    s.rotated_at AS s_rotated_at, s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at,
    s.refresh_until AS s_refresh_until, s.device AS s_device, s.user_agent AS s_user_agent,
    s.ip AS s_ip, s.revoked_at AS s_revoked_at, s.revoke_reason AS s_revoke_reason,
    u.id, u.email, u.username, u.password_hash, u.name, u.first_name, u.last_name,
    u.is_sys_admin, u.is_active, u.created_at, u.last_login_at, u.password_changed_at
FROM s JOIN users u ON u.id = s.user_id;
