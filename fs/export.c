/* export: docs/protocol.md, server side. Why it is built this way:
 *
 * - Directories hold an O_PATH descriptor: they are the bases of every
 *   lookup, and a rename anywhere in the tree cannot make the server look
 *   beneath another directory than the one it handed out. Nothing is
 *   resolved from a string except one component beneath one directory
 *   descriptor.
 * - Every other node holds its parent directory node and its name, and its
 *   (dev, ino): each use resolves the name again beneath the parent's
 *   descriptor (fstatat with AT_SYMLINK_NOFOLLOW, or openat2 with the
 *   RESOLVE_ flags of open_beneath) and checks dev and ino, so a file
 *   renamed or replaced since is -ESTALE, never another file. A descriptor
 *   per file would not do: an export of 20,000 files would need 20,000
 *   descriptors, beyond many hard limits, while directories are few.
 * - A node is used outside the lock: node_get takes a reference (refs) under
 *   the lock and the file system call runs without it. A node also holds a
 *   reference on its parent. FORGET takes the node out of the table at once,
 *   but it is freed (its descriptor closed, its parent's reference given
 *   back) by the last reference, so that a descriptor number is never reused
 *   under a running call and a forgotten directory stays open while a known
 *   file in it needs it. Open handles work the same way.
 * - Regular files are opened for reading through /proc/self/fd/N of an
 *   O_PATH descriptor whose dev and ino were checked (the kernel reopens
 *   that very inode). The server never opens anything else for reading but
 *   directories (as "." beneath their own descriptor), so a FIFO or a device
 *   in the export never blocks or wakes anything.
 */
#include "export.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "../common/fsutil.h"

#define DEFAULT_MAX_DIRS (1u << 20)
/* A READ of at least DIRECT_MIN bytes, aligned to DIRECT_ALIGN (offset,
 * size and buffer: the strictest logical block size O_DIRECT asks for),
 * of a range not all in the page cache is read with O_DIRECT (cold()). */
#define DIRECT_MIN (256u << 10)
#define DIRECT_ALIGN 4096u
#ifndef __NR_cachestat
#define __NR_cachestat 451 /* Linux 6.5; the same number on every architecture */
#endif
/* seconds between two log lines about the directory limit */
#define ENFILE_LOG_SECS 60
/* attr, next_cookie and the name's length in a READDIRPLUS entry */
#define DIRENT_FIXED (FV_FS_ATTR_SIZE + 8 + 4)

struct node {
	uint64_t id;
	dev_t dev;
	ino_t ino;
	mode_t type; /* S_IFMT bits */
	int fd;      /* directories: O_PATH | O_NOFOLLOW; others -1 */
	/* others: the directory and name of the latest lookup (mu) */
	struct node *parent;
	char *name;
	uint64_t nlookup;
	unsigned refs; /* calls using the node right now, and nodes naming it parent */
	bool gone;     /* out of the table: freed by the last node_put */
	struct node *next;
};

struct handle {
	int fd; /* -1: slot free */
	uint32_t gen;
	uint32_t client; /* who opened it (counted in client_n) */
	unsigned refs;
	bool closing; /* released while a READ still uses fd */
	uint32_t next_free;
};

struct fv_export {
	pthread_mutex_t mu;
	struct node **tab; /* hash of node id, chained */
	size_t nbuckets, nnodes;
	size_t ndirs, max_dirs; /* directory descriptors open, the limit */
	struct node *root;
	struct fv_export_logger log;
	time_t enfile_logged;
	struct handle *h;
	size_t max_handles, nhandles;
	size_t client_handles;                    /* open handles one client may hold */
	uint32_t *client_n;                       /* open handles by client, grown on demand */
	size_t nclients;                          /* entries of client_n */
	uint32_t free_head;                       /* slot + 1, 0: none free */
	atomic_uint_least64_t ops[FV_EXPORT_OPS]; /* requests by op (0: malformed or unknown) */
	bool no_open_inline;
};

/* ---- helpers ------------------------------------------------------------ */

/* One component name beneath directory dirfd, nothing followed. */
static int open_beneath(int dirfd, const char *name, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
	};
	for (int tries = 0;; tries++) {
		long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof how);
		if (fd >= 0)
			return (int)fd;
		/* EAGAIN: a concurrent rename raced the resolution; try again */
		if (errno != EAGAIN || tries == 3)
			return -errno;
	}
}

static int stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static uint64_t hash_id(uint64_t id)
{
	return id * 0x9e3779b97f4a7c15ull;
}

/* docs/protocol.md, "Nodes"; an object that is not the root never gets the
 * root's id 1 (nor 0, which FUSE refuses), even if its inode number is 1. */
static uint64_t id_of(const struct fv_export *x, const struct stat *st)
{
	if (st->st_dev == x->root->dev && st->st_ino == x->root->ino)
		return FV_FS_ROOT;
	uint64_t id = fv_fs_node_of(st, x->root->dev);
	if (id == FV_FS_ROOT || id == 0)
		id ^= 1ull << 63;
	return id;
}

/* ---- node table --------------------------------------------------------- */

static struct node **slot_of(struct fv_export *x, uint64_t id) /* mu held */
{
	struct node **pp = &x->tab[hash_id(id) & (x->nbuckets - 1)];
	while (*pp && (*pp)->id != id)
		pp = &(*pp)->next;
	return pp;
}

static void grow_table(struct fv_export *x) /* mu held; on failure the chains just get longer */
{
	size_t nb = x->nbuckets * 2;
	struct node **t = calloc(nb, sizeof(struct node *));
	if (!t)
		return;
	for (size_t i = 0; i < x->nbuckets; i++) {
		for (struct node *n = x->tab[i], *next; n; n = next) {
			next = n->next;
			struct node **b = &t[hash_id(n->id) & (nb - 1)];
			n->next = *b;
			*b = n;
		}
	}
	free(x->tab);
	x->tab = t;
	x->nbuckets = nb;
}

static struct node *node_get(struct fv_export *x, uint64_t id)
{
	pthread_mutex_lock(&x->mu);
	struct node *n = *slot_of(x, id);
	if (n)
		n->refs++;
	pthread_mutex_unlock(&x->mu);
	return n;
}

