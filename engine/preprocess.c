/* preprocess.c — frame preprocessing: processor config, smart_resize, antialiased bicubic
 * resize, normalise + patchify (see preprocess.h for the pipeline).
 *
 * Every step copies a Python reference down to the float rounding, so the engine's
 * pixel_values equal the ones transformers feeds the model:
 *   - smart_resize: qwen-vl-utils' formula in float64 (streamingvlm-spec §1.3).
 *   - resize: torchvision's tensor resize (uint8 -> float32 -> ATen's separable
 *     antialiased bicubic -> clamp -> round -> uint8).  The weights and the tap order are
 *     ATen's; see the comments at cubic_aa() and fused_from() for the float details.
 *   - normalise: Qwen2VLImageProcessor's rescale (float64 multiply, cast to float32) then
 *     (v - mean) / std in float32 (spec §1.4), through a 256-entry table per channel.
 *
 * Invariants: no globals; per-frame calls allocate nothing (vlm_resize_bicubic_aa only
 * when given no scratch; the config loader does, through jansson);
 * sides are at most VLM_PREPROC_MAX_SIDE so every size_t product below fits.
 * Thread: any (reentrant).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "preprocess.h"
#include "vlm_util.h"

/* The resize copies where the reference fuses a multiply-add and where it does not
 * (hpass_row); the compiler must not fuse any others.  GCC does not contract under
 * -std=c11; this pragma tells clang the same. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* ---- processor config ---------------------------------------------------------------- */

#define PREPROC_MAX_PIXELS_LIMIT ((int64_t)1 << 40)

vlm_preproc_config vlm_preproc_config_default(void) {
    vlm_preproc_config c = {
        .min_pixels = 56 * 56,
        .max_pixels = 28 * 28 * 16384,
        .patch_size = 14,
        .temporal_patch_size = 2,
        .merge_size = 2,
        .image_mean = {0.48145466, 0.4578275, 0.40821073},
        .image_std = {0.26862954, 0.26130258, 0.27577711},
        .rescale_factor = 1.0 / 255.0,
    };
    return c;
}

/* Read integer key `name` of obj (printed as jpath) into *v when present, checking
 * 1 <= v <= maxv.  Integral reals (3136.0) are accepted.  Returns 0 or VLM_EINVAL. */
static int cfg_int(const json_t *obj, const char *name, const char *jpath, const char *path,
                   int64_t maxv, int64_t *v, char *err) {
    const json_t *j = json_object_get(obj, name);
    if (!j) return 0;
    double d;
    if (json_is_integer(j)) {
        d = (double)json_integer_value(j);
    } else if (json_is_real(j) && floor(json_real_value(j)) == json_real_value(j)) {
        d = json_real_value(j);
    } else {
        return vlm__errf(err, VLM_EINVAL, "%s: '%s' must be an integer", path, jpath);
    }
    if (!(d >= 1 && d <= (double)maxv))
        return vlm__errf(err, VLM_EINVAL, "%s: '%s' is %.17g, want 1..%" PRId64, path, jpath, d,
                         maxv);
    *v = (int64_t)d;
    return 0;
}

/* Read key `name` (an array of 3 finite numbers, each > 0 when positive) into v[3]. */
static int cfg_vec3(const json_t *obj, const char *name, const char *path, int positive,
                    double v[3], char *err) {
    const json_t *j = json_object_get(obj, name);
    if (!j) return 0;
    if (!json_is_array(j) || json_array_size(j) != 3)
        return vlm__errf(err, VLM_EINVAL, "%s: '%s' must be an array of 3 numbers", path, name);
    double t[3];
    for (size_t i = 0; i < 3; i++) {
        const json_t *e = json_array_get(j, i);
        if (!json_is_number(e))
            return vlm__errf(err, VLM_EINVAL, "%s: '%s'[%zu] must be a number", path, name, i);
        t[i] = json_number_value(e);
        if (!isfinite(t[i]) || (positive && !(t[i] > 0)))
            return vlm__errf(err, VLM_EINVAL, "%s: '%s'[%zu] is %.17g, want %s", path, name, i,
                             t[i], positive ? "a number > 0" : "a finite number");
    }
    memcpy(v, t, sizeof t);
    return 0;
}

