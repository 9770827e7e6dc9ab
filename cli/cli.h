/* cli.h — the subcommands of build/bin/commentary, one file each (cli/cmd-*.c).
 * Each takes argv without the program name (argv[0] is the subcommand) and returns the
 * process exit status: 0 success, 1 a failed check, 2 bad usage or input.
 */
#ifndef COMMENTARY_CLI_H
#define COMMENTARY_CLI_H

int cmd_check(int argc, char **argv);      /* cli/cmd-check.c */
int cmd_tokenize(int argc, char **argv);   /* cli/cmd-tokenize.c */
int cmd_detokenize(int argc, char **argv); /* cli/cmd-tokenize.c */
int cmd_run(int argc, char **argv);        /* cli/cmd-run.c */

#endif
