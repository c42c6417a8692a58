/* snapshot: codec of snapshot objects, byte layout in
 * docs/repository-format.md, "Snapshots".
 *
 * As with trees, the encoder refuses what the decoder would reject: a
 * snapshot written with, say, 5000 paths would be unreadable, and one
 * unreadable snapshot makes listing the repository fail (fv_repo_snapshots
 * reports -EUCLEAN). Every field is fixed by the rules, so the encoding is
 * canonical (tests/fuzz/fuzz_snapshot.c checks this).
 */
#include "snapshot.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SNAP_NAME_MAX 255 /* host, user, version, each tag */
/* A string's smallest encoding: length (4) + one byte (paths and tags are
 * never empty). Used to check a count against the input before allocating. */
#define SNAP_STR_MIN 5

/* A NULL string encodes as empty (host, user, version may be left unset). */
static bool str_ok(const char *s, size_t min, size_t max)
{
	size_t len = s ? strnlen(s, max + 1) : 0;
	return len >= min && len <= max;
}

static bool list_ok(char *const *v, uint32_t n, uint32_t nmax, size_t min, size_t max)
{
	if (n > nmax || (n && !v))
		return false;
	for (uint32_t i = 0; i < n; i++)
		if (!v[i] || !str_ok(v[i], min, max))
			return false;
	return true;
}

static bool snap_valid(const struct fv_snapshot *s)
{
	return str_ok(s->host, 0, SNAP_NAME_MAX) && str_ok(s->user, 0, SNAP_NAME_MAX) && s->npaths >= 1 &&
	       list_ok(s->paths, s->npaths, FV_SNAP_PATHS_MAX, 1, FV_SNAP_PATH_MAX) &&
	       list_ok(s->tags, s->ntags, FV_SNAP_TAGS_MAX, 1, SNAP_NAME_MAX) &&
	       !(s->flags & ~(uint32_t)FV_SNAP_PARTIAL) && str_ok(s->version, 0, SNAP_NAME_MAX);
}

static void put_str(struct fv_buf *out, const char *s)
{
	fv_buf_str(out, s, s ? strlen(s) : 0);
}

int fv_snapshot_encode(const struct fv_snapshot *s, struct fv_buf *out)
{
	if (!snap_valid(s))
		return -EINVAL;
	size_t start = out->len;
	fv_buf_u32(out, FV_SNAPSHOT_VERSION);
	fv_buf_u64(out, (uint64_t)s->time_ns);
	fv_buf_u64(out, (uint64_t)s->end_ns);
	put_str(out, s->host);
	put_str(out, s->user);
	fv_buf_u32(out, s->npaths);
	for (uint32_t i = 0; i < s->npaths; i++)
		put_str(out, s->paths[i]);
	fv_buf_u32(out, s->ntags);
	for (uint32_t i = 0; i < s->ntags; i++)
		put_str(out, s->tags[i]);
	fv_buf_put(out, s->root, FV_ID_LEN);
	const struct fv_snap_stats *st = &s->stats;
	fv_buf_u64(out, st->files);
	fv_buf_u64(out, st->dirs);
	fv_buf_u64(out, st->others);
	fv_buf_u64(out, st->bytes);
	fv_buf_u64(out, st->new_chunks);
	fv_buf_u64(out, st->new_bytes);
	fv_buf_u64(out, st->stored_bytes);
	fv_buf_u64(out, st->errors);
	fv_buf_u32(out, s->flags);
	put_str(out, s->version);
	if (!fv_buf_ok(out)) {
		out->len = start;
		return -ENOMEM;
	}
	return 0;
}

/* Read a count-prefixed list of non-empty strings into a new array. */
static int rd_list(struct fv_rd *r, uint32_t nmin, uint32_t nmax, size_t max, char ***out, uint32_t *outn)
{
	uint32_t n = fv_rd_u32(r);
	if (!fv_rd_ok(r) || n < nmin || n > nmax || n > fv_rd_left(r) / SNAP_STR_MIN)
		return -EBADMSG;
	if (n == 0)
		return 0;
	*out = calloc(n, sizeof **out);
	if (!*out)
		return -ENOMEM;
	/* Set now so that fv_snapshot_free sees every slot, even unfilled. */
	*outn = n;
	for (uint32_t i = 0; i < n; i++) {
		size_t len;
		int rc = fv_rd_str(r, max, &(*out)[i], &len);
		if (rc < 0)
			return rc;
		if (len == 0)
			return -EBADMSG;
	}
	return 0;
}

int fv_snapshot_decode(const uint8_t *p, size_t len, struct fv_snapshot *s)
{
	struct fv_snap_stats *st = &s->stats;
	const uint8_t *root;
	struct fv_rd r;
	int rc = -EBADMSG;

	memset(s, 0, sizeof *s);
	fv_rd_init(&r, p, len);
	uint32_t version = fv_rd_u32(&r);
	s->time_ns = (int64_t)fv_rd_u64(&r);
	s->end_ns = (int64_t)fv_rd_u64(&r);
	if (!fv_rd_ok(&r) || version != FV_SNAPSHOT_VERSION)
		goto out_free;
	rc = fv_rd_str(&r, SNAP_NAME_MAX, &s->host, NULL);
	if (rc < 0)
		goto out_free;
	rc = fv_rd_str(&r, SNAP_NAME_MAX, &s->user, NULL);
	if (rc < 0)
		goto out_free;
	rc = rd_list(&r, 1, FV_SNAP_PATHS_MAX, FV_SNAP_PATH_MAX, &s->paths, &s->npaths);
	if (rc < 0)
		goto out_free;
	rc = rd_list(&r, 0, FV_SNAP_TAGS_MAX, SNAP_NAME_MAX, &s->tags, &s->ntags);
	if (rc < 0)
		goto out_free;
	root = fv_rd_get(&r, FV_ID_LEN);
	if (root)
		memcpy(s->root, root, FV_ID_LEN);
	st->files = fv_rd_u64(&r);
	st->dirs = fv_rd_u64(&r);
	st->others = fv_rd_u64(&r);
	st->bytes = fv_rd_u64(&r);
	st->new_chunks = fv_rd_u64(&r);
	st->new_bytes = fv_rd_u64(&r);
	st->stored_bytes = fv_rd_u64(&r);
	st->errors = fv_rd_u64(&r);
	s->flags = fv_rd_u32(&r);
	if (!fv_rd_ok(&r) || (s->flags & ~(uint32_t)FV_SNAP_PARTIAL)) {
		rc = -EBADMSG;
		goto out_free;
	}
	rc = fv_rd_str(&r, SNAP_NAME_MAX, &s->version, NULL);
	if (rc < 0)
		goto out_free;
	if (fv_rd_left(&r) != 0) {
		rc = -EBADMSG;
		goto out_free;
	}
	return 0;

out_free:
	/* Leave s empty rather than half-filled (a forgotten free leaks nothing). */
	fv_snapshot_free(s);
	return rc;
}

static void free_list(char **v, uint32_t n)
{
	for (uint32_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void fv_snapshot_free(struct fv_snapshot *s)
{
	free(s->host);
	free(s->user);
	free_list(s->paths, s->npaths);
	free_list(s->tags, s->ntags);
	free(s->version);
	memset(s, 0, sizeof *s);
}
