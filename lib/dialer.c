/* SPDX-License-Identifier: MIT */
/*
 * The dialer: hosts in the order given, and for each host its addresses in the order the
 * resolver returns them, one at a time; with load_balance_hosts=random, both orders shuffled
 * (PostgreSQL 16's rule: the hosts once per connection, each host's addresses once resolved).
 * It knows nothing of sockets, TLS or the protocol; the connection attempt reports back when an
 * address is done (dialer.h).
 *
 * Lifetime: every callback may close the owner; each path that calls one out checks `closed`
 * before it goes on (try_host, try_address).
 */
#include "dialer.h"

#include "alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void try_host(fw__dialer_t *d);
static void try_address(fw__dialer_t *d);

/* ---- load_balance_hosts=random ---------------------------------------------------------- */

/*
 * One random source per process: a counter seeded once from the kernel (uv_random), each draw
 * a fetch-add of the golden ratio finished by splitmix64's mixer. Lock-free, so connections on
 * any number of loop threads draw from it at once; not for secrets (nothing here is one).
 */
static _Atomic uint64_t lb_counter;
static pthread_once_t lb_once = PTHREAD_ONCE_INIT;

static void lb_seed(void)
{
    uint64_t seed = 0;
    if (uv_random(NULL, NULL, &seed, sizeof(seed), 0, NULL) != 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
               ((uint64_t)getpid() << 32);
    }
    atomic_store(&lb_counter, seed);
}

static uint64_t lb_next(void)
{
    (void)pthread_once(&lb_once, lb_seed);
    uint64_t z = atomic_fetch_add_explicit(&lb_counter, UINT64_C(0x9E3779B97F4A7C15),
                                           memory_order_relaxed) +
                 UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* A uniform index below n (n > 0): the high bits of a 64x32 multiply (n is small; the bias of
 * at most n / 2^32 is far below anything a test or a load balancer could see). */
static size_t lb_below(size_t n)
{
    return (size_t)(((lb_next() >> 32) * (uint64_t)n) >> 32);
}

void fw__dial_shuffle_hosts(fw__conninfo_host_t *hosts, size_t n)
{
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        size_t j = lb_below(i);
        fw__conninfo_host_t t = hosts[i - 1];
        hosts[i - 1] = hosts[j];
        hosts[j] = t;
    }
}

