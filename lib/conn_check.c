/* SPDX-License-Identifier: MIT */
/*
 * The target check of a connection attempt (target_session_attrs): once the server is ready,
 * route.c judges it from what it reported (in_hot_standby, default_transaction_read_only);
 * a server too old to report that is asked (SHOW transaction_read_only or
 * pg_is_in_recovery(), as libpq), and its one-row answer is read here. A server of the kind
 * wanted makes the connection (fw__conn_finish); another one is closed politely and the next
 * host is tried. Loop thread only, like the rest of the attempt (conn_attempt.c).
 */
#include "conn.h"

#include <string.h>

/* The server is of the kind wanted: the connection is made. */
static void accept_server(fw_conn_t *c)
{
    c->checking = false;
    fw__conn_set_role(c);
    c->role_at_connect = fw__route_role(&c->facts);
    c->read_only_at_connect = fw__route_read_only(&c->facts);
    c->connect_seconds = (double)(uv_hrtime() - c->t_start) / 1e9;
    c->err.message[0] = '\0';
    static const char *const methods[] = {"no authentication", "a cleartext password", "md5",
                                          "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"};
    fw__conn_log(c, FW_LOG_INFO,
                 "connected to %s (backend %d, %s) with %s, protocol %u.%u, in %.1f ms",
                 fw__dial_address(&c->dial), (int)c->backend_key.pid,
                 fw_server_role_name(c->role_at_connect), methods[c->method],
                 FW__PQ_VERSION_MAJOR(c->protocol), FW__PQ_VERSION_MINOR(c->protocol),
                 c->connect_seconds * 1e3);
    fw__conn_finish(c, 0);
}

/* The server is not of the kind wanted: closed politely (Terminate, as libpq does), and the
 * next host is tried; `why` is libpq's sentence. */
static void refuse_server(fw_conn_t *c, const char *why)
{
    c->checking = false;
    fw__conn_note_attempt(c, FW_EROUTE, why);
    fw__pq_buf_reset(&c->out);
    if (fw__pq_put_terminate(&c->out) == 0)
        (void)fw__conn_flush_out(c);
    fw__chan_shutdown(&c->chan);
    fw__pq_buf_reset(&c->out);
    fw__conn_drop_socket(c, fw__dial_next_host);
}

void fw__conn_check_target(fw_conn_t *c)
{
    fw__tsa_t target = c->pass2 ? FW__TSA_ANY : c->ci->target_session_attrs;
    const char *query = NULL, *why = NULL;
    switch (fw__route_judge(target, &c->facts, &query, &why)) {
    case FW__ROUTE_OK:
        accept_server(c);
        return;
    case FW__ROUTE_WRONG:
        refuse_server(c, why);
        return;
    case FW__ROUTE_ASK:
        break;
    }
    /* A server that does not report what decides (before PostgreSQL 14): ask it, as libpq. */
    c->checking = true;
    c->check_got = false;
    c->check_extra = false;
    c->check_query = query;
    fw__pq_buf_reset(&c->out);
    int rc = fw__pq_put_query(&c->out, query);
    if (rc == 0)
        rc = fw__conn_flush_out(c);
    if (rc < 0)
        fw__conn_attempt_failed(c, rc, fw_strerror(rc));
}

/* The reply to the check query: one row of one column, then ReadyForQuery. */
void fw__conn_check_bytes(fw_conn_t *c, const uint8_t *p, size_t n)
{
    fw__pq_msg_t m;
    int rc = fw__pq_reader_feed(&c->reader, p, n);
    while (rc >= 0 && (rc = fw__pq_reader_next(&c->reader, &m)) == 1) {
        fw__conn_trace_in(c, &m);
        switch (m.type) {
        case 'T':
        case 'C':
            break;
        case 'S':
            (void)fw__route_facts_update(&c->facts, (const char *)m.u.param.name.ptr,
                                         m.u.param.name.len, (const char *)m.u.param.value.ptr,
                                         m.u.param.value.len);
            break;
        case 'N':
            fw__conn_notice(c, &m);
            if (c->closing)
                return;
            break;
        case 'D': {
            fw__pq_col_t col;
            if (c->check_got) {
                /* A second row is legal protocol but no answer: refused with libpq's sentence
                 * (libpq wants exactly one row), not as a protocol error. */
                c->check_extra = true;
                break;
            }
            if (fw__pq_datarow_one(&m, &col) < 0) {
                rc = FW_EPROTO_UNEXPECTED;
                break;
            }
            c->check_got = true;
            c->check_null = col.is_null;
            c->check_len = col.value.len < sizeof(c->check_value) ? col.value.len : 0;
            if (c->check_len > 0)
                memcpy(c->check_value, col.value.ptr, c->check_len);
            break;
        }
        case 'E':
            /* The answer is missing: this server cannot be judged (libpq moves on too). */
            c->check_got = false;
            break;
        case 'Z': {
            fw__tsa_t target = c->pass2 ? FW__TSA_ANY : c->ci->target_session_attrs;
            const char *why = NULL;
            const char *v =
                c->check_got && !c->check_extra && !c->check_null ? c->check_value : NULL;
            if (fw__route_answer(target, &c->facts, v, v != NULL ? c->check_len : 0, &why) ==
                FW__ROUTE_OK)
                accept_server(c);
            else
                refuse_server(c, why);
            return;
        }
        default:
            rc = FW_EPROTO_UNEXPECTED;
            break;
        }
        if (rc < 0)
            break;
    }
    if (rc < 0)
        fw__conn_attempt_failed(c, rc, fw_strerror(rc));
}
