/* proto.c — the wire protocol codec (see proto.h).
 *
 * One table per message (msg_desc: its fields, each with a kind, the offset of its C
 * storage and its constraints) drives everything, as redis drives config from one table:
 *   decode = jansson parse -> walk(table, json, out) checks every key and fills the struct
 *   encode = build(table, struct) -> walk(table, json, NULL) -> json_dumpb
 * so the encoder and the decoder cannot disagree about the rules, and the tables mirror
 * proto/schema/<name>.schema.json field for field (tests/test-proto.c checks the tables
 * against the schemas' required/properties lists).  Rules that span fields (t_end > t_start,
 * ...) are each message's `check` function, run on the struct after the walk.
 *
 * Not for: sockets, framing, history.  Invariants: no global mutable state; a failed decode
 * leaves the output zeroed with nothing allocated.  Thread: any.
 */
#include "proto.h"

#include <inttypes.h>
#include <math.h> /* isfinite: a macro, no libm */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

/* compact, keys in insertion order (always kept since jansson 2.8), reals with DBL_DIG
 * digits so 0.1 is written "0.1" and not "0.10000000000000001" */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))
/* any top-level value (so "3" is "not an object", not a syntax error); duplicate keys
 * are refused rather than silently taking the last one */
#define LOAD_FLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES)
#define INTEGRAL_REAL_MAX 9007199254740992.0 /* 2^53: reals up to here are exact integers */
#define PATH_LEN 200                         /* JSON paths longer than this are cut */

const char *proto_strerror(int err) {
    switch (err) {
    case PROTO_OK:
        return "ok";
#define PROTO_STRERROR_(name, code, msg)                                                           \
    case PROTO_##name:                                                                             \
        return msg;
        PROTO_ERRNO_MAP(PROTO_STRERROR_)
#undef PROTO_STRERROR_
    }
    return "unknown error";
}

static const char *const state_names[] = {"connecting", "live", "reconnecting", "ended"};
#define N_STATES ((int)(sizeof state_names / sizeof state_names[0]))

const char *proto_state_name(proto_state s) {
    return (int)s >= 0 && (int)s < N_STATES ? state_names[s] : NULL;
}

/* ---- errors and paths ------------------------------------------------------------ */

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* Fill err (when not NULL) with "<msg>: <fmt...>" and return code. */
static int fail(char *err, int code, const char *msg, const char *fmt, ...) PRINTF_LIKE(4, 5);
static int fail(char *err, int code, const char *msg, const char *fmt, ...) {
    if (!err) return code;
    int n = snprintf(err, PROTO_ERR_LEN, "%s: ", msg);
    if (n < 0 || n >= PROTO_ERR_LEN) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, PROTO_ERR_LEN - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}

/* dst = prefix.key (or key at the top) */
static void path_key(char *dst, const char *prefix, const char *key) {
    if (snprintf(dst, PATH_LEN, "%s%s%s", prefix, *prefix ? "." : "", key) >= PATH_LEN)
        return; /* cut: still names the start of the path */
}

/* dst = prefix[k] (a long prefix is cut to leave room for the index) */
static void path_index(char *dst, const char *prefix, int64_t k) {
    int n = (int)strnlen(prefix, PATH_LEN - 24);
    snprintf(dst, PATH_LEN, "%.*s[%" PRId64 "]", n, prefix, k);
}

/* ---- values ---------------------------------------------------------------------- */

/* Offset of the first byte of s[0..n) that is not part of well-formed UTF-8 (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF), or n when all of it is. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            if (c == 0xE0) lo = 0xA0; /* overlong */
            if (c == 0xED) hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            if (c == 0xF0) lo = 0x90; /* overlong */
            if (c == 0xF4) hi = 0x8F; /* > U+10FFFF */
        } else {
            return i;
        }
        if (n - i <= k) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return i;
        i += k + 1;
    }
    return n;
}

static bool utf8_valid(const char *s, size_t n) {
    return utf8_invalid_at((const unsigned char *)s, n) == n;
}

bool proto_valid_id(const char *s) {
    if (!s) return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok || n >= PROTO_ID_MAX) return false;
    }
    return n >= 1;
}

/* s[i..i+1] are two digits forming a number in [lo, hi] */
static bool two_digits(const char *s, int lo, int hi) {
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9') return false;
    int v = (s[0] - '0') * 10 + (s[1] - '0');
    return v >= lo && v <= hi;
}

/* The schema's pattern, exactly:
 * ^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z$
 * (a day 31 in a 30-day month passes, as it does the schema) */
