/* Unit tests for fs/export: the server side of docs/protocol.md on a real
 * directory tree in a temporary directory (every file kind, a link out of
 * the tree, a file replaced on disk), called directly and through
 * fv_export_request, and once end to end over the transport on TCP
 * loopback. */
#include "../../fs/export.h"
#include "../harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../../common/buf.h"
#include "../../fs/proto.h"
#include "../../transport/tp.h"

#define FILE_SIZE 100000u
#define BIG_DIR_N 3000

/* ---- the tree --------------------------------------------------------------- */

struct tree {
	char root[64];
	struct fv_export *x;
	bool xattr; /* the file system takes user.* attributes */
};

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 8));
}

static int write_file(const char *path, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	uint8_t buf[4096];
	for (size_t off = 0; off < n;) {
		size_t k = n - off < sizeof buf ? n - off : sizeof buf;
		for (size_t i = 0; i < k; i++)
			buf[i] = pattern(off + i);
		if (write(fd, buf, k) != (ssize_t)k) {
			close(fd);
			return -1;
		}
		off += k;
	}
	return close(fd);
}

static int at(const struct tree *t, char *out, const char *rel)
{
	return snprintf(out, 512, "%s/%s", t->root, rel);
}

/* root/ file hard empty dir/ dir/inner link -> /etc dirlink -> dir fifo */
static bool tree_make(struct tree *t, size_t max_handles)
{
	char p[512], q[512];
	if (fv_test_tmpdir(t->root, sizeof t->root, "export") < 0)
		return false;
	at(t, p, "file");
	if (write_file(p, FILE_SIZE) < 0)
		return false;
	at(t, q, "hard");
	if (link(p, q) < 0)
		return false;
	t->xattr = setxattr(p, "user.fv", "hello", 5, 0) == 0;
	at(t, p, "empty");
	if (write_file(p, 0) < 0)
		return false;
	at(t, p, "dir");
	if (mkdir(p, 0755) < 0)
		return false;
	at(t, p, "dir/inner");
	if (write_file(p, 10) < 0)
		return false;
	at(t, p, "link");
	if (symlink("/etc", p) < 0)
		return false;
	at(t, p, "dirlink");
	if (symlink("dir", p) < 0)
		return false;
	at(t, p, "fifo");
	if (mkfifo(p, 0644) < 0)
		return false;
	struct fv_export_opts o = {.root = t->root, .max_handles = max_handles};
	struct fv_err e = {0};
	return fv_export_open(&o, &t->x, &e) == 0;
}

/* dir/big/ with BIG_DIR_N empty files (only where needed: it is slow) */
static bool make_big(struct tree *t)
{
	char p[512];
	at(t, p, "dir/big");
	if (mkdir(p, 0755) < 0)
		return false;
	for (int i = 0; i < BIG_DIR_N; i++) {
		char rel[64];
		snprintf(rel, sizeof rel, "dir/big/entry-%05d", i);
		at(t, p, rel);
		int fd = open(p, O_WRONLY | O_CREAT, 0644);
		if (fd < 0)
			return false;
		close(fd);
	}
	return true;
}

static void tree_free(struct tree *t)
{
	fv_export_close(t->x);
	t->x = NULL;
	if (fv_test_rmtree(t->root) != 0)
		fprintf(stderr, "cannot remove %s\n", t->root);
}

static int lookup(struct tree *t, uint64_t parent, const char *name, struct fv_fs_attr *a)
{
	return fv_export_lookup(t->x, parent, name, strlen(name), a);
}

/* ---- requests through fv_export_request ---------------------------------------- */

struct call {
	struct fv_buf req, rep;
	uint8_t *bulk;
	uint32_t bulk_len;
	int status;
	struct fv_rd rd; /* over the result fields */
};

static void *test_bulk(void *ud, size_t n)
{
	struct call *c = ud;
	free(c->bulk);
	c->bulk = malloc(n);
	return c->bulk;
}

/* Run c->req with a bulk capacity of cap; c->rd reads the result fields. */
static int run(struct tree *t, struct call *c, uint32_t cap)
{
	struct fv_export_bulk b = {.cap = cap, .get = test_bulk, .ud = c};
	c->rep.len = 0;
	int rc = fv_export_request(t->x, 0, c->req.data, c->req.len, &c->rep, &b);
	c->bulk_len = b.len;
	fv_rd_init(&c->rd, c->rep.data, c->rep.len);
	c->status = (int32_t)fv_rd_u32(&c->rd);
	if (c->status != rc)
		return -EBADE;
	if (rc < 0 && c->rep.len != 4)
		return -EBADE; /* an error carries no result fields */
	return rc;
}

static void call_free(struct call *c)
{
	fv_buf_free(&c->req);
	fv_buf_free(&c->rep);
	free(c->bulk);
}

static void req_begin(struct call *c, uint8_t op)
{
	c->req.len = 0;
	fv_fs_req_begin(&c->req, op);
}

/* ---- tests ---------------------------------------------------------------------- */

FV_TEST(every_kind)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 0));
	struct fv_fs_attr a, b;
	struct stat st;
	char p[512];

	FV_CHECK_EQ(fv_export_getattr(t.x, FV_FS_ROOT, &a), 0);
	FV_CHECK(S_ISDIR(a.mode) && a.node == FV_FS_ROOT);

	FV_CHECK_EQ(lookup(&t, FV_FS_ROOT, "file", &a), 0);
	at(&t, p, "file");
	FV_REQUIRE(lstat(p, &st) == 0);
	FV_CHECK(S_ISREG(a.mode) && a.size == FILE_SIZE && a.node == st.st_ino && a.nlink == 2);
	FV_CHECK_EQ(fv_export_getattr(t.x, a.node, &b), 0);
	FV_CHECK(b.node == a.node && b.size == a.size && b.mtime_ns == a.mtime_ns);

	/* a hard link is the same node */
	FV_CHECK_EQ(lookup(&t, FV_FS_ROOT, "hard", &b), 0);
	FV_CHECK_EQ(b.node, a.node);

	FV_CHECK_EQ(lookup(&t, FV_FS_ROOT, "dir", &a), 0);
	FV_CHECK(S_ISDIR(a.mode));
	FV_CHECK_EQ(lookup(&t, a.node, "inner", &b), 0);
	FV_CHECK(S_ISREG(b.mode) && b.size == 10);

	FV_CHECK_EQ(lookup(&t, FV_FS_ROOT, "link", &a), 0);
	FV_CHECK(S_ISLNK(a.mode) && a.size == 4);
	FV_CHECK_EQ(lookup(&t, FV_FS_ROOT, "fifo", &a), 0);
	FV_CHECK(S_ISFIFO(a.mode));
	/* opening a FIFO would block: refused at once */
	uint64_t h;
	FV_CHECK_EQ(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &h, &b), -ENXIO);
	FV_CHECK_EQ(lookup(&t, FV_FS_ROOT, "missing", &a), -ENOENT);

	/* READDIRPLUS of the root: every kind, no "." or "..", one lookup each */
	struct fv_buf out = {0};
	size_t before = fv_export_nodes(t.x);
	FV_REQUIRE(fv_export_readdirplus(t.x, FV_FS_ROOT, 0, FV_FS_MAX_DIRBYTES, &out) == 0);
	struct fv_rd rd;
	fv_rd_init(&rd, out.data, out.len);
	FV_CHECK_EQ(fv_rd_u8(&rd), 1);
	uint32_t n = fv_rd_u32(&rd);
	FV_CHECK_EQ(n, 7); /* file hard empty dir link dirlink fifo */
	int seen = 0;
	for (uint32_t i = 0; i < n; i++) {
		fv_fs_attr_get(&rd, &a);
		(void)fv_rd_u64(&rd);
		char *name = NULL;
		FV_REQUIRE(fv_rd_str(&rd, 255, &name, NULL) == 0);
		FV_CHECK(strcmp(name, ".") && strcmp(name, ".."));
		FV_CHECK_EQ(fv_export_getattr(t.x, a.node, &b), 0);
		if (!strcmp(name, "fifo"))
			seen |= S_ISFIFO(a.mode) ? 1 : 0;
		if (!strcmp(name, "link"))
			seen |= S_ISLNK(a.mode) ? 2 : 0;
		if (!strcmp(name, "dir"))
			seen |= S_ISDIR(a.mode) ? 4 : 0;
		if (!strcmp(name, "file"))
			seen |= S_ISREG(a.mode) && a.size == FILE_SIZE ? 8 : 0;
		free(name);
	}
	FV_CHECK(fv_rd_ok(&rd) && fv_rd_left(&rd) == 0);
	FV_CHECK_EQ(seen, 15);
	FV_CHECK_EQ(fv_export_nodes(t.x), before + 2); /* "empty" and "dirlink" were not known yet */
	fv_buf_free(&out);

	struct fv_export_statfs sf;
	FV_CHECK_EQ(fv_export_statfs(t.x, FV_FS_ROOT, &sf), 0);
	FV_CHECK(sf.bsize > 0 && sf.namemax >= 255);
	tree_free(&t);
}

