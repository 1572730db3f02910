/* SPDX-License-Identifier: MIT */
/*
 * Test helper shared by the live stream tests: what the server says a query returns (through
 * psql: count, bytes, SQL NULLs, the sum of each row's MD5 prefix, and for ordered queries a
 * digest of the order and the first and last rows), and the same computed from the rows fwire
 * delivered, and the check of the one against the other; and the psql helper. It includes
 * test/live.h (the environment, SLOW); the including file includes <openssl/md5.h>, and defines
 *   static void psql(const char *sql, char *out, size_t cap);
 * (psql_as with the user it wants) anywhere in the file.
 */
#ifndef FW_TEST_STREAM_ORACLE_H
#define FW_TEST_STREAM_ORACLE_H

#include <inttypes.h>

#include "live.h"

/* Runs `sql` with psql as `user` (the name of an FW_TEST_* variable) over the unix socket; its
 * output (-At: fields separated by '|', no header) goes to out without the final newline. */
static void psql_as(const char *user, const char *sql, char *out, size_t cap)
{
    char path[] = "/tmp/fw-stream-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(sql);
    assert_int_equal(write(fd, sql, n), (ssize_t)n);
    close(fd);
    const char *bindir = getenv("FW_TEST_PGBINDIR");
    /* stderr (notices, errors) apart from the answer: shown only when psql fails */
    char errpath[sizeof(path) + 4];
    snprintf(errpath, sizeof(errpath), "%s.err", path);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "'%s/psql' -X -At -q -v ON_ERROR_STOP=1 -h '%s' -p '%s' -U '%s' -d '%s' -f '%s' "
             "2>'%s'",
             bindir != NULL && bindir[0] != '\0' ? bindir : "/usr/lib/postgresql/15/bin",
             env("FW_TEST_SOCKDIR"), env("FW_TEST_PORT"), env(user), env("FW_TEST_DBNAME"), path,
             errpath);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, cap - 1, p);
    out[got] = '\0';
    int rc = pclose(p);
    unlink(path);
    char err[1024] = "";
    FILE *ef = fopen(errpath, "r");
    if (ef != NULL) {
        err[fread(err, 1, sizeof(err) - 1, ef)] = '\0';
        fclose(ef);
    }
    unlink(errpath);
    while (got > 0 && (out[got - 1] == '\n' || out[got - 1] == '\r'))
        out[--got] = '\0';
    if (rc != 0)
        fail_msg("psql failed on %s:\n%s%s", sql, out, err);
}

static void psql(const char *sql, char *out, size_t cap);

/* The server's answer for `sql` (a query returning a column named data). */
typedef struct oracle_s {
    uint64_t rows, bytes, nulls, sum, max_len;
    char order[33], first[33], last[33]; /* "" unless asked for */
} oracle_t;

/* Splits `s` at '|' into at most n fields (in place). */
static size_t split(char *s, char **f, size_t n)
{
    size_t k = 0;
    f[k++] = s;
    for (char *p = s; *p != '\0' && k < n; p++) {
        if (*p == '|') {
            *p = '\0';
            f[k++] = p + 1;
        }
    }
    return k;
}

static uint64_t u64(const char *s)
{
    char *end;
    uint64_t v = strtoull(s, &end, 10);
    if (end == s || *end != '\0')
        fail_msg("psql returned %s, not a number", s);
    return v;
}

/* `ordered`: also digest the rows in the order the query returns them (only meaningful when
 * the query has an ORDER BY, or reads a table too small for synchronized scans). */
static void oracle_compute(const char *sql, bool ordered, oracle_t *o)
{
    static const char row_md5[] = "md5(coalesce(data::text, '<NULL>'))";
    char q[4096], out[1024];
    snprintf(q, sizeof(q),
             "SELECT count(*), coalesce(sum(octet_length(data::text)), 0),\n"
             "  count(*) FILTER (WHERE data IS NULL),\n"
             "  coalesce(sum(('x' || substr(%s, 1, 15))::bit(60)::bigint)\n"
             "           %% 18446744073709551616, 0),\n"
             "  coalesce(max(octet_length(data::text)), 0),\n"
             "  %s, %s, %s\n"
             "FROM (%s) AS s;\n",
             row_md5,
             ordered ? "coalesce(md5(string_agg(md5(coalesce(data::text, '<NULL>')), "
                       "'')), '')"
                     : "''",
             ordered ? "coalesce((array_agg(md5(coalesce(data::text, '<NULL>'))))[1], '')" : "''",
             ordered ? "coalesce((array_agg(md5(coalesce(data::text, '<NULL>'))))[count(*)], '')"
                     : "''",
             sql);
    psql(q, out, sizeof(out));
    char *f[8];
    if (split(out, f, 8) != 8)
        fail_msg("unexpected psql output for %s: %s", sql, out);
    memset(o, 0, sizeof(*o));
    o->rows = u64(f[0]);
    o->bytes = u64(f[1]);
    o->nulls = u64(f[2]);
    o->sum = u64(f[3]);
    o->max_len = u64(f[4]);
    snprintf(o->order, sizeof(o->order), "%s", f[5]);
    snprintf(o->first, sizeof(o->first), "%s", f[6]);
    snprintf(o->last, sizeof(o->last), "%s", f[7]);
}

