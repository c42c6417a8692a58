/* keyfile: the repository master key wrapped with Argon2id(passphrase) and
 * XChaCha20-Poly1305, 144 bytes, fixed layout (docs/repository-format.md,
 * "keys/"). Pure codec: no I/O. Thread-safe.
 */
#ifndef FV_KEYFILE_H
#define FV_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

#define FV_KEYFILE_SIZE 144
#define FV_KEYFILE_MAGIC "FVKEY\0\0\1"

enum fv_kdf { FV_KDF_NONE = 0, FV_KDF_ARGON2ID = 1 };

/* Wrap master for repo_id into out. kdf NONE stores the key in the clear
 * (repositories created with --encryption none). Returns 0 or -ENOMEM (the
 * KDF could not get its memory). */
int fv_keyfile_wrap(const uint8_t master[FV_KEY_LEN], const uint8_t repo_id[16], enum fv_kdf kdf,
		    uint64_t ops, uint64_t mem, const char *pass, size_t passlen,
		    uint8_t out[FV_KEYFILE_SIZE]);

/* 1 if the key file needs a passphrase, 0 if not, -EUCLEAN if damaged. */
int fv_keyfile_needs_passphrase(const uint8_t *p, size_t len);

/* Unwrap: -EUCLEAN (damaged: checksum, size, magic, or repo_id mismatch),
 * -EKEYREJECTED (wrong passphrase), -ENOMEM. */
int fv_keyfile_unwrap(const uint8_t *p, size_t len, const uint8_t repo_id[16], const char *pass,
		      size_t passlen, uint8_t master[FV_KEY_LEN]);

#endif
