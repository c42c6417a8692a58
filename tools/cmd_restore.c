/* fabvault restore */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../backupd/reader.h"
#include "../backupd/restore.h"
#include "cli.h"
#include "opts.h"

static const char help[] = "Usage: fabvault restore REPO SNAP --target DIR [OPTIONS]\n"
			   "Restore snapshot SNAP (an id, a unique id prefix, or 'latest') of repository\n"
			   "REPO under DIR: a file backed up as /opt/x/f comes back as DIR/opt/x/f.\n"
			   "Existing files of the same name are replaced; nothing is ever written outside\n"
			   "DIR, whatever the repository holds. Owners are restored when run as root.\n\n"
			   "Options:\n"
			   "  -t, --target DIR       where to restore (required; created if missing)\n"
			   "  -i, --include PATH     restore only PATH and what is below it (repeatable;\n"
			   "                         a path as shown by fabvault ls)\n"
			   "  -n, --dry-run          list what would be restored, write nothing\n"
			   "      --verify           recompute each chunk's id as it is read, re-read\n"
			   "                         every restored file and compare it with the\n"
			   "                         snapshot (exit status 8 on a mismatch)\n"
			   "      --no-owner         do not restore owners even as root\n"
			   "      --threads N        read and write file data with N threads (1 to 64;\n"
			   "                         default: one per online CPU)\n"
			   "      --json             print the summary as JSON on stdout\n"
			   "      --passphrase-file F  read the passphrase from file F\n"
			   "  -q, --quiet            no progress line, no summary\n"
			   "  -v, --verbose          print each restored path on stderr\n"
			   "  -h, --help             this help\n\n" FV_EXIT_CODES_HELP;

static void on_progress(void *ud, const struct fv_restore_progress *p)
{
	cli_progress(ud, p->files, p->total_files, p->bytes, p->total_bytes, "restore");
}

struct itemctx {
	struct cli *c;
	bool dry;
};

static void on_item(void *ud, const char *path, const struct fv_node *n)
{
	struct itemctx *x = ud;
	(void)n;
	if (x->dry && !x->c->json)
		printf("%s\n", path);
	else
		fv_log(&x->c->log, LOG_DEBUG, "restoring %s", path);
}

/* restore's callbacks share one user pointer: the cli context, with the
 * item context reachable from a small wrapper. */
struct both {
	struct cli *c;
	struct itemctx it;
};

static void w_warn(void *ud, const char *path, int code, const char *msg)
{
	cli_warn(((struct both *)ud)->c, path, code, msg);
}

static void w_progress(void *ud, const struct fv_restore_progress *p)
{
	on_progress(((struct both *)ud)->c, p);
}

static void w_item(void *ud, const char *path, const struct fv_node *n)
{
	on_item(&((struct both *)ud)->it, path, n);
}

int cmd_restore(struct cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{"target", required_argument, NULL, 't'},
		{"include", required_argument, NULL, 'i'},
		{"dry-run", no_argument, NULL, 'n'},
		{"verify", no_argument, NULL, 'V'},
		{"no-owner", no_argument, NULL, 'O'},
		{"threads", required_argument, NULL, 'T'},
		FV_COMMON_LONGOPTS,
	};
	struct fv_restore_opts o = {0};
	struct fv_restore_stats st = {0};
	const char **inc = NULL;
	size_t ninc = 0;
	bool no_owner = false;
	struct fv_repo *r = NULL;
	struct fv_snapshot s = {0};
	struct fv_err e = {0};
	struct both b = {.c = c, .it = {.c = c}};
	int opt, rc = FV_EXIT_OK;

	while ((opt = getopt_long(argc, argv, "t:i:n" FV_COMMON_SHORTOPTS, lo, NULL)) != -1) {
		switch (opt) {
		case 't':
			o.target = optarg;
			break;
		case 'i': {
			const char **v = realloc(inc, (ninc + 1) * sizeof *v);
			if (!v) {
				rc = FV_EXIT_ERROR;
				goto out;
			}
			inc = v;
			inc[ninc++] = optarg;
			break;
		}
		case 'n':
			o.dry_run = true;
			break;
		case 'V':
			o.verify = true;
			break;
		case 'O':
			no_owner = true;
			break;
		case 'T':
			if (fv_reader_threads_parse(optarg, &o.threads) < 0) {
				rc = cli_usage(c, "restore",
					       "--threads wants a whole number from 1 to %d, not '%s'",
					       FV_READ_THREADS_MAX, optarg);
				goto out;
			}
			break;
		default:
			rc = cli_common_opt(c, opt, "restore", help);
			if (rc >= 0)
				goto out;
		}
	}
	if (argc - optind != 2) {
		rc = cli_usage(c, "restore", "expected REPO and SNAP");
		goto out;
	}
	if (!o.target || !*o.target) {
		rc = cli_usage(c, "restore", "--target DIR is required (where to restore)");
		goto out;
	}
	o.includes = inc;
	o.nincludes = ninc;
	o.owner = geteuid() == 0 && !no_owner;
	b.it.dry = o.dry_run;
	o.ud = &b;
	o.warn = w_warn;
	o.item = w_item;
	if (c->tty && !c->quiet && !o.dry_run)
		o.progress = w_progress;
	rc = cli_open_repo(c, argv[optind], 0, &r);
	if (rc)
		goto out;
	if (fv_repo_snapshot_find(r, argv[optind + 1], &s, &e) < 0) {
		rc = cli_fail(c, &e, false);
		goto out;
	}
	int err = fv_restore_run(r, &s, &o, &st, &e);
	cli_progress_done(c);
	if (c->json) {
		json_object *j = json_object_new_object();
		char hex[2 * FV_ID_LEN + 1];
		fv_hex(s.id, FV_ID_LEN, hex);
		json_object_object_add(j, "snapshot", json_object_new_string(hex));
		cli_json_str(j, "target", o.target);
		json_object_object_add(j, "dry_run", json_object_new_boolean(o.dry_run));
		json_object_object_add(j, "files", json_object_new_uint64(st.files));
		json_object_object_add(j, "dirs", json_object_new_uint64(st.dirs));
		json_object_object_add(j, "others", json_object_new_uint64(st.others));
		json_object_object_add(j, "bytes", json_object_new_uint64(st.bytes));
		json_object_object_add(j, "errors", json_object_new_uint64(st.errors));
		json_object_object_add(j, "verify_failures", json_object_new_uint64(st.verify_failures));
		json_object_object_add(j, "ok", json_object_new_boolean(err == 0));
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	}
	if (err < 0) {
		rc = cli_fail(c, &e, false);
		goto out;
	}
	if (!c->json && !c->quiet && !o.dry_run) {
		char sz[32];
		printf("restored %llu files, %llu directories, %llu other entries, %s into %s%s\n",
		       (unsigned long long)st.files, (unsigned long long)st.dirs,
		       (unsigned long long)st.others, cli_size(st.bytes, sz), o.target,
		       o.verify ? " (verified)" : "");
	}
out:
	fv_snapshot_free(&s);
	fv_repo_close(r);
	free(inc);
	return rc;
}
