/* engine.c — the public entry points of vlm.h: load a model directory (model,
 * tokenizer, preprocessor config), StreamingVLM's default policy, and sessions whose
 * prompt pieces are tokenized with the model's own tokenizer.
 *
 * Chunk frames are resized to smart_resize(h, w) with StreamingVLM's video limits
 * (min 100·28², max 768·28², spec §1.3), each bounded by the model's own
 * preprocessor_config.json limits.  Thread: the caller's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

#define STREAMINGVLM_MIN_PIXELS (100 * 28 * 28)
#define STREAMINGVLM_MAX_PIXELS (768 * 28 * 28)

int vlm_engine_load(const char *dir, const vlm_engine_params *params, vlm_engine **out,
                    char *err) {
    *out = NULL;
    vlm_engine *e = calloc(1, sizeof *e);
    if (!e) return vlm__errf(err, VLM_ENOMEM, "%s: out of memory", dir);
    vlm_model_params mp = {.backend = params ? params->backend : NULL,
                           .n_threads = params ? params->n_threads : 0};
    char path[1200];
    int rc = vlm_model_load(dir, &mp, &e->model, err);
    if (!rc) {
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        rc = vlm_tokenizer_load(path, &e->tok, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            rc = vlm_preproc_config_load(path, &e->pp, err);
        } else if (errno == ENOENT) { /* optional: Qwen2.5-VL's own defaults */
            vlm__log(VLM_LOG_WARN, "%s: absent; using Qwen2.5-VL's preprocessor defaults", path);
            e->pp = vlm_preproc_config_default();
        } else {
            rc = vlm__errf(err, VLM_ENOTFOUND, "%s: cannot open: %s", path, strerror(errno));
        }
    }
    if (rc) {
        vlm_engine_free(e);
        return rc;
    }
    const vlm_vision_config *vc = &e->model->cfg.vision;
    e->pp.patch_size = vc->patch_size;
    e->pp.temporal_patch_size = vc->temporal_patch_size;
    e->pp.merge_size = vc->spatial_merge_size;
    e->max_pixels = e->pp.max_pixels < STREAMINGVLM_MAX_PIXELS ? e->pp.max_pixels
                                                               : STREAMINGVLM_MAX_PIXELS;
    e->min_pixels = STREAMINGVLM_MIN_PIXELS < e->max_pixels ? STREAMINGVLM_MIN_PIXELS
                                                           : e->max_pixels;
    if (e->pp.min_pixels > e->min_pixels && e->pp.min_pixels <= e->max_pixels)
        e->min_pixels = e->pp.min_pixels;
    const vlm_config *c = &e->model->cfg;
    snprintf(e->desc, sizeof e->desc, "qwen2_5_vl %lld layers, hidden %lld, vision %lldx%lld, "
             "vocab %lld, %s", (long long)c->n_layers, (long long)c->hidden,
             (long long)vc->depth, (long long)vc->hidden, (long long)c->vocab,
             e->model->be->iface->name);
    *out = e;
    return 0;
}

void vlm_engine_free(vlm_engine *e) {
    if (!e) return;
    vlm_tokenizer_free(e->tok);
    vlm_model_free(e->model);
    free(e);
}

const char *vlm_engine_describe(const vlm_engine *e) {
    return e->desc;
}

int vlm_engine_frame_size(const vlm_engine *e, int64_t src_w, int64_t src_h, int64_t *w,
                          int64_t *h, char *err) {
    return vlm_smart_resize(src_h, src_w, e->pp.patch_size * e->pp.merge_size, e->min_pixels,
                            e->max_pixels, h, w, err);
}

void vlm_policy_default(const vlm_engine *e, vlm_policy *p) {
    const vlm_generation_config *g = &e->model->cfg.gen;
    memset(p, 0, sizeof *p);
    p->vision_window = 16;
    p->text_rounds = 16;
    p->prev_sink = 512;
    p->prev_window = 512;
    p->window_off_by_one = false;
    p->max_new_tokens = 20;
    p->greedy = !g->do_sample;
    p->temperature = g->temperature;
    p->top_k = g->top_k;
    p->top_p = g->top_p;
    p->repetition_penalty = g->repetition_penalty;
    p->seed = 42; /* StreamingVLM's set_seed(42) */
}

/* ---- prompt pieces from the tokenizer ---- */

