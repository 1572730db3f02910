/* SPDX-License-Identifier: MIT */
/*
 * Private to lib/: the reply machine of a streaming query, sans-I/O (STYLE 2, 12). It is fed the
 * bytes the server sent in answer to one extended-protocol run (fw__query_encode: an optional
 * statement-timeout statement, then Parse/Bind/Describe/Execute/Sync), or to one simple Query
 * (the plain query: query.h, fw__query_simple), and says, message by
 * message, what happened: a row, a notice, the server's error, a failure of ours (the result is
 * not one json/jsonb column named "data", a row over a limit), the end (ReadyForQuery), or a
 * protocol violation. It owns the phases and the schema check; it never touches a socket, a
 * clock, the pipe or the consumer, so it is unit-tested with byte vectors (test_lib_reply.c) and
 * the stream (stream.c) only moves bytes in and acts on the events.
 *
 * The hot path (DataRow) is inline: one call per row, framed and checked in place, no copy.
 */
#ifndef FW_REPLY_H
#define FW_REPLY_H

#include "fw_util.h"
#include "fwire.h"
#include "proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest length field a one-column DataRow can have: 4 (length) + 2 (field count) + 4
 * (field length) + a field of at most 1 GiB, PostgreSQL's limit for any value. */
#define FW__REPLY_ROW_MESSAGE_MAX ((size_t)10 + ((size_t)1 << 30))

/* Where the reply is. */
typedef enum fw__reply_phase_e {
    FW__RP_PRE_PARSE, /* a preamble statement (statement timeout, BEGIN...): ParseComplete */
    FW__RP_PRE_BIND,  /* BindComplete */
    FW__RP_PRE_ROWS,  /* its one DataRow and CommandComplete */
    FW__RP_PARSE,     /* the query: ParseComplete */
    FW__RP_BIND,      /* BindComplete */
    FW__RP_DESC,      /* RowDescription (checked) */
    FW__RP_ROWS,      /* DataRow... CommandComplete */
    FW__RP_DONE,      /* waiting for ReadyForQuery */
} fw__reply_phase_t;

typedef enum fw__reply_event_kind_e {
    FW__RE_NONE,         /* consumed; nothing for the stream (a phase moved, bytes skipped) */
    FW__RE_ROW,          /* a row of the result: ev->row, borrowing from the input */
    FW__RE_DESCRIBED,    /* the RowDescription was checked and accepted */
    FW__RE_FAILED,       /* a failure of ours, now in *err (schema, a row over a limit): the
                          * rows still coming are dropped; the stream cancels the query */
    FW__RE_SERVER_ERROR, /* an ErrorResponse; *err holds it unless a failure of ours came first
                          * and this one is not FATAL; ev->fatal: the session ends */
    FW__RE_NOTICE,       /* a NoticeResponse: ev->msg */
    FW__RE_NOTIFY,       /* a NotificationResponse: ev->msg */
    FW__RE_PARAM,        /* a ParameterStatus: ev->msg */
    FW__RE_READY,        /* ReadyForQuery: the reply is over. Not consumed into the state: the
                          * same bytes give FW__RE_READY again, so the stream may take them
                          * only once everything before has reached the consumer */
} fw__reply_event_kind_t;

typedef struct fw__reply_event_s {
    fw__reply_event_kind_t kind;
    bool has_msg;     /* msg is a parsed message (every kind but ROW and skipped bytes) */
    bool fatal;       /* FW__RE_SERVER_ERROR: FATAL or PANIC */
    fw_row_t row;     /* FW__RE_ROW */
    fw__pq_msg_t msg; /* borrowing from the input */
} fw__reply_event_t;

