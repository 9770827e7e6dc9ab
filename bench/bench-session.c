/* bench-session.c — bounded by construction: 10,000 one-second chunks through one
 * streaming session on the tiny model (build/models/tiny-random) with the policy scaled
 * down (V 4, T 4, S 16, W 32, M 8) and 112x112 frames.  Prints the retained length and
 * resident memory at checkpoints and the median per-chunk time of the first and last
 * 100 chunks: all three must level off.  Figures only, never pass/fail.
 * Usage: bench-session [MODEL_DIR] [CHUNKS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vlm.h"

static long rss_kb(void) {
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n) {
    double *c = malloc(sizeof(double) * (size_t)n);
    memcpy(c, v, sizeof(double) * (size_t)n);
    qsort(c, (size_t)n, sizeof(double), cmp_double);
    double m = c[n / 2];
    free(c);
    return m;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/models/tiny-random";
    int chunks = argc > 2 ? atoi(argv[2]) : 10000;
    if (chunks < 200) chunks = 200;
    char err[VLM_ERR_LEN];
    vlm_engine *e = NULL;
    vlm_engine_params ep = {.backend = "cpu", .n_threads = 1};
    if (vlm_engine_load(dir, &ep, &e, err)) {
        fprintf(stderr, "bench-session: %s\n", err);
        return 1;
    }
    vlm_policy p;
    vlm_policy_default(e, &p);
    p.vision_window = 4;
    p.text_rounds = 4;
    p.prev_sink = 16;
    p.prev_window = 32;
    p.max_new_tokens = 8;
    int64_t w = 112, h = 112;
    vlm_session_params sp = {.frame_width = w, .frame_height = h,
                             .previous_text = "A long test stream."};
    vlm_session *s = NULL;
    if (vlm_session_new(e, &p, &sp, &s, err)) {
        fprintf(stderr, "bench-session: %s\n", err);
        return 1;
    }
    uint8_t *px = malloc((size_t)(2 * w * h * 3));
    double *ms = malloc(sizeof(double) * (size_t)chunks);
    printf("bench-session: %s, 1 thread, %d chunks of 2 frames %lldx%lld, policy V4 T4 S16 "
           "W32 M8\n", vlm_engine_describe(e), chunks, (long long)w, (long long)h);
    printf("%8s %10s %10s %10s\n", "chunk", "retained", "cached", "rss_kb");
    long rss_warm = 0;
    for (int i = 0; i < chunks; i++) {
        for (int64_t k = 0; k < 2 * w * h * 3; k++) px[k] = (uint8_t)((k * 7 + i * 31) >> 3);
        vlm_frame f[2] = {{px, w, h, 3 * w}, {px + w * h * 3, w, h, 3 * w}};
        vlm_chunk_result res;
        if (vlm_session_push_chunk(s, f, i, i + 1, &res, err)) {
            fprintf(stderr, "bench-session: chunk %d: %s\n", i, err);
            return 1;
        }
        ms[i] = res.ms_total;
        if (i == 100) rss_warm = rss_kb();
        if (i == 0 || i == 10 || i == 100 || i == 1000 || (i + 1) % 2500 == 0)
            printf("%8d %10lld %10lld %10ld\n", i + 1, (long long)res.n_retained,
                   (long long)res.n_cached, rss_kb());
    }
    printf("median ms/chunk: first 100 %.2f, last 100 %.2f\n", median(ms, 100),
           median(ms + chunks - 100, 100));
    printf("rss after 100 chunks %ld kB, at the end %ld kB\n", rss_warm, rss_kb());
    free(px);
    free(ms);
    vlm_session_free(s);
    vlm_engine_free(e);
    return 0;
}
