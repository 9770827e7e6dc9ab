/* infer.c — the inference thread (see infer.h).
 *
 * Invariants: only this thread touches the engine and the sessions; chunk slots change
 * state only under inf->mu (FILLING→PENDING by ingest, PENDING→RUNNING→FREE here); the
 * result queue is bounded (a full queue drops the result and counts it — the loop
 * drains it every wake-up, so it only fills if the loop stalls).
 * Thread: the functions say which thread runs them.
 */
#include "infer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "stream.h"
#include "vlm.h"

#define RESULT_QUEUE 256
#define MAX_ACTIVE 1024
#define MAX_BATCH 256 /* the config's upper bound for "batch" */

typedef enum cmd_kind { CMD_ADD, CMD_REMOVE } cmd_kind;

struct infer {
    uv_loop_t *loop;
    uv_async_t async;
    infer_result_cb cb;
    void *user;
    infer_params p;
    char model_dir[1024], backend[16];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;       /* work for the thread */
    pthread_cond_t slot_freed; /* a pending slot was taken (file back-pressure) */
    bool stop;

    /* guarded by mu */
    stream *active[MAX_ACTIVE];
    int64_t n_active, rr;
    stream *to_remove[MAX_ACTIVE];
    int64_t n_remove;
    infer_result queue[RESULT_QUEUE];
    int64_t q_head, q_len;
    uint64_t results_dropped;

    /* the engine (thread only, then read-only) */
    vlm_engine *engine;
    vlm_batch *batch;          /* run state for p.batch streams' chunks at once */
    /* one batched push: the picked streams and their slots (taken under mu), then
     * per stream its session, frames, result (thread only) */
    stream *pick[MAX_BATCH];
    chunk_slot *pick_slot[MAX_BATCH];
    infer_result res[MAX_BATCH];
    int rcs[MAX_BATCH];
    char errs[MAX_BATCH][VLM_ERR_LEN];
    vlm_session *ss[MAX_BATCH];
    vlm_frame frames[MAX_BATCH][2];
    double t0[MAX_BATCH], t1[MAX_BATCH];
    int64_t which[MAX_BATCH];
    vlm_chunk_result cres[MAX_BATCH];
    int brcs[MAX_BATCH];
    char berrs[MAX_BATCH][VLM_ERR_LEN];
    int64_t frame_w, frame_h;
    char desc[256];
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void infer_lock(infer *inf) {
    pthread_mutex_lock(&inf->mu);
}

void infer_unlock(infer *inf) {
    pthread_mutex_unlock(&inf->mu);
}

void infer_signal(infer *inf) {
    pthread_cond_signal(&inf->wake);
}

void infer_wait_slot(infer *inf) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 200 * 1000 * 1000; /* re-check stop/closing at least 5 times a second */
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&inf->slot_freed, &inf->mu, &ts);
}

/* With mu held. */
static void post_locked(infer *inf, const infer_result *r) {
    if (inf->q_len == RESULT_QUEUE) {
        inf->results_dropped++;
        return;
    }
    inf->queue[(inf->q_head + inf->q_len) % RESULT_QUEUE] = *r;
    inf->q_len++;
}

void infer_post(infer *inf, const infer_result *r) {
    pthread_mutex_lock(&inf->mu);
    post_locked(inf, r);
    pthread_mutex_unlock(&inf->mu);
    uv_async_send(&inf->async);
}

bool infer_stream_busy(infer *inf, const stream *s) {
    bool busy = false;
    pthread_mutex_lock(&inf->mu);
    for (int j = 0; j < STREAM_SLOTS && !busy; j++)
        busy = s->slots[j].state == CHUNK_PENDING || s->slots[j].state == CHUNK_RUNNING;
    for (int k = 0; k < inf->q_len && !busy; k++)
        busy = inf->queue[(inf->q_head + k) % RESULT_QUEUE].s == s;
    pthread_mutex_unlock(&inf->mu);
    return busy;
}

/* Runs on: loop.  Drain every queued result. */
static void async_cb(uv_async_t *h) {
    infer *inf = h->data;
    for (;;) {
        infer_result r;
        pthread_mutex_lock(&inf->mu);
        bool have = inf->q_len > 0;
        if (have) {
            r = inf->queue[inf->q_head];
            inf->q_head = (inf->q_head + 1) % RESULT_QUEUE;
            inf->q_len--;
        }
        pthread_mutex_unlock(&inf->mu);
        if (!have) break;
        inf->cb(inf->user, &r);
    }
}

