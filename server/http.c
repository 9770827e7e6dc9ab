/* http.c — HTTP and WebSocket on one port: libwebsockets on the daemon's libuv loop.
 *
 * Routes (JSON bodies are the proto/ messages; errors are proto `error` bodies):
 *   GET  /health                      200 while the loop runs
 *   GET  /ready                       503 + reason until the model is warm, then 200
 *   GET  /metrics                     Prometheus text
 *   GET  /v1/streams                  stream_list
 *   POST /v1/streams                  stream_create -> 201 stream_info (+ Location)
 *   GET  /v1/streams/ID               stream_info
 *   DELETE /v1/streams/ID             204
 *   PUT  /v1/streams/ID/query         query_update -> 200 stream_info (also PATCH /v1/streams/ID)
 *   GET  /v1/streams/ID/captions.vtt  the recent commentary as WebVTT
 *   GET  /v1/streams/ID/snapshot.jpg  the latest frame (JPEG; 404 before the first)
 *   WS   /v1/streams/ID/events (?since=SEQ)  events (ws.c)
 *   POST /v1/whip/ID · DELETE /v1/whip/ID/SESSION   WHIP ingest (whip.c; the answer to a
 *                                     POST is deferred until ICE gathering completes)
 *   GET  /                            the dashboard (web/index.html)
 *   GET  /overlay/ID                  the caption overlay for OBS (web/overlay.html)
 *   GET  /web/NAME                    the pages' scripts and styles (web/, compiled in)
 * With a token configured, everything under /v1/ needs `Authorization: Bearer TOKEN` (or ?token=TOKEN,
 * for browsers' WebSockets); /health, /ready, /metrics and the pages stay open (the pages
 * hold no data: their scripts call /v1/ with the token the user gives them).
 * Every request is answered from the writeable callback (headers, then body), so a
 * response never blocks the loop; a deferred one (WHIP) keeps the request's wsi until
 * http_reply_later() or CLOSED_HTTP.  Runs on: loop.
 */
#include "http.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <net/if.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app.h"
#include "log.h"
#include "metrics.h"
#include "stream.h"
#include "vtt.h"
#include "web/assets.h"
#include "whip.h"
#include "ws.h"

#define MAX_BODY (64 * 1024)

enum { M_GET, M_POST, M_PUT, M_PATCH, M_DELETE, M_OPTIONS, M_HEAD, M_OTHER };

typedef struct http_session {
    int method;
    char path[512];
    char *body;
    size_t body_len;
    bool body_too_big;
    bool head;        /* a HEAD request: routed as GET, answered without the body */
    bool close_after; /* close the connection after the answer (a body we cannot read) */
    bool routed; /* route() ran for this request (lws repeats BODY_COMPLETION while a
                  * pipelined request waits in its buffer) */
    /* the response */
    int status;
    const char *ctype;
    char *resp;
    size_t resp_len;
    char location[256];
    struct {
        const char *name, *value;
    } hdr[5]; /* extra headers (static strings) */
    int n_hdr;
    int phase; /* 0: headers next, 1: body next */
    ws_client *ws;
} http_session;

static app *g_app;

/* ---- helpers ---- */

static int method_of(struct lws *wsi) {
    static const struct {
        enum lws_token_indexes tok;
        int m;
    } t[] = {{WSI_TOKEN_GET_URI, M_GET},       {WSI_TOKEN_POST_URI, M_POST},
             {WSI_TOKEN_PUT_URI, M_PUT},       {WSI_TOKEN_PATCH_URI, M_PATCH},
             {WSI_TOKEN_DELETE_URI, M_DELETE}, {WSI_TOKEN_OPTIONS_URI, M_OPTIONS},
             {WSI_TOKEN_HEAD_URI, M_HEAD}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (lws_hdr_total_length(wsi, t[i].tok) > 0) return t[i].m;
    return M_OTHER;
}

/* Constant-time comparison for the token. */
static bool same_secret(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la && i < lb; i++) d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

static bool authorized(struct lws *wsi) {
    const char *token = g_app->cfg.token;
    if (!token[0]) return true;
    char h[512];
    if (lws_hdr_copy(wsi, h, sizeof h, WSI_TOKEN_HTTP_AUTHORIZATION) > 0 &&
        strncasecmp(h, "Bearer ", 7) == 0 && same_secret(h + 7, token)) /* RFC 7235: any case */
        return true;
    char q[300];
    const char *v = lws_get_urlarg_by_name(wsi, "token=", q, sizeof q);
    return v && same_secret(v, token);
}

/* A request a browser sent from a page of another origin?  Browsers send Origin on every
 * cross-origin POST and WebSocket handshake; curl and other non-browser clients send none.
 * Without this, any web page the user opens can POST /v1/streams (a text/plain body is a
 * CORS "simple request": no preflight) and read any stream's events over WebSocket. */
static bool same_origin(struct lws *wsi) {
    char origin[256], host[256];
    if (lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) <= 0) return true;
    if (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0) return false;
    const char *o = strstr(origin, "://");
    return o && !strcasecmp(o + 3, host);
}

