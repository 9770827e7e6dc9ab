/* test-server-config.c — the daemon's config (server/config.c) and log (server/log.c).
 *
 * Config: the defaults, the shipped files under config/, a table of bad values per key
 * (wrong type, out of range, bad enum, bad listen, bad streams, unknown keys, the
 * cross-checks), each rejected with the JSON path of the key in the message, malformed
 * JSON with line and column, config_set overrides, printing (secrets masked, round trip),
 * the reload check and config_changed, --help.  Log: level names, the line format on a
 * plain stderr and under systemd's journal stream, the level filter.
 *
 * Runs from the repo root (tests/run.sh cds there).  Static helpers are tested by
 * including the .c files.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "../server/config.c"
#include "../server/log.c"
#include "test.h"

/* ---- helpers ---------------------------------------------------------------------- */

/* Load json, expecting rc, and return the message (static). */
static const char *load_err(const char *json, int want_rc) {
    static char err[CONFIG_ERR_LEN];
    config c;
    memset(&c, 0x5a, sizeof c);
    err[0] = 0;
    int rc = config_load_string(json, &c, err);
    ASSERT_MSG(rc == want_rc, "%s: rc %d (%s), want %d", json, rc, err, want_rc);
    /* on failure the output is untouched */
    for (size_t i = 0; i < sizeof c; i++)
        ASSERT_MSG(((unsigned char *)&c)[i] == 0x5a, "%s: out written on failure", json);
    ASSERT_MSG(strlen(err) < CONFIG_ERR_LEN, "message too long");
    return err;
}

typedef struct bad_case {
    const char *json;
    const char *want; /* a substring of the message (the JSON path, at least) */
} bad_case;

static void check_bad(const bad_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const char *err = load_err(cases[i].json, CONFIG_EINVAL);
        ASSERT_CONTAINS(err, "config: ");
        ASSERT_CONTAINS(err, cases[i].want);
    }
}
#define CHECK_BAD(cases) check_bad(cases, sizeof cases / sizeof cases[0])

static char *read_whole(FILE *f) {
    fflush(f);
    long n = ftell(f);
    ASSERT(n >= 0);
    char *s = calloc(1, (size_t)n + 1);
    rewind(f);
    ASSERT(fread(s, 1, (size_t)n, f) == (size_t)n);
    return s;
}

/* What config_print writes for c. */
static char *print_to_string(const config *c) {
    FILE *f = tmpfile();
    ASSERT(f);
    config_print(c, f);
    char *s = read_whole(f);
    fclose(f);
    return s;
}

static void assert_all_equal(const config *a, const config *b) {
    for (int i = 0; i < N_KEYS; i++)
        ASSERT_MSG(!config_changed(a, b, keys[i].name), "'%s' differs", keys[i].name);
    ASSERT_EQ_INT(config_reload_check(a, b, NULL), 0);
}

/* ---- config: defaults and shipped files ------------------------------------------- */

static void test_config_defaults(void) {
    config c;
    config_init_defaults(&c);
    ASSERT_EQ_STR(c.listen, "127.0.0.1:8080");
    ASSERT_EQ_STR(c.listen_host, "127.0.0.1");
    ASSERT_EQ_INT(c.listen_port, 8080);
    ASSERT_EQ_STR(c.model, "models/default");
    ASSERT_EQ_INT(c.backend, CONFIG_BACKEND_AUTO);
    ASSERT_EQ_STR(config_backend_name(c.backend), "auto");
    ASSERT_EQ_INT(c.threads, 0);
    ASSERT_EQ_INT(c.batch, 8);
    ASSERT_EQ_STR(c.token, "");
    ASSERT_EQ_INT(c.log_level, LOG_LEVEL_INFO);
    ASSERT_EQ_INT(c.max_streams, 16);
    ASSERT_EQ_INT(c.history, 256);
    ASSERT_EQ_INT(c.policy.vision_window, 16);
    ASSERT_EQ_INT(c.policy.text_rounds, 16);
    ASSERT_EQ_INT(c.policy.prev_sink, 512);
    ASSERT_EQ_INT(c.policy.prev_window, 512);
    ASSERT_EQ_INT(c.policy.max_new_tokens, 20);
    ASSERT_EQ_INT(c.ws.queue, 64);
    ASSERT_NEAR(c.ws.slow_close_s, 10, 0);
    ASSERT_EQ_INT(c.ws.max_message_bytes, 4096);
    ASSERT_EQ_INT(c.ws.ping_s, 30);
    ASSERT_NEAR(c.ingest.reconnect_min_s, 1, 0);
    ASSERT_NEAR(c.ingest.reconnect_max_s, 30, 0);
    ASSERT_EQ_INT(c.ingest.latency_ms, 200);
    ASSERT_NEAR(c.ingest.stall_timeout_s, 10, 0);
    ASSERT_EQ_STR(c.whip.stun_server, "");
    ASSERT_EQ_STR(c.whip.turn_server, "");
    ASSERT_EQ_INT(c.whip.port_min, 0);
    ASSERT_EQ_INT(c.whip.port_max, 0);
    ASSERT(c.whip.allow_create);
    ASSERT(c.streams == NULL);
    ASSERT_EQ_INT(c.n_streams, 0);
    ASSERT_EQ_INT(config_validate(&c, NULL), 0);

    /* "{}" is the defaults */
    config d;
    char err[CONFIG_ERR_LEN];
    ASSERT_MSG(config_load_string("{}", &d, err) == 0, "%s", err);
    assert_all_equal(&c, &d);
    config_deinit(&d);
    config_deinit(&c);
    config_deinit(&c); /* a second deinit is a no-op */
}

/* Every default passes its own key's checks (the table's text defaults are not checked
 * at init), and each key's min and max are accepted. */
static void test_config_defaults_valid(void) {
    char err[CONFIG_ERR_LEN];
    for (int i = 0; i < N_KEYS; i++) {
        const config_key *k = &keys[i];
        config c;
        config_init_defaults(&c);
        ASSERT_MSG(config_set(&c, k->name, k->dflt, err) == 0, "default of %s: %s", k->name, err);
        config d;
        config_init_defaults(&d);
        ASSERT_MSG(!config_changed(&c, &d, k->name), "'%s': init differs from its default",
                   k->name);
        if (k->type == T_INT || k->type == T_NUMBER) {
            char v[64];
            snprintf(v, sizeof v, "%.15g", k->min);
            ASSERT_MSG(config_set(&c, k->name, v, err) == 0, "%s=%s: %s", k->name, v, err);
            snprintf(v, sizeof v, "%.15g", k->max);
            ASSERT_MSG(config_set(&c, k->name, v, err) == 0, "%s=%s: %s", k->name, v, err);
        }
        ASSERT(k->help && *k->help);
        ASSERT(strchr(k->name, '.') == strrchr(k->name, '.')); /* one level of nesting */
        config_deinit(&c);
        config_deinit(&d);
    }
}

static void test_config_shipped_file_loads(void) {
    config c, d;
    char err[CONFIG_ERR_LEN];
    ASSERT_MSG(config_load_file("config/commentaryd.json", &c, err) == 0, "%s", err);
    config_init_defaults(&d);
    /* every key written out at its default, except the demo stream */
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, "streams") != 0)
            ASSERT_MSG(!config_changed(&c, &d, keys[i].name), "'%s' is not the default",
                       keys[i].name);
    ASSERT_EQ_STR(c.listen_host, "127.0.0.1");
    ASSERT_EQ_INT(c.listen_port, 8080);
    ASSERT_EQ_STR(c.token, "");
    ASSERT_EQ_INT(c.n_streams, 1);
    ASSERT_EQ_STR(c.streams[0].id, "demo");
    ASSERT_EQ_STR(c.streams[0].source, "test:");
    ASSERT_EQ_STR(c.streams[0].query, "Describe what happens on screen.");
    ASSERT(c.streams[0].previous_text == NULL);

    /* "every other key written out": the file has every key of the table */
    FILE *f = fopen("config/commentaryd.json", "r");
    ASSERT(f);
    fseek(f, 0, SEEK_END);
    char *text = read_whole(f);
    fclose(f);
    for (int i = 0; i < N_KEYS; i++) {
        const char *leaf = strrchr(keys[i].name, '.');
        char quoted[80];
        snprintf(quoted, sizeof quoted, "\"%s\"", leaf ? leaf + 1 : keys[i].name);
        ASSERT_CONTAINS(text, quoted);
    }
    free(text);
    config_deinit(&c);
    config_deinit(&d);
}

