/* SPDX-License-Identifier: MIT */
/* The pool's hosts: back-off, the circuit breaker, which host and which idle connection serve
 * a want, and room for a want no idle connection fits (pool.c). */
#include "pool_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* xorshift64*: jitter only (no secret depends on it). */
uint64_t fw__pool_rnd(fw_pool_t *p)
{
    uint64_t x = p->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    p->rng = x;
    return x * UINT64_C(2685821657736338717);
}

void fw__pool_log(fw_pool_t *p, fw_log_level_t level, const char *fmt, ...)
{
    if (p->o.log_cb == NULL)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    p->o.log_cb(p->o.log_ud, level, line);
}

const char *fw__pool_breaker_name(breaker_t b)
{
    return b == BR_OPEN ? "open" : b == BR_HALF_OPEN ? "half-open" : "closed";
}

/* A failed connect: back-off, and the breaker. */
void fw__pool_host_failed(fw_pool_t *p, phost_t *h)
{
    h->failures++;
    p->st.connect_failures++;
    uint64_t now = uv_now(p->loop);
    bool was_probe = h->probing;
    h->probing = false;
    if (was_probe || h->failures >= p->o.breaker_threshold) {
        if (h->breaker != BR_OPEN)
            fw__pool_log(p, FW_LOG_WARNING, "pool: %s:%d breaker open after %u failed connects",
                     h->name, h->port, h->failures);
        h->breaker = BR_OPEN;
        h->retry_at = now + p->o.breaker_cooldown_ms;
        return;
    }
    uint64_t backoff = p->o.backoff_base_ms;
    for (unsigned i = 1; i < h->failures && backoff < p->o.breaker_cooldown_ms; i++)
        backoff *= 2;
    if (backoff > p->o.breaker_cooldown_ms)
        backoff = p->o.breaker_cooldown_ms;
    /* +-50 %: hosts (and pools) that failed together do not retry together */
    backoff = backoff / 2 + (backoff > 0 ? fw__pool_rnd(p) % (backoff + 1) : 0);
    h->retry_at = now + backoff;
}

void fw__pool_host_ok(fw_pool_t *p, phost_t *h, fw_server_role_t role)
{
    if (h->breaker != BR_CLOSED)
        fw__pool_log(p, FW_LOG_INFO, "pool: %s:%d breaker closed", h->name, h->port);
    h->breaker = BR_CLOSED;
    h->failures = 0;
    h->probing = false;
    h->suspect = false;
    h->retry_at = 0;
    if (role != h->role && h->role != FW_ROLE_UNKNOWN)
        fw__pool_log(p, FW_LOG_WARNING, "pool: %s:%d is now a %s (was a %s)", h->name, h->port,
                 fw_server_role_name(role), fw_server_role_name(h->role));
    h->role = role;
}

/* ---- routing ---------------------------------------------------------------------------- */

/* Whether a connection (or a host that showed this role) fits a want. */
bool fw__pool_role_fits(fw_pool_want_t want, fw_server_role_t role, bool read_only)
{
    switch (want) {
    case FW_POOL_WRITE:
        return role == FW_ROLE_PRIMARY && !read_only;
    case FW_POOL_READ:
        return true;
    case FW_POOL_READ_STANDBY:
        return role == FW_ROLE_STANDBY;
    }
    return false;
}

/* A host may be dialled now: its back-off is over; an open breaker only once its cooldown is
 * over and no probe runs; and a host whose last connect failed, or one of whose connections
 * broke (a server that just died, or a failover), only when no connect to it is under way.
 * Without that last rule a primary that dies under load is dialled once per waiter at the
 * same moment (25 refused connects for 25 waiters in test_lib_pool_load_live) before the
 * first failure can open its breaker. */
bool fw__pool_host_usable(fw_pool_t *p, const phost_t *h)
{
    if (h->probing)
        return false;
    if (h->retry_at > uv_now(p->loop))
        return false;
    if (h->suspect || h->failures > 0) {
        for (const pconn_t *pc = p->conns; pc != NULL; pc = pc->next)
            if (pc->host == h && (pc->state == PC_OPENING || pc->state == PC_SETUP))
                return false;
    }
    return true;
}

/* How well a host fits a want: 0 = not at all; higher is better. A host never connected to
 * (role unknown) may be anything: for a write it comes after a known primary. */
int fw__pool_host_rank(fw_pool_want_t want, const phost_t *h)
{
    switch (want) {
    case FW_POOL_WRITE:
        return h->role == FW_ROLE_PRIMARY ? 3 : h->role == FW_ROLE_UNKNOWN ? 2 : 0;
    case FW_POOL_READ:
        /* a host not yet connected to may well be a standby: it shares the load (and is
         * found out) */
        return h->role == FW_ROLE_STANDBY || h->role == FW_ROLE_UNKNOWN ? 3 : 1;
    case FW_POOL_READ_STANDBY:
        return h->role == FW_ROLE_STANDBY || h->role == FW_ROLE_UNKNOWN ? 3 : 0;
    }
    return 0;
}

