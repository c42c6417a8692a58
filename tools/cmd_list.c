/* fabvault list, fabvault ls */
#include <getopt.h>
#include <grp.h>
#include <json-c/json.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "cli.h"
#include "opts.h"

static const char list_help[] =
	"Usage: fabvault list REPO [OPTIONS]\n"
	"List the snapshots of repository REPO, oldest first: id, time, host, files,\n"
	"size, tags.\n\n"
	"Options:\n"
	"      --json             print the snapshots as a JSON array on stdout\n"
	"      --passphrase-file F  read the passphrase from file F\n"
	"  -h, --help             this help\n\n" FV_EXIT_CODES_HELP;

static json_object *snap_json(const struct fv_snapshot *s)
{
	char hex[2 * FV_ID_LEN + 1], root[2 * FV_ID_LEN + 1];
	json_object *j = json_object_new_object(), *paths = json_object_new_array(),
		    *tags = json_object_new_array();
	fv_hex(s->id, FV_ID_LEN, hex);
	fv_hex(s->root, FV_ID_LEN, root);
	json_object_object_add(j, "id", json_object_new_string(hex));
	json_object_object_add(j, "time_ns", json_object_new_int64(s->time_ns));
	json_object_object_add(j, "end_ns", json_object_new_int64(s->end_ns));
	cli_json_str(j, "host", s->host);
	cli_json_str(j, "user", s->user);
	bool valid;
	for (uint32_t i = 0; i < s->npaths; i++)
		json_object_array_add(paths, cli_json_strval(s->paths[i], &valid));
	for (uint32_t i = 0; i < s->ntags; i++)
		json_object_array_add(tags, cli_json_strval(s->tags[i], &valid));
	json_object_object_add(j, "paths", paths);
	json_object_object_add(j, "tags", tags);
	json_object_object_add(j, "root", json_object_new_string(root));
	json_object_object_add(j, "files", json_object_new_uint64(s->stats.files));
	json_object_object_add(j, "dirs", json_object_new_uint64(s->stats.dirs));
	json_object_object_add(j, "bytes", json_object_new_uint64(s->stats.bytes));
	json_object_object_add(j, "new_bytes", json_object_new_uint64(s->stats.new_bytes));
	json_object_object_add(j, "stored_bytes", json_object_new_uint64(s->stats.stored_bytes));
	json_object_object_add(j, "errors", json_object_new_uint64(s->stats.errors));
	json_object_object_add(j, "partial", json_object_new_boolean(s->flags & FV_SNAP_PARTIAL));
	cli_json_str(j, "program_version", s->version);
	return j;
}

int cmd_list(struct cli *c, int argc, char **argv)
{
	static const struct option lo[] = {FV_COMMON_LONGOPTS};
	struct fv_repo *r = NULL;
	struct fv_snapshot *v = NULL;
	size_t n = 0, nd = 0;
	struct fv_err e = {0};
	int opt, rc;
	while ((opt = getopt_long(argc, argv, FV_COMMON_SHORTOPTS, lo, NULL)) != -1) {
		rc = cli_common_opt(c, opt, "list", list_help);
		if (rc >= 0)
			return rc;
	}
	if (argc - optind != 1)
		return cli_usage(c, "list", "expected exactly one REPO argument");
	rc = cli_open_repo(c, argv[optind], 0, &r);
	if (rc)
		return rc;
	if (fv_repo_snapshots(r, &v, &n, &nd, &e) < 0) {
		rc = cli_fail(c, &e, false);
		goto out;
	}
	if (c->json) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(a, snap_json(&v[i]));
		puts(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PRETTY));
		json_object_put(a);
	} else {
		printf("%-8s  %-19s  %-16s  %9s  %10s  %s\n", "ID", "TIME", "HOST", "FILES", "SIZE", "TAGS");
		for (size_t i = 0; i < n; i++) {
			char hex[2 * FV_ID_LEN + 1], t[32], sz[32], tags[512] = "";
			size_t tl = 0;
			fv_hex(v[i].id, FV_ID_LEN, hex);
			for (uint32_t k = 0; k < v[i].ntags && tl < sizeof tags - 1; k++)
				tl += (size_t)snprintf(tags + tl, sizeof tags - tl, "%s%s", k ? "," : "",
						       v[i].tags[k]);
			printf("%.8s  %-19s  %-16.16s  %9llu  %10s  %s%s\n", hex, cli_time(v[i].time_ns, t),
			       v[i].host, (unsigned long long)v[i].stats.files,
			       cli_size(v[i].stats.bytes, sz), tags,
			       v[i].flags & FV_SNAP_PARTIAL ? " (partial)" : "");
		}
	}
	rc = FV_EXIT_OK;
	if (nd) {
		fv_log(&c->log, LOG_ERR,
		       "%zu snapshot files are damaged and not listed (last: %s); run fabvault check", nd,
		       e.msg);
		rc = FV_EXIT_DAMAGED;
	}
