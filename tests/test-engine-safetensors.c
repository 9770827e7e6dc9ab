/* test-engine-safetensors.c — tests of engine/safetensors.c: reading tensors back from
 * files this test writes itself (a tiny writer below), sharded directories, and every
 * malformed case the reader must reject with a message naming the file and the tensor.
 * Each test works in its own mkdtemp directory and removes it when it passes.
 */
#include <ftw.h>
#include <stdbool.h>

#include "safetensors.h"
#include "test.h"

/* ---- helpers ------------------------------------------------------------------------ */

static char tmp_dir[64];

/* A fresh empty directory for this test, in tmp_dir. */
static const char *tmpdir_new(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/test-st-XXXXXX");
    ASSERT_MSG(mkdtemp(tmp_dir) != NULL, "mkdtemp failed");
    return tmp_dir;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Remove the test's directory (only reached when the test passed). */
static void tmpdir_rm(void) {
    nftw(tmp_dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* "dir/name" in one of a few rotating static buffers. */
static const char *join(const char *dir, const char *name) {
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ASSERT_MSG(f != NULL, "cannot create %s", path);
    ASSERT(n == 0 || fwrite(p, 1, n, f) == n);
    ASSERT(fclose(f) == 0);
}

static void write_text(const char *path, const char *s) {
    write_bytes(path, s, strlen(s));
}

/* Write a safetensors file by hand: u64 little-endian length, header (padded with spaces
 * to a multiple of 8 when pad, as the HF writer does), then data. */
static void write_st_raw(const char *path, const char *header, bool pad, const void *data,
                         size_t ndata) {
    size_t hl = strlen(header), hp = pad ? (hl + 7) / 8 * 8 : hl;
    size_t total = 8 + hp + ndata;
    unsigned char *buf = malloc(total);
    ASSERT(buf != NULL);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hp >> (8 * i));
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, ' ', hp - hl);
    if (ndata) memcpy(buf + 8 + hp, data, ndata);
    write_bytes(path, buf, total);
    free(buf);
}

/* One tensor for write_st. */
typedef struct wt {
    const char *name;
    const char *dtype;
    int ndim;
    int64_t shape[VLM_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} wt;

#define ST_W_MAX (256 * 1024) /* write_st's header and data buffers */

/* Write a well-formed safetensors file holding ts[0..n), each tensor's data aligned to 8
 * bytes, with an optional "__metadata__" object (JSON text, or NULL). */
static void write_st(const char *path, const wt *ts, int n, const char *metadata) {
    char *hdr = malloc(ST_W_MAX);
    unsigned char *data = calloc(1, ST_W_MAX);
    ASSERT(hdr && data);
    size_t hl = 0, off = 0;
    hl += (size_t)snprintf(hdr + hl, ST_W_MAX - hl, "{");
    if (metadata) hl += (size_t)snprintf(hdr + hl, ST_W_MAX - hl, "\"__metadata__\":%s", metadata);
    for (int i = 0; i < n; i++) {
        off = (off + 7) / 8 * 8;
        ASSERT(off + ts[i].nbytes <= ST_W_MAX);
        hl += (size_t)snprintf(hdr + hl, ST_W_MAX - hl, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                               (i || metadata) ? "," : "", ts[i].name, ts[i].dtype);
        for (int d = 0; d < ts[i].ndim; d++)
            hl += (size_t)snprintf(hdr + hl, ST_W_MAX - hl, "%s%" PRId64, d ? "," : "",
                                   ts[i].shape[d]);
        hl += (size_t)snprintf(hdr + hl, ST_W_MAX - hl, "],\"data_offsets\":[%zu,%zu]}", off,
                               off + ts[i].nbytes);
        if (ts[i].nbytes) memcpy(data + off, ts[i].data, ts[i].nbytes);
        off += ts[i].nbytes;
        ASSERT(hl < ST_W_MAX - 1024);
    }
    snprintf(hdr + hl, ST_W_MAX - hl, "}");
    write_st_raw(path, hdr, true, data, off);
    free(hdr);
    free(data);
}

/* A one-tensor file whose entry for 'w' is the given JSON text, over ndata zero bytes. */
static void write_st_entry(const char *path, const char *entry, size_t ndata) {
    char hdr[1024];
    unsigned char data[64] = {0};
    ASSERT(ndata <= sizeof data);
    snprintf(hdr, sizeof hdr, "{\"w\":%s}", entry);
    write_st_raw(path, hdr, true, data, ndata);
}

/* Open with open_fn and expect code want, no set, and both substrings in the message.
 * TEST_VERBOSE=1 prints each message. */
#define EXPECT_FAIL(open_fn, path, want, sub1, sub2)                                               \
    do {                                                                                           \
        vlm_st_set *ex_set = (vlm_st_set *)&ex_set;                                                \
        char ex_err[VLM_ERR_LEN] = "";                                                             \
        int ex_rc = open_fn((path), &ex_set, ex_err);                                              \
        if (getenv("TEST_VERBOSE")) fprintf(stderr, "%d %s\n", ex_rc, ex_err);                     \
        ASSERT_MSG(ex_rc != 0, "%s opened but should fail (%s)", (path), (sub2));                  \
        ASSERT_EQ_INT(ex_rc, (want));                                                              \
        ASSERT(ex_set == NULL);                                                                    \
        ASSERT_CONTAINS(ex_err, (sub1));                                                           \
        ASSERT_CONTAINS(ex_err, (sub2));                                                           \
    } while (0)

/* A file whose only entry is `entry` must fail with want, naming the file and 'w'. */
#define EXPECT_ENTRY_FAIL(dir, entry, ndata, want, sub)                                            \
    do {                                                                                           \
        const char *ef_path = join((dir), "model.safetensors");                                    \
        write_st_entry(ef_path, (entry), (ndata));                                                 \
        EXPECT_FAIL(vlm_st_open_file, ef_path, (want), "model.safetensors: tensor 'w'", (sub));    \
    } while (0)

static uint64_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ---- the valid file ----------------------------------------------------------------- */

static const float v_f32[6] = {0.0f, 1.5f, -2.25f, 3e38f, 1e-40f /* f32 subnormal */, -0.0f};
/* bf16: 1, -2, the smallest subnormal 2^-133 and its negative, +inf, -0.5 */
static const uint16_t v_bf16[6] = {0x3F80, 0xC000, 0x0001, 0x8001, 0x7F80, 0xBF00};
/* f16: 1, -2, smallest subnormal 2^-24, largest negative subnormal -1023 * 2^-24,
 * max 65504, 0x3555 = 1.3330078125 / 4 */
static const uint16_t v_f16[6] = {0x3C00, 0xC000, 0x0001, 0x83FF, 0x7BFF, 0x3555};
static const int64_t v_i64[3] = {-1, (int64_t)1 << 40, 7};
static const int32_t v_i32 = 42;

/* model.safetensors with F32, BF16, F16, I64, a scalar I32 and an empty U8 tensor. */
static void write_valid(const char *path) {
    const wt ts[] = {
        {"w.f32", "F32", 2, {2, 3}, v_f32, sizeof v_f32},
        {"model.layers.0.b.bf16", "BF16", 1, {6}, v_bf16, sizeof v_bf16},
        {"c.f16", "F16", 3, {1, 3, 2}, v_f16, sizeof v_f16},
        {"d.i64", "I64", 1, {3}, v_i64, sizeof v_i64},
        {"e.i32", "I32", 0, {0}, &v_i32, sizeof v_i32},
        {"f.u8", "U8", 2, {4, 0}, NULL, 0},
    };
    write_st(path, ts, 6, "{\"format\":\"pt\"}");
}

static void test_safetensors_open_single(void) {
    const char *dir = tmpdir_new(), *path = join(dir, "model.safetensors");
    write_valid(path);
    vlm_st_set *set = NULL;
    char err[VLM_ERR_LEN] = "";
    int rc = vlm_st_open_file(path, &set, err);
    ASSERT_MSG(rc == 0, "open: %d %s", rc, err);
    ASSERT_EQ_INT(vlm_st_count(set), 6);

    const vlm_st_tensor *t = vlm_st_find(set, "w.f32");
    ASSERT(t != NULL);
    ASSERT_EQ_STR(t->name, "w.f32");
    ASSERT_EQ_STR(t->file, "model.safetensors");
    ASSERT_EQ_INT(t->dtype, VLM_F32);
    ASSERT_EQ_INT(t->ndim, 2);
    ASSERT_EQ_INT(t->shape[0], 2);
    ASSERT_EQ_INT(t->shape[1], 3);
    ASSERT_EQ_INT(t->numel, 6);
    ASSERT_EQ_INT(t->nbytes, 24);
    for (int i = 0; i < 6; i++)
        ASSERT_EQ_INT(f32_bits(((const float *)t->data)[i]), f32_bits(v_f32[i]));

    t = vlm_st_find(set, "model.layers.0.b.bf16");
    ASSERT(t != NULL);
    ASSERT_EQ_INT(t->dtype, VLM_BF16);
    ASSERT_EQ_INT(t->ndim, 1);
    ASSERT_EQ_INT(t->shape[0], 6);
    ASSERT_EQ_INT(t->nbytes, 12);
    ASSERT(memcmp(t->data, v_bf16, sizeof v_bf16) == 0);

    t = vlm_st_find(set, "c.f16");
    ASSERT(t != NULL);
    ASSERT_EQ_INT(t->dtype, VLM_F16);
    ASSERT_EQ_INT(t->ndim, 3);
    ASSERT_EQ_INT(t->shape[0], 1);
    ASSERT_EQ_INT(t->shape[1], 3);
    ASSERT_EQ_INT(t->shape[2], 2);
    ASSERT_EQ_INT(t->numel, 6);
    ASSERT(memcmp(t->data, v_f16, sizeof v_f16) == 0);

    t = vlm_st_find(set, "d.i64");
    ASSERT(t != NULL);
    ASSERT_EQ_INT(t->dtype, VLM_I64);
    ASSERT_EQ_INT(t->numel, 3);
    ASSERT_EQ_INT(t->nbytes, 24);
    ASSERT_EQ_INT(((const int64_t *)t->data)[0], -1);
    ASSERT_EQ_INT(((const int64_t *)t->data)[1], (int64_t)1 << 40);
    ASSERT_EQ_INT(((const int64_t *)t->data)[2], 7);

    t = vlm_st_find(set, "e.i32"); /* a scalar: shape [], one element */
    ASSERT(t != NULL);
    ASSERT_EQ_INT(t->dtype, VLM_I32);
    ASSERT_EQ_INT(t->ndim, 0);
    ASSERT_EQ_INT(t->numel, 1);
    ASSERT_EQ_INT(*(const int32_t *)t->data, 42);

    t = vlm_st_find(set, "f.u8"); /* an empty tensor */
    ASSERT(t != NULL);
    ASSERT_EQ_INT(t->dtype, VLM_U8);
    ASSERT_EQ_INT(t->ndim, 2);
    ASSERT_EQ_INT(t->numel, 0);
    ASSERT_EQ_INT(t->nbytes, 0);

    /* vlm_st_at walks every tensor once, in name order */
    for (int64_t i = 0; i < vlm_st_count(set); i++) {
        ASSERT(vlm_st_at(set, i) != NULL);
        ASSERT(vlm_st_find(set, vlm_st_at(set, i)->name) == vlm_st_at(set, i));
        if (i) ASSERT(strcmp(vlm_st_at(set, i - 1)->name, vlm_st_at(set, i)->name) < 0);
    }
    ASSERT(vlm_st_at(set, -1) == NULL);
    ASSERT(vlm_st_at(set, 6) == NULL);
    vlm_st_free(set);
    tmpdir_rm();
}

/* bf16 and f16 data read from a file convert to the exact f32 values. */
static void test_safetensors_to_f32(void) {
    const char *dir = tmpdir_new(), *path = join(dir, "model.safetensors");
    write_valid(path);
    vlm_st_set *set = NULL;
    char err[VLM_ERR_LEN] = "";
    ASSERT_MSG(vlm_st_open_file(path, &set, err) == 0, "%s", err);
    float out[6];

    const vlm_st_tensor *t = vlm_st_find(set, "model.layers.0.b.bf16");
    ASSERT(t != NULL);
    vlm__to_f32(out, t->data, t->dtype, t->numel);
    ASSERT_NEAR(out[0], 1.0, 0);
    ASSERT_NEAR(out[1], -2.0, 0);
    ASSERT_NEAR(out[2], ldexp(1.0, -133), 0); /* f32 subnormal */
    ASSERT_NEAR(out[3], -ldexp(1.0, -133), 0);
    ASSERT(isinf(out[4]) && out[4] > 0);
    ASSERT_NEAR(out[5], -0.5, 0);

    t = vlm_st_find(set, "c.f16");
    ASSERT(t != NULL);
    vlm__to_f32(out, t->data, t->dtype, t->numel);
    ASSERT_NEAR(out[0], 1.0, 0);
    ASSERT_NEAR(out[1], -2.0, 0);
    ASSERT_NEAR(out[2], ldexp(1.0, -24), 0);           /* smallest f16 subnormal */
    ASSERT_NEAR(out[3], -1023.0 * ldexp(1.0, -24), 0); /* largest negative subnormal */
    ASSERT_NEAR(out[4], 65504.0, 0);
    ASSERT_NEAR(out[5], 0.333251953125, 0);

    t = vlm_st_find(set, "w.f32");
    vlm__to_f32(out, t->data, t->dtype, t->numel);
    for (int i = 0; i < 6; i++)
        ASSERT_EQ_INT(f32_bits(out[i]), f32_bits(v_f32[i]));
    vlm_st_free(set);
    tmpdir_rm();
}

static void test_safetensors_find_absent(void) {
    const char *dir = tmpdir_new(), *path = join(dir, "model.safetensors");
    write_valid(path);
    vlm_st_set *set = NULL;
    char err[VLM_ERR_LEN] = "";
    ASSERT_MSG(vlm_st_open_file(path, &set, err) == 0, "%s", err);
    ASSERT(vlm_st_find(set, "nope") == NULL);
    ASSERT(vlm_st_find(set, "") == NULL);
    ASSERT(vlm_st_find(set, "w.f3") == NULL);   /* a prefix */
    ASSERT(vlm_st_find(set, "w.f320") == NULL); /* an extension */
    ASSERT(vlm_st_find(set, "__metadata__") == NULL);
    ASSERT(vlm_st_find(set, NULL) == NULL);
    ASSERT(vlm_st_find(NULL, "w.f32") == NULL);
    ASSERT_EQ_INT(vlm_st_count(NULL), 0);
    vlm_st_free(set);
    tmpdir_rm();
}

static void test_safetensors_free_null(void) {
    vlm_st_free(NULL);
}

/* A file of no tensors (header "{}") is valid and empty. */
static void test_safetensors_empty_header(void) {
    const char *dir = tmpdir_new(), *path = join(dir, "model.safetensors");
    write_st_raw(path, "{}", true, NULL, 0);
    vlm_st_set *set = NULL;
    char err[VLM_ERR_LEN] = "";
    ASSERT_MSG(vlm_st_open_file(path, &set, err) == 0, "%s", err);
    ASSERT_EQ_INT(vlm_st_count(set), 0);
    ASSERT(vlm_st_find(set, "w") == NULL);
    vlm_st_free(set);
    tmpdir_rm();
}

/* ~1000 tensors: every one is found by name (the set sorts them for bsearch). */
static void test_safetensors_many_tensors(void) {
    enum { N = 1000 };
    const char *dir = tmpdir_new(), *path = join(dir, "model.safetensors");
    static wt ts[N];
    static char names[N][32];
    static unsigned char vals[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "model.layers.%d.w", (i * 7919) % N);
        vals[i] = (unsigned char)i;
        ts[i] = (wt){names[i], "U8", 1, {1}, &vals[i], 1};
    }
    write_st(path, ts, N, NULL);
    vlm_st_set *set = NULL;
    char err[VLM_ERR_LEN] = "";
    ASSERT_MSG(vlm_st_open_file(path, &set, err) == 0, "%s", err);
    ASSERT_EQ_INT(vlm_st_count(set), N);
    for (int i = 0; i < N; i++) {
        const vlm_st_tensor *t = vlm_st_find(set, names[i]);
        ASSERT_MSG(t != NULL, "%s not found", names[i]);
        ASSERT_EQ_INT(*(const unsigned char *)t->data, vals[i]);
    }
    vlm_st_free(set);
    tmpdir_rm();
}

/* ---- directories -------------------------------------------------------------------- */

static void test_safetensors_open_dir_single(void) {
    const char *dir = tmpdir_new();
    write_valid(join(dir, "model.safetensors"));
    vlm_st_set *set = NULL;
    char err[VLM_ERR_LEN] = "";
    ASSERT_MSG(vlm_st_open_dir(dir, &set, err) == 0, "%s", err);
    ASSERT_EQ_INT(vlm_st_count(set), 6);
    ASSERT(vlm_st_find(set, "d.i64") != NULL);
    vlm_st_free(set);
    tmpdir_rm();
}

static const float s_a[4] = {1, 2, 3, 4}, s_b[2] = {5, 6}, s_c[3] = {7, 8, 9};
#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"

/* Two good shards: a, b in the first, c in the second. */
static void write_shards(const char *dir) {
    const wt t1[] = {{"a", "F32", 2, {2, 2}, s_a, sizeof s_a},
                     {"b", "F32", 1, {2}, s_b, sizeof s_b}};
    const wt t2[] = {{"c", "F32", 1, {3}, s_c, sizeof s_c}};
    write_st(join(dir, SHARD1), t1, 2, "{\"format\":\"pt\"}");
    write_st(join(dir, SHARD2), t2, 1, NULL);
}

static void test_safetensors_open_sharded(void) {
    const char *dir = tmpdir_new();
    write_shards(dir);
    write_text(join(dir, "model.safetensors.index.json"),
               "{\"metadata\": {\"total_size\": 36},\n"
               " \"weight_map\": {\"a\": \"" SHARD1 "\", \"c\": \"" SHARD2 "\",\n"
               "                \"b\": \"" SHARD1 "\"}}\n");
    /* The index wins over a model.safetensors beside it (here not even a valid file). */
    write_text(join(dir, "model.safetensors"), "junk");
    vlm_st_set *set = NULL;
    char err[VLM_ERR_LEN] = "";
    int rc = vlm_st_open_dir(dir, &set, err);
    ASSERT_MSG(rc == 0, "open_dir: %d %s", rc, err);
    ASSERT_EQ_INT(vlm_st_count(set), 3);
    const vlm_st_tensor *a = vlm_st_find(set, "a"), *b = vlm_st_find(set, "b"),
                        *c = vlm_st_find(set, "c");
    ASSERT(a && b && c);
    ASSERT_EQ_STR(a->file, SHARD1);
    ASSERT_EQ_STR(b->file, SHARD1);
    ASSERT_EQ_STR(c->file, SHARD2);
    ASSERT_EQ_INT(a->ndim, 2);
    ASSERT_EQ_INT(a->shape[1], 2);
    ASSERT_EQ_INT(c->numel, 3);
    for (int i = 0; i < 4; i++)
        ASSERT_NEAR(((const float *)a->data)[i], s_a[i], 0);
    for (int i = 0; i < 2; i++)
        ASSERT_NEAR(((const float *)b->data)[i], s_b[i], 0);
    for (int i = 0; i < 3; i++)
        ASSERT_NEAR(((const float *)c->data)[i], s_c[i], 0);
    ASSERT(vlm_st_find(set, "d") == NULL);
    vlm_st_free(set);
    tmpdir_rm();
}

static void test_safetensors_dir_no_model(void) {
    const char *dir = tmpdir_new();
    write_text(join(dir, "config.json"), "{}");
    EXPECT_FAIL(vlm_st_open_dir, dir, VLM_ENOTFOUND, dir, "no model.safetensors");
    EXPECT_FAIL(vlm_st_open_dir, join(dir, "absent"), VLM_ENOTFOUND, join(dir, "absent"),
                "model.safetensors.index.json");
    tmpdir_rm();
}

static void test_safetensors_index_missing_shard(void) {
    const char *dir = tmpdir_new();
    write_shards(dir);
    write_text(join(dir, "model.safetensors.index.json"),
               "{\"weight_map\": {\"a\": \"" SHARD1 "\", \"z\": \"model-00003.safetensors\"}}");
    EXPECT_FAIL(vlm_st_open_dir, dir, VLM_ENOTFOUND, "model.safetensors.index.json",
                "shard 'model-00003.safetensors' (of tensor 'z') is missing");
    tmpdir_rm();
}

static void test_safetensors_index_tensor_absent(void) {
    const char *dir = tmpdir_new();
    write_shards(dir);
    write_text(join(dir, "model.safetensors.index.json"),
               "{\"weight_map\": {\"a\": \"" SHARD1 "\", \"c\": \"" SHARD2 "\","
               " \"lm_head.weight\": \"" SHARD2 "\"}}");
    EXPECT_FAIL(vlm_st_open_dir, dir, VLM_EFORMAT, "tensor 'lm_head.weight'",
                "not in its shard " SHARD2);
    /* in a shard, but not the one the index names */
    write_text(join(dir, "model.safetensors.index.json"),
               "{\"weight_map\": {\"a\": \"" SHARD1 "\", \"c\": \"" SHARD1 "\","
               " \"b\": \"" SHARD2 "\"}}");
    EXPECT_FAIL(vlm_st_open_dir, dir, VLM_EFORMAT, "model.safetensors.index.json: tensor '",
                "but in");
    tmpdir_rm();
}

static void test_safetensors_index_duplicate_tensor(void) {
    const char *dir = tmpdir_new();
    const wt t1[] = {{"a", "F32", 1, {4}, s_a, sizeof s_a}, {"x", "F32", 1, {2}, s_b, sizeof s_b}};
    const wt t2[] = {{"c", "F32", 1, {3}, s_c, sizeof s_c}, {"x", "F32", 1, {2}, s_b, sizeof s_b}};
    write_st(join(dir, SHARD1), t1, 2, NULL);
    write_st(join(dir, SHARD2), t2, 2, NULL);
    write_text(join(dir, "model.safetensors.index.json"),
               "{\"weight_map\": {\"a\": \"" SHARD1 "\", \"c\": \"" SHARD2 "\","
               " \"x\": \"" SHARD1 "\"}}");
    EXPECT_FAIL(vlm_st_open_dir, dir, VLM_EFORMAT, "tensor 'x' is in two files", SHARD1);
    EXPECT_FAIL(vlm_st_open_dir, dir, VLM_EFORMAT, "tensor 'x' is in two files", SHARD2);
    tmpdir_rm();
}

static void test_safetensors_index_bad(void) {
    const char *dir = tmpdir_new(), *idx = join(dir, "model.safetensors.index.json");
    write_shards(dir);
    static const char *bad_names[] = {"../" SHARD1, "..", ".", "", "sub/" SHARD1};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "{\"weight_map\": {\"a\": \"%s\"}}", bad_names[i]);
        write_text(idx, text);
        EXPECT_FAIL(vlm_st_open_dir, dir, VLM_EFORMAT, "model.safetensors.index.json: tensor 'a'",
                    "is not a plain file name");
    }
    write_text(idx, "{\"weight_map\": {\"a\": 3}}");
    EXPECT_FAIL(vlm_st_open_dir, dir, VLM_EFORMAT, "tensor 'a'", "not a string");
    write_text(idx, "{\"weight_map\": {\"a\": \"" SHARD1 "\"");
    EXPECT_FAIL(vlm_st_open_dir, dir, VLM_EFORMAT, "model.safetensors.index.json",
                "not valid json");
    write_text(idx, "");
    EXPECT_FAIL(vlm_st_open_dir, dir, VLM_EFORMAT, "model.safetensors.index.json",
                "not valid json");
    write_text(idx, "{\"metadata\": {}}");
    EXPECT_FAIL(vlm_st_open_dir, dir, VLM_EFORMAT, "model.safetensors.index.json", "weight_map");
    write_text(idx, "[]");
    EXPECT_FAIL(vlm_st_open_dir, dir, VLM_EFORMAT, "model.safetensors.index.json", "weight_map");
    write_text(idx, "{\"weight_map\": {}}");
    EXPECT_FAIL(vlm_st_open_dir, dir, VLM_EFORMAT, "model.safetensors.index.json", "no tensors");
    /* a malformed shard is reported by its own name */
    write_text(idx, "{\"weight_map\": {\"a\": \"" SHARD1 "\", \"c\": \"" SHARD2 "\"}}");
    write_st_raw(join(dir, SHARD2),
                 "{\"c\": {\"dtype\": \"F64\", \"shape\": [1], "
                 "\"data_offsets\": [0, 8]}}",
                 true, s_a, 8);
    EXPECT_FAIL(vlm_st_open_dir, dir, VLM_EUNSUPPORTED, SHARD2 ": tensor 'c'", "F64");
    tmpdir_rm();
}

