/* Unit tests for the index: lookups after many inserts, file codec, pending
 * full ids, memory per chunk (index.h promises <= 48 bytes from 1,000 chunks
 * up, at every size). */
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

static double per_chunk(const struct fv_index *ix)
{
	return (double)fv_index_memory(ix) / (double)ix->n;
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
	/* before settling, the pending full ids count too */
	FV_CHECK(per_chunk(&ix) > 72.0);
	fv_index_settle(&ix, ix.n);
	double per = per_chunk(&ix);
	printf("     index memory: %.1f bytes per chunk (1M chunks loaded)\n", per);
	FV_CHECK(per <= 48.0);
	fv_index_free(&ix);
}

FV_TEST(memory_per_chunk_at_every_size)
{
	/* Grown one add at a time, settled as a commit would: measured at round
	 * sizes and just after every growth step of the array or the table. */
	struct fv_index ix = {0};
	uint8_t p[FV_PACK_ID_LEN] = {4};
	uint32_t num;
	const uint32_t N = 1200000;
	FV_REQUIRE(fv_index_pack_number(&ix, p, &num) == 0);
	size_t cap = 0, ns = 0, steps = 0, worst_n = 0;
	double worst = 0;
	for (uint32_t i = 0; i < N; i++) {
		struct fv_pack_entry pe;
		make_entry(&pe, i);
		FV_REQUIRE(fv_index_add(&ix, num, &pe) == 1);
		bool grew = ix.cap != cap || ix.nslots != ns;
		cap = ix.cap;
		ns = ix.nslots;
		if (ix.n == 1000 || ix.n == 100000 || ix.n == 1000000) {
			fv_index_settle(&ix, ix.n);
			printf("     index memory: %.1f bytes per chunk (%zu chunks, added)\n",
			       per_chunk(&ix), ix.n);
			FV_CHECK(per_chunk(&ix) <= 48.0);
		}
		if (grew && ix.n >= 1000) {
			fv_index_settle(&ix, ix.n);
			steps++;
			if (per_chunk(&ix) > worst) {
				worst = per_chunk(&ix);
				worst_n = ix.n;
			}
		}
	}
	printf("     index memory: at most %.1f bytes per chunk just after a growth step (%zu steps from "
	       "1,000 to 1.2M chunks; worst at %zu)\n",
	       worst, steps, worst_n);
	FV_CHECK(steps > 20);
	FV_CHECK(worst <= 48.0);
	/* everything is still found after all that growth */
	int wrong = 0;
	for (uint32_t i = 0; i < N; i += 7) {
		struct fv_pack_entry pe;
		make_entry(&pe, i);
		const struct fv_index_entry *e = fv_index_find(&ix, pe.id);
		if (!e || e->off != pe.off || e != &ix.e[i])
			wrong++;
	}
	FV_CHECK_EQ(wrong, 0);
	fv_index_free(&ix);
}

FV_TEST(memory_per_chunk_loading_many_files)
{
	/* One index file per snapshot: each decode reserves for its file. */
	struct fv_index a = {0}, b = {0};
	struct fv_buf buf = {0};
	const uint32_t FILES = 40, PER = 5000;
	uint32_t num;
	double worst = 0;
	for (uint32_t f = 0; f < FILES; f++) {
		uint8_t p[FV_PACK_ID_LEN] = {5, (uint8_t)f};
		FV_REQUIRE(fv_index_pack_number(&a, p, &num) == 0);
		size_t from = a.n;
		for (uint32_t i = f * PER; i < (f + 1) * PER; i++) {
			struct fv_pack_entry pe;
			make_entry(&pe, i);
			FV_REQUIRE(fv_index_add(&a, num, &pe) == 1);
		}
		buf.len = 0;
		FV_REQUIRE(fv_index_encode(&a, from, &buf) == 0);
		fv_index_settle(&a, a.n);
		FV_REQUIRE(fv_index_decode(&b, buf.data, buf.len) == 0);
		fv_index_settle(&b, b.n);
		if (per_chunk(&b) > worst)
			worst = per_chunk(&b);
	}
	printf("     index memory: at most %.1f bytes per chunk loading %u index files of %u\n", worst, FILES,
	       PER);
	FV_CHECK(worst <= 48.0);
	FV_CHECK_EQ(b.n, (size_t)FILES * PER);
	int wrong = 0;
	for (uint32_t i = 0; i < FILES * PER; i++) {
		struct fv_pack_entry pe;
		make_entry(&pe, i);
		const struct fv_index_entry *e = fv_index_find(&b, pe.id);
		if (!e || e->off != pe.off || e->rawlen != pe.rawlen || fv_index_type(e) != pe.type ||
		    b.packs[fv_index_pack(e)][1] != i / PER)
			wrong++;
	}
	FV_CHECK_EQ(wrong, 0);
	fv_index_free(&a);
	fv_index_free(&b);
	fv_buf_free(&buf);
}

