#include "index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(struct fv_index_entry) == 40, "index entries are 40 bytes (index.h)");

/* The slot table holds at most 7/8 of its size, and grows to hold 1.25
 * times the count: the load then never falls below 0.7 (index.h). */
#define MIN_SLOTS 16
/* The entry array grows by 1/32, at least this many entries. */
#define MIN_GROW 16

static size_t max_load(size_t ns)
{
	return ns - ns / 8;
}

/* The smallest table size that holds count entries. */
static size_t slots_for(size_t count)
{
	size_t ns = count + count / 7 + 1;
	while (max_load(ns) < count)
		ns++;
	return ns < MIN_SLOTS ? MIN_SLOTS : ns;
}

/* Ids are uniform: their first 8 bytes are the hash, reduced to [0, ns) by
 * multiply-shift, so the table can have any size (no doubling). */
static size_t slot_of(const uint8_t *id, size_t ns)
{
	return (size_t)(((unsigned __int128)fv_get_le64(id) * ns) >> 64);
}

/* Id bits independent of the position, compared before reading an entry. */
static uint32_t tag_of(const uint8_t *id)
{
	return fv_get_le32(id + 8);
}

/* The smallest 2^k - 1 >= count (k >= 12): the slot bits for entry number + 1. */
static uint32_t imask_for(size_t count)
{
	if (count >= UINT32_MAX)
		return UINT32_MAX;
	uint32_t m = 0xfff;
	while (m < count)
		m = m << 1 | 1;
	return m;
}

/* Rebuild the slot table with ns slots for entries [0, ix->n). */
static int rehash(struct fv_index *ix, size_t ns)
{
	uint32_t *s = calloc(ns, sizeof *s);
	if (!s)
		return -ENOMEM;
	uint32_t imask = imask_for(max_load(ns));
	for (size_t i = 0; i < ix->n; i++) {
		const uint8_t *id = ix->e[i].idp;
		size_t h = slot_of(id, ns);
		while (s[h])
			h = h + 1 == ns ? 0 : h + 1;
		s[h] = (tag_of(id) & ~imask) | (uint32_t)(i + 1);
	}
	free(ix->slots);
	ix->slots = s;
	ix->nslots = ns;
	ix->imask = imask;
	return 0;
}

static void pack_insert(uint32_t *s, size_t ns, const uint8_t *packid, uint32_t v)
{
	size_t h = slot_of(packid, ns);
	while (s[h])
		h = h + 1 == ns ? 0 : h + 1;
	s[h] = v;
}

/* Rebuild the pack slots for count packs: the same sizing as the blob
 * slots (pack ids are random), since a pack of few chunks makes its
 * per-pack bytes count per chunk too. */
static int pack_rehash(struct fv_index *ix, size_t count)
{
	size_t ns = slots_for(count);
	uint32_t *s = calloc(ns, sizeof *s);
	if (!s)
		return -ENOMEM;
	for (uint32_t i = 0; i < ix->npacks; i++)
		pack_insert(s, ns, ix->packs[i], i + 1);
	free(ix->pslots);
	ix->pslots = s;
	ix->npslots = ns;
	return 0;
}

void fv_index_free(struct fv_index *ix)
{
	free(ix->e);
	free(ix->slots);
	free(ix->ids);
	free(ix->packs);
	free(ix->pslots);
	memset(ix, 0, sizeof *ix);
}

/* Make room for count entries in all. The array grows to count, but by at
 * least 1/32, so that loading many index files (one reserve each) copies
 * it O(log n) times; the slot table likewise to hold count, at least 1.25
 * times the present count; the pending ids by at least half. */
static int make_room(struct fv_index *ix, size_t count)
{
	if (count > UINT32_MAX - 1)
		return -E2BIG;
	if (count > ix->cap) {
		size_t step = ix->cap / 32 > MIN_GROW ? ix->cap / 32 : MIN_GROW;
		size_t cap = ix->cap + step > count ? ix->cap + step : count;
		struct fv_index_entry *e = realloc(ix->e, cap * sizeof *e);
		if (!e)
			return -ENOMEM;
		ix->e = e;
		ix->cap = cap;
	}
	size_t pending = count - ix->ids_from;
	if (pending > ix->idscap) {
		size_t step = ix->idscap / 2 > MIN_GROW ? ix->idscap / 2 : MIN_GROW;
		size_t cap = ix->idscap + step > pending ? ix->idscap + step : pending;
		void *p = realloc(ix->ids, cap * sizeof *ix->ids);
		if (!p)
			return -ENOMEM;
		ix->ids = p;
		ix->idscap = cap;
	}
	if (count > max_load(ix->nslots) || count > ix->imask) {
		size_t gentle = ix->n + ix->n / 4;
		return rehash(ix, slots_for(count > gentle ? count : gentle));
	}
	return 0;
}

int fv_index_reserve(struct fv_index *ix, size_t n)
{
	if (n > UINT32_MAX - 1 - ix->n)
		return -E2BIG;
	return make_room(ix, ix->n + n);
}

