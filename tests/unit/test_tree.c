/* Unit tests for backupd/tree: the codec of tree blobs. A restore trusts
 * nothing but what fv_tree_decode accepts, and a backup must be able to read
 * back every tree it writes; both directions are tested here, against byte
 * layouts written by hand from docs/repository-format.md ("Trees"). */
#include "../../backupd/tree.h"
#include "../harness.h"

#include <errno.h>
#include <stdint.h>

/* ---- building trees by hand (owned memory, so fv_tree_free works) ---- */

static struct fv_node mk(const char *name, uint8_t type)
{
	struct fv_node n = {0};
	n.name = strdup(name);
	n.type = type;
	n.mode = 0644;
	n.uid = 1000;
	n.gid = 1000;
	n.nlink = 1;
	n.mtime_ns = 1700000000123456789;
	n.ctime_ns = 1700000000987654321;
	return n;
}

static void add_xattr(struct fv_node *n, const char *name, const void *v, uint32_t vlen)
{
	n->xattrs = realloc(n->xattrs, (n->nxattrs + 1) * sizeof *n->xattrs);
	struct fv_xattr *x = &n->xattrs[n->nxattrs++];
	x->name = strdup(name);
	x->value = vlen ? malloc(vlen) : NULL;
	if (vlen)
		memcpy(x->value, v, vlen);
	x->value_len = vlen;
}

static void add_chunk(struct fv_node *n, uint64_t off, uint32_t len, uint8_t fill)
{
	n->chunks = realloc(n->chunks, (n->nchunks + 1) * sizeof *n->chunks);
	struct fv_chunkref *c = &n->chunks[n->nchunks++];
	c->off = off;
	c->len = len;
	memset(c->id, fill, sizeof c->id);
}

static void add(struct fv_tree *t, struct fv_node n)
{
	t->nodes = realloc(t->nodes, (t->n + 1) * sizeof *t->nodes);
	t->nodes[t->n++] = n;
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = 0;
	return s;
}

/* A tree with every file type and the awkward cases a user relies on:
 * xattrs (binary with NULs, empty), hardlinks, sparse files, odd names,
 * modes 0000 and 07777, extreme times and ids. Built unsorted on purpose. */
static void sample_tree(struct fv_tree *t)
{
	memset(t, 0, sizeof *t);
	struct fv_node n;

	n = mk("\xe2\x98\x83 snow man.txt", FV_FT_REG); /* unicode and spaces */
	n.mode = 07777;
	n.flags = FV_NODE_INCONSISTENT;
	n.size = 10000;
	add_chunk(&n, 0, 100, 1); /* holes at 100..500 and 600..9000 */
	add_chunk(&n, 500, 100, 2);
	add_chunk(&n, 9000, 1000, 3); /* ends exactly at size */
	add_xattr(&n, "user.bin", "\0\x01\0\xff\0", 5);
	add_xattr(&n, "user.empty", NULL, 0);
	add_xattr(&n, "user.empty2", "", 0);
	add(t, n);

	n = mk("dir", FV_FT_DIR);
	n.mode = 0;
	n.nlink = 3;
	memset(n.subtree, 0xab, sizeof n.subtree);
	add_xattr(&n, "system.posix_acl_default", "\x02\0\0\0", 4);
	add(t, n);

	n = mk("link", FV_FT_LNK);
	n.mode = 0777;
	n.target = strdup("../target with space\nand newline");
	add(t, n);

	n = mk("chr", FV_FT_CHR);
	n.rdev = 0x0501;
	add(t, n);
	n = mk("blk", FV_FT_BLK);
	n.rdev = 0xffffffffffffffffull;
	add(t, n);
	n = mk("fifo", FV_FT_FIFO);
	add(t, n);
	n = mk("sock", FV_FT_SOCK);
	n.uid = 0xffffffff;
	n.gid = 0;
	add(t, n);

	/* Two names of one hardlink group. */
	for (int i = 0; i < 2; i++) {
		n = mk(i ? "hard2" : "hard1", FV_FT_REG);
		n.hlink = 7;
		n.nlink = 2;
		n.size = 3;
		add_chunk(&n, 0, 3, 9);
		add(t, n);
	}

	n = mk("line\nbreak", FV_FT_REG); /* empty file: no chunks */
	n.mtime_ns = -1;
	n.ctime_ns = INT64_MIN;
	add(t, n);
	n = mk(" leading space", FV_FT_FIFO);
	n.mtime_ns = INT64_MAX;
	add(t, n);
	n = mk("a", FV_FT_FIFO); /* "a" < "ab" < "b": shorter prefix first */
	add(t, n);
	n = mk("ab", FV_FT_FIFO);
	add(t, n);
	n = mk("b", FV_FT_FIFO);
	add(t, n);
	n = mk("\xff\xfe not utf-8", FV_FT_FIFO); /* high bytes sort last */
	add(t, n);
	n = mk("...", FV_FT_FIFO); /* only "." and ".." are reserved */
	add(t, n);
	n = mk(".hidden", FV_FT_FIFO);
	add(t, n);

	char *longname = repeat('n', FV_NAME_MAX);
	n = mk(longname, FV_FT_REG);
	free(longname);
	/* A sparse file as large as it gets: the last chunk ends at 2^64 - 1. */
	n.size = UINT64_MAX;
	add_chunk(&n, 1u << 20, 4096, 4);
	add_chunk(&n, UINT64_MAX - 10, 10, 5);
	add(t, n);
}

