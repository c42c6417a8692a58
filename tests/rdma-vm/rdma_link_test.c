/* rdma_link_test: the RDMA backend (transport/rdma.c) through the link.h ops
 * only, on the real fabric: two VMs with soft-RoCE on two rails
 * (tests/rdma-vm/rdma_link.sh runs it there).
 *
 *   rdma_link_test server   listen on $FV_LISTEN (default 0.0.0.0):7420,
 *                           serve every link on its own thread, forever
 *   rdma_link_test client   the checks below; exit 0 only when all passed
 *
 * The test protocol (not fabvault's): frames as docs/transport.md "Frame",
 * integrity trailers, no handshake. A REQUEST's ctl is u32 op, u32 bulk
 * bytes wanted, u64 seed, then filler; op DATA is answered by a REPLY with
 * a ctl of the same length (u32 0, u32 bulk, u64 seed, u64 id, filler) and
 * the bulk, both derived from the seed; op STATS by a REPLY whose ctl
 * carries the server's counters (enum stat).
 *
 * Client checks: both rails at once, many requests with several in flight,
 * bulk of 0, 1, 4096, 1 MiB and 16 MiB, every byte and trailer verified; a
 * recv timeout; shutdown from another thread wakes a blocked recv; a
 * shutdown with a bulk reply under way; garbage (bad magic) and a frame of
 * the wrong length make the server's recv fail with -EBADMSG while the
 * server keeps serving the other links; connection errors name the peer; a
 * pulled cable (port error) breaks the links of that rail only, and the rail
 * connects again when the cable is back.
 *
 * bulk_done (link.h): the server gives a reply's buffer back to its pool in
 * the reply's bulk_done only, and counts: bulk replies in flight (bulk_done
 * not yet called) at the moment send returns, at most; bulk_dones called
 * twice, or after drain returned; links where shutdown + drain did not end
 * with exactly one bulk_done per bulk reply. The client asks for a burst of
 * WINDOW 1 MiB replies and requires several of them in flight on the
 * server's link at once, and at the end requires none of those faults. On
 * its own side it checks that a send that cannot go out (a bad frame, a
 * link shut down) calls its bulk_done exactly once before it returns.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/buf.h"
#include "frame.h"
#include "link.h"
#include "pool.h"

#define PORT 7420
#define CREDITS 16
#define WINDOW 8
#define OP_DATA 1
#define OP_STATS 2
#define REQ_FIXED 16
#define REPLY_FIXED 24
/* bulk_done tokens of a server link; more than its send slots */
#define TOKENS 64
#define POOL_BYTES (256u << 20)
#define RECV_TIMEOUT_MS 60000

static const struct fv_tp_ops *ops = &fv_tp_rdma_ops;

static const uint32_t bulk_sizes[] = {0, 1, 4096, 1u << 20, 16u << 20};
#define NSIZES (sizeof bulk_sizes / sizeof bulk_sizes[0])
/* ctl lengths: inline sends (≤ 256 bytes in all), slot copies, the largest frame */
static const uint32_t ctl_sizes[] = {24, 100, 200, 1000, 8000, 65536};
#define NCTL (sizeof ctl_sizes / sizeof ctl_sizes[0])

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void say(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const char *who, const char *fmt, ...)
{
	char line[1200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	printf("%s: %s\n", who, line);
	fflush(stdout);
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The bytes p[0..n) that seed stands for. */
static void pattern(uint8_t *p, size_t n, uint64_t seed)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		fv_put_le64(p + i, mix(seed + i));
	if (i < n) {
		uint8_t w[8];
		fv_put_le64(w, mix(seed + i));
		memcpy(p + i, w, n - i);
	}
}

/* Offset of the first byte of p[0..n) that is not pattern(seed), or -1. */
static long long pattern_check(const uint8_t *p, size_t n, uint64_t seed)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		if (fv_get_le64(p + i) != mix(seed + i))
			goto find;
	if (i < n) {
		uint8_t w[8];
		fv_put_le64(w, mix(seed + i));
		if (memcmp(p + i, w, n - i) != 0)
			goto find;
	}
	return -1;
find:
	for (size_t k = 0; k < 8 && i + k < n; k++) {
		uint8_t w[8];
		fv_put_le64(w, mix(seed + i));
		if (p[i + k] != w[k])
			return (long long)i + (long long)k;
	}
	return (long long)i;
}

/* Encode header h with ctl[0..ctl_len) (already in place at msg + 48) and
 * its trailer, and for a REPLY with bulk the bulk trailer; returns the
 * message length. */
static size_t seal_msg(const struct fv_frame_dir *d, struct fv_frame_hdr *h, uint8_t *msg,
		       const uint8_t *bulk)
{
	fv_frame_encode(h, msg);
	size_t off = FV_FRAME_HDR;
	if (h->ctl_len) {
		fv_frame_seal(d, 0, msg, msg + off, h->ctl_len, msg + off + h->ctl_len);
		off += h->ctl_len + FV_FRAME_TRAILER;
	}
	if (h->type == FV_FT_REPLY && h->bulk_len) {
		fv_frame_seal(d, 1, msg, (uint8_t *)bulk, h->bulk_len, msg + off);
		off += FV_FRAME_TRAILER;
	}
	return off;
}

static void set_path(struct fv_tp_path *p, const char *host, int port, const char *from)
{
	memset(p, 0, sizeof *p);
	p->kind = FV_TP_RDMA;
	snprintf(p->host, sizeof p->host, "%s", host);
	p->port = port;
	snprintf(p->from, sizeof p->from, "%s", from ? from : "");
}

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);
	return v && *v ? v : dflt;
}

/* ---- server ------------------------------------------------------------- */

/* The server's counters, in this order in a STATS reply (u64 each after
 * u32 0, u32 0). */
