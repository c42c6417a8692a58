/* session: docs/transport.md, "Handshake" and "Trailers and the session
 * modes". */
#include "session.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "../common/buf.h"

#define HELLO_LEN 120
#define WELCOME_LEN 152
#define PROOF_LEN 32

void fv_tp_log(const struct fv_tp_logger *log, int prio, const char *fmt, ...)
{
	if (!log || !log->fn)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log->fn(log->ud, prio, msg);
}

int64_t fv_tp_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int fv_tp_sess_new(struct fv_tp_link *l, const char *kind, const struct fv_tp_logger *log,
		   struct fv_tp_sess **out)
{
	struct fv_tp_sess *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->sendbuf = malloc(FV_FRAME_MAX_MSG);
	if (!s->sendbuf) {
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->send_mu, NULL);
	pthread_cond_init(&s->turn_cv, NULL);
	s->link = l;
	s->log = log;
	s->tx.mode = s->rx.mode = FV_MODE_INTEGRITY;
	snprintf(s->peer, sizeof s->peer, "%s://%s", kind, l->ops->peer_name(l));
	*out = s;
	return 0;
}

void fv_tp_sess_free(struct fv_tp_sess *s)
{
	if (!s)
		return;
	s->link->ops->free(s->link);
	fv_frame_dir_free(&s->tx);
	fv_frame_dir_free(&s->rx);
	pthread_mutex_destroy(&s->send_mu);
	pthread_cond_destroy(&s->turn_cv);
	free(s->sendbuf);
	free(s);
}

/* Bulk payloads from this size on are sealed outside send_mu. */
#define EARLY_SEAL_MIN (64u << 10)

int fv_tp_sess_send(struct fv_tp_sess *s, struct fv_frame_hdr *h, const void *ctl, uint32_t ctl_len,
		    struct fv_tp_buf *bulk, uint32_t bulk_len, void (*done)(void *ud, int status), void *ud)
{
	if (ctl_len > FV_FRAME_MAX_CTL || bulk_len > FV_FRAME_MAX_BULK || (bulk_len && !bulk)) {
		if (bulk_len && done)
			done(ud, -EMSGSIZE);
		return -EMSGSIZE;
	}
	h->ctl_len = ctl_len;
	if (h->type == FV_FT_REPLY)
		h->bulk_len = bulk_len;
	else
		bulk_len = 0;
	uint8_t hdr[FV_FRAME_HDR], btrailer[FV_FRAME_TRAILER];
	fv_frame_encode(h, hdr);
	bool early = bulk_len >= EARLY_SEAL_MIN;
	int rc = 0;
	pthread_mutex_lock(&s->send_mu);
	uint64_t ctr = s->tx.counter;
	fv_frame_next(&s->tx);
	if (early) {
		/* a large payload is sealed while other frames go out */
		pthread_mutex_unlock(&s->send_mu);
		rc = fv_frame_seal_at(&s->tx, ctr, 1, hdr, bulk->p, bulk_len, btrailer);
		pthread_mutex_lock(&s->send_mu);
	}
	while (s->tx_sent != ctr) {
		s->tx_waiting++;
		pthread_cond_wait(&s->turn_cv, &s->send_mu);
		s->tx_waiting--;
	}
	uint8_t *m = s->sendbuf;
	memcpy(m, hdr, FV_FRAME_HDR);
	size_t off = FV_FRAME_HDR;
	if (ctl_len && rc == 0) {
		memcpy(m + off, ctl, ctl_len);
		rc = fv_frame_seal_at(&s->tx, ctr, 0, m, m + off, ctl_len, m + off + ctl_len);
		off += ctl_len + FV_FRAME_TRAILER;
	}
	struct fv_tp_tx tx = {.msg = m, .len = 0};
	if (bulk_len && rc == 0) {
		if (early)
			memcpy(m + off, btrailer, FV_FRAME_TRAILER);
		else
			rc = fv_frame_seal_at(&s->tx, ctr, 1, m, bulk->p, bulk_len, m + off);
		off += FV_FRAME_TRAILER;
		tx.bulk = bulk;
		tx.bulk_len = bulk_len;
		tx.bulk_done = done;
		tx.bulk_ud = ud;
	}
	tx.len = off;
	/* a failed send still takes its turn: the link is broken, and the
	 * senders after it must learn that from their own send. A frame that
	 * could not be sealed is not sent, and its counter would be missing:
	 * the link is shut down instead. */
	if (rc == 0) {
		rc = s->link->ops->send(s->link, &tx);
	} else {
		s->link->ops->shutdown(s->link);
		if (bulk_len && done)
			done(ud, rc);
	}
	s->tx_sent++;
	if (s->tx_waiting)
		pthread_cond_broadcast(&s->turn_cv);
	pthread_mutex_unlock(&s->send_mu);
	return rc;
}