/* ---- malformed files ---------------------------------------------------------------- */

static void test_safetensors_missing_file(void) {
    const char *dir = tmpdir_new(), *path = join(dir, "nope.safetensors");
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EIO, path, "no such file");
    EXPECT_FAIL(vlm_st_open_file, dir, VLM_EIO, dir, "not a regular file");
    tmpdir_rm();
}

static void test_safetensors_truncated(void) {
    const char *dir = tmpdir_new(), *path = join(dir, "model.safetensors");
    write_bytes(path, "\x10\0\0\0\0", 5);
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EFORMAT, "model.safetensors", "file is 5 bytes");
    write_bytes(path, "", 0);
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EFORMAT, "model.safetensors", "file is 0 bytes");
    /* a valid file cut in the middle of its data */
    const char *full = join(dir, "full.safetensors");
    write_valid(full);
    FILE *f = fopen(full, "rb");
    ASSERT(f != NULL);
    static unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    ASSERT(n > 20);
    write_bytes(path, buf, n - 20);
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EFORMAT, "model.safetensors: tensor '",
                "run past the end of the file");
    tmpdir_rm();
}

static void test_safetensors_header_past_end(void) {
    const char *dir = tmpdir_new(), *path = join(dir, "model.safetensors");
    unsigned char buf[8 + 20];
    memset(buf, ' ', sizeof buf);
    memset(buf, 0, 8);
    buf[0] = 0xe8, buf[1] = 0x03; /* 1000 */
    write_bytes(path, buf, sizeof buf);
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EFORMAT, "model.safetensors",
                "header length 1000 runs past the end of the file (28 bytes)");
    memset(buf, 0xff, 8); /* 2^64 - 1: must not wrap */
    write_bytes(path, buf, sizeof buf);
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EFORMAT, "model.safetensors",
                "header length 18446744073709551615 runs past");
    tmpdir_rm();
}

