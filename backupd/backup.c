#include "backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "../common/fsutil.h"
#include "filescache.h"
#include "pipeline.h"

#define MAX_DEPTH 2048
#define READ_TRIES 3
/* Listings held back until the chunks they name are stored: at most this
 * many entries and chunk references in all, see defer_tree(). */
#define DEFER_WEIGHT 8192
/* Read size for files cut in fixed blocks (see store_region): a multiple of
 * every block size (at most 64 KiB), small enough to stay in the CPU cache. */
#define BLOCK_READ (1u << 20)

/* Hardlink groups: (dev, ino) of files with nlink > 1 → group number. */
struct hl_slot {
	uint64_t dev, ino, group;
};

/* A file read this run, to be recorded in the files cache once its chunk
 * ids are known (they come back from the pipeline's workers): when the
 * listings held back are stored, after a wait for the pipeline. */
struct fc_pending {
	const struct fv_node *n;
	char *path;
	struct stat st;
	uint32_t block;
};

/* A directory listing walked but not stored yet: its files' chunks may be
 * in flight. id is where its id goes, in its parent's entry (whose listing
 * is held back too, later in the queue) or the snapshot's root. */
struct tree_pending {
	struct fv_tree t;
	uint8_t *id;
	char *path; /* for messages */
};

/* A component of the source paths above the walked directories: "/opt/a"
 * and "/opt/b" share the vnode "opt". */
struct vnode {
	char *name;
	bool source; /* walk everything below (a source path) */
	struct vnode *kids;
	size_t nkids;
};

struct bctx {
	struct fv_repo *r;
	const struct fv_backup_opts *o;
	struct fv_err *e;
	uint8_t *buf; /* file read buffer: 2 * max chunk */
	size_t bufcap;
	struct hl_slot *hl;
	size_t nhl, hlcap;
	uint64_t next_group;
	struct fv_snap_stats st;
	struct fv_backup_progress prog;
	struct timespec last_prog;
	struct fv_fcache *fc; /* NULL: no files cache */
	struct fc_pending *fcp;
	size_t nfcp, fcpcap;
	struct fv_pipe *pipe;
	struct tree_pending *tp; /* listings held back, children before parents */
	size_t ntp, tpcap, tpweight;
	int64_t start_ns;
	struct fv_backup_counters cnt;
	char path[PATH_MAX * 2]; /* absolute path of the current entry */
	size_t pathlen;
};

