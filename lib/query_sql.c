/* SPDX-License-Identifier: MIT */
/*
 * The statement a query runs, and its wire form: fw_query_sql() renders the one statement
 * fwire sends, and fw__query_encode() turns a run of it into Parse/Bind/Describe/Execute/Sync
 * (or, for the query with nothing but its source, one simple Query: fw__query_simple).
 *
 * Every value a caller gives, path elements included, travels as a bind parameter; only the
 * identifiers (quoted here) and the two kinds of trusted SQL (where_sql, order_by expressions)
 * reach the statement text. The renderer works like snprintf, counting every byte and storing
 * what fits, so fw_query_sql() never allocates and the encoder renders twice (count, then write)
 * instead of growing a buffer.
 */
#include "query.h"

#include "alloc.h"

#include <assert.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Sent first when a statement timeout is set. is_local = true: the setting ends with the
 * implicit transaction that Sync closes, so it never leaks into the connection's next query. */
#define PREAMBLE_SQL "SELECT pg_catalog.set_config('statement_timeout', $1, true)"

/* ---- the renderer ------------------------------------------------------------------------ */

/* snprintf's contract: `len` counts every byte asked for, `buf` keeps what fits before a NUL. */
typedef struct sqlw_s {
    char *buf;
    size_t cap;
    size_t len;
    size_t nparams; /* the last $n written */
    bool overflow;  /* the length no longer fits in size_t */
} sqlw_t;

static void put_n(sqlw_t *w, const char *s, size_t n)
{
    if (n > SIZE_MAX - w->len) {
        w->overflow = true;
        return;
    }
    if (w->cap > 0 && w->len < w->cap - 1) {
        size_t room = w->cap - 1 - w->len;
        memcpy(w->buf + w->len, s, n < room ? n : room);
    }
    w->len += n;
}

static void put(sqlw_t *w, const char *s)
{
    put_n(w, s, strlen(s));
}

static void finish(sqlw_t *w)
{
    if (w->cap > 0)
        w->buf[w->len < w->cap - 1 ? w->len : w->cap - 1] = '\0';
}

/* Decimal digits of v into out (at least 21 bytes), NUL-terminated; returns the length. No
 * printf: this text goes on the wire (STYLE 16). */
static size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* The next parameter placeholder, "$<n>". */
static void put_param(sqlw_t *w)
{
    char num[21];
    w->nparams++;
    put(w, "$");
    put_n(w, num, fmt_u64(num, w->nparams));
}

/* s[0..n) as a quoted identifier, with `prefix` inside the quotes ("v_"); '"' is doubled. */
static void put_ident(sqlw_t *w, const char *prefix, const char *s, size_t n)
{
    put(w, "\"");
    put(w, prefix);
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') {
            put_n(w, s + from, i + 1 - from); /* through the quote ... */
            put(w, "\"");                     /* ... and once more */
            from = i + 1;
        }
    }
    put_n(w, s + from, n - from);
    put(w, "\"");
}

/* ARRAY[$a::text,$b::text]: one text parameter per path element. */
static void put_path_array(sqlw_t *w, size_t npath)
{
    put(w, "ARRAY[");
    for (size_t i = 0; i < npath; i++) {
        if (i > 0)
            put(w, ",");
        put_param(w);
        put(w, "::text");
    }
    put(w, "]");
}

/* The jsonb at the path (SQL NULL when the path is missing). */
static void put_json_at(sqlw_t *w, size_t npath)
{
    if (npath == 0) {
        put(w, "\"data\"::jsonb");
        return;
    }
    put(w, "(\"data\"::jsonb #> ");
    put_path_array(w, npath);
    put(w, ")");
}

/* The text at the path: a string unquoted, other values as JSON text; SQL NULL when the path
 * is missing or holds JSON null. The whole document uses a constant empty path. */
static void put_text_at(sqlw_t *w, size_t npath)
{
    if (npath == 0) {
        put(w, "(\"data\"::jsonb #>> '{}'::text[])");
        return;
    }
    put(w, "(\"data\"::jsonb #>> ");
    put_path_array(w, npath);
    put(w, ")");
}

