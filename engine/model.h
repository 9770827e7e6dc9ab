/* model.h — a Qwen2.5-VL model as the engine computes it: configuration, weights, and
 * the forward passes (vision tower, LLM) over a context that owns the KV cache.
 *
 * This is the engine's model layer, used by the streaming session (session.c), the CLI
 * and the tests.  The daemon never includes it: it talks to vlm.h only.
 *
 * Ownership: vlm_model owns its backend, its weights buffer and the mmapped files;
 * vlm_ctx (one per stream) owns its KV cache and run-state buffer and borrows the model.
 * Memory is planned once (load, context creation); forward passes allocate nothing.
 * Thread: a model and its contexts are used by one thread at a time.
 */
#ifndef VLM_MODEL_H
#define VLM_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "vlm_error.h"

#define VLM_MAX_FULLATT 64
#define VLM_MAX_EOS 8

typedef struct vlm_vision_config {
    int64_t depth;              /* number of ViT blocks */
    int64_t hidden;             /* ViT width (1280) */
    int64_t n_heads, head_dim;  /* head_dim = hidden / n_heads (80) */
    int64_t intermediate;       /* ViT MLP width (3420) */
    int64_t out_hidden;         /* merger output = LLM hidden */
    int64_t patch_size;         /* 14 */
    int64_t temporal_patch_size; /* 2 */
    int64_t spatial_merge_size; /* 2 */
    int64_t in_channels;        /* 3 */
    int64_t window_size;        /* attention window in pixels (112) */
    int64_t tokens_per_second;  /* M-RoPE time scale (2) */
    int64_t n_fullatt;
    int64_t fullatt[VLM_MAX_FULLATT]; /* blocks with full (per-frame) attention */
    float eps;                  /* RMSNorm eps: 1e-6, fixed by the architecture */
} vlm_vision_config;

typedef struct vlm_generation_config {
    int64_t n_eos;
    int64_t eos[VLM_MAX_EOS];   /* stop tokens */
    bool do_sample;
    float temperature;          /* 1.0 when absent */
    int64_t top_k;              /* 50 when absent (transformers' default) */
    float top_p;                /* 1.0 when absent */
    float repetition_penalty;   /* 1.0 when absent */
} vlm_generation_config;

typedef struct vlm_config {
    int64_t vocab;              /* embedding rows */
    int64_t hidden;
    int64_t n_layers;
    int64_t n_heads, n_kv_heads, head_dim;
    int64_t intermediate;
    float rms_eps;
    float rope_theta;
    int64_t mrope_section[3];   /* frequencies per (t, h, w) component; sum = head_dim/2 */
    bool tie_word_embeddings;
    int64_t bos_token_id, eos_token_id;
    int64_t image_token_id, video_token_id, vision_start_token_id, vision_end_token_id;
    vlm_vision_config vision;
    vlm_generation_config gen;
} vlm_config;

/* Read dir/config.json and dir/generation_config.json (optional) into cfg and validate
 * every field. Returns 0, or a negative code with err naming the file and key. */
int vlm_config_load(const char *dir, vlm_config *cfg, char *err);
/* Validate a config built in memory (the same checks as load). */
int vlm_config_validate(const vlm_config *cfg, const char *file, char *err);

typedef struct vlm_vision_block_weights {
    vlm_tensor norm1, norm2;                  /* [vh] */
    vlm_tensor q_w, k_w, v_w, q_b, k_b, v_b;  /* row blocks of qkv: [vh, vh], [vh] */
    vlm_tensor proj_w, proj_b;                /* [vh, vh], [vh] */
    vlm_tensor gate_w, gate_b, up_w, up_b;    /* [vi, vh], [vi] */
    vlm_tensor down_w, down_b;                /* [vh, vi], [vh] */
} vlm_vision_block_weights;

typedef struct vlm_layer_weights {
    vlm_tensor in_norm, post_norm;            /* [d] */
    vlm_tensor q_w, q_b;                      /* [H*hd, d], [H*hd] */
    vlm_tensor k_w, k_b, v_w, v_b;            /* [KVH*hd, d], [KVH*hd] */
    vlm_tensor o_w;                           /* [d, H*hd] */
    vlm_tensor gate_w, up_w;                  /* [I, d] */
    vlm_tensor down_w;                        /* [d, I] */
} vlm_layer_weights;

typedef struct vlm_weights {
    vlm_tensor patch_embed;                   /* [vh, C*tps*ps*ps] (the Conv3d, flattened) */
    vlm_vision_block_weights *blocks;         /* [depth] */
    vlm_tensor merger_ln;                     /* [vh] */
    vlm_tensor merger_w0, merger_b0;          /* [4vh, 4vh], [4vh] */
    vlm_tensor merger_w2, merger_b2;          /* [d, 4vh], [d] */
    vlm_tensor embed;                         /* [vocab, d] */
    vlm_layer_weights *layers;                /* [n_layers] */
    vlm_tensor norm;                          /* [d] */
    vlm_tensor lm_head;                       /* [vocab, d]; the embedding when tied */
} vlm_weights;