static int64_t ts_ns(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void warn(struct bctx *c, const char *path, int code, const char *what)
{
	c->st.errors++;
	if (c->o->warn)
		c->o->warn(c->o->ud, path, code, what);
}

static void progress(struct bctx *c, bool force)
{
	if (!c->o->progress)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t dt = ts_ns(now) - ts_ns(c->last_prog);
	if (!force && dt < 200000000)
		return;
	c->last_prog = now;
	c->prog.path = c->path;
	c->o->progress(c->o->ud, &c->prog);
}

/* Append "/name" to c->path; returns the old length to restore. */
static size_t path_push(struct bctx *c, const char *name)
{
	size_t old = c->pathlen;
	size_t n = strlen(name);
	if (old + 1 + n + 1 > sizeof c->path)
		n = sizeof c->path - old - 2;
	if (!(old == 1 && c->path[0] == '/'))
		c->path[c->pathlen++] = '/';
	memcpy(c->path + c->pathlen, name, n);
	c->pathlen += n;
	c->path[c->pathlen] = 0;
	return old;
}

static void path_pop(struct bctx *c, size_t old)
{
	c->pathlen = old;
	c->path[old] = 0;
}

static bool excluded(const struct bctx *c, const char *name)
{
	for (size_t i = 0; i < c->o->nexcludes; i++) {
		const char *pat = c->o->excludes[i];
		if (strchr(pat, '/') ? fnmatch(pat, c->path, 0) == 0 : fnmatch(pat, name, 0) == 0)
			return true;
	}
	return false;
}

static int hl_group(struct bctx *c, const struct stat *st, uint64_t *group)
{
	if (c->nhl * 4 >= c->hlcap * 3) {
		size_t cap = c->hlcap ? c->hlcap * 2 : 256;
		struct hl_slot *n = calloc(cap, sizeof *n);
		if (!n)
			return -ENOMEM;
		for (size_t i = 0; i < c->hlcap; i++) {
			if (!c->hl[i].group)
				continue;
			size_t h = (c->hl[i].ino * 0x9e3779b97f4a7c15ull ^ c->hl[i].dev) & (cap - 1);
			while (n[h].group)
				h = (h + 1) & (cap - 1);
			n[h] = c->hl[i];
		}
		free(c->hl);
		c->hl = n;
		c->hlcap = cap;
	}
	uint64_t dev = st->st_dev, ino = st->st_ino;
	size_t h = (ino * 0x9e3779b97f4a7c15ull ^ dev) & (c->hlcap - 1);
	for (; c->hl[h].group; h = (h + 1) & (c->hlcap - 1)) {
		if (c->hl[h].dev == dev && c->hl[h].ino == ino) {
			*group = c->hl[h].group;
			return 0;
		}
	}
	c->hl[h].dev = dev;
	c->hl[h].ino = ino;
	c->hl[h].group = *group = ++c->next_group;
	c->nhl++;
	return 0;
}

static int xattr_cmp(const void *a, const void *b)
{
	return strcmp(((const struct fv_xattr *)a)->name, ((const struct fv_xattr *)b)->name);
}

/* Read the extended attributes of dfd/name without following a symlink. */
static int read_xattrs(int dfd, const char *name, struct fv_node *n)
{
	char p[PATH_MAX + 64], *list = NULL;
	int rc = 0;
	snprintf(p, sizeof p, "/proc/self/fd/%d/%s", dfd, name);
	ssize_t len = llistxattr(p, NULL, 0);
	if (len <= 0)
		return (len < 0 && errno != ENOTSUP && errno != ENODATA) ? -errno : 0;
	list = malloc((size_t)len + 1);
	if (!list)
		return -ENOMEM;
	len = llistxattr(p, list, (size_t)len);
	if (len < 0) {
		rc = -errno;
		goto out;
	}
	size_t cnt = 0;
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(list + i) + 1)
		cnt++;
	if (!cnt)
		goto out;
	n->xattrs = calloc(cnt, sizeof *n->xattrs);
	if (!n->xattrs) {
		rc = -ENOMEM;
		goto out;
	}
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(list + i) + 1) {
		const char *xn = list + i;
		if (!*xn || strlen(xn) > FV_XATTR_NAME_MAX)
			continue;
		ssize_t vl = lgetxattr(p, xn, NULL, 0);
		if (vl < 0 || vl > FV_XATTR_VALUE_MAX)
			continue; /* vanished, or larger than the format allows */
		struct fv_xattr *x = &n->xattrs[n->nxattrs];
		x->name = strdup(xn);
		x->value = malloc(vl ? (size_t)vl : 1);
		if (!x->name || !x->value) {
			free(x->name);
			free(x->value);
			rc = -ENOMEM;
			goto out;
		}
		vl = lgetxattr(p, xn, x->value, (size_t)vl);
		if (vl < 0) {
			free(x->name);
			free(x->value);
			continue;
		}
		x->value_len = (uint32_t)vl;
		n->nxattrs++;
	}
	if (n->nxattrs)
		qsort(n->xattrs, n->nxattrs, sizeof *n->xattrs, xattr_cmp);
out:
	free(list);
	return rc;
}

/* fv_pipe_stored_fn: chunk idx of node tag has id. The node is alive: its
 * directory's listing (held back, see defer_tree) waits for the pipeline
 * before it is stored or freed, and so does a file before its chunk list is
 * dropped; after a failure the pipeline is stopped (nothing more lands)
 * before listings are freed. */
static void chunk_stored(void *ud, void *tag, uint32_t idx, const uint8_t id[FV_ID_LEN])
{
	struct fv_node *n = tag;
	(void)ud;
	memcpy(n->chunks[idx].id, id, FV_ID_LEN);
}

static int add_chunk(struct fv_node *n, size_t *cap, uint64_t off, uint32_t len, const uint8_t id[FV_ID_LEN])
{
	if (n->nchunks == *cap) {
		size_t nc = *cap ? *cap * 2 : 4;
		struct fv_chunkref *v = realloc(n->chunks, nc * sizeof *v);
		if (!v)
			return -ENOMEM;
		n->chunks = v;
		*cap = nc;
	}
	struct fv_chunkref *cr = &n->chunks[n->nchunks++];
	cr->off = off;
	cr->len = len;
	memcpy(cr->id, id, FV_ID_LEN);
	return 0;
}

/* Chunk and store [off, end) of fd: content-defined, or (block > 0) in
 * blocks aligned to multiples of block in the file. */
