#include "repo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "../common/fsutil.h"
#include "compress.h"
#include "config.h"
#include "index.h"
#include "keyfile.h"
#include "lock.h"
#include "pack.h"
#include "repo_internal.h"

static const char *const repo_dirs[] = {"keys", "packs", "index", "snapshots", "tmp"};

static const char readme_text[] =
	"This directory is a fabvault repository: encrypted, deduplicated backups.\n"
	"Do not edit or delete files here by hand; use the `fabvault` command\n"
	"(fabvault list, fabvault check, ...). Format: docs/repository-format.md.\n";

void fv_repo_create_opts_default(struct fv_repo_create_opts *o)
{
	memset(o, 0, sizeof *o);
	o->enc = FV_ENC_XCHACHA;
	o->zstd_level = 3;
	o->chunk.min = FV_CHUNK_MIN_DEFAULT;
	o->chunk.avg = FV_CHUNK_AVG_DEFAULT;
	o->chunk.max = FV_CHUNK_MAX_DEFAULT;
	o->pack_size = 32u << 20;
	o->kdf_ops = crypto_pwhash_OPSLIMIT_MODERATE;
	o->kdf_mem = crypto_pwhash_MEMLIMIT_MODERATE;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool dir_is_empty(int fd)
{
	char **names = NULL;
	size_t n = 0;
	if (fv_dir_names(fd, NULL, 0, &names, &n, NULL) < 0)
		return false;
	fv_names_free(names, n);
	return n == 0;
}

int fv_repo_create(const char *path, const struct fv_repo_create_opts *o, const char *pass, size_t passlen,
		   struct fv_err *e)
{
	uint8_t master[FV_KEY_LEN], kf[FV_KEYFILE_SIZE], cfgb[FV_CONFIG_SIZE];
	struct fv_config c = {0};
	struct fv_keys k;
	int rc, fd = -1;

	rc = fv_crypto_init();
	if (rc < 0)
		return fv_err_set(e, rc, "cannot initialise libsodium");
	if (fv_chunker_params_check(&o->chunk) < 0)
		return fv_err_set(e, -EINVAL,
				  "invalid chunk sizes %u/%u/%u: need 64 <= min < avg < max <= 64 MiB, avg a "
				  "power of two",
				  o->chunk.min, o->chunk.avg, o->chunk.max);
	if (o->enc == FV_ENC_AESGCM && !fv_crypto_aesgcm_available())
		return fv_err_set(e, -ENOTSUP,
				  "AES-256-GCM is not available on this CPU; use the default "
				  "xchacha20-poly1305");
	if (o->zstd_level < 0 || o->zstd_level > ZSTD_maxCLevel())
		return fv_err_set(e, -EINVAL, "invalid zstd level %d (0..%d)", o->zstd_level,
				  ZSTD_maxCLevel());
	if (o->enc != FV_ENC_NONE && passlen == 0)
		return fv_err_set(e, -ENOKEY, "an empty passphrase is not allowed");

	rc = fv_mkdir_p(AT_FDCWD, path, 0700);
	if (rc == -ENOTDIR || rc == -EEXIST)
		return fv_err_set(e, -EEXIST, "%s exists and is not a directory", path);
	if (rc < 0)
		return fv_err_sys(e, rc, "cannot create repository directory %s", path);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fv_err_sys(e, -errno, "cannot open %s", path);
	{
		struct fv_config old;
		uint8_t *p = NULL;
		size_t n;
		if (fv_read_file(fd, "config", 4096, &p, &n) == 0 &&
		    fv_config_decode(p, n, &old) != -EMEDIUMTYPE) {
			free(p);
			rc = fv_err_set(e, -EEXIST, "%s is already a fabvault repository", path);
			goto out;
		}
		free(p);
	}
	if (!dir_is_empty(fd)) {
		rc = fv_err_set(e, -EEXIST,
				"%s is not empty; a new repository needs an empty or new directory", path);
		goto out;
	}
	for (size_t i = 0; i < sizeof repo_dirs / sizeof repo_dirs[0]; i++) {
		if (mkdirat(fd, repo_dirs[i], 0700) < 0) {
			rc = fv_err_sys(e, -errno, "cannot create %s/%s", path, repo_dirs[i]);
			goto out;
		}
	}
	c.version = FV_REPO_VERSION;
	fv_random(c.repo_id, sizeof c.repo_id);
	c.enc = o->enc;
	c.compression = o->zstd_level > 0;
	c.zstd_level = (int8_t)o->zstd_level;
	c.chunk = o->chunk;
	c.pack_size = o->pack_size;
	c.created_ns = now_ns();
	fv_random(master, sizeof master);
	fv_keys_derive(master, c.enc, &k);
	rc = fv_keyfile_wrap(master, c.repo_id, o->enc == FV_ENC_NONE ? FV_KDF_NONE : FV_KDF_ARGON2ID,
			     o->kdf_ops, o->kdf_mem, pass, passlen, kf);
	if (rc < 0) {
		fv_err_set(e, rc, "key derivation (Argon2id, %llu MiB) failed: not enough memory",
			   (unsigned long long)(o->kdf_mem >> 20));
		goto out;
	}
	fv_config_encode(&c, &k, cfgb);
	rc = fv_write_file_durable(fd, "tmp", KEYFILE, kf, sizeof kf, 1);
	if (rc == 0)
		rc = fv_write_file_durable(fd, "tmp", "README", readme_text, sizeof readme_text - 1, 1);
	/* config last: its presence is what makes the directory a repository */
	if (rc == 0)
		rc = fv_write_file_durable(fd, "tmp", "config", cfgb, sizeof cfgb, 1);
	if (rc < 0)
		fv_err_sys(e, rc, "cannot write repository files in %s", path);
out:
	sodium_memzero(master, sizeof master);
	fv_keys_wipe(&k);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Read and decode `config`; messages say what to do. */
static int read_config(int fd, const char *path, struct fv_config *c, uint8_t raw[FV_CONFIG_SIZE],
		       struct fv_err *e)
{
	uint8_t *p = NULL;
	size_t n;
	int rc = fv_read_file(fd, "config", 4096, &p, &n);
	if (rc == -ENOENT || rc == -ENOTDIR)
		return fv_err_set(e, -ENOENT,
				  "%s is not a fabvault repository (no config file); create one with: "
				  "fabvault init %s",
				  path, path);
	if (rc == -EFBIG)
		return fv_err_set(e, -EMEDIUMTYPE, "%s is not a fabvault repository (config is not ours)",
				  path);
	if (rc < 0)
		return fv_err_sys(e, rc, "cannot read %s/config", path);
	rc = fv_config_decode(p, n, c);
	if (rc == -EMEDIUMTYPE)
		fv_err_set(e, rc, "%s is not a fabvault repository (config has no fabvault signature)", path);
	else if (rc == -EPROTONOSUPPORT)
		fv_err_set(e, rc,
			   "repository %s has format version %u, newer than this fabvault supports (%u); "
			   "upgrade fabvault",
			   path, c->version, FV_REPO_VERSION);
	else if (rc < 0)
		fv_err_set(e, rc, "repository %s: config file is damaged (checksum mismatch)", path);
	else
		memcpy(raw, p, FV_CONFIG_SIZE);
	free(p);
	return rc;
}

static int read_keyfile(int fd, const char *path, uint8_t **p, size_t *n, struct fv_err *e)
{
	int rc = fv_read_file(fd, KEYFILE, 4096, p, n);
	if (rc == -ENOENT)
		return fv_err_set(e, -EUCLEAN, "repository %s: key file %s is missing", path, KEYFILE);
	if (rc < 0)
		return fv_err_sys(e, rc, "cannot read %s/%s", path, KEYFILE);
	return 0;
}

int fv_repo_needs_passphrase(const char *path, struct fv_err *e)
{
	struct fv_config c;
	uint8_t raw[FV_CONFIG_SIZE], *kp = NULL;
	size_t kn;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return fv_err_set(
				e, -ENOENT,
				"%s is not a fabvault repository (%s); create one with: fabvault init DIR",
				path, errno == ENOENT ? "no such directory" : "not a directory");
		return fv_err_sys(e, -errno, "cannot open repository %s", path);
	}
	int rc = read_config(fd, path, &c, raw, e);
	if (rc == 0)
		rc = read_keyfile(fd, path, &kp, &kn, e);
	if (rc == 0) {
		rc = fv_keyfile_needs_passphrase(kp, kn);
		if (rc < 0)
			fv_err_set(e, rc, "repository %s: key file %s is damaged (checksum mismatch)", path,
				   KEYFILE);
	}
	free(kp);
	close(fd);
	return rc;
}

/* "Object files" (index/, snapshots/): magic, u32 version, u32 zero,
 * sealed plaintext, u64 XXH3 of everything before. Named by the keyed id of
 * their plaintext. */
static int obj_write(struct fv_repo *r, const char *dir, const char *magic, uint8_t type,
		     const struct fv_buf *pt, uint8_t id[FV_ID_LEN], struct fv_err *e)
{
	struct fv_buf f = {0};
	char name[PATH_MAX], hex[2 * FV_ID_LEN + 1];
	int rc;

	fv_id_compute(&r->keys, pt->data, pt->len, id);
	uint8_t *h = fv_buf_extend(&f, OBJ_HDR_LEN + pt->len + fv_seal_overhead(r->keys.alg) + 8);
	if (!h) {
		rc = fv_err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	memcpy(h, magic, 8);
	fv_put_le32(h + 8, 1);
	rc = fv_seal(&r->keys, type, id, pt->data, pt->len, h + OBJ_HDR_LEN);
	if (rc < 0) {
		fv_err_set(e, rc, "cannot seal %s object", dir);
		goto out;
	}
	fv_put_le64(h + f.len - 8, XXH3_64bits(h, f.len - 8));
	fv_hex(id, FV_ID_LEN, hex);
	snprintf(name, sizeof name, "%s/%s", dir, hex);
	rc = fv_write_file_durable(r->fd, "tmp", name, f.data, f.len, 1);
	if (rc == -EEXIST)
		rc = 0; /* same plaintext, same name: already there */
	if (rc < 0)
		fv_err_sys(e, rc, "cannot write %s/%s", r->path, name);
out:
	fv_buf_free(&f);
	return rc;
}

/* Read object file dir/name, check checksum, unseal, check that the name is
 * the keyed id of the plaintext. *pt is malloc'd. */
int fv_repo_obj_read(struct fv_repo *r, const char *dir, const char *name, const char *magic, uint8_t type,
		     uint8_t **pt, size_t *ptlen, uint8_t id[FV_ID_LEN], struct fv_err *e)
{
	char rel[PATH_MAX];
	uint8_t *p = NULL, *out = NULL, chk[FV_ID_LEN];
	size_t n, on;
	int rc;

	snprintf(rel, sizeof rel, "%s/%s", dir, name);
	if (strlen(name) != 2 * FV_ID_LEN || fv_unhex(name, id, FV_ID_LEN) < 0)
		return fv_err_set(e, -EUCLEAN, "repository %s: unexpected file %s (not an object name)",
				  r->path, rel);
	rc = fv_read_file(r->fd, rel, OBJ_FILE_MAX, &p, &n);
	if (rc < 0)
		return fv_err_sys(e, rc, "cannot read %s/%s", r->path, rel);
	size_t ov = fv_seal_overhead(r->keys.alg);
	if (n < OBJ_HDR_LEN + ov + 8 || memcmp(p, magic, 8) != 0 ||
	    XXH3_64bits(p, n - 8) != fv_get_le64(p + n - 8)) {
		rc = fv_err_set(e, -EUCLEAN, "repository %s: %s is damaged (checksum mismatch)", r->path,
				rel);
		goto out;
	}
	if (fv_get_le32(p + 8) != 1 || fv_get_le32(p + 12) != 0) {
		rc = fv_err_set(e, -EUCLEAN, "repository %s: %s has an unknown version", r->path, rel);
		goto out;
	}
	out = malloc(n);
	if (!out) {
		rc = fv_err_set(e, -ENOMEM, "out of memory reading %s", rel);
		goto out;
	}
	if (fv_unseal(&r->keys, type, id, p + OBJ_HDR_LEN, n - OBJ_HDR_LEN - 8, out, &on) < 0) {
		rc = fv_err_set(e, -EUCLEAN, "repository %s: %s failed authentication (damaged or tampered)",
				r->path, rel);
		goto out;
	}
	fv_id_compute(&r->keys, out, on, chk);
	if (sodium_memcmp(chk, id, FV_ID_LEN) != 0) {
		rc = fv_err_set(e, -EUCLEAN, "repository %s: %s does not match its name", r->path, rel);
		goto out;
	}
	*pt = out;
	*ptlen = on;
	out = NULL;
out:
	free(out);
	free(p);
	return rc;
}

/* Names in dir that look like object ids, sorted. */
int fv_repo_list(struct fv_repo *r, const char *dir, char ***names, size_t *n, struct fv_err *e)
{
	int rc = fv_dir_names(r->fd, dir, 1, names, n, NULL);
	if (rc < 0)
		return fv_err_sys(e, rc, "cannot list %s/%s", r->path, dir);
	return 0;
}

void fv_repo_names_free(char **v, size_t n)
{
	fv_names_free(v, n);
}

static int load_index(struct fv_repo *r, struct fv_err *e)
{
	char **names = NULL;
	size_t n = 0;
	int rc = fv_repo_list(r, "index", &names, &n, e);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint8_t *pt = NULL, id[FV_ID_LEN];
		size_t len;
		rc = fv_repo_obj_read(r, "index", names[i], INDEX_MAGIC, FV_OBJ_INDEX, &pt, &len, id, e);
		if (rc == 0) {
			rc = fv_index_decode(&r->idx, pt, len);
			/* named by an index file: full ids no longer needed */
			fv_index_settle(&r->idx, r->idx.n);
			if (rc == -EBADMSG)
				rc = fv_err_set(e, -EUCLEAN, "repository %s: index/%s is malformed", r->path,
						names[i]);
			else if (rc < 0)
				fv_err_set(e, rc, "out of memory loading the index");
		}
		free(pt);
	}
	if (rc == 0 && e)
		fv_err_clear(e);
	r->committed = r->idx.n;
	fv_repo_names_free(names, n);
	return rc;
}

/* Remove leftovers of interrupted writers in tmp/ (we hold the lock). */
static void clean_tmp(struct fv_repo *r)
{
	char **names = NULL;
	size_t n = 0;
	int dfd = openat(r->fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0 && fv_dir_names(dfd, NULL, 0, &names, &n, NULL) == 0) {
		for (size_t i = 0; i < n; i++)
			unlinkat(dfd, names[i], 0);
		fv_names_free(names, n);
	}
	if (dfd >= 0)
		close(dfd);
}

int fv_repo_open(const char *path, unsigned flags, const char *pass, size_t passlen, struct fv_repo **out,
		 struct fv_err *e)
{
	uint8_t raw[FV_CONFIG_SIZE], master[FV_KEY_LEN], *kp = NULL;
	size_t kn;
	int rc;
	struct fv_repo *r = calloc(1, sizeof *r);
	if (!r)
		return fv_err_set(e, -ENOMEM, "out of memory");
	r->fd = -1;
	r->flags = flags;
	rc = fv_crypto_init();
	if (rc < 0) {
		fv_err_set(e, rc, "cannot initialise libsodium");
		goto fail;
	}
	if (!(r->path = strdup(path))) {
		rc = fv_err_set(e, -ENOMEM, "out of memory");
		goto fail;
	}
	r->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			rc = fv_err_set(
				e, -ENOENT,
				"%s is not a fabvault repository (%s); create one with: fabvault init DIR",
				path, errno == ENOENT ? "no such directory" : "not a directory");
		else
			rc = fv_err_sys(e, -errno, "cannot open repository %s", path);
		goto fail;
	}
	rc = read_config(r->fd, path, &r->cfg, raw, e);
	if (rc < 0)
		goto fail;
	rc = read_keyfile(r->fd, path, &kp, &kn, e);
	if (rc < 0)
		goto fail;
	rc = fv_keyfile_needs_passphrase(kp, kn);
	if (rc == 1 && !pass) {
		rc = fv_err_set(e, -ENOKEY,
				"repository %s is encrypted and no passphrase was given (set "
				"FABVAULT_PASSPHRASE, use --passphrase-file, or run on a terminal)",
				path);
		goto fail;
	}
	rc = fv_keyfile_unwrap(kp, kn, r->cfg.repo_id, pass, passlen, master);
	if (rc == -EKEYREJECTED) {
		fv_err_set(e, rc, "wrong passphrase for repository %s", path);
		goto fail;
	} else if (rc == -ENOMEM) {
		fv_err_set(e, rc, "not enough memory for the key derivation (Argon2id) of %s", path);
		goto fail;
	} else if (rc < 0) {
		fv_err_set(e, rc,
			   "repository %s: key file %s is damaged (checksum mismatch or wrong repository)",
			   path, KEYFILE);
		goto fail;
	}
	fv_keys_derive(master, r->cfg.enc, &r->keys);
	sodium_memzero(master, sizeof master);
	if (fv_config_verify_mac(raw, &r->keys) < 0) {
		rc = fv_err_set(e, -EUCLEAN, "repository %s: config file was modified (MAC mismatch)", path);
		goto fail;
	}
	if (r->cfg.enc == FV_ENC_AESGCM && !fv_crypto_aesgcm_available()) {
		rc = fv_err_set(e, -ENOTSUP,
				"repository %s uses AES-256-GCM, which this CPU does not support", path);
		goto fail;
	}
	rc = fv_chunker_init(&r->chunker, &r->cfg.chunk, r->keys.gear);
	if (rc < 0) {
		fv_err_set(e, -EUCLEAN, "repository %s: invalid chunker parameters in config", path);
		goto fail;
	}
	r->cctx = ZSTD_createCCtx();
	r->dctx = ZSTD_createDCtx();
	if (!r->cctx || !r->dctx) {
		rc = fv_err_set(e, -ENOMEM, "out of memory (zstd contexts)");
		goto fail;
	}
	if (flags & FV_OPEN_WRITE) {
		rc = fv_lock_acquire(r->fd, path, &r->took_stale, &r->stale_owner, e);
		if (rc < 0)
			goto fail;
		r->locked = true;
		clean_tmp(r);
	}
	if (!(flags & FV_OPEN_NO_INDEX)) {
		rc = load_index(r, e);
		if (rc < 0)
			goto fail;
	}
	free(kp);
	*out = r;
	return 0;
fail:
	free(kp);
	sodium_memzero(master, sizeof master);
	fv_repo_close(r);
	return rc;
}

