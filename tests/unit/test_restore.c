/* Unit tests for backupd/restore: trees built by hand in a real repository
 * (temp dir), restored, and the result checked on disk. Covers holes,
 * hardlink groups, includes, hostile trees and hostile targets. */
#include "../../backupd/crypto.h"
#include "../../backupd/repo.h"
#include "../../backupd/restore.h"
#include "../../backupd/tree.h"
#include "../harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

struct fx {
	char dir[64]; /* everything of one test lives here */
	char repo[256];
	char target[256];
	struct fv_repo *r;
	struct fv_err e;
	/* collected by the callbacks */
	int warnings, items, progress_calls;
	struct fv_restore_progress last;
};

static int fx_init(struct fx *f)
{
	memset(f, 0, sizeof *f);
	if (fv_test_tmpdir(f->dir, sizeof f->dir, "restore") < 0 || fv_crypto_init() < 0)
		return -1;
	snprintf(f->repo, sizeof f->repo, "%s/repo", f->dir);
	snprintf(f->target, sizeof f->target, "%s/target", f->dir);
	struct fv_repo_create_opts o;
	fv_repo_create_opts_default(&o);
	o.kdf_ops = 1; /* tests need no brute-force resistance */
	o.kdf_mem = 8u << 20;
	if (fv_repo_create(f->repo, &o, "pw", 2, &f->e) < 0 ||
	    fv_repo_open(f->repo, FV_OPEN_WRITE, "pw", 2, &f->r, &f->e) < 0) {
		fprintf(stderr, "  repository: %s\n", f->e.msg);
		return -1;
	}
	return 0;
}

static void fx_fini(struct fx *f)
{
	fv_repo_close(f->r);
	if (f->dir[0])
		fv_test_rmtree(f->dir);
}

static void cb_warn(void *ud, const char *path, int code, const char *msg)
{
	struct fx *f = ud;
	f->warnings++;
	fprintf(stderr, "    (expected?) warning: %s: %s [%d]\n", path, msg, code);
}

static void cb_item(void *ud, const char *path, const struct fv_node *n)
{
	(void)path;
	(void)n;
	((struct fx *)ud)->items++;
}

static void cb_progress(void *ud, const struct fv_restore_progress *p)
{
	struct fx *f = ud;
	f->progress_calls++;
	f->last = *p;
	f->last.path = NULL;
}

static void opts_init(struct fx *f, struct fv_restore_opts *o)
{
	memset(o, 0, sizeof *o);
	o->target = f->target;
	o->warn = cb_warn;
	o->item = cb_item;
	o->ud = f;
}

/* ---- building trees and snapshots ---- */

static int put_data(struct fx *f, const void *p, size_t n, uint8_t id[FV_ID_LEN])
{
	fv_repo_id(f->r, p, n, id);
	return fv_repo_put(f->r, FV_OBJ_DATA, id, p, n, NULL, &f->e);
}

static int put_raw_tree(struct fx *f, const void *p, size_t n, uint8_t id[FV_ID_LEN])
{
	fv_repo_id(f->r, p, n, id);
	return fv_repo_put(f->r, FV_OBJ_TREE, id, p, n, NULL, &f->e);
}

/* Encode nodes (sorted here; names are literals, so nothing is freed). */
static int put_tree(struct fx *f, struct fv_node *nodes, uint32_t n, uint8_t id[FV_ID_LEN])
{
	struct fv_tree t = {nodes, n};
	struct fv_buf b = {0};
	fv_tree_sort(&t);
	int rc = fv_tree_encode(&t, &b);
	if (rc == 0)
		rc = put_raw_tree(f, b.data, b.len, id);
	fv_buf_free(&b);
	return rc;
}

static struct fv_node node_dir(const char *name, const uint8_t sub[FV_ID_LEN], uint32_t mode)
{
	struct fv_node n = {.name = (char *)name,
			    .type = FV_FT_DIR,
			    .mode = mode,
			    .nlink = 2,
			    .mtime_ns = 1500000000123456789LL};
	memcpy(n.subtree, sub, FV_ID_LEN);
	return n;
}

static struct fv_node node_file(const char *name, struct fv_chunkref *c, uint32_t nc, uint64_t size)
{
	return (struct fv_node){.name = (char *)name,
				.type = FV_FT_REG,
				.mode = 0640,
				.nlink = 1,
				.mtime_ns = 1600000000987654321LL,
				.size = size,
				.chunks = c,
				.nchunks = nc};
}

