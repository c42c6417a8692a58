/* index: the in-memory map from blob id to its place in a pack, and the
 * codec of index files (docs/repository-format.md, "Index").
 *
 * Memory, at most 48 bytes per indexed chunk at every size (measured by
 * fv_index_memory(), tests/unit/test_index.c):
 *  - a dense array of 40-byte entries that keep the first 24 bytes of the
 *    id, not all 32. Ids are keyed BLAKE2b-256, uniform and secret-keyed:
 *    two of n ids share 192 bits with probability below n^2 / 2^193
 *    (2^-129 at 2^32 chunks). The array grows by 1/32 (or to the count a
 *    reserve asks for, when more), so its slack is at most 1.25 bytes per
 *    chunk; realloc copies it O(log n) times, which is noise next to the
 *    chunk each add stands for;
 *  - a table of 4-byte slots, open addressing with linear probing, of any
 *    size (position = (first 8 id bytes * nslots) >> 64), load at most 7/8,
 *    grown to 1.25 times the count: load at least 0.7, so at most 5.7 bytes
 *    per chunk. A slot holds the entry number + 1 in its low bits and id
 *    bits (bytes 8..11) in the bits the entry number does not need, so a
 *    probe rarely has to read an entry that does not match.
 * Worst case 40 * 33/32 + 4 / 0.7 = 47.0 bytes, plus the pack table, sized
 * the same way: at most 17 bytes of pack id and 5.7 of slot per pack, 0.7
 * bytes per chunk with the default 32 MiB packs of incompressible 1 MiB
 * chunks (more with packs of fewer chunks: with 1 MiB packs, pack_size's
 * minimum, up to 23 bytes per chunk more). From 1,000 chunks up: below that
 * the fixed minimums (16 slots, 16 pack ids) dominate, a few KiB in all.
 *
 * Full ids are kept only for the pending tail: entries from the first one
 * no index file names yet (fv_index_settle moves that point). Those cost 32
 * bytes more each until settled; fv_index_id() gives them, and
 * fv_index_encode() needs them. Everything else that needs a full id (to
 * unseal a blob, whose AEAD associated data is its full id) has it from
 * where it looked the blob up. A prefix match with a different full id is
 * the only way a lookup can be wrong; reading that blob then fails
 * authentication: it can lose a chunk, never return wrong bytes.
 *
 * Not thread-safe: one thread owns an index.
 */
#ifndef FV_INDEX_H
#define FV_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "crypto.h"
#include "pack.h"

#define FV_INDEX_MAX_PACKS (1u << 28)

/* Bytes of the id an entry keeps (see above). */
#define FV_INDEX_PREFIX_LEN 24

struct fv_index_entry {
	uint8_t idp[FV_INDEX_PREFIX_LEN]; /* the id's first bytes */
	uint32_t pack_type;               /* type << 28 | pack number */
	uint32_t off, len, rawlen;
};

struct fv_index {
	struct fv_index_entry *e;
	size_t n, cap;
	uint32_t *slots;           /* tag bits | (entry number + 1), 0 = empty */
	size_t nslots;             /* any size >= 16 (multiply-shift), 0 when none */
	uint32_t imask;            /* the bits of a slot that hold entry number + 1 */
	uint8_t (*ids)[FV_ID_LEN]; /* full ids of entries [ids_from, n) */
	size_t ids_from, idscap;
	uint8_t (*packs)[FV_PACK_ID_LEN];
	uint32_t npacks, packcap;
	uint32_t *pslots; /* pack number + 1, sized like slots */
	size_t npslots;
};

static inline uint32_t fv_index_pack(const struct fv_index_entry *e)
{
	return e->pack_type & 0x0fffffffu;
}
static inline uint8_t fv_index_type(const struct fv_index_entry *e)
{
	return (uint8_t)(e->pack_type >> 28);
}

/* Free what ix owns; ix may be zero-initialised. */
void fv_index_free(struct fv_index *ix);

/* Reserve room for n more entries (avoids regrowth when loading): the
 * array is sized to the count, or grown by 1/32 when that is more.
 * Returns 0, -ENOMEM or -E2BIG. */
int fv_index_reserve(struct fv_index *ix, size_t n);

/* The number of pack packid, adding it when new. Returns 0 or -ENOMEM/-E2BIG. */
int fv_index_pack_number(struct fv_index *ix, const uint8_t packid[FV_PACK_ID_LEN], uint32_t *num);

/* Add entry pe of pack number pack; its full id is kept until settled.
 * Returns 1 when added, 0 when the id (its prefix) was already present
 * (the first location is kept), -ENOMEM or -E2BIG. */
int fv_index_add(struct fv_index *ix, uint32_t pack, const struct fv_pack_entry *pe);

/* The entry whose id has id's first FV_INDEX_PREFIX_LEN bytes, or NULL.
 * The pointer is valid until the next add, truncate or reserve. */
const struct fv_index_entry *fv_index_find(const struct fv_index *ix, const uint8_t id[FV_ID_LEN]);

/* Forget entries [n, ix->n) (blobs of a pack that was never made durable),
 * and give back the memory they used.
 * Returns 0 or -ENOMEM (the index is then unusable: close the repository). */
int fv_index_truncate(struct fv_index *ix, size_t n);

/* Entries [0, n) are named by index files: forget their full ids (n <=
 * ix->n; entries before the current settled point stay settled). Touches
 * nothing fv_index_find reads. */
void fv_index_settle(struct fv_index *ix, size_t n);

/* The full id of entry i, or NULL when i is settled (or not an entry). */
const uint8_t *fv_index_id(const struct fv_index *ix, size_t i);

/* Bytes of memory the index holds now, capacity slack included. */
size_t fv_index_memory(const struct fv_index *ix);

/* Encode entries [from, ix->n) as index-file plaintext into out. Entries of
 * one pack must be contiguous (they are: packs are written one at a time),
 * and none may be settled (from >= ix->ids_from, else -EINVAL). */
int fv_index_encode(const struct fv_index *ix, size_t from, struct fv_buf *out);

/* Add every entry of an index-file plaintext. Returns 0, -EBADMSG, -ENOMEM. */
int fv_index_decode(struct fv_index *ix, const uint8_t *p, size_t len);

#endif
