/* test-engine-sampler.c — next-token choice as transformers' generate(): repetition
 * penalty on every context id, greedy ties to the lowest id, top-k keeping ties at the
 * k-th value, top-p mass, and a seeded draw that follows the distribution. */
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

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"sampler_greedy_and_penalty", test_sampler_greedy_and_penalty},
        {"sampler_top_k_top_p_distribution", test_sampler_top_k_top_p_distribution},
        {0},
    };
    return test_main(argc, argv, tests);
}