static struct fv_node node_link(const char *name, const char *target)
{
	return (struct fv_node){.name = (char *)name,
				.type = FV_FT_LNK,
				.mode = 0777,
				.nlink = 1,
				.mtime_ns = 1400000000000000000LL,
				.target = (char *)target};
}

/* A file whose content is the string s, in one chunk. */
static int small_file(struct fx *f, const char *name, const char *s, struct fv_chunkref *ref,
		      struct fv_node *out)
{
	ref->off = 0;
	ref->len = (uint32_t)strlen(s);
	*out = node_file(name, ref, 1, ref->len);
	return put_data(f, s, ref->len, ref->id);
}

static int save_snapshot(struct fx *f, const uint8_t root[FV_ID_LEN], struct fv_snapshot *s)
{
	memset(s, 0, sizeof *s);
	s->time_ns = 1700000000000000000LL;
	s->end_ns = s->time_ns + 1;
	s->host = (char *)"testhost";
	s->user = (char *)"tester";
	s->version = (char *)"test";
	static char *paths[] = {(char *)"/opt"};
	s->paths = paths;
	s->npaths = 1;
	memcpy(s->root, root, FV_ID_LEN);
	return fv_repo_snapshot_save(f->r, s, &f->e);
}

static char *tpath(struct fx *f, const char *rel)
{
	static char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", f->target, rel);
	return p;
}

