/* fsclient: the client side of the remote filesystem protocol
 * (docs/protocol.md) for fabvault-fs: one call per operation over a
 * transport client, the node map (node id -> parent, name, lookup count)
 * that finds a node again by name after the server restarted, and the
 * batching of FORGET. Knows nothing of FUSE: fusefs.c maps these calls onto
 * the kernel's requests.
 *
 * Errors: every function returns 0 or a negative errno. The server's own
 * status is passed through (-ENOENT, -EACCES, ...); a transport failure
 * (no path up within the timeout, client closing) is -EIO; a reply that does
 * not decode is -EPROTO. Calls that name a node re-resolve it by name from
 * the root and retry once when the server answers -ESTALE (a server that
 * restarted forgot every id; docs/protocol.md, "Nodes"); when the name now
 * names another node the result is -ESTALE.
 *
 * Thread-safety: every function may be called from any thread at once.
 */
#ifndef FV_FSCLIENT_H
#define FV_FSCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../transport/tp.h"
#include "proto.h"

struct fv_fsc;

/* Make a client over tp (not owned: the caller closes it after
 * fv_fsc_free). Starts the thread that flushes queued FORGETs. */
int fv_fsc_new(struct fv_tp_client *tp, struct fv_fsc **out);
/* Give every node back to the server (fv_fsc_forget_all, waiting up to two
 * seconds), stop the thread, free the node map. */
void fv_fsc_free(struct fv_fsc *c);
/* The transport client, for bulk buffers and asynchronous READs. */
struct fv_tp_client *fv_fsc_tp(struct fv_fsc *c);

/* LOOKUP name in parent: fills a and counts one lookup of a->node in the
 * node map (the caller hands it to the kernel, which will FORGET it). */
int fv_fsc_lookup(struct fv_fsc *c, uint64_t parent, const char *name, struct fv_fs_attr *a);
int fv_fsc_getattr(struct fv_fsc *c, uint64_t node, struct fv_fs_attr *a);
/* The kernel gave back nlookup lookups of node: drop it from the map when
 * none is left and queue a FORGET for the server (sent in batches). */
void fv_fsc_forget(struct fv_fsc *c, uint64_t node, uint64_t nlookup);
/* Queue a FORGET for lookups the server counted that never reached the
 * kernel (READDIRPLUS entries not passed on); the map is not touched. */
void fv_fsc_forget_server(struct fv_fsc *c, uint64_t node, uint64_t nlookup);
/* Send the queued FORGETs now (asynchronously). */
void fv_fsc_forget_flush(struct fv_fsc *c);
/* At unmount, once the kernel sends nothing more but the transport is still
 * up: send FORGET for every node of the map with its whole lookup count (in
 * batches of FV_FS_MAX_FORGET) and for the queued ones, empty the map, and
 * wait up to timeout_ms for the server's answers, so that it does not keep
 * the nodes until it restarts. *nodes (may be NULL): the nodes of the map.
 * Returns 0, -ETIMEDOUT when answers were missing at the timeout (a server
 * that is gone forgot them anyway), -ENOMEM (the map is then left as it
 * was, the queue sent). Best effort: calls after it see an empty map. */
int fv_fsc_forget_all(struct fv_fsc *c, int timeout_ms, size_t *nodes);
/* Count one lookup of a->node, named name in parent, in the node map: for
 * a READDIRPLUS entry passed on to the kernel. */
int fv_fsc_note_lookup(struct fv_fsc *c, uint64_t parent, const char *name, size_t len,
		       const struct fv_fs_attr *a);

/* Remember size and mtime of node at an open; true when they equal those
 * of the previous open, so the kernel may keep its page cache (keep_cache).
 * Forgotten with the node. */
bool fv_fsc_cache_same(struct fv_fsc *c, uint64_t node, uint64_t size, int64_t mtime_ns);

/* OPEN node read-only: *handle and a (the attr at open time). */
int fv_fsc_open(struct fv_fsc *c, uint64_t node, uint32_t flags, uint64_t *handle, struct fv_fs_attr *a);
/* OPEN_INLINE (docs/protocol.md): OPEN node asking for up to max_inline
 * (≤ FV_FS_MAX_INLINE) of its first bytes along. o->handle is 0 when the
 * whole file came (nothing to RELEASE). *buf (the caller frees it) holds
 * the reply, o->data points into it (NULL when max_inline is 0). A server
 * without OPEN_INLINE (-ENOSYS, once) is asked OPEN from then on, with no
 * bytes. */