out:
	fv_repo_snapshots_free(v, n);
	fv_repo_close(r);
	return rc;
}

/* ---- ls ---- */

static const char ls_help[] =
	"Usage: fabvault ls REPO SNAP [PATH] [OPTIONS]\n"
	"List the entries of snapshot SNAP (an id, a unique id prefix, or 'latest')\n"
	"under PATH (default: everything), recursively, one path per line, like\n"
	"borg list and restic ls. Unusual bytes in names are shown escaped (\\n, \\ooo).\n\n"
	"Options:\n"
	"  -l, --long             mode, owner, size, modification time, link target\n"
	"      --json             one JSON object per entry (JSON lines) on stdout\n"
	"      --passphrase-file F  read the passphrase from file F\n"
	"  -h, --help             this help\n\n" FV_EXIT_CODES_HELP;

struct lsctx {
	struct cli *c;
	struct fv_repo *r;
	bool lng;
	struct fv_err e;
	char path[8192];
	size_t len;
};

static void print_escaped(const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '\\')
			fputs("\\\\", stdout);
		else if (ch == '\n')
			fputs("\\n", stdout);
		else if (ch == '\t')
			fputs("\\t", stdout);
		else if (ch < 32 || ch == 127)
			printf("\\%03o", ch);
		else
			putchar(ch);
	}
}

static void mode_string(const struct fv_node *n, char out[11])
{
	static const char types[] = "?-dlcbps";
	out[0] = types[n->type <= 7 ? n->type : 0];
	const char *rwx = "rwxrwxrwx";
	for (int i = 0; i < 9; i++)
		out[1 + i] = (n->mode & (0400u >> i)) ? rwx[i] : '-';
	if (n->mode & 04000)
		out[3] = out[3] == 'x' ? 's' : 'S';
	if (n->mode & 02000)
		out[6] = out[6] == 'x' ? 's' : 'S';
	if (n->mode & 01000)
		out[9] = out[9] == 'x' ? 't' : 'T';
	out[10] = 0;
}

static const char *type_name(uint8_t t)
{
	static const char *const names[] = {"?",       "file",     "dir",  "symlink",
					    "chardev", "blockdev", "fifo", "socket"};
	return names[t <= 7 ? t : 0];
}

static void ls_entry(struct lsctx *x, const struct fv_node *n)
{
	if (x->c->json) {
		json_object *j = json_object_new_object();
		cli_json_str(j, "path", x->path);
		json_object_object_add(j, "type", json_object_new_string(type_name(n->type)));
		json_object_object_add(j, "mode", json_object_new_int((int)n->mode));
		json_object_object_add(j, "uid", json_object_new_int64(n->uid));
		json_object_object_add(j, "gid", json_object_new_int64(n->gid));
		json_object_object_add(j, "size", json_object_new_uint64(n->size));
		json_object_object_add(j, "mtime_ns", json_object_new_int64(n->mtime_ns));
		if (n->target)
			cli_json_str(j, "target", n->target);
		if (n->hlink)
			json_object_object_add(j, "hardlink_group", json_object_new_uint64(n->hlink));
		if (n->flags & FV_NODE_INCONSISTENT)
			json_object_object_add(j, "inconsistent", json_object_new_boolean(1));
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
		return;
	}
	if (x->lng) {
		char m[11], t[32], owner[64], group[64];
		struct passwd *pw = getpwuid(n->uid);
		struct group *gr = getgrgid(n->gid);
		snprintf(owner, sizeof owner, "%s", pw ? pw->pw_name : "");
		snprintf(group, sizeof group, "%s", gr ? gr->gr_name : "");
		if (!pw)
			snprintf(owner, sizeof owner, "%u", n->uid);
		if (!gr)
			snprintf(group, sizeof group, "%u", n->gid);
		mode_string(n, m);
		printf("%s %-8s %-8s %12llu %s ", m, owner, group, (unsigned long long)n->size,
		       cli_time(n->mtime_ns, t));
	}
	print_escaped(x->path);
	if (x->lng && n->target) {
		fputs(" -> ", stdout);
		print_escaped(n->target);
	}
	putchar('\n');
}