static void add_header(http_session *pss, const char *name, const char *value) {
    if (pss->n_hdr < (int)(sizeof pss->hdr / sizeof pss->hdr[0])) {
        pss->hdr[pss->n_hdr].name = name;
        pss->hdr[pss->n_hdr].value = value;
        pss->n_hdr++;
    }
}

static void respond(http_session *pss, int status, const char *ctype, char *body, size_t len) {
    free(pss->resp);
    pss->status = status;
    pss->ctype = ctype;
    pss->resp = body;
    pss->resp_len = len;
    pss->phase = 0;
}

static void respond_json(http_session *pss, int status, proto_type type, const proto_msg *m) {
    size_t len = 0;
    char err[256];
    proto_encode(type, m, NULL, 0, &len, err);
    char *buf = malloc(len + 1);
    if (buf && proto_encode(type, m, buf, len + 1, &len, err) == 0) {
        respond(pss, status, "application/json", buf, len);
        return;
    }
    free(buf);
    LOGE("http: cannot encode a %s response: %s", proto_type_name(type), err);
    respond(pss, 500, "text/plain", strdup("internal error\n"), 15);
}

/* Replace every byte that is not part of valid UTF-8 (or a control character) with '?',
 * so a message that quotes the request path can always be encoded as JSON. */
