/* Unit tests for backupd/dwrite: whatever the order and threads the chunks
 * come in, the file reads back exactly, holes and skipped ranges stay holes
 * (never bytes left over in a reused window), a full pool degrades to
 * plain writes, and complete windows bypass the page cache. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "../../backupd/dwrite.h"
#include "../../common/fsutil.h"
#include "../harness.h"

#define MIB (1024u * 1024)

struct piece {
	uint64_t off, len;
	bool skip;
};

struct file {
	char dir[64], path[128];
	int fd, dfd;
	uint64_t size;
	uint8_t *want; /* expected content, zeros in holes and skipped ranges */
};

/* A file of size bytes to write in dir (under $TMPDIR or /tmp); dfd is -1
 * when the file system refuses O_DIRECT. */
static int file_open(struct file *f, uint64_t size)
{
	memset(f, 0, sizeof *f);
	if (fv_test_tmpdir(f->dir, sizeof f->dir, "dwrite") < 0)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/f", f->dir);
	f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL, 0600);
	f->dfd = open(f->path, O_WRONLY | O_DIRECT);
	f->size = size;
	f->want = calloc(1, size);
	return f->fd >= 0 && f->want ? 0 : -1;
}

static void file_close(struct file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->dfd >= 0)
		close(f->dfd);
	free(f->want);
	fv_test_rmtree(f->dir);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Cut [from, to) in pieces of 1 byte to 700 KiB, with some at 4 KiB
 * multiples; appends to p. */
static size_t cut(struct piece *p, size_t n, uint64_t from, uint64_t to, uint64_t *seed)
{
	while (from < to) {
		uint64_t len = 1 + rnd(seed) % (700 * 1024);
		if (rnd(seed) % 3 == 0)
			len = (len + 4095) & ~4095ull;
		if (len > to - from)
			len = to - from;
		p[n++] = (struct piece){.off = from, .len = len};
		from += len;
	}
	return n;
}

struct putter {
	struct fv_dwrite *w;
	const struct file *f;
	const struct piece *p;
	size_t n, first, step;
	int rc;
};

/* Put every step-th piece from first, each from a buffer of its own: at
 * the offset's alignment for odd pieces (the no-copy path), off by one
 * byte for even ones (always copied). */
static void *putter_main(void *arg)
{
	struct putter *t = arg;
	for (size_t i = t->first; i < t->n && t->rc == 0; i += t->step) {
		const struct piece *p = &t->p[i];
		if (p->skip) {
			t->rc = fv_dwrite_skip(t->w, p->off, p->len);
			continue;
		}
		void *m;
		if (posix_memalign(&m, FV_DWRITE_ALIGN, p->len + 2 * FV_DWRITE_ALIGN) != 0) {
			t->rc = -ENOMEM;
			break;
		}
		size_t at = i % 2 ? (p->off & (FV_DWRITE_ALIGN - 1)) : ((p->off + 1) & (FV_DWRITE_ALIGN - 1));
		uint8_t *b = (uint8_t *)m + at;
		memcpy(b, t->f->want + p->off, p->len);
		t->rc = fv_dwrite_put(t->w, b, p->len, p->off);
		free(m);
	}
	return NULL;
}

/* Declare p, put it from two threads in a shuffled order, finish, set the
 * size; 0 when every step succeeded. */
static int write_all(struct fv_dwrite_pool *pool, struct file *f, struct piece *p, size_t n, uint64_t seed)
{
	struct fv_dwrite *w;
	int rc = fv_dwrite_new(&w, pool, f->fd, f->dfd, f->size);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		fv_dwrite_expect(w, p[i].off, p[i].len);
	for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
		size_t j = rnd(&seed) % i;
		struct piece t = p[i - 1];
		p[i - 1] = p[j];
		p[j] = t;
	}
	struct putter t[2];
	pthread_t tid[2];
	for (int i = 0; i < 2; i++) {
		t[i] = (struct putter){.w = w, .f = f, .p = p, .n = n, .first = (size_t)i, .step = 2};
		pthread_create(&tid[i], NULL, putter_main, &t[i]);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(tid[i], NULL);
		if (t[i].rc < 0 && rc == 0)
			rc = t[i].rc;
	}
	int frc = fv_dwrite_finish(w);
	fv_dwrite_free(w);
	if (rc == 0)
		rc = frc;
	if (rc == 0 && ftruncate(f->fd, (off_t)f->size) < 0)
		rc = -errno;
	return rc;
}

