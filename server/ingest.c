/* ingest.c — one GStreamer pipeline per stream: source → decode → 2 fps decimation →
 * RGB at the model's size → appsink, with reconnects (see ingest.h for the sources).
 *
 * Not for: frame buffering or anything the model does (the frame callback copies the
 * frame into the stream's ring and returns).
 *
 * Threads.  The loop thread owns the pipeline's life: it builds, starts, tears down and
 * rebuilds it, reads the bus (gst_bus_get_pollfd() on a uv_poll, gst_bus_pop(); no GLib
 * main loop) and runs the backoff and watchdog timers.  GStreamer streaming threads run
 * the decimation probe, the dynamic pad linking and the appsink callback; they share
 * with the loop only atomics (stats, last-frame time) and the bus (an application
 * message "ingest-live" when a run delivers its first frame).  For whip: runs, webrtcbin's
 * own threads negotiate and report through the bus too ("ingest-whip-*", see the WHIP
 * section): the loop alone reads the answer and tells the caller.
 *
 * Invariants.
 * * One persistent GstBus per ingest, set on every pipeline it builds (auto-flush off):
 *   after a teardown (pipeline to NULL, which joins every streaming thread) the bus is
 *   flushed, so no message of an old run is ever seen by the next.
 * * The run state (in->run) is written by the loop thread only while no pipeline exists
 *   and by the one streaming thread that feeds the tail (probe → videoconvert →
 *   videoscale → capsfilter → appsink, no queue between them) while one does: the probe
 *   and the appsink callback for a buffer run back to back on that thread.
 * * Stream time t = run.offset + (PTS − run.origin); run.origin is the first frame's
 *   PTS of the run, run.offset is 0 for the first run and the wall time elapsed since
 *   the first frame (at least the last t + 0.5) for later runs, so t never goes back.
 * * Decimation: keep a buffer when its stream time is at or after run.next_mark, then
 *   move the mark to the first 0.5 s multiple after it (a gap over several marks keeps
 *   one frame).  Decimating before videoconvert/videoscale saves converting and
 *   scaling 28 of 30 frames (docs/PLATFORM.md: ~50% of the CPU).
 */
#include "config.h"
#include "ingest.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#include <gst/video/video.h>
#define GST_USE_UNSTABLE_API /* gst/webrtc: "unstable" in name only since 1.16 */
#include <gst/webrtc/webrtc.h>

#define INGEST_MARK_NS ((int64_t)500 * 1000 * 1000)          /* one decimation mark: 0.5 s */
#define INGEST_BACKJUMP_NS ((int64_t)2 * 1000 * 1000 * 1000) /* PTS reset tolerance */
#define INGEST_STABLE_S 10.0   /* live this long → the backoff starts again from min */
#define INGEST_WATCHDOG_MS 500 /* how often the stall watchdog looks */
#define INGEST_BREAKS_LOG_S 10 /* video breaks are logged at most this often */
#define INGEST_DETAIL_LEN 512

typedef enum ingest_kind {
    INGEST_KIND_TEST, /* videotestsrc launch fragment */
    INGEST_KIND_RTSP, /* rtspsrc → decodebin per video stream */
    INGEST_KIND_SRT,  /* srtsrc → decodebin */
    INGEST_KIND_RTMP, /* rtmp2src → flvdemux → decodebin */
    INGEST_KIND_FILE, /* uridecodebin, not live */
    INGEST_KIND_HTTP, /* uridecodebin, not live (VOD) */
    INGEST_KIND_V4L2, /* v4l2src → decodebin */
    INGEST_KIND_WHIP, /* webrtcbin (one per publisher) → decodebin per video pad */
} ingest_kind;

#define INGEST_WHIP_GATHER_MS 5000 /* answer with the candidates found so far after this */

/* Per pipeline run.  Written by the loop thread while no pipeline exists, else by the
 * streaming thread that feeds the tail (see the invariants on top). */
typedef struct ingest_run {
    bool started;      /* the first buffer of this run has been seen */
    int64_t origin;    /* its PTS (ns) */
    int64_t next_mark; /* keep the next buffer at or after this stream time (ns) */
    double offset;     /* seconds added to (PTS - origin) to make t */
    bool live_posted;  /* the "ingest-live" message has been posted */
} ingest_run;

struct ingest {
    /* parameters (copied) */
    char *id;
    char *source;  /* as given */
    char *display; /* source with passwords masked, for logs and errors */
    ingest_kind kind;
    char *location;    /* what the source element gets: URI, device path, test spec */
    bool live;         /* live source: errors and EOS reconnect */
    bool srt_listener; /* srt://…?mode=listener: waits for callers, EOS = caller left */
    int64_t width, height;
    double reconnect_min_s, reconnect_max_s;
    int64_t latency_ms;
    double stall_s; /* <= 0: no watchdog */
    bool realtime;
    ingest_callbacks cb;
    void *user;

    /* loop-thread state */
    uv_loop_t *loop;
    uv_poll_t bus_poll;  /* the bus's poll fd */
    uv_timer_t retry;    /* the backoff before the next rebuild */
    uv_timer_t watchdog; /* stalls of live sources */
    bool cycle;          /* bare test: (no pattern) cycles scenes */
    uint64_t scene_n;    /* scenes shown so far (the test source's streaming thread) */
    int64_t scene_end;   /* PTS (ns) where the current scene ends, -1: at the next frame */
    GstElement *testsrc; /* the current run's videotestsrc (borrowed), or NULL */
    int pending_closes;  /* handles still closing in ingest_free */
    GstBus *bus;         /* persistent, set on every pipeline */
    GstElement *pipe;    /* the current run's pipeline, or NULL */
    GstElement *conv;    /* its tail's first element (videoconvert), borrowed */
    bool started;        /* between ingest_start and ingest_stop */
    bool freeing;        /* ingest_free was called */
    ingest_state state;
    double next_delay_s;     /* the next backoff delay */
    int64_t run_start_us;    /* monotonic time the current run was started */
    int64_t live_since_us;   /* monotonic time of the last LIVE, or 0 */
    char last_warning[400];  /* the current run's last bus warning, or "" (fits in a detail) */
    int64_t warn_logged_us;  /* when a warning was last logged: at most one a second */
    int64_t warn_suppressed; /* warnings not logged since */
    uint64_t breaks_logged;    /* n_breaks when video breaks were last logged */
    int64_t breaks_logged_us;  /* and when: at most one line per INGEST_BREAKS_LOG_S */

    /* WHIP: ICE settings (copied), and the negotiation of the current run (loop) */
    char *stun_server, *turn_server; /* NULL: none */
    int64_t port_min, port_max;
    GstElement *webrtc;         /* the current run's webrtcbin (borrowed), or NULL */
    uint64_t whip_tag;          /* the caller's tag of the current run's offer, 0: none */
    ingest_answer_cb answer_cb; /* set while an answer is owed */
    void *answer_user;
    bool whip_local_set; /* set-local-description done */
    bool whip_gathered;  /* ICE gathering complete */

    /* shared with streaming threads */
    atomic_bool tail_linked;       /* a video pad is linked to the tail in this run */
    atomic_bool video_seen;        /* a video stream was found in this run */
    _Atomic int64_t last_frame_us; /* monotonic time of the last decoded frame, 0: none */
    _Atomic int64_t last_input_us; /* SRT: monotonic time of the source's last data, 0: none */
    _Atomic uint64_t n_decoded, n_kept, n_dropped, n_reconnects;
    _Atomic uint64_t n_breaks; /* DISCONT buffers at a decoder's input after its first */

    /* streaming-thread state */
    ingest_run run;
    bool t_started;         /* a frame was ever delivered (since start) */
    int64_t wall_origin_us; /* monotonic time of the t = 0 frame */
    double last_t;          /* t of the last delivered frame */
};

/* --- logging ------------------------------------------------------------------------ */

static void ingest_seterr(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ingest_seterr(char *err, const char *fmt, ...) {
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, INGEST_ERR_LEN, fmt, ap);
    va_end(ap);
}

static int64_t ingest_now_us(void) {
    return g_get_monotonic_time();
}

/* --- source parsing ------------------------------------------------------------------ */

/* src with its passwords masked (config_mask_source), as a glib string. */
static char *ingest_mask(const char *src) {
    char *m = config_mask_source(src);
    char *g = g_strdup(m ? m : "(source)");
    free(m);
    return g;
}

/* Sets one property of obj from its string form (gst_value_deserialize: enum nicks,
 * 0x… integers, fractions).  Returns 0 or UV_EINVAL with err naming display. */
static int ingest_set_prop(GObject *obj, const char *key, const char *val, const char *display,
                           char *err) {
    GParamSpec *ps = g_object_class_find_property(G_OBJECT_GET_CLASS(obj), key);
    if (!ps || !(ps->flags & G_PARAM_WRITABLE) || (ps->flags & G_PARAM_CONSTRUCT_ONLY)) {
        ingest_seterr(err, "%s: unknown parameter '%s'", display, key);
        return UV_EINVAL;
    }
    GValue v = G_VALUE_INIT;
    g_value_init(&v, ps->value_type);
    if (!gst_value_deserialize(&v, val)) {
        g_value_unset(&v);
        if (!strcmp(key, "pattern"))
            ingest_seterr(err, "%s: unknown videotestsrc pattern '%s'", display, val);
        else
            ingest_seterr(err, "%s: bad value '%s' for '%s'", display, val, key);
        return UV_EINVAL;
    }
    g_object_set_property(obj, key, &v);
    g_value_unset(&v);
    return 0;
}

/* Applies a test source spec ("ball?foreground-color=0xffff0000&width=640") to a
 * videotestsrc and returns its caps in *caps (caller unrefs).  Used once at ingest_new
 * to validate (on a throwaway element) and at every build.  Returns 0 or UV_EINVAL.
 * The default size is small on purpose: videotestsrc draws its ball 20 pixels in radius
 * at any size, and the default model (scripts/default_model) learned the scenes as they
 * look at 320x180 — at 1280x720 the ball would be a few pixels of the model's input.  It
 * also leaves the cores to inference rather than to scaling test pictures. */
