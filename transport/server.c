/* server: the transport server (tp.h; docs/transport.md).
 *
 * Threads and ownership:
 * - one listener thread per listen address accepts links and starts a
 *   connection thread for each;
 * - a connection thread owns its link: handshake, then it receives frames,
 *   answers PINGs itself and queues REQUESTs for the workers; a malformed
 *   frame, a credit overrun or idle_ms of silence close that link only;
 * - worker threads pop requests and call the handler; fv_tp_reply sends on
 *   the request's link from whatever thread calls it.
 * A connection is freed when its thread has ended and its last request is
 * answered (refcount under s->mu). The work queue is bounded by the credits
 * of the links (a client may not have more requests outstanding).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <sodium.h>

#include "session.h"
#include "tp.h"

struct conn;

struct fv_tp_req {
	struct conn *cn;
	struct fv_tp_req *next;
	uint64_t id;
	uint32_t len, bulk_cap;
	uint64_t bulk_addr;
	uint32_t bulk_rkey;
	struct fv_tp_buf *bulk;
	uint8_t data[]; /* FV_FRAME_MAX_CTL */
};

struct conn {
	struct fv_tp_server *s;
	struct fv_tp_sess *sess;
	struct fv_tp_link *link;
	pthread_t thr;
	struct conn *next;           /* s->conns */
	int refs;                    /* thread + outstanding requests; under s->mu */
	int outstanding;             /* under s->mu */
	bool dead;                   /* under s->mu */
	bool up;                     /* past the handshake, counted in links_up; under s->mu */
	struct fv_tp_req *free_reqs; /* under s->mu */
};

struct listener {
	struct fv_tp_server *s;
	const struct fv_tp_ops *ops;
	struct fv_tp_listener *l;
	struct fv_tp_path addr;
	pthread_t thr;
};

struct fv_tp_server {
	struct fv_tp_server_opts o;
	struct fv_tp_pool pool;
	struct listener *ls;
	size_t nls;
	pthread_t *workers;
	int nworkers;
	pthread_mutex_t mu;
	pthread_cond_t work_cv, conn_cv;
	struct fv_tp_req *qhead, *qtail;
	struct conn *conns;
	int conn_threads; /* connection threads running */
	size_t links_up;  /* of those, past the handshake */
	bool drain;       /* no more requests will be queued: workers end when the queue is empty */
	_Atomic bool closing;
};

static void conn_unref(struct conn *cn) /* s->mu held */
{
	if (--cn->refs > 0)
		return;
	struct fv_tp_server *s = cn->s;
	for (struct conn **pp = &s->conns; *pp; pp = &(*pp)->next) {
		if (*pp == cn) {
			*pp = cn->next;
			break;
		}
	}
	while (cn->free_reqs) {
		struct fv_tp_req *n = cn->free_reqs->next;
		free(cn->free_reqs);
		cn->free_reqs = n;
	}
	fv_tp_sess_free(cn->sess);
	free(cn);
	pthread_cond_broadcast(&s->conn_cv);
}

const void *fv_tp_req_data(const struct fv_tp_req *r, uint32_t *len)
{
	*len = r->len;
	return r->data;
}

uint32_t fv_tp_req_bulk_cap(const struct fv_tp_req *r)
{
	return r->bulk_cap;
}

const char *fv_tp_req_peer(const struct fv_tp_req *r)
{
	return r->cn->sess->peer_key_name;
}

uint32_t fv_tp_req_peer_index(const struct fv_tp_req *r)
{
	return r->cn->sess->peer_index;
}

void *fv_tp_req_bulk(struct fv_tp_req *r, size_t n)
{
	if (n > r->bulk_cap)
		return NULL;
	if (r->bulk && r->bulk->size < n) {
		fv_tp_pool_put(&r->cn->s->pool, r->bulk);
		r->bulk = NULL;
	}
	if (!r->bulk) {
		int err;
		r->bulk = fv_tp_pool_get(&r->cn->s->pool, n, &err);
	}
	return r->bulk ? r->bulk->p : NULL;
}

/* The end of a request: its bulk buffer back to the pool, the request back
 * to its connection, the connection's reference dropped. Runs when the reply
 * is sent, or for a bulk reply when the backend is done with the buffer
 * (RDMA: the WRITE completed), possibly on a backend thread. */
static void req_done(void *ud, int status)
{
	struct fv_tp_req *r = ud;
	struct conn *cn = r->cn;
	struct fv_tp_server *s = cn->s;
	(void)status;
	fv_tp_pool_put(&s->pool, r->bulk);
	r->bulk = NULL;
	pthread_mutex_lock(&s->mu);
	r->next = cn->free_reqs;
	cn->free_reqs = r;
	conn_unref(cn);
	pthread_mutex_unlock(&s->mu);
}

