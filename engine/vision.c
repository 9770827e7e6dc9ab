/* vision.c — the Qwen2.5-VL vision tower: patch embedding, 2-D RoPE, window attention
 * blocks, patch merger.
 *
 * As in transformers, the patch rows are permuted into window order once (in groups of
 * 2×2 merge units), every block runs on that order with attention restricted to
 * segments (the windows, or whole frames in the full-attention blocks), and the merged
 * tokens are put back in natural (t, row, col) order at the end.  Geometry (rotary
 * angles, the window permutation, segment bounds) is computed on the host into the
 * context's planned tables.  Thread: the caller's (one at a time per context).
 */
#include <math.h>
#include <string.h>

#include "model.h"

/* inv_freq[k] = 1 / theta^(2k/dim), in float32 as torch computes it */
static float inv_freq(float theta, int64_t k, int64_t dim) {
    float e = (float)(2 * k) / (float)dim;
    return 1.0f / powf(theta, e);
}

void vlm__vision_rope_angles(const vlm_vision_config *vc, const int64_t (*grids)[3],
                             int64_t n_grids, float *angles) {
    int64_t dim = vc->head_dim / 2, q = dim / 2; /* VisionRotaryEmbedding(head_dim / 2) */
    int64_t sms = vc->spatial_merge_size, row = 0;
    for (int64_t g = 0; g < n_grids; g++) {
        int64_t t = grids[g][0], h = grids[g][1], w = grids[g][2];
        for (int64_t ti = 0; ti < t; ti++)
            for (int64_t bh = 0; bh < h / sms; bh++)
                for (int64_t bw = 0; bw < w / sms; bw++)
                    for (int64_t mh = 0; mh < sms; mh++)
                        for (int64_t mw = 0; mw < sms; mw++, row++) {
                            float hp = (float)(bh * sms + mh), wp = (float)(bw * sms + mw);
                            float *a = angles + row * dim;
                            for (int64_t k = 0; k < q; k++) {
                                a[k] = hp * inv_freq(10000.0f, k, dim);
                                a[q + k] = wp * inv_freq(10000.0f, k, dim);
                            }
                        }
    }
}

int64_t vlm__vision_window_index(const vlm_vision_config *vc, const int64_t (*grids)[3],
                                 int64_t n_grids, int32_t *index, int32_t *cu_win) {
    int64_t sms = vc->spatial_merge_size, unit = sms * sms;
    int64_t ws = vc->window_size / sms / vc->patch_size; /* window side in merge units */
    int64_t n_idx = 0, n_cu = 0, base = 0;
    cu_win[n_cu++] = 0;
    for (int64_t g = 0; g < n_grids; g++) {
        int64_t t = grids[g][0], lh = grids[g][1] / sms, lw = grids[g][2] / sms;
        /* HF pads by ws - n % ws, i.e. a whole empty window when already divisible;
         * empty windows add repeated bounds that unique_consecutive removes below */
        int64_t nwh = (lh + ws - lh % ws) / ws, nww = (lw + ws - lw % ws) / ws;
        for (int64_t ti = 0; ti < t; ti++)
            for (int64_t wh = 0; wh < nwh; wh++)
                for (int64_t ww = 0; ww < nww; ww++) {
                    int64_t count = 0;
                    for (int64_t r = 0; r < ws; r++)
                        for (int64_t cc = 0; cc < ws; cc++) {
                            int64_t y = wh * ws + r, xx = ww * ws + cc;
                            if (y >= lh || xx >= lw) continue;
                            index[n_idx++] = (int32_t)(base + ti * lh * lw + y * lw + xx);
                            count++;
                        }
                    int32_t next = cu_win[n_cu - 1] + (int32_t)(count * unit);
                    if (next != cu_win[n_cu - 1]) cu_win[n_cu++] = next;
                }
        base += t * lh * lw;
    }
    return n_cu;
}

int64_t vlm__vision_full_seqlens(const int64_t (*grids)[3], int64_t n_grids, int32_t *cu_full) {
    int64_t n = 0;
    cu_full[n++] = 0;
    for (int64_t g = 0; g < n_grids; g++)
        for (int64_t ti = 0; ti < grids[g][0]; ti++, n++)
            cu_full[n] = cu_full[n - 1] + (int32_t)(grids[g][1] * grids[g][2]);
    return n;
}

