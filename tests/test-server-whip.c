/* test-server-whip.c — the WHIP endpoint's request handling (server/whip.c), the whip:
 * ingest kind's contract (server/ingest.c) and the snapshot's JPEG encoder.
 *
 * Offers: an offer shaped like OBS's (libdatachannel: audio first, session-level ICE
 * credentials and fingerprint; tests/fixtures/whip/obs-offer.sdp) passes the check, and
 * each malformed variant is refused with its reason.  Requests: the answers whip_request
 * gives without a stream (415, 400, 405, 404, 503 before the model is ready, 404 with
 * whip.allow_create false).  Ingest: "whip:" is a source that waits (CONNECTING, no run)
 * until an offer; offers to anything else are refused; every handle closes.  The WebRTC
 * session itself runs in tests/t-whip.sh (a network namespace).  Runs from the repo root.
 * Static helpers are tested by including the .c file.
 */
#include "../server/whip.c"
#include "test.h"

/* whip.c, http.c and stream.c call the app's stream registry (main.c): none here. */
stream *app_find_stream(app *a, const char *id) {
    (void)a, (void)id;
    return NULL;
}
int app_add_stream(app *a, stream *s) {
    (void)a, (void)s;
    return -1;
}
void app_forget_stream(app *a, stream *s) {
    (void)a, (void)s;
}
void app_start_streams(app *a) {
    (void)a;
}
void app_shutdown(app *a, int code) {
    (void)a, (void)code;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    ASSERT_MSG(f, "%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    ASSERT(fread(s, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    return s;
}

/* s with the first occurrence of what replaced by with (malloc'd). */
static char *replaced(const char *s, const char *what, const char *with) {
    const char *p = strstr(s, what);
    ASSERT_MSG(p, "'%s' not in the fixture", what);
    size_t a = (size_t)(p - s), n = strlen(s) + strlen(with) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)a, s, with, p + strlen(what));
    return out;
}

/* Every line starting with prefix removed (malloc'd). */
static char *without_lines(const char *s, const char *prefix) {
    char *out = calloc(1, strlen(s) + 1);
    size_t o = 0;
    for (const char *l = s; *l;) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) + 1 : strlen(l);
        if (strncmp(l, prefix, strlen(prefix)) != 0) {
            memcpy(out + o, l, len);
            o += len;
        }
        l += len;
    }
    return out;
}

#define OBS_OFFER "tests/fixtures/whip/obs-offer.sdp"

static void test_whip_offer_check(void) {
    char *obs = read_file(OBS_OFFER);
    char why[256] = "";
    ASSERT_MSG(check_offer(obs, strlen(obs), why, sizeof why), "OBS's offer: %s", why);
    /* media-level ICE credentials and fingerprint (webrtcbin's and browsers' offers) */
    char *a = without_lines(obs, "a=ice-ufrag");
    char *b = without_lines(a, "a=ice-pwd");
    char *c = without_lines(b, "a=fingerprint");
    char *media = replaced(c, "a=mid:1\r\n",
                           "a=mid:1\r\na=ice-ufrag:x1Yz\r\na=ice-pwd:0123456789abcdefghijkl\r\n"
                           "a=fingerprint:sha-256 00:11:22:33\r\n");
    ASSERT_MSG(check_offer(media, strlen(media), why, sizeof why), "media-level: %s", why);
    char *vp8 = replaced(obs, "a=rtpmap:96 H264/90000", "a=rtpmap:96 VP8/90000");
    ASSERT(check_offer(vp8, strlen(vp8), why, sizeof why));
    char *vp9 = replaced(obs, "a=rtpmap:96 H264/90000", "a=rtpmap:96 vp9/90000");
    ASSERT(check_offer(vp9, strlen(vp9), why, sizeof why));

    static const struct {
        const char *name, *want;
    } bad[] = {
        {"empty", "does not start with v=0"},
        {"text", "does not start with v=0"},
        {"nul", "control byte 0x00"},
        {"no origin", "no o= line"},
        {"no media", "no m= line"},
        {"no ice", "no ice-ufrag/ice-pwd"},
        {"no fingerprint", "no DTLS fingerprint"},
        {"audio only", "no video m-line"},
        {"h265", "no H.264, VP8 or VP9 video"},
    };
    char *cases[sizeof bad / sizeof bad[0]];
    size_t lens[sizeof bad / sizeof bad[0]];
    cases[0] = strdup("");
    cases[1] = strdup("hello, world\r\n");
    cases[2] = strdup(obs);
    lens[2] = strlen(obs);
    cases[2][5] = 0; /* a NUL inside the body */
    cases[3] = without_lines(obs, "o=");
    cases[4] = without_lines(without_lines(without_lines(obs, "m="), "c="), "a=rtpmap");
    cases[5] = without_lines(obs, "a=ice-pwd");
    cases[6] = without_lines(obs, "a=fingerprint");
    cases[7] = replaced(obs, "m=video", "m=audio");
    cases[8] = replaced(obs, "a=rtpmap:96 H264/90000", "a=rtpmap:96 H265/90000");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = i == 2 ? lens[2] : strlen(cases[i]);
        why[0] = 0;
        ASSERT_MSG(!check_offer(cases[i], len, why, sizeof why), "%s: accepted", bad[i].name);
        ASSERT_MSG(strstr(why, bad[i].want), "%s: '%s' does not say '%s'", bad[i].name, why,
                   bad[i].want);
        free(cases[i]);
    }
    free(obs), free(a), free(b), free(c), free(media), free(vp8), free(vp9);
}