/* The resolver's list of one host, shuffled in place (its nodes relinked). */
static struct addrinfo *shuffle_addrs(struct addrinfo *list)
{
    struct addrinfo *a[64];
    size_t n = 0;
    for (struct addrinfo *p = list; p != NULL && n < 64; p = p->ai_next)
        a[n++] = p;
    if (n < 2)
        return list;
    struct addrinfo *rest = a[n - 1]->ai_next; /* beyond 64 addresses: kept in order, last */
    for (size_t i = n; i > 1; i--) {
        size_t j = lb_below(i);
        struct addrinfo *t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
    for (size_t i = 0; i + 1 < n; i++)
        a[i]->ai_next = a[i + 1];
    a[n - 1]->ai_next = rest;
    return a[0];
}

void fw__dial_init(fw__dialer_t *d, uv_loop_t *loop, const fw__conninfo_t *ci,
                   const fw__dial_cbs_t *cbs, void *data)
{
    memset(d, 0, sizeof(*d));
    d->data = data;
    d->loop = loop;
    d->ci = ci;
    d->cbs = cbs;
}

const fw__conninfo_host_t *fw__dial_host(const fw__dialer_t *d)
{
    return &d->ci->hosts[d->host_i];
}

bool fw__dial_is_unix(const fw__dialer_t *d)
{
    return d->is_unix;
}

const char *fw__dial_address(const fw__dialer_t *d)
{
    return d->address;
}

void fw__dial_describe(const fw__dialer_t *d, char *buf, size_t size)
{
    const fw__conninfo_host_t *h = fw__dial_host(d);
    const char *addr = d->address;
    if (d->is_unix)
        snprintf(buf, size, "connection to server on socket \"%s\"", addr);
    else if (addr[0] != '\0' && strcmp(addr, h->host) != 0 && h->host[0] != '\0')
        snprintf(buf, size, "connection to server at \"%s\" (%s), port %u", h->host, addr,
                 (unsigned)h->port_num);
    else
        snprintf(buf, size, "connection to server at \"%s\", port %u", addr[0] ? addr : h->host,
                 (unsigned)h->port_num);
}

int fw__dial_pending(const fw__dialer_t *d)
{
    return d->gai_active ? 1 : 0;
}

/* The address list is libuv's (getaddrinfo) or our own one-entry list for a numeric host. */
static void free_addrs(fw__dialer_t *d)
{
    if (d->ai_list != NULL) {
        if (d->ai_own)
            fw__free(d->ai_list);
        else
            uv_freeaddrinfo(d->ai_list);
    }
    d->ai_list = d->ai_cur = NULL;
    d->ai_own = false;
}

void fw__dial_free(fw__dialer_t *d)
{
    free_addrs(d);
}

/*
 * A numeric IPv4/IPv6 host needs no resolver: building the address here saves a round trip
 * through the thread pool (a wake-up and an extra loop iteration, about 16 us of CPU per
 * connect, measured by bench/bench_connect against libpq). NULL when `node` is not numeric.
 */
static struct addrinfo *numeric_addr(const char *node, unsigned port)
{
    unsigned char buf[sizeof(struct in6_addr)];
    int family;
    if (uv_inet_pton(AF_INET, node, buf) == 0)
        family = AF_INET;
    else if (uv_inet_pton(AF_INET6, node, buf) == 0)
        family = AF_INET6;
    else
        return NULL;
    struct {
        struct addrinfo ai;
        struct sockaddr_storage ss;
    } *a = fw__calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    int rc;
    if (family == AF_INET) {
        rc = uv_ip4_addr(node, (int)port, (struct sockaddr_in *)&a->ss);
        a->ai.ai_addrlen = sizeof(struct sockaddr_in);
    } else {
        rc = uv_ip6_addr(node, (int)port, (struct sockaddr_in6 *)&a->ss);
        a->ai.ai_addrlen = sizeof(struct sockaddr_in6);
    }
    if (rc != 0) {
        fw__free(a);
        return NULL;
    }
    a->ai.ai_family = family;
    a->ai.ai_socktype = SOCK_STREAM;
    a->ai.ai_protocol = IPPROTO_TCP;
    a->ai.ai_addr = (struct sockaddr *)&a->ss;
    return &a->ai;
}

void fw__dial_next_host(fw__dialer_t *d)
{
    free_addrs(d);
    d->host_i++;
    try_host(d);
}

void fw__dial_next_address(fw__dialer_t *d)
{
    /* A unix host has no list: its one address done, the host is done. */
    if (d->ai_cur == NULL) {
        fw__dial_next_host(d);
        return;
    }
    d->ai_cur = d->ai_cur->ai_next;
    try_address(d);
}

void fw__dial_retry(fw__dialer_t *d)
{
    try_address(d);
}

void fw__dial_pin(fw__dialer_t *d, size_t i)
{
    d->pinned = true;
    d->pin = i;
}

void fw__dial_start(fw__dialer_t *d)
{
    d->host_i = d->pinned ? d->pin : 0;
    try_host(d);
}

bool fw__dial_timeout(fw__dialer_t *d)
{
    if (d->gai_active) {
        /* The resolver request cannot be reused until its callback ran: that callback moves
         * on to the next host. */
        uv_cancel((uv_req_t *)&d->gai);
        d->gai_stale = true;
        return true;
    }
    return false;
}

void fw__dial_close(fw__dialer_t *d)
{
    d->closed = true;
    if (d->gai_active)
        uv_cancel((uv_req_t *)&d->gai);
}

static void try_address(fw__dialer_t *d)
{
    if (d->closed)
        return;
    const fw__conninfo_host_t *h = fw__dial_host(d);
    if (h->type == FW__HOST_UNIX) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof(sa));
        sa.sun_family = AF_UNIX;
        int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.%u", h->host,
                         (unsigned)h->port_num);
        snprintf(d->address, sizeof(d->address), "%s", sa.sun_path);
        d->is_unix = true;
        if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
            d->cbs->on_error(d, FW_ECONFIG, "unix socket path is too long");
            fw__dial_next_host(d);
            return;
        }
        d->cbs->on_address(d, (const struct sockaddr *)&sa, sizeof(sa));
        return;
    }
    d->is_unix = false;
    if (d->ai_cur == NULL) {
        fw__dial_next_host(d);
        return;
    }
    const struct sockaddr *sa = d->ai_cur->ai_addr;
    char ip[64] = "";
    /* getaddrinfo's addresses are suitably aligned, but copy to say so to the compiler. */
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in in4;
        memcpy(&in4, sa, sizeof(in4));
        uv_ip4_name(&in4, ip, sizeof(ip));
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof(in6));
        uv_ip6_name(&in6, ip, sizeof(ip));
    }
    snprintf(d->address, sizeof(d->address), "%s", ip);
    d->cbs->on_address(d, sa, (socklen_t)d->ai_cur->ai_addrlen);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    fw__dialer_t *d = req->data;
    d->gai_active = false;
    if (d->closed) {
        if (res != NULL)
            uv_freeaddrinfo(res);
        d->cbs->on_released(d); /* may free the dialer's memory: the last thing done */
        return;
    }
    if (d->gai_stale) { /* timed out meanwhile (already noted): on to the next host */
        d->gai_stale = false;
        if (res != NULL)
            uv_freeaddrinfo(res);
        fw__dial_next_host(d);
        return;
    }
    if (status < 0) {
        d->cbs->on_error(d, status, "could not translate host name");
        fw__dial_next_host(d);
        return;
    }
    if (d->ci->load_balance_hosts == FW__LB_RANDOM)
        res = shuffle_addrs(res);
    d->ai_list = d->ai_cur = res;
    try_address(d);
}

static void try_host(fw__dialer_t *d)
{
    if (d->closed)
        return;
    if (d->host_i >= d->ci->nhosts || (d->pinned && d->host_i != d->pin)) {
        d->cbs->on_exhausted(d);
        return;
    }
    const fw__conninfo_host_t *h = fw__dial_host(d);
    d->address[0] = '\0';
    d->cbs->on_host(d);
    if (d->closed)
        return;
    if (h->type == FW__HOST_UNIX) {
        try_address(d);
        return;
    }
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)h->port_num);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    const char *node = h->host;
    if (h->type == FW__HOST_ADDRESS) {
        hints.ai_flags = AI_NUMERICHOST; /* hostaddr skips DNS; host stays for TLS, pgpass */
        node = h->hostaddr;
    }
    struct addrinfo *num = numeric_addr(node, h->port_num);
    if (num != NULL) {
        d->ai_list = d->ai_cur = num;
        d->ai_own = true;
        try_address(d);
        return;
    }
    d->cbs->on_lookup(d);
    if (d->closed)
        return;
    d->gai.data = d;
    int rc = uv_getaddrinfo(d->loop, &d->gai, on_resolved, node, port, &hints);
    if (rc < 0) {
        d->cbs->on_error(d, rc, uv_strerror(rc));
        fw__dial_next_host(d);
        return;
    }
    d->gai_active = true;
}
