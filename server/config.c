/* config.c — the configuration table and everything it drives (see config.h).
 *
 * `keys[]` below is the only description of the configuration.  Each entry names a key
 * (dotted for the nested objects), its type, where it lives in struct config, its default
 * (as text), its range, whether SIGHUP reload may change it, whether it is secret, and a
 * line of help.  Then:
 *   load   = jansson parse -> apply_object(table, json) -> config_validate
 *   set    = the text turned into a JSON value by the key's type -> apply_json
 *   print  = table -> JSON tree -> json_dumpf;  help = table -> text
 *   reload = table -> key_equal on every non-reloadable key
 * so a key added to the table is parsed, checked, printed, documented and guarded on
 * reload at once.
 *
 * Errors: internal functions write a message without a prefix ("'ws.queue' must be ...");
 * the public entry points prefix it with "config" or the file name.  A value that fails
 * leaves the config as it was (apply_json checks before it stores).
 *
 * Not for: what the keys do (the daemon).  Invariants: no global mutable state; a config
 * owns its streams and nothing else on the heap.  Thread: any.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h> /* isfinite: a macro, no libm */
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

/* duplicate keys are refused rather than silently taking the last one; any top-level
 * value, so "3" is "must be a JSON object", not a syntax error */
#define LOAD_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)
#define PRINT_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(15))
#define SHOW_FLAGS (JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15))
#define PATH_LEN 128                         /* JSON paths in messages (longer ones are cut) */
#define SHOW_LEN 48                          /* a value quoted in a message, at most */
#define FILE_MAX ((size_t)64 << 20)          /* 1024 streams with 8 KiB of text each fit easily */
#define INTEGRAL_REAL_MAX 9007199254740992.0 /* 2^53: reals up to here are exact integers */

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* ---- the table ------------------------------------------------------------------- */

typedef enum key_type {
    T_INT,     /* int64_t, [min, max]; JSON integers and integral reals */
    T_NUMBER,  /* double, [min, max] */
    T_ENUM,    /* an enum stored as int; JSON: one of names[] (the value is the index) */
    T_BOOL,    /* bool; JSON true or false */
    T_STRING,  /* char[size], at least min bytes */
    T_TOKEN,   /* char[size] of printable ASCII without spaces (an HTTP bearer token) */
    T_LISTEN,  /* "HOST:PORT" into listen, listen_host and listen_port */
    T_STREAMS, /* the streams array and n_streams */
} key_type;

typedef struct config_key {
    const char *name; /* dotted: "policy.text_rounds" is {"policy": {"text_rounds": }} */
    key_type type;
    size_t off;               /* offsetof(config, field) */
    size_t size;              /* sizeof the field (T_STRING, T_TOKEN: the array's capacity) */
    const char *dflt;         /* the default, as text (JSON-quoted by config_help) */
    double min, max;          /* T_INT, T_NUMBER: range; T_STRING: min is the least length */
    const char *const *names; /* T_ENUM: the names, indexed by value */
    bool reloadable;          /* SIGHUP reload may change it */
    bool secret;              /* never printed, never quoted in an error */
    const char *help;
} config_key;

static const char *const backend_names[] = {"cpu", "cuda", "auto", NULL};
static const char *const loglevel_names[] = {"error", "warn", "info", "debug", NULL};

_Static_assert(sizeof(config_backend) == sizeof(int), "T_ENUM fields are stored as int");
_Static_assert(sizeof(log_level) == sizeof(int), "T_ENUM fields are stored as int");
_Static_assert(sizeof(((config *)0)->whip.allow_create) == sizeof(bool), "T_BOOL fields are bool");

#define FIELD(f) offsetof(config, f), sizeof(((config *)0)->f)
#define RELOAD true
#define RESTART false
#define SECRET true
#define PUBLIC false

