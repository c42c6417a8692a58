/* pool: bulk buffers registered once with every link and reused
 * (docs/transport.md, "Model"). A buffer is taken with fv_tp_pool_get and
 * given back with fv_tp_pool_put; new buffers are registered with every
 * attached link when they are made, and a newly attached link registers every
 * existing buffer, so the data path never registers memory. Buffers are kept
 * on free lists by size class (powers of two from 64 KiB) until the pool is
 * destroyed. Thread-safe (one mutex; get/put are O(1) but for a new buffer).
 */
#ifndef FV_POOL_H
#define FV_POOL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct fv_tp_link;

/* At most this many buffers in a pool: backends may keep per-buffer state
 * in fixed tables indexed by fv_tp_buf.index. */
#define FV_TP_POOL_MAX_BUFS 4096

/* A bulk buffer. p and size are the caller's to use; the rest is the pool's. */
struct fv_tp_buf {
	void *p;
	size_t size;
	uint32_t index; /* unique in its pool: backends keep per-buffer state by index */
	struct fv_tp_buf *next_free;
};

struct fv_tp_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t max_bytes, bytes;
	struct fv_tp_buf **bufs; /* by index */
	uint32_t nbufs, capbufs;
	struct fv_tp_buf *free[16]; /* by size class */
	struct fv_tp_link **links;
	size_t nlinks, caplinks;
};

/* Set up an empty pool that will hold at most max_bytes. Returns 0 or -errno. */
int fv_tp_pool_init(struct fv_tp_pool *pl, size_t max_bytes);
/* Free every buffer (none may be in use; links must be detached). */
void fv_tp_pool_destroy(struct fv_tp_pool *pl);

/* A buffer of at least size bytes (size ≤ FV_FRAME_MAX_BULK): a free one, or
 * a new one registered with every attached link. When the pool is at
 * max_bytes, waits for a put. Returns NULL with *err (-ENOMEM, -EINVAL, or a
 * registration error). */
struct fv_tp_buf *fv_tp_pool_get(struct fv_tp_pool *pl, size_t size, int *err);
void fv_tp_pool_put(struct fv_tp_pool *pl, struct fv_tp_buf *b);

/* Register every buffer with link l (through its ops) and keep registering
 * new ones until detach (reg may so run on any thread, concurrently with
 * the link's send and recv). Returns 0 or the first registration error. */
int fv_tp_pool_attach(struct fv_tp_pool *pl, struct fv_tp_link *l);
void fv_tp_pool_detach(struct fv_tp_pool *pl, struct fv_tp_link *l);

#endif