static void node_free(struct node *n)
{
	if (n->fd >= 0)
		close(n->fd);
	free(n->name);
	free(n);
}

/* Give back a reference; the last one of a node out of the table frees it,
 * and so gives back the reference it held on its parent. */
static void node_put(struct fv_export *x, struct node *n)
{
	while (n) {
		pthread_mutex_lock(&x->mu);
		/* The analyzer cannot see that a node holds a reference on its
		 * parent, so that a parent is never freed before its child. */
		bool last = --n->refs == 0 && n->gone; // NOLINT(clang-analyzer-unix.Malloc)
		if (last && n->fd >= 0)
			x->ndirs--;
		pthread_mutex_unlock(&x->mu);
		if (!last)
			return;
		struct node *parent = n->parent;
		node_free(n);
		n = parent;
	}
}

/* The parent of n (not a directory), with a reference, and n's name copied
 * into name: a later lookup by another name may change both. */
static struct node *node_where(struct fv_export *x, struct node *n, char name[FV_FS_NAME_MAX + 1])
{
	pthread_mutex_lock(&x->mu);
	struct node *p = n->parent;
	p->refs++;
	snprintf(name, FV_FS_NAME_MAX + 1, "%s", n->name);
	pthread_mutex_unlock(&x->mu);
	return p;
}

static bool same_file(const struct node *n, const struct stat *st)
{
	return st->st_dev == n->dev && st->st_ino == n->ino && st->st_nlink > 0;
}

/* The node's current attributes; -ESTALE once its file is removed, or (not
 * a directory) its name no longer names it: the client then looks the name
 * up again and finds what replaced it. One system call either way. */