FV_TEST(memory_per_chunk_with_many_packs)
{
	/* 32 chunks per pack: default 32 MiB packs of incompressible 1 MiB chunks */
	struct fv_index ix = {0};
	const uint32_t N = 320000;
	uint32_t num = 0;
	for (uint32_t i = 0; i < N; i++) {
		if (i % 32 == 0) {
			uint8_t p[FV_PACK_ID_LEN];
			struct fv_pack_entry q;
			make_entry(&q, ~i); /* a uniform pack id */
			memcpy(p, q.id, sizeof p);
			FV_REQUIRE(fv_index_pack_number(&ix, p, &num) == 0);
			FV_REQUIRE(num == i / 32);
		}
		struct fv_pack_entry pe;
		make_entry(&pe, i);
		FV_REQUIRE(fv_index_add(&ix, num, &pe) == 1);
	}
	fv_index_settle(&ix, ix.n);
	printf("     index memory: %.1f bytes per chunk (%u chunks in %u packs)\n", per_chunk(&ix), N,
	       ix.npacks);
	FV_CHECK(per_chunk(&ix) <= 48.0);
	/* pack numbers are found again */
	int wrong = 0;
	for (uint32_t k = 0; k < ix.npacks; k++) {
		uint32_t again;
		if (fv_index_pack_number(&ix, ix.packs[k], &again) != 0 || again != k)
			wrong++;
	}
	FV_CHECK_EQ(wrong, 0);
	FV_CHECK_EQ(ix.npacks, N / 32);
	fv_index_free(&ix);
}

FV_TEST(prefix_lookups)
{
	struct fv_index ix = {0};
	uint8_t p[FV_PACK_ID_LEN] = {6};
	uint32_t num;
	FV_REQUIRE(fv_index_pack_number(&ix, p, &num) == 0);
	struct fv_pack_entry pe, q;
	for (uint32_t i = 0; i < 5000; i++) {
		make_entry(&pe, i);
		FV_REQUIRE(fv_index_add(&ix, num, &pe) == 1);
	}
	make_entry(&pe, 1234);
	/* an absent id that shares no prefix: not found */
	make_entry(&q, 999999);
	FV_CHECK(fv_index_find(&ix, q.id) == NULL);
	/* same first 8 bytes (same place in the table), differing tag bits */
	memcpy(&q, &pe, sizeof q);
	q.id[9] ^= 1;
	FV_CHECK(fv_index_find(&ix, q.id) == NULL);
	/* same first 12 bytes (place and tag), differing before byte 24 */
	memcpy(&q, &pe, sizeof q);
	q.id[FV_INDEX_PREFIX_LEN - 1] ^= 0x80;
	FV_CHECK(fv_index_find(&ix, q.id) == NULL);
	/* differing only after the prefix: taken for the same blob (index.h:
	 * 2^-193 per pair for keyed ids; the blob then fails authentication) */
	memcpy(&q, &pe, sizeof q);
	q.id[FV_ID_LEN - 1] ^= 1;
	FV_CHECK(fv_index_find(&ix, q.id) == &ix.e[1234]);
	FV_CHECK_EQ(fv_index_add(&ix, num, &q), 0);
	fv_index_free(&ix);
}

