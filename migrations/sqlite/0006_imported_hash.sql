-- What a user's last import brought as password hash, as a digest ('sha256:<hex>' of the hash
-- string, never the hash): importing the same file again then leaves alone a hash that the
-- user's first login has upgraded to Argon2id since, while a hash changed at the source
-- (another digest) still replaces it.
ALTER TABLE users ADD COLUMN imported_hash TEXT;
