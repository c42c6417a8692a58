/* fsclient: docs/protocol.md from the client's side. */
#include "fsclient.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/buf.h"

#define REPLY_SMALL 256      /* attr replies and the like */
#define REPLY_MAX 65536      /* docs/transport.md: a control message */
#define MAX_DEPTH 4096       /* path components of a node we re-resolve */
#define FORGET_FLUSH_MS 500  /* a queued FORGET waits at most this long */
#define FORGET_DRAIN_MS 2000 /* fv_fsc_free waits this long for the last FORGETs */

/* One node the kernel knows: enough to find it again by name. */
struct node {
	uint64_t id, parent;
	uint64_t nlookup;
	uint64_t extra;       /* lookups the server counted for resolve(), given back with the last */
	uint64_t listed_next; /* the node listed after it (fv_fsc_set_next) */
	uint64_t csize;       /* size and mtime at the last open (keep_cache) */
	int64_t cmtime;
	bool cvalid;
	char *name;
	struct node *next;
};

struct forget_ent {
	uint64_t node, n;
};

struct fv_fsc {
	struct fv_tp_client *tp;
	pthread_mutex_t mu; /* the node map */
	struct node **tab;
	size_t nbuckets, nnodes;

	pthread_mutex_t fmu; /* the FORGET queue and its thread */
	pthread_cond_t fcv;
	struct forget_ent *fq;
	size_t nfq;
	bool stop;
	pthread_t flusher;

	atomic_bool no_inline; /* the server answered OPEN_INLINE -ENOSYS */
};

int fv_fsc_tp_errno(int status)
{
	switch (status) {
	case -EHOSTUNREACH:
	case -ECANCELED:
	case -ECONNRESET:
	case -ETIMEDOUT:
		return -EIO;
	case -EMSGSIZE:
		return -EPROTO;
	default:
		return status;
	}
}

struct fv_tp_client *fv_fsc_tp(struct fv_fsc *c)
{
	return c->tp;
}

/* ---- calls -------------------------------------------------------------- */

/* The status of a finished call: a transport error as an errno, -EPROTO for
 * a reply without a valid status, else the server's status (0 or -errno). */
static int call_status(const struct fv_tp_call *call, const uint8_t *rep)
{
	if (call->status)
		return fv_fsc_tp_errno(call->status);
	if (call->reply_len < 4)
		return -EPROTO;
	int32_t st = (int32_t)fv_get_le32(rep);
	return st > 0 || st < -4095 ? -EPROTO : st;
}

/* One synchronous request; returns the server's status (or a transport
 * error) and leaves the reply in rep[0..*rlen) (to be read only when the
 * status is 0). Every request of this
 * protocol reads and changes nothing, so each one may be sent again on
 * another path (idempotent); a second OPEN at worst holds a handle until the
 * connection ends. */
static int rpc(struct fv_fsc *c, const void *req, size_t len, uint8_t *rep, uint32_t cap, uint32_t *rlen,
	       struct fv_tp_buf *bulk, uint32_t bulkcap, uint32_t *blen)
{
	struct fv_tp_call call = {.req = req,
				  .req_len = (uint32_t)len,
				  .idempotent = true,
				  .reply = rep,
				  .reply_cap = cap,
				  .bulk = bulk,
				  .bulk_cap = bulk ? bulkcap : 0};
	(void)fv_tp_call(c->tp, &call);
	if (rlen)
		*rlen = call.reply_len;
	if (blen)
		*blen = call.bulk_len;
	return call_status(&call, rep);
}

static int rpc_buf(struct fv_fsc *c, struct fv_buf *req, uint8_t *rep, uint32_t cap, uint32_t *rlen)
{
	if (!fv_buf_ok(req))
		return -ENOMEM;
	return rpc(c, req->data, req->len, rep, cap, rlen, NULL, 0, NULL);
}

/* A reply reader positioned after the status. */
static void reply_rd(struct fv_rd *r, const uint8_t *rep, uint32_t len)
{
	fv_rd_init(r, rep, len);
	(void)fv_rd_u32(r);
}

/* The attr result of LOOKUP and GETATTR: exactly one attr. */
static int attr_reply(const uint8_t *rep, uint32_t len, struct fv_fs_attr *a)
{
	struct fv_rd r;
	reply_rd(&r, rep, len);
	fv_fs_attr_get(&r, a);
	return fv_rd_ok(&r) && fv_rd_left(&r) == 0 ? 0 : -EPROTO;
}

