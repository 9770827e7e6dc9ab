/* llm.c — the Qwen2 decoder with 3-D M-RoPE: one forward over new tokens appended to
 * a context's KV cache.
 *
 * Per layer: x += o(attn(rope(q), rope(k), v)) from norm_in(x), then
 * x += down(silu(gate(y)) * up(y)) with y = norm_post(x).  q/k/v have bias, o/gate/up/
 * down do not.  The cache keeps keys before RoPE (k_raw) and after (k_rot): positions
 * may be reassigned later (streaming eviction keeps them contiguous) and the raw keys
 * let the session re-rotate instead of recomputing.  vlm_llm_forward_batch runs the same
 * layers over the new tokens of several contexts at once; only attention differs per
 * context.
 * A decode step's layers and head (single or batched) are issued between
 * vlm_backend_graph_begin and _end: a backend with graphs records them and launches the
 * step at once (the inputs are copied before, the logits read after).
 * Thread: the caller's.
 */
#include <math.h>
#include <string.h>

#include "model.h"

#define TRY(expr)                                                                          \
    do {                                                                                   \
        int rc_ = (expr);                                                                  \
        if (rc_) return rc_;                                                               \
    } while (0)

/* cos/sin of the M-RoPE angles for n tokens: frequency j uses the t, h or w component
 * according to mrope_section; angle = pos * inv_freq[j] in float32 (as transformers). */
static void mrope_tables(const vlm_config *cfg, const float *pt, const float *ph,
                         const float *pw, int64_t n, float *cs, float *sn) {
    const float *comps[3] = {pt, ph, pw};
    int64_t half = cfg->head_dim / 2;
    int64_t s0 = cfg->mrope_section[0], s1 = s0 + cfg->mrope_section[1];
    for (int64_t j = 0; j < half; j++) {
        float e = (float)(2 * j) / (float)cfg->head_dim;
        float f = 1.0f / powf(cfg->rope_theta, e);
        int comp = j < s0 ? 0 : j < s1 ? 1 : 2;
        for (int64_t i = 0; i < n; i++) {
            float a = comps[comp][i] * f;
            cs[i * half + j] = cosf(a);
            sn[i * half + j] = sinf(a);
        }
    }
}

/* The first n rows of a context's run state, as the layers use them. */
typedef struct run_rows {
    vlm_tensor x, xn, q, att, tmp, gate, up, cs, sn;
} run_rows;

static run_rows rows_of(const vlm_ctx *c, int64_t n) {
    return (run_rows){.x = vlm_tensor_rows(c->x, 0, n), .xn = vlm_tensor_rows(c->xn, 0, n),
                      .q = vlm_tensor_rows(c->q, 0, n), .att = vlm_tensor_rows(c->att, 0, n),
                      .tmp = vlm_tensor_rows(c->tmp, 0, n),
                      .gate = vlm_tensor_rows(c->gate, 0, n), .up = vlm_tensor_rows(c->up, 0, n),
                      .cs = vlm_tensor_rows(c->cos, 0, n), .sn = vlm_tensor_rows(c->sin, 0, n)};
}

/* Attention inputs of one layer for the rows of r->x: q (rotated, into r->q), k before
 * and after RoPE, v, all from norm_in(x) with bias. */
static int project_qkv(vlm_backend *be, const vlm_config *cfg, const vlm_layer_weights *lw,
                       const run_rows *r, vlm_tensor k, vlm_tensor kr, vlm_tensor v) {
    TRY(vlm_rms_norm(be, r->xn, r->x, lw->in_norm, cfg->rms_eps));
    TRY(vlm_matmul(be, r->q, r->xn, lw->q_w, &lw->q_b));
    TRY(vlm_matmul(be, k, r->xn, lw->k_w, &lw->k_b));
    TRY(vlm_matmul(be, v, r->xn, lw->v_w, &lw->v_b));
    TRY(vlm_rope(be, r->q, r->q, r->cs, r->sn));
    return vlm_rope(be, kr, k, r->cs, r->sn);
}

/* The rest of the layer: x += o(att), then x += down(silu(gate(y)) * up(y)) with
 * y = norm_post(x). */
