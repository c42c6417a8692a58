/* tcp: the TCP backend (link.h). A frame's control part and its bulk go
 * out in one sendmsg; the receiver reads into a buffer that holds at least
 * one whole control part and reads a reply's bulk straight into its
 * destination (what is already buffered is copied, the rest is read there
 * directly). Socket buffers are left to the kernel's autotuning: setting
 * SO_RCVBUF would switch it off and be capped by net.core.rmem_max.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "link.h"

#define RBUF (FV_FRAME_MAX_MSG + 65536)

struct tcp_link {
	struct fv_tp_link base;
	int fd;
	atomic_bool down;
	_Atomic uint64_t rx_bytes;
	uint8_t *rbuf;
	size_t start, end; /* valid bytes rbuf[start..end) */
	size_t pending;    /* bytes of the frame last returned, released later */
	int rcvtimeo_ms;   /* SO_RCVTIMEO now set (-1: none) */
	char peer[80];
};

struct tcp_listener {
	int fd;
	int stopfd; /* eventfd: listener_stop */
	int port;
};

static void addr_name(const struct sockaddr *sa, char *out, size_t n)
{
	char host[64] = "?", port[8] = "?";
	getnameinfo(sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
		    host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(out, n, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
}

static int resolve(const char *host, int port, int passive, struct addrinfo **res)
{
	char ps[8];
	snprintf(ps, sizeof ps, "%d", port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)};
	int rc = getaddrinfo(*host ? host : NULL, ps, &hints, res);
	if (rc == EAI_SYSTEM)
		return -errno;
	return rc ? -EHOSTUNREACH : 0;
}

static struct tcp_link *link_new(int fd)
{
	struct tcp_link *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->rbuf = malloc(RBUF);
	if (!t->rbuf) {
		free(t);
		return NULL;
	}
	t->base.ops = &fv_tp_tcp_ops;
	t->fd = fd;
	t->rcvtimeo_ms = -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof ss;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		addr_name((struct sockaddr *)&ss, t->peer, sizeof t->peer);
	return t;
}

static int tcp_connect(const struct fv_tp_path *p, const struct fv_tp_link_cfg *cfg, struct fv_tp_link **out,
		       struct fv_err *e)
{
	char name[128];
	fv_tp_path_str(p, name, sizeof name);
	struct addrinfo *res = NULL, *src = NULL;
	int fd = -1, rc = resolve(p->host, p->port, 0, &res);
	if (rc < 0)
		return fv_err_set(e, rc, "%s: cannot resolve %s", name, p->host);
	if (*p->from && (rc = resolve(p->from, 0, 0, &src)) < 0) {
		fv_err_set(e, rc, "%s: cannot resolve local address %s", name, p->from);
		goto out;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		rc = fv_err_sys(e, -errno, "%s: socket", name);
		goto out;
	}
	if (src && bind(fd, src->ai_addr, src->ai_addrlen) < 0) {
		rc = fv_err_sys(e, -errno, "%s: cannot bind to local address %s", name, p->from);
		goto out;
	}
	if (connect(fd, res->ai_addr, res->ai_addrlen) < 0 && errno != EINPROGRESS) {
		rc = fv_err_sys(e, -errno, "%s: cannot connect", name);
		goto out;
	}
	struct pollfd pf = {.fd = fd, .events = POLLOUT};
	int n = poll(&pf, 1, cfg->timeout_ms > 0 ? cfg->timeout_ms : 5000);
	int soerr = 0;
	socklen_t sl = sizeof soerr;
	if (n == 0) {
		rc = fv_err_set(e, -ETIMEDOUT, "%s: no answer to connect within %d ms", name,
				cfg->timeout_ms);
		goto out;
	}
	if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
		rc = fv_err_sys(e, -(soerr ? soerr : errno), "%s: cannot connect", name);
		goto out;
	}
	if (fcntl(fd, F_SETFL, 0) < 0) {
		rc = fv_err_sys(e, -errno, "%s: fcntl", name);
		goto out;
	}
	struct tcp_link *t = link_new(fd);
	if (!t) {
		rc = fv_err_set(e, -ENOMEM, "%s: out of memory", name);
		goto out;
	}
	fd = -1;
	*out = &t->base;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (res)
		freeaddrinfo(res);
	if (src)
		freeaddrinfo(src);
	return rc;
}

