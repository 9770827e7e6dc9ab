/* sampler.h — choosing the next token from a logits row, as transformers' generate()
 * does: repetition penalty over the whole retained context, then temperature, top-k,
 * top-p, softmax and a seeded draw; or greedy (argmax, lowest id on ties) after the
 * penalty.  Scratch is planned at init (one vocab-sized set); sampling allocates nothing.
 */
#ifndef VLM_SAMPLER_H
#define VLM_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct vlm_sampler {
    int64_t vocab;
    bool greedy;
    float temperature, top_p, repetition_penalty;
    int64_t top_k;
    uint64_t rng;
    uint8_t *seen;  /* [vocab] ids present in the context */
    int32_t *idx;   /* [vocab] candidate ids */
    float *prob;    /* [vocab] candidate probabilities */
} vlm_sampler;

int vlm_sampler_init(vlm_sampler *s, int64_t vocab, bool greedy, float temperature,
                     int64_t top_k, float top_p, float repetition_penalty, uint64_t seed);
void vlm_sampler_deinit(vlm_sampler *s);
/* The context whose ids the repetition penalty applies to: reset, then add ids. */
void vlm_sampler_reset_context(vlm_sampler *s);
void vlm_sampler_add_context(vlm_sampler *s, const int32_t *ids, int64_t n);
/* Pick the next token from logits (modified in place by the penalty/warpers). */
int32_t vlm_sampler_sample(vlm_sampler *s, float *logits);
/* The same with the draw given: u uniform in [0, 1) (ignored when greedy), taken from
 * vlm_sampler_next_u so that a draw made elsewhere (a backend's SAMPLE op) and this one
 * consume the seeded sequence alike. */
int32_t vlm_sampler_sample_at(vlm_sampler *s, float *logits, double u);
double vlm_sampler_next_u(vlm_sampler *s);

#endif