bool proto_valid_wall_time(const char *s) {
    if (!s || strlen(s) != 24) return false;
    for (int i = 0; i < 4; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    for (int i = 20; i < 23; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return s[4] == '-' && two_digits(s + 5, 1, 12) && s[7] == '-' && two_digits(s + 8, 1, 31) &&
           s[10] == 'T' && two_digits(s + 11, 0, 23) && s[13] == ':' && two_digits(s + 14, 0, 59) &&
           s[16] == ':' && two_digits(s + 17, 0, 59) && s[19] == '.' && s[23] == 'Z';
}

int proto_format_wall_time(double unix_seconds, char buf[PROTO_WALL_TIME_SIZE]) {
    buf[0] = 0;
    /* 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z */
    if (!isfinite(unix_seconds) || unix_seconds < -62167219200.0 || unix_seconds >= 253402300800.0)
        return PROTO_EINVAL;
    /* round to the microsecond first so 1.001 (1.000999...) is not cut to 1.000; then
     * floor divisions (no libm: the codec links with jansson alone) */
    double x = unix_seconds * 1e6;
    int64_t us = (int64_t)(x >= 0 ? x + 0.5 : x - 0.5);
    int64_t ms = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
    int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int msec = (int)(ms - sec * 1000);
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
        return PROTO_EINVAL;
    int n = snprintf(buf, PROTO_WALL_TIME_SIZE, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     msec);
    return n == 24 ? PROTO_OK : PROTO_EINVAL; /* always 24: every field is in range */
}

int proto_now_wall_time(char buf[PROTO_WALL_TIME_SIZE]) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return proto_format_wall_time((double)ts.tv_sec + ts.tv_nsec / 1e9, buf);
}

/* ---- message tables -------------------------------------------------------------- */

typedef enum field_kind {
    F_TYPE,   /* the "type" key: the message's name; no storage */
    F_ID,     /* char[PROTO_ID_SIZE], [A-Za-z0-9_-]{1,64} */
    F_WALL,   /* char[PROTO_WALL_TIME_SIZE], proto_valid_wall_time */
    F_STR,    /* char *, owned after decode; NULL when an optional one is absent */
    F_NUM,    /* double; a bool at has_off when optional or nullable */
    F_INT,    /* int64_t; a bool at has_off when optional */
    F_INT32,  /* int */
    F_STATE,  /* proto_state, written as its name */
    F_OBJECT, /* a nested object whose fields (sub) live in this same struct */
    F_ARRAY,  /* array of sub objects: pointer at off, int64_t count at count_off */
} field_kind;

enum {
    OPTIONAL = 1, /* the key may be absent */
    NULLABLE = 2, /* F_NUM: JSON null allowed (has_off false) */
    NONEMPTY = 4, /* F_STR: minLength 1 */
    EXCL_MIN = 8, /* F_NUM: value > min instead of >= min */
    HAS_MIN = 16, /* F_NUM: min applies */
};

typedef struct msg_desc msg_desc;

typedef struct field {
    const char *key;
    field_kind kind;
    size_t off;          /* of the storage in the message struct */
    int flags;           /* OPTIONAL | NULLABLE | ... */
    size_t has_off;      /* of the bool `has_` flag (F_NUM/F_INT with OPTIONAL|NULLABLE) */
    double min;          /* F_NUM with HAS_MIN */
    int64_t imin, imax;  /* F_INT/F_INT32 range */
    const msg_desc *sub; /* F_OBJECT, F_ARRAY */
    size_t count_off;    /* F_ARRAY: of the int64_t element count */
} field;

struct msg_desc {
    const char *name;    /* error prefix and `type` value: "commentary" */
    bool typed;          /* carries a "type" key (events) */
    const field *fields; /* in the schema's (and the encoder's) key order */
    size_t n_fields;
    size_t size; /* of the C struct */
    /* rules across fields, run on a struct that passed the walk; prefix is the JSON path
     * of the object ("" at the top) */
    int (*check)(const void *m, const char *prefix, const char *msg, char *err);
};

#define MEMBER(type, m) offsetof(type, m)
#define FLD_TYPE                                                                                   \
    { "type", F_TYPE, 0, 0, 0, 0, 0, 0, NULL, 0 }
#define FLD_ID(T, key, m)                                                                          \
    { key, F_ID, MEMBER(T, m), 0, 0, 0, 0, 0, NULL, 0 }
#define FLD_WALL(T, key, m)                                                                        \
    { key, F_WALL, MEMBER(T, m), 0, 0, 0, 0, 0, NULL, 0 }
#define FLD_STR(T, key, m, fl)                                                                     \
    { key, F_STR, MEMBER(T, m), fl, 0, 0, 0, 0, NULL, 0 }
#define FLD_NUM(T, key, m, fl, has, mn)                                                            \
    { key, F_NUM, MEMBER(T, m), (fl) | HAS_MIN, has, mn, 0, 0, NULL, 0 }
#define FLD_INT(T, key, m, fl, has, lo, hi)                                                        \
    { key, F_INT, MEMBER(T, m), fl, has, 0, lo, hi, NULL, 0 }
#define FLD_STATE(T, key, m)                                                                       \
    { key, F_STATE, MEMBER(T, m), 0, 0, 0, 0, 0, NULL, 0 }
#define SEQ(T, key, m) FLD_INT(T, key, m, 0, 0, 1, INT64_MAX)
#define COUNT(T, key, m) FLD_INT(T, key, m, 0, 0, 0, INT64_MAX)
#define DESC(nm, typed, T, fields, check)                                                          \
    { nm, typed, fields, sizeof fields / sizeof fields[0], sizeof(T), check }

/* t_end > t_start for commentary and gap (schemas cannot compare two keys) */
static int check_span(double t_start, double t_end, const char *prefix, const char *msg,
                      char *err) {
    if (t_end > t_start) return PROTO_OK;
    char p[PATH_LEN], q[PATH_LEN];
    path_key(p, prefix, "t_end");
    path_key(q, prefix, "t_start");
    return fail(err, PROTO_EINVAL, msg, "'%s' must be greater than '%s'", p, q);
}

static int check_commentary(const void *m, const char *prefix, const char *msg, char *err) {
    const proto_commentary *c = m;
    return check_span(c->t_start, c->t_end, prefix, msg, err);
}

static int check_gap(const void *m, const char *prefix, const char *msg, char *err) {
    const proto_gap *g = m;
    return check_span(g->t_start, g->t_end, prefix, msg, err);
}

/* the schema says this one too (dependentSchemas); kept here as it spans two keys */
static int check_status(const void *m, const char *prefix, const char *msg, char *err) {
    const proto_status *s = m;
    if (!s->has_retry_in_s || s->state == PROTO_STATE_RECONNECTING) return PROTO_OK;
    char p[PATH_LEN];
    path_key(p, prefix, "retry_in_s");
    return fail(err, PROTO_EINVAL, msg, "'%s' is only allowed with state \"reconnecting\"", p);
}

static int check_dropped(const void *m, const char *prefix, const char *msg, char *err) {
    const proto_dropped *d = m;
    if (d->last_seq >= d->first_seq) return PROTO_OK;
    char p[PATH_LEN], q[PATH_LEN];
    path_key(p, prefix, "last_seq");
    path_key(q, prefix, "first_seq");
    return fail(err, PROTO_EINVAL, msg, "'%s' must be >= '%s'", p, q);
}

static int check_hello(const void *m, const char *prefix, const char *msg, char *err) {
    const proto_hello *h = m;
    if (h->history_first_seq <= h->last_seq) return PROTO_OK;
    char p[PATH_LEN], q[PATH_LEN];
    path_key(p, prefix, "history_first_seq");
    path_key(q, prefix, "last_seq");
    return fail(err, PROTO_EINVAL, msg, "'%s' must be <= '%s'", p, q);
}

#define T proto_commentary
static const field commentary_fields[] = {
    FLD_TYPE,
    FLD_ID(T, "stream", stream),
    SEQ(T, "seq", seq),
    FLD_NUM(T, "t_start", t_start, 0, 0, 0.0),
    FLD_NUM(T, "t_end", t_end, EXCL_MIN, 0, 0.0),
    FLD_WALL(T, "wall_time", wall_time),
    FLD_STR(T, "text", text, 0),
    FLD_NUM(T, "latency_ms", latency_ms, 0, 0, 0.0),
};
static const msg_desc commentary_desc =
    DESC("commentary", true, T, commentary_fields, check_commentary);
#undef T

#define T proto_status
static const field status_fields[] = {
    FLD_TYPE,
    FLD_ID(T, "stream", stream),
    SEQ(T, "seq", seq),
    FLD_WALL(T, "wall_time", wall_time),
    FLD_STATE(T, "state", state),
    FLD_STR(T, "detail", detail, OPTIONAL),
    FLD_NUM(T, "retry_in_s", retry_in_s, OPTIONAL, MEMBER(T, has_retry_in_s), 0.0),
};
static const msg_desc status_desc = DESC("status", true, T, status_fields, check_status);
#undef T

#define T proto_gap
static const field gap_fields[] = {
    FLD_TYPE,
    FLD_ID(T, "stream", stream),
    SEQ(T, "seq", seq),
    FLD_WALL(T, "wall_time", wall_time),
    FLD_NUM(T, "t_start", t_start, 0, 0, 0.0),
    FLD_NUM(T, "t_end", t_end, EXCL_MIN, 0, 0.0),
    FLD_STR(T, "reason", reason, NONEMPTY),
};
static const msg_desc gap_desc = DESC("gap", true, T, gap_fields, check_gap);
#undef T

#define T proto_dropped
static const field dropped_fields[] = {
    FLD_TYPE,
    FLD_ID(T, "stream", stream),
    FLD_WALL(T, "wall_time", wall_time),
    SEQ(T, "count", count),
    SEQ(T, "first_seq", first_seq),
    SEQ(T, "last_seq", last_seq),
};
static const msg_desc dropped_desc = DESC("dropped", true, T, dropped_fields, check_dropped);
#undef T

#define T proto_hello
static const field hello_fields[] = {
    FLD_TYPE,
    FLD_ID(T, "stream", stream),
    FLD_WALL(T, "wall_time", wall_time),
    COUNT(T, "last_seq", last_seq),
    COUNT(T, "history_first_seq", history_first_seq),
    FLD_INT(T, "resumed_from", resumed_from, OPTIONAL, MEMBER(T, has_resumed_from), 0, INT64_MAX),
};
static const msg_desc hello_desc = DESC("hello", true, T, hello_fields, check_hello);
#undef T

#define T proto_stream_create
static const field stream_create_fields[] = {
    FLD_ID(T, "id", id),
    FLD_STR(T, "source", source, NONEMPTY),
    FLD_STR(T, "query", query, OPTIONAL),
    FLD_STR(T, "previous_text", previous_text, OPTIONAL),
};
static const msg_desc stream_create_desc =
    DESC("stream_create", false, T, stream_create_fields, NULL);
#undef T

#define T proto_stream_info
static const field stream_info_fields[] = {
    FLD_ID(T, "id", id),
    FLD_STR(T, "source", source, NONEMPTY),
    FLD_STR(T, "query", query, 0),
    FLD_STATE(T, "state", state),
    COUNT(T, "chunks", chunks),
    COUNT(T, "last_seq", last_seq),
    COUNT(T, "kv_tokens", kv_tokens),
    FLD_NUM(T, "latency_ms_p50", latency_ms_p50, NULLABLE, MEMBER(T, has_latency_ms_p50), 0.0),
    FLD_WALL(T, "created", created),
};
static const msg_desc stream_info_desc = DESC("stream_info", false, T, stream_info_fields, NULL);
#undef T

static const field stream_list_fields[] = {
    {"streams", F_ARRAY, MEMBER(proto_stream_list, streams), 0, 0, 0, 0, 0, &stream_info_desc,
     MEMBER(proto_stream_list, n_streams)},
};
static const msg_desc stream_list_desc =
    DESC("stream_list", false, proto_stream_list, stream_list_fields, NULL);

static const field query_update_fields[] = {
    FLD_STR(proto_query_update, "query", query, 0),
};
static const msg_desc query_update_desc =
    DESC("query_update", false, proto_query_update, query_update_fields, NULL);

/* {error: {code, message}}: the inner object's fields live in proto_error itself */
static const field error_body_fields[] = {
    {"code", F_INT32, MEMBER(proto_error, code), 0, 0, 0, 100, 599, NULL, 0},
    FLD_STR(proto_error, "message", message, NONEMPTY),
};
static const msg_desc error_body_desc = DESC("error", false, proto_error, error_body_fields, NULL);
static const field error_fields[] = {
    {"error", F_OBJECT, 0, 0, 0, 0, 0, 0, &error_body_desc, 0},
};
static const msg_desc error_desc = DESC("error", false, proto_error, error_fields, NULL);

/* indexed by proto_type */
static const msg_desc *const descs[PROTO_MSG_COUNT] = {
    [PROTO_MSG_COMMENTARY] = &commentary_desc,
    [PROTO_MSG_STATUS] = &status_desc,
    [PROTO_MSG_GAP] = &gap_desc,
    [PROTO_MSG_DROPPED] = &dropped_desc,
    [PROTO_MSG_HELLO] = &hello_desc,
    [PROTO_MSG_STREAM_CREATE] = &stream_create_desc,
    [PROTO_MSG_STREAM_INFO] = &stream_info_desc,
    [PROTO_MSG_STREAM_LIST] = &stream_list_desc,
    [PROTO_MSG_QUERY_UPDATE] = &query_update_desc,
    [PROTO_MSG_ERROR] = &error_desc,
};

static const msg_desc *desc_of(proto_type t) {
    return (int)t > PROTO_MSG_UNKNOWN && (int)t < PROTO_MSG_COUNT ? descs[t] : NULL;
}

const char *proto_type_name(proto_type t) {
    const msg_desc *d = desc_of(t);
    return d ? d->name : NULL;
}

proto_type proto_type_from_name(const char *name) {
    for (int t = 1; name && t < PROTO_MSG_COUNT; t++)
        if (strcmp(descs[t]->name, name) == 0) return (proto_type)t;
    return PROTO_MSG_UNKNOWN;
}

/* The event type called name, or PROTO_MSG_UNKNOWN (REST names included). */
static proto_type event_type_from_name(const char *name) {
    proto_type t = proto_type_from_name(name);
    return t != PROTO_MSG_UNKNOWN && descs[t]->typed ? t : PROTO_MSG_UNKNOWN;
}

#define AT(base, off, type) ((type *)((char *)(base) + (off)))
#define CAT(base, off, type) ((const type *)((const char *)(base) + (off)))

/* ---- free ------------------------------------------------------------------------ */

static void free_fields(const msg_desc *d, void *m) {
    for (size_t i = 0; i < d->n_fields; i++) {
        const field *f = &d->fields[i];
        if (f->kind == F_STR) {
            free(*AT(m, f->off, char *));
            *AT(m, f->off, char *) = NULL;
        } else if (f->kind == F_OBJECT) {
            free_fields(f->sub, m);
        } else if (f->kind == F_ARRAY) {
            char *arr = *AT(m, f->off, char *);
            int64_t n = *AT(m, f->count_off, int64_t);
            for (int64_t k = 0; arr && k < n; k++)
                free_fields(f->sub, arr + k * f->sub->size);
            free(arr);
            *AT(m, f->off, char *) = NULL;
            *AT(m, f->count_off, int64_t) = 0;
        }
    }
}

static void deinit(const msg_desc *d, void *m) {
    if (!m) return;
    free_fields(d, m);
    memset(m, 0, d->size);
}

/* ---- walk: check a JSON object against a table, optionally filling a struct -------- */

static const field *find_field(const msg_desc *d, const char *key) {
    for (size_t i = 0; i < d->n_fields; i++)
        if (strcmp(d->fields[i].key, key) == 0) return &d->fields[i];
    return NULL;
}

/* v as an integer the way JSON Schema sees it: an integer, or a real with no fraction */
static bool get_int(const json_t *v, int64_t *out) {
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double r = json_real_value(v);
        if (r >= -INTEGRAL_REAL_MAX && r <= INTEGRAL_REAL_MAX && r == (double)(int64_t)r) {
            *out = (int64_t)r;
            return true;
        }
    }
    return false;
}

