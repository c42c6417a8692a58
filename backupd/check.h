/* check: verify a repository (docs/repository-format.md, "Checking").
 *
 * Always: every index file and snapshot authenticates; every pack is scanned
 * frame by frame (XXH3, no key needed) and its table of contents matches
 * the index; every snapshot's trees are read and every blob they name is
 * indexed and not inside a damaged frame. With read_data, every indexed
 * blob is also unsealed, decompressed and its id recomputed.
 * Each problem is reported once, naming the file and the snapshots and paths
 * it affects.
 *
 * Threads: fv_check_run runs on the thread that owns r and calls the
 * callbacks on that thread only. With read_data it starts o->threads
 * workers (backupd/reader.h, one fv_reader each) that read the blobs pack by
 * pack; they share only two bounded queues (backupd/workq.h) with the
 * calling thread and are joined before fv_check_run returns. Their failures
 * are reported by the calling thread in pack and offset order, so the report
 * does not depend on the number of threads. The check loads the index with
 * every full id kept (77 to 94 bytes per blob, not 48: it compares them
 * with the packs' tables of contents and unseals with them). Memory on top
 * of the index: 8 bytes per blob for the read order, and per worker three
 * buffers (frame, plaintext, blob) that grow in powers of two to the
 * largest blob, at most 41,943,040 bytes with 8 MiB chunks, plus a zstd
 * context (95,992 bytes).
 */
#ifndef FV_CHECK_H
#define FV_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/err.h"
#include "repo.h"

struct fv_check_opts {
	bool read_data;
	unsigned threads; /* read-data workers; 0: one per online CPU (at most FV_READ_THREADS_MAX) */
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