static void test_safetensors_invalid_json(void) {
    const char *dir = tmpdir_new(), *path = join(dir, "model.safetensors");
    write_st_raw(path, "{\"w\": {\"dtype\": \"F32\", ", true, NULL, 0);
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EFORMAT, "model.safetensors", "not valid json");
    write_st_raw(path, "", false, NULL, 0);
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EFORMAT, "model.safetensors", "not valid json");
    /* a duplicate key would let one tensor hide another */
    write_st_raw(path,
                 "{\"w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]},"
                 " \"w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]}}",
                 true, "x", 1);
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EFORMAT, "model.safetensors", "duplicate");
    write_st_raw(path, "[1, 2]", true, NULL, 0);
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EFORMAT, "model.safetensors",
                "header is not a json object");
    write_st_raw(path, "{\"__metadata__\": {\"format\": 1}}", true, NULL, 0);
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EFORMAT, "model.safetensors",
                "__metadata__ key 'format' is not a string");
    write_st_raw(path, "{\"__metadata__\": [\"pt\"]}", true, NULL, 0);
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EFORMAT, "model.safetensors",
                "__metadata__ is not an object");
    tmpdir_rm();
}

static void test_safetensors_entry_not_object(void) {
    const char *dir = tmpdir_new();
    EXPECT_ENTRY_FAIL(dir, "5", 0, VLM_EFORMAT, "entry is not an object");
    EXPECT_ENTRY_FAIL(dir, "[\"F32\", [1], [0, 4]]", 4, VLM_EFORMAT, "entry is not an object");
    tmpdir_rm();
}

