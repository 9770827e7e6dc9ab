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

#include "model.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void small_qwen_config(vlm_config *c) {
    memset(c, 0, sizeof *c);
    c->vocab = 151936;
    c->hidden = 896;
    c->n_layers = 24;
    c->n_heads = 14;
    c->n_kv_heads = 2;
    c->head_dim = 64;
    c->intermediate = 4864;
    c->rms_eps = 1e-6f;
    c->rope_theta = 1e6f;
    c->mrope_section[0] = 8; /* [16, 24, 24] scaled to head_dim 64 */
    c->mrope_section[1] = 12;
    c->mrope_section[2] = 12;
    c->tie_word_embeddings = true;
    c->bos_token_id = 151643;
    c->eos_token_id = 151645;
    c->image_token_id = 151655;
    c->video_token_id = 151656;
    c->vision_start_token_id = 151652;
    c->vision_end_token_id = 151653;
    vlm_vision_config *v = &c->vision;
    v->depth = 4;
    v->hidden = 1280;
    v->n_heads = 16;
    v->head_dim = 80;
    v->intermediate = 3420;
    v->out_hidden = 896;
    v->patch_size = 14;
    v->temporal_patch_size = 2;
    v->spatial_merge_size = 2;
    v->in_channels = 3;
    v->window_size = 112;
    v->tokens_per_second = 2;
    v->n_fullatt = 1;
    v->fullatt[0] = 3;
    v->eps = 1e-6f;
    c->gen.n_eos = 1;
    c->gen.eos[0] = 151645;
}

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
    small_qwen_config(&cfg);
    char err[VLM_ERR_LEN];
    vlm_model *m = NULL;
    vlm_model_params mp = {.backend = backend, .n_threads = threads};
    double t0 = now_ms();
    if (vlm_model_new_random(&cfg, &mp, 1, &m, err)) {
        fprintf(stderr, "bench-engine: %s\n", err);
        return 1;
    }
    printf("bench-engine: random Qwen2.5-0.5B-like model (hidden 896, 24 layers, 14/2 heads, "
           "vocab 151936) + 4-block ViT (1280 wide), %.0f MB of weights on %s, made in %.0f ms\n",
           (double)m->weights_bytes / 1e6, m->be->iface->name, now_ms() - t0);

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
        double s = now_ms();
        if (vlm_vision_forward(c, pix, grid, 1, &n_tok)) return 1;
        ms[r] = now_ms() - s;
    }
    double vision_ms = median(ms, reps);

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
            double st = now_ms();
            if (vlm_llm_forward(c, ids, n, pos, NULL, 0, c->vout, 1, logits)) return 1;
            ms[r] = now_ms() - st;
        }
        prefill_tps[s] = (double)n / (median(ms, reps) / 1e3);
    }
    /* decode on top of the 512-token cache */
    int steps = 32;
    double st = now_ms();
    for (int k = 0; k < steps; k++) {
        float p = (float)(512 + k), p3[3] = {p, p, p};
        int32_t tok = (k * 17) % 150000;
        if (vlm_llm_forward(c, &tok, 1, p3, NULL, 0, c->vout, 1, logits)) return 1;
    }
    double decode_ms = (now_ms() - st) / steps;
    printf("vision tower, 2-frame 448x252 chunk (576 patches -> %lld tokens): %8.1f ms\n",
           (long long)n_tok, vision_ms);
    printf("prefill, %4lld tokens (one chunk):  %8.1f tokens/s\n", (long long)sizes[0],
           prefill_tps[0]);
    printf("prefill, %4lld tokens:              %8.1f tokens/s\n", (long long)sizes[1],
           prefill_tps[1]);
    printf("decode at a 512-token cache:        %8.1f tokens/s (%.1f ms/token)\n",
           1e3 / decode_ms, decode_ms);
    free(pix);
    free(ids);
    free(pos);
    free(logits);
    vlm_ctx_free(c);
    vlm_model_free(m);
    return 0;
}
