/* SPDX-License-Identifier: MIT */
/* A thread's sleep on a word: park.h. */
#include "park.h"

#include <errno.h>

#ifdef __linux__
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

int fw__park_init(fw__park_t *p)
{
    atomic_init(&p->word, 0);
    return 0;
}

void fw__park_destroy(fw__park_t *p)
{
    (void)p;
}

bool fw__park_wait(fw__park_t *p, const struct timespec *deadline)
{
    /* FUTEX_WAIT_BITSET: an absolute CLOCK_MONOTONIC deadline. Returns at once (EAGAIN) when
     * the word is no longer 1: the wake came between the caller's last look and this call. */
    long r = syscall(SYS_futex, (uint32_t *)(uintptr_t)&p->word, FUTEX_WAIT_BITSET_PRIVATE, 1u,
                     deadline, NULL, FUTEX_BITSET_MATCH_ANY);
    return !(r == -1 && errno == ETIMEDOUT);
}

void fw__park_wake(fw__park_t *p)
{
    /* Orders the waker's publication (a ring push, the final state) before its load of the
     * word, against the sleeper's store of 1 before its last look: one of the two sees the
     * other's write, so a wake-up is never lost. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&p->word, memory_order_relaxed) == 0 ||
        atomic_exchange_explicit(&p->word, 0, memory_order_relaxed) == 0)
        return;
    syscall(SYS_futex, (uint32_t *)(uintptr_t)&p->word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

#else /* a mutex and a condition variable */

int fw__park_init(fw__park_t *p)
{
    atomic_init(&p->word, 0);
    int rc = pthread_mutex_init(&p->mu, NULL);
    if (rc != 0)
        return rc;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
#if !defined(__APPLE__)
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
#endif
    rc = pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        pthread_mutex_destroy(&p->mu);
    return rc;
}

void fw__park_destroy(fw__park_t *p)
{
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

bool fw__park_wait(fw__park_t *p, const struct timespec *deadline)
{
    bool woken = true;
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->word, memory_order_relaxed) != 0) {
        int w = deadline != NULL ? pthread_cond_timedwait(&p->cv, &p->mu, deadline)
                                 : pthread_cond_wait(&p->cv, &p->mu);
        if (w == ETIMEDOUT) {
            woken = false;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return woken;
}

void fw__park_wake(fw__park_t *p)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&p->word, memory_order_relaxed) == 0 ||
        atomic_exchange_explicit(&p->word, 0, memory_order_relaxed) == 0)
        return;
    /* The lock orders this wake after a sleeper between its look at the word and its wait. */
    pthread_mutex_lock(&p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_broadcast(&p->cv);
}

#endif
