#include "keyfile.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <xxhash.h>

#include "../common/buf.h"

/* Offsets, docs/repository-format.md "keys/". */
#define OFF_KDF 12
#define OFF_OPS 16
#define OFF_MEM 24
#define OFF_SALT 32
#define OFF_REPO 48
#define OFF_NONCE 64
#define OFF_SEALED 88
#define OFF_SUM 136
#define SEALED_LEN (FV_KEY_LEN + crypto_aead_xchacha20poly1305_ietf_ABYTES)

static int derive_kek(uint8_t kek[32], const uint8_t *hdr, const char *pass, size_t passlen)
{
	uint64_t ops = fv_get_le64(hdr + OFF_OPS), mem = fv_get_le64(hdr + OFF_MEM);
	if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > crypto_pwhash_OPSLIMIT_MAX ||
	    mem < crypto_pwhash_MEMLIMIT_MIN || mem > ((uint64_t)4 << 30))
		return -EUCLEAN;
	if (crypto_pwhash(kek, 32, pass, passlen, hdr + OFF_SALT, ops, (size_t)mem,
			  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -ENOMEM;
	return 0;
}

int fv_keyfile_wrap(const uint8_t master[FV_KEY_LEN], const uint8_t repo_id[16], enum fv_kdf kdf,
		    uint64_t ops, uint64_t mem, const char *pass, size_t passlen,
		    uint8_t out[FV_KEYFILE_SIZE])
{
	uint8_t kek[32];
	int rc = 0;
	memset(out, 0, FV_KEYFILE_SIZE);
	memcpy(out, FV_KEYFILE_MAGIC, 8);
	fv_put_le32(out + 8, 1);
	out[OFF_KDF] = (uint8_t)kdf;
	memcpy(out + OFF_REPO, repo_id, 16);
	if (kdf == FV_KDF_NONE) {
		memcpy(out + OFF_SEALED, master, FV_KEY_LEN);
	} else {
		fv_put_le64(out + OFF_OPS, ops);
		fv_put_le64(out + OFF_MEM, mem);
		randombytes_buf(out + OFF_SALT, 16);
		randombytes_buf(out + OFF_NONCE, 24);
		rc = derive_kek(kek, out, pass, passlen);
		if (rc < 0)
			goto out;
		/* AD = the header (bytes 0..63): parameters and repo id cannot be swapped. */
		crypto_aead_xchacha20poly1305_ietf_encrypt(out + OFF_SEALED, NULL, master, FV_KEY_LEN, out,
							   OFF_NONCE, NULL, out + OFF_NONCE, kek);
	}
	fv_put_le64(out + OFF_SUM, XXH3_64bits(out, OFF_SUM));
out:
	sodium_memzero(kek, sizeof kek);
	return rc;
}

static int check_frame(const uint8_t *p, size_t len)
{
	if (len != FV_KEYFILE_SIZE || memcmp(p, FV_KEYFILE_MAGIC, 8) != 0 || fv_get_le32(p + 8) != 1)
		return -EUCLEAN;
	if (XXH3_64bits(p, OFF_SUM) != fv_get_le64(p + OFF_SUM))
		return -EUCLEAN;
	if (p[OFF_KDF] > FV_KDF_ARGON2ID)
		return -EUCLEAN;
	return 0;
}

int fv_keyfile_needs_passphrase(const uint8_t *p, size_t len)
{
	int rc = check_frame(p, len);
	if (rc < 0)
		return rc;
	return p[OFF_KDF] != FV_KDF_NONE;
}

int fv_keyfile_unwrap(const uint8_t *p, size_t len, const uint8_t repo_id[16], const char *pass,
		      size_t passlen, uint8_t master[FV_KEY_LEN])
{
	uint8_t kek[32];
	unsigned long long got;
	int rc = check_frame(p, len);
	if (rc < 0)
		return rc;
	if (memcmp(p + OFF_REPO, repo_id, 16) != 0)
		return -EUCLEAN;
	if (p[OFF_KDF] == FV_KDF_NONE) {
		memcpy(master, p + OFF_SEALED, FV_KEY_LEN);
		return 0;
	}
	rc = derive_kek(kek, p, pass, passlen);
	if (rc < 0)
		goto out;
	/* The checksum matched, so the bytes are as written: a failure here
	 * means the passphrase is wrong, not that the file is damaged. */
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(master, &got, NULL, p + OFF_SEALED, SEALED_LEN, p,
						       OFF_NONCE, p + OFF_NONCE, kek) != 0 ||
	    got != FV_KEY_LEN)
		rc = -EKEYREJECTED;
out:
	sodium_memzero(kek, sizeof kek);
	return rc;
}
