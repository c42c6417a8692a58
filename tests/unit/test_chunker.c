/* Unit tests for backupd/chunker: boundaries are part of the repository
 * format (docs/repository-format.md, "Chunking"), so besides the properties
 * deduplication relies on, a known-answer case pins the exact algorithm. */
#include "../../backupd/chunker.h"
#include "../../common/buf.h"
#include "../harness.h"

#include <errno.h>
#include <sodium.h>

#define MIB (1024u * 1024)

static const struct fv_chunker_params small = {2048, 8192, 65536};
static const struct fv_chunker_params dflt = {FV_CHUNK_MIN_DEFAULT, FV_CHUNK_AVG_DEFAULT,
					      FV_CHUNK_MAX_DEFAULT};

/* Test data: xorshift64 (13, 7, 17) from state s, each output written as 8
 * little-endian bytes; n need not be a multiple of 8. Part of the
 * known-answer test's input, so do not change it. */
static void gen(uint8_t *p, size_t n, uint64_t s)
{
	uint8_t t[8];
	for (size_t i = 0; i < n; i += 8) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		fv_put_le64(t, s);
		memcpy(p + i, t, n - i < 8 ? n - i : 8);
	}
}

static uint8_t *gen_alloc(size_t n, uint64_t s)
{
	uint8_t *p = malloc(n ? n : 1);
	if (p)
		gen(p, n, s);
	return p;
}

static void seed_fill(uint8_t seed[32], uint8_t first)
{
	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)(first + i);
}

/* Chunk all of d[0..n) as a whole file; returns the number of chunks and
 * their lengths in *out (caller frees), or -1 when the chunker returned 0
 * or more than was left. */
static long chunk_all(const struct fv_chunker *c, const uint8_t *d, size_t n, uint32_t **out)
{
	size_t cap = n / c->p.min + 2, cnt = 0;
	uint32_t *v = malloc(cap * sizeof *v);
	*out = v;
	if (!v)
		return -1;
	for (size_t off = 0; off < n;) {
		size_t l = fv_chunker_next(c, d + off, n - off, true);
		if (l == 0 || l > n - off || cnt == cap)
			return -1;
		v[cnt++] = (uint32_t)l;
		off += l;
	}
	return (long)cnt;
}

/* Every chunk but the last is within [min, max]; the last is within
 * [1, max]; together they are exactly n bytes. */
static bool sizes_ok(const struct fv_chunker_params *p, const uint32_t *v, long cnt, size_t n)
{
	size_t sum = 0;
	for (long i = 0; i < cnt; i++) {
		if (v[i] == 0 || v[i] > p->max || (i + 1 < cnt && v[i] < p->min))
			return false;
		sum += v[i];
	}
	return sum == n;
}

/* Length of the random input of the default-size tests: 64 MiB, about 55
 * chunks; 16 MiB under tests/run --quick (FV_QUICK=1). */
static size_t big_len(void)
{
	const char *q = getenv("FV_QUICK");
	return q && strcmp(q, "1") == 0 ? 16 * MIB : 64 * MIB;
}

/* That input, made once. */
static const uint8_t *big(void)
{
	static uint8_t *p;
	if (!p)
		p = gen_alloc(big_len(), 0x0123456789abcdefull);
	return p;
}

FV_TEST(params_check)
{
	static const struct fv_chunker_params bad[] = {
		{0, 8192, 65536},        /* min < 64 */
		{63, 8192, 65536},       /* min < 64 */
		{8192, 8192, 65536},     /* min == avg */
		{2048, 65536, 65536},    /* avg == max */
		{2048, 65536, 8192},     /* max < avg */
		{2048, 12288, 65536},    /* avg not a power of two */
		{64, 128, 64 * MIB + 1}, /* max > 64 MiB */
		{4096, 2048, 65536},     /* min > avg */
		{UINT32_MAX, UINT32_MAX, UINT32_MAX},
	};
	static const struct fv_chunker_params good[] = {
		{64, 128, 129},
		{2048, 8192, 65536},
		{32 * MIB - 1, 32 * MIB, 64 * MIB},
		{FV_CHUNK_MIN_DEFAULT, FV_CHUNK_AVG_DEFAULT, FV_CHUNK_MAX_DEFAULT},
	};
	uint8_t seed[32] = {0};
	struct fv_chunker c;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		FV_CHECK_EQ(fv_chunker_params_check(&bad[i]), -EINVAL);
		FV_CHECK_EQ(fv_chunker_init(&c, &bad[i], seed), -EINVAL);
	}
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		FV_CHECK_EQ(fv_chunker_params_check(&good[i]), 0);
		FV_CHECK_EQ(fv_chunker_init(&c, &good[i], seed), 0);
	}
}