/* A boolean key that must not be false (steps this engine always performs). */
static int cfg_must_be_true(const json_t *obj, const char *name, const char *path, char *err) {
    const json_t *j = json_object_get(obj, name);
    if (!j) return 0;
    if (!json_is_boolean(j))
        return vlm__errf(err, VLM_EINVAL, "%s: '%s' must be true or false", path, name);
    if (json_is_false(j))
        return vlm__errf(err, VLM_EUNSUPPORTED, "%s: '%s' false is not supported", path, name);
    return 0;
}

static int cfg_parse(const json_t *root, const char *path, vlm_preproc_config *c, char *err) {
    int rc;
    if (!json_is_object(root))
        return vlm__errf(err, VLM_EFORMAT, "%s: top level must be a JSON object", path);

    /* Newer configs: "size": {"shortest_edge": min_pixels, "longest_edge": max_pixels}.
     * Top-level min_pixels/max_pixels override it, as in Qwen2VLImageProcessor. */
    const json_t *size = json_object_get(root, "size");
    if (size && !json_is_null(size)) {
        if (!json_is_object(size) || !json_object_get(size, "shortest_edge") ||
            !json_object_get(size, "longest_edge"))
            return vlm__errf(err, VLM_EINVAL,
                             "%s: 'size' must be an object with 'shortest_edge' and "
                             "'longest_edge'",
                             path);
        if ((rc = cfg_int(size, "shortest_edge", "size.shortest_edge", path,
                          PREPROC_MAX_PIXELS_LIMIT, &c->min_pixels, err)) ||
            (rc = cfg_int(size, "longest_edge", "size.longest_edge", path, PREPROC_MAX_PIXELS_LIMIT,
                          &c->max_pixels, err)))
            return rc;
    }
    if ((rc = cfg_int(root, "min_pixels", "min_pixels", path, PREPROC_MAX_PIXELS_LIMIT,
                      &c->min_pixels, err)) ||
        (rc = cfg_int(root, "max_pixels", "max_pixels", path, PREPROC_MAX_PIXELS_LIMIT,
                      &c->max_pixels, err)) ||
        (rc = cfg_int(root, "patch_size", "patch_size", path, 1024, &c->patch_size, err)) ||
        (rc = cfg_int(root, "temporal_patch_size", "temporal_patch_size", path, 64,
                      &c->temporal_patch_size, err)) ||
        (rc = cfg_int(root, "merge_size", "merge_size", path, 64, &c->merge_size, err)) ||
        (rc = cfg_vec3(root, "image_mean", path, 0, c->image_mean, err)) ||
        (rc = cfg_vec3(root, "image_std", path, 1, c->image_std, err)) ||
        (rc = cfg_must_be_true(root, "do_rescale", path, err)) ||
        (rc = cfg_must_be_true(root, "do_normalize", path, err)))
        return rc;

    const json_t *rf = json_object_get(root, "rescale_factor");
    if (rf) {
        if (!json_is_number(rf))
            return vlm__errf(err, VLM_EINVAL, "%s: 'rescale_factor' must be a number", path);
        double v = json_number_value(rf);
        if (!isfinite(v) || !(v > 0))
            return vlm__errf(err, VLM_EINVAL, "%s: 'rescale_factor' is %.17g, want > 0", path, v);
        c->rescale_factor = v;
    }
    if (c->min_pixels > c->max_pixels)
        return vlm__errf(err, VLM_EINVAL,
                         "%s: 'min_pixels' (%" PRId64 ") is greater than 'max_pixels' (%" PRId64
                         ")",
                         path, c->min_pixels, c->max_pixels);
    if (c->patch_size * c->merge_size > 4096)
        return vlm__errf(err, VLM_EINVAL,
                         "%s: 'patch_size' * 'merge_size' is %" PRId64 ", want <= 4096", path,
                         c->patch_size * c->merge_size);
    return 0;
}

