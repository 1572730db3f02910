/* SPDX-License-Identifier: MIT */
/*
 * The options of `fwire stream`, turned into an fw_query_t. Every typed value goes to
 * fw_query_where() and so travels as a bind parameter; only --where-sql and --order-by are
 * raw SQL, and the help says they are trusted. Values are checked here, before any connection,
 * so a typo exits 1 with a message naming the option rather than 3 with a server error.
 */
#include "cli.h"
#include "stream_args.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_line[] = "usage: fwire stream [OPTIONS] RELATION [CONNINFO]\n"
                                 "       fwire stream [OPTIONS] -e ENTITY [CONNINFO]\n";

static void usage(FILE *f)
{
    fputs(usage_line, f);
    fputs("\n"
          "Prints the data column (json or jsonb) of a view or table on stdout as NDJSON:\n"
          "one row per line, the server's JSON text unchanged except that raw newlines and\n"
          "carriage returns (whitespace between tokens of a json value) become spaces.\n"
          "\n"
          "Source:\n"
          "  RELATION                  \"v_user\" or \"schema.v_user\", used exactly as written\n"
          "  -e, --entity NAME         the view v_NAME\n"
          "\n"
          "Rows (conditions are ANDed; the typed ones travel as bind parameters):\n"
          "  -w, --where 'PATH OP TYPE:VALUE'\n"
          "                            compare the JSON value at PATH; repeatable. PATH is\n"
          "                            dotted (\"address.city\", \"tags.0\"), \".\" for the whole\n"
          "                            document. OP: eq ne lt le gt ge like ilike contains\n"
          "                            has_key. TYPE: text num bool json. Examples:\n"
          "                            'age gt num:30', 'name eq text:Bob Smith',\n"
          "                            'active eq bool:true', '. contains json:{\"a\":1}',\n"
          "                            'name like text:B%', '. has_key text:email'\n"
          "  --where-null PATH         the path is missing or holds JSON null\n"
          "  --where-not-null PATH     the path holds a value other than JSON null\n"
          "  --in 'PATH TYPE:V1,V2,...'\n"
          "                            the value at PATH is one of the list (\\, for a comma)\n"
          "  --where-sql SQL           a raw SQL condition, e.g. \"(data->>'n')::int > 3\".\n"
          "                            TRUSTED: used verbatim, never pass untrusted text\n"
          "  --order-by EXPR           an ORDER BY key, raw SQL (TRUSTED); repeatable\n"
          "  --collate NAME            collation of the preceding --order-by key\n"
          "  --desc                    the preceding --order-by key sorts descending\n"
          "  --limit N, --offset N     LIMIT and OFFSET\n"
          "\n"
          "Streaming:\n"
          "  --chunk-size N            a fixed number of rows per chunk (1..65536) instead\n"
          "                            of the adaptive size\n"
          "  --adaptive                the chunk size follows the consumer (16..1024, from\n"
          "                            256): the default; undoes an earlier --chunk-size\n"
          "  --max-memory SIZE         receive memory budget: bytes or with K, M, G suffix\n"
          "                            (default 4M, at least 64K); a larger row is still\n"
          "                            delivered, alone\n"
          "  --max-row-size SIZE       the largest row accepted (default 256M, at most 1G);\n"
          "                            a larger one fails the query (exit 3, FW_ETOOBIG)\n"
          "  --timeout MS              statement timeout of this query (0: the server's)\n"
          "  --idle-timeout MS         cancel the query and fail (exit 3, FW_ETIMEDOUT) when\n"
          "                            no byte arrives for MS milliseconds (0: never, default)\n"
          "  --cancel-timeout MS       how long cancelling may take before the connection is\n"
          "                            closed instead (0: the default, 5000)\n"
          "  --parallel N              read over N connections (1..16) under one exported\n"
          "                            snapshot: ctid ranges of a table, or key ranges\n"
          "                            with --partition-key; rows of the parts interleave;\n"
          "                            --max-memory applies per part\n"
          "  --partition-key COL       the integer column --parallel splits on (a view's\n"
          "                            indexed key); --order-by COL keeps key order\n"
          "  --partition-ctid COL      split a view by its one table's pages: COL is the\n"
          "                            view's column showing the table's ctid (t.ctid AS COL)\n"
          "\n",
          f);
    fputs("Output:\n"
          "  --nulls MODE              rows whose data is SQL NULL: skip (default: not printed,\n"
          "                            counted, one note on stderr), empty (an empty line,\n"
          "                            which no JSON value is), json-null (the text null, which\n"
          "                            a reader cannot tell from a JSON null)\n"
          "  --count                   print only \"ROWS BYTES\": rows (SQL NULLs included, as\n"
          "                            count(*)) and the bytes of their JSON text\n"
          "  --stats                   print the stream's final counters as JSON on stderr\n"
          "  --metrics-out FILE        write the fraiseql_* metrics (Prometheus text format)\n"
          "                            to FILE when the command ends, whatever the outcome\n"
          "  --progress, --no-progress a progress line on stderr (default: when stderr is a\n"
          "                            terminal and the rows go elsewhere, or with --count):\n"
          "                            rows, MB, rows/s, and against the planner's estimate\n"
          "                            (marked ~) a percentage and ETA; one summary line at\n"
          "                            the end\n"
          "  --print-sql               print the SQL that would be sent and exit\n"
          "  -v, --trace               log connection steps / protocol messages on stderr\n"
          "\n"
          "  -?, --help                this help\n"
          "\n",
          f);
    cli_conn_usage(f);
    fputs("\n"
          "CONNINFO is a connection string or URI, as for fwire ping; without it the PG*\n"
          "environment variables and defaults apply, as in psql.\n"
          "\n"
          "Stopping: when the reader of stdout goes away (| head), on SIGINT (Ctrl-C) and\n"
          "on SIGTERM the query is cancelled and fwire waits until the server has stopped\n"
          "it. After a signal nothing more is written; a second signal exits at once.\n"
          "\n"
          "Exit status: 0 success, also when the reader of stdout goes away (| head);\n"
          "1 bad usage or options, or stdout cannot be written; 2 the connection failed;\n"
          "3 the query failed (also --timeout, --idle-timeout): the rows before the failure\n"
          "are printed, then the error's name, message, SQLSTATE, DETAIL and HINT on\n"
          "stderr; 130 stopped by SIGINT; 143 stopped by SIGTERM.\n",
          f);
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int
bad(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cli_bad("stream", "%s", msg);
}

/* A setter's recorded error: the option's value is not acceptable to the library. */
static int rejected(const char *option, const char *arg, int rc)
{
    fprintf(stderr, "fwire stream: invalid %s '%s': %s\n", option, arg, fw_strerror(rc));
    return EXIT_USAGE;
}

static const struct {
    const char *name;
    fw_op_t op;
} op_names[] = {
    {"eq", FW_OP_EQ},           {"ne", FW_OP_NE},       {"lt", FW_OP_LT},
    {"le", FW_OP_LE},           {"gt", FW_OP_GT},       {"ge", FW_OP_GE},
    {"like", FW_OP_LIKE},       {"ilike", FW_OP_ILIKE}, {"contains", FW_OP_CONTAINS},
    {"has_key", FW_OP_HAS_KEY},
};

static const struct {
    const char *prefix;
    fw_value_type_t type;
} type_names[] = {
    {"text:", FW_VALUE_TEXT},
    {"num:", FW_VALUE_NUMBER},
    {"bool:", FW_VALUE_BOOL},
    {"json:", FW_VALUE_JSON},
};

/* Splits "TYPE:REST": the type and REST, or NULL when the prefix is not one of ours. */
static const char *split_type(const char *s, fw_value_type_t *type)
{
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
        size_t n = strlen(type_names[i].prefix);
        if (strncmp(s, type_names[i].prefix, n) == 0) {
            *type = type_names[i].type;
            return s + n;
        }
    }
    return NULL;
}

