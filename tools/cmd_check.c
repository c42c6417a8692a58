/* fabvault check */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "../backupd/check.h"
#include "../backupd/reader.h"
#include "cli.h"
#include "opts.h"

static const char help[] = "Usage: fabvault check REPO [OPTIONS]\n"
			   "Verify repository REPO: every index file and snapshot authenticates, every\n"
			   "pack file's frames match their checksums and its table of contents matches\n"
			   "the index, and every snapshot's directories and file contents are present.\n"
			   "Each problem is reported with the file, snapshots and paths it affects.\n"
			   "Pack files left by an interrupted snapshot are reported as harmless.\n\n"
			   "Options:\n"
			   "      --read-data        also decrypt, decompress and re-hash every blob\n"
			   "      --threads N        read data with N threads (1 to 64; default: one per\n"
			   "                         online CPU)\n"
			   "      --json             print the result as JSON on stdout\n"
			   "      --passphrase-file F  read the passphrase from file F\n"
			   "  -q, --quiet            print only problems\n"
			   "  -h, --help             this help\n\n" FV_EXIT_CODES_HELP;

struct chk {
	struct cli *c;
	json_object *problems;
};

static void on_problem(void *ud, bool is_error, const char *msg)
{
	struct chk *k = ud;
	cli_progress_done(k->c);
	if (k->problems) {
		json_object *p = json_object_new_object();
		json_object_object_add(p, "severity", json_object_new_string(is_error ? "error" : "warning"));
		cli_json_str(p, "message", msg);
		json_object_array_add(k->problems, p);
	}
	if (is_error || !k->c->quiet)
		fv_log(&k->c->log, is_error ? LOG_ERR : LOG_WARNING, "%s", msg);
}

static void on_progress(void *ud, const char *phase, uint64_t done, uint64_t total)
{
	struct chk *k = ud;
	cli_progress(k->c, done, total, 0, 0, phase);
}

int cmd_check(struct cli *c, int argc, char **argv)
{
	static const struct option lo[] = {{"read-data", no_argument, NULL, 'R'},
					   {"threads", required_argument, NULL, 'T'},
					   FV_COMMON_LONGOPTS};
	struct fv_check_opts o = {0};
	struct fv_check_result res;
	struct chk k = {.c = c};
	struct fv_repo *r = NULL;
	struct fv_err e = {0};
	int opt, rc;
	while ((opt = getopt_long(argc, argv, FV_COMMON_SHORTOPTS, lo, NULL)) != -1) {
		if (opt == 'R') {
			o.read_data = true;
			continue;
		}
		if (opt == 'T') {
			if (fv_reader_threads_parse(optarg, &o.threads) < 0)
				return cli_usage(c, "check",
						 "--threads wants a whole number from 1 to %d, not '%s'",
						 FV_READ_THREADS_MAX, optarg);
			continue;
		}
		rc = cli_common_opt(c, opt, "check", help);
		if (rc >= 0)
			return rc;
	}
	if (argc - optind != 1)
		return cli_usage(c, "check", "expected exactly one REPO argument");
	rc = cli_open_repo(c, argv[optind], FV_OPEN_NO_INDEX, &r);
	if (rc)
		return rc;
	if (c->json)
		k.problems = json_object_new_array();
	o.problem = on_problem;
	o.progress = c->tty && !c->quiet ? on_progress : NULL;
	o.ud = &k;
	int err = fv_check_run(r, &o, &res, &e);
	cli_progress_done(c);
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "ok", json_object_new_boolean(err == 0));
		json_object_object_add(j, "read_data", json_object_new_boolean(o.read_data));
		json_object_object_add(j, "index_files", json_object_new_uint64(res.index_files));
		json_object_object_add(j, "packs", json_object_new_uint64(res.packs));
		json_object_object_add(j, "blobs", json_object_new_uint64(res.blobs));
		json_object_object_add(j, "snapshots", json_object_new_uint64(res.snapshots));
		json_object_object_add(j, "trees", json_object_new_uint64(res.trees));
		json_object_object_add(j, "bytes_scanned", json_object_new_uint64(res.bytes_scanned));
		json_object_object_add(j, "errors", json_object_new_uint64(res.errors));
		json_object_object_add(j, "warnings", json_object_new_uint64(res.warnings));
		json_object_object_add(j, "problems", k.problems);
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	}
	if (err < 0) {
		rc = cli_fail(c, &e, false);
	} else {
		if (!c->json && !c->quiet) {
			char sz[32];
			printf("repository %s is OK: %llu snapshots, %llu packs (%s), %llu blobs%s%s\n",
			       argv[optind], (unsigned long long)res.snapshots, (unsigned long long)res.packs,
			       cli_size(res.bytes_scanned, sz), (unsigned long long)res.blobs,
			       o.read_data ? " read and verified" : "",
			       res.warnings ? " (see warnings)" : "");
		}
		rc = FV_EXIT_OK;
	}
	fv_repo_close(r);
	return rc;
}