int fv_tp_sess_recv(struct fv_tp_sess *s, struct fv_tp_rx *rx, struct fv_frame_hdr *h, uint8_t **ctl,
		    int timeout_ms, fv_tp_bulk_dst_fn dst, void *ud, const char **why)
{
	*why = NULL;
	int rc = s->link->ops->recv(s->link, rx, timeout_ms, dst, ud);
	if (rc == -EBADMSG)
		*why = "malformed frame";
	if (rc < 0)
		return rc;
	rc = fv_frame_parse(rx->msg, rx->len, h, why);
	if (rc < 0)
		goto bad;
	uint8_t *m = rx->msg, *p = m + FV_FRAME_HDR;
	*ctl = p;
	if (h->ctl_len && fv_frame_open(&s->rx, 0, m, p, h->ctl_len, p + h->ctl_len) < 0) {
		*why = s->rx.mode == FV_MODE_ENCRYPT ? "control message failed authentication"
						     : "control message checksum mismatch";
		rc = -EBADMSG;
		goto bad;
	}
	if (h->type == FV_FT_REPLY && h->bulk_len) {
		uint8_t *b = dst ? dst(ud, h) : NULL;
		const uint8_t *trailer = m + fv_frame_ctl_size(h) - FV_FRAME_TRAILER;
		if (!b) {
			*why = "reply to no request in flight";
			rc = -EBADMSG;
			goto bad;
		}
		if (fv_frame_open(&s->rx, 1, m, b, h->bulk_len, trailer) < 0) {
			*why = s->rx.mode == FV_MODE_ENCRYPT ? "bulk payload failed authentication"
							     : "bulk payload checksum mismatch";
			rc = -EBADMSG;
			goto bad;
		}
	}
	fv_frame_next(&s->rx);
	return 0;
bad:
	s->link->ops->release(s->link, rx);
	return rc;
}

void fv_tp_sess_release(struct fv_tp_sess *s, struct fv_tp_rx *rx)
{
	s->link->ops->release(s->link, rx);
}

void fv_tp_sess_close_msg(struct fv_tp_sess *s, int code, const char *reason)
{
	uint8_t ctl[4 + 200];
	size_t n = strnlen(reason, 200);
	fv_put_le32(ctl, (uint32_t)-code);
	memcpy(ctl + 4, reason, n);
	struct fv_frame_hdr h = {.type = FV_FT_CLOSE};
	fv_tp_sess_send(s, &h, ctl, (uint32_t)(4 + n), NULL, 0, NULL, NULL);
}

/* ---- handshake --------------------------------------------------------- */

/* Receive one handshake frame of type want with exactly len ctl bytes into
 * out. A CLOSE from the peer becomes its code and reason in e. */
static int hs_recv(struct fv_tp_sess *s, int want, uint8_t *out, size_t len, int timeout_ms, struct fv_err *e)
{
	struct fv_tp_rx rx;
	struct fv_frame_hdr h;
	uint8_t *ctl;
	const char *why;
	int rc = fv_tp_sess_recv(s, &rx, &h, &ctl, timeout_ms, NULL, NULL, &why);
	if (rc == -EAGAIN)
		return fv_err_set(e, -ETIMEDOUT, "%s: no answer to the handshake within %d ms", s->peer,
				  timeout_ms);
	if (rc == -ECONNRESET)
		return fv_err_set(e, rc, "%s: connection closed during the handshake", s->peer);
	if (rc < 0)
		return fv_err_set(e, rc, "%s: handshake failed: %s", s->peer, why ? why : strerror(-rc));
	if (h.type == FV_FT_CLOSE && h.ctl_len >= 4) {
		int code = -(int)fv_get_le32(ctl);
		if (code >= 0 || code < -4095)
			code = -EPROTO;
		rc = fv_err_set(e, code, "%s refused the connection: %.*s", s->peer, (int)(h.ctl_len - 4),
				ctl + 4);
	} else if (h.type != want || h.ctl_len != len || h.bulk_len) {
		rc = fv_err_set(e, -EBADMSG, "%s: unexpected frame during the handshake", s->peer);
	} else {
		if (len)
			memcpy(out, ctl, len);
	}
	fv_tp_sess_release(s, &rx);
	return rc;
}

