/* SPDX-License-Identifier: MIT */
/*
 * A stream's metrics (lmetrics.h, docs/METRICS.md): the per-entity counters and gauges brought
 * up to date from the stream's own figures, per-chunk and per-read samples gathered without
 * atomics and merged in batches, and the end of a query. Recording costs well under 1% of a
 * query (docs/METRICS.md, "Overhead").
 */
#include "stream_int.h"

void fw__stream_lm_sync(fw_stream_t *s, bool final)
{
    if (s->lm.e == NULL)
        return;
    fw__pipe_stats_t p;
    fw__pipe_stats(&s->pipe, &p);
    uint64_t pushed = p.rows_buffered + p.rows_yielded;
    fw__lm_sync(&s->lm, pushed + p.rows_filtered, p.rows_filtered, p.rows_yielded,
                p.bytes_received, final ? 0 : p.rows_buffered, final ? 0 : p.bytes_held);
}

/* The consumer's per-chunk samples into the shared histograms. Thread: the consumer, or the
 * last owner. */
void fw__stream_lm_merge_chunks(fw_stream_t *s)
{
    if (s->lm.e == NULL)
        return;
    fw__hist_merge(s->lm.e->chunk_rows, &s->lm.chunk_rows);
    fw__hist_merge(s->lm.e->chunk_seconds, &s->lm.chunk_seconds);
}

/* The pipe's hook for every chunk the consumer gives back: its rows and, for the chunks a
 * sampled read filled (1 in 8: a clock read per chunk would cost more than the chunk), how
 * long it took from queued to released. Plain adds into the consumer's batches. */
void fw__stream_lm_chunk(void *ud, const fw__chunk_t *c)
{
    fw_stream_t *s = ud;
    const fw__lm_entity_t *e = s->lm.e;
    /* The chunk-rows buckets are the powers of two (lmetrics.c): the bucket is the bit length
     * of n - 1, no search. */
    uint32_t n = c->n;
    uint32_t i = n <= 1 ? 0 : 32 - (uint32_t)__builtin_clz(n - 1);
    fw__lm_stream_t *m = &s->lm;
    m->chunk_rows.buckets[i < FW__LM_CHUNK_ROWS_BOUNDS ? i : FW__LM_CHUNK_ROWS_BOUNDS]++;
    m->chunk_rows.count++;
    m->chunk_rows.sum += n;
    if (c->stamp != 0)
        fw__hist_batch_add(&s->lm.chunk_seconds, e->chunk_seconds,
                           (double)(uv_hrtime() - c->stamp) / 1e9);
    if ((++s->lm.chunks & 63) == 0)
        fw__stream_lm_merge_chunks(s);
}

/* After rows were queued (producer): occupancy, the first row, and at most once per loop
 * millisecond the shared counters and histograms. */
void fw__stream_lm_after_push(fw_stream_t *s)
{
    fw__lm_entity_t *e = s->lm.e;
    uint64_t yielded = atomic_load_explicit(&s->pipe.st_rows_yielded, memory_order_relaxed);
    uint64_t queued = s->pipe.rows_pushed > yielded ? s->pipe.rows_pushed - yielded : 0;
    fw__hist_batch_add(&s->lm.occupancy, e->occupancy, (double)queued);
    if (!s->lm.first_row && s->pipe.rows_pushed > 0) {
        s->lm.first_row = true;
        fw__lm_seconds(e->first_row_seconds, uv_hrtime() - s->lm.t_start);
    }
    uint64_t now = uv_now(s->conn->loop);
    if (now != s->lm.synced_ms) {
        s->lm.synced_ms = now;
        fw__hist_merge(e->occupancy, &s->lm.occupancy);
        fw__stream_lm_sync(s, false);
    }
}

/* The end of the query, for the metrics (producer, once). */
void fw__stream_lm_end(fw_stream_t *s, int final)
{
    fw__lm_entity_t *e = s->lm.e;
    if (e == NULL || s->lm.ended)
        return;
    s->lm.ended = true;
    fw__hist_merge(e->occupancy, &s->lm.occupancy);
    uint64_t now = uv_hrtime();
    fw__lm_seconds(e->query_seconds, now - s->lm.t_start);
    fw__hist_observe(e->query_rows, (double)s->rows_total);
    fw__hist_observe(e->query_bytes,
                     (double)atomic_load_explicit(&s->pipe.st_bytes_received,
                                                  memory_order_relaxed));
    if (s->cancelling) {
        fw__metric_inc(s->cancel_timed_out ? e->cancel_timeout : e->cancel_ok);
        fw__lm_seconds(e->cancel_seconds, now - s->lm.t_cancel);
    }
    if (final == FW__FINAL_COMPLETED) {
        fw__metric_inc(e->done_success);
    } else if (final == FW__FINAL_CANCELLED) {
        fw__metric_inc(e->done_cancelled);
    } else {
        fw__metric_inc(e->done_error);
        fw__lm_query_error(e->name, s->err.code, s->err.sqlstate);
    }
    if (s->paused && s->lm.t_pause != 0)
        fw__lm_seconds(e->pause_seconds, now - s->lm.t_pause);
    if (s->stalled && s->lm.t_stall != 0)
        fw__lm_seconds(e->read_stop_seconds, now - s->lm.t_stall);
    fw__metric_gauge_add(e->streams_active, -1);
    fw__stream_lm_sync(s, false);
}
