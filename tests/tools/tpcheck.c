/* tpcheck: the transport test client (tests/integration/transport_tcp.sh,
 * tests/rdma-vm/transport.sh). Talks to `fabvault fabric serve` through the
 * real transport and checks what a user of it relies on:
 *   sizes     control messages of 0, 1, 4 KiB and 64 KiB echoed; bulk replies
 *             of 0, 1, 4 KiB, 1 MiB and 16 MiB, every byte checked;
 *   inflight  N (default 3000) requests submitted at once, all complete;
 *   failover  (with --down CMD --up CMD) a steady load of idempotent bulk
 *             requests on every path; CMD --down takes a path away mid-stream:
 *             no request may fail and the load must go on; after --up the
 *             path must come back and carry requests again.
 * Usage: tpcheck --key F --peers F [--mode integrity|encrypt] [--inflight N]
 *                [--down CMD --up CMD --down-path I] PATH...
 * Prints one line per check; exits 0 when all passed, 1 otherwise.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../common/buf.h"
#include "../../tools/fabric_proto.h"
#include "../../transport/frame.h"
#include "../../transport/tp.h"

static int failures;

#define CHECK(cond, ...)                 \
	do {                             \
		if (cond) {              \
			printf("ok   "); \
		} else {                 \
			printf("FAIL "); \
			failures++;      \
		}                        \
		printf(__VA_ARGS__);     \
		printf("\n");            \
		fflush(stdout);          \
	} while (0)

static void log_fn(void *ud, int prio, const char *msg)
{
	(void)ud;
	fprintf(stderr, "tpcheck: <%d> %s\n", prio, msg);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One FILL request of size bytes; returns 0 when the bytes are right. */
static int fill_once(struct fv_tp_client *cl, uint32_t size, uint64_t seed, uint8_t *want)
{
	int err;
	struct fv_tp_buf *b = fv_tp_bulk_get(cl, size ? size : 1, &err);
	if (!b)
		return err;
	uint8_t req[13], rep[64];
	req[0] = FV_FAB_FILL;
	fv_put_le32(req + 1, size);
	fv_put_le64(req + 5, seed);
	struct fv_tp_call c = {.req = req,
			       .req_len = sizeof req,
			       .idempotent = true,
			       .reply = rep,
			       .reply_cap = sizeof rep,
			       .bulk = b,
			       .bulk_cap = size};
	int rc = fv_tp_call(cl, &c);
	if (rc == 0) {
		fv_fab_pattern(seed, want, size);
		if (c.bulk_len != size || memcmp(want, b->p, size))
			rc = -EBADMSG;
	}
	fv_tp_bulk_put(cl, b);
	return rc;
}

static void check_sizes(struct fv_tp_client *cl)
{
	static const uint32_t ctl_sizes[] = {0, 1, 4096, 65536};
	uint8_t *req = malloc(65536), *rep = malloc(65536), *want = malloc(16u << 20);
	for (size_t i = 0; i < sizeof ctl_sizes / sizeof ctl_sizes[0]; i++) {
		uint32_t n = ctl_sizes[i];
		for (uint32_t k = 0; k < n; k++)
			req[k] = (uint8_t)(k * 7 + 3);
		if (n)
			req[0] = FV_FAB_ECHO;
		struct fv_tp_call c = {.req = req, .req_len = n, .reply = rep, .reply_cap = 65536};
		int rc = fv_tp_call(cl, &c);
		/* an empty request is an unknown op: empty reply */
		bool ok = rc == 0 && c.reply_len == n && (!n || !memcmp(req, rep, n));
		CHECK(ok, "control message of %u bytes echoed (%s)", n, rc ? strerror(-rc) : "ok");
	}
	static const uint32_t bulk_sizes[] = {0, 1, 4096, 1u << 20, 16u << 20};
	for (size_t i = 0; i < sizeof bulk_sizes / sizeof bulk_sizes[0]; i++) {
		int rc = fill_once(cl, bulk_sizes[i], 1000 + i, want);
		CHECK(rc == 0, "bulk reply of %u bytes, every byte right (%s)", bulk_sizes[i],
		      rc ? strerror(-rc) : "ok");
	}
	/* a reply larger than the caller's buffer is an error, not an overflow */
	struct fv_tp_call c = {.req = req, .req_len = 100, .reply = rep, .reply_cap = 10};
	req[0] = FV_FAB_ECHO;
	int rc = fv_tp_call(cl, &c);
	CHECK(rc == -EMSGSIZE, "reply larger than the reply buffer gives EMSGSIZE (%s)", strerror(-rc));
	free(req);
	free(rep);
	free(want);
}