static void pack_fds_close(struct fv_repo *r)
{
	for (int i = 0; i < PACK_FD_CACHE; i++) {
		if (r->pfd[i].pack)
			close(r->pfd[i].fd);
		r->pfd[i].pack = 0;
	}
}

void fv_repo_close(struct fv_repo *r)
{
	if (!r)
		return;
	if (r->writing)
		fv_pack_writer_abort(&r->pw, r->fd);
	pack_fds_close(r);
	if (r->locked)
		fv_lock_release(r->fd);
	if (r->fd >= 0)
		close(r->fd);
	ZSTD_freeCCtx(r->cctx);
	ZSTD_freeDCtx(r->dctx);
	fv_buf_free(&r->plain);
	fv_buf_free(&r->sealed);
	fv_buf_free(&r->frame);
	fv_index_free(&r->idx);
	fv_keys_wipe(&r->keys);
	free(r->path);
	free(r);
}

const struct fv_keys *fv_repo_keys(const struct fv_repo *r)
{
	return &r->keys;
}

const struct fv_chunker *fv_repo_chunker(const struct fv_repo *r)
{
	return &r->chunker;
}

const char *fv_repo_path(const struct fv_repo *r)
{
	return r->path;
}

void fv_repo_describe(const struct fv_repo *r, char id_hex[33], enum fv_enc *enc, int *zlevel,
		      struct fv_chunker_params *chunk)
{
	fv_hex(r->cfg.repo_id, 16, id_hex);
	*enc = r->cfg.enc;
	*zlevel = r->cfg.compression ? r->cfg.zstd_level : 0;
	*chunk = r->cfg.chunk;
}