FV_TEST(read_offsets)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 0));
	struct fv_fs_attr a, b;
	uint64_t h;
	uint32_t got;
	uint8_t *buf = malloc(FILE_SIZE + 100);
	FV_REQUIRE(buf && lookup(&t, FV_FS_ROOT, "file", &a) == 0);
	FV_REQUIRE(fv_export_open_node(t.x, 0, a.node, O_RDONLY | O_NONBLOCK | O_NOATIME | O_LARGEFILE, &h,
				       &b) == 0);
	FV_CHECK(b.node == a.node && b.size == FILE_SIZE);
	FV_CHECK_EQ(fv_export_handles(t.x), 1);
	static const uint64_t offs[] = {0, 1, 4095, 4096, 65537, FILE_SIZE - 10};
	for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
		FV_CHECK_EQ(fv_export_read(t.x, h, offs[i], 5000, buf, &got), 0);
		uint32_t want = FILE_SIZE - offs[i] < 5000 ? (uint32_t)(FILE_SIZE - offs[i]) : 5000;
		FV_CHECK_EQ(got, want);
		bool ok = true;
		for (uint32_t k = 0; k < got; k++)
			ok &= buf[k] == pattern(offs[i] + k);
		FV_CHECK(ok);
	}
	/* the whole file at once, more asked than there is */
	FV_CHECK_EQ(fv_export_read(t.x, h, 0, FILE_SIZE + 100, buf, &got), 0);
	FV_CHECK_EQ(got, FILE_SIZE);
	FV_CHECK(buf[FILE_SIZE - 1] == pattern(FILE_SIZE - 1));
	/* at and past the end: nothing */
	FV_CHECK_EQ(fv_export_read(t.x, h, FILE_SIZE, 10, buf, &got), 0);
	FV_CHECK_EQ(got, 0);
	FV_CHECK_EQ(fv_export_read(t.x, h, 1ull << 40, 10, buf, &got), 0);
	FV_CHECK_EQ(got, 0);
	FV_CHECK_EQ(fv_export_read(t.x, h, 1ull << 63, 10, buf, &got), -EINVAL);
	FV_CHECK_EQ(fv_export_read(t.x, h, 0, 0, buf, &got), 0);
	FV_CHECK_EQ(fv_export_release(t.x, h), 0);
	FV_CHECK_EQ(fv_export_read(t.x, h, 0, 10, buf, &got), -EBADF);
	FV_CHECK_EQ(fv_export_release(t.x, h), -EBADF);
	FV_CHECK_EQ(fv_export_handles(t.x), 0);
	/* an empty file */
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "empty", &a) == 0);
	FV_REQUIRE(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &h, &b) == 0);
	FV_CHECK_EQ(fv_export_read(t.x, h, 0, 10, buf, &got), 0);
	FV_CHECK_EQ(got, 0);
	FV_CHECK_EQ(fv_export_release(t.x, h), 0);
	free(buf);
	tree_free(&t);
}

FV_TEST(links_not_followed)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 0));
	struct fv_fs_attr a, b;
	char target[FV_FS_MAX_LINK];
	size_t len = 0;
	uint64_t h;
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "link", &a) == 0);
	FV_CHECK(S_ISLNK(a.mode));
	FV_CHECK_EQ(fv_export_readlink(t.x, a.node, target, sizeof target, &len), 0);
	FV_CHECK(len == 4 && !memcmp(target, "/etc", 4));
	/* nothing beneath a link: /etc/passwd is not reachable */
	FV_CHECK_EQ(lookup(&t, a.node, "passwd", &b), -ENOTDIR);
	FV_CHECK_EQ(fv_export_readdirplus(t.x, a.node, 0, 4096, &(struct fv_buf){0}), -ENOTDIR);
	FV_CHECK_EQ(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &h, &b), -ELOOP);
	/* the getattr of the link is the link's, not /etc's */
	FV_CHECK_EQ(fv_export_getattr(t.x, a.node, &b), 0);
	FV_CHECK(S_ISLNK(b.mode));
	/* a link to a directory inside the export is a link too */
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "dirlink", &a) == 0);
	FV_CHECK(S_ISLNK(a.mode));
	FV_CHECK_EQ(lookup(&t, a.node, "inner", &b), -ENOTDIR);
	/* readlink of what is no link */
	FV_CHECK_EQ(fv_export_readlink(t.x, FV_FS_ROOT, target, sizeof target, &len), -EINVAL);
	if (t.xattr) {
		FV_CHECK_EQ(lookup(&t, FV_FS_ROOT, "link", &a), 0);
		uint32_t n;
		FV_CHECK_EQ(fv_export_getxattr(t.x, a.node, "user.fv", target, sizeof target, &n),
			    -EOPNOTSUPP);
	}
	tree_free(&t);
}

FV_TEST(bad_names)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 0));
	struct fv_fs_attr a;
	static const char *const bad[] = {"", ".", "..", "/", "dir/inner", "/etc", "../etc"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		FV_CHECK_EQ(lookup(&t, FV_FS_ROOT, bad[i], &a), -EINVAL);
	FV_CHECK_EQ(fv_export_lookup(t.x, FV_FS_ROOT, "fi\0le", 5, &a), -EINVAL);
	char longname[300];
	memset(longname, 'a', sizeof longname);
	FV_CHECK_EQ(fv_export_lookup(t.x, FV_FS_ROOT, longname, 256, &a), -EINVAL);
	FV_CHECK_EQ(fv_export_lookup(t.x, FV_FS_ROOT, longname, 255, &a), -ENOENT);
	/* the same through a request: a name is checked, not a protocol error */
	struct call c = {0};
	req_begin(&c, FV_FS_LOOKUP);
	fv_buf_u64(&c.req, FV_FS_ROOT);
	fv_buf_str(&c.req, "..", 2);
	FV_CHECK_EQ(run(&t, &c, 0), -EINVAL);
	call_free(&c);
	tree_free(&t);
}

FV_TEST(crafted_ids)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 0));
	struct fv_fs_attr a;
	struct stat st;
	char p[512], buf[64];
	size_t len;
	uint32_t n;
	uint64_t h;
	struct fv_export_statfs sf;
	struct fv_buf out = {0};
	/* the real inode number of a file never looked up is still unknown */
	at(&t, p, "dir/inner");
	FV_REQUIRE(lstat(p, &st) == 0);
	static uint64_t ids[] = {0, 2, 12345678, UINT64_MAX, 1ull << 63, 0};
	ids[5] = st.st_ino;
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		FV_CHECK_EQ(fv_export_getattr(t.x, ids[i], &a), -ESTALE);
		FV_CHECK_EQ(lookup(&t, ids[i], "x", &a), -ESTALE);
		FV_CHECK_EQ(fv_export_readdirplus(t.x, ids[i], 0, 4096, &out), -ESTALE);
		FV_CHECK_EQ(fv_export_open_node(t.x, 0, ids[i], O_RDONLY, &h, &a), -ESTALE);
		FV_CHECK_EQ(fv_export_readlink(t.x, ids[i], buf, sizeof buf, &len), -ESTALE);
		FV_CHECK_EQ(fv_export_statfs(t.x, ids[i], &sf), -ESTALE);
		FV_CHECK_EQ(fv_export_getxattr(t.x, ids[i], "user.fv", buf, sizeof buf, &n), -ESTALE);
		FV_CHECK_EQ(fv_export_listxattr(t.x, ids[i], buf, sizeof buf, &n), -ESTALE);
		FV_CHECK_EQ(fv_export_forget(t.x, ids[i], 1), 0);
	}
	FV_CHECK_EQ(out.len, 0);
	/* crafted handles */
	static const uint64_t hs[] = {0, 1, 2, 4096, 4097, UINT64_MAX, 1ull << 32 | 1};
	for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
		FV_CHECK_EQ(fv_export_read(t.x, hs[i], 0, sizeof buf, buf, &n), -EBADF);
		FV_CHECK_EQ(fv_export_release(t.x, hs[i]), -EBADF);
	}
	tree_free(&t);
}

FV_TEST(read_only)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 0));
	struct fv_fs_attr a, b;
	uint64_t h;
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &a) == 0);
	static const uint32_t wflags[] = {O_WRONLY,           O_RDWR,
					  O_RDONLY | O_TRUNC, O_RDONLY | O_APPEND,
					  O_RDONLY | O_CREAT, O_WRONLY | O_CREAT | O_EXCL};
	for (size_t i = 0; i < sizeof wflags / sizeof wflags[0]; i++)
		FV_CHECK_EQ(fv_export_open_node(t.x, 0, a.node, wflags[i], &h, &b), -EROFS);
	FV_CHECK_EQ(fv_export_handles(t.x), 0);
	/* a directory is not opened by OPEN */
	FV_CHECK_EQ(fv_export_open_node(t.x, 0, FV_FS_ROOT, O_RDONLY, &h, &b), -EISDIR);
	/* every write-type op, whatever follows the head */
	struct call c = {0};
	for (int op = FV_FS_WRITE_OPS_FIRST; op <= FV_FS_WRITE_OPS_LAST; op++) {
		req_begin(&c, (uint8_t)op);
		fv_buf_u64(&c.req, a.node);
		fv_buf_str(&c.req, "x", 1);
		FV_CHECK_EQ(run(&t, &c, 0), -EROFS);
		req_begin(&c, (uint8_t)op);
		FV_CHECK_EQ(run(&t, &c, 0), -EROFS);
	}
	req_begin(&c, FV_FS_OPEN);
	fv_buf_u64(&c.req, a.node);
	fv_buf_u32(&c.req, O_WRONLY);
	FV_CHECK_EQ(run(&t, &c, 0), -EROFS);
	call_free(&c);
	struct stat st;
	char p[512];
	at(&t, p, "file");
	FV_CHECK(stat(p, &st) == 0 && st.st_size == FILE_SIZE);
	tree_free(&t);
}

