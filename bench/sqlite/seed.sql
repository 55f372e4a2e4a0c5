-- Stored sessions for the SQLite scale runs, as bench/pgbench/seed.sql is for PostgreSQL:
-- :count forever sessions of one seed user. Their ids are random UUIDs (tenure's are v4), so
-- the primary key is as scattered as a real one. Idempotent: only the missing rows are added.
-- Run by `python3 bench/client.py sql DB bench/sqlite/seed.sql now=<unix s> count=<n>`.
INSERT INTO users (email, password_hash, name, created_at, password_changed_at)
VALUES ('seed@bench.invalid', 'not-a-hash', 'seed', 0, 0) ON CONFLICT (email) DO NOTHING;
BEGIN;
WITH RECURSIVE n(i) AS (
    SELECT count(*) + 1 FROM sessions
    WHERE user_id = (SELECT id FROM users WHERE email = 'seed@bench.invalid')
    UNION ALL
    SELECT i + 1 FROM n WHERE i < :count
)
INSERT INTO sessions (id, user_id, forever, gen, rotated_at, created_at, last_seen_at)
SELECT lower(substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-a'
             || substr(h, 18, 3) || '-' || substr(h, 21, 12)),
       (SELECT id FROM users WHERE email = 'seed@bench.invalid'), 1, 0, :now, :now, :now
FROM (SELECT hex(randomblob(16)) AS h FROM n WHERE i <= :count);
COMMIT;
ANALYZE;
PRAGMA wal_checkpoint(TRUNCATE);
