/* vlm_error.h — the engine's error codes and its log callback.
 *
 * Every engine function that can fail returns 0 or one of the negative codes below
 * (libuv's UV_ERRNO_MAP style); setup calls also fill a caller's `char err[VLM_ERR_LEN]`
 * with a lowercase message that names the file, tensor or key at fault.
 * The engine never prints: it reports through the log callback set here.
 */
#ifndef VLM_ERROR_H
#define VLM_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#define VLM_ERR_LEN 256

#define VLM_ERRNO_MAP(X)                                                                   \
    X(EINVAL, -1, "invalid argument")                                                      \
    X(EIO, -2, "i/o error")                                                                \
    X(ENOMEM, -3, "out of memory")                                                         \
    X(EFORMAT, -4, "malformed file")                                                       \
    X(EUNSUPPORTED, -5, "unsupported")                                                     \
    X(ENOTFOUND, -6, "not found")                                                          \
    X(EBACKEND, -7, "backend failure")                                                     \
    X(ERANGE, -8, "out of range")                                                          \
    X(EFULL, -9, "capacity exceeded")                                                      \
    X(EAGAIN, -10, "not run; run it again")

enum {
    VLM_OK = 0,
#define VLM_ERR_ENUM_(name, code, msg) VLM_##name = code,
    VLM_ERRNO_MAP(VLM_ERR_ENUM_)
#undef VLM_ERR_ENUM_
};

/* The text of an error code ("unknown error" for codes outside the table). */
const char *vlm_strerror(int err);

typedef enum vlm_log_level { VLM_LOG_ERROR, VLM_LOG_WARN, VLM_LOG_INFO, VLM_LOG_DEBUG } vlm_log_level;
typedef void (*vlm_log_cb)(vlm_log_level level, const char *msg, void *user);

/* Route the engine's log lines to cb (NULL: drop them). Not thread-safe; call at start. */
void vlm_set_log(vlm_log_cb cb, void *user);

#endif
