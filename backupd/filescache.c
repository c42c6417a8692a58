#include "filescache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/fsutil.h"

#define MAGIC "FVFCACHE"
#define KEY_LEN 16
#define MAC_LEN 32
#define HDR_LEN (8 + 4 + 4 + 16 + 8)
#define ENTRY_MIN (KEY_LEN + 8 * 4 + 4 + 4)
#define CHUNK_LEN (8 + 4 + FV_ID_LEN)
#define FILE_MAX ((size_t)4 << 30)

struct entry {
	uint8_t key[KEY_LEN]; /* keyed BLAKE2b-128 of the absolute path */
	uint64_t ino, size;
	int64_t mtime_ns, ctime_ns;
	uint8_t age;
	bool seen;
	uint32_t block; /* fixed block size it was cut with, 0 = content-defined */
	uint32_t nchunks;
	struct fv_chunkref *chunks;
};

struct fv_fcache {
	struct fv_repo *r;
	char *path; /* DIR/<repo id>/files */
	char *dir;  /* DIR/<repo id> */
	struct entry *e;
	size_t n, cap;
	uint32_t *slots; /* entry + 1, 0 = empty */
	size_t nslots;
};

static int64_t ns_of(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int fv_fcache_default_dir(char *buf, size_t cap)
{
	const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
	if (x && *x)
		snprintf(buf, cap, "%s/fabvault", x);
	else if (h && *h)
		snprintf(buf, cap, "%s/.cache/fabvault", h);
	else
		return -ENOENT;
	return 0;
}

static void path_key(const struct fv_fcache *fc, const char *abspath, uint8_t key[KEY_LEN])
{
	crypto_generichash(key, KEY_LEN, (const uint8_t *)abspath, strlen(abspath), fv_repo_keys(fc->r)->id,
			   FV_KEY_LEN);
}

static size_t slot_of(const uint8_t key[KEY_LEN], size_t nslots)
{
	return (size_t)fv_get_le64(key) & (nslots - 1);
}

static int rehash(struct fv_fcache *fc, size_t want)
{
	size_t ns = 64;
	while (ns / 4 * 3 < want)
		ns *= 2;
	uint32_t *s = calloc(ns, sizeof *s);
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < fc->n; i++) {
		size_t h = slot_of(fc->e[i].key, ns);
		while (s[h])
			h = (h + 1) & (ns - 1);
		s[h] = (uint32_t)(i + 1);
	}
	free(fc->slots);
	fc->slots = s;
	fc->nslots = ns;
	return 0;
}

static struct entry *find(const struct fv_fcache *fc, const uint8_t key[KEY_LEN])
{
	if (!fc->nslots)
		return NULL;
	for (size_t h = slot_of(key, fc->nslots); fc->slots[h]; h = (h + 1) & (fc->nslots - 1)) {
		struct entry *en = &fc->e[fc->slots[h] - 1];
		if (!memcmp(en->key, key, KEY_LEN))
			return en;
	}
	return NULL;
}

/* A new entry for key (its fields zeroed), or NULL when out of memory. */
static struct entry *add(struct fv_fcache *fc, const uint8_t key[KEY_LEN])
{
	if (fc->n == fc->cap) {
		size_t cap = fc->cap ? fc->cap * 2 : 256;
		struct entry *v = realloc(fc->e, cap * sizeof *v);
		if (!v)
			return NULL;
		fc->e = v;
		fc->cap = cap;
	}
	if ((fc->n + 1) > fc->nslots / 4 * 3 && rehash(fc, fc->n + 1) < 0)
		return NULL;
	struct entry *en = &fc->e[fc->n];
	memset(en, 0, sizeof *en);
	memcpy(en->key, key, KEY_LEN);
	size_t h = slot_of(key, fc->nslots);
	while (fc->slots[h])
		h = (h + 1) & (fc->nslots - 1);
	fc->slots[h] = (uint32_t)(fc->n + 1);
	fc->n++;
	return en;
}

static void entries_free(struct fv_fcache *fc)
{
	for (size_t i = 0; i < fc->n; i++)
		free(fc->e[i].chunks);
	free(fc->e);
	free(fc->slots);
	fc->e = NULL;
	fc->slots = NULL;
	fc->n = fc->cap = fc->nslots = 0;
}

