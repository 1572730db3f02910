/* SPDX-License-Identifier: MIT */
/*
 * A connection attempt: for each address the dialer (dialer.c) hands out, a socket through the
 * channel (channel.c), the SSLRequest exchange, the TLS handshake, the startup state machine
 * (startup.c) and its key derivation on the thread pool, the connect_timeout timer, and the
 * account of every host tried; the target_session_attrs check is conn_check.c. It ends in
 * fw__conn_finish(): made, the idle reader (conn.c, fw__conn_resume_idle) takes the channel
 * over; failed, the connect callback hears why. Everything here runs on the loop thread; the
 * decisions live in the sans-I/O units (conninfo, tls, startup); this file moves bytes and keeps
 * time.
 *
 * Lifetime: as in conn.c. Every path that calls the user checks `closing` afterwards.
 */
#include "alloc.h"
#include "conn.h"
#include "lmetrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends one line to the accumulated message (several hosts: one line per attempt). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
note(fw_conn_t *c, const char *fmt, ...)
{
    size_t used = strlen(c->err.message);
    if (used > 0 && used + 1 < sizeof(c->err.message))
        c->err.message[used++] = '\n';
    c->err.message[used] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err.message + used, sizeof(c->err.message) - used, fmt, ap);
    va_end(ap);
}

/* ---- metrics (lmetrics.h) --------------------------------------------------------------- */

static const char *lm_transport(const fw_conn_t *c)
{
    return fw__dial_is_unix(&c->dial) ? "unix" : "tcp";
}

/* Records how this attempt's authentication ended (once): reason NULL for success. A server
 * that asked for nothing (trust, peer, cert) had no exchange to count. */
static void lm_auth(fw_conn_t *c, const char *reason)
{
    if (c->lm_auth_done || c->su == NULL)
        return;
    c->lm_auth_done = true;
    static const char *const names[] = {"none", "password", "md5", "scram-sha-256",
                                        "scram-sha-256-plus"};
    fw__auth_method_t m = c->su->method;
    if (reason == NULL && m == FW__AUTH_NONE)
        return;
    fw__lm_auth((unsigned)m < 5 ? names[m] : "none", reason, uv_hrtime() - c->t_auth);
}

/* Why an attempt failed during authentication, as a label value. */
static const char *lm_auth_reason(const fw_conn_t *c, int code)
{
    if (strcmp(c->err.sqlstate, "28P01") == 0)
        return "invalid_password";
    if (strcmp(c->err.sqlstate, "28000") == 0)
        return "rejected";
    if (c->err.sqlstate[0] != '\0')
        return "server_error";
    if (code == FW_ETIMEDOUT)
        return "timeout";
    if (code == FW_EAUTH || code == FW_EPROTOCOL_VERSION)
        return "client_refused"; /* require_auth, channel binding, a bad server signature, a
                                    protocol version below min_protocol_version */
    if (code <= FW_EPROTO_SHORT && code > FW_EPROTO_SHORT - 100)
        return "protocol";
    return "connection_lost";
}

/* "connection to server at "db1" (10.0.0.1), port 5432 failed: " as libpq words it. */
void fw__conn_note_attempt(fw_conn_t *c, int code, const char *what)
{
    if (c->phase == FW_PHASE_AUTH)
        lm_auth(c, lm_auth_reason(c, code));
    fw__lm_protocol_error(code);
    char where[sizeof(c->err.message)];
    fw__dial_describe(&c->dial, where, sizeof(where));
    note(c, "%s failed: %s", where, what);
    c->err.code = code;
    c->err.phase = c->phase;
    /* the line just noted, for the log */
    const char *last = strrchr(c->err.message, '\n');
    fw__conn_log(c, FW_LOG_INFO, "%s", last != NULL ? last + 1 : c->err.message);
}

/* ---- the end of an attempt ------------------------------------------------------------- */

