/* SPDX-License-Identifier: MIT */
/*
 * The query builder: fw_query_* records a source, conditions, order and limits, each checked
 * as it is set (the first error is kept and reported by fw_query_sql and fw_stream_start). The
 * SQL and the wire messages are made by query_sql.c (query.h shows the SQL shape).
 *
 * Every value a caller gives, path elements included, travels as a bind parameter; only the
 * identifiers (quoted here) and the two kinds of trusted SQL (where_sql, order_by expressions)
 * reach the statement text. The renderer works like snprintf, counting every byte and storing
 * what fits, so fw_query_sql() never allocates and the encoder renders twice (count, then write)
 * instead of growing a buffer.
 */
#include "query.h"

#include "alloc.h"
#include "lmetrics.h"

#include <assert.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- lifecycle ---------------------------------------------------------------------------- */

int fw_query_new(fw_query_t **out)
{
    if (out == NULL)
        return FW_EINVAL;
    fw_query_t *q = fw__calloc(1, sizeof(*q));
    *out = q;
    if (q == NULL)
        return FW_ENOMEM;
    q->limit = -1;
    q->offset = -1;
    q->chunk_size = FW__QUERY_DEFAULT_CHUNK_SIZE;
    q->max_memory = FW__QUERY_DEFAULT_MAX_MEMORY;
    /* Adaptive by default (docs/streaming.md "Adaptive chunk sizes"): the default policy. */
    q->adaptive = true;
    fw__chunker_opts_init(&q->chunk_policy);
    return 0;
}

void fw_query_free(fw_query_t *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->nconds; i++) {
        fw__free(q->conds[i].sql);
        fw__free((void *)q->conds[i].strs);
    }
    for (size_t i = 0; i < q->norders; i++) {
        fw__free(q->orders[i].expression);
        fw__free(q->orders[i].collation);
    }
    fw__free(q->conds);
    fw__free(q->orders);
    fw__free(q->source);
    fw__free(q->pkey);
    fw__free(q);
}

/* A copy of one condition's strings: the pointer array and the bytes after it, one block as
 * add_typed makes it (the strings lie back to back, path elements first). */
static const char **clone_strs(const fw__query_cond_t *c)
{
    size_t nstrs = c->npath + c->nvalues;
    if (c->strs == NULL || nstrs == 0)
        return NULL;
    const char *first = c->strs[0];
    size_t bytes = 0;
    for (size_t i = 0; i < nstrs; i++) {
        size_t end = (size_t)(c->strs[i] - first) + strlen(c->strs[i]) + 1;
        bytes = end > bytes ? end : bytes;
    }
    const char **strs = fw__malloc(nstrs * sizeof(char *) + bytes);
    if (strs == NULL)
        return NULL;
    char *to = (char *)(strs + nstrs);
    memcpy(to, first, bytes);
    for (size_t i = 0; i < nstrs; i++)
        strs[i] = to + (c->strs[i] - first);
    return strs;
}

fw_query_t *fw__query_clone(const fw_query_t *q)
{
    fw_query_t *c = fw__calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    *c = *q;
    c->conds = NULL;
    c->orders = NULL;
    c->nconds = c->conds_cap = c->norders = c->orders_cap = 0;
    c->source = q->source != NULL ? fw__strdup(q->source) : NULL;
    c->pkey = q->pkey != NULL ? fw__strdup(q->pkey) : NULL;
    bool ok = (q->source == NULL || c->source != NULL) && (q->pkey == NULL || c->pkey != NULL);
    if (ok && q->nconds > 0 && (c->conds = fw__calloc(q->nconds, sizeof(*c->conds))) == NULL)
        ok = false;
    for (size_t i = 0; ok && i < q->nconds; i++) {
        c->conds[i] = q->conds[i];
        c->conds[i].sql = NULL;
        c->conds[i].strs = NULL;
        c->nconds = c->conds_cap = i + 1;
        if (q->conds[i].sql != NULL)
            ok = (c->conds[i].sql = fw__strdup(q->conds[i].sql)) != NULL;
        else if (q->conds[i].strs != NULL)
            ok = (c->conds[i].strs = clone_strs(&q->conds[i])) != NULL;
    }
    if (ok && q->norders > 0 && (c->orders = fw__calloc(q->norders, sizeof(*c->orders))) == NULL)
        ok = false;
    for (size_t i = 0; ok && i < q->norders; i++) {
        c->norders = c->orders_cap = i + 1;
        c->orders[i].descending = q->orders[i].descending;
        ok = (c->orders[i].expression = fw__strdup(q->orders[i].expression)) != NULL &&
             (q->orders[i].collation == NULL ||
              (c->orders[i].collation = fw__strdup(q->orders[i].collation)) != NULL);
    }
    if (!ok) {
        fw_query_free(c);
        return NULL;
    }
    return c;
}

