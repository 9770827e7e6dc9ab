/* vlm.h — the engine's public API: load a model directory, run streaming commentary
 * sessions on it.  This is the only engine header the daemon includes.
 *
 * A vlm_engine is a loaded Hugging Face model directory (config, weights, tokenizer,
 * preprocessor config).  A vlm_session is one stream: it turns 1-second chunks of 2 RGB
 * frames into commentary with StreamingVLM's streaming recipe — one prompt turn per
 * chunk, a KV cache that keeps the system prompt, a previous-text block (sink + window),
 * the last V chunks' vision and the last T rounds of text, with contiguous positions —
 * so its memory and per-chunk time stay flat on streams that never end.
 *
 * Ownership: the caller owns engines and sessions; a session borrows its engine, which
 * must outlive it.  Threads: an engine and its sessions are used by one thread at a time
 * (the daemon's inference thread).  Errors: negative VLM_E* codes (vlm_error.h) and a
 * message in err[VLM_ERR_LEN] naming the object.
 */
#ifndef VLM_H
#define VLM_H

#include <stdbool.h>
#include <stdint.h>

#include "vlm_error.h"

typedef struct vlm_engine vlm_engine;
typedef struct vlm_session vlm_session;
typedef struct vlm_batch vlm_batch;

typedef struct vlm_engine_params {
    const char *backend; /* "cpu" (default), "cuda", "auto" */
    int n_threads;       /* CPU threads; <= 0: all cores */
} vlm_engine_params;

/* Load dir/{config.json, generation_config.json, preprocessor_config.json,
 * tokenizer.json, *.safetensors}.  preprocessor_config.json and generation_config.json
 * are optional (Qwen2.5-VL's published values / transformers' defaults apply). */
int vlm_engine_load(const char *dir, const vlm_engine_params *params, vlm_engine **out,
                    char *err);
void vlm_engine_free(vlm_engine *e); /* NULL is a no-op */
/* A short description ("qwen2_5_vl 28 layers, hidden 3584, cpu") for logs. */
const char *vlm_engine_describe(const vlm_engine *e);

/* The size chunk frames of a w × h source are resized to (smart_resize with the
 * engine's per-frame pixel limits): feed frames of this size to avoid a resize. */
int vlm_engine_frame_size(const vlm_engine *e, int64_t src_w, int64_t src_h, int64_t *w,
                          int64_t *h, char *err);

/* StreamingVLM's streaming policy.  A count of -1 means "never evict" (null in the
 * reference); prev_sink and prev_window are both set or both -1. */
typedef struct vlm_policy {
    int64_t vision_window;   /* V: chunks whose vision tokens stay (16) */
    int64_t text_rounds;     /* T: rounds of text kept in place (16) */
    int64_t prev_sink;       /* S: first tokens of the previous-text block kept (512) */
    int64_t prev_window;     /* W: last tokens of the previous-text block kept (512) */
    bool window_off_by_one;  /* keep W-1, as StreamingVLM's code does (false) */
    int64_t max_new_tokens;  /* M: tokens generated per chunk at most (20) */
    /* sampling; greedy ignores the rest but the repetition penalty */
    bool greedy;
    float temperature, top_p, repetition_penalty;
    int64_t top_k;           /* 0: off */
    uint64_t seed;
} vlm_policy;

/* StreamingVLM's defaults (16, 16, 512, 512, 20) with the sampling values of the model's
 * generation_config.json (greedy when it does not ask to sample). */
void vlm_policy_default(const vlm_engine *e, vlm_policy *p);
/* Check that a policy makes sense; err names the field. */
int vlm_policy_validate(const vlm_policy *p, char *err);

typedef struct vlm_session_params {
    const char *system_prompt;  /* NULL: "You are a helpful assistant." */
    const char *previous_text;  /* NULL or "": empty previous-text block */
    const char *query;          /* NULL: "Commentate on this match" (chunk 0's turn) */
    int64_t frame_width;        /* size of the frames that will be pushed; they are */
    int64_t frame_height;       /* resized to the model's smart_resize size, unless: */
    bool frames_at_model_size;  /* the frames already are the model's size (a caller that
                                   scales to vlm_engine_frame_size's answer): used as they
                                   are.  smart_resize is not idempotent (with min_pixels =
                                   max_pixels, 252x140 would go to 280x168) */
    int64_t max_query_tokens;   /* room for queries set later (0: VLM_MAX_QUERY_TOKENS) */
    int64_t n_ctx;              /* KV capacity; 0: derived from the policy (required when
                                   T or V is -1) */
} vlm_session_params;

