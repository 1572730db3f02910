/* SPDX-License-Identifier: MIT */
/*
 * Private to lib/: the CancelRequest of a running query (RELIABILITY bar 7). It goes on a
 * connection of its own to the exact address the query's connection uses, with the same TLS
 * settings (TLS when the query's connection has it, never a downgrade), under its own timer,
 * and it is complete only once the server has closed that connection: PostgreSQL acts on a
 * CancelRequest before it closes, so a query sent after that can never be hit by it.
 */
#ifndef FW_CANCEL_H
#define FW_CANCEL_H

#include "channel.h"
#include "proto.h"

#include <stdint.h>

typedef struct fw__cancel_s fw__cancel_t;

/* Where and how to cancel: filled by the connection (fw__conn_cancel_target); borrowed for the
 * fw__cancel_start call only. */
typedef struct fw__cancel_target_s {
    uv_loop_t *loop;
    const struct sockaddr *peer; /* the exact address the query's connection uses */
    socklen_t peer_len;
    bool tcp;
    fw__sock_tuning_t tuning;    /* keepalives on the cancel connection too (decision 9) */
    const fw__tls_config_t *tls; /* NULL: the query's connection has no TLS */
    fw__pq_cancel_key_t key;     /* BackendKeyData: pid and 4..256 key bytes */
} fw__cancel_target_t;

/* Runs once on the loop thread, never inside fw__cancel_start: status 0 when the server closed
 * the cancel connection, else an error (FW_ETIMEDOUT, FW_ETLS, a libuv code) with `why`. */
typedef void (*fw__cancel_cb)(fw__cancel_t *k, int status, const char *why, void *ud);

/* Starts cancelling the query running on the backend `t` names. Returns 0, or an error (then
 * cb never runs). */
int fw__cancel_start(const fw__cancel_target_t *t, uint32_t timeout_ms, fw__cancel_cb cb,
                     void *ud, fw__cancel_t **out);

/* Lets the cancel finish on its own (its connection closing, or its timer): cb never runs, and
 * it frees itself. For a connection that closes while its query's cancel is in flight: the
 * server must still get the request, or the query runs on until it next writes. */
void fw__cancel_detach(fw__cancel_t *k);

/* Gives up: cb never runs; the memory goes once libuv has closed the handles. */
void fw__cancel_abort(fw__cancel_t *k);

#endif /* FW_CANCEL_H */