static void utf8_scrub(char *m) {
    unsigned char *p = (unsigned char *)m;
    while (*p) {
        int n = *p < 0x80            ? 1
                : (*p & 0xe0) == 0xc0 ? 2
                : (*p & 0xf0) == 0xe0 ? 3
                : (*p & 0xf8) == 0xf0 ? 4
                                      : 0;
        bool ok = n > 0 && !(n == 2 && *p < 0xc2) && !(n == 4 && *p > 0xf4);
        for (int k = 1; ok && k < n; k++) ok = (p[k] & 0xc0) == 0x80;
        if (ok && n == 3) ok = !(p[0] == 0xe0 && p[1] < 0xa0) && !(p[0] == 0xed && p[1] > 0x9f);
        if (ok && n == 4) ok = !(p[0] == 0xf0 && p[1] < 0x90) && !(p[0] == 0xf4 && p[1] > 0x8f);
        if (!ok || *p < 0x20 || *p == 0x7f) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

static void respond_error(http_session *pss, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void respond_error(http_session *pss, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    utf8_scrub(msg);
    proto_msg m = {.error = {.code = status, .message = msg}};
    respond_json(pss, status, PROTO_MSG_ERROR, &m);
}

/* 405 for a resource that exists, with the Allow header RFC 9110 §15.5.6 requires. */
static void respond_405(http_session *pss, const char *allow) {
    respond_error(pss, 405, "%s: method not allowed, use %s", pss->path, allow);
    add_header(pss, "allow:", allow);
}

static void respond_text(http_session *pss, int status, const char *ctype, const char *text) {
    respond(pss, status, ctype, strdup(text), strlen(text));
}

static void stream_info(const stream *s, proto_stream_info *info) {
    memset(info, 0, sizeof *info);
    snprintf(info->id, sizeof info->id, "%s", s->id);
    info->source = s->source_shown;
    info->query = s->query;
    info->state = s->state;
    info->chunks = (int64_t)s->chunks_processed;
    info->last_seq = (int64_t)s->seq;
    info->kv_tokens = s->kv_tokens;
    double p50 = stream_latency_p50(s);
    info->has_latency_ms_p50 = p50 >= 0;
    info->latency_ms_p50 = p50 >= 0 ? p50 * 1e3 : 0;
    proto_format_wall_time(s->created, info->created);
}

static void respond_stream(http_session *pss, int status, const stream *s) {
    proto_msg m;
    stream_info(s, &m.stream_info);
    respond_json(pss, status, PROTO_MSG_STREAM_INFO, &m);
}

/* ---- WebVTT ---- */

/* One cue per commentary event of the history (proto/vtt.c writes them). */
static void vtt_add(void *user, const char *json, size_t len) {
    FILE *f = user;
    proto_msg m;
    char err[256];
    if (proto_message_type(json, len) != PROTO_MSG_COMMENTARY ||
        proto_decode(PROTO_MSG_COMMENTARY, json, len, &m, err) != 0)
        return;
    proto_vtt_write_cue(f, m.commentary.t_start, m.commentary.t_end, m.commentary.text);
    proto_msg_deinit(PROTO_MSG_COMMENTARY, &m);
}

/* ---- routing ---- */

/* "/v1/streams/ID[/rest]" -> id and rest; false if not that shape. */
static bool split_stream_path(const char *path, char id[PROTO_ID_SIZE], const char **rest) {
    const char *p = path + strlen("/v1/streams/");
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= PROTO_ID_SIZE) return false;
    memcpy(id, p, n);
    id[n] = 0;
    *rest = slash ? slash : "";
    return true;
}

static void route_streams(struct lws *wsi, http_session *pss) {
    app *a = g_app;
    (void)wsi;
    if (!strcmp(pss->path, "/v1/streams") || !strcmp(pss->path, "/v1/streams/")) {
        if (pss->method == M_GET) {
            proto_msg m = {0};
            m.stream_list.n_streams = a->n_streams;
            m.stream_list.streams = calloc((size_t)(a->n_streams + 1), sizeof(proto_stream_info));
            for (int64_t i = 0; i < a->n_streams; i++)
                stream_info(a->streams[i], &m.stream_list.streams[i]);
            respond_json(pss, 200, PROTO_MSG_STREAM_LIST, &m);
            free(m.stream_list.streams);
            return;
        }
        if (pss->method != M_POST) {
            respond_405(pss, "GET, HEAD, POST");
            return;
        }
        proto_msg m;
        char err[256];
        if (proto_decode(PROTO_MSG_STREAM_CREATE, pss->body ? pss->body : "", pss->body_len, &m,
                         err) != 0) {
            respond_error(pss, 400, "%s", err);
            return;
        }
        stream *s = NULL;
        int status = stream_new(a, m.stream_create.id, m.stream_create.source,
                                m.stream_create.query, m.stream_create.previous_text, false, &s,
                                err);
        proto_msg_deinit(PROTO_MSG_STREAM_CREATE, &m);
        if (status) {
            respond_error(pss, status, "%s", err);
            return;
        }
        if (a->ready) stream_start(s);
        snprintf(pss->location, sizeof pss->location, "/v1/streams/%s", s->id);
        respond_stream(pss, 201, s);
        return;
    }
    char id[PROTO_ID_SIZE];
    const char *rest;
    if (!split_stream_path(pss->path, id, &rest)) {
        respond_error(pss, 404, "%s: no such resource", pss->path);
        return;
    }
    stream *s = app_find_stream(a, id);
    if (!s) {
        respond_error(pss, 404, "stream '%s' not found", id);
        return;
    }
    bool query_update = (!strcmp(rest, "/query") && (pss->method == M_PUT || pss->method == M_POST)) ||
                        (!rest[0] && pss->method == M_PATCH);
    if (!rest[0] && pss->method == M_GET) {
        respond_stream(pss, 200, s);
    } else if (!rest[0] && pss->method == M_DELETE) {
        stream_remove(s);
        respond(pss, 204, "application/json", NULL, 0);
    } else if (query_update) {
        proto_msg m;
        char err[256];
        if (proto_decode(PROTO_MSG_QUERY_UPDATE, pss->body ? pss->body : "", pss->body_len, &m,
                         err) != 0) {
            respond_error(pss, 400, "%s", err);
            return;
        }
        int rc = stream_set_query(s, m.query_update.query, err);
        proto_msg_deinit(PROTO_MSG_QUERY_UPDATE, &m);
        if (rc) respond_error(pss, rc, "stream '%s': %s", s->id, err);
        else respond_stream(pss, 200, s);
    } else if (!strcmp(rest, "/captions.vtt") && pss->method == M_GET) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f) {
            respond_error(pss, 500, "out of memory");
            return;
        }
        proto_vtt_write_header(f);
        stream_history_since(s, 0, vtt_add, f);
        fclose(f);
        respond(pss, 200, "text/vtt; charset=utf-8", text, len);
    } else if (!strcmp(rest, "/snapshot.jpg") && pss->method == M_GET) {
        const uint8_t *jpeg;
        size_t len;
        int rc = stream_snapshot_jpeg(s, &jpeg, &len);
        char *copy = rc == 0 ? malloc(len) : NULL;
        if (copy) {
            memcpy(copy, jpeg, len);
            respond(pss, 200, "image/jpeg", copy, len);
        } else if (rc == UV_EAGAIN) {
            respond_error(pss, 404, "stream '%s' has no frame yet", s->id);
        } else {
            respond_error(pss, 500, "stream '%s': cannot encode the snapshot", s->id);
        }
    } else if (!strcmp(rest, "/events")) {
        if (pss->method != M_GET) {
            respond_405(pss, "GET");
            return;
        }
        respond_error(pss, 426, "%s is a WebSocket endpoint: upgrade required", pss->path);
        add_header(pss, "upgrade:", "websocket"); /* RFC 9110 §15.5.22: a 426 names it */
        add_header(pss, "connection:", "upgrade");
    } else if (!rest[0]) {
        respond_405(pss, "GET, HEAD, PATCH, DELETE");
    } else if (!strcmp(rest, "/query")) {
        respond_405(pss, "PUT, POST");
    } else if (!strcmp(rest, "/captions.vtt") || !strcmp(rest, "/snapshot.jpg")) {
        respond_405(pss, "GET, HEAD");
    } else {
        respond_error(pss, 404, "%s: no such resource", pss->path);
    }
}