static void test_whip_content_type(void) {
    ASSERT(is_sdp_type("application/sdp"));
    ASSERT(is_sdp_type("Application/SDP"));
    ASSERT(is_sdp_type("application/sdp; charset=utf-8"));
    ASSERT(!is_sdp_type("application/sdpx"));
    ASSERT(!is_sdp_type("application/json"));
    ASSERT(!is_sdp_type(""));
    ASSERT(!is_sdp_type(NULL));
    ASSERT(video_codec_ok("96 H264/90000"));
    ASSERT(video_codec_ok("98 VP9/90000"));
    ASSERT(!video_codec_ok("111 opus/48000/2"));
    ASSERT(!video_codec_ok("97 rtx/90000"));
    ASSERT(!video_codec_ok(NULL));
}

/* One request against an app without streams: the status and the error's message. */
static int request(app *a, const char *method, const char *path, const char *ctype,
                   const char *body, char *msg, size_t cap) {
    whip_response r;
    int rc = whip_request(a, NULL, method, path, ctype, body, body ? strlen(body) : 0, &r);
    ASSERT_EQ_INT(rc, WHIP_ANSWERED);
    msg[0] = 0;
    if (r.body) {
        snprintf(msg, cap, "%.*s", (int)r.len, r.body);
        ASSERT_MSG(strstr(msg, "{\"error\":{\"code\":"), "not a proto error: %s", msg);
    }
    free(r.body);
    return r.status;
}