static int node_stat(struct fv_export *x, struct node *n, struct stat *st)
{
	int rc;
	if (n->fd >= 0) {
		rc = stat_fd(n->fd, st);
	} else {
		char nm[FV_FS_NAME_MAX + 1];
		struct node *p = node_where(x, n, nm);
		rc = fstatat(p->fd, nm, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
		node_put(x, p);
		if (rc == -ENOENT)
			rc = -ESTALE;
	}
	if (rc == 0 && !same_file(n, st))
		rc = -ESTALE;
	return rc;
}

/* An O_PATH descriptor of node n into *fd: a directory's own (borrowed,
 * *owned false), else its name opened again beneath its parent and checked
 * (the caller closes it). -ESTALE as for node_stat. */
static int node_fd(struct fv_export *x, struct node *n, int *fd, bool *owned)
{
	*owned = false;
	if (n->fd >= 0) {
		*fd = n->fd;
		return 0;
	}
	char nm[FV_FS_NAME_MAX + 1];
	struct stat st;
	struct node *p = node_where(x, n, nm);
	int f = open_beneath(p->fd, nm, O_PATH | O_NOFOLLOW);
	node_put(x, p);
	if (f < 0)
		return f == -ENOENT ? -ESTALE : f;
	int rc = stat_fd(f, &st);
	if (rc == 0 && !same_file(n, &st))
		rc = -ESTALE;
	if (rc < 0) {
		close(f);
		return rc;
	}
	*fd = f;
	*owned = true;
	return 0;
}

static void log_enfile(struct fv_export *x, size_t ndirs) /* mu not held */
{
	char msg[256];
	snprintf(msg, sizeof msg,
		 "%zu directories known, as many as the descriptor limit allows: lookups answer ENFILE; "
		 "raise the hard RLIMIT_NOFILE of fabvault-exportd (LimitNOFILE= in its unit)",
		 ndirs);
	x->log.fn(x->log.ud, LOG_ERR, msg);
}

/* Count one lookup of the object with attributes st, named name in
 * directory node parent; fd is its O_PATH descriptor when it is a directory
 * (this call takes it over), else -1. Its id into *id. */
static int node_register(struct fv_export *x, struct node *parent, const char *name, int fd,
			 const struct stat *st, uint64_t *id)
{
	uint64_t nid = id_of(x, st);
	bool dir = S_ISDIR(st->st_mode);
	struct node *fresh = calloc(1, sizeof *fresh);
	char *nm = dir ? NULL : strdup(name);
	struct node *put = NULL, *drop = NULL;
	int rc = 0, to_close = fd;
	bool say = false;
	size_t ndirs = 0;
	uint64_t carry = 0;
	pthread_mutex_lock(&x->mu);
	struct node **pp = slot_of(x, nid), *n = *pp;
	if (n && n != x->root && n->dev == st->st_dev && n->ino == st->st_ino &&
	    n->type != (st->st_mode & S_IFMT)) {
		/* The file was removed and its inode number reused by another
		 * kind of object: the id names the new one now, with the
		 * lookups the client still counts. */
		*pp = n->next;
		x->nnodes--;
		n->gone = true;
		n->refs++;
		drop = n;
		carry = n->nlookup;
		n = NULL;
	}
	if (n) {
		if (n->dev != st->st_dev || n->ino != st->st_ino) {
			rc = -EIO; /* two objects mapped to one id (st_dev beyond 24 bits) */
		} else if (dir) {
			n->nlookup++;
			/* Keep the fresher descriptor: the old one may name a
			 * removed directory whose inode number was reused. */
			if (n->refs == 0 && n != x->root) {
				to_close = n->fd;
				n->fd = fd;
			}
		} else if (!nm) {
			rc = -ENOMEM;
		} else {
			n->nlookup++;
			/* the latest name wins: the one the client uses now */
			if (n->parent != parent || strcmp(n->name, name) != 0) {
				put = n->parent;
				parent->refs++;
				n->parent = parent;
				free(n->name);
				n->name = nm;
				nm = NULL;
			}
		}
	} else if (!fresh || (!dir && !nm)) {
		rc = -ENOMEM;
	} else if (x->nnodes >= FV_EXPORT_MAX_NODES) {
		rc = -ENFILE;
	} else if (dir && x->ndirs >= x->max_dirs) {
		rc = -ENFILE;
		ndirs = x->ndirs;
		time_t now = time(NULL);
		if (x->log.fn && (x->enfile_logged == 0 || now - x->enfile_logged >= ENFILE_LOG_SECS)) {
			x->enfile_logged = now;
			say = true;
		}
	} else {
		*fresh = (struct node){.id = nid,
				       .dev = st->st_dev,
				       .ino = st->st_ino,
				       .type = st->st_mode & S_IFMT,
				       .fd = fd,
				       .nlookup = carry + 1,
				       .next = *pp};
		if (dir) {
			x->ndirs++;
		} else {
			fresh->parent = parent;
			parent->refs++;
			fresh->name = nm;
			nm = NULL;
		}
		*pp = fresh;
		fresh = NULL;
		to_close = -1;
		if (++x->nnodes > x->nbuckets)
			grow_table(x);
	}
	pthread_mutex_unlock(&x->mu);
	free(fresh);
	free(nm);
	if (to_close >= 0)
		close(to_close);
	node_put(x, put);
	node_put(x, drop);
	if (say)
		log_enfile(x, ndirs);
	if (rc == 0)
		*id = nid;
	return rc;
}

/* ---- handles ------------------------------------------------------------ */

static uint64_t handle_of(const struct fv_export *x, uint32_t slot)
{
	return (uint64_t)x->h[slot].gen << 32 | (slot + 1);
}

/* The slot of handle hv in use, with a reference; NULL when unknown. */
static struct handle *handle_get(struct fv_export *x, uint64_t hv)
{
	uint64_t slot = (hv & 0xffffffffu) - 1;
	struct handle *h = NULL;
	pthread_mutex_lock(&x->mu);
	if (slot < x->max_handles && x->h[slot].fd >= 0 && !x->h[slot].closing &&
	    x->h[slot].gen == (uint32_t)(hv >> 32)) {
		h = &x->h[slot];
		h->refs++;
	}
	pthread_mutex_unlock(&x->mu);
	return h;
}

static void handle_free(struct fv_export *x, struct handle *h) /* mu held */
{
	uint32_t slot = (uint32_t)(h - x->h);
	h->fd = -1;
	h->closing = false;
	h->gen++;
	h->next_free = x->free_head;
	x->free_head = slot + 1;
	x->nhandles--;
	x->client_n[h->client]--;
}

static void handle_put(struct fv_export *x, struct handle *h)
{
	int fd = -1;
	pthread_mutex_lock(&x->mu);
	if (--h->refs == 0 && h->closing) {
		fd = h->fd;
		handle_free(x, h);
	}
	pthread_mutex_unlock(&x->mu);
	if (fd >= 0)
		close(fd);
}

/* ---- open / close ------------------------------------------------------- */

int fv_export_open(const struct fv_export_opts *o, struct fv_export **out, struct fv_err *e)
{
	int rc;
	struct stat st;
	struct fv_export *x = calloc(1, sizeof *x);
	if (!x)
		return fv_err_set(e, -ENOMEM, "out of memory");
	pthread_mutex_init(&x->mu, NULL);
	x->max_handles = o->max_handles ? o->max_handles : FV_FS_MAX_HANDLES;
	x->client_handles = o->client_handles ? o->client_handles : x->max_handles;
	x->max_dirs = o->max_dirs ? o->max_dirs : DEFAULT_MAX_DIRS;
	x->log = o->log;
	x->no_open_inline = o->no_open_inline;
	x->nbuckets = 1024;
	x->tab = calloc(x->nbuckets, sizeof(struct node *));
	x->h = calloc(x->max_handles, sizeof *x->h);
	x->root = calloc(1, sizeof *x->root);
	if (!x->tab || !x->h || !x->root || x->max_handles > UINT32_MAX - 1) {
		rc = fv_err_set(e, -ENOMEM, "out of memory");
		goto out_free;
	}
	for (size_t i = 0; i < x->max_handles; i++) {
		x->h[i].fd = -1;
		x->h[i].next_free = i + 1 < x->max_handles ? (uint32_t)(i + 2) : 0;
	}
	x->free_head = 1;
	/* The root path is the administrator's: symbolic links in it are fine. */
	int fd = open(o->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ENOTDIR)
			fv_err_set(e, rc, "export %s is not a directory", o->root);
		else
			fv_err_sys(e, rc, "cannot open export %s", o->root);
		goto out_free;
	}
	/* An O_PATH open needs search permission on the path only: check that
	 * the directory can be listed, now rather than at the first READDIR. */
	int dfd = open_beneath(fd, ".", O_RDONLY | O_DIRECTORY);
	if (dfd < 0 || fstat(fd, &st) < 0) {
		rc = dfd < 0 ? dfd : -errno;
		fv_err_sys(e, rc, "cannot read export %s", o->root);
		close(fd);
		if (dfd >= 0)
			close(dfd);
		goto out_free;
	}
	close(dfd);
	*x->root = (struct node){.id = FV_FS_ROOT,
				 .dev = st.st_dev,
				 .ino = st.st_ino,
				 .type = S_IFDIR,
				 .fd = fd,
				 .nlookup = 1};
	*slot_of(x, FV_FS_ROOT) = x->root;
	x->nnodes = 1;
	x->ndirs = 1;
	*out = x;
	return 0;

out_free:
	free(x->root);
	free(x->h);
	free(x->tab);
	pthread_mutex_destroy(&x->mu);
	free(x);
	return rc;
}

void fv_export_close(struct fv_export *x)
{
	if (!x)
		return;
	/* Every node out of the table, then each reference given back: a
	 * directory goes with the last node named in it, be it a known one or
	 * one forgotten already. */
	struct node *all = NULL;
	for (size_t i = 0; i < x->nbuckets; i++) {
		for (struct node *n = x->tab[i], *next; n; n = next) {
			next = n->next;
			n->gone = true;
			n->refs++;
			n->next = all;
			all = n;
		}
	}
	for (struct node *n = all, *next; n; n = next) {
		next = n->next;
		node_put(x, n);
	}
	for (size_t i = 0; i < x->max_handles; i++)
		if (x->h[i].fd >= 0)
			close(x->h[i].fd);
	free(x->h);
	free(x->client_n);
	free(x->tab);
	pthread_mutex_destroy(&x->mu);
	free(x);
}

