/* snapshot: the codec of snapshot objects (docs/repository-format.md,
 * "Snapshots"). Decoding is strict and bounded. Not thread-safe per object.
 */
#ifndef FV_SNAPSHOT_H
#define FV_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "crypto.h"

#define FV_SNAPSHOT_VERSION 1
#define FV_SNAP_PARTIAL 0x01   /* some source files could not be read */
#define FV_SNAP_PATHS_MAX 4096 /* paths per snapshot */
#define FV_SNAP_PATH_MAX 4096  /* bytes per path */
#define FV_SNAP_TAGS_MAX 256   /* tags per snapshot (each 1..255 bytes) */

struct fv_snap_stats {
	uint64_t files; /* regular files */
	uint64_t dirs;
	uint64_t others;       /* symlinks, devices, fifos, sockets */
	uint64_t bytes;        /* sum of regular file data bytes read */
	uint64_t new_chunks;   /* data+tree blobs added */
	uint64_t new_bytes;    /* uncompressed bytes of those blobs */
	uint64_t stored_bytes; /* bytes added to packs for them */
	uint64_t errors;       /* entries skipped because unreadable */
};

struct fv_snapshot {
	uint8_t id[FV_ID_LEN]; /* not encoded: the object's name */
	int64_t time_ns;       /* start, Unix ns */
	int64_t end_ns;
	char *host;
	char *user;
	char **paths;
	uint32_t npaths;
	char **tags;
	uint32_t ntags;
	uint8_t root[FV_ID_LEN]; /* root tree blob */
	struct fv_snap_stats stats;
	uint32_t flags; /* FV_SNAP_* */
	char *version;  /* program version that wrote it */
};

/* Append the encoding of s to out. Returns 0, -EINVAL (a field the decoder
 * would reject: path/tag counts or lengths, unknown flags) or -ENOMEM. */
int fv_snapshot_encode(const struct fv_snapshot *s, struct fv_buf *out);
/* Decode into s (zeroed first; free with fv_snapshot_free even on error).
 * s->id is left zero. Returns 0, -EBADMSG or -ENOMEM. */
int fv_snapshot_decode(const uint8_t *p, size_t len, struct fv_snapshot *s);
void fv_snapshot_free(struct fv_snapshot *s);

#endif
