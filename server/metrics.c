/* metrics.c — Prometheus text format 0.0.4 (see metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "ingest.h"

#ifndef COMMENTARY_VERSION
#define COMMENTARY_VERSION "0.1.0"
#endif

typedef struct buf {
    char *p;
    size_t len, cap;
    int oom;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static void help(buf *b, const char *name, const char *type, const char *text) {
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* One per-stream metric family: value(stream) for every stream. */
typedef double (*stream_value)(const stream *s);

static void family(buf *b, app *a, const char *name, const char *type, const char *text,
                   stream_value v) {
    help(b, name, type, text);
    for (int64_t i = 0; i < a->n_streams; i++)
        put(b, "%s{stream=\"%s\"} %.17g\n", name, a->streams[i]->id, v(a->streams[i]));
}

static ingest_stats stats_of(const stream *s) {
    ingest_stats st = {0};
    if (s->in) ingest_get_stats(s->in, &st);
    return st;
}

static double v_frames_received(const stream *s) { return (double)stats_of(s).frames_kept; }
static double v_frames_decoded(const stream *s) { return (double)stats_of(s).frames_decoded; }
static double v_frames_dropped(const stream *s) { return (double)stats_of(s).frames_dropped; }
static double v_reconnects(const stream *s) { return (double)stats_of(s).reconnects; }
static double v_video_breaks(const stream *s) { return (double)stats_of(s).video_breaks; }
static double v_chunks(const stream *s) { return (double)s->chunks_processed; }
static double v_skipped(const stream *s) { return (double)s->chunks_skipped; }
static double v_tokens(const stream *s) { return (double)s->tokens_generated; }
static double v_kv(const stream *s) { return (double)s->kv_tokens; }
static double v_subs(const stream *s) { return (double)s->n_subscribers; }
static double v_errors(const stream *s) { return (double)s->engine_errors; }
static double v_up(const stream *s) { return s->state == PROTO_STATE_LIVE ? 1 : 0; }

char *metrics_render(app *a, size_t *len) {
    buf b = {.cap = 8192};
    b.p = malloc(b.cap);
    if (!b.p) return NULL;
    b.p[0] = 0;
    help(&b, "commentary_build_info", "gauge", "Build and engine of this daemon (always 1).");
    put(&b, "commentary_build_info{version=\"%s\",backend=\"%s\"} 1\n", COMMENTARY_VERSION,
        config_backend_name(a->cfg.backend));
    help(&b, "commentary_process_start_time_seconds", "gauge",
         "Start time of the process since the Unix epoch in seconds.");
    put(&b, "commentary_process_start_time_seconds %.3f\n", a->start_time);
    help(&b, "commentary_ready", "gauge", "1 once the model is loaded and warmed up.");
    put(&b, "commentary_ready %d\n", a->ready ? 1 : 0);
    help(&b, "commentary_streams", "gauge", "Streams configured now.");
    put(&b, "commentary_streams %lld\n", (long long)a->n_streams);
    help(&b, "commentary_subscribers", "gauge", "WebSocket subscribers now, all streams.");
    put(&b, "commentary_subscribers %lld\n", (long long)a->ws_clients);
    help(&b, "commentary_messages_sent_total", "counter", "Events sent to subscribers.");
    put(&b, "commentary_messages_sent_total %llu\n", (unsigned long long)a->messages_sent);
    help(&b, "commentary_messages_dropped_total", "counter",
         "Events a slow subscriber missed (its send queue was full).");
    put(&b, "commentary_messages_dropped_total %llu\n", (unsigned long long)a->messages_dropped);
    help(&b, "commentary_slow_subscribers_closed_total", "counter",
         "Subscribers closed for staying too slow.");
    put(&b, "commentary_slow_subscribers_closed_total %llu\n",
        (unsigned long long)a->ws_clients_closed_slow);
    help(&b, "commentary_engine_errors_total", "counter", "Chunks the engine failed on.");
    put(&b, "commentary_engine_errors_total %llu\n", (unsigned long long)a->engine_errors);

    family(&b, a, "commentary_stream_up", "gauge", "1 while the stream's source is live.", v_up);
    family(&b, a, "commentary_frames_decoded_total", "counter",
           "Frames decoded from the source.", v_frames_decoded);
    family(&b, a, "commentary_frames_received_total", "counter",
           "Frames kept after decimation to 2 per second.", v_frames_received);
    family(&b, a, "commentary_frames_dropped_total", "counter",
           "Decoded frames the decimation to 2 per second discarded.", v_frames_dropped);
    family(&b, a, "commentary_chunks_processed_total", "counter",
           "1-second chunks the engine commented.", v_chunks);
    family(&b, a, "commentary_chunks_skipped_total", "counter",
           "1-second chunks skipped because the engine was behind or frames were missing.",
           v_skipped);
    family(&b, a, "commentary_tokens_generated_total", "counter", "Tokens generated.",
           v_tokens);
    family(&b, a, "commentary_kv_tokens", "gauge", "Tokens retained in the KV cache.", v_kv);
    family(&b, a, "commentary_reconnects_total", "counter", "Source reconnects.", v_reconnects);
    family(&b, a, "commentary_video_breaks_total", "counter",
           "Breaks in a live source's compressed video (data lost in transit, not repaired); "
           "the pictures after one are damaged until the next key frame.", v_video_breaks);
    family(&b, a, "commentary_stream_subscribers", "gauge", "WebSocket subscribers.", v_subs);
    family(&b, a, "commentary_stream_engine_errors_total", "counter",
           "Chunks of this stream the engine failed on.", v_errors);

    help(&b, "commentary_chunk_latency_seconds", "histogram",
         "From the end of a chunk to its commentary event being sent.");
    for (int64_t i = 0; i < a->n_streams; i++) {
        const stream *s = a->streams[i];
        uint64_t cum = 0;
        for (int k = 0; k < LATENCY_BUCKETS; k++) {
            cum += s->latency_buckets[k];
            put(&b, "commentary_chunk_latency_seconds_bucket{stream=\"%s\",le=\"%g\"} %llu\n",
                s->id, stream_latency_bounds[k], (unsigned long long)cum);
        }
        cum += s->latency_buckets[LATENCY_BUCKETS];
        put(&b, "commentary_chunk_latency_seconds_bucket{stream=\"%s\",le=\"+Inf\"} %llu\n",
            s->id, (unsigned long long)cum);
        put(&b, "commentary_chunk_latency_seconds_sum{stream=\"%s\"} %.6f\n", s->id,
            s->latency_sum);
        put(&b, "commentary_chunk_latency_seconds_count{stream=\"%s\"} %llu\n", s->id,
            (unsigned long long)cum);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
