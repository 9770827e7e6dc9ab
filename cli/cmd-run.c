/* cmd-run.c — `commentary run`: offline commentary of a video file or URI, the
 * equivalent of StreamingVLM's own inference script.
 *
 *   commentary run --model DIR --input FILE_OR_URI [--seconds N] [--vtt OUT.vtt]
 *                  [--query TEXT] [--previous-text TEXT] [--backend cpu|cuda|auto]
 *                  [--threads N] [--verbose]
 *
 * Decodes with GStreamer (uridecodebin ! videoconvert ! RGB ! appsink, back-pressure, no
 * clock), picks two frames per 1-second chunk with the product's rule (frame_pick.h: the
 * first frame at or after i and at or after i + 0.5 s of stream time), pushes each chunk
 * into one engine session and prints one JSON line per chunk on stdout, flushed:
 *     {"t_start": i, "t_end": i+1, "text": "...", "ms": <engine ms for the chunk>}
 * --vtt also writes the commentary as WebVTT (cli/vtt.h); --verbose prints on stderr
 * which frames (stream time) each chunk used.
 *
 * Not: a live server (no reconnects, no dropping: a slow engine slows the decoder down).
 * Decimation is ours, never videorate: a pad probe before videoconvert drops the frames
 * no slot wants (frame_pick's state only moves on frames it keeps, so the sink, picking
 * again, sees the same choices) and only kept frames are converted and copied.
 * Threads: the caller's thread pulls samples, checks the bus and runs the engine; the
 * probe and pad-added callbacks run on GStreamer's streaming threads and touch only the
 * decoder's own fields.  Exit status: 0 success, 2 bad usage, bad input, a GStreamer or
 * an engine error (one line on stderr naming the input).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <jansson.h>

#include "cli.h"
#include "frame_pick.h"
#include "vlm.h"
#include "vtt.h"

#define PULL_TIMEOUT (100 * GST_MSECOND) /* how often a waiting pull looks at the bus */

typedef struct run_opts {
    const char *model, *input, *vtt, *query, *previous_text, *backend;
    int64_t seconds; /* chunks to emit at most; 0: all */
    int threads;
    bool verbose;
} run_opts;

/* The GStreamer side: the pipeline and what its streaming threads report. */
typedef struct decoder {
    GstElement *pipe, *convert, *sink;
    frame_pick probe_pick; /* the probe's own picker (streaming thread) */
    gint n_pads;           /* decoded pads uridecodebin exposed (atomic) */
    gint have_video;       /* a video pad is linked (atomic) */
    char first_caps[64];   /* media type of the first pad, for "no video stream" */
    char bad_video[64];    /* media type of a video pad that would not link (no decoder) */
} decoder;

/* The engine side: everything the pulling thread owns. */
typedef struct runner {
    const run_opts *o;
    vlm_engine *engine;
    vlm_policy policy;
    vlm_session *session;
    frame_pick pick;
    int64_t w, h;       /* frame size of the session */
    uint8_t *slot[2];   /* (h, w, 3) RGB copies of the chunk's two frames */
    int64_t slot_ns[2]; /* their stream times, for --verbose */
    int64_t n_emitted;
    int64_t n_no_pts; /* frames without a timestamp, skipped */
    FILE *vtt;
    bool done; /* --seconds reached */
} runner;

/* The usage on f; returns rc (2 after bad arguments; --help prints it on stdout, exit 0). */
static int usage(FILE *f, int rc) {
    fprintf(f, "usage: commentary run --model DIR --input FILE_OR_URI [--seconds N] "
               "[--vtt OUT.vtt]\n"
               "                      [--query TEXT] [--previous-text TEXT] "
               "[--backend cpu|cuda|auto]\n"
               "                      [--threads N] [--verbose]\n"
               "  offline commentary: one JSON line per 1-second chunk on stdout\n"
               "  {\"t_start\": i, \"t_end\": i+1, \"text\": \"...\", \"ms\": engine ms}\n"
               "  --seconds N   stop after N chunks (default: the whole input)\n"
               "  --vtt FILE    also write the commentary as WebVTT\n"
               "  --query TEXT  the first turn's question, at most 256 tokens (default:\n"
               "                \"Commentate on this match\")\n"
               "  --previous-text TEXT  earlier commentary or context, at most 4096 tokens\n"
               "  --backend B   auto (default: CUDA when a GPU is usable, else the CPU with a\n"
               "                warning), cpu or cuda\n"
               "  --threads N   CPU threads for the engine (default: all cores)\n"
               "  --verbose     print the frames (stream time) each chunk used on stderr\n");
    return rc;
}

