/* session.c — one stream's StreamingVLM session: per-chunk eviction, prompt layout,
 * vision, prefill and decode (docs/streamingvlm-spec.md §1.8, docs/STREAM_FIXTURES.md §4.3).
 *
 * State: the retained tokens (id, role, round) — a fixed-capacity set of arrays — and
 * the forward context's KV cache, which holds keys before RoPE (k_raw) and rotated
 * (k_rot) for a prefix of them.  Each chunk:
 *   1. evict (A: oldest text round's commentary moves into the previous-text block with
 *      its cached K/V; B: old vision; C: old user turn; D: previous-text sink + window),
 *      applied to the token arrays and, by one gather, to the cache;
 *   2. vision tower on the chunk's 2 frames;
 *   3. append the chunk's turn; 4. positions of the whole sequence, recomputed (so they
 *      stay contiguous) and the moved/shifted cached keys re-rotated;
 *   5. prefill the uncached tail; 6. decode up to M tokens; 7. close the turn.
 * Everything is planned at creation: pushing a chunk allocates nothing.
 * Thread: the caller's (one at a time).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session.h"

#define TRY(expr)                                                                          \
    do {                                                                                   \
        int rc_ = (expr);                                                                  \
        if (rc_) return rc_;                                                               \
    } while (0)

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int64_t max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}

/* ---- the retained sequence ---- */

static void hook(vlm_session *s, vlm_stage stage, int64_t arg) {
    if (s->hook) s->hook(s, stage, arg, s->hook_user);
}

/* Delete tokens [a, b] (inclusive). */
static void seq_delete(vlm_session *s, int64_t a, int64_t b) {
    int64_t k = b - a + 1, tail = s->n - b - 1;
    memmove(s->ids + a, s->ids + b + 1, sizeof *s->ids * (size_t)tail);
    memmove(s->roles + a, s->roles + b + 1, sizeof *s->roles * (size_t)tail);
    memmove(s->rounds + a, s->rounds + b + 1, sizeof *s->rounds * (size_t)tail);
    memmove(s->serial + a, s->serial + b + 1, sizeof *s->serial * (size_t)tail);
    memmove(s->row + a, s->row + b + 1, sizeof *s->row * (size_t)tail);
    s->n -= k;
}

#define REVERSE(arr, a, b)                                                                 \
    for (int64_t i_ = (a), j_ = (b); i_ < j_; i_++, j_--) {                                \
        __typeof__(arr[0]) t_ = arr[i_];                                                   \
        arr[i_] = arr[j_];                                                                 \
        arr[j_] = t_;                                                                      \
    }

/* Rotate [a, b] by r positions to the left: [a+r..b] then [a..a+r-1]. */
static void seq_rotate(vlm_session *s, int64_t a, int64_t r, int64_t b) {
    REVERSE(s->ids, a, a + r - 1) REVERSE(s->ids, a + r, b) REVERSE(s->ids, a, b)
    REVERSE(s->roles, a, a + r - 1) REVERSE(s->roles, a + r, b) REVERSE(s->roles, a, b)
    REVERSE(s->rounds, a, a + r - 1) REVERSE(s->rounds, a + r, b) REVERSE(s->rounds, a, b)
    REVERSE(s->serial, a, a + r - 1) REVERSE(s->serial, a + r, b) REVERSE(s->serial, a, b)
    REVERSE(s->row, a, a + r - 1) REVERSE(s->row, a + r, b) REVERSE(s->row, a, b)
}

/* First index at or after from whose role is in [lo, hi] (and round == round unless
 * round is INT32_MIN); -1 if none. */
static int64_t find_role(const vlm_session *s, int64_t from, int lo, int hi, int32_t round) {
    for (int64_t i = from; i < s->n; i++)
        if (s->roles[i] >= lo && s->roles[i] <= hi &&
            (round == INT32_MIN || s->rounds[i] == round))
            return i;
    return -1;
}

/* Last index of the run starting at a whose roles are in [lo, hi] and round is round. */
static int64_t run_end(const vlm_session *s, int64_t a, int lo, int hi, int32_t round) {
    int64_t b = a;
    while (b + 1 < s->n && s->roles[b + 1] >= lo && s->roles[b + 1] <= hi &&
           s->rounds[b + 1] == round)
        b++;
    return b;
}

/* Delete the run of roles [lo, hi] of round r starting at its first token, if any. */
static void delete_run(vlm_session *s, int lo, int hi, int32_t r) {
    int64_t a = find_role(s, 0, lo, hi, r);
    if (a >= 0) seq_delete(s, a, run_end(s, a, lo, hi, r));
}

/* Step 1: the eviction of chunk i (> 0).  Returns the first retained index whose
 * cache row moved (positions from there on must be re-rotated). */
