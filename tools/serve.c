/* SPDX-License-Identifier: MIT */
/*
 * fwire serve: the entry point, the loop and the graceful stop (serve.h lists the files).
 *
 * One libuv loop runs everything: the listener, every client, the PostgreSQL pool (fwire in
 * embedded mode), one tick timer (progress, batch linger, deadlines) and the signal handlers.
 * SIGINT (and SIGTERM with --drain-seconds 0, the default) stops: no new work, every stream
 * cancelled, every WebSocket closed with 1001 and, once the streams have ended (or after
 * STOP_GRACE_MS), the pool closed; the loop then runs out of handles and the process exits 0.
 * SIGTERM with --drain-seconds N drains first: /readyz answers 503 at once, new streams and
 * WebSockets are refused, idle WebSockets are closed with 1001, running streams may finish for
 * N seconds, and then the stop above cancels whatever is left. A signal during a drain stops at
 * once; a signal during a stop exits at once.
 */
#include "cli.h"
#include "serve.h"
#include "serve_cli.h"

#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long a graceful stop waits for cancels to complete and output to drain. The library's
 * own cancel timeout is 5 s, so this leaves it time to finish in the common case. */
#define STOP_GRACE_MS 6000
/* The tick: batch linger and deadline resolution. Progress messages are due every
 * --progress-ms and so arrive within one tick of it. */
#define TICK_MS 25
/* After the grace period the pool is closed; a connection whose drain fwire has not finished
 * by then (its cancel timeout is 5 s) holds the pool open. This long after the grace period the
 * loop is stopped whatever is left: an exit that hangs is worse than one that leaks a socket
 * the kernel closes anyway. */
#define POOL_CLOSE_MAX_MS 8000

uint64_t gw_now_ms(const gw_server_t *srv)
{
    (void)srv;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

double gw_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void gw_log(const gw_server_t *srv, const char *fmt, ...)
{
    if (!srv->cfg.verbose)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "fwire serve: %s\n", line);
}

static void begin_stop(gw_server_t *srv, const char *why);

static void on_tick(uv_timer_t *t)
{
    gw_server_t *srv = t->data;
    uint64_t now = gw_now_ms(srv);
    gw_http_tick(srv, now);
    gw_streams_tick(srv, now);
    gw_streams_reap(srv);
    gw_pool_tick(srv, now);
    if (srv->draining && !srv->stopping &&
        (srv->nstreams == 0 || now >= srv->drain_deadline_ms)) {
        if (srv->nstreams > 0)
            fprintf(stderr, "fwire serve: drain: --drain-seconds passed, %u streams left\n",
                    srv->nstreams);
        begin_stop(srv, "drain over");
    }
    if (srv->stopping) {
        if (now >= srv->stop_deadline_ms) {
            /* out of patience: close whatever is left */
            while (srv->clients != NULL)
                gw_client_close(srv->clients);
            gw_pool_close(srv);
        }
        if (now >= srv->stop_deadline_ms + POOL_CLOSE_MAX_MS && !gw_pool_closed(srv)) {
            fprintf(stderr, "fwire serve: the pool did not close within %d ms of the grace "
                            "period, exiting anyway\n",
                    POOL_CLOSE_MAX_MS);
            uv_stop(srv->loop);
            return;
        }
        gw_maybe_finish_stop(srv);
    }
}

void gw_maybe_finish_stop(gw_server_t *srv)
{
    if (!srv->stopping)
        return;
    if (srv->nstreams == 0 && !srv->pool_closed)
        gw_pool_close(srv);
    if (srv->clients == NULL && srv->nstreams == 0 && gw_pool_closed(srv)) {
        if (!uv_is_closing((uv_handle_t *)&srv->tick))
            uv_close((uv_handle_t *)&srv->tick, NULL);
        if (!uv_is_closing((uv_handle_t *)&srv->sigint)) {
            uv_close((uv_handle_t *)&srv->sigint, NULL);
            uv_close((uv_handle_t *)&srv->sigterm, NULL);
            uv_close((uv_handle_t *)&srv->sighup, NULL);
        }
    }
}

/* SIGHUP: the certificate and key again (renewed files); a failure keeps the old ones. */
static void on_sighup(uv_signal_t *h, int sig)
{
    (void)sig;
    gw_server_t *srv = h->data;
    if (srv->cfg.tls_cert == NULL)
        return;
    if (gw_tls_load(srv) == 0)
        fprintf(stderr, "fwire serve: SIGHUP: TLS certificate reloaded from %s\n",
                srv->cfg.tls_cert);
    else
        fprintf(stderr, "fwire serve: SIGHUP: TLS reload failed, the previous certificate "
                        "stays\n");
}

/* The stop: no new work, every stream cancelled (query_error shutdown), every WebSocket closed
 * with 1001; the pool is closed once the streams have ended (gw_maybe_finish_stop). */
static void begin_stop(gw_server_t *srv, const char *why)
{
    fprintf(stderr, "fwire serve: %s, stopping (cancelling %u streams)\n", why, srv->nstreams);
    srv->stopping = true;
    srv->stop_deadline_ms = gw_now_ms(srv) + STOP_GRACE_MS;
    gw_http_stop_listening(srv);
    gw_streams_shutdown(srv);
    /* WebSockets get a close frame; plain HTTP clients are closed once their output is out */
    for (gw_client_t *c = srv->clients, *next; c != NULL; c = next) {
        next = c->next;
        if (c->mode == GW_CLIENT_WS)
            gw_ws_close(c, 1001, "server shutting down");
        else if (c->mode == GW_CLIENT_HTTP)
            gw_client_close(c);
        else
            gw_client_close_when_flushed(c);
    }
    gw_maybe_finish_stop(srv);
}

