/* ws.c — WebSocket subscribers and fan-out (see ws.h). */
#include "ws.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "log.h"
#include "stream.h"

static app *the_app(const stream *s) {
    return s->app;
}

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Every client of every stream, for shutdown and the slow check. */
static ws_client *all_clients_of(stream *s) {
    return s->subscribers;
}

static int enqueue(ws_client *c, const char *json, size_t len) {
    if (c->q_len == c->q_cap) return -1;
    char *buf = malloc(LWS_PRE + len + 1);
    if (!buf) return -1;
    memcpy(buf + LWS_PRE, json, len);
    ws_msg *m = &c->q[(c->q_head + c->q_len) % c->q_cap];
    m->data = buf;
    m->len = len;
    c->q_len++;
    lws_callback_on_writable(c->wsi);
    return 0;
}

static void send_history(void *user, const char *json, size_t len) {
    ws_client *c = user;
    if (enqueue(c, json, len) != 0) c->dropped++;
}

ws_client *ws_client_open(struct lws *wsi, stream *s, int64_t since) {
    ws_client *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    app *a = the_app(s);
    c->q_cap = a->cfg.ws.queue + 2; /* room for hello and a dropped notice */
    if ((uint64_t)c->q_cap < (uint64_t)a->cfg.history + 2 && since >= 0)
        c->q_cap = a->cfg.history + 2; /* a resume may replay the whole history */
    c->q = calloc((size_t)c->q_cap, sizeof *c->q);
    if (!c->q) {
        free(c);
        return NULL;
    }
    c->wsi = wsi;
    c->s = s;
    c->next = s->subscribers;
    if (s->subscribers) s->subscribers->prev = c;
    s->subscribers = c;
    s->n_subscribers++;
    a->ws_clients++;

    proto_msg m = {0};
    snprintf(m.hello.stream, sizeof m.hello.stream, "%s", s->id);
    proto_now_wall_time(m.hello.wall_time);
    m.hello.last_seq = (int64_t)s->seq;
    m.hello.history_first_seq = (int64_t)stream_history_first_seq(s);
    /* resumed_from only when the resume is gapless (proto/schema/hello): every event after
     * `since` is still in the history, and `since` is not from the future (a daemon that
     * restarted counts from 1 again) */
    if (since >= 0 && since <= m.hello.last_seq &&
        (m.hello.history_first_seq == 0 || since + 1 >= m.hello.history_first_seq)) {
        m.hello.has_resumed_from = true;
        m.hello.resumed_from = since;
    }
    char buf[512];
    size_t len = 0;
    char err[256];
    if (proto_encode(PROTO_MSG_HELLO, &m, buf, sizeof buf, &len, err) == 0) enqueue(c, buf, len);
    if (since >= 0) stream_history_since(s, (uint64_t)since, send_history, c);
    LOGD("ws[%s] subscriber joined (since %lld), %lld now", s->id, (long long)since,
         (long long)s->n_subscribers);
    return c;
}

static void detach(ws_client *c) {
    stream *s = c->s;
    if (!s) return;
    if (c->prev) c->prev->next = c->next;
    else s->subscribers = c->next;
    if (c->next) c->next->prev = c->prev;
    s->n_subscribers--;
    the_app(s)->ws_clients--;
    c->s = NULL;
    c->next = c->prev = NULL;
}

void ws_client_closed(ws_client *c) {
    if (!c) return;
    detach(c);
    for (int64_t k = 0; k < c->q_len; k++) free(c->q[(c->q_head + k) % c->q_cap].data);
    free(c->q);
    free(c);
}

/* A notice for the events this client missed, once there is room again. */
static void maybe_notice(ws_client *c) {
    if (!c->dropped || !c->s || c->q_len > c->q_cap / 2) return;
    proto_msg m = {0};
    snprintf(m.dropped.stream, sizeof m.dropped.stream, "%s", c->s->id);
    proto_now_wall_time(m.dropped.wall_time);
    m.dropped.count = c->dropped;
    m.dropped.first_seq = c->drop_first > 0 ? c->drop_first : 1;
    m.dropped.last_seq = c->drop_last >= m.dropped.first_seq ? c->drop_last : m.dropped.first_seq;
    char buf[512], err[256];
    size_t len = 0;
    if (proto_encode(PROTO_MSG_DROPPED, &m, buf, sizeof buf, &len, err) == 0 &&
        enqueue(c, buf, len) == 0) {
        LOGI("ws[%s] slow subscriber missed %lld events (%lld..%lld)", c->s->id,
             (long long)c->dropped, (long long)m.dropped.first_seq,
             (long long)m.dropped.last_seq);
        c->dropped = 0;
        c->drop_first = c->drop_last = 0;
        c->slow_since_ms = 0;
    }
}