static int store_region(struct bctx *c, int fd, uint64_t off, uint64_t end, uint32_t block, struct fv_node *n,
			size_t *cap)
{
	const struct fv_chunker *ch = fv_repo_chunker(c->r);
	/* c->buf[start..have) is unchunked data; pos is the file offset of
	 * c->buf[start]. The buffer holds two max-size chunks: the tail is moved
	 * to the front only when less than one max chunk is left, so each byte
	 * is moved at most once and rarely (not after every chunk).
	 * Fixed blocks need no look-ahead: they are read BLOCK_READ bytes at a
	 * time, into the start of the buffer, once the last block is cut, so that
	 * the bytes are still in the CPU's cache when they are copied into the
	 * pipeline (16 MiB reads had left them in memory only). */
	size_t start = 0, have = 0, max = ch->p.max;
	size_t need = block ? block : max; /* read when less is left */
	uint64_t pos = off;
	bool eof = false;
	int rc;
	while (!eof || have > start) {
		if (!eof && have - start < need) {
			if (start) {
				memmove(c->buf, c->buf + start, have - start);
				have -= start;
				start = 0;
			}
			size_t want = c->bufcap - have, got;
			if (block && want > BLOCK_READ)
				want = BLOCK_READ;
			if (want > end - (pos + have))
				want = (size_t)(end - (pos + have));
			rc = fv_pread_some(fd, c->buf + have, want, (off_t)(pos + have), &got);
			if (rc < 0)
				return fv_err_sys(c->e, rc, "cannot read %s", c->path);
			have += got;
			if (got < want || pos + have >= end)
				eof = true; /* a shrinking file ends early: caught by the stat check */
		}
		if (have == start)
			break;
		const uint8_t *d = c->buf + start;
		size_t avail = have - start, cut;
		if (block) {
			cut = block - (size_t)(pos % block);
			if (cut > avail)
				cut = eof ? avail : 0;
		} else {
			cut = fv_chunker_next(ch, d, avail, eof);
		}
		if (cut == 0)
			continue; /* need more data (only while !eof) */
		/* the id is filled in by chunk_stored() once a worker has it */
		static const uint8_t unknown[FV_ID_LEN];
		rc = add_chunk(n, cap, pos, (uint32_t)cut, unknown);
		if (rc < 0)
			return fv_err_set(c->e, rc, "out of memory");
		rc = fv_pipe_submit(c->pipe, d, cut, n, n->nchunks - 1, c->e);
		if (rc < 0)
			return rc;
		c->st.bytes += cut;
		c->prog.bytes += cut;
		c->cnt.read_bytes += cut;
		start += cut;
		pos += cut;
		progress(c, false);
	}
	return 0;
}

/* Read a regular file's data regions (holes skipped via SEEK_DATA/HOLE). */
static int store_file_once(struct bctx *c, int fd, uint64_t size, uint32_t block, struct fv_node *n)
{
	size_t cap = 0;
	uint64_t off = 0;
	while (off < size) {
		off_t d = lseek(fd, (off_t)off, SEEK_DATA);
		if (d < 0) {
			if (errno == ENXIO)
				break;  /* only a hole is left */
			d = (off_t)off; /* no hole support: all data */
		}
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || (uint64_t)h > size)
			h = (off_t)size;
		if ((uint64_t)d >= size)
			break;
		int rc = store_region(c, fd, (uint64_t)d, (uint64_t)h, block, n, &cap);
		if (rc < 0)
			return rc;
		off = (uint64_t)h;
	}
	return 0;
}

static void node_from_stat(struct fv_node *n, const struct stat *st)
{
	n->mode = st->st_mode & 07777;
	n->uid = st->st_uid;
	n->gid = st->st_gid;
	n->nlink = (uint32_t)st->st_nlink;
	n->mtime_ns = ts_ns(st->st_mtim);
	n->ctime_ns = ts_ns(st->st_ctim);
	if (S_ISREG(st->st_mode))
		n->type = FV_FT_REG;
	else if (S_ISDIR(st->st_mode))
		n->type = FV_FT_DIR;
	else if (S_ISLNK(st->st_mode))
		n->type = FV_FT_LNK;
	else if (S_ISCHR(st->st_mode))
		n->type = FV_FT_CHR;
	else if (S_ISBLK(st->st_mode))
		n->type = FV_FT_BLK;
	else if (S_ISFIFO(st->st_mode))
		n->type = FV_FT_FIFO;
	else
		n->type = FV_FT_SOCK;
	if (n->type == FV_FT_CHR || n->type == FV_FT_BLK)
		n->rdev = st->st_rdev;
	if (n->type != FV_FT_DIR)
		n->size = (uint64_t)st->st_size;
}

/* The chunking policy of a file (docs/repository-format.md, "Chunking
 * policy"): fixed blocks for files updated in place in scattered pages, so
 * that a day's scattered updates cost only the blocks they touch; 0 (content-
 * defined) for everything else. */
static uint32_t choose_block(struct bctx *c, int fd, const char *name, const struct stat *st)
{
	uint8_t h[18];
	if (st->st_size < (1 << 20))
		return 0; /* one or two chunks whatever the policy */
	if (fv_pread_full(fd, h, sizeof h, 0) == 0 && memcmp(h, "SQLite format 3", 16) == 0) {
		/* the page size, big-endian at offset 16; 1 means 65536 */
		uint32_t page = (uint32_t)h[16] << 8 | h[17];
		if (page == 1)
			page = 65536;
		if (page >= 512 && page <= 65536 && !(page & (page - 1)))
			return page > FV_FCACHE_BLOCK ? page : FV_FCACHE_BLOCK;
	}
	/* HNSW segments (hnswlib, as ChromaDB stores them): fixed-size element
	 * records rewritten in place */
	if (!strcmp(name, "data_level0.bin") || !strcmp(name, "link_lists.bin"))
		return FV_FCACHE_BLOCK;
	return c->fc ? fv_fcache_block_hint(c->fc, c->path, st) : 0;
}

