#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "reader.h"
#include "repo_internal.h"
#include "workq.h"

/* A set of 32-byte ids (open addressing). */
struct idset {
	uint8_t (*v)[FV_ID_LEN];
	uint8_t *used;
	size_t n, cap;
};

static bool idset_has(const struct idset *s, const uint8_t id[FV_ID_LEN])
{
	if (!s->cap)
		return false;
	for (size_t h = fv_get_le64(id) & (s->cap - 1); s->used[h]; h = (h + 1) & (s->cap - 1))
		if (!memcmp(s->v[h], id, FV_ID_LEN))
			return true;
	return false;
}

static int idset_add(struct idset *s, const uint8_t id[FV_ID_LEN])
{
	if (idset_has(s, id))
		return 0;
	if ((s->n + 1) * 4 > s->cap * 3) {
		struct idset ns = {0};
		ns.cap = s->cap ? s->cap * 2 : 1024;
		ns.v = malloc(ns.cap * FV_ID_LEN);
		ns.used = calloc(ns.cap, 1);
		if (!ns.v || !ns.used) {
			free(ns.v);
			free(ns.used);
			return -ENOMEM;
		}
		for (size_t i = 0; i < s->cap; i++)
			if (s->used[i])
				idset_add(&ns, s->v[i]);
		free(s->v);
		free(s->used);
		*s = ns;
	}
	size_t h = fv_get_le64(id) & (s->cap - 1);
	while (s->used[h])
		h = (h + 1) & (s->cap - 1);
	memcpy(s->v[h], id, FV_ID_LEN);
	s->used[h] = 1;
	s->n++;
	return 0;
}

static void idset_free(struct idset *s)
{
	free(s->v);
	free(s->used);
	memset(s, 0, sizeof *s);
}

struct cctx {
	struct fv_repo *r;
	const struct fv_check_opts *o;
	struct fv_check_result *res;
	struct fv_err *e;
	struct idset damaged; /* blobs known damaged or missing */
	struct idset clean;   /* trees whose whole subtree checked clean */
	const char *cur_pack; /* for scan callbacks */
	struct fv_pack_entry *cur_toc;
	uint32_t cur_ntoc;
	uint32_t cur_num;
	bool cur_has_num;
	uint64_t cur_broken; /* offset where the frame walk lost its way, or UINT64_MAX */
	bool index_damaged;  /* an index file could not be read */
	char snapdesc[96];
	char path[8192];
	size_t pathlen;
};

__attribute__((format(printf, 3, 4))) static void report(struct cctx *c, bool is_error, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (is_error)
		c->res->errors++;
	else
		c->res->warnings++;
	if (c->o->problem)
		c->o->problem(c->o->ud, is_error, msg);
}

static void progress(struct cctx *c, const char *phase, uint64_t done, uint64_t total)
{
	if (c->o->progress)
		c->o->progress(c->o->ud, phase, done, total);
}

/* ---- index files ---- */

/* The full id of index entry ie. The check loads the index itself and never
 * settles it (fv_index_settle), so every entry still has its full id. */
static const uint8_t *entry_id(const struct cctx *c, const struct fv_index_entry *ie)
{
	return fv_index_id(&c->r->idx, (size_t)(ie - c->r->idx.e));
}

static int check_index_files(struct cctx *c)
{
	char **names = NULL;
	size_t n = 0;
	struct fv_err le = {0};
	int rc = fv_repo_list(c->r, "index", &names, &n, c->e);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		uint8_t *pt = NULL, id[FV_ID_LEN];
		size_t len;
		c->res->index_files++;
		rc = fv_repo_obj_read(c->r, "index", names[i], INDEX_MAGIC, FV_OBJ_INDEX, &pt, &len, id, &le);
		if (rc == -ENOMEM)
			break;
		if (rc < 0) {
			c->index_damaged = true;
			report(c, true, "%s; the blobs it names may be reported missing below", le.msg);
			rc = 0;
			continue;
		}
		rc = fv_index_decode(&c->r->idx, pt, len);
		free(pt);
		if (rc == -ENOMEM)
			break;
		if (rc < 0) {
			c->index_damaged = true;
			report(c, true, "index/%s is malformed", names[i]);
			rc = 0;
		}
	}
	fv_repo_names_free(names, n);
	if (rc == -ENOMEM)
		return fv_err_set(c->e, rc, "out of memory loading the index");
	return 0;
}

