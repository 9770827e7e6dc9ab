/* tokenizer.c — byte-level BPE from a Hugging Face tokenizer.json (Qwen2/Qwen2.5, GPT-2).
 *
 * For: encoding prompt text (previous_text, queries, "Time=" strings, the chat template)
 * exactly as HF tokenizers does with add_special_tokens=false, and decoding generated ids
 * (whole, or one at a time through a vlm_detok_stream).  Not for: other model types
 * (WordPiece, Unigram), post-processors, offsets, training.
 *
 * Encode pipeline (HF tokenizers' TokenizerImpl::encode_single_sequence):
 *   1. validate UTF-8 (invalid input is VLM_EINVAL, never a crash);
 *   2. split out added tokens with "normalized": false from the raw text: leftmost-longest
 *      whole-string matches, with single_word/lstrip/rstrip as in HF's AddedVocabulary;
 *   3. normalise each remaining gap (NFC for Qwen2, via utf8proc), then split out the added
 *      tokens with "normalized": true from the normalised text;
 *   4. pre-tokenize: each Split step of pre_tokenizer (its regex from the file, run by PCRE2
 *      with UTF+UCP; behaviour Isolated or Removed), then ByteLevel (its own GPT-2 regex only
 *      when use_regex is true);
 *   5. BPE on each piece: one symbol per byte (GPT-2 byte-to-unicode, so every byte is a
 *      token), then merge the lowest-ranked adjacent pair first, ties to the leftmost, with a
 *      binary heap over a linked list of symbols (HF's Word::merge_all).
 * Decode: each token's string mapped back through byte-to-unicode (HF's ByteLevel decoder:
 * a token with any char outside the table is taken as its raw UTF-8), then read as UTF-8
 * with invalid sequences replaced by U+FFFD per maximal subpart (Rust's from_utf8_lossy).
 *
 * Known differences from HF, none of them met by the 350 reference strings: HF runs the
 * Split regex with Oniguruma, whose \s leaves out U+180E (Mongolian vowel separator) while
 * PCRE2's \s includes it; utf8proc, PCRE2 and HF may ship different Unicode versions, so a
 * code point assigned in only one of them can normalise or classify differently.
 *
 * Reading: tokenizer.json is scanned by hand for model.vocab and model.merges (jansson took
 * ~1 s on Qwen2's 5 MB file); the small members go through jansson (see "loading").
 *
 * Lookups: the vocabulary and added tokens are open-addressing hash maps keyed by the token
 * string (used at load and by token_to_id); merges are a hash map keyed by the pair of ids,
 * so encoding never hashes a string.  There is no per-word cache: the merge loop is
 * O(n log n) in the piece length and keeps the tokenizer immutable (thread-safe) after load.
 *
 * Invariants after load: every present id has a name (as in the file) and decoded bytes;
 * every merge maps two vocabulary ids to a vocabulary id; byte_id[b] is the id of byte b's
 * token or -1 (then the unk id if the model has one).
 *
 * Thread: any (see tokenizer.h).  encode allocates scratch per call (match data, normalised
 * text, the BPE heap) and frees it before returning.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <utf8proc.h>

#include "tokenizer.h"
#include "vlm_util.h"

#define TOK_MAX_ID (1 << 24) /* ids at or above this are rejected: keeps the id table sane */
#define TOK_MAX_STEPS 8      /* pre-tokenizer steps */
#define TOK_MAX_NORMS 4      /* normalizers in a Sequence */

/* The regex HF's ByteLevel pre-tokenizer uses when "use_regex" is true (GPT-2's). */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

enum { TOK_PRESENT = 1, TOK_SPECIAL = 2, TOK_ADDED = 4 };

/* One id of the id space. */
typedef struct tok_id {
    uint32_t name_off, name_len;   /* the token as written in the file, in names */
    uint32_t bytes_off, bytes_len; /* what it decodes to, in bytes */
    uint32_t flags;                /* TOK_PRESENT | TOK_SPECIAL | TOK_ADDED */
} tok_id;

/* Open-addressing map from a string in the names arena to an id; id -1 marks a free slot. */
typedef struct str_slot {
    uint32_t hash, off, len;
    int32_t id;
} str_slot;

typedef struct str_map {
    str_slot *slots; /* (mask + 1) */
    uint64_t mask;
} str_map;

/* Merge map: (left id << 32 | right id) -> rank and merged id; key UINT64_MAX is free. */
typedef struct merge_slot {
    uint64_t key;
    int32_t rank, new_id;
} merge_slot;

typedef struct added_tok {
    int32_t id;
    uint32_t off, len; /* content, in names */
    bool special, lstrip, rstrip, single_word, normalized;
} added_tok;

/* Added tokens matched on one form of the text, grouped by first byte, longest first. */
typedef struct added_set {
    int32_t *order;     /* (n) indices into tok->added */
    int32_t start[257]; /* order[start[b] .. start[b+1]) begin with byte b */
    int64_t n;
} added_set;

typedef struct pretok_step {
    pcre2_code *re; /* NULL: the step splits nothing (ByteLevel with use_regex false) */
    bool removed;   /* behaviour Removed: drop the matches; else Isolated */
} pretok_step;

struct vlm_tokenizer {
    char *names; /* every token string, NUL-terminated */
    size_t names_len, names_cap;
    uint8_t *bytes; /* every id's decoded bytes */
    size_t bytes_len, bytes_cap;
    size_t max_bytes; /* longest decoded token */

    tok_id *ids; /* (n_ids) */
    int64_t n_ids;
    str_map vocab;     /* BPE vocabulary: name -> id */
    str_map added_map; /* added tokens: content -> id */

    merge_slot *merges; /* (merges_mask + 1) */
    uint64_t merges_mask;
    int64_t n_merges;

    int32_t byte_id[256]; /* the token of each raw byte, -1 if none */
    bool ignore_merges;   /* a whole piece found in the vocabulary is one token */

    int norm_opts[TOK_MAX_NORMS]; /* utf8proc options of each normalizer, in order */
    int n_norm;
    bool norm_nfc_only; /* the normalizer is exactly NFC: code points < U+0300 are stable */

    pretok_step steps[TOK_MAX_STEPS];
    int n_steps;

    added_tok *added; /* (n_added) in file order */
    int64_t n_added;
    added_set raw_set;  /* "normalized": false, matched before normalisation */
    added_set norm_set; /* "normalized": true, matched after it */
};

/* ---- small helpers ------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x) { /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint32_t hash_str(const char *s, size_t n) { /* FNV-1a, then mixed */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return (uint32_t)mix64(h);
}

static uint64_t pow2_at_least(uint64_t n) {
    uint64_t p = 16;
    while (p < n) p <<= 1;
    return p;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves; the other 68
 * (0-32, 127-160, 173) map to U+0100.. in byte order. */
static uint32_t byte_cp(int b) {
    if (b <= 32) return 256 + (uint32_t)b;
    if (b >= 127 && b <= 160) return 256 + 33 + (uint32_t)(b - 127);
    if (b == 173) return 256 + 33 + 34;
    return (uint32_t)b;
}

/* The byte a code point of the byte-level alphabet stands for, or -1. */
static int cp_byte(uint32_t cp) {
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp >= 256 && cp <= 288) return (int)cp - 256;
    if (cp >= 289 && cp <= 322) return (int)cp - 289 + 127;
    if (cp == 323) return 173;
    return -1;
}

static size_t utf8_put(uint32_t cp, uint8_t *o) {
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is invalid or cut short.
 * Rejects overlongs, surrogates and code points above U+10FFFF (RFC 3629). */
static size_t utf8_seq(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (n < need + 1 || s[1] < lo || s[1] > hi) return 0;
    uint32_t v = c & (0x3F >> need);
    for (size_t k = 1; k <= need; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[k] & 0x3F);
    }
    *cp = v;
    return need + 1;
}

/* Decode the (valid) character that ends at s[end]; returns its start. */
static size_t utf8_prev(const uint8_t *s, size_t end, uint32_t *cp) {
    size_t i = end - 1;
    while (i > 0 && (s[i] & 0xC0) == 0x80) i--;
    utf8_seq(s + i, end - i, cp);
    return i;
}

/* Rust's char::is_whitespace (the White_Space property); used for lstrip/rstrip. */
static bool is_white(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Close to Rust's char::is_alphanumeric (Alphabetic || Numeric), used for single_word:
 * letters and numbers by general category (Other_Alphabetic marks are not counted). */
static bool is_word(uint32_t c) {
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return true;
    default:
        return false;
    }
}