static int walk(const msg_desc *d, const char *msg, json_t *obj, void *out, const void *src,
                const char *prefix, char *err);

/* Check one present value v of field f (path p); fill out when not NULL. */
static int walk_value(const field *f, const char *msg, json_t *v, void *out, const void *src,
                      const char *p, char *err) {
    switch (f->kind) {
    case F_TYPE:
        if (!json_is_string(v) || strcmp(json_string_value(v), msg) != 0)
            return fail(err, PROTO_EINVAL, msg, "'%s' must be \"%s\"", p, msg);
        return PROTO_OK;
    case F_ID:
    case F_WALL: {
        if (!json_is_string(v)) return fail(err, PROTO_EINVAL, msg, "'%s' must be a string", p);
        const char *s = json_string_value(v);
        if (f->kind == F_ID && !proto_valid_id(s))
            return fail(err, PROTO_EINVAL, msg, "'%s' must match [A-Za-z0-9_-]{1,%d}", p,
                        PROTO_ID_MAX);
        if (f->kind == F_WALL && !proto_valid_wall_time(s))
            return fail(err, PROTO_EINVAL, msg,
                        "'%s' must be an RFC 3339 UTC time with milliseconds "
                        "(YYYY-MM-DDTHH:MM:SS.mmmZ)",
                        p);
        if (out) memcpy(AT(out, f->off, char), s, strlen(s) + 1); /* fits: checked above */
        return PROTO_OK;
    }
    case F_STR: {
        if (!json_is_string(v)) return fail(err, PROTO_EINVAL, msg, "'%s' must be a string", p);
        size_t n = json_string_length(v);
        if ((f->flags & NONEMPTY) && n == 0)
            return fail(err, PROTO_EINVAL, msg, "'%s' must not be empty", p);
        if (out) {
            char *s = malloc(n + 1);
            if (!s) return fail(err, PROTO_ENOMEM, msg, "out of memory");
            memcpy(s, json_string_value(v), n + 1);
            *AT(out, f->off, char *) = s;
        }
        return PROTO_OK;
    }
    case F_NUM: {
        if (json_is_null(v) && (f->flags & NULLABLE)) {
            if (out) *AT(out, f->has_off, bool) = false;
            return PROTO_OK;
        }
        if (!json_is_number(v))
            return fail(err, PROTO_EINVAL, msg, "'%s' must be a number%s", p,
                        f->flags & NULLABLE ? " or null" : "");
        double x = json_number_value(v);
        if ((f->flags & HAS_MIN) && (f->flags & EXCL_MIN) && !(x > f->min))
            return fail(err, PROTO_EINVAL, msg, "'%s' must be > %g", p, f->min);
        if ((f->flags & HAS_MIN) && !(f->flags & EXCL_MIN) && !(x >= f->min))
            return fail(err, PROTO_EINVAL, msg, "'%s' must be >= %g", p, f->min);
        if (out) {
            *AT(out, f->off, double) = x;
            if (f->flags & (OPTIONAL | NULLABLE)) *AT(out, f->has_off, bool) = true;
        }
        return PROTO_OK;
    }
    case F_INT:
    case F_INT32: {
        int64_t x;
        if (!get_int(v, &x)) return fail(err, PROTO_EINVAL, msg, "'%s' must be an integer", p);
        if (x < f->imin || x > f->imax) {
            if (f->imax == INT64_MAX)
                return fail(err, PROTO_EINVAL, msg, "'%s' must be >= %" PRId64, p, f->imin);
            return fail(err, PROTO_EINVAL, msg, "'%s' must be between %" PRId64 " and %" PRId64, p,
                        f->imin, f->imax);
        }
        if (out && f->kind == F_INT32) *AT(out, f->off, int) = (int)x;
        if (out && f->kind == F_INT) {
            *AT(out, f->off, int64_t) = x;
            if (f->flags & OPTIONAL) *AT(out, f->has_off, bool) = true;
        }
        return PROTO_OK;
    }
    case F_STATE: {
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        for (int i = 0; s && i < N_STATES; i++) {
            if (strcmp(s, state_names[i]) == 0) {
                if (out) *AT(out, f->off, proto_state) = (proto_state)i;
                return PROTO_OK;
            }
        }
        return fail(err, PROTO_EINVAL, msg,
                    "'%s' must be one of connecting, live, reconnecting, ended", p);
    }
    case F_OBJECT:
        if (!json_is_object(v)) return fail(err, PROTO_EINVAL, msg, "'%s' must be an object", p);
        return walk(f->sub, msg, v, out, src, p, err);
    case F_ARRAY: {
        if (!json_is_array(v)) return fail(err, PROTO_EINVAL, msg, "'%s' must be an array", p);
        size_t n = json_array_size(v);
        char *arr = NULL;
        if (out && n > 0) {
            arr = calloc(n, f->sub->size);
            if (!arr) return fail(err, PROTO_ENOMEM, msg, "out of memory");
            /* set now so a failure below frees the elements filled so far */
            *AT(out, f->off, char *) = arr;
            *AT(out, f->count_off, int64_t) = (int64_t)n;
        }
        /* the checks run on the decoded elements, or on the encoder's source array */
        const char *src_arr = out ? arr : *CAT(src, f->off, char *);
        for (size_t k = 0; k < n; k++) {
            char pk[PATH_LEN];
            path_index(pk, p, (int64_t)k);
            json_t *e = json_array_get(v, k);
            if (!json_is_object(e))
                return fail(err, PROTO_EINVAL, msg, "'%s' must be an object", pk);
            int rc = walk(f->sub, msg, e, arr ? arr + k * f->sub->size : NULL,
                          src_arr + k * f->sub->size, pk, err);
            if (rc) return rc;
        }
        return PROTO_OK;
    }
    }
    return fail(err, PROTO_EINVAL, msg, "'%s': bad field table", p);
}

