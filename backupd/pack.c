#include "pack.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "../common/fsutil.h"

void fv_pack_entry_encode(const struct fv_pack_entry *e, struct fv_buf *out)
{
	uint8_t *p = fv_buf_extend(out, FV_PACK_ENTRY_LEN);
	if (!p)
		return;
	p[0] = e->type;
	fv_put_le32(p + 4, e->off);
	fv_put_le32(p + 8, e->len);
	fv_put_le32(p + 12, e->rawlen);
	memcpy(p + 16, e->id, FV_ID_LEN);
}

int fv_pack_entry_decode(struct fv_rd *r, struct fv_pack_entry *e)
{
	const uint8_t *p = fv_rd_get(r, FV_PACK_ENTRY_LEN);
	if (!p || p[1] || p[2] || p[3] || (p[0] != FV_OBJ_DATA && p[0] != FV_OBJ_TREE))
		return -EBADMSG;
	e->type = p[0];
	e->off = fv_get_le32(p + 4);
	e->len = fv_get_le32(p + 8);
	e->rawlen = fv_get_le32(p + 12);
	memcpy(e->id, p + 16, FV_ID_LEN);
	if (e->off < FV_PACK_HDR_LEN || e->len < FV_FRAME_OVERHEAD || e->len > FV_FRAME_MAX)
		return -EBADMSG;
	return 0;
}

void fv_pack_path(const uint8_t packid[FV_PACK_ID_LEN], char out[64])
{
	char hex[2 * FV_PACK_ID_LEN + 1];
	fv_hex(packid, FV_PACK_ID_LEN, hex);
	snprintf(out, 64, "packs/%.2s/%s", hex, hex);
}

int fv_pack_writer_open(struct fv_pack_writer *w, int repofd)
{
	char hex[2 * FV_PACK_ID_LEN + 1];
	uint8_t hdr[FV_PACK_HDR_LEN] = {0};

	memset(w, 0, sizeof *w);
	fv_random(w->packid, FV_PACK_ID_LEN);
	fv_hex(w->packid, FV_PACK_ID_LEN, hex);
	snprintf(w->tmpname, sizeof w->tmpname, "tmp/pack-%s", hex);
	w->fd = openat(repofd, w->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0)
		return -errno;
	/* Turned on after the creation: an open with O_DIRECT on a file system
	 * without it (ramfs) fails only after creating the file. */
	int fl = fcntl(w->fd, F_GETFL);
	w->direct = fl >= 0 && fcntl(w->fd, F_SETFL, fl | O_DIRECT) == 0;
	void *buf = NULL;
	if (posix_memalign(&buf, FV_PACK_ALIGN, FV_PACK_WBUF) != 0) {
		fv_pack_writer_abort(w, repofd);
		return -ENOMEM;
	}
	w->wbuf = buf;
	memcpy(hdr, FV_PACK_MAGIC, 8);
	fv_put_le32(hdr + 8, 1);
	memcpy(w->wbuf, hdr, sizeof hdr);
	w->wlen = w->off = FV_PACK_HDR_LEN;
	return 0;
}

/* The frame checksum: XXH3-64 of the payload seeded with its length, so a
 * damaged length field is caught as surely as a damaged payload. */
static uint64_t frame_sum(const uint8_t *p, size_t n)
{
	return XXH3_64bits_withSeed(p, n, (uint64_t)n);
}

/* Without O_DIRECT: every 8 MiB written, start the writeback of what came
 * before, so that the fsync which finishes the pack does not have all of
 * it still to write. A hint: where it fails, fsync does it all. */
#define WRITEBACK_STEP (8u << 20)

static void writeback_start(struct fv_pack_writer *w)
{
	if (w->direct || w->file_off - w->wb_start < WRITEBACK_STEP)
		return;
	(void)sync_file_range(w->fd, (off_t)w->wb_start, (off_t)(w->file_off - w->wb_start),
			      SYNC_FILE_RANGE_WRITE);
	w->wb_start = w->file_off;
}

/* pwrite n bytes (a multiple of FV_PACK_ALIGN) of wbuf at wbase. A file
 * system that opened with O_DIRECT but refuses the write (EINVAL) gets it
 * through the page cache from then on. */
static int write_staged(struct fv_pack_writer *w, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t wr = pwrite(w->fd, w->wbuf + done, n - done, (off_t)(w->wbase + done));
		if (wr < 0 && errno == EINVAL && w->direct) {
			int fl = fcntl(w->fd, F_GETFL);
			if (fl < 0 || fcntl(w->fd, F_SETFL, fl & ~O_DIRECT) < 0)
				return -errno;
			w->direct = false;
			continue;
		}
		if (wr < 0 && errno == EINTR)
			continue;
		if (wr < 0)
			return -errno;
		if (wr == 0)
			return -EIO;
		done += (size_t)wr;
	}
	return 0;
}

