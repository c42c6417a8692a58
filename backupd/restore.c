/* restore: write a snapshot back under a target directory (contract in
 * restore.h).
 *
 * The whole walk happens relative to directory fds that this code created or
 * opened with O_NOFOLLOW, one per level of the current path; nothing is ever
 * resolved through a path the repository chose except single validated
 * names. Existing entries in the target are never written through: a file is
 * always a new inode (O_CREAT|O_EXCL after unlinking what was there), so a
 * symlink or a foreign hardlink left in the target cannot redirect data.
 */
#include "restore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "../common/fsutil.h"
#include "dwrite.h"
#include "reader.h"
#include "workq.h"

/* Deeper trees come from a broken or hostile repository; each level costs an
 * fd and a decoded tree, so this also bounds what one restore can hold. */
#define RESTORE_MAX_DEPTH 4096
/* At most ~5 progress calls per second. */
#define PROGRESS_INTERVAL_NS 200000000LL

#define XATTR_CAPS "security.capability"

/* The data path (see restore.h, "Threads"): files open at once, chunks the
 * walker sorts at a time, chunks queued for the workers. */
#define RESTORE_SLOTS 256
#define RESTORE_BATCH 1024
#define RESTORE_QUEUE 256
/* Window buffers for files written with O_DIRECT (dwrite.h): at most this
 * many MiB, shared by all files; when none is free, writes go through the
 * page cache. */
#define RESTORE_WINDOWS 32

enum sel {
	SEL_NONE,     /* not restored */
	SEL_ANCESTOR, /* a directory on the way to an include: itself, not all below */
	SEL_ALL,      /* at or below an include (or no includes): everything */
};

struct include {
	char *path; /* normalised: no leading, trailing or doubled '/' */
	size_t len;
	bool matched;
};

struct hlink_slot {
	uint64_t key; /* 0 = empty (hlink 0 means "no group") */
	char *path;   /* relative to the target of the first member restored */
};

/* A chunk a worker could not restore, or one the walker found beyond the
 * file's size; warned about by the walker when the file is finished. */
enum { CF_BEYOND, CF_READ, CF_WRITE };
struct chunk_fail {
	uint64_t off;
	uint32_t len, index;
	int kind, code;
	char *msg; /* CF_READ: the reader's message */
};

/* A file being restored. The walker fills fd, path and node before the
 * file's first chunk is queued and owns them; workers only read fd and
 * path. refs counts the walker's own reference and each queued chunk: the
 * thread that drops it to zero hands the slot to the walker to finish. */
struct fslot {
	int fd;
	int dfd;              /* the same file with O_DIRECT, or -1 */
	struct fv_dwrite *dw; /* when dfd >= 0: the windows workers put chunks in */
	char *path;           /* relative to the target, for messages */
	struct fv_node node;  /* moved out of its tree */
	atomic_uint refs;
	atomic_uint_fast64_t written; /* bytes written into this file */
	atomic_bool stop;             /* a write failed: skip its other chunks */
	struct chunk_fail *fails;     /* under restore.mu */
	size_t nfails, capfails;
};

/* One chunk to read and write: walker -> workers. */
struct witem {
	const struct fv_index_entry *ie;
	const uint8_t *id; /* the chunk's full id, in the slot's node */
	uint64_t off;      /* in the file */
	uint32_t len;
	uint32_t slot;
};

struct restore;

struct rworker {
	struct restore *c;
	pthread_t tid;
	struct fv_reader *rd;
	uint8_t *abuf; /* every chunk read, FV_DWRITE_ALIGN-aligned */
	size_t acap;
};

struct restore {
	struct fv_repo *r;
	const struct fv_restore_opts *o;
	struct fv_restore_stats *st;
	struct fv_err *e;  /* the caller's: fatal errors only */
	struct fv_err tmp; /* messages of engine calls that become warnings */
	char wmsg[1280];
	char procpath[64 + FV_NAME_MAX];
	int rootfd;    /* the target; -1 in dry-run */
	bool counting; /* the totals pass for progress: no output at all */
	bool nested;   /* an include lies below another include */
	unsigned depth;

	char *path; /* relative path of the current entry, NUL-terminated */
	size_t plen, pcap;

	struct fv_buf chunk; /* one buffer for every chunk read and re-read */

	struct include *inc;
	size_t ninc;

	struct hlink_slot *hl;
	size_t hlcap, hln;

	struct fv_restore_progress prog;
	int64_t last_prog_ns;
	uint64_t damaged;  /* entries hit by damaged or missing blobs */
	const char *wpath; /* when set, the path warnings name (a file being finished) */

	/* the data path; everything but what is marked belongs to the walker */
	struct rworker *w;
	unsigned nthreads, started;
	struct fv_workq work; /* struct witem, walker -> workers */
	struct fv_workq done; /* uint32_t slot, workers -> walker; room for every slot */
	struct fslot *slots;
	struct fv_dwrite_pool *dpool; /* NULL: every file through the page cache */
	uint32_t *free_slots, nfree, busy;
	struct witem *batch;
	size_t nbatch;
	uint64_t prog_adjust;         /* prog.bytes = written + prog_adjust */
	atomic_uint_fast64_t written; /* shared: bytes written by workers */
	pthread_mutex_t mu;           /* guards fatal, fatal_err and slots' fails */
	int fatal;                    /* a worker's fatal error, first one */
	struct fv_err fatal_err;
};

/* A failure that makes continuing pointless: every later write would fail
 * the same way. */
static bool write_fatal(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT || rc == -EROFS || rc == -ENOMEM;
}

static bool repo_damage(int rc)
{
	return rc == -EUCLEAN || rc == -EBADMSG || rc == -ENOENT;
}

static void warn(struct restore *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void warn(struct restore *c, int code, const char *fmt, ...)
{
	if (c->counting || !c->o->warn)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->wmsg, sizeof c->wmsg, fmt, ap);
	va_end(ap);
	c->o->warn(c->o->ud, c->wpath ? c->wpath : c->path, code, c->wmsg);
}

