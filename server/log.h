/* log.h — the daemon's log: one line per call on stderr, filtered by level.
 *
 *     LOGW("ingest[%s] reconnect in %.1fs: %s", id, delay, why);
 *
 * writes, on a terminal or into a file,
 *     2026-12-02 05:48:00.123 warn  ingest[cam1] reconnect in 2.0s: connection refused
 * and under systemd (stderr is the journal stream named by $JOURNAL_STREAM) the sd-daemon
 * priority prefix instead of the timestamp, since the journal stamps lines itself:
 *     <4>ingest[cam1] reconnect in 2.0s: connection refused
 * (<3> error, <4> warn, <6> info, <7> debug).  Each line names its subject by the caller's
 * convention (`module[object] what: why`).  Never log per frame: count and summarise.
 *
 * A line is formatted in full, control characters (newlines included) replaced by spaces
 * so one call is one line, cut at LOG_LINE_MAX bytes ("..." marks the cut), and written
 * with a single write(2), so lines from different threads never interleave.  errno is
 * preserved across a call.
 *
 * Thread: any.  The level is an atomic; log_init and log_set_level may be called at any
 * time.  Not for: the engine, which never prints (it reports through vlm_set_log; the
 * daemon forwards those lines here with log_write).
 */
#ifndef SERVER_LOG_H
#define SERVER_LOG_H

#include <stdarg.h>
#include <stdatomic.h>

/* Same order and values as the engine's vlm_log_level, so levels pass through as is. */
typedef enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
} log_level;

#define LOG_LINE_MAX 2048 /* bytes per line, newline included (below PIPE_BUF: atomic) */

#if defined(__GNUC__)
#define LOG_PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define LOG_PRINTF_LIKE(f, a)
#endif

/* The most verbose level written (LOG_LEVEL_INFO until log_set_level).  Read it through
 * the LOG* macros or log_enabled. */
extern atomic_int log_max_level;

/* Whether lines at `level` are written.  Runs on: any. */
static inline int log_enabled(int level) {
    return level <= atomic_load_explicit(&log_max_level, memory_order_relaxed);
}

/* Level-checked: the arguments are not evaluated when the level is off. */
#define LOG_AT_(level, ...)                                                                        \
    do {                                                                                           \
        if (log_enabled(level)) log_write((level), __VA_ARGS__);                                   \
    } while (0)
#define LOGE(...) LOG_AT_(LOG_LEVEL_ERROR, __VA_ARGS__)
#define LOGW(...) LOG_AT_(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOGI(...) LOG_AT_(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOGD(...) LOG_AT_(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* Look at the environment again: journal mode is on when $JOURNAL_STREAM ("DEV:INODE")
 * names the file that stderr is now (the systemd.exec convention; a child whose stderr was
 * redirected elsewhere keeps plain lines).  Done lazily on the first line if never called.
 * Runs on: any (call it at start, and after redirecting stderr). */
void log_init(void);

/* Write one line at `level` (a log_level) whatever the current level; the macros check it
 * first.  Runs on: any. */
void log_write(int level, const char *fmt, ...) LOG_PRINTF_LIKE(2, 3);
void log_vwrite(int level, const char *fmt, va_list ap) LOG_PRINTF_LIKE(2, 0);

/* Set the most verbose level written; values outside the enum are clamped.  Runs on: any. */
void log_set_level(int level);
/* The current level.  Runs on: any. */
int log_get_level(void);

/* "error", "warn", "info", "debug" -> the level; -1 for anything else (case-sensitive, as
 * in the config).  Runs on: any. */
int log_level_from_name(const char *name);
/* The level's name, or NULL outside the enum.  Runs on: any. */
const char *log_level_name(int level);

#endif
