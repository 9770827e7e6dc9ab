/* test-server-ingest.c — server/ingest: sources → 2 fps RGB frames, states, reconnects.
 *
 * Every loop test runs the ingest on its own uv loop, driven by a 20 ms tick that checks
 * the scenario and a deadline; it ends by stopping and freeing the ingest, closing every
 * handle and asserting uv_loop_close() == 0, and checks that no callback ran after
 * ingest_stop() returned.  Network: loopback only — the RTSP helper binds 127.0.0.1 and
 * serves RTP inside the RTSP TCP connection (rtspt://), the SRT listener and the
 * python3 http.server bind 127.0.0.1.  Helpers: build/tests/helpers/rtsp-server;
 * gst-launch-1.0 makes the test media (H.264 MP4s in a mkdtemp directory) and plays the
 * SRT caller.  The whole file takes about 20 s.
 */
#include "test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "ingest.h"

#define MAX_FRAMES 256
#define MAX_STATES 64

typedef struct tframe {
    double t;
    int64_t w, h, stride;
    uint8_t center[3], top[3]; /* RGB of the middle pixel, of the top row's middle */
    double wall_ms;    /* when it arrived */
} tframe;

typedef struct tctx {
    uv_loop_t loop;
    uv_timer_t tick;
    ingest *in;
    double t0_ms, deadline_ms;
    bool (*done)(struct tctx *); /* scenario step; true: stop the loop */
    int step;
    int mark;     /* frames at the scenario's last step */
    pid_t server; /* helper process, or 0 */
    int port;
    bool free_on_ended; /* stop + free from inside the ENDED state callback */
    bool stopped;       /* ingest_stop has returned */
    bool freed;
    pthread_mutex_t mu; /* frames are written by a streaming thread */
    tframe frames[MAX_FRAMES];
    int n_frames;
    int late_callbacks; /* callbacks after ingest_stop returned (must stay 0) */
    ingest_state states[MAX_STATES];
    char details[MAX_STATES][256];
    bool has_detail[MAX_STATES];
    double retry[MAX_STATES];
    int n_states;
    uint64_t checksum; /* every byte of every frame read (catches short buffers) */
} tctx;

static int frames_n(tctx *c) {
    pthread_mutex_lock(&c->mu);
    int n = c->n_frames;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static void on_frame(void *user, const uint8_t *rgb, int64_t w, int64_t h, int64_t stride,
                     double t) {
    tctx *c = user;
    uint64_t sum = 0;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w * 3; x++)
            sum += rgb[y * stride + x];
    pthread_mutex_lock(&c->mu);
    if (c->stopped) c->late_callbacks++;
    if (c->n_frames < MAX_FRAMES) {
        tframe *f = &c->frames[c->n_frames++];
        f->t = t;
        f->w = w;
        f->h = h;
        f->stride = stride;
        memcpy(f->center, rgb + (h / 2) * stride + (w / 2) * 3, 3);
        memcpy(f->top, rgb + (w / 2) * 3, 3);
        f->wall_ms = test_now_ms();
    }
    c->checksum += sum;
    pthread_mutex_unlock(&c->mu);
}

static void on_state(void *user, ingest_state st, const char *detail, double retry_in_s) {
    tctx *c = user;
    if (c->stopped) c->late_callbacks++;
    if (c->n_states < MAX_STATES) {
        int i = c->n_states++;
        c->states[i] = st;
        c->has_detail[i] = detail != NULL;
        snprintf(c->details[i], sizeof c->details[i], "%s", detail ? detail : "");
        c->retry[i] = retry_in_s;
    }
    if (st == INGEST_ENDED && c->free_on_ended) { /* re-entrancy: stop + free from here */
        ingest_stop(c->in);
        c->stopped = true;
        ingest_free(c->in);
        c->freed = true;
    }
}

static const ingest_callbacks test_cbs = {on_frame, on_state};

static ingest_params params(tctx *c, const char *source, int64_t w, int64_t h) {
    ingest_params p = {0};
    p.id = "t1";
    p.source = source;
    p.width = w;
    p.height = h;
    p.reconnect_min_s = 0.25;
    p.reconnect_max_s = 1.0;
    p.latency_ms = 100;
    p.loop = &c->loop;
    return p;
}

static void tick_cb(uv_timer_t *t) {
    tctx *c = t->data;
    if (test_now_ms() > c->deadline_ms || c->freed || (c->done && c->done(c))) uv_stop(&c->loop);
}

/* Creates the ingest for source, starts it and runs the loop until done() says so or
 * max_ms pass; then stops it (unless the scenario already freed it). */
static void run(tctx *c, const ingest_params *p, double max_ms) {
    char err[INGEST_ERR_LEN] = "";
    int rc = ingest_new(p, &test_cbs, c, &c->in, err);
    ASSERT_MSG(rc == 0, "ingest_new(%s): %d %s", p->source, rc, err);
    ASSERT_EQ_INT(ingest_start(c->in), 0);
    ASSERT_EQ_INT(ingest_start(c->in), UV_EBUSY);
    c->t0_ms = test_now_ms();
    c->deadline_ms = c->t0_ms + max_ms;
    uv_timer_start(&c->tick, tick_cb, 20, 20);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    if (!c->freed) {
        ingest_stop(c->in);
        pthread_mutex_lock(&c->mu);
        c->stopped = true;
        pthread_mutex_unlock(&c->mu);
    }
}