static void test_safetensors_bad_dtype(void) {
    const char *dir = tmpdir_new();
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}", 8,
                      VLM_EUNSUPPORTED, "dtype 'F64' is not supported");
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": \"f32\", \"shape\": [1], \"data_offsets\": [0, 4]}", 8,
                      VLM_EUNSUPPORTED, "dtype 'f32' is not supported");
    EXPECT_ENTRY_FAIL(dir, "{\"shape\": [1], \"data_offsets\": [0, 4]}", 8, VLM_EFORMAT,
                      "dtype is missing");
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": 7, \"shape\": [1], \"data_offsets\": [0, 4]}", 8,
                      VLM_EFORMAT, "dtype is missing or not a string");
    tmpdir_rm();
}

static void test_safetensors_bad_shape(void) {
    const char *dir = tmpdir_new();
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}", 8,
                      VLM_EFORMAT, "shape entry 0 is not a non-negative integer");
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": \"F32\", \"shape\": [1, 2.0], \"data_offsets\": [0, 8]}", 8,
                      VLM_EFORMAT, "shape entry 1 is not a non-negative integer");
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}", 8,
                      VLM_EFORMAT, "shape entry 0");
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": \"F32\", \"shape\": 2, \"data_offsets\": [0, 8]}", 8,
                      VLM_EFORMAT, "shape is missing or not a list");
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": \"F32\", \"data_offsets\": [0, 8]}", 8, VLM_EFORMAT,
                      "shape is missing or not a list");
    EXPECT_ENTRY_FAIL(dir,
                      "{\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], "
                      "\"data_offsets\": [0, 1]}",
                      8, VLM_EFORMAT, "shape has 9 dims, more than 8");
    /* 2^62 * 4 elements overflows int64 */
    EXPECT_ENTRY_FAIL(dir,
                      "{\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], "
                      "\"data_offsets\": [0, 16]}",
                      16, VLM_EFORMAT, "shape [4611686018427387904, 4] has too many elements");
    /* eight dims is the most, and fine */
    const char *path = join(dir, "model.safetensors");
    write_st_entry(path,
                   "{\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,2], "
                   "\"data_offsets\": [0, 2]}",
                   2);
    vlm_st_set *set = NULL;
    char err[VLM_ERR_LEN] = "";
    ASSERT_MSG(vlm_st_open_file(path, &set, err) == 0, "%s", err);
    ASSERT_EQ_INT(vlm_st_find(set, "w")->ndim, 8);
    ASSERT_EQ_INT(vlm_st_find(set, "w")->numel, 2);
    vlm_st_free(set);
    tmpdir_rm();
}

