-- Sessions that were given a refresh credential at login (X-Tenure-Refresh: body or cookie).
-- The credential itself is never stored: it is derived from the session id, its gen and a
-- server key. A session with a mode refreshes only with its credential, never with the
-- expired access token alone.
ALTER TABLE sessions ADD COLUMN refresh_mode TEXT;
