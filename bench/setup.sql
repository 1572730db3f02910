-- SPDX-License-Identifier: MIT
--
-- Benchmark data for fwire. Loaded into fwire_test by test/pgcluster.sh after
-- test/fixtures.sql; can also be run by hand against any PostgreSQL 15 database:
--     psql -X -v ON_ERROR_STOP=1 -q -d DB -f bench/setup.sql
-- Idempotent: every object is dropped and rebuilt.
--
-- Each v_bench_* view has exactly one column, data jsonb, and reads a real table
-- (UNLOGGED: throwaway data, no WAL), so a query streams stored rows instead of making
-- them. The views have no ORDER BY: they are plain sequential scans, and since every
-- table is written in id order, a scan returns ids 1, 2, 3, ... which lets a client
-- check that nothing was lost or reordered while streaming.
--
-- All values are derived from the row id (no random()), so every load is identical.
-- Every row has "bucket": id % 10, the same value the v_bench_sel* views filter on,
-- so a client-side predicate on the JSON (bucket < 1, < 5, < 9) selects the same rows.
--
--   view             rows       JSON text per row
--   v_bench_1k       1,000      ~270 bytes  (ids 1..1000 of bench_1m)
--   v_bench_100k     100,000    ~270 bytes  (ids 1..100000 of bench_1m)
--   v_bench_1m       1,000,000  ~270 bytes
--   v_bench_large    1,000      ~100 KB     (1,875 objects with md5 strings: TOASTed)
--   v_bench_complex  10,000     ~1.5 KB     (nested 5 deep, arrays, nulls, unicode)
--   v_bench_sel10    10,000     bench_100k where id % 10 < 1   (10 %)
--   v_bench_sel50    50,000     bench_100k where id % 10 < 5   (50 %)
--   v_bench_sel90    90,000     bench_100k where id % 10 < 9   (90 %)

SET client_encoding = 'UTF8';
SET client_min_messages = warning;
-- The load is a handful of big one-off statements: JIT compilation costs more than it
-- saves, and nothing here needs a time zone other than the explicit UTC text below.
SET jit = off;
SET maintenance_work_mem = '256MB';

DROP VIEW IF EXISTS v_bench_1k, v_bench_100k, v_bench_1m, v_bench_large, v_bench_complex,
    v_bench_sel10, v_bench_sel50, v_bench_sel90, v_bench_10m;
DROP TABLE IF EXISTS bench_1k, bench_100k, bench_1m, bench_large, bench_complex, bench_ids;

-- ---------------------------------------------------------------------------------
-- Row generation runs in parallel workers: CREATE TABLE AS may use a parallel plan
-- (INSERT ... SELECT may not), and a parallel index scan under Gather Merge hands the
-- computed rows to the leader in id order, so the heap is still written 1, 2, 3, ...
-- (Generation is ~2x faster than a serial scan on two cores.) The costs below only
-- convince the planner that parallelism pays; they are reset at the end.
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET min_parallel_index_scan_size = 0;
SET enable_sort = off;

-- Source of ids for the parallel scans (a temporary table would not do: parallel
-- workers cannot read temporary tables). Dropped at the end.
CREATE UNLOGGED TABLE bench_ids (id int PRIMARY KEY);
INSERT INTO bench_ids SELECT g FROM generate_series(1, 1000000) AS g;
VACUUM ANALYZE bench_ids;