static bool parse_i64(const char *s, int64_t lo, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo) return false;
    *out = v;
    return true;
}

/* Parse argv into o; returns 0, 2 after printing the usage, or -1 after --help. */
static int parse_args(int argc, char **argv, run_opts *o) {
    *o = (run_opts){.backend = "auto"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **str = !strcmp(a, "--model")           ? &o->model
                           : !strcmp(a, "--input")         ? &o->input
                           : !strcmp(a, "--vtt")           ? &o->vtt
                           : !strcmp(a, "--query")         ? &o->query
                           : !strcmp(a, "--previous-text") ? &o->previous_text
                           : !strcmp(a, "--backend")       ? &o->backend
                                                           : NULL;
        int64_t n;
        if (!strcmp(a, "--verbose")) {
            o->verbose = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, -1);
        if (!str && strcmp(a, "--seconds") && strcmp(a, "--threads")) {
            fprintf(stderr, "commentary run: unexpected argument '%s'\n", a);
            return usage(stderr, 2);
        }
        if (!v) {
            fprintf(stderr, "commentary run: %s needs a value\n", a);
            return usage(stderr, 2);
        }
        i++;
        if (str) {
            *str = v;
        } else if (!strcmp(a, "--seconds")) {
            if (!parse_i64(v, 1, &o->seconds)) {
                fprintf(stderr,
                        "commentary run: --seconds wants a whole number >= 1, not "
                        "'%s'\n",
                        v);
                return usage(stderr, 2);
            }
        } else {
            if (!parse_i64(v, 0, &n) || n > 4096) {
                fprintf(stderr, "commentary run: --threads wants 0..4096, not '%s'\n", v);
                return usage(stderr, 2);
            }
            o->threads = (int)n;
        }
    }
    if (!o->model || !o->input) {
        fprintf(stderr, "commentary run: %s is required\n", !o->model ? "--model" : "--input");
        return usage(stderr, 2);
    }
    if (strcmp(o->backend, "cpu") && strcmp(o->backend, "cuda") && strcmp(o->backend, "auto")) {
        fprintf(stderr, "commentary run: --backend wants cpu, cuda or auto, not '%s'\n",
                o->backend);
        return usage(stderr, 2);
    }
    return 0;
}

/* ---- output ---- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static int utf8_len(const unsigned char *p) {
    if (p[0] < 0x80) return 1;
    int n = p[0] >= 0xC2 && p[0] <= 0xDF   ? 2
            : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
            : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4
                                           : 0;
    for (int k = 1; k < n; k++)
        if ((p[k] & 0xC0) != 0x80) return 0;
    if (n == 3 && ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0))) return 0;
    if (n == 4 && ((p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] >= 0x90))) return 0;
    return n;
}

/* A JSON string of text with invalid UTF-8 bytes replaced by U+FFFD (jansson refuses
 * invalid UTF-8; the engine's decoder should never produce it). */
static json_t *json_text(const char *text) {
    json_t *j = json_string(text);
    if (j) return j;
    size_t n = strlen(text);
    char *buf = malloc(3 * n + 1), *o = buf;
    if (!buf) return NULL;
    for (const unsigned char *p = (const unsigned char *)text; *p;) {
        int l = utf8_len(p);
        if (l) {
            memcpy(o, p, (size_t)l);
            o += l;
            p += l;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            p++;
        }
    }
    *o = 0;
    j = json_string(buf);
    free(buf);
    return j;
}

