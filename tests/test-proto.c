/* test-proto.c — the wire protocol codec (proto/proto.c) against its schemas and examples.
 *
 * Every proto/examples/<name>[-variant].json must decode, re-encode to the same JSON
 * (json_equal) and decode again to equal fields; every example must have a schema and every
 * schema an example, and the examples together must use every property of their schema.
 * The decoder must agree with each schema's required/properties lists (every key of every
 * example removed, retyped, and a stranger added, nested objects included), and reject a
 * table of bad inputs with an error naming the message and the key.  Also: the encoder's
 * own checks, buffer sizing, key order and number format; wall times; type detection.
 *
 * Runs from the repo root (tests/run.sh cds there); reads proto/schema and proto/examples.
 */
#include <dirent.h>

#include <jansson.h>

#include "proto/proto.h"
#include "test.h"

#define EXAMPLES_DIR "proto/examples"
#define SCHEMA_DIR "proto/schema"
#define MAX_FILES 64

/* ---- helpers ---------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of the files in dir ending in suffix; returns the count. */
static int list_dir(const char *dir, const char *suffix, char **names) {
    DIR *d = opendir(dir);
    ASSERT_MSG(d, "cannot open %s (run from the repo root)", dir);
    int n = 0;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= sl || strcmp(e->d_name + l - sl, suffix) != 0) continue;
        ASSERT(n < MAX_FILES);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    return n;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++)
        free(names[i]);
}

