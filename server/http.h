/* http.h — the HTTP + WebSocket listener (libwebsockets on the libuv loop).
 * Runs on: loop. */
#ifndef SERVER_HTTP_H
#define SERVER_HTTP_H

typedef struct app app;

/* Listen on the config's address; sets a->port (useful with port 0). */
int http_start(app *a, char *err);
/* Destroy the context (every connection is dropped: close WS clients first). */
void http_stop(app *a);

#endif
