/* SPDX-License-Identifier: MIT */
/*
 * A connection once it is made, and the public embedded-mode API: create, connect (the attempt
 * itself is conn_attempt.c), the idle reader (notices, notifications, an asynchronous FATAL
 * between queries), sending, closing, and the facts fw_conn_info reports. Bytes go through the
 * channel (channel.c). A running query holds the connection through conn->stream and its
 * hooks (conn.h); this file never calls into the stream files. Loop thread only.
 *
 * Lifetime: user callbacks may call fw_conn_close(); every path that calls one out checks
 * `closing` afterwards and touches nothing else. Memory is released only after the last libuv
 * handle and the last thread-pool job have finished (STYLE 7 and 9).
 */
#include "alloc.h"
#include "conn.h"
#include "fw_util.h"
#include "lmetrics.h"
#include "servermsg.h"

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
    case FW_PHASE_ROUTE:
        return "target_session_attrs check";
    }
    return "unknown";
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

/* ---- handle bookkeeping ---------------------------------------------------------------- */

/* Releases this attempt's startup state, unless a derivation job still works on it (then the
 * job frees it when it ends). */
void fw__conn_free_startup(fw_conn_t *c)
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

void fw__conn_maybe_free(fw_conn_t *c)
{
    if (!c->closing || c->pending > 0 || fw__dial_pending(&c->dial) > 0)
        return;
    fw_close_cb cb = c->close_cb;
    void *ud = c->close_ud;
    if (cb != NULL)
        cb(c, ud);
    fw__conn_free_startup(c);
    fw__pq_reader_free(&c->reader);
    fw__pq_buf_free(&c->out);
    fw__chan_drop_tls(&c->chan);
    fw__dial_free(&c->dial);
    fw__conninfo_free(c->ci);
    fw__wipe_conn_secrets(c);
    fw__free(c->rbuf);
    fw__free(c->plain);
    fw__free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    fw_conn_t *c = h->data;
    c->pending--;
    fw__conn_maybe_free(c);
}

static void on_chan_closed(fw__chan_t *ch)
{
    fw_conn_t *c = ch->data;
    c->pending--;
    if (c->sock_closed_then != NULL) {
        void (*then)(fw__dialer_t *) = c->sock_closed_then;
        c->sock_closed_then = NULL;
        if (!c->closing)
            then(&c->dial);
    }
    fw__conn_maybe_free(c);
}

void fw__conn_drop_socket(fw_conn_t *c, void (*then)(fw__dialer_t *))
{
    if (c->chan.open) {
        c->sock_closed_then = then;
        fw__chan_close(&c->chan, on_chan_closed);
    } else {
        fw__chan_drop_tls(&c->chan);
        if (then != NULL && !c->closing)
            then(&c->dial);
    }
}

void fw__conn_abort(fw_conn_t *c)
{
    if (c->closing)
        return;
    c->state = FW__CONN_BAD;
    fw__conn_drop_socket(c, NULL);
}

/* ---- writing --------------------------------------------------------------------------- */

static void on_write_error(fw__chan_t *ch, int err)
{
    fw_conn_t *c = ch->data;
    if (c->state == FW__CONN_CONNECTING) {
        fw__conn_attempt_failed(c, err, uv_strerror(err));
    } else {
        c->state = FW__CONN_BAD;
        if (c->stream != NULL)
            c->hooks->failed(c->stream, err, "could not send to the server");
    }
}

int fw__conn_flush_out(fw_conn_t *c)
{
    int rc = 0;
    if (c->out.err < 0)
        return c->out.err;
    if (c->out.len > 0) {
        if (c->opts.trace_cb != NULL)
            trace_out(c);
        c->out_untyped = false;
        rc = fw__chan_write(&c->chan, c->out.data, c->out.len);
        fw__pq_buf_reset(&c->out);
    }
    return rc;
}

/* ---- the idle reader ------------------------------------------------------------------- */

/* Messages on an established connection while idle: notices, parameter changes, and the
 * asynchronous FATAL a server sends before it closes (idle_session_timeout, shutdown). */
