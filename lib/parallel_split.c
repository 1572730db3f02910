/* SPDX-License-Identifier: MIT */
/*
 * A parallel stream over a view split by its table's pages (fw_query_partition_ctid): the
 * setup statement that finds the one table the view's rule reads, and the checks of its answer.
 * The split itself is parallel.c's ctid ranges, on the view's column instead of ctid.
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