/* Parse a cache file; -EBADMSG when malformed (the caller starts empty). */
static int parse(struct fv_fcache *fc, const uint8_t *p, size_t len, const uint8_t repo_id[16])
{
	uint8_t mac[MAC_LEN];
	if (len < HDR_LEN + MAC_LEN)
		return -EBADMSG;
	crypto_generichash(mac, MAC_LEN, p, len - MAC_LEN, fv_repo_keys(fc->r)->mac, FV_KEY_LEN);
	if (sodium_memcmp(mac, p + len - MAC_LEN, MAC_LEN) != 0)
		return -EBADMSG;
	struct fv_rd r;
	fv_rd_init(&r, p, len - MAC_LEN);
	const uint8_t *m = fv_rd_get(&r, 8);
	uint32_t ver = fv_rd_u32(&r), zero = fv_rd_u32(&r);
	const uint8_t *id = fv_rd_get(&r, 16);
	uint64_t count = fv_rd_u64(&r);
	if (!fv_rd_ok(&r) || memcmp(m, MAGIC, 8) != 0 || ver != 1 || zero != 0 ||
	    memcmp(id, repo_id, 16) != 0 || count > fv_rd_left(&r) / ENTRY_MIN)
		return -EBADMSG;
	for (uint64_t i = 0; i < count; i++) {
		const uint8_t *key = fv_rd_get(&r, KEY_LEN);
		uint64_t ino = fv_rd_u64(&r), size = fv_rd_u64(&r);
		int64_t mt = (int64_t)fv_rd_u64(&r), ct = (int64_t)fv_rd_u64(&r);
		uint8_t age = fv_rd_u8(&r);
		uint8_t zero8 = fv_rd_u8(&r);
		uint32_t block = (uint32_t)fv_rd_u16(&r) * 1024;
		uint32_t nch = fv_rd_u32(&r);
		if (zero8)
			return -EBADMSG;
		if (!fv_rd_ok(&r) || nch > fv_rd_left(&r) / CHUNK_LEN || find(fc, key))
			return -EBADMSG;
		struct entry *en = add(fc, key);
		if (!en)
			return -ENOMEM;
		en->ino = ino;
		en->size = size;
		en->mtime_ns = mt;
		en->ctime_ns = ct;
		en->age = age;
		en->block = block;
		en->chunks = malloc((nch ? nch : 1) * sizeof *en->chunks);
		if (!en->chunks)
			return -ENOMEM;
		en->nchunks = nch;
		for (uint32_t k = 0; k < nch; k++) {
			en->chunks[k].off = fv_rd_u64(&r);
			en->chunks[k].len = fv_rd_u32(&r);
			memcpy(en->chunks[k].id, fv_rd_get(&r, FV_ID_LEN), FV_ID_LEN);
		}
	}
	return fv_rd_left(&r) == 0 ? 0 : -EBADMSG;
}

int fv_fcache_open(struct fv_repo *r, const char *dir, struct fv_fcache **out, const char **note,
		   struct fv_err *e)
{
	char idhex[33];
	enum fv_enc enc;
	int zl;
	struct fv_chunker_params cp;
	uint8_t repo_id[16], *p = NULL;
	size_t len;
	*note = NULL;
	struct fv_fcache *fc = calloc(1, sizeof *fc);
	if (!fc)
		return fv_err_set(e, -ENOMEM, "out of memory");
	fc->r = r;
	fv_repo_describe(r, idhex, &enc, &zl, &cp);
	fv_unhex(idhex, repo_id, 16);
	if (asprintf(&fc->dir, "%s/%s", dir, idhex) < 0 || asprintf(&fc->path, "%s/files", fc->dir) < 0) {
		fc->dir = fc->path = NULL;
		fv_fcache_close(fc);
		return fv_err_set(e, -ENOMEM, "out of memory");
	}
	int rc = fv_read_file(AT_FDCWD, fc->path, FILE_MAX, &p, &len);
	if (rc == 0) {
		rc = parse(fc, p, len, repo_id);
		free(p);
		if (rc == -ENOMEM) {
			fv_fcache_close(fc);
			return fv_err_set(e, rc, "out of memory loading the files cache");
		}
		if (rc < 0) {
			entries_free(fc);
			*note = "the files cache was damaged or written with another key; every file is read again";
		}
	} else if (rc != -ENOENT) {
		*note = "the files cache could not be read; every file is read again";
	}
	*out = fc;
	return 0;
}

bool fv_fcache_lookup(struct fv_fcache *fc, const char *abspath, const struct stat *st,
		      struct fv_chunkref **chunks, uint32_t *n)
{
	uint8_t key[KEY_LEN];
	path_key(fc, abspath, key);
	struct entry *en = find(fc, key);
	if (!en || en->ino != (uint64_t)st->st_ino || en->size != (uint64_t)st->st_size ||
	    en->mtime_ns != ns_of(st->st_mtim) || en->ctime_ns != ns_of(st->st_ctim))
		return false;
	for (uint32_t i = 0; i < en->nchunks; i++)
		if (!fv_repo_has(fc->r, en->chunks[i].id))
			return false; /* pruned or never committed: read it again */
	struct fv_chunkref *v = malloc((en->nchunks ? en->nchunks : 1) * sizeof *v);
	if (!v)
		return false;
	if (en->nchunks)
		memcpy(v, en->chunks, en->nchunks * sizeof *v);
	*chunks = v;
	*n = en->nchunks;
	en->seen = true;
	en->age = 0;
	return true;
}