static const config_key keys[] = {
    {"listen", T_LISTEN, FIELD(listen), "127.0.0.1:8080", 0, 65535, NULL, RESTART, PUBLIC,
     "HTTP and WebSocket address, HOST:PORT or [IPV6]:PORT; port 0 picks a free one"},
    {"model", T_STRING, FIELD(model), "models/default", 1, 0, NULL, RESTART, PUBLIC,
     "Hugging Face model directory (config.json, tokenizer.json, *.safetensors)"},
    {"backend", T_ENUM, FIELD(backend), "auto", 0, 0, backend_names, RESTART, PUBLIC,
     "inference backend; auto: CUDA when a GPU is usable, else CPU"},
    {"threads", T_INT, FIELD(threads), "0", 0, 256, NULL, RESTART, PUBLIC,
     "CPU threads for the engine; 0: all cores (at most 64 are used)"},
    {"batch", T_INT, FIELD(batch), "8", 1, 256, NULL, RESTART, PUBLIC,
     "most streams whose decode steps share one forward; 1: one stream at a time"},
    {"batch_prefill_tokens", T_INT, FIELD(batch_prefill_tokens), "1024", 0, 65536, NULL, RESTART,
     PUBLIC, "most tokens of several streams' prefills run in one forward; 0: each alone"},
    {"token", T_TOKEN, FIELD(token), "", 0, 0, NULL, RELOAD, SECRET,
     "bearer token for control, subscribe and ingest; \"\": none (printed as \"***\")"},
    {"log_level", T_ENUM, FIELD(log_level), "info", 0, 0, loglevel_names, RELOAD, PUBLIC,
     "most verbose log lines written"},
    {"max_streams", T_INT, FIELD(max_streams), "16", 1, 1024, NULL, RESTART, PUBLIC,
     "most streams at once (config and API together)"},
    {"history", T_INT, FIELD(history), "256", 16, 65536, NULL, RESTART, PUBLIC,
     "events kept per stream for ?since= resume"},
    {"policy.vision_window", T_INT, FIELD(policy.vision_window), "16", 1, 4096, NULL, RESTART,
     PUBLIC, "V: recent 1-s chunks whose vision tokens stay in the KV cache"},
    {"policy.text_rounds", T_INT, FIELD(policy.text_rounds), "16", 1, 4096, NULL, RESTART, PUBLIC,
     "T: recent rounds of commentary text kept in the KV cache"},
    {"policy.prev_sink", T_INT, FIELD(policy.prev_sink), "512", 0, 65536, NULL, RESTART, PUBLIC,
     "S: first tokens of the previous text always kept (the text sink)"},
    {"policy.prev_window", T_INT, FIELD(policy.prev_window), "512", 1, 65536, NULL, RESTART, PUBLIC,
     "W: last tokens of the previous text kept (the text window)"},
    {"policy.max_new_tokens", T_INT, FIELD(policy.max_new_tokens), "20", 1, 256, NULL, RESTART,
     PUBLIC, "M: most tokens generated per 1-s chunk"},
    {"ws.queue", T_INT, FIELD(ws.queue), "64", 4, 65536, NULL, RELOAD, PUBLIC,
     "messages queued per WebSocket client before it counts as slow"},
    {"ws.slow_close_s", T_NUMBER, FIELD(ws.slow_close_s), "10", 0.5, 3600, NULL, RELOAD, PUBLIC,
     "seconds a client may stay slow before it is closed"},
    {"ws.max_message_bytes", T_INT, FIELD(ws.max_message_bytes), "4096", 64, 1048576, NULL, RELOAD,
     PUBLIC, "largest message accepted from a client"},
    {"ws.ping_s", T_INT, FIELD(ws.ping_s), "30", 0, 3600, NULL, RESTART, PUBLIC,
     "seconds without a pong before a subscriber is pinged; no pong in as many more: "
     "closed; 0: no pings"},
    {"ingest.reconnect_min_s", T_NUMBER, FIELD(ingest.reconnect_min_s), "1", 0.1, 60, NULL, RELOAD,
     PUBLIC, "first delay before reconnecting a source"},
    {"ingest.reconnect_max_s", T_NUMBER, FIELD(ingest.reconnect_max_s), "30", 1, 3600, NULL, RELOAD,
     PUBLIC, "cap of the doubling reconnect delay (>= reconnect_min_s)"},
    {"ingest.latency_ms", T_INT, FIELD(ingest.latency_ms), "200", 0, 10000, NULL, RELOAD, PUBLIC,
     "jitter buffer for RTSP, SRT and WebRTC sources"},
    {"ingest.stall_timeout_s", T_NUMBER, FIELD(ingest.stall_timeout_s), "10", 2, 3600, NULL,
     RELOAD, PUBLIC, "a live source without a frame for this long is reconnected (the first "
     "frame of a connection gets 3x as long)"},
    {"whip.stun_server", T_STRING, FIELD(whip.stun_server), "", 0, 0, NULL, RELOAD, PUBLIC,
     "STUN server for WHIP sessions started after, stun://HOST:PORT; \"\": none"},
    {"whip.turn_server", T_STRING, FIELD(whip.turn_server), "", 0, 0, NULL, RELOAD, SECRET,
     "TURN server for WHIP sessions, turn://USER:PASS@HOST:PORT (or turns://); \"\": none"},
    {"whip.port_min", T_INT, FIELD(whip.port_min), "0", 0, 65535, NULL, RELOAD, PUBLIC,
     "lowest UDP port of WHIP sessions' ICE candidates; 0: no bound"},
    {"whip.port_max", T_INT, FIELD(whip.port_max), "0", 0, 65535, NULL, RELOAD, PUBLIC,
     "highest UDP port of WHIP sessions' ICE candidates (>= port_min); 0: no bound"},
    {"whip.allow_create", T_BOOL, FIELD(whip.allow_create), "true", 0, 0, NULL, RELOAD, PUBLIC,
     "a WHIP publisher may create its stream (else the stream must exist with source whip:)"},
    {"streams", T_STREAMS, FIELD(streams), "[]", 0, 0, NULL, RELOAD, PUBLIC,
     "streams started at boot: [{\"id\", \"source\", \"query\"?, \"previous_text\"?}]"},
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

/* the keys of one entry of "streams" */
static const char *const stream_keys[] = {"id", "source", "query", "previous_text", NULL};

const char *config_strerror(int err) {
    switch (err) {
    case CONFIG_OK:
        return "ok";
#define CONFIG_STRERROR_(name, code, msg)                                                          \
    case CONFIG_##name:                                                                            \
        return msg;
        CONFIG_ERRNO_MAP(CONFIG_STRERROR_)
#undef CONFIG_STRERROR_
    }
    return "unknown error";
}

const char *config_backend_name(config_backend b) {
    return (int)b >= 0 && (int)b < 3 ? backend_names[b] : NULL;
}

#define AT(c, k, type) ((type *)((char *)(c) + (k)->off))
#define AT_CONST(c, k, type) ((const type *)((const char *)(c) + (k)->off))

static const config_key *find_key(const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

/* Whether name is a group: some key is named "name.<...>". */
static const config_key *first_in_group(const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < N_KEYS; i++)
        if (n && strncmp(keys[i].name, name, n) == 0 && keys[i].name[n] == '.') return &keys[i];
    return NULL;
}

/* ---- errors, paths, values in messages --------------------------------------------- */

/* Fill err (when not NULL) and return code. */
static int fail(char *err, int code, const char *fmt, ...) PRINTF_LIKE(3, 4);
static int fail(char *err, int code, const char *fmt, ...) {
    if (!err) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, CONFIG_ERR_LEN, fmt, ap);
    va_end(ap);
    return code;
}

/* Put "name: " in front of the message in err (when rc is an error). */
static int prefixed(char *err, int rc, const char *name) {
    if (rc == 0 || !err) return rc;
    char body[CONFIG_ERR_LEN];
    memcpy(body, err, sizeof body);
    body[sizeof body - 1] = 0;
    size_t n = strlen(name);
    if (n > 96) { /* a long file name: keep its end, which says the most */
        name += n - 93;
        n = (size_t)snprintf(err, CONFIG_ERR_LEN, "...%s: ", name);
    } else {
        n = (size_t)snprintf(err, CONFIG_ERR_LEN, "%s: ", name);
    }
    snprintf(err + n, CONFIG_ERR_LEN - n, "%s", body);
    return rc;
}

