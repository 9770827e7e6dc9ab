/* rope_index.c — transformers' Qwen2.5-VL get_rope_index, for one sequence.
 *
 * Text tokens get (p, p, p) with p counting on from the previous segment's maximum + 1;
 * a media block of merged grid (gt, gh, gw) starting at base gives its k-th pad token
 * (base + floor(ti * second_per_grid * tokens_per_second), base + hi, base + wi).
 * Images use second_per_grid 0.  As in transformers, the time index is computed in
 * float32 and truncated, and media are taken in text order: at each step the earlier
 * of the next image pad and the next video pad.  rope_delta = max position + 1 − n.
 */
#include <string.h>

#include "model.h"

int vlm_rope_index(const vlm_config *cfg, const int32_t *ids, int64_t n,
                   const int64_t (*image_grids)[3], int64_t n_images,
                   const int64_t (*video_grids)[3], const float *second_per_grid,
                   int64_t n_videos, float *pos, int64_t *rope_delta, char *err) {
    int64_t sms = cfg->vision.spatial_merge_size;
    int64_t img_tok = cfg->image_token_id, vid_tok = cfg->video_token_id;
    /* count media by the token after each <|vision_start|>, as transformers does */
    int64_t want_img = 0, want_vid = 0;
    for (int64_t i = 0; i + 1 < n; i++)
        if (ids[i] == cfg->vision_start_token_id) {
            if (ids[i + 1] == img_tok) want_img++;
            if (ids[i + 1] == vid_tok) want_vid++;
        }
    if (want_img != n_images || want_vid != n_videos)
        return vlm__errf(err, VLM_EINVAL, "prompt has %lld image and %lld video blocks but %lld "
                         "image and %lld video grids were given", (long long)want_img,
                         (long long)want_vid, (long long)n_images, (long long)n_videos);
    int64_t st = 0, next = 0, img_i = 0, vid_i = 0;
    float *pt = pos, *ph = pos + n, *pw = pos + 2 * n;
    for (int64_t m = 0; m < n_images + n_videos; m++) {
        int64_t ed_img = n + 1, ed_vid = n + 1;
        if (img_i < n_images)
            for (int64_t i = st; i < n; i++)
                if (ids[i] == img_tok) { ed_img = i; break; }
        if (vid_i < n_videos)
            for (int64_t i = st; i < n; i++)
                if (ids[i] == vid_tok) { ed_vid = i; break; }
        const int64_t *g;
        float spg;
        int64_t ed, tok;
        if (ed_img < ed_vid) {
            g = image_grids[img_i++];
            spg = 0.0f;
            ed = ed_img;
            tok = img_tok;
        } else {
            if (ed_vid > n) break;
            g = video_grids[vid_i];
            spg = second_per_grid ? second_per_grid[vid_i] : 1.0f;
            vid_i++;
            ed = ed_vid;
            tok = vid_tok;
        }
        if (g[0] < 1 || g[1] % sms || g[2] % sms || g[1] < sms || g[2] < sms)
            return vlm__errf(err, VLM_EINVAL, "media %lld: grid (%lld, %lld, %lld) is not a "
                             "positive multiple of the merge size %lld", (long long)m,
                             (long long)g[0], (long long)g[1], (long long)g[2], (long long)sms);
        int64_t gt = g[0], gh = g[1] / sms, gw = g[2] / sms, count = gt * gh * gw;
        if (ed + count > n)
            return vlm__errf(err, VLM_EINVAL, "media %lld: grid needs %lld pad tokens from index "
                             "%lld but the prompt ends at %lld", (long long)m, (long long)count,
                             (long long)ed, (long long)n);
        for (int64_t i = ed; i < ed + count; i++)
            if (ids[i] != tok)
                return vlm__errf(err, VLM_EINVAL, "media %lld: grid (%lld, %lld, %lld) needs %lld "
                                 "pad tokens but the run at %lld has fewer", (long long)m,
                                 (long long)g[0], (long long)g[1], (long long)g[2],
                                 (long long)count, (long long)ed);
        for (int64_t i = st; i < ed; i++) pt[i] = ph[i] = pw[i] = (float)(next + i - st);
        int64_t base = next + (ed - st), maxp = base;
        for (int64_t ti = 0, k = ed; ti < gt; ti++) {
            /* float32 product, then .long() truncation, as transformers */
            float tf = (float)ti * spg * (float)cfg->vision.tokens_per_second;
            int64_t tpos = base + (int64_t)tf;
            for (int64_t hi = 0; hi < gh; hi++)
                for (int64_t wi = 0; wi < gw; wi++, k++) {
                    pt[k] = (float)tpos;
                    ph[k] = (float)(base + hi);
                    pw[k] = (float)(base + wi);
                    if (tpos > maxp) maxp = tpos;
                    if (base + hi > maxp) maxp = base + hi;
                    if (base + wi > maxp) maxp = base + wi;
                }
        }
        next = maxp + 1;
        st = ed + count;
    }
    for (int64_t i = st; i < n; i++) pt[i] = ph[i] = pw[i] = (float)(next + i - st);
    int64_t maxall = next - 1 + (n - st);
    if (st >= n) maxall = next - 1;
    *rope_delta = maxall + 1 - n;
    return 0;
}
