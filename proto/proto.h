/* proto.h — commentaryd's wire protocol: the JSON messages of the WebSocket event stream
 * (`WS /v1/streams/ID/events`) and the REST bodies of `/v1/streams`, as C structs with a
 * codec (jansson) that checks exactly what proto/schema/<name>.schema.json says.
 *
 * Messages (proto/README.md has the field tables, proto/examples/ one or two of each):
 *   events   commentary, status, gap (each with a per-stream `seq`, consecutive across the
 *            three), dropped (to one slow subscriber), hello (first on a subscription)
 *   REST     stream_create (POST body), stream_info, stream_list, query_update, error
 *
 * Decoding rejects what the schema rejects — a missing required key, an unknown key, a
 * wrong type, a value outside its pattern/minimum — plus the rules a schema cannot say
 * (t_end > t_start, last_seq >= first_seq, history_first_seq <= last_seq).  The error,
 * in the caller's err[PROTO_ERR_LEN], names the message and the JSON path of the key:
 *     stream_create: 'id' must match [A-Za-z0-9_-]{1,64}
 *     stream_list: 'streams[1].state' must be one of connecting, live, reconnecting, ended
 * Beyond the schema the decoder also rejects: invalid UTF-8 (the message names the key),
 * "\u0000" in strings (C strings), duplicate keys, integers outside int64, and input that
 * is not one JSON value.  Integer fields accept integral reals (1.0) as JSON Schema does.
 *
 * Encoding writes compact JSON, keys in the order of the schema with `type` first, number
 * fields always as reals ("t_start":12.0) with 15 significant digits (DBL_DIG: any value
 * that came from JSON text with <= 15 digits round-trips exactly, 0.1 stays 0.1), strings
 * JSON-escaped by jansson.  The encoder checks the struct with the same rules as the
 * decoder, so the server can never send a message its own clients would reject.
 *
 * Ownership: a struct's `char *` fields (text, detail, reason, source, query, ...) and
 * stream_list's array are owned by the struct when a decoder filled it: free them with
 * proto_<name>_deinit (which also zeroes the struct).  Encoders only borrow.  Ids and wall
 * times are fixed char arrays (NUL-terminated).  Optional strings are NULL when absent;
 * optional numbers have a `has_` flag.
 *
 * Thread: any; no global state.  Not for: HTTP/WS framing (server/http.c, server/ws.c),
 * history, fan-out.
 */
#ifndef PROTO_H
#define PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_ERR_LEN 256       /* size of every err buffer */
#define PROTO_ID_MAX 64         /* stream ids: 1..64 chars of [A-Za-z0-9_-] */
#define PROTO_ID_SIZE 65        /* an id and its NUL */
#define PROTO_WALL_TIME_SIZE 32 /* "2026-12-02T05:48:00.123Z" (24 chars) and its NUL */

#define PROTO_ERRNO_MAP(X)                                                                         \
    X(EINVAL, -1, "message breaks the schema")                                                     \
    X(ESYNTAX, -2, "not JSON")                                                                     \
    X(ENOSPC, -3, "buffer too small")                                                              \
    X(ENOMEM, -4, "out of memory")

enum {
    PROTO_OK = 0,
#define PROTO_ERR_ENUM_(name, code, msg) PROTO_##name = code,
    PROTO_ERRNO_MAP(PROTO_ERR_ENUM_)
#undef PROTO_ERR_ENUM_
};

/* The text of an error code ("unknown error" for codes outside the table). */
const char *proto_strerror(int err);

/* Every message.  The name (proto_type_name) is the schema's and examples' file stem. */
typedef enum proto_type {
    PROTO_MSG_UNKNOWN = 0, /* not JSON, not an object, or no/unknown "type" */
    /* events: carry "type" */
    PROTO_MSG_COMMENTARY,
    PROTO_MSG_STATUS,
    PROTO_MSG_GAP,
    PROTO_MSG_DROPPED,
    PROTO_MSG_HELLO,
    /* REST bodies: no "type" key, so proto_message_type never returns these */
    PROTO_MSG_STREAM_CREATE,
    PROTO_MSG_STREAM_INFO,
    PROTO_MSG_STREAM_LIST,
    PROTO_MSG_QUERY_UPDATE,
    PROTO_MSG_ERROR,
    PROTO_MSG_COUNT
} proto_type;

/* "commentary", "stream_create", ...; NULL for PROTO_MSG_UNKNOWN and out-of-range values. */
const char *proto_type_name(proto_type t);
/* The type whose name is name, or PROTO_MSG_UNKNOWN. */
proto_type proto_type_from_name(const char *name);