/* Write the staged bytes: whole blocks leave the buffer; a partial last
 * block is written padded with zeros (finish truncates the file to its
 * length) and stays at the front of the buffer, to be written again with
 * what follows it. */
static int stage_write(struct fv_pack_writer *w)
{
	size_t whole = w->wlen / FV_PACK_ALIGN * FV_PACK_ALIGN, part = w->wlen - whole;
	size_t n = whole + (part ? FV_PACK_ALIGN : 0);
	if (n == 0)
		return 0;
	memset(w->wbuf + w->wlen, 0, n - w->wlen);
	int rc = write_staged(w, n);
	if (rc < 0)
		return w->err = rc;
	w->file_off = w->wbase + w->wlen;
	if (whole && part)
		memmove(w->wbuf, w->wbuf + whole, part);
	w->wbase += whole;
	w->wlen = part;
	writeback_start(w);
	return 0;
}

/* Append iov[0..cnt) to the pack, through the staging buffer. */
static int put(struct fv_pack_writer *w, const struct iovec *iov, int cnt)
{
	if (w->err)
		return w->err;
	for (int i = 0; i < cnt; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;
		while (left) {
			size_t k = FV_PACK_WBUF - w->wlen < left ? FV_PACK_WBUF - w->wlen : left;
			memcpy(w->wbuf + w->wlen, p, k);
			w->wlen += k;
			w->off += k;
			p += k;
			left -= k;
			if (w->wlen == FV_PACK_WBUF) {
				int rc = stage_write(w);
				if (rc < 0)
					return rc;
			}
		}
	}
	return 0;
}

int fv_pack_writer_flush(struct fv_pack_writer *w)
{
	if (w->err || w->file_off == w->off)
		return w->err;
	return stage_write(w);
}

/* Write one frame: u32 length, payload, u64 checksum. */
static int write_frame(struct fv_pack_writer *w, const uint8_t *p, size_t n)
{
	uint8_t len[4], sum[8];
	fv_put_le32(len, (uint32_t)n);
	fv_put_le64(sum, frame_sum(p, n));
	struct iovec iov[3] = {{len, 4}, {(void *)p, n}, {sum, 8}};
	return put(w, iov, 3);
}

int fv_pack_writer_add(struct fv_pack_writer *w, uint8_t type, const uint8_t id[FV_ID_LEN], uint32_t rawlen,
		       const uint8_t *p, size_t n, struct fv_pack_entry *ent)
{
	if (n + FV_FRAME_OVERHEAD > FV_FRAME_MAX || w->off + n + FV_FRAME_OVERHEAD > UINT32_MAX)
		return -EFBIG;
	ent->type = type;
	ent->off = (uint32_t)w->off;
	ent->len = (uint32_t)(n + FV_FRAME_OVERHEAD);
	ent->rawlen = rawlen;
	memcpy(ent->id, id, FV_ID_LEN);
	int rc = write_frame(w, p, n);
	if (rc < 0)
		return rc;
	fv_pack_entry_encode(ent, &w->toc);
	if (!fv_buf_ok(&w->toc))
		return -ENOMEM;
	w->n++;
	return 0;
}

static void toc_ad_id(const uint8_t packid[FV_PACK_ID_LEN], uint8_t id[FV_ID_LEN])
{
	memset(id, 0, FV_ID_LEN);
	memcpy(id, packid, FV_PACK_ID_LEN);
}

