#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/fsutil.h"

#define LOCK_NAME "lock"

/* Field 22 of /proc/PID/stat: start time in clock ticks since boot. The
 * command name (field 2) may hold spaces and ')', so parse after the last ')'. */
static unsigned long long proc_start(long pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	unsigned long long v = 0;
	/* after ") " come fields 3..; starttime is field 22 → the 20th after ')' */
	for (int field = 3; field <= 22 && p; field++) {
		p = strchr(p + 1, ' ');
		if (p && field == 22)
			v = strtoull(p + 1, NULL, 10);
	}
	return v;
}

static void self_owner(struct fv_lock_owner *o)
{
	memset(o, 0, sizeof *o);
	if (gethostname(o->host, sizeof o->host - 1) < 0)
		strcpy(o->host, "unknown");
	o->pid = (long)getpid();
	o->start = proc_start(o->pid);
}

int fv_lock_read(int repofd, struct fv_lock_owner *o)
{
	uint8_t *p = NULL;
	size_t n;
	int rc = fv_read_file(repofd, LOCK_NAME, 4096, &p, &n);
	if (rc < 0)
		return rc == -ENOENT ? -ENOENT : -EUCLEAN;
	char buf[4097];
	memcpy(buf, p, n);
	buf[n] = 0;
	free(p);
	memset(o, 0, sizeof *o);
	if (sscanf(buf, "%255s %ld %llu", o->host, &o->pid, &o->start) != 3)
		return -EUCLEAN;
	return 0;
}

static bool is_stale(const struct fv_lock_owner *me, const struct fv_lock_owner *o)
{
	if (strcmp(me->host, o->host) != 0)
		return false;
	if (o->pid <= 0)
		return true;
	if (kill((pid_t)o->pid, 0) < 0 && errno == ESRCH)
		return true;
	/* the pid exists: stale only if it is another process than the owner */
	unsigned long long st = proc_start(o->pid);
	return st != 0 && o->start != 0 && st != o->start;
}

/* Make `lock` appear with its whole content at once, so that a process killed
 * while taking the lock never leaves an empty or half-written lock file that
 * nobody could judge stale: the content goes into an unnamed file (O_TMPFILE),
 * or where the filesystem has none a file named for our pid, which is then
 * linked as `lock`; link(2) fails with EEXIST if the lock is held. `named`
 * skips O_TMPFILE (used when /proc is missing). */
static int publish(int repofd, const char *line, size_t n, bool named)
{
	char tmp[64] = "";
	int fd = named ? -1 : openat(repofd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(tmp, sizeof tmp, "lock.%ld.tmp", (long)getpid());
		unlinkat(repofd, tmp, 0); /* left by a dead process that had our pid */
		fd = openat(repofd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
	}
	int rc = fv_write_full(fd, line, n);
	if (rc < 0)
		goto out;
	if (tmp[0]) {
		rc = linkat(repofd, tmp, repofd, LOCK_NAME, 0) < 0 ? -errno : 0;
	} else {
		char proc[64];
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
		rc = linkat(AT_FDCWD, proc, repofd, LOCK_NAME, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
	}
out:
	close(fd);
	if (tmp[0])
		unlinkat(repofd, tmp, 0);
	else if (rc == -ENOENT)
		return publish(repofd, line, n, true); /* no /proc: go by name */
	return rc;
}

int fv_lock_acquire(int repofd, const char *path, bool *took_stale, struct fv_lock_owner *stale_owner,
		    struct fv_err *e)
{
	struct fv_lock_owner me, o;
	char line[512];
	self_owner(&me);
	int n = snprintf(line, sizeof line, "%s %ld %llu\n", me.host, me.pid, me.start);
	*took_stale = false;
	for (int attempt = 0; attempt < 2; attempt++) {
		int rc = publish(repofd, line, (size_t)n, false);
		if (rc == 0)
			return 0;
		if (rc != -EEXIST)
			return fv_err_sys(e, rc, "cannot create lock file in %s", path);
		rc = fv_lock_read(repofd, &o);
		if (rc == -ENOENT)
			continue; /* released meanwhile */
		if (rc == 0 && is_stale(&me, &o) && attempt == 0) {
			unlinkat(repofd, LOCK_NAME, 0);
			*took_stale = true;
			if (stale_owner)
				*stale_owner = o;
			continue;
		}
		if (rc < 0)
			return fv_err_set(
				e, -EBUSY,
				"repository %s is locked (unreadable lock file); if no fabvault process "
				"uses it, run: fabvault break-lock %s",
				path, path);
		return fv_err_set(
			e, -EBUSY,
			"repository %s is locked by process %ld on host %s; wait for it to finish, or, "
			"if that process is gone, run: fabvault break-lock %s",
			path, o.pid, o.host, path);
	}
	return fv_err_set(e, -EBUSY, "repository %s: could not take the lock (contended)", path);
}

void fv_lock_release(int repofd)
{
	struct fv_lock_owner me, o;
	self_owner(&me);
	if (fv_lock_read(repofd, &o) == 0 && o.pid == me.pid && strcmp(o.host, me.host) == 0)
		unlinkat(repofd, LOCK_NAME, 0);
}

int fv_lock_break(int repofd)
{
	return unlinkat(repofd, LOCK_NAME, 0) < 0 ? -errno : 0;
}
