/* chunker: FastCDC content-defined chunking with a keyed gear table
 * (docs/repository-format.md, "Chunking").
 *
 * Gear hash, normalized chunking (level 2): below avg the cut mask has two
 * more bits than log2(avg), above avg two fewer; no cut before min, a forced
 * cut at max. The 256-entry gear table is derived from a 32-byte seed (the
 * repository's gear subkey), so boundaries reveal nothing without the key.
 *
 * The chunker is stateless between chunks: the caller hands it a buffer that
 * starts at a chunk boundary. A struct fv_chunker is read-only after init
 * and may be shared by threads.
 */
#ifndef FV_CHUNKER_H
#define FV_CHUNKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FV_CHUNK_MIN_DEFAULT (512u * 1024)
#define FV_CHUNK_AVG_DEFAULT (1024u * 1024)
#define FV_CHUNK_MAX_DEFAULT (8u * 1024 * 1024)

struct fv_chunker_params {
	uint32_t min, avg, max;
};

struct fv_chunker {
	struct fv_chunker_params p;
	uint64_t mask_s, mask_l; /* stricter mask before avg, looser after */
	uint64_t gear[256];
};

/* Check params: 64 <= min < avg < max <= 64 MiB, avg a power of two.
 * Returns 0 or -EINVAL. */
int fv_chunker_params_check(const struct fv_chunker_params *p);

/* Build c from params and the 32-byte seed. Returns 0, -EINVAL (bad params)
 * or -EIO (libsodium failed to produce the table). */
int fv_chunker_init(struct fv_chunker *c, const struct fv_chunker_params *p, const uint8_t seed[32]);

/* Length of the chunk that starts at data[0], given len available bytes.
 * When eof is false and no cut point lies within data[0..len) (len < max),
 * returns 0: the caller must supply more data (at least max bytes, or all
 * that is left). When eof is true, returns at most len and never 0 unless
 * len is 0. */
size_t fv_chunker_next(const struct fv_chunker *c, const uint8_t *data, size_t len, bool eof);

#endif
