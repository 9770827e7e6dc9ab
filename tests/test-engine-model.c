/* test-engine-model.c — loading Hugging Face model directories: naming schemes, dtypes,
 * shards, tied heads, and every kind of bad file, each with an error naming the file and
 * the tensor or key.  Uses the vendored fixture tests/fixtures/qwen25vl/base-s0 (untied)
 * and tied-s0 as sources and rewrites copies of them in a temporary directory.
 */
#include <jansson.h>
#include <sys/stat.h>

#include "model.h"
#include "safetensors.h"
#include "test.h"

#define BASE "tests/fixtures/qwen25vl/base-s0/model"
#define TIED "tests/fixtures/qwen25vl/tied-s0/model"

/* ---- a small safetensors writer over a loaded set, with edits ---- */

typedef struct edit {
    const char *rename_from, *rename_to; /* rename one tensor (to NULL: drop it) */
    const char *prefix_from, *prefix_to; /* rewrite a name prefix (naming schemes) */
    const char *retype;                  /* tensor whose dtype string becomes retype_to */
    const char *retype_to;
    const char *reshape;                 /* tensor given shape reshape_to (same bytes) */
    int64_t reshape_to[2];
    vlm_dtype convert;                   /* write float tensors as this dtype (F32 = keep) */
    int shards;                          /* 0: model.safetensors, else N shards + index */
    int64_t bad_end;                     /* nonzero: first tensor's end offset set to this */
} edit;

static char *tmpdir_new(void) {
    char *d = strdup("/tmp/vlm-test-model-XXXXXX");
    ASSERT(mkdtemp(d));
    return d;
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    ASSERT_MSG(a && b, "copy %s -> %s", from, to);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) ASSERT(fwrite(buf, 1, n, b) == n);
    fclose(a);
    fclose(b);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    ASSERT(f);
    fputs(text, f);
    fclose(f);
}

static const char *dtype_str(vlm_dtype t) {
    return t == VLM_F32 ? "F32" : t == VLM_BF16 ? "BF16" : t == VLM_F16 ? "F16" : "I64";
}

static uint16_t f32_to_f16(float f) {
    /* round-to-nearest half for the normal range; values here are small weights */
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    uint32_t man = u & 0x7fffff;
    if (exp <= 0) return (uint16_t)sign; /* flush tiny values (not exact, tested loosely) */
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13);
    if ((man & 0x1fff) > 0x1000 || ((man & 0x1fff) == 0x1000 && (h & 1))) h++;
    return (uint16_t)h;
}

