/* SPDX-License-Identifier: MIT */
/*
 * What server a made connection is on, as it changes: in_hot_standby and
 * default_transaction_read_only reported by the server (a promotion), SQLSTATE 25006, and a
 * client_encoding that must stay UTF8. The facts are judged by route.c; the role is published
 * in atomics so any thread may read it (fw_conn_role, fw_conn_read_only).
 */
#include "conn.h"

#include <stdio.h>
#include <string.h>

const char *fw_server_role_name(fw_server_role_t role)
{
    switch (role) {
    case FW_ROLE_PRIMARY:
        return "primary";
    case FW_ROLE_STANDBY:
        return "standby";
    case FW_ROLE_UNKNOWN:
        break;
    }
    return "unknown";
}

fw_server_role_t fw_conn_role(const fw_conn_t *c)
{
    if (c == NULL)
        return FW_ROLE_UNKNOWN;
    return (fw_server_role_t)atomic_load_explicit(&c->role, memory_order_relaxed);
}

bool fw_conn_read_only(const fw_conn_t *c)
{
    return c != NULL && atomic_load_explicit(&c->read_only, memory_order_relaxed);
}

void fw__conn_set_role(fw_conn_t *c)
{
    fw_server_role_t role = fw__route_role(&c->facts);
    bool ro = fw__route_read_only(&c->facts);
    atomic_store_explicit(&c->role, (int)role, memory_order_relaxed);
    atomic_store_explicit(&c->read_only, ro, memory_order_relaxed);
}

void fw__conn_param(fw_conn_t *c, const fw__pq_msg_t *m)
{
    fw_slice_t name = m->u.param.name, value = m->u.param.value;
    if (name.len == 15 && memcmp(name.ptr, "client_encoding", 15) == 0) {
        char enc[64];
        fw__escape_text(enc, sizeof(enc), value.ptr, value.len);
        if (!fw__is_utf8_name(enc)) {
            /* Text after this would not be UTF-8 JSON: the connection is unusable (a running
             * query fails on its own, in the reply machine, after the rows before it). */
            c->state = FW__CONN_BAD;
            c->err.code = FW_EPROTO_BAD_VALUE;
            snprintf(c->err.message, sizeof(c->err.message),
                     "the server switched client_encoding to \"%s\"; fwire needs UTF8", enc);
            fw__conn_log(c, FW_LOG_WARNING, "%s", c->err.message);
            return;
        }
    }
    fw_server_role_t before = fw__route_role(&c->facts);
    if (!fw__route_facts_update(&c->facts, (const char *)m->u.param.name.ptr, m->u.param.name.len,
                                (const char *)m->u.param.value.ptr, m->u.param.value.len))
        return;
    fw__conn_set_role(c);
    fw_server_role_t now = fw__route_role(&c->facts);
    if (now != before)
        fw__conn_log(c, FW_LOG_WARNING, "the server at %s is now a %s (it was a %s)",
                     fw__dial_address(&c->dial), fw_server_role_name(now),
                     fw_server_role_name(before));
}

void fw__conn_saw_read_only(fw_conn_t *c)
{
    c->facts.session_read_only = FW__TRI_YES;
    atomic_store_explicit(&c->read_only, true, memory_order_relaxed);
}

