/* tree: the codec of tree blobs, one directory listing each
 * (docs/repository-format.md, "Trees").
 *
 * Decoding is strict, because a tree read from a repository is untrusted
 * input for restore: names must be valid single path components (see
 * fv_tree_name_valid), strictly increasing in byte order (so unique), every
 * length within bounds and within the blob. Not thread-safe per object.
 */
#ifndef FV_TREE_H
#define FV_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "crypto.h"

#define FV_TREE_VERSION 1
#define FV_TREE_MAX_BYTES (256u << 20) /* largest tree blob accepted */
#define FV_NAME_MAX 255
#define FV_LINK_MAX 4096
#define FV_XATTR_NAME_MAX 255
#define FV_XATTR_VALUE_MAX 65536

enum fv_ftype {
	FV_FT_REG = 1,
	FV_FT_DIR = 2,
	FV_FT_LNK = 3,
	FV_FT_CHR = 4,
	FV_FT_BLK = 5,
	FV_FT_FIFO = 6,
	FV_FT_SOCK = 7,
};

/* Node flags. */
#define FV_NODE_INCONSISTENT 0x01 /* the file changed while it was read */

struct fv_xattr {
	char *name;     /* NUL-terminated */
	uint8_t *value; /* value_len bytes (may be NULL when 0) */
	uint32_t value_len;
};

/* A piece of file content: len bytes at file offset off, stored as blob id.
 * Offsets increase strictly and pieces do not overlap; gaps are holes. */
struct fv_chunkref {
	uint64_t off;
	uint32_t len;
	uint8_t id[FV_ID_LEN];
};

struct fv_node {
	char *name;    /* NUL-terminated, 1..255 bytes */
	uint8_t type;  /* enum fv_ftype */
	uint8_t flags; /* FV_NODE_* */
	uint32_t mode; /* permission bits, st_mode & 07777 */
	uint32_t uid, gid;
	uint32_t nlink;
	int64_t mtime_ns, ctime_ns;
	uint64_t size;  /* st_size (regular files: content length incl. holes) */
	uint64_t rdev;  /* devices only */
	uint64_t hlink; /* hardlink group within a snapshot, 0 = none */
	char *target;   /* symlinks: target, NUL-terminated; else NULL */
	struct fv_xattr *xattrs;
	uint32_t nxattrs;
	uint8_t subtree[FV_ID_LEN]; /* directories: the tree blob of their entries */
	struct fv_chunkref *chunks; /* regular files */
	uint32_t nchunks;
};

struct fv_tree {
	struct fv_node *nodes;
	uint32_t n;
};

/* True when name[0..len) is a valid single component: 1..255 bytes, no '/',
 * no NUL, not "." or "..". */
bool fv_tree_name_valid(const char *name, size_t len);

/* Sort t's nodes by name (byte order). */
void fv_tree_sort(struct fv_tree *t);

/* Append the encoding of t to out. t must be sorted with unique valid names
 * and consistent fields (else -EINVAL, nothing useful appended). Returns 0,
 * -EINVAL or -ENOMEM. */
int fv_tree_encode(const struct fv_tree *t, struct fv_buf *out);

/* Decode p[0..len) into t (zeroed first; free with fv_tree_free even on
 * error). Returns 0, -EBADMSG (malformed: any violation of the format) or
 * -ENOMEM. */
int fv_tree_decode(const uint8_t *p, size_t len, struct fv_tree *t);

/* Free what t owns and zero it. */
void fv_tree_free(struct fv_tree *t);

/* Free what one node owns (used when building trees by hand). */
void fv_node_free(struct fv_node *n);

/* Binary search for name in a sorted tree; NULL when absent. */
const struct fv_node *fv_tree_find(const struct fv_tree *t, const char *name);

#endif