int fv_fsc_open_inline(struct fv_fsc *c, uint64_t node, uint32_t flags, uint32_t max_inline,
		       struct fv_fs_open_inline *o, uint8_t **buf);
/* The same asynchronously: encode the request into req
 * (FV_FSC_OPEN_INLINE_REQ bytes) for a call whose reply buffer holds
 * FV_FS_OPEN_INLINE_FIXED + max_inline bytes; fv_fsc_open_inline_done
 * decodes the reply (o->data points into it). No retry, no fallback: a
 * failed call is for the caller to make again with fv_fsc_open_inline. */
#define FV_FSC_OPEN_INLINE_REQ 20
void fv_fsc_open_inline_req(uint8_t req[FV_FSC_OPEN_INLINE_REQ], uint64_t node, uint32_t flags,
			    uint32_t max_inline);
int fv_fsc_open_inline_done(const struct fv_tp_call *call, const uint8_t *reply, uint32_t max_inline,
			    struct fv_fs_open_inline *o);
/* False once the server answered OPEN_INLINE -ENOSYS. */
bool fv_fsc_inline_ok(struct fv_fsc *c);
/* The order of a directory listing, for opening ahead: next is the node
 * listed after node (0: none). Forgotten with the node. */
void fv_fsc_set_next(struct fv_fsc *c, uint64_t node, uint64_t next);
uint64_t fv_fsc_next(struct fv_fsc *c, uint64_t node);
/* RELEASE handle (a lost handle is not an error). */
void fv_fsc_release(struct fv_fsc *c, uint64_t handle);
/* READ size bytes at off of handle into bulk (from fv_tp_bulk_get, at least
 * size bytes): *got bytes. -EBADF: the handle is gone (reconnect), reopen. */
int fv_fsc_read(struct fv_fsc *c, uint64_t handle, uint64_t off, uint32_t size, struct fv_tp_buf *bulk,
		uint32_t *got);
/* Encode a READ request into req (FV_FSC_READ_REQ bytes), for an
 * asynchronous call; fv_fsc_read_done decodes its reply. */
#define FV_FSC_READ_REQ 24
void fv_fsc_read_req(uint8_t req[FV_FSC_READ_REQ], uint64_t handle, uint64_t off, uint32_t size);
/* Status and byte count of a finished READ call (call->status included). */
int fv_fsc_read_done(const struct fv_tp_call *call, const uint8_t *reply, uint32_t size, uint32_t *got);

/* One READDIRPLUS batch, decoded. The entries point into the batch's
 * buffer; each one carries a lookup counted by the server that the caller
 * must hand to the kernel (fv_fsc_note_lookup) or give back
 * (fv_fsc_forget_server). */
struct fv_fsc_dirent {
	struct fv_fs_attr attr;
	uint64_t next_cookie;
	const char *name; /* NUL-terminated */
	size_t len;
};
struct fv_fsc_dirbatch {
	uint8_t *raw; /* the reply, FV_FS_MAX_DIRBYTES + header; names are rewritten in place */
	struct fv_fsc_dirent *ents;
	uint32_t n;
	bool eof;
};
/* Allocate the buffers of a batch (once per open directory). */
int fv_fsc_dirbatch_init(struct fv_fsc_dirbatch *b);
void fv_fsc_dirbatch_free(struct fv_fsc_dirbatch *b);
/* READDIRPLUS dir from cookie into b (replacing what it held). */
int fv_fsc_readdir(struct fv_fsc *c, uint64_t dir, uint64_t cookie, struct fv_fsc_dirbatch *b);

/* READLINK node: the target, NUL-terminated, into buf of n bytes (-ENAMETOOLONG when it does not fit). */
int fv_fsc_readlink(struct fv_fsc *c, uint64_t node, char *buf, size_t n);

struct fv_fsc_statfs {
	uint64_t blocks, bfree, bavail, files, ffree;
	uint32_t bsize, namemax, frsize;
};
int fv_fsc_statfs(struct fv_fsc *c, uint64_t node, struct fv_fsc_statfs *s);

/* GETXATTR (name) or LISTXATTR (name NULL) with the caller's size: with
 * size 0, *len is the size needed; else the value is copied to buf (at
 * least size bytes) and *len is its length. */
int fv_fsc_xattr(struct fv_fsc *c, uint64_t node, const char *name, uint32_t size, void *buf, uint32_t *len);

/* Map a transport status to what a filesystem call reports: -EIO for the
 * transport's own failures, anything else unchanged. */
int fv_fsc_tp_errno(int status);

#endif