/* dst = prefix.key, with control characters of a (user-written) key shown as '?' */
static void path_key(char *dst, const char *prefix, const char *key) {
    int n = snprintf(dst, PATH_LEN, "%s%s", prefix, *prefix ? "." : "");
    if (n < 0 || n >= PATH_LEN) return;
    size_t i = (size_t)n;
    for (; *key && i < PATH_LEN - 1; key++)
        dst[i++] = (unsigned char)*key < 0x20 || *key == 0x7f ? '?' : *key;
    dst[i] = 0;
}

/* dst = prefix[k] */
static void path_index(char *dst, const char *prefix, size_t k) {
    int n = (int)strnlen(prefix, PATH_LEN - 24);
    snprintf(dst, PATH_LEN, "%.*s[%zu]", n, prefix, k);
}

/* A JSON value as a message quotes it: compact JSON, ASCII only, cut at SHOW_LEN; long
 * strings by their length; for secrets only the kind of value. */
static void show(const json_t *v, bool secret, char *buf, size_t cap) {
    size_t len = json_string_length(v); /* 0 when not a string */
    if (json_is_string(v) && secret) {
        snprintf(buf, cap, "a string of %zu bytes", len);
        return;
    }
    if (json_is_string(v) && len > SHOW_LEN - 16) { /* its start, cut between characters */
        const char *s = json_string_value(v);
        size_t n = SHOW_LEN - 16;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        json_t *head = json_stringn(s, n);
        char *q = head ? json_dumps(head, SHOW_FLAGS) : NULL;
        snprintf(buf, cap, "%s... (%zu bytes)", q ? q : "a string", len);
        free(q);
        json_decref(head);
        return;
    }
    if (secret) {
        snprintf(buf, cap, "%s",
                 json_is_object(v)   ? "an object"
                 : json_is_array(v)  ? "an array"
                 : json_is_number(v) ? "a number"
                 : json_is_null(v)   ? "null"
                                     : "a boolean");
        return;
    }
    char *s = json_dumps(v, SHOW_FLAGS);
    if (!s) {
        snprintf(buf, cap, "a value");
        return;
    }
    if (strlen(s) > SHOW_LEN && cap > SHOW_LEN)
        snprintf(buf, cap, "%.*s...", SHOW_LEN - 3, s);
    else
        snprintf(buf, cap, "%s", s);
    free(s);
}

/* What a key takes, for "must be <expect>". */
static void expect(const config_key *k, char *buf, size_t cap) {
    switch (k->type) {
    case T_INT:
        snprintf(buf, cap, "an integer in [%.0f, %.0f]", k->min, k->max);
        break;
    case T_NUMBER:
        snprintf(buf, cap, "a number in [%.15g, %.15g]", k->min, k->max);
        break;
    case T_ENUM: {
        size_t n = (size_t)snprintf(buf, cap, "one of ");
        for (int i = 0; k->names[i] && n < cap; i++)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", k->names[i]);
        break;
    }
    case T_BOOL:
        snprintf(buf, cap, "true or false");
        break;
    case T_STRING:
        snprintf(buf, cap, "a %sstring of at most %zu bytes", k->min > 0 ? "non-empty " : "",
                 k->size - 1);
        break;
    case T_TOKEN:
        snprintf(buf, cap, "a string of at most %zu printable ASCII characters, no spaces",
                 k->size - 1);
        break;
    case T_LISTEN:
        snprintf(buf, cap, "a string \"HOST:PORT\" or \"[IPV6]:PORT\"");
        break;
    case T_STREAMS:
        snprintf(buf, cap, "an array of {id, source, query?, previous_text?}");
        break;
    }
}

/* "'path' must be <what k takes>, got <v>" */
static int bad_value(const config_key *k, const char *path, const json_t *v, char *err) {
    char want[96], got[SHOW_LEN + 16];
    expect(k, want, sizeof want);
    show(v, k->secret, got, sizeof got);
    return fail(err, CONFIG_EINVAL, "'%s' must be %s, got %s", path, want, got);
}

/* ---- unknown keys: "did you mean" -------------------------------------------------- */

/* Levenshtein distance of a and b (large when either is longer than 63). */
static int edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 63 || nb > 63) return 1000;
    int row[64];
    for (size_t j = 0; j <= nb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* A typo is at most 2 edits, and fewer than a third of the name. */
static bool close_enough(const char *typed, const char *name, int d) {
    size_t n = strlen(name) > strlen(typed) ? strlen(name) : strlen(typed);
    return d <= 2 && (size_t)d * 3 <= n;
}

/* The names at the level of prefix ("" for the top): the segment after "prefix." of each
 * key, each once, in table order.  Returns the count. */
static int names_at_level(const char *prefix, const char **names, size_t *lens, int cap) {
    size_t np = strlen(prefix);
    int n = 0;
    for (int i = 0; i < N_KEYS; i++) {
        const char *name = keys[i].name;
        if (np && (strncmp(name, prefix, np) != 0 || name[np] != '.')) continue;
        const char *seg = np ? name + np + 1 : name;
        size_t len = strcspn(seg, ".");
        bool seen = false;
        for (int j = 0; j < n; j++)
            seen |= lens[j] == len && strncmp(names[j], seg, len) == 0;
        if (!seen && n < cap) {
            names[n] = seg;
            lens[n++] = len;
        }
    }
    return n;
}

/* "unknown key 'path'" with a suggestion: a near name at the same level (names, or the
 * table's level of prefix when names is NULL), else a key elsewhere with that exact last
 * name ("queue" -> "ws.queue"). */
static int unknown_key(const char *prefix, const char *key, const char *const *names, char *err) {
    char path[PATH_LEN], hint[PATH_LEN + 32] = "";
    path_key(path, prefix, key);
    const char *cand[N_KEYS + 8];
    size_t lens[N_KEYS + 8];
    int n = 0;
    if (names) {
        for (; names[n]; n++) {
            cand[n] = names[n];
            lens[n] = strlen(names[n]);
        }
    } else {
        n = names_at_level(prefix, cand, lens, N_KEYS + 8);
    }
    int best = -1, best_d = 1000, n_best = 0;
    for (int i = 0; i < n; i++) {
        char name[PATH_LEN];
        snprintf(name, sizeof name, "%.*s", (int)lens[i], cand[i]);
        int d = edit_distance(key, name);
        if (d < best_d) {
            best = i, best_d = d, n_best = 1;
        } else if (d == best_d) {
            n_best++;
        }
    }
    char name[PATH_LEN];
    if (best >= 0 && n_best == 1) {
        snprintf(name, sizeof name, "%.*s", (int)lens[best], cand[best]);
        if (close_enough(key, name, best_d)) {
            char full[PATH_LEN];
            path_key(full, prefix, name);
            snprintf(hint, sizeof hint, " (did you mean '%s'?)", full);
        }
    }
    if (!hint[0] && !names) {
        const config_key *k = find_key(key);
        if (k && strchr(key, '.')) { /* a dotted key written flat in the file */
            const char *dot = strrchr(key, '.');
            snprintf(hint, sizeof hint, " (nest it: \"%.*s\": {\"%s\": ...})",
                     (int)(dot - key) > 32 ? 32 : (int)(dot - key), key, dot + 1);
        }
        for (int i = 0; !hint[0] && i < N_KEYS; i++) {
            const char *dot = strrchr(keys[i].name, '.');
            if (dot && strcmp(dot + 1, key) == 0 && strcmp(keys[i].name, path) != 0)
                snprintf(hint, sizeof hint, " (did you mean '%s'?)", keys[i].name);
        }
    }
    return fail(err, CONFIG_EINVAL, "unknown key '%s'%s", path, hint);
}

/* ---- values ----------------------------------------------------------------------- */

/* v as an int64 when it is a JSON integer or an integral real within 2^53. */
static bool json_int(const json_t *v, int64_t *out) {
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= -INTEGRAL_REAL_MAX && d <= INTEGRAL_REAL_MAX && (double)(int64_t)d == d) {
            *out = (int64_t)d;
            return true;
        }
    }
    return false;
}

