#include "pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "workq.h"

/* A slot carries a batch of chunks: handed over one by one, the 16 KiB
 * blocks of databases and vector files cost two thread wake-ups each. A
 * slot takes chunks while it holds fewer than BATCH_BYTES of them (and
 * fewer than BATCH_MAX); a larger chunk travels alone. */
#define BATCH_MAX 64
#define BATCH_BYTES (1u << 20)

/* One chunk of a slot. */
struct item {
	void *tag;
	uint32_t idx;
	size_t len;
	size_t in_off;  /* the chunk is at in + in_off; in[in_off - 1] is its headroom */
	size_t out_off; /* its sealed form goes to out + out_off */
	size_t outlen;
	uint8_t id[FV_ID_LEN];
	bool dup;   /* already stored or in flight: not encoded */
	bool owner; /* in the in-flight set: the copy of id being stored */
};

struct slot {
	uint8_t *in, *out;
	size_t in_used, out_used, data; /* data: chunk bytes in the batch */
	unsigned n;
	int rc;
	struct fv_err err;
	struct item it[BATCH_MAX];
};

struct worker {
	struct fv_pipe *p;
	struct fv_repo_enc *enc;
	pthread_t th;
};

struct fv_pipe {
	struct fv_repo *r;
	/* mu: r's index (workers look up, the walker adds) and the in-flight
	 * set: the items being stored, by id (open addressing, linear probing,
	 * at most half full: room for every item of every slot) */
	pthread_mutex_t mu;
	struct item **set;
	size_t setmask;
	struct fv_workq todo, done; /* of struct slot *; as many places as slots */
	struct slot *slots;
	size_t nslots;
	struct worker *w;
	unsigned nw, wcap; /* threads running; workers allocated */
	size_t ov;         /* seal overhead */
	/* the walker's */
	struct slot **free;
	struct slot *cur;       /* being filled */
	size_t nfree, inflight; /* inflight: slots handed to the workers */
	int rc;
	struct fv_err err;
	fv_pipe_stored_fn *stored;
	void *ud;
};

/* Ids are keyed BLAKE2b: their first bytes are a uniform hash already. */
static size_t home(const struct fv_pipe *p, const uint8_t id[FV_ID_LEN])
{
	uint64_t h;
	memcpy(&h, id, sizeof h);
	return (size_t)h & p->setmask;
}

/* True when its id is in flight already (it is a copy); else it goes into
 * the set, as the copy being stored. mu held. */
static bool in_flight_add(struct fv_pipe *p, struct item *it)
{
	size_t i = home(p, it->id);
	for (; p->set[i]; i = (i + 1) & p->setmask)
		if (memcmp(p->set[i]->id, it->id, FV_ID_LEN) == 0)
			return true;
	p->set[i] = it;
	it->owner = true;
	return false;
}

/* Take it out of the in-flight set, moving later entries of its probe run
 * back so that no lookup stops short. mu held. */
static void in_flight_del(struct fv_pipe *p, struct item *it)
{
	size_t i = home(p, it->id), j;
	while (p->set[i] != it)
		i = (i + 1) & p->setmask;
	for (j = i;;) {
		j = (j + 1) & p->setmask;
		if (!p->set[j])
			break;
		size_t k = home(p, p->set[j]->id);
		/* the entry at j may stay when its home is cyclically in (i, j] */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		p->set[i] = p->set[j];
		i = j;
	}
	p->set[i] = NULL;
	it->owner = false;
}