static int output_and_mlp(vlm_backend *be, const vlm_config *cfg, const vlm_layer_weights *lw,
                          const run_rows *r) {
    TRY(vlm_matmul(be, r->tmp, r->att, lw->o_w, NULL));
    TRY(vlm_add(be, r->x, r->x, r->tmp));
    TRY(vlm_rms_norm(be, r->xn, r->x, lw->post_norm, cfg->rms_eps));
    TRY(vlm_matmul(be, r->gate, r->xn, lw->gate_w, NULL));
    TRY(vlm_matmul(be, r->up, r->xn, lw->up_w, NULL));
    TRY(vlm_swiglu(be, r->gate, r->gate, r->up));
    TRY(vlm_matmul(be, r->tmp, r->gate, lw->down_w, NULL));
    return vlm_add(be, r->x, r->x, r->tmp);
}

/* Every layer over the n rows of c->x, whose keys and values go to cache rows
 * [n_cached, n_cached + n), then the final norm and lm_head on the last n_logits rows
 * into c->logits.  n_cached is left to the caller. */
static int decoder(vlm_ctx *c, int64_t n, int64_t n_logits) {
    const vlm_config *cfg = &c->model->cfg;
    const vlm_weights *w = &c->model->w;
    vlm_backend *be = c->be;
    int64_t H = cfg->n_heads, KVH = cfg->n_kv_heads, hd = cfg->head_dim;
    int64_t past = c->n_cached, total = past + n;
    run_rows r = rows_of(c, n);
    for (int64_t l = 0; l < cfg->n_layers; l++) {
        const vlm_layer_weights *lw = &w->layers[l];
        vlm_tensor k_new = vlm_tensor_rows(c->k_raw[l], past, n);
        vlm_tensor kr_new = vlm_tensor_rows(c->k_rot[l], past, n);
        vlm_tensor v_new = vlm_tensor_rows(c->v[l], past, n);
        /* the new raw and rotated keys and the values go straight into the cache */
        TRY(project_qkv(be, cfg, lw, &r, k_new, kr_new, v_new));
        TRY(vlm_attention(be, r.att, r.q, vlm_tensor_rows(c->k_rot[l], 0, total),
                          vlm_tensor_rows(c->v[l], 0, total), NULL, H, KVH, hd));
        TRY(output_and_mlp(be, cfg, lw, &r));
        if (c->trace) c->trace("llm_layer", l, r.x, c->trace_user);
    }
    if (n_logits == 0) return 0;

    /* final norm and lm_head on the last n_logits positions only */
    vlm_tensor xl = vlm_tensor_rows(r.x, n - n_logits, n_logits);
    vlm_tensor xnl = vlm_tensor_rows(r.xn, 0, n_logits);
    TRY(vlm_rms_norm(be, xnl, xl, w->norm, cfg->rms_eps));
    if (c->trace) c->trace("final_norm", -1, xnl, c->trace_user);
    return vlm_matmul(be, vlm_tensor_rows(c->logits, 0, n_logits), xnl, w->lm_head, NULL);
}

/* Close a recorded step: run it, or discard it when the recording failed (rc). */
static int graph_end(vlm_backend *be, int rc) {
    int rc_end = vlm_backend_graph_end(be, rc != 0);
    return rc ? rc : rc_end;
}

/* A decode step, recorded as one graph on backends that have them; when the backend
 * could make no graph of it (VLM_EAGAIN: nothing ran), issued again op by op. */
#define RUN_AS_GRAPH(be, key, step)                                                        \
    do {                                                                                   \
        int rc_ = vlm_backend_graph_begin(be, key);                                        \
        if (!rc_) rc_ = graph_end(be, step);                                               \
        if (rc_ == VLM_EAGAIN) rc_ = step;                                                 \
        if (rc_) return rc_;                                                               \
    } while (0)

/* Why n new tokens (ids, vision slots in [0, n)) cannot go after c's cached ones, or 0. */
static int check_tokens(const vlm_ctx *c, const int32_t *ids, int64_t n,
                        const int32_t *vis_slots, int64_t n_vis) {
    int64_t vocab = c->model->cfg.vocab;
    if (c->n_cached + n > c->p.n_ctx) {
        vlm__log(VLM_LOG_ERROR, "llm: KV cache full (%lld cached + %lld new > %lld)",
                 (long long)c->n_cached, (long long)n, (long long)c->p.n_ctx);
        return VLM_EFULL;
    }
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab) {
            vlm__log(VLM_LOG_ERROR, "llm: token id %d at %lld is outside the vocabulary (%lld)",
                     ids[i], (long long)i, (long long)vocab);
            return VLM_ERANGE;
        }
    for (int64_t i = 0; i < n_vis; i++)
        if (vis_slots[i] < 0 || vis_slots[i] >= n) return VLM_ERANGE;
    return 0;
}