static int read_all(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return (int)n;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* ---- tests ---- */

/* A test with a fixture that is removed whatever the body does (FV_REQUIRE
 * returns from the body only). */
#define FX_TEST(n)                                                         \
	static void fx_body_##n(struct fv_test_ctx *fv_t_, struct fx *fx); \
	FV_TEST(n)                                                         \
	{                                                                  \
		struct fx f;                                               \
		if (fx_init(&f) == 0)                                      \
			fx_body_##n(fv_t_, &f);                            \
		else                                                       \
			fv_t_->failures++;                                 \
		fx_fini(&f);                                               \
	}                                                                  \
	static void fx_body_##n(struct fv_test_ctx *fv_t_, struct fx *fx)

/* Check an engine call, printing its message when it fails. */
#define ENGINE_OK(call)                                                                                    \
	do {                                                                                               \
		if ((call) != 0) {                                                                         \
			fprintf(stderr, "  %s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, fx->e.msg); \
			fv_t_->failures++;                                                                 \
			return;                                                                            \
		}                                                                                          \
	} while (0)

FX_TEST(sparse_file_keeps_holes_and_metadata)
{
	enum { CH = 8192, GAP_AT = 1 << 20, SIZE = 3 << 20 };
	static char a[CH], b[CH];
	memset(a, 'a', sizeof a);
	memset(b, 'b', sizeof b);
	struct fv_chunkref refs[2] = {{.off = 0, .len = CH}, {.off = GAP_AT, .len = CH}};
	ENGINE_OK(put_data(fx, a, CH, refs[0].id));
	ENGINE_OK(put_data(fx, b, CH, refs[1].id));
	struct fv_node file = node_file("sparse", refs, 2, SIZE);
	uint8_t sub[FV_ID_LEN], root[FV_ID_LEN];
	ENGINE_OK(put_tree(fx, &file, 1, sub));
	struct fv_node d = node_dir("opt", sub, 0750);
	ENGINE_OK(put_tree(fx, &d, 1, root));
	struct fv_snapshot s;
	ENGINE_OK(save_snapshot(fx, root, &s));

	struct fv_restore_opts o;
	struct fv_restore_stats st;
	opts_init(fx, &o);
	o.verify = true;
	o.progress = cb_progress;
	int rc = fv_restore_run(fx->r, &s, &o, &st, &fx->e);
	FV_CHECK_EQ(rc, 0);
	if (rc)
		fprintf(stderr, "  %s\n", fx->e.msg);
	FV_CHECK_EQ(st.files, 1);
	FV_CHECK_EQ(st.dirs, 1);
	FV_CHECK_EQ(st.bytes, 2 * CH);
	FV_CHECK_EQ(st.verify_failures, 0);
	FV_CHECK_EQ(fx->warnings, 0);
	FV_CHECK(fx->progress_calls >= 2);
	FV_CHECK_EQ(fx->last.total_files, 1);
	FV_CHECK_EQ(fx->last.files, 1);
	FV_CHECK_EQ(fx->last.total_bytes, 2 * CH);
	FV_CHECK_EQ(fx->last.bytes, 2 * CH);

	struct stat sb;
	FV_REQUIRE(lstat(tpath(fx, "opt/sparse"), &sb) == 0);
	FV_CHECK(S_ISREG(sb.st_mode));
	FV_CHECK_EQ(sb.st_size, SIZE);
	FV_CHECK_EQ(sb.st_mode & 07777, 0640);
	FV_CHECK_EQ(sb.st_mtim.tv_sec, 1600000000);
	FV_CHECK_EQ(sb.st_mtim.tv_nsec, 987654321);
	FV_CHECK_EQ(sb.st_atim.tv_sec, 1600000000);
	/* Real holes: far fewer blocks than the size, and SEEK_HOLE finds them. */
	FV_CHECK((uint64_t)sb.st_blocks * 512 < 4 * CH);
	int fd = open(tpath(fx, "opt/sparse"), O_RDONLY);
	FV_REQUIRE(fd >= 0);
	FV_CHECK_EQ(lseek(fd, 0, SEEK_HOLE), CH);
	FV_CHECK_EQ(lseek(fd, CH, SEEK_DATA), GAP_AT);
	FV_CHECK_EQ(lseek(fd, GAP_AT, SEEK_HOLE), GAP_AT + CH);
	static char got[CH];
	FV_CHECK(pread(fd, got, CH, 0) == CH && memcmp(got, a, CH) == 0);
	FV_CHECK(pread(fd, got, CH, GAP_AT) == CH && memcmp(got, b, CH) == 0);
	FV_CHECK(pread(fd, got, CH, GAP_AT - CH) == CH && got[0] == 0 && got[CH - 1] == 0);
	FV_CHECK(pread(fd, got, CH, SIZE - CH) == CH && got[0] == 0 && got[CH - 1] == 0);
	close(fd);
	/* Directory metadata was set after its entries. */
	FV_REQUIRE(lstat(tpath(fx, "opt"), &sb) == 0);
	FV_CHECK_EQ(sb.st_mode & 07777, 0750);
	FV_CHECK_EQ(sb.st_mtim.tv_sec, 1500000000);
	FV_CHECK_EQ(sb.st_mtim.tv_nsec, 123456789);

	/* Restoring again over the result replaces the file in place. */
	rc = fv_restore_run(fx->r, &s, &o, &st, &fx->e);
	FV_CHECK_EQ(rc, 0);
	FV_CHECK(lstat(tpath(fx, "opt/sparse"), &sb) == 0 && sb.st_size == SIZE);
}

FX_TEST(hardlink_group_is_one_inode)
{
	struct fv_chunkref r1, r2, r3, r4;
	struct fv_node in[2], top[4];
	ENGINE_OK(small_file(fx, "d", "shared content\n", &r1, &in[0]));
	ENGINE_OK(small_file(fx, "lonely", "other\n", &r2, &in[1]));
	in[0].hlink = 42;
	in[0].nlink = 3;
	uint8_t sub[FV_ID_LEN], root[FV_ID_LEN];
	ENGINE_OK(put_tree(fx, in, 2, sub));
	ENGINE_OK(small_file(fx, "a", "shared content\n", &r3, &top[0]));
	ENGINE_OK(small_file(fx, "b", "shared content\n", &r4, &top[1]));
	top[0].hlink = top[1].hlink = 42;
	top[0].nlink = top[1].nlink = 3;
	top[2] = node_dir("c", sub, 0755);
	struct fv_chunkref r5;
	ENGINE_OK(small_file(fx, "e", "x", &r5, &top[3]));
	top[3].hlink = 43; /* a group of one */
	ENGINE_OK(put_tree(fx, top, 4, root));
	struct fv_snapshot s;
	ENGINE_OK(save_snapshot(fx, root, &s));

	struct fv_restore_opts o;
	struct fv_restore_stats st;
	opts_init(fx, &o);
	o.verify = true;
	int rc = fv_restore_run(fx->r, &s, &o, &st, &fx->e);
	FV_CHECK_EQ(rc, 0);
	FV_CHECK_EQ(st.files, 5);
	struct stat sa, sb2, sd, sl;
	FV_REQUIRE(lstat(tpath(fx, "a"), &sa) == 0);
	FV_REQUIRE(lstat(tpath(fx, "b"), &sb2) == 0);
	FV_REQUIRE(lstat(tpath(fx, "c/d"), &sd) == 0);
	FV_REQUIRE(lstat(tpath(fx, "c/lonely"), &sl) == 0);
	FV_CHECK(sa.st_ino == sb2.st_ino && sa.st_ino == sd.st_ino);
	FV_CHECK_EQ(sa.st_nlink, 3);
	FV_CHECK(sl.st_ino != sa.st_ino);
	FV_CHECK_EQ(sl.st_nlink, 1);
	char buf[64];
	FV_CHECK(read_all(tpath(fx, "c/d"), buf, sizeof buf) > 0 && strcmp(buf, "shared content\n") == 0);
	/* Only the first member's bytes were written. */
	FV_CHECK_EQ(st.bytes, strlen("shared content\n") + strlen("other\n") + 1);
}

/* opt/{keep/{x, y}, drop/z}, etc/p */
static int include_tree(struct fx *f, struct fv_snapshot *s)
{
	struct fv_chunkref rx, ry, rz, rp;
	struct fv_node keep[2], drop[1], opt[2], etc[1], top[2];
	uint8_t ik[FV_ID_LEN], idr[FV_ID_LEN], io[FV_ID_LEN], ie[FV_ID_LEN], root[FV_ID_LEN];
	if (small_file(f, "x", "X", &rx, &keep[0]) || small_file(f, "y", "Y", &ry, &keep[1]) ||
	    small_file(f, "z", "Z", &rz, &drop[0]) || small_file(f, "p", "P", &rp, &etc[0]))
		return -1;
	if (put_tree(f, keep, 2, ik) || put_tree(f, drop, 1, idr))
		return -1;
	opt[0] = node_dir("keep", ik, 0755);
	opt[1] = node_dir("drop", idr, 0755);
	if (put_tree(f, opt, 2, io) || put_tree(f, etc, 1, ie))
		return -1;
	top[0] = node_dir("opt", io, 0755);
	top[1] = node_dir("etc", ie, 0755);
	if (put_tree(f, top, 2, root))
		return -1;
	return save_snapshot(f, root, s);
}

FX_TEST(includes_select_paths)
{
	struct fv_snapshot s;
	ENGINE_OK(include_tree(fx, &s));
	struct fv_restore_opts o;
	struct fv_restore_stats st;
	struct stat sb;

	const char *inc1[] = {"/opt/keep/"};
	opts_init(fx, &o);
	o.includes = inc1;
	o.nincludes = 1;
	FV_CHECK_EQ(fv_restore_run(fx->r, &s, &o, &st, &fx->e), 0);
	FV_CHECK_EQ(st.matched, 1);
	FV_CHECK_EQ(st.files, 2);
	FV_CHECK_EQ(st.dirs, 2); /* opt (ancestor) and keep */
	FV_CHECK(lstat(tpath(fx, "opt/keep/x"), &sb) == 0);
	FV_CHECK(lstat(tpath(fx, "opt/keep/y"), &sb) == 0);
	FV_CHECK(lstat(tpath(fx, "opt/drop"), &sb) < 0 && errno == ENOENT);
	FV_CHECK(lstat(tpath(fx, "etc"), &sb) < 0 && errno == ENOENT);
	/* The ancestor got its metadata too. */
	FV_CHECK(lstat(tpath(fx, "opt"), &sb) == 0 && sb.st_mtim.tv_sec == 1500000000);

	/* A single file, and an include nested in another: both match. */
	const char *inc2[] = {"etc/p", "opt", "opt/keep/x"};
	o.includes = inc2;
	o.nincludes = 3;
	FV_CHECK_EQ(fv_restore_run(fx->r, &s, &o, &st, &fx->e), 0);
	FV_CHECK_EQ(st.matched, 3);
	FV_CHECK(lstat(tpath(fx, "opt/drop/z"), &sb) == 0);
	FV_CHECK(lstat(tpath(fx, "etc/p"), &sb) == 0);

	/* Includes matching nothing, including a path "below" a file. */
	const char *inc3[] = {"opt/keep", "nope", "opt/keep/x/deeper"};
	o.includes = inc3;
	o.nincludes = 3;
	/* They are looked up before anything is written: nothing is restored. */
	FV_CHECK_EQ(fv_restore_run(fx->r, &s, &o, &st, &fx->e), -ENOENT);
	FV_CHECK_EQ(st.matched, 0);
	FV_CHECK_EQ(st.files + st.dirs, 0);
	FV_CHECK(strstr(fx->e.msg, "nope") != NULL);
}

/* Encode a one-node tree with a placeholder name, then overwrite the name
 * bytes in the blob: fv_tree_encode refuses bad names, a hostile repository
 * does not ask it. */
static int put_hostile_tree(struct fx *f, const struct fv_node *n, const char *bad, uint8_t id[FV_ID_LEN])
{
	struct fv_tree t = {(struct fv_node *)n, 1};
	struct fv_buf b = {0};
	int rc = fv_tree_encode(&t, &b);
	size_t len = strlen(bad);
	uint8_t *p = rc ? NULL : memmem(b.data, b.len, n->name, len);
	if (!p || strlen(n->name) != len)
		rc = -1;
	else
		memcpy(p, bad, len);
	if (rc == 0)
		rc = put_raw_tree(f, b.data, b.len, id);
	fv_buf_free(&b);
	return rc;
}

FX_TEST(hostile_names_write_nothing_outside)
{
	/* The target sits two levels down, so "../../escape" would land in fx->dir. */
	snprintf(fx->target, sizeof fx->target, "%s/t1/t2", fx->dir);
	struct fv_chunkref ref;
	struct fv_node esc;
	ENGINE_OK(small_file(fx, "escape", "pwned", &ref, &esc));
	uint8_t inner[FV_ID_LEN];
	ENGINE_OK(put_tree(fx, &esc, 1, inner));

	static const struct {
		const char *placeholder, *bad;
		bool dir;
	} cases[] = {
		{"QQ", "..", true},                      /* a directory ".." holding "escape" */
		{"QQQQQQQQQQQQ", "../../escape", false}, /* a file named with slashes */
		{"QQQ", "a/b", false},
		{"Q", ".", true},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (int level = 0; level < 2; level++) { /* hostile root, hostile subtree */
			struct fv_node n = cases[i].dir ? node_dir(cases[i].placeholder, inner, 0755) : esc;
			if (!cases[i].dir)
				n.name = (char *)cases[i].placeholder;
			uint8_t id[FV_ID_LEN], root[FV_ID_LEN];
			ENGINE_OK(put_hostile_tree(fx, &n, cases[i].bad, id));
			if (level == 1) {
				struct fv_node d = node_dir("sub", id, 0755);
				ENGINE_OK(put_tree(fx, &d, 1, root));
			} else {
				memcpy(root, id, FV_ID_LEN);
			}
			struct fv_snapshot s;
			ENGINE_OK(save_snapshot(fx, root, &s));
			fv_test_rmtree(fx->target); /* from the last round */
			struct fv_restore_opts o;
			struct fv_restore_stats st;
			opts_init(fx, &o);
			int rc = fv_restore_run(fx->r, &s, &o, &st, &fx->e);
			FV_CHECK_EQ(rc, -EUCLEAN);
			FV_CHECK(strstr(fx->e.msg, "check") != NULL);
			FV_CHECK_EQ(st.files, 0);
			/* Nothing but repo and t1 in the test dir, nothing but t2 in t1. */
			char p[PATH_MAX];
			FV_CHECK_EQ(count_entries(fx->dir), 2);
			snprintf(p, sizeof p, "%s/t1", fx->dir);
			FV_CHECK_EQ(count_entries(p), 1);
			FV_CHECK_EQ(count_entries(fx->target), level);
		}
	}
}

FX_TEST(existing_symlinks_in_target_are_replaced_not_followed)
{
	char outside[256], victim[PATH_MAX];
	snprintf(outside, sizeof outside, "%s/outside-dir", fx->dir);
	snprintf(victim, sizeof victim, "%s/victim", outside);
	FV_REQUIRE(mkdir(outside, 0755) == 0);
	FV_REQUIRE(mkdir(fx->target, 0755) == 0);
	/* target/x -> outside (a directory in the snapshot), target/y -> victim
	 * (a file in the snapshot), target/z -> outside/new (a dangling one). */
	FV_REQUIRE(symlink(outside, tpath(fx, "x")) == 0);
	FV_REQUIRE(symlink(victim, tpath(fx, "y")) == 0);
	FV_REQUIRE(symlink("../outside-dir/new", tpath(fx, "z")) == 0);

	struct fv_chunkref r1, r2, r3;
	struct fv_node in, top[3];
	uint8_t sub[FV_ID_LEN], root[FV_ID_LEN];
	ENGINE_OK(small_file(fx, "file", "inside\n", &r1, &in));
	ENGINE_OK(put_tree(fx, &in, 1, sub));
	top[0] = node_dir("x", sub, 0755);
	ENGINE_OK(small_file(fx, "y", "new y\n", &r2, &top[1]));
	ENGINE_OK(small_file(fx, "z", "new z\n", &r3, &top[2]));
	ENGINE_OK(put_tree(fx, top, 3, root));
	struct fv_snapshot s;
	ENGINE_OK(save_snapshot(fx, root, &s));

	struct fv_restore_opts o;
	struct fv_restore_stats st;
	opts_init(fx, &o);
	FV_CHECK_EQ(fv_restore_run(fx->r, &s, &o, &st, &fx->e), 0);
	struct stat sb;
	FV_CHECK(lstat(tpath(fx, "x"), &sb) == 0 && S_ISDIR(sb.st_mode));
	FV_CHECK(lstat(tpath(fx, "y"), &sb) == 0 && S_ISREG(sb.st_mode));
	FV_CHECK(lstat(tpath(fx, "z"), &sb) == 0 && S_ISREG(sb.st_mode));
	char buf[64];
	FV_CHECK(read_all(tpath(fx, "x/file"), buf, sizeof buf) > 0 && strcmp(buf, "inside\n") == 0);
	FV_CHECK(read_all(tpath(fx, "y"), buf, sizeof buf) > 0 && strcmp(buf, "new y\n") == 0);
	FV_CHECK_EQ(count_entries(outside), 0);
}

FX_TEST(symlinks_restored_not_followed)
{
	char outside[256];
	snprintf(outside, sizeof outside, "%s/outside-dir", fx->dir);
	FV_REQUIRE(mkdir(outside, 0755) == 0);
	struct fv_node top[3];
	top[0] = node_link("a", outside);            /* absolute, to a real directory */
	top[1] = node_link("b", "dangling/nowhere"); /* relative, dangling */
	struct fv_chunkref r;
	ENGINE_OK(small_file(fx, "c", "c\n", &r, &top[2]));
	uint8_t root[FV_ID_LEN];
	ENGINE_OK(put_tree(fx, top, 3, root));
	struct fv_snapshot s;
	ENGINE_OK(save_snapshot(fx, root, &s));

	struct fv_restore_opts o;
	struct fv_restore_stats st;
	opts_init(fx, &o);
	o.owner = geteuid() == 0;
	FV_CHECK_EQ(fv_restore_run(fx->r, &s, &o, &st, &fx->e), 0);
	FV_CHECK_EQ(st.others, 2);
	char buf[PATH_MAX];
	struct stat sb;
	ssize_t n = readlink(tpath(fx, "a"), buf, sizeof buf - 1);
	FV_CHECK(n > 0 && (buf[n] = 0, strcmp(buf, outside) == 0));
	n = readlink(tpath(fx, "b"), buf, sizeof buf - 1);
	FV_CHECK(n > 0 && (buf[n] = 0, strcmp(buf, "dangling/nowhere") == 0));
	FV_CHECK(lstat(tpath(fx, "a"), &sb) == 0 && S_ISLNK(sb.st_mode));
	FV_CHECK_EQ(sb.st_mtim.tv_sec, 1400000000); /* set on the link itself */
	FV_CHECK_EQ(count_entries(outside), 0);
	/* The link target's directory kept its own time. */
	FV_CHECK(stat(outside, &sb) == 0 && sb.st_mtim.tv_sec != 1400000000);
	/* Restore again: the existing links are replaced, never followed. */
	FV_CHECK_EQ(fv_restore_run(fx->r, &s, &o, &st, &fx->e), 0);
	FV_CHECK_EQ(count_entries(outside), 0);
}

FX_TEST(dry_run_writes_nothing)
{
	struct fv_snapshot s;
	ENGINE_OK(include_tree(fx, &s));
	struct fv_restore_opts o;
	struct fv_restore_stats st;
	opts_init(fx, &o);
	o.dry_run = true;
	o.progress = cb_progress;
	FV_CHECK_EQ(fv_restore_run(fx->r, &s, &o, &st, &fx->e), 0);
	FV_CHECK_EQ(fx->items, 8); /* opt keep x y drop z etc p */
	FV_CHECK_EQ(st.files, 4);
	FV_CHECK_EQ(st.dirs, 4);
	FV_CHECK_EQ(st.bytes, 0);
	FV_CHECK_EQ(fx->last.total_files, 4);
	FV_CHECK_EQ(fx->last.files, 4);
	struct stat sb;
	FV_CHECK(lstat(fx->target, &sb) < 0 && errno == ENOENT);
}

FX_TEST(damaged_chunk_and_special_files)
{
	static const char data[] = "0123456789";
	struct fv_chunkref bad = {.off = 0, .len = 20}; /* the blob has 10 bytes */
	ENGINE_OK(put_data(fx, data, 10, bad.id));
	struct fv_chunkref ok;
	struct fv_node top[4];
	top[0] = node_file("bad", &bad, 1, 20);
	ENGINE_OK(small_file(fx, "good", "fine\n", &ok, &top[1]));
	top[2] = (struct fv_node){.name = (char *)"fifo",
				  .type = FV_FT_FIFO,
				  .mode = 0620,
				  .nlink = 1,
				  .mtime_ns = 1000000000LL};
	top[3] = (struct fv_node){.name = (char *)"sock", .type = FV_FT_SOCK, .mode = 0755, .nlink = 1};
	uint8_t root[FV_ID_LEN];
	ENGINE_OK(put_tree(fx, top, 4, root));
	struct fv_snapshot s;
	ENGINE_OK(save_snapshot(fx, root, &s));
	struct fv_restore_opts o;
	struct fv_restore_stats st;
	opts_init(fx, &o);
	FV_CHECK_EQ(fv_restore_run(fx->r, &s, &o, &st, &fx->e), -EUCLEAN);
	FV_CHECK_EQ(fx->warnings, 1);
	FV_CHECK_EQ(st.errors, 1);
	FV_CHECK_EQ(st.others, 2);
	struct stat sb;
	FV_CHECK(lstat(tpath(fx, "good"), &sb) == 0 && sb.st_size == 5);
	FV_CHECK(lstat(tpath(fx, "bad"), &sb) == 0 && sb.st_size == 20); /* a hole where it was */
	FV_CHECK(lstat(tpath(fx, "fifo"), &sb) == 0 && S_ISFIFO(sb.st_mode) && (sb.st_mode & 07777) == 0620 &&
		 sb.st_mtim.tv_sec == 1);
	FV_CHECK(lstat(tpath(fx, "sock"), &sb) < 0);
}

/* A large file (written through dwrite's O_DIRECT windows) with a chunk
 * whose blob is short (found by a worker) and one whose blob is missing
 * (found by the walker), in one window: the rest of the file is exact, both
 * ranges read as zeros, never as bytes the reused window buffer held
 * before (with one worker, the file's own first window). */
FX_TEST(large_file_with_damaged_chunks_keeps_the_rest)
{
	enum { CH = 256 * 1024, N = 13 };
	uint8_t *a = malloc(2 * CH), *big = malloc((size_t)N * CH);
	FV_REQUIRE(a && big);
	memset(a, 0xaa, 2 * CH);
	uint64_t x = 12345;
	for (size_t i = 0; i < (size_t)N * CH; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		big[i] = (uint8_t)x;
	}
	struct fv_chunkref ca[8], cb[N];
	for (int i = 0; i < 8; i++) {
		ca[i] = (struct fv_chunkref){.off = (uint64_t)i * CH / 4, .len = CH / 4};
		ENGINE_OK(put_data(fx, a + ca[i].off, CH / 4, ca[i].id));
	}
	uint64_t size = (uint64_t)(N - 1) * CH + 100;
	for (int i = 0; i < N; i++) {
		cb[i] = (struct fv_chunkref){.off = (uint64_t)i * CH, .len = i == N - 1 ? 100 : CH};
		if (i == 5) /* the tree says CH bytes, the blob has 10 */
			ENGINE_OK(put_data(fx, big + cb[i].off, 10, cb[i].id));
		else if (i == 6) /* never stored (the same window as 5) */
			memset(cb[i].id, 0x5a, FV_ID_LEN);
		else
			ENGINE_OK(put_data(fx, big + cb[i].off, cb[i].len, cb[i].id));
	}
	struct fv_node top[2] = {node_file("a", ca, 8, 2 * CH), node_file("big", cb, N, size)};
	uint8_t root[FV_ID_LEN];
	ENGINE_OK(put_tree(fx, top, 2, root));
	struct fv_snapshot s;
	ENGINE_OK(save_snapshot(fx, root, &s));
	struct fv_restore_opts o;
	struct fv_restore_stats st;
	opts_init(fx, &o);
	o.threads = 1; /* one worker: big's windows reuse buffers that held bytes */
	FV_CHECK_EQ(fv_restore_run(fx->r, &s, &o, &st, &fx->e), -EUCLEAN);
	FV_CHECK_EQ(fx->warnings, 2);
	FV_CHECK_EQ(st.errors, 1);
	memset(big + 5 * CH, 0, CH);
	memset(big + 6 * CH, 0, CH);
	uint8_t *got = malloc(size + 1);
	int fd = open(tpath(fx, "big"), O_RDONLY);
	FV_REQUIRE(got && fd >= 0);
	FV_CHECK_EQ(read(fd, got, size + 1), (ssize_t)size);
	FV_CHECK(memcmp(got, big, size) == 0);
	close(fd);
	free(got);
	free(a);
	free(big);
}

FX_TEST(locked_directory_and_owner)
{
	struct fv_chunkref r;
	struct fv_node in;
	ENGINE_OK(small_file(fx, "f", "locked\n", &r, &in));
	in.uid = 1234;
	in.gid = 5678;
	in.mode = 04755; /* setuid survives the chown */
	uint8_t sub[FV_ID_LEN], root[FV_ID_LEN];
	ENGINE_OK(put_tree(fx, &in, 1, sub));
	struct fv_node d = node_dir("locked", sub, 0);
	ENGINE_OK(put_tree(fx, &d, 1, root));
	struct fv_snapshot s;
	ENGINE_OK(save_snapshot(fx, root, &s));
	struct fv_restore_opts o;
	struct fv_restore_stats st;
	opts_init(fx, &o);
	o.owner = geteuid() == 0;
	FV_CHECK_EQ(fv_restore_run(fx->r, &s, &o, &st, &fx->e), 0);
	struct stat sb;
	FV_CHECK(lstat(tpath(fx, "locked"), &sb) == 0 && (sb.st_mode & 07777) == 0);
	FV_REQUIRE(chmod(tpath(fx, "locked"), 0700) == 0); /* to look inside without root */
	FV_CHECK(lstat(tpath(fx, "locked/f"), &sb) == 0);
	FV_CHECK_EQ(sb.st_mode & 07777, 04755);
	if (o.owner) {
		FV_CHECK_EQ(sb.st_uid, 1234);
		FV_CHECK_EQ(sb.st_gid, 5678);
	}
	/* A second restore into the locked directory (even without root). */
	FV_REQUIRE(chmod(tpath(fx, "locked"), 0) == 0);
	FV_CHECK_EQ(fv_restore_run(fx->r, &s, &o, &st, &fx->e), 0);
	FV_CHECK_EQ(fx->warnings, 0);
	FV_CHECK(lstat(tpath(fx, "locked"), &sb) == 0 && (sb.st_mode & 07777) == 0);
	chmod(tpath(fx, "locked"), 0700); /* so the clean-up can remove it */
	FV_CHECK(lstat(tpath(fx, "locked/f"), &sb) == 0 && sb.st_size == 7);
}

/* A blob whose bytes do not hash to its id but whose seal is valid (what a
 * writer bug between hashing and sealing would store): only --verify
 * recomputes the id as it reads, so only verify refuses it (and names it as
 * damage, not as a bad write); without it the AEAD tag stands for the id
 * (docs/repository-format.md, "What a read checks"). check --read-data
 * always finds it. */
FX_TEST(blob_not_matching_its_id_refused_with_verify)
{
	static const char data[] = "not what was hashed";
	struct fv_chunkref ref = {.off = 0, .len = sizeof data - 1};
	memset(ref.id, 0x5a, FV_ID_LEN);
	ENGINE_OK(fv_repo_put(fx->r, FV_OBJ_DATA, ref.id, data, ref.len, NULL, &fx->e));
	struct fv_node top = node_file("f", &ref, 1, ref.len);
	uint8_t root[FV_ID_LEN];
	ENGINE_OK(put_tree(fx, &top, 1, root));
	struct fv_snapshot s;
	ENGINE_OK(save_snapshot(fx, root, &s));
	struct fv_restore_opts o;
	struct fv_restore_stats st;
	char got[64];
	opts_init(fx, &o);
	FV_CHECK_EQ(fv_restore_run(fx->r, &s, &o, &st, &fx->e), 0);
	FV_CHECK_EQ(read_all(tpath(fx, "f"), got, sizeof got), (int)ref.len);
	FV_CHECK(strcmp(got, data) == 0);
	FV_CHECK_EQ(fx->warnings, 0);
	o.verify = true;
	FV_CHECK_EQ(fv_restore_run(fx->r, &s, &o, &st, &fx->e), -EUCLEAN);
	FV_CHECK_EQ(fx->warnings, 1);
	FV_CHECK_EQ(st.errors, 1);
	FV_CHECK_EQ(st.verify_failures, 0);
	FV_CHECK(strstr(fx->e.msg, "damaged in the repository") != NULL);
}

FV_TESTS(sparse_file_keeps_holes_and_metadata, hardlink_group_is_one_inode, includes_select_paths,
	 hostile_names_write_nothing_outside, existing_symlinks_in_target_are_replaced_not_followed,
	 symlinks_restored_not_followed, dry_run_writes_nothing, damaged_chunk_and_special_files,
	 locked_directory_and_owner, blob_not_matching_its_id_refused_with_verify,
	 large_file_with_damaged_chunks_keeps_the_rest)
