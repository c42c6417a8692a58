/* fabvault fabric serve|ping|bench: the transport between two nodes,
 * tested end to end (docs/fabvault.1.md, FABRIC). The requests are those of
 * fabric_proto.h. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../transport/frame.h"
#include "../transport/tp.h"
#include "cli.h"
#include "fabric_proto.h"
#include "opts.h"

enum {
	OPT_CONF = 0x200,
	OPT_KEY,
	OPT_PEERS,
	OPT_LISTEN,
	OPT_MODE,
	OPT_COUNT,
	OPT_INTERVAL,
	OPT_SIZE,
	OPT_SECONDS,
	OPT_INFLIGHT,
	OPT_THREADS,
	OPT_REQUIRE_ENC,
	OPT_PORT_FILE,
	OPT_TIMEOUT,
	OPT_VERIFY,
	OPT_DEAD,
	OPT_POLL,
	OPT_SPIN,
};

#define MAX_PATHS 16

static const char fabric_help[] =
	"Usage: fabvault fabric serve --listen PATH[,PATH...] [OPTIONS]\n"
	"       fabvault fabric ping PATH[,PATH...] [OPTIONS]\n"
	"       fabvault fabric bench PATH[,PATH...] [OPTIONS]\n"
	"Test the fabric between two nodes through fabvault's own transport.\n"
	"  serve  answer ping and bench requests until SIGINT/SIGTERM\n"
	"  ping   round-trip latency of each path: min, p50, p99, max\n"
	"  bench  bulk bandwidth of each path alone, then of all paths together\n"
	"A PATH is tcp://HOST[:PORT][?from=LOCAL] or rdma://HOST[:PORT][?from=LOCAL]\n"
	"(default port 7420; a bare HOST means tcp). Several paths to one peer are\n"
	"given comma-separated or as several arguments.\n\n"
	"Options:\n"
	"      --conf-dir DIR    node.key and authorized_peers live here (default /etc/fabvault)\n"
	"      --key FILE        this node's key (default DIR/node.key)\n"
	"      --peers FILE      keys accepted from the peer (default DIR/authorized_peers)\n"
	"      --mode MODE       integrity or encrypt (default: encrypt on TCP, integrity on RDMA)\n"
	"      --timeout MS      how long to wait for a path to come up (default 5000)\n"
	"      --dead-time MS    silence after which a path is declared dead (default 800)\n"
	"      --poll-us US      RDMA polling mode: poll the completion queue this long\n"
	"                        before sleeping (default 0: event-driven)\n"
	"  serve:\n"
	"      --listen PATH     address to listen on (repeatable); required\n"
	"      --require-encrypt refuse integrity-only sessions (answer them with encrypt)\n"
	"      --threads N       worker threads (default: online CPUs)\n"
	"      --port-file FILE  write the bound ports there, one per line (for --listen ...:0)\n"
	"  ping:\n"
	"      --count N         requests per path (default 10)\n"
	"      --interval MS     pause between requests (default 200; 0: back to back)\n"
	"      --size BYTES      request size (default 64)\n"
	"      --spin-us US      busy-wait this long for a quick reply before sleeping\n"
	"                        (default 50; 0: always sleep)\n"
	"  bench:\n"
	"      --seconds S       duration of each measurement (default 5)\n"
	"      --size BYTES      bulk bytes per request (default 1048576)\n"
	"      --inflight N      requests in flight (default 16)\n"
	"      --verify          server fills a pattern the client checks (slower)\n"
	"  common:\n"
	"      --json            results as JSON on stdout\n"
	"  -q, --quiet / -v, --verbose, -h, --help\n\n"
	"Exit status: 0 ok, 1 error (lost requests, wrong data), 2 usage, 11 a path\n"
	"could not be reached, 12 a key was refused (by either side).\n";

struct fab {
	struct cli *c;
	const char *conf, *keyfile, *peersfile, *port_file;
	struct fv_tp_path paths[MAX_PATHS], listen[MAX_PATHS];
	size_t npaths, nlisten;
	int mode, timeout_ms, dead_ms, threads, count, interval_ms, inflight, poll_us, spin_us;
	double seconds;
	uint64_t size;
	bool require_enc, verify, size_set;
	struct fv_tp_node_key key;
	struct fv_tp_peers peers;
};

static void log_fn(void *ud, int prio, const char *msg)
{
	struct cli *c = ud;
	fv_log(&c->log, prio, "%s", msg);
}

static int add_paths(struct fab *f, const char *arg, struct fv_tp_path *v, size_t *n)
{
	char buf[1024];
	snprintf(buf, sizeof buf, "%s", arg);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct fv_err e = {0};
		if (*n == MAX_PATHS)
			return cli_usage(f->c, "fabric", "at most %d paths", MAX_PATHS);
		if (fv_tp_path_parse(tok, FV_TP_TCP, &v[*n], &e) < 0)
			return cli_usage(f->c, "fabric", "%s", e.msg);
		(*n)++;
	}
	return -1;
}

static int exit_for(int code)
{
	switch (fv_tp_err_kind(code)) {
	case FV_TP_ERR_AUTH:
		return FV_EXIT_AUTH;
	case FV_TP_ERR_UNREACH:
		return FV_EXIT_UNREACH;
	default:
		return FV_EXIT_ERROR;
	}
}

static int load_keys(struct fab *f)
{
	char kp[4096], pp[4096];
	struct fv_err e = {0};
	snprintf(kp, sizeof kp, "%s/node.key", f->conf);
	snprintf(pp, sizeof pp, "%s/authorized_peers", f->conf);
	if (fv_tp_key_load(f->keyfile ? f->keyfile : kp, &f->key, &e) < 0 ||
	    fv_tp_peers_load(f->peersfile ? f->peersfile : pp, &f->peers, &e) < 0) {
		cli_fail(f->c, &e, false); /* a bad key file is an error (1), not usage */
		return FV_EXIT_ERROR;
	}
	if (!f->peers.n) {
		fv_log(&f->c->log, LOG_ERR, "%s lists no peer: add the peer's node.pub to it",
		       f->peersfile ? f->peersfile : pp);
		return FV_EXIT_ERROR;
	}
	return 0;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- serve ------------------------------------------------------------ */