int vlm_llm_forward(vlm_ctx *c, const int32_t *ids, int64_t n, const float *pos,
                    const int32_t *vis_slots, int64_t n_vis, vlm_tensor vis, int64_t n_logits,
                    float *logits_out) {
    const vlm_config *cfg = &c->model->cfg;
    const vlm_weights *w = &c->model->w;
    vlm_backend *be = c->be;
    if (n < 1 || n > c->p.n_batch || n_logits < 0 || n_logits > n || n_logits > c->p.n_logits ||
        n_vis < 0 || n_vis > n) {
        vlm__log(VLM_LOG_ERROR, "llm: bad forward (%lld tokens, %lld logits, %lld vision rows; "
                 "batch limit %lld)", (long long)n, (long long)n_logits, (long long)n_vis,
                 (long long)c->p.n_batch);
        return VLM_EINVAL;
    }
    TRY(check_tokens(c, ids, n, vis_slots, n_vis));

    vlm_tensor x = vlm_tensor_rows(c->x, 0, n);
    vlm_tensor cs = vlm_tensor_rows(c->cos, 0, n), sn = vlm_tensor_rows(c->sin, 0, n);
    vlm_tensor tid = vlm_tensor_rows(c->ids, 0, n);

    /* embeddings, with the vision rows scattered into their pad slots */
    memcpy(c->h_ids, ids, sizeof(int32_t) * (size_t)n);
    TRY(vlm_backend_set(be, tid, c->h_ids));
    TRY(vlm_get_rows(be, x, w->embed, tid));
    if (n_vis > 0) {
        vlm_tensor slots = vlm_tensor_rows(c->slots, 0, n_vis);
        memcpy(c->h_slots, vis_slots, sizeof(int32_t) * (size_t)n_vis);
        TRY(vlm_backend_set(be, slots, c->h_slots));
        TRY(vlm_set_rows(be, x, vlm_tensor_rows(vis, 0, n_vis), slots));
    }
    if (c->trace) c->trace("inputs_embeds", -1, x, c->trace_user);

    mrope_tables(cfg, pos, pos + n, pos + 2 * n, n, c->h_cos, c->h_sin);
    TRY(vlm_backend_set(be, cs, c->h_cos));
    TRY(vlm_backend_set(be, sn, c->h_sin));

    /* a decode step runs as one backend graph where the backend has them (not while
     * tracing: the trace reads results in the middle) */
    if (n == 1 && n_vis == 0 && !c->trace) RUN_AS_GRAPH(be, 1, decoder(c, n, n_logits));
    else TRY(decoder(c, n, n_logits));
    c->n_cached += n;
    if (n_logits > 0 && logits_out)
        TRY(vlm_backend_get(be, logits_out, vlm_tensor_rows(c->logits, 0, n_logits)));
    return 0;
}

int vlm_llm_rerotate(vlm_ctx *c, int64_t first, int64_t n, const float *pos_t,
                     const float *pos_h, const float *pos_w) {
    const vlm_config *cfg = &c->model->cfg;
    if (first < 0 || n < 0 || first + n > c->n_cached) return VLM_EINVAL;
    for (int64_t done = 0; done < n; done += c->p.n_batch) {
        int64_t k = n - done < c->p.n_batch ? n - done : c->p.n_batch;
        vlm_tensor cs = vlm_tensor_rows(c->cos, 0, k), sn = vlm_tensor_rows(c->sin, 0, k);
        mrope_tables(cfg, pos_t + done, pos_h + done, pos_w + done, k, c->h_cos, c->h_sin);
        TRY(vlm_backend_set(c->be, cs, c->h_cos));
        TRY(vlm_backend_set(c->be, sn, c->h_sin));
        for (int64_t l = 0; l < cfg->n_layers; l++)
            TRY(vlm_rope(c->be, vlm_tensor_rows(c->k_rot[l], first + done, k),
                         vlm_tensor_rows(c->k_raw[l], first + done, k), cs, sn));
    }
    return 0;
}