/* A page or asset compiled in from web/: 200 with a copy, or 404. */
static void respond_asset(http_session *pss, const char *name) {
    const web_asset *w = NULL;
    for (size_t i = 0; i < web_n_assets; i++)
        if (!strcmp(web_assets[i].name, name)) w = &web_assets[i];
    if (!w) {
        respond_error(pss, 404, "%s: no such resource", pss->path);
        return;
    }
    if (pss->method != M_GET) {
        respond_405(pss, "GET, HEAD");
        return;
    }
    char *copy = malloc(w->len ? w->len : 1);
    if (!copy) {
        respond_error(pss, 500, "out of memory");
        return;
    }
    memcpy(copy, w->data, w->len);
    respond(pss, 200, w->ctype, copy, w->len);
    add_header(pss, "x-content-type-options:", "nosniff");
}

static const char *method_name(int m) {
    static const char *names[] = {"GET",    "POST",    "PUT",  "PATCH",
                                  "DELETE", "OPTIONS", "HEAD", "OTHER"};
    return names[m];
}

/* /v1/whip/…: whip.c answers now or later (http_reply_later). */
static void route_whip(struct lws *wsi, http_session *pss) {
    char ctype[128] = "";
    lws_hdr_copy(wsi, ctype, sizeof ctype, WSI_TOKEN_HTTP_CONTENT_TYPE);
    whip_response r;
    int rc = whip_request(g_app, wsi, method_name(pss->method), pss->path, ctype, pss->body,
                          pss->body_len, &r);
    if (rc == WHIP_DEFERRED) return; /* pss->status stays 0: nothing to write yet */
    respond(pss, r.status, r.ctype, r.body, r.len);
    if (r.location[0]) snprintf(pss->location, sizeof pss->location, "%s", r.location);
    add_header(pss, "access-control-allow-origin:", "*");
    if (r.status == 405) /* RFC 9110 §15.5.6: the endpoint takes POST, a session DELETE */
        add_header(pss, "allow:",
                   strchr(pss->path + 9, '/') ? "DELETE, OPTIONS" : "POST, OPTIONS");
}

