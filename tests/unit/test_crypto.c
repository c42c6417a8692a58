/* Unit tests for crypto, keyfile and config: what keeps backups secret and
 * makes tampering visible. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../../backupd/config.h"
#include "../../backupd/crypto.h"
#include "../../backupd/keyfile.h"
#include "../harness.h"

static void keys_for(struct fv_keys *k, enum fv_enc alg)
{
	uint8_t master[FV_KEY_LEN];
	for (int i = 0; i < FV_KEY_LEN; i++)
		master[i] = (uint8_t)(i * 7 + 1);
	fv_keys_derive(master, alg, k);
}

static void seal_roundtrip_and_tamper(struct fv_test_ctx *fv_t_, enum fv_enc alg)
{
	struct fv_keys k, other;
	uint8_t id[FV_ID_LEN] = {1, 2, 3}, id2[FV_ID_LEN] = {9};
	uint8_t pt[300], ct[300 + 64], back[300 + 64];
	size_t n;
	keys_for(&k, alg);
	keys_for(&other, alg);
	other.enc[0] ^= 1;
	other.mac[0] ^= 1;
	for (size_t i = 0; i < sizeof pt; i++)
		pt[i] = (uint8_t)(i * 31);
	size_t ct_len = sizeof pt + fv_seal_overhead(alg);
	FV_REQUIRE(fv_seal(&k, FV_OBJ_DATA, id, pt, sizeof pt, ct) == 0);
	FV_CHECK_EQ(fv_unseal(&k, FV_OBJ_DATA, id, ct, ct_len, back, &n), 0);
	FV_CHECK_EQ(n, sizeof pt);
	FV_CHECK(memcmp(back, pt, sizeof pt) == 0);
	if (alg != FV_ENC_NONE) /* the ciphertext does not show the plaintext */
		FV_CHECK(memmem(ct, ct_len, pt + 10, 32) == NULL);
	/* every single flipped bit anywhere is detected */
	int undetected = 0;
	for (size_t i = 0; i < ct_len; i++) {
		ct[i] ^= 0x10;
		if (fv_unseal(&k, FV_OBJ_DATA, id, ct, ct_len, back, &n) != -EBADMSG)
			undetected++;
		ct[i] ^= 0x10;
	}
	FV_CHECK_EQ(undetected, 0);
	/* bound to type, id and key: an object cannot be swapped */
	FV_CHECK_EQ(fv_unseal(&k, FV_OBJ_TREE, id, ct, ct_len, back, &n), -EBADMSG);
	FV_CHECK_EQ(fv_unseal(&k, FV_OBJ_DATA, id2, ct, ct_len, back, &n), -EBADMSG);
	FV_CHECK_EQ(fv_unseal(&other, FV_OBJ_DATA, id, ct, ct_len, back, &n), -EBADMSG);
	/* truncation */
	FV_CHECK_EQ(fv_unseal(&k, FV_OBJ_DATA, id, ct, ct_len - 1, back, &n), -EBADMSG);
	FV_CHECK_EQ(fv_unseal(&k, FV_OBJ_DATA, id, ct, 3, back, &n), -EBADMSG);
	/* empty plaintext works */
	FV_CHECK_EQ(fv_seal(&k, FV_OBJ_DATA, id, pt, 0, ct), 0);
	FV_CHECK_EQ(fv_unseal(&k, FV_OBJ_DATA, id, ct, fv_seal_overhead(alg), back, &n), 0);
	FV_CHECK_EQ(n, 0);
}

FV_TEST(xchacha_roundtrip_and_tamper)
{
	FV_REQUIRE(fv_crypto_init() == 0);
	seal_roundtrip_and_tamper(fv_t_, FV_ENC_XCHACHA);
}

FV_TEST(aesgcm_roundtrip_and_tamper)
{
	FV_REQUIRE(fv_crypto_init() == 0);
	if (!fv_crypto_aesgcm_available()) {
		printf("     (AES-256-GCM not available on this CPU: checked that sealing refuses)\n");
		struct fv_keys k;
		uint8_t id[FV_ID_LEN] = {0}, out[64];
		keys_for(&k, FV_ENC_AESGCM);
		FV_CHECK_EQ(fv_seal(&k, FV_OBJ_DATA, id, out, 1, out + 32), -ENOTSUP);
		return;
	}
	seal_roundtrip_and_tamper(fv_t_, FV_ENC_AESGCM);
}

/* The seal is libcrypto's; the format is libsodium's calls (repository-
 * format.md, "Sealed objects"): each must open what the other sealed, at
 * every size class, and a failed open leaves no plaintext behind. */