enum stat {
	ST_BAD,         /* links whose recv returned -EBADMSG */
	ST_LINKS,       /* links accepted */
	ST_SERVED,      /* requests answered */
	ST_BULK_BYTES,  /* bulk bytes sent */
	ST_MAX_PENDING, /* bulk replies in flight on one link when send returned, at most */
	ST_CB_ISSUED,   /* bulk replies sent (bulk_done owed) */
	ST_CB_CALLED,   /* bulk_done calls */
	ST_CB_ERR,      /* ... with a status other than 0 */
	ST_CB_FAULTS,   /* bulk_done called twice, after drain, or not before send returned an error */
	ST_DRAIN_BAD,   /* links where drain returned with a bulk_done owed */
	ST_ENDED,       /* links ended (and drained) */
	ST_N
};
#define STATS_LEN (8 + 8 * ST_N)

struct server {
	struct fv_tp_pool pool;
	atomic_ullong st[ST_N];
};

struct server_conn;

/* One bulk reply's bulk_done: its buffer back to the pool, once. */
struct token {
	struct server_conn *c;
	struct fv_tp_buf *b;
	atomic_int calls;
	atomic_bool busy;
};

struct server_conn {
	struct server *srv;
	struct fv_tp_link *link;
	struct token tok[TOKENS];
	atomic_uint pending; /* bulk replies whose bulk_done has not run */
	atomic_bool drained;
	unsigned long long issued, max_pending, timed, send_ns_sum, send_ns_max;
};

static void st_max(atomic_ullong *a, unsigned long long v)
{
	unsigned long long o = atomic_load(a);
	while (o < v && !atomic_compare_exchange_weak(a, &o, v))
		;
}

static void reply_done(void *ud, int status)
{
	struct token *t = ud;
	struct server_conn *c = t->c;
	struct server *srv = c->srv;
	if (atomic_fetch_add(&t->calls, 1) != 0 || atomic_load(&c->drained)) {
		atomic_fetch_add(&srv->st[ST_CB_FAULTS], 1);
		return;
	}
	atomic_fetch_add(&srv->st[ST_CB_CALLED], 1);
	if (status)
		atomic_fetch_add(&srv->st[ST_CB_ERR], 1);
	fv_tp_pool_put(&srv->pool, t->b);
	t->b = NULL;
	atomic_fetch_sub(&c->pending, 1);
	atomic_store(&t->busy, false);
}

static double mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Serve one link until it ends; every frame that is not a proper DATA or
 * STATS request ends it. */
