/* SPDX-License-Identifier: MIT */
/*
 * fwire stream [OPTIONS] RELATION [CONNINFO]: streams the data column of a view as NDJSON on
 * stdout, with the threaded-mode API (a runtime thread reads the socket; this thread blocks in
 * fw_stream_next and writes). Options are parsed into a query in stream_args.c; this file runs
 * it and writes the output, the progress line, the counters and the errors. docs/cli.md.
 */
#include "cli.h"
#include "stream_args.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * Output buffer. One write(2) per 256 KiB instead of one per row: with ~270-byte rows a write
 * per row would cost more CPU than receiving and parsing the row. It is flushed when full, at
 * the end, and whenever no row is ready (the queue has run dry), so a slow stream reaches a
 * reader such as `| jq` row by row while a fast one, whose queue is rarely empty, keeps its
 * large writes.
 */
#define OUT_BUFFER_BYTES (256u * 1024u)
/* The progress line is redrawn at most this often: a terminal redraw per row would cost more
 * than the row, and a human cannot read faster than about four updates a second. */
#define PROGRESS_MS 250
/* Rows between two clock reads for the progress line. */
#define PROGRESS_ROWS 1024
/* The longest fw_stream_next waits before the consumer looks at the stop flag again: how late
 * a SIGINT or SIGTERM can be noticed while no row arrives. */
#define STOP_POLL_MS 100
/* What consume() returns when a SIGINT or SIGTERM asked it to stop (not an fw code). */
#define CONSUME_STOPPED 1000

typedef struct out_s {
    char *buf;
    size_t used;
    bool gone; /* the reader went away (EPIPE): a quiet end, as for `| head -1` */
    int err;   /* errno of any other write failure */
} out_t;

typedef struct totals_s {
    uint64_t rows;       /* rows received, SQL NULLs included (what count(*) counts) */
    uint64_t sql_nulls;  /* rows whose data was SQL NULL */
    uint64_t json_bytes; /* bytes of JSON text of the other rows (octet_length(data::text)) */
} totals_t;

typedef struct progress_s {
    bool on;
    bool shown;       /* a line is on the terminal and must be cleared at the end */
    int64_t estimate; /* the planner's row estimate, -1 when there is none */
    double start;
    double last;
} progress_t;

/*
 * SIGINT and SIGTERM (docs/cli.md, "Stopping"). The handler only records the signal; the
 * consumer thread (this one) sees it within STOP_POLL_MS, cancels the query with
 * fw_stream_cancel (the API's thread rule: cancel belongs to the consumer) and exits 128 +
 * the signal number. Only the consumer thread takes the signals: they are blocked while the
 * runtime thread is created, so it (and libuv's threads, which it creates) inherit the mask.
 * The handler is installed without SA_RESTART, so a write(2) blocked on a full pipe returns
 * EINTR and the consumer stops even when the reader of stdout has stalled.
 *
 * Before the query is started (`armed` false: connecting, nothing to cancel) and for a second
 * signal (the cancel itself is taking too long) the handler exits at once. Lock-free atomics
 * are the state a C11 signal handler may touch; _exit is async-signal-safe.
 */
static atomic_int stop_sig;    /* the first SIGINT or SIGTERM received, 0 while none */
static atomic_bool stop_armed; /* a query may run: the consumer cancels it */

static void on_stop_signal(int sig)
{
    if (!atomic_load(&stop_armed) || atomic_load(&stop_sig) != 0)
        _exit(128 + sig);
    atomic_store(&stop_sig, sig);
}

static int stop_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: interrupt a blocked write */
    /* Installed even when the signal was inherited as ignored (a background job of a
     * non-interactive shell): like psql, fwire always cancels its query on SIGINT. */
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        return -1;
    return 0;
}

/* Blocks (block true) or unblocks SIGINT and SIGTERM in the calling thread. */
static void stop_signals_mask(bool block)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

/* The query is over (or cancelled): a signal from now on exits at once. Returns the signal
 * that arrived before, 0 if none. */
