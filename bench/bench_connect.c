/* SPDX-License-Identifier: MIT */
/*
 * Connect time: fwire (embedded mode, on a libuv loop) against libpq's PQconnectdb, side by side.
 *
 *   bench_connect [--routing] [--count N | --quick] [--case NAME] [--only fwire|libpq]
 *                 [--json OUT] [--raw CSV] [--append 'KEY=VALUE ...']
 *
 * Runs against the throwaway cluster of test/with-pg.sh (the FW_TEST_* variables); without them
 * it exits 77 ("skipped"). Four cases, each with one connection string handed to both clients:
 *   unix trust   host=$FW_TEST_SOCKDIR user=fw_trust
 *   tcp trust    host=127.0.0.1 sslmode=disable user=fw_trust
 *   tcp scram    host=127.0.0.1 sslmode=disable user=fw_scram password=...
 *   tls scram    host=localhost sslmode=verify-full sslrootcert=$FW_TEST_CA user=fw_scram ...
 * Per case: 5 warm-up connects each, then N each (default 200, --quick 50), interleaved
 * fwire, libpq, fwire, libpq, ... so both see the same machine and server state.
 *
 * --routing: multi-host routing (issue 14) on the replicated cluster of test/with-repl.sh
 * (the FW_REPL_* variables; without them, exit 77): node 0 the primary, nodes 1 and 2 hot
 * standbys. Four cases, all over TCP to 127.0.0.1 with target_session_attrs=read-write:
 *   primary trust   port=P0                 sslmode=disable user=fw_trust
 *   routed trust    port=P1,P2,P0 (3 hosts) sslmode=disable user=fw_trust
 *   primary tls     port=P0                 sslmode=verify-full sslrootcert=$FW_REPL_CA
 *                                           user=fw_scram password=...
 *   routed tls      port=P1,P2,P0 (3 hosts) the same
 * A routed connect logs in to both standbys (in_hot_standby=on: refused, Terminate) before
 * node 0; the one-host cases are the baseline, so "routed - primary" is the price of the two
 * standbys for each client. Here the rounds rotate over every case and client (fwire, libpq
 * of case 1, then of case 2, ...: 5 warm-up rounds, N counted), so baseline and routed cases
 * see the same machine state too. Before timing, the topology is checked (node 0 reports
 * in_hot_standby=off, nodes 1 and 2 on), and every connect, warm-up included, must land on
 * node 0 (fwire: fw_conn_info port; libpq: PQport), or the run fails.
 *
 * What is timed:
 *   fwire  from before fw_conn_new to the connect callback (one uv loop, reused); the close
 *          and the loop run until the connection is freed are not timed.
 *   libpq  PQconnectdb; PQfinish is not timed.
 * CPU: getrusage(RUSAGE_SELF) user+sys around each connect, summed (process-wide, so libuv's
 * threadpool work counts for fwire). Linux keeps the total exactly and only splits it into user
 * and sys by sampling, so only the sum is reported. Approximate all the same: work that spills
 * past the window (a worker thread going back to sleep, the previous close) is missed or lands
 * on the next connect, whichever client that is.
 *
 * fwire runs with use_environment = false, and the PG* environment is cleared before the first
 * connect, so libpq reads no more than the string either (it still looks for ~/.pgpass, which
 * the trust and password cases never need).
 *
 * --case (a substring of a case name) and --only restrict the run, for profiling one client;
 * --raw writes every counted connect in the order it ran (case, client, i, wall ms, CPU ms), to
 * look at the shape of a distribution (a second mode shows up as a gap between p10 and p90);
 * --append adds keywords to every case's string, for both clients (gssencmode=disable,
 * client_encoding=UTF8: what differs between the two clients' defaults).
 * This is a benchmark (meson `benchmark()`), never a test: timings on a shared 2-core machine
 * are noisy, so only medians and ratios from one run mean anything.
 */
#include "bench_env.h"
#include <fwire.h>

#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <uv.h>

#define WARMUP    5
#define MAX_COUNT 100000

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