/* An entry failed (and was warned about); damage: because of the repository. */
static void fail(struct restore *c, bool damage)
{
	if (c->counting)
		return;
	c->st->errors++;
	c->damaged += damage;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void progress(struct restore *c, bool force)
{
	if (!c->o->progress || c->counting)
		return;
	int64_t now = now_ns();
	if (!force && now - c->last_prog_ns < PROGRESS_INTERVAL_NS)
		return;
	c->last_prog_ns = now;
	c->prog.path = c->path;
	c->prog.bytes = atomic_load_explicit(&c->written, memory_order_relaxed) + c->prog_adjust;
	c->o->progress(c->o->ud, &c->prog);
}

static struct timespec ns_to_ts(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};
	if (ts.tv_nsec < 0) { /* times before 1970 round towards -inf */
		ts.tv_nsec += 1000000000L;
		ts.tv_sec--;
	}
	return ts;
}

static uint64_t data_bytes(const struct fv_node *n)
{
	uint64_t sum = 0;
	for (uint32_t i = 0; i < n->nchunks; i++)
		sum += n->chunks[i].len;
	return sum;
}

/* ---- the relative path ---- */

static int path_push(struct restore *c, const char *name, size_t len)
{
	size_t need = c->plen + 1 + len + 1;
	if (need > c->pcap) {
		size_t cap = c->pcap ? c->pcap : 256;
		while (cap < need)
			cap *= 2;
		char *p = realloc(c->path, cap);
		if (!p)
			return fv_err_set(c->e, -ENOMEM, "restore: out of memory for a path");
		c->path = p;
		c->pcap = cap;
	}
	if (c->plen)
		c->path[c->plen++] = '/';
	if (len)
		memcpy(c->path + c->plen, name, len);
	c->plen += len;
	c->path[c->plen] = 0;
	return 0;
}

static void path_pop(struct restore *c, size_t len)
{
	c->plen = len;
	c->path[len] = 0;
}

/* ---- includes ---- */

/* Normalise the includes; *all is set when one of them is the root. */
static int includes_init(struct restore *c, bool *all)
{
	const struct fv_restore_opts *o = c->o;
	*all = o->nincludes == 0;
	if (!o->nincludes)
		return 0;
	c->inc = calloc(o->nincludes, sizeof *c->inc);
	if (!c->inc)
		return fv_err_set(c->e, -ENOMEM, "restore: out of memory for includes");
	c->ninc = o->nincludes;
	for (size_t i = 0; i < o->nincludes; i++) {
		const char *s = o->includes[i];
		if (!s)
			return fv_err_set(c->e, -EINVAL, "restore: include %zu is NULL", i);
		char *d = malloc(strlen(s) + 1);
		if (!d)
			return fv_err_set(c->e, -ENOMEM, "restore: out of memory for includes");
		size_t n = 0;
		for (; *s; s++) {
			if (*s == '/' && (n == 0 || d[n - 1] == '/'))
				continue;
			d[n++] = *s;
		}
		if (n && d[n - 1] == '/')
			n--;
		d[n] = 0;
		c->inc[i].path = d;
		c->inc[i].len = n;
		if (!n) { /* "/" names the whole snapshot */
			c->inc[i].matched = true;
			*all = true;
		}
	}
	/* With one include inside another, entries below the outer one must
	 * still be compared, or the inner one would look unmatched. */
	for (size_t i = 0; i < c->ninc; i++)
		for (size_t j = 0; j < c->ninc; j++) {
			const struct include *a = &c->inc[i], *b = &c->inc[j];
			if (i != j && b->len > a->len && (a->len == 0 || b->path[a->len] == '/') &&
			    memcmp(a->path, b->path, a->len) == 0)
				c->nested = true;
		}
	return 0;
}

/* Look every include up in the snapshot's trees before anything is written:
 * a typo must not leave a half-created target behind. */
static int includes_resolve(struct restore *c, const uint8_t root[FV_ID_LEN])
{
	for (size_t i = 0; i < c->ninc; i++) {
		const struct include *in = &c->inc[i];
		uint8_t cur[FV_ID_LEN];
		bool found = true;
		memcpy(cur, root, FV_ID_LEN);
		for (size_t p = 0; p < in->len && found;) {
			size_t q = p;
			while (q < in->len && in->path[q] != '/')
				q++;
			char name[FV_NAME_MAX + 1];
			struct fv_tree t = {0};
			found = q - p <= FV_NAME_MAX;
			if (found) {
				memcpy(name, in->path + p, q - p);
				name[q - p] = 0;
				int rc = fv_repo_tree(c->r, cur, &t, c->e);
				if (rc < 0)
					return rc;
				const struct fv_node *n = fv_tree_find(&t, name);
				/* every component but the last must be a directory */
				found = n && (q == in->len || n->type == FV_FT_DIR);
				if (found && n->type == FV_FT_DIR)
					memcpy(cur, n->subtree, FV_ID_LEN);
			}
			fv_tree_free(&t);
			p = q + 1;
		}
		if (!found)
			return fv_err_set(c->e, -ENOENT,
					  "include %s: no such path in the snapshot (see fabvault ls)",
					  c->o->includes[i]);
	}
	return 0;
}

static void includes_free(struct restore *c)
{
	for (size_t i = 0; i < c->ninc; i++)
		free(c->inc[i].path);
	free(c->inc);
}

/* Selection of the current path; all: the parent is at or below an include. */
static enum sel select_path(struct restore *c, bool is_dir, bool all)
{
	if (all && !c->nested)
		return SEL_ALL;
	enum sel best = all ? SEL_ALL : SEL_NONE;
	size_t pl = c->plen;
	for (size_t i = 0; i < c->ninc; i++) {
		struct include *in = &c->inc[i];
		if (in->len == pl) {
			if (memcmp(in->path, c->path, pl) == 0) {
				in->matched = true;
				best = SEL_ALL;
			}
		} else if (in->len < pl) {
			if (c->path[in->len] == '/' && memcmp(in->path, c->path, in->len) == 0)
				best = SEL_ALL;
		} else if (is_dir && best == SEL_NONE && in->path[pl] == '/' &&
			   memcmp(in->path, c->path, pl) == 0) {
			best = SEL_ANCESTOR;
		}
	}
	return best;
}

/* ---- hardlink groups: hlink -> path of the first member restored ---- */

static size_t hl_hash(uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 17);
}

static const char *hl_find(const struct restore *c, uint64_t key)
{
	if (!c->hlcap)
		return NULL;
	for (size_t h = hl_hash(key) & (c->hlcap - 1);; h = (h + 1) & (c->hlcap - 1)) {
		if (c->hl[h].key == key)
			return c->hl[h].path;
		if (!c->hl[h].key)
			return NULL;
	}
}