static void test_safetensors_bad_offsets(void) {
    const char *dir = tmpdir_new();
    static const char *bad[] = {
        "{\"dtype\": \"F32\", \"shape\": [1]}",
        "{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}",
        "{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}",
        "{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [\"0\", 4]}",
        "{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4.0]}",
        "{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}",
        "{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": {\"begin\": 0}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        EXPECT_ENTRY_FAIL(dir, bad[i], 8, VLM_EFORMAT,
                          "data_offsets is not a list of 2 non-negative integers");
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 4]}", 8,
                      VLM_EFORMAT, "data_offsets [8, 4] begin after their end");
    tmpdir_rm();
}

static void test_safetensors_offsets_past_end(void) {
    const char *dir = tmpdir_new();
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 999999]}",
                      16, VLM_EFORMAT,
                      "data_offsets [0, 999999] run past the end of the file (16 bytes of data)");
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [16, 20]}", 16,
                      VLM_EFORMAT, "data_offsets [16, 20] run past the end");
    /* the largest offsets jansson accepts must not wrap the checks */
    EXPECT_ENTRY_FAIL(dir,
                      "{\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": "
                      "[9223372036854775806, 9223372036854775807]}",
                      16, VLM_EFORMAT, "run past the end");
    tmpdir_rm();
}

