/* Unit tests for the bounded queue between the snapshot pipeline's threads:
 * FIFO order and bounds, many producers and consumers losing or repeating
 * nothing, and shutdown releasing threads blocked on a full or an empty
 * queue (what keeps a failing pipeline from deadlocking). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "../../backupd/queue.h"
#include "../harness.h"

FV_TEST(fifo_and_bounds)
{
	struct fv_queue q = {0};
	void *item;
	FV_CHECK_EQ(fv_queue_init(&q, 0), -EINVAL);
	FV_REQUIRE(fv_queue_init(&q, 3) == 0);
	FV_CHECK_EQ(fv_queue_trypop(&q, &item), -EAGAIN);
	/* wrap around the ring a few times */
	for (uintptr_t round = 0; round < 5; round++) {
		for (uintptr_t i = 1; i <= 3; i++)
			FV_CHECK_EQ(fv_queue_push(&q, (void *)(round * 10 + i)), 0);
		FV_CHECK_EQ(q.n, 3);
		for (uintptr_t i = 1; i <= 3; i++) {
			FV_CHECK_EQ(fv_queue_pop(&q, &item), 0);
			FV_CHECK_EQ((uintptr_t)item, round * 10 + i);
		}
		FV_CHECK_EQ(fv_queue_trypop(&q, &item), -EAGAIN);
	}
	fv_queue_shutdown(&q);
	fv_queue_shutdown(&q); /* idempotent */
	FV_CHECK_EQ(fv_queue_push(&q, (void *)1), -ECANCELED);
	FV_CHECK_EQ(fv_queue_trypop(&q, &item), -ECANCELED);
	fv_queue_destroy(&q);
	fv_queue_destroy(&q); /* a destroyed queue may be destroyed again */
}

#define NPROD 4
#define NCONS 4
#define PER 20000

struct mp {
	struct fv_queue q;
	uintptr_t base;
	pthread_mutex_t mu;
	unsigned seen[NPROD * PER];
	unsigned popped;
};

struct mp_arg {
	struct mp *m;
	uintptr_t k;
};

static void *producer(void *arg)
{
	struct mp_arg *a = arg;
	for (uintptr_t i = 0; i < PER; i++)
		if (fv_queue_push(&a->m->q, (void *)(a->m->base + a->k * PER + i)) < 0)
			break;
	return NULL;
}

static void *consumer(void *arg)
{
	struct mp *m = arg;
	void *item;
	while (fv_queue_pop(&m->q, &item) == 0) {
		uintptr_t v = (uintptr_t)item - m->base;
		pthread_mutex_lock(&m->mu);
		if (v < NPROD * PER)
			m->seen[v]++;
		m->popped++;
		pthread_mutex_unlock(&m->mu);
	}
	return NULL;
}

FV_TEST(many_producers_consumers)
{
	static struct mp m;
	pthread_t p[NPROD], c[NCONS];
	struct mp_arg a[NPROD];
	m.base = 1; /* no NULL items */
	pthread_mutex_init(&m.mu, NULL);
	FV_REQUIRE(fv_queue_init(&m.q, 7) == 0); /* small: pushers and poppers both wait */
	for (int i = 0; i < NCONS; i++)
		FV_REQUIRE(pthread_create(&c[i], NULL, consumer, &m) == 0);
	for (int i = 0; i < NPROD; i++) {
		a[i].m = &m;
		a[i].k = (uintptr_t)i;
		FV_REQUIRE(pthread_create(&p[i], NULL, producer, &a[i]) == 0);
	}
	for (int i = 0; i < NPROD; i++)
		pthread_join(p[i], NULL);
	/* the consumers drain what is left, then shutdown ends their waits */
	for (;;) {
		pthread_mutex_lock(&m.mu);
		unsigned done = m.popped;
		pthread_mutex_unlock(&m.mu);
		if (done == NPROD * PER)
			break;
		usleep(1000);
	}
	fv_queue_shutdown(&m.q);
	for (int i = 0; i < NCONS; i++)
		pthread_join(c[i], NULL);
	unsigned bad = 0;
	for (unsigned i = 0; i < NPROD * PER; i++)
		bad += m.seen[i] != 1;
	FV_CHECK_EQ(bad, 0);
	FV_CHECK_EQ(m.popped, NPROD * PER);
	fv_queue_destroy(&m.q);
	pthread_mutex_destroy(&m.mu);
}

struct blocked {
	struct fv_queue *q;
	int rc;
};

static void *push_one(void *arg)
{
	struct blocked *b = arg;
	b->rc = fv_queue_push(b->q, (void *)1);
	return NULL;
}

static void *pop_one(void *arg)
{
	struct blocked *b = arg;
	void *item;
	b->rc = fv_queue_pop(b->q, &item);
	return NULL;
}

/* A thread blocked on a full queue (a worker whose appender failed) and one
 * on an empty queue (a worker waiting for chunks) both return -ECANCELED. */
FV_TEST(shutdown_releases_waiters)
{
	struct fv_queue full = {0}, empty = {0};
	FV_REQUIRE(fv_queue_init(&full, 1) == 0);
	FV_REQUIRE(fv_queue_init(&empty, 1) == 0);
	FV_REQUIRE(fv_queue_push(&full, (void *)1) == 0);
	struct blocked b1 = {&full, 1}, b2 = {&empty, 1};
	pthread_t t1, t2;
	FV_REQUIRE(pthread_create(&t1, NULL, push_one, &b1) == 0);
	FV_REQUIRE(pthread_create(&t2, NULL, pop_one, &b2) == 0);
	usleep(50000); /* let both block (the test passes either way) */
	fv_queue_shutdown(&full);
	fv_queue_shutdown(&empty);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	FV_CHECK_EQ(b1.rc, -ECANCELED);
	FV_CHECK_EQ(b2.rc, -ECANCELED);
	fv_queue_destroy(&full);
	fv_queue_destroy(&empty);
}

FV_TESTS(fifo_and_bounds, many_producers_consumers, shutdown_releases_waiters)
