#include "crypto.h"

#include <errno.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <string.h>

#include "../common/buf.h"

/* crypto_kdf contexts are exactly 8 bytes. */
static const char kdf_ctx[crypto_kdf_CONTEXTBYTES] = {'f', 'a', 'b', 'v', 'a', 'u', 'l', 't'};

enum { SUB_ENC = 1, SUB_ID = 2, SUB_GEAR = 3, SUB_MAC = 4 };

/* Associated data of every seal: type (1 byte) || id (32 bytes). */
#define AD_LEN (1 + FV_ID_LEN)
#define NONE_MAC_LEN 16

int fv_crypto_init(void)
{
	return sodium_init() < 0 ? -EIO : 0;
}

bool fv_crypto_aesgcm_available(void)
{
	return crypto_aead_aes256gcm_is_available() != 0;
}

void fv_keys_derive(const uint8_t master[FV_KEY_LEN], enum fv_enc alg, struct fv_keys *k)
{
	k->alg = alg;
	crypto_kdf_derive_from_key(k->enc, FV_KEY_LEN, SUB_ENC, kdf_ctx, master);
	crypto_kdf_derive_from_key(k->id, FV_KEY_LEN, SUB_ID, kdf_ctx, master);
	crypto_kdf_derive_from_key(k->gear, FV_KEY_LEN, SUB_GEAR, kdf_ctx, master);
	crypto_kdf_derive_from_key(k->mac, FV_KEY_LEN, SUB_MAC, kdf_ctx, master);
}

void fv_keys_wipe(struct fv_keys *k)
{
	sodium_memzero(k, sizeof *k);
}

void fv_id_compute(const struct fv_keys *k, const void *data, size_t len, uint8_t id[FV_ID_LEN])
{
	crypto_generichash(id, FV_ID_LEN, data, len, k->id, FV_KEY_LEN);
}

void fv_random(void *p, size_t n)
{
	randombytes_buf(p, n);
}

size_t fv_seal_overhead(enum fv_enc alg)
{
	switch (alg) {
	case FV_ENC_XCHACHA:
		return crypto_aead_xchacha20poly1305_ietf_NPUBBYTES +
		       crypto_aead_xchacha20poly1305_ietf_ABYTES;
	case FV_ENC_AESGCM:
		return crypto_aead_aes256gcm_NPUBBYTES + crypto_aead_aes256gcm_ABYTES;
	case FV_ENC_NONE:
	default:
		return NONE_MAC_LEN;
	}
}

static void make_ad(uint8_t ad[AD_LEN], uint8_t type, const uint8_t id[FV_ID_LEN])
{
	ad[0] = type;
	memcpy(ad + 1, id, FV_ID_LEN);
}

/* NONE mode: a keyed BLAKE2b-128 over ad || pt keeps tamper detection and
 * type/id binding when confidentiality was explicitly turned off. */
static void none_mac(const struct fv_keys *k, const uint8_t ad[AD_LEN], const uint8_t *pt, size_t n,
		     uint8_t mac[NONE_MAC_LEN])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, k->mac, FV_KEY_LEN, NONE_MAC_LEN);
	crypto_generichash_update(&st, ad, AD_LEN);
	crypto_generichash_update(&st, pt, n);
	crypto_generichash_final(&st, mac, NONE_MAC_LEN);
}

/* The AEAD work is done by OpenSSL's libcrypto, which has vector code for
 * ChaCha20, Poly1305 and GCM on both x86-64 and aarch64; libsodium 1.0.18
 * has vector ChaCha20 on x86-64 only (portable C on aarch64, about 3x
 * slower than its AVX2 code here) and no AES-GCM on aarch64. The bytes are
 * the same as libsodium's: XChaCha20-Poly1305-IETF is ChaCha20-Poly1305-IETF
 * under the subkey HChaCha20(key, nonce[0..16)) with the 12-byte nonce
 * 0^4 || nonce[16..24) (test_crypto checks both ciphers against libsodium).
 * Each call uses its own EVP context, so any number of threads may seal at
 * once. */

#define TAG_LEN 16
#define XNONCE_LEN 24
#define GCM_NONCE_LEN 12
#define EVP_STEP (1u << 30) /* EVP lengths are int: feed at most this much at once */

/* The cipher and its key/nonce for one seal or open. */
struct aead {
	const EVP_CIPHER *cipher;
	uint8_t key[FV_KEY_LEN];
	uint8_t iv[GCM_NONCE_LEN];
};

