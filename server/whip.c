/* whip.c — the WHIP endpoint (RFC 9725): sessions of WebRTC publishers (see whip.h).
 *
 * A session ties a stream (by id), the tag of the stream's ingest run that negotiates or
 * carries the publisher (ingest_whip_offer), its resource name (16 random hex digits:
 * /v1/whip/ID/RESOURCE) and, until the answer is sent, the connection of the POST that is
 * waiting for it.  Sessions are looked up by tag (answers), by id + resource (DELETE) and
 * by connection (a POST whose client went away).
 *
 * Invariants.
 * * A session is live while its stream exists, is not closing, and its ingest's current
 *   whip run carries the session's tag; whip_sweep drops every other one (the publisher
 *   left, the stream was removed, a stall ended the run).  So no stream pointer is kept.
 * * A session is unlinked before anything is done that can call back into this file
 *   (ingest_whip_end can pay an owed answer through whip_answer_cb, stream_remove stops the
 *   ingest): a callback never finds a half-dropped session.
 * * Each POST gets exactly one answer: at once, through http_reply_later when the ingest
 *   answers, or an error from whip_tick (timeout, session gone) — unless its connection
 *   closed first (whip_conn_closed).
 * Runs on: loop.
 */
#include "whip.h"

#include <gst/sdp/sdp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "app.h"
#include "http.h"
#include "ingest.h"
#include "log.h"
#include "stream.h"

#define WHIP_ANSWER_TIMEOUT_S 15.0 /* a POST waits this long for its answer at most */
#define WHIP_RESOURCE_LEN 16       /* hex digits of a session's resource name */

typedef struct whip_session {
    char id[PROTO_ID_SIZE];               /* the stream */
    char resource[WHIP_RESOURCE_LEN + 1]; /* /v1/whip/ID/RESOURCE */
    uint64_t tag;                         /* the stream's ingest run (ingest_whip_session) */
    void *conn;                           /* the POST waiting for its answer, or NULL */
    double deadline;                      /* monotonic seconds: the answer is due */
    bool created;                         /* the POST created the stream */
    bool answered;
    struct whip_session *next;
} whip_session;

static whip_session *sessions;
static uint64_t last_tag;

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- responses ---- */

/* A proto `error` body (malloc'd), like every other error of the API. */
static char *error_body(int status, const char *msg, size_t *len) {
    proto_msg m = {.error = {.code = status, .message = (char *)msg}};
    char err[256];
    *len = 0;
    proto_encode(PROTO_MSG_ERROR, &m, NULL, 0, len, err);
    char *buf = malloc(*len + 1);
    if (buf && proto_encode(PROTO_MSG_ERROR, &m, buf, *len + 1, len, err) == 0) return buf;
    free(buf);
    *len = 0;
    return NULL;
}