void fw__conn_finish(fw_conn_t *c, int status)
{
    fw_connect_cb cb = c->connect_cb;
    c->connect_cb = NULL;
    uv_timer_stop(&c->timer);
    if (status < 0) {
        c->state = FW__CONN_BAD;
        c->err.code = status;
        fw__lm_conn_failed(lm_transport(c), c->phase);
    } else {
        c->state = FW__CONN_READY;
        c->phase = FW_PHASE_READY;
        c->lm_active = fw__lm_conn_opened(lm_transport(c));
        fw__conn_resume_idle(c, NULL, 0); /* the idle reader takes the channel over */
    }
    if (cb != NULL)
        cb(c, status, status < 0 ? &c->err : NULL, c->connect_ud);
}

/* A transport-level failure: this address is done; try the next address, then host. */
void fw__conn_attempt_failed(fw_conn_t *c, int code, const char *what)
{
    fw__conn_note_attempt(c, code, what);
    fw__conn_drop_socket(c, fw__dial_next_address);
}

/* A failure that ends the whole connect (authentication, policy): libpq stops here too. */
static void connect_failed(fw_conn_t *c, int code, const char *what)
{
    fw__conn_note_attempt(c, code, what);
    fw__conn_drop_socket(c, NULL);
    fw__conn_finish(c, code);
}

/* ---- timers ---------------------------------------------------------------------------- */

static void on_timeout(uv_timer_t *t)
{
    fw_conn_t *c = t->data;
    char what[160];
    snprintf(what, sizeof(what), "timeout expired during the %s phase (connect_timeout=%d s)",
             fw_phase_name(c->phase), c->ci->connect_timeout);
    /* libpq gives up on this address after a timeout and tries the next one. */
    fw__conn_note_attempt(c, FW_ETIMEDOUT, what);
    fw__conn_free_startup(c); /* a running PBKDF2 is cancelled; its job is freed in after_derive */
    if (fw__dial_timeout(&c->dial))
        return; /* a lookup was in flight: the dialer moves on once it ends */
    fw__conn_drop_socket(c, fw__dial_next_address);
}

static void arm_timer(fw_conn_t *c)
{
    if (c->ci->connect_timeout > 0)
        uv_timer_start(&c->timer, on_timeout, (uint64_t)c->ci->connect_timeout * 1000, 0);
}

/* ---- startup --------------------------------------------------------------------------- */

static void handle_startup(fw_conn_t *c, fw__su_result_t r);

static void work_derive(uv_work_t *w)
{
    fw__derive_job_t *job = w->data;
    /* Touches only job->su->scram; returns FW_ECLOSED soon after the loop sets job->cancel. */
    job->rc = fw__startup_derive_work_cancellable(job->su, &job->cancel);
}

static void after_derive(uv_work_t *w, int status)
{
    fw__derive_job_t *job = w->data;
    fw_conn_t *c = job->conn;
    c->pending--;
    if (job->stale) { /* the attempt moved on (timeout, close): drop the result */
        fw__startup_free(job->su);
        fw__free(job->su);
        fw__free(job);
        fw__conn_maybe_free(c);
        return;
    }
    c->job = NULL;
    int rc = status < 0 ? status : job->rc;
    fw__free(job);
    handle_startup(c, fw__startup_derived(c->su, rc));
}

static void on_ready(fw_conn_t *c)
{
    /* Snapshot what fw_conn_info reports: it must not change under another thread. */
    const fw__params_t *p = &c->su->params;
    c->params = *p;
    const char *v = fw__params_get(p, "server_version");
    snprintf(c->server_version, sizeof(c->server_version), "%s", v ? v : "");
    v = fw__params_get(p, "server_version_num");
    c->server_version_num = v ? atoi(v) : 0;
    if (c->server_version_num == 0 && c->server_version[0] != '\0') {
        int major = 0, minor = 0;
        (void)sscanf(c->server_version, "%d.%d", &major, &minor);
        c->server_version_num = major * 10000 + minor;
    }
    if (c->chan.tls != NULL) {
        snprintf(c->tls_version, sizeof(c->tls_version), "%s", fw__tls_version(c->chan.tls));
        snprintf(c->tls_cipher, sizeof(c->tls_cipher), "%s", fw__tls_cipher(c->chan.tls));
    }
    lm_auth(c, NULL);
    c->method = c->su->method;
    c->protocol = c->su->protocol;
    c->backend_key = c->su->key;
    fw__route_facts_from_params(&c->params, &c->facts);
    c->facts.server_version_num = c->server_version_num;
    /* The connection keeps reading while idle, so an asynchronous FATAL shows up at once;
     * the startup reader (with any bytes after ReadyForQuery) is handed over. */
    fw__pq_reader_free(&c->reader);
    c->reader = c->su->reader;
    fw__pq_reader_set_startup(&c->reader, false);
    fw__pq_reader_init(&c->su->reader, NULL, &fw__alloc);
    fw__conn_free_startup(c);
    c->phase = FW_PHASE_ROUTE;
    fw__conn_check_target(c);
}

