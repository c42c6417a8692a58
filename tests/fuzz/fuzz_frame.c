/* fuzz_frame: the transport's frame decoder (transport/frame.c) on
 * arbitrary bytes: what every link hands up from the network before anything
 * else looks at it. It must never crash or over-read; what it accepts must
 * re-encode to the very same header bytes; and opening the segments of an
 * accepted frame (checksums, in both modes) must fail cleanly on bytes that
 * were not sealed.
 *
 * libFuzzer:  clang -fsanitize=fuzzer,address,undefined -DFV_LIBFUZZER -D_GNU_SOURCE \
 *               tests/fuzz/fuzz_frame.c transport/frame.c common/buf.c -lsodium -lcrypto -lxxhash
 * Without libFuzzer, the same file replays the files or directories given.
 */
#include "../../transport/frame.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                                     \
	do {                                                                                                 \
		if (!(cond)) {                                                                               \
			fprintf(stderr, "fuzz_frame: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                             \
		}                                                                                            \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fv_frame_hdr h;
	const char *why = NULL;
	if (sodium_init() < 0)
		abort();
	/* the header alone, as a stream backend decodes it first */
	if (size >= FV_FRAME_HDR && fv_frame_decode(data, &h, &why) == 0) {
		uint8_t again[FV_FRAME_HDR];
		struct fv_frame_hdr h2 = h;
		fv_frame_encode(&h2, again);
		FUZZ_CHECK(memcmp(again, data, FV_FRAME_HDR) == 0);
		FUZZ_CHECK(h.ctl_len <= FV_FRAME_MAX_CTL && h.bulk_len <= FV_FRAME_MAX_BULK);
		FUZZ_CHECK(fv_frame_ctl_size(&h) <= FV_FRAME_MAX_MSG);
	} else if (size >= FV_FRAME_HDR) {
		FUZZ_CHECK(why != NULL);
	}
	/* the whole control part, as a message backend hands it up */
	why = NULL;
	if (fv_frame_parse(data, size, &h, &why) < 0) {
		FUZZ_CHECK(why != NULL);
		return 0;
	}
	FUZZ_CHECK(fv_frame_ctl_size(&h) == size);
	if (!h.ctl_len)
		return 0;
	uint8_t *ctl = malloc(h.ctl_len);
	FUZZ_CHECK(ctl != NULL);
	memcpy(ctl, data + FV_FRAME_HDR, h.ctl_len);
	const uint8_t *trailer = data + FV_FRAME_HDR + h.ctl_len;
	struct fv_frame_dir d = {.mode = FV_MODE_INTEGRITY};
	int ok = fv_frame_open(&d, 0, data, ctl, h.ctl_len, trailer) == 0;
	FUZZ_CHECK(memcmp(ctl, data + FV_FRAME_HDR, h.ctl_len) == 0); /* integrity mode never writes */
	if (ok) {
		/* a matching checksum: sealing the same bytes gives the same trailer */
		uint8_t t[FV_FRAME_TRAILER];
		fv_frame_seal(&d, 0, data, ctl, h.ctl_len, t);
		FUZZ_CHECK(memcmp(t, trailer, FV_FRAME_TRAILER) == 0);
	}
	d.mode = FV_MODE_ENCRYPT;
	d.cipher = FV_CIPHER_CHACHA;
	/* a forgery has a 2^-128 chance: an accepted open means a broken AEAD */
	FUZZ_CHECK(fv_frame_open(&d, 0, data, ctl, h.ctl_len, trailer) == -EBADMSG);
	free(ctl);
	return 0;
}

#ifndef FV_LIBFUZZER
#include "driver.h"
#endif
