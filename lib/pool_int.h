/* SPDX-License-Identifier: MIT */
/* Private to lib/: the pool's state (pool.c) and its hosts, back-off and breaker (pool_host.c). */
#ifndef FW_POOL_INT_H
#define FW_POOL_INT_H

#include "conn.h"
#include "lmetrics.h"

/* PC_SETUP: running after_connect_sql; PC_HEALTH: the health check's round trip before a
 * hand-out; PC_CHECKING: released, waiting for the connection to be idle. */
typedef enum {
    PC_OPENING,
    PC_SETUP,
    PC_IDLE,
    PC_HEALTH,
    PC_IN_USE,
    PC_CHECKING,
    PC_CLOSING
} pc_state_t;
typedef enum { BR_CLOSED, BR_OPEN, BR_HALF_OPEN } breaker_t;

typedef struct phost_s {
    size_t index;
    char name[256];
    int port;
    fw_server_role_t role;
    breaker_t breaker;
    unsigned failures;
    uint64_t retry_at;   /* uv_now: no connect before this */
    uint64_t recheck_at; /* a standby: no connect for a write before this (pool_host.c) */
    bool probing;
    bool suspect; /* a connection to it broke: one connect at a time until one succeeds */
    unsigned conns;
    uint64_t connects, probes;
    fw__series_t *lm_breaker[3]; /* fraiseql_pool_host_breaker{host, state}, by breaker_t */
    breaker_t lm_state;          /* the state this pool counts in them */
} phost_t;

typedef struct pconn_s {
    struct pconn_s *next, *prev;
    fw_pool_t *pool;
    fw_conn_t *c;
    phost_t *host;
    pc_state_t state;
    fw_server_role_t role; /* at connect */
    bool read_only;
    uint64_t expires; /* uv_now, 0 = never */
    uint64_t idle_since;
    /* just opened or just passed a health check: the next hand-out needs no check (else
     * health_check_after_ms 0 would check forever) */
    bool proven;
} pconn_t;

typedef struct waiter_s {
    struct waiter_s *next;
    fw_pool_want_t want;
    fw_pool_acquire_cb cb;
    void *ud;
    uint64_t since, deadline; /* uv_now */
    uint64_t since_ns;        /* uv_hrtime, for the wait statistics */
    struct phost_s *pin;      /* a connection to this host only (fw__pool_acquire_ms's like) */
} waiter_t;

struct fw_pool_s {
    uv_loop_t *loop;
    fw_pool_opts_t o;
    char *conninfo;
    phost_t *hosts;
    size_t nhosts;
    pconn_t *conns; /* every connection, any state */
    waiter_t *wait_head, *wait_tail;
    uv_timer_t wait_timer;  /* the head waiter's deadline */
    uv_timer_t sweep;       /* idle timeouts, lifetimes: every second */
    uv_timer_t retry_timer; /* the end of a back-off, while an acquire waits */
    uv_idle_t kick;         /* runs the pump from the loop, never inside a call */
    unsigned turn_opens;    /* connections opened this turn of the loop (fw__pool_may_open) */
    uint64_t turn_stamp;    /* uv_now when they were counted */
    int handles;
    bool closing;
    fw_pool_close_cb close_cb;
    void *close_ud;
    fw_pool_stats_t st;
    uint64_t rng;
    char *after_connect_sql; /* the copy of o.after_connect_sql, or NULL */
    fw_error_t last_err;     /* the last failed connect or after-connect SQL */
    fw__lm_pool_t lm;        /* fraiseql_pool_* (pool_stats.c) */
    char name[64];           /* o.name's copy: the metrics' label `pool` */
    fw_runtime_t *rt;        /* threaded mode (pool_sync.c), or NULL */
    fw__rt_child_t rt_child; /* its place among the runtime's children */
    fw_pool_stats_t lm_pub;  /* what this pool has added to them so far */
};

uint64_t fw__pool_rnd(fw_pool_t *p);
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void fw__pool_log(fw_pool_t *p, fw_log_level_t level, const char *fmt, ...);
const char *fw__pool_breaker_name(breaker_t b);
/* A failed connect to h: back-off with jitter; the breaker opens after the threshold (or at
 * once for a failed probe). */
void fw__pool_host_failed(fw_pool_t *p, phost_t *h);
/* A connect to h succeeded: its breaker closes, its role is what the server said. */
void fw__pool_host_ok(fw_pool_t *p, phost_t *h, fw_server_role_t role);
/* Whether a connection of this role fits a want. */
bool fw__pool_role_fits(fw_pool_want_t want, fw_server_role_t role, bool read_only);
/* Whether h may be dialled now (its back-off over, no probe running). */
bool fw__pool_host_usable(fw_pool_t *p, const phost_t *h);
/* How well h fits a want (0: not at all). */
int fw__pool_host_rank(fw_pool_want_t want, const phost_t *h);
bool fw__pool_write_recheck(const fw_pool_t *p, const phost_t *h);
void fw__pool_make_room(fw_pool_t *p, fw_pool_want_t want);
/* The host to open a connection to for `want`, or NULL; *any_candidate: some host could. */
phost_t *fw__pool_pick_host(fw_pool_t *p, fw_pool_want_t want, int min_rank, bool *any_candidate);

