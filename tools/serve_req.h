/* SPDX-License-Identifier: MIT */
/*
 * fwire serve: what a client may ask for, validated, and the fwire query built from it.
 * Clients never send SQL: an entity from the allowlist, typed predicates on JSON paths whose
 * elements are [A-Za-z0-9_]+, one ORDER BY path, a limit. Everything here is pure (no I/O), so
 * the unit tests and the fuzz target drive it directly. docs/gateway.md is the protocol.
 */
#ifndef FWIRE_SERVE_REQ_H
#define FWIRE_SERVE_REQ_H

#include <fwire.h>

#include "serve_json.h"

#define GW_MAX_PREDICATES  32   /* where entries per query: each costs bind parameters */
#define GW_MAX_IN_VALUES   1000 /* values of one `in` */
#define GW_MAX_PATH_DEPTH  16   /* elements of a dotted path */
#define GW_MAX_PATH_ELEM   63   /* bytes of one path element (PostgreSQL's identifier limit) */
#define GW_MAX_ID_BYTES    128  /* request_id and stream_id */
#define GW_MAX_ENTITY      59   /* "v_" + entity within 63 bytes... with room to spare */
#define GW_MAX_BATCH_SIZE  10000
#define GW_MAX_VALUE_BYTES 4096 /* one predicate value */

typedef enum gw_msg_type_e {
    GW_MSG_STREAM_QUERY = 0,
    GW_MSG_CANCEL_QUERY,
    GW_MSG_PAUSE_QUERY,
    GW_MSG_RESUME_QUERY
} gw_msg_type_t;

typedef struct gw_pred_s {
    const char *path; /* dotted and validated; "" is the whole document */
    fw_op_t op;
    bool is_in;
    fw_value_type_t type;
    const char *value;   /* NULL for is_null / is_not_null / in */
    const char **values; /* in: nvalues values (owned by the request) */
    size_t nvalues;
} gw_pred_t;

/* A validated client message. Every pointer is owned by the request until gw_request_free. */
typedef struct gw_request_s {
    gw_msg_type_t type;
    const char *request_id; /* NULL when absent */
    const char *stream_id;  /* cancel/pause/resume */
    const char *entity;
    gw_pred_t preds[GW_MAX_PREDICATES];
    size_t npreds;
    const char *order_path; /* NULL: no ORDER BY */
    bool order_desc;
    int64_t limit;       /* -1: none */
    uint32_t batch_size; /* 0: the server's default */
    /* owned memory */
    gwjson_doc_t *doc;
    char *arena;
    size_t arena_used, arena_cap;
} gw_request_t;

/* Why a message was refused: the protocol's error code and a message for humans. */
typedef struct gw_reqerr_s {
    const char *code; /* "bad_request" (static) */
    char message[256];
    char request_id[GW_MAX_ID_BYTES + 1]; /* echoed when the message had a usable one */
    bool has_request_id;
} gw_reqerr_t;

/*
 * Parses and validates one client message (JSON text, borrowed for the call). Returns 0 with
 * *req filled; -1 with *err filled (the message is refused, the connection goes on); -2 out of
 * memory. On failure nothing needs freeing. `max_bytes` bounds the text.
 */
int gw_request_parse(const char *text, size_t len, size_t max_bytes, gw_request_t *req,
                     gw_reqerr_t *err);

/*
 * Parses the query string of `GET /stream/<entity>?...` (`query` is the raw text after '?',
 * NULL or "" for none; percent-encoded): limit=N, where=PATH:OP[:VALUE] (repeatable),
 * order_by=PATH, desc=true|false. `entity` is copied. Returns as gw_request_parse.
 */
int gw_request_from_url(const char *entity, const char *query, gw_request_t *req, gw_reqerr_t *err);

/* Frees what a successful parse owns; the struct may be reused. */
void gw_request_free(gw_request_t *req);

/* True when `path` is "" or dotted elements of [A-Za-z0-9_]+ within the limits above. */
bool gw_path_valid(const char *path);

/*
 * Builds the query of a stream_query request: the entity's view, its predicates, its ORDER BY
 * (built here from the validated path, `("data"::jsonb)#>'{a,b}'`, never from client text
 * unvalidated), its limit. Returns 0 and *out (the caller frees it with fw_query_free), or a
 * negative fw code with a reason in msg.
 */
int gw_query_build(const gw_request_t *req, fw_query_t **out, char *msg, size_t cap);

/* The operator's protocol name ("eq", "is_not_null", "in"...). */
const char *gw_op_name(fw_op_t op, bool is_in);

/* True for a loopback address or name: 127.0.0.0/8, ::1, localhost. */
bool gw_host_is_loopback(const char *host);

/*
 * Whether the Host header value `host` names this server, the defence against DNS rebinding
 * (a web site whose name now resolves to 127.0.0.1 reaches the gateway as the same origin, but
 * its requests still carry its own name in Host). Accepted: localhost, 127.0.0.1, [::1] and
 * the listen address, with the listen port (or no port when it is 80); and each of
 * `allowed[0..nallowed)`, "NAME" (any port) or "NAME:PORT" ("[V6]" for IPv6), or "*" for
 * anything. Names compare case-insensitively. An empty or malformed Host is refused.
 */
bool gw_host_allowed(const char *host, const char *listen_host, int listen_port,
                     char *const *allowed, size_t nallowed);

#endif /* FWIRE_SERVE_REQ_H */