/* ---- many in flight ---------------------------------------------------- */

struct many {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int left, bad;
};

struct mcall {
	struct fv_tp_call call;
	struct many *m;
	uint8_t req[13], rep[16];
	struct fv_tp_buf *b;
	uint64_t seed;
};

static void many_done(struct fv_tp_call *call)
{
	struct mcall *mc = call->ud;
	uint8_t want[4096];
	bool ok = call->status == 0 && call->bulk_len == 4096;
	if (ok) {
		fv_fab_pattern(mc->seed, want, sizeof want);
		ok = !memcmp(want, mc->b->p, sizeof want);
	}
	pthread_mutex_lock(&mc->m->mu);
	mc->m->bad += !ok;
	if (--mc->m->left == 0)
		pthread_cond_signal(&mc->m->cv);
	pthread_mutex_unlock(&mc->m->mu);
}

static void check_inflight(struct fv_tp_client *cl, int n)
{
	struct many m = {.left = n};
	pthread_mutex_init(&m.mu, NULL);
	pthread_cond_init(&m.cv, NULL);
	struct mcall *v = calloc((size_t)n, sizeof *v);
	int err, got = 0;
	for (int i = 0; i < n; i++) {
		v[i].m = &m;
		v[i].seed = 5000 + (uint64_t)i;
		if (!(v[i].b = fv_tp_bulk_get(cl, 4096, &err)))
			break;
		got++;
	}
	if (got < n) {
		CHECK(0, "%d bulk buffers for the in-flight test (%s)", n, strerror(-err));
		goto out;
	}
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		struct mcall *mc = &v[i];
		mc->req[0] = FV_FAB_FILL;
		fv_put_le32(mc->req + 1, 4096);
		fv_put_le64(mc->req + 5, mc->seed);
		mc->call = (struct fv_tp_call){.req = mc->req,
					       .req_len = 13,
					       .idempotent = true,
					       .reply = mc->rep,
					       .reply_cap = sizeof mc->rep,
					       .bulk = mc->b,
					       .bulk_cap = 4096,
					       .done = many_done,
					       .ud = mc};
		if (fv_tp_submit(cl, &mc->call) < 0) {
			pthread_mutex_lock(&m.mu);
			m.bad++;
			m.left--;
			pthread_mutex_unlock(&m.mu);
		}
	}
	pthread_mutex_lock(&m.mu);
	while (m.left)
		pthread_cond_wait(&m.cv, &m.mu);
	pthread_mutex_unlock(&m.mu);
	CHECK(m.bad == 0, "%d requests submitted at once: all answered, bytes right (%d bad, %.2f s)", n,
	      m.bad, now_s() - t0);
out:
	for (int i = 0; i < got; i++)
		fv_tp_bulk_put(cl, v[i].b);
	free(v);
}

/* ---- failover ---------------------------------------------------------- */

struct load {
	struct fv_tp_client *cl;
	atomic_bool stop;
	_Atomic int failed, bad, done;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int active;
};

struct lcall {
	struct fv_tp_call call;
	struct load *ld;
	struct fv_tp_buf *b;
	uint8_t req[13], rep[16];
	uint64_t seed;
	uint8_t *want;
};

#define LOAD_SIZE (256u << 10)

static void load_done(struct fv_tp_call *call);