static int lookup_raw(struct fv_fsc *c, uint64_t parent, const char *name, struct fv_fs_attr *a)
{
	size_t len = strlen(name);
	if (!fv_fs_name_ok(name, len))
		return len > FV_FS_NAME_MAX ? -ENAMETOOLONG : -EINVAL;
	struct fv_buf req = {0};
	uint8_t rep[REPLY_SMALL];
	uint32_t rlen = 0;
	fv_fs_req_begin(&req, FV_FS_LOOKUP);
	fv_buf_u64(&req, parent);
	fv_buf_str(&req, name, len);
	int rc = rpc_buf(c, &req, rep, sizeof rep, &rlen);
	fv_buf_free(&req);
	return rc ? rc : attr_reply(rep, rlen, a);
}

static int getattr_raw(struct fv_fsc *c, uint64_t node, struct fv_fs_attr *a)
{
	uint8_t req[12], rep[REPLY_SMALL];
	uint32_t rlen = 0;
	fv_fs_req_put(req, FV_FS_GETATTR);
	fv_put_le64(req + 4, node);
	int rc = rpc(c, req, sizeof req, rep, sizeof rep, &rlen, NULL, 0, NULL);
	return rc ? rc : attr_reply(rep, rlen, a);
}

/* ---- node map ------------------------------------------------------------ */

static size_t bucket(const struct fv_fsc *c, uint64_t id)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 20) & (c->nbuckets - 1);
}

static struct node *find(const struct fv_fsc *c, uint64_t id)
{
	for (struct node *n = c->tab[bucket(c, id)]; n; n = n->next)
		if (n->id == id)
			return n;
	return NULL;
}

static void grow(struct fv_fsc *c)
{
	size_t nb = c->nbuckets * 2;
	struct node **t = calloc(nb, sizeof(struct node *));
	if (!t)
		return; /* longer chains, still correct */
	struct node **old = c->tab;
	size_t ob = c->nbuckets;
	c->tab = t;
	c->nbuckets = nb;
	for (size_t i = 0; i < ob; i++) {
		while (old[i]) {
			struct node *n = old[i];
			old[i] = n->next;
			size_t b = bucket(c, n->id);
			n->next = t[b];
			t[b] = n;
		}
	}
	free(old);
}

int fv_fsc_note_lookup(struct fv_fsc *c, uint64_t parent, const char *name, size_t len,
		       const struct fv_fs_attr *a)
{
	if (a->node == FV_FS_ROOT)
		return 0; /* the root is never forgotten and never re-resolved */
	int rc = 0;
	pthread_mutex_lock(&c->mu);
	struct node *n = find(c, a->node);
	/* the latest name wins: a node with several links is found by any */
	if (n && (n->parent != parent || strlen(n->name) != len || memcmp(n->name, name, len) != 0)) {
		char *s = strndup(name, len);
		if (s) {
			free(n->name);
			n->name = s;
			n->parent = parent;
		}
	}
	if (!n) {
		n = calloc(1, sizeof *n);
		char *s = strndup(name, len);
		if (!n || !s) {
			free(n);
			free(s);
			rc = -ENOMEM;
			goto out;
		}
		n->id = a->node;
		n->parent = parent;
		n->name = s;
		size_t b = bucket(c, n->id);
		n->next = c->tab[b];
		c->tab[b] = n;
		if (++c->nnodes > c->nbuckets * 2)
			grow(c);
	}
	n->nlookup++;
out:
	pthread_mutex_unlock(&c->mu);
	return rc;
}

bool fv_fsc_cache_same(struct fv_fsc *c, uint64_t node, uint64_t size, int64_t mtime_ns)
{
	bool same = false;
	pthread_mutex_lock(&c->mu);
	struct node *n = find(c, node);
	if (n) {
		same = n->cvalid && n->csize == size && n->cmtime == mtime_ns;
		n->csize = size;
		n->cmtime = mtime_ns;
		n->cvalid = true;
	}
	pthread_mutex_unlock(&c->mu);
	return same;
}

/* A LOOKUP of resolve() counted one lookup of node on the server that the
 * kernel does not know of: given back with the node's last FORGET, or now
 * when the map does not hold it. */
