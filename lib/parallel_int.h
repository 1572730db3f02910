/* SPDX-License-Identifier: MIT */
/*
 * A parallel stream's record, shared by parallel.c (set-up, polling), parallel_ctl.c
 * (control, stats, the end) and parallel_emb.c (embedded mode's set-up on the caller's loop).
 */
#ifndef FW_PARALLEL_INT_H
#define FW_PARALLEL_INT_H

#include "stream_int.h"

/* parallel_emb.c: embedded mode's set-up state (connects, snapshot, parts' start). */
typedef struct fw__par_emb_s fw__par_emb_t;

typedef struct fw__par_s {
    int n;
    bool ordered; /* ORDER BY the partition key: the parts are read one after another */
    int cur;      /* the part read last */
    int streak;   /* rows taken from it in a row */
    int live;     /* parts not ended yet */
    /* fw_pool_stream_start: the pool the connections come from (conns[0] is the one the
     * stream was started on, given back by fw_stream_free; the others go back at the
     * teardown), their transactions rolled back by the pool. NULL: the stream's own. */
    fw_pool_t *pool;
    fw_conn_t *conns[FW__QUERY_MAX_PARALLEL];
    fw_stream_t *parts[FW__QUERY_MAX_PARALLEL];
    int state[FW__QUERY_MAX_PARALLEL]; /* 1 running, FW_END (0) ended, < 0 failed */
    char snapshot[64];
    /* The consumer's sticky result (FW_END or a failure), for fw_stream_stats from any
     * thread; 1 while running. */
    _Atomic int result;
    fw__par_emb_t *emb; /* embedded mode: its set-up; NULL in threaded mode */
    bool cancelling;    /* embedded mode: fw_stream_cancel was called, parts still ending */
    bool hold; /* embedded mode: the consumer's poll asks parallel_emb.c first (set-up, cancel) */
} fw__par_t;

/* What the first connection learned: the snapshot, the server, and what to split. */
typedef struct fw__par_setup_s {
    char snapshot[64];
    long version;
    int64_t pages;      /* ctid: the table's pages now (a later page is in the last part) */
    char relkind;       /* ctid: 'r' table, 'm' materialized view, ... */
    bool empty;         /* key: no row has a key (min and max are NULL) */
    int64_t kmin, kmax; /* key */
    int ncuts;          /* key: n - 1 cut points from the histogram, or 0 (min and max) */
    int64_t cuts[FW__QUERY_MAX_PARALLEL];
} fw__par_setup_t;

/* Room for the text of a set-up statement (fw__par_setup_step's `sql`). */
#define FW__PAR_SQL_CAP 4096

/* The parts' runs (what each part adds to the query) and the strings they point to. */
typedef struct fw__par_runs_s {
    char set_snapshot[128];
    char cond[FW__QUERY_MAX_PARALLEL][2 * (2 * FW__QUERY_MAX_IDENT + 3) + 80];
    char lo[FW__QUERY_MAX_PARALLEL][24], hi[FW__QUERY_MAX_PARALLEL][24];
    fw__query_run_t run[FW__QUERY_MAX_PARALLEL];
} fw__par_runs_t;

/* The consumer's end: sticky for it, published for stats; returns code. */
int fw__par_set_end(fw_stream_t *s, int code);
/* Frees what the start made so far: parts first, then their connections (threaded mode:
 * closed before it returns; embedded mode: their close completes on the loop). */
void fw__par_teardown(fw__par_t *p);
/* Prefixes err's message with what failed: "parallel stream, <what> <part>: " (part < 0: no
 * number). */
void fw__par_prefix_err(fw_error_t *err, const char *what, int part);
/* Fills *err (when not NULL) with code, FW_PHASE_READY and the message. */
void fw__par_errf(fw_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * One step of the set-up on conns[0] (the same in both modes). Step 0 gets no answer; step
 * k > 0 gets the text the statement of step k - 1 returned (a plain word list: its one JSON
 * string without the quotes, see fw__par_answer). Returns 1 with *run (its strings in sql,
 * FW__PAR_SQL_CAP bytes, and in q) to run next, 0 when *st is complete and the split
 * possible, or a failure with *err.
 */
int fw__par_setup_step(const fw__par_t *p, const fw_query_t *q, fw__par_setup_t *st, int step,
                       char *answer, fw__query_run_t *run, char *sql, fw_error_t *err);
/* A set-up statement's one row into text (cap bytes) without its quotes: false when it is not
 * a short JSON string without escapes. */
bool fw__par_answer(const fw_row_t *row, char *text, size_t cap);
/* Every part's run from the set-up's answer. */
void fw__par_part_runs(const fw__par_t *p, const fw_query_t *q, const fw__par_setup_t *st,
                       fw__par_runs_t *r);
/* parallel_ctl.c: a cancel's end once every part has published its end (both modes). */
int fw__par_cancel_finish(fw_stream_t *s);
/* Whether every started part has published its end. */
bool fw__par_all_final(const fw__par_t *p);

/* parallel_emb.c, embedded mode (the loop's thread). Start: the outer stream exists with p;
 * connects the parts and returns at once (or a failure before anything is in flight). */
int fw__par_emb_start(fw_stream_t *outer, fw_conn_t *conn, const fw_query_t *q,
                      fw_rows_ready_cb ready, void *ud, fw_error_t *err);
/* The consumer's poll before the parts run: 1 when they run (poll them), else FW_AGAIN,
 * FW_PAUSED or the set-up's failure (sticky). */
int fw__par_emb_poll(fw_stream_t *s);
/* fw_stream_pause/resume: true when the parts do not run yet (then it is remembered for
 * them), false when they run (pause them as in threaded mode). */
bool fw__par_emb_pause(fw_stream_t *s, bool pause);
/* fw_stream_cancel: ends a set-up in flight, or cancels the running parts without waiting;
 * the rows-ready callback runs once more when all is over. */
int fw__par_emb_cancel(fw_stream_t *s);
/* fw_stream_free: ends whatever is in flight; the handle goes once the loop closed its timer. */
void fw__par_emb_free(fw_stream_t *s);
/* fw__par_destroy: what the set-up state still owns. */
void fw__par_emb_destroy(fw__par_emb_t *e);

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
/* dst (2 * FW__QUERY_MAX_IDENT + 3 bytes) = name quoted as an identifier ('"' doubled). */
void fw__par_quote_ident(char *dst, const char *name);
/* A whole decimal integer (no trailing bytes): true and *out, else false. */
bool fw__par_parse_i64(const char *s, int64_t *out);

#endif
