#include "pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

/* One chunk on its way through the pipeline. */
struct slot {
	uint8_t *in; /* in[0] is headroom for the encoding byte; the chunk is in + 1 */
	uint8_t *out;
	size_t len, outlen;
	void *tag;
	uint32_t idx;
	uint8_t id[FV_ID_LEN];
	bool dup;   /* already stored or in flight: not encoded */
	bool owner; /* the copy of id in flight (under mu): later copies are dups */
	int rc;
	struct fv_err err;
};

struct worker {
	struct fv_pipe *p;
	struct fv_repo_enc *enc;
	pthread_t th;
};

struct fv_pipe {
	struct fv_repo *r;
	/* mu: r's index (workers look up, the walker adds) and slots' owner/id */
	pthread_mutex_t mu;
	struct fv_queue todo, done;
	struct slot *slots;
	size_t nslots;
	struct worker *w;
	unsigned nw, wcap; /* threads running; workers allocated */
	/* the walker's */
	struct slot **free;
	size_t nfree, inflight;
	int rc;
	struct fv_err err;
	fv_pipe_stored_fn *stored;
	void *ud;
};

/* mu held. */
static bool in_flight(const struct fv_pipe *p, const uint8_t id[FV_ID_LEN])
{
	for (size_t i = 0; i < p->nslots; i++)
		if (p->slots[i].owner && memcmp(p->slots[i].id, id, FV_ID_LEN) == 0)
			return true;
	return false;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct fv_pipe *p = w->p;
	void *item;
	while (fv_queue_pop(&p->todo, &item) == 0) {
		struct slot *s = item;
		fv_repo_id(p->r, s->in + 1, s->len, s->id);
		pthread_mutex_lock(&p->mu);
		s->dup = fv_repo_has(p->r, s->id) || in_flight(p, s->id);
		s->owner = !s->dup;
		pthread_mutex_unlock(&p->mu);
		s->rc = 0;
		if (!s->dup)
			s->rc = fv_repo_encode(w->enc, FV_OBJ_DATA, s->id, s->in + 1, s->len, s->out,
					       &s->outlen, &s->err);
		if (fv_queue_push(&p->done, s) < 0)
			break;
	}
	return NULL;
}

static int fail(struct fv_pipe *p, int rc, const struct fv_err *why, struct fv_err *e)
{
	if (!p->rc) {
		p->rc = rc;
		if (why)
			p->err = *why;
		/* nothing more is appended: let the workers go */
		fv_queue_shutdown(&p->todo);
		fv_queue_shutdown(&p->done);
	}
	if (e)
		*e = p->err;
	return p->rc;
}

/* Append a finished slot and hand it back to the free list. */
static int complete(struct fv_pipe *p, struct slot *s, struct fv_err *e)
{
	int rc = s->rc;
	struct fv_err ae = {0};
	if (rc < 0)
		return fail(p, rc, &s->err, e);
	if (s->dup) {
		fv_repo_count_dup(p->r);
	} else {
		rc = fv_repo_append(p->r, FV_OBJ_DATA, s->id, (uint32_t)s->len, s->out, s->outlen, &p->mu,
				    NULL, &ae);
		pthread_mutex_lock(&p->mu);
		s->owner = false; /* in the index now (or the run has failed) */
		pthread_mutex_unlock(&p->mu);
		if (rc < 0)
			return fail(p, rc, &ae, e);
	}
	p->stored(p->ud, s->tag, s->idx, s->id);
	p->inflight--;
	p->free[p->nfree++] = s;
	return 0;
}

/* Complete finished slots: all that are there, or (wait) at least one. */
static int reap(struct fv_pipe *p, bool wait, struct fv_err *e)
{
	void *item;
	int rc;
	while ((rc = wait ? fv_queue_pop(&p->done, &item) : fv_queue_trypop(&p->done, &item)) == 0) {
		rc = complete(p, item, e);
		if (rc < 0)
			return rc;
		wait = false;
	}
	if (rc == -EAGAIN)
		return 0;
	return fail(p, rc, NULL, e); /* -ECANCELED: only after a failure */
}

int fv_pipe_submit(struct fv_pipe *p, const uint8_t *data, size_t len, void *tag, uint32_t idx,
		   struct fv_err *e)
{
	const struct fv_chunker *ch = fv_repo_chunker(p->r);
	int rc;
	if (p->rc)
		return fail(p, p->rc, NULL, e);
	if (len > ch->p.max)
		return fv_err_set(e, -EFBIG, "chunk of %zu bytes is larger than the repository's maximum",
				  len);
	rc = reap(p, false, e);
	while (rc == 0 && p->nfree == 0)
		rc = reap(p, true, e);
	if (rc < 0)
		return rc;
	struct slot *s = p->free[--p->nfree];
	/* the one copy of a chunk on this path: the walker's read buffer is
	 * refilled while workers encode; the headroom byte saves the copy a raw
	 * blob would otherwise need for its encoding byte */
	memcpy(s->in + 1, data, len);
	s->len = len;
	s->tag = tag;
	s->idx = idx;
	p->inflight++;
	rc = fv_queue_push(&p->todo, s);
	if (rc < 0)
		return fail(p, rc, NULL, e);
	return 0;
}