size_t fv_export_nodes(struct fv_export *x)
{
	pthread_mutex_lock(&x->mu);
	size_t n = x->nnodes;
	pthread_mutex_unlock(&x->mu);
	return n;
}

size_t fv_export_dir_fds(struct fv_export *x)
{
	pthread_mutex_lock(&x->mu);
	size_t n = x->ndirs;
	pthread_mutex_unlock(&x->mu);
	return n;
}

void fv_export_op_counts(struct fv_export *x, uint64_t counts[FV_EXPORT_OPS])
{
	for (size_t i = 0; i < FV_EXPORT_OPS; i++)
		counts[i] = atomic_load_explicit(&x->ops[i], memory_order_relaxed);
}

size_t fv_export_handles(struct fv_export *x)
{
	pthread_mutex_lock(&x->mu);
	size_t n = x->nhandles;
	pthread_mutex_unlock(&x->mu);
	return n;
}

/* ---- operations --------------------------------------------------------- */

/* Look name (NUL-terminated, one checked component) up beneath dirfd, a
 * descriptor of directory node dir, and register it. A file costs one
 * fstatat; only a directory is opened (and its attributes then are those
 * of what was opened). */
static int lookup_at(struct fv_export *x, struct node *dir, int dirfd, const char *name, struct fv_fs_attr *a)
{
	struct stat st;
	uint64_t id;
	int fd = -1;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode)) {
		if ((fd = open_beneath(dirfd, name, O_PATH | O_NOFOLLOW)) < 0)
			return fd;
		int rc = stat_fd(fd, &st);
		if (rc < 0 || !S_ISDIR(st.st_mode)) {
			/* replaced since the fstatat: register what is there now */
			close(fd);
			fd = -1;
			if (rc < 0)
				return rc;
		}
	}
	int rc = node_register(x, dir, name, fd, &st, &id);
	if (rc == 0)
		fv_fs_attr_from_stat(a, &st, id);
	return rc;
}

int fv_export_lookup(struct fv_export *x, uint64_t parent, const char *name, size_t len, struct fv_fs_attr *a)
{
	char nm[FV_FS_NAME_MAX + 1];
	if (!fv_fs_name_ok(name, len))
		return -EINVAL;
	memcpy(nm, name, len);
	nm[len] = 0;
	struct node *p = node_get(x, parent);
	if (!p)
		return -ESTALE;
	int rc = S_ISDIR(p->type) ? lookup_at(x, p, p->fd, nm, a) : -ENOTDIR;
	node_put(x, p);
	return rc;
}

int fv_export_getattr(struct fv_export *x, uint64_t node, struct fv_fs_attr *a)
{
	struct stat st;
	struct node *n = node_get(x, node);
	if (!n)
		return -ESTALE;
	int rc = node_stat(x, n, &st);
	if (rc == 0)
		fv_fs_attr_from_stat(a, &st, n->id);
	node_put(x, n);
	return rc;
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Append the entries of the open directory dfd (positioned at the cookie)
 * to out; *count and *eof as in the reply. */
static int list_dir(struct fv_export *x, struct node *dir, int dfd, uint32_t max_bytes, struct fv_buf *out,
		    uint32_t *count, bool *eof)
{
	_Alignas(8) char dbuf[32768];
	size_t used = 0;
	for (;;) {
		long nread = syscall(SYS_getdents64, dfd, dbuf, sizeof dbuf);
		if (nread < 0)
			return *count ? 0 : -errno; /* what we have; the next call fails */
		if (nread == 0) {
			*eof = true;
			return 0;
		}
		for (long pos = 0; pos < nread;) {
			const struct linux_dirent64 *d = (const void *)(dbuf + pos);
			pos += d->d_reclen;
			const char *nm = d->d_name;
			if (!strcmp(nm, ".") || !strcmp(nm, ".."))
				continue;
			size_t need = DIRENT_FIXED + strlen(nm);
			if (*count == FV_FS_MAX_DIRENTS || used + need > max_bytes)
				return *count ? 0 : -EINVAL;
			struct fv_fs_attr a;
			int rc = lookup_at(x, dir, dfd, nm, &a);
			if (rc == -ENOENT)
				continue; /* removed since getdents: not listed */
			if (rc < 0)
				return *count ? 0 : rc;
			fv_fs_attr_put(out, &a);
			fv_buf_u64(out, (uint64_t)d->d_off);
			fv_buf_str(out, nm, strlen(nm));
			used += need;
			++*count;
		}
	}
}

int fv_export_readdirplus(struct fv_export *x, uint64_t dir, uint64_t cookie, uint32_t max_bytes,
			  struct fv_buf *out)
{
	struct node *n = node_get(x, dir);
	if (!n)
		return -ESTALE;
	int rc = -ENOTDIR, dfd = -1;
	size_t head = out->len;
	uint32_t count = 0;
	bool eof = false;
	if (!S_ISDIR(n->type))
		goto out;
	/* A fresh descriptor per batch: the cookie is the whole position, and
	 * nothing is kept between calls. */
	if ((dfd = rc = open_beneath(n->fd, ".", O_RDONLY | O_DIRECTORY)) < 0)
		goto out;
	if (cookie > INT64_MAX || lseek(dfd, (off_t)cookie, SEEK_SET) < 0) {
		rc = -EINVAL;
		goto out;
	}
	fv_buf_u8(out, 0);
	fv_buf_u32(out, 0);
	rc = list_dir(x, n, dfd, max_bytes, out, &count, &eof);
	if (rc == 0 && !fv_buf_ok(out))
		rc = -ENOMEM;
	if (rc == 0) {
		out->data[head] = eof;
		fv_put_le32(out->data + head + 1, count);
	}
out:
	if (rc < 0 && fv_buf_ok(out))
		out->len = head;
	if (dfd >= 0)
		close(dfd);
	node_put(x, n);
	return rc;
}

/* Open regular file node for reading: a descriptor in *fd, checked to be
 * the node's file, and its stat in *st. */
static int open_file(struct fv_export *x, struct node *n, uint32_t flags, int *fdp, struct stat *st)
{
	int fd = -1, pfd = -1, rc;
	bool owned = false;
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND | O_CREAT)))
		return -EROFS;
	rc = S_ISDIR(n->type) ? -EISDIR : S_ISLNK(n->type) ? -ELOOP : !S_ISREG(n->type) ? -ENXIO : 0;
	if (rc < 0 || (rc = node_fd(x, n, &pfd, &owned)) < 0)
		goto out;
	/* O_NOATIME needs the file's owner or CAP_FOWNER: a backup read should
	 * leave atime alone where it may. */
	fd = fv_reopen(pfd, O_RDONLY | O_NOATIME);
	if (fd == -EPERM)
		fd = fv_reopen(pfd, O_RDONLY);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	if (fstat(fd, st) < 0) {
		rc = -errno;
		goto out;
	}
	if (st->st_dev != n->dev || st->st_ino != n->ino || st->st_nlink == 0 || !S_ISREG(st->st_mode)) {
		rc = -ESTALE;
		goto out;
	}
	*fdp = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	if (owned)
		close(pfd);
	return rc;
}

