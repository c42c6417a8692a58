/* workq: bounded FIFO (contract in workq.h). One mutex and two condition
 * variables: the queue holds a few hundred small items handed over a few
 * thousand times a second, so contention is not worth more machinery. */
#include "workq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int fv_workq_init(struct fv_workq *q, size_t item_size, size_t cap)
{
	memset(q, 0, sizeof *q);
	if (!cap || !item_size)
		return -EINVAL;
	q->ring = malloc(item_size * cap);
	if (!q->ring)
		return -ENOMEM;
	q->isize = item_size;
	q->cap = cap;
	pthread_mutex_init(&q->mu, NULL);
	/* timed pops measure against the monotonic clock: a clock step must
	 * not stretch or skip a wait */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->can_pop, &ca);
	pthread_cond_init(&q->can_push, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

void fv_workq_fini(struct fv_workq *q)
{
	if (!q->ring)
		return;
	pthread_cond_destroy(&q->can_pop);
	pthread_cond_destroy(&q->can_push);
	pthread_mutex_destroy(&q->mu);
	free(q->ring);
	q->ring = NULL;
}

int fv_workq_push(struct fv_workq *q, const void *item)
{
	int rc = 0;
	pthread_mutex_lock(&q->mu);
	while (q->n == q->cap && !q->shut && !q->closed)
		pthread_cond_wait(&q->can_push, &q->mu);
	if (q->shut) {
		rc = -ECANCELED;
	} else if (q->closed) {
		rc = -EPIPE;
	} else {
		memcpy(q->ring + ((q->head + q->n) % q->cap) * q->isize, item, q->isize);
		q->n++;
		pthread_cond_signal(&q->can_pop);
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int fv_workq_pop(struct fv_workq *q, void *item, bool wait, int timeout_ms)
{
	struct timespec until;
	int rc = 0;
	if (timeout_ms > 0) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&q->mu);
	while (wait && !q->n && !q->shut && !q->closed) {
		if (timeout_ms <= 0) {
			pthread_cond_wait(&q->can_pop, &q->mu);
		} else if (pthread_cond_timedwait(&q->can_pop, &q->mu, &until) == ETIMEDOUT) {
			rc = -ETIMEDOUT;
			break;
		}
	}
	if (q->shut) {
		rc = -ECANCELED;
	} else if (q->n) {
		memcpy(item, q->ring + q->head * q->isize, q->isize);
		q->head = (q->head + 1) % q->cap;
		q->n--;
		pthread_cond_signal(&q->can_push);
		rc = 1;
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

void fv_workq_close(struct fv_workq *q)
{
	pthread_mutex_lock(&q->mu);
	q->closed = true;
	pthread_cond_broadcast(&q->can_pop);
	pthread_cond_broadcast(&q->can_push);
	pthread_mutex_unlock(&q->mu);
}

void fv_workq_shutdown(struct fv_workq *q)
{
	pthread_mutex_lock(&q->mu);
	q->shut = true;
	pthread_cond_broadcast(&q->can_pop);
	pthread_cond_broadcast(&q->can_push);
	pthread_mutex_unlock(&q->mu);
}
