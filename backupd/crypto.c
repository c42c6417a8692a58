#include "crypto.h"

#include <errno.h>
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

int fv_seal(const struct fv_keys *k, uint8_t type, const uint8_t id[FV_ID_LEN], const uint8_t *pt, size_t n,
	    uint8_t *out)
{
	uint8_t ad[AD_LEN];
	make_ad(ad, type, id);
	switch (k->alg) {
	case FV_ENC_XCHACHA: {
		uint8_t *nonce = out;
		randombytes_buf(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
		crypto_aead_xchacha20poly1305_ietf_encrypt(out + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
							   NULL, pt, n, ad, AD_LEN, NULL, nonce, k->enc);
		return 0;
	}
	case FV_ENC_AESGCM: {
		if (!crypto_aead_aes256gcm_is_available())
			return -ENOTSUP;
		uint8_t *nonce = out;
		randombytes_buf(nonce, crypto_aead_aes256gcm_NPUBBYTES);
		crypto_aead_aes256gcm_encrypt(out + crypto_aead_aes256gcm_NPUBBYTES, NULL, pt, n, ad, AD_LEN,
					      NULL, nonce, k->enc);
		return 0;
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
	uint8_t ad[AD_LEN];
	size_t ov = fv_seal_overhead(k->alg);
	unsigned long long got = 0;
	if (n < ov)
		return -EBADMSG;
	make_ad(ad, type, id);
	switch (k->alg) {
	case FV_ENC_XCHACHA: {
		size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &got, NULL, ct + nb, n - nb, ad, AD_LEN,
							       ct, k->enc) != 0)
			return -EBADMSG;
		*outlen = (size_t)got;
		return 0;
	}
	case FV_ENC_AESGCM: {
		size_t nb = crypto_aead_aes256gcm_NPUBBYTES;
		if (!crypto_aead_aes256gcm_is_available())
			return -ENOTSUP;
		if (crypto_aead_aes256gcm_decrypt(out, &got, NULL, ct + nb, n - nb, ad, AD_LEN, ct, k->enc) !=
		    0)
			return -EBADMSG;
		*outlen = (size_t)got;
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
