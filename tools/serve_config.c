/* SPDX-License-Identifier: MIT */
/*
 * fwire serve's configuration: `--config FILE` (key = value lines; a line whose first
 * non-blank character is # is a comment, and # elsewhere is part of the value) first, then the
 * flags, which override it. Every key is the flag's name without the dashes. Every limit has a
 * named default here and in docs/gateway.md.
 */
#include "cli.h"
#include "serve.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PORT                 8080
#define DEFAULT_MAX_CONNECTIONS      64
#define DEFAULT_MAX_STREAMS_PER_CONN 8
/* A few addresses must not fill --max-connections: a browser opens about 6 connections to a
 * host, so 16 leaves room for a few tabs behind one NAT address. */
#define DEFAULT_MAX_CONN_PER_ADDRESS       16
#define DEFAULT_MAX_HANDSHAKES_PER_ADDRESS 8
#define DEFAULT_MAX_CONCURRENT             32
#define DEFAULT_MAX_QUERY_SECONDS          300
#define DEFAULT_MAX_FRAME_BYTES            65536
#define DEFAULT_BATCH_SIZE                 100
#define DEFAULT_PROGRESS_MS                500
#define DEFAULT_POOL_SIZE                  4
#define DEFAULT_ABANDON_SECONDS            60
#define DEFAULT_WS_PING_SECONDS            30
#define DEFAULT_STREAM_BUDGET              (1024u * 1024u)
#define DEFAULT_HIGH_WATERMARK             (1024u * 1024u)
/* SIGTERM stops at once by default, as before draining existed; behind a balancer set it to
 * the longest stream worth waiting for (docs/gateway.md, Signals). */
#define DEFAULT_DRAIN_SECONDS 0
/* A config file line longer than this is refused: the file is the operator's, but a mistake
 * (a binary file) should be a clear error, not a silent truncation. */
#define CONFIG_LINE_MAX 4096

void gw_config_usage(FILE *f)
{
    fprintf(f,
            "usage: fwire serve [OPTIONS]\n"
            "\n"
            "Streams the data column of allowlisted PostgreSQL views to browsers over WebSocket\n"
            "(/ws), as chunked NDJSON (GET /stream/ENTITY), with a web page at / and Prometheus\n"
            "metrics at /metrics. docs/gateway.md describes the protocol.\n"
            "\n"
            "  --config FILE                  key = value lines (keys: the options below\n"
            "                                 without --); flags override the file\n"
            "  --listen HOST:PORT             default 127.0.0.1:8080 (loopback; any other\n"
            "                                 address requires --token, and TLS or\n"
            "                                 --insecure-listen)\n"
            "  --dsn CONNINFO                 PostgreSQL connection string (default: PG* env)\n"
            "  --allow ENTITY[,ENTITY...]     entities clients may read (ENTITY is view v_ENTITY)\n"
            "  --token TOKEN                  require this access token (/ws?token=, Bearer)\n"
            "  --allow-origin ORIGIN[,...]    extra Origins allowed for /ws ('*': any)\n"
            "  --allow-host HOST[:PORT][,...] Host header values accepted besides loopback and\n"
            "                                 the listen address (DNS rebinding; '*': any)\n"
            "  --max-connections N            default 64\n"
            "  --max-connections-per-address N  from one client IP, default 16\n"
            "  --max-handshakes-per-address N   requests in progress from one IP, default 8\n"
            "  --max-pool-per-connection N    PostgreSQL connections one client may hold,\n"
            "                                 default half the pool (at least 1)\n"
            "  --max-streams-per-connection N default 8\n"
            "  --max-concurrent-streams N     default 32 (running and waiting)\n"
            "  --max-query-seconds N          default 300 (0: none)\n"
            "  --max-frame-bytes N            largest client message, default 65536\n"
            "  --batch-size N                 rows per batch, default 100\n"
            "  --progress-ms N                progress interval, default 500\n"
            "  --pool-size N                  PostgreSQL connections, default 4\n"
            "  --read-from-primary            run every query on the primary (default: on a\n"
            "                                 standby of the --dsn host list when one is\n"
            "                                 usable, else on the primary)\n"
            "  --drain-seconds N              on SIGTERM, let running streams finish for up to\n"
            "                                 N s (/readyz is 503 at once); default 0: cancel\n"
            "                                 them at once\n"
            "  --parallel ENTITY=N[:KEY][,...]\n"
            "                                 read ENTITY over up to N PostgreSQL connections\n"
            "                                 under one snapshot when a request has no limit\n"
            "                                 and no order_by (N 2..16, at most\n"
            "                                 --max-pool-per-connection); KEY: an integer\n"
            "                                 column of v_ENTITY to split by, tid:COL a ctid\n"
            "                                 column it shows, none: ctid ranges (a table or\n"
            "                                 materialized view)\n"
            "  --stream-budget BYTES          receive memory per stream, default 1M\n"
            "  --abandon-seconds N            a stream paused this long in all is cancelled,\n"
            "                                 default 60\n"
            "  --ws-ping-seconds N            ping idle WebSockets, close after 2N s without\n"
            "                                 any frame from them; default 30 (0: never)\n"
            "  --high-watermark BYTES         pause a client's streams above, default 1M\n"
            "  --low-watermark BYTES          resume them below, default high/4\n"
            "  --tls-cert FILE, --tls-key FILE  serve https:// and wss:// (PEM; TLS 1.2+;\n"
            "                                 reloaded on SIGHUP)\n"
            "  --tls-client-ca FILE           require client certificates issued by these CAs\n"
            "  --insecure-listen              allow a token over plaintext off loopback\n"
            "  -v, --verbose                  log connections and queries on stderr\n");
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fwire serve: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_USAGE;
}