bool fv_repo_took_stale_lock(const struct fv_repo *r, char host[256], long *pid)
{
	if (r->took_stale) {
		snprintf(host, 256, "%s", r->stale_owner.host);
		*pid = r->stale_owner.pid;
	}
	return r->took_stale;
}

void fv_repo_stats(const struct fv_repo *r, struct fv_repo_stats *st)
{
	*st = r->stats;
}

void fv_repo_id(const struct fv_repo *r, const void *data, size_t len, uint8_t id[FV_ID_LEN])
{
	fv_id_compute(&r->keys, data, len, id);
}

bool fv_repo_has(const struct fv_repo *r, const uint8_t id[FV_ID_LEN])
{
	return fv_index_find(&r->idx, id) != NULL;
}

static int finish_pack(struct fv_repo *r, struct fv_err *e)
{
	if (!r->writing)
		return 0;
	r->writing = false;
	/* the open pack's fd may be cached for reads under its tmp name */
	for (int i = 0; i < PACK_FD_CACHE; i++) {
		if (r->pfd[i].pack == r->pw_num + 1) {
			close(r->pfd[i].fd);
			r->pfd[i].pack = 0;
		}
	}
	int rc = fv_pack_writer_finish(&r->pw, &r->keys, r->fd);
	if (rc < 0)
		return fv_err_sys(e, rc, "cannot finish pack file in %s/packs", r->path);
	return 0;
}

