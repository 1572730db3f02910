/* SPDX-License-Identifier: MIT */
/*
 * How a parallel stream's rows are split: each part's run (ctid or key ranges, from the set-up's
 * answer), and for a view split by its table's pages (fw_query_partition_ctid) the setup
 * statement that finds the one table the view's rule reads, and the checks of its answer.
 */
#include "parallel_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define set_errf fw__par_errf

bool fw__par_parse_i64(const char *s, int64_t *out)
{
    char *end;
    if (s[0] == '\0')
        return false;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return false;
    *out = (int64_t)v;
    return true;
}

const char fw__par_ctid_col_sql[] =
    "SELECT pg_catalog.to_json(pg_catalog.concat_ws(' ', pg_catalog.pg_export_snapshot(), "
    "pg_catalog.current_setting('server_version_num'), c.relkind, b.n, coalesce(b.kinds, '-'), "
    "coalesce(b.ctid, false), coalesce(b.pages, -1), coalesce((SELECT pg_catalog.replace("
    "pg_catalog.format_type(a.atttypid, NULL), ' ', '_') FROM pg_catalog.pg_attribute a "
    "WHERE a.attrelid = c.oid AND a.attname = $2::text AND a.attnum > 0 "
    "AND NOT a.attisdropped), '-'))) AS \"data\" FROM pg_catalog.pg_class c, LATERAL ("
    "SELECT pg_catalog.count(DISTINCT d.refobjid) AS n, "
    "pg_catalog.string_agg(DISTINCT r.relkind::text, '') AS kinds, "
    "pg_catalog.bool_or(d.refobjsubid = -1) AS ctid, pg_catalog.pg_relation_size("
    "pg_catalog.min(d.refobjid)) / pg_catalog.current_setting('block_size')::bigint AS pages "
    "FROM pg_catalog.pg_rewrite w JOIN pg_catalog.pg_depend d "
    "ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = w.oid "
    "AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass "
    "JOIN pg_catalog.pg_class r ON r.oid = d.refobjid "
    "WHERE w.ev_class = c.oid AND d.refobjid <> w.ev_class) AS b "
    "WHERE c.oid = $1::pg_catalog.regclass";

int fw__par_ctid_col_check(const fw_query_t *q, char **f, int64_t *pages, char *relkind,
                           fw_error_t *err)
{
    int64_t nrel = 0;
    if (!fw__par_parse_i64(f[3], &nrel) || !fw__par_parse_i64(f[6], pages)) {
        set_errf(err, FW_EPROTO_BAD_VALUE, "parallel stream: the view answer is not understood");
        return FW_EPROTO_BAD_VALUE;
    }
    *relkind = f[2][0];
    if (*relkind != 'v') {
        set_errf(err, FW_EINVAL,
                 "%s is not a view: a ctid column (fw_query_partition_ctid) is a view's; a table "
                 "is split by ctid ranges without it",
                 q->source);
        return FW_EINVAL;
    }
    if (strcmp(f[7], "-") == 0) {
        set_errf(err, FW_EINVAL, "%s has no column \"%s\" (the ctid column)", q->source, q->pkey);
        return FW_EINVAL;
    }
    if (strcmp(f[7], "tid") != 0) {
        set_errf(err, FW_EINVAL,
                 "the ctid column \"%s\" must be of type tid (the view's `t.ctid AS %s`); it is "
                 "%s",
                 q->pkey, q->pkey, f[7]);
        return FW_EINVAL;
    }
    if (nrel != 1 || (strcmp(f[4], "r") != 0 && strcmp(f[4], "m") != 0) ||
        strcmp(f[5], "t") != 0) {
        set_errf(err, FW_EINVAL,
                 "%s reads %" PRId64 " relation(s) (kinds '%s'%s): a ctid column splits a view "
                 "over exactly one table and its ctid; name an indexed integer key column "
                 "instead (fw_query_partition_key)",
                 q->source, nrel, f[4], strcmp(f[5], "t") == 0 ? "" : ", no ctid");
        return FW_EINVAL;
    }
    return 0;
}