static int fcache_defer(struct bctx *c, const struct fv_node *n, const struct stat *st, uint32_t block)
{
	if (c->nfcp == c->fcpcap) {
		size_t cap = c->fcpcap ? 2 * c->fcpcap : 64;
		struct fc_pending *v = realloc(c->fcp, cap * sizeof *v);
		if (!v)
			return fv_err_set(c->e, -ENOMEM, "out of memory (files cache)");
		c->fcp = v;
		c->fcpcap = cap;
	}
	struct fc_pending *p = &c->fcp[c->nfcp];
	if (!(p->path = strdup(c->path)))
		return fv_err_set(c->e, -ENOMEM, "out of memory (files cache)");
	p->n = n;
	p->st = *st;
	p->block = block;
	c->nfcp++;
	return 0;
}

static void fcache_pending_clear(struct bctx *c)
{
	for (size_t i = 0; i < c->nfcp; i++)
		free(c->fcp[i].path);
	c->nfcp = 0;
}

/* Record the files read in the directory being finished (the pipeline has
 * been waited for: their chunk ids are known). */
static int fcache_flush(struct bctx *c)
{
	int rc = 0;
	for (size_t i = 0; i < c->nfcp && rc == 0; i++) {
		const struct fc_pending *p = &c->fcp[i];
		if (fv_fcache_put(c->fc, p->path, &p->st, p->n->chunks, p->n->nchunks, p->block,
				  c->start_ns) < 0)
			rc = fv_err_set(c->e, -ENOMEM, "out of memory (files cache)");
	}
	fcache_pending_clear(c);
	return rc;
}

/* Store a regular file: re-read when it changed while being read. Returns
 * 0, 1 (skipped with a warning), or a negative fatal code. */
static int store_file(struct bctx *c, int dfd, const char *name, struct fv_node *n, struct stat *st)
{
	if (c->fc && fv_fcache_lookup(c->fc, c->path, st, &n->chunks, &n->nchunks)) {
		/* unchanged since a snapshot that read it: not read again */
		for (uint32_t i = 0; i < n->nchunks; i++) {
			c->st.bytes += n->chunks[i].len;
			c->prog.bytes += n->chunks[i].len;
		}
		c->cnt.cached_files++;
		progress(c, false);
		return 0;
	}
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		warn(c, c->path, -errno, "cannot open file, skipped");
		return 1;
	}
	int rc = 0;
	uint32_t block = choose_block(c, fd, name, st);
	for (int attempt = 1;; attempt++) {
		struct stat after;
		if (attempt > 1 && (rc = fv_pipe_wait(c->pipe, c->e)) < 0)
			break; /* chunks of the last attempt must land before their list goes */
		free(n->chunks);
		n->chunks = NULL;
		n->nchunks = 0;
		if (fstat(fd, st) < 0) {
			rc = -errno;
			break;
		}
		node_from_stat(n, st);
		rc = store_file_once(c, fd, (uint64_t)st->st_size, block, n);
		if (rc < 0)
			break;
		if (fstat(fd, &after) < 0) {
			rc = -errno;
			break;
		}
		if (after.st_size == st->st_size && ts_ns(after.st_mtim) == ts_ns(st->st_mtim) &&
		    ts_ns(after.st_ctim) == ts_ns(st->st_ctim)) {
			if (c->fc)
				rc = fcache_defer(c, n, st, block);
			break;
		}
		if (attempt == READ_TRIES) {
			n->flags |= FV_NODE_INCONSISTENT;
			if (c->o->warn)
				c->o->warn(c->o->ud, c->path, 0,
					   "file changed while being read (3 tries); stored as inconsistent");
			break;
		}
	}
	close(fd);
	if ((rc == -EIO || rc == -EACCES) && !fv_pipe_error(c->pipe)) {
		/* a read error (a failure to store is fatal): the caller frees n,
		 * so the chunks in flight for it must land first */
		int wrc = fv_pipe_wait(c->pipe, c->e);
		if (wrc < 0)
			return wrc;
		warn(c, c->path, rc, "cannot read file, skipped");
		return 1;
	}
	return rc;
}

static int store_dir(struct bctx *c, int dfd, uint8_t id[FV_ID_LEN], int depth, dev_t dev);

/* Fill n for dfd/name (already lstat'ed as st). Returns 0, 1 (skip the entry,
 * warned), or a negative fatal code. */
