/* buf: a growable byte buffer for encoding, and a bounds-checked reader for
 * decoding. Every on-disk and on-wire format of fabvault is little-endian
 * and is built with these helpers (docs/repository-format.md cites them).
 *
 * Encoding never fails half-way silently: the first allocation failure sets
 * b->oom and later appends become no-ops; check fv_buf_ok() once at the end.
 * Decoding never reads past the end: the first short read sets r->bad and
 * every later read returns zeros; check fv_rd_ok() once at the end.
 * Neither is thread-safe; each object belongs to one thread at a time.
 */
#ifndef FV_BUF_H
#define FV_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fv_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	bool oom;
};

/* Release the memory of b and reset it to empty. b may be zero-initialised. */
void fv_buf_free(struct fv_buf *b);
/* Make room for at least extra more bytes. Returns 0 or -ENOMEM. */
int fv_buf_reserve(struct fv_buf *b, size_t extra);
/* Append n bytes of p. */
void fv_buf_put(struct fv_buf *b, const void *p, size_t n);
void fv_buf_u8(struct fv_buf *b, uint8_t v);
void fv_buf_u16(struct fv_buf *b, uint16_t v);
void fv_buf_u32(struct fv_buf *b, uint32_t v);
void fv_buf_u64(struct fv_buf *b, uint64_t v);
/* A string: u32 length, then the bytes (no terminator). */
void fv_buf_str(struct fv_buf *b, const char *s, size_t n);
/* Append n zero bytes and return a pointer to them (NULL after oom). The
 * pointer is valid until the next append. */
uint8_t *fv_buf_extend(struct fv_buf *b, size_t n);
/* The same without zeroing: for scratch space the caller fills at once (the
 * data path: no memset of a megabyte that is overwritten next). */
uint8_t *fv_buf_grow(struct fv_buf *b, size_t n);
/* True when no append has failed. */
static inline bool fv_buf_ok(const struct fv_buf *b)
{
	return !b->oom;
}

struct fv_rd {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool bad;
};

static inline void fv_rd_init(struct fv_rd *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->bad = false;
}
/* Return a pointer to the next n bytes and advance, or NULL (and set bad). */
const uint8_t *fv_rd_get(struct fv_rd *r, size_t n);
uint8_t fv_rd_u8(struct fv_rd *r);
uint16_t fv_rd_u16(struct fv_rd *r);
uint32_t fv_rd_u32(struct fv_rd *r);
uint64_t fv_rd_u64(struct fv_rd *r);
/* Read a u32-length string of at most max bytes into a new NUL-terminated
 * allocation (*out, caller frees). The string must not contain NUL. Returns
 * 0, -EBADMSG (bad length, embedded NUL, short input) or -ENOMEM. */
int fv_rd_str(struct fv_rd *r, size_t max, char **out, size_t *outlen);
static inline size_t fv_rd_left(const struct fv_rd *r)
{
	return r->bad ? 0 : r->len - r->off;
}
static inline bool fv_rd_ok(const struct fv_rd *r)
{
	return !r->bad;
}

/* Little-endian loads and stores on raw memory (alignment-free). */
void fv_put_le16(uint8_t *p, uint16_t v);
void fv_put_le32(uint8_t *p, uint32_t v);
void fv_put_le64(uint8_t *p, uint64_t v);
uint16_t fv_get_le16(const uint8_t *p);
uint32_t fv_get_le32(const uint8_t *p);
uint64_t fv_get_le64(const uint8_t *p);

/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void fv_hex(const uint8_t *p, size_t n, char *out);
/* Parse exactly 2n hex digits into p. Returns 0 or -EINVAL. */
int fv_unhex(const char *s, uint8_t *p, size_t n);

#endif
