/* stream.c — one stream: source, chunk assembly, events and history (see stream.h).
 *
 * Chunk assembly follows the product's frame rule: marks every 0.5 s of stream time;
 * the first frame at or after mark 2i fills chunk i's first frame, the first at or
 * after mark 2i+1 its second.  A frame can fill several marks (a missing frame takes
 * the next one); a hole of a second or more is reported as a gap instead.  Live
 * sources never wait: a chunk that finds the previous one still pending replaces it
 * and the skipped second becomes a gap notice.  Files wait for the engine instead.
 */
#include "stream.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "infer.h"
#include "ingest.h"
#include "log.h"
#include "ws.h"

const double stream_latency_bounds[LATENCY_BUCKETS] = {0.05, 0.1, 0.25, 0.5, 1,
                                                       1.5,  2,   3,    5,   10};

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double unix_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Files (and HTTP resources) are read as fast as the engine goes; everything else is a
 * live source that must not fall behind.  Ingest tells them apart. */
bool stream_source_is_live(const char *src) {
    bool live = false;
    char err[256];
    ingest_check_source(src, &live, err);
    return live;
}

/* ---- ingest side (inference lock held) ---- */

/* Seconds [from, to) will have no commentary, for `why` (the gap event's reason). */
static void post_gap(stream *s, int64_t from, int64_t to, const char *why) {
    infer_result r = {.kind = INFER_RESULT_GAP, .s = s, .t_start = (double)from,
                      .t_end = (double)to};
    snprintf(r.detail, sizeof r.detail, "%s", why);
    infer_post(s->app->inf, &r);
}

/* A FREE slot for chunk idx: a live stream reuses its oldest PENDING one (that second is
 * skipped); a file waits for the engine.  NULL if the stream is closing. */
static chunk_slot *take_slot(stream *s, int64_t idx) {
    infer *inf = s->app->inf;
    for (;;) {
        if (s->closing) return NULL;
        chunk_slot *oldest = NULL;
        for (int j = 0; j < STREAM_SLOTS; j++) {
            if (s->slots[j].state == CHUNK_FREE) {
                chunk_slot *c = &s->slots[j];
                c->state = CHUNK_FILLING;
                c->index = idx;
                c->n_frames = 0;
                return c;
            }
            if (s->slots[j].state == CHUNK_PENDING && (!oldest || s->slots[j].index < oldest->index))
                oldest = &s->slots[j];
        }
        if (s->live && oldest) {
            infer_unlock(inf);
            post_gap(s, oldest->index, oldest->index + 1, "engine behind");
            infer_lock(inf);
            if (oldest->state == CHUNK_PENDING) oldest->state = CHUNK_FREE;
            continue;
        }
        infer_wait_slot(inf);
    }
}

static void copy_frame(uint8_t *dst, const uint8_t *src, int64_t w, int64_t h, int64_t stride) {
    for (int64_t y = 0; y < h; y++) memcpy(dst + y * w * 3, src + y * stride, (size_t)(w * 3));
}