static int evict(vlm_session *s, int64_t i, int64_t *first_changed) {
    const vlm_policy *p = &s->pol;
    int64_t T = p->text_rounds, V = p->vision_window;
    for (int64_t j = 0; j < s->n; j++) s->row[j] = j < s->n_cached ? (int32_t)j : -1;

    if (T >= 0 && i >= T) { /* A: the oldest text round leaves the window */
        int64_t a0 = find_role(s, 0, VLM_ROLE_ASSISTANT_HEADER, VLM_ROLE_ASSISTANT_NEWLINE,
                               INT32_MIN);
        int32_t r = a0 >= 0 ? s->rounds[a0] : -1;
        if (a0 >= 0) {
            int64_t cs = find_role(s, a0, VLM_ROLE_ASSISTANT_CONTENT,
                                   VLM_ROLE_ASSISTANT_CONTENT, r);
            if (cs >= 0) {
                int64_t ce = run_end(s, cs, VLM_ROLE_ASSISTANT_CONTENT,
                                     VLM_ROLE_ASSISTANT_CONTENT, r);
                /* all but the last content token (the trained " ..."), whatever it is */
                if (ce > cs) {
                    int64_t pf = find_role(s, 0, VLM_ROLE_PREV_FOOTER, VLM_ROLE_PREV_FOOTER,
                                           INT32_MIN);
                    seq_rotate(s, pf, cs - pf, ce - 1);
                    for (int64_t j = pf; j < pf + (ce - cs); j++) s->roles[j] = VLM_ROLE_PREV_MOVED;
                }
            }
            if (V < 0 || V > T) delete_run(s, VLM_ROLE_USER_TIME, VLM_ROLE_USER_TIME, r);
            delete_run(s, VLM_ROLE_ASSISTANT_HEADER, VLM_ROLE_ASSISTANT_NEWLINE, r);
        }
    }
    if (V >= 0 && i >= V && (T < 0 || V < T)) { /* B: vision leaves on its own */
        int64_t a = find_role(s, 0, VLM_ROLE_VISION_START, VLM_ROLE_VISION_START, INT32_MIN);
        if (a >= 0) delete_run(s, VLM_ROLE_VISION_START, VLM_ROLE_VISION_END, s->rounds[a]);
    }
    if (T >= 0 && V >= 0 && i >= max64(V, T)) { /* C: the whole user turn leaves */
        int64_t a = find_role(s, 0, VLM_ROLE_USER_HEADER, VLM_ROLE_USER_FOOTER, INT32_MIN);
        if (a >= 0) delete_run(s, VLM_ROLE_USER_HEADER, VLM_ROLE_USER_FOOTER, s->rounds[a]);
    }
    if (p->prev_sink >= 0) { /* D: previous text keeps its sink and its window */
        int64_t a = find_role(s, 0, VLM_ROLE_PREV_INITIAL, VLM_ROLE_PREV_MOVED, INT32_MIN);
        if (a >= 0) {
            int64_t c = 0;
            while (a + c < s->n && (s->roles[a + c] == VLM_ROLE_PREV_INITIAL ||
                                    s->roles[a + c] == VLM_ROLE_PREV_MOVED))
                c++;
            int64_t keep = p->prev_window - (p->window_off_by_one ? 1 : 0);
            if (c > p->prev_sink + keep) seq_delete(s, a + p->prev_sink, a + c - keep - 1);
        }
    }

    /* the cache: cached tokens are still a prefix; gather their rows in the new order */
    int64_t nc = 0, first = -1;
    while (nc < s->n && s->row[nc] >= 0) {
        s->gather[nc] = s->row[nc];
        if (first < 0 && s->row[nc] != nc) first = nc;
        nc++;
    }
    for (int64_t j = nc; j < s->n; j++)
        if (s->row[j] >= 0) {
            vlm__log(VLM_LOG_ERROR, "session: cached token %lld after an uncached one",
                     (long long)j);
            return VLM_EINVAL; /* a broken invariant, not bad input */
        }
    if (first < 0) first = nc;
    if (first < nc || nc != s->n_cached) TRY(vlm_kv_compact(s->ctx, s->gather, nc));
    s->n_cached = nc;
    *first_changed = first;
    return 0;
}

int vlm__time_text(const vlm_time_pieces *tp, double t0, double t1, int32_t *ids, int64_t cap,
                   int64_t *n) {
    char buf[96];
    snprintf(buf, sizeof buf, "=%.1f-%.1fs", t0, t1); /* Python's '%.1f' */
    int64_t k = 0;
    if (k < cap) ids[k] = tp->time;
    k++;
    for (const char *p = buf; *p; p++, k++) {
        int32_t id = *p == '=' ? tp->eq : *p == '.' ? tp->dot : *p == '-' ? tp->dash
                   : *p == 's' ? tp->s : tp->digit[(*p - '0') % 10];
        if (k < cap) ids[k] = id;
    }
    *n = k;
    return k > cap ? VLM_EFULL : 0;
}

/* Append n ids with a role and round; VLM_EFULL past the capacity. */
static int append(vlm_session *s, const int32_t *ids, int64_t n, vlm_role role, int32_t round) {
    if (s->n + n > s->cap) {
        vlm__log(VLM_LOG_ERROR, "session: %lld retained + %lld new tokens exceed the capacity "
                 "%lld", (long long)s->n, (long long)n, (long long)s->cap);
        return VLM_EFULL;
    }
    for (int64_t j = 0; j < n; j++) {
        s->ids[s->n] = ids[j];
        s->roles[s->n] = (uint8_t)role;
        s->rounds[s->n] = round;
        s->serial[s->n] = -1;
        s->row[s->n] = -1;
        s->n++;
    }
    return 0;
}

static int append1(vlm_session *s, int32_t id, vlm_role role, int32_t round) {
    return append(s, &id, 1, role, round);
}

/* Step 3: chunk i's turn. */
static int append_turn(vlm_session *s, int64_t i, double t0, double t1) {
    const vlm_pieces *pc = &s->pc;
    int32_t r = (int32_t)i;
    if (i == 0) {
        TRY(append(s, pc->system_block.v, pc->system_block.n, VLM_ROLE_SYSTEM, -1));
        TRY(append(s, pc->prev_header.v, pc->prev_header.n, VLM_ROLE_PREV_HEADER, -1));
        TRY(append(s, pc->prev_initial.v, pc->prev_initial.n, VLM_ROLE_PREV_INITIAL, -1));
        TRY(append(s, pc->prev_footer.v, pc->prev_footer.n, VLM_ROLE_PREV_FOOTER, -1));
    } else if (s->n == 0 || s->ids[s->n - 1] != pc->newline) {
        /* the newline that closes the previous assistant turn (dropped when the
         * sequence already ends in one, which happens only with T = 1) */
        TRY(append1(s, pc->newline, VLM_ROLE_ASSISTANT_NEWLINE, r - 1));
    }
    TRY(append(s, pc->user_header.v, pc->user_header.n, VLM_ROLE_USER_HEADER, r));
    int64_t nt = 0;
    TRY(vlm__time_text(&pc->time, t0, t1, s->scratch_ids, s->scratch_cap, &nt));
    TRY(append(s, s->scratch_ids, nt, VLM_ROLE_USER_TIME, r));
    TRY(append1(s, pc->vision_start, VLM_ROLE_VISION_START, r));
    for (int64_t k = 0; k < s->n_vis; k++) TRY(append1(s, pc->video_pad, VLM_ROLE_VIDEO_PAD, r));
    TRY(append1(s, pc->vision_end, VLM_ROLE_VISION_END, r));
    if (i == 0 || s->query_pending) {
        TRY(append(s, pc->query.v, pc->query.n, VLM_ROLE_QUERY, r));
        s->query_pending = false;
    }
    TRY(append(s, pc->user_footer.v, pc->user_footer.n, VLM_ROLE_USER_FOOTER, r));
    TRY(append(s, pc->assistant_header.v, pc->assistant_header.n, VLM_ROLE_ASSISTANT_HEADER, r));
    return 0;
}

/* Step 4: (t, h, w) positions of every retained token, from scratch: text tokens
 * (p, p, p); a vision block of merged grid (gt, gh, gw) gives its k-th token
 * (p + ti·2, p + hi, p + wi) and moves p past its maximum.  (One temporal grid per
 * 1-s chunk of 2 frames at 2 fps: second_per_grid 1 × tokens_per_second.) */
