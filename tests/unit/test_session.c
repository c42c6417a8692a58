/* Unit tests for transport/session: the handshake (docs/transport.md,
 * "Handshake") between two real sessions, over an in-memory link (a
 * backend of the link interface that moves frames between two queues, in
 * this file), including a recorded handshake replayed and an impostor. */
#include "../../transport/session.h"
#include "../harness.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>

/* ---- an in-memory link: frames are copied into the peer's queue ---------- */

#define QCAP 16

struct mq {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *msg[QCAP];
	size_t len[QCAP];
	int head, n;
	bool closed;
};

struct mlink {
	struct fv_tp_link base;
	struct mq *in, *out;
	struct mq *record; /* every frame sent, copied here too (or NULL) */
	uint8_t *cur;
};

/* Queue a copy of p[0..n) and b[0..bn) (the bulk, as TCP sends it after
 * the control part); waits while the queue is full. */
static void mq_put(struct mq *q, const uint8_t *p, size_t n, const void *b, size_t bn)
{
	pthread_mutex_lock(&q->mu);
	while (q->n == QCAP && !q->closed)
		pthread_cond_wait(&q->cv, &q->mu);
	if (!q->closed) {
		int i = (q->head + q->n++) % QCAP;
		q->msg[i] = malloc(n + bn);
		memcpy(q->msg[i], p, n);
		if (bn)
			memcpy(q->msg[i] + n, b, bn);
		q->len[i] = n;
		pthread_cond_broadcast(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
}

static int m_send(struct fv_tp_link *l, const struct fv_tp_tx *tx)
{
	struct mlink *m = (struct mlink *)l;
	const void *b = tx->bulk ? tx->bulk->p : NULL;
	mq_put(m->out, tx->msg, tx->len, b, tx->bulk_len);
	if (m->record)
		mq_put(m->record, tx->msg, tx->len, b, tx->bulk_len);
	if (tx->bulk_done)
		tx->bulk_done(tx->bulk_ud, 0);
	return 0;
}

static int m_recv(struct fv_tp_link *l, struct fv_tp_rx *rx, int timeout_ms, fv_tp_bulk_dst_fn dst, void *ud)
{
	struct mlink *m = (struct mlink *)l;
	struct mq *q = m->in;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000 + 1;
	pthread_mutex_lock(&q->mu);
	while (!q->n && !q->closed)
		if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) != 0)
			break;
	int rc = -EAGAIN;
	if (q->n) {
		m->cur = rx->msg = q->msg[q->head];
		rx->len = q->len[q->head];
		q->head = (q->head + 1) % QCAP;
		q->n--;
		pthread_cond_broadcast(&q->cv);
		rc = 0;
		/* a reply's bulk goes where the receiver says, as over TCP */
		struct fv_frame_hdr h;
		const char *why;
		if (fv_frame_decode(rx->msg, &h, &why) == 0 && h.type == FV_FT_REPLY && h.bulk_len) {
			void *b = dst ? dst(ud, &h) : NULL;
			if (b)
				memcpy(b, rx->msg + rx->len, h.bulk_len);
			else
				rc = -EBADMSG;
		}
	} else if (q->closed) {
		rc = -ECONNRESET;
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

static void m_release(struct fv_tp_link *l, struct fv_tp_rx *rx)
{
	(void)rx;
	struct mlink *m = (struct mlink *)l;
	free(m->cur);
	m->cur = NULL;
}

static void m_shutdown(struct fv_tp_link *l)
{
	struct mlink *m = (struct mlink *)l;
	pthread_mutex_lock(&m->in->mu);
	m->in->closed = true;
	pthread_cond_broadcast(&m->in->cv);
	pthread_mutex_unlock(&m->in->mu);
}

static void m_free(struct fv_tp_link *l)
{
	(void)l;
}

static const char *m_peer(struct fv_tp_link *l)
{
	(void)l;
	return "memory";
}

static const struct fv_tp_ops mops = {.name = "mem",
				      .send = m_send,
				      .recv = m_recv,
				      .release = m_release,
				      .shutdown = m_shutdown,
				      .free = m_free,
				      .peer_name = m_peer};

static void mq_init(struct mq *q)
{
	memset(q, 0, sizeof *q);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
}

static void mq_drain(struct mq *q)
{
	while (q->n) {
		free(q->msg[q->head]);
		q->head = (q->head + 1) % QCAP;
		q->n--;
	}
}

/* ---- two ends ---------------------------------------------------------- */

struct end {
	struct fv_tp_node_key key;
	struct fv_tp_peers peers;
	struct mlink link;
	struct fv_tp_sess *s;
	struct fv_err e;
	int rc;
	int mode;
	bool require_encrypt;
};

static struct mq c2s, s2c;

static void ends(struct end *c, struct end *s, bool know_client, bool know_server)
{
	memset(c, 0, sizeof *c);
	memset(s, 0, sizeof *s);
	mq_init(&c2s);
	mq_init(&s2c);
	fv_tp_key_generate(&c->key);
	fv_tp_key_generate(&s->key);
	if (know_server)
		fv_tp_peers_add(&c->peers, s->key.pk, "server");
	if (know_client)
		fv_tp_peers_add(&s->peers, c->key.pk, "client");
	c->link = (struct mlink){.base = {&mops}, .in = &s2c, .out = &c2s};
	s->link = (struct mlink){.base = {&mops}, .in = &c2s, .out = &s2c};
	fv_tp_sess_new(&c->link.base, "mem", NULL, &c->s);
	fv_tp_sess_new(&s->link.base, "mem", NULL, &s->s);
	c->mode = FV_MODE_ENCRYPT;
}

static void *server_main(void *arg)
{
	struct end *s = arg;
	s->rc = fv_tp_sess_server(s->s, &s->key, &s->peers, s->require_encrypt, 32, 2000, &s->e);
	return NULL;
}

static void run(struct end *c, struct end *s)
{
	pthread_t t;
	pthread_create(&t, NULL, server_main, s);
	c->rc = fv_tp_sess_client(c->s, &c->key, &c->peers, c->mode, 64, 2000, &c->e);
	if (c->rc < 0)
		m_shutdown(&s->link.base); /* the server must not wait for more */
	pthread_join(t, NULL);
}

static void done(struct end *c, struct end *s)
{
	fv_tp_sess_free(c->s);
	fv_tp_sess_free(s->s);
	fv_tp_peers_free(&c->peers);
	fv_tp_peers_free(&s->peers);
	mq_drain(&c2s);
	mq_drain(&s2c);
}

/* A request sealed by the client opens on the server. */
static bool request_gets_through(struct end *c, struct end *s)
{
	struct fv_frame_hdr h = {.type = FV_FT_REQUEST, .id = 42};
	if (fv_tp_sess_send(c->s, &h, "hello", 5, NULL, 0, NULL, NULL) < 0)
		return false;
	struct fv_tp_rx rx;
	struct fv_frame_hdr g;
	uint8_t *ctl;
	const char *why;
	if (fv_tp_sess_recv(s->s, &rx, &g, &ctl, 1000, NULL, NULL, &why) < 0)
		return false;
	bool ok = g.id == 42 && g.ctl_len == 5 && !memcmp(ctl, "hello", 5);
	fv_tp_sess_release(s->s, &rx);
	return ok;
}

FV_TEST(handshake_ok)
{
	struct end c, s;
	ends(&c, &s, true, true);
	run(&c, &s);
	FV_CHECK_EQ(c.rc, 0);
	FV_CHECK_EQ(s.rc, 0);
	FV_CHECK(!strcmp(c.s->peer_key_name, "server") && !strcmp(s.s->peer_key_name, "client"));
	FV_CHECK_EQ(c.s->tx.mode, FV_MODE_ENCRYPT);
	FV_CHECK_EQ(c.s->credits, 32); /* the smaller of the two */
	FV_CHECK(memcmp(c.s->tx.key, s.s->rx.key, 32) == 0 && memcmp(c.s->rx.key, s.s->tx.key, 32) == 0);
	FV_CHECK(memcmp(c.s->tx.key, c.s->rx.key, 32) != 0); /* one key per direction */
	FV_CHECK(request_gets_through(&c, &s));
	done(&c, &s);
}

FV_TEST(integrity_and_required_encryption)
{
	struct end c, s;
	ends(&c, &s, true, true);
	c.mode = FV_MODE_INTEGRITY;
	run(&c, &s);
	FV_CHECK(c.rc == 0 && s.rc == 0 && c.s->tx.mode == FV_MODE_INTEGRITY);
	FV_CHECK(request_gets_through(&c, &s));
	done(&c, &s);
	ends(&c, &s, true, true);
	c.mode = FV_MODE_INTEGRITY;
	s.require_encrypt = true;
	run(&c, &s);
	FV_CHECK(c.rc == 0 && c.s->tx.mode == FV_MODE_ENCRYPT && s.s->rx.mode == FV_MODE_ENCRYPT);
	FV_CHECK(request_gets_through(&c, &s));
	done(&c, &s);
}

/* Several threads send replies on one encrypted session at once, large
 * payloads (sealed outside the send lock) mixed with small ones and none:
 * every frame must leave in counter order, or the receiver's decryption
 * fails, and every payload must arrive intact. */
#define SENDERS 4
#define PER_SENDER 40
#define BIG (96u << 10)

struct sender {
	struct fv_tp_sess *s;
	int t;
	uint8_t *mem;
	struct fv_tp_buf buf;
	int fails;
};

static void fill(uint8_t *p, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(id * 31 + i * 7);
}

static void *sender_main(void *arg)
{
	struct sender *w = arg;
	for (int i = 0; i < PER_SENDER; i++) {
		uint64_t id = (uint64_t)w->t << 16 | (uint64_t)i;
		uint32_t n = i % 3 == 0 ? BIG : i % 3 == 1 ? 1000 : 0;
		fill(w->mem, n, id);
		struct fv_frame_hdr h = {.type = FV_FT_REPLY, .id = id};
		if (fv_tp_sess_send(w->s, &h, "r", 1, n ? &w->buf : NULL, n, NULL, NULL) < 0)
			w->fails++;
	}
	return NULL;
}

static void *recv_dst(void *ud, const struct fv_frame_hdr *h)
{
	(void)h;
	return ud;
}

FV_TEST(concurrent_senders_keep_counter_order)
{
	struct end c, s;
	ends(&c, &s, true, true);
	run(&c, &s);
	FV_CHECK(c.rc == 0 && s.rc == 0 && s.s->tx.mode == FV_MODE_ENCRYPT);
	struct sender w[SENDERS];
	pthread_t t[SENDERS];
	for (int i = 0; i < SENDERS; i++) {
		w[i] = (struct sender){.s = s.s, .t = i, .mem = malloc(BIG)};
		w[i].buf = (struct fv_tp_buf){.p = w[i].mem, .size = BIG};
		pthread_create(&t[i], NULL, sender_main, &w[i]);
	}
	uint8_t *got = malloc(BIG), *want = malloc(BIG);
	int ok = 0, seen[SENDERS] = {0};
	for (int k = 0; k < SENDERS * PER_SENDER; k++) {
		struct fv_tp_rx rx;
		struct fv_frame_hdr h;
		uint8_t *ctl;
		const char *why;
		if (fv_tp_sess_recv(c.s, &rx, &h, &ctl, 2000, recv_dst, got, &why) < 0)
			break;
		int th = (int)(h.id >> 16), i = (int)(h.id & 0xffff);
		fill(want, h.bulk_len, h.id);
		/* each sender's frames arrive in its own order, whole */
		if (th < SENDERS && i == seen[th] && h.ctl_len == 1 && ctl[0] == 'r' &&
		    h.bulk_len == (i % 3 == 0   ? BIG
				   : i % 3 == 1 ? 1000
						: 0) &&
		    !memcmp(got, want, h.bulk_len)) {
			ok++;
			seen[th]++;
		}
		fv_tp_sess_release(c.s, &rx);
	}
	m_shutdown(&c.link.base); /* senders blocked on a full queue give up */
	for (int i = 0; i < SENDERS; i++) {
		pthread_join(t[i], NULL);
		FV_CHECK_EQ(w[i].fails, 0);
		free(w[i].mem);
	}
	FV_CHECK_EQ(ok, SENDERS * PER_SENDER);
	free(got);
	free(want);
	done(&c, &s);
}

FV_TEST(unknown_client_refused)
{
	struct end c, s;
	ends(&c, &s, false, true);
	run(&c, &s);
	FV_CHECK_EQ(s.rc, -EACCES);
	FV_CHECK(strstr(s.e.msg, "not in authorized_peers") != NULL);
	FV_CHECK_EQ(c.rc, -EACCES);
	FV_CHECK(strstr(c.e.msg, "key not authorized") != NULL);
	done(&c, &s);
}

FV_TEST(unknown_server_refused)
{
	struct end c, s;
	ends(&c, &s, true, false);
	run(&c, &s);
	FV_CHECK_EQ(c.rc, -EACCES);
	FV_CHECK(strstr(c.e.msg, "not in our authorized peers") != NULL);
	FV_CHECK(s.rc < 0);
	done(&c, &s);
}

/* A client that presents an authorized public key without its secret. */
FV_TEST(impostor_refused)
{
	struct end c, s;
	ends(&c, &s, true, true);
	struct fv_tp_node_key real = c.key;
	fv_tp_key_generate(&c.key);
	memcpy(c.key.pk, real.pk, 32); /* the public key, not the secret */
	run(&c, &s);
	FV_CHECK(c.rc == -EACCES); /* it cannot even check the server's proof */
	FV_CHECK(s.rc < 0);
	done(&c, &s);
}

/* A recorded handshake replayed to a server fails at the proof. */
FV_TEST(replay_refused)
{
	struct end c, s;
	struct mq rec;
	mq_init(&rec);
	ends(&c, &s, true, true);
	c.link.record = &rec;
	run(&c, &s);
	FV_REQUIRE(c.rc == 0 && s.rc == 0 && rec.n == 2); /* HELLO, PROOF */
	struct fv_tp_peers peers = s.peers;
	struct fv_tp_node_key skey = s.key;
	s.peers = (struct fv_tp_peers){0};
	done(&c, &s);
	/* a fresh server session with the same keys, fed the recording */
	mq_init(&c2s);
	mq_init(&s2c);
	struct end s2 = {.key = skey, .peers = peers};
	s2.link = (struct mlink){.base = {&mops}, .in = &c2s, .out = &s2c};
	fv_tp_sess_new(&s2.link.base, "mem", NULL, &s2.s);
	for (int i = 0; i < 2; i++)
		mq_put(&c2s, rec.msg[(rec.head + i) % QCAP], rec.len[(rec.head + i) % QCAP], NULL, 0);
	server_main(&s2);
	FV_CHECK_EQ(s2.rc, -EACCES);
	FV_CHECK(strstr(s2.e.msg, "failed to prove") != NULL);
	fv_tp_sess_free(s2.s);
	fv_tp_peers_free(&peers);
	mq_drain(&rec);
	mq_drain(&c2s);
	mq_drain(&s2c);
}

static void setup(void) __attribute__((constructor));
static void setup(void)
{
	if (sodium_init() < 0)
		abort();
}

FV_TESTS(handshake_ok, integrity_and_required_encryption, concurrent_senders_keep_counter_order,
	 unknown_client_refused, unknown_server_refused, impostor_refused, replay_refused)