struct slow_reply {
	struct fv_tp_req *r;
	uint32_t ms;
};

static void *slow_main(void *arg)
{
	struct slow_reply *s = arg;
	usleep(s->ms * 1000u);
	fv_tp_reply(s->r, NULL, 0, 0);
	free(s);
	return NULL;
}

static void handler(void *ud, struct fv_tp_req *r)
{
	(void)ud;
	uint32_t len;
	const uint8_t *q = fv_tp_req_data(r, &len);
	struct fv_rd rd;
	fv_rd_init(&rd, q, len);
	uint8_t op = fv_rd_u8(&rd);
	if (op == FV_FAB_FILL || op == FV_FAB_SINK) {
		uint32_t size = fv_rd_u32(&rd);
		uint64_t seed = op == FV_FAB_FILL ? fv_rd_u64(&rd) : 0;
		uint8_t *b = NULL;
		if (!fv_rd_ok(&rd) || size > fv_tp_req_bulk_cap(r) || !(b = fv_tp_req_bulk(r, size))) {
			fv_tp_reply(r, NULL, 0, 0);
			return;
		}
		if (op == FV_FAB_FILL)
			fv_fab_pattern(seed, b, size);
		fv_tp_reply(r, q, len, size);
		return;
	}
	if (op == FV_FAB_SLOW) {
		uint32_t ms = fv_rd_u32(&rd);
		struct slow_reply *s = malloc(sizeof *s);
		pthread_t t;
		if (fv_rd_ok(&rd) && ms <= 60000 && s) {
			s->r = r;
			s->ms = ms;
			if (pthread_create(&t, NULL, slow_main, s) == 0) {
				pthread_detach(t);
				return;
			}
		}
		free(s);
		fv_tp_reply(r, NULL, 0, 0);
		return;
	}
	fv_tp_reply(r, op == FV_FAB_ECHO ? q : NULL, op == FV_FAB_ECHO ? len : 0, 0);
}

