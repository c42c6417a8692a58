/* tp: the public API of the transport (docs/transport.md): a multipath
 * request/response client and a server, over TCP and RDMA links, mutually
 * authenticated with node keys. This is the only header fs/ and tools/ use;
 * which backend carries a request is invisible here.
 *
 * Threads: the client runs one thread per path (connect, handshake, then
 * receive) and one timer thread; completions run on a path thread. The
 * server runs one thread per listener, one per link and a worker pool that
 * calls the handler. All functions are thread-safe unless noted.
 */
#ifndef FV_TP_H
#define FV_TP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"
#include "nodekey.h"
#include "path.h"
#include "pool.h"

/* Log lines from inside the transport (refused keys, dead paths, malformed
 * frames); the library never prints. fn may be NULL. */
struct fv_tp_logger {
	void (*fn)(void *ud, int prio, const char *msg);
	void *ud;
};

/* ---- client ---------------------------------------------------------- */

struct fv_tp_client;

struct fv_tp_client_opts {
	const struct fv_tp_node_key *key; /* our node key */
	const struct fv_tp_peers *peers;  /* server keys we accept */
	const struct fv_tp_path *paths;   /* one link per path */
	size_t npaths;
	int mode;               /* 0: default (encrypt on TCP, integrity on RDMA), or enum fv_frame_mode */
	int timeout_ms;         /* how long a request waits while no path is up (0: 30000) */
	int dead_ms;            /* silence after which a link is dead (0: 800) */
	int connect_timeout_ms; /* one connection attempt (0: 2000) */
	size_t pool_bytes;      /* bulk buffer memory (0: 256 MiB) */
	/* How long fv_tp_call busy-waits for its reply before it sleeps, in
	 * microseconds (0: 50; < 0: never). It spins only while recent
	 * synchronous calls completed within that time, so calls that take
	 * long (bulk transfers, a slow server) never burn a CPU: a sleep and a
	 * wake-up cost tens of microseconds on an idle machine, a whole round
	 * trip over the fabric a few. */
	int spin_us;
	/* RDMA polling mode: a path thread busy-polls its completion queue for
	 * this many microseconds before it sleeps on the completion channel
	 * (0: never, the default: event-driven). Saves the wake-up of the
	 * thread that receives the reply, at the cost of a CPU while it polls. */
	int poll_us;
	struct fv_tp_logger log;
};

/* Start a client (libsodium is initialised here): paths connect in the background. With wait_ms > 0, waits
 * up to wait_ms for the first path to come up and fails with its error
 * (-ECONNREFUSED, -EACCES for a refused key, -ETIMEDOUT, ...) and a message
 * naming the path when none does. Returns 0 or -errno. */
int fv_tp_client_open(const struct fv_tp_client_opts *o, int wait_ms, struct fv_tp_client **out,
		      struct fv_err *e);
/* What an error of fv_tp_client_open means to a user, for exit codes. */
enum fv_tp_err_kind {
	FV_TP_ERR_OTHER = 0,
	FV_TP_ERR_UNREACH, /* refused, timed out, no route, no device, address not ours */
	FV_TP_ERR_AUTH,    /* a node key was refused, by either side */
};
int fv_tp_err_kind(int code);

/* Stop every thread, fail the calls still in flight with -ECANCELED, free. */
void fv_tp_client_close(struct fv_tp_client *c);

/* Bulk buffers for replies: registered with every link (RDMA), reused.
 * Every call's bulk buffer must come from here. Waits while the pool is at
 * its limit. Returns NULL with *err set. */
struct fv_tp_buf *fv_tp_bulk_get(struct fv_tp_client *c, size_t size, int *err);
void fv_tp_bulk_put(struct fv_tp_client *c, struct fv_tp_buf *b);

/* One request. The caller owns it (and its buffers) until done runs. */
struct fv_tp_call {
	/* in */
	const void *req;  /* request control message */
	uint32_t req_len; /* ≤ 65536 */
	bool idempotent;  /* may be sent again on another path if its path dies */
	void *reply;      /* where the reply control message goes */
	uint32_t reply_cap;
	struct fv_tp_buf *bulk;                /* from fv_tp_bulk_get, or NULL */
	uint32_t bulk_cap;                     /* ≤ bulk->size and ≤ 64 MiB */
	void (*done)(struct fv_tp_call *call); /* async: runs on a transport thread; must not block long */
	void *ud;
	/* out */
	int status; /* 0, or -errno: -EMSGSIZE (reply larger than reply_cap),
		     * -ECONNRESET (path died, not idempotent), -EHOSTUNREACH (no
		     * live path within the timeout), -ECANCELED (client closed) */
	uint32_t reply_len;
	uint32_t bulk_len;
	int path; /* index of the path that answered */
	/* private */
	struct fv_tp_call *next;
	uint64_t id;
	int64_t deadline_ns;
	void *waiter;
};

