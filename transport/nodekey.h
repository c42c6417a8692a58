/* nodekey: a node's long-term X25519 key pair (crypto_kx) and the list of
 * peers it accepts (docs/transport.md, "Key files"). Thread-safe (no shared
 * state); a loaded fv_tp_peers is read-only afterwards.
 */
#ifndef FV_NODEKEY_H
#define FV_NODEKEY_H

#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"

#define FV_TP_KEY 32

struct fv_tp_node_key {
	uint8_t pk[FV_TP_KEY];
	uint8_t sk[FV_TP_KEY];
};

struct fv_tp_peer {
	uint8_t pk[FV_TP_KEY];
	char name[64];
};

struct fv_tp_peers {
	struct fv_tp_peer *v;
	size_t n;
};

/* A fresh key pair. Returns 0, or -EIO when libsodium cannot start (no
 * source of randomness). */
int fv_tp_key_generate(struct fv_tp_node_key *k);

/* Write dir/node.key (0600, created exclusively unless force) and
 * dir/node.pub (0644, "fvnode1:<base64> name"). Returns 0, -EEXIST (a key
 * is there: not overwritten), or -errno, with the path in e. */
int fv_tp_key_save(const struct fv_tp_node_key *k, const char *dir, const char *name, int force,
		   struct fv_err *e);

/* Read a node.key file. Refuses a file readable by group or others
 * (-EPERM, "chmod 600 PATH"), and anything not of the documented form
 * (-EINVAL). */
int fv_tp_key_load(const char *path, struct fv_tp_node_key *k, struct fv_err *e);

/* "fvnode1:<base64>" of pk into out (at least 64 bytes). */
void fv_tp_key_pubstr(const uint8_t pk[FV_TP_KEY], char *out, size_t n);
/* Parse "fvnode1:<base64>" into pk. Returns 0 or -EINVAL. */
int fv_tp_key_pubparse(const char *s, uint8_t pk[FV_TP_KEY]);
/* Fingerprint (16 hex digits + NUL) of pk. */
void fv_tp_key_fingerprint(const uint8_t pk[FV_TP_KEY], char out[17]);

/* Load an authorized_peers file (or a node.pub: same line format). A bad
 * line fails the whole file with -EINVAL and "PATH:LINE: why". */
int fv_tp_peers_load(const char *path, struct fv_tp_peers *p, struct fv_err *e);
/* Add one key. Returns 0 or -ENOMEM. */
int fv_tp_peers_add(struct fv_tp_peers *p, const uint8_t pk[FV_TP_KEY], const char *name);
/* The entry for pk, or NULL. */
const struct fv_tp_peer *fv_tp_peers_find(const struct fv_tp_peers *p, const uint8_t pk[FV_TP_KEY]);
void fv_tp_peers_free(struct fv_tp_peers *p);

#endif
