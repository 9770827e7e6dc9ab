/* session.h — the streaming session's internals: the retained token sequence with its
 * explicit segment bookkeeping (a role and a round per token), the prompt pieces, and
 * the hooks that `commentary check` and the tests use to compare each stage with the
 * reference fixtures.  The daemon uses vlm.h only.
 *
 * The retained sequence always has the shape (docs/STREAM_FIXTURES.md §4.1)
 *   [system] [prev header | content (initial, then moved) | prev footer]
 *   [user r][assistant r] … [user i][assistant header i …]
 * and the tokens in the KV cache are always a prefix of it (the last 1–2 tokens of a
 * turn are forwarded at the next chunk's prefill).  Eviction finds segments by role and
 * round, never by scanning token ids.
 */
#ifndef VLM_SESSION_H
#define VLM_SESSION_H

#include "model.h"
#include "preprocess.h"
#include "sampler.h"
#include "tokenizer.h"
#include "vlm.h"

/* Role of each retained token (the codes of docs/STREAM_FIXTURES.md §4.1). */
typedef enum vlm_role {
    VLM_ROLE_SYSTEM = 0,
    VLM_ROLE_PREV_HEADER = 1,
    VLM_ROLE_PREV_INITIAL = 2,
    VLM_ROLE_PREV_MOVED = 3,
    VLM_ROLE_PREV_FOOTER = 4,
    VLM_ROLE_USER_HEADER = 5,
    VLM_ROLE_USER_TIME = 6,
    VLM_ROLE_VISION_START = 7,
    VLM_ROLE_VIDEO_PAD = 8,
    VLM_ROLE_VISION_END = 9,
    VLM_ROLE_QUERY = 10,
    VLM_ROLE_USER_FOOTER = 11,
    VLM_ROLE_ASSISTANT_HEADER = 12,
    VLM_ROLE_ASSISTANT_CONTENT = 13,
    VLM_ROLE_ASSISTANT_END = 14,
    VLM_ROLE_ASSISTANT_NEWLINE = 15,
} vlm_role;

typedef struct vlm_ids {
    int32_t *v;
    int64_t n;
} vlm_ids;

/* The ids that spell "Time=%.1f-%.1fs": `Time` one token, every other character its
 * own (digits are single tokens under the Qwen2 pre-tokenizer).  Spelling the time from
 * these needs no tokenizer call per chunk. */
typedef struct vlm_time_pieces {
    int32_t time, eq, dot, dash, s, digit[10];
} vlm_time_pieces;

/* The ids of "Time=%.1f-%.1fs" for [t0, t1); VLM_EFULL if more than cap. */
int vlm__time_text(const vlm_time_pieces *tp, double t0, double t1, int32_t *ids, int64_t cap,
                   int64_t *n);

/* Token ids of the prompt pieces (made with the tokenizer, or read from a fixture). */
typedef struct vlm_pieces {
    int32_t newline, im_end, vision_start, vision_end, video_pad;
    vlm_ids system_block;     /* <|im_start|>system\n…<|im_end|>\n */
    vlm_ids prev_header;      /* <|im_start|>previous text\n */
    vlm_ids prev_initial;     /* the initial previous text */
    vlm_ids prev_footer;      /* <|im_end|>\n */
    vlm_ids user_header;      /* <|im_start|>user\n */
    vlm_ids user_footer;      /* <|im_end|>\n */
    vlm_ids assistant_header; /* <|im_start|>assistant\n */
    vlm_ids query;            /* chunk 0's query (after the video) */
    vlm_time_pieces time;     /* the Time= text of each chunk */
} vlm_pieces;

/* A loaded model directory (vlm.h's opaque engine). */
struct vlm_engine {
    vlm_model *model;         /* owned */
    vlm_tokenizer *tok;       /* owned */
    vlm_preproc_config pp;    /* preprocessor_config.json, or Qwen2.5-VL's defaults */
    int64_t min_pixels, max_pixels; /* per-frame limits for chunk frames (video) */
    char desc[256];
};

