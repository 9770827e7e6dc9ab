/* test-engine-sampler.c — next-token choice as transformers' generate(): repetition
 * penalty on every context id, greedy ties to the lowest id, top-k keeping ties at the
 * k-th value, top-p mass, and a seeded draw that follows the distribution. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "sample_cases.h"
#include "sampler.h"
#include "test.h"

static void test_sampler_greedy_and_penalty(void) {
    vlm_sampler s;
    ASSERT(vlm_sampler_init(&s, 5, true, 1.0f, 0, 1.0f, 2.0f, 1) == 0);
    float l[5] = {1.0f, 3.0f, 3.0f, -1.0f, 2.0f};
    ASSERT_EQ_INT(vlm_sampler_sample(&s, l), 1); /* tie 1/2: the lower id */
    float l2[5] = {1.0f, 3.0f, 3.0f, -1.0f, 2.0f};
    int32_t ctx[2] = {1, 3};
    vlm_sampler_add_context(&s, ctx, 2);
    ASSERT_EQ_INT(vlm_sampler_sample(&s, l2), 2); /* 3/2 = 1.5 for id 1 */
    ASSERT_NEAR(l2[1], 1.5, 1e-6);
    ASSERT_NEAR(l2[3], -2.0, 1e-6); /* negative logits are multiplied */
    vlm_sampler_reset_context(&s);
    float l3[5] = {1.0f, 3.0f, 3.0f, -1.0f, 2.0f};
    ASSERT_EQ_INT(vlm_sampler_sample(&s, l3), 1);
    vlm_sampler_deinit(&s);
}

static void test_sampler_top_k_top_p_distribution(void) {
    enum { V = 6, N = 20000 };
    vlm_sampler s;
    /* top_k 2 keeps ids 0 and 1 and the tie at the 2nd value (id 4) */
    ASSERT(vlm_sampler_init(&s, V, false, 1.0f, 2, 1.0f, 1.0f, 7) == 0);
    int counts[V] = {0};
    for (int i = 0; i < N; i++) {
        float l[V] = {2.0f, 1.0f, 0.0f, -1.0f, 1.0f, 0.5f};
        counts[vlm_sampler_sample(&s, l)]++;
    }
    ASSERT(counts[2] == 0 && counts[3] == 0 && counts[5] == 0);
    double e = expf(1.0f);
    ASSERT_NEAR(counts[0] / (double)N, e / (e + 2), 0.02);
    ASSERT_NEAR(counts[1] / (double)N, 1 / (e + 2), 0.02);
    ASSERT_NEAR(counts[4] / (double)N, 1 / (e + 2), 0.02);
    vlm_sampler_deinit(&s);
    /* top_p 0.5: only the most probable id (p ~ 0.6) survives */
    ASSERT(vlm_sampler_init(&s, V, false, 1.0f, 0, 0.5f, 1.0f, 7) == 0);
    for (int i = 0; i < 200; i++) {
        float l[V] = {3.0f, 1.0f, 0.0f, -1.0f, 1.0f, 0.5f};
        ASSERT_EQ_INT(vlm_sampler_sample(&s, l), 0);
    }
    vlm_sampler_deinit(&s);
    /* temperature sharpens: at 0.02 the top id wins every draw (e^-25 odds) */
    ASSERT(vlm_sampler_init(&s, V, false, 0.02f, 0, 1.0f, 1.0f, 3) == 0);
    for (int i = 0; i < 200; i++) {
        float l[V] = {1.0f, 2.0f, 0.0f, -1.0f, 1.5f, 0.5f};
        ASSERT_EQ_INT(vlm_sampler_sample(&s, l), 1);
    }
    vlm_sampler_deinit(&s);
}

/* The CPU backend's SAMPLE op (what the session calls) draws the host sampler's token
 * for the same logits, seen ids and uniform draw; it leaves the row as it was, marks
 * the drawn id, and answers -1 (marking nothing) when more ids tie than it takes. */
