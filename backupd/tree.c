/* tree: codec of tree blobs, byte layout in docs/repository-format.md,
 * "Trees".
 *
 * The encoder and the decoder share one set of rules (node_valid and the
 * name order): the encoder refuses exactly what the decoder would reject, so
 * whatever we write we can read back. The decoder only adds structural
 * checks (lengths, counts, reserved bytes, trailing bytes). Because every
 * field is fixed by those rules, the encoding is canonical: decoding and
 * re-encoding gives back the same bytes, so the same directory always gets
 * the same blob id (tests/fuzz/fuzz_tree.c checks this).
 */
#include "tree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The smallest encoded entry: name length (4) + a 1-byte name, type, flags,
 * reserved (1 + 1 + 2), mode, uid, gid, nlink (4 x 4), mtime, ctime, size,
 * rdev, hlink (5 x 8), target length (4), nxattrs (4) = 73 bytes; a fifo,
 * socket or device carries nothing more. A count is checked against this
 * before anything is allocated, so a forged count cannot ask for more memory
 * than a small multiple of the input's size. */
#define TREE_ENTRY_MIN 73
/* name length (4) + a 1-byte name + value length (4) */
#define TREE_XATTR_MIN 9
/* off (8) + len (4) + id (32) */
#define TREE_CHUNK_SIZE (8 + 4 + FV_ID_LEN)

/* Names never contain NUL, so strcmp (which compares as unsigned char)
 * orders them exactly as the format does: memcmp, shorter prefix first. */
static int name_cmp(const char *a, const char *b)
{
	return strcmp(a, b);
}

bool fv_tree_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > FV_NAME_MAX)
		return false;
	if (memchr(name, '/', len) || memchr(name, 0, len))
		return false;
	if (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')))
		return false;
	return true;
}

static bool xattrs_valid(const struct fv_node *n)
{
	if (n->nxattrs && !n->xattrs)
		return false;
	for (uint32_t i = 0; i < n->nxattrs; i++) {
		const struct fv_xattr *x = &n->xattrs[i];
		if (!x->name)
			return false;
		size_t len = strnlen(x->name, FV_XATTR_NAME_MAX + 1);
		if (len == 0 || len > FV_XATTR_NAME_MAX)
			return false;
		if (x->value_len > FV_XATTR_VALUE_MAX || (x->value_len && !x->value))
			return false;
		/* Strictly increasing: one value per name, and one encoding per set. */
		if (i > 0 && name_cmp(n->xattrs[i - 1].name, x->name) >= 0)
			return false;
	}
	return true;
}

static bool chunks_valid(const struct fv_node *n)
{
	if (n->nchunks && (n->type != FV_FT_REG || !n->chunks))
		return false;
	uint64_t end = 0;
	for (uint32_t i = 0; i < n->nchunks; i++) {
		const struct fv_chunkref *c = &n->chunks[i];
		/* Compared by subtraction so that offsets near 2^64 cannot wrap
		 * around; off >= end with len >= 1 makes offsets strictly increase. */
		if (c->len == 0 || c->off < end || c->off > n->size || c->len > n->size - c->off)
			return false;
		end = c->off + c->len;
	}
	return true;
}

/* Everything about one node that the format constrains, except the order of
 * names between nodes. */
static bool node_valid(const struct fv_node *n)
{
	if (!n->name || !fv_tree_name_valid(n->name, strnlen(n->name, FV_NAME_MAX + 1)))
		return false;
	if (n->type < FV_FT_REG || n->type > FV_FT_SOCK)
		return false;
	if (n->flags & ~FV_NODE_INCONSISTENT)
		return false;
	if (n->mode > 07777)
		return false;
	if (n->rdev && n->type != FV_FT_CHR && n->type != FV_FT_BLK)
		return false;
	size_t tlen = n->target ? strnlen(n->target, FV_LINK_MAX + 1) : 0;
	if (n->type == FV_FT_LNK ? tlen == 0 || tlen > FV_LINK_MAX : tlen != 0)
		return false;
	return xattrs_valid(n) && chunks_valid(n);
}

static int node_ptr_cmp(const void *pa, const void *pb)
{
	const struct fv_node *a = pa, *b = pb;
	/* A node built by hand without a name sorts first; the encoder refuses it. */
	if (!a->name || !b->name)
		return (a->name != NULL) - (b->name != NULL);
	return name_cmp(a->name, b->name);
}

void fv_tree_sort(struct fv_tree *t)
{
	if (t->n > 1)
		qsort(t->nodes, t->n, sizeof *t->nodes, node_ptr_cmp);
}

