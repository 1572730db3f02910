/* SPDX-License-Identifier: MIT */
/*
 * The pool's options and its creation (fwire.h, "connection pool"; pool.c runs it).
 */
#include "alloc.h"
#include "pool_int.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* A later option takes a reserved slot's place: the size a program was built with stays. */
_Static_assert(sizeof(fw_pool_opts_t) == offsetof(fw_pool_opts_t, name) + 9 * sizeof(void *),
               "fw_pool_opts_t changed size");

void fw_pool_opts_init(fw_pool_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->use_environment = true;
    o->max_size = 10;
    o->acquire_timeout_ms = 5000;
    o->max_lifetime_ms = 30u * 60u * 1000u;
    o->lifetime_jitter_ms = 60u * 1000u;
    o->idle_timeout_ms = 10u * 60u * 1000u;
    o->breaker_threshold = 3;
    o->breaker_cooldown_ms = 5000;
    o->backoff_base_ms = 100;
    o->health_check_after_ms = 30u * 1000u;
    o->health_check_timeout_ms = 5000;
}

int fw_pool_new(fw_pool_t **out, uv_loop_t *loop, const fw_pool_opts_t *opts, fw_error_t *err)
{
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    if (out == NULL || loop == NULL || opts == NULL)
        return FW_EINVAL;
    *out = NULL;
    /* acquire_timeout_ms 0 would time out every acquire that has to wait, even for the
     * connection it just had opened: a pool that hands out nothing new. Refused rather than
     * read as "no limit", which would let a dead cluster hold every caller for ever. */
    const char *bad = NULL;
    char msg[96];
    if (opts->max_size == 0)
        bad = "max_size must be at least 1";
    else if (opts->acquire_timeout_ms == 0)
        bad = "acquire_timeout_ms must be at least 1";
    else if (opts->min_size > opts->max_size) {
        snprintf(msg, sizeof(msg), "min_size (%u) is larger than max_size (%u)", opts->min_size,
                 opts->max_size);
        bad = msg;
    }
    if (bad == NULL && opts->name != NULL &&
        (opts->name[0] == '\0' || strlen(opts->name) >= sizeof(((fw_pool_t *)0)->name)))
        bad = "name must be 1 to 63 bytes (or NULL: \"default\")";
    /* A set reserved slot is an option of a later version this library does not have. */
    for (size_t i = 0; bad == NULL && i < sizeof(opts->reserved) / sizeof(opts->reserved[0]); i++)
        if (opts->reserved[i] != NULL)
            bad = "fw_pool_opts_t has an option this version of the library does not know "
                  "(a reserved slot is set: initialise with fw_pool_opts_init)";
    if (bad != NULL) {
        if (err != NULL) {
            err->code = FW_EINVAL;
            snprintf(err->message, sizeof(err->message), "%s", bad);
        }
        return FW_EINVAL;
    }
    /* Parse once through a connection that never connects: the hosts, and any error. */
    fw_conn_opts_t co;
    fw_conn_opts_init(&co);
    co.conninfo = opts->conninfo;
    co.use_environment = opts->use_environment;
    fw_conn_t *probe = NULL;
    int rc = fw_conn_new(&probe, loop, &co, err);
    if (rc < 0)
        return rc;
    fw_pool_t *p = fw__calloc(1, sizeof(*p));
    size_t n = fw__conn_nhosts(probe);
    if (p != NULL) {
        p->hosts = fw__calloc(n, sizeof(*p->hosts));
        p->conninfo = fw__malloc(strlen(opts->conninfo != NULL ? opts->conninfo : "") + 1);
        if (opts->after_connect_sql != NULL) {
            p->after_connect_sql = fw__malloc(strlen(opts->after_connect_sql) + 1);
            if (p->after_connect_sql != NULL)
                strcpy(p->after_connect_sql, opts->after_connect_sql);
        }
    }
    if (p == NULL || p->hosts == NULL || p->conninfo == NULL ||
        (opts->after_connect_sql != NULL && p->after_connect_sql == NULL)) {
        if (p != NULL) {
            fw__free(p->after_connect_sql);
            fw__free(p->hosts);
            fw__free(p->conninfo);
            fw__free(p);
        }
        fw_conn_close(probe, NULL, NULL);
        return FW_ENOMEM;
    }
    strcpy(p->conninfo, opts->conninfo != NULL ? opts->conninfo : "");
    p->nhosts = n;
    for (size_t i = 0; i < n; i++) {
        const fw__conninfo_host_t *h = fw__conn_host(probe, i);
        p->hosts[i].index = i;
        snprintf(p->hosts[i].name, sizeof(p->hosts[i].name), "%s",
                 h->host[0] != '\0' ? h->host : (h->hostaddr != NULL ? h->hostaddr : ""));
        p->hosts[i].port = h->port_num;
    }
    fw_conn_close(probe, NULL, NULL);
    p->loop = loop;
    p->o = *opts;
    p->o.conninfo = NULL;
    p->o.after_connect_sql = NULL; /* p->after_connect_sql is the copy */
    snprintf(p->name, sizeof(p->name), "%s", opts->name != NULL ? opts->name : "default");
    p->o.name = NULL; /* p->name is the copy */
    p->rng = uv_hrtime() | 1;
    uv_timer_init(loop, &p->wait_timer);
    p->wait_timer.data = p;
    uv_timer_init(loop, &p->sweep);
    p->sweep.data = p;
    uv_timer_start(&p->sweep, fw__pool_on_sweep, 1000, 1000);
    uv_unref((uv_handle_t *)&p->sweep); /* the pool alone does not keep the loop running */
    uv_idle_init(loop, &p->kick);
    p->kick.data = p;
    uv_timer_init(loop, &p->retry_timer);
    p->retry_timer.data = p;
    p->handles = 4;
    fw__pool_lm_init(p);
    *out = p;
    if (p->o.min_size > 0)
        fw__pool_kick(p); /* the first connections open from the loop */
    return 0;
}
