/* config.h — commentaryd's configuration: a JSON file, CLI overrides, printing, reload.
 *
 * One table in config.c describes every key (dotted name, type, field offset, default,
 * min/max, reloadable, secret, help), as redis' standardConfig and nginx' ngx_command_t
 * do; the same table drives defaults, parsing, the error messages, config_set,
 * config_print, config_help and the reload check, so they cannot disagree.
 *
 * The file is one JSON object; "policy", "ws", "ingest" and "whip" are nested objects whose keys
 * are named with dots here ("policy.text_rounds").  Every key is optional (absent keys keep
 * their default).  Loading rejects, with the JSON path of the key in err:
 *     config: 'policy.text_rounds' must be an integer in [1, 4096], got 0
 *     config: 'streams[2].id' "a b" must match [A-Za-z0-9_-]{1,64}
 *     config: unknown key 'polcy' (did you mean 'policy'?)
 *     commentaryd.json: not JSON: '}' expected near ']' (line 3, column 5)
 * (messages from config_load_file name the file instead of "config").  Also rejected:
 * duplicate keys, dotted keys at the top ("ws.queue": write it nested), and the
 * cross-checks of config_validate.  Integer keys accept integral reals (16.0).
 *
 * Ownership: a config owns its streams array and the strings in it; everything else is
 * inline (fixed char arrays), so scalar fields can be read freely.  Free with
 * config_deinit.  Functions that fill a config (load) write it only on success.
 *
 * Thread: any; no global state (the daemon keeps its config on the loop thread).
 * Not for: applying the config (the daemon does), the wire protocol (proto/).
 */
#ifndef SERVER_CONFIG_H
#define SERVER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

#define CONFIG_ERR_LEN 256     /* size of every err buffer */
#define CONFIG_LISTEN_SIZE 272 /* "[...]:65535" with a 253-byte host, and its NUL */
#define CONFIG_PATH_SIZE 4096  /* model path (PATH_MAX) and its NUL */
#define CONFIG_TOKEN_MAX 255   /* bearer token: printable ASCII, no spaces */
#define CONFIG_ID_MAX 64       /* stream ids: 1..64 characters of [A-Za-z0-9_-] */
#define CONFIG_TEXT_MAX 65536  /* bytes of a stream's query and previous_text (a sanity bound: the
                                * engine's limits are in tokens, checked as the stream starts) */
#define CONFIG_URL_SIZE 512    /* whip.stun_server, whip.turn_server and their NUL */

#define CONFIG_ERRNO_MAP(X)                                                                        \
    X(EINVAL, -1, "invalid config")                                                                \
    X(ESYNTAX, -2, "config is not JSON")                                                           \
    X(EIO, -3, "cannot read the config file")                                                      \
    X(ENOMEM, -4, "out of memory")                                                                 \
    X(ENORELOAD, -5, "a changed key needs a restart")

enum {
    CONFIG_OK = 0,
#define CONFIG_ERR_ENUM_(name, code, msg) CONFIG_##name = code,
    CONFIG_ERRNO_MAP(CONFIG_ERR_ENUM_)
#undef CONFIG_ERR_ENUM_
};

/* The text of an error code ("unknown error" for codes outside the table).  Runs on: any. */
const char *config_strerror(int err);

typedef enum config_backend {
    CONFIG_BACKEND_CPU = 0,
    CONFIG_BACKEND_CUDA = 1,
    CONFIG_BACKEND_AUTO = 2, /* CUDA when a GPU is usable, else CPU */
} config_backend;

/* "cpu", "cuda", "auto"; NULL outside the enum.  Runs on: any. */
const char *config_backend_name(config_backend b);

/* A stream started at boot (and kept in step with the file on reload). */
typedef struct config_stream {
    char id[CONFIG_ID_MAX + 1]; /* [A-Za-z0-9_-]{1,64}, unique in the config */
    char *source;               /* owned, non-empty: rtsp://, srt://, file://, test:, ... */
    char *query;                /* owned; NULL when absent (the default prompt) */
    char *previous_text;        /* owned; NULL when absent */
} config_stream;

/* StreamingVLM's KV policy (docs/streamingvlm-spec.md); names as in the paper. */
typedef struct config_policy {
    int64_t vision_window;  /* V: chunks of vision tokens kept */
    int64_t text_rounds;    /* T: rounds of commentary text kept */
    int64_t prev_sink;      /* S: previous-text sink tokens */
    int64_t prev_window;    /* W: previous-text window tokens */
    int64_t max_new_tokens; /* M: tokens generated per chunk at most */
} config_policy;

typedef struct config_ws {
    int64_t queue;             /* messages queued per client before it is "slow" */
    double slow_close_s;       /* a client slow for this long is closed */
    int64_t max_message_bytes; /* largest accepted client message */
    int64_t ping_s;            /* idle seconds before a ping; no answer in as many: closed */
} config_ws;

typedef struct config_ingest {
    double reconnect_min_s; /* first reconnect delay */
    double reconnect_max_s; /* cap of the exponential backoff; >= reconnect_min_s */
    int64_t latency_ms;     /* jitter buffer for RTSP/SRT */
    double stall_timeout_s; /* no frame for this long: a live source is rebuilt */
} config_ingest;

