/* SPDX-License-Identifier: MIT */
/*
 * Client messages of fwire serve, validated (serve_req.h). Every refusal names the field and
 * what was expected, so a browser developer can fix the request from the message alone.
 * Unknown fields are refused too: a typo such as "order" for "order_by" would otherwise
 * silently return the rows in another order.
 */
#include "serve_req.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    fw_op_t op;
    bool is_in;
} ops[] = {
    {"eq", FW_OP_EQ, false},
    {"ne", FW_OP_NE, false},
    {"lt", FW_OP_LT, false},
    {"le", FW_OP_LE, false},
    {"gt", FW_OP_GT, false},
    {"ge", FW_OP_GE, false},
    {"like", FW_OP_LIKE, false},
    {"ilike", FW_OP_ILIKE, false},
    {"is_null", FW_OP_IS_NULL, false},
    {"is_not_null", FW_OP_IS_NOT_NULL, false},
    {"contains", FW_OP_CONTAINS, false},
    {"has_key", FW_OP_HAS_KEY, false},
    {"in", FW_OP_EQ, true},
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))

const char *gw_op_name(fw_op_t op, bool is_in)
{
    for (size_t i = 0; i < NOPS; i++)
        if (ops[i].op == op && ops[i].is_in == is_in)
            return ops[i].name;
    return "?";
}

