/* Unit tests for transport/frame: the wire header and the segment trailers
 * (docs/transport.md, "Frame"), and transport/path: path strings. */
#include "../../common/buf.h"
#include "../../transport/frame.h"
#include "../../transport/path.h"
#include "../harness.h"

#include <errno.h>
#include <sodium.h>

static size_t build(uint8_t *m, struct fv_frame_hdr *h, const struct fv_frame_dir *d, const char *ctl)
{
	h->ctl_len = (uint32_t)strlen(ctl);
	fv_frame_encode(h, m);
	memcpy(m + FV_FRAME_HDR, ctl, h->ctl_len);
	if (h->ctl_len)
		fv_frame_seal(d, 0, m, m + FV_FRAME_HDR, h->ctl_len, m + FV_FRAME_HDR + h->ctl_len);
	return fv_frame_ctl_size(h);
}

FV_TEST(header_roundtrip)
{
	uint8_t m[FV_FRAME_HDR];
	struct fv_frame_hdr h = {.type = FV_FT_REQUEST,
				 .flags = FV_FF_IDEMPOTENT,
				 .id = 0x1122334455667788ull,
				 .ctl_len = 65536,
				 .bulk_len = 64u << 20,
				 .bulk_addr = 0x7fff00001000ull,
				 .bulk_rkey = 0xabcd};
	fv_frame_encode(&h, m);
	FV_CHECK(memcmp(m, "FVT1", 4) == 0);
	FV_CHECK_EQ(m[8], 0x88); /* little-endian */
	struct fv_frame_hdr g;
	const char *why = NULL;
	FV_REQUIRE(fv_frame_decode(m, &g, &why) == 0);
	FV_CHECK(g.type == h.type && g.flags == h.flags && g.id == h.id && g.ctl_len == h.ctl_len &&
		 g.bulk_len == h.bulk_len && g.bulk_addr == h.bulk_addr && g.bulk_rkey == h.bulk_rkey);
	FV_CHECK_EQ(fv_frame_ctl_size(&g), FV_FRAME_HDR + 65536 + 16);
}

/* Every single-bit flip of a header is refused, with a reason. */
FV_TEST(header_bit_flips)
{
	uint8_t m[FV_FRAME_HDR];
	struct fv_frame_hdr h = {.type = FV_FT_REPLY, .id = 7, .ctl_len = 10, .bulk_len = 4096};
	fv_frame_encode(&h, m);
	int refused = 0;
	for (int bit = 0; bit < FV_FRAME_HDR * 8; bit++) {
		m[bit / 8] ^= (uint8_t)(1 << (bit % 8));
		struct fv_frame_hdr g;
		const char *why = NULL;
		refused += fv_frame_decode(m, &g, &why) == -EBADMSG && why != NULL;
		m[bit / 8] ^= (uint8_t)(1 << (bit % 8));
	}
	FV_CHECK_EQ(refused, FV_FRAME_HDR * 8);
}

/* Limits and rules are checked even when the checksum is right. */
FV_TEST(header_limits)
{
	static const struct fv_frame_hdr bad[] = {
		{.type = 0},
		{.type = 10},
		{.type = FV_FT_REQUEST, .flags = 2},
		{.type = FV_FT_REQUEST, .ctl_len = 65537},
		{.type = FV_FT_REPLY, .bulk_len = (64u << 20) + 1},
		{.type = FV_FT_PING, .bulk_len = 1},
		{.type = FV_FT_HELLO, .bulk_addr = 1},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint8_t m[FV_FRAME_HDR];
		struct fv_frame_hdr h = bad[i], g;
		fv_frame_encode(&h, m);
		const char *why = NULL;
		FV_CHECK(fv_frame_decode(m, &g, &why) == -EBADMSG && why);
	}
	/* a frame whose length does not match its header */
	uint8_t m[FV_FRAME_MAX_MSG];
	struct fv_frame_hdr h = {.type = FV_FT_REQUEST, .id = 1};
	struct fv_frame_dir d = {.mode = FV_MODE_INTEGRITY};
	size_t n = build(m, &h, &d, "hello");
	struct fv_frame_hdr g;
	const char *why = NULL;
	FV_CHECK(fv_frame_parse(m, n, &g, &why) == 0);
	FV_CHECK(fv_frame_parse(m, n - 1, &g, &why) == -EBADMSG);
	FV_CHECK(fv_frame_parse(m, n + 1, &g, &why) == -EBADMSG);
	FV_CHECK(fv_frame_parse(m, 10, &g, &why) == -EBADMSG);
}

