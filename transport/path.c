/* path: docs/transport.md, "Model". */
#include "path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int copy_part(char *dst, size_t cap, const char *s, size_t n)
{
	if (n == 0 || n >= cap)
		return -EINVAL;
	memcpy(dst, s, n);
	dst[n] = 0;
	return 0;
}

int fv_tp_path_parse(const char *s, int default_kind, struct fv_tp_path *p, struct fv_err *e)
{
	const char *orig = s;
	memset(p, 0, sizeof *p);
	p->kind = default_kind;
	p->port = FV_TP_DEFAULT_PORT;
	if (!strncmp(s, "tcp://", 6)) {
		p->kind = FV_TP_TCP;
		s += 6;
	} else if (!strncmp(s, "rdma://", 7)) {
		p->kind = FV_TP_RDMA;
		s += 7;
	} else if (strstr(s, "://")) {
		return fv_err_set(e, -EINVAL,
				  "path '%s': unknown kind (use tcp://HOST[:PORT] or rdma://HOST[:PORT])",
				  orig);
	}
	const char *q = strchr(s, '?');
	size_t hostport = q ? (size_t)(q - s) : strlen(s);
	const char *end = s + hostport, *portp = NULL;
	int rc;
	if (*s == '[') { /* [v6]:port */
		const char *rb = memchr(s, ']', hostport);
		if (!rb)
			goto bad;
		rc = copy_part(p->host, sizeof p->host, s + 1, (size_t)(rb - s - 1));
		if (rb + 1 < end) {
			if (rb[1] != ':')
				goto bad;
			portp = rb + 2;
		}
	} else {
		const char *colon = memchr(s, ':', hostport);
		if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1)))
			goto bad; /* a bare IPv6 address needs brackets */
		rc = copy_part(p->host, sizeof p->host, s, colon ? (size_t)(colon - s) : hostport);
		portp = colon ? colon + 1 : NULL;
	}
	if (rc < 0)
		goto bad;
	if (portp) {
		char *ep;
		long v = strtol(portp, &ep, 10);
		if (ep != end || portp == end || v < 0 || v > 65535)
			goto bad;
		p->port = (int)v;
	}
	if (q) {
		if (strncmp(q, "?from=", 6) != 0 ||
		    copy_part(p->from, sizeof p->from, q + 6, strlen(q + 6)) < 0)
			goto bad;
	}
	if (p->kind != FV_TP_TCP && p->kind != FV_TP_RDMA)
		goto bad;
	return 0;
bad:
	return fv_err_set(
		e, -EINVAL,
		"path '%s' is not of the form tcp://HOST[:PORT][?from=ADDR] or rdma://HOST[:PORT][?from=ADDR]",
		orig);
}

const char *fv_tp_path_str(const struct fv_tp_path *p, char *buf, size_t n)
{
	int v6 = strchr(p->host, ':') != NULL;
	snprintf(buf, n, "%s://%s%s%s:%d%s%s", p->kind == FV_TP_RDMA ? "rdma" : "tcp", v6 ? "[" : "", p->host,
		 v6 ? "]" : "", p->port, p->from[0] ? "?from=" : "", p->from);
	return buf;
}