#define BLOB_MAX (256u << 20)

/* Open a pack when none is, then add the sealed blob to it and to the index.
 * idx_lock (may be NULL) is held while the index changes. */
int fv_repo_append(struct fv_repo *r, uint8_t type, const uint8_t id[FV_ID_LEN], uint32_t rawlen,
		   const uint8_t *sealed, size_t n, pthread_mutex_t *idx_lock, bool *added, struct fv_err *e)
{
	int rc;
	if (added)
		*added = false;
	if (!r->locked)
		return fv_err_set(e, -EPERM, "repository %s was opened read-only", r->path);
	/* only this thread changes the index: reading it needs no lock */
	if (fv_index_find(&r->idx, id)) {
		r->stats.dup_blobs++;
		return 0;
	}
	if (!r->writing) {
		rc = fv_pack_writer_open(&r->pw, r->fd);
		if (rc < 0)
			return fv_err_sys(e, rc, "cannot create a pack file in %s/tmp", r->path);
		if (idx_lock)
			pthread_mutex_lock(idx_lock);
		rc = fv_index_pack_number(&r->idx, r->pw.packid, &r->pw_num);
		if (idx_lock)
			pthread_mutex_unlock(idx_lock);
		if (rc < 0) {
			fv_pack_writer_abort(&r->pw, r->fd);
			return fv_err_set(e, rc, "out of memory");
		}
		r->writing = true;
	}
	struct fv_pack_entry pe;
	rc = fv_pack_writer_add(&r->pw, type, id, rawlen, sealed, n, &pe);
	if (rc < 0) {
		/* the pack is unusable; its blobs were never committed. Drop it and
		 * forget them so a later put does not believe they exist. */
		r->writing = false;
		fv_pack_writer_abort(&r->pw, r->fd);
		fv_err_sys(e, rc, "cannot write to pack file in %s", r->path);
		/* entries past committed are not durable */
		if (idx_lock)
			pthread_mutex_lock(idx_lock);
		fv_index_truncate(&r->idx, r->committed);
		if (idx_lock)
			pthread_mutex_unlock(idx_lock);
		return rc;
	}
	if (idx_lock)
		pthread_mutex_lock(idx_lock);
	rc = fv_index_add(&r->idx, r->pw_num, &pe);
	if (idx_lock)
		pthread_mutex_unlock(idx_lock);
	if (rc < 0)
		return fv_err_set(e, rc, "out of memory (index)");
	if (added)
		*added = true;
	r->stats.new_blobs++;
	r->stats.new_bytes += rawlen;
	r->stats.stored_bytes += pe.len;
	if (r->pw.off >= r->cfg.pack_size)
		return finish_pack(r, e);
	return 0;
}