/* Numbers and sizes go through the one parser of the fwire command (cli.c): digits only, no
 * sign or space (a leading space once slipped through strtoull), sizes with K, M or G. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out, bool size_suffix)
{
    uint64_t v;
    if (!(size_suffix ? cli_parse_size(s, &v) : cli_parse_uint(s, max, &v)) || v > max)
        return false;
    *out = v;
    return true;
}

static int add_list(char ***list, size_t *n, const char *csv)
{
    const char *p = csv;
    while (*p != '\0') {
        size_t k = strcspn(p, ",");
        while (k > 0 && p[0] == ' ') {
            p++;
            k--;
        }
        size_t e = k;
        while (e > 0 && p[e - 1] == ' ')
            e--;
        if (e > 0) {
            char **nl = realloc(*list, (*n + 1) * sizeof(**list));
            if (nl == NULL)
                return -1;
            *list = nl;
            char *s = malloc(e + 1);
            if (s == NULL)
                return -1;
            memcpy(s, p, e);
            s[e] = '\0';
            (*list)[(*n)++] = s;
        }
        p += k;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* A switch in the config file: "true", "1", "yes" or "false", "0", "no"; anything else is an
 * error (a typo must not silently mean false). */
static bool parse_bool(const char *v, bool *out)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0)
        *out = true;
    else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "no") == 0)
        *out = false;
    else
        return false;
    return true;
}

static int set_str(char **dst, const char *v)
{
    char *s = strdup(v);
    if (s == NULL)
        return -1;
    free(*dst);
    *dst = s;
    return 0;
}