/* Same key and data give the same chunks (dedup across runs and hosts);
 * another key gives unrelated ones (boundaries do not leak content). */
FV_TEST(deterministic_and_keyed)
{
	const uint8_t *d = big();
	FV_REQUIRE(d);
	uint8_t s1[32], s2[32];
	seed_fill(s1, 1);
	seed_fill(s2, 1);
	s2[31] ^= 1;
	struct fv_chunker a, b, x;
	FV_REQUIRE(fv_chunker_init(&a, &dflt, s1) == 0);
	FV_REQUIRE(fv_chunker_init(&b, &dflt, s1) == 0);
	FV_REQUIRE(fv_chunker_init(&x, &dflt, s2) == 0);
	uint32_t *va, *vb, *vx;
	long na = chunk_all(&a, d, big_len(), &va);
	long nb = chunk_all(&b, d, big_len(), &vb);
	long nx = chunk_all(&x, d, big_len(), &vx);
	FV_REQUIRE(na > 0 && nb > 0 && nx > 0);
	FV_CHECK(sizes_ok(&dflt, va, na, big_len()));
	FV_CHECK(sizes_ok(&dflt, vx, nx, big_len()));
	FV_CHECK(na == nb && memcmp(va, vb, (size_t)na * sizeof *va) == 0);
	/* Count boundaries the two keys share: by chance, almost none. */
	size_t shared = 0, oa = 0, ox = 0;
	for (long i = 0, j = 0; i < na && j < nx;) {
		if (oa + va[i] == ox + vx[j])
			shared++;
		if (oa + va[i] <= ox + vx[j])
			oa += va[i++];
		else
			ox += vx[j++];
	}
	FV_CHECK(shared <= 2); /* the end of the input is always shared */
	free(va);
	free(vb);
	free(vx);
}

FV_TEST(sizes_and_coverage)
{
	uint8_t seed[32];
	seed_fill(seed, 1);
	struct fv_chunker c;
	FV_REQUIRE(fv_chunker_init(&c, &small, seed) == 0);
	uint32_t *v;
	long n;

	/* Random data. */
	size_t len = 4 * MIB + 12345;
	uint8_t *d = gen_alloc(len, 42);
	FV_REQUIRE(d);
	n = chunk_all(&c, d, len, &v);
	FV_CHECK(n > 0 && sizes_ok(&small, v, n, len));
	free(v);

	/* Zeros: the window hash is constant, so (for this key) no cut point
	 * matches and every chunk is cut at max. */
	memset(d, 0, len);
	n = chunk_all(&c, d, len, &v);
	FV_REQUIRE(n == (long)(len / small.max + 1));
	for (long i = 0; i + 1 < n; i++)
		FV_CHECK_EQ(v[i], small.max);
	FV_CHECK_EQ(v[n - 1], len % small.max);
	free(v);

	/* Short files are one chunk, whatever their length. */
	gen(d, len, 7);
	for (size_t l = 1; l <= small.min; l = l * 3 + 1) {
		FV_CHECK_EQ(fv_chunker_next(&c, d, l, true), l);
		FV_CHECK_EQ(fv_chunker_next(&c, d, l, false), 0);
	}
	FV_CHECK_EQ(fv_chunker_next(&c, d, 0, true), 0);
	FV_CHECK_EQ(fv_chunker_next(&c, d, small.min, true), small.min);
	/* (Default sizes: see deterministic_and_keyed.) */
	free(d);
}