static int refuse(gw_reqerr_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(gw_reqerr_t *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    err->code = "bad_request";
    return -1;
}

bool gw_path_valid(const char *path)
{
    if (path == NULL)
        return false;
    if (*path == '\0')
        return true;
    size_t depth = 0, elem = 0;
    for (const char *p = path;; p++) {
        char c = *p;
        if (c == '.' || c == '\0') {
            if (elem == 0 || ++depth > GW_MAX_PATH_DEPTH)
                return false;
            elem = 0;
            if (c == '\0')
                return true;
            continue;
        }
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        if (!ok || ++elem > GW_MAX_PATH_ELEM)
            return false;
    }
}

/* Copies n bytes into the request's arena, NUL-terminated. */
static char *arena_dup(gw_request_t *req, const char *s, size_t n)
{
    if (n + 1 > req->arena_cap - req->arena_used)
        return NULL;
    char *o = req->arena + req->arena_used;
    memcpy(o, s, n);
    o[n] = '\0';
    req->arena_used += n + 1;
    return o;
}

/* The value of a predicate from its JSON: string -> TEXT, number -> NUMBER, boolean -> BOOL. */
static int scalar_value(const gwjson_t *v, fw_value_type_t *type, const char **text,
                        gw_reqerr_t *err, const char *what)
{
    switch (v->type) {
    case GWJSON_STRING:
        if (gwjson_cstr(v) == NULL)
            return refuse(err, "%s: a string with a NUL character cannot be compared", what);
        if (v->len > GW_MAX_VALUE_BYTES)
            return refuse(err, "%s: value longer than %d bytes", what, GW_MAX_VALUE_BYTES);
        *type = FW_VALUE_TEXT;
        *text = v->str;
        return 0;
    case GWJSON_NUMBER:
        *type = FW_VALUE_NUMBER;
        *text = v->str; /* the JSON literal: PostgreSQL's numeric reads it exactly */
        return 0;
    case GWJSON_TRUE:
    case GWJSON_FALSE:
        *type = FW_VALUE_BOOL;
        *text = v->type == GWJSON_TRUE ? "true" : "false";
        return 0;
    case GWJSON_NULL:
        return refuse(err, "%s: null is not a value; use op is_null", what);
    case GWJSON_ARRAY:
    case GWJSON_OBJECT:
        break;
    }
    return refuse(err, "%s: value must be a string, number or boolean", what);
}

static bool op_wants_text(fw_op_t op)
{
    return op == FW_OP_LIKE || op == FW_OP_ILIKE || op == FW_OP_HAS_KEY;
}

static int parse_pred(gw_request_t *req, const gwjson_t *w, size_t idx, gw_reqerr_t *err)
{
    char what[32];
    snprintf(what, sizeof(what), "where[%zu]", idx);
    if (w->type != GWJSON_OBJECT)
        return refuse(err, "%s must be an object {\"path\",\"op\",\"value\"}", what);
    const gwjson_t *path = NULL, *op = NULL, *value = NULL;
    for (const gwjson_t *m = w->child; m != NULL; m = m->next) {
        if (strcmp(m->key, "path") == 0)
            path = m;
        else if (strcmp(m->key, "op") == 0)
            op = m;
        else if (strcmp(m->key, "value") == 0)
            value = m;
        else
            return refuse(err, "%s: unknown field \"%.40s\"", what, m->key);
    }
    const char *ps = gwjson_cstr(path);
    if (ps == NULL)
        return refuse(err, "%s.path must be a string", what);
    if (!gw_path_valid(ps))
        return refuse(err,
                      "%s.path \"%.60s\" is not a dotted path of [A-Za-z0-9_]+ elements "
                      "(at most %d, each at most %d bytes)",
                      what, ps, GW_MAX_PATH_DEPTH, GW_MAX_PATH_ELEM);
    const char *os = gwjson_cstr(op);
    size_t k = 0;
    while (os != NULL && k < NOPS && strcmp(ops[k].name, os) != 0)
        k++;
    if (os == NULL || k == NOPS)
        return refuse(err,
                      "%s.op must be one of eq ne lt le gt ge like ilike is_null is_not_null "
                      "contains has_key in",
                      what);
    gw_pred_t *p = &req->preds[req->npreds];
    memset(p, 0, sizeof(*p));
    p->path = ps;
    p->op = ops[k].op;
    p->is_in = ops[k].is_in;
    if (p->op == FW_OP_IS_NULL || p->op == FW_OP_IS_NOT_NULL) {
        if (value != NULL)
            return refuse(err, "%s: op %s takes no value", what, os);
    } else if (p->is_in) {
        if (value == NULL || value->type != GWJSON_ARRAY)
            return refuse(err, "%s: op in takes an array of values", what);
        if (value->count > GW_MAX_IN_VALUES)
            return refuse(err, "%s: in takes at most %d values", what, GW_MAX_IN_VALUES);
        if (value->count > 0) {
            p->values = malloc(value->count * sizeof(*p->values));
            if (p->values == NULL)
                return -2;
        }
        req->npreds++; /* from here gw_request_free frees p->values */
        size_t i = 0;
        for (const gwjson_t *v = value->child; v != NULL; v = v->next, i++) {
            fw_value_type_t t;
            if (scalar_value(v, &t, &p->values[i], err, what) < 0)
                return -1;
            if (i > 0 && t != p->type)
                return refuse(err, "%s: the values of in must all be of one JSON type", what);
            p->type = t;
        }
        p->nvalues = i;
        return 0;
    } else {
        if (value == NULL)
            return refuse(err, "%s: op %s needs a value", what, os);
        if (scalar_value(value, &p->type, &p->value, err, what) < 0)
            return -1;
        if (op_wants_text(p->op) && p->type != FW_VALUE_TEXT)
            return refuse(err, "%s: op %s takes a string value", what, os);
    }
    req->npreds++;
    return 0;
}

static int id_field(const gwjson_t *v, const char **out, gw_reqerr_t *err, const char *name)
{
    const char *s = gwjson_cstr(v);
    if (s == NULL)
        return refuse(err, "%s must be a string", name);
    if (v->len > GW_MAX_ID_BYTES)
        return refuse(err, "%s longer than %d bytes", name, GW_MAX_ID_BYTES);
    *out = s;
    return 0;
}

static int whole_number(const gwjson_t *v, double lo, double hi, int64_t *out)
{
    if (v->type != GWJSON_NUMBER || !isfinite(v->num) || v->num != floor(v->num) || v->num < lo ||
        v->num > hi)
        return -1;
    *out = (int64_t)v->num;
    return 0;
}

static int parse_stream_query(gw_request_t *req, const gwjson_t *root, gw_reqerr_t *err)
{
    const gwjson_t *where = NULL, *order = NULL;
    for (const gwjson_t *m = root->child; m != NULL; m = m->next) {
        int64_t n;
        if (strcmp(m->key, "type") == 0 || strcmp(m->key, "request_id") == 0) {
            continue;
        } else if (strcmp(m->key, "entity") == 0) {
            const char *e = gwjson_cstr(m);
            if (e == NULL || e[0] == '\0' || m->len > GW_MAX_ENTITY)
                return refuse(err, "entity must be a non-empty string of at most %d bytes",
                              GW_MAX_ENTITY);
            req->entity = e;
        } else if (strcmp(m->key, "where") == 0) {
            where = m;
        } else if (strcmp(m->key, "order_by") == 0) {
            order = m;
        } else if (strcmp(m->key, "limit") == 0) {
            if (m->type == GWJSON_NULL)
                continue;
            /* 2^53: the largest integer a browser's number holds exactly */
            if (whole_number(m, 0, 9007199254740992.0, &n) < 0)
                return refuse(err, "limit must be a whole number >= 0");
            req->limit = n;
        } else if (strcmp(m->key, "batch_size") == 0) {
            if (m->type == GWJSON_NULL)
                continue;
            if (whole_number(m, 1, GW_MAX_BATCH_SIZE, &n) < 0)
                return refuse(err, "batch_size must be a whole number from 1 to %d",
                              GW_MAX_BATCH_SIZE);
            req->batch_size = (uint32_t)n;
        } else {
            return refuse(err, "stream_query: unknown field \"%.40s\"", m->key);
        }
    }
    if (req->entity == NULL)
        return refuse(err, "stream_query needs an entity");
    if (where != NULL && where->type != GWJSON_NULL) {
        if (where->type != GWJSON_ARRAY)
            return refuse(err, "where must be an array of predicates");
        if (where->count > GW_MAX_PREDICATES)
            return refuse(err, "where has more than %d predicates", GW_MAX_PREDICATES);
        size_t i = 0;
        for (const gwjson_t *w = where->child; w != NULL; w = w->next, i++) {
            int rc = parse_pred(req, w, i, err);
            if (rc < 0)
                return rc;
        }
    }
    if (order != NULL && order->type != GWJSON_NULL) {
        if (order->type != GWJSON_OBJECT)
            return refuse(err, "order_by must be an object {\"path\",\"desc\"}");
        for (const gwjson_t *m = order->child; m != NULL; m = m->next) {
            if (strcmp(m->key, "path") == 0) {
                const char *p = gwjson_cstr(m);
                if (p == NULL || p[0] == '\0' || !gw_path_valid(p))
                    return refuse(err, "order_by.path must be a dotted path of [A-Za-z0-9_]+ "
                                       "elements");
                req->order_path = p;
            } else if (strcmp(m->key, "desc") == 0) {
                if (m->type != GWJSON_TRUE && m->type != GWJSON_FALSE)
                    return refuse(err, "order_by.desc must be true or false");
                req->order_desc = m->type == GWJSON_TRUE;
            } else {
                return refuse(err, "order_by: unknown field \"%.40s\"", m->key);
            }
        }
        if (req->order_path == NULL)
            return refuse(err, "order_by needs a path");
    }
    return 0;
}

static int parse_control(gw_request_t *req, const gwjson_t *root, gw_reqerr_t *err)
{
    for (const gwjson_t *m = root->child; m != NULL; m = m->next) {
        if (strcmp(m->key, "type") == 0 || strcmp(m->key, "request_id") == 0)
            continue;
        if (strcmp(m->key, "stream_id") != 0)
            return refuse(err, "unknown field \"%.40s\"", m->key);
        if (id_field(m, &req->stream_id, err, "stream_id") < 0)
            return -1;
    }
    if (req->stream_id == NULL)
        return refuse(err, "this message needs a stream_id");
    return 0;
}

static void request_init(gw_request_t *req)
{
    memset(req, 0, sizeof(*req));
    req->limit = -1;
}

int gw_request_parse(const char *text, size_t len, size_t max_bytes, gw_request_t *req,
                     gw_reqerr_t *err)
{
    request_init(req);
    memset(err, 0, sizeof(*err));
    err->code = "bad_request";
    gwjson_limits_t lim = {.max_bytes = max_bytes, .max_depth = 8, .max_nodes = 4 * 1024 + 64};
    int rc = gwjson_parse(text, len, &lim, &req->doc, err->message, sizeof(err->message));
    if (rc == -2)
        return -2;
    if (rc < 0)
        return -1;
    const gwjson_t *root = gwjson_root(req->doc);
    const char *type = NULL;
    if (root->type != GWJSON_OBJECT) {
        rc = refuse(err, "a message must be a JSON object with a \"type\"");
        goto out;
    }
    const gwjson_t *rid = gwjson_get(root, "request_id");
    if (rid != NULL && rid->type != GWJSON_NULL) {
        if ((rc = id_field(rid, &req->request_id, err, "request_id")) < 0)
            goto out;
        snprintf(err->request_id, sizeof(err->request_id), "%s", req->request_id);
        err->has_request_id = true;
    }
    type = gwjson_cstr(gwjson_get(root, "type"));
    if (type == NULL) {
        rc = refuse(err, "a message must be a JSON object with a \"type\"");
    } else if (strcmp(type, "stream_query") == 0) {
        req->type = GW_MSG_STREAM_QUERY;
        rc = parse_stream_query(req, root, err);
    } else if (strcmp(type, "cancel_query") == 0 || strcmp(type, "pause_query") == 0 ||
               strcmp(type, "resume_query") == 0) {
        req->type = type[0] == 'c'   ? GW_MSG_CANCEL_QUERY
                    : type[0] == 'p' ? GW_MSG_PAUSE_QUERY
                                     : GW_MSG_RESUME_QUERY;
        rc = parse_control(req, root, err);
    } else {
        rc = refuse(err,
                    "unknown message type \"%.40s\" (stream_query, cancel_query, pause_query, "
                    "resume_query)",
                    type);
    }
out:
    if (rc < 0)
        gw_request_free(req);
    return rc;
}

/* Percent-decodes [s, s+n) into the arena ('+' is a space, as in forms). NULL when a %XX is
 * bad, or the result holds a NUL or is not UTF-8 (PostgreSQL would refuse it anyway, with an
 * error that blames the query rather than the request). */
static const char *url_decode(gw_request_t *req, const char *s, size_t n)
{
    if (n + 1 > req->arena_cap - req->arena_used)
        return NULL;
    char *o = req->arena + req->arena_used;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int v = 0;
            for (int j = 1; j <= 2; j++) {
                char h = i + (size_t)j < n ? s[i + (size_t)j] : 'x';
                int d = h >= '0' && h <= '9'   ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                               : -1;
                if (d < 0)
                    return NULL;
                v = v * 16 + d;
            }
            if (v == 0)
                return NULL;
            c = (char)v;
            i += 2;
        }
        o[k++] = c;
    }
    o[k] = '\0';
    if (!gwjson_utf8_valid((const uint8_t *)o, k))
        return NULL;
    req->arena_used += k + 1;
    return o;
}

