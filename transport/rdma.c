/* rdma: the RDMA backend of link.h (docs/transport.md, "Model" and
 * "Frame"): librdmacm for the connection, one RC queue pair per link.
 *
 * Layout of a link (all set up once, before the first frame):
 *  - its own rdma_cm event channel (an accepted id is migrated off the
 *    listener's), so that the owner thread sees DISCONNECTED for this link
 *    only;
 *  - one PD; one MR over one allocation of credits + 4 receive buffers of
 *    FV_FRAME_MAX_MSG bytes, all posted before connect/accept; one MR over
 *    nslots (also credits + 4) send buffers of FV_FRAME_MAX_MSG bytes, one
 *    per send slot;
 *  - two CQs, each with its own completion channel: receives are reaped by
 *    the owner thread only; sends by whichever thread gets there first,
 *    under the link's send mutex (see "Reaping");
 *  - a table of MRs for the pool's buffers, by fv_tp_buf.index.
 *
 * Send: a frame takes the next send slot, a ring of nslots frames in flight
 * (credits + 4: a server can have the replies of a client's whole window in
 * flight, 16-64 bulk replies of 1 MiB on a ConnectX-7 rail). A frame that
 * fits the QP's max_inline_data goes inline, others are copied into the
 * slot's buffer: the caller's msg is free on return either way. Every SEND
 * is signaled. A REPLY with bulk is preceded by RDMA WRITEs (unsignaled) to
 * the bulk_addr/bulk_rkey of its header; RC executes and completes a send
 * queue in order, so the SEND's completion means the WRITEs before it are
 * done too: then the slot is retired and the frame's bulk_done runs. send
 * never waits for that; it waits only while every slot or the whole send
 * queue is taken. The bulk is written as one WRITE (the NIC segments by MTU
 * itself; more WRs only cost WQEs), split only when the port's max_msg_sz
 * is smaller than the bulk, into chunks of max_msg_sz (rxe on 6.1: 8 MiB,
 * so a 64 MiB bulk is 8 WRITEs; mlx5: 1 GiB, one WRITE). The send queue is
 * sized for nslots frames of that many WRs each. A WR's wr_id is its
 * frame's number shifted left once, plus 1 for the SEND, so that an error
 * completion (whose opcode is undefined) still names its frame and kind.
 *
 * Reaping: send completions are reaped under smu by the sender before each
 * post and while it waits for room, by the owner thread whenever the send
 * completion channel wakes its recv (so buffers come back when nobody
 * sends), and by drain. The send CQ stays armed: whoever takes its event
 * arms it again before polling, so a completion is always either polled by
 * a reaper inside smu or announced by a new event. The bulk_done callbacks
 * of retired frames are collected under smu and run after it is dropped,
 * on the reaping thread: a bulk_done may so run inside the send of another
 * frame on the same link, with the caller's send lock held.
 *
 * Shutdown and drain: a QP in the error state flushes every outstanding WR
 * (unsignaled WRITEs too) with IBV_WC_WR_FLUSH_ERR; a flushed WR is not
 * executed, so its buffer is not read any more, and its frame retires with
 * -ECONNRESET. Verbs promise a buffer back only with its WR's completion
 * (ibv_modify_qp to ERR returning does not say that a WRITE the DMA engine
 * has started is over: rxe's requester may be mid-packet on another CPU),
 * so drain waits for the flushes, up to DRAIN_MS. A frame whose completion
 * never comes (a WR chain posted only in part; a device that fails to
 * flush) is retired only after the QP is destroyed: ibv_destroy_qp returns
 * when the device holds none of its WRs any more.
 *
 * A link is "down" once anything breaks it (shutdown, error completion,
 * DISCONNECTED, a port or QP async error): the QP goes to the error state at
 * once, rdma_disconnect tells the peer, and an eventfd that is never read
 * becomes readable for good, waking a blocked recv or send.
 */
#include "link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <rdma/rdma_cma.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* Fewest send slots (frames in flight on the send queue) of a link. */
#define SEND_SLOTS_MIN 8
/* Receives posted beyond the credits (PING, CLOSE, handshake). */
#define RECV_EXTRA 4
/* Inline data asked of the QP; the device may give less (or none). */
#define INLINE_WANT 256
/* Smallest max_msg_sz we accept, which bounds the WRITEs of one bulk. */
#define WRITE_MIN (1u << 20)
#define WRITES_MAX (FV_FRAME_MAX_BULK / WRITE_MIN)
#define DEFAULT_TIMEOUT_MS 5000
#define LISTEN_BACKLOG 64
/* Completion events are acknowledged in batches (ibv_ack_cq_events locks). */
#define CQ_ACK_BATCH 64
/* Send completions polled, and callbacks run, per round of reap_send. */
#define REAP_BATCH 32
/* How long drain waits for the flushed send WRs after the QP went to ERR. */
#define DRAIN_MS 2000
/* drain looks again this often when another thread took the CQ's event. */
#define DRAIN_STEP_MS 10

/* One frame on the send queue, from its post to its retirement. */
struct send_slot {
	void (*done)(void *ud, int status); /* the frame's bulk_done, or NULL */
	void *ud;
	uint32_t nwr; /* WRs it takes on the send queue */
	int status;   /* 0, or -ECONNRESET once one of its WRs failed */
};

/* A bulk_done to run once smu is dropped. */
struct send_done {
	void (*fn)(void *ud, int status);
	void *ud;
	int status;
};

struct tp_rdma_link {
	struct fv_tp_link base;
	char name[160]; /* "rdma://10.200.1.1:7420" (+ " from ...") for messages */
	char peer[96];  /* "10.200.1.1:7420" */

	struct rdma_event_channel *ech;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_comp_channel *rcc, *scc;
	struct ibv_cq *rcq, *scq;
	uint8_t port_num;
	int wake_fd; /* eventfd: readable (never read) once the link is down */
	atomic_bool down;
	atomic_bool shut; /* shut down here: recv fails at once, no draining */

	/* receive side: the owner thread */
	uint8_t *rbuf;
	struct ibv_mr *rmr;
	uint32_t nrecv;
	bool rarmed;
	unsigned racks;
	int64_t poll_ns; /* polling mode: busy-poll this long before sleeping (0: never) */

	/* send side: posted by the one sending thread, reaped by any (see
	 * "Reaping"); everything from sposted on is under smu */
	uint8_t *sbuf;
	struct ibv_mr *smr;
	struct send_slot *slots; /* nslots, frame n in slots[n % nslots] */
	uint32_t nslots;
	uint32_t max_inline;
	uint64_t write_max;
	uint32_t sq_depth;
	int sfree_fd; /* eventfd: a reaper retired frames while the sender waited */
	pthread_mutex_t smu;
	uint64_t sposted; /* frames posted */
	uint64_t scomp;   /* frames whose SEND completed (or that were given up) */
	uint64_t sdone;   /* frames retired: slot free, bulk_done taken */
	uint64_t cb_end;  /* 1 + the number of the last frame with a bulk_done */
	unsigned cb_busy; /* bulk_dones taken but still running */
	uint32_t sq_used; /* WRs of the frames not retired */
	unsigned sacks;   /* send CQ events not yet acknowledged */
	bool swait;       /* the sender sleeps until frames retire */
	bool drained;     /* drain returned: nothing more is posted */
	bool qp_gone;     /* drain gave up and destroyed the QP */

	struct fv_tp_pool *pool; /* attached in connect/accept, detached in free */
	/* pool buffer MRs by index: written by reg (any thread), read by send */
	struct ibv_mr *mrs[FV_TP_POOL_MAX_BUFS];
};

