/* SPDX-License-Identifier: MIT */
/*
 * Private to lib/: the fraiseql_* metric set (docs/METRICS.md) in one process-wide registry
 * (metrics/), and the recording calls the connection and stream code makes.
 *
 * Two kinds of recording:
 *  - Hot, per chunk or per read: through an entity's bundle of series (fw__lm_entity_t), looked
 *    up once when a stream starts. Each call is one relaxed atomic or a histogram observe; no
 *    lock, no allocation.
 *  - Rare (a connection, an authentication, an error, a notice): a function below that looks the
 *    series up under the registry's mutex, allocating only the first time a label set is seen.
 * Every function is a no-op when recording is off or the registry could not be made; the
 * library never fails because of a metric.
 */
#ifndef FW_LIB_LMETRICS_H
#define FW_LIB_LMETRICS_H

#include "fwire.h"
#include "metrics.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* fraiseql_chunk_size_rows has the bounds 2^0 .. 2^16: this many. */
#define FW__LM_CHUNK_ROWS_BOUNDS 17

/* Distinct entity label values; later entities are recorded under "other" (metrics.h). */
#define FW__LM_MAX_ENTITIES 64

/* The series a stream records into, all with the same entity label. Lives until exit. */
typedef struct fw__lm_entity_s {
    struct fw__lm_entity_s *next;
    char *name;
    /* counters */
    fw__series_t *rows_processed, *rows_filtered, *rows_delivered, *bytes_received;
    fw__series_t *read_stops, *adjust_up, *adjust_down, *mem_limit;
    fw__series_t *done_success, *done_error, *done_cancelled;
    fw__series_t *paused, *resumed, *pause_timeouts;
    fw__series_t *cancel_ok, *cancel_timeout;
    /* gauges */
    fw__series_t *rows_buffered, *bytes_buffered, *chunk_size, *streams_active;
    /* histograms */
    fw__series_t *occupancy, *chunk_rows, *chunk_seconds, *filter_seconds, *read_stop_seconds;
    fw__series_t *startup_seconds, *first_row_seconds, *query_seconds, *query_rows, *query_bytes;
    fw__series_t *pause_seconds, *cancel_seconds;
} fw__lm_entity_t;

/*
 * A stream's bookkeeping: what it has already added to the shared counters and gauges, so that
 * either thread can bring them up to date from the stream's own statistics (fw__lm_sync) and
 * every row, byte and stop is counted exactly once.
 */
typedef struct fw__lm_stream_s {
    fw__lm_entity_t *e; /* NULL: this stream records nothing */
    _Atomic uint64_t rows_processed, rows_filtered, rows_delivered, bytes_received;
    _Atomic int64_t rows_buffered, bytes_buffered; /* this stream's share of the gauges */
    /* producer (loop thread) only: uv_hrtime() marks, and the occupancy samples gathered
     * between two merges into the shared histogram (at most once per loop millisecond) */
    uint64_t t_start, t_stall, t_pause, t_cancel;
    uint64_t synced_ms; /* uv_now() of the last merge */
    uint32_t reads;     /* reads that queued rows: every 8th stamps its chunks with the time */
    bool first_row, ended;
    fw__hist_batch_t occupancy;
    /* consumer only: per-chunk samples, merged every 64 chunks and at the end */
    uint32_t chunks;
    fw__hist_batch_t chunk_rows, chunk_seconds;
} fw__lm_stream_t;

/* Whether connections and streams started now record (fw_metrics_set_enabled). */
bool fw__lm_on(void);

/* The bundle for an entity label (NULL or "" become "unknown"): made on first use, NULL when
 * recording is off or memory ran out. Thread: any thread. */
fw__lm_entity_t *fw__lm_entity(const char *name);

/* The stream's counters as they are now: adds what is new since the last call to the shared
 * series, by compare-and-swap, so calls from both threads at once count everything once. */
void fw__lm_sync(fw__lm_stream_t *m, uint64_t rows_processed, uint64_t rows_filtered,
                 uint64_t rows_delivered, uint64_t bytes_received, uint64_t rows_buffered,
                 uint64_t bytes_buffered);

/* Histogram in seconds from a uv_hrtime() difference. */
void fw__lm_seconds(fw__series_t *s, uint64_t ns);

/* Rare events; entity and labels are copied when a series is made. Thread: any thread. */
void fw__lm_query_submitted(const char *entity, bool where_sql, bool predicate, bool order_by);
void fw__lm_query_error(const char *entity, int code, const char *sqlstate);
/* Returns whether the connection was counted as active (fw__lm_conn_closed must follow). */
bool fw__lm_conn_opened(const char *transport);
void fw__lm_conn_failed(const char *transport, fw_phase_t phase);
void fw__lm_conn_closed(void);
/* An authentication exchange ended: reason NULL for success, else why it failed. */
void fw__lm_auth(const char *mechanism, const char *reason, uint64_t ns);
/* A protocol violation by the server: code is one of FW_EPROTO_* (others are ignored). */
void fw__lm_protocol_error(int code);
void fw__lm_notice(const char *severity);

/* A pool's series (fraiseql_pool_*{pool}, `pool` its name): looked up once when the pool is
 * made; all NULL when recording is off then. closed[] in the order lifetime, idle, health,
 * role, error, pool. */
#define FW__LM_POOL_REASONS 6
typedef struct fw__lm_pool_s {
    fw__series_t *size, *idle, *in_use, *waiting;
    fw__series_t *acquires, *timeouts, *refused, *wait_seconds, *opened, *connect_failures;
    fw__series_t *health_checks;
    fw__series_t *closed[FW__LM_POOL_REASONS];
} fw__lm_pool_t;
void fw__lm_pool(fw__lm_pool_t *m, const char *pool);
/* The gauge fraiseql_pool_host_breaker{pool, host, state}: how many pools of the name see the
 * host's breaker in that state ("closed", "open", "half-open"). NULL when recording is off.
 * Thread: any. */
fw__series_t *fw__lm_pool_breaker(const char *pool, const char *host, const char *state);

/* The category label of a query error code ("server", "timeout", "memory_limit", ...). */
const char *fw__lm_error_category(int code, const char *sqlstate);

#endif /* FW_LIB_LMETRICS_H */
