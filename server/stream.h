/* stream.h — one stream of the daemon: its source (ingest), the assembly of 1-second
 * chunks from decimated frames, its event history (for ?since= resume), its
 * subscribers and its counters.
 *
 * Threads and ownership:
 *   - the loop owns the stream: creation, removal, events, subscribers, counters;
 *   - the ingest thread fills chunk slots (stream_on_frame) under the infer lock, and
 *     copies each decimated frame as the latest one under snap_lock (for the snapshot);
 *   - the inference thread owns the stream's engine session and reads PENDING slots.
 * A stream is freed on the loop only, once the inference thread has released its
 * session (infer_remove → INFER_RESULT_CLOSED).
 */
#ifndef SERVER_STREAM_H
#define SERVER_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "proto.h"

typedef struct app app;
typedef struct ingest ingest;
typedef struct ws_client ws_client;
typedef struct vlm_session vlm_session;

enum { CHUNK_FREE, CHUNK_FILLING, CHUNK_PENDING, CHUNK_RUNNING };
#define STREAM_SLOTS 3

/* One 1-second chunk: chunk i covers stream seconds [i, i+1) and uses the first frame
 * at or after i and the first at or after i + 0.5. */
typedef struct chunk_slot {
    int state;            /* CHUNK_*: FILLING is the ingest thread's, RUNNING infer's */
    int64_t index;        /* i */
    int n_frames;         /* frames copied so far (0..2) */
    uint8_t *rgb[2];      /* frames, width × height × 3, packed rows */
    double ready_ms;      /* monotonic ms at which the chunk's last frame arrived */
} chunk_slot;

#define LATENCY_BUCKETS 10

typedef struct stream {
    app *app;
    char id[PROTO_ID_SIZE];
    char *source, *query, *previous_text; /* owned; query changes go through infer */
    char *source_shown;   /* owned: source with its passwords masked (logs, listings) */
    bool live;            /* live sources skip chunks when behind; files wait */
    bool from_config;     /* started by the config file (reload may remove it) */
    ingest *in;
    proto_state state;
    double created;       /* unix seconds */

    /* chunk assembly: slots guarded by the inference lock (infer.c) */
    int64_t width, height;      /* frame size: the model's smart_resize size */
    chunk_slot slots[STREAM_SLOTS];
    double next_mark;           /* next 0.5-s mark a frame must fill */
    int filling;                /* slot being filled, -1 none */
    double last_frame_ms;       /* monotonic ms of the last frame, 0: none yet */
    double last_t;              /* its stream time */
    bool gave_up;               /* stream_tick gave seconds up since the last frame */
    double t_shift;             /* added to the source's times since (stream_on_frame) */

    /* the latest decimated frame (GET /v1/streams/ID/snapshot.jpg) */
    uv_mutex_t snap_lock; /* guards snap_rgb and snap_n */
    uint8_t *snap_rgb;    /* width × height × 3, packed rows; NULL before stream_start */
    uint64_t snap_n;      /* frames copied so far (0: none yet) */
    uint8_t *snap_jpeg;   /* loop: the JPEG of frame snap_jpeg_n, or NULL */
    size_t snap_jpeg_len;
    uint64_t snap_jpeg_n;

    /* inference side (infer thread only) */
    vlm_session *session;
    bool query_changed;         /* guarded by the inference lock */
    char *new_query;            /* guarded by the inference lock */

    /* loop side */
    uint64_t seq;               /* last event seq */
    char **history;             /* ring of encoded events, app history size */
    uint64_t *history_seq;
    int64_t history_len, history_head;
    ws_client *subscribers;     /* intrusive list (ws.c) */
    int64_t n_subscribers;
    bool closing;
    char *end_detail;           /* the source ended: `ended` waits for its last chunks */
    char last_text[1024];

    /* counters (loop) */
    uint64_t chunks_processed, chunks_skipped, tokens_generated, engine_errors;
    int64_t kv_tokens;
    uint64_t latency_buckets[LATENCY_BUCKETS + 1];
    double latency_sum;
    double recent_latency[64];
    int64_t n_recent;
} stream;

/* Create a stream and start its ingest (loop).  Returns 0 or an error with err naming
 * the stream and source.  The stream is registered with the app. */
int stream_new(app *a, const char *id, const char *source, const char *query,
               const char *previous_text, bool from_config, stream **out, char *err);
/* Allocate the frame slots and start ingest once the model is ready (loop).  Checks the
 * query and previous text first (a stream made while the model loaded).  A failure is
 * logged and ends the stream with its reason (`status` `ended`, detail); -1. */
int stream_start(stream *s);
/* Stop ingest and hand the session back; the stream is freed when infer confirms. */
void stream_remove(stream *s);
/* Runs on: loop.  A new query for s's next chunks (REST, reload).  0, or an HTTP status
 * with err (256 bytes): 400 for a query the engine would refuse (too long), 500 when
 * out of memory; the old query stays. */
int stream_set_query(stream *s, const char *query, char *err);
/* Free a stream whose session is released (loop). */
void stream_free(stream *s);

/* Runs on: ingest.  A decimated frame at stream time t. */
void stream_on_frame(void *user, const uint8_t *rgb, int64_t w, int64_t h, int64_t stride,
                     double t);

/* Runs on: loop.  Record an event: assign its seq, encode, keep it in the history and
 * broadcast it to subscribers.  ev is a proto message of the given type whose stream,
 * seq and wall_time are filled here. */
void stream_emit(stream *s, proto_type type, proto_msg *ev);

/* Runs on: loop.  Once the source has ended and no chunk of s is waiting, running or
 * undelivered, emit its `ended` status (files end after their last commentary). */
void stream_end_if_done(stream *s);

/* Runs on: loop, once a second.  A live stream whose frames stopped while its source stays
 * up reports the lost seconds as they pass (a `gap` once a second has had no frame for 2 s),
 * not all at once when frames come back. */
void stream_tick(stream *s);

/* Runs on: loop.  The events after seq since, oldest first, through cb. */
void stream_history_since(stream *s, uint64_t since,
                          void (*cb)(void *user, const char *json, size_t len), void *user);
uint64_t stream_history_first_seq(const stream *s);

/* Runs on: loop.  The latest frame as a JPEG: *jpeg stays the stream's (valid until the
 * next call or the stream's end), *len its size.  0; UV_EAGAIN before the first frame;
 * another UV_E* code when it cannot be encoded. */
int stream_snapshot_jpeg(stream *s, const uint8_t **jpeg, size_t *len);

/* Runs on: loop.  Whether a source is a live one (files and http are not). */
bool stream_source_is_live(const char *source);

/* Runs on: loop.  A latency observation (seconds) for the histogram and p50. */
void stream_observe_latency(stream *s, double seconds);
double stream_latency_p50(const stream *s);

extern const double stream_latency_bounds[LATENCY_BUCKETS];

#endif