static void matches_libsodium(struct fv_test_ctx *fv_t_, enum fv_enc alg)
{
	static const size_t sizes[] = {0, 1, 15, 16, 63, 64, 65, 1000, 16384, 65536 + 7, (1u << 20) + 3};
	struct fv_keys k;
	uint8_t id[FV_ID_LEN] = {4, 5, 6}, ad[1 + FV_ID_LEN];
	enum { MAX = (1u << 20) + 3 };
	static uint8_t pt[MAX], ct[MAX + 64], back[MAX + 64];
	size_t max = MAX, ov = fv_seal_overhead(alg);
	keys_for(&k, alg);
	ad[0] = FV_OBJ_DATA;
	memcpy(ad + 1, id, FV_ID_LEN);
	randombytes_buf(pt, max);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t n = sizes[i], nb = ov - 16;
		unsigned long long got = 0;
		int rc;
		/* ours, opened by libsodium */
		FV_REQUIRE(fv_seal(&k, FV_OBJ_DATA, id, pt, n, ct) == 0);
		if (alg == FV_ENC_XCHACHA)
			rc = crypto_aead_xchacha20poly1305_ietf_decrypt(back, &got, NULL, ct + nb, n + 16, ad,
									sizeof ad, ct, k.enc);
		else
			rc = crypto_aead_aes256gcm_decrypt(back, &got, NULL, ct + nb, n + 16, ad, sizeof ad,
							   ct, k.enc);
		FV_CHECK_EQ(rc, 0);
		FV_CHECK_EQ(got, n);
		FV_CHECK(n == 0 || memcmp(back, pt, n) == 0);
		/* libsodium's, opened by ours */
		randombytes_buf(ct, nb);
		if (alg == FV_ENC_XCHACHA)
			crypto_aead_xchacha20poly1305_ietf_encrypt(ct + nb, NULL, pt, n, ad, sizeof ad, NULL,
								   ct, k.enc);
		else
			crypto_aead_aes256gcm_encrypt(ct + nb, NULL, pt, n, ad, sizeof ad, NULL, ct, k.enc);
		size_t bl = 0;
		FV_CHECK_EQ(fv_unseal(&k, FV_OBJ_DATA, id, ct, n + ov, back, &bl), 0);
		FV_CHECK_EQ(bl, n);
		FV_CHECK(n == 0 || memcmp(back, pt, n) == 0);
		/* a flipped tag bit: refused, and out holds zeros, not the plaintext */
		if (n > 0) {
			ct[nb + n] ^= 1;
			memset(back, 0xAA, n);
			FV_CHECK_EQ(fv_unseal(&k, FV_OBJ_DATA, id, ct, n + ov, back, &bl), -EBADMSG);
			size_t nz = 0;
			for (size_t j = 0; j < n; j++)
				nz += back[j] != 0;
			FV_CHECK_EQ(nz, 0);
		}
	}
}

FV_TEST(xchacha_matches_libsodium)
{
	FV_REQUIRE(fv_crypto_init() == 0);
	matches_libsodium(fv_t_, FV_ENC_XCHACHA);
}

FV_TEST(aesgcm_matches_libsodium)
{
	FV_REQUIRE(fv_crypto_init() == 0);
	if (!fv_crypto_aesgcm_available()) {
		printf("     (AES-256-GCM not available on this CPU: nothing to compare)\n");
		return;
	}
	matches_libsodium(fv_t_, FV_ENC_AESGCM);
}

FV_TEST(none_mode_still_authenticates)
{
	FV_REQUIRE(fv_crypto_init() == 0);
	seal_roundtrip_and_tamper(fv_t_, FV_ENC_NONE);
}

FV_TEST(ids_are_keyed_and_deterministic)
{
	struct fv_keys a, b;
	uint8_t x[FV_ID_LEN], y[FV_ID_LEN], z[FV_ID_LEN];
	keys_for(&a, FV_ENC_XCHACHA);
	keys_for(&b, FV_ENC_XCHACHA);
	b.id[5] ^= 1;
	fv_id_compute(&a, "hello", 5, x);
	fv_id_compute(&a, "hello", 5, y);
	fv_id_compute(&b, "hello", 5, z);
	FV_CHECK(memcmp(x, y, FV_ID_LEN) == 0);
	FV_CHECK(memcmp(x, z, FV_ID_LEN) != 0);
	/* subkeys are distinct */
	FV_CHECK(memcmp(a.enc, a.id, FV_KEY_LEN) != 0);
	FV_CHECK(memcmp(a.gear, a.mac, FV_KEY_LEN) != 0);
}

