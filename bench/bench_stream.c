/* SPDX-License-Identifier: MIT */
/*
 * Streaming throughput: `SELECT data FROM <view>` read to the end by several clients, side by
 * side in one run against the same server.
 *
 *   bench_stream [--runs N] [--quick] [--views LIST] [--clients LIST] [--dsn CONNINFO]
 *                [--fwire PATH] [--json OUT] [--timeout SECONDS] [--first-row] [--gap MS]
 *
 * Clients (--clients takes a comma-separated list of client specs, KIND[/OPTION...], run in
 * that order; by default the six kinds below, without options):
 *   null            the physical limit: a blocking unix/TCP socket (test/pq_plain.h), the simple
 *                   query, 256 KiB reads, fw__pq_frame() over the bytes; counts DataRows and
 *                   their value lengths and skips the value bytes without copying them. With
 *                   sslmode require / verify-ca / verify-full in the connection string (TCP), over
 *                   TLS: blocking SSL_read asked for 256 KiB, which hands out one TLS record (up
 *                   to 16 KiB) a call, as a naive reader gets (trust authentication only)
 *   libpq-single    PQsendQuery + PQsetSingleRowMode, a PGresult per row (PQgetvalue and
 *                   PQgetlength of each)
 *   libpq-exec      PQexec: the whole result in memory, then PQgetvalue/PQgetlength of each row
 *   fwire-threaded  fw_runtime_new + fw_conn_connect_sync + fw_stream_start (a query of
 *                   fw_query_relation(VIEW), default options) + fw_stream_next until FW_END
 *   fwire-embedded  fw_conn_new on a uv loop + fw_conn_connect + fw_stream_start with a
 *                   rows-ready callback draining with fw_stream_try_next
 *   fwire-cli       `fwire stream --count VIEW CONNINFO` (the tools/ command, --fwire PATH),
 *                   which prints "ROWS BYTES"; skipped without --fwire or when that binary has
 *                   no `stream` subcommand
 * Options of a spec (a client may appear several times with different options; the ratio
 * columns compare with the first plain `null` and `libpq-single` of the list):
 *   /chunk=N        fwire: fw_query_chunk_size(N)
 *   /adaptive       fwire: fw_query_chunk_adaptive with the default policy
 *   /budget=N[K|M]  fwire: fw_query_max_memory (bytes)
 *   /pred=K         fwire: a client-side predicate (fw_query_predicate) keeping rows whose JSON
 *                   "bucket" is below K (K of 10 of the rows: bucket is id % 10)
 *   /where=K        fwire: the same rows chosen by the server, fw_query_where("bucket" < K)
 *   /slow=NS        any: the consumer spins NS nanoseconds on every row (a slow consumer)
 *   /metrics=0      any: FWIRE_METRICS=0 in the client's environment (fwire records nothing)
 *   /rss=MS         any: a thread samples VmRSS every MS milliseconds (at most 4,000 samples,
 *                   kept in the JSON output): RSS over time
 *   /allocs         fwire: counts fwire's allocations in the query window through
 *                   fw_allocator_set (libuv's and OpenSSL's are not seen there)
 *   /par=N          fwire: fw_query_parallel(N), a parallel stream (a table: ctid ranges; in
 *                   embedded mode the set-up runs on the client's loop too)
 *   /pool           fwire-threaded: the stream's connections come from a pool (one host,
 *                   fw_pool_stream_start_wait), which first runs the same stream once, untimed:
 *                   the timed one runs on backends that have read before (warm), as a
 *                   long-running service's pool would (with /par=N the parts too)
 *   /ext            libpq-single: the extended protocol (PQsendQueryParams, no parameters),
 *                   as fwire uses for any query with more than its source, instead of the
 *                   simple query
 *   /warm           libpq-single, fwire-threaded, fwire-embedded: the same query runs once
 *                   untimed on the connection, then, 5 ms later, the timed one: a warm backend,
 *                   and (threaded) a loop thread that has gone back to sleep, as in a
 *                   long-running service
 * --first-row: every run ends at the timed query's first row (the child prints its line and
 * _exits there: the kernel closes its socket the same way for every client), so a run costs a
 * connect and a first row, not a whole stream: hundreds of runs per client, which a first row
 * needs on these VMs (a fresh backend's first query, thread and vCPU wake-ups, and a backend
 * that preempts the client on the CPU where the client just woke it, in some runs of every
 * client: docs/benchmarks.md, "First rows: many short runs"). The table then has the first
 * row's median and percentiles; rows, CPU and RSS are not measured.
 * --gap MS: a pause of MS milliseconds before each run of a view: the last run's backend has
 * exited by then (with --first-row it ends only when it finds the socket closed) and the
 * machine is quiet, as between a service's requests. Back to back, a run competes with the
 * last one's backend for the two CPUs.
 * With /pred or /where the expected answer is the filtered one, from the server too; for every
 * client the JSON output has "wire_bytes": the protocol bytes received for the query (fwire:
 * fw_stream_stats bytes_received; null: every byte read after the query was sent; -1 libpq).
 *
 * Every client touches each row: its length is summed and its first byte read (the null
 * client reads only the length). The null and libpq clients send the simple query
 * `SELECT data FROM VIEW`; fwire sends `SELECT "data" FROM "VIEW"`, the plain query, as one
 * simple Query too (lib/query.h, fw__query_simple; /where queries, with a condition, go out on
 * the extended protocol): the same rows, the same text.
 *
 * Every measured run is a separate process, so CPU time and peak RSS are the client's own: the
 * program re-executes itself (/proc/self/exe --client NAME --view V --dsn CONNINFO) and the
 * parent collects wait4()'s rusage (user+sys CPU, ru_maxrss) and times the whole process. The
 * child prints one line: rows, bytes (the sum of the `data` lengths), its setup time (process
 * start to "ready to send the query": loop or runtime, connect), the query time (just before
 * sending the query to the last row in hand) and the time to the first row, on CLOCK_MONOTONIC,
 * plus the CPU time of the query window (getrusage(RUSAGE_SELF): every thread) and VmHWM.
 * rows/s and MB/s use the query time: connecting is not streaming. fwire-cli reports neither
 * query nor first-row time, so its rows/s uses the whole-process wall time (marked).
 * Whole-process figures include starting the process: the "process floor" (this program started
 * with --client none, which connects nowhere) is measured and printed with the table. libpq is
 * dlopen()ed by the processes that use it (see pq_load), so the other clients do not carry it.
 *
 * Before any run the expected answer of each view comes from the server itself:
 * `SELECT count(*), sum(octet_length(data::text))` (the text a client receives). Every run of
 * every client must match it, row count and bytes; otherwise the program says so and exits 1:
 * a benchmark that silently compares different work is worse than none.
 *
 * Per view: one warm-up run of each client (not counted, checked all the same), then --runs
 * rounds (default 5; --quick: 3 rounds of v_bench_1k and v_bench_100k) interleaved
 * null, libpq-single, ..., null, libpq-single, ... so every client sees the same machine and
 * server state. A client that fails is dropped for the rest of that view and reported; the exit
 * status is then 1.
 *
 * --count-dsn CONNINFO: where the expected answers come from (default: --dsn). Against
 * bench/replay, which answers every query with its one recording, give the real server here.
 *
 * --dsn defaults to the unix socket of the test cluster as its trust user, from the FW_TEST_*
 * variables of test/with-pg.sh (without them the program exits 77, "skipped"). The null client
 * speaks only trust authentication over a unix socket (host=/dir) or IPv4 (host=a.b.c.d) and
 * understands keyword=value strings only. PG* variables are cleared first so libpq and fwire
 * read nothing but the string.
 *
 * This is a benchmark (meson `benchmark()`), never a test: on a shared 2-core machine the server
 * is the bottleneck and timings are noisy, so only medians and ratios from one run mean anything.
 */
#include "bench_env.h"
#include <fwire.h>

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "pq_plain.h"

#include <netdb.h>
#include <openssl/ssl.h>
#include "proto.h"

#define MAX_RUNS      1000
#define MAX_VIEWS     16
#define MAX_CLIENTS   24
#define MAX_RSS       4000         /* RSS samples kept per run */
#define NULL_READ     (256 * 1024) /* the null client's read size */
#define OUT_KEEP      (128 * 1024) /* how much of a child's output the parent keeps (the tail) */
#define RESULT_TAG    "BENCH_STREAM_RESULT"
#define RSS_TAG       "BENCH_STREAM_RSS"
#define DEFAULT_VIEWS "v_bench_1k,v_bench_100k,v_bench_1m,v_bench_large,v_bench_complex"

static const char *const client_names[] = {"null",           "libpq-single",   "libpq-exec",
                                           "fwire-threaded", "fwire-embedded", "fwire-cli"};
enum { C_NULL = 0, C_PQ_SINGLE, C_PQ_EXEC, C_FW_THREADED, C_FW_EMBEDDED, C_FW_CLI, NKINDS };

/* A client spec's options (see the top of the file); zero/-1: not given. */
typedef struct copts_s {
    size_t chunk, budget;
    bool adaptive, metrics_off, allocs, ext;
    int pred, where; /* keep bucket < K; -1: no filter */
    int par;         /* fw_query_parallel; 0: an ordinary stream */
    bool pool;       /* fwire-threaded: from a pool, after one untimed warm-up stream */
    bool warm;       /* libpq-single, fwire-threaded: the timed query is the connection's second */
    long slow_ns;
    int rss_ms;
} copts_t;

