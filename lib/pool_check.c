/* SPDX-License-Identifier: MIT */
/*
 * What the pool runs on its connections (pool.c): the after-connect SQL of a new connection,
 * the health check of one idle for long before it is handed out, min_size, and the sweep
 * (every second: idle timeouts, lifetimes, broken connections, role changes, back-off ends),
 * and when the pump runs again (a back-off's end, the next loop turn: the opens' pacing).
 *
 * The health check answers the failure keepalives find late: a peer that vanished without a
 * FIN or RST (a host powered off, a firewall that dropped the flow, a half-open TCP
 * connection) leaves an idle connection that looks fine until a query hangs on it; with the
 * default keepalives that takes about a minute, with the kernel's defaults two hours. An empty
 * simple Query costs one round trip and no work on the server (EmptyQueryResponse); its own
 * timeout bounds what a dead peer can cost the waiter.
 */
#include "pool_int.h"

#include <stdio.h>
#include <string.h>

/* ---- after-connect SQL ------------------------------------------------------------------- */

static void on_setup_done(fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    pconn_t *pc = ud;
    fw_pool_t *p = pc->pool;
    (void)c;
    if (pc->state != PC_SETUP)
        return; /* retired meanwhile (the pool closes) */
    if (status < 0) {
        fw_error_t e;
        memset(&e, 0, sizeof(e));
        if (err != NULL)
            e = *err;
        e.code = status;
        char msg[sizeof(e.message)];
        snprintf(msg, sizeof(msg), "after_connect_sql failed: %.900s",
                 err != NULL ? err->message : fw_strerror(status));
        memcpy(e.message, msg, sizeof(e.message));
        fw__pool_open_failed(p, pc, status, &e);
        return;
    }
    fw__pool_opened(p, pc);
}

void fw__pool_setup(fw_pool_t *p, pconn_t *pc)
{
    pc->state = PC_SETUP;
    int rc =
        fw__conn_exec(pc->c, p->after_connect_sql, p->o.health_check_timeout_ms, on_setup_done, pc);
    if (rc < 0) {
        fw_error_t e;
        memset(&e, 0, sizeof(e));
        e.code = rc;
        snprintf(e.message, sizeof(e.message), "after_connect_sql could not be sent: %s",
                 fw_strerror(rc));
        fw__pool_open_failed(p, pc, rc, &e);
    }
}

/* ---- health check ------------------------------------------------------------------------ */

bool fw__pool_needs_check(const fw_pool_t *p, const pconn_t *pc)
{
    return !pc->proven && uv_now(p->loop) - pc->idle_since >= p->o.health_check_after_ms;
}

static void on_checked(fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    pconn_t *pc = ud;
    fw_pool_t *p = pc->pool;
    (void)c;
    if (pc->state != PC_HEALTH)
        return; /* retired meanwhile (the pool closes) */
    if (status < 0) {
        char why[600];
        snprintf(why, sizeof(why), "the health check failed: %.500s",
                 err != NULL ? err->message : fw_strerror(status));
        pc->state = PC_IDLE; /* fw__pool_retire expects a live slot */
        fw__pool_retire(p, pc, &p->st.closed_health, why);
    } else {
        pc->state = PC_IDLE;
        pc->proven = true; /* the waiter takes it now */
    }
    fw__pool_pump(p);
}

int fw__pool_check(fw_pool_t *p, pconn_t *pc)
{
    p->st.health_checks++;
    pc->state = PC_HEALTH;
    int rc = fw__conn_exec(pc->c, "", p->o.health_check_timeout_ms, on_checked, pc);
    if (rc < 0) {
        pc->state = PC_IDLE;
        fw__pool_retire(p, pc, &p->st.closed_health, "the health check could not be sent");
    }
    return rc;
}

/* ---- a parallel stream's transaction, at release ------------------------------------------ */

/* The ROLLBACK is over: idle again, or retired. */
static void on_rolled_back(fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    pconn_t *pc = ud;
    fw_pool_t *p = pc->pool;
    (void)c;
    (void)err;
    if (pc->state != PC_CHECKING)
        return; /* retired meanwhile (the pool closes) */
    pc->state = PC_IN_USE; /* fw__pool_retire expects a live slot */
    if (p->closing) {
        fw__pool_retire(p, pc, &p->st.closed_pool, "the pool is closing");
        return;
    }
    if (status < 0) {
        fw__pool_retire(p, pc, &p->st.closed_error, "ROLLBACK after a parallel stream failed");
        fw__pool_pump(p);
        return;
    }
    fw__pool_back_to_idle(p, pc);
}

