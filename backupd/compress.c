/* compress: how a blob's body is compressed (contract in compress.h). */
/* for ZSTD_c_literalCompressionMode (compress_noisy) */
#define ZSTD_STATIC_LINKING_ONLY
#include "compress.h"

#include <stdbool.h>
#include <string.h>

/* How a blob is compressed (docs/repository-format.md, "Blobs"): a sample
 * of SAMPLE_RUNS runs of SAMPLE_RUN bytes, spread over the blob, gives a
 * byte histogram whose collision entropy H2 = log2(n^2 / sum(count^2))
 * sorts blobs into three kinds, for a few hundred nanoseconds:
 * - H2 >= 7.7 bits: already compressed or encrypted, stored raw untried
 *   (such data samples at 7.78-7.86; the sample makes H2 read low);
 * - H2 >= 5.8 bits: noisy binary such as float32 vectors, whose only gain
 *   is entropy-coding their bytes (exponents), not matches: zstd's fastest
 *   match search with Huffman-coded literals keeps that gain at ~1.35x the
 *   speed of level 3 (tests/bench/compress_bench);
 * - below: the repository's level.
 * Blobs shorter than two samples are simply tried at the level. */
#define SAMPLE_RUNS 32
#define SAMPLE_RUN 64
#define SAMPLE_N (SAMPLE_RUNS * SAMPLE_RUN)
/* sum(count^2) <= n^2 / 2^T  <=>  H2 >= T, for n = 2048: n^2 = 4194304 */
#define SQ_RAW 20171   /* 4194304 / 2^7.7 */
#define SQ_NOISY 75282 /* 4194304 / 2^5.8 */
/* the same for a quarter of the sample, n = 512, H2 < 5.0: 262144 / 2^5 */
#define SQ_QUARTER_PLAIN 8192
/* The noisy path: a negative level (its match search skips ahead fast) with
 * literals Huffman-coded, which negative levels otherwise turn off. The
 * fast path is taken only up to level 3: a higher level asks for size. */
#define NOISY_LEVEL (-10)
#define NOISY_MAX_LEVEL 3

/* sum(count^2) over the four histograms added up. */
static uint64_t sum_squares(uint32_t c[4][256])
{
	uint64_t sq = 0;
	for (size_t k = 0; k < 256; k++) {
		uint64_t v = (uint64_t)c[0][k] + c[1][k] + c[2][k] + c[3][k];
		sq += v * v;
	}
	return sq;
}

enum fv_comp_path fv_compress_choose(const uint8_t *data, size_t len)
{
	/* four histograms, so that runs of one byte value (text) do not make
	 * every increment wait for the one before */
	uint32_t c[4][256];
	if (len < 2 * SAMPLE_N)
		return FV_COMP_LEVEL;
	memset(c, 0, sizeof c);
	size_t step = len / SAMPLE_RUNS;
	for (size_t i = 0; i < SAMPLE_RUNS; i++) {
		const uint8_t *q = data + i * step;
		for (size_t j = 0; j < SAMPLE_RUN; j += 4) {
			c[0][q[j]]++;
			c[1][q[j + 1]]++;
			c[2][q[j + 2]]++;
			c[3][q[j + 3]]++;
		}
		/* a quarter of the sample in: text and most database pages
		 * (H2 under 5 bits) are plain already */
		if (i == SAMPLE_RUNS / 4 - 1 && sum_squares(c) > SQ_QUARTER_PLAIN)
			return FV_COMP_LEVEL;
	}
	uint64_t sq = sum_squares(c);
	if (sq <= SQ_RAW)
		return FV_COMP_RAW;
	return sq <= SQ_NOISY ? FV_COMP_NOISY : FV_COMP_LEVEL;
}

/* The noisy path into dst. ZSTD_c_literalCompressionMode is one of zstd's
 * experimental parameters: if this libzstd refuses it, level 1 (the fastest
 * level that Huffman-codes literals) stands in. */
static size_t compress_noisy(ZSTD_CCtx *cctx, const uint8_t *data, size_t len, uint8_t *dst, size_t cap)
{
	ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
	size_t rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, NOISY_LEVEL);
	if (!ZSTD_isError(rc))
		rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_literalCompressionMode, ZSTD_ps_enable);
	if (ZSTD_isError(rc))
		return ZSTD_compressCCtx(cctx, dst, cap, data, len, 1);
	return ZSTD_compress2(cctx, dst, cap, data, len);
}

size_t fv_compress_body(ZSTD_CCtx *cctx, const struct fv_config *cfg, const uint8_t *data, size_t len,
			uint8_t *dst, size_t cap)
{
	if (!cfg->compression || len == 0)
		return 0;
	enum fv_comp_path path = fv_compress_choose(data, len);
	if (path == FV_COMP_RAW)
		return 0;
	size_t c;
	if (path == FV_COMP_NOISY && cfg->zstd_level <= NOISY_MAX_LEVEL)
		c = compress_noisy(cctx, data, len, dst, cap);
	else
		c = ZSTD_compressCCtx(cctx, dst, cap, data, len, cfg->zstd_level);
	return !ZSTD_isError(c) && c < len ? c : 0;
}