/* Write the tensors of src (with e's edits) as a model directory dst. */
static void write_model(const char *srcdir, const char *dst, const edit *e) {
    char path[512];
    vlm_st_set *st = NULL;
    char err[VLM_ERR_LEN];
    ASSERT_MSG(vlm_st_open_dir(srcdir, &st, err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/config.json", srcdir);
    char to[512];
    snprintf(to, sizeof to, "%s/config.json", dst);
    copy_file(path, to);
    int shards = e->shards > 0 ? e->shards : 1;
    int64_t n = vlm_st_count(st);
    json_t *index = json_object();
    for (int s = 0; s < shards; s++) {
        json_t *hdr = json_object();
        size_t off = 0;
        /* first pass: header; tensors dealt round-robin to shards */
        for (int64_t i = 0; i < n; i++) {
            if (i % shards != s) continue;
            const vlm_st_tensor *t = vlm_st_at(st, i);
            char name[256];
            snprintf(name, sizeof name, "%s", t->name);
            if (e->rename_from && !strcmp(name, e->rename_from)) {
                if (!e->rename_to) continue;
                snprintf(name, sizeof name, "%s", e->rename_to);
            }
            if (e->prefix_from && !strncmp(name, e->prefix_from, strlen(e->prefix_from))) {
                char tmp[256];
                snprintf(tmp, sizeof tmp, "%s%s", e->prefix_to, name + strlen(e->prefix_from));
                snprintf(name, sizeof name, "%s", tmp);
            }
            vlm_dtype dt = e->convert != VLM_F32 ? e->convert : t->dtype;
            size_t bytes = (size_t)t->numel * vlm__dtype_size(dt);
            json_t *ent = json_object();
            const char *dts = dtype_str(dt);
            if (e->retype && !strcmp(t->name, e->retype)) dts = e->retype_to;
            json_object_set_new(ent, "dtype", json_string(dts));
            json_t *shape = json_array();
            if (e->reshape && !strcmp(t->name, e->reshape)) {
                json_array_append_new(shape, json_integer(e->reshape_to[0]));
                json_array_append_new(shape, json_integer(e->reshape_to[1]));
            } else {
                for (int k = 0; k < t->ndim; k++) json_array_append_new(shape, json_integer(t->shape[k]));
            }
            json_object_set_new(ent, "shape", shape);
            json_t *offs = json_array();
            json_array_append_new(offs, json_integer((json_int_t)off));
            int64_t end = (int64_t)(off + bytes);
            if (e->bad_end && off == 0) end = e->bad_end;
            json_array_append_new(offs, json_integer(end));
            json_object_set_new(ent, "data_offsets", offs);
            json_object_set_new(hdr, name, ent);
            off += bytes;
            char shard_name[64];
            snprintf(shard_name, sizeof shard_name, "model-%05d-of-%05d.safetensors", s + 1, shards);
            json_object_set_new(index, name, json_string(shards > 1 ? shard_name : "model.safetensors"));
        }
        char *h = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
        size_t hl = strlen(h), pad = (8 - hl % 8) % 8;
        if (shards > 1)
            snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dst, s + 1, shards);
        else
            snprintf(path, sizeof path, "%s/model.safetensors", dst);
        FILE *f = fopen(path, "wb");
        ASSERT(f);
        uint64_t total = hl + pad;
        fwrite(&total, 8, 1, f);
        fwrite(h, 1, hl, f);
        for (size_t p = 0; p < pad; p++) fputc(' ', f);
        free(h);
        for (int64_t i = 0; i < n; i++) {
            if (i % shards != s) continue;
            const vlm_st_tensor *t = vlm_st_at(st, i);
            if (e->rename_from && !e->rename_to && !strcmp(t->name, e->rename_from)) continue;
            vlm_dtype dt = e->convert != VLM_F32 ? e->convert : t->dtype;
            if (dt == t->dtype) {
                fwrite(t->data, 1, t->nbytes, f);
                continue;
            }
            float *v = malloc(sizeof(float) * (size_t)t->numel);
            vlm__to_f32(v, t->data, t->dtype, t->numel);
            for (int64_t k = 0; k < t->numel; k++) {
                uint16_t h16 = dt == VLM_BF16 ? vlm__f32_to_bf16(v[k]) : f32_to_f16(v[k]);
                fwrite(&h16, 2, 1, f);
            }
            free(v);
        }
        fclose(f);
        json_decref(hdr);
    }
    if (shards > 1) {
        json_t *root = json_object();
        json_object_set_new(root, "metadata", json_object());
        json_object_set_new(root, "weight_map", index);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dst);
        ASSERT(json_dump_file(root, path, JSON_INDENT(1)) == 0);
        json_decref(root);
    } else {
        json_decref(index);
    }
    vlm_st_free(st);
}

/* Edit config.json in dir: set key (dotted path, one level) to a JSON value, or delete. */
static void edit_config(const char *dir, const char *key, const char *json_value) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    ASSERT(root);
    json_t *obj = root;
    char k[128];
    snprintf(k, sizeof k, "%s", key);
    char *dot = strchr(k, '.');
    if (dot) {
        *dot = 0;
        obj = json_object_get(root, k);
        ASSERT(obj);
        memmove(k, dot + 1, strlen(dot + 1) + 1);
    }
    if (json_value) {
        json_t *v = json_loads(json_value, JSON_DECODE_ANY, &je);
        ASSERT_MSG(v, "bad test json %s", json_value);
        json_object_set_new(obj, k, v);
    } else {
        json_object_del(obj, k);
    }
    ASSERT(json_dump_file(root, path, JSON_INDENT(2)) == 0);
    json_decref(root);
}