static void work(struct worker *w, struct slot *s)
{
	struct fv_pipe *p = w->p;
	for (unsigned k = 0; k < s->n; k++)
		fv_repo_id(p->r, s->in + s->it[k].in_off, s->it[k].len, s->it[k].id);
	/* one lock per batch; a copy later in the batch sees an earlier owner */
	pthread_mutex_lock(&p->mu);
	for (unsigned k = 0; k < s->n; k++) {
		struct item *it = &s->it[k];
		it->owner = false;
		it->dup = fv_repo_has(p->r, it->id) || in_flight_add(p, it);
	}
	pthread_mutex_unlock(&p->mu);
	s->rc = 0;
	for (unsigned k = 0; k < s->n && s->rc == 0; k++) {
		struct item *it = &s->it[k];
		if (!it->dup)
			s->rc = fv_repo_encode(w->enc, FV_OBJ_DATA, it->id, s->in + it->in_off, it->len,
					       s->out + it->out_off, &it->outlen, &s->err);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct fv_pipe *p = w->p;
	struct slot *s;
	pthread_setname_np(pthread_self(), "fv-worker"); /* for top and perf; best effort */
	while (fv_workq_pop(&p->todo, &s, true, 0) == 1) {
		work(w, s);
		if (fv_workq_push(&p->done, &s) < 0)
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
		fv_workq_shutdown(&p->todo);
		fv_workq_shutdown(&p->done);
	}
	if (e)
		*e = p->err;
	return p->rc;
}

/* Append a finished slot's chunks and hand it back to the free list. */
static int complete(struct fv_pipe *p, struct slot *s, struct fv_err *e)
{
	int rc = s->rc;
	struct fv_err ae = {0};
	if (rc < 0)
		return fail(p, rc, &s->err, e);
	for (unsigned k = 0; k < s->n && rc == 0; k++) {
		struct item *it = &s->it[k];
		if (it->dup)
			fv_repo_count_dup(p->r);
		else
			rc = fv_repo_append(p->r, FV_OBJ_DATA, it->id, (uint32_t)it->len,
					    s->out + it->out_off, it->outlen, &p->mu, NULL, &ae);
	}
	pthread_mutex_lock(&p->mu);
	for (unsigned k = 0; k < s->n; k++)
		if (s->it[k].owner)
			in_flight_del(p, &s->it[k]); /* in the index now (or the run has failed) */
	pthread_mutex_unlock(&p->mu);
	if (rc < 0)
		return fail(p, rc, &ae, e);
	for (unsigned k = 0; k < s->n; k++)
		p->stored(p->ud, s->it[k].tag, s->it[k].idx, s->it[k].id);
	p->inflight--;
	p->free[p->nfree++] = s;
	return 0;
}

/* Complete finished slots: all that are there, or (wait) at least one. */
static int reap(struct fv_pipe *p, bool wait, struct fv_err *e)
{
	struct slot *s;
	int rc;
	while ((rc = fv_workq_pop(&p->done, &s, wait, 0)) == 1) {
		rc = complete(p, s, e);
		if (rc < 0)
			return rc;
		wait = false;
	}
	/* 0: empty (the queue is never closed); -ECANCELED: after a failure */
	return rc == 0 ? 0 : fail(p, rc, NULL, e);
}

/* Hand the slot being filled to the workers. */
static int flush(struct fv_pipe *p, struct fv_err *e)
{
	struct slot *s = p->cur;
	if (!s)
		return 0;
	p->cur = NULL;
	p->inflight++;
	int rc = fv_workq_push(&p->todo, &s);
	return rc < 0 ? fail(p, rc, NULL, e) : 0;
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
	struct slot *s = p->cur;
	if (s && (s->n == BATCH_MAX || s->data + len > BATCH_BYTES)) {
		rc = flush(p, e);
		if (rc < 0)
			return rc;
		s = NULL;
	}
	if (!s) {
		rc = reap(p, false, e);
		while (rc == 0 && p->nfree == 0)
			rc = reap(p, true, e);
		if (rc < 0)
			return rc;
		s = p->cur = p->free[--p->nfree];
		s->n = 0;
		s->in_used = s->out_used = s->data = 0;
	}
	struct item *it = &s->it[s->n++];
	it->tag = tag;
	it->idx = idx;
	it->len = len;
	it->in_off = s->in_used + 1;
	it->out_off = s->out_used;
	/* the one copy of a chunk on this path: the walker's read buffer is
	 * refilled while workers encode; the headroom byte saves the copy a raw
	 * blob would otherwise need for its encoding byte */
	memcpy(s->in + it->in_off, data, len);
	s->in_used += 1 + len;
	s->out_used += 1 + len + p->ov;
	s->data += len;
	return 0;
}

int fv_pipe_wait(struct fv_pipe *p, struct fv_err *e)
{
	int rc = p->rc ? fail(p, p->rc, NULL, e) : flush(p, e);
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
	if (p->todo.ring)
		fv_workq_shutdown(&p->todo);
	if (p->done.ring)
		fv_workq_shutdown(&p->done);
	for (unsigned i = 0; p->w && i < p->nw; i++)
		pthread_join(p->w[i].th, NULL);
	for (unsigned i = 0; p->w && i < p->wcap; i++)
		fv_repo_enc_free(p->w[i].enc);
	for (size_t i = 0; p->slots && i < p->nslots; i++) {
		free(p->slots[i].in);
		free(p->slots[i].out);
	}
	fv_workq_fini(&p->todo);
	fv_workq_fini(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p->set);
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
	p->free = calloc(p->nslots, sizeof(struct slot *));
	p->w = calloc(nworkers, sizeof *p->w);
	p->wcap = nworkers;
	size_t setcap = 1;
	while (setcap < 2 * p->nslots * BATCH_MAX)
		setcap *= 2;
	p->set = calloc(setcap, sizeof(struct item *));
	p->setmask = setcap - 1;
	if (!p->slots || !p->free || !p->w || !p->set)
		goto fail;
	/* the most chunk bytes a slot holds: one chunk of up to max, or a
	 * batch of up to BATCH_BYTES */
	size_t data = max > BATCH_BYTES ? max : BATCH_BYTES;
	p->ov = fv_repo_sealed_max(r, 0) - 1;
	for (size_t i = 0; i < p->nslots; i++) {
		struct slot *s = &p->slots[i];
		/* malloc'd once at the largest size; pages are faulted in as used */
		s->in = malloc(data + BATCH_MAX);
		s->out = malloc(data + BATCH_MAX * (1 + p->ov));
		if (!s->in || !s->out)
			goto fail;
		p->free[p->nfree++] = s;
	}
	for (unsigned i = 0; i < nworkers; i++) {
		p->w[i].p = p;
		if (fv_repo_enc_new(r, max, &p->w[i].enc) < 0)
			goto fail;
	}
	if (fv_workq_init(&p->todo, sizeof(struct slot *), p->nslots) < 0 ||
	    fv_workq_init(&p->done, sizeof(struct slot *), p->nslots) < 0)
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