static int stop_disarm(void)
{
    atomic_store(&stop_armed, false);
    return atomic_load(&stop_sig);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Output still goes somewhere: the reader is there, no write failed, no signal stopped us. */
static bool out_open(const out_t *o)
{
    return !o->gone && o->err == 0 && atomic_load_explicit(&stop_sig, memory_order_relaxed) == 0;
}

static void out_write(out_t *o, const char *p, size_t n)
{
    while (n > 0 && out_open(o)) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR && atomic_load_explicit(&stop_sig, memory_order_relaxed) != 0)
                return; /* SIGINT or SIGTERM while the reader did not read: stop writing */
            if (errno == EINTR)
                continue;
            /* SIGPIPE is ignored (cli_stream), so a closed pipe shows up here as EPIPE */
            if (errno == EPIPE)
                o->gone = true;
            else
                o->err = errno;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void out_flush(out_t *o)
{
    out_write(o, o->buf, o->used);
    o->used = 0;
}

/*
 * Replaces raw LF and CR bytes with spaces. NDJSON needs one value per line, and a json
 * (not jsonb) value keeps the text as it was typed, newlines included. In valid JSON text a raw
 * control character can never be inside a string (RFC 8259 section 7: U+0000 to U+001F must be
 * escaped there), so every raw LF or CR is insignificant whitespace between tokens; a space is
 * whitespace too, so the value is unchanged. PostgreSQL validates json input, so the text is
 * valid. Escaped "\n" inside strings is two other bytes and is left alone.
 */
static void flatten_lines(char *p, size_t n)
{
    static const char raw[2] = {'\n', '\r'};
    for (int k = 0; k < 2; k++) {
        char *end = p + n;
        for (char *q = memchr(p, raw[k], n); q != NULL;
             q = memchr(q + 1, raw[k], (size_t)(end - (q + 1))))
            *q = ' ';
    }
}

/* Appends one JSON value, flattened, in pieces of at most the buffer's size. */
static void out_json(out_t *o, const char *json, size_t len)
{
    while (len > 0 && out_open(o)) {
        size_t n = OUT_BUFFER_BYTES - o->used;
        if (n > len)
            n = len;
        memcpy(o->buf + o->used, json, n);
        flatten_lines(o->buf + o->used, n);
        o->used += n;
        json += n;
        len -= n;
        if (o->used == OUT_BUFFER_BYTES)
            out_flush(o);
    }
}

static void out_newline(out_t *o)
{
    if (o->used == OUT_BUFFER_BYTES)
        out_flush(o);
    o->buf[o->used++] = '\n';
}

static void progress_draw(progress_t *p, const totals_t *t, const fw_stream_t *s, double now)
{
    fw_stream_stats_t st;
    fw_stream_stats(s, &st);
    double secs = now - p->start;
    double rate = secs > 0 ? (double)t->rows / secs : 0;
    /* Against the planner's estimate ("~": it is one, often off by a factor): a percentage and
     * an ETA while the rows stay under it; past it, only that it was passed. */
    char against[96] = "";
    if (p->estimate > 0 && t->rows <= (uint64_t)p->estimate) {
        double left = rate > 0 ? (double)((uint64_t)p->estimate - t->rows) / rate : -1;
        int n = snprintf(against, sizeof(against), " of ~%" PRId64 " (~%.0f%%", p->estimate,
                         (double)t->rows * 100.0 / (double)p->estimate);
        if (n > 0 && (size_t)n < sizeof(against))
            snprintf(against + n, sizeof(against) - (size_t)n,
                     left >= 0 ? ", ETA ~%.0f s)" : ")", left);
    } else if (p->estimate >= 0) {
        snprintf(against, sizeof(against), " (past the estimate of ~%" PRId64 ")", p->estimate);
    }
    /* \r and "erase to end of line": one line, rewritten in place */
    fprintf(stderr,
            "\rfwire: %" PRIu64 " rows%s, %.1f MB, %.0f rows/s, %.1f MB buffered\033[K",
            t->rows, against, (double)t->json_bytes / 1e6, rate,
            (double)st.bytes_buffered / 1e6);
    fflush(stderr);
    p->shown = true;
    p->last = now;
}

static void progress_tick(progress_t *p, const totals_t *t, const fw_stream_t *s)
{
    if (!p->on)
        return;
    double now = now_seconds();
    if ((now - p->last) * 1e3 >= PROGRESS_MS)
        progress_draw(p, t, s, now);
}

static void progress_clear(progress_t *p)
{
    if (p->shown)
        fputs("\r\033[K", stderr);
    p->shown = false;
}

/* The progress line's last word: replaces it with one line that stays (rows, bytes, rate,
 * time), so the terminal keeps what the stream did. */
static void progress_summary(progress_t *p, const totals_t *t, double seconds)
{
    if (!p->on)
        return;
    progress_clear(p);
    fprintf(stderr, "fwire: %" PRIu64 " rows, %.1f MB, %.0f rows/s, %.2f s\n", t->rows,
            (double)t->json_bytes / 1e6, seconds > 0 ? (double)t->rows / seconds : 0.0,
            seconds);
}

/*
 * The planner's estimate of the rows, for the progress line: `EXPLAIN (FORMAT JSON)` of the
 * same query on the same connection, one round trip before the rows. Its first "Plan Rows" is
 * the top node's (PostgreSQL writes a node's own fields before its "Plans"). -1 when there is
 * none: the line then shows no percentage, as for a failed EXPLAIN, which is not the query's
 * failure (the query itself reports its own).
 */
static int64_t plan_estimate(fw_conn_t *conn, fw_query_t *q)
{
    int64_t est = -1;
    if (fw_query_explain(q, true) < 0)
        return -1;
    fw_stream_t *s = NULL;
    if (fw_stream_start(conn, q, NULL, NULL, &s, NULL) == 0) {
        fw_row_t row;
        int rc;
        while ((rc = fw_stream_next(s, &row, -1)) == FW_ROW) {
            static const char key[] = "\"Plan Rows\":";
            if (row.is_null || est >= 0)
                continue;
            /* row.json is not NUL-terminated: search within its length */
            for (size_t i = 0; i + sizeof(key) - 1 < row.len; i++) {
                if (memcmp(row.json + i, key, sizeof(key) - 1) != 0)
                    continue;
                char num[32];
                size_t j = i + sizeof(key) - 1, n = 0;
                while (j < row.len && row.json[j] == ' ')
                    j++;
                while (j < row.len && n + 1 < sizeof(num) && strchr("0123456789.e+", row.json[j]))
                    num[n++] = row.json[j++];
                num[n] = '\0';
                char *end;
                double v = strtod(num, &end);
                if (n > 0 && *end == '\0' && v >= 0 && v < 9e18)
                    est = (int64_t)v;
                break;
            }
        }
        fw_stream_free(s);
    }
    (void)fw_query_explain(q, false);
    return est;
}

/* --stats: every field of fw_stream_stats_t, then the command's own totals. */
static void print_stats(const fw_stream_stats_t *st, const totals_t *t, double seconds)
{
    fprintf(stderr,
            "{\"rows_buffered\": %" PRIu64 ", \"chunks_buffered\": %" PRIu64
            ", \"bytes_buffered\": %" PRIu64 ", \"rows_yielded\": %" PRIu64
            ", \"rows_filtered\": %" PRIu64 ", \"bytes_received\": %" PRIu64
            ", \"chunks_delivered\": %" PRIu64 ", \"read_stops\": %" PRIu64
            ", \"chunk_size\": %" PRIu32 ", \"chunk_grows\": %" PRIu64
            ", \"chunk_shrinks\": %" PRIu64 ", \"pauses\": %" PRIu64
            ", \"pause_timeouts\": %" PRIu64 ", \"state\": \"%s\", \"max_memory\": %" PRIu64
            ", \"read_wakeups\": %" PRIu64 ", \"read_ticks\": %" PRIu64 ", \"rows\": %" PRIu64 ", \"sql_nulls\": %" PRIu64 ", \"json_bytes\": %" PRIu64
            ", \"seconds\": %.6f}\n",
            st->rows_buffered, st->chunks_buffered, st->bytes_buffered, st->rows_yielded,
            st->rows_filtered, st->bytes_received, st->chunks_delivered, st->read_stops,
            st->chunk_size, st->chunk_grows, st->chunk_shrinks, st->pauses, st->pause_timeouts,
            fw_stream_state_name(st->state), st->max_memory, st->read_wakeups, st->read_ticks, t->rows, t->sql_nulls, t->json_bytes,
            seconds);
}

/* Reads every row of `s`, writing or counting it. Returns FW_END, the stream's failure, or
 * CONSUME_STOPPED after a SIGINT or SIGTERM. */
static int consume(fw_stream_t *s, const stream_args_t *a, out_t *out, totals_t *t,
                   progress_t *prog)
{
    for (;;) {
        if (atomic_load_explicit(&stop_sig, memory_order_relaxed) != 0)
            return CONSUME_STOPPED;
        /* With output pending, only look: no row ready means the queue ran dry, the moment
         * to flush (a slow producer's rows reach the reader at once). Otherwise wait at most
         * STOP_POLL_MS (to notice a signal), less when a progress line is due. */
        int timeout = out->used > 0 ? 0 : STOP_POLL_MS;
        if (prog->on && timeout > PROGRESS_MS)
            timeout = PROGRESS_MS;
        fw_row_t row;
        int rc = fw_stream_next(s, &row, timeout);
        if (rc == FW_AGAIN) {
            if (out->used > 0)
                out_flush(out);
            progress_tick(prog, t, s);
        } else if (rc != FW_ROW) {
            return rc; /* FW_END or a failure */
        } else {
            t->rows++;
            if (row.is_null) {
                t->sql_nulls++;
                if (!a->count && a->nulls == NULLS_EMPTY) {
                    out_newline(out);
                } else if (!a->count && a->nulls == NULLS_JSON) {
                    out_json(out, "null", 4);
                    out_newline(out);
                }
            } else {
                t->json_bytes += row.len;
                if (!a->count) {
                    out_json(out, row.json, row.len);
                    out_newline(out);
                }
            }
            if (prog->on && t->rows % PROGRESS_ROWS == 0)
                progress_tick(prog, t, s);
        }
        if (out->gone || out->err != 0)
            return FW_END;
    }
}

static int run(const stream_args_t *a)
{
    /* A reader that goes away (`| head -1`) must end the command quietly: ignore SIGPIPE, so
     * write(2) fails with EPIPE instead of killing the process, and treat EPIPE as the end. */
    signal(SIGPIPE, SIG_IGN);
    if (stop_signals_install() < 0) {
        fprintf(stderr, "fwire: cannot install the signal handlers: %s\n", strerror(errno));
        return EXIT_USAGE;
    }

    /* The runtime thread inherits the mask: SIGINT and SIGTERM reach this thread only. */
    stop_signals_mask(true);
    fw_runtime_t *rt = NULL;
    int rc = fw_runtime_new(&rt);
    stop_signals_mask(false);
    if (rc < 0) {
        fprintf(stderr, "fwire: cannot start the runtime thread: %s\n", fw_strerror(rc));
        return EXIT_USAGE;
    }
    fw_conn_opts_t copts;
    fw_conn_opts_init(&copts);
    copts.conninfo = a->conninfo;
    copts.max_message = a->max_row_size;
    if (a->verbose)
        copts.log_cb = cli_on_log;
    if (a->tracing)
        copts.trace_cb = cli_on_trace;
    fw_error_t err;
    memset(&err, 0, sizeof(err));
    fw_conn_t *conn = NULL;
    rc = fw_conn_connect_sync(rt, &copts, &conn, &err);
    if (rc == FW_ECONFIG) {
        fprintf(stderr, "fwire: invalid connection options: %s\n",
                err.message[0] ? err.message : fw_strerror(rc));
        fw_runtime_free(rt);
        return EXIT_USAGE;
    }
    if (rc < 0) {
        cli_print_error("connection failed", fw_phase_name(err.phase), rc, &err);
        fw_runtime_free(rt);
        return EXIT_CONNECT;
    }
    fw_conn_info_t info;
    if (fw_conn_info(conn, &info) == 0)
        cli_warn_unverified(&info, a->conninfo);

    /* By default the progress line is for a terminal, and only when the rows go elsewhere:
     * drawn between rows on the same terminal it would garble them. */
    bool auto_on = isatty(STDERR_FILENO) && (a->count || !isatty(STDOUT_FILENO));
    bool prog_on = a->progress > 0 || (a->progress < 0 && auto_on);
    int64_t estimate = prog_on ? plan_estimate(conn, a->q) : -1;

    fw_stream_t *s = NULL;
    double start = now_seconds();
    /* From here a signal is the consumer's to act on (cancel the query), not an exit at once.
     * One that arrives while fw_stream_start runs is seen by the first look in consume(). */
    atomic_store(&stop_armed, true);
    rc = fw_stream_start(conn, a->q, NULL, NULL, &s, &err);
    if (rc < 0) {
        int sig = stop_disarm();
        if (sig == 0)
            cli_print_error("query not started", fw_err_name(rc), rc, &err);
        fw_conn_close_sync(conn);
        fw_runtime_free(rt);
        return sig != 0 ? 128 + sig : rc == FW_EINVAL ? EXIT_USAGE : EXIT_QUERY;
    }

    out_t out = {.buf = NULL};
    if (!a->count && (out.buf = malloc(OUT_BUFFER_BYTES)) == NULL) {
        fprintf(stderr, "fwire: out of memory\n");
        fw_stream_free(s);
        fw_conn_close_sync(conn);
        fw_runtime_free(rt);
        return EXIT_USAGE;
    }
    totals_t t = {0, 0, 0};
    progress_t prog = {.on = prog_on, .estimate = estimate, .start = start, .last = start};
    int end = consume(s, a, &out, &t, &prog);
    int cancel_rc = 0;
    if (end == CONSUME_STOPPED || out.gone || out.err != 0) {
        /* Nobody wants the rest: cancel the query and wait until the server is idle again
         * (a no-op when the stream has ended already). */
        cancel_rc = fw_stream_cancel(s);
    }
    int sig = stop_disarm();
    if (sig != 0) {
        /* A signal: flush nothing more, print no totals, end with 128 + its number. */
        progress_clear(&prog);
        if (cancel_rc < 0)
            fprintf(stderr, "fwire: the query could not be cancelled cleanly: %s\n",
                    fw_strerror(cancel_rc));
        fw_stream_free(s);
        fw_conn_close_sync(conn);
        fw_runtime_free(rt);
        free(out.buf);
        return 128 + sig;
    }
    if (out.buf != NULL)
        out_flush(&out);
    double seconds = now_seconds() - start;
    fw_stream_stats_t st;
    fw_stream_stats(s, &st);
    progress_summary(&prog, &t, seconds);

    int code = EXIT_OK;
    if (out.err != 0) {
        fprintf(stderr, "fwire: cannot write to stdout: %s\n", strerror(out.err));
        code = EXIT_USAGE;
    } else if (end < 0 && !out.gone) {
        /* the rows before the failure are on stdout already: say what ended the stream */
        cli_print_error("query failed", fw_err_name(end), end, fw_stream_error(s));
        code = EXIT_QUERY;
    }
    if (a->count && code == EXIT_OK)
        printf("%" PRIu64 " %" PRIu64 "\n", t.rows, t.json_bytes);
    if (a->stats) {
        print_stats(&st, &t, seconds);
        /* A parallel stream (--parallel): each part's own figures, one line each. */
        for (int i = 0; fw_stream_parts(s) > 1 && i < fw_stream_parts(s); i++) {
            fw_stream_stats_t ps;
            if (fw_stream_part_stats(s, i, &ps) == 0)
                fprintf(stderr,
                        "{\"part\": %d, \"rows_yielded\": %" PRIu64
                        ", \"bytes_received\": %" PRIu64 ", \"read_stops\": %" PRIu64
                        ", \"state\": \"%s\"}\n",
                        i, ps.rows_yielded, ps.bytes_received, ps.read_stops,
                        fw_stream_state_name(ps.state));
        }
    }
    if (t.sql_nulls > 0 && !a->nulls_given && !a->count && !out.gone)
        fprintf(stderr,
                "fwire: %" PRIu64 " row(s) with SQL NULL data skipped (--nulls=empty or "
                "--nulls=json-null prints them)\n",
                t.sql_nulls);

    fw_stream_free(s);
    fw_conn_close_sync(conn);
    fw_runtime_free(rt);
    free(out.buf);
    return code;
}

/* --metrics-out: the exposition text into `path` (replaced). Returns 0 or -1 (reported). */
static int write_metrics(const char *path)
{
    long n = fw_metrics_render(NULL, 0);
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (text == NULL || fw_metrics_render(text, (size_t)n + 1) != n) {
        fprintf(stderr, "fwire: cannot render the metrics\n");
        free(text);
        return -1;
    }
    FILE *f = fopen(path, "w");
    bool ok = f != NULL && fwrite(text, 1, (size_t)n, f) == (size_t)n;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "fwire: cannot write the metrics to %s: %s\n", path, strerror(errno));
    free(text);
    return ok ? 0 : -1;
}

int cli_stream(int argc, char **argv)
{
    stream_args_t a;
    int code = stream_args_parse(&a, argc, argv);
    if (code < 0) {
        if (a.print_sql) {
            code = stream_args_print_sql(&a);
        } else {
            code = run(&a);
            /* After the runtime is gone: every connection closed, every gauge back. */
            if (a.metrics_out != NULL && write_metrics(a.metrics_out) < 0 && code == EXIT_OK)
                code = EXIT_USAGE;
        }
    }
    stream_args_free(&a);
    return code;
}