struct tp_rdma_listener {
	struct rdma_event_channel *ech;
	struct rdma_cm_id *id;
	int stop_fd; /* eventfd: readable (never read) after listener_stop */
	struct fv_tp_link_cfg cfg;
	char name[160];
};

static struct tp_rdma_link *link_of(struct fv_tp_link *l)
{
	return (struct tp_rdma_link *)l;
}

/* ---- small helpers ---------------------------------------------------- */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ms(void)
{
	return now_ns() / 1000000;
}

/* Milliseconds left until deadline (-1: none) for poll(). */
static int left_ms(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t n = deadline - now_ms();
	return n < 0 ? 0 : (n > 1000000000 ? 1000000000 : (int)n);
}

/* errno of a failed library call as a negative code, never 0. */
static int neg_errno(int fallback)
{
	return errno > 0 ? -errno : fallback;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return neg_errno(-EIO);
	return 0;
}

static void sa_str(const struct sockaddr *sa, char *buf, size_t n)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
		port = ntohs(s4->sin_port);
		snprintf(buf, n, "%s:%d", host, port);
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
		port = ntohs(s6->sin6_port);
		snprintf(buf, n, "[%s]:%d", host, port);
	} else {
		snprintf(buf, n, "?");
	}
}

/* A numeric or named address for rdma_cm: host ("" or NULL: any) and port. */
static int resolve_sa(const char *host, int port, bool passive, struct sockaddr_storage *out)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res;
	char ports[16];
	if (passive)
		hints.ai_flags = AI_PASSIVE;
	snprintf(ports, sizeof ports, "%d", port);
	int rc = getaddrinfo(host && *host ? host : NULL, ports, &hints, &res);
	if (rc)
		return rc == EAI_SYSTEM ? neg_errno(-EHOSTUNREACH) : -EHOSTUNREACH;
	memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

static const char *dev_hint(void)
{
	return "is rdma_rxe/mlx5 loaded and the address on an RDMA device? see 'rdma link'";
}

/* ---- rdma_cm events --------------------------------------------------- */

/* The last rdma_cm event a wait saw, for the error message. */
struct cm_seen {
	bool any;
	enum rdma_cm_event_type event;
	int status;
};

/* Wait for event want on ech (non-blocking fd) until deadline, or until
 * stop_fd (>= 0) becomes readable (-ECANCELED). Another event fails the wait
 * with a code; *seen says which. */
static int cm_wait(struct rdma_event_channel *ech, enum rdma_cm_event_type want, int64_t deadline,
		   int stop_fd, struct cm_seen *seen)
{
	struct pollfd pfd[2] = {{.fd = ech->fd, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};
	struct rdma_cm_event *ev;
	for (;;) {
		if (rdma_get_cm_event(ech, &ev) == 0) {
			enum rdma_cm_event_type t = ev->event;
			int st = ev->status;
			rdma_ack_cm_event(ev);
			*seen = (struct cm_seen){.any = true, .event = t, .status = st};
			if (t == want)
				return 0;
			switch (t) {
			case RDMA_CM_EVENT_ADDR_ERROR:
			case RDMA_CM_EVENT_ROUTE_ERROR:
				return st < 0 ? st : -EHOSTUNREACH;
			case RDMA_CM_EVENT_UNREACHABLE:
				return st == -ETIMEDOUT ? -ETIMEDOUT : -EHOSTUNREACH;
			case RDMA_CM_EVENT_REJECTED:
				return -ECONNREFUSED;
			case RDMA_CM_EVENT_CONNECT_ERROR:
				return st < 0 ? st : -ECONNREFUSED;
			case RDMA_CM_EVENT_DEVICE_REMOVAL:
				return -ENODEV;
			default:
				return -ECONNRESET;
			}
		}
		if (errno != EAGAIN && errno != EINTR)
			return neg_errno(-EIO);
		int n = poll(pfd, stop_fd >= 0 ? 2 : 1, left_ms(deadline));
		if (n < 0 && errno != EINTR)
			return neg_errno(-EIO);
		if (n == 0)
			return -ETIMEDOUT;
		if (stop_fd >= 0 && (pfd[1].revents & POLLIN))
			return -ECANCELED;
	}
}

/* ---- link state ------------------------------------------------------- */

/* Break the link (idempotent, any thread): no more placement into our
 * memory, the peer is told, blocked waiters wake up. */
static void link_down(struct tp_rdma_link *l)
{
	if (atomic_exchange(&l->down, true))
		return;
	if (l->id && l->id->qp) {
		struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};
		ibv_modify_qp(l->id->qp, &a, IBV_QP_STATE);
	}
	if (l->id)
		rdma_disconnect(l->id);
	uint64_t one = 1;
	if (l->wake_fd >= 0 && write(l->wake_fd, &one, sizeof one) < 0) {
		/* cannot fail for an eventfd short of overflow; the flag is set */
	}
}

/* Read what the owner's cm event channel has: any disconnect or device
 * event breaks the link. */
static void drain_cm(struct tp_rdma_link *l)
{
	struct rdma_cm_event *ev;
	while (rdma_get_cm_event(l->ech, &ev) == 0) {
		enum rdma_cm_event_type t = ev->event;
		rdma_ack_cm_event(ev);
		if (t != RDMA_CM_EVENT_ESTABLISHED && t != RDMA_CM_EVENT_TIMEWAIT_EXIT)
			link_down(l);
	}
}

/* Read the device's async events. The verbs context (and its async fd) is
 * shared by every link on that device in this process, so an event read
 * here may belong to another link: QP and CQ events carry their link in
 * qp_context/cq_context (valid until acknowledged: destroying the QP or CQ
 * waits for that). A port event may be read by any one link on the port, so
 * each link looks at the port state itself as well (also on recv
 * timeouts). */
static void drain_async(struct tp_rdma_link *l)
{
	struct ibv_context *ctx = l->id->verbs;
	struct ibv_async_event ev;
	while (ibv_get_async_event(ctx, &ev) == 0) {
		switch (ev.event_type) {
		case IBV_EVENT_QP_FATAL:
		case IBV_EVENT_QP_REQ_ERR:
		case IBV_EVENT_QP_ACCESS_ERR:
		case IBV_EVENT_PATH_MIG_ERR:
			link_down(ev.element.qp->qp_context);
			break;
		case IBV_EVENT_CQ_ERR:
			link_down(ev.element.cq->cq_context);
			break;
		case IBV_EVENT_PORT_ERR:
			if (ev.element.port_num == l->port_num)
				link_down(l);
			break;
		case IBV_EVENT_DEVICE_FATAL:
			link_down(l);
			break;
		default:
			break;
		}
		ibv_ack_async_event(&ev);
	}
}

static void check_port(struct tp_rdma_link *l)
{
	struct ibv_port_attr pa;
	if (ibv_query_port(l->id->verbs, l->port_num, &pa) == 0 && pa.state != IBV_PORT_ACTIVE &&
	    pa.state != IBV_PORT_ACTIVE_DEFER)
		link_down(l);
}

/* Take a completion channel's pending event (non-blocking fd), so the CQ
 * can be armed again. */
static void take_cq_event(struct ibv_comp_channel *cc, unsigned *acks, bool *armed)
{
	struct ibv_cq *cq;
	void *ctx;
	while (ibv_get_cq_event(cc, &cq, &ctx) == 0) {
		*armed = false;
		if (++*acks >= CQ_ACK_BATCH) {
			ibv_ack_cq_events(cq, *acks);
			*acks = 0;
		}
	}
}

