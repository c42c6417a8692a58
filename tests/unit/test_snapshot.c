/* Unit tests for backupd/snapshot: the codec of snapshot objects. Listing a
 * repository decodes every snapshot, so whatever the encoder writes must
 * decode, and damaged or forged bytes must fail cleanly. Byte layouts are
 * written by hand from docs/repository-format.md ("Snapshots"). */
#include "../../backupd/snapshot.h"
#include "../harness.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = 0;
	return s;
}

/* A snapshot that owns its memory (fv_snapshot_free releases it). */
static void sample(struct fv_snapshot *s)
{
	memset(s, 0, sizeof *s);
	s->time_ns = 1700000000123456789;
	s->end_ns = -1; /* times are signed */
	s->host = strdup("h\xc3\xb6st.example");
	s->user = strdup("root");
	s->npaths = 3;
	s->paths = calloc(3, sizeof *s->paths);
	s->paths[0] = strdup("opt/memory-system/data");
	s->paths[1] = strdup("home/a user/with\nnewline");
	s->paths[2] = strdup("\xe2\x98\x83");
	s->ntags = 2;
	s->tags = calloc(2, sizeof *s->tags);
	s->tags[0] = strdup("daily");
	s->tags[1] = strdup("t\xc3\xa4g with space");
	memset(s->root, 0x77, sizeof s->root);
	s->stats = (struct fv_snap_stats){1, 2, 3, 4, 5, 6, 7, UINT64_MAX};
	s->flags = FV_SNAP_PARTIAL;
	s->version = strdup("0.1.0");
}

