/* repo: a fabvault repository on a local filesystem: create, open (config,
 * key, index), the exclusive writer lock, blob put/get, commit, snapshots
 * (docs/repository-format.md).
 *
 * Threading: a struct fv_repo is used by one thread at a time (its owner),
 * except fv_repo_id and fv_repo_encode (any thread), and fv_repo_has (any
 * thread, under the lock the owner passes to fv_repo_append as idx_lock).
 * Nothing here prints or exits; failures fill the caller's struct fv_err and
 * return its negative code:
 *   -ENOENT / -ENOTDIR  no repository at path (no config file)
 *   -EMEDIUMTYPE        path holds something that is not a fabvault repository
 *   -EPROTONOSUPPORT    the repository's format version is newer than this program
 *   -EKEYREJECTED       wrong passphrase
 *   -ENOKEY             a passphrase is needed and none was given
 *   -EUCLEAN            a repository file is damaged (checksum/MAC/AEAD failure)
 *   -EBUSY              another process holds the lock
 *   -ENOSPC, -EIO, ...  system errors, with the path in the message
 */
#ifndef FV_REPO_H
#define FV_REPO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/err.h"
#include "chunker.h"
#include "crypto.h"
#include "snapshot.h"
#include "tree.h"

#define FV_REPO_VERSION 1

struct fv_repo;

struct fv_repo_create_opts {
	enum fv_enc enc;                /* default FV_ENC_XCHACHA */
	int zstd_level;                 /* 0 = store uncompressed; default 3 */
	struct fv_chunker_params chunk; /* default 512 KiB / 1 MiB / 8 MiB */
	uint32_t pack_size;             /* target pack size, default 32 MiB */
	uint64_t kdf_ops, kdf_mem;      /* Argon2id cost; default libsodium MODERATE */
};

/* Fill o with the defaults above. */
void fv_repo_create_opts_default(struct fv_repo_create_opts *o);

/* Create a new repository at path (created if missing; must be empty).
 * pass/passlen: the passphrase (ignored for FV_ENC_NONE). Returns 0 or a
 * negative code (-EEXIST when path is already a repository or not empty). */
int fv_repo_create(const char *path, const struct fv_repo_create_opts *o, const char *pass, size_t passlen,
		   struct fv_err *e);

#define FV_OPEN_WRITE 0x1    /* take the exclusive lock; allow put/commit/snapshot_save */
#define FV_OPEN_NO_INDEX 0x2 /* do not load the index (check loads it itself) */

/* Open the repository at path. Returns 0 and *out, or a negative code (see
 * top). With FV_OPEN_WRITE a stale lock (same host, owner process gone) is
 * taken over; a live one gives -EBUSY naming its owner. */
int fv_repo_open(const char *path, unsigned flags, const char *pass, size_t passlen, struct fv_repo **out,
		 struct fv_err *e);

/* 1 when opening path needs a passphrase, 0 when not (encryption none), or
 * a negative code when path is not a usable repository. */
int fv_repo_needs_passphrase(const char *path, struct fv_err *e);

/* Close r: an unfinished pack is discarded (never referenced), the lock is
 * released, keys are wiped. Uncommitted blobs are lost; the repository stays
 * valid. r may be NULL. */
void fv_repo_close(struct fv_repo *r);

const struct fv_keys *fv_repo_keys(const struct fv_repo *r);
const struct fv_chunker *fv_repo_chunker(const struct fv_repo *r);
/* The path the repository was opened with. */
const char *fv_repo_path(const struct fv_repo *r);
/* Repository facts for `list --json`/info: id hex (33 bytes), encryption,
 * zstd level, chunk params. */
void fv_repo_describe(const struct fv_repo *r, char id_hex[33], enum fv_enc *enc, int *zlevel,
		      struct fv_chunker_params *chunk);

/* True when opening took over a stale lock; fills its owner's host and pid. */
bool fv_repo_took_stale_lock(const struct fv_repo *r, char host[256], long *pid);

/* Counters of what this handle added since open. */
struct fv_repo_stats {
	uint64_t new_blobs;
	uint64_t new_bytes;    /* plaintext bytes of new blobs */
	uint64_t stored_bytes; /* pack bytes written for them (frames) */
	uint64_t dup_blobs;    /* puts that were already present */
};
void fv_repo_stats(const struct fv_repo *r, struct fv_repo_stats *st);

/* Compute the id of data (keyed BLAKE2b). */
void fv_repo_id(const struct fv_repo *r, const void *data, size_t len, uint8_t id[FV_ID_LEN]);

/* True when a blob with id is in the index (committed or pending). */
bool fv_repo_has(const struct fv_repo *r, const uint8_t id[FV_ID_LEN]);

/* Store a blob of type (FV_OBJ_DATA or FV_OBJ_TREE) unless one with its id
 * exists. id must be fv_repo_id(data) (the caller often has it already).
 * *added (may be NULL) tells whether it was new. Needs FV_OPEN_WRITE. */
int fv_repo_put(struct fv_repo *r, uint8_t type, const uint8_t id[FV_ID_LEN], const void *data, size_t len,
		bool *added, struct fv_err *e);