int ws_client_writeable(ws_client *c) {
    if (c->close_code && c->q_len == 0) {
        /* the close frame is written here: lws 4.1 drops the one lws_close_reason
         * prepares when a writeable callback returns -1 (the client would see 1006) */
        unsigned char frame[LWS_PRE + 4 + sizeof c->close_reason];
        size_t n = strlen(c->close_reason); /* < 64: fits a 125-byte control frame */
        unsigned char *f = frame + LWS_PRE;
        f[0] = 0x88; /* FIN + close; server frames are unmasked */
        f[1] = (unsigned char)(n + 2);
        f[2] = (unsigned char)(c->close_code >> 8);
        f[3] = (unsigned char)(c->close_code & 0xff);
        memcpy(f + 4, c->close_reason, n);
        lws_write(c->wsi, f, n + 4, LWS_WRITE_RAW);
        return -1;
    }
    if (c->q_len == 0) return 0;
    ws_msg *m = &c->q[c->q_head];
    int n = lws_write(c->wsi, (unsigned char *)m->data + LWS_PRE, m->len, LWS_WRITE_TEXT);
    free(m->data);
    m->data = NULL;
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_len--;
    if (n < (int)0) return -1;
    if (c->s) the_app(c->s)->messages_sent++;
    maybe_notice(c);
    if (c->q_len > 0 || c->close_code) lws_callback_on_writable(c->wsi);
    return 0;
}

int ws_client_receive(ws_client *c, size_t len, int fin) {
    c->rx_len += len;
    app *a = c->s ? the_app(c->s) : NULL;
    if (a && c->rx_len > (size_t)a->cfg.ws.max_message_bytes) {
        static const char why[] = "message too big";
        lws_close_reason(c->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why,
                         sizeof why - 1);
        LOGI("ws[%s] closed a client: message over %lld bytes", c->s->id,
             (long long)a->cfg.ws.max_message_bytes);
        return -1;
    }
    if (fin) c->rx_len = 0;
    return 0;
}

static int64_t seq_of(const char *json) {
    const char *p = strstr(json, "\"seq\":");
    return p ? strtoll(p + 6, NULL, 10) : 0;
}

void ws_broadcast(stream *s, const char *json, size_t len) {
    int64_t seq = seq_of(json);
    for (ws_client *c = all_clients_of(s); c; c = c->next) {
        if (c->close_code) continue;
        if (enqueue(c, json, len) == 0) continue;
        /* queue full: this client misses the event */
        if (!c->dropped) c->drop_first = seq;
        c->drop_last = seq;
        c->dropped++;
        the_app(s)->messages_dropped++;
        if (!c->slow_since_ms) c->slow_since_ms = mono_ms();
    }
}

static void close_client(ws_client *c, int code, const char *reason) {
    if (c->close_code) return;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    /* drop what is queued: a closing client gets no more events */
    for (int64_t k = 0; k < c->q_len; k++) free(c->q[(c->q_head + k) % c->q_cap].data);
    c->q_len = 0;
    lws_callback_on_writable(c->wsi);
    /* a client that reads nothing never makes the socket writeable again, so the close
     * frame may never go: drop the connection if it has not gone within 5 s */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
}

void ws_close_stream_clients(stream *s) {
    for (ws_client *c = s->subscribers, *next; c; c = next) {
        next = c->next;
        close_client(c, LWS_CLOSE_STATUS_GOINGAWAY, "stream removed");
        detach(c);
    }
}

static app *g_app; /* the daemon's single app, for shutdown and the tick */

void ws_close_all(int code, const char *reason) {
    if (!g_app) return;
    for (int64_t i = 0; i < g_app->n_streams; i++)
        for (ws_client *c = g_app->streams[i]->subscribers; c; c = c->next)
            close_client(c, code, reason);
}

void ws_tick(void) {
    if (!g_app) return;
    double now = mono_ms(), limit = g_app->cfg.ws.slow_close_s * 1e3;
    for (int64_t i = 0; i < g_app->n_streams; i++)
        for (ws_client *c = g_app->streams[i]->subscribers; c; c = c->next)
            if (c->slow_since_ms && now - c->slow_since_ms > limit && !c->close_code) {
                char why[64];
                snprintf(why, sizeof why, "too slow: %lld events dropped", (long long)c->dropped);
                LOGI("ws[%s] closing a subscriber: %s", g_app->streams[i]->id, why);
                g_app->ws_clients_closed_slow++;
                close_client(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, why);
            }
}

void ws_set_app(app *a);
void ws_set_app(app *a) {
    g_app = a;
}