static void count_extra(struct fv_fsc *c, uint64_t node)
{
	pthread_mutex_lock(&c->mu);
	struct node *n = find(c, node);
	if (n)
		n->extra++;
	pthread_mutex_unlock(&c->mu);
	if (!n)
		fv_fsc_forget_server(c, node, 1);
}

/* Find node again by name from the root after the server forgot it: LOOKUP
 * every component of its path. 0 when the path names node again, -ESTALE
 * when it names another one (the file was replaced) or the map lost a link
 * of the chain. */
static int resolve(struct fv_fsc *c, uint64_t node)
{
	char **names = calloc(MAX_DEPTH, sizeof *names);
	size_t depth = 0;
	int rc = 0;
	if (!names)
		return -ENOMEM;
	pthread_mutex_lock(&c->mu);
	for (uint64_t id = node; id != FV_FS_ROOT;) {
		struct node *n = find(c, id);
		if (!n || depth == MAX_DEPTH) {
			rc = -ESTALE;
			break;
		}
		if (!(names[depth++] = strdup(n->name))) {
			rc = -ENOMEM;
			break;
		}
		id = n->parent;
	}
	pthread_mutex_unlock(&c->mu);
	uint64_t id = FV_FS_ROOT;
	/* each LOOKUP here counts on the server: count_extra keeps it, to be
	 * given back with the node (the server clamps at zero) */
	for (size_t i = depth; rc == 0 && i-- > 0;) {
		struct fv_fs_attr a = {0};
		rc = lookup_raw(c, id, names[i], &a);
		if (rc == -ENOENT)
			rc = -ESTALE;
		if (rc == 0)
			count_extra(c, a.node);
		id = a.node;
	}
	if (rc == 0 && id != node)
		rc = -ESTALE;
	for (size_t i = 0; i < depth; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* After a call on node answered rc: true when the node was found again and
 * the call is worth one more try. */
static bool stale_retry(struct fv_fsc *c, uint64_t node, int rc)
{
	return rc == -ESTALE && node != FV_FS_ROOT && resolve(c, node) == 0;
}

/* ---- FORGET -------------------------------------------------------------- */

/* The FORGETs sent at the end, counted until answered. Shared by the calls
 * and the one who waits for them, and freed by the last of them: a call
 * answered after the waiter gave up touches nothing freed. */
struct drain {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned pending; /* calls not answered yet */
	unsigned refs;    /* pending calls and the waiter */
};

static struct drain *drain_new(void)
{
	struct drain *d = calloc(1, sizeof *d);
	pthread_condattr_t ca;
	if (!d)
		return NULL;
	pthread_mutex_init(&d->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cv, &ca);
	pthread_condattr_destroy(&ca);
	d->refs = 1;
	return d;
}

/* One call answered (answered true) or the waiter gone (false). */
static void drain_put(struct drain *d, bool answered)
{
	pthread_mutex_lock(&d->mu);
	if (answered && --d->pending == 0)
		pthread_cond_signal(&d->cv);
	bool last = --d->refs == 0;
	pthread_mutex_unlock(&d->mu);
	if (last) {
		pthread_cond_destroy(&d->cv);
		pthread_mutex_destroy(&d->mu);
		free(d);
	}
}

/* Wait up to ms for every call of d; true when all were answered. */
static bool drain_wait(struct drain *d, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_mutex_lock(&d->mu);
	int rc = 0;
	while (d->pending && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&d->cv, &d->mu, &ts);
	bool all = d->pending == 0;
	pthread_mutex_unlock(&d->mu);
	return all;
}

struct forget_call {
	struct fv_tp_call call;
	struct drain *drain; /* or NULL */
	uint8_t rep[16];
	uint8_t req[];
};

static void forget_done(struct fv_tp_call *call)
{
	/* nothing to do on failure: a server that lost the connection forgot
	 * these nodes already */
	struct forget_call *f = call->ud;
	if (f->drain)
		drain_put(f->drain, true);
	free(f);
}

/* Send ents[0..n) as one FORGET, asynchronously; counted in d when not
 * NULL. */
static void forget_send(struct fv_fsc *c, const struct forget_ent *ents, size_t n, struct drain *d)
{
	size_t len = 4 + 4 + n * 16;
	struct forget_call *f = malloc(sizeof *f + len);
	if (!f)
		return;
	f->drain = d;
	if (d) {
		pthread_mutex_lock(&d->mu);
		d->pending++;
		d->refs++;
		pthread_mutex_unlock(&d->mu);
	}
	uint8_t *p = f->req;
	fv_fs_req_put(p, FV_FS_FORGET);
	fv_put_le32(p + 4, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		fv_put_le64(p + 8 + i * 16, ents[i].node);
		fv_put_le64(p + 16 + i * 16, ents[i].n);
	}
	f->call = (struct fv_tp_call){.req = f->req,
				      .req_len = (uint32_t)len,
				      .idempotent = true,
				      .reply = f->rep,
				      .reply_cap = sizeof f->rep,
				      .done = forget_done,
				      .ud = f};
	if (fv_tp_submit(c->tp, &f->call) < 0) {
		if (d)
			drain_put(d, true);
		free(f);
	}
}

/* Take the queue (under fmu) and send it. */
static void flush_locked(struct fv_fsc *c, struct drain *d)
{
	if (!c->nfq)
		return;
	forget_send(c, c->fq, c->nfq, d);
	c->nfq = 0;
}

void fv_fsc_forget_server(struct fv_fsc *c, uint64_t node, uint64_t nlookup)
{
	if (node == FV_FS_ROOT || !nlookup)
		return;
	pthread_mutex_lock(&c->fmu);
	c->fq[c->nfq++] = (struct forget_ent){node, nlookup};
	if (c->nfq == FV_FS_MAX_FORGET)
		flush_locked(c, NULL);
	pthread_mutex_unlock(&c->fmu);
}

void fv_fsc_forget(struct fv_fsc *c, uint64_t node, uint64_t nlookup)
{
	if (node == FV_FS_ROOT)
		return;
	pthread_mutex_lock(&c->mu);
	struct node **pp = &c->tab[bucket(c, node)];
	while (*pp && (*pp)->id != node)
		pp = &(*pp)->next;
	struct node *n = *pp;
	uint64_t extra = 0;
	if (n) {
		n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
		if (!n->nlookup) {
			*pp = n->next;
			c->nnodes--;
			extra = n->extra;
			free(n->name);
			free(n);
		}
	}
	pthread_mutex_unlock(&c->mu);
	fv_fsc_forget_server(c, node, nlookup + extra);
}

void fv_fsc_forget_flush(struct fv_fsc *c)
{
	pthread_mutex_lock(&c->fmu);
	flush_locked(c, NULL);
	pthread_mutex_unlock(&c->fmu);
}

int fv_fsc_forget_all(struct fv_fsc *c, int timeout_ms, size_t *nodes)
{
	struct forget_ent *v = NULL;
	size_t n = 0;
	int rc = 0;
	struct drain *d = drain_new();
	if (!d)
		return -ENOMEM;
	/* the map emptied at once: what it held belongs to the server now */
	pthread_mutex_lock(&c->mu);
	if (c->nnodes)
		v = malloc(c->nnodes * sizeof *v);
	for (size_t i = 0; v && i < c->nbuckets; i++) {
		while (c->tab[i]) {
			struct node *nd = c->tab[i];
			c->tab[i] = nd->next;
			v[n++] = (struct forget_ent){nd->id, nd->nlookup + nd->extra};
			free(nd->name);
			free(nd);
		}
	}
	if (v)
		c->nnodes = 0;
	else if (c->nnodes)
		rc = -ENOMEM;
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_lock(&c->fmu);
	flush_locked(c, d);
	pthread_mutex_unlock(&c->fmu);
	for (size_t at = 0; at < n; at += FV_FS_MAX_FORGET)
		forget_send(c, v + at, n - at < FV_FS_MAX_FORGET ? n - at : FV_FS_MAX_FORGET, d);
	free(v);
	if (nodes)
		*nodes = n;
	if (!drain_wait(d, timeout_ms) && rc == 0)
		rc = -ETIMEDOUT;
	drain_put(d, false);
	return rc;
}

static void *flusher_main(void *arg)
{
	struct fv_fsc *c = arg;
	pthread_mutex_lock(&c->fmu);
	while (!c->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += FORGET_FLUSH_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&c->fcv, &c->fmu, &ts);
		flush_locked(c, NULL);
	}
	pthread_mutex_unlock(&c->fmu);
	return NULL;
}

int fv_fsc_new(struct fv_tp_client *tp, struct fv_fsc **out)
{
	struct fv_fsc *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->tp = tp;
	c->nbuckets = 4096;
	c->tab = calloc(c->nbuckets, sizeof(struct node *));
	c->fq = calloc(FV_FS_MAX_FORGET, sizeof *c->fq);
	if (!c->tab || !c->fq)
		goto out_free;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->fmu, NULL);
	pthread_cond_init(&c->fcv, NULL);
	if (pthread_create(&c->flusher, NULL, flusher_main, c) != 0)
		goto out_destroy;
	*out = c;
	return 0;
out_destroy:
	pthread_cond_destroy(&c->fcv);
	pthread_mutex_destroy(&c->fmu);
	pthread_mutex_destroy(&c->mu);
out_free:
	free(c->fq);
	free(c->tab);
	free(c);
	return -ENOMEM;
}

