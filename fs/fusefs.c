/* fabvault-fs: mount a fabvault-exportd export read-only with FUSE
 * (docs/fabvault-fs.8.md), over the remote filesystem protocol of
 * docs/protocol.md (fsclient.c speaks it).
 *
 * FUSE node ids are the server's node ids (root 1), so st_ino is stable
 * across remounts. Reads are served from a per-open-file read-ahead window
 * when the access is sequential: up to `readahead` chunks of 1 MiB are asked
 * for asynchronously ahead of the reader. After a reconnect the server's
 * handles are gone (READ answers -EBADF): the file is opened again and the
 * read retried; after a server restart node ids are unknown (-ESTALE) and
 * fsclient finds them again by name.
 */
#define FUSE_USE_VERSION 314

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../transport/frame.h"
#include "../transport/tp.h"
#include "fsclient.h"
#include "proto.h"

/* Exit status (docs/fabvault-fs.8.md, "EXIT STATUS"): the values of
 * fabvault(1) where they mean the same. */
enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_NOTFOUND = 9,
	EXIT_UNREACH = 11,
	EXIT_AUTH = 12,
};

#define MAX_PATHS 16
#define IO_MAX (1u << 20)         /* max_read: the most the kernel asks for at once */
#define RA_CHUNK (1u << 20)       /* one read-ahead request */
#define RA_MAX_SLOTS 16           /* read-ahead chunks per open file, at most */
#define RA_BUDGET (64u << 20)     /* read-ahead memory of the whole mount */
#define INLINE_BUDGET (64u << 20) /* OPEN_INLINE bytes held by open files, whole mount */
#define FORGET_AT_EXIT_MS 2000    /* how long an unmount waits for its last FORGETs */
#define AHEAD_MAX 32              /* openahead=: small files opened ahead, at most */
#define AHEAD_SLOTS 64            /* replies of opens ahead held at once */

/* ---- options ------------------------------------------------------------- */

struct opts {
	char *source, *mountpoint;
	char *paths, *conf_dir, *mode;
	char *timeout, *attr_timeout, *entry_timeout, *readahead, *threads, *max_read, *openahead;
	char *poll_us;
	int foreground, debug, help, version, fake;
	int nargs;
};

enum { KEY_HELP, KEY_VERSION, KEY_FG, KEY_DEBUG, KEY_RW };

#define OPT_STR(t, f)                          \
	{                                      \
		t, offsetof(struct opts, f), 0 \
	}
static const struct fuse_opt opt_spec[] = {OPT_STR("paths=%s", paths),
					   OPT_STR("conf_dir=%s", conf_dir),
					   OPT_STR("mode=%s", mode),
					   OPT_STR("timeout=%s", timeout),
					   OPT_STR("attr_timeout=%s", attr_timeout),
					   OPT_STR("entry_timeout=%s", entry_timeout),
					   OPT_STR("readahead=%s", readahead),
					   OPT_STR("threads=%s", threads),
					   OPT_STR("max_read=%s", max_read),
					   OPT_STR("openahead=%s", openahead),
					   OPT_STR("poll_us=%s", poll_us),
					   FUSE_OPT_KEY("-h", KEY_HELP),
					   FUSE_OPT_KEY("--help", KEY_HELP),
					   FUSE_OPT_KEY("-V", KEY_VERSION),
					   FUSE_OPT_KEY("--version", KEY_VERSION),
					   FUSE_OPT_KEY("-f", KEY_FG),
					   FUSE_OPT_KEY("-d", KEY_DEBUG),
					   FUSE_OPT_KEY("debug", KEY_DEBUG),
					   FUSE_OPT_KEY("rw", KEY_RW),
					   FUSE_OPT_END};

static const char usage_text[] =
	"Usage: fabvault-fs [-f] [-d] [-o OPTION[,OPTION...]] HOST:/ MOUNTPOINT\n"
	"Mount the export of fabvault-exportd on HOST read-only at MOUNTPOINT.\n\n"
	"  -f                 stay in the foreground\n"
	"  -d                 debug: foreground, every FUSE request logged\n"
	"  -h, --help         this text\n"
	"  -V, --version      the version\n\n"
	"Options (-o):\n"
	"  paths=P1+P2...     transport paths to the server, '+'-separated\n"
	"                     (tcp://ADDR[:PORT], rdma://ADDR[:PORT], a bare ADDR is TCP);\n"
	"                     default tcp://HOST:7420\n"
	"  conf_dir=DIR       node.key and authorized_peers (default /etc/fabvault)\n"
	"  mode=MODE          integrity or encrypt (default: encrypt on TCP, integrity on RDMA)\n"
	"  timeout=S          how long an operation waits for the server to come back\n"
	"                     before it fails with EIO (default 60)\n"
	"  attr_timeout=S     how long the kernel caches attributes (default 1)\n"
	"  entry_timeout=S    how long the kernel caches names (default 1)\n"
	"  readahead=N        1 MiB chunks read ahead of a sequential reader (0-16, default 8)\n"
	"  threads=N          FUSE worker threads at most (default 16)\n"
	"  max_read=BYTES     largest read request (default and at most 1048576)\n"
	"  openahead=N        small files opened ahead of a reader that opens them in\n"
	"                     directory order (0-32, default 8)\n"
	"  poll_us=US         RDMA polling mode: each path polls for replies this long\n"
	"                     before it sleeps (0-1000000, default 0: event-driven)\n"
	"  allow_other, default_permissions, and the usual mount flags (nosuid, nodev,\n"
	"  noexec, noatime, ...) are passed to FUSE; the mount is always ro;\n"
	"  _netdev, noauto, auto, nofail, defaults, user, users, x-* are ignored.\n\n"
	"Exit status: 0 mounted, 1 error, 2 usage, 9 the mountpoint or the export root\n"
	"is missing, 11 the server could not be reached on any path, 12 a node key was\n"
	"refused (by either side).\n";

/* Options of mount(8) and fstab that are not for FUSE: accepted, ignored. */
static bool ignored_opt(const char *arg)
{
	static const char *const names[] = {"_netdev", "noauto", "auto",  "nofail", "defaults", "user",
					    "nouser",  "users",  "owner", "group",  "noowner",  "nogroup"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcmp(arg, names[i]))
			return true;
	return !strncmp(arg, "x-", 2) || !strncmp(arg, "comment=", 8);
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *out)
{
	struct opts *o = data;
	(void)out;
	switch (key) {
	case KEY_HELP:
		o->help = 1;
		return 0;
	case KEY_VERSION:
		o->version = 1;
		return 0;
	case KEY_FG:
		o->foreground = 1;
		return 0;
	case KEY_DEBUG:
		o->debug = o->foreground = 1;
		return 1; /* FUSE logs every request */
	case KEY_RW:
		return 0; /* always read-only: "ro" is added */
	case FUSE_OPT_KEY_NONOPT:
		if (o->nargs == 0)
			o->source = strdup(arg);
		else if (o->nargs == 1)
			o->mountpoint = strdup(arg);
		o->nargs++;
		return 0;
	case FUSE_OPT_KEY_OPT:
		return ignored_opt(arg) ? 0 : 1;
	default:
		return 1;
	}
}

/* ---- the mount's context ------------------------------------------------- */