/* Print chunk i's JSON line (flushed) and its VTT cue.  Returns 0, or 2 on a write error. */
static int emit(runner *r, int64_t i, const vlm_chunk_result *res) {
    json_t *line =
        json_pack("{s:I,s:I,s:o,s:f}", "t_start", (json_int_t)i, "t_end", (json_int_t)(i + 1),
                  "text", json_text(res->text), "ms", round(res->ms_total * 1e3) / 1e3);
    char *s = line ? json_dumps(line, JSON_REAL_PRECISION(10)) : NULL;
    json_decref(line);
    if (!s) {
        fprintf(stderr, "commentary run: chunk %lld: cannot format the json line\n", (long long)i);
        return 2;
    }
    int bad = puts(s) < 0 || fflush(stdout) != 0;
    free(s);
    if (bad) {
        fprintf(stderr, "commentary run: stdout: %s\n", strerror(errno));
        return 2;
    }
    if (r->vtt && proto_vtt_write_cue(r->vtt, (double)i, (double)(i + 1), res->text) != 0) {
        fprintf(stderr, "commentary run: %s: %s\n", r->o->vtt, strerror(errno));
        return 2;
    }
    return 0;
}

/* ---- the engine side ---- */

/* Copy one frame of the mapped video frame into slot k, allocating the slots and the
 * session at the first frame.  Returns 0 or 2. */
static int take_frame(runner *r, const GstVideoFrame *vf, int k, int64_t stream_ns) {
    int64_t w = GST_VIDEO_FRAME_WIDTH(vf), h = GST_VIDEO_FRAME_HEIGHT(vf);
    if (!r->session) {
        char err[VLM_ERR_LEN];
        vlm_session_params sp = {.query = r->o->query,
                                 .previous_text = r->o->previous_text,
                                 .frame_width = w,
                                 .frame_height = h};
        size_t bytes = (size_t)w * (size_t)h * 3;
        r->slot[0] = malloc(bytes);
        r->slot[1] = malloc(bytes);
        if (!r->slot[0] || !r->slot[1]) {
            fprintf(stderr, "commentary run: %s: out of memory for %lldx%lld frames\n", r->o->input,
                    (long long)w, (long long)h);
            return 2;
        }
        if (vlm_session_new(r->engine, &r->policy, &sp, &r->session, err) != 0) {
            fprintf(stderr, "commentary run: %s: %lldx%lld video: %s\n", r->o->input, (long long)w,
                    (long long)h, err);
            return 2;
        }
        r->w = w;
        r->h = h;
    } else if (w != r->w || h != r->h) {
        fprintf(stderr,
                "commentary run: %s: the frame size changed from %lldx%lld to "
                "%lldx%lld at %.3f s, which is not supported\n",
                r->o->input, (long long)r->w, (long long)r->h, (long long)w, (long long)h,
                (double)stream_ns / 1e9);
        return 2;
    }
    /* the RGB rows of the negotiated frame are padded (to 4 bytes): copy row by row */
    const uint8_t *src = GST_VIDEO_FRAME_PLANE_DATA(vf, 0);
    size_t stride = (size_t)GST_VIDEO_FRAME_PLANE_STRIDE(vf, 0), row = (size_t)w * 3;
    for (int64_t y = 0; y < h; y++)
        memcpy(r->slot[k] + (size_t)y * row, src + (size_t)y * stride, row);
    r->slot_ns[k] = stream_ns;
    return 0;
}

/* Run chunk i on the two slots and print it.  Returns 0 or 2. */
static int run_chunk(runner *r, int64_t i) {
    vlm_frame frames[2];
    for (int k = 0; k < 2; k++)
        frames[k] =
            (vlm_frame){.rgb = r->slot[k], .width = r->w, .height = r->h, .stride = r->w * 3};
    if (r->o->verbose)
        fprintf(stderr, "commentary run: chunk %lld: frames at %.6f s and %.6f s\n", (long long)i,
                (double)r->slot_ns[0] / 1e9, (double)r->slot_ns[1] / 1e9);
    vlm_chunk_result res;
    char err[VLM_ERR_LEN];
    if (vlm_session_push_chunk(r->session, frames, (double)i, (double)(i + 1), &res, err)) {
        fprintf(stderr, "commentary run: %s: %s\n", r->o->input, err);
        return 2;
    }
    int rc = emit(r, i, &res);
    if (rc) return rc;
    if (r->o->seconds && ++r->n_emitted >= r->o->seconds) r->done = true;
    return 0;
}

/* Handle one decoded sample: fill the slots it is chosen for, run the chunks it
 * completes.  Returns 0 or 2. */