static void *serve_link(void *arg)
{
	struct server_conn *c = arg;
	struct server *srv = c->srv;
	struct fv_tp_link *l = c->link;
	struct fv_frame_dir dir = {.mode = FV_MODE_INTEGRITY};
	char who[128];
	uint8_t *out = malloc(FV_FRAME_MAX_MSG);
	unsigned long long n = 0;
	snprintf(who, sizeof who, "server link %s", ops->peer_name(l));
	if (!out)
		goto out;
	for (;;) {
		struct fv_tp_rx rx;
		struct fv_frame_hdr h, rh;
		const char *why = NULL;
		int rc = ops->recv(l, &rx, -1, NULL, NULL);
		if (rc == -EBADMSG) {
			atomic_fetch_add(&srv->st[ST_BAD], 1);
			say(who, "recv: -EBADMSG after %llu requests (closing this link, serving the others)",
			    n);
			break;
		}
		if (rc < 0) {
			say(who, "recv: %s after %llu requests: link ends", strerror(-rc), n);
			break;
		}
		uint8_t *m = rx.msg, *ctl = m + FV_FRAME_HDR;
		rc = fv_frame_parse(m, rx.len, &h, &why);
		if (rc == 0 && (h.type != FV_FT_REQUEST || h.ctl_len < REQ_FIXED))
			rc = -EPROTO, why = "not a test request";
		if (rc == 0 && fv_frame_open(&dir, 0, m, ctl, h.ctl_len, ctl + h.ctl_len) < 0)
			rc = -EBADMSG, why = "ctl trailer mismatch";
		uint32_t op = rc == 0 ? fv_get_le32(ctl) : 0;
		uint32_t want = rc == 0 ? fv_get_le32(ctl + 4) : 0;
		uint64_t seed = rc == 0 ? fv_get_le64(ctl + 8) : 0;
		if (rc == 0 && op == OP_DATA &&
		    (want > h.bulk_len ||
		     pattern_check(ctl + REQ_FIXED, h.ctl_len - REQ_FIXED, seed ^ 0xc7) >= 0))
			rc = -EPROTO, why = "bad DATA request";
		if (rc == 0 && op != OP_DATA && op != OP_STATS)
			rc = -EPROTO, why = "unknown op";
		ops->release(l, &rx);
		if (rc < 0) {
			say(who, "request %llu: %s: closing the link", n, why);
			break;
		}
		fv_frame_next(&dir);

		rh = (struct fv_frame_hdr){.type = FV_FT_REPLY, .id = h.id};
		uint8_t *rctl = out + FV_FRAME_HDR;
		struct fv_tp_buf *b = NULL;
		if (op == OP_STATS) {
			rh.ctl_len = STATS_LEN;
			fv_put_le32(rctl, 0);
			fv_put_le32(rctl + 4, 0);
			for (int k = 0; k < ST_N; k++)
				fv_put_le64(rctl + 8 + 8 * k, atomic_load(&srv->st[k]));
		} else {
			rh.ctl_len = h.ctl_len < REPLY_FIXED ? REPLY_FIXED : h.ctl_len;
			fv_put_le32(rctl, 0);
			fv_put_le32(rctl + 4, want);
			fv_put_le64(rctl + 8, seed);
			fv_put_le64(rctl + 16, h.id);
			pattern(rctl + REPLY_FIXED, rh.ctl_len - REPLY_FIXED, seed ^ 0x5eed);
			if (want) {
				int err = 0;
				b = fv_tp_pool_get(&srv->pool, want, &err);
				if (!b) {
					say(who, "pool: %s", strerror(-err));
					break;
				}
				pattern(b->p, want, seed);
				/* the REPLY's header names where the WRITE goes */
				rh.bulk_len = want;
				rh.bulk_addr = h.bulk_addr;
				rh.bulk_rkey = h.bulk_rkey;
			}
		}
		size_t len = seal_msg(&dir, &rh, out, b ? b->p : NULL);
		fv_frame_next(&dir);
		struct fv_tp_tx tx = {.msg = out, .len = len, .bulk = b, .bulk_len = want && b ? want : 0};
		struct token *t = NULL;
		if (b) {
			/* a token is free again once its bulk_done ran */
			t = &c->tok[c->issued % TOKENS];
			for (int i = 0; i < 5000 && atomic_load(&t->busy); i++)
				usleep(1000);
			if (atomic_load(&t->busy)) {
				say(who, "FAULT: %d bulk replies in flight and the oldest not done after 5 s",
				    TOKENS);
				atomic_fetch_add(&srv->st[ST_CB_FAULTS], 1);
				fv_tp_pool_put(&srv->pool, b);
				break;
			}
			t->b = b;
			atomic_store(&t->calls, 0);
			atomic_store(&t->busy, true);
			atomic_fetch_add(&c->pending, 1);
			c->issued++;
			atomic_fetch_add(&srv->st[ST_CB_ISSUED], 1);
			tx.bulk_done = reply_done;
			tx.bulk_ud = t;
		}
		double t0 = mono_ns();
		rc = ops->send(l, &tx);
		double dt = mono_ns() - t0;
		if (t) {
			/* how many bulk replies are on the wire while we go on */
			unsigned p = atomic_load(&c->pending);
			if (p > c->max_pending)
				c->max_pending = p;
			st_max(&srv->st[ST_MAX_PENDING], p);
			if (want >= (1u << 20)) {
				c->timed++;
				c->send_ns_sum += (unsigned long long)dt;
				if (dt > (double)c->send_ns_max)
					c->send_ns_max = (unsigned long long)dt;
			}
			if (rc < 0 && atomic_load(&t->calls) != 1) {
				say(who, "FAULT: send failed (%s) and its bulk_done ran %d times",
				    strerror(-rc), atomic_load(&t->calls));
				atomic_fetch_add(&srv->st[ST_CB_FAULTS], 1);
			}
		}
		if (rc < 0) {
			say(who, "send: %s after %llu requests: link ends", strerror(-rc), n);
			break;
		}
		n++;
		atomic_fetch_add(&srv->st[ST_SERVED], 1);
		atomic_fetch_add(&srv->st[ST_BULK_BYTES], want);
	}
out:
	ops->shutdown(l);
	ops->drain(l);
	/* every bulk_done ran, exactly once; none may run from here on */
	unsigned owed = atomic_load(&c->pending);
	atomic_store(&c->drained, true);
	ops->free(l);
	if (owed) {
		say(who, "FAULT: drain returned with %u bulk_done owed", owed);
		atomic_fetch_add(&srv->st[ST_DRAIN_BAD], 1);
	}
	say(who,
	    "%llu bulk replies, %u bulk_done owed after drain; at most %llu in flight when send returned; "
	    "send of >= 1 MiB: %.0f us average, %.0f us at most (%llu sends)",
	    c->issued, owed, c->max_pending, c->timed ? (double)c->send_ns_sum / (double)c->timed / 1e3 : 0.0,
	    (double)c->send_ns_max / 1e3, c->timed);
	atomic_fetch_add(&srv->st[ST_ENDED], 1);
	free(out);
	free(c);
	return NULL;
}

static int run_server(void)
{
	static struct server srv; /* lives as long as the process */
	struct fv_tp_path p;
	struct fv_tp_listener *ls;
	struct fv_err e = {0};
	int rc = fv_tp_pool_init(&srv.pool, POOL_BYTES);
	if (rc < 0) {
		say("server", "pool: %s", strerror(-rc));
		return 1;
	}
	set_path(&p, env_or("FV_LISTEN", "0.0.0.0"), PORT, NULL);
	struct fv_tp_link_cfg cfg = {.credits = CREDITS, .timeout_ms = 5000, .pool = &srv.pool};
	rc = ops->listen(&p, &cfg, &ls, &e);
	if (rc < 0) {
		say("server", "listen: %s", e.msg);
		return 1;
	}
	say("server", "listening on rdma://%s:%d", p.host, ops->listener_port(ls));
	for (;;) {
		struct fv_tp_link *l;
		rc = ops->accept(ls, &l, &e);
		if (rc == -ECANCELED)
			break;
		if (rc < 0) {
			say("server", "accept: %s", e.msg);
			continue;
		}
		atomic_fetch_add(&srv.st[ST_LINKS], 1);
		say("server", "accepted link from %s", ops->peer_name(l));
		struct server_conn *c = calloc(1, sizeof *c);
		pthread_t t;
		if (!c) {
			ops->free(l);
			continue;
		}
		c->srv = &srv;
		c->link = l;
		for (unsigned i = 0; i < TOKENS; i++)
			c->tok[i].c = c;
		if (pthread_create(&t, NULL, serve_link, c)) {
			free(c);
			ops->free(l);
			continue;
		}
		pthread_detach(t);
	}
	ops->listener_free(ls);
	return 0;
}

/* ---- client ------------------------------------------------------------- */

static atomic_int failures;

#define FAIL(who, ...)                          \
	do {                                    \
		say(who, "FAIL: " __VA_ARGS__); \
		atomic_fetch_add(&failures, 1); \
	} while (0)