typedef struct vlm_model {
    vlm_config cfg;
    vlm_backend *be;
    void *weights_buf;                        /* one backend allocation for every weight */
    size_t weights_bytes;
    vlm_weights w;
    char dir[1024];
} vlm_model;

typedef struct vlm_model_params {
    const char *backend;                      /* "cpu" (default), "cuda", "auto" */
    int n_threads;                            /* CPU threads; <= 0: all cores */
} vlm_model_params;

/* Load a Hugging Face model directory (config, weights) onto a new backend.
 * Returns 0, or a negative code with err naming the file and tensor/key. */
int vlm_model_load(const char *dir, const vlm_model_params *params, vlm_model **out, char *err);
void vlm_model_free(vlm_model *m); /* NULL is a no-op */

/* A model of the given config with deterministic random weights made in memory (no
 * files): for benchmarks at real dimensions without a download. */
int vlm_model_new_random(const vlm_config *cfg, const vlm_model_params *params, uint64_t seed,
                         vlm_model **out, char *err);

/* Trace hook for checks: called with intermediate results (in backend memory) as the
 * forward runs; name is e.g. "patch_embed", "vision_block", "llm_layer"; index is the
 * block/layer or -1. */
typedef void (*vlm_trace_cb)(const char *name, int64_t index, vlm_tensor t, void *user);

typedef struct vlm_ctx_params {
    int64_t n_ctx;      /* KV-cache capacity in tokens */
    int64_t n_batch;    /* most tokens in one LLM forward */
    int64_t n_logits;   /* most logits rows one forward returns */
    int64_t n_patches;  /* most vision patches in one vision forward */
} vlm_ctx_params;

typedef struct vlm_ctx {
    vlm_model *model;                         /* borrowed */
    vlm_backend *be;                          /* the model's */
    vlm_ctx_params p;
    void *buf;                                /* one backend allocation: cache + run state */
    void *host;                               /* one host allocation: tables, index lists */
    int64_t n_cached;                         /* tokens in the KV cache */
    vlm_trace_cb trace;
    void *trace_user;

    /* KV cache, per layer: keys before and after RoPE, values */
    vlm_tensor *k_raw, *k_rot, *v;            /* [n_ctx, KVH, hd] each */

    /* LLM run state (device) */
    vlm_tensor x, xn;                         /* (n_batch, d) residual stream, normed */
    vlm_tensor q, att;                        /* (n_batch, H, hd) */
    vlm_tensor tmp;                           /* (n_batch, d) */
    vlm_tensor gate, up;                      /* (n_batch, I) */
    vlm_tensor logits;                        /* (n_logits, vocab) */
    vlm_tensor cos, sin;                      /* (n_batch, hd/2) f32 */
    vlm_tensor ids, slots;                    /* (n_batch) i32: token ids, vision slots */
    vlm_tensor kv_rows;                       /* (n_batch) i32: a batched row's cache row */
    vlm_tensor last_rows;                     /* (n_logits) i32: a batched sequence's last row */
    vlm_tensor kv_tmp;                        /* (n_ctx, KVH, hd): compaction target */
    vlm_tensor kv_idx;                        /* (n_ctx) i32: rows kept, in new order */
    vlm_tensor seen;                          /* (vocab) u8: ids the repetition penalty hits */
    vlm_tensor token;                         /* (1) i32: a token drawn on the backend */

    /* vision run state (device) */
    vlm_tensor vpix;                          /* (n_patches, C*tps*ps*ps) */
    vlm_tensor vx, vxn, vtmp;                 /* (n_patches, vh) */
    vlm_tensor vq, vk, vv, vatt;              /* (n_patches, vheads, vhd) */
    vlm_tensor vgate, vup;                    /* (n_patches, max(vi, vh)) */
    vlm_tensor vcos, vsin;                    /* (n_patches, vhd/2) f32 */
    vlm_tensor vidx, vinv;                    /* (n_patches/4) i32 window order and inverse */
    vlm_tensor vseg_win, vseg_full;           /* (n_patches+1) i32 segment bounds */
    vlm_tensor vout;                          /* (n_patches/4, d) merger output, natural order */

    /* host scratch */
    float *h_cos, *h_sin;                     /* (max(n_batch, n_patches), max(hd, vhd)/2) */
    int32_t *h_idx, *h_inv, *h_seg_win, *h_seg_full, *h_ids, *h_slots, *h_kv_rows, *h_last_rows;
    float *h_angles;                          /* (n_patches, vhd/2) vision rotary angles */
} vlm_ctx;