/* Catches typos here (exit 1) that the server would report as SQLSTATE 22P02 (exit 3):
 * num: what strtod reads whole, from JSON's number characters; bool: true or false. JSON
 * documents are left to the server's parser. */
static bool value_ok(fw_value_type_t type, const char *v)
{
    switch (type) {
    case FW_VALUE_NUMBER: {
        if (*v == '\0' || strspn(v, "0123456789+-.eE") != strlen(v))
            return false;
        char *end;
        (void)strtod(v, &end);
        return *end == '\0';
    }
    case FW_VALUE_BOOL:
        return strcmp(v, "true") == 0 || strcmp(v, "false") == 0;
    case FW_VALUE_TEXT:
    case FW_VALUE_JSON:
        return true;
    }
    return false;
}

/* "." is the whole document; anything else is a dotted path, checked by the library. */
static const char *json_path(const char *p)
{
    return strcmp(p, ".") == 0 ? "" : p;
}

/* Copies the first space-delimited word of *s into a new string and moves *s past it and the
 * spaces after it. NULL when there is no word or no memory. */
static char *next_word(const char **s)
{
    const char *p = *s + strspn(*s, " ");
    size_t n = strcspn(p, " ");
    if (n == 0)
        return NULL;
    char *w = malloc(n + 1);
    if (w == NULL)
        return NULL;
    memcpy(w, p, n);
    w[n] = '\0';
    p += n;
    *s = p + strspn(p, " ");
    return w;
}

