/* ws.h — WebSocket subscribers of a stream's events (WS /v1/streams/ID/events).
 *
 * Each client has a bounded send queue (config ws.queue).  A client whose queue is full
 * misses events: it gets a `dropped` notice naming them once it catches up, and if it
 * stays slow for ws.slow_close_s it is closed with code 1008 ("too slow").  Nothing a
 * client does can stall another client, the loop or the engine.
 * Clients are freed in exactly one place: the lws CLOSED callback (ws_client_closed).
 * Runs on: loop (all of it).
 */
#ifndef SERVER_WS_H
#define SERVER_WS_H

#include <stddef.h>
#include <stdint.h>

struct lws;
typedef struct stream stream;

typedef struct ws_msg {
    char *data; /* LWS_PRE bytes of headroom, then len bytes of JSON */
    size_t len;
} ws_msg;

typedef struct ws_client {
    struct lws *wsi;
    stream *s;                 /* NULL once the stream is gone */
    struct ws_client *next, *prev;
    ws_msg *q;                 /* ring of queued messages */
    int64_t q_head, q_len, q_cap;
    int64_t dropped;           /* events missed since the last notice */
    int64_t drop_first, drop_last;
    double slow_since_ms;      /* 0 when not slow */
    int close_code;            /* nonzero: close at the next writeable */
    char close_reason[64];
    size_t rx_len;             /* bytes of the client message being received */
} ws_client;

/* The client of a new connection to stream s, resuming after seq since (0: live only;
 * -1: no since given).  Sends hello, then the history after since. */
ws_client *ws_client_open(struct lws *wsi, stream *s, int64_t since);
/* The lws CLOSED callback: detach and free. */
void ws_client_closed(ws_client *c);
/* The lws SERVER_WRITEABLE callback: send one queued message; returns -1 to close. */
int ws_client_writeable(ws_client *c);
/* A message from the client (len bytes, final when fin): only size is policed. */
int ws_client_receive(ws_client *c, size_t len, int fin);

/* Queue an event (seq) for every subscriber of s. */
void ws_broadcast(stream *s, const char *json, size_t len);
/* Close every subscriber of s with 1001 (going away): the stream is removed. */
void ws_close_stream_clients(stream *s);
/* Close every subscriber of every stream with code and reason (shutdown: 1001). */
void ws_close_all(int code, const char *reason);
/* Check slow clients (called once a second). */
void ws_tick(void);

#endif