static int make_node(struct bctx *c, int dfd, const char *name, struct stat *st, struct fv_node *n, int depth,
		     dev_t dev)
{
	int rc;
	if (!(n->name = strdup(name)))
		return fv_err_set(c->e, -ENOMEM, "out of memory");
	node_from_stat(n, st);
	rc = read_xattrs(dfd, name, n);
	if (rc == -ENOMEM)
		return fv_err_set(c->e, rc, "out of memory");
	if (rc < 0)
		warn(c, c->path, rc, "cannot read extended attributes");
	switch (n->type) {
	case FV_FT_REG:
		if (st->st_nlink > 1) {
			rc = hl_group(c, st, &n->hlink);
			if (rc < 0)
				return fv_err_set(c->e, rc, "out of memory");
		}
		rc = store_file(c, dfd, name, n, st);
		if (rc != 0)
			return rc;
		c->st.files++;
		c->prog.files++;
		return 0;
	case FV_FT_DIR: {
		if (depth >= MAX_DEPTH)
			return fv_err_set(c->e, -ELOOP, "%s: directories nested deeper than %d levels",
					  c->path, MAX_DEPTH);
		int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			warn(c, c->path, -errno, "cannot open directory, skipped");
			return 1;
		}
		if (c->o->one_file_system && st->st_dev != dev) {
			close(sub);
			sub = -1;
		}
		rc = store_dir(c, sub, n->subtree, depth + 1, st->st_dev);
		if (sub >= 0)
			close(sub);
		if (rc != 0)
			return rc;
		c->st.dirs++;
		return 0;
	}
	case FV_FT_LNK: {
		char t[FV_LINK_MAX + 1];
		ssize_t l = readlinkat(dfd, name, t, sizeof t);
		if (l <= 0 || l > FV_LINK_MAX) {
			warn(c, c->path, l < 0 ? -errno : -ENAMETOOLONG, "cannot read symlink, skipped");
			return 1;
		}
		t[l] = 0;
		if (!(n->target = strdup(t)))
			return fv_err_set(c->e, -ENOMEM, "out of memory");
		n->size = (uint64_t)l;
		c->st.others++;
		return 0;
	}
	default:
		if (n->type != FV_FT_CHR && n->type != FV_FT_BLK)
			n->size = 0;
		c->st.others++;
		return 0;
	}
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Wait until every chunk submitted is stored and its id is in its node, and
 * record the files read meanwhile in the files cache. Before a listing is
 * encoded (it names the ids), and before its nodes move (chunk_stored finds
 * a node by its address). */
static int settle(struct bctx *c)
{
	int rc = fv_pipe_wait(c->pipe, c->e);
	return rc < 0 ? rc : fcache_flush(c);
}

/* Encode and store listing t, whose chunks are all stored; fills id. path
 * names it in messages. */
static int put_tree(struct bctx *c, struct fv_tree *t, const char *path, uint8_t id[FV_ID_LEN])
{
	struct fv_buf b = {0};
	int rc = fv_tree_encode(t, &b);
	if (rc < 0) {
		fv_buf_free(&b);
		return fv_err_set(c->e, rc, "%s: cannot encode directory listing", path);
	}
	rc = fv_pipe_put_now(c->pipe, FV_OBJ_TREE, b.data, b.len, id, c->e);
	fv_buf_free(&b);
	return rc;
}

static void trees_pending_clear(struct bctx *c)
{
	for (size_t i = 0; i < c->ntp; i++) {
		fv_tree_free(&c->tp[i].t);
		free(c->tp[i].path);
	}
	c->ntp = 0;
	c->tpweight = 0;
}

/* Store every listing held back: wait for the chunks in flight once, then
 * store the listings in the order they were walked (a directory's after its
 * subdirectories', whose ids it names). */
static int trees_flush(struct bctx *c)
{
	int rc = settle(c);
	for (size_t i = 0; i < c->ntp && rc == 0; i++)
		rc = put_tree(c, &c->tp[i].t, c->tp[i].path, c->tp[i].id);
	trees_pending_clear(c);
	return rc;
}

/* Store directory listing t (taken over: t is left empty) into id, later:
 * the walk goes on while its files' chunks are in flight, instead of waiting
 * for them at the end of every directory, which left the workers idle while
 * the walker read the next directory, and the walker idle while they
 * finished the last one. id must stay where it is until trees_flush(): it
 * is in the parent's entry, which does not move (a listing's entries are
 * allocated once), or the snapshot's root. The listings held back, and the
 * files cache records of their files, are bounded by DEFER_WEIGHT (entries
 * and chunk references); beyond it they are all stored now. */
static int defer_tree(struct bctx *c, struct fv_tree *t, uint8_t id[FV_ID_LEN])
{
	if (c->ntp == c->tpcap) {
		size_t cap = c->tpcap ? 2 * c->tpcap : 64;
		struct tree_pending *v = realloc(c->tp, cap * sizeof *v);
		if (!v)
			return fv_err_set(c->e, -ENOMEM, "out of memory");
		c->tp = v;
		c->tpcap = cap;
	}
	struct tree_pending *p = &c->tp[c->ntp];
	if (!(p->path = strdup(c->path)))
		return fv_err_set(c->e, -ENOMEM, "out of memory");
	p->t = *t;
	p->id = id;
	memset(t, 0, sizeof *t);
	c->ntp++;
	c->tpweight += 1 + p->t.n;
	for (size_t i = 0; i < p->t.n; i++)
		c->tpweight += p->t.nodes[i].nchunks;
	return c->tpweight > DEFER_WEIGHT ? trees_flush(c) : 0;
}

