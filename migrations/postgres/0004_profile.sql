-- DreamFactory's profile field `phone` (GET/POST /api/v2/user/profile). NULL when the user
-- never gave one.
ALTER TABLE users ADD COLUMN phone TEXT;
