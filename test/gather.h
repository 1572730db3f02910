/* SPDX-License-Identifier: MIT */
/*
 * A threaded consumer that gathers whole chunks before it lets go of any (fw_stream_next_chunk,
 * then fw_chunk_release of the lot once `batch` bytes of rows are held), for the tests of the
 * read-ahead limit (issue 18): the limit must give way to a consumer that holds what it took.
 * Include after cmocka.h and fwire.h.
 */
#ifndef FW_TEST_GATHER_H
#define FW_TEST_GATHER_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gathered_s {
    uint64_t rows;
    size_t batches; /* times the consumer released what it held */
    size_t most;    /* bytes of rows held at most */
} gathered_t;

/* Reads s to its end that way, calling row(ud, r) for every row (NULL: none). Fails the test
 * after more than 3 waits of 1 s without a chunk (a server sending as fast as it can, so the
 * producer is waiting for a consumer that holds its chunks). Returns the end (FW_END or the
 * failure); *g what happened. */
static inline int gather_chunks(fw_stream_t *s, size_t batch,
                                void (*row)(void *ud, const fw_row_t *r), void *ud, gathered_t *g)
{
    enum { MAX_HELD = 8192 };
    static fw_chunk_t *held[MAX_HELD];
    size_t nheld = 0, held_bytes = 0, timeouts = 0;
    int rc;
    *g = (gathered_t){0};
    for (;;) {
        fw_chunk_t *ch = NULL;
        rc = fw_stream_next_chunk(s, &ch, 1000);
        if (rc == FW_AGAIN && ++timeouts > 3)
            fail_msg("%zu waits of 1 s for the next chunk, holding %zu bytes in %zu chunks after "
                     "%" PRIu64 " rows: the read-ahead limit waits for a consumer that holds "
                     "its chunks",
                     timeouts, held_bytes, nheld, g->rows);
        if (rc == FW_AGAIN)
            continue;
        if (rc != FW_ROW)
            break;
        size_t n;
        const fw_row_t *rows = fw_chunk_rows(ch, &n);
        for (size_t i = 0; i < n; i++) {
            if (row != NULL)
                row(ud, &rows[i]);
            held_bytes += rows[i].len;
        }
        g->rows += n;
        assert_true(nheld < MAX_HELD);
        held[nheld++] = ch;
        if (held_bytes > g->most)
            g->most = held_bytes;
        if (held_bytes >= batch) {
            while (nheld > 0)
                fw_chunk_release(s, held[--nheld]);
            held_bytes = 0;
            g->batches++;
        }
    }
    while (nheld > 0)
        fw_chunk_release(s, held[--nheld]);
    return rc;
}

#endif