static void test_config_example_file_loads(void) {
    config c;
    char err[CONFIG_ERR_LEN];
    ASSERT_MSG(config_load_file("config/example-cameras.json", &c, err) == 0, "%s", err);
    ASSERT(c.token[0]);
    ASSERT_EQ_INT(c.n_streams, 2);
    ASSERT(strncmp(c.streams[0].source, "rtsp://", 7) == 0);
    ASSERT(strncmp(c.streams[1].source, "srt://", 6) == 0);
    ASSERT(c.ingest.reconnect_max_s >= c.ingest.reconnect_min_s);
    config_deinit(&c);
}

/* ---- config: bad values ----------------------------------------------------------- */

static void test_config_rejects_wrong_types(void) {
    static const bad_case cases[] = {
        {"{\"listen\": 8080}",
         "'listen' must be a string \"HOST:PORT\" or \"[IPV6]:PORT\", got 8080"},
        {"{\"model\": null}", "'model' must be a non-empty string of at most 4095 bytes, got null"},
        {"{\"backend\": 1}", "'backend' must be one of cpu, cuda, auto, got 1"},
        {"{\"threads\": \"4\"}", "'threads' must be an integer in [0, 256], got \"4\""},
        {"{\"threads\": 1.5}", "'threads' must be an integer in [0, 256], got 1.5"},
        {"{\"threads\": true}", "'threads' must be an integer in [0, 256], got true"},
        {"{\"token\": 42}", "'token' must be a string of at most 255 printable ASCII characters"},
        {"{\"log_level\": [\"info\"]}",
         "'log_level' must be one of error, warn, info, debug, got [\"info\"]"},
        {"{\"max_streams\": {}}", "'max_streams' must be an integer in [1, 1024], got {}"},
        {"{\"history\": \"256\"}", "'history' must be an integer in [16, 65536]"},
        {"{\"policy\": 16}", "'policy' must be an object, got 16"},
        {"{\"policy\": {\"vision_window\": \"16\"}}", "'policy.vision_window' must be an integer"},
        {"{\"policy\": {\"text_rounds\": null}}", "'policy.text_rounds' must be an integer"},
        {"{\"policy\": {\"prev_sink\": false}}", "'policy.prev_sink' must be an integer"},
        {"{\"policy\": {\"prev_window\": 1.25}}", "'policy.prev_window' must be an integer"},
        {"{\"policy\": {\"max_new_tokens\": \"x\"}}", "'policy.max_new_tokens' must be an integer"},
        {"{\"ws\": []}", "'ws' must be an object, got []"},
        {"{\"ws\": {\"queue\": \"64\"}}", "'ws.queue' must be an integer in [4, 65536]"},
        {"{\"ws\": {\"slow_close_s\": \"10\"}}",
         "'ws.slow_close_s' must be a number in [0.5, 3600], got \"10\""},
        {"{\"ws\": {\"max_message_bytes\": 4096.5}}", "'ws.max_message_bytes' must be an integer"},
        {"{\"ingest\": {\"reconnect_min_s\": null}}",
         "'ingest.reconnect_min_s' must be a number in [0.1, 60]"},
        {"{\"ingest\": {\"reconnect_max_s\": \"30\"}}",
         "'ingest.reconnect_max_s' must be a number in [1, 3600]"},
        {"{\"ingest\": {\"latency_ms\": \"200\"}}",
         "'ingest.latency_ms' must be an integer in [0, 10000]"},
        {"{\"streams\": {}}",
         "'streams' must be an array of {id, source, query?, previous_text?}, got {}"},
    };
    CHECK_BAD(cases);
    /* integral reals are integers (as in JSON Schema) */
    config c;
    ASSERT_EQ_INT(config_load_string("{\"threads\": 4.0, \"ws\": {\"slow_close_s\": 2}}", &c, NULL),
                  0);
    ASSERT_EQ_INT(c.threads, 4);
    ASSERT_NEAR(c.ws.slow_close_s, 2, 0);
    config_deinit(&c);
}

static void test_config_rejects_out_of_range(void) {
    static const bad_case cases[] = {
        {"{\"threads\": -1}", "'threads' must be an integer in [0, 256], got -1"},
        {"{\"threads\": 257}", "'threads' must be an integer in [0, 256], got 257"},
        {"{\"max_streams\": 0}", "'max_streams' must be an integer in [1, 1024], got 0"},
        {"{\"max_streams\": 1025}", "'max_streams' must be an integer in [1, 1024], got 1025"},
        {"{\"history\": 15}", "'history' must be an integer in [16, 65536], got 15"},
        {"{\"history\": 65537}", "'history' must be an integer in [16, 65536], got 65537"},
        {"{\"policy\": {\"vision_window\": 0}}",
         "'policy.vision_window' must be an integer in [1, 4096], got 0"},
        {"{\"policy\": {\"vision_window\": 4097}}",
         "'policy.vision_window' must be an integer in [1, 4096], got 4097"},
        {"{\"policy\": {\"text_rounds\": 0}}",
         "config: 'policy.text_rounds' must be an integer in [1, 4096], got 0"},
        {"{\"policy\": {\"text_rounds\": 4097}}",
         "'policy.text_rounds' must be an integer in [1, 4096], got 4097"},
        {"{\"policy\": {\"prev_sink\": -1}}",
         "'policy.prev_sink' must be an integer in [0, 65536], got -1"},
        {"{\"policy\": {\"prev_sink\": 65537}}",
         "'policy.prev_sink' must be an integer in [0, 65536], got 65537"},
        {"{\"policy\": {\"prev_window\": 0}}",
         "'policy.prev_window' must be an integer in [1, 65536], got 0"},
        {"{\"policy\": {\"prev_window\": 65537}}",
         "'policy.prev_window' must be an integer in [1, 65536], got 65537"},
        {"{\"policy\": {\"max_new_tokens\": 0}}",
         "'policy.max_new_tokens' must be an integer in [1, 256], got 0"},
        {"{\"policy\": {\"max_new_tokens\": 257}}",
         "'policy.max_new_tokens' must be an integer in [1, 256], got 257"},
        {"{\"ws\": {\"queue\": 3}}", "'ws.queue' must be an integer in [4, 65536], got 3"},
        {"{\"ws\": {\"queue\": 65537}}", "'ws.queue' must be an integer in [4, 65536], got 65537"},
        {"{\"ws\": {\"slow_close_s\": 0.4}}",
         "'ws.slow_close_s' must be a number in [0.5, 3600], got 0.4"},
        {"{\"ws\": {\"slow_close_s\": 3600.5}}",
         "'ws.slow_close_s' must be a number in [0.5, 3600], got 3600.5"},
        {"{\"ws\": {\"max_message_bytes\": 63}}",
         "'ws.max_message_bytes' must be an integer in [64, 1048576], got 63"},
        {"{\"ws\": {\"max_message_bytes\": 1048577}}",
         "'ws.max_message_bytes' must be an integer in [64, 1048576], got 1048577"},
        {"{\"ingest\": {\"reconnect_min_s\": 0.05}}",
         "'ingest.reconnect_min_s' must be a number in [0.1, 60], got 0.05"},
        {"{\"ingest\": {\"reconnect_min_s\": 61}}",
         "'ingest.reconnect_min_s' must be a number in [0.1, 60], got 61"},
        {"{\"ingest\": {\"reconnect_max_s\": 0.5}}",
         "'ingest.reconnect_max_s' must be a number in [1, 3600], got 0.5"},
        {"{\"ingest\": {\"reconnect_max_s\": 3601}}",
         "'ingest.reconnect_max_s' must be a number in [1, 3600], got 3601"},
        {"{\"ingest\": {\"stall_timeout_s\": 1}}",
         "'ingest.stall_timeout_s' must be a number in [2, 3600], got 1"},
        {"{\"ws\": {\"ping_s\": -1}}", "'ws.ping_s' must be an integer in [0, 3600], got -1"},
        {"{\"ingest\": {\"latency_ms\": -1}}",
         "'ingest.latency_ms' must be an integer in [0, 10000], got -1"},
        {"{\"ingest\": {\"latency_ms\": 10001}}",
         "'ingest.latency_ms' must be an integer in [0, 10000], got 10001"},
        {"{\"threads\": 1e300}", "'threads' must be an integer in [0, 256], got 1e300"},
        {"{\"model\": \"\"}", "'model' must be a non-empty string of at most 4095 bytes, got \"\""},
    };
    CHECK_BAD(cases);
}