/* The contract of fv_chunker_next when the input is not all there. */
FV_TEST(need_more_contract)
{
	uint8_t seed[32];
	seed_fill(seed, 1);
	struct fv_chunker c;
	FV_REQUIRE(fv_chunker_init(&c, &small, seed) == 0);
	uint8_t *d = calloc(2 * small.max, 1);
	FV_REQUIRE(d);
	/* zeros have no cut point: 0 until max bytes are there, then max */
	FV_CHECK_EQ(fv_chunker_next(&c, d, small.max - 1, false), 0);
	FV_CHECK_EQ(fv_chunker_next(&c, d, small.max - 1, true), small.max - 1);
	FV_CHECK_EQ(fv_chunker_next(&c, d, small.max, false), small.max);
	FV_CHECK_EQ(fv_chunker_next(&c, d, 2 * small.max, false), small.max);
	/* a cut found in a partial buffer is final: more data cannot move it */
	gen(d, 2 * small.max, 99);
	size_t whole = fv_chunker_next(&c, d, 2 * small.max, true);
	FV_REQUIRE(whole >= small.min && whole <= small.max);
	FV_CHECK_EQ(fv_chunker_next(&c, d, whole, false), whole);
	FV_CHECK_EQ(fv_chunker_next(&c, d, whole - 1, false), 0);
	free(d);
}

/* Apply an edit to a[0..len): insert delta bytes (0xa5) at offset at, or
 * delete -delta bytes there. Returns the new length. */
static size_t edit(uint8_t *b, const uint8_t *a, size_t len, size_t at, long delta)
{
	memcpy(b, a, at);
	if (delta > 0) {
		memset(b + at, 0xa5, (size_t)delta);
		memcpy(b + at + delta, a + at, len - at);
	} else {
		memcpy(b + at, a + at - delta, len - at + (size_t)delta);
	}
	return len + (size_t)delta;
}

/* How many chunks of the edited input B are not chunks of A: a chunk that
 * ends before the edit must be the same chunk of A, one that starts after it
 * the same chunk of A shifted by delta. *run_ok says the changed chunks are
 * one run and everything after it is unchanged (the chunkings resynchronise
 * and stay so up to the end of the input). */
static size_t chunks_changed(const uint32_t *va, long na, const uint32_t *vb, long nb, size_t at, long delta,
			     bool *run_ok)
{
	size_t changed = 0, oa = 0, sb = 0;
	long i = 0, first = -1, last = -1;
	for (long j = 0; j < nb; sb += vb[j++]) {
		size_t eb = sb + vb[j];
		bool match = false;
		if (eb <= at || sb >= at + (delta > 0 ? (size_t)delta : 0)) {
			size_t want = eb <= at ? sb : sb - (size_t)delta;
			while (i < na && oa < want)
				oa += va[i++];
			match = i < na && oa == want && va[i] == vb[j];
		}
		if (!match) {
			changed++;
			if (first < 0)
				first = j;
			last = j;
		}
	}
	*run_ok = changed == (size_t)(last - first + 1) && last < nb - 1;
	return changed;
}

/* Inserting or deleting bytes near the start of a file must leave the chunks
 * after it alone, or deduplication of edited files fails. One or two chunks
 * change in the common case. Because the cut mask depends on the length
 * within the chunk (normalized chunking) and no cut is tested before min, a
 * shifted boundary can take a few chunks to resynchronise: about 1 edit in
 * 150 on random data changes 3 or 4 chunks. So fixed edits must change at
 * most 2, random ones mostly at most 2 and never many. */
