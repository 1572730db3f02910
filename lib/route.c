/* SPDX-License-Identifier: MIT */
/* Which server a connection wants (see route.h). */
#include "route.h"

#include <stdlib.h>
#include <string.h>

static const char Q_READ_ONLY[] = "SHOW transaction_read_only";
static const char Q_RECOVERY[] = "SELECT pg_catalog.pg_is_in_recovery()";

/* "on"/"off" as the server reports a boolean setting; anything else is unknown. */
static fw__tri_t tri_of(const char *v, size_t len)
{
    if (v == NULL)
        return FW__TRI_UNKNOWN;
    if (len == 2 && memcmp(v, "on", 2) == 0)
        return FW__TRI_YES;
    if (len == 3 && memcmp(v, "off", 3) == 0)
        return FW__TRI_NO;
    return FW__TRI_UNKNOWN;
}

void fw__route_facts_from_params(const fw__params_t *p, fw__route_facts_t *f)
{
    const char *v = fw__params_get(p, "in_hot_standby");
    f->in_hot_standby = tri_of(v, v != NULL ? strlen(v) : 0);
    v = fw__params_get(p, "default_transaction_read_only");
    f->default_read_only = tri_of(v, v != NULL ? strlen(v) : 0);
    f->session_read_only = FW__TRI_UNKNOWN;
    v = fw__params_get(p, "server_version_num");
    f->server_version_num = v != NULL ? atoi(v) : 0;
    if (f->server_version_num == 0 && (v = fw__params_get(p, "server_version")) != NULL) {
        /* "9.6.24" -> 90624 is not needed: only "older than 9.0" matters, and the major is
         * enough for that. */
        f->server_version_num = atoi(v) * 10000;
    }
}

int fw__route_facts_update(fw__route_facts_t *f, const char *name, size_t name_len,
                           const char *value, size_t value_len)
{
    fw__tri_t *slot = NULL;
    if (name_len == 14 && memcmp(name, "in_hot_standby", 14) == 0)
        slot = &f->in_hot_standby;
    else if (name_len == 29 && memcmp(name, "default_transaction_read_only", 29) == 0)
        slot = &f->default_read_only;
    if (slot == NULL)
        return 0;
    fw__tri_t t = tri_of(value, value_len);
    if (t == *slot)
        return 0;
    *slot = t;
    return 1;
}

static bool wants_read_write_class(fw__tsa_t t)
{
    return t == FW__TSA_READ_WRITE || t == FW__TSA_READ_ONLY;
}

fw__route_verdict_t fw__route_judge(fw__tsa_t target, const fw__route_facts_t *f,
                                    const char **query, const char **why)
{
    const char *q = NULL, *w = NULL;
    fw__route_verdict_t v = FW__ROUTE_OK;
    if (wants_read_write_class(target)) {
        fw__tri_t ro = f->session_read_only;
        if (ro == FW__TRI_UNKNOWN) {
            /* libpq asks unless the server reported both settings (PostgreSQL 14+). */
            if (f->default_read_only == FW__TRI_UNKNOWN || f->in_hot_standby == FW__TRI_UNKNOWN)
                ro = FW__TRI_UNKNOWN;
            else
                ro = f->default_read_only == FW__TRI_YES || f->in_hot_standby == FW__TRI_YES
                         ? FW__TRI_YES
                         : FW__TRI_NO;
        }
        if (ro == FW__TRI_UNKNOWN) {
            v = FW__ROUTE_ASK;
            q = Q_READ_ONLY;
        } else if (target == FW__TSA_READ_WRITE && ro == FW__TRI_YES) {
            v = FW__ROUTE_WRONG;
            w = "session is read-only";
        } else if (target == FW__TSA_READ_ONLY && ro == FW__TRI_NO) {
            v = FW__ROUTE_WRONG;
            w = "session is not read-only";
        }
    } else if (target == FW__TSA_PRIMARY || target == FW__TSA_STANDBY ||
               target == FW__TSA_PREFER_STANDBY) {
        fw__tri_t hs = f->in_hot_standby;
        if (hs == FW__TRI_UNKNOWN && f->server_version_num > 0 && f->server_version_num < 90000)
            hs = FW__TRI_NO; /* before 9.0 there was no hot standby */
        if (hs == FW__TRI_UNKNOWN) {
            v = FW__ROUTE_ASK;
            q = Q_RECOVERY;
        } else if (target == FW__TSA_PRIMARY && hs == FW__TRI_YES) {
            v = FW__ROUTE_WRONG;
            w = "server is in hot standby mode";
        } else if (target != FW__TSA_PRIMARY && hs == FW__TRI_NO) {
            v = FW__ROUTE_WRONG;
            w = "server is not in hot standby mode";
        }
    }
    if (query != NULL)
        *query = q;
    if (why != NULL)
        *why = w;
    return v;
}

fw__route_verdict_t fw__route_answer(fw__tsa_t target, fw__route_facts_t *f, const char *value,
                                     size_t len, const char **why)
{
    if (wants_read_write_class(target)) {
        fw__tri_t t = tri_of(value, len);
        if (t == FW__TRI_UNKNOWN) {
            if (why != NULL)
                *why = "\"SHOW transaction_read_only\" failed";
            return FW__ROUTE_WRONG;
        }
        f->session_read_only = t;
    } else {
        /* pg_is_in_recovery() is a boolean: "t" or "f" in text format. */
        fw__tri_t t = value != NULL && len == 1 && value[0] == 't'   ? FW__TRI_YES
                      : value != NULL && len == 1 && value[0] == 'f' ? FW__TRI_NO
                                                                      : FW__TRI_UNKNOWN;
        if (t == FW__TRI_UNKNOWN) {
            /* libpq names the query without the schema it sends it with. */
            if (why != NULL)
                *why = "\"SELECT pg_is_in_recovery()\" failed";
            return FW__ROUTE_WRONG;
        }
        f->in_hot_standby = t;
    }
    fw__route_verdict_t v = fw__route_judge(target, f, NULL, why);
    return v == FW__ROUTE_ASK ? FW__ROUTE_WRONG : v;
}

fw_server_role_t fw__route_role(const fw__route_facts_t *f)
{
    return f->in_hot_standby == FW__TRI_YES  ? FW_ROLE_STANDBY
           : f->in_hot_standby == FW__TRI_NO ? FW_ROLE_PRIMARY
                                              : FW_ROLE_UNKNOWN;
}

bool fw__route_read_only(const fw__route_facts_t *f)
{
    return f->in_hot_standby == FW__TRI_YES || f->default_read_only == FW__TRI_YES ||
           f->session_read_only == FW__TRI_YES;
}

const char *fw__route_target_name(fw__tsa_t target)
{
    switch (target) {
    case FW__TSA_ANY:
        return "any";
    case FW__TSA_READ_WRITE:
        return "read-write";
    case FW__TSA_READ_ONLY:
        return "read-only";
    case FW__TSA_PRIMARY:
        return "primary";
    case FW__TSA_STANDBY:
        return "standby";
    case FW__TSA_PREFER_STANDBY:
        return "prefer-standby";
    }
    return "any";
}