void fv_repo_count_dup(struct fv_repo *r)
{
	r->stats.dup_blobs++;
}

int fv_repo_put(struct fv_repo *r, uint8_t type, const uint8_t id[FV_ID_LEN], const void *data, size_t len,
		bool *added, struct fv_err *e)
{
	return fv_repo_put_locked(r, type, id, data, len, NULL, added, e);
}

int fv_repo_put_locked(struct fv_repo *r, uint8_t type, const uint8_t id[FV_ID_LEN], const void *data,
		       size_t len, pthread_mutex_t *idx_lock, bool *added, struct fv_err *e)
{
	int rc;
	if (added)
		*added = false;
	if (!r->locked)
		return fv_err_set(e, -EPERM, "repository %s was opened read-only", r->path);
	if (fv_index_find(&r->idx, id)) {
		r->stats.dup_blobs++;
		return 0;
	}
	if (len > BLOB_MAX)
		return fv_err_set(e, -EFBIG, "blob of %zu bytes is too large", len);
	/* plaintext = encoding byte || body; keep the compressed form only when
	 * it is smaller */
	r->plain.len = 0;
	size_t bound = ZSTD_compressBound(len);
	uint8_t *p = fv_buf_grow(&r->plain, 1 + (bound > len ? bound : len));
	if (!p)
		return fv_err_set(e, -ENOMEM, "out of memory");
	size_t plen = fv_compress_body(r->cctx, &r->cfg, data, len, p + 1, bound);
	if (plen) {
		p[0] = ENC_ZSTD;
		plen++;
	} else {
		p[0] = ENC_RAW;
		memcpy(p + 1, data, len);
		plen = 1 + len;
	}
	r->sealed.len = 0;
	uint8_t *s = fv_buf_grow(&r->sealed, plen + fv_seal_overhead(r->keys.alg));
	if (!s)
		return fv_err_set(e, -ENOMEM, "out of memory");
	rc = fv_seal(&r->keys, type, id, p, plen, s);
	if (rc < 0)
		return fv_err_set(e, rc, "cannot seal blob");
	return fv_repo_append(r, type, id, (uint32_t)len, s, r->sealed.len, idx_lock, added, e);
}

