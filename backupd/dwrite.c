/* dwrite: see dwrite.h for the contract; this file says why. */
#include "dwrite.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

/* A window's state. PENDING windows are dense (every byte expected) and
 * not yet started or being assembled in buf; PLAIN windows are written
 * through the page cache part by part as parts arrive; DONE windows were
 * written whole. */
enum { WIN_PENDING, WIN_PLAIN, WIN_DONE };

struct win {
	uint8_t *buf;  /* pool buffer while assembling, else NULL */
	uint32_t need; /* bytes expected (declared) in the window */
	uint32_t got;  /* bytes copied into buf */
	uint8_t state;
};

struct range {
	uint64_t off, len;
};

struct fv_dwrite_pool {
	pthread_mutex_t mu;
	uint8_t **free; /* buffers not in use */
	unsigned nfree, made, max;
};

struct fv_dwrite {
	struct fv_dwrite_pool *pool;
	int fd, dfd;
	uint64_t size;
	uint64_t nwin;
	struct win *win;
	pthread_mutex_t mu;   /* guards win[] and skips */
	atomic_bool nodirect; /* the file system refused O_DIRECT: plain writes from now on */
	struct range *skips;
	size_t nskips, capskips;
};

int fv_dwrite_pool_new(struct fv_dwrite_pool **out, unsigned max_windows)
{
	struct fv_dwrite_pool *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->free = calloc(max_windows ? max_windows : 1, sizeof *p->free);
	if (!p->free) {
		free(p);
		return -ENOMEM;
	}
	p->max = max_windows;
	pthread_mutex_init(&p->mu, NULL);
	*out = p;
	return 0;
}

void fv_dwrite_pool_free(struct fv_dwrite_pool *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->nfree; i++)
		free(p->free[i]);
	pthread_mutex_destroy(&p->mu);
	free(p->free);
	free(p);
}

/* A free buffer, or NULL when all max are in use (or memory is short):
 * the caller writes through the page cache rather than wait. */
static uint8_t *pool_get(struct fv_dwrite_pool *p)
{
	uint8_t *b = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->nfree) {
		b = p->free[--p->nfree];
	} else if (p->made < p->max) {
		void *m;
		if (posix_memalign(&m, FV_DWRITE_ALIGN, FV_DWRITE_WIN) == 0) {
			b = m;
			p->made++;
		}
	}
	pthread_mutex_unlock(&p->mu);
	return b;
}

static void pool_put(struct fv_dwrite_pool *p, uint8_t *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&p->mu);
	p->free[p->nfree++] = b; /* made <= max: there is room */
	pthread_mutex_unlock(&p->mu);
}

int fv_dwrite_new(struct fv_dwrite **out, struct fv_dwrite_pool *p, int fd, int dfd, uint64_t size)
{
	uint64_t nwin = size / FV_DWRITE_WIN + (size % FV_DWRITE_WIN != 0);
	if (nwin > SIZE_MAX / sizeof(struct win))
		return -EFBIG;
	struct fv_dwrite *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->win = calloc(nwin ? nwin : 1, sizeof *w->win);
	if (!w->win) {
		free(w);
		return -ENOMEM;
	}
	w->pool = p;
	w->fd = fd;
	w->dfd = dfd;
	w->size = size;
	w->nwin = nwin;
	pthread_mutex_init(&w->mu, NULL);
	atomic_init(&w->nodirect, dfd < 0);
	*out = w;
	return 0;
}

void fv_dwrite_free(struct fv_dwrite *w)
{
	if (!w)
		return;
	for (uint64_t k = 0; k < w->nwin; k++)
		pool_put(w->pool, w->win[k].buf);
	pthread_mutex_destroy(&w->mu);
	free(w->skips);
	free(w->win);
	free(w);
}

