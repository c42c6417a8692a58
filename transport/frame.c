/* frame: docs/transport.md, "Frame" and "Trailers and the session modes". */
#include "frame.h"

#include <errno.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <string.h>
#include <xxhash.h>
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "../common/buf.h"

static const uint8_t magic[4] = {'F', 'V', 'T', '1'};

void fv_frame_encode(struct fv_frame_hdr *h, uint8_t out[FV_FRAME_HDR])
{
	memcpy(out, magic, 4);
	out[4] = 1;
	out[5] = h->type;
	fv_put_le16(out + 6, h->flags);
	fv_put_le64(out + 8, h->id);
	fv_put_le32(out + 16, h->ctl_len);
	fv_put_le32(out + 20, h->bulk_len);
	fv_put_le64(out + 24, h->bulk_addr);
	fv_put_le32(out + 32, h->bulk_rkey);
	fv_put_le32(out + 36, 0);
	h->hsum = XXH3_64bits(out, 40);
	fv_put_le64(out + 40, h->hsum);
}

int fv_frame_decode(const uint8_t *p, struct fv_frame_hdr *h, const char **why)
{
	const char *w = NULL;
	if (memcmp(p, magic, 4) != 0)
		w = "bad magic (not a fabvault transport peer?)";
	else if (p[4] != 1)
		w = "unsupported protocol version";
	else if (fv_get_le64(p + 40) != XXH3_64bits(p, 40))
		w = "header checksum mismatch";
	if (w)
		goto bad;
	h->type = p[5];
	h->flags = fv_get_le16(p + 6);
	h->id = fv_get_le64(p + 8);
	h->ctl_len = fv_get_le32(p + 16);
	h->bulk_len = fv_get_le32(p + 20);
	h->bulk_addr = fv_get_le64(p + 24);
	h->bulk_rkey = fv_get_le32(p + 32);
	h->hsum = fv_get_le64(p + 40);
	if (h->type < FV_FT_HELLO || h->type > FV_FT_CLOSE)
		w = "unknown frame type";
	else if (h->flags & ~FV_FF_IDEMPOTENT)
		w = "unknown flags";
	else if (fv_get_le32(p + 36) != 0)
		w = "reserved bytes not zero";
	else if (h->ctl_len > FV_FRAME_MAX_CTL)
		w = "control message too long";
	else if (h->bulk_len > FV_FRAME_MAX_BULK)
		w = "bulk payload too long";
	else if (h->bulk_len && h->type != FV_FT_REQUEST && h->type != FV_FT_REPLY)
		w = "bulk on a frame that carries none";
	else if ((h->bulk_addr || h->bulk_rkey) && h->type != FV_FT_REQUEST && h->type != FV_FT_REPLY)
		w = "bulk address on a frame that carries none";
	if (w)
		goto bad;
	return 0;
bad:
	if (why)
		*why = w;
	return -EBADMSG;
}

size_t fv_frame_ctl_size(const struct fv_frame_hdr *h)
{
	size_t n = FV_FRAME_HDR + h->ctl_len;
	if (h->ctl_len)
		n += FV_FRAME_TRAILER;
	if (h->type == FV_FT_REPLY && h->bulk_len)
		n += FV_FRAME_TRAILER;
	return n;
}

int fv_frame_parse(const uint8_t *msg, size_t len, struct fv_frame_hdr *h, const char **why)
{
	if (len < FV_FRAME_HDR) {
		if (why)
			*why = "frame shorter than its header";
		return -EBADMSG;
	}
	int rc = fv_frame_decode(msg, h, why);
	if (rc < 0)
		return rc;
	if (fv_frame_ctl_size(h) != len) {
		if (why)
			*why = "frame length does not match its header";
		return -EBADMSG;
	}
	return 0;
}

bool fv_frame_aes_fast(void)
{
#if defined(__aarch64__) && defined(__linux__)
	unsigned long need = HWCAP_AES | HWCAP_PMULL;
	return (getauxval(AT_HWCAP) & need) == need;
#else
	/* libsodium's own test: AES-NI and PCLMULQDQ on x86-64 */
	return crypto_aead_aes256gcm_is_available() != 0;
#endif
}

void fv_frame_dir_free(struct fv_frame_dir *d)
{
	EVP_CIPHER_free(d->evp);
	sodium_memzero(d, sizeof *d);
}

int fv_frame_dir_init(struct fv_frame_dir *d, int mode, int cipher, const uint8_t key[32])
{
	fv_frame_dir_free(d);
	d->mode = mode;
	d->cipher = cipher;
	memcpy(d->key, key, 32);
	d->counter = 0;
	if (mode != FV_MODE_ENCRYPT)
		return 0;
	if (cipher == FV_CIPHER_AESGCM && crypto_aead_aes256gcm_is_available()) {
		crypto_aead_aes256gcm_beforenm(&d->aes, key);
		d->sodium_aes = true;
	}
	const char *name = cipher == FV_CIPHER_AESGCM ? "AES-256-GCM" : "ChaCha20-Poly1305";
	d->evp = EVP_CIPHER_fetch(NULL, name, NULL);
	return d->evp ? 0 : -ENOSYS;
}

