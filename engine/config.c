/* config.c — read and validate a Qwen2.5-VL model's config.json and
 * generation_config.json.
 *
 * Every dimension and token id comes from these files; nothing is assumed.  Both the
 * published layout (text fields at the top level) and the newer one (fields under
 * "text_config") are read; rope_scaling's mrope_section is accepted whether its type
 * says "mrope" or "default" (HF 4.51+ rewrites it).  Errors name the file and the JSON
 * path of the key, e.g. `config.json: 'vision_config.depth' must be a positive integer`.
 */
#include <jansson.h>
#include <math.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

/* A JSON object together with its path, for error messages. */
typedef struct jobj {
    json_t *o;
    const char *path; /* "" at the root, "vision_config." below it */
    const char *file;
} jobj;

static int get_int(jobj j, const char *key, bool required, int64_t dflt, int64_t min,
                   int64_t *out, char *err) {
    json_t *v = json_object_get(j.o, key);
    if (!v || json_is_null(v)) {
        if (required)
            return vlm__errf(err, VLM_EFORMAT, "%s: '%s%s' missing", j.file, j.path, key);
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min)
        return vlm__errf(err, VLM_EFORMAT, "%s: '%s%s' must be an integer >= %lld", j.file,
                         j.path, key, (long long)min);
    *out = json_integer_value(v);
    return 0;
}

static int get_num(jobj j, const char *key, bool required, double dflt, double *out,
                   char *err) {
    json_t *v = json_object_get(j.o, key);
    if (!v || json_is_null(v)) {
        if (required)
            return vlm__errf(err, VLM_EFORMAT, "%s: '%s%s' missing", j.file, j.path, key);
        *out = dflt;
        return 0;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return vlm__errf(err, VLM_EFORMAT, "%s: '%s%s' must be a number", j.file, j.path, key);
    *out = json_number_value(v);
    return 0;
}

static int get_bool(jobj j, const char *key, bool dflt, bool *out, char *err) {
    json_t *v = json_object_get(j.o, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_boolean(v))
        return vlm__errf(err, VLM_EFORMAT, "%s: '%s%s' must be true or false", j.file, j.path,
                         key);
    *out = json_is_true(v);
    return 0;
}

/* A list of integers >= 0 (or a single integer when allow_scalar). */
static int get_int_list(jobj j, const char *key, bool required, bool allow_scalar, int64_t cap,
                        int64_t *vals, int64_t *n, char *err) {
    json_t *v = json_object_get(j.o, key);
    *n = 0;
    if (!v || json_is_null(v)) {
        if (required)
            return vlm__errf(err, VLM_EFORMAT, "%s: '%s%s' missing", j.file, j.path, key);
        return 0;
    }
    if (allow_scalar && json_is_integer(v)) {
        vals[0] = json_integer_value(v);
        *n = 1;
        return vals[0] < 0 ? vlm__errf(err, VLM_EFORMAT, "%s: '%s%s' must be >= 0", j.file,
                                       j.path, key)
                           : 0;
    }
    if (!json_is_array(v) || (int64_t)json_array_size(v) > cap)
        return vlm__errf(err, VLM_EFORMAT, "%s: '%s%s' must be a list of at most %lld integers",
                         j.file, j.path, key, (long long)cap);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return vlm__errf(err, VLM_EFORMAT, "%s: '%s%s[%zu]' must be an integer >= 0",
                             j.file, j.path, key, i);
        vals[(*n)++] = json_integer_value(e);
    }
    return 0;
}

#define TRY(expr)                                                                          \
    do {                                                                                   \
        int rc_ = (expr);                                                                  \
        if (rc_) return rc_;                                                               \
    } while (0)

