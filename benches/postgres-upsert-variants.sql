-- Where the PostgreSQL sink's keyed upsert spends its time, statement by
-- statement, and what other forms of the same upsert would cost
-- (BENCHMARKS.md, "PostgreSQL sink"). Run against a throwaway server:
--
--   psql "$RUNNEL_POSTGRES" -v ON_ERROR_STOP=1 -f benches/postgres-upsert-variants.sql
--
-- Each variant stages 10,000 distinct keys (the sink stages with binary
-- COPY; here INSERT … SELECT fills the same temporary table), then updates
-- the same 10,000 keys of a table that holds them, two or three times.
-- Every statement runs in its own transaction, as the sink's epochs do.
-- The last two sections are the statement the sink sends since it
-- updates in a join (on the table as it was, and as the sink creates it).
\set ON_ERROR_STOP 1
\pset pager off
\o /dev/null
DROP TABLE IF EXISTS upsert_plain, upsert_ff50;
CREATE TABLE upsert_plain (id bigint, amount double precision, label text, at timestamptz,
    PRIMARY KEY (id));
CREATE TABLE upsert_ff50 (id bigint, amount double precision, label text, at timestamptz,
    PRIMARY KEY (id)) WITH (fillfactor = 50);
CREATE TEMP TABLE runnel_stage (id bigint, amount double precision, label text,
    at timestamptz, __runnel_seq bigint) ON COMMIT DELETE ROWS;
INSERT INTO upsert_plain SELECT g, g * 0.25, 'customer-' || lpad(g::text, 8, '0'), now()
    FROM generate_series(0, 9999) g;
INSERT INTO upsert_ff50 SELECT * FROM upsert_plain;
VACUUM ANALYZE upsert_plain, upsert_ff50;
\o

\echo '== the sink''s statement: INSERT … SELECT DISTINCT ON … ON CONFLICT DO UPDATE (plain table)'
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 1, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
EXPLAIN (ANALYZE, BUFFERS, WAL, COSTS OFF)
INSERT INTO upsert_plain (id, amount, label, at)
    SELECT DISTINCT ON (id) id, amount, label, at FROM runnel_stage ORDER BY id, __runnel_seq DESC
    ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, label = EXCLUDED.label, at = EXCLUDED.at;
COMMIT;
\timing on
\o /dev/null
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 2, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
\o
INSERT INTO upsert_plain (id, amount, label, at)
    SELECT DISTINCT ON (id) id, amount, label, at FROM runnel_stage ORDER BY id, __runnel_seq DESC
    ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, label = EXCLUDED.label, at = EXCLUDED.at;
COMMIT;
\o /dev/null
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 3, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
\o
INSERT INTO upsert_plain (id, amount, label, at)
    SELECT DISTINCT ON (id) id, amount, label, at FROM runnel_stage ORDER BY id, __runnel_seq DESC
    ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, label = EXCLUDED.label, at = EXCLUDED.at;
COMMIT;
\timing off

\echo '== the sort alone: SELECT DISTINCT ON … ORDER BY over the stage'
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
EXPLAIN (ANALYZE, COSTS OFF)
    SELECT DISTINCT ON (id) id, amount, label, at FROM runnel_stage ORDER BY id, __runnel_seq DESC;
COMMIT;

\echo '== UPDATE … FROM (DISTINCT ON …) (plain table)'
\timing on
\o /dev/null
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 4, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
\o
UPDATE upsert_plain t SET amount = s.amount, label = s.label, at = s.at
    FROM (SELECT DISTINCT ON (id) id, amount, label, at FROM runnel_stage
          ORDER BY id, __runnel_seq DESC) s
    WHERE t.id = s.id;
COMMIT;
\o /dev/null
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 5, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
\o
UPDATE upsert_plain t SET amount = s.amount, label = s.label, at = s.at
    FROM (SELECT DISTINCT ON (id) id, amount, label, at FROM runnel_stage
          ORDER BY id, __runnel_seq DESC) s
    WHERE t.id = s.id;
COMMIT;
\timing off

\echo '== the sink''s statement on a table created WITH (fillfactor = 50): HOT updates'
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 1, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
EXPLAIN (ANALYZE, BUFFERS, WAL, COSTS OFF)
INSERT INTO upsert_ff50 (id, amount, label, at)
    SELECT DISTINCT ON (id) id, amount, label, at FROM runnel_stage ORDER BY id, __runnel_seq DESC
    ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, label = EXCLUDED.label, at = EXCLUDED.at;
