/* fsutil: I/O helpers that retry short reads/writes and EINTR, and the
 * durable-write sequence the repository's crash safety rests on
 * (docs/repository-format.md, "Crash safety"). Thread-safe (no shared state).
 */
#ifndef FV_FSUTIL_H
#define FV_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Write all n bytes at the current offset / at off. Returns 0 or -errno. */
int fv_write_full(int fd, const void *p, size_t n);
int fv_pwrite_full(int fd, const void *p, size_t n, off_t off);
/* Read exactly n bytes at off. Returns 0, -errno, or -ENODATA at end of file. */
int fv_pread_full(int fd, void *p, size_t n, off_t off);
/* Read up to n bytes at off; *got is what was read (less only at EOF). */
int fv_pread_some(int fd, void *p, size_t n, off_t off, size_t *got);

/* Read the whole file at dirfd/path (at most max bytes, else -EFBIG) into a
 * new allocation (*out, caller frees; *len its size). Returns 0 or -errno. */
int fv_read_file(int dirfd, const char *path, size_t max, uint8_t **out, size_t *len);

/* fsync the directory dirfd/path (path may be "."). Returns 0 or -errno. */
int fv_fsync_dir(int dirfd, const char *path);

/* Durably create dirfd/path with content p[0..n): write to a temporary name
 * in tmpdir (relative to dirfd), fsync it, rename into place, fsync the
 * destination directory. Never leaves a partial file under path. With
 * no_replace, an existing path is kept and -EEXIST returned. */
int fv_write_file_durable(int dirfd, const char *tmpdir, const char *path, const void *p, size_t n,
			  int no_replace);

/* The names in directory dirfd/path (path NULL: dirfd itself), without "."
 * and "..", and without any name starting with '.' when skip_hidden, in
 * readdir order: *names[*n], free with fv_names_free. Returns 0 or -errno.
 * With errors (may be NULL), a readdir error after some entries is not
 * fatal: the names so far are returned and *errors is set to -errno. */
int fv_dir_names(int dirfd, const char *path, int skip_hidden, char ***names, size_t *n, int *errors);
void fv_names_free(char **v, size_t n);

/* mkdir dirfd/path with mode, parents included; existing directories are
 * fine. Returns 0 or -errno. */
int fv_mkdir_p(int dirfd, const char *path, mode_t mode);

/* Open the file fd refers to (any kind of descriptor, O_PATH included)
 * again, with flags (O_CLOEXEC added), through /proc/self/fd: the same
 * inode whatever happened to its name since. Returns the new descriptor or
 * -errno (-ENOENT without /proc, -EINVAL for O_DIRECT on a file system
 * without it). */
int fv_reopen(int fd, int flags);

#endif