struct fv_repo_enc {
	const struct fv_keys *keys;
	const struct fv_config *cfg;
	ZSTD_CCtx *cctx;
	uint8_t *plain; /* encoding byte || compressed body */
	size_t max_len, bound;
};

int fv_repo_enc_new(const struct fv_repo *r, size_t max_len, struct fv_repo_enc **out)
{
	struct fv_repo_enc *x = calloc(1, sizeof *x);
	if (!x)
		return -ENOMEM;
	x->keys = &r->keys;
	x->cfg = &r->cfg;
	x->max_len = max_len;
	x->bound = ZSTD_compressBound(max_len);
	x->cctx = ZSTD_createCCtx();
	/* malloc, not touched here: only the pages compression uses get faulted in */
	x->plain = malloc(1 + x->bound);
	if (!x->cctx || !x->plain) {
		fv_repo_enc_free(x);
		return -ENOMEM;
	}
	*out = x;
	return 0;
}

void fv_repo_enc_free(struct fv_repo_enc *x)
{
	if (!x)
		return;
	ZSTD_freeCCtx(x->cctx);
	free(x->plain);
	free(x);
}

size_t fv_repo_sealed_max(const struct fv_repo *r, size_t len)
{
	return 1 + len + fv_seal_overhead(r->keys.alg);
}

int fv_repo_encode(struct fv_repo_enc *x, uint8_t type, const uint8_t id[FV_ID_LEN], uint8_t *data,
		   size_t len, uint8_t *out, size_t *outlen, struct fv_err *e)
{
	if (len > x->max_len || len > BLOB_MAX)
		return fv_err_set(e, -EFBIG, "blob of %zu bytes is too large", len);
	const uint8_t *pt = x->plain;
	size_t plen = fv_compress_body(x->cctx, x->cfg, data, len, x->plain + 1, x->bound);
	if (plen) {
		x->plain[0] = ENC_ZSTD;
		plen++;
	} else {
		/* raw: the encoding byte goes into the caller's headroom */
		data[-1] = ENC_RAW;
		pt = data - 1;
		plen = 1 + len;
	}
	int rc = fv_seal(x->keys, type, id, pt, plen, out);
	if (rc < 0)
		return fv_err_set(e, rc, "cannot seal blob");
	*outlen = plen + fv_seal_overhead(x->keys->alg);
	return 0;
}

int fv_repo_pack_open(const struct fv_repo *r, uint32_t num, struct fv_err *e)
{
	char path[64];
	if (r->writing && num == r->pw_num)
		snprintf(path, sizeof path, "%s", r->pw.tmpname);
	else
		fv_pack_path(r->idx.packs[num], path);
	int fd = openat(r->fd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return fv_err_set(e, -EUCLEAN,
					  "repository %s: pack %s is missing (named by the index)", r->path,
					  path);
		return fv_err_sys(e, -errno, "cannot open %s/%s", r->path, path);
	}
	return fd;
}

/* An fd for reading pack number num, from the handle's small cache. */
static int pack_fd(struct fv_repo *r, uint32_t num, struct fv_err *e)
{
	if (r->writing && num == r->pw_num) {
		/* the pack being written: its last frames may be in the writer's
		 * buffer (a failure here fails the next append too) */
		int rc = fv_pack_writer_flush(&r->pw);
		if (rc < 0)
			return fv_err_sys(e, rc, "cannot write to pack file in %s", r->path);
	}
	for (int i = 0; i < PACK_FD_CACHE; i++)
		if (r->pfd[i].pack == num + 1)
			return r->pfd[i].fd;
	int fd = fv_repo_pack_open(r, num, e);
	if (fd < 0)
		return fd;
	struct pack_fd *slot = &r->pfd[r->pfd_next++ % PACK_FD_CACHE];
	if (slot->pack)
		close(slot->fd);
	slot->pack = num + 1;
	slot->fd = fd;
	return fd;
}

