/* SPDX-License-Identifier: MIT */
/*
 * A connection: a socket to each address the dialer (dialer.c) hands out, the SSLRequest
 * exchange, TLS, the startup state machine, timers, and the public embedded-mode API. Everything
 * here runs on the loop thread. The decisions live in the sans-I/O units (conninfo, tls,
 * startup); this file moves bytes between them and the socket and keeps time.
 *
 * Lifetime: user callbacks may call fw_conn_close(); every path that calls one out checks
 * `closing` afterwards and touches nothing else. Memory is released only after the last libuv
 * handle and the last thread-pool job have finished (STYLE 7 and 9).
 */
#include "alloc.h"
#include "conn.h"
#include "stream_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ---------------------------------------------------------------------------- */

const char *fw_phase_name(fw_phase_t phase)
{
    switch (phase) {
    case FW_PHASE_NONE:
        return "none";
    case FW_PHASE_CONFIG:
        return "configuration";
    case FW_PHASE_DNS:
        return "DNS lookup";
    case FW_PHASE_CONNECT:
        return "connect";
    case FW_PHASE_SSL_RESPONSE:
        return "SSL response";
    case FW_PHASE_TLS_HANDSHAKE:
        return "TLS handshake";
    case FW_PHASE_AUTH:
        return "authentication";
    case FW_PHASE_STARTUP:
        return "startup";
    case FW_PHASE_READY:
        return "ready";
    case FW_PHASE_CLOSED:
        return "closed";
    }
    return "unknown";
}

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

void fw__conn_log(fw_conn_t *c, fw_log_level_t level, const char *fmt, ...)
{
    if (c->opts.log_cb == NULL)
        return;
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->opts.log_cb(c->opts.log_ud, level, line);
}

/* Secrets travel in 'p' (password, SASL) messages: the trace shows their type and size only. */
static void trace(fw_conn_t *c, char dir, uint8_t type, size_t length, const uint8_t *body)
{
    fw_trace_t t = {dir, type, length, type == 'p' ? NULL : body};
    c->opts.trace_cb(c->opts.trace_ud, &t);
}

void fw__conn_trace_in(void *ud, const fw__pq_msg_t *m)
{
    fw_conn_t *c = ud;
    if (c->opts.trace_cb != NULL)
        trace(c, '<', m->type, m->body.len + 4, m->body.ptr);
}

/* Walks the whole messages queued in c->out for the trace. */
static void trace_out(fw_conn_t *c)
{
    size_t off = 0;
    bool untyped = c->out_untyped;
    while (off < c->out.len) {
        const uint8_t *p = c->out.data + off;
        size_t hdr = untyped ? 0 : 1;
        if (c->out.len - off < hdr + 4)
            break;
        size_t n = fw__be32(p + hdr);
        if (n < 4 || n > c->out.len - off - hdr)
            break;
        trace(c, '>', untyped ? 0 : p[0], n, p + hdr + 4);
        off += hdr + n;
        untyped = false;
    }
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
static void note_attempt(fw_conn_t *c, int code, const char *what)
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

/* ---- handle bookkeeping ---------------------------------------------------------------- */

/* Releases this attempt's startup state, unless a derivation job still works on it (then the
 * job frees it when it ends). */
static void free_startup(fw_conn_t *c)
{
    if (c->su == NULL)
        return;
    if (c->job != NULL) {
        c->job->stale = true; /* the job owns c->su now */
        /* and stops its PBKDF2 at the next check (relaxed: see fw__derive_job_t) */
        atomic_store_explicit(&c->job->cancel, true, memory_order_relaxed);
        c->job = NULL;
    } else {
        fw__startup_free(c->su);
        fw__free(c->su);
    }
    c->su = NULL;
}

static void maybe_free(fw_conn_t *c)
{
    if (!c->closing || c->pending > 0 || fw__dial_pending(&c->dial) > 0)
        return;
    fw_close_cb cb = c->close_cb;
    void *ud = c->close_ud;
    if (cb != NULL)
        cb(c, ud);
    free_startup(c);
    fw__pq_reader_free(&c->reader);
    fw__pq_buf_free(&c->out);
    fw__tls_free(c->tls);
    fw__dial_free(&c->dial);
    fw__conninfo_free(c->ci);
    fw__wipe_conn_secrets(c);
    fw__free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    fw_conn_t *c = h->data;
    c->pending--;
    maybe_free(c);
}

static void on_sock_closed(fw__sock_t *s)
{
    fw_conn_t *c = s->data;
    c->sock_open = false;
    c->pending--;
    if (c->sock_closed_then != NULL) {
        void (*then)(fw__dialer_t *) = c->sock_closed_then;
        c->sock_closed_then = NULL;
        if (!c->closing)
            then(&c->dial);
    }
    maybe_free(c);
}

/* Closes the current socket (if any) and runs `then` (fw__dial_next_address, fw__dial_next_host,
 * fw__dial_retry or NULL) once it is gone. */
static void drop_socket(fw_conn_t *c, void (*then)(fw__dialer_t *))
{
    fw__tls_free(c->tls);
    c->tls = NULL;
    if (c->sock_open) {
        c->sock_closed_then = then;
        fw__sock_close(&c->sock, on_sock_closed);
    } else if (then != NULL && !c->closing) {
        then(&c->dial);
    }
}

void fw__conn_abort(fw_conn_t *c)
{
    if (c->closing)
        return;
    c->state = FW__CONN_BAD;
    drop_socket(c, NULL);
}

/* ---- the end of an attempt ------------------------------------------------------------- */

static void finish(fw_conn_t *c, int status)
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
    }
    if (cb != NULL)
        cb(c, status, status < 0 ? &c->err : NULL, c->connect_ud);
}