static void handle_startup(fw_conn_t *c, fw__su_result_t r)
{
    int rc = fw__conn_flush_out(c);
    if (rc < 0) {
        fw__conn_attempt_failed(c, rc, fw_strerror(rc));
        return;
    }
    switch (r) {
    case FW__SU_CONTINUE:
        if (c->su->state == FW__SU_S_AUTH_OK) {
            lm_auth(c, NULL);
            c->phase = FW_PHASE_STARTUP;
        }
        return;
    case FW__SU_DERIVE:
        /* PBKDF2 may take long (the iteration count is the server's choice, up to the cap):
         * run it on the thread pool so other connections on this loop keep moving. */
        c->job = fw__calloc(1, sizeof(*c->job));
        if (c->job == NULL) {
            connect_failed(c, FW_ENOMEM, "out of memory");
            return;
        }
        c->job->conn = c;
        c->job->su = c->su;
        atomic_init(&c->job->cancel, false); /* published to the worker by uv_queue_work */
        c->job->work.data = c->job;
        rc = uv_queue_work(c->loop, &c->job->work, work_derive, after_derive);
        if (rc < 0) {
            fw__free(c->job);
            c->job = NULL;
            connect_failed(c, rc, uv_strerror(rc));
            return;
        }
        c->pending++;
        return;
    case FW__SU_READY:
        on_ready(c);
        return;
    case FW__SU_FAILED:
        break;
    }
    /* Copy the server's fields; decide whether another host may do better. */
    fw__startup_t *su = c->su;
    if (su->have_server_error) {
        const fw_error_t *e = &su->server_error;
        memcpy(c->err.sqlstate, e->sqlstate, sizeof(c->err.sqlstate));
        memcpy(c->err.severity, e->severity, sizeof(c->err.severity));
        memcpy(c->err.detail, e->detail, sizeof(c->err.detail));
        memcpy(c->err.hint, e->hint, sizeof(c->err.hint));
    }
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", fw__startup_error(su));
    int code = su->err;
    bool server_error = su->have_server_error;
    if (server_error && strcmp(su->server_error.sqlstate, "57P03") == 0) {
        fw__conn_attempt_failed(c, code, msg); /* "the database system is starting up" */
        return;
    }
    /* sslmode=prefer/allow: a server that refuses us over TLS may accept plaintext and the
     * other way round (libpq retries on a fresh connection). Never for an authentication
     * policy failure of ours, and never when a secret already went out. */
    if (server_error && !c->retried_plain && c->chan.tls != NULL &&
        c->ci->sslmode == FW__SSLMODE_PREFER) {
        fw__conn_note_attempt(c, code, msg);
        c->retried_plain = true;
        c->want_tls = false;
        fw__conn_drop_socket(c, fw__dial_retry);
        return;
    }
    if (server_error && !c->retried_plain && c->chan.tls == NULL && !fw__dial_is_unix(&c->dial) &&
        c->ci->sslmode == FW__SSLMODE_ALLOW) {
        fw__conn_note_attempt(c, code, msg);
        c->retried_plain = true;
        c->want_tls = true;
        fw__conn_drop_socket(c, fw__dial_retry);
        return;
    }
    connect_failed(c, code, msg);
}

