/* SPDX-License-Identifier: MIT */
/*
 * A thread's sleep on a word (threaded mode: the consumer waiting for rows). On Linux a futex:
 * one system call for the waker, one for the sleeper. (pthread condition variables cost a
 * third: glibc re-takes the mutex as contended after a wait, and the sleeper's unlock then
 * wakes nobody. strace, one threaded v_bench_large run: 3 futex calls per wake-up.) Elsewhere a
 * mutex and a condition variable.
 *
 * The word: FW__PARK_AWAKE; FW__PARK_ASLEEP from the owner's announcement (before its last
 * look at what it waits for) until a wake; FW__PARK_WOKEN from the wake until the owner runs
 * again and sets it back. Only the first waker of a sleep makes the system call.
 */
#ifndef FW_PARK_H
#define FW_PARK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

enum { FW__PARK_AWAKE = 0, FW__PARK_ASLEEP = 1, FW__PARK_WOKEN = 2 };

typedef struct fw__park_s {
    _Atomic uint32_t word;
#ifndef __linux__
    pthread_mutex_t mu;
    pthread_cond_t cv;
#endif
} fw__park_t;

/* Returns 0 or an errno value (pthread's, elsewhere than Linux). */
int fw__park_init(fw__park_t *p);
void fw__park_destroy(fw__park_t *p);

/* The owner, before its last look at what it waits for: FW__PARK_ASLEEP, then a seq_cst
 * fence (pairs with the one in fw__park_wake: the waker sees this, or the look sees what the
 * waker published). */
static inline void fw__park_announce(fw__park_t *p)
{
    atomic_store_explicit(&p->word, FW__PARK_ASLEEP, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
}

/* The owner, done waiting: FW__PARK_AWAKE. */
static inline void fw__park_leave(fw__park_t *p)
{
    atomic_store_explicit(&p->word, FW__PARK_AWAKE, memory_order_relaxed);
}

/* The owner, after fw__park_announce and a look that found nothing: sleeps while the word is
 * FW__PARK_ASLEEP, until fw__park_wake, `deadline` (CLOCK_MONOTONIC, absolute; NULL: none) or
 * a spurious return. Returns false at the deadline, else true; either way the owner announces
 * and looks again (or leaves). */
bool fw__park_wait(fw__park_t *p, const struct timespec *deadline);

/* The waker, after publishing what the owner waits for: a seq_cst fence, then, if the owner
 * sleeps (FW__PARK_ASLEEP), FW__PARK_WOKEN and the wake-up. Any thread. */
void fw__park_wake(fw__park_t *p);

/* Whether the owner is in its wait (asleep, or woken and not yet running): a hint, relaxed. */
static inline bool fw__park_waiting(const fw__park_t *p)
{
    return atomic_load_explicit(&p->word, memory_order_relaxed) != FW__PARK_AWAKE;
}

#endif /* FW_PARK_H */