/* ---- incremental UTF-8 sanitiser (shared by decode and the stream) ------------------ */

/* Output that counts everything and stores what fits. */
typedef struct sink {
    char *buf;
    size_t cap, len;
} sink;

static void sink_put(sink *o, const void *p, size_t n) {
    const char *c = p;
    for (size_t i = 0; i < n; i++, o->len++)
        if (o->len < o->cap) o->buf[o->len] = c[i];
}

/* A partial sequence held back: buf[0..have) is a valid prefix of a need-byte sequence. */
typedef struct utf8_state {
    uint8_t buf[4];
    uint8_t have, need;
} utf8_state;

static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Feed one byte: emits complete characters, U+FFFD for each maximal invalid subpart. */
static void utf8_feed(utf8_state *st, uint8_t c, sink *o) {
    for (;;) {
        if (st->have == 0) {
            if (c < 0x80) {
                sink_put(o, &c, 1);
            } else if (c >= 0xC2 && c <= 0xF4) {
                st->buf[0] = c;
                st->have = 1;
                st->need = c <= 0xDF ? 2 : c <= 0xEF ? 3 : 4;
            } else {
                sink_put(o, fffd, 3);
            }
            return;
        }
        uint8_t lo = 0x80, hi = 0xBF;
        if (st->have == 1) {
            switch (st->buf[0]) {
            case 0xE0: lo = 0xA0; break;
            case 0xED: hi = 0x9F; break;
            case 0xF0: lo = 0x90; break;
            case 0xF4: hi = 0x8F; break;
            default: break;
            }
        }
        if (c >= lo && c <= hi) {
            st->buf[st->have++] = c;
            if (st->have == st->need) {
                sink_put(o, st->buf, st->need);
                st->have = 0;
            }
            return;
        }
        sink_put(o, fffd, 3); /* the held prefix is a maximal subpart; c starts afresh */
        st->have = 0;
    }
}

static void utf8_finish(utf8_state *st, sink *o) {
    if (st->have) sink_put(o, fffd, 3);
    st->have = 0;
}

/* ---- the hash maps ---------------------------------------------------------------- */

static int str_map_init(str_map *m, int64_t n) {
    uint64_t cap = pow2_at_least((uint64_t)n * 2 + 1);
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return VLM_ENOMEM;
    for (uint64_t i = 0; i < cap; i++) m->slots[i].id = -1;
    m->mask = cap - 1;
    return 0;
}

/* The slot holding key, or the free slot where it would go. */
static str_slot *str_map_slot(const str_map *m, const char *names, const char *key, size_t n,
                              uint32_t h) {
    for (uint64_t i = h & m->mask;; i = (i + 1) & m->mask) {
        str_slot *s = &m->slots[i];
        if (s->id < 0) return s;
        if (s->hash == h && s->len == n && memcmp(names + s->off, key, n) == 0) return s;
    }
}

static int32_t str_map_get(const str_map *m, const char *names, const char *key, size_t n) {
    if (!m->slots) return -1;
    return str_map_slot(m, names, key, n, hash_str(key, n))->id;
}

/* Maps the name at names[off..off+len) to id; a repeated name takes the later id. */
static void str_map_put(str_map *m, const char *names, uint32_t off, uint32_t len, int32_t id) {
    uint32_t h = hash_str(names + off, len);
    str_slot *s = str_map_slot(m, names, names + off, len, h);
    *s = (str_slot){h, off, len, id};
}

static const merge_slot *merge_get(const vlm_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (uint64_t i = mix64(key) & t->merges_mask;; i = (i + 1) & t->merges_mask) {
        const merge_slot *s = &t->merges[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
    }
}

/* ---- loading ----------------------------------------------------------------------
 *
 * jansson needs about a second and 300k allocations for Qwen2's 5 MB tokenizer.json, nearly
 * all of it in model.vocab (151k keys) and model.merges (151k pairs).  So the file is
 * scanned here: those two members go straight into the names arena and flat lists, and
 * every other member's text (all small) is handed to json_loadb.  The scanner checks full
 * JSON syntax (escapes, surrogate pairs, UTF-8, numbers, nesting), so a malformed file fails
 * as "not json ... (line, column)" like jansson would.  Content errors found while scanning
 * vocab or merges are kept and reported after model.type has been checked.
 */

typedef struct vocab_raw {
    uint32_t off, len; /* in names */
    int32_t id;
} vocab_raw;

typedef struct merge_raw {
    uint32_t a_off, a_len, b_off, b_len; /* in loader.mtext */
} merge_raw;

typedef struct loader {
    const char *file; /* name used in messages */
    char *err;
    vlm_tokenizer *tok;

    char *js; /* the file (jn bytes) and the scan position */
    size_t jn, ji;
    int depth;
    char *sbuf; /* the last decoded string, NUL-terminated */
    size_t scap;

    json_t *rest;  /* every top-level member but "model" */
    json_t *model; /* "model" without vocab and merges; NULL until seen */
    bool model_not_obj;
    int vocab_state, merges_state; /* 0 absent, 1 scanned, 2 of the wrong type */
    vocab_raw *vr;
    size_t n_vr, vr_cap;
    merge_raw *mr;
    size_t n_mr, mr_cap;
    char *mtext; /* merge halves */
    size_t mt_len, mt_cap;
    int vocab_rc, merges_rc; /* the first bad entry, message below */
    char vocab_msg[VLM_ERR_LEN], merges_msg[VLM_ERR_LEN];
    int64_t max_id;
} loader;

static int lerr(loader *ld, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int lerr(loader *ld, int code, const char *fmt, ...) {
    char msg[VLM_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vlm__errf(ld->err, code, "%s: %s", ld->file, msg);
}

/* Grow *p (elements of size sz) to hold at least need; 0 or VLM_ENOMEM. */
static int grow(void *pp, size_t *cap, size_t need, size_t sz) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *p = realloc(*(void **)pp, c * sz);
    if (!p) return VLM_ENOMEM;
    *(void **)pp = p;
    *cap = c;
    return 0;
}

/* Append n bytes and a NUL to the names arena; *off receives where. */
static int names_add(vlm_tokenizer *t, const char *s, size_t n, uint32_t *off) {
    if (t->names_len + n + 1 > t->names_cap) {
        size_t cap = t->names_cap ? t->names_cap : 1 << 20;
        while (cap < t->names_len + n + 1) cap *= 2;
        if (cap > UINT32_MAX) return VLM_ENOMEM;
        char *p = realloc(t->names, cap);
        if (!p) return VLM_ENOMEM;
        t->names = p;
        t->names_cap = cap;
    }
    memcpy(t->names + t->names_len, s, n);
    t->names[t->names_len + n] = 0;
    *off = (uint32_t)t->names_len;
    t->names_len += n + 1;
    return 0;
}

static int bytes_add(vlm_tokenizer *t, const uint8_t *s, size_t n, uint32_t *off) {
    if (t->bytes_len + n > t->bytes_cap) {
        size_t cap = t->bytes_cap ? t->bytes_cap : 1 << 20;
        while (cap < t->bytes_len + n) cap *= 2;
        if (cap > UINT32_MAX) return VLM_ENOMEM;
        uint8_t *p = realloc(t->bytes, cap);
        if (!p) return VLM_ENOMEM;
        t->bytes = p;
        t->bytes_cap = cap;
    }
    memcpy(t->bytes + t->bytes_len, s, n);
    *off = (uint32_t)t->bytes_len;
    t->bytes_len += n;
    return 0;
}

/* An optional boolean member: absent or null keeps *v. */
static int get_bool(loader *ld, json_t *obj, const char *key, const char *path, bool *v) {
    json_t *j = json_object_get(obj, key);
    if (!j || json_is_null(j)) return 0;
    if (!json_is_boolean(j))
        return lerr(ld, VLM_EFORMAT, "'%s.%s' is not a boolean", path, key);
    *v = json_is_true(j);
    return 0;
}

/* An optional string member: NULL when absent or null. */
static int get_str(loader *ld, json_t *obj, const char *key, const char *path, const char **v) {
    json_t *j = json_object_get(obj, key);
    *v = NULL;
    if (!j || json_is_null(j)) return 0;
    if (!json_is_string(j)) return lerr(ld, VLM_EFORMAT, "'%s.%s' is not a string", path, key);
    *v = json_string_value(j);
    return 0;
}

static int parse_added(loader *ld, json_t *arr, int64_t *max_id) {
    vlm_tokenizer *t = ld->tok;
    if (!arr || json_is_null(arr)) return 0;
    if (!json_is_array(arr)) return lerr(ld, VLM_EFORMAT, "'added_tokens' is not an array");
    size_t n = json_array_size(arr);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return VLM_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        char path[48];
        snprintf(path, sizeof path, "added_tokens[%zu]", i);
        if (!json_is_object(o)) return lerr(ld, VLM_EFORMAT, "'%s' is not an object", path);
        json_t *jid = json_object_get(o, "id"), *jc = json_object_get(o, "content");
        if (!jid) return lerr(ld, VLM_EFORMAT, "'%s.id' missing", path);
        if (!json_is_integer(jid) || json_integer_value(jid) < 0 ||
            json_integer_value(jid) >= TOK_MAX_ID)
            return lerr(ld, VLM_EFORMAT, "'%s.id' is not an id in [0, %d)", path, TOK_MAX_ID);
        if (!jc) return lerr(ld, VLM_EFORMAT, "'%s.content' missing", path);
        if (!json_is_string(jc)) return lerr(ld, VLM_EFORMAT, "'%s.content' is not a string", path);
        if (json_string_length(jc) == 0)
            return lerr(ld, VLM_EFORMAT, "'%s.content' is empty", path);
        added_tok *a = &t->added[i];
        a->id = (int32_t)json_integer_value(jid);
        int rc;
        if ((rc = get_bool(ld, o, "special", path, &a->special)) ||
            (rc = get_bool(ld, o, "lstrip", path, &a->lstrip)) ||
            (rc = get_bool(ld, o, "rstrip", path, &a->rstrip)) ||
            (rc = get_bool(ld, o, "single_word", path, &a->single_word)))
            return rc;
        a->normalized = !a->special; /* HF's default for a token without the key */
        if ((rc = get_bool(ld, o, "normalized", path, &a->normalized))) return rc;
        if (names_add(t, json_string_value(jc), json_string_length(jc), &a->off))
            return VLM_ENOMEM;
        a->len = (uint32_t)json_string_length(jc);
        if (a->id > *max_id) *max_id = a->id;
        t->n_added++;
    }
    return 0;
}

/* Sort key of an added token within a set: first byte, then longest first. */
typedef struct added_key {
    uint8_t first;
    uint32_t len;
    int32_t index;
} added_key;

static int cmp_added_key(const void *pa, const void *pb) {
    const added_key *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

static int build_added_set(vlm_tokenizer *t, added_set *set, bool normalized) {
    size_t cap = (size_t)(t->n_added ? t->n_added : 1);
    set->order = malloc(cap * sizeof *set->order);
    added_key *keys = malloc(cap * sizeof *keys);
    if (!set->order || !keys) {
        free(keys);
        return VLM_ENOMEM;
    }
    set->n = 0;
    for (int64_t i = 0; i < t->n_added; i++) {
        /* without a normalizer both passes see the same text: match everything raw */
        const added_tok *a = &t->added[i];
        bool norm = t->n_norm > 0 && a->normalized;
        if (norm == normalized)
            keys[set->n++] = (added_key){(uint8_t)t->names[a->off], a->len, (int32_t)i};
    }
    qsort(keys, (size_t)set->n, sizeof *keys, cmp_added_key);
    int64_t k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < set->n && keys[k].first < b) k++;
        set->start[b] = (int32_t)k;
    }
    for (int64_t i = 0; i < set->n; i++) set->order[i] = keys[i].index;
    free(keys);
    return 0;
}

