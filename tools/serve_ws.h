/* SPDX-License-Identifier: MIT */
/* fwire serve: the WebSocket side of a client (serve_ws.c: handshake, framing by wslay, messages).
 */
#ifndef FWIRE_SERVE_WS_H
#define FWIRE_SERVE_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <wslay/wslay.h>

typedef struct gw_client_s gw_client_t;

/* The WebSocket state of a client (gw_client_t.ws). */
typedef struct gw_ws_s {
    wslay_event_context_ptr ctx; /* NULL until the handshake */
    /* the bytes of the current read, while wslay_event_recv runs */
    const uint8_t *in;
    size_t in_len;
    /* a close frame waiting for the queued messages: wslay sends control frames first, so a
     * close queued at once would overtake (and drop) the messages before it */
    bool close_pending;
    uint16_t close_code;
    char close_reason[64];
    /* the frame-header scanner (serve_ws.c): checks each header before wslay sees it */
    uint8_t fh[14];
    uint8_t fh_len;
    uint64_t f_pending; /* the payload length of the header being read */
    uint64_t f_left;    /* payload bytes of the current frame not yet seen */
    uint64_t f_msg_len; /* bytes of the data message being received (fragments summed) */
    uint16_t f_fail;    /* a close code: a header was refused, nothing more goes to wslay */
    /* input not yet given to wslay while too many messages wait to be sent (ping floods) */
    uint8_t *held;
    size_t held_len;
    bool in_blocked;       /* reading stopped until the queue drains (held may be empty) */
    uint64_t last_recv_ms; /* WebSocket: when bytes last arrived (pongs included) */
    bool ping_sent;        /* a ping went out since then */
} gw_ws_t;

/* Completes the handshake of an upgrade request; `rest` are bytes after the request. */
void gw_ws_accept(gw_client_t *c, const uint8_t *rest, size_t rest_len);
void gw_ws_on_read(gw_client_t *c, const uint8_t *data, size_t len);
/* After output was written: feeds held input again once the send queue has drained. */
void gw_ws_input_resume(gw_client_t *c);
/* Queues a text message; false when it could not be queued. */
bool gw_ws_send(gw_client_t *c, const char *text, size_t len);
/* Writes what wslay has queued, as far as the output cap allows. */
void gw_ws_flush(gw_client_t *c);
/* Sends a close frame (code, reason) and closes once it is written. */
void gw_ws_close(gw_client_t *c, uint16_t code, const char *reason);
void gw_ws_free(gw_client_t *c);
/* Whether a comma-separated header value holds `token` (case-insensitive). */
bool gw_header_has_token(const char *list, const char *token);
/* Called by the tick timer: pings an idle WebSocket, closes a silent one. */
void gw_ws_tick(gw_client_t *c, uint64_t now);
/* A query_error message to a WebSocket or, for NDJSON, an error line. */
void gw_send_error(gw_client_t *c, const char *request_id, const char *stream_id, const char *code,
                   const char *sqlstate, const char *message);

#endif /* FWIRE_SERVE_WS_H */