/*
 * Failover: every host that could take a write (known primary, or role unknown) has its
 * breaker open or half-open. A standby may have been promoted meanwhile, which only a fresh
 * connect shows (a connection already open to it learns of it at its next query at best), so
 * a standby whose breaker is closed may be dialled for a write, once per breaker_cooldown_ms
 * (fw__pool_pick_host). Without this, the pool keeps the role each host showed when last
 * connected: after a promotion every write is refused with FW_EROUTE for as long as the pool
 * lives.
 */
bool fw__pool_write_recheck(const fw_pool_t *p, const phost_t *h)
{
    if (h->role != FW_ROLE_STANDBY || h->breaker != BR_CLOSED)
        return false;
    for (size_t i = 0; i < p->nhosts; i++) {
        const phost_t *o = &p->hosts[i];
        if (fw__pool_host_rank(FW_POOL_WRITE, o) > 0 && o->breaker == BR_CLOSED)
            return false; /* a primary (or a host of unknown role) may still be dialled */
    }
    return true;
}

/* The best host to open a connection to for `want` (the least loaded of the best rank), or
 * NULL; *any_candidate says whether some host could fit once its back-off ends. */
phost_t *fw__pool_pick_host(fw_pool_t *p, fw_pool_want_t want, int min_rank, bool *any_candidate)
{
    phost_t *best = NULL;
    int best_rank = 0;
    for (size_t i = 0; i < p->nhosts; i++) {
        phost_t *h = &p->hosts[i];
        int r = fw__pool_host_rank(want, h);
        if (r < min_rank || r == 0)
            continue;
        *any_candidate = true;
        if (!fw__pool_host_usable(p, h))
            continue;
        if (best == NULL || r > best_rank || (r == best_rank && h->conns < best->conns)) {
            best = h;
            best_rank = r;
        }
    }
    if (best != NULL || want != FW_POOL_WRITE)
        return best;
    uint64_t now = uv_now(p->loop);
    for (size_t i = 0; i < p->nhosts; i++) {
        phost_t *h = &p->hosts[i];
        if (!fw__pool_write_recheck(p, h))
            continue;
        *any_candidate = true; /* now, or at its recheck_at */
        if (!fw__pool_host_usable(p, h) || h->recheck_at > now)
            continue;
        if (best == NULL || h->conns < best->conns)
            best = h;
    }
    if (best != NULL) {
        best->recheck_at = now + p->o.breaker_cooldown_ms;
        fw__pool_log(p, FW_LOG_INFO,
                     "pool: no primary usable: %s:%d (a standby) dialled again "
                     "for a write, in case it was promoted",
                     best->name, best->port);
    }
    return best;
}

/* ---- idle connections ------------------------------------------------------------------- */

pconn_t *fw__pool_find_idle(fw_pool_t *p, fw_pool_want_t want, bool standby_only,
                            const phost_t *host)
{
    pconn_t *fallback = NULL;
    for (pconn_t *pc = p->conns, *next; pc != NULL; pc = next) {
        next = pc->next;
        if (pc->state != PC_IDLE || (host != NULL && pc->host != host))
            continue;
        /* The idle reader has seen the server's FATAL or its close (a shutdown, a
         * failover): never hand that out. */
        if (!fw__conn_usable(pc->c)) {
            fw__pool_retire(p, pc, &p->st.closed_error, "the server ended the connection");
            continue;
        }
        /* the connection's own view, or a newer connect to its host (a promotion shows on a
         * fresh connect before any old connection's next query does) */
        if (fw_conn_role(pc->c) != pc->role ||
            (pc->host->role != FW_ROLE_UNKNOWN && pc->host->role != pc->role)) {
            fw__pool_retire(p, pc, &p->st.closed_role, "the server changed role");
            continue;
        }
        if (!fw__pool_role_fits(want, pc->role, pc->read_only))
            continue;
        if (want == FW_POOL_READ && pc->role != FW_ROLE_STANDBY) {
            if (!standby_only && fallback == NULL)
                fallback = pc;
            continue;
        }
        return pc;
    }
    return fallback;
}

/* The pool is full and a waiter fits none of its idle connections (a write on a pool of idle
 * standby connections, a standby read when the first connects found the primary): close the
 * idle connection that fits the want least recently used, so a fitting one can open. Without
 * this, the waiter times out, and so does every later one of its kind, until the idle timeout
 * (10 minutes by default) frees a slot. Connections handed out are never touched. */
void fw__pool_make_room(fw_pool_t *p, fw_pool_want_t want)
{
    pconn_t *victim = NULL;
    for (pconn_t *pc = p->conns; pc != NULL; pc = pc->next) {
        if (pc->state != PC_IDLE || fw__pool_role_fits(want, pc->role, pc->read_only))
            continue;
        if (victim == NULL || pc->idle_since < victim->idle_since)
            victim = pc;
    }
    if (victim != NULL)
        fw__pool_retire(p, victim, &p->st.closed_idle,
                        "making room for a connection of another role");
}