static void start_startup(fw_conn_t *c)
{
    const fw__conninfo_host_t *h = fw__dial_host(&c->dial);
    fw__startup_opts_t o;
    memset(&o, 0, sizeof(o));
    o.user = fw__conninfo_get(c->ci, "user");
    o.database = fw__conninfo_get(c->ci, "dbname");
    o.application_name = fw__conninfo_get(c->ci, "application_name");
    if (o.application_name == NULL || o.application_name[0] == '\0')
        o.application_name = fw__conninfo_get(c->ci, "fallback_application_name");
    o.options = fw__conninfo_get(c->ci, "options");
    o.password = fw__conninfo_get(c->ci, "password");
    if ((o.password == NULL || o.password[0] == '\0') && h->password != NULL)
        o.password = h->password;
    o.tls = c->chan.tls != NULL;
    o.channel_binding = c->ci->channel_binding == FW__CHANBIND_REQUIRE  ? FW__CB_REQUIRE
                        : c->ci->channel_binding == FW__CHANBIND_PREFER ? FW__CB_PREFER
                                                                        : FW__CB_DISABLE;
    if (c->chan.tls != NULL && o.channel_binding != FW__CB_DISABLE) {
        const char *why = NULL;
        if (fw__tls_cb_data(c->chan.tls, c->cb_data, sizeof(c->cb_data), &c->cb_data_len, &why) ==
            0) {
            o.cb_data = c->cb_data;
            o.cb_data_len = c->cb_data_len;
        } else {
            o.cb_why = why;
        }
    }
    o.restrict_auth = c->ci->require_auth_set;
    o.auth_required = c->ci->auth_required;
    o.allowed = c->ci->allowed_auth;
    o.scram_max_iterations = c->opts.scram_max_iterations;
    o.min_protocol = c->ci->min_protocol;
    o.max_protocol = c->ci->max_protocol;
    o.notice_fn = fw__conn_notice; /* counted in fraiseql_notices_total even without notice_cb */
    o.notice_ud = c;
    o.msg_fn = c->opts.trace_cb != NULL ? fw__conn_trace_in : NULL;
    o.msg_ud = c;
    fw__conn_free_startup(c);
    c->su = fw__calloc(1, sizeof(*c->su));
    if (c->su == NULL) {
        connect_failed(c, FW_ENOMEM, "out of memory");
        return;
    }
    int rc = fw__startup_init(c->su, &o, &c->out);
    if (rc < 0) {
        connect_failed(c, FW_ECONFIG, "no user name to connect as");
        return;
    }
    c->phase = FW_PHASE_AUTH;
    c->t_auth = uv_hrtime();
    c->lm_auth_done = false;
    c->out_untyped = c->out.len == 0; /* the StartupMessage comes first */
    handle_startup(c, fw__startup_begin(c->su));
}

/* ---- reading --------------------------------------------------------------------------- */

static void on_ssl_response(fw_conn_t *c, const uint8_t *p, size_t n)
{
    char why[256];
    int r = fw__tls_ssl_response(p, n, c->tls_mode, why, sizeof(why));
    if (r < 0) {
        /* 'N' under require, an 'E' (its text is never shown: CVE-2024-10977), bytes after the
         * 'S' (CVE-2021-23222): this socket is never reused. */
        fw__conn_attempt_failed(c, r, why);
        return;
    }
    if (r == FW__TLS_RESP_PLAIN) {
        fw__chan_drop_tls(&c->chan);
        start_startup(c);
        return;
    }
    c->phase = FW_PHASE_TLS_HANDSHAKE;
    if (fw__chan_handshake(&c->chan, NULL, 0) < 0)
        fw__conn_attempt_failed(c, FW_ETLS, fw__chan_tls_error(&c->chan));
}

static void on_handshake_bytes(fw_conn_t *c, const uint8_t *p, size_t n)
{
    int hs = fw__chan_handshake(&c->chan, p, n);
    if (hs == FW_ETLS) {
        /* sslmode=prefer: a failed handshake retries in plaintext on a new connection; never
         * for verify-* or require. */
        if (c->ci->sslmode == FW__SSLMODE_PREFER && !c->retried_plain) {
            fw__conn_note_attempt(c, FW_ETLS, fw__chan_tls_error(&c->chan));
            c->retried_plain = true;
            c->want_tls = false;
            fw__conn_drop_socket(c, fw__dial_retry);
            return;
        }
        fw__conn_attempt_failed(c, FW_ETLS, fw__chan_tls_error(&c->chan));
        return;
    }
    if (hs < 0) {
        fw__conn_attempt_failed(
            c, hs, hs == FW_ENOMEM ? "out of memory" : "could not send the TLS handshake");
        return;
    }
    if (hs == FW__TLS_CONTINUE)
        return;
    fw__conn_log(c, FW_LOG_DEBUG, "TLS established: %s %s", fw__tls_version(c->chan.tls),
                 fw__tls_cipher(c->chan.tls));
    start_startup(c);
}