/* Parses "KIND[/OPT...]" into *kind and *o; 0, or -1 with a message in why. */
static int parse_spec(const char *spec, int *kind, copts_t *o, char *why, size_t cap)
{
    memset(o, 0, sizeof(*o));
    o->pred = o->where = -1;
    size_t klen = strcspn(spec, "/");
    *kind = -1;
    for (int k = 0; k < NKINDS; k++)
        if (strlen(client_names[k]) == klen && strncmp(spec, client_names[k], klen) == 0)
            *kind = k;
    if (*kind < 0) {
        snprintf(why, cap, "unknown client %.*s", (int)klen, spec);
        return -1;
    }
    bool fw = *kind == C_FW_THREADED || *kind == C_FW_EMBEDDED;
    for (const char *p = spec + klen; *p == '/';) {
        p++;
        size_t n = strcspn(p, "/");
        char opt[64];
        snprintf(opt, sizeof(opt), "%.*s", (int)(n < sizeof(opt) ? n : sizeof(opt) - 1), p);
        p += n;
        char *eq = strchr(opt, '='), *end = NULL;
        long long v = eq != NULL ? strtoll(eq + 1, &end, 10) : 0;
        if (end != NULL && (*end == 'K' || *end == 'k'))
            v *= 1024, end++;
        else if (end != NULL && (*end == 'M' || *end == 'm'))
            v *= 1024 * 1024, end++;
        bool num_ok = eq != NULL && end != NULL && end != eq + 1 && *end == '\0' && v >= 0;
        if (eq != NULL)
            *eq = '\0';
        bool ok = true, needs_fw = true;
        if (strcmp(opt, "chunk") == 0 && num_ok && v >= 1)
            o->chunk = (size_t)v;
        else if (strcmp(opt, "budget") == 0 && num_ok && v >= 1)
            o->budget = (size_t)v;
        else if (strcmp(opt, "adaptive") == 0 && eq == NULL)
            o->adaptive = true;
        else if (strcmp(opt, "allocs") == 0 && eq == NULL)
            o->allocs = true;
        else if (strcmp(opt, "ext") == 0 && eq == NULL && *kind == C_PQ_SINGLE)
            o->ext = true, needs_fw = false;
        else if (strcmp(opt, "pred") == 0 && num_ok && v >= 1 && v <= 10)
            o->pred = (int)v;
        else if (strcmp(opt, "where") == 0 && num_ok && v >= 1 && v <= 10)
            o->where = (int)v;
        else if (strcmp(opt, "par") == 0 && num_ok && v >= 1 && v <= 16)
            o->par = (int)v;
        else if (strcmp(opt, "pool") == 0 && eq == NULL && *kind == C_FW_THREADED && !o->warm)
            o->pool = true; /* (a pool's stream is a warm one already: not with /warm) */
        else if (strcmp(opt, "warm") == 0 && eq == NULL && !o->pool &&
                 (*kind == C_FW_THREADED || *kind == C_FW_EMBEDDED || *kind == C_PQ_SINGLE))
            o->warm = true, needs_fw = false;
        else if (strcmp(opt, "slow") == 0 && num_ok)
            o->slow_ns = (long)v, needs_fw = false;
        else if (strcmp(opt, "metrics") == 0 && num_ok && v == 0)
            o->metrics_off = true, needs_fw = false;
        else if (strcmp(opt, "rss") == 0 && num_ok && v >= 1)
            o->rss_ms = (int)v, needs_fw = false;
        else
            ok = false;
        if (!ok || (needs_fw && !fw) || (*kind == C_FW_CLI && !o->metrics_off)) {
            snprintf(why, cap, "%s: option %s is unknown, malformed or not for this client", spec,
                     opt);
            return -1;
        }
    }
    if (o->pred >= 0 && o->where >= 0) {
        snprintf(why, cap, "%s: pred and where together", spec);
        return -1;
    }
    return 0;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t tv_ns(struct timeval tv)
{
    return (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
}

static int64_t self_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return tv_ns(ru.ru_utime) + tv_ns(ru.ru_stime);
}

/* ==== the child: one client, one view, one line of results ============================== */

typedef struct child_res_s {
    uint64_t rows, bytes;
    uint64_t touch; /* first bytes of the rows, summed: keeps the reads from being dropped */
    int64_t t_main; /* process start (main) */
    int64_t t_q0;   /* just before the query is sent */
    int64_t t_first, t_end; /* first row in hand; last row in hand (end of the result) */
    int64_t cpu_q0, cpu_end;
    int64_t wire;     /* protocol bytes received for the query; -1: not known */
    int64_t filtered; /* rows a client-side predicate dropped; -1: none */
    int64_t allocs;   /* fwire allocations in the query window; -1: not counted */
} child_res_t;

static copts_t copts;            /* the child's options */
/* --first-row: the timed query's result; its first row ends the process (first_row_exit) */
static child_res_t *first_exit_res;
static void first_row_exit(child_res_t *r);

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}
static _Atomic uint64_t nallocs; /* fwire allocations, when counted */
static uint64_t allocs_q0;

/* Counts one row; first row's time taken here. Inlined into every client's loop. */
static inline void count_row(child_res_t *r, const char *p, size_t len)
{
    if (r->rows++ == 0) {
        r->t_first = now_ns();
        if (r == first_exit_res)
            first_row_exit(r);
    }
    r->bytes += len;
    if (len > 0)
        r->touch += (unsigned char)p[0];
    if (copts.slow_ns > 0) { /* a slow consumer: busy for slow_ns */
        int64_t until = now_ns() + copts.slow_ns;
        while (now_ns() < until)
            ;
    }
}

static void mark_q0(child_res_t *r)
{
    allocs_q0 = atomic_load_explicit(&nallocs, memory_order_relaxed);
    r->cpu_q0 = self_cpu_ns();
    r->t_q0 = now_ns();
}

static void mark_end(child_res_t *r)
{
    r->t_end = now_ns();
    r->cpu_end = self_cpu_ns();
    if (copts.allocs)
        r->allocs = (int64_t)(atomic_load_explicit(&nallocs, memory_order_relaxed) - allocs_q0);
}

/* fwire's allocator when /allocs is given: libc's, counted. */
static void *count_malloc(void *ud, size_t n)
{
    (void)ud;
    atomic_fetch_add_explicit(&nallocs, 1, memory_order_relaxed);
    return malloc(n);
}

static void *count_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    atomic_fetch_add_explicit(&nallocs, 1, memory_order_relaxed);
    return realloc(p, n);
}

static void count_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

/* Calls fn(key, value, ud) for each keyword of a "k=v k='v w' ..." string (backslash escapes
 * inside quotes, as libpq). 0, or -1 with a message when it is not keyword=value (a URI). */
static int dsn_each(const char *s, void (*fn)(const char *key, const char *val, void *ud), void *ud)
{
    while (*s != '\0') {
        while (isspace((unsigned char)*s))
            s++;
        if (*s == '\0')
            break;
        char key[64], val[1024];
        size_t k = 0, v = 0;
        while (*s != '\0' && *s != '=' && !isspace((unsigned char)*s)) {
            if (k + 1 < sizeof(key))
                key[k++] = *s;
            s++;
        }
        key[k] = '\0';
        while (isspace((unsigned char)*s))
            s++;
        if (*s != '=') {
            fprintf(stderr, "bench_stream: null client: cannot read the connection string "
                            "(keyword=value only, no URI)\n");
            return -1;
        }
        s++;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == '\'') {
            s++;
            while (*s != '\0' && *s != '\'') {
                if (*s == '\\' && s[1] != '\0')
                    s++;
                if (v + 1 < sizeof(val))
                    val[v++] = *s;
                s++;
            }
            if (*s == '\'')
                s++;
        } else {
            while (*s != '\0' && !isspace((unsigned char)*s)) {
                if (*s == '\\' && s[1] != '\0')
                    s++;
                if (v + 1 < sizeof(val))
                    val[v++] = *s;
                s++;
            }
        }
        val[v] = '\0';
        fn(key, val, ud);
    }
    return 0;
}

/* The connection keywords the null client understands. */
typedef struct dsn_s {
    char host[512], port[16], user[128], dbname[128];
    char sslmode[16], sslrootcert[512];
} dsn_t;

/* Copies val into dst (cap bytes), cut to fit. Not snprintf("%s"): gcc -O3 inlines dsn_each's
 * 1 KiB buffer here and warns (-Wformat-truncation) that the cut may happen, which is the
 * point; a value that long is not a host, port or name the benchmark can use anyway. */
static void copy_cut(char *dst, size_t cap, const char *val)
{
    size_t n = strlen(val);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, val, n);
    dst[n] = '\0';
}

static void dsn_take(const char *key, const char *val, void *ud)
{
    dsn_t *d = ud;
    if (strcmp(key, "host") == 0)
        copy_cut(d->host, sizeof(d->host), val);
    else if (strcmp(key, "port") == 0)
        copy_cut(d->port, sizeof(d->port), val);
    else if (strcmp(key, "user") == 0)
        copy_cut(d->user, sizeof(d->user), val);
    else if (strcmp(key, "dbname") == 0)
        copy_cut(d->dbname, sizeof(d->dbname), val);
    else if (strcmp(key, "sslmode") == 0)
        copy_cut(d->sslmode, sizeof(d->sslmode), val);
    else if (strcmp(key, "sslrootcert") == 0)
        copy_cut(d->sslrootcert, sizeof(d->sslrootcert), val);
}

static int dsn_parse(const char *s, dsn_t *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->port, sizeof(d->port), "5432");
    if (dsn_each(s, dsn_take, d) < 0)
        return -1;
    if (d->dbname[0] == '\0')
        snprintf(d->dbname, sizeof(d->dbname), "%s", d->user);
    if (d->host[0] == '\0' || d->user[0] == '\0') {
        fprintf(stderr, "bench_stream: null client: the connection string needs host and user\n");
        return -1;
    }
    return 0;
}

/* ---- null: frames only ------------------------------------------------------------------ */

typedef struct null_rd_s {
    int fd;
    SSL *ssl; /* sslmode require, verify-ca or verify-full: blocking SSL_read/SSL_write */
    uint8_t *buf;
    size_t cap, start, end;
    size_t skip; /* bytes of a DataRow already counted that are still to come: dropped unread */
    fw__pq_limits_t lim;
} null_rd_t;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * A DataRow of one column whose header has arrived: 'D', length, ncols = 1, column length.
 * Counts it; returns 0, or -1 when it is not a one-column row whose sizes agree.
 */
static int null_count(child_res_t *r, const uint8_t *p)
{
    uint32_t len = be32(p + 1);
    int32_t col = (int32_t)be32(p + 7);
    if (p[5] != 0 || p[6] != 1 || (col != -1 && (uint32_t)col != len - 10)) {
        fprintf(stderr, "bench_stream: null client: a DataRow that is not one column\n");
        return -1;
    }
    if (r->rows++ == 0) {
        r->t_first = now_ns();
        if (r == first_exit_res)
            first_row_exit(r);
    }
    r->bytes += col > 0 ? (uint32_t)col : 0;
    return 0;
}

/*
 * Reads and walks frames until ReadyForQuery. With `r`, DataRows are counted; an incomplete
 * DataRow is counted as soon as its 11 header bytes are in, and the rest of it is skipped as it
 * arrives, so no value byte is ever copied (a 100 KB row never waits in a buffer). An
 * ErrorResponse fails the call.
 */
/* One read: recv() on the socket, or SSL_read (one TLS record's plaintext at most: no
 * read-ahead, as a naive reader has it). */
static ssize_t null_recv(null_rd_t *rd, uint8_t *p, size_t n)
{
    if (rd->ssl == NULL)
        return plain_recv(rd->fd, p, n);
    size_t got = 0;
    int ok = SSL_read_ex(rd->ssl, p, n, &got);
    return ok == 1 ? (ssize_t)got : -1;
}

static int null_send(null_rd_t *rd, const uint8_t *p, size_t n)
{
    if (rd->ssl == NULL)
        return plain_send_all(rd->fd, p, n);
    size_t put = 0;
    return n == 0 || (SSL_write_ex(rd->ssl, p, n, &put) == 1 && put == n) ? 0 : -1;
}

/* TCP to host (a name or an address) and port; -1 on failure. */
static int null_open_tcp(const char *host, const char *port)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/*
 * sslmode require, verify-ca or verify-full: the SSLRequest, then a blocking TLS handshake
 * (verify-*: the chain against sslrootcert; verify-full: the host name too). 0 or -1.
 */
