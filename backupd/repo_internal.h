/* repo_internal: what repo.c shares with check.c (which must read index
 * files, packs and snapshots one by one to report damage precisely). Not
 * for use outside backupd/.
 */
#ifndef FV_REPO_INTERNAL_H
#define FV_REPO_INTERNAL_H

#include <zstd.h>

#include "config.h"
#include "index.h"
#include "lock.h"
#include "pack.h"
#include "repo.h"

#define KEYFILE "keys/default"
#define OBJ_HDR_LEN 16
#define OBJ_FILE_MAX (1u << 30)
#define SNAPSHOT_MAGIC "FVSNAP\0\1"
#define INDEX_MAGIC "FVINDEX\1"
#define PACK_FD_CACHE 8

/* Blob plaintext encodings (first byte of a sealed blob). */
enum { ENC_RAW = 0, ENC_ZSTD = 1 };

struct pack_fd {
	uint32_t pack; /* pack number + 1; 0 = unused */
	int fd;
};

struct fv_repo {
	int fd;
	char *path;
	unsigned flags;
	bool locked;
	struct fv_config cfg;
	struct fv_keys keys;
	struct fv_chunker chunker;
	struct fv_index idx;
	size_t committed; /* entries [0, committed) are named by index files */
	bool writing;     /* pw holds an open pack */
	uint32_t pw_num;  /* pack number of the open pack */
	struct fv_pack_writer pw;
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	struct fv_buf plain, sealed, frame; /* scratch, reused */
	struct pack_fd pfd[PACK_FD_CACHE];
	unsigned pfd_next;
	struct fv_repo_stats stats;
	bool took_stale;
	struct fv_lock_owner stale_owner;
};

/* Read object file dir/name (index/ or snapshots/): checksum, unseal, and
 * check that the name is the keyed id of the plaintext. *pt is malloc'd. */
int fv_repo_obj_read(struct fv_repo *r, const char *dir, const char *name, const char *magic, uint8_t type,
		     uint8_t **pt, size_t *ptlen, uint8_t id[FV_ID_LEN], struct fv_err *e);

/* Open pack number num of r's index for reading (the pack being written is
 * read under its temporary name): a descriptor, or -EUCLEAN (missing, named
 * in e) or -errno. Reads r only: any thread may call it while the owner
 * does not add packs. */
int fv_repo_pack_open(const struct fv_repo *r, uint32_t num, struct fv_err *e);

/* The entries of r's directory dir (dot files excluded): *names[*n], free
 * with fv_repo_names_free. */
int fv_repo_list(struct fv_repo *r, const char *dir, char ***names, size_t *n, struct fv_err *e);
void fv_repo_names_free(char **v, size_t n);

#endif