/* The layers, final norm and lm_head of a batched forward (see vlm_llm_forward_batch):
 * b's run state holds the n rows of every sequence in turn, their ids, positions and
 * index lists are in. */
static int batch_layers(vlm_ctx *b, const vlm_llm_seq *seqs, int64_t n_seqs, int64_t n,
                        int64_t row0) {
    const vlm_config *cfg = &b->model->cfg;
    const vlm_weights *w = &b->model->w;
    vlm_backend *be = b->be;
    int64_t H = cfg->n_heads, KVH = cfg->n_kv_heads, hd = cfg->head_dim;
    run_rows r = rows_of(b, n);
    for (int64_t l = 0; l < cfg->n_layers; l++) {
        const vlm_layer_weights *lw = &w->layers[l];
        /* the batch context's own cache rows hold the new keys and values until they are
         * copied into each context's cache */
        vlm_tensor k_new = vlm_tensor_rows(b->k_raw[l], 0, n);
        vlm_tensor kr_new = vlm_tensor_rows(b->k_rot[l], 0, n);
        vlm_tensor v_new = vlm_tensor_rows(b->v[l], 0, n);
        TRY(project_qkv(be, cfg, lw, &r, k_new, kr_new, v_new));
        /* attention: each sequence's rows over its own context's cache */
        for (int64_t i = 0, off = 0; i < n_seqs; off += seqs[i].n, i++) {
            vlm_ctx *c = seqs[i].c;
            int64_t k = seqs[i].n, total = c->n_cached + k;
            vlm_tensor at = vlm_tensor_rows(b->kv_rows, off, k);
            TRY(vlm_set_rows(be, c->k_raw[l], vlm_tensor_rows(k_new, off, k), at));
            TRY(vlm_set_rows(be, c->k_rot[l], vlm_tensor_rows(kr_new, off, k), at));
            TRY(vlm_set_rows(be, c->v[l], vlm_tensor_rows(v_new, off, k), at));
            TRY(vlm_attention(be, vlm_tensor_rows(r.att, off, k), vlm_tensor_rows(r.q, off, k),
                              vlm_tensor_rows(c->k_rot[l], 0, total),
                              vlm_tensor_rows(c->v[l], 0, total), NULL, H, KVH, hd));
        }
        TRY(output_and_mlp(be, cfg, lw, &r));
    }
    /* final norm and lm_head on each sequence's last row, gathered */
    vlm_tensor last = vlm_tensor_rows(b->tmp, 0, n_seqs), lastn = vlm_tensor_rows(b->xn, 0, n_seqs);
    TRY(vlm_get_rows(be, last, r.x, vlm_tensor_rows(b->last_rows, 0, n_seqs)));
    TRY(vlm_rms_norm(be, lastn, last, w->norm, cfg->rms_eps));
    return vlm_matmul(be, vlm_tensor_rows(b->logits, row0, n_seqs), lastn, w->lm_head, NULL);
}

/* Why sequence i of a batched forward cannot run, or 0. */
static int check_seq(const vlm_ctx *b, const vlm_llm_seq *seqs, int64_t i) {
    const vlm_llm_seq *s = &seqs[i];
    if (s->c->model != b->model) {
        vlm__log(VLM_LOG_ERROR, "llm: batched forward: context %lld has another model",
                 (long long)i);
        return VLM_EINVAL;
    }
    for (int64_t j = 0; j < i; j++)
        if (seqs[j].c == s->c) {
            vlm__log(VLM_LOG_ERROR, "llm: batched forward: context %lld appears twice (as %lld)",
                     (long long)i, (long long)j);
            return VLM_EINVAL;
        }
    if (s->n < 1 || s->n_vis < 0 || s->n_vis > s->n) {
        vlm__log(VLM_LOG_ERROR, "llm: batched forward: context %lld has %lld tokens and %lld "
                 "vision rows", (long long)i, (long long)s->n, (long long)s->n_vis);
        return VLM_EINVAL;
    }
    return check_tokens(s->c, s->ids, s->n, s->vis_slots, s->n_vis);
}