/* ---- packs ---- */

static void mark_damaged_from(struct cctx *c, uint64_t off, uint64_t end)
{
	/* blobs of the current pack whose frame overlaps [off, end) */
	for (uint32_t i = 0; i < c->cur_ntoc; i++) {
		const struct fv_pack_entry *pe = &c->cur_toc[i];
		if ((uint64_t)pe->off + pe->len > off && pe->off < end)
			idset_add(&c->damaged, pe->id);
	}
	if (c->cur_has_num) {
		for (size_t i = 0; i < c->r->idx.n; i++) {
			const struct fv_index_entry *ie = &c->r->idx.e[i];
			if (fv_index_pack(ie) == c->cur_num && (uint64_t)ie->off + ie->len > off &&
			    ie->off < end)
				idset_add(&c->damaged, entry_id(c, ie));
		}
	}
}

/* Damage in a pack no index names affects no snapshot: a warning. */
static void scan_bad(void *ud, uint64_t off, const char *why)
{
	struct cctx *c = ud;
	report(c, c->cur_has_num, "%s: %s at offset %llu", c->cur_pack, why, (unsigned long long)off);
	if (strstr(why, "trailer"))
		c->cur_broken = 0; /* no trusted structure at all: check blob by blob */
	else if (strstr(why, "checksum mismatch (the frames")) {
		mark_damaged_from(c, off, off + 1);
		c->cur_broken = off < c->cur_broken ? off : c->cur_broken;
	} else if (strstr(why, "length") || strstr(why, "do not end"))
		c->cur_broken = off < c->cur_broken ? off : c->cur_broken;
	else
		mark_damaged_from(c, off, off + 1);
}

/* After the frame walk lost its way at c->cur_broken, check every blob at or
 * after it on its own, at the place the TOC (or else the index) gives: one
 * bad length field then costs one blob, not the rest of the pack. */
/* Check one blob frame on its own; returns -ENOMEM or 0 (damage is reported). */
static int check_blob(struct cctx *c, int fd, struct fv_buf *fr, uint32_t off, uint32_t len,
		      const uint8_t id[FV_ID_LEN])
{
	if ((uint64_t)off + len <= c->cur_broken || idset_has(&c->damaged, id))
		return 0;
	int rc = fv_pack_read_frame(fd, off, len, fr, NULL, NULL);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		char hex[2 * FV_ID_LEN + 1];
		fv_hex(id, FV_ID_LEN, hex);
		report(c, c->cur_has_num, "%s: blob %.16s at offset %u is damaged", c->cur_pack, hex, off);
		idset_add(&c->damaged, id);
	}
	return 0;
}

static int check_after_break(struct cctx *c, int fd)
{
	struct fv_buf fr = {0};
	int rc = 0;
	for (uint32_t i = 0; i < c->cur_ntoc && rc == 0; i++)
		rc = check_blob(c, fd, &fr, c->cur_toc[i].off, c->cur_toc[i].len, c->cur_toc[i].id);
	/* no readable TOC: the index knows where this pack's blobs are */
	for (size_t i = 0; !c->cur_toc && c->cur_has_num && i < c->r->idx.n && rc == 0; i++) {
		const struct fv_index_entry *ie = &c->r->idx.e[i];
		if (fv_index_pack(ie) == c->cur_num)
			rc = check_blob(c, fd, &fr, ie->off, ie->len, entry_id(c, ie));
	}
	fv_buf_free(&fr);
	return rc;
}

