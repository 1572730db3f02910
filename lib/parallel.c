/* SPDX-License-Identifier: MIT */
/*
 * A parallel stream (fw_query_parallel, docs/streaming.md "Parallel streams"): one fw_stream_t
 * whose rows come from N parts, each an ordinary stream on a connection of its own, all under
 * one snapshot.
 *
 *   conn 0: BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_export_snapshot(), and
 *           what the split needs (the table's pages, or the key's min and max), one round trip
 *   conn 1..N-1: BEGIN ...; SET TRANSACTION SNAPSHOT '<id>'; then the part's SELECT, all in
 *           the part's one write (query_sql.c, fw__query_encode_run)
 *   conn 0: its part's SELECT, in the transaction that exported the snapshot
 *
 * Each part keeps its own pipe: one SPSC ring, one producer (the runtime's loop thread), one
 * consumer (the thread that calls fw_stream_next on the parallel stream). The consumer polls
 * the parts in turn; a part's producer wakes a sleeping consumer through the parallel stream's
 * park word (fw_stream_s.wake_to, park.h), so one sleep covers every part.
 *
 * The connections are the parallel stream's own, opened from the connection string of the
 * connection the query was started on (that one runs nothing), and closed by fw_stream_free:
 * so the exporting transaction stays open until every part has imported the snapshot, and
 * longer. The ordinary stream's hot path is untouched: its consumer reaches this file only
 * through the slow-path flag it tested already (stream_api.c, poll_row).
 *
 * The set-up's steps (fw__par_setup_step, fw__par_part_runs) serve both modes: threaded mode
 * runs them here one after another, blocking the caller; embedded mode runs them as a state
 * machine on the caller's loop (parallel_emb.c).
 */
#include "alloc.h"
#include "parallel_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows taken from one part before the consumer looks at the next one: long enough to stay in
 * one part's cache lines, short enough that no part's ring fills while another is read. */
#define PART_STREAK 512

/* The consumer's end: sticky for it, published for stats. */
int fw__par_set_end(fw_stream_t *s, int code)
{
    s->par_fast = NULL;
    s->sticky = code;
    atomic_store_explicit(&s->par->result, code, memory_order_relaxed);
    return code;
}

void fw__par_errf(fw_error_t *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof(*err));
    err->code = code;
    err->phase = FW_PHASE_READY;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}
#define set_errf fw__par_errf

void fw__par_prefix_err(fw_error_t *err, const char *what, int part)
{
    if (err == NULL)
        return;
    char m[sizeof(err->message)];
    snprintf(m, sizeof(m), "%s", err->message);
    if (part < 0)
        snprintf(err->message, sizeof(err->message), "parallel stream, %s: %.900s", what, m);
    else
        snprintf(err->message, sizeof(err->message), "parallel stream, %s %d: %.900s", what, part,
                 m);
}

void fw__par_destroy(fw__par_t *p)
{
    if (p->emb != NULL)
        fw__par_emb_destroy(p->emb);
    fw__free(p);
}

/* ---- setting up ------------------------------------------------------------------------- */

typedef fw__par_setup_t setup_t;

bool fw__par_answer(const fw_row_t *row, char *text, size_t cap)
{
    if (row->is_null || row->len < 2 || row->len >= cap || row->json[0] != '"' ||
        row->json[row->len - 1] != '"' || memchr(row->json, '\\', row->len) != NULL)
        return false;
    memcpy(text, row->json + 1, row->len - 2);
    text[row->len - 2] = '\0';
    return true;
}

/*
 * Threaded mode: runs fwire's own statement (`run`) on conns[0] and copies its one row, a JSON
 * string, into text without the quotes (the statements below return plain words: no escapes
 * to undo).
 */