static void idle_bytes(fw_conn_t *c, const uint8_t *p, size_t n)
{
    fw__pq_msg_t m;
    int rc = fw__pq_reader_feed(&c->reader, p, n);
    while (rc >= 0 && (rc = fw__pq_reader_next(&c->reader, &m)) == 1) {
        fw__conn_trace_in(c, &m);
        if (c->exec_cb != NULL && fw__conn_exec_msg(c, &m))
            continue; /* the reply to the pool's query (conn_exec.c) */
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
        } else if (m.type == 'S') {
            fw__conn_param(c, &m);
        } else {
            c->state = FW__CONN_BAD; /* nothing else may arrive without a query */
            c->err.code = FW_EPROTO_UNEXPECTED;
        }
    }
    if (rc < 0)
        c->state = FW__CONN_BAD;
    if (c->state != FW__CONN_READY)
        fw__conn_exec_broken(c);
}

static void idle_readable(fw__chan_t *ch)
{
    fw_conn_t *c = ch->reader;
    while (c->state == FW__CONN_READY && !c->closing && ch->on_read == idle_readable) {
        ssize_t n = fw__chan_read(ch, c->plain, FW__CONN_BUF);
        if (n == UV_EAGAIN)
            return;
        if (n < 0) {
            const char *what = n == UV_EOF    ? "server closed the connection unexpectedly"
                               : n == FW_ETLS ? fw__chan_tls_error(ch)
                                              : fw_strerror((int)n);
            c->state = FW__CONN_BAD;
            fw__chan_read_stop(ch);
            fw__conn_log(c, FW_LOG_WARNING, "the connection ended: %s", what);
            fw__conn_exec_broken(c);
            return;
        }
        idle_bytes(c, c->plain, (size_t)n);
    }
}

void fw__conn_resume_idle(fw_conn_t *c, const uint8_t *rest, size_t rest_len)
{
    if (c->state != FW__CONN_READY || c->closing)
        return;
    fw__chan_read_start(&c->chan, idle_readable, c);
    if (rest_len > 0)
        idle_bytes(c, rest, rest_len);
    /* Plaintext already inside OpenSSL raises no socket event: read it now. */
    if (fw__chan_has_buffered(&c->chan))
        idle_readable(&c->chan);
}

size_t fw__conn_take_idle_bytes(fw_conn_t *c, uint8_t *dst, size_t cap)
{
    fw__pq_reader_t *r = &c->reader;
    size_t n = 0;
    if (r->spill_len > 0 && r->spill_len <= cap) {
        memcpy(dst, r->spill, r->spill_len);
        n = r->spill_len;
    }
    fw__pq_reader_free(r);
    fw__pq_reader_init(r, NULL, &fw__alloc);
    return n;
}

/* ---- for the cancel connection --------------------------------------------------------- */

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

void fw__conn_cancel_target(const fw_conn_t *c, fw__cancel_target_t *t, fw__tls_config_t *cfg)
{
    memset(t, 0, sizeof(*t));
    t->loop = c->loop;
    t->peer = (const struct sockaddr *)&c->peer;
    t->peer_len = c->peer_len;
    t->tcp = !fw__dial_is_unix(&c->dial);
    fw__conn_tuning(c, &t->tuning);
    if (c->chan.tls != NULL) {
        fw__conn_tls_config(c, cfg);
        t->tls = cfg;
    }
    t->key = c->backend_key;
}

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
    c->rbuf = fw__malloc(FW__CONN_BUF);
    c->plain = fw__malloc(FW__CONN_BUF);
    if (c->rbuf == NULL || c->plain == NULL) {
        fw__free(c->rbuf);
        fw__free(c->plain);
        fw__free(c);
        return FW_ENOMEM;
    }
    if (opts != NULL)
        c->opts = *opts;
    else
        fw_conn_opts_init(&c->opts);
    c->opts.conninfo = NULL; /* borrowed: parsed below, never kept */
    c->loop = loop;
    fw__chan_init(&c->chan, c->rbuf, FW__CONN_BUF, c, on_write_error);
    fw__pq_buf_init(&c->out, &fw__alloc);
    fw__pq_reader_init(&c->reader, NULL, &fw__alloc);

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
    /* Kept for the other connections of a parallel stream (lib/parallel.c). */
    if (rc == 0 && (c->conninfo_copy = fw__malloc(strlen(str) + 1)) == NULL)
        rc = FW_ENOMEM;
    else if (rc == 0)
        memcpy(c->conninfo_copy, str, strlen(str) + 1);
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
        fw__wipe_conn_secrets(c);
        fw__free(c->rbuf);
        fw__free(c->plain);
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
    fw__dial_init(&c->dial, loop, c->ci, &fw__conn_dial_cbs, c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_timer_init(loop, &c->idle_timer);
    c->idle_timer.data = c;
    c->state = FW__CONN_NEW;
    *out = c;
    return 0;
}