/* The whole file at path (NUL-terminated, *len its size). */
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ASSERT_MSG(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ASSERT(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

/* "stream_create-full.json" -> "stream_create" */
static void stem_of(const char *file, char *stem, size_t cap) {
    snprintf(stem, cap, "%s", file);
    char *cut = strchr(stem, '-');
    if (!cut) cut = strstr(stem, ".json");
    if (cut) *cut = 0;
}

static json_t *load_json(const char *path) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    ASSERT_MSG(j, "%s: %s (line %d)", path, je.text, je.line);
    return j;
}

static json_t *load_schema(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.schema.json", SCHEMA_DIR, name);
    return load_json(path);
}

static bool str_eq(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Field-by-field equality of two decoded messages of the same type. */
static bool info_equal(const proto_stream_info *a, const proto_stream_info *b) {
    return str_eq(a->id, b->id) && str_eq(a->source, b->source) && str_eq(a->query, b->query) &&
           a->state == b->state && a->chunks == b->chunks && a->last_seq == b->last_seq &&
           a->kv_tokens == b->kv_tokens && a->has_latency_ms_p50 == b->has_latency_ms_p50 &&
           (!a->has_latency_ms_p50 || a->latency_ms_p50 == b->latency_ms_p50) &&
           str_eq(a->created, b->created);
}

static bool msg_equal(proto_type t, const proto_msg *x, const proto_msg *y) {
    switch (t) {
    case PROTO_MSG_COMMENTARY: {
        const proto_commentary *a = &x->commentary, *b = &y->commentary;
        return str_eq(a->stream, b->stream) && a->seq == b->seq && a->t_start == b->t_start &&
               a->t_end == b->t_end && str_eq(a->wall_time, b->wall_time) &&
               str_eq(a->text, b->text) && a->latency_ms == b->latency_ms;
    }
    case PROTO_MSG_STATUS: {
        const proto_status *a = &x->status, *b = &y->status;
        return str_eq(a->stream, b->stream) && a->seq == b->seq &&
               str_eq(a->wall_time, b->wall_time) && a->state == b->state &&
               str_eq(a->detail, b->detail) && a->has_retry_in_s == b->has_retry_in_s &&
               a->retry_in_s == b->retry_in_s;
    }
    case PROTO_MSG_GAP: {
        const proto_gap *a = &x->gap, *b = &y->gap;
        return str_eq(a->stream, b->stream) && a->seq == b->seq &&
               str_eq(a->wall_time, b->wall_time) && a->t_start == b->t_start &&
               a->t_end == b->t_end && str_eq(a->reason, b->reason);
    }
    case PROTO_MSG_DROPPED: {
        const proto_dropped *a = &x->dropped, *b = &y->dropped;
        return str_eq(a->stream, b->stream) && str_eq(a->wall_time, b->wall_time) &&
               a->count == b->count && a->first_seq == b->first_seq && a->last_seq == b->last_seq;
    }
    case PROTO_MSG_HELLO: {
        const proto_hello *a = &x->hello, *b = &y->hello;
        return str_eq(a->stream, b->stream) && str_eq(a->wall_time, b->wall_time) &&
               a->last_seq == b->last_seq && a->history_first_seq == b->history_first_seq &&
               a->has_resumed_from == b->has_resumed_from && a->resumed_from == b->resumed_from;
    }
    case PROTO_MSG_STREAM_CREATE: {
        const proto_stream_create *a = &x->stream_create, *b = &y->stream_create;
        return str_eq(a->id, b->id) && str_eq(a->source, b->source) && str_eq(a->query, b->query) &&
               str_eq(a->previous_text, b->previous_text);
    }
    case PROTO_MSG_STREAM_INFO:
        return info_equal(&x->stream_info, &y->stream_info);
    case PROTO_MSG_STREAM_LIST: {
        const proto_stream_list *a = &x->stream_list, *b = &y->stream_list;
        if (a->n_streams != b->n_streams) return false;
        for (int64_t i = 0; i < a->n_streams; i++)
            if (!info_equal(&a->streams[i], &b->streams[i])) return false;
        return true;
    }
    case PROTO_MSG_QUERY_UPDATE:
        return str_eq(x->query_update.query, y->query_update.query);
    case PROTO_MSG_ERROR:
        return x->error.code == y->error.code && str_eq(x->error.message, y->error.message);
    default:
        return false;
    }
}

/* Decode json as type and expect failure with code rc and an err containing want. */
static void expect_reject(proto_type t, const char *json, size_t len, int rc, const char *want) {
    proto_msg m;
    char err[PROTO_ERR_LEN] = "";
    int got = proto_decode(t, json, len, &m, err);
    ASSERT_MSG(got == rc, "%s: %.*s: rc %d (%s), want %d; err \"%s\"", proto_type_name(t), (int)len,
               json, got, proto_strerror(got), rc, err);
    ASSERT_MSG(strstr(err, want), "%s: %.*s: err \"%s\" does not contain \"%s\"",
               proto_type_name(t), (int)len, json, err, want);
    /* the message names the message type first */
    ASSERT_MSG(strncmp(err, proto_type_name(t), strlen(proto_type_name(t))) == 0, "err \"%s\"",
               err);
    /* a failed decode leaves nothing owned */
    static const proto_msg zero;
    ASSERT_MSG(memcmp(&m, &zero, sizeof m) == 0, "output not zeroed after a failed decode");
}

#define REJECT(t, json, want) expect_reject(t, json, strlen(json), PROTO_EINVAL, want)
#define REJECT_SYNTAX(t, json, want) expect_reject(t, json, strlen(json), PROTO_ESYNTAX, want)

static void expect_accept(proto_type t, const char *json, proto_msg *m) {
    char err[PROTO_ERR_LEN] = "";
    int rc = proto_decode(t, json, strlen(json), m, err);
    ASSERT_MSG(rc == 0, "%s: %s: rejected: %s", proto_type_name(t), json, err);
}

#define COMMENTARY_OK                                                                              \
    "\"stream\":\"cam1\",\"seq\":3,\"wall_time\":\"2026-12-02T05:48:00.123Z\",\"text\":\"hi\","    \
    "\"latency_ms\":5"

/* ---- examples and schemas ---------------------------------------------------------- */

/* Every example decodes, encodes to the same JSON, decodes again to the same fields, and
 * re-encodes to the same bytes. */
static void test_proto_examples_roundtrip(void) {
    char *names[MAX_FILES];
    int n = list_dir(EXAMPLES_DIR, ".json", names);
    ASSERT_MSG(n >= 10, "only %d examples", n);
    for (int i = 0; i < n; i++) {
        char path[512], stem[128], err[PROTO_ERR_LEN] = "";
        snprintf(path, sizeof path, "%s/%s", EXAMPLES_DIR, names[i]);
        stem_of(names[i], stem, sizeof stem);
        proto_type t = proto_type_from_name(stem);
        ASSERT_MSG(t != PROTO_MSG_UNKNOWN, "%s: no message type \"%s\"", path, stem);
        size_t len;
        char *text = read_file(path, &len);

        proto_msg a, b;
        int rc = proto_decode(t, text, len, &a, err);
        ASSERT_MSG(rc == 0, "%s: %s", path, err);
        char buf[4096], buf2[4096];
        size_t n1 = 0, n2 = 0;
        rc = proto_encode(t, &a, buf, sizeof buf, &n1, err);
        ASSERT_MSG(rc == 0, "%s: encode: %s", path, err);
        ASSERT_EQ_INT(strlen(buf), n1);

        json_t *orig = json_loadb(text, len, 0, NULL), *enc = json_loadb(buf, n1, 0, NULL);
        ASSERT(orig && enc);
        ASSERT_MSG(json_equal(orig, enc), "%s: re-encoded JSON differs:\n  %s\n  %s", path, text,
                   buf);
        /* events: "type" is the first key */
        if (json_object_get(orig, "type")) {
            char head[160];
            snprintf(head, sizeof head, "{\"type\":\"%s\",", stem);
            ASSERT_MSG(strncmp(buf, head, strlen(head)) == 0, "%s: %s", path, buf);
            ASSERT_EQ_INT(proto_message_type(text, len), t);
        } else {
            ASSERT_EQ_INT(proto_message_type(text, len), PROTO_MSG_UNKNOWN);
        }

        rc = proto_decode(t, buf, n1, &b, err);
        ASSERT_MSG(rc == 0, "%s: decode of the encoding: %s", path, err);
        ASSERT_MSG(msg_equal(t, &a, &b), "%s: fields differ after a round trip", path);
        rc = proto_encode(t, &b, buf2, sizeof buf2, &n2, err);
        ASSERT_MSG(rc == 0 && n2 == n1 && memcmp(buf, buf2, n1) == 0, "%s: %s vs %s", path, buf,
                   buf2);
        ASSERT_EQ_INT(proto_check(t, &b, err), 0);

        json_decref(orig);
        json_decref(enc);
        proto_msg_deinit(t, &a);
        proto_msg_deinit(t, &b);
        free(text);
    }
    free_names(names, n);
}

/* Every example has a schema, every schema at least one example; each schema is draft
 * 2020-12, closed (additionalProperties false) and requires only keys it describes; the
 * examples of each schema use all of its properties. */
static void test_proto_examples_match_schemas(void) {
    char *ex[MAX_FILES], *sc[MAX_FILES];
    int n_ex = list_dir(EXAMPLES_DIR, ".json", ex);
    int n_sc = list_dir(SCHEMA_DIR, ".schema.json", sc);
    ASSERT_EQ_INT(n_sc, PROTO_MSG_COUNT - 1);
    for (int i = 0; i < n_ex; i++) {
        char stem[128], path[512];
        stem_of(ex[i], stem, sizeof stem);
        snprintf(path, sizeof path, "%s/%s.schema.json", SCHEMA_DIR, stem);
        ASSERT_MSG(access(path, R_OK) == 0, "example %s has no schema %s", ex[i], path);
    }
    for (int i = 0; i < n_sc; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s", sc[i]);
        *strstr(name, ".schema.json") = 0;
        ASSERT_MSG(proto_type_from_name(name) != PROTO_MSG_UNKNOWN, "schema %s: no such message",
                   sc[i]);
        json_t *s = load_schema(name);
        ASSERT_EQ_STR(json_string_value(json_object_get(s, "$schema")),
                      "https://json-schema.org/draft/2020-12/schema");
        ASSERT_MSG(json_is_false(json_object_get(s, "additionalProperties")),
                   "%s: additionalProperties is not false", sc[i]);
        json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
        ASSERT_MSG(json_is_object(props) && json_is_array(req), "%s", sc[i]);
        size_t k;
        json_t *r;
        json_array_foreach(req, k, r) {
            ASSERT_MSG(json_object_get(props, json_string_value(r)), "%s: requires unknown '%s'",
                       sc[i], json_string_value(r));
        }
        /* the examples of this schema, together, use every property */
        json_t *seen = json_object();
        int n_mine = 0;
        for (int j = 0; j < n_ex; j++) {
            char stem[128], path[512];
            stem_of(ex[j], stem, sizeof stem);
            if (strcmp(stem, name) != 0) continue;
            n_mine++;
            snprintf(path, sizeof path, "%s/%s", EXAMPLES_DIR, ex[j]);
            json_t *e = load_json(path);
            const char *key;
            json_t *v;
            json_object_foreach(e, key, v) json_object_set(seen, key, json_true());
            json_decref(e);
        }
        ASSERT_MSG(n_mine > 0, "schema %s has no example in %s", sc[i], EXAMPLES_DIR);
        const char *key;
        json_t *v;
        json_object_foreach(props, key, v) {
            ASSERT_MSG(json_object_get(seen, key), "no example of %s uses '%s'", name, key);
        }
        json_decref(seen);
        json_decref(s);
    }
    free_names(ex, n_ex);
    free_names(sc, n_sc);
}

/* The object at path ("", "error", "streams[0]") inside root. */
static json_t *locate(json_t *root, const char *path) {
    json_t *j = root;
    const char *p = path;
    while (*p && j) {
        if (*p == '.') p++;
        if (*p == '[') {
            j = json_array_get(j, strtoul(p + 1, (char **)&p, 10));
            p++; /* ']' */
        } else {
            size_t l = strcspn(p, ".[");
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)l, p);
            j = json_object_get(j, key);
            p += l;
        }
    }
    ASSERT_MSG(j, "no '%s'", path);
    return j;
}

static void join(char *dst, size_t cap, const char *prefix, const char *key) {
    snprintf(dst, cap, "%s%s%s", prefix, *prefix ? "." : "", key);
}

/* Decode root (a whole example of type t) after a change; expect ok (want NULL) or a
 * rejection whose err contains want. */