/* WHIP ingest (WebRTC publishers such as OBS): ICE servers, the UDP ports its ICE agents
 * use, and whether a publisher may create its stream. */
typedef struct config_whip {
    char stun_server[CONFIG_URL_SIZE]; /* "stun://HOST:PORT" or "" (none) */
    char turn_server[CONFIG_URL_SIZE]; /* "turn(s)://USER:PASS@HOST:PORT" or "" (secret) */
    int64_t port_min, port_max;        /* UDP port range of the ICE agents; 0, 0: any */
    bool allow_create;                 /* POST /v1/whip/ID may create stream ID */
} config_whip;

typedef struct config {
    char listen[CONFIG_LISTEN_SIZE];      /* "HOST:PORT" or "[V6]:PORT", as written */
    char listen_host[CONFIG_LISTEN_SIZE]; /* HOST without brackets: "127.0.0.1", "::1" */
    int listen_port;                      /* 0..65535; 0: any free port */
    char model[CONFIG_PATH_SIZE];         /* Hugging Face model directory, non-empty */
    config_backend backend;
    int64_t threads;                  /* engine CPU threads; 0: all cores */
    int64_t batch;                    /* most streams decoded in one forward */
    int64_t batch_prefill_tokens;     /* most prefill tokens in one batched forward */
    char token[CONFIG_TOKEN_MAX + 1]; /* bearer token; "": no authentication */
    log_level log_level;
    int64_t max_streams;
    int64_t history; /* events kept per stream for ?since= resume */
    config_policy policy;
    config_ws ws;
    config_ingest ingest;
    config_whip whip;
    config_stream *streams; /* owned, n_streams of them (NULL when 0) */
    int64_t n_streams;      /* <= max_streams */
} config;

/* Fill c with the defaults (no streams).  c's previous contents are not freed.
 * Runs on: any. */
void config_init_defaults(config *c);

/* Free c's streams and zero c (a second deinit is a no-op).  Runs on: any. */
void config_deinit(config *c);

/* Parse the JSON text json over the defaults and validate it (config_validate included).
 * On success *out is a new config (the caller deinits it; its previous contents are not
 * freed); on failure *out is untouched and err says why.  Returns 0, CONFIG_ESYNTAX
 * (not JSON: err gives line and column), CONFIG_EINVAL (a bad key or value: err gives its
 * JSON path) or CONFIG_ENOMEM.  Runs on: any. */
int config_load_string(const char *json, config *out, char *err);

/* config_load_string on the contents of the file at path; err names the file.  Also
 * CONFIG_EIO (cannot read it).  Runs on: any. */
int config_load_file(const char *path, config *out, char *err);

/* Set one key from text, as the CLI does (`--set policy.max_new_tokens=10`): value is
 * parsed by the key's type (integers in decimal, numbers as strtod, enums by name,
 * strings as is, "streams" as a JSON array).  The key is checked alone: run
 * config_validate after the last override.  On failure c is unchanged.  Returns 0,
 * CONFIG_EINVAL (unknown key or bad value) or CONFIG_ENOMEM.  Runs on: any. */
int config_set(config *c, const char *key, const char *value, char *err);

/* The checks that span keys: streams <= max_streams, reconnect_max_s >= reconnect_min_s,
 * whip.port_max >= whip.port_min (unless both are 0), and the ICE server URLs' schemes.
 * Returns 0 or CONFIG_EINVAL.  Runs on: any. */
int config_validate(const config *c, char *err);

/* Write the effective config as JSON (every key, nested like the file, two-space indent,
 * then a newline), secret keys that are set and the passwords in stream sources written
 * "***".  The output loads back to an equal config, secrets apart.  Runs on: any. */
void config_print(const config *c, FILE *f);

/* A copy of a stream source, or of a message quoting URLs (malloc'd; NULL when out of
 * memory), with its secrets written "***": the password of every
 * scheme://user:password@host (also one holding an unencoded / ? or #), and the value of
 * every passphrase=, password=, pass=, pwd=, token=, secret=, key=, sig=, signature=,
 * auth= (any case).  What logs, listings, events and --print-config show.  Runs on:
 * any. */
char *config_mask_source(const char *src);

/* For SIGHUP reload: 0 when every key that differs between old and neu is reloadable;
 * otherwise CONFIG_ENORELOAD and err names the first (table order) non-reloadable key that
 * changed, e.g. "config: 'model' changed, and it cannot change on reload (restart
 * commentaryd to apply it)".  Runs on: any. */
int config_reload_check(const config *old, const config *neu, char *err);

/* Whether key (a dotted name: "token", "ws.queue", "streams") differs between a and b.
 * false for a name that is not a key.  Runs on: any. */
bool config_changed(const config *a, const config *b, const char *key);

/* Print the table for --help and the README: per key its name, type and range, default,
 * whether reload applies it, and what it means.  Runs on: any. */
void config_help(FILE *f);

#endif