int fv_repo_get(struct fv_repo *r, uint8_t type, const uint8_t id[FV_ID_LEN], struct fv_buf *out,
		struct fv_err *e)
{
	char hex[2 * FV_ID_LEN + 1], path[64];
	const struct fv_index_entry *ie = fv_index_find(&r->idx, id);
	out->len = 0;
	fv_hex(id, FV_ID_LEN, hex);
	if (!ie)
		return fv_err_set(e, -ENOENT, "repository %s: blob %.16s is not in the index", r->path, hex);
	uint32_t num = fv_index_pack(ie);
	fv_pack_path(r->idx.packs[num], path);
	if (fv_index_type(ie) != type)
		return fv_err_set(e, -EUCLEAN, "repository %s: blob %.16s has the wrong type in the index",
				  r->path, hex);
	int fd = pack_fd(r, num, e);
	if (fd < 0)
		return fd;
	uint32_t rawlen = ie->rawlen;
	const uint8_t *sealed;
	size_t sealed_len;
	int rc = fv_pack_read_frame(fd, ie->off, ie->len, &r->frame, &sealed, &sealed_len);
	if (rc == -EUCLEAN)
		return fv_err_set(
			e, rc, "repository %s: blob %.16s in %s is damaged (checksum mismatch or truncated)",
			r->path, hex, path);
	if (rc < 0)
		return fv_err_sys(e, rc, "cannot read %s/%s", r->path, path);
	r->plain.len = 0;
	uint8_t *p = fv_buf_grow(&r->plain, sealed_len);
	if (!p)
		return fv_err_set(e, -ENOMEM, "out of memory");
	size_t plen;
	if (fv_unseal(&r->keys, type, id, sealed, sealed_len, p, &plen) < 0 || plen < 1)
		return fv_err_set(e, -EUCLEAN, "repository %s: blob %.16s in %s failed authentication",
				  r->path, hex, path);
	uint8_t *o = fv_buf_grow(out, rawlen);
	if (!o && rawlen)
		return fv_err_set(e, -ENOMEM, "out of memory");
	if (p[0] == ENC_RAW) {
		if (plen - 1 != rawlen)
			return fv_err_set(e, -EUCLEAN, "repository %s: blob %.16s has the wrong length",
					  r->path, hex);
		if (rawlen)
			memcpy(o, p + 1, rawlen);
	} else if (p[0] == ENC_ZSTD) {
		size_t d = ZSTD_decompressDCtx(r->dctx, o, rawlen, p + 1, plen - 1);
		if (ZSTD_isError(d) || d != rawlen)
			return fv_err_set(e, -EUCLEAN, "repository %s: blob %.16s does not decompress",
					  r->path, hex);
	} else {
		return fv_err_set(e, -EUCLEAN, "repository %s: blob %.16s has an unknown encoding", r->path,
				  hex);
	}
	uint8_t chk[FV_ID_LEN];
	fv_id_compute(&r->keys, o, rawlen, chk);
	if (sodium_memcmp(chk, id, FV_ID_LEN) != 0)
		return fv_err_set(e, -EUCLEAN, "repository %s: blob %.16s does not match its id", r->path,
				  hex);
	return 0;
}

int fv_repo_tree(struct fv_repo *r, const uint8_t id[FV_ID_LEN], struct fv_tree *t, struct fv_err *e)
{
	struct fv_buf b = {0};
	int rc = fv_repo_get(r, FV_OBJ_TREE, id, &b, e);
	if (rc == 0) {
		rc = fv_tree_decode(b.data, b.len, t);
		if (rc == -EBADMSG) {
			char hex[2 * FV_ID_LEN + 1];
			fv_hex(id, FV_ID_LEN, hex);
			rc = fv_err_set(e, -EUCLEAN, "repository %s: tree %.16s is malformed", r->path, hex);
		} else if (rc < 0) {
			fv_err_set(e, rc, "out of memory decoding a tree");
		}
	}
	fv_buf_free(&b);
	return rc;
}

int fv_repo_commit(struct fv_repo *r, struct fv_err *e)
{
	if (!r->locked)
		return fv_err_set(e, -EPERM, "repository %s was opened read-only", r->path);
	int rc = finish_pack(r, e);
	if (rc < 0)
		return rc;
	if (r->idx.n == r->committed)
		return 0;
	struct fv_buf pt = {0};
	uint8_t id[FV_ID_LEN];
	rc = fv_index_encode(&r->idx, r->committed, &pt);
	if (rc < 0)
		rc = fv_err_set(e, rc, "out of memory");
	else
		rc = obj_write(r, "index", INDEX_MAGIC, FV_OBJ_INDEX, &pt, id, e);
	if (rc == 0) {
		r->committed = r->idx.n;
		fv_index_settle(&r->idx, r->committed);
	}
	fv_buf_free(&pt);
	return rc;
}

int fv_repo_snapshot_save(struct fv_repo *r, struct fv_snapshot *s, struct fv_err *e)
{
	int rc = fv_repo_commit(r, e);
	if (rc < 0)
		return rc;
	struct fv_buf pt = {0};
	rc = fv_snapshot_encode(s, &pt);
	if (rc < 0)
		rc = fv_err_set(e, rc, "cannot encode snapshot: %s",
				rc == -ENOMEM ? "out of memory" : "invalid fields");
	else
		rc = obj_write(r, "snapshots", SNAPSHOT_MAGIC, FV_OBJ_SNAPSHOT, &pt, s->id, e);
	fv_buf_free(&pt);
	return rc;
}

static int cmp_snap(const void *a, const void *b)
{
	const struct fv_snapshot *x = a, *y = b;
	if (x->time_ns != y->time_ns)
		return x->time_ns < y->time_ns ? -1 : 1;
	return memcmp(x->id, y->id, FV_ID_LEN);
}