static void rm_rf(const char *d) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    ASSERT(system(cmd) == 0);
}

/* A copy of the base model in a temp dir, optionally rewritten. */
static char *model_copy(const char *src, const edit *e) {
    char *d = tmpdir_new();
    edit none = {.convert = VLM_F32};
    write_model(src, d, e ? e : &none);
    return d;
}

/* Load must fail with code and a message containing each of the given substrings. */
static void expect_load_error(const char *dir, int code, const char *s1, const char *s2) {
    vlm_model *m = NULL;
    char err[VLM_ERR_LEN] = "";
    int rc = vlm_model_load(dir, NULL, &m, err);
    if (getenv("TEST_VERBOSE")) fprintf(stderr, "error: %s\n", err);
    ASSERT_MSG(rc != 0, "load of %s succeeded, want an error with '%s'", dir, s1);
    ASSERT(m == NULL);
    if (code) ASSERT_EQ_INT(rc, code);
    ASSERT_CONTAINS(err, s1);
    if (s2) ASSERT_CONTAINS(err, s2);
}

/* Logits of a fixed 6-token text prompt (no media), for comparing loads. */
static void text_logits(vlm_model *m, float *out) {
    vlm_ctx_params p = {.n_ctx = 8, .n_batch = 6, .n_logits = 6, .n_patches = 4};
    vlm_ctx *c = NULL;
    char err[VLM_ERR_LEN];
    ASSERT_MSG(vlm_ctx_new(m, &p, &c, err) == 0, "%s", err);
    int32_t ids[6] = {1, 17, 300, 5, 999, 42};
    float pos[18];
    for (int i = 0; i < 6; i++) pos[i] = pos[6 + i] = pos[12 + i] = (float)i;
    ASSERT(vlm_llm_forward(c, ids, 6, pos, NULL, 0, c->vout, 6, out) == 0);
    vlm_ctx_free(c);
}