static bool node_eq(const struct fv_node *a, const struct fv_node *b)
{
	if (strcmp(a->name, b->name) || a->type != b->type || a->flags != b->flags || a->mode != b->mode ||
	    a->uid != b->uid || a->gid != b->gid || a->nlink != b->nlink || a->mtime_ns != b->mtime_ns ||
	    a->ctime_ns != b->ctime_ns || a->size != b->size || a->rdev != b->rdev || a->hlink != b->hlink)
		return false;
	if ((a->target == NULL) != (b->target == NULL) || (a->target && strcmp(a->target, b->target)))
		return false;
	if (a->nxattrs != b->nxattrs || a->nchunks != b->nchunks)
		return false;
	for (uint32_t i = 0; i < a->nxattrs; i++) {
		const struct fv_xattr *x = &a->xattrs[i], *y = &b->xattrs[i];
		if (strcmp(x->name, y->name) || x->value_len != y->value_len ||
		    (x->value_len && memcmp(x->value, y->value, x->value_len)))
			return false;
	}
	for (uint32_t i = 0; i < a->nchunks; i++)
		if (a->chunks[i].off != b->chunks[i].off || a->chunks[i].len != b->chunks[i].len ||
		    memcmp(a->chunks[i].id, b->chunks[i].id, FV_ID_LEN))
			return false;
	if (a->type == FV_FT_DIR && memcmp(a->subtree, b->subtree, FV_ID_LEN))
		return false;
	return true;
}

static int encode(const struct fv_tree *t, struct fv_buf *b)
{
	fv_buf_free(b);
	return fv_tree_encode(t, b);
}

static int decode_buf(const struct fv_buf *b)
{
	struct fv_tree t;
	int rc = fv_tree_decode(b->data, b->len, &t);
	fv_tree_free(&t);
	return rc;
}

/* ---- writing bytes by hand, straight from the format description ---- */

static void raw_hdr(struct fv_buf *b, uint32_t version, uint32_t count)
{
	fv_buf_free(b);
	fv_buf_u32(b, version);
	fv_buf_u32(b, count);
}

/* name .. hlink of one entry; the caller writes target, xattrs and the
 * type-specific tail. */
static void raw_head(struct fv_buf *b, const char *name, size_t nlen, uint8_t type, uint8_t flags,
		     uint16_t reserved, uint32_t mode, uint64_t size, uint64_t rdev)
{
	fv_buf_str(b, name, nlen);
	fv_buf_u8(b, type);
	fv_buf_u8(b, flags);
	fv_buf_u16(b, reserved);
	fv_buf_u32(b, mode);
	fv_buf_u32(b, 1000); /* uid */
	fv_buf_u32(b, 1000); /* gid */
	fv_buf_u32(b, 1);    /* nlink */
	fv_buf_u64(b, 1);    /* mtime */
	fv_buf_u64(b, 2);    /* ctime */
	fv_buf_u64(b, size);
	fv_buf_u64(b, rdev);
	fv_buf_u64(b, 0); /* hlink */
}

/* A whole fifo entry: no target, no xattrs, no tail. */
static void raw_fifo(struct fv_buf *b, const char *name, size_t nlen)
{
	raw_head(b, name, nlen, FV_FT_FIFO, 0, 0, 0644, 0, 0);
	fv_buf_u32(b, 0); /* target */
	fv_buf_u32(b, 0); /* nxattrs */
}

/* A regular file entry of size with the given chunk (off, len) pairs. */
static void raw_reg(struct fv_buf *b, const char *name, uint64_t size, uint32_t nchunks,
		    const uint64_t *offlen)
{
	raw_head(b, name, strlen(name), FV_FT_REG, 0, 0, 0644, size, 0);
	fv_buf_u32(b, 0);
	fv_buf_u32(b, 0);
	fv_buf_u32(b, nchunks);
	uint8_t id[FV_ID_LEN] = {0};
	for (uint32_t i = 0; i < nchunks; i++) {
		fv_buf_u64(b, offlen[2 * i]);
		fv_buf_u32(b, (uint32_t)offlen[2 * i + 1]);
		fv_buf_put(b, id, sizeof id);
	}
}

