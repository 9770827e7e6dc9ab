/* test-cli-framepick.c — the frame-choice rule of `commentary run` and the daemon
 * (cli/frame_pick.c), and the WebVTT helpers the run writes with (proto/vtt.c): both are
 * pure, so the .c files are included here (the tests link only the engine library).
 *
 * The rule: stream time = timestamp - first timestamp; chunk i takes the first frame at or
 * after i and the first at or after i + 0.5 s; a stream that ends with only the first
 * frame of a chunk uses it twice; a chunk with no frame at or after i is not emitted.
 * Each case checks the streaming picker against a brute-force reading of that sentence
 * over the whole list of times, and some against hand-worked frame numbers.
 */
#include "test.h"

#include "../cli/frame_pick.c"
#include "../proto/vtt.c"

#define NS FRAME_PICK_NS_PER_S
#define MAX_CHUNKS 4096

/* The picks of one stream: frame indices per chunk slot. */
typedef struct picks {
    int64_t n; /* chunks emitted */
    int64_t frame[MAX_CHUNKS][2];
} picks;

static picks g_a, g_b; /* large: static, not on the stack */

/* Run the streaming picker over ts[0..n) as the CLI does; keep[] (optional) is set for the
 * frames that filled at least one slot. */
static void run_picker(const int64_t *ts, int64_t n, picks *out, bool *keep) {
    frame_pick p;
    frame_pick_init(&p);
    out->n = 0;
    for (int64_t f = 0; f < n; f++) {
        int64_t chunk;
        int slot;
        bool kept = false;
        while (frame_pick_next(&p, ts[f], &chunk, &slot)) {
            ASSERT_MSG(chunk == out->n, "frame %lld filled chunk %lld while chunk %lld is open",
                       (long long)f, (long long)chunk, (long long)out->n);
            ASSERT(chunk < MAX_CHUNKS);
            out->frame[chunk][slot] = f;
            if (slot == 1) out->n++;
            kept = true;
        }
        if (keep) keep[f] = kept;
    }
    int64_t chunk;
    if (frame_pick_finish(&p, &chunk)) {
        ASSERT_EQ_INT(chunk, out->n);
        out->frame[chunk][1] = out->frame[chunk][0];
        out->n++;
    }
    ASSERT(!frame_pick_finish(&p, &chunk)); /* finishing twice adds nothing */
}

/* The rule read literally over the whole stream. */
static void brute_force(const int64_t *ts, int64_t n, picks *out) {
    out->n = 0;
    if (n == 0) return;
    for (int64_t i = 0; i < MAX_CHUNKS; i++) {
        int64_t a = -1, b = -1;
        for (int64_t f = 0; f < n && (a < 0 || b < 0); f++) {
            int64_t t = ts[f] - ts[0];
            if (a < 0 && t >= i * NS) a = f;
            if (b < 0 && 2 * t >= (2 * i + 1) * NS) b = f;
        }
        if (a < 0) break;
        out->frame[i][0] = a;
        out->frame[i][1] = b >= 0 ? b : a;
        out->n++;
    }
}

static void assert_same(const picks *x, const picks *y) {
    ASSERT_EQ_INT(x->n, y->n);
    for (int64_t i = 0; i < x->n; i++)
        for (int k = 0; k < 2; k++)
            ASSERT_MSG(x->frame[i][k] == y->frame[i][k], "chunk %lld slot %d: frame %lld vs %lld",
                       (long long)i, k, (long long)x->frame[i][k], (long long)y->frame[i][k]);
}

/* Streaming picker == brute force, and a second picker fed only the frames the first kept
 * (the pad probe before conversion, then the sink) makes the same picks. */
static void check_stream(const int64_t *ts, int64_t n) {
    size_t cap = (size_t)(n > 0 ? n : 1);
    bool *keep = calloc(cap, sizeof *keep);
    int64_t *kept_ts = malloc(sizeof(int64_t) * cap), *kept_idx = malloc(sizeof(int64_t) * cap);
    run_picker(ts, n, &g_a, keep);
    brute_force(ts, n, &g_b);
    assert_same(&g_a, &g_b);
    int64_t m = 0;
    for (int64_t f = 0; f < n; f++)
        if (keep[f]) {
            kept_idx[m] = f;
            kept_ts[m++] = ts[f];
        }
    run_picker(kept_ts, m, &g_b, NULL);
    for (int64_t i = 0; i < g_b.n; i++)
        for (int k = 0; k < 2; k++)
            g_b.frame[i][k] = kept_idx[g_b.frame[i][k]];
    assert_same(&g_a, &g_b);
    free(keep);
    free(kept_ts);
    free(kept_idx);
}

/* Timestamps of n frames at num/den fps from origin t0, rounded down to the ns as
 * GStreamer's gst_util_uint64_scale does. */