static bool is_full_block(const vlm_vision_config *vc, int64_t b) {
    for (int64_t i = 0; i < vc->n_fullatt; i++)
        if (vc->fullatt[i] == b) return true;
    return false;
}

#define TRY(expr)                                                                          \
    do {                                                                                   \
        int rc_ = (expr);                                                                  \
        if (rc_) return rc_;                                                               \
    } while (0)

/* Rows of the window-ordered tensor t put back in natural order, for the trace. */
static int trace_natural(vlm_ctx *c, const char *name, int64_t index, vlm_tensor t,
                         vlm_tensor scratch, vlm_tensor inv, int64_t n_units) {
    if (!c->trace) return 0;
    int64_t cols = vlm_tensor_row_numel(t) * t.ne[0] / n_units;
    vlm_tensor dst = vlm_tensor_2d(VLM_F32, scratch.data, n_units, cols);
    TRY(vlm_get_rows(c->be, dst, vlm_tensor_reshape2(t, n_units, cols), inv));
    c->trace(name, index, vlm_tensor_2d(VLM_F32, scratch.data, t.ne[0], vlm_tensor_row_numel(t)),
             c->trace_user);
    return 0;
}

int vlm_vision_forward(vlm_ctx *c, const float *pixels, const int64_t (*grids)[3],
                       int64_t n_grids, int64_t *n_tokens) {
    const vlm_config *cfg = &c->model->cfg;
    const vlm_vision_config *vc = &cfg->vision;
    const vlm_weights *w = &c->model->w;
    vlm_backend *be = c->be;
    int64_t sms = vc->spatial_merge_size, np = 0;
    for (int64_t g = 0; g < n_grids; g++) {
        if (grids[g][0] < 1 || grids[g][1] < sms || grids[g][2] < sms ||
            grids[g][1] % sms || grids[g][2] % sms) {
            vlm__log(VLM_LOG_ERROR, "vision: grid %lld (%lld, %lld, %lld) is not a positive "
                     "multiple of the merge size", (long long)g, (long long)grids[g][0],
                     (long long)grids[g][1], (long long)grids[g][2]);
            return VLM_EINVAL;
        }
        np += grids[g][0] * grids[g][1] * grids[g][2];
    }
    if (np > c->p.n_patches) {
        vlm__log(VLM_LOG_ERROR, "vision: %lld patches exceed the context's %lld",
                 (long long)np, (long long)c->p.n_patches);
        return VLM_EFULL;
    }
    int64_t nu = np / 4, vh = vc->hidden, hd = vc->head_dim, half = hd / 2;
    int64_t nh = vc->n_heads, d = cfg->hidden;

    vlm_tensor pix = vlm_tensor_rows(c->vpix, 0, np);
    vlm_tensor x = vlm_tensor_rows(c->vx, 0, np), xn = vlm_tensor_rows(c->vxn, 0, np);
    vlm_tensor tmp = vlm_tensor_rows(c->vtmp, 0, np);
    vlm_tensor q = vlm_tensor_rows(c->vq, 0, np), k = vlm_tensor_rows(c->vk, 0, np);
    vlm_tensor v = vlm_tensor_rows(c->vv, 0, np), att = vlm_tensor_rows(c->vatt, 0, np);
    vlm_tensor cs = vlm_tensor_rows(c->vcos, 0, np), sn = vlm_tensor_rows(c->vsin, 0, np);
    vlm_tensor idx = vlm_tensor_rows(c->vidx, 0, nu), inv = vlm_tensor_rows(c->vinv, 0, nu);
    int64_t vwide = vlm_tensor_row_numel(c->vgate);
    vlm_tensor gate = vlm_tensor_2d(VLM_F32, c->vgate.data, np, vc->intermediate);
    vlm_tensor up = vlm_tensor_2d(VLM_F32, c->vup.data, np, vc->intermediate);
    (void)vwide;

    /* patch embedding: the Conv3d with kernel == stride is one matmul */
    TRY(vlm_backend_set(be, pix, pixels));
    TRY(vlm_matmul(be, x, pix, w->patch_embed, NULL));
    if (c->trace) c->trace("patch_embed", -1, x, c->trace_user);

    /* geometry on the host: angles (natural order), then window order */
    vlm__vision_rope_angles(vc, grids, n_grids, c->h_angles);
    int64_t n_win = vlm__vision_window_index(vc, grids, n_grids, c->h_idx, c->h_seg_win);
    int64_t n_full = vlm__vision_full_seqlens(grids, n_grids, c->h_seg_full);
    for (int64_t i = 0; i < nu; i++) c->h_inv[c->h_idx[i]] = (int32_t)i;
    for (int64_t i = 0; i < nu; i++)
        for (int64_t p = 0; p < 4; p++) {
            const float *a = c->h_angles + ((int64_t)c->h_idx[i] * 4 + p) * half;
            for (int64_t j = 0; j < half; j++) {
                c->h_cos[(i * 4 + p) * half + j] = cosf(a[j]);
                c->h_sin[(i * 4 + p) * half + j] = sinf(a[j]);
            }
        }
    vlm_tensor seg_win = vlm_tensor_rows(c->vseg_win, 0, n_win);
    vlm_tensor seg_full = vlm_tensor_rows(c->vseg_full, 0, n_full);
    TRY(vlm_backend_set(be, cs, c->h_cos));
    TRY(vlm_backend_set(be, sn, c->h_sin));
    TRY(vlm_backend_set(be, idx, c->h_idx));
    TRY(vlm_backend_set(be, inv, c->h_inv));
    TRY(vlm_backend_set(be, seg_win, c->h_seg_win));
    TRY(vlm_backend_set(be, seg_full, c->h_seg_full));

    /* into window order: merge units (4 patch rows each) permuted together */
    TRY(vlm_get_rows(be, vlm_tensor_reshape2(tmp, nu, 4 * vh), vlm_tensor_reshape2(x, nu, 4 * vh),
                     idx));
    vlm_tensor swap = x;
    x = tmp;
    tmp = swap;

    for (int64_t b = 0; b < vc->depth; b++) {
        const vlm_vision_block_weights *bw = &w->blocks[b];
        /* x += proj(attn(rope(q), rope(k), v)) with q, k, v from norm1(x) */
        TRY(vlm_rms_norm(be, xn, x, bw->norm1, vc->eps));
        TRY(vlm_matmul(be, q, xn, bw->q_w, &bw->q_b));
        TRY(vlm_matmul(be, k, xn, bw->k_w, &bw->k_b));
        TRY(vlm_matmul(be, v, xn, bw->v_w, &bw->v_b));
        TRY(vlm_rope(be, q, q, cs, sn));
        TRY(vlm_rope(be, k, k, cs, sn));
        TRY(vlm_attention(be, att, q, k, v, is_full_block(vc, b) ? &seg_full : &seg_win, nh, nh,
                          hd));
        TRY(vlm_matmul(be, tmp, att, bw->proj_w, &bw->proj_b));
        TRY(vlm_add(be, x, x, tmp));
        /* x += down(silu(gate(y)) * up(y)) with y = norm2(x); all linears have bias */
        TRY(vlm_rms_norm(be, xn, x, bw->norm2, vc->eps));
        TRY(vlm_matmul(be, gate, xn, bw->gate_w, &bw->gate_b));
        TRY(vlm_matmul(be, up, xn, bw->up_w, &bw->up_b));
        TRY(vlm_swiglu(be, gate, gate, up));
        TRY(vlm_matmul(be, tmp, gate, bw->down_w, &bw->down_b));
        TRY(vlm_add(be, x, x, tmp));
        TRY(trace_natural(c, "vision_block", b, x, tmp, inv, nu));
    }

    /* merger: RMSNorm per patch, 4 consecutive patches as one row, MLP with exact GELU */
    vlm_tensor m_in = vlm_tensor_reshape2(xn, nu, 4 * vh);
    vlm_tensor m_mid = vlm_tensor_2d(VLM_F32, c->vgate.data, nu, 4 * vh);
    vlm_tensor m_out = vlm_tensor_2d(VLM_F32, c->vup.data, nu, d);
    TRY(vlm_rms_norm(be, xn, x, w->merger_ln, vc->eps));
    TRY(vlm_matmul(be, m_mid, m_in, w->merger_w0, &w->merger_b0));
    TRY(vlm_gelu(be, m_mid, m_mid));
    TRY(vlm_matmul(be, m_out, m_mid, w->merger_w2, &w->merger_b2));
    vlm_tensor out = vlm_tensor_rows(c->vout, 0, nu);
    TRY(vlm_get_rows(be, out, m_out, inv)); /* back to natural order */
    if (c->trace) c->trace("vision_embeds", -1, out, c->trace_user);
    *n_tokens = nu;
    return 0;
}