static bool str_eq(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool snap_eq(const struct fv_snapshot *a, const struct fv_snapshot *b)
{
	if (a->time_ns != b->time_ns || a->end_ns != b->end_ns || !str_eq(a->host, b->host) ||
	    !str_eq(a->user, b->user) || a->npaths != b->npaths || a->ntags != b->ntags ||
	    memcmp(a->root, b->root, FV_ID_LEN) || memcmp(&a->stats, &b->stats, sizeof a->stats) ||
	    a->flags != b->flags || !str_eq(a->version, b->version))
		return false;
	for (uint32_t i = 0; i < a->npaths; i++)
		if (strcmp(a->paths[i], b->paths[i]))
			return false;
	for (uint32_t i = 0; i < a->ntags; i++)
		if (strcmp(a->tags[i], b->tags[i]))
			return false;
	return true;
}

static int decode_buf(const struct fv_buf *b)
{
	struct fv_snapshot s;
	int rc = fv_snapshot_decode(b->data, b->len, &s);
	fv_snapshot_free(&s);
	return rc;
}

/* ---- the layout, by hand ---- */

struct raw {
	uint32_t version;
	const char *host;
	size_t hostlen;
	uint32_t npaths; /* as written; then paths[0..npaths_real) */
	uint32_t npaths_real;
	const char *path;
	size_t pathlen;
	uint32_t ntags;
	uint32_t ntags_real;
	const char *tag;
	size_t taglen;
	uint32_t flags;
	const char *version_str;
	size_t version_len;
};

static struct raw raw_ok(void)
{
	return (struct raw){.version = 1,
			    .host = "host",
			    .hostlen = 4,
			    .npaths = 1,
			    .npaths_real = 1,
			    .path = "p",
			    .pathlen = 1,
			    .ntags = 1,
			    .ntags_real = 1,
			    .tag = "t",
			    .taglen = 1,
			    .version_str = "v",
			    .version_len = 1};
}

static void raw_write(struct fv_buf *b, const struct raw *r)
{
	fv_buf_free(b);
	fv_buf_u32(b, r->version);
	fv_buf_u64(b, 10);
	fv_buf_u64(b, 20);
	fv_buf_str(b, r->host, r->hostlen);
	fv_buf_str(b, "user", 4);
	fv_buf_u32(b, r->npaths);
	for (uint32_t i = 0; i < r->npaths_real; i++)
		fv_buf_str(b, r->path, r->pathlen);
	fv_buf_u32(b, r->ntags);
	for (uint32_t i = 0; i < r->ntags_real; i++)
		fv_buf_str(b, r->tag, r->taglen);
	uint8_t root[FV_ID_LEN];
	memset(root, 0x11, sizeof root);
	fv_buf_put(b, root, sizeof root);
	for (int i = 0; i < 8; i++)
		fv_buf_u64(b, 100 + (uint64_t)i);
	fv_buf_u32(b, r->flags);
	fv_buf_str(b, r->version_str, r->version_len);
}

static int decode_raw(const struct raw *r)
{
	struct fv_buf b = {0};
	raw_write(&b, r);
	int rc = decode_buf(&b);
	fv_buf_free(&b);
	return rc;
}

/* ---- tests ---- */

FV_TEST(roundtrip)
{
	struct fv_snapshot s, back;
	struct fv_buf b = {0}, b2 = {0};
	sample(&s);
	memset(s.id, 0xee, sizeof s.id);
	FV_REQUIRE(fv_snapshot_encode(&s, &b) == 0);
	FV_REQUIRE(fv_snapshot_decode(b.data, b.len, &back) == 0);
	FV_CHECK(snap_eq(&s, &back));
	uint8_t zero[FV_ID_LEN] = {0};
	FV_CHECK(memcmp(back.id, zero, FV_ID_LEN) == 0); /* the id is not encoded */
	FV_CHECK(back.stats.files == 1 && back.stats.stored_bytes == 7);
	FV_CHECK(back.stats.errors == UINT64_MAX);
	FV_CHECK_EQ(back.end_ns, -1);
	/* Canonical: re-encoding gives the same bytes. */
	FV_CHECK_EQ(fv_snapshot_encode(&back, &b2), 0);
	FV_CHECK(b.len == b2.len && memcmp(b.data, b2.data, b.len) == 0);
	fv_snapshot_free(&back);

	/* Unset host, user, version and no tags: encoded as empty. */
	free(s.host);
	free(s.user);
	free(s.version);
	s.host = s.user = s.version = NULL;
	free(s.tags[0]);
	free(s.tags[1]);
	free(s.tags);
	s.tags = NULL;
	s.ntags = 0;
	s.flags = 0;
	s.time_ns = INT64_MIN;
	fv_buf_free(&b);
	FV_REQUIRE(fv_snapshot_encode(&s, &b) == 0);
	FV_REQUIRE(fv_snapshot_decode(b.data, b.len, &back) == 0);
	FV_CHECK(snap_eq(&s, &back));
	FV_CHECK(back.host && back.user && back.version && back.host[0] == 0);
	FV_CHECK(back.tags == NULL && back.ntags == 0);
	FV_CHECK(back.time_ns == INT64_MIN);
	fv_snapshot_free(&back);
	fv_snapshot_free(&s);
	fv_buf_free(&b);
	fv_buf_free(&b2);
}

FV_TEST(layout_matches_the_format_description)
{
	struct fv_snapshot s = {0};
	char *path = strdup("p"), *tag = strdup("t");
	s.time_ns = 10;
	s.end_ns = 20;
	s.host = strdup("host");
	s.user = strdup("user");
	s.paths = &path;
	s.npaths = 1;
	s.tags = &tag;
	s.ntags = 1;
	memset(s.root, 0x11, sizeof s.root);
	s.stats = (struct fv_snap_stats){100, 101, 102, 103, 104, 105, 106, 107};
	s.flags = 0;
	s.version = strdup("v");
	struct fv_buf enc = {0}, raw = {0};
	FV_REQUIRE(fv_snapshot_encode(&s, &enc) == 0);
	struct raw r = raw_ok();
	raw_write(&raw, &r);
	FV_CHECK_EQ(enc.len, raw.len);
	FV_CHECK(enc.len == raw.len && memcmp(enc.data, raw.data, raw.len) == 0);
	free(s.host);
	free(s.user);
	free(s.version);
	free(path);
	free(tag);
	fv_buf_free(&enc);
	fv_buf_free(&raw);
}

FV_TEST(limits_are_accepted)
{
	/* 4096 paths of 4096 bytes, 256 tags of 255 bytes, 255-byte strings. */
	struct fv_snapshot s = {0}, back;
	char *p = repeat('p', 4096), *t = repeat('t', 255);
	char **paths = calloc(4096, sizeof *paths), **tags = calloc(256, sizeof *tags);
	for (int i = 0; i < 4096; i++)
		paths[i] = p;
	for (int i = 0; i < 256; i++)
		tags[i] = t;
	s.paths = paths;
	s.npaths = 4096;
	s.tags = tags;
	s.ntags = 256;
	s.host = s.user = s.version = t;
	struct fv_buf b = {0};
	FV_REQUIRE(fv_snapshot_encode(&s, &b) == 0);
	FV_REQUIRE(fv_snapshot_decode(b.data, b.len, &back) == 0);
	FV_CHECK(snap_eq(&s, &back));
	fv_snapshot_free(&back);
	fv_buf_free(&b);

	/* One past each limit: the encoder refuses (-EINVAL), appending nothing. */
	char *p2 = repeat('p', 4097), *t2 = repeat('t', 256), *empty = "";
	fv_buf_u8(&b, 42);
#define REFUSED(change, undo)                                     \
	do {                                                      \
		change;                                           \
		FV_CHECK_EQ(fv_snapshot_encode(&s, &b), -EINVAL); \
		FV_CHECK_EQ(b.len, 1);                            \
		undo;                                             \
		FV_CHECK_EQ(fv_snapshot_encode(&s, &b), 0);       \
		b.len = 1;                                        \
	} while (0)
	REFUSED(s.npaths = 4097, s.npaths = 4096);
	REFUSED(s.npaths = 0, s.npaths = 4096);
	REFUSED(paths[7] = p2, paths[7] = p);
	REFUSED(paths[7] = empty, paths[7] = p);
	REFUSED(paths[7] = NULL, paths[7] = p);
	REFUSED(s.paths = NULL, s.paths = paths);
	REFUSED(s.ntags = 257, s.ntags = 256);
	REFUSED(tags[3] = t2, tags[3] = t);
	REFUSED(tags[3] = empty, tags[3] = t);
	REFUSED(s.host = t2, s.host = t);
	REFUSED(s.user = t2, s.user = t);
	REFUSED(s.version = t2, s.version = t);
	REFUSED(s.flags = 2, s.flags = FV_SNAP_PARTIAL);
	REFUSED(s.flags = 0x80000001, s.flags = 0);
#undef REFUSED
	fv_buf_free(&b);
	free(paths);
	free(tags);
	free(p);
	free(t);
	free(p2);
	free(t2);
}

FV_TEST(decoder_rejects_every_truncation)
{
	struct fv_snapshot s, back;
	struct fv_buf b = {0};
	sample(&s);
	FV_REQUIRE(fv_snapshot_encode(&s, &b) == 0);
	int bad = 0;
	for (size_t len = 0; len < b.len; len++) {
		uint8_t *p = malloc(len ? len : 1); /* exact size, so ASan sees over-reads */
		memcpy(p, b.data, len);
		int rc = fv_snapshot_decode(p, len, &back);
		if (rc != -EBADMSG || back.host || back.paths || back.npaths)
			bad++;
		fv_snapshot_free(&back);
		free(p);
	}
	FV_CHECK_EQ(bad, 0);
	FV_CHECK_EQ(decode_buf(&b), 0);
	/* trailing bytes */
	fv_buf_u8(&b, 0);
	FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	fv_snapshot_free(&s);
	fv_buf_free(&b);
}

FV_TEST(decoder_rejects_version_and_flags)
{
	struct raw r = raw_ok();
	FV_CHECK_EQ(decode_raw(&r), 0);
	uint32_t versions[] = {0, 2, 0x01000000, 0xffffffff};
	for (int i = 0; i < 4; i++) {
		r.version = versions[i];
		FV_CHECK_EQ(decode_raw(&r), -EBADMSG);
	}
	r = raw_ok();
	for (int bit = 0; bit < 32; bit++) {
		r.flags = 1u << bit;
		FV_CHECK_EQ(decode_raw(&r), bit == 0 ? 0 : -EBADMSG);
	}
}

FV_TEST(decoder_enforces_counts_and_lengths)
{
	char *big = repeat('x', 4097);
	struct raw r;
#define CASE(field_changes, expect)                  \
	do {                                         \
		r = raw_ok();                        \
		field_changes;                       \
		FV_CHECK_EQ(decode_raw(&r), expect); \
	} while (0)
	CASE((r.host = big, r.hostlen = 255), 0);
	CASE((r.host = big, r.hostlen = 256), -EBADMSG);
	CASE((r.host = "", r.hostlen = 0), 0);
	CASE((r.host = "a\0b", r.hostlen = 3), -EBADMSG);
	CASE((r.version_str = big, r.version_len = 256), -EBADMSG);
	CASE((r.version_str = "", r.version_len = 0), 0);
	CASE((r.npaths = r.npaths_real = 0), -EBADMSG);
	CASE((r.npaths = r.npaths_real = 4096), 0);
	CASE((r.npaths = r.npaths_real = 4097), -EBADMSG);
	CASE((r.path = big, r.pathlen = 4096), 0);
	CASE((r.path = big, r.pathlen = 4097), -EBADMSG);
	CASE((r.path = "", r.pathlen = 0), -EBADMSG);
	CASE((r.path = "a\0b", r.pathlen = 3), -EBADMSG);
	CASE((r.ntags = r.ntags_real = 0), 0);
	CASE((r.ntags = r.ntags_real = 256), 0);
	CASE((r.ntags = r.ntags_real = 257), -EBADMSG);
	CASE((r.tag = big, r.taglen = 255), 0);
	CASE((r.tag = big, r.taglen = 256), -EBADMSG);
	CASE((r.tag = "", r.taglen = 0), -EBADMSG);
	/* Counts that do not match what follows, and huge counts. */
	CASE((r.npaths = 2), -EBADMSG);
	CASE((r.ntags = 2), -EBADMSG);
	CASE((r.ntags = 0), -EBADMSG);
	CASE((r.npaths = 0xffffffff), -EBADMSG);
	CASE((r.ntags = 0xffffffff), -EBADMSG);
#undef CASE
	free(big);
	/* A string length far past the input. */
	struct fv_buf b = {0};
	fv_buf_u32(&b, 1);
	fv_buf_u64(&b, 0);
	fv_buf_u64(&b, 0);
	fv_buf_u32(&b, 0xffffffff);
	fv_buf_extend(&b, 64);
	FV_CHECK_EQ(decode_buf(&b), -EBADMSG);
	fv_buf_free(&b);
}

FV_TESTS(roundtrip, layout_matches_the_format_description, limits_are_accepted,
	 decoder_rejects_every_truncation, decoder_rejects_version_and_flags,
	 decoder_enforces_counts_and_lengths)
