-- Failed logins per account and per client IP, shared by every replica (login throttling).
CREATE TABLE login_failures (
    key             TEXT PRIMARY KEY,      -- 'account:<login>' or 'ip:<address>'
    failures        BIGINT NOT NULL,
    window_start    BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL
);
CREATE INDEX login_failures_last_failure_at_idx ON login_failures (last_failure_at);

-- The purge's lookups, and the admin listing's order.
CREATE INDEX sessions_refresh_until_idx ON sessions (refresh_until)
    WHERE revoked_at IS NULL AND refresh_until IS NOT NULL;
CREATE INDEX sessions_last_seen_at_idx ON sessions (last_seen_at) WHERE revoked_at IS NULL;
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX sessions_created_at_id_idx ON sessions (created_at DESC, id DESC);