int fv_pipe_wait(struct fv_pipe *p, struct fv_err *e)
{
	int rc = p->rc ? fail(p, p->rc, NULL, e) : 0;
	while (rc == 0 && p->inflight)
		rc = reap(p, true, e);
	return rc;
}

int fv_pipe_put_now(struct fv_pipe *p, uint8_t type, const uint8_t *data, size_t len, uint8_t id[FV_ID_LEN],
		    struct fv_err *e)
{
	if (p->rc)
		return fail(p, p->rc, NULL, e);
	fv_repo_id(p->r, data, len, id);
	struct fv_err pe = {0};
	int rc = fv_repo_put_locked(p->r, type, id, data, len, &p->mu, NULL, &pe);
	if (rc < 0)
		return fail(p, rc, &pe, e);
	return 0;
}

int fv_pipe_error(const struct fv_pipe *p)
{
	return p->rc;
}

void fv_pipe_stop(struct fv_pipe *p)
{
	if (!p)
		return;
	if (p->todo.v)
		fv_queue_shutdown(&p->todo);
	if (p->done.v)
		fv_queue_shutdown(&p->done);
	for (unsigned i = 0; i < p->nw; i++)
		pthread_join(p->w[i].th, NULL);
	for (unsigned i = 0; p->w && i < p->wcap; i++)
		fv_repo_enc_free(p->w[i].enc);
	for (size_t i = 0; p->slots && i < p->nslots; i++) {
		free(p->slots[i].in);
		free(p->slots[i].out);
	}
	fv_queue_destroy(&p->todo);
	fv_queue_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p->slots);
	free(p->free);
	free(p->w);
	free(p);
}

int fv_pipe_start(struct fv_repo *r, unsigned nworkers, fv_pipe_stored_fn *stored, void *ud,
		  struct fv_pipe **out, struct fv_err *e)
{
	if (nworkers < 1 || nworkers > FV_PIPE_WORKERS_MAX)
		return fv_err_set(e, -EINVAL, "%u worker threads: need 1 to %d", nworkers,
				  FV_PIPE_WORKERS_MAX);
	struct fv_pipe *p = calloc(1, sizeof *p);
	if (!p)
		return fv_err_set(e, -ENOMEM, "out of memory");
	size_t max = fv_repo_chunker(r)->p.max;
	int rc = -ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	p->r = r;
	p->stored = stored;
	p->ud = ud;
	/* a slot per worker, one the walker fills, one queued for the next
	 * free worker */
	p->nslots = nworkers + 2;
	p->slots = calloc(p->nslots, sizeof *p->slots);
	p->free = calloc(p->nslots, sizeof *p->free);
	p->w = calloc(nworkers, sizeof *p->w);
	p->wcap = nworkers;
	if (!p->slots || !p->free || !p->w)
		goto fail;
	for (size_t i = 0; i < p->nslots; i++) {
		struct slot *s = &p->slots[i];
		/* malloc'd once at the largest size; pages are faulted in as used */
		s->in = malloc(1 + max);
		s->out = malloc(fv_repo_sealed_max(r, max));
		if (!s->in || !s->out)
			goto fail;
		p->free[p->nfree++] = s;
	}
	for (unsigned i = 0; i < nworkers; i++) {
		p->w[i].p = p;
		if (fv_repo_enc_new(r, max, &p->w[i].enc) < 0)
			goto fail;
	}
	if (fv_queue_init(&p->todo, p->nslots) < 0 || fv_queue_init(&p->done, p->nslots) < 0)
		goto fail;
	for (unsigned i = 0; i < nworkers; i++) {
		rc = -pthread_create(&p->w[i].th, NULL, worker_main, &p->w[i]);
		if (rc < 0)
			break;
		p->nw++;
	}
	if (p->nw == 0) {
		rc = fv_err_set(e, rc, "cannot start a worker thread");
		fv_pipe_stop(p);
		return rc;
	}
	/* fewer threads than asked (a thread limit) still work */
	*out = p;
	return 0;
fail:
	fv_pipe_stop(p);
	return fv_err_set(e, -ENOMEM, "out of memory (snapshot pipeline buffers)");
}