/* Integrity mode: a changed byte of a segment fails its checksum. */
FV_TEST(integrity_trailer)
{
	uint8_t m[FV_FRAME_MAX_MSG];
	struct fv_frame_hdr h = {.type = FV_FT_REQUEST, .id = 9};
	struct fv_frame_dir d = {.mode = FV_MODE_INTEGRITY};
	size_t n = build(m, &h, &d, "a control message");
	FV_CHECK_EQ(n, FV_FRAME_HDR + 17 + 16);
	uint8_t *p = m + FV_FRAME_HDR;
	FV_CHECK(fv_frame_open(&d, 0, m, p, 17, p + 17) == 0);
	FV_CHECK(memcmp(p, "a control message", 17) == 0);
	p[3] ^= 1;
	FV_CHECK(fv_frame_open(&d, 0, m, p, 17, p + 17) == -EBADMSG);
	p[3] ^= 1;
	/* the checksum is bound to the header: same bytes under another id fail */
	struct fv_frame_hdr h2 = h;
	h2.id = 10;
	uint8_t m2[FV_FRAME_HDR];
	fv_frame_encode(&h2, m2);
	FV_CHECK(fv_frame_open(&d, 0, m2, p, 17, p + 17) == -EBADMSG);
}

/* Encrypt mode, both ciphers: round trip, tamper, wrong key, wrong
 * counter (replay or reorder), header as associated data. */
FV_TEST(encrypt_trailer)
{
	for (int cipher = FV_CIPHER_CHACHA; cipher <= FV_CIPHER_AESGCM; cipher++) {
		uint8_t key[32];
		randombytes_buf(key, sizeof key);
		struct fv_frame_dir tx = {0}, rx = {0}, wrong = {0};
		FV_REQUIRE(fv_frame_dir_init(&tx, FV_MODE_ENCRYPT, cipher, key) == 0);
		FV_REQUIRE(fv_frame_dir_init(&rx, FV_MODE_ENCRYPT, cipher, key) == 0);
		tx.counter = rx.counter = 5;
		key[0] ^= 1;
		FV_REQUIRE(fv_frame_dir_init(&wrong, FV_MODE_ENCRYPT, cipher, key) == 0);
		wrong.counter = 5;
		uint8_t m[FV_FRAME_MAX_MSG];
		struct fv_frame_hdr h = {.type = FV_FT_REPLY, .id = 3};
		size_t n = build(m, &h, &tx, "secret reply");
		uint8_t *p = m + FV_FRAME_HDR;
		FV_CHECK(memcmp(p, "secret reply", 12) != 0); /* encrypted in place */
		uint8_t saved[FV_FRAME_MAX_MSG];
		memcpy(saved, m, n);
		FV_CHECK(fv_frame_open(&rx, 0, m, p, 12, p + 12) == 0);
		FV_CHECK(memcmp(p, "secret reply", 12) == 0);
		memcpy(m, saved, n);
		rx.counter = 6; /* the frame replayed later, or one dropped before it */
		FV_CHECK(fv_frame_open(&rx, 0, m, p, 12, p + 12) == -EBADMSG);
		rx.counter = 5;
		FV_CHECK(fv_frame_open(&rx, 1, m, p, 12, p + 12) == -EBADMSG); /* as the bulk segment */
		m[9] ^= 1;                                                     /* header is authenticated */
		FV_CHECK(fv_frame_open(&rx, 0, m, p, 12, p + 12) == -EBADMSG);
		m[9] ^= 1;
		FV_CHECK(fv_frame_open(&wrong, 0, m, p, 12, p + 12) == -EBADMSG);
		p[0] ^= 1;
		FV_CHECK(fv_frame_open(&rx, 0, m, p, 12, p + 12) == -EBADMSG);
		fv_frame_dir_free(&tx);
		fv_frame_dir_free(&rx);
		fv_frame_dir_free(&wrong);
	}
}

/* The bytes on the wire are the documented AEAD whichever library made
 * them: small segments go through libsodium, large ones through libcrypto.
 * Each size is sealed by the frame code and opened by libsodium's reference
 * call (nonce: le32 segment, le64 counter; associated data: the header),
 * and the other way round; a tampered large segment is refused and leaves
 * no plaintext behind. */