/*
 * The channel's reader while the attempt runs: the one-byte answer to SSLRequest and the TLS
 * handshake below TLS, then the startup exchange in plaintext. At ReadyForQuery the idle
 * reader (conn.c) takes the channel over.
 */
static void attempt_readable(fw__chan_t *ch)
{
    fw_conn_t *c = ch->reader;
    while (c->state == FW__CONN_CONNECTING && !c->closing && c->sock_closed_then == NULL &&
           ch->on_read == attempt_readable) {
        /* Read all that is there, also while waiting for the one-byte answer to SSLRequest:
         * a byte queued behind the 'S' then arrives with it and is refused (CVE-2021-23222),
         * and a later one breaks the TLS handshake. */
        bool raw = c->phase == FW_PHASE_SSL_RESPONSE || (ch->tls != NULL && !ch->tls_up);
        const uint8_t *p = raw ? ch->rbuf : c->plain;
        ssize_t n = raw ? fw__chan_recv_raw(ch) : fw__chan_read(ch, c->plain, FW__CONN_BUF);
        if (n == UV_EAGAIN)
            return;
        if (n < 0) {
            const char *what = n == UV_EOF    ? "server closed the connection unexpectedly"
                               : n == FW_ETLS ? fw__chan_tls_error(ch)
                                              : fw_strerror((int)n);
            fw__conn_attempt_failed(c, n == UV_EOF ? FW_ECLOSED : (int)n, what);
            return;
        }
        if (c->phase == FW_PHASE_SSL_RESPONSE)
            on_ssl_response(c, p, (size_t)n);
        else if (raw)
            on_handshake_bytes(c, p, (size_t)n);
        else if (c->checking)
            fw__conn_check_bytes(c, p, (size_t)n);
        else
            handle_startup(c, fw__startup_feed(c->su, p, (size_t)n));
    }
}

/* ---- connecting ------------------------------------------------------------------------ */

static void on_connected(fw__chan_t *ch, int status)
{
    fw_conn_t *c = ch->data;
    if (status < 0) {
        fw__conn_attempt_failed(c, status, uv_strerror(status));
        return;
    }
    fw__sock_tuning_t t;
    fw__conn_tuning(c, &t);
    int rc = fw__chan_tune(ch, &t);
    if (rc < 0) {
        fw__conn_attempt_failed(c, rc, uv_strerror(rc));
        return;
    }
    fw__chan_read_start(ch, attempt_readable, c);
    /* No TLS over unix sockets (libpq: the kernel already protects them). */
    if (c->want_tls && !fw__dial_is_unix(&c->dial)) {
        char why[256];
        fw__tls_config_t cfg;
        fw__tls_t *tls = NULL;
        fw__conn_tls_config(c, &cfg);
        rc = fw__tls_new(&tls, &cfg, why, sizeof(why));
        if (rc < 0) {
            connect_failed(c, rc == FW_ENOMEM ? rc : FW_ECONFIG, why);
            return;
        }
        fw__chan_set_tls(ch, tls);
        c->phase = FW_PHASE_SSL_RESPONSE;
        fw__pq_buf_reset(&c->out);
        c->out_untyped = true;
        rc = fw__pq_put_ssl_request(&c->out);
        if (rc == 0)
            rc = fw__conn_flush_out(c);
        if (rc < 0)
            fw__conn_attempt_failed(c, rc, fw_strerror(rc));
        return;
    }
    start_startup(c);
}

/* ---- the dialer's callbacks (dialer.h) ------------------------------------------------ */

