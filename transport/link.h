/* link: the interface every backend implements (tcp.c, rdma.c), after
 * redis's connection.h: one small vtable, nothing above it knows which
 * backend carries a frame. A link moves whole frames (docs/transport.md,
 * "Frame"); framing checks, handshake, crypto, credits, multipath and
 * liveness live above it (session.c, client.c, server.c).
 *
 * Threads: a link has one owner thread that calls recv/release (the path
 * thread on a client, the connection thread on a server). send is called by
 * any thread but never by two at once (the caller holds the link's send lock,
 * because frame counters must go out in order). shutdown may be called by any
 * thread at any time; free only by the owner after its last recv returned.
 */
#ifndef FV_LINK_H
#define FV_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"
#include "frame.h"
#include "path.h"
#include "pool.h"

struct fv_tp_ops;
struct fv_tp_listener;

/* The head of every backend's link object (its first member). */
struct fv_tp_link {
	const struct fv_tp_ops *ops;
};

/* What a link is set up with (both ends). */
struct fv_tp_link_cfg {
	uint32_t credits;        /* requests in flight on a link (RDMA: receives posted = credits + 4) */
	int timeout_ms;          /* connect / address and route resolution timeout */
	struct fv_tp_pool *pool; /* bulk buffers: a backend with a reg op attaches the link to
				  * it in connect/accept (fv_tp_pool_attach) and detaches it
				  * in free. May be NULL. */
	int poll_us;             /* RDMA: recv busy-polls its completion queue this long
				  * before it sleeps on the completion channel (0: never) */
};

/* One received frame, as recv returns it. */
struct fv_tp_rx {
	uint8_t *msg; /* the control part: header, ctl, trailers; writable (decrypted in place) */
	size_t len;   /* its length */
	void *priv;   /* the backend's receive buffer, for release */
};

/* TCP reads a REPLY's bulk bytes from the stream straight to their
 * destination: recv asks where, with the decoded header of the frame. Return
 * the destination (h->bulk_len bytes), or NULL for "no such request" (recv
 * then fails with -EBADMSG). RDMA does not call it (the bulk is already
 * placed). */
typedef void *(*fv_tp_bulk_dst_fn)(void *ud, const struct fv_frame_hdr *h);

/* One frame to send. */
struct fv_tp_tx {
	const uint8_t *msg; /* the control part, header first (already sealed) */
	size_t len;
	/* REPLY with bulk: the source, a pool buffer (RDMA WRITE from it to
	 * the request's bulk_addr/bulk_rkey, taken from the header in msg) */
	const struct fv_tp_buf *bulk;
	size_t bulk_len;
	/* With bulk set: called exactly once, whatever send returns, when the
	 * bulk buffer is free again (status 0, or -errno when the link broke
	 * first). It may run on any thread, before or after send returns; RDMA
	 * calls it when the WRITE completes, so that several bulk replies are
	 * in flight on one link and send does not wait for the wire. It may run
	 * inside a send of another frame on the same link, under the session's
	 * send lock: it must neither send on that link nor take that lock. */
	void (*bulk_done)(void *ud, int status);
	void *bulk_ud;
};

struct fv_tp_ops {
	const char *name; /* "tcp", "rdma" */

	/* Client: connect to p (bound to p->from when set) and return a link
	 * ready for frames. Blocks at most cfg->timeout_ms. Errors: -ECONNREFUSED,
	 * -ETIMEDOUT, -EHOSTUNREACH, -ENODEV (RDMA: no RDMA device for the
	 * address), with a message naming the peer in e. */
	int (*connect)(const struct fv_tp_path *p, const struct fv_tp_link_cfg *cfg, struct fv_tp_link **out,
		       struct fv_err *e);