/* Check obj against d: no unknown keys, every required key present, every value of its
 * kind and within its constraints, then d->check on the struct (src: the filled out, or
 * the encoder's struct).  Fills out (not NULL) as it goes. */
static int walk(const msg_desc *d, const char *msg, json_t *obj, void *out, const void *src,
                const char *prefix, char *err) {
    char p[PATH_LEN];
    const char *key;
    json_t *v;
    /* unknown keys first: a misspelt key is reported as itself, not as a missing one */
    json_object_foreach(obj, key, v) {
        if (!find_field(d, key)) {
            path_key(p, prefix, key);
            return fail(err, PROTO_EINVAL, msg, "unknown key '%s'", p);
        }
    }
    for (size_t i = 0; i < d->n_fields; i++) {
        const field *f = &d->fields[i];
        path_key(p, prefix, f->key);
        v = json_object_get(obj, f->key);
        if (!v) {
            if (f->flags & OPTIONAL) continue;
            return fail(err, PROTO_EINVAL, msg, "'%s' is required", p);
        }
        int rc = walk_value(f, msg, v, out, src, p, err);
        if (rc) return rc;
    }
    return d->check ? d->check(out ? out : src, prefix, msg, err) : PROTO_OK;
}

/* ---- parse ----------------------------------------------------------------------- */