int vlm_preproc_config_load(const char *path, vlm_preproc_config *out, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return vlm__errf(err, e == ENOENT ? VLM_ENOTFOUND : VLM_EIO, "%s: %s", path, strerror(e));
    }
    json_error_t jerr;
    json_t *root = json_loadf(f, 0, &jerr);
    fclose(f);
    if (!root) return vlm__errf(err, VLM_EFORMAT, "%s:%d: %s", path, jerr.line, jerr.text);
    vlm_preproc_config c = vlm_preproc_config_default();
    int rc = cfg_parse(root, path, &c, err);
    json_decref(root);
    if (rc == 0) *out = c;
    return rc;
}

/* ---- smart_resize ----------------------------------------------------------------------- */

#define SMART_MAX_SIDE ((int64_t)1 << 24) /* h*w stays exact in a double */

/* All divisions are float64 as in Python 3 (int / int is the correctly rounded quotient,
 * which is what a double division of two exact operands gives). */
int vlm_smart_resize(int64_t h, int64_t w, int64_t factor, int64_t min_pixels, int64_t max_pixels,
                     int64_t *out_h, int64_t *out_w, char *err) {
    if (h <= 0 || w <= 0)
        return vlm__errf(err, VLM_EINVAL,
                         "smart_resize: height %" PRId64 " and width %" PRId64 " must be positive",
                         h, w);
    if (factor <= 0 || min_pixels < 0 || max_pixels <= 0)
        return vlm__errf(err, VLM_EINVAL,
                         "smart_resize: bad factor %" PRId64 " or pixel bounds [%" PRId64
                         ", %" PRId64 "]",
                         factor, min_pixels, max_pixels);
    if (h > SMART_MAX_SIDE || w > SMART_MAX_SIDE || factor > SMART_MAX_SIDE ||
        min_pixels > PREPROC_MAX_PIXELS_LIMIT || max_pixels > PREPROC_MAX_PIXELS_LIMIT)
        return vlm__errf(err, VLM_ERANGE,
                         "smart_resize: %" PRId64 "x%" PRId64 " factor %" PRId64 " pixels [%" PRId64
                         ", %" PRId64 "] out of range",
                         h, w, factor, min_pixels, max_pixels);
    double ratio = (double)(h > w ? h : w) / (double)(h < w ? h : w);
    if (ratio > 200)
        return vlm__errf(err, VLM_EINVAL,
                         "smart_resize: absolute aspect ratio must be smaller than 200, got %g "
                         "(height %" PRId64 ", width %" PRId64 ")",
                         ratio, h, w);
    const double f = (double)factor;
    /* round() is half to even in Python (streamingvlm-spec §1.3): rint, not lround */
    int64_t hb = (int64_t)rint((double)h / f) * factor;
    int64_t wb = (int64_t)rint((double)w / f) * factor;
    if (hb < factor) hb = factor;
    if (wb < factor) wb = factor;
    if (hb * wb > max_pixels) {
        double beta = sqrt((double)(h * w) / (double)max_pixels);
        hb = (int64_t)floor((double)h / beta / f) * factor;
        wb = (int64_t)floor((double)w / beta / f) * factor;
        /* qwen-vl-utils >= 0.0.11 and transformers clamp here (0.0.10 could return 0) */
        if (hb < factor) hb = factor;
        if (wb < factor) wb = factor;
    } else if (hb * wb < min_pixels) {
        double beta = sqrt((double)min_pixels / (double)(h * w));
        hb = (int64_t)ceil((double)h * beta / f) * factor;
        wb = (int64_t)ceil((double)w * beta / f) * factor;
    }
    *out_h = hb;
    *out_w = wb;
    return 0;
}

/* ---- antialiased bicubic resize ---------------------------------------------------------- */

/* One axis of the separable resize: for each output index a window of source indices and
 * its normalised weights (ATen `_compute_indices_weights_aa`). */
typedef struct aa_axis {
    int64_t taps; /* weight row length: max window, 2*ceil(support)+1 clipped to n_in */
    int32_t *lo;  /* (n_out) first source index of each window */
    int32_t *len; /* (n_out) window length, <= taps */
    float *w;     /* (n_out, taps) weights, each row summing to ~1 */
} aa_axis;