struct fs {
	struct fv_log lg;
	atomic_bool syslog; /* after daemonizing: stderr is /dev/null */
	struct fv_fsc *c;
	struct fv_tp_client *tp;
	double attr_timeout, entry_timeout;
	int ra_slots;
	uint32_t max_read;
	atomic_size_t ra_bytes;     /* read-ahead buffers held, all files */
	atomic_size_t inline_bytes; /* OPEN_INLINE replies held (and asked for), all files */
	/* Opening ahead (fs_open): OPEN_INLINE of the next small files of a
	 * directory listing, asked for before the reader opens them. */
	int ahead_window;                      /* openahead= */
	pthread_mutex_t amu;                   /* the slots and expect */
	pthread_cond_t acv;                    /* a slot answered */
	struct ahead *ahead;                   /* AHEAD_SLOTS, or NULL: no opening ahead */
	uint64_t ahead_expect;                 /* the node listed after the last one opened */
	atomic_bool inline_seen;               /* an OPEN_INLINE was answered: the server has it */
	_Atomic int64_t ahead_hit_ns;          /* when an open was last answered from one ahead */
	atomic_ullong ahead_asked, ahead_used; /* for the log at unmount */
};

static void fs_log(struct fs *fs, int prio, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fs_log(struct fs *fs, int prio, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (atomic_load(&fs->syslog)) {
		if (prio <= fs->lg.max_prio)
			syslog(prio, "%s", line);
		return;
	}
	fv_log(&fs->lg, prio, "%s", line);
}

static void tp_log(void *ud, int prio, const char *msg)
{
	fs_log(ud, prio, "%s", msg);
}

/* ---- attributes ---------------------------------------------------------- */

static void fill_entry(const struct fs *fs, const struct fv_fs_attr *a, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof *e);
	e->ino = a->node;
	e->generation = 0;
	fv_fs_attr_to_stat(a, &e->attr);
	e->attr_timeout = fs->attr_timeout;
	e->entry_timeout = fs->entry_timeout;
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fv_fs_attr a;
	struct fuse_entry_param e;
	int rc = fv_fsc_lookup(fs->c, parent, name, &a);
	if (rc == -ENOENT) {
		/* a negative entry, cached like a positive one */
		memset(&e, 0, sizeof e);
		e.entry_timeout = fs->entry_timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fill_entry(fs, &a, &e);
	if (fuse_reply_entry(req, &e) != 0)
		fv_fsc_forget(fs->c, a.node, 1); /* interrupted: the kernel did not take it */
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = fuse_req_userdata(req);
	fv_fsc_forget(fs->c, ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *v)
{
	struct fs *fs = fuse_req_userdata(req);
	for (size_t i = 0; i < count; i++)
		fv_fsc_forget(fs->c, v[i].ino, v[i].nlookup);
	fv_fsc_forget_flush(fs->c);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fv_fs_attr a;
	struct stat st;
	(void)fi;
	int rc = fv_fsc_getattr(fs->c, ino, &a);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fv_fs_attr_to_stat(&a, &st);
	fuse_reply_attr(req, &st, fs->attr_timeout);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fuse_req_userdata(req);
	char target[FV_FS_MAX_LINK + 1];
	int rc = fv_fsc_readlink(fs->c, ino, target, sizeof target);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, target);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fv_fsc_statfs s;
	int rc = fv_fsc_statfs(fs->c, ino ? ino : FV_FS_ROOT, &s);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct statvfs v = {.f_bsize = s.bsize,
			    .f_frsize = s.frsize,
			    .f_blocks = s.blocks,
			    .f_bfree = s.bfree,
			    .f_bavail = s.bavail,
			    .f_files = s.files,
			    .f_ffree = s.ffree,
			    .f_favail = s.ffree,
			    .f_namemax = s.namemax,
			    .f_flag = ST_RDONLY};
	fuse_reply_statfs(req, &v);
}

static void xattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = fuse_req_userdata(req);
	uint32_t len = 0;
	void *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	uint32_t want = size > FV_FS_MAX_XATTR ? FV_FS_MAX_XATTR : (uint32_t)size;
	int rc = fv_fsc_xattr(fs->c, ino, name, want, buf, &len);
	if (rc)
		fuse_reply_err(req, -rc);
	else if (!size)
		fuse_reply_xattr(req, len);
	else
		fuse_reply_buf(req, buf, len);
	free(buf);
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	xattr(req, ino, name, size);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	xattr(req, ino, NULL, size);
}

/* ---- directories --------------------------------------------------------- */

/* An open directory: the last READDIRPLUS batch and how far the kernel has
 * taken it. Entries of the batch not yet given to the kernel hold lookups
 * on the server that are given back when the batch is dropped. */
struct dh {
	pthread_mutex_t mu;
	struct fv_fsc_dirbatch b;
	bool valid;
	uint32_t pos;    /* next entry to hand out */
	uint64_t cookie; /* the offset that continues at pos */
	char *out;       /* the kernel's buffer */
	size_t outcap;
	uint64_t last_small; /* the last small file handed out (opening ahead) */
	bool from_start;     /* this listing was read from its first entry */
};

static void dh_drop(struct fs *fs, struct dh *d)
{
	for (uint32_t i = d->pos; d->valid && i < d->b.n; i++)
		fv_fsc_forget_server(fs->c, d->b.ents[i].attr.node, 1);
	d->valid = false;
	d->pos = 0;
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct dh *d = calloc(1, sizeof *d);
	if (!d || fv_fsc_dirbatch_init(&d->b) < 0) {
		free(d);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_init(&d->mu, NULL);
	fi->fh = (uintptr_t)d;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) != 0) {
		fv_fsc_dirbatch_free(&d->b);
		pthread_mutex_destroy(&d->mu);
		free(d);
	}
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t ttl_ns(const struct fs *fs)
{
	return (int64_t)(fs->attr_timeout * 1e9);
}

static bool ahead_ask(struct fs *fs, uint64_t node, int n);

/* A directory was listed from its start and node is the first small file
 * in it: a reader that follows listings (tar, cp -r) opens it next, before
 * any open of this directory could have asked for it. */
