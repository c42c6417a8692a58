/* session: one authenticated link: the handshake (docs/transport.md,
 * "Handshake"), then sealed frames in both directions. Used by client.c and
 * server.c; not part of the public API.
 *
 * Threads: fv_tp_sess_send may be called by any thread. It takes the next
 * frame counter under send_mu, seals a large bulk payload outside it (so
 * that several threads encrypt or checksum at once), then sends under
 * send_mu when every frame of a lower counter has left: frames leave in
 * counter order, as the receiver expects. fv_tp_sess_recv only by the
 * link's owner thread.
 */
#ifndef FV_SESSION_H
#define FV_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "frame.h"
#include "link.h"
#include "tp.h"

struct fv_tp_sess {
	struct fv_tp_link *link;
	pthread_mutex_t send_mu;
	pthread_cond_t turn_cv; /* tx_sent moved, for senders waiting their turn */
	struct fv_frame_dir tx; /* under send_mu (counter: the next frame's) */
	uint64_t tx_sent;       /* under send_mu: frames sent (or given up), = next to send */
	unsigned tx_waiting;    /* under send_mu: senders waiting on turn_cv */
	struct fv_frame_dir rx; /* owner thread */
	uint8_t *sendbuf;       /* FV_FRAME_MAX_MSG, under send_mu */
	uint32_t credits;       /* client: requests allowed in flight; server: what it granted */
	uint8_t peer_pk[FV_TP_KEY];
	char peer_key_name[64]; /* the authorized_peers name of the peer's key */
	uint32_t peer_index;    /* its entry's index in the authorized peers */
	char peer[96];          /* "tcp://ADDR:PORT" for log lines */
	const struct fv_tp_logger *log;
};

/* Wrap link l (taking it over: fv_tp_sess_free frees it). */
int fv_tp_sess_new(struct fv_tp_link *l, const char *kind, const struct fv_tp_logger *log,
		   struct fv_tp_sess **out);
void fv_tp_sess_free(struct fv_tp_sess *s);

/* Client side of the handshake: mode is enum fv_frame_mode, credits the
 * receives the link has posted. Fails with -EACCES (refused either way),
 * -EBADMSG, -ECONNRESET or -ETIMEDOUT, with the reason in e. */
int fv_tp_sess_client(struct fv_tp_sess *s, const struct fv_tp_node_key *key, const struct fv_tp_peers *peers,
		      int mode, uint32_t credits, int timeout_ms, struct fv_err *e);
/* Server side: grants at most credits. */
int fv_tp_sess_server(struct fv_tp_sess *s, const struct fv_tp_node_key *key, const struct fv_tp_peers *peers,
		      bool require_encrypt, uint32_t credits, int timeout_ms, struct fv_err *e);

/* Send a frame: header h (type, flags, id, bulk fields; ctl_len and
 * bulk_len are set here), ctl[0..ctl_len), and for a REPLY the bulk
 * bulk->p[0..bulk_len) (sealed in place: the buffer is the caller's
 * scratch). Returns 0 or the link's error. With a bulk, done(ud, status)
 * runs exactly once when the buffer is free again (struct fv_tp_tx). */
int fv_tp_sess_send(struct fv_tp_sess *s, struct fv_frame_hdr *h, const void *ctl, uint32_t ctl_len,
		    struct fv_tp_buf *bulk, uint32_t bulk_len, void (*done)(void *ud, int status), void *ud);

/* Receive, check and open the next frame (ctl decrypted in place in
 * rx->msg; a REPLY's bulk opened in the buffer dst returns). *ctl points at
 * the control message. Returns 0, -EAGAIN (timeout), -ECONNRESET, or
 * -EBADMSG with the reason in *why. Give rx back with fv_tp_sess_release. */
int fv_tp_sess_recv(struct fv_tp_sess *s, struct fv_tp_rx *rx, struct fv_frame_hdr *h, uint8_t **ctl,
		    int timeout_ms, fv_tp_bulk_dst_fn dst, void *ud, const char **why);
void fv_tp_sess_release(struct fv_tp_sess *s, struct fv_tp_rx *rx);

/* Send CLOSE with code and reason (best effort). */
void fv_tp_sess_close_msg(struct fv_tp_sess *s, int code, const char *reason);

/* A log line through log (printf-style). */
void fv_tp_log(const struct fv_tp_logger *log, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Monotonic clock in ns. */
int64_t fv_tp_now_ns(void);

#endif