/* ---- receive ---------------------------------------------------------- */

static bool reap_send(struct tp_rdma_link *l);

static int post_recv(struct tp_rdma_link *l, uint32_t i)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)(l->rbuf + (size_t)i * FV_FRAME_MAX_MSG),
		.length = FV_FRAME_MAX_MSG,
		.lkey = l->rmr->lkey,
	};
	struct ibv_recv_wr wr = {.wr_id = i, .sg_list = &sge, .num_sge = 1}, *bad;
	int rc = ibv_post_recv(l->id->qp, &wr, &bad);
	return rc ? -rc : 0;
}

/* One receive completion into rx: the frame's length must be its control
 * part's (docs/transport.md, "Frame"). */
static int take_recv(struct tp_rdma_link *l, const struct ibv_wc *wc, struct fv_tp_rx *rx)
{
	if (wc->status != IBV_WC_SUCCESS || wc->wr_id >= l->nrecv) {
		link_down(l);
		return -ECONNRESET;
	}
	uint32_t i = (uint32_t)wc->wr_id;
	uint8_t *p = l->rbuf + (size_t)i * FV_FRAME_MAX_MSG;
	struct fv_frame_hdr h;
	const char *why;
	if (wc->opcode != IBV_WC_RECV || wc->byte_len < FV_FRAME_HDR || fv_frame_decode(p, &h, &why) < 0 ||
	    fv_frame_ctl_size(&h) != wc->byte_len) {
		if (post_recv(l, i) < 0)
			link_down(l);
		return -EBADMSG;
	}
	rx->msg = p;
	rx->len = wc->byte_len;
	rx->priv = p;
	return 0;
}

static int tp_rdma_recv(struct fv_tp_link *lk, struct fv_tp_rx *rx, int timeout_ms, fv_tp_bulk_dst_fn dst,
			void *ud)
{
	struct tp_rdma_link *l = link_of(lk);
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	/* the send completions too: bulk buffers come back while nobody
	 * sends */
	struct pollfd pfd[5] = {
		{.fd = l->rcc->fd, .events = POLLIN},
		{.fd = l->ech->fd, .events = POLLIN},
		{.fd = l->id->verbs->async_fd, .events = POLLIN},
		{.fd = l->wake_fd, .events = POLLIN},
		{.fd = l->scc->fd, .events = POLLIN},
	};
	(void)dst; /* the bulk is already placed by the peer's RDMA WRITE */
	(void)ud;
	/* polling mode: look at the CQ without sleeping for a while first; a
	 * completion that comes meanwhile costs no interrupt and no wake-up */
	int64_t poll_until = l->poll_ns ? now_ns() + l->poll_ns : 0;
	for (;;) {
		if (atomic_load(&l->shut))
			return -ECONNRESET;
		/* a link the peer closed still delivers what arrived before */
		bool was_down = atomic_load(&l->down);
		struct ibv_wc wc;
		int n = ibv_poll_cq(l->rcq, 1, &wc);
		if (n < 0) {
			link_down(l);
			return -ECONNRESET;
		}
		if (n == 1)
			return take_recv(l, &wc, rx);
		if (was_down)
			return -ECONNRESET;
		if (poll_until && now_ns() < poll_until) {
			fv_tp_cpu_relax();
			continue;
		}
		if (!l->rarmed) {
			/* arm, then look again: a completion may have come
			 * between the poll and the arming */
			if (ibv_req_notify_cq(l->rcq, 0)) {
				link_down(l);
				return -ECONNRESET;
			}
			l->rarmed = true;
			continue;
		}
		n = poll(pfd, 5, left_ms(deadline));
		if (n < 0 && errno != EINTR) {
			link_down(l);
			return -ECONNRESET;
		}
		if (n == 0) {
			check_port(l);
			if (atomic_load(&l->down))
				continue;
			return -EAGAIN;
		}
		if (pfd[0].revents & POLLIN)
			take_cq_event(l->rcc, &l->racks, &l->rarmed);
		if (pfd[1].revents & POLLIN)
			drain_cm(l);
		if (pfd[2].revents & POLLIN) {
			drain_async(l);
			check_port(l);
		}
		if (pfd[4].revents & POLLIN)
			reap_send(l);
	}
}

static void tp_rdma_release(struct fv_tp_link *lk, struct fv_tp_rx *rx)
{
	struct tp_rdma_link *l = link_of(lk);
	uint8_t *p = rx->priv;
	if (!p || p < l->rbuf)
		return;
	size_t i = (size_t)(p - l->rbuf) / FV_FRAME_MAX_MSG;
	rx->priv = NULL;
	if (i >= l->nrecv || atomic_load(&l->down))
		return;
	if (post_recv(l, (uint32_t)i) < 0)
		link_down(l);
}

/* ---- send ------------------------------------------------------------- */

/* Poll the send CQ dry into the slots (smu held): scomp moves past every
 * frame whose SEND completed. Returns false when the link broke. */
static bool poll_send_cq(struct tp_rdma_link *l)
{
	struct ibv_cq *cq;
	void *ctx;
	bool ok = true, got = false;
	while (ibv_get_cq_event(l->scc, &cq, &ctx) == 0) {
		got = true;
		if (++l->sacks >= CQ_ACK_BATCH) {
			ibv_ack_cq_events(cq, l->sacks);
			l->sacks = 0;
		}
	}
	/* armed again before polling: a completion after the poll raises an
	 * event, one before it is polled here */
	if (got && ibv_req_notify_cq(l->scq, 0))
		ok = false;
	for (;;) {
		struct ibv_wc wc[REAP_BATCH];
		int n = ibv_poll_cq(l->scq, REAP_BATCH, wc);
		if (n < 0)
			return false;
		for (int k = 0; k < n; k++) {
			uint64_t seq = wc[k].wr_id >> 1;
			bool is_send = wc[k].wr_id & 1;
			/* frames given up by drain may still be flushed */
			if (seq < l->sdone || seq >= l->sposted)
				continue;
			if (wc[k].status != IBV_WC_SUCCESS) {
				ok = false;
				l->slots[seq % l->nslots].status = -ECONNRESET;
			}
			if (is_send && seq >= l->scomp)
				l->scomp = seq + 1;
		}
		if (n < REAP_BATCH)
			return ok;
	}
}

/* Retire the frames whose SEND completed and run their bulk_done, outside
 * smu. Any thread; returns false when the link broke. */
static bool reap_send(struct tp_rdma_link *l)
{
	bool ok = true;
	for (;;) {
		struct send_done run[REAP_BATCH];
		unsigned n = 0;
		pthread_mutex_lock(&l->smu);
		if (!l->qp_gone && !poll_send_cq(l))
			ok = false;
		bool retired = l->sdone < l->scomp;
		while (l->sdone < l->scomp && n < REAP_BATCH) {
			struct send_slot *s = &l->slots[l->sdone % l->nslots];
			if (s->done)
				run[n++] =
					(struct send_done){.fn = s->done, .ud = s->ud, .status = s->status};
			l->sq_used -= s->nwr;
			*s = (struct send_slot){.done = NULL};
			l->sdone++;
		}
		bool more = l->sdone < l->scomp;
		l->cb_busy += n;
		if (retired && l->swait) {
			uint64_t one = 1;
			if (write(l->sfree_fd, &one, sizeof one) < 0) {
				/* only an overflowing counter fails; it is readable then */
			}
		}
		pthread_mutex_unlock(&l->smu);
		for (unsigned k = 0; k < n; k++)
			run[k].fn(run[k].ud, run[k].status);
		if (n) {
			pthread_mutex_lock(&l->smu);
			l->cb_busy -= n;
			pthread_mutex_unlock(&l->smu);
		}
		if (!more)
			break;
	}
	if (!ok)
		link_down(l);
	return ok;
}

