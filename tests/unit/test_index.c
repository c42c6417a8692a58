/* Unit tests for the index: lookups after many inserts, file codec, memory
 * per chunk (the format promises <= 64 bytes). */
#include <errno.h>

#include "../../backupd/index.h"
#include "../harness.h"

static void make_entry(struct fv_pack_entry *pe, uint32_t i)
{
	memset(pe, 0, sizeof *pe);
	/* ids are uniform in practice; mix i so the first 8 bytes differ */
	uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ull + 1;
	for (int k = 0; k < FV_ID_LEN; k += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		fv_put_le64(pe->id + k, x);
	}
	pe->type = (i % 5 == 0) ? FV_OBJ_TREE : FV_OBJ_DATA;
	pe->off = 16 + i;
	pe->len = 100 + i;
	pe->rawlen = 1000 + i;
}

FV_TEST(insert_find_duplicates)
{
	struct fv_index ix = {0};
	uint8_t p1[FV_PACK_ID_LEN] = {1}, p2[FV_PACK_ID_LEN] = {2};
	uint32_t n1, n2, again;
	FV_REQUIRE(fv_index_pack_number(&ix, p1, &n1) == 0);
	FV_REQUIRE(fv_index_pack_number(&ix, p2, &n2) == 0);
	FV_REQUIRE(fv_index_pack_number(&ix, p1, &again) == 0);
	FV_CHECK(n1 != n2);
	FV_CHECK_EQ(again, n1);
	const uint32_t N = 200000;
	for (uint32_t i = 0; i < N; i++) {
		struct fv_pack_entry pe;
		make_entry(&pe, i);
		FV_REQUIRE(fv_index_add(&ix, i < N / 2 ? n1 : n2, &pe) == 1);
	}
	FV_CHECK_EQ(ix.n, N);
	int wrong = 0;
	for (uint32_t i = 0; i < N; i++) {
		struct fv_pack_entry pe;
		make_entry(&pe, i);
		const struct fv_index_entry *e = fv_index_find(&ix, pe.id);
		if (!e || e->off != pe.off || e->len != pe.len || e->rawlen != pe.rawlen ||
		    fv_index_type(e) != pe.type || fv_index_pack(e) != (i < N / 2 ? n1 : n2))
			wrong++;
	}
	FV_CHECK_EQ(wrong, 0);
	/* a second add of a known id keeps the first location */
	struct fv_pack_entry pe;
	make_entry(&pe, 7);
	pe.off = 999999;
	FV_CHECK_EQ(fv_index_add(&ix, n2, &pe), 0);
	FV_CHECK_EQ(fv_index_find(&ix, pe.id)->off, 16 + 7);
	/* unknown ids are not found */
	make_entry(&pe, N + 5);
	FV_CHECK(fv_index_find(&ix, pe.id) == NULL);
	/* truncate forgets the tail and keeps the rest findable */
	FV_REQUIRE(fv_index_truncate(&ix, N / 2) == 0);
	make_entry(&pe, N / 2 + 3);
	FV_CHECK(fv_index_find(&ix, pe.id) == NULL);
	make_entry(&pe, 3);
	FV_CHECK(fv_index_find(&ix, pe.id) != NULL);
	fv_index_free(&ix);
}

FV_TEST(memory_per_chunk_when_loaded)
{
	/* Loading index files reserves exactly: that is the figure the docs state. */
	struct fv_index ix = {0};
	uint8_t p[FV_PACK_ID_LEN] = {3};
	uint32_t num;
	const uint32_t N = 1000000;
	FV_REQUIRE(fv_index_reserve(&ix, N) == 0);
	FV_REQUIRE(fv_index_pack_number(&ix, p, &num) == 0);
	for (uint32_t i = 0; i < N; i++) {
		struct fv_pack_entry pe;
		make_entry(&pe, i);
		FV_REQUIRE(fv_index_add(&ix, num, &pe) == 1);
	}
	double per = (double)fv_index_memory(&ix) / N;
	printf("     index memory: %.1f bytes per chunk (1M chunks)\n", per);
	FV_CHECK(per <= 64.0);
	fv_index_free(&ix);
}

FV_TEST(file_codec_roundtrip_and_rejects)
{
	struct fv_index a = {0}, b = {0};
	struct fv_buf buf = {0};
	uint8_t p1[FV_PACK_ID_LEN] = {1}, p2[FV_PACK_ID_LEN] = {2};
	uint32_t n1, n2;
	fv_index_pack_number(&a, p1, &n1);
	fv_index_pack_number(&a, p2, &n2);
	for (uint32_t i = 0; i < 100; i++) {
		struct fv_pack_entry pe;
		make_entry(&pe, i);
		fv_index_add(&a, i < 60 ? n1 : n2, &pe);
	}
	FV_REQUIRE(fv_index_encode(&a, 0, &buf) == 0);
	FV_CHECK_EQ(buf.len, 8 + 2 * (16 + 4) + 100 * FV_PACK_ENTRY_LEN);
	FV_REQUIRE(fv_index_decode(&b, buf.data, buf.len) == 0);
	FV_CHECK_EQ(b.n, 100);
	FV_CHECK_EQ(b.npacks, 2);
	for (uint32_t i = 0; i < 100; i++) {
		struct fv_pack_entry pe;
		make_entry(&pe, i);
		const struct fv_index_entry *e = fv_index_find(&b, pe.id);
		FV_CHECK(e && e->off == pe.off &&
			 memcmp(b.packs[fv_index_pack(e)], i < 60 ? p1 : p2, FV_PACK_ID_LEN) == 0);
	}
	/* every truncation is refused, never a crash */
	int accepted = 0;
	for (size_t n = 0; n < buf.len; n++) {
		struct fv_index c = {0};
		if (fv_index_decode(&c, buf.data, n) == 0)
			accepted++;
		fv_index_free(&c);
	}
	FV_CHECK_EQ(accepted, 0);
	/* a lying count */
	fv_put_le32(buf.data + 4, 0xffffffffu);
	struct fv_index c = {0};
	FV_CHECK_EQ(fv_index_decode(&c, buf.data, buf.len), -EBADMSG);
	fv_index_free(&c);
	fv_index_free(&a);
	fv_index_free(&b);
	fv_buf_free(&buf);
}

FV_TESTS(insert_find_duplicates, memory_per_chunk_when_loaded, file_codec_roundtrip_and_rejects)