/* Send call asynchronously; call->done runs when it completes (also on
 * failure). Returns 0, or -EINVAL (bad sizes, bulk not from the pool) without
 * calling done. */
int fv_tp_submit(struct fv_tp_client *c, struct fv_tp_call *call);
/* Send call and wait for its completion (busy-waiting first, see spin_us);
 * returns call->status. */
int fv_tp_call(struct fv_tp_client *c, struct fv_tp_call *call);

/* State of each path, for `fabric status` and tests. */
struct fv_tp_path_stats {
	uint64_t requests; /* requests sent on this path */
	uint64_t bytes;    /* ctl + bulk bytes received on this path */
	uint64_t failures; /* times the path went down */
	int outstanding;
	bool up;
	char name[96]; /* "tcp://10.200.1.1:7420" */
	char last_error[256];
};
/* Fill up to n entries; returns the number of paths. */
size_t fv_tp_client_stats(struct fv_tp_client *c, struct fv_tp_path_stats *st, size_t n);

/* ---- server ---------------------------------------------------------- */

struct fv_tp_server;
struct fv_tp_req;

/* Called on a worker thread for each request. It must answer with
 * fv_tp_reply exactly once (possibly later, from any thread). */
typedef void (*fv_tp_handler)(void *ud, struct fv_tp_req *r);

struct fv_tp_server_opts {
	const struct fv_tp_node_key *key;
	const struct fv_tp_peers *peers; /* client keys we accept */
	const struct fv_tp_path *listen; /* addresses to listen on */
	size_t nlisten;
	bool require_encrypt; /* answer "integrity" requests with encrypt */
	int threads;          /* worker threads (0: online CPUs) */
	uint32_t credits;     /* requests in flight per link (0: 64) */
	size_t pool_bytes;    /* bulk buffer memory (0: 256 MiB) */
	int idle_ms;          /* close a link silent this long (0: 30000) */
	int poll_us;          /* RDMA polling mode on every link, as in fv_tp_client_opts */
	bool inline_handler;  /* the handler never blocks (it answers at once, or passes the
			       * request to a thread of its own): call it on the link's
			       * connection thread, saving a thread hand-off per request */
	fv_tp_handler handler;
	void *ud;
	struct fv_tp_logger log;
};

int fv_tp_server_open(const struct fv_tp_server_opts *o, struct fv_tp_server **out, struct fv_err *e);
/* Port listener i is bound to (tests listen on port 0). */
int fv_tp_server_port(struct fv_tp_server *s, size_t i);
/* Links open now whose handshake succeeded (authenticated clients'). */
size_t fv_tp_server_links(struct fv_tp_server *s);
/* Stop accepting, close every link, wait for the handlers, free. */
void fv_tp_server_close(struct fv_tp_server *s);

/* The request's control message. */
const void *fv_tp_req_data(const struct fv_tp_req *r, uint32_t *len);
/* Bulk capacity the client offered (0: it wants no bulk). */
uint32_t fv_tp_req_bulk_cap(const struct fv_tp_req *r);
/* The authorized name of the client's key ("" when the line has none). */
const char *fv_tp_req_peer(const struct fv_tp_req *r);
/* The client's key as a number: its entry's index in the server's
 * authorized peers (0 .. peers->n - 1), the same on each of its links. */
uint32_t fv_tp_req_peer_index(const struct fv_tp_req *r);
/* A buffer of at least n bytes (n ≤ bulk cap) for the reply's bulk, from
 * the server's pool; NULL on -ENOMEM. Owned by r until fv_tp_reply. */
void *fv_tp_req_bulk(struct fv_tp_req *r, size_t n);
/* Answer r with ctl[0..len) and bulk_len bytes of the buffer from
 * fv_tp_req_bulk (0 for none), then free r. A reply to a client that is gone
 * is dropped (returns 0). Returns -EMSGSIZE, and keeps r for another try,
 * when len > 65536 or bulk_len exceeds the bulk capacity or buffer. */
int fv_tp_reply(struct fv_tp_req *r, const void *ctl, uint32_t len, uint32_t bulk_len);
/* Answer r with ctl[0..len) (no bulk), then close the link it came on: for a
 * request no correct client sends. why goes to the log (naming the peer and
 * its key) and to the client in a CLOSE frame; the client's other links and
 * every other client are not touched. Frees r. len beyond 65536 answers an
 * empty reply. */
void fv_tp_reply_close(struct fv_tp_req *r, const void *ctl, uint32_t len, const char *why);

#endif
