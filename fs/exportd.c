/* fabvault-exportd: serves a directory read-only to fabvault-fs over the
 * transport (docs/fabvault-exportd.8.md). The filesystem side is fs/export.c;
 * this file is options, configuration, keys, the transport server and the
 * request handler that joins the two.
 */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "../transport/tp.h"
#include "export.h"

/* Exit status, docs/fabvault-exportd.8.md "EXIT STATUS". */
enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_EXPORT = 3,
	EXIT_KEYS = 4,
	EXIT_LISTEN = 5,
};

#define MAX_PATHS 16
#define DEFAULT_CONF_DIR "/etc/fabvault"
#define DEFAULT_CONFIG DEFAULT_CONF_DIR "/exportd.conf"
/* Descriptors kept for links, listeners, logs: not given to nodes. */
#define FD_RESERVE 1024
/* Malformed-request log lines per second; the rest are counted. */
#define WARN_PER_SEC 5
/* Seconds without any client before what clients left is forgotten. */
#define DEFAULT_FORGET_AFTER 600
/* Open handles one client may hold (of FV_FS_MAX_HANDLES in all). */
#define DEFAULT_CLIENT_HANDLES 1024

static const char usage_text[] =
	"Usage: fabvault-exportd [--export DIR] [--listen PATH[,PATH...]] [OPTIONS]\n"
	"Serve the directory DIR read-only to fabvault-fs over the fabvault transport,\n"
	"until SIGTERM or SIGINT.\n\n"
	"  -e, --export DIR       directory to export (config: export=)\n"
	"  -l, --listen PATH      tcp://HOST[:PORT] or rdma://HOST[:PORT]; comma-separated or\n"
	"                         repeated (config: listen=; default port 7420)\n"
	"  -c, --config FILE      configuration file (default " DEFAULT_CONFIG " if it exists)\n"
	"      --conf-dir DIR     node.key and authorized_peers (default " DEFAULT_CONF_DIR ";\n"
	"                         config: conf_dir=)\n"
	"      --threads N        worker threads (default: twice the online CPUs, at least 4;\n"
	"                         config: threads=)\n"
	"      --poll-us US       RDMA polling mode: each link polls for requests this long\n"
	"                         before it sleeps (0-1000000, default 0; config: poll_us=)\n"
	"      --require-encrypt  refuse integrity-only sessions (config: require_encrypt=yes)\n"
	"      --handles-per-client N  files one client may hold open at once, 1-4096\n"
	"                         (default 1024; config: handles_per_client=)\n"
	"      --forget-after S   when no client has been connected for S seconds, forget the\n"
	"                         nodes and close the files clients left open (a client that\n"
	"                         crashed never gives them back); 0 never (default 600;\n"
	"                         config: forget_after=)\n"
	"      --port-file FILE   write the bound ports there, one per line (for port 0)\n"
	"  -v, --verbose          log each connection-level event and every refusal\n"
	"  -h, --help             this text\n"
	"  -V, --version          the version\n\n"
	"Exit status: 0 stopped by a signal, 1 error, 2 usage or configuration, 3 export\n"
	"directory missing or unreadable, 4 key files missing or unreadable, 5 cannot listen.\n";

struct cfg {
	char *export_dir, *conf_dir, *port_file, *listen_arg;
	long threads, poll_us;
	long forget_after; /* seconds; 0 never */
	long client_handles;
	bool require_encrypt, verbose;
	/* which of them the command line gave: the config file does not override */
	bool set_export, set_conf_dir, set_listen, set_threads, set_require_encrypt, set_poll_us,
		set_forget_after, set_client_handles;
};

struct exportd {
	struct fv_log log;
	struct fv_export *x;
	pthread_mutex_t warn_mu;
	time_t warn_sec;
	unsigned warn_n, warn_dropped;
};

/* ---- configuration -------------------------------------------------------- */

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "off"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* A whole number from min to max (the ranges of the options below). */
static int parse_num(const char *v, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max)
		return -EINVAL;
	*out = n;
	return 0;
}

#define THREADS_MAX 1024
#define POLL_US_MAX 1000000
#define FORGET_AFTER_MAX 315360000L /* ten years */