/* --where 'PATH OP TYPE:VALUE' */
static int add_where(fw_query_t *q, const char *arg)
{
    const char *rest = arg;
    char *path = next_word(&rest);
    char *opname = next_word(&rest);
    int code = EXIT_USAGE;
    fw_value_type_t type = FW_VALUE_TEXT;
    const char *value = NULL;
    size_t i = 0;
    if (path == NULL || opname == NULL) {
        bad("--where wants 'PATH OP TYPE:VALUE', got '%s'", arg);
        goto out;
    }
    while (i < sizeof(op_names) / sizeof(op_names[0]) && strcmp(op_names[i].name, opname) != 0)
        i++;
    if (i == sizeof(op_names) / sizeof(op_names[0])) {
        bad("--where: unknown operator '%s' (eq ne lt le gt ge like ilike contains has_key)",
            opname);
        goto out;
    }
    fw_op_t op = op_names[i].op;
    if ((value = split_type(rest, &type)) == NULL) {
        bad("--where: the value needs a type prefix text:, num:, bool: or json: (got '%s')", rest);
        goto out;
    }
    if ((op == FW_OP_LIKE || op == FW_OP_ILIKE || op == FW_OP_HAS_KEY) && type != FW_VALUE_TEXT) {
        bad("--where: %s takes a text: value", opname);
        goto out;
    }
    if (!value_ok(type, value)) {
        bad("--where: '%s' is not a value of its type", rest);
        goto out;
    }
    int rc = fw_query_where(q, json_path(path), op, type, value);
    code = rc < 0 ? rejected("--where", arg, rc) : -1;
out:
    free(path);
    free(opname);
    return code;
}

/* --in 'PATH TYPE:V1,V2,...': values split at commas; "\," is a comma, "\\" a backslash. */
static int add_in(fw_query_t *q, const char *arg)
{
    const char *rest = arg;
    char *path = next_word(&rest);
    fw_value_type_t type = FW_VALUE_TEXT;
    const char *list = path != NULL ? split_type(rest, &type) : NULL;
    if (list == NULL) {
        free(path);
        return bad("--in wants 'PATH TYPE:V1,V2,...' with TYPE text, num, bool or json, got "
                   "'%s'",
                   arg);
    }
    size_t len = strlen(list);
    char *buf = malloc(len + 1);
    const char **values = malloc((len + 1) * sizeof(*values));
    int code = EXIT_USAGE;
    size_t n = 0;
    if (buf == NULL || values == NULL) {
        fputs("fwire: out of memory\n", stderr);
        goto out;
    }
    /* An empty list is zero values (matches no row), not one empty value. */
    if (len > 0) {
        char *w = buf;
        values[n++] = w;
        for (const char *p = list; *p != '\0'; p++) {
            if (*p == '\\' && (p[1] == ',' || p[1] == '\\')) {
                *w++ = *++p;
            } else if (*p == ',') {
                *w++ = '\0';
                values[n++] = w;
            } else {
                *w++ = *p;
            }
        }
        *w = '\0';
    }
    for (size_t i = 0; i < n; i++) {
        if (!value_ok(type, values[i])) {
            bad("--in: '%s' is not a value of its type", values[i]);
            goto out;
        }
    }
    int rc = fw_query_where_in(q, json_path(path), type, values, n);
    code = rc < 0 ? rejected("--in", arg, rc) : -1;
out:
    free(path);
    free(buf);
    free(values);
    return code;
}