/* A URL value as typed JSON: a JSON number, true/false, or a "quoted string" is that; any
 * other text is a string. So `id:eq:42` compares a number and `code:eq:"42"` a string. */
static int url_value(gw_request_t *req, const char *s, fw_value_type_t *type, const char **out,
                     gw_reqerr_t *err)
{
    gwjson_doc_t *d = NULL;
    char ebuf[8];
    size_t n = strlen(s);
    if (n > GW_MAX_VALUE_BYTES)
        return refuse(err, "where: value longer than %d bytes", GW_MAX_VALUE_BYTES);
    int rc = gwjson_parse(s, n, NULL, &d, ebuf, sizeof(ebuf));
    if (rc == -2)
        return -2;
    if (rc == 0) {
        const gwjson_t *v = gwjson_root(d);
        if (v->type == GWJSON_NUMBER || v->type == GWJSON_TRUE || v->type == GWJSON_FALSE ||
            (v->type == GWJSON_STRING && gwjson_cstr(v) != NULL)) {
            rc = scalar_value(v, type, out, err, "where");
            if (rc == 0 && (*out = arena_dup(req, *out, strlen(*out))) == NULL)
                rc = refuse(err, "where: value too long");
            gwjson_free(d);
            return rc;
        }
        gwjson_free(d);
    }
    *type = FW_VALUE_TEXT;
    *out = s;
    return 0;
}

