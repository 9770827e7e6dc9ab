/* main.c — commentaryd: per-second commentary of live video over WebSocket.
 *
 * Start-up: read and validate the config (+ CLI overrides), listen (HTTP + WS on one
 * port), start the inference thread, which loads and warms up the model in the
 * background; /health answers at once, /ready once the model is warm, and then the
 * configured streams start.  Signals: SIGTERM/SIGINT shut down cleanly (WS close 1001,
 * pipelines to NULL, exit 0); SIGHUP reloads the config file (reloadable keys only; the
 * old config stays on any error).  Under systemd (Type=notify): READY=1, STATUS= lines,
 * WATCHDOG=1 at half the watchdog interval, STOPPING=1.
 * Runs on: loop (everything here).
 */
#include <gst/gst.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <uv.h>

#include "app.h"
#include "config.h"
#include "http.h"
#include "infer.h"
#include "ingest.h"
#include "log.h"
#include "stream.h"
#include "whip.h"
#include "ws.h"

#ifndef COMMENTARY_VERSION
#define COMMENTARY_VERSION "0.1.0"
#endif

void ws_set_app(app *a); /* ws.c */

static uv_signal_t sig_term, sig_int, sig_hup;
/* the command line's overrides, replayed over the file on every reload (the values point
 * into argv, which lives as long as the process) */
static struct { char key[128]; const char *value; } overrides[64];
static int n_overrides;
static uv_timer_t tick_timer, stop_timer;
static uint64_t watchdog_usec;

static double unix_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- the stream registry ---- */

stream *app_find_stream(app *a, const char *id) {
    for (int64_t i = 0; i < a->n_streams; i++)
        if (!strcmp(a->streams[i]->id, id)) return a->streams[i];
    return NULL;
}

int app_add_stream(app *a, stream *s) {
    if (a->n_streams == a->cap_streams) {
        int64_t cap = a->cap_streams ? 2 * a->cap_streams : 16;
        stream **v = realloc(a->streams, sizeof *v * (size_t)cap);
        if (!v) return -1;
        a->streams = v;
        a->cap_streams = cap;
    }
    a->streams[a->n_streams++] = s;
    return 0;
}

void app_forget_stream(app *a, stream *s) {
    for (int64_t i = 0; i < a->n_streams; i++)
        if (a->streams[i] == s) {
            memmove(a->streams + i, a->streams + i + 1,
                    sizeof *a->streams * (size_t)(a->n_streams - i - 1));
            a->n_streams--;
            return;
        }
}

/* Every config stream's source, checked as ingest will take it (scheme, URI, test
 * parameters): 0, or -1 with the first bad one in err.  A missing GStreamer element is
 * only a warning: that stream fails when it starts, the others run. */
static int check_sources(const config *c, char *err) {
    for (int64_t i = 0; i < c->n_streams; i++) {
        char e[256];
        int rc = ingest_check_source(c->streams[i].source, NULL, e);
        if (rc == UV_ENOENT) {
            LOGW("config: streams[%lld]: %s", (long long)i, e);
        } else if (rc != 0) {
            snprintf(err, CONFIG_ERR_LEN, "config: streams[%lld]: %.200s", (long long)i, e);
            return -1;
        }
    }
    return 0;
}

static void add_config_streams(app *a) {
    for (int64_t i = 0; i < a->cfg.n_streams; i++) {
        const config_stream *cs = &a->cfg.streams[i];
        if (app_find_stream(a, cs->id)) continue;
        stream *s = NULL;
        char err[256];
        if (stream_new(a, cs->id, cs->source, cs->query, cs->previous_text, true, &s, err))
            LOGE("config: %s", err);
        else if (a->ready)
            stream_start(s); /* a failure is logged, and ends the stream */
    }
}

void app_start_streams(app *a) {
    for (int64_t i = 0; i < a->n_streams; i++) stream_start(a->streams[i]); /* failures: logged */
}

/* ---- results of the inference thread ---- */

/* STATUS= with why the daemon is not ready (a reason may hold a newline from an
 * engine message: one would end the assignment). */