static void route(struct lws *wsi, http_session *pss) {
    app *a = g_app;
    pss->routed = true;
    if (pss->body_too_big) {
        respond_error(pss, 413, "request body over %d bytes", MAX_BODY);
    } else if ((!strcmp(pss->path, "/health") || !strcmp(pss->path, "/ready") ||
                !strcmp(pss->path, "/metrics")) && pss->method != M_GET) {
        respond_405(pss, "GET, HEAD");
    } else if (!strcmp(pss->path, "/health")) {
        respond_text(pss, 200, "application/json", "{\"status\":\"ok\"}\n");
    } else if (!strcmp(pss->path, "/ready")) {
        if (a->ready && !a->shutting_down) {
            respond_text(pss, 200, "application/json", "{\"ready\":true}\n");
        } else {
            json_t *o = json_pack("{s:b,s:s}", "ready", 0, "reason",
                                  a->shutting_down && !a->exit_code ? "shutting down"
                                                                    : a->not_ready);
            char *txt = json_dumps(o, JSON_COMPACT);
            json_decref(o);
            respond(pss, 503, "application/json", txt, txt ? strlen(txt) : 0);
        }
    } else if (!strcmp(pss->path, "/metrics")) {
        size_t len = 0;
        char *txt = metrics_render(a, &len);
        if (txt) respond(pss, 200, "text/plain; version=0.0.4; charset=utf-8", txt, len);
        else respond_error(pss, 500, "out of memory");
    } else if (!strncmp(pss->path, "/v1/streams", 11) &&
               (pss->path[11] == 0 || pss->path[11] == '/')) {
        if (!authorized(wsi)) {
            respond_error(pss, 401, "missing or wrong bearer token");
            return;
        }
        if (!a->cfg.token[0] && pss->method != M_GET && !same_origin(wsi)) {
            /* with a token, the token decides: a page cannot send it without knowing it */
            respond_error(pss, 403, "%s: cross-origin request refused (set a token to allow "
                          "other origins)", pss->path);
            return;
        }
        route_streams(wsi, pss);
    } else if (!strncmp(pss->path, "/v1/whip/", 9)) {
        if (!authorized(wsi)) {
            respond_error(pss, 401, "missing or wrong bearer token");
            add_header(pss, "access-control-allow-origin:", "*");
            return;
        }
        route_whip(wsi, pss);
    } else if (!strcmp(pss->path, "/") || !strcmp(pss->path, "/index.html")) {
        respond_asset(pss, "index.html");
    } else if (!strncmp(pss->path, "/overlay/", 9) && pss->path[9] && !strchr(pss->path + 9, '/')) {
        respond_asset(pss, "overlay.html");
    } else if (!strncmp(pss->path, "/web/", 5) && pss->path[5] && !strchr(pss->path + 5, '/') &&
               strcmp(pss->path + 5, "index.html") && strcmp(pss->path + 5, "overlay.html")) {
        respond_asset(pss, pss->path + 5);
    } else {
        respond_error(pss, 404, "%s: no such resource", pss->path);
    }
}

void http_reply_later(void *conn, int status, const char *ctype, char *body, size_t len,
                      const char *location) {
    struct lws *wsi = conn;
    http_session *pss = wsi ? lws_wsi_user(wsi) : NULL;
    if (!pss) {
        free(body);
        return;
    }
    respond(pss, status, ctype, body, len);
    if (location) snprintf(pss->location, sizeof pss->location, "%s", location);
    add_header(pss, "access-control-allow-origin:", "*");
    if (location) add_header(pss, "access-control-expose-headers:", "Location");
    lws_callback_on_writable(wsi);
}

/* ---- lws callback ---- */

static int write_response(struct lws *wsi, http_session *pss) {
    if (pss->phase == 0) {
        unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
                                           *end = buf + sizeof buf - 1;
        if (pss->status == 204 || pss->status == 304) {
            /* RFC 9110 §8.6: no Content-Length (and no content) in a 204 */
            if (lws_add_http_header_status(wsi, (unsigned int)pss->status, &p, end)) return -1;
        } else if (lws_add_http_common_headers(wsi, (unsigned int)pss->status, pss->ctype,
                                               (lws_filepos_t)pss->resp_len, &p, end)) {
            return -1;
        }
        if (pss->location[0] &&
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_LOCATION,
                                         (unsigned char *)pss->location,
                                         (int)strlen(pss->location), &p, end))
            return -1;
        if (pss->status == 401) {
            static const char auth[] = "Bearer";
            if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE,
                                             (const unsigned char *)auth, 6, &p, end))
                return -1;
        }
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                         (const unsigned char *)"no-store", 8, &p, end))
            return -1;
        for (int i = 0; i < pss->n_hdr; i++)
            if (lws_add_http_header_by_name(wsi, (const unsigned char *)pss->hdr[i].name,
                                            (const unsigned char *)pss->hdr[i].value,
                                            (int)strlen(pss->hdr[i].value), &p, end))
                return -1;
        if (pss->close_after &&
            lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close",
                                         5, &p, end))
            return -1;
        if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
        pss->phase = 1;
        if (pss->head && pss->resp_len) { /* RFC 9110 §9.3.2: the headers of a GET, no content */
            free(pss->resp);
            pss->resp = NULL;
            pss->resp_len = 0;
            if (pss->close_after) return -1;
            return lws_http_transaction_completed(wsi) ? -1 : 0;
        }
        if (pss->resp_len) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    } else if (pss->resp_len) {
        unsigned char *buf = malloc(LWS_PRE + pss->resp_len);
        if (!buf) return -1;
        memcpy(buf + LWS_PRE, pss->resp, pss->resp_len);
        int n = lws_write(wsi, buf + LWS_PRE, pss->resp_len, LWS_WRITE_HTTP_FINAL);
        free(buf);
        if (n < 0) return -1;
    }
    free(pss->resp);
    pss->resp = NULL;
    if (pss->close_after) return -1;
    if (lws_http_transaction_completed(wsi)) return -1;
    return 0;
}