static void decode_changed(proto_type t, json_t *root, const char *want, const char *what) {
    char *s = json_dumps(root, JSON_COMPACT);
    proto_msg m;
    char err[PROTO_ERR_LEN] = "";
    int rc = proto_decode(t, s, strlen(s), &m, err);
    if (want) {
        ASSERT_MSG(rc == PROTO_EINVAL, "%s %s: accepted %s", proto_type_name(t), what, s);
        ASSERT_MSG(strstr(err, want), "%s %s: err \"%s\" lacks \"%s\"", proto_type_name(t), what,
                   err, want);
    } else {
        ASSERT_MSG(rc == 0, "%s %s: rejected: %s", proto_type_name(t), what, err);
        proto_msg_deinit(t, &m);
    }
    free(s);
}

/* For every key of the object at `path` in example `ex`: removing it is refused iff the
 * schema `sch` requires it; a boolean (no field takes one) or a value of the other kind is
 * refused naming it; an extra key is refused naming it.  Recurses into objects/arrays. */
static void mutate(proto_type t, json_t *ex, const char *path, json_t *sch) {
    json_t *props = json_object_get(sch, "properties"), *req = json_object_get(sch, "required");
    json_t *obj = locate(ex, path);
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        char p[256], want[300];
        join(p, sizeof p, path, key);
        json_t *fs = json_object_get(props, key);
        ASSERT_MSG(fs, "%s: '%s' is not in the schema", proto_type_name(t), p);
        bool required = false;
        size_t k;
        json_t *r;
        json_array_foreach(req, k, r) required |= strcmp(json_string_value(r), key) == 0;

        json_t *copy = json_deep_copy(ex);
        json_object_del(locate(copy, path), key);
        snprintf(want, sizeof want, "'%s' is required", p);
        decode_changed(t, copy, required ? want : NULL, "without a key");
        json_decref(copy);

        snprintf(want, sizeof want, "'%s'", p);
        json_t *wrong[2] = {json_true(), json_is_string(val) ? json_integer(7) : json_string("x")};
        for (int w = 0; w < 2; w++) {
            copy = json_deep_copy(ex);
            json_object_set(locate(copy, path), key, wrong[w]);
            decode_changed(t, copy, want, "with a wrong type");
            json_decref(copy);
            json_decref(wrong[w]);
        }

        /* "" is refused iff the schema says minLength (free-form strings only) */
        if (json_is_string(val) && !json_object_get(fs, "const") && !json_object_get(fs, "enum") &&
            !json_object_get(fs, "pattern")) {
            copy = json_deep_copy(ex);
            json_object_set_new(locate(copy, path), key, json_string(""));
            decode_changed(t, copy, json_object_get(fs, "minLength") ? want : NULL, "empty");
            json_decref(copy);
        }
        /* bounds: just outside each is refused naming the key */
        json_t *lo = json_object_get(fs, "minimum"), *xlo = json_object_get(fs, "exclusiveMinimum");
        json_t *hi = json_object_get(fs, "maximum");
        const char *ty = json_string_value(json_object_get(fs, "type"));
        double step =
            ty && strcmp(ty, "integer") == 0 ? 1 : 0.5; /* 0.5 would be "not an integer" */
        json_t *outside[3] = {lo ? json_real(json_number_value(lo) - step) : NULL,
                              xlo ? json_real(json_number_value(xlo)) : NULL,
                              hi ? json_real(json_number_value(hi) + step) : NULL};
        for (int o = 0; o < 3; o++) {
            if (!outside[o]) continue;
            copy = json_deep_copy(ex);
            json_object_set_new(locate(copy, path), key, outside[o]);
            decode_changed(t, copy, want, "out of bounds");
            json_decref(copy);
        }

        /* recurse: an inline object schema, or an array of $ref'd objects */
        if (json_is_object(val) && json_object_get(fs, "properties")) {
            mutate(t, ex, p, fs);
        } else if (json_is_array(val) && json_array_size(val) > 0) {
            const char *ref =
                json_string_value(json_object_get(json_object_get(fs, "items"), "$ref"));
            ASSERT_MSG(ref, "%s: '%s' items have no $ref", proto_type_name(t), p);
            char name[128];
            snprintf(name, sizeof name, "%s", ref);
            *strstr(name, ".schema.json") = 0;
            json_t *sub = load_schema(name);
            for (size_t e = 0; e < json_array_size(val); e++) {
                char pe[300];
                snprintf(pe, sizeof pe, "%s[%zu]", p, e);
                mutate(t, ex, pe, sub);
            }
            json_decref(sub);
        }
    }
    json_t *copy = json_deep_copy(ex);
    json_object_set_new(locate(copy, path), "bogus", json_integer(1));
    char p[256], want[300];
    join(p, sizeof p, path, "bogus");
    snprintf(want, sizeof want, "unknown key '%s'", p);
    decode_changed(t, copy, want, "with an unknown key");
    json_decref(copy);
}

/* The decoder's tables agree with the schemas' required and properties lists. */
static void test_proto_decoder_follows_schema(void) {
    char *ex[MAX_FILES];
    int n = list_dir(EXAMPLES_DIR, ".json", ex);
    for (int i = 0; i < n; i++) {
        char stem[128], path[512];
        stem_of(ex[i], stem, sizeof stem);
        snprintf(path, sizeof path, "%s/%s", EXAMPLES_DIR, ex[i]);
        json_t *e = load_json(path), *s = load_schema(stem);
        mutate(proto_type_from_name(stem), e, "", s);
        json_decref(e);
        json_decref(s);
    }
    free_names(ex, n);
}

/* ---- bad inputs -------------------------------------------------------------------- */