static bool valid_id(const char *s, size_t n) {
    if (n < 1 || n > CONFIG_ID_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* s is all decimal digits, 1..n_max of them */
static bool all_digits(const char *s, size_t n, size_t n_max) {
    if (n < 1 || n > n_max) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

/* Split "HOST:PORT" / "[IPV6]:PORT" into host (no brackets, < CONFIG_LISTEN_SIZE bytes)
 * and port.  Returns NULL, or why not.  Names are not resolved here (the listener does);
 * they only have to be made of host name characters, and dotted digits an IPv4 address. */
static const char *parse_listen(const char *s, char *host, int *port) {
    size_t n = strlen(s);
    if (n >= CONFIG_LISTEN_SIZE) return "too long";
    const char *colon, *h = s;
    size_t hn;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close) return "no ']' after the IPv6 address";
        if (close[1] != ':') return "no ':PORT' after ']'";
        colon = close + 1;
        h = s + 1;
        hn = (size_t)(close - h);
        char addr[CONFIG_LISTEN_SIZE];
        memcpy(addr, h, hn);
        addr[hn] = 0;
        char *zone = strchr(addr, '%'); /* fe80::1%eth0: a link-local address's interface */
        if (zone) {
            for (const char *z = zone + 1; *z; z++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
                            *z))
                    return "a bad interface name after '%'";
            if (!zone[1]) return "no interface name after '%'";
            *zone = 0;
        }
        struct in6_addr a6;
        if (inet_pton(AF_INET6, addr, &a6) != 1) return "not an IPv6 address in the brackets";
    } else {
        colon = strrchr(s, ':');
        if (!colon) return "no ':PORT'";
        hn = (size_t)(colon - s);
        if (memchr(s, ':', hn)) return "an IPv6 address goes in brackets, as in [::1]:8080";
        if (hn == 0) return "no HOST (0.0.0.0 listens on every interface)";
        if (hn > 253) return "the host name is longer than 253 bytes";
        bool dotted_digits = true;
        for (size_t i = 0; i < hn; i++) {
            char c = s[i];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_'))
                return "HOST has a character a host name cannot have";
            if (!((c >= '0' && c <= '9') || c == '.')) dotted_digits = false;
        }
        if (dotted_digits) {
            char addr[256];
            memcpy(addr, s, hn);
            addr[hn] = 0;
            struct in_addr a4;
            if (inet_pton(AF_INET, addr, &a4) != 1) return "HOST is not an IPv4 address";
        }
    }
    const char *p = colon + 1;
    if (!all_digits(p, strlen(p), 5) || atol(p) > 65535) return "PORT must be in [0, 65535]";
    memcpy(host, h, hn);
    host[hn] = 0;
    *port = (int)atol(p);
    return NULL;
}