static void load_submit(struct lcall *lc)
{
	static _Atomic uint64_t seq = 1;
	lc->seed = atomic_fetch_add(&seq, 1);
	lc->req[0] = FV_FAB_FILL;
	fv_put_le32(lc->req + 1, LOAD_SIZE);
	fv_put_le64(lc->req + 5, lc->seed);
	lc->call = (struct fv_tp_call){.req = lc->req,
				       .req_len = 13,
				       .idempotent = true,
				       .reply = lc->rep,
				       .reply_cap = sizeof lc->rep,
				       .bulk = lc->b,
				       .bulk_cap = LOAD_SIZE,
				       .done = load_done,
				       .ud = lc};
	if (fv_tp_submit(lc->ld->cl, &lc->call) < 0)
		atomic_fetch_add(&lc->ld->failed, 1);
}

static void load_done(struct fv_tp_call *call)
{
	struct lcall *lc = call->ud;
	struct load *ld = lc->ld;
	if (call->status) {
		fprintf(stderr, "tpcheck: request failed: %s\n", strerror(-call->status));
		atomic_fetch_add(&ld->failed, 1);
	} else {
		fv_fab_pattern(lc->seed, lc->want, LOAD_SIZE);
		if (call->bulk_len != LOAD_SIZE || memcmp(lc->want, lc->b->p, LOAD_SIZE))
			atomic_fetch_add(&ld->bad, 1);
		atomic_fetch_add(&ld->done, 1);
	}
	if (!atomic_load(&ld->stop)) {
		load_submit(lc);
		return;
	}
	pthread_mutex_lock(&ld->mu);
	ld->active--;
	pthread_cond_signal(&ld->cv);
	pthread_mutex_unlock(&ld->mu);
}

static void path_stats(struct fv_tp_client *cl, int i, struct fv_tp_path_stats *st)
{
	struct fv_tp_path_stats v[16];
	fv_tp_client_stats(cl, v, 16);
	*st = v[i];
}

/* Wait up to secs for path i to be up (want true) or down (false). */
static bool wait_path(struct fv_tp_client *cl, int i, bool want, double secs)
{
	double end = now_s() + secs;
	struct fv_tp_path_stats st;
	do {
		path_stats(cl, i, &st);
		if (st.up == want)
			return true;
		usleep(20000);
	} while (now_s() < end);
	return false;
}