void fv_fsc_free(struct fv_fsc *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->fmu);
	c->stop = true;
	pthread_cond_signal(&c->fcv);
	pthread_mutex_unlock(&c->fmu);
	pthread_join(c->flusher, NULL);
	(void)fv_fsc_forget_all(c, FORGET_DRAIN_MS, NULL);
	for (size_t i = 0; i < c->nbuckets; i++) {
		while (c->tab[i]) {
			struct node *n = c->tab[i];
			c->tab[i] = n->next;
			free(n->name);
			free(n);
		}
	}
	pthread_cond_destroy(&c->fcv);
	pthread_mutex_destroy(&c->fmu);
	pthread_mutex_destroy(&c->mu);
	free(c->fq);
	free(c->tab);
	free(c);
}

/* ---- operations ---------------------------------------------------------- */

int fv_fsc_lookup(struct fv_fsc *c, uint64_t parent, const char *name, struct fv_fs_attr *a)
{
	int rc = lookup_raw(c, parent, name, a);
	if (stale_retry(c, parent, rc))
		rc = lookup_raw(c, parent, name, a);
	if (rc)
		return rc;
	rc = fv_fsc_note_lookup(c, parent, name, strlen(name), a);
	if (rc)
		fv_fsc_forget_server(c, a->node, 1);
	return rc;
}

