/* bench-gpu.c — the engine on the CUDA backend at Qwen2.5-VL-7B (or 3B) dims, random
 * bf16 weights made in memory (no download), against ceilings measured in the same run.
 *
 * Prints: vision tower ms for a 2-frame 1008x560 chunk (grid 1x40x72: 2880 patches ->
 * 720 tokens); prefill ms for a 745-token chunk (720 vision rows scattered in) on a
 * ~13k-token cache; decode ms/token at a ~14k cache, each step's token drawn on the
 * device and its 4 bytes copied back, as the session does, with the step launched op by
 * op and as a CUDA graph; whole-chunk ms (vision + prefill + 20 decode steps); the
 * achieved TFLOP/s and GB/s against a device-to-device copy and a large bf16 GEMM; then
 * B = 1, 2, 4 ... 32 streams served as the daemon serves them (each second: every
 * stream's vision and prefill, then their decode steps batched into one forward), with
 * the p50/p99 of that second's length over the runs — every stream's chunk is done by
 * its end, so B streams are real time while it stays under 1000 ms; 4 streams' chunk
 * prefills one at a time against in one forward (batch_prefill_tokens); and a short
 * table last.  Figures only, never pass/fail: without CUDA or a GPU it says so and exits 0.
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
    float *pos, *pix;
    int64_t np;
    int64_t grid[1][3];
} bench;

/* n random token ids and their positions (= cache index from p0) into b's arrays, with
 * n_vis vision slots from token 10 */
static void fill_tokens(bench *b, int64_t p0, int64_t n, int64_t n_vis) {
    for (int64_t i = 0; i < n; i++) {
        b->ids[i] = (int32_t)((p0 + i) * 7919 % 150000);
        b->pos[i] = b->pos[n + i] = b->pos[2 * n + i] = (float)(p0 + i);
    }
    for (int64_t i = 0; i < n_vis; i++) b->slots[i] = (int32_t)(10 + i);
}

/* forward n random tokens at the end of c's cache, the vision rows of vis scattered in;
 * the logits stay on the device */
static int forward_in(bench *b, vlm_ctx *c, int64_t n, int64_t n_vis) {
    fill_tokens(b, c->n_cached, n, n_vis);
    return vlm_llm_forward(c, b->ids, n, b->pos, b->slots, n_vis, b->c->vout, 1, NULL);
}

static int forward(bench *b, int64_t n, int64_t n_vis) {
    return forward_in(b, b->c, n, n_vis);
}

/* the next token from logits row `row` of `from`, drawn on the device as the session
 * draws it (greedy after StreamingVLM's 1.05 repetition penalty over c's seen ids) and
 * copied back: a decode step's only wait */
static int draw(vlm_ctx *c, vlm_ctx *from, int64_t row, int32_t *tok) {
    int rc = vlm_sample(c->be, c->token, vlm_tensor_rows(from->logits, row, 1), &c->seen, true, 1,
                        1.0f, 1.0f, 1.05f, 0.0);
    return rc ? rc : vlm_backend_get(c->be, tok, c->token);
}

static int step(bench *b) {
    int32_t tok;
    int rc = forward(b, 1, 0);
    return rc ? rc : draw(b->c, b->c, 0, &tok);
}

static int vision(bench *b) {
    int64_t n_tok = 0;
    return vlm_vision_forward(b->c, b->pix, (const int64_t(*)[3])b->grid, 1, &n_tok);
}

/* the whole chunk: vision, prefill with its rows scattered in, `steps` decode steps */
static int chunk(bench *b, int steps) {
    int32_t tok;
    int rc = vision(b);
    if (!rc) rc = forward(b, CHUNK_TOKENS, b->np / 4);
    if (!rc) rc = draw(b->c, b->c, 0, &tok);
    for (int s = 0; s < steps && !rc; s++) rc = step(b);
    return rc;
}

/* `steps` decode steps of B contexts in one forward each (their next tokens in toks),
 * every token drawn on the device as the session draws it. */
