/* ctx.c — a forward context: the KV cache and every run-state buffer, planned once.
 *
 * Sizes come from the model config and the caller's limits (KV capacity, most tokens
 * per forward, most vision patches).  One backend allocation holds the cache and the
 * device run state, one host allocation the RoPE tables and index lists; forward passes
 * only take views of these.  Owner: the caller of vlm_ctx_new (one per stream).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

typedef struct plan {
    vlm_tensor *t[64];
    int64_t n;
    size_t total;
} plan;

static void plan_add(plan *p, vlm_tensor *t, vlm_dtype dt, int ndim, int64_t a, int64_t b,
                     int64_t c) {
    int64_t ne[3] = {a, b, c};
    *t = vlm_tensor_make(dt, NULL, ndim, ne);
    t->data = (void *)(uintptr_t)p->total; /* offset until the buffer exists */
    p->total += (vlm_tensor_nbytes(*t) + 255) & ~(size_t)255;
    p->t[p->n++] = t;
}

static void plan_bind(plan *p, void *base) {
    for (int64_t i = 0; i < p->n; i++) p->t[i]->data = (char *)base + (uintptr_t)p->t[i]->data;
}

static int64_t max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}

int vlm_ctx_new(vlm_model *m, const vlm_ctx_params *prm, vlm_ctx **out, char *err) {
    *out = NULL;
    const vlm_config *c = &m->cfg;
    const vlm_vision_config *v = &c->vision;
    if (prm->n_ctx < 1 || prm->n_batch < 1 || prm->n_logits < 1 || prm->n_batch > prm->n_ctx ||
        prm->n_logits > prm->n_batch || prm->n_patches < 0 || prm->n_patches % 4 != 0)
        return vlm__errf(err, VLM_EINVAL, "context: bad limits (n_ctx %lld, n_batch %lld, "
                         "n_logits %lld, n_patches %lld)", (long long)prm->n_ctx,
                         (long long)prm->n_batch, (long long)prm->n_logits,
                         (long long)prm->n_patches);
    vlm_ctx *x = calloc(1, sizeof *x);
    if (!x) return vlm__errf(err, VLM_ENOMEM, "context: out of memory");
    x->model = m;
    x->be = m->be;
    x->p = *prm;
    int64_t L = c->n_layers, kvd = c->n_kv_heads, hd = c->head_dim, d = c->hidden;
    int64_t nb = prm->n_batch, np = max64(prm->n_patches, 4), vh = v->hidden;
    x->k_raw = calloc((size_t)L * 3, sizeof(vlm_tensor));
    if (!x->k_raw) {
        free(x);
        return vlm__errf(err, VLM_ENOMEM, "context: out of memory");
    }
    x->k_rot = x->k_raw + L;
    x->v = x->k_raw + 2 * L;

    /* the per-layer cache: 3*L tensors of [n_ctx, KVH, hd], bound after allocation */
    int64_t kv_ne[3] = {prm->n_ctx, kvd, hd};
    for (int64_t l = 0; l < L * 3; l++) x->k_raw[l] = vlm_tensor_make(VLM_F32, NULL, 3, kv_ne);
    plan run = {0};
    plan_add(&run, &x->x, VLM_F32, 2, nb, d, 0);
    plan_add(&run, &x->xn, VLM_F32, 2, nb, d, 0);
    plan_add(&run, &x->q, VLM_F32, 3, nb, c->n_heads, hd);
    plan_add(&run, &x->att, VLM_F32, 3, nb, c->n_heads, hd);
    plan_add(&run, &x->tmp, VLM_F32, 2, nb, d, 0);
    plan_add(&run, &x->gate, VLM_F32, 2, nb, c->intermediate, 0);
    plan_add(&run, &x->up, VLM_F32, 2, nb, c->intermediate, 0);
    plan_add(&run, &x->logits, VLM_F32, 2, prm->n_logits, c->vocab, 0);
    plan_add(&run, &x->cos, VLM_F32, 2, nb, hd / 2, 0);
    plan_add(&run, &x->sin, VLM_F32, 2, nb, hd / 2, 0);
    plan_add(&run, &x->ids, VLM_I32, 1, nb, 0, 0);
    plan_add(&run, &x->slots, VLM_I32, 1, nb, 0, 0);
    plan_add(&run, &x->kv_rows, VLM_I32, 1, nb, 0, 0);
    plan_add(&run, &x->last_rows, VLM_I32, 1, prm->n_logits, 0, 0);
    plan_add(&run, &x->kv_tmp, VLM_F32, 3, prm->n_ctx, kvd, hd);
    plan_add(&run, &x->kv_idx, VLM_I32, 1, prm->n_ctx, 0, 0);
    plan_add(&run, &x->seen, VLM_U8, 1, c->vocab, 0, 0);
    plan_add(&run, &x->token, VLM_I32, 1, 1, 0, 0);
    int64_t patch_in = v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
    /* vgate/vup also hold the merger's [np/4, 4vh] and [np/4, d] */
    int64_t vwide = max64(max64(v->intermediate, vh), (d + 3) / 4);
    plan_add(&run, &x->vpix, VLM_F32, 2, np, patch_in, 0);
    plan_add(&run, &x->vx, VLM_F32, 2, np, vh, 0);
    plan_add(&run, &x->vxn, VLM_F32, 2, np, vh, 0);
    plan_add(&run, &x->vtmp, VLM_F32, 2, np, vh, 0);
    plan_add(&run, &x->vq, VLM_F32, 3, np, v->n_heads, v->head_dim);
    plan_add(&run, &x->vk, VLM_F32, 3, np, v->n_heads, v->head_dim);
    plan_add(&run, &x->vv, VLM_F32, 3, np, v->n_heads, v->head_dim);
    plan_add(&run, &x->vatt, VLM_F32, 3, np, v->n_heads, v->head_dim);
    plan_add(&run, &x->vgate, VLM_F32, 2, np, vwide, 0);
    plan_add(&run, &x->vup, VLM_F32, 2, np, vwide, 0);
    plan_add(&run, &x->vcos, VLM_F32, 2, np, v->head_dim / 2, 0);
    plan_add(&run, &x->vsin, VLM_F32, 2, np, v->head_dim / 2, 0);
    plan_add(&run, &x->vidx, VLM_I32, 1, np / 4, 0, 0);
    plan_add(&run, &x->vinv, VLM_I32, 1, np / 4, 0, 0);
    plan_add(&run, &x->vseg_win, VLM_I32, 1, np + 1, 0, 0);
    plan_add(&run, &x->vseg_full, VLM_I32, 1, np + 1, 0, 0);
    plan_add(&run, &x->vout, VLM_F32, 2, np / 4, d, 0);

    size_t cache_bytes = 0;
    for (int64_t l = 0; l < L * 3; l++)
        cache_bytes += (vlm_tensor_nbytes(x->k_raw[l]) + 255) & ~(size_t)255;
    x->buf = vlm_backend_alloc(m->be, cache_bytes + run.total);
    int64_t rows = max64(nb, np), half = max64(hd, v->head_dim) / 2;
    size_t host_bytes = sizeof(float) * (size_t)(2 * rows * half + np * (v->head_dim / 2)) +
                        sizeof(int32_t) * (size_t)(2 * (np / 4) + 2 * (np + 1) + 3 * nb + prm->n_logits);
    x->host = malloc(host_bytes);
    if (!x->buf || !x->host) {
        vlm_ctx_free(x);
        return vlm__errf(err, VLM_ENOMEM, "context: cannot allocate %.1f MB (KV cache of %lld "
                         "tokens and run state) on backend %s",
                         (double)(cache_bytes + run.total) / 1e6, (long long)prm->n_ctx,
                         m->be->iface->name);
    }
    size_t off = 0;
    for (int64_t l = 0; l < L * 3; l++) {
        x->k_raw[l].data = (char *)x->buf + off;
        off += (vlm_tensor_nbytes(x->k_raw[l]) + 255) & ~(size_t)255;
    }
    plan_bind(&run, (char *)x->buf + off);

    float *hf = x->host;
    x->h_cos = hf;
    x->h_sin = hf + rows * half;
    x->h_angles = hf + 2 * rows * half;
    int32_t *hi = (int32_t *)(x->h_angles + np * (v->head_dim / 2));
    x->h_idx = hi;
    x->h_inv = hi + np / 4;
    x->h_seg_win = hi + 2 * (np / 4);
    x->h_seg_full = x->h_seg_win + np + 1;
    x->h_ids = x->h_seg_full + np + 1;
    x->h_slots = x->h_ids + nb;
    x->h_kv_rows = x->h_slots + nb;
    x->h_last_rows = x->h_kv_rows + nb;
    *out = x;
    return 0;
}