static int parse_vision(jobj j, vlm_vision_config *vc, int64_t text_hidden, char *err) {
    TRY(get_int(j, "depth", true, 0, 1, &vc->depth, err));
    TRY(get_int(j, "hidden_size", true, 0, 1, &vc->hidden, err));
    TRY(get_int(j, "num_heads", true, 0, 1, &vc->n_heads, err));
    TRY(get_int(j, "intermediate_size", true, 0, 1, &vc->intermediate, err));
    TRY(get_int(j, "out_hidden_size", false, text_hidden, 1, &vc->out_hidden, err));
    TRY(get_int(j, "patch_size", false, 14, 1, &vc->patch_size, err));
    TRY(get_int(j, "temporal_patch_size", false, 2, 1, &vc->temporal_patch_size, err));
    TRY(get_int(j, "spatial_merge_size", false, 2, 1, &vc->spatial_merge_size, err));
    TRY(get_int(j, "in_channels", false, 3, 1, &vc->in_channels, err));
    if (json_object_get(j.o, "in_chans") && !json_object_get(j.o, "in_channels"))
        TRY(get_int(j, "in_chans", false, 3, 1, &vc->in_channels, err));
    TRY(get_int(j, "window_size", false, 112, 1, &vc->window_size, err));
    TRY(get_int(j, "tokens_per_second", false, 2, 0, &vc->tokens_per_second, err));
    TRY(get_int_list(j, "fullatt_block_indexes", true, false, VLM_MAX_FULLATT, vc->fullatt,
                     &vc->n_fullatt, err));
    json_t *act = json_object_get(j.o, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0))
        return vlm__errf(err, VLM_EUNSUPPORTED,
                         "%s: '%shidden_act' is %s; only \"silu\" (Qwen2.5-VL) is supported",
                         j.file, j.path, act && json_is_string(act) ? json_string_value(act) : "?");
    vc->eps = 1e-6f; /* Qwen2.5-VL's vision RMSNorms hard-code eps 1e-6 */
    vc->head_dim = vc->n_heads > 0 ? vc->hidden / vc->n_heads : 0;
    return 0;
}