static void test_proto_rejects_bad_input(void) {
    const proto_type C = PROTO_MSG_COMMENTARY;
    /* missing, wrong type, unknown key, wrong "type" */
    REJECT(C,
           "{\"type\":\"commentary\",\"stream\":\"cam1\",\"seq\":3,\"t_start\":1,\"t_end\":2,"
           "\"wall_time\":\"2026-12-02T05:48:00.123Z\",\"latency_ms\":5}",
           "commentary: 'text' is required");
    REJECT(C, "{\"type\":\"commentary\"," COMMENTARY_OK ",\"t_start\":\"1\",\"t_end\":2}",
           "commentary: 't_start' must be a number");
    REJECT(C, "{\"type\":\"commentary\"," COMMENTARY_OK ",\"t_start\":1,\"t_end\":2,\"who\":1}",
           "commentary: unknown key 'who'");
    REJECT(C, "{\"type\":\"gap\"," COMMENTARY_OK ",\"t_start\":1,\"t_end\":2}",
           "commentary: 'type' must be \"commentary\"");
    REJECT(C, "{" COMMENTARY_OK ",\"t_start\":1,\"t_end\":2}", "commentary: 'type' is required");
    /* seq */
    REJECT(PROTO_MSG_STATUS,
           "{\"type\":\"status\",\"stream\":\"a\",\"seq\":0,\"wall_time\":"
           "\"2026-12-02T05:48:00.123Z\",\"state\":\"live\"}",
           "status: 'seq' must be >= 1");
    REJECT(PROTO_MSG_STATUS,
           "{\"type\":\"status\",\"stream\":\"a\",\"seq\":1.5,\"wall_time\":"
           "\"2026-12-02T05:48:00.123Z\",\"state\":\"live\"}",
           "status: 'seq' must be an integer");
    REJECT(PROTO_MSG_STATUS,
           "{\"type\":\"status\",\"stream\":\"a\",\"seq\":\"1\",\"wall_time\":"
           "\"2026-12-02T05:48:00.123Z\",\"state\":\"live\"}",
           "status: 'seq' must be an integer");
    /* t_end <= t_start */
    REJECT(C, "{\"type\":\"commentary\"," COMMENTARY_OK ",\"t_start\":2,\"t_end\":2}",
           "commentary: 't_end' must be greater than 't_start'");
    REJECT(C, "{\"type\":\"commentary\"," COMMENTARY_OK ",\"t_start\":3,\"t_end\":2.5}",
           "commentary: 't_end' must be greater than 't_start'");
    REJECT(C, "{\"type\":\"commentary\"," COMMENTARY_OK ",\"t_start\":-1,\"t_end\":2}",
           "commentary: 't_start' must be >= 0");
    REJECT(PROTO_MSG_GAP,
           "{\"type\":\"gap\",\"stream\":\"a\",\"seq\":1,\"wall_time\":"
           "\"2026-12-02T05:48:00.123Z\",\"t_start\":5,\"t_end\":4,\"reason\":\"engine behind\"}",
           "gap: 't_end' must be greater than 't_start'");
    REJECT(PROTO_MSG_GAP,
           "{\"type\":\"gap\",\"stream\":\"a\",\"seq\":1,\"wall_time\":"
           "\"2026-12-02T05:48:00.123Z\",\"t_start\":5,\"t_end\":6,\"reason\":\"\"}",
           "gap: 'reason' must not be empty");
    REJECT(C,
           "{\"type\":\"commentary\",\"stream\":\"cam1\",\"seq\":3,\"wall_time\":"
           "\"2026-12-02T05:48:00.123Z\",\"text\":\"hi\",\"latency_ms\":-0.5,"
           "\"t_start\":1,\"t_end\":2}",
           "commentary: 'latency_ms' must be >= 0");
    /* ids */
    const proto_type SC = PROTO_MSG_STREAM_CREATE;
    REJECT(SC, "{\"id\":\"cam 1\",\"source\":\"rtsp://x\"}",
           "stream_create: 'id' must match [A-Za-z0-9_-]{1,64}");
    REJECT(SC, "{\"id\":\"\",\"source\":\"rtsp://x\"}", "'id' must match");
    REJECT(SC, "{\"id\":\"cam/../1\",\"source\":\"rtsp://x\"}", "'id' must match");
    REJECT(SC, "{\"id\":\"caméra\",\"source\":\"rtsp://x\"}", "'id' must match");
    REJECT(SC,
           "{\"id\":\"a1234567890123456789012345678901234567890123456789012345678901234\","
           "\"source\":\"rtsp://x\"}",
           "'id' must match"); /* 65 characters */
    REJECT(SC, "{\"id\":\"cam1\\n\",\"source\":\"rtsp://x\"}", "'id' must match");
    REJECT(SC, "{\"id\":\"cam1\",\"source\":\"\"}", "stream_create: 'source' must not be empty");
    REJECT(SC, "{\"id\":\"cam1\",\"source\":\"rtsp://x\",\"query\":null}",
           "stream_create: 'query' must be a string");
    REJECT(SC, "{\"id\":7,\"source\":\"rtsp://x\"}", "stream_create: 'id' must be a string");
    /* wall times */
    REJECT(PROTO_MSG_HELLO,
           "{\"type\":\"hello\",\"stream\":\"a\",\"wall_time\":\"2026-12-02T05:48:00Z\","
           "\"last_seq\":0,\"history_first_seq\":0}",
           "hello: 'wall_time' must be an RFC 3339 UTC time with milliseconds");
    REJECT(PROTO_MSG_HELLO,
           "{\"type\":\"hello\",\"stream\":\"a\",\"wall_time\":\"2026-13-02T05:48:00.000Z\","
           "\"last_seq\":0,\"history_first_seq\":0}",
           "'wall_time' must be");
    REJECT(PROTO_MSG_HELLO,
           "{\"type\":\"hello\",\"stream\":\"a\",\"wall_time\":\"2026-12-02T05:48:00.000+00:00\","
           "\"last_seq\":0,\"history_first_seq\":0}",
           "'wall_time' must be");
    REJECT(PROTO_MSG_HELLO,
           "{\"type\":\"hello\",\"stream\":\"a\",\"wall_time\":\"2026-12-02T05:48:00.123Z\","
           "\"last_seq\":3,\"history_first_seq\":4}",
           "hello: 'history_first_seq' must be <= 'last_seq'");
    REJECT(PROTO_MSG_HELLO,
           "{\"type\":\"hello\",\"stream\":\"a\",\"wall_time\":\"2026-12-02T05:48:00.123Z\","
           "\"last_seq\":3,\"history_first_seq\":1,\"resumed_from\":-1}",
           "hello: 'resumed_from' must be >= 0");
    /* states and the retry rule */
    REJECT(PROTO_MSG_STATUS,
           "{\"type\":\"status\",\"stream\":\"a\",\"seq\":1,\"wall_time\":"
           "\"2026-12-02T05:48:00.123Z\",\"state\":\"paused\"}",
           "status: 'state' must be one of connecting, live, reconnecting, ended");
    REJECT(PROTO_MSG_STATUS,
           "{\"type\":\"status\",\"stream\":\"a\",\"seq\":1,\"wall_time\":"
           "\"2026-12-02T05:48:00.123Z\",\"state\":\"live\",\"retry_in_s\":2}",
           "status: 'retry_in_s' is only allowed with state \"reconnecting\"");
    REJECT(PROTO_MSG_DROPPED,
           "{\"type\":\"dropped\",\"stream\":\"a\",\"wall_time\":\"2026-12-02T05:48:00.123Z\","
           "\"count\":2,\"first_seq\":9,\"last_seq\":8}",
           "dropped: 'last_seq' must be >= 'first_seq'");
    REJECT(PROTO_MSG_DROPPED,
           "{\"type\":\"dropped\",\"stream\":\"a\",\"wall_time\":\"2026-12-02T05:48:00.123Z\","
           "\"count\":0,\"first_seq\":9,\"last_seq\":9}",
           "dropped: 'count' must be >= 1");
    /* nested paths */
    REJECT(PROTO_MSG_ERROR, "{\"error\":{\"code\":99,\"message\":\"x\"}}",
           "error: 'error.code' must be between 100 and 599");
    REJECT(PROTO_MSG_ERROR, "{\"error\":{\"code\":404,\"message\":\"\"}}",
           "error: 'error.message' must not be empty");
    REJECT(PROTO_MSG_ERROR, "{\"error\":{\"code\":404,\"message\":\"x\",\"at\":1}}",
           "error: unknown key 'error.at'");
    REJECT(PROTO_MSG_ERROR, "{\"error\":\"not found\"}", "error: 'error' must be an object");
    REJECT(PROTO_MSG_ERROR, "{\"error\":{\"message\":\"x\"}}", "error: 'error.code' is required");
    const char *info =
        "{\"id\":\"b\",\"source\":\"s\",\"query\":\"\",\"state\":\"%s\",\"chunks\":0,"
        "\"last_seq\":0,\"kv_tokens\":0,\"latency_ms_p50\":%s,"
        "\"created\":\"2026-12-02T05:48:00.123Z\"}";
    char list[1024], i1[300], i2[300];
    snprintf(i1, sizeof i1, info, "live", "null");
    snprintf(i2, sizeof i2, info, "paused", "1.5");
    snprintf(list, sizeof list, "{\"streams\":[%s,%s]}", i1, i2);
    REJECT(PROTO_MSG_STREAM_LIST, list,
           "stream_list: 'streams[1].state' must be one of connecting, live, reconnecting, ended");
    snprintf(i2, sizeof i2, info, "live", "\"fast\"");
    snprintf(list, sizeof list, "{\"streams\":[%s,%s]}", i1, i2);
    REJECT(PROTO_MSG_STREAM_LIST, list,
           "stream_list: 'streams[1].latency_ms_p50' must be a number or null");
    REJECT(PROTO_MSG_STREAM_LIST, "{\"streams\":[3]}",
           "stream_list: 'streams[0]' must be an object");
    REJECT(PROTO_MSG_STREAM_LIST, "{\"streams\":{}}", "stream_list: 'streams' must be an array");
    REJECT(PROTO_MSG_QUERY_UPDATE, "{}", "query_update: 'query' is required");

    /* not JSON, not an object */
    REJECT_SYNTAX(C, "", "commentary: not JSON");
    REJECT_SYNTAX(C, "{", "commentary: not JSON");
    REJECT_SYNTAX(C, "{\"type\":\"commentary\"} {}", "commentary: not JSON");
    REJECT_SYNTAX(C, "{\"seq\":NaN}", "commentary: not JSON");
    REJECT_SYNTAX(C, "{\"seq\":99999999999999999999}", "commentary: not JSON");
    REJECT_SYNTAX(C, "{\"text\":\"a\\u0000b\"}", "commentary: not JSON");
    REJECT_SYNTAX(C, "{\"seq\":1,\"seq\":2}", "duplicate");
    REJECT(C, "[1]", "commentary: must be a JSON object");
    REJECT(C, "3", "commentary: must be a JSON object");
    REJECT(C, "\"commentary\"", "commentary: must be a JSON object");
    REJECT(C, "null", "commentary: must be a JSON object");
    expect_reject(C, NULL, 0, PROTO_ESYNTAX, "commentary: not JSON");

    /* invalid UTF-8, named by key */
    REJECT_SYNTAX(C, "{\"type\":\"commentary\",\"text\":\"caf\xc3\"}",
                  "commentary: 'text' is not valid UTF-8");
    REJECT_SYNTAX(C, "{\"type\":\"commentary\",\"text\":\"x\xff y\"}",
                  "commentary: 'text' is not valid UTF-8");
    REJECT_SYNTAX(C, "{\"text\":\"\xc0\xaf\"}", "'text' is not valid UTF-8");     /* overlong */
    REJECT_SYNTAX(C, "{\"text\":\"\xed\xa0\x80\"}", "'text' is not valid UTF-8"); /* surrogate */
    REJECT_SYNTAX(C, "{\"text\":\"\xf4\x90\x80\x80\"}", "'text' is not valid UTF-8"); /* >10FFFF */
    REJECT_SYNTAX(C, "{\"te\xffxt\":1}", "commentary: a key is not valid UTF-8");
    REJECT_SYNTAX(PROTO_MSG_ERROR, "{\"error\":{\"code\":400,\"message\":\"\xfe\"}}",
                  "error: 'error.message' is not valid UTF-8");
    REJECT_SYNTAX(PROTO_MSG_ERROR, "{\"error\":{\"code\":400,\"m\xe2\x82\":\"x\"}}",
                  "error: a key in 'error' is not valid UTF-8");
    snprintf(i2, sizeof i2, info, "live", "null");
    char *q = strstr(i2, "\"query\":\"\"");
    ASSERT(q);
    memmove(q + 10, q + 9, strlen(q + 9) + 1); /* "query":"" -> "query":"\xff" */
    q[9] = '\xff';
    snprintf(list, sizeof list, "{\"streams\":[%s,%s]}", i1, i2);
    REJECT_SYNTAX(PROTO_MSG_STREAM_LIST, list,
                  "stream_list: 'streams[1].query' is not valid UTF-8");
}