static void notify_not_ready(app *a) {
    char line[sizeof a->not_ready];
    snprintf(line, sizeof line, "%s", a->not_ready);
    for (char *c = line; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    sd_notifyf(0, "STATUS=%s", line);
}

/* The daemon's address as a URL for the log (an IPv6 host in brackets). */
static const char *base_url(const app *a) {
    static char url[CONFIG_LISTEN_SIZE + 32];
    bool v6 = strchr(a->cfg.listen_host, ':') != NULL;
    snprintf(url, sizeof url, "http://%s%s%s:%d/", v6 ? "[" : "", a->cfg.listen_host,
             v6 ? "]" : "", a->port);
    return url;
}

static void notify_status(app *a) {
    int64_t live = 0;
    for (int64_t i = 0; i < a->n_streams; i++) live += a->streams[i]->state == PROTO_STATE_LIVE;
    sd_notifyf(0, "STATUS=%lld streams (%lld live), %lld subscribers", (long long)a->n_streams,
               (long long)live, (long long)a->ws_clients);
}

static void on_result(void *user, infer_result *r) {
    app *a = user;
    stream *s = r->s;
    switch (r->kind) {
    case INFER_RESULT_READY:
        infer_frame_size(a->inf, &a->frame_w, &a->frame_h);
        a->ready = true;
        LOGI("ready: %s; %s", infer_describe(a->inf), base_url(a));
        sd_notify(0, "READY=1");
        app_start_streams(a);
        notify_status(a);
        return;
    case INFER_RESULT_LOAD_FAILED:
        LOGE("model %s: %s", a->cfg.model, r->detail);
        snprintf(a->not_ready, sizeof a->not_ready, "model failed to load: %.200s", r->detail);
        notify_not_ready(a);
        app_shutdown(a, 1);
        return;
    case INFER_RESULT_FATAL:
        LOGE("engine failed, stopping (systemd restarts the daemon): %s", r->detail);
        a->engine_errors++;
        a->ready = false;
        snprintf(a->not_ready, sizeof a->not_ready, "engine failed: %.200s", r->detail);
        notify_not_ready(a); /* what `systemctl status` shows */
        app_shutdown(a, 1);
        return;
    case INFER_RESULT_CLOSED:
        stream_free(s);
        return;
    default:
        break;
    }
    if (!s || s->closing) return;
    proto_msg m = {0};
    if (r->kind == INFER_RESULT_GAP) {
        s->chunks_skipped += (uint64_t)(r->t_end - r->t_start);
        m.gap.t_start = r->t_start;
        m.gap.t_end = r->t_end;
        m.gap.reason = r->detail[0] ? r->detail : "engine behind";
        LOGD("stream[%s] gap %.0f-%.0f s: %s", s->id, r->t_start, r->t_end, m.gap.reason);
        stream_emit(s, PROTO_MSG_GAP, &m);
    } else if (r->kind == INFER_RESULT_ERROR) {
        s->engine_errors++;
        a->engine_errors++;
        LOGW("stream[%s] chunk %.0f failed: %s", s->id, r->t_start, r->detail);
        m.gap.t_start = r->t_start;
        m.gap.t_end = r->t_end;
        m.gap.reason = "engine error";
        stream_emit(s, PROTO_MSG_GAP, &m);
    } else if (r->kind == INFER_RESULT_COMMENTARY) {
        double latency = (mono_ms() - r->ready_ms) / 1e3;
        if (latency < 0) latency = 0; /* done before the chunk's end (files) */
        s->chunks_processed++;
        s->tokens_generated += (uint64_t)r->n_generated;
        s->kv_tokens = r->kv_tokens;
        stream_observe_latency(s, latency);
        snprintf(s->last_text, sizeof s->last_text, "%s", r->text);
        m.commentary.t_start = r->t_start;
        m.commentary.t_end = r->t_end;
        m.commentary.text = r->text;
        m.commentary.latency_ms = latency * 1e3;
        stream_emit(s, PROTO_MSG_COMMENTARY, &m);
    }
    stream_end_if_done(s); /* a source that ended: its last chunk may be this one */
}

/* ---- shutdown, signals, reload ---- */

static void close_walk_cb(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void stop_timer_cb(uv_timer_t *t) {
    app *a = t->data;
    /* the last writes (WS close frames) had their chance: tear down.  The inference
     * thread goes first (it frees every session), then the streams, then the listener. */
    infer_stop(a->inf);
    a->inf = NULL;
    for (int64_t i = a->n_streams - 1; i >= 0; i--) stream_remove(a->streams[i]);
    http_stop(a);
    whip_stop();
    uv_stop(a->loop);
}

void app_shutdown(app *a, int code) {
    if (a->shutting_down) return;
    a->shutting_down = true;
    a->exit_code = code;
    LOGI("shutting down%s", code ? " after an error" : "");
    sd_notify(0, "STOPPING=1");
    ws_close_all(LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
    for (int64_t i = 0; i < a->n_streams; i++)
        if (a->streams[i]->in) ingest_stop(a->streams[i]->in);
    uv_timer_init(a->loop, &stop_timer);
    stop_timer.data = a;
    uv_timer_start(&stop_timer, stop_timer_cb, 200, 0);
}

static void signal_cb(uv_signal_t *h, int signum) {
    app *a = h->data;
    LOGI("signal %s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    app_shutdown(a, 0);
}

static void reload(app *a) {
    config neu;
    char err[CONFIG_ERR_LEN];
    if (!a->config_path[0]) {
        LOGW("reload: no config file was given; nothing to reload");
        return;
    }
    if (config_load_file(a->config_path, &neu, err) != 0) {
        LOGE("reload: %s; keeping the old config", err);
        return;
    }
    for (int i = 0; i < n_overrides; i++)
        if (config_set(&neu, overrides[i].key, overrides[i].value, err) != 0) {
            LOGE("reload: %s; keeping the old config", err);
            config_deinit(&neu);
            return;
        }
    if (config_validate(&neu, err) != 0 || check_sources(&neu, err) != 0) {
        LOGE("reload: %s; keeping the old config", err);
        config_deinit(&neu);
        return;
    }
    if (config_reload_check(&a->cfg, &neu, err) != 0) {
        LOGE("reload: %s; keeping the old config", err);
        config_deinit(&neu);
        return;
    }
    bool streams_changed = config_changed(&a->cfg, &neu, "streams");
    /* swap in the reloadable values */
    config old = a->cfg;
    a->cfg = neu;
    log_set_level(a->cfg.log_level);
    if (streams_changed) { /* config streams no longer listed (or changed) go */
        for (int64_t i = a->n_streams - 1; i >= 0; i--) {
            stream *s = a->streams[i];
            if (!s->from_config) continue;
            const config_stream *same = NULL;
            for (int64_t k = 0; k < a->cfg.n_streams && !same; k++) {
                const config_stream *cs = &a->cfg.streams[k];
                /* the previous text seeds a session: a new one starts the stream over */
                if (!strcmp(cs->id, s->id) && !strcmp(cs->source, s->source) &&
                    !strcmp(cs->previous_text ? cs->previous_text : "", s->previous_text))
                    same = cs;
            }
            if (!same) {
                stream_remove(s);
                continue;
            }
            /* a query the file changed (one set over REST since stays unless it did) */
            const char *was = "", *now = same->query ? same->query : "";
            for (int64_t k = 0; k < old.n_streams; k++)
                if (!strcmp(old.streams[k].id, s->id))
                    was = old.streams[k].query ? old.streams[k].query : "";
            if (strcmp(was, now) && stream_set_query(s, now, err))
                LOGE("reload: stream[%s]: %s; the query is unchanged", s->id, err);
        }
        add_config_streams(a);
    }
    if (strcmp(old.token, a->cfg.token)) {
        /* a subscriber proved the old token (or none) once, at its handshake; one that
         * leaked must not keep reading.  Each reconnects, and the new token decides. */
        LOGI("reload: the token changed; closing every subscriber");
        ws_close_all(LWS_CLOSE_STATUS_POLICY_VIOLATION, "token changed");
    }
    config_deinit(&old);
    LOGI("reload: config %s applied", a->config_path);
    notify_status(a);
}

static void hup_cb(uv_signal_t *h, int signum) {
    (void)signum;
    reload(h->data);
}

/* Freed heap memory back to the system, once a minute, on a worker thread.  GStreamer and
 * its decoders allocate frame-sized buffers on many short-lived streaming threads, and
 * glibc keeps what they free in per-thread arenas: under stream churn (reconnects, files,
 * streams added and removed) the daemon's RSS climbed ~100 MiB an hour while the bytes in
 * use stayed flat (bench/soak_daemon.py: 394 -> 464 MiB in 40 min; with the trim 218 ->
 * 223 MiB, and half the level).  malloc_trim(0) returns every arena's free pages. */
static uv_work_t trim_req;
static bool trimming;

static void trim_work(uv_work_t *w) {
    (void)w;
    malloc_trim(0);
}

static void trim_done(uv_work_t *w, int status) {
    (void)w, (void)status;
    trimming = false;
}

static void tick_cb(uv_timer_t *t) {
    app *a = t->data;
    static double last_watchdog;
    ws_tick();
    whip_tick(a);
    /* an ended source whose last result was dropped (full result queue) still ends */
    for (int64_t i = 0; i < a->n_streams; i++) {
        stream_end_if_done(a->streams[i]);
        stream_tick(a->streams[i]);
    }
    if (watchdog_usec && mono_ms() - last_watchdog >= watchdog_usec / 2000.0) {
        sd_notify(0, "WATCHDOG=1");
        last_watchdog = mono_ms();
    }
    static int n;
    if (++n % 10 == 0 && a->ready) notify_status(a);
    if (n % 60 == 0 && !trimming && !a->shutting_down &&
        uv_queue_work(a->loop, &trim_req, trim_work, trim_done) == 0)
        trimming = true;
}

/* ---- command line ---- */

static void usage(FILE *f) {
    fprintf(f,
            "usage: commentaryd [--config FILE] [--check-config] [--print-config]\n"
            "                   [--listen HOST:PORT] [--model DIR] [--backend cpu|cuda|auto]\n"
            "                   [--token TOKEN] [--log-level LEVEL] [--set KEY=VALUE]...\n"
            "                   [--version] [--help]\n\n"
            "Per-second commentary of live video (RTSP, SRT, RTMP, files, test:) over\n"
            "WebSocket.  Config keys (JSON file; --set KEY=VALUE overrides any of them):\n\n");
    config_help(f);
}

int main(int argc, char **argv) {
    static app a;
    const char *config_path = NULL;
    bool check_only = false, print_only = false;
    char err[CONFIG_ERR_LEN];
    /* GStreamer's many short-lived streaming threads each got a malloc arena (about 20
     * under churn), whose freed memory glibc keeps: a soak gained 86 MiB/h of RSS with
     * them and 16 MiB/h with two, at equal latency and CPU.  MALLOC_ARENA_MAX still wins. */
    if (!getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);
    log_init();
    config_init_defaults(&a.cfg);
    /* the config file first, then every override in order */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config_path = argv[++i];
    if (config_path) {
        config c;
        if (config_load_file(config_path, &c, err) != 0) {
            fprintf(stderr, "commentaryd: %s\n", err);
            return 2;
        }
        config_deinit(&a.cfg);
        a.cfg = c;
        snprintf(a.config_path, sizeof a.config_path, "%s", config_path);
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *key = NULL, *val = NULL;
        char kv[128];
        if (!strcmp(arg, "--config") && i + 1 < argc) { i++; continue; }
        if (!strcmp(arg, "--check-config")) { check_only = true; continue; }
        if (!strcmp(arg, "--print-config")) { print_only = true; continue; }
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) { usage(stdout); return 0; }
        if (!strcmp(arg, "--version")) { printf("commentaryd %s\n", COMMENTARY_VERSION); return 0; }
        if (i + 1 < argc && (!strcmp(arg, "--listen") || !strcmp(arg, "--model") ||
                             !strcmp(arg, "--backend") || !strcmp(arg, "--token") ||
                             !strcmp(arg, "--log-level"))) {
            key = arg + 2;
            val = argv[++i];
            if (!strcmp(key, "log-level")) key = "log_level";
        } else if (!strcmp(arg, "--set") && i + 1 < argc) {
            const char *set = argv[++i], *eq = strchr(set, '=');
            if (!eq || (size_t)(eq - set) >= sizeof kv) {
                fprintf(stderr, "commentaryd: --set %.200s: want KEY=VALUE\n", set);
                return 2;
            }
            snprintf(kv, sizeof kv, "%.*s", (int)(eq - set), set);
            key = kv;
            val = eq + 1;
        } else if (!strcmp(arg, "--set") || !strcmp(arg, "--listen") || !strcmp(arg, "--model") ||
                   !strcmp(arg, "--backend") || !strcmp(arg, "--token") ||
                   !strcmp(arg, "--log-level") || !strcmp(arg, "--config")) {
            fprintf(stderr, "commentaryd: %s wants a value (see --help)\n", arg);
            return 2;
        } else {
            fprintf(stderr, "commentaryd: unknown argument '%s' (see --help)\n", arg);
            return 2;
        }
        if (config_set(&a.cfg, key, val, err) != 0) {
            fprintf(stderr, "commentaryd: %s\n", err);
            return 2;
        }
        if (n_overrides == (int)(sizeof overrides / sizeof overrides[0])) {
            fprintf(stderr, "commentaryd: more than %d overrides\n", n_overrides);
            return 2;
        }
        snprintf(overrides[n_overrides].key, sizeof overrides[0].key, "%s", key);
        overrides[n_overrides++].value = val;
    }
    if (config_validate(&a.cfg, err) != 0) {
        fprintf(stderr, "commentaryd: %s\n", err);
        return 2;
    }
    if (print_only) {
        config_print(&a.cfg, stdout);
        return 0;
    }
    if (check_sources(&a.cfg, err) != 0) {
        fprintf(stderr, "commentaryd: %s\n", err);
        return 2;
    }
    if (check_only) {
        printf("commentaryd: config %s%s is valid\n", config_path ? config_path : "(defaults)",
               n_overrides ? " with the command line's overrides" : "");
        return 0;
    }
    log_set_level(a.cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    gst_init(NULL, NULL);

    a.loop = uv_default_loop();
    a.start_time = unix_now();
    snprintf(a.not_ready, sizeof a.not_ready, "loading model %.200s", a.cfg.model);
    ws_set_app(&a);
    if (http_start(&a, err) != 0) {
        LOGE("%s", err);
        return 1;
    }
    LOGI("commentaryd %s listening on %s (model %s loading)", COMMENTARY_VERSION, base_url(&a),
         a.cfg.model);
    sd_notifyf(0, "STATUS=loading model %s", a.cfg.model);
    infer_params ip = {.model_dir = a.cfg.model, .backend = config_backend_name(a.cfg.backend),
                       .threads = (int)a.cfg.threads, .batch = a.cfg.batch,
                       .batch_prefill_tokens = a.cfg.batch_prefill_tokens,
                       .vision_window = a.cfg.policy.vision_window,
                       .text_rounds = a.cfg.policy.text_rounds,
                       .prev_sink = a.cfg.policy.prev_sink,
                       .prev_window = a.cfg.policy.prev_window,
                       .max_new_tokens = a.cfg.policy.max_new_tokens};
    if (infer_start(a.loop, &ip, on_result, &a, &a.inf, err) != 0) {
        LOGE("%s", err);
        return 1;
    }
    add_config_streams(&a);

    uv_signal_init(a.loop, &sig_term);
    uv_signal_init(a.loop, &sig_int);
    uv_signal_init(a.loop, &sig_hup);
    sig_term.data = sig_int.data = sig_hup.data = &a;
    uv_signal_start(&sig_term, signal_cb, SIGTERM);
    uv_signal_start(&sig_int, signal_cb, SIGINT);
    uv_signal_start(&sig_hup, hup_cb, SIGHUP);
    if (sd_watchdog_enabled(0, &watchdog_usec) <= 0) watchdog_usec = 0;
    uv_timer_init(a.loop, &tick_timer);
    tick_timer.data = &a;
    uv_timer_start(&tick_timer, tick_cb, 1000, 1000);

    uv_run(a.loop, UV_RUN_DEFAULT);

    /* stopped: close what is left and let the close callbacks run */
    uv_walk(a.loop, close_walk_cb, NULL);
    uv_run(a.loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(a.loop);
    if (rc) LOGW("loop closed with handles left: %s", uv_strerror(rc));
    config_deinit(&a.cfg);
    free(a.streams);
    LOGI("bye");
    return a.exit_code;
}