static int parse_generation(const char *dir, vlm_generation_config *g, int64_t eos, char *err) {
    g->n_eos = eos >= 0 ? 1 : 0;
    g->eos[0] = eos;
    g->do_sample = false;
    g->temperature = 1.0f;
    g->top_k = 50;
    g->top_p = 1.0f;
    g->repetition_penalty = 1.0f;
    char path[1200];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f && errno == ENOENT) { /* optional: transformers' defaults */
        vlm__log(VLM_LOG_WARN, "%s: absent; using transformers' generation defaults", path);
        return 0;
    }
    if (!f) return vlm__errf(err, VLM_ENOTFOUND, "%s: cannot open: %s", path, strerror(errno));
    fclose(f);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return vlm__errf(err, VLM_EFORMAT, "generation_config.json: line %d: %s", je.line,
                         je.text);
    int rc = VLM_EFORMAT;
    if (!json_is_object(root)) {
        vlm__errf(err, rc, "generation_config.json: not a JSON object");
        goto out;
    }
    jobj j = {root, "", "generation_config.json"};
    int64_t n = 0, ids[VLM_MAX_EOS];
    double t, p, rp;
    int64_t k;
    if ((rc = get_int_list(j, "eos_token_id", false, true, VLM_MAX_EOS, ids, &n, err))) goto out;
    if (n > 0) {
        g->n_eos = n;
        memcpy(g->eos, ids, sizeof(int64_t) * (size_t)n);
    }
    if ((rc = get_bool(j, "do_sample", false, &g->do_sample, err))) goto out;
    if ((rc = get_num(j, "temperature", false, 1.0, &t, err))) goto out;
    if ((rc = get_num(j, "top_p", false, 1.0, &p, err))) goto out;
    if ((rc = get_num(j, "repetition_penalty", false, 1.0, &rp, err))) goto out;
    if ((rc = get_int(j, "top_k", false, 50, 0, &k, err))) goto out;
    rc = VLM_EFORMAT;
    if (t < 0) { vlm__errf(err, rc, "generation_config.json: 'temperature' must be >= 0"); goto out; }
    if (p <= 0 || p > 1) { vlm__errf(err, rc, "generation_config.json: 'top_p' must be in (0, 1]"); goto out; }
    if (rp <= 0) { vlm__errf(err, rc, "generation_config.json: 'repetition_penalty' must be > 0"); goto out; }
    g->temperature = (float)t;
    g->top_p = (float)p;
    g->repetition_penalty = (float)rp;
    g->top_k = k;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int vlm_config_validate(const vlm_config *c, const char *file, char *err) {
    const vlm_vision_config *v = &c->vision;
    if (c->hidden % c->n_heads != 0 && c->head_dim * c->n_heads == 0)
        return vlm__errf(err, VLM_EFORMAT, "%s: 'hidden_size' %lld not divisible by "
                         "'num_attention_heads' %lld", file, (long long)c->hidden,
                         (long long)c->n_heads);
    if (c->head_dim % 2 != 0)
        return vlm__errf(err, VLM_EFORMAT, "%s: head_dim %lld must be even", file,
                         (long long)c->head_dim);
    if (c->n_heads % c->n_kv_heads != 0)
        return vlm__errf(err, VLM_EFORMAT, "%s: 'num_attention_heads' %lld is not a multiple "
                         "of 'num_key_value_heads' %lld", file, (long long)c->n_heads,
                         (long long)c->n_kv_heads);
    if (c->mrope_section[0] + c->mrope_section[1] + c->mrope_section[2] != c->head_dim / 2)
        return vlm__errf(err, VLM_EFORMAT, "%s: 'rope_scaling.mrope_section' sums to %lld, "
                         "want head_dim/2 = %lld", file,
                         (long long)(c->mrope_section[0] + c->mrope_section[1] +
                                     c->mrope_section[2]), (long long)c->head_dim / 2);
    if (!(c->rope_theta > 0))
        return vlm__errf(err, VLM_EFORMAT, "%s: 'rope_theta' must be > 0", file);
    if (!(c->rms_eps > 0))
        return vlm__errf(err, VLM_EFORMAT, "%s: 'rms_norm_eps' must be > 0", file);
    const struct { const char *key; int64_t id; } ids[] = {
        {"image_token_id", c->image_token_id}, {"video_token_id", c->video_token_id},
        {"vision_start_token_id", c->vision_start_token_id},
        {"vision_end_token_id", c->vision_end_token_id},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i].id < 0 || ids[i].id >= c->vocab)
            return vlm__errf(err, VLM_EFORMAT, "%s: '%s' %lld is outside the vocabulary "
                             "(vocab_size %lld)", file, ids[i].key, (long long)ids[i].id,
                             (long long)c->vocab);
    if (v->hidden % v->n_heads != 0 || v->head_dim % 4 != 0)
        return vlm__errf(err, VLM_EFORMAT, "%s: 'vision_config.hidden_size' %lld / 'num_heads' "
                         "%lld must give a head size divisible by 4 (2-D RoPE)", file,
                         (long long)v->hidden, (long long)v->n_heads);
    if (v->out_hidden != c->hidden)
        return vlm__errf(err, VLM_EFORMAT, "%s: 'vision_config.out_hidden_size' %lld != "
                         "'hidden_size' %lld", file, (long long)v->out_hidden,
                         (long long)c->hidden);
    int64_t unit = v->patch_size * v->spatial_merge_size;
    if (v->window_size % unit != 0)
        return vlm__errf(err, VLM_EFORMAT, "%s: 'vision_config.window_size' %lld is not a "
                         "multiple of patch_size*spatial_merge_size = %lld", file,
                         (long long)v->window_size, (long long)unit);
    for (int64_t i = 0; i < v->n_fullatt; i++)
        if (v->fullatt[i] >= v->depth)
            return vlm__errf(err, VLM_EFORMAT, "%s: 'vision_config.fullatt_block_indexes[%lld]'"
                             " = %lld is not a block (depth %lld)", file, (long long)i,
                             (long long)v->fullatt[i], (long long)v->depth);
    if (v->spatial_merge_size != 2)
        return vlm__errf(err, VLM_EUNSUPPORTED, "%s: 'vision_config.spatial_merge_size' %lld: "
                         "only 2 is supported", file, (long long)v->spatial_merge_size);
    for (int64_t i = 0; i < c->gen.n_eos; i++)
        if (c->gen.eos[i] >= c->vocab)
            return vlm__errf(err, VLM_EFORMAT, "generation_config.json: 'eos_token_id' %lld is "
                             "outside the vocabulary", (long long)c->gen.eos[i]);
    return 0;
}