/* A transport-level failure: this address is done; try the next address, then host. */
static void attempt_failed(fw_conn_t *c, int code, const char *what)
{
    note_attempt(c, code, what);
    drop_socket(c, fw__dial_next_address);
}

/* A failure that ends the whole connect (authentication, policy): libpq stops here too. */
static void connect_failed(fw_conn_t *c, int code, const char *what)
{
    note_attempt(c, code, what);
    drop_socket(c, NULL);
    finish(c, code);
}

/* ---- timers ---------------------------------------------------------------------------- */

static void on_timeout(uv_timer_t *t)
{
    fw_conn_t *c = t->data;
    char what[160];
    snprintf(what, sizeof(what), "timeout expired during the %s phase (connect_timeout=%d s)",
             fw_phase_name(c->phase), c->ci->connect_timeout);
    /* libpq moves on to the next host after a timeout. */
    note_attempt(c, FW_ETIMEDOUT, what);
    free_startup(c); /* a running PBKDF2 is cancelled; its job is freed in after_derive */
    if (fw__dial_timeout(&c->dial))
        return; /* a lookup was in flight: the dialer moves on once it ends */
    drop_socket(c, fw__dial_next_host);
}

static void arm_timer(fw_conn_t *c)
{
    if (c->ci->connect_timeout > 0)
        uv_timer_start(&c->timer, on_timeout, (uint64_t)c->ci->connect_timeout * 1000, 0);
}

/* ---- writing --------------------------------------------------------------------------- */

static void on_write_error(fw__sock_t *s, int err)
{
    fw_conn_t *c = s->data;
    if (c->state == FW__CONN_CONNECTING) {
        attempt_failed(c, err, uv_strerror(err));
    } else {
        c->state = FW__CONN_BAD;
        if (c->stream != NULL)
            fw__stream_conn_gone(c->stream, err, "could not send to the server");
    }
}

int fw__conn_flush_tls(fw_conn_t *c)
{
    const uint8_t *p;
    size_t n;
    fw__tls_out(c->tls, &p, &n);
    if (n == 0)
        return 0;
    int rc = fw__sock_write(&c->sock, p, n, on_write_error);
    fw__tls_out_consumed(c->tls, n);
    return rc;
}

