/* model.c — load a Qwen2.5-VL checkpoint onto a backend.
 *
 * The weights are described by one table (name, shape, destination) built from the
 * config; the loader checks that every tensor exists with a float dtype and exactly the
 * expected shape, plans one backend buffer for all of them, then converts each from the
 * mmapped file into the backend's weight dtype.  Both naming schemes are accepted:
 * `model.layers.*` + `visual.*` (transformers < 4.52, the published checkpoints) and
 * `model.language_model.*` + `model.visual.*` (newer saves).  With
 * tie_word_embeddings and no `lm_head.weight`, the head is the embedding matrix.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "safetensors.h"

typedef struct weight_spec {
    char name[128];
    int ndim;
    int64_t shape[5];
    vlm_tensor *dst;
    int64_t rows, cols; /* 2-D view stored on the backend */
} weight_spec;

typedef struct spec_list {
    weight_spec *v;
    int64_t n, cap;
} spec_list;

static int spec_add(spec_list *l, vlm_tensor *dst, int ndim, const int64_t *shape,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int spec_add(spec_list *l, vlm_tensor *dst, int ndim, const int64_t *shape,
                    const char *fmt, ...) {
    if (l->n == l->cap) {
        int64_t cap = l->cap ? l->cap * 2 : 256;
        weight_spec *v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v) return VLM_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    weight_spec *s = &l->v[l->n++];
    memset(s, 0, sizeof *s);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof s->name, fmt, ap);
    va_end(ap);
    s->ndim = ndim;
    s->rows = shape[0];
    s->cols = 1;
    for (int i = 0; i < ndim; i++) {
        s->shape[i] = shape[i];
        if (i > 0) s->cols *= shape[i];
    }
    s->dst = dst;
    return 0;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define ADD1(dst, a, ...) spec_add(&l, dst, 1, SHAPE(a), __VA_ARGS__)
#define ADD2(dst, a, b, ...) spec_add(&l, dst, 2, SHAPE(a, b), __VA_ARGS__)

/* The table of every weight the model needs, with names in the given scheme. */
static int build_specs(vlm_model *m, bool new_names, bool has_lm_head, spec_list *out) {
    const vlm_config *c = &m->cfg;
    const vlm_vision_config *v = &c->vision;
    vlm_weights *w = &m->w;
    const char *lm = new_names ? "model.language_model." : "model.";
    const char *vis = new_names ? "model.visual." : "visual.";
    int64_t d = c->hidden, hd = c->head_dim, vh = v->hidden, vi = v->intermediate;
    int64_t patch_in = v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
    spec_list l = {0};
    int rc = 0;

    w->blocks = calloc((size_t)v->depth, sizeof *w->blocks);
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->blocks || !w->layers) return VLM_ENOMEM;

    rc |= spec_add(&l, &w->patch_embed, 5,
                   SHAPE(vh, v->in_channels, v->temporal_patch_size, v->patch_size, v->patch_size),
                   "%spatch_embed.proj.weight", vis);
    for (int64_t b = 0; b < v->depth; b++) {
        vlm_vision_block_weights *bw = &w->blocks[b];
        const char *p = vis;
        long long i = (long long)b;
        rc |= ADD1(&bw->norm1, vh, "%sblocks.%lld.norm1.weight", p, i);
        rc |= ADD1(&bw->norm2, vh, "%sblocks.%lld.norm2.weight", p, i);
        /* qkv is one [3vh, vh] linear; q, k, v are its row blocks (set after loading) */
        rc |= ADD2(&bw->q_w, 3 * vh, vh, "%sblocks.%lld.attn.qkv.weight", p, i);
        rc |= ADD1(&bw->q_b, 3 * vh, "%sblocks.%lld.attn.qkv.bias", p, i);
        rc |= ADD2(&bw->proj_w, vh, vh, "%sblocks.%lld.attn.proj.weight", p, i);
        rc |= ADD1(&bw->proj_b, vh, "%sblocks.%lld.attn.proj.bias", p, i);
        rc |= ADD2(&bw->gate_w, vi, vh, "%sblocks.%lld.mlp.gate_proj.weight", p, i);
        rc |= ADD1(&bw->gate_b, vi, "%sblocks.%lld.mlp.gate_proj.bias", p, i);
        rc |= ADD2(&bw->up_w, vi, vh, "%sblocks.%lld.mlp.up_proj.weight", p, i);
        rc |= ADD1(&bw->up_b, vi, "%sblocks.%lld.mlp.up_proj.bias", p, i);
        rc |= ADD2(&bw->down_w, vh, vi, "%sblocks.%lld.mlp.down_proj.weight", p, i);
        rc |= ADD1(&bw->down_b, vh, "%sblocks.%lld.mlp.down_proj.bias", p, i);
    }
    rc |= ADD1(&w->merger_ln, vh, "%smerger.ln_q.weight", vis);
    rc |= ADD2(&w->merger_w0, 4 * vh, 4 * vh, "%smerger.mlp.0.weight", vis);
    rc |= ADD1(&w->merger_b0, 4 * vh, "%smerger.mlp.0.bias", vis);
    rc |= ADD2(&w->merger_w2, d, 4 * vh, "%smerger.mlp.2.weight", vis);
    rc |= ADD1(&w->merger_b2, d, "%smerger.mlp.2.bias", vis);

    rc |= ADD2(&w->embed, c->vocab, d, "%sembed_tokens.weight", lm);
    for (int64_t li = 0; li < c->n_layers; li++) {
        vlm_layer_weights *lw = &w->layers[li];
        long long i = (long long)li;
        int64_t qd = c->n_heads * hd, kd = c->n_kv_heads * hd;
        rc |= ADD1(&lw->in_norm, d, "%slayers.%lld.input_layernorm.weight", lm, i);
        rc |= ADD1(&lw->post_norm, d, "%slayers.%lld.post_attention_layernorm.weight", lm, i);
        rc |= ADD2(&lw->q_w, qd, d, "%slayers.%lld.self_attn.q_proj.weight", lm, i);
        rc |= ADD1(&lw->q_b, qd, "%slayers.%lld.self_attn.q_proj.bias", lm, i);
        rc |= ADD2(&lw->k_w, kd, d, "%slayers.%lld.self_attn.k_proj.weight", lm, i);
        rc |= ADD1(&lw->k_b, kd, "%slayers.%lld.self_attn.k_proj.bias", lm, i);
        rc |= ADD2(&lw->v_w, kd, d, "%slayers.%lld.self_attn.v_proj.weight", lm, i);
        rc |= ADD1(&lw->v_b, kd, "%slayers.%lld.self_attn.v_proj.bias", lm, i);
        rc |= ADD2(&lw->o_w, d, qd, "%slayers.%lld.self_attn.o_proj.weight", lm, i);
        rc |= ADD2(&lw->gate_w, c->intermediate, d, "%slayers.%lld.mlp.gate_proj.weight", lm, i);
        rc |= ADD2(&lw->up_w, c->intermediate, d, "%slayers.%lld.mlp.up_proj.weight", lm, i);
        rc |= ADD2(&lw->down_w, d, c->intermediate, "%slayers.%lld.mlp.down_proj.weight", lm, i);
    }
    rc |= ADD1(&w->norm, d, "%snorm.weight", lm);
    if (has_lm_head || !c->tie_word_embeddings)
        rc |= ADD2(&w->lm_head, c->vocab, d, "lm_head.weight");
    (void)patch_in;
    *out = l;
    return rc ? VLM_ENOMEM : 0;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* Convert one file tensor to the backend's weight dtype and upload it. */
static int upload(vlm_model *m, const vlm_st_tensor *t, vlm_tensor dst, void *stage) {
    int64_t n = t->numel;
    if (dst.dtype == VLM_F32) {
        vlm__to_f32(stage, t->data, t->dtype, n);
    } else if (dst.dtype == VLM_BF16) {
        uint16_t *o = stage;
        if (t->dtype == VLM_BF16) {
            memcpy(o, t->data, (size_t)n * 2);
        } else {
            const int64_t chunk = 4096;
            float tmp[4096];
            for (int64_t i = 0; i < n; i += chunk) {
                int64_t k = n - i < chunk ? n - i : chunk;
                vlm__to_f32(tmp, (const char *)t->data + (size_t)i * vlm__dtype_size(t->dtype),
                            t->dtype, k);
                for (int64_t j = 0; j < k; j++) o[i + j] = vlm__f32_to_bf16(tmp[j]);
            }
        }
    } else {
        return VLM_EUNSUPPORTED;
    }
    return vlm_backend_set(m->be, dst, stage);
}

static int finish_weights(vlm_model *m);

static int load_weights(vlm_model *m, vlm_st_set *st, char *err) {
    bool new_names = vlm_st_find(st, "model.language_model.embed_tokens.weight") != NULL;
    bool has_lm_head = vlm_st_find(st, "lm_head.weight") != NULL;
    spec_list l = {0};
    int rc = build_specs(m, new_names, has_lm_head, &l);
    if (rc) {
        free(l.v);
        return vlm__errf(err, rc, "%s: out of memory planning weights", m->dir);
    }
    vlm_dtype wt = m->be->iface->weight_dtype;
    size_t es = vlm__dtype_size(wt), total = 0, max_bytes = 0;
    const vlm_st_tensor **found = calloc((size_t)l.n, sizeof *found);
    if (!found) rc = vlm__errf(err, VLM_ENOMEM, "%s: out of memory", m->dir);

    /* 1. every tensor present, float, with exactly the shape the config implies */
    for (int64_t i = 0; !rc && i < l.n; i++) {
        weight_spec *s = &l.v[i];
        const vlm_st_tensor *t = vlm_st_find(st, s->name);
        if (!t) {
            rc = vlm__errf(err, VLM_ENOTFOUND, "%s: missing tensor '%s'", m->dir, s->name);
            break;
        }
        if (t->dtype != VLM_F32 && t->dtype != VLM_BF16 && t->dtype != VLM_F16) {
            rc = vlm__errf(err, VLM_EFORMAT, "%s: '%s' has dtype %s, want F32, BF16 or F16",
                           t->file, s->name, vlm__dtype_name(t->dtype));
            break;
        }
        bool same = t->ndim == s->ndim;
        for (int k = 0; same && k < s->ndim; k++) same = t->shape[k] == s->shape[k];
        if (!same) {
            char have[96], want[96];
            shape_str(have, sizeof have, t->ndim, t->shape);
            shape_str(want, sizeof want, s->ndim, s->shape);
            rc = vlm__errf(err, VLM_EFORMAT, "%s: '%s' has shape %s, want %s", t->file, s->name,
                           have, want);
            break;
        }
        found[i] = t;
        size_t bytes = (size_t)t->numel * es;
        total += (bytes + 63) & ~(size_t)63;
        if (bytes > max_bytes) max_bytes = bytes;
    }

    /* 2. one planned buffer, every weight a slice of it */
    void *stage = NULL;
    if (!rc) {
        m->weights_buf = vlm_backend_alloc(m->be, total);
        stage = malloc(max_bytes ? max_bytes : 1);
        if (!m->weights_buf || !stage)
            rc = vlm__errf(err, VLM_ENOMEM, "%s: cannot allocate %.1f MB for the weights on "
                           "backend %s", m->dir, (double)total / 1e6, m->be->iface->name);
        m->weights_bytes = total;
    }
    size_t off = 0;
    for (int64_t i = 0; !rc && i < l.n; i++) {
        weight_spec *s = &l.v[i];
        *s->dst = vlm_tensor_2d(wt, (char *)m->weights_buf + off, s->rows, s->cols);
        if (s->ndim == 1) *s->dst = vlm_tensor_make(wt, s->dst->data, 1, &s->rows);
        off += ((size_t)found[i]->numel * es + 63) & ~(size_t)63;
        rc = upload(m, found[i], *s->dst, stage);
        if (rc)
            rc = vlm__errf(err, rc, "%s: uploading '%s' to backend %s failed: %s", m->dir,
                           s->name, m->be->iface->name, vlm_backend_last_error(m->be));
    }
    /* the copies are done (and any device error seen) before the staging memory and
     * the mapped files go */
    if (!rc && (rc = vlm_backend_synchronize(m->be)))
        vlm__errf(err, rc, "%s: uploading the weights to backend %s failed: %s", m->dir,
                  m->be->iface->name, vlm_backend_last_error(m->be));
    free(stage);
    free(found);
    free(l.v);
    return rc ? rc : finish_weights(m);
}

/* Derived views: the tied head, and the vision q/k/v row blocks of the fused qkv. */
static int finish_weights(vlm_model *m) {
    const vlm_config *c = &m->cfg;
    if (!m->w.lm_head.data) m->w.lm_head = m->w.embed; /* tied */
    /* vision qkv: q, k, v are the row blocks of the fused weight and bias */
    int64_t vh = c->vision.hidden;
    for (int64_t b = 0; b < c->vision.depth; b++) {
        vlm_vision_block_weights *bw = &m->w.blocks[b];
        vlm_tensor qkv = bw->q_w, bias = bw->q_b;
        bw->q_w = vlm_tensor_rows(qkv, 0, vh);
        bw->k_w = vlm_tensor_rows(qkv, vh, vh);
        bw->v_w = vlm_tensor_rows(qkv, 2 * vh, vh);
        bw->q_b = vlm_tensor_rows(bias, 0, vh);
        bw->k_b = vlm_tensor_rows(bias, vh, vh);
        bw->v_b = vlm_tensor_rows(bias, 2 * vh, vh);
    }
    return 0;
}

/* xorshift64*: a fixed, fast stream of uniform numbers for random weights */
static float rand_uniform(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (float)((x * 2685821657736338717ull) >> 40) / (float)(1ull << 24) * 2.0f - 1.0f;
}

int vlm_model_new_random(const vlm_config *cfg, const vlm_model_params *params, uint64_t seed,
                         vlm_model **out, char *err) {
    *out = NULL;
    vlm_model *m = calloc(1, sizeof *m);
    if (!m) return vlm__errf(err, VLM_ENOMEM, "random model: out of memory");
    snprintf(m->dir, sizeof m->dir, "(random weights, seed %llu)", (unsigned long long)seed);
    m->cfg = *cfg;
    int rc = vlm_config_validate(cfg, "random model", err);
    if (!rc) rc = vlm_backend_new(params ? params->backend : "cpu",
                                  params ? params->n_threads : 0, &m->be, err);
    spec_list l = {0};
    if (!rc && (rc = build_specs(m, false, !cfg->tie_word_embeddings, &l)))
        vlm__errf(err, rc, "random model: out of memory");
    vlm_dtype wt = m->be ? m->be->iface->weight_dtype : VLM_F32;
    size_t es = vlm__dtype_size(wt), total = 0, max_n = 1;
    for (int64_t i = 0; !rc && i < l.n; i++) {
        size_t n = (size_t)(l.v[i].rows * l.v[i].cols);
        total += (n * es + 63) & ~(size_t)63;
        if (n > max_n) max_n = n;
    }
    float *vals = NULL;
    void *stage = NULL;
    if (!rc) {
        m->weights_buf = vlm_backend_alloc(m->be, total);
        m->weights_bytes = total;
        vals = malloc(max_n * sizeof(float));
        stage = malloc(max_n * es);
        if (!m->weights_buf || !vals || !stage)
            rc = vlm__errf(err, VLM_ENOMEM, "random model: cannot allocate %.1f MB of weights",
                           (double)total / 1e6);
    }
    uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
    size_t off = 0;
    for (int64_t i = 0; !rc && i < l.n; i++) {
        weight_spec *s = &l.v[i];
        int64_t n = s->rows * s->cols;
        *s->dst = vlm_tensor_2d(wt, (char *)m->weights_buf + off, s->rows, s->cols);
        if (s->ndim == 1) *s->dst = vlm_tensor_make(wt, s->dst->data, 1, &s->rows);
        off += ((size_t)n * es + 63) & ~(size_t)63;
        /* norms near 1, biases small, matrices with unit-variance outputs */
        bool norm = strstr(s->name, "norm") || strstr(s->name, "ln_q");
        float scale = s->ndim == 1 ? (norm ? 0.1f : 0.02f) : sqrtf(3.0f / (float)s->cols);
        for (int64_t j = 0; j < n; j++)
            vals[j] = (norm ? 1.0f : 0.0f) + scale * rand_uniform(&state);
        if (wt == VLM_F32) {
            memcpy(stage, vals, (size_t)n * 4);
        } else {
            for (int64_t j = 0; j < n; j++) ((uint16_t *)stage)[j] = vlm__f32_to_bf16(vals[j]);
        }
        if ((rc = vlm_backend_set(m->be, *s->dst, stage)))
            vlm__errf(err, rc, "random model: upload failed: %s", vlm_backend_last_error(m->be));
    }
    if (!rc && (rc = vlm_backend_synchronize(m->be)))
        vlm__errf(err, rc, "random model: upload failed: %s", vlm_backend_last_error(m->be));
    free(vals);
    free(stage);
    free(l.v);
    if (!rc) rc = finish_weights(m);
    if (rc) {
        vlm_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int vlm_model_load(const char *dir, const vlm_model_params *params, vlm_model **out,
                   char *err) {
    *out = NULL;
    vlm_model *m = calloc(1, sizeof *m);
    if (!m) return vlm__errf(err, VLM_ENOMEM, "%s: out of memory", dir);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    int rc = vlm_config_load(dir, &m->cfg, err);
    vlm_st_set *st = NULL;
    if (!rc) rc = vlm_backend_new(params ? params->backend : "cpu",
                                  params ? params->n_threads : 0, &m->be, err);
    if (!rc) rc = vlm_st_open_dir(dir, &st, err);
    if (!rc) rc = load_weights(m, st, err);
    vlm_st_free(st); /* weights are copies: the mapping can go */
    if (rc) {
        vlm_model_free(m);
        return rc;
    }
    vlm__log(VLM_LOG_INFO, "model %s: %lld layers, hidden %lld, vision depth %lld, %.1f MB of "
             "weights on %s", dir, (long long)m->cfg.n_layers, (long long)m->cfg.hidden,
             (long long)m->cfg.vision.depth, (double)m->weights_bytes / 1e6,
             m->be->iface->name);
    *out = m;
    return 0;
}

void vlm_model_free(vlm_model *m) {
    if (!m) return;
    if (m->be) {
        vlm_backend_free_buffer(m->be, m->weights_buf);
        vlm_backend_free(m->be);
    }
    free(m->w.blocks);
    free(m->w.layers);
    free(m);
}