/* Sleep until a reaper retired frames, a send completion or a link event
 * came, or the link went down. */
static void wait_send(struct tp_rdma_link *l)
{
	/* the link's cm and async events too: the owner thread may not be in
	 * recv to see a DISCONNECTED (both only ever break the link) */
	struct pollfd pfd[5] = {
		{.fd = l->scc->fd, .events = POLLIN},
		{.fd = l->sfree_fd, .events = POLLIN},
		{.fd = l->wake_fd, .events = POLLIN},
		{.fd = l->ech->fd, .events = POLLIN},
		{.fd = l->id->verbs->async_fd, .events = POLLIN},
	};
	if (poll(pfd, 5, -1) < 0) {
		if (errno != EINTR)
			link_down(l);
		return;
	}
	if (pfd[1].revents & POLLIN) {
		uint64_t v;
		if (read(l->sfree_fd, &v, sizeof v) < 0) {
			/* EAGAIN: another read took it; nothing to do */
		}
	}
	if (pfd[3].revents & POLLIN)
		drain_cm(l);
	if (pfd[4].revents & POLLIN) {
		drain_async(l);
		check_port(l);
	}
}

/* The RDMA WRITEs of tx's bulk into wr[]/sge[] for frame seq; returns how
 * many, or -EINVAL for a tx that cannot be sent (a caller bug, the link is
 * fine). */
static int build_writes(struct tp_rdma_link *l, const struct fv_tp_tx *tx, uint64_t seq,
			struct ibv_send_wr *wr, struct ibv_sge *sge)
{
	const struct fv_tp_buf *b = tx->bulk;
	if (!b || tx->bulk_len > b->size || b->index >= FV_TP_POOL_MAX_BUFS)
		return -EINVAL;
	struct ibv_mr *mr = __atomic_load_n(&l->mrs[b->index], __ATOMIC_ACQUIRE);
	struct fv_frame_hdr h;
	const char *why;
	if (!mr || fv_frame_decode(tx->msg, &h, &why) < 0 || h.type != FV_FT_REPLY ||
	    h.bulk_len != tx->bulk_len || !h.bulk_addr)
		return -EINVAL;
	int n = 0;
	for (size_t off = 0; off < tx->bulk_len; off += l->write_max, n++) {
		size_t len = tx->bulk_len - off;
		if (len > l->write_max)
			len = l->write_max;
		sge[n] = (struct ibv_sge){
			.addr = (uintptr_t)b->p + off, .length = (uint32_t)len, .lkey = mr->lkey};
		wr[n] = (struct ibv_send_wr){
			.wr_id = seq << 1,
			.next = &wr[n + 1],
			.sg_list = &sge[n],
			.num_sge = 1,
			.opcode = IBV_WR_RDMA_WRITE,
			.wr.rdma = {.remote_addr = h.bulk_addr + off, .rkey = h.bulk_rkey},
		};
	}
	return n;
}

/* Post tx as the next frame. *owned tells whether its bulk_done went to a
 * slot (called at retirement) or is still the caller's to call. */
static int post_frame(struct tp_rdma_link *l, const struct fv_tp_tx *tx, bool *owned)
{
	struct ibv_send_wr wr[WRITES_MAX + 1], *bad = NULL;
	struct ibv_sge sge[WRITES_MAX + 1];
	int nw = 0;
	*owned = false;
	if (tx->len < FV_FRAME_HDR || tx->len > FV_FRAME_MAX_MSG)
		return -EMSGSIZE;
	if (atomic_load(&l->down))
		return -ECONNRESET;
	/* sposted is written by this (the one sending) thread only: read
	 * outside smu, it is exact */
	uint64_t seq = l->sposted;
	if (tx->bulk_len) {
		nw = build_writes(l, tx, seq, wr, sge);
		if (nw < 0)
			return nw;
	}
	uint32_t need = (uint32_t)nw + 1;
	/* give back what is done before taking more, and wait for room */
	reap_send(l);
	pthread_mutex_lock(&l->smu);
	while (!l->drained && !atomic_load(&l->down) &&
	       (l->sposted - l->sdone >= l->nslots || l->sq_used + need > l->sq_depth)) {
		l->swait = true;
		pthread_mutex_unlock(&l->smu);
		wait_send(l);
		reap_send(l);
		pthread_mutex_lock(&l->smu);
	}
	l->swait = false;
	if (l->drained || atomic_load(&l->down)) {
		pthread_mutex_unlock(&l->smu);
		return -ECONNRESET;
	}
	pthread_mutex_unlock(&l->smu);

	/* the slot is ours: it was retired, and only this thread posts */
	unsigned slot = (unsigned)(seq % l->nslots);
	struct ibv_send_wr *s = &wr[nw];
	*s = (struct ibv_send_wr){
		.wr_id = seq << 1 | 1,
		.sg_list = &sge[nw],
		.num_sge = 1,
		.opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED,
	};
	if (tx->len <= l->max_inline) {
		/* copied into the WQE by ibv_post_send: no lkey needed */
		sge[nw] = (struct ibv_sge){.addr = (uintptr_t)tx->msg, .length = (uint32_t)tx->len};
		s->send_flags |= IBV_SEND_INLINE;
	} else {
		uint8_t *p = l->sbuf + (size_t)slot * FV_FRAME_MAX_MSG;
		memcpy(p, tx->msg, tx->len);
		sge[nw] = (struct ibv_sge){
			.addr = (uintptr_t)p, .length = (uint32_t)tx->len, .lkey = l->smr->lkey};
	}

	/* posted and recorded under smu: a reaper polls a completion of this
	 * frame only after it is in its slot, and drain sees every frame */
	pthread_mutex_lock(&l->smu);
	if (l->drained || l->qp_gone) { /* drain may give up before it returns */
		pthread_mutex_unlock(&l->smu);
		return -ECONNRESET;
	}
	int rc = ibv_post_send(l->id->qp, wr, &bad);
	/* WRs before bad went out: their frame waits for them (drain retires
	 * it when no completion comes) */
	uint32_t posted = rc ? (uint32_t)(bad ? bad - wr : 0) : need;
	if (posted) {
		bool cb = tx->bulk && tx->bulk_done;
		l->slots[slot] = (struct send_slot){
			.done = cb ? tx->bulk_done : NULL, .ud = tx->bulk_ud, .nwr = posted};
		l->sq_used += posted;
		l->sposted = seq + 1;
		if (cb)
			l->cb_end = seq + 1;
		*owned = cb;
	}
	pthread_mutex_unlock(&l->smu);
	if (rc) {
		link_down(l);
		return -ECONNRESET;
	}
	return 0;
}

static int tp_rdma_send(struct fv_tp_link *lk, const struct fv_tp_tx *tx)
{
	bool owned;
	int rc = post_frame(link_of(lk), tx, &owned);
	/* link.h: bulk_done exactly once, also when the frame never went out */
	if (!owned && tx->bulk && tx->bulk_done)
		tx->bulk_done(tx->bulk_ud, rc < 0 ? rc : -EIO);
	return rc;
}

/* Retire every frame still on the send queue (drain gave up waiting, smu
 * held): destroying the QP first is what makes their buffers free. */
