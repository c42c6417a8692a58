/* err: an error context that carries a negative errno-style code and a
 * message saying what failed, on which object, and what to do about it.
 *
 * Library code (engine, transport) never prints: it fills a struct fv_err and
 * returns the same negative code; the tool at the top prints e->msg and maps
 * e->code to an exit status. One fv_err belongs to one thread.
 */
#ifndef FV_ERR_H
#define FV_ERR_H

#include <errno.h>

struct fv_err {
	int code;       /* 0 or a negative errno value */
	char msg[1024]; /* human-readable, no trailing newline */
};

/* Record code (negative) and a printf-style message in e (e may be NULL).
 * Returns code, so callers can write `return fv_err_set(e, -EIO, ...)`. */
int fv_err_set(struct fv_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Like fv_err_set, with ": strerror(-code)" appended to the message. */
int fv_err_sys(struct fv_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reset e to "no error". */
void fv_err_clear(struct fv_err *e);

#endif