static int compile_regex(loader *ld, pcre2_code **re, const char *pat, size_t len, bool literal,
                         const char *path) {
    int ec;
    PCRE2_SIZE eoff;
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP); /* UCP: not literal */
    *re = pcre2_compile((PCRE2_SPTR)pat, len, opts, &ec, &eoff, NULL);
    if (!*re) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return lerr(ld, VLM_EFORMAT, "'%s' does not compile at offset %zu: %s", path,
                    (size_t)eoff, (const char *)msg);
    }
    pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE); /* best effort: falls back to interpreting */
    return 0;
}

static int parse_normalizer_one(loader *ld, json_t *o, const char *path) {
    vlm_tokenizer *t = ld->tok;
    if (!json_is_object(o)) return lerr(ld, VLM_EFORMAT, "'%s' is not an object", path);
    const char *type;
    int rc = get_str(ld, o, "type", path, &type);
    if (rc) return rc;
    if (!type) return lerr(ld, VLM_EFORMAT, "'%s.type' missing", path);
    int opts;
    if (!strcmp(type, "NFC")) opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    else if (!strcmp(type, "NFD")) opts = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
    else if (!strcmp(type, "NFKC")) opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    else if (!strcmp(type, "NFKD")) opts = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    else if (!strcmp(type, "Sequence")) {
        json_t *arr = json_object_get(o, "normalizers");
        if (!json_is_array(arr))
            return lerr(ld, VLM_EFORMAT, "'%s.normalizers' missing or not an array", path);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            char sub[96];
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", path, i);
            if ((rc = parse_normalizer_one(ld, json_array_get(arr, i), sub))) return rc;
        }
        return 0;
    } else {
        return lerr(ld, VLM_EUNSUPPORTED,
                    "'%s.type' \"%.40s\" is unsupported (only NFC, NFD, NFKC, NFKD)", path, type);
    }
    if (t->n_norm == TOK_MAX_NORMS)
        return lerr(ld, VLM_EUNSUPPORTED, "'%s': more than %d normalizers", path, TOK_MAX_NORMS);
    t->norm_opts[t->n_norm++] = opts;
    return 0;
}

static int parse_pretok_one(loader *ld, json_t *o, const char *path, bool *have_bytelevel) {
    vlm_tokenizer *t = ld->tok;
    if (!json_is_object(o)) return lerr(ld, VLM_EFORMAT, "'%s' is not an object", path);
    const char *type;
    int rc = get_str(ld, o, "type", path, &type);
    if (rc) return rc;
    if (!type) return lerr(ld, VLM_EFORMAT, "'%s.type' missing", path);
    if (!strcmp(type, "Sequence")) {
        json_t *arr = json_object_get(o, "pretokenizers");
        if (!json_is_array(arr))
            return lerr(ld, VLM_EFORMAT, "'%s.pretokenizers' missing or not an array", path);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            char sub[96];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", path, i);
            if ((rc = parse_pretok_one(ld, json_array_get(arr, i), sub, have_bytelevel)))
                return rc;
        }
        return 0;
    }
    if (t->n_steps == TOK_MAX_STEPS)
        return lerr(ld, VLM_EUNSUPPORTED, "'%s': more than %d pre-tokenizers", path,
                    TOK_MAX_STEPS);
    pretok_step *st = &t->steps[t->n_steps];
    if (!strcmp(type, "Split")) {
        if (*have_bytelevel)
            return lerr(ld, VLM_EUNSUPPORTED, "'%s': a Split after ByteLevel is unsupported",
                        path);
        json_t *pat = json_object_get(o, "pattern");
        if (!pat) return lerr(ld, VLM_EFORMAT, "'%s.pattern' missing", path);
        json_t *re = json_object_get(pat, "Regex"), *lit = json_object_get(pat, "String");
        json_t *src = re ? re : lit;
        char sub[112];
        snprintf(sub, sizeof sub, "%s.pattern.%s", path, re ? "Regex" : "String");
        if (!json_is_object(pat) || !src)
            return lerr(ld, VLM_EFORMAT, "'%s.pattern' has neither Regex nor String", path);
        if (!json_is_string(src)) return lerr(ld, VLM_EFORMAT, "'%s' is not a string", sub);
        const char *beh;
        if ((rc = get_str(ld, o, "behavior", path, &beh))) return rc;
        if (!beh) return lerr(ld, VLM_EFORMAT, "'%s.behavior' missing", path);
        if (strcmp(beh, "Isolated") && strcmp(beh, "Removed"))
            return lerr(ld, VLM_EUNSUPPORTED,
                        "'%s.behavior' \"%.40s\" is unsupported (only Isolated, Removed)", path,
                        beh);
        bool invert = false;
        if ((rc = get_bool(ld, o, "invert", path, &invert))) return rc;
        if (invert) return lerr(ld, VLM_EUNSUPPORTED, "'%s.invert' true is unsupported", path);
        if ((rc = compile_regex(ld, &st->re, json_string_value(src), json_string_length(src),
                                src == lit, sub)))
            return rc;
        st->removed = !strcmp(beh, "Removed");
        t->n_steps++;
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        bool prefix = false, use_regex = true; /* HF's defaults */
        if ((rc = get_bool(ld, o, "add_prefix_space", path, &prefix)) ||
            (rc = get_bool(ld, o, "use_regex", path, &use_regex)))
            return rc;
        if (prefix)
            return lerr(ld, VLM_EUNSUPPORTED, "'%s.add_prefix_space' true is unsupported", path);
        if (*have_bytelevel)
            return lerr(ld, VLM_EUNSUPPORTED, "'%s': a second ByteLevel is unsupported", path);
        *have_bytelevel = true;
        if (use_regex) {
            char sub[96];
            snprintf(sub, sizeof sub, "%s (gpt-2 regex)", path);
            if ((rc = compile_regex(ld, &st->re, gpt2_regex, strlen(gpt2_regex), false, sub)))
                return rc;
        }
        t->n_steps++;
        return 0;
    }
    return lerr(ld, VLM_EUNSUPPORTED,
                "'%s.type' \"%.40s\" is unsupported (only Sequence, Split, ByteLevel)", path, type);
}

