/* app.h — the daemon's state, shared by the loop-thread modules (http, ws, stream,
 * metrics, main).  One instance, owned by main.c; everything in it belongs to the loop
 * thread except where a field says otherwise.
 */
#ifndef SERVER_APP_H
#define SERVER_APP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "infer.h"
#include "stream.h"

struct lws_context;

typedef struct app {
    uv_loop_t *loop;
    config cfg;                  /* the effective config (reloadable keys may change) */
    char config_path[1024];
    struct lws_context *lws;
    int port;                    /* the bound port (config may say 0) */
    infer *inf;
    bool ready;                  /* model loaded and warmed up */
    char not_ready[256];         /* why /ready says 503 */
    bool shutting_down;
    double start_time;           /* unix seconds */
    int64_t frame_w, frame_h;    /* the frame size streams deliver */

    stream **streams;
    int64_t n_streams, cap_streams;

    /* counters */
    uint64_t messages_sent, messages_dropped, engine_errors, ws_clients_closed_slow;
    int64_t ws_clients;
    int exit_code;
} app;

stream *app_find_stream(app *a, const char *id);
int app_add_stream(app *a, stream *s);
void app_forget_stream(app *a, stream *s);
/* Called when the model is ready: start every stream's ingest. */
void app_start_streams(app *a);
/* Begin a clean shutdown (SIGTERM, fatal engine error): code is the exit status. */
void app_shutdown(app *a, int code);

#endif