static void positions(vlm_session *s) {
    float *pt = s->pos, *ph = s->pos + s->cap, *pw = s->pos + 2 * s->cap;
    int64_t p = 0, tps = s->model->cfg.vision.tokens_per_second;
    for (int64_t j = 0; j < s->n;) {
        if (s->roles[j] != VLM_ROLE_VIDEO_PAD) {
            pt[j] = ph[j] = pw[j] = (float)p;
            p++;
            j++;
            continue;
        }
        const int64_t *g = s->round_grid[s->rounds[j] % s->n_round_slots];
        int64_t gh = g[1], gw = g[2], count = g[0] * gh * gw, maxp = p;
        for (int64_t k = 0; k < count && j < s->n; k++, j++) {
            int64_t ti = k / (gh * gw), hi = (k / gw) % gh, wi = k % gw;
            int64_t tpos = p + ti * tps; /* floor(ti * 1.0 * tokens_per_second) */
            pt[j] = (float)tpos;
            ph[j] = (float)(p + hi);
            pw[j] = (float)(p + wi);
            maxp = max64(maxp, max64(tpos, max64(p + hi, p + wi)));
        }
        p = maxp + 1;
    }
}

/* Resize (if needed) and patchify the chunk's frames into s->pixels. */
static int prepare_pixels(vlm_session *s, const vlm_frame frames[2], char *err) {
    for (int f = 0; f < 2; f++) {
        const vlm_frame *fr = &frames[f];
        if (!fr->rgb || fr->width < 1 || fr->height < 1 || fr->stride < 3 * fr->width)
            return vlm__errf(err, VLM_EINVAL, "chunk %lld: frame %d is %lldx%lld with stride "
                             "%lld (need a positive size and stride >= 3*width)",
                             (long long)s->chunk, f, (long long)fr->width,
                             (long long)fr->height, (long long)fr->stride);
        double ar = fr->width > fr->height ? (double)fr->width / fr->height
                                           : (double)fr->height / fr->width;
        if (ar > 200)
            return vlm__errf(err, VLM_EINVAL, "chunk %lld: frame %d aspect ratio %.0f is above "
                             "200", (long long)s->chunk, f, ar);
        uint8_t *dst = s->frame_buf + (size_t)f * (size_t)(s->th * s->tw * 3);
        if (fr->width == s->tw && fr->height == s->th) {
            for (int64_t y = 0; y < s->th; y++)
                memcpy(dst + y * s->tw * 3, fr->rgb + y * fr->stride, (size_t)(s->tw * 3));
        } else {
            size_t need = vlm_resize_scratch_size(fr->height, fr->width, s->th, s->tw);
            if (need > s->resize_scratch_bytes)
                return vlm__errf(err, VLM_EINVAL, "chunk %lld: frame %d is %lldx%lld, larger "
                                 "than the session was planned for", (long long)s->chunk, f,
                                 (long long)fr->width, (long long)fr->height);
            TRY(vlm_resize_bicubic_aa(fr->rgb, fr->height, fr->width, (size_t)fr->stride, dst,
                                      s->th, s->tw, (size_t)(s->tw * 3), s->resize_scratch,
                                      s->resize_scratch_bytes, err));
        }
    }
    const vlm_vision_config *vc = &s->model->cfg.vision;
    vlm_preproc_config pp = s->engine ? s->engine->pp : vlm_preproc_config_default();
    pp.patch_size = vc->patch_size;
    pp.temporal_patch_size = vc->temporal_patch_size;
    pp.merge_size = vc->spatial_merge_size;
    int64_t grid[3], rows = s->grid[0] * s->grid[1] * s->grid[2];
    int64_t patch_in = vc->in_channels * vc->temporal_patch_size * vc->patch_size * vc->patch_size;
    const uint8_t *fp[2] = {s->frame_buf, s->frame_buf + (size_t)(s->th * s->tw * 3)};
    TRY(vlm_normalize_patchify(&pp, fp, 2, s->th, s->tw, (size_t)(s->tw * 3), s->pixels,
                               (size_t)(rows * patch_in), grid, err));
    return 0;
}

static bool is_stop(const vlm_session *s, int32_t id) {
    const vlm_generation_config *g = &s->model->cfg.gen;
    if (id == s->pc.im_end) return true;
    for (int64_t k = 0; k < g->n_eos; k++)
        if (g->eos[k] == id) return true;
    return false;
}

/* The commentary text of round r: its content tokens decoded, the " ..." end-of-turn
 * convention stripped, whitespace trimmed. */
static void round_text(vlm_session *s, int32_t r, char *out, size_t cap) {
    out[0] = 0;
    if (!s->tok) return;
    int64_t a = find_role(s, 0, VLM_ROLE_ASSISTANT_CONTENT, VLM_ROLE_ASSISTANT_CONTENT, r), n = 0;
    if (a >= 0) n = run_end(s, a, VLM_ROLE_ASSISTANT_CONTENT, VLM_ROLE_ASSISTANT_CONTENT, r) - a + 1;
    size_t len = 0;
    if (n > 0 && vlm_tokenizer_decode(s->tok, s->ids + a, n, VLM_DECODE_SKIP_SPECIAL, s->text_buf,
                                      s->text_cap, &len) != 0)
        len = strlen(s->text_buf);
    if (n <= 0) len = 0;
    char *t = s->text_buf;
    t[len < s->text_cap ? len : s->text_cap - 1] = 0;
    len = strlen(t);
    while (len && (t[len - 1] == ' ' || t[len - 1] == '\n' || t[len - 1] == '\t')) t[--len] = 0;
    if (len >= 3 && !strcmp(t + len - 3, "...")) {
        len -= 3;
        t[len] = 0;
        while (len && (t[len - 1] == ' ' || t[len - 1] == '\n')) t[--len] = 0;
    }
    while (*t == ' ' || *t == '\n' || *t == '\t') t++;
    len = strlen(t);
    if (len >= cap) { /* cut at a UTF-8 boundary */
        len = cap - 1;
        while (len && ((unsigned char)t[len] & 0xC0) == 0x80) len--;
    }
    memcpy(out, t, len);
    out[len] = 0;
}

/* A step's logits row is `row` (backend memory): copied to s->logits when the check
 * hook or the host sampler will read it; a backend that draws reads it in place. */
static int logits_ready(vlm_session *s, vlm_tensor row, int64_t index) {
    s->lrow = row;
    s->logits_on_host = false;
    if (s->hook || !s->backend_draws) {
        int rc = vlm_backend_get(s->ctx->be, s->logits, row);
        if (rc) return rc;
        s->logits_on_host = true;
    }
    hook(s, VLM_STAGE_LOGITS, index);
    return 0;
}