uint32_t fv_fcache_block_hint(struct fv_fcache *fc, const char *abspath, const struct stat *st)
{
	uint8_t key[KEY_LEN];
	path_key(fc, abspath, key);
	const struct entry *en = find(fc, key);
	if (!en)
		return 0;
	if (en->block)
		return en->block;
	if (en->size == (uint64_t)st->st_size && st->st_size >= (1 << 20) &&
	    (en->mtime_ns != ns_of(st->st_mtim) || en->ctime_ns != ns_of(st->st_ctim)))
		return FV_FCACHE_BLOCK;
	return 0;
}

int fv_fcache_put(struct fv_fcache *fc, const char *abspath, const struct stat *st,
		  const struct fv_chunkref *chunks, uint32_t n, uint32_t block, int64_t start_ns)
{
	uint8_t key[KEY_LEN];
	if (ns_of(st->st_ctim) >= start_ns - 1000000000 || ns_of(st->st_mtim) >= start_ns - 1000000000)
		return 0; /* too recent to be sure a later change would show */
	path_key(fc, abspath, key);
	struct entry *en = find(fc, key);
	if (!en && !(en = add(fc, key)))
		return -ENOMEM;
	struct fv_chunkref *v = malloc((n ? n : 1) * sizeof *v);
	if (!v)
		return -ENOMEM;
	if (n)
		memcpy(v, chunks, n * sizeof *v);
	free(en->chunks);
	en->chunks = v;
	en->nchunks = n;
	en->ino = (uint64_t)st->st_ino;
	en->size = (uint64_t)st->st_size;
	en->mtime_ns = ns_of(st->st_mtim);
	en->ctime_ns = ns_of(st->st_ctim);
	en->block = block;
	en->seen = true;
	en->age = 0;
	return 0;
}

int fv_fcache_save(struct fv_fcache *fc, struct fv_err *e)
{
	struct fv_buf b = {0};
	char idhex[33];
	enum fv_enc enc;
	int zl, rc;
	struct fv_chunker_params cp;
	uint8_t repo_id[16];
	uint64_t count = 0;

	fv_repo_describe(fc->r, idhex, &enc, &zl, &cp);
	fv_unhex(idhex, repo_id, 16);
	for (size_t i = 0; i < fc->n; i++)
		if (fc->e[i].seen || fc->e[i].age < FV_FCACHE_MAX_AGE)
			count++;
	fv_buf_put(&b, MAGIC, 8);
	fv_buf_u32(&b, 1);
	fv_buf_u32(&b, 0);
	fv_buf_put(&b, repo_id, 16);
	fv_buf_u64(&b, count);
	for (size_t i = 0; i < fc->n; i++) {
		const struct entry *en = &fc->e[i];
		if (!en->seen && en->age >= FV_FCACHE_MAX_AGE)
			continue;
		fv_buf_put(&b, en->key, KEY_LEN);
		fv_buf_u64(&b, en->ino);
		fv_buf_u64(&b, en->size);
		fv_buf_u64(&b, (uint64_t)en->mtime_ns);
		fv_buf_u64(&b, (uint64_t)en->ctime_ns);
		fv_buf_u8(&b, en->seen ? 0 : (uint8_t)(en->age + 1));
		fv_buf_u8(&b, 0);
		fv_buf_u16(&b, (uint16_t)(en->block / 1024));
		fv_buf_u32(&b, en->nchunks);
		for (uint32_t k = 0; k < en->nchunks; k++) {
			fv_buf_u64(&b, en->chunks[k].off);
			fv_buf_u32(&b, en->chunks[k].len);
			fv_buf_put(&b, en->chunks[k].id, FV_ID_LEN);
		}
	}
	uint8_t *mac = fv_buf_extend(&b, MAC_LEN);
	if (!mac) {
		rc = fv_err_set(e, -ENOMEM, "out of memory writing the files cache");
		goto out;
	}
	crypto_generichash(mac, MAC_LEN, b.data, b.len - MAC_LEN, fv_repo_keys(fc->r)->mac, FV_KEY_LEN);
	rc = fv_mkdir_p(AT_FDCWD, fc->dir, 0700);
	if (rc == 0)
		rc = fv_write_file_durable(AT_FDCWD, fc->dir, fc->path, b.data, b.len, 0);
	if (rc < 0)
		fv_err_sys(e, rc, "cannot write the files cache %s", fc->path);
out:
	fv_buf_free(&b);
	return rc;
}

void fv_fcache_close(struct fv_fcache *fc)
{
	if (!fc)
		return;
	entries_free(fc);
	free(fc->path);
	free(fc->dir);
	free(fc);
}
