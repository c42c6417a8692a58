#include "index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t hash_of(const uint8_t *key)
{
	return (size_t)fv_get_le64(key);
}

void fv_index_free(struct fv_index *ix)
{
	free(ix->e);
	free(ix->slots);
	free(ix->packs);
	free(ix->pslots);
	memset(ix, 0, sizeof *ix);
}

/* Rebuild slots for count items whose keys are key_at(i). */
static int rehash(uint32_t **slots, size_t *nslots, size_t want, const void *base, size_t stride,
		  size_t count)
{
	size_t ns = 16;
	while (ns / 4 * 3 < want)
		ns *= 2;
	uint32_t *s = calloc(ns, sizeof *s);
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		size_t h = hash_of((const uint8_t *)base + i * stride) & (ns - 1);
		while (s[h])
			h = (h + 1) & (ns - 1);
		s[h] = (uint32_t)(i + 1);
	}
	free(*slots);
	*slots = s;
	*nslots = ns;
	return 0;
}

int fv_index_reserve(struct fv_index *ix, size_t n)
{
	if (n > UINT32_MAX - 1 - ix->n)
		return -E2BIG;
	size_t want = ix->n + n;
	if (want > ix->cap) {
		struct fv_index_entry *e = realloc(ix->e, want * sizeof *e);
		if (!e)
			return -ENOMEM;
		ix->e = e;
		ix->cap = want;
	}
	if (want > ix->nslots / 4 * 3)
		return rehash(&ix->slots, &ix->nslots, want, ix->e, sizeof *ix->e, ix->n);
	return 0;
}

int fv_index_pack_number(struct fv_index *ix, const uint8_t packid[FV_PACK_ID_LEN], uint32_t *num)
{
	if (ix->npslots) {
		size_t h = hash_of(packid) & (ix->npslots - 1);
		for (; ix->pslots[h]; h = (h + 1) & (ix->npslots - 1)) {
			uint32_t i = ix->pslots[h] - 1;
			if (memcmp(ix->packs[i], packid, FV_PACK_ID_LEN) == 0) {
				*num = i;
				return 0;
			}
		}
	}
	if (ix->npacks >= FV_INDEX_MAX_PACKS)
		return -E2BIG;
	if (ix->npacks == ix->packcap) {
		uint32_t cap = ix->packcap ? ix->packcap * 2 : 64;
		void *p = realloc(ix->packs, (size_t)cap * FV_PACK_ID_LEN);
		if (!p)
			return -ENOMEM;
		ix->packs = p;
		ix->packcap = cap;
	}
	memcpy(ix->packs[ix->npacks], packid, FV_PACK_ID_LEN);
	ix->npacks++;
	if (ix->npacks > ix->npslots / 4 * 3) {
		int rc = rehash(&ix->pslots, &ix->npslots, ix->npacks * 2, ix->packs, FV_PACK_ID_LEN,
				ix->npacks);
		if (rc < 0) {
			ix->npacks--;
			return rc;
		}
	} else {
		size_t h = hash_of(packid) & (ix->npslots - 1);
		while (ix->pslots[h])
			h = (h + 1) & (ix->npslots - 1);
		ix->pslots[h] = ix->npacks;
	}
	*num = ix->npacks - 1;
	return 0;
}

const struct fv_index_entry *fv_index_find(const struct fv_index *ix, const uint8_t id[FV_ID_LEN])
{
	if (!ix->nslots)
		return NULL;
	size_t mask = ix->nslots - 1;
	for (size_t h = hash_of(id) & mask; ix->slots[h]; h = (h + 1) & mask) {
		const struct fv_index_entry *e = &ix->e[ix->slots[h] - 1];
		if (memcmp(e->id, id, FV_ID_LEN) == 0)
			return e;
	}
	return NULL;
}