static void ahead_expect_first(struct fs *fs, uint64_t node)
{
	pthread_mutex_lock(&fs->amu);
	fs->ahead_expect = node;
	pthread_mutex_unlock(&fs->amu);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi,
			   bool plus)
{
	struct fs *fs = fuse_req_userdata(req);
	struct dh *d = (struct dh *)(uintptr_t)fi->fh;
	size_t used = 0;
	uint64_t first = 0; /* the listing's first small file, when handed out now */
	int rc = 0;
	pthread_mutex_lock(&d->mu);
	if (d->outcap < size) {
		char *p = realloc(d->out, size);
		if (!p) {
			rc = -ENOMEM;
			goto out;
		}
		d->out = p;
		d->outcap = size;
	}
	if (!d->valid || (uint64_t)off != d->cookie) {
		dh_drop(fs, d); /* a seek, or the first call */
		d->cookie = (uint64_t)off;
		d->last_small = 0;
		d->from_start = off == 0;
		if ((rc = fv_fsc_readdir(fs->c, ino, d->cookie, &d->b)) < 0)
			goto out;
		d->valid = true;
	}
	for (;;) {
		while (d->pos < d->b.n) {
			const struct fv_fsc_dirent *en = &d->b.ents[d->pos];
			size_t sz;
			if (plus) {
				struct fuse_entry_param e;
				fill_entry(fs, &en->attr, &e);
				sz = fuse_add_direntry_plus(req, d->out + used, size - used, en->name, &e,
							    (off_t)en->next_cookie);
			} else {
				struct stat st = {.st_ino = en->attr.node, .st_mode = en->attr.mode};
				sz = fuse_add_direntry(req, d->out + used, size - used, en->name, &st,
						       (off_t)en->next_cookie);
			}
			if (sz > size - used)
				goto out; /* full: the rest waits for the next call */
			used += sz;
			/* READDIRPLUS counts a lookup in the kernel; READDIR does not */
			if (!plus || fv_fsc_note_lookup(fs->c, ino, en->name, en->len, &en->attr) < 0)
				fv_fsc_forget_server(fs->c, en->attr.node, 1);
			else if (S_ISREG(en->attr.mode) && en->attr.size <= FV_FS_MAX_INLINE && fs->ahead) {
				/* the order a reader like tar opens them in */
				if (d->last_small)
					fv_fsc_set_next(fs->c, d->last_small, en->attr.node);
				else if (d->from_start)
					ahead_expect_first(fs, first = en->attr.node);
				d->last_small = en->attr.node;
			}
			d->pos++;
			d->cookie = en->next_cookie;
		}
		if (d->b.eof)
			break;
		/* batch used up: the next one, as long as the buffer has room */
		d->valid = false;
		d->pos = 0;
		if ((rc = fv_fsc_readdir(fs->c, ino, d->cookie, &d->b)) < 0)
			break;
		d->valid = true;
		if (!d->b.n)
			break;
	}
out:
	if (rc && used)
		rc = 0; /* what we have now; the error comes back on the next call */
	/* A reader whose opens were just answered from opens ahead walks the
	 * tree in listing order (tar): the first files of this listing are
	 * asked for now, not when their open comes (a round trip per
	 * directory). Within attr_timeout of such an open only, so that a
	 * listing alone (ls, find) opens nothing. */
	if (rc == 0 && first && atomic_load(&fs->inline_seen) && fv_fsc_inline_ok(fs->c) &&
	    mono_ns() - atomic_load(&fs->ahead_hit_ns) < ttl_ns(fs))
		(void)ahead_ask(fs, first, 1 + fs->ahead_window);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, d->out, used);
	pthread_mutex_unlock(&d->mu);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, false);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, true);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct dh *d = (struct dh *)(uintptr_t)fi->fh;
	(void)ino;
	/* a readdir that replied may still hold mu: wait for its unlock */
	pthread_mutex_lock(&d->mu);
	dh_drop(fs, d);
	pthread_mutex_unlock(&d->mu);
	fv_fsc_dirbatch_free(&d->b);
	pthread_mutex_destroy(&d->mu);
	free(d->out);
	free(d);
	fuse_reply_err(req, 0);
}

/* ---- files and read-ahead ------------------------------------------------ */

enum { SLOT_FREE, SLOT_BUSY, SLOT_READY };

struct fh;

/* One read-ahead chunk: an asynchronous READ into a bulk buffer. */
struct slot {
	struct fv_tp_call call;
	struct fh *fh;
	struct fv_tp_buf *buf;
	uint64_t off;
	uint32_t len, got;
	int state;
	int status;
	int users; /* readers replying from buf right now */
	uint8_t req[FV_FSC_READ_REQ];
	uint8_t rep[16];
};

/* An open file. mu guards everything below it; cv signals a slot done. */
struct fh {
	struct fs *fs;
	uint64_t node;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t handle;
	uint32_t gen;      /* bumped at each reopen */
	uint64_t size;     /* at open: read-ahead stops there */
	uint64_t next_off; /* end of the last read */
	uint64_t ra_next;  /* where the next read-ahead chunk starts */
	int busy;          /* slots in flight */
	int readers;       /* fs_read calls past their reply: release waits for them */
	/* The first bytes of the file that came with OPEN_INLINE, served
	 * instead of READs until iuntil_ns (the attribute timeout after the
	 * open: the kernel's own view of the file is that old anyway). When
	 * they are the whole file (iwhole) the server holds no handle (handle
	 * 0) until a read goes past them or comes later. */
	uint8_t *ibuf; /* the reply holding them (fv_fsc_open_inline), or NULL */
	const uint8_t *idata;
	uint32_t ilen;
	size_t iheld; /* bytes counted in fs->inline_bytes */
	bool iwhole;
	int64_t iuntil_ns; /* CLOCK_MONOTONIC */
	struct slot slot[RA_MAX_SLOTS];
};

static void slot_free(struct fh *f, struct slot *s)
{
	if (s->buf) {
		fv_tp_bulk_put(f->fs->tp, s->buf);
		atomic_fetch_sub(&f->fs->ra_bytes, RA_CHUNK);
	}
	s->buf = NULL;
	s->state = SLOT_FREE;
}

static void slot_done(struct fv_tp_call *call)
{
	struct slot *s = call->ud;
	struct fh *f = s->fh;
	uint32_t got = 0;
	int rc = fv_fsc_read_done(call, s->rep, s->len, &got);
	pthread_mutex_lock(&f->mu);
	s->status = rc;
	s->got = got;
	s->state = SLOT_READY;
	f->busy--;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

/* Ask for [f->ra_next, +RA_CHUNK) in slot s (f->mu held). */
static void slot_start(struct fh *f, struct slot *s)
{
	struct fs *fs = f->fs;
	int err;
	if (atomic_fetch_add(&fs->ra_bytes, RA_CHUNK) + RA_CHUNK > RA_BUDGET) {
		atomic_fetch_sub(&fs->ra_bytes, RA_CHUNK);
		return; /* the mount's read-ahead memory is taken: read on demand */
	}
	s->buf = fv_tp_bulk_get(fs->tp, RA_CHUNK, &err);
	if (!s->buf) {
		atomic_fetch_sub(&fs->ra_bytes, RA_CHUNK);
		return;
	}
	s->fh = f;
	s->off = f->ra_next;
	s->len = RA_CHUNK;
	s->got = 0;
	s->status = 0;
	s->users = 0;
	fv_fsc_read_req(s->req, f->handle, s->off, s->len);
	s->call = (struct fv_tp_call){.req = s->req,
				      .req_len = sizeof s->req,
				      .idempotent = true,
				      .reply = s->rep,
				      .reply_cap = sizeof s->rep,
				      .bulk = s->buf,
				      .bulk_cap = s->len,
				      .done = slot_done,
				      .ud = s};
	s->state = SLOT_BUSY;
	f->busy++;
	if (fv_tp_submit(fs->tp, &s->call) < 0) {
		f->busy--;
		slot_free(f, s);
		return;
	}
	f->ra_next += RA_CHUNK;
}

static struct slot *slot_at(struct fh *f, uint64_t off)
{
	for (int i = 0; i < f->fs->ra_slots; i++) {
		struct slot *s = &f->slot[i];
		if (s->state != SLOT_FREE && off >= s->off && off < s->off + s->len)
			return s;
	}
	return NULL;
}

/* Free the chunks no reader needs (f->mu held): those behind the reader,
 * and all of them when the access is not sequential. */
static void slots_trim(struct fh *f, bool all)
{
	for (int i = 0; i < f->fs->ra_slots; i++) {
		struct slot *s = &f->slot[i];
		if (s->state != SLOT_READY || s->users)
			continue;
		if (all || s->status || s->off + s->len <= f->next_off)
			slot_free(f, s);
	}
}

/* Keep the read-ahead window full ahead of end (f->mu held). */
static void slots_fill(struct fh *f, uint64_t end)
{
	if (f->ra_next < end)
		f->ra_next = end;
	for (int i = 0; i < f->fs->ra_slots && f->ra_next < f->size; i++)
		if (f->slot[i].state == SLOT_FREE)
			slot_start(f, &f->slot[i]);
}

/* Open the node again after the server lost our handle (a reconnect), or
 * for the first time when OPEN_INLINE brought the whole file and a read
 * needs the server after all: once for all the readers that saw the old
 * generation. */
static int fh_reopen(struct fh *f, uint32_t seen_gen)
{
	uint64_t h;
	struct fv_fs_attr a;
	pthread_mutex_lock(&f->mu);
	bool done = f->gen != seen_gen, first = f->handle == 0;
	pthread_mutex_unlock(&f->mu);
	if (done)
		return 0;
	int rc = fv_fsc_open(f->fs->c, f->node, O_RDONLY, &h, &a);
	if (rc)
		return rc;
	pthread_mutex_lock(&f->mu);
	if (f->gen == seen_gen) {
		f->handle = h;
		f->gen++;
		h = 0;
	}
	pthread_mutex_unlock(&f->mu);
	if (h)
		fv_fsc_release(f->fs->c, h); /* another reader was first */
	if (!first)
		fs_log(f->fs, LOG_INFO, "node %llu: opened again after a reconnect",
		       (unsigned long long)f->node);
	return 0;
}

/* A READ on demand, reopening the file when its handle was lost. */
static int fh_read_sync(struct fh *f, uint64_t off, uint32_t size, struct fv_tp_buf *buf, uint32_t *got)
{
	int rc = 0;
	for (int attempt = 0; attempt < 3; attempt++) {
		pthread_mutex_lock(&f->mu);
		uint64_t h = f->handle;
		uint32_t g = f->gen;
		pthread_mutex_unlock(&f->mu);
		if (h == 0) { /* the whole file came inline: no handle yet */
			if ((rc = fh_reopen(f, g)) < 0)
				return rc;
			continue;
		}
		rc = fv_fsc_read(f->fs->c, h, off, size, buf, got);
		if (rc != -EBADF)
			return rc;
		if ((rc = fh_reopen(f, g)) < 0)
			return rc;
	}
	return rc ? rc : -EIO;
}

/* Free an open file no reader uses any more, and its server handle. */
static void fh_free(struct fh *f)
{
	struct fs *fs = f->fs;
	if (f->handle)
		fv_fsc_release(fs->c, f->handle);
	free(f->ibuf);
	atomic_fetch_sub(&fs->inline_bytes, f->iheld);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f);
}