static int run_one(fw__par_t *p, const fw_query_t *q, const fw__query_run_t *run, char *text,
                   size_t cap, fw_error_t *err)
{
    fw__stream_start_t a = {p->conns[0], q, NULL, NULL, NULL, 0, err, run, NULL, false};
    fw__runtime_call(p->conns[0], fw__stream_start_on_loop, &a);
    if (a.rc < 0) {
        fw__par_prefix_err(err, "setting up on connection", 0);
        return a.rc;
    }
    fw_row_t row;
    int rc = fw_stream_next(a.s, &row, -1);
    if (rc == FW_ROW && fw__par_answer(&row, text, cap))
        rc = fw_stream_next(a.s, &row, -1);
    else if (rc == FW_ROW)
        rc = FW_EPROTO_BAD_VALUE;
    if (rc != FW_END) {
        if (rc < 0 && fw_stream_error(a.s)->code != 0 && err != NULL)
            *err = *fw_stream_error(a.s);
        else
            set_errf(err, rc < 0 ? rc : FW_ESCHEMA, "unexpected answer");
        fw_stream_free(a.s);
        fw__par_prefix_err(err, "setting up the snapshot on connection", 0);
        return rc < 0 ? rc : FW_ESCHEMA;
    }
    fw_stream_free(a.s);
    return 0;
}

/* Splits text at spaces into at most n words; returns how many. */
static int words(char *text, char **f, int n)
{
    int k = 0;
    for (char *c = text, *save = NULL; k < n && (c = strtok_r(c, " ", &save)) != NULL; c = NULL)
        f[k++] = c;
    return k;
}

/*
 * The key's setup: the snapshot, the server's version, the key's type, and n - 1 cut points
 * (both %d are n) from the histogram of the key's statistics (pg_stats.histogram_bounds,
 * left by ANALYZE), or '-'. A view has no statistics of its own: for one whose rule reads exactly
 * one relation, the statistics of that relation's column of the same name stand in (FraiseQL's
 * `SELECT id, data FROM t`). Stale or borrowed bounds cost balance only, never rows: the first
 * range is open below and the last open above. The histogram is read only for an integer key
 * (the CASE is what keeps the cast from failing on any other type).
 */
#define KEY_SETUP_SQL                                                                            \
    "SELECT pg_catalog.to_json(pg_catalog.concat_ws(' ', pg_catalog.pg_export_snapshot(), "      \
    "pg_catalog.current_setting('server_version_num'), coalesce(k.typ, '-'), "                   \
    "coalesce(CASE WHEN k.typid IN (20, 21, 23) THEN (SELECT pg_catalog.array_to_string(ARRAY("  \
    "SELECT h.b[1 + (pg_catalog.cardinality(h.b) - 1) * i / %d] "                                \
    "FROM pg_catalog.generate_series(1, %d - 1) AS i), ',') "                                    \
    "FROM (SELECT s.histogram_bounds::text::bigint[] AS b FROM pg_catalog.pg_stats s "           \
    "JOIN pg_catalog.pg_class c ON c.relname = s.tablename "                                     \
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname "     \
    "WHERE s.attname = $2::text AND s.histogram_bounds IS NOT NULL AND c.oid = coalesce("        \
    "(SELECT c2.oid FROM pg_catalog.pg_class c2 WHERE c2.oid = $1::pg_catalog.regclass "         \
    "AND c2.relkind IN ('r', 'm', 'p')), "                                                       \
    "(SELECT min(d.refobjid) FROM pg_catalog.pg_rewrite w JOIN pg_catalog.pg_depend d "          \
    "ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = w.oid "           \
    "AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass "                             \
    "WHERE w.ev_class = $1::pg_catalog.regclass AND d.refobjid <> w.ev_class "                   \
    "HAVING pg_catalog.count(DISTINCT d.refobjid) = 1)) "                                        \
    "ORDER BY s.inherited LIMIT 1) AS h WHERE pg_catalog.cardinality(h.b) >= 2) END, '-'))) "    \
    "AS \"data\" FROM (SELECT (SELECT pg_catalog.format_type(a.atttypid, NULL) "                 \
    "FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::pg_catalog.regclass "                 \
    "AND a.attname = $2::text AND a.attnum > 0 AND NOT a.attisdropped) AS typ, "                 \
    "(SELECT a.atttypid FROM pg_catalog.pg_attribute a WHERE a.attrelid = "                      \
    "$1::pg_catalog.regclass AND a.attname = $2::text AND a.attnum > 0 AND NOT a.attisdropped) " \
    "AS typid) AS k"

