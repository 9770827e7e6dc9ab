/* test-engine-session.c — the streaming session: StreamingVLM's policy on long runs
 * (bounded retained length, structure invariants, T = 1, the off-by-one window),
 * commentary text through the real Qwen2.5 tokenizer, no allocation per chunk, and bad
 * input (frames, prompts, policies, tokenizer files).
 *
 * Uses build/models/tiny-random (made by scripts/make-tiny-model.py: real tokenizer,
 * random weights) and the vendored fixture model tests/fixtures/qwen25vl/base-s0.
 * The golden comparisons with transformers' streaming sessions are in
 * tests/t-check-streams.sh.
 */
#include <dlfcn.h>
#include <stdatomic.h>

#include "session.h"
#include "test.h"

#define TINY "build/models/tiny-random"
#define FIXTURE_MODEL "tests/fixtures/qwen25vl/base-s0/model"

/* ---- a counting allocator: every malloc in this process goes through it ---- */
static atomic_long n_allocs;
static atomic_int counting;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
void *malloc(size_t n) {
    if (counting) atomic_fetch_add(&n_allocs, 1);
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    if (counting) atomic_fetch_add(&n_allocs, 1);
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    if (counting) atomic_fetch_add(&n_allocs, 1);
    return __libc_realloc(p, n);
}
void free(void *p) {
    __libc_free(p);
}
int posix_memalign(void **out, size_t align, size_t n) {
    if (counting) atomic_fetch_add(&n_allocs, 1);
    *out = __libc_memalign(align, n);
    return *out ? 0 : 12;
}

/* the engine's warnings (a CUDA failure, graphs turned off while recording) on stderr */
static void log_warn(vlm_log_level level, const char *msg, void *user) {
    (void)user;
    if (level <= VLM_LOG_WARN) fprintf(stderr, "engine: %s\n", msg);
}

static vlm_engine *load_tiny(void) {
    if (access(TINY "/model.safetensors", R_OK) != 0)
        SKIP("%s missing (make builds it with scripts/make-tiny-model.py)", TINY);
    vlm_engine *e = NULL;
    char err[VLM_ERR_LEN];
    /* TEST_BACKEND=cuda: the batch and draw tests on a GPU (scripts/gpu-check.sh) */
    const char *be = getenv("TEST_BACKEND");
    if (be && *be) vlm_set_log(log_warn, NULL); /* a device's warnings into the GPU log */
    vlm_engine_params ep = {.backend = be && *be ? be : "cpu", .n_threads = 1};
    ASSERT_MSG(vlm_engine_load(TINY, &ep, &e, err) == 0, "%s", err);
    return e;
}

/* A deterministic moving-square frame of w × h. */
static void make_frame(uint8_t *px, int64_t w, int64_t h, int64_t t) {
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            uint8_t *p = px + (y * w + x) * 3;
            bool in = x / 16 == (t % (w / 16)) && y / 16 == (t / 3) % (h / 16);
            p[0] = in ? 250 : (uint8_t)(x * 255 / w);
            p[1] = in ? 20 : (uint8_t)(y * 255 / h);
            p[2] = (uint8_t)(t * 13);
        }
}

static vlm_session *tiny_session(vlm_engine *e, const vlm_policy *p, int64_t w, int64_t h) {
    vlm_session_params sp = {.frame_width = w, .frame_height = h,
                             .previous_text = "A test stream with a moving square."};
    vlm_session *s = NULL;
    char err[VLM_ERR_LEN];
    ASSERT_MSG(vlm_session_new(e, p, &sp, &s, err) == 0, "%s", err);
    return s;
}

static void push(vlm_session *s, uint8_t *px, int64_t w, int64_t h, int64_t i,
                 vlm_chunk_result *res) {
    make_frame(px, w, h, 2 * i);
    make_frame(px + w * h * 3, w, h, 2 * i + 1);
    vlm_frame f[2] = {{px, w, h, 3 * w}, {px + w * h * 3, w, h, 3 * w}};
    char err[VLM_ERR_LEN];
    ASSERT_MSG(vlm_session_push_chunk(s, f, (double)i, (double)i + 1, res, err) == 0,
               "chunk %lld: %s", (long long)i, err);
}

/* The retained sequence has the documented shape (docs/STREAM_FIXTURES.md §4.1). */
static void check_shape(const vlm_session *s) {
    int64_t j = 0;
    while (j < s->n && s->roles[j] == VLM_ROLE_SYSTEM) j++;
    ASSERT(j > 0);
    ASSERT_EQ_INT(s->roles[j], VLM_ROLE_PREV_HEADER);
    while (j < s->n && s->roles[j] == VLM_ROLE_PREV_HEADER) j++;
    while (j < s->n && (s->roles[j] == VLM_ROLE_PREV_INITIAL || s->roles[j] == VLM_ROLE_PREV_MOVED)) j++;
    ASSERT_EQ_INT(s->roles[j], VLM_ROLE_PREV_FOOTER);
    while (j < s->n && s->roles[j] == VLM_ROLE_PREV_FOOTER) j++;
    /* then turns, rounds never decreasing, roles of a round in order */
    int32_t last_round = -1;
    for (; j < s->n; j++) {
        ASSERT_MSG(s->roles[j] >= VLM_ROLE_USER_HEADER, "role %d at %lld after the prefix",
                   s->roles[j], (long long)j);
        ASSERT(s->rounds[j] >= last_round);
        last_round = s->rounds[j];
    }
    /* cached tokens are a prefix */
    for (int64_t k = 0; k < s->n; k++) ASSERT((s->serial[k] >= 0) == (k < s->n_cached));
}

/* The default policy with the session's windows scaled down to a few chunks. */
static vlm_policy small_windows(vlm_engine *e, int64_t max_new_tokens) {
    vlm_policy p;
    vlm_policy_default(e, &p);
    p.vision_window = 2;
    p.text_rounds = 3;
    p.prev_sink = 4;
    p.prev_window = 8;
    p.max_new_tokens = max_new_tokens;
    return p;
}

