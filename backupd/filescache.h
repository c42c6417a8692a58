/* filescache: what the last snapshots learned about each regular file
 * (inode, size, mtime, ctime -> content chunks), so that an unchanged file
 * is not read again (docs/repository-format.md, "Files cache").
 *
 * The cache is local (not in the repository): one file per repository,
 * $XDG_CACHE_HOME/fabvault/<repository id>/files by default. Paths are stored
 * as keyed hashes; the file carries a keyed MAC, since a forged cache could
 * make a snapshot record the wrong content: a cache that fails its MAC is
 * ignored (and rebuilt). An entry is used only when every chunk it names is
 * still in the repository's index. The device number is not compared: a
 * FUSE mount gets a new one at every mount, while its inode numbers (the
 * server's) stay the same.
 *
 * One thread owns a struct fv_fcache.
 */
#ifndef FV_FILESCACHE_H
#define FV_FILESCACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "../common/err.h"
#include "repo.h"
#include "tree.h"

struct fv_fcache;

/* Entries not seen by this many snapshots in a row are dropped. */
#define FV_FCACHE_MAX_AGE 20

/* The default cache directory for repository r: $XDG_CACHE_HOME/fabvault or
 * $HOME/.cache/fabvault (into buf). Returns 0 or -ENOENT (no home). */
int fv_fcache_default_dir(char *buf, size_t cap);

/* Open (load) the cache of r under dir (created when saving). A missing,
 * damaged or forged cache gives an empty one and *note says why (NULL when
 * it loaded fine); only allocation failure is an error. */
int fv_fcache_open(struct fv_repo *r, const char *dir, struct fv_fcache **out, const char **note,
		   struct fv_err *e);

/* The chunks recorded for the file at abspath if st matches (inode, size,
 * mtime ns, ctime ns) and every chunk is in r's index: copies them into
 * *chunks (malloc'd) and *n, marks the entry as seen, and returns true. */
bool fv_fcache_lookup(struct fv_fcache *fc, const char *abspath, const struct stat *st,
		      struct fv_chunkref **chunks, uint32_t *n);

/* The fixed block size to cut the file at abspath with, judged from what the
 * cache knows of it (docs/repository-format.md, "Chunking policy"): the size
 * it was cut with before (sticky), FV_FCACHE_BLOCK when it kept its size but
 * its content changed (updated in place) and is at least 1 MiB, else 0
 * (content-defined chunking). */
#define FV_FCACHE_BLOCK (16u * 1024)
uint32_t fv_fcache_block_hint(struct fv_fcache *fc, const char *abspath, const struct stat *st);

/* Record what was just read of the file at abspath (st as before reading),
 * and the fixed block size it was cut with (0: content-defined).
 * Files changed less than a second before start_ns are not recorded: a
 * change within the filesystem's timestamp resolution could go unseen. */
int fv_fcache_put(struct fv_fcache *fc, const char *abspath, const struct stat *st,
		  const struct fv_chunkref *chunks, uint32_t n, uint32_t block, int64_t start_ns);

/* Write the cache durably (call after the snapshot was saved, so that every
 * chunk it names is committed). Entries not seen this time age by one. */
int fv_fcache_save(struct fv_fcache *fc, struct fv_err *e);

void fv_fcache_close(struct fv_fcache *fc);

#endif