static void test_sample_op_matches_host_sampler(void) {
    enum { DRAWS = 24 };
    vlm_backend *be = vlm_backend_cpu_new(1);
    ASSERT(be);
    int n_cases = 0, n_refused = 0, n_distinct = 0;
    for (const sample_case *c = sample_cases; c->vocab; c++, n_cases++) {
        int64_t V = c->vocab;
        float *l = malloc(sizeof(float) * (size_t)V), *work = malloc(sizeof(float) * (size_t)V);
        uint8_t *seen = malloc((size_t)V), *seen_after = malloc((size_t)V);
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)V);
        void *dl = vlm_backend_alloc(be, sizeof(float) * (size_t)V);
        void *ds = vlm_backend_alloc(be, (size_t)V), *dt = vlm_backend_alloc(be, 4);
        ASSERT(l && work && seen && seen_after && ids && dl && ds && dt);
        sample_case_inputs(c, (uint64_t)n_cases + 11, l, seen);
        int64_t n_ids = 0;
        for (int64_t i = 0; i < V; i++)
            if (seen[i]) ids[n_ids++] = (int32_t)i;
        vlm_tensor tl = vlm_tensor_2d(VLM_F32, dl, 1, V), ts = vlm_tensor_make(VLM_U8, ds, 1, &V);
        int64_t one = 1;
        vlm_tensor tt = vlm_tensor_make(VLM_I32, dt, 1, &one);
        vlm_sampler sp;
        ASSERT(vlm_sampler_init(&sp, V, c->greedy, c->temperature, c->top_k, c->top_p,
                                c->penalty, 5) == 0);
        uint64_t st = 99 + (uint64_t)n_cases;
        int32_t first = -2;
        bool distinct = false;
        for (int d = 0; d < DRAWS; d++) {
            double u = sample_uniform(&st);
            memcpy(work, l, sizeof(float) * (size_t)V);
            vlm_sampler_reset_context(&sp);
            vlm_sampler_add_context(&sp, ids, n_ids);
            int32_t want = vlm_sampler_sample_at(&sp, work, u);

            ASSERT_EQ_INT(vlm_backend_set(be, tl, l), 0);
            ASSERT_EQ_INT(vlm_backend_set(be, ts, seen), 0);
            ASSERT_EQ_INT(vlm_sample(be, tt, tl, &ts, c->greedy, sample_case_k(c), c->temperature,
                                     c->top_p, c->penalty, u), 0);
            int32_t got;
            ASSERT_EQ_INT(vlm_backend_get(be, &got, tt), 0);
            ASSERT_EQ_INT(vlm_backend_get(be, work, tl), 0);
            ASSERT_MSG(memcmp(work, l, sizeof(float) * (size_t)V) == 0,
                       "%s: the op changed the logits row", c->what);
            ASSERT_EQ_INT(vlm_backend_get(be, seen_after, ts), 0);
            if (got == -1) {
                ASSERT_MSG(c->logits == LOGITS_FLAT, "%s: refused a draw the op should make",
                           c->what);
                ASSERT(memcmp(seen_after, seen, (size_t)V) == 0);
                n_refused++;
                continue;
            }
            ASSERT_MSG(got == want, "%s, draw %d (u %.6f): op %d, host sampler %d", c->what, d,
                       u, got, want);
            ASSERT_MSG(seen_after[got] == 1, "%s: the drawn id is not marked", c->what);
            seen_after[got] = seen[got];
            ASSERT(memcmp(seen_after, seen, (size_t)V) == 0);
            if (first == -2) first = got;
            else if (got != first) distinct = true;
        }
        if (!c->greedy && c->logits != LOGITS_FLAT)
            ASSERT_MSG(distinct, "%s: every draw gave %d (the draw is not used)", c->what, first);
        n_distinct += distinct;
        vlm_sampler_deinit(&sp);
        vlm_backend_free_buffer(be, dl);
        vlm_backend_free_buffer(be, ds);
        vlm_backend_free_buffer(be, dt);
        free(l);
        free(work);
        free(seen);
        free(seen_after);
        free(ids);
    }
    ASSERT_EQ_INT(n_refused, DRAWS); /* every draw of the flat case, no other */
    printf("%d cases x %d draws: op == host sampler; %d cases drew several tokens\n", n_cases,
           DRAWS, n_distinct);
    vlm_backend_free(be);
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"sampler_greedy_and_penalty", test_sampler_greedy_and_penalty},
        {"sampler_top_k_top_p_distribution", test_sampler_top_k_top_p_distribution},
        {"sample_op_matches_host_sampler", test_sample_op_matches_host_sampler},
        {0},
    };
    return test_main(argc, argv, tests);
}