/* Records the first error; every setter returns through here on failure. */
static int fail(fw_query_t *q, int err)
{
    if (q->err == 0)
        q->err = err;
    return q->err;
}

/* ---- source ------------------------------------------------------------------------------- */

/* Replaces the source with [schema.]prefix+rel, both quoted. Lengths are checked by callers. */
static int set_source(fw_query_t *q, const char *schema, size_t slen, const char *prefix,
                      const char *rel, size_t rlen)
{
    char *buf = fw__query_quote_source(schema, slen, prefix, rel, rlen);
    if (buf == NULL)
        return fail(q, FW_ENOMEM);
    fw__free(q->source);
    q->source = buf;
    return 0;
}

int fw_query_entity(fw_query_t *q, const char *entity)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    if (entity == NULL)
        return fail(q, FW_EINVAL);
    size_t n = strlen(entity);
    /* The server would truncate a longer name silently and read some other view. */
    if (n == 0 || n > FW__QUERY_MAX_IDENT - 2)
        return fail(q, FW_EINVAL);
    int rc = set_source(q, NULL, 0, "v_", entity, n);
    if (rc == 0) {
        snprintf(q->label, sizeof(q->label), "%s", entity);
        q->lm_e = fw__lm_entity(q->label);
    }
    return rc;
}

int fw_query_relation(fw_query_t *q, const char *relation)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    if (relation == NULL)
        return fail(q, FW_EINVAL);
    const char *dot = strchr(relation, '.');
    const char *schema = NULL, *rel = relation;
    size_t slen = 0;
    if (dot != NULL) {
        schema = relation;
        slen = (size_t)(dot - relation);
        rel = dot + 1;
        if (slen == 0 || slen > FW__QUERY_MAX_IDENT)
            return fail(q, FW_EINVAL);
    }
    size_t rlen = strlen(rel);
    if (rlen == 0 || rlen > FW__QUERY_MAX_IDENT)
        return fail(q, FW_EINVAL);
    int rc = set_source(q, schema, slen, "", rel, rlen);
    if (rc == 0) {
        snprintf(q->label, sizeof(q->label), "%s", relation);
        q->lm_e = fw__lm_entity(q->label);
    }
    return rc;
}

int fw_query_explain(fw_query_t *q, bool on)
{
    if (q == NULL)
        return FW_EINVAL;
    q->explain = on;
    return 0;
}

/* ---- conditions --------------------------------------------------------------------------- */

/* Room for one more condition; the array grows by doubling. */
static int reserve_cond(fw_query_t *q)
{
    if (q->nconds < q->conds_cap)
        return 0;
    size_t cap = q->conds_cap == 0 ? 4 : q->conds_cap * 2;
    if (cap > SIZE_MAX / sizeof(*q->conds))
        return FW_ENOMEM;
    fw__query_cond_t *c = fw__realloc(q->conds, cap * sizeof(*c));
    if (c == NULL)
        return FW_ENOMEM;
    q->conds = c;
    q->conds_cap = cap;
    return 0;
}

int fw_query_where_sql(fw_query_t *q, const char *sql)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    if (sql == NULL || sql[0] == '\0') /* "(\n\n)" is a syntax error; say so here */
        return fail(q, FW_EINVAL);
    if (reserve_cond(q) != 0)
        return fail(q, FW_ENOMEM);
    char *copy = fw__strdup(sql);
    if (copy == NULL)
        return fail(q, FW_ENOMEM);
    q->conds[q->nconds++] = (fw__query_cond_t){.kind = FW__QUERY_COND_SQL, .sql = copy};
    return 0;
}

