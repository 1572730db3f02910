-- SPDX-License-Identifier: MIT
--
-- Fixture tables and views for fwire's integration tests. Loaded into fwire_test by
-- test/pgcluster.sh (psql -v ON_ERROR_STOP=1) before bench/setup.sql. Idempotent: every
-- object is dropped and recreated, so it can be re-run against a user's own cluster.
--
-- Every view a test streams from has one column named "data"; the v_fixture_wrong_*
-- and v_fixture_two_cols views break that rule on purpose.

-- The file holds non-ASCII text as UTF-8; do not depend on the caller's locale.
SET client_encoding = 'UTF8';
SET client_min_messages = warning;

-- ---------------------------------------------------------------------------------
-- fixture_rows / v_fixture: five known jsonb rows, in id order.
DROP TABLE IF EXISTS fixture_rows CASCADE;
CREATE TABLE fixture_rows (
    id   int PRIMARY KEY,
    data jsonb NOT NULL
);
INSERT INTO fixture_rows (id, data) VALUES
    (1, '{"id": 1, "name": "alpha",   "tags": ["a", "b"],      "nested": {"k": 1}}'),
    (2, '{"id": 2, "name": "beta",    "tags": [],              "nested": {"k": 2, "ok": true}}'),
    (3, '{"id": 3, "name": "gamma",   "tags": ["c"],           "nested": {"k": 3, "v": null}}'),
    (4, '{"id": 4, "name": "delta",   "tags": ["d", "e", "f"], "nested": {"k": 4, "f": 1.5}}'),
    (5, '{"id": 5, "name": "epsilon", "tags": ["g"],           "nested": {"k": 5, "s": "x\"y"}}');

CREATE OR REPLACE VIEW v_fixture AS
    SELECT data FROM fixture_rows ORDER BY id;

-- ---------------------------------------------------------------------------------
-- fixture_json / v_fixture_json: type json (not jsonb), which keeps the text exactly
-- as typed: newlines and tabs between tokens, duplicate-free but unsorted keys,
-- escaped \n \t \" \u inside strings, and non-ASCII text (precomposed and combining
-- accents, CJK, an emoji outside the BMP). A client must pass these bytes through
-- unchanged; the expected text is the literal below.
DROP TABLE IF EXISTS fixture_json CASCADE;
CREATE TABLE fixture_json (
    id   int PRIMARY KEY,
    data json NOT NULL
);
-- E'' strings: \n and \t here become real newline/tab bytes between JSON tokens;
-- \\n becomes the two characters \n, i.e. a JSON escape inside a string value.
INSERT INTO fixture_json (id, data) VALUES
    (1, E'{\n  "id": 1,\n  "name": "Zoë",\n  "note": "line one\\nline two"\n}'),
    (2, E'{"id": 2,\t"name": "日本語",\t"emoji": "🐘",\n\t"tabbed": "a\\tb"}'),
    (3, E'{\n"id": 3,\n"combining": "e\u0301te\u0301",\n"quote": "say \\"hi\\"",\n"escaped": "\\u00e9\\ud83d\\udc18"\n}'),
    (4, E'[\n  1,\n  "two",\n  {"three": [3, 3.0, 3e0]},\n  null,\n  true\n]'),
    (5, E'  {"id" : 5 , "empty" : "" , "nested" : { "a" : [ ] , "b" : { } } }  ');

CREATE OR REPLACE VIEW v_fixture_json AS
    SELECT data FROM fixture_json ORDER BY id;

-- ---------------------------------------------------------------------------------
-- fixture_nulls / v_fixture_nulls: six rows, SQL NULL data in rows 2 and 5.
DROP TABLE IF EXISTS fixture_nulls CASCADE;
CREATE TABLE fixture_nulls (
    id   int PRIMARY KEY,
    data jsonb
);
INSERT INTO fixture_nulls (id, data) VALUES
    (1, '{"id": 1}'),
    (2, NULL),
    (3, '{"id": 3}'),
    -- A JSON null is a value, not an SQL NULL: it must come through as the text null.
    (4, 'null'),
    (5, NULL),
    (6, '{"id": 6}');

