/* SPDX-License-Identifier: MIT */
/*
 * One simple Query on an idle connection, for the pool: the health check ("" : the server
 * answers EmptyQueryResponse and ReadyForQuery, the cheapest round trip there is) and the
 * after-connect SQL (SET application_name ..., several statements allowed). No rows are
 * wanted; a RowDescription or DataRow is skipped.
 *
 * The reply goes through the idle reader (conn.c hands it every message while an exec is out):
 * notices, ParameterStatus (a SET application_name reports its new value) and notifications
 * keep their idle handling. The outcome is delivered from the connection's connect timer, which
 * is free once the connection is READY: at ReadyForQuery it fires at once, so the callback never
 * runs inside the read loop (the pool may hand the connection out and a stream may take the
 * reader over); otherwise it fires at the timeout, and a server that did not answer in time is
 * given up (the connection goes BAD: a half-open peer is found here, not by keepalives a
 * minute later).
 */
#include "conn.h"
#include "servermsg.h"

#include <stdio.h>
#include <string.h>

static void deliver(fw_conn_t *c)
{
    fw__exec_cb cb = c->exec_cb;
    void *ud = c->exec_ud;
    c->exec_cb = NULL;
    c->exec_ud = NULL;
    int status = c->exec_err.code;
    fw_error_t err = c->exec_err;
    if (!c->closing)
        fw__conn_idle_check(c); /* a fw_conn_when_idle waiting for it */
    cb(c, status, status < 0 ? &err : NULL, ud);
}

static void on_exec_timer(uv_timer_t *t)
{
    fw_conn_t *c = t->data;
    if (c->exec_cb == NULL)
        return;
    if (!c->exec_done) {
        /* No ReadyForQuery in time: the server (or the path to it) is gone or stuck; the
         * connection cannot be trusted with another query. */
        c->exec_err.code = FW_ETIMEDOUT;
        c->exec_err.phase = FW_PHASE_READY;
        snprintf(c->exec_err.message, sizeof(c->exec_err.message),
                 "the server did not answer within %u ms", c->exec_timeout_ms);
        fw__conn_abort(c);
    }
    deliver(c);
}

int fw__conn_exec(fw_conn_t *c, const char *sql, unsigned timeout_ms, fw__exec_cb cb, void *ud)
{
    if (c == NULL || sql == NULL || cb == NULL)
        return FW_EINVAL;
    if (c->exec_cb != NULL || c->idle_cb != NULL)
        return FW_EBUSY;
    if (!fw__conn_usable(c))
        return FW_ESTATE;
    fw__pq_buf_reset(&c->out);
    int rc = fw__pq_put_query(&c->out, sql);
    if (rc == 0)
        rc = fw__conn_flush_out(c);
    if (rc < 0) {
        fw__pq_buf_reset(&c->out);
        return rc;
    }
    memset(&c->exec_err, 0, sizeof(c->exec_err));
    c->exec_done = false;
    c->exec_cb = cb;
    c->exec_ud = ud;
    c->exec_timeout_ms = timeout_ms;
    if (timeout_ms > 0)
        uv_timer_start(&c->timer, on_exec_timer, timeout_ms, 0);
    return 0;
}

/* Called by the idle reader for each message while an exec is out: true when it was the
 * exec's (its reply), false for what the idle reader handles itself (N, S, A). */
bool fw__conn_exec_msg(fw_conn_t *c, const fw__pq_msg_t *m)
{
    switch (m->type) {
    case 'I': /* EmptyQueryResponse */
    case 'C': /* CommandComplete */
    case 'T': /* RowDescription */
    case 'D': /* DataRow */
        return !c->exec_done;
    case 'E':
        if (c->exec_done)
            return false;
        if (c->exec_err.code == 0) { /* the first error is the one that counts */
            fw_error_t e;
            if (fw__servermsg_error(m, FW_PHASE_READY, &e) < 0)
                return false; /* malformed: the idle reader's handling (BAD) */
            c->exec_err = e;
            if (fw__servermsg_fatal(&e))
                return false; /* FATAL: the idle reader marks the connection BAD too */
        }
        return true;
    case 'Z':
        if (c->exec_done)
            return false;
        if (m->u.ready.status != 'I' && c->exec_err.code == 0) {
            /* BEGIN without COMMIT: a session in a transaction block would hold its snapshot
             * and locks for every later user of the connection; refused */
            c->exec_err.code = FW_ESTATE;
            c->exec_err.phase = FW_PHASE_READY;
            snprintf(c->exec_err.message, sizeof(c->exec_err.message),
                     "the SQL left the session inside a transaction block (ReadyForQuery "
                     "status %c); it must end idle",
                     m->u.ready.status == 'T' || m->u.ready.status == 'E' ? m->u.ready.status
                                                                          : '?');
        }
        c->exec_done = true;
        uv_timer_start(&c->timer, on_exec_timer, 0, 0);
        return true;
    default:
        return false;
    }
}

void fw__conn_exec_broken(fw_conn_t *c)
{
    if (c->exec_cb == NULL || c->exec_done)
        return;
    c->exec_done = true;
    if (c->exec_err.code == 0 && c->err.code != 0) {
        c->exec_err = c->err; /* the server's FATAL (57P01 ...), or what broke */
    } else if (c->exec_err.code == 0) {
        c->exec_err.code = FW_ECLOSED;
        c->exec_err.phase = FW_PHASE_READY;
        snprintf(c->exec_err.message, sizeof(c->exec_err.message),
                 "the connection ended before the server answered");
    }
    if (!c->closing)
        uv_timer_start(&c->timer, on_exec_timer, 0, 0);
}

void fw__conn_exec_closing(fw_conn_t *c)
{
    if (c->exec_cb == NULL)
        return;
    c->exec_err.code = FW_ECLOSED;
    c->exec_err.phase = FW_PHASE_CLOSED;
    snprintf(c->exec_err.message, sizeof(c->exec_err.message),
             "the connection was closed before the server answered");
    uv_timer_stop(&c->timer);
    deliver(c);
}