int fv_fsc_getattr(struct fv_fsc *c, uint64_t node, struct fv_fs_attr *a)
{
	int rc = getattr_raw(c, node, a);
	if (stale_retry(c, node, rc))
		rc = getattr_raw(c, node, a);
	if (rc == 0 && a->node != node)
		rc = -EPROTO;
	return rc;
}

static int open_raw(struct fv_fsc *c, uint64_t node, uint32_t flags, uint64_t *handle, struct fv_fs_attr *a)
{
	uint8_t req[16], rep[REPLY_SMALL];
	uint32_t rlen = 0;
	fv_fs_req_put(req, FV_FS_OPEN);
	fv_put_le64(req + 4, node);
	fv_put_le32(req + 12, flags);
	int rc = rpc(c, req, sizeof req, rep, sizeof rep, &rlen, NULL, 0, NULL);
	if (rc)
		return rc;
	struct fv_rd r;
	reply_rd(&r, rep, rlen);
	*handle = fv_rd_u64(&r);
	fv_fs_attr_get(&r, a);
	return fv_rd_ok(&r) && fv_rd_left(&r) == 0 ? 0 : -EPROTO;
}

int fv_fsc_open(struct fv_fsc *c, uint64_t node, uint32_t flags, uint64_t *handle, struct fv_fs_attr *a)
{
	int rc = open_raw(c, node, flags, handle, a);
	if (stale_retry(c, node, rc))
		rc = open_raw(c, node, flags, handle, a);
	return rc;
}

static int open_inline_raw(struct fv_fsc *c, uint64_t node, uint32_t flags, uint32_t max_inline,
			   struct fv_fs_open_inline *o, uint8_t *rep)
{
	uint8_t req[20];
	uint32_t rlen = 0;
	fv_fs_req_put(req, FV_FS_OPEN_INLINE);
	fv_put_le64(req + 4, node);
	fv_put_le32(req + 12, flags);
	fv_put_le32(req + 16, max_inline);
	int rc = rpc(c, req, sizeof req, rep, FV_FS_OPEN_INLINE_FIXED + max_inline, &rlen, NULL, 0, NULL);
	if (rc)
		return rc;
	struct fv_rd r;
	reply_rd(&r, rep, rlen);
	return fv_fs_open_inline_get(&r, max_inline, o);
}

