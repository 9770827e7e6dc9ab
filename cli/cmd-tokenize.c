/* cmd-tokenize.c — `commentary tokenize` and `commentary detokenize`: the engine's
 * tokenizer as a line filter, for checking it against Hugging Face by hand or by script.
 *
 *   commentary tokenize --tokenizer FILE
 *       stdin: one JSON string per line; stdout: one JSON array of ids per line
 *       (add_special_tokens=false; added tokens in the text are recognised).
 *   commentary detokenize --tokenizer FILE [--skip-special]
 *       stdin: one JSON array of ids per line; stdout: one JSON string per line
 *       (invalid UTF-8 from byte tokens becomes U+FFFD, as HF decode does).
 *
 * Output is flushed after every line, so either can run as a coprocess.  The first bad
 * line (not JSON, wrong type, invalid text, an id out of range) stops the run with a
 * message naming the line number on stderr and exit status 2.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "tokenizer.h"

/* The usage on f; returns rc (2 after bad arguments, -1 after --help: exit 0). */
static int usage(const char *cmd, FILE *f, int rc) {
    fprintf(f, "usage: commentary %s --tokenizer FILE%s\n", cmd,
            strcmp(cmd, "detokenize") ? "" : " [--skip-special]");
    return rc;
}

/* Parse the options and load the tokenizer; returns 0, -1 after --help, or the exit status
 * on failure. */
static int setup(int argc, char **argv, bool allow_skip, vlm_tokenizer **tok,
                 unsigned *flags) {
    const char *cmd = argv[0], *path = NULL;
    *flags = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) {
            path = argv[++i];
        } else if (!strncmp(argv[i], "--tokenizer=", 12)) {
            path = argv[i] + 12;
        } else if (allow_skip && !strcmp(argv[i], "--skip-special")) {
            *flags |= VLM_DECODE_SKIP_SPECIAL;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return usage(cmd, stdout, -1);
        } else {
            fprintf(stderr, "commentary %s: unexpected argument '%s'\n", cmd, argv[i]);
            return usage(cmd, stderr, 2);
        }
    }
    if (!path) return usage(cmd, stderr, 2);
    char err[VLM_ERR_LEN];
    if (vlm_tokenizer_load(path, tok, err) != 0) {
        fprintf(stderr, "commentary %s: %s\n", cmd, err);
        return 2;
    }
    return 0;
}

/* Read one line (without its "\n" or "\r\n") and parse it as JSON; NULL at EOF.  *bad is
 * set (and a message printed) when the line is not JSON. */
static json_t *read_json_line(const char *cmd, char **line, size_t *cap, long lineno,
                              bool *bad) {
    *bad = false;
    ssize_t n = getline(line, cap, stdin);
    if (n < 0) return NULL;
    while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r')) n--;
    json_error_t je;
    json_t *j = json_loadb(*line, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!j) {
        fprintf(stderr, "commentary %s: line %ld: not json: %s\n", cmd, lineno, je.text);
        *bad = true;
    }
    return j;
}

int cmd_tokenize(int argc, char **argv) {
    const char *cmd = argv[0];
    vlm_tokenizer *tok = NULL;
    unsigned flags;
    int rc = setup(argc, argv, false, &tok, &flags);
    if (rc) return rc < 0 ? 0 : rc;
    char *line = NULL;
    size_t cap = 0;
    int64_t id_cap = 1024;
    int32_t *ids = malloc((size_t)id_cap * sizeof *ids);
    bool bad = false;
    for (long lineno = 1; !rc && ids; lineno++) {
        json_t *j = read_json_line(cmd, &line, &cap, lineno, &bad);
        if (!j) {
            rc = bad ? 2 : 0;
            break;
        }
        if (!json_is_string(j)) {
            fprintf(stderr, "commentary %s: line %ld: not a json string\n", cmd, lineno);
            json_decref(j);
            rc = 2;
            break;
        }
        char err[VLM_ERR_LEN];
        int64_t n = 0;
        int e = vlm_tokenizer_encode(tok, json_string_value(j), json_string_length(j), ids,
                                     id_cap, &n, err);
        if (e == VLM_EFULL) { /* grow to the count it reported and encode again */
            int32_t *p = realloc(ids, (size_t)n * sizeof *ids);
            if (p) {
                ids = p;
                id_cap = n;
                e = vlm_tokenizer_encode(tok, json_string_value(j), json_string_length(j), ids,
                                         id_cap, &n, err);
            }
        }
        json_decref(j);
        if (e) {
            fprintf(stderr, "commentary %s: line %ld: %s\n", cmd, lineno, err);
            rc = 2;
            break;
        }
        putchar('[');
        for (int64_t i = 0; i < n; i++) printf(i ? ",%" PRId32 : "%" PRId32, ids[i]);
        fputs("]\n", stdout);
        fflush(stdout);
    }
    if (!ids) {
        fprintf(stderr, "commentary %s: out of memory\n", cmd);
        rc = 2;
    }
    free(ids);
    free(line);
    vlm_tokenizer_free(tok);
    return rc;
}

int cmd_detokenize(int argc, char **argv) {
    const char *cmd = argv[0];
    vlm_tokenizer *tok = NULL;
    unsigned flags;
    int rc = setup(argc, argv, true, &tok, &flags);
    if (rc) return rc < 0 ? 0 : rc;
    int64_t vocab = vlm_tokenizer_vocab_size(tok);
    char *line = NULL, *text = NULL;
    size_t cap = 0, text_cap = 0;
    int32_t *ids = NULL;
    bool bad = false;
    for (long lineno = 1; !rc; lineno++) {
        json_t *j = read_json_line(cmd, &line, &cap, lineno, &bad);
        if (!j) {
            rc = bad ? 2 : 0;
            break;
        }
        size_t n = json_is_array(j) ? json_array_size(j) : 0;
        if (!json_is_array(j)) {
            fprintf(stderr, "commentary %s: line %ld: not a json array of ids\n", cmd, lineno);
            rc = 2;
        } else if (!(ids = realloc(ids, (n + 1) * sizeof *ids))) {
            fprintf(stderr, "commentary %s: out of memory\n", cmd);
            rc = 2;
        }
        for (size_t i = 0; !rc && i < n; i++) {
            json_t *v = json_array_get(j, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) >= vocab) {
                char *s = json_dumps(v, JSON_ENCODE_ANY);
                fprintf(stderr, "commentary %s: line %ld: element %zu (%.40s) is not an id in "
                        "[0, %" PRId64 ")\n", cmd, lineno, i, s ? s : "?", vocab);
                free(s);
                rc = 2;
            } else {
                ids[i] = (int32_t)json_integer_value(v);
            }
        }
        json_decref(j);
        if (rc) break;
        size_t len = 0;
        while (vlm_tokenizer_decode(tok, ids, (int64_t)n, flags, text, text_cap, &len) ==
               VLM_EFULL) {
            char *p = realloc(text, len + 1);
            if (!p) {
                fprintf(stderr, "commentary %s: out of memory\n", cmd);
                rc = 2;
                break;
            }
            text = p;
            text_cap = len + 1;
        }
        if (rc) break;
        json_t *s = json_stringn(text ? text : "", len); /* decode output is valid UTF-8 */
        char *out = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        json_decref(s);
        if (!out) {
            fprintf(stderr, "commentary %s: line %ld: cannot write the text as json\n", cmd,
                    lineno);
            rc = 2;
            break;
        }
        puts(out);
        fflush(stdout);
        free(out);
    }
    free(ids);
    free(text);
    free(line);
    vlm_tokenizer_free(tok);
    return rc;
}
