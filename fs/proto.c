/* proto: docs/protocol.md, "Messages" and "Nodes". */
#include "proto.h"

#include <errno.h>
#include <string.h>

void fv_fs_req_begin(struct fv_buf *b, uint8_t op)
{
	fv_buf_u8(b, op);
	fv_buf_u8(b, FV_FS_VERSION);
	fv_buf_u16(b, 0);
}

void fv_fs_req_put(uint8_t p[4], uint8_t op)
{
	p[0] = op;
	p[1] = FV_FS_VERSION;
	fv_put_le16(p + 2, 0);
}

int fv_fs_req_head(struct fv_rd *r, uint8_t *op)
{
	*op = fv_rd_u8(r);
	uint8_t v = fv_rd_u8(r);
	uint16_t z = fv_rd_u16(r);
	return fv_rd_ok(r) && v == FV_FS_VERSION && z == 0 ? 0 : -EPROTO;
}

void fv_fs_attr_put(struct fv_buf *b, const struct fv_fs_attr *a)
{
	fv_buf_u64(b, a->node);
	fv_buf_u64(b, a->size);
	fv_buf_u64(b, a->blocks);
	fv_buf_u64(b, (uint64_t)a->atime_ns);
	fv_buf_u64(b, (uint64_t)a->mtime_ns);
	fv_buf_u64(b, (uint64_t)a->ctime_ns);
	fv_buf_u32(b, a->mode);
	fv_buf_u32(b, a->nlink);
	fv_buf_u32(b, a->uid);
	fv_buf_u32(b, a->gid);
	fv_buf_u32(b, a->rdev);
	fv_buf_u32(b, a->blksize);
}

void fv_fs_attr_get(struct fv_rd *r, struct fv_fs_attr *a)
{
	a->node = fv_rd_u64(r);
	a->size = fv_rd_u64(r);
	a->blocks = fv_rd_u64(r);
	a->atime_ns = (int64_t)fv_rd_u64(r);
	a->mtime_ns = (int64_t)fv_rd_u64(r);
	a->ctime_ns = (int64_t)fv_rd_u64(r);
	a->mode = fv_rd_u32(r);
	a->nlink = fv_rd_u32(r);
	a->uid = fv_rd_u32(r);
	a->gid = fv_rd_u32(r);
	a->rdev = fv_rd_u32(r);
	a->blksize = fv_rd_u32(r);
}

void fv_fs_open_inline_put(struct fv_buf *b, const struct fv_fs_open_inline *o)
{
	fv_buf_u64(b, o->handle);
	fv_fs_attr_put(b, &o->attr);
	fv_buf_u32(b, o->len);
	if (o->len)
		fv_buf_put(b, o->data, o->len);
}

int fv_fs_open_inline_get(struct fv_rd *r, uint32_t max_inline, struct fv_fs_open_inline *o)
{
	o->handle = fv_rd_u64(r);
	fv_fs_attr_get(r, &o->attr);
	o->len = fv_rd_u32(r);
	o->data = o->len <= max_inline ? fv_rd_get(r, o->len) : NULL;
	if (!o->data || !fv_rd_ok(r) || fv_rd_left(r) != 0)
		return -EPROTO;
	bool whole = o->len == o->attr.size;
	if (o->len > o->attr.size || whole != (o->handle == 0) || !S_ISREG(o->attr.mode))
		return -EPROTO;
	return 0;
}

static int64_t ns_of(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec ts_of(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
	if (ts.tv_nsec < 0) {
		ts.tv_nsec += 1000000000;
		ts.tv_sec--;
	}
	return ts;
}

void fv_fs_attr_from_stat(struct fv_fs_attr *a, const struct stat *st, uint64_t node)
{
	a->node = node;
	a->size = (uint64_t)st->st_size;
	a->blocks = (uint64_t)st->st_blocks;
	a->atime_ns = ns_of(st->st_atim);
	a->mtime_ns = ns_of(st->st_mtim);
	a->ctime_ns = ns_of(st->st_ctim);
	a->mode = st->st_mode;
	a->nlink = (uint32_t)st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = (uint32_t)st->st_rdev;
	a->blksize = (uint32_t)st->st_blksize;
}

void fv_fs_attr_to_stat(const struct fv_fs_attr *a, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = a->node;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_atim = ts_of(a->atime_ns);
	st->st_mtim = ts_of(a->mtime_ns);
	st->st_ctim = ts_of(a->ctime_ns);
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	st->st_blksize = a->blksize;
}

uint64_t fv_fs_node_of(const struct stat *st, dev_t root_dev)
{
	if (st->st_dev == root_dev)
		return (uint64_t)st->st_ino;
	return (uint64_t)st->st_ino ^ ((uint64_t)st->st_dev << 40);
}

bool fv_fs_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > FV_FS_NAME_MAX || (len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	return !memchr(name, '/', len) && !memchr(name, 0, len);
}