static int tcp_listen(const struct fv_tp_path *p, const struct fv_tp_link_cfg *cfg,
		      struct fv_tp_listener **out, struct fv_err *e)
{
	(void)cfg;
	char name[128];
	fv_tp_path_str(p, name, sizeof name);
	struct addrinfo *res = NULL;
	struct tcp_listener *l = NULL;
	int fd = -1, rc = resolve(p->host, p->port, 1, &res);
	if (rc < 0)
		return fv_err_set(e, rc, "%s: cannot resolve %s", name, p->host);
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
		rc = fv_err_sys(e, -errno, "%s: socket", name);
		goto out;
	}
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		rc = fv_err_sys(e, -errno, "%s: cannot listen", name);
		goto out;
	}
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		rc = fv_err_sys(e, -errno, "%s: getsockname", name);
		goto out;
	}
	l = calloc(1, sizeof *l);
	if (!l || (l->stopfd = eventfd(0, EFD_CLOEXEC)) < 0) {
		rc = fv_err_set(e, -ENOMEM, "%s: out of memory", name);
		goto out;
	}
	uint16_t nport; /* at the same offset in sockaddr_in and sockaddr_in6 */
	memcpy(&nport, (const uint8_t *)&ss + offsetof(struct sockaddr_in, sin_port), sizeof nport);
	l->port = ntohs(nport);
	l->fd = fd;
	fd = -1;
	*out = (struct fv_tp_listener *)l;
	l = NULL;
	rc = 0;
out:
	free(l);
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return rc;
}

static int tcp_accept(struct fv_tp_listener *lp, struct fv_tp_link **out, struct fv_err *e)
{
	struct tcp_listener *l = (struct tcp_listener *)lp;
	struct pollfd pf[2] = {{.fd = l->fd, .events = POLLIN}, {.fd = l->stopfd, .events = POLLIN}};
	for (;;) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return fv_err_sys(e, -errno, "poll");
		}
		if (pf[1].revents)
			return -ECANCELED;
		int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
				continue;
			return fv_err_sys(e, -errno, "accept");
		}
		struct tcp_link *t = link_new(fd);
		if (!t) {
			close(fd);
			return fv_err_set(e, -ENOMEM, "out of memory for a new connection");
		}
		*out = &t->base;
		return 0;
	}
}

static void tcp_listener_stop(struct fv_tp_listener *lp)
{
	struct tcp_listener *l = (struct tcp_listener *)lp;
	uint64_t one = 1;
	if (write(l->stopfd, &one, sizeof one) < 0) {
		/* the counter cannot overflow with one write per stop */
	}
}

static void tcp_listener_free(struct fv_tp_listener *lp)
{
	struct tcp_listener *l = (struct tcp_listener *)lp;
	if (!l)
		return;
	close(l->fd);
	close(l->stopfd);
	free(l);
}

static int tcp_listener_port(struct fv_tp_listener *lp)
{
	return ((struct tcp_listener *)lp)->port;
}

static int tcp_send(struct fv_tp_link *lk, const struct fv_tp_tx *tx)
{
	struct tcp_link *t = (struct tcp_link *)lk;
	struct iovec iov[2] = {{(void *)tx->msg, tx->len}, {tx->bulk ? tx->bulk->p : NULL, tx->bulk_len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = tx->bulk_len ? 2 : 1};
	int rc = 0;
	while (mh.msg_iovlen) {
		if (atomic_load(&t->down)) {
			rc = -ECONNRESET;
			break;
		}
		ssize_t n = sendmsg(t->fd, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = errno == EPIPE ? -ECONNRESET : -errno;
			break;
		}
		while (mh.msg_iovlen && (size_t)n >= mh.msg_iov[0].iov_len) {
			n -= (ssize_t)mh.msg_iov[0].iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen) {
			mh.msg_iov[0].iov_base = (uint8_t *)mh.msg_iov[0].iov_base + n;
			mh.msg_iov[0].iov_len -= (size_t)n;
		}
	}
	/* the kernel has its own copy: the buffer is free */
	if (tx->bulk && tx->bulk_done)
		tx->bulk_done(tx->bulk_ud, rc);
	return rc;
}

/* Read more bytes into p[0..n) (at least 1). Returns bytes read or -errno
 * (-ECONNRESET at end of stream or after shutdown). The socket's receive
 * timeout (SO_RCVTIMEO, set by tcp_recv) ends a wait with -EAGAIN when
 * may_time_out (no byte of the next frame read yet); inside a frame it only
 * wakes us to look at the shutdown flag. */
static ssize_t read_some(struct tcp_link *t, void *p, size_t n, bool may_time_out)
{
	for (;;) {
		if (atomic_load(&t->down))
			return -ECONNRESET;
		ssize_t r = read(t->fd, p, n);
		if (r > 0) {
			atomic_fetch_add_explicit(&t->rx_bytes, (uint64_t)r, memory_order_relaxed);
			return r;
		}
		if (r == 0)
			return -ECONNRESET;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (may_time_out)
				return -EAGAIN;
			continue;
		}
		if (errno != EINTR)
			return errno == EPIPE ? -ECONNRESET : -errno;
	}
}

