/* SPDX-License-Identifier: MIT */
/*
 * The connection pool (fwire.h, "connection pool"). Embedded mode: everything on the caller's
 * loop thread. Each connection is pinned to one host of the list (fw__conn_pin_host), so the
 * pool knows which host every failure belongs to and routes by the role each host showed.
 *
 *   acquire -> a waiter (FIFO) -> pump: an idle connection that fits, else a new connection to
 *   the best usable host, else wait (or fail at once when nothing could ever come)
 *   release -> fw_conn_when_idle (a cancelled stream drains first) -> retire or idle -> pump
 *
 * Hosts: a failed connect backs the host off (base * 2^(failures-1), at most the cooldown,
 * +-50 % jitter); `breaker_threshold` failures in a row open its breaker; after the cooldown
 * one probe connect (half-open) closes it again or re-opens it. A dead host thus costs one
 * connect attempt per cooldown, whatever the request rate.
 *
 * Memory: the pool and its slots are the library's (fw_allocator_set); fw_pool_close frees
 * everything once the last connection has closed.
 */
#include "alloc.h"
#include "pool_int.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void maybe_free(fw_pool_t *p);

static void on_wait_timer(uv_timer_t *t);
static pconn_t *find_conn(fw_pool_t *p, const fw_conn_t *c);

/* ---- connections ------------------------------------------------------------------------ */

static void unlink_conn(fw_pool_t *p, pconn_t *pc)
{
    if (pc->prev != NULL)
        pc->prev->next = pc->next;
    else
        p->conns = pc->next;
    if (pc->next != NULL)
        pc->next->prev = pc->prev;
}

static void on_conn_closed(fw_conn_t *c, void *ud)
{
    (void)c;
    pconn_t *pc = ud;
    fw_pool_t *p = pc->pool;
    unlink_conn(p, pc);
    fw__free(pc);
    if (p->closing)
        maybe_free(p);
    else
        fw__pool_pump(p); /* room for a new connection (or below min_size) */
}

void fw__pool_retire(fw_pool_t *p, pconn_t *pc, uint64_t *reason, const char *why)
{
    if (pc->state == PC_CLOSING)
        return;
    pc->state = PC_CLOSING;
    pc->host->conns--;
    if (reason == &p->st.closed_error)
        pc->host->suspect = true; /* the server may be gone: see fw__pool_host_usable */
    (*reason)++;
    fw__pool_log(p, FW_LOG_INFO, "pool: closing a connection to %s:%d (%s)", pc->host->name,
                 pc->host->port, why);
    fw_conn_close(pc->c, on_conn_closed, pc);
}

static void on_connected(fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    pconn_t *pc = ud;
    fw_pool_t *p = pc->pool;
    if (pc->state == PC_CLOSING)
        return; /* closed by the pool itself (fw_pool_close) while connecting */
    if (status < 0) {
        fw__pool_open_failed(p, pc, status, err);
        (void)c;
        return;
    }
    pc->role = fw_conn_role(c);
    pc->read_only = fw_conn_read_only(c);
    if (p->after_connect_sql != NULL) {
        fw__pool_setup(p, pc); /* then fw__pool_opened */
        return;
    }
    fw__pool_opened(p, pc);
}

void fw__pool_open_failed(fw_pool_t *p, pconn_t *pc, int status, const fw_error_t *err)
{
    fw__pool_log(p, FW_LOG_WARNING, "pool: connect to %s:%d failed: %s", pc->host->name,
                 pc->host->port, err != NULL ? err->message : fw_strerror(status));
    /* kept for the acquires that time out or are refused meanwhile: they say why */
    if (err != NULL) {
        p->last_err = *err;
    } else {
        memset(&p->last_err, 0, sizeof(p->last_err));
        p->last_err.code = status;
        snprintf(p->last_err.message, sizeof(p->last_err.message), "%s", fw_strerror(status));
    }
    fw__pool_host_failed(p, pc->host);
    fw__pool_retire(p, pc, &p->st.closed_error, "connect failed");
}