COMMIT;
\timing on
\o /dev/null
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 2, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
\o
INSERT INTO upsert_ff50 (id, amount, label, at)
    SELECT DISTINCT ON (id) id, amount, label, at FROM runnel_stage ORDER BY id, __runnel_seq DESC
    ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, label = EXCLUDED.label, at = EXCLUDED.at;
COMMIT;
\timing off

\echo '== UPDATE … FROM on the fillfactor-50 table'
\timing on
\o /dev/null
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 3, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
\o
UPDATE upsert_ff50 t SET amount = s.amount, label = s.label, at = s.at
    FROM (SELECT DISTINCT ON (id) id, amount, label, at FROM runnel_stage
          ORDER BY id, __runnel_seq DESC) s
    WHERE t.id = s.id;
COMMIT;
\o /dev/null
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 4, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
\o
UPDATE upsert_ff50 t SET amount = s.amount, label = s.label, at = s.at
    FROM (SELECT DISTINCT ON (id) id, amount, label, at FROM runnel_stage
          ORDER BY id, __runnel_seq DESC) s
    WHERE t.id = s.id;
COMMIT;
\timing off

\echo '== the sink''s statement now (keys all different, so no DISTINCT ON): UPDATE … FROM the stage, INSERT of the other keys … ON CONFLICT DO UPDATE (plain table)'
\timing on
\o /dev/null
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 6, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
\o
WITH u AS (UPDATE upsert_plain t SET amount = s.amount, label = s.label, at = s.at
           FROM runnel_stage s WHERE t.id = s.id RETURNING t.id)
INSERT INTO upsert_plain (id, amount, label, at) SELECT s.id, s.amount, s.label, s.at FROM runnel_stage s
    WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = s.id)
    ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, label = EXCLUDED.label, at = EXCLUDED.at;
COMMIT;
\o /dev/null
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 7, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
\o
WITH u AS (UPDATE upsert_plain t SET amount = s.amount, label = s.label, at = s.at
           FROM runnel_stage s WHERE t.id = s.id RETURNING t.id)
INSERT INTO upsert_plain (id, amount, label, at) SELECT s.id, s.amount, s.label, s.at FROM runnel_stage s
    WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = s.id)
    ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, label = EXCLUDED.label, at = EXCLUDED.at;
COMMIT;
\o /dev/null
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 8, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
\o
WITH u AS (UPDATE upsert_plain t SET amount = s.amount, label = s.label, at = s.at
           FROM runnel_stage s WHERE t.id = s.id RETURNING t.id)
INSERT INTO upsert_plain (id, amount, label, at) SELECT s.id, s.amount, s.label, s.at FROM runnel_stage s
    WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = s.id)
    ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, label = EXCLUDED.label, at = EXCLUDED.at;
COMMIT;
\timing off

\echo '== the same on the fillfactor-50 table (what the sink creates)'
\timing on
\o /dev/null
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 5, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
\o
WITH u AS (UPDATE upsert_ff50 t SET amount = s.amount, label = s.label, at = s.at
           FROM runnel_stage s WHERE t.id = s.id RETURNING t.id)
INSERT INTO upsert_ff50 (id, amount, label, at) SELECT s.id, s.amount, s.label, s.at FROM runnel_stage s
    WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = s.id)
    ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, label = EXCLUDED.label, at = EXCLUDED.at;
COMMIT;
\o /dev/null
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 6, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
\o
WITH u AS (UPDATE upsert_ff50 t SET amount = s.amount, label = s.label, at = s.at
           FROM runnel_stage s WHERE t.id = s.id RETURNING t.id)
INSERT INTO upsert_ff50 (id, amount, label, at) SELECT s.id, s.amount, s.label, s.at FROM runnel_stage s
    WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = s.id)
    ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, label = EXCLUDED.label, at = EXCLUDED.at;
COMMIT;
\o /dev/null
BEGIN;
INSERT INTO runnel_stage SELECT g, g * 0.25 + 7, 'customer-' || lpad(g::text, 8, '0'), now(), g
    FROM generate_series(0, 9999) g;
\o
WITH u AS (UPDATE upsert_ff50 t SET amount = s.amount, label = s.label, at = s.at
           FROM runnel_stage s WHERE t.id = s.id RETURNING t.id)
INSERT INTO upsert_ff50 (id, amount, label, at) SELECT s.id, s.amount, s.label, s.at FROM runnel_stage s
    WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = s.id)
    ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, label = EXCLUDED.label, at = EXCLUDED.at;
COMMIT;
\timing off

SELECT pg_sleep(1);
\echo '== updates that were HOT (no new index entry)'
SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
    WHERE relname IN ('upsert_plain', 'upsert_ff50') ORDER BY relname;
DROP TABLE upsert_plain, upsert_ff50;
