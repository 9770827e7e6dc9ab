/* log.c — one-line, level-filtered log on stderr (see log.h).
 *
 * Each call formats the whole line into a stack buffer and hands it to one write(2) on
 * fd 2, so concurrent lines never interleave (LOG_LINE_MAX is below PIPE_BUF; files and
 * terminals take one write whole too).  No lock, no allocation.
 *
 * Invariants: global state is two atomics (the level, the journal mode); errno is the
 * same after a call as before.  Thread: any.
 */
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

atomic_int log_max_level = LOG_LEVEL_INFO;

/* -1: not looked yet; 0: plain lines with a timestamp; 1: sd-daemon "<N>" prefixes */
static atomic_int journal_mode = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog priorities (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG) as sd-daemon.h spells them */
static const char *const level_prefix[] = {"<3>", "<4>", "<6>", "<7>"};
#define N_LEVELS ((int)(sizeof level_names / sizeof level_names[0]))

void log_set_level(int level) {
    if (level < LOG_LEVEL_ERROR) level = LOG_LEVEL_ERROR;
    if (level > LOG_LEVEL_DEBUG) level = LOG_LEVEL_DEBUG;
    atomic_store(&log_max_level, level);
}

int log_get_level(void) {
    return atomic_load(&log_max_level);
}

int log_level_from_name(const char *name) {
    for (int i = 0; name && i < N_LEVELS; i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    return -1;
}

const char *log_level_name(int level) {
    return level >= 0 && level < N_LEVELS ? level_names[level] : NULL;
}

/* Whether $JOURNAL_STREAM ("DEV:INODE", decimal) is the file on stderr. */
static int stderr_is_journal(void) {
    const char *env = getenv("JOURNAL_STREAM");
    if (!env || !*env) return 0;
    char *end;
    errno = 0;
    uintmax_t dev = strtoumax(env, &end, 10);
    if (errno || end == env || *end != ':') return 0;
    const char *ino_s = end + 1;
    uintmax_t ino = strtoumax(ino_s, &end, 10);
    if (errno || end == ino_s || *end) return 0;
    struct stat st;
    if (fstat(STDERR_FILENO, &st) != 0) return 0;
    return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

void log_init(void) {
    int saved = errno;
    atomic_store(&journal_mode, stderr_is_journal());
    errno = saved;
}

/* Write all of buf[0..n) to stderr, retrying after signals and short writes. */
static void write_all(const char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* nowhere to report it */
        buf += w;
        n -= (size_t)w;
    }
}

void log_vwrite(int level, const char *fmt, va_list ap) {
    int saved = errno;
    if (level < 0) level = 0;
    if (level >= N_LEVELS) level = N_LEVELS - 1;
    if (atomic_load(&journal_mode) < 0) log_init();

    char line[LOG_LINE_MAX];
    const size_t cap = sizeof line - 1; /* room for the newline */
    size_t n;
    if (atomic_load(&journal_mode) == 1) {
        n = (size_t)snprintf(line, cap, "%s", level_prefix[level]);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        n = strftime(line, cap, "%Y-%m-%d %H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, cap - n, ".%03ld %-5s ", ts.tv_nsec / 1000000L,
                              level_names[level]);
    }
    size_t head = n;
    errno = saved; /* so %m in fmt means the caller's errno */
    int w = vsnprintf(line + n, cap - n, fmt, ap);
    if (w < 0) w = 0;
    if ((size_t)w >= cap - n) { /* cut on a UTF-8 character boundary, and mark it */
        size_t p = cap - 3;
        while (p > head && ((unsigned char)line[p] & 0xC0) == 0x80)
            p--;
        memcpy(line + p, "...", 3);
        n = p + 3;
    } else {
        n += (size_t)w;
    }
    for (size_t i = head; i < n; i++) /* one call, one line */
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) line[i] = ' ';
    line[n++] = '\n';
    write_all(line, n);
    errno = saved;
}

void log_write(int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}