void stream_on_frame(void *user, const uint8_t *rgb, int64_t w, int64_t h, int64_t stride,
                     double t) {
    stream *s = user;
    infer *inf = s->app->inf;
    if (w != s->width || h != s->height || stride < 3 * w) return;
    if (s->snap_rgb) { /* the latest frame, for the snapshot (its own lock: never waits) */
        uv_mutex_lock(&s->snap_lock);
        copy_frame(s->snap_rgb, rgb, w, h, stride);
        s->snap_n++;
        uv_mutex_unlock(&s->snap_lock);
    }
    double now = mono_ms();
    infer_lock(inf);
    /* after stream_tick gave seconds up, a frame from before them (a source whose clock
     * stood still, a TCP backlog) would be dropped until its clock caught up: the stream's
     * time moves on by the difference instead, so it goes on at once after the gap */
    t += s->t_shift;
    if (s->gave_up && t < s->next_mark - 0.5) {
        s->t_shift += s->next_mark - t;
        t = s->next_mark;
    }
    s->gave_up = false;
    /* before any unlock below: a tick meanwhile must see this frame */
    s->last_frame_ms = now;
    s->last_t = t;
    /* a hole of a second or more: report the lost chunks rather than fill them all
     * with this one frame */
    if (t - s->next_mark >= 1.0) {
        int64_t from = (int64_t)floor(s->next_mark), to = (int64_t)floor(t);
        if (s->filling >= 0) {
            s->slots[s->filling].state = CHUNK_FREE;
            s->filling = -1;
        }
        if (to > from) {
            infer_unlock(inf);
            post_gap(s, from, to, "no frames from the source");
            infer_lock(inf);
        }
        s->next_mark = (double)to;
    }
    while (s->next_mark <= t && !s->closing) {
        int64_t idx = (int64_t)floor(s->next_mark);
        int half = s->next_mark - (double)idx >= 0.5;
        chunk_slot *c = s->filling >= 0 ? &s->slots[s->filling] : NULL;
        if (c && c->index != idx) { /* a chunk that never got its second frame */
            c->state = CHUNK_FREE;
            c = NULL;
            s->filling = -1;
        }
        if (!c) {
            c = take_slot(s, idx);
            if (!c) break;
            s->filling = (int)(c - s->slots);
        }
        copy_frame(c->rgb[half], rgb, w, h, stride);
        if (half && c->n_frames == 0) copy_frame(c->rgb[0], rgb, w, h, stride);
        c->n_frames = half ? 2 : 1;
        if (half) {
            /* complete: latency is measured from now, when the chunk's last frame arrived
             * (its content ends here; the engine may start at once) */
            c->ready_ms = now;
            if (!s->live) /* files: one pending chunk at a time, in order */
                while (!s->closing) {
                    bool pending = false;
                    for (int j = 0; j < STREAM_SLOTS; j++)
                        pending |= s->slots[j].state == CHUNK_PENDING;
                    if (!pending) break;
                    infer_wait_slot(inf);
                }
            /* live: only the newest chunk waits; an older one still waiting is skipped */
            for (int j = 0; s->live && j < STREAM_SLOTS; j++) {
                chunk_slot *o = &s->slots[j];
                if (o == c || o->state != CHUNK_PENDING) continue;
                o->state = CHUNK_FREE;
                int64_t from = o->index;
                infer_unlock(inf);
                post_gap(s, from, from + 1, "engine behind");
                infer_lock(inf);
            }
            c->state = CHUNK_PENDING;
            s->filling = -1;
            infer_signal(inf);
        }
        s->next_mark += 0.5;
    }
    infer_unlock(inf);
}

void stream_tick(stream *s) {
    /* only while live: a source that is reconnecting says so in its status, and its lost
     * seconds go out as one gap when frames come back */
    if (!s->live || s->state != PROTO_STATE_LIVE || s->closing) return;
    infer *inf = s->app->inf;
    int64_t from = 0, to = 0;
    infer_lock(inf);
    double quiet_s = (mono_ms() - s->last_frame_ms) / 1e3;
    if (s->last_frame_ms > 0 && quiet_s >= 2.0) {
        /* stream time runs on from the last frame's, as the source's clock would; chunk i
         * is lost once i + 2 has passed (a second after its end) without its frames */
        from = (int64_t)floor(s->next_mark);
        to = (int64_t)floor(s->last_t + quiet_s - 1.0);
        if (to > from) {
            if (s->filling >= 0) {
                s->slots[s->filling].state = CHUNK_FREE;
                s->filling = -1;
            }
            s->next_mark = (double)to;
            s->gave_up = true;
        }
    }
    infer_unlock(inf);
    if (to > from) post_gap(s, from, to, "no frames from the source");
}

/* ---- ingest state (loop) ---- */

/* The held-back `ended` status, sent now. */
static void emit_ended(stream *s) {
    proto_msg m = {0};
    s->state = PROTO_STATE_ENDED;
    m.status.state = s->state;
    m.status.detail = s->end_detail[0] ? s->end_detail : NULL;
    stream_emit(s, PROTO_MSG_STATUS, &m);
    free(s->end_detail);
    s->end_detail = NULL;
}

void stream_end_if_done(stream *s) {
    if (!s->end_detail || s->closing || infer_stream_busy(s->app->inf, s)) return;
    emit_ended(s);
}

