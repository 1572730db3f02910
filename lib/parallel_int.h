/* SPDX-License-Identifier: MIT */
/*
 * A parallel stream's record, shared by parallel.c (set-up, polling) and parallel_ctl.c
 * (control, stats, the end).
 */
#ifndef FW_PARALLEL_INT_H
#define FW_PARALLEL_INT_H

#include "stream_int.h"

typedef struct fw__par_s {
    int n;
    bool ordered; /* ORDER BY the partition key: the parts are read one after another */
    int cur;      /* the part read last */
    int streak;   /* rows taken from it in a row */
    int live;     /* parts not ended yet */
    fw_conn_t *conns[FW__QUERY_MAX_PARALLEL];
    fw_stream_t *parts[FW__QUERY_MAX_PARALLEL];
    int state[FW__QUERY_MAX_PARALLEL]; /* 1 running, FW_END (0) ended, < 0 failed */
    char snapshot[64];
    /* The consumer's sticky result (FW_END or a failure), for fw_stream_stats from any
     * thread; 1 while running. */
    _Atomic int result;
} fw__par_t;

/* The consumer's end: sticky for it, published for stats; returns code. */
int fw__par_set_end(fw_stream_t *s, int code);
/* Frees what the start made so far: parts first, then their connections. */
void fw__par_teardown(fw__par_t *p);

/*
 * parallel_split.c, the ctid column of a view (fw_query_partition_ctid). The setup statement
 * ($1 the relation, $2 the column), run in the exporting transaction; its one row is the words
 * "snapshot version relkind nrel kinds ctid pages type": the relation's kind, then what the
 * view's rule reads (pg_depend of its pg_rewrite row, the view itself left out): how many
 * relations, their kinds, whether it reads their ctid (attribute -1), the pages of the first
 * (pg_relation_size), and last the column's type (spaces made '_': one word).
 */
extern const char fw__par_ctid_col_sql[];
/* Checks that answer (f: its 8 words): 0 and *pages, *relkind, or FW_EINVAL with a message
 * naming what to do (not a view, no such column, not a tid, not exactly one table and its
 * ctid), FW_EPROTO_BAD_VALUE. */
int fw__par_ctid_col_check(const fw_query_t *q, char **f, int64_t *pages, char *relkind,
                           fw_error_t *err);

#endif