static void give_up_sends(struct tp_rdma_link *l)
{
	if (!l->qp_gone && l->id->qp) {
		rdma_destroy_qp(l->id);
		l->qp_gone = true;
	}
	for (uint64_t n = l->scomp; n < l->sposted; n++)
		l->slots[n % l->nslots].status = -ECONNRESET;
	l->scomp = l->sposted;
}

static void tp_rdma_shutdown(struct fv_tp_link *lk);

static void tp_rdma_drain(struct fv_tp_link *lk)
{
	struct tp_rdma_link *l = link_of(lk);
	int64_t deadline = now_ms() + DRAIN_MS;
	struct pollfd pfd = {.fd = l->scc->fd, .events = POLLIN};
	tp_rdma_shutdown(lk); /* link.h asks for it before; cheap if so */
	for (;;) {
		reap_send(l);
		pthread_mutex_lock(&l->smu);
		if (l->sdone >= l->cb_end && !l->cb_busy) {
			/* no send may post after this: the sender checks it
			 * under smu */
			l->drained = true;
			pthread_mutex_unlock(&l->smu);
			return;
		}
		if (now_ms() >= deadline)
			give_up_sends(l);
		pthread_mutex_unlock(&l->smu);
		/* after the deadline only bulk_dones running on another
		 * thread are waited for */
		int ms = left_ms(deadline);
		ms = ms < 1 ? 1 : (ms > DRAIN_STEP_MS ? DRAIN_STEP_MS : ms);
		if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
			deadline = now_ms(); /* cannot wait: give up now */
	}
}

/* ---- registration ----------------------------------------------------- */

static int tp_rdma_reg(struct fv_tp_link *lk, const struct fv_tp_buf *b)
{
	struct tp_rdma_link *l = link_of(lk);
	if (b->index >= FV_TP_POOL_MAX_BUFS)
		return -EINVAL;
	if (__atomic_load_n(&l->mrs[b->index], __ATOMIC_ACQUIRE))
		return 0;
	struct ibv_mr *mr =
		ibv_reg_mr(l->pd, b->p, b->size, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!mr)
		return neg_errno(-ENOMEM);
	struct ibv_mr *none = NULL;
	if (!__atomic_compare_exchange_n(&l->mrs[b->index], &none, mr, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		ibv_dereg_mr(mr); /* registered by a concurrent call */
	return 0;
}

static void tp_rdma_bulk_key(struct fv_tp_link *lk, const struct fv_tp_buf *b, size_t off, uint64_t *addr,
			     uint32_t *rkey)
{
	struct tp_rdma_link *l = link_of(lk);
	struct ibv_mr *mr =
		b->index < FV_TP_POOL_MAX_BUFS ? __atomic_load_n(&l->mrs[b->index], __ATOMIC_ACQUIRE) : NULL;
	*addr = mr ? (uintptr_t)b->p + off : 0;
	*rkey = mr ? mr->rkey : 0;
}

/* ---- setup and teardown ----------------------------------------------- */

/* PD, CQs, QP and message buffers for l->id (address and route resolved,
 * or a connect request), receives posted. On failure nothing is left. */
static int link_setup(struct tp_rdma_link *l, const struct fv_tp_link_cfg *cfg, struct fv_err *e)
{
	struct ibv_context *ctx = l->id->verbs;
	struct ibv_device_attr da;
	struct ibv_port_attr pa;
	int rc;

	l->port_num = l->id->port_num;
	if (ibv_query_device(ctx, &da) || ibv_query_port(ctx, l->port_num, &pa))
		return fv_err_sys(e, neg_errno(-EIO), "%s: cannot query RDMA device %s", l->name,
				  ibv_get_device_name(ctx->device));
	if (pa.max_msg_sz < WRITE_MIN)
		return fv_err_set(e, -EOPNOTSUPP, "%s: RDMA device %s allows messages of %u bytes only",
				  l->name, ibv_get_device_name(ctx->device), pa.max_msg_sz);
	l->write_max = pa.max_msg_sz < FV_FRAME_MAX_BULK ? pa.max_msg_sz : FV_FRAME_MAX_BULK;
	uint32_t wr_per_frame = 1 + (uint32_t)((FV_FRAME_MAX_BULK + l->write_max - 1) / l->write_max);
	l->nrecv = (cfg->credits ? cfg->credits : 64) + RECV_EXTRA;
	l->poll_ns = cfg->poll_us > 0 ? (int64_t)cfg->poll_us * 1000 : 0;
	l->nslots = l->nrecv < SEND_SLOTS_MIN ? SEND_SLOTS_MIN : l->nrecv;
	/* room for every slot's frame at its largest; a device with fewer WRs
	 * makes big bulks wait for each other, not fail */
	uint64_t sq_want = (uint64_t)l->nslots * wr_per_frame;
	l->sq_depth = sq_want > (uint64_t)da.max_qp_wr ? (uint32_t)da.max_qp_wr : (uint32_t)sq_want;
	if (l->sq_depth < wr_per_frame || l->nrecv > (uint32_t)da.max_qp_wr ||
	    l->nrecv > (uint32_t)da.max_cqe || l->sq_depth > (uint32_t)da.max_cqe)
		return fv_err_set(e, -EOPNOTSUPP,
				  "%s: RDMA device %s cannot hold %u receives and %u sends on a queue pair",
				  l->name, ibv_get_device_name(ctx->device), l->nrecv, wr_per_frame);
	rc = set_nonblock(ctx->async_fd);
	if (rc < 0)
		return fv_err_sys(e, rc, "%s: async event fd", l->name);

	l->pd = ibv_alloc_pd(ctx);
	if (!l->pd) {
		rc = fv_err_sys(e, neg_errno(-ENOMEM), "%s: ibv_alloc_pd", l->name);
		goto out;
	}
	l->rcc = ibv_create_comp_channel(ctx);
	if (!l->rcc) {
		rc = fv_err_sys(e, neg_errno(-ENOMEM), "%s: ibv_create_comp_channel", l->name);
		goto out_dealloc_pd;
	}
	l->scc = ibv_create_comp_channel(ctx);
	if (!l->scc) {
		rc = fv_err_sys(e, neg_errno(-ENOMEM), "%s: ibv_create_comp_channel", l->name);
		goto out_destroy_rcc;
	}
	if ((rc = set_nonblock(l->rcc->fd)) < 0 || (rc = set_nonblock(l->scc->fd)) < 0) {
		fv_err_sys(e, rc, "%s: completion channel", l->name);
		goto out_destroy_scc;
	}
	l->rcq = ibv_create_cq(ctx, (int)l->nrecv, l, l->rcc, 0);
	if (!l->rcq) {
		rc = fv_err_sys(e, neg_errno(-ENOMEM), "%s: ibv_create_cq (%u entries)", l->name, l->nrecv);
		goto out_destroy_scc;
	}
	l->scq = ibv_create_cq(ctx, (int)l->sq_depth, l, l->scc, 0);
	if (!l->scq) {
		rc = fv_err_sys(e, neg_errno(-ENOMEM), "%s: ibv_create_cq (%u entries)", l->name,
				l->sq_depth);
		goto out_destroy_rcq;
	}

	/* ask for inline sends; a device without (enough) gets what it has */
	static const uint32_t inline_try[] = {INLINE_WANT, 64, 0};
	struct ibv_qp_init_attr qa;
	for (size_t k = 0; k < sizeof inline_try / sizeof inline_try[0]; k++) {
		qa = (struct ibv_qp_init_attr){
			.qp_context = l,
			.send_cq = l->scq,
			.recv_cq = l->rcq,
			.cap = {.max_send_wr = l->sq_depth,
				.max_recv_wr = l->nrecv,
				.max_send_sge = 1,
				.max_recv_sge = 1,
				.max_inline_data = inline_try[k]},
			.qp_type = IBV_QPT_RC,
		};
		rc = rdma_create_qp(l->id, l->pd, &qa);
		if (rc == 0)
			break;
	}
	if (rc) {
		rc = fv_err_sys(e, neg_errno(-ENOMEM), "%s: rdma_create_qp", l->name);
		goto out_destroy_scq;
	}
	/* what the QP got, which may be more than asked */
	struct ibv_qp_attr qattr;
	if (ibv_query_qp(l->id->qp, &qattr, IBV_QP_CAP, &qa) == 0)
		l->max_inline = qa.cap.max_inline_data;

	size_t rsize = (size_t)l->nrecv * FV_FRAME_MAX_MSG;
	size_t ssize = (size_t)l->nslots * FV_FRAME_MAX_MSG;
	if (posix_memalign((void **)&l->rbuf, 4096, rsize)) {
		rc = fv_err_set(e, -ENOMEM, "%s: no memory for %zu bytes of receive buffers", l->name, rsize);
		goto out_destroy_qp;
	}
	l->rmr = ibv_reg_mr(l->pd, l->rbuf, rsize, IBV_ACCESS_LOCAL_WRITE);
	if (!l->rmr) {
		rc = fv_err_sys(e, neg_errno(-ENOMEM),
				"%s: cannot register %zu bytes of receive buffers (ulimit -l?)", l->name,
				rsize);
		goto out_free_rbuf;
	}
	if (posix_memalign((void **)&l->sbuf, 4096, ssize)) {
		rc = fv_err_set(e, -ENOMEM, "%s: no memory for %zu bytes of send buffers", l->name, ssize);
		goto out_dereg_rbuf;
	}
	l->smr = ibv_reg_mr(l->pd, l->sbuf, ssize, 0);
	if (!l->smr) {
		rc = fv_err_sys(e, neg_errno(-ENOMEM),
				"%s: cannot register %zu bytes of send buffers (ulimit -l?)", l->name, ssize);
		goto out_free_sbuf;
	}
	l->slots = calloc(l->nslots, sizeof *l->slots);
	if (!l->slots) {
		rc = fv_err_set(e, -ENOMEM, "%s: no memory for %u send slots", l->name, l->nslots);
		goto out_dereg_sbuf;
	}
	/* armed for good: see "Reaping" */
	if (ibv_req_notify_cq(l->scq, 0)) {
		rc = fv_err_sys(e, neg_errno(-EIO), "%s: ibv_req_notify_cq", l->name);
		goto out_free_slots;
	}
	for (uint32_t i = 0; i < l->nrecv; i++) {
		rc = post_recv(l, i);
		if (rc < 0) {
			fv_err_sys(e, rc, "%s: ibv_post_recv", l->name);
			goto out_free_slots;
		}
	}
	return 0;

out_free_slots:
	free(l->slots);
	l->slots = NULL;
out_dereg_sbuf:
	ibv_dereg_mr(l->smr);
	l->smr = NULL;
out_free_sbuf:
	free(l->sbuf);
	l->sbuf = NULL;
out_dereg_rbuf:
	ibv_dereg_mr(l->rmr);
	l->rmr = NULL;
out_free_rbuf:
	free(l->rbuf);
	l->rbuf = NULL;
out_destroy_qp:
	rdma_destroy_qp(l->id);
out_destroy_scq:
	ibv_destroy_cq(l->scq);
	l->scq = NULL;
out_destroy_rcq:
	ibv_destroy_cq(l->rcq);
	l->rcq = NULL;
out_destroy_scc:
	ibv_destroy_comp_channel(l->scc);
	l->scc = NULL;
out_destroy_rcc:
	ibv_destroy_comp_channel(l->rcc);
	l->rcc = NULL;
out_dealloc_pd:
	ibv_dealloc_pd(l->pd);
	l->pd = NULL;
out:
	return rc;
}

/* Undo link_setup (and reg): the QP goes to the error state first, so that
 * nothing lands in memory about to be deregistered. */
static void link_teardown(struct tp_rdma_link *l)
{
	/* no QP any more when drain had to destroy it */
	if (l->id->qp) {
		struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};
		ibv_modify_qp(l->id->qp, &a, IBV_QP_STATE);
	}
	for (size_t i = 0; i < FV_TP_POOL_MAX_BUFS; i++) {
		if (l->mrs[i]) {
			ibv_dereg_mr(l->mrs[i]);
			l->mrs[i] = NULL;
		}
	}
	if (l->id->qp)
		rdma_destroy_qp(l->id);
	if (l->racks)
		ibv_ack_cq_events(l->rcq, l->racks);
	if (l->sacks)
		ibv_ack_cq_events(l->scq, l->sacks);
	ibv_destroy_cq(l->scq);
	ibv_destroy_cq(l->rcq);
	ibv_destroy_comp_channel(l->scc);
	ibv_destroy_comp_channel(l->rcc);
	free(l->slots);
	ibv_dereg_mr(l->smr);
	free(l->sbuf);
	ibv_dereg_mr(l->rmr);
	free(l->rbuf);
	ibv_dealloc_pd(l->pd);
}

static struct tp_rdma_link *link_new(void)
{
	struct tp_rdma_link *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->base.ops = &fv_tp_rdma_ops;
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0)
		goto out_free;
	l->sfree_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->sfree_fd < 0)
		goto out_close_wake;
	if (pthread_mutex_init(&l->smu, NULL))
		goto out_close_sfree;
	atomic_init(&l->down, false);
	atomic_init(&l->shut, false);
	return l;