static int set_str(char **dst, const char *v)
{
	char *s = strdup(v);
	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

/* inih callback: 1 to go on, 0 for an error at this line. Keys outside any
 * section or in [exportd]. */
static int ini_key(void *user, const char *section, const char *name, const char *value)
{
	struct cfg *c = user;
	if (section[0] && strcmp(section, "exportd") != 0)
		return 0;
	if (!strcmp(name, "export"))
		return c->set_export || set_str(&c->export_dir, value) == 0;
	if (!strcmp(name, "listen"))
		return c->set_listen || set_str(&c->listen_arg, value) == 0;
	if (!strcmp(name, "conf_dir"))
		return c->set_conf_dir || set_str(&c->conf_dir, value) == 0;
	if (!strcmp(name, "threads"))
		return c->set_threads || parse_num(value, 0, THREADS_MAX, &c->threads) == 0;
	if (!strcmp(name, "poll_us"))
		return c->set_poll_us || parse_num(value, 0, POLL_US_MAX, &c->poll_us) == 0;
	if (!strcmp(name, "handles_per_client"))
		return c->set_client_handles ||
		       parse_num(value, 1, FV_FS_MAX_HANDLES, &c->client_handles) == 0;
	if (!strcmp(name, "forget_after"))
		return c->set_forget_after || parse_num(value, 0, FORGET_AFTER_MAX, &c->forget_after) == 0;
	if (!strcmp(name, "require_encrypt"))
		return c->set_require_encrypt || parse_bool(value, &c->require_encrypt) == 0;
	return 0;
}

/* Read the config file: the one given (must exist), or the default one if
 * it exists. Returns an exit status. */
static int read_config(struct exportd *d, struct cfg *c, const char *file)
{
	bool given = file != NULL;
	if (!given) {
		file = DEFAULT_CONFIG;
		if (access(file, F_OK) != 0)
			return EXIT_OK;
	}
	int line = ini_parse(file, ini_key, c);
	if (line < 0) {
		fv_log(&d->log, LOG_ERR, "cannot read configuration %s: %s", file,
		       line == -1 ? strerror(errno) : "out of memory");
		return EXIT_USAGE;
	}
	if (line > 0) {
		fv_log(&d->log, LOG_ERR,
		       "%s:%d: unknown key, bad value or bad section (keys: export, listen, conf_dir, "
		       "threads, poll_us, require_encrypt; section [exportd] or none)",
		       file, line);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static int parse_listen(struct exportd *d, const char *arg, struct fv_tp_path *v, size_t *n)
{
	char buf[2048];
	if (strlen(arg) >= sizeof buf) {
		fv_log(&d->log, LOG_ERR, "listen list too long");
		return EXIT_USAGE;
	}
	snprintf(buf, sizeof buf, "%s", arg);
	for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		struct fv_err e = {0};
		if (*n == MAX_PATHS) {
			fv_log(&d->log, LOG_ERR, "at most %d listen paths", MAX_PATHS);
			return EXIT_USAGE;
		}
		if (fv_tp_path_parse(tok, FV_TP_TCP, &v[*n], &e) < 0) {
			fv_log(&d->log, LOG_ERR, "bad listen path: %s", e.msg);
			return EXIT_USAGE;
		}
		(*n)++;
	}
	if (!*n) {
		fv_log(&d->log, LOG_ERR, "bad listen path: '%s' names no address", arg);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* ---- keys and limits -------------------------------------------------------- */

static int load_keys(struct exportd *d, const char *dir, struct fv_tp_node_key *key,
		     struct fv_tp_peers *peers)
{
	char kp[PATH_MAX], pp[PATH_MAX];
	struct fv_err e = {0};
	snprintf(kp, sizeof kp, "%s/node.key", dir);
	snprintf(pp, sizeof pp, "%s/authorized_peers", dir);
	int rc = fv_tp_key_load(kp, key, &e);
	if (rc < 0) {
		fv_log(&d->log, LOG_ERR, "%s", e.msg); /* it says how to create one */
		return EXIT_KEYS;
	}
	rc = fv_tp_peers_load(pp, peers, &e);
	if (rc < 0) {
		fv_log(&d->log, LOG_ERR, "%s%s", e.msg,
		       rc == -ENOENT ? " (put the node.pub of each fabvault-fs node in it)" : "");
		return EXIT_KEYS;
	}
	if (!peers->n) {
		fv_log(&d->log, LOG_ERR, "%s lists no peer: add the node.pub of each fabvault-fs node to it",
		       pp);
		return EXIT_KEYS;
	}
	return EXIT_OK;
}

/* Every known directory holds a descriptor (files hold none): take all the
 * hard limit allows, and size the directory limit to it. */
static size_t raise_nofile(struct exportd *d)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	rlim_t reserve = FD_RESERVE + FV_FS_MAX_HANDLES;
	rlim_t nodes = rl.rlim_cur > reserve + 1024 ? rl.rlim_cur - reserve : 1024;
	if (nodes > (1u << 24))
		nodes = 1u << 24;
	fv_log(&d->log, LOG_INFO, "descriptor limit %llu: up to %llu known directories",
	       (unsigned long long)rl.rlim_cur, (unsigned long long)nodes);
	return (size_t)nodes;
}

/* ---- requests --------------------------------------------------------------- */

static void tp_log(void *ud, int prio, const char *msg)
{
	struct exportd *d = ud;
	fv_log(&d->log, prio, "%s", msg);
}

static void *bulk_get(void *ud, size_t n)
{
	return fv_tp_req_bulk(ud, n);
}

/* A malformed request: a line naming the peer, at most WARN_PER_SEC a second.
 * close: the link is closed after the answer. */
static void warn_malformed(struct exportd *d, struct fv_tp_req *r, const uint8_t *q, uint32_t len, bool close)
{
	time_t now = time(NULL);
	unsigned dropped = 0;
	bool say;
	pthread_mutex_lock(&d->warn_mu);
	if (now != d->warn_sec) {
		dropped = d->warn_dropped;
		d->warn_sec = now;
		d->warn_n = 0;
		d->warn_dropped = 0;
	}
	say = d->warn_n++ < WARN_PER_SEC;
	if (!say)
		d->warn_dropped++;
	pthread_mutex_unlock(&d->warn_mu);
	const char *peer = fv_tp_req_peer(r);
	if (dropped)
		fv_log(&d->log, LOG_WARNING, "%u more malformed requests not logged", dropped);
	if (say)
		fv_log(&d->log, LOG_WARNING,
		       "malformed request from peer '%s' (op %d, version %d, %u bytes): answered EPROTO%s",
		       peer[0] ? peer : "(unnamed key)", len > 0 ? q[0] : -1, len > 1 ? q[1] : -1, len,
		       close ? ", closing its connection" : " (another protocol version)");
}

static void handler(void *ud, struct fv_tp_req *r)
{
	struct exportd *d = ud;
	uint32_t len;
	const uint8_t *q = fv_tp_req_data(r, &len);
	struct fv_buf rep = {0};
	struct fv_export_bulk bulk = {.cap = fv_tp_req_bulk_cap(r), .get = bulk_get, .ud = r};
	int rc = fv_export_request(d->x, fv_tp_req_peer_index(r), q, len, &rep, &bulk);
	if (rc == -EPROTO) {
		/* a request of another version is answered and the link kept (the
		 * client then says which side to upgrade: docs/protocol.md,
		 * "Versions"); anything else malformed comes from a broken or
		 * hostile client, which loses its link */
		bool other_version = len >= 2 && q[1] != FV_FS_VERSION;
		warn_malformed(d, r, q, len, !other_version);
		if (!other_version && fv_buf_ok(&rep)) {
			fv_tp_reply_close(r, rep.data, (uint32_t)rep.len, "malformed request");
			fv_buf_free(&rep);
			return;
		}
	}
	if (!fv_buf_ok(&rep) || fv_tp_reply(r, rep.data, (uint32_t)rep.len, bulk.len) < 0) {
		/* out of memory, or a reply beyond the transport's limits (a bug):
		 * answer a bare status so that the client is not left waiting */
		uint8_t st[4];
		fv_put_le32(st, (uint32_t)(fv_buf_ok(&rep) ? -EIO : -ENOMEM));
		fv_log(&d->log, LOG_ERR, "cannot answer a request (op %d): %s", len ? q[0] : -1,
		       fv_buf_ok(&rep) ? "reply too large" : "out of memory");
		fv_tp_reply(r, st, sizeof st, 0);
	}
	fv_buf_free(&rep);
}

/* ---- main ------------------------------------------------------------------- */

static int write_port_file(struct exportd *d, const char *file, struct fv_tp_server *s, size_t n)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s.tmp", file);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		fv_log(&d->log, LOG_ERR, "cannot write %s: %s", tmp, strerror(errno));
		return EXIT_ERROR;
	}
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%d\n", fv_tp_server_port(s, i));
	if (fclose(f) != 0 || rename(tmp, file) < 0) {
		fv_log(&d->log, LOG_ERR, "cannot write %s: %s", file, strerror(errno));
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* One line of the requests served, by op (those not zero), at the end:
 * what a client's workload cost in round trips. */
static void log_op_counts(struct exportd *d)
{
	static const char *const names[] = {"malformed", "LOOKUP",    "GETATTR",    "READDIRPLUS", "OPEN",
					    "READ",      "RELEASE",   "FORGET",     "READLINK",    "STATFS",
					    "GETXATTR",  "LISTXATTR", "OPEN_INLINE"};
	uint64_t n[FV_EXPORT_OPS];
	char line[1024];
	size_t len = 0;
	fv_export_op_counts(d->x, n);
	for (size_t i = 0; i < FV_EXPORT_OPS && len < sizeof line - 64; i++) {
		if (!n[i])
			continue;
		if (i < sizeof names / sizeof names[0])
			len += (size_t)snprintf(line + len, sizeof line - len, " %s=%llu", names[i],
						(unsigned long long)n[i]);
		else
			len += (size_t)snprintf(line + len, sizeof line - len, " op%zu=%llu", i,
						(unsigned long long)n[i]);
	}
	fv_log(&d->log, LOG_INFO, "requests served:%s", len ? line : " none");
}

/* Serve until SIGTERM or SIGINT. Returns an exit status. */
/* Wait for a signal of set and return it. Meanwhile, once no client has
 * had a link for c->forget_after seconds, forget what clients left behind
 * (docs/fabvault-exportd.8.md, --forget-after). */
static int wait_signal(struct exportd *d, const struct cfg *c, struct fv_tp_server *s, const sigset_t *set)
{
	struct timespec tick = {.tv_sec = 1};
	time_t alone_since = 0; /* 0: a client is connected */
	for (;;) {
		int sig = sigtimedwait(set, NULL, &tick);
		if (sig > 0)
			return sig;
		if (c->forget_after == 0)
			continue;
		time_t now = time(NULL);
		if (fv_tp_server_links(s) > 0) {
			alone_since = 0;
			continue;
		}
		if (alone_since == 0)
			alone_since = now;
		if (now - alone_since < c->forget_after ||
		    (fv_export_nodes(d->x) <= 1 && fv_export_handles(d->x) == 0))
			continue;
		size_t nodes = 0, handles = 0;
		if (fv_export_forget_all(d->x, &nodes, &handles) < 0) {
			fv_log(&d->log, LOG_WARNING,
			       "cannot forget the nodes of departed clients: out of memory");
			continue;
		}
		fv_log(&d->log, LOG_NOTICE,
		       "no client connected for %ld s: forgot %zu node(s) and closed %zu open file(s) they left",
		       (long)(now - alone_since), nodes, handles);
	}
}

/* Worker threads when none are configured: twice the online CPUs, at least
 * 4. Large READs of cold files go to the disk with O_DIRECT (export.c), so a
 * worker mostly waits for the disk, and the reads in flight at once, which
 * keep the disk and the link busy, are the workers. */
static int default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	n = n > 0 ? 2 * n : 4;
	return n < 4 ? 4 : n > THREADS_MAX ? THREADS_MAX : (int)n;
}

static int serve(struct exportd *d, const struct cfg *c, const struct fv_tp_path *listen, size_t nlisten)
{
	struct fv_tp_node_key key;
	struct fv_tp_peers peers = {0};
	struct fv_tp_server *s = NULL;
	struct fv_err e = {0};
	int rc;
	const char *compat = getenv("FABVAULT_EXPORTD_NO_OPEN_INLINE");
	struct fv_export_opts xo = {.root = c->export_dir,
				    .max_dirs = raise_nofile(d),
				    .client_handles = (size_t)c->client_handles,
				    .no_open_inline = compat && !strcmp(compat, "1"),
				    .log = {tp_log, d}};
	if (fv_export_open(&xo, &d->x, &e) < 0) {
		fv_log(&d->log, LOG_ERR, "%s", e.msg);
		return EXIT_EXPORT;
	}
	if ((rc = load_keys(d, c->conf_dir ? c->conf_dir : DEFAULT_CONF_DIR, &key, &peers)) != 0)
		goto out_export;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* the threads we start inherit it */
	struct fv_tp_server_opts o = {.key = &key,
				      .peers = &peers,
				      .listen = listen,
				      .nlisten = nlisten,
				      .require_encrypt = c->require_encrypt,
				      .threads = c->threads ? (int)c->threads : default_threads(),
				      .poll_us = (int)c->poll_us,
				      .handler = handler,
				      .ud = d,
				      .log = {tp_log, d}};
	if (fv_tp_server_open(&o, &s, &e) < 0) {
		fv_log(&d->log, LOG_ERR, "%s%s", e.msg,
		       e.code == -EADDRINUSE
			       ? " (another fabvault-exportd, or another program, uses the port)"
			       : "");
		rc = e.code == -ENOMEM ? EXIT_ERROR : EXIT_LISTEN;
		goto out_export;
	}
	for (size_t i = 0; i < nlisten; i++) {
		char name[128];
		struct fv_tp_path p = listen[i];
		p.port = fv_tp_server_port(s, i);
		fv_log(&d->log, LOG_NOTICE, "exporting %s read-only on %s", c->export_dir,
		       fv_tp_path_str(&p, name, sizeof name));
	}
	if (c->port_file && (rc = write_port_file(d, c->port_file, s, nlisten)) != 0)
		goto out_server;
	int sig = wait_signal(d, c, s, &set);
	fv_log(&d->log, LOG_NOTICE, "stopping (signal %d)", sig);
out_server:
	fv_tp_server_close(s);
	log_op_counts(d);
out_export:
	fv_export_close(d->x);
	d->x = NULL;
	fv_tp_peers_free(&peers);
	return rc;
}

enum {
	OPT_CONF_DIR = 0x100,
	OPT_THREADS,
	OPT_REQUIRE_ENC,
	OPT_PORT_FILE,
	OPT_POLL_US,
	OPT_FORGET_AFTER,
	OPT_CLIENT_HANDLES
};

static const struct option longopts[] = {
	{"export", required_argument, NULL, 'e'},
	{"listen", required_argument, NULL, 'l'},
	{"config", required_argument, NULL, 'c'},
	{"conf-dir", required_argument, NULL, OPT_CONF_DIR},
	{"threads", required_argument, NULL, OPT_THREADS},
	{"poll-us", required_argument, NULL, OPT_POLL_US},
	{"require-encrypt", no_argument, NULL, OPT_REQUIRE_ENC},
	{"forget-after", required_argument, NULL, OPT_FORGET_AFTER},
	{"handles-per-client", required_argument, NULL, OPT_CLIENT_HANDLES},
	{"port-file", required_argument, NULL, OPT_PORT_FILE},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* Apply one command-line option. Returns an exit status, or -1 to go on. */
static int apply_opt(struct exportd *d, struct cfg *c, int opt, const char **config)
{
	int rc = 0;
	switch (opt) {
	case 'e':
		c->set_export = true;
		rc = set_str(&c->export_dir, optarg);
		break;
	case 'l':
		/* several --listen: one comma-separated list */
		if (c->set_listen && c->listen_arg) {
			size_t n = strlen(c->listen_arg) + strlen(optarg) + 2;
			char *s = malloc(n);
			if (!s)
				return EXIT_ERROR;
			snprintf(s, n, "%s,%s", c->listen_arg, optarg);
			free(c->listen_arg);
			c->listen_arg = s;
		} else {
			rc = set_str(&c->listen_arg, optarg);
		}
		c->set_listen = true;
		break;
	case 'c':
		*config = optarg;
		break;
	case OPT_CONF_DIR:
		c->set_conf_dir = true;
		rc = set_str(&c->conf_dir, optarg);
		break;
	case OPT_THREADS:
		c->set_threads = true;
		if (parse_num(optarg, 0, THREADS_MAX, &c->threads) < 0) {
			fv_log(&d->log, LOG_ERR, "--threads takes a number from 0 to 1024");
			return EXIT_USAGE;
		}
		break;
	case OPT_POLL_US:
		c->set_poll_us = true;
		if (parse_num(optarg, 0, POLL_US_MAX, &c->poll_us) < 0) {
			fv_log(&d->log, LOG_ERR, "--poll-us takes a number from 0 to 1000000");
			return EXIT_USAGE;
		}
		break;
	case OPT_CLIENT_HANDLES:
		c->set_client_handles = true;
		if (parse_num(optarg, 1, FV_FS_MAX_HANDLES, &c->client_handles) < 0) {
			fv_log(&d->log, LOG_ERR, "--handles-per-client takes a number from 1 to %d",
			       FV_FS_MAX_HANDLES);
			return EXIT_USAGE;
		}
		break;
	case OPT_FORGET_AFTER:
		c->set_forget_after = true;
		if (parse_num(optarg, 0, FORGET_AFTER_MAX, &c->forget_after) < 0) {
			fv_log(&d->log, LOG_ERR, "--forget-after takes seconds, from 0 (never) to 315360000");
			return EXIT_USAGE;
		}
		break;
	case OPT_REQUIRE_ENC:
		c->set_require_encrypt = true;
		c->require_encrypt = true;
		break;
	case OPT_PORT_FILE:
		rc = set_str(&c->port_file, optarg);
		break;
	case 'v':
		c->verbose = true;
		break;
	case 'h':
		fputs(usage_text, stdout);
		return EXIT_OK;
	case 'V':
		printf("fabvault-exportd %s\n", FV_VERSION);
		return EXIT_OK;
	default:
		fputs("Try 'fabvault-exportd --help'.\n", stderr);
		return EXIT_USAGE;
	}
	return rc < 0 ? EXIT_ERROR : -1;
}

int main(int argc, char **argv)
{
	struct exportd d = {0};
	struct cfg c = {.forget_after = DEFAULT_FORGET_AFTER, .client_handles = DEFAULT_CLIENT_HANDLES};
	struct fv_tp_path listen[MAX_PATHS];
	size_t nlisten = 0;
	const char *config = NULL;
	int rc = -1, opt;
	fv_log_init(&d.log, "fabvault-exportd", LOG_NOTICE);
	pthread_mutex_init(&d.warn_mu, NULL);
	while (rc < 0 && (opt = getopt_long(argc, argv, "e:l:c:vhV", longopts, NULL)) != -1)
		rc = apply_opt(&d, &c, opt, &config);
	if (rc >= 0)
		goto out;
	if (c.verbose)
		fv_log_init(&d.log, "fabvault-exportd", LOG_INFO);
	if (optind < argc) {
		fv_log(&d.log, LOG_ERR, "unexpected argument '%s' (try --help)", argv[optind]);
		rc = EXIT_USAGE;
		goto out;
	}
	if ((rc = read_config(&d, &c, config)) != 0)
		goto out;
	if (!c.export_dir || !c.listen_arg) {
		fv_log(&d.log, LOG_ERR, "%s (try --help)",
		       !c.export_dir
			       ? "no directory to export: give --export DIR or export= in the configuration"
			       : "no address to listen on: give --listen PATH or listen= in the configuration");
		rc = EXIT_USAGE;
		goto out;
	}
	if ((rc = parse_listen(&d, c.listen_arg, listen, &nlisten)) != 0)
		goto out;
	rc = serve(&d, &c, listen, nlisten);
out:
	pthread_mutex_destroy(&d.warn_mu);
	free(c.export_dir);
	free(c.conf_dir);
	free(c.port_file);
	free(c.listen_arg);
	return rc;
}
