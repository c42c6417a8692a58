/* lock: the repository's exclusive writer lock, the file `lock` at the
 * repository root holding "host pid starttime\n" of its owner
 * (docs/repository-format.md, "Lock").
 *
 * A lock left by a process that is gone (same host; no such pid, or the pid
 * was reused: its start time differs) is stale and is taken over. A lock of
 * another host is never judged stale automatically: `fabvault break-lock`.
 */
#ifndef FV_LOCK_H
#define FV_LOCK_H

#include <stdbool.h>

#include "../common/err.h"

struct fv_lock_owner {
	char host[256];
	long pid;
	unsigned long long start; /* /proc/PID/stat starttime */
};

/* Take the lock in repofd (path is used in messages). Returns 0, -EBUSY
 * (held; message names the owner and the fix) or -errno. *took_stale tells
 * whether a stale lock was replaced. */
int fv_lock_acquire(int repofd, const char *path, bool *took_stale, struct fv_lock_owner *stale_owner,
		    struct fv_err *e);

/* Release a lock we hold (only if the file still names us). */
void fv_lock_release(int repofd);

/* Read the current owner: 0, -ENOENT (not locked), -EUCLEAN (unreadable). */
int fv_lock_read(int repofd, struct fv_lock_owner *o);

/* Remove the lock whoever holds it. Returns 0 or -ENOENT (not locked). */
int fv_lock_break(int repofd);

#endif