FV_TEST(handle_limit)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 8));
	struct fv_fs_attr a, b;
	uint64_t h[9];
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &a) == 0);
	for (int i = 0; i < 8; i++)
		FV_CHECK_EQ(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &h[i], &b), 0);
	FV_CHECK_EQ(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &h[8], &b), -EMFILE);
	FV_CHECK_EQ(fv_export_handles(t.x), 8);
	FV_CHECK_EQ(fv_export_release(t.x, h[3]), 0);
	FV_CHECK_EQ(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &h[8], &b), 0);
	/* the slot is reused, the old handle stays dead */
	FV_CHECK(h[8] != h[3]);
	uint8_t buf[16];
	uint32_t got;
	FV_CHECK_EQ(fv_export_read(t.x, h[3], 0, sizeof buf, buf, &got), -EBADF);
	FV_CHECK_EQ(fv_export_read(t.x, h[8], 0, sizeof buf, buf, &got), 0);
	FV_CHECK_EQ(got, sizeof buf);
	for (int i = 0; i < 9; i++)
		if (i != 3)
			FV_CHECK_EQ(fv_export_release(t.x, h[i]), 0);
	FV_CHECK_EQ(fv_export_handles(t.x), 0);
	/* the default limit is the protocol's */
	tree_free(&t);
	FV_REQUIRE(tree_make(&t, 0));
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &a) == 0);
	uint64_t *all = calloc(FV_FS_MAX_HANDLES, sizeof *all);
	FV_REQUIRE(all);
	int opened = 0;
	for (int i = 0; i < FV_FS_MAX_HANDLES; i++)
		opened += fv_export_open_node(t.x, 0, a.node, O_RDONLY, &all[i], &b) == 0;
	FV_CHECK_EQ(opened, FV_FS_MAX_HANDLES);
	FV_CHECK_EQ(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &h[0], &b), -EMFILE);
	for (int i = 0; i < FV_FS_MAX_HANDLES; i++)
		fv_export_release(t.x, all[i]);
	free(all);
	/* per client: 3 each of 8 in all; one client cannot take them all,
	 * and a released handle is its client's again */
	fv_export_close(t.x);
	struct fv_export_opts o = {.root = t.root, .max_handles = 8, .client_handles = 3};
	struct fv_err e = {0};
	FV_REQUIRE(fv_export_open(&o, &t.x, &e) == 0);
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &a) == 0);
	uint64_t c1[4], c7[3], c0[3];
	for (int i = 0; i < 3; i++)
		FV_CHECK_EQ(fv_export_open_node(t.x, 1, a.node, O_RDONLY, &c1[i], &b), 0);
	FV_CHECK_EQ(fv_export_open_node(t.x, 1, a.node, O_RDONLY, &c1[3], &b), -EMFILE);
	for (int i = 0; i < 3; i++) /* a client number far beyond the others: fine */
		FV_CHECK_EQ(fv_export_open_node(t.x, 700, a.node, O_RDONLY, &c7[i], &b), 0);
	FV_CHECK_EQ(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &c0[0], &b), 0);
	FV_CHECK_EQ(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &c0[1], &b), 0);
	/* 8 open: the server-wide limit, though client 0 has room */
	FV_CHECK_EQ(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &c0[2], &b), -EMFILE);
	FV_CHECK_EQ(fv_export_release(t.x, c1[0]), 0);
	FV_CHECK_EQ(fv_export_open_node(t.x, 700, a.node, O_RDONLY, &c7[0], &b), -EMFILE);
	FV_CHECK_EQ(fv_export_open_node(t.x, 1, a.node, O_RDONLY, &c1[0], &b), 0);
	/* forget_all gives every client its room back */
	FV_CHECK_EQ(fv_export_forget_all(t.x, NULL, NULL), 0);
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &a) == 0);
	for (int i = 0; i < 3; i++)
		FV_CHECK_EQ(fv_export_open_node(t.x, 1, a.node, O_RDONLY, &c1[i], &b), 0);
	tree_free(&t);
}

FV_TEST(forget)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 0));
	struct fv_fs_attr a, b;
	size_t base = fv_export_nodes(t.x);
	FV_CHECK_EQ(base, 1);
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &a) == 0);
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "hard", &b) == 0); /* same node, 2 lookups */
	FV_CHECK_EQ(fv_export_nodes(t.x), 2);
	FV_CHECK_EQ(fv_export_forget(t.x, a.node, 1), 0);
	FV_CHECK_EQ(fv_export_getattr(t.x, a.node, &b), 0);
	FV_CHECK_EQ(fv_export_forget(t.x, a.node, 1), 0);
	FV_CHECK_EQ(fv_export_getattr(t.x, a.node, &b), -ESTALE);
	FV_CHECK_EQ(fv_export_nodes(t.x), 1);
	/* more than were counted: gone, no underflow */
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "dir", &a) == 0);
	FV_CHECK_EQ(fv_export_forget(t.x, a.node, 1000), 0);
	FV_CHECK_EQ(lookup(&t, a.node, "inner", &b), -ESTALE);
	/* an open handle outlives its node */
	uint64_t h;
	uint8_t buf[8];
	uint32_t got;
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &a) == 0);
	FV_REQUIRE(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &h, &b) == 0);
	fv_export_forget(t.x, a.node, 1);
	FV_CHECK_EQ(fv_export_read(t.x, h, 0, sizeof buf, buf, &got), 0);
	FV_CHECK_EQ(got, sizeof buf);
	fv_export_release(t.x, h);
	/* the root stays */
	FV_CHECK_EQ(fv_export_forget(t.x, FV_FS_ROOT, 100), 0);
	FV_CHECK_EQ(fv_export_getattr(t.x, FV_FS_ROOT, &b), 0);
	/* through a request: several at once, all checked first */
	struct call c = {0};
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &a) == 0);
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "empty", &b) == 0);
	req_begin(&c, FV_FS_FORGET);
	fv_buf_u32(&c.req, 2);
	fv_buf_u64(&c.req, a.node);
	fv_buf_u64(&c.req, 1);
	fv_buf_u64(&c.req, b.node);
	fv_buf_u64(&c.req, 1);
	FV_CHECK_EQ(run(&t, &c, 0), 0);
	FV_CHECK_EQ(fv_export_nodes(t.x), 1);
	call_free(&c);
	/* forget_all (a crashed client's leftovers): every node but the root
	 * and every handle, as a restart would; then everything is found again
	 * by name */
	struct fv_fs_attr d, f;
	uint64_t h2;
	size_t nn = 9, nh = 9;
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "dir", &d) == 0);
	FV_REQUIRE(lookup(&t, d.node, "inner", &b) == 0);
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &f) == 0);
	FV_REQUIRE(fv_export_open_node(t.x, 0, f.node, O_RDONLY, &h, &b) == 0);
	FV_REQUIRE(fv_export_open_node(t.x, 0, f.node, O_RDONLY, &h2, &b) == 0);
	FV_CHECK_EQ(fv_export_forget_all(t.x, &nn, &nh), 0);
	FV_CHECK_EQ(nn, 3);
	FV_CHECK_EQ(nh, 2);
	FV_CHECK_EQ(fv_export_nodes(t.x), 1);
	FV_CHECK_EQ(fv_export_handles(t.x), 0);
	FV_CHECK_EQ(fv_export_dir_fds(t.x), 1);
	FV_CHECK_EQ(fv_export_getattr(t.x, f.node, &b), -ESTALE);
	FV_CHECK_EQ(lookup(&t, d.node, "inner", &b), -ESTALE);
	FV_CHECK_EQ(fv_export_read(t.x, h, 0, sizeof buf, buf, &got), -EBADF);
	FV_CHECK_EQ(fv_export_getattr(t.x, FV_FS_ROOT, &b), 0);
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "dir", &d) == 0);
	FV_CHECK_EQ(lookup(&t, d.node, "inner", &b), 0);
	FV_REQUIRE(fv_export_open_node(t.x, 0, f.node, O_RDONLY, &h, &b) == -ESTALE);
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &f) == 0);
	FV_REQUIRE(fv_export_open_node(t.x, 0, f.node, O_RDONLY, &h, &b) == 0);
	FV_CHECK_EQ(fv_export_read(t.x, h, 0, sizeof buf, buf, &got), 0);
	FV_CHECK_EQ(got, sizeof buf);
	fv_export_release(t.x, h);
	FV_CHECK_EQ(fv_export_forget_all(t.x, &nn, &nh), 0);
	FV_CHECK_EQ(nn, 3);
	FV_CHECK_EQ(nh, 0);
	FV_CHECK_EQ(fv_export_forget_all(t.x, NULL, NULL), 0); /* nothing left: fine */
	tree_free(&t);
}