int fw__conn_pin_host(fw_conn_t *c, size_t i)
{
    if (c->state != FW__CONN_NEW || i >= c->ci->nhosts)
        return FW_EINVAL;
    fw__dial_pin(&c->dial, i);
    c->ci->target_session_attrs = FW__TSA_ANY; /* the pool judges the server itself */
    return 0;
}

bool fw__conn_usable(const fw_conn_t *c)
{
    return c->state == FW__CONN_READY && !c->closing && c->stream == NULL &&
           c->cancel_stream == NULL && c->exec_cb == NULL;
}

size_t fw__conn_nhosts(const fw_conn_t *c)
{
    return c->ci->nhosts;
}

const fw__conninfo_host_t *fw__conn_host(const fw_conn_t *c, size_t i)
{
    return i < c->ci->nhosts ? &c->ci->hosts[i] : NULL;
}

int fw_conn_connect(fw_conn_t *c, fw_connect_cb cb, void *ud)
{
    if (c == NULL || cb == NULL)
        return FW_EINVAL;
    if (c->state != FW__CONN_NEW || c->closing)
        return FW_ESTATE;
    c->state = FW__CONN_CONNECTING;
    if (c->ci->load_balance_hosts == FW__LB_RANDOM && !c->dial.pinned)
        fw__dial_shuffle_hosts(c->ci->hosts, c->ci->nhosts);
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
    if (c->stream != NULL || c->cancel_stream != NULL || c->exec_cb != NULL)
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
    return fw__conn_when_idle(c, cb, ud);
}

int fw__conn_when_idle(fw_conn_t *c, fw_idle_cb cb, void *ud)
{
    if (c == NULL || cb == NULL)
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
    /* The query holding the connection applies what it has pending (a cancel asked for but not
     * yet sent goes out now) and ends; one waiting for its cancel connection ends too. */
    if (c->stream != NULL)
        c->hooks->closing(c->stream);
    if (c->cancel_stream != NULL)
        c->hooks->cancel_closing(c->cancel_stream);
    if (c->state == FW__CONN_READY && c->chan.open) {
        /* Terminate, best effort: the server ends the backend at once instead of noticing the
         * closed socket later. */
        fw__pq_buf_reset(&c->out);
        if (fw__pq_put_terminate(&c->out) == 0)
            (void)fw__conn_flush_out(c);
        fw__chan_shutdown(&c->chan);
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
    fw__conn_free_startup(c);
    fw__dial_close(&c->dial);
    c->sock_closed_then = NULL;
    fw__conn_drop_socket(c, NULL);
    fw__conn_exec_closing(c);
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
_Static_assert(sizeof(fw_conn_info_t) == offsetof(fw_conn_info_t, role) + 8 * sizeof(void *),
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
    info->role = c->role_at_connect;
    info->read_only = c->read_only_at_connect;
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
    if (c->conninfo_copy != NULL) {
        fw__wipe(c->conninfo_copy, strlen(c->conninfo_copy)); /* may hold a password */
        fw__free(c->conninfo_copy);
        c->conninfo_copy = NULL;
    }
}