static void on_ingest_state(void *user, ingest_state st, const char *detail, double retry_in_s) {
    stream *s = user;
    if (s->closing) return;
    /* a source that starts again (a new WHIP publisher) ends its last run first */
    if (s->end_detail && st != INGEST_ENDED) emit_ended(s);
    if (st == INGEST_ENDED) { /* after the commentary of its last chunks */
        free(s->end_detail);
        s->end_detail = strdup(detail ? detail : "");
        if (s->end_detail) {
            stream_end_if_done(s);
            return;
        }
    }
    proto_msg m = {0};
    static const proto_state map[] = {[INGEST_CONNECTING] = PROTO_STATE_CONNECTING,
                                      [INGEST_LIVE] = PROTO_STATE_LIVE,
                                      [INGEST_RECONNECTING] = PROTO_STATE_RECONNECTING,
                                      [INGEST_ENDED] = PROTO_STATE_ENDED};
    s->state = map[st];
    m.status.state = s->state;
    m.status.detail = detail ? (char *)detail : NULL;
    if (st == INGEST_RECONNECTING) {
        m.status.has_retry_in_s = true;
        m.status.retry_in_s = retry_in_s;
    }
    stream_emit(s, PROTO_MSG_STATUS, &m);
}

/* ---- lifecycle (loop) ---- */

/* The config's WHIP settings (ICE servers, port range) for a whip: ingest. */
static void ingest_params_whip(const app *a, ingest_params *ip) {
    ip->stun_server = a->cfg.whip.stun_server;
    ip->turn_server = a->cfg.whip.turn_server;
    ip->port_min = a->cfg.whip.port_min;
    ip->port_max = a->cfg.whip.port_max;
}

int stream_new(app *a, const char *id, const char *source, const char *query,
               const char *previous_text, bool from_config, stream **out, char *err) {
    *out = NULL;
    if (!proto_valid_id(id))
        return snprintf(err, 256, "stream '%.64s': id must match [A-Za-z0-9_-]{1,64}", id), 400;
    if (app_find_stream(a, id))
        return snprintf(err, 256, "stream '%s' already exists", id), 409;
    if (a->n_streams >= a->cfg.max_streams)
        return snprintf(err, 256, "stream '%s': the daemon runs max_streams = %lld streams "
                        "already", id, (long long)a->cfg.max_streams), 429;
    char terr[256];
    if (a->ready && infer_check_texts(a->inf, query, previous_text, terr)) /* else at start */
        return snprintf(err, 256, "stream '%s': %.180s", id, terr), 400;
    stream *s = calloc(1, sizeof *s);
    if (!s) return snprintf(err, 256, "out of memory"), 500;
    if (uv_mutex_init(&s->snap_lock) != 0) {
        free(s);
        return snprintf(err, 256, "out of memory"), 500;
    }
    s->app = a;
    snprintf(s->id, sizeof s->id, "%s", id);
    s->source = strdup(source);
    s->source_shown = config_mask_source(source);
    s->query = strdup(query ? query : "");
    s->previous_text = strdup(previous_text ? previous_text : "");
    s->live = stream_source_is_live(source);
    s->from_config = from_config;
    s->state = PROTO_STATE_CONNECTING;
    s->created = unix_now();
    s->filling = -1;
    int64_t hist = a->cfg.history;
    s->history = calloc((size_t)hist, sizeof *s->history);
    s->history_seq = calloc((size_t)hist, sizeof *s->history_seq);
    if (!s->source || !s->source_shown || !s->query || !s->previous_text || !s->history ||
        !s->history_seq) {
        stream_free(s);
        return snprintf(err, 256, "out of memory"), 500;
    }
    /* a file named over REST that is not there is the caller's mistake, answered now (a
     * config file's stream stays, and ends saying why, where the dashboard shows it) */
    char ferr[256];
    if (!from_config && ingest_check_file(source, ferr) != 0) {
        snprintf(err, 256, "stream '%s': %.200s", id, ferr);
        stream_free(s);
        return 400;
    }
    /* validate the source now: a bad URI is the caller's error, not a reconnect loop */
    ingest_params ip = {.id = s->id, .source = source, .width = a->frame_w > 0 ? a->frame_w : 448,
                        .height = a->frame_h > 0 ? a->frame_h : 252,
                        .reconnect_min_s = a->cfg.ingest.reconnect_min_s,
                        .reconnect_max_s = a->cfg.ingest.reconnect_max_s,
                        .latency_ms = a->cfg.ingest.latency_ms,
                        .stall_timeout_s = a->cfg.ingest.stall_timeout_s, .loop = a->loop};
    ingest_params_whip(a, &ip);
    ingest_callbacks cb = {.frame = stream_on_frame, .state = on_ingest_state};
    char ierr[256];
    if (ingest_new(&ip, &cb, s, &s->in, ierr) != 0) {
        snprintf(err, 256, "stream '%s': %.180s", id, ierr);
        stream_free(s);
        return 400;
    }
    if (app_add_stream(a, s) != 0) {
        stream_free(s);
        return snprintf(err, 256, "out of memory"), 500;
    }
    LOGI("stream[%s] added: %s%s", s->id, s->source_shown,
         s->live ? "" : " (file: paced by the engine)");
    *out = s;
    return 0;
}