/* ---- opening ahead --------------------------------------------------------
 * A reader that opens the small files of a directory one after the other in
 * the order they were listed (tar, cp -r) waits one round trip per file,
 * and the server reads one file at a time. So when a file is opened that is
 * the one listed after the previous open (or was opened ahead itself), the
 * next ahead_window small files of the listing are asked for with
 * OPEN_INLINE at once, asynchronously, and their opens are answered from
 * those replies. A reply is used only for attr_timeout after it was asked
 * for (like the inline bytes themselves: a file changed on the server is
 * seen after the attribute timeout); one not used by then is dropped (its
 * handle, if the file had grown past the inline limit, released). A reader
 * in another order (sorted names, random) opens nothing ahead. */

enum { AHEAD_FREE, AHEAD_BUSY, AHEAD_READY };

struct ahead {
	struct fv_tp_call call;
	struct fs *fs;
	uint64_t node;
	int state;
	int rc;
	int64_t t0; /* when it was asked for (CLOCK_MONOTONIC) */
	struct fv_fs_open_inline o;
	uint8_t req[FV_FSC_OPEN_INLINE_REQ];
	uint8_t *rep; /* FV_FS_OPEN_INLINE_FIXED + FV_FS_MAX_INLINE bytes, for the life of the mount */
};

static void ahead_done(struct fv_tp_call *call)
{
	struct ahead *s = call->ud;
	struct fs *fs = s->fs;
	int rc = fv_fsc_open_inline_done(call, s->rep, FV_FS_MAX_INLINE, &s->o);
	pthread_mutex_lock(&fs->amu);
	s->rc = rc;
	s->state = AHEAD_READY;
	pthread_cond_broadcast(&fs->acv);
	pthread_mutex_unlock(&fs->amu);
}

/* Free slot s (amu held); the handle it held, to release once unlocked. */
static uint64_t ahead_free(struct ahead *s)
{
	uint64_t h = s->state == AHEAD_READY && s->rc == 0 ? s->o.handle : 0;
	s->state = AHEAD_FREE;
	s->node = 0;
	return h;
}

/* The slot of node (amu held), or NULL. */
static struct ahead *ahead_find(struct fs *fs, uint64_t node)
{
	for (int i = 0; i < AHEAD_SLOTS; i++)
		if (fs->ahead[i].state != AHEAD_FREE && fs->ahead[i].node == node)
			return &fs->ahead[i];
	return NULL;
}

/* Take the reply opened ahead for node into f and o, waiting for it if it
 * is on its way; false when there is none (or it is too old, or failed).
 * *follows: node is the one listed after the last one opened, or was opened
 * ahead: the reader follows the listing. */
static bool ahead_take(struct fs *fs, uint64_t node, struct fh *f, struct fv_fs_open_inline *o, bool *follows)
{
	uint64_t stale = 0;
	bool taken = false;
	pthread_mutex_lock(&fs->amu);
	struct ahead *s;
	while ((s = ahead_find(fs, node)) && s->state == AHEAD_BUSY)
		pthread_cond_wait(&fs->acv, &fs->amu);
	if (s && s->rc == 0 && mono_ns() < s->t0 + ttl_ns(fs)) {
		f->ibuf = malloc(FV_FS_OPEN_INLINE_FIXED + s->o.len);
		if (f->ibuf) {
			*o = s->o;
			memcpy(f->ibuf, s->o.data, s->o.len);
			o->data = f->ibuf;
			f->iuntil_ns = s->t0 + ttl_ns(fs);
			s->state = AHEAD_FREE; /* its handle (if any) is f's now */
			s->node = 0;
			taken = true;
			atomic_fetch_add(&fs->ahead_used, 1);
			atomic_store(&fs->ahead_hit_ns, mono_ns());
		}
	}
	if (s && !taken)
		stale = ahead_free(s);
	*follows = taken || node == fs->ahead_expect;
	pthread_mutex_unlock(&fs->amu);
	if (stale)
		fv_fsc_release(fs->c, stale);
	return taken;
}

/* Ask for node and the small files listed after it, n files in all, with
 * OPEN_INLINE at once (those already asked for are skipped). Returns whether
 * node itself is on its way (or answered) afterwards. */
static bool ahead_ask(struct fs *fs, uint64_t node, int n)
{
	bool first_known = false;
	uint64_t next = node;
	int64_t now = mono_ns();
	for (int i = 0; i < n && next; i++, next = fv_fsc_next(fs->c, next)) {
		struct ahead *s = NULL;
		uint64_t stale = 0;
		pthread_mutex_lock(&fs->amu);
		bool known = ahead_find(fs, next) != NULL;
		for (int k = 0; k < AHEAD_SLOTS && !s && !known; k++) {
			struct ahead *t = &fs->ahead[k];
			if (t->state == AHEAD_READY && now >= t->t0 + ttl_ns(fs))
				stale = ahead_free(t); /* never used: the reader went elsewhere */
			if (t->state == AHEAD_FREE)
				s = t;
		}
		if (s) {
			s->state = AHEAD_BUSY;
			s->node = next;
			s->t0 = now;
		}
		pthread_mutex_unlock(&fs->amu);
		if (stale)
			fv_fsc_release(fs->c, stale);
		if (known) {
			first_known |= i == 0;
			continue;
		}
		if (!s)
			break; /* every slot in use */
		fv_fsc_open_inline_req(s->req, next, O_RDONLY, FV_FS_MAX_INLINE);
		s->call = (struct fv_tp_call){.req = s->req,
					      .req_len = sizeof s->req,
					      .idempotent = true,
					      .reply = s->rep,
					      .reply_cap = FV_FS_OPEN_INLINE_FIXED + FV_FS_MAX_INLINE,
					      .done = ahead_done,
					      .ud = s};
		if (fv_tp_submit(fs->tp, &s->call) < 0) {
			pthread_mutex_lock(&fs->amu);
			(void)ahead_free(s);
			pthread_mutex_unlock(&fs->amu);
			break;
		}
		atomic_fetch_add(&fs->ahead_asked, 1);
		first_known |= i == 0;
	}
	return first_known;
}