/* Values at the edges of the schema, and JSON forms the schema allows. */
static void test_proto_accepts_edge_values(void) {
    proto_msg m;
    /* integral reals are integers (JSON Schema), integers are numbers */
    expect_accept(PROTO_MSG_COMMENTARY,
                  "{\"type\":\"commentary\",\"stream\":\"cam1\",\"seq\":3.0,\"t_start\":0,"
                  "\"t_end\":1e-3,\"wall_time\":\"9999-12-31T23:59:59.999Z\",\"text\":\"\","
                  "\"latency_ms\":0}",
                  &m);
    ASSERT_EQ_INT(m.commentary.seq, 3);
    ASSERT_NEAR(m.commentary.t_end, 0.001, 0);
    ASSERT_EQ_STR(m.commentary.text, "");
    char buf[512];
    size_t len;
    ASSERT_EQ_INT(proto_encode_commentary(&m.commentary, buf, sizeof buf, &len), 0);
    ASSERT_CONTAINS(buf, "\"seq\":3,\"t_start\":0.0,\"t_end\":0.001,");
    ASSERT_CONTAINS(buf, "\"latency_ms\":0.0}");
    proto_commentary_deinit(&m.commentary);
    ASSERT(m.commentary.text == NULL);
    proto_commentary_deinit(&m.commentary); /* twice is fine */

    /* escapes decode to UTF-8; keys in any order */
    expect_accept(PROTO_MSG_STREAM_CREATE,
                  "{\"source\":\"file:///v.mp4\",\"query\":\"caf\\u00e9 \\ud83d\\udd25\\\"\","
                  "\"id\":\"A-Z_a-z0-9\"}",
                  &m);
    ASSERT_EQ_STR(m.stream_create.query, "caf\xc3\xa9 \xf0\x9f\x94\xa5\"");
    ASSERT_EQ_STR(m.stream_create.id, "A-Z_a-z0-9");
    ASSERT(m.stream_create.previous_text == NULL);
    proto_stream_create_deinit(&m.stream_create);

    /* a 64-character id */
    expect_accept(PROTO_MSG_STREAM_CREATE,
                  "{\"id\":\"a123456789012345678901234567890123456789012345678901234567890123\","
                  "\"source\":\"x\"}",
                  &m);
    ASSERT_EQ_INT(strlen(m.stream_create.id), 64);
    proto_msg_deinit(PROTO_MSG_STREAM_CREATE, &m);

    /* an empty query clears it; a reconnecting status without its optional fields */
    expect_accept(PROTO_MSG_QUERY_UPDATE, "{\"query\":\"\"}", &m);
    ASSERT_EQ_STR(m.query_update.query, "");
    proto_query_update_deinit(&m.query_update);
    expect_accept(PROTO_MSG_STATUS,
                  "{\"type\":\"status\",\"stream\":\"a\",\"seq\":9007199254740993,"
                  "\"wall_time\":\"2026-12-02T05:48:00.123Z\",\"state\":\"reconnecting\"}",
                  &m);
    ASSERT_EQ_INT(m.status.seq, 9007199254740993LL); /* integers beyond 2^53 stay exact */
    ASSERT(!m.status.has_retry_in_s && m.status.detail == NULL);
    proto_status_deinit(&m.status);
}