static int hs_send(struct fv_tp_sess *s, int type, const uint8_t *ctl, size_t len, struct fv_err *e)
{
	struct fv_frame_hdr h = {.type = (uint8_t)type};
	int rc = fv_tp_sess_send(s, &h, ctl, (uint32_t)len, NULL, 0, NULL, NULL);
	if (rc < 0)
		return fv_err_sys(e, rc, "%s: cannot send the handshake", s->peer);
	return 0;
}

/* Both ciphers, on every CPU: libcrypto implements them everywhere. */
static unsigned our_ciphers(void)
{
	return 1u | 2u;
}

/* th = BLAKE2b-256(hello ‖ welcome without its proof). */
static void transcript(const uint8_t *hello, const uint8_t *welcome, uint8_t th[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, hello, HELLO_LEN);
	crypto_generichash_update(&st, welcome, WELCOME_LEN - 32);
	crypto_generichash_final(&st, th, 32);
}

struct hs_keys {
	uint8_t c2s[32], s2c[32], sc[32], cc[32];
};

/* The four DH terms in the documented order, then the KDF. Returns -EACCES
 * when a term is all-zero (a low-order public key). */
static int derive(const uint8_t dh[4][32], const uint8_t th[32], struct hs_keys *k)
{
	uint8_t master[32];
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	for (int i = 0; i < 4; i++)
		crypto_generichash_update(&st, dh[i], 32);
	crypto_generichash_update(&st, th, 32);
	crypto_generichash_final(&st, master, 32);
	static const char ctx[crypto_kdf_CONTEXTBYTES] = "fvtp-v1";
	crypto_kdf_derive_from_key(k->c2s, 32, 1, ctx, master);
	crypto_kdf_derive_from_key(k->s2c, 32, 2, ctx, master);
	crypto_kdf_derive_from_key(k->sc, 32, 3, ctx, master);
	crypto_kdf_derive_from_key(k->cc, 32, 4, ctx, master);
	sodium_memzero(master, sizeof master);
	return 0;
}

static void proof(const uint8_t key[32], const char *label, const uint8_t th[32], uint8_t out[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, key, 32, 32);
	crypto_generichash_update(&st, (const uint8_t *)label, 8);
	crypto_generichash_update(&st, th, 32);
	crypto_generichash_final(&st, out, 32);
}

/* X25519 that fails on a low-order point (all-zero result). */
static int dh(uint8_t out[32], const uint8_t sk[32], const uint8_t pk[32])
{
	return crypto_scalarmult(out, sk, pk) == 0 ? 0 : -EACCES;
}

static int set_dirs(struct fv_tp_sess *s, int mode, int cipher, const uint8_t *txk, const uint8_t *rxk,
		    struct fv_err *e)
{
	int rc = fv_frame_dir_init(&s->tx, mode, cipher, txk);
	if (rc == 0)
		rc = fv_frame_dir_init(&s->rx, mode, cipher, rxk);
	s->tx_sent = 0; /* the handshake is over: nobody else sends yet */
	if (rc < 0)
		return fv_err_sys(e, rc, "%s: libcrypto cannot provide %s", s->peer,
				  cipher == FV_CIPHER_AESGCM ? "AES-256-GCM" : "ChaCha20-Poly1305");
	return 0;
}

