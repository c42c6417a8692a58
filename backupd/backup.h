/* backup: walk source paths and store them as a new snapshot.
 *
 * Paths are stored as absolute paths without the leading '/', like borg and
 * restic: backing up /opt/memory-system/data yields the tree
 * opt/ -> memory-system/ -> data/ -> ... with the ancestors' metadata.
 * Unreadable entries are reported through warn() and skipped; the snapshot is
 * then flagged FV_SNAP_PARTIAL.
 *
 * Threads: the calling thread walks the sources, reads files and cuts
 * chunks; worker threads (o->threads) compute ids and compress and seal new
 * chunks; the calling thread appends them to the repository
 * (backupd/pipeline.h: the stages, who owns what, the memory budget). The
 * repository must not be used by another thread during the run.
 */
#ifndef FV_BACKUP_H
#define FV_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"
#include "repo.h"
#include "snapshot.h"

struct fv_backup_progress {
	uint64_t files, bytes;             /* done so far */
	uint64_t total_files, total_bytes; /* from the counting pass (0 if none) */
	const char *path;                  /* current file */
};

/* What a run did beyond the snapshot's own statistics. */
struct fv_backup_counters {
	uint64_t cached_files; /* regular files taken from the files cache, not read */
	uint64_t read_bytes;   /* file data actually read */
};

struct fv_backup_opts {
	const char *const *paths; /* source paths (need not be absolute) */
	size_t npaths;
	const char *const *tags;
	size_t ntags;
	const char *const *excludes; /* fnmatch(3) patterns: full path, or basename when no '/' */
	size_t nexcludes;
	const char *host;     /* NULL: gethostname() */
	bool one_file_system; /* do not cross mount points below a source path */
	bool count_first;     /* walk once to learn totals for progress/ETA */
	/* cache_dir: where the files cache lives (backupd/filescache.h); NULL
	 * reads every file. A cache that cannot be used is reported via warn()
	 * with code 0 and does not make the snapshot partial. */
	const char *cache_dir;
	struct fv_backup_counters *counters; /* optional out */
	/* threads: worker threads for ids, compression and sealing
	 * (1..FV_PIPE_WORKERS_MAX); 0: one per online CPU, at most that many */
	unsigned threads;
	/* warn: an entry was skipped or stored inconsistent (path, -errno, text). */
	void (*warn)(void *ud, const char *path, int code, const char *msg);
	/* progress: called at most a few times per second. */
	void (*progress)(void *ud, const struct fv_backup_progress *p);
	void *ud;
};

/* Back up o->paths into r (opened FV_OPEN_WRITE) and save the snapshot.
 * On success *out is the saved snapshot (free with fv_snapshot_free) and the
 * return is 0; FV_SNAP_PARTIAL in out->flags tells that entries were skipped.
 * A missing source path fails with -ENOENT before anything is stored. Any
 * other failure (disk full, ...) leaves the repository valid: what was
 * written is unreferenced and the snapshot is not saved. */
int fv_backup_run(struct fv_repo *r, const struct fv_backup_opts *o, struct fv_snapshot *out,
		  struct fv_err *e);

#endif
