-- Stored sessions for the scale runs: :count forever sessions of one seed user, with ids
-- md5('bench' || n) so pgbench can address them. Idempotent: only missing rows are added.
INSERT INTO users (email, password_hash, name, created_at, password_changed_at)
VALUES ('seed@bench.invalid', 'not-a-hash', 'seed', 0, 0) ON CONFLICT (email) DO NOTHING;
INSERT INTO sessions (id, user_id, forever, gen, rotated_at, created_at, last_seen_at)
SELECT md5('bench' || n)::uuid, (SELECT id FROM users WHERE email = 'seed@bench.invalid'),
       true, 0, :now, :now, :now
FROM generate_series(1, :count) AS n
ON CONFLICT (id) DO NOTHING;
VACUUM ANALYZE sessions;