static void engine_log(vlm_log_level level, const char *msg, void *user) {
    (void)user;
    switch (level) {
    case VLM_LOG_ERROR: LOGE("engine: %s", msg); break;
    case VLM_LOG_WARN: LOGW("engine: %s", msg); break;
    case VLM_LOG_INFO: LOGI("engine: %s", msg); break;
    default: LOGD("engine: %s", msg); break;
    }
}

static void policy_of(const infer *inf, vlm_policy *pol) {
    vlm_policy_default(inf->engine, pol);
    pol->vision_window = inf->p.vision_window;
    pol->text_rounds = inf->p.text_rounds;
    pol->prev_sink = inf->p.prev_sink;
    pol->prev_window = inf->p.prev_window;
    pol->max_new_tokens = inf->p.max_new_tokens;
}

/* Load the model and run one chunk through a throwaway session (warm-up). */
static int load(infer *inf, char *err) {
    vlm_set_log(engine_log, NULL);
    vlm_engine_params ep = {.backend = inf->backend, .n_threads = inf->p.threads};
    double t0 = now_ms();
    int rc = vlm_engine_load(inf->model_dir, &ep, &inf->engine, err);
    if (rc) return rc;
    if ((rc = vlm_engine_frame_size(inf->engine, 1280, 720, &inf->frame_w, &inf->frame_h, err)))
        return rc;
    vlm_policy pol;
    policy_of(inf, &pol);
    if ((rc = vlm_policy_validate(&pol, err))) return rc;
    vlm_session_params sp = {.frame_width = inf->frame_w, .frame_height = inf->frame_h,
                             .frames_at_model_size = true};
    vlm_session *s = NULL;
    if ((rc = vlm_session_new(inf->engine, &pol, &sp, &s, err))) return rc;
    size_t n = (size_t)(inf->frame_w * inf->frame_h * 3);
    uint8_t *px = malloc(n);
    if (!px) {
        vlm_session_free(s);
        return snprintf(err, 256, "warm-up: out of memory"), -1;
    }
    memset(px, 128, n);
    vlm_frame f[2] = {{px, inf->frame_w, inf->frame_h, inf->frame_w * 3},
                      {px, inf->frame_w, inf->frame_h, inf->frame_w * 3}};
    vlm_chunk_result res;
    rc = vlm_session_push_chunk(s, f, 0, 1, &res, err);
    free(px);
    vlm_session_free(s);
    if (!rc) rc = vlm_batch_new(inf->engine, inf->p.batch, inf->p.batch_prefill_tokens,
                                 &inf->batch, err);
    snprintf(inf->desc, sizeof inf->desc, "%s", vlm_engine_describe(inf->engine));
    LOGI("infer: model %s loaded (%s), frames %lldx%lld, up to %lld streams a batch, warm-up "
         "chunk %.0f ms, ready in %.1f s", inf->model_dir, inf->desc, (long long)inf->frame_w,
         (long long)inf->frame_h, (long long)inf->p.batch, res.ms_total, (now_ms() - t0) / 1e3);
    return rc;
}

/* Make s's session if it has none and apply a query set since its last chunk.
 * Runs on: infer. */
static int prepare_session(infer *inf, stream *s, char *err) {
    int rc = 0;
    if (!s->session) {
        vlm_policy pol;
        policy_of(inf, &pol);
        /* the query as it is now: the loop may replace s->query (stream_set_query) */
        pthread_mutex_lock(&inf->mu);
        char *query = strdup(s->query);
        pthread_mutex_unlock(&inf->mu);
        if (!query) return snprintf(err, 256, "stream %s: out of memory", s->id), VLM_ENOMEM;
        /* ingest scales every stream to the engine's frame size (stream.c) */
        /* a stream without a query gets the engine's default prompt, as the CLI does */
        vlm_session_params sp = {.frame_width = s->width, .frame_height = s->height,
                                 .frames_at_model_size = true,
                                 .previous_text = s->previous_text,
                                 .query = query[0] ? query : NULL};
        rc = vlm_session_new(inf->engine, &pol, &sp, &s->session, err);
        free(query);
    }
    pthread_mutex_lock(&inf->mu);
    char *q = s->query_changed ? s->new_query : NULL;
    s->query_changed = false;
    s->new_query = NULL;
    pthread_mutex_unlock(&inf->mu);
    if (!rc && q && vlm_session_set_query(s->session, q, err))
        LOGW("infer[%s] query not applied: %s", s->id, err);
    free(q);
    return rc;
}

/* One chunk of each of the n picked streams (their slots RUNNING): sessions made or
 * updated, then every chunk pushed in one batched call, then a result per stream.
 * Runs on: infer. */