/* ---- encoder ---------------------------------------------------------------------- */

static void test_proto_encode_checks_and_sizes(void) {
    proto_commentary c = {.stream = "cam1",
                          .seq = 7,
                          .t_start = 0.1,
                          .t_end = 1.1,
                          .wall_time = "2026-12-02T05:48:00.123Z",
                          .text = "say \"hi\"\n\xc3\xa9",
                          .latency_ms = 250};
    const char *want = "{\"type\":\"commentary\",\"stream\":\"cam1\",\"seq\":7,\"t_start\":0.1,"
                       "\"t_end\":1.1,\"wall_time\":\"2026-12-02T05:48:00.123Z\","
                       "\"text\":\"say \\\"hi\\\"\\n\xc3\xa9\",\"latency_ms\":250.0}";
    char buf[512];
    size_t len = 0;
    ASSERT_EQ_INT(proto_encode_commentary(&c, buf, sizeof buf, &len), 0);
    ASSERT_EQ_STR(buf, want);
    ASSERT_EQ_INT(len, strlen(want));

    /* sizing: NULL asks, too small says how much, exactly len + 1 fits */
    size_t need = 0;
    ASSERT_EQ_INT(proto_encode_commentary(&c, NULL, 0, &need), PROTO_ENOSPC);
    ASSERT_EQ_INT(need, len);
    ASSERT_EQ_INT(proto_encode_commentary(&c, buf, len, &need), PROTO_ENOSPC);
    ASSERT_EQ_INT(need, len);
    char *exact = malloc(len + 1);
    ASSERT_EQ_INT(proto_encode_commentary(&c, exact, len + 1, &need), 0);
    ASSERT_EQ_STR(exact, want);
    free(exact);
    char err[PROTO_ERR_LEN];
    ASSERT_EQ_INT(proto_encode(PROTO_MSG_COMMENTARY, (const proto_msg *)&c, buf, 10, &need, err),
                  PROTO_ENOSPC);
    ASSERT_CONTAINS(err, "commentary: needs");

    /* the encoder refuses what the decoder would */
    proto_commentary b = c;
    snprintf(b.stream, sizeof b.stream, "bad id");
    ASSERT_EQ_INT(proto_encode_commentary(&b, buf, sizeof buf, &len), PROTO_EINVAL);
    ASSERT_EQ_INT(proto_check(PROTO_MSG_COMMENTARY, (const proto_msg *)&b, err), PROTO_EINVAL);
    ASSERT_EQ_STR(err, "commentary: 'stream' must match [A-Za-z0-9_-]{1,64}");
    memset(b.stream, 'a', sizeof b.stream); /* not NUL-terminated */
    ASSERT_EQ_INT(proto_check(PROTO_MSG_COMMENTARY, (const proto_msg *)&b, err), PROTO_EINVAL);
    ASSERT_CONTAINS(err, "'stream' must match");

    b = c;
    b.t_end = b.t_start;
    ASSERT_EQ_INT(proto_check(PROTO_MSG_COMMENTARY, (const proto_msg *)&b, err), PROTO_EINVAL);
    ASSERT_EQ_STR(err, "commentary: 't_end' must be greater than 't_start'");
    b = c;
    b.latency_ms = NAN;
    ASSERT_EQ_INT(proto_encode_commentary(&b, buf, sizeof buf, &len), PROTO_EINVAL);
    ASSERT_EQ_INT(proto_check(PROTO_MSG_COMMENTARY, (const proto_msg *)&b, err), PROTO_EINVAL);
    ASSERT_EQ_STR(err, "commentary: 'latency_ms' must be a finite number");
    b = c;
    b.text = "bad \xff";
    ASSERT_EQ_INT(proto_check(PROTO_MSG_COMMENTARY, (const proto_msg *)&b, err), PROTO_EINVAL);
    ASSERT_EQ_STR(err, "commentary: 'text' is not valid UTF-8");
    b = c;
    b.text = NULL;
    ASSERT_EQ_INT(proto_check(PROTO_MSG_COMMENTARY, (const proto_msg *)&b, err), PROTO_EINVAL);
    ASSERT_EQ_STR(err, "commentary: 'text' is required");
    b = c;
    b.seq = 0;
    ASSERT_EQ_INT(proto_check(PROTO_MSG_COMMENTARY, (const proto_msg *)&b, err), PROTO_EINVAL);
    ASSERT_EQ_STR(err, "commentary: 'seq' must be >= 1");
    b = c;
    b.wall_time[0] = 0;
    ASSERT_EQ_INT(proto_check(PROTO_MSG_COMMENTARY, (const proto_msg *)&b, err), PROTO_EINVAL);
    ASSERT_CONTAINS(err, "commentary: 'wall_time' must be an RFC 3339");

    /* status: optional fields absent/present, the retry rule, a bad state */
    proto_status s = {.stream = "cam1",
                      .seq = 2,
                      .wall_time = "2026-12-02T05:48:00.123Z",
                      .state = PROTO_STATE_LIVE};
    ASSERT_EQ_INT(proto_encode_status(&s, buf, sizeof buf, &len), 0);
    ASSERT_EQ_STR(buf, "{\"type\":\"status\",\"stream\":\"cam1\",\"seq\":2,"
                       "\"wall_time\":\"2026-12-02T05:48:00.123Z\",\"state\":\"live\"}");
    s.has_retry_in_s = true;
    s.retry_in_s = 1.5;
    ASSERT_EQ_INT(proto_check(PROTO_MSG_STATUS, (const proto_msg *)&s, err), PROTO_EINVAL);
    ASSERT_EQ_STR(err, "status: 'retry_in_s' is only allowed with state \"reconnecting\"");
    s.state = PROTO_STATE_RECONNECTING;
    s.detail = "eof";
    ASSERT_EQ_INT(proto_encode_status(&s, buf, sizeof buf, &len), 0);
    ASSERT_CONTAINS(buf, "\"state\":\"reconnecting\",\"detail\":\"eof\",\"retry_in_s\":1.5}");
    s.state = (proto_state)9;
    ASSERT_EQ_INT(proto_check(PROTO_MSG_STATUS, (const proto_msg *)&s, err), PROTO_EINVAL);
    ASSERT_CONTAINS(err, "status: 'state' must be one of");

    /* stream_list: elements are checked with their path; null p50 */
    proto_stream_info infos[2] = {
        {.id = "a",
         .source = "rtsp://a",
         .query = "",
         .state = PROTO_STATE_LIVE,
         .chunks = 1,
         .last_seq = 2,
         .kv_tokens = 3,
         .has_latency_ms_p50 = true,
         .latency_ms_p50 = 0.25,
         .created = "2026-12-02T05:48:00.123Z"},
        {.id = "b", .source = "rtsp://b", .query = NULL, .created = "2026-12-02T05:48:00.123Z"},
    };
    proto_stream_list l = {.streams = infos, .n_streams = 2};
    ASSERT_EQ_INT(proto_check(PROTO_MSG_STREAM_LIST, (const proto_msg *)&l, err), PROTO_EINVAL);
    ASSERT_EQ_STR(err, "stream_list: 'streams[1].query' is required");
    infos[1].query = "q";
    ASSERT_EQ_INT(proto_encode_stream_list(&l, buf, sizeof buf, &len), 0);
    ASSERT_CONTAINS(buf, "\"latency_ms_p50\":0.25,");
    ASSERT_CONTAINS(buf, "\"latency_ms_p50\":null,");
    infos[1].kv_tokens = -1;
    ASSERT_EQ_INT(proto_check(PROTO_MSG_STREAM_LIST, (const proto_msg *)&l, err), PROTO_EINVAL);
    ASSERT_EQ_STR(err, "stream_list: 'streams[1].kv_tokens' must be >= 0");
    l.streams = NULL;
    ASSERT_EQ_INT(proto_encode_stream_list(&l, buf, sizeof buf, &len), PROTO_EINVAL);
    l.n_streams = 0;
    ASSERT_EQ_INT(proto_encode_stream_list(&l, buf, sizeof buf, &len), 0);
    ASSERT_EQ_STR(buf, "{\"streams\":[]}");

    proto_error e = {.code = 404, .message = "stream 'x' not found"};
    ASSERT_EQ_INT(proto_encode_error(&e, buf, sizeof buf, &len), 0);
    ASSERT_EQ_STR(buf, "{\"error\":{\"code\":404,\"message\":\"stream 'x' not found\"}}");
    e.code = 600;
    ASSERT_EQ_INT(proto_check(PROTO_MSG_ERROR, (const proto_msg *)&e, err), PROTO_EINVAL);
    ASSERT_EQ_STR(err, "error: 'error.code' must be between 100 and 599");

    proto_hello h = {.stream = "x",
                     .wall_time = "2026-12-02T05:48:00.123Z",
                     .last_seq = 5,
                     .history_first_seq = 2,
                     .has_resumed_from = true,
                     .resumed_from = 0};
    ASSERT_EQ_INT(proto_encode_hello(&h, buf, sizeof buf, &len), 0);
    ASSERT_CONTAINS(buf, "\"history_first_seq\":2,\"resumed_from\":0}");

    ASSERT_EQ_INT(
        proto_encode(PROTO_MSG_UNKNOWN, (const proto_msg *)&e, buf, sizeof buf, &len, err),
        PROTO_EINVAL);
}