static void test_config_rejects_bad_enums(void) {
    static const bad_case cases[] = {
        {"{\"backend\": \"gpu\"}", "'backend' must be one of cpu, cuda, auto, got \"gpu\""},
        {"{\"backend\": \"CUDA\"}", "'backend' must be one of cpu, cuda, auto, got \"CUDA\""},
        {"{\"log_level\": \"warning\"}",
         "'log_level' must be one of error, warn, info, debug, got \"warning\""},
        {"{\"log_level\": \"\"}", "'log_level' must be one of error, warn, info, debug, got \"\""},
    };
    CHECK_BAD(cases);
    config c;
    ASSERT_EQ_INT(config_load_string("{\"backend\": \"cpu\", \"log_level\": \"debug\"}", &c, NULL),
                  0);
    ASSERT_EQ_INT(c.backend, CONFIG_BACKEND_CPU);
    ASSERT_EQ_INT(c.log_level, LOG_LEVEL_DEBUG);
    config_deinit(&c);
}

static void test_config_rejects_bad_listen(void) {
    static const bad_case cases[] = {
        {"{\"listen\": \"localhost\"}",
         "'listen' \"localhost\" must be HOST:PORT or [IPV6]:PORT: no ':PORT'"},
        {"{\"listen\": \"127.0.0.1:\"}",
         "'listen' \"127.0.0.1:\" must be HOST:PORT or [IPV6]:PORT: PORT must be in [0, 65535]"},
        {"{\"listen\": \"127.0.0.1:65536\"}", "PORT must be in [0, 65535]"},
        {"{\"listen\": \"127.0.0.1:-1\"}", "PORT must be in [0, 65535]"},
        {"{\"listen\": \"127.0.0.1:80x\"}", "PORT must be in [0, 65535]"},
        {"{\"listen\": \"127.0.0.1:123456\"}", "PORT must be in [0, 65535]"},
        {"{\"listen\": \":8080\"}", "'listen' \":8080\" must be HOST:PORT or [IPV6]:PORT: no HOST"},
        {"{\"listen\": \"::1:8080\"}", "an IPv6 address goes in brackets, as in [::1]:8080"},
        {"{\"listen\": \"[::1]8080\"}", "no ':PORT' after ']'"},
        {"{\"listen\": \"[::1:8080\"}", "no ']'"},
        {"{\"listen\": \"[::g]:8080\"}", "not an IPv6 address"},
        {"{\"listen\": \"[127.0.0.1]:8080\"}", "not an IPv6 address"},
        {"{\"listen\": \"300.1.2.3:8080\"}", "HOST is not an IPv4 address"},
        {"{\"listen\": \"my host:8080\"}", "HOST has a character"},
        {"{\"listen\": \"\"}", "'listen' \"\" must be HOST:PORT"},
    };
    CHECK_BAD(cases);

    static const struct {
        const char *listen, *host;
        int port;
    } good[] = {
        {"[::1]:8080", "::1", 8080},
        {"[::]:0", "::", 0},
        {"0.0.0.0:9000", "0.0.0.0", 9000},
        {"localhost:65535", "localhost", 65535},
        {"[fe80::1%eth0]:80", "fe80::1%eth0", 80},
        {"cam-host.example:1", "cam-host.example", 1},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        config c;
        char json[128], err[CONFIG_ERR_LEN];
        snprintf(json, sizeof json, "{\"listen\": \"%s\"}", good[i].listen);
        ASSERT_MSG(config_load_string(json, &c, err) == 0, "%s: %s", json, err);
        ASSERT_EQ_STR(c.listen, good[i].listen);
        ASSERT_EQ_STR(c.listen_host, good[i].host);
        ASSERT_EQ_INT(c.listen_port, good[i].port);
        config_deinit(&c);
    }
}

static void test_config_rejects_bad_token(void) {
    char json[600], long_token[300];
    memset(long_token, 'a', 256);
    long_token[256] = 0;
    snprintf(json, sizeof json, "{\"token\": \"%s\"}", long_token);
    const char *err = load_err(json, CONFIG_EINVAL);
    ASSERT_CONTAINS(err, "config: 'token' must be a string of at most 255 printable ASCII");
    ASSERT_CONTAINS(err, "got a string of 256 bytes");
    ASSERT(!strstr(err, "aaaa")); /* a secret is never quoted */
    err = load_err("{\"token\": \"two words\"}", CONFIG_EINVAL);
    ASSERT_CONTAINS(err, "'token' must be printable ASCII without spaces (byte 3 is not)");
    ASSERT(!strstr(err, "words"));
    err = load_err("{\"token\": \"caf\\u00e9\"}", CONFIG_EINVAL);
    ASSERT_CONTAINS(err, "'token' must be printable ASCII");

    long_token[255] = 0; /* 255 is fine */
    snprintf(json, sizeof json, "{\"token\": \"%s\"}", long_token);
    config c;
    ASSERT_EQ_INT(config_load_string(json, &c, NULL), 0);
    ASSERT_EQ_INT(strlen(c.token), 255);
    config_deinit(&c);
}

static void test_config_rejects_bad_streams(void) {
    static const bad_case cases[] = {
        {"{\"streams\": [3]}",
         "'streams[0]' must be an object {id, source, query?, previous_text?}, got 3"},
        {"{\"streams\": [{\"source\": \"test:\"}]}", "'streams[0].id' is required"},
        {"{\"streams\": [{\"id\": \"a\"}]}", "'streams[0].source' is required"},
        {"{\"streams\": [{\"id\": \"a\", \"source\": \"\"}]}",
         "'streams[0].source' must be a non-empty string, got \"\""},
        {"{\"streams\": [{\"id\": \"a\", \"source\": 5}]}",
         "'streams[0].source' must be a non-empty string, got 5"},
        {"{\"streams\": [{\"id\": \"a\", \"source\": \"x\"}, {\"id\": \"b\", \"source\": \"x\"},"
         " {\"id\": \"a b\", \"source\": \"x\"}]}",
         "config: 'streams[2].id' \"a b\" must match [A-Za-z0-9_-]{1,64}"},
        {"{\"streams\": [{\"id\": \"\", \"source\": \"x\"}]}", "'streams[0].id' \"\" must match"},
        {"{\"streams\": [{\"id\": "
         "\"x12345678901234567890123456789012345678901234567890123456789012345\","
         " \"source\": \"x\"}]}",
         "'streams[0].id' \"x1234567890123456789012345678901\"... (66 bytes) must match"},
        {"{\"streams\": [{\"id\": 7, \"source\": \"x\"}]}",
         "'streams[0].id' must be a string of at most 64 bytes, got 7"},
        {"{\"streams\": [{\"id\": \"cam\", \"source\": \"x\"}, {\"id\": \"cam\", \"source\": "
         "\"y\"}]}",
         "'streams[1].id' \"cam\" is already the id of 'streams[0]'"},
        {"{\"streams\": [{\"id\": \"a\", \"source\": \"x\", \"query\": 1}]}",
         "'streams[0].query' must be a string of at most 65536 bytes, got 1"},
        {"{\"streams\": [{\"id\": \"a\", \"source\": \"x\", \"previous_text\": null}]}",
         "'streams[0].previous_text' must be a string of at most 65536 bytes, got null"},
        {"{\"streams\": [{\"id\": \"a\", \"source\": \"x\", \"src\": \"y\"}]}",
         "unknown key 'streams[0].src'"},
        {"{\"streams\": [{\"id\": \"a\", \"source\": \"x\", \"querry\": \"y\"}]}",
         "unknown key 'streams[0].querry' (did you mean 'streams[0].query'?)"},
    };
    CHECK_BAD(cases);

    /* query and previous_text: CONFIG_TEXT_MAX bytes fine, one more not (the engine's
     * limits, in tokens, are checked when the stream starts) */
    size_t cap = CONFIG_TEXT_MAX + 1 + 200;
    char *big = malloc(cap), *json = malloc(cap);
    memset(big, 'q', CONFIG_TEXT_MAX + 1);
    big[CONFIG_TEXT_MAX] = 0;
    snprintf(json, cap, "{\"streams\": [{\"id\": \"a\", \"source\": \"x\", \"query\": \"%s\"}]}",
             big);
    config c;
    char err[CONFIG_ERR_LEN];
    ASSERT_MSG(config_load_string(json, &c, err) == 0, "%s", err);
    ASSERT_EQ_INT(strlen(c.streams[0].query), CONFIG_TEXT_MAX);
    config_deinit(&c);
    big[CONFIG_TEXT_MAX] = 'q';
    big[CONFIG_TEXT_MAX + 1] = 0;
    snprintf(json, cap,
             "{\"streams\": [{\"id\": \"a\", \"source\": \"x\", \"previous_text\": "
             "\"%s\"}]}",
             big);
    ASSERT_CONTAINS(load_err(json, CONFIG_EINVAL),
                    "'streams[0].previous_text' must be a string of at most 65536 bytes, got "
                    "\"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq\"... (65537 bytes)");
    free(big);
    free(json);
}