int fv_tp_sess_client(struct fv_tp_sess *s, const struct fv_tp_node_key *key, const struct fv_tp_peers *peers,
		      int mode, uint32_t credits, int timeout_ms, struct fv_err *e)
{
	uint8_t hello[HELLO_LEN] = {0}, welcome[WELCOME_LEN], esk[32], th[32], d[4][32], pr[32];
	struct hs_keys k;
	char fp[17];
	int rc;
	memcpy(hello, key->pk, 32);
	crypto_kx_keypair(hello + 32, esk);
	randombytes_buf(hello + 64, 32);
	fv_put_le32(hello + 96, our_ciphers());
	fv_put_le32(hello + 100, (uint32_t)mode);
	fv_put_le32(hello + 104, credits);
	if ((rc = hs_send(s, FV_FT_HELLO, hello, sizeof hello, e)) < 0)
		goto out;
	if ((rc = hs_recv(s, FV_FT_WELCOME, welcome, sizeof welcome, timeout_ms, e)) < 0)
		goto out;
	memcpy(s->peer_pk, welcome, 32);
	fv_tp_key_fingerprint(s->peer_pk, fp);
	const struct fv_tp_peer *pe = fv_tp_peers_find(peers, s->peer_pk);
	if (!pe) {
		fv_tp_sess_close_msg(s, -EACCES, "server key not authorized");
		rc = fv_err_set(
			e, -EACCES,
			"%s: server key %s is not in our authorized peers (add its node.pub to authorized_peers)",
			s->peer, fp);
		goto out;
	}
	snprintf(s->peer_key_name, sizeof s->peer_key_name, "%s", pe->name);
	s->peer_index = (uint32_t)(pe - peers->v);
	uint32_t cipher = fv_get_le32(welcome + 96), smode = fv_get_le32(welcome + 100);
	s->credits = fv_get_le32(welcome + 104);
	if ((smode != FV_MODE_INTEGRITY && smode != FV_MODE_ENCRYPT) ||
	    (smode == FV_MODE_ENCRYPT && !(cipher & our_ciphers() && (cipher == 1 || cipher == 2))) ||
	    s->credits == 0 || s->credits > credits) {
		rc = fv_err_set(e, -EBADMSG, "%s: the server chose parameters we did not offer", s->peer);
		goto out;
	}
	transcript(hello, welcome, th);
	rc = dh(d[0], key->sk, welcome) < 0 || dh(d[1], esk, welcome + 32) < 0 ||
			     dh(d[2], esk, welcome) < 0 || dh(d[3], key->sk, welcome + 32) < 0
		     ? -EACCES
		     : 0;
	if (rc == 0)
		derive(d, th, &k);
	if (rc == 0) {
		proof(k.sc, "fvtp-srv", th, pr);
		if (sodium_memcmp(pr, welcome + WELCOME_LEN - 32, 32) != 0)
			rc = -EACCES;
	}
	if (rc < 0) {
		fv_tp_sess_close_msg(s, -EACCES, "server proof failed");
		rc = fv_err_set(e, -EACCES, "%s: the server failed to prove it holds key %s", s->peer, fp);
		goto out;
	}
	proof(k.cc, "fvtp-cli", th, pr);
	if ((rc = hs_send(s, FV_FT_PROOF, pr, sizeof pr, e)) < 0)
		goto out;
	if ((rc = hs_recv(s, FV_FT_READY, NULL, 0, timeout_ms, e)) < 0)
		goto out;
	rc = set_dirs(s, (int)smode, smode == FV_MODE_ENCRYPT ? (int)cipher : 0, k.c2s, k.s2c, e);
out:
	sodium_memzero(esk, sizeof esk);
	sodium_memzero(d, sizeof d);
	sodium_memzero(&k, sizeof k);
	return rc;
}

