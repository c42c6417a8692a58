/* cli: what the subcommands of `fabvault` share: exit codes, output mode,
 * passphrase sources, progress line, error reporting. Single-threaded.
 */
#ifndef FV_CLI_H
#define FV_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../backupd/repo.h"
#include "../common/err.h"
#include "../common/log.h"

/* Exit codes (docs/fabvault.1.md, "EXIT STATUS"; printed by --help). */
enum fv_exit {
	FV_EXIT_OK = 0,
	FV_EXIT_ERROR = 1,    /* any other failure */
	FV_EXIT_USAGE = 2,    /* bad command line */
	FV_EXIT_PARTIAL = 3,  /* snapshot saved, but some source files were unreadable */
	FV_EXIT_PASS = 4,     /* wrong or missing passphrase */
	FV_EXIT_NOREPO = 5,   /* not a fabvault repository */
	FV_EXIT_VERSION = 6,  /* repository format newer than this program */
	FV_EXIT_LOCKED = 7,   /* repository locked by another process */
	FV_EXIT_DAMAGED = 8,  /* damage found (check, restore --verify, unreadable object) */
	FV_EXIT_NOTFOUND = 9, /* snapshot, path or source not found */
	FV_EXIT_NOSPACE = 10, /* no space left on the repository's device */
	FV_EXIT_UNREACH = 11, /* fabric: the peer could not be reached on any path */
	FV_EXIT_AUTH = 12,    /* fabric: a node key was refused (by either side) */
};

#define FV_EXIT_CODES_HELP                                                                     \
	"Exit status: 0 ok, 1 error, 2 usage, 3 partial (some files unreadable), 4 wrong or\n" \
	"missing passphrase, 5 not a repository, 6 repository version too new, 7 locked,\n"    \
	"8 damage found, 9 not found (snapshot, path, source), 10 no space left,\n"            \
	"11 peer unreachable, 12 node key refused.\n"

struct cli {
	struct fv_log log;
	bool json;  /* --json: machine output on stdout */
	bool tty;   /* stderr is a terminal: progress line allowed */
	bool quiet; /* --quiet: no progress, no info */
	const char *passphrase_file;
	char *pass; /* sodium-guarded passphrase, or NULL */
	size_t passlen;
	/* progress line state */
	bool prog_shown;
	int64_t prog_start_ns;
};

/* Map an engine error code to an exit status. during_open: the error came
 * from opening the repository (so -ENOENT means "not a repository"). */
int cli_exit_for(int code, bool during_open);

/* Print e->msg as an error and return the exit status for it. */
int cli_fail(struct cli *c, const struct fv_err *e, bool during_open);

/* Get the passphrase: FABVAULT_PASSPHRASE, --passphrase-file,
 * $CREDENTIALS_DIRECTORY/fabvault-passphrase, else the terminal (twice when
 * confirm). Returns 0, or an exit status after printing why. */
int cli_get_passphrase(struct cli *c, bool confirm);
void cli_forget_passphrase(struct cli *c);

/* Open the repository at path (asking for the passphrase when it needs
 * one). Returns 0 or an exit status after printing the error. */
int cli_open_repo(struct cli *c, const char *path, unsigned flags, struct fv_repo **r);

/* A warning about one entry (engine warn callback; ud is the struct cli):
 * "PATH: MSG: strerror(-code)", code 0 for none. */
void cli_warn(void *ud, const char *path, int code, const char *msg);

/* The progress line: on a TTY only, rewritten in place on stderr. */
void cli_progress(struct cli *c, uint64_t files, uint64_t total_files, uint64_t bytes, uint64_t total_bytes,
		  const char *what);
void cli_progress_done(struct cli *c);

/* Add string s to JSON object o under key. JSON text must be UTF-8, file
 * names need not be: invalid bytes are shown as U+FFFD and the exact bytes
 * are added as "<key>_hex" (docs/fabvault.1.md, OUTPUT). */
struct json_object;
void cli_json_str(struct json_object *o, const char *key, const char *s);
/* The same for an array element (no _hex companion; for tags and paths
 * lists, where "<key>_hex" arrays carry the exact bytes). */
struct json_object *cli_json_strval(const char *s, bool *valid);

/* "1.5 GiB"-style size into buf. */
const char *cli_size(uint64_t n, char buf[32]);
/* "2026-11-23 21:05:03" local time of ns into buf. */
const char *cli_time(int64_t ns, char buf[32]);

/* Subcommands: argc/argv start at the subcommand name. */
int cmd_init(struct cli *c, int argc, char **argv);
int cmd_snapshot(struct cli *c, int argc, char **argv);
int cmd_list(struct cli *c, int argc, char **argv);
int cmd_ls(struct cli *c, int argc, char **argv);
int cmd_restore(struct cli *c, int argc, char **argv);
int cmd_check(struct cli *c, int argc, char **argv);
int cmd_break_lock(struct cli *c, int argc, char **argv);
int cmd_key(struct cli *c, int argc, char **argv);
int cmd_fabric(struct cli *c, int argc, char **argv);

#endif