static int on_sample(runner *r, GstSample *smp) {
    GstBuffer *buf = gst_sample_get_buffer(smp);
    GstVideoInfo info;
    if (!buf || !GST_BUFFER_PTS_IS_VALID(buf)) {
        r->n_no_pts++;
        return 0;
    }
    int64_t ts = (int64_t)GST_BUFFER_PTS(buf), chunk;
    int k;
    GstVideoFrame vf;
    bool mapped = false;
    int rc = 0;
    while (!rc && !r->done && frame_pick_next(&r->pick, ts, &chunk, &k)) {
        if (!mapped) {
            GstCaps *caps = gst_sample_get_caps(smp);
            if (!caps || !gst_video_info_from_caps(&info, caps) ||
                !gst_video_frame_map(&vf, &info, buf, GST_MAP_READ)) {
                fprintf(stderr, "commentary run: %s: cannot map a decoded frame\n", r->o->input);
                return 2;
            }
            mapped = true;
        }
        rc = take_frame(r, &vf, k, frame_pick_stream_time(&r->pick, ts));
        if (!rc && k == 1) rc = run_chunk(r, chunk);
    }
    if (mapped) gst_video_frame_unmap(&vf);
    return rc;
}

/* ---- the GStreamer side ---- */

/* Drop the buffers no chunk slot wants before they are converted.  Runs on: streaming. */
static GstPadProbeReturn run_decimate_cb(GstPad *pad, GstPadProbeInfo *info, gpointer user) {
    (void)pad;
    decoder *d = user;
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    if (!buf || !GST_BUFFER_PTS_IS_VALID(buf)) return GST_PAD_PROBE_DROP;
    int64_t chunk;
    int slot;
    bool keep = false;
    while (frame_pick_next(&d->probe_pick, (int64_t)GST_BUFFER_PTS(buf), &chunk, &slot))
        keep = true;
    return keep ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
}

/* Link uridecodebin's first video pad to videoconvert.  Runs on: streaming. */
static void run_pad_added_cb(GstElement *src, GstPad *pad, gpointer user) {
    (void)src;
    decoder *d = user;
    GstCaps *caps = gst_pad_get_current_caps(pad);
    if (!caps) caps = gst_pad_query_caps(pad, NULL);
    const char *name = caps && gst_caps_get_size(caps) > 0
                           ? gst_structure_get_name(gst_caps_get_structure(caps, 0))
                           : "";
    bool video = g_str_has_prefix(name, "video/");
    if (g_atomic_int_add(&d->n_pads, 1) == 0) g_strlcpy(d->first_caps, name, sizeof d->first_caps);
    if (video && !g_atomic_int_get(&d->have_video)) {
        GstPad *sinkpad = gst_element_get_static_pad(d->convert, "sink");
        if (!gst_pad_is_linked(sinkpad)) {
            if (gst_pad_link(pad, sinkpad) == GST_PAD_LINK_OK)
                g_atomic_int_set(&d->have_video, 1);
            else
                g_strlcpy(d->bad_video, name, sizeof d->bad_video);
        }
        gst_object_unref(sinkpad);
    }
    if (caps) gst_caps_unref(caps);
}

/* Build uridecodebin ! videoconvert ! video/x-raw,format=RGB ! appsink for uri. */
static int decoder_build(decoder *d, const char *uri, const char *input) {
    GstElement *src = gst_element_factory_make("uridecodebin", NULL);
    GstElement *filter = gst_element_factory_make("capsfilter", NULL);
    d->pipe = gst_pipeline_new("run");
    d->convert = gst_element_factory_make("videoconvert", NULL);
    d->sink = gst_element_factory_make("appsink", NULL);
    if (!d->pipe || !src || !filter || !d->convert || !d->sink) {
        fprintf(stderr,
                "commentary run: %s: GStreamer elements missing (need uridecodebin, "
                "videoconvert, capsfilter, appsink: gstreamer1.0-plugins-base)\n",
                input);
        GstElement *made[] = {src, filter, d->convert, d->sink};
        for (size_t i = 0; i < sizeof made / sizeof made[0]; i++)
            if (made[i]) gst_object_unref(gst_object_ref_sink(made[i]));
        d->convert = d->sink = NULL;
        return 2;
    }
    GstCaps *rgb = gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING, "RGB", NULL);
    g_object_set(src, "uri", uri, NULL);
    g_object_set(filter, "caps", rgb, NULL);
    gst_caps_unref(rgb);
    /* a file, not a live source: no clock, and back-pressure instead of dropping */
    g_object_set(d->sink, "sync", FALSE, "drop", FALSE, "max-buffers", 2, NULL);
    gst_bin_add_many(GST_BIN(d->pipe), src, d->convert, filter, d->sink, NULL);
    if (!gst_element_link_many(d->convert, filter, d->sink, NULL)) {
        fprintf(stderr, "commentary run: %s: cannot link videoconvert to appsink\n", input);
        return 2;
    }
    g_signal_connect(src, "pad-added", G_CALLBACK(run_pad_added_cb), d);
    GstPad *pad = gst_element_get_static_pad(d->convert, "sink");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, run_decimate_cb, d, NULL);
    gst_object_unref(pad);
    return 0;
}

