/* reader: read and verify blobs of an open repository from any thread.
 *
 * A struct fv_repo is single-threaded (its scratch buffers, zstd context and
 * pack fd cache are shared by every call). A struct fv_reader has its own
 * of each, and uses the repository's index, keys and directory fd read-only,
 * so several readers on one repository run in parallel: one reader per
 * thread. A blob is verified exactly as fv_repo_get does it (frame checksum,
 * unseal, decompress, id recomputed and compared) with the same error codes
 * and messages, unless the reader was told to trust the seal
 * (fv_reader_trust_seal).
 *
 * Contract: while any reader of r exists, r's index and keys must not
 * change: the thread owning r may read trees and blobs through r (that only
 * touches r's own scratch state) but must not put, commit or load index
 * files. Lookups (fv_reader_locate) are read-only on the index and may run
 * on any thread under the same rule.
 *
 * Memory: a reader keeps the largest frame and the largest sealed plaintext
 * it has read (each about one chunk, at most the chunker's maximum plus the
 * seal overhead), a zstd decompression context (~160 KiB) and up to
 * FV_READER_FDS open pack files.
 */
#ifndef FV_READER_H
#define FV_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/err.h"
#include "index.h"
#include "repo.h"

#define FV_READER_FDS 4
/* The most reader threads restore and check start (each holds up to
 * FV_READER_FDS pack files and a few chunk-sized buffers). */
#define FV_READ_THREADS_MAX 64

/* The number of threads to use for requested (0: the online CPUs), clamped
 * to 1..FV_READ_THREADS_MAX. */
unsigned fv_reader_threads(unsigned requested);

/* Parse a thread count as given on a command line: a decimal number from 1
 * to FV_READ_THREADS_MAX, nothing else. Returns 0 and *out, or -EINVAL. */
int fv_reader_threads_parse(const char *s, unsigned *out);

struct fv_reader;

/* A reader of r's blobs. Returns 0 and *out, or -ENOMEM. */
int fv_reader_open(const struct fv_repo *r, struct fv_reader **out, struct fv_err *e);

/* trust: skip the last step of fv_reader_read, recomputing the blob's id
 * from what was read, when r's encryption is an AEAD (xchacha20-poly1305,
 * aes256gcm); the default is false. The tag already proves that a holder of
 * the repository key sealed these bytes for this type and id (the id is the
 * associated data); the id recomputed additionally catches a writer that
 * sealed other bytes than it hashed (docs/repository-format.md, "What a
 * read checks"). With encryption none the id is always recomputed. Not
 * thread-safe against reads on rd. */
void fv_reader_trust_seal(struct fv_reader *rd, bool trust);

/* Close rd's pack files and free it. rd may be NULL. */
void fv_reader_close(struct fv_reader *rd);

/* The index entry of blob id of type: 0 and *ie (valid while the index does
 * not change), -ENOENT (not in the index) or -EUCLEAN (indexed with another
 * type), with fv_repo_get's messages. Thread-safe under the contract above. */
int fv_reader_locate(const struct fv_repo *r, uint8_t type, const uint8_t id[FV_ID_LEN],
		     const struct fv_index_entry **ie, struct fv_err *e);

/* Read and verify the blob at index entry ie into out (reset first). id is
 * the blob's full id, the one ie was found by (the index keeps only a
 * prefix; the full id authenticates the blob).
 * Returns 0, -EUCLEAN (damaged; the pack and blob are named), -ENOMEM or a
 * system error naming the pack. */
int fv_reader_read(struct fv_reader *rd, const struct fv_index_entry *ie, const uint8_t id[FV_ID_LEN],
		   struct fv_buf *out, struct fv_err *e);

/* fv_reader_read into dst, which holds ie->rawlen bytes (the caller
 * chooses where the blob lands, e.g. at an alignment). On failure dst's
 * content is unspecified. */
int fv_reader_read_to(struct fv_reader *rd, const struct fv_index_entry *ie, const uint8_t id[FV_ID_LEN],
		      uint8_t *dst, struct fv_err *e);

/* fv_reader_locate, then fv_reader_read: fv_repo_get on rd's own state. */
int fv_reader_get(struct fv_reader *rd, uint8_t type, const uint8_t id[FV_ID_LEN], struct fv_buf *out,
		  struct fv_err *e);

#endif
