/* SPDX-License-Identifier: MIT */
/* fwire serve: the options (serve_config.c: flags and --config FILE). */
#ifndef FWIRE_SERVE_CONFIG_H
#define FWIRE_SERVE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The smallest --stream-budget (and a --parallel part's share of it). */
#define GW_MIN_STREAM_BUDGET ((size_t)64 * 1024)

/* --parallel ENTITY=N[:KEY]: requests for ENTITY read over up to N connections. */
typedef struct gw_parallel_s {
    char *entity;
    uint32_t n;
    char *key; /* NULL: ctid ranges (a table or materialized view); "tid:COL": a view's ctid
                  column (fw_query_partition_ctid); else an integer key (fw_query_partition_key) */
} gw_parallel_t;

typedef struct gw_config_s {
    char *listen_host;
    int listen_port;
    char *dsn; /* NULL: PG* environment and defaults */
    char **allow;
    size_t nallow;
    char *token;    /* NULL: no token */
    char **origins; /* allowed Origin values of /ws besides the same origin; "*" any */
    size_t norigins;
    char **hosts; /* allowed Host values besides loopback and the listen address; "*" any */
    size_t nhosts;
    uint32_t max_connections;
    uint32_t max_connections_per_address; /* by client IP address */
    uint32_t max_handshakes_per_address;  /* of those, requests not yet complete */
    uint32_t max_pool_per_connection;     /* PostgreSQL connections one client may hold */
    uint32_t max_streams_per_connection;
    uint32_t max_concurrent_streams;
    uint32_t max_query_seconds;
    uint32_t max_frame_bytes;
    uint32_t batch_size;
    uint32_t progress_ms;
    uint32_t pool_size;
    uint32_t abandon_seconds;
    uint32_t ws_ping_seconds; /* 0: no pings, no idle timeout */
    size_t stream_budget;
    size_t high_watermark;
    size_t low_watermark;
    char *tls_cert; /* PEM chain: serve https/wss (with tls_key) */
    char *tls_key;
    char *tls_client_ca;  /* require client certificates signed by these CAs */
    bool insecure_listen; /* a token over plaintext off loopback, knowingly */
    bool read_from_primary; /* every query on the primary (FW_POOL_WRITE), not a standby */
    uint32_t drain_seconds; /* SIGTERM: running streams may finish for this long (0: at once) */
    bool verbose;
    char **parallel_raw; /* --parallel values as given, parsed into `parallel` at the end */
    size_t nparallel_raw;
    gw_parallel_t *parallel;
    size_t nparallel;
} gw_config_t;

/* serve_config.c. Returns -1 to go on, or an exit code (help printed: EXIT_OK). */
int gw_config_load(gw_config_t *cfg, int argc, char **argv);
void gw_config_free(gw_config_t *cfg);
void gw_config_usage(FILE *f);
/* The --parallel setting of an entity, or NULL. */
const gw_parallel_t *gw_config_parallel(const gw_config_t *cfg, const char *entity);

#endif /* FWIRE_SERVE_CONFIG_H */