_Static_assert(sizeof(KEY_SETUP_SQL) + 32 <= FW__PAR_SQL_CAP, "FW__PAR_SQL_CAP");

/* Step 0: a new REPEATABLE READ READ ONLY transaction exports its snapshot, and reads what the
 * split needs at that snapshot: the relation's kind and pages (ctid), or the key column's type
 * and the histogram's cut points (key). The transaction stays open: the snapshot lives as
 * long. */
static void first_statement(const fw__par_t *p, const fw_query_t *q, fw__query_run_t *run,
                            char *sql)
{
    *run = (fw__query_run_t){
        .pre = {"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"},
        .npre = 1,
        .raw_param = {q->source, q->pkey},
    };
    if (q->pkey != NULL && q->pkey_ctid)
        run->raw = fw__par_ctid_col_sql;
    else if (q->pkey == NULL)
        run->raw = "SELECT pg_catalog.to_json(pg_catalog.concat_ws(' ', "
                  "pg_catalog.pg_export_snapshot(), "
                  "pg_catalog.current_setting('server_version_num'), c.relkind, "
                  "pg_catalog.pg_relation_size(c.oid) / "
                  "pg_catalog.current_setting('block_size')::bigint)) AS \"data\" "
                  "FROM pg_catalog.pg_class c WHERE c.oid = $1::pg_catalog.regclass";
    else
        run->raw = sql;
    if (q->pkey != NULL && !q->pkey_ctid)
        snprintf(sql, FW__PAR_SQL_CAP, KEY_SETUP_SQL, p->n, p->n);
}

/* The ctid split's conditions, known from step 0's answer. */
static int check_ctid(const fw_query_t *q, const setup_t *st, fw_error_t *err)
{
    if (st->version < 140000) {
        set_errf(err, FW_EINVAL,
                 "ctid ranges need PostgreSQL 14 or later (TID range scans; this server is "
                 "%ld): name a key column with fw_query_partition_key",
                 st->version);
        return FW_EINVAL;
    }
    /* (a view's ctid column: its one table was checked by fw__par_ctid_col_check) */
    if (!q->pkey_ctid && st->relkind != 'r' && st->relkind != 'm') {
        set_errf(err, FW_EINVAL,
                 "%s is %s: ctid ranges need a plain table; read its table instead "
                 "(fw_query_relation), or name an indexed integer key column the view shows "
                 "(fw_query_partition_key) or a column showing its table's ctid "
                 "(fw_query_partition_ctid)",
                 q->source,
                 st->relkind == 'v'   ? "a view"
                 : st->relkind == 'p' ? "a partitioned table"
                                      : "not a plain table");
        return FW_EINVAL;
    }
    return 0;
}

/* Step 0's answer: 0 when the split is known, 1 when the key's min and max are needed, or a
 * failure. */
