/* export: the server side of the remote filesystem (docs/protocol.md) as a
 * library: a directory served read-only, its node table and open handles,
 * one function per operation, and fv_export_request that decodes a request,
 * runs it and encodes the reply. It knows nothing of the network:
 * fabvault-exportd (fs/exportd.c) feeds it the transport's requests, the
 * unit tests and the fuzzer call it directly.
 *
 * Security: every name is resolved beneath its parent's descriptor with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS);
 * symbolic links are reported as links and never followed; node ids the
 * server has not handed out are -ESTALE, handles it has not handed out
 * -EBADF.
 *
 * Scope: node ids and handles are server-wide, not per transport link (a
 * client's requests arrive on several links, and a request retried on
 * another path must find its handles). The handle limit is server-wide.
 *
 * Resources: a known directory (the root included) holds one O_PATH
 * descriptor, every handle one O_RDONLY descriptor; other nodes hold none
 * (their parent directory and name, found again on each use). So the
 * descriptors in use are about the known directories plus the open handles:
 * raise RLIMIT_NOFILE (fabvault-exportd does) and size max_dirs to it.
 *
 * Thread-safety: every function may be called from any number of threads at
 * once on one struct fv_export, except fv_export_close. The tables are under
 * one mutex that is never held across a file system call.
 */
#ifndef FV_EXPORT_H
#define FV_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/err.h"
#include "proto.h"

struct fv_export;

/* Where the export's few log lines go (the library never prints); fn may be
 * NULL. Called without any lock held, from the thread of the call. */
struct fv_export_logger {
	void (*fn)(void *ud, int prio, const char *msg);
	void *ud;
};

struct fv_export_opts {
	const char *root;   /* the exported directory (symbolic links in this path are followed) */
	size_t max_handles; /* open handles at once (0: FV_FS_MAX_HANDLES); -EMFILE beyond */
	/* Open handles one client may hold at once (0: max_handles); -EMFILE
	 * beyond, so that one client cannot take every handle. A client is a
	 * number the caller chooses (exportd: the client key's entry in the
	 * authorized peers). */
	size_t client_handles;
	/* Directories known at once, the root included, each holding a
	 * descriptor: size it to RLIMIT_NOFILE less max_handles and a reserve
	 * (0: 1 << 20). Beyond it LOOKUP and READDIRPLUS answer -ENFILE and
	 * log (LOG_ERR, at most once a minute) to raise LimitNOFILE. Other
	 * nodes hold no descriptor: at most FV_EXPORT_MAX_NODES of them. */
	size_t max_dirs;
	/* Answer OPEN_INLINE -ENOSYS, as a server of before it did: for tests
	 * of a new client against an old server. */
	bool no_open_inline;
	struct fv_export_logger log;
};

/* Known nodes of every kind at once (memory only); -ENFILE beyond. */
#define FV_EXPORT_MAX_NODES (1u << 24)

/* Open the export root. Returns 0, or -ENOENT (missing), -ENOTDIR, -EACCES,
 * -ENOMEM with a message naming the directory in e. */
int fv_export_open(const struct fv_export_opts *o, struct fv_export **out, struct fv_err *e);
/* Close every descriptor and free x. No call may be running on x. */
void fv_export_close(struct fv_export *x);

/* Known nodes (the root included), descriptors held by directory nodes
 * (known ones, and forgotten ones a known node still names as its parent)
 * and open handles, for tests and logs. */
size_t fv_export_nodes(struct fv_export *x);
size_t fv_export_dir_fds(struct fv_export *x);
size_t fv_export_handles(struct fv_export *x);
/* Requests fv_export_request has seen, by op: counts[op] for op numbers
 * below FV_EXPORT_OPS, counts[0] for those that did not decode a head or
 * had a higher op. For logs and tests; relaxed counters, any thread. */
#define FV_EXPORT_OPS 48
void fv_export_op_counts(struct fv_export *x, uint64_t counts[FV_EXPORT_OPS]);

/* ---- operations (docs/protocol.md, "Operations") ---------------------------
 * Each returns 0 or a negative errno, the status the protocol answers.
 * Common errors: -ESTALE (node not known; its file was removed, or, for a
 * node that is not a directory, renamed or replaced: such a node is found
 * again by the name it was last looked up by), -EINVAL (bad name), -ENOTDIR,
 * -EBADF (handle not known), and what the file system says (-ENOENT,
 * -EACCES, ...). */

/* The entry name[0..len) of directory parent; counts one lookup of the node.
 * A node that is not a directory is found again later by this name in this
 * parent (the latest lookup's, for a file with several links). */
int fv_export_lookup(struct fv_export *x, uint64_t parent, const char *name, size_t len,
		     struct fv_fs_attr *a);