/* Every new socket is judged from scratch (CVE-2018-10915): no TLS, startup or reader state of
 * an earlier attempt survives. Also when a host begins or none is left, so that a key
 * derivation of the attempt before never outlives it. */
static void reset_attempt(fw_conn_t *c)
{
    fw__conn_free_startup(c);
    fw__pq_buf_reset(&c->out);
    memset(&c->facts, 0, sizeof(c->facts));
    c->facts.in_hot_standby = c->facts.default_read_only = FW__TRI_UNKNOWN;
    c->facts.session_read_only = FW__TRI_UNKNOWN;
    c->checking = false;
    c->check_got = false;
    c->check_extra = false;
    fw__pq_reader_free(&c->reader); /* a target check's reply of the attempt before */
    fw__pq_reader_init(&c->reader, NULL, &fw__alloc);
}

/* A new host or address: the server fields of the error (SQLSTATE, severity, detail, hint)
 * belong to the attempt that failed last, so an earlier host's FATAL (57P03) never labels a
 * later failure of another kind (the message keeps every attempt's line). Not when no host is
 * left: the last attempt's fields are the connect's. */
static void forget_server_error(fw_conn_t *c)
{
    c->err.sqlstate[0] = '\0';
    c->err.severity[0] = '\0';
    c->err.detail[0] = '\0';
    c->err.hint[0] = '\0';
}

static void dial_on_host(fw__dialer_t *d)
{
    fw_conn_t *c = d->data;
    reset_attempt(c);
    forget_server_error(c);
    c->retried_plain = false;
    c->want_tls = c->ci->sslmode != FW__SSLMODE_DISABLE && c->ci->sslmode != FW__SSLMODE_ALLOW;
    arm_timer(c);
}

static void dial_on_lookup(fw__dialer_t *d)
{
    fw_conn_t *c = d->data;
    c->phase = FW_PHASE_DNS;
}

static void dial_on_address(fw__dialer_t *d, const struct sockaddr *sa, socklen_t len)
{
    fw_conn_t *c = d->data;
    reset_attempt(c);
    forget_server_error(c);
    fw__conn_log(c, FW_LOG_DEBUG, "connecting to %s%s%s (port %u)", fw__dial_address(d),
                 c->want_tls && !fw__dial_is_unix(d) ? ", asking for TLS" : "",
                 c->retried_plain ? ", second try" : "", (unsigned)fw__dial_host(d)->port_num);
    c->phase = FW_PHASE_CONNECT;
    arm_timer(c); /* connect_timeout starts again for every address (libpq) */
    /* Kept for the cancel connection, which must reach exactly this address. */
    if ((size_t)len <= sizeof(c->peer)) {
        memcpy(&c->peer, sa, (size_t)len);
        c->peer_len = len;
    }
    int rc = fw__chan_connect(&c->chan, c->loop, sa, len, on_connected);
    if (rc < 0) {
        fw__conn_attempt_failed(c, rc, uv_strerror(rc));
        return;
    }
    c->pending++;
}

/* A resolver failure or an unusable unix path: noted; the dialer moves on by itself. */
static void dial_on_error(fw__dialer_t *d, int code, const char *what)
{
    fw__conn_note_attempt(d->data, code, what);
}

static void dial_on_exhausted(fw__dialer_t *d)
{
    fw_conn_t *c = d->data;
    reset_attempt(c);
    if (c->ci->target_session_attrs == FW__TSA_PREFER_STANDBY && !c->pass2) {
        /* No standby anywhere: a second pass over every host takes any server (libpq). */
        c->pass2 = true;
        fw__conn_log(c, FW_LOG_INFO, "no standby found; trying every host again for any server");
        fw__dial_start(d);
        return;
    }
    fw__conn_finish(c, c->err.code != 0 ? c->err.code : FW_ECLOSED);
}

/* The dialer's lookup ended after fw_conn_close: perhaps the last thing the memory waited for. */
static void dial_on_released(fw__dialer_t *d)
{
    fw__conn_maybe_free(d->data);
}

const fw__dial_cbs_t fw__conn_dial_cbs = {dial_on_host,  dial_on_lookup,    dial_on_address,
                                          dial_on_error, dial_on_exhausted, dial_on_released};