static int encode(const vlm_engine *e, const char *text, vlm_ids *out, const char *what,
                  char *err) {
    int64_t n = 0;
    size_t len = strlen(text);
    char terr[VLM_ERR_LEN];
    int rc = vlm_tokenizer_encode(e->tok, text, len, NULL, 0, &n, terr);
    if (rc && rc != VLM_EFULL) return vlm__errf(err, rc, "session: %s: %s", what, terr);
    out->v = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    out->n = n;
    if (!out->v) return vlm__errf(err, VLM_ENOMEM, "session: out of memory");
    rc = vlm_tokenizer_encode(e->tok, text, len, out->v, n, &n, terr);
    if (rc) return vlm__errf(err, rc, "session: %s: %s", what, terr);
    return 0;
}

/* Refuses text over max tokens: "what is N tokens, more than max". */
static int check_length(int64_t n, int64_t max, const char *what, char *err) {
    if (n <= max) return 0;
    return vlm__errf(err, VLM_EINVAL, "%s is %lld tokens, more than %lld", what, (long long)n,
                     (long long)max);
}

int vlm_engine_check_texts(const vlm_engine *e, const char *query, const char *previous_text,
                           char *err) {
    const char *texts[2] = {query, previous_text}, *names[2] = {"query", "previous_text"};
    const int64_t max[2] = {VLM_MAX_QUERY_TOKENS, VLM_MAX_PREVIOUS_TOKENS};
    for (int k = 0; k < 2; k++) {
        if (!texts[k]) continue;
        int64_t n = 0;
        char terr[VLM_ERR_LEN];
        int rc = vlm_tokenizer_encode(e->tok, texts[k], strlen(texts[k]), NULL, 0, &n, terr);
        if (rc) return vlm__errf(err, rc, "%s: %s", names[k], terr);
        if ((rc = check_length(n, max[k], names[k], err))) return rc;
    }
    return 0;
}

/* The time pieces from the tokenizer, verified: spelling a few times from them must give
 * exactly what the tokenizer gives for the whole string. */
static int time_pieces(const vlm_engine *e, vlm_time_pieces *tp, char *err) {
    const char *names[5] = {"Time", "=", ".", "-", "s"};
    int32_t *dst[5] = {&tp->time, &tp->eq, &tp->dot, &tp->dash, &tp->s};
    int64_t n = 0;
    for (int k = 0; k < 15; k++) {
        char one[8];
        const char *text = k < 5 ? names[k] : (snprintf(one, sizeof one, "%d", k - 5), one);
        int32_t id;
        if (vlm_tokenizer_encode(e->tok, text, strlen(text), &id, 1, &n, NULL) || n != 1)
            return vlm__errf(err, VLM_EUNSUPPORTED, "tokenizer.json: \"%s\" is not one token; "
                             "the Time= prompt needs it", text);
        if (k < 5) *dst[k] = id;
        else tp->digit[k - 5] = id;
    }
    const double t0s[3] = {0.0, 12.0, 99.0};
    for (int k = 0; k < 3; k++) {
        char buf[64];
        int32_t want[32], got[32];
        int64_t nw = 0, ng = 0;
        snprintf(buf, sizeof buf, "Time=%.1f-%.1fs", t0s[k], t0s[k] + 1);
        if (vlm_tokenizer_encode(e->tok, buf, strlen(buf), want, 32, &nw, NULL) ||
            vlm__time_text(tp, t0s[k], t0s[k] + 1, got, 32, &ng) || nw != ng ||
            memcmp(want, got, sizeof(int32_t) * (size_t)nw) != 0)
            return vlm__errf(err, VLM_EUNSUPPORTED, "tokenizer.json: \"%s\" does not split "
                             "into single characters after \"Time\"", buf);
    }
    return 0;
}

static void free_ids(vlm_pieces *pc) {
    vlm_ids *l[] = {&pc->system_block, &pc->prev_header, &pc->prev_initial, &pc->prev_footer,
                    &pc->user_header, &pc->user_footer, &pc->assistant_header, &pc->query};
    for (size_t k = 0; k < sizeof l / sizeof l[0]; k++) free(l[k]->v);
}

int vlm__session_create(vlm_session *s, vlm_model *m, const vlm_policy *policy,
                        const vlm_pieces *pieces, int64_t th, int64_t tw, int64_t src_h,
                        int64_t src_w, int64_t n_ctx, char *err);