/* RFC 9112 §6.3: a request whose length is ambiguous is refused, and its connection closed.
 * lws reads the first of two Content-Lengths; behind a proxy that reads the other, the bytes
 * lws takes as the next request would be someone else's (request smuggling).  (§3.2's 400
 * for an HTTP/1.1 request without Host is not done: lws 4.1 does not tell 1.0 from 1.1.) */
static bool framing_ok(struct lws *wsi, http_session *pss) {
    char cl[32];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (n > 0) {
        bool digits = n < (int)sizeof cl && lws_hdr_copy(wsi, cl, sizeof cl,
                                                        WSI_TOKEN_HTTP_CONTENT_LENGTH) == n;
        int i = 0, end = n, d = 0;
        while (digits && i < end && (cl[i] == ' ' || cl[i] == '\t')) i++; /* RFC 9110 §5.5 */
        while (digits && end > i && (cl[end - 1] == ' ' || cl[end - 1] == '\t')) end--;
        for (; digits && i < end; i++, d++) digits = cl[i] >= '0' && cl[i] <= '9';
        if (!digits || !d || lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, 1) > 0) {
            respond_error(pss, 400, "%s: Content-Length must be one decimal number", pss->path);
            return false;
        }
    } else if (pss->method == M_POST || pss->method == M_PUT || pss->method == M_PATCH) {
        /* lws would take whatever follows as the body (up to its own limit), a pipelined
         * request included */
        respond_error(pss, 411, "%s: send the body with a Content-Length", pss->path);
        return false;
    }
    return true;
}

static int begin_request(struct lws *wsi, http_session *pss, const char *uri) {
    free(pss->body);
    free(pss->resp);
    memset(pss, 0, sizeof *pss);
    pss->method = method_of(wsi);
    if (pss->method == M_HEAD) {
        pss->method = M_GET;
        pss->head = true;
    }
    snprintf(pss->path, sizeof pss->path, "%s", uri ? uri : "/");
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        /* lws 4.1 does not decode a chunked request body: say so instead of waiting for
         * one that never completes (RFC 9110 §15.5.12), and close: the body is unread */
        respond_error(pss, 411, "%s: send the body with a Content-Length (chunked request "
                      "bodies are not supported)", pss->path);
        pss->close_after = true;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (!framing_ok(wsi, pss)) {
        pss->routed = true; /* lws may still deliver a body: it gets no second answer */
        pss->close_after = true;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (pss->method == M_POST || pss->method == M_PUT || pss->method == M_PATCH) {
        char cl[24] = "";
        if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
            strtoull(cl, NULL, 10) > 0)
            return 0; /* wait for the body (lws 4.1 sends no BODY_COMPLETION for a PUT or
                       * PATCH with Content-Length: 0, so those are answered now) */
    }
    if (pss->method == M_OPTIONS) {
        respond(pss, 204, "text/plain", NULL, 0);
        if (!strncmp(pss->path, "/v1/whip/", 9)) { /* RFC 9725 §4.2; CORS preflight */
            add_header(pss, "accept-post:", "application/sdp");
            add_header(pss, "access-control-allow-origin:", "*");
            add_header(pss, "access-control-allow-methods:", "POST, DELETE, OPTIONS");
            add_header(pss, "access-control-allow-headers:", "Authorization, Content-Type");
            add_header(pss, "access-control-expose-headers:", "Location");
        }
    } else {
        route(wsi, pss);
    }
    lws_callback_on_writable(wsi);
    return 0;
}