void gw_drain_client_done(gw_client_t *c)
{
    if (!c->closed && c->mode == GW_CLIENT_WS)
        gw_ws_close(c, 1001, "server shutting down");
}

/* The drain: /readyz is 503 from now on (a balancer takes this gateway out), new streams are
 * refused with `shutdown`, WebSockets without a running stream are closed with 1001 (their
 * clients reconnect, through the balancer, to another gateway); the listener stays open so
 * probes get their 503 rather than a refused connection. */
static void begin_drain(gw_server_t *srv)
{
    fprintf(stderr, "fwire serve: SIGTERM, draining (%u streams running, at most %u s)\n",
            srv->nstreams, srv->cfg.drain_seconds);
    srv->draining = true;
    srv->drain_deadline_ms = gw_now_ms(srv) + srv->cfg.drain_seconds * 1000ull;
    for (gw_client_t *c = srv->clients, *next; c != NULL; c = next) {
        next = c->next;
        if (c->mode == GW_CLIENT_WS && c->nstreams == 0)
            gw_ws_close(c, 1001, "server shutting down");
    }
}

static void on_signal(uv_signal_t *h, int sig)
{
    gw_server_t *srv = h->data;
    if (srv->stopping) {
        fprintf(stderr, "fwire serve: second signal, exiting now\n");
        _exit(128 + sig);
    }
    if (sig == SIGTERM && srv->cfg.drain_seconds > 0 && !srv->draining) {
        begin_drain(srv);
        return;
    }
    begin_stop(srv, sig == SIGINT ? "SIGINT" : "SIGTERM");
}

int cli_serve(int argc, char **argv)
{
    gw_server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        fputs("fwire serve: out of memory\n", stderr);
        return EXIT_USAGE;
    }
    int code = gw_config_load(&srv->cfg, argc, argv);
    if (code >= 0) {
        gw_config_free(&srv->cfg);
        free(srv);
        return code;
    }
    gw_config_t *cfg = &srv->cfg;
    if (cfg->token != NULL) {
        /* compared as SHA-256 digests with CRYPTO_memcmp: constant time, length included */
        unsigned int n = 0;
        EVP_Digest(cfg->token, strlen(cfg->token), srv->token_hash, &n, EVP_sha256(), NULL);
    }
    /* A client that goes away while we write must be an EPIPE, not the end of the process. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc < 0) {
        fprintf(stderr, "fwire serve: %s\n", uv_strerror(rc));
        gw_config_free(cfg);
        free(srv);
        return EXIT_USAGE;
    }
    srv->loop = &loop;
    code = EXIT_OK;
    /* the connection options are checked now (fw_pool_new parses them), so a bad --dsn fails
     * here, not at a query */
    char why[300];
    if ((rc = gw_pool_init(srv, why, sizeof(why))) < 0) {
        fprintf(stderr, "fwire serve: invalid connection options: %s\n", why);
        code = EXIT_USAGE;
        goto out;
    }
    if (gw_tls_load(srv) < 0) {
        code = EXIT_USAGE;
        goto out;
    }
    if ((rc = gw_http_listen(srv)) < 0) {
        fprintf(stderr, "fwire serve: cannot listen on %s:%d: %s\n", cfg->listen_host,
                cfg->listen_port, uv_strerror(rc));
        code = EXIT_USAGE;
        goto out;
    }
    uv_timer_init(&loop, &srv->tick);
    srv->tick.data = srv;
    uv_timer_start(&srv->tick, on_tick, TICK_MS, TICK_MS);
    uv_signal_init(&loop, &srv->sigint);
    uv_signal_init(&loop, &srv->sigterm);
    srv->sigint.data = srv->sigterm.data = srv;
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_init(&loop, &srv->sighup);
    srv->sighup.data = srv;
    uv_signal_start(&srv->sighup, on_sighup, SIGHUP);
    fprintf(stderr, "fwire serve: listening on %s://%s%s%s:%d/ (%zu entities allowed%s%s)\n",
            srv->tls_ctx != NULL ? "https" : "http", strchr(cfg->listen_host, ':') ? "[" : "",
            cfg->listen_host, strchr(cfg->listen_host, ':') ? "]" : "", cfg->listen_port,
            cfg->nallow, cfg->token != NULL ? ", token required" : "",
            cfg->tls_client_ca != NULL ? ", client certificate required" : "");
    fflush(stderr);
    uv_run(&loop, UV_RUN_DEFAULT);
    fprintf(stderr, "fwire serve: stopped\n");
out:
    if (code != EXIT_OK) {
        /* close whatever was opened before the failure */
        gw_http_stop_listening(srv);
        if (srv->fwpool != NULL)
            gw_pool_close(srv);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    gw_streams_reap(srv);
    rc = uv_loop_close(&loop);
    if (rc != 0)
        fprintf(stderr, "fwire serve: warning: handles left open at exit\n");
    gw_tls_unload(srv);
    gw_config_free(cfg);
    free(srv);
    return code;
}