static void streams_free(config_stream *s, int64_t n) {
    for (int64_t i = 0; s && i < n; i++) {
        free(s[i].source);
        free(s[i].query);
        free(s[i].previous_text);
    }
    free(s);
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* One entry of "streams" (path "streams[i]") into *s (zeroed by the caller). */
static int parse_stream(const json_t *o, const char *path, config_stream *s, char *err) {
    char p[PATH_LEN], got[SHOW_LEN + 16];
    if (!json_is_object(o)) {
        show(o, false, got, sizeof got);
        return fail(err, CONFIG_EINVAL,
                    "'%s' must be an object {id, source, query?, "
                    "previous_text?}, got %s",
                    path, got);
    }
    const char *key;
    json_t *v;
    bool has_id = false;
    json_object_foreach((json_t *)o, key, v) {
        int which = -1;
        for (int i = 0; stream_keys[i]; i++)
            if (strcmp(key, stream_keys[i]) == 0) which = i;
        if (which < 0) return unknown_key(path, key, stream_keys, err);
        path_key(p, path, key);
        size_t max = which == 0 ? CONFIG_ID_MAX : which == 1 ? SIZE_MAX : CONFIG_TEXT_MAX;
        if (!json_is_string(v) || json_string_length(v) > max ||
            (which == 1 && !json_string_length(v))) {
            if (which == 0 && json_is_string(v)) break; /* the pattern says it below */
            show(v, false, got, sizeof got);
            if (which == 1)
                return fail(err, CONFIG_EINVAL, "'%s' must be a non-empty string, got %s", p, got);
            return fail(err, CONFIG_EINVAL, "'%s' must be a string of at most %zu bytes, got %s", p,
                        max, got);
        }
        const char *str = json_string_value(v);
        size_t n = json_string_length(v);
        if (which == 0) {
            if (!valid_id(str, n)) break;
            memcpy(s->id, str, n);
            s->id[n] = 0;
            has_id = true;
            continue;
        }
        char **dst = which == 1 ? &s->source : which == 2 ? &s->query : &s->previous_text;
        if (!(*dst = dup_n(str, n))) return fail(err, CONFIG_ENOMEM, "out of memory");
    }
    json_t *id = json_object_get(o, "id");
    path_key(p, path, "id");
    if (!id) return fail(err, CONFIG_EINVAL, "'%s' is required", p);
    if (!has_id) {
        show(id, false, got, sizeof got);
        return fail(err, CONFIG_EINVAL, "'%s' %s must match [A-Za-z0-9_-]{1,64}", p, got);
    }
    path_key(p, path, "source");
    if (!s->source) return fail(err, CONFIG_EINVAL, "'%s' is required", p);
    return CONFIG_OK;
}

/* v (at path) as the streams of c: all or nothing. */
static int apply_streams(config *c, const json_t *v, const char *path, char *err) {
    const config_key *max = find_key("max_streams");
    if (!json_is_array(v)) return bad_value(find_key("streams"), path, v, err);
    size_t n = json_array_size(v);
    if (n > (size_t)max->max) /* before the quadratic id check; config_validate checks n */
        return fail(err, CONFIG_EINVAL,
                    "'%s' has %zu entries, more than 'max_streams' can be "
                    "(%.0f)",
                    path, n, max->max);
    config_stream *s = n ? calloc(n, sizeof *s) : NULL;
    if (n && !s) return fail(err, CONFIG_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char p[PATH_LEN];
        path_index(p, path, i);
        int rc = parse_stream(json_array_get(v, i), p, &s[i], err);
        for (size_t j = 0; rc == 0 && j < i; j++) {
            if (strcmp(s[j].id, s[i].id) != 0) continue;
            char pj[PATH_LEN];
            path_index(pj, path, j);
            rc = fail(err, CONFIG_EINVAL, "'%s.id' \"%s\" is already the id of '%s'", p, s[i].id,
                      pj);
        }
        if (rc) {
            streams_free(s, (int64_t)n);
            return rc;
        }
    }
    streams_free(c->streams, c->n_streams);
    c->streams = s;
    c->n_streams = (int64_t)n;
    return CONFIG_OK;
}

/* The JSON value v (at path) as key k of c; c is unchanged on failure. */
static int apply_json(config *c, const config_key *k, const char *path, const json_t *v,
                      char *err) {
    switch (k->type) {
    case T_INT: {
        int64_t x;
        if (!json_int(v, &x) || x < (int64_t)k->min || x > (int64_t)k->max)
            return bad_value(k, path, v, err);
        *AT(c, k, int64_t) = x;
        return CONFIG_OK;
    }
    case T_NUMBER: {
        double d = json_is_number(v) ? json_number_value(v) : NAN;
        if (!(d >= k->min && d <= k->max)) return bad_value(k, path, v, err);
        *AT(c, k, double) = d;
        return CONFIG_OK;
    }
    case T_ENUM: {
        const char *s = json_string_value(v);
        for (int i = 0; s && k->names[i]; i++) {
            if (strcmp(s, k->names[i]) != 0) continue;
            *AT(c, k, int) = i;
            return CONFIG_OK;
        }
        return bad_value(k, path, v, err);
    }
    case T_BOOL:
        if (!json_is_boolean(v)) return bad_value(k, path, v, err);
        *AT(c, k, bool) = json_is_true(v);
        return CONFIG_OK;
    case T_STRING:
    case T_TOKEN: {
        size_t n = json_string_length(v);
        if (!json_is_string(v) || n < (size_t)k->min || n >= k->size)
            return bad_value(k, path, v, err);
        const char *s = json_string_value(v);
        for (size_t i = 0; k->type == T_TOKEN && i < n; i++)
            if (s[i] <= ' ' || s[i] > '~')
                return fail(err, CONFIG_EINVAL,
                            "'%s' must be printable ASCII without spaces (byte %zu is not)", path,
                            i);
        memcpy(AT(c, k, char), s, n + 1);
        return CONFIG_OK;
    }
    case T_LISTEN: {
        if (!json_is_string(v)) return bad_value(k, path, v, err);
        char host[CONFIG_LISTEN_SIZE], got[SHOW_LEN + 16];
        int port;
        const char *why = parse_listen(json_string_value(v), host, &port);
        if (why) {
            show(v, false, got, sizeof got);
            return fail(err, CONFIG_EINVAL, "'%s' %s must be HOST:PORT or [IPV6]:PORT: %s", path,
                        got, why);
        }
        snprintf(c->listen, sizeof c->listen, "%s", json_string_value(v));
        memcpy(c->listen_host, host, sizeof host);
        c->listen_port = port;
        return CONFIG_OK;
    }
    case T_STREAMS:
        return apply_streams(c, v, path, err);
    }
    return fail(err, CONFIG_EINVAL, "'%s': no such type", path);
}

/* Every key of the object o, whose path is prefix ("" at the top), into c. */
static int apply_object(config *c, const json_t *o, const char *prefix, char *err) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        char path[PATH_LEN];
        path_key(path, prefix, key);
        const config_key *k = strchr(key, '.') ? NULL : find_key(path);
        int rc;
        if (k) {
            rc = apply_json(c, k, path, v, err);
        } else if (!strchr(key, '.') && first_in_group(path)) {
            if (!json_is_object(v)) {
                char got[SHOW_LEN + 16];
                show(v, false, got, sizeof got);
                return fail(err, CONFIG_EINVAL, "'%s' must be an object, got %s", path, got);
            }
            rc = apply_object(c, v, path, err);
        } else {
            rc = unknown_key(prefix, key, NULL, err);
        }
        if (rc) return rc;
    }
    return CONFIG_OK;
}

/* ---- public ----------------------------------------------------------------------- */