/* Is this a subscription we accept? 0: yes; otherwise the HTTP status to refuse with. */
static int ws_check(struct lws *wsi, stream **out, int64_t *since) {
    char uri[512], id[PROTO_ID_SIZE];
    const char *rest;
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0) return 400;
    char *q = strchr(uri, '?');
    if (q) *q = 0;
    if (strncmp(uri, "/v1/streams/", 12) != 0 || !split_stream_path(uri, id, &rest) ||
        strcmp(rest, "/events") != 0)
        return 404;
    if (!authorized(wsi)) return 401;
    if (!g_app->cfg.token[0] && !same_origin(wsi)) return 403; /* a token decides alone */
    stream *s = app_find_stream(g_app, id);
    if (!s || s->closing) return 404;
    char buf[64];
    const char *v = lws_get_urlarg_by_name(wsi, "since=", buf, sizeof buf);
    *since = -1;
    if (v) {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (!*v || *end || n < 0 || errno == ERANGE) return 400;
        *since = n;
    }
    *out = s;
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    http_session *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return begin_request(wsi, pss, in);
    case LWS_CALLBACK_HTTP_BODY:
        if (pss->body_len + len > MAX_BODY) {
            pss->body_too_big = true;
            return 0;
        }
        {
            char *b = realloc(pss->body, pss->body_len + len + 1);
            if (!b) return -1;
            pss->body = b;
            if (len) memcpy(b + pss->body_len, in, len); /* an empty body: in is NULL */
            pss->body_len += len;
            b[pss->body_len] = 0;
        }
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (pss->routed) return 0; /* already answered or answering */
        route(wsi, pss);
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!pss || !pss->status) return 0;
        return write_response(wsi, pss);
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        stream *s;
        int64_t since;
        int status = ws_check(wsi, &s, &since);
        if (!status) return 0;
        /* a plain HTTP/1.1 answer (lws_return_http_status says HTTP/1.0 on an upgrade,
         * which WebSocket clients reject before reading the status) */
        static const char *why[] = {[0] = "", [1] = "missing or wrong bearer token",
                                    [2] = "no such stream",
                                    [3] = "since must be a whole number >= 0",
                                    [4] = "cross-origin subscription refused (set a token)"};
        static const char *line[] = {[0] = "", [1] = "401 Unauthorized", [2] = "404 Not Found",
                                     [3] = "400 Bad Request", [4] = "403 Forbidden"};
        int k = status == 401 ? 1 : status == 404 ? 2 : status == 403 ? 4 : 3;
        char body[160], resp[LWS_PRE + 512];
        int bl = snprintf(body, sizeof body, "{\"error\":{\"code\":%d,\"message\":\"%s\"}}",
                          status, why[k]);
        int rl = snprintf(resp + LWS_PRE, sizeof resp - LWS_PRE,
                          "HTTP/1.1 %s\r\ncontent-type: application/json\r\n"
                          "content-length: %d\r\n%sconnection: close\r\n\r\n%s",
                          line[k], bl, status == 401 ? "www-authenticate: Bearer\r\n" : "", body);
        lws_write(wsi, (unsigned char *)resp + LWS_PRE, (size_t)rl, LWS_WRITE_HTTP_HEADERS);
        return -1;
    }
    case LWS_CALLBACK_ESTABLISHED: {
        stream *s;
        int64_t since;
        memset(pss, 0, sizeof *pss);
        if (ws_check(wsi, &s, &since) != 0) return -1;
        pss->ws = ws_client_open(wsi, s, since);
        return pss->ws ? 0 : -1;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return pss->ws ? ws_client_writeable(pss->ws) : -1;
    case LWS_CALLBACK_RECEIVE:
        return pss->ws ? ws_client_receive(pss->ws, len, lws_is_final_fragment(wsi)) : 0;
    case LWS_CALLBACK_CLOSED:
        ws_client_closed(pss->ws);
        pss->ws = NULL;
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (g_app) whip_conn_closed(g_app, wsi); /* a WHIP POST may wait on it */
        if (pss) {
            free(pss->body);
            free(pss->resp);
            pss->body = pss->resp = NULL;
        }
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"commentary", callback, sizeof(http_session), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log(int level, const char *line) {
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') n--;
    if (level & LLL_ERR) LOGW("lws: %.*s", (int)n, line);
    else LOGD("lws: %.*s", (int)n, line);
}

/* Resolve host:port to the numeric address lws binds (lws takes an interface name or a
 * numeric address, and only warns and waits for an "interface" named like "localhost"),
 * and try the bind first, so that an error names its cause (address in use, no
 * permission, no such address) instead of lws's log lines.  An IPv4 address is preferred
 * when a name has both; *v6 says which family.  A network interface's name (eth0) is
 * left to lws as it is. */
static bool bind_ok(const char *host, int port, char *numeric, size_t ncap, bool *v6,
                    char *why, size_t cap) {
    *v6 = strchr(host, ':') != NULL;
    if (if_nametoindex(host)) {
        snprintf(numeric, ncap, "%s", host);
        return true;
    }
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE}, *res;
    int rc = getaddrinfo(host[0] ? host : NULL, service, &hints, &res);
    if (rc) return snprintf(why, cap, "%s", gai_strerror(rc)), false;
    struct addrinfo *ai = res;
    for (struct addrinfo *r = res; r; r = r->ai_next)
        if (r->ai_family == AF_INET) {
            ai = r;
            break;
        }
    *v6 = ai->ai_family == AF_INET6;
    numeric[0] = 0;
    if (host[0] && (rc = getnameinfo(ai->ai_addr, ai->ai_addrlen, numeric, (socklen_t)ncap,
                                     NULL, 0, NI_NUMERICHOST))) {
        freeaddrinfo(res);
        return snprintf(why, cap, "%s", gai_strerror(rc)), false;
    }
    if (strchr(numeric, '%')) { /* lws 4.1 cannot bind a scoped (link-local) address */
        freeaddrinfo(res);
        return snprintf(why, cap, "a link-local address with a zone cannot be served; "
                        "use the interface's name or another address"), false;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype, 0), one = 1;
    bool ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
              bind(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    if (!ok) snprintf(why, cap, "%s", strerror(errno));
    if (fd >= 0) close(fd);
    freeaddrinfo(res);
    return ok;
}

int http_start(app *a, char *err) {
    g_app = a;
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *loops[1] = {a->loop};
    info.port = a->cfg.listen_port == 0 ? CONTEXT_PORT_NO_LISTEN_SERVER : a->cfg.listen_port;
    if (a->cfg.listen_port == 0) info.port = 0;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.foreign_loops = loops;
    /* browsers send up to ~8 KB of cookies, and localhost's are shared by every port */
    info.max_http_header_data = 16384;
    info.timeout_secs = 30;
    /* pings find subscribers whose peer is gone without a FIN (a laptop closed, a NAT that
     * forgot the mapping): each would hold its slot and queue until TCP gave up, hours
     * later.  lws pings a WebSocket idle for ping_s (only a pong counts) and drops it when
     * none comes within as many seconds more; plain HTTP connections have no ping and keep
     * their own timeouts. */
    static lws_retry_bo_t idle; /* all zero (ping_s 0): no pings at all; without a policy
                                 * lws would use its own (a ping after 300 s, cut at 310) */
    idle.secs_since_valid_ping = (uint16_t)a->cfg.ws.ping_s;
    idle.secs_since_valid_hangup = (uint16_t)(2 * a->cfg.ws.ping_s);
    info.retry_and_idle_policy = &idle;
    info.vhost_name = "default";
    /* the vhost apart from the context: lws 4.1 makes a context whose implicit vhost failed
     * to bind, says only "Failed to create default vhost" and then reports the configured
     * port as listening, so a taken port gave a daemon that claimed to be ready on nothing */
    info.options |= LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    char why[128];
    static char iface[NI_MAXHOST]; /* lws keeps the pointer */
    bool v6;
    if (!bind_ok(a->cfg.listen_host, a->cfg.listen_port, iface, sizeof iface, &v6, why,
                 sizeof why))
        return snprintf(err, 256, "listen %.120s: %.120s", a->cfg.listen, why), -1;
    info.iface = iface[0] ? iface : NULL;
    if (!v6) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    a->lws = lws_create_context(&info);
    if (!a->lws)
        return snprintf(err, 256, "listen %.150s: cannot create the HTTP server",
                        a->cfg.listen), -1;
    struct lws_vhost *vh = lws_create_vhost(a->lws, &info);
    a->port = vh ? lws_get_vhost_listen_port(vh) : -1;
    if (a->port <= 0) {
        lws_context_destroy(a->lws);
        a->lws = NULL;
        return snprintf(err, 256, "listen %.150s: cannot bind (address in use, or no "
                        "permission?)", a->cfg.listen), -1;
    }
    return 0;
}

void http_stop(app *a) {
    if (!a->lws) return;
    lws_context_destroy(a->lws);
    a->lws = NULL;
}