/* A value parameter as jsonb: the server parses the text as its type (22P02 when it cannot). */
static void put_json_value(sqlw_t *w, fw_value_type_t type)
{
    switch (type) {
    case FW_VALUE_TEXT:
        put(w, "to_jsonb(");
        put_param(w);
        put(w, "::text)");
        break;
    case FW_VALUE_NUMBER:
        put(w, "to_jsonb(");
        put_param(w);
        put(w, "::numeric)");
        break;
    case FW_VALUE_BOOL:
        put(w, "to_jsonb(");
        put_param(w);
        put(w, "::boolean)");
        break;
    case FW_VALUE_JSON:
        put_param(w);
        put(w, "::jsonb");
        break;
    }
}

static const char *const cmp_sql[] = {
    [FW_OP_EQ] = " = ", [FW_OP_NE] = " <> ", [FW_OP_LT] = " < ",        [FW_OP_LE] = " <= ",
    [FW_OP_GT] = " > ", [FW_OP_GE] = " >= ", [FW_OP_CONTAINS] = " @> ",
};

static void put_op(sqlw_t *w, const fw__query_cond_t *c)
{
    switch (c->op) {
    case FW_OP_EQ:
    case FW_OP_NE:
    case FW_OP_LT:
    case FW_OP_LE:
    case FW_OP_GT:
    case FW_OP_GE:
    case FW_OP_CONTAINS:
        put_json_at(w, c->npath);
        put(w, cmp_sql[c->op]);
        put_json_value(w, c->type);
        break;
    case FW_OP_LIKE:
    case FW_OP_ILIKE:
        put_text_at(w, c->npath);
        put(w, c->op == FW_OP_LIKE ? " LIKE " : " ILIKE ");
        put_param(w);
        put(w, "::text");
        break;
    case FW_OP_IS_NULL:
    case FW_OP_IS_NOT_NULL:
        put_text_at(w, c->npath);
        put(w, c->op == FW_OP_IS_NULL ? " IS NULL" : " IS NOT NULL");
        break;
    case FW_OP_HAS_KEY:
        put_json_at(w, c->npath);
        put(w, " ? ");
        put_param(w);
        put(w, "::text");
        break;
    }
}

static void put_cond(sqlw_t *w, const fw__query_cond_t *c)
{
    switch (c->kind) {
    case FW__QUERY_COND_SQL:
        /* Newlines, so a trailing "--" comment in the fragment ends before our ")". */
        put(w, "(\n");
        put(w, c->sql);
        put(w, "\n)");
        break;
    case FW__QUERY_COND_OP:
        put(w, "(");
        put_op(w, c);
        put(w, ")");
        break;
    case FW__QUERY_COND_IN:
        if (c->nvalues == 0) {
            put(w, "(false)"); /* binds nothing: an unused $n would have no type */
            break;
        }
        put(w, "(");
        put_json_at(w, c->npath);
        put(w, " IN (");
        for (size_t i = 0; i < c->nvalues; i++) {
            if (i > 0)
                put(w, ", ");
            put_json_value(w, c->type);
        }
        put(w, "))");
        break;
    }
}

/* A parallel part's key range (fw__query_run_t): its parameters come after the query's own
 * conditions' (a parallel query has no LIMIT or OFFSET). NULL keys go to the part that says
 * so (the last one: ascending order puts them last). */
static void put_key_range(sqlw_t *w, const fw_query_t *q, const fw__query_run_t *run)
{
    size_t klen = strlen(q->pkey);
    put(w, "((");
    if (run->key_lo != NULL) {
        put_ident(w, "", q->pkey, klen);
        put(w, " >= ");
        put_param(w);
    }
    if (run->key_lo != NULL && run->key_hi != NULL)
        put(w, " AND ");
    if (run->key_hi != NULL) {
        put_ident(w, "", q->pkey, klen);
        put(w, " < ");
        put_param(w);
    }
    if (run->key_lo == NULL && run->key_hi == NULL)
        put(w, "true");
    put(w, ")");
    if (run->key_nulls) {
        put(w, " OR ");
        put_ident(w, "", q->pkey, klen);
        put(w, " IS NULL");
    }
    put(w, ")");
}