int fv_pack_writer_finish(struct fv_pack_writer *w, const struct fv_keys *k, int repofd)
{
	struct fv_buf pt = {0}, sealed = {0};
	uint8_t adid[FV_ID_LEN], tr[FV_PACK_TRAILER_LEN] = {0};
	char path[64], dir[16];
	int rc;

	/* TOC plaintext: u32 version, pack id, u32 count, entries. */
	fv_buf_u32(&pt, 1);
	fv_buf_put(&pt, w->packid, FV_PACK_ID_LEN);
	fv_buf_u32(&pt, w->n);
	fv_buf_put(&pt, w->toc.data, w->toc.len);
	uint8_t *s = fv_buf_extend(&sealed, pt.len + fv_seal_overhead(k->alg));
	if (!fv_buf_ok(&pt) || !s) {
		rc = -ENOMEM;
		goto fail;
	}
	toc_ad_id(w->packid, adid);
	rc = fv_seal(k, FV_OBJ_TOC, adid, pt.data, pt.len, s);
	if (rc < 0)
		goto fail;
	uint64_t toc_off = w->off;
	rc = write_frame(w, sealed.data, sealed.len);
	if (rc < 0)
		goto fail;
	fv_put_le64(tr, toc_off);
	fv_put_le32(tr + 8, w->n);
	fv_put_le64(tr + 16, XXH3_64bits(tr, 16));
	memcpy(tr + 24, FV_PACK_TRAILER_MAGIC, 8);
	struct iovec tiov = {tr, sizeof tr};
	rc = put(w, &tiov, 1);
	if (rc == 0)
		rc = fv_pack_writer_flush(w);
	if (rc < 0)
		goto fail;
	/* the last block went out padded */
	if (ftruncate(w->fd, (off_t)w->off) < 0) {
		rc = -errno;
		goto fail;
	}
	if (fsync(w->fd) < 0) {
		rc = -errno;
		goto fail;
	}
	if (close(w->fd) < 0) {
		w->fd = -1;
		rc = -errno;
		goto fail;
	}
	w->fd = -1;
	fv_pack_path(w->packid, path);
	snprintf(dir, sizeof dir, "%.8s", path); /* "packs/xx" */
	if (mkdirat(repofd, dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		goto fail;
	}
	if (renameat(repofd, w->tmpname, repofd, path) < 0) {
		rc = -errno;
		goto fail;
	}
	/* The new name must be durable before any index names this pack. */
	rc = fv_fsync_dir(repofd, dir);
	if (rc == 0)
		rc = fv_fsync_dir(repofd, "packs");
	fv_buf_free(&pt);
	fv_buf_free(&sealed);
	fv_buf_free(&w->toc);
	free(w->wbuf);
	w->wbuf = NULL;
	w->wlen = 0;
	return rc;
fail:
	fv_buf_free(&pt);
	fv_buf_free(&sealed);
	fv_pack_writer_abort(w, repofd);
	return rc;
}

void fv_pack_writer_abort(struct fv_pack_writer *w, int repofd)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	free(w->wbuf);
	w->wbuf = NULL;
	w->wlen = 0;
	if (w->tmpname[0])
		unlinkat(repofd, w->tmpname, 0);
	w->tmpname[0] = 0;
	fv_buf_free(&w->toc);
}

int fv_pack_read_frame(int fd, uint32_t off, uint32_t len, struct fv_buf *out, const uint8_t **payload,
		       size_t *plen)
{
	out->len = 0;
	if (len < FV_FRAME_OVERHEAD || len > FV_FRAME_MAX)
		return -EUCLEAN;
	uint8_t *p = fv_buf_grow(out, len);
	if (!p)
		return -ENOMEM;
	int rc = fv_pread_full(fd, p, len, off);
	if (rc == -ENODATA)
		return -EUCLEAN; /* truncated pack */
	if (rc < 0)
		return rc;
	uint32_t n = fv_get_le32(p);
	if (n != len - FV_FRAME_OVERHEAD || frame_sum(p + 4, n) != fv_get_le64(p + 4 + n))
		return -EUCLEAN;
	if (payload)
		*payload = p + 4;
	if (plen)
		*plen = n;
	return 0;
}

/* Read and check the trailer: the TOC frame's offset and the blob count. */
static int read_trailer(int fd, uint64_t size, uint64_t *toc_off, uint32_t *nblobs)
{
	uint8_t tr[FV_PACK_TRAILER_LEN], hdr[FV_PACK_HDR_LEN];
	if (size < FV_PACK_HDR_LEN + FV_FRAME_OVERHEAD + FV_PACK_TRAILER_LEN)
		return -EUCLEAN;
	int rc = fv_pread_full(fd, hdr, sizeof hdr, 0);
	if (rc == 0)
		rc = fv_pread_full(fd, tr, sizeof tr, (off_t)(size - FV_PACK_TRAILER_LEN));
	if (rc == -ENODATA)
		return -EUCLEAN;
	if (rc < 0)
		return rc;
	if (memcmp(hdr, FV_PACK_MAGIC, 8) != 0 || fv_get_le32(hdr + 8) != 1 || fv_get_le32(hdr + 12) != 0)
		return -EUCLEAN;
	if (memcmp(tr + 24, FV_PACK_TRAILER_MAGIC, 8) != 0 || XXH3_64bits(tr, 16) != fv_get_le64(tr + 16) ||
	    fv_get_le32(tr + 12) != 0)
		return -EUCLEAN;
	*toc_off = fv_get_le64(tr);
	*nblobs = fv_get_le32(tr + 8);
	if (*toc_off < FV_PACK_HDR_LEN || *toc_off > size - FV_PACK_TRAILER_LEN - FV_FRAME_OVERHEAD)
		return -EUCLEAN;
	return 0;
}

