-- DreamFactory's apps, API keys and roles (issue 15), and what a session remembers of them.
--
-- An app's API key identifies a frontend (DreamFactory shows it in app records, and so does
-- tenure); `api_key_hash` (SHA-256, hex) is what a presented key is looked up by, so the lookup
-- never compares key material in SQL, and the stored key is then compared in constant time.
CREATE TABLE roles (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    description TEXT,
    is_active   INTEGER NOT NULL DEFAULT 1,
    created_at  BIGINT NOT NULL,
    CONSTRAINT roles_name_key UNIQUE (name)
);

CREATE TABLE apps (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    description  TEXT,
    is_active    INTEGER NOT NULL DEFAULT 1,
    role_id      BIGINT REFERENCES roles (id) ON DELETE SET NULL,   -- the app's default role
    url          TEXT,
    api_key      TEXT NOT NULL,                                     -- 64 lowercase hex
    api_key_hash TEXT NOT NULL,                                     -- SHA-256 of it, hex
    created_at   BIGINT NOT NULL,
    CONSTRAINT apps_name_key UNIQUE (name),
    CONSTRAINT apps_api_key_hash_key UNIQUE (api_key_hash)
);

-- DreamFactory's user_to_app_to_role: a user's role for one app, before the app's default.
CREATE TABLE user_app_roles (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    app_id  BIGINT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    role_id BIGINT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, app_id)
);
CREATE INDEX user_app_roles_role_id_idx ON user_app_roles (role_id);

-- The app whose key the login sent, and the role the login resolved, kept as they were at
-- login (the token's `role` claim derives from the row, so a racer's successor token is
-- byte-identical); a change to either ends the sessions it affects.
ALTER TABLE sessions ADD COLUMN app_id BIGINT REFERENCES apps (id) ON DELETE SET NULL;
ALTER TABLE sessions ADD COLUMN role_id BIGINT;
ALTER TABLE sessions ADD COLUMN role_name TEXT;

-- Ending an app's or a role's sessions; the per-address session cap.
CREATE INDEX sessions_app_id_idx ON sessions (app_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_role_id_idx ON sessions (role_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_ip_idx ON sessions (ip) WHERE revoked_at IS NULL;
