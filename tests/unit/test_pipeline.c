/* Unit tests for backupd/pipeline: chunks stored by worker threads come back
 * with their ids, each distinct chunk is stored once however many copies are
 * in flight at once (also thousands of small chunks in batches), what is
 * stored reads back equal (compressed, raw and empty chunks), and a pipeline
 * stopped with chunks in flight stops cleanly. */
#include "../../backupd/crypto.h"
#include "../../backupd/pipeline.h"
#include "../../backupd/repo.h"
#include "../harness.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#define MAXC (1u << 20)
#define NCH 96

struct fx {
	char dir[64];
	char repo[256];
	struct fv_repo *r;
	struct fv_err e;
	uint8_t ids[NCH][FV_ID_LEN];
	unsigned calls[NCH];
};

static int fx_init(struct fx *f)
{
	memset(f, 0, sizeof *f);
	if (fv_test_tmpdir(f->dir, sizeof f->dir, "pipeline") < 0 || fv_crypto_init() < 0)
		return -1;
	snprintf(f->repo, sizeof f->repo, "%s/repo", f->dir);
	struct fv_repo_create_opts o;
	fv_repo_create_opts_default(&o);
	o.kdf_ops = 1;
	o.kdf_mem = 8u << 20;
	o.chunk.min = 1024;
	o.chunk.avg = 4096;
	o.chunk.max = MAXC;
	o.pack_size = 1u << 20; /* several packs */
	if (fv_repo_create(f->repo, &o, "pw", 2, &f->e) < 0 ||
	    fv_repo_open(f->repo, FV_OPEN_WRITE, "pw", 2, &f->r, &f->e) < 0) {
		fprintf(stderr, "  repository: %s\n", f->e.msg);
		return -1;
	}
	return 0;
}

static void fx_fini(struct fx *f)
{
	fv_repo_close(f->r);
	if (f->dir[0])
		fv_test_rmtree(f->dir);
}

/* tag NULL: chunk idx of f; else tag is where its id goes */
static void on_stored(void *ud, void *tag, uint32_t idx, const uint8_t id[FV_ID_LEN])
{
	struct fx *f = ud;
	if (tag) {
		memcpy(tag, id, FV_ID_LEN);
		return;
	}
	memcpy(f->ids[idx], id, FV_ID_LEN);
	f->calls[idx]++;
}

/* Chunk i: one of 24 distinct contents (so each is submitted 4 times, often
 * while a copy is in flight): random (stored raw, > 256 KiB so the
 * incompressibility probe runs), text (compressed), or empty. */
static size_t make_chunk(unsigned i, uint8_t *buf)
{
	unsigned k = i % 24;
	size_t len = k == 0 ? 0 : (size_t)(k * 37813u) % MAXC;
	uint64_t x = 0x9e3779b97f4a7c15ull * (k + 1);
	for (size_t j = 0; j < len; j++) {
		if (k % 2) {
			buf[j] = (uint8_t)("pipeline chunk text "[j % 20] + (j / 4096) % 3);
		} else {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[j] = (uint8_t)x;
		}
	}
	return len;
}

FV_TEST(store_dedup_read_back)
{
	struct fx f;
	struct fv_pipe *p = NULL;
	static uint8_t buf[MAXC];
	struct fv_buf got = {0};
	FV_REQUIRE(fx_init(&f) == 0);
	FV_REQUIRE(fv_pipe_start(f.r, 3, on_stored, &f, &p, &f.e) == 0);
	for (unsigned i = 0; i < NCH; i++) {
		size_t len = make_chunk(i, buf);
		FV_REQUIRE(fv_pipe_submit(p, buf, len, NULL, i, &f.e) == 0);
		memset(buf, 0xee, len); /* the pipeline copied it */
	}
	FV_CHECK(fv_pipe_submit(p, buf, MAXC + 1, NULL, 0, &f.e) == -EFBIG);
	FV_REQUIRE(fv_pipe_wait(p, &f.e) == 0);
	uint8_t tid[FV_ID_LEN];
	FV_CHECK(fv_pipe_put_now(p, FV_OBJ_TREE, (const uint8_t *)"a tree", 6, tid, &f.e) == 0);
	fv_pipe_stop(p);
	/* read from the pack being written: its last frames are buffered by
	 * the writer until then */
	FV_CHECK(fv_repo_get(f.r, FV_OBJ_TREE, tid, &got, &f.e) == 0 && got.len == 6 &&
		 memcmp(got.data, "a tree", 6) == 0);
	struct fv_repo_stats st;
	fv_repo_stats(f.r, &st);
	FV_CHECK_EQ(st.new_blobs, 24 + 1);
	FV_CHECK_EQ(st.dup_blobs, NCH - 24);
	FV_REQUIRE(fv_repo_commit(f.r, &f.e) == 0);
	for (unsigned i = 0; i < NCH; i++) {
		uint8_t want[FV_ID_LEN];
		size_t len = make_chunk(i, buf);
		fv_repo_id(f.r, buf, len, want);
		FV_CHECK_EQ(f.calls[i], 1);
		FV_CHECK(memcmp(f.ids[i], want, FV_ID_LEN) == 0);
		FV_CHECK(fv_repo_get(f.r, FV_OBJ_DATA, want, &got, &f.e) == 0);
		FV_CHECK(got.len == len && (len == 0 || memcmp(got.data, buf, len) == 0));
	}
	FV_CHECK(fv_repo_get(f.r, FV_OBJ_TREE, tid, &got, &f.e) == 0 && got.len == 6);
	/* random chunks do not shrink: stored raw (plus the seal), not inflated */
	FV_CHECK(st.stored_bytes < st.new_bytes);
	fv_buf_free(&got);
	fx_fini(&f);
}

