/* SPDX-License-Identifier: MIT */
/*
 * Private to lib/: the messages a server may send at any time, decoded once for every user
 * (start-up, the idle connection, a running stream): ErrorResponse and NoticeResponse into
 * fw_error_t / fw_notice_t, NotificationResponse, ParameterStatus into bounded storage. Server
 * text is untrusted: it is escaped (control characters and invalid UTF-8 become \xNN) and cut
 * to the destination at a character boundary, never used as a format (CVE-2020-25696 class).
 * Pure: no I/O, no allocation.
 */
#ifndef FW_SERVERMSG_H
#define FW_SERVERMSG_H

#include "fwire.h"
#include "proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * An ErrorResponse (or a NoticeResponse) into *e: code FW_ESERVER, `phase`, SQLSTATE, severity
 * (the non-localized one when the server sent it), message, detail and hint. Every field of e
 * is overwritten. Returns 0, or FW_EPROTO_* when the fields are malformed (then *e is cleared
 * but for code and phase).
 */
int fw__servermsg_error(const fw__pq_msg_t *m, fw_phase_t phase, fw_error_t *e);

/* Whether the error ends the session: severity FATAL or PANIC. */
bool fw__servermsg_fatal(const fw_error_t *e);

/* A NoticeResponse for fw_conn_opts_t.notice_cb: the strings live in *buf. */
typedef struct fw__notice_buf_s {
    char severity[16];
    char sqlstate[6];
    char message[sizeof(((fw_error_t *)0)->message)];
} fw__notice_buf_t;
/* Returns 0 and fills *n (pointing into *buf), or FW_EPROTO_* for malformed fields. */
int fw__servermsg_notice(const fw__pq_msg_t *m, fw__notice_buf_t *buf, fw_notice_t *n);

/* A NotificationResponse for fw_conn_opts_t.notification_cb, escaped into caller storage. */
typedef struct fw__notify_buf_s {
    int32_t pid;
    char channel[256];
    char payload[8192];
} fw__notify_buf_t;
void fw__servermsg_notify(const fw__pq_msg_t *m, fw__notify_buf_t *buf);

/* Bounded storage for ParameterStatus: a hostile server cannot grow it without limit. */
#define FW__PARAMS_MAX       64
#define FW__PARAMS_BYTES_MAX 8192

typedef struct fw__params_s {
    size_t n;
    size_t used;
    uint16_t name_at[FW__PARAMS_MAX], value_at[FW__PARAMS_MAX];
    char bytes[FW__PARAMS_BYTES_MAX];
} fw__params_t;

/* Records a ParameterStatus message ('S'); a later value for the same name wins. Returns 0 or
 * FW_ETOOBIG. */
int fw__params_set_msg(fw__params_t *p, const fw__pq_msg_t *m);
/* The same from a name and a value. */
int fw__params_set(fw__params_t *p, fw_slice_t name, fw_slice_t value);
/* The value of a parameter, NUL-terminated and borrowed from p, or NULL. */
const char *fw__params_get(const fw__params_t *p, const char *name);

/* Whether an encoding name means UTF-8 as PostgreSQL spells it ("UTF8", any case; "UTF-8"). */
bool fw__is_utf8_name(const char *name);

/* Copies untrusted text (server messages, names) into dst: cap bytes, always NUL-terminated,
 * truncated at a character boundary; control characters and bytes that are not part of valid
 * UTF-8 become \xNN, so nothing a server sends can steer a terminal or a log. Returns dst. */
char *fw__escape_text(char *dst, size_t cap, const uint8_t *src, size_t len);

#endif /* FW_SERVERMSG_H */