static int ingest_test_apply(const char *spec, const char *display, GstElement *src, GstCaps **caps,
                             char *err) {
    int rc = 0;
    const char *q = strchr(spec, '?');
    char *pattern = q ? g_strndup(spec, (gsize)(q - spec)) : g_strdup(spec);
    GstStructure *s =
        gst_structure_new("video/x-raw", "format", G_TYPE_STRING, "I420", "width", G_TYPE_INT, 320,
                          "height", G_TYPE_INT, 180, "framerate", GST_TYPE_FRACTION, 30, 1, NULL);
    g_object_set(src, "is-live", TRUE, NULL);
    rc = ingest_set_prop(G_OBJECT(src), "pattern", *pattern ? pattern : "ball", display, err);
    char **kv = q ? g_strsplit(q + 1, "&", -1) : NULL;
    for (char **p = kv; rc == 0 && p && *p; p++) {
        if (!**p) continue;
        char *eq = strchr(*p, '=');
        if (!eq || eq == *p) {
            ingest_seterr(err, "%s: malformed parameter '%s' (want key=value)", display, *p);
            rc = UV_EINVAL;
            break;
        }
        *eq = '\0';
        const char *key = *p, *val = eq + 1;
        if (!strcmp(key, "width") || !strcmp(key, "height")) {
            char *end = NULL;
            errno = 0;
            long n = strtol(val, &end, 10);
            if (errno || !*val || *end || n < 16 || n > 8192) {
                ingest_seterr(err, "%s: bad %s '%s' (want 16..8192)", display, key, val);
                rc = UV_EINVAL;
            } else {
                gst_structure_set(s, key, G_TYPE_INT, (int)n, NULL);
            }
        } else if (!strcmp(key, "framerate")) {
            GValue v = G_VALUE_INIT;
            g_value_init(&v, GST_TYPE_FRACTION);
            if (!gst_value_deserialize(&v, val) || gst_value_get_fraction_numerator(&v) <= 0 ||
                gst_value_get_fraction_denominator(&v) <= 0) {
                ingest_seterr(err, "%s: bad framerate '%s' (want N/D)", display, val);
                rc = UV_EINVAL;
            } else {
                gst_structure_set_value(s, "framerate", &v);
            }
            g_value_unset(&v);
        } else if (!strcmp(key, "format")) {
            if (gst_video_format_from_string(val) == GST_VIDEO_FORMAT_UNKNOWN) {
                ingest_seterr(err, "%s: unknown video format '%s'", display, val);
                rc = UV_EINVAL;
            } else {
                gst_structure_set(s, "format", G_TYPE_STRING, val, NULL);
            }
        } else {
            rc = ingest_set_prop(G_OBJECT(src), key, val, display, err);
        }
    }
    g_strfreev(kv);
    g_free(pattern);
    if (rc == 0 && caps) {
        *caps = gst_caps_new_full(s, NULL);
    } else {
        gst_structure_free(s);
    }
    return rc;
}

static bool ingest_has_element(const char *name) {
    GstElementFactory *f = gst_element_factory_find(name);
    if (f) gst_object_unref(f);
    return f != NULL;
}

/* The URI schemes ingest_new accepts, with the elements each needs. */
static const struct ingest_scheme {
    const char *scheme;
    ingest_kind kind;
    const char *need[3];
} ingest_schemes[] = {
    {"rtsp", INGEST_KIND_RTSP, {"rtspsrc", "decodebin"}},
    {"rtsps", INGEST_KIND_RTSP, {"rtspsrc", "decodebin"}},
    {"rtspt", INGEST_KIND_RTSP, {"rtspsrc", "decodebin"}}, /* RTSP interleaved in TCP */
    {"srt", INGEST_KIND_SRT, {"srtsrc", "decodebin"}},
    {"rtmp", INGEST_KIND_RTMP, {"rtmp2src", "flvdemux", "decodebin"}},
    {"rtmps", INGEST_KIND_RTMP, {"rtmp2src", "flvdemux", "decodebin"}},
    {"http", INGEST_KIND_HTTP, {"uridecodebin"}},
    {"https", INGEST_KIND_HTTP, {"uridecodebin"}},
    {"file", INGEST_KIND_FILE, {"uridecodebin"}},
    {"v4l2", INGEST_KIND_V4L2, {"v4l2src", "decodebin"}},
    {"test", INGEST_KIND_TEST, {"videotestsrc"}},
    {"whip", INGEST_KIND_WHIP, {"webrtcbin", "decodebin", "nicesrc"}},
};

/* Classifies in->source into in->kind/location/live/srt_listener and validates it.
 * Returns 0 or a negative UV_E* code with err naming the source. */
static int ingest_parse_source(ingest *in, char *err) {
    const char *src = in->source, *d = in->display;
    if (!*src) {
        ingest_seterr(err, "source: empty");
        return UV_EINVAL;
    }
    for (const char *p = src; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            ingest_seterr(err, "%s: malformed source (whitespace or control character)", d);
            return UV_EINVAL;
        }
    }
    /* scheme = [A-Za-z][A-Za-z0-9+.-]* followed by ':'; anything else is a path */
    size_t n = 0;
    if (isalpha((unsigned char)src[0]))
        while (src[n] && (isalnum((unsigned char)src[n]) || strchr("+.-", src[n])))
            n++;
    const struct ingest_scheme *sc = NULL;
    static const struct ingest_scheme path_file = {"", INGEST_KIND_FILE, {"uridecodebin"}};
    static const struct ingest_scheme path_v4l2 = {"", INGEST_KIND_V4L2, {"v4l2src", "decodebin"}};
    if (n > 0 && src[n] == ':') {
        for (size_t i = 0; i < sizeof ingest_schemes / sizeof ingest_schemes[0]; i++)
            if (strlen(ingest_schemes[i].scheme) == n &&
                !g_ascii_strncasecmp(src, ingest_schemes[i].scheme, n))
                sc = &ingest_schemes[i];
        if (!sc) {
            ingest_seterr(err,
                          "%s: unsupported scheme '%.*s' (supported: rtsp, rtsps, rtspt, srt, "
                          "rtmp, rtmps, http, https, file, v4l2, test:, whip:, a file path, "
                          "/dev/videoN)",
                          d, (int)n, src);
            return UV_EINVAL;
        }
    } else {
        bool dev = g_str_has_prefix(src, "/dev/video") || g_str_has_prefix(src, "/dev/v4l/");
        sc = dev ? &path_v4l2 : &path_file;
    }
    in->kind = sc->kind;
    in->live = sc->kind != INGEST_KIND_FILE && sc->kind != INGEST_KIND_HTTP;
    for (int i = 0; i < 3 && sc->need[i]; i++) {
        if (!ingest_has_element(sc->need[i])) {
            ingest_seterr(err, "%s: GStreamer element '%s' is not installed", d, sc->need[i]);
            return UV_ENOENT;
        }
    }

    if (!*sc->scheme) { /* a path */
        if (sc->kind == INGEST_KIND_V4L2) {
            in->location = g_strdup(src);
            return 0;
        }
        GError *ge = NULL;
        in->location = gst_filename_to_uri(src, &ge);
        if (!in->location) ingest_seterr(err, "%s: bad file path (%s)", d, ge ? ge->message : "?");
        g_clear_error(&ge);
        return in->location ? 0 : UV_EINVAL;
    }
    if (sc->kind == INGEST_KIND_WHIP) { /* the publisher brings everything in its offer */
        if (src[n + 1]) {
            ingest_seterr(err,
                          "%s: whip: takes no parameters (publishers POST their offer to "
                          "/v1/whip/ID)",
                          d);
            return UV_EINVAL;
        }
        in->location = g_strdup("");
        return 0;
    }
    if (sc->kind == INGEST_KIND_TEST) { /* validate on a throwaway videotestsrc */
        in->location = g_strdup(src + n + 1);
        in->cycle = !*in->location; /* bare "test:": a cycle of scenes */
        GstElement *probe = gst_object_ref_sink(gst_element_factory_make("videotestsrc", NULL));
        int rc = ingest_test_apply(in->location, d, probe, NULL, err);
        gst_object_unref(probe);
        return rc;
    }

    GstUri *uri = strncmp(src + n, "://", 3) ? NULL : gst_uri_from_string(src);
    if (!uri) {
        ingest_seterr(err, "%s: malformed URI (want %s://…)", d, sc->scheme);
        return UV_EINVAL;
    }
    const char *host = gst_uri_get_host(uri);
    char *path = gst_uri_get_path(uri); /* (transfer full) */
    bool has_host = host && *host;
    int rc = 0;
    switch (sc->kind) {
    case INGEST_KIND_SRT: {
        const char *mode = gst_uri_get_query_value(uri, "mode");
        in->srt_listener = mode ? !strcmp(mode, "listener") || !strcmp(mode, "server") : !has_host;
        if (gst_uri_get_port(uri) == GST_URI_NO_PORT) {
            ingest_seterr(err, "%s: malformed URI (missing port)", d);
            rc = UV_EINVAL;
        } else if (!has_host && !in->srt_listener) {
            ingest_seterr(err, "%s: malformed URI (missing host)", d);
            rc = UV_EINVAL;
        }
        break;
    }
    case INGEST_KIND_HTTP:
        if (!gst_uri_protocol_is_supported(GST_URI_SRC, sc->scheme)) {
            ingest_seterr(err, "%s: no GStreamer source element for %s://", d, sc->scheme);
            rc = UV_ENOENT;
        }
        /* fall through */
    case INGEST_KIND_RTSP:
    case INGEST_KIND_RTMP:
        if (rc == 0 && !has_host) {
            ingest_seterr(err, "%s: malformed URI (missing host)", d);
            rc = UV_EINVAL;
        }
        break;
    case INGEST_KIND_FILE:
        if (!path || !*path || !strcmp(path, "/")) {
            ingest_seterr(err, "%s: malformed URI (missing file path)", d);
            rc = UV_EINVAL;
        }
        break;
    case INGEST_KIND_V4L2:
        if (!path || strncmp(path, "/dev/", 5)) {
            ingest_seterr(err, "%s: malformed URI (want v4l2:///dev/videoN)", d);
            rc = UV_EINVAL;
        }
        break;
    case INGEST_KIND_TEST:
    case INGEST_KIND_WHIP: /* handled above */
        break;
    }
    if (rc == 0) in->location = g_strdup(sc->kind == INGEST_KIND_V4L2 ? path : src);
    g_free(path);
    gst_uri_unref(uri);
    return rc;
}

/* --- streaming threads: decimation, pads, appsink ------------------------------------- */

/* Runs on a streaming thread: a buffer entering a video decoder.  Packet loss that the
 * transport could not repair (SRT past its latency, RTP over UDP, WebRTC) reaches the
 * decoder as a DISCONT buffer; FFmpeg's H.264 decoder then conceals the damage without a
 * word (no warning, no CORRUPTED flag), so this is the only place it shows.  The first
 * buffer a decoder sees is always DISCONT and is not counted. */
