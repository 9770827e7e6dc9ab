/* commentary.c — the engine's command-line tool: dispatch to the subcommands in
 * cli/cmd-*.c.  Exit status: 0 success, 1 a failed check, 2 bad usage or input. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "vlm_error.h"

static void log_to_stderr(vlm_log_level level, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"error", "warning", "info", "debug"};
    if (level <= VLM_LOG_WARN) fprintf(stderr, "commentary: %s: %s\n", names[level], msg);
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"run", cmd_run, "--model DIR --input FILE_OR_URI [OPTIONS]   offline commentary"},
    {"check", cmd_check,
     "FIXTURE_DIR [--weights model|model-bf16] [--backend B]   compare with references"},
    {"tokenize", cmd_tokenize, "--tokenizer FILE   JSON strings on stdin -> id arrays"},
    {"detokenize", cmd_detokenize, "--tokenizer FILE   id arrays on stdin -> JSON strings"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: commentary COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\ncommentary COMMAND --help: the command's options\n");
}

int main(int argc, char **argv) {
    vlm_set_log(log_to_stderr, NULL);
    if (argc < 2) return usage(stderr), 2;
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
        return usage(stdout), 0;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "commentary: unknown command '%s'\n", argv[1]);
    return usage(stderr), 2;
}