int fv_tp_reply(struct fv_tp_req *r, const void *ctl, uint32_t len, uint32_t bulk_len)
{
	if (len > FV_FRAME_MAX_CTL || bulk_len > r->bulk_cap ||
	    (bulk_len && (!r->bulk || r->bulk->size < bulk_len)))
		return -EMSGSIZE;
	struct conn *cn = r->cn;
	struct fv_tp_server *s = cn->s;
	pthread_mutex_lock(&s->mu);
	bool dead = cn->dead;
	/* the credit is free before the client can see the reply and use it */
	cn->outstanding--;
	pthread_mutex_unlock(&s->mu);
	if (dead) {
		req_done(r, -ECONNRESET);
		return 0;
	}
	struct fv_frame_hdr h = {.type = FV_FT_REPLY, .id = r->id};
	if (bulk_len) {
		h.bulk_addr = r->bulk_addr;
		h.bulk_rkey = r->bulk_rkey;
	}
	/* With a bulk, req_done runs when the backend is done with the buffer,
	 * maybe inside the send: our own reference keeps the connection (and
	 * the lock the send holds) alive until the send has returned. */
	pthread_mutex_lock(&s->mu);
	cn->refs++;
	pthread_mutex_unlock(&s->mu);
	int rc = fv_tp_sess_send(cn->sess, &h, ctl, len, bulk_len ? r->bulk : NULL, bulk_len,
				 bulk_len ? req_done : NULL, r);
	if (rc < 0)
		cn->link->ops->shutdown(cn->link);
	if (!bulk_len)
		req_done(r, rc);
	pthread_mutex_lock(&s->mu);
	conn_unref(cn);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void fv_tp_reply_close(struct fv_tp_req *r, const void *ctl, uint32_t len, const char *why)
{
	struct conn *cn = r->cn;
	struct fv_tp_server *s = cn->s;
	pthread_mutex_lock(&s->mu);
	cn->refs++; /* cn and its session outlive r */
	pthread_mutex_unlock(&s->mu);
	if (fv_tp_reply(r, ctl, len, 0) < 0)
		fv_tp_reply(r, NULL, 0, 0);
	fv_tp_log(&s->o.log, LOG_WARNING, "%s: closing the connection of peer '%s': %s", cn->sess->peer,
		  cn->sess->peer_key_name, why);
	fv_tp_sess_close_msg(cn->sess, -EPROTO, why);
	cn->link->ops->shutdown(cn->link); /* the connection thread does the rest */
	pthread_mutex_lock(&s->mu);
	conn_unref(cn);
	pthread_mutex_unlock(&s->mu);
}

static void *worker_main(void *arg)
{
	struct fv_tp_server *s = arg;
	for (;;) {
		pthread_mutex_lock(&s->mu);
		while (!s->qhead && !s->drain)
			pthread_cond_wait(&s->work_cv, &s->mu);
		struct fv_tp_req *r = s->qhead;
		if (!r) { /* closing and nothing left */
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
		s->qhead = r->next;
		if (!s->qhead)
			s->qtail = NULL;
		pthread_mutex_unlock(&s->mu);
		s->o.handler(s->o.ud, r);
	}
}

/* Queue a request for the workers. Returns -EPROTO on a credit overrun. */
static int queue_req(struct conn *cn, const struct fv_frame_hdr *h, const uint8_t *ctl)
{
	struct fv_tp_server *s = cn->s;
	pthread_mutex_lock(&s->mu);
	if ((uint32_t)cn->outstanding >= cn->sess->credits) {
		pthread_mutex_unlock(&s->mu);
		return -EPROTO;
	}
	struct fv_tp_req *r = cn->free_reqs;
	if (r)
		cn->free_reqs = r->next;
	cn->outstanding++;
	cn->refs++;
	pthread_mutex_unlock(&s->mu);
	if (!r && !(r = malloc(sizeof *r + FV_FRAME_MAX_CTL))) {
		pthread_mutex_lock(&s->mu);
		cn->outstanding--;
		conn_unref(cn); /* not the last reference: this thread holds one */
		pthread_mutex_unlock(&s->mu);
		return -ENOMEM;
	}
	r->cn = cn;
	r->next = NULL;
	r->id = h->id;
	r->len = h->ctl_len;
	r->bulk_cap = h->bulk_len;
	r->bulk_addr = h->bulk_addr;
	r->bulk_rkey = h->bulk_rkey;
	r->bulk = NULL;
	memcpy(r->data, ctl, h->ctl_len);
	if (s->o.inline_handler) { /* no hand-off: see fv_tp_server_opts */
		s->o.handler(s->o.ud, r);
		return 0;
	}
	pthread_mutex_lock(&s->mu);
	if (s->qtail)
		s->qtail->next = r;
	else
		s->qhead = r;
	s->qtail = r;
	pthread_mutex_unlock(&s->mu);
	pthread_cond_signal(&s->work_cv); /* after the unlock: the worker need not wait for it */
	return 0;
}

static void *conn_main(void *arg)
{
	struct conn *cn = arg;
	struct fv_tp_server *s = cn->s;
	struct fv_tp_sess *ss = cn->sess;
	struct fv_err e = {0};
	const char *why = NULL;
	int rc = fv_tp_sess_server(ss, s->o.key, s->o.peers, s->o.require_encrypt, s->o.credits, 5000, &e);
	if (rc < 0) {
		fv_tp_log(&s->o.log, rc == -EACCES ? LOG_WARNING : LOG_NOTICE, "%s", e.msg);
		goto out;
	}
	fv_tp_log(&s->o.log, LOG_INFO, "%s: peer '%s' connected (%s)", ss->peer, ss->peer_key_name,
		  ss->rx.mode == FV_MODE_ENCRYPT ? "encrypted" : "integrity only");
	pthread_mutex_lock(&s->mu);
	s->links_up++;
	cn->up = true;
	pthread_mutex_unlock(&s->mu);
	int64_t last = fv_tp_now_ns();
	while (!s->closing) {
		struct fv_tp_rx rx;
		struct fv_frame_hdr h;
		uint8_t *ctl;
		rc = fv_tp_sess_recv(ss, &rx, &h, &ctl, 200, NULL, NULL, &why);
		if (rc == -EAGAIN) {
			if (fv_tp_now_ns() - last > (int64_t)s->o.idle_ms * 1000000) {
				why = "idle for too long";
				break;
			}
			continue;
		}
		if (rc == -ECONNRESET) {
			why = NULL;
			break;
		}
		if (rc < 0)
			break;
		last = fv_tp_now_ns();
		if (h.type == FV_FT_REQUEST) {
			rc = queue_req(cn, &h, ctl);
			if (rc < 0)
				why = rc == -EPROTO ? "more requests in flight than its credits"
						    : "out of memory";
		} else if (h.type == FV_FT_PING) {
			struct fv_frame_hdr ph = {.type = FV_FT_PONG};
			rc = fv_tp_sess_send(ss, &ph, NULL, 0, NULL, 0, NULL, NULL);
		} else if (h.type == FV_FT_CLOSE) {
			why = NULL;
			rc = -ECONNRESET;
		} else {
			why = "unexpected frame type";
			rc = -EBADMSG;
		}
		fv_tp_sess_release(ss, &rx);
		if (rc < 0)
			break;
	}
	if (why) {
		fv_tp_log(&s->o.log, LOG_WARNING, "%s: closing the connection of peer '%s': %s", ss->peer,
			  ss->peer_key_name, why);
		fv_tp_sess_close_msg(ss, -EPROTO, why);
	} else if (!s->closing) {
		fv_tp_log(&s->o.log, LOG_INFO, "%s: peer '%s' disconnected", ss->peer, ss->peer_key_name);
	}
out:
	cn->link->ops->shutdown(cn->link);
	/* every bulk reply the backend still holds is given back before the
	 * connection can go */
	if (cn->link->ops->drain)
		cn->link->ops->drain(cn->link);
	pthread_mutex_lock(&s->mu);
	cn->dead = true;
	if (cn->up)
		s->links_up--;
	conn_unref(cn);
	s->conn_threads--;
	pthread_cond_broadcast(&s->conn_cv);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void *listen_main(void *arg)
{
	struct listener *ls = arg;
	struct fv_tp_server *s = ls->s;
	for (;;) {
		struct fv_tp_link *l = NULL;
		struct fv_err e = {0};
		int rc = ls->ops->accept(ls->l, &l, &e);
		if (rc == -ECANCELED || s->closing) {
			if (l)
				ls->ops->free(l);
			return NULL;
		}
		if (rc < 0) {
			fv_tp_log(&s->o.log, LOG_WARNING, "accept: %s", e.msg);
			usleep(10000);
			continue;
		}
		struct conn *cn = calloc(1, sizeof *cn);
		if (!cn || fv_tp_sess_new(l, ls->ops->name, &s->o.log, &cn->sess) < 0) {
			fv_tp_log(&s->o.log, LOG_ERR, "out of memory for a new connection");
			free(cn);
			ls->ops->free(l);
			continue;
		}
		cn->s = s;
		cn->link = l;
		cn->refs = 1;
		pthread_mutex_lock(&s->mu);
		cn->next = s->conns;
		s->conns = cn;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&cn->thr, &at, conn_main, cn) != 0) {
			fv_tp_log(&s->o.log, LOG_ERR, "cannot start a connection thread");
			cn->dead = true;
			conn_unref(cn);
		} else {
			s->conn_threads++;
		}
		pthread_attr_destroy(&at);
		pthread_mutex_unlock(&s->mu);
	}
}

static void stop_all(struct fv_tp_server *s, size_t nls_started, int nworkers)
{
	s->closing = true;
	for (size_t i = 0; i < nls_started; i++)
		s->ls[i].ops->listener_stop(s->ls[i].l);
	for (size_t i = 0; i < nls_started; i++)
		pthread_join(s->ls[i].thr, NULL);
	pthread_mutex_lock(&s->mu);
	for (struct conn *cn = s->conns; cn; cn = cn->next)
		cn->link->ops->shutdown(cn->link);
	while (s->conn_threads)
		pthread_cond_wait(&s->conn_cv, &s->mu);
	s->drain = true;
	pthread_cond_broadcast(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
	/* no request is queued any more: workers drain the queue (handlers
	 * answer; replies to dead links are dropped) and end */
	for (int i = 0; i < nworkers; i++)
		pthread_join(s->workers[i], NULL);
	pthread_mutex_lock(&s->mu);
	while (s->conns)
		pthread_cond_wait(&s->conn_cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < s->nls; i++)
		if (s->ls[i].l)
			s->ls[i].ops->listener_free(s->ls[i].l);
	fv_tp_pool_destroy(&s->pool);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->work_cv);
	pthread_cond_destroy(&s->conn_cv);
	free(s->workers);
	free(s->ls);
	free(s);
}

int fv_tp_server_open(const struct fv_tp_server_opts *o, struct fv_tp_server **out, struct fv_err *e)
{
	if (!o->nlisten || !o->handler)
		return fv_err_set(e, -EINVAL, "a server needs a listen address and a handler");
	if (sodium_init() < 0) /* its fast code paths and CPU features: see client.c */
		return fv_err_set(e, -EIO, "cannot initialise libsodium");
	struct fv_tp_server *s = calloc(1, sizeof *s);
	if (!s)
		return fv_err_set(e, -ENOMEM, "out of memory");
	s->o = *o;
	if (s->o.threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		s->o.threads = n > 0 ? (int)n : 2;
	}
	if (!s->o.credits || s->o.credits > 255)
		s->o.credits = 64;
	if (!s->o.pool_bytes)
		s->o.pool_bytes = 256u << 20;
	if (!s->o.idle_ms)
		s->o.idle_ms = 30000;
	fv_tp_pool_init(&s->pool, s->o.pool_bytes);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->work_cv, NULL);
	pthread_cond_init(&s->conn_cv, NULL);
	s->ls = calloc(o->nlisten, sizeof *s->ls);
	s->workers = calloc((size_t)s->o.threads, sizeof *s->workers);
	s->nls = o->nlisten;
	int rc = 0, nw = 0;
	size_t nl = 0;
	if (!s->ls || !s->workers) {
		rc = fv_err_set(e, -ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < o->nlisten; i++) {
		struct listener *ls = &s->ls[i];
		ls->s = s;
		ls->addr = o->listen[i];
		ls->ops = fv_tp_ops_for(ls->addr.kind);
		struct fv_tp_link_cfg cfg = {.credits = s->o.credits,
					     .timeout_ms = 5000,
					     .pool = &s->pool,
					     .poll_us = s->o.poll_us};
		if ((rc = ls->ops->listen(&ls->addr, &cfg, &ls->l, e)) < 0)
			goto fail;
	}
	for (; nw < s->o.threads; nw++) {
		if (pthread_create(&s->workers[nw], NULL, worker_main, s) != 0) {
			rc = fv_err_set(e, -EAGAIN, "cannot start worker threads");
			goto fail;
		}
	}
	for (; nl < s->nls; nl++) {
		if (pthread_create(&s->ls[nl].thr, NULL, listen_main, &s->ls[nl]) != 0) {
			rc = fv_err_set(e, -EAGAIN, "cannot start listener threads");
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	if (!s->ls || !s->workers) {
		free(s->ls);
		free(s->workers);
		fv_tp_pool_destroy(&s->pool);
		free(s);
		return rc;
	}
	stop_all(s, nl, nw);
	return rc;
}

size_t fv_tp_server_links(struct fv_tp_server *s)
{
	pthread_mutex_lock(&s->mu);
	size_t n = s->links_up;
	pthread_mutex_unlock(&s->mu);
	return n;
}

int fv_tp_server_port(struct fv_tp_server *s, size_t i)
{
	return i < s->nls ? s->ls[i].ops->listener_port(s->ls[i].l) : -1;
}

void fv_tp_server_close(struct fv_tp_server *s)
{
	if (s)
		stop_all(s, s->nls, s->o.threads);
}