/* Room in client_n for client (mu held). */
static int clients_grow(struct fv_export *x, uint32_t client)
{
	if (client < x->nclients)
		return 0;
	size_t n = ((size_t)client + 16) & ~(size_t)15;
	uint32_t *v = realloc(x->client_n, n * sizeof *v);
	if (!v)
		return -ENOMEM;
	memset(v + x->nclients, 0, (n - x->nclients) * sizeof *v);
	x->client_n = v;
	x->nclients = n;
	return 0;
}

/* Make fd a handle of client (fd is the handle's from now on, or closed). */
static int handle_add(struct fv_export *x, uint32_t client, int fd, uint64_t *handle)
{
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	pthread_mutex_lock(&x->mu);
	int rc = clients_grow(x, client);
	if (rc == 0 && x->free_head && x->client_n[client] < x->client_handles) {
		uint32_t slot = x->free_head - 1;
		x->free_head = x->h[slot].next_free;
		x->h[slot].fd = fd;
		x->h[slot].refs = 0;
		x->h[slot].client = client;
		x->nhandles++;
		x->client_n[client]++;
		*handle = handle_of(x, slot);
		fd = -1;
	} else if (rc == 0) {
		rc = -EMFILE;
	}
	pthread_mutex_unlock(&x->mu);
	if (fd >= 0)
		close(fd);
	return rc;
}

int fv_export_open_node(struct fv_export *x, uint32_t client, uint64_t node, uint32_t flags, uint64_t *handle,
			struct fv_fs_attr *a)
{
	struct stat st;
	int fd = -1;
	struct node *n = node_get(x, node);
	if (!n)
		return -ESTALE;
	int rc = open_file(x, n, flags, &fd, &st);
	if (rc == 0 && (rc = handle_add(x, client, fd, handle)) == 0)
		fv_fs_attr_from_stat(a, &st, n->id);
	node_put(x, n);
	return rc;
}