static void check_failover(struct fv_tp_client *cl, int npaths, int di, const char *down, const char *up,
			   int dead_ms)
{
	enum { N = 32 };
	struct load ld = {.cl = cl, .active = N};
	pthread_mutex_init(&ld.mu, NULL);
	pthread_cond_init(&ld.cv, NULL);
	struct lcall v[N];
	int err;
	for (int i = 0; i < N; i++) {
		v[i] = (struct lcall){
			.ld = &ld, .want = malloc(LOAD_SIZE), .b = fv_tp_bulk_get(cl, LOAD_SIZE, &err)};
		if (!v[i].b || !v[i].want) {
			CHECK(0, "buffers for the failover load");
			return;
		}
	}
	for (int i = 0; i < npaths; i++)
		if (!wait_path(cl, i, true, 10))
			CHECK(0, "path %d up before the failover test", i);
	for (int i = 0; i < N; i++)
		load_submit(&v[i]);
	usleep(1000000);
	struct fv_tp_path_stats before;
	path_stats(cl, di, &before);
	CHECK(before.requests > 0, "path %d carries requests before it is taken down (%llu)", di,
	      (unsigned long long)before.requests);
	int done0 = atomic_load(&ld.done);
	double t_down = now_s();
	if (system(down) != 0)
		CHECK(0, "run '%s'", down);
	bool went_down = wait_path(cl, di, false, (dead_ms ? dead_ms : 800) / 1000.0 + 4);
	double detect = now_s() - t_down;
	CHECK(went_down, "path %d declared dead %.2f s after '%s'", di, detect, down);
	usleep(1500000);
	int done1 = atomic_load(&ld.done);
	CHECK(done1 > done0 + 10, "requests kept completing while the path was down (%d more)",
	      done1 - done0);
	if (system(up) != 0)
		CHECK(0, "run '%s'", up);
	bool came_back = wait_path(cl, di, true, 10);
	CHECK(came_back, "path %d up again after '%s'", di, up);
	struct fv_tp_path_stats mid;
	path_stats(cl, di, &mid);
	usleep(1500000);
	struct fv_tp_path_stats after;
	path_stats(cl, di, &after);
	CHECK(after.requests > mid.requests, "path %d carries requests again (%llu new)", di,
	      (unsigned long long)(after.requests - mid.requests));
	atomic_store(&ld.stop, true);
	pthread_mutex_lock(&ld.mu);
	while (ld.active)
		pthread_cond_wait(&ld.cv, &ld.mu);
	pthread_mutex_unlock(&ld.mu);
	CHECK(atomic_load(&ld.failed) == 0 && atomic_load(&ld.bad) == 0,
	      "failover: %d requests, %d failed, %d with wrong bytes", atomic_load(&ld.done),
	      atomic_load(&ld.failed), atomic_load(&ld.bad));
	for (int i = 0; i < N; i++) {
		fv_tp_bulk_put(cl, v[i].b);
		free(v[i].want);
	}
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"key", required_argument, NULL, 'k'},
					   {"peers", required_argument, NULL, 'p'},
					   {"mode", required_argument, NULL, 'm'},
					   {"inflight", required_argument, NULL, 'n'},
					   {"down", required_argument, NULL, 'd'},
					   {"up", required_argument, NULL, 'u'},
					   {"down-path", required_argument, NULL, 'i'},
					   {"dead-ms", required_argument, NULL, 'D'},
					   {NULL, 0, NULL, 0}};
	const char *keyf = NULL, *peersf = NULL, *down = NULL, *up = NULL;
	int mode = 0, inflight = 3000, di = 1, dead_ms = 0, opt;
	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case 'k':
			keyf = optarg;
			break;
		case 'p':
			peersf = optarg;
			break;
		case 'm':
			mode = !strcmp(optarg, "encrypt") ? FV_MODE_ENCRYPT : FV_MODE_INTEGRITY;
			break;
		case 'n':
			inflight = atoi(optarg);
			break;
		case 'd':
			down = optarg;
			break;
		case 'u':
			up = optarg;
			break;
		case 'i':
			di = atoi(optarg);
			break;
		case 'D':
			dead_ms = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	struct fv_tp_path paths[16];
	int np = 0;
	struct fv_err e = {0};
	for (; optind < argc && np < 16; optind++)
		if (fv_tp_path_parse(argv[optind], FV_TP_TCP, &paths[np++], &e) < 0) {
			fprintf(stderr, "tpcheck: %s\n", e.msg);
			return 2;
		}
	struct fv_tp_node_key key;
	struct fv_tp_peers peers = {0};
	if (!keyf || !peersf || !np || fv_tp_key_load(keyf, &key, &e) < 0 ||
	    fv_tp_peers_load(peersf, &peers, &e) < 0) {
		fprintf(stderr, "tpcheck: %s\n",
			e.msg[0] ? e.msg : "usage: tpcheck --key F --peers F PATH...");
		return 2;
	}
	struct fv_tp_client_opts o = {.key = &key,
				      .peers = &peers,
				      .paths = paths,
				      .npaths = (size_t)np,
				      .mode = mode,
				      .dead_ms = dead_ms,
				      .log = {log_fn, NULL}};
	struct fv_tp_client *cl;
	if (fv_tp_client_open(&o, 20000, &cl, &e) < 0) {
		fprintf(stderr, "tpcheck: %s\n", e.msg);
		return 1;
	}
	for (int i = 0; i < np; i++)
		CHECK(wait_path(cl, i, true, 10), "path %d up", i);
	check_sizes(cl);
	check_inflight(cl, inflight);
	if (down && up && di < np)
		check_failover(cl, np, di, down, up, dead_ms);
	fv_tp_client_close(cl);
	fv_tp_peers_free(&peers);
	printf("%s: %d failed\n", failures ? "FAILED" : "passed", failures);
	return failures ? 1 : 0;
}