/* More streams than max_streams: 17 with the default 16, and 3 with max_streams 2, in
 * either order of the keys; beyond 1024 the array is refused before it is read. */
static void test_config_rejects_too_many_streams(void) {
    size_t cap = 2000 * 48 + 64;
    char *json = malloc(cap);
    for (int total = 16; total <= 17; total++) {
        size_t n = (size_t)snprintf(json, cap, "{\"streams\": [");
        for (int i = 0; i < total; i++)
            n += (size_t)snprintf(json + n, cap - n, "%s{\"id\": \"s%d\", \"source\": \"test:\"}",
                                  i ? ", " : "", i);
        snprintf(json + n, cap - n, "]}");
        if (total == 16) {
            config c;
            ASSERT_EQ_INT(config_load_string(json, &c, NULL), 0);
            ASSERT_EQ_INT(c.n_streams, 16);
            config_deinit(&c);
        } else {
            ASSERT_CONTAINS(load_err(json, CONFIG_EINVAL),
                            "config: 'streams' has 17 entries, more than 'max_streams' (16)");
        }
    }
    static const bad_case cases[] = {
        {"{\"max_streams\": 2, \"streams\": [{\"id\": \"a\", \"source\": \"x\"}, {\"id\": \"b\","
         " \"source\": \"x\"}, {\"id\": \"c\", \"source\": \"x\"}]}",
         "'streams' has 3 entries, more than 'max_streams' (2)"},
        {"{\"streams\": [{\"id\": \"a\", \"source\": \"x\"}, {\"id\": \"b\", \"source\": \"x\"}, "
         "{\"id\": \"c\", \"source\": \"x\"}], \"max_streams\": 2}",
         "'streams' has 3 entries, more than 'max_streams' (2)"},
    };
    CHECK_BAD(cases);
    size_t n = (size_t)snprintf(json, cap, "{\"streams\": [");
    for (int i = 0; i < 1025; i++)
        n += (size_t)snprintf(json + n, cap - n, "%s{}", i ? ", " : "");
    snprintf(json + n, cap - n, "]}");
    ASSERT_CONTAINS(load_err(json, CONFIG_EINVAL),
                    "'streams' has 1025 entries, more than 'max_streams' can be (1024)");
    free(json);
}

static void test_config_rejects_unknown_keys(void) {
    static const bad_case cases[] = {
        {"{\"polcy\": {}}", "config: unknown key 'polcy' (did you mean 'policy'?)"},
        {"{\"listn\": \"127.0.0.1:1\"}", "unknown key 'listn' (did you mean 'listen'?)"},
        {"{\"Token\": \"x\"}", "unknown key 'Token' (did you mean 'token'?)"},
        {"{\"frobnicate\": 1}", "unknown key 'frobnicate'"},
        {"{\"policy\": {\"text_round\": 3}}",
         "unknown key 'policy.text_round' (did you mean 'policy.text_rounds'?)"},
        {"{\"policy\": {\"zzz\": 3}}", "unknown key 'policy.zzz'"},
        {"{\"ws\": {\"queue\": 8, \"slow_close\": 3}}",
         "unknown key 'ws.slow_close' (did you mean 'ws.slow_close_s'?)"},
        {"{\"ingest\": {\"latency\": 3}}", "unknown key 'ingest.latency'"},
        {"{\"queue\": 8}", "unknown key 'queue' (did you mean 'ws.queue'?)"},
        {"{\"ws.queue\": 8}", "unknown key 'ws.queue' (nest it: \"ws\": {\"queue\": ...})"},
        {"{\"policy\": {\"ws\": {}}}", "unknown key 'policy.ws'"},
        {"{\"a\\nb\": 1}", "unknown key 'a?b'"},
    };
    CHECK_BAD(cases);
    /* no suggestion when nothing is close */
    ASSERT(!strstr(load_err("{\"frobnicate\": 1}", CONFIG_EINVAL), "did you mean"));
    ASSERT(!strstr(load_err("{\"policy\": {\"zzz\": 3}}", CONFIG_EINVAL), "did you mean"));
}

static void test_config_rejects_reconnect_max_below_min(void) {
    static const bad_case cases[] = {
        {"{\"ingest\": {\"reconnect_min_s\": 5, \"reconnect_max_s\": 2}}",
         "config: 'ingest.reconnect_max_s' (2) must be >= 'ingest.reconnect_min_s' (5)"},
        {"{\"ingest\": {\"reconnect_min_s\": 40}}",
         "'ingest.reconnect_max_s' (30) must be >= 'ingest.reconnect_min_s' (40)"},
    };
    CHECK_BAD(cases);
    config c;
    ASSERT_EQ_INT(config_load_string("{\"ingest\": {\"reconnect_min_s\": 5, "
                                     "\"reconnect_max_s\": 5}}",
                                     &c, NULL),
                  0);
    config_deinit(&c);
}

static void test_config_rejects_malformed_json(void) {
    const char *err =
        load_err("{\n  \"threads\": 4,\n  \"model\": \"m\"\n  \"x\": 1\n}", CONFIG_ESYNTAX);
    ASSERT_CONTAINS(err, "config: not JSON: ");
    ASSERT_CONTAINS(err, "(line 4, column ");
    err = load_err("{\"threads\": 4,}", CONFIG_ESYNTAX);
    ASSERT_CONTAINS(err, "line 1, column 15");
    err = load_err("", CONFIG_ESYNTAX);
    ASSERT_CONTAINS(err, "config: not JSON");
    err = load_err("{\"threads\": 4, \"threads\": 5}", CONFIG_ESYNTAX);
    ASSERT_CONTAINS(err, "duplicate object key");
    err = load_err("{\"model\": \"\xff\"}", CONFIG_ESYNTAX);
    ASSERT_CONTAINS(err, "line 1");
    err = load_err("{\"threads\": 99999999999999999999}", CONFIG_ESYNTAX);
    ASSERT_CONTAINS(err, "too big integer");
    err = load_err("{} {}", CONFIG_ESYNTAX);
    ASSERT_CONTAINS(err, "end of file expected");
    err = load_err("[]", CONFIG_EINVAL);
    ASSERT_CONTAINS(err, "config: must be a JSON object, got []");
    err = load_err("\"x\"", CONFIG_EINVAL);
    ASSERT_CONTAINS(err, "must be a JSON object");

    char msg[CONFIG_ERR_LEN];
    config c;
    ASSERT_EQ_INT(config_load_string(NULL, &c, msg), CONFIG_ESYNTAX);
}