/* ---- tests ---- */

FV_TEST(roundtrip_every_kind_of_entry)
{
	struct fv_tree t, back;
	struct fv_buf b = {0}, b2 = {0};
	sample_tree(&t);
	FV_CHECK_EQ(encode(&t, &b), -EINVAL); /* unsorted */
	fv_tree_sort(&t);
	FV_REQUIRE(encode(&t, &b) == 0);
	FV_REQUIRE(fv_tree_decode(b.data, b.len, &back) == 0);
	FV_REQUIRE(back.n == t.n);
	for (uint32_t i = 0; i < t.n; i++) {
		FV_CHECK(node_eq(&t.nodes[i], &back.nodes[i]));
		FV_CHECK(back.nodes[i].type == FV_FT_LNK || back.nodes[i].target == NULL);
	}
	/* Canonical: re-encoding what was read gives the same bytes (same id). */
	FV_CHECK_EQ(encode(&back, &b2), 0);
	FV_CHECK(b.len == b2.len && memcmp(b.data, b2.data, b.len) == 0);

	const struct fv_node *f = fv_tree_find(&back, "\xe2\x98\x83 snow man.txt");
	FV_REQUIRE(f != NULL);
	FV_CHECK_EQ(f->mode, 07777);
	FV_CHECK_EQ(f->nxattrs, 3);
	FV_CHECK(f->xattrs[0].value_len == 5 && memcmp(f->xattrs[0].value, "\0\x01\0\xff\0", 5) == 0);
	FV_CHECK(f->xattrs[1].value_len == 0);
	f = fv_tree_find(&back, "dir");
	FV_REQUIRE(f != NULL);
	FV_CHECK_EQ(f->mode, 0);
	f = fv_tree_find(&back, "line\nbreak");
	FV_REQUIRE(f != NULL);
	FV_CHECK(f->ctime_ns == INT64_MIN && f->mtime_ns == -1);
	FV_CHECK(fv_tree_find(&back, "hard1")->hlink == 7);
	FV_CHECK(fv_tree_find(&back, "hard2")->hlink == 7);

	fv_tree_free(&t);
	fv_tree_free(&back);
	fv_buf_free(&b);
	fv_buf_free(&b2);
}

FV_TEST(layout_matches_the_format_description)
{
	/* One directory and one file, encoded by hand. */
	struct fv_tree t = {0};
	struct fv_node d = mk("d", FV_FT_DIR), f = mk("f", FV_FT_REG);
	d.mode = 0755;
	d.mtime_ns = 1;
	d.ctime_ns = 2;
	memset(d.subtree, 0x5a, FV_ID_LEN);
	add_xattr(&d, "user.k", "v\0", 2);
	f.mtime_ns = 1;
	f.ctime_ns = 2;
	f.size = 50;
	add_chunk(&f, 10, 40, 0);
	add(&t, d);
	add(&t, f);
	struct fv_buf enc = {0}, raw = {0};
	FV_REQUIRE(fv_tree_encode(&t, &enc) == 0);

	raw_hdr(&raw, 1, 2);
	raw_head(&raw, "d", 1, FV_FT_DIR, 0, 0, 0755, 0, 0);
	fv_buf_u32(&raw, 0);
	fv_buf_u32(&raw, 1);
	fv_buf_str(&raw, "user.k", 6);
	fv_buf_str(&raw, "v\0", 2);
	uint8_t id[FV_ID_LEN];
	memset(id, 0x5a, sizeof id);
	fv_buf_put(&raw, id, sizeof id);
	uint64_t ch[] = {10, 40};
	raw_reg(&raw, "f", 50, 1, ch);

	FV_CHECK_EQ(enc.len, raw.len);
	FV_CHECK(enc.len == raw.len && memcmp(enc.data, raw.data, raw.len) == 0);
	FV_CHECK_EQ(enc.data[0], 1); /* version, little-endian */

	/* The smallest entry is 73 bytes (the decoder's count guard relies on
	 * it): a fifo with a one-byte name. */
	struct fv_tree one = {0};
	add(&one, mk("x", FV_FT_FIFO));
	FV_CHECK_EQ(encode(&one, &enc), 0);
	FV_CHECK_EQ(enc.len, 8 + 73);
	/* ... and a tree of nothing but minimal entries decodes: the guard is
	 * not stricter than the format. */
	raw_hdr(&raw, 1, 3);
	raw_fifo(&raw, "a", 1);
	raw_fifo(&raw, "b", 1);
	raw_fifo(&raw, "c", 1);
	FV_CHECK_EQ(raw.len, 8 + 3 * 73);
	FV_CHECK_EQ(decode_buf(&raw), 0);

	fv_tree_free(&one);
	fv_tree_free(&t);
	fv_buf_free(&enc);
	fv_buf_free(&raw);
}