static void run_chunks(infer *inf, int64_t n) {
    int64_t m = 0;
    for (int64_t k = 0; k < n; k++) {
        stream *s = inf->pick[k];
        chunk_slot *slot = inf->pick_slot[k];
        infer_result *r = &inf->res[k];
        *r = (infer_result){.kind = INFER_RESULT_COMMENTARY, .s = s};
        r->t_start = (double)slot->index;
        r->t_end = (double)slot->index + 1;
        r->ready_ms = slot->ready_ms;
        inf->rcs[k] = prepare_session(inf, s, inf->errs[k]);
        if (inf->rcs[k]) continue;
        inf->ss[m] = s->session;
        inf->frames[m][0] = (vlm_frame){slot->rgb[0], s->width, s->height, s->width * 3};
        inf->frames[m][1] = (vlm_frame){slot->rgb[1], s->width, s->height, s->width * 3};
        inf->t0[m] = r->t_start;
        inf->t1[m] = r->t_end;
        inf->which[m++] = k;
    }
    if (m > 0)
        vlm_batch_push_chunks(inf->batch, inf->ss, m, (const vlm_frame(*)[2])inf->frames, inf->t0,
                              inf->t1, inf->cres, inf->brcs, inf->berrs);
    for (int64_t j = 0; j < m; j++) {
        int64_t k = inf->which[j];
        inf->rcs[k] = inf->brcs[j];
        memcpy(inf->errs[k], inf->berrs[j], sizeof inf->errs[k]);
        if (!inf->rcs[k]) {
            infer_result *r = &inf->res[k];
            snprintf(r->text, sizeof r->text, "%s", inf->cres[j].text);
            r->engine_ms = inf->cres[j].ms_total;
            r->n_generated = inf->cres[j].n_generated;
            r->kv_tokens = inf->cres[j].n_cached;
        }
    }
    for (int64_t k = 0; k < n; k++) {
        stream *s = inf->pick[k];
        infer_result *r = &inf->res[k];
        if (inf->rcs[k]) {
            r->kind = inf->rcs[k] == VLM_EBACKEND ? INFER_RESULT_FATAL : INFER_RESULT_ERROR;
            snprintf(r->detail, sizeof r->detail, "%s", inf->errs[k]);
            /* start the stream over with a fresh session next chunk */
            vlm_session_free(s->session);
            s->session = NULL;
        }
    }
    pthread_mutex_lock(&inf->mu);
    for (int64_t k = 0; k < n; k++) {
        inf->pick_slot[k]->state = CHUNK_FREE;
        post_locked(inf, &inf->res[k]);
    }
    pthread_cond_broadcast(&inf->slot_freed);
    pthread_mutex_unlock(&inf->mu);
    uv_async_send(&inf->async);
}

static void *thread_main(void *arg) {
    infer *inf = arg;
    char err[256] = "";
    infer_result r = {.kind = INFER_RESULT_READY};
    if (load(inf, err)) {
        r.kind = INFER_RESULT_LOAD_FAILED;
        snprintf(r.detail, sizeof r.detail, "%s", err);
    }
    infer_post(inf, &r);
    if (r.kind == INFER_RESULT_LOAD_FAILED) return NULL;

    pthread_mutex_lock(&inf->mu);
    while (!inf->stop) {
        /* release removed streams' sessions (their ingest is stopped) */
        while (inf->n_remove > 0) {
            stream *s = inf->to_remove[--inf->n_remove];
            pthread_mutex_unlock(&inf->mu);
            vlm_session_free(s->session);
            s->session = NULL;
            pthread_mutex_lock(&inf->mu);
            infer_result c = {.kind = INFER_RESULT_CLOSED, .s = s};
            post_locked(inf, &c);
            uv_async_send(&inf->async);
        }
        /* round-robin: up to `batch` streams with a pending chunk, each its oldest one */
        int64_t n = 0, start = inf->rr;
        for (int64_t k = 0; k < inf->n_active && n < inf->p.batch; k++) {
            int64_t at = (start + k) % inf->n_active;
            stream *s = inf->active[at];
            chunk_slot *slot = NULL;
            for (int j = 0; j < STREAM_SLOTS; j++)
                if (s->slots[j].state == CHUNK_PENDING && (!slot || s->slots[j].index < slot->index))
                    slot = &s->slots[j];
            if (!slot) continue;
            slot->state = CHUNK_RUNNING;
            inf->pick[n] = s;
            inf->pick_slot[n++] = slot;
            inf->rr = (at + 1) % inf->n_active;
        }
        if (n == 0) {
            pthread_cond_wait(&inf->wake, &inf->mu);
            continue;
        }
        pthread_cond_broadcast(&inf->slot_freed);
        pthread_mutex_unlock(&inf->mu);
        run_chunks(inf, n);
        pthread_mutex_lock(&inf->mu);
    }
    /* stopping: release every session */
    for (int64_t k = 0; k < inf->n_active; k++) {
        vlm_session_free(inf->active[k]->session);
        inf->active[k]->session = NULL;
    }
    pthread_mutex_unlock(&inf->mu);
    return NULL;
}

