/* path: one address of a peer and the kind of link that reaches it
 * (docs/transport.md, "Model"): tcp://HOST[:PORT][?from=LOCAL] or
 * rdma://HOST[:PORT][?from=LOCAL]. Pure; thread-safe.
 */
#ifndef FV_PATH_H
#define FV_PATH_H

#include <stddef.h>

#include "../common/err.h"

#define FV_TP_DEFAULT_PORT 7420

enum fv_tp_kind { FV_TP_TCP = 1, FV_TP_RDMA = 2 };

struct fv_tp_path {
	int kind;      /* enum fv_tp_kind */
	char host[64]; /* numeric address or name, without IPv6 brackets */
	int port;
	char from[64]; /* local address to bind, or "" */
};

/* Parse s into p. A string without "KIND://" is taken as default_kind.
 * Returns 0 or -EINVAL with a message in e. */
int fv_tp_path_parse(const char *s, int default_kind, struct fv_tp_path *p, struct fv_err *e);

/* "tcp://10.200.1.1:7420" (with "?from=ADDR" when bound) into buf. */
const char *fv_tp_path_str(const struct fv_tp_path *p, char *buf, size_t n);

#endif