struct pending {
	bool used;
	uint64_t id, seed;
	uint32_t want, ctl_len;
	struct fv_tp_buf *buf;
};

/* A client link with its request state (one thread uses it at a time). */
struct conn {
	char who[64];
	struct fv_tp_link *l;
	struct fv_tp_pool *pool;
	struct fv_frame_dir tx, rx;
	uint8_t *msg;
	uint64_t next_id;
	struct pending pend[WINDOW];
	unsigned inflight;
	/* results */
	unsigned long long done, bytes;
	unsigned long long by_size[NSIZES];
};

static int conn_open(struct conn *c, const char *who, const char *host, const char *from,
		     struct fv_tp_pool *pool, int retry_s)
{
	struct fv_tp_path p;
	struct fv_err e = {0};
	memset(c, 0, sizeof *c);
	snprintf(c->who, sizeof c->who, "%s", who);
	c->pool = pool;
	c->tx.mode = c->rx.mode = FV_MODE_INTEGRITY;
	c->next_id = 1;
	c->msg = malloc(FV_FRAME_MAX_MSG);
	if (!c->msg)
		return -ENOMEM;
	set_path(&p, host, PORT, from);
	struct fv_tp_link_cfg cfg = {.credits = CREDITS, .timeout_ms = 5000, .pool = pool};
	double t0 = now_s();
	for (;;) {
		int rc = ops->connect(&p, &cfg, &c->l, &e);
		if (rc == 0)
			break;
		/* the server VM may still be starting its program */
		if ((rc == -ECONNREFUSED || rc == -ETIMEDOUT) && now_s() - t0 < retry_s) {
			sleep(1);
			continue;
		}
		FAIL(who, "connect: %s (%d)", e.msg, rc);
		free(c->msg);
		c->msg = NULL;
		return rc < 0 ? rc : -EIO;
	}
	say(who, "connected to %s in %.2f s", ops->peer_name(c->l), now_s() - t0);
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->l) {
		ops->shutdown(c->l);
		ops->drain(c->l);
		ops->free(c->l);
		c->l = NULL;
	}
	for (unsigned i = 0; i < WINDOW; i++) {
		if (c->pend[i].used && c->pend[i].buf)
			fv_tp_pool_put(c->pool, c->pend[i].buf);
		c->pend[i].used = false;
	}
	free(c->msg);
	c->msg = NULL;
}

/* Send request (op, want, ctl_len); returns 0 or the send error. */
static int send_req(struct conn *c, uint32_t op, uint32_t want, uint32_t ctl_len)
{
	struct pending *pd = NULL;
	for (unsigned i = 0; i < WINDOW && !pd; i++)
		if (!c->pend[i].used)
			pd = &c->pend[i];
	if (!pd)
		return -ENOBUFS;
	uint64_t id = c->next_id++;
	*pd = (struct pending){.used = true,
			       .id = id,
			       .seed = mix(id ^ (uint64_t)(uintptr_t)c),
			       .want = want,
			       .ctl_len = ctl_len};
	struct fv_frame_hdr h = {.type = FV_FT_REQUEST, .id = id, .ctl_len = ctl_len, .bulk_len = want};
	if (want) {
		int err = 0;
		pd->buf = fv_tp_pool_get(c->pool, want, &err);
		if (!pd->buf) {
			pd->used = false;
			return err;
		}
		/* not the pattern: a WRITE that did not happen shows */
		memset(pd->buf->p, 0xa5, want);
		ops->bulk_key(c->l, pd->buf, 0, &h.bulk_addr, &h.bulk_rkey);
	}
	uint8_t *ctl = c->msg + FV_FRAME_HDR;
	fv_put_le32(ctl, op);
	fv_put_le32(ctl + 4, want);
	fv_put_le64(ctl + 8, pd->seed);
	pattern(ctl + REQ_FIXED, ctl_len - REQ_FIXED, pd->seed ^ 0xc7);
	size_t len = seal_msg(&c->tx, &h, c->msg, NULL);
	fv_frame_next(&c->tx);
	struct fv_tp_tx tx = {.msg = c->msg, .len = len};
	int rc = ops->send(c->l, &tx);
	if (rc < 0)
		return rc;
	c->inflight++;
	return 0;
}

/* Receive and verify one reply; *stats (optional) gets a STATS reply's
 * counters. Returns 0, the recv error, or -EPROTO after a FAIL. */