/* where=PATH:OP[:VALUE]; for in, VALUE is comma-separated. */
static int url_pred(gw_request_t *req, char *spec, gw_reqerr_t *err)
{
    if (req->npreds == GW_MAX_PREDICATES)
        return refuse(err, "more than %d where predicates", GW_MAX_PREDICATES);
    char *c1 = strchr(spec, ':');
    if (c1 == NULL)
        return refuse(err, "where wants PATH:OP[:VALUE], got \"%.60s\"", spec);
    *c1 = '\0';
    char *opname = c1 + 1;
    char *c2 = strchr(opname, ':');
    char *value = NULL;
    if (c2 != NULL) {
        *c2 = '\0';
        value = c2 + 1;
    }
    const char *path = strcmp(spec, ".") == 0 ? "" : spec;
    if (!gw_path_valid(path))
        return refuse(err, "where: path \"%.60s\" is not a dotted path of [A-Za-z0-9_]+", spec);
    size_t k = 0;
    while (k < NOPS && strcmp(ops[k].name, opname) != 0)
        k++;
    if (k == NOPS)
        return refuse(err, "where: unknown op \"%.30s\"", opname);
    gw_pred_t *p = &req->preds[req->npreds];
    memset(p, 0, sizeof(*p));
    p->path = path;
    p->op = ops[k].op;
    p->is_in = ops[k].is_in;
    if (p->op == FW_OP_IS_NULL || p->op == FW_OP_IS_NOT_NULL) {
        if (value != NULL)
            return refuse(err, "where: op %s takes no value", opname);
        req->npreds++;
        return 0;
    }
    if (value == NULL)
        return refuse(err, "where: op %s needs a value (PATH:OP:VALUE)", opname);
    if (!p->is_in) {
        int rc = url_value(req, value, &p->type, &p->value, err);
        if (rc < 0)
            return rc;
        if (op_wants_text(p->op) && p->type != FW_VALUE_TEXT)
            return refuse(err, "where: op %s takes a string value", opname);
        req->npreds++;
        return 0;
    }
    size_t n = *value == '\0' ? 0 : 1;
    for (const char *q = value; *q != '\0'; q++)
        n += *q == ',';
    if (n > GW_MAX_IN_VALUES)
        return refuse(err, "where: in takes at most %d values", GW_MAX_IN_VALUES);
    if (n > 0 && (p->values = malloc(n * sizeof(*p->values))) == NULL)
        return -2;
    req->npreds++;
    char *item = value;
    for (size_t i = 0; i < n; i++) {
        char *comma = strchr(item, ',');
        if (comma != NULL)
            *comma = '\0';
        fw_value_type_t t;
        int rc = url_value(req, item, &t, &p->values[i], err);
        if (rc < 0)
            return rc;
        if (i > 0 && t != p->type)
            return refuse(err, "where: the values of in must all be of one JSON type");
        p->type = t;
        p->nvalues = i + 1;
        item = comma != NULL ? comma + 1 : item + strlen(item);
    }
    return 0;
}