static int serve(struct fab *f)
{
	if (!f->nlisten)
		return cli_usage(f->c, "fabric", "serve needs --listen PATH");
	int rc = load_keys(f);
	if (rc)
		return rc;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* the threads we start inherit it */
	struct fv_tp_server_opts o = {.key = &f->key,
				      .peers = &f->peers,
				      .listen = f->listen,
				      .nlisten = f->nlisten,
				      .require_encrypt = f->require_enc,
				      .threads = f->threads,
				      .poll_us = f->poll_us,
				      .handler = handler,
				      .inline_handler =
					      true, /* FV_FAB_SLOW answers from a thread of its own */
				      .log = {log_fn, f->c}};
	struct fv_tp_server *s;
	struct fv_err e = {0};
	if (fv_tp_server_open(&o, &s, &e) < 0)
		return cli_fail(f->c, &e, false);
	FILE *pf = f->port_file ? fopen(f->port_file, "w") : NULL;
	for (size_t i = 0; i < f->nlisten; i++) {
		char name[128];
		struct fv_tp_path p = f->listen[i];
		p.port = fv_tp_server_port(s, i);
		fv_log(&f->c->log, LOG_NOTICE, "listening on %s", fv_tp_path_str(&p, name, sizeof name));
		if (pf)
			fprintf(pf, "%d\n", p.port);
	}
	if (pf)
		fclose(pf);
	int sig;
	sigwait(&set, &sig);
	fv_log(&f->c->log, LOG_NOTICE, "stopping (signal %d)", sig);
	fv_tp_server_close(s);
	return FV_EXIT_OK;
}

/* ---- clients ---------------------------------------------------------- */