static int answer_error(whip_response *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int answer_error(whip_response *out, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    out->status = status;
    out->ctype = "application/json";
    out->body = error_body(status, msg, &out->len);
    out->location[0] = 0;
    return WHIP_ANSWERED;
}

/* The deferred error answer to a waiting POST. */
static void reply_error_later(void *conn, int status, const char *msg) {
    size_t len;
    char *body = error_body(status, msg, &len);
    http_reply_later(conn, status, "application/json", body, len, NULL);
}

/* ---- sessions ---- */

static void unlink_session(whip_session *w) {
    for (whip_session **p = &sessions; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            w->next = NULL;
            return;
        }
}

static whip_session *find_tag(uint64_t tag) {
    for (whip_session *w = sessions; w; w = w->next)
        if (w->tag == tag) return w;
    return NULL;
}

/* The session's stream when the session is live (see the invariants), else NULL. */
static stream *live_stream(app *a, const whip_session *w) {
    stream *s = app_find_stream(a, w->id);
    if (!s || s->closing || !s->in || ingest_whip_session(s->in) != w->tag) return NULL;
    return s;
}

/* Drops an unlinked session: its run ends (detail: why, NULL for a clean end) and a stream
 * the session created and that never got a publisher goes too. */
static void end_session(app *a, whip_session *w, const char *detail, bool remove_created) {
    stream *s = live_stream(a, w);
    if (s) ingest_whip_end(s->in, detail);
    if (remove_created && w->created) {
        stream *c = app_find_stream(a, w->id);
        if (c && !c->closing) stream_remove(c);
    }
    free(w);
}

/* Drops every session that is no longer live (answering a still-waiting POST). */
static void whip_sweep(app *a) {
    for (whip_session *w = sessions, *next; w; w = next) {
        next = w->next;
        if (live_stream(a, w)) continue;
        unlink_session(w);
        if (w->conn) reply_error_later(w->conn, 503, "the session ended before it was answered");
        LOGD("whip[%s] session %s gone", w->id, w->resource);
        free(w);
    }
}

/* Runs on: loop (ingest_answer_cb).  The stream's ingest answered the offer, or failed. */
static void whip_answer_cb(void *user, uint64_t tag, const char *sdp, const char *error) {
    app *a = user;
    whip_session *w = find_tag(tag);
    if (!w) return; /* dropped already (the ingest is being ended by whoever dropped it) */
    if (sdp && w->conn) {
        char location[256];
        snprintf(location, sizeof location, "/v1/whip/%s/%s", w->id, w->resource);
        size_t len = strlen(sdp);
        char *body = malloc(len + 1);
        if (body) memcpy(body, sdp, len + 1);
        http_reply_later(w->conn, body ? 201 : 500, body ? "application/sdp" : "text/plain", body,
                         body ? len : 0, body ? location : NULL);
        w->conn = NULL;
        w->answered = true;
        LOGI("whip[%s] answered: session %s", w->id, w->resource);
        return;
    }
    unlink_session(w);
    if (sdp) { /* nobody is left to take the answer */
        LOGI("whip[%s] the publisher went away before the answer", w->id);
        end_session(a, w, "the publisher went away before the answer", true);
        return;
    }
    LOGW("whip[%s] negotiation failed: %s", w->id, error ? error : "?");
    if (w->conn) {
        char msg[400];
        snprintf(msg, sizeof msg, "cannot negotiate the offer: %.300s", error ? error : "?");
        bool offer = error && (strstr(error, "offer") || strstr(error, "answer"));
        reply_error_later(w->conn, offer ? 400 : 500, msg);
    }
    /* the run is over already (this is its last callback): only a created stream goes */
    w->tag = 0;
    end_session(a, w, NULL, true);
}

/* ---- requests ---- */

/* Whether ctype is application/sdp (parameters allowed). */
static bool is_sdp_type(const char *ctype) {
    static const char want[] = "application/sdp";
    if (!ctype || strlen(ctype) < sizeof want - 1 || strncasecmp(ctype, want, sizeof want - 1))
        return false;
    const char *rest = ctype + sizeof want - 1;
    return *rest == 0 || *rest == ';' || *rest == ' ';
}

/* Whether an rtpmap value ("96 H264/90000") names a codec we decode. */
static bool video_codec_ok(const char *rtpmap) {
    const char *enc = rtpmap ? strchr(rtpmap, ' ') : NULL;
    if (!enc) return false;
    enc++;
    return !strncasecmp(enc, "H264/", 5) || !strncasecmp(enc, "VP8/", 4) ||
           !strncasecmp(enc, "VP9/", 4);
}

/* A WHIP offer we can negotiate: SDP text (v=0 first, printable), parsed by GstSDP, with
 * an origin, ICE credentials, a DTLS fingerprint, and a video m-line offering H.264, VP8
 * or VP9.  false with why otherwise (GstSDP alone accepts almost anything). */
static bool check_offer(const char *sdp, size_t len, char *why, size_t cap) {
    if (len < 4 || strncmp(sdp, "v=0", 3) != 0)
        return snprintf(why, cap, "it does not start with v=0"), false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)sdp[i];
        if (c == 0 || (c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f)
            return snprintf(why, cap, "control byte 0x%02x at offset %zu", c, i), false;
    }
    GstSDPMessage *m = NULL;
    if (gst_sdp_message_new_from_text(sdp, &m) != GST_SDP_OK || !m) {
        if (m) gst_sdp_message_free(m);
        return snprintf(why, cap, "not SDP"), false;
    }
    const GstSDPOrigin *o = gst_sdp_message_get_origin(m);
    bool ufrag = gst_sdp_message_get_attribute_val(m, "ice-ufrag") != NULL;
    bool pwd = gst_sdp_message_get_attribute_val(m, "ice-pwd") != NULL;
    bool fp = gst_sdp_message_get_attribute_val(m, "fingerprint") != NULL;
    bool video = false, codec = false;
    guint n = gst_sdp_message_medias_len(m);
    for (guint i = 0; i < n; i++) {
        const GstSDPMedia *md = gst_sdp_message_get_media(m, i);
        ufrag |= gst_sdp_media_get_attribute_val(md, "ice-ufrag") != NULL;
        pwd |= gst_sdp_media_get_attribute_val(md, "ice-pwd") != NULL;
        fp |= gst_sdp_media_get_attribute_val(md, "fingerprint") != NULL;
        const char *kind = gst_sdp_media_get_media(md);
        if (!kind || strcmp(kind, "video") != 0) continue;
        video = true;
        for (guint k = 0; k < gst_sdp_media_attributes_len(md); k++) {
            const GstSDPAttribute *at = gst_sdp_media_get_attribute(md, k);
            if (at->key && !strcmp(at->key, "rtpmap")) codec |= video_codec_ok(at->value);
        }
    }
    bool ok = false;
    if (!o || !o->sess_id)
        snprintf(why, cap, "no o= line");
    else if (n == 0)
        snprintf(why, cap, "no m= line");
    else if (!ufrag || !pwd)
        snprintf(why, cap, "no ice-ufrag/ice-pwd");
    else if (!fp)
        snprintf(why, cap, "no DTLS fingerprint");
    else if (!video)
        snprintf(why, cap, "no video m-line");
    else if (!codec)
        snprintf(why, cap, "no H.264, VP8 or VP9 video");
    else
        ok = true;
    gst_sdp_message_free(m);
    return ok;
}

