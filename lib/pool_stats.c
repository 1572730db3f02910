/* SPDX-License-Identifier: MIT */
/*
 * A pool's figures: fw_pool_stats, fw_pool_host, and the fraiseql_pool_* series of the
 * process-wide registry (lmetrics.c). The series belong to every pool of the process: each
 * pool adds the difference between what it is now and what it last published (lm_pub), so
 * the gauges are sums over pools and a closing pool takes its share back out. Syncing walks
 * the pool's connections (max_size of them): it runs after each pump, not per row.
 */
#include "pool_int.h"

#include <stdio.h>
#include <string.h>

void fw__pool_stats(const fw_pool_t *p, fw_pool_stats_t *st)
{
    *st = p->st;
    st->size = st->idle = st->in_use = st->opening = st->waiting = 0;
    for (const pconn_t *pc = p->conns; pc != NULL; pc = pc->next) {
        if (pc->state == PC_CLOSING)
            continue;
        st->size++;
        st->idle += pc->state == PC_IDLE;
        st->in_use += pc->state == PC_IN_USE || pc->state == PC_CHECKING;
        /* a health check is part of handing out: the connection counts as idle meanwhile */
        st->idle += pc->state == PC_HEALTH;
        st->opening += pc->state == PC_OPENING || pc->state == PC_SETUP;
    }
    for (const waiter_t *w = p->wait_head; w != NULL; w = w->next)
        st->waiting++;
}

typedef struct stats_call_s {
    const fw_pool_t *p;
    fw_pool_stats_t *st;
    size_t host;
    fw_pool_host_t *out;
} stats_call_t;

static void stats_on_loop(void *arg)
{
    stats_call_t *a = arg;
    fw__pool_stats(a->p, a->st);
}

int fw_pool_stats(const fw_pool_t *p, fw_pool_stats_t *st)
{
    if (p == NULL || st == NULL)
        return FW_EINVAL;
    if (p->rt != NULL) { /* threaded: the loop owns the pool's state */
        stats_call_t a = {p, st, 0, NULL};
        fw__runtime_run(p->rt, stats_on_loop, &a);
    } else {
        fw__pool_stats(p, st);
    }
    return 0;
}

static void host_fill(const fw_pool_t *p, size_t i, fw_pool_host_t *out)
{
    const phost_t *h = &p->hosts[i];
    memset(out, 0, sizeof(*out));
    out->host = h->name;
    out->port = h->port;
    out->role = h->role;
    out->breaker = fw__pool_breaker_name(h->breaker);
    out->failures = h->failures;
    out->connections = h->conns;
    out->connects = h->connects;
    out->probes = h->probes;
}

static void host_on_loop(void *arg)
{
    stats_call_t *a = arg;
    host_fill(a->p, a->host, a->out);
}

int fw_pool_host(const fw_pool_t *p, size_t i, fw_pool_host_t *out)
{
    if (p == NULL || out == NULL || i >= p->nhosts)
        return FW_EINVAL;
    if (p->rt != NULL) { /* threaded: the loop owns the hosts' state */
        stats_call_t a = {p, NULL, i, out};
        fw__runtime_run(p->rt, host_on_loop, &a);
    } else {
        host_fill(p, i, out);
    }
    return 0;
}

void fw__pool_lm_init(fw_pool_t *p)
{
    fw__lm_pool(&p->lm, p->name);
    for (size_t i = 0; i < p->nhosts; i++) {
        phost_t *h = &p->hosts[i];
        char label[300];
        snprintf(label, sizeof(label), "%s:%d", h->name, h->port);
        h->lm_breaker[BR_CLOSED] = fw__lm_pool_breaker(p->name, label, "closed");
        h->lm_breaker[BR_OPEN] = fw__lm_pool_breaker(p->name, label, "open");
        h->lm_breaker[BR_HALF_OPEN] = fw__lm_pool_breaker(p->name, label, "half-open");
        h->lm_state = BR_CLOSED;
        if (h->lm_breaker[BR_CLOSED] != NULL)
            fw__metric_gauge_add(h->lm_breaker[BR_CLOSED], 1);
    }
}

static void gauge(fw__series_t *s, unsigned now, unsigned *pub)
{
    if (s != NULL && now != *pub)
        fw__metric_gauge_add(s, (int64_t)now - (int64_t)*pub);
    *pub = now;
}

static void counter(fw__series_t *s, uint64_t now, uint64_t *pub)
{
    if (s != NULL && now > *pub)
        fw__metric_add(s, now - *pub);
    *pub = now;
}

void fw__pool_lm_sync(fw_pool_t *p)
{
    if (p->lm.size == NULL)
        return; /* recording was off when the pool was made */
    fw_pool_stats_t st;
    fw__pool_stats(p, &st);
    fw_pool_stats_t *pub = &p->lm_pub;
    gauge(p->lm.size, st.size, &pub->size);
    gauge(p->lm.idle, st.idle, &pub->idle);
    gauge(p->lm.in_use, st.in_use, &pub->in_use);
    gauge(p->lm.waiting, st.waiting, &pub->waiting);
    counter(p->lm.acquires, st.acquires, &pub->acquires);
    counter(p->lm.timeouts, st.acquire_timeouts, &pub->acquire_timeouts);
    counter(p->lm.refused, st.acquire_refused, &pub->acquire_refused);
    counter(p->lm.opened, st.opened, &pub->opened);
    counter(p->lm.connect_failures, st.connect_failures, &pub->connect_failures);
    counter(p->lm.health_checks, st.health_checks, &pub->health_checks);
    counter(p->lm.closed[0], st.closed_lifetime, &pub->closed_lifetime);
    counter(p->lm.closed[1], st.closed_idle, &pub->closed_idle);
    counter(p->lm.closed[2], st.closed_health, &pub->closed_health);
    counter(p->lm.closed[3], st.closed_role, &pub->closed_role);
    counter(p->lm.closed[4], st.closed_error, &pub->closed_error);
    counter(p->lm.closed[5], st.closed_pool, &pub->closed_pool);
    for (size_t i = 0; i < p->nhosts; i++) {
        phost_t *h = &p->hosts[i];
        if (h->breaker == h->lm_state)
            continue;
        if (h->lm_breaker[h->lm_state] != NULL)
            fw__metric_gauge_add(h->lm_breaker[h->lm_state], -1);
        if (h->lm_breaker[h->breaker] != NULL)
            fw__metric_gauge_add(h->lm_breaker[h->breaker], 1);
        h->lm_state = h->breaker;
    }
}

void fw__pool_lm_wait(fw_pool_t *p, uint64_t ns)
{
    if (p->lm.wait_seconds != NULL)
        fw__lm_seconds(p->lm.wait_seconds, ns);
}

void fw__pool_lm_fini(fw_pool_t *p)
{
    fw__pool_lm_sync(p); /* the last closes are counted */
    fw_pool_stats_t *pub = &p->lm_pub;
    gauge(p->lm.size, 0, &pub->size);
    gauge(p->lm.idle, 0, &pub->idle);
    gauge(p->lm.in_use, 0, &pub->in_use);
    gauge(p->lm.waiting, 0, &pub->waiting);
    for (size_t i = 0; i < p->nhosts; i++) {
        phost_t *h = &p->hosts[i];
        if (h->lm_breaker[h->lm_state] != NULL)
            fw__metric_gauge_add(h->lm_breaker[h->lm_state], -1);
        h->lm_breaker[h->lm_state] = NULL;
    }
}
