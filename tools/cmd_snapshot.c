/* fabvault snapshot */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backupd/backup.h"
#include "../backupd/filescache.h"
#include "../backupd/pipeline.h"
#include "cli.h"
#include "opts.h"

static const char help[] =
	"Usage: fabvault snapshot REPO PATH... [OPTIONS]\n"
	"Back up PATHs into a new snapshot of repository REPO. Paths are stored as\n"
	"absolute paths (without the leading /), as borg and restic do. Unchanged data\n"
	"is stored once (deduplicated by content). Unreadable files are reported and\n"
	"skipped; the snapshot is then saved as partial (exit status 3).\n\n"
	"Options:\n"
	"  -t, --tag TAG          add a tag (repeatable)\n"
	"  -e, --exclude PATTERN  skip entries matching a shell PATTERN: against the\n"
	"                         full path if it holds a '/', else the name (repeatable)\n"
	"  -x, --one-file-system  do not cross into other filesystems\n"
	"      --host NAME        record NAME instead of this host's name\n"
	"      --no-cache         read every file (do not use the files cache)\n"
	"      --cache-dir DIR    keep the files cache under DIR (default\n"
	"                         $XDG_CACHE_HOME/fabvault or ~/.cache/fabvault)\n"
	"      --threads N        compress and encrypt with N threads, 1 to 64\n"
	"                         (default: one per online CPU)\n"
	"      --passphrase-file F  read the passphrase from file F\n"
	"      --json             print the result as JSON on stdout\n"
	"  -q, --quiet            no progress line, no summary\n"
	"  -v, --verbose          more messages\n"
	"  -h, --help             this help\n\n" FV_EXIT_CODES_HELP;

struct snapctx {
	struct cli *c;
};

static void on_progress(void *ud, const struct fv_backup_progress *p)
{
	cli_progress(ud, p->files, p->total_files, p->bytes, p->total_bytes, "snapshot");
}

static int add_str(const char ***v, size_t *n, const char *s)
{
	const char **nv = realloc(*v, (*n + 1) * sizeof *nv);
	if (!nv)
		return -1;
	nv[(*n)++] = s;
	*v = nv;
	return 0;
}

