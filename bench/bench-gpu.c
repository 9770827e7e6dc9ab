/* bench-gpu.c — the engine on the CUDA backend at Qwen2.5-VL-7B (or 3B) dims, random
 * bf16 weights made in memory (no download), against ceilings measured in the same run.
 *
 * Prints: vision tower ms for a 2-frame 1008x560 chunk (grid 1x40x72: 2880 patches ->
 * 720 tokens); prefill ms for a 745-token chunk (720 vision rows scattered in) on a
 * ~13k-token cache; decode ms/token at a ~14k cache (logits copied to the host each
 * step, as the session does); whole-chunk ms (vision + prefill + 20 decode steps); the
 * achieved TFLOP/s and GB/s against a device-to-device copy and a large bf16 GEMM; and a
 * short table last.  Figures only, never pass/fail: without CUDA or a GPU it says so
 * and exits 0.  One stream, no batching (not built yet).
 * Usage: bench-gpu [--dims 7b|3b] [--reps N] [--steps N] [--cache N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "model.h"
#ifdef VLM_HAVE_CUDA
#include "cuda/vlm_cuda.h"
#endif


#ifdef VLM_HAVE_CUDA


#define CHUNK_TOKENS 745 /* a 2-frame chunk's turn: 720 video tokens + text */

typedef struct bench {
    vlm_ctx *c;
    int32_t *ids, *slots;
    float *pos, *logits, *pix;
    int64_t np;
    int64_t grid[1][3];
} bench;

/* forward n random tokens at the end of the cache (positions = cache index) */
static int forward(bench *b, int64_t n, int64_t n_vis) {
    int64_t p0 = b->c->n_cached;
    for (int64_t i = 0; i < n; i++) {
        b->ids[i] = (int32_t)((p0 + i) * 7919 % 150000);
        b->pos[i] = b->pos[n + i] = b->pos[2 * n + i] = (float)(p0 + i);
    }
    for (int64_t i = 0; i < n_vis; i++) b->slots[i] = (int32_t)(10 + i);
    return vlm_llm_forward(b->c, b->ids, n, b->pos, b->slots, n_vis, b->c->vout, 1, b->logits);
}

static int vision(bench *b) {
    int64_t n_tok = 0;
    return vlm_vision_forward(b->c, b->pix, (const int64_t(*)[3])b->grid, 1, &n_tok);
}

/* the whole chunk: vision, prefill with its rows scattered in, `steps` decode steps */
static int chunk(bench *b, int steps) {
    int rc = vision(b);
    if (!rc) rc = forward(b, CHUNK_TOKENS, b->np / 4);
    for (int s = 0; s < steps && !rc; s++) rc = forward(b, 1, 0);
    return rc;
}

static int fail(const char *what, vlm_backend *be) {
    fprintf(stderr, "bench-gpu: %s failed: %s\n", what, be ? vlm_backend_last_error(be) : "");
    return 1;
}

