/* vlm_util.h — small helpers shared by the engine's files (not part of the public API):
 * error-message formatting, logging, bf16/f16 conversion, dtype sizes.
 */
#ifndef VLM_UTIL_H
#define VLM_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "vlm_error.h"

/* Element types of tensors, in files and on backends. */
typedef enum vlm_dtype {
    VLM_F32,
    VLM_BF16,
    VLM_F16,
    VLM_I32,
    VLM_I64,
    VLM_U8,
} vlm_dtype;

size_t vlm__dtype_size(vlm_dtype t);
const char *vlm__dtype_name(vlm_dtype t);

/* Format a message into err (may be NULL) and return code; messages name the object. */
int vlm__errf(char *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void vlm__log(vlm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline float vlm__bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even, as torch does when casting f32 -> bf16. */
static inline uint16_t vlm__f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float vlm__f16_to_f32(uint16_t h);

/* Convert n elements of type t at src into f32 dst. */
void vlm__to_f32(float *dst, const void *src, vlm_dtype t, int64_t n);

#endif