FV_TEST(empty_tree_and_limits_roundtrip)
{
	struct fv_tree t = {0}, back;
	struct fv_buf b = {0};
	FV_CHECK_EQ(encode(&t, &b), 0);
	FV_CHECK_EQ(b.len, 8);
	FV_CHECK_EQ(fv_tree_decode(b.data, b.len, &back), 0);
	FV_CHECK_EQ(back.n, 0);
	FV_CHECK(fv_tree_find(&back, "x") == NULL);
	fv_tree_free(&back);

	/* Largest target, xattr name and value. */
	struct fv_node n = mk("l", FV_FT_LNK);
	n.target = repeat('t', FV_LINK_MAX);
	char *xn = repeat('x', FV_XATTR_NAME_MAX);
	uint8_t *val = calloc(1, FV_XATTR_VALUE_MAX);
	add_xattr(&n, xn, val, FV_XATTR_VALUE_MAX);
	add(&t, n);
	FV_REQUIRE(encode(&t, &b) == 0);
	FV_REQUIRE(fv_tree_decode(b.data, b.len, &back) == 0);
	FV_CHECK(node_eq(&t.nodes[0], &back.nodes[0]));
	fv_tree_free(&back);
	free(xn);
	free(val);
	fv_tree_free(&t);
	fv_buf_free(&b);
}

FV_TEST(name_rules)
{
	FV_CHECK(fv_tree_name_valid("a", 1));
	FV_CHECK(fv_tree_name_valid("...", 3));
	FV_CHECK(fv_tree_name_valid(".a", 2));
	FV_CHECK(fv_tree_name_valid("a b\n\t\xff", 6));
	FV_CHECK(!fv_tree_name_valid("", 0));
	FV_CHECK(!fv_tree_name_valid(".", 1));
	FV_CHECK(!fv_tree_name_valid("..", 2));
	FV_CHECK(!fv_tree_name_valid("a/b", 3));
	FV_CHECK(!fv_tree_name_valid("/", 1));
	FV_CHECK(!fv_tree_name_valid("a\0b", 3));
	char *s = repeat('a', 256);
	FV_CHECK(fv_tree_name_valid(s, 255));
	FV_CHECK(!fv_tree_name_valid(s, 256));
	free(s);
}

FV_TEST(sort_and_find)
{
	struct fv_tree t;
	sample_tree(&t);
	fv_tree_sort(&t);
	for (uint32_t i = 1; i < t.n; i++)
		FV_CHECK(strcmp(t.nodes[i - 1].name, t.nodes[i].name) < 0);
	for (uint32_t i = 0; i < t.n; i++)
		FV_CHECK(fv_tree_find(&t, t.nodes[i].name) == &t.nodes[i]);
	FV_CHECK(fv_tree_find(&t, "") == NULL);
	FV_CHECK(fv_tree_find(&t, "aa") == NULL);
	FV_CHECK(fv_tree_find(&t, "\xff\xff") == NULL);
	FV_CHECK(fv_tree_find(&t, " ") == NULL);
	fv_tree_free(&t);
	struct fv_tree empty = {0};
	fv_tree_sort(&empty);
	FV_CHECK(fv_tree_find(&empty, "a") == NULL);
}

/* Apply one change to a valid sorted tree; the encoder must refuse it and
 * leave the output buffer as it was. */
#define REFUSED(change)                                         \
	do {                                                    \
		struct fv_tree t_;                              \
		sample_tree(&t_);                               \
		fv_tree_sort(&t_);                              \
		struct fv_node *n_ = &t_.nodes[0];              \
		(void)n_;                                       \
		change;                                         \
		struct fv_buf b_ = {0};                         \
		fv_buf_u8(&b_, 42);                             \
		FV_CHECK_EQ(fv_tree_encode(&t_, &b_), -EINVAL); \
		FV_CHECK_EQ(b_.len, 1);                         \
		fv_buf_free(&b_);                               \
		fv_tree_free(&t_);                              \
	} while (0)

static struct fv_node *by_name(struct fv_tree *t, const char *name)
{
	return (struct fv_node *)fv_tree_find(t, name);
}

static void rename_node(struct fv_node *n, const char *name, size_t len)
{
	free(n->name);
	n->name = malloc(len + 1);
	memcpy(n->name, name, len);
	n->name[len] = 0;
}