/* Make rbuf hold at least need bytes from start. */
static int fill(struct tcp_link *t, size_t need)
{
	if (t->start + need > RBUF) {
		memmove(t->rbuf, t->rbuf + t->start, t->end - t->start);
		t->end -= t->start;
		t->start = 0;
	}
	while (t->end - t->start < need) {
		ssize_t r = read_some(t, t->rbuf + t->end, RBUF - t->end, t->end == t->start);
		if (r < 0)
			return (int)r;
		t->end += (size_t)r;
	}
	return 0;
}

static int tcp_recv(struct fv_tp_link *lk, struct fv_tp_rx *rx, int timeout_ms, fv_tp_bulk_dst_fn dst,
		    void *ud)
{
	struct tcp_link *t = (struct tcp_link *)lk;
	if (t->pending) { /* the caller did not release: do it now */
		t->start += t->pending;
		t->pending = 0;
	}
	if (t->start == t->end)
		t->start = t->end = 0;
	if (timeout_ms != t->rcvtimeo_ms) { /* no poll() per frame: the socket times out */
		struct timeval tv = {.tv_sec = timeout_ms > 0 ? timeout_ms / 1000 : 0,
				     .tv_usec = timeout_ms > 0 ? (timeout_ms % 1000) * 1000 : 0};
		if (setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
			return -errno;
		t->rcvtimeo_ms = timeout_ms;
	}
	int rc = fill(t, FV_FRAME_HDR);
	if (rc < 0)
		return rc;
	struct fv_frame_hdr h;
	const char *why;
	if (fv_frame_decode(t->rbuf + t->start, &h, &why) < 0)
		return -EBADMSG;
	size_t n = fv_frame_ctl_size(&h);
	if ((rc = fill(t, n)) < 0)
		return rc;
	rx->msg = t->rbuf + t->start;
	rx->len = n;
	rx->priv = NULL;
	t->pending = n;
	if (h.type == FV_FT_REPLY && h.bulk_len) {
		uint8_t *d = dst ? dst(ud, &h) : NULL;
		if (!d)
			return -EBADMSG;
		/* bytes already buffered, then the rest straight into d */
		size_t have = t->end - t->start - n;
		if (have > h.bulk_len)
			have = h.bulk_len;
		memcpy(d, t->rbuf + t->start + n, have);
		size_t got = have;
		while (got < h.bulk_len) {
			ssize_t r = read_some(t, d + got, h.bulk_len - got, false);
			if (r < 0)
				return (int)r;
			got += (size_t)r;
		}
		/* the buffered bulk bytes are consumed: close the gap so the
		 * next frame follows the control part */
		memmove(t->rbuf + t->start + n, t->rbuf + t->start + n + have, t->end - t->start - n - have);
		t->end -= have;
	}
	return 0;
}

static void tcp_release(struct fv_tp_link *lk, struct fv_tp_rx *rx)
{
	struct tcp_link *t = (struct tcp_link *)lk;
	(void)rx;
	t->start += t->pending;
	t->pending = 0;
}

static void tcp_shutdown(struct fv_tp_link *lk)
{
	struct tcp_link *t = (struct tcp_link *)lk;
	atomic_store(&t->down, true);
	shutdown(t->fd, SHUT_RDWR);
}

static void tcp_free(struct fv_tp_link *lk)
{
	struct tcp_link *t = (struct tcp_link *)lk;
	if (!t)
		return;
	close(t->fd);
	free(t->rbuf);
	free(t);
}

static const char *tcp_peer_name(struct fv_tp_link *lk)
{
	return ((struct tcp_link *)lk)->peer;
}

static uint64_t tcp_rx_bytes(struct fv_tp_link *lk)
{
	return atomic_load_explicit(&((struct tcp_link *)lk)->rx_bytes, memory_order_relaxed);
}

const struct fv_tp_ops fv_tp_tcp_ops = {
	.name = "tcp",
	.connect = tcp_connect,
	.listen = tcp_listen,
	.accept = tcp_accept,
	.listener_stop = tcp_listener_stop,
	.listener_free = tcp_listener_free,
	.listener_port = tcp_listener_port,
	.send = tcp_send,
	.recv = tcp_recv,
	.release = tcp_release,
	.reg = NULL,
	.bulk_key = NULL,
	.shutdown = tcp_shutdown,
	.free = tcp_free,
	.peer_name = tcp_peer_name,
	.rx_bytes = tcp_rx_bytes,
};

const struct fv_tp_ops *fv_tp_ops_for(int kind)
{
	return kind == FV_TP_RDMA ? &fv_tp_rdma_ops : &fv_tp_tcp_ops;
}
