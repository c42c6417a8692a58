/* fabvault: the command-line tool. main() owns the cli context; each
 * subcommand lives in its own cmd_*.c. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../backupd/crypto.h"
#include "cli.h"

static const struct {
	const char *name;
	int (*fn)(struct cli *, int, char **);
	const char *what;
} cmds[] = {
	{"init", cmd_init, "create a new repository"},
	{"snapshot", cmd_snapshot, "back up paths into a new snapshot"},
	{"list", cmd_list, "list snapshots"},
	{"ls", cmd_ls, "list the files of a snapshot"},
	{"restore", cmd_restore, "restore a snapshot, or part of it"},
	{"check", cmd_check, "verify the repository's integrity"},
	{"break-lock", cmd_break_lock, "remove a lock left by a dead process"},
	{"key", cmd_key, "create or show this node's transport key"},
	{"fabric", cmd_fabric, "test the links to a peer: serve, ping, bench"},
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: fabvault COMMAND [ARGS...]\n\nCommands:\n");
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		fprintf(f, "  %-11s %s\n", cmds[i].name, cmds[i].what);
	fprintf(f,
		"\n'fabvault COMMAND --help' describes a command. Manual: docs/fabvault.1.md.\n"
		"The passphrase comes from FABVAULT_PASSPHRASE, --passphrase-file, the systemd\n"
		"credential fabvault-passphrase, or the terminal. Logs go to stderr.\n\n" FV_EXIT_CODES_HELP);
}

int main(int argc, char **argv)
{
	struct cli c = {0};
	fv_log_init(&c.log, "fabvault", LOG_INFO);
	c.tty = isatty(2);
	if (fv_crypto_init() < 0) {
		fprintf(stderr, "fabvault: error: cannot initialise libsodium\n");
		return FV_EXIT_ERROR;
	}
	if (argc < 2) {
		usage(stderr);
		return FV_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return FV_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("fabvault %s\n", FV_VERSION);
		return FV_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		if (!strcmp(argv[1], cmds[i].name)) {
			int rc = cmds[i].fn(&c, argc - 1, argv + 1);
			cli_forget_passphrase(&c);
			fflush(stdout);
			return rc;
		}
	}
	fprintf(stderr, "fabvault: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return FV_EXIT_USAGE;
}