static void test_config_load_file_errors(void) {
    char err[CONFIG_ERR_LEN];
    config c;
    ASSERT_EQ_INT(config_load_file("tests/no-such-config.json", &c, err), CONFIG_EIO);
    ASSERT_CONTAINS(err, "tests/no-such-config.json: cannot open: No such file or directory");
    ASSERT_EQ_INT(config_load_file("tests", &c, err), CONFIG_EIO);
    ASSERT_CONTAINS(err, "tests: cannot read: ");

    /* errors in a file name the file instead of "config" */
    char path[] = "/tmp/test-config-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    const char *text = "{\n  \"policy\": {\"text_rounds\": 0}\n}\n";
    ASSERT(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    ASSERT_EQ_INT(config_load_file(path, &c, err), CONFIG_EINVAL);
    char want[CONFIG_ERR_LEN];
    snprintf(want, sizeof want, "%s: 'policy.text_rounds' must be an integer in [1, 4096], got 0",
             path);
    ASSERT_EQ_STR(err, want);
    FILE *f = fopen(path, "w");
    fputs("{\n  \"threads\": 2\n  \"model\": \"m\"\n}\n", f);
    fclose(f);
    ASSERT_EQ_INT(config_load_file(path, &c, err), CONFIG_ESYNTAX);
    ASSERT_CONTAINS(err, path);
    ASSERT_CONTAINS(err, ": not JSON: ");
    ASSERT_CONTAINS(err, "(line 3, column");
    unlink(path);

    /* a very long path is cut from the front, the message still fits */
    char long_path[400];
    memset(long_path, 'd', sizeof long_path - 1);
    long_path[sizeof long_path - 1] = 0;
    ASSERT_EQ_INT(config_load_file(long_path, &c, err), CONFIG_EIO);
    ASSERT(strncmp(err, "...ddd", 6) == 0);
    ASSERT_CONTAINS(err, "cannot open");
}

/* ---- config_set -------------------------------------------------------------------- */

static void test_config_set_overrides(void) {
    config c;
    char err[CONFIG_ERR_LEN];
    config_init_defaults(&c);
    ASSERT_MSG(config_set(&c, "listen", "0.0.0.0:9000", err) == 0, "%s", err);
    ASSERT_EQ_STR(c.listen_host, "0.0.0.0");
    ASSERT_EQ_INT(c.listen_port, 9000);
    ASSERT_EQ_INT(config_set(&c, "listen", "[::1]:0", err), 0);
    ASSERT_EQ_STR(c.listen_host, "::1");
    ASSERT_EQ_INT(c.listen_port, 0);
    ASSERT_EQ_INT(config_set(&c, "model", "/srv/models/StreamingVLM", err), 0);
    ASSERT_EQ_STR(c.model, "/srv/models/StreamingVLM");
    ASSERT_EQ_INT(config_set(&c, "backend", "cuda", err), 0);
    ASSERT_EQ_INT(c.backend, CONFIG_BACKEND_CUDA);
    ASSERT_EQ_INT(config_set(&c, "threads", "8", err), 0);
    ASSERT_EQ_INT(c.threads, 8);
    ASSERT_EQ_INT(config_set(&c, "token", "s3cret", err), 0);
    ASSERT_EQ_STR(c.token, "s3cret");
    ASSERT_EQ_INT(config_set(&c, "log_level", "debug", err), 0);
    ASSERT_EQ_INT(c.log_level, LOG_LEVEL_DEBUG);
    ASSERT_EQ_INT(config_set(&c, "policy.max_new_tokens", "10", err), 0);
    ASSERT_EQ_INT(c.policy.max_new_tokens, 10);
    ASSERT_EQ_INT(config_set(&c, "ws.slow_close_s", "2.5", err), 0);
    ASSERT_NEAR(c.ws.slow_close_s, 2.5, 0);
    ASSERT_EQ_INT(config_set(&c, "ingest.reconnect_max_s", "1e2", err), 0);
    ASSERT_NEAR(c.ingest.reconnect_max_s, 100, 0);
    ASSERT_EQ_INT(
        config_set(&c, "streams", "[{\"id\": \"cam1\", \"source\": \"rtsp://h/s\"}]", err), 0);
    ASSERT_EQ_INT(c.n_streams, 1);
    ASSERT_EQ_STR(c.streams[0].id, "cam1");
    ASSERT_EQ_INT(config_set(&c, "streams", "[]", err), 0); /* replaces, frees the old */
    ASSERT_EQ_INT(c.n_streams, 0);
    ASSERT_EQ_INT(config_validate(&c, err), 0);
    config_deinit(&c);
}

static void test_config_set_rejects_bad_values(void) {
    static const struct {
        const char *key, *value, *want;
    } cases[] = {
        {"policy.max_new_tokens", "0",
         "config: 'policy.max_new_tokens' must be an integer in [1, 256], got 0"},
        {"policy.max_new_tokens", "ten",
         "'policy.max_new_tokens' must be an integer in [1, 256], got \"ten\""},
        {"threads", "4x", "'threads' must be an integer in [0, 256], got \"4x\""},
        {"threads", "", "'threads' must be an integer in [0, 256], got \"\""},
        {"threads", " 4", "'threads' must be an integer"},
        {"threads", "0x10", "'threads' must be an integer"},
        {"threads", "99999999999999999999", "'threads' must be an integer"},
        {"batch", "0", "'batch' must be an integer in [1, 256], got 0"},
        {"batch", "257", "'batch' must be an integer in [1, 256], got 257"},
        {"ws.slow_close_s", "inf",
         "'ws.slow_close_s' must be a number in [0.5, 3600], got \"inf\""},
        {"ws.slow_close_s", "nan", "'ws.slow_close_s' must be a number"},
        {"ws.slow_close_s", "0x10", "'ws.slow_close_s' must be a number"},
        {"ws.slow_close_s", "0.1", "'ws.slow_close_s' must be a number in [0.5, 3600], got 0.1"},
        {"backend", "gpu", "'backend' must be one of cpu, cuda, auto, got \"gpu\""},
        {"listen", "9000", "'listen' \"9000\" must be HOST:PORT or [IPV6]:PORT: no ':PORT'"},
        {"model", "", "'model' must be a non-empty string"},
        {"token", "a b", "'token' must be printable ASCII without spaces"},
        {"model", "\xc3(", "'model' is not valid UTF-8"},
        {"streams", "[{\"id\": \"a b\", \"source\": \"x\"}]", "'streams[0].id' \"a b\" must match"},
        {"streams", "[", "'streams' must be a JSON array: "},
        {"streams", "{}", "'streams' must be an array"},
        {"polcy.text_rounds", "3",
         "unknown key 'polcy.text_rounds' (did you mean 'policy.text_rounds'?)"},
        {"policy.textrounds", "3",
         "unknown key 'policy.textrounds' (did you mean 'policy.text_rounds'?)"},
        {"max_stream", "3", "unknown key 'max_stream' (did you mean 'max_streams'?)"},
        {"queue", "8", "unknown key 'queue' (did you mean 'ws.queue'?)"},
        {"policy", "3",
         "'policy' is a group of keys: set one of them, as in 'policy.vision_window'"},
        {"", "3", "unknown key ''"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        config c, d;
        char err[CONFIG_ERR_LEN] = "";
        config_init_defaults(&c);
        config_init_defaults(&d);
        ASSERT_MSG(config_set(&c, "streams", "[{\"id\": \"keep\", \"source\": \"test:\"}]", err) ==
                       0,
                   "%s", err);
        ASSERT_MSG(config_set(&d, "streams", "[{\"id\": \"keep\", \"source\": \"test:\"}]", err) ==
                       0,
                   "%s", err);
        int rc = config_set(&c, cases[i].key, cases[i].value, err);
        ASSERT_MSG(rc == CONFIG_EINVAL, "%s=%s: rc %d (%s)", cases[i].key, cases[i].value, rc, err);
        ASSERT_CONTAINS(err, cases[i].want);
        assert_all_equal(&c, &d); /* unchanged */
        config_deinit(&c);
        config_deinit(&d);
    }
    /* keys are checked alone; config_validate does the cross-checks after the last one */
    config c;
    char err[CONFIG_ERR_LEN];
    config_init_defaults(&c);
    ASSERT_EQ_INT(config_set(&c, "ingest.reconnect_min_s", "50", err), 0);
    ASSERT_EQ_INT(config_validate(&c, err), CONFIG_EINVAL);
    ASSERT_CONTAINS(err, "config: 'ingest.reconnect_max_s' (30) must be >= "
                         "'ingest.reconnect_min_s' (50)");
    ASSERT_EQ_INT(config_set(&c, "ingest.reconnect_max_s", "60", err), 0);
    ASSERT_EQ_INT(config_validate(&c, err), 0);
    ASSERT_EQ_INT(config_set(&c, "max_streams", "1", err), 0);
    ASSERT_EQ_INT(config_set(&c, "streams",
                             "[{\"id\": \"a\", \"source\": \"x\"}, "
                             "{\"id\": \"b\", \"source\": \"x\"}]",
                             err),
                  0);
    ASSERT_EQ_INT(config_validate(&c, err), CONFIG_EINVAL);
    ASSERT_CONTAINS(err, "'streams' has 2 entries, more than 'max_streams' (1)");
    config_deinit(&c);
}

/* ---- whip.* ------------------------------------------------------------------------- */

/* The WHIP keys: loaded nested, set from the command line, bad values refused with the
 * key's path, the port range and the ICE URLs cross-checked, the TURN URL (it carries a
 * password) never printed, all of them reloadable. */
static void test_config_whip_keys(void) {
    config c, d;
    char err[CONFIG_ERR_LEN];
    ASSERT_MSG(config_load_string("{\"whip\": {\"stun_server\": \"stun://stun.example.org:3478\", "
                                  "\"turn_server\": \"turn://u:p4ss@turn.example.org:3478\", "
                                  "\"port_min\": 40000, \"port_max\": 40100, "
                                  "\"allow_create\": false}}",
                                  &c, err) == 0,
               "%s", err);
    ASSERT_EQ_STR(c.whip.stun_server, "stun://stun.example.org:3478");
    ASSERT_EQ_STR(c.whip.turn_server, "turn://u:p4ss@turn.example.org:3478");
    ASSERT_EQ_INT(c.whip.port_min, 40000);
    ASSERT_EQ_INT(c.whip.port_max, 40100);
    ASSERT(!c.whip.allow_create);

    /* printed: the TURN URL masked, the rest as loaded; loads back equal, TURN apart */
    char *out = print_to_string(&c);
    ASSERT_CONTAINS(out, "\"whip\": {");
    ASSERT_CONTAINS(out, "\"turn_server\": \"***\"");
    ASSERT(!strstr(out, "p4ss"));
    ASSERT_CONTAINS(out, "\"allow_create\": false");
    ASSERT_CONTAINS(out, "\"port_min\": 40000");
    ASSERT_MSG(config_load_string(out, &d, err) != 0, "\"***\" is not a TURN URL");
    ASSERT_CONTAINS(err, "'whip.turn_server' must be turn://");
    ASSERT(!strstr(err, "p4ss"));
    free(out);

    /* reloadable: a change of any of them passes the reload check */
    config_init_defaults(&d);
    ASSERT(config_changed(&c, &d, "whip"));
    ASSERT(config_changed(&c, &d, "whip.allow_create"));
    ASSERT_EQ_INT(config_reload_check(&d, &c, err), 0);
    config_deinit(&d);
    config_deinit(&c);

    /* --set: bools by name, ints in decimal */
    config_init_defaults(&c);
    ASSERT_MSG(config_set(&c, "whip.allow_create", "false", err) == 0, "%s", err);
    ASSERT(!c.whip.allow_create);
    ASSERT_EQ_INT(config_set(&c, "whip.allow_create", "true", err), 0);
    ASSERT(c.whip.allow_create);
    ASSERT_EQ_INT(config_set(&c, "whip.allow_create", "yes", err), CONFIG_EINVAL);
    ASSERT_CONTAINS(err, "config: 'whip.allow_create' must be true or false, got \"yes\"");
    ASSERT_EQ_INT(config_set(&c, "whip.port_max", "50000", err), 0);
    ASSERT_EQ_INT(config_set(&c, "whip.port_min", "50001", err), 0);
    ASSERT_EQ_INT(config_validate(&c, err), CONFIG_EINVAL);
    ASSERT_CONTAINS(err, "config: 'whip.port_max' (50000) must be >= 'whip.port_min' (50001)");
    ASSERT_EQ_INT(config_set(&c, "whip.port_max", "0", err), 0); /* 0: no upper bound */
    ASSERT_EQ_INT(config_validate(&c, err), 0);
    ASSERT_EQ_INT(config_set(&c, "whipp.port_max", "1", err), CONFIG_EINVAL);
    ASSERT_CONTAINS(err, "did you mean 'whip.port_max'?");
    config_deinit(&c);

    static const bad_case cases[] = {
        {"{\"whip\": {\"allow_create\": 1}}", "'whip.allow_create' must be true or false, got 1"},
        {"{\"whip\": {\"allow_create\": \"true\"}}",
         "'whip.allow_create' must be true or false, got \"true\""},
        {"{\"whip\": {\"port_min\": -1}}",
         "'whip.port_min' must be an integer in [0, 65535], got -1"},
        {"{\"whip\": {\"port_max\": 65536}}",
         "'whip.port_max' must be an integer in [0, 65535], got 65536"},
        {"{\"whip\": {\"port_min\": 20000, \"port_max\": 10000}}",
         "'whip.port_max' (10000) must be >= 'whip.port_min' (20000) or 0"},
        {"{\"whip\": {\"stun_server\": \"stun.example.org:3478\"}}",
         "'whip.stun_server' must be stun://HOST:PORT, got \"stun.example.org:3478\""},
        {"{\"whip\": {\"stun_server\": \"stun://stun.example.org\"}}",
         "'whip.stun_server' must be stun://HOST:PORT"},
        {"{\"whip\": {\"stun_server\": 3478}}", "'whip.stun_server' must be a string"},
        {"{\"whip\": {\"turn_server\": \"stun://h:1\"}}", "'whip.turn_server' must be turn://"},
        {"{\"whip\": {\"turn_server\": 7}}", "'whip.turn_server' must be a string"},
        {"{\"whip\": {\"stun_servr\": \"x\"}}",
         "unknown key 'whip.stun_servr' (did you mean 'whip.stun_server'?)"},
        {"{\"whip\": true}", "'whip' must be an object, got true"},
    };
    CHECK_BAD(cases);
    /* a TURN URL in a message would leak its password */
    const char *e = load_err("{\"whip\": {\"turn_server\": 12345}}", CONFIG_EINVAL);
    ASSERT(!strstr(e, "12345"));
    ASSERT_MSG(config_load_string("{\"whip\": {\"turn_server\": \"turns://u:p@h.example:5349\"}}",
                                  &c, err) == 0,
               "%s", err);
    config_deinit(&c);
}

/* ---- print, reload, help ------------------------------------------------------------ */

/* Passwords in stream sources, for logs, listings and --print-config. */
static void test_config_mask_source(void) {
    static const char *cases[][2] = {
        {"rtsp://viewer:secret@192.0.2.10:554/stream1", "rtsp://viewer:***@192.0.2.10:554/stream1"},
        {"rtsp://viewer@cam/x", "rtsp://viewer@cam/x"},          /* no password */
        {"rtsp://u:@cam/x", "rtsp://u:***@cam/x"},                /* an empty one */
        {"rtsp://u:p@ss:w@cam:554/x?a=b", "rtsp://u:***@cam:554/x?a=b"}, /* '@' inside it */
        {"rtsp://cam/path@x:y", "rtsp://cam/path@x:y"},          /* '@' only in the path */
        {"srt://:9000?mode=listener&passphrase=hunter22hunter&latency=200",
         "srt://:9000?mode=listener&passphrase=***&latency=200"},
        {"srt://h:1?passphrase=a&passphrase=b", "srt://h:1?passphrase=***&passphrase=***"},
        {"rtsp://admin:pa#ss@cam/x", "rtsp://admin:***@cam/x"}, /* unencoded '#' */
        {"rtsp://admin:a/b?c@cam:554/x", "rtsp://admin:***@cam:554/x"},
        {"srt://h:1?Passphrase=abc", "srt://h:1?Passphrase=***"}, /* any case */
        {"http://dvr/cgi?user=admin&password=hunter2&ch=1",
         "http://dvr/cgi?user=admin&password=***&ch=1"},
        {"rtsp://dvr/user=admin_password=x/ch1", "rtsp://dvr/user=admin_password=***/ch1"},
        {"https://cdn/x.m3u8?token=abc&api_key=def", "https://cdn/x.m3u8?token=***&api_key=***"},
        {"http://h/monkey=1", "http://h/monkey=1"},              /* only whole key names */
        /* RTMP: the stream name after the application is the stream key */
        {"rtmp://127.0.0.1:1935/live/sk_us_1234abcd", "rtmp://127.0.0.1:1935/live/***"},
        {"RTMPS://u:p@ingest.example/app/key?x=1 and more",
         "RTMPS://u:***@ingest.example/app/*** and more"},
        {"rtmp://h/live", "rtmp://h/live"},                      /* no stream name */
        {"rtmp://h/live/", "rtmp://h/live/"},
        {"rtmp://h", "rtmp://h"},
        {"xrtmp://h/a/b", "xrtmp://h/a/b"},
        /* a message quoting URLs: every one masked */
        {"File not found (404), URL: http://v:s3@h:8/a.mp4, Redirect to: rtsp://u:p@g/b",
         "File not found (404), URL: http://v:***@h:8/a.mp4, Redirect to: rtsp://u:***@g/b"},
        {"/media/clip.mp4", "/media/clip.mp4"},
        {"test:", "test:"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *m = config_mask_source(cases[i][0]);
        ASSERT(m);
        ASSERT_MSG(!strcmp(m, cases[i][1]), "'%s' -> '%s', want '%s'", cases[i][0], m,
                   cases[i][1]);
        free(m);
    }
}

static void test_config_print_masks_token(void) {
    config c;
    char err[CONFIG_ERR_LEN];
    ASSERT_MSG(config_load_file("config/example-cameras.json", &c, err) == 0, "%s", err);
    char *out = print_to_string(&c);
    ASSERT_CONTAINS(out, "\"token\": \"***\"");
    ASSERT(!strstr(out, c.token));
    ASSERT_CONTAINS(out, "\"policy\": {");
    ASSERT_CONTAINS(out, "\"slow_close_s\": 10.0");
    ASSERT_CONTAINS(out, "\"entrance-cam\"");
    ASSERT(out[strlen(out) - 1] == '\n');

    /* the camera's password is masked too */
    ASSERT_CONTAINS(out, "\"rtsp://viewer:***@192.0.2.10:554/stream1\"");
    ASSERT(!strstr(out, "secret"));

    /* the output loads back to the same config, the secrets apart */
    config d;
    ASSERT_MSG(config_load_string(out, &d, err) == 0, "%s", err);
    ASSERT_EQ_STR(d.token, "***");
    ASSERT(config_changed(&c, &d, "token"));
    ASSERT_EQ_INT(config_set(&d, "token", c.token, err), 0);
    for (int64_t i = 0; i < d.n_streams; i++) { /* the passwords back, for the comparison */
        free(d.streams[i].source);
        d.streams[i].source = strdup(c.streams[i].source);
    }
    assert_all_equal(&c, &d);
    free(out);
    config_deinit(&d);

    /* an empty token is printed as it is; absent query and previous_text stay absent */
    config_deinit(&c);
    config_init_defaults(&c);
    ASSERT_EQ_INT(config_set(&c, "streams", "[{\"id\": \"a\", \"source\": \"test:\"}]", err), 0);
    out = print_to_string(&c);
    ASSERT_CONTAINS(out, "\"token\": \"\"");
    ASSERT(!strstr(out, "query"));
    ASSERT(!strstr(out, "previous_text"));
    ASSERT_MSG(config_load_string(out, &d, err) == 0, "%s", err);
    assert_all_equal(&c, &d);
    free(out);
    config_deinit(&d);
    config_deinit(&c);
}

/* The shipped file printed is the shipped file (same keys, same order, same values). */
static void test_config_print_matches_shipped_file(void) {
    config c;
    char err[CONFIG_ERR_LEN];
    ASSERT_MSG(config_load_file("config/commentaryd.json", &c, err) == 0, "%s", err);
    char *out = print_to_string(&c);
    FILE *f = fopen("config/commentaryd.json", "r");
    ASSERT(f);
    fseek(f, 0, SEEK_END);
    char *file = read_whole(f);
    fclose(f);
    ASSERT_EQ_STR(out, file);
    free(out);
    free(file);
    config_deinit(&c);
}

static void test_config_reload_check(void) {
    config old, neu;
    char err[CONFIG_ERR_LEN];
    ASSERT_MSG(config_load_file("config/commentaryd.json", &old, err) == 0, "%s", err);

    /* reloadable keys: token, log level, ws.*, ingest.*, streams */
    ASSERT_MSG(config_load_string("{\"token\": \"new-token\", \"log_level\": \"debug\", "
                                  "\"ws\": {\"queue\": 128}, \"ingest\": {\"latency_ms\": 50}, "
                                  "\"streams\": [{\"id\": \"cam\", \"source\": \"rtsp://h/s\"}]}",
                                  &neu, err) == 0,
               "%s", err);
    ASSERT_MSG(config_reload_check(&old, &neu, err) == 0, "%s", err);
    ASSERT(config_changed(&old, &neu, "token"));
    ASSERT(config_changed(&old, &neu, "log_level"));
    ASSERT(config_changed(&old, &neu, "ws.queue"));
    ASSERT(config_changed(&old, &neu, "ws")); /* a group: any of its keys */
    ASSERT(config_changed(&old, &neu, "streams"));
    ASSERT(!config_changed(&old, &neu, "ws.slow_close_s"));
    ASSERT(!config_changed(&old, &neu, "ingest.reconnect_min_s"));
    ASSERT(!config_changed(&old, &neu, "model"));
    ASSERT(!config_changed(&old, &neu, "policy"));
    ASSERT(!config_changed(&old, &neu, "no-such-key"));
    ASSERT(!config_changed(&old, &neu, NULL));
    config_deinit(&neu);

    /* a token change alone */
    ASSERT_EQ_INT(config_load_file("config/commentaryd.json", &neu, err), 0);
    ASSERT_EQ_INT(config_set(&neu, "token", "abc", err), 0);
    ASSERT_EQ_INT(config_reload_check(&old, &neu, err), 0);
    ASSERT(config_changed(&old, &neu, "token"));
    ASSERT(!config_changed(&old, &neu, "streams"));
    config_deinit(&neu);

    /* a model change is refused, naming 'model' */
    ASSERT_EQ_INT(config_load_file("config/commentaryd.json", &neu, err), 0);
    ASSERT_EQ_INT(config_set(&neu, "model", "models/other", err), 0);
    ASSERT_EQ_INT(config_set(&neu, "token", "abc", err), 0);
    ASSERT_EQ_INT(config_reload_check(&old, &neu, err), CONFIG_ENORELOAD);
    ASSERT_CONTAINS(err, "config: 'model' changed, and it cannot change on reload");
    config_deinit(&neu);

    /* every non-reloadable key is guarded; the same address spelt differently is no change */
    static const struct {
        const char *key, *value;
    } restart[] = {
        {"listen", "127.0.0.1:8081"},   {"backend", "cpu"},        {"threads", "3"},
        {"max_streams", "8"},           {"history", "512"},        {"policy.vision_window", "8"},
        {"policy.text_rounds", "8"},    {"policy.prev_sink", "8"}, {"policy.prev_window", "8"},
        {"policy.max_new_tokens", "8"},
    };
    for (size_t i = 0; i < sizeof restart / sizeof restart[0]; i++) {
        ASSERT_EQ_INT(config_load_file("config/commentaryd.json", &neu, err), 0);
        ASSERT_EQ_INT(config_set(&neu, restart[i].key, restart[i].value, err), 0);
        ASSERT_EQ_INT(config_reload_check(&old, &neu, err), CONFIG_ENORELOAD);
        char want[64];
        snprintf(want, sizeof want, "'%s' changed", restart[i].key);
        ASSERT_CONTAINS(err, want);
        config_deinit(&neu);
    }
    ASSERT_EQ_INT(config_load_file("config/commentaryd.json", &neu, err), 0);
    ASSERT_EQ_INT(config_set(&neu, "listen", "127.0.0.1:08080", err), 0);
    ASSERT_EQ_INT(config_reload_check(&old, &neu, err), 0);
    config_deinit(&neu);
    config_deinit(&old);
}

static void test_config_help_lists_every_key(void) {
    FILE *f = tmpfile();
    ASSERT(f);
    config_help(f);
    char *out = read_whole(f);
    fclose(f);
    ASSERT(strncmp(out, "key ", 4) == 0);
    for (int i = 0; i < N_KEYS; i++) {
        ASSERT_CONTAINS(out, keys[i].name);
        ASSERT_CONTAINS(out, keys[i].help);
    }
    ASSERT_CONTAINS(out, "\"127.0.0.1:8080\"");
    ASSERT_CONTAINS(out, "int 1..4096");
    ASSERT_CONTAINS(out, "cpu|cuda|auto");
    ASSERT_CONTAINS(out, "number 0.5..3600");
    ASSERT_CONTAINS(out, "whip.allow_create");
    ASSERT_CONTAINS(out, "bool");
    free(out);
}

static void test_config_strerror(void) {
    ASSERT_EQ_STR(config_strerror(CONFIG_OK), "ok");
    ASSERT_EQ_STR(config_strerror(CONFIG_EINVAL), "invalid config");
    ASSERT_EQ_STR(config_strerror(CONFIG_ENORELOAD), "a changed key needs a restart");
    ASSERT_EQ_STR(config_strerror(-99), "unknown error");
    ASSERT_EQ_STR(config_backend_name(CONFIG_BACKEND_CPU), "cpu");
    ASSERT_EQ_STR(config_backend_name(CONFIG_BACKEND_CUDA), "cuda");
    ASSERT(config_backend_name((config_backend)7) == NULL);
    /* the edit distance behind "did you mean" */
    ASSERT_EQ_INT(edit_distance("polcy", "policy"), 1);
    ASSERT_EQ_INT(edit_distance("", "abc"), 3);
    ASSERT_EQ_INT(edit_distance("kitten", "sitting"), 3);
}

/* ---- log --------------------------------------------------------------------------- */

static void test_log_level_names(void) {
    ASSERT_EQ_INT(log_level_from_name("error"), LOG_LEVEL_ERROR);
    ASSERT_EQ_INT(log_level_from_name("warn"), LOG_LEVEL_WARN);
    ASSERT_EQ_INT(log_level_from_name("info"), LOG_LEVEL_INFO);
    ASSERT_EQ_INT(log_level_from_name("debug"), LOG_LEVEL_DEBUG);
    ASSERT_EQ_INT(log_level_from_name("warning"), -1);
    ASSERT_EQ_INT(log_level_from_name("INFO"), -1);
    ASSERT_EQ_INT(log_level_from_name(NULL), -1);
    ASSERT_EQ_STR(log_level_name(LOG_LEVEL_WARN), "warn");
    ASSERT(log_level_name(4) == NULL);
    ASSERT(log_level_name(-1) == NULL);
    log_set_level(99);
    ASSERT_EQ_INT(log_get_level(), LOG_LEVEL_DEBUG);
    log_set_level(-5);
    ASSERT_EQ_INT(log_get_level(), LOG_LEVEL_ERROR);
}

/* Redirect stderr into a temporary file; returns the saved stderr. */
static int capture_start(FILE **f) {
    fflush(stderr);
    *f = tmpfile();
    ASSERT(*f);
    int saved = dup(STDERR_FILENO);
    ASSERT(dup2(fileno(*f), STDERR_FILENO) == STDERR_FILENO);
    return saved;
}

static char *capture_end(FILE *f, int saved) {
    ASSERT(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
    close(saved);
    fseek(f, 0, SEEK_END);
    char *s = read_whole(f);
    fclose(f);
    return s;
}

static int side_effects;
static int count_call(void) {
    return ++side_effects;
}

static void test_log_plain_lines(void) {
    unsetenv("JOURNAL_STREAM");
    log_init();
    log_set_level(LOG_LEVEL_INFO);
    FILE *f;
    int saved = capture_start(&f);
    errno = EAGAIN;
    LOGW("ingest[%s] reconnect in %.1fs: %s", "cam1", 2.0, "connection refused");
    ASSERT_EQ_INT(errno, EAGAIN); /* preserved */
    LOGI("two\nlines");
    LOGD("not written %d", count_call()); /* off: the arguments are not evaluated */
    LOGE("errno says %m");
    char *out = capture_end(f, saved);
    ASSERT_EQ_INT(side_effects, 0);
    /* "YYYY-MM-DD HH:MM:SS.mmm warn  ingest[cam1] ..." */
    int y, mo, d, h, mi, s, ms;
    ASSERT_MSG(sscanf(out, "%4d-%2d-%2d %2d:%2d:%2d.%3d ", &y, &mo, &d, &h, &mi, &s, &ms) == 7,
               "%s", out);
    ASSERT_CONTAINS(out, ".");
    ASSERT_CONTAINS(out, " warn  ingest[cam1] reconnect in 2.0s: connection refused\n");
    ASSERT_CONTAINS(out, " info  two lines\n");
    ASSERT_CONTAINS(out, " error errno says Resource temporarily unavailable\n");
    ASSERT(!strstr(out, "not written"));
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    ASSERT_EQ_INT(lines, 3);
    ASSERT(!strstr(out, "<4>"));
    free(out);
}

static void test_log_journal_prefix(void) {
    FILE *f;
    int saved = capture_start(&f);
    struct stat st;
    ASSERT(fstat(STDERR_FILENO, &st) == 0);
    char env[64];
    snprintf(env, sizeof env, "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
    setenv("JOURNAL_STREAM", env, 1);
    log_init();
    log_set_level(LOG_LEVEL_DEBUG);
    LOGE("e %d", 1);
    LOGW("w");
    LOGI("i");
    LOGD("d");
    log_write(LOG_LEVEL_WARN, "direct");
    /* $JOURNAL_STREAM naming another file: plain lines (stderr was redirected) */
    setenv("JOURNAL_STREAM", "1:2", 1);
    log_init();
    LOGI("plain");
    char *out = capture_end(f, saved);
    ASSERT(strncmp(out, "<3>e 1\n<4>w\n<6>i\n<7>d\n<4>direct\n", 31) == 0);
    ASSERT_CONTAINS(out, " info  plain\n");
    free(out);
    unsetenv("JOURNAL_STREAM");
}

static void test_log_long_line_is_cut(void) {
    unsetenv("JOURNAL_STREAM");
    log_init();
    log_set_level(LOG_LEVEL_INFO);
    size_t n = 3 * LOG_LINE_MAX;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i += 2)
        memcpy(big + i, "\xc3\xa9", 2); /* é: the cut must not split one */
    big[n] = 0;
    FILE *f;
    int saved = capture_start(&f);
    LOGI("%s", big);
    char *out = capture_end(f, saved);
    size_t len = strlen(out);
    ASSERT(len <= LOG_LINE_MAX);
    ASSERT(len > LOG_LINE_MAX - 8);
    ASSERT(strcmp(out + len - 4, "...\n") == 0);
    ASSERT((unsigned char)out[len - 5] == 0xa9);
    free(big);
    free(out);
}

static const test_case tests[] = {
    {"config_defaults", test_config_defaults},
    {"config_defaults_valid", test_config_defaults_valid},
    {"config_shipped_file_loads", test_config_shipped_file_loads},
    {"config_example_file_loads", test_config_example_file_loads},
    {"config_rejects_wrong_types", test_config_rejects_wrong_types},
    {"config_rejects_out_of_range", test_config_rejects_out_of_range},
    {"config_rejects_bad_enums", test_config_rejects_bad_enums},
    {"config_rejects_bad_listen", test_config_rejects_bad_listen},
    {"config_rejects_bad_token", test_config_rejects_bad_token},
    {"config_rejects_bad_streams", test_config_rejects_bad_streams},
    {"config_rejects_too_many_streams", test_config_rejects_too_many_streams},
    {"config_rejects_unknown_keys", test_config_rejects_unknown_keys},
    {"config_rejects_reconnect_max_below_min", test_config_rejects_reconnect_max_below_min},
    {"config_rejects_malformed_json", test_config_rejects_malformed_json},
    {"config_load_file_errors", test_config_load_file_errors},
    {"config_set_overrides", test_config_set_overrides},
    {"config_set_rejects_bad_values", test_config_set_rejects_bad_values},
    {"config_whip_keys", test_config_whip_keys},
    {"config_mask_source", test_config_mask_source},
    {"config_print_masks_token", test_config_print_masks_token},
    {"config_print_matches_shipped_file", test_config_print_matches_shipped_file},
    {"config_reload_check", test_config_reload_check},
    {"config_help_lists_every_key", test_config_help_lists_every_key},
    {"config_strerror", test_config_strerror},
    {"log_level_names", test_log_level_names},
    {"log_plain_lines", test_log_plain_lines},
    {"log_journal_prefix", test_log_journal_prefix},
    {"log_long_line_is_cut", test_log_long_line_is_cut},
    {0},
};

int main(int argc, char **argv) {
    return test_main(argc, argv, tests);
}
