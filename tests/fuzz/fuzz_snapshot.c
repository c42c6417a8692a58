/* fuzz_snapshot: fv_snapshot_decode on arbitrary bytes. Listing a
 * repository decodes every snapshot file, so the decoder must never crash,
 * over-read or over-allocate, and what it accepts must be what the encoder
 * writes: when decoding succeeds, re-encoding must succeed and give back the
 * very same bytes (the format is canonical), and those bytes must decode to
 * an equal snapshot.
 *
 * libFuzzer:  clang -fsanitize=fuzzer,address,undefined -DFV_LIBFUZZER \
 *               tests/fuzz/fuzz_snapshot.c backupd/snapshot.c common/buf.c
 * Without libFuzzer (CI with gcc), the same file builds into a program that
 * runs the files, or the files in the directories, given as arguments.
 */
#include "../../backupd/snapshot.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                                \
	do {                                                                                            \
		if (!(cond)) {                                                                          \
			fprintf(stderr, "fuzz_snapshot: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                                 \
			abort();                                                                        \
		}                                                                                       \
	} while (0)

static bool list_eq(char *const *a, char *const *b, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(a[i], b[i]))
			return false;
	return true;
}

static bool snap_eq(const struct fv_snapshot *a, const struct fv_snapshot *b)
{
	return a->time_ns == b->time_ns && a->end_ns == b->end_ns && !strcmp(a->host, b->host) &&
	       !strcmp(a->user, b->user) && a->npaths == b->npaths &&
	       list_eq(a->paths, b->paths, a->npaths) && a->ntags == b->ntags &&
	       list_eq(a->tags, b->tags, a->ntags) && !memcmp(a->root, b->root, FV_ID_LEN) &&
	       !memcmp(&a->stats, &b->stats, sizeof a->stats) && a->flags == b->flags &&
	       !strcmp(a->version, b->version) && !memcmp(a->id, b->id, FV_ID_LEN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fv_snapshot s, back;
	struct fv_buf b = {0};
	int rc = fv_snapshot_decode(data, size, &s);
	if (rc < 0) {
		/* Inputs are small: running out of memory would mean a count
		 * was trusted before it was checked. */
		FUZZ_CHECK(rc == -EBADMSG);
		FUZZ_CHECK(s.host == NULL && s.paths == NULL && s.npaths == 0);
		return 0;
	}
	FUZZ_CHECK(s.host && s.user && s.version && s.npaths >= 1 && s.paths);
	FUZZ_CHECK(fv_snapshot_encode(&s, &b) == 0);
	FUZZ_CHECK(b.len == size && memcmp(b.data, data, size) == 0);
	FUZZ_CHECK(fv_snapshot_decode(b.data, b.len, &back) == 0);
	FUZZ_CHECK(snap_eq(&s, &back));
	fv_snapshot_free(&back);
	fv_snapshot_free(&s);
	fv_buf_free(&b);
	return 0;
}

#ifndef FV_LIBFUZZER
#include "driver.h"
#endif
