/* SPDX-License-Identifier: MIT */
/*
 * The fraiseql_* metric set in one process-wide registry (lmetrics.h, docs/METRICS.md), and the
 * public fw_metrics_* calls.
 *
 * The registry is made on first use (pthread_once) with libc's allocator and lives until the
 * process exits: a recording thread may hold a series handle at any moment, so there is no safe
 * point to free it (it stays reachable through `g`, which is what leak checkers accept).
 */
#include "lmetrics.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the families ---------------------------------------------------------------------- */

static const double SECONDS[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                 0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
                                 5,      10,      30,     60,    300};
static const double OCCUPANCY[] = {0,   1,    4,    16,   64,   128,   256,   512,
                                   1024, 2048, 4096, 8192, 16384, 32768, 65536};
/* Powers of two only: fw__stream_lm_chunk computes the bucket with one instruction. */
static const double CHUNK_ROWS[] = {1,   2,   4,    8,    16,   32,   64,   128,
                                    256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536};
_Static_assert(sizeof(CHUNK_ROWS) / sizeof(CHUNK_ROWS[0]) == FW__LM_CHUNK_ROWS_BOUNDS,
               "fw__stream_lm_chunk indexes these buckets directly");
static const double QUERY_ROWS[] = {0, 1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
static const double QUERY_BYTES[] = {1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11};

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define ENT (FW__LM_MAX_ENTITIES + 1) /* entity label values, "other" included */

enum {
    F_QUERIES, F_COMPLETED, F_ERRORS, F_ROWS_PROCESSED, F_ROWS_FILTERED, F_ROWS_DELIVERED,
    F_BYTES_RECEIVED, F_AUTH, F_AUTH_OK, F_AUTH_FAILED, F_CONN_OPENED, F_CONN_FAILED,
    F_READ_STOPS, F_MEM_LIMIT, F_ADJUST, F_PAUSED, F_RESUMED, F_PAUSE_TIMEOUTS, F_CANCELS,
    F_PROTO_ERRORS, F_NOTICES,
    F_CONN_ACTIVE, F_STREAMS_ACTIVE, F_ROWS_BUFFERED, F_BYTES_BUFFERED, F_CHUNK_SIZE,
    F_AUTH_SECONDS, F_STARTUP_SECONDS, F_FIRST_ROW_SECONDS, F_QUERY_SECONDS, F_QUERY_ROWS,
    F_QUERY_BYTES, F_CHUNK_ROWS, F_CHUNK_SECONDS, F_OCCUPANCY, F_READ_STOP_SECONDS,
    F_PAUSE_SECONDS, F_CANCEL_SECONDS, F_FILTER_SECONDS,
    /* the pools (fw_pool_t), labelled by fw_pool_opts_t.name: pools of one name add up */
    F_POOL_SIZE, F_POOL_IDLE, F_POOL_IN_USE, F_POOL_WAITING, F_POOL_ACQUIRES, F_POOL_TIMEOUTS,
    F_POOL_REFUSED, F_POOL_WAIT_SECONDS, F_POOL_OPENED, F_POOL_CONNECT_FAILED, F_POOL_CLOSED,
    F_POOL_HEALTH_CHECKS, F_POOL_BREAKER,
    F_COUNT
};

#define C FW__METRIC_COUNTER
#define G FW__METRIC_GAUGE
#define H FW__METRIC_HISTOGRAM
#define L1(a) 1, {a}
#define L2(a, b) 2, {a, b}
#define L3(a, b, c) 3, {a, b, c}
#define POOLS 16 /* pool names with series of their own; then "other" */
#define HB(b) b, N(b)

static const fw__family_def_t DEFS[F_COUNT] = {
    [F_QUERIES] = {"fraiseql_queries_total", "Queries submitted (streams started).", C, 4,
                   {"entity", "has_where_sql", "has_predicate", "has_order_by"}, NULL, 0,
                   ENT * 8},
    [F_COMPLETED] = {"fraiseql_query_completed_total",
                     "Queries ended, by status: success, error or cancelled.", C,
                     L2("entity", "status"), NULL, 0, ENT * 3},
    [F_ERRORS] = {"fraiseql_query_errors_total", "Queries that failed, by error category.", C,
                  L2("entity", "category"), NULL, 0, ENT * 12},
    [F_ROWS_PROCESSED] = {"fraiseql_rows_processed_total",
                          "DataRows received from the server (kept or filtered).", C,
                          L1("entity"), NULL, 0, ENT},
    [F_ROWS_FILTERED] = {"fraiseql_rows_filtered_total",
                         "Rows dropped by the client-side predicate.", C, L1("entity"), NULL, 0,
                         ENT},
    [F_ROWS_DELIVERED] = {"fraiseql_rows_delivered_total", "Rows handed to the consumer.", C,
                          L1("entity"), NULL, 0, ENT},
    [F_BYTES_RECEIVED] = {"fraiseql_bytes_received_total",
                          "Protocol bytes received for queries (after TLS).", C, L1("entity"),
                          NULL, 0, ENT},
    [F_AUTH] = {"fraiseql_authentications_total", "Authentication exchanges attempted.", C,
                L1("mechanism"), NULL, 0, 16},
    [F_AUTH_OK] = {"fraiseql_authentications_succeeded_total",
                   "Authentication exchanges the server accepted.", C, L1("mechanism"), NULL, 0,
                   16},
    [F_AUTH_FAILED] = {"fraiseql_authentications_failed_total",
                       "Authentication exchanges that failed, by reason.", C,
                       L2("mechanism", "reason"), NULL, 0, 128},
    [F_CONN_OPENED] = {"fraiseql_connections_opened_total",
                       "Connections that reached ReadyForQuery.", C, L1("transport"), NULL, 0, 8},
    [F_CONN_FAILED] = {"fraiseql_connections_failed_total",
                       "Connection attempts that failed, by the phase they failed in.", C,
                       L2("transport", "phase"), NULL, 0, 64},
    [F_READ_STOPS] = {"fraiseql_read_stops_total",
                      "Times socket reading stopped because the consumer was behind "
                      "(backpressure).",
                      C, L1("entity"), NULL, 0, ENT},
    [F_MEM_LIMIT] = {"fraiseql_memory_limit_exceeded_total",
                     "Streams failed because a row exceeded max_memory or max_message.", C,
                     L1("entity"), NULL, 0, ENT},
    [F_ADJUST] = {"fraiseql_adaptive_chunk_adjustments_total",
                  "Adaptive chunk size changes, by direction (up, down).", C,
                  L2("entity", "direction"), NULL, 0, ENT * 2},
    [F_PAUSED] = {"fraiseql_stream_paused_total", "Streams paused by the consumer.", C,
                  L1("entity"), NULL, 0, ENT},
    [F_RESUMED] = {"fraiseql_stream_resumed_total", "Paused streams resumed.", C, L1("entity"),
                   NULL, 0, ENT},
    [F_PAUSE_TIMEOUTS] = {"fraiseql_stream_pause_timeouts_total",
                          "Pauses ended by the pause timeout.", C, L1("entity"), NULL, 0, ENT},
    [F_CANCELS] = {"fraiseql_cancellations_total",
                   "Query cancellations, by result: completed or timeout.", C,
                   L2("entity", "result"), NULL, 0, ENT * 2},
    [F_PROTO_ERRORS] = {"fraiseql_protocol_errors_total",
                        "Protocol violations by the server, by kind.", C, L1("kind"), NULL, 0,
                        32},
    [F_NOTICES] = {"fraiseql_notices_total", "NoticeResponse messages received, by severity.", C,
                   L1("severity"), NULL, 0, 16},
    [F_CONN_ACTIVE] = {"fraiseql_connections_active", "Connections open and ready.", G, 0, {0},
                       NULL, 0, 1},
    [F_STREAMS_ACTIVE] = {"fraiseql_streams_active", "Streams whose query is running.", G,
                          L1("entity"), NULL, 0, ENT},
    [F_ROWS_BUFFERED] = {"fraiseql_rows_buffered",
                         "Rows queued for consumers and not yet taken.", G, L1("entity"), NULL, 0,
                         ENT},
    [F_BYTES_BUFFERED] = {"fraiseql_bytes_buffered",
                          "Receive memory held by streams (what max_memory bounds).", G,
                          L1("entity"), NULL, 0, ENT},
    [F_CHUNK_SIZE] = {"fraiseql_adaptive_chunk_size_rows",
                      "Rows per chunk last chosen by a stream of the entity.", G, L1("entity"),
                      NULL, 0, ENT},
    [F_AUTH_SECONDS] = {"fraiseql_auth_duration_seconds",
                        "From the server's first authentication request to AuthenticationOk.",
                        H, L1("mechanism"), HB(SECONDS), 16},
    [F_STARTUP_SECONDS] = {"fraiseql_query_startup_duration_seconds",
                           "From sending the query to its RowDescription.", H, L1("entity"),
                           HB(SECONDS), ENT},
    [F_FIRST_ROW_SECONDS] = {"fraiseql_query_first_row_seconds",
                             "From sending the query to its first row queued for the consumer.",
                             H, L1("entity"), HB(SECONDS), ENT},
    [F_QUERY_SECONDS] = {"fraiseql_query_duration_seconds",
                         "From sending the query to its end (ReadyForQuery or failure).", H,
                         L1("entity"), HB(SECONDS), ENT},
    [F_QUERY_ROWS] = {"fraiseql_query_rows", "Rows received per query.", H, L1("entity"),
                      HB(QUERY_ROWS), ENT},
    [F_QUERY_BYTES] = {"fraiseql_query_bytes", "Protocol bytes received per query.", H,
                       L1("entity"), HB(QUERY_BYTES), ENT},
    [F_CHUNK_ROWS] = {"fraiseql_chunk_size_rows", "Rows per chunk handed to the consumer.", H,
                      L1("entity"), HB(CHUNK_ROWS), ENT},
    [F_CHUNK_SECONDS] = {"fraiseql_chunk_processing_duration_seconds",
                         "From a chunk being queued to the consumer releasing it (queue wait "
                         "plus processing).",
                         H, L1("entity"), HB(SECONDS), ENT},
    [F_OCCUPANCY] = {"fraiseql_channel_occupancy_rows",
                     "Rows waiting for the consumer, sampled each time rows are queued: near 0 "
                     "the consumer keeps up, near capacity the server waits for it.",
                     H, L1("entity"), HB(OCCUPANCY), ENT},
    [F_READ_STOP_SECONDS] = {"fraiseql_read_stop_duration_seconds",
                             "How long socket reading stayed stopped for backpressure; the sum "
                             "is the total stalled time.",
                             H, L1("entity"), HB(SECONDS), ENT},
    [F_PAUSE_SECONDS] = {"fraiseql_stream_pause_duration_seconds",
                         "How long streams stayed paused.", H, L1("entity"), HB(SECONDS), ENT},
    [F_CANCEL_SECONDS] = {"fraiseql_cancellation_duration_seconds",
                          "From a cancel request to the end of the query's reply.", H,
                          L1("entity"), HB(SECONDS), ENT},
    [F_FILTER_SECONDS] = {"fraiseql_filter_duration_seconds",
                          "Time spent in the client-side predicate, per chunk of rows read.", H,
                          L1("entity"), HB(SECONDS), ENT},
    [F_POOL_SIZE] = {"fraiseql_pool_connections",
                     "Connections of the process's pools, open or opening.", G, L1("pool"),
                     NULL, 0, POOLS},
    [F_POOL_IDLE] = {"fraiseql_pool_connections_idle", "Pooled connections ready and idle.", G,
                     L1("pool"), NULL, 0, POOLS},
    [F_POOL_IN_USE] = {"fraiseql_pool_connections_in_use",
                       "Pooled connections handed out (until released and idle again).", G,
                       L1("pool"), NULL, 0, POOLS},
    [F_POOL_WAITING] = {"fraiseql_pool_acquires_waiting",
                        "Acquires waiting for a pooled connection.", G, L1("pool"), NULL, 0,
                        POOLS},
    [F_POOL_ACQUIRES] = {"fraiseql_pool_acquires_total",
                         "Acquires that got a pooled connection.", C, L1("pool"), NULL, 0,
                         POOLS},
    [F_POOL_TIMEOUTS] = {"fraiseql_pool_acquire_timeouts_total",
                         "Acquires that waited acquire_timeout_ms and got nothing.", C,
                         L1("pool"), NULL, 0, POOLS},
    [F_POOL_REFUSED] = {"fraiseql_pool_acquire_refused_total",
                        "Acquires refused at once: no server of the kind wanted was usable.", C,
                        L1("pool"), NULL, 0, POOLS},
    [F_POOL_WAIT_SECONDS] = {"fraiseql_pool_acquire_wait_seconds",
                             "From an acquire to its answer (a connection, a timeout, a "
                             "refusal).",
                             H, L1("pool"), HB(SECONDS), POOLS},
    [F_POOL_OPENED] = {"fraiseql_pool_connections_opened_total",
                       "Pooled connections opened (after their after-connect SQL).", C,
                       L1("pool"), NULL, 0, POOLS},
    [F_POOL_CONNECT_FAILED] = {"fraiseql_pool_connect_failures_total",
                               "Pooled connects (or after-connect SQL) that failed.", C,
                               L1("pool"), NULL, 0, POOLS},
    [F_POOL_CLOSED] = {"fraiseql_pool_connections_closed_total",
                       "Pooled connections closed, by reason: lifetime, idle, health, role, "
                       "error or pool.",
                       C, L2("pool", "reason"), NULL, 0, POOLS * 8},
    [F_POOL_HEALTH_CHECKS] = {"fraiseql_pool_health_checks_total",
                              "Round trips made on idle connections before handing them out.",
                              C, L1("pool"), NULL, 0, POOLS},
    [F_POOL_BREAKER] = {"fraiseql_pool_host_breaker",
                        "Pools of the name whose circuit breaker for the host is in the state "
                        "(closed, open, half-open).",
                        G, L3("pool", "host", "state"), NULL, 0, 4 * 64 * 3},
};

#undef C
#undef G
#undef H

static struct {
    pthread_once_t once;
    fw__registry_t *reg;
    fw__family_t *fam[F_COUNT];
    _Atomic bool on;
    pthread_mutex_t mu; /* the entity list */
    fw__lm_entity_t *entities;
    size_t nentities;
    fw__lm_entity_t *other;
    fw__series_t *conn_active;
} g = {.once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER};

/*
 * The registry and the entity bundles use libc's malloc, not fw_allocator_set's allocator: they
 * are made once and kept for the life of the process, so memory from the hook would make every
 * later fw_allocator_set() call illegal ("never while fwire owns memory") and show up as a leak
 * in the hook's own accounting.
 */
static void *lm_malloc(void *ud, size_t n)
{
    (void)ud;
    return malloc(n);
}

static void *lm_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    return realloc(p, n);
}

