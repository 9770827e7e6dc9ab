/* preprocess.h — frame preprocessing for Qwen2.5-VL: the processor config, smart_resize,
 * the antialiased bicubic resize, and normalise + patchify into `pixel_values`.
 *
 * The pipeline for one chunk of frames (streamingvlm-spec §1.3–1.4):
 *
 *     vlm_smart_resize(h, w, 28, min, max)          -> (rh, rw), multiples of 28
 *     vlm_resize_bicubic_aa(frame, h, w -> rh, rw)   per frame, uint8 RGB -> uint8 RGB
 *     vlm_normalize_patchify(frames, rh, rw)        -> float32 [gt*gh*gw, 3*2*14*14]
 *
 * Each step reproduces its Python reference: smart_resize as in qwen-vl-utils (Python
 * float rounding, half-to-even), the resize as torchvision's
 * `resize(uint8, [rh, rw], BICUBIC, antialias=True)` (float32 path, clamp, round), the
 * patches as transformers' `Qwen2VLImageProcessor` (rescale in float64 -> float32, then
 * (v - mean) / std in float32).
 *
 * Not for: decoding, colour conversion, frame sampling, or the bf16 cast the model does.
 * Per-frame calls allocate nothing, except vlm_resize_bicubic_aa when it is given no
 * scratch; the config loader allocates only while parsing.
 * All functions are reentrant (no globals); they run on whichever thread calls them.
 */
#ifndef VLM_PREPROCESS_H
#define VLM_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "vlm_error.h"

/* Largest image side accepted by the resize and patchify (bigger than any video frame). */
#define VLM_PREPROC_MAX_SIDE 65536

/* The fields of a Hugging Face `preprocessor_config.json` that preprocessing uses. */
typedef struct vlm_preproc_config {
    int64_t min_pixels;          /* smart_resize lower bound on h*w (size.shortest_edge) */
    int64_t max_pixels;          /* smart_resize upper bound on h*w (size.longest_edge) */
    int64_t patch_size;          /* 14: side of one ViT patch */
    int64_t temporal_patch_size; /* 2: frames per patch */
    int64_t merge_size;          /* 2: patches merged per side into one LLM token */
    double image_mean[3];        /* per channel (RGB), applied after rescaling */
    double image_std[3];
    double rescale_factor; /* 1/255 */
} vlm_preproc_config;

/* Qwen2.5-VL's published image processor values: min_pixels 3136 (56*56), max_pixels
 * 12845056 (28*28*16384), patch 14, temporal patch 2, merge 2, OpenAI CLIP mean/std,
 * rescale 1/255.  For model directories without a preprocessor_config.json. */
vlm_preproc_config vlm_preproc_config_default(void);

/* Read a preprocessor_config.json into out (starting from the defaults, so keys it does
 * not name keep Qwen2.5-VL's values).  Sizes come from top-level "min_pixels" /
 * "max_pixels", or from the newer "size": {"shortest_edge", "longest_edge"}; the
 * top-level keys win when both are present, as in transformers.
 * Returns 0; VLM_ENOTFOUND if the file does not exist (the caller may fall back to the
 * defaults); VLM_EIO, VLM_EFORMAT (not JSON), VLM_EINVAL (a bad value: err names the
 * key) or VLM_EUNSUPPORTED ("do_rescale"/"do_normalize" false).  out is untouched on
 * error. */
int vlm_preproc_config_load(const char *path, vlm_preproc_config *out, char *err);

/* qwen-vl-utils' smart_resize: the (out_h, out_w) nearest to (h, w) that are multiples of
 * factor with out_h*out_w in [min_pixels, max_pixels] (the ceil branch may overshoot
 * max_pixels, as the reference does).  Rounds half to even like Python's round().
 * Errors: VLM_EINVAL for sizes or factor <= 0, min_pixels < 0, max_pixels <= 0, or
 * aspect ratio > 200; VLM_ERANGE for sides > 2^24 or pixel bounds > 2^40. */
int vlm_smart_resize(int64_t h, int64_t w, int64_t factor, int64_t min_pixels, int64_t max_pixels,
                     int64_t *out_h, int64_t *out_w, char *err);

/* Bytes of scratch vlm_resize_bicubic_aa needs for this pair of sizes (0 if a size is out
 * of range).  A few hundred KiB at most for video sizes: weights plus a ring of
 * horizontally resized rows, never a whole intermediate image. */
size_t vlm_resize_scratch_size(int64_t src_h, int64_t src_w, int64_t dst_h, int64_t dst_w);

/* Resize a uint8 RGB image (HWC, rows src_stride bytes apart) to (dst_h, dst_w), rows
 * dst_stride bytes apart, as torchvision `resize(img, [dst_h, dst_w], BICUBIC,
 * antialias=True)` does on a uint8 tensor: separable Keys cubic (a = -0.5) whose support
 * widens with the downscale factor, width pass then height pass in float32, clamp to
 * [0, 255], round half to even.  Upscaling works too.  Identical sizes copy.
 * scratch must hold vlm_resize_scratch_size() bytes, any alignment; NULL makes this call
 * malloc and free its own (the one allocation in this file).  src and dst must not
 * overlap.  Returns 0, VLM_EINVAL (bad size, stride or scratch) or VLM_ENOMEM. */
int vlm_resize_bicubic_aa(const uint8_t *src, int64_t src_h, int64_t src_w, size_t src_stride,
                          uint8_t *dst, int64_t dst_h, int64_t dst_w, size_t dst_stride,
                          void *scratch, size_t scratch_size, char *err);

/* The shape vlm_normalize_patchify produces for n_frames frames of (h, w):
 * grid_thw = (ceil(n_frames / tps), h / ps, w / ps) in patches, *rows = t*gh*gw,
 * *cols = 3*tps*ps*ps (1176 for Qwen2.5-VL).  Any pointer may be NULL.
 * Returns 0 or VLM_EINVAL (n_frames < 1, h or w not a positive multiple of
 * patch_size*merge_size, or too large). */
int vlm_patchify_shape(const vlm_preproc_config *cfg, int64_t n_frames, int64_t h, int64_t w,
                       int64_t grid_thw[3], int64_t *rows, int64_t *cols, char *err);

/* Normalise and patchify n_frames uint8 RGB frames (HWC, each frames[i] with rows
 * stride bytes apart, all (h, w)) into out, float32 [rows, cols] as above, in
 * transformers' order: rows (t, h-block, w-block, h-in-merge, w-in-merge), columns
 * (channel, frame-in-temporal-patch, y, x).  The frame count is padded to a multiple of
 * temporal_patch_size by repeating the last frame (an image is one frame).  Each value is
 * float32(float64(p) * rescale_factor), then (v - mean_c) / std_c in float32 — bit-exact
 * with Qwen2VLImageProcessor.  out_cap is out's size in floats.  grid_thw (may be NULL)
 * receives (t, h, w) in patches.  Returns 0 or VLM_EINVAL (bad shape, stride < 3*w,
 * NULL frame, out too small). */
int vlm_normalize_patchify(const vlm_preproc_config *cfg, const uint8_t *const *frames,
                           int64_t n_frames, int64_t h, int64_t w, size_t stride, float *out,
                           size_t out_cap, int64_t grid_thw[3], char *err);

#endif