int vlm_session_new(vlm_engine *e, const vlm_policy *policy, const vlm_session_params *sp,
                    vlm_session **out, char *err) {
    *out = NULL;
    const char *system = sp->system_prompt ? sp->system_prompt : "You are a helpful assistant.";
    const char *prev = sp->previous_text ? sp->previous_text : "";
    const char *query = sp->query ? sp->query : "Commentate on this match";
    int64_t th = 0, tw = 0, factor = e->pp.patch_size * e->pp.merge_size;
    int rc = vlm_smart_resize(sp->frame_height, sp->frame_width, factor, e->min_pixels,
                              e->max_pixels, &th, &tw, err);
    if (rc) return rc;
    if (sp->frames_at_model_size) {
        if (sp->frame_width % factor || sp->frame_height % factor ||
            sp->frame_width * sp->frame_height > e->max_pixels)
            return vlm__errf(err, VLM_EINVAL,
                             "session: frames_at_model_size, but %lldx%lld is not a model size "
                             "(sides multiples of %lld, at most %lld pixels)",
                             (long long)sp->frame_width, (long long)sp->frame_height,
                             (long long)factor, (long long)e->max_pixels);
        th = sp->frame_height;
        tw = sp->frame_width;
    }

    vlm_pieces pc = {0};
    const vlm_config *c = &e->model->cfg;
    char *sys = malloc(strlen(system) + 64);
    if (!sys) return vlm__errf(err, VLM_ENOMEM, "session: out of memory");
    sprintf(sys, "<|im_start|>system\n%s<|im_end|>\n", system);
    vlm_ids nl = {0};
    rc = encode(e, sys, &pc.system_block, "system prompt", err);
    free(sys);
    if (!rc) rc = encode(e, "<|im_start|>previous text\n", &pc.prev_header, "header", err);
    if (!rc) rc = encode(e, prev, &pc.prev_initial, "previous text", err);
    if (!rc) rc = encode(e, "<|im_end|>\n", &pc.prev_footer, "footer", err);
    if (!rc) rc = encode(e, "<|im_start|>user\n", &pc.user_header, "header", err);
    if (!rc) rc = encode(e, "<|im_end|>\n", &pc.user_footer, "footer", err);
    if (!rc) rc = encode(e, "<|im_start|>assistant\n", &pc.assistant_header, "header", err);
    if (!rc) rc = encode(e, query, &pc.query, "query", err);
    if (!rc) rc = encode(e, "\n", &nl, "newline", err);
    if (!rc && nl.n != 1)
        rc = vlm__errf(err, VLM_EFORMAT, "tokenizer.json: \"\\n\" is %lld tokens, want 1",
                       (long long)nl.n);
    int32_t im_end = vlm_tokenizer_token_to_id(e->tok, "<|im_end|>");
    if (!rc && im_end < 0)
        rc = vlm__errf(err, VLM_EFORMAT, "tokenizer.json: no '<|im_end|>' token");
    int64_t max_query = sp->max_query_tokens > 0 ? sp->max_query_tokens : VLM_MAX_QUERY_TOKENS;
    if (!rc) rc = time_pieces(e, &pc.time, err);
    if (!rc) rc = check_length(pc.query.n, max_query, "session: query", err);
    if (!rc)
        rc = check_length(pc.prev_initial.n, VLM_MAX_PREVIOUS_TOKENS, "session: previous_text",
                          err);
    vlm_session *s = NULL;
    if (!rc) {
        pc.newline = nl.v[0];
        pc.im_end = im_end;
        pc.vision_start = (int32_t)c->vision_start_token_id;
        pc.vision_end = (int32_t)c->vision_end_token_id;
        pc.video_pad = (int32_t)c->video_token_id;
        s = calloc(1, sizeof *s);
        if (!s) rc = vlm__errf(err, VLM_ENOMEM, "session: out of memory");
    }
    if (!rc) {
        s->engine = e;
        s->tok = e->tok;
        s->max_query = max_query;
        rc = vlm__session_create(s, e->model, policy, &pc, th, tw, sp->frame_height,
                                 sp->frame_width, sp->n_ctx, err);
    }
    free(nl.v);
    free_ids(&pc);
    if (rc) {
        vlm_session_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int vlm_session_set_query(vlm_session *s, const char *query, char *err) {
    if (!s->tok) return vlm__errf(err, VLM_EINVAL, "session: no tokenizer");
    int64_t n = 0;
    char terr[VLM_ERR_LEN];
    const char *q = query ? query : "";
    /* into scratch first: a query that does not fit leaves the old one intact */
    int rc = vlm_tokenizer_encode(s->tok, q, strlen(q), s->scratch_ids, s->max_query, &n, terr);
    if (rc == VLM_EFULL)
        return vlm__errf(err, rc, "session: query is %lld tokens, more than %lld",
                         (long long)n, (long long)s->max_query);
    if (rc) return vlm__errf(err, rc, "session: query: %s", terr);
    memcpy(s->pc.query.v, s->scratch_ids, sizeof(int32_t) * (size_t)n);
    s->pc.query.n = n;
    s->query_pending = n > 0;
    return 0;
}