FV_TEST(encoder_refuses_what_the_decoder_would_reject)
{
	/* names */
	REFUSED(rename_node(&t_.nodes[1], ".", 1)); /* keeps the order */
	REFUSED(rename_node(&t_.nodes[1], "..", 2));
	REFUSED(rename_node(&t_.nodes[t_.n - 1], "\xff/b", 3));
	REFUSED(rename_node(&t_.nodes[0], "", 0));
	REFUSED(free(t_.nodes[0].name); t_.nodes[0].name = NULL);
	REFUSED({
		char *s = repeat('\xff', 256);
		rename_node(&t_.nodes[t_.n - 1], s, 256);
		free(s);
	});
	/* order: a duplicate, and a swap */
	REFUSED(rename_node(&t_.nodes[1], t_.nodes[0].name, strlen(t_.nodes[0].name)));
	REFUSED({
		struct fv_node x = t_.nodes[0];
		t_.nodes[0] = t_.nodes[1];
		t_.nodes[1] = x;
	});
	/* fields */
	REFUSED(n_->type = 0);
	REFUSED(n_->type = 8);
	REFUSED(n_->flags = 0x02);
	REFUSED(n_->flags = 0x80);
	REFUSED(n_->mode = 010000);
	REFUSED(by_name(&t_, "fifo")->rdev = 1);
	REFUSED(by_name(&t_, "dir")->rdev = 1);
	REFUSED(by_name(&t_, "fifo")->target = strdup("x"));
	REFUSED({
		struct fv_node *l = by_name(&t_, "link");
		free(l->target);
		l->target = NULL;
	});
	REFUSED({
		struct fv_node *l = by_name(&t_, "link");
		free(l->target);
		l->target = strdup("");
	});
	REFUSED({
		struct fv_node *l = by_name(&t_, "link");
		free(l->target);
		l->target = repeat('t', FV_LINK_MAX + 1);
	});
	/* xattrs */
	const char *sn = "\xe2\x98\x83 snow man.txt";
	REFUSED({
		struct fv_node *f = by_name(&t_, sn);
		struct fv_xattr x = f->xattrs[0];
		f->xattrs[0] = f->xattrs[1];
		f->xattrs[1] = x;
	});
	REFUSED({
		struct fv_node *f = by_name(&t_, sn);
		free(f->xattrs[1].name);
		f->xattrs[1].name = strdup(f->xattrs[0].name);
	});
	REFUSED({
		struct fv_node *f = by_name(&t_, sn);
		free(f->xattrs[0].name);
		f->xattrs[0].name = strdup("");
	});
	REFUSED({
		struct fv_node *f = by_name(&t_, "dir");
		free(f->xattrs[0].name);
		f->xattrs[0].name = repeat('x', FV_XATTR_NAME_MAX + 1);
	});
	REFUSED({
		struct fv_node *f = by_name(&t_, sn);
		add_xattr(f, "zz", NULL, 0);
		f->xattrs[3].value_len = FV_XATTR_VALUE_MAX + 1;
		f->xattrs[3].value = malloc(FV_XATTR_VALUE_MAX + 1);
	});
	/* chunks */
	REFUSED(by_name(&t_, sn)->chunks[1].off = 50);    /* overlaps [0, 100) */
	REFUSED(by_name(&t_, sn)->chunks[1].off = 0);     /* same offset */
	REFUSED(by_name(&t_, sn)->chunks[2].len = 0);     /* empty */
	REFUSED(by_name(&t_, sn)->chunks[2].len = 1001);  /* past size */
	REFUSED(by_name(&t_, sn)->size = 9999);           /* past size */
	REFUSED(add_chunk(by_name(&t_, "dir"), 0, 1, 0)); /* chunks on a dir */
	REFUSED({
		struct fv_node *f = by_name(&t_, "hard1");
		f->size = UINT64_MAX;
		add_chunk(f, UINT64_MAX - 1, 2, 0); /* off + len wraps */
	});
}

FV_TEST(decoder_rejects_every_truncation)
{
	struct fv_tree t, back;
	struct fv_buf b = {0};
	sample_tree(&t);
	fv_tree_sort(&t);
	FV_REQUIRE(encode(&t, &b) == 0);
	int bad = 0;
	for (size_t len = 0; len < b.len; len++) {
		/* a copy of exactly len bytes, so that ASan sees any over-read */
		uint8_t *p = malloc(len ? len : 1);
		memcpy(p, b.data, len);
		int rc = fv_tree_decode(p, len, &back);
		if (rc != -EBADMSG || back.n != 0 || back.nodes != NULL)
			bad++;
		fv_tree_free(&back);
		free(p);
	}
	FV_CHECK_EQ(bad, 0);
	FV_CHECK_EQ(decode_buf(&b), 0);
	fv_tree_free(&t);
	fv_buf_free(&b);
}

