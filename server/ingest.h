/* ingest.h — one GStreamer pipeline per stream: a source URI in, ~2 RGB frames per second
 * at a fixed size out, with reconnects.
 *
 * Pipeline: source → decode (avdec_* via decodebin/uridecodebin) → decimation in our own
 * buffer pad probe (the first frame at or after each 0.5 s mark of stream time; never
 * videorate) → videoconvert → videoscale (stretch, no borders) →
 * video/x-raw,format=RGB,width=W,height=H,pixel-aspect-ratio=1/1 → appsink.
 *
 * Sources (ingest_new rejects anything else with an error naming the source):
 *   rtsp:// rtsps:// rtspt:// (TCP)  rtspsrc latency=… → decodebin per video stream
 *   srt://host:port[?mode=listener]  srtsrc uri=… latency=… → decodebin (listener: when the
 *                                    caller leaves, rebuild and wait for the next one)
 *   rtmp:// rtmps://                 rtmp2src → flvdemux → decodebin (pull)
 *   /path, ./path, file://           uridecodebin (not live: back-pressure, EOS → ENDED)
 *   http:// https://                 uridecodebin, treated as a file (EOS → ENDED)
 *   /dev/videoN, v4l2:///dev/videoN  v4l2src device=… → decodebin
 *   test:[PATTERN][?KEY=VALUE&…]     videotestsrc is-live=true pattern=PATTERN (any
 *                                    videotestsrc pattern nick; bare "test:" = a cycle of
 *                                    scenes, 4 s each, ingest.c) →
 *                                    video/x-raw,format=I420,width=320,height=180,
 *                                    framerate=30/1.  Keys width, height, framerate, format
 *                                    set those caps; any other key is a videotestsrc
 *                                    property (foreground-color=0xffff0000, motion=wavy…).
 *   whip:                            a WebRTC publisher (WHIP, RFC 9725): no pipeline until
 *                                    ingest_whip_offer; then webrtcbin (max-bundle, UPnP
 *                                    off) → decodebin per video pad (H.264, VP8, VP9 …);
 *                                    audio (Opus) → fakesink.  One publisher at a time.
 *
 * States: CONNECTING (after ingest_start) → LIVE (first frame) → RECONNECTING (error, a
 * stall, or EOS of a live source; the pipeline is rebuilt after a capped exponential
 * backoff) → LIVE … ; ENDED when a file/http source reaches EOS (detail NULL) or fails
 * (detail = the error text).  Live sources never end by themselves, except whip: it waits
 * in CONNECTING for an offer, goes LIVE with the first frame and ENDS when the publisher
 * leaves (ingest_whip_end: detail as given; ICE failed, an error or a stall: the reason);
 * the next offer starts it again (CONNECTING, stream time continuing as on a reconnect).
 *
 * Threads: everything except the frame callback and ingest_get_stats runs on the loop
 * thread (bus messages via gst_bus_get_pollfd() on a uv_poll, timers on uv_timers; no
 * GLib main loop).  The frame callback runs on a GStreamer streaming thread.
 * Errors: 0 or a negative libuv error code (UV_EINVAL, UV_ENOENT, UV_ENOMEM, UV_EBUSY);
 * setup calls fill err[INGEST_ERR_LEN] (lowercase, names the source).  Passwords in URIs
 * (user:pass@, passphrase=) are masked in log lines and error texts.
 */
#ifndef COMMENTARY_INGEST_H
#define COMMENTARY_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define INGEST_ERR_LEN 256

typedef struct ingest ingest;

typedef enum ingest_state {
    INGEST_CONNECTING,
    INGEST_LIVE,
    INGEST_RECONNECTING,
    INGEST_ENDED
} ingest_state;

typedef struct ingest_callbacks {
    /* Runs on: ingest (a GStreamer streaming thread).  A decimated frame: RGB24, stride
     * bytes per row (width * 3 rounded up to 4), t = stream seconds (0 at the first frame;
     * monotonic across reconnects: after a reconnect the clock continues from the wall
     * time elapsed since the first frame).  rgb is valid only during the call: the callee
     * copies it and returns at once.  May be NULL. */
    void (*frame)(void *user, const uint8_t *rgb, int64_t width, int64_t height, int64_t stride,
                  double t);
    /* Runs on: loop.  State changes; detail = the error text for reconnecting and for
     * ended-with-error (else NULL; valid during the call only); retry_in_s = the delay
     * before the next attempt when reconnecting (else 0).  The callee may call
     * ingest_stop() or ingest_free() from here.  May be NULL. */
    void (*state)(void *user, ingest_state state, const char *detail, double retry_in_s);
} ingest_callbacks;

typedef struct ingest_params {
    const char *id;                          /* stream id, for log lines: ingest[cam1] ... */
    const char *source;                      /* URI or path, see the top of this file */
    int64_t width, height;                   /* RGB output size (the model's smart_resize size) */
    double reconnect_min_s, reconnect_max_s; /* capped exponential backoff; 0: 0.5 s and 30 s */
    int64_t latency_ms;                      /* rtspsrc/srtsrc latency; 0: the element's default */
    uv_loop_t *loop; /* the daemon's libuv loop: bus messages and timers run here */
    /* Added: a live stream without a decoded frame for this long is rebuilt (a camera
     * that hangs without closing the connection); the first frame of a (re)connect gets
     * 3x as long (long GOPs).  0: 10 s; < 0: never.  SRT listeners waiting for a caller
     * are never timed out. */
    double stall_timeout_s;
    /* Added: deliver files/http at playback speed (appsink sync=true) instead of as
     * fast as they decode.  Live sources ignore it. */
    bool realtime;
    /* Added, whip: only.  ICE servers (webrtcbin's "stun://HOST:PORT",
     * "turn://USER:PASS@HOST:PORT"; NULL or "": none) and the UDP port range of the ICE
     * agent (0: no bound). */
    const char *stun_server, *turn_server;
    int64_t port_min, port_max;
} ingest_params;

