/* Unit tests for common/buf: the codec every format is built on. */
#include "../../common/buf.h"
#include "../harness.h"

#include <errno.h>

FV_TEST(roundtrip)
{
	struct fv_buf b = {0};
	fv_buf_u8(&b, 0xab);
	fv_buf_u16(&b, 0x1234);
	fv_buf_u32(&b, 0xdeadbeef);
	fv_buf_u64(&b, 0x0102030405060708ull);
	fv_buf_str(&b, "hello", 5);
	FV_REQUIRE(fv_buf_ok(&b));
	FV_CHECK_EQ(b.len, 1 + 2 + 4 + 8 + 4 + 5);
	FV_CHECK_EQ(b.data[1], 0x34); /* little-endian on every host */
	struct fv_rd r;
	fv_rd_init(&r, b.data, b.len);
	FV_CHECK_EQ(fv_rd_u8(&r), 0xab);
	FV_CHECK_EQ(fv_rd_u16(&r), 0x1234);
	FV_CHECK(fv_rd_u32(&r) == 0xdeadbeef);
	FV_CHECK(fv_rd_u64(&r) == 0x0102030405060708ull);
	char *s = NULL;
	FV_CHECK_EQ(fv_rd_str(&r, 10, &s, NULL), 0);
	FV_CHECK(s && strcmp(s, "hello") == 0);
	free(s);
	FV_CHECK(fv_rd_ok(&r) && fv_rd_left(&r) == 0);
	fv_buf_free(&b);
}

FV_TEST(short_input_is_refused)
{
	uint8_t three[3] = {1, 2, 3};
	struct fv_rd r;
	fv_rd_init(&r, three, sizeof three);
	(void)fv_rd_u32(&r);
	FV_CHECK(!fv_rd_ok(&r));
	FV_CHECK_EQ(fv_rd_u8(&r), 0); /* stays bad */
	/* a string whose length runs past the end */
	uint8_t s[6] = {100, 0, 0, 0, 'a', 'b'};
	char *out = NULL;
	fv_rd_init(&r, s, sizeof s);
	FV_CHECK_EQ(fv_rd_str(&r, 1000, &out, NULL), -EBADMSG);
	FV_CHECK(out == NULL);
	/* a string with an embedded NUL */
	uint8_t z[6] = {2, 0, 0, 0, 'a', 0};
	fv_rd_init(&r, z, sizeof z);
	FV_CHECK_EQ(fv_rd_str(&r, 1000, &out, NULL), -EBADMSG);
}

FV_TEST(hex)
{
	uint8_t in[3] = {0x00, 0xab, 0xff}, back[3];
	char h[7];
	fv_hex(in, 3, h);
	FV_CHECK(strcmp(h, "00abff") == 0);
	FV_CHECK_EQ(fv_unhex(h, back, 3), 0);
	FV_CHECK(memcmp(in, back, 3) == 0);
	FV_CHECK_EQ(fv_unhex("00abfg", back, 3), -EINVAL);
	FV_CHECK_EQ(fv_unhex("00abff00", back, 3), -EINVAL);
}

FV_TESTS(roundtrip, short_input_is_refused, hex)
