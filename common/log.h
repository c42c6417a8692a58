/* log: messages to stderr for tools and daemons (never called by libraries).
 *
 * Lines go to stderr, where journald picks them up. When stderr is the
 * journal (JOURNAL_STREAM matches it) each line starts with a "<N>" syslog
 * priority prefix so journald keeps the level; otherwise lines read
 * "PROG: LEVEL: message" for a person.
 */
#ifndef FV_LOG_H
#define FV_LOG_H

#include <stdbool.h>
#include <syslog.h>

struct fv_log {
	const char *prog; /* prefix, e.g. "fabvault" */
	int max_prio;     /* LOG_ERR..LOG_DEBUG: lines above it are dropped */
	bool journal;     /* stderr is connected to journald */
};

/* Set up lg for program prog at LOG_NOTICE (LOG_INFO if verbose). */
void fv_log_init(struct fv_log *lg, const char *prog, int max_prio);
void fv_log(const struct fv_log *lg, int prio, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