FV_TEST(decoder_rejects_version_and_trailing_bytes)
{
	struct fv_buf b = {0};
	uint32_t versions[] = {0, 2, 0x01000000, 0xffffffff};
	for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
		raw_hdr(&b, versions[i], 1);
		raw_fifo(&b, "a", 1);
		FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	}
	raw_hdr(&b, 1, 1);
	raw_fifo(&b, "a", 1);
	FV_CHECK_EQ(decode_buf(&b), 0);
	fv_buf_u8(&b, 0);
	FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	/* a whole extra entry the count does not announce */
	raw_hdr(&b, 1, 1);
	raw_fifo(&b, "a", 1);
	raw_fifo(&b, "b", 1);
	FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	raw_hdr(&b, 1, 0);
	fv_buf_u32(&b, 0);
	FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	fv_buf_free(&b);
}

FV_TEST(decoder_rejects_flag_reserved_type_mode_bits)
{
	struct fv_buf b = {0};
	for (int bit = 0; bit < 8; bit++) {
		raw_hdr(&b, 1, 1);
		raw_head(&b, "a", 1, FV_FT_FIFO, (uint8_t)(1u << bit), 0, 0644, 0, 0);
		fv_buf_u32(&b, 0);
		fv_buf_u32(&b, 0);
		FV_CHECK_EQ(decode_buf(&b), bit == 0 ? 0 : -EBADMSG);
	}
	for (int bit = 0; bit < 16; bit++) {
		raw_hdr(&b, 1, 1);
		raw_head(&b, "a", 1, FV_FT_FIFO, 0, (uint16_t)(1u << bit), 0644, 0, 0);
		fv_buf_u32(&b, 0);
		fv_buf_u32(&b, 0);
		FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	}
	/* type: 0 and 8..255 unknown; 1..7 each decode with the right tail */
	for (int type = 0; type < 256; type++) {
		raw_hdr(&b, 1, 1);
		raw_head(&b, "a", 1, (uint8_t)type, 0, 0, 0644, 0, 0);
		if (type == FV_FT_LNK)
			fv_buf_str(&b, "t", 1);
		else
			fv_buf_u32(&b, 0);
		fv_buf_u32(&b, 0);
		if (type == FV_FT_DIR)
			fv_buf_extend(&b, FV_ID_LEN);
		if (type == FV_FT_REG)
			fv_buf_u32(&b, 0);
		FV_CHECK_EQ(decode_buf(&b), type >= 1 && type <= 7 ? 0 : -EBADMSG);
	}
	uint32_t modes[] = {0, 07777, 010000, 0100644, 0xffffffff};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		raw_hdr(&b, 1, 1);
		raw_head(&b, "a", 1, FV_FT_FIFO, 0, 0, modes[i], 0, 0);
		fv_buf_u32(&b, 0);
		fv_buf_u32(&b, 0);
		FV_CHECK_EQ(decode_buf(&b), modes[i] <= 07777 ? 0 : -EBADMSG);
	}
	/* rdev only on devices */
	for (int type = FV_FT_LNK; type <= FV_FT_SOCK; type++) {
		raw_hdr(&b, 1, 1);
		raw_head(&b, "a", 1, (uint8_t)type, 0, 0, 0644, 0, 0x0801);
		fv_buf_str(&b, "t", type == FV_FT_LNK ? 1 : 0);
		fv_buf_u32(&b, 0);
		FV_CHECK_EQ(decode_buf(&b), type == FV_FT_CHR || type == FV_FT_BLK ? 0 : -EBADMSG);
	}
	uint64_t ch[] = {0, 1};
	raw_hdr(&b, 1, 1);
	raw_head(&b, "a", 1, FV_FT_REG, 0, 0, 0644, 1, 1);
	fv_buf_u32(&b, 0);
	fv_buf_u32(&b, 0);
	fv_buf_u32(&b, 1);
	fv_buf_u64(&b, ch[0]);
	fv_buf_u32(&b, 1);
	fv_buf_extend(&b, FV_ID_LEN);
	FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	fv_buf_free(&b);
}

static int decode_names(const char *a, size_t alen, const char *b2, size_t blen)
{
	struct fv_buf b = {0};
	raw_hdr(&b, 1, b2 ? 2 : 1);
	raw_fifo(&b, a, alen);
	if (b2)
		raw_fifo(&b, b2, blen);
	int rc = decode_buf(&b);
	fv_buf_free(&b);
	return rc;
}