FV_TEST(replaced_on_disk)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 0));
	struct fv_fs_attr a, b;
	char p[512], q[512];
	uint64_t h;
	uint8_t buf[16];
	uint32_t got;
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &a) == 0);
	FV_REQUIRE(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &h, &b) == 0);
	/* "file" is replaced by a new file (rename over it), "hard" removed */
	at(&t, p, "new");
	FV_REQUIRE(write_file(p, 33) == 0);
	at(&t, q, "file");
	FV_REQUIRE(rename(p, q) == 0);
	at(&t, p, "hard");
	FV_REQUIRE(unlink(p) == 0);
	/* the old node is stale (its inode is gone); the name finds the new one */
	FV_CHECK_EQ(fv_export_getattr(t.x, a.node, &b), -ESTALE);
	FV_CHECK_EQ(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &h, &b), -ESTALE);
	FV_CHECK_EQ(lookup(&t, FV_FS_ROOT, "file", &b), 0);
	FV_CHECK(b.node != a.node && b.size == 33);
	/* an open handle still reads the old contents, as a local open file would */
	FV_CHECK_EQ(fv_export_read(t.x, h, 0, sizeof buf, buf, &got), 0);
	FV_CHECK(got == sizeof buf && buf[5] == pattern(5));
	fv_export_release(t.x, h);
	/* a directory removed under a known node */
	at(&t, p, "gone");
	FV_REQUIRE(mkdir(p, 0755) == 0);
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "gone", &a) == 0);
	FV_REQUIRE(rmdir(p) == 0);
	FV_CHECK_EQ(fv_export_getattr(t.x, a.node, &b), -ESTALE);
	FV_CHECK(lookup(&t, a.node, "x", &b) < 0);
	tree_free(&t);
}

FV_TEST(malformed)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 0));
	struct call c = {0};
	/* empty, short heads */
	for (size_t n = 0; n < 4; n++) {
		c.req.len = 0;
		fv_buf_put(&c.req, "\x02\x01\x00\x00", n);
		FV_CHECK_EQ(run(&t, &c, 0), -EPROTO);
	}
	/* wrong version, reserved bytes set */
	c.req.len = 0;
	fv_buf_put(&c.req, "\x02\x02\x00\x00\x01\0\0\0\0\0\0\0", 12);
	FV_CHECK_EQ(run(&t, &c, 0), -EPROTO);
	c.req.len = 0;
	fv_buf_put(&c.req, "\x02\x01\x01\x00\x01\0\0\0\0\0\0\0", 12);
	FV_CHECK_EQ(run(&t, &c, 0), -EPROTO);
	/* right: GETATTR of the root; then truncated and with a byte more */
	req_begin(&c, FV_FS_GETATTR);
	fv_buf_u64(&c.req, FV_FS_ROOT);
	FV_CHECK_EQ(run(&t, &c, 0), 0);
	FV_CHECK_EQ(c.rep.len, 4 + FV_FS_ATTR_SIZE);
	c.req.len--;
	FV_CHECK_EQ(run(&t, &c, 0), -EPROTO);
	c.req.len++;
	fv_buf_u8(&c.req, 0);
	FV_CHECK_EQ(run(&t, &c, 0), -EPROTO);
	/* unknown op */
	req_begin(&c, 99);
	FV_CHECK_EQ(run(&t, &c, 0), -ENOSYS);
	req_begin(&c, 0);
	FV_CHECK_EQ(run(&t, &c, 0), -ENOSYS);
	/* a name's length beyond the request */
	req_begin(&c, FV_FS_LOOKUP);
	fv_buf_u64(&c.req, FV_FS_ROOT);
	fv_buf_u32(&c.req, 1000);
	fv_buf_put(&c.req, "file", 4);
	FV_CHECK_EQ(run(&t, &c, 0), -EPROTO);
	req_begin(&c, FV_FS_LOOKUP);
	fv_buf_u64(&c.req, FV_FS_ROOT);
	fv_buf_u32(&c.req, UINT32_MAX);
	FV_CHECK_EQ(run(&t, &c, 0), -EPROTO);
	/* limits: READDIRPLUS max_bytes, READ size (protocol and bulk), FORGET count */
	req_begin(&c, FV_FS_READDIRPLUS);
	fv_buf_u64(&c.req, FV_FS_ROOT);
	fv_buf_u64(&c.req, 0);
	fv_buf_u32(&c.req, FV_FS_MAX_DIRBYTES + 1);
	FV_CHECK_EQ(run(&t, &c, 0), -EPROTO);
	req_begin(&c, FV_FS_READ);
	fv_buf_u64(&c.req, 1);
	fv_buf_u64(&c.req, 0);
	fv_buf_u32(&c.req, FV_FS_MAX_READ + 1);
	FV_CHECK_EQ(run(&t, &c, UINT32_MAX), -EPROTO);
	req_begin(&c, FV_FS_READ);
	fv_buf_u64(&c.req, 1);
	fv_buf_u64(&c.req, 0);
	fv_buf_u32(&c.req, 4097);
	FV_CHECK_EQ(run(&t, &c, 4096), -EPROTO);
	req_begin(&c, FV_FS_FORGET);
	fv_buf_u32(&c.req, FV_FS_MAX_FORGET + 1);
	for (uint32_t i = 0; i <= FV_FS_MAX_FORGET; i++) {
		fv_buf_u64(&c.req, 5);
		fv_buf_u64(&c.req, 1);
	}
	FV_CHECK_EQ(run(&t, &c, 0), -EPROTO);
	/* a FORGET whose count does not match its entries forgets nothing */
	struct fv_fs_attr a;
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &a) == 0);
	req_begin(&c, FV_FS_FORGET);
	fv_buf_u32(&c.req, 2);
	fv_buf_u64(&c.req, a.node);
	fv_buf_u64(&c.req, 1);
	FV_CHECK_EQ(run(&t, &c, 0), -EPROTO);
	FV_CHECK_EQ(fv_export_getattr(t.x, a.node, &a), 0);
	/* GETXATTR beyond XATTR_SIZE_MAX */
	req_begin(&c, FV_FS_GETXATTR);
	fv_buf_u64(&c.req, FV_FS_ROOT);
	fv_buf_str(&c.req, "user.x", 6);
	fv_buf_u32(&c.req, FV_FS_MAX_XATTR + 1);
	FV_CHECK_EQ(run(&t, &c, 0), -EPROTO);
	call_free(&c);
	tree_free(&t);
}

FV_TEST(readdir_cookies)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 0) && make_big(&t));
	struct fv_fs_attr a;
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "dir", &a) == 0);
	FV_REQUIRE(lookup(&t, a.node, "big", &a) == 0);
	size_t base = fv_export_nodes(t.x);
	static const uint32_t sizes[] = {FV_FS_MAX_DIRBYTES, 4096, 200};
	struct call c = {0};
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		char *seen = calloc(BIG_DIR_N, 1);
		FV_REQUIRE(seen);
		uint64_t cookie = 0;
		int total = 0, batches = 0, dups = 0;
		bool eof = false, ok = true;
		while (!eof && batches < 10000) {
			req_begin(&c, FV_FS_READDIRPLUS);
			fv_buf_u64(&c.req, a.node);
			fv_buf_u64(&c.req, cookie);
			fv_buf_u32(&c.req, sizes[s]);
			if (run(&t, &c, 0) != 0) {
				ok = false;
				break;
			}
			batches++;
			eof = fv_rd_u8(&c.rd);
			uint32_t n = fv_rd_u32(&c.rd);
			ok &= n <= FV_FS_MAX_DIRENTS && c.rep.len - 9 <= sizes[s] && (n > 0 || eof);
			for (uint32_t i = 0; i < n; i++) {
				struct fv_fs_attr e;
				char *name = NULL;
				int k = -1;
				fv_fs_attr_get(&c.rd, &e);
				cookie = fv_rd_u64(&c.rd);
				if (fv_rd_str(&c.rd, 255, &name, NULL) < 0 ||
				    sscanf(name, "entry-%d", &k) != 1 || k < 0 || k >= BIG_DIR_N) {
					ok = false;
				} else {
					dups += seen[k];
					seen[k] = 1;
					total++;
				}
				free(name);
			}
			ok &= fv_rd_ok(&c.rd) && fv_rd_left(&c.rd) == 0;
		}
		FV_CHECK(ok);
		FV_CHECK_EQ(total, BIG_DIR_N);
		FV_CHECK_EQ(dups, 0);
		FV_CHECK(batches >= BIG_DIR_N / (int)FV_FS_MAX_DIRENTS);
		/* every entry registered once, whatever the batches */
		FV_CHECK_EQ(fv_export_nodes(t.x), base + BIG_DIR_N);
		free(seen);
	}
	/* a buffer too small for one entry */
	struct fv_buf out = {0};
	FV_CHECK_EQ(fv_export_readdirplus(t.x, a.node, 0, 50, &out), -EINVAL);
	FV_CHECK_EQ(out.len, 0);
	/* a cookie past the end: an empty, final batch */
	FV_CHECK_EQ(fv_export_readdirplus(t.x, FV_FS_ROOT, INT64_MAX, 4096, &out), 0);
	FV_CHECK(out.len == 5 && out.data[0] == 1);
	fv_buf_free(&out);
	call_free(&c);
	tree_free(&t);
}