static int64_t *make_ts(int64_t n, int64_t num, int64_t den, int64_t t0) {
    int64_t *ts = malloc(sizeof(int64_t) * (size_t)n);
    for (int64_t f = 0; f < n; f++)
        ts[f] = t0 + f * den * NS / num; /* < 2^63 for hours of video */
    return ts;
}

static void expect_chunk(int64_t i, int64_t a, int64_t b) {
    ASSERT_MSG(i < g_a.n, "chunk %lld missing (%lld chunks)", (long long)i, (long long)g_a.n);
    ASSERT_MSG(g_a.frame[i][0] == a && g_a.frame[i][1] == b,
               "chunk %lld: frames (%lld, %lld), want (%lld, %lld)", (long long)i,
               (long long)g_a.frame[i][0], (long long)g_a.frame[i][1], (long long)a, (long long)b);
}

static void test_framepick_30fps(void) {
    int64_t *ts = make_ts(90, 30, 1, 0); /* 3 s */
    check_stream(ts, 90);
    ASSERT_EQ_INT(g_a.n, 3);
    expect_chunk(0, 0, 15);
    expect_chunk(1, 30, 45);
    expect_chunk(2, 60, 75);
    free(ts);
}

static void test_framepick_30fps_partial_last_second(void) {
    int64_t *ts = make_ts(66, 30, 1, 0); /* 2.2 s: frames up to 2.167 s */
    check_stream(ts, 66);
    ASSERT_EQ_INT(g_a.n, 3);
    expect_chunk(2, 60, 60); /* no frame at or after 2.5 s: frame 60 (2.0 s) twice */
    free(ts);
    ts = make_ts(76, 30, 1, 0); /* frame 75 is exactly 2.5 s */
    check_stream(ts, 76);
    ASSERT_EQ_INT(g_a.n, 3);
    expect_chunk(2, 60, 75);
    free(ts);
}

static void test_framepick_2997fps(void) {
    int64_t n = 30 * 60 * 10; /* 10 minutes at 30000/1001: the 0.5 s marks drift across frames */
    int64_t *ts = make_ts(n, 30000, 1001, 0);
    check_stream(ts, n);
    expect_chunk(0, 0, 15);             /* 15 * 1001/30000 = 0.5005 s */
    expect_chunk(1, 30, 45);            /* 1.001 s, 1.5015 s (frame 29 is 0.967 s, 44 is 1.468 s) */
    for (int64_t i = 0; i < g_a.n; i++) /* every pick is within a frame after its mark */
        for (int k = 0; k < 2; k++) {
            int64_t d = ts[g_a.frame[i][k]] - (i * NS + k * NS / 2);
            ASSERT_MSG(d >= 0 && d < 1001 * NS / 30000 + 1, "chunk %lld slot %d: %lld ns late",
                       (long long)i, k, (long long)d);
        }
    free(ts);
}

static void test_framepick_15fps(void) {
    int64_t *ts = make_ts(45, 15, 1, 0); /* 3 s */
    check_stream(ts, 45);
    ASSERT_EQ_INT(g_a.n, 3);
    expect_chunk(0, 0, 8); /* 7/15 = 0.467 s < 0.5 <= 8/15 = 0.533 s */
    expect_chunk(1, 15, 23);
    expect_chunk(2, 30, 38);
    free(ts);
}

static void test_framepick_1fps(void) {
    int64_t *ts = make_ts(5, 1, 1, 0);
    check_stream(ts, 5);
    ASSERT_EQ_INT(g_a.n, 5);
    for (int64_t i = 0; i < 4; i++)
        expect_chunk(i, i, i + 1); /* the next second's frame */
    expect_chunk(4, 4, 4);         /* the end: used twice */
    free(ts);
}

static void test_framepick_irregular(void) {
    /* ms: jitter around the marks, an exact 0.5 s mark, and a gap from 1.7 s to 4.2 s */
    static const int64_t ms[] = {0, 300, 499, 500, 999, 1700, 4200, 4600, 5100};
    int64_t n = sizeof ms / sizeof ms[0], ts[sizeof ms / sizeof ms[0]];
    for (int64_t f = 0; f < n; f++)
        ts[f] = ms[f] * 1000000;
    check_stream(ts, n);
    ASSERT_EQ_INT(g_a.n, 6);
    expect_chunk(0, 0, 3); /* 0.5 s exactly counts as "at or after" */
    expect_chunk(1, 5, 5); /* 1.7 s is the first frame at/after both 1.0 and 1.5 */
    expect_chunk(2, 6, 6); /* the gap: 4.2 s is the first frame at or after 2, 2.5, 3, 3.5, 4 */
    expect_chunk(3, 6, 6);
    expect_chunk(4, 6, 7);
    expect_chunk(5, 8, 8); /* 5.1 s, then the end */
}

static void test_framepick_one_ns_before_mark(void) {
    int64_t ts[] = {0, NS / 2 - 1, NS / 2, NS - 1, NS};
    check_stream(ts, 5);
    ASSERT_EQ_INT(g_a.n, 2);
    expect_chunk(0, 0, 2);
    expect_chunk(1, 4, 4);
}