/* 16 random hex digits (uv_random: the kernel's CSPRNG). */
static void new_resource(char out[WHIP_RESOURCE_LEN + 1], uint64_t tag) {
    unsigned char r[WHIP_RESOURCE_LEN / 2];
    if (uv_random(NULL, NULL, r, sizeof r, 0, NULL) != 0) {
        uint64_t x = tag * 0x9E3779B97F4A7C15ull ^ (uint64_t)(mono_s() * 1e9);
        memcpy(r, &x, sizeof r);
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static int whip_post(app *a, void *conn, const char *id, const char *ctype, const char *body,
                     size_t len, whip_response *out) {
    char why[256], err[256];
    if (!is_sdp_type(ctype))
        return answer_error(out, 415, "a WHIP offer is Content-Type: application/sdp, got '%.64s'",
                            ctype && *ctype ? ctype : "none");
    if (!body || !check_offer(body, len, why, sizeof why))
        return answer_error(out, 400, "malformed SDP offer: %s", body ? why : "empty body");
    if (!a->ready || a->shutting_down)
        return answer_error(out, 503, "%s; try again",
                            a->shutting_down ? "shutting down" : "the model is loading");
    whip_sweep(a);
    stream *s = app_find_stream(a, id);
    bool created = false;
    if (s) {
        if (strcmp(s->source, "whip:") != 0)
            return answer_error(out, 409, "stream '%s' exists and is not a WHIP stream", id);
        if (s->closing) return answer_error(out, 409, "stream '%s' is being removed", id);
        if (!s->in) return answer_error(out, 503, "stream '%s' has not started", id);
        if (ingest_whip_session(s->in))
            return answer_error(out, 409, "stream '%s' has a WHIP publisher already", id);
    } else {
        if (!a->cfg.whip.allow_create)
            return answer_error(out, 404,
                                "stream '%s' not found (whip.allow_create is false: "
                                "create it with source whip: first)",
                                id);
        int status = stream_new(a, id, "whip:", NULL, NULL, false, &s, err);
        if (status) return answer_error(out, status, "%s", err);
        if (stream_start(s) != 0) {
            stream_remove(s);
            return answer_error(out, 500, "stream '%s' cannot start", id);
        }
        created = true;
    }
    whip_session *w = calloc(1, sizeof *w);
    char *offer = malloc(len + 1);
    if (!w || !offer) {
        free(w);
        free(offer);
        if (created) stream_remove(s);
        return answer_error(out, 500, "out of memory");
    }
    memcpy(offer, body, len);
    offer[len] = 0;
    snprintf(w->id, sizeof w->id, "%s", id);
    w->tag = ++last_tag;
    new_resource(w->resource, w->tag);
    w->conn = conn;
    w->deadline = mono_s() + WHIP_ANSWER_TIMEOUT_S;
    w->created = created;
    w->next = sessions;
    sessions = w;
    /* the config as it is now (whip.* are reloadable): a stream may be older than it */
    ingest_whip_set_ice(s->in, a->cfg.whip.stun_server, a->cfg.whip.turn_server,
                        a->cfg.whip.port_min, a->cfg.whip.port_max);
    int rc = ingest_whip_offer(s->in, offer, whip_answer_cb, a, w->tag, err);
    free(offer);
    if (rc) {
        unlink_session(w);
        free(w);
        if (created) stream_remove(s);
        return answer_error(out, rc == UV_EBUSY ? 409 : rc == UV_EINVAL ? 400 : 500, "%s", err);
    }
    LOGI("whip[%s] offer from a publisher%s: session %s", id, created ? " (stream created)" : "",
         w->resource);
    return WHIP_DEFERRED;
}

static int whip_delete(app *a, const char *id, const char *resource, whip_response *out) {
    whip_sweep(a);
    whip_session *w = sessions;
    while (w && (strcmp(w->id, id) != 0 || strcmp(w->resource, resource) != 0))
        w = w->next;
    if (!w) return answer_error(out, 404, "no WHIP session %s/%s", id, resource);
    unlink_session(w);
    if (w->conn) reply_error_later(w->conn, 409, "the session was deleted before it was answered");
    LOGI("whip[%s] session %s deleted by the publisher", id, resource);
    end_session(a, w, NULL, false);
    out->status = 200;
    out->ctype = "text/plain";
    out->body = NULL;
    out->len = 0;
    out->location[0] = 0;
    return WHIP_ANSWERED;
}

int whip_request(app *a, void *conn, const char *method, const char *path, const char *ctype,
                 const char *body, size_t len, whip_response *out) {
    memset(out, 0, sizeof *out);
    /* /v1/whip/ID[/RESOURCE] */
    const char *p = path + strlen("/v1/whip/");
    const char *slash = strchr(p, '/');
    char id[PROTO_ID_SIZE], resource[64] = "";
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= sizeof id) return answer_error(out, 404, "%.200s: no such resource", path);
    memcpy(id, p, n);
    id[n] = 0;
    if (!proto_valid_id(id))
        return answer_error(out, 400, "stream id must match [A-Za-z0-9_-]{1,64}");
    if (slash) {
        const char *r = slash + 1;
        if (!*r || strlen(r) >= sizeof resource || strchr(r, '/'))
            return answer_error(out, 404, "%.200s: no such resource", path);
        snprintf(resource, sizeof resource, "%s", r);
    }
    if (!resource[0]) {
        if (!strcmp(method, "POST")) return whip_post(a, conn, id, ctype, body, len, out);
        return answer_error(out, 405, "%s: POST an SDP offer here", path);
    }
    if (!strcmp(method, "DELETE")) return whip_delete(a, id, resource, out);
    if (!strcmp(method, "PATCH"))
        return answer_error(out, 405, "trickle ICE and ICE restarts are not supported");
    return answer_error(out, 405, "%s: DELETE ends the session", path);
}

void whip_conn_closed(app *a, void *conn) {
    for (whip_session *w = sessions, *next; w; w = next) {
        next = w->next;
        if (w->conn != conn) continue;
        w->conn = NULL;
        if (w->answered) continue;
        /* the publisher gave up waiting: nobody can use the answer */
        unlink_session(w);
        LOGW("whip[%s] the publisher closed the connection before the answer", w->id);
        end_session(a, w, "the publisher went away before the answer", true);
    }
}

void whip_tick(app *a) {
    double now = mono_s();
    for (whip_session *w = sessions, *next; w; w = next) {
        next = w->next;
        if (w->answered || !w->conn || now < w->deadline) continue;
        unlink_session(w);
        LOGW("whip[%s] no answer within %.0f s: ICE gathering did not complete", w->id,
             WHIP_ANSWER_TIMEOUT_S);
        reply_error_later(w->conn, 504, "ICE gathering did not complete in time");
        end_session(a, w, "ICE gathering did not complete in time", true);
    }
    whip_sweep(a);
}

void whip_stop(void) {
    while (sessions) {
        whip_session *w = sessions;
        sessions = w->next;
        free(w);
    }
}
