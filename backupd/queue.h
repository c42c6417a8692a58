/* queue: a bounded FIFO of pointers between threads (the stages of the
 * snapshot pipeline, backupd/pipeline.h).
 *
 * Any number of threads may push and pop. push blocks while the queue is
 * full, pop while it is empty. fv_queue_shutdown() wakes every waiter and
 * makes every later or pending push/pop fail with -ECANCELED, whatever the
 * queue still holds: a stage that fails stops the others without anyone
 * being left blocked on a full or empty queue. Items still queued at
 * shutdown stay owned by whoever owns the queue (they are not freed here).
 *
 * Memory: cap pointers, allocated once by fv_queue_init; nothing is
 * allocated per item.
 */
#ifndef FV_QUEUE_H
#define FV_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct fv_queue {
	pthread_mutex_t mu;
	pthread_cond_t nonempty, nonfull;
	void **v;
	size_t cap, head, n;
	bool shut;
};

/* Set up q for at most cap (>= 1) items. Returns 0, -EINVAL or -ENOMEM. */
int fv_queue_init(struct fv_queue *q, size_t cap);

/* Free what q holds (no thread may be using it). q may be zero-initialised. */
void fv_queue_destroy(struct fv_queue *q);

/* Append item, waiting for room. Returns 0 or -ECANCELED (shut down). */
int fv_queue_push(struct fv_queue *q, void *item);

/* Take the oldest item, waiting for one. Returns 0 or -ECANCELED. */
int fv_queue_pop(struct fv_queue *q, void **item);

/* pop without waiting: 0, -EAGAIN (empty) or -ECANCELED. */
int fv_queue_trypop(struct fv_queue *q, void **item);

/* Make every current and later wait on q return -ECANCELED. Idempotent. */
void fv_queue_shutdown(struct fv_queue *q);

#endif