/* Counts the elements of a dotted path: 0 for NULL or "", -1 for an empty element. */
static long path_elements(const char *path)
{
    if (path == NULL || path[0] == '\0')
        return 0;
    long n = 1;
    const char *p = path;
    if (*p == '.')
        return -1;
    for (; *p != '\0'; p++) {
        if (*p != '.')
            continue;
        if (p[1] == '.' || p[1] == '\0')
            return -1;
        n++;
    }
    return n;
}

/* Room for `add` more parameters in the statement (the protocol counts them in 16 bits). */
static bool params_fit(const fw_query_t *q, size_t add)
{
    return add <= FW__QUERY_MAX_PARAMS && q->nparams <= FW__QUERY_MAX_PARAMS - add;
}

/*
 * Adds a typed condition: copies the path elements then the values into one block (pointer array
 * first, then the bytes), in bind-parameter order. `npath` was counted by path_elements().
 */
static int add_typed(fw_query_t *q, fw__query_cond_kind_t kind, fw_op_t op, fw_value_type_t type,
                     const char *path, size_t npath, const char *const *values, size_t nvalues)
{
    if (kind == FW__QUERY_COND_IN && nvalues == 0)
        npath = 0; /* "false" binds nothing, not even the path */
    size_t nstrs = npath + nvalues;
    if (!params_fit(q, nstrs))
        return fail(q, FW_EINVAL);
    size_t plen = npath > 0 ? strlen(path) + 1 : 0;
    size_t size = nstrs * sizeof(char *); /* nstrs <= 65,535: no overflow */
    if (size > SIZE_MAX - plen)
        return fail(q, FW_ENOMEM);
    size += plen;
    for (size_t i = 0; i < nvalues; i++) {
        size_t vlen = strlen(values[i]) + 1;
        if (size > SIZE_MAX - vlen)
            return fail(q, FW_ENOMEM);
        size += vlen;
    }
    if (reserve_cond(q) != 0)
        return fail(q, FW_ENOMEM);
    const char **strs = NULL;
    if (nstrs > 0) {
        strs = fw__malloc(size);
        if (strs == NULL)
            return fail(q, FW_ENOMEM);
        char *bytes = (char *)(strs + nstrs);
        if (npath > 0) {
            /* The path once, its dots turned into NULs: each element then starts in place. */
            memcpy(bytes, path, plen);
            strs[0] = bytes;
            size_t k = 1;
            for (size_t i = 0; i + 1 < plen; i++) {
                if (bytes[i] == '.') {
                    bytes[i] = '\0';
                    strs[k++] = bytes + i + 1;
                }
            }
            assert(k == npath);
            bytes += plen;
        }
        for (size_t i = 0; i < nvalues; i++) {
            size_t vlen = strlen(values[i]) + 1;
            memcpy(bytes, values[i], vlen);
            strs[npath + i] = bytes;
            bytes += vlen;
        }
    }
    q->conds[q->nconds++] = (fw__query_cond_t){
        .kind = kind, .op = op, .type = type, .npath = npath, .nvalues = nvalues, .strs = strs};
    q->nparams += nstrs;
    return 0;
}

static bool type_valid(fw_value_type_t type)
{
    return (unsigned)type <= (unsigned)FW_VALUE_JSON;
}

int fw_query_where(fw_query_t *q, const char *path, fw_op_t op, fw_value_type_t type,
                   const char *value)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    if ((unsigned)op > (unsigned)FW_OP_HAS_KEY || !type_valid(type))
        return fail(q, FW_EINVAL);
    bool takes_value = op != FW_OP_IS_NULL && op != FW_OP_IS_NOT_NULL;
    if (takes_value && value == NULL)
        return fail(q, FW_EINVAL);
    bool text_only = op == FW_OP_LIKE || op == FW_OP_ILIKE || op == FW_OP_HAS_KEY;
    if (text_only && type != FW_VALUE_TEXT)
        return fail(q, FW_EINVAL);
    long npath = path_elements(path);
    if (npath < 0)
        return fail(q, FW_EINVAL);
    /* A pattern matches text at a path; the whole document is no text to match. */
    if ((op == FW_OP_LIKE || op == FW_OP_ILIKE) && npath == 0)
        return fail(q, FW_EINVAL);
    return add_typed(q, FW__QUERY_COND_OP, op, type, path, (size_t)npath, &value,
                     takes_value ? 1 : 0);
}

