/* http.h — the HTTP + WebSocket listener (libwebsockets on the libuv loop).
 * Runs on: loop. */
#ifndef SERVER_HTTP_H
#define SERVER_HTTP_H

#include <stddef.h>

typedef struct app app;

/* Listen on the config's address; sets a->port (useful with port 0). */
int http_start(app *a, char *err);
/* Destroy the context (every connection is dropped: close WS clients first). */
void http_stop(app *a);
/* The deferred answer to the request on conn (a struct lws *; see whip.h): status,
 * Content-Type, body (taken: freed here), Location (NULL: none).  Runs on: loop. */
void http_reply_later(void *conn, int status, const char *ctype, char *body, size_t len,
                      const char *location);

#endif
