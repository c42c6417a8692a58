/* reader: per-thread blob reads (contract in reader.h).
 *
 * This repeats the verification steps of fv_repo_get (repo.c) on state of
 * its own; the messages must stay word for word the same, since restore and
 * check report them and tests match them. The steps follow
 * docs/repository-format.md, "Packs" and "Sealed objects".
 */
#include "reader.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo_internal.h"

struct fv_reader {
	const struct fv_repo *r;
	ZSTD_DCtx *dctx;
	struct fv_buf frame, plain; /* scratch, reused for every blob */
	struct pack_fd pfd[FV_READER_FDS];
	unsigned pfd_next;
	bool skip_id; /* fv_reader_trust_seal with an AEAD */
};

unsigned fv_reader_threads(unsigned requested)
{
	if (!requested) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		requested = n > 0 ? (unsigned)(n < FV_READ_THREADS_MAX ? n : FV_READ_THREADS_MAX) : 1;
	}
	return requested > FV_READ_THREADS_MAX ? FV_READ_THREADS_MAX : requested;
}

int fv_reader_threads_parse(const char *s, unsigned *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9') /* strtoul would accept " 4", "+4" and "-1" */
		return -EINVAL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v < 1 || v > FV_READ_THREADS_MAX)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

int fv_reader_open(const struct fv_repo *r, struct fv_reader **out, struct fv_err *e)
{
	struct fv_reader *rd = calloc(1, sizeof *rd);
	*out = NULL;
	if (!rd)
		return fv_err_set(e, -ENOMEM, "out of memory for a blob reader");
	rd->r = r;
	rd->dctx = ZSTD_createDCtx();
	if (!rd->dctx) {
		free(rd);
		return fv_err_set(e, -ENOMEM, "out of memory for a blob reader");
	}
	*out = rd;
	return 0;
}

void fv_reader_close(struct fv_reader *rd)
{
	if (!rd)
		return;
	for (unsigned i = 0; i < FV_READER_FDS; i++)
		if (rd->pfd[i].pack)
			close(rd->pfd[i].fd);
	ZSTD_freeDCtx(rd->dctx);
	fv_buf_free(&rd->frame);
	fv_buf_free(&rd->plain);
	free(rd);
}

void fv_reader_trust_seal(struct fv_reader *rd, bool trust)
{
	/* Encryption none keeps the full check, a conservative choice: its
	 * keyed BLAKE2b-128 tag binds type and id as an AEAD tag does, so the
	 * same argument would hold, but that mode is not the one made faster. */
	rd->skip_id = trust && rd->r->keys.alg != FV_ENC_NONE;
}

/* An fd for pack number num; the open pack of a writing repository is read
 * under its temporary name, as repo.c does. */
static int pack_fd(struct fv_reader *rd, uint32_t num, struct fv_err *e)
{
	const struct fv_repo *r = rd->r;
	for (unsigned i = 0; i < FV_READER_FDS; i++)
		if (rd->pfd[i].pack == num + 1)
			return rd->pfd[i].fd;
	int fd = fv_repo_pack_open(r, num, e);
	if (fd < 0)
		return fd;
	/* callers read a pack front to back: let the kernel read ahead */
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	struct pack_fd *slot = &rd->pfd[rd->pfd_next++ % FV_READER_FDS];
	if (slot->pack)
		close(slot->fd);
	slot->pack = num + 1;
	slot->fd = fd;
	return fd;
}

int fv_reader_locate(const struct fv_repo *r, uint8_t type, const uint8_t id[FV_ID_LEN],
		     const struct fv_index_entry **ie, struct fv_err *e)
{
	char hex[2 * FV_ID_LEN + 1];
	const struct fv_index_entry *f = fv_index_find(&r->idx, id);
	*ie = NULL;
	if (f && fv_index_type(f) == type) {
		*ie = f;
		return 0;
	}
	fv_hex(id, FV_ID_LEN, hex);
	if (!f)
		return fv_err_set(e, -ENOENT, "repository %s: blob %.16s is not in the index", r->path, hex);
	return fv_err_set(e, -EUCLEAN, "repository %s: blob %.16s has the wrong type in the index", r->path,
			  hex);
}

