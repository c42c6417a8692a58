/* client: the multipath client (tp.h; docs/transport.md, "Model" and
 * "Liveness and failover").
 *
 * Threads and ownership:
 * - one path thread per path owns its link: it connects, runs the
 *   handshake, receives and completes replies, and when the link dies it
 *   takes back the calls that were outstanding on it (re-queues the
 *   idempotent ones, fails the others) before it reconnects;
 * - the path thread also sends a PING when its link has been quiet for
 *   PING_MS; the timer thread declares silent links dead (shutdown only,
 *   which never blocks: the path thread does the rest) and fails queued
 *   calls whose timeout ran out while no path was up;
 * - submitters send on a path themselves when one has a free credit, else
 *   queue the call; whoever frees a credit sends the next queued call.
 * c->mu guards the queue, the paths' state and their slot tables; frames are
 * sent outside it (under the session's send lock). A path's `sending` counts
 * sends in progress, so that the path thread never hands a call to another
 * path while a sender still reads it.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <sodium.h>

#include "session.h"
#include "tp.h"

#define PING_MS 100
#define RECONNECT_MS 500
#define TICK_MS 20
#define CLIENT_CREDITS 64

struct path {
	struct fv_tp_client *c;
	int idx;
	struct fv_tp_path addr;
	char name[96];
	pthread_t thr;
	/* under c->mu */
	struct fv_tp_sess *sess; /* set while up */
	bool up;
	uint32_t credits;
	struct fv_tp_call **slots; /* [CLIENT_CREDITS] outstanding calls */
	int outstanding;
	uint64_t out_bytes;
	int sending;
	struct fv_tp_path_stats st;
	/* path thread and timer */
	_Atomic int64_t last_rx_ns;
	int64_t last_ping_ns;   /* timer thread */
	uint64_t last_rx_bytes; /* timer thread: the link's rx_bytes at the last tick */
};

struct fv_tp_client {
	struct fv_tp_client_opts o;
	struct path *paths;
	size_t npaths;
	struct fv_tp_pool pool;
	pthread_mutex_t mu;
	pthread_cond_t cv;                /* path state changes, sending drops to 0, closing */
	struct fv_tp_call *qhead, *qtail; /* calls waiting for a path */
	_Atomic bool closing;
	int64_t spin_ns;         /* fv_tp_client_opts.spin_us; 0: never */
	_Atomic int64_t sync_ns; /* moving average of fv_tp_call's latency */
	uint64_t seq;
	pthread_t timer;
	int first_err;
	struct fv_err first_e;
};

/* A synchronous caller: state goes WAITING -> DONE (seen while spinning: no
 * lock, no wake-up) or WAITING -> SLEEPING -> DONE (signalled under mu). */
enum { W_WAITING, W_SLEEPING, W_DONE };
struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	_Atomic int state;
};

static void sleep_ms(struct fv_tp_client *c, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)ms * 1000000;
	ts.tv_sec += ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_mutex_lock(&c->mu);
	if (!c->closing)
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	pthread_mutex_unlock(&c->mu);
}

/* Completion: runs outside c->mu. */
static void finish(struct fv_tp_call *call, int status)
{
	call->status = status;
	call->done(call);
}

static void enqueue_front(struct fv_tp_client *c, struct fv_tp_call *call)
{
	call->next = c->qhead;
	c->qhead = call;
	if (!c->qtail)
		c->qtail = call;
}

static void enqueue_back(struct fv_tp_client *c, struct fv_tp_call *call)
{
	call->next = NULL;
	if (c->qtail)
		c->qtail->next = call;
	else
		c->qhead = call;
	c->qtail = call;
}

/* The live path with a free credit and the least outstanding bytes. */
static struct path *pick(struct fv_tp_client *c)
{
	struct path *best = NULL;
	for (size_t i = 0; i < c->npaths; i++) {
		struct path *p = &c->paths[i];
		if (p->up && (uint32_t)p->outstanding < p->credits &&
		    (!best || p->out_bytes < best->out_bytes ||
		     (p->out_bytes == best->out_bytes && p->outstanding < best->outstanding)))
			best = p;
	}
	return best;
}