/* Where a merge string "a b" splits: the offset of its one space, or -1 if not exactly one. */
static ssize_t merge_space(const char *s, size_t n) {
    const char *sp = memchr(s, ' ', n);
    if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp - s) - 1)) return -1;
    return sp - s;
}

static int js_fail(loader *ld, const char *what) {
    int line = 1, col = 1;
    for (size_t k = 0; k < ld->ji && k < ld->jn; k++) {
        if (ld->js[k] == '\n') { line++; col = 1; } else { col++; }
    }
    return lerr(ld, VLM_EFORMAT, "not json: %s (line %d, column %d)", what, line, col);
}

static void js_ws(loader *ld) {
    while (ld->ji < ld->jn) {
        char c = ld->js[ld->ji];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        ld->ji++;
    }
}

/* Skip whitespace; is the next character c? */
static bool js_peek(loader *ld, char c) {
    js_ws(ld);
    return ld->ji < ld->jn && ld->js[ld->ji] == c;
}

static int js_expect(loader *ld, char c) {
    if (!js_peek(ld, c)) {
        char what[24];
        snprintf(what, sizeof what, "'%c' expected", c);
        return js_fail(ld, what);
    }
    ld->ji++;
    return 0;
}

static bool hex4(const char *p, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return false;
        *v = *v << 4 | (uint32_t)d;
    }
    return true;
}

/* Decode the string at the scan position into ld->sbuf; *len gets its length. */
static int js_string(loader *ld, size_t *len) {
    if (!js_peek(ld, '"')) return js_fail(ld, "string expected");
    ld->ji++;
    size_t o = 0;
    for (;;) {
        if (grow(&ld->sbuf, &ld->scap, o + 5, 1)) return VLM_ENOMEM;
        if (ld->ji >= ld->jn) return js_fail(ld, "unterminated string");
        uint8_t c = (uint8_t)ld->js[ld->ji];
        if (c == '"') {
            ld->ji++;
            break;
        }
        if (c == '\\') {
            if (ld->ji + 1 >= ld->jn) return js_fail(ld, "unterminated string");
            char e = ld->js[ld->ji + 1];
            ld->ji += 2;
            uint32_t cp, lo;
            switch (e) {
            case '"': case '\\': case '/': ld->sbuf[o++] = e; break;
            case 'b': ld->sbuf[o++] = '\b'; break;
            case 'f': ld->sbuf[o++] = '\f'; break;
            case 'n': ld->sbuf[o++] = '\n'; break;
            case 'r': ld->sbuf[o++] = '\r'; break;
            case 't': ld->sbuf[o++] = '\t'; break;
            case 'u':
                if (ld->jn - ld->ji < 4 || !hex4(ld->js + ld->ji, &cp))
                    return js_fail(ld, "invalid \\u escape");
                ld->ji += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (ld->jn - ld->ji < 6 || ld->js[ld->ji] != '\\' ||
                        ld->js[ld->ji + 1] != 'u' || !hex4(ld->js + ld->ji + 2, &lo) ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return js_fail(ld, "lone surrogate in \\u escape");
                    ld->ji += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return js_fail(ld, "lone surrogate in \\u escape");
                }
                o += utf8_put(cp, (uint8_t *)ld->sbuf + o);
                break;
            default:
                ld->ji--;
                return js_fail(ld, "invalid escape");
            }
            continue;
        }
        if (c < 0x20) return js_fail(ld, "control character in string");
        if (c < 0x80) {
            ld->sbuf[o++] = (char)c;
            ld->ji++;
            continue;
        }
        uint32_t cp;
        size_t k = utf8_seq((const uint8_t *)ld->js + ld->ji, ld->jn - ld->ji, &cp);
        if (!k) return js_fail(ld, "invalid utf-8");
        memcpy(ld->sbuf + o, ld->js + ld->ji, k);
        o += k;
        ld->ji += k;
    }
    ld->sbuf[o] = 0;
    *len = o;
    return 0;
}

/* The number at the scan position; *is_int when it is an integer that fits in *v. */
static int js_number(loader *ld, int64_t *v, bool *is_int) {
    const char *s = ld->js;
    size_t i = ld->ji, n = ld->jn;
    bool neg = i < n && s[i] == '-';
    int64_t acc = 0;
    int digits = 0;
    if (neg) i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return js_fail(ld, "number expected");
    if (s[i] == '0') {
        i++;
        digits = 1;
    } else {
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++)
            if (digits < 18) acc = acc * 10 + (s[i] - '0');
    }
    *is_int = digits <= 18;
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return ld->ji = i, js_fail(ld, "digit expected");
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        *is_int = false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return ld->ji = i, js_fail(ld, "digit expected");
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        *is_int = false;
    }
    ld->ji = i;
    *v = neg ? -acc : acc;
    return 0;
}

/* Skip (and check) one value of any type. */
static int js_skip(loader *ld) {
    js_ws(ld);
    if (ld->ji >= ld->jn) return js_fail(ld, "value expected");
    char c = ld->js[ld->ji];
    size_t len;
    int rc;
    if (c == '"') return js_string(ld, &len);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        if (++ld->depth > 256) return js_fail(ld, "nested too deeply");
        ld->ji++;
        if (js_peek(ld, close)) {
            ld->ji++;
        } else {
            for (;;) {
                if (c == '{' && ((rc = js_string(ld, &len)) || (rc = js_expect(ld, ':'))))
                    return rc;
                if ((rc = js_skip(ld))) return rc;
                if (!js_peek(ld, ',')) break;
                ld->ji++;
            }
            if ((rc = js_expect(ld, close))) return rc;
        }
        ld->depth--;
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        int64_t v;
        bool is_int;
        return js_number(ld, &v, &is_int);
    }
    static const char *const lits[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(lits[k]);
        if (ld->jn - ld->ji >= l && !memcmp(ld->js + ld->ji, lits[k], l)) {
            ld->ji += l;
            return 0;
        }
    }
    return js_fail(ld, "value expected");
}

/* One (small) value at the scan position, parsed by jansson. */
static int js_value(loader *ld, json_t **out) {
    js_ws(ld);
    size_t start = ld->ji;
    int rc = js_skip(ld);
    if (rc) return rc;
    json_error_t je;
    *out = json_loadb(ld->js + start, ld->ji - start, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!*out) {
        ld->ji = start + (size_t)je.position;
        return js_fail(ld, je.text);
    }
    return 0;
}

static void defer(int *rc, char *msg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void defer(int *rc, char *msg, const char *fmt, ...) {
    if (*rc) return; /* the first one counts */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, VLM_ERR_LEN, fmt, ap);
    va_end(ap);
    *rc = VLM_EFORMAT;
}

/* model.vocab: {"token": id, ...} into the names arena and ld->vr. */
static int scan_vocab(loader *ld) {
    int rc;
    size_t len;
    if (ld->vocab_state) return lerr(ld, VLM_EFORMAT, "'model.vocab' appears twice");
    if (!js_peek(ld, '{')) {
        ld->vocab_state = 2;
        return js_skip(ld);
    }
    ld->vocab_state = 1;
    ld->ji++;
    if (js_peek(ld, '}')) {
        ld->ji++;
        return 0;
    }
    for (;;) {
        if ((rc = js_string(ld, &len)) || (rc = js_expect(ld, ':'))) return rc;
        uint32_t off;
        if (names_add(ld->tok, ld->sbuf, len, &off)) return VLM_ENOMEM;
        js_ws(ld);
        int64_t id = -1;
        bool is_int = false;
        char c = ld->ji < ld->jn ? ld->js[ld->ji] : 0;
        rc = c == '-' || (c >= '0' && c <= '9') ? js_number(ld, &id, &is_int) : js_skip(ld);
        if (rc) return rc;
        if (!is_int || id < 0 || id >= TOK_MAX_ID) {
            defer(&ld->vocab_rc, ld->vocab_msg, "'model.vocab' entry \"%.40s\" is not an id in "
                  "[0, %d)", ld->tok->names + off, TOK_MAX_ID);
        } else {
            if (grow(&ld->vr, &ld->vr_cap, ld->n_vr + 1, sizeof *ld->vr)) return VLM_ENOMEM;
            ld->vr[ld->n_vr++] = (vocab_raw){off, (uint32_t)len, (int32_t)id};
            if (id > ld->max_id) ld->max_id = id;
        }
        if (!js_peek(ld, ',')) return js_expect(ld, '}');
        ld->ji++;
    }
}