/* Stages at which the check hook is called during vlm_session_push_chunk. */
typedef enum vlm_stage {
    VLM_STAGE_EVICTED,  /* after step 1 (eviction), before the chunk's text is appended */
    VLM_STAGE_VISION,   /* vision rows of the chunk are in ctx->vout */
    VLM_STAGE_PROMPT,   /* chunk text appended, positions computed, before prefill */
    VLM_STAGE_LOGITS,   /* a logits row (s->logits, copied for the hook) is ready; arg =
                           row index */
    VLM_STAGE_FINAL,    /* step 7 done */
} vlm_stage;

struct vlm_session {
    vlm_engine *engine;       /* borrowed; NULL for raw sessions */
    vlm_model *model;         /* borrowed */
    vlm_ctx *ctx;             /* owned: KV cache and run state */
    vlm_policy pol;
    vlm_pieces pc;            /* owned copies of the id lists */
    const vlm_tokenizer *tok; /* borrowed; NULL for raw sessions (no text output) */
    vlm_sampler sampler;

    /* geometry of every chunk: frames are resized to (th, tw) */
    int64_t th, tw;
    int64_t grid[3];          /* (t, h, w) in patches of one chunk */
    int64_t n_vis;            /* merged tokens per chunk */

    /* the retained sequence, capacity cap */
    int64_t cap, n, n_cached;
    int32_t *ids;
    uint8_t *roles;
    int32_t *rounds;
    int64_t *serial;          /* K/V serial of each cached token, -1 if uncached */
    int32_t *row;             /* eviction scratch: cache row of each token, -1 uncached */
    int32_t *gather;          /* eviction scratch: old cache rows in new order */
    float *pos;               /* positions, 3 rows of cap */
    int64_t (*round_grid)[3]; /* merged grid of each round's vision block, ring */
    int64_t n_round_slots;
    int64_t next_serial;

    /* per-chunk scratch, planned at creation */
    uint8_t *frame_buf;       /* resized frames, 2 × th × tw × 3 */
    uint8_t *resize_scratch;
    size_t resize_scratch_bytes;
    float *pixels;            /* [patches, patch_in] */
    int32_t *slots;           /* vision slots in the prefill tail */
    vlm_llm_seq prefill;      /* this chunk's prefill, set by chunk_prepare */
    float *logits;            /* [vocab] the current logits row (host), when copied */
    vlm_tensor lrow;          /* the current logits row in backend memory */
    bool logits_on_host;      /* lrow has been copied to logits */
    bool backend_draws;       /* the backend's SAMPLE op draws tokens (the policy fits it) */
    bool draw_issued;         /* this step's SAMPLE op is issued (draw_begin) */
    double draw_u;            /* this step's uniform draw */
    int32_t *gen;             /* generated ids of this chunk [M] */
    int64_t n_gen;
    char *text_buf;           /* decode buffer */
    size_t text_cap;
    int32_t *scratch_ids;     /* time text and query tokenisation */
    int64_t scratch_cap;

    int64_t chunk;            /* index of the next chunk */
    int64_t max_query;        /* capacity of pc.query */
    bool query_pending;       /* a query set with set_query goes into the next turn */

    /* check hook */
    void (*hook)(vlm_session *s, vlm_stage stage, int64_t arg, void *user);
    void *hook_user;
};

/* A session straight on a model, with given pieces (copied) and frames of h × w at the
 * model's resolution: what `commentary check` uses for stream fixtures, whose token ids
 * are not a real tokenizer's.  Text results are empty (no tokenizer). */
int vlm__session_new_raw(vlm_model *m, const vlm_policy *policy, const vlm_pieces *pieces,
                         int64_t frame_h, int64_t frame_w, int64_t n_ctx, vlm_session **out,
                         char *err);

#endif