FV_TEST(keyfile_wrong_passphrase_vs_damage)
{
	FV_REQUIRE(fv_crypto_init() == 0);
	uint8_t master[FV_KEY_LEN], back[FV_KEY_LEN], repo[16] = {7}, other_repo[16] = {8},
						      kf[FV_KEYFILE_SIZE];
	randombytes_buf(master, sizeof master);
	/* cheapest Argon2id parameters: the format, not the cost, is under test */
	FV_REQUIRE(fv_keyfile_wrap(master, repo, FV_KDF_ARGON2ID, crypto_pwhash_OPSLIMIT_MIN, 8192 * 1024,
				   "right", 5, kf) == 0);
	FV_CHECK_EQ(fv_keyfile_needs_passphrase(kf, sizeof kf), 1);
	FV_CHECK_EQ(fv_keyfile_unwrap(kf, sizeof kf, repo, "right", 5, back), 0);
	FV_CHECK(memcmp(master, back, FV_KEY_LEN) == 0);
	FV_CHECK_EQ(fv_keyfile_unwrap(kf, sizeof kf, repo, "wrong", 5, back), -EKEYREJECTED);
	FV_CHECK_EQ(fv_keyfile_unwrap(kf, sizeof kf, repo, "", 0, back), -EKEYREJECTED);
	/* a key file of another repository is refused as damage */
	FV_CHECK_EQ(fv_keyfile_unwrap(kf, sizeof kf, other_repo, "right", 5, back), -EUCLEAN);
	/* any flipped byte is damage, never "wrong passphrase" */
	for (size_t i = 0; i < sizeof kf; i += 7) {
		kf[i] ^= 0x01;
		FV_CHECK_EQ(fv_keyfile_unwrap(kf, sizeof kf, repo, "right", 5, back), -EUCLEAN);
		kf[i] ^= 0x01;
	}
	FV_CHECK_EQ(fv_keyfile_unwrap(kf, sizeof kf - 1, repo, "right", 5, back), -EUCLEAN);
	/* kdf none: no passphrase needed */
	FV_REQUIRE(fv_keyfile_wrap(master, repo, FV_KDF_NONE, 0, 0, NULL, 0, kf) == 0);
	FV_CHECK_EQ(fv_keyfile_needs_passphrase(kf, sizeof kf), 0);
	FV_CHECK_EQ(fv_keyfile_unwrap(kf, sizeof kf, repo, NULL, 0, back), 0);
	FV_CHECK(memcmp(master, back, FV_KEY_LEN) == 0);
}

FV_TEST(config_roundtrip_version_and_mac)
{
	struct fv_keys k;
	struct fv_config c = {.version = 1,
			      .enc = FV_ENC_XCHACHA,
			      .compression = 1,
			      .zstd_level = 3,
			      .chunk = {512 * 1024, 1024 * 1024, 8 * 1024 * 1024},
			      .pack_size = 32u << 20,
			      .created_ns = 1234567890123456789LL},
			 d;
	uint8_t b[FV_CONFIG_SIZE];
	memset(c.repo_id, 0xab, 16);
	keys_for(&k, FV_ENC_XCHACHA);
	fv_config_encode(&c, &k, b);
	FV_REQUIRE(fv_config_decode(b, sizeof b, &d) == 0);
	/* field by field: the struct has padding, which decode need not match */
	FV_CHECK_EQ(d.version, c.version);
	FV_CHECK(memcmp(d.repo_id, c.repo_id, sizeof c.repo_id) == 0);
	FV_CHECK_EQ(d.enc, c.enc);
	FV_CHECK_EQ(d.compression, c.compression);
	FV_CHECK_EQ(d.zstd_level, c.zstd_level);
	FV_CHECK_EQ(d.chunk.min, c.chunk.min);
	FV_CHECK_EQ(d.chunk.avg, c.chunk.avg);
	FV_CHECK_EQ(d.chunk.max, c.chunk.max);
	FV_CHECK_EQ(d.pack_size, c.pack_size);
	FV_CHECK_EQ(d.created_ns, c.created_ns);
	FV_CHECK_EQ(fv_config_verify_mac(b, &k), 0);
	/* a newer version is named as such, before any other check */
	b[8] = 2;
	FV_CHECK_EQ(fv_config_decode(b, sizeof b, &d), -EPROTONOSUPPORT);
	FV_CHECK_EQ(d.version, 2);
	b[8] = 1;
	/* not ours */
	b[0] = 'X';
	FV_CHECK_EQ(fv_config_decode(b, sizeof b, &d), -EMEDIUMTYPE);
	b[0] = 'F';
	/* damage anywhere else */
	for (size_t i = 12; i < sizeof b; i++) {
		b[i] ^= 0x40;
		FV_CHECK_EQ(fv_config_decode(b, sizeof b, &d), -EUCLEAN);
		b[i] ^= 0x40;
	}
	/* a forged config with a valid checksum but no key fails the MAC */
	struct fv_keys wrong = k;
	wrong.mac[0] ^= 1;
	c.zstd_level = 19;
	fv_config_encode(&c, &wrong, b);
	FV_CHECK_EQ(fv_config_decode(b, sizeof b, &d), 0);
	FV_CHECK_EQ(fv_config_verify_mac(b, &k), -EUCLEAN);
}

FV_TESTS(xchacha_roundtrip_and_tamper, aesgcm_roundtrip_and_tamper, xchacha_matches_libsodium,
	 aesgcm_matches_libsodium, none_mode_still_authenticates, ids_are_keyed_and_deterministic,
	 keyfile_wrong_passphrase_vs_damage, config_roundtrip_version_and_mac)