out_close_sfree:
	close(l->sfree_fd);
out_close_wake:
	close(l->wake_fd);
out_free:
	free(l);
	return NULL;
}

static void link_del(struct tp_rdma_link *l)
{
	pthread_mutex_destroy(&l->smu);
	close(l->sfree_fd);
	close(l->wake_fd);
	free(l);
}

/* Register the pool's buffers and follow it (cfg->pool may be NULL). */
static int link_attach(struct tp_rdma_link *l, const struct fv_tp_link_cfg *cfg, struct fv_err *e)
{
	if (!cfg->pool)
		return 0;
	int rc = fv_tp_pool_attach(cfg->pool, &l->base);
	if (rc < 0)
		return fv_err_sys(e, rc, "%s: cannot register the bulk buffers (ulimit -l?)", l->name);
	l->pool = cfg->pool;
	return 0;
}

static void tp_rdma_shutdown(struct fv_tp_link *lk)
{
	struct tp_rdma_link *l = link_of(lk);
	atomic_store(&l->shut, true);
	link_down(l);
}

static void tp_rdma_free(struct fv_tp_link *lk)
{
	struct tp_rdma_link *l = link_of(lk);
	if (!l)
		return;
	tp_rdma_shutdown(lk);
	/* an owner that did not drain gets its bulk_dones here; after a
	 * drain nothing is pending and none runs */
	pthread_mutex_lock(&l->smu);
	bool drained = l->drained;
	pthread_mutex_unlock(&l->smu);
	if (!drained)
		tp_rdma_drain(lk);
	if (l->pool)
		fv_tp_pool_detach(l->pool, lk);
	link_teardown(l);
	rdma_destroy_id(l->id);
	rdma_destroy_event_channel(l->ech);
	link_del(l);
}