static void lm_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

static void init_once(void)
{
    const char *env = getenv("FWIRE_METRICS");
    bool on = !(env != NULL && (strcmp(env, "0") == 0 || strcmp(env, "off") == 0 ||
                                strcmp(env, "false") == 0 || strcmp(env, "no") == 0));
    atomic_store(&g.on, on);
    fw_allocator_t a = {lm_malloc, lm_realloc, lm_free, NULL};
    fw__registry_t *r;
    if (fw__registry_new(&a, &r) != 0)
        return;
    for (int i = 0; i < F_COUNT; i++) {
        if (fw__registry_family(r, &DEFS[i], &g.fam[i]) != 0) {
            /* A definition above is wrong (a test catches it) or memory ran out: no metrics. */
            fw__registry_free(r);
            memset(g.fam, 0, sizeof(g.fam));
            return;
        }
    }
    if (fw__family_series(g.fam[F_CONN_ACTIVE], NULL, &g.conn_active) != 0)
        g.conn_active = NULL;
    g.reg = r;
}

static fw__registry_t *registry(void)
{
    pthread_once(&g.once, init_once);
    return g.reg;
}

bool fw__lm_on(void)
{
    return registry() != NULL && atomic_load_explicit(&g.on, memory_order_relaxed);
}

/* The series of family f for labels v[0..n), or NULL. */
static fw__series_t *series(int f, const char *const *v)
{
    if (registry() == NULL)
        return NULL;
    fw__series_t *s;
    return fw__family_series(g.fam[f], v, &s) == 0 ? s : NULL;
}