int vlm_llm_forward_batch(vlm_ctx *b, const vlm_llm_seq *seqs, int64_t n_seqs, int64_t row0,
                          float *const *logits_out) {
    const vlm_config *cfg = &b->model->cfg;
    const vlm_weights *w = &b->model->w;
    vlm_backend *be = b->be;
    int64_t n = 0, n_vis = 0;
    bool decode = !b->trace; /* every sequence one text token: a step that can be a graph */
    bool rows_ok = n_seqs >= 1 && row0 >= 0 && row0 + n_seqs <= b->p.n_logits;
    if (rows_ok)
        for (int64_t i = 0; i < n_seqs; i++) {
            TRY(check_seq(b, seqs, i));
            n += seqs[i].n;
            n_vis += seqs[i].n_vis;
            decode = decode && seqs[i].n == 1 && seqs[i].n_vis == 0;
        }
    if (!rows_ok || n > b->p.n_batch) {
        vlm__log(VLM_LOG_ERROR, "llm: bad batched forward (%lld contexts from logits row %lld, "
                 "%lld tokens; limits %lld logits rows, %lld tokens)", (long long)n_seqs,
                 (long long)row0, (long long)n, (long long)b->p.n_logits,
                 (long long)b->p.n_batch);
        return VLM_EINVAL;
    }

    /* the rows of every sequence in turn: ids, RoPE tables, vision slots, the cache row
     * each new key and value goes to in its own context, and each sequence's last row */
    int64_t half = cfg->head_dim / 2;
    for (int64_t i = 0, off = 0, vo = 0; i < n_seqs; off += seqs[i].n, vo += seqs[i].n_vis, i++) {
        const vlm_llm_seq *s = &seqs[i];
        memcpy(b->h_ids + off, s->ids, sizeof(int32_t) * (size_t)s->n);
        mrope_tables(cfg, s->pos, s->pos + s->n, s->pos + 2 * s->n, s->n, b->h_cos + off * half,
                     b->h_sin + off * half);
        for (int64_t j = 0; j < s->n_vis; j++) b->h_slots[vo + j] = (int32_t)(off + s->vis_slots[j]);
        for (int64_t j = 0; j < s->n; j++) b->h_kv_rows[off + j] = (int32_t)(s->c->n_cached + j);
        b->h_last_rows[i] = (int32_t)(off + s->n - 1);
    }
    vlm_tensor x = vlm_tensor_rows(b->x, 0, n);
    vlm_tensor tid = vlm_tensor_rows(b->ids, 0, n);
    TRY(vlm_backend_set(be, tid, b->h_ids));
    TRY(vlm_backend_set(be, vlm_tensor_rows(b->cos, 0, n), b->h_cos));
    TRY(vlm_backend_set(be, vlm_tensor_rows(b->sin, 0, n), b->h_sin));
    TRY(vlm_backend_set(be, vlm_tensor_rows(b->kv_rows, 0, n), b->h_kv_rows));
    TRY(vlm_backend_set(be, vlm_tensor_rows(b->last_rows, 0, n_seqs), b->h_last_rows));
    if (n_vis > 0) TRY(vlm_backend_set(be, vlm_tensor_rows(b->slots, 0, n_vis), b->h_slots));

    /* embeddings, with each sequence's vision rows scattered into its pad slots */
    TRY(vlm_get_rows(be, x, w->embed, tid));
    for (int64_t i = 0, vo = 0; i < n_seqs; vo += seqs[i].n_vis, i++)
        if (seqs[i].n_vis > 0)
            TRY(vlm_set_rows(be, x, vlm_tensor_rows(seqs[i].vis, 0, seqs[i].n_vis),
                             vlm_tensor_rows(b->slots, vo, seqs[i].n_vis)));

    /* a decode step's shape is its number of contexts */
    if (decode && row0 == 0) RUN_AS_GRAPH(be, 2 + n_seqs, batch_layers(b, seqs, n_seqs, n, 0));
    else TRY(batch_layers(b, seqs, n_seqs, n, row0));
    for (int64_t i = 0; logits_out && i < n_seqs; i++)
        if (logits_out[i])
            TRY(vlm_backend_get(be, logits_out[i], vlm_tensor_rows(b->logits, row0 + i, 1)));
    for (int64_t i = 0; i < n_seqs; i++) seqs[i].c->n_cached += seqs[i].n;
    return 0;
}
