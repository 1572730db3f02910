/* SPDX-License-Identifier: MIT */
/* A thread's sleep on a word: park.h. */
#include "park.h"

#include <errno.h>

/* Claims the owner's sleep for this waker: true for the one that should make the wake-up call
 * (the owner was FW__PARK_ASLEEP; now FW__PARK_WOKEN). */
static bool claim(fw__park_t *p)
{
    /* Orders the waker's publication (a ring push, the final state) before its look at the
     * word, against the owner's announcement before its last look (fw__park_announce). */
    atomic_thread_fence(memory_order_seq_cst);
    uint32_t asleep = FW__PARK_ASLEEP;
    return atomic_load_explicit(&p->word, memory_order_relaxed) == FW__PARK_ASLEEP &&
           atomic_compare_exchange_strong_explicit(&p->word, &asleep, FW__PARK_WOKEN,
                                                   memory_order_relaxed, memory_order_relaxed);
}

static bool past(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

#ifdef __linux__
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The futex word is a plain 32-bit integer to the kernel. */
_Static_assert(sizeof(_Atomic uint32_t) == 4 && _Alignof(_Atomic uint32_t) == 4,
               "a futex word is 32 bits, 4-aligned");

/* 32-bit ABIs with a 64-bit time_t take the timeout as a 64-bit timespec in futex_time64 (and
 * riscv32 has only that one). */
static long futex_nr(void)
{
#ifdef SYS_futex_time64
    if (sizeof(time_t) > sizeof(long))
        return SYS_futex_time64;
#endif
#ifdef SYS_futex
    return SYS_futex;
#else
    return SYS_futex_time64;
#endif
}

int fw__park_init(fw__park_t *p)
{
    atomic_init(&p->word, FW__PARK_AWAKE);
    return 0;
}

void fw__park_destroy(fw__park_t *p)
{
    (void)p;
}

bool fw__park_wait(fw__park_t *p, const struct timespec *deadline)
{
    /* FUTEX_WAIT_BITSET: an absolute CLOCK_MONOTONIC deadline. Returns at once (EAGAIN) when
     * the word is no longer FW__PARK_ASLEEP: woken between the owner's last look and here. */
    long r = syscall(futex_nr(), (uint32_t *)(uintptr_t)&p->word /* -Wcast-qual: _Atomic */,
                     FUTEX_WAIT_BITSET_PRIVATE, (uint32_t)FW__PARK_ASLEEP, deadline, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    if (r == 0 || errno == EAGAIN || errno == EINTR)
        return true;
    if (errno == ETIMEDOUT)
        return false;
    /* Anything else (a kernel without futexes, say) would come back at once every time: a
     * short sleep instead, so the owner polls rather than spins, and the deadline holds. */
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
    return deadline == NULL || !past(deadline);
}

void fw__park_wake(fw__park_t *p)
{
    if (claim(p))
        syscall(futex_nr(), (uint32_t *)(uintptr_t)&p->word /* -Wcast-qual: _Atomic */,
                FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

#else             /* a mutex and a condition variable */

int fw__park_init(fw__park_t *p)
{
    atomic_init(&p->word, FW__PARK_AWAKE);
    int rc = pthread_mutex_init(&p->mu, NULL);
    if (rc != 0)
        return rc;
    pthread_condattr_t ca;
    rc = pthread_condattr_init(&ca);
#ifndef __APPLE__ /* no pthread_condattr_setclock there: fw__park_wait waits relative */
    if (rc == 0)
        rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
#endif
    if (rc == 0)
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

static int timed_wait(fw__park_t *p, const struct timespec *deadline)
{
#ifdef __APPLE__
    /* The condition variable's clock is the wall clock there: wait for what is left. */
    struct timespec now, left;
    clock_gettime(CLOCK_MONOTONIC, &now);
    left.tv_sec = deadline->tv_sec - now.tv_sec;
    left.tv_nsec = deadline->tv_nsec - now.tv_nsec;
    if (left.tv_nsec < 0) {
        left.tv_sec--;
        left.tv_nsec += 1000000000L;
    }
    if (left.tv_sec < 0)
        return ETIMEDOUT;
    return pthread_cond_timedwait_relative_np(&p->cv, &p->mu, &left);
#else
    return pthread_cond_timedwait(&p->cv, &p->mu, deadline);
#endif
}

bool fw__park_wait(fw__park_t *p, const struct timespec *deadline)
{
    bool woken = true;
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->word, memory_order_relaxed) == FW__PARK_ASLEEP) {
        int w = deadline != NULL ? timed_wait(p, deadline) : pthread_cond_wait(&p->cv, &p->mu);
        if (w == ETIMEDOUT || (w != 0 && deadline != NULL && past(deadline))) {
            woken = false;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return woken;
}

void fw__park_wake(fw__park_t *p)
{
    if (!claim(p))
        return;
    /* The lock orders this wake after an owner between its look at the word and its wait. */
    pthread_mutex_lock(&p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_broadcast(&p->cv);
}

#endif
