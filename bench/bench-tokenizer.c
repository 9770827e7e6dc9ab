/* bench-tokenizer.c — encode speed of the byte-level BPE tokenizer (engine/tokenizer.c).
 *
 * Usage: bench-tokenizer [TOKENIZER_JSON]
 * Without an argument it decompresses tests/fixtures/tokenizer/qwen2.5-tokenizer.json.xz
 * (found from the working directory or beside the binary) into a temp file.
 *
 * Encodes a deterministic ~10,000-token English text (sentences of sports commentary
 * prose, picked and varied by a fixed LCG) and prints the real token count, the median and
 * best time of 20 runs, and tokens/s; then the same for decode and the streaming decoder.
 * Figures only: never passes or fails (exit 1 only when it cannot run).
 */
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tokenizer.h"

#define TARGET_TOKENS 10000
#define RUNS 20

static const char *const sentences[] = {
    "The home side opened the second half with a quick pass into the low post, and the "
    "centre turned over his left shoulder for an easy bank shot.",
    "Nobody in the building expected the visitors to keep pace for this long, yet here they "
    "are, trading baskets with the league leaders.",
    "She reads the defence a half-second before anyone else on the floor, which is why the "
    "cross-court pass always seems to arrive on time.",
    "After the timeout, the coach switched to a zone, daring the shooters to beat them from "
    "the corners instead of attacking the rim.",
    "That is his fourth steal of the night, and every one of them has come from anticipating "
    "the lazy swing pass at the top of the key.",
    "The crowd is on its feet now; you can barely hear the public-address announcer over the "
    "noise coming down from the upper deck.",
    "It was a patient possession: three reversals of the ball, a back screen, and finally an "
    "open look from eighteen feet that found nothing but net.",
    "Weather delayed the start by forty minutes, but the pitch has drained well and both "
    "goalkeepers look comfortable with the pace of the surface.",
    "He has been quiet for most of the match, although quiet for him still means two assists "
    "and a shot that rattled the crossbar.",
    "The referee waves play on, judging that the defender got a touch on the ball before the "
    "striker went to ground inside the area.",
    "With the lead down to a single point, every rebound feels enormous, and the bench is "
    "shouting instructions that nobody on the court can hear.",
    "They have won seven of their last ten meetings here, a record built on defence, "
    "rebounding and a stubborn refusal to panic late in games.",
};

static const char *const names[] = {"Curry", "Thompson", "Okafor", "Martinez", "Lindqvist",
                                    "Nakamura", "Adeyemi", "O'Brien", "Kowalski", "Dubois"};

static uint32_t lcg_state = 12345;
static uint32_t lcg(void) {
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state >> 8;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Decompress the vendored tokenizer into path (PATH_MAX); 0 on success. */
static int default_tokenizer(char *path) {
    char xz[PATH_MAX + 64] = "tests/fixtures/tokenizer/qwen2.5-tokenizer.json.xz";
    struct stat st;
    if (stat(xz, &st) != 0) { /* build/bench/bench-tokenizer -> repo root */
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0) return -1;
        exe[n] = 0;
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash) return -1;
            *slash = 0;
            if (up < 2) continue;
            snprintf(xz, sizeof xz, "%s/tests/fixtures/tokenizer/qwen2.5-tokenizer.json.xz",
                     exe);
        }
        if (stat(xz, &st) != 0) return -1;
    }
    snprintf(path, PATH_MAX, "/tmp/bench-tokenizer-XXXXXX.json");
    int fd = mkstemps(path, 5);
    if (fd < 0) return -1;
    close(fd);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "xz -dc '%s' > '%s'", xz, path);
    if (system(cmd) != 0) {
        unlink(path);
        return -1;
    }
    return 0;
}

