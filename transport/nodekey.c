/* nodekey: docs/transport.md, "Key files". */
#include "nodekey.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/fsutil.h"

#define KEY_TAG "fabvault-node-key-1 "
#define PUB_TAG "fvnode1:"
#define B64 sodium_base64_VARIANT_ORIGINAL

int fv_tp_key_generate(struct fv_tp_node_key *k)
{
	if (sodium_init() < 0) /* the RNG must be set up; without it there is no key */
		return -EIO;
	crypto_kx_keypair(k->pk, k->sk);
	return 0;
}

void fv_tp_key_pubstr(const uint8_t pk[FV_TP_KEY], char *out, size_t n)
{
	char b64[sodium_base64_ENCODED_LEN(FV_TP_KEY, B64)];
	sodium_bin2base64(b64, sizeof b64, pk, FV_TP_KEY, B64);
	snprintf(out, n, PUB_TAG "%s", b64);
}

/* Decode exactly 32 bytes of base64 from s[0..n). */
static int unb64(const char *s, size_t n, uint8_t out[FV_TP_KEY])
{
	size_t got = 0;
	const char *end = NULL;
	if (sodium_base642bin(out, FV_TP_KEY, s, n, NULL, &got, &end, B64) != 0 || got != FV_TP_KEY ||
	    end != s + n)
		return -EINVAL;
	return 0;
}

int fv_tp_key_pubparse(const char *s, uint8_t pk[FV_TP_KEY])
{
	if (strncmp(s, PUB_TAG, strlen(PUB_TAG)) != 0)
		return -EINVAL;
	s += strlen(PUB_TAG);
	return unb64(s, strcspn(s, " \t\r\n"), pk);
}

void fv_tp_key_fingerprint(const uint8_t pk[FV_TP_KEY], char out[17])
{
	uint8_t h[32];
	crypto_generichash(h, sizeof h, pk, FV_TP_KEY, NULL, 0);
	fv_hex(h, 8, out);
}

static int write_new(const char *path, const char *text, mode_t mode, int force, struct fv_err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL), mode);
	if (fd < 0) {
		if (errno == EEXIST)
			return fv_err_set(e, -EEXIST, "%s exists: not overwriting a node key (use --force)",
					  path);
		return fv_err_sys(e, -errno, "cannot create %s", path);
	}
	int rc = fchmod(fd, mode) < 0 ? -errno : 0;
	if (!rc)
		rc = fv_write_full(fd, text, strlen(text));
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc < 0)
		return fv_err_sys(e, rc, "cannot write %s", path);
	return 0;
}

int fv_tp_key_save(const struct fv_tp_node_key *k, const char *dir, const char *name, int force,
		   struct fv_err *e)
{
	char path[4096], pub[96], line[256];
	char b64[sodium_base64_ENCODED_LEN(FV_TP_KEY, B64)];
	int rc = fv_mkdir_p(AT_FDCWD, dir, 0755);
	if (rc < 0)
		return fv_err_sys(e, rc, "cannot create directory %s", dir);
	sodium_bin2base64(b64, sizeof b64, k->sk, FV_TP_KEY, B64);
	snprintf(line, sizeof line, KEY_TAG "%s\n", b64);
	snprintf(path, sizeof path, "%s/node.key", dir);
	rc = write_new(path, line, 0600, force, e);
	sodium_memzero(line, sizeof line);
	sodium_memzero(b64, sizeof b64);
	if (rc < 0)
		return rc;
	fv_tp_key_pubstr(k->pk, pub, sizeof pub);
	snprintf(line, sizeof line, "%s%s%s\n", pub, name && *name ? " " : "", name ? name : "");
	snprintf(path, sizeof path, "%s/node.pub", dir);
	return write_new(path, line, 0644, 1, e);
}

int fv_tp_key_load(const char *path, struct fv_tp_node_key *k, struct fv_err *e)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fv_err_sys(e, -errno,
				  "cannot open node key %s (create one with 'fabvault key gen-node')", path);
	struct stat st;
	int rc = fstat(fd, &st) < 0 ? -errno : 0;
	close(fd);
	if (rc < 0)
		return fv_err_sys(e, rc, "cannot stat %s", path);
	if (st.st_mode & 077)
		return fv_err_set(e, -EPERM, "node key %s is readable by others: run 'chmod 600 %s'", path,
				  path);
	rc = fv_read_file(AT_FDCWD, path, 4096, &data, &len);
	if (rc < 0)
		return fv_err_sys(e, rc, "cannot read %s", path);
	size_t tag = strlen(KEY_TAG);
	size_t n = len;
	while (n && (data[n - 1] == '\n' || data[n - 1] == '\r'))
		n--;
	if (n <= tag || memcmp(data, KEY_TAG, tag) != 0 ||
	    unb64((const char *)data + tag, n - tag, k->sk) < 0) {
		rc = fv_err_set(e, -EINVAL, "%s is not a fabvault node key (expected '%s<base64>')", path,
				KEY_TAG);
		goto out;
	}
	crypto_scalarmult_base(k->pk, k->sk);
out:
	sodium_memzero(data, len);
	free(data);
	return rc;
}

int fv_tp_peers_add(struct fv_tp_peers *p, const uint8_t pk[FV_TP_KEY], const char *name)
{
	struct fv_tp_peer *v = realloc(p->v, (p->n + 1) * sizeof *v);
	if (!v)
		return -ENOMEM;
	p->v = v;
	memcpy(v[p->n].pk, pk, FV_TP_KEY);
	snprintf(v[p->n].name, sizeof v[p->n].name, "%s", name ? name : "");
	p->n++;
	return 0;
}

int fv_tp_peers_load(const char *path, struct fv_tp_peers *p, struct fv_err *e)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return fv_err_sys(e, -errno, "cannot open peers file %s", path);
	char *line = NULL;
	size_t cap = 0;
	int rc = 0, lineno = 0;
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		char *s = line + strspn(line, " \t");
		s[strcspn(s, "\r\n")] = 0;
		if (!*s || *s == '#')
			continue;
		uint8_t pk[FV_TP_KEY];
		if (fv_tp_key_pubparse(s, pk) < 0) {
			rc = fv_err_set(e, -EINVAL,
					"%s:%d: not a node public key (expected 'fvnode1:<base64> [name]')",
					path, lineno);
			goto out;
		}
		char *name = s + strcspn(s, " \t");
		name += strspn(name, " \t");
		if (fv_tp_peers_add(p, pk, name) < 0) {
			rc = fv_err_set(e, -ENOMEM, "out of memory reading %s", path);
			goto out;
		}
	}
	if (ferror(f))
		rc = fv_err_sys(e, -EIO, "cannot read %s", path);
out:
	free(line);
	fclose(f);
	return rc;
}

const struct fv_tp_peer *fv_tp_peers_find(const struct fv_tp_peers *p, const uint8_t pk[FV_TP_KEY])
{
	for (size_t i = 0; p && i < p->n; i++)
		if (sodium_memcmp(p->v[i].pk, pk, FV_TP_KEY) == 0)
			return &p->v[i];
	return NULL;
}

void fv_tp_peers_free(struct fv_tp_peers *p)
{
	free(p->v);
	p->v = NULL;
	p->n = 0;
}