/* Whether the policy's repetition penalty is in play (the backend then keeps a copy of
 * the penalized ids, ctx->seen). */
static bool penalized(const vlm_session *s) {
    return s->sampler.repetition_penalty != 1.0f;
}

/* Step 6a, the next token's draw begun: the uniform draw taken from the seeded
 * sequence and, where the policy fits the backend's SAMPLE op, the op issued (not
 * waited for, so a batch issues every session's draw before the first wait). */
static int draw_begin(vlm_session *s, char *err) {
    vlm_ctx *c = s->ctx;
    vlm_sampler *sp = &s->sampler;
    s->draw_u = sp->greedy ? 0.0 : vlm_sampler_next_u(sp);
    s->draw_issued = false;
    if (!s->backend_draws) return 0;
    int rc = vlm_sample(c->be, c->token, s->lrow, penalized(s) ? &c->seen : NULL, sp->greedy,
                        (int32_t)sp->top_k, sp->temperature, sp->top_p, sp->repetition_penalty,
                        s->draw_u);
    if (rc)
        return vlm__errf(err, rc, "chunk %lld: drawing token %lld failed: %s",
                         (long long)s->chunk, (long long)s->n_gen,
                         vlm_backend_last_error(c->be));
    s->draw_issued = true;
    return 0;
}

/* Step 6b, the drawn token: the backend's, or the host sampler's with the same uniform
 * draw when the backend does not draw for this policy or refused (too many ties). */
static int draw_end(vlm_session *s, int32_t *tok) {
    vlm_ctx *c = s->ctx;
    vlm_sampler *sp = &s->sampler;
    int rc;
    *tok = -1;
    if (s->draw_issued && (rc = vlm_backend_get(c->be, tok, c->token))) return rc;
    if (*tok >= 0) return 0;
    if (!s->logits_on_host && (rc = vlm_backend_get(c->be, s->logits, s->lrow))) return rc;
    s->logits_on_host = false; /* the sampler rewrites it */
    *tok = vlm_sampler_sample_at(sp, s->logits, s->draw_u);
    if (s->backend_draws && penalized(s)) { /* as the op would have */
        uint8_t one = 1;
        return vlm_backend_set(c->be, vlm_tensor_rows(c->seen, *tok, 1), &one);
    }
    return 0;
}

/* Steps 0-4 of chunk i: pixels, eviction, vision, the chunk's turn and positions;
 * leaves the prefill of the uncached tail (leftover turn end + this chunk's text) in
 * s->prefill.  Timings go to res (cleared here). */
static int chunk_prepare(vlm_session *s, const vlm_frame frames[2], double t_start,
                         double t_end, vlm_chunk_result *res, char *err) {
    int64_t i = s->chunk;
    int32_t r = (int32_t)i;
    vlm_ctx *c = s->ctx;
    memset(res, 0, sizeof *res);
    if (!(t_end > t_start) || t_start < 0 || t_end > 1e9)
        return vlm__errf(err, VLM_EINVAL, "chunk %lld: bad time span [%g, %g)", (long long)i,
                         t_start, t_end);
    int rc = prepare_pixels(s, frames, err);
    if (rc) return rc;

    /* 1. eviction */
    int64_t first_changed = s->n_cached;
    if (i > 0 && (rc = evict(s, i, &first_changed)))
        return vlm__errf(err, rc, "chunk %lld: eviction failed: %s", (long long)i,
                         vlm_strerror(rc));
    hook(s, VLM_STAGE_EVICTED, 0);

    /* 2. vision */
    double tv = now_ms();
    int64_t n_tok = 0;
    if ((rc = vlm_vision_forward(c, s->pixels, (const int64_t(*)[3])s->grid, 1, &n_tok)) ||
        (rc = vlm_backend_synchronize(c->be))) /* a device runs ahead: time what it did */
        return vlm__errf(err, rc, "chunk %lld: vision tower failed: %s", (long long)i,
                         vlm_backend_last_error(c->be));
    res->ms_vision = now_ms() - tv;
    s->round_grid[i % s->n_round_slots][0] = s->grid[0];
    s->round_grid[i % s->n_round_slots][1] = s->grid[1] / 2;
    s->round_grid[i % s->n_round_slots][2] = s->grid[2] / 2;
    hook(s, VLM_STAGE_VISION, n_tok);

    /* 3. the chunk's turn; 4. positions, and keys whose positions moved re-rotated */
    if ((rc = append_turn(s, i, t_start, t_end)))
        return vlm__errf(err, rc, "chunk %lld: %lld retained tokens leave no room for the "
                         "chunk (capacity %lld)", (long long)i, (long long)s->n,
                         (long long)s->cap);
    positions(s);
    float *pt = s->pos, *ph = s->pos + s->cap, *pw = s->pos + 2 * s->cap;
    if (first_changed < s->n_cached &&
        (rc = vlm_llm_rerotate(c, first_changed, s->n_cached - first_changed, pt + first_changed,
                               ph + first_changed, pw + first_changed)))
        return vlm__errf(err, rc, "chunk %lld: re-rotating cached keys failed", (long long)i);
    hook(s, VLM_STAGE_PROMPT, 0);

    /* the uncached tail to prefill, with its vision slots */
    int64_t base = s->n_cached, tn = s->n - base, n_slots = 0;
    float *tail_pos = s->pos + 3 * s->cap; /* scratch after the three rows */
    for (int64_t j = 0; j < tn; j++) {
        tail_pos[j] = pt[base + j];
        tail_pos[tn + j] = ph[base + j];
        tail_pos[2 * tn + j] = pw[base + j];
        if (s->roles[base + j] == VLM_ROLE_VIDEO_PAD && s->rounds[base + j] == r)
            s->slots[n_slots++] = (int32_t)j;
        s->serial[base + j] = s->next_serial++;
    }
    if (n_slots != n_tok)
        return vlm__errf(err, VLM_EINVAL, "chunk %lld: %lld vision slots for %lld vision rows",
                         (long long)i, (long long)n_slots, (long long)n_tok);
    s->prefill = (vlm_llm_seq){.c = c, .ids = s->ids + base, .pos = tail_pos, .n = tn,
                               .vis_slots = s->slots, .n_vis = n_slots,
                               .vis = vlm_tensor_rows(c->vout, 0, n_tok)};
    return 0;
}

/* Step 5 done (s->prefill forwarded with return code rc, its logits in `row`): the
 * tail is cached, the first logits row ready and the sampler set up. */