/* When the input exposed streams but none of them is video we can decode, print why
 * (with GStreamer's message when there is one) and return true. */
static bool report_no_video(const decoder *d, const char *input, const char *gst_msg) {
    if (g_atomic_int_get(&d->have_video) || !g_atomic_int_get(&d->n_pads)) return false;
    if (d->bad_video[0])
        fprintf(stderr, "commentary run: %s: cannot decode its video stream (%s)%s%s\n", input,
                d->bad_video, gst_msg ? ": " : "", gst_msg ? gst_msg : "");
    else
        fprintf(stderr, "commentary run: %s: no video stream (found %s)\n", input,
                d->first_caps[0] ? d->first_caps : "other streams");
    return true;
}

/* Print a bus error as one line naming the input; returns 2. */
static int report_error(const decoder *d, const char *input, GstMessage *msg) {
    GError *gerr = NULL;
    gchar *dbg = NULL;
    gst_message_parse_error(msg, &gerr, &dbg);
    if (!report_no_video(d, input, gerr ? gerr->message : NULL))
        fprintf(stderr, "commentary run: %s: %s (from %s)\n", input,
                gerr ? gerr->message : "unknown GStreamer error",
                GST_MESSAGE_SRC_NAME(msg) ? GST_MESSAGE_SRC_NAME(msg) : "pipeline");
    if (dbg && getenv("COMMENTARY_GST_DEBUG")) fprintf(stderr, "  %s\n", dbg);
    g_clear_error(&gerr);
    g_free(dbg);
    return 2;
}

/* Turn input into a URI: URIs GStreamer can read pass through, a path is checked and
 * made a file:// URI.  Returns a g_malloc'd URI or NULL after printing why. */
static gchar *input_uri(const char *input) {
    gchar *path = NULL, *uri = NULL;
    if (gst_uri_is_valid(input)) {
        gchar *proto = gst_uri_get_protocol(input);
        bool ok = gst_uri_protocol_is_supported(GST_URI_SRC, proto);
        bool file = proto && !g_ascii_strcasecmp(proto, "file");
        g_free(proto);
        if (ok && !file) return g_strdup(input);
        if (ok) path = g_filename_from_uri(input, NULL, NULL);
        if (ok && !path) {
            fprintf(stderr, "commentary run: %s: not a valid file:// uri\n", input);
            return NULL;
        }
    }
    struct stat st;
    const char *p = path ? path : input;
    if (stat(p, &st) != 0 || access(p, R_OK) != 0) {
        if (!path && gst_uri_is_valid(input)) { /* a URI whose scheme nothing reads */
            gchar *proto = gst_uri_get_protocol(input);
            fprintf(stderr,
                    "commentary run: %s: no GStreamer source reads '%s' uris (and "
                    "there is no such file)\n",
                    input, proto ? proto : "");
            g_free(proto);
        } else {
            fprintf(stderr, "commentary run: %s: cannot open: %s\n", input, strerror(errno));
        }
    } else if (S_ISDIR(st.st_mode)) {
        fprintf(stderr, "commentary run: %s: is a directory, not a video file\n", input);
    } else if (path) {
        uri = g_strdup(input);
    } else {
        GError *gerr = NULL;
        uri = gst_filename_to_uri(input, &gerr);
        if (!uri) fprintf(stderr, "commentary run: %s: %s\n", input, gerr->message);
        g_clear_error(&gerr);
    }
    g_free(path);
    return uri;
}