void config_init_defaults(config *c) {
    memset(c, 0, sizeof *c);
    /* the defaults are text in the table; config_defaults_valid (tests) checks that each
     * passes its own key's checks */
    for (int i = 0; i < N_KEYS; i++) {
        const config_key *k = &keys[i];
        switch (k->type) {
        case T_INT:
            *AT(c, k, int64_t) = strtoll(k->dflt, NULL, 10);
            break;
        case T_NUMBER:
            *AT(c, k, double) = strtod(k->dflt, NULL);
            break;
        case T_ENUM:
            for (int j = 0; k->names[j]; j++)
                if (strcmp(k->names[j], k->dflt) == 0) *AT(c, k, int) = j;
            break;
        case T_BOOL:
            *AT(c, k, bool) = strcmp(k->dflt, "true") == 0;
            break;
        case T_STRING:
        case T_TOKEN:
            snprintf(AT(c, k, char), k->size, "%s", k->dflt);
            break;
        case T_LISTEN:
            snprintf(c->listen, sizeof c->listen, "%s", k->dflt);
            if (parse_listen(k->dflt, c->listen_host, &c->listen_port)) c->listen_port = -1;
            break;
        case T_STREAMS: /* "[]" */
            break;
        }
    }
}

void config_deinit(config *c) {
    if (!c) return;
    streams_free(c->streams, c->n_streams);
    memset(c, 0, sizeof *c);
}

/* url starts with one of the schemes and has a HOST:PORT after it (webrtcbin's format). */
static bool ice_url_ok(const char *url, const char *scheme, const char *scheme2) {
    size_t n = strlen(scheme);
    if (strncmp(url, scheme, n) != 0) {
        if (!scheme2 || strncmp(url, scheme2, strlen(scheme2)) != 0) return false;
        n = strlen(scheme2);
    }
    const char *host = strrchr(url + n, '@');
    host = host ? host + 1 : url + n;
    const char *colon = strrchr(host, ':');
    if (!colon || colon == host) return false;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) return false;
    return all_digits(colon + 1, strlen(colon + 1), 5);
}

static int validate(const config *c, char *err) {
    if (c->n_streams > c->max_streams)
        return fail(err, CONFIG_EINVAL,
                    "'streams' has %" PRId64 " entries, more than "
                    "'max_streams' (%" PRId64 ")",
                    c->n_streams, c->max_streams);
    if (c->ingest.reconnect_max_s < c->ingest.reconnect_min_s)
        return fail(err, CONFIG_EINVAL,
                    "'ingest.reconnect_max_s' (%.15g) must be >= "
                    "'ingest.reconnect_min_s' (%.15g)",
                    c->ingest.reconnect_max_s, c->ingest.reconnect_min_s);
    if (c->whip.port_max && c->whip.port_max < c->whip.port_min)
        return fail(err, CONFIG_EINVAL,
                    "'whip.port_max' (%" PRId64 ") must be >= 'whip.port_min' (%" PRId64 ") or 0",
                    c->whip.port_max, c->whip.port_min);
    if (c->whip.stun_server[0] && !ice_url_ok(c->whip.stun_server, "stun://", NULL))
        return fail(err, CONFIG_EINVAL,
                    "'whip.stun_server' must be stun://HOST:PORT, got \"%.64s\"",
                    c->whip.stun_server);
    if (c->whip.turn_server[0] && !ice_url_ok(c->whip.turn_server, "turn://", "turns://"))
        return fail(err, CONFIG_EINVAL,
                    "'whip.turn_server' must be turn://USER:PASSWORD@HOST:PORT or turns://...");
    return CONFIG_OK;
}

int config_validate(const config *c, char *err) {
    return prefixed(err, validate(c, err), "config");
}

/* Parse s[0..n) over the defaults into *out (only on success). */
static int load(const char *s, size_t n, config *out, char *err) {
    if (!s) return fail(err, CONFIG_ESYNTAX, "not JSON: no input");
    json_error_t je;
    json_t *root = json_loadb(s, n, LOAD_FLAGS, &je);
    if (!root) {
        if (json_error_code(&je) == json_error_out_of_memory)
            return fail(err, CONFIG_ENOMEM, "out of memory");
        return fail(err, CONFIG_ESYNTAX, "not JSON: %s (line %d, column %d)", je.text, je.line,
                    je.column);
    }
    if (!json_is_object(root)) {
        char got[SHOW_LEN + 16];
        show(root, false, got, sizeof got);
        json_decref(root);
        return fail(err, CONFIG_EINVAL, "must be a JSON object, got %s", got);
    }
    config c;
    config_init_defaults(&c);
    int rc = apply_object(&c, root, "", err);
    if (rc == 0) rc = validate(&c, err);
    json_decref(root);
    if (rc) {
        config_deinit(&c);
        return rc;
    }
    *out = c;
    return CONFIG_OK;
}

int config_load_string(const char *json, config *out, char *err) {
    return prefixed(err, load(json, json ? strlen(json) : 0, out, err), "config");
}

/* The whole of the file at path (pipes too) into *buf (malloc'd), *n its size. */
static int read_all(const char *path, char **buf, size_t *n, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, CONFIG_EIO, "cannot open: %s", strerror(errno));
    size_t cap = 4096, len = 0;
    char *b = malloc(cap);
    int rc = b ? CONFIG_OK : fail(err, CONFIG_ENOMEM, "out of memory");
    while (rc == 0) {
        if (len == cap) {
            if (cap >= FILE_MAX) {
                rc = fail(err, CONFIG_EIO, "larger than %zu MiB", FILE_MAX >> 20);
                break;
            }
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                rc = fail(err, CONFIG_ENOMEM, "out of memory");
                break;
            }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + len, 1, cap - len, f);
        len += got;
        if (got == 0 && ferror(f)) rc = fail(err, CONFIG_EIO, "cannot read: %s", strerror(errno));
        if (got == 0) break;
    }
    fclose(f);
    if (rc) {
        free(b);
        return rc;
    }
    *buf = b;
    *n = len;
    return CONFIG_OK;
}

int config_load_file(const char *path, config *out, char *err) {
    if (!path) return prefixed(err, fail(err, CONFIG_EIO, "no file name"), "config");
    char *buf = NULL;
    size_t n = 0;
    int rc = read_all(path, &buf, &n, err);
    if (rc == 0) rc = load(buf, n, out, err);
    free(buf);
    return prefixed(err, rc, path);
}

/* Strict decimal integer: optional '-', digits, nothing else. */
static bool parse_int(const char *s, int64_t *out) {
    const char *d = s[0] == '-' || s[0] == '+' ? s + 1 : s;
    if (!all_digits(d, strlen(d), 19)) return false;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno) return false;
    *out = v;
    return true;
}