/* A stream's state, in `status` events and `stream_info`. */
typedef enum proto_state {
    PROTO_STATE_CONNECTING,
    PROTO_STATE_LIVE,
    PROTO_STATE_RECONNECTING,
    PROTO_STATE_ENDED,
} proto_state;

/* "connecting", "live", "reconnecting", "ended"; NULL when out of range. */
const char *proto_state_name(proto_state s);

/* ---- events (WS /v1/streams/ID/events) ---------------------------------------------- */

/* {type:"commentary", stream, seq, t_start, t_end, wall_time, text, latency_ms} */
typedef struct proto_commentary {
    char stream[PROTO_ID_SIZE];           /* stream id */
    int64_t seq;                          /* >= 1, consecutive per stream over all events */
    double t_start, t_end;                /* stream seconds of the chunk, 0 <= t_start < t_end */
    char wall_time[PROTO_WALL_TIME_SIZE]; /* when sent, RFC 3339 UTC with ms */
    char *text;                           /* owned after decode; may be "" */
    double latency_ms;                    /* >= 0: chunk's last frame in to sending */
} proto_commentary;

/* {type:"status", stream, seq, wall_time, state, detail?, retry_in_s?} */
typedef struct proto_status {
    char stream[PROTO_ID_SIZE];
    int64_t seq;
    char wall_time[PROTO_WALL_TIME_SIZE];
    proto_state state;
    char *detail;        /* optional (NULL: absent), e.g. the error behind a reconnect */
    bool has_retry_in_s; /* only with PROTO_STATE_RECONNECTING */
    double retry_in_s;   /* >= 0 */
} proto_status;

/* {type:"gap", stream, seq, wall_time, t_start, t_end, reason}: stream seconds skipped. */
typedef struct proto_gap {
    char stream[PROTO_ID_SIZE];
    int64_t seq;
    char wall_time[PROTO_WALL_TIME_SIZE];
    double t_start, t_end; /* 0 <= t_start < t_end */
    char *reason;          /* e.g. "engine behind" */
} proto_gap;

/* {type:"dropped", stream, wall_time, count, first_seq, last_seq}: this subscriber missed
 * count events in [first_seq, last_seq].  No seq of its own. */
typedef struct proto_dropped {
    char stream[PROTO_ID_SIZE];
    char wall_time[PROTO_WALL_TIME_SIZE];
    int64_t count;     /* >= 1 */
    int64_t first_seq; /* >= 1 */
    int64_t last_seq;  /* >= first_seq */
} proto_dropped;

/* {type:"hello", stream, wall_time, last_seq, history_first_seq, resumed_from?}: first on
 * every subscription.  No seq of its own. */
typedef struct proto_hello {
    char stream[PROTO_ID_SIZE];
    char wall_time[PROTO_WALL_TIME_SIZE];
    int64_t last_seq;          /* latest seq so far, 0 if none */
    int64_t history_first_seq; /* oldest seq resumable with ?since=, 0 if none; <= last_seq */
    bool has_resumed_from;     /* a ?since= was honoured */
    int64_t resumed_from;      /* >= 0: that since value */
} proto_hello;

/* ---- REST bodies (/v1/streams) ----------------------------------------------------- */

/* POST /v1/streams: {id, source, query?, previous_text?} */
typedef struct proto_stream_create {
    char id[PROTO_ID_SIZE];
    char *source;        /* non-empty URI (rtsp://, srt://, file://, ...) */
    char *query;         /* optional (NULL: absent) */
    char *previous_text; /* optional (NULL: absent) */
} proto_stream_create;

/* {id, source, query, state, chunks, last_seq, kv_tokens, latency_ms_p50, created} */
typedef struct proto_stream_info {
    char id[PROTO_ID_SIZE];
    char *source;
    char *query; /* "" when the stream has none */
    proto_state state;
    int64_t chunks;                     /* >= 0: chunks processed */
    int64_t last_seq;                   /* >= 0 */
    int64_t kv_tokens;                  /* >= 0: tokens in the KV cache now */
    bool has_latency_ms_p50;            /* false: JSON null (no chunk yet) */
    double latency_ms_p50;              /* >= 0 */
    char created[PROTO_WALL_TIME_SIZE]; /* wall time the stream was added */
} proto_stream_info;

/* GET /v1/streams: {streams: [stream_info...]} */
typedef struct proto_stream_list {
    proto_stream_info *streams; /* (n_streams); owned (with each element) after decode */
    int64_t n_streams;
} proto_stream_list;

/* The body that changes a running stream's query: {query} ("" clears it) */
typedef struct proto_query_update {
    char *query;
} proto_query_update;

/* Any failed REST call: {error: {code, message}} */
typedef struct proto_error {
    int code;      /* the HTTP status, 100..599 */
    char *message; /* non-empty */
} proto_error;