void fw__pool_opened(fw_pool_t *p, pconn_t *pc)
{
    fw_conn_t *c = pc->c;
    fw__pool_host_ok(p, pc->host, pc->role);
    p->st.opened++;
    uint64_t now = uv_now(p->loop);
    if (p->o.max_lifetime_ms > 0) {
        uint64_t jitter =
            p->o.lifetime_jitter_ms > 0 && p->o.lifetime_jitter_ms < p->o.max_lifetime_ms
                ? fw__pool_rnd(p) % (p->o.lifetime_jitter_ms + 1)
                : 0;
        pc->expires = now + p->o.max_lifetime_ms - jitter;
    }
    pc->state = PC_IDLE;
    pc->idle_since = now;
    pc->proven = true;
    if (p->o.after_connect != NULL)
        p->o.after_connect(p, c, p->o.after_connect_ud);
    if (p->closing) {
        fw__pool_retire(p, pc, &p->st.closed_pool, "the pool is closing");
        return;
    }
    fw__pool_pump(p);
}

int fw__pool_open(fw_pool_t *p, phost_t *h)
{
    pconn_t *pc = fw__calloc(1, sizeof(*pc));
    if (pc == NULL)
        return FW_ENOMEM;
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = p->conninfo;
    o.use_environment = p->o.use_environment;
    o.log_cb = p->o.log_cb;
    o.log_ud = p->o.log_ud;
    int rc = fw_conn_new(&pc->c, p->loop, &o, NULL);
    if (rc == 0 && p->rt != NULL)
        pc->c->runtime_link = p->rt; /* threaded: streams on it are started and read from other
                                        threads (the runtime never tracks it: the pool does) */
    if (rc == 0)
        rc = fw__conn_pin_host(pc->c, h->index);
    if (rc == 0)
        rc = fw_conn_connect(pc->c, on_connected, pc);
    if (rc < 0) {
        if (pc->c != NULL)
            fw_conn_close(pc->c, NULL, NULL);
        fw__free(pc);
        return rc;
    }
    pc->pool = p;
    pc->host = h;
    pc->state = PC_OPENING;
    pc->next = p->conns;
    if (p->conns != NULL)
        p->conns->prev = pc;
    p->conns = pc;
    h->conns++;
    h->connects++;
    if (h->breaker == BR_OPEN) { /* the cooldown is over: this connect is the probe */
        h->breaker = BR_HALF_OPEN;
        h->probing = true;
        h->probes++;
        fw__pool_log(p, FW_LOG_INFO, "pool: %s:%d breaker half-open: one probe", h->name, h->port);
    }
    return 0;
}

/* Connections on their way to being idle: connecting, running the after-connect SQL, or
 * being health-checked (each may serve a waiter soon). */
unsigned fw__pool_count_coming(const fw_pool_t *p)
{
    unsigned n = 0;
    for (const pconn_t *pc = p->conns; pc != NULL; pc = pc->next)
        n += pc->state == PC_OPENING || pc->state == PC_SETUP || pc->state == PC_HEALTH;
    return n;
}

unsigned fw__pool_count_waiting(const fw_pool_t *p)
{
    unsigned n = 0;
    for (const waiter_t *w = p->wait_head; w != NULL; w = w->next)
        n++;
    return n;
}

unsigned fw__pool_count_live(const fw_pool_t *p)
{
    unsigned n = 0;
    for (const pconn_t *pc = p->conns; pc != NULL; pc = pc->next)
        n += pc->state != PC_CLOSING;
    return n;
}

/* Whether some connection that fits `want` is open or opening (it may come back). */
static bool fitting_conn_exists(const fw_pool_t *p, fw_pool_want_t want)
{
    for (const pconn_t *pc = p->conns; pc != NULL; pc = pc->next) {
        if (pc->state == PC_CLOSING)
            continue;
        if (pc->state == PC_OPENING || pc->state == PC_SETUP ||
            fw__pool_role_fits(want, pc->role, pc->read_only))
            return true;
    }
    return false;
}

/* ---- waiters ---------------------------------------------------------------------------- */