int gw_request_from_url(const char *entity, const char *query, gw_request_t *req, gw_reqerr_t *err)
{
    request_init(req);
    memset(err, 0, sizeof(*err));
    err->code = "bad_request";
    size_t qlen = query != NULL ? strlen(query) : 0;
    size_t elen = strlen(entity);
    /* decoded text never outgrows its source; values are copied once more by url_value */
    req->arena_cap = 2 * (qlen + 1) + elen + 1 + 64;
    req->arena = malloc(req->arena_cap);
    if (req->arena == NULL)
        return -2;
    req->type = GW_MSG_STREAM_QUERY;
    int rc = 0;
    const char *e = url_decode(req, entity, elen);
    if (e == NULL || e[0] == '\0' || strlen(e) > GW_MAX_ENTITY) {
        rc = refuse(err, "the entity must be a non-empty UTF-8 name of at most %d bytes",
                    GW_MAX_ENTITY);
        goto out;
    }
    req->entity = e;
    const char *p = query != NULL ? query : "";
    while (rc == 0 && *p != '\0') {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        size_t klen = eq != NULL ? (size_t)(eq - p) : n;
        const char *v = eq != NULL ? url_decode(req, eq + 1, n - klen - 1) : "";
        if (v == NULL) {
            rc = refuse(err, "bad percent-encoding (or not UTF-8) in the query string");
            break;
        }
        int64_t num;
        char *end;
        if (klen == 5 && memcmp(p, "limit", 5) == 0) {
            errno = 0;
            long long ll = strtoll(v, &end, 10);
            /* strictly digits: strtoll would skip leading white space (limit=%205) */
            if (v[0] < '0' || v[0] > '9' || *end != '\0' || ll < 0 || errno == ERANGE)
                rc = refuse(err, "limit must be a whole number from 0 to %lld", LLONG_MAX);
            num = ll;
            req->limit = num;
        } else if (klen == 5 && memcmp(p, "where", 5) == 0) {
            rc = url_pred(req, (char *)(uintptr_t)v, err);
        } else if (klen == 8 && memcmp(p, "order_by", 8) == 0) {
            if (v[0] == '\0' || !gw_path_valid(v))
                rc = refuse(err, "order_by must be a dotted path of [A-Za-z0-9_]+");
            req->order_path = v;
        } else if (klen == 4 && memcmp(p, "desc", 4) == 0) {
            if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0 && strcmp(v, "1") != 0 &&
                strcmp(v, "0") != 0)
                rc = refuse(err, "desc must be true or false");
            req->order_desc = strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
        } else if (klen == 5 && memcmp(p, "token", 5) == 0) {
            /* checked by the HTTP layer */
        } else {
            rc = refuse(err,
                        "unknown query parameter \"%.*s\" (limit, where, order_by, desc, "
                        "token)",
                        (int)(klen > 40 ? 40 : klen), p);
        }
        p += n;
        if (*p == '&')
            p++;
    }