/* The blob's id in hex and its pack's path, for messages: only on failure
 * (snprintf per blob shows in profiles of restore). */
static void names(const struct fv_repo *r, const struct fv_index_entry *ie, const uint8_t id[FV_ID_LEN],
		  char hex[2 * FV_ID_LEN + 1], char path[64])
{
	fv_hex(id, FV_ID_LEN, hex);
	fv_pack_path(r->idx.packs[fv_index_pack(ie)], path);
}

int fv_reader_read(struct fv_reader *rd, const struct fv_index_entry *ie, const uint8_t id[FV_ID_LEN],
		   struct fv_buf *out, struct fv_err *e)
{
	out->len = 0;
	uint8_t *o = fv_buf_grow(out, ie->rawlen);
	if (!o && ie->rawlen)
		return fv_err_set(e, -ENOMEM, "out of memory");
	return fv_reader_read_to(rd, ie, id, o, e);
}

int fv_reader_read_to(struct fv_reader *rd, const struct fv_index_entry *ie, const uint8_t id[FV_ID_LEN],
		      uint8_t *o, struct fv_err *e)
{
	const struct fv_repo *r = rd->r;
	char hex[2 * FV_ID_LEN + 1], path[64];
	uint8_t type = fv_index_type(ie);
	uint32_t rawlen = ie->rawlen;
	const uint8_t *sealed;
	size_t sealed_len, plen;

	int fd = pack_fd(rd, fv_index_pack(ie), e);
	if (fd < 0)
		return fd;
	int rc = fv_pack_read_frame(fd, ie->off, ie->len, &rd->frame, &sealed, &sealed_len);
	if (rc < 0) {
		names(r, ie, id, hex, path);
		if (rc == -EUCLEAN)
			return fv_err_set(
				e, rc,
				"repository %s: blob %.16s in %s is damaged (checksum mismatch or truncated)",
				r->path, hex, path);
		return fv_err_sys(e, rc, "cannot read %s/%s", r->path, path);
	}
	rd->plain.len = 0;
	uint8_t *p = fv_buf_grow(&rd->plain, sealed_len);
	if (!p)
		return fv_err_set(e, -ENOMEM, "out of memory");
	if (fv_unseal(&r->keys, type, id, sealed, sealed_len, p, &plen) < 0 || plen < 1) {
		names(r, ie, id, hex, path);
		return fv_err_set(e, -EUCLEAN, "repository %s: blob %.16s in %s failed authentication",
				  r->path, hex, path);
	}
	const char *bad = NULL;
	if (p[0] == ENC_RAW) {
		if (plen - 1 != rawlen)
			bad = "has the wrong length";
		else if (rawlen)
			memcpy(o, p + 1, rawlen);
	} else if (p[0] == ENC_ZSTD) {
		size_t d = ZSTD_decompressDCtx(rd->dctx, o, rawlen, p + 1, plen - 1);
		if (ZSTD_isError(d) || d != rawlen)
			bad = "does not decompress";
	} else {
		bad = "has an unknown encoding";
	}
	if (!bad && !rd->skip_id) {
		uint8_t chk[FV_ID_LEN];
		fv_id_compute(&r->keys, o, rawlen, chk);
		if (sodium_memcmp(chk, id, FV_ID_LEN) != 0)
			bad = "does not match its id";
	}
	if (bad) {
		names(r, ie, id, hex, path);
		return fv_err_set(e, -EUCLEAN, "repository %s: blob %.16s %s", r->path, hex, bad);
	}
	return 0;
}

int fv_reader_get(struct fv_reader *rd, uint8_t type, const uint8_t id[FV_ID_LEN], struct fv_buf *out,
		  struct fv_err *e)
{
	const struct fv_index_entry *ie;
	out->len = 0;
	int rc = fv_reader_locate(rd->r, type, id, &ie, e);
	if (rc < 0 || !ie) /* (ie is set whenever rc is 0) */
		return rc < 0 ? rc : -ENOENT;
	return fv_reader_read(rd, ie, id, out, e);
}