enum {
    OPT_ENTITY,
    OPT_WHERE,
    OPT_WHERE_SQL,
    OPT_WHERE_NULL,
    OPT_WHERE_NOT_NULL,
    OPT_IN,
    OPT_ORDER_BY,
    OPT_COLLATE,
    OPT_DESC,
    OPT_LIMIT,
    OPT_OFFSET,
    OPT_CHUNK_SIZE,
    OPT_ADAPTIVE,
    OPT_MAX_MEMORY,
    OPT_TIMEOUT,
    OPT_IDLE_TIMEOUT,
    OPT_CANCEL_TIMEOUT,
    OPT_NULLS,
    OPT_COUNT,
    OPT_STATS,
    OPT_METRICS_OUT,
    OPT_MAX_ROW_SIZE,
    OPT_PROGRESS,
    OPT_NO_PROGRESS,
    OPT_PRINT_SQL,
    OPT_TRACE,
    OPT_VERBOSE,
    OPT_PARALLEL,
    OPT_PARTITION_KEY,
    OPT_PARTITION_CTID,
};

static const cli_opt_t stream_opts[] = {
    CLI_CONN_OPTIONS,
    {"entity", 'e', true, OPT_ENTITY},
    {"where", 'w', true, OPT_WHERE},
    {"where-sql", 0, true, OPT_WHERE_SQL},
    {"where-null", 0, true, OPT_WHERE_NULL},
    {"where-not-null", 0, true, OPT_WHERE_NOT_NULL},
    {"in", 0, true, OPT_IN},
    {"order-by", 0, true, OPT_ORDER_BY},
    {"collate", 0, true, OPT_COLLATE},
    {"desc", 0, false, OPT_DESC},
    {"limit", 0, true, OPT_LIMIT},
    {"offset", 0, true, OPT_OFFSET},
    {"chunk-size", 0, true, OPT_CHUNK_SIZE},
    {"adaptive", 0, false, OPT_ADAPTIVE},
    {"max-memory", 0, true, OPT_MAX_MEMORY},
    {"max-row-size", 0, true, OPT_MAX_ROW_SIZE},
    {"timeout", 0, true, OPT_TIMEOUT},
    {"idle-timeout", 0, true, OPT_IDLE_TIMEOUT},
    {"cancel-timeout", 0, true, OPT_CANCEL_TIMEOUT},
    {"parallel", 0, true, OPT_PARALLEL},
    {"partition-key", 0, true, OPT_PARTITION_KEY},
    {"partition-ctid", 0, true, OPT_PARTITION_CTID},
    {"nulls", 0, true, OPT_NULLS},
    {"count", 0, false, OPT_COUNT},
    {"stats", 0, false, OPT_STATS},
    {"metrics-out", 0, true, OPT_METRICS_OUT},
    {"progress", 0, false, OPT_PROGRESS},
    {"no-progress", 0, false, OPT_NO_PROGRESS},
    {"print-sql", 0, false, OPT_PRINT_SQL},
    {"trace", 0, false, OPT_TRACE},
    {"verbose", 'v', false, OPT_VERBOSE},
    {NULL, 0, false, 0},
};

/* An ORDER BY key waits in this list until the options after it (--collate, --desc) are
 * read; the keys go to the query in order once every option is parsed. */
typedef struct order_key_s {
    const char *expr;
    const char *collation;
    bool desc;
} order_key_t;