out:
    if (rc < 0)
        gw_request_free(req);
    return rc;
}

void gw_request_free(gw_request_t *req)
{
    for (size_t i = 0; i < req->npreds; i++)
        free(req->preds[i].values);
    gwjson_free(req->doc);
    free(req->arena);
    request_init(req);
}

int gw_query_build(const gw_request_t *req, fw_query_t **out, char *msg, size_t cap)
{
    fw_query_t *q = NULL;
    *out = NULL;
    if (cap > 0)
        msg[0] = '\0';
    int rc = fw_query_new(&q);
    if (rc < 0) {
        snprintf(msg, cap, "%s", fw_strerror(rc));
        return rc;
    }
    rc = fw_query_entity(q, req->entity);
    for (size_t i = 0; rc == 0 && i < req->npreds; i++) {
        const gw_pred_t *p = &req->preds[i];
        if (p->is_in)
            rc = fw_query_where_in(q, p->path, p->type, p->values, p->nvalues);
        else
            rc = fw_query_where(q, p->path, p->op, p->type, p->value);
        if (rc < 0)
            snprintf(msg, cap, "where[%zu] (%s %s) refused: %s", i, p->path,
                     gw_op_name(p->op, p->is_in), fw_strerror(rc));
    }
    if (rc == 0 && req->order_path != NULL) {
        /* The path was validated (gw_path_valid: [A-Za-z0-9_] and dots only), so it cannot
         * leave the array literal; each element is double-quoted in it all the same, or an
         * element `null` (any case) would be the array's SQL NULL, not the key "null".
         * ::jsonb makes it work for json views too. */
        char expr[GW_MAX_PATH_DEPTH * (GW_MAX_PATH_ELEM + 3) + 32];
        if (!gw_path_valid(req->order_path) || req->order_path[0] == '\0') {
            rc = FW_EINVAL;
            snprintf(msg, cap, "order_by path refused");
        } else {
            size_t n = (size_t)snprintf(expr, sizeof(expr), "(\"data\"::jsonb)#>'{\"");
            for (const char *c = req->order_path; *c != '\0' && n < sizeof(expr) - 8; c++) {
                if (*c == '.') {
                    memcpy(expr + n, "\",\"", 3);
                    n += 3;
                } else {
                    expr[n++] = *c;
                }
            }
            memcpy(expr + n, "\"}'", 4); /* with the NUL */
            rc = fw_query_order_by(q, expr, NULL, req->order_desc);
            if (rc < 0)
                snprintf(msg, cap, "order_by refused: %s", fw_strerror(rc));
        }
    } else if (rc < 0 && msg[0] == '\0') {
        snprintf(msg, cap, "entity refused: %s", fw_strerror(rc));
    }
    if (rc == 0 && req->limit >= 0 && (rc = fw_query_limit(q, req->limit)) < 0)
        snprintf(msg, cap, "limit refused: %s", fw_strerror(rc));
    if (rc < 0) {
        fw_query_free(q);
        return rc;
    }
    *out = q;
    return 0;
}