/* ---- entities -------------------------------------------------------------------------- */

static fw__lm_entity_t *make_entity(const char *name)
{
    fw__lm_entity_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->name = strdup(name);
    if (e->name == NULL) {
        free(e);
        return NULL;
    }
    const char *v1[] = {name};
    struct {
        fw__series_t **slot;
        int f;
        const char *second;
    } want[] = {
        {&e->rows_processed, F_ROWS_PROCESSED, NULL},
        {&e->rows_filtered, F_ROWS_FILTERED, NULL},
        {&e->rows_delivered, F_ROWS_DELIVERED, NULL},
        {&e->bytes_received, F_BYTES_RECEIVED, NULL},
        {&e->read_stops, F_READ_STOPS, NULL},
        {&e->adjust_up, F_ADJUST, "up"},
        {&e->adjust_down, F_ADJUST, "down"},
        {&e->mem_limit, F_MEM_LIMIT, NULL},
        {&e->done_success, F_COMPLETED, "success"},
        {&e->done_error, F_COMPLETED, "error"},
        {&e->done_cancelled, F_COMPLETED, "cancelled"},
        {&e->paused, F_PAUSED, NULL},
        {&e->resumed, F_RESUMED, NULL},
        {&e->pause_timeouts, F_PAUSE_TIMEOUTS, NULL},
        {&e->cancel_ok, F_CANCELS, "completed"},
        {&e->cancel_timeout, F_CANCELS, "timeout"},
        {&e->rows_buffered, F_ROWS_BUFFERED, NULL},
        {&e->bytes_buffered, F_BYTES_BUFFERED, NULL},
        {&e->chunk_size, F_CHUNK_SIZE, NULL},
        {&e->streams_active, F_STREAMS_ACTIVE, NULL},
        {&e->occupancy, F_OCCUPANCY, NULL},
        {&e->chunk_rows, F_CHUNK_ROWS, NULL},
        {&e->chunk_seconds, F_CHUNK_SECONDS, NULL},
        {&e->filter_seconds, F_FILTER_SECONDS, NULL},
        {&e->read_stop_seconds, F_READ_STOP_SECONDS, NULL},
        {&e->startup_seconds, F_STARTUP_SECONDS, NULL},
        {&e->first_row_seconds, F_FIRST_ROW_SECONDS, NULL},
        {&e->query_seconds, F_QUERY_SECONDS, NULL},
        {&e->query_rows, F_QUERY_ROWS, NULL},
        {&e->query_bytes, F_QUERY_BYTES, NULL},
        {&e->pause_seconds, F_PAUSE_SECONDS, NULL},
        {&e->cancel_seconds, F_CANCEL_SECONDS, NULL},
    };
    for (size_t i = 0; i < N(want); i++) {
        const char *v2[] = {name, want[i].second};
        *want[i].slot = series(want[i].f, want[i].second != NULL ? v2 : v1);
        if (*want[i].slot == NULL) {
            /* Out of memory: the series made so far stay in the registry (harmless). */
            free(e->name);
            free(e);
            return NULL;
        }
    }
    return e;
}