static float *load_logits(const char *dir) {
    vlm_model *m = NULL;
    char err[VLM_ERR_LEN];
    ASSERT_MSG(vlm_model_load(dir, NULL, &m, err) == 0, "%s: %s", dir, err);
    float *l = malloc(sizeof(float) * 6 * (size_t)m->cfg.vocab);
    text_logits(m, l);
    vlm_model_free(m);
    return l;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* ---- tests ---- */

static void test_model_load_fixture(void) {
    vlm_model *m = NULL;
    char err[VLM_ERR_LEN];
    ASSERT_MSG(vlm_model_load(BASE, NULL, &m, err) == 0, "%s", err);
    ASSERT_EQ_INT(m->cfg.hidden, 128);
    ASSERT_EQ_INT(m->cfg.n_layers, 4);
    ASSERT_EQ_INT(m->cfg.n_kv_heads, 2);
    ASSERT_EQ_INT(m->cfg.mrope_section[0], 4);
    ASSERT_EQ_INT(m->cfg.vision.depth, 4);
    ASSERT_EQ_INT(m->cfg.vision.n_fullatt, 2);
    ASSERT_EQ_INT(m->cfg.video_token_id, 1013);
    ASSERT_EQ_INT(m->cfg.gen.eos[0], 1002);
    ASSERT(m->w.lm_head.data != m->w.embed.data);
    vlm_model_free(m);
    vlm_model_free(NULL);
}

static void test_model_tied_head_is_embedding(void) {
    vlm_model *m = NULL;
    char err[VLM_ERR_LEN];
    ASSERT_MSG(vlm_model_load(TIED, NULL, &m, err) == 0, "%s", err);
    ASSERT(m->cfg.tie_word_embeddings);
    ASSERT(m->w.lm_head.data == m->w.embed.data);
    vlm_model_free(m);
}

static void test_model_new_naming_scheme_same_logits(void) {
    edit e = {.convert = VLM_F32};
    char *a = model_copy(BASE, &e);
    /* rename model.* -> model.language_model.* first, then visual.* -> model.visual.* */
    char *b = tmpdir_new(), *c2 = tmpdir_new();
    edit e1 = {.convert = VLM_F32, .prefix_from = "model.", .prefix_to = "model.language_model."};
    write_model(a, b, &e1);
    edit e2 = {.convert = VLM_F32, .prefix_from = "visual.", .prefix_to = "model.visual."};
    write_model(b, c2, &e2);
    vlm_st_set *st = NULL;
    char err[VLM_ERR_LEN];
    ASSERT(vlm_st_open_dir(c2, &st, err) == 0);
    ASSERT(vlm_st_find(st, "model.language_model.layers.0.self_attn.q_proj.weight"));
    ASSERT(vlm_st_find(st, "model.visual.blocks.0.attn.qkv.weight"));
    ASSERT(vlm_st_find(st, "lm_head.weight"));
    vlm_st_free(st);
    float *la = load_logits(BASE), *lb = load_logits(c2);
    ASSERT_NEAR(max_diff(la, lb, 6 * 1024), 0.0, 0.0);
    free(la);
    free(lb);
    rm_rf(a);
    rm_rf(b);
    rm_rf(c2);
    free(a);
    free(b);
    free(c2);
}

static void test_model_sharded_bf16_same_logits(void) {
    /* the fixture's weights are bf16-representable: a bf16 copy loads to identical f32 */
    edit e = {.convert = VLM_BF16, .shards = 3};
    char *d = model_copy(BASE, &e);
    float *la = load_logits(BASE), *lb = load_logits(d);
    ASSERT_NEAR(max_diff(la, lb, 6 * 1024), 0.0, 0.0);
    free(la);
    free(lb);
    rm_rf(d);
    free(d);
}

static void test_model_f16_loads(void) {
    edit e = {.convert = VLM_F16};
    char *d = model_copy(BASE, &e);
    float *la = load_logits(BASE), *lb = load_logits(d);
    /* f16 keeps 11 bits: the logits move a little, never wildly */
    double diff = max_diff(la, lb, 6 * 1024);
    ASSERT_MSG(diff < 0.05, "f16 logits differ by %g", diff);
    free(la);
    free(lb);
    rm_rf(d);
    free(d);
}

static void test_model_truncated_safetensors(void) {
    char *d = model_copy(BASE, NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    struct stat sb;
    ASSERT(stat(path, &sb) == 0);
    ASSERT(truncate(path, sb.st_size / 2) == 0);
    expect_load_error(d, VLM_EFORMAT, "model.safetensors", "past the end");
    ASSERT(truncate(path, 5) == 0);
    expect_load_error(d, VLM_EFORMAT, "model.safetensors", NULL);
    rm_rf(d);
    free(d);
}

static void test_model_header_past_end(void) {
    edit e = {.convert = VLM_F32, .bad_end = 1 << 30};
    char *d = model_copy(BASE, &e);
    expect_load_error(d, VLM_EFORMAT, "model.safetensors", "data_offsets");
    rm_rf(d);
    free(d);
}

static void test_model_wrong_dtype(void) {
    edit e = {.convert = VLM_F32, .retype = "model.norm.weight", .retype_to = "I32"};
    char *d = model_copy(BASE, &e);
    expect_load_error(d, VLM_EFORMAT, "'model.norm.weight'", "dtype I32");
    rm_rf(d);
    free(d);
}

static void test_model_wrong_shape(void) {
    edit e = {.convert = VLM_F32, .reshape = "model.norm.weight", .reshape_to = {64, 2}};
    char *d = model_copy(BASE, &e);
    expect_load_error(d, VLM_EFORMAT, "'model.norm.weight' has shape [64, 2], want [128]", NULL);
    rm_rf(d);
    free(d);
}

static void test_model_missing_tensor(void) {
    edit e = {.convert = VLM_F32, .rename_from = "model.layers.2.mlp.up_proj.weight"};
    char *d = model_copy(BASE, &e);
    expect_load_error(d, VLM_ENOTFOUND, "missing tensor 'model.layers.2.mlp.up_proj.weight'", NULL);
    rm_rf(d);
    free(d);
    edit e2 = {.convert = VLM_F32, .rename_from = "lm_head.weight"};
    d = model_copy(BASE, &e2); /* untied: the head is required */
    expect_load_error(d, VLM_ENOTFOUND, "'lm_head.weight'", NULL);
    rm_rf(d);
    free(d);
}

static void test_model_no_weights_file(void) {
    char *d = model_copy(BASE, NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    ASSERT(unlink(path) == 0);
    expect_load_error(d, VLM_ENOTFOUND, d, NULL);
    rm_rf(d);
    free(d);
}

static void test_model_malformed_config(void) {
    char *d = model_copy(BASE, NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", d);
    write_text(path, "{\"model_type\": \"qwen2_5_vl\", \"hidden_size\": ");
    expect_load_error(d, VLM_EFORMAT, "config.json", "line");
    ASSERT(unlink(path) == 0);
    expect_load_error(d, VLM_ENOTFOUND, "config.json", NULL);
    rm_rf(d);
    free(d);
}

static void test_model_incomplete_config(void) {
    static const struct {
        const char *key, *value, *want1, *want2;
        int code;
    } cases[] = {
        {"hidden_size", NULL, "'hidden_size' missing", NULL, VLM_EFORMAT},
        {"vision_config", NULL, "'vision_config' missing", NULL, VLM_EFORMAT},
        {"vision_config.depth", NULL, "'vision_config.depth' missing", NULL, VLM_EFORMAT},
        {"vision_config.fullatt_block_indexes", "[9]", "fullatt_block_indexes", "not a block",
         VLM_EFORMAT},
        {"video_token_id", NULL, "'video_token_id' missing", NULL, VLM_EFORMAT},
        {"video_token_id", "5000", "'video_token_id' 5000", "vocabulary", VLM_EFORMAT},
        {"num_key_value_heads", "3", "num_key_value_heads", NULL, VLM_EFORMAT},
        {"hidden_size", "\"wide\"", "'hidden_size' must be an integer", NULL, VLM_EFORMAT},
        {"rope_scaling", NULL, "'rope_scaling' missing", NULL, VLM_EFORMAT},
        {"rope_scaling", "{\"type\": \"mrope\", \"mrope_section\": [4, 6, 7]}", "mrope_section",
         "sums to 17", VLM_EFORMAT},
        {"rope_scaling", "{\"type\": \"yarn\", \"mrope_section\": [4, 6, 6]}", "yarn", NULL,
         VLM_EUNSUPPORTED},
        {"model_type", "\"llama\"", "'model_type' is \"llama\"", NULL, VLM_EUNSUPPORTED},
        {"model_type", NULL, "'model_type' missing", NULL, VLM_EFORMAT},
        {"hidden_act", "\"gelu\"", "hidden_act", NULL, VLM_EUNSUPPORTED},
        {"rms_norm_eps", "-1", "rms_norm_eps", NULL, VLM_EFORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *d = model_copy(BASE, NULL);
        edit_config(d, cases[i].key, cases[i].value);
        expect_load_error(d, cases[i].code, cases[i].want1, cases[i].want2);
        rm_rf(d);
        free(d);
    }
}

static void test_model_published_mrope_type_accepted(void) {
    /* published Qwen2.5-VL configs say "type": "mrope"; HF 4.51+ writes "default" */
    char *d = model_copy(BASE, NULL);
    edit_config(d, "rope_scaling", "{\"type\": \"mrope\", \"mrope_section\": [4, 6, 6]}");
    float *la = load_logits(BASE), *lb = load_logits(d);
    ASSERT_NEAR(max_diff(la, lb, 6 * 1024), 0.0, 0.0);
    free(la);
    free(lb);
    rm_rf(d);
    free(d);
}

static void test_model_generation_config(void) {
    char *d = model_copy(BASE, NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/generation_config.json", d);
    write_text(path, "{\"eos_token_id\": [1002, 1000], \"top_k\": 1, \"top_p\": 0.001, "
                     "\"temperature\": 0.9, \"repetition_penalty\": 1.05, \"do_sample\": true}");
    vlm_model *m = NULL;
    char err[VLM_ERR_LEN];
    ASSERT_MSG(vlm_model_load(d, NULL, &m, err) == 0, "%s", err);
    ASSERT_EQ_INT(m->cfg.gen.n_eos, 2);
    ASSERT_EQ_INT(m->cfg.gen.eos[1], 1000);
    ASSERT_EQ_INT(m->cfg.gen.top_k, 1);
    ASSERT_NEAR(m->cfg.gen.top_p, 0.001, 1e-9);
    ASSERT_NEAR(m->cfg.gen.repetition_penalty, 1.05, 1e-6);
    ASSERT(m->cfg.gen.do_sample);
    vlm_model_free(m);
    write_text(path, "{\"top_p\": 7}");
    expect_load_error(d, VLM_EFORMAT, "generation_config.json", "top_p");
    write_text(path, "[1, 2");
    expect_load_error(d, VLM_EFORMAT, "generation_config.json", NULL);
    rm_rf(d);
    free(d);
}

static void test_model_unknown_backend(void) {
    vlm_model *m = NULL;
    char err[VLM_ERR_LEN];
    vlm_model_params p = {.backend = "tpu"};
    ASSERT(vlm_model_load(BASE, &p, &m, err) == VLM_EINVAL);
    ASSERT_CONTAINS(err, "'tpu'");
}

static void test_model_ctx_full_is_an_error(void) {
    vlm_model *m = NULL;
    char err[VLM_ERR_LEN];
    ASSERT(vlm_model_load(BASE, NULL, &m, err) == 0);
    vlm_ctx_params p = {.n_ctx = 4, .n_batch = 4, .n_logits = 1, .n_patches = 4};
    vlm_ctx *c = NULL;
    ASSERT(vlm_ctx_new(m, &p, &c, err) == 0);
    int32_t ids[4] = {1, 2, 3, 4};
    float pos[12] = {0};
    ASSERT(vlm_llm_forward(c, ids, 3, pos, NULL, 0, c->vout, 1, NULL) == 0);
    ASSERT_EQ_INT(vlm_llm_forward(c, ids, 2, pos, NULL, 0, c->vout, 1, NULL), VLM_EFULL);
    int32_t bad = 5000;
    ASSERT_EQ_INT(vlm_llm_forward(c, &bad, 1, pos, NULL, 0, c->vout, 1, NULL), VLM_ERANGE);
    vlm_ctx_params bp = {.n_ctx = 0, .n_batch = 4, .n_logits = 1};
    vlm_ctx *c2 = NULL;
    ASSERT(vlm_ctx_new(m, &bp, &c2, err) == VLM_EINVAL);
    vlm_ctx_free(c);
    vlm_model_free(m);
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"model_load_fixture", test_model_load_fixture},
        {"model_tied_head_is_embedding", test_model_tied_head_is_embedding},
        {"model_new_naming_scheme_same_logits", test_model_new_naming_scheme_same_logits},
        {"model_sharded_bf16_same_logits", test_model_sharded_bf16_same_logits},
        {"model_f16_loads", test_model_f16_loads},
        {"model_truncated_safetensors", test_model_truncated_safetensors},
        {"model_header_past_end", test_model_header_past_end},
        {"model_wrong_dtype", test_model_wrong_dtype},
        {"model_wrong_shape", test_model_wrong_shape},
        {"model_missing_tensor", test_model_missing_tensor},
        {"model_no_weights_file", test_model_no_weights_file},
        {"model_malformed_config", test_model_malformed_config},
        {"model_incomplete_config", test_model_incomplete_config},
        {"model_published_mrope_type_accepted", test_model_published_mrope_type_accepted},
        {"model_generation_config", test_model_generation_config},
        {"model_unknown_backend", test_model_unknown_backend},
        {"model_ctx_full_is_an_error", test_model_ctx_full_is_an_error},
        {0},
    };
    return test_main(argc, argv, tests);
}