static int open_client(struct fab *f, const struct fv_tp_path *paths, size_t n, struct fv_tp_client **cl)
{
	struct fv_tp_client_opts o = {.key = &f->key,
				      .peers = &f->peers,
				      .paths = paths,
				      .npaths = n,
				      .mode = f->mode,
				      .dead_ms = f->dead_ms,
				      .poll_us = f->poll_us,
				      .spin_us = f->spin_us,
				      .log = {log_fn, f->c}};
	struct fv_err e = {0};
	int rc = fv_tp_client_open(&o, f->timeout_ms, cl, &e);
	if (rc < 0) {
		fv_log(&f->c->log, LOG_ERR, "%s", e.msg);
		return exit_for(rc);
	}
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int ping(struct fab *f)
{
	int worst = 0;
	bool json = f->c->json;
	json_object *arr = json_object_new_array();
	if (f->size > FV_FRAME_MAX_CTL)
		return cli_usage(f->c, "fabric", "--size for ping is at most %u", FV_FRAME_MAX_CTL);
	uint8_t *req = calloc(1, f->size > 0 ? f->size : 1), *rep = malloc(FV_FRAME_MAX_CTL);
	int64_t *rtt = calloc((size_t)f->count, sizeof *rtt);
	if (!req || !rep || !rtt) {
		free(req);
		free(rep);
		free(rtt);
		json_object_put(arr);
		return FV_EXIT_ERROR;
	}
	req[0] = FV_FAB_ECHO;
	if (!json)
		printf("%-34s %5s %5s %9s %9s %9s %9s\n", "path", "sent", "ok", "min us", "p50 us", "p99 us",
		       "max us");
	for (size_t i = 0; i < f->npaths; i++) {
		char name[128];
		fv_tp_path_str(&f->paths[i], name, sizeof name);
		struct fv_tp_client *cl;
		int rc = open_client(f, &f->paths[i], 1, &cl);
		json_object *j = json_object_new_object();
		json_object_object_add(j, "path", json_object_new_string(name));
		if (rc) {
			worst = worst ? worst : rc;
			const char *what = rc == FV_EXIT_AUTH ? "key refused" : "unreachable";
			json_object_object_add(j, "error", json_object_new_string(what));
			json_object_array_add(arr, j);
			if (!json)
				printf("%-34s %s\n", name, what);
			continue;
		}
		int ok = 0;
		for (int k = 0; k < f->count; k++) {
			struct fv_tp_call call = {.req = req,
						  .req_len = (uint32_t)(f->size ? f->size : 1),
						  .idempotent = true,
						  .reply = rep,
						  .reply_cap = FV_FRAME_MAX_CTL};
			int64_t t0 = now_ns();
			rc = fv_tp_call(cl, &call);
			int64_t t1 = now_ns();
			if (rc == 0 && call.reply_len == call.req_len &&
			    memcmp(rep, req, call.reply_len) == 0)
				rtt[ok++] = (t1 - t0) / 1000;
			else
				fv_log(&f->c->log, LOG_WARNING, "%s: request %d failed: %s", name, k,
				       rc ? strerror(-rc) : "wrong echo");
			if (f->interval_ms && k + 1 < f->count)
				usleep((useconds_t)f->interval_ms * 1000);
		}
		fv_tp_client_close(cl);
		if (ok < f->count && !worst)
			worst = FV_EXIT_ERROR;
		qsort(rtt, (size_t)ok, sizeof *rtt, cmp_i64);
		int64_t mn = ok ? rtt[0] : 0, mx = ok ? rtt[ok - 1] : 0;
		int64_t p50 = ok ? rtt[(ok - 1) / 2] : 0, p99 = ok ? rtt[(size_t)((ok - 1) * 99 / 100)] : 0;
		json_object_object_add(j, "sent", json_object_new_int(f->count));
		json_object_object_add(j, "ok", json_object_new_int(ok));
		json_object_object_add(j, "min_us", json_object_new_int64(mn));
		json_object_object_add(j, "p50_us", json_object_new_int64(p50));
		json_object_object_add(j, "p99_us", json_object_new_int64(p99));
		json_object_object_add(j, "max_us", json_object_new_int64(mx));
		json_object_array_add(arr, j);
		if (!json)
			printf("%-34s %5d %5d %9lld %9lld %9lld %9lld\n", name, f->count, ok, (long long)mn,
			       (long long)p50, (long long)p99, (long long)mx);
	}
	if (json)
		puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
	json_object_put(arr);
	free(req);
	free(rep);
	free(rtt);
	return worst;
}

/* ---- bench ------------------------------------------------------------ */

struct slot {
	struct fv_tp_call call;
	struct run *run;
	struct fv_tp_buf *buf;
	uint8_t *want; /* --verify: the expected bytes */
	uint8_t req[16];
	uint8_t rep[64];
	uint64_t seed;
};

struct run {
	struct fv_tp_client *cl;
	struct fab *f;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int active;
	atomic_bool stop;
	_Atomic uint64_t bytes, done, errors, bad;
	atomic_uint_fast64_t seq;
};

static void bench_done(struct fv_tp_call *call);

static void bench_submit(struct slot *s)
{
	struct run *r = s->run;
	s->seed = atomic_fetch_add(&r->seq, 1);
	s->req[0] = r->f->verify ? FV_FAB_FILL : FV_FAB_SINK;
	fv_put_le32(s->req + 1, (uint32_t)r->f->size);
	fv_put_le64(s->req + 5, s->seed);
	s->call = (struct fv_tp_call){.req = s->req,
				      .req_len = 13,
				      .idempotent = true,
				      .reply = s->rep,
				      .reply_cap = sizeof s->rep,
				      .bulk = s->buf,
				      .bulk_cap = (uint32_t)r->f->size,
				      .done = bench_done,
				      .ud = s};
	if (fv_tp_submit(r->cl, &s->call) < 0) {
		atomic_fetch_add(&r->errors, 1);
		pthread_mutex_lock(&r->mu);
		r->active--;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
}

static void bench_done(struct fv_tp_call *call)
{
	struct slot *s = call->ud;
	struct run *r = s->run;
	if (call->status || call->bulk_len != r->f->size) {
		atomic_fetch_add(&r->errors, 1);
	} else {
		if (s->want) {
			fv_fab_pattern(s->seed, s->want, r->f->size);
			if (memcmp(s->want, s->buf->p, r->f->size) != 0)
				atomic_fetch_add(&r->bad, 1);
		}
		atomic_fetch_add(&r->bytes, call->bulk_len);
		atomic_fetch_add(&r->done, 1);
	}
	if (!atomic_load(&r->stop)) {
		bench_submit(s);
		return;
	}
	pthread_mutex_lock(&r->mu);
	r->active--;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* One measurement on the given paths: fills j. Returns an exit status. */
static int bench_run(struct fab *f, const struct fv_tp_path *paths, size_t n, const char *label,
		     json_object *j)
{
	struct run r = {.f = f};
	int rc = open_client(f, paths, n, &r.cl);
	json_object_object_add(j, "paths", json_object_new_string(label));
	if (rc) {
		const char *what = rc == FV_EXIT_AUTH ? "key refused" : "unreachable";
		json_object_object_add(j, "error", json_object_new_string(what));
		if (!f->c->json)
			printf("%-50s %s\n", label, what);
		return rc;
	}
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	struct slot *slots = calloc((size_t)f->inflight, sizeof *slots);
	int st = FV_EXIT_OK, made = 0;
	for (int i = 0; slots && i < f->inflight; i++, made++) {
		int err;
		slots[i].run = &r;
		if (!(slots[i].buf = fv_tp_bulk_get(r.cl, f->size, &err)) ||
		    (f->verify && !(slots[i].want = malloc(f->size))))
			break;
	}
	if (!slots || made < f->inflight) {
		fv_log(&f->c->log, LOG_ERR, "cannot allocate %d bulk buffers of %llu bytes", f->inflight,
		       (unsigned long long)f->size);
		st = FV_EXIT_ERROR;
		goto out;
	}
	int64_t t0 = now_ns();
	r.active = f->inflight;
	for (int i = 0; i < f->inflight; i++)
		bench_submit(&slots[i]);
	usleep((useconds_t)(f->seconds * 1e6));
	atomic_store(&r.stop, true);
	pthread_mutex_lock(&r.mu);
	while (r.active > 0)
		pthread_cond_wait(&r.cv, &r.mu);
	pthread_mutex_unlock(&r.mu);
	double secs = (double)(now_ns() - t0) / 1e9;
	uint64_t bytes = atomic_load(&r.bytes), done = atomic_load(&r.done);
	uint64_t errors = atomic_load(&r.errors), bad = atomic_load(&r.bad);
	json_object_object_add(j, "seconds", json_object_new_double(secs));
	json_object_object_add(j, "requests", json_object_new_uint64(done));
	json_object_object_add(j, "bytes", json_object_new_uint64(bytes));
	json_object_object_add(j, "gbytes_per_s", json_object_new_double((double)bytes / secs / 1e9));
	json_object_object_add(j, "gbits_per_s", json_object_new_double((double)bytes * 8 / secs / 1e9));
	json_object_object_add(j, "errors", json_object_new_uint64(errors));
	json_object_object_add(j, "verify_failures", json_object_new_uint64(bad));
	struct fv_tp_path_stats ps[MAX_PATHS];
	size_t np = fv_tp_client_stats(r.cl, ps, MAX_PATHS);
	json_object *pa = json_object_new_array();
	for (size_t i = 0; i < np && i < MAX_PATHS; i++) {
		json_object *pj = json_object_new_object();
		json_object_object_add(pj, "path", json_object_new_string(ps[i].name));
		json_object_object_add(pj, "requests", json_object_new_uint64(ps[i].requests));
		json_object_object_add(pj, "bytes", json_object_new_uint64(ps[i].bytes));
		json_object_object_add(pj, "failures", json_object_new_uint64(ps[i].failures));
		json_object_array_add(pa, pj);
	}
	json_object_object_add(j, "per_path", pa);
	if (!f->c->json)
		printf("%-50s %8.2f GB/s %8.1f Gb/s %10llu req %6llu err%s\n", label,
		       (double)bytes / secs / 1e9, (double)bytes * 8 / secs / 1e9, (unsigned long long)done,
		       (unsigned long long)errors, bad ? "  DATA MISMATCH" : "");
	if (errors || bad)
		st = FV_EXIT_ERROR;
out:
	for (int i = 0; slots && i < f->inflight; i++) {
		if (slots[i].buf)
			fv_tp_bulk_put(r.cl, slots[i].buf);
		free(slots[i].want);
	}
	free(slots);
	fv_tp_client_close(r.cl);
	pthread_mutex_destroy(&r.mu);
	pthread_cond_destroy(&r.cv);
	return st;
}

static int bench(struct fab *f)
{
	if (f->size == 0 || f->size > FV_FRAME_MAX_BULK)
		return cli_usage(f->c, "fabric", "--size must be 1 to %u bytes", FV_FRAME_MAX_BULK);
	if (f->inflight < 1 || f->inflight > 1024)
		return cli_usage(f->c, "fabric", "--inflight must be 1 to 1024");
	json_object *arr = json_object_new_array();
	int worst = 0;
	char label[1024];
	for (size_t i = 0; i < f->npaths; i++) {
		json_object *j = json_object_new_object();
		int rc = bench_run(f, &f->paths[i], 1, fv_tp_path_str(&f->paths[i], label, sizeof label), j);
		json_object_array_add(arr, j);
		worst = worst ? worst : rc;
	}
	if (f->npaths > 1) {
		snprintf(label, sizeof label, "all %zu paths", f->npaths);
		json_object *j = json_object_new_object();
		int rc = bench_run(f, f->paths, f->npaths, label, j);
		json_object_array_add(arr, j);
		worst = worst ? worst : rc;
	}
	if (f->c->json)
		puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
	json_object_put(arr);
	return worst;
}

static int parse_int(struct fab *f, const char *opt, const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return cli_usage(f->c, "fabric", "%s wants a whole number from %ld to %ld, not '%s'", opt, lo,
				 hi, s);
	*out = v;
	return -1;
}

int cmd_fabric(struct cli *c, int argc, char **argv)
{
	static const struct option lo[] = {{"conf-dir", required_argument, NULL, OPT_CONF},
					   {"key", required_argument, NULL, OPT_KEY},
					   {"peers", required_argument, NULL, OPT_PEERS},
					   {"listen", required_argument, NULL, OPT_LISTEN},
					   {"mode", required_argument, NULL, OPT_MODE},
					   {"count", required_argument, NULL, OPT_COUNT},
					   {"interval", required_argument, NULL, OPT_INTERVAL},
					   {"size", required_argument, NULL, OPT_SIZE},
					   {"seconds", required_argument, NULL, OPT_SECONDS},
					   {"inflight", required_argument, NULL, OPT_INFLIGHT},
					   {"threads", required_argument, NULL, OPT_THREADS},
					   {"require-encrypt", no_argument, NULL, OPT_REQUIRE_ENC},
					   {"port-file", required_argument, NULL, OPT_PORT_FILE},
					   {"timeout", required_argument, NULL, OPT_TIMEOUT},
					   {"verify", no_argument, NULL, OPT_VERIFY},
					   {"dead-time", required_argument, NULL, OPT_DEAD},
					   {"poll-us", required_argument, NULL, OPT_POLL},
					   {"spin-us", required_argument, NULL, OPT_SPIN},
					   FV_COMMON_LONGOPTS};
	struct fab f = {.c = c,
			.conf = "/etc/fabvault",
			.timeout_ms = 5000,
			.count = 10,
			.interval_ms = 200,
			.inflight = 16,
			.seconds = 5};
	int opt, rc;
	long v = 0;
	char *end;
	while ((opt = getopt_long(argc, argv, FV_COMMON_SHORTOPTS, lo, NULL)) != -1) {
		rc = -1;
		switch (opt) {
		case OPT_CONF:
			f.conf = optarg;
			break;
		case OPT_KEY:
			f.keyfile = optarg;
			break;
		case OPT_PEERS:
			f.peersfile = optarg;
			break;
		case OPT_LISTEN:
			rc = add_paths(&f, optarg, f.listen, &f.nlisten);
			break;
		case OPT_MODE:
			if (!strcmp(optarg, "integrity"))
				f.mode = FV_MODE_INTEGRITY;
			else if (!strcmp(optarg, "encrypt"))
				f.mode = FV_MODE_ENCRYPT;
			else
				rc = cli_usage(c, "fabric", "--mode is integrity or encrypt, not '%s'",
					       optarg);
			break;
		case OPT_COUNT:
			if ((rc = parse_int(&f, "--count", optarg, 1, 1000000, &v)) < 0)
				f.count = (int)v;
			break;
		case OPT_INTERVAL:
			if ((rc = parse_int(&f, "--interval", optarg, 0, 60000, &v)) < 0)
				f.interval_ms = (int)v;
			break;
		case OPT_SIZE:
			if ((rc = parse_int(&f, "--size", optarg, 0, FV_FRAME_MAX_BULK, &v)) < 0) {
				f.size = (uint64_t)v;
				f.size_set = true;
			}
			break;
		case OPT_SECONDS:
			f.seconds = strtod(optarg, &end);
			if (end == optarg || *end || !(f.seconds > 0 && f.seconds <= 3600))
				rc = cli_usage(c, "fabric",
					       "--seconds wants a number from 0 to 3600, not '%s'", optarg);
			break;
		case OPT_INFLIGHT:
			if ((rc = parse_int(&f, "--inflight", optarg, 1, 1024, &v)) < 0)
				f.inflight = (int)v;
			break;
		case OPT_THREADS:
			if ((rc = parse_int(&f, "--threads", optarg, 1, 1024, &v)) < 0)
				f.threads = (int)v;
			break;
		case OPT_TIMEOUT:
			if ((rc = parse_int(&f, "--timeout", optarg, 1, 3600000, &v)) < 0)
				f.timeout_ms = (int)v;
			break;
		case OPT_DEAD:
			if ((rc = parse_int(&f, "--dead-time", optarg, 100, 600000, &v)) < 0)
				f.dead_ms = (int)v;
			break;
		case OPT_POLL:
			if ((rc = parse_int(&f, "--poll-us", optarg, 0, 1000000, &v)) < 0)
				f.poll_us = (int)v;
			break;
		case OPT_SPIN:
			if ((rc = parse_int(&f, "--spin-us", optarg, 0, 1000000, &v)) < 0)
				f.spin_us = v ? (int)v : -1; /* the client's 0 means "default" */
			break;
		case OPT_REQUIRE_ENC:
			f.require_enc = true;
			break;
		case OPT_PORT_FILE:
			f.port_file = optarg;
			break;
		case OPT_VERIFY:
			f.verify = true;
			break;
		default:
			rc = cli_common_opt(c, opt, "fabric", fabric_help);
		}
		if (rc >= 0)
			return rc;
	}
	if (optind >= argc)
		return cli_usage(c, "fabric", "which one: serve, ping or bench?");
	const char *sub = argv[optind++];
	bool is_serve = !strcmp(sub, "serve");
	if (!is_serve && strcmp(sub, "ping") != 0 && strcmp(sub, "bench") != 0)
		return cli_usage(c, "fabric", "unknown fabric command '%s' (serve, ping, bench)", sub);
	for (; optind < argc; optind++) {
		if (is_serve)
			return cli_usage(c, "fabric", "serve takes no PATH argument (use --listen)");
		if ((rc = add_paths(&f, argv[optind], f.paths, &f.npaths)) >= 0)
			return rc;
	}
	if (is_serve) {
		rc = serve(&f);
	} else {
		if (!f.npaths)
			return cli_usage(c, "fabric", "%s needs the peer's PATH", sub);
		if (!f.size_set)
			f.size = strcmp(sub, "ping") == 0 ? 64 : 1048576;
		if ((rc = load_keys(&f)))
			return rc;
		rc = strcmp(sub, "ping") == 0 ? ping(&f) : bench(&f);
	}
	fv_tp_peers_free(&f.peers);
	return rc;
}
