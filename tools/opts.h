/* opts: the options every subcommand accepts, and usage errors. */
#ifndef FV_OPTS_H
#define FV_OPTS_H

#include <getopt.h>

#include "cli.h"

enum { FV_OPT_PASSFILE = 0x100, FV_OPT_JSON };

#define FV_COMMON_SHORTOPTS "hqv"
#define FV_COMMON_LONGOPTS                                                                     \
	{"help", no_argument, NULL, 'h'}, {"quiet", no_argument, NULL, 'q'},                   \
		{"verbose", no_argument, NULL, 'v'}, {"json", no_argument, NULL, FV_OPT_JSON}, \
		{"passphrase-file", required_argument, NULL, FV_OPT_PASSFILE},                 \
	{                                                                                      \
		NULL, 0, NULL, 0                                                               \
	}

/* Handle a common option. Returns -1 when it was handled (keep parsing), or
 * an exit status to return now (help printed: 0; unknown option: 2). */
int cli_common_opt(struct cli *c, int opt, const char *cmd, const char *help);

/* Print "fabvault CMD: MESSAGE" and a hint at --help; returns FV_EXIT_USAGE. */
int cli_usage(struct cli *c, const char *cmd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
