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
    s->cand = malloc(sizeof(vlm_cand) * (size_t)vocab);
    if (!s->seen || !s->cand) {
        vlm_sampler_deinit(s);
        return -1;
    }
    return 0;
}

void vlm_sampler_deinit(vlm_sampler *s) {
    free(s->seen);
    free(s->cand);
    s->seen = NULL;
    s->cand = NULL;
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

/* Heap over candidates whose root is the last of them in candidate order. */
static void sift_down(vlm_cand *h, int64_t n, int64_t i) {
    for (;;) {
        int64_t c = 2 * i + 1, w = i;
        for (int64_t k = c; k < c + 2 && k < n; k++)
            if (vlm__cand_before(h[w].v, h[w].id, h[k].v, h[k].id)) w = k;
        if (w == i) return;
        vlm_cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void heapify(vlm_cand *h, int64_t n) {
    for (int64_t j = n / 2 - 1; j >= 0; j--) sift_down(h, n, j);
}

static float value_at(const float *l, const uint8_t *seen, int64_t i, float penalty,
                      float temperature) {
    return vlm__penalized(l[i], seen && seen[i], penalty) / temperature;
}

int64_t vlm__sample_candidates(const float *l, const uint8_t *seen, int64_t V, float penalty,
                               float temperature, int64_t k, vlm_cand *out, int64_t cap) {
    if (k <= 0 || k > V) k = V;
    if (k > cap) return -1;
    int64_t n = 0; /* a heap of the k best so far, worst on top */
    for (int64_t i = 0; i < V; i++) {
        vlm_cand c = {value_at(l, seen, i, penalty, temperature), (int32_t)i};
        if (n < k) {
            out[n++] = c;
            if (n == k) heapify(out, k);
        } else if (vlm__cand_before(c.v, c.id, out[0].v, out[0].id)) {
            out[0] = c;
            sift_down(out, k, 0);
        }
    }
    float kth = out[0].v;
    n = 0; /* every id at or above the k-th value: the heap's k plus any ties */
    for (int64_t i = 0; i < V; i++) {
        float v = value_at(l, seen, i, penalty, temperature);
        if (!(v >= kth)) continue;
        if (n == cap) return -1;
        out[n++] = (vlm_cand){v, (int32_t)i};
    }
    heapify(out, n); /* heapsort (glibc's qsort may allocate): best first */
    for (int64_t end = n - 1; end > 0; end--) {
        vlm_cand t = out[0];
        out[0] = out[end];
        out[end] = t;
        sift_down(out, end, 0);
    }
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
    /* the penalty is in logits already */
    int64_t n = vlm__sample_candidates(logits, NULL, V, 1.0f, s->temperature, s->top_k,
                                       s->cand, V);
    return vlm__sample_draw(s->cand, n, s->top_p, u);
}