static void arm_wait_timer(fw_pool_t *p)
{
    if (p->wait_head == NULL) {
        uv_timer_stop(&p->wait_timer);
        return;
    }
    /* the earliest deadline: acquires may ask for their own timeout (fw_pool_acquire_wait),
     * so the queue is FIFO but its deadlines are not ordered */
    uint64_t now = uv_now(p->loop);
    uint64_t d = p->wait_head->deadline;
    for (const waiter_t *w = p->wait_head->next; w != NULL; w = w->next)
        if (w->deadline < d)
            d = w->deadline;
    uv_timer_start(&p->wait_timer, on_wait_timer, d > now ? d - now : 0, 0);
}

static waiter_t *pop_waiter(fw_pool_t *p)
{
    waiter_t *w = p->wait_head;
    if (w != NULL) {
        p->wait_head = w->next;
        if (p->wait_head == NULL)
            p->wait_tail = NULL;
    }
    return w;
}

static void finish_waiter(fw_pool_t *p, waiter_t *w, fw_conn_t *c, int status, const char *why)
{
    double waited = (double)(uv_hrtime() - w->since_ns) / 1e9;
    p->st.acquire_wait_seconds += waited;
    if (waited > p->st.acquire_wait_max_seconds)
        p->st.acquire_wait_max_seconds = waited;
    fw_error_t err;
    memset(&err, 0, sizeof(err));
    if (status < 0) {
        err.code = status;
        err.phase = FW_PHASE_NONE;
        if (status != FW_ECLOSED && p->last_err.code != 0) {
            /* why no connection came: the last failed connect (or after-connect SQL) */
            memcpy(err.sqlstate, p->last_err.sqlstate, sizeof(err.sqlstate));
            memcpy(err.severity, p->last_err.severity, sizeof(err.severity));
            snprintf(err.message, sizeof(err.message), "%s; the last connect failed: %.700s", why,
                     p->last_err.message);
        } else {
            snprintf(err.message, sizeof(err.message), "%s", why);
        }
    }
    fw__pool_lm_wait(p, uv_hrtime() - w->since_ns);
    fw_pool_acquire_cb cb = w->cb;
    void *ud = w->ud;
    fw__free(w);
    cb(p, c, status, status < 0 ? &err : NULL, ud);
}

static void on_wait_timer(uv_timer_t *t)
{
    fw_pool_t *p = t->data;
    uint64_t now = uv_now(p->loop);
    for (;;) {
        /* from the head each time: the callback may acquire, or close the pool */
        waiter_t *w = p->wait_head, *prev = NULL;
        while (w != NULL && w->deadline > now) {
            prev = w;
            w = w->next;
        }
        if (w == NULL)
            break;
        if (prev != NULL)
            prev->next = w->next;
        else
            p->wait_head = w->next;
        if (p->wait_tail == w)
            p->wait_tail = prev;
        p->st.acquire_timeouts++;
        char why[160];
        snprintf(why, sizeof(why), "no connection became available within %llu ms",
                 (unsigned long long)(w->deadline - w->since));
        finish_waiter(p, w, NULL, FW_ETIMEDOUT, why); /* may add waiters: at the tail */
    }
    arm_wait_timer(p);
    fw__pool_lm_sync(p);
}

/* The head waiter w gets the idle connection pc. */
static void hand_out(fw_pool_t *p, waiter_t *w, pconn_t *pc)
{
    pop_waiter(p);
    pc->state = PC_IN_USE;
    pc->proven = false;
    p->st.acquires++;
    finish_waiter(p, w, pc->c, 0, NULL);
}

/* The head waiter wants a connection to one server (fw__pool_acquire_ms's `like`): an idle
 * one there, a new one there when there is room, a refusal when that server is failing. True:
 * look at the head again; false: wait for a connection to come back or open. */
