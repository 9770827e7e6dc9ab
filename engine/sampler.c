/* sampler.c — next-token choice (see sampler.h).  Order as transformers: repetition
 * penalty (divide positive logits, multiply negative ones, for every id in the
 * context), temperature, top-k (ties at the k-th value kept), top-p (smallest set of
 * most probable tokens whose mass reaches top_p), softmax, multinomial draw.  The
 * penalty, the candidate order and the draw are sample_draw.h's, which the backends'
 * SAMPLE op uses too. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample_draw.h"
#include "sampler.h"

int vlm_sampler_init(vlm_sampler *s, int64_t vocab, bool greedy, float temperature,
                     int64_t top_k, float top_p, float repetition_penalty, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->vocab = vocab;
    s->greedy = greedy || temperature <= 0.0f || top_k == 1;
    s->temperature = temperature > 0.0f ? temperature : 1.0f;
    s->top_k = top_k;
    s->top_p = top_p;
    s->repetition_penalty = repetition_penalty;
    s->rng = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    s->seen = calloc((size_t)vocab, 1);
    s->idx = malloc(sizeof(int32_t) * (size_t)vocab);
    s->prob = malloc(sizeof(float) * (size_t)vocab);
    if (!s->seen || !s->idx || !s->prob) {
        vlm_sampler_deinit(s);
        return -1;
    }
    return 0;
}

void vlm_sampler_deinit(vlm_sampler *s) {
    free(s->seen);
    free(s->idx);
    free(s->prob);
    s->seen = NULL;
    s->idx = NULL;
    s->prob = NULL;
}

void vlm_sampler_reset_context(vlm_sampler *s) {
    memset(s->seen, 0, (size_t)s->vocab);
}

void vlm_sampler_add_context(vlm_sampler *s, const int32_t *ids, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < s->vocab) s->seen[ids[i]] = 1;
}

double vlm_sampler_next_u(vlm_sampler *s) {
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return (double)((x * 2685821657736338717ull) >> 11) / 9007199254740992.0; /* [0, 1) */
}

/* a before b in the candidate order: higher logit first, then lower id */
static bool before(const float *l, int32_t a, int32_t b) {
    return vlm__cand_before(l[a], a, l[b], b);
}

/* Heap helpers over ids; `worse_on_top` makes a heap whose root is the last in order. */
static void sift_down(int32_t *h, int64_t n, int64_t i, const float *l, bool worse_on_top) {
    for (;;) {
        int64_t c = 2 * i + 1, best = i;
        for (int64_t k = c; k < c + 2 && k < n; k++)
            if (worse_on_top ? before(l, h[best], h[k]) : before(l, h[k], h[best])) best = k;
        if (best == i) return;
        int32_t t = h[i];
        h[i] = h[best];
        h[best] = t;
        i = best;
    }
}

/* Sort ids[0..n) into candidate order in place (heapsort: glibc's qsort may allocate). */
static void sort_candidates(int32_t *ids, int64_t n, const float *l) {
    for (int64_t i = n / 2 - 1; i >= 0; i--) sift_down(ids, n, i, l, true);
    for (int64_t end = n - 1; end > 0; end--) {
        int32_t t = ids[0];
        ids[0] = ids[end];
        ids[end] = t;
        sift_down(ids, end, 0, l, true);
    }
}

/* The candidates in order: with top-k, every id whose logit is at least the k-th
 * largest (ties kept, as transformers' TopKLogitsWarper); else all ids. */
static int64_t candidates(vlm_sampler *s, const float *l) {
    int64_t V = s->vocab, k = s->top_k, n = 0;
    if (k <= 0 || k >= V) {
        for (int64_t i = 0; i < V; i++) s->idx[i] = (int32_t)i;
        n = V;
    } else { /* a heap of the k best so far, worst on top */
        for (int64_t i = 0; i < V; i++) {
            if (n < k) {
                s->idx[n++] = (int32_t)i;
                if (n == k)
                    for (int64_t j = k / 2 - 1; j >= 0; j--) sift_down(s->idx, k, j, l, true);
            } else if (before(l, (int32_t)i, s->idx[0])) {
                s->idx[0] = (int32_t)i;
                sift_down(s->idx, k, 0, l, true);
            }
        }
        float kth = l[s->idx[0]];
        n = 0; /* every id at or above the k-th value: the heap's k plus any ties */
        for (int64_t i = 0; i < V; i++)
            if (l[i] >= kth) s->idx[n++] = (int32_t)i;
    }
    sort_candidates(s->idx, n, l);
    return n;
}

int32_t vlm_sampler_sample(vlm_sampler *s, float *logits) {
    return vlm_sampler_sample_at(s, logits, s->greedy ? 0.0 : vlm_sampler_next_u(s));
}

int32_t vlm_sampler_sample_at(vlm_sampler *s, float *logits, double u) {
    int64_t V = s->vocab;
    if (s->repetition_penalty != 1.0f)
        for (int64_t i = 0; i < V; i++)
            logits[i] = vlm__penalized(logits[i], s->seen[i], s->repetition_penalty);
    if (s->greedy) {
        int64_t best = 0;
        for (int64_t i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return (int32_t)best;
    }
    for (int64_t i = 0; i < V; i++) logits[i] /= s->temperature;
    int64_t n = candidates(s, logits);
    for (int64_t i = 0; i < n; i++) s->prob[i] = logits[s->idx[i]];
    return vlm__sample_draw(s->prob, s->idx, n, s->top_p, u);
}
