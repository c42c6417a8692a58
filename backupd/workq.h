/* workq: a bounded FIFO of fixed-size items between threads, the only way
 * restore's and check's threads talk to each other.
 *
 * Every wait (a push on a full queue, a pop on an empty one) ends when the
 * queue is shut down, so a thread that fails can always release the others:
 * it calls fv_workq_shutdown() and every blocked or later push/pop returns
 * -ECANCELED. Closing is the orderly end: pushes are refused, pops drain
 * what is left and then return 0.
 *
 * Thread-safe: any number of pushers and poppers. The queue owns a copy of
 * each item (item_size bytes, copied in and out); memory is item_size * cap,
 * allocated once by fv_workq_init.
 */
#ifndef FV_WORKQ_H
#define FV_WORKQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct fv_workq {
	pthread_mutex_t mu;
	pthread_cond_t can_pop, can_push;
	unsigned char *ring;
	size_t isize, cap, head, n;
	bool closed, shut;
};

/* Set q up for items of item_size bytes, at most cap (>= 1) queued.
 * Returns 0 or -ENOMEM. */
int fv_workq_init(struct fv_workq *q, size_t item_size, size_t cap);

/* Free q's memory. No thread may be using it any more. */
void fv_workq_fini(struct fv_workq *q);

/* Append a copy of item, waiting while the queue is full. Returns 0,
 * -ECANCELED (shut down) or -EPIPE (closed). */
int fv_workq_push(struct fv_workq *q, const void *item);

/* Take the oldest item into item. wait: block while the queue is empty and
 * open; timeout_ms (> 0, with wait) bounds that wait. Returns 1 (an item),
 * 0 (closed and empty, or empty and !wait), -ETIMEDOUT, or -ECANCELED. */
int fv_workq_pop(struct fv_workq *q, void *item, bool wait, int timeout_ms);

/* No more pushes: poppers drain the queue, then get 0. */
void fv_workq_close(struct fv_workq *q);

/* Abort: every wait returns -ECANCELED now and later. Idempotent. */
void fv_workq_shutdown(struct fv_workq *q);

#endif