/* Numbers keep their value through text: DBL_DIG digits, reals stay reals. */
static void test_proto_encode_numbers(void) {
    const double vals[] = {0.1, 0.3, 1.0 / 3, 123456.789012, 1e-7, 5e15, 86400.04};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        proto_gap g = {.stream = "s",
                       .seq = 1,
                       .wall_time = "2026-12-02T05:48:00.123Z",
                       .t_start = vals[i],
                       .t_end = vals[i] * 2,
                       .reason = "r"};
        char buf[512];
        size_t len;
        ASSERT_EQ_INT(proto_encode_gap(&g, buf, sizeof buf, &len), 0);
        proto_gap back;
        char err[PROTO_ERR_LEN];
        ASSERT_MSG(proto_decode_gap(buf, len, &back, err) == 0, "%s: %s", buf, err);
        /* 15 significant digits */
        ASSERT_NEAR(back.t_start, vals[i], fabs(vals[i]) * 1e-14);
        char again[512];
        size_t len2;
        ASSERT_EQ_INT(proto_encode_gap(&back, again, sizeof again, &len2), 0);
        ASSERT_EQ_STR(again, buf); /* stable after one trip */
        proto_gap_deinit(&back);
    }
    proto_gap g = {.stream = "s",
                   .seq = 1,
                   .wall_time = "2026-12-02T05:48:00.123Z",
                   .t_start = 0.1,
                   .t_end = 12,
                   .reason = "r"};
    char buf[512];
    size_t len;
    ASSERT_EQ_INT(proto_encode_gap(&g, buf, sizeof buf, &len), 0);
    ASSERT_CONTAINS(buf, "\"t_start\":0.1,\"t_end\":12.0,");
}

/* ---- values ----------------------------------------------------------------------- */

static void test_proto_wall_time(void) {
    char b[PROTO_WALL_TIME_SIZE];
    ASSERT_EQ_INT(proto_format_wall_time(0, b), 0);
    ASSERT_EQ_STR(b, "1970-01-01T00:00:00.000Z");
    ASSERT_EQ_INT(proto_format_wall_time(1796190480.123, b), 0);
    ASSERT_EQ_STR(b, "2026-12-02T05:48:00.123Z");
    ASSERT_EQ_INT(proto_format_wall_time(1.001, b), 0); /* 1.000999... in binary */
    ASSERT_EQ_STR(b, "1970-01-01T00:00:01.001Z");
    ASSERT_EQ_INT(proto_format_wall_time(59.9999, b), 0); /* truncated, not rounded up */
    ASSERT_EQ_STR(b, "1970-01-01T00:00:59.999Z");
    ASSERT_EQ_INT(proto_format_wall_time(-0.5, b), 0);
    ASSERT_EQ_STR(b, "1969-12-31T23:59:59.500Z");
    ASSERT_EQ_INT(proto_format_wall_time(951782400.25, b), 0); /* leap day */
    ASSERT_EQ_STR(b, "2000-02-29T00:00:00.250Z");
    ASSERT_EQ_INT(proto_format_wall_time(253402300799.999, b), 0);
    ASSERT_EQ_STR(b, "9999-12-31T23:59:59.999Z");
    ASSERT_EQ_INT(proto_format_wall_time(253402300800.0, b), PROTO_EINVAL);
    ASSERT_EQ_STR(b, "");
    ASSERT_EQ_INT(proto_format_wall_time(NAN, b), PROTO_EINVAL);
    ASSERT_EQ_INT(proto_format_wall_time(-INFINITY, b), PROTO_EINVAL);
    ASSERT_EQ_INT(proto_format_wall_time(-62167219201.0, b), PROTO_EINVAL);
    ASSERT_EQ_INT(proto_now_wall_time(b), 0);
    ASSERT_MSG(proto_valid_wall_time(b), "now: %s", b);
    ASSERT(strncmp(b, "20", 2) == 0);

    ASSERT(proto_valid_wall_time("2026-12-02T05:48:00.123Z"));
    ASSERT(proto_valid_wall_time("0000-01-01T00:00:00.000Z"));
    const char *bad[] = {"2026-12-02T05:48:00Z",
                         "2026-12-02T05:48:00.123",
                         "2026-12-02 05:48:00.123Z",
                         "2026-12-02T24:00:00.000Z",
                         "2026-00-02T05:48:00.123Z",
                         "2026-12-32T05:48:00.123Z",
                         "2026-12-02T05:60:00.123Z",
                         "2026-12-02T05:48:60.123Z",
                         "2026-12-02T05:48:00.1234Z",
                         "2026-12-02t05:48:00.123z",
                         "",
                         "+2026-12-02T05:48:00.123Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ASSERT_MSG(!proto_valid_wall_time(bad[i]), "accepted \"%s\"", bad[i]);
    ASSERT(!proto_valid_wall_time(NULL));

    ASSERT(proto_valid_id("a"));
    ASSERT(proto_valid_id("cam_1-B"));
    ASSERT(!proto_valid_id(""));
    ASSERT(!proto_valid_id(NULL));
    ASSERT(!proto_valid_id("a.b"));
    char id[80];
    memset(id, 'x', sizeof id);
    id[64] = 0;
    ASSERT(proto_valid_id(id));
    id[64] = 'x';
    id[65] = 0;
    ASSERT(!proto_valid_id(id));
}