static int hl_add(struct restore *c, uint64_t key, const char *path)
{
	if ((c->hln + 1) * 2 > c->hlcap) {
		size_t cap = c->hlcap ? c->hlcap * 2 : 64;
		struct hlink_slot *s = calloc(cap, sizeof *s);
		if (!s)
			return fv_err_set(c->e, -ENOMEM, "restore: out of memory for hardlinks");
		for (size_t i = 0; i < c->hlcap; i++) {
			if (!c->hl[i].key)
				continue;
			size_t h = hl_hash(c->hl[i].key) & (cap - 1);
			while (s[h].key)
				h = (h + 1) & (cap - 1);
			s[h] = c->hl[i];
		}
		free(c->hl);
		c->hl = s;
		c->hlcap = cap;
	}
	char *p = strdup(path);
	if (!p)
		return fv_err_set(c->e, -ENOMEM, "restore: out of memory for hardlinks");
	size_t h = hl_hash(key) & (c->hlcap - 1);
	while (c->hl[h].key)
		h = (h + 1) & (c->hlcap - 1);
	c->hl[h].key = key;
	c->hl[h].path = p;
	c->hln++;
	return 0;
}

static void hl_free(struct restore *c)
{
	for (size_t i = 0; i < c->hlcap; i++)
		free(c->hl[i].path);
	free(c->hl);
}

/* ---- metadata ---- */

/* Path of dirfd/name that does not follow name itself when passed to an
 * l*() call: /proc resolves the directory fd, the last component is ours. */
static const char *proc_path(struct restore *c, int dirfd, const char *name)
{
	snprintf(c->procpath, sizeof c->procpath, "/proc/self/fd/%d/%s", dirfd, name);
	return c->procpath;
}

static int set_xattr(struct restore *c, int fd, int dirfd, const struct fv_node *n, const struct fv_xattr *x)
{
	int rc = fd >= 0 ? fsetxattr(fd, x->name, x->value, x->value_len, 0)
			 : lsetxattr(proc_path(c, dirfd, n->name), x->name, x->value, x->value_len, 0);
	if (rc < 0) {
		rc = -errno;
		warn(c, rc, "cannot set extended attribute %s", x->name);
	}
	return rc;
}

/* Apply n's metadata: through fd when >= 0 (files, directories), else
 * through dirfd/name without following it. Returns false when any part
 * failed (each failure was warned). */
static bool set_meta(struct restore *c, int fd, int dirfd, const struct fv_node *n)
{
	bool ok = true;
	const struct fv_xattr *caps = NULL;

	for (uint32_t i = 0; i < n->nxattrs; i++) {
		/* chown drops security.capability (the kernel's killpriv), so
		 * file capabilities are set after the owner. */
		if (c->o->owner && strcmp(n->xattrs[i].name, XATTR_CAPS) == 0) {
			caps = &n->xattrs[i];
			continue;
		}
		ok &= set_xattr(c, fd, dirfd, n, &n->xattrs[i]) == 0;
	}
	if (c->o->owner) {
		int rc = fd >= 0 ? fchown(fd, n->uid, n->gid)
				 : fchownat(dirfd, n->name, n->uid, n->gid, AT_SYMLINK_NOFOLLOW);
		if (rc < 0) {
			rc = -errno;
			warn(c, rc, "cannot set owner %" PRIu32 ":%" PRIu32, n->uid, n->gid);
			ok = false;
		}
	}
	if (caps)
		ok &= set_xattr(c, fd, dirfd, n, caps) == 0;
	if (n->type != FV_FT_LNK) { /* Linux has no symlink modes */
		int rc = fd >= 0 ? fchmod(fd, n->mode & 07777)
				 : fchmodat(dirfd, n->name, n->mode & 07777, AT_SYMLINK_NOFOLLOW);
		if (rc < 0) {
			rc = -errno;
			warn(c, rc, "cannot set mode %04" PRIo32, n->mode & 07777);
			ok = false;
		}
	}
	struct timespec mt = ns_to_ts(n->mtime_ns);
	struct timespec ts[2] = {mt, mt}; /* atime := mtime */
	int rc = fd >= 0 ? futimens(fd, ts) : utimensat(dirfd, n->name, ts, AT_SYMLINK_NOFOLLOW);
	if (rc < 0) {
		rc = -errno;
		warn(c, rc, "cannot set modification time");
		ok = false;
	}
	return ok;
}

/* ---- creating entries ---- */

/* Create dirfd/name as n (or as a hardlink to link_from) and, when something
 * that is not a directory is in the way, remove it and try once more. Never
 * follows what was there. Returns 0 or -errno. */
static int make_node(struct restore *c, int dirfd, const struct fv_node *n, const char *link_from)
{
	if (!n->name || (n->type == FV_FT_LNK && !n->target))
		return -EINVAL; /* fv_tree_decode never yields these */
	for (int tries = 0;; tries++) {
		int rc;
		if (link_from)
			rc = linkat(c->rootfd, link_from, dirfd, n->name, 0);
		else if (n->type == FV_FT_LNK)
			rc = symlinkat(n->target, dirfd, n->name);
		else if (n->type == FV_FT_FIFO)
			rc = mkfifoat(dirfd, n->name, 0600);
		else
			rc = mknodat(dirfd, n->name, (n->type == FV_FT_CHR ? S_IFCHR : S_IFBLK) | 0600,
				     (dev_t)n->rdev);
		if (rc == 0)
			return 0;
		if (errno != EEXIST || tries)
			return -errno;
		/* unlinkat refuses directories (EISDIR), which we never replace. */
		if (unlinkat(dirfd, n->name, 0) < 0)
			return errno == EISDIR ? -EEXIST : -errno;
	}
}

static int create_file(int dirfd, const char *name, int access)
{
	if (!name)
		return -EINVAL;
	for (int tries = 0;; tries++) {
		int fd = openat(dirfd, name, access | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST || tries)
			return -errno;
		if (unlinkat(dirfd, name, 0) < 0)
			return errno == EISDIR ? -EEXIST : -errno;
	}
}

/* Open dirfd/name as a directory we may fill, creating it (mode 0700 until
 * its metadata is set) or replacing a non-directory in the way. */
