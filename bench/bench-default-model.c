/* bench-default-model.c — per-chunk time of the shipped default model (models/default)
 * on this machine: one streaming session per line, 60 one-second chunks of a drawn moving
 * ball (the model answers with its usual ~9 tokens), the first 10 chunks not counted.
 * Lines: the daemon's path (frames at the model's size, as GStreamer's videoscale gives
 * them, used as they are: frames_at_model_size) and the CLI's (320x180 frames, the size
 * of the test source and of the accuracy test's clips, resized by the engine), both with
 * the shipped config's policy, StreamingVLM's 16/16/512/512, each with 1 thread and all
 * cores.  Prints the median
 * and 90th percentile of the total, and the median vision / prefill / decode split;
 * then, with all cores, 4, 8 and 16 streams batched as the daemon batches them, with
 * their prefills alone and together (the time of each second's batched push).
 * Figures only, never pass/fail; prints a note and exits 0 when the model is missing.
 * Usage: bench-default-model [MODEL_DIR] [CHUNKS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "vlm.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of v[0..n) (sorts a copy). */
static double quantile(const double *v, int n, double q) {
    double *c = malloc(sizeof(double) * (size_t)n);
    memcpy(c, v, sizeof(double) * (size_t)n);
    qsort(c, (size_t)n, sizeof(double), cmp_double);
    double m = c[(int)(q * (n - 1) + 0.5)];
    free(c);
    return m;
}

/* A red ball (radius r) at (x, y) on blue, into rgb (w x h). */
static void draw(uint8_t *rgb, int64_t w, int64_t h, double x, double y, double r) {
    for (int64_t j = 0; j < h; j++)
        for (int64_t i = 0; i < w; i++) {
            uint8_t *p = rgb + (j * w + i) * 3;
            int in = (i - x) * (i - x) + (j - y) * (j - y) <= r * r;
            p[0] = in ? 255 : 0;
            p[1] = 0;
            p[2] = in ? 0 : 255;
        }
}

static int bench(vlm_engine *e, const char *label, int64_t w, int64_t h, bool at_model_size,
                 int64_t V, int64_t S, int chunks) {
    char err[VLM_ERR_LEN];
    vlm_policy p;
    vlm_policy_default(e, &p);
    p.vision_window = p.text_rounds = V;
    p.prev_sink = p.prev_window = S;
    vlm_session_params sp = {.frame_width = w, .frame_height = h,
                             .frames_at_model_size = at_model_size};
    vlm_session *s = NULL;
    if (vlm_session_new(e, &p, &sp, &s, err)) {
        fprintf(stderr, "bench-default-model: %s\n", err);
        return 1;
    }
    uint8_t *rgb[2] = {malloc((size_t)(w * h * 3)), malloc((size_t)(w * h * 3))};
    double *tot = malloc(sizeof(double) * (size_t)chunks), *vis = malloc(sizeof(double) * (size_t)chunks);
    double *pre = malloc(sizeof(double) * (size_t)chunks), *dec = malloc(sizeof(double) * (size_t)chunks);
    int n = 0;
    int64_t toks = 0;
    vlm_chunk_result res;
    for (int i = 0; i < chunks; i++) {
        for (int f = 0; f < 2; f++) {
            double t = i + 0.5 * f;
            draw(rgb[f], w, h, w * (0.5 + 0.4 * ((i / 4) % 2 ? -1 : 1) * (t - (i / 4) * 4) / 4),
                 h * 0.5, w / 64.0);
        }
        vlm_frame fr[2] = {{rgb[0], w, h, w * 3}, {rgb[1], w, h, w * 3}};
        if (vlm_session_push_chunk(s, fr, i, i + 1, &res, err)) {
            fprintf(stderr, "bench-default-model: %s\n", err);
            break;
        }
        if (i < 10) continue;
        tot[n] = res.ms_total;
        vis[n] = res.ms_vision;
        pre[n] = res.ms_prefill;
        dec[n] = res.ms_decode;
        toks += res.n_generated;
        n++;
    }
    if (n > 0)
        printf("  %-44s %7.1f ms median, %7.1f p90 (vision %.1f, prefill %.1f, decode %.1f; "
               "%.1f tokens) \"%s\"\n", label, quantile(tot, n, 0.5), quantile(tot, n, 0.9),
               quantile(vis, n, 0.5), quantile(pre, n, 0.5), quantile(dec, n, 0.5),
               (double)toks / n, res.text);
    free(rgb[0]);
    free(rgb[1]);
    free(tot);
    free(vis);
    free(pre);
    free(dec);
    vlm_session_free(s);
    return 0;
}

/* N streams of the daemon's path served as the daemon serves them: one batched push a
 * second (the decode steps in one forward; the prefills together up to `budget` tokens,
 * 0: each alone).  Prints the median and p90 time of a push over the chunks after 10:
 * N streams are real time while it stays under 1000 ms. */