static int parse_listen(gw_config_t *cfg, const char *v)
{
    const char *colon = strrchr(v, ':');
    if (colon == NULL)
        return bad("--listen wants HOST:PORT, got '%s'", v);
    uint64_t port;
    if (!parse_u64(colon + 1, 65535, &port, false))
        return bad("--listen: bad port in '%s'", v);
    const char *h = v;
    size_t hl = (size_t)(colon - v);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    char *host = malloc(hl + 1 > 10 ? hl + 1 : 10);
    if (host == NULL)
        return bad("out of memory");
    memcpy(host, h, hl);
    host[hl] = '\0';
    /* libuv binds numeric addresses only; "localhost" is the one name worth knowing */
    if (hl == 0 || strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    free(cfg->listen_host);
    cfg->listen_host = host;
    cfg->listen_port = (int)port;
    return -1;
}

static const struct {
    const char *name;
    size_t off;
    uint64_t min, max;
} u32_keys[] = {
    {"max-connections", offsetof(gw_config_t, max_connections), 1, 100000},
    {"max-connections-per-address", offsetof(gw_config_t, max_connections_per_address), 1, 100000},
    {"max-handshakes-per-address", offsetof(gw_config_t, max_handshakes_per_address), 1, 100000},
    {"max-pool-per-connection", offsetof(gw_config_t, max_pool_per_connection), 1, 1000},
    {"max-streams-per-connection", offsetof(gw_config_t, max_streams_per_connection), 1, 10000},
    {"max-concurrent-streams", offsetof(gw_config_t, max_concurrent_streams), 1, 100000},
    {"max-query-seconds", offsetof(gw_config_t, max_query_seconds), 0, 86400 * 7},
    {"max-frame-bytes", offsetof(gw_config_t, max_frame_bytes), 256, 16u * 1024 * 1024},
    {"batch-size", offsetof(gw_config_t, batch_size), 1, GW_MAX_BATCH_SIZE},
    {"progress-ms", offsetof(gw_config_t, progress_ms), 50, 3600000},
    {"pool-size", offsetof(gw_config_t, pool_size), 1, 1000},
    {"abandon-seconds", offsetof(gw_config_t, abandon_seconds), 1, 86400},
    {"ws-ping-seconds", offsetof(gw_config_t, ws_ping_seconds), 0, 3600},
    {"drain-seconds", offsetof(gw_config_t, drain_seconds), 0, 86400},
};

static const struct {
    const char *name;
    size_t off;
    uint64_t min;
} size_keys[] = {
    {"stream-budget", offsetof(gw_config_t, stream_budget), GW_MIN_STREAM_BUDGET},
    {"high-watermark", offsetof(gw_config_t, high_watermark), 16u * 1024u},
    {"low-watermark", offsetof(gw_config_t, low_watermark), 0},
};

/* One setting from a flag or the file. Returns -1 to go on or an exit code. */
static int config_set(gw_config_t *cfg, const char *key, const char *v, bool *low_set)
{
    for (size_t i = 0; i < sizeof(u32_keys) / sizeof(u32_keys[0]); i++) {
        if (strcmp(key, u32_keys[i].name) != 0)
            continue;
        uint64_t n;
        if (!parse_u64(v, u32_keys[i].max, &n, false) || n < u32_keys[i].min)
            return bad("--%s wants a whole number from %llu to %llu, got '%s'", key,
                       (unsigned long long)u32_keys[i].min, (unsigned long long)u32_keys[i].max, v);
        *(uint32_t *)(void *)((char *)cfg + u32_keys[i].off) = (uint32_t)n;
        return -1;
    }
    for (size_t i = 0; i < sizeof(size_keys) / sizeof(size_keys[0]); i++) {
        if (strcmp(key, size_keys[i].name) != 0)
            continue;
        uint64_t n;
        if (!parse_u64(v, (uint64_t)1 << 40, &n, true) || n < size_keys[i].min)
            return bad("--%s wants bytes of at least %llu (suffixes K, M, G), got '%s'", key,
                       (unsigned long long)size_keys[i].min, v);
        *(size_t *)(void *)((char *)cfg + size_keys[i].off) = (size_t)n;
        if (strcmp(key, "low-watermark") == 0)
            *low_set = true;
        return -1;
    }
    if (strcmp(key, "listen") == 0)
        return parse_listen(cfg, v);
    if (strcmp(key, "dsn") == 0)
        return set_str(&cfg->dsn, v) < 0 ? bad("out of memory") : -1;
    if (strcmp(key, "token") == 0) {
        if (*v == '\0')
            return bad("--token must not be empty");
        return set_str(&cfg->token, v) < 0 ? bad("out of memory") : -1;
    }
    if (strcmp(key, "allow") == 0)
        return add_list(&cfg->allow, &cfg->nallow, v) < 0 ? bad("out of memory") : -1;
    if (strcmp(key, "parallel") == 0)
        return add_list(&cfg->parallel_raw, &cfg->nparallel_raw, v) < 0 ? bad("out of memory")
                                                                        : -1;
    if (strcmp(key, "allow-origin") == 0)
        return add_list(&cfg->origins, &cfg->norigins, v) < 0 ? bad("out of memory") : -1;
    if (strcmp(key, "allow-host") == 0)
        return add_list(&cfg->hosts, &cfg->nhosts, v) < 0 ? bad("out of memory") : -1;
    if (strcmp(key, "tls-cert") == 0)
        return set_str(&cfg->tls_cert, v) < 0 ? bad("out of memory") : -1;
    if (strcmp(key, "tls-key") == 0)
        return set_str(&cfg->tls_key, v) < 0 ? bad("out of memory") : -1;
    if (strcmp(key, "tls-client-ca") == 0)
        return set_str(&cfg->tls_client_ca, v) < 0 ? bad("out of memory") : -1;
    if (strcmp(key, "insecure-listen") == 0) {
        cfg->insecure_listen =
            strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0;
        return -1;
    }
    if (strcmp(key, "read-from-primary") == 0) {
        if (!parse_bool(v, &cfg->read_from_primary))
            return bad("--read-from-primary wants true or false, got '%s'", v);
        return -1;
    }
    if (strcmp(key, "verbose") == 0) {
        cfg->verbose = strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0;
        return -1;
    }
    return bad("unknown option '%s' (fwire serve --help)", key);
}

const gw_parallel_t *gw_config_parallel(const gw_config_t *cfg, const char *entity)
{
    for (size_t i = 0; i < cfg->nparallel; i++)
        if (strcmp(cfg->parallel[i].entity, entity) == 0)
            return &cfg->parallel[i];
    return NULL;
}

/* The largest --parallel N: fw_query_parallel's cap. */
#define GW_MAX_PARALLEL 16

/* Parses the --parallel values ("ENTITY=N[:KEY]") once the allowlist and --pool-size are
 * known. Returns -1 to go on or an exit code. */
static int parse_parallel(gw_config_t *cfg)
{
    if (cfg->nparallel_raw == 0)
        return -1;
    cfg->parallel = calloc(cfg->nparallel_raw, sizeof(*cfg->parallel));
    if (cfg->parallel == NULL)
        return bad("out of memory");
    for (size_t i = 0; i < cfg->nparallel_raw; i++) {
        const char *v = cfg->parallel_raw[i];
        const char *eq = strchr(v, '=');
        if (eq == NULL || eq == v)
            return bad("--parallel wants ENTITY=N[:KEY], got '%s'", v);
        const char *colon = strchr(eq + 1, ':');
        size_t nlen = colon != NULL ? (size_t)(colon - eq - 1) : strlen(eq + 1);
        char num[16];
        uint64_t n = 0;
        if (nlen == 0 || nlen >= sizeof(num))
            return bad("--parallel %s: N must be a whole number from 2 to %d", v, GW_MAX_PARALLEL);
        memcpy(num, eq + 1, nlen);
        num[nlen] = '\0';
        if (!parse_u64(num, GW_MAX_PARALLEL, &n, false) || n < 2)
            return bad("--parallel %s: N must be a whole number from 2 to %d", v, GW_MAX_PARALLEL);
        if (n > cfg->pool_size)
            return bad("--parallel %s: %llu connections is more than --pool-size %u", v,
                       (unsigned long long)n, cfg->pool_size);
        /* the parts count in the client's share: a larger N could never be had */
        if (n > cfg->max_pool_per_connection)
            return bad("--parallel %s: %llu connections is more than one client may hold "
                       "(--max-pool-per-connection %u; by default half of --pool-size)",
                       v, (unsigned long long)n, cfg->max_pool_per_connection);
        gw_parallel_t *p = &cfg->parallel[cfg->nparallel];
        p->entity = strndup(v, (size_t)(eq - v));
        if (p->entity == NULL)
            return bad("out of memory");
        cfg->nparallel++;
        p->n = (uint32_t)n;
        if (colon != NULL) {
            const char *key = colon + 1;
            const char *col = strncmp(key, "tid:", 4) == 0 ? key + 4 : key;
            size_t cl = strlen(col);
            if (cl == 0 || cl > 63 || strspn(col, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRST"
                                                  "UVWXYZ0123456789_") != cl)
                return bad("--parallel %s: KEY must be a column name of 1 to 63 letters, digits "
                           "or _ (tid:COL for a ctid column)", v);
            p->key = strdup(key);
            if (p->key == NULL)
                return bad("out of memory");
        }
        bool allowed = false;
        for (size_t k = 0; k < cfg->nallow; k++)
            allowed = allowed || strcmp(cfg->allow[k], p->entity) == 0;
        if (!allowed)
            return bad("--parallel %s: entity '%s' is not in --allow", v, p->entity);
        for (size_t k = 0; k + 1 < cfg->nparallel; k++)
            if (strcmp(cfg->parallel[k].entity, p->entity) == 0)
                return bad("--parallel: entity '%s' given twice", p->entity);
    }
    return -1;
}

static int load_file(gw_config_t *cfg, const char *path, bool *low_set)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return bad("cannot read --config %s: %s", path, strerror(errno));
    char line[CONFIG_LINE_MAX];
    int lineno = 0, code = -1;
    while (code < 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        size_t n = strlen(line);
        if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
            code = bad("%s:%d: line too long", path, lineno);
            break;
        }
        /* Only a whole line is a comment: a # inside a value is data (tokens, passwords in
         * a DSN), and cutting there would silently change it. */
        char *s = line + strspn(line, " \t");
        if (*s == '#')
            continue;
        n = strlen(s);
        while (n > 0 && strchr(" \t\r\n", s[n - 1]) != NULL)
            s[--n] = '\0';
        if (n == 0)
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            code = bad("%s:%d: expected 'key = value'", path, lineno);
            break;
        }
        char *k = s, *v = eq + 1;
        char *ke = eq;
        while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
            ke--;
        *ke = '\0';
        v += strspn(v, " \t");
        if (strcmp(k, "config") == 0) {
            code = bad("%s:%d: config files do not nest", path, lineno);
            break;
        }
        code = config_set(cfg, k, v, low_set);
        if (code >= 0)
            fprintf(stderr, "fwire serve: (in %s line %d)\n", path, lineno);
    }
    fclose(f);
    return code;
}