/* ---- the Host header ---- */

bool gw_host_is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
        return true;
    /* 127.0.0.0/8 in dotted-quad form: four numbers of 0..255 starting with 127 */
    if (strncmp(host, "127.", 4) != 0)
        return false;
    int parts = 1;
    const char *p = host + 4;
    for (;;) {
        int v = 0, digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 4) {
            v = v * 10 + (*p++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || v > 255)
            return false;
        parts++;
        if (*p == '\0')
            return parts == 4;
        if (*p++ != '.' || parts == 4)
            return false;
    }
}

/* Splits "name", "name:port", "[v6]" or "[v6]:port" into the name (copied into out, without
 * brackets) and the port (-1 when absent). False when malformed. */
static bool host_split(const char *h, char *out, size_t cap, int *port)
{
    const char *name = h, *rest;
    size_t n;
    if (h[0] == '[') {
        const char *close = strchr(h, ']');
        if (close == NULL)
            return false;
        name = h + 1;
        n = (size_t)(close - name);
        rest = close + 1;
    } else {
        n = strcspn(h, ":");
        rest = h + n;
    }
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_' || (h[0] == '[' && c == ':');
        if (!ok)
            return false;
    }
    memcpy(out, name, n);
    out[n] = '\0';
    *port = -1;
    if (*rest == '\0')
        return true;
    if (*rest != ':' || rest[1] == '\0')
        return false;
    long v = 0;
    for (const char *p = rest + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || (v = v * 10 + (*p - '0')) > 65535)
            return false;
    }
    *port = (int)v;
    return true;
}

bool gw_host_allowed(const char *host, const char *listen_host, int listen_port,
                     char *const *allowed, size_t nallowed)
{
    char name[256], want[256];
    int port, want_port;
    if (host == NULL || !host_split(host, name, sizeof(name), &port))
        return false;
    for (size_t i = 0; i < nallowed; i++) {
        if (strcmp(allowed[i], "*") == 0)
            return true;
        if (host_split(allowed[i], want, sizeof(want), &want_port) && strcasecmp(want, name) == 0 &&
            (want_port < 0 || want_port == port))
            return true;
    }
    /* this machine's own names, on the port the gateway listens on */
    if (port != listen_port && !(port < 0 && listen_port == 80))
        return false;
    if (strcasecmp(name, "localhost") == 0 || strcmp(name, "127.0.0.1") == 0 ||
        strcmp(name, "::1") == 0)
        return true;
    /* the listen address, unless it is a wildcard (which names no host) */
    return listen_host != NULL && strcmp(listen_host, "0.0.0.0") != 0 &&
           strcmp(listen_host, "::") != 0 && strcasecmp(name, listen_host) == 0;
}