static int batched_steps(vlm_ctx *bc, vlm_ctx **cs, int B, int32_t *toks, int steps) {
    float ps[64] = {0};
    for (int st = 0; st < steps; st++) {
        for (int k = 0; k < B; k++) ps[k] = (float)cs[k]->n_cached;
        int rc = bench_decode_batch(bc, cs, toks, ps, B, NULL);
        for (int k = 0; k < B && !rc; k++) rc = draw(cs[k], bc, k, &toks[k]);
        if (rc) return rc;
    }
    return 0;
}

/* Decode ms/token at `at` cached tokens over `steps` steps, median of reps. */
static double time_decode(bench *b, int64_t at, int steps, int reps, int *rc) {
    double ms[64];
    for (int r = 0; r < reps; r++) {
        b->c->n_cached = at;
        double s = bench_now_ms();
        for (int k = 0; k < steps && !*rc; k++) *rc = step(b);
        ms[r] = (bench_now_ms() - s) / steps;
    }
    return bench_median(ms, reps);
}

/* the engine's warnings and errors (a CUDA failure, graphs turned off while recording a
 * step: the "graph" figures are then op by op) on stderr, which gpu-check.sh keeps */
static void log_warn(vlm_log_level level, const char *msg, void *user) {
    (void)user;
    if (level <= VLM_LOG_WARN) fprintf(stderr, "bench-gpu: %s: %s\n",
                                       level == VLM_LOG_ERROR ? "error" : "warning", msg);
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
    vlm_set_log(log_warn, NULL);
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
        if (vision(&b) || vlm_backend_synchronize(m->be))
            return fail("vision", m->be);
        ms[r] = bench_now_ms() - s;
    }
    double vision_ms = bench_median(ms, reps);
    printf("vision tower, 2-frame 1008x560 chunk (2880 patches -> 720 tokens): %8.2f ms\n",
           vision_ms);

    /* prefill of one chunk on the cache (rolled back after each run), up to its token */
    for (int r = 0; r < reps; r++) {
        b.c->n_cached = cache;
        int32_t tok;
        double s = bench_now_ms();
        if (forward(&b, CHUNK_TOKENS, b.np / 4) || draw(b.c, b.c, 0, &tok))
            return fail("prefill", m->be);
        ms[r] = bench_now_ms() - s;
    }
    double prefill_ms = bench_median(ms, reps);
    printf("prefill, %d tokens (720 vision rows) on a %lld-token cache:     %8.2f ms\n",
           CHUNK_TOKENS, (long long)cache, prefill_ms);

    /* decode at `decode_at`: fill the cache that far, then steps tokens per run */
    b.c->n_cached = cache;
    while (b.c->n_cached < decode_at) {
        int64_t n = decode_at - b.c->n_cached;
        if (forward(&b, n < CHUNK_TOKENS ? n : CHUNK_TOKENS, 0)) return fail("filling", m->be);
    }
    int rc = 0;
    vlm_cuda_set_graphs(m->be, false);
    double decode_ops_ms = time_decode(&b, decode_at, steps, reps, &rc);
    vlm_cuda_set_graphs(m->be, true);
    double decode_graph_ms = rc ? 0 : time_decode(&b, decode_at, steps, reps, &rc);
    if (rc) return fail("decode", m->be);
    /* the rest runs with the faster of the two (the daemon: graphs with VLM_CUDA_GRAPHS=1) */
    bool graphs = decode_graph_ms < decode_ops_ms;
    vlm_cuda_set_graphs(m->be, graphs);
    double decode_ms = graphs ? decode_graph_ms : decode_ops_ms;
    printf("decode at a %lld-token cache, op by op:                        %8.3f ms/token\n",
           (long long)decode_at, decode_ops_ms);
    printf("decode at a %lld-token cache, each step one CUDA graph:        %8.3f ms/token\n",
           (long long)decode_at, decode_graph_ms);

    /* whole chunk at the prefill's depth */
    for (int r = 0; r < reps; r++) {
        b.c->n_cached = cache;
        double s = bench_now_ms();
        if (chunk(&b, steps)) return fail("chunk", m->be);
        ms[r] = bench_now_ms() - s;
    }
    double chunk_ms = bench_median(ms, reps);
    printf("whole chunk (vision + prefill + %d decode steps):               %8.2f ms\n", steps,
           chunk_ms);

    /* B streams served as the daemon serves them (vlm_batch_push_chunks): each second,
     * every stream's vision and prefill one after the other (into its own context at a
     * `cache`-token depth), then `steps` decode steps of all of them in one forward,
     * each stream's token drawn on the device.  Every chunk is done when the second's
     * work is, so its length is each stream's chunk latency.  The caches' contents are
     * not filled (only the time is measured). */
    enum { MAXB = 32 };
    int batch_n[8], n_batch_sizes = 0, rt_streams = 0;
    double batch_p50[8], batch_p99[8], batch_step[8], graph_cmp[4][2];
    int graph_cmp_b[4], n_graph_cmp = 0;
    double prefill_group[2] = {0, 0}; /* 4 chunk prefills: one at a time, in one forward */
    {
        vlm_ctx *cs[MAXB] = {0}, *bc = NULL;
        int32_t toks[MAXB];
        vlm_ctx_params sp = {.n_ctx = cache + CHUNK_TOKENS + steps, .n_batch = CHUNK_TOKENS,
                             .n_logits = 1, .n_patches = 0};
        vlm_ctx_params bp = {.n_ctx = MAXB, .n_batch = MAXB, .n_logits = MAXB, .n_patches = 0};
        int have = 0, sreps = reps < 5 ? 5 : reps;
        if (vlm_ctx_new(m, &bp, &bc, err)) {
            fprintf(stderr, "bench-gpu: batch context: %s\n", err);
            return 1;
        }
        for (int B = 1; B <= MAXB; B *= 2) {
            for (; have < B; have++)
                if (vlm_ctx_new(m, &sp, &cs[have], err)) break;
            if (have < B) {
                printf("batched streams: stopped at %d streams: %s\n", B, err);
                break;
            }
            double sec[64], dec = 0;
            for (int r = 0; r < sreps; r++) {
                double s = bench_now_ms();
                for (int k = 0; k < B; k++) {
                    cs[k]->n_cached = cache;
                    if (vision(&b) || forward_in(&b, cs[k], CHUNK_TOKENS, b.np / 4) ||
                        draw(cs[k], cs[k], 0, &toks[k]))
                        return fail("a stream's vision and prefill", m->be);
                }
                double sd = bench_now_ms();
                if (batched_steps(bc, cs, B, toks, steps)) return fail("batched decode", m->be);
                dec += (bench_now_ms() - sd) / steps;
                sec[r] = bench_now_ms() - s;
            }
            double p50 = bench_median(sec, sreps), p99 = sec[0];
            for (int r = 1; r < sreps; r++) p99 = sec[r] > p99 ? sec[r] : p99;
            batch_n[n_batch_sizes] = B;
            batch_p50[n_batch_sizes] = p50;
            batch_p99[n_batch_sizes] = p99;
            batch_step[n_batch_sizes++] = dec / sreps;
            if (p99 <= 1000.0) rt_streams = B;
            printf("%2d streams: a second's work (every chunk done) p50 %7.1f ms, p99 %7.1f ms "
                   "(max of %d); batched decode step %.3f ms\n", B, p50, p99, sreps,
                   dec / sreps);
        }
        /* the batched step alone, op by op against recorded as a graph (one key per
         * batch size), for the batch sizes the contexts allow */
        for (int B = 4; B <= have; B *= 2) {
            double t[2];
            for (int g = 0; g < 2; g++) {
                vlm_cuda_set_graphs(m->be, g == 1);
                for (int k = 0; k < B; k++) cs[k]->n_cached = cache + CHUNK_TOKENS;
                double s = bench_now_ms();
                if (batched_steps(bc, cs, B, toks, steps)) return fail("batched decode", m->be);
                t[g] = (bench_now_ms() - s) / steps;
            }
            printf("batched decode step, %2d streams: op by op %.3f ms, as a graph %.3f ms\n", B,
                   t[0], t[1]);
            if (n_graph_cmp < 4) {
                graph_cmp_b[n_graph_cmp] = B;
                graph_cmp[n_graph_cmp][0] = t[0];
                graph_cmp[n_graph_cmp++][1] = t[1];
            }
        }
        vlm_cuda_set_graphs(m->be, graphs);
        /* PG streams' chunk prefills one at a time against in one forward (the daemon's
         * batch_prefill_tokens set to at least PG chunks) */
        enum { PG = 4 };
        vlm_ctx *pc = NULL;
        vlm_ctx_params pp = {.n_ctx = PG * CHUNK_TOKENS, .n_batch = PG * CHUNK_TOKENS,
                             .n_logits = PG, .n_patches = 0};
        if (have >= PG && !vlm_ctx_new(m, &pp, &pc, err)) {
            vlm_llm_seq seqs[PG];
            double pms[2][16];
            int nr = reps < 1 ? 1 : reps < 16 ? reps : 16;
            fill_tokens(&b, cache, CHUNK_TOKENS, b.np / 4); /* every context at `cache` */
            for (int k = 0; k < PG; k++)
                seqs[k] = (vlm_llm_seq){.c = cs[k], .ids = b.ids, .pos = b.pos,
                                        .n = CHUNK_TOKENS, .vis_slots = b.slots,
                                        .n_vis = b.np / 4, .vis = b.c->vout};
            for (int rr = 0; rr < nr; rr++)
                for (int g = 0; g < 2; g++) {
                    for (int k = 0; k < PG; k++) cs[k]->n_cached = cache;
                    double s = bench_now_ms();
                    int prc = 0;
                    for (int k = 0; k < PG && !g && !prc; k++)
                        prc = vlm_llm_forward(cs[k], b.ids, CHUNK_TOKENS, b.pos, b.slots,
                                             b.np / 4, b.c->vout, 1, NULL);
                    if (g) prc = vlm_llm_forward_batch(pc, seqs, PG, 0, NULL);
                    if (prc || vlm_backend_synchronize(m->be))
                        return fail("grouped prefills", m->be);
                    pms[g][rr] = bench_now_ms() - s;
                }
            prefill_group[0] = bench_median(pms[0], nr);
            prefill_group[1] = bench_median(pms[1], nr);
            printf("%d prefills of %d tokens on %lld-token caches: one at a time %.2f ms, in "
                   "one forward %.2f ms\n", PG, CHUNK_TOKENS, (long long)cache,
                   prefill_group[0], prefill_group[1]);
        } else if (have >= PG) {
            printf("grouped prefills: skipped: %s\n", err);
        }
        vlm_ctx_free(pc);
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
    printf(fmt, "streams in real time, decode batched (p99 <= 1 s)", v[5], ">= 16", "");
    for (int k = 0; k < n_batch_sizes; k++) {
        char l[64], val[32], extra[32];
        snprintf(l, sizeof l, "%d streams: chunk latency p50 / p99", batch_n[k]);
        snprintf(val, sizeof val, "%.0f / %.0f ms", batch_p50[k], batch_p99[k]);
        snprintf(extra, sizeof extra, "step %.2f ms", batch_step[k]);
        printf(fmt, l, val, "", extra);
    }
    for (int k = 0; k < n_graph_cmp; k++) {
        char l[64], val[32];
        snprintf(l, sizeof l, "batched step, %d streams: op by op / graph", graph_cmp_b[k]);
        snprintf(val, sizeof val, "%.2f / %.2f ms", graph_cmp[k][0], graph_cmp[k][1]);
        printf(fmt, l, val, "", "");
    }
    if (prefill_group[0] > 0) {
        char val[32];
        snprintf(val, sizeof val, "%.1f / %.1f ms", prefill_group[0], prefill_group[1]);
        printf(fmt, "4 chunk prefills: one at a time / in one forward", val, "", "");
    }
    printf("(decode steps %s; op by op %.3f ms/token, as a graph %.3f ms/token)\n",
           graphs ? "as CUDA graphs" : "op by op", decode_ops_ms, decode_graph_ms);
    free(b.ids);
    free(b.slots);
    free(b.pos);
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