int infer_start(uv_loop_t *loop, const infer_params *p, infer_result_cb cb, void *user,
                infer **out, char *err) {
    infer *inf = calloc(1, sizeof *inf);
    if (!inf) return snprintf(err, 256, "infer: out of memory"), -1;
    inf->loop = loop;
    inf->cb = cb;
    inf->user = user;
    inf->p = *p;
    if (inf->p.batch < 1) inf->p.batch = 1;
    if (inf->p.batch > MAX_BATCH) inf->p.batch = MAX_BATCH;
    snprintf(inf->model_dir, sizeof inf->model_dir, "%s", p->model_dir);
    snprintf(inf->backend, sizeof inf->backend, "%s", p->backend ? p->backend : "auto");
    pthread_mutex_init(&inf->mu, NULL);
    pthread_cond_init(&inf->wake, NULL);
    pthread_cond_init(&inf->slot_freed, NULL);
    uv_async_init(loop, &inf->async, async_cb);
    inf->async.data = inf;
    if (pthread_create(&inf->thread, NULL, thread_main, inf) != 0) {
        snprintf(err, 256, "infer: cannot start the inference thread");
        uv_close((uv_handle_t *)&inf->async, NULL);
        return -1; /* inf is leaked deliberately: the async handle closes later */
    }
    *out = inf;
    return 0;
}

static void async_closed(uv_handle_t *h) {
    infer *inf = h->data;
    vlm_batch_free(inf->batch);
    if (inf->engine) vlm_engine_free(inf->engine);
    pthread_mutex_destroy(&inf->mu);
    pthread_cond_destroy(&inf->wake);
    pthread_cond_destroy(&inf->slot_freed);
    free(inf);
}

void infer_stop(infer *inf) {
    if (!inf) return;
    pthread_mutex_lock(&inf->mu);
    inf->stop = true;
    pthread_cond_broadcast(&inf->wake);
    pthread_cond_broadcast(&inf->slot_freed);
    pthread_mutex_unlock(&inf->mu);
    pthread_join(inf->thread, NULL);
    /* deliver what the thread posted, then release streams still waiting for removal
     * (the thread is gone: their CLOSED results come from here) */
    async_cb(&inf->async);
    while (inf->n_remove > 0) {
        stream *s = inf->to_remove[--inf->n_remove];
        vlm_session_free(s->session);
        s->session = NULL;
        infer_result c = {.kind = INFER_RESULT_CLOSED, .s = s};
        inf->cb(inf->user, &c);
    }
    uv_close((uv_handle_t *)&inf->async, async_closed);
}

void infer_frame_size(const infer *inf, int64_t *w, int64_t *h) {
    *w = inf->frame_w;
    *h = inf->frame_h;
}

const char *infer_describe(const infer *inf) {
    return inf->desc;
}

void infer_add(infer *inf, stream *s) {
    pthread_mutex_lock(&inf->mu);
    if (inf->n_active < MAX_ACTIVE) inf->active[inf->n_active++] = s;
    pthread_mutex_unlock(&inf->mu);
}

void infer_remove(infer *inf, stream *s) {
    pthread_mutex_lock(&inf->mu);
    for (int64_t k = 0; k < inf->n_active; k++)
        if (inf->active[k] == s) {
            inf->active[k] = inf->active[--inf->n_active];
            break;
        }
    /* a RUNNING chunk finishes first: the thread handles removals between chunks */
    inf->to_remove[inf->n_remove++] = s;
    for (int j = 0; j < STREAM_SLOTS; j++)
        if (s->slots[j].state == CHUNK_PENDING) s->slots[j].state = CHUNK_FREE;
    pthread_cond_broadcast(&inf->wake);
    pthread_cond_broadcast(&inf->slot_freed);
    pthread_mutex_unlock(&inf->mu);
}

int infer_check_texts(const infer *inf, const char *query, const char *previous_text,
                      char *err) {
    char verr[VLM_ERR_LEN];
    if (!inf->engine || !vlm_engine_check_texts(inf->engine, query, previous_text, verr)) return 0;
    snprintf(err, 256, "%s", verr);
    return -1;
}

void infer_set_query(infer *inf, stream *s, const char *query) {
    char *q = strdup(query ? query : "");
    pthread_mutex_lock(&inf->mu);
    free(s->new_query);
    s->new_query = q;
    s->query_changed = true;
    pthread_mutex_unlock(&inf->mu);
}
