/* fuzz_fsreq: fabvault-exportd's request decoder and dispatcher
 * (fs/export.c, fv_export_request) on arbitrary bytes, against a small real
 * tree in a temporary directory: what every client request goes through. It
 * must never crash or over-read; every reply starts with the status returned,
 * an error carries nothing after it, a reply fits the transport (64 KiB) and
 * its bulk the capacity offered; the tree is never changed. An OPEN_INLINE
 * reply passes the client's decoder (fv_fs_open_inline_get) and carries the
 * file's own bytes; the same decoder also runs on the raw input, as a
 * hostile server's reply.
 *
 * The first 4 bytes of an input are the bulk capacity offered (little-endian),
 * the rest is the request. Node ids are inode numbers, which differ from run
 * to run: 8 bytes 0xfa in the request stand for the node id of the regular
 * file "a" (the corpus uses them to reach OPEN and READ).
 *
 * libFuzzer:  clang -fsanitize=fuzzer,address,undefined -DFV_LIBFUZZER -D_GNU_SOURCE \
 *               tests/fuzz/fuzz_fsreq.c fs/export.c fs/proto.c common/buf.c common/err.c \
 *               -lpthread
 * Without libFuzzer, the same file replays the files or directories given.
 */
#include "../../fs/export.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/buf.h"
#include "../../fs/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                                     \
	do {                                                                                                 \
		if (!(cond)) {                                                                               \
			fprintf(stderr, "fuzz_fsreq: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                             \
		}                                                                                            \
	} while (0)

/* The tree, made once per process (a fuzzer's state lives as long as it). */
struct fz {
	char root[64];
	struct fv_export *x;
	struct stat file_st;
	uint8_t bulk[1 << 20];
};

static struct fz *fz;

static void fz_cleanup(void)
{
	char cmd[128];
	fv_export_close(fz->x);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", fz->root);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_fsreq: cannot remove %s\n", fz->root);
	free(fz);
}

static void mk(const char *root, const char *rel, int kind)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", root, rel);
	if (kind == 'd') {
		FUZZ_CHECK(mkdir(p, 0755) == 0);
	} else if (kind == 'l') {
		FUZZ_CHECK(symlink("/etc", p) == 0);
	} else if (kind == 'p') {
		FUZZ_CHECK(mkfifo(p, 0644) == 0);
	} else {
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		FUZZ_CHECK(fd >= 0);
		FUZZ_CHECK(write(fd, "fabvault\n", 9) == 9);
		close(fd);
	}
}

static void fz_init(void)
{
	struct fv_err e = {0};
	fz = calloc(1, sizeof *fz);
	FUZZ_CHECK(fz != NULL);
	snprintf(fz->root, sizeof fz->root, "/tmp/fuzz_fsreq.XXXXXX");
	FUZZ_CHECK(mkdtemp(fz->root) != NULL);
	mk(fz->root, "a", 'f');
	mk(fz->root, "d", 'd');
	mk(fz->root, "d/b", 'f');
	mk(fz->root, "l", 'l');
	mk(fz->root, "p", 'p');
	/* a handle limit small enough for an input to reach it */
	struct fv_export_opts o = {.root = fz->root, .max_handles = 8, .max_dirs = 64};
	FUZZ_CHECK(fv_export_open(&o, &fz->x, &e) == 0);
	char p[256];
	snprintf(p, sizeof p, "%s/a", fz->root);
	FUZZ_CHECK(stat(p, &fz->file_st) == 0);
	atexit(fz_cleanup);
}

static void *fz_bulk(void *ud, size_t n)
{
	(void)ud;
	return n <= sizeof fz->bulk ? fz->bulk : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fz)
		fz_init();
	if (size < 4)
		return 0;
	uint32_t cap = fv_get_le32(data);
	if (cap > sizeof fz->bulk)
		cap = sizeof fz->bulk;
	/* the request bytes as a reply to the client's decoder */
	struct fv_rd raw;
	struct fv_fs_open_inline ri;
	fv_rd_init(&raw, data + 4, size - 4);
	if (fv_fs_open_inline_get(&raw, cap < FV_FS_MAX_INLINE ? cap : FV_FS_MAX_INLINE, &ri) == 0)
		FUZZ_CHECK(ri.len <= ri.attr.size && (ri.handle == 0) == (ri.len == ri.attr.size));
	uint8_t *req = malloc(size - 4 ? size - 4 : 1);
	FUZZ_CHECK(req != NULL);
	memcpy(req, data + 4, size - 4);
	static const uint8_t magic[8] = {0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa};
	for (size_t i = 0; i + 8 <= size - 4; i++)
		if (!memcmp(req + i, magic, 8))
			fv_put_le64(req + i, (uint64_t)fz->file_st.st_ino);
	struct fv_buf rep = {0};
	struct fv_export_bulk b = {.cap = cap, .get = fz_bulk};
	int rc = fv_export_request(fz->x, 0, req, size - 4, &rep, &b);
	if (rc == 0 && size - 4 == 20 && req[0] == FV_FS_OPEN_INLINE) {
		/* what the client decodes: the file's bytes, no handle when whole */
		static const char content[] = "fabvault\n";
		struct fv_fs_open_inline o;
		struct fv_rd r;
		uint32_t max = fv_get_le32(req + 16);
		fv_rd_init(&r, rep.data, rep.len);
		(void)fv_rd_u32(&r);
		FUZZ_CHECK(fv_fs_open_inline_get(&r, max, &o) == 0);
		FUZZ_CHECK(o.attr.size == 9 && o.len == (max < 9 ? max : 9) &&
			   !memcmp(o.data, content, o.len));
		FUZZ_CHECK((o.handle == 0) == (o.len == 9));
		if (o.handle)
			FUZZ_CHECK(fv_export_release(fz->x, o.handle) == 0);
	}
	free(req);
	FUZZ_CHECK(rc <= 0);
	FUZZ_CHECK(fv_buf_ok(&rep) && rep.len >= 4 && rep.len <= 65536);
	FUZZ_CHECK((int32_t)fv_get_le32(rep.data) == rc);
	FUZZ_CHECK(rc == 0 || (rep.len == 4 && b.len == 0));
	FUZZ_CHECK(b.len <= cap);
	FUZZ_CHECK(fv_export_handles(fz->x) <= 8);
	FUZZ_CHECK(fv_export_nodes(fz->x) <= 64);
	/* read-only: the file is as it was */
	struct stat st;
	char p[256];
	snprintf(p, sizeof p, "%s/a", fz->root);
	FUZZ_CHECK(stat(p, &st) == 0 && st.st_size == fz->file_st.st_size &&
		   st.st_mtim.tv_nsec == fz->file_st.st_mtim.tv_nsec);
	fv_buf_free(&rep);
	return 0;
}

#ifndef FV_LIBFUZZER
#include "driver.h"
#endif