/* Thousands of small chunks (batches of 64, hundreds of ids in flight at
 * once, many copies of each): every one comes back with its id and reads
 * back equal, and each distinct content is stored once. A lost or stale
 * entry of the in-flight set would store a chunk twice or not at all. */
#define NSMALL 4000
#define DISTINCT 500
FV_TEST(many_small_chunks)
{
	static struct fx f;
	static uint8_t ids[NSMALL][FV_ID_LEN];
	struct fv_pipe *p = NULL;
	struct fv_buf got = {0};
	uint8_t buf[256];
	FV_REQUIRE(fx_init(&f) == 0);
	FV_REQUIRE(fv_pipe_start(f.r, 4, on_stored, &f, &p, &f.e) == 0);
	uint64_t x = 88172645463325252ull;
	unsigned content[NSMALL];
	for (unsigned i = 0; i < NSMALL; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		content[i] = (unsigned)(x % DISTINCT);
	}
	for (unsigned i = 0; i < NSMALL; i++) {
		size_t len = 16 + content[i] % 200;
		memset(buf, 0, sizeof buf);
		snprintf((char *)buf, sizeof buf, "small chunk %u", content[i]);
		/* the id comes back into ids[i], through the tag */
		FV_REQUIRE(fv_pipe_submit(p, buf, len, ids[i], 0, &f.e) == 0);
	}
	FV_REQUIRE(fv_pipe_wait(p, &f.e) == 0);
	fv_pipe_stop(p);
	struct fv_repo_stats st;
	fv_repo_stats(f.r, &st);
	FV_CHECK_EQ(st.new_blobs, DISTINCT);
	FV_CHECK_EQ(st.dup_blobs, NSMALL - DISTINCT);
	FV_REQUIRE(fv_repo_commit(f.r, &f.e) == 0);
	unsigned bad = 0;
	for (unsigned i = 0; i < NSMALL; i++) {
		uint8_t want[FV_ID_LEN];
		size_t len = 16 + content[i] % 200;
		memset(buf, 0, sizeof buf);
		snprintf((char *)buf, sizeof buf, "small chunk %u", content[i]);
		fv_repo_id(f.r, buf, len, want);
		bad += memcmp(ids[i], want, FV_ID_LEN) != 0 ||
		       fv_repo_get(f.r, FV_OBJ_DATA, want, &got, &f.e) != 0 || got.len != len ||
		       memcmp(got.data, buf, len) != 0;
	}
	FV_CHECK_EQ(bad, 0);
	fv_buf_free(&got);
	fx_fini(&f);
}

/* Stopped without waiting: workers exit, nothing is reported after stop,
 * and the repository can still be used. */
FV_TEST(stop_with_chunks_in_flight)
{
	struct fx f;
	struct fv_pipe *p = NULL;
	static uint8_t buf[MAXC];
	FV_REQUIRE(fx_init(&f) == 0);
	FV_REQUIRE(fv_pipe_start(f.r, 2, on_stored, &f, &p, &f.e) == 0);
	for (unsigned i = 0; i < 8; i++) {
		size_t len = make_chunk(i + 1, buf);
		FV_REQUIRE(fv_pipe_submit(p, buf, len, NULL, i, &f.e) == 0);
	}
	fv_pipe_stop(p);
	unsigned calls = 0;
	for (unsigned i = 0; i < 8; i++)
		calls += f.calls[i];
	FV_CHECK(calls <= 8);
	FV_CHECK(fv_repo_commit(f.r, &f.e) == 0);
	FV_CHECK(fv_pipe_start(f.r, 0, on_stored, &f, &p, &f.e) == -EINVAL);
	FV_CHECK(fv_pipe_start(f.r, FV_PIPE_WORKERS_MAX + 1, on_stored, &f, &p, &f.e) == -EINVAL);
	fx_fini(&f);
}

FV_TESTS(store_dedup_read_back, many_small_chunks, stop_with_chunks_in_flight)