int vlm_ctx_new(vlm_model *m, const vlm_ctx_params *p, vlm_ctx **out, char *err);
void vlm_ctx_free(vlm_ctx *c); /* NULL is a no-op */

/* Vision tower on n_grids media (images or videos) whose patches are the rows of
 * pixels (host, [sum t*h*w, C*tps*ps*ps], media in order).  Leaves the merged
 * embeddings, natural order, in c->vout rows [0, n_tokens); *n_tokens = patches / 4. */
int vlm_vision_forward(vlm_ctx *c, const float *pixels, const int64_t (*grids)[3],
                       int64_t n_grids, int64_t *n_tokens);

/* Host-side vision geometry, exposed for checks: rotary angles (natural order,
 * [Np, vhd/2]), window permutation of merge units ([Np/4]) and segment bounds
 * (in patches, window order; cu_win deduplicated as HF's unique_consecutive).
 * Return the number of entries written to cu_win / cu_full. */
void vlm__vision_rope_angles(const vlm_vision_config *vc, const int64_t (*grids)[3],
                             int64_t n_grids, float *angles);
int64_t vlm__vision_window_index(const vlm_vision_config *vc, const int64_t (*grids)[3],
                                 int64_t n_grids, int32_t *index, int32_t *cu_win);
int64_t vlm__vision_full_seqlens(const int64_t (*grids)[3], int64_t n_grids, int32_t *cu_full);

/* LLM forward of n new tokens appended after the c->n_cached cached ones.
 *   ids        token ids [n]
 *   pos        M-RoPE positions, 3 rows of n (t, h, w), as floats
 *   vis_slots  indices in [0, n) whose embeddings are replaced by rows of vis, in order
 *   vis        device rows (n_vis, d), e.g. a view of c->vout
 *   n_logits   logits for the last n_logits tokens, copied to logits_out (host) if set
 * Appends the n tokens to the KV cache. */
int vlm_llm_forward(vlm_ctx *c, const int32_t *ids, int64_t n, const float *pos,
                    const int32_t *vis_slots, int64_t n_vis, vlm_tensor vis, int64_t n_logits,
                    float *logits_out);

/* One context's share of a batched forward: n new tokens after its cached ones, as
 * vlm_llm_forward takes them (ids [n]; pos, 3 rows of n; vis_slots in [0, n) replaced
 * by the n_vis rows of vis, device rows (n_vis, d)). */
typedef struct vlm_llm_seq {
    vlm_ctx *c;
    const int32_t *ids;
    const float *pos;
    int64_t n;
    const int32_t *vis_slots;
    int64_t n_vis;
    vlm_tensor vis;
} vlm_llm_seq;

/* One forward over the new tokens of n_seqs contexts of the same model at once (a batch
 * of decode steps, of prefills, or a mix): seqs[i]'s tokens are appended to seqs[i].c's
 * cache, and the logits of its last token are row row0 + i of b->logits (rows outside
 * [row0, row0 + n_seqs) are left alone, so several groups can keep theirs), copied to
 * logits_out[i] (host) when logits_out and logits_out[i] are set.  The projections, the
 * MLP and lm_head run once over every row, so the weights are read once for all the
 * streams; attention runs per context over its own cache.  b is a context of the same
 * model used only as the batch's run state (sum of n <= n_batch of b, row0 + n_seqs <=
 * n_logits of b; its cache holds the new keys and values before they are copied to each
 * context).  Contexts are distinct.  On an error no context's n_cached has changed. */
int vlm_llm_forward_batch(vlm_ctx *b, const vlm_llm_seq *seqs, int64_t n_seqs, int64_t row0,
                          float *const *logits_out);

/* Keep only the cached rows idx[0..n) (in that order) of every layer's raw keys and
 * values: the cache then holds n tokens.  Rotated keys are stale from the first row
 * whose source moved; re-rotate them with vlm_llm_rerotate. */
int vlm_kv_compact(vlm_ctx *c, const int32_t *idx, int64_t n);

/* Rotate the raw keys of cached rows [first, first+n) into k_rot at the positions
 * pos_t/pos_h/pos_w[0..n) (after eviction changed them). */
int vlm_llm_rerotate(vlm_ctx *c, int64_t first, int64_t n, const float *pos_t,
                     const float *pos_h, const float *pos_w);

/* transformers' get_rope_index for one sequence: 3-D positions of every token (written
 * as 3 rows of n floats) and the decode delta.  Media are matched to the
 * <|vision_start|> + <|image_pad|>/<|video_pad|> runs in order.  Errors when the pad
 * counts do not match the grids. */
int vlm_rope_index(const vlm_config *cfg, const int32_t *ids, int64_t n,
                   const int64_t (*image_grids)[3], int64_t n_images,
                   const int64_t (*video_grids)[3], const float *second_per_grid,
                   int64_t n_videos, float *pos, int64_t *rope_delta, char *err);

#endif