void gw_config_free(gw_config_t *cfg)
{
    for (size_t i = 0; i < cfg->nparallel_raw; i++)
        free(cfg->parallel_raw[i]);
    free(cfg->parallel_raw);
    for (size_t i = 0; i < cfg->nparallel; i++) {
        free(cfg->parallel[i].entity);
        free(cfg->parallel[i].key);
    }
    free(cfg->parallel);
    free(cfg->listen_host);
    free(cfg->dsn);
    if (cfg->token != NULL) {
        /* do not leave the secret in freed memory */
        volatile char *t = cfg->token;
        while (*t != '\0')
            *t++ = '\0';
    }
    free(cfg->token);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->tls_client_ca);
    for (size_t i = 0; i < cfg->nallow; i++)
        free(cfg->allow[i]);
    free(cfg->allow);
    for (size_t i = 0; i < cfg->norigins; i++)
        free(cfg->origins[i]);
    free(cfg->origins);
    for (size_t i = 0; i < cfg->nhosts; i++)
        free(cfg->hosts[i]);
    free(cfg->hosts);
    memset(cfg, 0, sizeof(*cfg));
}

/* Every flag of fwire serve for the command's one option parser (cli.h); the id of a flag is
 * its index here. The --config file takes the same names without the dashes. */
enum { OPT_CONFIG = 0, OPT_VERBOSE, OPT_INSECURE_LISTEN, OPT_READ_FROM_PRIMARY = 28 };
static const cli_opt_t serve_opts[] = {
    {"config", 0, true, OPT_CONFIG},
    {"verbose", 'v', false, OPT_VERBOSE},
    {"insecure-listen", 0, false, OPT_INSECURE_LISTEN},
    {"listen", 0, true, 3},
    {"dsn", 0, true, 4},
    {"token", 0, true, 5},
    {"allow", 0, true, 6},
    {"allow-origin", 0, true, 7},
    {"allow-host", 0, true, 8},
    {"tls-cert", 0, true, 9},
    {"tls-key", 0, true, 10},
    {"tls-client-ca", 0, true, 11},
    {"max-connections", 0, true, 12},
    {"max-connections-per-address", 0, true, 13},
    {"max-handshakes-per-address", 0, true, 14},
    {"max-pool-per-connection", 0, true, 15},
    {"max-streams-per-connection", 0, true, 16},
    {"max-concurrent-streams", 0, true, 17},
    {"max-query-seconds", 0, true, 18},
    {"max-frame-bytes", 0, true, 19},
    {"batch-size", 0, true, 20},
    {"progress-ms", 0, true, 21},
    {"pool-size", 0, true, 22},
    {"abandon-seconds", 0, true, 23},
    {"ws-ping-seconds", 0, true, 24},
    {"stream-budget", 0, true, 25},
    {"high-watermark", 0, true, 26},
    {"low-watermark", 0, true, 27},
    {"read-from-primary", 0, false, OPT_READ_FROM_PRIMARY},
    {"drain-seconds", 0, true, 29},
    {"parallel", 0, true, 30},
    {NULL, 0, false, 0},
};