static int null_tls(null_rd_t *rd, const dsn_t *d, SSL_CTX **ctxp)
{
    static const uint8_t req[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}; /* 80877103 */
    uint8_t ans = 0;
    if (plain_send_all(rd->fd, req, sizeof(req)) != 0 || plain_recv(rd->fd, &ans, 1) != 1 ||
        ans != 'S') {
        fprintf(stderr, "bench_stream: null client: the server refused TLS\n");
        return -1;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    *ctxp = ctx;
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        return -1;
    bool verify = strncmp(d->sslmode, "verify-", 7) == 0;
    if (verify) {
        if (SSL_CTX_load_verify_locations(ctx, d->sslrootcert, NULL) != 1) {
            fprintf(stderr, "bench_stream: null client: cannot load sslrootcert %s\n",
                    d->sslrootcert);
            return -1;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    rd->ssl = SSL_new(ctx);
    if (rd->ssl == NULL || SSL_set_fd(rd->ssl, rd->fd) != 1)
        return -1;
    if (strcmp(d->sslmode, "verify-full") == 0 && SSL_set1_host(rd->ssl, d->host) != 1)
        return -1;
    char sni[sizeof(d->host)]; /* (the macro casts its argument to void *: not a const one) */
    memcpy(sni, d->host, sizeof(sni));
    if (SSL_set_tlsext_host_name(rd->ssl, sni) != 1)
        return -1;
    if (SSL_connect(rd->ssl) != 1) {
        fprintf(stderr, "bench_stream: null client: the TLS handshake failed\n");
        return -1;
    }
    return 0;
}

static int null_until_ready(null_rd_t *rd, child_res_t *r)
{
    for (;;) {
        size_t need = 0;
        while (rd->start < rd->end) {
            fw__pq_frame_t f;
            const uint8_t *p = rd->buf + rd->start;
            size_t have = rd->end - rd->start;
            long n = fw__pq_frame(p, have, &rd->lim, &f, &need);
            if (n < 0) {
                fprintf(stderr, "bench_stream: null client: %s\n", fw_strerror((int)n));
                return -1;
            }
            if (n == 0) {
                if (r != NULL && p[0] == 'D' && have >= 11) {
                    if (null_count(r, p) < 0)
                        return -1;
                    rd->skip = need - have;
                    rd->start = rd->end;
                }
                break;
            }
            if (f.type == 'D' && r != NULL) {
                if (f.len < 6 || null_count(r, p) < 0)
                    return -1;
            } else if (f.type == 'Z') {
                rd->start += (size_t)n;
                return 0;
            } else if (f.type == 'E') {
                fw__pq_msg_t m;
                fw__pq_error_fields_t ef;
                if (fw__pq_parse(f.type, f.body, f.len, &m) == 0 &&
                    fw__pq_error_fields(&m, &ef) == 0)
                    fprintf(stderr, "bench_stream: null client: server error %.*s: %.*s\n",
                            (int)ef.sqlstate.len, (const char *)ef.sqlstate.ptr,
                            (int)ef.message.len, (const char *)ef.message.ptr);
                else
                    fprintf(stderr, "bench_stream: null client: server error\n");
                return -1;
            } else if (f.type == 'R' && (f.len < 4 || be32(f.body) != 0)) {
                fprintf(stderr, "bench_stream: null client: the server asks for a password "
                                "(the null client speaks trust only)\n");
                return -1;
            }
            rd->start += (size_t)n;
        }
        /* Keep the partial message (a few bytes, or a whole non-row message) at the front. */
        size_t left = rd->end - rd->start;
        if (left > 0 && rd->start > 0)
            memmove(rd->buf, rd->buf + rd->start, left);
        rd->start = 0;
        rd->end = left;
        if (need > rd->cap && rd->skip == 0) { /* a message other than a row, larger than cap */
            uint8_t *nb = realloc(rd->buf, need);
            if (nb == NULL)
                return -1;
            rd->buf = nb;
            rd->cap = need;
        }
        ssize_t got = null_recv(rd, rd->buf + rd->end, rd->cap - rd->end);
        if (got <= 0) {
            fprintf(stderr, "bench_stream: null client: the server closed the connection\n");
            return -1;
        }
        rd->end += (size_t)got;
        if (r != NULL)
            r->wire += got;
        if (rd->skip > 0) { /* the buffer was empty: what came first is the rest of a row */
            size_t k = rd->skip < (size_t)got ? rd->skip : (size_t)got;
            rd->skip -= k;
            rd->start = k;
        }
    }
}

static int run_null(const char *dsn, const char *view, child_res_t *r)
{
    dsn_t d;
    if (dsn_parse(dsn, &d) < 0)
        return -1;
    /* (as libpq: no TLS over a unix socket, whatever sslmode says) */
    bool tls = d.host[0] != '/' &&
               (strcmp(d.sslmode, "require") == 0 || strncmp(d.sslmode, "verify-", 7) == 0);
    int fd = d.host[0] == '/' ? plain_open_unix(d.host, d.port) : null_open_tcp(d.host, d.port);
    if (fd < 0) {
        fprintf(stderr, "bench_stream: null client: connect to %s port %s: %s\n", d.host, d.port,
                strerror(errno));
        return -1;
    }
    null_rd_t rd;
    memset(&rd, 0, sizeof(rd));
    rd.fd = fd;
    SSL_CTX *ctx = NULL;
    if (tls && null_tls(&rd, &d, &ctx) != 0) {
        SSL_free(rd.ssl);
        SSL_CTX_free(ctx);
        close(fd);
        return -1;
    }
    rd.cap = NULL_READ;
    rd.buf = malloc(rd.cap);
    fw__pq_limits_init(&rd.lim);
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, NULL);
    const char *kv[] = {"user",         d.user, "database", d.dbname, "application_name",
                        "bench_stream", NULL};
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT data FROM %s", view);
    int rc = rd.buf == NULL ? -1 : fw__pq_put_startup(&b, kv);
    if (rc == 0)
        rc = null_send(&rd, b.data, b.len);
    if (rc == 0)
        rc = null_until_ready(&rd, NULL);
    fw__pq_buf_reset(&b);
    if (rc == 0)
        rc = fw__pq_put_query(&b, sql);
    if (rc == 0) {
        mark_q0(r);
        r->wire = 0;
        rc = null_send(&rd, b.data, b.len);
    }
    if (rc == 0)
        rc = null_until_ready(&rd, r);
    mark_end(r);
    fw__pq_buf_reset(&b);
    if (fw__pq_put_terminate(&b) == 0)
        (void)null_send(&rd, b.data, b.len);
    if (rd.ssl != NULL)
        (void)SSL_shutdown(rd.ssl);
    SSL_free(rd.ssl);
    SSL_CTX_free(ctx);
    close(fd);
    fw__pq_buf_free(&b);
    free(rd.buf);
    return rc == 0 ? 0 : -1;
}

/* ---- libpq ------------------------------------------------------------------------------ */

/*
 * libpq is loaded with dlopen() by the processes that use it (its clients and the parent), not
 * linked: linking would map libpq and its ~20 dependencies (Kerberos, LDAP, GnuTLS, ...) into
 * every child, the null and fwire clients included: about 4 MiB of RSS (a do-nothing program
 * is 3.1 MiB with libuv and OpenSSL linked, 6.9 MiB with libpq) and the CPU of loading them.
 */
static struct pq_api_s {
    PGconn *(*connectdb)(const char *conninfo);
    ConnStatusType (*status)(const PGconn *conn);
    char *(*error_message)(const PGconn *conn);
    void (*finish)(PGconn *conn);
    int (*send_query)(PGconn *conn, const char *query);
    int (*send_query_params)(PGconn *conn, const char *command, int nParams, const Oid *paramTypes,
                             const char *const *paramValues, const int *paramLengths,
                             const int *paramFormats, int resultFormat);
    int (*set_single_row_mode)(PGconn *conn);
    PGresult *(*get_result)(PGconn *conn);
    ExecStatusType (*result_status)(const PGresult *res);
    char *(*get_value)(const PGresult *res, int row, int col);
    int (*get_length)(const PGresult *res, int row, int col);
    char *(*result_error_message)(const PGresult *res);
    void (*clear)(PGresult *res);
    PGresult *(*exec)(PGconn *conn, const char *query);
    int (*ntuples)(const PGresult *res);
    int (*server_version)(const PGconn *conn);
    int (*lib_version)(void);
} pq;

/* Loads libpq.so.5 into `pq`; 0, or -1 with a message. */
static int pq_load(void)
{
    static const struct {
        const char *name;
        size_t offset;
    } syms[] = {
        {"PQconnectdb", offsetof(struct pq_api_s, connectdb)},
        {"PQstatus", offsetof(struct pq_api_s, status)},
        {"PQerrorMessage", offsetof(struct pq_api_s, error_message)},
        {"PQfinish", offsetof(struct pq_api_s, finish)},
        {"PQsendQuery", offsetof(struct pq_api_s, send_query)},
        {"PQsendQueryParams", offsetof(struct pq_api_s, send_query_params)},
        {"PQsetSingleRowMode", offsetof(struct pq_api_s, set_single_row_mode)},
        {"PQgetResult", offsetof(struct pq_api_s, get_result)},
        {"PQresultStatus", offsetof(struct pq_api_s, result_status)},
        {"PQgetvalue", offsetof(struct pq_api_s, get_value)},
        {"PQgetlength", offsetof(struct pq_api_s, get_length)},
        {"PQresultErrorMessage", offsetof(struct pq_api_s, result_error_message)},
        {"PQclear", offsetof(struct pq_api_s, clear)},
        {"PQexec", offsetof(struct pq_api_s, exec)},
        {"PQntuples", offsetof(struct pq_api_s, ntuples)},
        {"PQserverVersion", offsetof(struct pq_api_s, server_version)},
        {"PQlibVersion", offsetof(struct pq_api_s, lib_version)},
    };
    void *h = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "bench_stream: %s\n", dlerror());
        return -1;
    }
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        void *f = dlsym(h, syms[i].name);
        if (f == NULL) {
            fprintf(stderr, "bench_stream: libpq.so.5 has no %s\n", syms[i].name);
            return -1;
        }
        /* POSIX: a function's address fits a void *; memcpy is the C-pedantic way across. */
        memcpy((char *)&pq + syms[i].offset, &f, sizeof(f));
    }
    return 0;
}

static PGconn *pq_connect(const char *dsn)
{
    if (pq.connectdb == NULL && pq_load() < 0)
        return NULL;
    PGconn *pc = pq.connectdb(dsn);
    if (pc == NULL || pq.status(pc) != CONNECTION_OK) {
        fprintf(stderr, "bench_stream: libpq: %s", pc ? pq.error_message(pc) : "out of memory\n");
        pq.finish(pc);
        return NULL;
    }
    return pc;
}

static int run_pq_single(const char *dsn, const char *view, child_res_t *r)
{
    PGconn *pc = pq_connect(dsn);
    if (pc == NULL)
        return -1;
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT data FROM %s", view);
    int rc = 0;
    for (int round = copts.warm ? 0 : 1; round < 2 && rc == 0; round++) {
        child_res_t warm;
        memset(&warm, 0, sizeof(warm));
        child_res_t *res_r = round == 0 ? &warm : r;
        if (round == 1 && copts.warm)
            nap_ms(5);
        mark_q0(res_r);
        int sent = copts.ext ? pq.send_query_params(pc, sql, 0, NULL, NULL, NULL, NULL, 0)
                             : pq.send_query(pc, sql);
        if (!sent || !pq.set_single_row_mode(pc)) {
            fprintf(stderr, "bench_stream: libpq-single: %s", pq.error_message(pc));
            pq.finish(pc);
            return -1;
        }
        PGresult *res;
        while ((res = pq.get_result(pc)) != NULL) {
            ExecStatusType st = pq.result_status(res);
            if (st == PGRES_SINGLE_TUPLE)
                count_row(res_r, pq.get_value(res, 0, 0), (size_t)pq.get_length(res, 0, 0));
            else if (st != PGRES_TUPLES_OK) {
                fprintf(stderr, "bench_stream: libpq-single: %s", pq.result_error_message(res));
                rc = -1;
            }
            pq.clear(res);
        }
        mark_end(res_r);
    }
    pq.finish(pc);
    return rc;
}