FV_TEST(pending_ids_encode_and_truncate)
{
	struct fv_index a = {0}, b = {0};
	struct fv_buf f1 = {0}, f2 = {0}, f3 = {0};
	uint8_t p1[FV_PACK_ID_LEN] = {1}, p2[FV_PACK_ID_LEN] = {2}, p3[FV_PACK_ID_LEN] = {3};
	uint32_t n1, n2, n3;
	FV_REQUIRE(fv_index_pack_number(&a, p1, &n1) == 0);
	FV_REQUIRE(fv_index_pack_number(&a, p2, &n2) == 0);
	FV_REQUIRE(fv_index_pack_number(&a, p3, &n3) == 0);
	for (uint32_t i = 0; i < 100; i++) {
		struct fv_pack_entry pe;
		make_entry(&pe, i);
		FV_REQUIRE(fv_index_add(&a, i < 60 ? n1 : n2, &pe) == 1);
	}
	/* a first index file written: its entries settle, their full ids go */
	FV_REQUIRE(fv_index_encode(&a, 0, &f1) == 0);
	fv_index_settle(&a, 100);
	FV_CHECK(fv_index_id(&a, 99) == NULL);
	FV_CHECK_EQ(a.idscap, 0);
	FV_CHECK_EQ(fv_index_encode(&a, 50, &f3), -EINVAL);
	for (uint32_t i = 100; i < 150; i++) {
		struct fv_pack_entry pe;
		make_entry(&pe, i);
		FV_REQUIRE(fv_index_add(&a, n3, &pe) == 1);
	}
	/* a pack that never became durable: truncate keeps the pending ids before it */
	FV_REQUIRE(fv_index_truncate(&a, 130) == 0);
	FV_CHECK_EQ(a.n, 130);
	int wrong = 0;
	for (uint32_t i = 0; i < 150; i++) {
		struct fv_pack_entry pe;
		make_entry(&pe, i);
		const uint8_t *id = fv_index_id(&a, i);
		if ((i >= 100 && i < 130) != (id && memcmp(id, pe.id, FV_ID_LEN) == 0))
			wrong++;
		if ((i < 130) != (fv_index_find(&a, pe.id) != NULL))
			wrong++;
	}
	FV_CHECK_EQ(wrong, 0);
	/* the second index file carries the full ids of entries 100..129 */
	FV_REQUIRE(fv_index_encode(&a, 100, &f2) == 0);
	FV_CHECK_EQ(f2.len, 8 + 16 + 4 + 30 * FV_PACK_ENTRY_LEN);
	FV_REQUIRE(fv_index_decode(&b, f1.data, f1.len) == 0);
	FV_REQUIRE(fv_index_decode(&b, f2.data, f2.len) == 0);
	FV_CHECK_EQ(b.n, 130);
	/* b never settled: it has every full id, identical to the input */
	wrong = 0;
	for (uint32_t i = 0; i < 130; i++) {
		struct fv_pack_entry pe;
		make_entry(&pe, i);
		const uint8_t *id = fv_index_id(&b, i);
		const struct fv_index_entry *e = fv_index_find(&b, pe.id);
		if (!id || memcmp(id, pe.id, FV_ID_LEN) != 0 || e != &b.e[i] || e->off != pe.off)
			wrong++;
	}
	FV_CHECK_EQ(wrong, 0);
	/* and re-encoding both files' entries gives both files' bytes */
	FV_REQUIRE(fv_index_encode(&b, 100, &f3) == 0);
	FV_CHECK(f3.len == f2.len && memcmp(f3.data, f2.data, f2.len) == 0);
	f3.len = 0;
	FV_REQUIRE(fv_index_encode(&b, 0, &f3) == 0);
	FV_CHECK_EQ(f3.len, 8 + 3 * (16 + 4) + 130 * FV_PACK_ENTRY_LEN);
	/* truncating below the settled point forgets settled entries too */
	FV_REQUIRE(fv_index_truncate(&a, 80) == 0);
	FV_CHECK_EQ(a.ids_from, 80);
	struct fv_pack_entry pe;
	make_entry(&pe, 90);
	FV_CHECK(fv_index_find(&a, pe.id) == NULL);
	FV_REQUIRE(fv_index_add(&a, n2, &pe) == 1);
	FV_CHECK(fv_index_id(&a, 80) && memcmp(fv_index_id(&a, 80), pe.id, FV_ID_LEN) == 0);
	fv_index_free(&a);
	fv_index_free(&b);
	fv_buf_free(&f1);
	fv_buf_free(&f2);
	fv_buf_free(&f3);
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

FV_TESTS(insert_find_duplicates, memory_per_chunk_when_loaded, memory_per_chunk_at_every_size,
	 memory_per_chunk_loading_many_files, memory_per_chunk_with_many_packs, prefix_lookups,
	 pending_ids_encode_and_truncate, file_codec_roundtrip_and_rejects)
