/* test-engine-tokenizer.c — the byte-level BPE tokenizer (engine/tokenizer.c).
 *
 * Golden: the real Qwen2.5 tokenizer.json (tests/fixtures/tokenizer/, decompressed once into
 * a temp file by main) must reproduce all 350 reference encodings (builtin.jsonl,
 * corpus.jsonl; made by a port of HF tokenizers, special tokens recognised,
 * add_special_tokens=false) id for id, and decode them back.  Also: the prompt facts the
 * spec relies on (streamingvlm-spec §1.5, §4.5), the streaming decoder, invalid UTF-8,
 * malformed tokenizer.json files, and a tiny hand-made tokenizer for merge forms and the
 * added-token flags.
 */
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>

#include <jansson.h>
#include <utf8proc.h>

#include "test.h"
#include "tokenizer.h"

#define SYSTEM_BLOCK "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"

static char fixture_dir[PATH_MAX]; /* tests/fixtures/tokenizer */
static char qwen_path[PATH_MAX];   /* the decompressed tokenizer.json, "" if that failed */

/* ---- helpers ---------------------------------------------------------------------- */

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Find tests/fixtures/tokenizer from the working directory or beside the binary. */
static void find_fixtures(void) {
    const char *rel = "tests/fixtures/tokenizer";
    if (is_dir(rel)) {
        snprintf(fixture_dir, sizeof fixture_dir, "%s", rel);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    exe[n] = 0;
    for (int up = 0; up < 3; up++) { /* build/tests/test-x -> repo root */
        char *slash = strrchr(exe, '/');
        if (!slash) return;
        *slash = 0;
        char cand[PATH_MAX + 32];
        snprintf(cand, sizeof cand, "%s/%s", exe, rel);
        if (is_dir(cand) && strlen(cand) < sizeof fixture_dir) {
            memcpy(fixture_dir, cand, strlen(cand) + 1);
            return;
        }
    }
}

static vlm_tokenizer *load_qwen(void) {
    ASSERT_MSG(fixture_dir[0], "tests/fixtures/tokenizer not found (run from the repo root)");
    ASSERT_MSG(qwen_path[0], "could not decompress qwen2.5-tokenizer.json.xz (is xz installed?)");
    vlm_tokenizer *tok = NULL;
    char err[VLM_ERR_LEN] = "";
    int rc = vlm_tokenizer_load(qwen_path, &tok, err);
    ASSERT_MSG(rc == 0, "load %s: %d %s", qwen_path, rc, err);
    return tok;
}

/* Encode into a malloc'd array (count first, then fill); asserts success. */
static int32_t *encode(const vlm_tokenizer *tok, const char *s, size_t n, int64_t *count) {
    char err[VLM_ERR_LEN] = "";
    int rc = vlm_tokenizer_encode(tok, s, n, NULL, 0, count, err); /* count only */
    ASSERT_MSG(rc == 0, "encode: %d %s", rc, err);
    int32_t *ids = malloc((size_t)(*count + 1) * sizeof *ids);
    ASSERT(ids);
    int64_t n2 = -1;
    rc = vlm_tokenizer_encode(tok, s, n, ids, *count, &n2, err);
    ASSERT_MSG(rc == 0, "encode: %d %s", rc, err);
    ASSERT_EQ_INT(n2, *count);
    return ids;
}

/* Decode into a malloc'd NUL-terminated string; *len gets its length. */
static char *decode(const vlm_tokenizer *tok, const int32_t *ids, int64_t n, unsigned flags,
                    size_t *len) {
    size_t need = 0;
    char probe[1];
    vlm_tokenizer_decode(tok, ids, n, flags, probe, sizeof probe, &need);
    char *buf = malloc(need + 1);
    ASSERT(buf);
    int rc = vlm_tokenizer_decode(tok, ids, n, flags, buf, need + 1, len);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_EQ_INT(*len, need);
    return buf;
}

static bool valid_utf8(const char *s, size_t n) {
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    while (n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, (utf8proc_ssize_t)n, &cp);
        if (k <= 0) return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* NFC of s[0..n) (malloc'd); *out_n its length. */
static char *nfc(const char *s, size_t n, size_t *out_n) {
    utf8proc_uint8_t *o = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &o,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    ASSERT_MSG(r >= 0, "utf8proc_map: %s", utf8proc_errmsg(r));
    *out_n = (size_t)r;
    return (char *)o;
}

static void print_ids(const char *label, const int32_t *ids, int64_t n) {
    fprintf(stderr, "    %s (%" PRId64 "):", label, n);
    for (int64_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* Every line of a reference jsonl: ids equal, token names equal, and (where "roundtrip")
 * decode gives the NFC of the text back. */
static void check_jsonl(const char *name) {
    vlm_tokenizer *tok = load_qwen();
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", fixture_dir, name);
    FILE *f = fopen(path, "r");
    ASSERT_MSG(f, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, bad = 0, n_rt = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        json_error_t je;
        json_t *j = json_loads(line, JSON_ALLOW_NUL, &je);
        ASSERT_MSG(j, "%s:%d: %s", name, lineno, je.text);
        json_t *jt = json_object_get(j, "text"), *jids = json_object_get(j, "ids");
        json_t *jtoks = json_object_get(j, "tokens"), *jrt = json_object_get(j, "roundtrip");
        ASSERT(json_is_string(jt) && json_is_array(jids) && json_is_array(jtoks));
        const char *text = json_string_value(jt);
        size_t tlen = json_string_length(jt);
        int64_t want_n = (int64_t)json_array_size(jids), got_n;
        int32_t *want = malloc((size_t)(want_n + 1) * sizeof *want);
        for (int64_t i = 0; i < want_n; i++)
            want[i] = (int32_t)json_integer_value(json_array_get(jids, (size_t)i));
        int32_t *got = encode(tok, text, tlen, &got_n);
        bool same = got_n == want_n && !memcmp(got, want, (size_t)got_n * sizeof *got);
        if (!same) {
            if (bad < 8) {
                char *esc = json_dumps(jt, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
                fprintf(stderr, "%s:%d: ids differ for %.300s\n", name, lineno, esc);
                free(esc);
                print_ids("want", want, want_n);
                print_ids("got ", got, got_n);
            }
            bad++;
        } else {
            for (int64_t i = 0; i < got_n; i++) {
                size_t nl;
                const char *tn = vlm_tokenizer_id_to_token(tok, got[i], &nl);
                const char *wn = json_string_value(json_array_get(jtoks, (size_t)i));
                ASSERT_MSG(tn && wn && !strcmp(tn, wn), "%s:%d: token %" PRId64 " is \"%s\", "
                           "want \"%s\"", name, lineno, i, tn ? tn : "(null)", wn ? wn : "?");
            }
        }
        if (json_is_true(jrt)) {
            size_t dlen, nlen;
            char *dec = decode(tok, want, want_n, 0, &dlen);
            char *norm = nfc(text, tlen, &nlen);
            ASSERT_MSG(dlen == nlen && !memcmp(dec, norm, nlen),
                       "%s:%d: decode does not give the (NFC) text back", name, lineno);
            free(dec);
            free(norm);
            n_rt++;
        }
        free(want);
        free(got);
        json_decref(j);
    }
    free(line);
    fclose(f);
    vlm_tokenizer_free(tok);
    ASSERT_MSG(lineno > 0, "%s is empty", name);
    ASSERT_MSG(bad == 0, "%s: %d of %d lines encode differently", name, bad, lineno);
    ASSERT_MSG(n_rt > 0, "%s: no line is marked roundtrip", name);
}

/* Write text to a fresh temp file; returns its path (static buffer, one at a time). */
static const char *write_temp(const char *text, size_t n) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/test-tokenizer-XXXXXX.json");
    int fd = mkstemps(path, 5);
    ASSERT_MSG(fd >= 0, "mkstemps: %s", strerror(errno));
    ASSERT_EQ_INT(write(fd, text, n), (long long)n);
    close(fd);
    return path;
}

/* ---- golden ----------------------------------------------------------------------- */

static void test_tokenizer_builtin_golden(void) {
    check_jsonl("builtin.jsonl");
}

static void test_tokenizer_corpus_golden(void) {
    check_jsonl("corpus.jsonl");
}

/* The prompt facts of streamingvlm-spec §1.5. */
static void test_tokenizer_spec_prompt_facts(void) {
    vlm_tokenizer *tok = load_qwen();
    ASSERT_EQ_INT(vlm_tokenizer_vocab_size(tok), 151665);
    ASSERT_EQ_INT(strlen(SYSTEM_BLOCK), 58); /* SYSTEM_PROMPT_OFFSET */

    static const int32_t sys_want[] = {151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13,
                                       151645, 198};
    int64_t n;
    int32_t *ids = encode(tok, SYSTEM_BLOCK, strlen(SYSTEM_BLOCK), &n);
    ASSERT_EQ_INT(n, 11);
    for (int i = 0; i < 11; i++) ASSERT_EQ_INT(ids[i], sys_want[i]);
    free(ids);

    ids = encode(tok, "Time=12.0-13.0s", 15, &n);
    ASSERT_EQ_INT(n, 12); /* Time = 1 2 . 0 - 1 3 . 0 s */
    ASSERT_EQ_INT(ids[0], 1462);
    free(ids);

    ids = encode(tok, "previous text", 13, &n);
    ASSERT_EQ_INT(n, 2);
    ASSERT_EQ_INT(ids[0], 19702);
    ASSERT_EQ_INT(ids[1], 1467);
    free(ids);

    const char *start = "<|im_start|>assistant\n"; /* assistant_start_bias */
    ids = encode(tok, start, strlen(start), &n);
    ASSERT_EQ_INT(n, 3);
    ASSERT_EQ_INT(ids[0], 151644);
    ASSERT_EQ_INT(ids[1], 77091);
    ASSERT_EQ_INT(ids[2], 198);
    free(ids);

    const char *end = " ...<|im_end|>"; /* assistant_end_bias */
    ids = encode(tok, end, strlen(end), &n);
    ASSERT_EQ_INT(n, 2);
    ASSERT_EQ_INT(ids[1], 151645);
    free(ids);

    const char *silent = "<|im_start|>assistant\n\n ..."; /* the training-format target */
    ids = encode(tok, silent, strlen(silent), &n);
    ASSERT_EQ_INT(n, 4);
    ASSERT_EQ_INT(ids[2], 271); /* "\n\n" is one token */
    free(ids);

    static const struct { const char *name; int32_t id; } named[] = {
        {"<|im_start|>", 151644}, {"<|im_end|>", 151645},     {"<|endoftext|>", 151643},
        {"user", 872},            {"assistant", 77091},       {"Ċ", 198},
        {"<|vision_start|>", 151652}, {"<|vision_end|>", 151653}, {"<|video_pad|>", 151656},
        {"<|image_pad|>", 151655}, {"<|vision_pad|>", 151654}, {"Time", 1462},
        {"previous", 19702},      {"Ġtext", 1467},           {"ĊĊ", 271},
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        ASSERT_MSG(vlm_tokenizer_token_to_id(tok, named[i].name) == named[i].id, "%s: %d != %d",
                   named[i].name, vlm_tokenizer_token_to_id(tok, named[i].name), named[i].id);
    ASSERT_EQ_INT(vlm_tokenizer_token_to_id(tok, "<|no such token|>"), VLM_ENOTFOUND);
    ASSERT(vlm_tokenizer_is_special(tok, 151645));
    ASSERT(!vlm_tokenizer_is_special(tok, 151657)); /* <tool_call>: added, not special */
    ASSERT(!vlm_tokenizer_is_special(tok, 198));
    ASSERT(vlm_tokenizer_id_to_token(tok, 151665, NULL) == NULL);
    ASSERT(vlm_tokenizer_id_to_token(tok, -1, NULL) == NULL);
    vlm_tokenizer_free(tok);
}

/* A whole chunk-0 prompt with 720 video pads encodes to the pads plus the text tokens. */
static void test_tokenizer_prompt_with_video_pads(void) {
    vlm_tokenizer *tok = load_qwen();
    char *p = malloc(20000);
    int k = sprintf(p, SYSTEM_BLOCK "<|im_start|>previous text\n<|im_end|>\n"
                       "<|im_start|>user\nTime=0.0-1.0s<|vision_start|>");
    for (int i = 0; i < 720; i++) k += sprintf(p + k, "<|video_pad|>");
    k += sprintf(p + k, "<|vision_end|>Describe.<|im_end|>\n<|im_start|>assistant\n");
    int64_t n;
    int32_t *ids = encode(tok, p, (size_t)k, &n);
    int pads = 0;
    for (int64_t i = 0; i < n; i++) pads += ids[i] == 151656;
    ASSERT_EQ_INT(pads, 720);
    ASSERT_EQ_INT(ids[n - 1], 198);
    ASSERT_EQ_INT(ids[n - 2], 77091);
    free(ids);
    free(p);
    vlm_tokenizer_free(tok);
}

/* ---- decode ----------------------------------------------------------------------- */

static void test_tokenizer_decode_skip_special_and_capacity(void) {
    vlm_tokenizer *tok = load_qwen();
    int64_t n;
    const char *s = SYSTEM_BLOCK "<tool_call>hi";
    int32_t *ids = encode(tok, s, strlen(s), &n);
    size_t len;
    char *all = decode(tok, ids, n, 0, &len);
    ASSERT_EQ_STR(all, s);
    char *plain = decode(tok, ids, n, VLM_DECODE_SKIP_SPECIAL, &len);
    ASSERT_EQ_STR(plain, "system\nYou are a helpful assistant.\n<tool_call>hi");

    char small[8];
    size_t need = 0;
    ASSERT_EQ_INT(vlm_tokenizer_decode(tok, ids, n, 0, small, sizeof small, &need), VLM_EFULL);
    ASSERT_EQ_INT(need, strlen(s));
    ASSERT_EQ_INT(strlen(small), sizeof small - 1); /* truncated, NUL-terminated */

    /* ids that name no token (the model's padded rows, negatives) decode to nothing */
    int32_t odd[] = {9707, 151665, 151935, -5, 1879};
    char *hw = decode(tok, odd, 5, 0, &len);
    ASSERT_EQ_STR(hw, "Hello world");

    /* encode capacity: EFULL with the full count and the first ids written */
    int32_t few[3] = {0};
    int64_t got = 0;
    char err[VLM_ERR_LEN] = "";
    ASSERT_EQ_INT(vlm_tokenizer_encode(tok, s, strlen(s), few, 3, &got, err), VLM_EFULL);
    ASSERT_EQ_INT(got, n);
    ASSERT_EQ_INT(few[0], ids[0]);
    ASSERT_EQ_INT(few[2], ids[2]);
    free(ids);
    free(all);
    free(plain);
    free(hw);
    vlm_tokenizer_free(tok);
}

/* Byte tokens that form invalid UTF-8 decode to U+FFFD per maximal subpart (HF's
 * from_utf8_lossy); VLM_DECODE_RAW keeps the bytes. */
static void test_tokenizer_decode_invalid_bytes(void) {
    vlm_tokenizer *tok = load_qwen();
    /* single-byte tokens, by their byte-level names (GPT-2's bytes_to_unicode) */
    int32_t e6 = vlm_tokenizer_token_to_id(tok, "æ");  /* byte 0xE6 */
    int32_t x97 = vlm_tokenizer_token_to_id(tok, "Ĺ"); /* byte 0x97 = U+0139 */
    int32_t ff = vlm_tokenizer_token_to_id(tok, "ÿ");  /* byte 0xFF */
    int32_t a = vlm_tokenizer_token_to_id(tok, "a");
    ASSERT(e6 >= 0 && x97 >= 0 && ff >= 0 && a >= 0);
    int32_t ids[] = {e6, x97, a, ff, e6};
    size_t len;
    char *s = decode(tok, ids, 5, 0, &len);
    ASSERT_EQ_STR(s, "\xEF\xBF\xBD" "a" "\xEF\xBF\xBD" "\xEF\xBF\xBD");
    char *raw = decode(tok, ids, 5, VLM_DECODE_RAW, &len);
    ASSERT_EQ_INT(len, 5);
    ASSERT(!memcmp(raw, "\xE6\x97" "a" "\xFF\xE6", 5));
    free(s);
    free(raw);
    vlm_tokenizer_free(tok);
}

/* ---- streaming decoder ------------------------------------------------------------ */

/* Push ids one by one: every piece is valid UTF-8 and the pieces (plus the flush) add up to
 * the whole decode.  Returns how many pushes released nothing. */
static int check_stream(const vlm_tokenizer *tok, const int32_t *ids, int64_t n, unsigned flags) {
    vlm_detok_stream *st = NULL;
    ASSERT_EQ_INT(vlm_detok_stream_new(tok, flags, &st), 0);
    size_t cap = 1 << 16, used = 0;
    char *acc = malloc(cap);
    int held = 0;
    for (int64_t i = 0; i <= n; i++) {
        const char *piece;
        size_t len;
        if (i < n) vlm_detok_stream_push(st, ids[i], &piece, &len);
        else vlm_detok_stream_flush(st, &piece, &len);
        ASSERT_MSG(valid_utf8(piece, len), "piece %" PRId64 " is not valid utf-8", i);
        ASSERT_EQ_INT(strlen(piece), len); /* NUL-terminated, no NUL in these texts */
        held += i < n && len == 0;
        while (used + len > cap) acc = realloc(acc, cap *= 2);
        memcpy(acc + used, piece, len);
        used += len;
    }
    size_t wlen;
    char *whole = decode(tok, ids, n, flags, &wlen);
    ASSERT_MSG(used == wlen && !memcmp(acc, whole, wlen), "stream (%zu bytes) != decode (%zu)",
               used, wlen);
    free(whole);
    free(acc);
    vlm_detok_stream_free(st);
    return held;
}

static void test_tokenizer_stream_utf8(void) {
    vlm_tokenizer *tok = load_qwen();
    const char *s = "emoji 😀👍🏽👨‍👩‍👧‍👦🇺🇳 ❤️ 日本語のテキスト "
                    "한국어 Ελληνικά ภาษาไทย हिन्दी 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🧑🏾‍🚀";
    int64_t n;
    int32_t *ids = encode(tok, s, strlen(s), &n);
    int held = check_stream(tok, ids, n, 0);
    ASSERT_MSG(held > 0, "no token split a character: the test proves nothing");
    free(ids);

    /* invalid sequences, a dangling lead byte at the end, specials skipped */
    int32_t e6 = vlm_tokenizer_token_to_id(tok, "æ"), x97 = vlm_tokenizer_token_to_id(tok, "Ĺ");
    int32_t ff = vlm_tokenizer_token_to_id(tok, "ÿ"), a = vlm_tokenizer_token_to_id(tok, "a");
    int32_t f0 = vlm_tokenizer_token_to_id(tok, "ð"), x9f = vlm_tokenizer_token_to_id(tok, "Ł");
    int32_t odd[] = {e6, x97, 151645, a, ff, e6, x97, 151935, f0, x9f};
    check_stream(tok, odd, 10, 0);
    check_stream(tok, odd, 10, VLM_DECODE_SKIP_SPECIAL);

    /* the whole corpus, token by token */
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/corpus.jsonl", fixture_dir);
    FILE *f = fopen(path, "r");
    ASSERT(f);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, JSON_ALLOW_NUL, NULL);
        json_t *jids = json_object_get(j, "ids");
        int64_t m = (int64_t)json_array_size(jids);
        int32_t *v = malloc((size_t)(m + 1) * sizeof *v);
        for (int64_t i = 0; i < m; i++)
            v[i] = (int32_t)json_integer_value(json_array_get(jids, (size_t)i));
        check_stream(tok, v, m, 0);
        free(v);
        json_decref(j);
    }
    free(line);
    fclose(f);
    vlm_tokenizer_free(tok);
}

/* ---- bad input -------------------------------------------------------------------- */

static void test_tokenizer_invalid_utf8(void) {
    vlm_tokenizer *tok = load_qwen();
    static const struct { const char *s; size_t n, at; } bad[] = {
        {"\xff", 1, 0},
        {"abc\x80", 4, 3},
        {"caf\xc3", 4, 3},                   /* cut short */
        {"x\xed\xa0\x80", 4, 1},             /* surrogate */
        {"\xc0\xaf", 2, 0},                  /* overlong */
        {"\xf4\x90\x80\x80", 4, 0},          /* above U+10FFFF */
        {"ok <|im_end|>\xe2\x82", 15, 13},   /* after an added token */
        {"\xe2\x28\xa1", 3, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t ids[64];
        int64_t n = -1;
        char err[VLM_ERR_LEN] = "";
        int rc = vlm_tokenizer_encode(tok, bad[i].s, bad[i].n, ids, 64, &n, err);
        ASSERT_MSG(rc == VLM_EINVAL, "case %zu: rc %d", i, rc);
        ASSERT_EQ_INT(n, 0);
        char want[64];
        snprintf(want, sizeof want, "invalid utf-8 at byte %zu", bad[i].at);
        ASSERT_CONTAINS(err, want);
    }
    /* NUL is valid UTF-8 and encodes like any control character */
    int32_t ids[8];
    int64_t n;
    char err[VLM_ERR_LEN];
    ASSERT_EQ_INT(vlm_tokenizer_encode(tok, "a\0b", 3, ids, 8, &n, err), 0);
    ASSERT_EQ_INT(n, 3);
    size_t dl;
    int32_t *v = encode(tok, "\xc3\xa9\0e\xcc\x81", 6, &n); /* NFC runs past the NUL */
    char *d = decode(tok, v, n, 0, &dl);
    ASSERT_EQ_INT(dl, 5);
    ASSERT(!memcmp(d, "\xc3\xa9\0\xc3\xa9", 5));
    free(v);
    free(d);
    ASSERT_EQ_INT(vlm_tokenizer_encode(tok, NULL, 0, NULL, 0, &n, err), 0);
    ASSERT_EQ_INT(n, 0);
    vlm_tokenizer_free(tok);
}

static uint64_t rng_state;
static uint32_t rng(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

/* Random bytes never crash; random valid text always round-trips to its NFC. */
static void test_tokenizer_fuzz_roundtrip(void) {
    vlm_tokenizer *tok = load_qwen();
    static const uint32_t pool[] = {
        'a', 'Z', 'e', ' ', ' ', '\n', '\r', '\t', '\'', 's', 'l', '1', '9', '.', '-', '<', '|',
        '>', '_', 0xA0, 0xE9, 0x301, 0x308, 0x17F, 0x130, 0x3000, 0x2028, 0x85, 0x200B, 0xFEFF,
        0x180E, 0x4E2D, 0x6587, 0xAC00, 0x1100, 0x1161, 0x11A8, 0x0915, 0x094D, 0x0937, 0x1F600,
        0x1F3FD, 0x200D, 0xFE0F, 0x10FFFF, 0xFFFD, 0x0627, 0x0E01, 0x0E33, 0x212B, 0x1E0A,
        0x0323, 0x1D11E,
    };
    static const char *frag[] = {"<|im_end|>", "<|im_start|>", "<tool_call>", "'ll", "'S",
                                 "  ", "\n\n", "...", "123"};
    rng_state = 0x9E3779B97F4A7C15ull;
    char buf[512];
    int32_t ids[1024];
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = 0, want = rng() % 120;
        if (iter % 3 == 0) { /* raw bytes: 0 or EINVAL, never a crash */
            for (n = 0; n < want; n++) buf[n] = (char)(rng() & 0xFF);
            int64_t cnt;
            char err[VLM_ERR_LEN];
            int rc = vlm_tokenizer_encode(tok, buf, n, ids, 1024, &cnt, err);
            ASSERT_MSG(rc == 0 || rc == VLM_EINVAL, "rc %d", rc);
            ASSERT_EQ_INT(rc == 0, valid_utf8(buf, n));
            continue;
        }
        while (n < want) {
            if (rng() % 8 == 0) {
                const char *fr = frag[rng() % (sizeof frag / sizeof frag[0])];
                memcpy(buf + n, fr, strlen(fr));
                n += strlen(fr);
            } else {
                uint32_t cp = pool[rng() % (sizeof pool / sizeof pool[0])];
                n += (size_t)utf8proc_encode_char((utf8proc_int32_t)cp,
                                                  (utf8proc_uint8_t *)buf + n);
            }
        }
        int64_t cnt;
        char err[VLM_ERR_LEN] = "";
        ASSERT_MSG(vlm_tokenizer_encode(tok, buf, n, ids, 1024, &cnt, err) == 0, "%s", err);
        size_t dlen, nlen;
        char *dec = decode(tok, ids, cnt, 0, &dlen);
        char *norm = nfc(buf, n, &nlen);
        ASSERT_MSG(dlen == nlen && !memcmp(dec, norm, nlen), "iteration %d: no round-trip", iter);
        free(dec);
        free(norm);
    }
    vlm_tokenizer_free(tok);
}

/* A malformed tokenizer.json gives a clear error (code, file and key), never a crash. */
static void test_tokenizer_malformed_files(void) {
    static const struct { const char *json; int code; const char *msg; } bad[] = {
        {"not json {", VLM_EFORMAT, "not json"},
        {"", VLM_EFORMAT, "not json"},
        {"[1, 2]", VLM_EFORMAT, "top level is not an object"},
        {"{}", VLM_EFORMAT, "'model' missing"},
        {"{\"model\": 3}", VLM_EFORMAT, "'model' is not an object"},
        {"{\"model\": {\"type\": \"BPE\", \"merges\": []}}", VLM_EFORMAT, "'model.vocab' missing"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", VLM_EFORMAT,
         "'model.merges' missing"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": [\"a\"], \"merges\": []}}", VLM_EFORMAT,
         "'model.vocab' is not an object"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"0\"}, \"merges\": []}}", VLM_EFORMAT,
         "'model.vocab' entry \"a\" is not an id"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}", VLM_EFORMAT,
         "'model.vocab' entry \"a\" is not an id"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": {}}}", VLM_EFORMAT,
         "'model.merges' is not an array"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", VLM_EFORMAT,
         "'model.vocab' is empty"},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", VLM_EUNSUPPORTED,
         "'model.type' \"WordPiece\" is unsupported"},
        {"{\"model\": {\"type\": 7, \"vocab\": {\"a\": 0}, \"merges\": []}}", VLM_EFORMAT,
         "'model.type' is not a string"},
        {"{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a c\"]}}",
         VLM_EFORMAT, "'model.merges[0]' names unknown token \"c\""},
        {"{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\", \"b\"], "
         "[\"x\", \"b\"]]}}",
         VLM_EFORMAT, "'model.merges[1]' names unknown token \"x\""},
        {"{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}", VLM_EFORMAT,
         "'model.merges[0]' makes \"ab\", not in 'model.vocab'"},
        {"{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"ab\"]}}", VLM_EFORMAT,
         "'model.merges[0]' \"ab\" is not \"a b\""},
        {"{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [3]}}", VLM_EFORMAT,
         "'model.merges[0]' is neither"},
        {"{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\"]]}}", VLM_EFORMAT,
         "'model.merges[0]' is neither"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": {}}", VLM_EFORMAT,
         "'added_tokens' is not an array"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": [{\"id\": \"5\","
         " \"content\": \"<x>\"}]}",
         VLM_EFORMAT, "'added_tokens[0].id' is not an id"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": [{\"id\": 5}]}",
         VLM_EFORMAT, "'added_tokens[0].content' missing"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": [{\"id\": 5, "
         "\"content\": \"<x>\", \"special\": \"yes\"}]}",
         VLM_EFORMAT, "'added_tokens[0].special' is not a boolean"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}}", VLM_EUNSUPPORTED,
         "'pre_tokenizer' has no ByteLevel step"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": "
         "\"Split\", \"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}",
         VLM_EFORMAT, "'pre_tokenizer.pattern.Regex' does not compile"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": "
         "\"Sequence\", \"pretokenizers\": [{\"type\": \"Whitespace\"}]}}",
         VLM_EUNSUPPORTED, "'pre_tokenizer.pretokenizers[0].type' \"Whitespace\" is unsupported"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": "
         "\"Lowercase\"}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
         VLM_EUNSUPPORTED, "'normalizer.type' \"Lowercase\" is unsupported"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": "
         "\"ByteLevel\"}, \"decoder\": {\"type\": \"WordPiece\"}}",
         VLM_EUNSUPPORTED, "'decoder.type' \"WordPiece\" is unsupported"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [], \"unk_token\": \"<unk>\"}, "
         "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
         VLM_EFORMAT, "'model.unk_token' \"<unk>\" is not in 'model.vocab'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *path = write_temp(bad[i].json, strlen(bad[i].json));
        vlm_tokenizer *tok = (vlm_tokenizer *)&tok; /* must be reset to NULL */
        char err[VLM_ERR_LEN] = "";
        int rc = vlm_tokenizer_load(path, &tok, err);
        unlink(path);
        ASSERT_MSG(rc == bad[i].code, "case %zu: rc %d (%s), want %d", i, rc, err, bad[i].code);
        ASSERT(tok == NULL);
        ASSERT_CONTAINS(err, strrchr(path, '/') + 1); /* names the file */
        ASSERT_CONTAINS(err, bad[i].msg);
    }
    /* a missing file, and the real file cut short */
    vlm_tokenizer *tok = NULL;
    char err[VLM_ERR_LEN] = "";
    ASSERT_EQ_INT(vlm_tokenizer_load("/nonexistent/tokenizer.json", &tok, err), VLM_EIO);
    ASSERT_CONTAINS(err, "/nonexistent/tokenizer.json: cannot open");
    ASSERT_MSG(qwen_path[0], "no decompressed tokenizer");
    FILE *f = fopen(qwen_path, "rb");
    ASSERT(f);
    char head[4096];
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    const char *path = write_temp(head, n);
    ASSERT_EQ_INT(vlm_tokenizer_load(path, &tok, err), VLM_EFORMAT);
    unlink(path);
    ASSERT_CONTAINS(err, "not json");
}

/* ---- a tiny hand-made tokenizer ---------------------------------------------------- */

static uint32_t byte_cp(int b) { /* GPT-2's bytes_to_unicode */
    if (b <= 32) return 256 + (uint32_t)b;
    if (b >= 127 && b <= 160) return 256 + 33 + (uint32_t)(b - 127);
    if (b == 173) return 323;
    return (uint32_t)b;
}

/* Byte b has id b; then he=256 ll=257 hell=258 hello=259 Ġw=260 12=261 xyz=262 (no merge
 * makes xyz); added tokens 300..304.  Merges as "a b" strings or as [a, b] pairs. */
static char *tiny_tokenizer_text(bool pairs, const char *regex) {
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char u[5] = {0};
        utf8proc_encode_char((utf8proc_int32_t)byte_cp(b), (utf8proc_uint8_t *)u);
        json_object_set_new(vocab, u, json_integer(b));
    }
    static const char *extra[] = {"he", "ll", "hell", "hello", "Ġw", "12", "xyz"};
    for (int i = 0; i < 7; i++) json_object_set_new(vocab, extra[i], json_integer(256 + i));
    static const char *mm[][2] = {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"},
                                  {"Ġ", "w"}, {"1", "2"}};
    json_t *merges = json_array();
    for (int i = 0; i < 6; i++) {
        if (pairs) {
            json_array_append_new(merges, json_pack("[ss]", mm[i][0], mm[i][1]));
        } else {
            char s[32];
            snprintf(s, sizeof s, "%s %s", mm[i][0], mm[i][1]);
            json_array_append_new(merges, json_string(s));
        }
    }
    json_t *added = json_pack(
        "[{sisssbsbsbsbsb}{sisssbsbsbsbsb}{sisssbsbsbsbsb}{sisssbsbsbsbsb}{sisssbsbsbsbsb}]",
        "id", 300, "content", "<|sp|>", "special", 1, "lstrip", 0, "rstrip", 0,
        "single_word", 0, "normalized", 0,
        "id", 301, "content", "[L]", "special", 1, "lstrip", 1, "rstrip", 0, "single_word", 0,
        "normalized", 0,
        "id", 302, "content", "[R]", "special", 1, "lstrip", 0, "rstrip", 1, "single_word", 0,
        "normalized", 0,
        "id", 303, "content", "word", "special", 0, "lstrip", 0, "rstrip", 0,
        "single_word", 1, "normalized", 0,
        "id", 304, "content", "é!", "special", 0, "lstrip", 0, "rstrip", 0,
        "single_word", 0, "normalized", 1);
    json_t *root = json_pack(
        "{s:o, s:{s:s}, s:{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b}]}, "
        "s:{s:s}, s:{s:s, s:o, s:o}}",
        "added_tokens", added, "normalizer", "type", "NFC", "pre_tokenizer", "type",
        "Sequence", "pretokenizers", "type", "Split", "pattern", "Regex", regex, "behavior",
        "Isolated", "invert", 0, "type", "ByteLevel", "add_prefix_space", 0, "use_regex", 0,
        "decoder", "type", "ByteLevel", "model", "type", "BPE", "vocab", vocab, "merges",
        merges);
    ASSERT(root);
    char *text = json_dumps(root, JSON_INDENT(1));
    json_decref(root);
    return text;
}

static const char *tiny_tokenizer(bool pairs, const char *regex) {
    char *text = tiny_tokenizer_text(pairs, regex);
    const char *path = write_temp(text, strlen(text));
    free(text);
    return path;
}

static void expect_ids(const vlm_tokenizer *tok, const char *s, const int32_t *want, int64_t n) {
    int64_t got_n;
    int32_t *got = encode(tok, s, strlen(s), &got_n);
    bool same = got_n == n && !memcmp(got, want, (size_t)n * sizeof *got);
    if (!same) {
        print_ids("want", want, n);
        print_ids("got ", got, got_n);
    }
    ASSERT_MSG(same, "\"%s\" encodes differently", s);
    free(got);
}

#define EXPECT(tok, s, ...)                                                                \
    do {                                                                                   \
        static const int32_t w_[] = {__VA_ARGS__};                                         \
        expect_ids(tok, s, w_, (int64_t)(sizeof w_ / sizeof w_[0]));                       \
    } while (0)

static const char qwen_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static void test_tokenizer_tiny_merges_and_added_flags(void) {
    for (int pairs = 0; pairs < 2; pairs++) {
        const char *path = tiny_tokenizer(pairs, qwen_regex);
        vlm_tokenizer *tok = NULL;
        char err[VLM_ERR_LEN] = "";
        int rc = vlm_tokenizer_load(path, &tok, err);
        unlink(path);
        ASSERT_MSG(rc == 0, "tiny (%s merges): %s", pairs ? "pair" : "string", err);
        ASSERT_EQ_INT(vlm_tokenizer_vocab_size(tok), 305);
        EXPECT(tok, "hello", 259);
        EXPECT(tok, "hell", 258);
        EXPECT(tok, "help", 256, 'l', 'p');
        EXPECT(tok, "hello world", 259, 260, 'o', 'r', 'l', 'd');
        EXPECT(tok, "<|sp|>hello<|sp|>", 300, 259, 300);
        EXPECT(tok, "a  [L]b", 'a', 301, 'b');        /* lstrip takes the spaces */
        EXPECT(tok, "<|sp|> [L]", 300, 301);
        EXPECT(tok, "a[R] \t b", 'a', 302, 'b');      /* rstrip */
        EXPECT(tok, "a word b", 'a', ' ', 303, ' ', 'b'); /* single word */
        EXPECT(tok, "awordb", 'a', 'w', 'o', 'r', 'd', 'b');            /* inside a word */
        EXPECT(tok, "word.", 303, '.');
        /* "normalized": true matches after NFC: e + U+0301 + "!" becomes "é!" */
        EXPECT(tok, "xe\xcc\x81!", 'x', 304);
        EXPECT(tok, "\xc3\xa9!", 304);
        size_t len;
        int32_t ids[] = {300, 259, 301, 303};
        char *s = decode(tok, ids, 4, VLM_DECODE_SKIP_SPECIAL, &len);
        ASSERT_EQ_STR(s, "helloword");
        free(s);
        ASSERT_EQ_INT(vlm_tokenizer_token_to_id(tok, "[R]"), 302);
        ASSERT_EQ_INT(vlm_tokenizer_token_to_id(tok, "Ġw"), 260);
        vlm_tokenizer_free(tok);
    }
    /* digits are single pieces under the Qwen2 regex */
    {
        const char *p2 = tiny_tokenizer(true, qwen_regex);
        vlm_tokenizer *t2 = NULL;
        ASSERT(vlm_tokenizer_load(p2, &t2, NULL) == 0);
        unlink(p2);
        EXPECT(t2, "x12", 'x', '1', '2');
        EXPECT(t2, "xyz", 'x', 'y', 'z');
        vlm_tokenizer_free(t2);
    }
    /* the pre-tokenizer regex is read from the file: a regex that splits every char kills
     * all merges */
    const char *path = tiny_tokenizer(false, ".");
    vlm_tokenizer *tok = NULL;
    char err[VLM_ERR_LEN] = "";
    ASSERT_MSG(vlm_tokenizer_load(path, &tok, err) == 0, "%s", err);
    unlink(path);
    EXPECT(tok, "hello", 'h', 'e', 'l', 'l', 'o');
    vlm_tokenizer_free(tok);
}

/* Mutated tokenizer.json files (cut short, bytes changed, dropped or added) load or fail
 * cleanly; whatever jansson rejects as JSON is rejected too, and "not json" only when
 * jansson agrees. */
static void test_tokenizer_load_fuzz(void) {
    char *base = tiny_tokenizer_text(true, qwen_regex);
    size_t n = strlen(base);
    char *buf = malloc(n + 2);
    static const char alphabet[] = "\"\\{}[],:0a-. u\x80\xff\x01";
    rng_state = 0x1234567ull;
    int loaded = 0, not_json = 0;
    for (int iter = 0; iter < 600; iter++) {
        size_t m = n, at = rng() % n;
        memcpy(buf, base, n);
        char c = alphabet[rng() % (sizeof alphabet - 1)];
        switch (iter % 4) {
        case 0: m = at; break;                                  /* cut short */
        case 1: buf[at] = c; break;                             /* change a byte */
        case 2: memmove(buf + at, buf + at + 1, n - at - 1); m--; break; /* drop one */
        default: memmove(buf + at + 1, buf + at, n - at); buf[at] = c; m++; break;
        }
        const char *path = write_temp(buf, m);
        vlm_tokenizer *tok = NULL;
        char err[VLM_ERR_LEN] = "";
        int rc = vlm_tokenizer_load(path, &tok, err);
        unlink(path);
        json_error_t je;
        json_t *j = json_loadb(buf, m, JSON_ALLOW_NUL, &je);
        if (rc == 0) {
            ASSERT(tok);
            ASSERT_MSG(j, "iteration %d: loaded what jansson rejects: %s", iter, je.text);
            int64_t cnt;
            vlm_tokenizer_encode(tok, "hello <|sp|> world", 18, NULL, 0, &cnt, NULL);
            vlm_tokenizer_free(tok);
            loaded++;
        } else {
            ASSERT(tok == NULL && err[0] && rc < 0);
            if (strstr(err, "not json")) {
                ASSERT_MSG(!j, "iteration %d: jansson reads it, we say: %s", iter, err);
                not_json++;
            }
        }
        json_decref(j);
    }
    ASSERT_MSG(loaded > 0 && not_json > 0, "load fuzz: %d loaded, %d not json", loaded,
               not_json); /* the mutations reach both outcomes */
    free(buf);
    free(base);
}

/* Write the tiny tokenizer with root edited by edit(); load it. */
static vlm_tokenizer *tiny_edited(void (*edit)(json_t *root)) {
    char *text = tiny_tokenizer_text(true, qwen_regex);
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    ASSERT(root);
    edit(root);
    text = json_dumps(root, 0);
    json_decref(root);
    const char *path = write_temp(text, strlen(text));
    free(text);
    vlm_tokenizer *tok = NULL;
    char err[VLM_ERR_LEN] = "";
    int rc = vlm_tokenizer_load(path, &tok, err);
    unlink(path);
    ASSERT_MSG(rc == 0, "%s", err);
    return tok;
}

static void edit_gpt2(json_t *root) { /* GPT-2: ByteLevel with its own regex, no normalizer */
    json_object_set_new(root, "pre_tokenizer",
                        json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel",
                                  "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 1));
    json_object_set_new(root, "normalizer", json_null());
}

static void edit_ignore_merges(json_t *root) {
    json_object_set_new(json_object_get(root, "model"), "ignore_merges", json_true());
}

static void edit_removed(json_t *root) { /* Split on " " (a String pattern), Removed */
    json_t *steps = json_object_get(json_object_get(root, "pre_tokenizer"), "pretokenizers");
    json_t *split = json_array_get(steps, 0);
    json_object_set_new(split, "pattern", json_pack("{s:s}", "String", " "));
    json_object_set_new(split, "behavior", json_string("Removed"));
}

/* Other tokenizer.json shapes: GPT-2's pre-tokenizer, ignore_merges, a Removed split. */
static void test_tokenizer_tiny_variants(void) {
    vlm_tokenizer *tok = tiny_edited(edit_gpt2);
    EXPECT(tok, "x12", 'x', 261);            /* \p{N}+ keeps digits together */
    EXPECT(tok, "hello world", 259, 260, 'o', 'r', 'l', 'd');
    EXPECT(tok, "e\xcc\x81!", 'e', 0xcc, 0x81, '!'); /* no normalizer: no NFC, no "é!" */
    vlm_tokenizer_free(tok);

    tok = tiny_edited(edit_ignore_merges);
    EXPECT(tok, "xyz", 262); /* in the vocabulary, though no merge makes it */
    EXPECT(tok, "hello", 259);
    EXPECT(tok, "xyzw", 'x', 'y', 'z', 'w');
    vlm_tokenizer_free(tok);

    tok = tiny_edited(edit_removed);
    EXPECT(tok, "he llo  x", 256, 257, 'o', 'x');
    vlm_tokenizer_free(tok);
}

static const test_case tests[] = {
    {"tokenizer_builtin_golden", test_tokenizer_builtin_golden},
    {"tokenizer_corpus_golden", test_tokenizer_corpus_golden},
    {"tokenizer_spec_prompt_facts", test_tokenizer_spec_prompt_facts},
    {"tokenizer_prompt_with_video_pads", test_tokenizer_prompt_with_video_pads},
    {"tokenizer_decode_skip_special_and_capacity", test_tokenizer_decode_skip_special_and_capacity},
    {"tokenizer_decode_invalid_bytes", test_tokenizer_decode_invalid_bytes},
    {"tokenizer_stream_utf8", test_tokenizer_stream_utf8},
    {"tokenizer_invalid_utf8", test_tokenizer_invalid_utf8},
    {"tokenizer_fuzz_roundtrip", test_tokenizer_fuzz_roundtrip},
    {"tokenizer_malformed_files", test_tokenizer_malformed_files},
    {"tokenizer_tiny_merges_and_added_flags", test_tokenizer_tiny_merges_and_added_flags},
    {"tokenizer_tiny_variants", test_tokenizer_tiny_variants},
    {"tokenizer_load_fuzz", test_tokenizer_load_fuzz},
    {0},
};

int main(int argc, char **argv) {
    find_fixtures();
    if (fixture_dir[0]) { /* decompress the tokenizer once; the forked tests share it */
        char tmpl[] = "/tmp/test-tokenizer-qwen-XXXXXX.json";
        int fd = mkstemps(tmpl, 5);
        if (fd >= 0) {
            close(fd);
            char cmd[3 * PATH_MAX];
            snprintf(cmd, sizeof cmd, "xz -dc '%s/qwen2.5-tokenizer.json.xz' > '%s'",
                     fixture_dir, tmpl);
            if (system(cmd) == 0) snprintf(qwen_path, sizeof qwen_path, "%s", tmpl);
            else unlink(tmpl);
        }
    }
    int rc = test_main(argc, argv, tests);
    if (qwen_path[0]) unlink(qwen_path);
    return rc;
}
