/* infer.h — the inference thread: owns the engine (model + one session per stream),
 * runs every complete chunk, and reports results to the loop.
 *
 * The only server file that includes the engine's API (vlm.h).  The loop talks to it
 * with infer_add/remove/set_query; the ingest threads complete chunk slots under
 * infer_lock and wake it with infer_signal; results come back through a bounded queue
 * and uv_async_send, whose callback (on the loop) drains the whole queue.
 * Scheduling: round-robin over streams with a pending chunk, one chunk at a time.
 */
#ifndef SERVER_INFER_H
#define SERVER_INFER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct stream stream;
typedef struct infer infer;

typedef enum infer_result_kind {
    INFER_RESULT_READY,       /* model loaded and warmed up */
    INFER_RESULT_LOAD_FAILED, /* detail says why; the daemon exits */
    INFER_RESULT_COMMENTARY,  /* a chunk's text */
    INFER_RESULT_GAP,         /* chunks skipped: [t_start, t_end) */
    INFER_RESULT_ERROR,       /* a chunk failed (detail); the stream goes on */
    INFER_RESULT_FATAL,       /* the backend is unusable (detail); the daemon stops */
    INFER_RESULT_CLOSED,      /* the stream's session is released: free it */
} infer_result_kind;

typedef struct infer_result {
    infer_result_kind kind;
    stream *s;
    double t_start, t_end;    /* stream seconds */
    double ready_ms;          /* monotonic ms when the chunk's last frame arrived */
    double engine_ms;
    int64_t n_generated, kv_tokens;
    char text[1024];
    char detail[256];
} infer_result;

typedef void (*infer_result_cb)(void *user, infer_result *r);

typedef struct infer_params {
    const char *model_dir;
    const char *backend;          /* cpu, cuda, auto */
    int threads;
    int64_t batch;                /* most streams per batched push (>= 1) */
    int64_t batch_prefill_tokens; /* most prefill tokens in one batched forward (0: none) */
    int64_t vision_window, text_rounds, prev_sink, prev_window, max_new_tokens;
} infer_params;

/* Start the thread; it loads the model and posts READY or LOAD_FAILED.  Runs on: loop. */
int infer_start(uv_loop_t *loop, const infer_params *p, infer_result_cb cb, void *user,
                infer **out, char *err);
/* Stop the thread, free every session and the engine.  Runs on: loop. */
void infer_stop(infer *inf);

/* The frame size streams must deliver (valid after READY).  Runs on: loop. */
void infer_frame_size(const infer *inf, int64_t *w, int64_t *h);
const char *infer_describe(const infer *inf);

/* Whether a session would take this query and previous text (NULL: none): 0, or -1
 * with err (256 bytes) saying which is too long.  Runs on: loop, after READY. */
int infer_check_texts(const infer *inf, const char *query, const char *previous_text,
                      char *err);

void infer_add(infer *inf, stream *s);                   /* Runs on: loop */
void infer_remove(infer *inf, stream *s);                /* Runs on: loop; then CLOSED */
void infer_set_query(infer *inf, stream *s, const char *query); /* Runs on: loop */

void infer_lock(infer *inf);    /* Runs on: any.  Guards every stream's chunk slots */
void infer_unlock(infer *inf);
/* With the lock held: a slot became PENDING (wake the thread), or wait until the
 * stream's pending slot is taken (files: back-pressure). */
void infer_signal(infer *inf);
void infer_wait_slot(infer *inf);
/* Whether s has a chunk waiting or running, or a result not yet delivered (a file's
 * `ended` waits for them).  Runs on: loop. */
bool infer_stream_busy(infer *inf, const stream *s);
/* Post a result from another thread (e.g. a GAP from ingest).  Runs on: any. */
void infer_post(infer *inf, const infer_result *r);

#endif