FV_TEST(decoder_rejects_bad_names_and_targets)
{
	FV_CHECK_EQ(decode_names("", 0, NULL, 0), -EBADMSG);
	FV_CHECK_EQ(decode_names(".", 1, NULL, 0), -EBADMSG);
	FV_CHECK_EQ(decode_names("..", 2, NULL, 0), -EBADMSG);
	FV_CHECK_EQ(decode_names("a/b", 3, NULL, 0), -EBADMSG);
	FV_CHECK_EQ(decode_names("..", 2, NULL, 0), -EBADMSG);
	FV_CHECK_EQ(decode_names("a\0b", 3, NULL, 0), -EBADMSG);
	char *s = repeat('a', 256);
	FV_CHECK_EQ(decode_names(s, 255, NULL, 0), 0);
	FV_CHECK_EQ(decode_names(s, 256, NULL, 0), -EBADMSG);
	free(s);
	FV_CHECK_EQ(decode_names("a", 1, "b", 1), 0);
	FV_CHECK_EQ(decode_names("a", 1, "ab", 2), 0);
	FV_CHECK_EQ(decode_names("ab", 2, "a", 1), -EBADMSG);
	FV_CHECK_EQ(decode_names("b", 1, "a", 1), -EBADMSG);
	FV_CHECK_EQ(decode_names("a", 1, "a", 1), -EBADMSG);
	FV_CHECK_EQ(decode_names("\x7f", 1, "\x80", 1), 0); /* bytes compare unsigned */
	FV_CHECK_EQ(decode_names("\x80", 1, "\x7f", 1), -EBADMSG);

	struct fv_buf b = {0};
	/* a target on a non-link; an empty, a NUL-holding, a too long link target */
	raw_hdr(&b, 1, 1);
	raw_head(&b, "a", 1, FV_FT_FIFO, 0, 0, 0644, 0, 0);
	fv_buf_str(&b, "x", 1);
	fv_buf_u32(&b, 0);
	FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	size_t tlens[] = {0, 1, FV_LINK_MAX, FV_LINK_MAX + 1};
	char *t = repeat('t', FV_LINK_MAX + 1);
	for (size_t i = 0; i < 4; i++) {
		raw_hdr(&b, 1, 1);
		raw_head(&b, "a", 1, FV_FT_LNK, 0, 0, 0777, 0, 0);
		fv_buf_str(&b, t, tlens[i]);
		fv_buf_u32(&b, 0);
		FV_CHECK_EQ(decode_buf(&b), tlens[i] == 0 || tlens[i] > FV_LINK_MAX ? -EBADMSG : 0);
	}
	free(t);
	raw_hdr(&b, 1, 1);
	raw_head(&b, "a", 1, FV_FT_LNK, 0, 0, 0777, 0, 0);
	fv_buf_str(&b, "a\0b", 3);
	fv_buf_u32(&b, 0);
	FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	fv_buf_free(&b);
}

/* A fifo "a" with xattrs given as (name, name length, value length). */
static int decode_xattrs(int n, const char *const *names, const size_t *nlens, const size_t *vlens)
{
	struct fv_buf b = {0};
	raw_hdr(&b, 1, 1);
	raw_head(&b, "a", 1, FV_FT_FIFO, 0, 0, 0644, 0, 0);
	fv_buf_u32(&b, 0);
	fv_buf_u32(&b, (uint32_t)n);
	for (int i = 0; i < n; i++) {
		fv_buf_str(&b, names[i], nlens[i]);
		fv_buf_u32(&b, (uint32_t)vlens[i]);
		fv_buf_extend(&b, vlens[i]);
	}
	int rc = decode_buf(&b);
	fv_buf_free(&b);
	return rc;
}

FV_TEST(decoder_rejects_bad_xattrs)
{
	const char *ab[] = {"a", "b"}, *ba[] = {"b", "a"}, *aa[] = {"a", "a"}, *e[] = {""};
	const char *nul[] = {"a\0b"};
	size_t one[] = {1, 1}, zero[] = {0, 0}, three[] = {3};
	size_t vmax[] = {FV_XATTR_VALUE_MAX}, vover[] = {FV_XATTR_VALUE_MAX + 1};
	FV_CHECK_EQ(decode_xattrs(2, ab, one, zero), 0);
	FV_CHECK_EQ(decode_xattrs(2, ba, one, zero), -EBADMSG);
	FV_CHECK_EQ(decode_xattrs(2, aa, one, zero), -EBADMSG);
	FV_CHECK_EQ(decode_xattrs(1, e, zero, zero), -EBADMSG);
	FV_CHECK_EQ(decode_xattrs(1, nul, three, zero), -EBADMSG);
	FV_CHECK_EQ(decode_xattrs(1, ab, one, vmax), 0);
	FV_CHECK_EQ(decode_xattrs(1, ab, one, vover), -EBADMSG);
	char *longn = repeat('x', FV_XATTR_NAME_MAX + 1);
	const char *ln[] = {longn};
	size_t l255[] = {FV_XATTR_NAME_MAX}, l256[] = {FV_XATTR_NAME_MAX + 1};
	FV_CHECK_EQ(decode_xattrs(1, ln, l255, zero), 0);
	FV_CHECK_EQ(decode_xattrs(1, ln, l256, zero), -EBADMSG);
	free(longn);
}