static GstPadProbeReturn ingest_break_cb(GstPad *pad, GstPadProbeInfo *info, gpointer user) {
    ingest *in = user;
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    if (!buf || !GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DISCONT)) return GST_PAD_PROBE_OK;
    if (g_object_get_data(G_OBJECT(pad), "commentaryd-started"))
        atomic_fetch_add(&in->n_breaks, 1);
    else
        g_object_set_data(G_OBJECT(pad), "commentaryd-started", GINT_TO_POINTER(1));
    return GST_PAD_PROBE_OK;
}

/* Runs on a streaming thread: data from an SRT source (for telling a caller that left from
 * a connection that timed out). */
static GstPadProbeReturn ingest_input_cb(GstPad *pad, GstPadProbeInfo *info, gpointer user) {
    (void)pad, (void)info;
    atomic_store(&((ingest *)user)->last_input_us, ingest_now_us());
    return GST_PAD_PROBE_OK;
}

/* Runs on the thread that adds it: an element anywhere in a live run's pipeline (decodebin
 * plugs decoders as it goes).  A video decoder gets the break probe on its input. */
static void ingest_element_added_cb(GstBin *bin, GstBin *sub, GstElement *el, gpointer user) {
    (void)bin, (void)sub;
    GstElementFactory *f = gst_element_get_factory(el);
    const char *klass = f ? gst_element_factory_get_metadata(f, GST_ELEMENT_METADATA_KLASS) : NULL;
    if (!klass || !strstr(klass, "Decoder") || !strstr(klass, "Video")) return;
    GstPad *sink = gst_element_get_static_pad(el, "sink");
    if (sink) {
        gst_pad_add_probe(sink, GST_PAD_PROBE_TYPE_BUFFER, ingest_break_cb, user, NULL);
        gst_object_unref(sink);
    }
}

/* Runs on a streaming thread.  Decides whether buf is the first at or after the next
 * 0.5 s mark; counts it.  May replace *bufp (to stamp a PTS on a buffer without one). */
static bool ingest_decimate(ingest *in, GstBuffer **bufp) {
    GstBuffer *buf = *bufp;
    int64_t now = ingest_now_us();
    atomic_fetch_add(&in->n_decoded, 1);
    atomic_store(&in->last_frame_us, now);
    GstClockTime ts = GST_BUFFER_PTS(buf);
    if (!GST_CLOCK_TIME_IS_VALID(ts)) ts = GST_BUFFER_DTS(buf);
    if (!GST_CLOCK_TIME_IS_VALID(ts)) {
        /* no timestamp at all (rare raw sources): use the pipeline's running time */
        ts = in->pipe ? gst_element_get_current_running_time(in->pipe) : GST_CLOCK_TIME_NONE;
        if (!GST_CLOCK_TIME_IS_VALID(ts)) ts = (GstClockTime)now * 1000;
    }
    if (!GST_CLOCK_TIME_IS_VALID(GST_BUFFER_PTS(buf))) {
        buf = *bufp = gst_buffer_make_writable(buf);
        GST_BUFFER_PTS(buf) = ts;
    }
    ingest_run *r = &in->run;
    if (!r->started) {
        r->started = true;
        r->origin = (int64_t)ts;
        r->next_mark = 0;
        if (!in->t_started) {
            in->t_started = true;
            in->wall_origin_us = now;
            r->offset = 0;
        } else {
            double wall = (double)(now - in->wall_origin_us) / 1e6;
            r->offset = wall > in->last_t + 0.5 ? wall : in->last_t + 0.5;
        }
    }
    int64_t rel = (int64_t)ts - r->origin;
    if (rel < r->next_mark - INGEST_BACKJUMP_NS) {
        /* timestamps went back (a source reset): continue from the next mark */
        r->origin = (int64_t)ts - r->next_mark;
        rel = r->next_mark;
    }
    if (rel < r->next_mark) {
        atomic_fetch_add(&in->n_dropped, 1);
        return false;
    }
    r->next_mark = (rel / INGEST_MARK_NS + 1) * INGEST_MARK_NS;
    return true;
}

/* Runs on a streaming thread: the buffer probe on videoconvert's sink pad. */
static GstPadProbeReturn ingest_decimate_cb(GstPad *pad, GstPadProbeInfo *info, gpointer user) {
    (void)pad;
    ingest *in = user;
    if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
        GstBufferList *list =
            gst_buffer_list_make_writable(gst_pad_probe_info_get_buffer_list(info));
        GST_PAD_PROBE_INFO_DATA(info) = list;
        for (guint i = 0; i < gst_buffer_list_length(list);) {
            GstBuffer *orig = gst_buffer_list_get(list, i);
            GstBuffer *b = gst_buffer_ref(orig); /* ours: ingest_decimate may replace it */
            bool keep = ingest_decimate(in, &b);
            if (keep && b != orig) { /* stamped a copy: put it in place of the original */
                gst_buffer_list_remove(list, i, 1);
                gst_buffer_list_insert(list, (gint)i, b);
            } else {
                gst_buffer_unref(b);
                if (!keep) {
                    gst_buffer_list_remove(list, i, 1);
                    continue;
                }
            }
            i++;
        }
        return gst_buffer_list_length(list) ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
    }
    /* the probe info owns the buffer: a replacement goes back into it (kept or not) */
    GstBuffer *b = gst_pad_probe_info_get_buffer(info), *orig = b;
    bool keep = ingest_decimate(in, &b);
    if (b != orig) GST_PAD_PROBE_INFO_DATA(info) = b;
    return keep ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
}

/* Runs on a streaming thread: appsink's new-sample.  Maps the RGB frame, computes t and
 * hands it to the frame callback; tells the loop the run is live (first frame). */
static GstFlowReturn ingest_sample_cb(GstAppSink *sink, gpointer user) {
    ingest *in = user;
    GstSample *sample = gst_app_sink_pull_sample(sink);
    if (!sample) return GST_FLOW_EOS;
    GstBuffer *buf = gst_sample_get_buffer(sample);
    GstCaps *caps = gst_sample_get_caps(sample);
    GstVideoInfo info;
    GstVideoFrame f;
    if (!buf || !caps || !gst_video_info_from_caps(&info, caps) ||
        !gst_video_frame_map(&f, &info, buf, GST_MAP_READ)) {
        gst_sample_unref(sample);
        return GST_FLOW_OK;
    }
    ingest_run *r = &in->run;
    double t = r->offset + (double)((int64_t)GST_BUFFER_PTS(buf) - r->origin) / 1e9;
    if (t < in->last_t) t = in->last_t; /* never back (last_t is 0 at ingest_start) */
    in->last_t = t;
    atomic_fetch_add(&in->n_kept, 1);
    if (in->cb.frame)
        in->cb.frame(in->user, GST_VIDEO_FRAME_PLANE_DATA(&f, 0), GST_VIDEO_FRAME_WIDTH(&f),
                     GST_VIDEO_FRAME_HEIGHT(&f), GST_VIDEO_FRAME_PLANE_STRIDE(&f, 0), t);
    gst_video_frame_unmap(&f);
    gst_sample_unref(sample);
    if (!r->live_posted) {
        r->live_posted = true;
        GstElement *e = GST_ELEMENT(sink);
        gst_element_post_message(
            e, gst_message_new_application(GST_OBJECT(e), gst_structure_new_empty("ingest-live")));
    }
    return GST_FLOW_OK;
}

/* Runs on a streaming thread: caps events on videoconvert's sink pad.  Some files carry
 * a pixel aspect ratio that is not positive (raw BGR AVIs written by FFmpeg give -1/1),
 * which videoscale refuses: the stream would not negotiate and the source would end as
 * if it had no video.  Such a ratio means "unknown", so it is read as square pixels. */