/* pool_check.c: the pool's sweep timer, every second: idle timeouts (not below min_size),
 * lifetimes, broken connections, role changes; pumps when a back-off may have ended. */
void fw__pool_on_sweep(uv_timer_t *t);

/* pool.c */
void fw__pool_pump(fw_pool_t *p);
/* Runs the pump from the loop (never inside an API call). */
void fw__pool_kick(fw_pool_t *p);
/* True if one more connection may be opened in this turn of the loop; else the pump is kicked
 * to the next turn. */
bool fw__pool_may_open(fw_pool_t *p);
/* Pumps again at uv_now `at` (the end of a back-off), unless a retry comes sooner. */
void fw__pool_retry_at(fw_pool_t *p, uint64_t at);
/* Closes a connection for `reason` (a counter of st). */
void fw__pool_retire(fw_pool_t *p, pconn_t *pc, uint64_t *reason, const char *why);
/* A new connection is ready (after its after-connect SQL): idle, after_connect called. */
void fw__pool_opened(fw_pool_t *p, pconn_t *pc);
/* A connect (or its after-connect SQL) failed: logged, kept as last_err, the host backs off. */
void fw__pool_open_failed(fw_pool_t *p, pconn_t *pc, int status, const fw_error_t *err);
/* An idle connection that fits want (host: only that host's; NULL: any). */
pconn_t *fw__pool_find_idle(fw_pool_t *p, fw_pool_want_t want, bool standby_only,
                            const phost_t *host);
unsigned fw__pool_count_coming(const fw_pool_t *p);
unsigned fw__pool_count_waiting(const fw_pool_t *p);
unsigned fw__pool_count_live(const fw_pool_t *p);
int fw__pool_open(fw_pool_t *p, phost_t *h);
/* fw_pool_acquire with its own timeout; in both modes. like: NULL, or a connection of this
 * pool handed out: then a connection to the same server (any role; a parallel stream's parts
 * import its snapshot), FW_EINVAL when like is not this pool's. Loop thread. */
int fw__pool_acquire_ms(fw_pool_t *p, fw_pool_want_t want, unsigned timeout_ms,
                        fw_pool_acquire_cb cb, void *ud, const fw_conn_t *like);
/* fw_pool_release on the loop thread, in both modes. */
void fw__pool_release(fw_pool_t *p, fw_conn_t *c);
/* pool_stats.c: fw_pool_stats on the loop thread, in both modes. */
void fw__pool_stats(const fw_pool_t *p, fw_pool_stats_t *st);

/* fw_pool_close in both modes. Loop thread. */
void fw__pool_close(fw_pool_t *p, fw_pool_close_cb cb, void *ud);

/* pool_sync.c: threaded mode. fw_pool_release from another thread: runs on the loop. */
void fw__pool_release_rt(fw_pool_t *p, fw_conn_t *c);

/* pool_stats.c: the fraiseql_pool_* series. init when the pool is made; sync brings them
 * up to date with the pool (deltas: every pool adds its share); wait records one acquire's
 * wait; fini takes this pool's share out of the gauges. */
void fw__pool_lm_init(fw_pool_t *p);
void fw__pool_lm_sync(fw_pool_t *p);
void fw__pool_lm_wait(fw_pool_t *p, uint64_t ns);
void fw__pool_lm_fini(fw_pool_t *p);

/* pool_check.c */
/* Runs after_connect_sql on a new connection (PC_SETUP), then fw__pool_opened. */
void fw__pool_setup(fw_pool_t *p, pconn_t *pc);
/* Released with a parallel stream's transaction on it (conn->par_rollback): ROLLBACK, then idle
 * (fw__pool_back_to_idle), or retired. pc is PC_IN_USE. */
void fw__pool_rollback(fw_pool_t *p, pconn_t *pc);
/* pool.c: a released connection, idle now: back in the pool, or retired (role changed,
 * lifetime). */
void fw__pool_back_to_idle(fw_pool_t *p, pconn_t *pc);
/* Whether an idle connection must pass a health check before it is handed out. */
bool fw__pool_needs_check(const fw_pool_t *p, const pconn_t *pc);
/* Starts the check (PC_HEALTH); it pumps again when done. 0 or an error (then retired). */
int fw__pool_check(fw_pool_t *p, pconn_t *pc);
/* Opens connections up to min_size (hosts that are not backing off, least used first). */
void fw__pool_fill(fw_pool_t *p);

#endif /* FW_POOL_INT_H */