/* The main statement. The order here is the order of the bind parameters (bind_params()). */
static void render(const fw_query_t *q, const fw__query_run_t *run, sqlw_t *w)
{
    if (run != NULL && run->raw != NULL) {
        put(w, run->raw);
        return;
    }
    if (q->explain)
        put(w, "EXPLAIN (FORMAT JSON) ");
    put(w, "SELECT \"data\" FROM ");
    put(w, q->source);
    size_t k = 0;
    for (size_t i = 0; i < q->nconds; i++, k++) {
        put(w, k == 0 ? " WHERE " : " AND ");
        put_cond(w, &q->conds[i]);
    }
    if (run != NULL && run->cond != NULL) {
        put(w, k++ == 0 ? " WHERE (" : " AND (");
        put(w, run->cond);
        put(w, ")");
    }
    if (run != NULL && run->key_range && q->pkey != NULL) {
        put(w, k++ == 0 ? " WHERE " : " AND ");
        put_key_range(w, q, run);
    }
    for (size_t i = 0; i < q->norders; i++) {
        const fw__query_order_t *o = &q->orders[i];
        /* Newlines around the trusted expression, as for where_sql fragments. */
        put(w, i == 0 ? " ORDER BY\n" : ",\n");
        put(w, o->expression);
        put(w, "\n");
        if (o->collation != NULL) {
            put(w, " COLLATE ");
            put_ident(w, "", o->collation, strlen(o->collation));
        }
        if (o->descending)
            put(w, " DESC");
    }
    if (q->limit >= 0) {
        put(w, " LIMIT ");
        put_param(w);
        put(w, "::bigint");
    }
    if (q->offset >= 0) {
        put(w, " OFFSET ");
        put_param(w);
        put(w, "::bigint");
    }
}

/* ---- the source ----------------------------------------------------------------------------- */

char *fw__query_quote_source(const char *schema, size_t slen, const char *prefix, const char *rel,
                             size_t rlen)
{
    sqlw_t w = {0};
    char *buf = NULL;
    for (int pass = 0; pass < 2; pass++) {
        if (schema != NULL) {
            put_ident(&w, "", schema, slen);
            put(&w, ".");
        }
        put_ident(&w, prefix, rel, rlen);
        if (pass == 0) {
            /* At most 2 * 63 + 5 bytes: no overflow to check. */
            buf = fw__malloc(w.len + 1);
            if (buf == NULL)
                return NULL;
            w = (sqlw_t){.buf = buf, .cap = w.len + 1};
        }
    }
    finish(&w);
    return buf;
}

/* ---- output ------------------------------------------------------------------------------- */

long fw_query_sql(const fw_query_t *q, char *buf, size_t cap)
{
    if (q == NULL || (buf == NULL && cap > 0))
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    if (q->source == NULL)
        return FW_EINVAL;
    sqlw_t w = {.buf = buf, .cap = cap};
    render(q, NULL, &w);
    finish(&w);
    if (w.overflow || w.len > (size_t)LONG_MAX)
        return FW_ETOOBIG;
    return (long)w.len;
}

static void bind_params(const fw_query_t *q, fw__pq_param_t *params, char limit_txt[21],
                        char offset_txt[21])
{
    size_t k = 0;
    for (size_t i = 0; i < q->nconds; i++) {
        const fw__query_cond_t *c = &q->conds[i];
        if (c->kind == FW__QUERY_COND_SQL)
            continue;
        for (size_t j = 0; j < c->npath + c->nvalues; j++)
            params[k++] = (fw__pq_param_t){(const uint8_t *)c->strs[j], strlen(c->strs[j]), false};
    }
    if (q->limit >= 0) {
        size_t n = fmt_u64(limit_txt, (uint64_t)q->limit);
        params[k++] = (fw__pq_param_t){(const uint8_t *)limit_txt, n, false};
    }
    if (q->offset >= 0) {
        size_t n = fmt_u64(offset_txt, (uint64_t)q->offset);
        params[k++] = (fw__pq_param_t){(const uint8_t *)offset_txt, n, false};
    }
    assert(k == q->nparams);
}

int fw__query_encode(const fw_query_t *q, fw__pq_buf_t *out)
{
    return fw__query_encode_run(q, NULL, out);
}

bool fw__query_simple(const fw_query_t *q, const fw__query_run_t *run)
{
    return q != NULL && q->err == 0 && q->source != NULL && q->nparams == 0 && q->nconds == 0 &&
           q->norders == 0 && q->limit < 0 && q->offset < 0 && q->statement_timeout_ms == 0 &&
           (run == NULL || (run->npre == 0 && run->cond == NULL && !run->key_range &&
                            run->raw == NULL));
}

