/* dwrite: writing a restored file with O_DIRECT, in aligned windows.
 *
 * A restore writes each chunk at its offset as soon as a worker has it,
 * from any of several workers, in pack order rather than file order.
 * Written through the page cache, every byte is first copied into a
 * freshly allocated page; on the machines measured (docs/performance.md,
 * "Restore") that copy was the largest part of a restore's time. Here a
 * file is cut in windows of FV_DWRITE_WIN bytes at multiples of
 * FV_DWRITE_WIN: the parts of chunks that fall in a window are copied into
 * an aligned buffer of a shared pool, and the window is written with one
 * O_DIRECT pwrite once every byte it expects has arrived. A chunk that
 * covers whole windows is written from the caller's buffer without a copy.
 *
 * What goes through the page cache instead: windows that hold a hole (the
 * hole stays a hole) or that a skipped range leaves incomplete; windows
 * opened when the pool had no free buffer (the pool never blocks); every
 * write once the file system refused an O_DIRECT write (EINVAL).
 *
 * A window at the end of the file is written padded with zeros to
 * FV_DWRITE_ALIGN: the caller sets the file's size afterwards (ftruncate).
 *
 * Thread safety: fv_dwrite_expect on one thread before any fv_dwrite_put;
 * then fv_dwrite_put and fv_dwrite_skip from any threads at once; then
 * fv_dwrite_finish and fv_dwrite_free after every put and skip returned
 * (ordered by the caller, e.g. by the reference count that says the file
 * is complete). The pool is thread-safe. */
#ifndef FV_DWRITE_H
#define FV_DWRITE_H

#include <stddef.h>
#include <stdint.h>

#define FV_DWRITE_WIN (1u << 20)    /* window size and alignment in the file */
#define FV_DWRITE_ALIGN 4096u       /* O_DIRECT alignment of offsets, lengths, memory */
#define FV_DWRITE_MIN (256u * 1024) /* files below this gain nothing: write them plainly */

struct fv_dwrite_pool;
struct fv_dwrite;

/* A pool of at most max_windows window buffers (FV_DWRITE_WIN bytes each,
 * allocated when first needed, freed by fv_dwrite_pool_free). Returns 0 or
 * -ENOMEM. */
int fv_dwrite_pool_new(struct fv_dwrite_pool **out, unsigned max_windows);
void fv_dwrite_pool_free(struct fv_dwrite_pool *p);

/* A writer for one file of size bytes: fd is the file opened for writing,
 * dfd the same file opened with O_DIRECT (both stay the caller's). Returns
 * 0 or -ENOMEM (-EFBIG when size is beyond what a window index holds). */
int fv_dwrite_new(struct fv_dwrite **out, struct fv_dwrite_pool *p, int fd, int dfd, uint64_t size);

/* Declare that [off, off + len) will be put or skipped; declare every such
 * range before the first put. Ranges never declared are holes. Ranges must
 * not overlap and must lie within the size. */
void fv_dwrite_expect(struct fv_dwrite *w, uint64_t off, uint64_t len);

/* Write data (len bytes, a declared range) at off. When data's address is
 * aligned like off (data % FV_DWRITE_ALIGN == off % FV_DWRITE_ALIGN), the
 * whole windows it covers are written straight from data, and the caller
 * must own FV_DWRITE_ALIGN bytes after data + len, which may be
 * overwritten (zero padding); otherwise data is only read. Returns 0 or
 * the -errno of a failed write (part of the range may be written). */
int fv_dwrite_put(struct fv_dwrite *w, uint8_t *data, size_t len, uint64_t off);

/* A declared range that will never be put (its chunk could not be read, or
 * the file is abandoned): it stays a hole. Returns 0 or -ENOMEM. */
int fv_dwrite_skip(struct fv_dwrite *w, uint64_t off, uint64_t len);

/* Write what incomplete windows hold (through the page cache, skipped
 * ranges left out) and return their buffers to the pool. Returns 0 or the
 * -errno of the first failed write; the buffers are returned either way. */
int fv_dwrite_finish(struct fv_dwrite *w);

/* Free w (buffers still held go back to the pool unwritten). NULL is fine. */
void fv_dwrite_free(struct fv_dwrite *w);

#endif