/* OPEN_INLINE: the first bytes along, no handle when they are the whole
 * file; the reply through fv_export_request and its decoder's rules. Run
 * as part of "requests" (FV_TESTS takes 16 cases). */
FV_TEST(open_inline)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 2));
	struct call c = {0};
	struct fv_fs_attr a, b;
	struct fv_fs_open_inline o;
	uint64_t h, counts[FV_EXPORT_OPS];
	uint32_t len, got;
	uint8_t *buf = malloc(FV_FS_MAX_INLINE);
	FV_REQUIRE(buf && lookup(&t, FV_FS_ROOT, "file", &a) == 0);
	/* a file larger than the limit: its first bytes and a handle for the rest */
	FV_CHECK_EQ(fv_export_open_inline(t.x, 0, a.node, O_RDONLY, FV_FS_MAX_INLINE, &h, &b, buf, &len), 0);
	FV_CHECK(h != 0 && len == FV_FS_MAX_INLINE && b.size == FILE_SIZE && b.node == a.node);
	bool ok = true;
	for (uint32_t k = 0; k < len; k++)
		ok &= buf[k] == pattern(k);
	FV_CHECK(ok);
	FV_CHECK_EQ(fv_export_handles(t.x), 1);
	FV_CHECK_EQ(fv_export_read(t.x, h, len, 100, buf, &got), 0);
	FV_CHECK(got == 100 && buf[0] == pattern(len));
	FV_CHECK_EQ(fv_export_release(t.x, h), 0);
	/* small files: exactly the limit asked is whole, one byte less is not */
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "dir", &a) == 0);
	FV_REQUIRE(lookup(&t, a.node, "inner", &a) == 0);
	FV_CHECK_EQ(fv_export_open_inline(t.x, 0, a.node, O_RDONLY, 10, &h, &b, buf, &len), 0);
	FV_CHECK(h == 0 && len == 10 && b.size == 10 && buf[9] == pattern(9));
	FV_CHECK_EQ(fv_export_handles(t.x), 0);
	FV_CHECK_EQ(fv_export_open_inline(t.x, 0, a.node, O_RDONLY, 9, &h, &b, buf, &len), 0);
	FV_CHECK(h != 0 && len == 9);
	FV_CHECK_EQ(fv_export_release(t.x, h), 0);
	/* max_inline 0 is OPEN: always a handle */
	FV_CHECK_EQ(fv_export_open_inline(t.x, 0, a.node, O_RDONLY, 0, &h, &b, buf, &len), 0);
	FV_CHECK(h != 0 && len == 0);
	FV_CHECK_EQ(fv_export_release(t.x, h), 0);
	/* an empty file is whole with no bytes; whole files take no handle,
	 * even at the handle limit */
	uint64_t h1, h2;
	FV_REQUIRE(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &h1, &b) == 0);
	FV_REQUIRE(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &h2, &b) == 0);
	FV_CHECK_EQ(fv_export_open_inline(t.x, 0, a.node, O_RDONLY, 9, &h, &b, buf, &len), -EMFILE);
	FV_CHECK_EQ(fv_export_open_inline(t.x, 0, a.node, O_RDONLY, 10, &h, &b, buf, &len), 0);
	FV_CHECK(h == 0 && len == 10);
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "empty", &a) == 0);
	FV_CHECK_EQ(fv_export_open_inline(t.x, 0, a.node, O_RDONLY, 100, &h, &b, buf, &len), 0);
	FV_CHECK(h == 0 && len == 0 && b.size == 0);
	fv_export_release(t.x, h1);
	fv_export_release(t.x, h2);
	/* the errors of OPEN */
	FV_CHECK_EQ(fv_export_open_inline(t.x, 0, FV_FS_ROOT, O_RDONLY, 100, &h, &b, buf, &len), -EISDIR);
	FV_CHECK_EQ(fv_export_open_inline(t.x, 0, a.node, O_RDWR, 100, &h, &b, buf, &len), -EROFS);
	FV_CHECK_EQ(fv_export_open_inline(t.x, 0, 12345, O_RDONLY, 100, &h, &b, buf, &len), -ESTALE);

	/* through fv_export_request, decoded as the client does */
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &a) == 0);
	req_begin(&c, FV_FS_OPEN_INLINE);
	fv_buf_u64(&c.req, a.node);
	fv_buf_u32(&c.req, O_RDONLY);
	fv_buf_u32(&c.req, FV_FS_MAX_INLINE);
	FV_CHECK_EQ(c.req.len, 20);
	FV_REQUIRE(run(&t, &c, 0) == 0);
	FV_CHECK_EQ(c.rep.len, 65536);
	FV_CHECK_EQ(fv_fs_open_inline_get(&c.rd, FV_FS_MAX_INLINE, &o), 0);
	FV_CHECK(o.handle != 0 && o.len == FV_FS_MAX_INLINE && o.data[1000] == pattern(1000));
	FV_CHECK_EQ(fv_export_release(t.x, o.handle), 0);
	/* a limit beyond a control message, short and long requests */
	fv_put_le32(c.req.data + 16, FV_FS_MAX_INLINE + 1);
	FV_CHECK_EQ(run(&t, &c, 0), -EPROTO);
	fv_put_le32(c.req.data + 16, 5);
	c.req.len--;
	FV_CHECK_EQ(run(&t, &c, 0), -EPROTO);
	c.req.len++;
	fv_buf_u8(&c.req, 0);
	FV_CHECK_EQ(run(&t, &c, 0), -EPROTO);
	c.req.len--;
	FV_REQUIRE(run(&t, &c, 0) == 0);
	FV_CHECK_EQ(c.rep.len, FV_FS_OPEN_INLINE_FIXED + 5);
	FV_CHECK_EQ(fv_fs_open_inline_get(&c.rd, 5, &o), 0);
	FV_CHECK_EQ(fv_export_release(t.x, o.handle), 0);
	fv_export_op_counts(t.x, counts);
	FV_CHECK_EQ(counts[FV_FS_OPEN_INLINE], 5);
	FV_CHECK(counts[0] == 0 && counts[FV_FS_OPEN] == 0);

	/* the decoder refuses replies that break the rules */
	struct fv_buf r = {0};
	struct fv_rd rd;
	static const uint8_t bytes[4] = {1, 2, 3, 4};
	struct {
		uint64_t handle, size;
		uint32_t mode, len, max;
		int extra, want;
	} cases[] = {
		{0, 4, S_IFREG | 0644, 4, 4, 0, 0},        /* whole, no handle */
		{7, 10, S_IFREG | 0644, 4, 4, 0, 0},       /* first bytes and a handle */
		{7, 4, S_IFREG | 0644, 4, 4, 0, -EPROTO},  /* a handle with the whole file */
		{0, 10, S_IFREG | 0644, 4, 4, 0, -EPROTO}, /* no handle without it */
		{0, 4, S_IFREG | 0644, 4, 3, 0, -EPROTO},  /* more than asked */
		{7, 3, S_IFREG | 0644, 4, 4, 0, -EPROTO},  /* more than the size */
		{0, 4, S_IFDIR | 0755, 4, 4, 0, -EPROTO},  /* not a regular file */
		{0, 4, S_IFREG | 0644, 4, 4, 1, -EPROTO},  /* a byte left over */
		{0, 4, S_IFREG | 0644, 4, 4, -1, -EPROTO}, /* a byte short */
		{0, 0, S_IFREG | 0644, 0, 0, 0, 0},        /* empty */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fv_fs_open_inline w = {.handle = cases[i].handle,
					      .attr = {.size = cases[i].size, .mode = cases[i].mode},
					      .len = cases[i].len,
					      .data = bytes};
		r.len = 0;
		fv_fs_open_inline_put(&r, &w);
		if (cases[i].extra > 0)
			fv_buf_u8(&r, 0);
		fv_rd_init(&rd, r.data, r.len - (cases[i].extra < 0 ? 1 : 0));
		FV_CHECK_EQ(fv_fs_open_inline_get(&rd, cases[i].max, &o), cases[i].want);
	}
	fv_buf_free(&r);
	free(buf);
	call_free(&c);
	tree_free(&t);
}