static bool pump_pinned(fw_pool_t *p, waiter_t *w)
{
    pconn_t *pc = fw__pool_find_idle(p, FW_POOL_READ, false, w->pin);
    if (pc != NULL && fw__pool_needs_check(p, pc)) {
        if (fw__pool_count_coming(p) >= fw__pool_count_waiting(p) || fw__pool_check(p, pc) < 0)
            return false;
        return true;
    }
    if (pc != NULL) {
        hand_out(p, w, pc);
        return true;
    }
    if (fw__pool_count_coming(p) >= fw__pool_count_waiting(p))
        return false; /* one opening per waiter: its callback pumps again */
    if (!fw__pool_host_usable(p, w->pin)) {
        pop_waiter(p);
        p->st.acquire_refused++;
        finish_waiter(p, w, NULL, FW_EROUTE,
                      "the server of the stream's other connections is failing (circuit breaker "
                      "open or backing off)");
        return true;
    }
    if (fw__pool_count_live(p) >= p->o.max_size) {
        /* full: an idle connection to another host makes room (least recently used) */
        pconn_t *victim = NULL;
        for (pconn_t *o = p->conns; o != NULL; o = o->next)
            if (o->state == PC_IDLE && o->host != w->pin &&
                (victim == NULL || o->idle_since < victim->idle_since))
                victim = o;
        if (victim != NULL)
            fw__pool_retire(p, victim, &p->st.closed_idle,
                            "making room for a connection to another host");
    }
    if (fw__pool_count_live(p) < p->o.max_size && fw__pool_may_open(p) &&
        fw__pool_open(p, w->pin) == 0)
        return true;
    return false; /* full of connections in use: a release, or the waiter's timeout */
}

/* Hands out connections while waiters and fitting connections exist, opens new ones when
 * there is room, and refuses at once what nothing could ever serve. */
void fw__pool_pump(fw_pool_t *p)
{
    if (p->closing)
        return;
    while (p->wait_head != NULL) {
        waiter_t *w = p->wait_head;
        if (w->pin != NULL) {
            if (pump_pinned(p, w))
                continue;
            break;
        }
        bool standby_known = false;
        if (w->want == FW_POOL_READ) {
            /* a standby preferred: an idle primary is the fallback only when no standby host
             * is usable and no standby connection is coming; a host not connected to yet may
             * be one (as in fw__pool_host_rank), else a fresh pool whose first connection
             * went to the primary would send every read there */
            for (size_t i = 0; i < p->nhosts; i++)
                if ((p->hosts[i].role == FW_ROLE_STANDBY || p->hosts[i].role == FW_ROLE_UNKNOWN) &&
                    p->hosts[i].breaker == BR_CLOSED)
                    standby_known = true;
        }
        pconn_t *pc = fw__pool_find_idle(p, w->want, standby_known, NULL);
        if (pc == NULL && w->want == FW_POOL_READ && standby_known &&
            fw__pool_count_live(p) >= p->o.max_size)
            pc = fw__pool_find_idle(p, w->want, false,
                                    NULL); /* no room to open a standby: take what is idle */
        if (pc != NULL && fw__pool_needs_check(p, pc)) {
            /* idle for long: a round trip first (pool_check.c); it pumps again. One check
             * (or connect) under way per waiter at most. */
            if (fw__pool_count_coming(p) >= fw__pool_count_waiting(p) || fw__pool_check(p, pc) < 0)
                break;
            continue;
        }
        if (pc != NULL) {
            hand_out(p, w, pc);
            continue;
        }
        bool candidate = false;
        phost_t *h = fw__pool_pick_host(p, w->want, 1, &candidate);
        if (h != NULL && fw__pool_count_live(p) >= p->o.max_size &&
            fw__pool_count_coming(p) < fw__pool_count_waiting(p))
            fw__pool_make_room(p, w->want);
        if (h != NULL && fw__pool_count_live(p) < p->o.max_size &&
            fw__pool_count_coming(p) < fw__pool_count_waiting(p)) {
            if (!fw__pool_may_open(p))
                break; /* this turn has opened its share: the kick comes back */
            if (fw__pool_open(p, h) == 0)
                continue; /* one connection opening per waiter; its callback pumps again */
        }
        if (!candidate && !fitting_conn_exists(p, w->want)) {
            pop_waiter(p);
            p->st.acquire_refused++;
            finish_waiter(p, w, NULL, FW_EROUTE,
                          w->want == FW_POOL_WRITE
                              ? "no primary is usable: every host is a standby or failing"
                              : "no standby is usable: every host is a primary or failing");
            continue;
        }
        bool all_open = true;
        uint64_t retry = 0;
        for (size_t i = 0; i < p->nhosts; i++) {
            const phost_t *hh = &p->hosts[i];
            if (w->want == FW_POOL_WRITE && fw__pool_write_recheck(p, hh)) {
                /* a standby to dial again in case it was promoted: wait for that */
                all_open = false;
                if (retry == 0 || hh->recheck_at < retry)
                    retry = hh->recheck_at;
                continue;
            }
            if (fw__pool_host_rank(w->want, hh) == 0)
                continue;
            if (hh->breaker != BR_OPEN)
                all_open = false;
            if (retry == 0 || hh->retry_at < retry)
                retry = hh->retry_at;
        }
        if (all_open && fw__pool_count_coming(p) == 0 && !fitting_conn_exists(p, w->want)) {
            /* every fitting host's breaker is open: fail now rather than make every request
             * wait for its timeout (the breaker's point); the next probe comes after the
             * cooldown, from a later acquire */
            pop_waiter(p);
            p->st.acquire_refused++;
            finish_waiter(p, w, NULL, FW_EROUTE,
                          "every server that could serve this is failing (circuit breaker open "
                          "or backing off)");
            continue;
        }
        /* a host backing off: come back when its back-off ends (the sweep is too slow) */
        if (fw__pool_count_coming(p) == 0)
            fw__pool_retry_at(p, retry);
        break;
    }
    fw__pool_fill(p); /* min_size */
    arm_wait_timer(p);
    fw__pool_lm_sync(p);
}

