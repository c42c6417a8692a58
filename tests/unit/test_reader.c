/* Unit tests for backupd/reader (per-thread blob reads) and backupd/workq
 * (the bounded queue restore and check share between threads): a reader
 * returns what fv_repo_get returns, with the same errors and messages, also
 * from several threads at once; the queue keeps order, bounds its length,
 * drains after close, and a shutdown ends every wait. */
#include "../../backupd/crypto.h"
#include "../../backupd/reader.h"
#include "../../backupd/repo.h"
#include "../../backupd/workq.h"
#include "../harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <xxhash.h>

/* ---- workq ---- */

FV_TEST(workq_keeps_order_and_drains_after_close)
{
	struct fv_workq q;
	FV_REQUIRE(fv_workq_init(&q, sizeof(int), 4) == 0);
	for (int i = 0; i < 4; i++)
		FV_CHECK_EQ(fv_workq_push(&q, &i), 0);
	int v = -1;
	FV_CHECK_EQ(fv_workq_pop(&q, &v, true, 0), 1);
	FV_CHECK_EQ(v, 0);
	v = 4;
	FV_CHECK_EQ(fv_workq_push(&q, &v), 0); /* wraps around the ring */
	fv_workq_close(&q);
	FV_CHECK_EQ(fv_workq_push(&q, &v), -EPIPE);
	for (int i = 1; i <= 4; i++) {
		FV_CHECK_EQ(fv_workq_pop(&q, &v, true, 0), 1);
		FV_CHECK_EQ(v, i);
	}
	FV_CHECK_EQ(fv_workq_pop(&q, &v, true, 0), 0);
	fv_workq_fini(&q);
}

FV_TEST(workq_pop_without_wait_and_timeout)
{
	struct fv_workq q;
	int v;
	FV_REQUIRE(fv_workq_init(&q, sizeof(int), 2) == 0);
	FV_CHECK_EQ(fv_workq_pop(&q, &v, false, 0), 0);
	FV_CHECK_EQ(fv_workq_pop(&q, &v, true, 20), -ETIMEDOUT);
	fv_workq_fini(&q);
	FV_CHECK_EQ(fv_workq_init(&q, sizeof(int), 0), -EINVAL);
}

struct blocked {
	struct fv_workq *q;
	bool pop;
	atomic_int rc;
};

static void *block_on(void *arg)
{
	struct blocked *b = arg;
	int v = 7;
	atomic_store(&b->rc, b->pop ? fv_workq_pop(b->q, &v, true, 0) : fv_workq_push(b->q, &v));
	return NULL;
}

/* A thread waiting on a full queue (push) or an empty one (pop) is released
 * by shutdown: what keeps a failed worker from hanging the others. */
FV_TEST(workq_shutdown_ends_every_wait)
{
	for (int pop = 0; pop < 2; pop++) {
		struct fv_workq q;
		struct blocked b = {.q = &q, .pop = pop};
		pthread_t t;
		int v = 1;
		atomic_init(&b.rc, 99);
		FV_REQUIRE(fv_workq_init(&q, sizeof(int), 1) == 0);
		if (!pop)
			FV_CHECK_EQ(fv_workq_push(&q, &v), 0); /* now full */
		FV_REQUIRE(pthread_create(&t, NULL, block_on, &b) == 0);
		usleep(50000);
		FV_CHECK_EQ(atomic_load(&b.rc), 99); /* still waiting */
		fv_workq_shutdown(&q);
		pthread_join(t, NULL);
		FV_CHECK_EQ(atomic_load(&b.rc), -ECANCELED);
		FV_CHECK_EQ(fv_workq_push(&q, &v), -ECANCELED);
		FV_CHECK_EQ(fv_workq_pop(&q, &v, true, 0), -ECANCELED);
		fv_workq_fini(&q);
	}
}

/* ---- threads option ---- */