/* Store the tree of an open directory (dfd < 0: an empty directory, e.g. a
 * mount point skipped by one_file_system). */
static int store_dir(struct bctx *c, int dfd, uint8_t id[FV_ID_LEN], int depth, dev_t dev)
{
	struct fv_tree t = {0};
	char **names = NULL;
	size_t n = 0;
	int rc = 0;

	if (dfd >= 0) {
		int lerr;
		rc = fv_dir_names(dfd, NULL, 0, &names, &n, &lerr);
		if (rc < 0)
			return fv_err_sys(c->e, rc, "cannot read directory %s", c->path);
		if (lerr)
			warn(c, c->path, lerr, "error while listing directory; listing may be incomplete");
		if (n)
			qsort(names, n, sizeof *names, name_cmp);
	}
	t.nodes = calloc(n ? n : 1, sizeof *t.nodes);
	if (!t.nodes) {
		rc = fv_err_set(c->e, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t old = path_push(c, names[i]);
		struct stat st;
		if (!fv_tree_name_valid(names[i], strlen(names[i]))) {
			warn(c, c->path, -EINVAL, "name not storable, skipped");
		} else if (excluded(c, names[i])) {
			/* excluded: not stored, not an error */
		} else if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			warn(c, c->path, -errno, "cannot stat, skipped");
		} else {
			struct fv_node *nd = &t.nodes[t.n];
			rc = make_node(c, dfd, names[i], &st, nd, depth, dev);
			if (rc == 0)
				t.n++;
			else
				fv_node_free(nd);
			if (rc == 1)
				rc = 0;
		}
		path_pop(c, old);
		if (rc < 0)
			goto out;
	}
	rc = defer_tree(c, &t, id);
out:
	fv_tree_free(&t);
	fv_names_free(names, n);
	return rc;
}

/* ---- the virtual tree of source path ancestors ---- */

static void vnode_free(struct vnode *v)
{
	for (size_t i = 0; i < v->nkids; i++)
		vnode_free(&v->kids[i]);
	free(v->kids);
	free(v->name);
}

static int vnode_add(struct vnode *root, const char *abs)
{
	struct vnode *v = root;
	const char *p = abs;
	while (*p == '/')
		p++;
	if (!*p) {
		root->source = true; /* backing up "/" */
		return 0;
	}
	while (*p) {
		const char *s = strchr(p, '/');
		size_t len = s ? (size_t)(s - p) : strlen(p);
		struct vnode *k = NULL;
		for (size_t i = 0; i < v->nkids; i++)
			if (strlen(v->kids[i].name) == len && !memcmp(v->kids[i].name, p, len))
				k = &v->kids[i];
		if (!k) {
			struct vnode *nk = realloc(v->kids, (v->nkids + 1) * sizeof *nk);
			if (!nk)
				return -ENOMEM;
			v->kids = nk;
			k = &v->kids[v->nkids++];
			memset(k, 0, sizeof *k);
			if (!(k->name = strndup(p, len)))
				return -ENOMEM;
		}
		v = k;
		p += len;
		while (*p == '/')
			p++;
	}
	v->source = true;
	return 0;
}

/* Store the ancestors tree: for vnode v (an existing directory open as dfd),
 * a tree holding only its vnode children. */
static int store_vdir(struct bctx *c, int dfd, const struct vnode *v, uint8_t id[FV_ID_LEN])
{
	struct fv_tree t = {0};
	int rc = 0;
	t.nodes = calloc(v->nkids ? v->nkids : 1, sizeof *t.nodes);
	if (!t.nodes)
		return fv_err_set(c->e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < v->nkids && rc == 0; i++) {
		const struct vnode *k = &v->kids[i];
		struct fv_node *nd = &t.nodes[t.n];
		struct stat st;
		size_t old = path_push(c, k->name);
		if (fstatat(dfd, k->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = fv_err_sys(c->e, -errno, "cannot stat source path %s", c->path);
		} else if (k->source) {
			rc = make_node(c, dfd, k->name, &st, nd, 0, st.st_dev);
			if (rc == 1)
				rc = fv_err_set(c->e, -EACCES, "cannot read source path %s", c->path);
			else if (rc == 0)
				t.n++;
		} else {
			/* an ancestor: its metadata, and only the kids that lead to sources */
			int sub = openat(dfd, k->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (sub < 0) {
				rc = fv_err_sys(c->e, -errno, "cannot open %s", c->path);
			} else {
				if (!(nd->name = strdup(k->name))) {
					rc = fv_err_set(c->e, -ENOMEM, "out of memory");
				} else {
					node_from_stat(nd, &st);
					rc = store_vdir(c, sub, k, nd->subtree);
					if (rc == 0)
						t.n++;
				}
				close(sub);
			}
		}
		if (rc != 0)
			fv_node_free(nd);
		path_pop(c, old);
	}
	/* the sort moves entries: the listings held back, which point into
	 * them, and the chunks in flight, which land by address, go first */
	if (rc == 0)
		rc = trees_flush(c);
	if (rc == 0) {
		fv_tree_sort(&t);
		rc = put_tree(c, &t, c->path, id);
	}
	fv_tree_free(&t);
	return rc;
}

/* ---- the counting pass (totals for progress and ETA) ---- */

static void count_dir(struct bctx *c, int dfd, int depth)
{
	int dup_fd = dup(dfd);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode)) {
			c->prog.total_files++;
			c->prog.total_bytes += (uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size
						       ? (uint64_t)st.st_blocks * 512
						       : (uint64_t)st.st_size;
		} else if (S_ISDIR(st.st_mode) && depth < MAX_DEPTH) {
			int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				count_dir(c, sub, depth + 1);
				close(sub);
			}
		}
	}
	closedir(d);
}

