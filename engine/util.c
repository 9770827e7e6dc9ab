/* util.c — error strings, the log callback, dtype helpers. */
#include <stdio.h>

#include "vlm_util.h"

static vlm_log_cb log_cb;
static void *log_user;

const char *vlm_strerror(int err) {
    switch (err) {
    case VLM_OK: return "ok";
#define VLM_ERR_CASE_(name, code, msg)                                                     \
    case code: return msg;
        VLM_ERRNO_MAP(VLM_ERR_CASE_)
#undef VLM_ERR_CASE_
    }
    return "unknown error";
}

void vlm_set_log(vlm_log_cb cb, void *user) {
    log_cb = cb;
    log_user = user;
}

void vlm__log(vlm_log_level level, const char *fmt, ...) {
    if (!log_cb) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_cb(level, buf, log_user);
}

int vlm__errf(char *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, VLM_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return code;
}

size_t vlm__dtype_size(vlm_dtype t) {
    switch (t) {
    case VLM_F32: case VLM_I32: return 4;
    case VLM_BF16: case VLM_F16: return 2;
    case VLM_I64: return 8;
    case VLM_U8: return 1;
    }
    return 0;
}

const char *vlm__dtype_name(vlm_dtype t) {
    switch (t) {
    case VLM_F32: return "F32";
    case VLM_BF16: return "BF16";
    case VLM_F16: return "F16";
    case VLM_I32: return "I32";
    case VLM_I64: return "I64";
    case VLM_U8: return "U8";
    }
    return "?";
}

/* IEEE half -> float, subnormals and inf/nan included. */
float vlm__f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            u = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void vlm__to_f32(float *dst, const void *src, vlm_dtype t, int64_t n) {
    switch (t) {
    case VLM_F32: memcpy(dst, src, (size_t)n * 4); break;
    case VLM_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = vlm__bf16_to_f32(s[i]);
        break;
    }
    case VLM_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = vlm__f16_to_f32(s[i]);
        break;
    }
    default: break;
    }
}