typedef struct sample_s {
    double *wall; /* ms per connect */
    double cpu;   /* ms, summed over the counted connects */
    int n;
} sample_t;

static FILE *raw_out; /* --raw */

static void record(sample_t *s, const char *cname, const char *client, double wall, double cpu)
{
    if (raw_out != NULL)
        fprintf(raw_out, "%s,%s,%d,%.4f,%.4f\n", cname, client, s->n, wall, cpu);
    s->wall[s->n++] = wall;
    s->cpu += cpu;
}

/* ---- fwire ------------------------------------------------------------------------------ */

typedef struct fw_run_s {
    int status;
    int port; /* of the server connected to (fw_conn_info) */
    bool done;
    double t_end, cpu_end;
    fw_error_t err;
    char method[32];
    char tls[64];
} fw_run_t;

static void on_fw_closed(fw_conn_t *conn, void *ud)
{
    (void)conn;
    (void)ud;
}

static void on_fw_connected(fw_conn_t *conn, int status, const fw_error_t *err, void *ud)
{
    fw_run_t *r = ud;
    r->t_end = now_ms();
    r->cpu_end = cpu_ms();
    r->done = true;
    r->status = status;
    if (status < 0 && err != NULL)
        r->err = *err;
    fw_conn_info_t info;
    if (status == 0 && fw_conn_info(conn, &info) == 0) {
        snprintf(r->method, sizeof(r->method), "%s", info.auth_method);
        snprintf(r->tls, sizeof(r->tls), "%s", info.tls_version ? info.tls_version : "no TLS");
        r->port = info.port;
    }
    fw_conn_close(conn, on_fw_closed, NULL); /* not timed: the loop runs on until it is freed */
}

/* One fwire connect; returns 0 and the wall and CPU time in ms, or -1 after printing why
 * (expect_port > 0: the connection must have landed on that port). */
static int fw_once(uv_loop_t *loop, const char *conninfo, int expect_port, double *wall,
                   double *cpu, fw_run_t *r)
{
    fw_conn_opts_t opts;
    fw_conn_opts_init(&opts);
    opts.conninfo = conninfo;
    opts.use_environment = false;
    memset(r, 0, sizeof(*r));
    double c0 = cpu_ms();
    double t0 = now_ms();
    fw_conn_t *conn = NULL;
    int rc = fw_conn_new(&conn, loop, &opts, &r->err);
    if (rc == 0) {
        rc = fw_conn_connect(conn, on_fw_connected, r);
        if (rc < 0)
            fw_conn_close(conn, NULL, NULL);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    if (rc == 0 && !r->done)
        rc = FW_ECLOSED;
    if (rc == 0)
        rc = r->status;
    if (rc < 0) {
        fprintf(stderr, "bench_connect: fwire: %s (%s): %s\n", fw_err_name(rc),
                fw_phase_name(r->err.phase), r->err.message[0] ? r->err.message : fw_strerror(rc));
        return -1;
    }
    if (expect_port > 0 && r->port != expect_port) {
        fprintf(stderr, "bench_connect: fwire connected to port %d, not %d (the primary)\n",
                r->port, expect_port);
        return -1;
    }
    *wall = r->t_end - t0;
    *cpu = r->cpu_end - c0;
    return 0;
}

/* ---- libpq ------------------------------------------------------------------------------ */

static int pq_once(const char *conninfo, int expect_port, double *wall, double *cpu)
{
    double c0 = cpu_ms();
    double t0 = now_ms();
    PGconn *pc = PQconnectdb(conninfo);
    double t1 = now_ms();
    double c1 = cpu_ms();
    int ok = pc != NULL && PQstatus(pc) == CONNECTION_OK;
    if (!ok)
        fprintf(stderr, "bench_connect: libpq: %s", pc ? PQerrorMessage(pc) : "out of memory\n");
    if (ok && expect_port > 0 && atoi(PQport(pc)) != expect_port) {
        fprintf(stderr, "bench_connect: libpq connected to port %s, not %d (the primary)\n",
                PQport(pc), expect_port);
        ok = 0;
    }
    PQfinish(pc); /* not timed */
    if (!ok)
        return -1;
    *wall = t1 - t0;
    *cpu = c1 - c0;
    return 0;
}

/* ---- statistics ------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct stats_s {
    double median, p10, p90, min, max, cpu_per; /* ms */
} stats_t;