/* Set a up for alg with the nonce at the front of a sealed object. */
static void aead_setup(struct aead *a, const struct fv_keys *k, const uint8_t *nonce)
{
	if (k->alg == FV_ENC_XCHACHA) {
		a->cipher = EVP_chacha20_poly1305();
		crypto_core_hchacha20(a->key, nonce, k->enc, NULL);
		memset(a->iv, 0, 4);
		memcpy(a->iv + 4, nonce + 16, 8);
	} else {
		a->cipher = EVP_aes_256_gcm();
		memcpy(a->key, k->enc, FV_KEY_LEN);
		memcpy(a->iv, nonce, GCM_NONCE_LEN);
	}
}

/* Encrypt (enc = 1) or decrypt (enc = 0) n bytes from in to out with ad; on
 * encryption write the tag, on decryption check it. Returns 0, -EBADMSG
 * (decryption: wrong tag; out is then zeroed) or -EIO/-ENOMEM. */
static int aead_run(struct aead *a, int enc, const uint8_t ad[AD_LEN], const uint8_t *in, size_t n,
		    uint8_t *out, uint8_t tag[TAG_LEN])
{
	int rc = -EIO, l;
	size_t done = 0;
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
	if (!x) {
		rc = -ENOMEM;
		goto out;
	}
	if (EVP_CipherInit_ex2(x, a->cipher, a->key, a->iv, enc, NULL) != 1 ||
	    EVP_CipherUpdate(x, NULL, &l, ad, AD_LEN) != 1)
		goto out;
	while (done < n) {
		size_t step = n - done < EVP_STEP ? n - done : EVP_STEP;
		if (EVP_CipherUpdate(x, out + done, &l, in + done, (int)step) != 1 || (size_t)l != step)
			goto out;
		done += step;
	}
	if (!enc && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(x, out + done, &l) != 1) {
		if (!enc) {
			rc = -EBADMSG;
			sodium_memzero(out, n); /* never hand out unauthenticated bytes */
		}
		goto out;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, tag) != 1)
		goto out;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(x);
	sodium_memzero(a->key, sizeof a->key);
	return rc;
}

static size_t nonce_len(enum fv_enc alg)
{
	return alg == FV_ENC_XCHACHA ? XNONCE_LEN : GCM_NONCE_LEN;
}

int fv_seal(const struct fv_keys *k, uint8_t type, const uint8_t id[FV_ID_LEN], const uint8_t *pt, size_t n,
	    uint8_t *out)
{
	uint8_t ad[AD_LEN];
	struct aead a;
	if (k->alg == FV_ENC_AESGCM && !crypto_aead_aes256gcm_is_available())
		return -ENOTSUP;
	make_ad(ad, type, id);
	switch (k->alg) {
	case FV_ENC_AESGCM:
	case FV_ENC_XCHACHA: {
		size_t nb = nonce_len(k->alg);
		randombytes_buf(out, nb);
		aead_setup(&a, k, out);
		return aead_run(&a, 1, ad, pt, n, out + nb, out + nb + n);
	}
	case FV_ENC_NONE:
		memcpy(out, pt, n);
		none_mac(k, ad, pt, n, out + n);
		return 0;
	}
	return -EINVAL;
}

int fv_unseal(const struct fv_keys *k, uint8_t type, const uint8_t id[FV_ID_LEN], const uint8_t *ct, size_t n,
	      uint8_t *out, size_t *outlen)
{
	uint8_t ad[AD_LEN], tag[TAG_LEN];
	struct aead a;
	size_t ov = fv_seal_overhead(k->alg);
	if (n < ov)
		return -EBADMSG;
	if (k->alg == FV_ENC_AESGCM && !crypto_aead_aes256gcm_is_available())
		return -ENOTSUP;
	make_ad(ad, type, id);
	switch (k->alg) {
	case FV_ENC_AESGCM:
	case FV_ENC_XCHACHA: {
		size_t nb = nonce_len(k->alg), pl = n - ov;
		memcpy(tag, ct + nb + pl, TAG_LEN);
		aead_setup(&a, k, ct);
		int rc = aead_run(&a, 0, ad, ct + nb, pl, out, tag);
		if (rc < 0)
			return rc;
		*outlen = pl;
		return 0;
	}
	case FV_ENC_NONE: {
		uint8_t mac[NONE_MAC_LEN];
		size_t pl = n - NONE_MAC_LEN;
		none_mac(k, ad, ct, pl, mac);
		if (sodium_memcmp(mac, ct + pl, NONE_MAC_LEN) != 0)
			return -EBADMSG;
		memmove(out, ct, pl);
		*outlen = pl;
		return 0;
	}
	}
	return -EINVAL;
}