/* A finite decimal number (no hex, inf or nan). */
static bool parse_number(const char *s, double *out) {
    if (!*s || strspn(s, "0123456789+-.eE") != strlen(s)) return false;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(d)) return false;
    *out = d;
    return true;
}

static int set(config *c, const char *key, const char *value, char *err) {
    if (!key || !value) return fail(err, CONFIG_EINVAL, "no key or no value");
    char path[PATH_LEN];
    path_key(path, "", key);
    const config_key *k = find_key(key);
    if (!k) {
        const config_key *m = first_in_group(key);
        if (m)
            return fail(err, CONFIG_EINVAL,
                        "'%s' is a group of keys: set one of them, as in "
                        "'%s'",
                        path, m->name);
        const char *dot = strrchr(key, '.');
        char prefix[PATH_LEN] = "";
        if (dot) snprintf(prefix, sizeof prefix, "%.*s", (int)(dot - key), key);
        return unknown_key(prefix, dot ? dot + 1 : key, NULL, err);
    }
    json_t *v = NULL;
    int64_t i;
    double d;
    if (k->type == T_INT && parse_int(value, &i)) {
        v = json_integer(i);
    } else if (k->type == T_NUMBER && parse_number(value, &d)) {
        v = json_real(d);
    } else if (k->type == T_BOOL && (!strcmp(value, "true") || !strcmp(value, "false"))) {
        v = json_boolean(value[0] == 't');
    } else if (k->type == T_STREAMS) {
        json_error_t je;
        v = json_loads(value, LOAD_FLAGS, &je);
        if (!v && json_error_code(&je) != json_error_out_of_memory)
            return fail(err, CONFIG_EINVAL, "'%s' must be a JSON array: %s (column %d)", path,
                        je.text, je.column);
    } else {
        v = json_string(value);
        json_t *probe = v ? NULL : json_string(""); /* NULL again: out of memory */
        if (probe) {
            json_decref(probe);
            return fail(err, CONFIG_EINVAL, "'%s' is not valid UTF-8", path);
        }
    }
    if (!v) return fail(err, CONFIG_ENOMEM, "out of memory");
    int rc = apply_json(c, k, path, v, err);
    json_decref(v);
    return rc;
}

int config_set(config *c, const char *key, const char *value, char *err) {
    return prefixed(err, set(c, key, value, err), "config");
}

/* ---- compare, print, help ---------------------------------------------------------- */

static bool str_eq(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool key_equal(const config_key *k, const config *a, const config *b) {
    switch (k->type) {
    case T_INT:
        return *AT_CONST(a, k, int64_t) == *AT_CONST(b, k, int64_t);
    case T_NUMBER:
        return *AT_CONST(a, k, double) == *AT_CONST(b, k, double);
    case T_ENUM:
        return *AT_CONST(a, k, int) == *AT_CONST(b, k, int);
    case T_BOOL:
        return *AT_CONST(a, k, bool) == *AT_CONST(b, k, bool);
    case T_STRING:
    case T_TOKEN:
        return strcmp(AT_CONST(a, k, char), AT_CONST(b, k, char)) == 0;
    case T_LISTEN: /* the address, not its spelling ("0.0.0.0:08080") */
        return strcmp(a->listen_host, b->listen_host) == 0 && a->listen_port == b->listen_port;
    case T_STREAMS:
        if (a->n_streams != b->n_streams) return false;
        for (int64_t i = 0; i < a->n_streams; i++) {
            const config_stream *x = &a->streams[i], *y = &b->streams[i];
            if (strcmp(x->id, y->id) || !str_eq(x->source, y->source) ||
                !str_eq(x->query, y->query) || !str_eq(x->previous_text, y->previous_text))
                return false;
        }
        return true;
    }
    return false;
}

bool config_changed(const config *a, const config *b, const char *key) {
    if (!key) return false;
    size_t n = strlen(key);
    for (int i = 0; i < N_KEYS; i++) {
        const char *name = keys[i].name;
        bool in = strcmp(name, key) == 0 || (strncmp(name, key, n) == 0 && name[n] == '.');
        if (in && !key_equal(&keys[i], a, b)) return true;
    }
    return false;
}

int config_reload_check(const config *old, const config *neu, char *err) {
    for (int i = 0; i < N_KEYS; i++) {
        const config_key *k = &keys[i];
        if (k->reloadable || key_equal(k, old, neu)) continue;
        return prefixed(err,
                        fail(err, CONFIG_ENORELOAD,
                             "'%s' changed, and it cannot change on "
                             "reload (restart commentaryd to apply it)",
                             k->name),
                        "config");
    }
    return CONFIG_OK;
}

/* Key k of c as JSON (a new reference; NULL when out of memory). */
static json_t *key_json(const config_key *k, const config *c) {
    switch (k->type) {
    case T_INT:
        return json_integer(*AT_CONST(c, k, int64_t));
    case T_NUMBER:
        return json_real(*AT_CONST(c, k, double));
    case T_ENUM: {
        int v = *AT_CONST(c, k, int);
        int n = 0;
        while (k->names[n])
            n++;
        return json_string(v >= 0 && v < n ? k->names[v] : "?");
    }
    case T_BOOL:
        return json_boolean(*AT_CONST(c, k, bool));
    case T_STRING:
    case T_TOKEN: {
        const char *s = AT_CONST(c, k, char);
        return json_string(k->secret && *s ? "***" : s);
    }
    case T_LISTEN:
        return json_string(c->listen);
    case T_STREAMS: {
        json_t *a = json_array();
        for (int64_t i = 0; a && i < c->n_streams; i++) {
            const config_stream *s = &c->streams[i];
            json_t *o = json_object();
            json_object_set_new(o, "id", json_string(s->id));
            char *shown = config_mask_source(s->source ? s->source : "");
            json_object_set_new(o, "source", json_string(shown ? shown : ""));
            free(shown);
            if (s->query) json_object_set_new(o, "query", json_string(s->query));
            if (s->previous_text)
                json_object_set_new(o, "previous_text", json_string(s->previous_text));
            json_array_append_new(a, o);
        }
        return a;
    }
    }
    return NULL;
}

/* Length of "KEY=" at p when KEY is a secret's name (any case) and p starts a key
 * (after a separator), else 0. */
static size_t secret_key(const char *src, const char *p) {
    static const char *const names[] = {"passphrase", "password", "passwd", "pass", "pwd",
                                        "token", "secret", "signature", "sig", "key", "auth"};
    if (p > src && !strchr("?&/;:, (_-", p[-1])) return 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n = strlen(names[i]);
        if (!strncasecmp(p, names[i], n) && p[n] == '=') return n + 1;
    }
    return 0;
}