/* Oracles are cached by their SQL: the bench views cost seconds of server time each. */
static struct {
    char *sql;
    bool ordered;
    oracle_t o;
} oracle_cache[64];

static const oracle_t *oracle(const char *sql, bool ordered)
{
    size_t i = 0;
    for (; i < sizeof(oracle_cache) / sizeof(oracle_cache[0]) && oracle_cache[i].sql != NULL; i++) {
        if (strcmp(oracle_cache[i].sql, sql) == 0 && oracle_cache[i].ordered == ordered)
            return &oracle_cache[i].o;
    }
    assert_true(i < sizeof(oracle_cache) / sizeof(oracle_cache[0]));
    oracle_compute(sql, ordered, &oracle_cache[i].o);
    oracle_cache[i].sql = strdup(sql);
    oracle_cache[i].ordered = ordered;
    return &oracle_cache[i].o;
}

static const oracle_t *view_oracle(const char *view, bool ordered)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT data FROM %s", view);
    return oracle(sql, ordered);
}

/* The server's answer for `select` (returning a column named data) at `snapshot`: psql imports
 * the snapshot a parallel stream exported (fw_stream_snapshot) while the stream is open. */
static inline void oracle_at(const char *snapshot, const char *select, oracle_t *o)
{
    char q[4096], out[1024], snap[160] = "";
    if (snapshot != NULL) /* else: now, outside any snapshot */
        snprintf(snap, sizeof(snap),
                 "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
                 "SET TRANSACTION SNAPSHOT '%s';\n",
                 snapshot);
    snprintf(q, sizeof(q),
             "%sSELECT count(*), coalesce(sum(octet_length(data::text)), 0),\n"
             "  coalesce(sum(('x' || substr(md5(coalesce(data::text, '<NULL>')), 1, 15))"
             "::bit(60)::bigint) %% 18446744073709551616, 0)\n"
             "FROM (%s) AS s;\n%s",
             snap, select, snapshot != NULL ? "COMMIT;\n" : "");
    psql(q, out, sizeof(out));
    char *f[3];
    if (split(out, f, 3) != 3)
        fail_msg("unexpected psql output: %s", out);
    memset(o, 0, sizeof(*o));
    o->rows = u64(f[0]);
    o->bytes = u64(f[1]);
    o->sum = u64(f[2]);
}

/* The server's answer for `select` now (outside any snapshot). */
static inline void oracle_now(const char *select, oracle_t *o)
{
    oracle_at(NULL, select, o);
}

/* Runs a writer on `table` (id bigint, data jsonb, ids below 2,000,000) in the background:
 * deletes, inserts and updates (an UPDATE moves its row to the end of the heap: a read not at
 * one snapshot would see it twice or not at all), a commit every ~10 ms, until writer_stop()
 * (or 3,000 rounds). Returns once its first commit is visible. */
static inline FILE *writer_start(const char *table)
{
    char setup[256], ignored[64];
    snprintf(setup, sizeof(setup), "DROP TABLE IF EXISTS %s_stop; CREATE TABLE %s_stop (x int);",
             table, table);
    psql(setup, ignored, sizeof(ignored));
    char path[] = "/tmp/fw-par-writer-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "DO $$ BEGIN FOR i IN 1..3000 LOOP\n"
             "  EXIT WHEN EXISTS (SELECT 1 FROM %s_stop);\n"
             "  DELETE FROM %s WHERE id = (SELECT min(id) FROM %s);\n"
             "  INSERT INTO %s SELECT 2000000 + i, jsonb_build_object('id', 2000000 + i, 'w', i);\n"
             "  UPDATE %s SET data = data || jsonb_build_object('u', i) WHERE id = 5000 + 7 * i;\n"
             "  COMMIT;\n"
             "  PERFORM pg_sleep(0.01);\n"
             "END LOOP; END $$;\n",
             table, table, table, table, table);
    assert_int_equal(write(fd, sql, strlen(sql)), (ssize_t)strlen(sql));
    close(fd);
    const char *bindir = getenv("FW_TEST_PGBINDIR");
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "'%s/psql' -X -q -v ON_ERROR_STOP=1 -h '%s' -p '%s' -U '%s' -d '%s' -f '%s'; "
             "rm -f '%s'",
             bindir != NULL && bindir[0] != '\0' ? bindir : "/usr/lib/postgresql/15/bin",
             env("FW_TEST_SOCKDIR"), env("FW_TEST_PORT"), env("FW_TEST_ADMIN"),
             env("FW_TEST_DBNAME"), path, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    /* Wait for its first commit, so the snapshot falls inside its run. */
    char out[64], count[128];
    snprintf(count, sizeof(count), "SELECT count(*) FROM %s WHERE id > 2000000", table);
    for (int i = 0; i < 500; i++) {
        psql(count, out, sizeof(out));
        if (strcmp(out, "0") != 0)
            break;
        sleep_ms(10);
    }
    return p;
}