/* stream_start's failure: logged, and the stream ends with why (it stays listed). */
static int not_started(stream *s, const char *why) {
    LOGE("stream[%s] not started: %s", s->id, why);
    free(s->end_detail);
    s->end_detail = strdup(why);
    if (s->end_detail) emit_ended(s);
    return -1;
}

int stream_start(stream *s) {
    app *a = s->app;
    char err[256];
    /* a stream made before the model was loaded: its texts are checked now */
    if (infer_check_texts(a->inf, s->query, s->previous_text, err)) return not_started(s, err);
    s->width = a->frame_w;
    s->height = a->frame_h;
    for (int j = 0; j < STREAM_SLOTS; j++)
        for (int k = 0; k < 2; k++) {
            s->slots[j].rgb[k] = malloc((size_t)(s->width * s->height * 3));
            if (!s->slots[j].rgb[k]) return not_started(s, "out of memory");
        }
    uint8_t *snap = malloc((size_t)(s->width * s->height * 3));
    if (!snap) return not_started(s, "out of memory");
    uv_mutex_lock(&s->snap_lock); /* no ingest runs yet; the lock is for the reader */
    s->snap_rgb = snap;
    s->snap_n = 0;
    uv_mutex_unlock(&s->snap_lock);
    /* re-create the ingest with the real frame size (it was validated at creation) */
    ingest_free(s->in);
    s->in = NULL;
    ingest_params ip = {.id = s->id, .source = s->source, .width = s->width, .height = s->height,
                        .reconnect_min_s = a->cfg.ingest.reconnect_min_s,
                        .reconnect_max_s = a->cfg.ingest.reconnect_max_s,
                        .latency_ms = a->cfg.ingest.latency_ms,
                        .stall_timeout_s = a->cfg.ingest.stall_timeout_s, .loop = a->loop};
    ingest_params_whip(a, &ip);
    ingest_callbacks cb = {.frame = stream_on_frame, .state = on_ingest_state};
    if (ingest_new(&ip, &cb, s, &s->in, err) != 0) return not_started(s, err);
    int rc = ingest_start(s->in);
    if (rc) return not_started(s, uv_strerror(rc));
    infer_add(a->inf, s);
    return 0;
}

void stream_remove(stream *s) {
    if (s->closing) return;
    app *a = s->app;
    if (a->inf) infer_lock(a->inf);
    s->closing = true; /* frame callbacks stop filling; waiting files wake */
    if (a->inf) infer_unlock(a->inf);
    if (s->in) ingest_stop(s->in);
    ws_close_stream_clients(s);
    app_forget_stream(a, s);
    LOGI("stream[%s] removed", s->id);
    if (a->inf && a->ready) {
        infer_remove(a->inf, s); /* INFER_RESULT_CLOSED frees it */
    } else {
        stream_free(s);
    }
}

int stream_set_query(stream *s, const char *query, char *err) {
    app *a = s->app;
    if (a->ready && infer_check_texts(a->inf, query, NULL, err)) return 400;
    char *q = strdup(query ? query : ""), *old;
    if (!q) return snprintf(err, 256, "out of memory"), 500;
    infer_lock(s->app->inf); /* the inference thread copies s->query under it */
    old = s->query;
    s->query = q;
    infer_unlock(s->app->inf);
    free(old);
    infer_set_query(s->app->inf, s, s->query);
    LOGI("stream[%s] query changed", s->id);
    return 0;
}

void stream_free(stream *s) {
    if (!s) return;
    ingest_free(s->in);
    for (int j = 0; j < STREAM_SLOTS; j++)
        for (int k = 0; k < 2; k++) free(s->slots[j].rgb[k]);
    free(s->snap_rgb);
    free(s->snap_jpeg);
    uv_mutex_destroy(&s->snap_lock);
    for (int64_t k = 0; s->history && k < s->app->cfg.history; k++) free(s->history[k]);
    free(s->history);
    free(s->history_seq);
    free(s->source);
    free(s->source_shown);
    free(s->query);
    free(s->previous_text);
    free(s->new_query);
    free(s->end_detail);
    free(s);
}

