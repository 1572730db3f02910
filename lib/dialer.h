/* SPDX-License-Identifier: MIT */
/*
 * Private to lib/: the dialer, which walks the conninfo's hosts and, for each host, its addresses
 * (a unix socket path, a numeric address, or what getaddrinfo returns), in order, as libpq does.
 * It decides which address comes next; the connection attempt (conn_attempt.c) owns the channel
 * (socket and TLS), startup and the connect_timeout timer, and tells the dialer when an address
 * is done, or that the server was the wrong kind and the next host is wanted (the judging of a
 * server's role is route.c's).
 *
 * The dialer talks to the connection only through fw__dial_cbs_t, so host and address order can
 * change here without touching conn_attempt.c.
 *
 * Thread: loop thread only, like the connection that embeds it.
 */
#ifndef FW_DIALER_H
#define FW_DIALER_H

#include "conninfo.h"

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

typedef struct fw__dialer_s fw__dialer_t;

/*
 * What the dialer tells its owner. Every callback gets the dialer (its `data` says whose it is).
 * Each may close the owner (fw__dial_close): the dialer then does nothing more except, for a
 * lookup still in flight, calling on_released once it ends.
 */
typedef struct fw__dial_cbs_s {
    /* A new host begins: fw__dial_host() is it; the address is not known yet. */
    void (*on_host)(fw__dialer_t *d);
    /* This host's name goes to the resolver (getaddrinfo on the thread pool). */
    void (*on_lookup)(fw__dialer_t *d);
    /* Connect to this address (fw__dial_address() is its text). `sa` lives until this returns.
     * The owner answers later with fw__dial_next_address, fw__dial_next_host or fw__dial_retry. */
    void (*on_address)(fw__dialer_t *d, const struct sockaddr *sa, socklen_t len);
    /* The current host failed before a socket existed (resolver error, unusable unix path):
     * `what` lives until this returns. The dialer moves on by itself afterwards. */
    void (*on_error)(fw__dialer_t *d, int code, const char *what);
    /* No host is left: the owner ends the connect with what it noted. */
    void (*on_exhausted)(fw__dialer_t *d);
    /* After fw__dial_close: the last resolver request ended; fw__dial_pending() is 0 now. */
    void (*on_released)(fw__dialer_t *d);
} fw__dial_cbs_t;

struct fw__dialer_s {
    void *data; /* the owner's */
    uv_loop_t *loop;
    const fw__conninfo_t *ci; /* borrowed from the owner, which outlives the dialer */
    const fw__dial_cbs_t *cbs;
    bool closed;

    /* where we are in the host/address lists */
    size_t host_i;
    struct addrinfo *ai_list, *ai_cur;
    bool ai_own; /* ai_list is our own numeric-host entry, not getaddrinfo's */
    uv_getaddrinfo_t gai;
    bool gai_active, gai_stale;
    bool is_unix;
    bool pinned; /* fw__dial_pin: only host `pin` is tried */
    size_t pin;
    char address[128];
};

/* Caller-owned storage; `ci` and `cbs` must outlive the dialer. Starts nothing. */
void fw__dial_init(fw__dialer_t *d, uv_loop_t *loop, const fw__conninfo_t *ci,
                   const fw__dial_cbs_t *cbs, void *data);
/* Only host i (an index into the connection string's list) is tried (a pool's choice). */
void fw__dial_pin(fw__dialer_t *d, size_t i);
/* The first host (again: prefer-standby's second pass starts over). */
void fw__dial_start(fw__dialer_t *d);
/* load_balance_hosts=random: shuffles the hosts in place (call once per connection, before
 * the dialer starts). Any thread: the random source is one per process, lock-free. */
void fw__dial_shuffle_hosts(fw__conninfo_host_t *hosts, size_t n);
/* The current address is done: the host's next address, or the next host after the last. */
void fw__dial_next_address(fw__dialer_t *d);
/* The current host is done: the next host (its addresses not tried are skipped). */
void fw__dial_next_host(fw__dialer_t *d);
/* The same address once more, on a fresh socket (the sslmode prefer/allow second try). */
void fw__dial_retry(fw__dialer_t *d);
/*
 * connect_timeout fired for this host. True when a lookup was in flight: it is cancelled and the
 * dialer moves to the next host once its callback has run. False otherwise: the owner closes
 * its socket and then calls fw__dial_next_address (libpq: the timer is per address).
 */
bool fw__dial_timeout(fw__dialer_t *d);
/* The owner is closing: no callback but on_released runs from now on; a lookup in flight is
 * cancelled. */
void fw__dial_close(fw__dialer_t *d);
/* Resolver requests still to end before the dialer's memory may go (0 or 1). */
int fw__dial_pending(const fw__dialer_t *d);
/* Releases the address list. Only when fw__dial_pending() is 0. */
void fw__dial_free(fw__dialer_t *d);

/* The current host; valid while a host is being tried and after the connect succeeded. The
 * pointer lives as long as `ci`. */
const fw__conninfo_host_t *fw__dial_host(const fw__dialer_t *d);
/* Whether the current address is a unix socket. */
bool fw__dial_is_unix(const fw__dialer_t *d);
/* The current address as text (socket path or IP), "" before it is known; lives as long as
 * the dialer and changes with the next address. */
const char *fw__dial_address(const fw__dialer_t *d);
/* Which server this attempt is for, as libpq words it before "failed: ...":
 * `connection to server at "db1" (10.0.0.1), port 5432`. Truncated to fit `size`. */
void fw__dial_describe(const fw__dialer_t *d, char *buf, size_t size);

#endif /* FW_DIALER_H */