/* The test cluster's connection string for a pool: its one server (twice: listed as two hosts),
 * the trust user, application_name `app` (NULL: none). */
static inline void pool_conninfo(char *ci, size_t cap, const char *app, bool twice)
{
    const char *sock = env("FW_TEST_SOCKDIR"), *port = env("FW_TEST_PORT");
    snprintf(ci, cap, "host=%s%s%s port=%s%s%s dbname=%s user=%s sslmode=disable%s%s", sock,
             twice ? "," : "", twice ? sock : "", port, twice ? "," : "", twice ? port : "",
             env("FW_TEST_DBNAME"), env("FW_TEST_USER_TRUST"),
             app != NULL ? " application_name=" : "", app != NULL ? app : "");
}

/* A pool's options for ci (borrowed): up to 8 connections, named `name`. */
static inline fw_pool_opts_t pool_opts(const char *ci, const char *name)
{
    fw_pool_opts_t po;
    fw_pool_opts_init(&po);
    po.conninfo = ci;
    po.max_size = 8;
    po.name = name;
    return po;
}

/* After the pool tests' streams of up to three parts: the pool opened three connections and
 * handed them out again (their backends warm), closed none for an error. Its stats into *st. */
static inline void check_pool_reused(fw_pool_t *pool, fw_pool_stats_t *st)
{
    assert_int_equal(fw_pool_stats(pool, st), 0);
    print_message("pool: opened %" PRIu64 ", acquires %" PRIu64 ", closed for an error %" PRIu64
                  "\n",
                  st->opened, st->acquires, st->closed_error);
    assert_int_equal(st->opened, 3);
    assert_int_equal(st->closed_error, 0);
}

/* Backends of application_name `app` that are not plainly idle (in a transaction, or busy). */
static inline int backends_not_idle(const char *app)
{
    char sql[256], out[64];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' AND state <> "
             "'idle'",
             app);
    psql(sql, out, sizeof(out));
    return atoi(out);
}

/* Ends the writer writer_start() returned (at its next round) and waits for it: 0 when it
 * exited cleanly. */
static inline int writer_stop(FILE *w, const char *table)
{
    char sql[256], ignored[64];
    snprintf(sql, sizeof(sql), "INSERT INTO %s_stop VALUES (1);", table);
    psql(sql, ignored, sizeof(ignored));
    int rc = pclose(w);
    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s_stop;", table);
    psql(sql, ignored, sizeof(ignored));
    return rc;
}

/* ---- what a consumer saw ------------------------------------------------------------------- */

typedef struct res_s {
    uint64_t rows, nulls, bytes, sum;
    uint64_t bad_null;  /* is_null rows with a pointer or a length */
    uint64_t bad_held;  /* held chunks whose rows changed before release */
    MD5_CTX order;      /* MD5 over the hex MD5 of every row, in order */
    char order_hex[33]; /* set by res_finish() */
    char first[33], last[33];
    char text[256]; /* the first row's text, truncated */
    int64_t first_id, prev_id;
    uint64_t with_id, descents, breaks; /* rows whose id < the previous; != previous + 1 */
    int start_rc;                       /* fw_stream_start's result */
    int code;                           /* FW_END, or the stream's failure; 1 while unfinished */
    fw_error_t err;                     /* start error, or fw_stream_error() */
    fw_stream_stats_t stats;            /* at the end, before fw_stream_free */
} res_t;

static void res_init(res_t *r)
{
    memset(r, 0, sizeof(*r));
    MD5_Init(&r->order);
    r->code = 1;
}

static void hex32(const unsigned char d[16], char out[33])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[32] = '\0';
}

/* The first 60 bits of the row's MD5, as ('x' || substr(md5, 1, 15))::bit(60)::bigint. */
static uint64_t row_md5(const fw_row_t *row, unsigned char d[16])
{
    if (row->is_null)
        MD5((const unsigned char *)"<NULL>", 6, d);
    else
        MD5((const unsigned char *)row->json, row->len, d);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | d[i];
    return v >> 4;
}