static bool same_content(const struct file *f)
{
	uint8_t *got = malloc(f->size);
	bool ok = got && fv_pread_full(f->fd, got, f->size, 0) == 0 && memcmp(got, f->want, f->size) == 0;
	free(got);
	return ok;
}

/* Fill want with random bytes over [from, to). */
static void fill(struct file *f, uint64_t from, uint64_t to, uint64_t *seed)
{
	for (uint64_t i = from; i < to; i++)
		f->want[i] = (uint8_t)(rnd(seed) >> 24);
}

/* Random bytes over all of f, put in random pieces. */
static int write_random(struct fv_dwrite_pool *pool, struct file *f, uint64_t seed)
{
	struct piece p[64];
	fill(f, 0, f->size, &seed);
	size_t n = cut(p, 0, 0, f->size, &seed);
	return write_all(pool, f, p, n, seed);
}

/* A file with an unaligned size, a hole across two windows, pieces of
 * every size (some covering whole windows): the content is exact, the hole
 * is still a hole. Five shuffles. */
FV_TEST(any_order_from_two_threads_reads_back_exactly)
{
	for (uint64_t round = 1; round <= 5; round++) {
		struct file f;
		uint64_t seed = round * 7919, size = 7 * (uint64_t)MIB + 1234;
		uint64_t hole_from = 3 * MIB / 2, hole_to = 9 * MIB / 4; /* 1.5 to 2.25 MiB */
		FV_REQUIRE(file_open(&f, size) == 0);
		struct fv_dwrite_pool *pool;
		FV_REQUIRE(fv_dwrite_pool_new(&pool, 4) == 0);
		static struct piece p[256];
		fill(&f, 0, hole_from, &seed);
		fill(&f, hole_to, size, &seed);
		size_t n = cut(p, 0, 0, hole_from, &seed);
		n = cut(p, n, hole_to, 3 * MIB, &seed);
		p[n++] = (struct piece){.off = 3 * MIB,
					.len = 5 * MIB / 2}; /* 3 to 5.5 MiB: 2 whole windows */
		n = cut(p, n, 11 * MIB / 2, size, &seed);
		FV_CHECK_EQ(write_all(pool, &f, p, n, seed), 0);
		FV_CHECK(same_content(&f));
		struct stat sb;
		FV_CHECK(fstat(f.fd, &sb) == 0 && (uint64_t)sb.st_size == size);
		FV_CHECK_EQ(lseek(f.fd, (off_t)hole_from, SEEK_DATA), (off_t)hole_to);
		fv_dwrite_pool_free(pool);
		file_close(&f);
	}
}

/* A pool of one window: the first file leaves it full of its bytes; in the
 * second, a skipped range inside a dense window reads as zeros (a hole),
 * not as the first file's bytes. */
FV_TEST(skipped_range_stays_a_hole_in_a_reused_window)
{
	struct fv_dwrite_pool *pool;
	FV_REQUIRE(fv_dwrite_pool_new(&pool, 1) == 0);
	struct file a, b;
	uint64_t seed = 99;
	FV_REQUIRE(file_open(&a, 2 * MIB) == 0);
	memset(a.want, 0xaa, a.size);
	struct piece pa[64];
	size_t na = cut(pa, 0, 0, a.size, &seed);
	FV_CHECK_EQ(write_all(pool, &a, pa, na, seed), 0);
	FV_CHECK(same_content(&a));

	FV_REQUIRE(file_open(&b, MIB) == 0); /* one window: it gets a's buffer */
	fill(&b, 0, b.size, &seed);
	memset(b.want + 64 * 1024, 0, 128 * 1024); /* the skipped range */
	struct piece pb[3] = {
		{.off = 0, .len = 64 * 1024},
		{.off = 64 * 1024, .len = 128 * 1024, .skip = true},
		{.off = 192 * 1024, .len = MIB - 192 * 1024},
	};
	FV_CHECK_EQ(write_all(pool, &b, pb, 3, seed), 0);
	FV_CHECK(same_content(&b));
	FV_CHECK_EQ(lseek(b.fd, 64 * 1024, SEEK_DATA), 192 * 1024);
	file_close(&a);
	file_close(&b);
	fv_dwrite_pool_free(pool);
}