/* Nearest-rank on the sorted samples, with the median of an even count the mean of the two. */
static stats_t stats_of(sample_t *s)
{
    stats_t st = {0, 0, 0, 0, 0, 0};
    int n = s->n;
    if (n == 0)
        return st;
    qsort(s->wall, (size_t)n, sizeof(double), cmp_double);
    st.median = n % 2 ? s->wall[n / 2] : (s->wall[n / 2 - 1] + s->wall[n / 2]) / 2;
    st.p10 = s->wall[(int)(0.10 * (n - 1) + 0.5)];
    st.p90 = s->wall[(int)(0.90 * (n - 1) + 0.5)];
    st.min = s->wall[0];
    st.max = s->wall[n - 1];
    st.cpu_per = s->cpu / n;
    return st;
}

/* ---- the cases -------------------------------------------------------------------------- */

typedef struct case_s {
    const char *name;
    char conninfo[1024];
    char shown[1024]; /* conninfo with the password masked, for the report */
    sample_t fw, pq;
    stats_t fs, ps;
    char fw_method[32], fw_tls[64];
    char pq_method[64];
    bool skipped;
    int expect_port; /* > 0: every connect must land there (--routing: node 0) */
    int baseline;    /* --routing: the index of the one-host case this one adds hosts to, or -1 */
} case_t;

static bool routing; /* --routing */

static const char *env_or_die(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "bench_connect: %s is not set: run through test/%s\n", name,
                routing ? "with-repl.sh" : "with-pg.sh");
        exit(77);
    }
    return v;
}

/* What libpq says about a connection of its own: password used, TLS, and whether SCRAM channel
 * binding works (libpq 15 has no call that names the SASL mechanism, so a second connect with
 * channel_binding=require proves that -PLUS is what channel_binding=prefer picks). */
static void pq_describe(case_t *c)
{
    PGconn *pc = PQconnectdb(c->conninfo);
    if (pc == NULL || PQstatus(pc) != CONNECTION_OK) {
        snprintf(c->pq_method, sizeof(c->pq_method), "failed");
        PQfinish(pc);
        return;
    }
    bool pw = PQconnectionUsedPassword(pc);
    bool tls = PQsslInUse(pc);
    char proto[32] = "no TLS"; /* copied: the attribute belongs to the connection */
    if (tls && PQsslAttribute(pc, "protocol") != NULL)
        snprintf(proto, sizeof(proto), "%s", PQsslAttribute(pc, "protocol"));
    PQfinish(pc);
    const char *m = pw ? "password used" : "no password";
    if (pw && tls) {
        char cb[1100];
        snprintf(cb, sizeof(cb), "%s channel_binding=require", c->conninfo);
        PGconn *p2 = PQconnectdb(cb);
        m = p2 != NULL && PQstatus(p2) == CONNECTION_OK ? "SCRAM-SHA-256-PLUS"
                                                        : "password, not -PLUS";
        PQfinish(p2);
    }
    snprintf(c->pq_method, sizeof(c->pq_method), "%s, %s", m, proto);
}

static void json_stats(FILE *f, const char *client, const stats_t *s, int n)
{
    fprintf(f,
            "\"%s\": {\"connects\": %d, \"median_ms\": %.4f, \"p10_ms\": %.4f, \"p90_ms\": %.4f, "
            "\"min_ms\": %.4f, \"max_ms\": %.4f, \"cpu_ms_per_connect\": %.4f}",
            client, n, s->median, s->p10, s->p90, s->min, s->max, s->cpu_per);
}

/* ---- --routing: the cluster's topology ---------------------------------------------------- */