/* Runs on: loop.  The answer to ingest_whip_offer: answer_sdp (valid during the call) or
 * NULL and error (why).  tag is the one given with the offer.  The callee may stop or
 * free the ingest. */
typedef void (*ingest_answer_cb)(void *user, uint64_t tag, const char *answer_sdp,
                                 const char *error);

typedef struct ingest_stats {
    uint64_t frames_decoded; /* decoded frames that reached the decimation probe */
    uint64_t frames_kept;    /* frames delivered to the frame callback */
    uint64_t frames_dropped; /* decoded frames the 2 fps decimation discarded */
    uint64_t reconnects;     /* pipeline rebuilds after a failure, stall or live EOS */
    uint64_t video_breaks;   /* live sources: breaks in the compressed video reaching a
                              * decoder (data lost in transit and not repaired); the
                              * pictures after one are damaged until the next key frame */
} ingest_stats;

/* Runs on: any.  The source checks of ingest_new alone (scheme, URI, test parameters,
 * GStreamer elements), for --check-config and reload; *live (if set) whether it is a
 * live source (files and http(s) are not; false for a source of no known scheme).  Initialises GStreamer if nobody has.
 * Returns 0 or a negative UV_E* code with err naming the source (password masked). */
int ingest_check_source(const char *source, bool *live, char *err);

/* Runs on: any.  For a source that is a local file (a path or file://): whether the daemon
 * can read it now; 0 when it can, and for every other kind of source.  Otherwise a negative
 * UV_E* code with err naming the file and the cause ("No such file or directory"). */
int ingest_check_file(const char *source, char *err);

/* Runs on: loop.  Validates the parameters and the source (unsupported scheme, malformed
 * URI, unknown test pattern/parameter, missing GStreamer element → error naming the
 * source in err) and creates a stopped ingest on p->loop.  Copies every string in p;
 * borrows cb (copied) and user.  Initialises GStreamer if nobody has.  Returns 0 or a
 * negative UV_E* code. */
int ingest_new(const ingest_params *p, const ingest_callbacks *cb, void *user, ingest **out,
               char *err);

/* Runs on: loop.  Builds the pipeline and sets it playing; reports CONNECTING through the
 * state callback before it returns.  A failure to connect is reported later through the
 * state callback, never here.  Starting again after ingest_stop() starts a new stream
 * (t from 0, backoff reset).  Returns 0, UV_EBUSY when already started, or another
 * negative UV_E* code when the pipeline cannot be built. */
int ingest_start(ingest *in);

/* Runs on: loop.  Pipeline to NULL (joins the streaming threads), timers and bus poll
 * stopped: no callback runs after it returns.  Stopping a stopped ingest is a no-op. */
void ingest_stop(ingest *in);

/* Runs on: loop.  Stops the ingest if needed and closes its libuv handles.  The memory is
 * released in the last handle's close callback, i.e. during a later uv_run() of the loop:
 * keep running the loop (uv_run(loop, UV_RUN_DEFAULT) returns once everything is closed)
 * before uv_loop_close(), which returns UV_EBUSY until then.  The pointer must not be
 * used after this call.  NULL is a no-op. */
void ingest_free(ingest *in);

/* Runs on: loop.  whip: sources: a publisher's SDP offer.  Builds the run's pipeline and
 * negotiates; the answer (no trickle: it carries the ICE candidates) or the reason it
 * failed comes later through cb, at most once, never after ingest_stop().  tag (nonzero)
 * names the run (ingest_whip_session).  Returns 0; UV_EBUSY while a publisher is
 * connected or negotiating; UV_EINVAL (not a whip: ingest, not started, malformed SDP) or
 * UV_EIO/UV_ENOENT (pipeline) with err. */
int ingest_whip_offer(ingest *in, const char *offer_sdp, ingest_answer_cb cb, void *user,
                      uint64_t tag, char *err);

/* Runs on: loop.  Replaces the ICE settings (as in ingest_params) of the runs that later
 * offers start, e.g. after a config reload.  0 or UV_EINVAL (bad port range). */
int ingest_whip_set_ice(ingest *in, const char *stun_server, const char *turn_server,
                        int64_t port_min, int64_t port_max);

/* Runs on: loop.  Ends the current whip: run (the publisher's DELETE): ENDED with detail
 * (NULL: a clean end); an owed answer fails.  No-op without a run. */
void ingest_whip_end(ingest *in, const char *detail);

/* Runs on: loop.  The tag of the current whip: run (negotiating or connected), 0: none. */
uint64_t ingest_whip_session(const ingest *in);

/* Runs on: any.  A packed RGB24 frame (width * 3 bytes per row) as a JPEG (GStreamer's
 * jpegenc): *out is malloc'd (the caller frees), *len its size.  0 or a UV_E* code with
 * err. */
int ingest_encode_jpeg(const uint8_t *rgb, int64_t width, int64_t height, uint8_t **out,
                       size_t *len, char *err);

/* Runs on: any (atomics).  Counters since ingest_new. */
void ingest_get_stats(const ingest *in, ingest_stats *out);

/* Runs on: loop.  The current state (CONNECTING before the first start). */
ingest_state ingest_get_state(const ingest *in);

/* Runs on: any.  "connecting", "live", "reconnecting", "ended" (the wire protocol's names). */
const char *ingest_state_name(ingest_state s);

#endif
