/* SPDX-License-Identifier: MIT */
/*
 * The query builder (internal to lib/): what fw_query_* records, and how one run of a query is
 * encoded for the extended protocol (the plain query: one simple Query, fw__query_simple).
 * The streaming code reads a query only through the
 * functions below, and copies what it needs (fw_stream_start() does not keep `q`).
 *
 * SQL shape (fw_query_sql() shows it; tests compare it byte for byte):
 *
 *     SELECT "data" FROM <source>
 *       [ WHERE (cond) AND (cond) ...]
 *       [ ORDER BY\n<expr>\n[ COLLATE "<coll>"][ DESC],\n<expr>\n...]
 *       [ LIMIT $n::bigint][ OFFSET $m::bigint]
 *
 * where <source> is "v_<entity>", "rel" or "schema"."rel" (quoted identifiers, '"' doubled), a
 * where_sql condition is (\n<fragment>\n), and a typed predicate on the path p1.p2 compares
 * ("data"::jsonb #> ARRAY[$a::text,$b::text]) (or "data"::jsonb for the whole document) with a
 * bind parameter. Parameters are numbered in the order they appear in the text.
 *
 * Thread: as the query (fwire.h): these functions only read `q`.
 */
#ifndef FW_LIB_QUERY_H
#define FW_LIB_QUERY_H

#include "fwire.h"
#include "chunker.h"
#include "proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults and bounds of the setters (documented at fw_query_chunk_size/max_memory). */
#define FW__QUERY_DEFAULT_CHUNK_SIZE 256u
#define FW__QUERY_MAX_CHUNK_SIZE     65536u
#define FW__QUERY_DEFAULT_MAX_MEMORY ((size_t)4 * 1024 * 1024)
/* How long a cancel may take before the connection is closed instead. */
#define FW__QUERY_DEFAULT_CANCEL_TIMEOUT_MS 5000u
#define FW__QUERY_MIN_MAX_MEMORY            ((size_t)64 * 1024)
/* The most bind parameters one statement may have: the protocol counts them in 16 bits. */
#define FW__QUERY_MAX_PARAMS 65535u
/* PostgreSQL's identifier limit (NAMEDATALEN - 1): longer names are truncated silently. */
#define FW__QUERY_MAX_IDENT 63u
/* The most parts of a parallel stream (each one a connection and a server backend). */
#define FW__QUERY_MAX_PARALLEL 16

/* What a WHERE condition is. */
typedef enum fw__query_cond_kind_e {
    FW__QUERY_COND_SQL = 0, /* trusted fragment, verbatim */
    FW__QUERY_COND_OP,      /* fw_query_where() */
    FW__QUERY_COND_IN       /* fw_query_where_in() */
} fw__query_cond_kind_t;

/*
 * One WHERE condition. For COND_OP and COND_IN, `strs` holds the npath path elements and then the
 * nvalues values, in the order of their bind parameters; the pointer array and the bytes are
 * one allocation. COND_OP has one value, or none for IS_NULL/IS_NOT_NULL. A COND_IN with no
 * value renders "false" and binds nothing (not even its path).
 */
typedef struct fw__query_cond_s {
    fw__query_cond_kind_t kind;
    fw_op_t op;
    fw_value_type_t type;
    size_t npath;
    size_t nvalues;
    char *sql;         /* COND_SQL: the copied fragment */
    const char **strs; /* COND_OP/COND_IN: npath + nvalues strings */
} fw__query_cond_t;

typedef struct fw__query_order_s {
    char *expression; /* trusted, verbatim */
    char *collation;  /* unquoted name, or NULL */
    bool descending;
} fw__query_order_t;

struct fw_query_s {
    int err;      /* the first error a setter met; sticky */
    char *source; /* the FROM item as SQL (already quoted), or NULL */
    fw__query_cond_t *conds;
    size_t nconds, conds_cap;
    fw__query_order_t *orders;
    size_t norders, orders_cap;
    size_t nparams; /* bind parameters of conds, limit and offset together */
    int64_t limit;  /* -1: none */
    int64_t offset; /* -1: none */
    size_t chunk_size;
    bool adaptive; /* chunk size from the policy below instead of chunk_size */
    fw__chunker_opts_t chunk_policy;
    size_t max_memory;
    uint32_t statement_timeout_ms; /* 0: the server's setting */
    uint32_t cancel_timeout_ms;    /* 0: FW__QUERY_DEFAULT_CANCEL_TIMEOUT_MS */
    uint32_t pause_timeout_ms;     /* 0: none */
    fw_pause_action_t pause_action;
    uint32_t idle_timeout_ms; /* 0: none */
    fw_predicate_cb predicate;
    void *predicate_ud;
    bool explain; /* EXPLAIN (FORMAT JSON) of the statement instead of the statement */
    int parallel; /* fw_query_parallel: parts (0: an ordinary stream) */
    char *pkey;   /* fw_query_partition_key: the key column, unquoted, or NULL (ctid ranges) */
    bool pkey_ctid; /* fw_query_partition_ctid: pkey is a view's column showing its table's ctid */
    /* The metrics' entity label: the entity name ("user" for v_user) or the relation as given
     * ("public.v_user"); empty without a source. */
    char label[2 * FW__QUERY_MAX_IDENT + 2];
    /* The label's metrics series, looked up when the label is set (entities live as long as
     * the process: lmetrics.c), so that a stream's start does not make them; NULL with
     * metrics off then, or without a label. */
    struct fw__lm_entity_s *lm_e;
};