void fw__par_quote_ident(char *dst, const char *name)
{
    size_t k = 0;
    dst[k++] = '"';
    for (const char *c = name; *c != '\0'; c++) {
        if (*c == '"')
            dst[k++] = '"';
        dst[k++] = *c;
    }
    dst[k++] = '"';
    dst[k] = '\0';
}

/* min + (max - min) * i / n in unsigned arithmetic: no overflow for any int64 min and max.
 * The last range is open above, so max itself needs no +1. */
static int64_t key_bound(const fw__par_setup_t *st, int i, int n)
{
    uint64_t span = (uint64_t)st->kmax - (uint64_t)st->kmin;
    uint64_t off =
        span / (uint64_t)n * (uint64_t)i + span % (uint64_t)n * (uint64_t)i / (uint64_t)n;
    return (int64_t)((uint64_t)st->kmin + off);
}

void fw__par_part_runs(const fw__par_t *p, const fw_query_t *q, const fw__par_setup_t *st,
                       fw__par_runs_t *r)
{
    snprintf(r->set_snapshot, sizeof(r->set_snapshot), "SET TRANSACTION SNAPSHOT '%s'",
             st->snapshot);
    fw__query_run_t *run = r->run;
    memset(run, 0, sizeof(r->run));
    /* ctid ranges on the table's ctid, or on a view's column showing it (quoted) */
    char col[2 * FW__QUERY_MAX_IDENT + 3] = "ctid";
    if (q->pkey != NULL && q->pkey_ctid)
        fw__par_quote_ident(col, q->pkey);
    bool by_ctid = q->pkey == NULL || q->pkey_ctid;
    for (int i = 0; i < p->n; i++) {
        if (i > 0) {
            run[i].pre[0] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
            run[i].pre[1] = r->set_snapshot;
            run[i].npre = 2;
        }
        bool first = i == 0, last = i == p->n - 1;
        if (by_ctid) {
            /* Pages [a, b): the first range open below, the last open above (pages added
             * after the size was read hold rows the snapshot cannot see, or none). */
            int64_t a = st->pages * i / p->n; /* pages < 2^32: no overflow */
            int64_t b = st->pages * (i + 1) / p->n;
            if (first && last)
                run[i].cond = NULL;
            else if (first)
                snprintf(r->cond[i], sizeof(r->cond[i]), "%s < '(%" PRId64 ",0)'::pg_catalog.tid",
                         col, b);
            else if (last)
                snprintf(r->cond[i], sizeof(r->cond[i]), "%s >= '(%" PRId64 ",0)'::pg_catalog.tid",
                         col, a);
            else
                snprintf(r->cond[i], sizeof(r->cond[i]),
                         "%s >= '(%" PRId64 ",0)'::pg_catalog.tid AND %s < '(%" PRId64
                         ",0)'::pg_catalog.tid",
                         col, a, col, b);
            if (!(first && last))
                run[i].cond = r->cond[i];
        } else if (st->empty) {
            /* No key at all: the first part reads everything (rows whose key is NULL). */
            run[i].cond = first ? NULL : "false";
        } else {
            /* Bound i is cut i - 1 (the histogram's) or min + span * i / n. */
            snprintf(r->lo[i], sizeof(r->lo[i]), "%" PRId64,
                     st->ncuts > 0 ? st->cuts[first ? 0 : i - 1] : key_bound(st, i, p->n));
            snprintf(r->hi[i], sizeof(r->hi[i]), "%" PRId64,
                     st->ncuts > 0 ? st->cuts[last ? i - 1 : i] : key_bound(st, i + 1, p->n));
            run[i].key_range = true;
            run[i].key_lo = first ? NULL : r->lo[i];
            run[i].key_hi = last ? NULL : r->hi[i];
            run[i].key_nulls = last; /* ascending order puts NULL keys last */
        }
    }
}
