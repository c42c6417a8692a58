/* bench.h: the clock and the median the benchmark programs share. */
#ifndef FV_BENCH_H
#define FV_BENCH_H

#include <stdlib.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double fv_bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int fv_bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The median of v[0..n) (v is sorted in place). */
static inline double fv_bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, fv_bench_cmp_double);
	return v[n / 2];
}

#endif