int fv_export_getattr(struct fv_export *x, uint64_t node, struct fv_fs_attr *a);
/* Append to out the READDIRPLUS result fields (u8 eof, u32 count, entries)
 * for the entries of dir from cookie on, at most max_bytes of entries and
 * FV_FS_MAX_DIRENTS of them; each entry counts one lookup. Cookies are the
 * directory's getdents64 offsets (d_off), 0 the start. -EINVAL when not even
 * one entry fits max_bytes. */
int fv_export_readdirplus(struct fv_export *x, uint64_t dir, uint64_t cookie, uint32_t max_bytes,
			  struct fv_buf *out);
/* Open a regular file for reading, a handle of client. Write flags are
 * -EROFS; a directory -EISDIR; any other non-regular file -ENXIO; -EMFILE
 * beyond max_handles or the client's client_handles. */
int fv_export_open_node(struct fv_export *x, uint32_t client, uint64_t node, uint32_t flags, uint64_t *handle,
			struct fv_fs_attr *a);
/* Read up to size bytes at offset into buf; *got is short only at the end
 * of the file. */
int fv_export_read(struct fv_export *x, uint64_t handle, uint64_t offset, uint32_t size, void *buf,
		   uint32_t *got);
/* Open a regular file like fv_export_open_node and read its first bytes,
 * up to max_inline (≤ FV_FS_MAX_INLINE), into buf: *len of them, 0 when the
 * file changed while they were read (size, mtime or ctime; tried three
 * times). When they are the whole file (*len equals a->size, and
 * max_inline > 0) no handle is kept: *handle is 0. Else *handle is a
 * handle, as of fv_export_open_node. */
int fv_export_open_inline(struct fv_export *x, uint32_t client, uint64_t node, uint32_t flags,
			  uint32_t max_inline, uint64_t *handle, struct fv_fs_attr *a, void *buf,
			  uint32_t *len);
int fv_export_release(struct fv_export *x, uint64_t handle);
/* Forget every node but the root and release every handle, as a restart of
 * the server would (clients find their nodes again by name and reopen their
 * files: docs/protocol.md, "Nodes"). For the nodes and handles of clients
 * that went away without FORGET or RELEASE (a crash). Calls running on a
 * node or handle finish first: it is freed by its last reference. *nodes
 * and *handles (may be NULL) get how many were forgotten. Returns 0 or
 * -ENOMEM (nothing done). */
int fv_export_forget_all(struct fv_export *x, size_t *nodes, size_t *handles);
/* Give back nlookup lookups of node; at none left the node is unknown (the
 * root stays; a directory's descriptor stays open while a known node is
 * named in it). Unknown nodes are ignored: returns 0 always. */
int fv_export_forget(struct fv_export *x, uint64_t node, uint64_t nlookup);
/* The target of link node into buf (cap bytes), its length in *len. -EINVAL
 * when node is not a link. */
int fv_export_readlink(struct fv_export *x, uint64_t node, char *buf, size_t cap, size_t *len);

struct fv_export_statfs {
	uint64_t blocks, bfree, bavail, files, ffree;
	uint32_t bsize, namemax, frsize;
};
int fv_export_statfs(struct fv_export *x, uint64_t node, struct fv_export_statfs *st);
/* Extended attribute name of node: with size 0, *len is the value's size;
 * else the value goes to buf (-ERANGE when it is longer than size). Links
 * have none readable (-EOPNOTSUPP). */
int fv_export_getxattr(struct fv_export *x, uint64_t node, const char *name, void *buf, uint32_t size,
		       uint32_t *len);
/* The NUL-separated names of node's extended attributes, like getxattr. */
int fv_export_listxattr(struct fv_export *x, uint64_t node, void *buf, uint32_t size, uint32_t *len);

/* ---- whole requests ------------------------------------------------------ */

/* The bulk of a reply: what the client offered and where the bytes go. */
struct fv_export_bulk {
	uint32_t cap;                     /* capacity the request offered */
	void *(*get)(void *ud, size_t n); /* a buffer of n ≤ cap bytes, or NULL */
	void *ud;
	uint32_t len; /* out: bytes of the buffer to send */
};

/* Largest xattr value or list a reply carries (the transport caps a reply's
 * control message at 65,536 bytes; status and size take 8). */
#define FV_EXPORT_MAX_XATTR_REPLY (65536u - 8u)

/* Decode req[0..len) of client (see client_handles), run it and append the whole reply control message
 * (status, then the result fields) to reply, which the caller clears.
 * Returns the status answered: -EPROTO for a malformed request (the caller
 * logs it with the peer's name), -ENOSYS for an unknown op, -EROFS for a
 * write-type op. -ENOMEM when reply could not grow (then reply holds
 * nothing usable: answer a bare status). */
int fv_export_request(struct fv_export *x, uint32_t client, const void *req, size_t len, struct fv_buf *reply,
		      struct fv_export_bulk *bulk);

#endif