/* jansson refused s[0..n) for invalid UTF-8: find the first string holding an invalid
 * sequence and write the JSON path of its value (returns 1) or of the object whose key it
 * is (returns 2) into path.  Returns 0 when there is none in a string, or nesting is too
 * deep to say.  The input up to that string is JSON (jansson read that far), so a lexer
 * of strings and punctuation is enough. */
static int utf8_error_path(const char *s, size_t n, char *path) {
    enum { MAX_DEPTH = 32 };
    struct {
        bool is_obj, want_key;
        const char *key; /* the current key's raw text (escapes as written) */
        size_t key_len;
        size_t index; /* arrays: the current element */
    } st[MAX_DEPTH];
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '{' || c == '[') {
            if (depth == MAX_DEPTH) return 0;
            st[depth].is_obj = c == '{';
            st[depth].want_key = c == '{';
            st[depth].key = NULL;
            st[depth].key_len = 0;
            st[depth].index = 0;
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth > 0) depth--;
        } else if (c == ',' && depth > 0) {
            if (st[depth - 1].is_obj)
                st[depth - 1].want_key = true;
            else
                st[depth - 1].index++;
        } else if (c == '"') {
            size_t start = ++i;
            while (i < n && s[i] != '"')
                i += s[i] == '\\' ? 2 : 1;
            size_t end = i < n ? i : n;
            bool is_key = depth > 0 && st[depth - 1].is_obj && st[depth - 1].want_key;
            bool bad = !utf8_valid(s + start, end - start);
            if (is_key && !bad) {
                st[depth - 1].key = s + start;
                st[depth - 1].key_len = end - start;
                st[depth - 1].want_key = false;
            }
            if (!bad) continue;
            /* the path of the enclosing levels, plus this value's own key/index */
            int levels = is_key ? depth - 1 : depth;
            size_t len = 0;
            path[0] = 0;
            for (int l = 0; l < levels; l++) {
                int w;
                if (st[l].is_obj)
                    w = snprintf(path + len, PATH_LEN - len, "%s%.*s", len ? "." : "",
                                 (int)st[l].key_len, st[l].key ? st[l].key : "");
                else
                    w = snprintf(path + len, PATH_LEN - len, "[%zu]", st[l].index);
                if (w < 0 || (size_t)w >= PATH_LEN - len) break;
                len += (size_t)w;
            }
            return is_key ? 2 : 1;
        }
    }
    return 0;
}