/* Without an O_DIRECT descriptor (a file system that refuses it) every
 * write is plain and the content the same. */
FV_TEST(without_o_direct_writes_plainly)
{
	struct file f;
	const uint64_t seed = 5;
	FV_REQUIRE(file_open(&f, 4 * MIB + 17) == 0);
	if (f.dfd >= 0)
		close(f.dfd);
	f.dfd = -1;
	struct fv_dwrite_pool *pool;
	FV_REQUIRE(fv_dwrite_pool_new(&pool, 2) == 0);
	FV_CHECK_EQ(write_random(pool, &f, seed), 0);
	FV_CHECK(same_content(&f));
	fv_dwrite_pool_free(pool);
	file_close(&f);
}

/* Pages of f's first n bytes in the page cache. */
static size_t resident(const struct file *f, size_t n)
{
	size_t pages = n / 4096, r = 0;
	unsigned char *vec = malloc(pages);
	void *m = mmap(NULL, n, PROT_READ, MAP_SHARED, f->fd, 0);
	if (vec && m != MAP_FAILED && mincore(m, n, vec) == 0)
		for (size_t i = 0; i < pages; i++)
			r += vec[i] & 1;
	else
		r = pages;
	if (m != MAP_FAILED)
		munmap(m, n);
	free(vec);
	return r;
}

/* Whether an O_DIRECT write of one block to f leaves the page cache empty
 * (ext4 with data=journal, for one, writes it through the cache). */
static bool direct_bypasses_cache(struct file *f)
{
	void *b;
	if (posix_memalign(&b, FV_DWRITE_ALIGN, FV_DWRITE_ALIGN) != 0)
		return false;
	memset(b, 1, FV_DWRITE_ALIGN);
	bool ok =
		pwrite(f->dfd, b, FV_DWRITE_ALIGN, 0) == FV_DWRITE_ALIGN && resident(f, FV_DWRITE_ALIGN) == 0;
	free(b);
	return ok;
}

/* What the module is for: on a disk file system, complete windows go to
 * the disk without filling the page cache (checked with mincore). */
FV_TEST(complete_windows_bypass_the_page_cache)
{
	struct file f;
	const uint64_t seed = 11;
	FV_REQUIRE(file_open(&f, 4 * MIB) == 0);
	struct statfs fs;
	FV_REQUIRE(fstatfs(f.fd, &fs) == 0);
	/* ext4, xfs, btrfs: the disk file systems where O_DIRECT skips the
	 * cache (tmpfs "supports" it through the cache) */
	bool disk = fs.f_type == 0xEF53 || fs.f_type == 0x58465342 || fs.f_type == 0x9123683E;
	if (f.dfd < 0 || !disk || !direct_bypasses_cache(&f)) {
		printf("     (skipped: %s is not on ext4/xfs/btrfs with an O_DIRECT that skips the cache)\n",
		       f.dir);
		file_close(&f);
		return;
	}
	struct fv_dwrite_pool *pool;
	FV_REQUIRE(fv_dwrite_pool_new(&pool, 4) == 0);
	FV_CHECK_EQ(write_random(pool, &f, seed), 0);
	FV_CHECK_EQ(resident(&f, f.size), 0);
	FV_CHECK(same_content(&f));
	fv_dwrite_pool_free(pool);
	file_close(&f);
}

FV_TESTS(any_order_from_two_threads_reads_back_exactly, skipped_range_stays_a_hole_in_a_reused_window,
	 without_o_direct_writes_plainly, complete_windows_bypass_the_page_cache)