static int chunk_prefilled(vlm_session *s, int rc, vlm_tensor row, char *err) {
    vlm_ctx *c = s->ctx;
    long long i = (long long)s->chunk;
    if (rc)
        return vlm__errf(err, rc, "chunk %lld: prefill of %lld tokens failed: %s", i,
                         (long long)s->prefill.n, vlm_strerror(rc));
    s->n_cached = s->n;
    if ((rc = vlm_backend_synchronize(c->be)) || (rc = logits_ready(s, row, 0)))
        return vlm__errf(err, rc, "chunk %lld: reading the prefill's logits failed: %s", i,
                         vlm_backend_last_error(c->be));

    /* the penalty sees every retained id and what this chunk generates */
    vlm_sampler_reset_context(&s->sampler);
    vlm_sampler_add_context(&s->sampler, s->ids, s->n);
    if (s->backend_draws && penalized(s) &&
        (rc = vlm_backend_set(c->be, c->seen, s->sampler.seen)))
        return vlm__errf(err, rc, "chunk %lld: copying the penalty's ids to the backend "
                         "failed: %s", i, vlm_backend_last_error(c->be));
    s->n_gen = 0;
    return 0;
}

/* Step 5 alone: s->prefill forwarded on the session's own context. */
static int prefill_alone(vlm_session *s, vlm_chunk_result *res, char *err) {
    const vlm_llm_seq *p = &s->prefill;
    double tp = now_ms();
    int rc = vlm_llm_forward(p->c, p->ids, p->n, p->pos, p->vis_slots, p->n_vis, p->vis, 1, NULL);
    rc = chunk_prefilled(s, rc, vlm_tensor_rows(p->c->logits, 0, 1), err);
    res->ms_prefill = now_ms() - tp;
    res->prefill_streams = 1;
    return rc;
}

/* Steps 0-5 of chunk i alone. */
static int chunk_begin(vlm_session *s, const vlm_frame frames[2], double t_start, double t_end,
                       vlm_chunk_result *res, char *err) {
    int rc = chunk_prepare(s, frames, t_start, t_end, res, err);
    return rc ? rc : prefill_alone(s, res, err);
}

/* Step 6, one token: the draw draw_begin started, appended.  Returns 1 when the token
 * must be forwarded for the next logits row (its position in *pos), 0 when the chunk's
 * generation is over, < 0 on an error. */
static int chunk_sample(vlm_session *s, int32_t *tok, float *pos, char *err) {
    int32_t r = (int32_t)s->chunk;
    int32_t g;
    int rc = draw_end(s, &g);
    if (rc)
        return vlm__errf(err, rc, "chunk %lld: drawing token %lld failed: %s",
                         (long long)s->chunk, (long long)s->n_gen,
                         vlm_backend_last_error(s->ctx->be));
    s->gen[s->n_gen++] = g;
    bool end = g == s->pc.im_end;
    rc = append1(s, g, end ? VLM_ROLE_ASSISTANT_END : VLM_ROLE_ASSISTANT_CONTENT, r);
    if (rc)
        return vlm__errf(err, rc, "chunk %lld: capacity %lld reached while decoding",
                         (long long)s->chunk, (long long)s->cap);
    vlm_sampler_add_context(&s->sampler, &g, 1);
    if (is_stop(s, g) || s->n_gen >= s->pol.max_new_tokens) return 0;
    float *pt = s->pos, *ph = s->pos + s->cap, *pw = s->pos + 2 * s->cap;
    float p = pt[s->n - 2] + 1.0f; /* text after text: last position + 1 */
    pt[s->n - 1] = ph[s->n - 1] = pw[s->n - 1] = p;
    s->serial[s->n - 1] = s->next_serial++;
    *tok = g;
    *pos = p;
    return 1;
}

/* After the forward of the token chunk_sample returned: it is cached, its logits are
 * `row`. */
static int chunk_forwarded(vlm_session *s, vlm_tensor row, char *err) {
    s->n_cached = s->n;
    int rc = logits_ready(s, row, s->n_gen);
    if (rc)
        return vlm__errf(err, rc, "chunk %lld: reading the logits of step %lld failed: %s",
                         (long long)s->chunk, (long long)s->n_gen,
                         vlm_backend_last_error(s->ctx->be));
    return 0;
}

/* Step 7: close the turn (its last token(s) are forwarded at the next prefill). */
static int chunk_end(vlm_session *s, vlm_chunk_result *res, double t0, char *err) {
    int32_t r = (int32_t)s->chunk;
    int rc;
    if (s->ids[s->n - 1] != s->pc.im_end &&
        (rc = append1(s, s->pc.im_end, VLM_ROLE_ASSISTANT_END, r)))
        return vlm__errf(err, rc, "chunk %lld: capacity %lld reached", (long long)s->chunk,
                         (long long)s->cap);
    hook(s, VLM_STAGE_FINAL, 0);
    round_text(s, r, res->text, sizeof res->text);
    res->n_generated = s->n_gen;
    res->n_retained = s->n;
    res->n_cached = s->n_cached;
    res->ms_total = now_ms() - t0;
    s->chunk++;
    return 0;
}

int vlm_session_push_chunk(vlm_session *s, const vlm_frame frames[2], double t_start,
                           double t_end, vlm_chunk_result *res, char *err) {
    double t0 = now_ms();
    int rc = chunk_begin(s, frames, t_start, t_end, res, err);
    if (rc) return rc;
    double td = now_ms();
    int32_t g;
    float p;
    while (!(rc = draw_begin(s, err)) && (rc = chunk_sample(s, &g, &p, err)) == 1) {
        float p3[3] = {p, p, p};
        if ((rc = vlm_llm_forward(s->ctx, &g, 1, p3, NULL, 0, s->ctx->vout, 1, NULL)))
            return vlm__errf(err, rc, "chunk %lld: decode step %lld failed: %s",
                             (long long)s->chunk, (long long)s->n_gen, vlm_strerror(rc));
        if ((rc = chunk_forwarded(s, vlm_tensor_rows(s->ctx->logits, 0, 1), err))) return rc;
    }
    if (rc) return rc;
    res->ms_decode = now_ms() - td;
    return chunk_end(s, res, t0, err);
}

/* ---- several sessions at once ---- */

struct vlm_batch {
    vlm_engine *engine;    /* borrowed */
    vlm_ctx *ctx;          /* owned: the batch's run state (vlm_llm_forward_batch) */
    int64_t max;
    int64_t max_prefill;   /* most tokens of prefills run together (0: each alone) */
    int64_t *live;         /* scratch, max each: indices of the sessions still going */
    vlm_llm_seq *seqs;
    int32_t *toks;
    float *pos;            /* 3 per session: a decode token's t, h, w */
    double *t0;
};

