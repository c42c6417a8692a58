/* chunker_bench: single-thread throughput of fv_chunker_next on random data,
 * against memcpy of the same buffer as the hardware ceiling. The target is
 * >= 1 GB/s per core with the default sizes (512 KiB / 1 MiB / 8 MiB).
 *
 *   chunker_bench [MiB]      (default 256)
 *
 * Prints one line per parameter set, the median of 5 runs:
 *   chunker: 1234 MB/s (memcpy 9000 MB/s, ratio 0.14)
 * MB is 10^6 bytes. "hashed" is the rate over the bytes actually hashed
 * (the chunker skips the first min - 64 bytes of every chunk), i.e. the
 * speed of the inner loop alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../backupd/chunker.h"
#include "bench.h"

#define RUNS 5

/* Seconds to chunk all of d; *nchunks for the report and so that the work
 * cannot be optimised away. */
static double chunk_once(const struct fv_chunker *c, const uint8_t *d, size_t n, size_t *nchunks)
{
	double t = fv_bench_now();
	size_t k = 0;
	for (size_t off = 0; off < n; k++)
		off += fv_chunker_next(c, d + off, n - off, true);
	t = fv_bench_now() - t;
	*nchunks = k;
	return t;
}

static void bench(const char *name, const struct fv_chunker_params *p, const uint8_t *d, size_t n,
		  double mcpy)
{
	static const uint8_t seed[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
					 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
	struct fv_chunker c;
	double t[RUNS];
	size_t k = 0;
	if (fv_chunker_init(&c, p, seed) < 0) {
		fprintf(stderr, "chunker_bench: invalid params %u/%u/%u\n", p->min, p->avg, p->max);
		exit(1);
	}
	for (int r = 0; r < RUNS; r++)
		t[r] = chunk_once(&c, d, n, &k);
	double s = fv_bench_median(t, RUNS);
	double rate = (double)n / s / 1e6;
	/* all but the last chunk skip min - 64 bytes */
	double hashed = (double)(n - (k - 1) * (p->min - 64)) / s / 1e6;
	printf("%s: %.0f MB/s (memcpy %.0f MB/s, ratio %.2f)  [%u/%u/%u, %zu chunks, mean %.0f KiB, hashed %.0f MB/s]\n",
	       name, rate, mcpy, rate / mcpy, p->min, p->avg, p->max, k, (double)n / (double)k / 1024,
	       hashed);
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
	size_t n = mib * 1024 * 1024;
	uint8_t *d = malloc(n), *dst = malloc(n);
	if (!n || !d || !dst) {
		fprintf(stderr, "chunker_bench: cannot allocate 2 x %zu MiB\n", mib);
		return 1;
	}
	/* xorshift64: random enough for a gear hash and fast to make; writing
	 * both buffers also faults their pages in before timing. */
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i + 8 <= n; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(d + i, &x, 8);
	}
	memset(dst, 0, n);

	double t[RUNS];
	for (int r = 0; r < RUNS; r++) {
		double t0 = fv_bench_now();
		memcpy(dst, d, n);
		t[r] = fv_bench_now() - t0;
		__asm__ volatile("" : : "r"(dst) : "memory"); /* keep the copy */
	}
	double mcpy = (double)n / fv_bench_median(t, RUNS) / 1e6;

	const struct fv_chunker_params dflt = {FV_CHUNK_MIN_DEFAULT, FV_CHUNK_AVG_DEFAULT,
					       FV_CHUNK_MAX_DEFAULT};
	const struct fv_chunker_params small = {2048, 8192, 65536};
	bench("chunker", &dflt, d, n, mcpy);
	bench("chunker (small)", &small, d, n, mcpy);
	free(d);
	free(dst);
	return 0;
}