FV_TEST(requests)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 0));
	struct call c = {0};
	struct fv_fs_attr a, b;
	req_begin(&c, FV_FS_LOOKUP);
	fv_buf_u64(&c.req, FV_FS_ROOT);
	fv_buf_str(&c.req, "file", 4);
	FV_REQUIRE(run(&t, &c, 0) == 0);
	fv_fs_attr_get(&c.rd, &a);
	FV_CHECK(fv_rd_ok(&c.rd) && fv_rd_left(&c.rd) == 0 && a.size == FILE_SIZE);

	req_begin(&c, FV_FS_OPEN);
	fv_buf_u64(&c.req, a.node);
	fv_buf_u32(&c.req, O_RDONLY);
	FV_REQUIRE(run(&t, &c, 0) == 0);
	uint64_t h = fv_rd_u64(&c.rd);
	fv_fs_attr_get(&c.rd, &b);
	FV_CHECK(fv_rd_ok(&c.rd) && fv_rd_left(&c.rd) == 0 && b.node == a.node);

	req_begin(&c, FV_FS_READ);
	fv_buf_u64(&c.req, h);
	fv_buf_u64(&c.req, 99000);
	fv_buf_u32(&c.req, 4096);
	FV_REQUIRE(run(&t, &c, 4096) == 0);
	FV_CHECK_EQ(fv_rd_u32(&c.rd), 1000);
	FV_CHECK(c.bulk_len == 1000 && c.bulk[0] == pattern(99000) && c.bulk[999] == pattern(99999));
	/* a size-0 read asks for no bulk */
	req_begin(&c, FV_FS_READ);
	fv_buf_u64(&c.req, h);
	fv_buf_u64(&c.req, 0);
	fv_buf_u32(&c.req, 0);
	FV_CHECK_EQ(run(&t, &c, 0), 0);
	FV_CHECK_EQ(c.bulk_len, 0);

	req_begin(&c, FV_FS_RELEASE);
	fv_buf_u64(&c.req, h);
	FV_CHECK_EQ(run(&t, &c, 0), 0);
	FV_CHECK_EQ(run(&t, &c, 0), -EBADF);

	req_begin(&c, FV_FS_LOOKUP);
	fv_buf_u64(&c.req, FV_FS_ROOT);
	fv_buf_str(&c.req, "link", 4);
	FV_REQUIRE(run(&t, &c, 0) == 0);
	fv_fs_attr_get(&c.rd, &a);
	req_begin(&c, FV_FS_READLINK);
	fv_buf_u64(&c.req, a.node);
	FV_REQUIRE(run(&t, &c, 0) == 0);
	FV_CHECK_EQ(fv_rd_u32(&c.rd), 4);
	const uint8_t *p = fv_rd_get(&c.rd, 4);
	FV_CHECK(p && !memcmp(p, "/etc", 4) && fv_rd_left(&c.rd) == 0);

	req_begin(&c, FV_FS_STATFS);
	fv_buf_u64(&c.req, FV_FS_ROOT);
	FV_REQUIRE(run(&t, &c, 0) == 0);
	FV_CHECK_EQ(c.rep.len, 4 + 5 * 8 + 3 * 4);

	if (t.xattr) {
		FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &a) == 0);
		req_begin(&c, FV_FS_GETXATTR);
		fv_buf_u64(&c.req, a.node);
		fv_buf_str(&c.req, "user.fv", 7);
		fv_buf_u32(&c.req, 0);
		FV_REQUIRE(run(&t, &c, 0) == 0);
		FV_CHECK_EQ(fv_rd_u32(&c.rd), 5);
		FV_CHECK_EQ(fv_rd_left(&c.rd), 0);
		req_begin(&c, FV_FS_GETXATTR);
		fv_buf_u64(&c.req, a.node);
		fv_buf_str(&c.req, "user.fv", 7);
		fv_buf_u32(&c.req, 3);
		FV_CHECK_EQ(run(&t, &c, 0), -ERANGE);
		req_begin(&c, FV_FS_GETXATTR);
		fv_buf_u64(&c.req, a.node);
		fv_buf_str(&c.req, "user.fv", 7);
		fv_buf_u32(&c.req, FV_FS_MAX_XATTR);
		FV_REQUIRE(run(&t, &c, 0) == 0);
		FV_CHECK_EQ(fv_rd_u32(&c.rd), 5);
		p = fv_rd_get(&c.rd, 5);
		FV_CHECK(p && !memcmp(p, "hello", 5) && fv_rd_left(&c.rd) == 0);
		req_begin(&c, FV_FS_GETXATTR);
		fv_buf_u64(&c.req, a.node);
		fv_buf_str(&c.req, "user.none", 9);
		fv_buf_u32(&c.req, 100);
		FV_CHECK_EQ(run(&t, &c, 0), -ENODATA);
		req_begin(&c, FV_FS_LISTXATTR);
		fv_buf_u64(&c.req, a.node);
		fv_buf_u32(&c.req, 1000);
		FV_REQUIRE(run(&t, &c, 0) == 0);
		uint32_t n = fv_rd_u32(&c.rd);
		p = fv_rd_get(&c.rd, n);
		FV_CHECK(p && memmem(p, n, "user.fv\0", 8) && fv_rd_left(&c.rd) == 0);
	}
	call_free(&c);
	tree_free(&t);
	fv_test_open_inline(fv_t_);
}

/* ---- descriptors: only directories hold one ------------------------------------ */

#define MANY_N 2000
#define MANY_SUBDIRS 20

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and d's own */
}

struct logged {
	int lines;
	char last[256];
};

static void test_log(void *ud, int prio, const char *msg)
{
	struct logged *l = ud;
	(void)prio;
	l->lines++;
	snprintf(l->last, sizeof l->last, "%s", msg);
}

/* MANY_N files (in "many/" and MANY_SUBDIRS directories below it) under a
 * descriptor limit of 256: every file is looked up, stat'ed, listed and
 * read, while the export holds a descriptor per directory only. */
FV_TEST(few_descriptors)
{
	struct tree t;
	struct rlimit old, low;
	char p[512], rel[64];
	FV_REQUIRE(tree_make(&t, 0));
	at(&t, p, "many");
	FV_REQUIRE(mkdir(p, 0755) == 0);
	for (int d = 0; d < MANY_SUBDIRS; d++) {
		snprintf(rel, sizeof rel, "many/d%02d", d);
		at(&t, p, rel);
		FV_REQUIRE(mkdir(p, 0755) == 0);
	}
	for (int i = 0; i < MANY_N; i++) {
		snprintf(rel, sizeof rel, "many/d%02d/f%04d", i % MANY_SUBDIRS, i);
		at(&t, p, rel);
		FV_REQUIRE(write_file(p, 8 + (size_t)i % 50) == 0);
	}
	FV_REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
	low = old;
	low.rlim_cur = 256;
	FV_REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
	int fds0 = open_fds();

	struct fv_fs_attr m, d[MANY_SUBDIRS], a, b;
	uint8_t buf[64];
	uint32_t got;
	uint64_t h;
	int ok = 0;
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "many", &m) == 0);
	for (int k = 0; k < MANY_SUBDIRS; k++) {
		snprintf(rel, sizeof rel, "d%02d", k);
		FV_REQUIRE(lookup(&t, m.node, rel, &d[k]) == 0);
	}
	for (int i = 0; i < MANY_N; i++) {
		snprintf(rel, sizeof rel, "f%04d", i);
		if (lookup(&t, d[i % MANY_SUBDIRS].node, rel, &a) != 0 ||
		    fv_export_getattr(t.x, a.node, &b) != 0 || b.size != 8 + (uint64_t)i % 50 ||
		    fv_export_open_node(t.x, 0, a.node, O_RDONLY, &h, &b) != 0)
			continue;
		if (fv_export_read(t.x, h, 0, sizeof buf, buf, &got) == 0 && got == 8 + (uint32_t)i % 50 &&
		    buf[got - 1] == pattern(got - 1))
			ok++;
		fv_export_release(t.x, h);
	}
	FV_CHECK_EQ(ok, MANY_N);
	/* listed too: one more lookup of each, no descriptor more */
	int listed = 0;
	for (int k = 0; k < MANY_SUBDIRS; k++) {
		struct fv_buf out = {0};
		FV_CHECK_EQ(fv_export_readdirplus(t.x, d[k].node, 0, FV_FS_MAX_DIRBYTES, &out), 0);
		if (out.len >= 5)
			listed += (int)fv_get_le32(out.data + 1);
		fv_buf_free(&out);
	}
	FV_CHECK_EQ(listed, MANY_N);
	FV_CHECK_EQ(fv_export_nodes(t.x), 1 + 1 + MANY_SUBDIRS + MANY_N);
	FV_CHECK_EQ(fv_export_dir_fds(t.x), 1 + 1 + MANY_SUBDIRS);
	FV_CHECK(open_fds() - fds0 <= 1 + MANY_SUBDIRS);
	tree_free(&t);
	FV_CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);

	/* beyond max_dirs: ENFILE, and one log line naming the fix */
	struct logged lg = {0};
	FV_REQUIRE(tree_make(&t, 0));
	at(&t, p, "many");
	FV_REQUIRE(mkdir(p, 0755) == 0);
	for (int k = 0; k < 4; k++) {
		snprintf(rel, sizeof rel, "many/d%d", k);
		at(&t, p, rel);
		FV_REQUIRE(mkdir(p, 0755) == 0);
	}
	fv_export_close(t.x);
	struct fv_export_opts o = {.root = t.root, .max_dirs = 3, .log = {test_log, &lg}};
	struct fv_err e = {0};
	FV_REQUIRE(fv_export_open(&o, &t.x, &e) == 0);
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "many", &m) == 0);
	FV_CHECK_EQ(lookup(&t, m.node, "d0", &a), 0);
	FV_CHECK_EQ(lookup(&t, m.node, "d1", &a), -ENFILE);
	FV_CHECK_EQ(lookup(&t, m.node, "d2", &a), -ENFILE);
	FV_CHECK_EQ(lg.lines, 1);
	FV_CHECK(strstr(lg.last, "LimitNOFILE") != NULL);
	/* files need none; a known directory is found again */
	FV_CHECK_EQ(lookup(&t, FV_FS_ROOT, "file", &a), 0);
	FV_CHECK_EQ(lookup(&t, m.node, "d0", &a), 0);
	/* a listing stops at the first directory it cannot keep (d0 may come
	 * before it) */
	struct fv_buf out = {0};
	int rc = fv_export_readdirplus(t.x, m.node, 0, FV_FS_MAX_DIRBYTES, &out);
	FV_CHECK(rc == -ENFILE ||
		 (rc == 0 && out.len > 5 && out.data[0] == 0 && fv_get_le32(out.data + 1) == 1));
	fv_buf_free(&out);
	FV_CHECK_EQ(fv_export_dir_fds(t.x), 3);
	tree_free(&t);
}