static void test_session_bounded_and_text(void) {
    vlm_engine *e = load_tiny();
    vlm_policy p;
    vlm_policy_default(e, &p);
    p.vision_window = 3;
    p.text_rounds = 4;
    p.prev_sink = 8;
    p.prev_window = 16;
    p.max_new_tokens = 6;
    int64_t w = 224, h = 168;
    vlm_session *s = tiny_session(e, &p, w, h);
    uint8_t *px = malloc((size_t)(2 * w * h * 3));
    vlm_chunk_result res;
    int64_t max_len = 0, texts = 0;
    for (int64_t i = 0; i < 60; i++) {
        push(s, px, w, h, i, &res);
        check_shape(s);
        if (i >= 10) max_len = res.n_retained > max_len ? res.n_retained : max_len;
        if (res.text[0]) texts++;
        ASSERT(res.n_generated >= 1 && res.n_generated <= 6);
    }
    /* steady state: system + prev(header, <= S+W content, footer) + <= T+1 rounds */
    int64_t round_max = s->n_vis + 3 + 14 + 2 + 2 + 3 + 6 + 2 + 1;
    int64_t bound = s->pc.system_block.n + 4 + 8 + 16 + 2 + 5 * round_max;
    ASSERT_MSG(max_len <= bound, "retained %lld > bound %lld", (long long)max_len, (long long)bound);
    ASSERT(s->cap >= max_len);
    ASSERT_MSG(texts > 0, "no chunk produced any text");
    ASSERT_EQ_INT(vlm_session_chunks(s), 60);
    free(px);
    vlm_session_free(s);
    vlm_engine_free(e);
}

static void test_session_no_allocation_per_chunk(void) {
    vlm_engine *e = load_tiny();
    vlm_policy p = small_windows(e, 4);
    p.greedy = false; /* the sampling path too */
    p.temperature = 0.9f;
    p.top_k = 50;
    p.top_p = 0.95f;
    int64_t w = 200, h = 150; /* not a multiple of 28: the resize path */
    vlm_session *s = tiny_session(e, &p, w, h);
    uint8_t *px = __libc_malloc((size_t)(2 * w * h * 3));
    vlm_chunk_result res;
    for (int64_t i = 0; i < 8; i++) push(s, px, w, h, i, &res); /* warm up: eviction steady */
    atomic_store(&n_allocs, 0);
    atomic_store(&counting, 1);
    for (int64_t i = 8; i < 40; i++) push(s, px, w, h, i, &res);
    atomic_store(&counting, 0);
    ASSERT_MSG(atomic_load(&n_allocs) == 0, "%ld allocations in 32 chunks",
               atomic_load(&n_allocs));
    __libc_free(px);
    vlm_session_free(s);
    vlm_engine_free(e);
}

/* A raw session on the fixture model with made-up pieces, for policy edge cases. */
static vlm_session *raw_session(vlm_model **mout, vlm_policy *p, int64_t n_init) {
    vlm_model *m = NULL;
    char err[VLM_ERR_LEN];
    ASSERT_MSG(vlm_model_load(FIXTURE_MODEL, NULL, &m, err) == 0, "%s", err);
    static int32_t sys[] = {1001, 543, 183, 594, 855, 1002, 183}, ph[] = {1001, 701, 359, 183},
                   pf[] = {1002, 183}, uh[] = {1001, 534, 183}, ah[] = {1001, 253, 183},
                   q[] = {435, 540};
    int32_t init[64];
    for (int64_t k = 0; k < n_init; k++) init[k] = (int32_t)(10 + k);
    vlm_pieces pc = {.newline = 183, .im_end = 1002, .vision_start = 1009, .vision_end = 1010,
                     .video_pad = 1013, .system_block = {sys, 7}, .prev_header = {ph, 4},
                     .prev_initial = {init, n_init}, .prev_footer = {pf, 2},
                     .user_header = {uh, 3}, .user_footer = {pf, 2},
                     .assistant_header = {ah, 3}, .query = {q, 2},
                     .time = {207, 140, 335, 615, 460, {282, 965, 40, 212, 815, 168, 982, 861, 61, 526}}};
    vlm_session *s = NULL;
    ASSERT_MSG(vlm__session_new_raw(m, p, &pc, 56, 56, 0, &s, err) == 0, "%s", err);
    *mout = m;
    return s;
}

static void push_raw(vlm_session *s, int64_t i) {
    static uint8_t px[2 * 56 * 56 * 3];
    make_frame(px, 56, 56, i);
    make_frame(px + 56 * 56 * 3, 56, 56, i + 1);
    vlm_frame f[2] = {{px, 56, 56, 168}, {px + 56 * 56 * 3, 56, 56, 168}};
    vlm_chunk_result res;
    char err[VLM_ERR_LEN];
    ASSERT_MSG(vlm_session_push_chunk(s, f, (double)i, (double)i + 1, &res, err) == 0, "%s", err);
}

static int64_t count_role(const vlm_session *s, int lo, int hi) {
    int64_t n = 0;
    for (int64_t j = 0; j < s->n; j++) n += s->roles[j] >= lo && s->roles[j] <= hi;
    return n;
}

static void test_session_single_text_round(void) {
    /* T = 1: the last turn's uncached tokens go before they are forwarded, and the next
     * chunk's leading newline is dropped (the sequence already ends in one) */
    vlm_policy p = {.vision_window = 1, .text_rounds = 1, .prev_sink = 2, .prev_window = 3,
                    .max_new_tokens = 3, .greedy = true, .repetition_penalty = 1.0f};
    vlm_model *m;
    vlm_session *s = raw_session(&m, &p, 0);
    for (int64_t i = 0; i < 12; i++) {
        push_raw(s, i);
        check_shape(s);
        /* only the current round's turns remain after the prefix */
        for (int64_t j = 0; j < s->n; j++)
            if (s->roles[j] >= VLM_ROLE_USER_HEADER) ASSERT_EQ_INT(s->rounds[j], i);
        ASSERT(count_role(s, VLM_ROLE_ASSISTANT_NEWLINE, VLM_ROLE_ASSISTANT_NEWLINE) == 0);
        ASSERT(count_role(s, VLM_ROLE_PREV_INITIAL, VLM_ROLE_PREV_MOVED) <= 5);
    }
    vlm_session_free(s);
    vlm_model_free(m);
}

static void test_session_window_off_by_one(void) {
    for (int obo = 0; obo < 2; obo++) {
        vlm_policy p = {.vision_window = 2, .text_rounds = 2, .prev_sink = 3, .prev_window = 4,
                        .window_off_by_one = obo, .max_new_tokens = 4, .greedy = true,
                        .repetition_penalty = 1.0f};
        vlm_model *m;
        vlm_session *s = raw_session(&m, &p, 20);
        push_raw(s, 0);
        ASSERT_EQ_INT(count_role(s, VLM_ROLE_PREV_INITIAL, VLM_ROLE_PREV_MOVED), 20); /* whole at chunk 0 */
        push_raw(s, 1);
        /* from chunk 1 on: the first S and the last W (or W-1) content tokens */
        ASSERT_EQ_INT(count_role(s, VLM_ROLE_PREV_INITIAL, VLM_ROLE_PREV_MOVED), 3 + 4 - obo);
        int64_t a = 0;
        while (s->roles[a] != VLM_ROLE_PREV_INITIAL) a++;
        ASSERT_EQ_INT(s->ids[a], 10);
        ASSERT_EQ_INT(s->ids[a + 2], 12);
        ASSERT_EQ_INT(s->ids[a + 3], 10 + 20 - (4 - obo));
        vlm_session_free(s);
        vlm_model_free(m);
    }
}