/* One option; returns -1 to go on or an exit code. `keys` has room for argc keys. */
static int one_option(stream_args_t *a, int c, const char *arg, order_key_t *keys, size_t *nkeys,
                      const char **entity)
{
    fw_query_t *q = a->q;
    uint64_t v;
    int rc;
    switch (c) {
    case OPT_ENTITY:
        *entity = arg;
        return -1;
    case OPT_WHERE:
        return add_where(q, arg);
    case OPT_IN:
        return add_in(q, arg);
    case OPT_WHERE_SQL:
        rc = fw_query_where_sql(q, arg);
        return rc < 0 ? rejected("--where-sql", arg, rc) : -1;
    case OPT_WHERE_NULL:
    case OPT_WHERE_NOT_NULL:
        rc = fw_query_where(q, json_path(arg),
                            c == OPT_WHERE_NULL ? FW_OP_IS_NULL : FW_OP_IS_NOT_NULL, FW_VALUE_TEXT,
                            NULL);
        return rc < 0 ? rejected(c == OPT_WHERE_NULL ? "--where-null" : "--where-not-null", arg, rc)
                      : -1;
    case OPT_ORDER_BY:
        keys[(*nkeys)++] = (order_key_t){arg, NULL, false};
        return -1;
    case OPT_COLLATE:
    case OPT_DESC:
        if (*nkeys == 0)
            return bad("%s must follow an --order-by", c == OPT_DESC ? "--desc" : "--collate");
        if (c == OPT_DESC)
            keys[*nkeys - 1].desc = true;
        else
            keys[*nkeys - 1].collation = arg;
        return -1;
    case OPT_LIMIT:
    case OPT_OFFSET:
        if (!cli_parse_uint(arg, INT64_MAX, &v))
            return bad("--limit and --offset want a whole number >= 0, got '%s'", arg);
        rc = c == OPT_LIMIT ? fw_query_limit(q, (int64_t)v) : fw_query_offset(q, (int64_t)v);
        return rc < 0 ? rejected(c == OPT_LIMIT ? "--limit" : "--offset", arg, rc) : -1;
    case OPT_CHUNK_SIZE:
        if (!cli_parse_uint(arg, SIZE_MAX, &v) || (rc = fw_query_chunk_size(q, (size_t)v)) < 0)
            return bad("--chunk-size wants a number of rows from 1 to 65536, got '%s'", arg);
        return -1;
    case OPT_ADAPTIVE:
        rc = fw_query_chunk_adaptive(q, NULL);
        return rc < 0 ? rejected("--adaptive", "", rc) : -1;
    case OPT_MAX_MEMORY:
        if (!cli_parse_size(arg, &v) || v > SIZE_MAX || (rc = fw_query_max_memory(q, (size_t)v)) < 0)
            return bad("--max-memory wants bytes, at least 64K (suffixes K, M, G), got '%s'", arg);
        return -1;
    case OPT_MAX_ROW_SIZE:
        /* A row's JSON plus the 11 bytes of its DataRow header is one message: max_message. A
         * field is at most 1 GiB in PostgreSQL, so nothing larger can ever arrive. */
        if (!cli_parse_size(arg, &v) || v < 1 || v > ((uint64_t)1 << 30))
            return bad("--max-row-size wants bytes from 1 to 1G (suffixes K, M, G), got '%s'",
                       arg);
        a->max_row_size = (size_t)v + 11;
        return -1;
    case OPT_TIMEOUT:
        if (!cli_parse_uint(arg, UINT32_MAX, &v))
            return bad("--timeout wants milliseconds (0 to 4294967295), got '%s'", arg);
        rc = fw_query_statement_timeout(q, (uint32_t)v);
        return rc < 0 ? rejected("--timeout", arg, rc) : -1;
    case OPT_IDLE_TIMEOUT:
        if (!cli_parse_uint(arg, UINT32_MAX, &v))
            return bad("--idle-timeout wants milliseconds (0 to 4294967295), got '%s'", arg);
        rc = fw_query_idle_timeout(q, (uint32_t)v);
        return rc < 0 ? rejected("--idle-timeout", arg, rc) : -1;
    case OPT_CANCEL_TIMEOUT:
        if (!cli_parse_uint(arg, UINT32_MAX, &v))
            return bad("--cancel-timeout wants milliseconds (0 to 4294967295), got '%s'", arg);
        rc = fw_query_cancel_timeout(q, (uint32_t)v);
        return rc < 0 ? rejected("--cancel-timeout", arg, rc) : -1;
    case OPT_PARALLEL:
        if (!cli_parse_uint(arg, 16, &v) || v < 1 || (rc = fw_query_parallel(q, (int)v)) < 0)
            return bad("--parallel wants a number of connections from 1 to 16, got '%s'", arg);
        return -1;
    case OPT_PARTITION_KEY:
        rc = fw_query_partition_key(q, arg);
        return rc < 0 ? rejected("--partition-key", arg, rc) : -1;
    case OPT_PARTITION_CTID:
        rc = fw_query_partition_ctid(q, arg);
        return rc < 0 ? rejected("--partition-ctid", arg, rc) : -1;
    case OPT_NULLS:
        a->nulls_given = true;
        if (strcmp(arg, "skip") == 0)
            a->nulls = NULLS_SKIP;
        else if (strcmp(arg, "empty") == 0)
            a->nulls = NULLS_EMPTY;
        else if (strcmp(arg, "json-null") == 0)
            a->nulls = NULLS_JSON;
        else
            return bad("--nulls wants skip, empty or json-null, got '%s'", arg);
        return -1;
    case OPT_COUNT:
        a->count = true;
        return -1;
    case OPT_STATS:
        a->stats = true;
        return -1;
    case OPT_METRICS_OUT:
        if (arg[0] == '\0')
            return bad("--metrics-out wants a file name");
        a->metrics_out = arg;
        return -1;
    case OPT_PROGRESS:
    case OPT_NO_PROGRESS:
        a->progress = c == OPT_PROGRESS;
        return -1;
    case OPT_PRINT_SQL:
        a->print_sql = true;
        return -1;
    case OPT_TRACE:
        a->tracing = true;
        return -1;
    case OPT_VERBOSE:
        a->verbose = true;
        return -1;
    default:
        return bad("unknown option %d", c);
    }
}