/* Copy the last decoded string to ld->mtext; *off gets where. */
static int mtext_add(loader *ld, size_t len, uint32_t *off) {
    if (ld->mt_len + len > UINT32_MAX || grow(&ld->mtext, &ld->mt_cap, ld->mt_len + len, 1))
        return VLM_ENOMEM;
    memcpy(ld->mtext + ld->mt_len, ld->sbuf, len);
    *off = (uint32_t)ld->mt_len;
    ld->mt_len += len;
    return 0;
}

/* model.merges: ["a b", ...] or [["a", "b"], ...] (either form per entry) into ld->mr. */
static int scan_merges(loader *ld) {
    int rc;
    size_t len;
    if (ld->merges_state) return lerr(ld, VLM_EFORMAT, "'model.merges' appears twice");
    if (!js_peek(ld, '[')) {
        ld->merges_state = 2;
        return js_skip(ld);
    }
    ld->merges_state = 1;
    ld->ji++;
    if (js_peek(ld, ']')) {
        ld->ji++;
        return 0;
    }
    for (size_t i = 0;; i++) {
        js_ws(ld);
        size_t start = ld->ji;
        char c = ld->ji < ld->jn ? ld->js[ld->ji] : 0;
        merge_raw m;
        bool ok = false;
        if (c == '"') { /* the legacy form "a b" */
            if ((rc = js_string(ld, &len))) return rc;
            ssize_t sp = merge_space(ld->sbuf, len);
            if (sp < 0) {
                defer(&ld->merges_rc, ld->merges_msg, "'model.merges[%zu]' \"%.40s\" is not "
                      "\"a b\"", i, ld->sbuf);
            } else {
                uint32_t off;
                if (mtext_add(ld, len, &off)) return VLM_ENOMEM;
                m = (merge_raw){off, (uint32_t)sp, off + (uint32_t)sp + 1,
                                (uint32_t)(len - (size_t)sp - 1)};
                ok = true;
            }
        } else if (c == '[') { /* ["a", "b"]; anything else is re-scanned as a plain value */
            ld->ji++;
            if (js_peek(ld, '"')) {
                if ((rc = js_string(ld, &len)) || (rc = mtext_add(ld, len, &m.a_off))) return rc;
                m.a_len = (uint32_t)len;
                if (js_peek(ld, ',') && (ld->ji++, js_peek(ld, '"'))) {
                    if ((rc = js_string(ld, &len)) || (rc = mtext_add(ld, len, &m.b_off)))
                        return rc;
                    m.b_len = (uint32_t)len;
                    if (js_peek(ld, ']')) {
                        ld->ji++;
                        ok = true;
                    }
                }
            }
            if (!ok) {
                ld->ji = start;
                if ((rc = js_skip(ld))) return rc;
                defer(&ld->merges_rc, ld->merges_msg,
                      "'model.merges[%zu]' is neither \"a b\" nor [a, b]", i);
            }
        } else {
            if ((rc = js_skip(ld))) return rc;
            defer(&ld->merges_rc, ld->merges_msg,
                  "'model.merges[%zu]' is neither \"a b\" nor [a, b]", i);
        }
        if (ok) {
            if (grow(&ld->mr, &ld->mr_cap, ld->n_mr + 1, sizeof *ld->mr)) return VLM_ENOMEM;
            ld->mr[ld->n_mr++] = m;
        }
        if (!js_peek(ld, ',')) return js_expect(ld, ']');
        ld->ji++;
    }
}

/* Add the value at the scan position to obj under the key in ld->sbuf (klen bytes). */
static int js_member(loader *ld, json_t *obj, size_t klen) {
    char *key = malloc(klen + 1);
    if (!key) return VLM_ENOMEM;
    memcpy(key, ld->sbuf, klen + 1);
    json_t *v;
    int rc = js_value(ld, &v);
    if (!rc && json_object_setn_new(obj, key, klen, v)) rc = VLM_ENOMEM;
    free(key);
    return rc;
}

static int scan_model(loader *ld) {
    int rc;
    size_t len;
    if (ld->model || ld->model_not_obj) return lerr(ld, VLM_EFORMAT, "'model' appears twice");
    if (!js_peek(ld, '{')) {
        ld->model_not_obj = true;
        return js_skip(ld);
    }
    if (!(ld->model = json_object())) return VLM_ENOMEM;
    ld->ji++;
    if (js_peek(ld, '}')) {
        ld->ji++;
        return 0;
    }
    for (;;) {
        if ((rc = js_string(ld, &len)) || (rc = js_expect(ld, ':'))) return rc;
        if (len == 5 && !memcmp(ld->sbuf, "vocab", 5)) rc = scan_vocab(ld);
        else if (len == 6 && !memcmp(ld->sbuf, "merges", 6)) rc = scan_merges(ld);
        else rc = js_member(ld, ld->model, len);
        if (rc) return rc;
        if (!js_peek(ld, ',')) return js_expect(ld, '}');
        ld->ji++;
    }
}

/* The whole file: an object whose "model" is scanned, every other member kept in rest. */
static int scan_file(loader *ld) {
    int rc;
    size_t len;
    if (!js_peek(ld, '{')) {
        if ((rc = js_skip(ld))) return rc;
        js_ws(ld);
        if (ld->ji < ld->jn) return js_fail(ld, "end of file expected");
        return lerr(ld, VLM_EFORMAT, "top level is not an object");
    }
    if (!(ld->rest = json_object())) return VLM_ENOMEM;
    ld->ji++;
    if (js_peek(ld, '}')) {
        ld->ji++;
    } else {
        for (;;) {
            if ((rc = js_string(ld, &len)) || (rc = js_expect(ld, ':'))) return rc;
            if (len == 5 && !memcmp(ld->sbuf, "model", 5)) rc = scan_model(ld);
            else rc = js_member(ld, ld->rest, len);
            if (rc) return rc;
            if (!js_peek(ld, ',')) break;
            ld->ji++;
        }
        if ((rc = js_expect(ld, '}'))) return rc;
    }
    js_ws(ld);
    if (ld->ji < ld->jn) return js_fail(ld, "end of file expected");
    return 0;
}

static int parse_model(loader *ld) {
    vlm_tokenizer *t = ld->tok;
    if (ld->model_not_obj) return lerr(ld, VLM_EFORMAT, "'model' is not an object");
    if (!ld->model) return lerr(ld, VLM_EFORMAT, "'model' missing");
    json_t *model = ld->model;
    const char *type, *s;
    int rc = get_str(ld, model, "type", "model", &type);
    if (rc) return rc;
    if (type && strcmp(type, "BPE"))
        return lerr(ld, VLM_EUNSUPPORTED, "'model.type' \"%.40s\" is unsupported (only BPE)",
                    type);
    if ((rc = get_str(ld, model, "continuing_subword_prefix", "model", &s))) return rc;
    if (s && *s)
        return lerr(ld, VLM_EUNSUPPORTED, "'model.continuing_subword_prefix' is unsupported");
    if ((rc = get_str(ld, model, "end_of_word_suffix", "model", &s))) return rc;
    if (s && *s) return lerr(ld, VLM_EUNSUPPORTED, "'model.end_of_word_suffix' is unsupported");
    json_t *drop = json_object_get(model, "dropout");
    if (drop && !json_is_null(drop) && !(json_is_number(drop) && json_number_value(drop) == 0))
        return lerr(ld, VLM_EUNSUPPORTED, "'model.dropout' is unsupported");
    bool fallback = false;
    if ((rc = get_bool(ld, model, "byte_fallback", "model", &fallback))) return rc;
    if (fallback) return lerr(ld, VLM_EUNSUPPORTED, "'model.byte_fallback' true is unsupported");
    if ((rc = get_bool(ld, model, "ignore_merges", "model", &t->ignore_merges))) return rc;

    if (!ld->vocab_state) return lerr(ld, VLM_EFORMAT, "'model.vocab' missing");
    if (ld->vocab_state == 2) return lerr(ld, VLM_EFORMAT, "'model.vocab' is not an object");
    if (ld->vocab_rc) return lerr(ld, ld->vocab_rc, "%s", ld->vocab_msg);
    if (!ld->n_vr) return lerr(ld, VLM_EFORMAT, "'model.vocab' is empty");
    if (!ld->merges_state) return lerr(ld, VLM_EFORMAT, "'model.merges' missing");
    if (ld->merges_state == 2) return lerr(ld, VLM_EFORMAT, "'model.merges' is not an array");
    if (ld->merges_rc) return lerr(ld, ld->merges_rc, "%s", ld->merges_msg);

    if ((rc = str_map_init(&t->vocab, (int64_t)ld->n_vr))) return rc;
    for (size_t i = 0; i < ld->n_vr; i++) /* a repeated name takes the later id, as jansson */
        str_map_put(&t->vocab, t->names, ld->vr[i].off, ld->vr[i].len, ld->vr[i].id);
    return 0;
}

