#include "queue.h"

#include <errno.h>
#include <stdlib.h>

int fv_queue_init(struct fv_queue *q, size_t cap)
{
	if (cap == 0)
		return -EINVAL;
	q->v = calloc(cap, sizeof *q->v);
	if (!q->v)
		return -ENOMEM;
	q->cap = cap;
	q->head = q->n = 0;
	q->shut = false;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->nonempty, NULL);
	pthread_cond_init(&q->nonfull, NULL);
	return 0;
}

void fv_queue_destroy(struct fv_queue *q)
{
	if (!q->v)
		return;
	pthread_cond_destroy(&q->nonfull);
	pthread_cond_destroy(&q->nonempty);
	pthread_mutex_destroy(&q->mu);
	free(q->v);
	q->v = NULL;
}

int fv_queue_push(struct fv_queue *q, void *item)
{
	pthread_mutex_lock(&q->mu);
	while (q->n == q->cap && !q->shut)
		pthread_cond_wait(&q->nonfull, &q->mu);
	if (q->shut) {
		pthread_mutex_unlock(&q->mu);
		return -ECANCELED;
	}
	q->v[(q->head + q->n) % q->cap] = item;
	q->n++;
	pthread_cond_signal(&q->nonempty);
	pthread_mutex_unlock(&q->mu);
	return 0;
}

/* Take the head; q->mu held, q->n > 0. */
static void *take(struct fv_queue *q)
{
	void *item = q->v[q->head];
	q->head = (q->head + 1) % q->cap;
	q->n--;
	pthread_cond_signal(&q->nonfull);
	return item;
}

int fv_queue_pop(struct fv_queue *q, void **item)
{
	pthread_mutex_lock(&q->mu);
	while (q->n == 0 && !q->shut)
		pthread_cond_wait(&q->nonempty, &q->mu);
	int rc = q->shut ? -ECANCELED : 0;
	if (rc == 0)
		*item = take(q);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int fv_queue_trypop(struct fv_queue *q, void **item)
{
	pthread_mutex_lock(&q->mu);
	int rc = q->shut ? -ECANCELED : q->n == 0 ? -EAGAIN : 0;
	if (rc == 0)
		*item = take(q);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

void fv_queue_shutdown(struct fv_queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->shut = true;
	pthread_cond_broadcast(&q->nonempty);
	pthread_cond_broadcast(&q->nonfull);
	pthread_mutex_unlock(&q->mu);
}