static void test_proto_message_type(void) {
    const char *j = "{\"type\":\"gap\"}";
    ASSERT_EQ_INT(proto_message_type(j, strlen(j)), PROTO_MSG_GAP);
    j = "{\"seq\":1,\"type\":\"hello\"}";
    ASSERT_EQ_INT(proto_message_type(j, strlen(j)), PROTO_MSG_HELLO);
    const char *unknown[] = {"{\"type\":\"stream_info\"}",
                             "{\"type\":\"bogus\"}",
                             "{\"type\":7}",
                             "{}",
                             "[\"gap\"]",
                             "{",
                             "",
                             "\"gap\""};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        ASSERT_MSG(proto_message_type(unknown[i], strlen(unknown[i])) == PROTO_MSG_UNKNOWN, "%s",
                   unknown[i]);
    ASSERT_EQ_INT(proto_message_type(NULL, 0), PROTO_MSG_UNKNOWN);
    /* len bounds the input: no NUL needed */
    ASSERT_EQ_INT(proto_message_type("{\"type\":\"dropped\"}xyz", 18), PROTO_MSG_DROPPED);

    /* decode_event dispatches on "type" */
    proto_type t;
    proto_msg m;
    char err[PROTO_ERR_LEN];
    size_t len;
    char *text = read_file(EXAMPLES_DIR "/status-reconnecting.json", &len);
    ASSERT_EQ_INT(proto_decode_event(text, len, &t, &m, err), 0);
    ASSERT_EQ_INT(t, PROTO_MSG_STATUS);
    ASSERT_EQ_INT(m.status.state, PROTO_STATE_RECONNECTING);
    ASSERT(m.status.has_retry_in_s && m.status.retry_in_s == 2.0);
    ASSERT_CONTAINS(m.status.detail, "connection refused");
    ASSERT_EQ_INT(m.status.seq, 57);
    proto_msg_deinit(t, &m);
    free(text);
    j = "{\"seq\":1}";
    ASSERT_EQ_INT(proto_decode_event(j, strlen(j), &t, &m, err), PROTO_EINVAL);
    ASSERT_EQ_STR(err, "event: 'type' is required");
    ASSERT_EQ_INT(t, PROTO_MSG_UNKNOWN);
    j = "{\"type\":\"error\"}";
    ASSERT_EQ_INT(proto_decode_event(j, strlen(j), &t, &m, err), PROTO_EINVAL);
    ASSERT_EQ_STR(err, "event: 'type' must be one of commentary, status, gap, dropped, hello");
    j = "{\"type\":\"gap\",\"seq\":1}";
    ASSERT_EQ_INT(proto_decode_event(j, strlen(j), &t, &m, err), PROTO_EINVAL);
    ASSERT_EQ_STR(err, "gap: 'stream' is required");
    ASSERT_EQ_INT(t, PROTO_MSG_UNKNOWN);
    ASSERT_EQ_INT(proto_decode_event("[", 1, &t, &m, err), PROTO_ESYNTAX);
    ASSERT_CONTAINS(err, "event: not JSON");
}

static void test_proto_names(void) {
    for (int t = 1; t < PROTO_MSG_COUNT; t++) {
        const char *n = proto_type_name((proto_type)t);
        ASSERT(n);
        ASSERT_EQ_INT(proto_type_from_name(n), t);
    }
    ASSERT(proto_type_name(PROTO_MSG_UNKNOWN) == NULL);
    ASSERT(proto_type_name(PROTO_MSG_COUNT) == NULL);
    ASSERT_EQ_INT(proto_type_from_name("nope"), PROTO_MSG_UNKNOWN);
    ASSERT_EQ_INT(proto_type_from_name(NULL), PROTO_MSG_UNKNOWN);
    ASSERT_EQ_STR(proto_state_name(PROTO_STATE_ENDED), "ended");
    ASSERT(proto_state_name((proto_state)4) == NULL);
    ASSERT_EQ_STR(proto_strerror(PROTO_EINVAL), "message breaks the schema");
    ASSERT_EQ_STR(proto_strerror(PROTO_OK), "ok");
    ASSERT_EQ_STR(proto_strerror(-99), "unknown error");
    /* deinit of NULL is a no-op */
    proto_commentary_deinit(NULL);
    proto_stream_list_deinit(NULL);
    proto_msg_deinit(PROTO_MSG_ERROR, NULL);
    /* a decoded stream_list owns its elements' strings; deinit frees all (valgrind) */
    proto_stream_list l;
    char err[PROTO_ERR_LEN];
    size_t len;
    char *text = read_file(EXAMPLES_DIR "/stream_list.json", &len);
    ASSERT_EQ_INT(proto_decode_stream_list(text, len, &l, err), 0);
    ASSERT_EQ_INT(l.n_streams, 2);
    ASSERT_EQ_STR(l.streams[1].id, "match_2026-final");
    ASSERT(!l.streams[1].has_latency_ms_p50);
    ASSERT_EQ_INT(l.streams[0].state, PROTO_STATE_LIVE);
    ASSERT_EQ_INT(l.streams[0].kv_tokens, 15872);
    proto_stream_list_deinit(&l);
    ASSERT(l.streams == NULL && l.n_streams == 0);
    free(text);
}

static const test_case tests[] = {
    {"proto_examples_roundtrip", test_proto_examples_roundtrip},
    {"proto_examples_match_schemas", test_proto_examples_match_schemas},
    {"proto_decoder_follows_schema", test_proto_decoder_follows_schema},
    {"proto_rejects_bad_input", test_proto_rejects_bad_input},
    {"proto_accepts_edge_values", test_proto_accepts_edge_values},
    {"proto_encode_checks_and_sizes", test_proto_encode_checks_and_sizes},
    {"proto_encode_numbers", test_proto_encode_numbers},
    {"proto_wall_time", test_proto_wall_time},
    {"proto_message_type", test_proto_message_type},
    {"proto_names", test_proto_names},
    {0},
};

int main(int argc, char **argv) {
    return test_main(argc, argv, tests);
}