static void test_session_vision_window_smaller(void) {
    /* V < T: old rounds lose their vision block but keep their text */
    vlm_policy p = {.vision_window = 1, .text_rounds = 3, .prev_sink = 2, .prev_window = 2,
                    .max_new_tokens = 2, .greedy = true, .repetition_penalty = 1.0f};
    vlm_model *m;
    vlm_session *s = raw_session(&m, &p, 0);
    for (int64_t i = 0; i < 8; i++) {
        push_raw(s, i);
        ASSERT_EQ_INT(count_role(s, VLM_ROLE_VISION_START, VLM_ROLE_VISION_START), 1);
        check_shape(s);
    }
    vlm_session_free(s);
    vlm_model_free(m);
}

static void test_session_bad_policy(void) {
    const struct {
        vlm_policy p;
        const char *want;
    } cases[] = {
        {{.vision_window = 16, .text_rounds = 0, .prev_sink = 1, .prev_window = 1,
          .max_new_tokens = 1, .greedy = true, .repetition_penalty = 1}, "text_rounds"},
        {{.vision_window = 0, .text_rounds = 1, .prev_sink = 1, .prev_window = 1,
          .max_new_tokens = 1, .greedy = true, .repetition_penalty = 1}, "vision_window"},
        {{.vision_window = 1, .text_rounds = 1, .prev_sink = 512, .prev_window = -1,
          .max_new_tokens = 1, .greedy = true, .repetition_penalty = 1}, "prev_sink and prev_window"},
        {{.vision_window = 1, .text_rounds = 1, .prev_sink = -1, .prev_window = 512,
          .max_new_tokens = 1, .greedy = true, .repetition_penalty = 1}, "prev_sink and prev_window"},
        {{.vision_window = 1, .text_rounds = 1, .prev_sink = 1, .prev_window = 1,
          .max_new_tokens = 0, .greedy = true, .repetition_penalty = 1}, "max_new_tokens"},
        {{.vision_window = 1, .text_rounds = 1, .prev_sink = 1, .prev_window = 1,
          .max_new_tokens = 1, .greedy = false, .temperature = 0, .top_p = 1,
          .repetition_penalty = 1}, "temperature"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[VLM_ERR_LEN] = "";
        ASSERT(vlm_policy_validate(&cases[i].p, err) == VLM_EINVAL);
        ASSERT_CONTAINS(err, cases[i].want);
    }
    /* a never-evicting policy needs an explicit capacity */
    vlm_engine *e = load_tiny();
    vlm_policy p;
    vlm_policy_default(e, &p);
    p.text_rounds = -1;
    vlm_session_params sp = {.frame_width = 64, .frame_height = 64};
    vlm_session *s = NULL;
    char err[VLM_ERR_LEN];
    ASSERT(vlm_session_new(e, &p, &sp, &s, err) == VLM_EINVAL);
    ASSERT_CONTAINS(err, "n_ctx");
    vlm_engine_free(e);
}

static void test_session_bad_frames(void) {
    vlm_engine *e = load_tiny();
    vlm_policy p;
    vlm_policy_default(e, &p);
    p.max_new_tokens = 2;
    vlm_session *s = tiny_session(e, &p, 112, 112);
    static uint8_t px[112 * 112 * 3 * 2];
    char err[VLM_ERR_LEN];
    vlm_chunk_result res;
    vlm_frame bad_stride[2] = {{px, 112, 112, 100}, {px, 112, 112, 336}};
    ASSERT(vlm_session_push_chunk(s, bad_stride, 0, 1, &res, err) == VLM_EINVAL);
    ASSERT_CONTAINS(err, "stride");
    vlm_frame zero[2] = {{px, 0, 112, 336}, {px, 112, 112, 336}};
    ASSERT(vlm_session_push_chunk(s, zero, 0, 1, &res, err) == VLM_EINVAL);
    vlm_frame thin[2] = {{px, 250, 1, 750}, {px, 112, 112, 336}};
    ASSERT(vlm_session_push_chunk(s, thin, 0, 1, &res, err) == VLM_EINVAL);
    ASSERT_CONTAINS(err, "aspect ratio");
    vlm_frame null[2] = {{NULL, 112, 112, 336}, {px, 112, 112, 336}};
    ASSERT(vlm_session_push_chunk(s, null, 0, 1, &res, err) == VLM_EINVAL);
    vlm_frame ok[2] = {{px, 112, 112, 336}, {px, 112, 112, 336}};
    ASSERT(vlm_session_push_chunk(s, ok, 1, 1, &res, err) == VLM_EINVAL); /* empty span */
    ASSERT_CONTAINS(err, "time span");
    /* the session is still usable after rejected chunks */
    ASSERT_MSG(vlm_session_push_chunk(s, ok, 0, 1, &res, err) == 0, "%s", err);
    ASSERT_EQ_INT(vlm_session_chunks(s), 1);
    vlm_session_free(s);
    /* absurd session geometry */
    vlm_session_params sp = {.frame_width = 5000, .frame_height = 10};
    ASSERT(vlm_session_new(e, &p, &sp, &s, err) != 0);
    ASSERT_CONTAINS(err, "aspect ratio");
    vlm_engine_free(e);
}

/* Frames a caller already scaled to vlm_engine_frame_size's answer are used as they are.
 * The default model's pixel limits (min = max = 50*28*28) make smart_resize not
 * idempotent: a 320x180 source goes to 252x140, but 252x140 itself would go to 280x168,
 * a grid the model never saw (the daemon's colour bars came out as a ball). */
static void test_session_frames_at_model_size(void) {
    const char *dir = "models/default";
    if (access("models/default/model.safetensors", R_OK) != 0) SKIP("%s missing", dir);
    vlm_engine *e = NULL;
    vlm_engine_params ep = {.backend = "cpu", .n_threads = 1};
    char err[VLM_ERR_LEN];
    ASSERT_MSG(vlm_engine_load(dir, &ep, &e, err) == 0, "%s", err);
    int64_t w = 0, h = 0;
    ASSERT_MSG(vlm_engine_frame_size(e, 320, 180, &w, &h, err) == 0, "%s", err);
    ASSERT_EQ_INT(w, 252);
    ASSERT_EQ_INT(h, 140);
    vlm_policy p;
    vlm_policy_default(e, &p);
    vlm_session_params sp = {.frame_width = w, .frame_height = h};
    vlm_session *s = NULL;
    ASSERT_MSG(vlm_session_new(e, &p, &sp, &s, err) == 0, "%s", err);
    ASSERT_EQ_INT(s->tw, 280); /* resized again: what frames_at_model_size is for */
    ASSERT_EQ_INT(s->th, 168);
    vlm_session_free(s);
    sp.frames_at_model_size = true;
    ASSERT_MSG(vlm_session_new(e, &p, &sp, &s, err) == 0, "%s", err);
    ASSERT_EQ_INT(s->tw, 252);
    ASSERT_EQ_INT(s->th, 140);
    vlm_session_free(s);
    sp.frame_width = 250; /* not a multiple of 28: refused, with the reason */
    ASSERT(vlm_session_new(e, &p, &sp, &s, err) == VLM_EINVAL);
    ASSERT_CONTAINS(err, "250x140 is not a model size");
    sp.frame_width = 280; /* 280x168 = 47040 pixels, more than max_pixels */
    sp.frame_height = 168;
    ASSERT(vlm_session_new(e, &p, &sp, &s, err) == VLM_EINVAL);
    ASSERT_CONTAINS(err, "at most 39200 pixels");
    vlm_engine_free(e);
}

static void test_session_invalid_utf8_prompt(void) {
    vlm_engine *e = load_tiny();
    vlm_policy p;
    vlm_policy_default(e, &p);
    vlm_session_params sp = {.frame_width = 64, .frame_height = 64,
                             .previous_text = "caf\xc3"};
    vlm_session *s = NULL;
    char err[VLM_ERR_LEN];
    ASSERT(vlm_session_new(e, &p, &sp, &s, err) == VLM_EINVAL);
    ASSERT_CONTAINS(err, "previous text");
    sp.previous_text = NULL;
    sp.query = "\xff bad";
    ASSERT(vlm_session_new(e, &p, &sp, &s, err) == VLM_EINVAL);
    ASSERT_CONTAINS(err, "query");
    sp.query = NULL;
    ASSERT(vlm_session_new(e, &p, &sp, &s, err) == 0);
    ASSERT(vlm_session_set_query(s, "ok \xc0\xaf", err) == VLM_EINVAL);
    ASSERT(vlm_session_set_query(s, "Who is winning?", err) == 0);
    vlm_session_free(s);
    vlm_engine_free(e);
}

/* "a a a …": n tokens with the Qwen2.5 tokenizer ("a", then " a" each). */
static char *n_tokens_text(int64_t n) {
    char *t = malloc((size_t)n * 2 + 1);
    ASSERT(t);
    for (int64_t i = 0; i < n; i++) memcpy(t + 2 * i, " a", 2);
    t[2 * n] = 0;
    memmove(t, t + 1, (size_t)n * 2); /* the first without its space */
    return t;
}

/* The query and previous-text limits: the same on vlm_engine_check_texts (what a server
 * asks before it accepts a stream) and on the session. */
static void test_session_text_limits(void) {
    vlm_engine *e = load_tiny();
    vlm_policy p;
    vlm_policy_default(e, &p);
    char err[VLM_ERR_LEN];
    char *q_max = n_tokens_text(VLM_MAX_QUERY_TOKENS),
         *q_over = n_tokens_text(VLM_MAX_QUERY_TOKENS + 1);
    char *p_max = n_tokens_text(VLM_MAX_PREVIOUS_TOKENS),
         *p_over = n_tokens_text(VLM_MAX_PREVIOUS_TOKENS + 1);
    ASSERT_EQ_INT(vlm_engine_check_texts(e, q_max, p_max, err), 0);
    ASSERT_EQ_INT(vlm_engine_check_texts(e, NULL, NULL, err), 0);
    ASSERT_EQ_INT(vlm_engine_check_texts(e, q_over, NULL, err), VLM_EINVAL);
    ASSERT_CONTAINS(err, "query is 257 tokens, more than 256");
    ASSERT_EQ_INT(vlm_engine_check_texts(e, "", p_over, err), VLM_EINVAL);
    ASSERT_CONTAINS(err, "previous_text is 4097 tokens, more than 4096");
    ASSERT_EQ_INT(vlm_engine_check_texts(e, NULL, "caf\xc3", err), VLM_EINVAL);
    ASSERT_CONTAINS(err, "previous_text");

    vlm_session_params sp = {.frame_width = 64, .frame_height = 64, .query = q_over};
    vlm_session *s = NULL;
    ASSERT_EQ_INT(vlm_session_new(e, &p, &sp, &s, err), VLM_EINVAL);
    ASSERT_CONTAINS(err, "query is 257 tokens, more than 256");
    sp.query = NULL;
    sp.previous_text = p_over;
    ASSERT_EQ_INT(vlm_session_new(e, &p, &sp, &s, err), VLM_EINVAL);
    ASSERT_CONTAINS(err, "previous_text is 4097 tokens, more than 4096");
    sp.query = q_max;
    sp.previous_text = p_max;
    ASSERT_EQ_INT(vlm_session_new(e, &p, &sp, &s, err), 0);
    ASSERT_EQ_INT(vlm_session_set_query(s, q_over, err), VLM_EFULL);
    ASSERT_CONTAINS(err, "query is 257 tokens, more than 256");
    ASSERT_EQ_INT(vlm_session_set_query(s, q_max, err), 0);
    vlm_session_free(s);
    free(q_max);
    free(q_over);
    free(p_max);
    free(p_over);
    vlm_engine_free(e);
}

static void test_session_malformed_tokenizer(void) {
    if (access(TINY "/model.safetensors", R_OK) != 0) SKIP("%s missing", TINY);
    char dir[] = "/tmp/vlm-test-tok-XXXXXX";
    ASSERT(mkdtemp(dir));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s/*.json %s/ && ln -s $(pwd)/%s/model.safetensors %s/", TINY,
             dir, TINY, dir);
    ASSERT(system(cmd) == 0);
    char path[256];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"model\": {\"type\": \"BPE\", \"vocab\": 7}}", f);
    fclose(f);
    vlm_engine *e = NULL;
    char err[VLM_ERR_LEN];
    ASSERT(vlm_engine_load(dir, NULL, &e, err) != 0);
    ASSERT(e == NULL);
    ASSERT_CONTAINS(err, "tokenizer.json");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT(system(cmd) == 0);
}

/* ---- several sessions in one call (vlm_batch) ---- */

#define NB 3

/* Stream k's chunk i: the moving square, each stream at its own time. */
static void batch_frames(uint8_t *px, int64_t w, int64_t h, int64_t k, int64_t i, vlm_frame f[2]) {
    make_frame(px, w, h, 2 * i + 7 * k);
    make_frame(px + w * h * 3, w, h, 2 * i + 1 + 7 * k);
    f[0] = (vlm_frame){px, w, h, 3 * w};
    f[1] = (vlm_frame){px + w * h * 3, w, h, 3 * w};
}

/* Every logits row of a chunk, kept by the check hook (which has the session copy each
 * row to the host; without a hook the rows stay where the backend computed them). */
typedef struct logits_log {
    int64_t vocab, max_rows, rows;
    float *row;
} logits_log;

static void keep_logits(vlm_session *s, vlm_stage stage, int64_t arg, void *user) {
    logits_log *lg = user;
    if (stage != VLM_STAGE_LOGITS) return;
    ASSERT(arg >= 0 && arg < lg->max_rows);
    memcpy(lg->row + arg * lg->vocab, s->logits, sizeof(float) * (size_t)lg->vocab);
    lg->rows = arg + 1;
}

static void log_logits(vlm_session *s, logits_log *lg, int64_t max_rows) {
    lg->vocab = s->model->cfg.vocab;
    lg->max_rows = max_rows;
    lg->rows = 0;
    lg->row = malloc(sizeof(float) * (size_t)(lg->vocab * max_rows));
    ASSERT(lg->row);
    s->hook = keep_logits;
    s->hook_user = lg;
}

/* The prefill groups vlm_batch_push_chunks should have made of ss[0..n): in order,
 * several while their tails add up to at most budget tokens, else one alone. */
static void expect_groups(vlm_session *const *ss, int64_t n, int64_t budget, int64_t *want) {
    for (int64_t k = 0; k < n;) {
        int64_t m = 0, tokens = 0;
        while (k + m < n && tokens + ss[k + m]->prefill.n <= budget) tokens += ss[k + m++]->prefill.n;
        if (m < 2) m = 1;
        for (int64_t g = 0; g < m; g++) want[k + g] = m;
        k += m;
    }
}

/* Three streams with different pictures and different max_new_tokens (so they stop
 * decoding at different steps), eviction running: pushed together with prefill budget
 * `budget`, each says exactly what it says alone, its retained sequence is the same and
 * every step's logits row agrees (the batched products may round differently, so 1e-4,
 * not bit-equal).  seen[m] counts the prefills that ran in groups of m. */
static void batch_vs_alone(vlm_engine *e, int64_t budget, int64_t seen[NB + 1]) {
    int64_t w = 224, h = 168, M[NB] = {6, 2, 9};
    vlm_session *alone[NB], *together[NB];
    logits_log lg_alone[NB], lg_together[NB];
    for (int k = 0; k < NB; k++) {
        vlm_policy p = small_windows(e, M[k]);
        alone[k] = tiny_session(e, &p, w, h);
        together[k] = tiny_session(e, &p, w, h);
        log_logits(alone[k], &lg_alone[k], M[k] + 1);
        log_logits(together[k], &lg_together[k], M[k] + 1);
    }
    vlm_batch *b = NULL;
    char err[VLM_ERR_LEN];
    ASSERT_MSG(vlm_batch_new(e, 4, budget, &b, err) == 0, "%s", err);
    uint8_t *px = malloc((size_t)(NB * 2 * w * h * 3));
    int64_t V = alone[0]->model->cfg.vocab, n_rows = 0;
    float max_d = 0, max_abs = 0;
    for (int64_t i = 0; i < 10; i++) {
        vlm_frame f[NB][2];
        double t0[NB], t1[NB];
        vlm_chunk_result want[NB], got[NB];
        int rcs[NB];
        char errs[NB][VLM_ERR_LEN];
        int64_t groups[NB];
        for (int k = 0; k < NB; k++) {
            batch_frames(px + k * 2 * w * h * 3, w, h, k, i, f[k]);
            t0[k] = (double)i + 0.5 * k;
            t1[k] = t0[k] + 1.0;
            ASSERT_MSG(vlm_session_push_chunk(alone[k], f[k], t0[k], t1[k], &want[k], err) == 0,
                       "stream %d chunk %lld alone: %s", k, (long long)i, err);
            ASSERT_EQ_INT(want[k].prefill_streams, 1);
        }
        ASSERT_MSG(vlm_batch_push_chunks(b, together, NB, (const vlm_frame(*)[2])f, t0, t1, got,
                                         rcs, errs) == 0,
                   "chunk %lld: %s / %s / %s", (long long)i, errs[0], errs[1], errs[2]);
        expect_groups(together, NB, budget, groups);
        for (int k = 0; k < NB; k++) {
            vlm_session *a = alone[k], *t = together[k];
            ASSERT_EQ_INT(rcs[k], 0);
            ASSERT_MSG(got[k].prefill_streams == groups[k], "budget %lld chunk %lld stream %d: "
                       "prefilled with %lld streams, want %lld", (long long)budget, (long long)i,
                       k, (long long)got[k].prefill_streams, (long long)groups[k]);
            seen[groups[k]]++;
            ASSERT_MSG(!strcmp(want[k].text, got[k].text), "stream %d chunk %lld: %s vs %s", k,
                       (long long)i, want[k].text, got[k].text);
            ASSERT_EQ_INT(got[k].n_generated, want[k].n_generated);
            ASSERT(got[k].n_generated >= 1 && got[k].n_generated <= M[k]);
            ASSERT_EQ_INT(got[k].n_retained, want[k].n_retained);
            ASSERT_EQ_INT(got[k].n_cached, want[k].n_cached);
            ASSERT_EQ_INT(t->n_cached, a->n_cached);
            for (int64_t j = 0; j < a->n; j++) {
                ASSERT_EQ_INT(t->ids[j], a->ids[j]);
                ASSERT_EQ_INT(t->roles[j], a->roles[j]);
            }
            /* every step's logits: the prefill's row, then one per decode step */
            ASSERT_EQ_INT(lg_together[k].rows, lg_alone[k].rows);
            ASSERT_EQ_INT(lg_alone[k].rows, want[k].n_generated);
            for (int64_t j = 0; j < V * lg_alone[k].rows; j++) {
                float x = lg_together[k].row[j], y = lg_alone[k].row[j], d = fabsf(x - y);
                ASSERT_MSG(d <= 1e-4f, "stream %d chunk %lld step %lld logit %lld: %g vs %g", k,
                           (long long)i, (long long)(j / V), (long long)(j % V), x, y);
                max_d = d > max_d ? d : max_d;
                max_abs = fabsf(y) > max_abs ? fabsf(y) : max_abs;
            }
            n_rows += lg_alone[k].rows;
            check_shape(t);
        }
    }
    ASSERT(max_abs > 0); /* the rows were written */
    printf("prefill budget %4lld: batched vs alone, %lld logits rows within %.3g (largest "
           "|logit| %.3g); prefills alone %lld, in pairs %lld, in threes %lld\n",
           (long long)budget, (long long)n_rows, max_d, max_abs, (long long)seen[1],
           (long long)seen[2], (long long)seen[3]);
    free(px);
    vlm_batch_free(b);
    for (int k = 0; k < NB; k++) {
        vlm_session_free(alone[k]);
        vlm_session_free(together[k]);
        free(lg_alone[k].row);
        free(lg_together[k].row);
    }
}

/* The prefill tail of a later chunk (the unit of the tests' middle budgets). */
static int64_t later_tail(vlm_engine *e) {
    vlm_policy p = small_windows(e, 2);
    vlm_session *probe = tiny_session(e, &p, 224, 168);
    uint8_t *px = malloc((size_t)(2 * 224 * 168 * 3));
    vlm_frame f[2];
    vlm_chunk_result r;
    char err[VLM_ERR_LEN];
    for (int64_t i = 0; i < 2; i++) {
        batch_frames(px, 224, 168, 0, i, f);
        ASSERT_MSG(vlm_session_push_chunk(probe, f, (double)i, i + 1.0, &r, err) == 0, "%s", err);
    }
    int64_t tail = probe->prefill.n;
    vlm_session_free(probe);
    free(px);
    return tail;
}

/* Batched against alone with the prefills each alone, in groups of two and one alone
 * (a budget of two and a half later-chunk tails), and all together. */
static void test_batch_matches_sequential(void) {
    vlm_engine *e = load_tiny();
    int64_t tail = later_tail(e);
    int64_t none[NB + 1] = {0}, mixed[NB + 1] = {0}, all[NB + 1] = {0};
    batch_vs_alone(e, 0, none);
    ASSERT_EQ_INT(none[1], 10 * NB);
    batch_vs_alone(e, 2 * tail + tail / 2, mixed);
    ASSERT_MSG(mixed[1] > 0 && mixed[2] > 0, "no mix of pairs and singles (%lld, %lld)",
               (long long)mixed[1], (long long)mixed[2]);
    batch_vs_alone(e, 1024, all);
    ASSERT_MSG(all[NB] > 0, "no prefill of all %d streams together", NB);
    vlm_engine_free(e);
}

/* ---- a backend that records decode steps as a device's graphs would ----
 * It wraps the CPU backend: between graph_begin and graph_end the ops are kept, not
 * run (a set, get or synchronize in between fails the test: a device cannot do them
 * while recording), and graph_end runs them, or answers VLM_EAGAIN (no graph could be
 * made) so the engine must issue the step again op by op.  It can also refuse every
 * n-th SAMPLE (out = -1, as a device does when more ids tie than it takes), which
 * sends the session to the host sampler. */
enum { REC_REPLAY, REC_AGAIN };
static struct {
    const vlm_backend_i *inner;
    vlm_backend_i iface;
    int mode, refuse_every;
    bool recording;
    vlm_op ops[4096];
    int64_t n_ops, n_steps, n_again, n_samples, n_refused;
} rec;

static int rec_compute(vlm_backend *be, const vlm_op *op) {
    if (op->kind == VLM_OP_SAMPLE && rec.refuse_every && ++rec.n_samples % rec.refuse_every == 0) {
        /* out is backend memory (a device pointer under TEST_BACKEND=cuda): write the -1
         * through the backend, never through the pointer; a SAMPLE is never recorded */
        const int32_t refused = -1;
        ASSERT_MSG(!rec.recording, "a SAMPLE inside a recorded step");
        rec.n_refused++;
        return rec.inner->set(be, op->out.data, &refused, sizeof refused);
    }
    if (!rec.recording) return rec.inner->compute(be, op);
    ASSERT_MSG(rec.n_ops < 4096, "a step of more than 4096 ops");
    rec.ops[rec.n_ops++] = *op;
    return 0;
}

static int rec_set(vlm_backend *be, void *dst, const void *src, size_t n) {
    ASSERT_MSG(!rec.recording, "set while a step is being recorded");
    return rec.inner->set(be, dst, src, n);
}

static int rec_get(vlm_backend *be, void *dst, const void *src, size_t n) {
    ASSERT_MSG(!rec.recording, "get while a step is being recorded");
    return rec.inner->get(be, dst, src, n);
}

static int rec_synchronize(vlm_backend *be) {
    ASSERT_MSG(!rec.recording, "synchronize while a step is being recorded");
    return rec.inner->synchronize(be);
}

static int rec_graph_begin(vlm_backend *be, int64_t key) {
    (void)be;
    ASSERT_MSG(!rec.recording, "graph_begin (key %lld) inside a recording", (long long)key);
    rec.recording = true;
    rec.n_ops = 0;
    return 0;
}

static int rec_graph_end(vlm_backend *be, bool abort) {
    ASSERT_MSG(rec.recording, "graph_end without graph_begin");
    rec.recording = false;
    if (abort) return 0;
    rec.n_steps++;
    if (rec.mode == REC_AGAIN) {
        rec.n_again++;
        return VLM_EAGAIN;
    }
    for (int64_t i = 0; i < rec.n_ops; i++) {
        int rc = rec.inner->compute(be, &rec.ops[i]);
        if (rc) return rc;
    }
    return 0;
}

static void rec_wrap(vlm_backend *be) {
    rec.inner = be->iface;
    rec.iface = *be->iface;
    rec.iface.compute = rec_compute;
    rec.iface.set = rec_set;
    rec.iface.get = rec_get;
    rec.iface.synchronize = rec_synchronize;
    rec.iface.graph_begin = rec_graph_begin;
    rec.iface.graph_end = rec_graph_end;
    be->iface = &rec.iface;
}

/* Sessions whose backend draws the tokens (the SAMPLE op, what a GPU runs) and records
 * each decode step as a graph say what sessions drawing on the host, op by op, say:
 * token for token, greedy with a repetition penalty and top-k/top-p sampling from the
 * same seed (the same uniform draws feed both paths).  Also with every third draw
 * refused (the host sampler takes over), with graphs that cannot be made (the step is
 * issued again), and in a batch of two streams with different pictures and seeds, each
 * against its own twin. */
static void test_session_backend_draws_and_graphs(void) {
    vlm_engine *ref_e = load_tiny(), *e = load_tiny();
    rec_wrap(e->model->be);
    int64_t w = 224, h = 168;
    static const struct {
        int mode, refuse_every;
    } modes[] = {{REC_REPLAY, 0}, {REC_AGAIN, 3}, {REC_REPLAY, 2}};
    for (int m = 0; m < 3; m++) {
        rec.mode = modes[m].mode;
        rec.refuse_every = modes[m].refuse_every;
        rec.n_steps = rec.n_again = rec.n_refused = 0;
        int64_t batch_steps = 0; /* of them, the batch's */
        for (int sampled = 0; sampled < 2; sampled++) {
            vlm_policy p = small_windows(e, 8);
            p.greedy = !sampled;
            p.repetition_penalty = sampled ? 1.05f : 1.3f;
            p.temperature = 0.9f;
            p.top_k = 50;
            p.top_p = 0.95f;
            /* twins: [0] alone, [1] and [2] in the batch; ref[k] draws on the host */
            vlm_session *s[3], *ref[3];
            for (int k = 0; k < 3; k++) {
                p.seed = k == 2 ? 11 : 7;
                s[k] = tiny_session(e, &p, w, h);
                ref[k] = tiny_session(ref_e, &p, w, h);
                ASSERT(s[k]->backend_draws);
                ref[k]->backend_draws = false;
            }
            vlm_batch *b = NULL;
            char err[VLM_ERR_LEN];
            ASSERT_MSG(vlm_batch_new(e, 2, 1024, &b, err) == 0, "%s", err);
            uint8_t *px = malloc((size_t)(2 * 2 * w * h * 3));
            int distinct = 0, apart = 0;
            char first[VLM_TEXT_MAX] = "";
            for (int64_t i = 0; i < 10; i++) {
                vlm_chunk_result got[3], want[3];
                vlm_frame f[2][2];
                double t0[2] = {(double)i, (double)i}, t1[2] = {i + 1.0, i + 1.0};
                int rcs[2];
                char errs[2][VLM_ERR_LEN];
                for (int k = 0; k < 3; k++) { /* stream k % 2's pictures */
                    batch_frames(px, w, h, k == 2, i, f[0]);
                    ASSERT_MSG(vlm_session_push_chunk(ref[k], f[0], t0[0], t1[0], &want[k],
                                                      err) == 0, "%s", err);
                }
                batch_frames(px, w, h, 0, i, f[0]);
                ASSERT_MSG(vlm_session_push_chunk(s[0], f[0], t0[0], t1[0], &got[0], err) == 0,
                           "%s", err);
                batch_frames(px + 2 * w * h * 3, w, h, 1, i, f[1]);
                int64_t before = rec.n_steps;
                ASSERT_MSG(vlm_batch_push_chunks(b, s + 1, 2, (const vlm_frame(*)[2])f, t0, t1,
                                                 got + 1, rcs, errs) == 0,
                           "%s / %s", errs[0], errs[1]);
                batch_steps += rec.n_steps - before;
                for (int k = 0; k < 3; k++) {
                    ASSERT_MSG(!strcmp(got[k].text, want[k].text),
                               "mode %d, %s, session %d, chunk %lld: backend '%s', host '%s'", m,
                               sampled ? "sampled" : "greedy", k, (long long)i, got[k].text,
                               want[k].text);
                    ASSERT_EQ_INT(s[k]->n, ref[k]->n);
                    for (int64_t j = 0; j < s[k]->n; j++) ASSERT_EQ_INT(s[k]->ids[j], ref[k]->ids[j]);
                }
                apart += strcmp(got[1].text, got[2].text) != 0;
                if (i == 0) snprintf(first, sizeof first, "%s", got[0].text);
                else distinct += strcmp(first, got[0].text) != 0;
            }
            ASSERT_MSG(distinct > 0, "every chunk said '%s'", first);
            ASSERT_MSG(apart > 0, "the batch's two streams always agree: a mix-up would pass");
            free(px);
            vlm_batch_free(b);
            for (int k = 0; k < 3; k++) {
                vlm_session_free(s[k]);
                vlm_session_free(ref[k]);
            }
        }
        ASSERT_MSG(rec.n_steps > 0, "mode %d: no decode step was recorded", m);
        ASSERT_MSG(batch_steps > 0, "mode %d: no batched decode step was recorded", m);
        ASSERT_MSG(rec.mode != REC_AGAIN || rec.n_again == rec.n_steps, "mode %d", m);
        ASSERT_MSG(!rec.refuse_every || rec.n_refused > 0, "mode %d: no draw refused", m);
        printf("mode %d: %lld steps recorded (%lld batched), %lld issued again, %lld draws "
               "refused\n", m, (long long)rec.n_steps, (long long)batch_steps,
               (long long)rec.n_again, (long long)rec.n_refused);
    }
    e->model->be->iface = rec.inner;
    vlm_engine_free(e);
    vlm_engine_free(ref_e);
}

/* Four streams drawing on the backend with no hook (so no logits row is copied to the
 * host): prefill groups of two, two groups a push.  Each group's first logits rows must
 * outlive the next group's forward until the draws; each stream says exactly what it
 * says alone. */
static void test_batch_two_prefill_groups(void) {
    enum { N4 = 4 };
    vlm_engine *e = load_tiny();
    int64_t w = 224, h = 168, tail = later_tail(e), pairs = 0;
    vlm_session *alone[N4], *together[N4];
    for (int k = 0; k < N4; k++) {
        vlm_policy p = small_windows(e, 5);
        alone[k] = tiny_session(e, &p, w, h);
        together[k] = tiny_session(e, &p, w, h);
    }
    ASSERT(together[0]->backend_draws);
    vlm_batch *b = NULL;
    char err[VLM_ERR_LEN];
    ASSERT_MSG(vlm_batch_new(e, N4, 2 * tail + tail / 2, &b, err) == 0, "%s", err);
    uint8_t *px = malloc((size_t)(N4 * 2 * w * h * 3));
    for (int64_t i = 0; i < 6; i++) {
        vlm_frame f[N4][2];
        double t0[N4], t1[N4];
        vlm_chunk_result want[N4], got[N4];
        int rcs[N4];
        char errs[N4][VLM_ERR_LEN];
        for (int k = 0; k < N4; k++) {
            batch_frames(px + k * 2 * w * h * 3, w, h, k, i, f[k]);
            t0[k] = (double)i;
            t1[k] = t0[k] + 1.0;
            ASSERT_MSG(vlm_session_push_chunk(alone[k], f[k], t0[k], t1[k], &want[k], err) == 0,
                       "%s", err);
        }
        ASSERT_MSG(vlm_batch_push_chunks(b, together, N4, (const vlm_frame(*)[2])f, t0, t1, got,
                                         rcs, errs) == 0, "%s", errs[0]);
        bool two_pairs = true;
        for (int k = 0; k < N4; k++) {
            two_pairs = two_pairs && got[k].prefill_streams == 2;
            ASSERT_EQ_INT(got[k].n_generated, want[k].n_generated);
            for (int64_t j = 0; j < got[k].n_generated; j++)
                ASSERT_MSG(together[k]->gen[j] == alone[k]->gen[j], "chunk %lld stream %d token "
                           "%lld: %d batched, %d alone", (long long)i, k, (long long)j,
                           together[k]->gen[j], alone[k]->gen[j]);
        }
        pairs += two_pairs;
    }
    ASSERT_MSG(pairs > 0, "no push made two groups of two");
    free(px);
    vlm_batch_free(b);
    for (int k = 0; k < N4; k++) {
        vlm_session_free(alone[k]);
        vlm_session_free(together[k]);
    }
    vlm_engine_free(e);
}

/* A bad chunk fails its own session only; misuse of the batch names the problem; in
 * steady state a batched push allocates nothing. */
static void test_batch_errors_and_no_allocation(void) {
    vlm_engine *e = load_tiny();
    vlm_policy p;
    vlm_policy_default(e, &p);
    p.vision_window = 2;
    p.text_rounds = 2;
    p.prev_sink = 4;
    p.prev_window = 4;
    p.max_new_tokens = 4;
    int64_t w = 112, h = 84;
    vlm_session *s[NB];
    for (int k = 0; k < NB; k++) s[k] = tiny_session(e, &p, w, h);
    vlm_batch *b = NULL;
    char err[VLM_ERR_LEN];
    ASSERT(vlm_batch_new(e, 0, 1024, &b, err) == VLM_EINVAL && strstr(err, "sessions"));
    ASSERT(vlm_batch_new(e, NB, -1, &b, err) == VLM_EINVAL && strstr(err, "prefill tokens"));
    ASSERT_MSG(vlm_batch_new(e, NB, 1024, &b, err) == 0, "%s", err);
    uint8_t *px = __libc_malloc((size_t)(NB * 2 * w * h * 3));
    vlm_frame f[NB][2];
    double t0[NB], t1[NB];
    vlm_chunk_result res[NB];
    int rcs[NB];
    char errs[NB][VLM_ERR_LEN];
    for (int k = 0; k < NB; k++) {
        batch_frames(px + k * 2 * w * h * 3, w, h, k, 0, f[k]);
        t0[k] = 0;
        t1[k] = 1;
    }
    t1[1] = -1; /* stream 1's chunk is bad */
    ASSERT(vlm_batch_push_chunks(b, s, NB, (const vlm_frame(*)[2])f, t0, t1, res, rcs, errs) ==
           VLM_EINVAL);
    ASSERT(rcs[0] == 0 && rcs[2] == 0);
    ASSERT_MSG(rcs[1] == VLM_EINVAL && strstr(errs[1], "time span"), "%d %s", rcs[1], errs[1]);
    ASSERT(res[0].n_generated >= 1 && res[2].n_generated >= 1);
    ASSERT_EQ_INT(vlm_session_chunks(s[0]), 1);
    ASSERT_EQ_INT(vlm_session_chunks(s[1]), 0);
    /* a prefill that fails in a group fails its own session only: a token outside the
     * vocabulary in one stream's turn fails the group's forward, which is then run
     * again one session at a time */
    vlm_session *bad = tiny_session(e, &p, w, h);
    bad->pc.user_header.v[0] = (int32_t)(e->model->cfg.vocab + 5);
    vlm_session *mix[NB] = {s[0], bad, s[2]};
    t1[1] = 1;
    ASSERT(vlm_batch_push_chunks(b, mix, NB, (const vlm_frame(*)[2])f, t0, t1, res, rcs, errs) ==
           VLM_ERANGE);
    ASSERT_MSG(rcs[0] == 0 && rcs[2] == 0, "%s / %s", errs[0], errs[2]);
    ASSERT_MSG(rcs[1] == VLM_ERANGE && strstr(errs[1], "prefill"), "%d %s", rcs[1], errs[1]);
    ASSERT(res[0].prefill_streams == 1 && res[2].prefill_streams == 1);
    ASSERT(res[0].n_generated >= 1 && res[2].n_generated >= 1);
    ASSERT_EQ_INT(vlm_session_chunks(s[0]), 2);
    ASSERT_EQ_INT(vlm_session_chunks(bad), 0);
    vlm_session_free(bad);
    /* the same session twice */
    vlm_session *dup[2] = {s[0], s[0]};
    ASSERT(vlm_batch_push_chunks(b, dup, 2, (const vlm_frame(*)[2])f, t0, t1, res, rcs, errs) != 0);
    ASSERT_MSG(rcs[1] == VLM_EINVAL && strstr(errs[1], "twice"), "%s", errs[1]);
    /* more sessions than the batch was made for */
    vlm_session *four[4] = {s[0], s[1], s[2], s[0]};
    ASSERT(vlm_batch_push_chunks(b, four, 4, (const vlm_frame(*)[2])f, t0, t1, res, rcs, errs) ==
           VLM_EINVAL);
    ASSERT_MSG(strstr(errs[0], "at most 3"), "%s", errs[0]);
    /* steady state: nothing allocated */
    for (int64_t i = 1; i < 6; i++) {
        for (int k = 0; k < NB; k++) {
            batch_frames(px + k * 2 * w * h * 3, w, h, k, i, f[k]);
            t0[k] = (double)i;
            t1[k] = (double)i + 1;
        }
        ASSERT_MSG(vlm_batch_push_chunks(b, s, NB, (const vlm_frame(*)[2])f, t0, t1, res, rcs,
                                         errs) == 0, "%s %s %s", errs[0], errs[1], errs[2]);
    }
    atomic_store(&n_allocs, 0);
    atomic_store(&counting, 1);
    for (int64_t i = 6; i < 16; i++) {
        for (int k = 0; k < NB; k++) {
            batch_frames(px + k * 2 * w * h * 3, w, h, k, i, f[k]);
            t0[k] = (double)i;
            t1[k] = (double)i + 1;
        }
        vlm_batch_push_chunks(b, s, NB, (const vlm_frame(*)[2])f, t0, t1, res, rcs, errs);
    }
    atomic_store(&counting, 0);
    ASSERT_MSG(atomic_load(&n_allocs) == 0, "%ld allocations in 10 batched pushes",
               atomic_load(&n_allocs));
    for (int k = 0; k < NB; k++) ASSERT_MSG(rcs[k] == 0, "%s", errs[k]);
    __libc_free(px);
    vlm_batch_free(b);
    for (int k = 0; k < NB; k++) vlm_session_free(s[k]);
    vlm_engine_free(e);
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"session_bounded_and_text", test_session_bounded_and_text},
        {"session_no_allocation_per_chunk", test_session_no_allocation_per_chunk},
        {"session_single_text_round", test_session_single_text_round},
        {"session_window_off_by_one", test_session_window_off_by_one},
        {"session_vision_window_smaller", test_session_vision_window_smaller},
        {"session_bad_policy", test_session_bad_policy},
        {"session_bad_frames", test_session_bad_frames},
        {"session_frames_at_model_size", test_session_frames_at_model_size},
        {"session_invalid_utf8_prompt", test_session_invalid_utf8_prompt},
        {"session_text_limits", test_session_text_limits},
        {"session_malformed_tokenizer", test_session_malformed_tokenizer},
        {"batch_matches_sequential", test_batch_matches_sequential},
        {"batch_two_prefill_groups", test_batch_two_prefill_groups},
        {"batch_errors_and_no_allocation", test_batch_errors_and_no_allocation},
        {"session_backend_draws_and_graphs", test_session_backend_draws_and_graphs},
        {0},
    };
    return test_main(argc, argv, tests);
}