static const char *tp_rdma_peer_name(struct fv_tp_link *lk)
{
	return link_of(lk)->peer;
}

/* ---- client ----------------------------------------------------------- */

/* The message for a failed connection step, naming the peer. */
static int cm_fail(struct tp_rdma_link *l, const struct fv_tp_path *p, const char *step, int rc,
		   const struct cm_seen *seen, struct fv_err *e)
{
	switch (rc) {
	case -ETIMEDOUT:
		return fv_err_set(e, rc, "%s: cannot %s: no answer within the timeout", l->name, step);
	case -ENODEV:
		return fv_err_set(e, rc, "%s: cannot %s: no RDMA device for %s (%s)", l->name, step,
				  *p->from ? p->from : p->host, dev_hint());
	case -EADDRNOTAVAIL:
		if (*p->from)
			return fv_err_set(e, rc, "%s: cannot %s: %s is not an address of this host", l->name,
					  step, p->from);
		break;
	case -ENETUNREACH:
	case -EHOSTUNREACH:
		return fv_err_set(e, -EHOSTUNREACH, "%s: cannot %s: no route to %s", l->name, step, p->host);
	default:
		break;
	}
	if (seen->any && seen->event == RDMA_CM_EVENT_REJECTED)
		return fv_err_set(
			e, rc, "%s: connection refused (rejected with reason %d: is the server listening?)",
			l->name, seen->status);
	if (seen->any)
		return fv_err_sys(e, rc, "%s: cannot %s (%s, status %d)", l->name, step,
				  rdma_event_str(seen->event), seen->status);
	return fv_err_sys(e, rc, "%s: cannot %s", l->name, step);
}

static int tp_rdma_connect_path(const struct fv_tp_path *p, const struct fv_tp_link_cfg *cfg,
				struct fv_tp_link **out, struct fv_err *e)
{
	int timeout = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	int64_t deadline = now_ms() + timeout;
	struct sockaddr_storage dst, src;
	struct cm_seen seen = {.any = false};
	int rc;

	*out = NULL;
	struct tp_rdma_link *l = link_new();
	if (!l)
		return fv_err_set(e, -ENOMEM, "rdma://%s:%d: out of memory", p->host, p->port);
	snprintf(l->name, sizeof l->name, "rdma://%s:%d%s%s", p->host, p->port, *p->from ? " from " : "",
		 p->from);
	snprintf(l->peer, sizeof l->peer, "%s:%d", p->host, p->port);

	rc = resolve_sa(p->host, p->port, false, &dst);
	if (rc < 0) {
		fv_err_set(e, rc, "%s: cannot resolve host name %s", l->name, p->host);
		goto out_del;
	}
	if (*p->from) {
		rc = resolve_sa(p->from, 0, true, &src);
		if (rc < 0) {
			fv_err_set(e, rc, "%s: cannot resolve local address %s", l->name, p->from);
			goto out_del;
		}
	}
	l->ech = rdma_create_event_channel();
	if (!l->ech) {
		rc = fv_err_sys(e, neg_errno(-ENODEV), "%s: cannot open rdma_cm (is rdma_ucm loaded?)",
				l->name);
		goto out_del;
	}
	rc = set_nonblock(l->ech->fd);
	if (rc < 0) {
		fv_err_sys(e, rc, "%s: rdma_cm event channel", l->name);
		goto out_destroy_ech;
	}
	if (rdma_create_id(l->ech, &l->id, l, RDMA_PS_TCP)) {
		rc = fv_err_sys(e, neg_errno(-ENOMEM), "%s: rdma_create_id", l->name);
		goto out_destroy_ech;
	}

	/* binding the source picks its device: the link rides p->from */
	if (rdma_resolve_addr(l->id, *p->from ? (struct sockaddr *)&src : NULL, (struct sockaddr *)&dst,
			      timeout)) {
		rc = cm_fail(l, p, "resolve address", neg_errno(-EHOSTUNREACH), &seen, e);
		goto out_destroy_id;
	}
	rc = cm_wait(l->ech, RDMA_CM_EVENT_ADDR_RESOLVED, deadline, -1, &seen);
	if (rc < 0) {
		rc = cm_fail(l, p, "resolve address", rc, &seen, e);
		goto out_destroy_id;
	}
	if (rdma_resolve_route(l->id, left_ms(deadline) > 0 ? left_ms(deadline) : 1)) {
		rc = cm_fail(l, p, "resolve route", neg_errno(-EHOSTUNREACH), &seen, e);
		goto out_destroy_id;
	}
	rc = cm_wait(l->ech, RDMA_CM_EVENT_ROUTE_RESOLVED, deadline, -1, &seen);
	if (rc < 0) {
		rc = cm_fail(l, p, "resolve route", rc, &seen, e);
		goto out_destroy_id;
	}

	rc = link_setup(l, cfg, e);
	if (rc < 0)
		goto out_destroy_id;
	rc = link_attach(l, cfg, e);
	if (rc < 0)
		goto out_teardown;

	/* no RDMA READ either way (the server WRITEs, nobody reads); a send
	 * that finds no receive is retried (credits bound the sends) */
	struct rdma_conn_param cp = {.retry_count = 7, .rnr_retry_count = 7};
	if (rdma_connect(l->id, &cp)) {
		rc = cm_fail(l, p, "connect", neg_errno(-ECONNREFUSED), &seen, e);
		goto out_detach;
	}
	rc = cm_wait(l->ech, RDMA_CM_EVENT_ESTABLISHED, deadline, -1, &seen);
	if (rc < 0) {
		rc = cm_fail(l, p, "connect", rc, &seen, e);
		goto out_detach;
	}
	sa_str(rdma_get_peer_addr(l->id), l->peer, sizeof l->peer);
	*out = &l->base;
	return 0;

out_detach:
	if (l->pool)
		fv_tp_pool_detach(l->pool, &l->base);
out_teardown:
	link_teardown(l);
out_destroy_id:
	rdma_destroy_id(l->id);
out_destroy_ech:
	rdma_destroy_event_channel(l->ech);
out_del:
	link_del(l);
	return rc;
}

/* ---- server ----------------------------------------------------------- */

static struct tp_rdma_listener *listener_of(struct fv_tp_listener *l)
{
	return (struct tp_rdma_listener *)l;
}

static int tp_rdma_listen(const struct fv_tp_path *p, const struct fv_tp_link_cfg *cfg,
			  struct fv_tp_listener **out, struct fv_err *e)
{
	struct sockaddr_storage sa;
	int rc;