static int recv_reply(struct conn *c, int timeout_ms, uint64_t stats[ST_N])
{
	struct fv_tp_rx rx;
	struct fv_frame_hdr h;
	const char *why = NULL;
	int rc = ops->recv(c->l, &rx, timeout_ms, NULL, NULL);
	if (rc < 0)
		return rc;
	uint8_t *m = rx.msg, *ctl = m + FV_FRAME_HDR;
	struct pending *pd = NULL;
	rc = -EPROTO;
	if (fv_frame_parse(m, rx.len, &h, &why) < 0) {
		FAIL(c->who, "reply: %s", why);
		goto out;
	}
	for (unsigned i = 0; i < WINDOW && !pd; i++)
		if (c->pend[i].used && c->pend[i].id == h.id)
			pd = &c->pend[i];
	if (h.type != FV_FT_REPLY || !pd) {
		FAIL(c->who, "frame type %u id %" PRIu64 ": not a reply to a request in flight", h.type,
		     h.id);
		goto out;
	}
	if (fv_frame_open(&c->rx, 0, m, ctl, h.ctl_len, ctl + h.ctl_len) < 0) {
		FAIL(c->who, "reply %" PRIu64 ": ctl trailer mismatch", h.id);
		goto out;
	}
	if (stats) {
		if (h.ctl_len != STATS_LEN) {
			FAIL(c->who, "STATS reply of %u bytes", h.ctl_len);
			goto out;
		}
		for (int k = 0; k < ST_N; k++)
			stats[k] = fv_get_le64(ctl + 8 + 8 * k);
		rc = 0;
		goto out;
	}
	uint32_t want_ctl = pd->ctl_len < REPLY_FIXED ? REPLY_FIXED : pd->ctl_len;
	if (h.ctl_len != want_ctl || fv_get_le32(ctl) != 0 || fv_get_le32(ctl + 4) != pd->want ||
	    fv_get_le64(ctl + 8) != pd->seed || fv_get_le64(ctl + 16) != pd->id ||
	    pattern_check(ctl + REPLY_FIXED, h.ctl_len - REPLY_FIXED, pd->seed ^ 0x5eed) >= 0) {
		FAIL(c->who, "reply %" PRIu64 ": ctl content wrong (len %u, want %u)", h.id, h.ctl_len,
		     want_ctl);
		goto out;
	}
	if (h.bulk_len != pd->want) {
		FAIL(c->who, "reply %" PRIu64 ": bulk_len %u, asked %u", h.id, h.bulk_len, pd->want);
		goto out;
	}
	if (pd->want) {
		const uint8_t *trailer = m + fv_frame_ctl_size(&h) - FV_FRAME_TRAILER;
		if (fv_frame_open(&c->rx, 1, m, pd->buf->p, pd->want, trailer) < 0) {
			long long bad = pattern_check(pd->buf->p, pd->want, pd->seed);
			FAIL(c->who,
			     "reply %" PRIu64 ": bulk trailer mismatch (%u bytes, first wrong byte at %lld)",
			     h.id, pd->want, bad);
			goto out;
		}
		long long bad = pattern_check(pd->buf->p, pd->want, pd->seed);
		if (bad >= 0) {
			FAIL(c->who, "reply %" PRIu64 ": bulk byte %lld of %u wrong", h.id, bad, pd->want);
			goto out;
		}
	}
	for (unsigned k = 0; k < NSIZES; k++)
		if (bulk_sizes[k] == pd->want)
			c->by_size[k]++;
	c->done++;
	c->bytes += pd->want;
	rc = 0;
out:
	ops->release(c->l, &rx);
	fv_frame_next(&c->rx);
	if (pd) {
		if (pd->buf)
			fv_tp_pool_put(c->pool, pd->buf);
		pd->buf = NULL;
		pd->used = false;
		c->inflight--;
	}
	return rc;
}