static int parse_config(json_t *root, const char *dir, vlm_config *c, char *err) {
    const char *file = "config.json";
    if (!json_is_object(root)) return vlm__errf(err, VLM_EFORMAT, "%s: not a JSON object", file);
    json_t *mt = json_object_get(root, "model_type");
    if (!mt || !json_is_string(mt))
        return vlm__errf(err, VLM_EFORMAT, "%s: 'model_type' missing", file);
    if (strcmp(json_string_value(mt), "qwen2_5_vl") != 0)
        return vlm__errf(err, VLM_EUNSUPPORTED, "%s: 'model_type' is \"%s\"; only \"qwen2_5_vl\" "
                         "(Qwen2.5-VL, StreamingVLM) is supported", file, json_string_value(mt));
    /* Newer transformers nest the text fields under text_config; read from there when
     * present, the top level otherwise. */
    jobj top = {root, "", file};
    jobj t = top;
    json_t *tc = json_object_get(root, "text_config");
    if (tc && json_is_object(tc) && json_object_get(tc, "hidden_size"))
        t = (jobj){tc, "text_config.", file};

    TRY(get_int(t, "vocab_size", true, 0, 1, &c->vocab, err));
    TRY(get_int(t, "hidden_size", true, 0, 1, &c->hidden, err));
    TRY(get_int(t, "num_hidden_layers", true, 0, 1, &c->n_layers, err));
    TRY(get_int(t, "num_attention_heads", true, 0, 1, &c->n_heads, err));
    TRY(get_int(t, "num_key_value_heads", false, c->n_heads, 1, &c->n_kv_heads, err));
    TRY(get_int(t, "intermediate_size", true, 0, 1, &c->intermediate, err));
    TRY(get_int(t, "head_dim", false, c->hidden / c->n_heads, 1, &c->head_dim, err));
    double eps, theta;
    TRY(get_num(t, "rms_norm_eps", false, 1e-6, &eps, err));
    TRY(get_num(t, "rope_theta", false, 1e6, &theta, err));
    c->rms_eps = (float)eps;
    c->rope_theta = (float)theta;
    TRY(get_bool(top, "tie_word_embeddings", false, &c->tie_word_embeddings, err));
    json_t *act = json_object_get(t.o, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0))
        return vlm__errf(err, VLM_EUNSUPPORTED, "%s: '%shidden_act': only \"silu\" is supported",
                         file, t.path);

    json_t *rs = json_object_get(t.o, "rope_scaling");
    if (!rs && t.o != root) rs = json_object_get(root, "rope_scaling");
    if (!rs || !json_is_object(rs))
        return vlm__errf(err, VLM_EFORMAT, "%s: 'rope_scaling' missing (Qwen2.5-VL needs "
                         "rope_scaling.mrope_section)", file);
    json_t *ty = json_object_get(rs, "type");
    if (!ty) ty = json_object_get(rs, "rope_type");
    if (ty && json_is_string(ty) && strcmp(json_string_value(ty), "mrope") != 0 &&
        strcmp(json_string_value(ty), "default") != 0)
        return vlm__errf(err, VLM_EUNSUPPORTED, "%s: 'rope_scaling.type' \"%s\" unsupported "
                         "(want \"mrope\" or \"default\")", file, json_string_value(ty));
    int64_t n_sec = 0;
    TRY(get_int_list((jobj){rs, "rope_scaling.", file}, "mrope_section", true, false, 3,
                     c->mrope_section, &n_sec, err));
    if (n_sec != 3)
        return vlm__errf(err, VLM_EFORMAT, "%s: 'rope_scaling.mrope_section' must have 3 "
                         "entries", file);

    TRY(get_int(top, "bos_token_id", false, -1, -1, &c->bos_token_id, err));
    int64_t eos_list[VLM_MAX_EOS], n_eos = 0;
    TRY(get_int_list(top, "eos_token_id", false, true, VLM_MAX_EOS, eos_list, &n_eos, err));
    c->eos_token_id = n_eos ? eos_list[0] : -1;
    TRY(get_int(top, "image_token_id", true, 0, 0, &c->image_token_id, err));
    TRY(get_int(top, "video_token_id", true, 0, 0, &c->video_token_id, err));
    TRY(get_int(top, "vision_start_token_id", true, 0, 0, &c->vision_start_token_id, err));
    TRY(get_int(top, "vision_end_token_id", true, 0, 0, &c->vision_end_token_id, err));

    json_t *vj = json_object_get(root, "vision_config");
    if (!vj || !json_is_object(vj))
        return vlm__errf(err, VLM_EFORMAT, "%s: 'vision_config' missing", file);
    TRY(parse_vision((jobj){vj, "vision_config.", file}, &c->vision, c->hidden, err));
    TRY(parse_generation(dir, &c->gen, c->eos_token_id, err));
    return vlm_config_validate(c, file, err);
}

int vlm_config_load(const char *dir, vlm_config *cfg, char *err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    memset(cfg, 0, sizeof *cfg);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return vlm__errf(err, VLM_ENOTFOUND, "%s: not a model directory (%s)", dir,
                             stat(dir, &st) != 0 ? strerror(errno) : "not a directory");
        FILE *f = fopen(path, "rb");
        if (!f) return vlm__errf(err, VLM_ENOTFOUND, "%s: cannot open: %s", path, strerror(errno));
        fclose(f);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return vlm__errf(err, VLM_EFORMAT, "%s: is a directory", path);
        return vlm__errf(err, VLM_EFORMAT, "%s: line %d: %s", path, je.line, je.text);
    }
    int rc = parse_config(root, dir, cfg, err);
    json_decref(root);
    return rc;
}