void vlm_ctx_free(vlm_ctx *c) {
    if (!c) return;
    vlm_backend_free_buffer(c->be, c->buf);
    free(c->host);
    free(c->k_raw);
    free(c);
}

int vlm_kv_compact(vlm_ctx *c, const int32_t *idx, int64_t n) {
    if (n < 0 || n > c->n_cached) return VLM_EINVAL;
    if (n > 0) {
        vlm_tensor ti = vlm_tensor_rows(c->kv_idx, 0, n);
        int rc = vlm_backend_set(c->be, ti, idx);
        if (rc) return rc;
        /* gather into the spare buffer, then swap it in: one copy per tensor */
        for (int64_t l = 0; l < c->model->cfg.n_layers; l++) {
            vlm_tensor *bufs[2] = {&c->k_raw[l], &c->v[l]};
            for (int b = 0; b < 2; b++) {
                rc = vlm_get_rows(c->be, vlm_tensor_rows(c->kv_tmp, 0, n),
                                  vlm_tensor_rows(*bufs[b], 0, c->n_cached), ti);
                if (rc) return rc;
                vlm_tensor t = *bufs[b];
                *bufs[b] = c->kv_tmp;
                c->kv_tmp = t;
            }
        }
    }
    c->n_cached = n;
    return 0;
}