FV_TEST(edit_is_local)
{
	uint8_t seed[32];
	seed_fill(seed, 1);
	struct fv_chunker c;
	FV_REQUIRE(fv_chunker_init(&c, &small, seed) == 0);
	const size_t len = 512 * 1024;
	uint8_t *a = gen_alloc(len, 5), *b = malloc(len + 64);
	FV_REQUIRE(a && b);
	uint32_t *va, *vb;
	long na = chunk_all(&c, a, len, &va);
	FV_REQUIRE(na > 8);
	bool run_ok;

	static const size_t at[] = {0, 1, 100, 2000, 5000, 9000};
	static const long delta[] = {1, 3, 8, 64, -1, -7};
	for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
		for (size_t m = 0; m < sizeof delta / sizeof delta[0]; m++) {
			size_t blen = edit(b, a, len, at[k], delta[m]);
			long nb = chunk_all(&c, b, blen, &vb);
			FV_REQUIRE(nb > 0);
			size_t ch = chunks_changed(va, na, vb, nb, at[k], delta[m], &run_ok);
			if (ch < 1 || ch > 2 || !run_ok)
				fprintf(stderr, "  edit at %zu by %ld: %zu chunks changed\n", at[k], delta[m],
					ch);
			FV_CHECK(ch >= 1 && ch <= 2);
			FV_CHECK(run_ok);
			free(vb);
		}
	}

	uint64_t rng = 0xed17;
	size_t nrand = 200, over2 = 0;
	for (size_t k = 0; k < nrand; k++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		size_t pos = rng % 32768;
		long d = 1 + (long)(rng >> 32) % 16;
		if (rng >> 63)
			d = -d;
		size_t blen = edit(b, a, len, pos, d);
		long nb = chunk_all(&c, b, blen, &vb);
		FV_REQUIRE(nb > 0);
		size_t ch = chunks_changed(va, na, vb, nb, pos, d, &run_ok);
		FV_CHECK(ch >= 1 && ch <= 5);
		FV_CHECK(run_ok);
		over2 += ch > 2;
		free(vb);
	}
	FV_CHECK(over2 <= nrand / 25);
	free(va);
	free(a);
	free(b);
}

/* Normalized chunking keeps the mean near avg (FastCDC level 2 gives about
 * 1.1-1.2 avg with min = avg / 2 .. avg / 4). */
FV_TEST(average_size)
{
	uint8_t seed[32];
	seed_fill(seed, 1);
	struct fv_chunker c;
	uint32_t *v;
	FV_REQUIRE(fv_chunker_init(&c, &small, seed) == 0);
	const size_t len = 16 * MIB;
	uint8_t *d = gen_alloc(len, 11);
	FV_REQUIRE(d);
	long n = chunk_all(&c, d, len, &v);
	FV_REQUIRE(n > 0);
	double mean = (double)len / (double)n;
	FV_CHECK(mean > 0.9 * small.avg && mean < 1.5 * small.avg);
	free(v);
	free(d);

	FV_REQUIRE(big() && fv_chunker_init(&c, &dflt, seed) == 0);
	n = chunk_all(&c, big(), big_len(), &v);
	FV_REQUIRE(n > 0);
	mean = (double)big_len() / (double)n; /* few chunks: a loose bound */
	FV_CHECK(mean > 0.7 * dflt.avg && mean < 2.0 * dflt.avg);
	free(v);
}

/* A reader that gets data in pieces of any size, using "0 = need more",
 * gets exactly the chunks of a single call per chunk on the whole input. */