static int open_dir(int dirfd, const char *name)
{
	if (!name)
		return -EINVAL;
	if (mkdirat(dirfd, name, 0700) < 0) {
		if (errno != EEXIST)
			return -errno;
		struct stat sb;
		if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		if (!S_ISDIR(sb.st_mode)) {
			/* A symlink here must not be followed: replace it. */
			if (unlinkat(dirfd, name, 0) < 0 || mkdirat(dirfd, name, 0700) < 0)
				return -errno;
		}
	}
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && faccessat(fd, ".", W_OK | X_OK, AT_EACCESS) < 0 && errno == EACCES) {
		/* left read-only by an earlier restore (we are not root): make it
		 * fillable; its stored mode is set again after its entries */
		struct stat sb;
		if (fstat(fd, &sb) == 0)
			fchmod(fd, (sb.st_mode & 07777) | 0700);
	}
	if (fd < 0 && errno == EACCES) {
		/* A directory left by an earlier restore with mode 0000 (we are
		 * not root): open the inode itself and make it ours to fill. */
		int pfd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (pfd >= 0) {
			char p[64];
			snprintf(p, sizeof p, "/proc/self/fd/%d", pfd);
			if (chmod(p, 0700) == 0)
				fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			close(pfd);
		}
		if (fd < 0)
			errno = EACCES;
	}
	return fd < 0 ? -errno : fd;
}

/* ---- the data path: workers ---- */

/* A worker hit an error that ends the restore: keep the first one and wake
 * every waiting thread. Called by workers; the walker picks it up when its
 * next push or pop is cancelled. */
static void worker_fatal(struct restore *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void worker_fatal(struct restore *c, int code, const char *fmt, ...)
{
	pthread_mutex_lock(&c->mu);
	if (!c->fatal) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->fatal_err.msg, sizeof c->fatal_err.msg, fmt, ap);
		va_end(ap);
		c->fatal = code;
		c->fatal_err.code = code;
	}
	pthread_mutex_unlock(&c->mu);
	fv_workq_shutdown(&c->work);
	fv_workq_shutdown(&c->done);
}

/* The walker's view of a cancelled queue: the worker's error, in c->e. */
static int worker_failed(struct restore *c)
{
	int rc;
	pthread_mutex_lock(&c->mu);
	rc = c->fatal;
	if (rc)
		fv_err_set(c->e, rc, "%s", c->fatal_err.msg);
	pthread_mutex_unlock(&c->mu);
	return rc ? rc : fv_err_set(c->e, -ECANCELED, "restore: the data path stopped");
}