FV_TEST(threads_parse_and_default)
{
	unsigned n = 0;
	FV_CHECK_EQ(fv_reader_threads_parse("1", &n), 0);
	FV_CHECK_EQ(n, 1);
	FV_CHECK_EQ(fv_reader_threads_parse("64", &n), 0);
	FV_CHECK_EQ(n, 64);
	static const char *const bad[] = {"0",   "-1", "+2", " 2", "2 ",
					  "abc", "4x", "",   "65", "99999999999999999999999"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		n = 5;
		FV_CHECK_EQ(fv_reader_threads_parse(bad[i], &n), -EINVAL);
		FV_CHECK_EQ(n, 5);
	}
	FV_CHECK_EQ(fv_reader_threads_parse(NULL, &n), -EINVAL);
	FV_CHECK(fv_reader_threads(0) >= 1 && fv_reader_threads(0) <= FV_READ_THREADS_MAX);
	FV_CHECK_EQ(fv_reader_threads(3), 3);
	FV_CHECK_EQ(fv_reader_threads(100000), FV_READ_THREADS_MAX);
}

/* ---- reader ---- */

#define NBLOBS 64

struct fx {
	char dir[64];
	char repo[256];
	struct fv_repo *r;
	struct fv_err e;
	uint8_t ids[NBLOBS][FV_ID_LEN];
};

/* blob i: i * 1000 + 1 bytes, compressible for even i, random-ish for odd */
static void blob_bytes(int i, uint8_t *p, size_t *n)
{
	uint32_t x = 2166136261u ^ (uint32_t)i;
	*n = (size_t)i * 1000 + 1;
	for (size_t k = 0; k < *n; k++) {
		x = x * 1664525u + 1013904223u;
		p[k] = i % 2 ? (uint8_t)(x >> 24) : (uint8_t)('a' + k % 7);
	}
}

static int fx_init_enc(struct fx *f, enum fv_enc enc)
{
	static uint8_t buf[NBLOBS * 1000 + 1];
	memset(f, 0, sizeof *f);
	if (fv_test_tmpdir(f->dir, sizeof f->dir, "reader") < 0 || fv_crypto_init() < 0)
		return -1;
	snprintf(f->repo, sizeof f->repo, "%s/repo", f->dir);
	struct fv_repo_create_opts o;
	fv_repo_create_opts_default(&o);
	o.kdf_ops = 1;
	o.kdf_mem = 8u << 20;
	o.enc = enc;
	if (fv_repo_create(f->repo, &o, "pw", 2, &f->e) < 0 ||
	    fv_repo_open(f->repo, FV_OPEN_WRITE, "pw", 2, &f->r, &f->e) < 0)
		return -1;
	for (int i = 0; i < NBLOBS; i++) {
		size_t n;
		blob_bytes(i, buf, &n);
		fv_repo_id(f->r, buf, n, f->ids[i]);
		if (fv_repo_put(f->r, FV_OBJ_DATA, f->ids[i], buf, n, NULL, &f->e) < 0)
			return -1;
	}
	return fv_repo_commit(f->r, &f->e);
}

static int fx_init(struct fx *f)
{
	return fx_init_enc(f, FV_ENC_XCHACHA);
}

static void fx_fini(struct fx *f)
{
	fv_repo_close(f->r);
	if (f->dir[0])
		fv_test_rmtree(f->dir);
}

struct rthread {
	struct fx *f;
	int failures;
};

static void *read_all(void *arg)
{
	struct rthread *t = arg;
	static _Thread_local uint8_t want[NBLOBS * 1000 + 1];
	struct fv_reader *rd;
	struct fv_buf out = {0};
	struct fv_err e;
	if (fv_reader_open(t->f->r, &rd, &e) < 0) {
		t->failures++;
		return NULL;
	}
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < NBLOBS; i++) {
			size_t n;
			blob_bytes(i, want, &n);
			if (fv_reader_get(rd, FV_OBJ_DATA, t->f->ids[i], &out, &e) < 0 || out.len != n ||
			    memcmp(out.data, want, n) != 0)
				t->failures++;
		}
	}
	fv_buf_free(&out);
	fv_reader_close(rd);
	return NULL;
}