static GstPadProbeReturn ingest_caps_fix_cb(GstPad *pad, GstPadProbeInfo *info, gpointer user) {
    (void)pad, (void)user;
    GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
    if (GST_EVENT_TYPE(ev) != GST_EVENT_CAPS) return GST_PAD_PROBE_OK;
    GstCaps *caps;
    gst_event_parse_caps(ev, &caps);
    const GstStructure *s = gst_caps_get_size(caps) ? gst_caps_get_structure(caps, 0) : NULL;
    int n, d;
    if (!s || !gst_structure_get_fraction(s, "pixel-aspect-ratio", &n, &d) || (n > 0 && d > 0))
        return GST_PAD_PROBE_OK;
    GstCaps *fixed = gst_caps_copy(caps);
    gst_caps_set_simple(fixed, "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, NULL);
    GstEvent *nev = gst_event_new_caps(fixed);
    gst_caps_unref(fixed);
    gst_event_unref(ev);
    GST_PAD_PROBE_INFO_DATA(info) = nev;
    return GST_PAD_PROBE_OK;
}

static void ingest_pad_added_cb(GstElement *el, GstPad *pad, gpointer user);

/* Runs on a streaming thread: decodebin's autoplug-continue.  Stops at audio so that
 * audio is never decoded (it goes to a fakesink). */
static gboolean ingest_autoplug_continue_cb(GstElement *bin, GstPad *pad, GstCaps *caps,
                                            gpointer user) {
    (void)bin, (void)pad, (void)user;
    const GstStructure *s = gst_caps_get_size(caps) ? gst_caps_get_structure(caps, 0) : NULL;
    return !(s && g_str_has_prefix(gst_structure_get_name(s), "audio/"));
}

/* Runs on a streaming thread: an element's no-more-pads.  A source without any video
 * stream is an error (else it would sit in CONNECTING forever). */
static void ingest_no_more_pads_cb(GstElement *el, gpointer user) {
    ingest *in = user;
    if (atomic_load(&in->video_seen)) return;
    GError *ge = g_error_new_literal(GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE,
                                     "the source has no video stream");
    gst_element_post_message(el, gst_message_new_error(GST_OBJECT(el), ge, NULL));
    g_error_free(ge);
}

/* Adds el to the pipeline (from a streaming thread) and links pad to its sink pad. */
static bool ingest_add_and_link(ingest *in, GstElement *el, GstPad *pad) {
    gst_bin_add(GST_BIN(in->pipe), el);
    GstPad *sink = gst_element_get_static_pad(el, "sink");
    bool ok = gst_pad_link(pad, sink) == GST_PAD_LINK_OK;
    gst_object_unref(sink);
    gst_element_sync_state_with_parent(el);
    return ok;
}

/* Runs on a streaming thread: a dynamic pad of rtspsrc, flvdemux, decodebin or
 * uridecodebin.  Raw video → the tail (once); encoded video → a new decodebin; anything
 * else (audio, a second video stream) → a fakesink, so that it never blocks the source. */
static void ingest_pad_added_cb(GstElement *el, GstPad *pad, gpointer user) {
    ingest *in = user;
    if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
    GstCaps *caps = gst_pad_get_current_caps(pad);
    if (!caps) caps = gst_pad_query_caps(pad, NULL);
    const GstStructure *s =
        caps && gst_caps_get_size(caps) ? gst_caps_get_structure(caps, 0) : NULL;
    const char *name = s ? gst_structure_get_name(s) : "";
    const char *media = s ? gst_structure_get_string(s, "media") : NULL;
    bool raw = !strcmp(name, "video/x-raw");
    bool encoded =
        !raw && (g_str_has_prefix(name, "video/") ||
                 (!strcmp(name, "application/x-rtp") && media && !strcmp(media, "video")));
    bool linked = false;
    if (raw && !atomic_exchange(&in->tail_linked, true)) {
        GstPad *sink = gst_element_get_static_pad(in->conv, "sink");
        linked = gst_pad_link(pad, sink) == GST_PAD_LINK_OK;
        /* a ratio that is not positive fails the caps check; ingest_caps_fix_cb mends it */
        int n, d;
        if (!linked && gst_structure_get_fraction(s, "pixel-aspect-ratio", &n, &d) &&
            (n <= 0 || d <= 0))
            linked = gst_pad_link_full(pad, sink, GST_PAD_LINK_CHECK_NOTHING) == GST_PAD_LINK_OK;
        gst_object_unref(sink);
        if (!linked) atomic_store(&in->tail_linked, false);
    } else if (encoded && !atomic_load(&in->tail_linked)) {
        GstElement *dec = gst_element_factory_make("decodebin", NULL);
        if (dec) {
            g_signal_connect(dec, "pad-added", G_CALLBACK(ingest_pad_added_cb), in);
            g_signal_connect(dec, "autoplug-continue", G_CALLBACK(ingest_autoplug_continue_cb), in);
            linked = ingest_add_and_link(in, dec, pad);
        }
    }
    if (linked) {
        atomic_store(&in->video_seen, true);
    } else {
        GstElement *fs = gst_element_factory_make("fakesink", NULL);
        if (fs) {
            g_object_set(fs, "sync", FALSE, "async", FALSE, NULL);
            ingest_add_and_link(in, fs, pad);
        }
    }
    (void)el;
    if (caps) gst_caps_unref(caps);
}

/* --- loop thread: build, teardown, states ------------------------------------------ */

static GstElement *ingest_make(const char *factory, char *detail) {
    GstElement *e = gst_element_factory_make(factory, NULL);
    if (!e) snprintf(detail, INGEST_DETAIL_LEN, "cannot create GStreamer element '%s'", factory);
    return e;
}

/* The bare `test:` source shows a cycle of videotestsrc scenes, a few seconds each, so
 * the commentary visibly follows the picture: a ball (foreground ≠ background, drawn
 * from black, white, red, green, blue, yellow; any motion), SMPTE colour bars, snow,
 * an 8-pixel checkerboard, a solid colour.  The order is fixed (a hash of the scene
 * number), so every run shows the same sequence.  Scenes change between two frames at
 * whole multiples of INGEST_SCENE_MS of the run's time (ingest_scene_cb), which is also
 * where 1-s chunks start: no chunk mixes two scenes (a timer on the loop changed them
 * anywhere, and one chunk in eight had a frame of each, e.g. "blue ball on blue"). */
#define INGEST_SCENE_MS 4000

static void ingest_apply_scene(ingest *in) {
    static const guint colours[6] = {0xff000000u, 0xffffffffu, 0xffff0000u,
                                     0xff00ff00u, 0xff0000ffu, 0xffffff00u};
    static const char *names[6] = {"black", "white", "red", "green", "blue", "yellow"};
    static const char *motions[3] = {"wavy", "sweep", "hsweep"};
    static const char *others[4] = {"smpte", "snow", "checkers-8", "solid-color"};
    if (!in->testsrc) return;
    uint64_t h = (in->scene_n + 1) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    GObject *o = G_OBJECT(in->testsrc);
    unsigned f = (unsigned)(h % 6), b = (f + 1 + (unsigned)((h >> 8) % 5)) % 6;
    const char *p = in->scene_n % 2 == 0 ? "ball" : others[(h >> 16) % 4]; /* every other a ball */
    const char *m = motions[(h >> 16) % 3];
    gst_util_set_object_arg(o, "pattern", p);
    gst_util_set_object_arg(o, "motion", m);
    g_object_set(o, "foreground-color", colours[f], "background-color", colours[b], NULL);
    /* what tests/t-default-model-daemon.sh checks the commentary against */
    LOGD("ingest[%s] test scene %llu: pattern=%s foreground=%s background=%s motion=%s", in->id,
         (unsigned long long)in->scene_n, p, names[f], names[b], m);
}

/* Runs on: the test source's streaming thread, as each frame leaves videotestsrc and
 * before it makes the next, so properties set here apply from the next frame on (the
 * same switch scripts/default_model/scenes.py renders its clips with).  Scene time starts
 * at the run's first frame, as stream time does for the first run (ingest_decimate_cb);
 * a later run's stream time adds the wall time of the gap (any fraction of a second), so
 * after a rebuild a chunk can mix two scenes again, one in eight as before. */
static GstPadProbeReturn ingest_scene_cb(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
    (void)pad;
    ingest *in = data;
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    if (!buf || !GST_BUFFER_PTS_IS_VALID(buf) || !GST_BUFFER_DURATION_IS_VALID(buf))
        return GST_PAD_PROBE_OK;
    int64_t next = (int64_t)(GST_BUFFER_PTS(buf) + GST_BUFFER_DURATION(buf));
    int64_t scene_ns = (int64_t)INGEST_SCENE_MS * 1000000;
    if (in->scene_end < 0) in->scene_end = (int64_t)GST_BUFFER_PTS(buf) + scene_ns;
    if (next >= in->scene_end) {
        in->scene_end += scene_ns;
        in->scene_n++;
        ingest_apply_scene(in);
    }
    return GST_PAD_PROBE_OK;
}

/* --- WHIP: one webrtcbin per publisher ------------------------------------------------ *
 *
 * ingest_whip_offer builds the run's pipeline (webrtcbin → a decodebin per video pad →
 * the tail; audio pads → fakesink) and sets the publisher's offer.  webrtcbin's own thread
 * then runs the promise chain set-remote-description → create-answer →
 * set-local-description, each step from the previous one's change_func (never
 * gst_promise_wait there: docs/PLATFORM.md).  Those callbacks and the ICE notifications touch
 * only the webrtcbin they were given (a reference the promise holds) and post application
 * messages from it, which the loop reads off the bus (ingest_whip_message):
 *   ingest-whip-local-set  the answer is the local description: ICE gathering runs
 *   ingest-whip-gathered   ICE gathering is complete
 *   ingest-whip-failed     reason: a step of the negotiation failed
 *   ingest-whip-left       reason: ICE or the peer connection failed or closed
 * No trickle: the answer is read from local-description (which carries the candidates)
 * once gathering is complete, or INGEST_WHIP_GATHER_MS after the local description was
 * set with the candidates found by then (a STUN/TURN server that never answers).
 * A run that ends for any reason ends the ingest (ENDED): the next offer starts a new
 * run, with stream time continuing as after a reconnect. */

static void ingest_fail(ingest *in, const char *detail, bool eos);

/* Runs on a webrtcbin thread.  Posts an ingest-whip-* message from wb to the loop. */
static void ingest_whip_post(GstElement *wb, const char *name, const char *reason) {
    GstStructure *st = gst_structure_new(name, "reason", G_TYPE_STRING, reason ? reason : "", NULL);
    gst_element_post_message(wb, gst_message_new_application(GST_OBJECT(wb), st));
}

/* The error text of a promise's reply, or NULL when it succeeded (no reply structure,
 * as set-*-description give on success, or one without an "error" field).  *ge is set to
 * the GError to free, if any. */
static const char *ingest_whip_reply_error(const GstStructure *r, GError **ge) {
    *ge = NULL;
    if (!r) return NULL;
    if (gst_structure_has_field(r, "error") &&
        gst_structure_get(r, "error", G_TYPE_ERROR, ge, NULL))
        return *ge && (*ge)->message ? (*ge)->message : "error";
    return NULL;
}

/* Runs on a webrtcbin thread: set-local-description answered. */
static void ingest_whip_local_set_cb(GstPromise *p, gpointer user) {
    GstElement *wb = user;
    GError *ge;
    const char *why = ingest_whip_reply_error(gst_promise_get_reply(p), &ge);
    if (why) {
        char reason[INGEST_DETAIL_LEN];
        snprintf(reason, sizeof reason, "cannot set the answer: %s", why);
        ingest_whip_post(wb, "ingest-whip-failed", reason);
    } else {
        ingest_whip_post(wb, "ingest-whip-local-set", NULL);
    }
    g_clear_error(&ge);
    gst_promise_unref(p);
}

/* Runs on a webrtcbin thread: create-answer answered; set the answer as the local
 * description (its promise's change_func goes on). */
static void ingest_whip_answer_cb(GstPromise *p, gpointer user) {
    GstElement *wb = user;
    const GstStructure *r = gst_promise_get_reply(p);
    GstWebRTCSessionDescription *answer = NULL;
    GError *ge;
    const char *why = ingest_whip_reply_error(r, &ge);
    if (!why &&
        !(r && gst_structure_get(r, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &answer, NULL) &&
          answer))
        why = "no answer";
    if (why) {
        char reason[INGEST_DETAIL_LEN];
        snprintf(reason, sizeof reason, "cannot answer the offer: %s", why);
        ingest_whip_post(wb, "ingest-whip-failed", reason);
    } else {
        GstPromise *next = gst_promise_new_with_change_func(ingest_whip_local_set_cb,
                                                            gst_object_ref(wb), gst_object_unref);
        g_signal_emit_by_name(wb, "set-local-description", answer, next);
        gst_webrtc_session_description_free(answer);
    }
    g_clear_error(&ge);
    gst_promise_unref(p);
}

/* Runs on a webrtcbin thread: set-remote-description answered; create the answer. */
static void ingest_whip_remote_set_cb(GstPromise *p, gpointer user) {
    GstElement *wb = user;
    GError *ge;
    const char *why = ingest_whip_reply_error(gst_promise_get_reply(p), &ge);
    if (why) {
        char reason[INGEST_DETAIL_LEN];
        snprintf(reason, sizeof reason, "the offer was refused: %s", why);
        ingest_whip_post(wb, "ingest-whip-failed", reason);
    } else {
        GstPromise *next = gst_promise_new_with_change_func(ingest_whip_answer_cb,
                                                            gst_object_ref(wb), gst_object_unref);
        g_signal_emit_by_name(wb, "create-answer", NULL, next);
    }
    g_clear_error(&ge);
    gst_promise_unref(p);
}

/* Runs on a webrtcbin thread: notify::ice-gathering-state. */
static void ingest_whip_gathering_cb(GstElement *wb, GParamSpec *ps, gpointer user) {
    (void)ps, (void)user;
    GstWebRTCICEGatheringState st = GST_WEBRTC_ICE_GATHERING_STATE_NEW;
    g_object_get(wb, "ice-gathering-state", &st, NULL);
    if (st == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE)
        ingest_whip_post(wb, "ingest-whip-gathered", NULL);
}

/* Runs on a webrtcbin thread: notify::ice-connection-state and notify::connection-state.
 * Failed or closed means the publisher is gone (a publisher that just vanishes keeps
 * ICE "connected": the stall watchdog ends that run). */
static void ingest_whip_connection_cb(GstElement *wb, GParamSpec *ps, gpointer user) {
    (void)user;
    const char *why = NULL;
    if (!strcmp(ps->name, "ice-connection-state")) {
        GstWebRTCICEConnectionState st = GST_WEBRTC_ICE_CONNECTION_STATE_NEW;
        g_object_get(wb, "ice-connection-state", &st, NULL);
        if (st == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED)
            why = "ICE failed";
        else if (st == GST_WEBRTC_ICE_CONNECTION_STATE_CLOSED)
            why = "ICE closed";
    } else {
        GstWebRTCPeerConnectionState st = GST_WEBRTC_PEER_CONNECTION_STATE_NEW;
        g_object_get(wb, "connection-state", &st, NULL);
        if (st == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED)
            why = "the connection failed";
        else if (st == GST_WEBRTC_PEER_CONNECTION_STATE_CLOSED)
            why = "the connection closed";
    }
    if (why) ingest_whip_post(wb, "ingest-whip-left", why);
}

/* Runs on a webrtcbin thread: a transceiver made for one of the offer's m-lines.  NACKs
 * ask the publisher to resend lost packets (OBS and browsers offer "nack"). */
static void ingest_whip_transceiver_cb(GstElement *wb, GstWebRTCRTPTransceiver *t, gpointer user) {
    (void)wb, (void)user;
    g_object_set(t, "do-nack", TRUE, NULL);
}

/* Session-level a=setup, a=ice-ufrag, a=ice-pwd and a=fingerprint copied into every
 * m-section that lacks its own.  OBS's offers (libdatachannel) carry them at session level
 * only, which SDP allows (RFC 8866 §5) but webrtcbin 1.22 refuses ("media 0 is missing or
 * contains an empty 'setup' attribute"). */
static void ingest_whip_normalize_offer(GstSDPMessage *msg) {
    static const char *const keys[] = {"setup", "ice-ufrag", "ice-pwd", "fingerprint"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *v = gst_sdp_message_get_attribute_val(msg, keys[k]);
        if (!v) continue;
        for (guint i = 0; i < gst_sdp_message_medias_len(msg); i++) {
            GstSDPMedia *m = (GstSDPMedia *)gst_sdp_message_get_media(msg, i);
            if (!gst_sdp_media_get_attribute_val(m, keys[k]))
                gst_sdp_media_add_attribute(m, keys[k], v);
        }
    }
}

/* Runs on: loop (ingest_build).  Configures the run's webrtcbin: max-bundle, the ICE
 * servers and port range, UPnP off (libnice would otherwise send SSDP multicast), the
 * jitter buffer, and the signals above. */
static void ingest_whip_setup(ingest *in, GstElement *wb) {
    g_object_set(wb, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, NULL);
    if (in->stun_server) g_object_set(wb, "stun-server", in->stun_server, NULL);
    if (in->turn_server) g_object_set(wb, "turn-server", in->turn_server, NULL);
    if (in->latency_ms > 0) g_object_set(wb, "latency", (guint)in->latency_ms, NULL);
    GstWebRTCICE *ice = NULL;
    g_object_get(wb, "ice-agent", &ice, NULL);
    if (ice) {
        if (in->port_min > 0) g_object_set(ice, "min-rtp-port", (guint)in->port_min, NULL);
        if (in->port_max > 0) g_object_set(ice, "max-rtp-port", (guint)in->port_max, NULL);
        GObject *agent = NULL;
        if (g_object_class_find_property(G_OBJECT_GET_CLASS(ice), "agent"))
            g_object_get(ice, "agent", &agent, NULL);
        if (agent) {
            g_object_set(agent, "upnp", FALSE, NULL);
            g_object_unref(agent);
        } else {
            LOGW("ingest[%s] cannot turn UPnP off: the ICE agent is not libnice", in->id);
        }
        gst_object_unref(ice);
    }
    g_signal_connect(wb, "pad-added", G_CALLBACK(ingest_pad_added_cb), in);
    g_signal_connect(wb, "on-new-transceiver", G_CALLBACK(ingest_whip_transceiver_cb), NULL);
    g_signal_connect(wb, "notify::ice-gathering-state", G_CALLBACK(ingest_whip_gathering_cb), NULL);
    g_signal_connect(wb, "notify::ice-connection-state", G_CALLBACK(ingest_whip_connection_cb),
                     NULL);
    g_signal_connect(wb, "notify::connection-state", G_CALLBACK(ingest_whip_connection_cb), NULL);
    in->webrtc = wb;
}

/* Runs on: loop.  Pays an owed answer: sdp, or NULL and why.  The callee may stop or free
 * the ingest. */
static void ingest_whip_settle(ingest *in, const char *sdp, const char *why) {
    ingest_answer_cb cb = in->answer_cb;
    if (!cb) return;
    in->answer_cb = NULL;
    cb(in->answer_user, in->whip_tag, sdp, sdp ? NULL : why);
}

/* Runs on: loop.  Answers once the local description is set and gathering is complete
 * (or, with force, with the candidates gathered so far). */
static void ingest_whip_maybe_answer(ingest *in, bool force) {
    if (!in->answer_cb || !in->webrtc || !in->whip_local_set) return;
    if (!in->whip_gathered && !force) return;
    uv_timer_stop(&in->retry);
    GstWebRTCSessionDescription *desc = NULL;
    g_object_get(in->webrtc, "local-description", &desc, NULL);
    gchar *text = desc && desc->sdp ? gst_sdp_message_as_text(desc->sdp) : NULL;
    if (desc) gst_webrtc_session_description_free(desc);
    if (!text) {
        ingest_fail(in, "no local description after set-local-description", false);
        return;
    }
    if (force)
        LOGW("ingest[%s] ICE gathering is slow: answering with the candidates so far", in->id);
    else
        LOGI("ingest[%s] WHIP answer ready", in->id);
    uint64_t tag = in->whip_tag;
    ingest_answer_cb cb = in->answer_cb;
    in->answer_cb = NULL;
    cb(in->answer_user, tag, text, NULL);
    g_free(text);
}

/* Runs on: loop (the retry timer, unused otherwise by WHIP runs). */
static void ingest_whip_gather_timeout_cb(uv_timer_t *t) {
    ingest_whip_maybe_answer(t->data, true);
}

/* Runs on: loop.  An ingest-whip-* message of the current run. */
static void ingest_whip_message(ingest *in, const GstStructure *s) {
    const char *name = gst_structure_get_name(s);
    const char *reason = gst_structure_get_string(s, "reason");
    if (!strcmp(name, "ingest-whip-local-set")) {
        in->whip_local_set = true;
        if (!in->whip_gathered)
            uv_timer_start(&in->retry, ingest_whip_gather_timeout_cb, INGEST_WHIP_GATHER_MS, 0);
        ingest_whip_maybe_answer(in, false);
    } else if (!strcmp(name, "ingest-whip-gathered")) {
        in->whip_gathered = true;
        ingest_whip_maybe_answer(in, false);
    } else if (!strcmp(name, "ingest-whip-failed") || !strcmp(name, "ingest-whip-left")) {
        ingest_fail(in, reason && *reason ? reason : "the session failed", false);
    }
}

/* Builds the pipeline for one run into in->pipe (not started).  Returns 0 or
 * UV_ENOENT with detail filled. */
static int ingest_build(ingest *in, char *detail) {
    GstElement *pipe = gst_pipeline_new(NULL);
    gst_pipeline_set_auto_flush_bus(GST_PIPELINE(pipe), FALSE);
    gst_element_set_bus(pipe, in->bus);
    if (in->live) g_signal_connect(pipe, "deep-element-added", G_CALLBACK(ingest_element_added_cb), in);
    GstElement *conv = ingest_make("videoconvert", detail);
    GstElement *scale = ingest_make("videoscale", detail);
    GstElement *filter = ingest_make("capsfilter", detail);
    GstElement *sink = ingest_make("appsink", detail);
    GstElement *src = NULL, *mid = NULL, *dec = NULL;
    switch (in->kind) {
    case INGEST_KIND_TEST:
        src = ingest_make("videotestsrc", detail);
        mid = ingest_make("capsfilter", detail);
        break;
    case INGEST_KIND_RTSP:
        src = ingest_make("rtspsrc", detail);
        break;
    case INGEST_KIND_SRT:
        src = ingest_make("srtsrc", detail);
        dec = ingest_make("decodebin", detail);
        break;
    case INGEST_KIND_RTMP:
        src = ingest_make("rtmp2src", detail);
        mid = ingest_make("flvdemux", detail);
        break;
    case INGEST_KIND_FILE:
    case INGEST_KIND_HTTP:
        src = ingest_make("uridecodebin", detail);
        break;
    case INGEST_KIND_V4L2:
        src = ingest_make("v4l2src", detail);
        dec = ingest_make("decodebin", detail);
        break;
    case INGEST_KIND_WHIP:
        src = ingest_make("webrtcbin", detail);
        break;
    }
    bool have_mid = in->kind == INGEST_KIND_TEST || in->kind == INGEST_KIND_RTMP;
    bool have_dec = in->kind == INGEST_KIND_SRT || in->kind == INGEST_KIND_V4L2;
    if (!conv || !scale || !filter || !sink || !src || (have_mid && !mid) || (have_dec && !dec)) {
        GstElement *all[] = {conv, scale, filter, sink, src, mid, dec};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (all[i]) gst_object_unref(gst_object_ref_sink(all[i]));
        gst_object_unref(pipe);
        return UV_ENOENT;
    }
    gst_bin_add_many(GST_BIN(pipe), conv, scale, filter, sink, src, NULL);
    if (mid) gst_bin_add(GST_BIN(pipe), mid);
    if (dec) gst_bin_add(GST_BIN(pipe), dec);

    /* tail: videoconvert → videoscale → RGB W×H caps → appsink */
    g_object_set(scale, "add-borders", FALSE, NULL); /* stretch like HF's resize, no bars */
    GstCaps *rgb = gst_caps_new_simple(
        "video/x-raw", "format", G_TYPE_STRING, "RGB", "width", G_TYPE_INT, (int)in->width,
        "height", G_TYPE_INT, (int)in->height, "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, NULL);
    g_object_set(filter, "caps", rgb, NULL);
    gst_caps_unref(rgb);
    /* live: drop old frames rather than stall the source; files: back-pressure */
    g_object_set(sink, "drop", in->live ? TRUE : FALSE, "max-buffers", 2, "sync",
                 (!in->live && in->realtime) ? TRUE : FALSE, "emit-signals", FALSE, NULL);
    GstAppSinkCallbacks cbs = {.new_sample = ingest_sample_cb};
    gst_app_sink_set_callbacks(GST_APP_SINK(sink), &cbs, in, NULL);
    gst_element_link_many(conv, scale, filter, sink, NULL);
    GstPad *cpad = gst_element_get_static_pad(conv, "sink");
    gst_pad_add_probe(cpad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
                      ingest_decimate_cb, in, NULL);
    gst_pad_add_probe(cpad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, ingest_caps_fix_cb, NULL, NULL);
    gst_object_unref(cpad);

    int rc = 0;
    switch (in->kind) {
    case INGEST_KIND_TEST: {
        GstCaps *caps = NULL;
        char err[INGEST_ERR_LEN];
        rc = ingest_test_apply(in->location, in->display, src, &caps, err);
        if (rc) {
            snprintf(detail, INGEST_DETAIL_LEN, "%s", err);
            break;
        }
        g_object_set(mid, "caps", caps, NULL);
        gst_caps_unref(caps);
        in->testsrc = src;
        if (in->cycle) { /* each run goes on with the cycle where the last one left it */
            ingest_apply_scene(in);
            in->scene_end = -1;
            GstPad *spad = gst_element_get_static_pad(src, "src");
            gst_pad_add_probe(spad, GST_PAD_PROBE_TYPE_BUFFER, ingest_scene_cb, in, NULL);
            gst_object_unref(spad);
        }
        gst_element_link_many(src, mid, conv, NULL);
        atomic_store(&in->tail_linked, true);
        atomic_store(&in->video_seen, true);
        break;
    }
    case INGEST_KIND_RTSP:
        g_object_set(src, "location", in->location, NULL);
        if (in->latency_ms > 0) g_object_set(src, "latency", (guint)in->latency_ms, NULL);
        g_signal_connect(src, "pad-added", G_CALLBACK(ingest_pad_added_cb), in);
        g_signal_connect(src, "no-more-pads", G_CALLBACK(ingest_no_more_pads_cb), in);
        break;
    case INGEST_KIND_SRT: {
        g_object_set(src, "uri", in->location, NULL);
        GstPad *spad = gst_element_get_static_pad(src, "src");
        gst_pad_add_probe(spad, GST_PAD_PROBE_TYPE_BUFFER, ingest_input_cb, in, NULL);
        gst_object_unref(spad);
        /* the URI's own latency= wins over the configured one */
        if (in->latency_ms > 0 && !strstr(in->location, "latency="))
            g_object_set(src, "latency", (gint)in->latency_ms, NULL);
        break;
    }
    case INGEST_KIND_RTMP:
        g_object_set(src, "location", in->location, NULL);
        gst_element_link(src, mid);
        g_signal_connect(mid, "pad-added", G_CALLBACK(ingest_pad_added_cb), in);
        g_signal_connect(mid, "no-more-pads", G_CALLBACK(ingest_no_more_pads_cb), in);
        break;
    case INGEST_KIND_FILE:
    case INGEST_KIND_HTTP:
        g_object_set(src, "uri", in->location, NULL);
        g_signal_connect(src, "pad-added", G_CALLBACK(ingest_pad_added_cb), in);
        g_signal_connect(src, "autoplug-continue", G_CALLBACK(ingest_autoplug_continue_cb), in);
        g_signal_connect(src, "no-more-pads", G_CALLBACK(ingest_no_more_pads_cb), in);
        break;
    case INGEST_KIND_V4L2:
        g_object_set(src, "device", in->location, NULL);
        break;
    case INGEST_KIND_WHIP:
        ingest_whip_setup(in, src);
        break;
    }
    if (dec) {
        gst_element_link(src, dec);
        g_signal_connect(dec, "pad-added", G_CALLBACK(ingest_pad_added_cb), in);
        g_signal_connect(dec, "autoplug-continue", G_CALLBACK(ingest_autoplug_continue_cb), in);
        g_signal_connect(dec, "no-more-pads", G_CALLBACK(ingest_no_more_pads_cb), in);
    }
    if (rc) {
        gst_object_unref(pipe);
        return rc;
    }
    in->pipe = pipe;
    in->conv = conv;
    return 0;
}

/* Pipeline to NULL (joins the streaming threads), dropped; stale bus messages flushed. */
static void ingest_teardown(ingest *in) {
    if (!in->pipe) return;
    gst_element_set_state(in->pipe, GST_STATE_NULL);
    gst_object_unref(in->pipe);
    in->pipe = NULL;
    in->conv = NULL;
    in->testsrc = NULL;
    in->webrtc = NULL;
    in->whip_local_set = in->whip_gathered = false;
    gst_bus_set_flushing(in->bus, TRUE);
    gst_bus_set_flushing(in->bus, FALSE);
}

/* Records the state and tells the callback.  Call last: the callee may stop or free. */
static void ingest_set_state(ingest *in, ingest_state st, const char *detail, double retry_s) {
    in->state = st;
    if (in->cb.state) in->cb.state(in->user, st, detail, retry_s);
}

/* "Message (the debug text's last line)" of an error or warning message, with the
 * secrets of any URL it quotes masked (GStreamer quotes the source's). */
static void ingest_describe(GstMessage *m, char *out, size_t cap) {
    GError *ge = NULL;
    gchar *dbg = NULL;
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR)
        gst_message_parse_error(m, &ge, &dbg);
    else
        gst_message_parse_warning(m, &ge, &dbg);
    const char *msg = ge && ge->message ? ge->message : "unknown error";
    const char *tail = dbg ? strrchr(dbg, '\n') : NULL;
    tail = tail ? tail + 1 : NULL;
    if (tail && *tail && strlen(tail) < 200 && !strstr(msg, tail))
        snprintf(out, cap, "%s (%s)", msg, tail);
    else
        snprintf(out, cap, "%s", msg);
    g_clear_error(&ge);
    g_free(dbg);
    char *masked = config_mask_source(out);
    if (masked) snprintf(out, cap, "%s", masked);
    free(masked);
}

static void ingest_fail(ingest *in, const char *detail, bool eos);

/* Builds and starts one run.  A failure to build or to start is handled like a run
 * that failed (reconnect or end). */
static void ingest_run_reset(ingest *in) {
    memset(&in->run, 0, sizeof in->run);
    in->last_warning[0] = '\0';
    atomic_store(&in->tail_linked, false);
    atomic_store(&in->video_seen, false);
    atomic_store(&in->last_frame_us, 0);
    atomic_store(&in->last_input_us, 0);
    in->run_start_us = ingest_now_us();
}

static void ingest_launch(ingest *in) {
    char detail[INGEST_DETAIL_LEN] = "";
    ingest_run_reset(in);
    if (ingest_build(in, detail) != 0) {
        ingest_fail(in, detail, false);
        return;
    }
    if (gst_element_set_state(in->pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
        /* the reason is on the bus; take it now so the failure is handled exactly once */
        GstMessage *m = gst_bus_pop_filtered(in->bus, GST_MESSAGE_ERROR);
        snprintf(detail, sizeof detail, "failed to start the pipeline");
        if (m) {
            ingest_describe(m, detail, sizeof detail);
            gst_message_unref(m);
        }
        ingest_fail(in, detail, false);
    }
}

/* Runs on: loop (the retry timer). */
static void ingest_retry_cb(uv_timer_t *t) {
    ingest *in = t->data;
    atomic_fetch_add(&in->n_reconnects, 1);
    ingest_launch(in);
}

/* The run failed (error, stall, or EOS when eos): tear it down, then end (not live) or
 * schedule a rebuild after the backoff delay. */
static void ingest_fail(ingest *in, const char *detail, bool eos) {
    ingest_teardown(in);
    if (in->kind == INGEST_KIND_WHIP) { /* the publisher is gone: no one to reconnect to */
        uv_timer_stop(&in->retry);
        ingest_whip_settle(in, NULL, detail ? detail : "the session ended");
        in->whip_tag = 0;
        if (!in->started) return; /* the answer's callee stopped or freed the ingest */
        if (detail)
            LOGW("ingest[%s] WHIP session ended: %s", in->id, detail);
        else
            LOGI("ingest[%s] WHIP session ended by the publisher", in->id);
        ingest_set_state(in, INGEST_ENDED, detail, 0);
        return;
    }
    if (!in->live) {
        if (detail)
            LOGE("ingest[%s] ended: %s", in->id, detail);
        else
            LOGI("ingest[%s] ended (end of stream)", in->id);
        ingest_set_state(in, INGEST_ENDED, detail, 0);
        return;
    }
    int64_t now = ingest_now_us();
    if (in->state == INGEST_LIVE && now - in->live_since_us >= (int64_t)(INGEST_STABLE_S * 1e6))
        in->next_delay_s = in->reconnect_min_s;
    double delay = in->next_delay_s;
    if (eos && in->srt_listener) {
        delay = in->reconnect_min_s; /* the caller left: listen again at once */
    } else {
        in->next_delay_s =
            in->next_delay_s * 2 > in->reconnect_max_s ? in->reconnect_max_s : in->next_delay_s * 2;
    }
    LOGW("ingest[%s] reconnect in %.*fs: %s", in->id, delay < 1 ? 2 : 1, delay, detail);
    uv_timer_start(&in->retry, ingest_retry_cb, (uint64_t)(delay * 1000 + 0.5), 0);
    ingest_set_state(in, INGEST_RECONNECTING, detail, delay);
}

/* Handles one bus message of the current run. */
static void ingest_message(ingest *in, GstMessage *m) {
    char detail[INGEST_DETAIL_LEN];
    switch (GST_MESSAGE_TYPE(m)) {
    case GST_MESSAGE_ERROR:
        ingest_describe(m, detail, sizeof detail);
        ingest_fail(in, detail, false);
        break;
    case GST_MESSAGE_EOS:
        if (!in->live) {
            ingest_fail(in, NULL, true);
        } else if (in->srt_listener) {
            /* srtsrc ends the stream both when the caller closes and when the connection
             * times out (no packet for SRT's peer idle timeout, 5 s): tell them apart by
             * the source's last data (not the last frame: the decoder drains at the end) */
            int64_t last = atomic_load(&in->last_input_us), quiet = ingest_now_us() - last;
            if (last && quiet > 3000000) {
                snprintf(detail, sizeof detail, "the connection to the caller was lost (nothing "
                         "for %.0f s)", quiet / 1e6);
                ingest_fail(in, detail, true);
            } else {
                ingest_fail(in, "the caller left (end of stream)", true);
            }
        } else { /* say why when a warning did (rtspsrc: "The server closed the connection") */
            snprintf(detail, sizeof detail, "end of stream%s%s", in->last_warning[0] ? ": " : "",
                     in->last_warning);
            ingest_fail(in, detail, true);
        }
        break;
    case GST_MESSAGE_WARNING: { /* some decoders warn per broken frame: one line a second */
        ingest_describe(m, in->last_warning, sizeof in->last_warning);
        int64_t now = ingest_now_us();
        if (in->warn_logged_us && now - in->warn_logged_us < 1000000) {
            in->warn_suppressed++;
            break;
        }
        if (in->warn_suppressed)
            LOGW("ingest[%s] %s (and %" PRId64 " more warnings)", in->id, in->last_warning,
                 in->warn_suppressed);
        else
            LOGW("ingest[%s] %s", in->id, in->last_warning);
        in->warn_logged_us = now;
        in->warn_suppressed = 0;
        break;
    }
    case GST_MESSAGE_APPLICATION: {
        const GstStructure *s = gst_message_get_structure(m);
        if (s && g_str_has_prefix(gst_structure_get_name(s), "ingest-whip-")) {
            ingest_whip_message(in, s);
        } else if (s && gst_structure_has_name(s, "ingest-live") && in->state != INGEST_LIVE &&
                   in->state != INGEST_ENDED) {
            in->live_since_us = ingest_now_us();
            LOGI("ingest[%s] live: %s → %" PRId64 "x%" PRId64 " RGB", in->id, in->display,
                 in->width, in->height);
            ingest_set_state(in, INGEST_LIVE, NULL, 0);
        }
        break;
    }
    default:
        break;
    }
}

/* Runs on: loop (uv_poll on the bus fd).  Drains the bus. */
static void ingest_bus_cb(uv_poll_t *h, int status, int events) {
    ingest *in = h->data;
    (void)events;
    if (status < 0) {
        LOGE("ingest[%s] bus poll: %s", in->id, uv_strerror(status));
        return;
    }
    GstMessage *m;
    while (in->started && !in->freeing && (m = gst_bus_pop(in->bus))) {
        /* a message can be left over from a run that is gone (the flush in
         * ingest_teardown drops the rest); a run that is gone gets no say */
        if (in->pipe) ingest_message(in, m);
        gst_message_unref(m);
    }
}

/* Runs on: loop (the watchdog timer).  A live stream that stopped decoding frames. */
static void ingest_watchdog_cb(uv_timer_t *t) {
    ingest *in = t->data;
    if (!in->pipe || !in->live || in->stall_s <= 0) return;
    int64_t now = ingest_now_us(), last = atomic_load(&in->last_frame_us);
    uint64_t breaks = atomic_load(&in->n_breaks);
    if (breaks > in->breaks_logged &&
        (!in->breaks_logged_us || now - in->breaks_logged_us >= INGEST_BREAKS_LOG_S * 1000000)) {
        const char *hint = in->kind == INGEST_KIND_RTSP
                               ? " (rtspt://, RTP over the RTSP TCP connection, cannot lose it)"
                           : in->kind == INGEST_KIND_SRT || in->kind == INGEST_KIND_WHIP
                               ? " (a larger latency gives the transport time to resend it)"
                               : "";
        LOGW("ingest[%s] video data lost in transit: %" PRIu64 " break%s in the compressed video "
             "since %s; the pictures are damaged until the next key frame%s", in->id,
             breaks - in->breaks_logged, breaks - in->breaks_logged == 1 ? "" : "s",
             in->breaks_logged_us ? "the last report" : "the start", hint);
        in->breaks_logged = breaks;
        in->breaks_logged_us = now;
    }
    char detail[INGEST_DETAIL_LEN];
    if (in->state == INGEST_LIVE && last && now - last > (int64_t)(in->stall_s * 1e6)) {
        snprintf(detail, sizeof detail, "no frames for %.0f s", in->stall_s);
        ingest_fail(in, detail, false);
    } else if (in->state != INGEST_LIVE && !in->srt_listener && !last &&
               now - in->run_start_us > (int64_t)(3 * in->stall_s * 1e6)) {
        snprintf(detail, sizeof detail, "no frame within %.0f s of connecting", 3 * in->stall_s);
        ingest_fail(in, detail, false);
    }
}

/* --- public API ---------------------------------------------------------------------- */

/* A stopped ingest that only holds source (parsed into kind/location/live): the checks'
 * scratch object.  Returns ingest_parse_source's result; free with probe_free. */
static int probe_parse(ingest *probe, const char *source, char *err) {
    if (!gst_is_initialized()) gst_init(NULL, NULL);
    *probe = (ingest){0};
    probe->source = g_strdup(source);
    probe->display = ingest_mask(source);
    return ingest_parse_source(probe, err);
}

static void probe_free(ingest *probe) {
    g_free(probe->source);
    g_free(probe->display);
    g_free(probe->location);
}

/* Runs on: any.  ingest_new's source checks alone (ingest.h). */
int ingest_check_source(const char *source, bool *live, char *err) {
    ingest probe;
    int rc = probe_parse(&probe, source, err);
    if (live) *live = probe.live; /* known once the scheme is, even if an element is missing */
    probe_free(&probe);
    return rc;
}

/* Runs on: any.  A local file that cannot be read now (ingest.h). */
int ingest_check_file(const char *source, char *err) {
    ingest probe;
    int rc = probe_parse(&probe, source, err);
    if (rc == 0 && probe.kind == INGEST_KIND_FILE) {
        gchar *path = g_filename_from_uri(probe.location, NULL, NULL);
        struct stat st;
        if (!path) rc = UV_EINVAL, ingest_seterr(err, "%s: not a local file", probe.display);
        else if (stat(path, &st) != 0 || access(path, R_OK) != 0)
            rc = -errno, ingest_seterr(err, "%s: %s", probe.display, strerror(errno));
        else if (S_ISDIR(st.st_mode))
            rc = UV_EISDIR, ingest_seterr(err, "%s: is a directory", probe.display);
        g_free(path);
    }
    probe_free(&probe);
    return rc;
}

/* Runs on: loop.  Validates p and the source, then creates a stopped ingest (ingest.h). */
int ingest_new(const ingest_params *p, const ingest_callbacks *cb, void *user, ingest **out,
               char *err) {
    *out = NULL;
    const char *id = p && p->id && *p->id ? p->id : "?";
    if (!p || !p->loop || !p->source) {
        ingest_seterr(err, "ingest[%s]: missing loop or source", id);
        return UV_EINVAL;
    }
    if (p->width < 16 || p->height < 16 || p->width > 8192 || p->height > 8192) {
        ingest_seterr(err, "ingest[%s]: bad output size %" PRId64 "x%" PRId64 " (want 16..8192)",
                      id, p->width, p->height);
        return UV_EINVAL;
    }
    double rmin = p->reconnect_min_s > 0 ? p->reconnect_min_s : 0.5;
    double rmax = p->reconnect_max_s > 0 ? p->reconnect_max_s : 30.0;
    if (rmax < rmin || rmax > 86400 || p->latency_ms < 0 || p->latency_ms > 60000) {
        ingest_seterr(err,
                      "ingest[%s]: bad reconnect delays (%g..%g s) or latency (%" PRId64 " ms)", id,
                      rmin, rmax, p->latency_ms);
        return UV_EINVAL;
    }
    if (p->port_min < 0 || p->port_max < 0 || p->port_min > 65535 || p->port_max > 65535 ||
        (p->port_max && p->port_max < p->port_min)) {
        ingest_seterr(err, "ingest[%s]: bad WebRTC port range %" PRId64 "..%" PRId64, id,
                      p->port_min, p->port_max);
        return UV_EINVAL;
    }
    if (!gst_is_initialized()) gst_init(NULL, NULL);

    ingest *in = calloc(1, sizeof *in);
    if (!in) {
        ingest_seterr(err, "ingest[%s]: out of memory", id);
        return UV_ENOMEM;
    }
    in->id = g_strdup(id);
    in->source = g_strdup(p->source);
    in->display = ingest_mask(p->source);
    in->width = p->width;
    in->height = p->height;
    in->reconnect_min_s = rmin;
    in->reconnect_max_s = rmax;
    in->latency_ms = p->latency_ms;
    in->stall_s = p->stall_timeout_s == 0 ? 10.0 : p->stall_timeout_s;
    in->stun_server = p->stun_server && *p->stun_server ? g_strdup(p->stun_server) : NULL;
    in->turn_server = p->turn_server && *p->turn_server ? g_strdup(p->turn_server) : NULL;
    in->port_min = p->port_min;
    in->port_max = p->port_max;
    in->realtime = p->realtime;
    if (cb) in->cb = *cb;
    in->user = user;
    in->loop = p->loop;
    in->state = INGEST_CONNECTING;
    int rc = ingest_parse_source(in, err);
    if (rc == 0) {
        in->bus = gst_bus_new();
        GPollFD pfd;
        gst_bus_get_pollfd(in->bus, &pfd);
        rc = uv_poll_init(in->loop, &in->bus_poll, pfd.fd);
        if (rc) ingest_seterr(err, "ingest[%s]: bus poll: %s", id, uv_strerror(rc));
    }
    if (rc) {
        if (in->bus) gst_object_unref(in->bus);
        g_free(in->stun_server);
        g_free(in->turn_server);
        g_free(in->id);
        g_free(in->source);
        g_free(in->display);
        g_free(in->location);
        free(in);
        return rc;
    }
    uv_timer_init(in->loop, &in->retry);
    uv_timer_init(in->loop, &in->watchdog);
    in->bus_poll.data = in->retry.data = in->watchdog.data = in;
    *out = in;
    return 0;
}

/* Runs on: loop.  Reports CONNECTING, then builds and plays the first run. */
int ingest_start(ingest *in) {
    if (in->started || in->freeing) return UV_EBUSY;
    in->started = true;
    in->t_started = false;
    in->last_t = 0;
    in->live_since_us = 0;
    in->next_delay_s = in->reconnect_min_s;
    in->state = INGEST_CONNECTING;
    int rc = uv_poll_start(&in->bus_poll, UV_READABLE, ingest_bus_cb);
    if (rc) {
        in->started = false;
        LOGE("ingest[%s] bus poll: %s", in->id, uv_strerror(rc));
        return rc;
    }
    if (in->live && in->stall_s > 0)
        uv_timer_start(&in->watchdog, ingest_watchdog_cb, INGEST_WATCHDOG_MS, INGEST_WATCHDOG_MS);
    if (in->kind == INGEST_KIND_WHIP) { /* the pipeline comes with a publisher's offer */
        LOGI("ingest[%s] waiting for a WHIP publisher", in->id);
        ingest_set_state(in, INGEST_CONNECTING, NULL, 0);
        return 0;
    }
    LOGI("ingest[%s] connecting: %s", in->id, in->display);
    ingest_set_state(in, INGEST_CONNECTING, NULL, 0);
    if (in->started && in->state == INGEST_CONNECTING) ingest_launch(in);
    return 0;
}

/* Runs on: loop.  Pipeline to NULL (joins the streaming threads), timers and poll off. */
void ingest_stop(ingest *in) {
    if (!in || !in->started) return;
    in->started = false;
    uv_timer_stop(&in->retry);
    uv_timer_stop(&in->watchdog);
    uv_poll_stop(&in->bus_poll);
    ingest_teardown(in);
    in->answer_cb = NULL; /* no callback after stop: an owed answer is dropped */
    in->whip_tag = 0;
}

/* Runs on: loop (close callbacks).  The last one frees the ingest. */
static void ingest_close_cb(uv_handle_t *h) {
    ingest *in = h->data;
    if (--in->pending_closes > 0) return;
    gst_object_unref(in->bus);
    g_free(in->stun_server);
    g_free(in->turn_server);
    g_free(in->id);
    g_free(in->source);
    g_free(in->display);
    g_free(in->location);
    free(in);
}

/* Runs on: loop.  Stops, then closes the handles; ingest_close_cb frees the memory. */
void ingest_free(ingest *in) {
    if (!in || in->freeing) return;
    ingest_stop(in);
    in->freeing = true;
    in->pending_closes = 3;
    uv_close((uv_handle_t *)&in->bus_poll, ingest_close_cb);
    uv_close((uv_handle_t *)&in->retry, ingest_close_cb);
    uv_close((uv_handle_t *)&in->watchdog, ingest_close_cb);
}

/* Runs on: loop.  A WHIP publisher's offer: a new run negotiates it (see the WHIP section). */
int ingest_whip_offer(ingest *in, const char *offer_sdp, ingest_answer_cb cb, void *user,
                      uint64_t tag, char *err) {
    if (in->kind != INGEST_KIND_WHIP) {
        ingest_seterr(err, "%s: not a whip: source", in->display);
        return UV_EINVAL;
    }
    if (!in->started || in->freeing) {
        ingest_seterr(err, "ingest[%s]: not started", in->id);
        return UV_EINVAL;
    }
    if (in->pipe) {
        ingest_seterr(err, "ingest[%s]: a WHIP publisher is already connected", in->id);
        return UV_EBUSY;
    }
    GstSDPMessage *msg = NULL;
    if (!offer_sdp || gst_sdp_message_new_from_text(offer_sdp, &msg) != GST_SDP_OK) {
        if (msg) gst_sdp_message_free(msg);
        ingest_seterr(err, "ingest[%s]: malformed SDP offer", in->id);
        return UV_EINVAL;
    }
    ingest_whip_normalize_offer(msg);
    char detail[INGEST_DETAIL_LEN] = "";
    ingest_run_reset(in);
    int rc = ingest_build(in, detail);
    if (rc == 0 && gst_element_set_state(in->pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
        snprintf(detail, sizeof detail, "failed to start the pipeline");
        rc = UV_EIO;
    }
    if (rc) {
        ingest_teardown(in);
        gst_sdp_message_free(msg);
        ingest_seterr(err, "ingest[%s]: %s", in->id, detail);
        return rc;
    }
    in->whip_tag = tag;
    in->answer_cb = cb;
    in->answer_user = user;
    GstWebRTCSessionDescription *offer =
        gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_OFFER, msg); /* takes msg */
    GstPromise *p = gst_promise_new_with_change_func(ingest_whip_remote_set_cb,
                                                     gst_object_ref(in->webrtc), gst_object_unref);
    g_signal_emit_by_name(in->webrtc, "set-remote-description", offer, p);
    gst_webrtc_session_description_free(offer);
    LOGI("ingest[%s] WHIP offer received: negotiating", in->id);
    if (in->state != INGEST_CONNECTING) ingest_set_state(in, INGEST_CONNECTING, NULL, 0);
    return 0;
}

/* Runs on: loop.  New ICE settings for the next whip runs (validated like ingest_new's). */
int ingest_whip_set_ice(ingest *in, const char *stun_server, const char *turn_server,
                        int64_t port_min, int64_t port_max) {
    if (port_min < 0 || port_max < 0 || port_min > 65535 || port_max > 65535 ||
        (port_max && port_max < port_min))
        return UV_EINVAL;
    g_free(in->stun_server);
    g_free(in->turn_server);
    in->stun_server = stun_server && *stun_server ? g_strdup(stun_server) : NULL;
    in->turn_server = turn_server && *turn_server ? g_strdup(turn_server) : NULL;
    in->port_min = port_min;
    in->port_max = port_max;
    return 0;
}

/* Runs on: loop.  Ends the current WHIP run (the publisher's DELETE): ENDED, detail. */
void ingest_whip_end(ingest *in, const char *detail) {
    if (!in || in->kind != INGEST_KIND_WHIP || !in->started || !in->pipe) return;
    ingest_fail(in, detail, false);
}

/* Runs on: loop. */
uint64_t ingest_whip_session(const ingest *in) {
    return in && in->kind == INGEST_KIND_WHIP && in->pipe ? in->whip_tag : 0;
}

/* Runs on: any (gst_video_convert_sample runs its own small pipeline: jpegenc). */
int ingest_encode_jpeg(const uint8_t *rgb, int64_t width, int64_t height, uint8_t **out,
                       size_t *len, char *err) {
    *out = NULL;
    *len = 0;
    if (!gst_is_initialized()) gst_init(NULL, NULL);
    GstVideoInfo info;
    if (width < 1 || height < 1 ||
        !gst_video_info_set_format(&info, GST_VIDEO_FORMAT_RGB, (guint)width, (guint)height)) {
        ingest_seterr(err, "jpeg: bad frame size %" PRId64 "x%" PRId64, width, height);
        return UV_EINVAL;
    }
    GstBuffer *buf = gst_buffer_new_allocate(NULL, GST_VIDEO_INFO_SIZE(&info), NULL);
    GstMapInfo map;
    if (!buf || !gst_buffer_map(buf, &map, GST_MAP_WRITE)) {
        if (buf) gst_buffer_unref(buf);
        ingest_seterr(err, "jpeg: out of memory");
        return UV_ENOMEM;
    }
    size_t row = (size_t)width * 3, stride = (size_t)GST_VIDEO_INFO_PLANE_STRIDE(&info, 0);
    for (int64_t y = 0; y < height; y++)
        memcpy(map.data + (size_t)y * stride, rgb + (size_t)y * row, row);
    gst_buffer_unmap(buf, &map);
    GstCaps *caps = gst_video_info_to_caps(&info);
    GstSample *sample = gst_sample_new(buf, caps, NULL, NULL);
    gst_buffer_unref(buf);
    gst_caps_unref(caps);
    GstCaps *jpeg = gst_caps_new_empty_simple("image/jpeg");
    GError *ge = NULL;
    GstSample *enc = gst_video_convert_sample(sample, jpeg, 2 * GST_SECOND, &ge);
    gst_caps_unref(jpeg);
    gst_sample_unref(sample);
    GstBuffer *jb = enc ? gst_sample_get_buffer(enc) : NULL;
    int rc = 0;
    if (!jb || !gst_buffer_map(jb, &map, GST_MAP_READ)) {
        ingest_seterr(err, "jpeg: %s", ge && ge->message ? ge->message : "cannot encode");
        rc = UV_EIO;
    } else {
        *out = malloc(map.size);
        if (*out) {
            memcpy(*out, map.data, map.size);
            *len = map.size;
        } else {
            ingest_seterr(err, "jpeg: out of memory");
            rc = UV_ENOMEM;
        }
        gst_buffer_unmap(jb, &map);
    }
    g_clear_error(&ge);
    if (enc) gst_sample_unref(enc);
    return rc;
}

/* Runs on: any.  Atomic loads of the counters. */
void ingest_get_stats(const ingest *in, ingest_stats *out) {
    ingest *m = (ingest *)in; /* atomic_load wants a non-const pointer before C17 */
    out->frames_decoded = atomic_load(&m->n_decoded);
    out->frames_kept = atomic_load(&m->n_kept);
    out->frames_dropped = atomic_load(&m->n_dropped);
    out->reconnects = atomic_load(&m->n_reconnects);
    out->video_breaks = atomic_load(&m->n_breaks);
}

/* Runs on: loop. */
ingest_state ingest_get_state(const ingest *in) {
    return in->state;
}

/* Runs on: any. */
const char *ingest_state_name(ingest_state s) {
    switch (s) {
    case INGEST_CONNECTING:
        return "connecting";
    case INGEST_LIVE:
        return "live";
    case INGEST_RECONNECTING:
        return "reconnecting";
    case INGEST_ENDED:
        return "ended";
    }
    return "?";
}