int fv_index_pack_number(struct fv_index *ix, const uint8_t packid[FV_PACK_ID_LEN], uint32_t *num)
{
	const size_t ns = ix->npslots;
	for (size_t h = ns ? slot_of(packid, ns) : 0; ns && ix->pslots[h]; h = h + 1 == ns ? 0 : h + 1) {
		uint32_t i = ix->pslots[h] - 1;
		if (memcmp(ix->packs[i], packid, FV_PACK_ID_LEN) == 0) {
			*num = i;
			return 0;
		}
	}
	if (ix->npacks >= FV_INDEX_MAX_PACKS)
		return -E2BIG;
	if (ix->npacks == ix->packcap) {
		uint32_t cap = ix->packcap + (ix->packcap / 16 > 16 ? ix->packcap / 16 : 16);
		void *p = realloc(ix->packs, (size_t)cap * FV_PACK_ID_LEN);
		if (!p)
			return -ENOMEM;
		ix->packs = p;
		ix->packcap = cap;
	}
	if (ix->npacks + 1 > max_load(ix->npslots)) {
		size_t gentle = ix->npacks + ix->npacks / 4;
		int rc = pack_rehash(ix, gentle > ix->npacks + 1 ? gentle : ix->npacks + 1);
		if (rc < 0)
			return rc;
	}
	memcpy(ix->packs[ix->npacks], packid, FV_PACK_ID_LEN);
	ix->npacks++;
	pack_insert(ix->pslots, ix->npslots, packid, ix->npacks);
	*num = ix->npacks - 1;
	return 0;
}

const struct fv_index_entry *fv_index_find(const struct fv_index *ix, const uint8_t id[FV_ID_LEN])
{
	if (!ix->nslots)
		return NULL;
	const uint32_t imask = ix->imask, tag = tag_of(id) & ~imask;
	const size_t ns = ix->nslots;
	for (size_t h = slot_of(id, ns);; h = h + 1 == ns ? 0 : h + 1) {
		uint32_t s = ix->slots[h];
		if (!s)
			return NULL;
		if ((s & ~imask) != tag)
			continue;
		const struct fv_index_entry *e = &ix->e[(s & imask) - 1];
		if (memcmp(e->idp, id, FV_INDEX_PREFIX_LEN) == 0)
			return e;
	}
}

int fv_index_add(struct fv_index *ix, uint32_t pack, const struct fv_pack_entry *pe)
{
	if (fv_index_find(ix, pe->id))
		return 0;
	int rc = make_room(ix, ix->n + 1);
	if (rc < 0)
		return rc;
	struct fv_index_entry *e = &ix->e[ix->n];
	memcpy(e->idp, pe->id, FV_INDEX_PREFIX_LEN);
	e->pack_type = (uint32_t)pe->type << 28 | pack;
	e->off = pe->off;
	e->len = pe->len;
	e->rawlen = pe->rawlen;
	memcpy(ix->ids[ix->n - ix->ids_from], pe->id, FV_ID_LEN);
	size_t h = slot_of(pe->id, ix->nslots);
	while (ix->slots[h])
		h = h + 1 == ix->nslots ? 0 : h + 1;
	ix->slots[h] = (tag_of(pe->id) & ~ix->imask) | (uint32_t)(ix->n + 1);
	ix->n++;
	return 1;
}

/* Give back pending-id capacity beyond twice what is pending. */
static void shrink_ids(struct fv_index *ix)
{
	size_t pending = ix->n - ix->ids_from;
	if (!pending) {
		free(ix->ids);
		ix->ids = NULL;
		ix->idscap = 0;
	} else if (ix->idscap / 2 > pending) {
		void *p = realloc(ix->ids, pending * sizeof *ix->ids);
		if (p) { /* else keep the larger block: still correct */
			ix->ids = p;
			ix->idscap = pending;
		}
	}
}

int fv_index_truncate(struct fv_index *ix, size_t n)
{
	if (n >= ix->n)
		return 0;
	if (n < ix->ids_from)
		ix->ids_from = n;
	ix->n = n;
	shrink_ids(ix);
	/* the array keeps at most 1/32 of slack, as if it had grown to n */
	size_t cap = n + (n / 32 > MIN_GROW ? n / 32 : MIN_GROW);
	if (cap < ix->cap) {
		struct fv_index_entry *e = realloc(ix->e, cap * sizeof *e);
		if (e) {
			ix->e = e;
			ix->cap = cap;
		}
	}
	return rehash(ix, slots_for(n + n / 4));
}

void fv_index_settle(struct fv_index *ix, size_t n)
{
	if (n > ix->n)
		n = ix->n;
	if (n <= ix->ids_from)
		return;
	size_t drop = n - ix->ids_from;
	memmove(ix->ids, ix->ids + drop, (ix->n - n) * sizeof *ix->ids);
	ix->ids_from = n;
	shrink_ids(ix);
}

const uint8_t *fv_index_id(const struct fv_index *ix, size_t i)
{
	return i >= ix->ids_from && i < ix->n ? ix->ids[i - ix->ids_from] : NULL;
}

size_t fv_index_memory(const struct fv_index *ix)
{
	return ix->cap * sizeof *ix->e + ix->nslots * sizeof *ix->slots + ix->idscap * sizeof *ix->ids +
	       (size_t)ix->packcap * FV_PACK_ID_LEN + ix->npslots * sizeof *ix->pslots;
}

/* Index-file plaintext: u32 version, u32 npacks, then per pack: pack id,
 * u32 count, count entries (fv_pack_entry_encode). */
int fv_index_encode(const struct fv_index *ix, size_t from, struct fv_buf *out)
{
	if (from < ix->ids_from)
		return -EINVAL;
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
			const struct fv_index_entry *e = &ix->e[i];
			struct fv_pack_entry pe = {
				.type = fv_index_type(e), .off = e->off, .len = e->len, .rawlen = e->rawlen};
			memcpy(pe.id, ix->ids[i - ix->ids_from], FV_ID_LEN);
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