int fv_fsc_open_inline(struct fv_fsc *c, uint64_t node, uint32_t flags, uint32_t max_inline,
		       struct fv_fs_open_inline *o, uint8_t **buf)
{
	*buf = NULL;
	memset(o, 0, sizeof *o);
	if (max_inline > FV_FS_MAX_INLINE)
		max_inline = FV_FS_MAX_INLINE;
	if (max_inline == 0 || atomic_load(&c->no_inline))
		return fv_fsc_open(c, node, flags, &o->handle, &o->attr);
	uint8_t *rep = malloc(FV_FS_OPEN_INLINE_FIXED + max_inline);
	if (!rep)
		return -ENOMEM;
	int rc = open_inline_raw(c, node, flags, max_inline, o, rep);
	if (stale_retry(c, node, rc))
		rc = open_inline_raw(c, node, flags, max_inline, o, rep);
	if (rc == -ENOSYS) {
		/* a server of before OPEN_INLINE: plain OPEN from now on */
		atomic_store(&c->no_inline, true);
		free(rep);
		memset(o, 0, sizeof *o);
		return fv_fsc_open(c, node, flags, &o->handle, &o->attr);
	}
	if (rc) {
		free(rep);
		memset(o, 0, sizeof *o);
		return rc;
	}
	/* keep only what the bytes need: the data stays at its offset */
	size_t at = (size_t)(o->data - rep);
	uint8_t *small = realloc(rep, FV_FS_OPEN_INLINE_FIXED + o->len);
	if (small)
		rep = small;
	o->data = rep + at;
	*buf = rep;
	return 0;
}

void fv_fsc_open_inline_req(uint8_t req[FV_FSC_OPEN_INLINE_REQ], uint64_t node, uint32_t flags,
			    uint32_t max_inline)
{
	fv_fs_req_put(req, FV_FS_OPEN_INLINE);
	fv_put_le64(req + 4, node);
	fv_put_le32(req + 12, flags);
	fv_put_le32(req + 16, max_inline);
}

int fv_fsc_open_inline_done(const struct fv_tp_call *call, const uint8_t *reply, uint32_t max_inline,
			    struct fv_fs_open_inline *o)
{
	int st = call_status(call, reply);
	if (st)
		return st;
	struct fv_rd r;
	reply_rd(&r, reply, call->reply_len);
	return fv_fs_open_inline_get(&r, max_inline, o);
}

bool fv_fsc_inline_ok(struct fv_fsc *c)
{
	return !atomic_load(&c->no_inline);
}

void fv_fsc_set_next(struct fv_fsc *c, uint64_t node, uint64_t next)
{
	pthread_mutex_lock(&c->mu);
	struct node *n = find(c, node);
	if (n)
		n->listed_next = next;
	pthread_mutex_unlock(&c->mu);
}

uint64_t fv_fsc_next(struct fv_fsc *c, uint64_t node)
{
	pthread_mutex_lock(&c->mu);
	struct node *n = find(c, node);
	uint64_t next = n ? n->listed_next : 0;
	pthread_mutex_unlock(&c->mu);
	return next;
}

static void release_done(struct fv_tp_call *call)
{
	free(call->ud);
}

void fv_fsc_release(struct fv_fsc *c, uint64_t handle)
{
	/* asynchronous: close(2) need not wait for the network */
	struct {
		struct fv_tp_call call;
		uint8_t req[12], rep[16];
	} *r = malloc(sizeof *r);
	if (!r)
		return;
	fv_fs_req_put(r->req, FV_FS_RELEASE);
	fv_put_le64(r->req + 4, handle);
	r->call = (struct fv_tp_call){.req = r->req,
				      .req_len = sizeof r->req,
				      .idempotent = true,
				      .reply = r->rep,
				      .reply_cap = sizeof r->rep,
				      .done = release_done,
				      .ud = r};
	if (fv_tp_submit(c->tp, &r->call) < 0)
		free(r);
}

void fv_fsc_read_req(uint8_t req[FV_FSC_READ_REQ], uint64_t handle, uint64_t off, uint32_t size)
{
	fv_fs_req_put(req, FV_FS_READ);
	fv_put_le64(req + 4, handle);
	fv_put_le64(req + 12, off);
	fv_put_le32(req + 20, size);
}