const struct fv_node *fv_tree_find(const struct fv_tree *t, const char *name)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = name_cmp(name, t->nodes[mid].name);
		if (c == 0)
			return &t->nodes[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static void node_encode(const struct fv_node *n, struct fv_buf *out)
{
	fv_buf_str(out, n->name, strlen(n->name));
	fv_buf_u8(out, n->type);
	fv_buf_u8(out, n->flags);
	fv_buf_u16(out, 0);
	fv_buf_u32(out, n->mode);
	fv_buf_u32(out, n->uid);
	fv_buf_u32(out, n->gid);
	fv_buf_u32(out, n->nlink);
	fv_buf_u64(out, (uint64_t)n->mtime_ns);
	fv_buf_u64(out, (uint64_t)n->ctime_ns);
	fv_buf_u64(out, n->size);
	fv_buf_u64(out, n->rdev);
	fv_buf_u64(out, n->hlink);
	fv_buf_str(out, n->target, n->target ? strlen(n->target) : 0);
	fv_buf_u32(out, n->nxattrs);
	for (uint32_t i = 0; i < n->nxattrs; i++) {
		const struct fv_xattr *x = &n->xattrs[i];
		fv_buf_str(out, x->name, strlen(x->name));
		fv_buf_u32(out, x->value_len);
		fv_buf_put(out, x->value, x->value_len);
	}
	if (n->type == FV_FT_DIR)
		fv_buf_put(out, n->subtree, FV_ID_LEN);
	if (n->type == FV_FT_REG) {
		fv_buf_u32(out, n->nchunks);
		for (uint32_t i = 0; i < n->nchunks; i++) {
			fv_buf_u64(out, n->chunks[i].off);
			fv_buf_u32(out, n->chunks[i].len);
			fv_buf_put(out, n->chunks[i].id, FV_ID_LEN);
		}
	}
}

int fv_tree_encode(const struct fv_tree *t, struct fv_buf *out)
{
	if (t->n && !t->nodes)
		return -EINVAL;
	/* Check everything before appending anything, so that a refused tree
	 * leaves out as it was. */
	for (uint32_t i = 0; i < t->n; i++) {
		if (!node_valid(&t->nodes[i]))
			return -EINVAL;
		if (i > 0 && name_cmp(t->nodes[i - 1].name, t->nodes[i].name) >= 0)
			return -EINVAL;
	}
	size_t start = out->len;
	fv_buf_u32(out, FV_TREE_VERSION);
	fv_buf_u32(out, t->n);
	for (uint32_t i = 0; i < t->n; i++)
		node_encode(&t->nodes[i], out);
	if (!fv_buf_ok(out)) {
		out->len = start;
		return -ENOMEM;
	}
	/* The decoder refuses blobs above the limit; refuse to write one. */
	if (out->len - start > FV_TREE_MAX_BYTES) {
		out->len = start;
		return -EINVAL;
	}
	return 0;
}

/* A string that is usually empty (a non-symlink's target): no allocation
 * when it is, since every node of a tree would otherwise pay for one. */
static int rd_opt_str(struct fv_rd *r, size_t max, char **out, size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	if (fv_rd_left(r) >= 4 && fv_get_le32(r->p + r->off) == 0) {
		(void)fv_rd_get(r, 4);
		return 0;
	}
	return fv_rd_str(r, max, out, outlen);
}

static int xattrs_decode(struct fv_rd *r, struct fv_node *n)
{
	uint32_t count = fv_rd_u32(r);
	if (!fv_rd_ok(r) || count > fv_rd_left(r) / TREE_XATTR_MIN)
		return -EBADMSG;
	if (count == 0)
		return 0;
	n->xattrs = calloc(count, sizeof *n->xattrs);
	if (!n->xattrs)
		return -ENOMEM;
	n->nxattrs = count;
	for (uint32_t i = 0; i < count; i++) {
		struct fv_xattr *x = &n->xattrs[i];
		int rc = fv_rd_str(r, FV_XATTR_NAME_MAX, &x->name, NULL);
		if (rc < 0)
			return rc;
		/* Values are binary (may hold NUL): raw bytes, not fv_rd_str. */
		uint32_t vlen = fv_rd_u32(r);
		if (!fv_rd_ok(r) || vlen > FV_XATTR_VALUE_MAX)
			return -EBADMSG;
		const uint8_t *v = fv_rd_get(r, vlen);
		if (!v)
			return -EBADMSG;
		if (vlen) {
			x->value = malloc(vlen);
			if (!x->value)
				return -ENOMEM;
			memcpy(x->value, v, vlen);
		}
		x->value_len = vlen;
	}
	return 0;
}

static int chunks_decode(struct fv_rd *r, struct fv_node *n)
{
	uint32_t count = fv_rd_u32(r);
	if (!fv_rd_ok(r) || count > fv_rd_left(r) / TREE_CHUNK_SIZE)
		return -EBADMSG;
	if (count == 0)
		return 0;
	n->chunks = calloc(count, sizeof *n->chunks);
	if (!n->chunks)
		return -ENOMEM;
	n->nchunks = count;
	for (uint32_t i = 0; i < count; i++) {
		struct fv_chunkref *c = &n->chunks[i];
		c->off = fv_rd_u64(r);
		c->len = fv_rd_u32(r);
		const uint8_t *id = fv_rd_get(r, FV_ID_LEN);
		if (!id)
			return -EBADMSG;
		memcpy(c->id, id, FV_ID_LEN);
	}
	return 0;
}

static int node_decode(struct fv_rd *r, struct fv_node *n)
{
	size_t len;
	int rc = fv_rd_str(r, FV_NAME_MAX, &n->name, &len);
	if (rc < 0)
		return rc;
	n->type = fv_rd_u8(r);
	n->flags = fv_rd_u8(r);
	uint16_t reserved = fv_rd_u16(r);
	n->mode = fv_rd_u32(r);
	n->uid = fv_rd_u32(r);
	n->gid = fv_rd_u32(r);
	n->nlink = fv_rd_u32(r);
	n->mtime_ns = (int64_t)fv_rd_u64(r);
	n->ctime_ns = (int64_t)fv_rd_u64(r);
	n->size = fv_rd_u64(r);
	n->rdev = fv_rd_u64(r);
	n->hlink = fv_rd_u64(r);
	if (!fv_rd_ok(r) || reserved != 0)
		return -EBADMSG;
	/* Checked now, not only by node_valid below, because the type decides
	 * which fields follow. */
	if (n->type < FV_FT_REG || n->type > FV_FT_SOCK)
		return -EBADMSG;
	rc = rd_opt_str(r, FV_LINK_MAX, &n->target, &len);
	if (rc < 0)
		return rc;
	rc = xattrs_decode(r, n);
	if (rc < 0)
		return rc;
	if (n->type == FV_FT_DIR) {
		const uint8_t *id = fv_rd_get(r, FV_ID_LEN);
		if (!id)
			return -EBADMSG;
		memcpy(n->subtree, id, FV_ID_LEN);
	} else if (n->type == FV_FT_REG) {
		rc = chunks_decode(r, n);
		if (rc < 0)
			return rc;
	}
	return node_valid(n) ? 0 : -EBADMSG;
}

int fv_tree_decode(const uint8_t *p, size_t len, struct fv_tree *t)
{
	int rc = -EBADMSG;
	memset(t, 0, sizeof *t);
	if (len > FV_TREE_MAX_BYTES)
		return -EBADMSG;
	struct fv_rd r;
	fv_rd_init(&r, p, len);
	uint32_t version = fv_rd_u32(&r);
	uint32_t count = fv_rd_u32(&r);
	if (!fv_rd_ok(&r) || version != FV_TREE_VERSION || count > fv_rd_left(&r) / TREE_ENTRY_MIN)
		return -EBADMSG;
	if (count) {
		t->nodes = calloc(count, sizeof *t->nodes);
		if (!t->nodes)
			return -ENOMEM;
		/* Set now so that fv_tree_free sees every node, even half-decoded. */
		t->n = count;
	}
	for (uint32_t i = 0; i < count; i++) {
		rc = node_decode(&r, &t->nodes[i]);
		if (rc < 0)
			goto out_free;
		if (i > 0 && name_cmp(t->nodes[i - 1].name, t->nodes[i].name) >= 0) {
			rc = -EBADMSG;
			goto out_free;
		}
	}
	if (!fv_rd_ok(&r) || fv_rd_left(&r) != 0) {
		rc = -EBADMSG;
		goto out_free;
	}
	return 0;

out_free:
	/* Leave t empty rather than half-filled: a caller that forgets to free
	 * after an error neither leaks nor sees partial nodes. */
	fv_tree_free(t);
	return rc;
}

void fv_node_free(struct fv_node *n)
{
	free(n->name);
	free(n->target);
	for (uint32_t i = 0; n->xattrs && i < n->nxattrs; i++) {
		free(n->xattrs[i].name);
		free(n->xattrs[i].value);
	}
	free(n->xattrs);
	free(n->chunks);
	memset(n, 0, sizeof *n);
}

void fv_tree_free(struct fv_tree *t)
{
	for (uint32_t i = 0; t->nodes && i < t->n; i++)
		fv_node_free(&t->nodes[i]);
	free(t->nodes);
	memset(t, 0, sizeof *t);
}
