/* pack: append-only pack files holding many blobs (docs/repository-format.md,
 * "Packs"). A pack is: header, frames, a sealed table of contents (TOC)
 * frame, trailer. Every frame carries an XXH3-64 checksum so damage is found
 * without the key; the TOC lets the index be rebuilt from packs alone.
 *
 * A writer belongs to one thread. Readers take a file descriptor and share
 * nothing.
 */
#ifndef FV_PACK_H
#define FV_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "crypto.h"

#define FV_PACK_MAGIC "FVPACK\0\1"
#define FV_PACK_HDR_LEN 16
#define FV_PACK_TRAILER_LEN 32
#define FV_PACK_TRAILER_MAGIC "FVPKEND1"
#define FV_FRAME_OVERHEAD 12 /* u32 length + u64 checksum */
#define FV_PACK_ID_LEN 16
#define FV_PACK_ENTRY_LEN 48 /* encoded TOC / index entry */
#define FV_FRAME_MAX (512u << 20)

/* One blob in a pack: where its frame is and what it holds. */
struct fv_pack_entry {
	uint8_t type;    /* FV_OBJ_DATA or FV_OBJ_TREE */
	uint32_t off;    /* frame offset from the start of the pack */
	uint32_t len;    /* frame length (payload + FV_FRAME_OVERHEAD) */
	uint32_t rawlen; /* plaintext length after decompression */
	uint8_t id[FV_ID_LEN];
};

/* Encode / decode one entry (FV_PACK_ENTRY_LEN bytes: u8 type, 3 zero bytes,
 * u32 off, u32 len, u32 rawlen, id). decode returns 0 or -EBADMSG. */
void fv_pack_entry_encode(const struct fv_pack_entry *e, struct fv_buf *out);
int fv_pack_entry_decode(struct fv_rd *r, struct fv_pack_entry *e);

/* Relative path of a pack inside the repository: "packs/ab/<32 hex>". */
void fv_pack_path(const uint8_t packid[FV_PACK_ID_LEN], char out[64]);

/* A writer stages the pack in a buffer of FV_PACK_WBUF bytes, aligned to
 * FV_PACK_ALIGN, and writes it whole, at aligned offsets, with O_DIRECT
 * where the file system takes it: pack data then goes from that one reused
 * buffer to the disk, without the page cache, whose fresh pages cost more
 * than compressing the data on a virtual machine whose memory the host
 * reclaims (docs/performance.md). Where O_DIRECT is refused the same writes
 * go through the page cache. Bytes past file_off are not in the file yet:
 * fv_pack_writer_flush() before reading them. */
#define FV_PACK_WBUF (1u << 20)
#define FV_PACK_ALIGN 4096u

struct fv_pack_writer {
	int fd;
	uint8_t packid[FV_PACK_ID_LEN];
	char tmpname[64];  /* relative to the repository dir */
	uint64_t off;      /* the pack's length so far, buffered bytes included */
	struct fv_buf toc; /* encoded entries so far */
	uint32_t n;
	uint8_t *wbuf;     /* FV_PACK_WBUF bytes, from open to finish or abort */
	size_t wlen;       /* bytes staged in wbuf */
	uint64_t wbase;    /* the pack offset of wbuf[0]: a multiple of FV_PACK_ALIGN */
	uint64_t file_off; /* bytes before this offset are in the file */
	uint64_t wb_start; /* without O_DIRECT: bytes before this offset are under writeback */
	bool direct;       /* the file is open with O_DIRECT */
	int err;           /* a failed write: sticky, the file's length is unknown */
};

/* Start a new pack under repofd's tmp/. Returns 0 or -errno. */
int fv_pack_writer_open(struct fv_pack_writer *w, int repofd);

/* Write what the writer holds buffered to the file (the last partial block
 * is written padded, and again with what follows it). Returns 0 or -errno
 * (the pack is then unusable: every later call fails; abort it). */
int fv_pack_writer_flush(struct fv_pack_writer *w);

/* Append one blob whose sealed payload is p[0..n); fills *ent. Returns 0 or
 * -errno (the pack is then unusable: abort it). The frame may stay buffered
 * until a later call (see FV_PACK_WBUF); a failure to write it then shows in
 * that call. */
int fv_pack_writer_add(struct fv_pack_writer *w, uint8_t type, const uint8_t id[FV_ID_LEN], uint32_t rawlen,
		       const uint8_t *p, size_t n, struct fv_pack_entry *ent);

/* Write the sealed TOC and the trailer, fsync the file, rename it to
 * packs/xx/<id>, fsync that directory. Returns 0 or -errno; on error the
 * temporary file is removed. The writer is closed either way. */
int fv_pack_writer_finish(struct fv_pack_writer *w, const struct fv_keys *k, int repofd);

/* Discard an unfinished pack (removes the temporary file). */
void fv_pack_writer_abort(struct fv_pack_writer *w, int repofd);

/* Read the frame at off/len of an open pack into buf (reset first) and check
 * its length field and checksum; *payload (may be NULL) then points at the
 * payload inside buf, *n its length (no copy: this is every blob read of
 * restore and check). Returns 0, -EUCLEAN (damaged or short) or -errno. */
int fv_pack_read_frame(int fd, uint32_t off, uint32_t len, struct fv_buf *buf, const uint8_t **payload,
		       size_t *n);

/* Read and unseal the TOC of the pack packid (size bytes, open as fd):
 * *ents (malloc'd, caller frees) and *n. Returns 0 or -EUCLEAN naming
 * nothing: the caller knows the path. */
int fv_pack_read_toc(int fd, uint64_t size, const struct fv_keys *k, const uint8_t packid[FV_PACK_ID_LEN],
		     struct fv_pack_entry **ents, uint32_t *n);

/* Keyless integrity scan: walk every frame from the header to the TOC and
 * check lengths and checksums. bad(ud, off, why) is called for each problem;
 * the walk stops at the first damaged frame, since its length cannot be
 * trusted (the caller may then check blobs one by one from the TOC). Returns
 * the number of problems found (0 = intact) or -errno on I/O error. */
int fv_pack_scan(int fd, uint64_t size, void (*bad)(void *ud, uint64_t off, const char *why), void *ud);

#endif