FV_TEST(readers_in_parallel_read_what_was_put)
{
	struct fx f;
	FV_REQUIRE(fx_init(&f) == 0);
	struct rthread t[4];
	pthread_t tid[4];
	for (int i = 0; i < 4; i++) {
		t[i] = (struct rthread){.f = &f};
		FV_REQUIRE(pthread_create(&tid[i], NULL, read_all, &t[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(tid[i], NULL);
		FV_CHECK_EQ(t[i].failures, 0);
	}
	fx_fini(&f);
}

/* Same codes and messages as fv_repo_get for a missing blob, a wrong type
 * and a damaged frame. */
FV_TEST(reader_errors_match_repo_get)
{
	struct fx f;
	FV_REQUIRE(fx_init(&f) == 0);
	struct fv_reader *rd;
	struct fv_buf a = {0}, b = {0};
	struct fv_err ea, eb;
	FV_REQUIRE(fv_reader_open(f.r, &rd, &f.e) == 0);
	uint8_t nosuch[FV_ID_LEN] = {1, 2, 3};
	FV_CHECK_EQ(fv_reader_get(rd, FV_OBJ_DATA, nosuch, &a, &ea), -ENOENT);
	FV_CHECK_EQ(fv_repo_get(f.r, FV_OBJ_DATA, nosuch, &b, &eb), -ENOENT);
	FV_CHECK(strcmp(ea.msg, eb.msg) == 0);
	FV_CHECK_EQ(fv_reader_get(rd, FV_OBJ_TREE, f.ids[3], &a, &ea), -EUCLEAN);
	FV_CHECK_EQ(fv_repo_get(f.r, FV_OBJ_TREE, f.ids[3], &b, &eb), -EUCLEAN);
	FV_CHECK(strcmp(ea.msg, eb.msg) == 0);

	/* flip a byte inside blob 5's frame payload */
	const struct fv_index_entry *ie;
	FV_REQUIRE(fv_reader_locate(f.r, FV_OBJ_DATA, f.ids[5], &ie, &ea) == 0);
	char packs[300];
	snprintf(packs, sizeof packs, "%s/packs", f.repo);
	char cmd[600];
	snprintf(
		cmd, sizeof cmd,
		"f=$(find %s -type f | head -n 1) && printf X | dd of=$f bs=1 seek=%u conv=notrunc status=none",
		packs, ie->off + 10);
	FV_REQUIRE(system(cmd) == 0);
	fv_reader_close(rd); /* no cached fd: read the damaged file afresh */
	FV_REQUIRE(fv_reader_open(f.r, &rd, &f.e) == 0);
	FV_CHECK_EQ(fv_reader_get(rd, FV_OBJ_DATA, f.ids[5], &a, &ea), -EUCLEAN);
	FV_CHECK_EQ(fv_repo_get(f.r, FV_OBJ_DATA, f.ids[5], &b, &eb), -EUCLEAN);
	FV_CHECK(strcmp(ea.msg, eb.msg) == 0);
	FV_CHECK(strstr(ea.msg, "damaged") != NULL);
	FV_CHECK_EQ(fv_reader_get(rd, FV_OBJ_DATA, f.ids[6], &a, &ea), 0); /* the others are fine */
	fv_buf_free(&a);
	fv_buf_free(&b);
	fv_reader_close(rd);
	fx_fini(&f);
}

/* A blob whose sealed bytes are not what was hashed, as a writer bug
 * between hashing and sealing would store it: blob 7's bytes under an id
 * of 0xa5 bytes (the id in the index and in the associated data). */
static int put_mismatched(struct fx *f, uint8_t id[FV_ID_LEN])
{
	static uint8_t buf[NBLOBS * 1000 + 1];
	size_t n;
	blob_bytes(7, buf, &n);
	memset(id, 0xa5, FV_ID_LEN);
	if (fv_repo_put(f->r, FV_OBJ_DATA, id, buf, n, NULL, &f->e) < 0)
		return -1;
	return fv_repo_commit(f->r, &f->e);
}

/* Trusting the seal skips only the recomputed id: a blob sealed for its id
 * reads back the same, one whose bytes do not hash to its id is accepted
 * (that is what the id check alone catches), and without trust, or with
 * encryption none, it is still refused with fv_repo_get's message. */
FV_TEST(trusted_seal_skips_only_the_id_check)
{
	static const enum fv_enc encs[] = {FV_ENC_XCHACHA, FV_ENC_NONE};
	for (size_t k = 0; k < sizeof encs / sizeof *encs; k++) {
		struct fx f;
		FV_REQUIRE(fx_init_enc(&f, encs[k]) == 0);
		uint8_t bad[FV_ID_LEN];
		FV_REQUIRE(put_mismatched(&f, bad) == 0);
		struct fv_reader *rd, *trusting;
		struct fv_buf a = {0}, b = {0};
		struct fv_err ea, eb;
		FV_REQUIRE(fv_reader_open(f.r, &rd, &f.e) == 0);
		FV_REQUIRE(fv_reader_open(f.r, &trusting, &f.e) == 0);
		fv_reader_trust_seal(trusting, true);
		for (int i = 0; i < NBLOBS; i += 9) {
			FV_CHECK_EQ(fv_reader_get(trusting, FV_OBJ_DATA, f.ids[i], &a, &ea), 0);
			FV_CHECK_EQ(fv_reader_get(rd, FV_OBJ_DATA, f.ids[i], &b, &eb), 0);
			FV_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
		}
		FV_CHECK_EQ(fv_reader_get(rd, FV_OBJ_DATA, bad, &a, &ea), -EUCLEAN);
		FV_CHECK(strstr(ea.msg, "does not match its id") != NULL);
		FV_CHECK_EQ(fv_repo_get(f.r, FV_OBJ_DATA, bad, &b, &eb), -EUCLEAN);
		FV_CHECK(strcmp(ea.msg, eb.msg) == 0);
		int rc = fv_reader_get(trusting, FV_OBJ_DATA, bad, &a, &ea);
		if (encs[k] == FV_ENC_NONE) {
			FV_CHECK_EQ(rc, -EUCLEAN);
		} else {
			FV_CHECK_EQ(rc, 0);
			FV_CHECK_EQ(a.len, 7001);
		}
		fv_reader_trust_seal(trusting, false); /* back to the default */
		FV_CHECK_EQ(fv_reader_get(trusting, FV_OBJ_DATA, bad, &a, &ea), -EUCLEAN);
		fv_buf_free(&a);
		fv_buf_free(&b);
		fv_reader_close(rd);
		fv_reader_close(trusting);
		fx_fini(&f);
	}
}

/* The path of f's only pack into path; 0 or -1. */
static int pack_path(const struct fx *f, char *path, size_t size)
{
	char cmd[400];
	snprintf(cmd, sizeof cmd, "find %s/packs -type f | head -n 1", f->repo);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	bool got = fgets(path, (int)size, p) != NULL;
	pclose(p);
	path[strcspn(path, "\n")] = 0;
	return got && *path ? 0 : -1;
}

/* Overwrite len bytes at offset at of ie's frame payload, then the frame's
 * checksum (XXH3-64 seeded with the length, docs/repository-format.md,
 * "Packs"), so the damage gets past the frame check to the seal. 0 or -1. */
static int damage_past_checksum(const struct fx *f, const struct fv_index_entry *ie, uint32_t at,
				const void *bytes, size_t len)
{
	char path[300];
	uint32_t n = ie->len - 12; /* [u32 n][n payload][u64 xxh3] */
	uint8_t *payload = malloc(n), le[8];
	int fd = -1, rc = -1;
	if (!payload || at + len > n || pack_path(f, path, sizeof path) < 0)
		goto out;
	fd = open(path, O_RDWR);
	if (fd < 0 || pread(fd, payload, n, (off_t)ie->off + 4) != (ssize_t)n)
		goto out;
	memcpy(payload + at, bytes, len);
	uint64_t sum = XXH3_64bits_withSeed(payload, n, n);
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(sum >> (8 * i));
	if (pwrite(fd, payload, n, (off_t)ie->off + 4) == (ssize_t)n &&
	    pwrite(fd, le, 8, (off_t)ie->off + 4 + n) == 8)
		rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(payload);
	return rc;
}

/* Damage that passes the frame checksum (a byte of ciphertext changed, or
 * another blob's sealed bytes in its place) is refused by the AEAD even
 * when the reader trusts the seal, with fv_repo_get's message. */
FV_TEST(trusted_seal_still_refuses_damage_past_the_checksum)
{
	struct fx f;
	FV_REQUIRE(fx_init(&f) == 0);
	const struct fv_index_entry *i5, *i6;
	struct fv_err ea, eb;
	FV_REQUIRE(fv_reader_locate(f.r, FV_OBJ_DATA, f.ids[5], &i5, &ea) == 0);
	FV_REQUIRE(fv_reader_locate(f.r, FV_OBJ_DATA, f.ids[6], &i6, &ea) == 0);
	uint8_t x = 0x5a;
	FV_REQUIRE(damage_past_checksum(&f, i5, 40, &x, 1) == 0); /* inside the ciphertext */
	/* blob 6 starts with blob 7's sealed bytes (nonce and more) */
	const struct fv_index_entry *i7;
	FV_REQUIRE(fv_reader_locate(f.r, FV_OBJ_DATA, f.ids[7], &i7, &ea) == 0);
	uint8_t other[64];
	char path[300];
	FV_REQUIRE(pack_path(&f, path, sizeof path) == 0);
	int fd = open(path, O_RDONLY);
	FV_REQUIRE(fd >= 0);
	FV_REQUIRE(pread(fd, other, sizeof other, (off_t)i7->off + 4) == (ssize_t)sizeof other);
	close(fd);
	FV_REQUIRE(damage_past_checksum(&f, i6, 0, other, sizeof other) == 0);

	struct fv_reader *rd;
	struct fv_buf a = {0}, b = {0};
	FV_REQUIRE(fv_reader_open(f.r, &rd, &f.e) == 0);
	fv_reader_trust_seal(rd, true);
	for (int i = 5; i <= 6; i++) {
		FV_CHECK_EQ(fv_reader_get(rd, FV_OBJ_DATA, f.ids[i], &a, &ea), -EUCLEAN);
		FV_CHECK(strstr(ea.msg, "failed authentication") != NULL);
		FV_CHECK_EQ(fv_repo_get(f.r, FV_OBJ_DATA, f.ids[i], &b, &eb), -EUCLEAN);
		FV_CHECK(strcmp(ea.msg, eb.msg) == 0);
	}
	FV_CHECK_EQ(fv_reader_get(rd, FV_OBJ_DATA, f.ids[7], &a, &ea), 0); /* the others are fine */
	fv_buf_free(&a);
	fv_buf_free(&b);
	fv_reader_close(rd);
	fx_fini(&f);
}

FV_TESTS(workq_keeps_order_and_drains_after_close, workq_pop_without_wait_and_timeout,
	 workq_shutdown_ends_every_wait, threads_parse_and_default, readers_in_parallel_read_what_was_put,
	 reader_errors_match_repo_get, trusted_seal_skips_only_the_id_check,
	 trusted_seal_still_refuses_damage_past_the_checksum)
