/* check: verify a repository (docs/repository-format.md, "Checking").
 *
 * Always: every index file and snapshot authenticates; every pack is scanned
 * frame by frame (XXH3, no key needed) and its table of contents matches
 * the index; every snapshot's trees are read and every blob they name is
 * indexed and not inside a damaged frame. With read_data, every indexed
 * blob is also unsealed, decompressed and its id recomputed.
 * Each problem is reported once, naming the file and the snapshots and paths
 * it affects. Single-threaded.
 */
#ifndef FV_CHECK_H
#define FV_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/err.h"
#include "repo.h"

struct fv_check_opts {
	bool read_data;
	/* problem: one line of damage (error) or of harmless leftovers (warning). */
	void (*problem)(void *ud, bool is_error, const char *msg);
	void (*progress)(void *ud, const char *phase, uint64_t done, uint64_t total);
	void *ud;
};

struct fv_check_result {
	uint64_t index_files, packs, blobs, snapshots, trees;
	uint64_t bytes_scanned;
	uint64_t errors, warnings;
};

/* Check r (opened with FV_OPEN_NO_INDEX). Returns 0 when no error was found,
 * -EUCLEAN when damage was found (details via problem()), or another negative
 * code when the check itself could not run. */
int fv_check_run(struct fv_repo *r, const struct fv_check_opts *o, struct fv_check_result *res,
		 struct fv_err *e);

#endif