/* Any of the above; for the generic calls below. */
typedef union proto_msg {
    proto_commentary commentary;
    proto_status status;
    proto_gap gap;
    proto_dropped dropped;
    proto_hello hello;
    proto_stream_create stream_create;
    proto_stream_info stream_info;
    proto_stream_list stream_list;
    proto_query_update query_update;
    proto_error error;
} proto_msg;

/* ---- codec --------------------------------------------------------------------------- */

/* proto_decode_<name>(json, len, out, err): parse len bytes of JSON (need not be
 * NUL-terminated) and check them against the schema.  Returns 0 with *out filled (owned
 * strings: free with proto_<name>_deinit); or PROTO_ESYNTAX (not JSON, invalid UTF-8),
 * PROTO_EINVAL (breaks the schema), PROTO_ENOMEM, with err filled and *out zeroed.
 *
 * proto_encode_<name>(m, buf, cap, len): write m as compact JSON into buf and NUL-terminate
 * it.  Sets *len to the JSON's length without the NUL, and returns 0; PROTO_ENOSPC when
 * *len + 1 > cap (buf then undefined: retry with *len + 1 bytes; buf may be NULL with cap
 * 0 to ask for the size); PROTO_EINVAL when m breaks the schema (proto_check says why);
 * PROTO_ENOMEM.  m is borrowed.  With libwebsockets, pass buf + LWS_PRE.
 *
 * proto_<name>_deinit(m): free m's owned strings and zero it.  Only for structs a decoder
 * filled (or whose strings the caller malloc'd).  NULL is a no-op. */
#define PROTO_DECLARE_(name)                                                                       \
    int proto_decode_##name(const char *json, size_t len, proto_##name *out, char *err);           \
    int proto_encode_##name(const proto_##name *m, char *buf, size_t cap, size_t *len);            \
    void proto_##name##_deinit(proto_##name *m);
PROTO_DECLARE_(commentary)
PROTO_DECLARE_(status)
PROTO_DECLARE_(gap)
PROTO_DECLARE_(dropped)
PROTO_DECLARE_(hello)
PROTO_DECLARE_(stream_create)
PROTO_DECLARE_(stream_info)
PROTO_DECLARE_(stream_list)
PROTO_DECLARE_(query_update)
PROTO_DECLARE_(error)
#undef PROTO_DECLARE_

/* The same calls, by type: out/m is the union member of that type.  proto_encode also
 * fills err (may be NULL) when it fails.  PROTO_EINVAL for PROTO_MSG_UNKNOWN. */
int proto_decode(proto_type type, const char *json, size_t len, proto_msg *out, char *err);
int proto_encode(proto_type type, const proto_msg *m, char *buf, size_t cap, size_t *len,
                 char *err);
void proto_msg_deinit(proto_type type, proto_msg *m);

/* Check m against the schema as the encoder does.  Returns 0, or PROTO_EINVAL with err
 * naming the key (the reason an encode failed), or PROTO_ENOMEM. */
int proto_check(proto_type type, const proto_msg *m, char *err);

/* The event type named by the "type" key of a JSON object: PROTO_MSG_COMMENTARY ..
 * PROTO_MSG_HELLO; PROTO_MSG_UNKNOWN when json is not a JSON object or its "type" is
 * missing, not a string or not an event's.  Parses, but does not check the rest. */
proto_type proto_message_type(const char *json, size_t len);

/* Decode an event of any type (a WS client's read): sets *type to the message's type and
 * fills the matching member of *out.  Returns as proto_decode; an unknown type is
 * PROTO_EINVAL ("event: 'type' must be one of ..."). */
int proto_decode_event(const char *json, size_t len, proto_type *type, proto_msg *out, char *err);

/* ---- values ------------------------------------------------------------------------ */

/* Write unix_seconds as an RFC 3339 UTC time with milliseconds ("2026-12-02T05:48:00.123Z"):
 * rounded to the microsecond (so 1.001 is .001, not .000), then truncated toward the past
 * (59.9999 is 00:00:59.999, never the next minute).  Returns 0, or PROTO_EINVAL (buf "") when the
 * time is not finite or outside years 0000..9999. */
int proto_format_wall_time(double unix_seconds, char buf[PROTO_WALL_TIME_SIZE]);
/* The same for the current CLOCK_REALTIME time. */
int proto_now_wall_time(char buf[PROTO_WALL_TIME_SIZE]);

/* s is a wall time as the schema's pattern says: YYYY-MM-DDTHH:MM:SS.mmmZ, with months
 * 01-12, days 01-31, hours 00-23, minutes and seconds 00-59. */
bool proto_valid_wall_time(const char *s);
/* s is a stream id: 1..64 chars of [A-Za-z0-9_-] (also what the server accepts in URLs). */
bool proto_valid_id(const char *s);

#endif
