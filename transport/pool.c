/* pool: bulk buffers registered once per link (see pool.h). */
#include "pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "frame.h"
#include "link.h"

#define MIN_SHIFT 16 /* 64 KiB */

static unsigned class_of(size_t size)
{
	unsigned c = 0;
	while (((size_t)1 << (MIN_SHIFT + c)) < size)
		c++;
	return c;
}

int fv_tp_pool_init(struct fv_tp_pool *pl, size_t max_bytes)
{
	memset(pl, 0, sizeof *pl);
	pl->max_bytes = max_bytes;
	pthread_mutex_init(&pl->mu, NULL);
	pthread_cond_init(&pl->cv, NULL);
	return 0;
}

void fv_tp_pool_destroy(struct fv_tp_pool *pl)
{
	for (uint32_t i = 0; i < pl->nbufs; i++) {
		munmap(pl->bufs[i]->p, pl->bufs[i]->size);
		free(pl->bufs[i]);
	}
	free(pl->bufs);
	free(pl->links);
	pthread_mutex_destroy(&pl->mu);
	pthread_cond_destroy(&pl->cv);
	memset(pl, 0, sizeof *pl);
}

/* A new buffer of class c, registered with every attached link. Called
 * with the mutex held. */
static struct fv_tp_buf *make_buf(struct fv_tp_pool *pl, unsigned c, int *err)
{
	size_t size = (size_t)1 << (MIN_SHIFT + c);
	if (pl->nbufs == FV_TP_POOL_MAX_BUFS) {
		*err = -ENOMEM;
		return NULL;
	}
	if (pl->nbufs == pl->capbufs) {
		uint32_t cap = pl->capbufs ? pl->capbufs * 2 : 64;
		struct fv_tp_buf **nb = realloc(pl->bufs, cap * sizeof(struct fv_tp_buf *));
		if (!nb)
			goto oom;
		pl->bufs = nb;
		pl->capbufs = cap;
	}
	struct fv_tp_buf *b = calloc(1, sizeof *b);
	if (!b)
		goto oom;
	/* page-aligned, and not in the heap: RDMA registration pins it */
	b->p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->p == MAP_FAILED) {
		free(b);
		goto oom;
	}
	b->size = size;
	b->index = pl->nbufs;
	for (size_t i = 0; i < pl->nlinks; i++) {
		struct fv_tp_link *l = pl->links[i];
		int rc = l->ops->reg ? l->ops->reg(l, b) : 0;
		if (rc < 0) {
			/* the links that did register it keep a registration of
			 * a buffer that is kept too (index stays valid) */
			*err = rc;
			pl->bufs[pl->nbufs++] = b;
			pl->bytes += size;
			return NULL;
		}
	}
	pl->bufs[pl->nbufs++] = b;
	pl->bytes += size;
	return b;
oom:
	*err = -ENOMEM;
	return NULL;
}

struct fv_tp_buf *fv_tp_pool_get(struct fv_tp_pool *pl, size_t size, int *err)
{
	if (size == 0)
		size = 1;
	if (size > FV_FRAME_MAX_BULK) {
		*err = -EINVAL;
		return NULL;
	}
	unsigned c = class_of(size);
	struct fv_tp_buf *b = NULL;
	pthread_mutex_lock(&pl->mu);
	for (;;) {
		if ((b = pl->free[c])) {
			pl->free[c] = b->next_free;
			b->next_free = NULL;
			break;
		}
		if (pl->bytes + ((size_t)1 << (MIN_SHIFT + c)) <= pl->max_bytes || pl->bytes == 0) {
			b = make_buf(pl, c, err);
			break;
		}
		pthread_cond_wait(&pl->cv, &pl->mu);
	}
	pthread_mutex_unlock(&pl->mu);
	return b;
}

void fv_tp_pool_put(struct fv_tp_pool *pl, struct fv_tp_buf *b)
{
	if (!b)
		return;
	unsigned c = class_of(b->size);
	pthread_mutex_lock(&pl->mu);
	b->next_free = pl->free[c];
	pl->free[c] = b;
	pthread_cond_broadcast(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
}

int fv_tp_pool_attach(struct fv_tp_pool *pl, struct fv_tp_link *l)
{
	int rc = 0;
	pthread_mutex_lock(&pl->mu);
	if (pl->nlinks == pl->caplinks) {
		size_t cap = pl->caplinks ? pl->caplinks * 2 : 8;
		struct fv_tp_link **nl = realloc(pl->links, cap * sizeof(struct fv_tp_link *));
		if (!nl) {
			rc = -ENOMEM;
			goto out;
		}
		pl->links = nl;
		pl->caplinks = cap;
	}
	for (uint32_t i = 0; i < pl->nbufs && l->ops->reg; i++) {
		rc = l->ops->reg(l, pl->bufs[i]);
		if (rc < 0)
			goto out;
	}
	pl->links[pl->nlinks++] = l;
out:
	pthread_mutex_unlock(&pl->mu);
	return rc;
}

void fv_tp_pool_detach(struct fv_tp_pool *pl, struct fv_tp_link *l)
{
	pthread_mutex_lock(&pl->mu);
	for (size_t i = 0; i < pl->nlinks; i++) {
		if (pl->links[i] == l) {
			pl->links[i] = pl->links[--pl->nlinks];
			break;
		}
	}
	pthread_mutex_unlock(&pl->mu);
}
