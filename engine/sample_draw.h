/* sample_draw.h — the arithmetic of one token draw, shared by the host sampler
 * (sampler.c), the CPU backend's SAMPLE op and the CUDA kernel, so that all three draw
 * the same token from the same logits and the same uniform u (the CUDA build's expf
 * may differ from glibc's in the last bit, which moves a draw only when u lands that
 * close to a boundary).
 *
 * Order as transformers: repetition penalty (divide positive logits, multiply negative
 * ones), temperature, then top-k/top-p over the candidates in order (higher logit
 * first, lower id on ties), softmax, multinomial draw.
 */
#ifndef VLM_SAMPLE_DRAW_H
#define VLM_SAMPLE_DRAW_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __CUDACC__
#define VLM_HOST_DEVICE __host__ __device__
#else
#define VLM_HOST_DEVICE
#endif

/* A logit after the repetition penalty (when its id was seen). */
VLM_HOST_DEVICE static inline float vlm__penalized(float l, bool seen, float penalty) {
    return seen ? (l < 0 ? l * penalty : l / penalty) : l;
}

/* A candidate token: its value after penalty and temperature, and its id. */
typedef struct vlm_cand {
    float v;
    int32_t id;
} vlm_cand;

/* Candidate a comes before b: higher value first, then lower id. */
VLM_HOST_DEVICE static inline bool vlm__cand_before(float va, int32_t a, float vb, int32_t b) {
    return va > vb || (va == vb && a < b);
}

/* The draw from n candidates already in candidate order (their values overwritten with
 * exp(v - max)).  top_p < 1 keeps the smallest leading set whose probability reaches
 * top_p; the token is the first whose cumulative mass exceeds u * (kept mass). */
VLM_HOST_DEVICE static inline int32_t vlm__sample_draw(vlm_cand *c, int64_t n, float top_p,
                                                        double u) {
    float mx = c[0].v;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (c[i].v = expf(c[i].v - mx));
    if (top_p < 1.0f) {
        double cum = 0.0;
        int64_t keep = n;
        for (int64_t i = 0; i < n; i++) {
            cum += c[i].v / sum;
            if (cum >= top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        sum = 0.0;
        for (int64_t i = 0; i < n; i++) sum += c[i].v;
    }
    double r = u * sum, acc = 0.0;
    for (int64_t i = 0; i < n; i++) {
        acc += c[i].v;
        if (r < acc) return c[i].id;
    }
    return c[n - 1].id;
}

#endif