/* n DATA requests, WINDOW in flight, sizes and ctl lengths cycling. */
static int workload(struct conn *c, unsigned n)
{
	unsigned sent = 0;
	int rc;
	while (sent < n || c->inflight) {
		if (sent < n && c->inflight < WINDOW) {
			uint32_t want = bulk_sizes[sent % NSIZES];
			uint32_t ctl = ctl_sizes[(sent / NSIZES + sent) % NCTL];
			rc = send_req(c, OP_DATA, want, ctl);
			if (rc < 0) {
				FAIL(c->who, "send of request %u: %s", sent, strerror(-rc));
				return rc;
			}
			sent++;
			continue;
		}
		rc = recv_reply(c, RECV_TIMEOUT_MS, NULL);
		if (rc < 0) {
			if (rc != -EPROTO)
				FAIL(c->who, "recv after %llu replies: %s", c->done, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static int stats_of(struct conn *c, uint64_t st[ST_N])
{
	int rc = send_req(c, OP_STATS, 0, REQ_FIXED);
	if (rc == 0)
		rc = recv_reply(c, RECV_TIMEOUT_MS, st);
	if (rc < 0 && rc != -EPROTO)
		FAIL(c->who, "STATS request: %s", strerror(-rc));
	return rc;
}

struct rail {
	int n;
	const char *server, *client;
	struct fv_tp_pool *pool;
	unsigned reqs;
	struct conn c;
	int rc;
	double secs;
};

static void *rail_main(void *arg)
{
	struct rail *r = arg;
	char who[32];
	snprintf(who, sizeof who, "rail%d", r->n);
	r->rc = conn_open(&r->c, who, r->server, r->client, r->pool, 60);
	if (r->rc < 0)
		return NULL;
	double t0 = now_s();
	r->rc = workload(&r->c, r->reqs);
	r->secs = now_s() - t0;
	return NULL;
}

struct blocked {
	struct fv_tp_link *l;
	int rc;
	double t_done;
	atomic_bool done;
};

static void *blocked_recv(void *arg)
{
	struct blocked *b = arg;
	struct fv_tp_rx rx;
	b->rc = ops->recv(b->l, &rx, -1, NULL, NULL);
	if (b->rc == 0)
		ops->release(b->l, &rx);
	b->t_done = now_s();
	atomic_store(&b->done, true);
	return NULL;
}

struct done_count {
	atomic_int calls;
	int status;
};

static void count_done(void *ud, int status)
{
	struct done_count *d = ud;
	d->status = status;
	atomic_fetch_add(&d->calls, 1);
}

/* A bulk frame that cannot go out (type: REPLY on a link shut down, or a
 * REQUEST, which may not carry a bulk): send must fail with want and have
 * called bulk_done exactly once, with that code, before it returns. */
static void expect_bulk_send_fails(struct conn *c, const char *who, uint8_t type, int want)
{
	int err = 0;
	struct fv_tp_buf *b = fv_tp_pool_get(c->pool, 4096, &err);
	if (!b) {
		FAIL(who, "pool: %s", strerror(-err));
		return;
	}
	struct fv_frame_hdr h = {.type = type, .id = 99, .bulk_len = 4096};
	ops->bulk_key(c->l, b, 0, &h.bulk_addr, &h.bulk_rkey);
	memset(b->p, 0, 4096);
	/* the frame counter is left alone: this frame never goes out */
	size_t len = seal_msg(&c->tx, &h, c->msg, b->p);
	struct done_count d = {.status = 1};
	atomic_init(&d.calls, 0);
	struct fv_tp_tx tx = {.msg = c->msg,
			      .len = len,
			      .bulk = b,
			      .bulk_len = 4096,
			      .bulk_done = count_done,
			      .bulk_ud = &d};
	int rc = ops->send(c->l, &tx);
	int calls = atomic_load(&d.calls);
	if (rc != want || calls != 1 || d.status != want)
		FAIL(who,
		     "bulk %s send: returned %d with bulk_done called %d times (status %d), want %d once",
		     type == FV_FT_REPLY ? "REPLY" : "REQUEST", rc, calls, d.status, want);
	else
		say(who, "OK: bulk %s send failed with %d and called its bulk_done once before returning",
		    type == FV_FT_REPLY ? "REPLY" : "REQUEST", rc);
	fv_tp_pool_put(c->pool, b);
}

/* shutdown from another thread while recv is blocked (with, when
 * big, a 16 MiB reply under way). */
static void test_shutdown(const char *server, const char *from, struct fv_tp_pool *pool, bool bulk_under_way)
{
	const char *who = bulk_under_way ? "shutdown+bulk" : "shutdown";
	struct conn c;
	if (conn_open(&c, who, server, from, pool, 10) < 0)
		return;
	if (!bulk_under_way)
		expect_bulk_send_fails(&c, who, FV_FT_REQUEST, -EINVAL);
	if (bulk_under_way && send_req(&c, OP_DATA, 16u << 20, 24) < 0)
		FAIL(who, "send of the 16 MiB request failed");
	struct blocked b = {.l = c.l};
	atomic_init(&b.done, false);
	pthread_t t;
	if (pthread_create(&t, NULL, blocked_recv, &b)) {
		FAIL(who, "pthread_create");
		conn_close(&c);
		return;
	}
	usleep(bulk_under_way ? 20000 : 300000);
	double t0 = now_s();
	ops->shutdown(c.l);
	double t_ret = now_s();
	for (int i = 0; i < 500 && !atomic_load(&b.done); i++)
		usleep(10000);
	if (!atomic_load(&b.done)) {
		FAIL(who, "recv still blocked 5 s after shutdown");
		/* cannot free a link a thread still uses: report and leave */
		return;
	}
	pthread_join(t, NULL);
	if (bulk_under_way && b.rc == 0) {
		/* the reply won the race: still fine, the next recv must fail */
		b.rc = ops->recv(c.l, &(struct fv_tp_rx){0}, 1000, NULL, NULL);
	}
	if (b.rc != -ECONNRESET)
		FAIL(who, "blocked recv returned %d (%s), want -ECONNRESET", b.rc, strerror(-b.rc));
	else
		say(who,
		    "OK: shutdown returned in %.1f ms, blocked recv woke with -ECONNRESET %.1f ms after it",
		    (t_ret - t0) * 1e3, (b.t_done - t0) * 1e3);
	struct fv_tp_tx tx = {.msg = c.msg, .len = FV_FRAME_HDR};
	int rc = ops->send(c.l, &tx);
	if (rc != -ECONNRESET)
		FAIL(who, "send after shutdown returned %d, want -ECONNRESET", rc);
	expect_bulk_send_fails(&c, who, FV_FT_REPLY, -ECONNRESET);
	rc = ops->recv(c.l, &(struct fv_tp_rx){0}, 0, NULL, NULL);
	if (rc != -ECONNRESET)
		FAIL(who, "recv after shutdown returned %d, want -ECONNRESET", rc);
	ops->shutdown(c.l); /* idempotent */
	conn_close(&c);
}

/* A message that is not a frame: the server's recv must say -EBADMSG and
 * drop only this link. */
static void test_garbage(const char *who, const char *server, const char *from, struct fv_tp_pool *pool,
			 bool bad_magic)
{
	struct conn c;
	if (conn_open(&c, who, server, from, pool, 10) < 0)
		return;
	size_t len;
	if (bad_magic) {
		memset(c.msg, 0, 64);
		memcpy(c.msg, "XXXX", 4);
		len = 64;
	} else {
		/* a proper header for 100 bytes of ctl, but 10 sent */
		struct fv_frame_hdr h = {.type = FV_FT_REQUEST, .id = 1, .ctl_len = 100};
		fv_frame_encode(&h, c.msg);
		memset(c.msg + FV_FRAME_HDR, 0, 10);
		len = FV_FRAME_HDR + 10;
	}
	struct fv_tp_tx tx = {.msg = c.msg, .len = len};
	int rc = ops->send(c.l, &tx);
	if (rc < 0)
		FAIL(who, "send: %s", strerror(-rc));
	rc = ops->recv(c.l, &(struct fv_tp_rx){0}, 20000, NULL, NULL);
	if (rc != -ECONNRESET)
		FAIL(who, "the server did not close the link: recv returned %d, want -ECONNRESET", rc);
	else
		say(who, "OK: the server closed the link");
	conn_close(&c);
}

/* A burst of WINDOW requests for 1 MiB: the server sends each reply
 * without waiting for the WRITE of the one before, so several of its bulk
 * replies must be in flight on its link at once. */
static void test_inflight(struct conn *c)
{
	const char *who = "in-flight";
	uint64_t st[ST_N] = {0};
	double t0 = now_s();
	for (unsigned i = 0; i < WINDOW; i++) {
		int rc = send_req(c, OP_DATA, 1u << 20, REQ_FIXED);
		if (rc < 0) {
			FAIL(who, "send: %s", strerror(-rc));
			return;
		}
	}
	while (c->inflight) {
		int rc = recv_reply(c, RECV_TIMEOUT_MS, NULL);
		if (rc < 0) {
			if (rc != -EPROTO)
				FAIL(who, "recv: %s", strerror(-rc));
			return;
		}
	}
	double dt = now_s() - t0;
	if (stats_of(c, st) < 0)
		return;
	if (st[ST_MAX_PENDING] < 2)
		FAIL(who, "at most %" PRIu64 " bulk reply in flight on a server link, want several",
		     st[ST_MAX_PENDING]);
	else
		say(who,
		    "OK: %u x 1 MiB in %.2f s; up to %" PRIu64
		    " bulk replies in flight on one server link when its send returned",
		    WINDOW, dt, st[ST_MAX_PENDING]);
}

/* The server's bulk_done bookkeeping over the whole run. */
static void check_bulk_done(struct conn *c)
{
	const char *who = "bulk_done";
	uint64_t st[ST_N] = {0};
	usleep(500000); /* the server ends and drains the links closed last */
	if (stats_of(c, st) < 0)
		return;
	say(who,
	    "server: %" PRIu64 " bulk replies, %" PRIu64 " bulk_done calls (%" PRIu64
	    " with an error), %" PRIu64 " links ended and drained, at most %" PRIu64 " in flight",
	    st[ST_CB_ISSUED], st[ST_CB_CALLED], st[ST_CB_ERR], st[ST_ENDED], st[ST_MAX_PENDING]);
	if (st[ST_CB_FAULTS] || st[ST_DRAIN_BAD] || st[ST_CB_CALLED] > st[ST_CB_ISSUED] || !st[ST_ENDED])
		FAIL(who,
		     "%" PRIu64
		     " bulk_done faults (twice, after drain, or missing on a failed send), %" PRIu64
		     " links drained with a bulk_done owed",
		     st[ST_CB_FAULTS], st[ST_DRAIN_BAD]);
	else
		say(who, "OK: every ended link drained with each bulk_done called exactly once");
}

/* Connection errors: the code link.h promises and a message naming the
 * peer. */
static void expect_connect_error(const char *what, const char *host, int port, const char *from, int want1,
				 int want2)
{
	struct fv_tp_path p;
	struct fv_tp_link *l = NULL;
	struct fv_err e = {0};
	struct fv_tp_link_cfg cfg = {.credits = 4, .timeout_ms = 3000};
	char name[128];
	set_path(&p, host, port, from);
	snprintf(name, sizeof name, "rdma://%s:%d", host, port);
	double t0 = now_s();
	int rc = ops->connect(&p, &cfg, &l, &e);
	if (rc == 0) {
		FAIL("connect-errors", "%s: connected", what);
		ops->free(l);
	} else if ((rc != want1 && rc != want2) || !strstr(e.msg, name) || e.code != rc) {
		FAIL("connect-errors", "%s: %d (%s), want %d or %d and a message naming %s", what, rc, e.msg,
		     want1, want2, name);
	} else {
		say("connect-errors", "OK: %s: %s (%.1f s)", what, e.msg, now_s() - t0);
	}
}

static void test_connect_errors(const char *server, const char *from)
{
	expect_connect_error("no listener", server, PORT + 1, from, -ECONNREFUSED, -ECONNREFUSED);
	expect_connect_error("no such host", "10.200.1.99", PORT, from, -ETIMEDOUT, -EHOSTUNREACH);
	expect_connect_error("from an address not on this host", server, PORT, "10.200.1.77", -EADDRNOTAVAIL,
			     -ENODEV);
}

/* Pull rail 1's cable (qemu monitor through vm.sh): the port error must
 * break a link blocked in recv on it, a link on rail 0 must not notice, and
 * rail 1 must connect again once the cable is back. */
static void test_port_down(const char *server1, const char *from1, struct conn *rail0,
			   struct fv_tp_pool *pool)
{
	const char *who = "port-down";
	struct conn c;
	if (conn_open(&c, who, server1, from1, pool, 10) < 0)
		return;
	struct blocked b = {.l = c.l};
	atomic_init(&b.done, false);
	pthread_t t;
	if (pthread_create(&t, NULL, blocked_recv, &b)) {
		FAIL(who, "pthread_create");
		conn_close(&c);
		return;
	}
	usleep(200000);
	double t0 = now_s();
	/* vm.sh sends this line to the client VM's qemu monitor */
	printf("FV-HOST: client set_link r1 off\n");
	fflush(stdout);
	for (int i = 0; i < 1500 && !atomic_load(&b.done); i++)
		usleep(10000);
	if (!atomic_load(&b.done)) {
		FAIL(who, "recv on rail 1 still blocked 15 s after the cable was pulled");
		printf("FV-HOST: client set_link r1 on\n");
		fflush(stdout);
		return; /* a thread still uses the link: leave it */
	}
	pthread_join(t, NULL);
	if (b.rc != -ECONNRESET)
		FAIL(who, "recv on rail 1 returned %d after the cable was pulled, want -ECONNRESET", b.rc);
	else
		say(who, "OK: cable pulled: blocked recv on rail 1 returned -ECONNRESET after %.2f s",
		    b.t_done - t0);
	conn_close(&c);
	unsigned long long before = rail0->done;
	if (workload(rail0, NSIZES) == 0 && rail0->done == before + NSIZES)
		say(who, "OK: rail 0 served %u requests with rail 1's cable out", (unsigned)NSIZES);
	else
		FAIL(who, "rail 0 failed while rail 1's cable was out");
	printf("FV-HOST: client set_link r1 on\n");
	fflush(stdout);
	t0 = now_s();
	if (conn_open(&c, "port-up", server1, from1, pool, 30) < 0)
		return;
	say(who, "rail 1 connected again %.2f s after the cable was put back", now_s() - t0);
	if (workload(&c, 2 * NSIZES) == 0 && c.done == 2 * NSIZES)
		say(who, "OK: rail 1 served %u requests after the cable was put back",
		    (unsigned)(2 * NSIZES));
	else
		FAIL(who, "rail 1 failed after the cable was put back");
	conn_close(&c);
}

static int run_client(unsigned reqs)
{
	static struct fv_tp_pool pool;
	const char *srv[2] = {env_or("FV_SERVER_ADDR0", "10.200.1.1"),
			      env_or("FV_SERVER_ADDR1", "10.200.2.1")};
	const char *cli[2] = {env_or("FV_CLIENT_ADDR0", "10.200.1.2"),
			      env_or("FV_CLIENT_ADDR1", "10.200.2.2")};
	struct rail rails[2];
	pthread_t t[2];
	uint64_t st[ST_N] = {0};
	double t0 = now_s();

	int rc = fv_tp_pool_init(&pool, POOL_BYTES);
	if (rc < 0) {
		FAIL("client", "pool: %s", strerror(-rc));
		return 1;
	}
	/* 1. both rails at once, one pool registered with both links */
	for (int r = 0; r < 2; r++) {
		rails[r] = (struct rail){
			.n = r, .server = srv[r], .client = cli[r], .pool = &pool, .reqs = reqs};
		if (pthread_create(&t[r], NULL, rail_main, &rails[r])) {
			FAIL("client", "pthread_create");
			return 1;
		}
	}
	for (int r = 0; r < 2; r++)
		pthread_join(t[r], NULL);
	for (int r = 0; r < 2; r++) {
		struct rail *x = &rails[r];
		if (x->rc < 0)
			continue;
		say(x->c.who,
		    "OK: %llu requests verified in %.2f s (%.1f MiB of bulk, %.1f MiB/s, %u in flight)",
		    x->c.done, x->secs, (double)x->c.bytes / 1048576, (double)x->c.bytes / 1048576 / x->secs,
		    WINDOW);
		say(x->c.who, "    by bulk size: 0:%llu 1:%llu 4096:%llu 1MiB:%llu 16MiB:%llu",
		    x->c.by_size[0], x->c.by_size[1], x->c.by_size[2], x->c.by_size[3], x->c.by_size[4]);
	}
	if (rails[0].rc < 0 || rails[1].rc < 0)
		goto out;

	/* 2. an idle recv times out and leaves the link fine */
	double a = now_s();
	rc = ops->recv(rails[0].c.l, &(struct fv_tp_rx){0}, 200, NULL, NULL);
	double dt = (now_s() - a) * 1e3;
	if (rc != -EAGAIN || dt < 150)
		FAIL("timeout", "recv(200 ms) on an idle link: %d after %.0f ms, want -EAGAIN after 200 ms",
		     rc, dt);
	else
		say("timeout", "OK: recv(200 ms) on an idle link: -EAGAIN after %.0f ms", dt);

	/* 3. several bulk replies in flight on one link */
	test_inflight(&rails[0].c);

	/* 4. shutdown wakes a blocked recv; also with a bulk reply under way */
	test_shutdown(srv[0], cli[0], &pool, false);
	test_shutdown(srv[1], cli[1], &pool, true);

	/* 5. garbage: the server's recv fails with -EBADMSG on that link only */
	uint64_t bad0 = 0;
	if (stats_of(&rails[1].c, st) == 0)
		bad0 = st[ST_BAD];
	test_garbage("garbage-magic", srv[1], cli[1], &pool, true);
	test_garbage("garbage-length", srv[0], cli[0], &pool, false);
	usleep(200000);
	if (stats_of(&rails[1].c, st) == 0) {
		if (st[ST_BAD] != bad0 + 2)
			FAIL("garbage", "server counted %" PRIu64 " -EBADMSG links, want %" PRIu64,
			     st[ST_BAD], bad0 + 2);
		else
			say("garbage",
			    "OK: server recv returned -EBADMSG for both bad links (links accepted %" PRIu64
			    ", requests served %" PRIu64 ")",
			    st[ST_LINKS], st[ST_SERVED]);
	}
	/* ... and the other links are still served */
	for (int r = 0; r < 2; r++) {
		unsigned long long before = rails[r].c.done;
		if (workload(&rails[r].c, 2 * NSIZES) == 0 && rails[r].c.done == before + 2 * NSIZES)
			say(rails[r].c.who, "OK: still served after the bad links (%u more requests)",
			    (unsigned)(2 * NSIZES));
		else
			FAIL(rails[r].c.who, "not served after the bad links");
	}

	/* 6. connection errors name the peer */
	test_connect_errors(srv[0], cli[0]);

	/* 7. a port error breaks the links on that port only */
	conn_close(&rails[1].c);
	test_port_down(srv[1], cli[1], &rails[0].c, &pool);

	/* 8. every bulk_done on the server, exactly once */
	check_bulk_done(&rails[0].c);

out:
	for (int r = 0; r < 2; r++)
		conn_close(&rails[r].c);
	fv_tp_pool_destroy(&pool);
	int nf = atomic_load(&failures);
	unsigned long long total = rails[0].c.done + rails[1].c.done;
	unsigned long long bytes = rails[0].c.bytes + rails[1].c.bytes;
	printf("RDMA LINK TEST: %s: %llu requests (%.1f MiB of bulk) on 2 rails, %d failure%s, %.1f s\n",
	       nf ? "FAIL" : "PASS", total, (double)bytes / 1048576, nf, nf == 1 ? "" : "s", now_s() - t0);
	return nf ? 1 : 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && strcmp(argv[1], "server") == 0)
		return run_server();
	if (argc >= 2 && strcmp(argv[1], "client") == 0) {
		unsigned reqs = argc >= 3 ? (unsigned)strtoul(argv[2], NULL, 10) : 100;
		return run_client(reqs ? reqs : 100);
	}
	fprintf(stderr, "usage: rdma_link_test server | client [REQUESTS_PER_RAIL]\n");
	return 2;
}