static void test_framepick_late_start(void) {
    /* the first buffer at 3600.0333 s (a stream joined late): times count from it */
    int64_t *ts = make_ts(90, 30, 1, 3600 * NS + NS / 30);
    check_stream(ts, 90);
    ASSERT_EQ_INT(g_a.n, 3);
    expect_chunk(0, 0, 15);
    expect_chunk(1, 30, 45);
    expect_chunk(2, 60, 75);
    frame_pick p;
    frame_pick_init(&p);
    ASSERT_EQ_INT(frame_pick_stream_time(&p, ts[10]), 0); /* no origin yet */
    int64_t chunk;
    int slot;
    ASSERT(frame_pick_next(&p, ts[0], &chunk, &slot));
    ASSERT_EQ_INT(frame_pick_stream_time(&p, ts[30]), NS);
    free(ts);
}

static void test_framepick_backwards_and_tiny(void) {
    /* a timestamp before the current mark (or before the origin) fills nothing */
    int64_t ts[] = {5 * NS, 4 * NS, 5 * NS + NS / 2, 5 * NS + NS / 4};
    check_stream(ts, 4);
    ASSERT_EQ_INT(g_a.n, 1);
    expect_chunk(0, 0, 2);
    int64_t one[] = {7};
    check_stream(one, 1);
    ASSERT_EQ_INT(g_a.n, 1);
    expect_chunk(0, 0, 0);
    check_stream(one, 0); /* no frame: no chunk */
    ASSERT_EQ_INT(g_a.n, 0);
}

static void test_vtt_format_time(void) {
    char b[PROTO_VTT_TIME_LEN];
    ASSERT_EQ_STR(proto_vtt_format_time(0, b), "00:00:00.000");
    ASSERT_EQ_STR(proto_vtt_format_time(1, b), "00:00:01.000");
    ASSERT_EQ_STR(proto_vtt_format_time(61.5, b), "00:01:01.500");
    ASSERT_EQ_STR(proto_vtt_format_time(0.9996, b), "00:00:01.000"); /* rounds, never "0.1000" */
    ASSERT_EQ_STR(proto_vtt_format_time(3599.9994, b), "00:59:59.999");
    ASSERT_EQ_STR(proto_vtt_format_time(3 * 3600 + 25 * 60 + 7.25, b), "03:25:07.250");
    ASSERT_EQ_STR(proto_vtt_format_time(123 * 3600.0, b), "123:00:00.000");
    ASSERT_EQ_STR(proto_vtt_format_time(-1, b), "00:00:00.000");
    ASSERT_EQ_STR(proto_vtt_format_time(NAN, b), "00:00:00.000");
    ASSERT_EQ_STR(proto_vtt_format_time(1e12, b), "9999:59:59.999");
}

static void test_vtt_cue(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT(f);
    ASSERT_EQ_INT(proto_vtt_write_header(f), 0);
    ASSERT_EQ_INT(proto_vtt_write_cue(f, 0, 1, "Goal!"), 0);
    ASSERT_EQ_INT(proto_vtt_write_cue(f, 1, 2, ""), 0);     /* empty: no cue */
    ASSERT_EQ_INT(proto_vtt_write_cue(f, 1, 2, " \n "), 0); /* blank: no cue */
    ASSERT_EQ_INT(proto_vtt_write_cue(f, 2, 3, NULL), 0);
    ASSERT_EQ_INT(proto_vtt_write_cue(f, 3, 4, "a <b> & c --> d\n\ne"), 0);
    fclose(f);
    ASSERT_EQ_STR(buf, "WEBVTT\n\n"
                       "00:00:00.000 --> 00:00:01.000\nGoal!\n\n"
                       "00:00:03.000 --> 00:00:04.000\na &lt;b&gt; &amp; c --&gt; d  e\n\n");
    free(buf);
}

static const test_case tests[] = {
    {"cli_framepick_30fps", test_framepick_30fps},
    {"cli_framepick_30fps_partial_last_second", test_framepick_30fps_partial_last_second},
    {"cli_framepick_2997fps", test_framepick_2997fps},
    {"cli_framepick_15fps", test_framepick_15fps},
    {"cli_framepick_1fps", test_framepick_1fps},
    {"cli_framepick_irregular", test_framepick_irregular},
    {"cli_framepick_one_ns_before_mark", test_framepick_one_ns_before_mark},
    {"cli_framepick_late_start", test_framepick_late_start},
    {"cli_framepick_backwards_and_tiny", test_framepick_backwards_and_tiny},
    {"cli_vtt_format_time", test_vtt_format_time},
    {"cli_vtt_cue", test_vtt_cue},
    {0},
};

int main(int argc, char **argv) {
    return test_main(argc, argv, tests);
}
