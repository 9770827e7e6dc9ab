/* whip.h — the WHIP endpoint (RFC 9725): WebRTC publishers such as OBS Studio push a stream.
 *
 *   POST    /v1/whip/ID              application/sdp offer → 201 Created, Location
 *                                    /v1/whip/ID/SESSION, the SDP answer (no trickle: it
 *                                    carries every ICE candidate)
 *   DELETE  /v1/whip/ID/SESSION      200: the publisher leaves, the stream ends (status ended)
 *   OPTIONS /v1/whip/…               204 (answered by http.c, with Accept-Post)
 *   PATCH   /v1/whip/ID/SESSION      405: no trickle ICE, no ICE restarts
 * The bearer token (config `token`) is checked by http.c before any of this runs.
 *
 * A POST to a stream that does not exist creates it with source "whip:" when the config
 * allows it (whip.allow_create); an existing "whip:" stream with no publisher takes the
 * offer (a stream made by the config or by POST /v1/streams, or one whose publisher left);
 * anything else is refused (404 / 409).  The answer is deferred: the HTTP request waits
 * until the stream's ingest has gathered its ICE candidates, then http_reply_later()
 * sends it.  A session is live while its tag is the stream's current whip run
 * (ingest_whip_session); everything else is swept.
 *
 * Not for: webrtcbin (ingest.c), routing and the token (http.c), the stream (stream.c).
 * Runs on: loop (all of it).
 */
#ifndef SERVER_WHIP_H
#define SERVER_WHIP_H

#include <stddef.h>

typedef struct app app;

/* An answer to send at once (the caller frees body). */
typedef struct whip_response {
    int status;
    const char *ctype; /* static */
    char *body;        /* malloc'd, or NULL */
    size_t len;
    char location[256]; /* "" or the session's resource */
} whip_response;

enum { WHIP_ANSWERED = 0, WHIP_DEFERRED = 1 };

/* A request under /v1/whip/ (method "POST", "DELETE", "PATCH", …; path without the
 * query; ctype the Content-Type header or ""; body the request body).  conn names the
 * connection for a deferred answer (http_reply_later).  Returns WHIP_ANSWERED with *out
 * filled, or WHIP_DEFERRED: the answer comes later through http_reply_later(conn, …),
 * unless whip_conn_closed(conn) comes first. */
int whip_request(app *a, void *conn, const char *method, const char *path, const char *ctype,
                 const char *body, size_t len, whip_response *out);

/* The connection conn is gone (lws CLOSED_HTTP): a session waiting to answer on it ends. */
void whip_conn_closed(app *a, void *conn);

/* Once a second: answers that took too long fail (504) and dead sessions are swept. */
void whip_tick(app *a);

/* Frees every session (shutdown; pending requests are dropped with their connections). */
void whip_stop(void);

#endif