static void test_whip_requests_without_stream(void) {
    static app a;
    config_init_defaults(&a.cfg);
    char *obs = read_file(OBS_OFFER);
    char msg[1024];
    const char *sdp = "application/sdp";
    ASSERT_EQ_INT(request(&a, "POST", "/v1/whip/cam", "text/plain", obs, msg, sizeof msg), 415);
    ASSERT_CONTAINS(msg, "application/sdp");
    ASSERT_EQ_INT(request(&a, "POST", "/v1/whip/cam", "", obs, msg, sizeof msg), 415);
    ASSERT_EQ_INT(request(&a, "POST", "/v1/whip/cam", sdp, "v=0\r\nnonsense", msg, sizeof msg),
                  400);
    ASSERT_CONTAINS(msg, "malformed SDP offer");
    ASSERT_EQ_INT(request(&a, "POST", "/v1/whip/cam", sdp, NULL, msg, sizeof msg), 400);
    /* a well-formed offer before the model is ready */
    ASSERT_EQ_INT(request(&a, "POST", "/v1/whip/cam", sdp, obs, msg, sizeof msg), 503);
    ASSERT_CONTAINS(msg, "loading");
    /* ready, but the config does not let publishers create streams */
    a.ready = true;
    a.cfg.whip.allow_create = false;
    ASSERT_EQ_INT(request(&a, "POST", "/v1/whip/cam", sdp, obs, msg, sizeof msg), 404);
    ASSERT_CONTAINS(msg, "allow_create");
    /* routing */
    ASSERT_EQ_INT(request(&a, "GET", "/v1/whip/cam", "", NULL, msg, sizeof msg), 405);
    ASSERT_EQ_INT(request(&a, "DELETE", "/v1/whip/cam", "", NULL, msg, sizeof msg), 405);
    ASSERT_EQ_INT(request(&a, "DELETE", "/v1/whip/cam/0123456789abcdef", "", NULL, msg, sizeof msg),
                  404);
    ASSERT_EQ_INT(request(&a, "PATCH", "/v1/whip/cam/0123456789abcdef",
                          "application/trickle-ice-sdpfrag", "a=end-of-candidates", msg,
                          sizeof msg),
                  405);
    ASSERT_CONTAINS(msg, "trickle");
    ASSERT_EQ_INT(request(&a, "POST", "/v1/whip/cam/0123456789abcdef", sdp, obs, msg, sizeof msg),
                  405);
    ASSERT_EQ_INT(request(&a, "POST", "/v1/whip/", sdp, obs, msg, sizeof msg), 404);
    ASSERT_EQ_INT(request(&a, "POST", "/v1/whip/a b", sdp, obs, msg, sizeof msg), 400);
    ASSERT_EQ_INT(request(&a, "DELETE", "/v1/whip/cam/x/y", "", NULL, msg, sizeof msg), 404);
    whip_conn_closed(&a, (void *)&a); /* no session: nothing happens */
    whip_tick(&a);
    whip_stop();
    free(obs);
    config_deinit(&a.cfg);
}

static int n_states;
static ingest_state last_state;

static void state_cb(void *user, ingest_state st, const char *detail, double retry) {
    (void)user, (void)detail, (void)retry;
    n_states++;
    last_state = st;
}

static void answer_cb(void *user, uint64_t tag, const char *sdp, const char *error) {
    (void)user, (void)tag, (void)sdp, (void)error;
    ASSERT_MSG(0, "no answer is owed in this test");
}

static void test_ingest_whip_source(void) {
    uv_loop_t loop;
    ASSERT_EQ_INT(uv_loop_init(&loop), 0);
    char err[INGEST_ERR_LEN] = "";
    ingest_params p = {.id = "pub",
                       .source = "whip:",
                       .width = 64,
                       .height = 36,
                       .loop = &loop,
                       .stun_server = "stun://stun.example.org:3478",
                       .port_min = 40000,
                       .port_max = 40100};
    ingest_callbacks cb = {.state = state_cb};
    ingest *in = NULL;
    ASSERT_MSG(ingest_new(&p, &cb, NULL, &in, err) == 0, "%s", err);
    /* an offer before ingest_start */
    ASSERT_EQ_INT(ingest_whip_offer(in, "v=0\r\n", answer_cb, NULL, 1, err), UV_EINVAL);
    ASSERT_CONTAINS(err, "not started");
    /* started: waiting for a publisher, no run */
    ASSERT_EQ_INT(ingest_start(in), 0);
    ASSERT_EQ_INT(n_states, 1);
    ASSERT_EQ_INT(last_state, INGEST_CONNECTING);
    ASSERT_EQ_INT(ingest_get_state(in), INGEST_CONNECTING);
    ASSERT_EQ_INT(ingest_whip_session(in), 0);
    ingest_whip_end(in, NULL); /* no run: no-op */
    ASSERT_EQ_INT(n_states, 1);
    ASSERT_EQ_INT(ingest_whip_set_ice(in, "", "turn://u:p@h:3478", 5000, 4000), UV_EINVAL);
    ASSERT_EQ_INT(ingest_whip_set_ice(in, "", "turn://u:p@h:3478", 5000, 0), 0);
    ingest_stop(in);
    ingest_free(in);

    /* whip: takes no parameters; the port range is checked */
    in = NULL;
    p.source = "whip:studio";
    ASSERT_EQ_INT(ingest_new(&p, &cb, NULL, &in, err), UV_EINVAL);
    ASSERT_CONTAINS(err, "whip: takes no parameters");
    p.source = "whip:";
    p.port_min = 50000;
    p.port_max = 40000;
    ASSERT_EQ_INT(ingest_new(&p, &cb, NULL, &in, err), UV_EINVAL);
    ASSERT_CONTAINS(err, "port range");

    /* offers go to whip: ingests only */
    p.source = "test:smpte";
    p.port_min = p.port_max = 0;
    ASSERT_MSG(ingest_new(&p, &cb, NULL, &in, err) == 0, "%s", err);
    ASSERT_EQ_INT(ingest_whip_offer(in, "v=0\r\n", answer_cb, NULL, 1, err), UV_EINVAL);
    ASSERT_CONTAINS(err, "not a whip: source");
    ASSERT_EQ_INT(ingest_whip_session(in), 0);
    ingest_free(in);

    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(uv_loop_close(&loop), 0);
}

