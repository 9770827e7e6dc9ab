/* sample_cases.h — the sampling cases two tests share: test-engine-sampler checks the
 * CPU backend's SAMPLE op against the host sampler on them, test-backend-ops checks the
 * CUDA op against the CPU op.  Each case is a policy and a way to make a logits row
 * that stresses one part of the draw (ties at the k-th value, more ties than the op
 * takes, k above the vocabulary, negative logits under the penalty).
 */
#ifndef TEST_SAMPLE_CASES_H
#define TEST_SAMPLE_CASES_H

#include <stdbool.h>
#include <math.h>
#include <stdint.h>

#include "backend.h"

typedef enum sample_logits {
    LOGITS_SPREAD,  /* uniform in [-8, 8): no ties in practice */
    LOGITS_STEPS,   /* multiples of 1/8 in [-4, 4): many ties everywhere */
    LOGITS_FLAT,    /* three values only: thousands tie at the k-th */
    LOGITS_NEG,     /* all negative: the penalty multiplies */
} sample_logits;

typedef struct sample_case {
    int64_t vocab;
    sample_logits logits;
    bool greedy;
    int32_t top_k;
    float temperature, top_p, penalty;
    const char *what;
} sample_case;

static const sample_case sample_cases[] = {
    {7, LOGITS_SPREAD, true, 0, 1.0f, 1.0f, 1.0f, "greedy, tiny vocabulary"},
    {5000, LOGITS_STEPS, true, 0, 1.0f, 1.0f, 1.3f, "greedy, ties to the lowest id, penalty"},
    {151936, LOGITS_SPREAD, true, 0, 1.0f, 1.0f, 1.05f, "greedy, Qwen vocabulary, penalty"},
    {151936, LOGITS_SPREAD, false, 50, 0.9f, 1.0f, 1.05f, "StreamingVLM's defaults (top-k 50)"},
    {3000, LOGITS_STEPS, false, 50, 0.9f, 0.8f, 1.05f, "ties at the 50th value, top-p"},
    {3000, LOGITS_SPREAD, false, 1024, 1.3f, 0.9f, 1.0f, "k at the op's limit"},
    {3, LOGITS_SPREAD, false, 50, 8.0f, 1.0f, 1.0f, "k above the vocabulary"},
    {4000, LOGITS_NEG, false, 20, 1.0f, 0.5f, 2.0f, "negative logits, strong penalty"},
    {5000, LOGITS_FLAT, false, 5, 1.0f, 1.0f, 1.0f, "more ties than the op takes: -1"},
    {0},
};

/* xorshift64*: the same row and seen mask for every backend */
static inline uint64_t sample_rng(uint64_t *st) {
    uint64_t x = *st;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *st = x;
    return x * 2685821657736338717ull;
}

/* uniform in [0, 1) */
static inline double sample_uniform(uint64_t *st) {
    return (double)(sample_rng(st) >> 11) / 9007199254740992.0;
}

/* A case's logits row and seen mask (about one id in eight seen). */
static inline void sample_case_inputs(const sample_case *c, uint64_t seed, float *l,
                                      uint8_t *seen) {
    uint64_t st = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < c->vocab; i++) {
        double r = sample_uniform(&st);
        switch (c->logits) {
        case LOGITS_SPREAD: l[i] = (float)(r * 16.0 - 8.0); break;
        case LOGITS_STEPS: l[i] = (float)floor(r * 64.0) / 8.0f - 4.0f; break;
        case LOGITS_FLAT: l[i] = (float)floor(r * 3.0); break;
        case LOGITS_NEG: l[i] = (float)(-0.01 - r * 6.0); break;
        }
        seen[i] = (sample_rng(&st) & 7) == 0;
    }
}

/* The k the op is given: a greedy case still passes a valid one. */
static inline int32_t sample_case_k(const sample_case *c) {
    return c->greedy ? 1 : c->top_k;
}

#endif