static ssize_t pread_full(int fd, void *buf, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

static bool same_version(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

int fv_export_open_inline(struct fv_export *x, uint32_t client, uint64_t node, uint32_t flags,
			  uint32_t max_inline, uint64_t *handle, struct fv_fs_attr *a, void *buf,
			  uint32_t *len)
{
	struct stat st, st2;
	int fd = -1;
	*handle = 0;
	*len = 0;
	struct node *n = node_get(x, node);
	if (!n)
		return -ESTALE;
	int rc = open_file(x, n, flags, &fd, &st);
	if (rc < 0)
		goto out;
	/* The bytes go out only when the file did not change while they were
	 * read: same size, mtime and ctime before and after (docs/protocol.md).
	 * A file being written is tried again, then sent with no bytes. */
	for (int tries = 0; max_inline && tries < 3; tries++) {
		size_t want = (uint64_t)st.st_size < max_inline ? (size_t)st.st_size : max_inline;
		ssize_t got = pread_full(fd, buf, want);
		if (got < 0) {
			rc = (int)got;
			goto out;
		}
		if (fstat(fd, &st2) < 0) {
			rc = -errno;
			goto out;
		}
		bool same = same_version(&st, &st2) && (size_t)got == want;
		st = st2;
		if (same) {
			*len = (uint32_t)got;
			break;
		}
	}
	if ((uint64_t)*len == (uint64_t)st.st_size && (*len || max_inline)) {
		close(fd); /* all of it is in the reply: no handle */
		fd = -1;
	} else {
		rc = handle_add(x, client, fd, handle);
		fd = -1;
		if (rc < 0)
			*len = 0;
	}
	if (rc == 0)
		fv_fs_attr_from_stat(a, &st, n->id);
out:
	if (fd >= 0)
		close(fd);
	node_put(x, n);
	return rc;
}

/* struct cachestat_range and struct cachestat of <linux/mman.h> (Linux
 * 6.5), which older headers lack. */
struct cache_range {
	uint64_t off, len;
};
struct cache_stat {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* Whether [off, off + len) of fd should be read from the disk: some page
 * of it is not in the page cache, and none is dirty or under writeback (an
 * O_DIRECT read would first write those back: the writer's business, not a
 * reader's). A range only partly cached goes to the disk too: that is
 * what stops the page cache's own read-ahead, which a first small read
 * (the bytes of OPEN_INLINE, a read after them) starts and which every
 * buffered read of the pages it brought in would carry on, window after
 * window. False when the kernel cannot tell (cachestat: Linux 6.5). */
static bool cold(int fd, uint64_t off, uint64_t len)
{
	struct cache_range r = {.off = off, .len = len};
	struct cache_stat cs;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), pages = (len + page - 1) / page;
	return syscall(__NR_cachestat, fd, &r, &cs, 0) == 0 && cs.nr_cache < pages && cs.nr_dirty == 0 &&
	       cs.nr_writeback == 0;
}

/* Read a cold range straight from the disk into buf. A buffered read of bytes nobody has cached
 * costs the server more CPU than the disk time it waits for: the page cache's read-ahead
 * allocates, inserts and later reclaims every page, and pread copies each byte once more (a cold
 * tar of the bench's 1.5 GB of large files, 2 cores, both ends on one machine: exportd's CPU
 * time fell from 1.1-2.6 s to 0.7-0.8 s in integrity mode, about the same in encrypt mode; the
 * whole transfer is CPU-bound there). It also fills the memory node's page cache with a
 * backup's bytes, evicting what its own programs use. A range all in the page cache (a file just
 * written or read by someone else) is read from there as before, at memory speed. The O_DIRECT
 * descriptor is opened for each READ (an open of /proc/self/fd/N, microseconds against a READ of
 * DIRECT_MIN or more from the disk) so that a handle still costs one descriptor (the server's
 * descriptor budget, docs/fabvault-exportd.8.md). Returns the bytes read (fewer at the end of the
 * file), or -EAGAIN when this READ does not qualify or the file system refuses O_DIRECT: the
 * caller reads through the page cache. */
static ssize_t read_direct(int fd, void *buf, uint32_t size, uint64_t offset)
{
	if (size < DIRECT_MIN || offset % DIRECT_ALIGN || size % DIRECT_ALIGN ||
	    (uintptr_t)buf % DIRECT_ALIGN || !cold(fd, offset, size))
		return -EAGAIN;
	/* O_NOATIME as the handle's own open got it (open_file): no open
	 * refused with EPERM on every READ of a file that is not ours */
	int fl = fcntl(fd, F_GETFL);
	int dfd = fv_reopen(fd, O_RDONLY | O_DIRECT | (fl > 0 ? fl & O_NOATIME : 0));
	if (dfd < 0)
		return -EAGAIN; /* EINVAL: no O_DIRECT on this file system */
	ssize_t r;
	do
		r = pread(dfd, buf, size, (off_t)offset);
	while (r < 0 && errno == EINTR);
	close(dfd);
	return r < 0 ? -EAGAIN : r;
}

int fv_export_read(struct fv_export *x, uint64_t handle, uint64_t offset, uint32_t size, void *buf,
		   uint32_t *got)
{
	if (offset > INT64_MAX)
		return -EINVAL;
	struct handle *h = handle_get(x, handle);
	if (!h)
		return -EBADF;
	int rc = 0;
	/* after a short direct read (the end of the file, as it was) the
	 * loop's pread finds the end again, or the bytes of a file that grew */
	ssize_t d = read_direct(h->fd, buf, size, offset);
	uint32_t done = d > 0 ? (uint32_t)d : 0;
	while (done < size) {
		ssize_t r = pread(h->fd, (char *)buf + done, size - done, (off_t)(offset + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		if (r == 0)
			break;
		done += (uint32_t)r;
	}
	handle_put(x, h);
	*got = done;
	return rc;
}

int fv_export_release(struct fv_export *x, uint64_t handle)
{
	struct handle *h = handle_get(x, handle);
	if (!h)
		return -EBADF;
	pthread_mutex_lock(&x->mu);
	h->closing = true; /* no new user; the last one (maybe us) closes */
	pthread_mutex_unlock(&x->mu);
	handle_put(x, h);
	return 0;
}

int fv_export_forget(struct fv_export *x, uint64_t node, uint64_t nlookup)
{
	struct node *drop = NULL;
	pthread_mutex_lock(&x->mu);
	struct node **pp = slot_of(x, node), *n = *pp;
	if (n && n != x->root) {
		n->nlookup -= nlookup < n->nlookup ? nlookup : n->nlookup;
		if (n->nlookup == 0) {
			*pp = n->next;
			x->nnodes--;
			n->gone = true;
			n->refs++; /* given back below: the last reference frees it */
			drop = n;
		}
	}
	pthread_mutex_unlock(&x->mu);
	node_put(x, drop);
	return 0;
}

int fv_export_forget_all(struct fv_export *x, size_t *nodes, size_t *handles)
{
	/* descriptors of idle handles, closed once the lock is given back */
	int *fds = malloc(x->max_handles * sizeof *fds);
	if (!fds)
		return -ENOMEM;
	size_t nfds = 0, nn = 0, nh = 0;
	struct node *all = NULL;
	pthread_mutex_lock(&x->mu);
	for (size_t i = 0; i < x->nbuckets; i++) {
		for (struct node *n = x->tab[i], *next; n; n = next) {
			next = n->next;
			if (n == x->root)
				continue;
			n->gone = true;
			n->refs++; /* given back below: the last reference frees it */
			n->next = all;
			all = n;
			nn++;
		}
		x->tab[i] = NULL;
	}
	x->root->next = NULL;
	*slot_of(x, FV_FS_ROOT) = x->root;
	x->nnodes = 1;
	for (size_t i = 0; i < x->max_handles; i++) {
		struct handle *h = &x->h[i];
		if (h->fd < 0 || h->closing)
			continue;
		nh++;
		if (h->refs == 0) {
			fds[nfds++] = h->fd;
			handle_free(x, h);
		} else {
			h->closing = true; /* freed by the call using it */
		}
	}
	pthread_mutex_unlock(&x->mu);
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	free(fds);
	for (struct node *n = all, *next; n; n = next) {
		next = n->next;
		node_put(x, n);
	}
	if (nodes)
		*nodes = nn;
	if (handles)
		*handles = nh;
	return 0;
}

int fv_export_readlink(struct fv_export *x, uint64_t node, char *buf, size_t cap, size_t *len)
{
	struct node *n = node_get(x, node);
	if (!n)
		return -ESTALE;
	int rc = -EINVAL, fd = -1;
	bool owned = false;
	if (S_ISLNK(n->type) && (rc = node_fd(x, n, &fd, &owned)) == 0) {
		ssize_t r = readlinkat(fd, "", buf, cap);
		rc = r < 0 ? -errno : (size_t)r >= cap ? -ENAMETOOLONG : 0;
		if (rc == 0)
			*len = (size_t)r;
	}
	if (owned)
		close(fd);
	node_put(x, n);
	return rc;
}

int fv_export_statfs(struct fv_export *x, uint64_t node, struct fv_export_statfs *st)
{
	struct statfs sf;
	int fd = -1;
	bool owned = false;
	struct node *n = node_get(x, node);
	if (!n)
		return -ESTALE;
	int rc = node_fd(x, n, &fd, &owned);
	if (rc == 0 && fstatfs(fd, &sf) < 0)
		rc = -errno;
	if (owned)
		close(fd);
	node_put(x, n);
	if (rc < 0)
		return rc;
	*st = (struct fv_export_statfs){.blocks = sf.f_blocks,
					.bfree = sf.f_bfree,
					.bavail = sf.f_bavail,
					.files = sf.f_files,
					.ffree = sf.f_ffree,
					.bsize = (uint32_t)sf.f_bsize,
					.namemax = (uint32_t)sf.f_namelen,
					.frsize = (uint32_t)sf.f_frsize};
	return 0;
}

/* getxattr and listxattr need a path or a real descriptor: the O_PATH one
 * goes through /proc/self/fd (the inode itself, no name looked up). For a
 * link that would be the link's target on some kernels, so links have none. */
static int xattr_call(struct fv_export *x, uint64_t node, const char *name, void *buf, uint32_t size,
		      uint32_t *len)
{
	char path[64];
	int fd = -1;
	bool owned = false;
	struct node *n = node_get(x, node);
	if (!n)
		return -ESTALE;
	int rc = -EOPNOTSUPP;
	if (!S_ISLNK(n->type) && (rc = node_fd(x, n, &fd, &owned)) == 0) {
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		ssize_t r = name ? getxattr(path, name, size ? buf : NULL, size)
				 : listxattr(path, size ? buf : NULL, size);
		rc = r < 0 ? -errno : 0;
		if (rc == 0)
			*len = (uint32_t)r;
	}
	if (owned)
		close(fd);
	node_put(x, n);
	return rc;
}

int fv_export_getxattr(struct fv_export *x, uint64_t node, const char *name, void *buf, uint32_t size,
		       uint32_t *len)
{
	return xattr_call(x, node, name, buf, size, len);
}

int fv_export_listxattr(struct fv_export *x, uint64_t node, void *buf, uint32_t size, uint32_t *len)
{
	return xattr_call(x, node, NULL, buf, size, len);
}

/* ---- requests ----------------------------------------------------------- */

/* True when the request decoded exactly: no short field, nothing left. */
static bool decoded(const struct fv_rd *r)
{
	return fv_rd_ok(r) && fv_rd_left(r) == 0;
}

/* A str field without copying: *p points into the request. */
static const char *rd_name(struct fv_rd *r, uint32_t *len)
{
	*len = fv_rd_u32(r);
	return (const char *)fv_rd_get(r, *len);
}

static int req_lookup(struct fv_export *x, struct fv_rd *r, struct fv_buf *rep)
{
	struct fv_fs_attr a;
	uint32_t len;
	uint64_t parent = fv_rd_u64(r);
	const char *name = rd_name(r, &len);
	if (!decoded(r))
		return -EPROTO;
	int rc = fv_export_lookup(x, parent, name, len, &a);
	if (rc == 0)
		fv_fs_attr_put(rep, &a);
	return rc;
}

static int req_node_attr(struct fv_export *x, struct fv_rd *r, struct fv_buf *rep)
{
	struct fv_fs_attr a;
	uint64_t node = fv_rd_u64(r);
	if (!decoded(r))
		return -EPROTO;
	int rc = fv_export_getattr(x, node, &a);
	if (rc == 0)
		fv_fs_attr_put(rep, &a);
	return rc;
}

static int req_readdirplus(struct fv_export *x, struct fv_rd *r, struct fv_buf *rep)
{
	uint64_t dir = fv_rd_u64(r), cookie = fv_rd_u64(r);
	uint32_t max = fv_rd_u32(r);
	if (!decoded(r) || max > FV_FS_MAX_DIRBYTES)
		return -EPROTO;
	return fv_export_readdirplus(x, dir, cookie, max, rep);
}

static int req_open(struct fv_export *x, uint32_t client, struct fv_rd *r, struct fv_buf *rep)
{
	struct fv_fs_attr a;
	uint64_t handle = 0;
	uint64_t node = fv_rd_u64(r);
	uint32_t flags = fv_rd_u32(r);
	if (!decoded(r))
		return -EPROTO;
	int rc = fv_export_open_node(x, client, node, flags, &handle, &a);
	if (rc == 0) {
		fv_buf_u64(rep, handle);
		fv_fs_attr_put(rep, &a);
	}
	return rc;
}

static int req_open_inline(struct fv_export *x, uint32_t client, struct fv_rd *r, struct fv_buf *rep)
{
	struct fv_fs_open_inline o = {0};
	uint64_t node = fv_rd_u64(r);
	uint32_t flags = fv_rd_u32(r), max = fv_rd_u32(r);
	if (!decoded(r) || max > FV_FS_MAX_INLINE)
		return -EPROTO;
	/* the bytes are read straight into the reply, after its fixed part */
	size_t at = rep->len;
	uint8_t *p = fv_buf_grow(rep, FV_FS_OPEN_INLINE_FIXED - 4 + max);
	if (!fv_buf_ok(rep))
		return -ENOMEM;
	int rc = fv_export_open_inline(x, client, node, flags, max, &o.handle, &o.attr,
				       p + FV_FS_OPEN_INLINE_FIXED - 4, &o.len);
	rep->len = at;
	if (rc == 0) {
		o.data = NULL; /* already in place */
		fv_buf_u64(rep, o.handle);
		fv_fs_attr_put(rep, &o.attr);
		fv_buf_u32(rep, o.len);
		rep->len += o.len;
	}
	return rc;
}

static int req_read(struct fv_export *x, struct fv_rd *r, struct fv_buf *rep, struct fv_export_bulk *bulk)
{
	uint64_t handle = fv_rd_u64(r), off = fv_rd_u64(r);
	uint32_t size = fv_rd_u32(r), got = 0;
	void *buf = NULL;
	if (!decoded(r) || size > FV_FS_MAX_READ || size > bulk->cap)
		return -EPROTO;
	if (size && !(buf = bulk->get(bulk->ud, size)))
		return -ENOMEM;
	int rc = fv_export_read(x, handle, off, size, buf, &got);
	if (rc == 0) {
		fv_buf_u32(rep, got);
		bulk->len = got;
	}
	return rc;
}

static int req_release(struct fv_export *x, struct fv_rd *r)
{
	uint64_t handle = fv_rd_u64(r);
	return decoded(r) ? fv_export_release(x, handle) : -EPROTO;
}

static int req_forget(struct fv_export *x, struct fv_rd *r)
{
	uint32_t count = fv_rd_u32(r);
	/* check the whole request before forgetting anything */
	if (!fv_rd_ok(r) || count > FV_FS_MAX_FORGET || fv_rd_left(r) != (size_t)count * 16)
		return -EPROTO;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t node = fv_rd_u64(r);
		fv_export_forget(x, node, fv_rd_u64(r));
	}
	return 0;
}

static int req_readlink(struct fv_export *x, struct fv_rd *r, struct fv_buf *rep)
{
	char target[FV_FS_MAX_LINK];
	size_t len;
	uint64_t node = fv_rd_u64(r);
	if (!decoded(r))
		return -EPROTO;
	int rc = fv_export_readlink(x, node, target, sizeof target, &len);
	if (rc == 0)
		fv_buf_str(rep, target, len);
	return rc;
}

static int req_statfs(struct fv_export *x, struct fv_rd *r, struct fv_buf *rep)
{
	struct fv_export_statfs st;
	uint64_t node = fv_rd_u64(r);
	if (!decoded(r))
		return -EPROTO;
	int rc = fv_export_statfs(x, node, &st);
	if (rc == 0) {
		fv_buf_u64(rep, st.blocks);
		fv_buf_u64(rep, st.bfree);
		fv_buf_u64(rep, st.bavail);
		fv_buf_u64(rep, st.files);
		fv_buf_u64(rep, st.ffree);
		fv_buf_u32(rep, st.bsize);
		fv_buf_u32(rep, st.namemax);
		fv_buf_u32(rep, st.frsize);
	}
	return rc;
}

/* GETXATTR (name != NULL) and LISTXATTR: the value goes straight into the
 * reply. */
static int xattr_reply(struct fv_export *x, uint64_t node, const char *name, uint32_t size,
		       struct fv_buf *rep)
{
	uint32_t len = 0, cap = size < FV_EXPORT_MAX_XATTR_REPLY ? size : FV_EXPORT_MAX_XATTR_REPLY;
	size_t at = rep->len;
	fv_buf_u32(rep, 0);
	uint8_t *v = cap ? fv_buf_grow(rep, cap) : NULL;
	if (!fv_buf_ok(rep))
		return -ENOMEM;
	int rc = xattr_call(x, node, name, v, cap, &len);
	if (rc == -ERANGE && cap < size)
		rc = -E2BIG; /* fits the client's buffer, not a reply */
	rep->len = at;
	if (rc == 0) {
		fv_buf_u32(rep, len);
		rep->len += cap ? len : 0; /* the value is already in place */
	}
	return rc;
}

static int req_getxattr(struct fv_export *x, struct fv_rd *r, struct fv_buf *rep)
{
	char nm[FV_FS_NAME_MAX + 1];
	uint32_t len;
	uint64_t node = fv_rd_u64(r);
	const char *name = rd_name(r, &len);
	uint32_t size = fv_rd_u32(r);
	if (!decoded(r) || size > FV_FS_MAX_XATTR)
		return -EPROTO;
	if (len == 0 || memchr(name, 0, len))
		return -EINVAL;
	if (len > FV_FS_NAME_MAX)
		return -ERANGE; /* what getxattr(2) says of a name that long */
	memcpy(nm, name, len);
	nm[len] = 0;
	return xattr_reply(x, node, nm, size, rep);
}

static int req_listxattr(struct fv_export *x, struct fv_rd *r, struct fv_buf *rep)
{
	uint64_t node = fv_rd_u64(r);
	uint32_t size = fv_rd_u32(r);
	if (!decoded(r) || size > FV_FS_MAX_XATTR)
		return -EPROTO;
	return xattr_reply(x, node, NULL, size, rep);
}

int fv_export_request(struct fv_export *x, uint32_t client, const void *req, size_t len, struct fv_buf *reply,
		      struct fv_export_bulk *bulk)
{
	struct fv_rd r;
	uint8_t op;
	size_t at = reply->len;
	fv_rd_init(&r, req, len);
	bulk->len = 0;
	fv_buf_u32(reply, 0);
	int rc = fv_fs_req_head(&r, &op);
	atomic_fetch_add_explicit(&x->ops[rc == 0 && op < FV_EXPORT_OPS ? op : 0], 1, memory_order_relaxed);
	if (rc == 0 && op >= FV_FS_WRITE_OPS_FIRST && op <= FV_FS_WRITE_OPS_LAST)
		rc = -EROFS;
	else if (rc == 0) {
		switch (op) {
		case FV_FS_LOOKUP:
			rc = req_lookup(x, &r, reply);
			break;
		case FV_FS_GETATTR:
			rc = req_node_attr(x, &r, reply);
			break;
		case FV_FS_READDIRPLUS:
			rc = req_readdirplus(x, &r, reply);
			break;
		case FV_FS_OPEN:
			rc = req_open(x, client, &r, reply);
			break;
		case FV_FS_OPEN_INLINE:
			rc = x->no_open_inline ? -ENOSYS : req_open_inline(x, client, &r, reply);
			break;
		case FV_FS_READ:
			rc = req_read(x, &r, reply, bulk);
			break;
		case FV_FS_RELEASE:
			rc = req_release(x, &r);
			break;
		case FV_FS_FORGET:
			rc = req_forget(x, &r);
			break;
		case FV_FS_READLINK:
			rc = req_readlink(x, &r, reply);
			break;
		case FV_FS_STATFS:
			rc = req_statfs(x, &r, reply);
			break;
		case FV_FS_GETXATTR:
			rc = req_getxattr(x, &r, reply);
			break;
		case FV_FS_LISTXATTR:
			rc = req_listxattr(x, &r, reply);
			break;
		default:
			rc = -ENOSYS;
			break;
		}
	}
	if (!fv_buf_ok(reply))
		return -ENOMEM;
	if (rc < 0) {
		reply->len = at + 4;
		bulk->len = 0;
	}
	fv_put_le32(reply->data + at, (uint32_t)rc);
	return rc;
}