int fv_fsc_read_done(const struct fv_tp_call *call, const uint8_t *reply, uint32_t size, uint32_t *got)
{
	int st = call_status(call, reply);
	if (st)
		return st;
	if (call->reply_len != 8)
		return -EPROTO;
	uint32_t n = fv_get_le32(reply + 4);
	if (n > size || n != call->bulk_len)
		return -EPROTO;
	*got = n;
	return 0;
}

int fv_fsc_read(struct fv_fsc *c, uint64_t handle, uint64_t off, uint32_t size, struct fv_tp_buf *bulk,
		uint32_t *got)
{
	uint8_t req[FV_FSC_READ_REQ], rep[16];
	fv_fsc_read_req(req, handle, off, size);
	struct fv_tp_call call = {.req = req,
				  .req_len = sizeof req,
				  .idempotent = true,
				  .reply = rep,
				  .reply_cap = sizeof rep,
				  .bulk = bulk,
				  .bulk_cap = size};
	(void)fv_tp_call(c->tp, &call);
	return fv_fsc_read_done(&call, rep, size, got);
}

/* ---- directories --------------------------------------------------------- */

int fv_fsc_dirbatch_init(struct fv_fsc_dirbatch *b)
{
	memset(b, 0, sizeof *b);
	/* the reply, then room for the names with their terminators */
	b->raw = malloc(2 * (size_t)REPLY_MAX);
	b->ents = calloc(FV_FS_MAX_DIRENTS, sizeof *b->ents);
	if (!b->raw || !b->ents) {
		fv_fsc_dirbatch_free(b);
		return -ENOMEM;
	}
	return 0;
}

void fv_fsc_dirbatch_free(struct fv_fsc_dirbatch *b)
{
	free(b->raw);
	free(b->ents);
	memset(b, 0, sizeof *b);
}

static int readdir_raw(struct fv_fsc *c, uint64_t dir, uint64_t cookie, struct fv_fsc_dirbatch *b)
{
	uint8_t req[24];
	uint32_t rlen = 0;
	fv_fs_req_put(req, FV_FS_READDIRPLUS);
	fv_put_le64(req + 4, dir);
	fv_put_le64(req + 12, cookie);
	fv_put_le32(req + 20, FV_FS_MAX_DIRBYTES);
	b->n = 0;
	b->eof = false;
	int rc = rpc(c, req, sizeof req, b->raw, REPLY_MAX, &rlen, NULL, 0, NULL);
	if (rc)
		return rc;
	struct fv_rd r;
	reply_rd(&r, b->raw, rlen);
	uint8_t eof = fv_rd_u8(&r);
	uint32_t n = fv_rd_u32(&r);
	if (!fv_rd_ok(&r) || eof > 1 || n > FV_FS_MAX_DIRENTS)
		return -EPROTO;
	char *names = (char *)b->raw + REPLY_MAX;
	for (uint32_t i = 0; i < n; i++) {
		struct fv_fsc_dirent *e = &b->ents[i];
		fv_fs_attr_get(&r, &e->attr);
		e->next_cookie = fv_rd_u64(&r);
		uint32_t len = fv_rd_u32(&r);
		const uint8_t *p = fv_rd_get(&r, len);
		if (!p || !fv_fs_name_ok((const char *)p, len)) {
			/* the server counted lookups of the entries before */
			for (uint32_t k = 0; k < i; k++)
				fv_fsc_forget_server(c, b->ents[k].attr.node, 1);
			return -EPROTO;
		}
		memcpy(names, p, len);
		names[len] = 0;
		e->name = names;
		e->len = len;
		names += len + 1;
	}
	if (fv_rd_left(&r) != 0) {
		for (uint32_t k = 0; k < n; k++)
			fv_fsc_forget_server(c, b->ents[k].attr.node, 1);
		return -EPROTO;
	}
	b->n = n;
	b->eof = eof;
	return 0;
}

int fv_fsc_readdir(struct fv_fsc *c, uint64_t dir, uint64_t cookie, struct fv_fsc_dirbatch *b)
{
	int rc = readdir_raw(c, dir, cookie, b);
	if (stale_retry(c, dir, rc))
		rc = readdir_raw(c, dir, cookie, b);
	return rc;
}

/* ---- the rest ------------------------------------------------------------ */