/* Sends what the startup machine queued in c->out, through TLS when it is on. */
int fw__conn_flush_out(fw_conn_t *c)
{
    int rc = 0;
    if (c->out.err < 0)
        return c->out.err;
    if (c->out.len > 0) {
        if (c->opts.trace_cb != NULL)
            trace_out(c);
        c->out_untyped = false;
        if (c->tls != NULL && c->tls_up) {
            size_t off = 0;
            while (off < c->out.len && rc == 0) {
                long n = fw__tls_write(c->tls, c->out.data + off, c->out.len - off);
                if (n < 0)
                    return (int)n;
                off += (size_t)n;
                rc = fw__conn_flush_tls(c);
            }
        } else {
            rc = fw__sock_write(&c->sock, c->out.data, c->out.len, on_write_error);
        }
        fw__pq_buf_reset(&c->out);
    }
    return rc;
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
        maybe_free(c);
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
    if (c->tls != NULL) {
        snprintf(c->tls_version, sizeof(c->tls_version), "%s", fw__tls_version(c->tls));
        snprintf(c->tls_cipher, sizeof(c->tls_cipher), "%s", fw__tls_cipher(c->tls));
    }
    lm_auth(c, NULL);
    c->method = c->su->method;
    c->protocol = c->su->protocol;
    c->backend_key = c->su->key;
    c->connect_seconds = (double)(uv_hrtime() - c->t_start) / 1e9;
    /* The connection keeps reading while idle, so an asynchronous FATAL shows up at once;
     * the startup reader (with any bytes after ReadyForQuery) is handed over. */
    fw__pq_reader_free(&c->reader);
    c->reader = c->su->reader;
    fw__pq_reader_set_startup(&c->reader, false);
    fw__pq_reader_init(&c->su->reader, NULL, &fw__pq_alloc);
    free_startup(c);
    c->err.message[0] = '\0';
    static const char *const methods[] = {"no authentication", "a cleartext password", "md5",
                                          "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"};
    fw__conn_log(c, FW_LOG_INFO, "connected to %s (backend %d) with %s, protocol %u.%u, in %.1f ms",
                 fw__dial_address(&c->dial), (int)c->backend_key.pid, methods[c->method],
                 FW__PQ_VERSION_MAJOR(c->protocol), FW__PQ_VERSION_MINOR(c->protocol),
                 c->connect_seconds * 1e3);
    finish(c, 0);
}