/* node was opened: expect the one listed after it next, and when the
 * reader follows the listing, ask for the next ahead_window small files. */
static void ahead_start(struct fs *fs, uint64_t node, bool follows)
{
	uint64_t next = fv_fsc_next(fs->c, node);
	pthread_mutex_lock(&fs->amu);
	fs->ahead_expect = next;
	pthread_mutex_unlock(&fs->amu);
	if (follows && next && fv_fsc_inline_ok(fs->c))
		(void)ahead_ask(fs, next, fs->ahead_window);
}

/* Set up opening ahead (attr_timeout > 0, openahead > 0), after fs_new;
 * without memory the mount does without. */
static void ahead_init(struct fs *fs)
{
	if (fs->ahead_window <= 0 || fs->attr_timeout <= 0)
		return;
	struct ahead *v = calloc(AHEAD_SLOTS, sizeof *v);
	for (int i = 0; v && i < AHEAD_SLOTS; i++) {
		v[i].fs = fs;
		if (!(v[i].rep = malloc(FV_FS_OPEN_INLINE_FIXED + FV_FS_MAX_INLINE))) {
			while (i-- > 0)
				free(v[i].rep);
			free(v);
			v = NULL;
		}
	}
	fs->ahead = v;
}

/* At unmount, while the transport is up: wait (up to two seconds) for the
 * opens ahead on their way and release the handles of those not used. */
static void ahead_stop(struct fs *fs)
{
	if (!fs->ahead)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	pthread_mutex_lock(&fs->amu);
	for (int i = 0; i < AHEAD_SLOTS; i++) {
		struct ahead *s = &fs->ahead[i];
		while (s->state == AHEAD_BUSY && pthread_cond_timedwait(&fs->acv, &fs->amu, &ts) == 0)
			;
		uint64_t h = s->state == AHEAD_READY ? ahead_free(s) : 0;
		if (h) {
			pthread_mutex_unlock(&fs->amu);
			fv_fsc_release(fs->c, h);
			pthread_mutex_lock(&fs->amu);
		}
	}
	pthread_mutex_unlock(&fs->amu);
	fs_log(fs, LOG_INFO, "opened %llu files ahead, %llu of them used", atomic_load(&fs->ahead_asked),
	       atomic_load(&fs->ahead_used));
}

/* Once the transport is closed (no call can complete any more). */
static void ahead_free_all(struct fs *fs)
{
	for (int i = 0; fs->ahead && i < AHEAD_SLOTS; i++)
		free(fs->ahead[i].rep);
	free(fs->ahead);
	fs->ahead = NULL;
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fv_fs_open_inline o;
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_CREAT | O_APPEND))) {
		fuse_reply_err(req, EROFS);
		return;
	}
	struct fh *f = calloc(1, sizeof *f);
	if (!f) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* The first bytes come along while the mount holds little of them,
	 * and only when attributes are cached at all (they are served for
	 * attr_timeout). */
	const size_t most = FV_FS_OPEN_INLINE_FIXED + FV_FS_MAX_INLINE; /* a whole reply */
	uint32_t want = 0;
	size_t reserved = 0;
	if (fs->attr_timeout > 0) {
		if (atomic_fetch_add(&fs->inline_bytes, most) + most <= INLINE_BUDGET) {
			want = FV_FS_MAX_INLINE;
			reserved = most;
		} else {
			atomic_fetch_sub(&fs->inline_bytes, most);
		}
	}
	int64_t t0 = mono_ns();
	bool follows = false;
	int rc = 0;
	bool taken = false;
	if (want && fs->ahead) {
		taken = ahead_take(fs, ino, f, &o, &follows);
		/* Expected but not asked for: the first small file of a listing.
		 * It goes out first, and the files after it right behind it, so
		 * that the reader's next opens do not each wait a round trip
		 * (which the second and third file of every directory did). */
		if (!taken && follows && atomic_load(&fs->inline_seen) && fv_fsc_inline_ok(fs->c) &&
		    ahead_ask(fs, ino, 1 + fs->ahead_window))
			taken = ahead_take(fs, ino, f, &o, &follows);
	}
	if (taken)
		t0 = f->iuntil_ns - ttl_ns(fs); /* the bytes are as old as the open ahead */
	else
		rc = fv_fsc_open_inline(fs->c, ino, O_RDONLY, want, &o, &f->ibuf);
	/* a server of before OPEN_INLINE is found out by one open, not by
	 * the window of opens asked for ahead of it */
	if (rc == 0 && want && fv_fsc_inline_ok(fs->c))
		atomic_store(&fs->inline_seen, true);
	if (rc == 0 && f->ibuf && (o.len || o.handle == 0)) {
		f->idata = o.data;
		f->ilen = o.len;
		f->iwhole = o.handle == 0;
		f->iheld = FV_FS_OPEN_INLINE_FIXED + o.len;
		f->iuntil_ns = t0 + ttl_ns(fs);
	} else {
		free(f->ibuf); /* no bytes: nothing to keep */
		f->ibuf = NULL;
	}
	atomic_fetch_sub(&fs->inline_bytes, reserved - f->iheld);
	if (rc) {
		free(f->ibuf);
		free(f);
		fuse_reply_err(req, -rc);
		return;
	}
	f->fs = fs;
	f->node = ino;
	f->handle = o.handle;
	f->size = o.attr.size;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	fi->fh = (uintptr_t)f;
	fi->keep_cache = fv_fsc_cache_same(fs->c, ino, o.attr.size, o.attr.mtime_ns);
	fi->noflush = 1;
	/* before the reply: the reader's next open must find the files it
	 * asks for on their way, not ask for them again */
	if (want && fs->ahead)
		ahead_start(fs, ino, follows);
	if (fuse_reply_open(req, fi) != 0)
		fh_free(f);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fh *f = (struct fh *)(uintptr_t)fi->fh;
	struct iovec iov[RA_MAX_SLOTS + 2];
	struct slot *held[RA_MAX_SLOTS];
	struct fv_tp_buf *sync = NULL;
	int niov = 0, nheld = 0, rc = 0;
	(void)ino;
	if (size > fs->max_read)
		size = fs->max_read;
	uint64_t cur = (uint64_t)off, end = (uint64_t)off + size;
	bool eof = false;
	int64_t now = mono_ns();

	pthread_mutex_lock(&f->mu);
	/* the bytes that came with the open, while they are fresh */
	if ((f->ibuf || f->iwhole) && now < f->iuntil_ns) {
		if (cur < f->ilen) {
			uint64_t n = (end < f->ilen ? end : f->ilen) - cur;
			iov[niov].iov_base = (void *)(uintptr_t)(f->idata + cur);
			iov[niov++].iov_len = n;
			cur += n;
		}
		eof = f->iwhole && cur >= f->ilen;
	}
	/* sequential: this read starts where the last ended, or inside the
	 * window (the kernel's own read-ahead sends reads out of order) */
	bool seq = cur == f->next_off || slot_at(f, cur) || (cur >= f->next_off && cur < f->ra_next);
	f->next_off = end;
	if (!seq) {
		slots_trim(f, true);
		f->ra_next = end;
	}
	while (cur < end && !eof) {
		struct slot *s = slot_at(f, cur);
		if (!s)
			break;
		if (s->state == SLOT_BUSY) {
			s->users++;
			while (s->state == SLOT_BUSY)
				pthread_cond_wait(&f->cv, &f->mu);
			s->users--;
			continue;
		}
		if (s->status) { /* lost handle or link: read on demand instead */
			if (!s->users)
				slot_free(f, s);
			break;
		}
		uint64_t avail = s->off + s->got;
		if (cur >= avail) {
			eof = s->got < s->len; /* past the end of the file */
			break;
		}
		uint64_t n = (end < avail ? end : avail) - cur;
		iov[niov].iov_base = (uint8_t *)s->buf->p + (cur - s->off);
		iov[niov++].iov_len = n;
		held[nheld++] = s;
		s->users++;
		cur += n;
		if (cur == avail && s->got < s->len)
			eof = true;
	}
	if (seq && fs->ra_slots && f->handle)
		slots_fill(f, end);
	/* once the reply is out the kernel may release the file at once */
	f->readers++;
	pthread_mutex_unlock(&f->mu);

	if (cur < end && !eof) {
		uint32_t want = (uint32_t)(end - cur), got = 0;
		int err = 0;
		sync = fv_tp_bulk_get(fs->tp, want, &err);
		if (!sync)
			rc = err ? err : -ENOMEM;
		else if ((rc = fh_read_sync(f, cur, want, sync, &got)) == 0 && got) {
			iov[niov].iov_base = sync->p;
			iov[niov++].iov_len = got;
		}
	}
	if (rc && niov == 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_iov(req, iov, niov); /* a short read when only the first part came */

	pthread_mutex_lock(&f->mu);
	for (int i = 0; i < nheld; i++)
		held[i]->users--;
	slots_trim(f, false);
	f->readers--;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu); /* f may be freed from here on */
	if (sync)
		fv_tp_bulk_put(fs->tp, sync);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *f = (struct fh *)(uintptr_t)fi->fh;
	(void)ino;
	pthread_mutex_lock(&f->mu);
	while (f->busy || f->readers) /* they still use f */
		pthread_cond_wait(&f->cv, &f->mu);
	for (int i = 0; i < RA_MAX_SLOTS; i++)
		if (f->slot[i].state != SLOT_FREE)
			slot_free(f, &f->slot[i]);
	pthread_mutex_unlock(&f->mu);
	fh_free(f); /* no RELEASE when the whole file came inline */
	fuse_reply_err(req, 0);
}