/* Append sentences (with varied names and numbers) until about TARGET_TOKENS tokens. */
static char *make_text(const vlm_tokenizer *tok, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap);
    int64_t tokens = 0;
    char sent[512];
    while (text && tokens < TARGET_TOKENS) {
        int k;
        switch (lcg() % 4) {
        case 0:
            k = snprintf(sent, sizeof sent, "%s ", sentences[lcg() % 12]);
            break;
        case 1:
            k = snprintf(sent, sizeof sent, "%s has %u points on %u-of-%u shooting. ",
                         names[lcg() % 10], lcg() % 40, lcg() % 15, 15 + lcg() % 10);
            break;
        case 2:
            k = snprintf(sent, sizeof sent, "%s\n\n", sentences[lcg() % 12]);
            break;
        default:
            k = snprintf(sent, sizeof sent, "With %u:%02u left, %s says: \"%s\" ",
                         lcg() % 12, lcg() % 60, names[lcg() % 10], sentences[lcg() % 12]);
            break;
        }
        if (n + (size_t)k + 1 > cap) {
            char *p = realloc(text, cap *= 2);
            if (!p) {
                free(text);
                return NULL;
            }
            text = p;
        }
        memcpy(text + n, sent, (size_t)k + 1);
        n += (size_t)k;
        int64_t c = 0;
        vlm_tokenizer_encode(tok, sent, (size_t)k, NULL, 0, &c, NULL);
        tokens += c;
        if (tokens >= TARGET_TOKENS) /* pieces merge across sentence ends: count the whole */
            vlm_tokenizer_encode(tok, text, n, NULL, 0, &tokens, NULL);
    }
    *len = n;
    return text;
}

int main(int argc, char **argv) {
    char path[PATH_MAX];
    int temp = 0;
    if (argc > 1) {
        snprintf(path, sizeof path, "%s", argv[1]);
    } else if (default_tokenizer(path) == 0) {
        temp = 1;
    } else {
        fprintf(stderr, "bench-tokenizer: cannot decompress "
                        "tests/fixtures/tokenizer/qwen2.5-tokenizer.json.xz; pass a path\n");
        return 1;
    }
    char err[VLM_ERR_LEN];
    vlm_tokenizer *tok = NULL;
    double t0 = now_ms();
    int rc = vlm_tokenizer_load(path, &tok, err);
    double load_ms = now_ms() - t0;
    if (temp) unlink(path);
    if (rc) {
        fprintf(stderr, "bench-tokenizer: %s\n", err);
        return 1;
    }
    size_t len;
    char *text = make_text(tok, &len);
    int64_t n = 0;
    vlm_tokenizer_encode(tok, text, len, NULL, 0, &n, NULL);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    char *out = malloc(len * 2 + 16);
    if (!text || !ids || !out) {
        fprintf(stderr, "bench-tokenizer: out of memory\n");
        return 1;
    }

    double enc[RUNS], dec[RUNS], str[RUNS];
    vlm_tokenizer_encode(tok, text, len, ids, n, &n, NULL); /* warm-up */
    for (int r = 0; r < RUNS; r++) {
        int64_t got;
        t0 = now_ms();
        vlm_tokenizer_encode(tok, text, len, ids, n, &got, NULL);
        enc[r] = now_ms() - t0;

        size_t dl;
        t0 = now_ms();
        vlm_tokenizer_decode(tok, ids, n, 0, out, len * 2 + 16, &dl);
        dec[r] = now_ms() - t0;

        vlm_detok_stream *s;
        vlm_detok_stream_new(tok, 0, &s);
        size_t total = 0;
        t0 = now_ms();
        for (int64_t i = 0; i < n; i++) {
            const char *piece;
            size_t pl;
            vlm_detok_stream_push(s, ids[i], &piece, &pl);
            total += pl;
        }
        str[r] = now_ms() - t0;
        vlm_detok_stream_free(s);
        if (total != dl) fprintf(stderr, "bench-tokenizer: stream and decode differ\n");
    }
    qsort(enc, RUNS, sizeof enc[0], cmp_double);
    qsort(dec, RUNS, sizeof dec[0], cmp_double);
    qsort(str, RUNS, sizeof str[0], cmp_double);
    printf("tokenizer load: %.1f ms (%s)\n", load_ms, argc > 1 ? path : "qwen2.5 fixture");
    printf("text: %zu bytes, %" PRId64 " tokens\n", len, n);
    printf("encode: %.3f ms median, %.3f ms best, %.0f tokens/s (%d runs)\n", enc[RUNS / 2],
           enc[0], (double)n / (enc[RUNS / 2] / 1e3), RUNS);
    printf("decode: %.3f ms median, %.0f tokens/s\n", dec[RUNS / 2],
           (double)n / (dec[RUNS / 2] / 1e3));
    printf("stream decode: %.3f ms median, %.0f tokens/s\n", str[RUNS / 2],
           (double)n / (str[RUNS / 2] / 1e3));
    free(ids);
    free(out);
    free(text);
    vlm_tokenizer_free(tok);
    return 0;
}