static int first_answer(const fw__par_t *p, const fw_query_t *q, setup_t *st, char *text,
                        fw_error_t *err)
{
    char whole[201]; /* the answer as it came, for messages (words() splits text) */
    snprintf(whole, sizeof(whole), "%s", text);
    char *f[8] = {0};
    int nf = words(text, f, 8);
    size_t slen = f[0] != NULL ? strlen(f[0]) : 0;
    if (nf < 3 || slen == 0 || slen >= sizeof(st->snapshot) ||
        strspn(f[0], "0123456789ABCDEFabcdef-") != slen) {
        set_errf(err, FW_EPROTO_BAD_VALUE,
                 "parallel stream: the server's snapshot answer is not understood: %s", whole);
        return FW_EPROTO_BAD_VALUE;
    }
    memcpy(st->snapshot, f[0], slen + 1);
    st->version = strtol(f[1], NULL, 10);
    if (q->pkey != NULL && q->pkey_ctid) {
        if (nf != 8) {
            set_errf(err, FW_EPROTO_BAD_VALUE,
                     "parallel stream: the server's view answer is not understood: %s", whole);
            return FW_EPROTO_BAD_VALUE;
        }
        int rc = fw__par_ctid_col_check(q, f, &st->pages, &st->relkind, err);
        return rc < 0 ? rc : check_ctid(q, st, err);
    }
    if (q->pkey == NULL) {
        if (nf != 4 || !fw__par_parse_i64(f[3], &st->pages)) {
            set_errf(err, FW_EPROTO_BAD_VALUE,
                     "parallel stream: the server's size answer is not understood: %s", whole);
            return FW_EPROTO_BAD_VALUE;
        }
        st->relkind = f[2][0];
        return check_ctid(q, st, err);
    }
    /* The key's type (only its first word: "double" of "double precision"). */
    if (strcmp(f[2], "-") == 0) {
        set_errf(err, FW_EINVAL, "%s has no column \"%s\" (the partition key)", q->source, q->pkey);
        return FW_EINVAL;
    }
    if (strcmp(f[2], "bigint") != 0 && strcmp(f[2], "integer") != 0 &&
        strcmp(f[2], "smallint") != 0) {
        set_errf(err, FW_EINVAL,
                 "the partition key \"%s\" must be an integer column (smallint, integer or "
                 "bigint); it is %s",
                 q->pkey, f[2]);
        return FW_EINVAL;
    }
    /* One part reads the whole range: no bound to find (min and max without an index would
     * scan the relation once more for nothing). */
    if (p->n == 1)
        return 0;
    /* Cut points from the histogram: then no scan at all (min and max of an unindexed key
     * read the whole relation once more before the parts start). */
    if (nf == 4 && strcmp(f[3], "-") != 0) {
        int k = 0;
        for (char *c = f[3], *save = NULL, *w;
             k <= FW__QUERY_MAX_PARALLEL && (w = strtok_r(c, ",", &save)) != NULL; c = NULL) {
            if (k == FW__QUERY_MAX_PARALLEL || !fw__par_parse_i64(w, &st->cuts[k]) ||
                (k > 0 && st->cuts[k] < st->cuts[k - 1])) {
                set_errf(err, FW_EPROTO_BAD_VALUE,
                         "parallel stream: the key's histogram is not understood: %.200s", f[3]);
                return FW_EPROTO_BAD_VALUE;
            }
            k++;
        }
        if (k != p->n - 1) {
            set_errf(err, FW_EPROTO_BAD_VALUE,
                     "parallel stream: %d cut points from the key's histogram, not %d", k,
                     p->n - 1);
            return FW_EPROTO_BAD_VALUE;
        }
        st->ncuts = k;
        return 0;
    }
    return 1;
}

/* Step 1 (a key without a histogram): the key's range at the snapshot. */
static void range_statement(const fw_query_t *q, fw__query_run_t *run, char *sql)
{
    /* Its range at the snapshot, in the same transaction: min and max (an index makes
     * them two index probes). The key is quoted as an identifier ('"' doubled). */
    char key[2 * FW__QUERY_MAX_IDENT + 3];
    fw__par_quote_ident(key, q->pkey);
    /* two keys and the source, each at most 2 * 63 + 6 bytes quoted: sql has room */
    snprintf(sql, FW__PAR_SQL_CAP,
             "SELECT pg_catalog.to_json(pg_catalog.concat_ws(' ', "
             "coalesce(min(%s)::text, '-'), coalesce(max(%s)::text, '-'))) AS \"data\" "
             "FROM %s",
             key, key, q->source);
    *run = (fw__query_run_t){.raw = sql};
}

/* Step 1's answer: the key's min and max, or "- -" (no row has a key). */
static int range_answer(setup_t *st, char *text, fw_error_t *err)
{
    char whole[201];
    snprintf(whole, sizeof(whole), "%s", text);
    char *f[2] = {0};
    int nf = words(text, f, 2);
    if (nf == 2 && strcmp(f[0], "-") == 0) {
        st->empty = true;
        return 0;
    }
    if (nf != 2 || !fw__par_parse_i64(f[0], &st->kmin) || !fw__par_parse_i64(f[1], &st->kmax)) {
        set_errf(err, FW_EPROTO_BAD_VALUE,
                 "parallel stream: the key's range is not understood: %s", whole);
        return FW_EPROTO_BAD_VALUE;
    }
    return 0;
}

