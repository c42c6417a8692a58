/* Unit tests for packs: what is written reads back (also frames around the
 * writer's buffer size, and while the pack is being written), the table of
 * contents rebuilds the index, and the keyless scan finds any damage. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../backupd/pack.h"
#include "../../common/fsutil.h"
#include "../harness.h"

struct env {
	char dir[64];
	int fd;
	struct fv_keys k;
};

/* A repository-like directory under base ("/tmp" unless a test asks). */
static int env_open_in(struct env *v, const char *base)
{
	uint8_t master[FV_KEY_LEN] = {42};
	snprintf(v->dir, sizeof v->dir, "%s/fv-test-pack-XXXXXX", base);
	if (!mkdtemp(v->dir))
		return -1;
	v->fd = open(v->dir, O_RDONLY | O_DIRECTORY);
	mkdirat(v->fd, "tmp", 0700);
	mkdirat(v->fd, "packs", 0700);
	fv_crypto_init();
	fv_keys_derive(master, FV_ENC_XCHACHA, &v->k);
	return v->fd < 0 ? -1 : 0;
}

static int env_open(struct env *v)
{
	return env_open_in(v, "/tmp");
}

static void env_close(struct env *v)
{
	char cmd[128];
	close(v->fd);
	snprintf(cmd, sizeof cmd, "rm -rf %s", v->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", v->dir);
}

static void count_bad(void *ud, uint64_t off, const char *why)
{
	(void)why;
	uint64_t *v = ud;
	v[0]++;
	v[1] = off;
}

/* Write a pack of n blobs (payload i is i+1 bytes of value i); return its path. */
static int write_pack(struct env *v, int n, struct fv_pack_entry *ents, char path[64])
{
	struct fv_pack_writer w;
	uint8_t payload[256];
	if (fv_pack_writer_open(&w, v->fd) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		uint8_t id[FV_ID_LEN] = {(uint8_t)i, 0xee};
		memset(payload, i, (size_t)i + 1);
		if (fv_pack_writer_add(&w, FV_OBJ_DATA, id, (uint32_t)(i + 1) * 3, payload, (size_t)i + 1,
				       &ents[i]) < 0)
			return -1;
	}
	uint8_t pid[FV_PACK_ID_LEN];
	memcpy(pid, w.packid, sizeof pid);
	if (fv_pack_writer_finish(&w, &v->k, v->fd) < 0)
		return -1;
	fv_pack_path(pid, path);
	return 0;
}

FV_TEST(write_read_toc_frames)
{
	struct env v;
	struct fv_pack_entry ents[50], *toc = NULL;
	uint32_t n = 0;
	char path[64];
	FV_REQUIRE(env_open(&v) == 0);
	FV_REQUIRE(write_pack(&v, 50, ents, path) == 0);
	/* the temporary file is gone, the pack is in place */
	FV_CHECK(faccessat(v.fd, path, F_OK, 0) == 0);
	int fd = openat(v.fd, path, O_RDONLY);
	struct stat st;
	FV_REQUIRE(fd >= 0 && fstat(fd, &st) == 0);
	uint8_t pid[FV_PACK_ID_LEN];
	FV_REQUIRE(fv_unhex(path + 9, pid, FV_PACK_ID_LEN) == 0);
	FV_REQUIRE(fv_pack_read_toc(fd, (uint64_t)st.st_size, &v.k, pid, &toc, &n) == 0);
	FV_CHECK_EQ(n, 50);
	for (uint32_t i = 0; i < n && i < 50; i++)
		FV_CHECK(toc[i].type == ents[i].type && toc[i].off == ents[i].off &&
			 toc[i].len == ents[i].len && toc[i].rawlen == ents[i].rawlen &&
			 memcmp(toc[i].id, ents[i].id, FV_ID_LEN) == 0);
	struct fv_buf b = {0};
	for (int i = 0; i < 50; i++) {
		const uint8_t *pl;
		size_t pn;
		FV_REQUIRE(fv_pack_read_frame(fd, ents[i].off, ents[i].len, &b, &pl, &pn) == 0);
		FV_CHECK_EQ(pn, (size_t)i + 1);
		FV_CHECK(pl[0] == (uint8_t)i && pl[pn - 1] == (uint8_t)i);
	}
	/* the TOC is bound to its pack id: renamed packs are detected */
	uint8_t other[FV_PACK_ID_LEN] = {0};
	free(toc);
	toc = NULL;
	FV_CHECK_EQ(fv_pack_read_toc(fd, (uint64_t)st.st_size, &v.k, other, &toc, &n), -EUCLEAN);
	uint64_t bad[2] = {0};
	FV_CHECK_EQ(fv_pack_scan(fd, (uint64_t)st.st_size, count_bad, bad), 0);
	close(fd);
	fv_buf_free(&b);
	env_close(&v);
}

/* Frames of every size around the writer's buffer (FV_PACK_WBUF): small ones
 * gathered, one that does not fit written with what is buffered, one larger
 * than the buffer; what is buffered is in the file after a flush (reads of
 * the pack being written), and the finished pack reads back and scans clean. */
static void frames_of_every_size(struct fv_test_ctx *fv_t_, const char *base)
{
	struct env v;
	static const size_t sizes[] = {
		1,  100,     FV_PACK_WBUF - 200, 300,      FV_PACK_WBUF, 5,        FV_PACK_WBUF + 7,
		17, 3 << 20, 64 << 10,           64 << 10, 64 << 10,     64 << 10, 64 << 10,
		1};
	enum { N = sizeof sizes / sizeof sizes[0] };
	struct fv_pack_entry ents[N];
	struct fv_pack_writer w;
	struct fv_buf b = {0};
	static uint8_t payload[3 << 20];
	FV_REQUIRE(env_open_in(&v, base) == 0);
	FV_REQUIRE(fv_pack_writer_open(&w, v.fd) == 0);
	int rfd = openat(v.fd, w.tmpname, O_RDONLY);
	FV_REQUIRE(rfd >= 0);
	for (size_t i = 0; i < N; i++) {
		uint8_t id[FV_ID_LEN] = {(uint8_t)i, 0xbb};
		memset(payload, (int)(i + 1), sizes[i]);
		FV_REQUIRE(fv_pack_writer_add(&w, FV_OBJ_DATA, id, (uint32_t)sizes[i], payload, sizes[i],
					      &ents[i]) == 0);
		FV_CHECK_EQ(ents[i].off + ents[i].len, w.off);
		if (i % 4 == 1) {
			/* read back while the pack is written: every frame so far */
			FV_REQUIRE(fv_pack_writer_flush(&w) == 0);
			for (size_t j = 0; j <= i; j++) {
				const uint8_t *pl;
				size_t pn;
				FV_CHECK(fv_pack_read_frame(rfd, ents[j].off, ents[j].len, &b, &pl, &pn) ==
						 0 &&
					 pn == sizes[j] && pl[0] == (uint8_t)(j + 1) &&
					 pl[pn - 1] == (uint8_t)(j + 1));
			}
		}
	}
	close(rfd);
	uint8_t pid[FV_PACK_ID_LEN];
	char path[64];
	memcpy(pid, w.packid, sizeof pid);
	FV_REQUIRE(fv_pack_writer_finish(&w, &v.k, v.fd) == 0);
	FV_CHECK(w.wbuf == NULL);
	fv_pack_path(pid, path);
	int fd = openat(v.fd, path, O_RDONLY);
	struct stat st;
	FV_REQUIRE(fd >= 0 && fstat(fd, &st) == 0);
	struct fv_pack_entry *toc = NULL;
	uint32_t n = 0;
	FV_REQUIRE(fv_pack_read_toc(fd, (uint64_t)st.st_size, &v.k, pid, &toc, &n) == 0);
	FV_CHECK_EQ(n, N);
	for (uint32_t i = 0; i < n && i < N; i++) {
		const uint8_t *pl;
		size_t pn;
		FV_CHECK(toc[i].off == ents[i].off && toc[i].len == ents[i].len);
		FV_CHECK(fv_pack_read_frame(fd, ents[i].off, ents[i].len, &b, &pl, &pn) == 0 &&
			 pn == sizes[i] && pl[0] == (uint8_t)(i + 1) && pl[pn - 1] == (uint8_t)(i + 1));
	}
	uint64_t bad[2] = {0};
	FV_CHECK_EQ(fv_pack_scan(fd, (uint64_t)st.st_size, count_bad, bad), 0);
	FV_CHECK_EQ(bad[0], 0);
	free(toc);
	close(fd);
	fv_buf_free(&b);
	env_close(&v);
}

FV_TEST(buffered_frames_of_every_size)
{
	frames_of_every_size(fv_t_, "/tmp");
}

/* The same where O_DIRECT may be refused (tmpfs, on kernels before 6.6):
 * the writer falls back to the page cache with the same result. */
FV_TEST(frames_without_o_direct)
{
	struct stat st;
	if (stat("/dev/shm", &st) != 0 || !S_ISDIR(st.st_mode)) {
		printf("     (no /dev/shm: skipped)\n");
		return;
	}
	frames_of_every_size(fv_t_, "/dev/shm");
}

FV_TEST(scan_finds_every_flipped_byte)
{
	struct env v;
	struct fv_pack_entry ents[8];
	char path[64];
	FV_REQUIRE(env_open(&v) == 0);
	FV_REQUIRE(write_pack(&v, 8, ents, path) == 0);
	int fd = openat(v.fd, path, O_RDWR);
	struct stat st;
	FV_REQUIRE(fd >= 0 && fstat(fd, &st) == 0);
	int missed = 0;
	for (off_t off = 0; off < st.st_size; off++) {
		uint8_t c;
		FV_REQUIRE(pread(fd, &c, 1, off) == 1);
		c ^= 0x20;
		FV_REQUIRE(pwrite(fd, &c, 1, off) == 1);
		uint64_t bad[2] = {0};
		int rc = fv_pack_scan(fd, (uint64_t)st.st_size, count_bad, bad);
		if (rc < 1)
			missed++;
		c ^= 0x20;
		FV_REQUIRE(pwrite(fd, &c, 1, off) == 1);
	}
	FV_CHECK_EQ(missed, 0);
	/* truncation */
	FV_REQUIRE(ftruncate(fd, st.st_size - 5) == 0);
	uint64_t bad[2] = {0};
	FV_CHECK(fv_pack_scan(fd, (uint64_t)st.st_size - 5, count_bad, bad) >= 1);
	struct fv_buf b = {0};
	FV_CHECK_EQ(fv_pack_read_frame(fd, ents[7].off, ents[7].len + 100, &b, NULL, NULL), -EUCLEAN);
	fv_buf_free(&b);
	close(fd);
	env_close(&v);
}

FV_TEST(abort_leaves_nothing)
{
	struct env v;
	struct fv_pack_writer w;
	struct fv_pack_entry pe;
	uint8_t id[FV_ID_LEN] = {1};
	FV_REQUIRE(env_open(&v) == 0);
	FV_REQUIRE(fv_pack_writer_open(&w, v.fd) == 0);
	FV_REQUIRE(fv_pack_writer_add(&w, FV_OBJ_DATA, id, 3, (const uint8_t *)"abc", 3, &pe) == 0);
	char tmp[64];
	strcpy(tmp, w.tmpname);
	fv_pack_writer_abort(&w, v.fd);
	FV_CHECK(faccessat(v.fd, tmp, F_OK, 0) < 0 && errno == ENOENT);
	env_close(&v);
}

FV_TESTS(write_read_toc_frames, buffered_frames_of_every_size, frames_without_o_direct,
	 scan_finds_every_flipped_byte, abort_leaves_nothing)