/* A file renamed or replaced after its lookup is stale, a directory renamed
 * is not; a hard link is found by the latest name it was looked up by; a
 * file outlives the forgetting of its directory. */
FV_TEST(names_and_parents)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 0));
	struct fv_fs_attr dir, in, a, b;
	char p[512], q[512], buf[64];
	uint64_t h;
	uint32_t got;
	size_t len;
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "dir", &dir) == 0);
	FV_REQUIRE(lookup(&t, dir.node, "inner", &in) == 0);
	/* the directory renamed: its files still work (it holds a descriptor) */
	at(&t, p, "dir");
	at(&t, q, "dir2");
	FV_REQUIRE(rename(p, q) == 0);
	FV_CHECK_EQ(fv_export_getattr(t.x, in.node, &a), 0);
	FV_CHECK_EQ(fv_export_open_node(t.x, 0, in.node, O_RDONLY, &h, &a), 0);
	FV_CHECK_EQ(fv_export_read(t.x, h, 0, 10, buf, &got), 0);
	FV_CHECK_EQ(got, 10);
	fv_export_release(t.x, h);
	/* the file renamed: stale; looked up by its new name, the same node again */
	at(&t, p, "dir2/inner");
	at(&t, q, "dir2/inner2");
	FV_REQUIRE(rename(p, q) == 0);
	FV_CHECK_EQ(fv_export_getattr(t.x, in.node, &a), -ESTALE);
	FV_CHECK_EQ(fv_export_open_node(t.x, 0, in.node, O_RDONLY, &h, &a), -ESTALE);
	FV_CHECK_EQ(fv_export_statfs(t.x, in.node, &(struct fv_export_statfs){0}), -ESTALE);
	FV_CHECK_EQ(fv_export_listxattr(t.x, in.node, buf, sizeof buf, &got), -ESTALE);
	FV_CHECK_EQ(lookup(&t, dir.node, "inner2", &a), 0);
	FV_CHECK_EQ(a.node, in.node);
	FV_CHECK_EQ(fv_export_getattr(t.x, in.node, &a), 0);
	/* another file renamed over the name: stale, not the other file */
	at(&t, p, "empty");
	FV_REQUIRE(rename(p, q) == 0);
	FV_CHECK_EQ(fv_export_getattr(t.x, in.node, &a), -ESTALE);
	FV_CHECK_EQ(lookup(&t, dir.node, "inner2", &a), 0);
	FV_CHECK(a.node != in.node && a.size == 0);
	FV_CHECK_EQ(fv_export_forget(t.x, in.node, 2), 0);
	/* a link replaced by a file of the same name: stale */
	struct fv_fs_attr l;
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "link", &l) == 0);
	at(&t, p, "link");
	FV_REQUIRE(unlink(p) == 0 && write_file(p, 3) == 0);
	FV_CHECK_EQ(fv_export_readlink(t.x, l.node, buf, sizeof buf, &len), -ESTALE);

	/* hard links: the latest name counts */
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "file", &a) == 0);
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "hard", &b) == 0);
	FV_CHECK_EQ(a.node, b.node);
	at(&t, p, "file");
	at(&t, q, "file.old");
	FV_REQUIRE(rename(p, q) == 0);
	FV_CHECK_EQ(fv_export_getattr(t.x, a.node, &b), 0); /* "hard" still names it */
	at(&t, p, "hard");
	FV_REQUIRE(unlink(p) == 0);
	FV_CHECK_EQ(fv_export_getattr(t.x, a.node, &b), -ESTALE);
	FV_CHECK_EQ(lookup(&t, FV_FS_ROOT, "file.old", &b), 0);
	FV_CHECK_EQ(b.node, a.node);
	FV_CHECK_EQ(fv_export_getattr(t.x, a.node, &b), 0);
	FV_CHECK_EQ(b.nlink, 1);

	/* the parent forgotten while a file in it is known: the file works,
	 * the directory's descriptor stays until the file is forgotten */
	size_t fds = fv_export_dir_fds(t.x);
	FV_REQUIRE(lookup(&t, dir.node, "inner2", &in) == 0);
	FV_CHECK_EQ(fv_export_forget(t.x, dir.node, 1), 0);
	FV_CHECK_EQ(fv_export_getattr(t.x, dir.node, &a), -ESTALE);
	FV_CHECK_EQ(fv_export_dir_fds(t.x), fds);
	FV_CHECK_EQ(fv_export_getattr(t.x, in.node, &a), 0);
	FV_CHECK_EQ(fv_export_open_node(t.x, 0, in.node, O_RDONLY, &h, &a), 0);
	FV_CHECK_EQ(fv_export_read(t.x, h, 0, sizeof buf, buf, &got), 0);
	fv_export_release(t.x, h);
	/* the directory looked up again: a new descriptor, the file moves to it */
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "dir2", &a) == 0);
	FV_CHECK_EQ(a.node, dir.node);
	FV_CHECK_EQ(fv_export_dir_fds(t.x), fds + 1);
	FV_REQUIRE(lookup(&t, a.node, "inner2", &b) == 0);
	FV_CHECK_EQ(fv_export_dir_fds(t.x), fds);
	FV_CHECK_EQ(fv_export_forget(t.x, in.node, 100), 0);
	FV_CHECK_EQ(fv_export_forget(t.x, dir.node, 1), 0);
	FV_CHECK_EQ(fv_export_dir_fds(t.x), fds - 1);
	/* forgotten directory, file forgotten last: both go */
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "dir2", &dir) == 0);
	FV_REQUIRE(lookup(&t, dir.node, "inner2", &in) == 0);
	FV_CHECK_EQ(fv_export_forget(t.x, dir.node, 1), 0);
	FV_CHECK_EQ(fv_export_dir_fds(t.x), fds);
	FV_CHECK_EQ(fv_export_forget(t.x, in.node, 1), 0);
	FV_CHECK_EQ(fv_export_dir_fds(t.x), fds - 1);
	tree_free(&t);
}

/* ---- threads -------------------------------------------------------------------- */

struct hammer {
	struct tree *t;
	int failures;
};

/* Lookups, reads, listings and forgets of the same nodes from several
 * threads: the reference counts must keep every descriptor alive while in
 * use (run under ASan/TSan to see it). */
static void *hammer_main(void *arg)
{
	struct hammer *hm = arg;
	struct fv_export *x = hm->t->x;
	uint8_t buf[4096];
	for (int i = 0; i < 300; i++) {
		struct fv_fs_attr a, b;
		uint64_t h;
		uint32_t got;
		if (lookup(hm->t, FV_FS_ROOT, "file", &a) != 0) {
			hm->failures++;
			continue;
		}
		int rc = fv_export_open_node(x, 0, a.node, O_RDONLY, &h, &b);
		if (rc == 0) {
			if (fv_export_read(x, h, (uint64_t)i * 97, sizeof buf, buf, &got) != 0 ||
			    buf[0] != pattern((uint64_t)i * 97))
				hm->failures++;
			fv_export_release(x, h);
		} else if (rc != -ESTALE) {
			hm->failures++; /* stale: another thread forgot it in between */
		}
		struct fv_buf out = {0};
		if (fv_export_readdirplus(x, FV_FS_ROOT, 0, 4096, &out) != 0)
			hm->failures++;
		fv_buf_free(&out);
		fv_export_forget(x, a.node, 1);
	}
	return NULL;
}

/* Pages of path's first len bytes in the page cache, or -1 when the kernel
 * cannot tell (cachestat, Linux 6.5). */
static long cached_pages(const char *path, uint64_t len)
{
	struct {
		uint64_t off, len;
	} r = {0, len};
	struct {
		uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
	} cs;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	long rc = syscall(451 /* cachestat */, fd, &r, &cs, 0) == 0 ? (long)cs.nr_cache : -1;
	close(fd);
	return rc;
}

#define COLD_SIZE ((3u << 20) + 1234u)

/* Large READs of a file that is not in the page cache come straight from
 * the disk (O_DIRECT: the server's page cache stays as it was), bytes and
 * the short end of the file as through the page cache; a file with bytes
 * written but not yet on the disk, and one already cached, read as
 * before. */