/* Resolve the scanned merges against the vocabulary into the merge map. */
static int parse_merges(loader *ld) {
    vlm_tokenizer *t = ld->tok;
    size_t n = ld->n_mr;
    uint64_t cap = pow2_at_least((uint64_t)n * 2 + 1);
    t->merges = malloc(cap * sizeof *t->merges);
    if (!t->merges) return VLM_ENOMEM;
    for (uint64_t i = 0; i < cap; i++) t->merges[i].key = UINT64_MAX;
    t->merges_mask = cap - 1;
    char *cat = NULL;
    size_t cat_cap = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const merge_raw *m = &ld->mr[i];
        const char *a = ld->mtext + m->a_off, *b = ld->mtext + m->b_off;
        size_t na = m->a_len, nb = m->b_len;
        int32_t ia = str_map_get(&t->vocab, t->names, a, na);
        int32_t ib = str_map_get(&t->vocab, t->names, b, nb);
        if (ia < 0 || ib < 0) {
            const char *u = ia < 0 ? a : b;
            int nu = (int)(ia < 0 ? na : nb);
            rc = lerr(ld, VLM_EFORMAT, "'model.merges[%zu]' names unknown token \"%.*s\"", i,
                      nu > 40 ? 40 : nu, u);
            break;
        }
        if (grow(&cat, &cat_cap, na + nb, 1)) {
            rc = VLM_ENOMEM;
            break;
        }
        memcpy(cat, a, na);
        memcpy(cat + na, b, nb);
        int32_t inew = str_map_get(&t->vocab, t->names, cat, na + nb);
        if (inew < 0) {
            int nc = (int)(na + nb);
            rc = lerr(ld, VLM_EFORMAT, "'model.merges[%zu]' makes \"%.*s\", not in 'model.vocab'",
                      i, nc > 40 ? 40 : nc, cat);
            break;
        }
        /* a repeated pair keeps the later rank, as HF's HashMap collect does */
        uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
        uint64_t j = mix64(key) & t->merges_mask;
        while (t->merges[j].key != UINT64_MAX && t->merges[j].key != key)
            j = (j + 1) & t->merges_mask;
        if (t->merges[j].key == UINT64_MAX) t->n_merges++;
        t->merges[j] = (merge_slot){key, (int32_t)i, inew};
    }
    free(cat);
    return rc;
}

/* Decoded bytes of a token name: HF's ByteLevel decoder maps every char back to its byte,
 * or, if any char is outside the byte-level alphabet, keeps the name's UTF-8 as is. */
static int set_bytes(vlm_tokenizer *t, int32_t id) {
    tok_id *e = &t->ids[id];
    const uint8_t *s = (const uint8_t *)t->names + e->name_off;
    uint8_t tmp[256], *buf = e->name_len <= sizeof tmp ? tmp : malloc(e->name_len);
    if (!buf) return VLM_ENOMEM;
    size_t n = 0, i = 0;
    bool mapped = true;
    while (i < e->name_len) {
        uint32_t cp;
        size_t k = utf8_seq(s + i, e->name_len - i, &cp);
        int b = k ? cp_byte(cp) : -1;
        if (b < 0) { mapped = false; break; }
        buf[n++] = (uint8_t)b;
        i += k;
    }
    int rc = mapped ? bytes_add(t, buf, n, &e->bytes_off)
                    : bytes_add(t, s, e->name_len, &e->bytes_off);
    e->bytes_len = mapped ? (uint32_t)n : e->name_len;
    if (e->bytes_len > t->max_bytes) t->max_bytes = e->bytes_len;
    if (buf != tmp) free(buf);
    return rc ? VLM_ENOMEM : 0;
}

static int load_json(loader *ld) {
    vlm_tokenizer *t = ld->tok;
    json_t *root = ld->rest;
    int rc;
    if ((rc = parse_model(ld))) return rc;
    int64_t max_id = ld->max_id;
    if ((rc = parse_added(ld, json_object_get(root, "added_tokens"), &max_id))) return rc;

    t->n_ids = max_id + 1;
    t->ids = calloc((size_t)t->n_ids, sizeof *t->ids);
    if (!t->ids) return VLM_ENOMEM;
    for (uint64_t i = 0; i <= t->vocab.mask; i++) {
        const str_slot *s = &t->vocab.slots[i];
        if (s->id < 0) continue;
        t->ids[s->id] = (tok_id){.name_off = s->off, .name_len = s->len, .flags = TOK_PRESENT};
    }
    if ((rc = str_map_init(&t->added_map, t->n_added))) return rc;
    for (int64_t i = 0; i < t->n_added; i++) {
        const added_tok *a = &t->added[i];
        str_map_put(&t->added_map, t->names, a->off, a->len, a->id);
        uint32_t f = TOK_PRESENT | TOK_ADDED | (a->special ? TOK_SPECIAL : 0);
        t->ids[a->id] = (tok_id){.name_off = a->off, .name_len = a->len, .flags = f};
    }
    for (int64_t id = 0; id < t->n_ids; id++)
        if ((t->ids[id].flags & TOK_PRESENT) && (rc = set_bytes(t, (int32_t)id))) return rc;

    int32_t unk = -1;
    const char *unk_name;
    if ((rc = get_str(ld, ld->model, "unk_token", "model", &unk_name))) return rc;
    if (unk_name && (unk = str_map_get(&t->vocab, t->names, unk_name, strlen(unk_name))) < 0)
        return lerr(ld, VLM_EFORMAT, "'model.unk_token' \"%.40s\" is not in 'model.vocab'",
                    unk_name);
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        size_t k = utf8_put(byte_cp(b), u);
        int32_t id = str_map_get(&t->vocab, t->names, (const char *)u, k);
        t->byte_id[b] = id >= 0 ? id : unk; /* HF drops a char with no token and no unk */
    }
    if ((rc = parse_merges(ld))) return rc;

    json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm) && (rc = parse_normalizer_one(ld, norm, "normalizer")))
        return rc;
    t->norm_nfc_only = t->n_norm == 1 && t->norm_opts[0] == (UTF8PROC_STABLE | UTF8PROC_COMPOSE);

    json_t *pre = json_object_get(root, "pre_tokenizer");
    bool have_bl = false;
    if (pre && !json_is_null(pre) && (rc = parse_pretok_one(ld, pre, "pre_tokenizer", &have_bl)))
        return rc;
    if (!have_bl)
        return lerr(ld, VLM_EUNSUPPORTED,
                    "'pre_tokenizer' has no ByteLevel step (only byte-level BPE is supported)");

    json_t *dec = json_object_get(root, "decoder");
    if (dec && !json_is_null(dec)) {
        const char *type;
        if (!json_is_object(dec)) return lerr(ld, VLM_EFORMAT, "'decoder' is not an object");
        if ((rc = get_str(ld, dec, "type", "decoder", &type))) return rc;
        if (!type || strcmp(type, "ByteLevel"))
            return lerr(ld, VLM_EUNSUPPORTED, "'decoder.type' \"%.40s\" is unsupported (only "
                        "ByteLevel)", type ? type : "(missing)");
    }
    if ((rc = build_added_set(t, &t->raw_set, false)) ||
        (rc = build_added_set(t, &t->norm_set, true)))
        return rc;
    return 0;
}

