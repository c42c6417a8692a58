/* compress_bench: fabvault's compression policy (backupd/compress.c) against
 * zstd at the repository's level on every blob, on the same files, one
 * thread. Each file is cut into blocks (default 16 KiB, the block size of
 * page-aligned files; --block B in bytes), as the snapshot cuts SQLite
 * databases and files rewritten in place.
 *
 *   compress_bench [--level N] [--block B] FILE...
 *
 * Prints for each file the share of blocks on each path (raw, noisy, level),
 * the bytes stored and the MB/s (input bytes over compression time, median
 * of 3 runs) of the policy and of plain zstd -N per block, and the speed
 * ratio. MB is 10^6 bytes. Stored bytes count a block that does not shrink
 * as raw, as the repository does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "../../backupd/compress.h"
#include "../../backupd/config.h"
#include "bench.h"

#define RUNS 3
#define MAX_BYTES (256u << 20)

/* Read at most MAX_BYTES of path into *out; returns the length or -errno. */
static long read_file(const char *path, uint8_t **out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	uint8_t *p = malloc(MAX_BYTES);
	size_t n = p ? fread(p, 1, MAX_BYTES, f) : 0;
	fclose(f);
	if (!p)
		return -ENOMEM;
	*out = p;
	return (long)n;
}

/* One pass over the blocks; returns seconds and sets *stored. */
static double pass(ZSTD_CCtx *cctx, const struct fv_config *cfg, int policy, const uint8_t *d, size_t n,
		   size_t bs, uint8_t *dst, size_t cap, size_t *stored)
{
	*stored = 0;
	double t = fv_bench_now();
	for (size_t off = 0; off + bs <= n; off += bs) {
		size_t c;
		if (policy) {
			c = fv_compress_body(cctx, cfg, d + off, bs, dst, cap);
		} else {
			c = ZSTD_compressCCtx(cctx, dst, cap, d + off, bs, cfg->zstd_level);
			if (ZSTD_isError(c) || c >= bs)
				c = 0;
		}
		*stored += c ? c : bs;
	}
	return fv_bench_now() - t;
}

int main(int argc, char **argv)
{
	struct fv_config cfg = {.compression = 1, .zstd_level = 3};
	size_t bs = 16384;
	int i = 1, rc = 0;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--level") == 0 && i + 1 < argc)
			cfg.zstd_level = atoi(argv[++i]);
		else if (strcmp(argv[i], "--block") == 0 && i + 1 < argc)
			bs = strtoul(argv[++i], NULL, 10);
		else
			break;
	}
	if (i >= argc || bs < 64 || cfg.zstd_level < 1 || cfg.zstd_level > ZSTD_maxCLevel()) {
		fprintf(stderr, "usage: compress_bench [--level N] [--block BYTES] FILE...\n");
		return 2;
	}
	size_t cap = ZSTD_compressBound(bs);
	uint8_t *dst = malloc(cap);
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	if (!dst || !cctx) {
		fprintf(stderr, "compress_bench: out of memory\n");
		free(dst);
		ZSTD_freeCCtx(cctx);
		return 1;
	}
	printf("%-40s %8s %6s %6s %6s %12s %12s %9s %9s %6s\n", "file (blocks of the size asked)", "MB",
	       "raw%", "noisy%", "level%", "stored pol.", "stored zstd", "MB/s pol.", "MB/s zstd", "speed");
	for (; i < argc; i++) {
		uint8_t *d = NULL;
		long got = read_file(argv[i], &d);
		if (got < 0) {
			fprintf(stderr, "compress_bench: cannot read %s: %s\n", argv[i], strerror((int)-got));
			rc = 1;
			continue;
		}
		size_t n = (size_t)got / bs * bs, paths[3] = {0, 0, 0}, sp = 0, sz = 0;
		for (size_t off = 0; off < n; off += bs)
			paths[fv_compress_choose(d + off, bs)]++;
		double tp[RUNS], tz[RUNS];
		for (int r = 0; r < RUNS; r++) {
			tp[r] = pass(cctx, &cfg, 1, d, n, bs, dst, cap, &sp);
			tz[r] = pass(cctx, &cfg, 0, d, n, bs, dst, cap, &sz);
		}
		fv_bench_median(tp, RUNS);
		fv_bench_median(tz, RUNS);
		double blocks = n ? (double)n / (double)bs : 1, mb = (double)n / 1e6;
		const char *name = strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i];
		printf("%-40.40s %8.1f %6.1f %6.1f %6.1f %12zu %12zu %9.0f %9.0f %5.2fx\n", name, mb,
		       100.0 * (double)paths[FV_COMP_RAW] / blocks,
		       100.0 * (double)paths[FV_COMP_NOISY] / blocks,
		       100.0 * (double)paths[FV_COMP_LEVEL] / blocks, sp, sz, mb / tp[RUNS / 2],
		       mb / tz[RUNS / 2], tz[RUNS / 2] / tp[RUNS / 2]);
		free(d);
	}
	ZSTD_freeCCtx(cctx);
	free(dst);
	return rc;
}