static int readlink_raw(struct fv_fsc *c, uint64_t node, char *buf, size_t n)
{
	uint8_t req[12], rep[FV_FS_MAX_LINK + 16];
	uint32_t rlen = 0;
	fv_fs_req_put(req, FV_FS_READLINK);
	fv_put_le64(req + 4, node);
	int rc = rpc(c, req, sizeof req, rep, sizeof rep, &rlen, NULL, 0, NULL);
	if (rc)
		return rc;
	struct fv_rd r;
	reply_rd(&r, rep, rlen);
	uint32_t len = fv_rd_u32(&r);
	const uint8_t *p = fv_rd_get(&r, len);
	if (!p || fv_rd_left(&r) || len > FV_FS_MAX_LINK || memchr(p, 0, len))
		return -EPROTO;
	if (len + 1 > n)
		return -ENAMETOOLONG;
	memcpy(buf, p, len);
	buf[len] = 0;
	return 0;
}

int fv_fsc_readlink(struct fv_fsc *c, uint64_t node, char *buf, size_t n)
{
	int rc = readlink_raw(c, node, buf, n);
	if (stale_retry(c, node, rc))
		rc = readlink_raw(c, node, buf, n);
	return rc;
}

static int statfs_raw(struct fv_fsc *c, uint64_t node, struct fv_fsc_statfs *s)
{
	uint8_t req[12], rep[REPLY_SMALL];
	uint32_t rlen = 0;
	fv_fs_req_put(req, FV_FS_STATFS);
	fv_put_le64(req + 4, node);
	int rc = rpc(c, req, sizeof req, rep, sizeof rep, &rlen, NULL, 0, NULL);
	if (rc)
		return rc;
	struct fv_rd r;
	reply_rd(&r, rep, rlen);
	s->blocks = fv_rd_u64(&r);
	s->bfree = fv_rd_u64(&r);
	s->bavail = fv_rd_u64(&r);
	s->files = fv_rd_u64(&r);
	s->ffree = fv_rd_u64(&r);
	s->bsize = fv_rd_u32(&r);
	s->namemax = fv_rd_u32(&r);
	s->frsize = fv_rd_u32(&r);
	return fv_rd_ok(&r) && fv_rd_left(&r) == 0 ? 0 : -EPROTO;
}

int fv_fsc_statfs(struct fv_fsc *c, uint64_t node, struct fv_fsc_statfs *s)
{
	int rc = statfs_raw(c, node, s);
	if (stale_retry(c, node, rc))
		rc = statfs_raw(c, node, s);
	return rc;
}

static int xattr_raw(struct fv_fsc *c, uint64_t node, const char *name, uint32_t size, void *buf,
		     uint32_t *len, uint8_t *rep)
{
	struct fv_buf req = {0};
	uint32_t rlen = 0;
	fv_fs_req_begin(&req, name ? FV_FS_GETXATTR : FV_FS_LISTXATTR);
	fv_buf_u64(&req, node);
	if (name)
		fv_buf_str(&req, name, strlen(name));
	fv_buf_u32(&req, size);
	int rc = rpc_buf(c, &req, rep, REPLY_MAX, &rlen);
	fv_buf_free(&req);
	if (rc)
		return rc;
	struct fv_rd r;
	reply_rd(&r, rep, rlen);
	uint32_t n = fv_rd_u32(&r);
	if (!fv_rd_ok(&r))
		return -EPROTO;
	if (size == 0) {
		if (fv_rd_left(&r))
			return -EPROTO;
		*len = n;
		return 0;
	}
	const uint8_t *p = fv_rd_get(&r, n);
	if (!p || fv_rd_left(&r) || n > size)
		return -EPROTO;
	memcpy(buf, p, n);
	*len = n;
	return 0;
}

int fv_fsc_xattr(struct fv_fsc *c, uint64_t node, const char *name, uint32_t size, void *buf, uint32_t *len)
{
	if (size > REPLY_MAX - 8)
		size = REPLY_MAX - 8; /* what one reply can carry */
	uint8_t *rep = malloc(REPLY_MAX);
	if (!rep)
		return -ENOMEM;
	int rc = xattr_raw(c, node, name, size, buf, len, rep);
	if (stale_retry(c, node, rc))
		rc = xattr_raw(c, node, name, size, buf, len, rep);
	free(rep);
	return rc;
}