void fv_repo_snapshots_free(struct fv_snapshot *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fv_snapshot_free(&list[i]);
	free(list);
}

/* Read the snapshot files whose names start with prefix ("" = all). */
static int read_snapshots(struct fv_repo *r, const char *prefix, struct fv_snapshot **list, size_t *n,
			  size_t *ndamaged, struct fv_err *e)
{
	char **names = NULL;
	size_t cnt = 0, got = 0, pl = strlen(prefix);
	struct fv_snapshot *v = NULL;
	struct fv_err le = {0};
	int rc = fv_repo_list(r, "snapshots", &names, &cnt, e);
	if (rc < 0)
		return rc;
	if (ndamaged)
		*ndamaged = 0;
	v = calloc(cnt ? cnt : 1, sizeof *v);
	if (!v) {
		rc = fv_err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < cnt; i++) {
		uint8_t *pt = NULL, id[FV_ID_LEN];
		size_t len = 0;
		if (strncmp(names[i], prefix, pl) != 0)
			continue;
		rc = fv_repo_obj_read(r, "snapshots", names[i], SNAPSHOT_MAGIC, FV_OBJ_SNAPSHOT, &pt, &len,
				      id, &le);
		if (rc == 0) {
			rc = fv_snapshot_decode(pt, len, &v[got]);
			free(pt);
			if (rc == -EBADMSG)
				rc = fv_err_set(&le, -EUCLEAN, "repository %s: snapshots/%s is malformed",
						r->path, names[i]);
			else if (rc < 0)
				fv_err_set(&le, rc, "out of memory");
		}
		if (rc == -EUCLEAN && ndamaged) {
			fv_snapshot_free(&v[got]);
			(*ndamaged)++;
			if (e)
				*e = le;
			rc = 0;
			continue;
		}
		if (rc < 0) {
			fv_snapshot_free(&v[got]);
			if (e)
				*e = le;
			goto out;
		}
		memcpy(v[got].id, id, FV_ID_LEN);
		got++;
	}
	qsort(v, got, sizeof *v, cmp_snap);
	*list = v;
	*n = got;
	v = NULL;
out:
	if (v)
		fv_repo_snapshots_free(v, got);
	fv_repo_names_free(names, cnt);
	return rc;
}

int fv_repo_snapshots(struct fv_repo *r, struct fv_snapshot **list, size_t *n, size_t *ndamaged,
		      struct fv_err *e)
{
	return read_snapshots(r, "", list, n, ndamaged, e);
}

static void snapshot_move(struct fv_snapshot *dst, struct fv_snapshot *src)
{
	*dst = *src;
	memset(src, 0, sizeof *src);
}

int fv_repo_snapshot_find(struct fv_repo *r, const char *spec, struct fv_snapshot *out, struct fv_err *e)
{
	struct fv_snapshot *v = NULL;
	size_t n = 0, nd = 0;
	struct fv_err le = {0};
	memset(out, 0, sizeof *out);
	bool latest = strcmp(spec, "latest") == 0;
	int rc = read_snapshots(r, latest ? "" : spec, &v, &n, &nd, &le);
	if (rc < 0)
		return fv_err_set(e, rc, "%s", le.msg);
	if (nd && latest) {
		rc = fv_err_set(
			e, -EUCLEAN,
			"%zu snapshot files are damaged (%s), so the latest snapshot cannot be told; name a "
			"snapshot by its id (fabvault list) and run fabvault check",
			nd, le.msg);
		goto out;
	}
	if (latest) {
		if (n == 0)
			rc = fv_err_set(e, -ENOENT, "repository %s has no snapshots yet", r->path);
		else
			snapshot_move(out, &v[n - 1]);
		goto out;
	}
	size_t sl = strlen(spec), match = SIZE_MAX, nmatch = 0;
	bool hex = sl >= 4 && sl <= 2 * FV_ID_LEN;
	for (size_t i = 0; i < sl && hex; i++)
		hex = (spec[i] >= '0' && spec[i] <= '9') || (spec[i] >= 'a' && spec[i] <= 'f');
	if (!hex) {
		rc = fv_err_set(
			e, -EINVAL,
			"'%s' is not a snapshot id: use 'latest', or 4 to 64 lower-case hex digits of an "
			"id from fabvault list",
			spec);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char h[2 * FV_ID_LEN + 1];
		fv_hex(v[i].id, FV_ID_LEN, h);
		if (strncmp(h, spec, sl) == 0) {
			match = i;
			nmatch++;
		}
	}
	if (nmatch == 0 && nd)
		rc = fv_err_set(e, -EUCLEAN, "snapshot %s is damaged: %s", spec, le.msg);
	else if (nmatch == 0)
		rc = fv_err_set(e, -ENOENT, "no snapshot %s in repository %s (see fabvault list)", spec,
				r->path);
	else if (nmatch > 1)
		rc = fv_err_set(e, -EINVAL, "snapshot prefix %s is ambiguous (%zu match); give more digits",
				spec, nmatch);
	else
		snapshot_move(out, &v[match]);
out:
	fv_repo_snapshots_free(v, n);
	return rc;
}
