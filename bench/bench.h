/* bench.h — what the benchmarks share: a monotonic clock, the median of repeated runs,
 * and model configs at published dimensions for random-weight models (no download).
 * Header-only: each benchmark source is its own program.
 */
#ifndef COMMENTARY_BENCH_H
#define COMMENTARY_BENCH_H

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

static inline double bench_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (sorts v). */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return v[n / 2];
}

/* One decode step of n contexts in one forward: token toks[k] at text position ps[k]
 * appended to cs[k] (n <= 64); logits rows stay in bc->logits, copied to lg[k] if lg. */
static inline int bench_decode_batch(vlm_ctx *bc, vlm_ctx *const *cs, const int32_t *toks,
                                     const float *ps, int n, float *const *lg) {
    vlm_llm_seq seqs[64];
    float p3[64][3];
    if (n > 64) return -1;
    for (int k = 0; k < n; k++) {
        p3[k][0] = p3[k][1] = p3[k][2] = ps[k];
        seqs[k] = (vlm_llm_seq){.c = cs[k], .ids = &toks[k], .pos = p3[k], .n = 1};
    }
    return vlm_llm_forward_batch(bc, seqs, n, 0, lg);
}

typedef enum bench_dims { BENCH_DIMS_05B, BENCH_DIMS_3B, BENCH_DIMS_7B } bench_dims;

/* Qwen2.5-VL configs: 3B and 7B as published (spec §4.1); 05B is a Qwen2.5-0.5B-like LLM
 * (hidden 896, 24 layers, 14/2 heads, intermediate 4864) with a 4-block vision tower at
 * the real width, the CPU benchmark's model. */
static inline void bench_config(vlm_config *c, bench_dims dims) {
    memset(c, 0, sizeof *c);
    bool b3 = dims == BENCH_DIMS_3B, small = dims == BENCH_DIMS_05B;
    c->vocab = dims == BENCH_DIMS_7B ? 152064 : 151936;
    c->hidden = small ? 896 : b3 ? 2048 : 3584;
    c->n_layers = small ? 24 : b3 ? 36 : 28;
    c->n_heads = small ? 14 : b3 ? 16 : 28;
    c->n_kv_heads = small ? 2 : b3 ? 2 : 4;
    c->head_dim = small ? 64 : 128;
    c->intermediate = small ? 4864 : b3 ? 11008 : 18944;
    c->rms_eps = 1e-6f;
    c->rope_theta = 1e6f;
    /* [16, 24, 24] scaled to the head size */
    c->mrope_section[0] = c->head_dim / 8;
    c->mrope_section[1] = c->mrope_section[2] = c->head_dim * 3 / 16;
    c->tie_word_embeddings = dims != BENCH_DIMS_7B;
    c->bos_token_id = 151643;
    c->eos_token_id = 151645;
    c->image_token_id = 151655;
    c->video_token_id = 151656;
    c->vision_start_token_id = 151652;
    c->vision_end_token_id = 151653;
    vlm_vision_config *v = &c->vision;
    v->depth = small ? 4 : 32;
    v->hidden = 1280;
    v->n_heads = 16;
    v->head_dim = 80;
    v->intermediate = 3420;
    v->out_hidden = c->hidden;
    v->patch_size = 14;
    v->temporal_patch_size = 2;
    v->spatial_merge_size = 2;
    v->in_channels = 3;
    v->window_size = 112;
    v->tokens_per_second = 2;
    if (small) {
        v->n_fullatt = 1;
        v->fullatt[0] = 3;
    } else {
        v->n_fullatt = 4;
        for (int i = 0; i < 4; i++) v->fullatt[i] = 7 + 8 * i;
    }
    v->eps = 1e-6f;
    c->gen.n_eos = 1;
    c->gen.eos[0] = 151645;
}

#endif