FV_TEST(read_cold)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 0));
	char p[512];
	at(&t, p, "cold");
	FV_REQUIRE(write_file(p, COLD_SIZE) == 0);
	int fd = open(p, O_RDWR);
	FV_REQUIRE(fd >= 0 && fsync(fd) == 0);
	FV_REQUIRE(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
	/* a page cache that lets go of a synced file: a disk, where
	 * O_DIRECT reads can be told apart (not tmpfs) */
	bool disk = cached_pages(p, COLD_SIZE) == 0;
	uint8_t *buf = mmap(NULL, 1u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	FV_REQUIRE(buf != MAP_FAILED);
	struct fv_fs_attr a, b;
	uint64_t h;
	uint32_t got;
	FV_REQUIRE(lookup(&t, FV_FS_ROOT, "cold", &a) == 0);
	FV_REQUIRE(fv_export_open_node(t.x, 0, a.node, O_RDONLY, &h, &b) == 0);
	for (int pass = 0; pass < 3; pass++) {
		if (pass == 1) { /* bytes not on the disk yet: they must be read */
			static const uint8_t fresh[8] = "fresh!!";
			FV_REQUIRE(pwrite(fd, fresh, sizeof fresh, (1u << 20) + 100) == sizeof fresh);
		}
		bool ok = true;
		uint64_t total = 0;
		for (uint64_t off = 0; off < COLD_SIZE; off += 1u << 20) {
			FV_CHECK_EQ(fv_export_read(t.x, h, off, 1u << 20, buf, &got), 0);
			uint32_t want = COLD_SIZE - off < (1u << 20) ? (uint32_t)(COLD_SIZE - off) : 1u << 20;
			FV_CHECK_EQ(got, want);
			for (uint32_t k = 0; k < got; k++) {
				uint64_t i = off + k;
				bool fresh = pass > 0 && i >= (1u << 20) + 100 && i < (1u << 20) + 108;
				ok &= buf[k] ==
				      (fresh ? (uint8_t) "fresh!!"[i - (1u << 20) - 100] : pattern(i));
			}
			total += got;
		}
		FV_CHECK(ok);
		FV_CHECK_EQ(total, COLD_SIZE);
		if (pass == 0 && disk)
			FV_CHECK_EQ(cached_pages(p, COLD_SIZE), 0); /* read without filling the cache */
	}
	FV_CHECK_EQ(fv_export_read(t.x, h, COLD_SIZE, 1u << 20, buf, &got), 0);
	FV_CHECK_EQ(got, 0);
	FV_CHECK_EQ(fv_export_release(t.x, h), 0);
	close(fd);
	munmap(buf, 1u << 20);
	tree_free(&t);
}

FV_TEST(threads)
{
	struct tree t;
	FV_REQUIRE(tree_make(&t, 0));
	pthread_t th[4];
	struct hammer hm[4];
	for (int i = 0; i < 4; i++) {
		hm[i] = (struct hammer){&t, 0};
		FV_REQUIRE(pthread_create(&th[i], NULL, hammer_main, &hm[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		FV_CHECK_EQ(hm[i].failures, 0);
	}
	FV_CHECK_EQ(fv_export_handles(t.x), 0);
	tree_free(&t);
}

/* ---- end to end over TCP loopback -------------------------------------------------- */

static void *tp_bulk(void *ud, size_t n)
{
	return fv_tp_req_bulk(ud, n);
}

/* What fabvault-exportd's handler does. */
static void tp_handler(void *ud, struct fv_tp_req *r)
{
	struct fv_export *x = ud;
	uint32_t len;
	const void *q = fv_tp_req_data(r, &len);
	struct fv_buf rep = {0};
	struct fv_export_bulk b = {.cap = fv_tp_req_bulk_cap(r), .get = tp_bulk, .ud = r};
	fv_export_request(x, 0, q, len, &rep, &b);
	fv_tp_reply(r, rep.data, (uint32_t)rep.len, b.len);
	fv_buf_free(&rep);
}

static int tp_do(struct fv_tp_client *cl, struct fv_buf *req, uint8_t *rep, struct fv_tp_buf *bulk,
		 uint32_t cap, struct fv_tp_call *call)
{
	*call = (struct fv_tp_call){.req = req->data,
				    .req_len = (uint32_t)req->len,
				    .idempotent = true,
				    .reply = rep,
				    .reply_cap = 65536,
				    .bulk = bulk,
				    .bulk_cap = cap};
	int rc = fv_tp_call(cl, call);
	if (rc < 0)
		return rc;
	return call->reply_len >= 4 ? (int32_t)fv_get_le32(rep) : -EBADMSG;
}

FV_TEST(tcp_loopback)
{
	struct tree t;
	FV_REQUIRE(sodium_init() >= 0);
	FV_REQUIRE(tree_make(&t, 0));
	struct fv_tp_node_key sk, ck;
	struct fv_tp_peers sp = {0}, cp = {0};
	fv_tp_key_generate(&sk);
	fv_tp_key_generate(&ck);
	FV_REQUIRE(fv_tp_peers_add(&sp, ck.pk, "client") == 0 && fv_tp_peers_add(&cp, sk.pk, "server") == 0);
	struct fv_tp_path lp, cpath;
	struct fv_err e = {0};
	FV_REQUIRE(fv_tp_path_parse("tcp://127.0.0.1:0", FV_TP_TCP, &lp, &e) == 0);
	struct fv_tp_server_opts so = {.key = &sk,
				       .peers = &sp,
				       .listen = &lp,
				       .nlisten = 1,
				       .threads = 2,
				       .pool_bytes = 64u << 20,
				       .handler = tp_handler,
				       .ud = t.x};
	struct fv_tp_server *s;
	FV_REQUIRE(fv_tp_server_open(&so, &s, &e) == 0);
	cpath = lp;
	cpath.port = fv_tp_server_port(s, 0);
	struct fv_tp_client_opts co = {
		.key = &ck, .peers = &cp, .paths = &cpath, .npaths = 1, .pool_bytes = 64u << 20};
	struct fv_tp_client *cl = NULL;
	int rc = fv_tp_client_open(&co, 5000, &cl, &e);
	if (rc < 0)
		fprintf(stderr, "  client: %s\n", e.msg);
	FV_CHECK(rc == 0);
	uint8_t *rep = malloc(65536);
	struct fv_buf req = {0};
	struct fv_tp_call call;
	int err;
	struct fv_tp_buf *bulk = cl ? fv_tp_bulk_get(cl, FILE_SIZE, &err) : NULL;
	if (cl && rep && bulk) {
		struct fv_rd rd;
		struct fv_fs_attr a;
		fv_fs_req_begin(&req, FV_FS_LOOKUP);
		fv_buf_u64(&req, FV_FS_ROOT);
		fv_buf_str(&req, "file", 4);
		FV_CHECK_EQ(tp_do(cl, &req, rep, NULL, 0, &call), 0);
		fv_rd_init(&rd, rep + 4, call.reply_len - 4);
		fv_fs_attr_get(&rd, &a);
		FV_CHECK(a.size == FILE_SIZE);

		req.len = 0;
		fv_fs_req_begin(&req, FV_FS_OPEN);
		fv_buf_u64(&req, a.node);
		fv_buf_u32(&req, O_RDONLY);
		FV_CHECK_EQ(tp_do(cl, &req, rep, NULL, 0, &call), 0);
		uint64_t h = fv_get_le64(rep + 4);

		req.len = 0;
		fv_fs_req_begin(&req, FV_FS_READ);
		fv_buf_u64(&req, h);
		fv_buf_u64(&req, 0);
		fv_buf_u32(&req, FILE_SIZE);
		FV_CHECK_EQ(tp_do(cl, &req, rep, bulk, FILE_SIZE, &call), 0);
		FV_CHECK_EQ(fv_get_le32(rep + 4), FILE_SIZE);
		FV_CHECK_EQ(call.bulk_len, FILE_SIZE);
		bool same = true;
		const uint8_t *d = bulk->p;
		for (uint32_t i = 0; i < FILE_SIZE; i++)
			same &= d[i] == pattern(i);
		FV_CHECK(same);

		req.len = 0;
		fv_fs_req_begin(&req, FV_FS_READDIRPLUS);
		fv_buf_u64(&req, FV_FS_ROOT);
		fv_buf_u64(&req, 0);
		fv_buf_u32(&req, FV_FS_MAX_DIRBYTES);
		FV_CHECK_EQ(tp_do(cl, &req, rep, NULL, 0, &call), 0);
		FV_CHECK(call.reply_len > 9 && rep[4] == 1 && fv_get_le32(rep + 5) == 7);

		/* a malformed request is answered, the link stays up */
		req.len = 0;
		fv_fs_req_begin(&req, FV_FS_GETATTR);
		fv_buf_u8(&req, 1);
		FV_CHECK_EQ(tp_do(cl, &req, rep, NULL, 0, &call), -EPROTO);
		req.len = 0;
		fv_fs_req_begin(&req, FV_FS_RELEASE);
		fv_buf_u64(&req, h);
		FV_CHECK_EQ(tp_do(cl, &req, rep, NULL, 0, &call), 0);
	} else {
		FV_CHECK(!"client, reply buffer or bulk buffer");
	}
	if (bulk)
		fv_tp_bulk_put(cl, bulk);
	if (cl)
		fv_tp_client_close(cl);
	fv_tp_server_close(s);
	fv_buf_free(&req);
	free(rep);
	fv_tp_peers_free(&sp);
	fv_tp_peers_free(&cp);
	tree_free(&t);
}

FV_TESTS(every_kind, read_offsets, links_not_followed, bad_names, crafted_ids, read_only, handle_limit,
	 forget, replaced_on_disk, malformed, readdir_cookies, requests, few_descriptors, names_and_parents,
	 threads, tcp_loopback, read_cold)
