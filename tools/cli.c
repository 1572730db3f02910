/* SPDX-License-Identifier: MIT */
/*
 * The option parser every subcommand of the fwire command shares (cli.h): one table per
 * subcommand, one way to spell options, one message for each mistake. getopt_long is not used:
 * it prints its own messages, which name the option only sometimes, and it is not POSIX. Also
 * the number and size parsers and the psql-style connection options.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void cli_init(cli_parser_t *p, const char *cmd, const cli_opt_t *opts, int argc, char **argv)
{
    memset(p, 0, sizeof(*p));
    p->cmd = cmd;
    p->opts = opts;
    p->argc = argc;
    p->argv = argv;
    p->i = 1;
}

const char *cli_written(const cli_parser_t *p)
{
    return p->written;
}

int cli_bad(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fwire %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(fwire %s --help lists every option)\n", cmd);
    return EXIT_USAGE;
}

/* Keeps the option as written for messages; an absurdly long one is cut, not overflowed. */
static void set_written(cli_parser_t *p, const char *prefix, const char *name, size_t n)
{
    if (n > sizeof(p->written) - 8)
        n = sizeof(p->written) - 8;
    snprintf(p->written, sizeof(p->written), "%s%.*s", prefix, (int)n, name);
}

static int next_long(cli_parser_t *p, const char *arg, const char **value)
{
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t n = eq != NULL ? (size_t)(eq - name) : strlen(name);
    set_written(p, "--", name, n);
    if (n == 4 && strncmp(name, "help", 4) == 0 && eq == NULL)
        return CLI_HELP;
    for (const cli_opt_t *o = p->opts; o->name != NULL; o++) {
        if (strlen(o->name) != n || strncmp(o->name, name, n) != 0)
            continue;
        if (!o->value) {
            if (eq != NULL)
                return cli_bad(p->cmd, "option '%s' takes no value", p->written), CLI_ERROR;
            *value = NULL;
        } else if (eq != NULL) {
            *value = eq + 1;
        } else if (p->i < p->argc) {
            *value = p->argv[p->i++];
        } else {
            return cli_bad(p->cmd, "option '%s' needs a value", p->written), CLI_ERROR;
        }
        return o->id;
    }
    return cli_bad(p->cmd, "unknown option '%s'", p->written), CLI_ERROR;
}

static int next_short(cli_parser_t *p, const char **value)
{
    char c = *p->cluster++;
    set_written(p, "-", &c, 1);
    if (*p->cluster == '\0')
        p->cluster = NULL;
    if (c == '?')
        return CLI_HELP;
    for (const cli_opt_t *o = p->opts; o->name != NULL; o++) {
        if (o->letter != c)
            continue;
        if (!o->value) {
            *value = NULL;
        } else if (p->cluster != NULL) { /* -p5432 */
            *value = p->cluster;
            p->cluster = NULL;
        } else if (p->i < p->argc) {
            *value = p->argv[p->i++];
        } else {
            return cli_bad(p->cmd, "option '%s' needs a value", p->written), CLI_ERROR;
        }
        return o->id;
    }
    return cli_bad(p->cmd, "unknown option '%s'", p->written), CLI_ERROR;
}

int cli_next(cli_parser_t *p, const char **value)
{
    *value = NULL;
    p->written[0] = '\0';
    if (p->cluster != NULL)
        return next_short(p, value);
    if (p->i >= p->argc)
        return CLI_DONE;
    const char *arg = p->argv[p->i++];
    if (p->only_args || arg[0] != '-' || arg[1] == '\0') { /* "-" is an argument */
        *value = arg;
        return CLI_ARG;
    }
    if (strcmp(arg, "--") == 0) {
        p->only_args = true;
        return cli_next(p, value);
    }
    if (arg[1] == '-')
        return next_long(p, arg, value);
    p->cluster = arg + 1;
    return next_short(p, value);
}