int fv_tp_sess_server(struct fv_tp_sess *s, const struct fv_tp_node_key *key, const struct fv_tp_peers *peers,
		      bool require_encrypt, uint32_t credits, int timeout_ms, struct fv_err *e)
{
	uint8_t hello[HELLO_LEN], welcome[WELCOME_LEN] = {0}, esk[32], th[32], d[4][32], pr[32],
				  got[PROOF_LEN];
	struct hs_keys k;
	char fp[17];
	int rc;
	if ((rc = hs_recv(s, FV_FT_HELLO, hello, sizeof hello, timeout_ms, e)) < 0)
		goto out;
	memcpy(s->peer_pk, hello, 32);
	fv_tp_key_fingerprint(s->peer_pk, fp);
	const struct fv_tp_peer *pe = fv_tp_peers_find(peers, s->peer_pk);
	if (!pe) {
		fv_tp_sess_close_msg(s, -EACCES, "key not authorized");
		rc = fv_err_set(e, -EACCES, "%s: refused: client key %s is not in authorized_peers", s->peer,
				fp);
		goto out;
	}
	snprintf(s->peer_key_name, sizeof s->peer_key_name, "%s", pe->name);
	s->peer_index = (uint32_t)(pe - peers->v);
	uint32_t theirs = fv_get_le32(hello + 96), mode = fv_get_le32(hello + 100);
	uint32_t ccredits = fv_get_le32(hello + 104);
	if ((mode != FV_MODE_INTEGRITY && mode != FV_MODE_ENCRYPT) || ccredits == 0 ||
	    fv_get_le32(hello + 108) || fv_get_le64(hello + 112)) {
		fv_tp_sess_close_msg(s, -EPROTO, "bad hello");
		rc = fv_err_set(e, -EBADMSG, "%s: malformed hello", s->peer);
		goto out;
	}
	if (require_encrypt)
		mode = FV_MODE_ENCRYPT;
	uint32_t common = theirs & our_ciphers();
	/* AES-256-GCM where this CPU has AES instructions, else ChaCha20 */
	uint32_t prefer = fv_frame_aes_fast() ? 2 : 1;
	uint32_t cipher = 0;
	if (mode == FV_MODE_ENCRYPT)
		cipher = (common & prefer) ? prefer : (common & (3u ^ prefer));
	if (mode == FV_MODE_ENCRYPT && !cipher) {
		fv_tp_sess_close_msg(s, -EPROTO, "no common cipher");
		rc = fv_err_set(e, -EPROTO, "%s: no cipher in common with the client", s->peer);
		goto out;
	}
	s->credits = credits < ccredits ? credits : ccredits;
	memcpy(welcome, key->pk, 32);
	crypto_kx_keypair(welcome + 32, esk);
	randombytes_buf(welcome + 64, 32);
	fv_put_le32(welcome + 96, cipher);
	fv_put_le32(welcome + 100, mode);
	fv_put_le32(welcome + 104, s->credits);
	transcript(hello, welcome, th);
	/* the same four terms as the client: ss, ee, es (client eph, server
	 * static), se (client static, server eph) */
	if (dh(d[0], key->sk, hello) < 0 || dh(d[1], esk, hello + 32) < 0 ||
	    dh(d[2], key->sk, hello + 32) < 0 || dh(d[3], esk, hello) < 0) {
		fv_tp_sess_close_msg(s, -EACCES, "bad key");
		rc = fv_err_set(e, -EACCES, "%s: client key %s is not a usable public key", s->peer, fp);
		goto out;
	}
	derive(d, th, &k);
	proof(k.sc, "fvtp-srv", th, welcome + WELCOME_LEN - 32);
	if ((rc = hs_send(s, FV_FT_WELCOME, welcome, sizeof welcome, e)) < 0)
		goto out;
	if ((rc = hs_recv(s, FV_FT_PROOF, got, sizeof got, timeout_ms, e)) < 0)
		goto out;
	proof(k.cc, "fvtp-cli", th, pr);
	if (sodium_memcmp(pr, got, 32) != 0) {
		fv_tp_sess_close_msg(s, -EACCES, "authentication failed");
		rc = fv_err_set(e, -EACCES, "%s: client failed to prove it holds key %s", s->peer, fp);
		goto out;
	}
	if ((rc = hs_send(s, FV_FT_READY, NULL, 0, e)) < 0)
		goto out;
	rc = set_dirs(s, (int)mode, (int)cipher, k.s2c, k.c2s, e);
out:
	sodium_memzero(esk, sizeof esk);
	sodium_memzero(d, sizeof d);
	sodium_memzero(&k, sizeof k);
	return rc;
}
