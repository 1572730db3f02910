/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for what browsers send to fwire serve: the strict JSON parser
 * (tools/serve_json.c), message validation and the query built from it (tools/serve_req.c), and
 * the query-string form of GET /stream. Nothing may crash or leak; every decoded string must be
 * valid UTF-8 and survive a round trip through the JSON writer; a validated request must build a
 * query or refuse with a message.
 *
 * Input layout: byte 0 picks the path (bit 0: also parse as a URL query "ENTITY?QUERY" split at
 * the first '?'; bit 1: also check it as a Host header, which must then name a loopback host or
 * the listen address on its port, or be one of the allowed hosts); the rest is the message.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serve_json.h"
#include "serve_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_strings(const gwjson_t *v)
{
    for (; v != NULL; v = v->next) {
        if (v->type == GWJSON_STRING) {
            if (!gwjson_utf8_valid((const uint8_t *)v->str, v->len))
                abort();
            /* written back as JSON and parsed again: the same bytes */
            gwbuf_t b = {0};
            gwbuf_json_str(&b, v->str, v->len);
            if (!b.failed) {
                gwjson_doc_t *d = NULL;
                char e[64];
                gwjson_limits_t lim = {.max_bytes = b.len + 1};
                if (gwjson_parse(b.ptr, b.len, &lim, &d, e, sizeof(e)) != 0)
                    abort();
                const gwjson_t *r = gwjson_root(d);
                if (r->type != GWJSON_STRING || r->len != v->len ||
                    memcmp(r->str, v->str, v->len) != 0)
                    abort();
                gwjson_free(d);
            }
            gwbuf_free(&b);
        }
        if (v->key != NULL && !gwjson_utf8_valid((const uint8_t *)v->key, v->key_len))
            abort();
        check_strings(v->child);
    }
}

static void build(const gw_request_t *req)
{
    if (req->type != GW_MSG_STREAM_QUERY)
        return;
    fw_query_t *q = NULL;
    char msg[256] = "";
    int rc = gw_query_build(req, &q, msg, sizeof(msg));
    if (rc < 0) {
        if (msg[0] == '\0')
            abort(); /* a refusal always says why */
        return;
    }
    char sql[4096];
    (void)fw_query_sql(q, sql, sizeof(sql));
    fw_query_free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    /* the text gets its own allocation so ASan sees any read past it */
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, text, len);
    copy[len] = '\0';

    gwjson_doc_t *doc = NULL;
    char err[128];
    if (gwjson_parse(copy, len, NULL, &doc, err, sizeof(err)) == 0) {
        check_strings(gwjson_root(doc));
        gwjson_free(doc);
    } else if (strlen(err) >= sizeof(err)) {
        abort();
    }

    gw_request_t req;
    gw_reqerr_t rerr;
    int rc = gw_request_parse(copy, len, 65536, &req, &rerr);
    if (rc == 0) {
        build(&req);
        gw_request_free(&req);
    }

    if ((mode & 1) && memchr(copy, '\0', len) == NULL) {
        char *q = strchr(copy, '?');
        if (q != NULL)
            *q++ = '\0';
        if (gw_request_from_url(copy, q, &req, &rerr) == 0) {
            build(&req);
            gw_request_free(&req);
        }
    } else if ((mode & 2) && memchr(copy, '\0', len) == NULL) {
        char allowed0[] = "gw.example.com", allowed1[] = "[fd00::1]:8443";
        char *allowed[] = {allowed0, allowed1};
        bool ok = gw_host_allowed(copy, "10.0.0.1", 8080, allowed, 2);
        /* whatever it accepts names one of these, with a port that fits */
        if (ok && strncasecmp(copy, "gw.example.com", 14) != 0 &&
            strcasecmp(copy, "[fd00::1]:8443") != 0 && strncasecmp(copy, "localhost", 9) != 0 &&
            strncmp(copy, "127.0.0.1", 9) != 0 && strncmp(copy, "[::1]", 5) != 0 &&
            strncmp(copy, "10.0.0.1", 8) != 0)
            abort();
        (void)gw_host_is_loopback(copy);
    }
    free(copy);
    return 0;
}