int vlm_batch_new(vlm_engine *e, int64_t max_sessions, int64_t max_prefill_tokens,
                  vlm_batch **out, char *err) {
    *out = NULL;
    if (max_sessions < 1 || max_sessions > 4096)
        return vlm__errf(err, VLM_EINVAL, "batch: %lld sessions (1 to 4096)",
                         (long long)max_sessions);
    if (max_prefill_tokens < 0 || max_prefill_tokens > 65536)
        return vlm__errf(err, VLM_EINVAL, "batch: %lld prefill tokens (0 to 65536)",
                         (long long)max_prefill_tokens);
    vlm_batch *b = calloc(1, sizeof *b);
    if (!b) return vlm__errf(err, VLM_ENOMEM, "batch: out of memory");
    b->engine = e;
    b->max = max_sessions;
    b->max_prefill = max_prefill_tokens;
    size_t n = (size_t)max_sessions;
    b->live = malloc(n * sizeof *b->live);
    b->seqs = malloc(n * sizeof *b->seqs);
    b->toks = malloc(n * sizeof *b->toks);
    b->pos = malloc(3 * n * sizeof *b->pos);
    b->t0 = malloc(n * sizeof *b->t0);
    int rc = 0;
    if (!b->live || !b->seqs || !b->toks || !b->pos || !b->t0) {
        rc = vlm__errf(err, VLM_ENOMEM, "batch: out of memory");
    } else {
        /* rows for a step's one token per session or a group of prefills (none with one
         * session or no budget); n_ctx only has to hold those rows' new K/V */
        int64_t rows = max_sessions < 2 ? 1 : max64(max_sessions, max_prefill_tokens);
        if (max_sessions < 2) b->max_prefill = 0;
        vlm_ctx_params cp = {.n_ctx = rows, .n_batch = rows, .n_logits = max_sessions,
                             .n_patches = 0};
        rc = vlm_ctx_new(e->model, &cp, &b->ctx, err);
    }
    if (rc) {
        vlm_batch_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

void vlm_batch_free(vlm_batch *b) {
    if (!b) return;
    vlm_ctx_free(b->ctx);
    free(b->live);
    free(b->seqs);
    free(b->toks);
    free(b->pos);
    free(b->t0);
    free(b);
}

/* Step 5 for the prepared sessions ss[live[0..n_live)]: their prefills, several in one
 * forward while they fit in max_prefill tokens, a larger one alone on its own context.
 * Returns how many sessions are left in live (those whose prefill failed are out). */
static int64_t batch_prefill(vlm_batch *b, vlm_session *const *ss, int64_t n_live,
                             vlm_chunk_result *res, int *rcs, char (*errs)[VLM_ERR_LEN]) {
    int64_t *live = b->live, k = 0;
    while (k < n_live) {
        int64_t m = 0, tokens = 0;
        while (k + m < n_live && tokens + ss[live[k + m]]->prefill.n <= b->max_prefill) {
            b->seqs[m] = ss[live[k + m]]->prefill;
            tokens += b->seqs[m++].n;
        }
        /* the group's logits go to rows [k, k + m): an earlier group's first rows must
         * stay until its sessions draw from them, after every prefill */
        double tp = now_ms();
        int rc = m > 1 ? vlm_llm_forward_batch(b->ctx, b->seqs, m, k, NULL) : 0;
        if (m > 1 && rc == 0) {
            for (int64_t g = 0; g < m; g++) {
                int64_t i = live[k + g];
                rcs[i] = chunk_prefilled(ss[i], 0, vlm_tensor_rows(b->ctx->logits, k + g, 1),
                                         errs[i]);
                res[i].prefill_streams = m;
            }
            for (int64_t g = 0; g < m; g++) res[live[k + g]].ms_prefill = now_ms() - tp;
            k += m;
            continue;
        }
        /* alone: one that does not fit, or every one of a group whose forward failed (a
         * session's bad prefill then fails that session only) */
        if (m < 1) m = 1;
        for (int64_t g = 0; g < m; g++) {
            int64_t i = live[k + g];
            rcs[i] = prefill_alone(ss[i], &res[i], errs[i]);
        }
        k += m;
    }
    int64_t left = 0;
    for (k = 0; k < n_live; k++)
        if (!rcs[live[k]]) live[left++] = live[k];
    return left;
}

int vlm_batch_push_chunks(vlm_batch *b, vlm_session *const *ss, int64_t n,
                          const vlm_frame (*frames)[2], const double *t_start,
                          const double *t_end, vlm_chunk_result *res, int *rcs,
                          char (*errs)[VLM_ERR_LEN]) {
    if (n < 0 || n > b->max) {
        for (int64_t i = 0; i < n && i < b->max; i++)
            rcs[i] = vlm__errf(errs[i], VLM_EINVAL, "batch: %lld sessions, at most %lld",
                               (long long)n, (long long)b->max);
        return VLM_EINVAL;
    }
    for (int64_t i = 0; i < n; i++) {
        rcs[i] = 0;
        errs[i][0] = 0;
        if (ss[i]->model != b->engine->model)
            rcs[i] = vlm__errf(errs[i], VLM_EINVAL, "batch: session %lld has another model",
                               (long long)i);
        for (int64_t j = 0; j < i && !rcs[i]; j++)
            if (ss[j] == ss[i])
                rcs[i] = vlm__errf(errs[i], VLM_EINVAL, "batch: session %lld appears twice "
                                   "(as %lld)", (long long)i, (long long)j);
    }
    /* steps 1-4 one session after the other (the vision tower is large already), then
     * the prefills, small ones together */
    int64_t n_live = 0;
    for (int64_t i = 0; i < n; i++) {
        b->t0[i] = now_ms();
        if (rcs[i] || (rcs[i] = chunk_prepare(ss[i], frames[i], t_start[i], t_end[i], &res[i],
                                              errs[i])))
            continue;
        b->live[n_live++] = i;
    }
    n_live = batch_prefill(b, ss, n_live, res, rcs, errs);

    /* step 6 together: one forward per step over every session still generating */
    double td = now_ms();
    while (n_live > 0) {
        int64_t m = 0;
        for (int64_t k = 0; k < n_live; k++) /* every draw issued before the first wait */
            if ((rcs[b->live[k]] = draw_begin(ss[b->live[k]], errs[b->live[k]])))
                b->live[k] = -1;
        for (int64_t k = 0; k < n_live; k++) {
            int64_t i = b->live[k];
            if (i < 0) continue;
            float *p = &b->pos[3 * m];
            int rc = chunk_sample(ss[i], &b->toks[m], p, errs[i]);
            if (rc < 0) rcs[i] = rc;
            if (rc != 1) continue;
            p[1] = p[2] = p[0]; /* text: t = h = w */
            b->live[m] = i;
            b->seqs[m] = (vlm_llm_seq){.c = ss[i]->ctx, .ids = &b->toks[m], .pos = p, .n = 1};
            m++;
        }
        n_live = m;
        if (m == 0) break;
        /* no logits copied here: each session reads its row in chunk_forwarded */
        int rc = vlm_llm_forward_batch(b->ctx, b->seqs, m, 0, NULL);
        if (rc) {
            for (int64_t k = 0; k < m; k++) {
                int64_t i = b->live[k];
                rcs[i] = vlm__errf(errs[i], rc, "chunk %lld: batched decode step %lld of %lld "
                                   "sessions failed: %s", (long long)ss[i]->chunk,
                                   (long long)ss[i]->n_gen, (long long)m,
                                   vlm_backend_last_error(b->ctx->be));
            }
            break;
        }
        vlm_tensor rows = b->ctx->logits;
        int64_t m_ok = 0; /* a session whose logits cannot be read stops; the rest go on */
        for (int64_t k = 0; k < m; k++) {
            int64_t i = b->live[k];
            if ((rcs[i] = chunk_forwarded(ss[i], vlm_tensor_rows(rows, k, 1), errs[i]))) continue;
            b->live[m_ok++] = i;
        }
        n_live = m_ok;
    }
    double ms_decode = now_ms() - td;
    int rc_all = 0;
    for (int64_t i = 0; i < n; i++) {
        if (rcs[i]) {
            if (!rc_all) rc_all = rcs[i];
            continue;
        }
        res[i].ms_decode = ms_decode;
        if ((rcs[i] = chunk_end(ss[i], &res[i], b->t0[i], errs[i])) && !rc_all) rc_all = rcs[i];
    }
    return rc_all;
}

/* ---- creation ---- */

int vlm_policy_validate(const vlm_policy *p, char *err) {
    if (p->text_rounds == 0 || p->text_rounds < -1)
        return vlm__errf(err, VLM_EINVAL, "policy: text_rounds must be >= 1 (or -1 for never)");
    if (p->vision_window == 0 || p->vision_window < -1)
        return vlm__errf(err, VLM_EINVAL, "policy: vision_window must be >= 1 (or -1 for never)");
    if ((p->prev_sink < 0) != (p->prev_window < 0))
        return vlm__errf(err, VLM_EINVAL, "policy: prev_sink and prev_window must both be set "
                         "or both be -1 (got %lld and %lld)", (long long)p->prev_sink,
                         (long long)p->prev_window);
    if (p->prev_sink < -1 || p->prev_window < -1 ||
        (p->window_off_by_one && p->prev_window == 0))
        return vlm__errf(err, VLM_EINVAL, "policy: prev_sink/prev_window out of range");
    if (p->max_new_tokens < 1 || p->max_new_tokens > 4096)
        return vlm__errf(err, VLM_EINVAL, "policy: max_new_tokens must be in [1, 4096]");
    if (!p->greedy && (!(p->temperature > 0) || !(p->top_p > 0 && p->top_p <= 1) ||
                       p->top_k < 0))
        return vlm__errf(err, VLM_EINVAL, "policy: sampling needs temperature > 0, top_p in "
                         "(0, 1] and top_k >= 0");
    if (!(p->repetition_penalty > 0))
        return vlm__errf(err, VLM_EINVAL, "policy: repetition_penalty must be > 0");
    return 0;
}

static int copy_ids(vlm_ids *dst, const vlm_ids *src, int64_t cap) {
    dst->v = malloc(sizeof(int32_t) * (size_t)max64(cap, max64(src->n, 1)));
    if (!dst->v) return VLM_ENOMEM;
    if (src->n) memcpy(dst->v, src->v, sizeof(int32_t) * (size_t)src->n);
    dst->n = src->n;
    return 0;
}

static void free_pieces(vlm_pieces *pc) {
    vlm_ids *l[] = {&pc->system_block, &pc->prev_header, &pc->prev_initial, &pc->prev_footer,
                    &pc->user_header, &pc->user_footer, &pc->assistant_header, &pc->query};
    for (size_t k = 0; k < sizeof l / sizeof l[0]; k++) free(l[k]->v);
}

/* Tokens a chunk's turn can take at most, beyond its vision tokens. */
static int64_t turn_overhead(const vlm_session *s) {
    const vlm_pieces *pc = &s->pc;
    return 1 + pc->user_header.n + 24 /* time text */ + 2 + s->max_query + pc->user_footer.n +
           pc->assistant_header.n + s->pol.max_new_tokens + 2;
}

int vlm__session_create(vlm_session *s, vlm_model *m, const vlm_policy *policy,
                        const vlm_pieces *pieces, int64_t frame_h, int64_t frame_w,
                        int64_t src_h, int64_t src_w, int64_t n_ctx, char *err);

int vlm__session_create(vlm_session *s, vlm_model *m, const vlm_policy *policy,
                        const vlm_pieces *pieces, int64_t th, int64_t tw, int64_t src_h,
                        int64_t src_w, int64_t n_ctx, char *err) {
    int rc = vlm_policy_validate(policy, err);
    if (rc) return rc;
    const vlm_config *cfg = &m->cfg;
    const vlm_vision_config *vc = &cfg->vision;
    int64_t unit = vc->patch_size * vc->spatial_merge_size;
    if (th < unit || tw < unit || th % unit || tw % unit)
        return vlm__errf(err, VLM_EINVAL, "session: frame size %lldx%lld is not a positive "
                         "multiple of %lld", (long long)tw, (long long)th, (long long)unit);
    s->model = m;
    s->pol = *policy;
    s->th = th;
    s->tw = tw;
    s->grid[0] = 1; /* 2 frames = one temporal patch */
    s->grid[1] = th / vc->patch_size;
    s->grid[2] = tw / vc->patch_size;
    s->n_vis = (th / unit) * (tw / unit);
    if (s->max_query <= 0) s->max_query = VLM_MAX_QUERY_TOKENS;
    rc = copy_ids(&s->pc.system_block, &pieces->system_block, 0) ||
         copy_ids(&s->pc.prev_header, &pieces->prev_header, 0) ||
         copy_ids(&s->pc.prev_initial, &pieces->prev_initial, 0) ||
         copy_ids(&s->pc.prev_footer, &pieces->prev_footer, 0) ||
         copy_ids(&s->pc.user_header, &pieces->user_header, 0) ||
         copy_ids(&s->pc.user_footer, &pieces->user_footer, 0) ||
         copy_ids(&s->pc.assistant_header, &pieces->assistant_header, 0) ||
         copy_ids(&s->pc.query, &pieces->query, max64(s->max_query, pieces->query.n));
    if (rc) return vlm__errf(err, VLM_ENOMEM, "session: out of memory");
    s->max_query = max64(s->max_query, pieces->query.n);
    s->pc.newline = pieces->newline;
    s->pc.im_end = pieces->im_end;
    s->pc.vision_start = pieces->vision_start;
    s->pc.vision_end = pieces->vision_end;
    s->pc.video_pad = pieces->video_pad;
    s->pc.time = pieces->time;

    /* capacity: the bounded steady state of the policy, or the caller's n_ctx */
    int64_t round = s->n_vis + turn_overhead(s);
    int64_t head = s->pc.system_block.n + s->pc.prev_header.n + s->pc.prev_footer.n;
    int64_t chunk0 = head + s->pc.prev_initial.n + round;
    if (n_ctx <= 0) {
        if (policy->text_rounds < 0 || policy->vision_window < 0 || policy->prev_sink < 0)
            return vlm__errf(err, VLM_EINVAL, "session: a policy that never evicts (T, V or S/W "
                             "= -1) grows without bound; give n_ctx");
        int64_t rounds = max64(policy->text_rounds, policy->vision_window) + 1;
        int64_t prev = policy->prev_sink + policy->prev_window +
                       policy->max_new_tokens; /* content after D, plus one move */
        n_ctx = max64(chunk0, head + prev + rounds * round) + 16;
    }
    if (n_ctx < chunk0)
        return vlm__errf(err, VLM_EINVAL, "session: n_ctx %lld is too small for the first "
                         "chunk's %lld tokens", (long long)n_ctx, (long long)chunk0);
    s->cap = n_ctx;
    int64_t n_batch = max64(chunk0, round + 2);
    if (n_batch > n_ctx) n_batch = n_ctx;
    vlm_ctx_params cp = {.n_ctx = n_ctx, .n_batch = n_batch, .n_logits = 1,
                         .n_patches = s->grid[1] * s->grid[2]};
    if ((rc = vlm_ctx_new(m, &cp, &s->ctx, err))) return rc;

    size_t cap = (size_t)s->cap;
    s->n_round_slots = s->cap;
    s->ids = malloc(cap * sizeof *s->ids);
    s->roles = malloc(cap * sizeof *s->roles);
    s->rounds = malloc(cap * sizeof *s->rounds);
    s->serial = malloc(cap * sizeof *s->serial);
    s->row = malloc(cap * sizeof *s->row);
    s->gather = malloc(cap * sizeof *s->gather);
    s->pos = malloc(3 * cap * sizeof *s->pos + 3 * (size_t)n_batch * sizeof *s->pos);
    s->round_grid = calloc((size_t)s->n_round_slots, sizeof *s->round_grid);
    s->frame_buf = malloc((size_t)(2 * th * tw * 3));
    int64_t sh = src_h > 0 ? src_h : th, sw = src_w > 0 ? src_w : tw;
    s->resize_scratch_bytes = vlm_resize_scratch_size(sh, sw, th, tw);
    s->resize_scratch = malloc(s->resize_scratch_bytes ? s->resize_scratch_bytes : 1);
    int64_t patch_in = vc->in_channels * vc->temporal_patch_size * vc->patch_size * vc->patch_size;
    s->pixels = malloc(sizeof(float) * (size_t)(s->grid[1] * s->grid[2] * patch_in));
    s->slots = malloc(sizeof(int32_t) * (size_t)n_batch);
    s->logits = malloc(sizeof(float) * (size_t)cfg->vocab);
    s->gen = malloc(sizeof(int32_t) * (size_t)(policy->max_new_tokens + 1));
    s->text_cap = (size_t)(policy->max_new_tokens + 1) * 64 + 16;
    s->text_buf = malloc(s->text_cap);
    s->scratch_cap = max64(64, s->max_query);
    s->scratch_ids = malloc(sizeof(int32_t) * (size_t)s->scratch_cap);
    if (!s->ids || !s->roles || !s->rounds || !s->serial || !s->row || !s->gather || !s->pos ||
        !s->round_grid || !s->frame_buf || !s->resize_scratch || !s->pixels || !s->slots ||
        !s->logits || !s->gen || !s->text_buf || !s->scratch_ids)
        return vlm__errf(err, VLM_ENOMEM, "session: out of memory");
    if (vlm_sampler_init(&s->sampler, cfg->vocab, policy->greedy, policy->temperature,
                         policy->top_k, policy->top_p, policy->repetition_penalty, policy->seed))
        return vlm__errf(err, VLM_ENOMEM, "session: out of memory");
    /* the backend draws unless the policy samples from more candidates than its op takes
     * (no top-k, or a larger one): then every step's logits row comes to the host */
    s->backend_draws = s->sampler.greedy ||
                       (s->sampler.top_k >= 1 && s->sampler.top_k <= VLM_SAMPLE_MAX_CANDIDATES);
    return 0;
}

void vlm_session_free(vlm_session *s) {
    if (!s) return;
    vlm_ctx_free(s->ctx);
    free_pieces(&s->pc);
    free(s->ids);
    free(s->roles);
    free(s->rounds);
    free(s->serial);
    free(s->row);
    free(s->gather);
    free(s->pos);
    free(s->round_grid);
    free(s->frame_buf);
    free(s->resize_scratch);
    free(s->pixels);
    free(s->slots);
    free(s->logits);
    free(s->gen);
    free(s->text_buf);
    free(s->scratch_ids);
    vlm_sampler_deinit(&s->sampler);
    free(s);
}

int vlm__session_new_raw(vlm_model *m, const vlm_policy *policy, const vlm_pieces *pieces,
                         int64_t frame_h, int64_t frame_w, int64_t n_ctx, vlm_session **out,
                         char *err) {
    *out = NULL;
    vlm_session *s = calloc(1, sizeof *s);
    if (!s) return vlm__errf(err, VLM_ENOMEM, "session: out of memory");
    s->max_query = pieces->query.n;
    int rc = vlm__session_create(s, m, policy, pieces, frame_h, frame_w, 0, 0, n_ctx, err);
    if (rc) {
        vlm_session_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int64_t vlm_session_chunks(const vlm_session *s) {
    return s->chunk;
}

int64_t vlm_session_retained(const vlm_session *s) {
    return s->n;
}