	/* Server: listen on p's address and port. */
	int (*listen)(const struct fv_tp_path *p, const struct fv_tp_link_cfg *cfg,
		      struct fv_tp_listener **out, struct fv_err *e);
	/* Block until a client connects; return its link (ready for frames).
	 * Returns -ECANCELED after listener_stop. Other errors are for one
	 * client only: the caller logs them and accepts again. */
	int (*accept)(struct fv_tp_listener *l, struct fv_tp_link **out, struct fv_err *e);
	/* Make a blocked or later accept return -ECANCELED. Thread-safe. */
	void (*listener_stop)(struct fv_tp_listener *l);
	void (*listener_free)(struct fv_tp_listener *l);
	/* The port actually bound (for port 0 in tests). */
	int (*listener_port)(struct fv_tp_listener *l);

	/* Send one frame (see struct fv_tp_tx). Returns 0 once the frame is
	 * handed to the kernel/NIC and msg may be reused (the bulk buffer: see
	 * bulk_done), or -ECONNRESET/-EPIPE/-EIO when the link is broken. */
	int (*send)(struct fv_tp_link *l, const struct fv_tp_tx *tx);

	/* Receive the next frame, waiting at most timeout_ms (-1: forever).
	 * Returns 0 with rx filled, -EAGAIN on timeout (the link is still
	 * fine), -ECONNRESET when the peer closed or the link broke or was shut
	 * down, -EBADMSG when the bytes are not a frame (the header is checked
	 * with fv_frame_decode; the frame's total size with fv_frame_ctl_size).
	 * Every rx returned must be given back with release before the next recv
	 * (TCP) or soon (RDMA: it re-posts the receive buffer). */
	int (*recv)(struct fv_tp_link *l, struct fv_tp_rx *rx, int timeout_ms, fv_tp_bulk_dst_fn dst,
		    void *ud);
	void (*release)(struct fv_tp_link *l, struct fv_tp_rx *rx);

	/* Register pool buffer b with this link (RDMA: ibv_reg_mr with local
	 * write + remote write once, kept until free; TCP: NULL op). Called for
	 * every buffer of the pool when the link is made and for every buffer
	 * made later, never on the data path. Returns 0 or -errno. */
	int (*reg)(struct fv_tp_link *l, const struct fv_tp_buf *b);
	/* RDMA: the address and rkey under which the peer may write into
	 * b->p[off..]; TCP: NULL op. */
	void (*bulk_key)(struct fv_tp_link *l, const struct fv_tp_buf *b, size_t off, uint64_t *addr,
			 uint32_t *rkey);

	/* Break the link now (never calls a bulk_done, takes no lock a caller
	 * may hold: it may be called under the server's mutex): pending and
	 * later recv/send fail with
	 * -ECONNRESET. When it returns, nothing more is placed into registered
	 * memory through this link (RDMA: the QP is in the error state).
	 * Thread-safe, idempotent. */
	void (*shutdown)(struct fv_tp_link *l);
	/* After shutdown, by the owner thread: return when no bulk_done is
	 * pending any more (those still pending are called with -ECONNRESET;
	 * a send after shutdown fails and calls its bulk_done at once). NULL
	 * where bulk_done is always called before send returns (TCP). */
	void (*drain)(struct fv_tp_link *l);
	/* Release everything (after shutdown and drain, by the owner thread). */
	void (*free)(struct fv_tp_link *l);

	/* "10.200.1.2:41234" of the peer, for log lines. */
	const char *(*peer_name)(struct fv_tp_link *l);

	/* Bytes received so far, counted as they arrive (a frame still being
	 * read counts): liveness sees a long bulk transfer as progress. Any
	 * thread. NULL where the backend cannot tell (RDMA WRITEs land
	 * without a completion). */
	uint64_t (*rx_bytes)(struct fv_tp_link *l);
};

extern const struct fv_tp_ops fv_tp_tcp_ops;
extern const struct fv_tp_ops fv_tp_rdma_ops;

/* The ops for a path kind. */
const struct fv_tp_ops *fv_tp_ops_for(int kind);

/* In a busy-wait loop: tell the CPU (x86 pause, Arm yield), so that it
 * spends less power and lets a sibling hardware thread run. */
static inline void fv_tp_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

#endif