static void nonce_of(uint64_t ctr, unsigned seg, uint8_t n[12])
{
	fv_put_le32(n, seg);
	fv_put_le64(n + 4, ctr);
}

static void checksum(const uint8_t hdr[FV_FRAME_HDR], const uint8_t *p, size_t n, uint8_t out[16])
{
	XXH128_hash_t x = XXH3_128bits_withSeed(p, n, fv_get_le64(hdr + 40));
	fv_put_le64(out, x.low64);
	fv_put_le64(out + 8, x.high64);
}

/* Whether segment of n bytes goes through libcrypto rather than libsodium. */
static bool use_evp(const struct fv_frame_dir *d, size_t n)
{
	return n >= FV_FRAME_EVP_MIN || (d->cipher == FV_CIPHER_AESGCM && !d->sodium_aes);
}

/* One AEAD operation through libcrypto, in place (OpenSSL allows out == in),
 * with a context of its own so that threads may seal at once. enc: seal,
 * writing the tag to tag; else open, checking tag. Returns 0, -EBADMSG
 * (authentication failed) or -ENOMEM. */
static int evp_aead(const struct fv_frame_dir *d, int enc, const uint8_t nonce[12], const uint8_t *ad,
		    uint8_t *p, size_t n, uint8_t tag[16])
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c)
		return -ENOMEM;
	int rc = -ENOMEM, l = 0;
	if (EVP_CipherInit_ex2(c, d->evp, d->key, nonce, enc, NULL) != 1 ||
	    EVP_CipherUpdate(c, NULL, &l, ad, FV_FRAME_HDR) != 1)
		goto out;
	/* n <= FV_FRAME_MAX_BULK fits an int; EVP counts in int */
	if (n && EVP_CipherUpdate(c, p, &l, p, (int)n) != 1)
		goto out;
	if (enc) {
		if (EVP_CipherFinal_ex(c, p + n, &l) != 1 ||
		    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1)
			goto out;
	} else {
		rc = -EBADMSG;
		if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, tag) != 1 ||
		    EVP_CipherFinal_ex(c, p + n, &l) != 1)
			goto out;
	}
	rc = 0;
out:
	EVP_CIPHER_CTX_free(c);
	return rc;
}

int fv_frame_seal(const struct fv_frame_dir *d, unsigned seg, const uint8_t hdr[FV_FRAME_HDR], uint8_t *p,
		  size_t n, uint8_t trailer[FV_FRAME_TRAILER])
{
	return fv_frame_seal_at(d, d->counter, seg, hdr, p, n, trailer);
}

int fv_frame_seal_at(const struct fv_frame_dir *d, uint64_t ctr, unsigned seg,
		     const uint8_t hdr[FV_FRAME_HDR], uint8_t *p, size_t n, uint8_t trailer[FV_FRAME_TRAILER])
{
	if (d->mode != FV_MODE_ENCRYPT) {
		checksum(hdr, p, n, trailer);
		return 0;
	}
	uint8_t nonce[12];
	nonce_of(ctr, seg, nonce);
	if (use_evp(d, n))
		return evp_aead(d, 1, nonce, hdr, p, n, trailer);
	if (d->cipher == FV_CIPHER_AESGCM)
		crypto_aead_aes256gcm_encrypt_detached_afternm(p, trailer, NULL, p, n, hdr, FV_FRAME_HDR,
							       NULL, nonce, &d->aes);
	else
		crypto_aead_chacha20poly1305_ietf_encrypt_detached(p, trailer, NULL, p, n, hdr, FV_FRAME_HDR,
								   NULL, nonce, d->key);
	return 0;
}

int fv_frame_open(const struct fv_frame_dir *d, unsigned seg, const uint8_t hdr[FV_FRAME_HDR], uint8_t *p,
		  size_t n, const uint8_t trailer[FV_FRAME_TRAILER])
{
	if (d->mode != FV_MODE_ENCRYPT) {
		uint8_t want[16];
		checksum(hdr, p, n, want);
		return memcmp(want, trailer, 16) ? -EBADMSG : 0;
	}
	uint8_t nonce[12];
	nonce_of(d->counter, seg, nonce);
	if (use_evp(d, n)) {
		uint8_t tag[16];
		memcpy(tag, trailer, 16);
		int rc = evp_aead(d, 0, nonce, hdr, p, n, tag);
		if (rc == 0)
			return 0;
		/* libcrypto decrypts before it checks the tag: leave no
		 * unauthenticated plaintext behind (-ENOMEM fails alike) */
		sodium_memzero(p, n);
		return -EBADMSG;
	}
	int rc;
	if (d->cipher == FV_CIPHER_AESGCM)
		rc = crypto_aead_aes256gcm_decrypt_detached_afternm(p, NULL, p, n, trailer, hdr, FV_FRAME_HDR,
								    nonce, &d->aes);
	else
		rc = crypto_aead_chacha20poly1305_ietf_decrypt_detached(p, NULL, p, n, trailer, hdr,
									FV_FRAME_HDR, nonce, d->key);
	return rc ? -EBADMSG : 0;
}
