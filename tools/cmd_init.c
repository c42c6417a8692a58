/* fabvault init, fabvault break-lock */
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../backupd/lock.h"
#include "cli.h"
#include "opts.h"

static const char init_help[] =
	"Usage: fabvault init REPO [OPTIONS]\n"
	"Create a new, empty repository in the directory REPO (created if missing;\n"
	"it must be empty). Encrypted by default: the passphrase is asked twice on\n"
	"a terminal, or taken from FABVAULT_PASSPHRASE, --passphrase-file or the\n"
	"systemd credential fabvault-passphrase.\n\n"
	"Options:\n"
	"  --encryption ALG     xchacha20-poly1305 (default), aes256gcm (CPUs with AES\n"
	"                       support only), or none (no confidentiality; objects are\n"
	"                       still authenticated)\n"
	"  --compression C      zstd,LEVEL (default zstd,3; 1..19) or none\n"
	"  --kdf COST           Argon2id cost of the passphrase: interactive (64 MiB),\n"
	"                       moderate (256 MiB, default) or sensitive (1 GiB)\n"
	"  --chunk-sizes MIN,AVG,MAX  content-defined chunk sizes in KiB (default\n"
	"                       512,1024,8192; AVG a power of two)\n"
	"  --passphrase-file F  read the passphrase from file F\n"
	"  --json               print the new repository's facts as JSON\n"
	"  -q, --quiet          print nothing but errors\n"
	"  -h, --help           this help\n\n" FV_EXIT_CODES_HELP;

static int parse_compression(const char *s, int *level)
{
	if (!strcmp(s, "none")) {
		*level = 0;
		return 0;
	}
	if (!strcmp(s, "zstd")) {
		*level = 3;
		return 0;
	}
	char *end;
	if (strncmp(s, "zstd,", 5) != 0)
		return -1;
	long v = strtol(s + 5, &end, 10);
	if (*end || v < 1 || v > 19)
		return -1;
	*level = (int)v;
	return 0;
}

int cmd_init(struct cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{"encryption", required_argument, NULL, 'E'},
		{"compression", required_argument, NULL, 'C'},
		{"kdf", required_argument, NULL, 'K'},
		{"chunk-sizes", required_argument, NULL, 'S'},
		FV_COMMON_LONGOPTS,
	};
	struct fv_repo_create_opts o;
	struct fv_err e = {0};
	int opt;
	fv_repo_create_opts_default(&o);
	while ((opt = getopt_long(argc, argv, FV_COMMON_SHORTOPTS, lo, NULL)) != -1) {
		switch (opt) {
		case 'E':
			if (!strcmp(optarg, "xchacha20-poly1305"))
				o.enc = FV_ENC_XCHACHA;
			else if (!strcmp(optarg, "aes256gcm"))
				o.enc = FV_ENC_AESGCM;
			else if (!strcmp(optarg, "none"))
				o.enc = FV_ENC_NONE;
			else
				return cli_usage(
					c, "init",
					"unknown encryption '%s' (xchacha20-poly1305, aes256gcm, none)",
					optarg);
			break;
		case 'C':
			if (parse_compression(optarg, &o.zstd_level) < 0)
				return cli_usage(c, "init", "bad --compression '%s' (zstd,1..19 or none)",
						 optarg);
			break;
		case 'K':
			if (!strcmp(optarg, "interactive")) {
				o.kdf_ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
				o.kdf_mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
			} else if (!strcmp(optarg, "moderate")) {
				o.kdf_ops = crypto_pwhash_OPSLIMIT_MODERATE;
				o.kdf_mem = crypto_pwhash_MEMLIMIT_MODERATE;
			} else if (!strcmp(optarg, "sensitive")) {
				o.kdf_ops = crypto_pwhash_OPSLIMIT_SENSITIVE;
				o.kdf_mem = crypto_pwhash_MEMLIMIT_SENSITIVE;
			} else {
				return cli_usage(c, "init",
						 "unknown --kdf '%s' (interactive, moderate, sensitive)",
						 optarg);
			}
			break;
		case 'S': {
			unsigned a, b, d;
			char tail;
			if (sscanf(optarg, "%u,%u,%u%c", &a, &b, &d, &tail) != 3 || a > 65536 || b > 65536 ||
			    d > 65536)
				return cli_usage(c, "init", "bad --chunk-sizes '%s' (MIN,AVG,MAX in KiB)",
						 optarg);
			o.chunk.min = a * 1024;
			o.chunk.avg = b * 1024;
			o.chunk.max = d * 1024;
			break;
		}
		default: {
			int rc = cli_common_opt(c, opt, "init", init_help);
			if (rc >= 0)
				return rc;
		}
		}
	}
	if (argc - optind != 1)
		return cli_usage(c, "init", "expected exactly one REPO argument");
	const char *path = argv[optind];
	if (fv_chunker_params_check(&o.chunk) < 0)
		return cli_usage(
			c, "init",
			"bad --chunk-sizes %u,%u,%u: need 1 <= MIN < AVG < MAX <= 65536 (KiB), AVG a power "
			"of two",
			o.chunk.min / 1024, o.chunk.avg / 1024, o.chunk.max / 1024);
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
		/* say so before asking for a passphrase */
		fv_log(&c->log, LOG_ERR, "%s exists and is not a directory", path);
		return FV_EXIT_ERROR;
	}
	if (o.enc != FV_ENC_NONE) {
		int rc = cli_get_passphrase(c, true);
		if (rc)
			return rc;
	}
	int rc = fv_repo_create(path, &o, c->pass, c->passlen, &e);
	if (rc < 0)
		return cli_fail(c, &e, false);
	if (c->json) {
		json_object *j = json_object_new_object();
		cli_json_str(j, "repository", path);
		json_object_object_add(j, "encryption",
				       json_object_new_string(o.enc == FV_ENC_NONE ? "none"
							      : o.enc == FV_ENC_AESGCM
								      ? "aes256gcm"
								      : "xchacha20-poly1305"));
		json_object_object_add(j, "compression_level", json_object_new_int(o.zstd_level));
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else if (!c->quiet) {
		printf("created repository %s (%s%s)\n", path,
		       o.enc == FV_ENC_NONE ? "NOT encrypted" : "encrypted",
		       o.enc == FV_ENC_NONE ? ""
					    : "; keep the passphrase safe: without it the backups are lost");
	}
	return FV_EXIT_OK;
}