/* ---- write-type operations: a read-only filesystem ------------------------ */

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	fuse_reply_err(req, EROFS);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	fuse_reply_err(req, EROFS);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	fuse_reply_err(req, EROFS);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link, (void)parent, (void)name;
	fuse_reply_err(req, EROFS);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	fuse_reply_err(req, EROFS);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino, (void)newparent, (void)newname;
	fuse_reply_err(req, EROFS);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)ino, (void)buf, (void)size, (void)off, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
			int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	fuse_reply_err(req, EROFS);
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	fuse_reply_err(req, EROFS);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	(void)ino, (void)mode, (void)offset, (void)length, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, struct fuse_file_info *fi_in,
			       fuse_ino_t ino_out, off_t off_out, struct fuse_file_info *fi_out, size_t len,
			       int flags)
{
	(void)ino_in, (void)off_in, (void)fi_in, (void)ino_out, (void)off_out, (void)fi_out, (void)len,
		(void)flags;
	fuse_reply_err(req, EROFS);
}

/* ---- session ------------------------------------------------------------- */

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;
	conn->max_read = fs->max_read;
	conn->max_write = IO_MAX;     /* sets the kernel's max_pages, hence the read size */
	conn->max_readahead = IO_MAX; /* the kernel keeps the smaller of this and its own */
	conn->time_gran = 1;
	if (conn->capable & FUSE_CAP_READDIRPLUS) {
		conn->want |= FUSE_CAP_READDIRPLUS;
		conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	}
	conn->want |= conn->capable & (FUSE_CAP_ASYNC_READ | FUSE_CAP_PARALLEL_DIROPS |
				       FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_AUTO_INVAL_DATA);
	conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_EXPORT_SUPPORT);
}

static const struct fuse_lowlevel_ops ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.readlink = fs_readlink,
	.statfs = fs_statfs,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.releasedir = fs_releasedir,
	.open = fs_open,
	.read = fs_read,
	.release = fs_release,
	.setattr = fs_setattr,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_unlink,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.write = fs_write,
	.setxattr = fs_setxattr,
	.removexattr = fs_removexattr,
	.create = fs_create,
	.fallocate = fs_fallocate,
	.copy_file_range = fs_copy_file_range,
};

/* ---- start-up ------------------------------------------------------------ */

/* Parse a number of seconds in [lo, hi] (fractions allowed). */
static int parse_secs(const char *name, const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "fabvault-fs: %s wants seconds from %g to %g, not '%s'\n", name, lo, hi, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_int(const char *name, const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "fabvault-fs: %s wants a whole number from %ld to %ld, not '%s'\n", name, lo,
			hi, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* The transport paths: paths=P1+P2..., or tcp://HOST:7420 from SOURCE. */
static int parse_paths(const struct opts *o, struct fv_tp_path *v, size_t *n)
{
	char buf[2048];
	struct fv_err e = {0};
	*n = 0;
	if (!o->paths) {
		size_t hl = strcspn(o->source, ":");
		if (hl == 0 || hl >= 256) {
			fprintf(stderr, "fabvault-fs: '%s' names no host: give HOST:/ or paths=\n",
				o->source);
			return -EINVAL;
		}
		snprintf(buf, sizeof buf, "tcp://%.*s:%d", (int)hl, o->source, FV_TP_DEFAULT_PORT);
		if (fv_tp_path_parse(buf, FV_TP_TCP, &v[0], &e) < 0) {
			fprintf(stderr, "fabvault-fs: %s\n", e.msg);
			return -EINVAL;
		}
		*n = 1;
		return 0;
	}
	snprintf(buf, sizeof buf, "%s", o->paths);
	for (char *save = NULL, *tok = strtok_r(buf, "+", &save); tok; tok = strtok_r(NULL, "+", &save)) {
		if (*n == MAX_PATHS) {
			fprintf(stderr, "fabvault-fs: at most %d paths\n", MAX_PATHS);
			return -EINVAL;
		}
		if (fv_tp_path_parse(tok, FV_TP_TCP, &v[*n], &e) < 0) {
			fprintf(stderr, "fabvault-fs: paths=: %s\n", e.msg);
			return -EINVAL;
		}
		(*n)++;
	}
	if (!*n) {
		fprintf(stderr, "fabvault-fs: paths= is empty\n");
		return -EINVAL;
	}
	return 0;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
		    r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = 0;
}

/* The "major:minor" of what is mounted at dir, from /proc/self/mountinfo
 * (no stat of dir: that would ask a FUSE mount there). 0 or -ENOENT. */
static int mounted_at(const char *dir, char *devbuf, size_t n)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	int rc = -ENOENT;
	if (!f)
		return -errno;
	while (fgets(line, sizeof line, f)) {
		char *save = NULL, *dev = NULL, *mp = NULL;
		char *tok = strtok_r(line, " ", &save);
		for (int i = 0; tok && i < 5; i++, tok = strtok_r(NULL, " ", &save)) {
			if (i == 2)
				dev = tok;
			if (i == 4)
				mp = tok;
		}
		if (!mp || !dev)
			continue;
		unescape(mp);
		if (!strcmp(mp, dir)) {
			snprintf(devbuf, n, "%s", dev);
			rc = 0; /* keep the last: the one on top */
		}
	}
	fclose(f);
	return rc;
}

/* The mountpoint must exist, be a directory, and have nothing mounted on it. */
static int check_mountpoint(const char *mp, char *real, size_t n)
{
	struct stat st;
	char dev[64];
	if (stat(mp, &st) < 0) {
		int err = errno;
		fprintf(stderr, "fabvault-fs: mountpoint %s: %s%s\n", mp, strerror(err),
			err == ENOENT ? ": create it (mkdir -p)" : "");
		return err == ENOENT ? EXIT_NOTFOUND : EXIT_ERROR;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "fabvault-fs: mountpoint %s is not a directory\n", mp);
		return EXIT_NOTFOUND;
	}
	if (!realpath(mp, real)) {
		fprintf(stderr, "fabvault-fs: mountpoint %s: %s\n", mp, strerror(errno));
		return EXIT_ERROR;
	}
	(void)n;
	if (mounted_at(real, dev, sizeof dev) == 0) {
		fprintf(stderr,
			"fabvault-fs: mountpoint %s is busy: something is mounted there already "
			"(umount %s first)\n",
			real, real);
		return EXIT_ERROR;
	}
	return 0;
}

