/* sampler.h — choosing the next token from a logits row, as transformers' generate()
 * does: repetition penalty over the whole retained context, then temperature, top-k,
 * top-p, softmax and a seeded draw; or greedy (argmax, lowest id on ties) after the
 * penalty.  Scratch is planned at init (one vocab-sized set); sampling allocates nothing.
 */
#ifndef VLM_SAMPLER_H
#define VLM_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "sample_draw.h"

typedef struct vlm_sampler {
    int64_t vocab;
    bool greedy;
    float temperature, top_p, repetition_penalty;
    int64_t top_k;
    uint64_t rng;
    uint8_t *seen;  /* [vocab] ids present in the context */
    vlm_cand *cand; /* [vocab] candidates */
} vlm_sampler;

int vlm_sampler_init(vlm_sampler *s, int64_t vocab, bool greedy, float temperature,
                     int64_t top_k, float top_p, float repetition_penalty, uint64_t seed);
void vlm_sampler_deinit(vlm_sampler *s);
/* The context whose ids the repetition penalty applies to: reset, then add ids. */
void vlm_sampler_reset_context(vlm_sampler *s);
void vlm_sampler_add_context(vlm_sampler *s, const int32_t *ids, int64_t n);
/* Pick the next token from logits (the penalty is applied to them in place). */
int32_t vlm_sampler_sample(vlm_sampler *s, float *logits);
/* The same with the draw given: u uniform in [0, 1) (ignored when greedy), taken from
 * vlm_sampler_next_u so that a draw made elsewhere (a backend's SAMPLE op) and this one
 * consume the seeded sequence alike. */
int32_t vlm_sampler_sample_at(vlm_sampler *s, float *logits, double u);
double vlm_sampler_next_u(vlm_sampler *s);

/* The candidates of a logits row in candidate order (higher value first, lower id on
 * ties), values after the repetition penalty on the ids marked in seen (may be NULL)
 * and the temperature: every id whose value reaches the k-th largest (the k best plus
 * ties, as transformers' TopKLogitsWarper), all V when k <= 0 or k >= V.  Into
 * out[0..n); returns n, or -1 when more than cap ids would be candidates.  l is left
 * as it is.  Shared by the host sampler and the CPU backend's SAMPLE op. */
int64_t vlm__sample_candidates(const float *l, const uint8_t *seen, int64_t V, float penalty,
                               float temperature, int64_t k, vlm_cand *out, int64_t cap);

#endif