/* ---- public ----------------------------------------------------------------------------- */

int fw_pool_acquire(fw_pool_t *p, fw_pool_want_t want, fw_pool_acquire_cb cb, void *ud)
{
    if (p == NULL || p->rt != NULL)
        return FW_EINVAL; /* threaded mode: fw_pool_acquire_wait */
    return fw__pool_acquire_ms(p, want, p->o.acquire_timeout_ms, cb, ud, NULL);
}

int fw__pool_acquire_ms(fw_pool_t *p, fw_pool_want_t want, unsigned timeout_ms,
                        fw_pool_acquire_cb cb, void *ud, const fw_conn_t *like)
{
    if (p == NULL || cb == NULL || (unsigned)want > FW_POOL_READ_STANDBY)
        return FW_EINVAL;
    if (p->closing)
        return FW_ESTATE;
    phost_t *pin = NULL;
    if (like != NULL) {
        const pconn_t *lc = find_conn(p, like);
        if (lc == NULL)
            return FW_EINVAL;
        pin = lc->host;
    }
    waiter_t *w = fw__calloc(1, sizeof(*w));
    if (w == NULL)
        return FW_ENOMEM;
    w->want = want;
    w->pin = pin;
    w->cb = cb;
    w->ud = ud;
    /* The loop's clock is cached: after a long callback (or before the first uv_run) it is
     * behind, and the deadline would come early. */
    uv_update_time(p->loop);
    w->since = uv_now(p->loop);
    w->since_ns = uv_hrtime();
    w->deadline = w->since + timeout_ms;
    if (p->wait_tail != NULL)
        p->wait_tail->next = w;
    else
        p->wait_head = w;
    p->wait_tail = w;
    fw__pool_kick(p); /* from the loop: cb never runs inside this call */
    return 0;
}

static pconn_t *find_conn(fw_pool_t *p, const fw_conn_t *c)
{
    for (pconn_t *pc = p->conns; pc != NULL; pc = pc->next)
        if (pc->c == c)
            return pc;
    return NULL;
}

static void on_released_idle(fw_conn_t *c, int status, void *ud)
{
    pconn_t *pc = ud;
    fw_pool_t *p = pc->pool;
    if (pc->state != PC_CHECKING)
        return;
    pc->state = PC_IN_USE; /* retire() expects a live slot */
    if (p->closing) {
        fw__pool_retire(p, pc, &p->st.closed_pool, "the pool is closing");
        return;
    }
    if (status < 0) {
        fw__pool_retire(p, pc, &p->st.closed_error, "the connection broke");
        return;
    }
    if (c->par_rollback) {
        fw__pool_rollback(p, pc); /* pool_check.c; then fw__pool_back_to_idle */
        return;
    }
    fw__pool_back_to_idle(p, pc);
}