/* The longest query and previous_text a session takes by default, in tokens.  A query
 * sits in every turn it is set for; the previous text is read whole by chunk 0's prefill
 * (cut to the policy's S + W after), so its bound is the bound on that prefill. */
#define VLM_MAX_QUERY_TOKENS 256
#define VLM_MAX_PREVIOUS_TOKENS 4096

int vlm_session_new(vlm_engine *e, const vlm_policy *policy, const vlm_session_params *params,
                    vlm_session **out, char *err);

/* Whether a session would take query and previous_text (either may be NULL) with the
 * default limits: VLM_EINVAL with err "query is N tokens, more than 256" or the like,
 * or the tokenizer's error for text that is not UTF-8.  Thread: any (reads only the
 * tokenizer), so a server can refuse a request before it reaches the engine's thread. */
int vlm_engine_check_texts(const vlm_engine *e, const char *query, const char *previous_text,
                           char *err);
void vlm_session_free(vlm_session *s); /* NULL is a no-op */

/* Change the query: the next chunk's user turn carries it (after its video), as chunk
 * 0's does.  Empty or NULL: no query from then on. */
int vlm_session_set_query(vlm_session *s, const char *query, char *err);

typedef struct vlm_frame {
    const uint8_t *rgb; /* RGB24, row-major */
    int64_t width, height;
    int64_t stride;     /* bytes per row, >= 3 * width */
} vlm_frame;

#define VLM_TEXT_MAX 1024

typedef struct vlm_chunk_result {
    char text[VLM_TEXT_MAX]; /* the commentary, " ..." convention stripped, trimmed */
    int64_t n_generated;     /* tokens generated (including a generated stop token) */
    int64_t n_retained;      /* tokens retained after this chunk */
    int64_t n_cached;        /* of which in the KV cache */
    double ms_vision, ms_prefill, ms_decode, ms_total;
    int64_t prefill_streams; /* streams whose prefills ran in this one's forward (1: alone) */
} vlm_chunk_result;

/* Run one 1-second chunk: frames[0..1] are the frames at (or just after) t_start and
 * t_start + 0.5 s; t_start/t_end are stream seconds (the Time= text).  Evicts per the
 * policy, runs the vision tower, prefills, decodes.  Allocates nothing. */
int vlm_session_push_chunk(vlm_session *s, const vlm_frame frames[2], double t_start,
                           double t_end, vlm_chunk_result *res, char *err);

/* Several streams at once.  A vlm_batch is the run state for pushing one chunk to each
 * of up to max_sessions sessions of engine e in one call: each session's eviction and
 * vision tower run in turn; their prefills run together, several in one forward while
 * they add up to at most max_prefill_tokens tokens (0: each alone; a larger one runs
 * alone); then their decode steps run together — one forward over one token of every
 * session still generating.  Either way the weights are read once for all of them.
 * Sessions stay independent (each gets exactly the tokens it would alone, up to float
 * rounding of the batched products).  Owned by the caller; it borrows e. */
int vlm_batch_new(vlm_engine *e, int64_t max_sessions, int64_t max_prefill_tokens,
                  vlm_batch **out, char *err);
void vlm_batch_free(vlm_batch *b); /* NULL is a no-op */

/* Push chunk i (frames[i], [t_start[i], t_end[i])) to ss[i] for i < n, n <= max_sessions,
 * sessions distinct.  Per session: rcs[i] (0 or a VLM_E* code), errs[i] and res[i] as
 * vlm_session_push_chunk gives them (ms_prefill is the time of its prefill group, the
 * same for each session in it; ms_decode is the shared decode loop's).  A
 * session's failure does not stop the others.  Returns 0 when every session succeeded,
 * else the first failure's code.  Allocates nothing. */
int vlm_batch_push_chunks(vlm_batch *b, vlm_session *const *ss, int64_t n,
                          const vlm_frame (*frames)[2], const double *t_start,
                          const double *t_end, vlm_chunk_result *res, int *rcs,
                          char (*errs)[VLM_ERR_LEN]);

/* Chunks pushed so far; tokens retained now. */
int64_t vlm_session_chunks(const vlm_session *s);
int64_t vlm_session_retained(const vlm_session *s);

#endif