int main(int argc, char **argv) {
    int reps = 5, steps = 20;
    int64_t cache = 13000;
    bool is_3b = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dims")) is_3b = !strcmp(argv[i + 1], "3b");
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--cache")) cache = atoll(argv[i + 1]);
    }
    if (reps < 1 || reps > 64) reps = 5;
    if (steps < 1 || steps > 1000) steps = 20;
    if (cache < CHUNK_TOKENS) cache = CHUNK_TOKENS;
    char err[VLM_ERR_LEN] = "";
    vlm_backend *probe = NULL;
    if (vlm_backend_new("cuda", 0, &probe, err) != 0) {
        printf("bench-gpu: skipped: %s\n", err);
        return 0;
    }
    vlm_backend_free(probe);

    vlm_config cfg;
    bench_config(&cfg, is_3b ? BENCH_DIMS_3B : BENCH_DIMS_7B);
    const char *dims = is_3b ? "Qwen2.5-VL-3B" : "Qwen2.5-VL-7B";
    vlm_model *m = NULL;
    vlm_model_params mp = {.backend = "cuda"};
    double t0 = bench_now_ms();
    if (vlm_model_new_random(&cfg, &mp, 1, &m, err)) {
        fprintf(stderr, "bench-gpu: %s\n", err);
        return 1;
    }
    printf("bench-gpu: random %s (hidden %lld, %lld layers, %lld/%lld heads, vocab %lld; "
           "vision 32 x 1280): %.2f GB of bf16 weights made and uploaded in %.1f s\n", dims,
           (long long)cfg.hidden, (long long)cfg.n_layers, (long long)cfg.n_heads,
           (long long)cfg.n_kv_heads, (long long)cfg.vocab, (double)m->weights_bytes / 1e9,
           (bench_now_ms() - t0) / 1e3);

    bench b = {.np = 40 * 72, .grid = {{1, 40, 72}}};
    int64_t decode_at = cache + 1000, patch_in = 3 * 2 * 14 * 14;
    vlm_ctx_params cp = {.n_ctx = decode_at + steps + CHUNK_TOKENS, .n_batch = CHUNK_TOKENS,
                         .n_logits = 1, .n_patches = b.np};
    if (vlm_ctx_new(m, &cp, &b.c, err)) {
        fprintf(stderr, "bench-gpu: %s\n", err);
        return 1;
    }
    b.ids = malloc(sizeof(int32_t) * CHUNK_TOKENS);
    b.slots = malloc(sizeof(int32_t) * CHUNK_TOKENS);
    b.pos = malloc(sizeof(float) * 3 * CHUNK_TOKENS);
    b.logits = malloc(sizeof(float) * (size_t)cfg.vocab);
    b.pix = malloc(sizeof(float) * (size_t)(b.np * patch_in));
    for (int64_t i = 0; i < b.np * patch_in; i++)
        b.pix[i] = (float)((i * 7919) % 255) / 128.0f - 1.0f;

    /* the cache: real prefills of random tokens up to `cache` */
    t0 = bench_now_ms();
    while (b.c->n_cached < cache) {
        int64_t n = cache - b.c->n_cached < CHUNK_TOKENS ? cache - b.c->n_cached : CHUNK_TOKENS;
        if (forward(&b, n, 0)) return fail("filling the cache", m->be);
    }
    printf("bench-gpu: filled a %lld-token cache in %.0f ms\n", (long long)cache, bench_now_ms() - t0);

    double ms[64];
    /* vision tower */
    if (vision(&b)) return fail("vision", m->be);
    for (int r = 0; r < reps; r++) {
        double s = bench_now_ms();
        if (vision(&b) || vlm_backend_get(m->be, b.logits, vlm_tensor_rows(b.c->vout, 0, 1)))
            return fail("vision", m->be);
        ms[r] = bench_now_ms() - s;
    }
    double vision_ms = bench_median(ms, reps);
    printf("vision tower, 2-frame 1008x560 chunk (2880 patches -> 720 tokens): %8.2f ms\n",
           vision_ms);

    /* prefill of one chunk on the cache (rolled back after each run) */
    for (int r = 0; r < reps; r++) {
        b.c->n_cached = cache;
        double s = bench_now_ms();
        if (forward(&b, CHUNK_TOKENS, b.np / 4)) return fail("prefill", m->be);
        ms[r] = bench_now_ms() - s;
    }
    double prefill_ms = bench_median(ms, reps);
    printf("prefill, %d tokens (720 vision rows) on a %lld-token cache:     %8.2f ms\n",
           CHUNK_TOKENS, (long long)cache, prefill_ms);

    /* whole chunk at the same depth */
    for (int r = 0; r < reps; r++) {
        b.c->n_cached = cache;
        double s = bench_now_ms();
        if (chunk(&b, steps)) return fail("chunk", m->be);
        ms[r] = bench_now_ms() - s;
    }
    double chunk_ms = bench_median(ms, reps);
    printf("whole chunk (vision + prefill + %d decode steps):               %8.2f ms\n", steps,
           chunk_ms);

    /* decode at `decode_at`: fill the cache that far, then steps tokens per run */
    b.c->n_cached = cache;
    while (b.c->n_cached < decode_at) {
        int64_t n = decode_at - b.c->n_cached;
        if (forward(&b, n < CHUNK_TOKENS ? n : CHUNK_TOKENS, 0)) return fail("filling", m->be);
    }
    for (int r = 0; r < reps; r++) {
        b.c->n_cached = decode_at;
        double s = bench_now_ms();
        for (int k = 0; k < steps; k++)
            if (forward(&b, 1, 0)) return fail("decode", m->be);
        ms[r] = (bench_now_ms() - s) / steps;
    }
    double decode_ms = bench_median(ms, reps);
    printf("decode at a %lld-token cache:                                   %8.3f ms/token\n",
           (long long)decode_at, decode_ms);

    /* batched decode: B streams, each at a decode_at-token cache, one forward per step
     * (what vlm_batch_push_chunks runs).  The caches' contents are not filled (only the
     * time is measured).  A stream's second costs its vision and prefill plus `steps`
     * shared decode steps, so B streams are real-time while
     * B * (vision + prefill) + steps * step(B) <= 1000 ms. */
    enum { MAXB = 32 };
    int batch_n[8], n_batch_sizes = 0, rt_streams = 0;
    double batch_ms[8];
    {
        vlm_ctx *cs[MAXB] = {0}, *bc = NULL;
        float *lg[MAXB];
        int32_t toks[MAXB];
        float ps[MAXB];
        vlm_ctx_params sp = {.n_ctx = decode_at + steps, .n_batch = 1, .n_logits = 1,
                             .n_patches = 0};
        vlm_ctx_params bp = {.n_ctx = MAXB, .n_batch = MAXB, .n_logits = MAXB, .n_patches = 0};
        int have = 0;
        if (vlm_ctx_new(m, &bp, &bc, err)) {
            fprintf(stderr, "bench-gpu: batch context: %s\n", err);
            return 1;
        }
        for (int B = 1; B <= MAXB; B *= 2) {
            for (; have < B; have++) {
                if (vlm_ctx_new(m, &sp, &cs[have], err)) break;
                lg[have] = b.logits;
            }
            if (have < B) {
                printf("batched decode: stopped at %d streams: %s\n", B, err);
                break;
            }
            int breps = reps < 3 ? reps : 3;
            for (int r = 0; r < breps; r++) {
                for (int k = 0; k < B; k++) cs[k]->n_cached = decode_at;
                double s = bench_now_ms();
                for (int step = 0; step < steps; step++) {
                    for (int k = 0; k < B; k++) {
                        toks[k] = (int32_t)((step * 17 + k * 101) % 150000);
                        ps[k] = (float)(decode_at + step);
                    }
                    if (vlm_llm_decode_batch(bc, cs, toks, ps, B, lg))
                        return fail("batched decode", m->be);
                }
                ms[r] = (bench_now_ms() - s) / steps;
            }
            double step_ms = bench_median(ms, breps);
            batch_n[n_batch_sizes] = B;
            batch_ms[n_batch_sizes++] = step_ms;
            double second = B * (vision_ms + prefill_ms) + steps * step_ms;
            if (second <= 1000.0) rt_streams = B;
            printf("batched decode, %2d streams at %lld-token caches: %8.3f ms/step "
                   "(%.0f tokens/s); a second of all of them: %.0f ms\n", B,
                   (long long)decode_at, step_ms, 1e3 * B / step_ms, second);
        }
        for (int k = 0; k < have; k++) vlm_ctx_free(cs[k]);
        vlm_ctx_free(bc);
    }

    vlm_cuda_ceilings ceil;
    if (vlm_cuda_measure_ceilings(m->be, &ceil, err)) {
        fprintf(stderr, "bench-gpu: %s\n", err);
        return 1;
    }
    printf("ceilings on %s (sm_%d%d, %d SMs, %.0f GiB): device copy %.0f GB/s, bf16 GEMM "
           "8192^3 %.0f TFLOP/s\n", ceil.gpu, ceil.cc_major, ceil.cc_minor, ceil.n_sm,
           ceil.mem_gib, ceil.copy_gbps, ceil.gemm_tflops);

    /* work done, from the dims */
    double d = (double)cfg.hidden, I = (double)cfg.intermediate, L = (double)cfg.n_layers;
    double H = (double)cfg.n_heads, KVH = (double)cfg.n_kv_heads, hd = (double)cfg.head_dim;
    double layer_params = d * H * hd * 2 + d * KVH * hd * 2 + 3 * d * I;
    double head_params = d * (double)cfg.vocab;
    double vh = 1280, vi = 3420, np = (double)b.np, nt = np / 4;
    double vblock = 4 * vh * vh + 3 * vh * vi;
    double vision_flop = 2 * np * (vblock * 32 + 1176 * vh) +
                         2 * nt * (4 * vh * 4 * vh + 4 * vh * d) +
                         4 * np * 16 * 80 * (28 * 64.0 + 4 * np); /* window / full attn */
    double n = CHUNK_TOKENS, keys = (double)cache + (n + 1) / 2;
    double prefill_flop = 2 * n * layer_params * L + 4 * n * keys * H * hd * L + 2 * head_params;
    double decode_bytes = 2 * (layer_params * L + head_params) +
                          2 * (double)decode_at * KVH * hd * 4 * L; /* bf16 weights, f32 K+V */
    double vision_tf = vision_flop / (vision_ms * 1e9);
    double prefill_tf = prefill_flop / (prefill_ms * 1e9);
    double decode_gbs = decode_bytes / (decode_ms * 1e6);
    printf("achieved: vision %.0f TFLOP/s (%.0f%% of the GEMM ceiling), prefill %.0f TFLOP/s "
           "(%.0f%%), decode %.0f GB/s (%.0f%% of the copy ceiling; %.2f GB read per token)\n",
           vision_tf, 100 * vision_tf / ceil.gemm_tflops, prefill_tf,
           100 * prefill_tf / ceil.gemm_tflops, decode_gbs, 100 * decode_gbs / ceil.copy_gbps,
           decode_bytes / 1e9);
    int streams = chunk_ms > 0 ? (int)(1000.0 / chunk_ms) : 0;

    char v[6][32], r[3][48], lbl[3][80];
    snprintf(v[0], sizeof v[0], "%.2f ms", vision_ms);
    snprintf(v[1], sizeof v[1], "%.2f ms", prefill_ms);
    snprintf(v[2], sizeof v[2], "%.3f ms", decode_ms);
    snprintf(v[3], sizeof v[3], "%.2f ms", chunk_ms);
    snprintf(v[4], sizeof v[4], "%d", streams);
    snprintf(v[5], sizeof v[5], "%d", rt_streams);
    snprintf(r[0], sizeof r[0], "%.0f TFLOP/s (%.0f%% of GEMM)", vision_tf,
             100 * vision_tf / ceil.gemm_tflops);
    snprintf(r[1], sizeof r[1], "%.0f TFLOP/s (%.0f%% of GEMM)", prefill_tf,
             100 * prefill_tf / ceil.gemm_tflops);
    snprintf(r[2], sizeof r[2], "%.0f GB/s (%.0f%% of copy)", decode_gbs,
             100 * decode_gbs / ceil.copy_gbps);
    snprintf(lbl[0], sizeof lbl[0], "prefill, %d tokens on a %lld-token cache", CHUNK_TOKENS,
             (long long)cache);
    snprintf(lbl[1], sizeof lbl[1], "decode at a %lld-token cache, per token",
             (long long)decode_at);
    snprintf(lbl[2], sizeof lbl[2], "whole chunk: vision + prefill + %d decode steps", steps);
    printf("\n== %s dims, random bf16 weights, %s: ceilings %.0f GB/s copy, %.0f TFLOP/s "
           "bf16 GEMM\n", dims, ceil.gpu, ceil.copy_gbps, ceil.gemm_tflops);
    const char *fmt = "| %-50s | %-11s | %-14s | %-27s |\n";
    printf(fmt, "measure", "value", "target (7B)", "achieved vs ceiling");
    printf(fmt, "--------------------------------------------------", "-----------",
           "--------------", "---------------------------");
    printf(fmt, "vision tower, 2880 patches -> 720 tokens", v[0], "", r[0]);
    printf(fmt, lbl[0], v[1], "", r[1]);
    printf(fmt, lbl[1], v[2], "<= 4.5 ms", r[2]);
    printf(fmt, lbl[2], v[3], "<= 120 ms", "");
    printf(fmt, "streams in real time (1 chunk/s, no batching)", v[4], "", "");
    printf(fmt, "streams in real time, decode batched (estimate)", v[5], ">= 16", "");
    for (int k = 0; k < n_batch_sizes; k++) {
        char l[64], val[32];
        snprintf(l, sizeof l, "batched decode step, %d streams", batch_n[k]);
        snprintf(val, sizeof val, "%.3f ms", batch_ms[k]);
        printf(fmt, l, val, "", "");
    }
    free(b.ids);
    free(b.slots);
    free(b.pos);
    free(b.logits);
    free(b.pix);
    vlm_ctx_free(b.c);
    vlm_model_free(m);
    return 0;
}

#else

int main(void) {
    printf("bench-gpu: skipped: built without CUDA (nvcc was not found at build time)\n");
    return 0;
}

#endif