FV_TEST(streaming_matches_one_shot)
{
	uint8_t seed[32];
	seed_fill(seed, 3);
	struct fv_chunker c;
	FV_REQUIRE(fv_chunker_init(&c, &small, seed) == 0);
	/* random data with runs of zeros, so forced cuts happen as well */
	const size_t len = 2 * MIB + 777;
	uint8_t *d = gen_alloc(len, 123);
	FV_REQUIRE(d);
	memset(d + MIB, 0, 200000);
	memset(d + 3 * MIB / 2 + 5, 0, small.max + 3);
	uint32_t *ref;
	long nref = chunk_all(&c, d, len, &ref);
	FV_REQUIRE(nref > 0);

	/* Around each boundary L, a buffer of every length near L: a cut is
	 * reported exactly when all of the chunk is there. */
	size_t off = 0;
	for (long k = 0; k < nref && k < 64; off += ref[k++]) {
		size_t lo = ref[k] > 70 ? ref[k] - 70 : 0;
		for (size_t avail = lo; avail <= ref[k] + 70 && avail <= len - off; avail++) {
			/* an exact-size copy, so reads past len fault under ASan */
			uint8_t *w = malloc(avail ? avail : 1);
			FV_REQUIRE(w);
			memcpy(w, d + off, avail);
			size_t more = fv_chunker_next(&c, w, avail, false);
			size_t last = fv_chunker_next(&c, w, avail, true);
			free(w);
			FV_CHECK_EQ(more, avail < ref[k] ? 0 : ref[k]);
			FV_CHECK_EQ(last, avail < ref[k] ? avail : ref[k]);
		}
	}

	/* Readers of various sizes; 0 means random sizes up to 2 max. */
	static const size_t reads[] = {1000, 4096, 65535, 65536, 100000, 0};
	for (size_t r = 0; r < sizeof reads / sizeof reads[0]; r++) {
		uint64_t rng = 0x5eed + r;
		size_t have = 0;
		long cnt = 0;
		bool eof = false, ok = true;
		off = 0;
		while (ok) {
			size_t avail = have - off;
			uint8_t *w = malloc(avail ? avail : 1);
			FV_REQUIRE(w);
			memcpy(w, d + off, avail);
			size_t n = fv_chunker_next(&c, w, avail, eof);
			free(w);
			if (n == 0) {
				if (eof)
					break;
				if (avail >= small.max)
					ok = false; /* "need more" with max bytes there */
				size_t step = reads[r];
				if (!step) {
					rng ^= rng << 13;
					rng ^= rng >> 7;
					rng ^= rng << 17;
					step = 1 + rng % (2 * small.max);
				}
				have = have + step < len ? have + step : len;
				eof = have == len;
				continue;
			}
			if (n > avail || cnt >= nref || ref[cnt] != n)
				ok = false;
			cnt++;
			off += n;
		}
		FV_CHECK(ok);
		FV_CHECK_EQ(cnt, nref);
		FV_CHECK_EQ(off, len);
	}
	free(ref);
	free(d);
}

/* The rule of chunker.c as one plain loop: hash from d[min - 64], test every
 * length from min, mask by length, cut at max. fv_chunker_next runs two
 * hash chains side by side for speed; it must agree with this everywhere. */
static size_t ref_next(const struct fv_chunker *c, const uint8_t *d, size_t len, bool eof)
{
	const size_t min = c->p.min, avg = c->p.avg, max = c->p.max;
	uint64_t h = 0;
	for (size_t l = min - 63; l <= len && l <= max; l++) {
		h = (h << 1) + c->gear[d[l - 1]];
		if (l < min)
			continue;
		if (l == max || !(h & (l < avg ? c->mask_s : c->mask_l)))
			return l;
	}
	return len >= max ? max : eof ? len : 0;
}

FV_TEST(matches_reference)
{
	static const struct fv_chunker_params ps[] = {
		{64, 128, 256},     {64, 4096, 1 << 20}, {2048, 8192, 65536},
		{1000, 4096, 8192}, {64, 8192, 65536},   {4096, 8192, 12288},
	};
	uint8_t seed[32];
	seed_fill(seed, 9);
	const size_t len = 2 * MIB;
	uint8_t *d = gen_alloc(len, 31337);
	FV_REQUIRE(d);
	/* a zero run: cuts forced at max, and hashes that stay constant */
	memset(d + len / 2, 0, 70000);
	for (size_t q = 0; q < sizeof ps / sizeof ps[0]; q++) {
		struct fv_chunker c;
		FV_REQUIRE(fv_chunker_init(&c, &ps[q], seed) == 0);
		size_t bad = 0, k = 0;
		for (size_t off = 0; off < len; k++) {
			size_t n = fv_chunker_next(&c, d + off, len - off, true);
			bad += n != ref_next(&c, d + off, len - off, true);
			/* a partial buffer, cut somewhere inside the chunk */
			size_t part = n / 2 + k % 97;
			bad += fv_chunker_next(&c, d + off, part, false) !=
			       ref_next(&c, d + off, part, false);
			if (!n)
				break;
			off += n;
		}
		if (bad)
			fprintf(stderr, "  params %u/%u/%u: %zu of %zu chunks differ\n", ps[q].min, ps[q].avg,
				ps[q].max, bad, k);
		FV_CHECK_EQ(bad, 0);
	}
	free(d);
}