static void handle_startup(fw_conn_t *c, fw__su_result_t r)
{
    int rc = fw__conn_flush_out(c);
    if (rc < 0) {
        attempt_failed(c, rc, fw_strerror(rc));
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
        attempt_failed(c, code, msg); /* "the database system is starting up" */
        return;
    }
    /* sslmode=prefer/allow: a server that refuses us over TLS may accept plaintext and the
     * other way round (libpq retries on a fresh connection). Never for an authentication
     * policy failure of ours, and never when a secret already went out. */
    if (server_error && !c->retried_plain && c->tls != NULL &&
        c->ci->sslmode == FW__SSLMODE_PREFER) {
        note_attempt(c, code, msg);
        c->retried_plain = true;
        c->want_tls = false;
        drop_socket(c, fw__dial_retry);
        return;
    }
    if (server_error && !c->retried_plain && c->tls == NULL && !fw__dial_is_unix(&c->dial) &&
        c->ci->sslmode == FW__SSLMODE_ALLOW) {
        note_attempt(c, code, msg);
        c->retried_plain = true;
        c->want_tls = true;
        drop_socket(c, fw__dial_retry);
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
    o.tls = c->tls != NULL;
    o.channel_binding = c->ci->channel_binding == FW__CHANBIND_REQUIRE  ? FW__CB_REQUIRE
                        : c->ci->channel_binding == FW__CHANBIND_PREFER ? FW__CB_PREFER
                                                                        : FW__CB_DISABLE;
    if (c->tls != NULL && o.channel_binding != FW__CB_DISABLE) {
        const char *why = NULL;
        if (fw__tls_cb_data(c->tls, c->cb_data, sizeof(c->cb_data), &c->cb_data_len, &why) == 0) {
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
    free_startup(c);
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

static void on_plaintext(fw_conn_t *c, const uint8_t *p, size_t n);

static void on_ssl_response(fw_conn_t *c, const uint8_t *p, size_t n)
{
    char why[256];
    int r = fw__tls_ssl_response(p, n, c->tls_mode, why, sizeof(why));
    if (r < 0) {
        /* 'N' under require, an 'E' (its text is never shown: CVE-2024-10977), bytes after the
         * 'S' (CVE-2021-23222): this socket is never reused. */
        attempt_failed(c, r, why);
        return;
    }
    if (r == FW__TLS_RESP_PLAIN) {
        fw__tls_free(c->tls);
        c->tls = NULL;
        start_startup(c);
        return;
    }
    c->phase = FW_PHASE_TLS_HANDSHAKE;
    int hs = fw__tls_handshake(c->tls);
    if (hs >= 0)
        hs = fw__conn_flush_tls(c) < 0 ? UV_EPIPE : hs;
    if (hs < 0)
        attempt_failed(c, FW_ETLS, fw__tls_error(c->tls));
}

static void on_tls_bytes(fw_conn_t *c, const uint8_t *p, size_t n)
{
    if (fw__tls_feed(c->tls, p, n) < 0) {
        attempt_failed(c, FW_ENOMEM, "out of memory");
        return;
    }
    if (!c->tls_up) {
        int hs = fw__tls_handshake(c->tls);
        if (hs < 0) {
            /* sslmode=prefer: a failed handshake retries in plaintext on a new connection;
             * never for verify-* or require. */
            if (c->ci->sslmode == FW__SSLMODE_PREFER && !c->retried_plain) {
                note_attempt(c, FW_ETLS, fw__tls_error(c->tls));
                c->retried_plain = true;
                c->want_tls = false;
                drop_socket(c, fw__dial_retry);
                return;
            }
            attempt_failed(c, FW_ETLS, fw__tls_error(c->tls));
            return;
        }
        if (fw__conn_flush_tls(c) < 0) {
            attempt_failed(c, UV_EPIPE, "could not send the TLS handshake");
            return;
        }
        if (hs == FW__TLS_CONTINUE)
            return;
        c->tls_up = true;
        fw__conn_log(c, FW_LOG_DEBUG, "TLS established: %s %s", fw__tls_version(c->tls),
                     fw__tls_cipher(c->tls));
        start_startup(c);
        if (c->closing || c->state != FW__CONN_CONNECTING)
            return;
    }
    /* Drain every record OpenSSL holds: a record decrypted but not read would never raise
     * another socket event (the libpq "SSL records > 8 kB" hang). */
    for (;;) {
        long k = fw__tls_read(c->tls, c->plain, sizeof(c->plain));
        if (k == 0)
            break;
        if (k == FW__TLS_CLOSED) {
            if (c->state == FW__CONN_CONNECTING)
                attempt_failed(c, FW_ECLOSED, "server closed the connection unexpectedly");
            else
                c->state = FW__CONN_BAD;
            return;
        }
        if (k < 0) {
            if (c->state == FW__CONN_CONNECTING)
                attempt_failed(c, FW_ETLS, fw__tls_error(c->tls));
            else
                c->state = FW__CONN_BAD;
            return;
        }
        on_plaintext(c, c->plain, (size_t)k);
        if (c->closing || c->tls == NULL || c->state == FW__CONN_BAD)
            return;
        if (fw__conn_flush_tls(c) < 0)
            return;
    }
}

/* Messages on an established connection while idle: notices, parameter changes, and the
 * asynchronous FATAL a server sends before it closes (idle_session_timeout, shutdown). */
void fw__conn_idle_bytes(fw_conn_t *c, const uint8_t *p, size_t n)
{
    fw__pq_msg_t m;
    int rc = fw__pq_reader_feed(&c->reader, p, n);
    while (rc >= 0 && (rc = fw__pq_reader_next(&c->reader, &m)) == 1) {
        fw__conn_trace_in(c, &m);
        if (m.type == 'N') {
            fw__conn_notice(c, &m);
            if (c->closing)
                return;
        } else if (m.type == 'E') {
            /* Every field is kept (the idle path once kept only SQLSTATE and message). */
            (void)fw__servermsg_error(&m, FW_PHASE_READY, &c->err);
            c->state = FW__CONN_BAD;
            fw__conn_log(c, FW_LOG_WARNING, "the server ended the idle connection: %s",
                         c->err.message);
        } else if (m.type == 'A') {
            fw__conn_notification(c, &m);
            if (c->closing)
                return;
        } else if (m.type != 'S') {
            c->state = FW__CONN_BAD; /* nothing else may arrive without a query */
            c->err.code = FW_EPROTO_UNEXPECTED;
        }
    }
    if (rc < 0)
        c->state = FW__CONN_BAD;
}

static void on_plaintext(fw_conn_t *c, const uint8_t *p, size_t n)
{
    if (c->state == FW__CONN_CONNECTING)
        handle_startup(c, fw__startup_feed(c->su, p, n));
    else
        fw__conn_idle_bytes(c, p, n);
}

void fw__conn_readable(fw__sock_t *s)
{
    fw_conn_t *c = s->data;
    if (c->stream != NULL) {
        fw__stream_readable(c->stream);
        return;
    }
    for (;;) {
        /* Read all that is there, also while waiting for the one-byte answer to SSLRequest: a
         * byte queued behind the 'S' then arrives with it and is refused (CVE-2021-23222), and
         * a later one breaks the TLS handshake. */
        ssize_t n = fw__sock_recv(s, c->rbuf, sizeof(c->rbuf));
        if (n == UV_EAGAIN)
            return;
        if (n < 0) {
            const char *what =
                n == UV_EOF ? "server closed the connection unexpectedly" : uv_strerror((int)n);
            if (c->state == FW__CONN_CONNECTING) {
                attempt_failed(c, n == UV_EOF ? FW_ECLOSED : (int)n, what);
            } else {
                c->state = FW__CONN_BAD;
                fw__sock_read_stop(s);
                fw__conn_log(c, FW_LOG_WARNING, "the connection ended: %s", what);
            }
            return;
        }
        if (c->phase == FW_PHASE_SSL_RESPONSE)
            on_ssl_response(c, c->rbuf, (size_t)n);
        else if (c->tls != NULL)
            on_tls_bytes(c, c->rbuf, (size_t)n);
        else
            on_plaintext(c, c->rbuf, (size_t)n);
        if (c->closing || !c->sock_open || c->sock_closed_then != NULL || c->stream != NULL)
            return;
    }
}

void fw__conn_drain_tls_idle(fw_conn_t *c)
{
    if (c->tls != NULL && c->tls_up && c->state == FW__CONN_READY && fw__tls_has_buffered(c->tls))
        on_tls_bytes(c, NULL, 0);
}

/* ---- connecting ------------------------------------------------------------------------ */

void fw__conn_tls_config(const fw_conn_t *c, fw__tls_config_t *cfg)
{
    const fw__conninfo_host_t *h = fw__dial_host(&c->dial);
    fw__tls_config_init(cfg);
    cfg->mode = c->tls_mode;
    cfg->host = h->host[0] != '\0' ? h->host : h->hostaddr;
    cfg->rootcert = fw__conninfo_get(c->ci, "sslrootcert");
    cfg->crl = fw__conninfo_get(c->ci, "sslcrl");
    cfg->crldir = fw__conninfo_get(c->ci, "sslcrldir");
    cfg->cert = fw__conninfo_get(c->ci, "sslcert");
    cfg->key = fw__conninfo_get(c->ci, "sslkey");
    cfg->password = fw__conninfo_get(c->ci, "sslpassword");
    cfg->min_version = c->ci->ssl_min_version;
    cfg->max_version = c->ci->ssl_max_version;
    cfg->sni = c->ci->sslsni;
}

void fw__conn_tuning(const fw_conn_t *c, fw__sock_tuning_t *t)
{
    t->keepalives = c->ci->keepalives;
    t->keepalives_idle = c->keepalives_idle;
    t->keepalives_interval = c->keepalives_interval;
    t->keepalives_count = c->keepalives_count;
    t->tcp_user_timeout = c->ci->tcp_user_timeout;
}

static void on_connected(fw__sock_t *s, int status)
{
    fw_conn_t *c = s->data;
    if (status < 0) {
        attempt_failed(c, status, uv_strerror(status));
        return;
    }
    fw__sock_tuning_t t;
    fw__conn_tuning(c, &t);
    int rc = fw__sock_tune(s, &t);
    if (rc < 0) {
        attempt_failed(c, rc, uv_strerror(rc));
        return;
    }
    fw__sock_read_start(s, fw__conn_readable);
    /* No TLS over unix sockets (libpq: the kernel already protects them). */
    if (c->want_tls && !fw__dial_is_unix(&c->dial)) {
        char why[256];
        fw__tls_config_t cfg;
        fw__conn_tls_config(c, &cfg);
        rc = fw__tls_new(&c->tls, &cfg, why, sizeof(why));
        if (rc < 0) {
            connect_failed(c, rc == FW_ENOMEM ? rc : FW_ECONFIG, why);
            return;
        }
        c->tls_up = false;
        c->phase = FW_PHASE_SSL_RESPONSE;
        fw__pq_buf_reset(&c->out);
        c->out_untyped = true;
        rc = fw__pq_put_ssl_request(&c->out);
        if (rc == 0)
            rc = fw__conn_flush_out(c);
        if (rc < 0)
            attempt_failed(c, rc, fw_strerror(rc));
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
    free_startup(c);
    fw__pq_buf_reset(&c->out);
}

static void dial_on_host(fw__dialer_t *d)
{
    fw_conn_t *c = d->data;
    reset_attempt(c);
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
    fw__conn_log(c, FW_LOG_DEBUG, "connecting to %s%s%s (port %u)", fw__dial_address(d),
                 c->want_tls && !fw__dial_is_unix(d) ? ", asking for TLS" : "",
                 c->retried_plain ? ", second try" : "", (unsigned)fw__dial_host(d)->port_num);
    c->phase = FW_PHASE_CONNECT;
    c->tls_up = false;
    c->sock.data = c;
    /* Kept for the cancel connection, which must reach exactly this address. */
    if ((size_t)len <= sizeof(c->peer)) {
        memcpy(&c->peer, sa, (size_t)len);
        c->peer_len = len;
    }
    int rc = fw__sock_connect(&c->sock, c->loop, sa, len, on_connected);
    if (rc < 0) {
        attempt_failed(c, rc, uv_strerror(rc));
        return;
    }
    c->sock.data = c;
    c->sock_open = true;
    c->pending++;
}

/* A resolver failure or an unusable unix path: noted; the dialer moves on by itself. */
static void dial_on_error(fw__dialer_t *d, int code, const char *what)
{
    note_attempt(d->data, code, what);
}

static void dial_on_exhausted(fw__dialer_t *d)
{
    fw_conn_t *c = d->data;
    reset_attempt(c);
    finish(c, c->err.code != 0 ? c->err.code : FW_ECLOSED);
}

/* The dialer's lookup ended after fw_conn_close: perhaps the last thing the memory waited for. */
static void dial_on_released(fw__dialer_t *d)
{
    maybe_free(d->data);
}

static const fw__dial_cbs_t dial_cbs = {dial_on_host,  dial_on_lookup,    dial_on_address,
                                        dial_on_error, dial_on_exhausted, dial_on_released};

/* ---- public ---------------------------------------------------------------------------- */

void fw_conn_opts_init(fw_conn_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->use_environment = true;
    o->scram_max_iterations = FW__SCRAM_MAX_ITERATIONS_DEFAULT;
}

static const char *empty_getenv(void *ud, const char *name)
{
    (void)ud;
    (void)name;
    return NULL;
}

int fw_conn_new(fw_conn_t **out, uv_loop_t *loop, const fw_conn_opts_t *opts, fw_error_t *err)
{
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    if (out == NULL || loop == NULL)
        return FW_EINVAL;
    *out = NULL;
    fw_conn_t *c = fw__calloc(1, sizeof(*c));
    if (c == NULL)
        return FW_ENOMEM;
    if (opts != NULL)
        c->opts = *opts;
    else
        fw_conn_opts_init(&c->opts);
    c->opts.conninfo = NULL; /* borrowed: parsed below, never kept */
    c->loop = loop;
    fw__pq_buf_init(&c->out, &fw__pq_alloc);
    fw__pq_reader_init(&c->reader, NULL, &fw__pq_alloc);

    char msg[512] = "";
    fw__conninfo_sysenv_t sys;
    fw__conninfo_env_t none = {empty_getenv, NULL, NULL, NULL};
    const fw__conninfo_env_t *env = &none;
    if (opts == NULL || opts->use_environment) {
        fw__conninfo_env_system(&sys);
        env = &sys.env;
    }
    const char *str = opts != NULL && opts->conninfo != NULL ? opts->conninfo : "";
    int rc = fw__conninfo_from_string(str, env, &c->ci, msg, sizeof(msg));
    if (rc == 0 && c->opts.max_message > FW__PQ_PROTOCOL_MAX) {
        rc = FW_ECONFIG;
        snprintf(msg, sizeof(msg), "max_message %zu exceeds the protocol's limit of %zu bytes",
                 c->opts.max_message, (size_t)FW__PQ_PROTOCOL_MAX);
    }
    if (rc == 0 && (opts == NULL || opts->use_environment)) {
        char warn[256] = "";
        rc = fw__conninfo_apply_passfile(c->ci, warn, sizeof(warn));
        /* A passfile with loose permissions is ignored, as in libpq; the warning is kept. */
        snprintf(c->passfile_warning, sizeof(c->passfile_warning), "%s", warn);
    }
    if (rc < 0) {
        if (err != NULL) {
            err->code = rc == FW_ENOMEM ? rc : FW_ECONFIG;
            err->phase = FW_PHASE_CONFIG;
            snprintf(err->message, sizeof(err->message), "%s", msg);
        }
        fw__conninfo_free(c->ci);
        fw__pq_buf_free(&c->out);
        fw__pq_reader_free(&c->reader);
        fw__free(c);
        return rc == FW_ENOMEM ? rc : FW_ECONFIG;
    }
    switch (c->ci->sslmode) {
    case FW__SSLMODE_DISABLE:
        c->tls_mode = FW__TLS_MODE_DISABLE;
        break;
    case FW__SSLMODE_ALLOW:
        c->tls_mode = FW__TLS_MODE_ALLOW;
        break;
    case FW__SSLMODE_PREFER:
        c->tls_mode = FW__TLS_MODE_PREFER;
        break;
    case FW__SSLMODE_REQUIRE:
        c->tls_mode = FW__TLS_MODE_REQUIRE;
        break;
    case FW__SSLMODE_VERIFY_CA:
        c->tls_mode = FW__TLS_MODE_VERIFY_CA;
        break;
    case FW__SSLMODE_VERIFY_FULL:
        c->tls_mode = FW__TLS_MODE_VERIFY_FULL;
        break;
    }
    /* Short keepalive defaults (RELIABILITY decision 9): a dead peer is noticed in about a
     * minute instead of the kernel's two hours. */
    c->keepalives_idle = c->ci->keepalives_idle >= 0 ? c->ci->keepalives_idle : 30;
    c->keepalives_interval = c->ci->keepalives_interval >= 0 ? c->ci->keepalives_interval : 10;
    c->keepalives_count = c->ci->keepalives_count >= 0 ? c->ci->keepalives_count : 3;
    fw__dial_init(&c->dial, loop, c->ci, &dial_cbs, c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_timer_init(loop, &c->idle_timer);
    c->idle_timer.data = c;
    c->state = FW__CONN_NEW;
    *out = c;
    return 0;
}

int fw_conn_connect(fw_conn_t *c, fw_connect_cb cb, void *ud)
{
    if (c == NULL || cb == NULL)
        return FW_EINVAL;
    if (c->state != FW__CONN_NEW || c->closing)
        return FW_ESTATE;
    c->state = FW__CONN_CONNECTING;
    c->connect_cb = cb;
    c->connect_ud = ud;
    c->t_start = uv_hrtime();
    if (c->passfile_warning[0] != '\0')
        fw__conn_log(c, FW_LOG_WARNING, "%s", c->passfile_warning);
    /* Start from the loop, so the callback can never run inside this call. */
    c->kick.data = c;
    uv_idle_init(c->loop, &c->kick);
    c->kick_open = true;
    uv_idle_start(&c->kick, fw__conn_kick);
    return 0;
}

/* Whether a query can start on c now (what fw_stream_start checks on the loop). */
static int idle_status(const fw_conn_t *c)
{
    if (c->closing)
        return FW_ECLOSED;
    if (c->state != FW__CONN_READY)
        return FW_ESTATE;
    if (c->stream != NULL || c->cancel_stream != NULL)
        return 1; /* not yet */
    return 0;
}

static void on_idle_timer(uv_timer_t *t)
{
    fw_conn_t *c = t->data;
    if (c->idle_cb == NULL)
        return;
    int st = idle_status(c);
    if (st == 1)
        return; /* still busy: the end of the query or of its cancel checks again */
    fw_idle_cb cb = c->idle_cb;
    c->idle_cb = NULL;
    cb(c, st, c->idle_ud);
}

void fw__conn_idle_check(fw_conn_t *c)
{
    if (c->idle_cb != NULL && !c->closing)
        uv_timer_start(&c->idle_timer, on_idle_timer, 0, 0);
}

int fw_conn_when_idle(fw_conn_t *c, fw_idle_cb cb, void *ud)
{
    if (c == NULL || cb == NULL || c->runtime_link != NULL)
        return FW_EINVAL;
    if (c->idle_cb != NULL)
        return FW_EBUSY;
    if (c->closing)
        return FW_ESTATE; /* its handles are closing: nothing could call back */
    c->idle_cb = cb;
    c->idle_ud = ud;
    uv_timer_start(&c->idle_timer, on_idle_timer, 0, 0);
    return 0;
}

void fw__conn_kick(uv_idle_t *h)
{
    fw_conn_t *c = h->data;
    uv_idle_stop(h);
    if (!c->closing)
        fw__dial_start(&c->dial);
}

void fw__conn_notice(void *ud, const fw__pq_msg_t *m)
{
    fw_conn_t *c = ud;
    fw__notice_buf_t buf;
    fw_notice_t n;
    if (fw__servermsg_notice(m, &buf, &n) < 0)
        return;
    fw__lm_notice(n.severity);
    if (c->opts.notice_cb != NULL)
        c->opts.notice_cb(c->opts.notice_ud, &n);
}

void fw__conn_notification(fw_conn_t *c, const fw__pq_msg_t *m)
{
    if (c->opts.notification_cb == NULL)
        return;
    fw__notify_buf_t buf;
    fw__servermsg_notify(m, &buf);
    c->opts.notification_cb(c->opts.notification_ud, buf.pid, buf.channel, buf.payload);
}

void fw_conn_close(fw_conn_t *c, fw_close_cb cb, void *ud)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    c->close_cb = cb;
    c->close_ud = ud;
    if (c->lm_active) {
        c->lm_active = false;
        fw__lm_conn_closed();
    }
    if (c->stream != NULL)
        fw__stream_conn_closing(c->stream);
    if (c->stream != NULL)
        fw__stream_conn_gone(c->stream, FW_ECLOSED,
                             "the connection was closed while the query was running");
    if (c->cancel_stream != NULL)
        fw__stream_cancel_conn_closing(c->cancel_stream);
    if (c->state == FW__CONN_READY && c->sock_open) {
        /* Terminate, best effort: the server ends the backend at once instead of noticing the
         * closed socket later. */
        fw__pq_buf_reset(&c->out);
        if (fw__pq_put_terminate(&c->out) == 0)
            (void)fw__conn_flush_out(c);
        if (c->tls != NULL && c->tls_up && fw__tls_shutdown(c->tls) == 0)
            (void)fw__conn_flush_tls(c);
    }
    if (c->connect_cb != NULL) {
        fw_connect_cb ccb = c->connect_cb;
        c->connect_cb = NULL;
        c->err.code = FW_ECLOSED;
        c->err.phase = c->phase;
        snprintf(c->err.message, sizeof(c->err.message),
                 "the connection was closed during the %s phase", fw_phase_name(c->phase));
        ccb(c, FW_ECLOSED, &c->err, c->connect_ud);
    }
    c->state = FW__CONN_CLOSED;
    c->phase = FW_PHASE_CLOSED;
    free_startup(c);
    fw__dial_close(&c->dial);
    if (c->sock_open) {
        c->sock_closed_then = NULL;
        fw__sock_close(&c->sock, on_sock_closed);
    }
    if (c->idle_cb != NULL) {
        fw_idle_cb icb = c->idle_cb;
        c->idle_cb = NULL;
        icb(c, FW_ECLOSED, c->idle_ud);
    }
    c->pending++;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    c->pending++;
    uv_close((uv_handle_t *)&c->idle_timer, on_handle_closed);
    if (c->kick_open) {
        c->pending++;
        c->kick_open = false;
        uv_close((uv_handle_t *)&c->kick, on_handle_closed);
    }
}

/* protocol_version took one reserved pointer's place: the struct must keep its size, or a
 * program built against the older header would be written past its end. */
_Static_assert(sizeof(fw_conn_info_t) ==
                   offsetof(fw_conn_info_t, protocol_version) + 8 * sizeof(void *),
               "fw_conn_info_t changed size");

int fw_conn_info(const fw_conn_t *c, fw_conn_info_t *info)
{
    static const char *const methods[] = {"trust", "password", "md5", "SCRAM-SHA-256",
                                          "SCRAM-SHA-256-PLUS"};
    if (c == NULL || info == NULL)
        return FW_EINVAL;
    memset(info, 0, sizeof(*info));
    if (c->state != FW__CONN_READY && c->state != FW__CONN_BAD)
        return FW_ESTATE;
    if (c->protocol == 0)
        return FW_ESTATE; /* never reached ReadyForQuery */
    const fw__conninfo_host_t *h = fw__dial_host(&c->dial);
    info->server_version = c->server_version_num;
    info->server_version_str = c->server_version;
    info->user = fw__conninfo_get(c->ci, "user");
    info->database = fw__conninfo_get(c->ci, "dbname");
    info->host = h->host[0] != '\0' ? h->host : h->hostaddr;
    info->address = fw__dial_address(&c->dial);
    info->port = h->port_num;
    info->transport = fw__dial_is_unix(&c->dial) ? "unix" : "tcp";
    info->tls_version = c->tls_version[0] ? c->tls_version : NULL;
    info->tls_cipher = c->tls_cipher[0] ? c->tls_cipher : NULL;
    info->auth_method = methods[c->method];
    info->channel_binding = c->method == FW__AUTH_SCRAM_PLUS;
    info->backend_pid = c->backend_key.pid;
    info->connect_seconds = c->connect_seconds;
    info->protocol_version =
        (int)(FW__PQ_VERSION_MAJOR(c->protocol) * 10000 + FW__PQ_VERSION_MINOR(c->protocol));
    return 0;
}

const char *fw_conn_parameter(const fw_conn_t *c, const char *name)
{
    if (c == NULL || name == NULL)
        return NULL;
    return fw__params_get(&c->params, name);
}

void fw__wipe_conn_secrets(fw_conn_t *c)
{
    /* rbuf and plain hold what the server sent (never a secret of ours); what we sent went
     * through `out`, which fw__pq_buf_free zeroes. */
    fw__wipe(c->cb_data, sizeof(c->cb_data));
    fw__wipe(&c->backend_key, sizeof(c->backend_key));
}