fw__lm_entity_t *fw__lm_entity(const char *name)
{
    if (!fw__lm_on())
        return NULL;
    if (name == NULL || name[0] == '\0')
        name = "unknown";
    pthread_mutex_lock(&g.mu);
    fw__lm_entity_t *e = g.entities;
    while (e != NULL && strcmp(e->name, name) != 0)
        e = e->next;
    if (e == NULL && g.nentities < FW__LM_MAX_ENTITIES) {
        e = make_entity(name);
        if (e != NULL) {
            e->next = g.entities;
            g.entities = e;
            g.nentities++;
        }
    } else if (e == NULL) {
        if (g.other == NULL)
            g.other = make_entity(FW__METRIC_OVERFLOW_VALUE);
        e = g.other;
    }
    pthread_mutex_unlock(&g.mu);
    return e;
}

/* ---- per-stream sync -------------------------------------------------------------------- */

/* Adds to the counter what `now` has beyond what was recorded in *seen; exact under races. */
static void advance(_Atomic uint64_t *seen, uint64_t now, fw__series_t *s)
{
    uint64_t old = atomic_load_explicit(seen, memory_order_relaxed);
    while (now > old) {
        if (atomic_compare_exchange_weak_explicit(seen, &old, now, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            fw__metric_add(s, now - old);
            return;
        }
    }
}

/* Moves this stream's share of a gauge to `now`: the gauge always equals the sum of shares. */
static void share(_Atomic int64_t *mine, int64_t now, fw__series_t *s)
{
    int64_t old = atomic_exchange_explicit(mine, now, memory_order_relaxed);
    if (now != old)
        fw__metric_gauge_add(s, now - old);
}

void fw__lm_sync(fw__lm_stream_t *m, uint64_t rows_processed, uint64_t rows_filtered,
                 uint64_t rows_delivered, uint64_t bytes_received, uint64_t rows_buffered,
                 uint64_t bytes_buffered)
{
    fw__lm_entity_t *e = m->e;
    if (e == NULL)
        return;
    advance(&m->rows_processed, rows_processed, e->rows_processed);
    advance(&m->rows_filtered, rows_filtered, e->rows_filtered);
    advance(&m->rows_delivered, rows_delivered, e->rows_delivered);
    advance(&m->bytes_received, bytes_received, e->bytes_received);
    share(&m->rows_buffered, (int64_t)rows_buffered, e->rows_buffered);
    share(&m->bytes_buffered, (int64_t)bytes_buffered, e->bytes_buffered);
}

void fw__lm_seconds(fw__series_t *s, uint64_t ns)
{
    if (s != NULL)
        fw__hist_observe(s, (double)ns / 1e9);
}

/* ---- rare events ------------------------------------------------------------------------ */

static void inc(int f, const char *const *v)
{
    if (!fw__lm_on())
        return;
    fw__series_t *s = series(f, v);
    if (s != NULL)
        fw__metric_inc(s);
}

void fw__lm_query_submitted(const char *entity, bool where_sql, bool predicate, bool order_by)
{
    fw__lm_entity_t *e = fw__lm_entity(entity);
    if (e == NULL)
        return;
    const char *v[] = {e->name, where_sql ? "true" : "false", predicate ? "true" : "false",
                       order_by ? "true" : "false"};
    inc(F_QUERIES, v);
}

const char *fw__lm_error_category(int code, const char *sqlstate)
{
    if (code == FW_ESERVER && sqlstate != NULL && strcmp(sqlstate, "57014") == 0)
        return "statement_timeout";
    if (code <= FW_EPROTO_SHORT && code > FW_EPROTO_SHORT - 100)
        return "protocol";
    switch (code) {
    case FW_ESERVER:
        return "server";
    case FW_ETIMEDOUT:
        return "timeout";
    case FW_ETOOBIG:
        return "memory_limit";
    case FW_ESCHEMA:
        return "schema";
    case FW_ETLS:
        return "tls";
    case FW_ECLOSED:
        return "closed";
    case FW_ENOMEM:
        return "out_of_memory";
    case FW_ECANCELED:
        return "cancelled";
    case FW_EAUTH:
        return "auth";
    default:
        return code < 0 && code > -30000 ? "io" : "other";
    }
}

void fw__lm_query_error(const char *entity, int code, const char *sqlstate)
{
    fw__lm_entity_t *e = fw__lm_entity(entity);
    if (e == NULL)
        return;
    const char *v[] = {e->name, fw__lm_error_category(code, sqlstate)};
    inc(F_ERRORS, v);
}

bool fw__lm_conn_opened(const char *transport)
{
    if (!fw__lm_on())
        return false;
    const char *v[] = {transport};
    inc(F_CONN_OPENED, v);
    if (g.conn_active == NULL)
        return false;
    fw__metric_gauge_add(g.conn_active, 1);
    return true;
}

void fw__lm_conn_closed(void)
{
    /* Recorded even when recording was switched off since the open: the gauge must return. */
    if (g.conn_active != NULL)
        fw__metric_gauge_add(g.conn_active, -1);
}

void fw__lm_conn_failed(const char *transport, fw_phase_t phase)
{
    static const char *const names[] = {
        [FW_PHASE_NONE] = "none",           [FW_PHASE_CONFIG] = "config",
        [FW_PHASE_DNS] = "dns",             [FW_PHASE_CONNECT] = "connect",
        [FW_PHASE_SSL_RESPONSE] = "ssl_response", [FW_PHASE_TLS_HANDSHAKE] = "tls_handshake",
        [FW_PHASE_AUTH] = "auth",           [FW_PHASE_STARTUP] = "startup",
        [FW_PHASE_READY] = "ready",         [FW_PHASE_CLOSED] = "closed",
        [FW_PHASE_ROUTE] = "route",
    };
    const char *v[] = {transport, (unsigned)phase < N(names) ? names[phase] : "none"};
    inc(F_CONN_FAILED, v);
}

void fw__lm_auth(const char *mechanism, const char *reason, uint64_t ns)
{
    if (!fw__lm_on())
        return;
    const char *v[] = {mechanism, reason};
    inc(F_AUTH, v);
    if (reason != NULL) {
        inc(F_AUTH_FAILED, v);
        return;
    }
    inc(F_AUTH_OK, v);
    fw__lm_seconds(series(F_AUTH_SECONDS, v), ns);
}

void fw__lm_protocol_error(int code)
{
    if (!(code <= FW_EPROTO_SHORT && code > FW_EPROTO_SHORT - 100))
        return;
    /* "FW_EPROTO_UNKNOWN_TYPE" -> "unknown_type" */
    const char *name = fw_err_name(code);
    char kind[48];
    size_t n = 0;
    if (strncmp(name, "FW_EPROTO_", 10) == 0)
        name += 10;
    for (; name[n] != '\0' && n < sizeof(kind) - 1; n++)
        kind[n] = (char)(name[n] >= 'A' && name[n] <= 'Z' ? name[n] - 'A' + 'a' : name[n]);
    kind[n] = '\0';
    const char *v[] = {kind};
    inc(F_PROTO_ERRORS, v);
}

void fw__lm_notice(const char *severity)
{
    const char *v[] = {severity != NULL && severity[0] != '\0' ? severity : "unknown"};
    inc(F_NOTICES, v);
}

/* ---- pools ------------------------------------------------------------------------------- */

void fw__lm_pool(fw__lm_pool_t *m, const char *pool)
{
    memset(m, 0, sizeof(*m));
    if (!fw__lm_on())
        return;
    const char *v[] = {pool};
    m->size = series(F_POOL_SIZE, v);
    m->idle = series(F_POOL_IDLE, v);
    m->in_use = series(F_POOL_IN_USE, v);
    m->waiting = series(F_POOL_WAITING, v);
    m->acquires = series(F_POOL_ACQUIRES, v);
    m->timeouts = series(F_POOL_TIMEOUTS, v);
    m->refused = series(F_POOL_REFUSED, v);
    m->wait_seconds = series(F_POOL_WAIT_SECONDS, v);
    m->opened = series(F_POOL_OPENED, v);
    m->connect_failures = series(F_POOL_CONNECT_FAILED, v);
    m->health_checks = series(F_POOL_HEALTH_CHECKS, v);
    static const char *const reasons[FW__LM_POOL_REASONS] = {"lifetime", "idle",  "health",
                                                             "role",     "error", "pool"};
    for (int i = 0; i < FW__LM_POOL_REASONS; i++) {
        const char *pr[] = {pool, reasons[i]};
        m->closed[i] = series(F_POOL_CLOSED, pr);
    }
}

fw__series_t *fw__lm_pool_breaker(const char *pool, const char *host, const char *state)
{
    if (!fw__lm_on())
        return NULL;
    const char *v[] = {pool, host, state};
    return series(F_POOL_BREAKER, v);
}

/* ---- public ------------------------------------------------------------------------------ */

long fw_metrics_render(char *buf, size_t cap)
{
    fw__registry_t *r = registry();
    if (r == NULL)
        return FW_ENOMEM;
    fw__metrics_snapshot_t *snap;
    if (fw__registry_snapshot(r, &snap) != 0)
        return FW_ENOMEM;
    size_t n = fw__snapshot_render(snap, buf, cap);
    fw__snapshot_free(snap);
    return n > (size_t)LONG_MAX ? LONG_MAX : (long)n;
}

void fw_metrics_set_enabled(bool on)
{
    (void)registry();
    atomic_store_explicit(&g.on, on, memory_order_relaxed);
}

bool fw_metrics_enabled(void)
{
    return fw__lm_on();
}