static void count_sources(struct bctx *c, char **abs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (lstat(abs[i], &st) < 0)
			continue;
		if (S_ISREG(st.st_mode)) {
			c->prog.total_files++;
			c->prog.total_bytes += (uint64_t)st.st_size;
		} else if (S_ISDIR(st.st_mode)) {
			int fd = open(abs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd >= 0) {
				count_dir(c, fd, 0);
				close(fd);
			}
		}
	}
}

static char *user_name(void)
{
	struct passwd pw, *res = NULL;
	char buf[1024], num[32];
	if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &res) == 0 && res)
		return strdup(pw.pw_name);
	snprintf(num, sizeof num, "%u", (unsigned)geteuid());
	return strdup(num);
}

/* Drop sources that lie inside another source (they are walked anyway). */
static bool covered(char **abs, size_t n, size_t i)
{
	for (size_t j = 0; j < n; j++) {
		if (j == i)
			continue;
		size_t l = strlen(abs[j]);
		if (strcmp(abs[j], abs[i]) == 0)
			return j < i; /* a duplicate: keep the first */
		if (strncmp(abs[j], abs[i], l) == 0 && (abs[i][l] == '/' || (l == 1 && abs[j][0] == '/')))
			return true;
	}
	return false;
}

int fv_backup_run(struct fv_repo *r, const struct fv_backup_opts *o, struct fv_snapshot *out,
		  struct fv_err *e)
{
	struct bctx c = {.r = r, .o = o, .e = e};
	struct vnode root = {0};
	char **abs = NULL;
	struct fv_repo_stats before, after;
	struct timespec t0;
	int rc = 0, rootfd = -1;