CREATE OR REPLACE VIEW v_fixture_nulls AS
    SELECT data FROM fixture_nulls ORDER BY id;

-- ---------------------------------------------------------------------------------
-- v_fixture_empty: the right shape (one jsonb column "data"), zero rows.
CREATE OR REPLACE VIEW v_fixture_empty AS
    SELECT data FROM fixture_rows WHERE false;

-- ---------------------------------------------------------------------------------
-- Wrong shapes, for the schema checks made on RowDescription.
DROP VIEW IF EXISTS v_fixture_two_cols, v_fixture_wrong_name, v_fixture_wrong_type;
CREATE VIEW v_fixture_two_cols AS
    SELECT data, id AS extra FROM fixture_rows ORDER BY id;
CREATE VIEW v_fixture_wrong_name AS
    SELECT data AS payload FROM fixture_rows ORDER BY id;
CREATE VIEW v_fixture_wrong_type AS
    SELECT data::text AS data FROM fixture_rows ORDER BY id;

-- ---------------------------------------------------------------------------------
-- v_fixture_error_mid: three rows (i = 0, 1, 2), then division by zero (SQLSTATE
-- 22012) at i = 3. There is deliberately no ORDER BY: a sort would compute every row
-- (and hit the error) before sending the first. A plain function scan computes and
-- sends each row in turn, so the first three DataRows reach the client before the
-- ErrorResponse.
CREATE OR REPLACE VIEW v_fixture_error_mid AS
    SELECT jsonb_build_object('id', i, 'x', 1 / (3 - i)) AS data
    FROM generate_series(0, 5) AS i;

-- ---------------------------------------------------------------------------------
-- fixture_big_row / v_fixture_big_row: one row of about 2 MiB. The "blob" string is
-- 65,536 md5 hex digests concatenated (exactly 2,097,152 characters), so it is not a
-- single repeated byte and a client can check it: blob_md5 is the md5 of blob.
DROP TABLE IF EXISTS fixture_big_row CASCADE;
CREATE TABLE fixture_big_row (
    id   int PRIMARY KEY,
    data jsonb NOT NULL
);
INSERT INTO fixture_big_row (id, data)
SELECT 1, jsonb_build_object('id', 1, 'blob_len', length(b), 'blob_md5', md5(b), 'blob', b)
FROM (SELECT string_agg(md5(g::text), '' ORDER BY g) AS b
      FROM generate_series(1, 65536) AS g) AS s;

CREATE OR REPLACE VIEW v_fixture_big_row AS
    SELECT data FROM fixture_big_row ORDER BY id;

-- ---------------------------------------------------------------------------------
-- Identifier quoting: a schema, a table name with a space and capitals, and a view
-- named "v_Mixed Case" that exists in both public and fw_schema with different
-- contents, so a test can tell which one a qualified or unqualified name reached.
DROP SCHEMA IF EXISTS fw_schema CASCADE;
CREATE SCHEMA fw_schema;
CREATE TABLE fw_schema."Weird Name" (
    data jsonb
);
INSERT INTO fw_schema."Weird Name" (data) VALUES
    ('{"id": 1, "where": "fw_schema.\"Weird Name\""}'),
    ('{"id": 2, "where": "fw_schema.\"Weird Name\""}');
CREATE VIEW fw_schema."v_Mixed Case" AS
    SELECT '{"id": 1, "where": "fw_schema.\"v_Mixed Case\""}'::jsonb AS data;

CREATE OR REPLACE VIEW public."v_Mixed Case" AS
    SELECT '{"id": 1, "where": "public.\"v_Mixed Case\""}'::jsonb AS data;

