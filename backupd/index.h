/* index: the in-memory map from blob id to its place in a pack, and the
 * codec of index files (docs/repository-format.md, "Index").
 *
 * Memory: a dense array of 48-byte entries plus a table of 4-byte slots
 * (open addressing, linear probing, load <= 3/4). Ids are keyed BLAKE2b
 * output, so their first 8 bytes are already a uniform hash. With the table
 * sized for the loaded count that is 48 + 4/load = 53.3..58.7 bytes per
 * chunk; fv_index_memory() reports the real figure.
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

struct fv_index_entry {
	uint8_t id[FV_ID_LEN];
	uint32_t pack_type; /* type << 28 | pack number */
	uint32_t off, len, rawlen;
};

struct fv_index {
	struct fv_index_entry *e;
	size_t n, cap;
	uint32_t *slots; /* entry number + 1, 0 = empty */
	size_t nslots;   /* power of two */
	uint8_t (*packs)[FV_PACK_ID_LEN];
	uint32_t npacks, packcap;
	uint32_t *pslots; /* pack number + 1 */
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

/* Reserve room for n more entries (avoids regrowth when loading). */
int fv_index_reserve(struct fv_index *ix, size_t n);

/* The number of pack packid, adding it when new. Returns 0 or -ENOMEM/-E2BIG. */
int fv_index_pack_number(struct fv_index *ix, const uint8_t packid[FV_PACK_ID_LEN], uint32_t *num);

/* Add entry pe of pack number pack. Returns 1 when added, 0 when the id was
 * already present (the first location is kept), -ENOMEM. */
int fv_index_add(struct fv_index *ix, uint32_t pack, const struct fv_pack_entry *pe);

/* The entry for id, or NULL. The pointer is valid until the next add. */
const struct fv_index_entry *fv_index_find(const struct fv_index *ix, const uint8_t id[FV_ID_LEN]);

/* Forget entries [n, ix->n) (blobs of a pack that was never made durable).
 * Returns 0 or -ENOMEM (the index is then unusable: close the repository). */
int fv_index_truncate(struct fv_index *ix, size_t n);

/* Bytes of memory the index holds now. */
size_t fv_index_memory(const struct fv_index *ix);

/* Encode entries [from, ix->n) as index-file plaintext into out. Entries of
 * one pack must be contiguous (they are: packs are written one at a time). */
int fv_index_encode(const struct fv_index *ix, size_t from, struct fv_buf *out);

/* Add every entry of an index-file plaintext. Returns 0, -EBADMSG, -ENOMEM. */
int fv_index_decode(struct fv_index *ix, const uint8_t *p, size_t len);

#endif