int fv_pack_read_toc(int fd, uint64_t size, const struct fv_keys *k, const uint8_t packid[FV_PACK_ID_LEN],
		     struct fv_pack_entry **ents, uint32_t *n)
{
	struct fv_buf fr = {0};
	struct fv_pack_entry *e = NULL;
	uint8_t *pt = NULL, adid[FV_ID_LEN];
	uint64_t toc_off;
	uint32_t nblobs;
	size_t ptlen;
	struct fv_rd r;

	int rc = read_trailer(fd, size, &toc_off, &nblobs);
	if (rc < 0)
		goto out;
	uint64_t flen = size - FV_PACK_TRAILER_LEN - toc_off;
	if (flen > FV_FRAME_MAX) {
		rc = -EUCLEAN;
		goto out;
	}
	const uint8_t *sealed;
	size_t sealed_len;
	rc = fv_pack_read_frame(fd, (uint32_t)toc_off, (uint32_t)flen, &fr, &sealed, &sealed_len);
	if (rc < 0)
		goto out;
	pt = malloc(sealed_len ? sealed_len : 1);
	if (!pt) {
		rc = -ENOMEM;
		goto out;
	}
	toc_ad_id(packid, adid);
	if (fv_unseal(k, FV_OBJ_TOC, adid, sealed, sealed_len, pt, &ptlen) < 0) {
		rc = -EUCLEAN;
		goto out;
	}
	fv_rd_init(&r, pt, ptlen);
	uint32_t ver = fv_rd_u32(&r);
	const uint8_t *pid = fv_rd_get(&r, FV_PACK_ID_LEN);
	uint32_t cnt = fv_rd_u32(&r);
	if (!fv_rd_ok(&r) || ver != 1 || memcmp(pid, packid, FV_PACK_ID_LEN) != 0 || cnt != nblobs ||
	    fv_rd_left(&r) != (size_t)cnt * FV_PACK_ENTRY_LEN) {
		rc = -EUCLEAN;
		goto out;
	}
	e = calloc(cnt ? cnt : 1, sizeof *e);
	if (!e) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < cnt; i++) {
		if (fv_pack_entry_decode(&r, &e[i]) < 0 || (uint64_t)e[i].off + e[i].len > toc_off) {
			rc = -EUCLEAN;
			goto out;
		}
	}
	*ents = e;
	*n = cnt;
	e = NULL;
out:
	free(e);
	free(pt);
	fv_buf_free(&fr);
	return rc;
}

int fv_pack_scan(int fd, uint64_t size, void (*bad)(void *ud, uint64_t off, const char *why), void *ud)
{
	uint64_t toc_off;
	uint32_t nblobs, seen = 0;
	int problems = 0;
	struct fv_buf fr = {0};

	int rc = read_trailer(fd, size, &toc_off, &nblobs);
	if (rc == -EUCLEAN) {
		bad(ud, 0, "header or trailer damaged, or the pack is truncated");
		return 1;
	}
	if (rc < 0)
		return rc;
	uint64_t off = FV_PACK_HDR_LEN;
	while (off < toc_off) {
		uint8_t lenb[4];
		rc = fv_pread_full(fd, lenb, 4, (off_t)off);
		if (rc < 0 && rc != -ENODATA)
			goto out;
		uint64_t flen = (uint64_t)fv_get_le32(lenb) + FV_FRAME_OVERHEAD;
		if (rc == -ENODATA || off + flen > toc_off) {
			bad(ud, off, "frame length runs past the table of contents");
			problems++;
			break;
		}
		rc = fv_pack_read_frame(fd, (uint32_t)off, (uint32_t)flen, &fr, NULL, NULL);
		if (rc == -EUCLEAN) {
			/* the length may be what is damaged: the walk cannot go on */
			bad(ud, off, "frame checksum mismatch (the frames after it are checked one by one)");
			problems++;
			break;
		} else if (rc < 0) {
			goto out;
		}
		seen++;
		off += flen;
	}
	if (problems == 0 && off != toc_off) {
		bad(ud, off, "frames do not end at the table of contents");
		problems++;
	}
	rc = fv_pack_read_frame(fd, (uint32_t)toc_off, (uint32_t)(size - FV_PACK_TRAILER_LEN - toc_off), &fr,
				NULL, NULL);
	if (rc == -EUCLEAN) {
		bad(ud, toc_off, "table of contents checksum mismatch");
		problems++;
	} else if (rc < 0) {
		goto out;
	}
	if (problems == 0 && seen != nblobs) {
		bad(ud, toc_off, "blob count in the trailer does not match the frames");
		problems++;
	}
	rc = problems;
out:
	fv_buf_free(&fr);
	return rc;
}