	memset(out, 0, sizeof *out);
	clock_gettime(CLOCK_REALTIME, &t0);
	c.start_ns = ts_ns(t0);
	fv_repo_stats(r, &before);
	if (o->npaths == 0)
		return fv_err_set(e, -EINVAL, "no source path given");
	/* refuse before any work what the snapshot could not record */
	if (o->npaths > FV_SNAP_PATHS_MAX || o->ntags > FV_SNAP_TAGS_MAX)
		return fv_err_set(e, -EINVAL, "at most %d source paths and %d tags per snapshot",
				  FV_SNAP_PATHS_MAX, FV_SNAP_TAGS_MAX);
	for (size_t i = 0; i < o->ntags; i++)
		if (!o->tags[i][0] || strlen(o->tags[i]) > 255)
			return fv_err_set(e, -EINVAL, "tag '%s': a tag has 1 to 255 bytes", o->tags[i]);
	abs = calloc(o->npaths, sizeof *abs);
	if (!abs)
		return fv_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < o->npaths; i++) {
		/* resolve the path itself without following a final symlink */
		struct stat st;
		char *dir = NULL, *base, *tmp = strdup(o->paths[i]);
		if (!tmp) {
			rc = fv_err_set(e, -ENOMEM, "out of memory");
			goto out;
		}
		if (lstat(o->paths[i], &st) < 0) {
			rc = fv_err_sys(e, -errno, "source path %s", o->paths[i]);
			free(tmp);
			goto out;
		}
		abs[i] = realpath(o->paths[i], NULL);
		if (S_ISLNK(st.st_mode)) {
			/* keep the link itself: resolve its parent only */
			free(abs[i]);
			base = strrchr(tmp, '/');
			if (base) {
				*base = 0;
				dir = realpath(*tmp ? tmp : "/", NULL);
				base++;
			} else {
				dir = realpath(".", NULL);
				base = tmp;
			}
			abs[i] = NULL;
			if (dir && asprintf(&abs[i], "%s/%s", strcmp(dir, "/") ? dir : "", base) < 0)
				abs[i] = NULL;
			free(dir);
		}
		free(tmp);
		if (abs[i] && strlen(abs[i]) > FV_SNAP_PATH_MAX) {
			rc = fv_err_set(e, -ENAMETOOLONG, "source path %s is too long", o->paths[i]);
			goto out;
		}
		if (!abs[i]) {
			rc = fv_err_sys(e, -errno ? -errno : -ENOMEM, "cannot resolve source path %s",
					o->paths[i]);
			goto out;
		}
	}
	for (size_t i = 0; i < o->npaths; i++) {
		if (!covered(abs, o->npaths, i) && vnode_add(&root, abs[i]) < 0) {
			rc = fv_err_set(e, -ENOMEM, "out of memory");
			goto out;
		}
	}
	const struct fv_chunker *ch = fv_repo_chunker(r);
	c.bufcap = 2 * (size_t)ch->p.max;
	c.buf = malloc(c.bufcap);
	if (!c.buf) {
		rc = fv_err_set(e, -ENOMEM, "out of memory (read buffer)");
		goto out;
	}
	if (o->count_first && o->progress)
		count_sources(&c, abs, o->npaths);
	if (o->cache_dir) {
		const char *note;
		rc = fv_fcache_open(r, o->cache_dir, &c.fc, &note, e);
		if (rc < 0)
			goto out;
		if (note && o->warn)
			o->warn(o->ud, o->cache_dir, 0, note);
	}
	unsigned nthreads = o->threads;
	if (nthreads == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		nthreads = cpus < 1 ? 1 : cpus > FV_PIPE_WORKERS_MAX ? FV_PIPE_WORKERS_MAX : (unsigned)cpus;
	}
	rc = fv_pipe_start(r, nthreads, chunk_stored, &c, &c.pipe, e);
	if (rc < 0)
		goto out;
	rootfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		rc = fv_err_sys(e, -errno, "cannot open /");
		goto out;
	}
	c.path[0] = '/';
	c.path[1] = 0;
	c.pathlen = 1;
	if (root.source) {
		struct stat st;
		if (fstat(rootfd, &st) < 0) {
			rc = fv_err_sys(e, -errno, "cannot stat /");
			goto out;
		}
		rc = store_dir(&c, rootfd, out->root, 0, st.st_dev);
		if (rc == 0)
			rc = trees_flush(&c);
	} else {
		rc = store_vdir(&c, rootfd, &root, out->root);
	}
	if (rc < 0)
		goto out;
	/* every chunk and listing is appended (the root's waited for them): no thread
	 * but this one uses the repository from here on */
	fv_pipe_stop(c.pipe);
	c.pipe = NULL;
	progress(&c, true);

	/* the snapshot */
	char host[256] = "";
	if (o->host)
		snprintf(host, sizeof host, "%s", o->host);
	else if (gethostname(host, sizeof host - 1) < 0)
		strcpy(host, "unknown");
	out->time_ns = ts_ns(t0);
	out->host = strdup(host);
	out->user = user_name();
	out->version = strdup(FV_VERSION);
	out->paths = calloc(o->npaths, sizeof *out->paths);
	out->tags = calloc(o->ntags ? o->ntags : 1, sizeof *out->tags);
	if (!out->host || !out->user || !out->version || !out->paths || !out->tags) {
		rc = fv_err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < o->npaths; i++) {
		out->paths[out->npaths] = abs[i];
		abs[i] = NULL;
		out->npaths++;
	}
	for (size_t i = 0; i < o->ntags; i++) {
		if (!(out->tags[out->ntags] = strdup(o->tags[i]))) {
			rc = fv_err_set(e, -ENOMEM, "out of memory");
			goto out;
		}
		out->ntags++;
	}
	fv_repo_stats(r, &after);
	c.st.new_chunks = after.new_blobs - before.new_blobs;
	c.st.new_bytes = after.new_bytes - before.new_bytes;
	c.st.stored_bytes = after.stored_bytes - before.stored_bytes;
	out->stats = c.st;
	if (c.st.errors)
		out->flags |= FV_SNAP_PARTIAL;
	struct timespec t1;
	clock_gettime(CLOCK_REALTIME, &t1);
	out->end_ns = ts_ns(t1);
	rc = fv_repo_snapshot_save(r, out, e);
	if (rc == 0 && c.fc) {
		/* after the save: every chunk the cache names is committed */
		struct fv_err ce = {0};
		if (fv_fcache_save(c.fc, &ce) < 0 && o->warn)
			o->warn(o->ud, o->cache_dir, 0, ce.msg);
	}
	if (o->counters)
		*o->counters = c.cnt;
out:
	/* after a failure: workers stop, chunks in flight are dropped */
	fv_pipe_stop(c.pipe);
	trees_pending_clear(&c);
	free(c.tp);
	fcache_pending_clear(&c);
	free(c.fcp);
	fv_fcache_close(c.fc);
	if (rc < 0)
		fv_snapshot_free(out);
	if (rootfd >= 0)
		close(rootfd);
	for (size_t i = 0; abs && i < o->npaths; i++)
		free(abs[i]);
	free(abs);
	vnode_free(&root);
	free(c.buf);
	free(c.hl);
	return rc;
}