int fw__par_setup_step(const fw__par_t *p, const fw_query_t *q, setup_t *st, int step,
                       char *answer, fw__query_run_t *run, char *sql, fw_error_t *err)
{
    if (step == 0) {
        first_statement(p, q, run, sql);
        return 1;
    }
    if (step == 1) {
        int rc = first_answer(p, q, st, answer, err);
        if (rc == 1)
            range_statement(q, run, sql);
        return rc;
    }
    return range_answer(st, answer, err);
}

/* Threaded mode: the set-up's statements one after another on conns[0]. */
static int setup(fw__par_t *p, const fw_query_t *q, setup_t *st, fw_error_t *err)
{
    char text[1024], sql[FW__PAR_SQL_CAP];
    fw__query_run_t run;
    for (int step = 0;; step++) {
        int rc = fw__par_setup_step(p, q, st, step, text, &run, sql, err);
        if (rc <= 0)
            return rc;
        rc = run_one(p, q, &run, text, sizeof(text), err);
        if (rc < 0)
            return rc;
    }
}

/* What is refused before anything connects: every message names what to do instead. */
static int check_query(const fw_conn_t *conn, const fw_query_t *q, bool *ordered, fw_error_t *err)
{
    *ordered = false;
    if (q->explain) {
        set_errf(err, FW_EINVAL, "EXPLAIN cannot be split: run it without fw_query_parallel");
        return FW_EINVAL;
    }
    if (q->limit >= 0 || q->offset >= 0) {
        set_errf(err, FW_EINVAL,
                 "LIMIT and OFFSET cannot be split over the parts of a parallel stream: "
                 "drop fw_query_parallel, or the limit");
        return FW_EINVAL;
    }
    if (q->norders > 0) {
        const fw__query_order_t *o = &q->orders[0];
        char quoted[2 * FW__QUERY_MAX_IDENT + 3] = "";
        if (q->pkey != NULL)
            snprintf(quoted, sizeof(quoted), "\"%s\"", q->pkey);
        bool by_key = q->pkey != NULL && q->norders == 1 && !o->descending &&
                      o->collation == NULL && strchr(q->pkey, '"') == NULL &&
                      (strcmp(o->expression, q->pkey) == 0 || strcmp(o->expression, quoted) == 0);
        if (!by_key) {
            set_errf(err, FW_EINVAL,
                     "a parallel stream can be ordered only by its partition key, ascending "
                     "(fw_query_partition_key, then fw_query_order_by with the same column); "
                     "drop the ORDER BY or fw_query_parallel");
            return FW_EINVAL;
        }
        *ordered = true;
    }
    if (conn->conninfo_copy == NULL || conn->closing || conn->state != FW__CONN_READY) {
        set_errf(err, FW_ESTATE, "the connection is not connected");
        return FW_ESTATE;
    }
    return 0;
}

/* The parts' starts, run on the loop thread in one call (one round trip to it, not n). */
typedef struct starts_s {
    int n;
    fw__stream_start_t a[FW__QUERY_MAX_PARALLEL];
    fw__par_runs_t runs;
} starts_t;

static void start_all_on_loop(void *arg)
{
    starts_t *st = arg;
    for (int i = 0; i < st->n; i++) {
        fw__stream_start_on_loop(&st->a[i]);
        if (st->a[i].rc < 0)
            break;
    }
}

static int start_parts(fw__par_t *p, fw_stream_t *outer, const fw_query_t *q, const setup_t *st,
                       fw_error_t *err)
{
    starts_t *all = fw__calloc(1, sizeof(*all));
    if (all == NULL) {
        set_errf(err, FW_ENOMEM, "out of memory");
        return FW_ENOMEM;
    }
    fw__par_part_runs(p, q, st, &all->runs);
    for (int i = 0; i < p->n; i++)
        all->a[i] = (fw__stream_start_t){p->conns[i], q,   NULL, NULL, NULL, 0,
                                         err,         &all->runs.run[i], outer, false};
    all->n = p->n;
    fw__runtime_call(p->conns[0], start_all_on_loop, all);
    int rc = 0;
    for (int i = 0; i < p->n; i++) {
        if (all->a[i].rc < 0) {
            fw__par_prefix_err(err, "starting part", i);
            rc = all->a[i].rc;
            break;
        }
        p->parts[i] = all->a[i].s;
        p->state[i] = 1;
    }
    fw__free(all);
    return rc;
}