/* Raise the kernel's read-ahead of the new mount to max_read (its default
 * is 128 KiB, and FUSE's INIT can only lower it). Best effort. */
static void kernel_readahead(struct fs *fs, const char *mp)
{
	char dev[64], path[128];
	if (mounted_at(mp, dev, sizeof dev) < 0)
		return;
	snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", dev);
	FILE *f = fopen(path, "we");
	if (!f)
		return;
	fprintf(f, "%u\n", fs->max_read / 1024);
	if (fclose(f) != 0)
		fs_log(fs, LOG_INFO, "cannot raise %s: %s", path, strerror(errno));
}

static int exit_for(int code)
{
	if (code == -EIO) /* a transport failure while mounting */
		return EXIT_UNREACH;
	switch (fv_tp_err_kind(code)) {
	case FV_TP_ERR_AUTH:
		return EXIT_AUTH;
	case FV_TP_ERR_UNREACH:
		return EXIT_UNREACH;
	default:
		return EXIT_ERROR;
	}
}

/* Daemonize before any thread exists (a fork keeps only the calling
 * thread), but let the parent exit only when the child reports how the
 * mount went: its exit status is the child's. Returns the pipe to report
 * on, or -1 in the child on failure (stay in the foreground). */
static int daemon_start(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid > 0) {
		unsigned char st = EXIT_ERROR;
		close(p[1]);
		ssize_t r;
		do
			r = read(p[0], &st, 1);
		while (r < 0 && errno == EINTR);
		_exit(r == 1 ? st : EXIT_ERROR);
	}
	close(p[0]);
	if (setsid() < 0)
		fprintf(stderr, "fabvault-fs: setsid: %s\n", strerror(errno));
	return p[1];
}

/* Tell the parent (and whoever ran it) the outcome; on success detach
 * from the terminal: from now on messages go to syslog. */
static void daemon_report(struct fs *fs, int fd, unsigned char st)
{
	if (fd < 0)
		return;
	if (st == EXIT_OK) {
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul >= 0) {
			openlog("fabvault-fs", LOG_PID, LOG_DAEMON);
			atomic_store(&fs->syslog, true);
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(nul, 2);
			if (nul > 2)
				close(nul);
		}
	}
	ssize_t r;
	do
		r = write(fd, &st, 1);
	while (r < 0 && errno == EINTR);
	close(fd);
}

static int load_keys(const char *dir, struct fv_tp_node_key *key, struct fv_tp_peers *peers)
{
	char kp[PATH_MAX], pp[PATH_MAX];
	struct fv_err e = {0};
	snprintf(kp, sizeof kp, "%s/node.key", dir);
	snprintf(pp, sizeof pp, "%s/authorized_peers", dir);
	if (fv_tp_key_load(kp, key, &e) < 0 || fv_tp_peers_load(pp, peers, &e) < 0) {
		fprintf(stderr, "fabvault-fs: %s\n", e.msg);
		return EXIT_ERROR;
	}
	if (!peers->n) {
		fprintf(stderr, "fabvault-fs: %s lists no peer: add the server's node.pub to it\n", pp);
		return EXIT_ERROR;
	}
	return 0;
}

/* Check the export: the root's attributes, with a message for each way
 * it can fail. */
static int check_root(struct fs *fs, const char *source)
{
	struct fv_fs_attr a;
	int rc = fv_fsc_getattr(fs->c, FV_FS_ROOT, &a);
	if (rc == 0 && !S_ISDIR(a.mode))
		rc = -ENOTDIR;
	switch (rc) {
	case 0:
		return 0;
	case -EPROTO:
	case -ENOSYS:
		fs_log(fs, LOG_ERR,
		       "%s: the export speaks another protocol version: upgrade fabvault on both nodes",
		       source);
		return EXIT_ERROR;
	case -EIO:
		fs_log(fs, LOG_ERR, "%s: the server stopped answering", source);
		return EXIT_UNREACH;
	case -EACCES:
	case -EPERM:
		fs_log(fs, LOG_ERR, "%s: the server may not read its export root: %s", source, strerror(-rc));
		return EXIT_ERROR;
	default:
		fs_log(fs, LOG_ERR,
		       "%s: the export root is missing on the server (%s): check the directory "
		       "fabvault-exportd exports",
		       source, strerror(-rc));
		return EXIT_NOTFOUND;
	}
}

static void opts_free(struct opts *o)
{
	char **v[] = {&o->source,   &o->mountpoint,   &o->paths,         &o->conf_dir,  &o->mode,
		      &o->timeout,  &o->attr_timeout, &o->entry_timeout, &o->readahead, &o->threads,
		      &o->max_read, &o->openahead,    &o->poll_us};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		free(*v[i]);
		*v[i] = NULL;
	}
}

/* Everything the options decide, checked before anything is started. */
struct setup {
	struct fv_tp_path paths[MAX_PATHS];
	size_t npaths;
	int mode;
	double timeout;
	long threads;
	long poll_us;
	char mp[PATH_MAX];
	char mountopts[1024];
};