static int ls_walk(struct lsctx *x, const uint8_t id[FV_ID_LEN], int depth)
{
	struct fv_tree t = {0};
	int rc = fv_repo_tree(x->r, id, &t, &x->e);
	if (rc < 0 || depth > 4096) {
		fv_tree_free(&t);
		return rc < 0 ? rc : fv_err_set(&x->e, -ELOOP, "directories nested too deep");
	}
	for (uint32_t i = 0; i < t.n && rc == 0; i++) {
		size_t old = x->len, nl = strlen(t.nodes[i].name);
		if (old + nl + 2 >= sizeof x->path)
			continue;
		x->path[x->len++] = '/';
		memcpy(x->path + x->len, t.nodes[i].name, nl + 1);
		x->len += nl;
		ls_entry(x, &t.nodes[i]);
		if (t.nodes[i].type == FV_FT_DIR)
			rc = ls_walk(x, t.nodes[i].subtree, depth + 1);
		x->len = old;
		x->path[old] = 0;
	}
	fv_tree_free(&t);
	return rc;
}

int cmd_ls(struct cli *c, int argc, char **argv)
{
	static const struct option lo[] = {{"long", no_argument, NULL, 'l'}, FV_COMMON_LONGOPTS};
	struct lsctx x = {.c = c};
	struct fv_snapshot s = {0};
	int opt, rc;
	while ((opt = getopt_long(argc, argv, "l" FV_COMMON_SHORTOPTS, lo, NULL)) != -1) {
		if (opt == 'l') {
			x.lng = true;
			continue;
		}
		rc = cli_common_opt(c, opt, "ls", ls_help);
		if (rc >= 0)
			return rc;
	}
	if (argc - optind < 2 || argc - optind > 3)
		return cli_usage(c, "ls", "expected REPO SNAP [PATH]");
	rc = cli_open_repo(c, argv[optind], 0, &x.r);
	if (rc)
		return rc;
	if (fv_repo_snapshot_find(x.r, argv[optind + 1], &s, &x.e) < 0) {
		rc = cli_fail(c, &x.e, false);
		goto out;
	}
	/* descend to PATH component by component */
	uint8_t cur[FV_ID_LEN];
	memcpy(cur, s.root, FV_ID_LEN);
	const char *want = argc - optind == 3 ? argv[optind + 2] : "";
	char *dup = strdup(want), *save = NULL;
	bool is_dir = true;
	rc = FV_EXIT_OK;
	for (char *comp = strtok_r(dup, "/", &save); comp && rc == FV_EXIT_OK;
	     comp = strtok_r(NULL, "/", &save)) {
		struct fv_tree t = {0};
		if (!is_dir || fv_repo_tree(x.r, cur, &t, &x.e) < 0) {
			if (!is_dir)
				fv_err_set(&x.e, -ENOENT, "%s: not a directory in snapshot %s", want,
					   argv[optind + 1]);
			rc = cli_fail(c, &x.e, false);
			fv_tree_free(&t);
			break;
		}
		const struct fv_node *n = fv_tree_find(&t, comp);
		if (!n) {
			fv_err_set(&x.e, -ENOENT, "%s: no such path in snapshot %s", want, argv[optind + 1]);
			rc = cli_fail(c, &x.e, false);
		} else {
			x.len += (size_t)snprintf(x.path + x.len, sizeof x.path - x.len, "/%s", comp);
			is_dir = n->type == FV_FT_DIR;
			if (is_dir)
				memcpy(cur, n->subtree, FV_ID_LEN);
			else if (!strtok_r(NULL, "/", &save) && x.len < sizeof x.path)
				ls_entry(&x, n); /* PATH names a file: list just it */
			else
				rc = cli_fail(c,
					      &(struct fv_err){-ENOENT, "path component is not a directory"},
					      false);
		}
		fv_tree_free(&t);
		if (!is_dir)
			break;
	}
	free(dup);
	if (rc == FV_EXIT_OK && is_dir && ls_walk(&x, cur, 0) < 0)
		rc = cli_fail(c, &x.e, false);
out:
	fv_snapshot_free(&s);
	fv_repo_close(x.r);
	return rc;
}
