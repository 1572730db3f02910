/* SPDX-License-Identifier: MIT */
/*
 * Private to lib/: which server a connection wants (target_session_attrs), judged the way
 * libpq 16/17 judges it. Pure: no I/O, no clock; the connection attempt (conn_attempt.c) asks
 * and acts (Terminate and the next host, a fallback query, or done).
 *
 *   read-write / read-only: from default_transaction_read_only and in_hot_standby, which a
 *       PostgreSQL 14+ server reports at start-up (ParameterStatus): read-only when either is
 *       on. A server that does not report both is asked "SHOW transaction_read_only".
 *   primary / standby / prefer-standby: from in_hot_standby; a server that does not report it
 *       is asked "SELECT pg_catalog.pg_is_in_recovery()". A server older than 9.0 is a primary.
 *   prefer-standby: the caller makes a second pass over every host in "any" mode when no
 *       standby was found (FW__TSA_ANY below).
 *   any: every server is right; nothing is asked.
 *
 * The sentences are libpq's, so an error reads the same whichever client printed it.
 */
#ifndef FW_ROUTE_H
#define FW_ROUTE_H

#include "conninfo.h"
#include "fwire.h"
#include "servermsg.h"

#include <stddef.h>

/* A boolean the server may not have reported. */
typedef enum fw__tri_e { FW__TRI_UNKNOWN = -1, FW__TRI_NO = 0, FW__TRI_YES = 1 } fw__tri_t;

/* What a server said about itself. */
typedef struct fw__route_facts_s {
    fw__tri_t in_hot_standby;
    fw__tri_t default_read_only; /* default_transaction_read_only */
    fw__tri_t session_read_only; /* the answer to SHOW transaction_read_only, when asked */
    int server_version_num;      /* 0 when unknown */
} fw__route_facts_t;

typedef enum fw__route_verdict_e {
    FW__ROUTE_OK,    /* the server is of the kind wanted */
    FW__ROUTE_WRONG, /* it is not: *why says how (close it politely, try the next host) */
    FW__ROUTE_ASK    /* not known from its parameters: send *query, judge the answer */
} fw__route_verdict_t;

/* The facts a start-up's ParameterStatus values give ("on"/"off"; anything else unknown). */
void fw__route_facts_from_params(const fw__params_t *p, fw__route_facts_t *f);

/* A ParameterStatus that may change a fact during the session (a promotion sends
 * in_hot_standby=off). Returns 1 when the value changed, else 0. */
int fw__route_facts_update(fw__route_facts_t *f, const char *name, size_t name_len,
                           const char *value, size_t value_len);

/* Judges a server for `target`. *query (FW__ROUTE_ASK) and *why (FW__ROUTE_WRONG) are static
 * strings; either pointer may be NULL. */
fw__route_verdict_t fw__route_judge(fw__tsa_t target, const fw__route_facts_t *f,
                                    const char **query, const char **why);

/*
 * The answer to the query fw__route_judge asked for: the one column of its one row (value,
 * len; NULL for SQL NULL). Records it in *f and judges again: FW__ROUTE_OK or FW__ROUTE_WRONG
 * (never ASK). A NULL or unexpected answer is WRONG with *why naming the query that failed.
 */
fw__route_verdict_t fw__route_answer(fw__tsa_t target, fw__route_facts_t *f, const char *value,
                                     size_t len, const char **why);

/* The role the facts show: FW_ROLE_STANDBY when in hot standby, FW_ROLE_PRIMARY when not,
 * FW_ROLE_UNKNOWN when the server did not say. */
fw_server_role_t fw__route_role(const fw__route_facts_t *f);

/* Whether a session on this server is read-only (either fact on). */
bool fw__route_read_only(const fw__route_facts_t *f);

/* The connection string's name of a target ("read-write", ...). */
const char *fw__route_target_name(fw__tsa_t target);

#endif /* FW_ROUTE_H */
