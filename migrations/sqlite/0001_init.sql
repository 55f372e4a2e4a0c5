-- Users, sessions (one row per login) and server settings such as the generated signing secret.
-- Timestamps are Unix seconds, the unit of JWT claims, identical on both backends.

CREATE TABLE users (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    email               TEXT NOT NULL,             -- stored lower-cased: unique case-insensitively
    username            TEXT,                      -- stored lower-cased when present
    password_hash       TEXT NOT NULL,             -- Argon2id PHC string
    name                TEXT NOT NULL,
    first_name          TEXT,
    last_name           TEXT,
    is_sys_admin        INTEGER NOT NULL DEFAULT 0,
    is_active           INTEGER NOT NULL DEFAULT 1,
    created_at          BIGINT NOT NULL,
    last_login_at       BIGINT,
    password_changed_at BIGINT NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_username_key UNIQUE (username)
);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    forever       INTEGER NOT NULL,
    gen           BIGINT NOT NULL,                 -- rotation counter, bumped by every refresh
    rotated_at    BIGINT NOT NULL,                 -- when gen last changed (login time at first)
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    refresh_until BIGINT,                          -- NULL for forever sessions
    device        TEXT,
    user_agent    TEXT,
    ip            TEXT,
    revoked_at    BIGINT,
    revoke_reason TEXT
);

-- Listing a user's sessions, newest first; revoking all of a user's sessions.
CREATE INDEX sessions_user_id_created_at_idx ON sessions (user_id, created_at DESC);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