	*out = NULL;
	struct tp_rdma_listener *ls = calloc(1, sizeof *ls);
	if (!ls)
		return fv_err_set(e, -ENOMEM, "rdma://%s:%d: out of memory", p->host, p->port);
	ls->cfg = *cfg;
	snprintf(ls->name, sizeof ls->name, "rdma://%s:%d", *p->host ? p->host : "0.0.0.0", p->port);
	rc = resolve_sa(p->host, p->port, true, &sa);
	if (rc < 0) {
		fv_err_set(e, rc, "%s: cannot resolve the listen address", ls->name);
		goto out_free;
	}
	ls->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ls->stop_fd < 0) {
		rc = fv_err_sys(e, neg_errno(-EMFILE), "%s: eventfd", ls->name);
		goto out_free;
	}
	ls->ech = rdma_create_event_channel();
	if (!ls->ech) {
		rc = fv_err_sys(e, neg_errno(-ENODEV), "%s: cannot open rdma_cm (is rdma_ucm loaded?)",
				ls->name);
		goto out_close_stop;
	}
	rc = set_nonblock(ls->ech->fd);
	if (rc < 0) {
		fv_err_sys(e, rc, "%s: rdma_cm event channel", ls->name);
		goto out_destroy_ech;
	}
	if (rdma_create_id(ls->ech, &ls->id, ls, RDMA_PS_TCP)) {
		rc = fv_err_sys(e, neg_errno(-ENOMEM), "%s: rdma_create_id", ls->name);
		goto out_destroy_ech;
	}
	if (rdma_bind_addr(ls->id, (struct sockaddr *)&sa)) {
		rc = neg_errno(-EADDRINUSE);
		if (rc == -ENODEV || rc == -EADDRNOTAVAIL)
			rc = fv_err_set(e, -ENODEV, "%s: cannot listen: no RDMA device for %s (%s)", ls->name,
					p->host, dev_hint());
		else
			fv_err_sys(e, rc, "%s: cannot bind", ls->name);
		goto out_destroy_id;
	}
	if (rdma_listen(ls->id, LISTEN_BACKLOG)) {
		rc = fv_err_sys(e, neg_errno(-EADDRINUSE), "%s: cannot listen", ls->name);
		goto out_destroy_id;
	}
	*out = (struct fv_tp_listener *)ls;
	return 0;

out_destroy_id:
	rdma_destroy_id(ls->id);
out_destroy_ech:
	rdma_destroy_event_channel(ls->ech);
out_close_stop:
	close(ls->stop_fd);
out_free:
	free(ls);
	return rc;
}

/* Set up a link for connect request id and accept it. The id is taken
 * over: rejected and destroyed on failure. */
static int accept_one(struct tp_rdma_listener *ls, struct rdma_cm_id *id, struct fv_tp_link **out,
		      struct fv_err *e)
{
	int timeout = ls->cfg.timeout_ms > 0 ? ls->cfg.timeout_ms : DEFAULT_TIMEOUT_MS;
	struct cm_seen seen = {.any = false};
	struct rdma_event_channel *ech = NULL;
	char peer[96];
	int rc;

	sa_str(rdma_get_peer_addr(id), peer, sizeof peer);
	struct tp_rdma_link *l = link_new();
	if (!l) {
		rc = fv_err_set(e, -ENOMEM, "rdma://%s: out of memory for a link", peer);
		goto out_reject;
	}
	snprintf(l->peer, sizeof l->peer, "%s", peer);
	snprintf(l->name, sizeof l->name, "rdma://%s", peer);
	/* the owner thread watches its own link's events, not the listener's */
	ech = rdma_create_event_channel();
	if (!ech) {
		rc = fv_err_sys(e, neg_errno(-ENOMEM), "%s: rdma_create_event_channel", l->name);
		goto out_reject;
	}
	rc = set_nonblock(ech->fd);
	if (rc < 0) {
		fv_err_sys(e, rc, "%s: rdma_cm event channel", l->name);
		goto out_reject;
	}
	if (rdma_migrate_id(id, ech)) {
		rc = fv_err_sys(e, neg_errno(-EIO), "%s: rdma_migrate_id", l->name);
		goto out_reject;
	}
	id->context = l;
	l->id = id;
	l->ech = ech;
	rc = link_setup(l, &ls->cfg, e);
	if (rc < 0)
		goto out_reject;
	rc = link_attach(l, &ls->cfg, e);
	if (rc < 0)
		goto out_teardown;
	/* the receives are posted: the client may send as soon as it is up */
	struct rdma_conn_param cp = {.retry_count = 7, .rnr_retry_count = 7};
	if (rdma_accept(id, &cp)) {
		rc = fv_err_sys(e, neg_errno(-ECONNABORTED), "%s: rdma_accept", l->name);
		goto out_detach;
	}
	rc = cm_wait(ech, RDMA_CM_EVENT_ESTABLISHED, now_ms() + timeout, ls->stop_fd, &seen);
	if (rc < 0) {
		if (rc == -ETIMEDOUT)
			fv_err_set(e, rc, "%s: connection not established within %d ms", l->name, timeout);
		else if (rc == -ECANCELED)
			fv_err_set(e, rc, "%s: listener stopped", ls->name);
		else
			fv_err_sys(e, rc, "%s: connection not established (%s, status %d)", l->name,
				   rdma_event_str(seen.event), seen.status);
		rdma_disconnect(id);
		goto out_detach;
	}
	*out = &l->base;
	return 0;

out_detach:
	if (l->pool)
		fv_tp_pool_detach(l->pool, &l->base);
out_teardown:
	link_teardown(l);
out_reject:
	/* the id goes before the channel it may have moved to */
	rdma_reject(id, NULL, 0);
	rdma_destroy_id(id);
	if (ech)
		rdma_destroy_event_channel(ech);
	if (l)
		link_del(l);
	return rc;
}

static int tp_rdma_accept_link(struct fv_tp_listener *lst, struct fv_tp_link **out, struct fv_err *e)
{
	struct tp_rdma_listener *ls = listener_of(lst);
	struct pollfd pfd[2] = {{.fd = ls->ech->fd, .events = POLLIN}, {.fd = ls->stop_fd, .events = POLLIN}};
	struct rdma_cm_event *ev;
	*out = NULL;
	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			return fv_err_sys(e, neg_errno(-EIO), "%s: poll", ls->name);
		if (pfd[1].revents & POLLIN)
			return fv_err_set(e, -ECANCELED, "%s: listener stopped", ls->name);
		if (!(pfd[0].revents & POLLIN))
			continue;
		while (rdma_get_cm_event(ls->ech, &ev) == 0) {
			enum rdma_cm_event_type t = ev->event;
			struct rdma_cm_id *id = ev->id;
			/* acknowledged before the id moves to its own channel
			 * (rdma_migrate_id waits for that) */
			rdma_ack_cm_event(ev);
			if (t == RDMA_CM_EVENT_CONNECT_REQUEST)
				return accept_one(ls, id, out, e);
		}
	}
}

static void tp_rdma_listener_stop(struct fv_tp_listener *lst)
{
	uint64_t one = 1;
	if (write(listener_of(lst)->stop_fd, &one, sizeof one) < 0) {
		/* only an overflowing counter fails; it is readable then */
	}
}

static void tp_rdma_listener_free(struct fv_tp_listener *lst)
{
	struct tp_rdma_listener *ls = listener_of(lst);
	if (!ls)
		return;
	rdma_destroy_id(ls->id);
	rdma_destroy_event_channel(ls->ech);
	close(ls->stop_fd);
	free(ls);
}

static int tp_rdma_listener_port(struct fv_tp_listener *lst)
{
	return ntohs(rdma_get_src_port(listener_of(lst)->id));
}

const struct fv_tp_ops fv_tp_rdma_ops = {
	.name = "rdma",
	.connect = tp_rdma_connect_path,
	.listen = tp_rdma_listen,
	.accept = tp_rdma_accept_link,
	.listener_stop = tp_rdma_listener_stop,
	.listener_free = tp_rdma_listener_free,
	.listener_port = tp_rdma_listener_port,
	.send = tp_rdma_send,
	.recv = tp_rdma_recv,
	.release = tp_rdma_release,
	.reg = tp_rdma_reg,
	.bulk_key = tp_rdma_bulk_key,
	.shutdown = tp_rdma_shutdown,
	.drain = tp_rdma_drain,
	.free = tp_rdma_free,
	.peer_name = tp_rdma_peer_name,
};