static int decode_chunks(uint64_t size, uint32_t n, const uint64_t *offlen)
{
	struct fv_buf b = {0};
	raw_hdr(&b, 1, 1);
	raw_reg(&b, "f", size, n, offlen);
	int rc = decode_buf(&b);
	fv_buf_free(&b);
	return rc;
}

FV_TEST(decoder_rejects_bad_chunk_lists)
{
	uint64_t touching[] = {0, 100, 100, 100};
	uint64_t gap[] = {0, 100, 1000, 100};
	uint64_t overlap[] = {0, 100, 99, 100};
	uint64_t same[] = {0, 100, 0, 100};
	uint64_t backwards[] = {1000, 100, 0, 100};
	uint64_t empty[] = {0, 0};
	uint64_t wrap[] = {UINT64_MAX - 1, 2};
	uint64_t top[] = {UINT64_MAX - 2, 2};
	FV_CHECK_EQ(decode_chunks(200, 2, touching), 0);
	FV_CHECK_EQ(decode_chunks(199, 2, touching), -EBADMSG); /* past size */
	FV_CHECK_EQ(decode_chunks(5000, 2, gap), 0);
	FV_CHECK_EQ(decode_chunks(5000, 2, overlap), -EBADMSG);
	FV_CHECK_EQ(decode_chunks(5000, 2, same), -EBADMSG);
	FV_CHECK_EQ(decode_chunks(5000, 2, backwards), -EBADMSG);
	FV_CHECK_EQ(decode_chunks(5000, 1, empty), -EBADMSG);
	FV_CHECK_EQ(decode_chunks(UINT64_MAX, 1, wrap), -EBADMSG);
	FV_CHECK_EQ(decode_chunks(UINT64_MAX, 1, top), 0);
	FV_CHECK_EQ(decode_chunks(0, 0, NULL), 0);
}

FV_TEST(decoder_rejects_huge_counts_without_allocating)
{
	/* Each of these would ask for gigabytes if trusted; all must fail as
	 * malformed (-EBADMSG), not as out of memory. */
	struct fv_buf b = {0};
	uint32_t counts[] = {0xffffffff, 0x80000000, 0x10000000, 2};
	for (size_t i = 0; i < 4; i++) {
		raw_hdr(&b, 1, counts[i]);
		raw_fifo(&b, "a", 1);
		FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	}
	for (size_t i = 0; i < 4; i++) {
		raw_hdr(&b, 1, 1);
		raw_head(&b, "a", 1, FV_FT_FIFO, 0, 0, 0644, 0, 0);
		fv_buf_u32(&b, 0);
		fv_buf_u32(&b, counts[i]);
		fv_buf_str(&b, "x", 1);
		fv_buf_u32(&b, 0);
		FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	}
	for (size_t i = 0; i < 4; i++) {
		raw_hdr(&b, 1, 1);
		raw_head(&b, "a", 1, FV_FT_REG, 0, 0, 0644, 100, 0);
		fv_buf_u32(&b, 0);
		fv_buf_u32(&b, 0);
		fv_buf_u32(&b, counts[i]);
		fv_buf_u64(&b, 0);
		fv_buf_u32(&b, 1);
		fv_buf_extend(&b, FV_ID_LEN);
		FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	}
	/* Lengths of names, targets and values past the input. */
	raw_hdr(&b, 1, 1);
	fv_buf_u32(&b, 0xffffffff);
	fv_buf_extend(&b, 100);
	FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	raw_hdr(&b, 1, 1);
	raw_head(&b, "a", 1, FV_FT_LNK, 0, 0, 0644, 0, 0);
	fv_buf_u32(&b, 0xffffffff);
	fv_buf_extend(&b, 100);
	FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	raw_hdr(&b, 1, 1);
	raw_head(&b, "a", 1, FV_FT_FIFO, 0, 0, 0644, 0, 0);
	fv_buf_u32(&b, 0);
	fv_buf_u32(&b, 1);
	fv_buf_str(&b, "x", 1);
	fv_buf_u32(&b, 0xffffffff);
	fv_buf_extend(&b, 100);
	FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	fv_buf_free(&b);
}

FV_TESTS(roundtrip_every_kind_of_entry, layout_matches_the_format_description,
	 empty_tree_and_limits_roundtrip, name_rules, sort_and_find,
	 encoder_refuses_what_the_decoder_would_reject, decoder_rejects_every_truncation,
	 decoder_rejects_version_and_trailing_bytes, decoder_rejects_flag_reserved_type_mode_bits,
	 decoder_rejects_bad_names_and_targets, decoder_rejects_bad_xattrs, decoder_rejects_bad_chunk_lists,
	 decoder_rejects_huge_counts_without_allocating)