static int toc_cmp(const void *a, const void *b)
{
	const struct fv_pack_entry *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

static const struct fv_pack_entry *toc_find(const struct cctx *c, uint32_t off)
{
	size_t lo = 0, hi = c->cur_ntoc;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c->cur_toc[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->cur_ntoc && c->cur_toc[lo].off == off ? &c->cur_toc[lo] : NULL;
}

static int check_one_pack(struct cctx *c, const char *rel, const uint8_t packid[FV_PACK_ID_LEN],
			  uint8_t *seen)
{
	struct stat st;
	int rc = 0;
	int fd = openat(c->r->fd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		report(c, true, "%s: cannot read: %s", rel, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 0;
	}
	c->res->packs++;
	c->cur_pack = rel;
	c->cur_toc = NULL;
	c->cur_ntoc = 0;
	c->cur_has_num = false;
	c->cur_broken = UINT64_MAX;
	/* the pack's number in the index, if the index names it */
	for (uint32_t i = 0; i < c->r->idx.npacks; i++) {
		if (!memcmp(c->r->idx.packs[i], packid, FV_PACK_ID_LEN)) {
			c->cur_num = i;
			c->cur_has_num = true;
			seen[i] = 1;
			break;
		}
	}
	rc = fv_pack_read_toc(fd, (uint64_t)st.st_size, &c->r->keys, packid, &c->cur_toc, &c->cur_ntoc);
	if (rc == -ENOMEM)
		goto out;
	if (rc < 0) {
		report(c, c->cur_has_num, "%s: table of contents unreadable (damaged, truncated or tampered)",
		       rel);
		c->cur_toc = NULL;
		c->cur_ntoc = 0;
	} else {
		qsort(c->cur_toc, c->cur_ntoc, sizeof *c->cur_toc, toc_cmp);
	}
	rc = fv_pack_scan(fd, (uint64_t)st.st_size, scan_bad, c);
	if (rc < 0) {
		report(c, c->cur_has_num, "%s: read error: %s", rel, strerror(-rc));
		mark_damaged_from(c, 0, UINT64_MAX);
	}
	rc = 0;
	if (c->cur_broken != UINT64_MAX) {
		rc = check_after_break(c, fd);
		if (rc < 0)
			goto out;
	}
	c->res->bytes_scanned += (uint64_t)st.st_size;
	if (!c->cur_has_num) {
		if (c->index_damaged)
			report(c, false,
			       "%s is not named by any readable index: it may be the pack of a damaged index file "
			       "above (its data is still here, %llu bytes), or left by an interrupted snapshot",
			       rel, (unsigned long long)st.st_size);
		else
			report(c, false,
			       "%s is not named by any index (left by an interrupted snapshot; harmless, uses %llu "
			       "bytes)",
			       rel, (unsigned long long)st.st_size);
		goto out;
	}
	/* index <-> TOC: every indexed blob of this pack is where the TOC says */
	if (c->cur_toc) {
		uint64_t mismatched = 0;
		for (size_t i = 0; i < c->r->idx.n; i++) {
			const struct fv_index_entry *ie = &c->r->idx.e[i];
			if (fv_index_pack(ie) != c->cur_num)
				continue;
			const uint8_t *id = entry_id(c, ie);
			const struct fv_pack_entry *pe = toc_find(c, ie->off);
			if (!pe || pe->len != ie->len || pe->type != fv_index_type(ie) ||
			    pe->rawlen != ie->rawlen || memcmp(pe->id, id, FV_ID_LEN) != 0) {
				mismatched++;
				idset_add(&c->damaged, id);
			}
		}
		if (mismatched)
			report(c, true, "%s: %llu index entries do not match the pack's table of contents",
			       rel, (unsigned long long)mismatched);
	}
out:
	free(c->cur_toc);
	c->cur_toc = NULL;
	c->cur_ntoc = 0;
	close(fd);
	return rc == -ENOMEM ? fv_err_set(c->e, rc, "out of memory") : 0;
}

static int check_packs(struct cctx *c)
{
	char **dirs = NULL;
	size_t nd = 0;
	int rc = fv_repo_list(c->r, "packs", &dirs, &nd, c->e);
	if (rc < 0)
		return rc;
	uint8_t *seen = calloc(c->r->idx.npacks ? c->r->idx.npacks : 1, 1);
	if (!seen) {
		fv_repo_names_free(dirs, nd);
		return fv_err_set(c->e, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < nd && rc == 0; i++) {
		char sub[64];
		char **names = NULL;
		size_t n = 0;
		snprintf(sub, sizeof sub, "packs/%.8s", dirs[i]);
		rc = fv_repo_list(c->r, sub, &names, &n, c->e);
		if (rc < 0)
			break;
		for (size_t j = 0; j < n && rc == 0; j++) {
			uint8_t pid[FV_PACK_ID_LEN];
			char rel[128];
			snprintf(rel, sizeof rel, "%s/%s", sub, names[j]);
			if (fv_unhex(names[j], pid, FV_PACK_ID_LEN) < 0 ||
			    strncmp(names[j], dirs[i], 2) != 0) {
				report(c, false, "%s: unexpected file in packs/ (ignored)", rel);
				continue;
			}
			rc = check_one_pack(c, rel, pid, seen);
			progress(c, "packs", c->res->packs, 0);
		}
		fv_repo_names_free(names, n);
	}
	for (uint32_t p = 0; p < c->r->idx.npacks && rc == 0; p++) {
		if (seen[p])
			continue;
		char rel[64];
		uint64_t lost = 0;
		fv_pack_path(c->r->idx.packs[p], rel);
		for (size_t i = 0; i < c->r->idx.n; i++) {
			if (fv_index_pack(&c->r->idx.e[i]) == p) {
				idset_add(&c->damaged, entry_id(c, &c->r->idx.e[i]));
				lost++;
			}
		}
		report(c, true, "%s is missing: %llu blobs named by the index are lost", rel,
		       (unsigned long long)lost);
	}
	free(seen);
	fv_repo_names_free(dirs, nd);
	return rc;
}

/* ---- read-data: unseal every blob ---- */

static int cmp_entry_place(const void *a, const void *b)
{
	const struct fv_index_entry *x = *(const struct fv_index_entry *const *)a;
	const struct fv_index_entry *y = *(const struct fv_index_entry *const *)b;
	uint32_t px = fv_index_pack(x), py = fv_index_pack(y);
	if (px != py)
		return px < py ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Read-data runs on o->threads workers, each with its own fv_reader. The
 * blobs, sorted by pack and offset, are cut into runs of one pack of at most
 * RUN_BYTES of frames; the main thread queues the runs in order, so packs
 * are spread over the workers and each run is read front to back. A worker
 * keeps the failures it finds (position in the order, message) to itself;
 * the main thread reports them after joining, sorted by position, so the
 * report is the same whatever the number of threads. Only the main thread
 * calls the caller's callbacks. */
#define RUN_BYTES (8u << 20)
#define RUN_QUEUE 64

struct run {
	size_t from, to; /* positions in rdata.order */
};

struct rfail {
	size_t pos;
	char *msg;
};

struct rdata;

struct rworker {
	struct rdata *d;
	pthread_t tid;
	struct fv_reader *rd;
	struct fv_buf blob;
	struct rfail *fails; /* owned by the worker until joined */
	size_t nfails, capfails;
	uint64_t blobs;
	struct fv_err err; /* a fatal error (out of memory) */
	int fatal;
};

struct rdata {
	const struct fv_index *ix;           /* for the full ids of order's entries */
	const struct fv_index_entry **order; /* read-only while workers run */
	struct fv_workq runs;                /* main -> workers: struct run */
	struct fv_workq ends;                /* workers -> main: one int each, at exit */
	atomic_uint_fast64_t done;           /* blobs read, for progress */
};

static int add_fail(struct rworker *w, size_t pos, const char *msg)
{
	if (w->nfails == w->capfails) {
		size_t cap = w->capfails ? 2 * w->capfails : 16;
		struct rfail *v = realloc(w->fails, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		w->fails = v;
		w->capfails = cap;
	}
	char *m = strdup(msg);
	if (!m)
		return -ENOMEM;
	w->fails[w->nfails++] = (struct rfail){.pos = pos, .msg = m};
	return 0;
}

static void *read_worker(void *arg)
{
	struct rworker *w = arg;
	struct rdata *d = w->d;
	struct fv_err le = {0};
	struct run run;
	int end = 0;

	while (fv_workq_pop(&d->runs, &run, true, 0) == 1) {
		for (size_t i = run.from; i < run.to; i++) {
			const struct fv_index_entry *ie = d->order[i];
			int rc = fv_reader_read(w->rd, ie, fv_index_id(d->ix, (size_t)(ie - d->ix->e)),
						&w->blob, &le);
			w->blobs++;
			if (rc < 0 && rc != -ENOMEM)
				rc = add_fail(w, i, le.msg);
			if (rc == -ENOMEM) {
				w->fatal = fv_err_set(&w->err, rc, "out of memory");
				fv_workq_shutdown(&d->runs);
				fv_workq_shutdown(&d->ends);
				return NULL;
			}
			atomic_fetch_add_explicit(&d->done, 1, memory_order_relaxed);
		}
	}
	fv_workq_push(&d->ends, &end);
	return NULL;
}

static int fail_cmp(const void *a, const void *b)
{
	const struct rfail *x = a, *y = b;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Join the workers, then report their failures in order and free them. */
static int read_finish(struct cctx *c, struct rdata *d, struct rworker *w, unsigned started)
{
	size_t nf = 0;
	int rc = 0;
	for (unsigned t = 0; t < started; t++) {
		pthread_join(w[t].tid, NULL);
		nf += w[t].nfails;
		c->res->blobs += w[t].blobs;
		if (w[t].fatal && !rc)
			rc = fv_err_set(c->e, w[t].fatal, "%s", w[t].err.msg);
	}
	struct rfail *all = malloc((nf ? nf : 1) * sizeof *all);
	if (!all && !rc)
		rc = fv_err_set(c->e, -ENOMEM, "out of memory");
	nf = 0;
	for (unsigned t = 0; t < started; t++) {
		for (size_t i = 0; i < w[t].nfails; i++) {
			if (all)
				all[nf++] = w[t].fails[i];
			else
				free(w[t].fails[i].msg);
		}
		free(w[t].fails);
		w[t].fails = NULL;
	}
	if (all) {
		qsort(all, nf, sizeof *all, fail_cmp);
		for (size_t i = 0; i < nf; i++) {
			report(c, true, "%s", all[i].msg);
			idset_add(&c->damaged, entry_id(c, d->order[all[i].pos]));
			free(all[i].msg);
		}
	}
	free(all);
	return rc;
}

static int read_all_data(struct cctx *c)
{
	size_t n = c->r->idx.n, m = 0;
	unsigned nthreads = fv_reader_threads(c->o->threads), started = 0;
	struct rdata d = {0};
	struct rworker *w = calloc(nthreads, sizeof *w);
	int rc = 0;

	d.ix = &c->r->idx;
	d.order = malloc((n ? n : 1) * sizeof(const struct fv_index_entry *));
	if (!d.order || !w) {
		rc = fv_err_set(c->e, -ENOMEM, "out of memory");
		goto out_free;
	}
	for (size_t i = 0; i < n; i++)
		if (!idset_has(&c->damaged, fv_index_id(&c->r->idx, i))) /* already reported by the scan */
			d.order[m++] = &c->r->idx.e[i];
	/* pack by pack, in file order: sequential reads */
	qsort(d.order, m, sizeof(const struct fv_index_entry *), cmp_entry_place);
	atomic_init(&d.done, 0);
	rc = fv_workq_init(&d.runs, sizeof(struct run), RUN_QUEUE);
	if (rc == 0)
		rc = fv_workq_init(&d.ends, sizeof(int), nthreads);
	if (rc < 0) {
		rc = fv_err_set(c->e, rc, "out of memory");
		goto out_queues;
	}
	for (unsigned t = 0; t < nthreads; t++) {
		w[t].d = &d;
		rc = fv_reader_open(c->r, &w[t].rd, c->e);
		if (rc < 0)
			goto out_stop;
		rc = -pthread_create(&w[t].tid, NULL, read_worker, &w[t]);
		if (rc < 0) {
			if (started) /* fewer threads will do */
				break;
			fv_err_sys(c->e, rc, "cannot start a thread to read data");
			goto out_stop;
		}
		started++;
	}
	rc = 0;
	for (size_t i = 0; i < m;) {
		struct run run = {.from = i};
		uint32_t pack = fv_index_pack(d.order[i]);
		uint64_t bytes = 0;
		while (i < m && fv_index_pack(d.order[i]) == pack && (i == run.from || bytes < RUN_BYTES))
			bytes += d.order[i++]->len;
		run.to = i;
		if (fv_workq_push(&d.runs, &run) < 0)
			break; /* a worker failed: it says why */
		progress(c, "read-data", atomic_load(&d.done), m);
	}
	fv_workq_close(&d.runs);
	/* wait for every worker to finish, showing progress meanwhile */
	for (unsigned ended = 0; ended < started;) {
		int end, got = fv_workq_pop(&d.ends, &end, true, 200);
		if (got == 1)
			ended++;
		else if (got != -ETIMEDOUT)
			break;
		progress(c, "read-data", atomic_load(&d.done), m);
	}
out_stop:
	fv_workq_shutdown(&d.runs);
	{
		int frc = read_finish(c, &d, w, started);
		if (rc == 0)
			rc = frc;
	}
	for (unsigned t = 0; t < nthreads; t++) {
		fv_reader_close(w[t].rd);
		fv_buf_free(&w[t].blob);
	}
out_queues:
	fv_workq_fini(&d.runs);
	fv_workq_fini(&d.ends);
out_free:
	free(d.order);
	free(w);
	return rc;
}

/* ---- snapshots ---- */

static size_t path_push(struct cctx *c, const char *name)
{
	size_t old = c->pathlen, n = strlen(name);
	if (old + n + 2 >= sizeof c->path)
		return old;
	if (old)
		c->path[c->pathlen++] = '/';
	memcpy(c->path + c->pathlen, name, n + 1);
	c->pathlen += n;
	return old;
}

static void path_pop(struct cctx *c, size_t old)
{
	c->pathlen = old;
	c->path[old] = 0;
}

static const char *shown_path(const struct cctx *c)
{
	return c->pathlen ? c->path : "/";
}

/* Walk tree id; returns true when everything below is intact. */
static bool walk_tree(struct cctx *c, const uint8_t id[FV_ID_LEN], int depth)
{
	char hex[2 * FV_ID_LEN + 1];
	struct fv_err le = {0};
	struct fv_tree t = {0};
	bool ok = true;

	if (idset_has(&c->clean, id))
		return true;
	fv_hex(id, FV_ID_LEN, hex);
	if (depth > 4096) {
		report(c, true, "snapshot %s: %s: directories nested too deep", c->snapdesc, shown_path(c));
		return false;
	}
	if (!fv_repo_has(c->r, id)) {
		report(c, true,
		       "snapshot %s: %s: directory listing (tree %.16s) is missing; everything below "
		       "is lost",
		       c->snapdesc, shown_path(c), hex);
		return false;
	}
	if (idset_has(&c->damaged, id) || fv_repo_tree(c->r, id, &t, &le) < 0) {
		report(c, true,
		       "snapshot %s: %s: directory listing (tree %.16s) is damaged; everything below is "
		       "lost",
		       c->snapdesc, shown_path(c), hex);
		idset_add(&c->damaged, id);
		fv_tree_free(&t);
		return false;
	}
	c->res->trees++;
	for (uint32_t i = 0; i < t.n; i++) {
		const struct fv_node *nd = &t.nodes[i];
		size_t old = path_push(c, nd->name);
		if (nd->type == FV_FT_DIR) {
			ok &= walk_tree(c, nd->subtree, depth + 1);
		} else if (nd->type == FV_FT_REG) {
			uint64_t bad = 0;
			for (uint32_t k = 0; k < nd->nchunks; k++)
				if (!fv_repo_has(c->r, nd->chunks[k].id) ||
				    idset_has(&c->damaged, nd->chunks[k].id))
					bad++;
			if (bad) {
				report(c, true,
				       "snapshot %s: %s: %llu of %u content chunks are damaged or missing",
				       c->snapdesc, shown_path(c), (unsigned long long)bad, nd->nchunks);
				ok = false;
			}
		}
		path_pop(c, old);
	}
	fv_tree_free(&t);
	if (ok)
		idset_add(&c->clean, id);
	return ok;
}

static int check_snapshots(struct cctx *c)
{
	char **names = NULL;
	size_t n = 0;
	struct fv_err le = {0};
	int rc = fv_repo_list(c->r, "snapshots", &names, &n, c->e);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		uint8_t *pt = NULL, id[FV_ID_LEN];
		size_t len;
		struct fv_snapshot s = {0};
		rc = fv_repo_obj_read(c->r, "snapshots", names[i], SNAPSHOT_MAGIC, FV_OBJ_SNAPSHOT, &pt, &len,
				      id, &le);
		if (rc == 0) {
			rc = fv_snapshot_decode(pt, len, &s);
			free(pt);
			if (rc < 0)
				snprintf(le.msg, sizeof le.msg, "snapshots/%s is malformed", names[i]);
		}
		if (rc == -ENOMEM) {
			fv_snapshot_free(&s);
			break;
		}
		if (rc < 0) {
			report(c, true, "%s: this snapshot is lost", le.msg);
			fv_snapshot_free(&s);
			rc = 0;
			continue;
		}
		c->res->snapshots++;
		time_t t = (time_t)(s.time_ns / 1000000000);
		struct tm tm;
		char when[32];
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
		snprintf(c->snapdesc, sizeof c->snapdesc, "%.8s (%s)", names[i], when);
		c->pathlen = 0;
		c->path[0] = 0;
		walk_tree(c, s.root, 0);
		fv_snapshot_free(&s);
		progress(c, "snapshots", i + 1, n);
	}
	fv_repo_names_free(names, n);
	if (rc == -ENOMEM)
		return fv_err_set(c->e, rc, "out of memory");
	return 0;
}

int fv_check_run(struct fv_repo *r, const struct fv_check_opts *o, struct fv_check_result *res,
		 struct fv_err *e)
{
	struct cctx c = {.r = r, .o = o, .res = res, .e = e};
	int rc;
	memset(res, 0, sizeof *res);
	rc = check_index_files(&c);
	if (rc == 0)
		rc = check_packs(&c);
	if (rc == 0 && o->read_data)
		rc = read_all_data(&c);
	if (rc == 0)
		rc = check_snapshots(&c);
	if (!o->read_data)
		res->blobs = r->idx.n;
	idset_free(&c.damaged);
	idset_free(&c.clean);
	if (rc < 0)
		return rc;
	if (res->errors)
		return fv_err_set(e, -EUCLEAN, "repository %s: %llu problems found", fv_repo_path(r),
				  (unsigned long long)res->errors);
	return 0;
}