void fw__pool_back_to_idle(fw_pool_t *p, pconn_t *pc)
{
    fw_server_role_t role = fw_conn_role(pc->c);
    bool ro = fw_conn_read_only(pc->c);
    if (role != pc->role || (pc->role == FW_ROLE_PRIMARY && ro && !pc->read_only)) {
        if (role != FW_ROLE_UNKNOWN)
            pc->host->role = role; /* what the server says it is now */
        fw__pool_retire(p, pc, &p->st.closed_role, "the server changed role");
        fw__pool_pump(p);
        return;
    }
    uint64_t now = uv_now(p->loop);
    if (pc->expires != 0 && now >= pc->expires) {
        fw__pool_retire(p, pc, &p->st.closed_lifetime, "lifetime");
        return;
    }
    pc->state = PC_IDLE;
    pc->idle_since = now;
    fw__pool_pump(p);
}

void fw_pool_release(fw_pool_t *p, fw_conn_t *c)
{
    if (p == NULL || c == NULL)
        return;
    if (p->rt != NULL) {
        fw__pool_release_rt(p, c); /* pool_sync.c: on the loop */
        return;
    }
    fw__pool_release(p, c);
}

void fw__pool_release(fw_pool_t *p, fw_conn_t *c)
{
    pconn_t *pc = find_conn(p, c);
    if (pc == NULL || pc->state != PC_IN_USE)
        return;
    pc->state = PC_CHECKING;
    /* A stream cancelled or freed mid-way drains first; a broken connection says so. */
    if (fw__conn_when_idle(c, on_released_idle, pc) < 0) {
        pc->state = PC_IN_USE;
        fw__pool_retire(p, pc, &p->st.closed_error, "the connection cannot be reused");
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    fw_pool_t *p = h->data;
    p->handles--;
    maybe_free(p);
}

static void maybe_free(fw_pool_t *p)
{
    if (!p->closing || p->conns != NULL)
        return;
    if (p->handles == 4) {
        uv_close((uv_handle_t *)&p->retry_timer, on_handle_closed);
        uv_close((uv_handle_t *)&p->wait_timer, on_handle_closed);
        uv_close((uv_handle_t *)&p->sweep, on_handle_closed);
        uv_close((uv_handle_t *)&p->kick, on_handle_closed);
        return;
    }
    if (p->handles > 0)
        return;
    fw__pool_lm_fini(p); /* the gauges give back this pool's share */
    fw_pool_close_cb cb = p->close_cb;
    void *ud = p->close_ud;
    p->close_cb = NULL;
    if (cb != NULL)
        cb(p, ud);
    if (p->rt != NULL)
        fw__runtime_child_done(p->rt, &p->rt_child);
    fw__free(p->hosts);
    fw__free(p->after_connect_sql);
    fw__wipe(p->conninfo, strlen(p->conninfo)); /* it may hold a password */
    fw__free(p->conninfo);
    fw__free(p);
}

void fw_pool_close(fw_pool_t *p, fw_pool_close_cb cb, void *ud)
{
    if (p == NULL || p->rt != NULL)
        return; /* threaded mode: fw_pool_close_sync */
    fw__pool_close(p, cb, ud);
}

void fw__pool_close(fw_pool_t *p, fw_pool_close_cb cb, void *ud)
{
    if (p->closing)
        return;
    p->closing = true;
    p->close_cb = cb;
    p->close_ud = ud;
    waiter_t *w;
    while ((w = pop_waiter(p)) != NULL)
        finish_waiter(p, w, NULL, FW_ECLOSED, "the pool is closing");
    for (pconn_t *pc = p->conns, *next; pc != NULL; pc = next) {
        next = pc->next;
        if (pc->state == PC_IDLE || pc->state == PC_OPENING || pc->state == PC_SETUP ||
            pc->state == PC_HEALTH)
            fw__pool_retire(p, pc, &p->st.closed_pool, "the pool is closing");
    }
    maybe_free(p);
}