/* Parse s[0..n) into an object (*root, a new reference).  msg names the message. */
static int load(const char *msg, const char *s, size_t n, json_t **root, char *err) {
    *root = NULL;
    if (!s) return fail(err, PROTO_ESYNTAX, msg, "not JSON: no input");
    json_error_t je;
    json_t *j = json_loadb(s, n, LOAD_FLAGS, &je);
    if (!j) {
        enum json_error_code code = json_error_code(&je);
        if (code == json_error_out_of_memory) return fail(err, PROTO_ENOMEM, msg, "out of memory");
        char path[PATH_LEN];
        int where = code == json_error_invalid_utf8 ? utf8_error_path(s, n, path) : 0;
        if (where == 1) return fail(err, PROTO_ESYNTAX, msg, "'%s' is not valid UTF-8", path);
        if (where == 2 && path[0])
            return fail(err, PROTO_ESYNTAX, msg, "a key in '%s' is not valid UTF-8", path);
        if (where == 2) return fail(err, PROTO_ESYNTAX, msg, "a key is not valid UTF-8");
        return fail(err, PROTO_ESYNTAX, msg, "not JSON: %s (line %d column %d)", je.text, je.line,
                    je.column);
    }
    if (!json_is_object(j)) {
        json_decref(j);
        return fail(err, PROTO_EINVAL, msg, "must be a JSON object");
    }
    *root = j;
    return PROTO_OK;
}