/* The integer value of the first key of a JSON object, when the text starts {"key": 123. */
static bool first_int(const char *p, size_t n, int64_t *out)
{
    if (p == NULL || n < 2 || p[0] != '{' || p[1] != '"')
        return false;
    size_t i = 2;
    while (i < n && p[i] != '"')
        i++;
    i++;
    if (i + 2 >= n || p[i] != ':' || p[i + 1] != ' ')
        return false;
    i += 2;
    int64_t v = 0;
    size_t d0 = i;
    while (i < n && p[i] >= '0' && p[i] <= '9' && i - d0 < 18)
        v = v * 10 + (p[i++] - '0');
    if (i == d0)
        return false;
    *out = v;
    return true;
}

static void res_row(res_t *r, const fw_row_t *row)
{
    unsigned char d[16];
    char hex[33];
    if (row->is_null) {
        r->nulls++;
        if (row->json != NULL || row->len != 0)
            r->bad_null++;
    } else {
        r->bytes += row->len;
    }
    r->sum += row_md5(row, d);
    hex32(d, hex);
    MD5_Update(&r->order, hex, 32);
    if (r->rows == 0) {
        memcpy(r->first, hex, 33);
        snprintf(r->text, sizeof(r->text), "%.*s", row->is_null ? 0 : (int)row->len,
                 row->is_null ? "" : row->json);
    }
    memcpy(r->last, hex, 33);
    int64_t id;
    if (!row->is_null && first_int(row->json, row->len, &id)) {
        if (r->with_id == 0) {
            r->first_id = id;
        } else {
            r->descents += id < r->prev_id;
            r->breaks += id != r->prev_id + 1;
        }
        r->prev_id = id;
        r->with_id++;
    }
    r->rows++;
}

static void res_finish(res_t *r)
{
    unsigned char d[16];
    MD5_Final(d, &r->order);
    hex32(d, r->order_hex);
}

/* Compares a result with the oracle; `what` names the run in the failure message. */
static inline void check_res(const res_t *r, const oracle_t *o, bool ordered, const char *what)
{
    if (r->start_rc != 0)
        fail_msg("%s: fw_stream_start: %s (%s)", what, code_name(r->start_rc), r->err.message);
    if (r->code != FW_END)
        fail_msg("%s: ended with %s: %s %s", what, code_name(r->code), r->err.sqlstate,
                 r->err.message);
    if (r->rows != o->rows || r->bytes != o->bytes || r->nulls != o->nulls || r->sum != o->sum)
        fail_msg("%s: got %" PRIu64 " rows, %" PRIu64 " bytes, %" PRIu64 " nulls, sum %" PRIu64
                 "; the server has %" PRIu64 " rows, %" PRIu64 " bytes, %" PRIu64
                 " nulls, sum %" PRIu64,
                 what, r->rows, r->bytes, r->nulls, r->sum, o->rows, o->bytes, o->nulls, o->sum);
    if (r->bad_null != 0 || r->bad_held != 0)
        fail_msg("%s: %" PRIu64 " SQL NULL rows with a pointer, %" PRIu64 " held chunks changed",
                 what, r->bad_null, r->bad_held);
    if (ordered && o->rows > 0) {
        if (strcmp(r->order_hex, o->order) != 0 || strcmp(r->first, o->first) != 0 ||
            strcmp(r->last, o->last) != 0)
            fail_msg("%s: rows out of order (first %s last %s, server first %s last %s)", what,
                     r->first, r->last, o->first, o->last);
    }
    if (r->stats.rows_yielded != r->rows || r->stats.state != FW_STREAM_COMPLETED)
        fail_msg("%s: stats say %" PRIu64 " rows yielded, state %s", what, r->stats.rows_yielded,
                 fw_stream_state_name(r->stats.state));
}

/* Bench rows carry their id first: consecutive ids, one wrap-around allowed (a synchronized
 * scan may start mid-table) unless `strict` (small tables: the scan starts at id 1). */
static inline void check_ids(const res_t *r, bool strict, bool consecutive, const char *what)
{
    if (r->with_id != r->rows)
        fail_msg("%s: %" PRIu64 " of %" PRIu64 " rows have no leading id", what,
                 r->rows - r->with_id, r->rows);
    if (r->rows == 0)
        return;
    uint64_t allowed = strict ? 0 : 1;
    if (r->descents > allowed || (consecutive && r->breaks > allowed) ||
        (strict && r->first_id != 1))
        fail_msg("%s: ids out of order: first %" PRId64 ", %" PRIu64 " descents, %" PRIu64
                 " breaks",
                 what, r->first_id, r->descents, r->breaks);
}

#endif /* FW_TEST_STREAM_ORACLE_H */