/* Whether the URL scheme that ends at sep ("://") in src is rtmp, rtmps, rtmpt, ... */
static bool is_rtmp_scheme(const char *src, const char *sep) {
    const char *b = sep;
    while (b > src && (isalnum((unsigned char)b[-1]) || b[-1] == '+' || b[-1] == '.' ||
                       b[-1] == '-'))
        b--;
    return sep - b >= 4 && !strncasecmp(b, "rtmp", 4);
}

char *config_mask_source(const char *src) {
    /* every mask replaces what follows at least two input bytes (":…@", "k=") by "***" */
    size_t n = strlen(src), o = 0;
    char *out = malloc(3 * n + 4);
    if (!out) return NULL;
    for (const char *p = src; *p;) {
        size_t k;
        if (!strncmp(p, "://", 3)) {
            /* a URL: user:password@ in its authority (up to / ? #), or, when the password
             * holds one of those unencoded, before the URL's first '@' */
            const char *sep = p, *a = p + 3, *url_end = a + strcspn(a, " \t\r\n,;()<>\"'");
            const char *auth_end = a + strcspn(a, "/?#"), *at = NULL;
            if (auth_end > url_end) auth_end = url_end;
            for (const char *q = a; q < auth_end; q++)
                if (*q == '@') at = q;
            if (!at) at = memchr(a, '@', (size_t)(url_end - a));
            const char *colon = at ? memchr(a, ':', (size_t)(at - a)) : NULL;
            memcpy(out + o, p, 3);
            o += 3;
            p += 3;
            if (colon) {
                memcpy(out + o, a, (size_t)(colon + 1 - a));
                o += (size_t)(colon + 1 - a);
                memcpy(out + o, "***@", 4);
                o += 4;
                p = at + 1;
            }
            /* RTMP: rtmp://host/app/NAME, where NAME is the stream key, as secret as a
             * password (an encoder's key lets anyone publish as the channel) */
            const char *host_end = p + strcspn(p, "/?#"), *app_end;
            if (is_rtmp_scheme(src, sep) &&
                host_end < url_end && *host_end == '/' &&
                (app_end = host_end + 1 + strcspn(host_end + 1, "/?#")) + 1 < url_end &&
                *app_end == '/') {
                memcpy(out + o, p, (size_t)(app_end + 1 - p));
                o += (size_t)(app_end + 1 - p);
                memcpy(out + o, "***", 3);
                o += 3;
                p = url_end;
            }
        } else if ((k = secret_key(src, p)) > 0) { /* passphrase=, password=, token=, ... */
            memcpy(out + o, p, k);
            o += k;
            memcpy(out + o, "***", 3);
            o += 3;
            p += k + strcspn(p + k, "&#/;, \t\r\n)");
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = 0;
    return out;
}

void config_print(const config *c, FILE *f) {
    json_t *root = json_object();
    for (int i = 0; root && i < N_KEYS; i++) {
        const config_key *k = &keys[i];
        json_t *parent = root;
        const char *name = k->name, *dot;
        while ((dot = strchr(name, '.'))) { /* the nested objects, made on first use */
            char group[PATH_LEN];
            snprintf(group, sizeof group, "%.*s", (int)(dot - name), name);
            json_t *g = json_object_get(parent, group);
            if (!g) json_object_set_new(parent, group, g = json_object());
            parent = g;
            name = dot + 1;
        }
        json_object_set_new(parent, name, key_json(k, c));
    }
    if (root && json_dumpf(root, f, PRINT_FLAGS) == 0) fputc('\n', f);
    json_decref(root);
}

/* The type column of config_help. */
static void type_text(const config_key *k, char *buf, size_t cap) {
    switch (k->type) {
    case T_INT:
        snprintf(buf, cap, "int %.0f..%.0f", k->min, k->max);
        break;
    case T_NUMBER:
        snprintf(buf, cap, "number %.15g..%.15g", k->min, k->max);
        break;
    case T_ENUM: {
        size_t n = 0;
        buf[0] = 0;
        for (int i = 0; k->names[i] && n < cap; i++)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "|" : "", k->names[i]);
        break;
    }
    case T_BOOL:
        snprintf(buf, cap, "bool");
        break;
    case T_STRING:
    case T_TOKEN:
        snprintf(buf, cap, "string");
        break;
    case T_LISTEN:
        snprintf(buf, cap, "HOST:PORT");
        break;
    case T_STREAMS:
        snprintf(buf, cap, "array");
        break;
    }
}

void config_help(FILE *f) {
    int w_name = 3, w_type = 4, w_dflt = 7;
    char type[64], dflt[64];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            fprintf(f, "%-*s  %-*s  %-*s  %-6s  %s\n", w_name, "key", w_type, "type", w_dflt,
                    "default", "reload", "meaning");
        for (int i = 0; i < N_KEYS; i++) {
            const config_key *k = &keys[i];
            type_text(k, type, sizeof type);
            bool quoted = k->type == T_STRING || k->type == T_TOKEN || k->type == T_ENUM ||
                          k->type == T_LISTEN;
            snprintf(dflt, sizeof dflt, quoted ? "\"%s\"" : "%s", k->dflt);
            int ln = (int)strlen(k->name), lt = (int)strlen(type), ld = (int)strlen(dflt);
            if (pass == 0) {
                w_name = ln > w_name ? ln : w_name;
                w_type = lt > w_type ? lt : w_type;
                w_dflt = ld > w_dflt ? ld : w_dflt;
                continue;
            }
            fprintf(f, "%-*s  %-*s  %-*s  %-6s  %s\n", w_name, k->name, w_type, type, w_dflt, dflt,
                    k->reloadable ? "yes" : "no", k->help);
        }
    }
}