int stream_args_parse(stream_args_t *a, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    a->progress = -1;
    int rc = fw_query_new(&a->q);
    if (rc < 0) {
        fprintf(stderr, "fwire: %s\n", fw_strerror(rc));
        return EXIT_USAGE;
    }
    order_key_t *keys = malloc((size_t)argc * sizeof(*keys));
    if (keys == NULL) {
        fputs("fwire: out of memory\n", stderr);
        return EXIT_USAGE;
    }
    size_t nkeys = 0;
    const char *entity = NULL;
    int code = -1;
    /* Options may follow RELATION; the arguments keep their order. A RELATION with '=' in
     * it is refused below: `fwire stream "host=db1"` reading a view called "host=db1" from the
     * default server would confuse more than such names are worth. */
    const char **pos = malloc((size_t)argc * sizeof(*pos));
    if (pos == NULL) {
        free(keys);
        fputs("fwire: out of memory\n", stderr);
        return EXIT_USAGE;
    }
    int npos = 0;
    cli_parser_t p;
    cli_init(&p, "stream", stream_opts, argc, argv);
    const char *value;
    int c;
    while (code < 0 && (c = cli_next(&p, &value)) != CLI_DONE) {
        if (c == CLI_ERROR)
            code = EXIT_USAGE;
        else if (c == CLI_HELP) {
            usage(stdout);
            code = EXIT_OK;
        }
        else if (c == CLI_ARG)
            pos[npos++] = value;
        else if (!cli_conn_option(&a->conn, c, value))
            code = one_option(a, c, value, keys, &nkeys, &entity);
    }
    const char *conninfo = NULL;
    if (code < 0 && entity != NULL) {
        if (npos > 1)
            code = bad("too many arguments: '%s' (with --entity, only CONNINFO)", pos[1]);
        else if ((rc = fw_query_entity(a->q, entity)) < 0)
            code = rejected("--entity", entity, rc);
        conninfo = npos == 1 ? pos[0] : NULL;
    } else if (code < 0) {
        if (npos < 1)
            code = bad("%s", "which view? give a RELATION or --entity NAME");
        else if (npos > 2)
            code = bad("too many arguments: '%s'", pos[2]);
        else if (cli_is_conninfo(pos[0]))
            code = bad("'%s' looks like a connection string: give the RELATION (or --entity) "
                       "before it",
                       pos[0]);
        else if ((rc = fw_query_relation(a->q, pos[0])) < 0)
            code = rejected("relation", pos[0], rc);
        conninfo = npos == 2 ? pos[1] : NULL;
    }
    if (code < 0 && conninfo != NULL)
        code = cli_conn_set(&a->conn, "stream", conninfo);
    if (code < 0)
        code = cli_conn_apply(&a->conn, "stream");
    a->conninfo = a->conn.conninfo;
    free(pos);
    for (size_t i = 0; code < 0 && i < nkeys; i++) {
        rc = fw_query_order_by(a->q, keys[i].expr, keys[i].collation, keys[i].desc);
        if (rc < 0)
            code = rejected("--order-by", keys[i].expr, rc);
    }
    free(keys);
    return code;
}

int stream_args_print_sql(const stream_args_t *a)
{
    long n = fw_query_sql(a->q, NULL, 0);
    if (n < 0) {
        fprintf(stderr, "fwire stream: %s\n", fw_strerror((int)n));
        return EXIT_USAGE;
    }
    char *buf = malloc((size_t)n + 1);
    if (buf == NULL) {
        fputs("fwire: out of memory\n", stderr);
        return EXIT_USAGE;
    }
    fw_query_sql(a->q, buf, (size_t)n + 1);
    puts(buf);
    free(buf);
    return EXIT_OK;
}

void stream_args_free(stream_args_t *a)
{
    fw_query_free(a->q);
    a->q = NULL;
}