static int bench_batch(vlm_engine *e, int64_t w, int64_t h, int N, int64_t budget, int chunks) {
    enum { MAXN = 16 };
    char err[VLM_ERR_LEN];
    vlm_policy p;
    vlm_policy_default(e, &p);
    vlm_session_params sp = {.frame_width = w, .frame_height = h, .frames_at_model_size = true};
    vlm_session *s[MAXN] = {0};
    vlm_batch *b = NULL;
    uint8_t *rgb = malloc((size_t)(MAXN * 2 * w * h * 3));
    double *ms = malloc(sizeof(double) * (size_t)chunks), pre = 0;
    int rc = N > MAXN || !rgb || !ms || vlm_batch_new(e, N, budget, &b, err);
    for (int k = 0; k < N && !rc; k++) rc = vlm_session_new(e, &p, &sp, &s[k], err);
    int n = 0;
    for (int i = 0; i < chunks && !rc; i++) {
        vlm_frame fr[MAXN][2];
        double t0[MAXN], t1[MAXN];
        vlm_chunk_result res[MAXN];
        int rcs[MAXN];
        char errs[MAXN][VLM_ERR_LEN];
        for (int k = 0; k < N; k++) {
            for (int f = 0; f < 2; f++) {
                uint8_t *px = rgb + (size_t)((2 * k + f) * w * h * 3);
                double t = i + 0.5 * f + 1.7 * k; /* each stream at its own place */
                draw(px, w, h, w * (0.5 + 0.4 * ((int)t / 4 % 2 ? -1 : 1) * (t - (int)t / 4 * 4) / 4),
                     h * 0.5, w / 64.0);
                fr[k][f] = (vlm_frame){px, w, h, w * 3};
            }
            t0[k] = i;
            t1[k] = i + 1;
        }
        double st = bench_now_ms();
        if ((rc = vlm_batch_push_chunks(b, s, N, (const vlm_frame(*)[2])fr, t0, t1, res, rcs,
                                        errs)))
            snprintf(err, sizeof err, "%s", errs[0]);
        if (i < 10) continue;
        ms[n++] = bench_now_ms() - st;
        pre += res[0].ms_prefill;
    }
    if (rc) fprintf(stderr, "bench-default-model: %s\n", err);
    else if (n > 0)
        printf("  %2d streams, prefills %-9s %7.1f ms a second median, %7.1f p90 (stream 0's "
               "prefill %.1f ms)\n", N, budget ? "together" : "alone", quantile(ms, n, 0.5),
               quantile(ms, n, 0.9), pre / n);
    for (int k = 0; k < N; k++) vlm_session_free(s[k]);
    vlm_batch_free(b);
    free(rgb);
    free(ms);
    return rc;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "models/default";
    int chunks = argc > 2 ? atoi(argv[2]) : 60;
    if (chunks < 20) chunks = 20;
    char path[1100], err[VLM_ERR_LEN];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (access(path, R_OK) != 0) {
        printf("bench-default-model: %s is missing (make default-model); skipped\n", path);
        return 0;
    }
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int threads[2] = {1, cores};
    for (int k = 0; k < (cores > 1 ? 2 : 1); k++) {
        vlm_engine *e = NULL;
        vlm_engine_params ep = {.backend = "cpu", .n_threads = threads[k]};
        if (vlm_engine_load(dir, &ep, &e, err)) {
            fprintf(stderr, "bench-default-model: %s\n", err);
            return 1;
        }
        int64_t fw = 0, fh = 0;
        vlm_engine_frame_size(e, 1280, 720, &fw, &fh, err);
        printf("bench-default-model: %s, %d thread%s, per 1-s chunk (%d chunks after 10):\n",
               vlm_engine_describe(e), threads[k], threads[k] > 1 ? "s" : "", chunks - 10);
        char label[96];
        snprintf(label, sizeof label, "daemon: %lldx%lld frames, policy 16/16/512/512",
                 (long long)fw, (long long)fh);
        bench(e, label, fw, fh, true, 16, 512, chunks);
        bench(e, "cli: 320x180 frames, policy 16/16/512/512", 320, 180, false, 16, 512, chunks);
        if (threads[k] == cores) { /* streams in batches: all cores only */
            printf("  batched as the daemon serves them (%lldx%lld frames, shipped policy):\n",
                   (long long)fw, (long long)fh);
            for (int N = 4; N <= 16; N *= 2)
                for (int64_t budget = 0; budget <= 1024; budget += 1024)
                    if (bench_batch(e, fw, fh, N, budget, chunks)) return 1;
        }
        vlm_engine_free(e);
    }
    return 0;
}
