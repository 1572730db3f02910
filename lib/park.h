/* SPDX-License-Identifier: MIT */
/*
 * A thread's sleep on a word (threaded mode: the consumer waiting for rows). The word is 1
 * while the consumer sleeps or is about to; the producer that finds it 1 sets it to 0 and
 * wakes it. On Linux a futex: one system call for the waker, one for the sleeper. (pthread
 * condition variables cost a third: glibc re-takes the mutex as contended after a wait, and the
 * sleeper's unlock then wakes nobody. strace, one threaded v_bench_large run: 3 futex calls
 * per wake-up.) Elsewhere a mutex and a condition variable.
 */
#ifndef FW_PARK_H
#define FW_PARK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

typedef struct fw__park_s {
    _Atomic uint32_t word; /* 1: the owner sleeps, or is about to */
#ifndef __linux__
    pthread_mutex_t mu;
    pthread_cond_t cv;
#endif
} fw__park_t;

/* Returns 0 or an errno value (pthread's, elsewhere than Linux). */
int fw__park_init(fw__park_t *p);
void fw__park_destroy(fw__park_t *p);

/* The sleeper: sleeps while the word is 1, until fw__park_wake, `deadline` (CLOCK_MONOTONIC,
 * absolute; NULL: none) or a spurious return. Returns false at the deadline, else true; either
 * way the caller looks again at what it waits for. The caller sets the word to 1 (seq_cst)
 * before its last look, and back to 0 when done. */
bool fw__park_wait(fw__park_t *p, const struct timespec *deadline);

/* The waker, after publishing what the sleeper waits for: a seq_cst fence, then, when the word
 * is 1, sets it to 0 and wakes the sleeper. Any thread. */
void fw__park_wake(fw__park_t *p);

/* Whether the owner sleeps (or is about to): a hint, relaxed. */
static inline bool fw__park_sleeping(const fw__park_t *p)
{
    return atomic_load_explicit(&p->word, memory_order_relaxed) != 0;
}

#endif /* FW_PARK_H */