void fw__pool_rollback(fw_pool_t *p, pconn_t *pc)
{
    /* A parallel stream's transaction (the snapshot's, REPEATABLE READ READ ONLY; open, or
     * aborted by a cancel) ends before the connection is anyone else's. */
    pc->c->par_rollback = false;
    pc->state = PC_CHECKING;
    if (fw__conn_exec(pc->c, "ROLLBACK", p->o.health_check_timeout_ms, on_rolled_back, pc) == 0)
        return;
    pc->state = PC_IN_USE;
    fw__pool_retire(p, pc, &p->st.closed_error, "the connection cannot be reused");
}

/* ---- min_size ---------------------------------------------------------------------------- */

void fw__pool_fill(fw_pool_t *p)
{
    if (p->closing || p->o.min_size == 0)
        return;
    uint64_t retry = 0;
    while (fw__pool_count_live(p) < p->o.min_size) {
        /* the least used host that may be dialled now, whatever its role: the pool does not
         * know what the next requests will want */
        phost_t *best = NULL;
        for (size_t i = 0; i < p->nhosts; i++) {
            phost_t *h = &p->hosts[i];
            if (!fw__pool_host_usable(p, h)) {
                if (retry == 0 || h->retry_at < retry)
                    retry = h->retry_at;
                continue;
            }
            if (best == NULL || h->conns < best->conns)
                best = h;
        }
        if (best == NULL || !fw__pool_may_open(p) || fw__pool_open(p, best) < 0)
            break;
    }
    /* every host backing off (or its breaker open): come back when the first may be dialled,
     * which for an open breaker is its cooldown: one probe per cooldown, as for acquires */
    if (fw__pool_count_live(p) < p->o.min_size && retry != 0)
        fw__pool_retry_at(p, retry);
}

/* ---- the sweep: idle timeouts, back-off ends -------------------------------------------- */

void fw__pool_on_sweep(uv_timer_t *t)
{
    fw_pool_t *p = t->data;
    uint64_t now = uv_now(p->loop);
    for (pconn_t *pc = p->conns, *next; pc != NULL; pc = next) {
        next = pc->next;
        if (pc->state != PC_IDLE)
            continue;
        if (p->o.idle_timeout_ms > 0 && now - pc->idle_since >= p->o.idle_timeout_ms &&
            fw__pool_count_live(p) > p->o.min_size)
            fw__pool_retire(p, pc, &p->st.closed_idle, "idle timeout");
        else if (pc->expires != 0 && now >= pc->expires)
            fw__pool_retire(p, pc, &p->st.closed_lifetime, "lifetime");
        else if (!fw__conn_usable(pc->c))
            fw__pool_retire(p, pc, &p->st.closed_error, "the server ended the connection");
        else if (fw_conn_role(pc->c) != pc->role)
            fw__pool_retire(p, pc, &p->st.closed_role, "the server changed role");
    }
    if (p->wait_head != NULL || fw__pool_count_live(p) < p->o.min_size)
        fw__pool_pump(p); /* a back-off may have ended */
}

/* ---- running the pump again: back-off ends, the next turn ------------------------------- */

static void on_retry_timer(uv_timer_t *t)
{
    fw__pool_pump(t->data);
}

void fw__pool_retry_at(fw_pool_t *p, uint64_t at)
{
    uint64_t now = uv_now(p->loop);
    if (at > now && (!uv_is_active((uv_handle_t *)&p->retry_timer) ||
                     uv_timer_get_due_in(&p->retry_timer) > at - now))
        uv_timer_start(&p->retry_timer, on_retry_timer, at - now, 0);
}

static void on_kick(uv_idle_t *h)
{
    fw_pool_t *p = h->data;
    uv_idle_stop(h);
    p->turn_opens = 0;
    fw__pool_pump(p);
}

/*
 * Opening a connection costs the loop 0.2-0.7 ms of CPU here (the connection's buffers are
 * fresh pages, and a page fault on this VM costs about 10 us), so a burst of 100 waiters that
 * opened 100 connections in one turn held the loop for 25-90 ms (issue 15: its timers' lag
 * must stay under 20 ms). At most OPENS_PER_TURN a turn; the rest on the next ones, which come
 * at once (the kick is an idle handle: the loop polls without waiting while it is active).
 */
#define OPENS_PER_TURN 4

bool fw__pool_may_open(fw_pool_t *p)
{
    uint64_t now = uv_now(p->loop);
    if (now != p->turn_stamp) {
        p->turn_stamp = now;
        p->turn_opens = 0;
    }
    if (p->turn_opens >= OPENS_PER_TURN) {
        fw__pool_kick(p);
        return false;
    }
    p->turn_opens++;
    return true;
}

void fw__pool_kick(fw_pool_t *p)
{
    uv_idle_start(&p->kick, on_kick);
}