static int parse_opts(struct opts *o, struct fs *fs, struct setup *s)
{
	long v = 0;
	if (o->nargs != 2) {
		fprintf(stderr, "fabvault-fs: %s\nTry 'fabvault-fs --help'.\n",
			o->nargs < 2 ? "needs SOURCE (HOST:/) and MOUNTPOINT" : "too many arguments");
		return EXIT_USAGE;
	}
	if (strpbrk(o->source, ",\\ \t\n")) {
		fprintf(stderr, "fabvault-fs: SOURCE '%s' may not hold commas, spaces or backslashes\n",
			o->source);
		return EXIT_USAGE;
	}
	if (parse_paths(o, s->paths, &s->npaths) < 0)
		return EXIT_USAGE;
	s->mode = 0;
	if (o->mode && !strcmp(o->mode, "integrity")) {
		s->mode = FV_MODE_INTEGRITY;
	} else if (o->mode && !strcmp(o->mode, "encrypt")) {
		s->mode = FV_MODE_ENCRYPT;
	} else if (o->mode) {
		fprintf(stderr, "fabvault-fs: mode is integrity or encrypt, not '%s'\n", o->mode);
		return EXIT_USAGE;
	}
	s->timeout = 60;
	fs->attr_timeout = fs->entry_timeout = 1;
	fs->ra_slots = 8;
	fs->ahead_window = 8;
	fs->max_read = IO_MAX;
	s->threads = 16;
	if ((o->timeout && parse_secs("timeout", o->timeout, 1, 86400, &s->timeout) < 0) ||
	    (o->attr_timeout &&
	     parse_secs("attr_timeout", o->attr_timeout, 0, 86400, &fs->attr_timeout) < 0) ||
	    (o->entry_timeout &&
	     parse_secs("entry_timeout", o->entry_timeout, 0, 86400, &fs->entry_timeout) < 0))
		return EXIT_USAGE;
	if (o->readahead) {
		if (parse_int("readahead", o->readahead, 0, RA_MAX_SLOTS, &v) < 0)
			return EXIT_USAGE;
		fs->ra_slots = (int)v;
	}
	if (o->openahead) {
		if (parse_int("openahead", o->openahead, 0, AHEAD_MAX, &v) < 0)
			return EXIT_USAGE;
		fs->ahead_window = (int)v;
	}
	if (o->threads && parse_int("threads", o->threads, 1, 256, &s->threads) < 0)
		return EXIT_USAGE;
	s->poll_us = 0;
	if (o->poll_us && parse_int("poll_us", o->poll_us, 0, 1000000, &s->poll_us) < 0)
		return EXIT_USAGE;
	if (o->max_read) {
		if (parse_int("max_read", o->max_read, 4096, IO_MAX, &v) < 0)
			return EXIT_USAGE;
		fs->max_read = (uint32_t)v;
	}
	snprintf(s->mountopts, sizeof s->mountopts,
		 "ro,default_permissions,max_read=%u,fsname=%s,subtype=fabvault", fs->max_read, o->source);
	return 0;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct opts o = {0};
	struct fs fs = {0};
	struct setup s;
	struct fv_tp_node_key key;
	struct fv_tp_peers peers = {0};
	struct fuse_session *se = NULL;
	struct fuse_loop_config *cfg = NULL;
	struct fv_err e = {0};
	sigset_t sigs, old;
	int st = EXIT_ERROR, report = -1;

	memset(&s, 0, sizeof s);
	fv_log_init(&fs.lg, "fabvault-fs", LOG_NOTICE);
	pthread_mutex_init(&fs.amu, NULL);
	pthread_cond_init(&fs.acv, NULL);
	if (fuse_opt_parse(&args, &o, opt_spec, opt_proc) < 0) {
		st = EXIT_USAGE;
		goto out_args;
	}
	if (o.help) {
		fputs(usage_text, stdout);
		st = EXIT_OK;
		goto out_args;
	}
	if (o.version) {
		printf("fabvault-fs %s (FUSE %s)\n", FV_VERSION, fuse_pkgversion());
		st = EXIT_OK;
		goto out_args;
	}
	if (o.debug)
		fs.lg.max_prio = LOG_DEBUG;
	if ((st = parse_opts(&o, &fs, &s)) != 0)
		goto out_args;
	ahead_init(&fs);
	if (fuse_opt_add_arg(&args, "-o") < 0 || fuse_opt_add_arg(&args, s.mountopts) < 0) {
		st = EXIT_ERROR;
		goto out_args;
	}
	/* the options FUSE takes are checked now, before anything starts */
	se = fuse_session_new(&args, &ops, sizeof ops, &fs);
	if (!se) {
		fprintf(stderr, "fabvault-fs: bad mount options (see above); try 'fabvault-fs --help'\n");
		st = EXIT_USAGE;
		goto out_args;
	}
	if ((st = check_mountpoint(o.mountpoint, s.mp, sizeof s.mp)) != 0)
		goto out_destroy;
	if ((st = load_keys(o.conf_dir ? o.conf_dir : "/etc/fabvault", &key, &peers)) != 0)
		goto out_destroy;
	if (!o.foreground)
		report = daemon_start();

	/* the transport's threads take no signal: the main thread handles them */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);
	struct fv_tp_client_opts to = {.key = &key,
				       .peers = &peers,
				       .paths = s.paths,
				       .npaths = s.npaths,
				       .mode = s.mode,
				       .timeout_ms = (int)(s.timeout * 1000),
				       .poll_us = (int)s.poll_us,
				       .log = {tp_log, &fs}};
	int rc = fv_tp_client_open(&to, (int)(s.timeout * 1000), &fs.tp, &e);
	if (rc < 0) {
		fs_log(&fs, LOG_ERR, "%s: %s", o.source, e.msg);
		st = exit_for(rc);
		goto out_session;
	}
	if ((rc = fv_fsc_new(fs.tp, &fs.c)) < 0) {
		fs_log(&fs, LOG_ERR, "%s", strerror(-rc));
		st = EXIT_ERROR;
		goto out_client;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if ((st = check_root(&fs, o.source)) != 0)
		goto out_fsc;
	if (fuse_set_signal_handlers(se) != 0) {
		st = EXIT_ERROR;
		goto out_fsc;
	}
	if (fuse_session_mount(se, s.mp) != 0) {
		fs_log(&fs, LOG_ERR, "cannot mount %s at %s (see above)", o.source, s.mp);
		st = EXIT_ERROR;
		goto out_signals;
	}
	kernel_readahead(&fs, s.mp);
	fs_log(&fs, LOG_INFO, "mounted %s at %s over %zu path(s)", o.source, s.mp, s.npaths);
	if (chdir("/") < 0)
		fs_log(&fs, LOG_WARNING, "chdir /: %s", strerror(errno));
	daemon_report(&fs, report, EXIT_OK);
	report = -1;

	cfg = fuse_loop_cfg_create();
	if (!cfg) {
		st = EXIT_ERROR;
		goto out_unmount;
	}
	fuse_loop_cfg_set_max_threads(cfg, (unsigned)s.threads);
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	st = fuse_session_loop_mt(se, cfg) != 0 ? EXIT_ERROR : EXIT_OK;
	fuse_loop_cfg_destroy(cfg);
	fs_log(&fs, LOG_INFO, "unmounting %s", s.mp);
out_unmount:
	fuse_session_unmount(se);
	/* the kernel forgets nothing at unmount: give the server its nodes
	 * back while the transport is up */
	ahead_stop(&fs);
	size_t given = 0;
	int frc = fv_fsc_forget_all(fs.c, FORGET_AT_EXIT_MS, &given);
	if (frc < 0)
		fs_log(&fs, LOG_WARNING,
		       "could not give %zu nodes back to the server (%s): it keeps them until it restarts",
		       given, strerror(-frc));
	else
		fs_log(&fs, LOG_INFO, "gave %zu nodes back to the server", given);
out_signals:
	fuse_remove_signal_handlers(se);
out_fsc:
	fv_fsc_free(fs.c);
out_client:
	fv_tp_client_close(fs.tp);
out_session:
	daemon_report(&fs, report, (unsigned char)st);
	fv_tp_peers_free(&peers);
	explicit_bzero(&key, sizeof key);
out_destroy:
	fuse_session_destroy(se);
out_args:
	fuse_opt_free_args(&args);
	opts_free(&o);
	ahead_free_all(&fs); /* the transport is closed: no call completes any more */
	pthread_cond_destroy(&fs.acv);
	pthread_mutex_destroy(&fs.amu);
	return st;
}