int fv_index_add(struct fv_index *ix, uint32_t pack, const struct fv_pack_entry *pe)
{
	if (fv_index_find(ix, pe->id))
		return 0;
	if (ix->n == ix->cap || ix->n + 1 > ix->nslots / 4 * 3) {
		/* grow by half: amortised O(1) without doubling peak memory */
		size_t more = ix->cap / 2 > 1024 ? ix->cap / 2 : 1024;
		int rc = fv_index_reserve(ix, more);
		if (rc < 0)
			return rc;
	}
	struct fv_index_entry *e = &ix->e[ix->n];
	memcpy(e->id, pe->id, FV_ID_LEN);
	e->pack_type = (uint32_t)pe->type << 28 | pack;
	e->off = pe->off;
	e->len = pe->len;
	e->rawlen = pe->rawlen;
	size_t mask = ix->nslots - 1, h = hash_of(pe->id) & mask;
	while (ix->slots[h])
		h = (h + 1) & mask;
	ix->slots[h] = (uint32_t)(ix->n + 1);
	ix->n++;
	return 1;
}

int fv_index_truncate(struct fv_index *ix, size_t n)
{
	if (n >= ix->n)
		return 0;
	ix->n = n;
	return rehash(&ix->slots, &ix->nslots, ix->cap, ix->e, sizeof *ix->e, ix->n);
}

size_t fv_index_memory(const struct fv_index *ix)
{
	return ix->cap * sizeof *ix->e + ix->nslots * sizeof *ix->slots +
	       (size_t)ix->packcap * FV_PACK_ID_LEN + ix->npslots * sizeof *ix->pslots;
}

static void to_pack_entry(const struct fv_index_entry *e, struct fv_pack_entry *pe)
{
	pe->type = fv_index_type(e);
	pe->off = e->off;
	pe->len = e->len;
	pe->rawlen = e->rawlen;
	memcpy(pe->id, e->id, FV_ID_LEN);
}

/* Index-file plaintext: u32 version, u32 npacks, then per pack: pack id,
 * u32 count, count entries (fv_pack_entry_encode). */
int fv_index_encode(const struct fv_index *ix, size_t from, struct fv_buf *out)
{
	uint32_t npacks = 0;
	for (size_t i = from; i < ix->n; i++)
		if (i == from || fv_index_pack(&ix->e[i]) != fv_index_pack(&ix->e[i - 1]))
			npacks++;
	fv_buf_u32(out, 1);
	fv_buf_u32(out, npacks);
	for (size_t i = from; i < ix->n;) {
		uint32_t pack = fv_index_pack(&ix->e[i]);
		size_t j = i;
		while (j < ix->n && fv_index_pack(&ix->e[j]) == pack)
			j++;
		fv_buf_put(out, ix->packs[pack], FV_PACK_ID_LEN);
		fv_buf_u32(out, (uint32_t)(j - i));
		for (; i < j; i++) {
			struct fv_pack_entry pe;
			to_pack_entry(&ix->e[i], &pe);
			fv_pack_entry_encode(&pe, out);
		}
	}
	return fv_buf_ok(out) ? 0 : -ENOMEM;
}

int fv_index_decode(struct fv_index *ix, const uint8_t *p, size_t len)
{
	struct fv_rd r;
	fv_rd_init(&r, p, len);
	uint32_t ver = fv_rd_u32(&r), npacks = fv_rd_u32(&r);
	if (!fv_rd_ok(&r) || ver != 1)
		return -EBADMSG;
	/* Each pack costs at least 20 bytes: a count that cannot fit is a lie. */
	if ((uint64_t)npacks * (FV_PACK_ID_LEN + 4) > fv_rd_left(&r))
		return -EBADMSG;
	int rc = fv_index_reserve(ix, (fv_rd_left(&r) - npacks * (FV_PACK_ID_LEN + 4u)) / FV_PACK_ENTRY_LEN);
	if (rc < 0)
		return rc;
	for (uint32_t k = 0; k < npacks; k++) {
		const uint8_t *pid = fv_rd_get(&r, FV_PACK_ID_LEN);
		uint32_t cnt = fv_rd_u32(&r), num;
		if (!fv_rd_ok(&r) || (uint64_t)cnt * FV_PACK_ENTRY_LEN > fv_rd_left(&r))
			return -EBADMSG;
		rc = fv_index_pack_number(ix, pid, &num);
		if (rc < 0)
			return rc;
		for (uint32_t i = 0; i < cnt; i++) {
			struct fv_pack_entry pe;
			if (fv_pack_entry_decode(&r, &pe) < 0)
				return -EBADMSG;
			rc = fv_index_add(ix, num, &pe);
			if (rc < 0)
				return rc;
		}
	}
	return fv_rd_left(&r) == 0 ? 0 : -EBADMSG;
}