/* Note a failed chunk of s; -ENOMEM when even that fails. Any thread. */
static int slot_fail(struct restore *c, struct fslot *s, int kind, int code, uint64_t off, uint32_t len,
		     uint32_t index, const char *msg)
{
	int rc = 0;
	char *m = msg ? strdup(msg) : NULL;
	pthread_mutex_lock(&c->mu);
	if (msg && !m) {
		rc = -ENOMEM;
	} else if (s->nfails == s->capfails) {
		size_t cap = s->capfails ? 2 * s->capfails : 4;
		struct chunk_fail *v = realloc(s->fails, cap * sizeof *v);
		if (v) {
			s->fails = v;
			s->capfails = cap;
		} else {
			rc = -ENOMEM;
		}
	}
	if (rc == 0)
		s->fails[s->nfails++] = (struct chunk_fail){
			.off = off, .len = len, .index = index, .kind = kind, .code = code, .msg = m};
	else
		free(m);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/* w->abuf with room for n bytes; -ENOMEM. It grows by whole MiB: at most
 * 9 MiB for the largest chunk of 8 MiB, and a few reallocations. */
static int abuf_reserve(struct rworker *w, size_t n)
{
	if (n <= w->acap)
		return 0;
	n = (n + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1);
	void *m;
	if (posix_memalign(&m, FV_DWRITE_ALIGN, n) != 0)
		return -ENOMEM;
	free(w->abuf);
	w->abuf = m;
	w->acap = n;
	return 0;
}

/* Read the chunk of it into w->abuf; for a file with a dwrite at the
 * offset's alignment (dwrite.h: whole windows go out without a copy).
 * *data is where it landed. */
static int read_chunk(struct rworker *w, const struct fslot *s, const struct witem *it, uint8_t **data,
		      struct fv_err *le)
{
	size_t pad = s->dw ? it->off & (FV_DWRITE_ALIGN - 1) : 0;
	if (it->ie->rawlen != it->len)
		return fv_err_set(le, -EUCLEAN, "data blob has %" PRIu32 " bytes, the tree says %" PRIu32,
				  it->ie->rawlen, it->len);
	if (abuf_reserve(w, pad + it->len + FV_DWRITE_ALIGN) < 0)
		return fv_err_set(le, -ENOMEM, "out of memory");
	*data = w->abuf + pad;
	return fv_reader_read_to(w->rd, it->ie, it->id, *data, le);
}

/* Read one chunk and write it at its place; false when the restore must
 * stop (worker_fatal was called). A chunk of a file with a dwrite that is
 * not written is skipped there, so that its range stays a hole. */
static bool worker_item(struct rworker *w, const struct witem *it)
{
	struct restore *c = w->c;
	struct fslot *s = &c->slots[it->slot];
	struct fv_err le;
	uint8_t *data = NULL;
	int rc;

	if (atomic_load_explicit(&s->stop, memory_order_relaxed))
		goto skip;
	rc = read_chunk(w, s, it, &data, &le);
	if (rc == -ENOMEM) {
		worker_fatal(c, rc, "%s: %s", s->path, le.msg);
		return false;
	}
	if (rc < 0) {
		/* The rest of the file is still worth having: the bad range
		 * stays a hole and the return says EUCLEAN. */
		if (slot_fail(c, s, CF_READ, rc, it->off, it->len, 0, le.msg) < 0)
			goto oom;
		goto skip;
	}
	rc = s->dw ? fv_dwrite_put(s->dw, data, it->len, it->off)
		   : fv_pwrite_full(s->fd, data, it->len, (off_t)it->off);
	if (rc < 0) {
		if (write_fatal(rc)) {
			worker_fatal(c, rc, "cannot write %s/%s: %s", c->o->target, s->path, strerror(-rc));
			return false;
		}
		atomic_store(&s->stop, true);
		if (slot_fail(c, s, CF_WRITE, rc, it->off, it->len, 0, NULL) < 0)
			goto oom;
		goto skip;
	}
	atomic_fetch_add_explicit(&s->written, it->len, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->written, it->len, memory_order_relaxed);
	return true;
skip:
	if (s->dw && fv_dwrite_skip(s->dw, it->off, it->len) < 0)
		goto oom;
	return true;
oom:
	worker_fatal(c, -ENOMEM, "%s: out of memory", s->path);
	return false;
}

static void *worker_main(void *arg)
{
	struct rworker *w = arg;
	struct restore *c = w->c;
	struct witem it;

	while (fv_workq_pop(&c->work, &it, true, 0) == 1) {
		if (!worker_item(w, &it))
			break;
		/* the last reference: the file is complete, the walker finishes it */
		if (atomic_fetch_sub(&c->slots[it.slot].refs, 1) == 1 &&
		    fv_workq_push(&c->done, &it.slot) < 0)
			break;
	}
	return NULL;
}

/* ---- the data path: the walker's side ---- */

static int witem_cmp(const void *a, const void *b)
{
	const struct witem *x = a, *y = b;
	uint32_t px = fv_index_pack(x->ie), py = fv_index_pack(y->ie);
	if (px != py)
		return px < py ? -1 : 1;
	return x->ie->off < y->ie->off ? -1 : x->ie->off > y->ie->off;
}

/* Queue the batch in pack and offset order, so the packs are read front
 * to back. */
static int batch_flush(struct restore *c)
{
	qsort(c->batch, c->nbatch, sizeof *c->batch, witem_cmp);
	for (size_t i = 0; i < c->nbatch; i++)
		if (fv_workq_push(&c->work, &c->batch[i]) < 0)
			return worker_failed(c);
	c->nbatch = 0;
	return 0;
}

static int fail_cmp(const void *a, const void *b)
{
	const struct chunk_fail *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Re-read what was written and compare it with the chunk ids. Returns true
 * when it matches; negative rc in *fatal only for out of memory. */
static bool verify_chunks(struct restore *c, int fd, const struct fv_node *n, int *fatal)
{
	for (uint32_t i = 0; i < n->nchunks; i++) {
		const struct fv_chunkref *ref = &n->chunks[i];
		uint8_t id[FV_ID_LEN];
		c->chunk.len = 0;
		if (fv_buf_reserve(&c->chunk, ref->len) < 0) {
			*fatal = fv_err_set(c->e, -ENOMEM, "restore: out of memory verifying %s", c->wpath);
			return false;
		}
		int rc = fv_pread_full(fd, c->chunk.data, ref->len, (off_t)ref->off);
		if (rc < 0) {
			warn(c, rc, "verify: cannot re-read offset %" PRIu64, ref->off);
			return false;
		}
		fv_repo_id(c->r, c->chunk.data, ref->len, id);
		if (memcmp(id, ref->id, FV_ID_LEN) != 0) {
			warn(c, -EUCLEAN,
			     "verify: content at offset %" PRIu64 " (%" PRIu32
			     " bytes) differs from the repository",
			     ref->off, ref->len);
			return false;
		}
	}
	return true;
}

static void slot_release(struct restore *c, uint32_t si)
{
	struct fslot *s = &c->slots[si];
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	fv_dwrite_free(s->dw);
	s->dw = NULL;
	if (s->dfd >= 0)
		close(s->dfd);
	s->dfd = -1;
	free(s->path);
	s->path = NULL;
	fv_node_free(&s->node);
	for (size_t i = 0; i < s->nfails; i++)
		free(s->fails[i].msg);
	s->nfails = 0;
	c->free_slots[c->nfree++] = si;
	c->busy--;
}

/* Every chunk of slot si is written (or failed): warn about what failed,
 * set the size (holes come from it alone), verify, set the metadata, close.
 * Runs on the walker, the only thread that calls the caller's callbacks. */
static int file_finish(struct restore *c, uint32_t si)
{
	struct fslot *s = &c->slots[si];
	const struct fv_node *n = &s->node;
	uint64_t written = atomic_load(&s->written);
	bool bad = false, damage = false, write_warned = false;
	int rc = 0;

	c->wpath = s->path;
	if (s->nfails)
		qsort(s->fails, s->nfails, sizeof *s->fails, fail_cmp);
	for (size_t i = 0; i < s->nfails; i++) {
		const struct chunk_fail *f = &s->fails[i];
		bad = true;
		if (f->kind == CF_BEYOND) {
			warn(c, f->code,
			     "chunk %" PRIu32 " at offset %" PRIu64 " lies beyond the size %" PRIu64
			     " (damaged tree); left as a hole",
			     f->index, f->off, n->size);
			damage = true;
		} else if (f->kind == CF_READ) {
			warn(c, f->code, "chunk at offset %" PRIu64 " (%" PRIu32 " bytes) not restored: %s",
			     f->off, f->len, f->msg);
			damage |= repo_damage(f->code);
		} else if (!write_warned) { /* the first: the file's later chunks were skipped */
			warn(c, f->code, "cannot write at offset %" PRIu64, f->off);
			write_warned = true;
		}
	}
	c->damaged += damage;
	c->st->bytes += written;
	if (s->dw && (rc = fv_dwrite_finish(s->dw)) < 0) {
		if (write_fatal(rc)) {
			fv_err_sys(c->e, rc, "cannot write %s/%s", c->o->target, s->path);
			goto out;
		}
		if (!write_warned)
			warn(c, rc, "cannot write");
		rc = 0;
		bad = true;
	}
	if (ftruncate(s->fd, (off_t)n->size) < 0) {
		rc = -errno;
		if (write_fatal(rc)) {
			fv_err_sys(c->e, rc, "cannot set the size of %s/%s", c->o->target, s->path);
			goto out;
		}
		warn(c, rc, "cannot set size %" PRIu64, n->size);
		rc = 0;
		bad = true;
	}
	if (c->o->verify && !bad && !verify_chunks(c, s->fd, n, &rc)) {
		if (rc < 0)
			goto out;
		c->st->verify_failures++;
	}
	if (!set_meta(c, s->fd, -1, n))
		bad = true;
	rc = close(s->fd) < 0 ? -errno : 0;
	s->fd = -1;
	if (rc < 0) {
		warn(c, rc, "error closing the file");
		rc = 0;
		bad = true;
	}
	if (bad)
		c->st->errors++;
	c->st->files++;
	c->prog.files++;
	c->prog_adjust += data_bytes(n) - written;
out:
	c->wpath = NULL;
	slot_release(c, si);
	if (rc == 0)
		progress(c, false);
	return rc;
}

/* Finish the files whose chunks are all written; with wait, wait for at
 * least one. */
static int reap(struct restore *c, bool wait)
{
	uint32_t si;
	for (;;) {
		int got = fv_workq_pop(&c->done, &si, wait, 0);
		if (got == 0)
			return 0;
		if (got < 0)
			return worker_failed(c);
		int rc = file_finish(c, si);
		if (rc < 0)
			return rc;
		wait = false;
	}
}

/* A free slot, finishing completed files first, and waiting for one when
 * all are busy (after queueing the batch: its chunks may be what they wait
 * for). */
static int slot_get(struct restore *c, uint32_t *si)
{
	int rc = reap(c, false);
	while (rc == 0 && !c->nfree) {
		rc = batch_flush(c);
		if (rc == 0)
			rc = reap(c, true);
	}
	if (rc == 0) {
		*si = c->free_slots[--c->nfree];
		c->busy++;
	}
	return rc;
}

/* Start the workers (not in dry-run). */
static int data_start(struct restore *c)
{
	int rc;
	c->nthreads = fv_reader_threads(c->o->threads);
	pthread_mutex_init(&c->mu, NULL);
	rc = fv_workq_init(&c->work, sizeof(struct witem), RESTORE_QUEUE);
	if (rc == 0)
		rc = fv_workq_init(&c->done, sizeof(uint32_t), RESTORE_SLOTS);
	c->slots = calloc(RESTORE_SLOTS, sizeof *c->slots);
	c->free_slots = calloc(RESTORE_SLOTS, sizeof *c->free_slots);
	c->batch = calloc(RESTORE_BATCH, sizeof *c->batch);
	c->w = calloc(c->nthreads, sizeof *c->w);
	for (uint32_t i = 0; c->slots && i < RESTORE_SLOTS; i++)
		c->slots[i].fd = c->slots[i].dfd = -1;
	if (rc == 0)
		rc = fv_dwrite_pool_new(&c->dpool, RESTORE_WINDOWS);
	if (rc < 0 || !c->slots || !c->free_slots || !c->batch || !c->w)
		return fv_err_set(c->e, -ENOMEM, "restore: out of memory");
	for (uint32_t i = 0; i < RESTORE_SLOTS; i++)
		c->free_slots[c->nfree++] = RESTORE_SLOTS - 1 - i;
	for (unsigned t = 0; t < c->nthreads; t++) {
		c->w[t].c = c;
		rc = fv_reader_open(c->r, &c->w[t].rd, c->e);
		if (rc < 0)
			return rc;
		/* the AEAD tag stands for the id (docs/repository-format.md,
		 * "What a read checks"); --verify keeps the recomputed id, so a
		 * blob that does not match its id is reported as damage and not
		 * as a bad write */
		fv_reader_trust_seal(c->w[t].rd, !c->o->verify);
		rc = -pthread_create(&c->w[t].tid, NULL, worker_main, &c->w[t]);
		if (rc < 0) {
			if (c->started) /* fewer threads will do */
				break;
			return fv_err_sys(c->e, rc, "restore: cannot start a thread to write files");
		}
		c->started++;
	}
	return 0;
}

/* The walk is over: queue the rest and finish every file. */
static int data_drain(struct restore *c)
{
	int rc = batch_flush(c);
	fv_workq_close(&c->work);
	while (rc == 0 && c->busy)
		rc = reap(c, true);
	return rc;
}

/* Stop the workers (at once when the restore failed) and free the data
 * path; files still open are closed as they are. */
static void data_stop(struct restore *c)
{
	if (!c->slots && !c->w)
		return;
	if (c->work.ring)
		fv_workq_shutdown(&c->work);
	if (c->done.ring)
		fv_workq_shutdown(&c->done);
	for (unsigned t = 0; t < c->started; t++)
		pthread_join(c->w[t].tid, NULL);
	for (unsigned t = 0; c->w && t < c->nthreads; t++) {
		fv_reader_close(c->w[t].rd);
		free(c->w[t].abuf);
	}
	for (uint32_t i = 0; c->slots && i < RESTORE_SLOTS; i++) {
		if (c->free_slots && (c->slots[i].path || c->slots[i].fd >= 0))
			slot_release(c, i);
		free(c->slots[i].fails);
	}
	fv_dwrite_pool_free(c->dpool); /* after the slots gave their windows back */
	fv_workq_fini(&c->work);
	fv_workq_fini(&c->done);
	pthread_mutex_destroy(&c->mu);
	free(c->w);
	free(c->slots);
	free(c->free_slots);
	free(c->batch);
}

/* ---- regular files ---- */

/* A chunk that does not lie within its file (a damaged tree). */
static bool chunk_beyond(const struct fv_node *n, const struct fv_chunkref *ref)
{
	return ref->off > (uint64_t)INT64_MAX - ref->len || ref->off + ref->len > n->size;
}

/* Give slot s a dwrite when its file is large enough, at least half data,
 * and the file system takes O_DIRECT; declare the chunks the workers will
 * get. Without one (any failure here) the file goes through the page
 * cache, as before. */
static void dwrite_attach(struct restore *c, struct fslot *s)
{
	const struct fv_node *n = &s->node;
	/* mostly holes: the windows would be mostly plain, and their table
	 * (16 bytes per MiB of size) would grow with the size, not the data */
	if (!c->dpool || n->size < FV_DWRITE_MIN || data_bytes(n) < n->size / 2)
		return;
	/* the inode we created, whatever happens to its name meanwhile */
	s->dfd = fv_reopen(s->fd, O_WRONLY | O_DIRECT);
	if (s->dfd < 0) {
		s->dfd = -1;
		return;
	}
	if (fv_dwrite_new(&s->dw, c->dpool, s->fd, s->dfd, n->size) < 0) {
		close(s->dfd);
		s->dfd = -1;
		return;
	}
	/* a chunk not in the index is skipped when the walker meets it */
	for (uint32_t i = 0; i < n->nchunks; i++)
		if (!chunk_beyond(n, &n->chunks[i]))
			fv_dwrite_expect(s->dw, n->chunks[i].off, n->chunks[i].len);
}

/* Create n's file and hand its chunks to the workers; n is moved into the
 * file's slot (the tree keeps an empty node). */
static int restore_file(struct restore *c, int dirfd, struct fv_node *n)
{
	uint64_t total = data_bytes(n);
	const char *first = n->hlink ? hl_find(c, n->hlink) : NULL;
	uint32_t si = 0;
	int rc = 0, fd = -1;

	if (c->o->dry_run)
		goto done;
	if (first) {
		rc = make_node(c, dirfd, n, first);
		if (rc == 0) /* one inode: content and metadata are (or will be) there */
			goto done;
		warn(c, rc, "cannot hardlink to %s, writing a separate copy", first);
	}
	if (n->size > (uint64_t)INT64_MAX) {
		warn(c, -EUCLEAN, "size %" PRIu64 " is impossible (damaged tree); not restored", n->size);
		fail(c, true);
		return 0;
	}
	fd = create_file(dirfd, n->name, c->o->verify ? O_RDWR : O_WRONLY);
	if (fd < 0) {
		if (write_fatal(fd))
			return fv_err_sys(c->e, fd, "cannot create %s/%s", c->o->target, c->path);
		warn(c, fd, "cannot create file");
		c->st->errors++;
		return 0;
	}
	/* Later members link to this path now: the data arrives in the one
	 * inode whenever it is written. */
	if (n->hlink && !first) {
		rc = hl_add(c, n->hlink, c->path);
		if (rc < 0)
			goto fail_fd;
	}
	rc = slot_get(c, &si);
	if (rc < 0)
		goto fail_fd;
	struct fslot *s = &c->slots[si];
	s->fd = fd;
	s->path = strdup(c->path);
	if (!s->path) {
		s->fd = -1;
		slot_release(c, si);
		rc = fv_err_set(c->e, -ENOMEM, "restore: out of memory for a path");
		goto fail_fd;
	}
	s->node = *n;
	memset(n, 0, sizeof *n);
	n = &s->node;
	atomic_store(&s->refs, 1);
	atomic_store(&s->written, 0);
	atomic_store(&s->stop, false);
	/* before the first chunk is queued: a window must know all it expects */
	dwrite_attach(c, s);
	for (uint32_t i = 0; i < n->nchunks; i++) {
		const struct fv_chunkref *ref = &n->chunks[i];
		const struct fv_index_entry *ie;
		if (chunk_beyond(n, ref)) {
			rc = slot_fail(c, s, CF_BEYOND, -EUCLEAN, ref->off, ref->len, i, NULL);
		} else if ((rc = fv_reader_locate(c->r, FV_OBJ_DATA, ref->id, &ie, &c->tmp)) < 0) {
			rc = slot_fail(c, s, CF_READ, rc, ref->off, ref->len, i, c->tmp.msg);
			if (rc == 0 && s->dw) /* declared, never put: a hole */
				rc = fv_dwrite_skip(s->dw, ref->off, ref->len);
		} else {
			if (c->nbatch == RESTORE_BATCH)
				rc = batch_flush(c);
			if (rc == 0) {
				atomic_fetch_add(&s->refs, 1);
				c->batch[c->nbatch++] = (struct witem){.ie = ie,
								       .id = ref->id,
								       .off = ref->off,
								       .len = ref->len,
								       .slot = si};
			}
		}
		if (rc == -ENOMEM)
			return fv_err_set(c->e, rc, "%s: out of memory", c->path);
		if (rc < 0)
			return rc;
	}
	/* the walker's own reference: when it is the last, finish here */
	if (atomic_fetch_sub(&s->refs, 1) == 1)
		return file_finish(c, si);
	return 0;
done:
	c->st->files++;
	c->prog.files++;
	c->prog_adjust += total;
	progress(c, false);
	return rc;
fail_fd:
	close(fd);
	return rc;
}

/* ---- symlinks, fifos, devices, sockets ---- */

static int restore_other(struct restore *c, int dirfd, const struct fv_node *n)
{
	int rc;
	c->st->others++;
	if (c->o->dry_run || n->type == FV_FT_SOCK) /* sockets belong to their server, like tar */
		return 0;
	if (n->type == FV_FT_LNK && (!n->target || !*n->target)) {
		warn(c, -EUCLEAN, "symlink without a target (damaged tree); not restored");
		fail(c, true);
		return 0;
	}
	rc = make_node(c, dirfd, n, NULL);
	if (rc < 0) {
		if (write_fatal(rc))
			return fv_err_sys(c->e, rc, "cannot create %s/%s", c->o->target, c->path);
		if ((n->type == FV_FT_CHR || n->type == FV_FT_BLK) && rc == -EPERM)
			warn(c, rc, "device not restored: creating devices needs root");
		else
			warn(c, rc, "cannot create");
		c->st->errors++;
		return 0;
	}
	if (!set_meta(c, -1, dirfd, n))
		c->st->errors++;
	return 0;
}

/* ---- the walk ---- */

static int walk_tree(struct restore *c, int dirfd, const uint8_t id[FV_ID_LEN], bool all);

static int restore_dir(struct restore *c, int dirfd, const struct fv_node *n, bool all)
{
	int subfd = -1, rc;
	bool write = !c->o->dry_run && !c->counting;

	if (c->depth >= RESTORE_MAX_DEPTH) {
		warn(c, -ELOOP, "directories nested deeper than %d levels (damaged tree?); not restored",
		     RESTORE_MAX_DEPTH);
		fail(c, false);
		return 0;
	}
	if (write) {
		subfd = open_dir(dirfd, n->name);
		if (subfd < 0) {
			if (write_fatal(subfd))
				return fv_err_sys(c->e, subfd, "cannot create %s/%s", c->o->target, c->path);
			warn(c, subfd, "cannot create directory, skipping what is below");
			c->st->errors++;
			return 0;
		}
	}
	if (!c->counting)
		c->st->dirs++;
	c->depth++;
	rc = walk_tree(c, subfd, n->subtree, all);
	c->depth--;
	/* After the entries: a 0000 directory could be filled, and creating
	 * them does not disturb the mtime. */
	if (rc == 0 && subfd >= 0 && !set_meta(c, subfd, -1, n))
		c->st->errors++;
	if (subfd >= 0)
		close(subfd);
	return rc;
}

static int walk_node(struct restore *c, int dirfd, struct fv_node *n, bool all)
{
	size_t saved = c->plen;
	size_t len = n->name ? strnlen(n->name, FV_NAME_MAX + 1) : 0;
	int rc;

	/* fv_tree_decode checks names already; a name is what keeps us inside
	 * the target, so it is checked again where it is used. */
	if (!fv_tree_name_valid(n->name ? n->name : "", len)) {
		warn(c, -EUCLEAN, "an entry with an invalid name (damaged or hostile tree); skipped");
		fail(c, true);
		return 0;
	}
	rc = path_push(c, n->name, len);
	if (rc < 0)
		return rc;
	enum sel sel = select_path(c, n->type == FV_FT_DIR, all);
	if (sel == SEL_NONE)
		goto out;
	if (c->counting) {
		if (n->type == FV_FT_REG) {
			c->prog.total_files++;
			c->prog.total_bytes += data_bytes(n);
		} else if (n->type == FV_FT_DIR) {
			rc = restore_dir(c, -1, n, sel == SEL_ALL);
		}
		goto out;
	}
	if (c->o->item)
		c->o->item(c->o->ud, c->path, n);
	switch (n->type) {
	case FV_FT_DIR:
		rc = restore_dir(c, dirfd, n, sel == SEL_ALL);
		break;
	case FV_FT_REG:
		rc = restore_file(c, dirfd, n);
		break;
	case FV_FT_LNK:
	case FV_FT_FIFO:
	case FV_FT_CHR:
	case FV_FT_BLK:
	case FV_FT_SOCK:
		rc = restore_other(c, dirfd, n);
		break;
	default:
		warn(c, -EUCLEAN, "unknown entry type %u (damaged tree); skipped", n->type);
		fail(c, true);
		break;
	}
out:
	path_pop(c, saved);
	return rc;
}

/* Restore the entries of tree id into dirfd (-1 when not writing). A tree
 * that cannot be read is a warning below the root and fatal at the root. */
static int walk_tree(struct restore *c, int dirfd, const uint8_t id[FV_ID_LEN], bool all)
{
	struct fv_tree t = {0};
	int rc = fv_repo_tree(c->r, id, &t, &c->tmp);
	if (rc < 0) {
		fv_tree_free(&t);
		if (rc == -ENOMEM)
			return fv_err_set(c->e, rc, "%s: %s", c->plen ? c->path : "/", c->tmp.msg);
		if (repo_damage(rc))
			rc = -EUCLEAN;
		if (c->counting)
			return 0; /* the real pass reports it */
		if (!c->plen)
			return fv_err_set(c->e, rc,
					  "the root tree of the snapshot cannot be read: %s; run "
					  "`fabvault check`",
					  c->tmp.msg);
		warn(c, rc, "directory listing cannot be read: %s; its entries are not restored", c->tmp.msg);
		fail(c, rc == -EUCLEAN);
		return 0;
	}
	for (uint32_t i = 0; i < t.n && rc == 0; i++)
		rc = walk_node(c, dirfd, &t.nodes[i], all);
	fv_tree_free(&t);
	return rc;
}

/* The overall result once the walk finished: damage first (the data is not
 * what was saved), then entries that failed, then unmatched includes. */
static int finish(struct restore *c)
{
	struct fv_restore_stats *st = c->st;
	size_t unmatched = 0;
	const char *first = NULL;
	for (size_t i = 0; i < c->ninc; i++) {
		if (c->inc[i].matched)
			st->matched++;
		else if (!unmatched++)
			first = c->o->includes[i];
	}
	if (c->damaged)
		return fv_err_set(c->e, -EUCLEAN,
				  "%" PRIu64 " entries are damaged in the repository (see warnings above); "
				  "run `fabvault check`",
				  c->damaged);
	if (st->verify_failures)
		return fv_err_set(c->e, -EUCLEAN,
				  "%" PRIu64 " files did not verify after writing (see warnings above); "
				  "check the target's disk",
				  st->verify_failures);
	if (st->errors)
		return fv_err_set(c->e, -EIO,
				  "%" PRIu64 " entries could not be restored (see warnings "
				  "above)",
				  st->errors);
	if (unmatched)
		return fv_err_set(c->e, -ENOENT, "%s is not in the snapshot%s", first,
				  unmatched > 1 ? " (nor are other includes)" : "");
	return 0;
}

int fv_restore_run(struct fv_repo *r, const struct fv_snapshot *s, const struct fv_restore_opts *o,
		   struct fv_restore_stats *st, struct fv_err *e)
{
	struct fv_restore_stats local;
	struct restore c = {.r = r, .o = o, .st = st ? st : &local, .e = e, .rootfd = -1};
	bool all;
	int rc;

	memset(c.st, 0, sizeof *c.st);
	fv_err_clear(e);
	if (!o->target || !*o->target)
		return fv_err_set(e, -EINVAL, "restore: no target directory given");
	rc = includes_init(&c, &all);
	if (rc < 0)
		goto out;
	rc = includes_resolve(&c, s->root);
	if (rc < 0)
		goto out;
	if (!o->dry_run) {
		rc = fv_mkdir_p(AT_FDCWD, o->target, 0777);
		if (rc < 0) {
			fv_err_sys(e, rc, "cannot create the target directory %s", o->target);
			goto out;
		}
		/* The target itself is the caller's choice and may be a symlink;
		 * below it, nothing is followed. */
		c.rootfd = open(o->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (c.rootfd < 0) {
			rc = fv_err_sys(e, -errno, "cannot open the target directory %s", o->target);
			goto out;
		}
	}
	rc = path_push(&c, "", 0); /* allocate the empty path */
	if (rc < 0)
		goto out;
	if (o->progress) {
		c.counting = true;
		rc = walk_tree(&c, -1, s->root, all);
		c.counting = false;
		if (rc < 0)
			goto out;
		progress(&c, true);
	}
	if (!o->dry_run) {
		rc = data_start(&c);
		if (rc < 0)
			goto out;
	}
	rc = walk_tree(&c, c.rootfd, s->root, all);
	if (rc == 0 && !o->dry_run)
		rc = data_drain(&c);
	if (rc < 0)
		goto out;
	path_pop(&c, 0);
	progress(&c, true);
	rc = finish(&c);
out:
	data_stop(&c);
	if (c.rootfd >= 0)
		close(c.rootfd);
	fv_buf_free(&c.chunk);
	hl_free(&c);
	includes_free(&c);
	free(c.path);
	return rc;
}