int fw_query_where_in(fw_query_t *q, const char *path, fw_value_type_t type,
                      const char *const *values, size_t n)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    if (!type_valid(type) || (n > 0 && values == NULL) || n > FW__QUERY_MAX_PARAMS)
        return fail(q, FW_EINVAL);
    for (size_t i = 0; i < n; i++) {
        if (values[i] == NULL)
            return fail(q, FW_EINVAL);
    }
    long npath = path_elements(path);
    if (npath < 0)
        return fail(q, FW_EINVAL);
    return add_typed(q, FW__QUERY_COND_IN, FW_OP_EQ, type, path, (size_t)npath, values, n);
}

/* ---- order, limits, options ------------------------------------------------------------- */

int fw_query_order_by(fw_query_t *q, const char *expression, const char *collation, bool descending)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    if (expression == NULL || expression[0] == '\0')
        return fail(q, FW_EINVAL);
    /* An empty quoted identifier is a syntax error; a long one would be truncated silently. */
    if (collation != NULL && (collation[0] == '\0' || strlen(collation) > FW__QUERY_MAX_IDENT))
        return fail(q, FW_EINVAL);
    if (q->norders == q->orders_cap) {
        size_t cap = q->orders_cap == 0 ? 2 : q->orders_cap * 2;
        if (cap > SIZE_MAX / sizeof(*q->orders))
            return fail(q, FW_ENOMEM);
        fw__query_order_t *o = fw__realloc(q->orders, cap * sizeof(*o));
        if (o == NULL)
            return fail(q, FW_ENOMEM);
        q->orders = o;
        q->orders_cap = cap;
    }
    char *e = fw__strdup(expression);
    char *c = collation != NULL ? fw__strdup(collation) : NULL;
    if (e == NULL || (collation != NULL && c == NULL)) {
        fw__free(e);
        fw__free(c);
        return fail(q, FW_ENOMEM);
    }
    q->orders[q->norders++] = (fw__query_order_t){e, c, descending};
    return 0;
}

/* LIMIT and OFFSET: each is one parameter, counted the first time it is set. */
static int set_bound(fw_query_t *q, int64_t *slot, int64_t n)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    if (n < 0)
        return fail(q, FW_EINVAL);
    if (*slot < 0) {
        if (!params_fit(q, 1))
            return fail(q, FW_EINVAL);
        q->nparams++;
    }
    *slot = n;
    return 0;
}

int fw_query_limit(fw_query_t *q, int64_t n)
{
    return set_bound(q, q != NULL ? &q->limit : NULL, n);
}

int fw_query_offset(fw_query_t *q, int64_t n)
{
    return set_bound(q, q != NULL ? &q->offset : NULL, n);
}

int fw_query_chunk_size(fw_query_t *q, size_t rows)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    /* The range fwire.h documents: the cap bounds how many rows one chunk can pin at once, and a
     * bigger chunk would not be handed over sooner (chunks also end with every socket read). */
    if (rows == 0 || rows > FW__QUERY_MAX_CHUNK_SIZE)
        return fail(q, FW_EINVAL);
    q->chunk_size = rows;
    q->adaptive = false;
    return 0;
}

int fw_query_max_memory(fw_query_t *q, size_t bytes)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    /* A smaller budget would make the stream stop and restart reading the socket after nearly
     * every read, paying a wake-up per few rows. */
    if (bytes < FW__QUERY_MIN_MAX_MEMORY)
        return fail(q, FW_EINVAL);
    q->max_memory = bytes;
    return 0;
}

int fw_query_predicate(fw_query_t *q, fw_predicate_cb cb, void *ud)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    q->predicate = cb;
    q->predicate_ud = cb != NULL ? ud : NULL;
    return 0;
}