/* Read the whole file into ld->js. */
static int read_file(loader *ld, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return vlm__errf(ld->err, VLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 0;
    int rc = 0;
    for (;;) {
        if (grow(&ld->js, &cap, ld->jn + (1 << 20), 1)) {
            rc = VLM_ENOMEM;
            break;
        }
        size_t got = fread(ld->js + ld->jn, 1, cap - ld->jn, f);
        ld->jn += got;
        if (got == 0) {
            if (ferror(f)) rc = vlm__errf(ld->err, VLM_EIO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    return rc;
}

int vlm_tokenizer_load(const char *path, vlm_tokenizer **out, char *err) {
    *out = NULL;
    const char *slash = strrchr(path, '/');
    loader ld = {.file = slash ? slash + 1 : path, .err = err, .max_id = -1};
    int rc = read_file(&ld, path);
    if (!rc && !(ld.tok = calloc(1, sizeof *ld.tok))) rc = VLM_ENOMEM;
    if (!rc) rc = scan_file(&ld);
    if (!rc) rc = load_json(&ld);
    free(ld.js);
    free(ld.sbuf);
    free(ld.vr);
    free(ld.mr);
    free(ld.mtext);
    json_decref(ld.rest);
    json_decref(ld.model);
    if (rc) {
        if (rc == VLM_ENOMEM) vlm__errf(err, VLM_ENOMEM, "%s: out of memory", ld.file);
        vlm_tokenizer_free(ld.tok);
        return rc;
    }
    vlm__log(VLM_LOG_DEBUG, "tokenizer[%s] %" PRId64 " ids, %" PRId64 " merges, %" PRId64
             " added tokens", ld.file, ld.tok->n_ids, ld.tok->n_merges, ld.tok->n_added);
    *out = ld.tok;
    return 0;
}

void vlm_tokenizer_free(vlm_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_steps; i++) pcre2_code_free(t->steps[i].re);
    free(t->names);
    free(t->bytes);
    free(t->ids);
    free(t->vocab.slots);
    free(t->added_map.slots);
    free(t->merges);
    free(t->added);
    free(t->raw_set.order);
    free(t->norm_set.order);
    free(t);
}

/* ---- encoding --------------------------------------------------------------------- */

typedef struct bpe_sym {
    int32_t id; /* -1: merged into its left neighbour */
    int32_t prev, next;
} bpe_sym;

typedef struct bpe_ent {
    int32_t rank, pos, new_id;
} bpe_ent;

/* State of one encode call. */
typedef struct enc {
    const vlm_tokenizer *tok;
    int32_t *ids;
    int64_t cap, n;
    pcre2_match_data *md[TOK_MAX_STEPS]; /* one per step: the steps nest */
    bpe_sym *syms;                       /* (sym_cap) */
    bpe_ent *heap;                       /* (3 * sym_cap) */
    size_t sym_cap;
    char *tmp; /* (tmp_cap) byte-level form of a piece, for ignore_merges */
    size_t tmp_cap;
    int rc;
    char *err;
} enc;

static void emit(enc *e, int32_t id) {
    if (e->n < e->cap) e->ids[e->n] = id;
    e->n++;
}

static bool ent_less(const bpe_ent *a, const bpe_ent *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(bpe_ent *h, size_t *n, bpe_ent v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ent_less(&v, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static bpe_ent heap_pop(bpe_ent *h, size_t *n) {
    bpe_ent top = h[0], v = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && ent_less(&h[c + 1], &h[c])) c++;
        if (!ent_less(&h[c], &v)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = v;
    return top;
}

static void push_pair(enc *e, size_t *hn, int32_t pos) {
    const bpe_sym *l = &e->syms[pos];
    const merge_slot *m = merge_get(e->tok, l->id, e->syms[l->next].id);
    if (m) heap_push(e->heap, hn, (bpe_ent){m->rank, pos, m->new_id});
}

/* BPE one pre-tokenized piece (raw bytes) and emit its ids (HF's BPE::merge_word). */
static void bpe(enc *e, const uint8_t *s, size_t n) {
    const vlm_tokenizer *t = e->tok;
    if (t->ignore_merges) {
        if (n * 2 > e->tmp_cap) {
            char *p = realloc(e->tmp, n * 2);
            if (!p) { e->rc = VLM_ENOMEM; return; }
            e->tmp = p;
            e->tmp_cap = n * 2;
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += utf8_put(byte_cp(s[i]), (uint8_t *)e->tmp + k);
        int32_t id = str_map_get(&t->vocab, t->names, e->tmp, k);
        if (id >= 0) { emit(e, id); return; }
    }
    if (n == 1) {
        if (t->byte_id[s[0]] >= 0) emit(e, t->byte_id[s[0]]);
        return;
    }
    if (n > e->sym_cap) {
        size_t cap = n < 256 ? 256 : n;
        if (cap > INT32_MAX / 3) { e->rc = VLM_ENOMEM; return; }
        bpe_sym *ps = realloc(e->syms, cap * sizeof *ps);
        if (ps) e->syms = ps;
        bpe_ent *ph = realloc(e->heap, 3 * cap * sizeof *ph);
        if (ph) e->heap = ph;
        if (!ps || !ph) { e->rc = VLM_ENOMEM; return; }
        e->sym_cap = cap;
    }
    int32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[s[i]];
        if (id < 0) continue;
        e->syms[m] = (bpe_sym){id, m - 1, m + 1};
        m++;
    }
    if (m == 0) return;
    e->syms[m - 1].next = -1;
    size_t hn = 0; /* at most m-1 initial pairs + 2 per merge: below 3n */
    for (int32_t i = 0; i + 1 < m; i++) push_pair(e, &hn, i);
    while (hn) {
        bpe_ent top = heap_pop(e->heap, &hn);
        bpe_sym *l = &e->syms[top.pos];
        if (l->id < 0 || l->next < 0) continue;
        bpe_sym *r = &e->syms[l->next];
        /* stale entries are recognised by the merged id only, exactly as HF does */
        const merge_slot *cur = merge_get(t, l->id, r->id);
        if (!cur || cur->new_id != top.new_id) continue;
        l->id = top.new_id;
        l->next = r->next;
        if (r->next >= 0) e->syms[r->next].prev = top.pos;
        r->id = -1;
        if (l->prev >= 0) push_pair(e, &hn, l->prev);
        if (l->next >= 0) push_pair(e, &hn, top.pos);
    }
    for (int32_t i = 0; i >= 0; i = e->syms[i].next) emit(e, e->syms[i].id);
}

/* Run pre-tokenizer steps [step..] over s[0..n) and BPE each final piece. */
static void pretok(enc *e, int step, const uint8_t *s, size_t n) {
    const vlm_tokenizer *t = e->tok;
    if (e->rc || n == 0) return;
    if (step == t->n_steps) { bpe(e, s, n); return; }
    const pretok_step *st = &t->steps[step];
    if (!st->re) { pretok(e, step + 1, s, n); return; }
    pcre2_match_data *md = e->md[step];
    size_t pos = 0, last = 0;
    while (pos < n) {
        int rc = pcre2_match(st->re, s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(st->re, s, n, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(rc, msg, sizeof msg);
            e->rc = vlm__errf(e->err, VLM_EINVAL, "pre-tokenizer regex failed: %s",
                              (const char *)msg);
            return;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0] < last ? last : ov[0], me = ov[1];
        if (me <= ms) { /* an empty match splits nothing: step over one character */
            uint32_t cp;
            size_t k = ms < n ? utf8_seq(s + ms, n - ms, &cp) : 1;
            pos = ms + (k ? k : 1);
            continue;
        }
        if (ms > last) pretok(e, step + 1, s + last, ms - last);
        if (!st->removed) pretok(e, step + 1, s + ms, me - ms);
        last = pos = me;
    }
    if (last < n) pretok(e, step + 1, s + last, n - last);
}

typedef void (*gap_fn)(enc *e, const uint8_t *s, size_t n);

/* Split s[0..n) on the added tokens of set (HF's AddedVocabulary::find_matches: leftmost-
 * longest, then single_word/lstrip/rstrip); emit their ids and hand the gaps to gap. */
static void split_added(enc *e, const added_set *set, const uint8_t *s, size_t n, gap_fn gap) {
    const vlm_tokenizer *t = e->tok;
    size_t from = 0, i = 0;
    while (i < n && !e->rc) {
        int32_t b0 = set->start[s[i]], b1 = set->start[s[i] + 1];
        const added_tok *hit = NULL;
        for (int32_t k = b0; k < b1; k++) {
            const added_tok *a = &t->added[set->order[k]];
            if (a->len <= n - i && memcmp(t->names + a->off, s + i, a->len) == 0) {
                hit = a;
                break;
            }
        }
        if (!hit) { i++; continue; }
        size_t ms = i, me = i + hit->len;
        uint32_t cp;
        if (hit->single_word) {
            bool left_ok = ms == 0 || (utf8_prev(s, ms, &cp), !is_word(cp));
            bool right_ok = me == n || (utf8_seq(s + me, n - me, &cp), !is_word(cp));
            if (!left_ok || !right_ok) { i = me; continue; } /* not a word: plain text */
        }
        if (hit->lstrip) {
            size_t j = ms;
            while (j > from) {
                size_t p = utf8_prev(s, j, &cp);
                if (!is_white(cp)) break;
                j = p;
            }
            ms = j; /* never back into what a previous match took */
        }
        if (hit->rstrip) {
            size_t k;
            while (me < n && (k = utf8_seq(s + me, n - me, &cp)) && is_white(cp)) me += k;
        }
        if (ms > from) gap(e, s + from, ms - from);
        emit(e, hit->id);
        from = i = me;
    }
    if (from < n && !e->rc) gap(e, s + from, n - from);
}

static void gap_normalized(enc *e, const uint8_t *s, size_t n) {
    pretok(e, 0, s, n);
}

/* A gap of the raw text: normalise, then split out the normalized added tokens. */
static void gap_raw(enc *e, const uint8_t *s, size_t n) {
    const vlm_tokenizer *t = e->tok;
    uint8_t *norm = NULL;
    size_t nn = n;
    uint8_t top = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] > top) top = s[i];
    /* ASCII is the same in every normal form; under NFC so is all text below U+0300 (lead
     * bytes below 0xCC): those code points are NFC_QC=Yes and never combine */
    bool stable = top < 0x80 || (t->norm_nfc_only && top < 0xCC);
    if (t->n_norm && !stable) {
        const uint8_t *cur = s;
        for (int k = 0; k < t->n_norm; k++) {
            utf8proc_uint8_t *o = NULL;
            utf8proc_ssize_t r = utf8proc_map(cur, (utf8proc_ssize_t)nn, &o,
                                              (utf8proc_option_t)t->norm_opts[k]);
            free(norm);
            if (r < 0) {
                e->rc = r == UTF8PROC_ERROR_NOMEM
                            ? vlm__errf(e->err, VLM_ENOMEM, "normalize: out of memory")
                            : vlm__errf(e->err, VLM_EINVAL, "normalize: %s", utf8proc_errmsg(r));
                return;
            }
            norm = o;
            nn = (size_t)r;
            cur = norm;
        }
        s = norm;
    }
    if (t->norm_set.n) split_added(e, &t->norm_set, s, nn, gap_normalized);
    else pretok(e, 0, s, nn);
    free(norm);
}

int vlm_tokenizer_encode(const vlm_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                         int64_t cap, int64_t *n_out, char *err) {
    *n_out = 0;
    const uint8_t *s = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = utf8_seq(s + i, len - i, &cp);
        if (!k) return vlm__errf(err, VLM_EINVAL, "text: invalid utf-8 at byte %zu", i);
        i += k;
    }
    enc e = {.tok = tok, .ids = ids, .cap = ids && cap > 0 ? cap : 0, .err = err};
    for (int i = 0; i < tok->n_steps; i++) {
        if (!tok->steps[i].re) continue;
        e.md[i] = pcre2_match_data_create_from_pattern(tok->steps[i].re, NULL);
        if (!e.md[i]) e.rc = vlm__errf(err, VLM_ENOMEM, "encode: out of memory");
    }
    if (!e.rc && len) split_added(&e, &tok->raw_set, s, len, gap_raw);
    for (int i = 0; i < tok->n_steps; i++) pcre2_match_data_free(e.md[i]);
    free(e.syms);
    free(e.heap);
    free(e.tmp);
    if (e.rc == VLM_ENOMEM) vlm__errf(err, VLM_ENOMEM, "encode: out of memory");
    if (e.rc) return e.rc;
    *n_out = e.n;
    if (ids && e.n > cap)
        return vlm__errf(err, VLM_EFULL, "encode: %" PRId64 " tokens, room for %" PRId64, e.n,
                         cap);
    return 0;
}

/* ---- decoding and lookups --------------------------------------------------------- */

/* The bytes id decodes to under flags, or NULL when it decodes to nothing. */
static const uint8_t *id_bytes(const vlm_tokenizer *t, int32_t id, unsigned flags, size_t *n) {
    if (id < 0 || id >= t->n_ids) return NULL;
    const tok_id *e = &t->ids[id];
    if (!(e->flags & TOK_PRESENT)) return NULL;
    if ((flags & VLM_DECODE_SKIP_SPECIAL) && (e->flags & TOK_SPECIAL)) return NULL;
    *n = e->bytes_len;
    return t->bytes + e->bytes_off;
}

int vlm_tokenizer_decode(const vlm_tokenizer *tok, const int32_t *ids, int64_t n,
                         unsigned flags, char *buf, size_t cap, size_t *len_out) {
    sink o = {buf, cap, 0};
    utf8_state st = {0};
    for (int64_t i = 0; i < n; i++) {
        size_t k;
        const uint8_t *b = id_bytes(tok, ids[i], flags, &k);
        if (!b) continue;
        if (flags & VLM_DECODE_RAW) {
            sink_put(&o, b, k);
        } else {
            for (size_t j = 0; j < k; j++) utf8_feed(&st, b[j], &o);
        }
    }
    utf8_finish(&st, &o);
    *len_out = o.len;
    if (o.len < cap) {
        buf[o.len] = 0;
        return 0;
    }
    if (cap) buf[cap - 1] = 0;
    return VLM_EFULL;
}

int32_t vlm_tokenizer_token_to_id(const vlm_tokenizer *tok, const char *name) {
    size_t n = strlen(name);
    int32_t id = str_map_get(&tok->added_map, tok->names, name, n);
    if (id < 0) id = str_map_get(&tok->vocab, tok->names, name, n);
    return id >= 0 ? id : VLM_ENOTFOUND;
}

const char *vlm_tokenizer_id_to_token(const vlm_tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->n_ids || !(tok->ids[id].flags & TOK_PRESENT)) return NULL;
    if (len) *len = tok->ids[id].name_len;
    return tok->names + tok->ids[id].name_off;
}

int vlm_tokenizer_is_special(const vlm_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->n_ids && (tok->ids[id].flags & TOK_SPECIAL) ? 1 : 0;
}

int64_t vlm_tokenizer_vocab_size(const vlm_tokenizer *tok) {
    return tok->n_ids;
}

/* ---- streaming decoder ------------------------------------------------------------ */

struct vlm_detok_stream {
    const vlm_tokenizer *tok; /* borrowed */
    unsigned flags;
    utf8_state st; /* the held-back prefix of a character */
    char *out;     /* (cap): one token's release, at most 3 bytes per input byte + 3 */
    size_t cap;
};

int vlm_detok_stream_new(const vlm_tokenizer *tok, unsigned flags, vlm_detok_stream **out) {
    *out = NULL;
    vlm_detok_stream *s = calloc(1, sizeof *s);
    if (!s) return VLM_ENOMEM;
    s->tok = tok;
    s->flags = flags & VLM_DECODE_SKIP_SPECIAL;
    s->cap = 3 * (tok->max_bytes + 4) + 1;
    s->out = malloc(s->cap);
    if (!s->out) {
        free(s);
        return VLM_ENOMEM;
    }
    *out = s;
    return 0;
}

void vlm_detok_stream_free(vlm_detok_stream *s) {
    if (!s) return;
    free(s->out);
    free(s);
}

int vlm_detok_stream_push(vlm_detok_stream *s, int32_t id, const char **text, size_t *len) {
    sink o = {s->out, s->cap, 0};
    size_t k;
    const uint8_t *b = id_bytes(s->tok, id, s->flags, &k);
    for (size_t j = 0; b && j < k; j++) utf8_feed(&s->st, b[j], &o);
    s->out[o.len] = 0;
    *text = s->out;
    *len = o.len;
    return 0;
}

int vlm_detok_stream_flush(vlm_detok_stream *s, const char **text, size_t *len) {
    sink o = {s->out, s->cap, 0};
    utf8_finish(&s->st, &o);
    s->out[o.len] = 0;
    *text = s->out;
    *len = o.len;
    return 0;
}

void vlm_detok_stream_reset(vlm_detok_stream *s) {
    s->st.have = 0;
}