/* Two tensors on the same bytes (one would load as the other): refused, naming both;
 * touching ranges and an empty tensor at a boundary are fine. */
static void test_safetensors_overlap(void) {
    const char *dir = tmpdir_new();
    const char *path = join(dir, "model.safetensors");
    unsigned char data[32] = {0};
    write_st_raw(path,
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                 true, data, 32);
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EFORMAT, "model.safetensors: tensors 'a' and 'b'",
                "overlap");
    write_st_raw(path,
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                 true, data, 32);
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EFORMAT, "'a' and 'b'", "overlap");
    write_st_raw(path,
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,16]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}",
                 true, data, 32);
    vlm_st_set *set = NULL;
    char err[VLM_ERR_LEN];
    ASSERT_MSG(vlm_st_open_file(path, &set, err) == 0, "%s", err);
    vlm_st_free(set);
    tmpdir_rm();
}

static void test_safetensors_size_mismatch(void) {
    const char *dir = tmpdir_new();
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}", 24,
                      VLM_EFORMAT,
                      "F32 shape [2, 3] (6 elements of 4 bytes) does not match data_offsets "
                      "[0, 20] (20 bytes)");
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": \"BF16\", \"shape\": [3], \"data_offsets\": [0, 8]}", 8,
                      VLM_EFORMAT, "does not match");
    /* 2^62 F32 elements: numel * 4 wraps size_t to 0; must still be a mismatch */
    EXPECT_ENTRY_FAIL(dir,
                      "{\"dtype\": \"F32\", \"shape\": [4611686018427387904], "
                      "\"data_offsets\": [0, 0]}",
                      8, VLM_EFORMAT, "does not match");
    /* a zero dim makes an empty tensor even after a huge one */
    EXPECT_ENTRY_FAIL(dir,
                      "{\"dtype\": \"F32\", \"shape\": [4611686018427387904, 8, 0], "
                      "\"data_offsets\": [0, 4]}",
                      8, VLM_EFORMAT, "(0 elements of 4 bytes) does not match");
    tmpdir_rm();
}