/* Pull samples until EOS, an error, or --seconds.  Returns 0 or 2. */
static int decode_loop(runner *r, decoder *d) {
    const char *input = r->o->input;
    GstBus *bus = gst_element_get_bus(d->pipe);
    int rc = 0;
    if (gst_element_set_state(d->pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
        GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
        if (msg) {
            rc = report_error(d, input, msg);
            gst_message_unref(msg);
        } else {
            fprintf(stderr, "commentary run: %s: the pipeline failed to start\n", input);
            rc = 2;
        }
        gst_object_unref(bus);
        return rc;
    }
    while (!rc && !r->done) {
        GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
        if (msg) {
            rc = report_error(d, input, msg);
            gst_message_unref(msg);
            break;
        }
        GstSample *smp = gst_app_sink_try_pull_sample(GST_APP_SINK(d->sink), PULL_TIMEOUT);
        if (smp) {
            rc = on_sample(r, smp);
            gst_sample_unref(smp);
        } else if (gst_app_sink_is_eos(GST_APP_SINK(d->sink))) {
            break;
        }
    }
    gst_object_unref(bus);
    if (rc || r->done) return rc;
    int64_t chunk; /* the end: a last chunk with no frame at or after i + 0.5 */
    if (frame_pick_finish(&r->pick, &chunk)) {
        memcpy(r->slot[1], r->slot[0], (size_t)r->w * (size_t)r->h * 3);
        r->slot_ns[1] = r->slot_ns[0];
        rc = run_chunk(r, chunk);
    }
    if (!rc && !r->session) {
        if (!report_no_video(d, input, NULL))
            fprintf(stderr, "commentary run: %s: no video frames%s\n", input,
                    r->n_no_pts ? " with timestamps" : "");
        rc = 2;
    }
    return rc;
}

/* `commentary run ...` (argv[0] is "run"): returns the exit status, 0 or 2. */
int cmd_run(int argc, char **argv) {
    run_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    GError *gerr = NULL;
    if (!gst_init_check(NULL, NULL, &gerr)) {
        fprintf(stderr, "commentary run: cannot start GStreamer: %s\n",
                gerr ? gerr->message : "unknown error");
        g_clear_error(&gerr);
        return 2;
    }
    gchar *uri = input_uri(o.input);
    if (!uri) return 2;

    runner r = {.o = &o};
    decoder d = {0};
    frame_pick_init(&r.pick);
    frame_pick_init(&d.probe_pick);
    char err[VLM_ERR_LEN];
    vlm_engine_params ep = {.backend = o.backend, .n_threads = o.threads};
    struct stat st;
    int serr = stat(o.model, &st) != 0 ? errno : 0;
    if (serr || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "commentary run: model %s: %s\n", o.model,
                serr ? strerror(serr) : "not a directory");
        rc = 2;
        goto out;
    }
    if (vlm_engine_load(o.model, &ep, &r.engine, err) != 0) {
        fprintf(stderr, "commentary run: model %s: %s\n", o.model, err);
        rc = 2;
        goto out;
    }
    if (vlm_engine_check_texts(r.engine, o.query, o.previous_text, err) != 0) {
        fprintf(stderr, "commentary run: %s\n", err);
        rc = 2;
        goto out;
    }
    vlm_policy_default(r.engine, &r.policy);
    if (o.vtt) {
        r.vtt = fopen(o.vtt, "w");
        if (!r.vtt || proto_vtt_write_header(r.vtt) != 0) {
            fprintf(stderr, "commentary run: %s: %s\n", o.vtt, strerror(errno));
            rc = 2;
            goto out;
        }
    }
    rc = decoder_build(&d, uri, o.input);
    if (!rc) rc = decode_loop(&r, &d);
    if (r.n_no_pts)
        fprintf(stderr, "commentary run: %s: skipped %lld frames without a timestamp\n", o.input,
                (long long)r.n_no_pts);

out:
    if (d.pipe) {
        gst_element_set_state(d.pipe, GST_STATE_NULL);
        gst_object_unref(d.pipe);
    }
    if (r.vtt && fclose(r.vtt) != 0 && !rc) {
        fprintf(stderr, "commentary run: %s: %s\n", o.vtt, strerror(errno));
        rc = 2;
    }
    vlm_session_free(r.session);
    vlm_engine_free(r.engine);
    free(r.slot[0]);
    free(r.slot[1]);
    g_free(uri);
    return rc;
}