static void ctx_init(tctx *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    ASSERT_EQ_INT(uv_loop_init(&c->loop), 0);
    uv_timer_init(&c->loop, &c->tick);
    c->tick.data = c;
}

/* Frees the ingest, closes every handle, and checks nothing is left on the loop. */
static void ctx_finish(tctx *c) {
    if (!c->freed && c->in) ingest_free(c->in);
    c->in = NULL;
    uv_close((uv_handle_t *)&c->tick, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(uv_loop_close(&c->loop), 0);
    ASSERT_EQ_INT(c->late_callbacks, 0);
    if (c->server > 0) {
        kill(c->server, SIGKILL);
        waitpid(c->server, NULL, 0);
    }
}

static int count_state(const tctx *c, ingest_state st) {
    int n = 0;
    for (int i = 0; i < c->n_states; i++)
        n += c->states[i] == st;
    return n;
}

/* The frames' t step by ~0.5 s from 0, with the given size and stride. */
static void check_frames(tctx *c, int64_t w, int64_t h, double tol) {
    ASSERT(c->n_frames >= 2);
    ASSERT_NEAR(c->frames[0].t, 0.0, 1e-9);
    for (int i = 0; i < c->n_frames; i++) {
        ASSERT_EQ_INT(c->frames[i].w, w);
        ASSERT_EQ_INT(c->frames[i].h, h);
        ASSERT_EQ_INT(c->frames[i].stride, (w * 3 + 3) / 4 * 4);
        if (i) ASSERT_NEAR(c->frames[i].t - c->frames[i - 1].t, 0.5, tol);
    }
}

/* --- helpers: ports, processes, media ------------------------------------------------- */

/* A port that was free on 127.0.0.1 a moment ago (type: SOCK_STREAM or SOCK_DGRAM). */
static int free_port(int type) {
    int fd = socket(AF_INET, type, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ_INT(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    ASSERT_EQ_INT(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* The path of a helper program next to this test binary (build/tests/helpers/NAME). */
static void helper_path(const char *name, char *out, size_t cap) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ASSERT(n > 0);
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    *slash = '\0';
    int n2 = snprintf(out, cap, "%s/helpers/%s", self, name);
    ASSERT(n2 > 0 && (size_t)n2 < cap);
}

/* Starts the RTSP helper on port and waits (≤ 5 s) for its "ready" line. */
static pid_t start_rtsp_server(int port) {
    char path[PATH_MAX], portstr[16];
    helper_path("rtsp-server", path, sizeof path);
    ASSERT_MSG(access(path, X_OK) == 0, "%s missing: make build/tests/helpers/rtsp-server", path);
    snprintf(portstr, sizeof portstr, "%d", port);
    int fds[2];
    ASSERT_EQ_INT(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(path, path, portstr, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[64] = "";
    size_t got = 0;
    double until = test_now_ms() + 5000;
    while (!strstr(buf, "ready") && got < sizeof buf - 1 && test_now_ms() < until) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0) continue;
        ssize_t n = read(fds[0], buf + got, sizeof buf - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
        buf[got] = '\0';
    }
    close(fds[0]);
    ASSERT_MSG(strstr(buf, "ready"), "rtsp-server on port %d did not get ready", port);
    return pid;
}

static void kill_wait(pid_t pid) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Runs a shell command line (test media); skips the test when gst-launch-1.0 is absent. */
static void sh(const char *cmd) {
    if (system("command -v gst-launch-1.0 >/dev/null 2>&1") != 0)
        SKIP("gst-launch-1.0 not installed (gstreamer1.0-tools)");
    int rc = system(cmd);
    ASSERT_MSG(rc == 0, "command failed (%d): %s", rc, cmd);
}

/* --- tests: the built-in test source --------------------------------------------------- */

static bool done_7_frames(tctx *c) {
    return frames_n(c) >= 7;
}

/* test:ball: LIVE, then frames at ~2 per second of wall time, t = 0, 0.5, 1.0, … */
static void test_ingest_test_source_2fps(void) {
    tctx c;
    ctx_init(&c);
    c.done = done_7_frames;
    ingest_params p = params(&c, "test:ball", 448, 252);
    run(&c, &p, 6000);
    ASSERT_MSG(c.n_frames >= 7, "only %d frames in 6 s", c.n_frames);
    check_frames(&c, 448, 252, 0.02);
    /* live: 7 frames span 3 s of stream time and about as much wall time */
    double wall = c.frames[6].wall_ms - c.frames[0].wall_ms;
    ASSERT_MSG(wall > 2500 && wall < 3600, "7 frames took %.0f ms of wall time", wall);
    ASSERT(c.n_states >= 2);
    ASSERT_EQ_INT(c.states[0], INGEST_CONNECTING);
    ASSERT_EQ_INT(c.states[1], INGEST_LIVE);
    ASSERT_EQ_INT(count_state(&c, INGEST_RECONNECTING), 0);
    ingest_stats s;
    ingest_get_stats(c.in, &s);
    ASSERT_EQ_INT(s.frames_kept, c.n_frames);
    ASSERT_MSG(s.frames_decoded >= 15 * (uint64_t)(c.n_frames - 1), "decoded %" PRIu64,
               s.frames_decoded);
    ASSERT(s.frames_dropped + s.frames_kept <= s.frames_decoded);
    ASSERT(s.frames_dropped + s.frames_kept >= s.frames_decoded - 1);
    ASSERT_EQ_INT(s.reconnects, 0);
    ASSERT_EQ_INT(ingest_get_state(c.in), INGEST_LIVE);
    ctx_finish(&c);
}

static bool done_2_frames(tctx *c) {
    return frames_n(c) >= 2;
}

/* Query parameters reach videotestsrc and its caps; the output is RGB in that order. */
static void test_ingest_test_source_params(void) {
    tctx c;
    ctx_init(&c);
    c.done = done_2_frames;
    ingest_params p = params(&c,
                             "test:solid-color?foreground-color=0xffff0000&motion=wavy&"
                             "width=640&height=360&framerate=30/1",
                             64, 36);
    run(&c, &p, 4000);
    ASSERT(c.n_frames >= 2);
    check_frames(&c, 64, 36, 0.02);
    const uint8_t *px = c.frames[1].center;
    ASSERT_MSG(px[0] >= 250 && px[1] <= 5 && px[2] <= 5, "center pixel %d,%d,%d is not red", px[0],
               px[1], px[2]);
    ctx_finish(&c);
}

/* The bare test: source cycles scenes: the picture after the first scene change (4 s)
 * differs from the first scene's. */
static bool done_12_frames(tctx *c) {
    return frames_n(c) >= 12;
}

static void test_ingest_test_cycles_scenes(void) {
    tctx c;
    ctx_init(&c);
    c.done = done_12_frames;
    ingest_params p = params(&c, "test:", 64, 36);
    run(&c, &p, 9000);
    ASSERT(c.n_frames >= 10);
    /* a centre colour after the change that the first scene never showed */
    bool changed = false;
    for (int j = 0; j < c.n_frames && !changed; j++) {
        if (c.frames[j].t < 4.5) continue;
        bool seen = false;
        for (int k = 0; k < c.n_frames && !seen; k++) {
            const uint8_t *a = c.frames[j].center, *b = c.frames[k].center;
            seen = c.frames[k].t < 3.5 && abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2]) < 30;
        }
        changed = !seen;
    }
    ASSERT_MSG(changed, "the scene did not change over %.1f s", c.frames[c.n_frames - 1].t);
    ctx_finish(&c);
}

/* An odd size: rows are padded to 4 bytes (333 * 3 = 999 → stride 1000). */
static void test_ingest_odd_size_stride(void) {
    tctx c;
    ctx_init(&c);
    c.done = done_2_frames;
    ingest_params p = params(&c, "test:smpte", 333, 241);
    run(&c, &p, 4000);
    check_frames(&c, 333, 241, 0.02);
    ASSERT_EQ_INT(c.frames[0].stride, 1000);
    ASSERT(c.checksum > 0);
    ctx_finish(&c);
}

/* --- tests: files ----------------------------------------------------------------------- */

static bool done_ended(tctx *c) {
    return count_state(c, INGEST_ENDED) > 0;
}

/* Makes dir/clip.mp4: 3 s of 320x240 30 fps H.264 with B-frames, 90 frames. */
static void make_clip(char *dir, char *path, size_t cap) {
    char cmd[512];
    ASSERT(mkdtemp(dir));
    snprintf(path, cap, "%s/clip.mp4", dir);
    snprintf(cmd, sizeof cmd,
             "gst-launch-1.0 -q videotestsrc num-buffers=90 ! "
             "video/x-raw,width=320,height=240,framerate=30/1 ! "
             "x264enc speed-preset=veryfast bframes=2 ! mp4mux ! filesink location=%s",
             path);
    sh(cmd);
}

static void remove_clip(const char *dir, const char *path) {
    unlink(path);
    rmdir(dir);
}

/* The clip's frames: t = 0, 0.5, …, 2.5, states CONNECTING, LIVE, ENDED (no detail). */
static void check_clip_run(tctx *c) {
    ASSERT_EQ_INT(c->n_frames, 6);
    check_frames(c, 320, 240, 1e-6);
    ASSERT_NEAR(c->frames[5].t, 2.5, 1e-6);
    ASSERT_EQ_INT(c->n_states, 3);
    ASSERT_EQ_INT(c->states[0], INGEST_CONNECTING);
    ASSERT_EQ_INT(c->states[1], INGEST_LIVE);
    ASSERT_EQ_INT(c->states[2], INGEST_ENDED);
    ASSERT(!c->has_detail[2]); /* a clean end */
    ingest_stats s;
    ingest_get_stats(c->in, &s);
    ASSERT_EQ_INT(s.frames_decoded, 90);
    ASSERT_EQ_INT(s.frames_kept, 6);
    ASSERT_EQ_INT(s.frames_dropped, 84);
    ASSERT_EQ_INT(s.reconnects, 0);
}

/* A 3-s H.264 MP4 file, as fast as it decodes: frames at t = 0, 0.5, …, 2.5, then ENDED. */
static void test_ingest_file_frames_then_ended(void) {
    char dir[] = "/tmp/ingest-test-XXXXXX", path[256];
    make_clip(dir, path, sizeof path);
    tctx c;
    ctx_init(&c);
    c.done = done_ended;
    ingest_params p = params(&c, path, 320, 240);
    double t0 = test_now_ms();
    run(&c, &p, 10000);
    remove_clip(dir, path);
    check_clip_run(&c);
    ASSERT_MSG(test_now_ms() - t0 < 2000, "a 3-s file took %.0f ms", test_now_ms() - t0);
    ctx_finish(&c);
}

/* Raw BGR video in an AVI written by FFmpeg: avidemux gives it a pixel aspect ratio of
 * -1/1, which videoscale refuses; the file still plays, upright (red above blue). */
static void test_ingest_file_raw_avi_negative_par(void) {
    if (system("command -v ffmpeg >/dev/null 2>&1") != 0) SKIP("ffmpeg not installed");
    char dir[] = "/tmp/ingest-test-XXXXXX", path[256], cmd[512];
    ASSERT(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/raw.avi", dir);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v error -y -f lavfi -i 'color=c=red:s=320x120:r=30[a];"
             "color=c=blue:s=320x120:r=30[b];[a][b]vstack' -frames:v 90 -c:v rawvideo "
             "-pix_fmt bgr24 %s",
             path);
    sh(cmd);
    tctx c;
    ctx_init(&c);
    c.done = done_ended;
    ingest_params p = params(&c, path, 64, 48);
    run(&c, &p, 10000);
    unlink(path);
    rmdir(dir);
    ASSERT_MSG(c.n_states == 3 && !c.has_detail[2], "the raw AVI ended with \"%s\"",
               c.n_states ? c.details[c.n_states - 1] : "");
    ASSERT_EQ_INT(c.n_frames, 6);
    check_frames(&c, 64, 48, 1e-6);
    for (int i = 0; i < c.n_frames; i++) {
        ASSERT_MSG(c.frames[i].top[0] > 200 && c.frames[i].top[2] < 50,
                   "frame %d: top row is %d,%d,%d, not red", i, c.frames[i].top[0],
                   c.frames[i].top[1], c.frames[i].top[2]);
    }
    ctx_finish(&c);
}

/* The decimation rule on variable frame spacing: the first frame at or after each 0.5 s
 * mark; a frame after a gap over several marks is kept once and moves the mark past it.
 * 3 fps → 0, 2/3, 1, 5/3, 2, 8/3; 2/3 fps (1.5 s apart) → 0, 1.5, 3. */
static void test_ingest_decimation_marks(void) {
    static const struct {
        const char *rate;
        int n_in;
        int n_out;
        double t[6];
    } cases[] = {
        {"3/1", 9, 6, {0, 2.0 / 3, 1, 5.0 / 3, 2, 8.0 / 3}},
        {"2/3", 3, 3, {0, 1.5, 3}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char dir[] = "/tmp/ingest-test-XXXXXX", path[64], cmd[512];
        ASSERT(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/rate.mp4", dir);
        snprintf(cmd, sizeof cmd,
                 "gst-launch-1.0 -q videotestsrc num-buffers=%d ! "
                 "video/x-raw,width=160,height=120,framerate=%s ! x264enc speed-preset=veryfast ! "
                 "mp4mux ! filesink location=%s",
                 cases[k].n_in, cases[k].rate, path);
        sh(cmd);
        tctx c;
        ctx_init(&c);
        c.done = done_ended;
        ingest_params p = params(&c, path, 64, 48);
        run(&c, &p, 5000);
        remove_clip(dir, path);
        ASSERT_MSG(c.n_frames == cases[k].n_out, "%s fps: %d frames, want %d", cases[k].rate,
                   c.n_frames, cases[k].n_out);
        for (int i = 0; i < c.n_frames; i++)
            ASSERT_NEAR(c.frames[i].t, cases[k].t[i], 1e-3);
        ingest_stats s;
        ingest_get_stats(c.in, &s);
        ASSERT_EQ_INT(s.frames_decoded, cases[k].n_in);
        ASSERT_EQ_INT(s.frames_dropped, cases[k].n_in - cases[k].n_out);
        ctx_finish(&c);
    }
}

/* realtime: the same file (as a file:// URI) at playback speed. */
static void test_ingest_file_realtime(void) {
    char dir[] = "/tmp/ingest-test-XXXXXX", path[256], uri[300];
    make_clip(dir, path, sizeof path);
    snprintf(uri, sizeof uri, "file://%s", path);
    tctx c;
    ctx_init(&c);
    c.done = done_ended;
    ingest_params p = params(&c, uri, 320, 240);
    p.realtime = true;
    run(&c, &p, 10000);
    remove_clip(dir, path);
    check_clip_run(&c);
    double wall = c.frames[5].wall_ms - c.frames[0].wall_ms;
    ASSERT_MSG(wall > 2300 && wall < 3500, "2.5 s of video took %.0f ms", wall);
    ctx_finish(&c);
}

/* http:// is a file too (VOD): served by python3's http.server on 127.0.0.1. */
static void test_ingest_http_file_ends(void) {
    if (access("/usr/bin/python3", X_OK) != 0) SKIP("no /usr/bin/python3");
    char dir[] = "/tmp/ingest-test-XXXXXX", path[256], uri[128], portstr[16];
    make_clip(dir, path, sizeof path);
    tctx c;
    ctx_init(&c);
    c.port = free_port(SOCK_STREAM);
    snprintf(portstr, sizeof portstr, "%d", c.port);
    c.server = fork();
    ASSERT(c.server >= 0);
    if (c.server == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl("/usr/bin/python3", "python3", "-m", "http.server", portstr, "--bind", "127.0.0.1",
              "--directory", dir, (char *)NULL);
        _exit(127);
    }
    /* wait until it listens */
    int up = 0;
    for (int i = 0; i < 100 && !up; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c.port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        up = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (!up) usleep(50000);
    }
    ASSERT_MSG(up, "http.server did not listen on %d", c.port);
    snprintf(uri, sizeof uri, "http://127.0.0.1:%d/clip.mp4", c.port);
    c.done = done_ended;
    ingest_params p = params(&c, uri, 320, 240);
    run(&c, &p, 10000);
    remove_clip(dir, path);
    check_clip_run(&c);
    ctx_finish(&c);
}

/* A missing file ends (no reconnect) with a detail that says what is missing; the state
 * callback may stop and free the ingest from inside. */
static void test_ingest_missing_file_ends_with_error(void) {
    tctx c;
    ctx_init(&c);
    c.free_on_ended = true;
    ingest_params p = params(&c, "/nonexistent-ingest-dir/missing.mp4", 320, 240);
    run(&c, &p, 5000);
    ASSERT(c.freed);
    ASSERT_EQ_INT(c.n_frames, 0);
    ASSERT_EQ_INT(count_state(&c, INGEST_RECONNECTING), 0);
    ASSERT_EQ_INT(c.states[c.n_states - 1], INGEST_ENDED);
    ASSERT(c.has_detail[c.n_states - 1]);
    ASSERT_CONTAINS(c.details[c.n_states - 1], "not found");
    ASSERT_CONTAINS(c.details[c.n_states - 1], "missing.mp4");
    ctx_finish(&c);
}

/* Files that cannot give frames end with an error detail: audio only, not media. */
static void test_ingest_unusable_files_end_with_error(void) {
    char dir[] = "/tmp/ingest-test-XXXXXX", ogg[64], txt[64], cmd[512];
    ASSERT(mkdtemp(dir));
    snprintf(ogg, sizeof ogg, "%s/audio.ogg", dir);
    snprintf(txt, sizeof txt, "%s/notes.mp4", dir);
    snprintf(cmd, sizeof cmd,
             "gst-launch-1.0 -q audiotestsrc num-buffers=20 ! audioconvert ! vorbisenc ! "
             "oggmux ! filesink location=%s && echo 'not a video' > %s",
             ogg, txt);
    sh(cmd);
    const char *paths[] = {ogg, txt},
               *want[] = {"no video stream", "Could not determine type of stream"};
    for (int k = 0; k < 2; k++) {
        tctx c;
        ctx_init(&c);
        c.done = done_ended;
        ingest_params p = params(&c, paths[k], 64, 48);
        run(&c, &p, 5000);
        ASSERT_MSG(c.n_states >= 2, "%s: no end", paths[k]);
        ASSERT_EQ_INT(c.states[c.n_states - 1], INGEST_ENDED);
        ASSERT(c.has_detail[c.n_states - 1]);
        fprintf(stderr, "%s: \"%s\"\n", paths[k], c.details[c.n_states - 1]);
        ASSERT_CONTAINS(c.details[c.n_states - 1], want[k]);
        ASSERT_EQ_INT(c.n_frames, 0);
        ctx_finish(&c);
    }
    unlink(ogg);
    unlink(txt);
    rmdir(dir);
}

/* --- tests: RTSP --------------------------------------------------------------------- */

static bool done_live_3_frames(tctx *c) {
    return count_state(c, INGEST_LIVE) > 0 && frames_n(c) >= 3;
}

/* RTSP from the helper server goes LIVE and delivers frames of the right size. */
static void test_ingest_rtsp_live(void) {
    tctx c;
    ctx_init(&c);
    c.port = free_port(SOCK_STREAM);
    c.server = start_rtsp_server(c.port);
    char uri[128];
    snprintf(uri, sizeof uri, "rtspt://127.0.0.1:%d/test", c.port);
    c.done = done_live_3_frames;
    ingest_params p = params(&c, uri, 224, 168);
    run(&c, &p, 10000);
    ASSERT_MSG(c.n_frames >= 3, "%d frames from %s", c.n_frames, uri);
    check_frames(&c, 224, 168, 0.07); /* 15 fps: kept frames are 0.467–0.533 s apart */
    ASSERT_EQ_INT(c.states[0], INGEST_CONNECTING);
    ASSERT_EQ_INT(c.states[1], INGEST_LIVE);
    ctx_finish(&c);
}

/* Kill the server: RECONNECTING with a detail and a delay; restart it: LIVE again with
 * frames resuming, t still increasing, the reconnect counted. */
static bool reconnect_scenario(tctx *c) {
    switch (c->step) {
    case 0: /* live with 2 frames: kill the server */
        if (count_state(c, INGEST_LIVE) < 1 || frames_n(c) < 2) return false;
        kill_wait(c->server);
        c->server = 0;
        c->step = 1;
        return false;
    case 1: /* reconnecting, and one attempt failed: restart it on the same port */
        if (count_state(c, INGEST_RECONNECTING) < 2) return false;
        c->server = start_rtsp_server(c->port);
        c->mark = frames_n(c);
        c->step = 2;
        return false;
    default: /* live again, with 2 more frames */
        return count_state(c, INGEST_LIVE) >= 2 && frames_n(c) >= c->mark + 2;
    }
}

static void test_ingest_rtsp_reconnect(void) {
    tctx c;
    ctx_init(&c);
    c.port = free_port(SOCK_STREAM);
    c.server = start_rtsp_server(c.port);
    char uri[128];
    snprintf(uri, sizeof uri, "rtspt://127.0.0.1:%d/test", c.port);
    c.done = reconnect_scenario;
    ingest_params p = params(&c, uri, 160, 120);
    p.stall_timeout_s = 3;
    run(&c, &p, 20000);
    ASSERT_MSG(c.step == 2, "stuck at step %d", c.step);
    int r = -1;
    for (int i = 0; i < c.n_states; i++)
        if (c.states[i] == INGEST_RECONNECTING && r < 0) r = i;
    ASSERT(r > 0);
    ASSERT_EQ_INT(c.states[r - 1], INGEST_LIVE);
    ASSERT(c.has_detail[r] && c.details[r][0]);
    ASSERT_NEAR(c.retry[r], 0.25, 1e-9);
    ASSERT_EQ_INT(c.states[r + 1], INGEST_RECONNECTING); /* the server was still down */
    ASSERT_NEAR(c.retry[r + 1], 0.5, 1e-9);
    fprintf(stderr, "reconnecting: \"%s\", then \"%s\"\n", c.details[r], c.details[r + 1]);
    ASSERT_EQ_INT(c.states[c.n_states - 1], INGEST_LIVE);
    ASSERT_MSG(count_state(&c, INGEST_LIVE) >= 2, "never live again");
    ASSERT(c.n_frames >= 4);
    /* after the reconnect the clock continues from the wall time elapsed */
    double wall_s = (c.frames[c.mark].wall_ms - c.frames[0].wall_ms) / 1000;
    ASSERT_NEAR(c.frames[c.mark].t, wall_s, 0.3);
    for (int i = 1; i < c.n_frames; i++)
        ASSERT_MSG(c.frames[i].t > c.frames[i - 1].t, "t went back: %.3f after %.3f", c.frames[i].t,
                   c.frames[i - 1].t);
    ingest_stats s;
    ingest_get_stats(c.in, &s);
    ASSERT(s.reconnects >= 1);
    ctx_finish(&c);
}

/* A server that stops sending without closing the connection (SIGSTOP): after the
 * stall timeout the watchdog rebuilds the pipeline; once it sends again, LIVE again. */
static bool stall_scenario(tctx *c) {
    switch (c->step) {
    case 0:
        if (count_state(c, INGEST_LIVE) < 1 || frames_n(c) < 2) return false;
        kill(c->server, SIGSTOP);
        c->step = 1;
        return false;
    case 1:
        if (count_state(c, INGEST_RECONNECTING) < 1) return false;
        kill(c->server, SIGCONT);
        c->mark = frames_n(c);
        c->step = 2;
        return false;
    default:
        return count_state(c, INGEST_LIVE) >= 2 && frames_n(c) >= c->mark + 2;
    }
}

static void test_ingest_stall_reconnects(void) {
    tctx c;
    ctx_init(&c);
    c.port = free_port(SOCK_STREAM);
    c.server = start_rtsp_server(c.port);
    char uri[128];
    snprintf(uri, sizeof uri, "rtspt://127.0.0.1:%d/test", c.port);
    c.done = stall_scenario;
    ingest_params p = params(&c, uri, 160, 120);
    p.stall_timeout_s = 1;
    run(&c, &p, 15000);
    ASSERT_MSG(c.step == 2, "stuck at step %d", c.step);
    ASSERT_MSG(count_state(&c, INGEST_LIVE) >= 2, "never live again");
    int r = -1;
    for (int i = 0; i < c.n_states; i++)
        if (c.states[i] == INGEST_RECONNECTING && r < 0) r = i;
    ASSERT_EQ_STR(c.details[r], "no frames for 1 s");
    ingest_stats s;
    ingest_get_stats(c.in, &s);
    ASSERT(s.reconnects >= 1);
    ctx_finish(&c);
}

static bool done_2_reconnecting(tctx *c) {
    return count_state(c, INGEST_RECONNECTING) >= 2;
}

/* Nothing listens: RECONNECTING with the error text, retried with a doubling delay
 * (0.25 s, 0.5 s), the rebuilds counted; for RTMP (rtmp2src ! flvdemux) and RTSP. */
static void test_ingest_refused_backs_off(void) {
    static const char *fmt[] = {"rtmp://127.0.0.1:%d/live/x", "rtspt://127.0.0.1:%d/test"};
    for (size_t k = 0; k < sizeof fmt / sizeof fmt[0]; k++) {
        tctx c;
        ctx_init(&c);
        char uri[128];
        snprintf(uri, sizeof uri, fmt[k], free_port(SOCK_STREAM));
        c.done = done_2_reconnecting;
        ingest_params p = params(&c, uri, 64, 48);
        run(&c, &p, 5000);
        ASSERT_MSG(count_state(&c, INGEST_RECONNECTING) >= 2, "%s: %d reconnecting states", uri,
                   count_state(&c, INGEST_RECONNECTING));
        ASSERT_EQ_INT(c.states[0], INGEST_CONNECTING);
        ASSERT_EQ_INT(c.states[1], INGEST_RECONNECTING);
        ASSERT_EQ_INT(c.states[2], INGEST_RECONNECTING);
        ASSERT_MSG(c.has_detail[1] && strlen(c.details[1]) > 5, "%s: detail '%s'", uri,
                   c.details[1]);
        fprintf(stderr, "%s: \"%s\"\n", uri, c.details[1]);
        ASSERT_NEAR(c.retry[1], 0.25, 1e-9);
        ASSERT_NEAR(c.retry[2], 0.5, 1e-9);
        ingest_stats s;
        ingest_get_stats(c.in, &s);
        ASSERT(s.reconnects >= 1);
        ASSERT_EQ_INT(c.n_frames, 0);
        ctx_finish(&c);
    }
}

/* --- tests: SRT listener -------------------------------------------------------------- */

static pid_t start_srt_caller(int port, int frames) {
    char cmd[640];
    snprintf(cmd, sizeof cmd,
             "exec gst-launch-1.0 -q videotestsrc is-live=true num-buffers=%d ! "
             "video/x-raw,width=320,height=240,framerate=15/1 ! "
             "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! "
             "h264parse config-interval=-1 ! mpegtsmux alignment=7 ! "
             "srtsink uri=srt://127.0.0.1:%d >/dev/null 2>&1",
             frames, port);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static bool srt_scenario(tctx *c) {
    switch (c->step) {
    case 0: /* the listener is up: the first caller sends 2 s and leaves */
        if (test_now_ms() - c->t0_ms < 300) return false;
        c->server = start_srt_caller(c->port, 30);
        c->step = 1;
        return false;
    case 1: /* it left: reconnecting (listening again); the next caller comes */
        if (count_state(c, INGEST_RECONNECTING) < 1) return false;
        kill_wait(c->server);
        c->server = start_srt_caller(c->port, 1000);
        c->mark = frames_n(c);
        c->step = 2;
        return false;
    default: /* live again with 2 more frames */
        return count_state(c, INGEST_LIVE) >= 2 && frames_n(c) >= c->mark + 2;
    }
}

/* srt://…?mode=listener: a caller's stream goes LIVE; when it leaves, RECONNECTING
 * (listening again); the next caller makes it LIVE again. */
static void test_ingest_srt_listener_next_caller(void) {
    if (system("gst-inspect-1.0 srtsink >/dev/null 2>&1") != 0) SKIP("no srtsink");
    tctx c;
    ctx_init(&c);
    c.port = free_port(SOCK_DGRAM);
    char uri[128];
    snprintf(uri, sizeof uri, "srt://127.0.0.1:%d?mode=listener", c.port);
    c.done = srt_scenario;
    char err[INGEST_ERR_LEN];
    ingest_params p = params(&c, uri, 160, 120);
    ASSERT_EQ_INT(ingest_new(&p, &test_cbs, &c, &c.in, err), 0);
    ingest_free(c.in); /* (only to prove free without start works) */
    c.in = NULL;
    uv_run(&c.loop, UV_RUN_NOWAIT);
    run(&c, &p, 15000);
    ASSERT_MSG(c.step == 2, "the first caller's end never came (step %d)", c.step);
    ASSERT_MSG(count_state(&c, INGEST_LIVE) >= 2, "never live again");
    int r = -1;
    for (int i = 0; i < c.n_states; i++)
        if (c.states[i] == INGEST_RECONNECTING && r < 0) r = i;
    ASSERT(r > 0);
    ASSERT_EQ_INT(c.states[r - 1], INGEST_LIVE);
    ASSERT_CONTAINS(c.details[r], "caller left");
    ASSERT_NEAR(c.retry[r], 0.25, 1e-9); /* listen again at once (the min delay) */
    for (int i = 1; i < c.n_frames; i++)
        ASSERT(c.frames[i].t > c.frames[i - 1].t);
    ctx_finish(&c);
}

/* --- tests: validation ---------------------------------------------------------------- */

static void expect_reject(uv_loop_t *loop, const char *source, const char *want) {
    ingest_params p = {0};
    p.id = "bad";
    p.source = source;
    p.width = 64;
    p.height = 64;
    p.loop = loop;
    char err[INGEST_ERR_LEN] = "";
    ingest *in = (ingest *)&p; /* must be reset to NULL */
    int rc = ingest_new(&p, &test_cbs, NULL, &in, err);
    ASSERT_MSG(rc < 0, "%s accepted", source);
    ASSERT(in == NULL);
    ASSERT_CONTAINS(err, want);
}

static void test_ingest_rejects_unsupported_scheme(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    expect_reject(&loop, "gopher://x", "gopher://x: unsupported scheme 'gopher'");
    expect_reject(&loop, "webcam:0", "unsupported scheme 'webcam'");
    ASSERT_EQ_INT(uv_loop_close(&loop), 0);
}

static void test_ingest_rejects_malformed_source(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    expect_reject(&loop, "test:nosuchpattern", "test:nosuchpattern: unknown videotestsrc pattern");
    expect_reject(&loop, "test:ball?nosuchparam=1", "unknown parameter 'nosuchparam'");
    expect_reject(&loop, "test:ball?width=abc", "bad width 'abc'");
    expect_reject(&loop, "test:ball?motion=sideways", "bad value 'sideways' for 'motion'");
    expect_reject(&loop, "test:ball?framerate=0/1", "bad framerate");
    expect_reject(&loop, "test:ball?width", "malformed parameter");
    expect_reject(&loop, "rtsp://", "rtsp://: malformed URI");
    expect_reject(&loop, "rtsp:cam", "malformed URI");
    expect_reject(&loop, "srt://127.0.0.1", "missing port");
    expect_reject(&loop, "rtsp://cam /x", "malformed source");
    expect_reject(&loop, "", "empty");
    expect_reject(&loop, "rtsp://user:secret@:554/x", "rtsp://user:***@:554/x");
    /* bad sizes */
    ingest_params p = {.id = "bad", .source = "test:", .width = 0, .height = 64, .loop = &loop};
    ingest *in = NULL;
    char err[INGEST_ERR_LEN] = "";
    ASSERT(ingest_new(&p, &test_cbs, NULL, &in, err) == UV_EINVAL);
    ASSERT_CONTAINS(err, "ingest[bad]: bad output size 0x64");
    ASSERT_EQ_INT(uv_loop_close(&loop), 0);
}

/* Every form of every scheme that should be accepted is (nothing is started). */
static void test_ingest_accepts_sources(void) {
    static const char *ok[] = {
        "test:",
        "test:ball",
        "test:checkers-8",
        "test:snow?width=320&height=240",
        "test:ball?foreground-color=0xffff0000&background-color=0xff0000ff&motion=wavy&"
        "width=640&height=360&framerate=30/1",
        "rtsp://127.0.0.1:8554/cam",
        "rtsps://cam.example/x",
        "rtspt://127.0.0.1/x",
        "srt://127.0.0.1:7001",
        "srt://:7001?mode=listener",
        "rtmp://127.0.0.1/live/x",
        "http://127.0.0.1/x.mp4",
        "https://127.0.0.1/x.mp4",
        "file:///tmp/x.mp4",
        "/tmp/x.mp4",
        "relative/x.mp4",
        "/dev/video0",
        "v4l2:///dev/video0",
    };
    uv_loop_t loop;
    uv_loop_init(&loop);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ingest_params p = {.id = "ok", .source = ok[i], .width = 64, .height = 64, .loop = &loop};
        ingest *in = NULL;
        char err[INGEST_ERR_LEN] = "";
        int rc = ingest_new(&p, &test_cbs, NULL, &in, err);
        ASSERT_MSG(rc == 0 && in, "%s rejected: %s", ok[i], err);
        ASSERT_EQ_INT(ingest_get_state(in), INGEST_CONNECTING);
        ingest_free(in);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(uv_loop_close(&loop), 0);
    ASSERT_EQ_STR(ingest_state_name(INGEST_RECONNECTING), "reconnecting");
}

static const test_case tests[] = {
    {"ingest_rejects_unsupported_scheme", test_ingest_rejects_unsupported_scheme},
    {"ingest_rejects_malformed_source", test_ingest_rejects_malformed_source},
    {"ingest_accepts_sources", test_ingest_accepts_sources},
    {"ingest_test_source_2fps", test_ingest_test_source_2fps},
    {"ingest_test_source_params", test_ingest_test_source_params},
    {"ingest_test_cycles_scenes", test_ingest_test_cycles_scenes},
    {"ingest_odd_size_stride", test_ingest_odd_size_stride},
    {"ingest_file_frames_then_ended", test_ingest_file_frames_then_ended},
    {"ingest_file_raw_avi_negative_par", test_ingest_file_raw_avi_negative_par},
    {"ingest_decimation_marks", test_ingest_decimation_marks},
    {"ingest_file_realtime", test_ingest_file_realtime},
    {"ingest_http_file_ends", test_ingest_http_file_ends},
    {"ingest_missing_file_ends_with_error", test_ingest_missing_file_ends_with_error},
    {"ingest_unusable_files_end_with_error", test_ingest_unusable_files_end_with_error},
    {"ingest_rtsp_live", test_ingest_rtsp_live},
    {"ingest_rtsp_reconnect", test_ingest_rtsp_reconnect},
    {"ingest_refused_backs_off", test_ingest_refused_backs_off},
    {"ingest_stall_reconnects", test_ingest_stall_reconnects},
    {"ingest_srt_listener_next_caller", test_ingest_srt_listener_next_caller},
    {0},
};

int main(int argc, char **argv) {
    return test_main(argc, argv, tests);
}
