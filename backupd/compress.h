/* compress: the compression policy of blobs (docs/repository-format.md,
 * "Blobs"): a cheap sample of each blob decides whether it is stored raw,
 * compressed on zstd's fast path for noisy binary (float vectors), or at the
 * repository's level. Thread-safe: all state is in the caller's ZSTD_CCtx.
 */
#ifndef FV_COMPRESS_H
#define FV_COMPRESS_H

#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#include "config.h"

enum fv_comp_path {
	FV_COMP_RAW,   /* compressed or encrypted data: stored raw, untried */
	FV_COMP_NOISY, /* noisy binary: zstd's fastest search, literals Huffman-coded */
	FV_COMP_LEVEL, /* everything else: the repository's level */
};

/* The path the sample of data[0..len) picks (len < 4 KiB: FV_COMP_LEVEL). */
enum fv_comp_path fv_compress_choose(const uint8_t *data, size_t len);

/* Compress data[0..len) into dst (room for ZSTD_compressBound(len)) as cfg
 * asks, by the path fv_compress_choose() picks. Returns the length of the
 * zstd frame (with content size), or 0 when the blob is to be stored raw:
 * compression off, data incompressible, or no gain. */
size_t fv_compress_body(ZSTD_CCtx *cctx, const struct fv_config *cfg, const uint8_t *data, size_t len,
			uint8_t *dst, size_t cap);

#endif
