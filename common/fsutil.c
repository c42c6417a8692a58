#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int fv_write_full(int fd, const void *p, size_t n)
{
	const uint8_t *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int fv_pwrite_full(int fd, const void *p, size_t n, off_t off)
{
	const uint8_t *c = p;
	while (n) {
		ssize_t w = pwrite(fd, c, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

int fv_pread_some(int fd, void *p, size_t n, off_t off, size_t *got)
{
	uint8_t *c = p;
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, c + done, n - done, off + (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			*got = done;
			return -errno;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	*got = done;
	return 0;
}

int fv_pread_full(int fd, void *p, size_t n, off_t off)
{
	size_t got;
	int rc = fv_pread_some(fd, p, n, off, &got);
	if (rc < 0)
		return rc;
	return got == n ? 0 : -ENODATA;
}

int fv_read_file(int dirfd, const char *path, size_t max, uint8_t **out, size_t *len)
{
	int rc;
	uint8_t *p = NULL;
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		rc = -EFBIG;
		goto out;
	}
	p = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!p) {
		rc = -ENOMEM;
		goto out;
	}
	size_t got;
	rc = fv_pread_some(fd, p, (size_t)st.st_size, 0, &got);
	if (rc < 0)
		goto out;
	*out = p;
	*len = got;
	p = NULL;
out:
	free(p);
	close(fd);
	return rc;
}

int fv_fsync_dir(int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* The directory part of path ("." when there is none), in buf. */
static const char *parent_of(const char *path, char *buf, size_t cap)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return ".";
	size_t n = (size_t)(slash - path);
	if (n == 0 || n >= cap)
		return n == 0 ? "/" : ".";
	memcpy(buf, path, n);
	buf[n] = 0;
	return buf;
}

int fv_write_file_durable(int dirfd, const char *tmpdir, const char *path, const void *p, size_t n,
			  int no_replace)
{
	char tmp[PATH_MAX], pbuf[PATH_MAX];
	uint8_t rnd[8];
	int rc, fd = -1;

	if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
		return -EIO;
	snprintf(tmp, sizeof tmp, "%s/.w-%02x%02x%02x%02x%02x%02x%02x%02x", tmpdir, rnd[0], rnd[1], rnd[2],
		 rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = fv_write_full(fd, p, n);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0)
		goto fail;
	if (no_replace) {
		if (renameat2(dirfd, tmp, dirfd, path, RENAME_NOREPLACE) < 0) {
			rc = -errno;
			goto fail;
		}
	} else if (renameat(dirfd, tmp, dirfd, path) < 0) {
		rc = -errno;
		goto fail;
	}
	return fv_fsync_dir(dirfd, parent_of(path, pbuf, sizeof pbuf));
fail:
	unlinkat(dirfd, tmp, 0);
	return rc;
}

int fv_mkdir_p(int dirfd, const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0)
		return -ENOENT;
	if (n >= sizeof buf)
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *s = buf + 1;; s++) {
		if (*s == '/' || *s == 0) {
			char c = *s;
			*s = 0;
			if (mkdirat(dirfd, buf, mode) < 0 && errno != EEXIST)
				return -errno;
			*s = c;
			if (!c)
				break;
		}
	}
	struct stat st;
	if (fstatat(dirfd, path, &st, 0) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

void fv_names_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int fv_dir_names(int dirfd, const char *path, int skip_hidden, char ***names, size_t *n, int *errors)
{
	/* NULL: dirfd itself, without a lookup (which would need search permission) */
	int fd = path ? openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : dup(dirfd);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	rewinddir(d);
	char **v = NULL;
	size_t cnt = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	if (errors)
		*errors = 0;
	for (;;) {
		errno = 0;
		if (!(de = readdir(d))) {
			if (errno && errors)
				*errors = -errno;
			else if (errno)
				rc = -errno;
			break;
		}
		const char *nm = de->d_name;
		if (!strcmp(nm, ".") || !strcmp(nm, "..") || (skip_hidden && nm[0] == '.'))
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 32;
			char **nv = realloc(v, cap * sizeof *v);
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		if (!(v[cnt] = strdup(nm))) {
			rc = -ENOMEM;
			break;
		}
		cnt++;
	}
	closedir(d);
	if (rc < 0) {
		fv_names_free(v, cnt);
		return rc;
	}
	*names = v;
	*n = cnt;
	return 0;
}

int fv_reopen(int fd, int flags)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	int nfd = open(path, flags | O_CLOEXEC);
	return nfd < 0 ? -errno : nfd;
}