static const char break_help[] =
	"Usage: fabvault break-lock REPO\n"
	"Remove the repository's writer lock, whoever holds it. Use it only when the\n"
	"process named in the \"locked by\" message is gone (e.g. its host crashed);\n"
	"a stale lock of a dead process on this host is taken over automatically.\n\n"
	"Options:\n  -q, --quiet   print nothing but errors\n  -h, --help    this help\n\n" FV_EXIT_CODES_HELP;

int cmd_break_lock(struct cli *c, int argc, char **argv)
{
	static const struct option lo[] = {FV_COMMON_LONGOPTS};
	int opt;
	while ((opt = getopt_long(argc, argv, FV_COMMON_SHORTOPTS, lo, NULL)) != -1) {
		int rc = cli_common_opt(c, opt, "break-lock", break_help);
		if (rc >= 0)
			return rc;
	}
	if (argc - optind != 1)
		return cli_usage(c, "break-lock", "expected exactly one REPO argument");
	const char *path = argv[optind];
	struct fv_err e = {0};
	int need = fv_repo_needs_passphrase(path, &e); /* is it a repository at all? */
	if (need < 0)
		return cli_fail(c, &e, true);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fv_log(&c->log, LOG_ERR, "cannot open %s: %m", path);
		return FV_EXIT_ERROR;
	}
	struct fv_lock_owner o;
	int have = fv_lock_read(fd, &o);
	int rc = fv_lock_break(fd);
	close(fd);
	if (rc == -ENOENT) {
		if (!c->quiet)
			printf("repository %s is not locked\n", path);
		return FV_EXIT_OK;
	}
	if (rc < 0) {
		fv_log(&c->log, LOG_ERR, "cannot remove the lock of %s: %s", path, strerror(-rc));
		return FV_EXIT_ERROR;
	}
	if (!c->quiet) {
		if (have == 0)
			printf("removed the lock of %s held by process %ld on host %s\n", path, o.pid,
			       o.host);
		else
			printf("removed the lock of %s\n", path);
	}
	return FV_EXIT_OK;
}