int cmd_snapshot(struct cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{"tag", required_argument, NULL, 't'},
		{"exclude", required_argument, NULL, 'e'},
		{"one-file-system", no_argument, NULL, 'x'},
		{"host", required_argument, NULL, 'H'},
		{"no-cache", no_argument, NULL, 'N'},
		{"cache-dir", required_argument, NULL, 'D'},
		{"threads", required_argument, NULL, 'T'}, /* 1..FV_PIPE_WORKERS_MAX */
		FV_COMMON_LONGOPTS,
	};
	struct fv_backup_opts o = {0};
	const char **tags = NULL, **ex = NULL;
	size_t ntags = 0, nex = 0;
	struct fv_repo *r = NULL;
	struct fv_snapshot s = {0};
	struct fv_err e = {0};
	int opt, rc = FV_EXIT_OK;
	bool no_cache = false;
	const char *cache_dir = NULL;
	char default_cache[4096];
	struct fv_backup_counters cnt = {0};

	while ((opt = getopt_long(argc, argv, "t:e:x" FV_COMMON_SHORTOPTS, lo, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (!*optarg || strlen(optarg) > 255) {
				rc = cli_usage(c, "snapshot", "a tag must have 1 to 255 bytes");
				goto out;
			}
			if (add_str(&tags, &ntags, optarg) < 0)
				goto oom;
			break;
		case 'e':
			if (add_str(&ex, &nex, optarg) < 0)
				goto oom;
			break;
		case 'x':
			o.one_file_system = true;
			break;
		case 'H':
			o.host = optarg;
			break;
		case 'N':
			no_cache = true;
			break;
		case 'D':
			cache_dir = optarg;
			break;
		case 'T': {
			char *end;
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (optarg[0] < '0' || optarg[0] > '9' || *end || errno || v < 1 ||
			    v > FV_PIPE_WORKERS_MAX) {
				rc = cli_usage(c, "snapshot",
					       "--threads wants a whole number from 1 to %d, not '%s'",
					       FV_PIPE_WORKERS_MAX, optarg);
				goto out;
			}
			o.threads = (unsigned)v;
			break;
		}
		default:
			rc = cli_common_opt(c, opt, "snapshot", help);
			if (rc >= 0)
				goto out;
		}
	}
	if (argc - optind < 2) {
		rc = cli_usage(c, "snapshot", "expected REPO and at least one PATH");
		goto out;
	}
	o.paths = (const char *const *)argv + optind + 1;
	o.npaths = (size_t)(argc - optind - 1);
	o.tags = tags;
	o.ntags = ntags;
	o.excludes = ex;
	o.nexcludes = nex;
	o.warn = cli_warn;
	o.counters = &cnt;
	if (!no_cache) {
		if (!cache_dir && fv_fcache_default_dir(default_cache, sizeof default_cache) == 0)
			cache_dir = default_cache;
		o.cache_dir = cache_dir; /* NULL (no home): every file is read */
	}
	o.ud = c;
	if (c->tty && !c->quiet) {
		o.progress = on_progress;
		o.count_first = true;
	}
	rc = cli_open_repo(c, argv[optind], FV_OPEN_WRITE, &r);
	if (rc)
		goto out;
	if (fv_backup_run(r, &o, &s, &e) < 0) {
		rc = cli_fail(c, &e, false);
		goto out;
	}
	cli_progress_done(c);
	char hex[2 * FV_ID_LEN + 1], b1[32], b2[32], b3[32], b4[32];
	fv_hex(s.id, FV_ID_LEN, hex);
	double secs = (double)(s.end_ns - s.time_ns) / 1e9;
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "id", json_object_new_string(hex));
		json_object_object_add(j, "time_ns", json_object_new_int64(s.time_ns));
		json_object_object_add(j, "duration_s", json_object_new_double(secs));
		json_object_object_add(j, "files", json_object_new_uint64(s.stats.files));
		json_object_object_add(j, "dirs", json_object_new_uint64(s.stats.dirs));
		json_object_object_add(j, "others", json_object_new_uint64(s.stats.others));
		json_object_object_add(j, "bytes", json_object_new_uint64(s.stats.bytes));
		json_object_object_add(j, "read_bytes", json_object_new_uint64(cnt.read_bytes));
		json_object_object_add(j, "files_from_cache", json_object_new_uint64(cnt.cached_files));
		json_object_object_add(j, "new_blobs", json_object_new_uint64(s.stats.new_chunks));
		json_object_object_add(j, "new_bytes", json_object_new_uint64(s.stats.new_bytes));
		json_object_object_add(j, "stored_bytes", json_object_new_uint64(s.stats.stored_bytes));
		json_object_object_add(j, "errors", json_object_new_uint64(s.stats.errors));
		json_object_object_add(j, "partial", json_object_new_boolean(s.flags & FV_SNAP_PARTIAL));
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else if (!c->quiet) {
		char unchanged[64] = "";
		if (cnt.cached_files)
			snprintf(unchanged, sizeof unchanged, " (%llu unchanged, not read)",
				 (unsigned long long)cnt.cached_files);
		printf("snapshot %.8s saved: %llu files%s, %s, %s read, %s new, %s stored, %.1f s%s\n", hex,
		       (unsigned long long)s.stats.files, unchanged, cli_size(s.stats.bytes, b1),
		       cli_size(cnt.read_bytes, b4), cli_size(s.stats.new_bytes, b2),
		       cli_size(s.stats.stored_bytes, b3), secs,
		       s.flags & FV_SNAP_PARTIAL ? " (PARTIAL: some entries could not be read)" : "");
	}
	if (s.flags & FV_SNAP_PARTIAL) {
		fv_log(&c->log, LOG_WARNING, "%llu entries could not be read; snapshot %.8s is partial",
		       (unsigned long long)s.stats.errors, hex);
		rc = FV_EXIT_PARTIAL;
	}
	goto out;
oom:
	fv_log(&c->log, LOG_ERR, "out of memory");
	rc = FV_EXIT_ERROR;
out:
	fv_snapshot_free(&s);
	fv_repo_close(r);
	free(tags);
	free(ex);
	return rc;
}