/* Where each buffer lives inside the caller's scratch. */
typedef struct resize_plan {
    int64_t taps_w, taps_h;
    size_t off_hlo, off_hlen, off_hw; /* width-pass axis */
    size_t off_vlo, off_vlen, off_vw; /* height-pass axis */
    size_t off_ring;                  /* (taps_h, dst_w*3) f32: width-resized source rows */
    size_t off_acc;                   /* (dst_w*3) f32: one output row being accumulated */
    size_t total;                     /* bytes from the aligned base */
} resize_plan;

#define SCRATCH_ALIGN 64

static size_t align_up(size_t n) {
    return (n + SCRATCH_ALIGN - 1) & ~(size_t)(SCRATCH_ALIGN - 1);
}

/* ATen's scale and support, in float as ATen computes them for a float tensor:
 * scale = in/out, support = 2*scale when downscaling (the kernel widens to cover every
 * source pixel), else 2 (cubic's own radius). */
static float aa_scale(int64_t in, int64_t out) {
    return (float)in / (float)out;
}
static float aa_support(float scale) {
    return scale >= 1.0f ? (float)(2.0 * (double)scale) : 2.0f;
}

static int64_t aa_taps(int64_t in, int64_t out) {
    int64_t taps = (int64_t)ceilf(aa_support(aa_scale(in, out))) * 2 + 1;
    return taps < in ? taps : in;
}

static void plan_resize(int64_t sh, int64_t sw, int64_t dh, int64_t dw, resize_plan *p) {
    size_t o = 0;
    p->taps_w = aa_taps(sw, dw);
    p->taps_h = aa_taps(sh, dh);
    p->off_hlo = o, o += align_up((size_t)dw * sizeof(int32_t));
    p->off_hlen = o, o += align_up((size_t)dw * sizeof(int32_t));
    p->off_hw = o, o += align_up((size_t)dw * (size_t)p->taps_w * sizeof(float));
    p->off_vlo = o, o += align_up((size_t)dh * sizeof(int32_t));
    p->off_vlen = o, o += align_up((size_t)dh * sizeof(int32_t));
    p->off_vw = o, o += align_up((size_t)dh * (size_t)p->taps_h * sizeof(float));
    p->off_ring = o, o += align_up((size_t)p->taps_h * (size_t)dw * 3 * sizeof(float));
    p->off_acc = o, o += align_up((size_t)dw * 3 * sizeof(float));
    p->total = o;
}

static int sizes_ok(int64_t sh, int64_t sw, int64_t dh, int64_t dw) {
    return sh >= 1 && sw >= 1 && dh >= 1 && dw >= 1 && sh <= VLM_PREPROC_MAX_SIDE &&
           sw <= VLM_PREPROC_MAX_SIDE && dh <= VLM_PREPROC_MAX_SIDE && dw <= VLM_PREPROC_MAX_SIDE;
}

size_t vlm_resize_scratch_size(int64_t src_h, int64_t src_w, int64_t dst_h, int64_t dst_w) {
    if (!sizes_ok(src_h, src_w, dst_h, dst_w)) return 0;
    resize_plan p;
    plan_resize(src_h, src_w, dst_h, dst_w, &p);
    return p.total + SCRATCH_ALIGN - 1; /* room to align an arbitrary base */
}

/* Keys cubic, a = -0.5, evaluated as the reference build does (Debian's torch 1.13.1,
 * AVX2 kernels, which made tests/fixtures/resize/ and matches this bit for bit): the
 * |x| < 1 piece in double (that ATen's filter is `#define a -0.5`, a double literal), the
 * 1 <= |x| < 2 piece in float Horner form with both multiply-adds fused (GCC contracted
 * them in that build), times a.  Newer ATen evaluates everything in float; its weights
 * differ in the last bit, which moves a few uint8 outputs in 10^5 by 1. */
static float cubic_aa(float x) {
    if (x < 0.0f) x = -x;
    if (x < 1.0f) return (float)(((-0.5 + 2.0) * x - (-0.5 + 3.0)) * x * x + 1.0);
    if (x < 2.0f) return (float)(fmaf(fmaf(x - 5.0f, x, 8.0f), x, -4.0f) * -0.5);
    return 0.0f;
}