FV_TEST(encrypt_wire_format)
{
	static const size_t sizes[] = {0,     1,       12, 4096, FV_FRAME_EVP_MIN - 1, FV_FRAME_EVP_MIN,
				       65536, 1u << 20};
	size_t big = 1u << 20;
	uint8_t *plain = malloc(big), *p = malloc(big), *q = malloc(big);
	FV_REQUIRE(plain && p && q);
	randombytes_buf(plain, big);
	for (int cipher = FV_CIPHER_CHACHA; cipher <= FV_CIPHER_AESGCM; cipher++) {
		bool ref = cipher == FV_CIPHER_CHACHA || crypto_aead_aes256gcm_is_available();
		uint8_t key[32];
		randombytes_buf(key, sizeof key);
		struct fv_frame_dir d = {0};
		FV_REQUIRE(fv_frame_dir_init(&d, FV_MODE_ENCRYPT, cipher, key) == 0);
		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
			size_t n = sizes[i];
			uint64_t ctr = 1000 + i;
			uint8_t hdr[FV_FRAME_HDR], tag[16], nonce[12];
			struct fv_frame_hdr h = {.type = FV_FT_REPLY, .id = i, .bulk_len = (uint32_t)n};
			fv_frame_encode(&h, hdr);
			fv_put_le32(nonce, 1);
			fv_put_le64(nonce + 4, ctr);
			memcpy(p, plain, n);
			FV_REQUIRE(fv_frame_seal_at(&d, ctr, 1, hdr, p, n, tag) == 0);
			d.counter = ctr;
			if (ref) { /* sealed here, opened by the reference */
				memcpy(q, p, n);
				int rc = cipher == FV_CIPHER_CHACHA
						 ? crypto_aead_chacha20poly1305_ietf_decrypt_detached(
							   q, NULL, q, n, tag, hdr, FV_FRAME_HDR, nonce, key)
						 : crypto_aead_aes256gcm_decrypt_detached(
							   q, NULL, q, n, tag, hdr, FV_FRAME_HDR, nonce, key);
				FV_CHECK(rc == 0 && memcmp(q, plain, n) == 0);
				/* sealed by the reference, opened here */
				memcpy(q, plain, n);
				if (cipher == FV_CIPHER_CHACHA)
					crypto_aead_chacha20poly1305_ietf_encrypt_detached(
						q, tag, NULL, q, n, hdr, FV_FRAME_HDR, NULL, nonce, key);
				else
					crypto_aead_aes256gcm_encrypt_detached(
						q, tag, NULL, q, n, hdr, FV_FRAME_HDR, NULL, nonce, key);
				FV_CHECK(memcmp(q, p, n) == 0);
			}
			FV_CHECK(fv_frame_open(&d, 1, hdr, p, n, tag) == 0 && memcmp(p, plain, n) == 0);
			if (n >= FV_FRAME_EVP_MIN) {
				FV_REQUIRE(fv_frame_seal_at(&d, ctr, 1, hdr, p, n, tag) == 0);
				p[n / 2] ^= 0x40;
				FV_CHECK(fv_frame_open(&d, 1, hdr, p, n, tag) == -EBADMSG);
				bool zero = true;
				for (size_t j = 0; j < n; j++)
					zero = zero && p[j] == 0;
				FV_CHECK(zero);
			}
		}
		fv_frame_dir_free(&d);
	}
	free(plain);
	free(p);
	free(q);
}

FV_TEST(path_parse)
{
	struct fv_tp_path p;
	struct fv_err e = {0};
	FV_REQUIRE(fv_tp_path_parse("rdma://192.168.100.11:7500?from=192.168.100.10", FV_TP_TCP, &p, &e) ==
		   0);
	FV_CHECK(p.kind == FV_TP_RDMA && !strcmp(p.host, "192.168.100.11") && p.port == 7500 &&
		 !strcmp(p.from, "192.168.100.10"));
	FV_REQUIRE(fv_tp_path_parse("10.200.1.1", FV_TP_TCP, &p, &e) == 0);
	FV_CHECK(p.kind == FV_TP_TCP && p.port == FV_TP_DEFAULT_PORT && !p.from[0]);
	FV_REQUIRE(fv_tp_path_parse("tcp://[fe80::1]:9", FV_TP_TCP, &p, &e) == 0);
	FV_CHECK(!strcmp(p.host, "fe80::1") && p.port == 9);
	char buf[128];
	FV_CHECK(!strcmp(fv_tp_path_str(&p, buf, sizeof buf), "tcp://[fe80::1]:9"));
	static const char *bad[] = {
		"udp://x", "tcp://",         "tcp://h:",     "tcp://h:70000", "tcp://h:12x",
		"fe80::1", "tcp://[fe80::1", "tcp://h?to=x", "tcp://h?from="};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		fv_err_clear(&e);
		int rc = fv_tp_path_parse(bad[i], FV_TP_TCP, &p, &e);
		FV_CHECK(rc == -EINVAL && strstr(e.msg, bad[i]));
		if (rc != -EINVAL)
			fprintf(stderr, "  accepted: %s\n", bad[i]);
	}
}

FV_TESTS(header_roundtrip, header_bit_flips, header_limits, integrity_trailer, encrypt_trailer,
	 encrypt_wire_format, path_parse)