/* Every alignment of the input against the chunker's internal blocks: a
 * chunk starting at each of 4096 consecutive offsets must end where the
 * plain loop says. This reaches the seams between hash chains, which random
 * chunk starts hit only rarely. */
FV_TEST(every_alignment)
{
	static const struct fv_chunker_params ps[] = {{64, 4096, 16384}, {2048, 8192, 65536}};
	uint8_t seed[32];
	seed_fill(seed, 17);
	const size_t len = 96 * 1024;
	uint8_t *d = gen_alloc(len, 4242);
	FV_REQUIRE(d);
	for (size_t q = 0; q < sizeof ps / sizeof ps[0]; q++) {
		struct fv_chunker c;
		FV_REQUIRE(fv_chunker_init(&c, &ps[q], seed) == 0);
		size_t bad = 0;
		for (size_t s = 0; s < 4096; s++)
			bad += fv_chunker_next(&c, d + s, len - s, true) !=
			       ref_next(&c, d + s, len - s, true);
		FV_CHECK_EQ(bad, 0);
	}
	free(d);
}

/* Pins the format: the gear table of a known seed and the first boundaries
 * of known data. If this fails, the chunking algorithm changed and existing
 * repositories no longer deduplicate against new backups. The values were
 * checked against an independent implementation of the rule in chunker.c
 * (HChaCha20/ChaCha20 from the RFCs, not libsodium). */
FV_TEST(known_answer)
{
	uint8_t seed[32];
	seed_fill(seed, 1); /* 0x01 .. 0x20 */
	struct fv_chunker c;
	FV_REQUIRE(fv_chunker_init(&c, &small, seed) == 0);
	FV_CHECK(c.gear[0] == 0xf2be31a26da5b126ull);
	FV_CHECK(c.gear[1] == 0xa6a69ff5bbc2d4f4ull);
	FV_CHECK(c.gear[255] == 0x1e7dba9c05ac885bull);
	FV_CHECK(c.mask_s == 0xfffe000000000000ull); /* 13 + 2 top bits */
	FV_CHECK(c.mask_l == 0xffe0000000000000ull); /* 13 - 2 top bits */

	const size_t len = 8 * MIB;
	uint8_t *d = gen_alloc(len, 0x0123456789abcdefull);
	FV_REQUIRE(d);
	static const uint32_t want_small[] = {20773, 10122, 9112, 7087,  8898, 9927,
					      9462,  8347,  3316, 11743, 9132, 9563};
	static const uint32_t want_dflt[] = {1326502, 1235579, 1060042, 1314765, 1819425, 1066008};
	uint32_t *v;
	long n = chunk_all(&c, d, len, &v);
	FV_REQUIRE(n > (long)(sizeof want_small / sizeof want_small[0]));
	for (size_t i = 0; i < sizeof want_small / sizeof want_small[0]; i++)
		FV_CHECK_EQ(v[i], want_small[i]);
	free(v);

	FV_REQUIRE(fv_chunker_init(&c, &dflt, seed) == 0);
	n = chunk_all(&c, d, len, &v);
	FV_REQUIRE(n > (long)(sizeof want_dflt / sizeof want_dflt[0]));
	for (size_t i = 0; i < sizeof want_dflt / sizeof want_dflt[0]; i++)
		FV_CHECK_EQ(v[i], want_dflt[i]);
	free(v);
	free(d);
}

FV_TESTS(params_check, deterministic_and_keyed, sizes_and_coverage, need_more_contract, edit_is_local,
	 average_size, streaming_matches_one_shot, matches_reference, every_alignment, known_answer)