int gw_config_load(gw_config_t *cfg, int argc, char **argv)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen_port = DEFAULT_PORT;
    cfg->max_connections = DEFAULT_MAX_CONNECTIONS;
    cfg->max_streams_per_connection = DEFAULT_MAX_STREAMS_PER_CONN;
    cfg->max_connections_per_address = DEFAULT_MAX_CONN_PER_ADDRESS;
    cfg->max_handshakes_per_address = DEFAULT_MAX_HANDSHAKES_PER_ADDRESS;
    cfg->max_concurrent_streams = DEFAULT_MAX_CONCURRENT;
    cfg->max_query_seconds = DEFAULT_MAX_QUERY_SECONDS;
    cfg->max_frame_bytes = DEFAULT_MAX_FRAME_BYTES;
    cfg->batch_size = DEFAULT_BATCH_SIZE;
    cfg->progress_ms = DEFAULT_PROGRESS_MS;
    cfg->pool_size = DEFAULT_POOL_SIZE;
    cfg->abandon_seconds = DEFAULT_ABANDON_SECONDS;
    cfg->ws_ping_seconds = DEFAULT_WS_PING_SECONDS;
    cfg->stream_budget = DEFAULT_STREAM_BUDGET;
    cfg->high_watermark = DEFAULT_HIGH_WATERMARK;
    cfg->drain_seconds = DEFAULT_DRAIN_SECONDS;
    if ((cfg->listen_host = strdup("127.0.0.1")) == NULL)
        return bad("out of memory");
    bool low_set = false;
    int code = -1;
    /* --config first, wherever it is, so the flags override the file */
    for (int i = 1; code < 0 && i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            code = load_file(cfg, argv[++i], &low_set);
        else if (strncmp(argv[i], "--config=", 9) == 0)
            code = load_file(cfg, argv[i] + 9, &low_set);
    }
    cli_parser_t p;
    cli_init(&p, "serve", serve_opts, argc, argv);
    const char *val;
    int id;
    while (code < 0 && (id = cli_next(&p, &val)) != CLI_DONE) {
        if (id == CLI_ERROR)
            return EXIT_USAGE; /* named by the parser */
        if (id == CLI_HELP) {
            gw_config_usage(stdout);
            return EXIT_OK;
        }
        if (id == CLI_ARG)
            return bad("unexpected argument '%s' (fwire serve --help)", val);
        if (id == OPT_VERBOSE) {
            cfg->verbose = true;
            continue;
        }
        if (id == OPT_INSECURE_LISTEN) {
            cfg->insecure_listen = true;
            continue;
        }
        if (id == OPT_READ_FROM_PRIMARY) {
            cfg->read_from_primary = true;
            continue;
        }
        if (id == OPT_CONFIG)
            continue; /* read first, above */
        code = config_set(cfg, serve_opts[id].name, val, &low_set);
    }
    if (code >= 0)
        return code;
    if (!low_set)
        cfg->low_watermark = cfg->high_watermark / 4;
    if (cfg->low_watermark >= cfg->high_watermark)
        return bad("--low-watermark must be below --high-watermark");
    if (cfg->nallow == 0)
        return bad("--allow ENTITY[,ENTITY...] is required: without it no view may be read");
    /* Off loopback, anyone who can reach the port can read every allowed view: the Host and
     * Origin checks only stop other web sites in a browser, not other machines. */
    if (!gw_host_is_loopback(cfg->listen_host) && cfg->token == NULL)
        return bad("--listen %s is not a loopback address: --token is required (docs/gateway.md, "
                   "Security)",
                   cfg->listen_host);
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
        return bad("--tls-cert and --tls-key go together");
    if (cfg->tls_client_ca != NULL && cfg->tls_cert == NULL)
        return bad("--tls-client-ca needs --tls-cert and --tls-key");
    /* A token sent in the clear off loopback can be read by anyone on the path, and then it
     * opens every allowed view: TLS, or a flag that says the network is trusted. */
    if (!gw_host_is_loopback(cfg->listen_host) && cfg->tls_cert == NULL && !cfg->insecure_listen)
        return bad("--listen %s is not a loopback address: the token would cross the network in "
                   "plaintext; use --tls-cert/--tls-key, or --insecure-listen behind a TLS proxy "
                   "(docs/gateway.md, Security)",
                   cfg->listen_host);
    /* Fair sharing of the pool: by default one client holds at most half of it, so a client
     * whose streams are all paused (or slow) leaves connections for everybody else. */
    if (cfg->max_pool_per_connection == 0)
        cfg->max_pool_per_connection = cfg->pool_size > 1 ? (cfg->pool_size + 1) / 2 : 1;
    if (cfg->max_pool_per_connection > cfg->pool_size)
        cfg->max_pool_per_connection = cfg->pool_size;
    for (size_t i = 0; i < cfg->nallow; i++)
        if (strlen(cfg->allow[i]) > GW_MAX_ENTITY)
            return bad("--allow: entity '%s' is longer than %d bytes", cfg->allow[i],
                       GW_MAX_ENTITY);
    return parse_parallel(cfg);
}