static int decode_root(const msg_desc *d, json_t *root, void *out, char *err) {
    int rc = walk(d, d->name, root, out, out, "", err);
    if (rc) deinit(d, out);
    return rc;
}

static int decode(const msg_desc *d, const char *json, size_t len, void *out, char *err) {
    memset(out, 0, d->size);
    json_t *root;
    int rc = load(d->name, json, len, &root, err);
    if (rc) return rc;
    rc = decode_root(d, root, out, err);
    json_decref(root);
    return rc;
}

/* ---- build: a struct to a JSON object (the walk then checks it) ------------------- */

/* A JSON string of s[0..n), or NULL with err set. */
static json_t *build_string(const char *s, size_t n, const char *msg, const char *p, char *err,
                            int *rc) {
    if (!utf8_valid(s, n)) {
        *rc = fail(err, PROTO_EINVAL, msg, "'%s' is not valid UTF-8", p);
        return NULL;
    }
    json_t *j = json_stringn(s, n);
    if (!j) *rc = fail(err, PROTO_ENOMEM, msg, "out of memory");
    return j;
}

static json_t *build(const msg_desc *d, const char *msg, const void *m, const char *prefix,
                     char *err, int *rc);

/* The JSON value of field f of m; NULL with *rc 0 when an optional one is absent. */
static json_t *build_value(const field *f, const char *msg, const void *m, const char *p, char *err,
                           int *rc) {
    *rc = PROTO_OK;
    switch (f->kind) {
    case F_TYPE:
        return build_string(msg, strlen(msg), msg, p, err, rc);
    case F_ID:
    case F_WALL: {
        const char *s = CAT(m, f->off, char);
        size_t cap = f->kind == F_ID ? PROTO_ID_SIZE : PROTO_WALL_TIME_SIZE;
        return build_string(s, strnlen(s, cap), msg, p, err, rc); /* the walk checks it */
    }
    case F_STR: {
        const char *s = *CAT(m, f->off, char *);
        return s ? build_string(s, strlen(s), msg, p, err, rc) : NULL;
    }
    case F_NUM: {
        if ((f->flags & (OPTIONAL | NULLABLE)) && !*CAT(m, f->has_off, bool))
            return f->flags & NULLABLE ? json_null() : NULL;
        double x = *CAT(m, f->off, double);
        if (!isfinite(x)) {
            *rc = fail(err, PROTO_EINVAL, msg, "'%s' must be a finite number", p);
            return NULL;
        }
        json_t *j = json_real(x);
        if (!j) *rc = fail(err, PROTO_ENOMEM, msg, "out of memory");
        return j;
    }
    case F_INT:
    case F_INT32: {
        if ((f->flags & OPTIONAL) && !*CAT(m, f->has_off, bool)) return NULL;
        json_int_t x = f->kind == F_INT ? (json_int_t)*CAT(m, f->off, int64_t)
                                        : (json_int_t)*CAT(m, f->off, int);
        json_t *j = json_integer(x);
        if (!j) *rc = fail(err, PROTO_ENOMEM, msg, "out of memory");
        return j;
    }
    case F_STATE: {
        const char *s = proto_state_name(*CAT(m, f->off, proto_state));
        if (!s) {
            *rc = fail(err, PROTO_EINVAL, msg,
                       "'%s' must be one of connecting, live, reconnecting, ended", p);
            return NULL;
        }
        return build_string(s, strlen(s), msg, p, err, rc);
    }
    case F_OBJECT:
        return build(f->sub, msg, m, p, err, rc);
    case F_ARRAY: {
        const char *arr = *CAT(m, f->off, char *);
        int64_t n = *CAT(m, f->count_off, int64_t);
        if (n < 0 || (n > 0 && !arr)) {
            *rc = fail(err, PROTO_EINVAL, msg, "'%s' has %" PRId64 " elements at %p", p, n,
                       (const void *)arr);
            return NULL;
        }
        json_t *a = json_array();
        if (!a) {
            *rc = fail(err, PROTO_ENOMEM, msg, "out of memory");
            return NULL;
        }
        for (int64_t k = 0; k < n; k++) {
            char pk[PATH_LEN];
            path_index(pk, p, k);
            json_t *e = build(f->sub, msg, arr + k * f->sub->size, pk, err, rc);
            if (!e || json_array_append_new(a, e) != 0) {
                if (e && !*rc) *rc = fail(err, PROTO_ENOMEM, msg, "out of memory");
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    }
    *rc = fail(err, PROTO_EINVAL, msg, "'%s': bad field table", p);
    return NULL;
}

/* The JSON object of m by table d, keys in table order; NULL with *rc set on failure. */
static json_t *build(const msg_desc *d, const char *msg, const void *m, const char *prefix,
                     char *err, int *rc) {
    json_t *obj = json_object();
    if (!obj) {
        *rc = fail(err, PROTO_ENOMEM, msg, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < d->n_fields; i++) {
        const field *f = &d->fields[i];
        char p[PATH_LEN];
        path_key(p, prefix, f->key);
        json_t *v = build_value(f, msg, m, p, err, rc);
        if (*rc) {
            json_decref(obj);
            return NULL;
        }
        if (v && json_object_set_new(obj, f->key, v) != 0) {
            json_decref(obj);
            *rc = fail(err, PROTO_ENOMEM, msg, "out of memory");
            return NULL;
        }
    }
    *rc = PROTO_OK;
    return obj;
}

/* Build m and check it; *out the JSON object on success. */
static int build_checked(const msg_desc *d, const void *m, json_t **out, char *err) {
    int rc;
    *out = NULL;
    json_t *j = build(d, d->name, m, "", err, &rc);
    if (!j) return rc;
    rc = walk(d, d->name, j, NULL, m, "", err);
    if (rc) {
        json_decref(j);
        return rc;
    }
    *out = j;
    return PROTO_OK;
}

static int encode(const msg_desc *d, const void *m, char *buf, size_t cap, size_t *len, char *err) {
    size_t dummy;
    if (!len) len = &dummy;
    *len = 0;
    json_t *j;
    int rc = build_checked(d, m, &j, err);
    if (rc) return rc;
    size_t n = json_dumpb(j, buf, buf ? cap : 0, DUMP_FLAGS);
    json_decref(j);
    if (n == 0) return fail(err, PROTO_ENOMEM, d->name, "out of memory");
    *len = n;
    if (!buf || n + 1 > cap)
        return fail(err, PROTO_ENOSPC, d->name, "needs %zu bytes, the buffer has %zu", n + 1,
                    buf ? cap : 0);
    buf[n] = 0;
    return PROTO_OK;
}

/* ---- public entry points --------------------------------------------------------- */

#define PROTO_DEFINE_(name)                                                                        \
    int proto_decode_##name(const char *json, size_t len, proto_##name *out, char *err) {          \
        return decode(&name##_desc, json, len, out, err);                                          \
    }                                                                                              \
    int proto_encode_##name(const proto_##name *m, char *buf, size_t cap, size_t *len) {           \
        return encode(&name##_desc, m, buf, cap, len, NULL);                                       \
    }                                                                                              \
    void proto_##name##_deinit(proto_##name *m) {                                                  \
        deinit(&name##_desc, m);                                                                   \
    }
PROTO_DEFINE_(commentary)
PROTO_DEFINE_(status)
PROTO_DEFINE_(gap)
PROTO_DEFINE_(dropped)
PROTO_DEFINE_(hello)
PROTO_DEFINE_(stream_create)
PROTO_DEFINE_(stream_info)
PROTO_DEFINE_(stream_list)
PROTO_DEFINE_(query_update)
PROTO_DEFINE_(error)
#undef PROTO_DEFINE_

int proto_decode(proto_type type, const char *json, size_t len, proto_msg *out, char *err) {
    const msg_desc *d = desc_of(type);
    if (!d) {
        memset(out, 0, sizeof *out);
        return fail(err, PROTO_EINVAL, "proto", "unknown message type %d", (int)type);
    }
    memset(out, 0, sizeof *out);
    return decode(d, json, len, out, err);
}

int proto_encode(proto_type type, const proto_msg *m, char *buf, size_t cap, size_t *len,
                 char *err) {
    const msg_desc *d = desc_of(type);
    if (!d) {
        if (len) *len = 0;
        return fail(err, PROTO_EINVAL, "proto", "unknown message type %d", (int)type);
    }
    return encode(d, m, buf, cap, len, err);
}

void proto_msg_deinit(proto_type type, proto_msg *m) {
    const msg_desc *d = desc_of(type);
    if (d) deinit(d, m);
}

int proto_check(proto_type type, const proto_msg *m, char *err) {
    const msg_desc *d = desc_of(type);
    if (!d) return fail(err, PROTO_EINVAL, "proto", "unknown message type %d", (int)type);
    json_t *j;
    int rc = build_checked(d, m, &j, err);
    json_decref(j);
    return rc;
}

proto_type proto_message_type(const char *json, size_t len) {
    if (!json) return PROTO_MSG_UNKNOWN;
    json_t *j = json_loadb(json, len, LOAD_FLAGS, NULL);
    json_t *t = json_object_get(j, "type"); /* NULL when j is NULL or not an object */
    proto_type type =
        json_is_string(t) ? event_type_from_name(json_string_value(t)) : PROTO_MSG_UNKNOWN;
    json_decref(j);
    return type;
}

int proto_decode_event(const char *json, size_t len, proto_type *type, proto_msg *out, char *err) {
    *type = PROTO_MSG_UNKNOWN;
    memset(out, 0, sizeof *out);
    json_t *root;
    int rc = load("event", json, len, &root, err);
    if (rc) return rc;
    json_t *t = json_object_get(root, "type");
    proto_type tt =
        json_is_string(t) ? event_type_from_name(json_string_value(t)) : PROTO_MSG_UNKNOWN;
    if (tt == PROTO_MSG_UNKNOWN) {
        json_decref(root);
        if (!t) return fail(err, PROTO_EINVAL, "event", "'type' is required");
        return fail(err, PROTO_EINVAL, "event",
                    "'type' must be one of commentary, status, gap, dropped, hello");
    }
    rc = decode_root(descs[tt], root, out, err);
    json_decref(root);
    if (rc == PROTO_OK) *type = tt;
    return rc;
}