static uint64_t win_end(const struct fv_dwrite *w, uint64_t k)
{
	uint64_t e = (k + 1) * FV_DWRITE_WIN;
	return e < w->size ? e : w->size;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

void fv_dwrite_expect(struct fv_dwrite *w, uint64_t off, uint64_t len)
{
	uint64_t end = min64(off + len, w->size);
	while (off < end) {
		uint64_t k = off / FV_DWRITE_WIN, pe = min64(end, win_end(w, k));
		w->win[k].need += (uint32_t)(pe - off);
		off = pe;
	}
}

/* n bytes at off from p, which is aligned and owns the padding up to the
 * next FV_DWRITE_ALIGN: with O_DIRECT, padded with zeros (only the last
 * window of a file has a length that is not aligned), else plainly. */
static int write_direct(struct fv_dwrite *w, uint8_t *p, size_t n, uint64_t off)
{
	size_t dn = (n + FV_DWRITE_ALIGN - 1) & ~(size_t)(FV_DWRITE_ALIGN - 1);
	if (!atomic_load_explicit(&w->nodirect, memory_order_relaxed)) {
		memset(p + n, 0, dn - n);
		int rc = fv_pwrite_full(w->dfd, p, dn, (off_t)off);
		if (rc != -EINVAL)
			return rc;
		/* refused (a file system without O_DIRECT, or an alignment
		 * it wants larger): this and every later write go plain */
		atomic_store(&w->nodirect, true);
	}
	return fv_pwrite_full(w->fd, p, n, (off_t)off);
}

/* Windows k.. that [off, end) covers whole, are dense and untouched: mark
 * them DONE for the caller to write from its buffer. Returns how many. */
static uint64_t claim_whole(struct fv_dwrite *w, uint64_t k, uint64_t end)
{
	uint64_t n = 0;
	pthread_mutex_lock(&w->mu);
	for (uint64_t j = k; j < w->nwin && win_end(w, j) <= end; j++) {
		struct win *x = &w->win[j];
		uint64_t wlen = win_end(w, j) - j * FV_DWRITE_WIN;
		if (x->state != WIN_PENDING || x->buf || x->need != wlen)
			break;
		x->state = WIN_DONE;
		n++;
	}
	pthread_mutex_unlock(&w->mu);
	return n;
}

int fv_dwrite_put(struct fv_dwrite *w, uint8_t *data, size_t len, uint64_t off)
{
	bool aligned = ((uintptr_t)data & (FV_DWRITE_ALIGN - 1)) == (off & (FV_DWRITE_ALIGN - 1));
	const uint64_t start = off, end = min64(off + len, w->size);
	int rc = 0;

	while (rc == 0 && off < end) {
		uint64_t k = off / FV_DWRITE_WIN, wb = k * FV_DWRITE_WIN, we = win_end(w, k);
		uint64_t pe = min64(end, we);
		uint8_t *src = data + (off - start);

		if (aligned && off == wb && pe == we) {
			uint64_t n = claim_whole(w, k, end);
			if (n) {
				uint64_t re = win_end(w, k + n - 1);
				/* the padding after the file's end is the caller's slack */
				rc = write_direct(w, src, re - off, off);
				off = re;
				continue;
			}
		}

		struct win *x = &w->win[k];
		uint8_t *full = NULL;
		bool plain = true;
		pthread_mutex_lock(&w->mu);
		if (x->state == WIN_PENDING && !x->buf) {
			if (x->need == we - wb)
				x->buf = pool_get(w->pool);
			if (!x->buf)
				x->state = WIN_PLAIN; /* a hole in it, or no buffer free */
		}
		if (x->state == WIN_PENDING) {
			plain = false;
			memcpy(x->buf + (off - wb), src, pe - off);
			x->got += (uint32_t)(pe - off);
			if (x->got >= x->need) {
				full = x->buf;
				x->buf = NULL;
				x->state = WIN_DONE;
			}
		}
		pthread_mutex_unlock(&w->mu);

		if (plain)
			rc = fv_pwrite_full(w->fd, src, pe - off, (off_t)off);
		else if (full) {
			rc = write_direct(w, full, we - wb, wb);
			pool_put(w->pool, full);
		}
		off = pe;
	}
	return rc;
}

int fv_dwrite_skip(struct fv_dwrite *w, uint64_t off, uint64_t len)
{
	int rc = 0;
	pthread_mutex_lock(&w->mu);
	if (w->nskips == w->capskips) {
		size_t cap = w->capskips ? 2 * w->capskips : 8;
		struct range *s = realloc(w->skips, cap * sizeof *s);
		if (!s) {
			rc = -ENOMEM;
			goto out;
		}
		w->skips = s;
		w->capskips = cap;
	}
	w->skips[w->nskips++] = (struct range){.off = off, .len = len};
out:
	pthread_mutex_unlock(&w->mu);
	return rc;
}

static int range_cmp(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Write [wb, we) from buf through the page cache, leaving out the skipped
 * ranges (sorted, not overlapping); *si walks them across windows. */
static int write_but_skips(struct fv_dwrite *w, const uint8_t *buf, uint64_t wb, uint64_t we, size_t *si)
{
	uint64_t off = wb;
	size_t i = *si;
	int rc = 0;
	while (off < we) {
		while (i < w->nskips && w->skips[i].off + w->skips[i].len <= off)
			i++;
		uint64_t ne = we; /* where the next skipped range starts */
		if (i < w->nskips && w->skips[i].off < we)
			ne = w->skips[i].off > off ? w->skips[i].off : off;
		if (ne > off && (rc = fv_pwrite_full(w->fd, buf + (off - wb), ne - off, (off_t)off)) < 0)
			break;
		if (ne == we)
			break;
		off = min64(w->skips[i].off + w->skips[i].len, we);
	}
	*si = i;
	return rc;
}

int fv_dwrite_finish(struct fv_dwrite *w)
{
	int rc = 0;
	size_t si = 0;
	if (w->nskips > 1)
		qsort(w->skips, w->nskips, sizeof *w->skips, range_cmp);
	for (uint64_t k = 0; k < w->nwin; k++) {
		struct win *x = &w->win[k];
		if (!x->buf)
			continue;
		if (rc == 0)
			rc = write_but_skips(w, x->buf, k * FV_DWRITE_WIN, win_end(w, k), &si);
		pool_put(w->pool, x->buf);
		x->buf = NULL;
	}
	return rc;
}