typedef struct fw__reply_s {
    fw__reply_phase_t phase;
    bool explain;  /* the query is an EXPLAIN (FORMAT JSON): its one column is "QUERY PLAN" */
    int pre_left;  /* statements before the query still to complete (preambles) */
    bool discard;  /* drop rows: a failure, or the consumer left (set by the stream too) */
    size_t skip;   /* bytes of an oversized DataRow still to skip as they arrive */
    size_t row_cap;     /* largest DataRow length field accepted (max_message); above it
                         * FW_ETOOBIG, the row skipped as it arrives */
    size_t max_message; /* the connection's message limit (for the error text) */
    size_t max_memory;  /* the query's byte budget (a row over it is still delivered) */
    fw__pq_limits_t lim;
    fw_error_t *err;    /* where failures go (the stream's error) */
    const char *why;    /* with a negative return: what broke, for the error message */
    char why_buf[192];  /* where `why` is built when it names something the server sent */
} fw__reply_t;

/*
 * Starts a reply. `npre`: the run begins with that many statements whose results are dropped
 * (the statement-timeout statement; a parallel part's BEGIN and SET TRANSACTION SNAPSHOT):
 * each gives ParseComplete, BindComplete, rows (dropped) and CommandComplete. `err` must
 * outlive r and is where failures are written (the first one wins, but a FATAL server error
 * overrides one of ours). The row cap is max_message: a row over the byte budget is delivered
 * alone in a buffer of its own (stream/pipe.h, fw__pipe_slab_get_oversize). `simple`: the query
 * went out as one simple-protocol Query (query.h, fw__query_simple; npre is then 0): the reply
 * starts at RowDescription, with no ParseComplete or BindComplete.
 */
void fw__reply_init(fw__reply_t *r, int npre, bool simple, bool explain, size_t max_message,
                    size_t max_memory, fw_error_t *err);

/* Every message fw__reply_row does not take (see fw__reply_next). */
long fw__reply_other(fw__reply_t *r, const uint8_t *p, size_t avail, fw__reply_event_t *ev);

/*
 * The hot path: when p starts with a complete DataRow that is a plain row of the result, returns
 * its size and fills *row (borrowing from p); else 0, and fw__reply_other says what it is (an
 * incomplete message, a row to drop, a malformed row, any other message). Inline, with the row
 * in a local the compiler keeps in registers: one call per row, framed and checked in place by
 * fw__pq_datarow_one_fast ('D', int32 length, int16 1, int32 n, n bytes, nothing else).
 */
static inline long fw__reply_row(const fw__reply_t *r, const uint8_t *p, size_t avail,
                                 fw_row_t *row)
{
    if (avail < 5 || p[0] != 'D' || r->phase != FW__RP_ROWS || r->discard || r->skip > 0)
        return 0;
    uint32_t len = fw__be32(p + 1);
    if (len < 4 || len > r->row_cap || avail < (size_t)len + 1)
        return 0;
    fw__pq_col_t col;
    if (fw__pq_datarow_one_fast(p + 5, len - 4, &col) < 0)
        return 0;
    row->json = (const char *)col.value.ptr;
    row->len = col.value.len;
    row->is_null = col.is_null;
    return (long)len + 1;
}

/*
 * Takes the next message from p[0..avail): returns the bytes it used (> 0) and fills *ev; 0
 * when p holds no complete message (feed the same bytes again with more after them); or a
 * negative FW_EPROTO_* code, with r->why, when the server broke the protocol: the connection is
 * out of sync and must be closed. The bytes of an oversized row are consumed as they come (a
 * return smaller than a message). A FW__RE_ROW may be refused by the caller (queue full): the
 * state has not moved, so the same bytes give the same row again.
 */
static inline long fw__reply_next(fw__reply_t *r, const uint8_t *p, size_t avail,
                                  fw__reply_event_t *ev)
{
    long n = fw__reply_row(r, p, avail, &ev->row);
    if (n > 0) {
        ev->kind = FW__RE_ROW;
        ev->has_msg = false;
        ev->fatal = false;
        return n;
    }
    return fw__reply_other(r, p, avail, ev);
}

#endif /* FW_REPLY_H */
