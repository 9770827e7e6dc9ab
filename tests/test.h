/* test.h — the test framework: a table of tests, each run in a forked child with a timeout.
 *
 * A test file defines static functions `static void test_xxx(void)`, lists them in a
 * `static const test_case tests[]` table ending with {0}, and calls
 * `return test_main(argc, argv, tests);` from main.  Each test runs in its own child
 * process (so one crash fails one test) under alarm(TEST_TIMEOUT, default 300 s).
 * Output, one line per test, read by tests/run.sh:
 *     PASS name (12 ms) | FAIL name: why | SKIP name: why
 * Asserts print both sides and file:line.  `./test-x NAME` runs one test in-process
 * (handy under gdb).  Not for: benchmarks (bench/), which never pass or fail.
 */
#ifndef COMMENTARY_TEST_H
#define COMMENTARY_TEST_H

#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

#define TEST_SKIP_CODE 77

static inline void test_fail_(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(NULL);
    _exit(1);
}

/* Skip the running test with a reason (exit code 77). */
#define SKIP(...)                                                                          \
    do {                                                                                   \
        fprintf(stderr, "skip: ");                                                         \
        fprintf(stderr, __VA_ARGS__);                                                      \
        fputc('\n', stderr);                                                               \
        fflush(NULL);                                                                      \
        _exit(TEST_SKIP_CODE);                                                             \
    } while (0)

#define ASSERT(c)                                                                          \
    do {                                                                                   \
        if (!(c)) test_fail_(__FILE__, __LINE__, "assertion failed: %s", #c);              \
    } while (0)
#define ASSERT_MSG(c, ...)                                                                 \
    do {                                                                                   \
        if (!(c)) test_fail_(__FILE__, __LINE__, __VA_ARGS__);                             \
    } while (0)
#define ASSERT_EQ_INT(a, b)                                                                \
    do {                                                                                   \
        long long a_ = (long long)(a), b_ = (long long)(b);                                \
        if (a_ != b_)                                                                      \
            test_fail_(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);      \
    } while (0)
#define ASSERT_EQ_STR(a, b)                                                                \
    do {                                                                                   \
        const char *a_ = (a), *b_ = (b);                                                   \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                             \
            test_fail_(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,           \
                       a_ ? a_ : "(null)", b_ ? b_ : "(null)");                            \
    } while (0)
#define ASSERT_NEAR(a, b, tol)                                                             \
    do {                                                                                   \
        double a_ = (a), b_ = (b);                                                         \
        if (!(fabs(a_ - b_) <= (tol)))                                                     \
            test_fail_(__FILE__, __LINE__, "%s ~ %s: %.9g vs %.9g (tol %g)", #a, #b, a_,   \
                       b_, (double)(tol));                                                 \
    } while (0)
/* The string s contains the substring sub. */
#define ASSERT_CONTAINS(s, sub)                                                            \
    do {                                                                                   \
        const char *s_ = (s), *sub_ = (sub);                                               \
        if (!s_ || !strstr(s_, sub_))                                                      \
            test_fail_(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"",               \
                       s_ ? s_ : "(null)", sub_);                                          \
    } while (0)

static inline double test_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Directory of the shared reference fixtures beside the checkout, or NULL when absent. */
static inline const char *test_shared_dir(void) {
    const char *env = getenv("COMMENTARY_SHARED");
    static const char *dflt = "../shared/fixtures";
    if (env && *env) return env;
    return access(dflt, R_OK) == 0 ? dflt : NULL;
}

static inline int test_main(int argc, char **argv, const test_case *tests) {
    const char *only = argc > 1 ? argv[1] : NULL;
    const char *to = getenv("TEST_TIMEOUT");
    unsigned timeout = to ? (unsigned)atoi(to) : 300;
    int failed = 0;
    for (const test_case *t = tests; t->name; t++) {
        if (only) {
            if (strcmp(only, t->name) != 0) continue;
            t->fn();
            printf("PASS %s\n", t->name);
            return 0;
        }
        double t0 = test_now_ms();
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(timeout);
            t->fn();
            fflush(NULL);
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        double ms = test_now_ms() - t0;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            printf("PASS %s (%.0f ms)\n", t->name, ms);
        } else if (WIFEXITED(st) && WEXITSTATUS(st) == TEST_SKIP_CODE) {
            printf("SKIP %s\n", t->name);
        } else if (WIFSIGNALED(st)) {
            printf("FAIL %s: killed by signal %d%s\n", t->name, WTERMSIG(st),
                   WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
            failed++;
        } else {
            printf("FAIL %s: exit %d\n", t->name, WEXITSTATUS(st));
            failed++;
        }
        fflush(stdout);
    }
    return failed ? 1 : 0;
}

#endif
