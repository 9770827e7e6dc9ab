/* bench-engine.c — CPU engine speed at Qwen2.5-0.5B-like LLM dims with a 4-block vision
 * tower at the real width, random weights made in memory (no download).
 *
 * Prints: vision-tower ms for one 2-frame 448x252 chunk (576 patches -> 144 tokens),
 * prefill tokens/s for one chunk's worth of tokens and for 512 tokens, and decode
 * tokens/s on top of that cache.  Figures only; never pass/fail.
 * Usage: bench-engine [--threads N] [--backend cpu|cuda] [--reps N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "model.h"

int main(int argc, char **argv) {
    int threads = 0, reps = 5;
    const char *backend = "cpu";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--backend")) backend = argv[i + 1];
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    if (reps < 1 || reps > 64) reps = 5;
    vlm_config cfg;
    bench_config(&cfg, BENCH_DIMS_05B);
    char err[VLM_ERR_LEN];
    vlm_model *m = NULL;
    vlm_model_params mp = {.backend = backend, .n_threads = threads};
    double t0 = bench_now_ms();
    if (vlm_model_new_random(&cfg, &mp, 1, &m, err)) {
        fprintf(stderr, "bench-engine: %s\n", err);
        return 1;
    }
    printf("bench-engine: random Qwen2.5-0.5B-like model (hidden 896, 24 layers, 14/2 heads, "
           "vocab 151936) + 4-block ViT (1280 wide), %.0f MB of weights on %s, made in %.0f ms\n",
           (double)m->weights_bytes / 1e6, m->be->iface->name, bench_now_ms() - t0);

    const int64_t grid[1][3] = {{1, 18, 32}}; /* 448x252, 2 frames */
    int64_t np = 18 * 32, patch_in = 1176, ctx_len = 2048;
    vlm_ctx_params cp = {.n_ctx = ctx_len, .n_batch = 512, .n_logits = 1, .n_patches = np};
    vlm_ctx *c = NULL;
    if (vlm_ctx_new(m, &cp, &c, err)) {
        fprintf(stderr, "bench-engine: %s\n", err);
        return 1;
    }
    float *pix = malloc(sizeof(float) * (size_t)(np * patch_in));
    for (int64_t i = 0; i < np * patch_in; i++) pix[i] = (float)((i * 7919) % 255) / 128.0f - 1.0f;
    double ms[64];
    int64_t n_tok = 0;
    for (int r = 0; r < reps; r++) {
        double s = bench_now_ms();
        if (vlm_vision_forward(c, pix, grid, 1, &n_tok)) return 1;
        ms[r] = bench_now_ms() - s;
    }
    double vision_ms = bench_median(ms, reps);

    int32_t *ids = malloc(sizeof(int32_t) * 512);
    float *pos = malloc(sizeof(float) * 3 * 512), *logits = malloc(sizeof(float) * 151936);
    for (int i = 0; i < 512; i++) ids[i] = (i * 131) % 150000;
    int64_t sizes[2] = {n_tok + 25, 512};
    double prefill_tps[2];
    for (int s = 0; s < 2; s++) {
        int64_t n = sizes[s];
        for (int64_t i = 0; i < n; i++) pos[i] = pos[n + i] = pos[2 * n + i] = (float)i;
        for (int r = 0; r < reps; r++) {
            c->n_cached = 0;
            double st = bench_now_ms();
            if (vlm_llm_forward(c, ids, n, pos, NULL, 0, c->vout, 1, logits)) return 1;
            ms[r] = bench_now_ms() - st;
        }
        prefill_tps[s] = (double)n / (bench_median(ms, reps) / 1e3);
    }
    /* decode on top of the 512-token cache */
    int steps = 32;
    double st = bench_now_ms();
    for (int k = 0; k < steps; k++) {
        float p = (float)(512 + k), p3[3] = {p, p, p};
        int32_t tok = (k * 17) % 150000;
        if (vlm_llm_forward(c, &tok, 1, p3, NULL, 0, c->vout, 1, logits)) return 1;
    }
    double decode_ms = (bench_now_ms() - st) / steps;
    printf("vision tower, 2-frame 448x252 chunk (576 patches -> %lld tokens): %8.1f ms\n",
           (long long)n_tok, vision_ms);
    printf("prefill, %4lld tokens (one chunk):  %8.1f tokens/s\n", (long long)sizes[0],
           prefill_tps[0]);
    printf("prefill, %4lld tokens:              %8.1f tokens/s\n", (long long)sizes[1],
           prefill_tps[1]);
    printf("decode at a 512-token cache:        %8.1f tokens/s (%.1f ms/token)\n",
           1e3 / decode_ms, decode_ms);

    /* batched decode: n streams, each on its own 512-token cache, one forward a step
     * (vlm_llm_forward_batch, what vlm_batch_push_chunks runs) */
    enum { MAXB = 8 };
    vlm_ctx *cs[MAXB] = {0}, *bc = NULL;
    float *lg[MAXB];
    vlm_ctx_params sp = {.n_ctx = 512 + steps, .n_batch = 512, .n_logits = 1, .n_patches = 0};
    vlm_ctx_params bp = {.n_ctx = MAXB, .n_batch = MAXB, .n_logits = MAXB, .n_patches = 0};
    if (vlm_ctx_new(m, &bp, &bc, err)) {
        fprintf(stderr, "bench-engine: %s\n", err);
        return 1;
    }
    for (int k = 0; k < MAXB; k++) {
        lg[k] = malloc(sizeof(float) * 151936);
        if (vlm_ctx_new(m, &sp, &cs[k], err)) {
            fprintf(stderr, "bench-engine: %s\n", err);
            return 1;
        }
        for (int64_t i = 0; i < 512; i++) pos[i] = pos[512 + i] = pos[1024 + i] = (float)i;
        if (vlm_llm_forward(cs[k], ids, 512, pos, NULL, 0, cs[k]->vout, 1, lg[k])) return 1;
    }
    printf("batched decode, each stream at a 512-token cache (one forward per step):\n");
    for (int n = 1; n <= MAXB; n *= 2) {
        int32_t toks[MAXB];
        float ps[MAXB];
        for (int k = 0; k < n; k++) cs[k]->n_cached = 512;
        double bt = bench_now_ms();
        for (int step = 0; step < steps; step++) {
            for (int k = 0; k < n; k++) {
                toks[k] = (step * 17 + k * 101) % 150000;
                ps[k] = (float)(512 + step);
            }
            if (bench_decode_batch(bc, cs, toks, ps, n, lg)) return 1;
        }
        double step_ms = (bench_now_ms() - bt) / steps;
        printf("  %d stream%s  %8.1f ms/step  %8.1f tokens/s in all\n", n, n > 1 ? "s" : " ",
               step_ms, 1e3 * n / step_ms);
    }
    for (int k = 0; k < MAXB; k++) {
        vlm_ctx_free(cs[k]);
        free(lg[k]);
    }
    vlm_ctx_free(bc);
    free(pix);
    free(ids);
    free(pos);
    free(logits);
    vlm_ctx_free(c);
    vlm_model_free(m);
    return 0;
}