int fw_query_statement_timeout(fw_query_t *q, uint32_t ms)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    /* The server's statement_timeout is an int of milliseconds; it would refuse more (22023)
     * only once the query runs. */
    if (ms > (uint32_t)INT32_MAX)
        return fail(q, FW_EINVAL);
    q->statement_timeout_ms = ms;
    return 0;
}

void fw_chunk_policy_init(fw_chunk_policy_t *p)
{
    if (p == NULL)
        return;
    memset(p, 0, sizeof(*p));
    fw__chunker_opts_t o;
    fw__chunker_opts_init(&o);
    p->floor = o.floor;
    p->ceiling = o.ceiling;
    p->start = o.start;
    p->window = o.window;
    p->high_permille = o.high_permille;
    p->low_permille = o.low_permille;
    p->growth_permille = o.factor_permille;
}

int fw_query_chunk_adaptive(fw_query_t *q, const fw_chunk_policy_t *p)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    fw_chunk_policy_t d;
    if (p == NULL) {
        fw_chunk_policy_init(&d);
        p = &d;
    }
    fw__chunker_opts_t o = {p->floor,         p->ceiling,      p->start,          p->window,
                            p->high_permille, p->low_permille, p->growth_permille};
    fw__chunker_t probe;
    if (p->ceiling > FW__QUERY_MAX_CHUNK_SIZE || fw__chunker_init(&probe, &o) != 0)
        return fail(q, FW_EINVAL);
    q->adaptive = true;
    q->chunk_policy = o;
    return 0;
}

int fw_query_cancel_timeout(fw_query_t *q, uint32_t ms)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    q->cancel_timeout_ms = ms;
    return 0;
}

int fw_query_pause_timeout(fw_query_t *q, uint32_t ms, fw_pause_action_t action)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    if (action != FW_PAUSE_RESUME && action != FW_PAUSE_CANCEL)
        return fail(q, FW_EINVAL);
    q->pause_timeout_ms = ms;
    q->pause_action = action;
    return 0;
}

int fw_query_idle_timeout(fw_query_t *q, uint32_t ms)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    q->idle_timeout_ms = ms;
    return 0;
}

/* ---- parallel streams (lib/parallel.c) ---------------------------------------------------- */

int fw_query_parallel(fw_query_t *q, int n)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    if (n < 0 || n > FW__QUERY_MAX_PARALLEL)
        return fail(q, FW_EINVAL);
    q->parallel = n;
    return 0;
}

/* fw_query_partition_key and fw_query_partition_ctid: one column, the last one set wins. */
static int set_partition(fw_query_t *q, const char *column, bool ctid)
{
    if (q == NULL)
        return FW_EINVAL;
    if (q->err != 0)
        return q->err;
    if (column == NULL) {
        fw__free(q->pkey);
        q->pkey = NULL;
        q->pkey_ctid = false;
        return 0;
    }
    size_t n = strlen(column);
    if (n == 0 || n > FW__QUERY_MAX_IDENT)
        return fail(q, FW_EINVAL);
    char *k = fw__malloc(n + 1);
    if (k == NULL)
        return fail(q, FW_ENOMEM);
    memcpy(k, column, n + 1);
    fw__free(q->pkey);
    q->pkey = k;
    q->pkey_ctid = ctid;
    return 0;
}

int fw_query_partition_key(fw_query_t *q, const char *column)
{
    return set_partition(q, column, false);
}

int fw_query_partition_ctid(fw_query_t *q, const char *column)
{
    return set_partition(q, column, true);
}

/* ---- what the stream needs ------------------------------------------------------------- */

int fw__query_preamble(const fw_query_t *q)
{
    return q->statement_timeout_ms != 0 ? 1 : 0;
}

size_t fw__query_chunk_size(const fw_query_t *q)
{
    return q->chunk_size;
}

size_t fw__query_max_memory(const fw_query_t *q)
{
    return q->max_memory;
}

fw_predicate_cb fw__query_predicate(const fw_query_t *q, void **ud)
{
    if (ud != NULL)
        *ud = q->predicate_ud;
    return q->predicate;
}

/* Fills params[] in the order render() numbers them; limit/offset text goes to the buffers. */