int fw__par_start(fw_pool_t *pool, fw_conn_t *conn, const fw_query_t *q, fw_rows_ready_cb ready,
                  void *ud, fw_stream_t **out, fw_error_t *err)
{
    bool ordered;
    int rc = check_query(conn, q, &ordered, err);
    if (rc < 0)
        return rc;
    if (pool != NULL) {
        char why[sizeof(err->message)];
        rc = fw__pool_par_fits(pool, conn, why, sizeof(why));
        if (rc < 0) {
            set_errf(err, rc, "%s", why);
            return rc;
        }
    }
    fw_stream_t *outer = fw__stream_alloc();
    fw__par_t *p = fw__calloc(1, sizeof(*p));
    if (outer == NULL || p == NULL) {
        if (outer != NULL)
            fw__stream_unref(outer);
        fw__free(p);
        set_errf(err, FW_ENOMEM, "out of memory");
        return FW_ENOMEM;
    }
    atomic_init(&p->result, 1);
    p->n = q->parallel;
    p->ordered = ordered;
    p->pool = pool;
    outer->par = p;
    outer->slow = FW__SLOW_PAR;
    outer->threaded = conn->runtime_link != NULL;
    outer->sticky = 1; /* FW_ROW: nothing sticky yet */
    outer->pipe.o.max_memory = fw__query_max_memory(q);
    if (!outer->threaded) {
        /* Embedded mode: the same steps as below, as a state machine on the caller's loop
         * (parallel_emb.c); this returns at once. */
        rc = fw__par_emb_start(outer, conn, q, ready, ud, err);
        if (rc < 0) {
            fw__stream_unref(outer); /* frees p too */
            return rc;
        }
        *out = outer;
        return 0;
    }

    if (pool != NULL) {
        /* The pool's connections: this one, and n - 1 more (idle ones at once; its backends
         * have read before, so their buffers are warm: docs/streaming.md) */
        p->conns[0] = conn;
        for (int i = 1; i < p->n; i++) {
            rc = fw__pool_acquire_wait_like(pool, FW_POOL_READ, 0, conn, &p->conns[i], err);
            if (rc < 0) {
                p->conns[i] = NULL;
                fw__par_prefix_err(err, "taking the parts' connections from the pool", -1);
                goto fail;
            }
        }
    } else {
        fw_conn_opts_t o = conn->opts;
        o.conninfo = conn->conninfo_copy;
        /* The n start-ups at once: connection set-up is part of the stream's wall time (under
         * load a unix-socket start-up took 75-100 ms here; one after another, n of them added
         * up). */
        rc = fw__runtime_connect_n(conn->runtime_link, &o, p->n, p->conns, err);
        if (rc < 0) {
            fw__par_prefix_err(err, "connecting the parts", -1);
            goto fail;
        }
    }
    setup_t st;
    memset(&st, 0, sizeof(st));
    rc = setup(p, q, &st, err);
    if (rc < 0)
        goto fail;
    memcpy(p->snapshot, st.snapshot, sizeof(p->snapshot));
    rc = start_parts(p, outer, q, &st, err);
    if (rc < 0)
        goto fail;
    p->live = p->n;
    *out = outer;
    return 0;
fail:
    fw__par_teardown(p);
    fw__stream_unref(outer); /* frees p too */
    return rc;
}

/* ---- consuming ------------------------------------------------------------------------ */

/* A part failed: its error is the stream's, reported now (every row the part had before it
 * was delivered; rows the other parts still held are dropped, as by a cancel). */
static int part_failed(fw_stream_t *s, fw__par_t *p, int i, int code)
{
    p->state[i] = code;
    p->live--;
    s->err = *fw_stream_error(p->parts[i]);
    if (s->err.code == 0)
        s->err.code = code;
    char m[sizeof(s->err.message)];
    snprintf(m, sizeof(m), "%s", s->err.message);
    snprintf(s->err.message, sizeof(s->err.message), "part %d of %d: %.900s", i, p->n, m);
    for (int k = 0; k < p->n; k++) {
        if (p->state[k] == 1) /* the cancel completes on the loop; free or cancel waits */
            (void)fw__stream_cancel_request(p->parts[k]);
    }
    return fw__par_set_end(s, code);
}