static void test_safetensors_misaligned(void) {
    const char *dir = tmpdir_new();
    /* write_st_entry pads the header to 8 bytes, so the data section starts aligned */
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [2, 6]}", 8,
                      VLM_EFORMAT, "not aligned to 4 bytes for F32");
    EXPECT_ENTRY_FAIL(dir, "{\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [4, 12]}", 16,
                      VLM_EFORMAT, "not aligned to 8 bytes for I64");
    /* an unpadded header misaligns the whole data section */
    const char *path = join(dir, "model.safetensors");
    write_st_raw(path, "{\"w\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]}}", false,
                 "\0\0\0", 3);
    EXPECT_FAIL(vlm_st_open_file, path, VLM_EFORMAT, "model.safetensors: tensor 'w'",
                "not aligned to 2 bytes for BF16");
    /* U8 needs no alignment */
    write_st_raw(path, "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", false,
                 "ab", 2);
    vlm_st_set *set = NULL;
    char err[VLM_ERR_LEN] = "";
    ASSERT_MSG(vlm_st_open_file(path, &set, err) == 0, "%s", err);
    ASSERT_EQ_INT(*(const char *)vlm_st_find(set, "w")->data, 'b');
    vlm_st_free(set);
    tmpdir_rm();
}

/* ---- the real fixture --------------------------------------------------------------- */

