/* restore: write a snapshot's files back under a target directory.
 *
 * Safety: every file is created relative to an open directory fd with
 * O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, names come from fv_tree_decode (single
 * valid components only), and existing symlinks in the target are never
 * followed; so a malicious tree cannot write outside the target.
 * Order: contents, xattrs, owner (when root), security.capability (chown
 * drops it), mode, mtime; directory
 * metadata after their entries (a 0000 directory is filled first).
 *
 * Threads: fv_restore_run runs on the thread that owns r (the walker) and
 * starts o->threads workers (none in dry-run), joined before it returns.
 *   - The walker alone reads trees (through r), creates directories, files,
 *     links and special files, applies all metadata, calls the callbacks,
 *     and owns the hardlink table, the statistics and every open file.
 *   - A worker owns an fv_reader (backupd/reader.h) and a chunk buffer; it
 *     reads chunks (frame checksum, unseal, decompress; the id is
 *     recomputed only with verify or without encryption) and
 *     pwrites each at its offset into a file the walker opened, so chunks
 *     of one file may be written by different workers. Files of 256 KiB
 *     and more, at least half data, are written with O_DIRECT, assembled
 *     in 1 MiB windows (backupd/dwrite.h), where the file system allows it.
 *   - They talk through two bounded queues (backupd/workq.h): walker ->
 *     workers, chunks to write (the walker sorts up to 1024 at a time by
 *     pack and offset, so packs are read front to back); workers -> walker,
 *     files whose last chunk is done (by reference count), which the walker
 *     then finishes: warnings for failed chunks, size (holes), verify,
 *     xattrs, owner, mode, times, close. A worker that hits an error ending
 *     the restore (disk full, out of memory) shuts both queues down, which
 *     ends every wait, so nothing hangs.
 * Memory budget, on top of the trees of the current path: per worker its
 * three buffers: frame and plaintext, which grow in powers of two to the
 * largest chunk read, and the chunk itself, aligned, in whole MiB: with the
 * default 8 MiB largest chunk at most 16 + 16 + 9 MiB = 44,040,192 bytes,
 * plus a zstd context (95,992 bytes); shared, the windows of files written
 * with O_DIRECT (backupd/dwrite.h; 32 x 1 MiB, allocated as needed) and
 * 98,304 bytes (256 file slots of 216 bytes, 1024 + 256 queued chunks of 32
 * bytes, the finished-files queue and the free list) plus the nodes (48
 * bytes per chunk) and paths of the at most 256 files open. For 2 workers:
 * 121,925,104 bytes plus those nodes; --verify adds the walker's
 * one chunk buffer (8 MiB). Fds: 256 files, 4 packs per worker, one per
 * directory level.
 */
#ifndef FV_RESTORE_H
#define FV_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"
#include "repo.h"
#include "snapshot.h"
#include "tree.h"

struct fv_restore_progress {
	uint64_t files, bytes;             /* done so far */
	uint64_t total_files, total_bytes; /* of the selection */
	const char *path;
};

struct fv_restore_opts {
	const char *target; /* created if missing */
	/* includes: paths inside the snapshot ("opt/memory-system/data/x", a
	 * leading '/' is ignored); an entry is restored when it is, is below, or
	 * is an ancestor of an include. None: everything. */
	const char *const *includes;
	size_t nincludes;
	bool dry_run; /* walk and report, write nothing */
	/* verify: re-read written files and compare chunk ids, and recompute
	 * each blob's id as it is read; without it, an encrypted repository's
	 * AEAD tag stands for the id (docs/repository-format.md, "What a read
	 * checks") */
	bool verify;
	bool owner;       /* restore uid/gid (callers pass geteuid() == 0) */
	unsigned threads; /* data workers; 0: one per online CPU (at most FV_READ_THREADS_MAX) */
	void (*warn)(void *ud, const char *path, int code, const char *msg);
	void (*progress)(void *ud, const struct fv_restore_progress *p);
	/* item: called for every entry selected (dry-run listing, --verbose). */
	void (*item)(void *ud, const char *path, const struct fv_node *n);
	void *ud;
};

struct fv_restore_stats {
	uint64_t files, dirs, others, bytes;
	uint64_t errors;          /* entries that failed (reported via warn) */
	uint64_t verify_failures; /* files whose re-read did not match */
	uint64_t matched;         /* includes that matched something */
};

/* Restore snapshot s into o->target. Returns 0 when every selected entry was
 * restored (and verified, with verify), -EUCLEAN when a verify failed or a
 * blob was damaged, -ENOENT when an include matches nothing (found before
 * anything is written), or another
 * negative code; per-entry failures are counted in st->errors, reported via
 * warn(), and make the return -EIO after the rest was restored. */
int fv_restore_run(struct fv_repo *r, const struct fv_snapshot *s, const struct fv_restore_opts *o,
		   struct fv_restore_stats *st, struct fv_err *e);

#endif