static int run_pq_exec(const char *dsn, const char *view, child_res_t *r)
{
    PGconn *pc = pq_connect(dsn);
    if (pc == NULL)
        return -1;
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT data FROM %s", view);
    mark_q0(r);
    PGresult *res = pq.exec(pc, sql);
    int rc = 0;
    if (pq.result_status(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_stream: libpq-exec: %s",
                res ? pq.result_error_message(res) : pq.error_message(pc));
        rc = -1;
    } else {
        int n = pq.ntuples(res);
        for (int i = 0; i < n; i++)
            count_row(r, pq.get_value(res, i, 0), (size_t)pq.get_length(res, i, 0));
    }
    mark_end(r);
    pq.clear(res);
    pq.finish(pc);
    return rc;
}

/* ---- fwire, threaded -------------------------------------------------------------------- */

static void fw_report(const char *client, int rc, const fw_error_t *err)
{
    const char *msg = err != NULL && err->message[0] != '\0' ? err->message : fw_strerror(rc);
    fprintf(stderr, "bench_stream: %s: %s: %s%s%s\n", client, fw_err_name(rc), msg,
            err != NULL && err->sqlstate[0] ? " SQLSTATE " : "", err ? err->sqlstate : "");
}

/* /pred=K: keeps rows whose "bucket" (a digit, id % 10) is below K. */
static bool bucket_below(void *ud, const fw_row_t *row)
{
    static const char key[] = "\"bucket\": ";
    int k = *(const int *)ud;
    if (row->is_null)
        return false;
    size_t n = sizeof(key) - 1; /* memmem is not POSIX: the first byte by memchr, then compare */
    for (const char *p = row->json, *end = row->json + row->len; (size_t)(end - p) > n;) {
        const char *q = memchr(p, '"', (size_t)(end - p) - n);
        if (q == NULL)
            return false;
        if (memcmp(q, key, n) == 0)
            return q[n] - '0' < k;
        p = q + 1;
    }
    return false;
}

static int make_query(const char *client, const char *view, fw_query_t **q)
{
    int rc = fw_query_new(q);
    if (rc == 0)
        rc = fw_query_relation(*q, view);
    if (rc == 0 && copts.chunk > 0)
        rc = fw_query_chunk_size(*q, copts.chunk);
    if (rc == 0 && copts.adaptive)
        rc = fw_query_chunk_adaptive(*q, NULL);
    if (rc == 0 && copts.budget > 0)
        rc = fw_query_max_memory(*q, copts.budget);
    if (rc == 0 && copts.pred >= 0)
        rc = fw_query_predicate(*q, bucket_below, &copts.pred);
    if (rc == 0 && copts.par > 0)
        rc = fw_query_parallel(*q, copts.par);
    if (rc == 0 && copts.where >= 0) {
        char k[16];
        snprintf(k, sizeof(k), "%d", copts.where);
        rc = fw_query_where(*q, "bucket", FW_OP_LT, FW_VALUE_NUMBER, k);
    }
    if (rc < 0)
        fw_report(client, rc, NULL);
    return rc;
}

/* The stream's wire bytes and filtered rows into r, before it is freed. */
static void take_stats(const fw_stream_t *s, child_res_t *r)
{
    fw_stream_stats_t st;
    fw_stream_stats(s, &st);
    r->wire = (int64_t)st.bytes_received;
    r->filtered = (int64_t)st.rows_filtered;
}

/* Threaded mode: every row of s into r, the end marked, the stream's stats taken. Returns
 * the end (FW_END or the failure, reported). */
static int drain_threaded(fw_stream_t *s, child_res_t *r, const char *client)
{
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_next(s, &row, -1)) == FW_ROW || rc == FW_AGAIN)
        if (rc == FW_ROW)
            count_row(r, row.json, row.len);
    mark_end(r);
    take_stats(s, r);
    if (rc < 0)
        fw_report(client, rc, fw_stream_error(s));
    return rc;
}

/* /pool: a pool of one host; one untimed run of q warms its backends, then the timed run. */
static int run_fw_threaded_pool(fw_runtime_t *rt, const char *dsn, const fw_query_t *q,
                                child_res_t *r)
{
    fw_error_t err;
    memset(&err, 0, sizeof(err));
    fw_pool_opts_t po;
    fw_pool_opts_init(&po);
    po.conninfo = dsn;
    po.use_environment = false;
    po.max_size = copts.par > 0 ? (unsigned)copts.par : 1;
    fw_pool_t *pool = NULL;
    int rc = fw_pool_new_rt(&pool, rt, &po, &err);
    if (rc < 0) {
        fw_report("fwire-threaded/pool", rc, &err);
        return rc;
    }
    for (int round = 0; round < 2 && rc >= 0; round++) {
        child_res_t warm;
        memset(&warm, 0, sizeof(warm));
        child_res_t *res = round == 0 ? &warm : r;
        fw_stream_t *s = NULL;
        mark_q0(res);
        rc = fw_pool_stream_start_wait(pool, FW_POOL_READ, 0, q, &s, &err);
        if (rc < 0) {
            mark_end(res);
            fw_report("fwire-threaded/pool", rc, &err);
            break;
        }
        rc = drain_threaded(s, res, "fwire-threaded/pool");
        fw_stream_free(s);
    }
    int cr = fw_pool_close_sync(pool);
    if (cr < 0)
        fw_report("fwire-threaded/pool: close", cr, NULL);
    return rc == FW_END && cr == 0 ? FW_END : -1;
}

static int run_fw_threaded(const char *dsn, const char *view, child_res_t *r)
{
    fw_error_t err;
    memset(&err, 0, sizeof(err));
    fw_query_t *q = NULL;
    if (make_query("fwire-threaded", view, &q) < 0)
        return -1;
    fw_runtime_t *rt = NULL;
    int rc = fw_runtime_new(&rt);
    if (rc < 0) {
        fw_report("fwire-threaded", rc, NULL);
        fw_query_free(q);
        return -1;
    }
    if (copts.pool) {
        rc = run_fw_threaded_pool(rt, dsn, q, r);
        fw_runtime_free(rt);
        fw_query_free(q);
        return rc == FW_END ? 0 : -1;
    }
    fw_conn_opts_t opts;
    fw_conn_opts_init(&opts);
    opts.conninfo = dsn;
    opts.use_environment = false;
    fw_conn_t *conn = NULL;
    rc = fw_conn_connect_sync(rt, &opts, &conn, &err);
    fw_stream_t *s = NULL;
    if (rc == 0 && copts.warm) { /* the same query once, untimed; then the timed one */
        child_res_t warm;
        memset(&warm, 0, sizeof(warm));
        mark_q0(&warm);
        rc = fw_stream_start(conn, q, NULL, NULL, &s, &err);
        if (rc < 0)
            fw_report("fwire-threaded/warm", rc, &err);
        else if (drain_threaded(s, &warm, "fwire-threaded/warm") != FW_END)
            rc = -1; /* reported by drain_threaded */
        fw_stream_free(s);
        s = NULL;
        if (rc < 0) {
            fw_conn_close_sync(conn);
            fw_runtime_free(rt);
            fw_query_free(q);
            return -1;
        }
        nap_ms(5);
    }
    if (rc == 0) {
        mark_q0(r);
        rc = fw_stream_start(conn, q, NULL, NULL, &s, &err);
    }
    if (rc < 0) {
        mark_end(r);
        fw_report("fwire-threaded", rc, &err);
    } else {
        rc = drain_threaded(s, r, "fwire-threaded");
    }
    fw_stream_free(s);
    fw_conn_close_sync(conn);
    fw_runtime_free(rt);
    fw_query_free(q);
    return rc == FW_END ? 0 : -1;
}

/* ---- fwire, embedded -------------------------------------------------------------------- */

typedef struct emb_s {
    fw_query_t *q;
    fw_stream_t *s;
    fw_conn_t *conn;
    child_res_t *r;
    child_res_t *cur; /* r, or (/warm) `warm` during the untimed first query */
    child_res_t warm;
    uv_timer_t timer; /* /warm: the 5 ms between the two queries */
    int status;       /* 1 while running; then FW_END or a negative code */
    fw_error_t err;
} emb_t;

static void emb_start(emb_t *e, child_res_t *res);

static void emb_second(uv_timer_t *t)
{
    emb_t *e = t->data;
    emb_start(e, e->r);
}

static void emb_ready(fw_stream_t *s, void *ud)
{
    emb_t *e = ud;
    if (e->status != 1)
        return;
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_try_next(s, &row)) == FW_ROW)
        count_row(e->cur, row.json, row.len);
    if (rc == FW_AGAIN)
        return;
    mark_end(e->cur);
    take_stats(s, e->cur);
    if (rc < 0)
        e->err = *fw_stream_error(s);
    fw_stream_free(s);
    e->s = NULL;
    if (rc == FW_END && e->cur == &e->warm) { /* /warm: now the timed query, 5 ms later */
        uv_timer_start(&e->timer, emb_second, 5, 0);
        return;
    }
    e->status = rc;
}

static void emb_start(emb_t *e, child_res_t *res)
{
    e->cur = res;
    mark_q0(res);
    int rc = fw_stream_start(e->conn, e->q, emb_ready, e, &e->s, &e->err);
    if (rc < 0)
        e->status = rc;
}

static void emb_connected(fw_conn_t *conn, int status, const fw_error_t *err, void *ud)
{
    emb_t *e = ud;
    if (status < 0) {
        e->status = status;
        if (err != NULL)
            e->err = *err;
        return;
    }
    e->conn = conn;
    emb_start(e, copts.warm ? &e->warm : e->r);
}

static int run_fw_embedded(const char *dsn, const char *view, child_res_t *r)
{
    emb_t e;
    memset(&e, 0, sizeof(e));
    e.r = r;
    e.status = 1;
    if (make_query("fwire-embedded", view, &e.q) < 0)
        return -1;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fw_query_free(e.q);
        return -1;
    }
    uv_timer_init(&loop, &e.timer);
    e.timer.data = &e;
    fw_conn_opts_t opts;
    fw_conn_opts_init(&opts);
    opts.conninfo = dsn;
    opts.use_environment = false;
    fw_conn_t *conn = NULL;
    int rc = fw_conn_new(&conn, &loop, &opts, &e.err);
    if (rc == 0) {
        rc = fw_conn_connect(conn, emb_connected, &e);
        if (rc < 0)
            fw_conn_close(conn, NULL, NULL);
    }
    if (rc < 0) {
        e.status = rc;
    } else {
        /* Run until the stream (or the connect) has ended, then close and run to the end. */
        while (e.status == 1 && uv_run(&loop, UV_RUN_ONCE) != 0)
            ;
        if (e.status == 1) {
            fprintf(stderr, "bench_stream: fwire-embedded: the loop ran out of work before the "
                            "stream ended\n");
            e.status = FW_ECLOSED;
        }
        if (e.s != NULL)
            fw_stream_free(e.s);
        fw_conn_close(conn, NULL, NULL);
    }
    uv_close((uv_handle_t *)&e.timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (e.status < 0) {
        if (r->t_end == 0)
            mark_end(r);
        fw_report("fwire-embedded", e.status, &e.err);
    }
    int lc = uv_loop_close(&loop);
    if (lc != 0)
        fprintf(stderr, "bench_stream: fwire-embedded: the loop still has handles: %s\n",
                uv_strerror(lc));
    fw_query_free(e.q);
    return e.status == FW_END && lc == 0 ? 0 : -1;
}

