/* pipeline: the multi-threaded store path of a snapshot. The thread that
 * creates it (the walker: it reads files and cuts chunks) submits chunks;
 * worker threads compute each chunk's id, look it up, and compress and seal
 * the new ones; the walker appends the sealed blobs to the pack and the
 * index, since the pack writer and the index have one owner.
 *
 *   walker --todo--> N workers --done--> walker (append)   (backupd/workq.h)
 *
 * Ownership. The walker owns the repository (pack writer, index writes,
 * statistics, files cache), the free slots and the in-flight count. A slot
 * (one chunk: its copy of the data and its sealed form) belongs to whoever
 * took it from a queue; threads share nothing else but the repository's
 * index, which workers read under the pipeline's lock and the walker changes
 * under it (fv_repo_append's idx_lock), and the set of ids in flight, under
 * the same lock. No global state.
 *
 * Deduplication. A worker, once it has the id, looks it up in the index and
 * among the chunks in flight, under the lock; only the first copy of an id is
 * compressed and sealed, so a day-2 snapshot (mostly known chunks) costs an
 * id and a lookup per chunk. The walker's append checks the index again.
 *
 * Chunks travel in batches (a slot): up to 64 chunks while the batch holds
 * less than 1 MiB, or one larger chunk alone, so that the 16 KiB blocks of
 * databases and vector files do not cost two thread wake-ups each. A batch
 * is handed to the workers when full and by fv_pipe_wait.
 *
 * Memory: fixed at fv_pipe_start, independent of the amount of data, with
 * M = the repository's largest chunk (D = max(M, 1 MiB)) and N workers:
 *   N + 2 slots of (D + 64) + (D + 64 x 41) bytes (chunk copies, each with
 *   one byte of headroom; sealed blobs, 41 = encoding byte + largest seal
 *   overhead),
 *   N encoders of 1 + ZSTD_compressBound(M) bytes plus a zstd context
 *   (1,303,456 bytes at level 3),
 *   the in-flight set: at most 2,048 x (N + 2) bytes.
 * With the default M = 8 MiB and N = 2: 4 x 16,779,904 + 2 x 9,724,833 +
 * 4,096 = 86,573,378 bytes at most; each more worker adds about 26.5 MB
 * (26,504,737 bytes and a few KiB of set). Buffers
 * are allocated once, and only the pages chunks touch are faulted in (about
 * 2 x 1 MiB per slot for average chunks). Trees are stored on the walker
 * thread with the repository's own scratch, as before. See
 * docs/repository-format.md, "Snapshot pipeline".
 *
 * Errors: the first failure (a worker's seal, the walker's append: disk
 * full, ...) is sticky: every later call returns it, and fv_pipe_stop shuts
 * the queues down so no thread stays blocked. The repository stays valid as
 * after a failed fv_repo_put.
 */
#ifndef FV_PIPELINE_H
#define FV_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"
#include "repo.h"

#define FV_PIPE_WORKERS_MAX 64

struct fv_pipe;

/* stored(ud, tag, idx, id): the chunk submitted with tag/idx has id and is
 * stored (appended now or earlier, or in flight to be appended before the
 * next fv_pipe_wait returns). Called on the walker thread, from inside
 * fv_pipe_submit and fv_pipe_wait, in no particular order. */
typedef void fv_pipe_stored_fn(void *ud, void *tag, uint32_t idx, const uint8_t id[FV_ID_LEN]);

/* Start nworkers (1..FV_PIPE_WORKERS_MAX) worker threads storing chunks into
 * r (opened FV_OPEN_WRITE; the calling thread becomes the walker and r's
 * owner until fv_pipe_stop). Returns 0, -EINVAL, -ENOMEM, or -EAGAIN when
 * not even one thread could be created. */
int fv_pipe_start(struct fv_repo *r, unsigned nworkers, fv_pipe_stored_fn *stored, void *ud,
		  struct fv_pipe **out, struct fv_err *e);

/* Queue a FV_OBJ_DATA chunk data[0..len) (len <= the repository's largest
 * chunk; copied: data may be reused at once) into the batch being filled.
 * Waits while every slot is in use, appending finished chunks meanwhile.
 * Returns 0 or the pipeline's error. */
int fv_pipe_submit(struct fv_pipe *p, const uint8_t *data, size_t len, void *tag, uint32_t idx,
		   struct fv_err *e);

/* Hand over the batch being filled, and wait until every submitted chunk is
 * stored (each reported via stored()). Returns 0 or the pipeline's error. */
int fv_pipe_wait(struct fv_pipe *p, struct fv_err *e);

/* Store a blob on the walker thread, now: a tree (or a chunk that has to be
 * stored before anything else). Fills id. Returns 0 or an error. */
int fv_pipe_put_now(struct fv_pipe *p, uint8_t type, const uint8_t *data, size_t len, uint8_t id[FV_ID_LEN],
		    struct fv_err *e);

/* The pipeline's sticky error, or 0: tells a failure to store (fatal) from
 * one to read a source file (which only skips the file). */
int fv_pipe_error(const struct fv_pipe *p);

/* Stop the workers and free p (may be NULL). Chunks not yet stored are
 * dropped without calling stored(): after an error, or to abandon the run.
 * Call fv_pipe_wait first to keep them. */
void fv_pipe_stop(struct fv_pipe *p);

#endif
