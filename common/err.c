#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int fv_err_set(struct fv_err *e, int code, const char *fmt, ...)
{
	if (!e)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	e->code = code;
	return code;
}

int fv_err_sys(struct fv_err *e, int code, const char *fmt, ...)
{
	if (!e)
		return code;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof e->msg)
		snprintf(e->msg + n, sizeof e->msg - (size_t)n, ": %s", strerror(-code));
	e->code = code;
	return code;
}

void fv_err_clear(struct fv_err *e)
{
	if (e) {
		e->code = 0;
		e->msg[0] = 0;
	}
}