/* ---- the child's entry ------------------------------------------------------------------ */

/* The "KEY:" line of /proc/self/status (this process, every thread), KiB; -1 if unreadable. */
static long proc_status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long kib = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, key, n) == 0)
            kib = strtol(line + n, NULL, 10);
    fclose(f);
    return kib;
}

/* VmHWM (peak) and VmRSS (now) of this process, KiB; -1 if unreadable. */
static long vm_hwm_kib(void)
{
    return proc_status_kib("VmHWM:");
}

static long vm_rss_kib(void)
{
    return proc_status_kib("VmRSS:");
}

/* /rss=MS: a thread samples VmRSS every rss_ms until told to stop; (ms since start, KiB). */
static struct rss_samples_s {
    pthread_t th;
    _Atomic bool stop;
    int n, every; /* samples kept; keep one of `every` once the array is full */
    long t_ms[MAX_RSS], kib[MAX_RSS];
} rss_s;

static void *rss_thread(void *arg)
{
    (void)arg;
    int64_t t0 = now_ns();
    long seen = 0;
    rss_s.every = 1;
    while (!atomic_load_explicit(&rss_s.stop, memory_order_relaxed)) {
        if (seen++ % rss_s.every == 0) {
            if (rss_s.n == MAX_RSS) { /* thin out: keep every other sample, sample half as often */
                for (int i = 0; i < MAX_RSS / 2; i++) {
                    rss_s.t_ms[i] = rss_s.t_ms[2 * i];
                    rss_s.kib[i] = rss_s.kib[2 * i];
                }
                rss_s.n = MAX_RSS / 2;
                rss_s.every *= 2;
            }
            rss_s.t_ms[rss_s.n] = (long)((now_ns() - t0) / 1000000);
            rss_s.kib[rss_s.n++] = vm_rss_kib();
        }
        struct timespec ts = {copts.rss_ms / 1000, (long)(copts.rss_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* The child's one line of results. */
static void print_result(const child_res_t *r)
{
    printf(RESULT_TAG " rows=%llu bytes=%llu setup_ns=%lld query_ns=%lld first_ns=%lld "
                      "query_cpu_ns=%lld hwm_kib=%ld touch=%llu wire=%lld filtered=%lld "
                      "allocs=%lld\n",
           (unsigned long long)r->rows, (unsigned long long)r->bytes,
           (long long)(r->t_q0 - r->t_main), (long long)(r->t_end - r->t_q0),
           (long long)(r->rows > 0 ? r->t_first - r->t_q0 : -1),
           (long long)(r->cpu_end - r->cpu_q0), vm_hwm_kib(), (unsigned long long)r->touch,
           (long long)r->wire, (long long)r->filtered, (long long)r->allocs);
}

/* --first-row: the timed query's first row is in hand; the process says so and ends at once,
 * for every client the same way (_exit: the kernel closes the socket, the backend finds it
 * closed at its next send and ends). The rest of the result would only make the run longer. */
static void first_row_exit(child_res_t *r)
{
    mark_end(r);
    print_result(r);
    _exit(fflush(stdout) == 0 ? 0 : 1);
}

static int child_main(const char *client, const char *view, const char *dsn, int64_t t_main)
{
    child_res_t r;
    memset(&r, 0, sizeof(r));
    r.t_main = t_main;
    r.wire = r.filtered = r.allocs = -1;
    int kind = -1, rc;
    char why[256];
    if (strcmp(client, "none") != 0 && parse_spec(client, &kind, &copts, why, sizeof(why)) < 0) {
        fprintf(stderr, "bench_stream: %s\n", why);
        return 2;
    }
    if (copts.metrics_off)
        setenv("FWIRE_METRICS", "0", 1); /* before fwire reads it */
    if (copts.allocs) {
        fw_allocator_t a = {count_malloc, count_realloc, count_free, NULL};
        if (fw_allocator_set(&a) != 0)
            return 1;
    }
    if (copts.rss_ms > 0 && pthread_create(&rss_s.th, NULL, rss_thread, NULL) != 0)
        return 1;
    if (getenv("FW_BENCH_FIRST_ROW") != NULL)
        first_exit_res = &r;
    if (kind == C_NULL)
        rc = run_null(dsn, view, &r);
    else if (kind == C_PQ_SINGLE)
        rc = run_pq_single(dsn, view, &r);
    else if (kind == C_PQ_EXEC)
        rc = run_pq_exec(dsn, view, &r);
    else if (kind == C_FW_THREADED)
        rc = run_fw_threaded(dsn, view, &r);
    else if (kind == C_FW_EMBEDDED)
        rc = run_fw_embedded(dsn, view, &r);
    else if (strcmp(client, "none") == 0) { /* the process floor: start, exit */
        mark_q0(&r);
        mark_end(&r);
        rc = 0;
    } else {
        fprintf(stderr, "bench_stream: %s is not a client run in-process\n", client);
        return 2;
    }
    if (copts.rss_ms > 0) {
        atomic_store_explicit(&rss_s.stop, true, memory_order_relaxed);
        pthread_join(rss_s.th, NULL);
    }
    if (rc < 0)
        return 1;
    print_result(&r);
    if (copts.rss_ms > 0) {
        printf(RSS_TAG " %d", rss_s.n);
        for (int i = 0; i < rss_s.n; i++)
            printf(" %ld:%ld", rss_s.t_ms[i], rss_s.kib[i]);
        printf("\n");
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ==== the parent: spawn, measure, check, report ========================================== */

typedef struct run_s {
    int64_t wall_ns, cpu_ns; /* whole process: parent's clock, wait4() user+sys */
    long maxrss_kib;         /* wait4() ru_maxrss */
    uint64_t rows, bytes;
    int64_t setup_ns, query_ns, first_ns, qcpu_ns; /* from the child; -1: not measured */
    long hwm_kib;                                  /* the child's VmHWM; -1: not measured */
    int64_t wire, filtered, allocs;                /* from the child; -1: not measured */
    int nrss;                                      /* /rss samples: ms since start, KiB */
    long *rss_ms, *rss_kib;
} run_t;

typedef struct cell_s { /* one (view, client) */
    run_t *runs;        /* --runs of them */
    int n;
    bool failed, mismatch;
    char why[512];
    uint64_t rows, bytes; /* what the server says this client must get */
    /* medians (min/max for wall) over the counted runs */
    double rows_s, mb_s, cpu_row, qcpu_row, rss_mib, hwm_mib, first_ms, query_ms, wall_ms;
    double wall_min, wall_max, wire_mb, allocs, cpu_ms;
    double first_p10, first_p25, first_p75, first_p90; /* first row ms, nearest rank */
} cell_t;

typedef struct view_s {
    char name[64];
    cell_t cell[MAX_CLIENTS];
} view_t;

typedef struct client_s {
    char spec[64]; /* KIND[/OPT...] */
    int kind;
    int filter; /* bucket < filter from /pred or /where; -1: none */
} client_t;

typedef struct bench_s {
    const char *dsn;
    const char *count_dsn; /* where the expected answers come from */
    const char *fwire;     /* --fwire PATH, or NULL */
    int timeout_s;
    bool first_row; /* --first-row: each run ends at its first row (FW_BENCH_FIRST_ROW) */
    int gap_ms;     /* --gap: a pause before each run of a view */
    client_t cl[MAX_CLIENTS];
    int ncl;
    int ref_null, ref_pqs; /* the first plain null and libpq-single in cl, or -1 */
    const char *argv0;
} bench_t;

static volatile sig_atomic_t interrupted;
static pid_t running_child;

static void on_signal(int sig)
{
    interrupted = sig;
    if (running_child > 0)
        kill(running_child, SIGKILL); /* our own child, by its id */
}

/* execve() takes char *const argv[]; it never writes through them. */
static char *mut(const char *s)
{
    return (char *)(uintptr_t)s;
}

/* Appends to a buffer that keeps the last OUT_KEEP - 1 bytes of a child's output. */
typedef struct tail_s {
    char buf[OUT_KEEP];
    size_t len;
    bool cut;
} tail_t;

static void tail_add(tail_t *t, const char *p, size_t n)
{
    if (n >= sizeof(t->buf) - 1) {
        p += n - (sizeof(t->buf) - 1);
        n = sizeof(t->buf) - 1;
        t->len = 0;
        t->cut = true;
    }
    if (t->len + n > sizeof(t->buf) - 1) {
        size_t drop = t->len + n - (sizeof(t->buf) - 1);
        memmove(t->buf, t->buf + drop, t->len - drop);
        t->len -= drop;
        t->cut = true;
    }
    memcpy(t->buf + t->len, p, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

/*
 * Runs argv with env in a child process, its stdout and stderr on a pipe (the last 32 KiB
 * kept in *out). Returns the wait status in *status (-1 when it could not run) and fills the
 * whole-process figures of *run. A child that outlives the timeout is killed.
 */
static void spawn(const bench_t *b, char *const argv[], char *const env[], run_t *run, tail_t *out,
                  int *status)
{
    memset(out, 0, sizeof(*out));
    *status = -1;
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(out->buf, sizeof(out->buf), "pipe: %s\n", strerror(errno));
        return;
    }
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    int64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(out->buf, sizeof(out->buf), "fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) { /* only async-signal-safe calls until exec */
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        if (fds[1] > 2)
            close(fds[1]);
        execve(argv[0], argv, env);
        static const char msg[] = "bench_stream: exec failed\n";
        ssize_t w = write(2, msg, sizeof(msg) - 1);
        (void)w;
        _exit(127);
    }
    running_child = pid;
    close(fds[1]);
    int64_t deadline = t0 + (int64_t)b->timeout_s * 1000000000;
    bool killed = false;
    for (;;) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN, .revents = 0};
        int64_t left_ms = (deadline - now_ns()) / 1000000;
        int pr = poll(&pfd, 1, killed ? -1 : (int)(left_ms > 0 ? left_ms : 0));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0) {
            kill(pid, SIGKILL);
            killed = true;
            continue;
        }
        char buf[65536];
        ssize_t n = read(fds[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        tail_add(out, buf, (size_t)n);
    }
    close(fds[0]);
    struct rusage ru;
    pid_t w;
    do {
        w = wait4(pid, status, 0, &ru);
    } while (w < 0 && errno == EINTR);
    int64_t t1 = now_ns();
    running_child = 0;
    if (killed) {
        char note[96];
        snprintf(note, sizeof(note), "\n[killed after the %d s timeout]\n", b->timeout_s);
        tail_add(out, note, strlen(note));
    }
    run->wall_ns = t1 - t0;
    run->cpu_ns = tv_ns(ru.ru_utime) + tv_ns(ru.ru_stime);
    run->maxrss_kib = ru.ru_maxrss;
}

/* Finds the line `fwire stream --count` prints, "ROWS BYTES", in its output (stderr may hold
 * notes too). True when found. */
static bool parse_cli_counts(const char *s, uint64_t *rows, uint64_t *bytes)
{
    for (const char *line = s; *line != '\0'; line += strcspn(line, "\n"), line += *line != '\0') {
        unsigned long long r, b;
        int end = 0;
        if (sscanf(line, "%llu %llu%n", &r, &b, &end) == 2 && isdigit((unsigned char)line[0]) &&
            (line[end] == '\n' || line[end] == '\0')) {
            *rows = r;
            *bytes = b;
            return true;
        }
    }
    return false;
}

/* One run of one client (-1: "none", the process floor) on one view; 0, or -1 with the reason
 * in why[0..cap). */
static int run_once(const bench_t *b, int client, const char *view, char *why, size_t cap,
                    run_t *run)
{
    const char *name = client < 0 ? "none" : b->cl[client].spec;
    bool cli = client >= 0 && b->cl[client].kind == C_FW_CLI;
    memset(run, 0, sizeof(*run));
    run->setup_ns = run->query_ns = run->first_ns = run->qcpu_ns = -1;
    run->hwm_kib = -1;
    run->wire = run->filtered = run->allocs = -1;
    static tail_t out;
    int status;
    if (cli) {
        char *argv[] = {mut(b->fwire), mut("stream"), mut("--count"), mut(view), mut(b->dsn), NULL};
        bool moff = strstr(name, "/metrics=0") != NULL;
        if (moff)
            setenv("FWIRE_METRICS", "0", 1);
        spawn(b, argv, environ, run, &out, &status);
        if (moff)
            unsetenv("FWIRE_METRICS");
    } else {
        char *argv[] = {mut("/proc/self/exe"), mut("--client"), mut(name), mut("--view"), mut(view),
                        mut("--dsn"),          mut(b->dsn),     NULL};
        spawn(b, argv, environ, run, &out, &status);
    }
    bool exited_ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    bool parsed = false;
    if (cli) {
        parsed = exited_ok && parse_cli_counts(out.buf, &run->rows, &run->bytes);
    } else {
        const char *line = strstr(out.buf, RESULT_TAG " ");
        unsigned long long rows, bytes, touch;
        long long setup, query, first, qcpu, wire, filtered, allocs;
        long hwm;
        if (exited_ok && line != NULL &&
            sscanf(line,
                   RESULT_TAG " rows=%llu bytes=%llu setup_ns=%lld query_ns=%lld first_ns=%lld "
                              "query_cpu_ns=%lld hwm_kib=%ld touch=%llu wire=%lld filtered=%lld "
                              "allocs=%lld",
                   &rows, &bytes, &setup, &query, &first, &qcpu, &hwm, &touch, &wire, &filtered,
                   &allocs) == 11) {
            parsed = true;
            run->wire = wire;
            run->filtered = filtered;
            run->allocs = allocs;
            const char *rl = strstr(line, RSS_TAG " ");
            int n = 0, used = 0;
            if (rl != NULL && sscanf(rl, RSS_TAG " %d%n", &n, &used) == 1 && n > 0 &&
                n <= MAX_RSS) {
                run->rss_ms = calloc((size_t)n, sizeof(long));
                run->rss_kib = calloc((size_t)n, sizeof(long));
                const char *p = rl + used;
                for (int i = 0; run->rss_ms != NULL && run->rss_kib != NULL && i < n; i++) {
                    int k = 0;
                    if (sscanf(p, " %ld:%ld%n", &run->rss_ms[i], &run->rss_kib[i], &k) != 2)
                        break;
                    p += k;
                    run->nrss = i + 1;
                }
            }
            run->rows = rows;
            run->bytes = bytes;
            run->setup_ns = setup;
            run->query_ns = query;
            run->first_ns = first;
            run->qcpu_ns = qcpu;
            run->hwm_kib = hwm;
        }
        /* Anything else a healthy client printed (a warning) is worth seeing. */
        if (parsed && line != out.buf)
            fprintf(stderr, "[%s %s] %.*s", name, view, (int)(line - out.buf), out.buf);
    }
    if (parsed)
        return 0;
    char st[64];
    if (status == -1)
        snprintf(st, sizeof(st), "did not run");
    else if (WIFSIGNALED(status))
        snprintf(st, sizeof(st), "killed by signal %d", WTERMSIG(status));
    else if (WEXITSTATUS(status) != 0)
        snprintf(st, sizeof(st), "exit status %d", WEXITSTATUS(status));
    else
        snprintf(st, sizeof(st), "no result line in its output");
    snprintf(why, cap, "%s", st);
    fprintf(stderr, "bench_stream: %s on %s failed (%s); its output%s:\n%s%s", name, view, st,
            out.cut ? " (the end)" : "", out.buf,
            out.len > 0 && out.buf[out.len - 1] != '\n' ? "\n" : "");
    return -1;
}

/* Checks a run against the server's answer; marks the cell and says so when it differs. */
static void check_counts(const bench_t *b, view_t *v, int client, const run_t *run)
{
    cell_t *c = &v->cell[client];
    if (run->rows == c->rows && run->bytes == c->bytes)
        return;
    if (c->mismatch) /* said once per view and client */
        return;
    c->mismatch = true;
    fprintf(stderr,
            "bench_stream: ERROR: %s on %s got %llu rows and %llu bytes, the server says %llu "
            "rows and %llu bytes\n",
            b->cl[client].spec, v->name, (unsigned long long)run->rows,
            (unsigned long long)run->bytes, (unsigned long long)c->rows,
            (unsigned long long)c->bytes);
}

/* --first-row: a run must end at its first row (one row, a first-row time), or with no row at
 * all when the server has none for it. */
static void check_first(const bench_t *b, view_t *v, int client, const run_t *run)
{
    cell_t *c = &v->cell[client];
    uint64_t want = c->rows > 0 ? 1 : 0;
    if (run->rows == want && (want == 0 || run->first_ns >= 0))
        return;
    if (c->mismatch)
        return;
    c->mismatch = true;
    fprintf(stderr,
            "bench_stream: ERROR: %s on %s (--first-row) ended with %llu rows and first row %lld "
            "ns; the server has %llu rows for it\n",
            b->cl[client].spec, v->name, (unsigned long long)run->rows, (long long)run->first_ns,
            (unsigned long long)c->rows);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n values (the mean of the middle two for an even n); sorts v. */
static double median(double *v, int n)
{
    if (n == 0)
        return 0;
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void cell_stats(cell_t *c, bool cli)
{
    double rows_s[MAX_RUNS], mb_s[MAX_RUNS], cpu[MAX_RUNS], qcpu[MAX_RUNS], rss[MAX_RUNS];
    double hwm[MAX_RUNS], first[MAX_RUNS], query[MAX_RUNS], wall[MAX_RUNS];
    double wire[MAX_RUNS], allocs[MAX_RUNS], cpu_ms[MAX_RUNS];
    int n = c->n;
    if (n == 0)
        return;
    c->wall_min = c->wall_max = (double)c->runs[0].wall_ns / 1e6;
    for (int i = 0; i < n; i++) {
        const run_t *r = &c->runs[i];
        double rows = r->rows > 0 ? (double)r->rows : 1;
        /* Streaming time: the child's query window; the CLI has only its whole process. */
        double secs = (double)(cli ? r->wall_ns : r->query_ns) / 1e9;
        rows_s[i] = secs > 0 ? (double)r->rows / secs : 0;
        mb_s[i] = secs > 0 ? (double)r->bytes / 1e6 / secs : 0;
        cpu[i] = (double)r->cpu_ns / rows;
        qcpu[i] = (double)r->qcpu_ns / rows;
        rss[i] = (double)r->maxrss_kib / 1024;
        hwm[i] = (double)r->hwm_kib / 1024;
        first[i] = (double)r->first_ns / 1e6;
        query[i] = (double)r->query_ns / 1e6;
        wall[i] = (double)r->wall_ns / 1e6;
        wire[i] = r->wire < 0 ? -1 : (double)r->wire / 1e6;
        allocs[i] = (double)r->allocs;
        cpu_ms[i] = (double)r->cpu_ns / 1e6;
        if (wall[i] < c->wall_min)
            c->wall_min = wall[i];
        if (wall[i] > c->wall_max)
            c->wall_max = wall[i];
    }
    c->rows_s = median(rows_s, n);
    c->mb_s = median(mb_s, n);
    c->cpu_row = median(cpu, n);
    c->qcpu_row = cli ? -1 : median(qcpu, n);
    c->rss_mib = median(rss, n);
    c->hwm_mib = cli ? -1 : median(hwm, n);
    c->first_ms = cli ? -1 : median(first, n);
    /* median() sorted first[]: nearest-rank percentiles, the value at rank ceil(p n) */
    c->first_p10 = cli ? -1 : first[(n * 10 + 99) / 100 - 1];
    c->first_p25 = cli ? -1 : first[(n * 25 + 99) / 100 - 1];
    c->first_p75 = cli ? -1 : first[(n * 75 + 99) / 100 - 1];
    c->first_p90 = cli ? -1 : first[(n * 90 + 99) / 100 - 1];
    c->query_ms = cli ? -1 : median(query, n);
    c->wall_ms = median(wall, n);
    c->wire_mb = median(wire, n);
    c->allocs = median(allocs, n);
    c->cpu_ms = median(cpu_ms, n);
}

/* "1.23M", "456K", "789": rows per second, three significant figures. */
static void fmt_rate(char *buf, size_t cap, double v)
{
    if (v >= 1e6)
        snprintf(buf, cap, "%.3gM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, cap, "%.3gK", v / 1e3);
    else
        snprintf(buf, cap, "%.3g", v);
}

static void fmt_num(char *buf, size_t cap, double v, int decimals)
{
    if (v < 0)
        snprintf(buf, cap, "—");
    else
        snprintf(buf, cap, "%.*f", decimals, v);
}

/* --first-row: the first row's distribution, each client against libpq-single's median. */
static void print_first_table(view_t *views, int nviews, const bench_t *b)
{
    printf("| view | client | first row ms: median | p10 | p25 | p75 | p90 | median ÷ "
           "libpq-single |\n|---|---|---|---|---|---|---|---|\n");
    for (int vi = 0; vi < nviews; vi++) {
        const view_t *v = &views[vi];
        const cell_t *pqs = b->ref_pqs >= 0 ? &v->cell[b->ref_pqs] : NULL;
        for (int ci = 0; ci < b->ncl; ci++) {
            const cell_t *c = &v->cell[ci];
            if (c->failed || c->n == 0) {
                printf("| %s | %s | FAILED: %s ||||||\n", v->name, b->cl[ci].spec,
                       c->why[0] ? c->why : "no run");
                continue;
            }
            char r[32] = "";
            if (pqs != NULL && !pqs->failed && pqs->n > 0 && ci != b->ref_pqs)
                snprintf(r, sizeof(r), "%.3f", c->first_ms / pqs->first_ms);
            printf("| %s | %s | %.3f | %.3f | %.3f | %.3f | %.3f | %s |\n", v->name,
                   b->cl[ci].spec, c->first_ms, c->first_p10, c->first_p25, c->first_p75,
                   c->first_p90, r);
        }
    }
}

static void print_table(view_t *views, int nviews, const bench_t *b)
{
    if (b->first_row) {
        print_first_table(views, nviews, b);
        return;
    }
    printf("| view | client | rows/s | MB/s | CPU ns/row | query CPU ns/row | peak RSS MiB | "
           "first row ms | query ms | wall ms [min, max] | query/null | wall/null | "
           "CPU/row ÷ libpq-single |\n"
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int vi = 0; vi < nviews; vi++) {
        view_t *v = &views[vi];
        const cell_t *nul = b->ref_null >= 0 ? &v->cell[b->ref_null] : NULL;
        const cell_t *pqs = b->ref_pqs >= 0 ? &v->cell[b->ref_pqs] : NULL;
        for (int ci = 0; ci < b->ncl; ci++) {
            const cell_t *c = &v->cell[ci];
            if (c->failed || c->n == 0) {
                printf("| %s | %s | FAILED: %s |||||||||||\n", v->name, b->cl[ci].spec,
                       c->why[0] ? c->why : "no run");
                continue;
            }
            bool cli = b->cl[ci].kind == C_FW_CLI;
            char rate[32], mb[32], cpu[32], qcpu[32], rss[32], first[32], query[32];
            char qr[32] = "", wr[32] = "", cr[32] = "";
            fmt_rate(rate, sizeof(rate), c->rows_s);
            snprintf(mb, sizeof(mb), "%.1f%s", c->mb_s, cli ? "†" : "");
            if (cli)
                snprintf(rate + strlen(rate), sizeof(rate) - strlen(rate), "†");
            fmt_num(cpu, sizeof(cpu), c->cpu_row, 0);
            fmt_num(qcpu, sizeof(qcpu), c->qcpu_row, 0);
            fmt_num(rss, sizeof(rss), c->rss_mib, 1);
            fmt_num(first, sizeof(first), c->first_ms, 2);
            fmt_num(query, sizeof(query), c->query_ms, 1);
            bool have_null = nul != NULL && !nul->failed && nul->n > 0;
            bool have_pqs = pqs != NULL && !pqs->failed && pqs->n > 0;
            if (have_null && ci != b->ref_null) {
                if (!cli)
                    snprintf(qr, sizeof(qr), "%.2f", c->query_ms / nul->query_ms);
                snprintf(wr, sizeof(wr), "%.2f", c->wall_ms / nul->wall_ms);
            }
            if (have_pqs && ci != b->ref_pqs)
                snprintf(cr, sizeof(cr), "%.2f", c->cpu_row / pqs->cpu_row);
            printf("| %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %.1f [%.1f, %.1f] | %s | %s "
                   "| %s |\n",
                   v->name, b->cl[ci].spec, c->mismatch ? " (COUNT MISMATCH)" : "", rate, mb, cpu,
                   qcpu, rss, first, query, c->wall_ms, c->wall_min, c->wall_max, qr, wr, cr);
        }
    }
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static int write_json(const char *path, view_t *views, int nviews, const bench_t *b, int runs,
                      const char *date, int server_version, const cell_t *floor_cell)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "bench_stream: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f,
            "{\"benchmark\": \"stream\", \"date\": \"%s\", \"fwire\": \"%s\", \"libuv\": \"%s\", "
            "\"libpq\": %d, \"server_version\": %d, \"runs\": %d, \"warmup\": 1, "
            "\"first_row_only\": %s, \"gap_ms\": %d, \"dsn\": ",
            date, fw_version_string(), uv_version_string(), pq.lib_version(), server_version, runs,
            b->first_row ? "true" : "false", b->gap_ms);
    json_str(f, b->dsn);
    fprintf(f,
            ", \"process_floor\": {\"peak_rss_mib\": %.3f, \"cpu_ms\": %.4f, \"wall_ms\": %.4f}, "
            "\"views\": [",
            floor_cell->rss_mib, floor_cell->cpu_row / 1e6, floor_cell->wall_ms);
    for (int vi = 0; vi < nviews; vi++) {
        view_t *v = &views[vi];
        fprintf(f, "%s{\"view\": \"%s\", \"clients\": [", vi ? ", " : "", v->name);
        bool first = true;
        for (int ci = 0; ci < b->ncl; ci++) {
            cell_t *c = &v->cell[ci];
            fprintf(f,
                    "%s{\"client\": \"%s\", \"kind\": \"%s\", \"rows\": %llu, \"bytes\": %llu, "
                    "\"failed\": %s, \"count_mismatch\": %s, ",
                    first ? "" : ", ", b->cl[ci].spec, client_names[b->cl[ci].kind],
                    (unsigned long long)c->rows, (unsigned long long)c->bytes,
                    c->failed ? "true" : "false", c->mismatch ? "true" : "false");
            first = false;
            if (c->failed) {
                fprintf(f, "\"why\": ");
                json_str(f, c->why);
                fprintf(f, ", ");
            }
            fprintf(f,
                    "\"median\": {\"rows_per_s\": %.1f, \"mb_per_s\": %.3f, "
                    "\"cpu_ns_per_row\": %.2f, \"query_cpu_ns_per_row\": %.2f, "
                    "\"peak_rss_mib\": %.3f, \"vm_hwm_mib\": %.3f, \"first_row_ms\": %.4f, "
                    "\"query_ms\": %.4f, \"wall_ms\": %.4f, \"cpu_ms\": %.4f, \"wire_mb\": %.4f, "
                    "\"allocs\": %.1f}, \"first_row_ms_pct\": {\"p10\": %.4f, \"p25\": %.4f, "
                    "\"p75\": %.4f, \"p90\": %.4f}, \"wall_ms_min\": %.4f, \"wall_ms_max\": %.4f, "
                    "\"runs\": [",
                    c->rows_s, c->mb_s, c->cpu_row, c->qcpu_row, c->rss_mib, c->hwm_mib,
                    c->first_ms, c->query_ms, c->wall_ms, c->cpu_ms, c->wire_mb, c->allocs,
                    c->first_p10, c->first_p25, c->first_p75, c->first_p90, c->wall_min,
                    c->wall_max);
            for (int i = 0; i < c->n; i++) {
                const run_t *r = &c->runs[i];
                fprintf(f,
                        "%s{\"rows\": %llu, \"bytes\": %llu, \"wall_ns\": %lld, \"cpu_ns\": %lld, "
                        "\"maxrss_kib\": %ld, \"setup_ns\": %lld, \"query_ns\": %lld, "
                        "\"first_row_ns\": %lld, \"query_cpu_ns\": %lld, \"vm_hwm_kib\": %ld, "
                        "\"wire_bytes\": %lld, \"rows_filtered\": %lld, \"allocs\": %lld",
                        i ? ", " : "", (unsigned long long)r->rows, (unsigned long long)r->bytes,
                        (long long)r->wall_ns, (long long)r->cpu_ns, r->maxrss_kib,
                        (long long)r->setup_ns, (long long)r->query_ns, (long long)r->first_ns,
                        (long long)r->qcpu_ns, r->hwm_kib, (long long)r->wire,
                        (long long)r->filtered, (long long)r->allocs);
                if (r->nrss > 0) {
                    fprintf(f, ", \"rss_ms_kib\": [");
                    for (int k = 0; k < r->nrss; k++)
                        fprintf(f, "%s[%ld, %ld]", k ? ", " : "", r->rss_ms[k], r->rss_kib[k]);
                    fprintf(f, "]");
                }
                fprintf(f, "}");
            }
            fprintf(f, "]}");
        }
        fprintf(f, "]}");
    }
    fprintf(f, "]}\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- set-up ----------------------------------------------------------------------------- */

static const char *env_or_skip(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "bench_stream: %s is not set: run through test/with-pg.sh or give --dsn\n",
                name);
        exit(77);
    }
    return v;
}

/* True when `path --help` of the stream subcommand works: the binary has `stream`. */
static bool cli_has_stream(const bench_t *b)
{
    if (access(b->fwire, X_OK) != 0) {
        fprintf(stderr, "bench_stream: fwire-cli skipped: %s: %s\n", b->fwire, strerror(errno));
        return false;
    }
    char *argv[] = {mut(b->fwire), mut("stream"), mut("--help"), NULL};
    run_t run;
    static tail_t out;
    int status;
    spawn(b, argv, environ, &run, &out, &status);
    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return true;
    fprintf(stderr,
            "bench_stream: fwire-cli skipped: `%s stream --help` failed: the binary has "
            "no stream subcommand yet\n",
            b->fwire);
    return false;
}

/* View names go into the SQL of the null and libpq clients as they are: identifiers only. */
static bool valid_view(const char *s)
{
    if (s[0] == '\0' || strlen(s) > 63)
        return false;
    for (; *s != '\0'; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

/* The server's own answer for a view: the rows and the bytes of their text. */
/* With filter >= 0, the rows whose "bucket" is below it (what /pred and /where keep). */
static int expected_counts(PGconn *pc, const view_t *v, int filter, uint64_t *rows, uint64_t *bytes)
{
    char sql[320], where[64] = "";
    if (filter >= 0)
        snprintf(where, sizeof(where), " WHERE (data->>'bucket')::int < %d", filter);
    snprintf(sql, sizeof(sql),
             "SELECT count(*), coalesce(sum(octet_length(data::text)), 0) FROM %.63s%s", v->name,
             where);
    PGresult *res = pq.exec(pc, sql);
    if (pq.result_status(res) != PGRES_TUPLES_OK || pq.ntuples(res) != 1) {
        fprintf(stderr, "bench_stream: %s: %s", v->name, pq.result_error_message(res));
        pq.clear(res);
        return -1;
    }
    *rows = strtoull(pq.get_value(res, 0, 0), NULL, 10);
    *bytes = strtoull(pq.get_value(res, 0, 1), NULL, 10);
    pq.clear(res);
    return 0;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--runs N] [--quick] [--views LIST] [--clients LIST] [--dsn CONNINFO]\n"
            "       [--count-dsn CONNINFO] [--fwire PATH] [--json OUT] [--timeout SECONDS]\n"
            "       [--first-row]   each run ends at its first row: first-row times only\n"
            "       [--gap MS]      a pause before each run of a view\n"
            "views: comma-separated (default " DEFAULT_VIEWS "; \"1m\" means v_bench_1m)\n"
            "clients: comma-separated KIND[/OPTION...]; kinds null,libpq-single,libpq-exec,\n"
            "         fwire-threaded,fwire-embedded,fwire-cli (default: all; fwire-cli needs\n"
            "         --fwire); options chunk=N adaptive budget=N[K|M] pred=K where=K slow=NS\n"
            "         metrics=0 rss=MS allocs par=N pool (see the top of bench_stream.c)\n",
            argv0);
}

int main(int argc, char **argv)
{
    int64_t t_main = now_ns();
    if (argc >= 2 && strcmp(argv[1], "--client") == 0) { /* a child: one measured run */
        if (argc != 7 || strcmp(argv[3], "--view") != 0 || strcmp(argv[5], "--dsn") != 0) {
            fprintf(stderr, "usage: %s --client NAME --view VIEW --dsn CONNINFO\n", argv[0]);
            return 2;
        }
        signal(SIGPIPE, SIG_IGN); /* libpq masks it itself; fwire leaves it to the application */
        return child_main(argv[2], argv[4], argv[6], t_main);
    }

    bench_t b;
    memset(&b, 0, sizeof(b));
    b.argv0 = argv[0];
    b.timeout_s = 600;
    const char *views_arg = DEFAULT_VIEWS, *clients_arg = NULL, *json_out = NULL;
    int runs = 5;
    bool quick = false, runs_given = false, views_given = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
            runs_given = true;
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--views") == 0 && i + 1 < argc) {
            views_arg = argv[++i];
            views_given = true;
        } else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc) {
            clients_arg = argv[++i];
        } else if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc) {
            b.dsn = argv[++i];
        } else if (strcmp(argv[i], "--count-dsn") == 0 && i + 1 < argc) {
            b.count_dsn = argv[++i];
        } else if (strcmp(argv[i], "--fwire") == 0 && i + 1 < argc) {
            b.fwire = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json_out = argv[++i];
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            b.timeout_s = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--first-row") == 0) {
            b.first_row = true;
        } else if (strcmp(argv[i], "--gap") == 0 && i + 1 < argc) {
            b.gap_ms = atoi(argv[++i]);
        } else {
            usage(argv[0]);
            return 2;
        }
    }
    if (quick) {
        if (!runs_given)
            runs = 3;
        if (!views_given)
            views_arg = "v_bench_1k,v_bench_100k";
    }
    if (runs < 1 || runs > MAX_RUNS || b.timeout_s < 1 || b.gap_ms < 0 || b.gap_ms > 60000) {
        fprintf(stderr, "bench_stream: --runs must be 1..%d, --timeout at least 1, --gap 0..60000\n",
                MAX_RUNS);
        return 2;
    }

    /* Clients. */
    {
        char list[2048];
        snprintf(list, sizeof(list), "%s",
                 clients_arg != NULL ? clients_arg
                                     : "null,libpq-single,libpq-exec,fwire-threaded,"
                                       "fwire-embedded,fwire-cli");
        b.ref_null = b.ref_pqs = -1;
        for (char *save = NULL, *t = strtok_r(list, ",", &save); t != NULL;
             t = strtok_r(NULL, ",", &save)) {
            copts_t o;
            char why[256];
            client_t *c = &b.cl[b.ncl];
            if (b.ncl == MAX_CLIENTS || strlen(t) >= sizeof(c->spec)) {
                fprintf(stderr, "bench_stream: at most %d clients of at most 63 bytes\n",
                        MAX_CLIENTS);
                return 2;
            }
            if (parse_spec(t, &c->kind, &o, why, sizeof(why)) < 0) {
                fprintf(stderr, "bench_stream: %s\n", why);
                usage(argv[0]);
                return 2;
            }
            if (c->kind == C_FW_CLI && (b.fwire == NULL || !cli_has_stream(&b))) {
                if (clients_arg != NULL && b.fwire == NULL)
                    fprintf(stderr, "bench_stream: fwire-cli skipped: no --fwire PATH\n");
                continue;
            }
            if (b.first_row && (c->kind == C_FW_CLI || c->kind == C_PQ_EXEC)) {
                /* the command reports no first row; PQexec's is its whole result */
                fprintf(stderr, "bench_stream: --first-row: %s skipped (no first row of its own)\n",
                        t);
                continue;
            }
            snprintf(c->spec, sizeof(c->spec), "%s", t);
            c->filter = o.pred >= 0 ? o.pred : o.where;
            if (strchr(t, '/') == NULL && c->kind == C_NULL && b.ref_null < 0)
                b.ref_null = b.ncl;
            if (strchr(t, '/') == NULL && c->kind == C_PQ_SINGLE && b.ref_pqs < 0)
                b.ref_pqs = b.ncl;
            b.ncl++;
        }
        if (b.ncl == 0) {
            fprintf(stderr, "bench_stream: no client to run\n");
            return 2;
        }
        /* The children find it in their environment (child_main). */
        if (b.first_row && setenv("FW_BENCH_FIRST_ROW", "1", 1) != 0)
            return 1;
    }

    /* Views. */
    static view_t views[MAX_VIEWS];
    int nviews = 0;
    {
        char list[1024];
        snprintf(list, sizeof(list), "%s", views_arg);
        for (char *save = NULL, *t = strtok_r(list, ",", &save); t != NULL;
             t = strtok_r(NULL, ",", &save)) {
            if (nviews == MAX_VIEWS) {
                fprintf(stderr, "bench_stream: at most %d views\n", MAX_VIEWS);
                return 2;
            }
            view_t *v = &views[nviews++];
            /* "=NAME": the relation as it is (a table, for /par's ctid ranges) */
            if (t[0] == '=')
                snprintf(v->name, sizeof(v->name), "%s", t + 1);
            else
                snprintf(v->name, sizeof(v->name), "%s%s",
                         strncmp(t, "v_", 2) == 0 ? "" : "v_bench_", t);
            if (!valid_view(v->name)) {
                fprintf(stderr,
                        "bench_stream: %s: a view name is lower-case letters, digits "
                        "and _ (at most 63)\n",
                        v->name);
                return 2;
            }
        }
    }

    /* The connection: --dsn, or the test cluster's unix socket as its trust user. */
    static char dsn_buf[1024];
    if (b.dsn == NULL) {
        snprintf(dsn_buf, sizeof(dsn_buf), "host=%s port=%s dbname=%s user=%s",
                 env_or_skip("FW_TEST_SOCKDIR"), env_or_skip("FW_TEST_PORT"),
                 env_or_skip("FW_TEST_DBNAME"), env_or_skip("FW_TEST_USER_TRUST"));
        b.dsn = dsn_buf;
    }
    bench_clear_pg_environment("bench_stream", "the clients read the connection string only");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    /* The server's answer for every view, before any client runs. */
    PGconn *pc = pq_connect(b.count_dsn != NULL ? b.count_dsn : b.dsn);
    if (pc == NULL)
        return 1;
    int server_version = pq.server_version(pc);
    for (int vi = 0; vi < nviews; vi++) {
        uint64_t rows[11], bytes[11]; /* by filter + 1 */
        bool have[11] = {false};
        for (int ci = 0; ci < b.ncl; ci++) {
            int f = b.cl[ci].filter;
            if (!have[f + 1] &&
                expected_counts(pc, &views[vi], f, &rows[f + 1], &bytes[f + 1]) < 0) {
                pq.finish(pc);
                return 1;
            }
            have[f + 1] = true;
            views[vi].cell[ci].rows = rows[f + 1];
            views[vi].cell[ci].bytes = bytes[f + 1];
        }
    }
    pq.finish(pc);

    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(stderr, "bench_stream: %d views, %d counted runs each after 1 warm-up, %s\n", nviews,
            runs, b.dsn);

    /* The process floor: this program started as a child that connects nowhere and exits. */
    static cell_t floor_cell;
    floor_cell.runs = calloc((size_t)runs, sizeof(run_t));
    for (int vi = 0; vi < nviews; vi++)
        for (int ci = 0; ci < b.ncl; ci++)
            views[vi].cell[ci].runs = calloc((size_t)runs, sizeof(run_t));
    if (floor_cell.runs == NULL || views[nviews - 1].cell[b.ncl - 1].runs == NULL) {
        fprintf(stderr, "bench_stream: out of memory\n");
        return 1;
    }
    for (int round = -1; round < runs; round++) {
        run_t run;
        if (run_once(&b, -1, "-", floor_cell.why, sizeof(floor_cell.why), &run) < 0)
            return 1;
        if (round >= 0)
            floor_cell.runs[floor_cell.n++] = run;
    }
    cell_stats(&floor_cell, false);

    bool bad = false;
    for (int vi = 0; vi < nviews && !interrupted; vi++) {
        view_t *v = &views[vi];
        fprintf(stderr, "bench_stream: %s: %llu rows, %.1f MB of JSON text\n", v->name,
                (unsigned long long)v->cell[0].rows, (double)v->cell[0].bytes / 1e6);
        uint64_t rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)vi; /* fixed: runs repeat */
        for (int round = -1; round < runs && !interrupted; round++) { /* -1: the warm-up */
            /* Each counted round in its own order (Fisher-Yates, xorshift64): a client that
             * always ran right after the same one (libpq-exec's 300 MB, say) would carry that
             * one's after-effects in every run. First rows differ by +-10 % between fixed-order
             * medians of 5 on these VMs. */
            int order[MAX_CLIENTS];
            for (int i = 0; i < b.ncl; i++)
                order[i] = i;
            for (int i = b.ncl - 1; round >= 0 && i > 0; i--) {
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                int j = (int)(rng % (uint64_t)(i + 1)), t = order[i];
                order[i] = order[j], order[j] = t;
            }
            for (int oi = 0; oi < b.ncl && !interrupted; oi++) {
                int ci = order[oi];
                cell_t *c = &v->cell[ci];
                if (c->failed)
                    continue;
                run_t run;
                if (b.gap_ms > 0)
                    nap_ms(b.gap_ms);
                if (run_once(&b, ci, v->name, c->why, sizeof(c->why), &run) < 0) {
                    c->failed = true;
                    bad = true;
                    continue;
                }
                if (b.first_row)
                    check_first(&b, v, ci, &run);
                else
                    check_counts(&b, v, ci, &run);
                if (round >= 0)
                    c->runs[c->n++] = run;
            }
        }
        for (int ci = 0; ci < b.ncl; ci++) {
            cell_t *c = &v->cell[ci];
            cell_stats(c, b.cl[ci].kind == C_FW_CLI);
            if (b.first_row && c->n > 0) /* measured up to the first row only: not rates */
                c->rows_s = c->mb_s = c->cpu_row = c->qcpu_row = c->rss_mib = c->hwm_mib =
                    c->query_ms = c->wire_mb = c->allocs = c->cpu_ms = -1;
            bad |= c->mismatch;
        }
    }
    if (interrupted) {
        fprintf(stderr, "bench_stream: interrupted\n");
        return 1;
    }

    printf("streaming throughput: SELECT data FROM <view>, fwire %s (libuv %s), libpq %d, server "
           "%d, %s\n%d counted runs per client after 1 warm-up, interleaved; medians; each run a "
           "separate process\n\n",
           fw_version_string(), uv_version_string(), pq.lib_version(), server_version, date, runs);
    printf("process floor (this program, started to connect nowhere and exit; libpq not loaded): "
           "peak RSS %.1f MiB, CPU %.2f ms, wall %.2f ms\n\n",
           floor_cell.rss_mib, floor_cell.cpu_row / 1e6, floor_cell.wall_ms);
    print_table(views, nviews, &b);
    if (b.first_row)
        printf("\n--first-row: each run ended at its first row (the process exits there, the "
               "same way for every client); first row: from just before the query is sent to "
               "the first row in hand, on a fresh connection.\n");
    else
        printf("\nrows/s and MB/s: from sending the query to the last row (connect excluded); "
               "† fwire-cli: whole process, connect included.\nCPU ns/row: the whole process "
               "(user+sys, wait4); query CPU: the query window only. Peak RSS: ru_maxrss.\n");
    for (int vi = 0; vi < nviews; vi++)
        printf("%s: %llu rows, %llu bytes of JSON text\n", views[vi].name,
               (unsigned long long)views[vi].cell[0].rows,
               (unsigned long long)views[vi].cell[0].bytes);
    if (json_out != NULL &&
        write_json(json_out, views, nviews, &b, runs, date, server_version, &floor_cell) < 0)
        bad = true;
    if (bad)
        fprintf(stderr, "bench_stream: ERROR: a client failed or got a different answer (above); "
                        "these numbers do not compare the same work\n");
    return bad ? 1 : 0;
}