/*
 * Appends to `out` every message of one run of q, in one go: when a statement timeout is set,
 * first Parse("", "SELECT pg_catalog.set_config('statement_timeout', $1, true)", 1 param of
 * type 0) + Bind(text param "<ms>") + Execute(0) (no Describe); then Parse("", main SQL,
 * nparams, all types 0) + Bind("", "", text params, text results) + Describe('P', "") +
 * Execute("", 0) + Sync; or, when fw__query_simple(q, NULL), one Query("main SQL") alone.
 * Returns 0 or a negative error: the query's recorded error, FW_EINVAL
 * (no source), FW_ENOMEM, FW_ETOOBIG (a message over the frontend limit), or the sticky error
 * `out` already had. On error nothing usable was appended: `out` is either unchanged or holds
 * the error as its sticky error (fw__pq_buf_reset() before reuse).
 */
int fw__query_encode(const fw_query_t *q, fw__pq_buf_t *out);

/*
 * What one run of a query adds to it (a parallel stream's part, or its setup): statements sent
 * first, without parameters, whose results are dropped (BEGIN, SET TRANSACTION SNAPSHOT); one
 * more WHERE condition; or a statement of fwire's own instead of the query's.
 *  - `cond`: trusted SQL made by fwire (a ctid range: numbers, ctid or a quoted column),
 *    ANDed like where_sql.
 *  - `key_lo`/`key_hi`: a key range on the column q->pkey, as bind parameters after the
 *    query's own: `key >= lo` (NULL: open below) and `key < hi` (NULL: open above); with
 *    `key_nulls`, rows whose key is NULL too. Used only when `key_range` is set.
 *  - `raw`: a statement returning one json column named data, with raw_param[0] and [1] as
 *    $1 and $2 (up to the first NULL); the query's conditions, order, limits and statement
 *    timeout are not used then (its budget and chunk size are).
 */
typedef struct fw__query_run_s {
    const char *pre[2];
    int npre;
    const char *cond;
    bool key_range;
    bool key_nulls;
    const char *key_lo, *key_hi;
    const char *raw;
    const char *raw_param[2];
} fw__query_run_t;

/* fw__query_encode() with a run's additions (`run` may be NULL: the query alone). */
int fw__query_encode_run(const fw_query_t *q, const fw__query_run_t *run, fw__pq_buf_t *out);

/*
 * Whether a run of q goes out as one simple-protocol Query message instead: only the query with
 * nothing but its source (and EXPLAIN): no condition, order, limit, offset, statement timeout or
 * run addition. That query has no parameter, and no SQL but fwire's own (quoted identifiers),
 * so the simple protocol's one difference that matters, several statements in one string, cannot
 * arise; anything with a caller's SQL fragment (fw_query_where_sql, order expressions) stays on
 * the extended protocol, which refuses a second statement. Why: a fresh backend answers a
 * simple query's first row 4-5 % sooner than the same statement through Parse/Bind/Describe/
 * Execute (docs/benchmarks.md, "First rows: many short runs"). The reply then has no
 * ParseComplete or BindComplete: fw__reply_init(..., simple = true, ...).
 */
bool fw__query_simple(const fw_query_t *q, const fw__query_run_t *run);

/* 1 when fw__query_encode() puts the statement-timeout statement first (its ParseComplete,
 * BindComplete, one DataRow and CommandComplete come before the main statement's), else 0. */
int fw__query_preamble(const fw_query_t *q);

/* A deep copy of q (free it with fw_query_free), or NULL when out of memory: what an
 * embedded-mode parallel stream keeps, since its parts start after fw_stream_start returned. */
fw_query_t *fw__query_clone(const fw_query_t *q);

/* Rows per chunk; FW__QUERY_DEFAULT_CHUNK_SIZE unless set. */
size_t fw__query_chunk_size(const fw_query_t *q);

/* The stream's byte budget; FW__QUERY_DEFAULT_MAX_MEMORY unless set. */
size_t fw__query_max_memory(const fw_query_t *q);

/* The client-side predicate (NULL for none); *ud (when ud is not NULL) gets its user data. */
fw_predicate_cb fw__query_predicate(const fw_query_t *q, void **ud);

/* query_sql.c: "[schema.]prefix+rel" with both parts quoted as identifiers, in memory from
 * fw__malloc (the caller frees it), or NULL when out of memory. Lengths are checked by callers. */
char *fw__query_quote_source(const char *schema, size_t slen, const char *prefix, const char *rel,
                             size_t rlen);

#endif /* FW_LIB_QUERY_H */