int fw__query_encode_run(const fw_query_t *q, const fw__query_run_t *run, fw__pq_buf_t *out)
{
    if (q == NULL || out == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    if (q->source == NULL)
        return FW_EINVAL;
    if (out->err != 0)
        return out->err;

    bool raw = run != NULL && run->raw != NULL;
    /* A raw statement has its own parameter (or none); a key range adds one per bound. */
    size_t nparams = q->nparams;
    if (raw)
        nparams = run->raw_param[0] == NULL ? 0 : run->raw_param[1] == NULL ? 1 : 2;
    size_t nkey = 0;
    if (!raw && run != NULL && run->key_range && q->pkey != NULL)
        nkey = (run->key_lo != NULL ? 1u : 0u) + (run->key_hi != NULL ? 1u : 0u);
    nparams += nkey;
    sqlw_t w = {0};
    render(q, run, &w);
    if (w.overflow || w.len == SIZE_MAX)
        return FW_ETOOBIG;
    assert(raw || w.nparams == nparams);
    char *sql = fw__malloc(w.len + 1);
    /* Parse with every type 0: the casts in the text give each parameter its type. */
    uint32_t *oids = nparams > 0 ? fw__calloc(nparams, sizeof(*oids)) : NULL;
    fw__pq_param_t *params = nparams > 0 ? fw__calloc(nparams, sizeof(*params)) : NULL;
    int rc = 0;
    if (sql == NULL || (nparams > 0 && (oids == NULL || params == NULL))) {
        rc = FW_ENOMEM;
        goto done;
    }
    w = (sqlw_t){.buf = sql, .cap = w.len + 1};
    render(q, run, &w);
    finish(&w);

    char limit_txt[21], offset_txt[21];
    if (raw) {
        for (size_t i = 0; i < nparams; i++)
            params[i] = (fw__pq_param_t){(const uint8_t *)run->raw_param[i],
                                         strlen(run->raw_param[i]), false};
    } else {
        bind_params(q, params, limit_txt, offset_txt);
        size_t k = q->nparams;
        if (nkey > 0 && run->key_lo != NULL)
            params[k++] = (fw__pq_param_t){(const uint8_t *)run->key_lo, strlen(run->key_lo),
                                           false};
        if (nkey > 0 && run->key_hi != NULL)
            params[k++] = (fw__pq_param_t){(const uint8_t *)run->key_hi, strlen(run->key_hi),
                                           false};
    }

    /* A part's BEGIN and SET TRANSACTION SNAPSHOT: first (the snapshot must be set before
     * any query of the transaction, the statement timeout's SELECT included); no Describe:
     * the stream expects ParseComplete, BindComplete and CommandComplete from each. */
    for (int i = 0; run != NULL && i < run->npre; i++) {
        fw__pq_put_parse(out, "", run->pre[i], 0, NULL);
        fw__pq_put_bind(out, "", "", 0, NULL, 0, NULL, 0, NULL);
        fw__pq_put_execute(out, "", 0);
    }
    if (!raw && q->statement_timeout_ms != 0) {
        /* No Describe: the stream expects ParseComplete, BindComplete, one DataRow and
         * CommandComplete from it (fw__query_preamble). */
        static const uint32_t oid_unknown = 0;
        char ms[21];
        size_t mslen = fmt_u64(ms, q->statement_timeout_ms);
        fw__pq_param_t p = {(const uint8_t *)ms, mslen, false};
        fw__pq_put_parse(out, "", PREAMBLE_SQL, 1, &oid_unknown);
        fw__pq_put_bind(out, "", "", 0, NULL, 1, &p, 0, NULL);
        fw__pq_put_execute(out, "", 0);
    }
    if (fw__query_simple(q, run)) {
        /* RowDescription, DataRows, CommandComplete, ReadyForQuery (fw__query_simple) */
        fw__pq_put_query(out, sql);
    } else {
        fw__pq_put_parse(out, "", sql, nparams, oids);
        fw__pq_put_bind(out, "", "", 0, NULL, nparams, params, 0, NULL);
        fw__pq_put_describe(out, 'P', "");
        fw__pq_put_execute(out, "", 0);
        fw__pq_put_sync(out);
    }
    rc = out->err; /* sticky: the first failure of the batch */
done:
    fw__free(params);
    fw__free(oids);
    fw__free(sql);
    return rc;
}