/* ---- the put path in two steps, for a multi-threaded writer
 * (backupd/pipeline.h): fv_repo_encode (compress and seal; any thread, any
 * number at once) and fv_repo_append (dedup re-check, pack, index, stats; r's
 * owner thread only). fv_repo_put is the two in one. */

/* An encoding context: a zstd compression context and scratch for one
 * thread. It reads only r's keys and config (fixed after open), so encoders
 * run alongside each other and alongside r's owner thread; r must outlive it. */
struct fv_repo_enc;

/* A context for blobs of up to max_len bytes (its scratch, 1 +
 * ZSTD_compressBound(max_len) bytes, and the zstd context are allocated here
 * once). Returns 0 or -ENOMEM. */
int fv_repo_enc_new(const struct fv_repo *r, size_t max_len, struct fv_repo_enc **out);
void fv_repo_enc_free(struct fv_repo_enc *x);

/* The most bytes a sealed blob of len plaintext bytes takes:
 * 1 (encoding byte) + len + the seal overhead. */
size_t fv_repo_sealed_max(const struct fv_repo *r, size_t len);

/* Encode data[0..len) as the body of blob id of type: zstd when the
 * repository compresses and the chunk shrinks (an incompressible one is found
 * by a cheap probe and stored raw), then sealed into out, which has room for
 * fv_repo_sealed_max(len) bytes; *outlen is the sealed length.
 * data[-1] must be writable: a raw blob gets its encoding byte written there
 * and is sealed in place, without copying the chunk. Thread-safe as above.
 * Returns 0, -EFBIG (len above the context's max_len) or -EIO (seal). */
int fv_repo_encode(struct fv_repo_enc *x, uint8_t type, const uint8_t id[FV_ID_LEN], uint8_t *data,
		   size_t len, uint8_t *out, size_t *outlen, struct fv_err *e);

/* Append a blob that fv_repo_encode sealed (sealed[0..n), rawlen plaintext
 * bytes) unless the index already has id, like fv_repo_put; *added (may be
 * NULL) tells which. r's owner thread only; needs FV_OPEN_WRITE.
 * idx_lock (may be NULL) is held while r's index is modified, so that other
 * threads may call fv_repo_has under it while this runs. */
int fv_repo_append(struct fv_repo *r, uint8_t type, const uint8_t id[FV_ID_LEN], uint32_t rawlen,
		   const uint8_t *sealed, size_t n, pthread_mutex_t *idx_lock, bool *added, struct fv_err *e);

/* fv_repo_put on r's owner thread while other threads look ids up: the
 * index is changed under idx_lock (see fv_repo_append). */
int fv_repo_put_locked(struct fv_repo *r, uint8_t type, const uint8_t id[FV_ID_LEN], const void *data,
		       size_t len, pthread_mutex_t *idx_lock, bool *added, struct fv_err *e);

/* Count a put that found its blob already stored or being stored (the
 * dup_blobs statistic) when fv_repo_append was not called for it. */
void fv_repo_count_dup(struct fv_repo *r);

/* Read blob id of type into out (reset first): located through the index,
 * frame checksum checked, unsealed, decompressed, and its id recomputed and
 * compared. Returns 0, -ENOENT (not in the index), -EUCLEAN (damaged) or a
 * system error. */
int fv_repo_get(struct fv_repo *r, uint8_t type, const uint8_t id[FV_ID_LEN], struct fv_buf *out,
		struct fv_err *e);

/* Read and decode tree blob id into t. */
int fv_repo_tree(struct fv_repo *r, const uint8_t id[FV_ID_LEN], struct fv_tree *t, struct fv_err *e);

/* Make every blob put so far durable and indexed: finish the open pack
 * (fsync, rename, fsync dir), then write an index file naming the new
 * blobs (durably). After it returns 0 a crash loses none of them. */
int fv_repo_commit(struct fv_repo *r, struct fv_err *e);

/* Commit, then store snapshot s durably; fills s->id. */
int fv_repo_snapshot_save(struct fv_repo *r, struct fv_snapshot *s, struct fv_err *e);

/* All snapshots, oldest first (*list: array of *n, free with
 * fv_repo_snapshots_free). A damaged snapshot file fails the call with
 * -EUCLEAN naming it, unless ndamaged is given: then damaged files are
 * skipped, counted in *ndamaged, and e describes the last one. */
int fv_repo_snapshots(struct fv_repo *r, struct fv_snapshot **list, size_t *n, size_t *ndamaged,
		      struct fv_err *e);
void fv_repo_snapshots_free(struct fv_snapshot *list, size_t n);

/* Find one snapshot by "latest", a full hex id or a unique hex prefix
 * (>= 4 digits). Only the files whose names match a prefix are read, so
 * damage elsewhere does not hide an intact snapshot; "latest" fails with
 * -EUCLEAN while any snapshot file is damaged (the newest might be the one).
 * Returns 0, -ENOENT (none), -EINVAL (ambiguous or bad spec), -EUCLEAN. */
int fv_repo_snapshot_find(struct fv_repo *r, const char *spec, struct fv_snapshot *out, struct fv_err *e);

#endif
