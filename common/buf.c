#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void fv_buf_free(struct fv_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}

int fv_buf_reserve(struct fv_buf *b, size_t extra)
{
	if (b->oom)
		return -ENOMEM;
	if (extra <= b->cap - b->len)
		return 0;
	if (extra > SIZE_MAX / 2 - b->len)
		goto fail;
	size_t need = b->len + extra;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	uint8_t *d = realloc(b->data, cap);
	if (!d)
		goto fail;
	b->data = d;
	b->cap = cap;
	return 0;
fail:
	b->oom = true;
	return -ENOMEM;
}

uint8_t *fv_buf_grow(struct fv_buf *b, size_t n)
{
	if (fv_buf_reserve(b, n) < 0)
		return NULL;
	uint8_t *p = b->data + b->len;
	b->len += n;
	return p;
}

uint8_t *fv_buf_extend(struct fv_buf *b, size_t n)
{
	uint8_t *p = fv_buf_grow(b, n);
	if (p)
		memset(p, 0, n);
	return p;
}

void fv_buf_put(struct fv_buf *b, const void *p, size_t n)
{
	if (n == 0 || fv_buf_reserve(b, n) < 0)
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void fv_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void fv_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void fv_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint16_t fv_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t fv_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

uint64_t fv_get_le64(const uint8_t *p)
{
	return (uint64_t)fv_get_le32(p) | ((uint64_t)fv_get_le32(p + 4) << 32);
}

void fv_buf_u8(struct fv_buf *b, uint8_t v)
{
	fv_buf_put(b, &v, 1);
}

void fv_buf_u16(struct fv_buf *b, uint16_t v)
{
	uint8_t t[2];
	fv_put_le16(t, v);
	fv_buf_put(b, t, 2);
}

void fv_buf_u32(struct fv_buf *b, uint32_t v)
{
	uint8_t t[4];
	fv_put_le32(t, v);
	fv_buf_put(b, t, 4);
}

void fv_buf_u64(struct fv_buf *b, uint64_t v)
{
	uint8_t t[8];
	fv_put_le64(t, v);
	fv_buf_put(b, t, 8);
}

void fv_buf_str(struct fv_buf *b, const char *s, size_t n)
{
	if (n > UINT32_MAX) {
		b->oom = true; /* unrepresentable: fail the encoding, never truncate */
		return;
	}
	fv_buf_u32(b, (uint32_t)n);
	fv_buf_put(b, s, n);
}

const uint8_t *fv_rd_get(struct fv_rd *r, size_t n)
{
	if (r->bad || n > r->len - r->off) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

uint8_t fv_rd_u8(struct fv_rd *r)
{
	const uint8_t *p = fv_rd_get(r, 1);
	return p ? p[0] : 0;
}

uint16_t fv_rd_u16(struct fv_rd *r)
{
	const uint8_t *p = fv_rd_get(r, 2);
	return p ? fv_get_le16(p) : 0;
}

uint32_t fv_rd_u32(struct fv_rd *r)
{
	const uint8_t *p = fv_rd_get(r, 4);
	return p ? fv_get_le32(p) : 0;
}

uint64_t fv_rd_u64(struct fv_rd *r)
{
	const uint8_t *p = fv_rd_get(r, 8);
	return p ? fv_get_le64(p) : 0;
}

int fv_rd_str(struct fv_rd *r, size_t max, char **out, size_t *outlen)
{
	uint32_t n = fv_rd_u32(r);
	if (r->bad || n > max) {
		r->bad = true;
		return -EBADMSG;
	}
	const uint8_t *p = fv_rd_get(r, n);
	if (!p || memchr(p, 0, n)) {
		r->bad = true;
		return -EBADMSG;
	}
	char *s = malloc((size_t)n + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, p, n);
	s[n] = 0;
	*out = s;
	if (outlen)
		*outlen = n;
	return 0;
}

void fv_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int fv_unhex(const char *s, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]);
		int lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		p[i] = (uint8_t)(hi << 4 | lo);
	}
	return s[2 * n] ? -EINVAL : 0;
}