/* ---- events (loop) ---- */

void stream_emit(stream *s, proto_type type, proto_msg *ev) {
    char *stream_field = NULL, *wall = NULL;
    int64_t *seq = NULL;
    switch (type) {
    case PROTO_MSG_COMMENTARY:
        stream_field = ev->commentary.stream;
        wall = ev->commentary.wall_time;
        seq = &ev->commentary.seq;
        break;
    case PROTO_MSG_STATUS:
        stream_field = ev->status.stream;
        wall = ev->status.wall_time;
        seq = &ev->status.seq;
        break;
    case PROTO_MSG_GAP:
        stream_field = ev->gap.stream;
        wall = ev->gap.wall_time;
        seq = &ev->gap.seq;
        break;
    default: return;
    }
    snprintf(stream_field, PROTO_ID_SIZE, "%s", s->id);
    proto_now_wall_time(wall);
    *seq = (int64_t)(s->seq + 1);
    size_t len = 0;
    char err[256];
    if (proto_encode(type, ev, NULL, 0, &len, err) != PROTO_ENOSPC && len == 0) {
        LOGE("stream[%s] cannot encode a %s event: %s", s->id, proto_type_name(type), err);
        return;
    }
    char *buf = malloc(len + 1);
    if (!buf || proto_encode(type, ev, buf, len + 1, &len, err) != 0) {
        LOGE("stream[%s] cannot encode a %s event: %s", s->id, proto_type_name(type), err);
        free(buf);
        return;
    }
    s->seq++;
    int64_t cap = s->app->cfg.history;
    int64_t slot = (s->history_head + s->history_len) % cap;
    if (s->history_len == cap) { /* the oldest leaves */
        slot = s->history_head;
        free(s->history[slot]);
        s->history_head = (s->history_head + 1) % cap;
    } else {
        s->history_len++;
    }
    s->history[slot] = buf;
    s->history_seq[slot] = s->seq;
    ws_broadcast(s, buf, len);
}

void stream_history_since(stream *s, uint64_t since,
                          void (*cb)(void *user, const char *json, size_t len), void *user) {
    int64_t cap = s->app->cfg.history;
    for (int64_t k = 0; k < s->history_len; k++) {
        int64_t slot = (s->history_head + k) % cap;
        if (s->history_seq[slot] > since) cb(user, s->history[slot], strlen(s->history[slot]));
    }
}

uint64_t stream_history_first_seq(const stream *s) {
    return s->history_len ? s->history_seq[s->history_head] : 0;
}

int stream_snapshot_jpeg(stream *s, const uint8_t **jpeg, size_t *len) {
    *jpeg = NULL;
    *len = 0;
    uv_mutex_lock(&s->snap_lock);
    uint64_t n = s->snap_n;
    uint8_t *copy = NULL;
    if (n && n != s->snap_jpeg_n) { /* a new frame: copy it out, encode without the lock */
        copy = malloc((size_t)(s->width * s->height * 3));
        if (copy) memcpy(copy, s->snap_rgb, (size_t)(s->width * s->height * 3));
    }
    uv_mutex_unlock(&s->snap_lock);
    if (!n) return UV_EAGAIN;
    if (n != s->snap_jpeg_n) {
        if (!copy) return UV_ENOMEM;
        uint8_t *out = NULL;
        size_t out_len = 0;
        char err[256];
        int rc = ingest_encode_jpeg(copy, s->width, s->height, &out, &out_len, err);
        free(copy);
        if (rc) {
            LOGW("stream[%s] snapshot: %s", s->id, err);
            return rc;
        }
        free(s->snap_jpeg);
        s->snap_jpeg = out;
        s->snap_jpeg_len = out_len;
        s->snap_jpeg_n = n;
    }
    *jpeg = s->snap_jpeg;
    *len = s->snap_jpeg_len;
    return 0;
}

void stream_observe_latency(stream *s, double seconds) {
    int b = 0;
    while (b < LATENCY_BUCKETS && seconds > stream_latency_bounds[b]) b++;
    s->latency_buckets[b]++;
    s->latency_sum += seconds;
    s->recent_latency[s->n_recent % 64] = seconds;
    s->n_recent++;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double stream_latency_p50(const stream *s) {
    int64_t n = s->n_recent < 64 ? s->n_recent : 64;
    if (n == 0) return -1;
    double v[64];
    memcpy(v, s->recent_latency, sizeof(double) * (size_t)n);
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[n / 2];
}