ANALYZE fixture_rows, fixture_json, fixture_nulls, fixture_big_row, fw_schema."Weird Name";

-- ---------------------------------------------------------------------------------
-- Fixtures of test/test_lib_stream_live.c.
--
-- v_fixture_error_500k: a million rows made server-side, division by zero at i = 500,000:
-- the 499,999 rows before it reach the client (over many socket reads and backpressure
-- stalls), then the ErrorResponse (SQLSTATE 22012). No ORDER BY, for the reason given at
-- v_fixture_error_mid: the expression runs as each row is sent.
CREATE OR REPLACE VIEW v_fixture_error_500k AS
    SELECT jsonb_build_object('i', i, 'x', 1 / (500000 - i)) AS data
    FROM generate_series(1, 1000000) AS i;

-- v_fixture_notice: 2,000 rows; computing row 1,000 raises a NOTICE, so a NoticeResponse
-- arrives between two DataRows of one result.
DROP VIEW IF EXISTS v_fixture_notice;
CREATE OR REPLACE FUNCTION fixture_notice_at(i int, at int) RETURNS int
    LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF i = at THEN
        RAISE NOTICE 'fwire fixture notice at row %', i;
    END IF;
    RETURN i;
END
$$;
CREATE VIEW v_fixture_notice AS
    SELECT jsonb_build_object('i', fixture_notice_at(i, 1000)) AS data
    FROM generate_series(1, 2000) AS i;

-- v_fixture_sleepy: ten rows, each computed after a 100 ms sleep (pg_sleep is volatile, so it
-- runs once per row): a statement timeout of a few hundred ms fails the query (57014) after
-- the first rows were sent.
CREATE OR REPLACE VIEW v_fixture_sleepy AS
    SELECT jsonb_build_object('i', i, 'slept', pg_sleep(0.1)::text) AS data
    FROM generate_series(1, 10) AS i;

-- v_fixture_settings: the session's statement_timeout as the query sees it, to check that a
-- query's own timeout (set_config(..., is_local)) does not outlive it.
CREATE OR REPLACE VIEW v_fixture_settings AS
    SELECT jsonb_build_object('statement_timeout', current_setting('statement_timeout')) AS data;

-- v_fixture_slow_start: three rows, the first computed after a 1 s sleep, so nothing at all
-- arrives for a second after the query starts (a client-side idle timeout fires there).
CREATE OR REPLACE VIEW v_fixture_slow_start AS
    SELECT jsonb_build_object('i', i) AS data
    FROM generate_series(1, 3) AS i,
         LATERAL (SELECT pg_sleep(CASE WHEN i = 1 THEN 1 ELSE 0 END)) AS z;

-- v_fixture_sleepy_wide: as v_fixture_sleepy, but each row is ~16 KiB. The server buffers its
-- output (8 KiB) and flushes only when the buffer fills or the query ends, so v_fixture_sleepy's
-- small rows all arrive at the end, after a second of silence; these arrive every 100 ms.
CREATE OR REPLACE VIEW v_fixture_sleepy_wide AS
    SELECT jsonb_build_object('i', i, 'pad', repeat('x', 16384), 'slept', pg_sleep(0.1)::text)
           AS data
    FROM generate_series(1, 10) AS i;

-- v_fixture_drip: a slow producer for `fwire stream | reader`: 40 rows, one every 25 ms, each
-- stamped with the server's clock when it was made ("at", epoch seconds) and ~12 KiB long, past
-- the server's 8 KiB output buffer, so each row leaves the server at the latest when the next
-- one is made. How long a row takes from "at" to the reader is then fwire's doing.
CREATE OR REPLACE VIEW v_fixture_drip AS
    SELECT jsonb_build_object('i', i, 'at', extract(epoch FROM clock_timestamp()),
                              'pad', repeat('x', 12288)) AS data
    FROM generate_series(1, 40) AS i,
         LATERAL (SELECT pg_sleep(0.025 + 0 * i)) AS z;
