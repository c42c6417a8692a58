/* crypto: key derivation, keyed object ids and AEAD sealing of repository
 * objects (docs/repository-format.md, "Keys" and "Sealed objects").
 *
 * Every function here is thread-safe: a struct fv_keys is read-only after
 * fv_keys_derive(). Call fv_crypto_init() once before anything else.
 */
#ifndef FV_CRYPTO_H
#define FV_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FV_ID_LEN 32
#define FV_KEY_LEN 32

/* Encryption algorithm of a repository (config byte "encryption"). */
enum fv_enc {
	FV_ENC_NONE = 0,    /* no confidentiality; objects still carry a keyed MAC */
	FV_ENC_XCHACHA = 1, /* XChaCha20-Poly1305-IETF, 24-byte random nonce (default) */
	FV_ENC_AESGCM = 2,  /* AES-256-GCM, 12-byte random nonce; needs CPU support */
};

/* Object types, bound into every seal as associated data. */
enum fv_obj_type {
	FV_OBJ_DATA = 1,
	FV_OBJ_TREE = 2,
	FV_OBJ_TOC = 3,
	FV_OBJ_INDEX = 4,
	FV_OBJ_SNAPSHOT = 5,
	FV_OBJ_MASTERKEY = 6,
};

struct fv_keys {
	enum fv_enc alg;
	uint8_t enc[FV_KEY_LEN];  /* AEAD key (subkey 1) */
	uint8_t id[FV_KEY_LEN];   /* BLAKE2b key for object ids (subkey 2) */
	uint8_t gear[FV_KEY_LEN]; /* chunker gear-table seed (subkey 3) */
	uint8_t mac[FV_KEY_LEN];  /* config MAC and NONE-mode MAC key (subkey 4) */
};

/* Initialise libsodium. Returns 0 or -EIO. Idempotent and thread-safe.
 * (The AEAD itself runs in OpenSSL's libcrypto, which needs no set-up.) */
int fv_crypto_init(void);

/* True when this CPU and libsodium support AES-256-GCM. */
bool fv_crypto_aesgcm_available(void);

/* Derive all subkeys from a 32-byte master key (crypto_kdf, context
 * "fabvault", subkey ids 1..4). */
void fv_keys_derive(const uint8_t master[FV_KEY_LEN], enum fv_enc alg, struct fv_keys *k);

/* Zero k. */
void fv_keys_wipe(struct fv_keys *k);

/* id = keyed BLAKE2b-256(key = k->id, data). */
void fv_id_compute(const struct fv_keys *k, const void *data, size_t len, uint8_t id[FV_ID_LEN]);

/* Bytes a seal adds to its plaintext for alg: nonce + tag (NONE: 16-byte MAC). */
size_t fv_seal_overhead(enum fv_enc alg);

/* Seal pt[0..n) into out (n + fv_seal_overhead() bytes). The associated data
 * is type || id, so a sealed object cannot be presented as another type or
 * under another id. out must not overlap pt. Returns 0, -ENOTSUP (AES-GCM
 * on a CPU without it) or -ENOMEM/-EIO when libcrypto fails. */
int fv_seal(const struct fv_keys *k, uint8_t type, const uint8_t id[FV_ID_LEN], const uint8_t *pt, size_t n,
	    uint8_t *out);

/* Open a sealed object of n bytes into out (room for n - overhead bytes);
 * *outlen is the plaintext length. Returns 0, or -EBADMSG when it is too
 * short, was tampered with, or belongs to another type/id/key (out then
 * holds no plaintext), or -ENOMEM/-EIO when libcrypto fails. */
int fv_unseal(const struct fv_keys *k, uint8_t type, const uint8_t id[FV_ID_LEN], const uint8_t *ct, size_t n,
	      uint8_t *out, size_t *outlen);

/* Fill p with n random bytes. */
void fv_random(void *p, size_t n);

#endif