/* The replicated cluster must still be what the cases assume: node 0 the primary, nodes 1
 * and 2 hot standbys taking connections (a stopped or promoted node would make the routed
 * cases cheaper or land elsewhere). Asked through libpq, one node at a time, not timed. */
static int check_topology(const char *host, const char *const ports[3], const char *db,
                          const char *user)
{
    for (int n = 0; n < 3; n++) {
        char ci[512];
        snprintf(ci, sizeof(ci), "host=%s port=%s dbname=%s user=%s sslmode=disable", host,
                 ports[n], db, user);
        PGconn *pc = PQconnectdb(ci);
        if (pc == NULL || PQstatus(pc) != CONNECTION_OK) {
            fprintf(stderr, "bench_connect: node %d (port %s) takes no connection: %s", n, ports[n],
                    pc ? PQerrorMessage(pc) : "out of memory\n");
            PQfinish(pc);
            return -1;
        }
        const char *hs = PQparameterStatus(pc, "in_hot_standby");
        const char *want = n == 0 ? "off" : "on";
        bool ok = hs != NULL && strcmp(hs, want) == 0;
        if (!ok)
            fprintf(stderr,
                    "bench_connect: node %d (port %s) reports in_hot_standby=%s, expected %s "
                    "(node 0 the primary, 1 and 2 standbys)\n",
                    n, ports[n], hs ? hs : "(not reported)", want);
        PQfinish(pc);
        if (!ok)
            return -1;
    }
    return 0;
}