-- ---------------------------------------------------------------------------------
-- bench_1m: ~270 bytes of JSON text per row, e.g. for id 1:
-- {"id": 1, "cost": 79.19, "name": "item-1-c4ca4238a0b9", "tags": ["green", "blue",
--  "amber"], "active": true, "bucket": 1, "nested": {"owner": {"id": 2, "email":
--  "owner2@localhost"}, "created_at": "2020-01-01T00:00:17Z"}, "status": "open",
--  "priority": 1}
-- The expression is written inline (not as a function) so the planner evaluates it
-- directly in the workers; that is about 1.5x faster.
CREATE UNLOGGED TABLE bench_1m AS
SELECT id,
       jsonb_build_object(
           'id', id,
           'name', 'item-' || id || '-' || substr(md5(id::text), 1, 12),
           'status', (ARRAY['new', 'open', 'active', 'blocked', 'done'])[id % 5 + 1],
           'priority', (id / 7) % 5 + 1,
           -- numeric * 0.01 keeps exactly two decimals (79.19, 5.00)
           'cost', ((id::bigint * 7919) % 100000) * 0.01,
           'bucket', id % 10,
           -- 2 to 4 tags: a slice of a fixed list
           'tags', to_jsonb((ARRAY['red', 'green', 'blue', 'amber', 'teal', 'gray', 'pink',
                                   'red', 'green', 'blue'])[id % 7 + 1 : id % 7 + 2 + id % 3]),
           'nested', jsonb_build_object(
               'owner', jsonb_build_object('id', id % 5000 + 1,
                                           'email', 'owner' || (id % 5000 + 1) || '@localhost'),
               'created_at', to_char(timestamp '2020-01-01' + id * interval '17 seconds',
                                     'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
           'active', id % 3 <> 0
       ) AS data
FROM bench_ids
ORDER BY id;

-- The smaller sets are prefixes of bench_1m (same row for the same id). A serial scan
-- of bench_1m returns heap order, which is id order.
SET max_parallel_workers_per_gather = 0;
CREATE UNLOGGED TABLE bench_100k AS SELECT id, data FROM bench_1m WHERE id <= 100000;
CREATE UNLOGGED TABLE bench_1k AS SELECT id, data FROM bench_1m WHERE id <= 1000;
RESET max_parallel_workers_per_gather;

-- ---------------------------------------------------------------------------------
-- bench_large: 1,000 rows of ~100 KB each: {"id", "bucket", "name", "items": [1,875 x
-- {"h": md5 hex, "i": n}]}. md5 strings do not compress well, so the stored (TOASTed,
-- pglz) value stays ~72 KB and the server really has to detoast ~100 KB per row.
-- A PARALLEL SAFE helper lets the workers build the arrays; it is dropped below.
CREATE FUNCTION pg_temp.bench_large_items(id int) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_agg(jsonb_build_object('i', j, 'h', md5((id * 10000 + j)::text)) ORDER BY j)
    FROM generate_series(1, 1875) AS j
$$;
CREATE UNLOGGED TABLE bench_large AS
SELECT id,
       jsonb_build_object('id', id, 'bucket', id % 10, 'name', 'large-' || id,
                          'items', pg_temp.bench_large_items(id)) AS data
FROM bench_ids
WHERE id <= 1000
ORDER BY id;

-- ---------------------------------------------------------------------------------
-- bench_complex: 10,000 rows of ~1.5 KB with objects nested five levels deep
-- (lines[].attrs.labels[].v), arrays of objects, empty objects/arrays/strings, SQL
-- NULL turned into JSON null, booleans, integers beyond 2^53, long decimals, small
-- exponents, escapes (\n \t \" \\ \u0001) and non-ASCII text (Latin, Greek, Cyrillic,
-- Hebrew, CJK, emoji, a combining accent).
CREATE FUNCTION pg_temp.bench_complex_row(id int) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT jsonb_build_object(
    'id', id,
    'bucket', id % 10,
    'kind', (ARRAY['order', 'refund', 'quote', 'invoice'])[id % 4 + 1],
    'title', (ARRAY['Zoë''s café', 'Straße № 5', '日本語のテキスト', 'Ελληνικά', 'עברית',
                    'emoji 🐘🚀', 'e' || U&'\0301' || 'tude', 'plain ascii'])[id % 8 + 1]
             || ' #' || id,
    'flags', jsonb_build_object(
        'archived', id % 2 = 0,
        'pinned', id % 3 = 0,
        'deleted', NULL,
        'reviewed', CASE WHEN id % 5 = 0 THEN NULL ELSE id % 4 = 0 END),
    'metrics', jsonb_build_object(
        'score', round((id * 37 % 10000) / 100.0, 2),
        'ratio', -((id % 997)::float8 / 1000),
        'tiny', 1.5e-7 * (id % 9 + 1),
        'big', 9007199254740993 + id,
        'precise', 12345678901234567890.123456789 + id,
        'counts', jsonb_build_array(id % 7, id % 11, id % 13, 0, -1)),
    'customer', jsonb_build_object(
        'id', id % 2000 + 1,
        'name', 'Customer ' || (id % 2000 + 1),
        'vip', id % 17 = 0,
        'address', jsonb_build_object(
            'street', (id % 300 + 1) || ' Main St',
            'city', (ARRAY['Zürich', 'São Paulo', 'Kraków', 'Москва', '東京', 'Reykjavík'])[id % 6 + 1],
            'zip', lpad((id * 7 % 100000)::text, 5, '0'),
            'geo', jsonb_build_object(
                'lat', round(((id % 1800) / 10.0 - 90)::numeric, 4),
                'lng', round(((id % 3600) / 10.0 - 180)::numeric, 4),
                'precision', NULL))),
    'lines', (SELECT jsonb_agg(jsonb_build_object(
        'line', l,
        'sku', 'SKU-' || lpad(((id * 13 + l) % 100000)::text, 6, '0'),
        'qty', (id + l) % 9 + 1,
        'price', ((id * 31 + l * 7) % 50000) * 0.01,
        'gift', CASE WHEN l = 2 THEN true ELSE NULL END,
        'attrs', jsonb_build_object(
            'color', (ARRAY['red', 'green', NULL, 'blue'])[(id + l) % 4 + 1],
            'dims', jsonb_build_array(1.5 * l, 2, id % 5 + 0.25),
            'labels', jsonb_build_array(
                jsonb_build_object('k', 'origin', 'v', (ARRAY['CH', 'BR', 'PL', 'JP'])[(id + l) % 4 + 1]),
                jsonb_build_object('k', 'fragile', 'v', (id + l) % 2 = 0))),
        'discounts', CASE WHEN (id + l) % 3 = 0 THEN '[]'::jsonb
                          ELSE jsonb_build_array(jsonb_build_object(
                                   'code', 'D' || (id + l) % 40,
                                   'pct', (id + l) % 25,
                                   'stackable', false)) END
        ) ORDER BY l)
        FROM generate_series(1, 1 + id % 4) AS l),
    'history', (SELECT jsonb_agg(jsonb_build_object(
        'at', to_char(timestamp '2021-06-01' + (id * 600 + h * 3600) * interval '1 second',
                      'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        'event', (ARRAY['created', 'paid', 'shipped', 'delivered', 'closed'])[h],
        'by', jsonb_build_object(
            'user', 'u' || (id + h) % 50,
            'roles', CASE WHEN h = 1 THEN '[]'::jsonb ELSE jsonb_build_array('staff', 'ops') END)
        ) ORDER BY h)
        FROM generate_series(1, 1 + id % 5) AS h),
    'note', E'multi\nline\ttext with "quotes", back\\slash and a control char \u0001',
    'empty', jsonb_build_object('obj', '{}'::jsonb, 'arr', '[]'::jsonb, 'str', '')
)
$$;
CREATE UNLOGGED TABLE bench_complex AS
SELECT id, pg_temp.bench_complex_row(id) AS data
FROM bench_ids
WHERE id <= 10000
ORDER BY id;

RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET min_parallel_index_scan_size;
RESET enable_sort;
DROP FUNCTION pg_temp.bench_large_items(int);
DROP FUNCTION pg_temp.bench_complex_row(int);
DROP TABLE bench_ids;

ALTER TABLE bench_1m ALTER COLUMN id SET NOT NULL, ALTER COLUMN data SET NOT NULL;
ALTER TABLE bench_100k ALTER COLUMN id SET NOT NULL, ALTER COLUMN data SET NOT NULL;
ALTER TABLE bench_1k ALTER COLUMN id SET NOT NULL, ALTER COLUMN data SET NOT NULL;
ALTER TABLE bench_large ALTER COLUMN id SET NOT NULL, ALTER COLUMN data SET NOT NULL;
ALTER TABLE bench_complex ALTER COLUMN id SET NOT NULL, ALTER COLUMN data SET NOT NULL;

-- ---------------------------------------------------------------------------------
CREATE VIEW v_bench_1k AS SELECT data FROM bench_1k;
CREATE VIEW v_bench_100k AS SELECT data FROM bench_100k;
CREATE VIEW v_bench_1m AS SELECT data FROM bench_1m;
CREATE VIEW v_bench_large AS SELECT data FROM bench_large;
CREATE VIEW v_bench_complex AS SELECT data FROM bench_complex;
-- Same rows as a client-side filter on the JSON field "bucket" (< 1, < 5, < 9).
CREATE VIEW v_bench_sel10 AS SELECT data FROM bench_100k WHERE id % 10 < 1;
CREATE VIEW v_bench_sel50 AS SELECT data FROM bench_100k WHERE id % 10 < 5;
CREATE VIEW v_bench_sel90 AS SELECT data FROM bench_100k WHERE id % 10 < 9;
-- 10,000,000 rows generated as they are read, nothing stored (the stability run of
-- bench/run.sh: RSS must stay flat over a long stream). Two small generate_series joined:
-- one over 10M values would first materialise them all in a tuplestore. About 100 bytes
-- of JSON text a row: {"id": 1, "name": "gen-1", "tags": ["a", "b"], "score": 0.1, ...}
CREATE VIEW v_bench_10m AS
SELECT jsonb_build_object('id', a * 1000 + b + 1, 'bucket', (a * 1000 + b + 1) % 10,
                          'name', 'gen-' || (a * 1000 + b + 1), 'tags', jsonb_build_array('a', 'b'),
                          'score', ((a * 1000 + b + 1) % 1000) / 10.0) AS data
FROM generate_series(0, 9999) AS a, generate_series(0, 999) AS b;

-- FREEZE sets hint bits and the visibility map now, so the first benchmark scan does
-- not dirty (and write back) every page; ANALYZE gives the planner real statistics.
VACUUM (FREEZE, ANALYZE) bench_1m, bench_100k, bench_1k, bench_large, bench_complex;
