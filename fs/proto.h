/* proto: the remote filesystem protocol (docs/protocol.md), shared by
 * fabvault-exportd and fabvault-fs: op numbers, limits, the attr record and
 * the request head. Pure codecs over common/buf; thread-safe.
 */
#ifndef FV_FS_PROTO_H
#define FV_FS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "../common/buf.h"

#define FV_FS_VERSION 1
#define FV_FS_ROOT 1 /* node id of the export root */
#define FV_FS_ATTR_SIZE 72
#define FV_FS_NAME_MAX 255
#define FV_FS_MAX_READ (16u << 20)
#define FV_FS_MAX_DIRBYTES 65000u
#define FV_FS_MAX_DIRENTS 1024u
#define FV_FS_MAX_HANDLES 4096
#define FV_FS_MAX_FORGET 1024u
#define FV_FS_MAX_XATTR 65536u
#define FV_FS_MAX_LINK 4096u
/* OPEN_INLINE: the fixed part of its reply (status, handle, attr, length)
 * and the most bytes of a file it carries, so that the reply fits the
 * transport's control message (65,536 bytes). */
#define FV_FS_OPEN_INLINE_FIXED (4u + 8u + FV_FS_ATTR_SIZE + 4u)
#define FV_FS_MAX_INLINE (65536u - FV_FS_OPEN_INLINE_FIXED)

enum fv_fs_op {
	FV_FS_LOOKUP = 1,
	FV_FS_GETATTR = 2,
	FV_FS_READDIRPLUS = 3,
	FV_FS_OPEN = 4,
	FV_FS_READ = 5,
	FV_FS_RELEASE = 6,
	FV_FS_FORGET = 7,
	FV_FS_READLINK = 8,
	FV_FS_STATFS = 9,
	FV_FS_GETXATTR = 10,
	FV_FS_LISTXATTR = 11,
	FV_FS_OPEN_INLINE = 12,
	FV_FS_WRITE_OPS_FIRST = 32, /* 32..47: write-type ops, always -EROFS */
	FV_FS_WRITE_OPS_LAST = 47,
};

struct fv_fs_attr {
	uint64_t node;
	uint64_t size;
	uint64_t blocks;
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint32_t mode, nlink, uid, gid, rdev, blksize;
};

/* Start a request: op, version, reserved. */
void fv_fs_req_begin(struct fv_buf *b, uint8_t op);
/* The same into p[0..4) of a fixed-size request. */
void fv_fs_req_put(uint8_t p[4], uint8_t op);
/* Read a request head; returns 0 with *op, or -EPROTO (wrong version or
 * reserved bytes, short). */
int fv_fs_req_head(struct fv_rd *r, uint8_t *op);

/* attr record (docs/protocol.md, "Nodes"). */
void fv_fs_attr_put(struct fv_buf *b, const struct fv_fs_attr *a);
void fv_fs_attr_get(struct fv_rd *r, struct fv_fs_attr *a);
/* From a stat of the server, naming it node. */
void fv_fs_attr_from_stat(struct fv_fs_attr *a, const struct stat *st, uint64_t node);
/* Into a struct stat for FUSE (st_ino = a->node). */
void fv_fs_attr_to_stat(const struct fv_fs_attr *a, struct stat *st);

/* The result fields of OPEN_INLINE (docs/protocol.md, "OPEN_INLINE"). */
struct fv_fs_open_inline {
	uint64_t handle; /* 0: none, the whole file is in data */
	struct fv_fs_attr attr;
	uint32_t len;        /* bytes of data: the file's first bytes */
	const uint8_t *data; /* decoded: points into the reply */
};
/* Append the result fields with o->data[0..o->len). */
void fv_fs_open_inline_put(struct fv_buf *b, const struct fv_fs_open_inline *o);
/* Decode the result fields (after the status) from r, which must end with
 * them. 0, or -EPROTO when they do not decode exactly or break a rule:
 * len > max_inline or > attr.size, a handle with the whole file inline, no
 * handle without it, attr not a regular file. */
int fv_fs_open_inline_get(struct fv_rd *r, uint32_t max_inline, struct fv_fs_open_inline *o);

/* The node id of a server object (docs/protocol.md, "Nodes"): its inode
 * number, or st_ino ^ (st_dev << 40) off the export root's filesystem. */
uint64_t fv_fs_node_of(const struct stat *st, dev_t root_dev);

/* True when name[0..len) is one path component the protocol accepts: not
 * empty, ".", "..", no '/', no NUL, at most FV_FS_NAME_MAX bytes. */
bool fv_fs_name_ok(const char *name, size_t len);

#endif