static int par_poll_parts(fw_stream_t *s, fw_row_t *row, fw_chunk_t **chunk);

/* Part i gave a row: the rest of its current chunk goes out through poll_row's own path
 * (stream_api.c, par_fast), counted in the streak now, so parts still take turns every
 * PART_STREAK rows (at a chunk's end). Not while the parts are held (embedded mode's set-up or
 * cancel) nor ordered; a cancel and the end clear par_fast, and a part with its own slow path
 * (cancelled) is never read through it. */
static inline void lend_chunk(fw_stream_t *s, fw__par_t *p, int i)
{
    const fw__chunk_t *c = p->parts[i]->pipe.cur;
    if (c == NULL || p->hold || p->ordered)
        return;
    s->par_fast = p->parts[i];
    p->streak += (int)(c->n - c->first);
}

int fw__par_poll(fw_stream_t *s, fw_row_t *row, fw_chunk_t **chunk)
{
    /* The row path, apart from the loop so it needs no saved registers: the current part,
     * inside its streak, has a row (rows come in runs of a part's chunk). callgrind,
     * bench_100k, threaded: 2 parts took 96 instructions a row more than one stream through
     * the loop alone, 61 with this. */
    fw__par_t *p = s->par;
    if (row != NULL && s->sticky > 0 && !p->hold && !p->ordered && p->state[p->cur] == 1 &&
        p->streak < PART_STREAK - 1 && fw__stream_poll_row(p->parts[p->cur], row) == FW_ROW) {
        p->streak++;
        lend_chunk(s, p, p->cur);
        return FW_ROW;
    }
    return par_poll_parts(s, row, chunk);
}

__attribute__((noinline)) static int par_poll_parts(fw_stream_t *s, fw_row_t *row,
                                                    fw_chunk_t **chunk)
{
    fw__par_t *p = s->par;
    if (s->sticky <= 0)
        return s->sticky;
    if (p->hold) {
        /* Embedded mode: the set-up may still run, or a cancel wait for the parts' ends (a
         * flag, not a call, on the row path: 14 instructions a row less, callgrind). */
        int r = fw__par_emb_poll(s);
        if (r != 1)
            return r;
    }
    int paused = 0, waiting = 0;
    for (int k = 0; k < p->n && p->live > 0; k++) {
        int i = p->cur + k; /* ordered: k moves cur itself (below) */
        if (p->ordered)
            i = p->cur;
        else if (i >= p->n)
            i -= p->n;
        if (p->state[i] != 1) {
            if (p->ordered && p->cur < p->n - 1)
                p->cur++, k--;
            continue;
        }
        int r = row != NULL ? fw__stream_poll_row(p->parts[i], row)
                            : fw_stream_next_chunk(p->parts[i], chunk, 0);
        if (r == FW_ROW) {
            /* The next poll starts with this part, or after a streak with the next one. */
            if (i != p->cur) {
                p->cur = i;
                p->streak = 0;
            } else if (!p->ordered && ++p->streak >= PART_STREAK) {
                p->streak = 0;
                p->cur = (i + 1) % p->n;
                s->par_fast = NULL; /* the rest of this chunk waits for the part's turn */
                return FW_ROW;
            }
            if (row != NULL)
                lend_chunk(s, p, i);
            return FW_ROW;
        }
        if (r == FW_END) {
            p->state[i] = FW_END;
            p->live--;
            if (p->ordered && p->cur < p->n - 1)
                p->cur++, k--;
            continue;
        }
        if (r == FW_PAUSED) {
            paused++;
            if (p->ordered)
                break;
            continue;
        }
        if (r == FW_AGAIN) {
            waiting++;
            if (p->ordered)
                break;
            continue;
        }
        return part_failed(s, p, i, r);
    }
    if (p->live == 0)
        return fw__par_set_end(s, FW_END);
    return paused > 0 && waiting == 0 ? FW_PAUSED : FW_AGAIN;
}