/* One connect of case c by one client, counted (record) or not (warm-up). */
static int run_one(uv_loop_t *loop, case_t *c, bool fw, bool counted, fw_run_t *r)
{
    double w, u;
    if (fw) {
        if (fw_once(loop, c->conninfo, c->expect_port, &w, &u, r) < 0)
            return -1;
        if (counted)
            record(&c->fw, c->name, "fwire", w, u);
    } else {
        if (pq_once(c->conninfo, c->expect_port, &w, &u) < 0)
            return -1;
        if (counted)
            record(&c->pq, c->name, "libpq", w, u);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *json_out = NULL, *raw_path = NULL, *only_case = NULL, *only = NULL;
    const char *append = NULL;
    int count = 200;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
            count = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0)
            count = 50;
        else if (strcmp(argv[i], "--routing") == 0)
            routing = true;
        else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc)
            only_case = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            json_out = argv[++i];
        else if (strcmp(argv[i], "--raw") == 0 && i + 1 < argc)
            raw_path = argv[++i];
        else if (strcmp(argv[i], "--append") == 0 && i + 1 < argc)
            append = argv[++i];
        else {
            fprintf(stderr,
                    "usage: %s [--routing] [--count N | --quick] [--case NAME] "
                    "[--only fwire|libpq] [--json OUT] [--raw CSV] [--append 'KEY=VALUE ...']\n",
                    argv[0]);
            return 2;
        }
    }
    if (count < 1 || count > MAX_COUNT) {
        fprintf(stderr, "bench_connect: --count must be 1..%d\n", MAX_COUNT);
        return 2;
    }
    if (only != NULL && strcmp(only, "fwire") != 0 && strcmp(only, "libpq") != 0) {
        fprintf(stderr, "bench_connect: --only takes fwire or libpq\n");
        return 2;
    }
    bool run_fw = only == NULL || strcmp(only, "fwire") == 0;
    bool run_pq = only == NULL || strcmp(only, "libpq") == 0;

    static case_t cases[4];
    const size_t ncases = sizeof(cases) / sizeof(cases[0]);
    if (routing) {
        const char *host = env_or_die("FW_REPL_HOST4");
        const char *ports[3] = {env_or_die("FW_REPL_N0_PORT"), env_or_die("FW_REPL_N1_PORT"),
                                env_or_die("FW_REPL_N2_PORT")};
        const char *db = env_or_die("FW_REPL_DBNAME");
        const char *u_trust = env_or_die("FW_REPL_USER_TRUST");
        const char *u_scram = env_or_die("FW_REPL_USER_SCRAM");
        const char *p_scram = env_or_die("FW_REPL_PASS_SCRAM");
        const char *ca = env_or_die("FW_REPL_CA");
        bench_clear_pg_environment("bench_connect", "libpq must see only the connection string");
        if (check_topology(host, ports, db, u_trust) < 0)
            return 1;
        char hosts3[256], ports3[64];
        snprintf(hosts3, sizeof(hosts3), "%s,%s,%s", host, host, host);
        snprintf(ports3, sizeof(ports3), "%s,%s,%s", ports[1], ports[2], ports[0]);
        for (size_t k = 0; k < ncases; k++) {
            case_t *c = &cases[k];
            bool routed = k % 2 == 1, tls = k >= 2;
            static const char *const names[4] = {"primary trust", "routed trust", "primary tls",
                                                 "routed tls"};
            c->name = names[k];
            c->expect_port = atoi(ports[0]);
            c->baseline = routed ? (int)k - 1 : -1;
            if (tls)
                snprintf(c->conninfo, sizeof(c->conninfo),
                         "host=%s port=%s dbname=%s user=%s sslmode=verify-full sslrootcert=%s "
                         "target_session_attrs=read-write password=%s",
                         routed ? hosts3 : host, routed ? ports3 : ports[0], db, u_scram, ca,
                         p_scram);
            else
                snprintf(c->conninfo, sizeof(c->conninfo),
                         "host=%s port=%s dbname=%s user=%s sslmode=disable "
                         "target_session_attrs=read-write",
                         routed ? hosts3 : host, routed ? ports3 : ports[0], db, u_trust);
        }
    } else {
        const char *sockdir = env_or_die("FW_TEST_SOCKDIR");
        const char *port = env_or_die("FW_TEST_PORT");
        const char *db = env_or_die("FW_TEST_DBNAME");
        const char *u_trust = env_or_die("FW_TEST_USER_TRUST");
        const char *u_scram = env_or_die("FW_TEST_USER_SCRAM");
        const char *p_scram = env_or_die("FW_TEST_PASS_SCRAM");
        const char *ca = env_or_die("FW_TEST_CA");
        bench_clear_pg_environment("bench_connect", "libpq must see only the connection string");
        cases[0].name = "unix trust";
        snprintf(cases[0].conninfo, sizeof(cases[0].conninfo), "host=%s port=%s dbname=%s user=%s",
                 sockdir, port, db, u_trust);
        cases[1].name = "tcp trust";
        snprintf(cases[1].conninfo, sizeof(cases[1].conninfo),
                 "host=127.0.0.1 port=%s dbname=%s user=%s sslmode=disable", port, db, u_trust);
        cases[2].name = "tcp scram";
        snprintf(cases[2].conninfo, sizeof(cases[2].conninfo),
                 "host=127.0.0.1 port=%s dbname=%s user=%s sslmode=disable password=%s", port, db,
                 u_scram, p_scram);
        cases[3].name = "tls scram";
        snprintf(cases[3].conninfo, sizeof(cases[3].conninfo),
                 "host=localhost port=%s dbname=%s user=%s sslmode=verify-full sslrootcert=%s "
                 "password=%s",
                 port, db, u_scram, ca, p_scram);
        for (size_t k = 0; k < ncases; k++)
            cases[k].baseline = -1;
    }
    signal(SIGPIPE, SIG_IGN); /* libpq masks it itself; fwire leaves it to the embedding app */

    for (size_t k = 0; k < ncases; k++) {
        case_t *c = &cases[k];
        if (append != NULL) {
            size_t used = strlen(c->conninfo);
            int n = snprintf(c->conninfo + used, sizeof(c->conninfo) - used, " %s", append);
            if (n < 0 || (size_t)n >= sizeof(c->conninfo) - used) {
                fprintf(stderr, "bench_connect: --append is too long\n");
                return 2;
            }
        }
        /* The report shows the string with the password's value masked. */
        const char *pw = strstr(c->conninfo, "password=");
        if (pw != NULL)
            snprintf(c->shown, sizeof(c->shown), "%.*spassword=***%s", (int)(pw - c->conninfo),
                     c->conninfo, pw + 9 + strcspn(pw + 9, " "));
        else
            snprintf(c->shown, sizeof(c->shown), "%s", c->conninfo);
        c->skipped = only_case != NULL && strstr(c->name, only_case) == NULL;
        c->fw.wall = calloc((size_t)count, sizeof(double));
        c->pq.wall = calloc((size_t)count, sizeof(double));
        if (c->fw.wall == NULL || c->pq.wall == NULL) {
            perror("calloc");
            return 1;
        }
    }

    if (raw_path != NULL) {
        raw_out = fopen(raw_path, "w");
        if (raw_out == NULL) {
            fprintf(stderr, "bench_connect: %s: %s\n", raw_path, strerror(errno));
            return 1;
        }
        fprintf(raw_out, "case,client,i,wall_ms,cpu_ms\n");
    }
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "bench_connect: uv_loop_init failed\n");
        return 1;
    }
    /* Default: one case after the other. --routing: every round goes over every case. */
    const size_t groups = routing ? 1 : ncases;
    for (size_t g = 0; g < groups; g++) {
        const size_t k0 = routing ? 0 : g, k1 = routing ? ncases : g + 1;
        fw_run_t r[sizeof(cases) / sizeof(cases[0])];
        memset(r, 0, sizeof(r));
        for (int i = 0; i < WARMUP + count; i++) { /* fwire, libpq, fwire, libpq, ... */
            const bool counted = i >= WARMUP;      /* the warm-up is interleaved too */
            if (i == WARMUP) {
                for (size_t k = k0; k < k1; k++) {
                    case_t *c = &cases[k];
                    if (c->skipped)
                        continue;
                    snprintf(c->fw_method, sizeof(c->fw_method), "%s", run_fw ? r[k].method : "-");
                    snprintf(c->fw_tls, sizeof(c->fw_tls), "%s", run_fw ? r[k].tls : "-");
                    if (run_pq)
                        pq_describe(c);
                    else
                        snprintf(c->pq_method, sizeof(c->pq_method), "-");
                }
            }
            for (size_t k = k0; k < k1; k++) {
                case_t *c = &cases[k];
                if (c->skipped)
                    continue;
                if (run_fw && run_one(&loop, c, true, counted, &r[k]) < 0)
                    return 1;
                if (run_pq && run_one(&loop, c, false, counted, NULL) < 0)
                    return 1;
            }
        }
        for (size_t k = k0; k < k1; k++) {
            cases[k].fs = stats_of(&cases[k].fw);
            cases[k].ps = stats_of(&cases[k].pq);
        }
    }
    if (raw_out != NULL)
        fclose(raw_out);
    int lc = uv_loop_close(&loop);
    if (lc != 0) {
        fprintf(stderr, "bench_connect: the loop still has handles: %s\n", uv_strerror(lc));
        return 1;
    }

    printf("connect time%s: fwire %s (libuv %s) against libpq %d, %d connects each per case "
           "after %d warm-up, interleaved%s\n"
           "wall ms from the start of the connect to a usable connection; CPU ms per connect "
           "(user+sys, whole process)\n\n",
           routing ? " with routing (target_session_attrs=read-write)" : "", fw_version_string(),
           uv_version_string(), PQlibVersion(), count, WARMUP,
           routing ? " (every round over every case)" : "");
    printf("| case | client | median | p10 | p90 | min | max | CPU/connect | "
           "fwire/libpq (median) | auth |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t k = 0; k < ncases; k++) {
        case_t *c = &cases[k];
        if (c->skipped)
            continue;
        double ratio = c->ps.median > 0 ? c->fs.median / c->ps.median : 0;
        if (run_fw)
            printf("| %s | fwire | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %s | %s, %s |\n",
                   c->name, c->fs.median, c->fs.p10, c->fs.p90, c->fs.min, c->fs.max, c->fs.cpu_per,
                   run_pq ? "" : "-", c->fw_method, c->fw_tls);
        if (run_pq) {
            char rs[32] = "-";
            if (run_fw)
                snprintf(rs, sizeof(rs), "%.2f", ratio);
            printf("| %s | libpq | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %s | %s |\n", c->name,
                   c->ps.median, c->ps.p10, c->ps.p90, c->ps.min, c->ps.max, c->ps.cpu_per, rs,
                   c->pq_method);
        }
    }
    printf("\n");
    if (routing) {
        /* What the two standbys in front of the primary cost each client. */
        printf("the two standbys' cost: routed minus primary, medians and CPU per connect (ms)\n\n"
               "| cases | fwire | libpq | fwire CPU | libpq CPU |\n|---|---|---|---|---|\n");
        for (size_t k = 0; k < ncases; k++) {
            case_t *c = &cases[k];
            if (c->skipped || c->baseline < 0 || cases[c->baseline].skipped)
                continue;
            const case_t *b = &cases[c->baseline];
            printf("| %s - %s | %s%.3f | %s%.3f | %s%.3f | %s%.3f |\n", c->name, b->name,
                   run_fw ? "" : "-", run_fw ? c->fs.median - b->fs.median : 0.0, run_pq ? "" : "-",
                   run_pq ? c->ps.median - b->ps.median : 0.0, run_fw ? "" : "-",
                   run_fw ? c->fs.cpu_per - b->fs.cpu_per : 0.0, run_pq ? "" : "-",
                   run_pq ? c->ps.cpu_per - b->ps.cpu_per : 0.0);
        }
        printf("\nevery connect of both clients landed on node 0, port %d (the primary)\n\n",
               cases[0].expect_port);
    }
    for (size_t k = 0; k < ncases; k++)
        if (!cases[k].skipped)
            printf("%s: %s\n", cases[k].name, cases[k].shown);

    if (json_out != NULL) {
        FILE *jf = fopen(json_out, "w");
        if (jf == NULL) {
            fprintf(stderr, "bench_connect: %s: %s\n", json_out, strerror(errno));
            return 1;
        }
        fprintf(jf,
                "{\"benchmark\": \"%s\", \"fwire\": \"%s\", \"libuv\": \"%s\", "
                "\"libpq\": %d, \"count\": %d, \"warmup\": %d, \"cases\": [",
                routing ? "connect-routing" : "connect", fw_version_string(), uv_version_string(),
                PQlibVersion(), count, WARMUP);
        bool first = true;
        for (size_t k = 0; k < ncases; k++) {
            case_t *c = &cases[k];
            if (c->skipped)
                continue;
            fprintf(jf, "%s{\"case\": \"%s\", \"conninfo\": \"%s\", ", first ? "" : ", ", c->name,
                    c->shown);
            first = false;
            if (c->expect_port > 0)
                fprintf(jf, "\"landed_port\": %d, ", c->expect_port);
            if (c->baseline >= 0 && !cases[c->baseline].skipped)
                fprintf(jf, "\"baseline\": \"%s\", ", cases[c->baseline].name);
            if (run_fw) {
                json_stats(jf, "fwire", &c->fs, c->fw.n);
                fprintf(jf, ", \"fwire_auth\": \"%s\", \"fwire_tls\": \"%s\", ", c->fw_method,
                        c->fw_tls);
            }
            if (run_pq) {
                json_stats(jf, "libpq", &c->ps, c->pq.n);
                fprintf(jf, ", \"libpq_auth\": \"%s\", ", c->pq_method);
            }
            fprintf(jf, "\"ratio_median\": %.4f}",
                    run_fw && run_pq && c->ps.median > 0 ? c->fs.median / c->ps.median : 0.0);
        }
        fprintf(jf, "]}\n");
        fclose(jf);
    }
    for (size_t k = 0; k < ncases; k++) {
        free(cases[k].fw.wall);
        free(cases[k].pq.wall);
    }
    return 0;
}