bool cli_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool cli_parse_size(const char *s, uint64_t *out)
{
    char digits[32];
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n >= sizeof(digits))
        return false;
    memcpy(digits, s, n);
    digits[n] = '\0';
    const char *suffix = s + n;
    unsigned shift = 0;
    switch (*suffix) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    default:
        break;
    }
    if (shift != 0)
        suffix++;
    if (strcmp(suffix, "") != 0 && strcmp(suffix, "B") != 0 &&
        (shift == 0 || strcmp(suffix, "iB") != 0))
        return false;
    uint64_t v;
    if (!cli_parse_uint(digits, UINT64_MAX >> shift, &v))
        return false;
    *out = v << shift;
    return true;
}

bool cli_is_conninfo(const char *s)
{
    return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0 ||
           strchr(s, '=') != NULL;
}

bool cli_conn_option(cli_conn_t *c, int id, const char *value)
{
    switch (id) {
    case CLI_OPT_HOST:
        c->host = value;
        return true;
    case CLI_OPT_PORT:
        c->port = value;
        return true;
    case CLI_OPT_USER:
        c->user = value;
        return true;
    case CLI_OPT_DBNAME:
        c->dbname = value;
        return true;
    default:
        return false;
    }
}

int cli_conn_set(cli_conn_t *c, const char *cmd, const char *conninfo)
{
    if (c->conninfo != NULL || (c->dbname != NULL && cli_is_conninfo(c->dbname)))
        return cli_bad(cmd, "too many arguments: '%s' (one CONNINFO, or -d with one)", conninfo);
    c->conninfo = conninfo;
    return -1;
}

static int set_env(const char *cmd, const char *var, const char *option, const char *value)
{
    if (value == NULL)
        return -1;
    if (value[0] == '\0')
        return cli_bad(cmd, "option '%s' needs a non-empty value", option);
    if (setenv(var, value, 1) != 0)
        return cli_bad(cmd, "cannot set %s for '%s'", var, option);
    return -1;
}

int cli_conn_apply(cli_conn_t *c, const char *cmd)
{
    if (c->dbname != NULL && cli_is_conninfo(c->dbname)) {
        if (c->conninfo != NULL)
            return cli_bad(cmd, "too many arguments: '%s' (one CONNINFO, or -d with one)",
                           c->conninfo);
        /* psql: "-d" with a connection string is the connection string */
        c->conninfo = c->dbname;
        c->dbname = NULL;
    }
    /* A port list ("5432,5433", one per host; an empty entry is the default port) as libpq
     * takes it; anything else is a typo best reported now, naming the option, rather than as
     * the library's "invalid port". */
    if (c->port != NULL) {
        const char *s = c->port;
        uint64_t v;
        char one[8];
        while (*s != '\0') {
            size_t n = strcspn(s, ",");
            if (n == 0) {
                s++;
                continue;
            }
            if (n >= sizeof(one))
                return cli_bad(cmd, "-p/--port wants a port number (1 to 65535), got '%s'",
                               c->port);
            memcpy(one, s, n);
            one[n] = '\0';
            if (!cli_parse_uint(one, 65535, &v) || v == 0)
                return cli_bad(cmd, "-p/--port wants a port number (1 to 65535), got '%s'",
                               c->port);
            s += n + (s[n] == ',');
        }
    }
    /* The options become the environment libpq's precedence puts them over: what CONNINFO
     * says still wins (as in psql, whose host/port/user come before the expanded dbname), and
     * the PG* variables the user had are replaced, which is what the option asked for. */
    int rc;
    if ((rc = set_env(cmd, "PGHOST", "-h/--host", c->host)) >= 0 ||
        (rc = set_env(cmd, "PGPORT", "-p/--port", c->port)) >= 0 ||
        (rc = set_env(cmd, "PGUSER", "-U/--username", c->user)) >= 0 ||
        (rc = set_env(cmd, "PGDATABASE", "-d/--dbname", c->dbname)) >= 0)
        return rc;
    return -1;
}

void cli_conn_usage(FILE *f)
{
    fputs("Connection (as psql; the fields of CONNINFO win over these, these over PG*):\n"
          "  -h, --host HOST           server host name, address or socket directory (PGHOST)\n"
          "  -p, --port PORT           server port (PGPORT)\n"
          "  -U, --username USER       user name (PGUSER)\n"
          "  -d, --dbname NAME         database name (PGDATABASE), or a CONNINFO\n",
          f);
}
