/* restore: write a snapshot's files back under a target directory.
 *
 * Safety: every file is created relative to an open directory fd with
 * O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, names come from fv_tree_decode (single
 * valid components only), and existing symlinks in the target are never
 * followed; so a malicious tree cannot write outside the target.
 * Order: contents, xattrs, owner (when root), security.capability (chown
 * drops it), mode, mtime; directory
 * metadata after their entries (a 0000 directory is filled first).
 * Single-threaded; uses the repo's thread.
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
	bool verify;  /* re-read written files and compare chunk ids */
	bool owner;   /* restore uid/gid (callers pass geteuid() == 0) */
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