#define QWEN_DIR "tests/fixtures/qwen25vl/base-s0/model"

static void test_safetensors_qwen_fixture(void) {
    if (access(QWEN_DIR "/model.safetensors", R_OK) != 0)
        SKIP("%s/model.safetensors is absent", QWEN_DIR);
    vlm_st_set *set = NULL;
    char err[VLM_ERR_LEN] = "";
    int rc = vlm_st_open_dir(QWEN_DIR, &set, err);
    ASSERT_MSG(rc == 0, "open_dir: %d %s", rc, err);
    ASSERT(vlm_st_count(set) > 0);
    const vlm_st_tensor *t = vlm_st_find(set, "model.norm.weight");
    ASSERT(t != NULL);
    ASSERT_EQ_STR(t->file, "model.safetensors");
    ASSERT_EQ_INT(t->dtype, VLM_F32);
    ASSERT_EQ_INT(t->ndim, 1);
    ASSERT_EQ_INT(t->shape[0], 128);
    ASSERT_EQ_INT(t->numel, 128);
    ASSERT_EQ_INT(t->nbytes, 128 * 4);
    for (int i = 0; i < 128; i++)
        ASSERT(isfinite(((const float *)t->data)[i]));
    vlm_st_free(set);
}

static const test_case tests[] = {
    {"safetensors_open_single", test_safetensors_open_single},
    {"safetensors_to_f32", test_safetensors_to_f32},
    {"safetensors_find_absent", test_safetensors_find_absent},
    {"safetensors_free_null", test_safetensors_free_null},
    {"safetensors_empty_header", test_safetensors_empty_header},
    {"safetensors_many_tensors", test_safetensors_many_tensors},
    {"safetensors_open_dir_single", test_safetensors_open_dir_single},
    {"safetensors_open_sharded", test_safetensors_open_sharded},
    {"safetensors_dir_no_model", test_safetensors_dir_no_model},
    {"safetensors_index_missing_shard", test_safetensors_index_missing_shard},
    {"safetensors_index_tensor_absent", test_safetensors_index_tensor_absent},
    {"safetensors_index_duplicate_tensor", test_safetensors_index_duplicate_tensor},
    {"safetensors_index_bad", test_safetensors_index_bad},
    {"safetensors_missing_file", test_safetensors_missing_file},
    {"safetensors_truncated", test_safetensors_truncated},
    {"safetensors_overlap", test_safetensors_overlap},
    {"safetensors_header_past_end", test_safetensors_header_past_end},
    {"safetensors_invalid_json", test_safetensors_invalid_json},
    {"safetensors_entry_not_object", test_safetensors_entry_not_object},
    {"safetensors_bad_dtype", test_safetensors_bad_dtype},
    {"safetensors_bad_shape", test_safetensors_bad_shape},
    {"safetensors_bad_offsets", test_safetensors_bad_offsets},
    {"safetensors_offsets_past_end", test_safetensors_offsets_past_end},
    {"safetensors_size_mismatch", test_safetensors_size_mismatch},
    {"safetensors_misaligned", test_safetensors_misaligned},
    {"safetensors_qwen_fixture", test_safetensors_qwen_fixture},
    {0},
};

int main(int argc, char **argv) {
    return test_main(argc, argv, tests);
}