/* Put call in a free slot of p. Under c->mu. */
static void assign(struct fv_tp_client *c, struct path *p, struct fv_tp_call *call)
{
	uint32_t s = 0;
	while (p->slots[s])
		s++;
	p->slots[s] = call;
	call->id = (++c->seq << 16) | ((uint64_t)p->idx << 8) | s;
	p->outstanding++;
	p->out_bytes += call->req_len + call->bulk_cap;
	p->sending++;
	p->st.requests++;
}

static void send_call(struct fv_tp_client *c, struct path *p, struct fv_tp_call *call)
{
	struct fv_frame_hdr h = {.type = FV_FT_REQUEST,
				 .flags = call->idempotent ? FV_FF_IDEMPOTENT : 0,
				 .id = call->id,
				 .bulk_len = call->bulk ? call->bulk_cap : 0};
	struct fv_tp_link *l = p->sess->link;
	if (h.bulk_len && l->ops->bulk_key)
		l->ops->bulk_key(l, call->bulk, 0, &h.bulk_addr, &h.bulk_rkey);
	int rc = fv_tp_sess_send(p->sess, &h, call->req, call->req_len, NULL, 0, NULL, NULL);
	if (rc < 0)
		l->ops->shutdown(l); /* the path thread takes the call back */
	pthread_mutex_lock(&c->mu);
	if (--p->sending == 0)
		pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* Send queued calls while some path has a free credit. */
static void kick(struct fv_tp_client *c)
{
	for (;;) {
		pthread_mutex_lock(&c->mu);
		struct path *p = c->qhead ? pick(c) : NULL;
		struct fv_tp_call *call = NULL;
		if (p) {
			call = c->qhead;
			c->qhead = call->next;
			if (!c->qhead)
				c->qtail = NULL;
			assign(c, p, call);
		}
		pthread_mutex_unlock(&c->mu);
		if (!call)
			return;
		send_call(c, p, call);
	}
}

int fv_tp_submit(struct fv_tp_client *c, struct fv_tp_call *call)
{
	if (call->req_len > FV_FRAME_MAX_CTL || (call->req_len && !call->req) || !call->done ||
	    (call->bulk && (call->bulk_cap > call->bulk->size || call->bulk_cap > FV_FRAME_MAX_BULK)) ||
	    (!call->bulk && call->bulk_cap))
		return -EINVAL;
	call->status = 0;
	call->reply_len = call->bulk_len = 0;
	call->path = -1;
	call->deadline_ns = fv_tp_now_ns() + (int64_t)c->o.timeout_ms * 1000000;
	pthread_mutex_lock(&c->mu);
	if (c->closing) {
		pthread_mutex_unlock(&c->mu);
		finish(call, -ECANCELED);
		return 0;
	}
	struct path *p = c->qhead ? NULL : pick(c);
	if (p)
		assign(c, p, call);
	else
		enqueue_back(c, call);
	pthread_mutex_unlock(&c->mu);
	if (p)
		send_call(c, p, call);
	return 0;
}

static void wake(struct fv_tp_call *call)
{
	struct waiter *w = call->waiter;
	if (atomic_exchange(&w->state, W_DONE) != W_SLEEPING)
		return; /* the caller is spinning and sees it, or has not looked yet */
	pthread_mutex_lock(&w->mu);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Busy-wait up to limit_ns for w to be done. The CPU is given up now and
 * then (sched_yield returns at once when nothing else wants it), so that on a
 * busy machine the thread that completes the call is not kept waiting. */
static bool spin(struct waiter *w, int64_t start, int64_t limit_ns)
{
	for (unsigned i = 1;; i++) {
		if (atomic_load_explicit(&w->state, memory_order_acquire) == W_DONE)
			return true;
		fv_tp_cpu_relax();
		if (!(i & 63)) {
			if (fv_tp_now_ns() - start >= limit_ns)
				return false;
			sched_yield();
		}
	}
}

int fv_tp_call(struct fv_tp_client *c, struct fv_tp_call *call)
{
	struct waiter w = {.state = W_WAITING};
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	call->done = wake;
	call->waiter = &w;
	int64_t start = fv_tp_now_ns();
	int rc = fv_tp_submit(c, call);
	if (rc == 0) {
		/* spin only while calls have been quick: a call that outlasts
		 * the spin would waste it */
		int64_t avg = atomic_load_explicit(&c->sync_ns, memory_order_relaxed);
		if (!(c->spin_ns && avg < c->spin_ns && spin(&w, start, c->spin_ns))) {
			pthread_mutex_lock(&w.mu);
			int expect = W_WAITING;
			if (atomic_compare_exchange_strong(&w.state, &expect, W_SLEEPING))
				while (atomic_load(&w.state) != W_DONE)
					pthread_cond_wait(&w.cv, &w.mu);
			pthread_mutex_unlock(&w.mu);
		}
		/* average over ~8 calls; a long call ends spinning until quick
		 * calls bring the average down again */
		int64_t took = fv_tp_now_ns() - start;
		atomic_store_explicit(&c->sync_ns, avg + (took - avg) / 8, memory_order_relaxed);
		rc = call->status;
	}
	pthread_mutex_destroy(&w.mu);
	pthread_cond_destroy(&w.cv);
	return rc;
}

/* The outstanding call a reply header names on path p, or NULL. */
static struct fv_tp_call *lookup(struct path *p, uint64_t id)
{
	uint32_t s = id & 0xff;
	if (((id >> 8) & 0xff) != (uint64_t)p->idx || s >= CLIENT_CREDITS)
		return NULL;
	struct fv_tp_call *call = p->slots[s];
	return call && call->id == id ? call : NULL;
}

/* Where a reply's bulk goes (the path thread, during recv). The slot cannot
 * change under us: only this thread frees slots of a live path. */
static void *bulk_dst(void *ud, const struct fv_frame_hdr *h)
{
	struct path *p = ud;
	pthread_mutex_lock(&p->c->mu);
	struct fv_tp_call *call = lookup(p, h->id);
	pthread_mutex_unlock(&p->c->mu);
	if (!call || !call->bulk || h->bulk_len > call->bulk_cap)
		return NULL;
	return call->bulk->p;
}

/* Take the call of a reply out of p's slots. */
static struct fv_tp_call *take(struct fv_tp_client *c, struct path *p, uint64_t id, uint32_t nbytes)
{
	pthread_mutex_lock(&c->mu);
	struct fv_tp_call *call = lookup(p, id);
	if (call) {
		p->slots[id & 0xff] = NULL;
		p->outstanding--;
		p->out_bytes -= call->req_len + call->bulk_cap;
		p->st.bytes += nbytes;
	}
	pthread_mutex_unlock(&c->mu);
	return call;
}

/* Receive until the link fails. Returns the reason for the log. */
static const char *serve_link(struct fv_tp_client *c, struct path *p, struct fv_tp_sess *s, int *code)
{
	for (;;) {
		struct fv_tp_rx rx;
		struct fv_frame_hdr h;
		uint8_t *ctl;
		const char *why;
		int rc = fv_tp_sess_recv(s, &rx, &h, &ctl, PING_MS, bulk_dst, p, &why);
		if (rc == -EAGAIN) {
			/* quiet: ask for a sign of life. Sent from this thread, not
			 * the timer's: a send may block on a dead link until the
			 * timer shuts it down. */
			struct fv_frame_hdr ph = {.type = FV_FT_PING};
			if (fv_tp_now_ns() - atomic_load(&p->last_rx_ns) >= PING_MS * 1000000LL &&
			    fv_tp_sess_send(s, &ph, NULL, 0, NULL, 0, NULL, NULL) < 0) {
				*code = -ECONNRESET;
				return "cannot send";
			}
			continue;
		}
		*code = rc;
		if (rc == -ECONNRESET)
			return "connection lost";
		if (rc < 0)
			return why ? why : "receive failed";
		atomic_store(&p->last_rx_ns, fv_tp_now_ns());
		if (h.type == FV_FT_PONG) {
			fv_tp_sess_release(s, &rx);
			continue;
		}
		if (h.type == FV_FT_CLOSE) {
			fv_tp_sess_release(s, &rx);
			*code = -ECONNRESET;
			return "the server closed the connection";
		}
		if (h.type != FV_FT_REPLY) {
			fv_tp_sess_release(s, &rx);
			*code = -EBADMSG;
			return "unexpected frame type";
		}
		struct fv_tp_call *call = take(c, p, h.id, h.ctl_len + h.bulk_len);
		if (!call) {
			fv_tp_sess_release(s, &rx);
			*code = -EBADMSG;
			return "reply to no request in flight";
		}
		int st = 0;
		if (h.ctl_len > call->reply_cap)
			st = -EMSGSIZE;
		else if (h.ctl_len)
			memcpy(call->reply, ctl, h.ctl_len);
		call->reply_len = h.ctl_len;
		call->bulk_len = h.bulk_len;
		call->path = p->idx;
		fv_tp_sess_release(s, &rx);
		finish(call, st);
		kick(c);
	}
}

/* After the link died: take back every call that was outstanding on p. */
static void fail_over(struct fv_tp_client *c, struct path *p)
{
	struct fv_tp_call *failed = NULL;
	pthread_mutex_lock(&c->mu);
	p->up = false;
	while (p->sending)
		pthread_cond_wait(&c->cv, &c->mu);
	for (int s = 0; s < CLIENT_CREDITS; s++) {
		struct fv_tp_call *call = p->slots[s];
		if (!call)
			continue;
		p->slots[s] = NULL;
		if (call->idempotent && !c->closing) {
			enqueue_front(c, call);
		} else {
			call->next = failed;
			failed = call;
		}
	}
	p->outstanding = 0;
	p->out_bytes = 0;
	p->sess = NULL;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	while (failed) {
		struct fv_tp_call *n = failed->next;
		finish(failed, c->closing ? -ECANCELED : -ECONNRESET);
		failed = n;
	}
	kick(c);
}

static void set_error(struct path *p, const struct fv_err *e)
{
	struct fv_tp_client *c = p->c;
	pthread_mutex_lock(&c->mu);
	snprintf(p->st.last_error, sizeof p->st.last_error, "%.255s", e->msg);
	if (!c->first_err) {
		c->first_err = e->code;
		c->first_e = *e;
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void *path_main(void *arg)
{
	struct path *p = arg;
	struct fv_tp_client *c = p->c;
	const struct fv_tp_ops *ops = fv_tp_ops_for(p->addr.kind);
	struct fv_tp_link_cfg cfg = {.credits = CLIENT_CREDITS,
				     .timeout_ms = c->o.connect_timeout_ms,
				     .pool = &c->pool,
				     .poll_us = c->o.poll_us};
	bool logged = false;
	while (!c->closing) {
		struct fv_err e = {0};
		struct fv_tp_link *l = NULL;
		struct fv_tp_sess *s = NULL;
		int rc = ops->connect(&p->addr, &cfg, &l, &e);
		if (rc == 0 && (rc = fv_tp_sess_new(l, ops->name, &c->o.log, &s)) < 0) {
			ops->free(l);
			l = NULL;
			fv_err_set(&e, rc, "%s: out of memory", p->name);
		}
		if (rc == 0 && !s) {
			rc = -ENOMEM;
			fv_err_set(&e, rc, "%s: no session", p->name);
		}
		if (rc == 0) {
			int mode = c->o.mode ? c->o.mode
					     : (p->addr.kind == FV_TP_RDMA ? FV_MODE_INTEGRITY
									   : FV_MODE_ENCRYPT);
			rc = fv_tp_sess_client(s, c->o.key, c->o.peers, mode, CLIENT_CREDITS,
					       c->o.connect_timeout_ms, &e);
		}
		if (rc != 0) {
			if (!logged) /* once per outage, not every 500 ms */
				fv_tp_log(&c->o.log, rc == -EACCES ? LOG_ERR : LOG_WARNING, "%s", e.msg);
			logged = true;
			set_error(p, &e);
			if (s)
				fv_tp_sess_free(s); /* and its link */
			else if (l)
				ops->free(l);
			sleep_ms(c, RECONNECT_MS);
			continue;
		}
		logged = false;
		atomic_store(&p->last_rx_ns, fv_tp_now_ns());
		pthread_mutex_lock(&c->mu);
		p->sess = s;
		p->credits = s->credits < CLIENT_CREDITS ? s->credits : CLIENT_CREDITS;
		p->up = true;
		p->st.last_error[0] = 0;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		fv_tp_log(&c->o.log, LOG_INFO, "%s: up (%s)", p->name,
			  s->tx.mode == FV_MODE_ENCRYPT ? "encrypted" : "integrity only");
		kick(c);
		int code = 0;
		const char *why = serve_link(c, p, s, &code);
		l->ops->shutdown(l);
		fail_over(c, p);
		if (!c->closing) {
			struct fv_err de;
			fv_err_set(&de, code, "%s: path down: %s", p->name, why);
			fv_tp_log(&c->o.log, LOG_WARNING, "%s", de.msg);
			pthread_mutex_lock(&c->mu);
			p->st.failures++;
			snprintf(p->st.last_error, sizeof p->st.last_error, "%.255s", de.msg);
			pthread_mutex_unlock(&c->mu);
		}
		fv_tp_sess_free(s);
		if (!c->closing)
			sleep_ms(c, c->o.dead_ms < RECONNECT_MS ? c->o.dead_ms : RECONNECT_MS);
	}
	return NULL;
}

static void *timer_main(void *arg)
{
	struct fv_tp_client *c = arg;
	while (!c->closing) {
		int64_t now = fv_tp_now_ns();
		struct fv_tp_call *expired = NULL;
		pthread_mutex_lock(&c->mu);
		/* queued calls whose time ran out while no path was up (a call
		 * that waits for a credit on a live path waits on) */
		bool any_up = false;
		for (size_t i = 0; i < c->npaths; i++)
			any_up |= c->paths[i].up;
		struct fv_tp_call **pp = &c->qhead, *prev = NULL;
		while (*pp) {
			struct fv_tp_call *call = *pp;
			if (any_up) {
				call->deadline_ns = now + (int64_t)c->o.timeout_ms * 1000000;
			} else if (call->deadline_ns <= now) {
				*pp = call->next;
				call->next = expired;
				expired = call;
				continue;
			}
			prev = call;
			pp = &call->next;
		}
		c->qtail = prev;
		for (size_t i = 0; i < c->npaths; i++) {
			struct path *p = &c->paths[i];
			if (!p->up)
				continue;
			struct fv_tp_link *l = p->sess->link;
			if (l->ops->rx_bytes) { /* bytes of a frame in progress count */
				uint64_t rb = l->ops->rx_bytes(l);
				if (rb != p->last_rx_bytes) {
					p->last_rx_bytes = rb;
					atomic_store(&p->last_rx_ns, now);
				}
			}
			/* never a blocking call here: shutdown only */
			if (now - atomic_load(&p->last_rx_ns) > (int64_t)c->o.dead_ms * 1000000)
				l->ops->shutdown(l);
		}
		pthread_mutex_unlock(&c->mu);
		while (expired) {
			struct fv_tp_call *n = expired->next;
			finish(expired, -EHOSTUNREACH);
			expired = n;
		}
		usleep(TICK_MS * 1000);
	}
	return NULL;
}

/* Stop the first `started` path threads (and the timer thread when timer),
 * fail the queued calls with -ECANCELED, free everything. */
static void stop_and_free(struct fv_tp_client *c, size_t started, bool timer)
{
	pthread_mutex_lock(&c->mu);
	c->closing = true;
	pthread_cond_broadcast(&c->cv);
	for (size_t i = 0; i < c->npaths; i++)
		if (c->paths[i].sess)
			c->paths[i].sess->link->ops->shutdown(c->paths[i].sess->link);
	struct fv_tp_call *q = c->qhead;
	c->qhead = c->qtail = NULL;
	pthread_mutex_unlock(&c->mu);
	for (size_t i = 0; i < started; i++)
		pthread_join(c->paths[i].thr, NULL);
	if (timer)
		pthread_join(c->timer, NULL);
	while (q) {
		struct fv_tp_call *n = q->next;
		finish(q, -ECANCELED);
		q = n;
	}
	for (size_t i = 0; i < c->npaths; i++)
		free(c->paths[i].slots);
	fv_tp_pool_destroy(&c->pool);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c->paths);
	free(c);
}

int fv_tp_client_open(const struct fv_tp_client_opts *o, int wait_ms, struct fv_tp_client **out,
		      struct fv_err *e)
{
	if (!o->npaths || o->npaths > 255)
		return fv_err_set(e, -EINVAL, "a client needs 1 to 255 paths");
	/* libsodium picks its fast code paths (and learns that the CPU has
	 * AES-GCM) in sodium_init; without it every AEAD runs the slow
	 * reference code and AES-GCM is never offered */
	if (sodium_init() < 0)
		return fv_err_set(e, -EIO, "cannot initialise libsodium");
	struct fv_tp_client *c = calloc(1, sizeof *c);
	if (!c)
		return fv_err_set(e, -ENOMEM, "out of memory");
	c->o = *o;
	if (!c->o.timeout_ms)
		c->o.timeout_ms = 30000;
	if (!c->o.dead_ms)
		c->o.dead_ms = 800;
	if (!c->o.connect_timeout_ms)
		c->o.connect_timeout_ms = 2000;
	if (!c->o.pool_bytes)
		c->o.pool_bytes = 256u << 20;
	c->spin_ns = c->o.spin_us < 0 ? 0 : (int64_t)(c->o.spin_us ? c->o.spin_us : 50) * 1000;
	c->npaths = o->npaths;
	c->paths = calloc(o->npaths, sizeof *c->paths);
	if (!c->paths) {
		free(c);
		return fv_err_set(e, -ENOMEM, "out of memory");
	}
	fv_tp_pool_init(&c->pool, c->o.pool_bytes);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	size_t started = 0;
	int rc = 0;
	for (size_t i = 0; i < o->npaths; i++) {
		struct path *p = &c->paths[i];
		p->c = c;
		p->idx = (int)i;
		p->addr = o->paths[i];
		fv_tp_path_str(&p->addr, p->name, sizeof p->name);
		snprintf(p->st.name, sizeof p->st.name, "%s", p->name);
		p->slots = calloc(CLIENT_CREDITS, sizeof(struct fv_tp_call *));
		if (!p->slots) {
			rc = fv_err_set(e, -ENOMEM, "out of memory");
			break;
		}
	}
	for (size_t i = 0; rc == 0 && i < o->npaths; i++) {
		if (pthread_create(&c->paths[i].thr, NULL, path_main, &c->paths[i]) != 0) {
			rc = fv_err_set(e, -EAGAIN, "cannot start a path thread");
			break;
		}
		started++;
	}
	bool timer = false;
	if (rc == 0) {
		if (pthread_create(&c->timer, NULL, timer_main, c) != 0)
			rc = fv_err_set(e, -EAGAIN, "cannot start the timer thread");
		else
			timer = true;
	}
	if (rc == 0 && wait_ms > 0) {
		/* wait for one path up, or every path to have failed once */
		int64_t end = fv_tp_now_ns() + (int64_t)wait_ms * 1000000;
		pthread_mutex_lock(&c->mu);
		for (;;) {
			size_t up = 0, failed = 0;
			for (size_t i = 0; i < c->npaths; i++) {
				up += c->paths[i].up;
				failed += c->paths[i].st.last_error[0] != 0;
			}
			if (up)
				break;
			if (failed == c->npaths || fv_tp_now_ns() >= end) {
				if (c->first_err) {
					*e = c->first_e;
					rc = c->first_err;
				} else {
					rc = fv_err_set(e, -ETIMEDOUT, "no path came up within %d ms",
							wait_ms);
				}
				break;
			}
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 20 * 1000000;
			ts.tv_sec += ts.tv_nsec / 1000000000;
			ts.tv_nsec %= 1000000000;
			pthread_cond_timedwait(&c->cv, &c->mu, &ts);
		}
		pthread_mutex_unlock(&c->mu);
	}
	if (rc < 0) {
		stop_and_free(c, started, timer);
		return rc;
	}
	*out = c;
	return 0;
}

void fv_tp_client_close(struct fv_tp_client *c)
{
	if (c)
		stop_and_free(c, c->npaths, true);
}

int fv_tp_err_kind(int code)
{
	switch (code) {
	case -EACCES:
		return FV_TP_ERR_AUTH;
	case -ECONNREFUSED:
	case -ETIMEDOUT:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -ENODEV:
	case -EADDRNOTAVAIL:
		return FV_TP_ERR_UNREACH;
	default:
		return FV_TP_ERR_OTHER;
	}
}

struct fv_tp_buf *fv_tp_bulk_get(struct fv_tp_client *c, size_t size, int *err)
{
	return fv_tp_pool_get(&c->pool, size, err);
}

void fv_tp_bulk_put(struct fv_tp_client *c, struct fv_tp_buf *b)
{
	fv_tp_pool_put(&c->pool, b);
}

size_t fv_tp_client_stats(struct fv_tp_client *c, struct fv_tp_path_stats *st, size_t n)
{
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->npaths && i < n; i++) {
		st[i] = c->paths[i].st;
		st[i].up = c->paths[i].up;
		st[i].outstanding = c->paths[i].outstanding;
	}
	pthread_mutex_unlock(&c->mu);
	return c->npaths;
}