/* Windows and weights of one axis (ATen `_compute_weights_aa`, align_corners=False).
 * The mixed float/double arithmetic is ATen's: its scalars are float, its literals
 * (0.5, 1.0) double, so each expression is evaluated in double and stored to float. */
static void aa_axis_init(aa_axis *ax, int64_t in, int64_t out) {
    const float scale = aa_scale(in, out);
    const float support = aa_support(scale);
    const float invscale = scale >= 1.0f ? (float)(1.0 / (double)scale) : 1.0f;
    for (int64_t i = 0; i < out; i++) {
        const float center = (float)((double)scale * ((double)i + 0.5));
        int64_t lo = (int64_t)((double)(center - support) + 0.5); /* truncates, as ATen */
        int64_t hi = (int64_t)((double)(center + support) + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int64_t n = hi - lo;
        if (n > ax->taps) n = ax->taps; /* cannot happen: 2*support+1 bounds the window */
        float *wp = ax->w + i * ax->taps;
        float total = 0.0f;
        for (int64_t j = 0; j < n; j++) {
            float d = (float)(lo + j) - center;
            float wj = cubic_aa((float)(((double)d + 0.5) * (double)invscale));
            wp[j] = wj;
            total += wj;
        }
        for (int64_t j = 0; j < n; j++)
            if (total != 0.0f) wp[j] /= total;
        for (int64_t j = n; j < ax->taps; j++)
            wp[j] = 0.0f;
        ax->lo[i] = (int32_t)lo;
        ax->len[i] = (int32_t)n;
    }
}

/* Index of the first tap the reference fuses: taps 1..k-1 are summed as rounded products,
 * taps k.. with fmaf.  ATen's tap loop is `out += src[j] * w[j]` in float, in tap order;
 * the reference build matches this split bit for bit (GCC vectorised the loop 4 taps at
 * a time, products rounded then added in order, and contracted the scalar remainder into
 * FMAs).  A plain unfused sum differs in ~1e-5 of the uint8 outputs, by 1. */
static inline int64_t fused_from(int64_t n) {
    return 1 + ((n - 1) / 4) * 4;
}

/* Width pass of one source row: out (dw*3) = uint8 row resized to dw columns, in float. */
static void hpass_row(float *out, const uint8_t *src, const aa_axis *ax, int64_t dw) {
    for (int64_t x = 0; x < dw; x++) {
        const int64_t n = ax->len[x], k = fused_from(n);
        const float *wp = ax->w + x * ax->taps;
        const uint8_t *s = src + (int64_t)ax->lo[x] * 3;
        for (int c = 0; c < 3; c++) {
            float acc = (float)s[c] * wp[0];
            for (int64_t j = 1; j < k; j++) {
                float p = (float)s[3 * j + c] * wp[j];
                acc = acc + p;
            }
            for (int64_t j = k; j < n; j++)
                acc = fmaf((float)s[3 * j + c], wp[j], acc);
            out[x * 3 + c] = acc;
        }
    }
}

/* float -> uint8 as torchvision: clamp to [0, 255], round half to even (v + 2^23 has no
 * fraction bits left, so the default rounding mode rounds there; exact for 0..2^23). */
static inline uint8_t to_u8(float v) {
    v = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
    float t = v + 8388608.0f;
    return (uint8_t)(t - 8388608.0f);
}

int vlm_resize_bicubic_aa(const uint8_t *src, int64_t src_h, int64_t src_w, size_t src_stride,
                          uint8_t *dst, int64_t dst_h, int64_t dst_w, size_t dst_stride,
                          void *scratch, size_t scratch_size, char *err) {
    if (!src || !dst) return vlm__errf(err, VLM_EINVAL, "resize: NULL image");
    if (!sizes_ok(src_h, src_w, dst_h, dst_w))
        return vlm__errf(err, VLM_EINVAL,
                         "resize: sizes %" PRId64 "x%" PRId64 " -> %" PRId64 "x%" PRId64
                         " must be 1..%d",
                         src_h, src_w, dst_h, dst_w, VLM_PREPROC_MAX_SIDE);
    if (src_stride < (size_t)src_w * 3 || dst_stride < (size_t)dst_w * 3)
        return vlm__errf(err, VLM_EINVAL,
                         "resize: row stride %zu (src) / %zu (dst) is below 3*width (%" PRId64
                         " / %" PRId64 ")",
                         src_stride, dst_stride, src_w * 3, dst_w * 3);

    if (src_h == dst_h && src_w == dst_w) { /* ATen copies too */
        for (int64_t y = 0; y < dst_h; y++)
            memcpy(dst + (size_t)y * dst_stride, src + (size_t)y * src_stride, (size_t)src_w * 3);
        return 0;
    }

    resize_plan p;
    plan_resize(src_h, src_w, dst_h, dst_w, &p);
    size_t need = p.total + SCRATCH_ALIGN - 1;
    void *owned = NULL;
    if (!scratch) {
        scratch = owned = malloc(need);
        if (!owned) return vlm__errf(err, VLM_ENOMEM, "resize: cannot allocate %zu bytes", need);
    } else if (scratch_size < need) {
        return vlm__errf(err, VLM_EINVAL, "resize: scratch is %zu bytes, need %zu", scratch_size,
                         need);
    }
    char *base =
        (char *)(((uintptr_t)scratch + SCRATCH_ALIGN - 1) & ~(uintptr_t)(SCRATCH_ALIGN - 1));
    aa_axis hx = {p.taps_w, (int32_t *)(base + p.off_hlo), (int32_t *)(base + p.off_hlen),
                  (float *)(base + p.off_hw)};
    aa_axis vx = {p.taps_h, (int32_t *)(base + p.off_vlo), (int32_t *)(base + p.off_vlen),
                  (float *)(base + p.off_vw)};
    float *ring = (float *)(base + p.off_ring); /* source row r lives in slot r % taps_h */
    float *acc = (float *)(base + p.off_acc);
    aa_axis_init(&hx, src_w, dst_w);
    aa_axis_init(&vx, src_h, dst_h);

    /* Height pass over width-resized rows, each computed once when first needed.  The
     * windows only move forward and span <= taps_h rows, so a ring of taps_h rows holds
     * every row a window needs. */
    const size_t row_n = (size_t)dst_w * 3;
    int64_t next = 0; /* first source row not yet width-resized */
    for (int64_t y = 0; y < dst_h; y++) {
        const int64_t lo = vx.lo[y], n = vx.len[y], k = fused_from(n);
        if (next < lo) next = lo;
        for (; next < lo + n; next++)
            hpass_row(ring + (size_t)(next % p.taps_h) * row_n, src + (size_t)next * src_stride,
                      &hx, dst_w);
        const float *wp = vx.w + y * vx.taps;
        const float *r0 = ring + (size_t)(lo % p.taps_h) * row_n;
        for (size_t i = 0; i < row_n; i++)
            acc[i] = r0[i] * wp[0];
        for (int64_t j = 1; j < n; j++) { /* same tap order per pixel as ATen */
            const float *r = ring + (size_t)((lo + j) % p.taps_h) * row_n;
            const float wj = wp[j];
            if (j < k) {
                for (size_t i = 0; i < row_n; i++) {
                    float q = r[i] * wj;
                    acc[i] = acc[i] + q;
                }
            } else {
                for (size_t i = 0; i < row_n; i++)
                    acc[i] = fmaf(r[i], wj, acc[i]);
            }
        }
        uint8_t *d = dst + (size_t)y * dst_stride;
        for (size_t i = 0; i < row_n; i++)
            d[i] = to_u8(acc[i]);
    }
    free(owned);
    return 0;
}

/* ---- normalise + patchify ------------------------------------------------------------------ */

int vlm_patchify_shape(const vlm_preproc_config *cfg, int64_t n_frames, int64_t h, int64_t w,
                       int64_t grid_thw[3], int64_t *rows, int64_t *cols, char *err) {
    const int64_t ps = cfg->patch_size, tps = cfg->temporal_patch_size, ms = cfg->merge_size;
    if (ps < 1 || tps < 1 || ms < 1 || ps > 1024 || tps > 64 || ms > 64)
        return vlm__errf(err, VLM_EINVAL,
                         "patchify: bad config: patch %" PRId64 ", temporal %" PRId64
                         ", merge %" PRId64,
                         ps, tps, ms);
    const int64_t unit = ps * ms;
    if (n_frames < 1 || n_frames > (int64_t)1 << 20)
        return vlm__errf(err, VLM_EINVAL, "patchify: %" PRId64 " frames, want 1..2^20", n_frames);
    if (h < unit || w < unit || h % unit || w % unit || h > VLM_PREPROC_MAX_SIDE ||
        w > VLM_PREPROC_MAX_SIDE)
        return vlm__errf(err, VLM_EINVAL,
                         "patchify: frame %" PRId64 "x%" PRId64
                         " must be a positive multiple of %" PRId64 " (patch_size*merge_size)",
                         h, w, unit);
    const int64_t gt = (n_frames + tps - 1) / tps, gh = h / ps, gw = w / ps;
    if (grid_thw) grid_thw[0] = gt, grid_thw[1] = gh, grid_thw[2] = gw;
    if (rows) *rows = gt * gh * gw;
    if (cols) *cols = 3 * tps * ps * ps;
    return 0;
}

int vlm_normalize_patchify(const vlm_preproc_config *cfg, const uint8_t *const *frames,
                           int64_t n_frames, int64_t h, int64_t w, size_t stride, float *out,
                           size_t out_cap, int64_t grid_thw[3], char *err) {
    int64_t grid[3], rows, cols;
    int rc = vlm_patchify_shape(cfg, n_frames, h, w, grid, &rows, &cols, err);
    if (rc) return rc;
    if (!frames || !out) return vlm__errf(err, VLM_EINVAL, "patchify: NULL frames or output");
    for (int64_t i = 0; i < n_frames; i++)
        if (!frames[i]) return vlm__errf(err, VLM_EINVAL, "patchify: frame %" PRId64 " is NULL", i);
    if (stride < (size_t)w * 3)
        return vlm__errf(err, VLM_EINVAL, "patchify: row stride %zu is below 3*width (%" PRId64 ")",
                         stride, w * 3);
    if (out_cap < (size_t)rows * (size_t)cols)
        return vlm__errf(err, VLM_EINVAL, "patchify: output holds %zu floats, need %" PRId64 "",
                         out_cap, rows * cols);

    /* Every uint8 value maps to one float per channel, so a table gives the exact result:
     * rescale as transformers' rescale() (float64 multiply, cast to float32), normalise
     * as its normalize() (float32 mean/std, float32 subtract and divide). */
    float lut[3][256];
    for (int c = 0; c < 3; c++) {
        const float mean = (float)cfg->image_mean[c], sd = (float)cfg->image_std[c];
        for (int v = 0; v < 256; v++) {
            float x = (float)((double)v * cfg->rescale_factor);
            lut[c][v] = (x - mean) / sd;
        }
    }

    const int64_t ps = cfg->patch_size, tps = cfg->temporal_patch_size, ms = cfg->merge_size;
    const int64_t gt = grid[0], bh_n = grid[1] / ms, bw_n = grid[2] / ms;
    float *o = out;
    for (int64_t t = 0; t < gt; t++)
        for (int64_t bh = 0; bh < bh_n; bh++)
            for (int64_t bw = 0; bw < bw_n; bw++)
                for (int64_t mh = 0; mh < ms; mh++)
                    for (int64_t mw = 0; mw < ms; mw++) {
                        const int64_t y0 = (bh * ms + mh) * ps, x0 = (bw * ms + mw) * ps;
                        for (int c = 0; c < 3; c++)
                            for (int64_t tp = 0; tp < tps; tp++) {
                                int64_t fi = t * tps + tp;
                                if (fi >= n_frames) fi = n_frames - 1; /* pad: repeat last */
                                const uint8_t *f = frames[fi] + (size_t)x0 * 3 + (size_t)c;
                                for (int64_t py = 0; py < ps; py++) {
                                    const uint8_t *s = f + (size_t)(y0 + py) * stride;
                                    for (int64_t px = 0; px < ps; px++)
                                        *o++ = lut[c][s[px * 3]];
                                }
                            }
                    }
    if (grid_thw) memcpy(grid_thw, grid, sizeof grid);
    return 0;
}