static void test_stream_whip_is_live(void) {
    ASSERT(stream_source_is_live("whip:"));
    ASSERT(stream_source_is_live("srt://0.0.0.0:9000?mode=listener"));
    ASSERT(stream_source_is_live("test:"));
    ASSERT(!stream_source_is_live("/media/clip.mp4"));
    ASSERT(stream_source_is_live("/dev/video0")); /* a camera, not a file */
    ASSERT(stream_source_is_live("v4l2:///dev/video0"));
    ASSERT(!stream_source_is_live("FILE:///media/clip.mp4")); /* schemes in any case */
    ASSERT(!stream_source_is_live("https://example.org/clip.mp4"));
}

static void test_snapshot_jpeg(void) {
    int64_t w = 67, h = 37; /* odd: GStreamer pads RGB rows to 4 bytes, ours are packed */
    uint8_t *rgb = malloc((size_t)(w * h * 3));
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            uint8_t *p = rgb + (y * w + x) * 3;
            p[0] = (uint8_t)(x * 255 / w), p[1] = (uint8_t)(y * 255 / h), p[2] = 128;
        }
    uint8_t *jpg = NULL;
    size_t len = 0;
    char err[INGEST_ERR_LEN] = "";
    ASSERT_MSG(ingest_encode_jpeg(rgb, w, h, &jpg, &len, err) == 0, "%s", err);
    ASSERT(len > 100);
    ASSERT(jpg[0] == 0xff && jpg[1] == 0xd8 && jpg[len - 2] == 0xff && jpg[len - 1] == 0xd9);
    /* the size is in the SOF0 segment: FFC0, length, precision, height, width */
    size_t i = 2;
    int64_t jw = 0, jh = 0;
    while (i + 9 < len) {
        if (jpg[i] == 0xff && (jpg[i + 1] == 0xc0 || jpg[i + 1] == 0xc2)) {
            jh = jpg[i + 5] << 8 | jpg[i + 6];
            jw = jpg[i + 7] << 8 | jpg[i + 8];
            break;
        }
        i++;
    }
    ASSERT_EQ_INT(jw, w);
    ASSERT_EQ_INT(jh, h);
    free(jpg);
    ASSERT_EQ_INT(ingest_encode_jpeg(rgb, 0, h, &jpg, &len, err), UV_EINVAL);
    ASSERT(jpg == NULL);
    free(rgb);
}

static const test_case tests[] = {
    {"whip_offer_check", test_whip_offer_check},
    {"whip_content_type", test_whip_content_type},
    {"whip_requests_without_stream", test_whip_requests_without_stream},
    {"ingest_whip_source", test_ingest_whip_source},
    {"stream_whip_is_live", test_stream_whip_is_live},
    {"snapshot_jpeg", test_snapshot_jpeg},
    {0},
};

int main(int argc, char **argv) {
    return test_main(argc, argv, tests);
}
